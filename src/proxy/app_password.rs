//! Clients that cannot show a page (WebDAV and CalDAV clients, git, scripts) with
//! an app password in HTTP Basic: checked by the gateway on each request (the
//! check remembered a short while), forwarded with the signed identity. Such a
//! request never makes a session, so it never opens the gateway's pages.
//!
//! On a Basic app the user's own password there, opened with the app password,
//! goes on instead; if the app refuses it, the app password says so on the
//! security-info page.

use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderValue, StatusCode};
use pingora::prelude::*;
use zeroize::Zeroizing;

use super::admit::{Refusal, Stop};
use super::gateway::Gateway;
use crate::auth::app_passwords::Verified;
use crate::auth::{Attempt, AuditKind};
use crate::config::{App, Config};
use crate::factors::{app_password, SignInMethod};
use crate::login::basic::basic_credentials;
use crate::policy::{Authentication, Decision, NormalisedPath, Outcome, RequestFacts, Requirement};
use crate::portal::answer::Label;
use crate::portal::views::ErrorKind;
use crate::store::SessionRecord;

/// A request let in by an app password.
pub(super) struct AppPasswordUse {
    pub(super) id: i64,
    /// Stands in for a session where the identity is sent upstream.
    pub(super) record: SessionRecord,
    /// For a Basic app: the user's own password there, sent on instead.
    pub(super) app_secret: Option<Zeroizing<String>>,
    /// The app refused the password sent on last time.
    pub(super) app_refused: bool,
}

/// What an app password let in: who, as what, and the decision for the request.
pub(super) struct Admitted {
    pub(super) auth: Authentication,
    pub(super) used: AppPasswordUse,
    pub(super) decision: Decision,
}

/// The request this is about.
pub(super) struct AppPasswordRequest<'r> {
    pub(super) headers: &'r http::HeaderMap,
    pub(super) method: &'r str,
    pub(super) path: &'r NormalisedPath,
    pub(super) client: IpAddr,
    pub(super) now: SystemTime,
}

impl Gateway {
    /// `Ok(None)` when the request carries no app password (the app's own ways
    /// in go on); the identity it stands for; or the refusal.
    pub(super) async fn app_password(
        &self,
        config: &Config,
        app: &App,
        req: AppPasswordRequest<'_>,
    ) -> Result<Option<Admitted>, Stop> {
        if !app.policy.may_take_app_passwords() {
            return Ok(None);
        }
        let values = req.headers.get_all(http::header::AUTHORIZATION);
        let credentials =
            basic_credentials(values.iter().map(HeaderValue::as_bytes)).map_err(Refusal::bad_request)?;
        let Some((name, password)) = credentials else {
            return Ok(None);
        };
        // An ordinary password is not one: no argon2, no charge.
        if app_password::canonical(&password).is_none() {
            return Ok(None);
        }
        let case_sensitive = app.app_form().is_some_and(|l| l.username_case_sensitive);
        let user = super::login::canonical_name(&name, case_sensitive)
            .map_err(Refusal::bad_request)?
            .ok_or_else(|| Refusal::bad_request("the credentials name no user"))?;
        // Charged before it is checked: parallel guesses get no further than the
        // lockout allows, and a locked account is not checked at all.
        let unavailable = |e: crate::store::StoreError| -> Stop {
            tracing::error!(error = %e, "could not check an app password");
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Internal, Label::Error).into()
        };
        let charged = match self
            .auth
            .attempt(&config.lockout, &user, req.client, req.now)
            .await
        {
            Ok(Attempt::Charged(charged)) => charged,
            Ok(Attempt::Locked(_)) => {
                self.auth
                    .audit(
                        AuditKind::LockedOut,
                        &user,
                        &app.name,
                        req.client,
                        "refused",
                        req.now,
                    )
                    .await;
                return Err(
                    Refusal::new(StatusCode::TOO_MANY_REQUESTS, ErrorKind::Denied, Label::Locked).into(),
                );
            }
            Err(e) => return Err(unavailable(e)),
        };
        let verified = self
            .auth
            .app_passwords
            .verify(&user, &app.name, &password, req.now)
            .await
            .map_err(unavailable)?;
        let Some(verified) = verified else {
            if app.basic_login().is_some() {
                // Perhaps the user's own password at the app: its check decides
                // (and charges) as for any other.
                self.refund(config, &user, req.client, charged).await;
                return Ok(None);
            }
            self.auth
                .audit(
                    AuditKind::LoginFailed,
                    &user,
                    &app.name,
                    req.client,
                    "app_password",
                    req.now,
                )
                .await;
            return Err(Stop::Answer(super::basic::prompt_like(
                app,
                None,
                Label::LoginFailed,
            )));
        };
        self.refund(config, &user, req.client, charged).await;
        if verified.noteworthy {
            self.auth
                .audit(
                    AuditKind::AppPasswordUsed,
                    &user,
                    &app.name,
                    req.client,
                    &verified.name,
                    req.now,
                )
                .await;
        }
        let auth = Authentication {
            user: verified.user.clone(),
            groups: config.users.groups(&verified.user),
            // Made under a second factor passed then: it stands for that one.
            second_factor_at: Some(verified.created_at),
            mfa_opted_in: self.auth.opted_in(&verified.user).await,
            signed_in_at: verified.created_at,
        };
        let decision = app.policy.decide(&RequestFacts {
            method: req.method,
            path: req.path,
            client_ip: req.client,
            auth: Some(&auth),
            now: req.now,
        });
        // It carries no second factor of its own: a route that asks for a recent
        // one (`max_age`) is never opened by it.
        let step_up = matches!(
            decision.requirement,
            Requirement::SecondFactor { max_age: Some(_) }
        );
        let allowed = matches!(decision.outcome, Outcome::Allow | Outcome::Forward) && !step_up;
        if !allowed || !app.policy.accepts_app_passwords(&decision) {
            tracing::info!(user = %user, app = %app.name, "an app password where the policy does not take one; refused");
            return Err(Refusal::new(StatusCode::FORBIDDEN, ErrorKind::Denied, Label::Deny).into());
        }
        let used = use_of(verified, &app.name);
        Ok(Some(Admitted { auth, used, decision }))
    }

    async fn refund(&self, config: &Config, user: &str, client: IpAddr, charged: crate::auth::Charged) {
        if let Err(e) = self.auth.refund(&config.lockout, user, client, charged).await {
            tracing::error!(error = %e, "could not take back an app password's charge");
        }
    }
}

/// Whether the request carries Basic credentials whose password has the form of
/// an app password (the app need not see one where a session decides instead).
pub(super) fn carries_one(headers: &http::HeaderMap) -> bool {
    let values = headers.get_all(http::header::AUTHORIZATION);
    matches!(
        basic_credentials(values.iter().map(HeaderValue::as_bytes)),
        Ok(Some((_, password))) if app_password::canonical(&password).is_some()
    )
}

fn use_of(verified: Verified, app: &str) -> AppPasswordUse {
    let record = SessionRecord {
        // Its own assertion key: never one of a browser's session.
        id_hash: crate::auth::app_passwords::record_id(verified.id),
        user: verified.user,
        app: app.to_owned(),
        created_at: verified.created_at,
        last_seen_at: verified.created_at,
        second_factor_at: None,
        method: SignInMethod::AppPassword,
        revoked: false,
        mfa_opted_in: false,
    };
    AppPasswordUse {
        id: verified.id,
        record,
        app_secret: verified.app_secret,
        app_refused: verified.app_refused,
    }
}
