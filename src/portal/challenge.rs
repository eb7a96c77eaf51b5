//! The gateway's second-factor pages, and what happens when a challenge is passed.
//!
//! ```text
//! login withheld ─► /.portvakt/enrol (no device yet)  ─► codes shown ─► /.portvakt/continue ─► release
//!                │  └► /.portvakt/enrol/email (an address instead of an app) ─► confirmed ──► release
//!                └► /.portvakt/verify ─────────────────────────────────────────────────────► release
//!                   └► /.portvakt/recovery ─► codes left shown ─► /.portvakt/continue ──────► release
//! ```
//! "Release" writes the app's withheld login response exactly as the app sent it,
//! plus the gateway's new session cookie; for a step-up it redirects to the page the
//! user asked for.

use std::net::IpAddr;
use std::time::SystemTime;

use http::StatusCode;
use zeroize::Zeroizing;

use super::answer::{Answer, Label};
use super::route::{self, ChallengePage, Route};
use super::views::{self, texts};
use super::{forms, Request};
use crate::auth::challenge::{form_fingerprint, Challenge, Purpose, SharedChallenge, Stage};
use crate::auth::identity::unix;
use crate::auth::security_keys::{KeyError, RelyingParty};
use crate::auth::sms::TextMessage;
use crate::auth::{cookies, notify, Attempt, AuditKind, Channel, Charged, Services};
use crate::config::model::{EmailUse, Enrolment, SmsUse};
use crate::config::{App, Config};
use crate::factors::recovery;
use crate::factors::sent_code::SentCode;
use crate::factors::totp::{self, TotpSecret, Verification};
use crate::factors::SignInMethod;
use crate::factors::{email, phone};
use crate::store::{DeviceAdded, PreferredMethod, SecurityKeyRecord, StoreError, TotpDevice};

/// The challenge cookie's name (host-only; `__Host-` on HTTPS).
pub fn challenge_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portvakt-challenge"
    } else {
        "portvakt-challenge"
    }
}

/// The challenge cookie lives no longer than the challenge it names.
fn set_challenge_cookie(id: &str, secure: bool, lifetime: std::time::Duration) -> String {
    let seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    cookie::Cookie::build((challenge_cookie_name(secure), id.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(seconds))
        .build()
        .to_string()
}

fn clear_challenge_cookie(secure: bool) -> String {
    cookie::Cookie::build((challenge_cookie_name(secure), ""))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// Starts a second-factor challenge for `user` and sends the browser to it: to enrol
/// (no device yet, and enrolment allowed from here) or to verify. Returns the
/// redirect, and the challenge when one was made.
#[allow(clippy::too_many_arguments)]
pub async fn begin(
    auth: &Services,
    config: &Config,
    app: &App,
    user: &str,
    purpose: Purpose,
    client: IpAddr,
    secure: bool,
    now: SystemTime,
) -> (Answer, Option<SharedChallenge>) {
    let has_device = match has_device(auth, user).await {
        Ok(has) => has,
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not read a user's devices");
            return (Answer::to(Route::Unavailable, Label::Error), None);
        }
    };
    let may_enrol = enrolment_allowed(auth, config, user, client, now).await;
    // Where an e-mailed code is a second factor in its own right, a user with an
    // address need not enrol an app first.
    let email_will_do = config.second_factor.email == EmailUse::SecondFactor
        && auth.email_address(config, user).await.is_some();
    let stage = if has_device || email_will_do {
        Stage::Verify
    } else if may_enrol {
        // A first enrolment from a place the user has not signed in from: their
        // mailbox first (a stolen password must not enrol the thief's phone).
        match auth.enrolment_gate(config, user, client, now).await {
            Ok(Some(signals)) => Stage::Unusual {
                signals,
                then_enrol: true,
            },
            Ok(None) => Stage::Enrol(TotpSecret::generate()),
            Err(e) => {
                tracing::error!(error = %e, user = %user, "could not tell whether an enrolment is unusual");
                return (Answer::to(Route::Unavailable, Label::Error), None);
            }
        }
    } else {
        tracing::warn!(user = %user, client = %client, "enrolment is not allowed from this address");
        return (Answer::to(Route::EnrolmentClosed, Label::EnrolmentClosed), None);
    };
    let page = match stage {
        Stage::Enrol(_) => Route::Challenge(ChallengePage::Enrol).path(),
        Stage::Unusual { .. } => Route::Challenge(ChallengePage::Unusual).path(),
        _ => Route::Challenge(ChallengePage::Verify).path(),
    };
    let made = auth
        .challenges
        .insert(Challenge::new(user, &app.name, purpose, stage, now))
        .await;
    let (id, challenge) = match made {
        Ok(made) => made,
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not store a challenge");
            return (Answer::to(Route::Unavailable, Label::Error), None);
        }
    };
    let answer = Answer::redirect(page, Label::SecondFactor).with_cookie(&set_challenge_cookie(
        &id,
        secure,
        config.session.login_timeout,
    ));
    (answer, Some(challenge))
}

/// Starts enrolling one more device, named `name`, for a signed-in user whose second
/// factor is recent; passing it returns to `return_to`.
pub async fn begin_adding_device(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    name: &str,
    return_to: &str,
) -> Result<Answer, StoreError> {
    let stage = Stage::Enrol(TotpSecret::generate());
    let mut challenge = Challenge::new(
        user,
        &req.app.name,
        Purpose::Return(return_to.to_owned()),
        stage,
        req.now,
    );
    challenge.device_name = name.to_owned();
    challenge.adding_device = true;
    let (id, _) = auth.challenges.insert(challenge).await?;
    let cookie = set_challenge_cookie(&id, req.secure, req.config.session.login_timeout);
    Ok(Answer::to(Route::Challenge(ChallengePage::Enrol), Label::SecondFactor).with_cookie(&cookie))
}

/// Serves a challenge page. Store failures end in an error page: never a session.
pub async fn serve(auth: &Services, req: &Request<'_>, page: ChallengePage) -> Answer {
    match serve_inner(auth, req, page).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "second-factor page failed");
            req.unavailable()
        }
    }
}

async fn serve_inner(auth: &Services, req: &Request<'_>, page: ChallengePage) -> Result<Answer, StoreError> {
    let Some(id) = req.cookie(challenge_cookie_name(req.secure)).map(str::to_owned) else {
        return Ok(resubmission(auth, req, page)
            .await?
            .unwrap_or_else(|| expired(req)));
    };
    let post = req.is_post();
    // Forms of one challenge that reach this gateway are handled one at a time
    // (held to the end of this function), each reading what the one before wrote:
    // a double click shows the page the first click led to.
    let busy = auth.challenges.busy(&id);
    let _one_at_a_time = if post { Some(busy.lock().await) } else { None };
    let Some(challenge) = auth.challenges.get(&id, req.now).await? else {
        return Ok(resubmission(auth, req, page)
            .await?
            .unwrap_or_else(|| expired(req)));
    };
    let (user, app_name, csrf) = {
        let c = lock(&challenge);
        (c.user.clone(), c.app.clone(), c.csrf.clone())
    };
    if app_name != req.app.name {
        return Ok(expired(req));
    }
    let answer = handle(auth, req, page, &id, &challenge, &user, &csrf).await?;
    // What this request changed, for the next request on whichever gateway. Not
    // written if another request changed the challenge meanwhile (on another
    // gateway): what must happen once was already decided by the store.
    if !auth.challenges.save(&id, &challenge).await? {
        tracing::debug!("a challenge changed by two requests at once; the other one's change kept");
    }
    Ok(answer)
}

/// One request to a challenge page, on the challenge as it was read.
async fn handle(
    auth: &Services,
    req: &Request<'_>,
    page: ChallengePage,
    id: &str,
    challenge: &SharedChallenge,
    user: &str,
    csrf: &str,
) -> Result<Answer, StoreError> {
    let (id, challenge, user, csrf) = (id.to_owned(), challenge.clone(), user.to_owned(), csrf.to_owned());
    let post = req.is_post();
    let form = if post {
        match forms::read(req) {
            Some(form) if forms::value(&form, "csrf").is_some_and(|t| lock(&challenge).csrf_matches(t)) => {
                form
            }
            // The token may have changed while this request waited its turn: the
            // click before it passed the challenge.
            _ => {
                return Ok(resubmission(auth, req, page)
                    .await?
                    .unwrap_or_else(|| req.refused_form()))
            }
        }
    } else {
        Vec::new()
    };
    let t = texts(req.lang);
    if let Some(verify) = enrolled_meanwhile(auth, &challenge, &user).await? {
        return Ok(verify);
    }
    let stage = StageKind::of(&challenge);
    match (page, post, stage) {
        (ChallengePage::Enrol, false, StageKind::Enrol) => {
            enrol_page(auth, &challenge, req, &user, &csrf, None).await
        }
        (ChallengePage::Enrol, true, StageKind::Enrol) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let code = forms::field(&form, "code");
            let (secret, name) = {
                let c = lock(&challenge);
                match &c.stage {
                    Stage::Enrol(secret) => (secret.clone(), c.device_name.clone()),
                    _ => return Ok(expired(req)),
                }
            };
            let last = auth.store.last_totp_step(&user).await?;
            match totp::verify(&secret, &req.config.second_factor.totp, code, unix(req.now), last) {
                Verification::Accepted { step } => {
                    let adding = lock(&challenge).adding_device;
                    let sealed = auth
                        .keys
                        .seal(secret.as_bytes(), &TotpDevice::seal_context(&user, &name));
                    // A first enrolment stores a device only while there is none.
                    let limit = if adding {
                        req.config.second_factor.max_devices
                    } else {
                        1
                    };
                    let added = auth
                        .store
                        .add_totp_device(&user, &name, sealed, step, req.now, limit)
                        .await?;
                    let refused = match (added, adding) {
                        (DeviceAdded::Added(_), _) => None,
                        (DeviceAdded::LimitReached, true) => Some(t.device_limit),
                        // (A code's device has no credential id: never taken.)
                        (DeviceAdded::NameTaken | DeviceAdded::CredentialTaken, true) => {
                            Some(t.invalid_device_name)
                        }
                        (
                            DeviceAdded::LimitReached | DeviceAdded::NameTaken | DeviceAdded::CredentialTaken,
                            false,
                        ) => {
                            // Another sign-in of this user enrolled a device meanwhile:
                            // this code is not charged against them, and they verify.
                            auth.refund(&req.config.lockout, &user, req.client, charged)
                                .await?;
                            lock(&challenge).stage = Stage::Verify;
                            return Ok(Answer::to(
                                Route::Challenge(ChallengePage::Verify),
                                Label::SecondFactor,
                            ));
                        }
                    };
                    if let Some(why) = refused {
                        // Another device was added meanwhile (another tab): the limit
                        // and the names hold when the device is stored, not only when
                        // adding began. The code was right: it is not charged.
                        auth.refund(&req.config.lockout, &user, req.client, charged)
                            .await?;
                        auth.challenges.take(&id, req.now).await?;
                        return Ok(device_refused(req, &challenge, why));
                    }
                    let first = !adding;
                    // Recovery codes come with the first device; later ones keep them.
                    let codes = if first {
                        Some(new_recovery_codes(auth, req, &user).await?)
                    } else {
                        None
                    };
                    passed(auth, req, &user, charged).await?;
                    note(auth, req, &user, AuditKind::Enrolled, "ok").await;
                    auth.notify(req.config, &user, t.notice_device_subject, t.notice_device_body)
                        .await;
                    tracing::info!(user = %user, app = %req.app.name, "authenticator app enrolled");
                    lock(&challenge).stage = Stage::Passed {
                        method: SignInMethod::Totp,
                        new_codes: codes,
                        codes_left: None,
                    };
                    passed_here(auth, &challenge, req, &id).await
                }
                Verification::Replayed | Verification::Rejected => {
                    note(auth, req, &user, AuditKind::SecondFactorFailed, "refused").await;
                    enrol_page(auth, &challenge, req, &user, &csrf, Some(t.wrong_code)).await
                }
            }
        }
        (ChallengePage::EnrolEmail, true, StageKind::Enrol) => {
            let Some(_) = enrol_email_offer(auth, req, &user).await? else {
                return Ok(Answer::to(
                    Route::Challenge(ChallengePage::Enrol),
                    Label::SecondFactor,
                ));
            };
            let typed = forms::field(&form, "address").trim();
            if !notify::is_deliverable(typed) {
                return enrol_page(auth, &challenge, req, &user, &csrf, Some(t.email_invalid)).await;
            }
            if resend_too_soon(&challenge, req, Channel::Email) {
                return enrol_page(auth, &challenge, req, &user, &csrf, Some(t.email_wait)).await;
            }
            let Some(code) = send_code(auth, req, &user, Channel::Email, typed).await else {
                return enrol_page(auth, &challenge, req, &user, &csrf, Some(t.email_failed)).await;
            };
            {
                let mut c = lock(&challenge);
                c.email_code = Some(code);
                c.pending_address = Some(typed.to_owned());
            }
            note(auth, req, &user, AuditKind::EmailCodeSent, "ok").await;
            Ok(Answer::to(
                Route::Challenge(ChallengePage::EnrolEmail),
                Label::SecondFactor,
            ))
        }
        (ChallengePage::EnrolEmail, false, StageKind::Enrol) => {
            match lock(&challenge).pending_address.clone() {
                Some(address) => Ok(confirm_address_page(req, &csrf, &address, None)),
                None => Ok(Answer::to(
                    Route::Challenge(ChallengePage::Enrol),
                    Label::SecondFactor,
                )),
            }
        }
        (ChallengePage::EnrolEmailConfirm, true, StageKind::Enrol) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let typed = forms::field(&form, "code");
            let confirmed = if use_sent_code(&challenge, Channel::Email, typed, req.now) {
                lock(&challenge).pending_address.take()
            } else {
                None
            };
            let Some(address) = confirmed else {
                note(auth, req, &user, AuditKind::SecondFactorFailed, "refused").await;
                let Some(address) = lock(&challenge).pending_address.clone() else {
                    return Ok(Answer::to(
                        Route::Challenge(ChallengePage::Enrol),
                        Label::SecondFactor,
                    ));
                };
                return Ok(confirm_address_page(req, &csrf, &address, Some(t.wrong_code)));
            };
            auth.store.set_email_address(&user, &address, req.now).await?;
            note(auth, req, &user, AuditKind::EmailAdded, "ok").await;
            tracing::info!(user = %user, app = %req.app.name, "e-mail address confirmed while enrolling");
            // The code proved the address is reachable by whoever is enrolling,
            // not who they are: it takes its own charge back and resets nothing.
            auth.refund(&req.config.lockout, &user, req.client, charged)
                .await?;
            if req.config.second_factor.email != EmailUse::SecondFactor {
                // A fallback beside the app: the app is still to be set up.
                return Ok(Answer::to(
                    Route::Challenge(ChallengePage::Enrol),
                    Label::SecondFactor,
                ));
            }
            // Where e-mailed codes stand alone, that code is the second factor.
            note(auth, req, &user, AuditKind::SecondFactorOk, "ok").await;
            pass(&challenge, SignInMethod::Email, false);
            complete(auth, req, &id, &challenge).await
        }
        (ChallengePage::Verify, false, StageKind::Verify) => {
            verify_page(auth, req, &challenge, &csrf, None).await
        }
        (ChallengePage::Verify, true, StageKind::Verify) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let code = forms::field(&form, "code");
            if check_totp(auth, req, &user, code).await? {
                passed(auth, req, &user, charged).await?;
                note(auth, req, &user, AuditKind::SecondFactorOk, "ok").await;
                pass(&challenge, SignInMethod::Totp, wants_remembering(req, &form));
                return complete(auth, req, &id, &challenge).await;
            }
            note(auth, req, &user, AuditKind::SecondFactorFailed, "refused").await;
            verify_page(auth, req, &challenge, &csrf, Some(t.wrong_code)).await
        }
        (ChallengePage::Recovery, false, StageKind::Verify) => Ok(Answer::page(
            views::recovery(req.lang, &csrf, None),
            Label::SecondFactor,
        )),
        (ChallengePage::Recovery, true, StageKind::Verify) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let code = forms::field(&form, "code");
            let used = match use_recovery_code(auth, req, &user, code).await {
                Ok(used) => used,
                Err(e) => {
                    // Not checked (the hashing queue is full, say): not a failure.
                    auth.refund(&req.config.lockout, &user, req.client, charged)
                        .await?;
                    return Err(e);
                }
            };
            match used {
                Some(left) => {
                    passed(auth, req, &user, charged).await?;
                    note(auth, req, &user, AuditKind::RecoveryCodeUsed, "ok").await;
                    auth.notify(
                        req.config,
                        &user,
                        t.notice_recovery_subject,
                        t.notice_recovery_body,
                    )
                    .await;
                    tracing::info!(user = %user, codes_left = left, "recovery code used");
                    lock(&challenge).stage = Stage::Passed {
                        method: SignInMethod::Recovery,
                        new_codes: None,
                        codes_left: Some(left),
                    };
                    passed_here(auth, &challenge, req, &id).await
                }
                None => {
                    note(auth, req, &user, AuditKind::SecondFactorFailed, "refused").await;
                    Ok(Answer::page(
                        views::recovery(req.lang, &csrf, Some(t.wrong_code)),
                        Label::SecondFactor,
                    ))
                }
            }
        }
        (ChallengePage::EmailSend | ChallengePage::SmsSend, true, StageKind::Verify) => {
            let channel = channel_of(page);
            // Fallbacks stand beside an app, never beside a key: a text or a
            // mailbox would undo what makes a key phishing-resistant.
            let has_app = !auth.store.totp_devices(&user).await?.is_empty();
            let Some(address) = offered_address(auth, req, &challenge, &user, channel, has_app).await? else {
                return Ok(Answer::to(
                    Route::Challenge(ChallengePage::Verify),
                    Label::SecondFactor,
                ));
            };
            if resend_too_soon(&challenge, req, channel) {
                return Ok(sent_code_page(req, &csrf, channel, &address, Some(t.email_wait)));
            }
            let Some(code) = send_code(auth, req, &user, channel, &address).await else {
                return verify_page(auth, req, &challenge, &csrf, Some(t.email_failed)).await;
            };
            *lock(&challenge).sent_code_mut(channel) = Some(code);
            let sent = match channel {
                Channel::Email => AuditKind::EmailCodeSent,
                Channel::TextMessage => AuditKind::SmsCodeSent,
            };
            note(auth, req, &user, sent, "ok").await;
            let page = match channel {
                Channel::Email => ChallengePage::Email,
                Channel::TextMessage => ChallengePage::Sms,
            };
            Ok(Answer::to(Route::Challenge(page), Label::SecondFactor))
        }
        (ChallengePage::Email | ChallengePage::Sms, false, StageKind::Verify) => {
            let channel = channel_of(page);
            let sent = lock(&challenge).sent_code_mut(channel).is_some();
            match address_of(auth, req, &user, channel).await? {
                Some(address) if sent => Ok(sent_code_page(req, &csrf, channel, &address, None)),
                _ => Ok(Answer::to(
                    Route::Challenge(ChallengePage::Verify),
                    Label::SecondFactor,
                )),
            }
        }
        (ChallengePage::Email | ChallengePage::Sms, true, StageKind::Verify) => {
            let channel = channel_of(page);
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let typed = forms::field(&form, "code");
            if use_sent_code(&challenge, channel, typed, req.now) {
                passed(auth, req, &user, charged).await?;
                note(auth, req, &user, AuditKind::SecondFactorOk, "ok").await;
                let method = match channel {
                    Channel::Email => SignInMethod::Email,
                    Channel::TextMessage => SignInMethod::Sms,
                };
                pass(&challenge, method, wants_remembering(req, &form));
                return complete(auth, req, &id, &challenge).await;
            }
            note(auth, req, &user, AuditKind::SecondFactorFailed, "refused").await;
            let address = address_of(auth, req, &user, channel).await?.unwrap_or_default();
            Ok(sent_code_page(req, &csrf, channel, &address, Some(t.wrong_code)))
        }
        (ChallengePage::Key, false, StageKind::Verify) => {
            key_sign_in_page(auth, req, &id, &user, &csrf, None).await
        }
        (ChallengePage::Key, true, StageKind::Verify) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let keys = keys_here(auth, req, &user).await?;
            let used = match key_site(req) {
                Some(site) => {
                    auth.security_keys
                        .finish_authentication(
                            &site,
                            id.as_bytes(),
                            &user,
                            forms::field(&form, "credential"),
                            &keys,
                            req.now,
                        )
                        .await
                }
                None => Err(KeyError::Gone),
            };
            match used {
                Ok(used) => {
                    // Another use of this key was recorded since this one was
                    // checked (the same counter twice: a cloned key, or a race).
                    let recorded = auth
                        .store
                        .security_key_used(&user, used.id, &used.previous, used.credential, req.now)
                        .await?;
                    if !recorded {
                        tracing::warn!(user = %user, key = used.id, "a security key's use raced another; refused");
                        note(
                            auth,
                            req,
                            &user,
                            AuditKind::SecondFactorFailed,
                            "security_key_counter",
                        )
                        .await;
                        return key_sign_in_page(auth, req, &id, &user, &csrf, Some(t.key_refused)).await;
                    }
                    passed(auth, req, &user, charged).await?;
                    note(auth, req, &user, AuditKind::SecondFactorOk, "security_key").await;
                    pass(
                        &challenge,
                        SignInMethod::SecurityKey,
                        wants_remembering(req, &form),
                    );
                    complete(auth, req, &id, &challenge).await
                }
                Err(KeyError::Store(e)) => Err(e),
                Err(e) => {
                    tracing::info!(user = %user, error = %e, "a security key was refused");
                    note(auth, req, &user, AuditKind::SecondFactorFailed, "security_key").await;
                    key_sign_in_page(auth, req, &id, &user, &csrf, Some(t.key_refused)).await
                }
            }
        }
        (ChallengePage::EnrolKey, false, StageKind::Enrol) => {
            key_enrol_page(auth, req, &id, &user, &csrf, None).await
        }
        (ChallengePage::EnrolKey, true, StageKind::Enrol) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            let registered = match key_site(req).filter(|_| req.config.second_factor.security_keys) {
                Some(site) => auth
                    .security_keys
                    .finish_registration(
                        &site,
                        id.as_bytes(),
                        &user,
                        forms::field(&form, "credential"),
                        req.now,
                    )
                    .await
                    .map(|registered| (site, registered)),
                None => Err(KeyError::Gone),
            };
            let (site, (name, registered)) = match registered {
                Ok(done) => done,
                Err(KeyError::Store(e)) => return Err(e),
                Err(e) => {
                    tracing::info!(user = %user, error = %e, "a security key was not registered");
                    note(auth, req, &user, AuditKind::SecondFactorFailed, "security_key").await;
                    return key_enrol_page(auth, req, &id, &user, &csrf, Some(t.key_refused)).await;
                }
            };
            let record = SecurityKeyRecord {
                id: 0,
                user: user.clone(),
                name,
                credential_id: registered.credential_id,
                rp_id: site.id,
                credential: registered.credential,
                created_at: req.now,
                last_used_at: None,
            };
            match auth.store.add_security_key(&record, 1).await? {
                DeviceAdded::Added(_) => {}
                DeviceAdded::CredentialTaken => {
                    auth.refund(&req.config.lockout, &user, req.client, charged)
                        .await?;
                    return key_enrol_page(auth, req, &id, &user, &csrf, Some(t.key_taken)).await;
                }
                DeviceAdded::LimitReached | DeviceAdded::NameTaken => {
                    // Another sign-in of this user enrolled a device meanwhile.
                    auth.refund(&req.config.lockout, &user, req.client, charged)
                        .await?;
                    lock(&challenge).stage = Stage::Verify;
                    return Ok(Answer::to(
                        Route::Challenge(ChallengePage::Verify),
                        Label::SecondFactor,
                    ));
                }
            }
            let codes = new_recovery_codes(auth, req, &user).await?;
            passed(auth, req, &user, charged).await?;
            note(auth, req, &user, AuditKind::KeyAdded, "ok").await;
            auth.notify(req.config, &user, t.notice_device_subject, t.notice_device_body)
                .await;
            tracing::info!(user = %user, app = %req.app.name, "security key enrolled");
            lock(&challenge).stage = Stage::Passed {
                method: SignInMethod::SecurityKey,
                new_codes: Some(codes),
                codes_left: None,
            };
            passed_here(auth, &challenge, req, &id).await
        }
        (ChallengePage::Unusual, false, StageKind::Unusual) => {
            let Some(address) = auth.email_address(req.config, &user).await else {
                return Ok(expired(req));
            };
            // The code goes out when the page is first shown; again only on asking.
            let sent = lock(&challenge).email_code.is_some();
            if !sent {
                let Some(code) = send_code(auth, req, &user, Channel::Email, &address).await else {
                    return Ok(unusual_page(req, &csrf, &address, Some(t.email_failed)));
                };
                lock(&challenge).email_code = Some(code);
                note(auth, req, &user, AuditKind::EmailCodeSent, "unusual_sign_in").await;
            }
            Ok(unusual_page(req, &csrf, &address, None))
        }
        (ChallengePage::UnusualSend, true, StageKind::Unusual) => {
            let Some(address) = auth.email_address(req.config, &user).await else {
                return Ok(expired(req));
            };
            if resend_too_soon(&challenge, req, Channel::Email) {
                return Ok(unusual_page(req, &csrf, &address, Some(t.email_wait)));
            }
            let Some(code) = send_code(auth, req, &user, Channel::Email, &address).await else {
                return Ok(unusual_page(req, &csrf, &address, Some(t.email_failed)));
            };
            lock(&challenge).email_code = Some(code);
            note(auth, req, &user, AuditKind::EmailCodeSent, "unusual_sign_in").await;
            Ok(Answer::to(
                Route::Challenge(ChallengePage::Unusual),
                Label::SecondFactor,
            ))
        }
        (ChallengePage::Unusual, true, StageKind::Unusual) => {
            let charged = match charge(auth, req, &user).await? {
                Ok(charged) => charged,
                Err(locked) => return Ok(locked),
            };
            if !use_sent_code(&challenge, Channel::Email, forms::field(&form, "code"), req.now) {
                note(auth, req, &user, AuditKind::SecondFactorFailed, "unusual_sign_in").await;
                let address = auth.email_address(req.config, &user).await.unwrap_or_default();
                return Ok(unusual_page(req, &csrf, &address, Some(t.wrong_code)));
            }
            passed(auth, req, &user, charged).await?;
            note(auth, req, &user, AuditKind::LoginOk, "unusual_sign_in_confirmed").await;
            let (signals, then_enrol) = match &lock(&challenge).stage {
                Stage::Unusual { signals, then_enrol } => (Some(signals.clone()), *then_enrol),
                _ => (None, false),
            };
            // Confirmed: this browser and network are the user's from now on.
            let browser = auth
                .remember_sign_in(req.config, &user, signals.as_ref(), req.secure, req.now)
                .await?;
            let answer = if then_enrol || first_device_asked(auth, req, &user).await? {
                if has_device(auth, &user).await? {
                    // A device was enrolled meanwhile (elsewhere): it is asked for.
                    lock(&challenge).stage = Stage::Verify;
                    Answer::to(Route::Challenge(ChallengePage::Verify), Label::SecondFactor)
                } else if enrolment_allowed(auth, req.config, &user, req.client, req.now).await {
                    // A first device, from a place now confirmed as the user's.
                    lock(&challenge).stage = Stage::Enrol(TotpSecret::generate());
                    Answer::to(Route::Challenge(ChallengePage::Enrol), Label::SecondFactor)
                } else {
                    Answer::to(Route::EnrolmentClosed, Label::EnrolmentClosed)
                }
            } else {
                // The session is a password session, as the app's rule asks no more.
                pass(&challenge, SignInMethod::Password, false);
                complete(auth, req, &id, &challenge).await?
            };
            Ok(match browser {
                Some(cookie) => answer.with_cookie(&cookie),
                None => answer,
            })
        }
        (ChallengePage::Continue, true, StageKind::Passed) => complete(auth, req, &id, &challenge).await,
        (ChallengePage::RecoveryCodesFile | ChallengePage::RecoveryCodesPrint, false, StageKind::Passed) => {
            let c = lock(&challenge);
            let Stage::Passed {
                new_codes: Some(codes),
                ..
            } = &c.stage
            else {
                return Ok(expired(req));
            };
            let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            let issuer = &req.config.second_factor.issuer;
            let mut answer = if page == ChallengePage::RecoveryCodesFile {
                let mut a = Answer::page(views::codes_file(issuer, &user, &codes), Label::SecondFactor);
                a.push_header(
                    http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"recovery-codes.txt\"",
                );
                a
            } else {
                Answer::page(
                    views::print_codes(req.lang, issuer, &user, &codes),
                    Label::SecondFactor,
                )
            };
            answer.label = Label::SecondFactor;
            Ok(answer)
        }
        // The right page for the stage the challenge is at.
        (_, _, StageKind::Enrol) => Ok(Answer::to(
            Route::Challenge(ChallengePage::Enrol),
            Label::SecondFactor,
        )),
        (_, _, StageKind::Verify) => Ok(Answer::to(
            Route::Challenge(ChallengePage::Verify),
            Label::SecondFactor,
        )),
        (_, _, StageKind::Passed) => Ok(passed_page(&challenge, req)),
        (_, _, StageKind::Unusual) => Ok(Answer::to(
            Route::Challenge(ChallengePage::Unusual),
            Label::SecondFactor,
        )),
    }
}

/// A first enrolment whose user meanwhile has a device (enrolled in another tab or
/// browser) becomes a verification: the user signs in with that device.
async fn enrolled_meanwhile(
    auth: &Services,
    challenge: &SharedChallenge,
    user: &str,
) -> Result<Option<Answer>, StoreError> {
    let first_enrolment = {
        let c = lock(challenge);
        matches!(c.stage, Stage::Enrol(_)) && !c.adding_device
    };
    if !first_enrolment || !has_device(auth, user).await? {
        return Ok(None);
    }
    lock(challenge).stage = Stage::Verify;
    Ok(Some(Answer::to(
        Route::Challenge(ChallengePage::Verify),
        Label::SecondFactor,
    )))
}

#[derive(Clone, Copy)]
enum StageKind {
    Enrol,
    Verify,
    Passed,
    Unusual,
}

impl StageKind {
    fn of(challenge: &SharedChallenge) -> StageKind {
        match lock(challenge).stage {
            Stage::Enrol(_) => StageKind::Enrol,
            Stage::Verify => StageKind::Verify,
            Stage::Passed { .. } => StageKind::Passed,
            Stage::Unusual { .. } => StageKind::Unusual,
        }
    }
}

/// The challenge's lock is only ever held for a few field reads or writes, never
/// across an await, so a poisoned lock still guards consistent data.
fn lock(challenge: &SharedChallenge) -> std::sync::MutexGuard<'_, crate::auth::challenge::Challenge> {
    challenge
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn enrol_page(
    auth: &Services,
    challenge: &SharedChallenge,
    req: &Request<'_>,
    user: &str,
    csrf: &str,
    error: Option<&str>,
) -> Result<Answer, StoreError> {
    let email_offer = enrol_email_offer(auth, req, user).await?;
    let secret = match &lock(challenge).stage {
        Stage::Enrol(secret) => secret.clone(),
        _ => return Ok(expired(req)),
    };
    let settings = &req.config.second_factor;
    let uri = totp::otpauth_uri(&secret, &settings.totp, &settings.issuer, user);
    let grouped = secret.grouped_base32();
    let page = views::enrol(
        req.lang,
        &views::Enrolment {
            otpauth: &uri,
            secret: &grouped,
            issuer: &settings.issuer,
            account: user,
            csrf,
            error,
            email_offer,
            key_offer: settings.security_keys && !lock(challenge).adding_device,
        },
    );
    Ok(Answer::page(page, Label::SecondFactor))
}

fn passed_page(challenge: &SharedChallenge, req: &Request<'_>) -> Answer {
    let c = lock(challenge);
    let Stage::Passed {
        new_codes,
        codes_left,
        ..
    } = &c.stage
    else {
        return expired(req);
    };
    let codes: Option<Vec<&str>> = new_codes
        .as_ref()
        .map(|codes| codes.iter().map(|c| c.as_str()).collect());
    Answer::page(
        views::passed(req.lang, &c.csrf, codes.as_deref(), *codes_left),
        Label::SecondFactor,
    )
}

/// The page after a factor passed, for a challenge that waits for Continue (new
/// recovery codes to read, or how many are left). The challenge moves to a new id
/// and form token that only this browser gets: a copy of the old cookie, planted in
/// this browser or kept by whoever began the sign-in with the password, cannot
/// collect the release.
async fn passed_here(
    auth: &Services,
    challenge: &SharedChallenge,
    req: &Request<'_>,
    id: &str,
) -> Result<Answer, StoreError> {
    let Some(passing_form) = submitted_form(req) else {
        return Ok(expired(req));
    };
    Ok(
        match auth
            .challenges
            .rekey(id, challenge, passing_form, req.now)
            .await?
        {
            Some(new_id) => passed_page(challenge, req).with_cookie(&set_challenge_cookie(
                &new_id,
                req.secure,
                req.config.session.login_timeout,
            )),
            None => expired(req),
        },
    )
}

/// The fingerprint of a POST's form: its page, token and code.
fn submitted_form(req: &Request<'_>) -> Option<[u8; 32]> {
    let form = forms::read(req)?;
    let field = |name| forms::field(&form, name);
    Some(form_fingerprint(req.route.path(), field("csrf"), field("code")))
}

/// The same form that passed a challenge, sent again from the same browser (a
/// double click, or a reload of the page it led to): that page again, on the
/// challenge's new id. Anyone else holding the old id gets nothing from it.
async fn resubmission(
    auth: &Services,
    req: &Request<'_>,
    page: ChallengePage,
) -> Result<Option<Answer>, StoreError> {
    if !req.is_post() || page == ChallengePage::Continue {
        return Ok(None);
    }
    let (Some(old_id), Some(form)) = (req.cookie(challenge_cookie_name(req.secure)), submitted_form(req))
    else {
        return Ok(None);
    };
    let Some((new_id, challenge)) = auth.challenges.passed_and_moved(old_id, req.now).await? else {
        return Ok(None);
    };
    // The form carries a code: each try counts like one. Whoever began this
    // sign-in with the password (and planted its cookie) holds the old id and
    // token, and could otherwise guess the code its user typed without limit.
    let user = lock(&challenge).user.clone();
    let charged = match charge(auth, req, &user).await? {
        Ok(charged) => charged,
        Err(locked) => return Ok(Some(locked)),
    };
    if !lock(&challenge).passed_by(form) {
        note(auth, req, &user, AuditKind::SecondFactorFailed, "refused").await;
        return Ok(None);
    }
    auth.refund(&req.config.lockout, &user, req.client, charged)
        .await?;
    let cookie = set_challenge_cookie(&new_id, req.secure, req.config.session.login_timeout);
    Ok(Some(passed_page(&challenge, req).with_cookie(&cookie)))
}

/// Adding a device was refused when it was to be stored; back to the security info.
fn device_refused(req: &Request<'_>, challenge: &SharedChallenge, why: &str) -> Answer {
    let t = texts(req.lang);
    let back = match &lock(challenge).purpose {
        Purpose::Return(path) => super::return_path::safe_return_path(path).to_owned(),
        Purpose::Login { .. } | Purpose::ScriptLogin { .. } | Purpose::Resume { .. } => "/".to_owned(),
    };
    let page = views::message(
        StatusCode::UNPROCESSABLE_ENTITY,
        req.lang,
        t.add_device_button,
        why,
        Some((&back, t.back_to_account)),
    );
    Answer::page(page, Label::Account).with_cookie(&clear_challenge_cookie(req.secure))
}

/// The page for a challenge that is gone: expired, used, or never made.
fn expired(req: &Request<'_>) -> Answer {
    let t = texts(req.lang);
    let login = req.app.sign_in_page().unwrap_or("/");
    let page = views::message(
        StatusCode::BAD_REQUEST,
        req.lang,
        t.expired_title,
        t.expired_text,
        Some((login, t.sign_in_again)),
    );
    Answer::page(page, Label::ChallengeExpired).with_cookie(&clear_challenge_cookie(req.secure))
}

/// Counts this attempt at a code before it is checked; the "too many attempts"
/// page instead when the user or the address is locked.
pub(crate) async fn charge(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
) -> Result<Result<Charged, Answer>, StoreError> {
    match auth
        .attempt(&req.config.lockout, user, req.client, req.now)
        .await?
    {
        Attempt::Charged(charged) => Ok(Ok(charged)),
        Attempt::Locked(_) => {
            note(auth, req, user, AuditKind::LockedOut, "refused").await;
            let t = texts(req.lang);
            let page = views::message(
                StatusCode::TOO_MANY_REQUESTS,
                req.lang,
                t.verify_title,
                t.locked,
                None,
            );
            Ok(Err(Answer::page(page, Label::Locked)))
        }
    }
}

/// The charged attempt was a right code.
pub(crate) async fn passed(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    charged: Charged,
) -> Result<(), StoreError> {
    auth.second_factor_passed(&req.config.lockout, user, req.client, charged)
        .await
}

/// The verification page, with every way this user has: their app's code, a
/// recovery code, and an e-mailed code where allowed.
async fn verify_page(
    auth: &Services,
    req: &Request<'_>,
    challenge: &SharedChallenge,
    csrf: &str,
    error: Option<&str>,
) -> Result<Answer, StoreError> {
    let (user, form_kept) = {
        let c = lock(challenge);
        (c.user.clone(), matches!(c.purpose, Purpose::Resume { .. }))
    };
    let has_app = !auth.store.totp_devices(&user).await?.is_empty();
    // Keys work on the host they were registered on.
    let key = req.config.second_factor.security_keys && !keys_here(auth, req, &user).await?.is_empty();
    // Fallbacks stand beside an app, never beside a key: a text or a mailbox
    // would undo what makes a key phishing-resistant.
    let email_to = email_offer(auth, req, &user, has_app)
        .await
        .map(|a| email::mask(&a));
    let email_first =
        email_to.is_some() && auth.store.preferred_method(&user).await? == Some(PreferredMethod::Email);
    let sms_to = sms_offer(auth, req, challenge, &user, has_app)
        .await?
        .map(|n| phone::mask(&n));
    let offer = views::VerifyOffer {
        has_app,
        email_to: email_to.as_deref(),
        email_first,
        remember_days: remember_days(req),
        form_kept,
        sms_to: sms_to.as_deref(),
        key,
    };
    let page = views::verify(req.lang, csrf, error, &offer);
    Ok(Answer::page(page, Label::SecondFactor))
}

/// Marks a challenge passed by a code typed on the verification page.
fn pass(challenge: &SharedChallenge, method: SignInMethod, remember_browser: bool) {
    let mut c = lock(challenge);
    c.stage = Stage::Passed {
        method,
        new_codes: None,
        codes_left: None,
    };
    c.remember_browser = remember_browser;
}

/// Where to type the code sent to an address given while enrolling (shown masked).
fn confirm_address_page(req: &Request<'_>, csrf: &str, address: &str, error: Option<&str>) -> Answer {
    let page = views::confirm_address(
        req.lang,
        csrf,
        Channel::Email,
        &email::mask(address),
        error,
        Route::Challenge(ChallengePage::EnrolEmailConfirm).path(),
    );
    Answer::page(page, Label::SecondFactor)
}

/// Whether `user` may enrol a first device from `client` now (the deployment's
/// `second_factor.enrolment`).
async fn enrolment_allowed(
    auth: &Services,
    config: &Config,
    user: &str,
    client: IpAddr,
    now: SystemTime,
) -> bool {
    match &config.second_factor.enrolment {
        Enrolment::Open => true,
        Enrolment::FromNetworks(networks) => networks.iter().any(|n| n.contains(&client)),
        Enrolment::AdminOpened => match auth.store.enrolment_open_until(user).await {
            Ok(until) => until.is_some_and(|until| until > now),
            Err(e) => {
                tracing::error!(error = %e, user = %user, "could not read whether enrolment is open");
                false
            }
        },
    }
}

/// Whether this app asks `user` for a second factor at sign-in and they have no
/// device yet (they enrol a first one).
async fn first_device_asked(auth: &Services, req: &Request<'_>, user: &str) -> Result<bool, StoreError> {
    let identity = crate::policy::Authentication {
        user: user.to_owned(),
        groups: req.config.users.groups(user),
        second_factor_at: None,
        mfa_opted_in: auth.opted_in(user).await,
        signed_in_at: req.now,
    };
    Ok(req.app.policy.second_factor_at_sign_in(&identity) && !has_device(auth, user).await?)
}

/// Where to type the code that confirms an unusual sign-in.
fn unusual_page(req: &Request<'_>, csrf: &str, address: &str, error: Option<&str>) -> Answer {
    let page = views::unusual_sign_in(req.lang, csrf, &email::mask(address), error);
    Answer::page(page, Label::SecondFactor)
}

/// Starts the confirmation of a sign-in that looks unusual (no second factor is
/// asked of `user` here): the app's answer is withheld until the code e-mailed to
/// the user comes back.
#[allow(clippy::too_many_arguments)]
pub async fn begin_unusual(
    auth: &Services,
    config: &Config,
    app: &App,
    user: &str,
    purpose: Purpose,
    signals: crate::auth::unusual::Signals,
    secure: bool,
    now: SystemTime,
) -> (Answer, Option<SharedChallenge>) {
    let stage = Stage::Unusual {
        signals,
        then_enrol: false,
    };
    let made = auth
        .challenges
        .insert(Challenge::new(user, &app.name, purpose, stage, now))
        .await;
    match made {
        Ok((id, challenge)) => (
            Answer::redirect(
                Route::Challenge(ChallengePage::Unusual).path(),
                Label::SecondFactor,
            )
            .with_cookie(&set_challenge_cookie(&id, secure, config.session.login_timeout)),
            Some(challenge),
        ),
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not store a challenge");
            (Answer::to(Route::Unavailable, Label::Error), None)
        }
    }
}

/// Where to type a code sent over `channel` (the address shown masked).
fn sent_code_page(
    req: &Request<'_>,
    csrf: &str,
    channel: Channel,
    address: &str,
    error: Option<&str>,
) -> Answer {
    let page = views::sent_code(
        req.lang,
        csrf,
        channel,
        &mask(channel, address),
        error,
        remember_days(req),
    );
    Answer::page(page, Label::SecondFactor)
}

/// An address or number as the pages show it.
pub(crate) fn mask(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Email => email::mask(address),
        Channel::TextMessage => phone::mask(address),
    }
}

/// The channel a code page is about.
fn channel_of(page: ChallengePage) -> Channel {
    match page {
        ChallengePage::Sms | ChallengePage::SmsSend => Channel::TextMessage,
        _ => Channel::Email,
    }
}

/// Where the user's codes go over `channel`: their address, or their number.
async fn address_of(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    channel: Channel,
) -> Result<Option<String>, StoreError> {
    Ok(match channel {
        Channel::Email => auth.email_address(req.config, user).await,
        Channel::TextMessage => auth.store.phone_number(user).await?,
    })
}

/// Where to offer a code over `channel` on the verification page, if anywhere.
async fn offered_address(
    auth: &Services,
    req: &Request<'_>,
    challenge: &SharedChallenge,
    user: &str,
    channel: Channel,
    has_app: bool,
) -> Result<Option<String>, StoreError> {
    Ok(match channel {
        Channel::Email => email_offer(auth, req, user, has_app).await,
        Channel::TextMessage => sms_offer(auth, req, challenge, user, has_app).await?,
    })
}

/// How many days "don't ask again in this browser" lasts, if it is offered at all.
fn remember_days(req: &Request<'_>) -> Option<u64> {
    req.config
        .second_factor
        .remember_device
        .map(|lifetime| lifetime.as_secs() / (24 * 3600))
}

/// Whether the user ticked "don't ask again" where the deployment offers it.
fn wants_remembering(req: &Request<'_>, form: &[(String, String)]) -> bool {
    req.config.second_factor.remember_device.is_some() && forms::value(form, "remember") == Some("on")
}

/// Makes a code and sends it to `to` over `channel`, in the page's language.
/// `None` when the channel is not set up or the message could not go out (the
/// log says why).
pub(crate) async fn send_code(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    channel: Channel,
    to: &str,
) -> Option<SentCode> {
    match channel {
        Channel::Email => mail_code(auth, req, user, to).await,
        Channel::TextMessage => text_code(auth, req, user, to).await,
    }
}

async fn mail_code(auth: &Services, req: &Request<'_>, user: &str, address: &str) -> Option<SentCode> {
    let (Some(settings), Some(mailer)) = (req.config.email.as_ref(), auth.mailer.as_ref()) else {
        return None;
    };
    if !within_budget(
        auth,
        Channel::Email,
        settings.max_per_hour,
        user,
        address,
        req.now,
    )
    .await
    {
        return None;
    }
    let t = texts(req.lang);
    let code = SentCode::new(settings.code_digits, req.now, settings.code_lifetime);
    let body = format!("{} {}\n\n{}\n", t.email_body, code.text(), t.email_body_after);
    match mailer.send(address, t.email_subject, &body).await {
        Ok(()) => Some(code),
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not send an e-mail code");
            None
        }
    }
}

async fn text_code(auth: &Services, req: &Request<'_>, user: &str, number: &str) -> Option<SentCode> {
    let settings = req.config.sms.as_ref()?;
    if !phone::allowed(number, &settings.countries) {
        tracing::warn!(user = %user, "a text to a number outside sms.countries was not sent");
        return None;
    }
    if !within_budget(
        auth,
        Channel::TextMessage,
        settings.max_per_hour,
        user,
        number,
        req.now,
    )
    .await
    {
        return None;
    }
    let t = texts(req.lang);
    let code = SentCode::new(settings.code_digits, req.now, settings.code_lifetime);
    let message = format!(
        "{}: {} {}",
        req.config.second_factor.issuer,
        t.sms_text,
        code.text()
    );
    let text = TextMessage {
        to: number,
        message: &message,
        code: code.text(),
    };
    match auth.sms.send(settings, &text).await {
        Ok(()) => Some(code),
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not send a code by text message");
            None
        }
    }
}

/// Whether a code may still go over `channel` to `to` for `user` this hour
/// (counted now, before it is sent); a spent budget is logged.
async fn within_budget(
    auth: &Services,
    channel: Channel,
    per_hour: u32,
    user: &str,
    to: &str,
    now: SystemTime,
) -> bool {
    match auth.charge_sent_code(channel, per_hour, user, to, now).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(user = %user, channel = ?channel, "the user's or the address's code budget is spent (max_per_hour); not sent");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not count a code to send; not sent");
            false
        }
    }
}

/// Whether `typed` is the code sent over `channel` for this challenge; single
/// use: the code is gone the moment it works.
fn use_sent_code(challenge: &SharedChallenge, channel: Channel, typed: &str, now: SystemTime) -> bool {
    let mut c = lock(challenge);
    let slot = c.sent_code_mut(channel);
    let matched = slot.as_ref().is_some_and(|sent| sent.matches(typed, now));
    if matched {
        *slot = None;
    }
    matched
}

/// How long after one code another may be sent over `channel`.
pub(crate) fn resend_after(config: &Config, channel: Channel) -> Option<std::time::Duration> {
    match channel {
        Channel::Email => config.email.as_ref().map(|e| e.resend_after),
        Channel::TextMessage => config.sms.as_ref().map(|s| s.resend_after),
    }
}

/// Whether a code was sent over `channel` for this challenge too recently to
/// send another.
fn resend_too_soon(challenge: &SharedChallenge, req: &Request<'_>, channel: Channel) -> bool {
    let Some(cool_down) = resend_after(req.config, channel) else {
        return false;
    };
    lock(challenge)
        .sent_code_mut(channel)
        .as_ref()
        .is_some_and(|sent| !sent.may_resend(req.now, cool_down))
}

/// Whether the enrolment page offers to give an e-mail address for codes: on a
/// first enrolment, where e-mailed codes are used and the user has no address yet.
/// `Some(true)`: instead of an app (they may stand alone); `Some(false)`: beside it.
async fn enrol_email_offer(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
) -> Result<Option<bool>, StoreError> {
    let email_use = req.config.second_factor.email;
    if email_use == EmailUse::Off || auth.mailer.is_none() || req.config.email.is_none() {
        return Ok(None);
    }
    if has_device(auth, user).await? || auth.email_address(req.config, user).await.is_some() {
        return Ok(None);
    }
    Ok(Some(email_use == EmailUse::SecondFactor))
}

/// The address to offer an e-mailed code to, if the deployment allows it here.
pub(crate) async fn email_offer(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    has_app: bool,
) -> Option<String> {
    let allowed = match req.config.second_factor.email {
        EmailUse::Off => false,
        EmailUse::Fallback => has_app,
        EmailUse::SecondFactor => true,
    };
    if !allowed {
        return None;
    }
    auth.email_address(req.config, user).await
}

/// The number to offer a code by text message to, if the deployment allows it
/// here: beside an authenticator app only (the weakest way in never stands
/// alone), and never to change the security info or to administer (a swapped SIM
/// and a password must not add the thief's device).
pub(crate) async fn sms_offer(
    auth: &Services,
    req: &Request<'_>,
    challenge: &SharedChallenge,
    user: &str,
    has_app: bool,
) -> Result<Option<String>, StoreError> {
    let for_gateway_pages =
        matches!(&lock(challenge).purpose, Purpose::Return(path) if route::is_gateway_path(path));
    if req.config.second_factor.sms == SmsUse::Off
        || req.config.sms.is_none()
        || !has_app
        || for_gateway_pages
    {
        return Ok(None);
    }
    auth.store.phone_number(user).await
}

/// The relying party security keys are registered for and used on: this host.
pub(crate) fn key_site(req: &Request<'_>) -> Option<RelyingParty> {
    RelyingParty::of(req.host, req.secure, &req.config.second_factor.issuer)
}

/// The user's security keys registered on this host.
pub(crate) async fn keys_here(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
) -> Result<Vec<SecurityKeyRecord>, StoreError> {
    let Some(site) = key_site(req) else {
        return Ok(Vec::new());
    };
    let mut keys = auth.store.security_keys(user).await?;
    keys.retain(|k| k.rp_id == site.id);
    Ok(keys)
}

/// A sign-in with a security key: the page that runs it, its ceremony begun.
async fn key_sign_in_page(
    auth: &Services,
    req: &Request<'_>,
    challenge_id: &str,
    user: &str,
    csrf: &str,
    error: Option<&str>,
) -> Result<Answer, StoreError> {
    let keys = keys_here(auth, req, user).await?;
    let Some(site) = key_site(req).filter(|_| req.config.second_factor.security_keys && !keys.is_empty())
    else {
        return Ok(Answer::to(
            Route::Challenge(ChallengePage::Verify),
            Label::SecondFactor,
        ));
    };
    let begun = auth
        .security_keys
        .begin_authentication(&site, challenge_id.as_bytes(), user, &keys, req.now)
        .await;
    let page = views::KeyCeremony {
        registering: false,
        csrf,
        action: Route::Challenge(ChallengePage::Key).path(),
        back: Route::Challenge(ChallengePage::Verify).path(),
        back_text: texts(req.lang).other_way,
        error,
    };
    show_ceremony(req, user, begun, &page, Label::SecondFactor)
}

/// A first device that is a security key: the page that registers it.
async fn key_enrol_page(
    auth: &Services,
    req: &Request<'_>,
    challenge_id: &str,
    user: &str,
    csrf: &str,
    error: Option<&str>,
) -> Result<Answer, StoreError> {
    let t = texts(req.lang);
    let Some(site) = key_site(req).filter(|_| req.config.second_factor.security_keys) else {
        return Ok(Answer::to(
            Route::Challenge(ChallengePage::Enrol),
            Label::SecondFactor,
        ));
    };
    let begun = auth
        .security_keys
        .begin_registration(
            &site,
            challenge_id.as_bytes(),
            user,
            t.key_name_default,
            &[],
            req.now,
        )
        .await;
    let page = views::KeyCeremony {
        registering: true,
        csrf,
        action: Route::Challenge(ChallengePage::EnrolKey).path(),
        back: Route::Challenge(ChallengePage::Enrol).path(),
        back_text: t.key_enrol_back,
        error,
    };
    show_ceremony(req, user, begun, &page, Label::SecondFactor)
}

/// The page of a security-key ceremony just begun; one that could not begin
/// sends the browser back where it came from (the log says why).
pub(crate) fn show_ceremony(
    req: &Request<'_>,
    user: &str,
    begun: Result<String, KeyError>,
    page: &views::KeyCeremony<'_>,
    label: Label,
) -> Result<Answer, StoreError> {
    match begun {
        Ok(options) => Ok(Answer::page(views::security_key(req.lang, page, &options), label)),
        Err(KeyError::Store(e)) => Err(e),
        Err(e) => {
            tracing::error!(error = %e, user = %user, "could not begin a security-key ceremony");
            Ok(Answer::redirect(page.back, label))
        }
    }
}

/// Whether the user has a device: an authenticator app or a security key.
pub(crate) async fn has_device(auth: &Services, user: &str) -> Result<bool, StoreError> {
    Ok(!auth.store.totp_devices(user).await?.is_empty() || !auth.store.security_keys(user).await?.is_empty())
}

/// Writes an event about this user on this app to the audit trail.
pub(crate) async fn note(auth: &Services, req: &Request<'_>, user: &str, event: AuditKind, outcome: &str) {
    auth.audit(event, user, &req.app.name, req.client, outcome, req.now)
        .await;
}

/// Checks a code against each of the user's devices; true once a step is accepted
/// (and recorded as used) for one of them.
pub(crate) async fn check_totp(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    code: &str,
) -> Result<bool, StoreError> {
    let last = auth.store.last_totp_step(user).await?;
    for device in auth.store.totp_devices(user).await? {
        let context = TotpDevice::seal_context(user, &device.name);
        let secret = match auth.keys.open(&device.sealed_secret, &context) {
            Ok(bytes) => TotpSecret::from_bytes(bytes),
            Err(e) => {
                tracing::error!(user = %user, device = device.id, error = %e, "a device secret does not open");
                continue;
            }
        };
        match totp::verify(&secret, &req.config.second_factor.totp, code, unix(req.now), last) {
            Verification::Accepted { step } => {
                return auth.store.accept_totp_step(user, device.id, step, req.now).await;
            }
            Verification::Replayed => {
                tracing::warn!(user = %user, "a used code was offered again");
                note(auth, req, user, AuditKind::ReplayRejected, "refused").await;
                return Ok(false);
            }
            Verification::Rejected => {}
        }
    }
    Ok(false)
}

/// Makes, stores (as hashes) and returns a fresh set of recovery codes.
pub(super) async fn new_recovery_codes(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
) -> Result<Vec<recovery::RecoveryCode>, StoreError> {
    let codes = recovery::generate(req.config.second_factor.recovery_codes);
    let to_hash = codes.clone();
    let hashes = auth
        .hashing
        .run(move || to_hash.iter().map(recovery::hash).collect::<Result<Vec<_>, _>>())
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map_err(|e| StoreError::Task(format!("hashing a recovery code: {e}")))?;
    auth.store.replace_recovery_codes(user, hashes, req.now).await?;
    Ok(codes)
}

/// Uses a recovery code; returns how many are left, or `None` if it matched none.
async fn use_recovery_code(
    auth: &Services,
    req: &Request<'_>,
    user: &str,
    input: &str,
) -> Result<Option<usize>, StoreError> {
    let stored = auth.store.unused_recovery_codes(user).await?;
    let candidate = Zeroizing::new(input.to_owned());
    let phcs: Vec<(i64, String)> = stored.iter().map(|c| (c.id, c.phc.clone())).collect();
    let matched = auth
        .hashing
        .run(move || {
            phcs.into_iter()
                .find(|(_, phc)| recovery::matches(&candidate, phc))
                .map(|(id, _)| id)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
    let Some(id) = matched else { return Ok(None) };
    if !auth.store.use_recovery_code(user, id, req.now).await? {
        return Ok(None);
    }
    Ok(Some(stored.len().saturating_sub(1)))
}

/// Passes the challenge: starts the session, then releases what was waiting.
///
/// `challenge` is this request's copy (passed by it, or read passed); the stored
/// one is taken out, so that of requests racing to complete it one does.
async fn complete(
    auth: &Services,
    req: &Request<'_>,
    id: &str,
    challenge: &SharedChallenge,
) -> Result<Answer, StoreError> {
    // Before anything is used up: an answer the app is still sending waits (the
    // Continue button asks again), and one too long to hold is never released.
    let answer_id = lock(challenge).purpose.answer().map(str::to_owned);
    if let Some(answer_id) = &answer_id {
        match auth.challenges.answer(answer_id, req.now).await? {
            Some(withheld) if withheld.overflowed => {
                auth.challenges.take(id, req.now).await?;
                auth.challenges.take_answer(answer_id, req.now).await?;
                tracing::warn!("the app's login answer was too long to hold whole; not released");
                return Ok(expired(req));
            }
            Some(_) => {}
            None => {
                // The code was right but the app's answer is not all here: wait for
                // Continue, on a challenge only this browser can continue.
                if req.route == Route::Challenge(ChallengePage::Continue) {
                    return Ok(passed_page(challenge, req));
                }
                return passed_here(auth, challenge, req, id).await;
            }
        }
    }
    // Of requests racing to complete it, on any gateway, one takes the challenge,
    // and only that one takes the answer.
    if auth.challenges.take(id, req.now).await?.is_none() {
        return Ok(expired(req));
    }
    let (user, method, purpose, remember) = {
        let mut c = lock(challenge);
        let Stage::Passed { method, .. } = c.stage else {
            return Ok(expired(req));
        };
        let purpose = std::mem::replace(&mut c.purpose, Purpose::Return("/".to_owned()));
        (c.user.clone(), method, purpose, c.remember_browser)
    };
    // An admin reset since the factor was passed took away what it was passed
    // with: the reset wins, and the user enrols again.
    let has_a_factor = method == SignInMethod::Password
        || has_device(auth, &user).await?
        || (req.config.second_factor.email != EmailUse::Off
            && auth.email_address(req.config, &user).await.is_some());
    if !has_a_factor {
        tracing::warn!(user = %user, "a passed challenge of a user reset meanwhile; nothing released");
        return Ok(expired(req));
    }
    let withheld = match purpose.answer() {
        Some(answer) => match auth.challenges.take_answer(answer, req.now).await? {
            Some(withheld) => Some(withheld),
            None => return Ok(expired(req)),
        },
        None => None,
    };
    // A new session id at every authentication; a step-up retires the old one.
    if let Some(old) = &req.session_cookie {
        auth.sessions.end(old, req.secure).await?;
    }
    let issued = auth
        .sessions
        .start(&user, &req.app.name, method, req.now, req.secure)
        .await?;
    let session_cookie = cookies::set_session(&issued.cookie_value, req.secure);
    tracing::info!(user = %user, app = %req.app.name, method = method.as_str(), "second factor passed");
    let token_login = req.app.app_form().filter(|login| login.token.is_some());
    if let (Some(old), Some(_)) = (req.session.filter(|s| s.user == user), token_login) {
        // The app's tokens of the session this one renews go with it.
        auth.tokens
            .succeed(old.id_hash, issued.record.id_hash, req.now)
            .await?;
    }
    // A form login's answer goes out now: what in it works as the user's session
    // at the app goes with this session. (A script login's goes with its release.)
    if let (Purpose::Login { .. }, Some(withheld), Some(login)) = (&purpose, &withheld, token_login) {
        for credential in login.credentials_in(withheld.set_cookies(), &withheld.body, req.now) {
            auth.tokens
                .bind(&credential, issued.record.id_hash, req.now)
                .await?;
        }
    }
    let answer = match (purpose, withheld) {
        (Purpose::ScriptLogin { back, .. }, Some(withheld)) => {
            // The answer waits for the script's repeat of its call, in this
            // browser only: never through a page (nor the overlay's frame).
            auth.challenges
                .put_release(&issued.cookie_value, &withheld, req.now)
                .await?;
            if req.in_overlay() {
                Answer::to(Route::SignedIn, Label::Released)
            } else {
                Answer::redirect(super::return_path::safe_return_path(&back), Label::Released)
            }
        }
        (_, Some(withheld)) => Answer::released(withheld, Label::Released),
        (Purpose::Return(path), None) => {
            Answer::redirect(super::return_path::safe_return_path(&path), Label::StepUpPassed)
        }
        (Purpose::Resume { kept }, None) => {
            // The posted form goes with the new session, back to its page: the
            // browser's next visit there sends it (`proxy/kept.rs`).
            let from = req.session.filter(|s| s.user == user).map(|s| s.id_hash);
            let handed = match from {
                Some(from) => {
                    auth.kept_requests
                        .hand_over(&kept, from, &user, issued.record.id_hash, req.now)
                        .await?
                }
                None => None,
            };
            match handed {
                Some((id, target)) => {
                    Answer::redirect(super::return_path::safe_return_path(&target), Label::StepUpPassed)
                        .with_cookie(&cookies::set_kept_request(
                            &id,
                            req.secure,
                            auth.kept_requests.lifetime(),
                        ))
                }
                None => Answer::redirect("/", Label::StepUpPassed),
            }
        }
        (Purpose::Login { .. } | Purpose::ScriptLogin { .. }, None) => expired(req),
    };
    let mut answer = answer
        .with_cookie(&session_cookie)
        .with_cookie(&clear_challenge_cookie(req.secure));
    if let Some(lifetime) = req.config.second_factor.remember_device.filter(|_| remember) {
        let value = auth
            .sessions
            .remember(&user, req.now, req.now, lifetime, req.secure)
            .await?;
        answer = answer.with_cookie(&cookies::set_trust(&value, req.secure, lifetime));
        note(auth, req, &user, AuditKind::BrowserRemembered, "ok").await;
    }
    Ok(answer)
}
