//! Admission: everything `request_filter` decides before a request is forwarded or
//! answered — client address, header hygiene, host and path, the session, the app's
//! login and logout, and the policy decision.

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use http::StatusCode;
use pingora::prelude::*;

use super::app_password::AppPasswordRequest;
use super::basic::BasicSignIn;
use super::gateway::{authentication, is_navigation, Gateway, RequestCtx};
use super::headers;
use super::login::RequestCapture;
use super::target;
use crate::auth::challenge::Purpose;
use crate::auth::cookies;
use crate::auth::tokens::TokenCheck;
use crate::config::model::LoginInterception;
use crate::config::model::GATEWAY_LOGIN_PAGE;
use crate::config::Config;
use crate::login::bearer::bearer_token;
use crate::policy::{self, NormalisedPath, Outcome, RequestFacts};
use crate::portal::answer::{Answer, Label};
use crate::portal::return_path::safe_return_path;
use crate::portal::route::{self, Route};
use crate::portal::views::{self, ErrorKind, Lang};
use crate::portal::{challenge, cross_site};

impl Gateway {
    /// Everything `request_filter` decides, in order.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        config: &Config,
        tls: bool,
    ) -> Result<Admission, Stop> {
        // Asked of the connection before the request is borrowed below: an HTTP/2
        // body needs no length header to be there.
        let body_empty = session.is_body_empty();
        // Read before the header is stripped with the others below.
        let asks_release = session.req_header().headers.contains_key(headers::RELEASE);
        // Read what a trusted proxy says about the client, then strip every header a
        // client must not send upstream — before anything else looks at the request.
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip());
        let origin =
            headers::client_origin(peer, &session.req_header().headers, &config.trusted_proxies, tls);
        for name in headers::names_to_strip(config, &session.req_header().headers) {
            session.req_header_mut().remove_header(&name);
        }
        let origin = origin.map_err(Refusal::bad_request)?;
        let client_ip = origin.ip;
        ctx.secure = origin.proto == "https";
        ctx.origin = Some(origin);

        let req = session.req_header();
        let target = target::parse(req).map_err(Refusal::bad_request)?;
        ctx.host = target.authority.as_str().to_owned();
        let (app_index, app) = config
            .app_for_host(target.authority.host(), target.authority.port_u16())
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    ErrorKind::UnknownHost,
                    Label::UnknownHost,
                )
            })?;
        ctx.app = Some(app_index);

        let target_len = target.path.len() + target.query.map_or(0, |q| q.len() + 1);
        if target_len > config.server.max_uri_length {
            return Err(
                Refusal::new(StatusCode::URI_TOO_LONG, ErrorKind::UriTooLong, Label::BadRequest).into(),
            );
        }
        let path = policy::normalise(target.path).map_err(Refusal::bad_request)?;
        if route::is_gateway_path(path.decoded()) {
            let route = Route::parse(path.decoded());
            ctx.path = Some(path);
            self.resume_session(session, ctx, config).await;
            return Ok(Admission::Portal(route));
        }
        ctx.upstream_uri = Some(upstream_target(req, &path, target.query)?);
        // A standard method is an enum: this copies no string.
        let method = req.method.clone();
        let method = method.as_str();
        self.resume_session(session, ctx, config).await;

        // The app's own login, its login page and its logout pass to the app,
        // whatever the route rules say: exactly those requests (method, path and
        // query conditions), never everything else a front controller serves there.
        if let Some(login) = app.app_form() {
            let key = rule_path(&path);
            let query = target.query;
            ctx.watched = true;
            // On an app where one script serves every page, these requests name
            // nothing but their conditions (and the return parameter): another key
            // could make the script serve another page.
            let extra = login.return_param.as_slice();
            if key == login.path && method == login.method.as_str() && login.query.met_by(query, extra) {
                // The overlay repeating a call whose factor was just passed: the
                // app's withheld answer, if this browser has one waiting; else the
                // login goes to the app like any other.
                if asks_release {
                    if let Some(answer) = self.released_answer(ctx, login).await? {
                        return Err(Stop::Answer(answer));
                    }
                }
                let mut capture = RequestCapture::new(session.req_header(), true, body_empty, login.max_body);
                capture.trust_cookie = cookies::find(
                    &session.req_header().headers,
                    cookies::trust_cookie_name(ctx.secure),
                )
                .map(str::to_owned);
                capture.browser_cookie = cookies::find(
                    &session.req_header().headers,
                    cookies::browser_cookie_name(ctx.secure),
                )
                .map(str::to_owned);
                ctx.capture = Some(capture);
                ctx.label = Some(Label::Login);
                ctx.path = Some(path);
                // Judged by its body: read whole before the browser is answered.
                if login.success.json.is_some() {
                    let answer = self.login_read_whole(session, ctx, app, login).await?;
                    return Err(Stop::Answer(answer));
                }
                return Ok(Admission::Forward);
            }
            // Any other answer that sets the app's session cookie is a sign-in too.
            // Only with login.confirm does the body of another request matter: it
            // must then not name someone else than the app confirms.
            if login.confirm.is_some() && !login.session_cookies.is_empty() && !body_empty {
                let capture = RequestCapture::new(session.req_header(), false, body_empty, login.max_body);
                ctx.capture = Some(capture);
            }
            // Exactly the page: `/login/` may be another page of the app, which
            // the route rules must judge.
            if path.decoded() == login.page
                && matches!(method, "GET" | "HEAD")
                && login.page_query.met_by(query, extra)
            {
                ctx.label = Some(Label::LoginPage);
                ctx.path = Some(path);
                return Ok(Admission::Forward);
            }
            // Another site can make the browser load the app's logout: that ends
            // the gateway's session only when the browser itself asked (the app
            // still gets the request, as it always did, and decides for its own).
            if login.logout_path.as_deref() == Some(key)
                && login.logout_query.met_by(query, extra)
                && !cross_site::is_cross_site(&session.req_header().headers, ctx.secure, &ctx.host)
            {
                self.end_at_logout(ctx).await?;
                ctx.session = None;
                ctx.path = Some(path);
                return Ok(Admission::Forward);
            }
        }

        if let Some(login) = app.app_form().filter(|login| login.token.is_some()) {
            self.check_token(session, ctx, login).await?;
        }

        // A client with an app password (HTTP Basic) and no session: checked here,
        // forwarded with the identity it stands for, never given a session.
        if ctx.session.is_none() && !ctx.session_unknown {
            let request = AppPasswordRequest {
                headers: &session.req_header().headers,
                method,
                path: &path,
                client: client_ip,
                now: SystemTime::now(),
            };
            if let Some(admitted) = self.app_password(config, app, request).await? {
                ctx.identity = Some(admitted.auth);
                ctx.decision = Some(admitted.decision);
                ctx.app_password = Some(admitted.used);
                ctx.basic_app = app.basic_login().is_some();
                ctx.label = Some(Label::AppPassword);
                ctx.path = Some(path);
                return Ok(Admission::Forward);
            }
        } else if app.basic_login().is_none()
            && app.policy.may_take_app_passwords()
            && super::app_password::carries_one(&session.req_header().headers)
        {
            // The session decides this request; the app password is nobody's
            // business upstream.
            session
                .req_header_mut()
                .remove_header(&http::header::AUTHORIZATION);
        }

        // A Basic app: the credentials name the user of every request, and a
        // session of someone else is never theirs (nor is it used for them).
        let basic = app.basic_login();
        ctx.basic_app = basic.is_some();
        let basic_logout = basic
            .and_then(|b| b.logout_path.as_deref())
            .is_some_and(|logout| logout == rule_path(&path));
        let basic_user = match basic {
            Some(_) => Some(credentials_user(session.req_header())?),
            None => None,
        };
        if let Some(Some(user)) = &basic_user {
            if ctx.session.as_ref().is_some_and(|s| &s.user != user) {
                ctx.session = None;
            }
        }
        let auth = ctx.session.as_ref().map(|s| authentication(s, config));
        let now = SystemTime::now();
        let decide = |method: &str| {
            app.policy.decide(&RequestFacts {
                method,
                path: &path,
                client_ip,
                auth: auth.as_ref(),
                now,
            })
        };
        // A page load that sends a form kept across a step-up is judged as the
        // POST it becomes, and sends it only if that POST may pass.
        let mut decision = decide(method);
        let kept_form = self
            .kept_form_to_send(session.req_header(), ctx, app, body_empty, now)
            .await;
        if let Some(id) = kept_form {
            let as_posted = decide("POST");
            if matches!(as_posted.outcome, Outcome::Forward | Outcome::Allow)
                && self.take_kept_form(ctx, app, &id, now).await
            {
                decision = as_posted;
            }
        }
        ctx.decision = Some(decision);
        // Without the store, a request that needs to know who is signed in gets the
        // gateway's 503 page: neither passed on, nor sent to sign in again.
        if ctx.session_unknown && !matches!(decision.outcome, Outcome::Forward | Outcome::Deny) {
            return Err(
                Refusal::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Internal, Label::Error).into(),
            );
        }
        ctx.path = Some(path);
        // The Basic app's own logout, by the session's user and asked by the
        // browser itself (not another site): the gateway's session ends too.
        if basic_logout
            && decision.outcome == Outcome::Allow
            && !cross_site::is_cross_site(&session.req_header().headers, ctx.secure, &ctx.host)
        {
            self.end_at_logout(ctx).await?;
        }
        // Without a session, a Basic app's request is answered by the gateway: its
        // check of the credentials, then the app's 401 or the second factor.
        if let (Some(user), Outcome::SignIn) = (basic_user, decision.outcome) {
            let sign_in = BasicSignIn {
                user,
                authorization: session.req_header().headers.get(http::header::AUTHORIZATION),
                return_to: return_path(method, ctx.upstream_uri.as_ref()),
                navigating: is_navigation(session.req_header()),
                host: &ctx.host,
                client: client_ip,
                secure: ctx.secure,
                now,
                browser_cookie: cookies::find(
                    &session.req_header().headers,
                    cookies::browser_cookie_name(ctx.secure),
                ),
            };
            return Err(Stop::Answer(self.basic_sign_in(config, app, sign_in).await));
        }
        // Only a browser navigating to a page is sent to sign in or to a challenge.
        // Background fetches (favicons, images, API calls) get a plain 401: sending
        // them to the app's login form would reload it behind the user's back (and
        // rotate its CSRF token), and would replace a challenge in progress.
        if matches!(
            decision.outcome,
            Outcome::SignIn | Outcome::SecondFactor | Outcome::StepUp
        ) && !is_navigation(session.req_header())
        {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                ErrorKind::SignInRequired,
                decision.outcome.into(),
            )
            .into());
        }
        match decision.outcome {
            Outcome::Forward => Ok(Admission::Forward),
            Outcome::Allow => {
                ctx.identity = auth;
                Ok(Admission::Forward)
            }
            Outcome::Deny => Err(Refusal::new(StatusCode::FORBIDDEN, ErrorKind::Denied, Label::Deny).into()),
            Outcome::SignIn if self.signing_in(session, ctx, &app.name, now).await => {
                // A sign-in of this app is waiting for its second factor in this
                // browser (a script's login call was sent there): go and finish it.
                let page = Route::Challenge(route::ChallengePage::Verify).path();
                Err(Stop::Answer(Answer::redirect(page, Label::SecondFactor)))
            }
            Outcome::SignIn => match app.sign_in_page() {
                Some(GATEWAY_LOGIN_PAGE) => {
                    let location = format!(
                        "{GATEWAY_LOGIN_PAGE}?return={}",
                        encode_component(&return_path(method, ctx.upstream_uri.as_ref()))
                    );
                    Err(Stop::Answer(Answer::redirect(&location, Label::SignIn)))
                }
                Some(page) => {
                    let next = app.app_form().and_then(|form| form.return_param.as_deref());
                    let location = match next {
                        Some(param) => format!(
                            "{page}{}{param}={}",
                            if page.contains('?') { '&' } else { '?' },
                            encode_component(safe_return_path(&return_path(
                                method,
                                ctx.upstream_uri.as_ref()
                            )))
                        ),
                        None => page.to_owned(),
                    };
                    Err(Stop::Answer(Answer::redirect(&location, Label::SignIn)))
                }
                None => Err(
                    Refusal::new(StatusCode::UNAUTHORIZED, ErrorKind::SignInRequired, Label::SignIn).into(),
                ),
            },
            Outcome::SecondFactor | Outcome::StepUp => {
                let user = ctx.session.as_ref().map(|s| s.user.clone()).unwrap_or_default();
                // A form posted where the factor has gone stale is kept, and
                // sent once the step-up is passed.
                let kept = match (decision.outcome, method) {
                    (Outcome::StepUp, "POST") => self.keep_posted_form(session, ctx, config, app, now).await,
                    _ => None,
                };
                let purpose = match kept {
                    Some(kept) => Purpose::Resume { kept },
                    None => Purpose::Return(return_path(method, ctx.upstream_uri.as_ref())),
                };
                let (answer, _) = challenge::begin(
                    &self.auth, config, app, &user, purpose, client_ip, ctx.secure, now,
                )
                .await;
                Err(Stop::Answer(answer))
            }
        }
    }

    /// Ends the request's gateway session at the app's logout. A session the store
    /// cannot end stops the logout with 503: passed on, the app would end its
    /// session while the gateway's lived on. The user tries again in a moment.
    async fn end_at_logout(&self, ctx: &mut RequestCtx) -> Result<(), Stop> {
        if let Some(cookie) = &ctx.session_cookie {
            if let Err(e) = self.auth.sessions.end(cookie, ctx.secure).await {
                tracing::error!(error = %e, "could not end a session at logout; the logout is refused");
                return Err(
                    Refusal::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Internal, Label::Error).into(),
                );
            }
        }
        ctx.logout = true;
        ctx.label = Some(Label::Logout);
        Ok(())
    }

    /// The script login's answer waiting for this browser's session, taken out.
    /// Its token and session cookies (for `login.token`) go with that session from
    /// now on.
    async fn released_answer(
        &self,
        ctx: &mut RequestCtx,
        login: &LoginInterception,
    ) -> Result<Option<Answer>, Stop> {
        let (Some(session), Some(cookie)) = (&ctx.session, &ctx.session_cookie) else {
            return Ok(None);
        };
        let now = SystemTime::now();
        let unavailable = |e: crate::store::StoreError| -> Stop {
            tracing::error!(error = %e, "could not release a login answer");
            Refusal::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Internal, Label::Error).into()
        };
        let Some(withheld) = self
            .auth
            .challenges
            .take_release(cookie, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        for credential in login.credentials_in(withheld.set_cookies(), &withheld.body, now) {
            self.auth
                .tokens
                .bind(&credential, session.id_hash, now)
                .await
                .map_err(unavailable)?;
        }
        Ok(Some(Answer::released(withheld, Label::Released)))
    }

    /// On a `login.token` app, a bearer token or app session cookie the gateway
    /// released with another session (or with one, to a request that has none) is
    /// refused.
    async fn check_token(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        login: &LoginInterception,
    ) -> Result<(), Stop> {
        let headers = &session.req_header().headers;
        let mut credentials = Vec::new();
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => match bearer_token(value.as_bytes()) {
                Ok(Some(token)) => credentials.push(token),
                Ok(None) => {}
                Err(_) => {
                    return Err(
                        Refusal::bad_request("a bearer token that cannot be read one way only").into(),
                    )
                }
            },
            (None, _) => {}
            (Some(_), Some(_)) => {
                return Err(Refusal::bad_request("more than one Authorization header").into())
            }
        }
        let cookies = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| login.session_cookies.contains(name.trim()))
            .map(|(_, value)| value.trim().trim_matches('"'));
        credentials.extend(cookies);
        let id = ctx.session.as_ref().map(|s| s.id_hash);
        let now = SystemTime::now();
        for credential in credentials {
            match self.auth.tokens.check(credential, id, now).await {
                Ok(TokenCheck::NotYours) => {
                    tracing::warn!(
                        "an app token or session cookie released with another gateway session; refused"
                    );
                    let refusal = Refusal::new(
                        StatusCode::UNAUTHORIZED,
                        ErrorKind::SignInRequired,
                        Label::TokenRefused,
                    );
                    return Err(refusal.into());
                }
                Ok(TokenCheck::Yours | TokenCheck::Unknown) => {}
                Err(e) => {
                    tracing::error!(error = %e, "could not look up an app token's session");
                    let refusal =
                        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Internal, Label::Error);
                    return Err(refusal.into());
                }
            }
        }
        Ok(())
    }

    /// Whether the request's challenge cookie names a live challenge of this app.
    async fn signing_in(&self, session: &Session, ctx: &RequestCtx, app: &str, now: SystemTime) -> bool {
        let name = challenge::challenge_cookie_name(ctx.secure);
        let Some(id) = cookies::find(&session.req_header().headers, name) else {
            return false;
        };
        match self.auth.challenges.get(id, now).await {
            Ok(Some(challenge)) => challenge.lock().is_ok_and(|c| c.app == app),
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, "could not look up a challenge in progress");
                false
            }
        }
    }

    /// Finds the session the request's cookie names. A store that cannot answer
    /// leaves no session and marks it unknown: the auth path fails closed.
    pub(super) async fn resume_session(&self, session: &Session, ctx: &mut RequestCtx, config: &Config) {
        let name = cookies::session_cookie_name(ctx.secure);
        let Some(value) = cookies::find(&session.req_header().headers, name).map(str::to_owned) else {
            return;
        };
        let Some(app) = ctx.app.and_then(|i| config.apps.get(i)).map(|a| a.name.as_str()) else {
            return;
        };
        match self
            .auth
            .sessions
            .resume(&value, app, &config.session, SystemTime::now(), ctx.secure)
            .await
        {
            Ok(found) => ctx.session = found,
            Err(e) => {
                tracing::error!(error = %e, "could not look up a session; what needs one is refused with 503");
                ctx.session_unknown = true;
            }
        }
        ctx.session_cookie = Some(value);
    }
}

/// Who a Basic app's request names in its credentials (one account however the
/// name is typed); `None` without credentials. What could be read two ways is a 400.
fn credentials_user(req: &pingora::http::RequestHeader) -> Result<Option<String>, Refusal> {
    let values = req.headers.get_all(http::header::AUTHORIZATION);
    let named = crate::login::basic::basic_user(values.iter().map(http::HeaderValue::as_bytes))
        .map_err(Refusal::bad_request)?;
    let Some(name) = named else {
        return Ok(None);
    };
    super::login::canonical_name(&name, false)
        .map_err(Refusal::bad_request)?
        .ok_or_else(|| Refusal::bad_request("the credentials name no user"))
        .map(Some)
}

/// The target sent upstream: exactly the path the policy sees, the query as sent.
/// Most targets come through normalisation unchanged: then the client's own,
/// already parsed, is reused rather than formatted and parsed again.
fn upstream_target(
    req: &pingora::http::RequestHeader,
    path: &NormalisedPath,
    query: Option<&str>,
) -> Result<http::Uri, Refusal> {
    let raw = req.raw_path();
    let unchanged = raw
        .strip_prefix(path.forwarded().as_bytes())
        .is_some_and(|rest| match query {
            None => rest.is_empty(),
            Some(q) => rest.strip_prefix(b"?") == Some(q.as_bytes()),
        });
    // Pingora's parsed copy is lossy for targets that are not UTF-8: reused only
    // when it says the very same bytes (without the scheme and authority of HTTP/2).
    let as_sent = req
        .uri
        .path_and_query()
        .filter(|pq| pq.as_str().as_bytes() == raw);
    if let (true, Some(as_sent)) = (unchanged, as_sent) {
        return Ok(http::Uri::from(as_sent.clone()));
    }
    let forwarded = match query {
        Some(q) => format!("{}?{q}", path.forwarded()),
        None => path.forwarded().to_owned(),
    };
    forwarded
        .parse::<http::Uri>()
        .map_err(|_| Refusal::bad_request("the query string holds characters that cannot be forwarded"))
}

/// Where a browser goes back to after signing in or a challenge: the page it
/// asked for (GET and HEAD), else the app's root. Built only for requests sent
/// there, not for every request passed on.
fn return_path(method: &str, target: Option<&http::Uri>) -> String {
    match method {
        "GET" | "HEAD" => target.map_or("/".to_owned(), ToString::to_string),
        _ => "/".to_owned(),
    }
}

/// A path as rules and login settings write it: decoded, no trailing slash.
fn rule_path(path: &NormalisedPath) -> &str {
    let trimmed = path.decoded().trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}

/// What `admit` lets through.
pub(super) enum Admission {
    /// Forward upstream (`ctx` holds the app, the target and the decision).
    Forward,
    /// A path under `/.portvakt/`: the page it names, if any.
    Portal(Option<Route>),
}

/// Why `admit` stopped a request.
pub(super) enum Stop {
    Refuse(Refusal),
    /// A full answer, such as a redirect to sign in.
    Answer(Answer),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refuse(refusal)
    }
}

/// Why the gateway answers a request itself instead of forwarding it.
pub(super) struct Refusal {
    status: StatusCode,
    kind: ErrorKind,
    /// The decision label for logs and metrics.
    label: Label,
    /// One sentence for the user about what was wrong with the request.
    detail: Option<String>,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, kind: ErrorKind, label: Label) -> Self {
        Refusal {
            status,
            kind,
            label,
            detail: None,
        }
    }

    /// The error page that says so.
    pub(super) fn into_answer(self, lang: Lang, reference: &str) -> Answer {
        let page = views::error(self.status, self.kind, lang, self.detail.as_deref(), reference);
        Answer::page(page, self.label)
    }

    pub(super) fn bad_request(why: impl std::fmt::Display) -> Self {
        Refusal {
            detail: Some(why.to_string()),
            ..Refusal::new(StatusCode::BAD_REQUEST, ErrorKind::BadRequest, Label::BadRequest)
        }
    }
}

/// Percent-encodes a value for a query string.
pub(super) fn encode_component(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
