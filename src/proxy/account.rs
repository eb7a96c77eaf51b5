//! The user's security info (`/.portvakt/account`): their methods, recovery codes,
//! sessions and recent activity. Changing anything needs a second factor from the
//! last few minutes; an older one sends the user through a step-up first.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use pingora::prelude::*;

use super::answer::Answer;
use super::auth::AuthServices;
use super::second_factor::{self, PageRequest};
use crate::pages::{self, texts, ActivityRow, DeviceRow};
use crate::session::challenge::Purpose;
use crate::session::cookies;
use crate::store::{AuditQuery, SessionRecord, StoreError};

/// How recent a second factor must be to change the account.
const FRESH_ENOUGH: Duration = Duration::from_secs(5 * 60);
const ACCOUNT_PAGE: &str = "/.portvakt/account";

pub fn is_account_page(page: &str) -> bool {
    matches!(
        page,
        "account" | "account/recovery-codes" | "account/sign-out-everywhere"
    )
}

/// Serves the security-info pages for the session's user.
pub async fn serve(
    auth: &AuthServices,
    session: &mut Session,
    req: &PageRequest<'_>,
    account: Option<&SessionRecord>,
) -> Answer {
    let Some(account) = account else {
        // Only a signed-in user has security info; send the browser to sign in.
        return match req.app.sign_in_page() {
            Some(page) => Answer::redirect(page, "sign_in"),
            None => Answer::page(
                pages::error(
                    StatusCode::UNAUTHORIZED,
                    pages::ErrorKind::SignInRequired,
                    req.lang,
                    None,
                    "-",
                ),
                "sign_in",
            ),
        };
    };
    match serve_inner(auth, session, req, account).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "security-info page failed");
            Answer::page(
                pages::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    pages::ErrorKind::Internal,
                    req.lang,
                    None,
                    "-",
                ),
                "error",
            )
        }
    }
}

async fn serve_inner(
    auth: &AuthServices,
    session: &mut Session,
    req: &PageRequest<'_>,
    account: &SessionRecord,
) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let post = session.req_header().method == http::Method::POST;
    if !post {
        return overview(auth, req, account).await;
    }
    let form = second_factor::read_form(session).await.unwrap_or_default();
    let token_ok = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .is_some_and(|(_, v)| auth.sessions.form_token_matches(account, v));
    if !token_ok {
        return Ok(Answer::page(
            pages::error(
                StatusCode::FORBIDDEN,
                pages::ErrorKind::BadRequest,
                req.lang,
                None,
                "-",
            ),
            "bad_request",
        ));
    }
    let t = texts(req.lang);
    match req.page {
        "account/sign-out-everywhere" => {
            let ended = auth.sessions.end_all_for(user).await?;
            auth.audit(
                "signed_out_everywhere",
                user,
                &req.app.name,
                req.client,
                "ok",
                req.now,
            )
            .await;
            tracing::info!(user = %user, sessions = ended, "signed out everywhere");
            let page = req.app.sign_in_page().unwrap_or("/");
            let answer = Answer::page(
                pages::message(
                    StatusCode::OK,
                    req.lang,
                    t.sign_out_everywhere,
                    t.signed_out_everywhere,
                    Some((page, t.sign_in_again)),
                ),
                "signed_out_everywhere",
            );
            Ok(answer.with_cookie(&cookies::clear_session(req.secure)))
        }
        "account/recovery-codes" => {
            if !fresh(account, req.now) {
                let (answer, _) = second_factor::begin(
                    auth,
                    req.config,
                    req.app,
                    user,
                    Purpose::Return(ACCOUNT_PAGE.to_owned()),
                    req.client,
                    req.secure,
                    req.now,
                )
                .await;
                return Ok(answer);
            }
            let codes = second_factor::new_recovery_codes(auth, req, user).await?;
            auth.audit(
                "recovery_codes_renewed",
                user,
                &req.app.name,
                req.client,
                "ok",
                req.now,
            )
            .await;
            let shown: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            Ok(Answer::page(
                pages::new_codes(req.lang, &req.config.second_factor.issuer, user, &shown),
                "recovery_codes_renewed",
            ))
        }
        _ => Ok(Answer::redirect(ACCOUNT_PAGE, "account")),
    }
}

/// Whether the session's second factor is recent enough to change the account.
fn fresh(account: &SessionRecord, now: SystemTime) -> bool {
    account
        .second_factor_at
        .is_some_and(|at| now.duration_since(at).unwrap_or(Duration::ZERO) <= FRESH_ENOUGH)
}

async fn overview(
    auth: &AuthServices,
    req: &PageRequest<'_>,
    account: &SessionRecord,
) -> Result<Answer, StoreError> {
    let user = account.user.as_str();
    let t = texts(req.lang);
    let devices: Vec<DeviceRow> = auth
        .store
        .totp_devices(user)
        .await?
        .into_iter()
        .map(|d| DeviceRow {
            name: d.name,
            added: when(d.created_at),
            last_used: d.last_used_at.map_or_else(|| t.never.to_owned(), when),
        })
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
            when: when(e.at),
            what: pages::event_label(req.lang, &e.event).to_owned(),
            client: e.client.unwrap_or_default(),
        })
        .collect();
    let csrf = auth.sessions.form_token(account);
    Ok(Answer::page(
        pages::account(req.lang, user, &devices, codes_left, &activity, &csrf),
        "account",
    ))
}

/// A time as people read it: `2026-11-23 07:55 UTC`.
fn when(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &text[..10], &text[11..16])
}
