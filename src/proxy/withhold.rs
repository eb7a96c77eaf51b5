//! The guard on an app's answers: its session never reaches a browser before the
//! second factor, whatever the request.
//!
//! ```text
//! the app's logout ─────────► passes, less any session cookie it hands out again
//! the app's login ──────────► verdict by the success rule; a session cookie set on an
//!                             answer the rule calls a failure, or set twice, is refused
//! any other answer that sets the app's session cookie live:
//!   without login.confirm ──► dropped: the browser is sent to sign in (what the request
//!                             says about who it is proves nothing: the app may have
//!                             read other fields)
//!   with login.confirm ─────► the app says whose session it made; a browser already
//!                             signed in as that user keeps it renewed, anyone else's
//!                             answer is held back for that user's second factor
//! a sign-in ────► who: one user name read the app's way, or none, or "unreadable"
//!   unreadable ─────────────► refused alike, right password or wrong (answer discarded)
//!   nobody, but let in ─────► dropped: the browser is sent to sign in (answer discarded)
//!   locked ─────────────────► the gateway's lockout page, alike for right and wrong
//!   wrong password ─────────► counted; the app's answer passes
//!   right password ─────────► (confirmed by the app, where configured) passes with a
//!                             password session where policy needs no factor, or a
//!                             remembered browser; else withheld into a challenge
//! ```

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

use super::confirm;
use super::gateway::{authentication, Gateway, RequestCtx};
use super::login::{self, BodySays, RequestCapture};
use crate::auth::challenge::{random_token, Challenges, Purpose, Withheld};
use crate::auth::tokens::TokenBindings;
use crate::auth::unusual::Gate;
use crate::auth::{cookies, Attempt, AuditKind};
use crate::config::model::{json_token, LoginInterception};
use crate::config::{App, Config};
use crate::factors::SignInMethod;
use crate::login::{set_more_than_one_way, SetCookie, Unreadable};
use crate::policy::Authentication;
use crate::portal::answer::Label;
use crate::portal::challenge;
use crate::portal::route::Route;

/// The header of the JSON 401 a script's login call gets: the challenge's page.
pub const CHALLENGE_HEADER: &str = "portvakt-challenge";

/// Where an app's answer body goes when its header was replaced.
pub enum Swallow {
    /// Into the answer a challenge withholds; stored (for every gateway) once
    /// whole, to be released whole.
    Into(Box<Withholding>),
    /// Nowhere: the answer must never reach the browser.
    Discard,
    /// Nowhere, and this body of the gateway's goes out instead, once the app's
    /// has ended.
    Replace(bytes::Bytes),
}

/// An app's answer on its way into the store, for the challenge that withholds it.
pub struct Withholding {
    challenges: Challenges,
    /// The id the challenge knows the answer by.
    answer: String,
    withheld: Withheld,
    /// The gateway's body that goes out once the app's has ended, if any.
    then: Option<bytes::Bytes>,
}

/// What the gateway learned about a sign-in the app made.
struct SignIn<'r> {
    user: Result<Option<String>, Unreadable>,
    /// The app let the user in.
    passed: bool,
    /// The app set its session cookie in a way that says nothing clear (on a
    /// failure, or more than one way): refused once the user is charged.
    anomaly: bool,
    /// The request was the app's own login (rather than another request whose
    /// answer set the session cookie, whose user the app itself confirmed).
    at_login: bool,
    trust_cookie: Option<String>,
    browser_cookie: Option<String>,
    /// The request the app answered.
    request: &'r RequestHeader,
}

/// The app and login an answer belongs to, for the checks below.
struct Watched<'c> {
    config: &'c Config,
    app: &'c App,
    login: &'c LoginInterception,
    now: SystemTime,
    client: IpAddr,
}

impl Gateway {
    /// Looks at an answer of an app whose sign-in the gateway watches: the login's,
    /// one that follows a kept body, or one that sets a cookie.
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
        let w = Watched {
            config: &config,
            app,
            login,
            now: SystemTime::now(),
            client: ctx
                .origin
                .as_ref()
                .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip),
        };
        let set_cookies: Vec<&[u8]> = response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        let named_cookies = login.session_cookies.named(set_cookies, w.now);
        let conflicting = set_more_than_one_way(&named_cookies);
        let sessions: Vec<&SetCookie> = named_cookies.iter().filter(|c| c.live).collect();
        if ctx.logout {
            // Many apps hand out a fresh (anonymous) session with their logout:
            // the logout passes, that cookie does not.
            if !sessions.is_empty() {
                drop_session_cookies(response, login, w.now)?;
            }
            return Ok(());
        }
        let query = ctx.upstream_uri.as_ref().and_then(http::Uri::query);
        let capture = capture.unwrap_or_default();
        if capture.is_login {
            // A login judged by its body is read whole first (`whole_answer`);
            // one that was not, its body unread, is no sign-in to let through.
            let body = match ctx.json_verdict {
                Some(says) => says,
                None if login.success.json.is_none() => BodySays::Succeeded,
                None => {
                    tracing::error!(app = %app.name, "a login judged by its body was not read whole; refused");
                    return self.replace(response, ctx, Route::SignInRefused.path(), Label::LoginUnreadable);
                }
            };
            let by_header = login::succeeded(&login.success, response, w.now);
            let by_rule = by_header && body == BodySays::Succeeded;
            // A session cookie on an answer the rule calls a failure, or set more
            // than one way: the app signed someone in in a way of its own. Refused,
            // after the named user is charged, the same whatever the password, so
            // that the oddity is neither a way in nor an oracle. So is an answer
            // whose body says neither success nor failure: it may hide a success.
            let unclear = by_header && body == BodySays::Unclear;
            let anomaly = (!sessions.is_empty() && (!by_rule || conflicting)) || unclear;
            let user = capture.user_name(login, query).and_then(|user| {
                capture
                    .agrees_with(&login.query)
                    .then_some(user)
                    .ok_or(Unreadable::Condition)
            });
            let sign_in = SignIn {
                user,
                passed: by_rule,
                anomaly,
                at_login: true,
                trust_cookie: capture.trust_cookie,
                browser_cookie: capture.browser_cookie,
                request,
            };
            return self.sign_in(response, sign_in, ctx, &w).await;
        }
        if sessions.is_empty() {
            return Ok(());
        }
        // The app signed someone in on a request that is not its login. Only the
        // app can say whom: a name in the request proves nothing, since the app may
        // have read other fields (`?u=…&p=…`) or another body.
        let Some(rule) = &login.confirm else {
            tracing::warn!(app = %app.name, "the app set its session cookie on a request that is not its login, and login.confirm cannot say whose it is; dropped");
            return self.replace(response, ctx, &login.page_target, Label::SignInElsewhere);
        };
        if conflicting {
            tracing::warn!(app = %app.name, "the app set its session cookie more than one way; dropped");
            return self.replace(response, ctx, &login.page_target, Label::SignInElsewhere);
        }
        let confirmed = self.confirmed_user(rule, response, request, &ctx.host, &w).await;
        let Some(user) = confirmed else {
            return self.replace(response, ctx, &login.page_target, Label::SignInElsewhere);
        };
        match capture.user_name(login, query) {
            Ok(None) => {}
            Ok(Some(named)) if named == user => {}
            _ => {
                tracing::warn!(app = %app.name, "a request named another user than the app signed in, or named one unclearly; dropped");
                return self.replace(response, ctx, &login.page_target, Label::SignInElsewhere);
            }
        }
        if let Some(session) = &ctx.session {
            let satisfied = session.second_factor_at.is_some()
                || !app
                    .policy
                    .second_factor_at_sign_in(&authentication(session, &config));
            if satisfied && session.user == user {
                return Ok(()); // The app renewed this user's own session.
            }
        }
        let sign_in = SignIn {
            user: Ok(Some(user)),
            passed: true,
            anomaly: false,
            at_login: false,
            trust_cookie: None,
            browser_cookie: None,
            request,
        };
        self.sign_in(response, sign_in, ctx, &w).await
    }

    /// After the app answered a sign-in: let the answer through, or hold it back
    /// until the second factor is passed, or refuse it.
    async fn sign_in(
        &self,
        response: &mut ResponseHeader,
        sign_in: SignIn<'_>,
        ctx: &mut RequestCtx,
        w: &Watched<'_>,
    ) -> Result<()> {
        let (app, login, now, client) = (w.app, w.login, w.now, w.client);
        let user = match sign_in.user {
            Err(why) => {
                // Whatever the app said: right and wrong passwords look alike.
                tracing::warn!(app = %app.name, reason = %why, "a sign-in does not say for certain who signs in; refused");
                return self.replace(response, ctx, Route::SignInRefused.path(), Label::LoginUnreadable);
            }
            Ok(None) if sign_in.anomaly => {
                tracing::warn!(app = %app.name, "the app set its session cookie oddly on a login that names nobody; refused");
                return self.replace(response, ctx, Route::SignInRefused.path(), Label::LoginAnomalous);
            }
            Ok(None) if sign_in.passed => {
                // The app let someone in whom the gateway cannot name: nothing of the
                // app's answer may reach the browser.
                tracing::error!(app = %app.name, "a sign-in succeeded but the request names no user; withheld");
                return self.replace(response, ctx, &login.page_target, Label::LoginUnnamed);
            }
            Ok(None) => return Ok(()),
            Ok(Some(user)) => user,
        };
        // Every answer is charged before it is shown, right password or wrong: no
        // burst of parallel guesses learns more than the limit allows, and a locked
        // account gets the same answer for both, so the app's form is no oracle.
        let lockout = &w.config.lockout;
        let charged = match self.auth.attempt(lockout, &user, client, now).await {
            Ok(Attempt::Charged(charged)) => charged,
            Ok(Attempt::Locked(_)) => {
                self.auth
                    .audit(AuditKind::LockedOut, &user, &app.name, client, "refused", now)
                    .await;
                return self.replace(response, ctx, Route::Locked.path(), Label::Locked);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not count the attempt; sign-in withheld");
                return self.replace(response, ctx, Route::Unavailable.path(), Label::Error);
            }
        };
        if sign_in.anomaly {
            tracing::warn!(app = %app.name, user = %user, "the app set its session cookie on a failed login, or more than one way; refused");
            return self.replace(response, ctx, Route::SignInRefused.path(), Label::LoginAnomalous);
        }
        if !sign_in.passed {
            ctx.label = Some(Label::LoginFailed);
            self.auth
                .audit(AuditKind::LoginFailed, &user, &app.name, client, "refused", now)
                .await;
            return Ok(());
        }
        if let Err(e) = self.auth.refund(lockout, &user, client, charged).await {
            tracing::error!(error = %e, "could not take back a right password's charge");
        }
        if sign_in.at_login {
            if let Some(rule) = &login.confirm {
                let confirmed = self
                    .confirmed_user(rule, response, sign_in.request, &ctx.host, w)
                    .await;
                if confirmed.as_deref() != Some(user.as_str()) {
                    tracing::warn!(app = %app.name, user = %user, "the app says its new session is not this user's; sign-in refused");
                    self.auth
                        .audit(
                            AuditKind::LoginUnconfirmed,
                            &user,
                            &app.name,
                            client,
                            "refused",
                            now,
                        )
                        .await;
                    return self.replace(
                        response,
                        ctx,
                        Route::SignInRefused.path(),
                        Label::LoginUnconfirmed,
                    );
                }
            }
        }
        self.auth
            .audit(AuditKind::LoginOk, &user, &app.name, client, "ok", now)
            .await;
        // The address is the app's word about the user of its own login only.
        if let (Some(name), true) = (&login.email_header, sign_in.at_login) {
            self.auth
                .take_address_from_app(
                    w.config,
                    &user,
                    &app.name,
                    response.headers.get(name),
                    client,
                    now,
                )
                .await;
        }
        // The browser passed this user's second factor already (a single-page app
        // signing in again after its own session ended, or after the challenge its
        // login call was sent to): the app's answer passes, the session stays.
        if let Some(session) = ctx
            .session
            .as_ref()
            .filter(|s| s.user == user && s.second_factor_at.is_some())
        {
            let session = session.id_hash;
            self.bind_credentials(login, response, session, ctx).await;
            ctx.label = Some(Label::LoginSignedIn);
            return Ok(());
        }
        let auth = Authentication {
            user: user.clone(),
            groups: w.config.users.groups(&user),
            second_factor_at: None,
            mfa_opted_in: self.auth.opted_in(&user).await,
            signed_in_at: now,
        };
        let mut unusual = None;
        let factor_asked = app.policy.second_factor_at_sign_in(&auth);
        // Where no second factor is asked, a sign-in that looks unusual is
        // confirmed with an e-mailed code first (a first enrolment is gated where
        // it begins, `challenge::begin`).
        if !factor_asked {
            let gate = self
                .auth
                .sign_in_gate(w.config, &user, sign_in.browser_cookie.as_deref(), client, now)
                .await;
            match gate {
                Err(e) => {
                    tracing::error!(error = %e, "could not tell whether a sign-in is unusual; login withheld");
                    return self.replace(response, ctx, &login.page_target, Label::Error);
                }
                Ok(Gate::Unusual(signals)) => unusual = Some(signals),
                Ok(Gate::Usual(signals)) => {
                    let remembered = self
                        .auth
                        .remember_sign_in(w.config, &user, signals.as_ref(), ctx.secure, now)
                        .await;
                    match remembered {
                        Ok(Some(cookie)) => response.append_header(http::header::SET_COOKIE, cookie)?,
                        Ok(None) => false,
                        Err(e) => {
                            tracing::error!(error = %e, "could not remember a sign-in's browser and network");
                            false
                        }
                    };
                }
            }
        }
        if unusual.is_none() && !factor_asked {
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
                    self.bind_credentials(login, response, issued.record.id_hash, ctx)
                        .await;
                    ctx.label = Some(Label::LoginPasswordOnly);
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not start a session; login withheld");
                    return self.replace(response, ctx, &login.page_target, Label::Error);
                }
            }
        }
        // A browser the user asked to be remembered in passes with the app's answer.
        if let Some(issued) = match unusual {
            Some(_) => None,
            None => {
                self.auth
                    .remembered_sign_in(
                        sign_in.trust_cookie.as_deref(),
                        &user,
                        &app.name,
                        client,
                        now,
                        ctx.secure,
                    )
                    .await
            }
        } {
            response.append_header(
                http::header::SET_COOKIE,
                cookies::set_session(&issued.cookie_value, ctx.secure),
            )?;
            self.bind_credentials(login, response, issued.record.id_hash, ctx)
                .await;
            ctx.label = Some(Label::LoginRemembered);
            return Ok(());
        }
        let withheld = Withheld {
            status: response.status.as_u16(),
            headers: response
                .headers
                .iter()
                .filter(|(name, _)| is_released(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: Vec::new(),
            // Pingora hands an answer without a body to no body filter: it is
            // whole already.
            complete: is_bodiless(response, sign_in.request),
            overflowed: false,
        };
        tracing::info!(user = %user, app = %app.name, cookies = ?withheld.cookie_names(), "login withheld for the second factor");
        let answer = random_token();
        // A login a page's script made (a single-page app's `fetch`) gets JSON its
        // script can read; its answer is released to that script's repeat of the
        // call, never to a page. A navigation goes to the challenge.
        let script_call = is_script_call(sign_in.request);
        let purpose = if script_call {
            Purpose::ScriptLogin {
                answer: answer.clone(),
                back: referring_page(sign_in.request, &ctx.host).unwrap_or_else(|| "/".to_owned()),
            }
        } else {
            Purpose::Login {
                answer: answer.clone(),
            }
        };
        let (redirect, challenge) = match unusual {
            Some(signals) => {
                tracing::info!(user = %user, app = %app.name, "an unusual sign-in; withheld until its e-mailed code comes back");
                challenge::begin_unusual(
                    &self.auth, w.config, app, &user, purpose, signals, ctx.secure, now,
                )
                .await
            }
            None => {
                challenge::begin(&self.auth, w.config, app, &user, purpose, client, ctx.secure, now).await
            }
        };
        let location = redirect
            .header(&http::header::LOCATION)
            .unwrap_or(Route::Unavailable.path());
        let cookie = redirect.header(&http::header::SET_COOKIE);
        let (replacement, then) = if script_call {
            script_challenge(location, cookie, withheld.complete)?
        } else {
            (redirect_header(location, cookie)?, None)
        };
        *response = replacement;
        // The body follows the answer into the store; with no challenge (enrolment
        // closed, store down) it is thrown away.
        ctx.swallow = Some(match challenge {
            None => then.map_or(Swallow::Discard, Swallow::Replace),
            Some(_) if withheld.complete => {
                if let Err(e) = self.auth.challenges.put_answer(&answer, &withheld, now).await {
                    tracing::error!(error = %e, "could not store a withheld answer");
                }
                Swallow::Discard
            }
            Some(_) => Swallow::Into(Box::new(Withholding {
                challenges: self.auth.challenges.clone(),
                answer,
                withheld,
                then,
            })),
        });
        ctx.label = Some(Label::LoginWithheld);
        Ok(())
    }

    /// Who the app's `login.confirm` page says the session of this answer belongs
    /// to (as the browser would hold it: the cookies it sent, the gateway's own
    /// left out, and those the answer sets); `None` when it names nobody or did
    /// not answer in time.
    async fn confirmed_user(
        &self,
        rule: &crate::config::model::ConfirmRule,
        response: &ResponseHeader,
        request: &RequestHeader,
        host: &str,
        w: &Watched<'_>,
    ) -> Option<String> {
        let set_cookies: Vec<SetCookie> = response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| SetCookie::read(v.as_bytes(), w.now))
            .collect();
        // The page is asked with the cookies the browser will hold: its own to the
        // app (never the gateway's), as text (a value that is not is sent as such).
        let sent = cookies::app_cookies(&request.headers).unwrap_or_else(|| {
            let all: Vec<&[u8]> = request
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(http::HeaderValue::as_bytes)
                .collect();
            all.join(&b"; "[..])
        });
        let sent = String::from_utf8_lossy(&sent);
        let jar = confirm::cookies_after(Some(&sent), &set_cookies);
        match confirm::who(self.connector(), w.app, host, rule, &jar).await {
            Ok(Some(name)) => login::canonical_user(w.login, &name).ok().flatten(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(app = %w.app.name, error = %e, "the app's confirming page did not answer");
                None
            }
        }
    }

    /// A login answer that goes out with the gateway session `session`, on a
    /// `login.token` app: the session cookies it sets are bound to that session now,
    /// its token once its body is whole (`watch_token`).
    async fn bind_credentials(
        &self,
        login: &LoginInterception,
        response: &ResponseHeader,
        session: [u8; 32],
        ctx: &mut RequestCtx,
    ) {
        if login.token.is_none() {
            return;
        }
        let now = SystemTime::now();
        let set_cookies = response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(http::HeaderValue::as_bytes);
        for cookie in login.credentials_in(set_cookies, b"", now) {
            if let Err(e) = self.auth.tokens.bind(&cookie, session, now).await {
                tracing::error!(error = %e, "could not store an app session cookie's gateway session");
            }
        }
        ctx.token_watch = TokenWatch::for_login(login, session);
    }

    /// Replaces the app's answer with a redirect of the gateway's; its body is thrown
    /// away as it arrives.
    fn replace(
        &self,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
        location: &str,
        label: Label,
    ) -> Result<()> {
        *response = redirect_header(location, None)?;
        ctx.swallow = Some(Swallow::Discard);
        ctx.label = Some(label);
        Ok(())
    }
}

/// Takes the app's session cookies (set live) out of an answer; the rest stays.
fn drop_session_cookies(
    response: &mut ResponseHeader,
    login: &LoginInterception,
    now: SystemTime,
) -> Result<()> {
    let kept: Vec<http::HeaderValue> = response
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let cookie = SetCookie::read(v.as_bytes(), now);
            !(cookie.live && login.session_cookies.contains(&cookie.name))
        })
        .cloned()
        .collect();
    response.remove_header(&http::header::SET_COOKIE);
    for value in kept {
        response.append_header(http::header::SET_COOKIE, value)?;
    }
    Ok(())
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

/// The documented answer to a script's login call held for the second factor: a
/// JSON 401 naming the challenge's page, in its body and in `Portvakt-Challenge`,
/// with the challenge cookie. The body goes out where the app's ends; an answer
/// without one (`bodiless`: HEAD, 204) reaches no body filter, so the header
/// alone says it.
fn script_challenge(
    location: &str,
    cookie: Option<&str>,
    bodiless: bool,
) -> Result<(ResponseHeader, Option<bytes::Bytes>)> {
    let mut answer = ResponseHeader::build(StatusCode::UNAUTHORIZED, Some(6))?;
    answer.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    answer.insert_header(CHALLENGE_HEADER, location)?;
    answer.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    if let Some(cookie) = cookie {
        answer.insert_header(http::header::SET_COOKIE, cookie)?;
    }
    if bodiless {
        answer.insert_header(http::header::CONTENT_LENGTH, "0")?;
        return Ok((answer, None));
    }
    answer.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    let body = serde_json::json!({
        "error": "second_factor_required",
        "challenge": location,
    });
    Ok((answer, Some(bytes::Bytes::from(body.to_string()))))
}

/// Where a swallowed body chunk goes. The last one sends the whole answer to the
/// store, in a task of its own (a body filter cannot wait); until it is there, a
/// passed challenge waits for Continue.
pub(super) fn swallow(swallow: &mut Swallow, chunk: &[u8], end_of_stream: bool) -> Option<bytes::Bytes> {
    let into = match swallow {
        Swallow::Into(into) => into,
        Swallow::Replace(body) => return end_of_stream.then(|| body.clone()),
        Swallow::Discard => return None,
    };
    into.withheld.append(chunk);
    if !end_of_stream {
        return None;
    }
    into.withheld.complete = true;
    if into.withheld.overflowed {
        // Never released: only the mark that it was too long is kept.
        into.withheld.body = Vec::new();
    }
    let into = std::mem::replace(swallow, Swallow::Discard).into_withholding()?;
    let Withholding {
        challenges,
        answer,
        withheld,
        then,
    } = *into;
    tokio::spawn(async move {
        if let Err(e) = challenges.put_answer(&answer, &withheld, SystemTime::now()).await {
            tracing::error!(error = %e, "could not store a withheld answer");
        }
    });
    then
}

impl Swallow {
    fn into_withholding(self) -> Option<Box<Withholding>> {
        match self {
            Swallow::Into(into) => Some(into),
            Swallow::Discard | Swallow::Replace(_) => None,
        }
    }
}

/// A login answer that passes to the browser with a gateway session, on an app
/// whose token it carries (`login.token`): held whole (up to a limit) so that its
/// token is bound to the session before the browser can use it.
pub struct TokenWatch {
    pointer: String,
    session: [u8; 32],
    body: Vec<u8>,
}

/// A login answer larger than this goes out as it comes, and its token unbound.
const TOKEN_ANSWER_LIMIT: usize = 256 * 1024;

impl TokenWatch {
    fn for_login(login: &LoginInterception, session: [u8; 32]) -> Option<TokenWatch> {
        let pointer = login.token.clone()?;
        Some(TokenWatch {
            pointer,
            session,
            body: Vec::new(),
        })
    }
}

/// Holds the chunks of a watched answer; binds its token and lets it all go at
/// its end. `None` once there is nothing more to watch.
pub(super) fn watch_token(
    watch: &mut Option<TokenWatch>,
    tokens: &TokenBindings,
    body: &mut Option<bytes::Bytes>,
    end_of_stream: bool,
) {
    let Some(held) = watch else { return };
    if let Some(chunk) = body.take() {
        held.body.extend_from_slice(&chunk);
    }
    if held.body.len() > TOKEN_ANSWER_LIMIT {
        tracing::warn!("a login answer too long to read its token; passed on with the token unbound");
    } else if !end_of_stream {
        return;
    } else if let Some(token) = json_token(&held.body, &held.pointer) {
        let stored = tokens.bind(&token, held.session, SystemTime::now());
        tokio::spawn(async move {
            if let Err(e) = stored.await {
                tracing::error!(error = %e, "could not store a token's session");
            }
        });
    }
    let whole = std::mem::take(&mut held.body);
    *body = Some(bytes::Bytes::from(whole));
    *watch = None;
}

/// A request a page's script made (`fetch`, XMLHttpRequest), as the browser says
/// with Fetch Metadata or the header script libraries add. A client that says
/// neither is taken for a form: it gets the redirect it always got.
fn is_script_call(request: &RequestHeader) -> bool {
    let mode = request
        .headers
        .get("sec-fetch-mode")
        .map(http::HeaderValue::as_bytes);
    mode.is_some_and(|m| m != b"navigate") || request.headers.contains_key("x-requested-with")
}

/// The same-host page a request was made from (its `Referer`), as a path to
/// return to; `None` for another host or none.
fn referring_page(request: &RequestHeader, host: &str) -> Option<String> {
    let referer = request.headers.get(http::header::REFERER)?.to_str().ok()?;
    let uri: http::Uri = referer.parse().ok()?;
    let same_host = uri
        .authority()
        .is_some_and(|a| a.as_str().eq_ignore_ascii_case(host));
    if !same_host {
        return None;
    }
    let path = uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
    // The gateway's own pages are no page to come back to (a planted challenge
    // could otherwise end in a sign-out).
    if crate::portal::route::is_gateway_path(uri.path()) {
        return None;
    }
    Some(crate::portal::return_path::safe_return_path(path).to_owned())
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

/// Whether a header of the app's answer is kept for its release: not the framing
/// of this connection (hop-by-hop headers, the length, which the release sets
/// anew for the body it writes).
fn is_released(name: &http::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "proxy-connection"
    ) && *name != http::header::CONTENT_LENGTH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(referer: &str) -> Option<String> {
        let mut request = RequestHeader::build("POST", b"/api/login", None).unwrap();
        request.insert_header(http::header::REFERER, referer).unwrap();
        referring_page(&request, "app.test:8080")
    }

    /// Back to the calling page of the same host only, and never to one of the
    /// gateway's own pages (a planted challenge must not end in a sign-out).
    #[test]
    fn a_script_login_returns_only_to_a_page_of_the_app() {
        assert_eq!(
            from("http://app.test:8080/reports?q=1").as_deref(),
            Some("/reports?q=1")
        );
        assert_eq!(from("http://APP.test:8080/x").as_deref(), Some("/x"));
        for elsewhere in [
            "http://evil.test/x",
            "http://app.test/x",
            "http://app.test:8080/.portvakt/logout",
            "http://app.test:8080/.portvakt/account/sign-out-everywhere",
            "/relative",
        ] {
            assert_eq!(from(elsewhere), None, "{elsewhere}");
        }
        assert_eq!(from("http://app.test:8080//evil.test/x").as_deref(), Some("/"));
    }
}
