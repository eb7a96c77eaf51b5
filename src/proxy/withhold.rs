//! The guard on an app's answers: its session never reaches a browser before the
//! second factor, whatever the request.
//!
//! ```text
//! app's answer ─┬─ the login itself ──► verdict: the success rule, or a session cookie set live
//!               ├─ any other request ─► a session cookie set live to a client whose gateway
//!               │                       session does not already satisfy the app = a sign-in
//!               └─ otherwise ─────────► passes untouched
//! a sign-in ───► who: one user name read the app's way, or none, or "unreadable"
//!   unreadable ─────────────► refused alike, right password or wrong (answer discarded)
//!   nobody, but let in ─────► dropped: the browser is sent to sign in (answer discarded)
//!   locked ─────────────────► the gateway's lockout page alike for right and wrong passwords
//!   wrong password ─────────► counted; the app's answer passes
//!   right password ─────────► passes with a password session where policy needs no factor,
//!                             or a remembered browser; else withheld into a challenge
//! ```

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

use super::auth::Attempt;
use super::confirm;
use super::gateway::{authentication, Gateway, RequestCtx};
use super::login::{self, RequestCapture};
use super::second_factor;
use crate::config::model::LoginInterception;
use crate::config::{App, Config};
use crate::login::{SetCookie, Unreadable};
use crate::policy::Authentication;
use crate::session::challenge::{Purpose, SharedChallenge, Withheld};
use crate::session::{cookies, SignInMethod};

/// Where an app's answer body goes when its header was replaced.
pub enum Swallow {
    /// Into the challenge that withholds the answer, to be released whole.
    Into(SharedChallenge),
    /// Nowhere: the answer must never reach the browser.
    Discard,
}

/// What the gateway learned about a sign-in the app made.
struct SignIn<'r> {
    user: Result<Option<String>, Unreadable>,
    /// The app let the user in.
    passed: bool,
    trust_cookie: Option<String>,
    /// The request the app answered.
    request: &'r RequestHeader,
}

impl Gateway {
    /// Looks at every answer of an app whose sign-in the gateway watches.
    /// `request` is the request the app answered (its cookies, for `login.confirm`).
    pub(super) async fn watch_answer(
        &self,
        response: &mut ResponseHeader,
        capture: Option<RequestCapture>,
        request: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(config) = ctx.config.clone() else {
            return Ok(());
        };
        let Some(app) = ctx.app(&config) else {
            return Ok(());
        };
        let Some(login) = app.app_form() else {
            return Ok(());
        };
        let now = SystemTime::now();
        let query = ctx.upstream_uri.as_ref().and_then(http::Uri::query);
        let sets_session = login.session_cookies.any_set_live(
            response
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .map(http::HeaderValue::as_bytes),
            now,
        );
        let capture = capture.unwrap_or_else(RequestCapture::bodiless);
        if capture.is_login {
            let user = capture.user_name(login, query);
            let passed = login::succeeded(&login.success, response, now) || sets_session;
            let sign_in = SignIn {
                user,
                passed,
                trust_cookie: capture.trust_cookie,
                request,
            };
            return self
                .sign_in(response, sign_in, ctx, &config, app, login, now)
                .await;
        }
        if !sets_session {
            return Ok(());
        }
        let user = capture.user_name(login, query);
        // The app signed someone in on a request that is not its login. A client
        // whose gateway session already satisfies the app may see its session
        // cookie renewed, unless the request names someone else (or is ambiguous).
        if let Some(session) = &ctx.session {
            let satisfied = session.second_factor_at.is_some()
                || !app
                    .policy
                    .second_factor_at_sign_in(&authentication(session, &config));
            let renewal = match &user {
                Ok(Some(named)) => *named == session.user,
                Ok(None) => true,
                Err(Unreadable::Repeated | Unreadable::LookAlike(_)) => false,
                Err(_) => true,
            };
            if satisfied && renewal {
                return Ok(());
            }
        }
        tracing::warn!(app = %app.name, "the app set its session cookie on a request that is not its login; treated as a sign-in");
        let sign_in = SignIn {
            user,
            passed: true,
            trust_cookie: None,
            request,
        };
        self.sign_in(response, sign_in, ctx, &config, app, login, now)
            .await
    }

    /// After the app answered a sign-in: let the answer through, or hold it back
    /// until the second factor is passed, or refuse it.
    #[allow(clippy::too_many_arguments)]
    async fn sign_in(
        &self,
        response: &mut ResponseHeader,
        sign_in: SignIn<'_>,
        ctx: &mut RequestCtx,
        config: &Config,
        app: &App,
        login: &LoginInterception,
        now: SystemTime,
    ) -> Result<()> {
        let client = ctx
            .origin
            .as_ref()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip);
        let user = match sign_in.user {
            Err(why) => {
                // Whatever the app said: right and wrong passwords look alike.
                tracing::warn!(app = %app.name, reason = %why, "a sign-in does not say for certain who signs in; refused");
                return self.replace(response, ctx, "/.portvakt/sign-in-refused", "login_unreadable");
            }
            Ok(None) if sign_in.passed => {
                // The app let someone in whom the gateway cannot name: nothing of the
                // app's answer may reach the browser.
                tracing::error!(app = %app.name, "a sign-in succeeded but the request names no user; withheld");
                return self.replace(response, ctx, &login.page_target, "login_unnamed");
            }
            Ok(None) => return Ok(()),
            Ok(Some(user)) => user,
        };
        // A wrong password is counted before its answer goes back; a right one is
        // let through only while the account is not locked. Either way, a locked
        // account gets the same answer, so the app's form is no password oracle.
        let lockout = &config.lockout;
        let locked = if sign_in.passed {
            self.auth
                .locked_for(lockout, &user, client, now)
                .await
                .map(|w| w.is_some())
        } else {
            self.auth
                .attempt(lockout, &user, client, now)
                .await
                .map(|a| matches!(a, Attempt::Locked(_)))
        };
        match locked {
            Ok(false) => {}
            Ok(true) => {
                self.auth
                    .audit("locked_out", &user, &app.name, client, "refused", now)
                    .await;
                return self.replace(response, ctx, "/.portvakt/locked", "locked");
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read or count the lockout; sign-in withheld");
                return self.replace(response, ctx, "/.portvakt/unavailable", "error");
            }
        }
        if !sign_in.passed {
            ctx.label = Some("login_failed");
            self.auth
                .audit("login_failed", &user, &app.name, client, "refused", now)
                .await;
            return Ok(());
        }
        if let Some(rule) = &login.confirm {
            let set_cookies: Vec<SetCookie> = response
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .map(|v| SetCookie::read(v.as_bytes(), now))
                .collect();
            let sent: Vec<&str> = sign_in
                .request
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let jar = confirm::cookies_after(Some(&sent.join("; ")), &set_cookies);
            let named = confirm::who(&self.connector, app, &ctx.host, rule, &jar).await;
            let confirmed = match named {
                Ok(Some(name)) => login::canonical_user(login, &name).ok().flatten(),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(app = %app.name, error = %e, "the app's confirming page did not answer; sign-in refused");
                    None
                }
            };
            if confirmed.as_deref() != Some(user.as_str()) {
                tracing::warn!(app = %app.name, user = %user, "the app says its new session is not this user's; sign-in refused");
                self.auth
                    .audit("login_unconfirmed", &user, &app.name, client, "refused", now)
                    .await;
                return self.replace(response, ctx, "/.portvakt/sign-in-refused", "login_unconfirmed");
            }
        }
        self.auth
            .audit("login_ok", &user, &app.name, client, "ok", now)
            .await;
        if let Some(name) = &login.email_header {
            self.auth
                .take_address_from_app(config, &user, &app.name, response.headers.get(name), client, now)
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
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a session; login withheld");
                    return self.replace(response, ctx, &login.page_target, "error");
                }
            }
        }
        // A browser the user asked to be remembered in passes with the app's answer.
        if let Some(issued) = self
            .auth
            .remembered_sign_in(
                sign_in.trust_cookie.as_deref(),
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
            // Pingora hands an answer without a body to no body filter: it is
            // whole already.
            complete: is_bodiless(response, sign_in.request),
            overflowed: false,
        };
        tracing::info!(user = %user, app = %app.name, cookies = ?withheld.cookie_names(), "login withheld for the second factor");
        let (redirect, challenge) = second_factor::begin(
            &self.auth,
            config,
            app,
            &user,
            Purpose::Login(withheld),
            client,
            ctx.secure,
            now,
        )
        .await;
        let location = redirect
            .header(&http::header::LOCATION)
            .unwrap_or("/.portvakt/unavailable");
        let cookie = redirect.header(&http::header::SET_COOKIE);
        *response = redirect_header(location, cookie)?;
        // The challenge holds the withheld answer; its body follows it there. With no
        // challenge (enrolment closed, store down) the body is thrown away.
        ctx.swallow = Some(challenge.map_or(Swallow::Discard, Swallow::Into));
        ctx.label = Some("login_withheld");
        Ok(())
    }

    /// Replaces the app's answer with a redirect of the gateway's; its body is thrown
    /// away as it arrives.
    fn replace(
        &self,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
        location: &str,
        label: &'static str,
    ) -> Result<()> {
        *response = redirect_header(location, None)?;
        ctx.swallow = Some(Swallow::Discard);
        ctx.label = Some(label);
        Ok(())
    }
}

/// A 303 of the gateway's in place of the app's answer. Its body stays open until
/// the app's has been read whole (chunked on HTTP/1.1; HTTP/2 frames it itself): a
/// `Content-Length: 0` would end the response at once, and with it the reading of
/// the app's body that a challenge must hold whole.
fn redirect_header(location: &str, set_cookie: Option<&str>) -> Result<ResponseHeader> {
    let mut redirect = ResponseHeader::build(StatusCode::SEE_OTHER, Some(4))?;
    redirect.insert_header(http::header::LOCATION, location)?;
    redirect.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    redirect.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    if let Some(cookie) = set_cookie {
        redirect.insert_header(http::header::SET_COOKIE, cookie)?;
    }
    Ok(redirect)
}

/// Where a swallowed body chunk goes.
pub(super) fn swallow(swallow: &Swallow, chunk: &[u8], end_of_stream: bool) {
    let Swallow::Into(challenge) = swallow else {
        return;
    };
    let mut challenge = challenge
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Purpose::Login(withheld) = &mut challenge.purpose {
        withheld.append(chunk);
        withheld.complete |= end_of_stream;
    }
}

/// An answer that has no body to wait for.
fn is_bodiless(response: &ResponseHeader, request: &RequestHeader) -> bool {
    request.method == http::Method::HEAD
        || matches!(response.status.as_u16(), 204 | 304)
        || response
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() == b"0")
}

fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "proxy-connection"
    ) || *name == http::header::CONTENT_LENGTH
}
