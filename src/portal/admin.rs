//! The admin pages (`/.portvakt/admin`): find users, unlock them, open enrolment,
//! reset second factors (confirmed with the admin's own code), and read the audit
//! trail. Only admins named in the configuration, with a recent second factor, get
//! in; everyone else gets 403 on every admin URL and action.

use std::time::Duration;

use http::StatusCode;

use super::answer::{Answer, Label};
use super::route::{AdminPage, Route};
use super::views::{self, texts, ActivityRow, AdminUserRow};
use super::{challenge, forms, Request};
use crate::auth::challenge::Purpose;
use crate::auth::{Attempt, AuditKind, Services};
use crate::policy::Authentication;
use crate::store::{AuditEvent, AuditQuery, SessionRecord, StoreError, Subject};

const ADMIN_PAGE: Route = Route::Admin(AdminPage::Overview);
/// How recent an admin's second factor must be.
const FRESH_ENOUGH: Duration = Duration::from_secs(10 * 60);
/// How long an enrolment opened from the admin page stays open.
const ENROLMENT_WINDOW: Duration = Duration::from_secs(24 * 3600);

pub async fn serve(auth: &Services, req: &Request<'_>, page: AdminPage) -> Answer {
    if req.session_unknown {
        return req.unavailable();
    }
    let Some(account) = req.session else {
        return match req.app.sign_in_page() {
            Some(page) => Answer::redirect(page, Label::SignIn),
            None => denied(req),
        };
    };
    let identity = Authentication {
        user: account.user.clone(),
        groups: req.config.users.groups(&account.user),
        second_factor_at: account.second_factor_at,
        mfa_opted_in: account.mfa_opted_in,
        signed_in_at: account.created_at,
    };
    if !req.config.admins.admit(&identity) {
        tracing::warn!(user = %account.user, page = req.route.path(), "a non-admin tried an admin page");
        return denied(req);
    }
    // Not with a text message: a swapped SIM must not administer.
    if !account.second_factor_within(req.now, FRESH_ENOUGH)
        || account.method == crate::factors::SignInMethod::Sms
    {
        let purpose = Purpose::Return(ADMIN_PAGE.path().to_owned());
        let user = &account.user;
        let (answer, _) = challenge::begin(
            auth, req.config, req.app, user, purpose, req.client, req.secure, req.now,
        )
        .await;
        return answer;
    }
    match serve_admin(auth, req, page, account).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "admin page failed");
            req.unavailable()
        }
    }
}

fn denied(req: &Request<'_>) -> Answer {
    req.error(StatusCode::FORBIDDEN, views::ErrorKind::Denied, Label::Deny)
}

async fn serve_admin(
    auth: &Services,
    req: &Request<'_>,
    page: AdminPage,
    account: &SessionRecord,
) -> Result<Answer, StoreError> {
    let admin = account.user.as_str();
    let t = texts(req.lang);
    if !req.is_post() {
        let query = req.query_value("q").unwrap_or_default();
        return overview(auth, req, account, &query, None).await;
    }
    let Some(form) = forms::read_signed_in(auth, req, account) else {
        return Ok(req.refused_form());
    };
    let users: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "user")
        .map(|(_, v)| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    let csrf = auth.sessions.form_token(account);
    match page {
        AdminPage::Unlock => {
            for user in &users {
                auth.store.reset_failures(Subject::User(user)).await?;
                record(auth, req, admin, AuditKind::Unlocked, user).await;
            }
            overview(auth, req, account, "", Some(t.admin_done)).await
        }
        AdminPage::OpenEnrolment => {
            for user in &users {
                auth.store
                    .open_enrolment(user, req.now + ENROLMENT_WINDOW, req.now)
                    .await?;
                record(auth, req, admin, AuditKind::EnrolmentOpened, user).await;
            }
            overview(auth, req, account, "", Some(t.admin_done)).await
        }
        AdminPage::RemoveAppPassword => {
            let id = forms::field(&form, "id").parse::<i64>();
            if let (Some(user), Ok(id)) = (users.first(), id) {
                if auth.app_passwords.remove(user, id).await? {
                    record(auth, req, admin, AuditKind::AppPasswordRevoked, user).await;
                }
            }
            overview(auth, req, account, "", Some(t.admin_done)).await
        }
        AdminPage::Reset if !users.is_empty() => Ok(Answer::page(
            views::admin_confirm(req.lang, &users, &csrf, None),
            Label::Admin,
        )),
        AdminPage::ResetConfirm if !users.is_empty() => {
            // The admin's own code confirms a bulk reset, and counts like any other.
            let charged = match auth
                .attempt(&req.config.lockout, admin, req.client, req.now)
                .await?
            {
                Attempt::Charged(charged) => charged,
                Attempt::Locked(wait) => {
                    tracing::warn!(admin = %admin, seconds = wait.as_secs(), "admin locked out");
                    let page = views::admin_confirm(req.lang, &users, &csrf, Some(t.locked));
                    return Ok(Answer::page(page, Label::Locked));
                }
            };
            let code = forms::field(&form, "code");
            if !challenge::check_totp(auth, req, admin, code).await? {
                let page = views::admin_confirm(req.lang, &users, &csrf, Some(t.wrong_code));
                return Ok(Answer::page(page, Label::Admin));
            }
            challenge::passed(auth, req, admin, charged).await?;
            for user in &users {
                auth.store.reset_second_factor(user).await?;
                auth.sessions.end_all_for(user).await?;
                record(auth, req, admin, AuditKind::Reset, user).await;
                auth.notify(req.config, user, t.notice_reset_subject, t.notice_reset_body)
                    .await;
                tracing::info!(admin = %admin, user = %user, "second factor reset by an admin");
            }
            overview(auth, req, account, "", Some(t.admin_done)).await
        }
        _ => Ok(Answer::to(ADMIN_PAGE, Label::Admin)),
    }
}

/// Users listed at most on the admin page; a search narrows them down.
const SHOWN_USERS: usize = 200;

async fn overview(
    auth: &Services,
    req: &Request<'_>,
    account: &SessionRecord,
    query: &str,
    notice: Option<&str>,
) -> Result<Answer, StoreError> {
    let t = texts(req.lang);
    let needle = query.trim().to_lowercase();
    let found: Vec<_> = auth
        .store
        .users()
        .await?
        .into_iter()
        .filter(|u| u.name.contains(&needle))
        .take(SHOWN_USERS)
        .collect();
    let mut users = Vec::with_capacity(found.len());
    for u in found {
        // The methods by name only: never a secret, a code or a full address.
        let device_names: Vec<String> = auth
            .store
            .totp_devices(&u.name)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let email = auth
            .email_address(req.config, &u.name)
            .await
            .as_deref()
            .map(crate::factors::email::mask)
            .unwrap_or_default();
        users.push(AdminUserRow {
            devices: device_names.join(", "),
            email,
            codes_left: u.recovery_codes_left,
            last_used: u
                .last_used_at
                .map_or_else(|| t.never.to_owned(), views::human_time),
            locked: u.locked_until.is_some_and(|until| until > req.now),
            name: u.name,
        });
    }
    let events = auth
        .store
        .audit(&AuditQuery {
            subject: None,
            since: None,
            limit: 50,
        })
        .await?;
    let audit: Vec<ActivityRow> = events
        .into_iter()
        .map(|e| ActivityRow {
            when: views::human_time(e.at),
            what: format!("{} — {} ({}, {})", e.subject, e.event, e.actor, e.outcome),
            client: e.client.unwrap_or_default(),
        })
        .collect();
    let csrf = auth.sessions.form_token(account);
    let app_passwords = super::account::app_password_rows(auth, req, None).await?;
    Ok(Answer::page(
        views::admin(req.lang, &users, &app_passwords, &audit, query, &csrf, notice),
        Label::Admin,
    ))
}

/// An admin action in the audit trail.
async fn record(auth: &Services, req: &Request<'_>, admin: &str, event: AuditKind, user: &str) {
    let row = AuditEvent {
        at: req.now,
        event: event.as_str().to_owned(),
        actor: format!("admin:{admin}"),
        subject: user.to_owned(),
        app: Some(req.app.name.clone()),
        client: Some(req.client.to_string()),
        outcome: "ok".to_owned(),
    };
    if let Err(e) = auth.store.record(&row).await {
        tracing::error!(error = %e, event = event.as_str(), "could not write the audit trail");
    }
}
