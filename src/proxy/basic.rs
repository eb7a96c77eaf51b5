//! Apps that sign people in with HTTP Basic (`login: basic`). The app checks the
//! password, as it always did; the gateway reads who the credentials name, and a
//! browser without a gateway session for that user gets the app's 401 (wrong
//! password, counted) or the second factor (right password), then comes back to the
//! URL it asked for. Nothing of the app's answer to such a request reaches it.

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::gateway::{Gateway, RequestCtx};
use super::withhold::{redirect_header, Swallow};
use crate::auth::challenge::Purpose;
use crate::auth::{Attempt, AuditKind};
use crate::factors::SignInMethod;
use crate::policy::Authentication;
use crate::portal::answer::Label;
use crate::portal::challenge;
use crate::portal::route::Route;

/// A request of a Basic app that no gateway session of its user covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicAttempt {
    /// Its credentials name `user`: the app's answer says whether the password is
    /// right. After the second factor, the browser returns to `return_to`. Only a
    /// navigation is sent to the factor: a background request (a favicon, a
    /// script's fetch) gets a bare 401, never a new challenge over the one the
    /// user is passing.
    SignIn {
        user: String,
        return_to: String,
        navigating: bool,
    },
    /// No credentials: only the app's own 401 (its prompt) may pass.
    Probe,
}

impl Gateway {
    /// Judges the app's answer to a Basic request no session covered.
    pub(super) async fn basic_answer(
        &self,
        response: &mut ResponseHeader,
        attempt: BasicAttempt,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let denied = response.status == StatusCode::UNAUTHORIZED;
        let (user, return_to, navigating) = match attempt {
            // The app's prompt passes untouched; any other answer (a page the app
            // serves without a password) is not shown to a browser nobody signed.
            BasicAttempt::Probe if denied => {
                ctx.label = Some(Label::SignIn);
                return Ok(());
            }
            BasicAttempt::Probe => return self.prompt(response, ctx),
            BasicAttempt::SignIn {
                user,
                return_to,
                navigating,
            } => (user, return_to, navigating),
        };
        let Some(config) = ctx.config.clone() else {
            return self.prompt(response, ctx);
        };
        let Some(app) = ctx.app(&config) else {
            return self.prompt(response, ctx);
        };
        let now = SystemTime::now();
        let client = ctx
            .origin
            .as_ref()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip);
        // Right and wrong passwords are charged alike before anything is shown, as
        // at a login form: no burst of guesses learns more than the limit allows.
        let charged = match self.auth.attempt(&config.lockout, &user, client, now).await {
            Ok(Attempt::Charged(charged)) => charged,
            Ok(Attempt::Locked(_)) => {
                self.auth
                    .audit(AuditKind::LockedOut, &user, &app.name, client, "refused", now)
                    .await;
                return self.redirect_instead(response, ctx, Route::Locked.path(), None, Label::Locked);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not count a Basic sign-in; withheld");
                return self.redirect_instead(response, ctx, Route::Unavailable.path(), None, Label::Error);
            }
        };
        if denied {
            // A wrong password: the app's 401 passes as it is, and stays counted.
            self.auth
                .audit(AuditKind::LoginFailed, &user, &app.name, client, "refused", now)
                .await;
            ctx.label = Some(Label::LoginFailed);
            return Ok(());
        }
        if let Err(e) = self.auth.refund(&config.lockout, &user, client, charged).await {
            tracing::error!(error = %e, "could not take back a right password's charge");
        }
        if !navigating {
            return self.refuse_in_background(response, ctx);
        }
        self.auth
            .audit(AuditKind::LoginOk, &user, &app.name, client, "ok", now)
            .await;
        let auth = Authentication {
            user: user.clone(),
            groups: config.users.groups(&user),
            second_factor_at: None,
            mfa_opted_in: self.auth.opted_in(&user).await,
            signed_in_at: now,
        };
        if !app.policy.second_factor_at_sign_in(&auth) {
            // No second factor for this user here: a password-level session, and
            // back to the URL (the app's answer is not the one to keep: its links
            // are relative to that URL).
            return match self
                .auth
                .sessions
                .start(&user, &app.name, SignInMethod::Password, now, ctx.secure)
                .await
            {
                Ok(issued) => {
                    let cookie = crate::auth::cookies::set_session(&issued.cookie_value, ctx.secure);
                    self.redirect_instead(response, ctx, &return_to, Some(&cookie), Label::LoginPasswordOnly)
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a session; Basic sign-in withheld");
                    self.redirect_instead(response, ctx, Route::Unavailable.path(), None, Label::Error)
                }
            };
        }
        tracing::info!(user = %user, app = %app.name, "Basic sign-in withheld for the second factor");
        let (redirect, _) = challenge::begin(
            &self.auth,
            &config,
            app,
            &user,
            Purpose::Return(return_to),
            client,
            ctx.secure,
            now,
        )
        .await;
        let location = redirect
            .header(&http::header::LOCATION)
            .unwrap_or(Route::Unavailable.path())
            .to_owned();
        let cookie = redirect.header(&http::header::SET_COOKIE).map(str::to_owned);
        self.redirect_instead(response, ctx, &location, cookie.as_deref(), Label::LoginWithheld)
    }

    /// Replaces the app's answer with a redirect of the gateway's; the app's body
    /// and cookies are thrown away.
    fn redirect_instead(
        &self,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
        location: &str,
        set_cookie: Option<&str>,
        label: Label,
    ) -> Result<()> {
        *response = redirect_header(location, set_cookie)?;
        ctx.swallow = Some(Swallow::Discard);
        ctx.label = Some(label);
        Ok(())
    }

    /// A bare 401 (no prompt) for a background request that no session covers.
    fn refuse_in_background(&self, response: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        let mut refused = ResponseHeader::build(StatusCode::UNAUTHORIZED, Some(3))?;
        refused.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        refused.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        *response = refused;
        ctx.swallow = Some(Swallow::Discard);
        ctx.label = Some(Label::SecondFactor);
        Ok(())
    }

    /// The gateway's own Basic prompt, in place of an answer no one may see.
    fn prompt(&self, response: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        let realm = ctx
            .config
            .as_ref()
            .and_then(|config| ctx.app(config).map(|app| app.name.replace(['"', '\\'], "")))
            .unwrap_or_default();
        let mut prompt = ResponseHeader::build(StatusCode::UNAUTHORIZED, Some(4))?;
        prompt.insert_header(
            http::header::WWW_AUTHENTICATE,
            format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        )?;
        prompt.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        // The app's body is thrown away as it arrives (chunked: it may be long).
        prompt.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        *response = prompt;
        ctx.swallow = Some(Swallow::Discard);
        ctx.label = Some(Label::SignIn);
        Ok(())
    }
}
