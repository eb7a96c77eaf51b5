//! The user's security info (`/.portvakt/account`): their methods, recovery codes,
//! sessions and recent activity. Changing anything needs a second factor from the
//! last few minutes; an older one sends the user through a step-up first.

use std::time::{Duration, SystemTime};

use http::StatusCode;

use super::answer::{Answer, Label};
use super::forms::{self, field};
use super::route::{AccountPage, Route};
use super::views::{self, texts, ActivityRow, DeviceRow};
use super::{challenge, Request};
use crate::auth::challenge::Purpose;
use crate::auth::security_keys::KeyError;
use crate::auth::{cookies, notify, Attempt, AuditKind, Channel, PendingAddress, Services};
use crate::config::model::{EmailUse, SmsUse};
use crate::factors::{phone, SignInMethod};
use crate::policy::{Authentication, MfaMode};
use crate::store::{
    AuditQuery, DeviceAdded, DeviceRemoval, PreferredMethod, SecurityKeyRecord, SessionRecord, StoreError,
    TotpDevice,
};

/// How recent a second factor must be to change the account.
const FRESH_ENOUGH: Duration = Duration::from_secs(5 * 60);
const ACCOUNT_PAGE: Route = Route::Account(AccountPage::Overview);

/// Serves the security-info pages for the session's user.
pub async fn serve(auth: &Services, req: &Request<'_>, page: AccountPage) -> Answer {
    if req.session_unknown {
        return req.unavailable();
    }
    let Some(account) = req.session else {
        // Only a signed-in user has security info; send the browser to sign in.
        return match req.app.sign_in_page() {
            Some(page) => Answer::redirect(page, Label::SignIn),
            None => req.error(
                StatusCode::UNAUTHORIZED,
                views::ErrorKind::SignInRequired,
                Label::SignIn,
            ),
        };
    };
    match serve_inner(auth, req, page, account).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "security-info page failed");
            req.unavailable()
        }
    }
}

async fn serve_inner(
    auth: &Services,
    req: &Request<'_>,
    page: AccountPage,
    account: &SessionRecord,
) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let post = req.is_post();
    if !post {
        return overview(auth, req, account).await;
    }
    let Some(form) = forms::read_signed_in(auth, req, account) else {
        return Ok(req.refused_form());
    };
    let t = texts(req.lang);
    match page {
        AccountPage::SignOutEverywhere => {
            let ended = auth.sessions.end_all_for(user).await?;
            challenge::note(auth, req, user, AuditKind::SignedOutEverywhere, "ok").await;
            tracing::info!(user = %user, sessions = ended, "signed out everywhere");
            let page = req.app.sign_in_page().unwrap_or("/");
            let answer = Answer::page(
                views::message(
                    StatusCode::OK,
                    req.lang,
                    t.sign_out_everywhere,
                    t.signed_out_everywhere,
                    Some((page, t.sign_in_again)),
                ),
                Label::SignedOutEverywhere,
            );
            Ok(answer.with_cookie(&cookies::clear_session(req.secure)))
        }
        AccountPage::RecoveryCodes => {
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            let codes = challenge::new_recovery_codes(auth, req, user).await?;
            challenge::note(auth, req, user, AuditKind::RecoveryCodesRenewed, "ok").await;
            let shown: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            Ok(Answer::page(
                views::new_codes(req.lang, &req.config.second_factor.issuer, user, &shown),
                Label::RecoveryCodesRenewed,
            ))
        }
        AccountPage::AddDevice => {
            let devices = auth.store.totp_devices(user).await?;
            let keys = auth.store.security_keys(user).await?.len();
            let name = field(&form, "name").trim();
            if devices.len() + keys >= req.config.second_factor.max_devices {
                return Ok(back_with(req, t.add_device_button, t.device_limit));
            }
            if !valid_device_name(name) || devices.iter().any(|d| d.name == name) {
                return Ok(back_with(req, t.add_device_button, t.invalid_device_name));
            }
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            challenge::begin_adding_device(auth, req, user, name, ACCOUNT_PAGE.path()).await
        }
        AccountPage::AddAppPassword => {
            if !req.app.policy.may_take_app_passwords() {
                return Ok(back_with(req, t.app_passwords_heading, t.app_passwords_off));
            }
            let name = field(&form, "name").trim();
            if !valid_device_name(name) {
                return Ok(back_with(req, t.app_passwords_heading, t.invalid_device_name));
            }
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            // A Basic app still needs the user's own password there: checked with
            // the app now, then kept locked under the app password.
            // Asking the app is a sign-in attempt like any other: charged, so that
            // an unattended browser is no way to guess the password there.
            let own = field(&form, "own_password");
            let app_secret = match req.app.basic_login() {
                None => None,
                Some(_) => {
                    let charged = match auth
                        .attempt(&req.config.lockout, user, req.client, req.now)
                        .await?
                    {
                        Attempt::Charged(charged) => charged,
                        Attempt::Locked(_) => return Ok(back_with(req, t.app_passwords_heading, t.locked)),
                    };
                    let verdict = req.basic_check.accepts(req.app, req.host, user, own).await;
                    if verdict != Some(false) {
                        auth.refund(&req.config.lockout, user, req.client, charged)
                            .await?;
                    }
                    match verdict {
                        Some(true) => Some(own),
                        Some(false) => {
                            challenge::note(auth, req, user, AuditKind::LoginFailed, "app_password_own")
                                .await;
                            return Ok(back_with(req, t.app_passwords_heading, t.app_password_own_wrong));
                        }
                        None => return Ok(back_with(req, t.app_passwords_heading, t.app_password_unchecked)),
                    }
                }
            };
            let Some(made) = auth
                .app_passwords
                .make(user, &req.app.name, name, app_secret, req.now)
                .await?
            else {
                return Ok(back_with(req, t.app_passwords_heading, t.app_password_limit));
            };
            challenge::note(auth, req, user, AuditKind::AppPasswordCreated, name).await;
            tracing::info!(user = %user, app = %req.app.name, id = made.id, "app password created");
            Ok(Answer::page(
                views::app_password_made(req.lang, user, name, &made.password),
                Label::Account,
            ))
        }
        AccountPage::RemoveAppPassword => {
            if let Ok(id) = field(&form, "id").parse::<i64>() {
                if auth.app_passwords.remove(user, id).await? {
                    challenge::note(auth, req, user, AuditKind::AppPasswordRevoked, "ok").await;
                }
            }
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        AccountPage::RenameDevice => {
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            let name = field(&form, "name").trim();
            let device = find_device(auth, user, field(&form, "id")).await?;
            let (Some(device), true) = (device, valid_device_name(name)) else {
                return Ok(back_with(req, t.rename_button, t.invalid_device_name));
            };
            // The secret is sealed to the device's name: seal it again for the new one.
            let old_context = TotpDevice::seal_context(user, &device.name);
            let Ok(secret) = auth.keys.open(&device.sealed_secret, &old_context) else {
                tracing::error!(user = %user, device = device.id, "a device secret does not open");
                return Ok(back_with(req, t.rename_button, t.invalid_device_name));
            };
            let sealed = auth.keys.seal(&secret, &TotpDevice::seal_context(user, name));
            if !auth.store.rename_device(user, device.id, name, sealed).await? {
                return Ok(back_with(req, t.rename_button, t.invalid_device_name));
            }
            challenge::note(auth, req, user, AuditKind::DeviceRenamed, "ok").await;
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        AccountPage::AddKey => {
            let name = field(&form, "name").trim();
            if !req.config.second_factor.security_keys {
                return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
            }
            if !valid_device_name(name) {
                return Ok(back_with(req, t.key_add_title, t.invalid_device_name));
            }
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            add_key_page(auth, req, account, name, None).await
        }
        AccountPage::AddKeyFinish => {
            if !req.config.second_factor.security_keys {
                return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
            }
            // Adding a way in needs a fresh second factor when it is finished too.
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            let Some(site) = challenge::key_site(req) else {
                return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
            };
            let finished = auth
                .security_keys
                .finish_registration(&site, &account.id_hash, user, field(&form, "credential"), req.now)
                .await;
            let (name, registered) = match finished {
                Ok(done) => done,
                Err(KeyError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::info!(user = %user, error = %e, "a security key was not registered");
                    return Ok(back_with(req, t.key_add_title, t.key_refused));
                }
            };
            let record = SecurityKeyRecord {
                id: 0,
                user: user.to_owned(),
                name,
                credential_id: registered.credential_id,
                rp_id: site.id,
                credential: registered.credential,
                created_at: req.now,
                last_used_at: None,
            };
            let refused = match auth
                .store
                .add_security_key(&record, req.config.second_factor.max_devices)
                .await?
            {
                DeviceAdded::Added(_) => None,
                DeviceAdded::LimitReached => Some(t.device_limit),
                DeviceAdded::NameTaken => Some(t.invalid_device_name),
                DeviceAdded::CredentialTaken => Some(t.key_taken),
            };
            if let Some(why) = refused {
                return Ok(back_with(req, t.key_add_title, why));
            }
            challenge::note(auth, req, user, AuditKind::KeyAdded, "ok").await;
            auth.notify(req.config, user, t.notice_device_subject, t.notice_device_body)
                .await;
            tracing::info!(user = %user, app = %req.app.name, "security key added");
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        AccountPage::RemoveDevice | AccountPage::RemoveKey => {
            let what = removal_of(page);
            match owned_device(auth, user, what, field(&form, "id")).await? {
                Some(id) => {
                    let csrf = auth.sessions.form_token(account);
                    Ok(Answer::page(
                        views::confirm_removal(req.lang, &csrf, what, id),
                        Label::Account,
                    ))
                }
                None => Ok(Answer::to(ACCOUNT_PAGE, Label::Account)),
            }
        }
        AccountPage::RemoveDeviceConfirm | AccountPage::RemoveKeyConfirm => {
            let what = removal_of(page);
            let Some(id) = owned_device(auth, user, what, field(&form, "id")).await? else {
                return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
            };
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            let keep_one = must_keep_a_device(req, account);
            let (removed, event, title) = match what {
                views::Removal::App => (
                    auth.store.remove_device(user, id, keep_one).await?,
                    AuditKind::DeviceRemoved,
                    t.remove_confirm_title,
                ),
                views::Removal::Key => (
                    auth.store.remove_security_key(user, id, keep_one).await?,
                    AuditKind::KeyRemoved,
                    t.key_remove_title,
                ),
            };
            let last_refused = match what {
                views::Removal::App => t.last_device_refused,
                views::Removal::Key => t.key_last_refused,
            };
            match removed {
                DeviceRemoval::Removed => {
                    // A lost phone or key may be why: remembered browsers ask again.
                    auth.store.forget_trusted_devices(user).await?;
                    challenge::note(auth, req, user, event, "ok").await;
                }
                DeviceRemoval::LastOne => return Ok(back_with(req, title, last_refused)),
                DeviceRemoval::NoSuchDevice => {}
            }
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        AccountPage::TwoFactor if matches!(req.app.policy.mfa, MfaMode::Optional) => {
            let on = field(&form, "on") == "on";
            if !on && !req.config.second_factor.allow_opt_out {
                return Ok(back_with(req, t.two_factor_heading, t.opt_out_not_allowed));
            }
            // Turning protection off is a change like removing a device: it needs a
            // recent second factor.
            if !on && !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            auth.store.set_mfa_opted_in(user, on, req.now).await?;
            auth.sessions.refresh_user(user);
            let event = if on {
                AuditKind::MfaTurnedOn
            } else {
                AuditKind::MfaTurnedOff
            };
            challenge::note(auth, req, user, event, "ok").await;
            if on && account.second_factor_at.is_none() {
                // Enrol (or verify) now, and come back here.
                return Ok(step_up(auth, req, user).await);
            }
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        AccountPage::Email | AccountPage::Phone => {
            let channel = match page {
                AccountPage::Phone => Channel::TextMessage,
                _ => Channel::Email,
            };
            add_address(auth, req, account, channel, field(&form, "address")).await
        }
        AccountPage::EmailConfirm | AccountPage::PhoneConfirm => {
            let channel = match page {
                AccountPage::PhoneConfirm => Channel::TextMessage,
                _ => Channel::Email,
            };
            confirm_address(auth, req, account, channel, field(&form, "code")).await
        }
        AccountPage::PhoneRemove => {
            // Taking a way in away is a change like removing a device.
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            if auth.store.phone_number(user).await?.is_some() {
                auth.store.set_phone_number(user, None, req.now).await?;
                challenge::note(auth, req, user, AuditKind::PhoneRemoved, "ok").await;
            }
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        AccountPage::DefaultMethod => {
            if !fresh(account, req.now) {
                return Ok(step_up(auth, req, user).await);
            }
            let Some(method) = PreferredMethod::parse(field(&form, "method")) else {
                return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
            };
            auth.store.set_preferred_method(user, method, req.now).await?;
            challenge::note(auth, req, user, AuditKind::DefaultMethodChanged, method.as_str()).await;
            Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
        }
        _ => Ok(Answer::to(ACCOUNT_PAGE, Label::Account)),
    }
}

/// Starts adding a way to receive codes: the address (or number) typed is
/// checked, a code is sent to it, and it waits (an hour at most) for that code.
async fn add_address(
    auth: &Services,
    req: &Request<'_>,
    account: &SessionRecord,
    channel: Channel,
    typed: &str,
) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let t = texts(req.lang);
    let (heading, invalid) = match channel {
        Channel::Email => (t.email_add_heading, t.email_invalid),
        Channel::TextMessage => (t.phone_add_heading, t.phone_invalid),
    };
    let Some(cool_down) = may_add(auth, req, user, channel).await? else {
        return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
    };
    let address = match channel {
        Channel::Email => Some(typed.trim().to_owned()).filter(|a| notify::is_deliverable(a)),
        Channel::TextMessage => phone::normalise(typed).filter(|number| {
            let countries = req
                .config
                .sms
                .as_ref()
                .map(|s| s.countries.as_slice())
                .unwrap_or_default();
            phone::allowed(number, countries)
        }),
    };
    let Some(address) = address else {
        return Ok(back_with(req, heading, invalid));
    };
    // Adding a way in is a change like adding a device.
    if !fresh(account, req.now) {
        return Ok(step_up(auth, req, user).await);
    }
    let waiting = auth
        .pending_address(channel, user, req.now)
        .await?
        .is_some_and(|p| !p.code.may_resend(req.now, cool_down));
    if waiting {
        return Ok(back_with(req, heading, t.email_wait));
    }
    let Some(code) = challenge::send_code(auth, req, user, channel, &address).await else {
        return Ok(back_with(req, heading, t.email_failed));
    };
    let pending = PendingAddress {
        address: address.clone(),
        code,
    };
    auth.await_address(channel, user, &pending, req.now).await?;
    let sent = match channel {
        Channel::Email => AuditKind::EmailCodeSent,
        Channel::TextMessage => AuditKind::SmsCodeSent,
    };
    challenge::note(auth, req, user, sent, "ok").await;
    Ok(confirm_address_page(req, account, auth, channel, &address, None))
}

/// The code sent to an address (or number) being added came back: right, the
/// address is the user's from now on.
async fn confirm_address(
    auth: &Services,
    req: &Request<'_>,
    account: &SessionRecord,
    channel: Channel,
    typed: &str,
) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let Some(pending) = auth.pending_address(channel, user, req.now).await? else {
        return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
    };
    let charged = match challenge::charge(auth, req, user).await? {
        Ok(charged) => charged,
        Err(locked) => return Ok(locked),
    };
    if !pending.code.matches(typed, req.now) {
        challenge::note(auth, req, user, AuditKind::SecondFactorFailed, "refused").await;
        let wrong = texts(req.lang).wrong_code;
        return Ok(confirm_address_page(
            req,
            account,
            auth,
            channel,
            &pending.address,
            Some(wrong),
        ));
    }
    // A reachable address, not a second factor: this attempt back, no reset.
    auth.refund(&req.config.lockout, user, req.client, charged)
        .await?;
    if auth.confirm_address(channel, user, req.now).await?.is_none() {
        // Another request with this code confirmed it a moment ago.
        return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
    }
    let added = match channel {
        Channel::Email => {
            auth.store
                .set_email_address(user, &pending.address, req.now)
                .await?;
            AuditKind::EmailAdded
        }
        Channel::TextMessage => {
            auth.store
                .set_phone_number(user, Some(&pending.address), req.now)
                .await?;
            AuditKind::PhoneAdded
        }
    };
    challenge::note(auth, req, user, added, "ok").await;
    Ok(Answer::to(ACCOUNT_PAGE, Label::Account))
}

/// The cool-down between codes, when this user may add an address (or number)
/// for `channel`: e-mail is set up and used for codes here and the user has no
/// address yet; text messages are set up and used here (a number may be changed).
async fn may_add(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    channel: Channel,
) -> Result<Option<Duration>, StoreError> {
    let used = match channel {
        Channel::Email => {
            req.config.second_factor.email != EmailUse::Off
                && auth.mailer.is_some()
                && auth.email_address(req.config, user).await.is_none()
        }
        Channel::TextMessage => req.config.second_factor.sms != SmsUse::Off,
    };
    Ok(challenge::resend_after(req.config, channel).filter(|_| used))
}

/// Where to type the code sent to a new address (or number).
fn confirm_address_page(
    req: &Request<'_>,
    account: &SessionRecord,
    auth: &Services,
    channel: Channel,
    address: &str,
    error: Option<&str>,
) -> Answer {
    let csrf = auth.sessions.form_token(account);
    let action = match channel {
        Channel::Email => AccountPage::EmailConfirm,
        Channel::TextMessage => AccountPage::PhoneConfirm,
    };
    let page = views::confirm_address(
        req.lang,
        &csrf,
        channel,
        &challenge::mask(channel, address),
        error,
        Route::Account(action).path(),
    );
    Answer::page(page, Label::Account)
}

/// Sends the user through the second factor, then back to the security info.
async fn step_up(auth: &Services, req: &Request<'_>, user: &str) -> Answer {
    let purpose = Purpose::Return(ACCOUNT_PAGE.path().to_owned());
    let (answer, _) = challenge::begin(
        auth, req.config, req.app, user, purpose, req.client, req.secure, req.now,
    )
    .await;
    answer
}

/// A message about the security info, with the way back to it.
fn back_with(req: &Request<'_>, title: &str, text: &str) -> Answer {
    let t = texts(req.lang);
    let page = views::message(
        StatusCode::UNPROCESSABLE_ENTITY,
        req.lang,
        title,
        text,
        Some((ACCOUNT_PAGE.path(), t.back_to_account)),
    );
    Answer::page(page, Label::Account)
}

/// A name a person gave a device: 1 to 40 characters, no control characters.
fn valid_device_name(name: &str) -> bool {
    (1..=40).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

/// The user's device with this id (as sent in a form), if it is theirs.
/// Whether the user must keep a device (app or key): the second factor is asked of
/// them at sign-in here. That one does stay is the store's to hold (one
/// transaction: removals at once cannot leave none).
fn must_keep_a_device(req: &Request<'_>, account: &SessionRecord) -> bool {
    let identity = Authentication {
        user: account.user.clone(),
        groups: req.config.users.groups(&account.user),
        second_factor_at: account.second_factor_at,
        mfa_opted_in: account.mfa_opted_in,
        // Whether the user must have a factor, as a new sign-in would see it.
        signed_in_at: req.now,
    };
    req.app.policy.second_factor_at_sign_in(&identity)
}

/// What a removal page removes: an app, or a key.
fn removal_of(page: AccountPage) -> views::Removal {
    match page {
        AccountPage::RemoveKey | AccountPage::RemoveKeyConfirm => views::Removal::Key,
        _ => views::Removal::App,
    }
}

/// The id of the user's app (or key) that the form names, if it is theirs.
async fn owned_device(
    auth: &Services,
    user: &str,
    what: views::Removal,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    let owned = match what {
        views::Removal::App => auth.store.totp_devices(user).await?.iter().any(|d| d.id == id),
        views::Removal::Key => auth.store.security_keys(user).await?.iter().any(|k| k.id == id),
    };
    Ok(owned.then_some(id))
}

/// The page that registers a security key named `name` for the signed-in user,
/// its ceremony begun (their keys excluded).
async fn add_key_page(
    auth: &Services,
    req: &Request<'_>,
    account: &SessionRecord,
    name: &str,
    error: Option<&str>,
) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let t = texts(req.lang);
    let Some(site) = challenge::key_site(req) else {
        return Ok(Answer::to(ACCOUNT_PAGE, Label::Account));
    };
    let existing = auth.store.security_keys(user).await?;
    let begun = auth
        .security_keys
        .begin_registration(&site, &account.id_hash, user, name, &existing, req.now)
        .await;
    let csrf = auth.sessions.form_token(account);
    let page = views::KeyCeremony {
        registering: true,
        csrf: &csrf,
        action: Route::Account(AccountPage::AddKeyFinish).path(),
        back: ACCOUNT_PAGE.path(),
        back_text: t.back_to_account,
        error,
    };
    challenge::show_ceremony(req, user, begun, &page, Label::Account)
}

async fn find_device(auth: &Services, user: &str, id: &str) -> Result<Option<TotpDevice>, StoreError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    Ok(auth
        .store
        .totp_devices(user)
        .await?
        .into_iter()
        .find(|d| d.id == id))
}

/// A user's app passwords (every user's for `None`) as the pages show them.
pub(super) async fn app_password_rows(
    auth: &Services,
    req: &Request<'_>,
    user: Option<&str>,
) -> Result<Vec<views::AppPasswordRow>, StoreError> {
    let t = texts(req.lang);
    Ok(auth
        .store
        .app_passwords(user)
        .await?
        .into_iter()
        .map(|p| views::AppPasswordRow {
            id: p.id,
            user: p.user,
            app: p.app,
            name: p.name,
            added: views::human_time(p.created_at),
            last_used: p
                .last_used_at
                .map_or_else(|| t.never.to_owned(), views::human_time),
            refused: p.app_refused,
        })
        .collect())
}

/// A second factor recent enough to change the security info, and not a text
/// message: a swapped SIM and a password must not be enough to add the thief's
/// device or remove the user's own.
fn fresh(account: &SessionRecord, now: SystemTime) -> bool {
    account.second_factor_within(now, FRESH_ENOUGH) && account.method != SignInMethod::Sms
}

async fn overview(auth: &Services, req: &Request<'_>, account: &SessionRecord) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let t = texts(req.lang);
    let row = |id, name, added, last_used: Option<SystemTime>| DeviceRow {
        id,
        name,
        added: views::human_time(added),
        last_used: last_used.map_or_else(|| t.never.to_owned(), views::human_time),
    };
    let devices: Vec<DeviceRow> = auth
        .store
        .totp_devices(user)
        .await?
        .into_iter()
        .map(|d| row(d.id, d.name, d.created_at, d.last_used_at))
        .collect();
    let keys: Vec<DeviceRow> = auth
        .store
        .security_keys(user)
        .await?
        .into_iter()
        .map(|k| row(k.id, k.name, k.created_at, k.last_used_at))
        .collect();
    let codes_left = auth.store.unused_recovery_codes(user).await?.len();
    let query = AuditQuery {
        subject: Some(user.to_owned()),
        since: None,
        limit: 10,
    };
    let activity: Vec<ActivityRow> = auth
        .store
        .audit(&query)
        .await?
        .into_iter()
        .map(|e| ActivityRow {
            when: views::human_time(e.at),
            what: views::event_label(req.lang, &e.event).to_owned(),
            client: e.client.unwrap_or_default(),
        })
        .collect();
    let csrf = auth.sessions.form_token(account);
    let optional = matches!(req.app.policy.mfa, MfaMode::Optional);
    let address = auth.email_address(req.config, user).await;
    let masked_email = address.as_deref().map(crate::factors::email::mask);
    let can_add_email = may_add(auth, req, user, Channel::Email).await?.is_some();
    let can_add_phone = may_add(auth, req, user, Channel::TextMessage).await?.is_some();
    // A stored number is shown (and may be removed) even where texts are off.
    let phone = auth.store.phone_number(user).await?.map(|n| phone::mask(&n));
    // A choice only for a user with both an app and an e-mail offer.
    let default_method = match challenge::email_offer(auth, req, user, !devices.is_empty()).await {
        Some(_) if !devices.is_empty() => Some(
            auth.store
                .preferred_method(user)
                .await?
                .unwrap_or(PreferredMethod::App),
        ),
        _ => None,
    };
    let app_passwords = app_password_rows(auth, req, Some(user)).await?;
    let app_passwords_here = req
        .app
        .policy
        .may_take_app_passwords()
        .then(|| req.app.basic_login().is_some());
    let page = views::Account {
        app_passwords: &app_passwords,
        app_passwords_here,
        user,
        devices: &devices,
        keys: &keys,
        can_add_key: req.config.second_factor.security_keys,
        codes_left,
        activity: &activity,
        csrf: &csrf,
        opt_in: optional.then_some(account.mfa_opted_in),
        can_opt_out: req.config.second_factor.allow_opt_out,
        email: masked_email.as_deref(),
        can_add_email,
        phone: phone.as_deref(),
        can_add_phone,
        default_method,
    };
    Ok(Answer::page(views::account(req.lang, &page), Label::Account))
}
