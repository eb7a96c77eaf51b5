//! Withholding an app's login answer until the second factor is passed.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::gateway::{Gateway, RequestCtx};
use super::login::{self, LoginCapture};
use super::second_factor;
use crate::policy::Authentication;
use crate::session::challenge::{Challenge, Purpose, SharedChallenge, Stage, Withheld};
use crate::session::{cookies, SignInMethod};

impl Gateway {
    /// After the app answered a login: let the answer through, or hold it back until
    /// the second factor is passed.
    pub(super) async fn after_login(
        &self,
        response: &mut ResponseHeader,
        capture: LoginCapture,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let config = ctx
            .config
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no config"))?;
        let Some(app) = ctx.app(&config) else {
            return Ok(());
        };
        let Some(login) = app.app_form() else {
            return Ok(());
        };
        let client = ctx
            .origin
            .as_ref()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip);
        let now = SystemTime::now();
        let user = login::username(login, &capture);
        let passed = login::succeeded(&login.success, response);
        let Some(user) = user else {
            if passed {
                // The app let someone in whom the gateway cannot name: nothing of the
                // app's answer may reach the browser.
                tracing::error!(app = %app.name, "a login succeeded but its body names no user; withheld");
                replace_with_redirect(response, &login.page, None)?;
                ctx.withholding = Some(discard_sink(&app.name, now));
                ctx.label = Some("login_unnamed");
            }
            return Ok(());
        };
        if !passed {
            ctx.label = Some("login_failed");
            if let Err(e) = self.auth.failed(&config.lockout, &user, client, now).await {
                tracing::error!(error = %e, "could not count a failed login");
            }
            self.auth
                .audit("login_failed", &user, &app.name, client, "refused", now)
                .await;
            return Ok(());
        }
        self.auth
            .audit("login_ok", &user, &app.name, client, "ok", now)
            .await;
        if let Some(name) = &login.email_header {
            self.auth
                .take_address_from_app(&config, &user, &app.name, response.headers.get(name), client, now)
                .await;
        }
        let auth = Authentication {
            user: user.clone(),
            groups: config.users.groups(&user),
            second_factor_at: None,
            mfa_opted_in: self.auth.opted_in(&user).await,
            signed_in_at: now,
        };
        if !app.policy.second_factor_at_sign_in(&auth) {
            // No second factor for this user here: the app's answer passes, with a
            // password-level gateway session beside it.
            match self
                .auth
                .sessions
                .start(&user, &app.name, SignInMethod::Password, now, ctx.secure)
                .await
            {
                Ok(issued) => {
                    response.append_header(
                        http::header::SET_COOKIE,
                        cookies::set_session(&issued.cookie_value, ctx.secure),
                    )?;
                    ctx.label = Some("login_password_only");
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a session; login withheld");
                    replace_with_redirect(response, &login.page, None)?;
                    ctx.withholding = Some(discard_sink(&app.name, now));
                }
            }
            return Ok(());
        }
        // A browser the user asked to be remembered in passes with the app's answer.
        if let Some(issued) = self
            .auth
            .remembered_sign_in(
                capture.trust_cookie.as_deref(),
                &user,
                &app.name,
                client,
                now,
                ctx.secure,
            )
            .await
        {
            response.append_header(
                http::header::SET_COOKIE,
                cookies::set_session(&issued.cookie_value, ctx.secure),
            )?;
            ctx.label = Some("login_remembered");
            return Ok(());
        }
        let withheld = Withheld {
            status: response.status.as_u16(),
            headers: response
                .headers
                .iter()
                .filter(|(name, _)| !is_hop_by_hop(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: Vec::new(),
            overflowed: false,
        };
        tracing::info!(user = %user, app = %app.name, cookies = ?withheld.cookie_names(), "login withheld for the second factor");
        let (redirect, challenge) = second_factor::begin(
            &self.auth,
            &config,
            app,
            &user,
            Purpose::Login(withheld),
            client,
            ctx.secure,
            now,
        )
        .await;
        // The challenge holds the withheld answer; its body follows it there. With no
        // challenge (enrolment closed, store down) the body is thrown away.
        ctx.withholding = Some(challenge.unwrap_or_else(|| discard_sink(&app.name, now)));
        let location = redirect
            .header(&http::header::LOCATION)
            .unwrap_or("/.portvakt/unavailable");
        let cookie = redirect.header(&http::header::SET_COOKIE);
        replace_with_redirect(response, location, cookie)?;
        ctx.label = Some("login_withheld");
        Ok(())
    }
}

/// Turns the app's response header into a bodiless 303 of the gateway's.
fn replace_with_redirect(
    response: &mut ResponseHeader,
    location: &str,
    set_cookie: Option<&str>,
) -> Result<()> {
    let mut redirect = ResponseHeader::build(StatusCode::SEE_OTHER, Some(4))?;
    redirect.insert_header(http::header::LOCATION, location)?;
    redirect.insert_header(http::header::CONTENT_LENGTH, "0")?;
    redirect.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    if let Some(cookie) = set_cookie {
        redirect.insert_header(http::header::SET_COOKIE, cookie)?;
    }
    *response = redirect;
    Ok(())
}

/// Somewhere to put a body that must not reach the browser and will never be released.
fn discard_sink(app: &str, now: SystemTime) -> SharedChallenge {
    Arc::new(std::sync::Mutex::new(Challenge::new(
        "",
        app,
        Purpose::Login(Withheld::default()),
        Stage::Verify,
        now,
    )))
}

fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "proxy-connection"
    ) || *name == http::header::CONTENT_LENGTH
}
