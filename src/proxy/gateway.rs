//! The Pingora `ProxyHttp` implementation. Phases, in the order Pingora runs them:
//!
//! ```text
//! request_filter           strip identity/forwarding headers, client address, host → app,
//!                          normalise the path, resume the session, answer /.portvakt/*,
//!                          notice the app's login and logout, decide; refuse, redirect or go on
//! request_body_filter      copy the login body as it streams to the app (for the user name)
//! upstream_peer            the app's upstream (resolved at config load, pooled by Pingora)
//! upstream_request_filter  forward the normalised path, Host, X-Forwarded-*, identity
//! upstream_response_filter upstream latency
//! response_filter          after a login: pass the app's answer, or withhold it and send
//!                          the browser to the second factor instead
//! response_body_filter     keep a withheld answer's body back
//! fail_to_proxy            gateway error page (502 when the app cannot be reached)
//! logging                  one access-log line and the request metrics
//! ```

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;

use super::answer::{self, Answer};
use super::auth::AuthServices;
use super::gateway_login;
use super::headers::{self, ClientOrigin};
use super::identity::{self, unix, Claims};
use super::login::{self, LoginCapture};
use super::return_path::safe_return_path;
use super::second_factor::{self, PageRequest};
use super::target;
use crate::config::model::{SignIn, UpstreamHeaders, GATEWAY_LOGIN_PAGE};
use crate::config::reload::SharedConfig;
use crate::config::Config;
use crate::pages::{self, ErrorKind, Lang};
use crate::policy::{self, Authentication, Decision, NormalisedPath, Outcome, RequestFacts};
use crate::session::challenge::{Challenge, Purpose, SharedChallenge, Stage, Withheld};
use crate::session::{cookies, SignInMethod};
use crate::store::SessionRecord;
use crate::telemetry::Metrics;

pub struct Gateway {
    config: SharedConfig,
    metrics: Arc<Metrics>,
    auth: Arc<AuthServices>,
}

impl Gateway {
    pub fn new(config: SharedConfig, metrics: Arc<Metrics>, auth: Arc<AuthServices>) -> Self {
        Gateway {
            config,
            metrics,
            auth,
        }
    }
}

/// What one request learns on its way through the phases.
pub struct RequestCtx {
    started: Instant,
    /// The configuration this request runs under from start to end, even if a reload
    /// swaps in another meanwhile.
    config: Option<Arc<Config>>,
    app: Option<usize>,
    origin: Option<ClientOrigin>,
    host: String,
    path: Option<NormalisedPath>,
    decision: Option<Decision>,
    /// The label for logs and metrics when no policy decision tells the story (the
    /// gateway answered itself, or forwarded the app's login or logout).
    label: Option<&'static str>,
    /// Cookies for HTTPS only (the listener, or a trusted proxy in front, is HTTPS).
    secure: bool,
    /// The live session the request carried.
    session: Option<SessionRecord>,
    /// The session cookie's value as sent, to end it on logout.
    session_cookie: Option<String>,
    /// Who the app is told the user is (set when the decision was `Allow`).
    identity: Option<Authentication>,
    /// A login request being watched on its way to the app.
    login: Option<LoginCapture>,
    /// The request was the app's logout: end the gateway session too.
    logout: bool,
    /// The app's login answer is being held back; its body goes here.
    withholding: Option<SharedChallenge>,
    upstream_started: Option<Instant>,
    /// The origin-form target to send upstream, built from the normalised path.
    upstream_uri: Option<http::Uri>,
    /// Ties an error page to its log line; formatted only when shown.
    reference: Reference,
}

#[derive(Clone, Copy)]
struct Reference(u64);

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl RequestCtx {
    fn app<'c>(&self, config: &'c Config) -> Option<&'c crate::config::App> {
        self.app.and_then(|i| config.apps.get(i))
    }

    /// Runs `f` on the app of an admitted request. Phases after `request_filter` run
    /// only for admitted requests, so a missing app is a bug: the request fails
    /// instead of going anywhere.
    fn on_app<T>(&self, f: impl FnOnce(&crate::config::App) -> T) -> Result<T> {
        self.config
            .as_deref()
            .and_then(|c| self.app(c))
            .map(f)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no app for an admitted request"))
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            config: None,
            app: None,
            origin: None,
            host: String::new(),
            path: None,
            decision: None,
            label: None,
            secure: false,
            session: None,
            session_cookie: None,
            identity: None,
            login: None,
            logout: false,
            withholding: None,
            upstream_started: None,
            upstream_uri: None,
            reference: Reference(rand::random()),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let config = self.config.load_full();
        ctx.config = Some(config.clone());
        let tls = is_tls(session);
        let lang = page_language(&config, session.req_header());
        let answer = match self.admit(session, ctx, &config, tls).await {
            Ok(Admission::Forward) => return Ok(false),
            Ok(Admission::GatewayPage(page)) => self.gateway_page(session, ctx, &config, &page, lang).await,
            Err(Stop::Refuse(refusal)) => {
                let reference = ctx.reference.to_string();
                let page = pages::error(
                    refusal.status,
                    refusal.kind,
                    lang,
                    refusal.detail.as_deref(),
                    &reference,
                );
                Answer::page(page, refusal.label)
            }
            Err(Stop::Answer(answer)) => answer,
        };
        ctx.label = Some(answer.label);
        answer::write(session, &answer, tls).await?;
        Ok(true)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(capture) = ctx.login.as_mut() else {
            return Ok(());
        };
        let limit = ctx
            .config
            .as_deref()
            .and_then(|c| ctx.app.and_then(|i| c.apps.get(i)))
            .and_then(|app| app.app_form())
            .map_or(0, |l| l.max_body);
        if let Some(chunk) = body {
            if !capture.push(chunk, limit) {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "the login body is larger than login.max_body",
                ));
            }
        }
        capture.complete |= end_of_stream;
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let peer = ctx.on_app(|app| {
            let upstream = &app.upstream;
            let mut peer = HttpPeer::new(upstream.addr, upstream.tls, upstream.sni.clone());
            peer.options.verify_cert = upstream.verify_tls;
            peer.options.verify_hostname = upstream.verify_tls;
            peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
            peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
            peer
        })?;
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let host_header = ctx.on_app(|app| app.host_header.clone())?;
        let uri = ctx
            .upstream_uri
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no target for an admitted request"))?;
        upstream_request.set_uri(uri);
        let host = host_header.as_deref().unwrap_or(&ctx.host);
        upstream_request.insert_header(http::header::HOST, host)?;
        if let Some(origin) = &ctx.origin {
            upstream_request.insert_header("x-forwarded-for", &origin.forwarded_for)?;
            upstream_request.insert_header("x-forwarded-proto", origin.proto)?;
        }
        upstream_request.insert_header("x-forwarded-host", &ctx.host)?;
        if let (Some(identity), Some(session)) = (&ctx.identity, &ctx.session) {
            let (app_name, names) = ctx.on_app(|app| (app.name.clone(), app.upstream_headers.clone()))?;
            self.send_identity(upstream_request, identity, session, &app_name, &names)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started {
            let seconds = started.elapsed().as_secs_f64();
            ctx.on_app(|app| {
                self.metrics
                    .upstream_seconds
                    .with_label_values(&[app.name.as_str()])
                    .observe(seconds)
            })?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.logout {
            upstream_response.append_header(http::header::SET_COOKIE, cookies::clear_session(ctx.secure))?;
        }
        if let Some(capture) = ctx.login.take() {
            self.after_login(upstream_response, capture, ctx).await?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(challenge) = &ctx.withholding {
            if let Some(chunk) = body.take() {
                let mut challenge = challenge
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Purpose::Login(withheld) = &mut challenge.purpose {
                    withheld.append(&chunk);
                }
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let (status, kind) = match e.etype() {
            ErrorType::HTTPStatus(code) => (
                StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY),
                if *code < 500 {
                    ErrorKind::BadRequest
                } else {
                    ErrorKind::UpstreamUnavailable
                },
            ),
            _ => match e.esource() {
                ErrorSource::Upstream => (StatusCode::BAD_GATEWAY, ErrorKind::UpstreamUnavailable),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        return FailToProxy {
                            error_code: 0,
                            can_reuse_downstream: false,
                        }
                    }
                    _ => (StatusCode::BAD_REQUEST, ErrorKind::BadRequest),
                },
                ErrorSource::Internal | ErrorSource::Unset => {
                    (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal)
                }
            },
        };
        tracing::warn!(reference = %ctx.reference, error = %e, status = status.as_u16(), "request failed");
        let lang = match ctx.config.as_deref() {
            Some(config) => page_language(config, session.req_header()),
            None => Lang::negotiate(header_str(session.req_header(), "accept-language")),
        };
        let page = pages::error(status, kind, lang, None, &ctx.reference.to_string());
        let tls = is_tls(session);
        if let Err(write_error) = answer::write(session, &Answer::page(page, "error"), tls).await {
            tracing::debug!(error = %write_error, "could not send the error page");
        }
        FailToProxy {
            error_code: status.as_u16(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let config = ctx.config.as_deref();
        let app = config.and_then(|c| ctx.app(c)).map_or("-", |a| a.name.as_str());
        let decision = ctx
            .label
            .or_else(|| ctx.decision.map(|d| d.outcome.label()))
            .unwrap_or("error");
        let rule = match (
            ctx.decision.map(|d| d.decided_by),
            config.and_then(|c| ctx.app(c)),
        ) {
            (Some(policy::DecidedBy::Rule(i) | policy::DecidedBy::IdentityNeeded(i)), Some(app)) => app
                .policy
                .routes
                .rules()
                .get(i)
                .map_or("-", |r| r.origin.as_str()),
            (Some(policy::DecidedBy::AppDefault), _) => "app default",
            (Some(policy::DecidedBy::NoRuleAdmits), _) => "no rule admits",
            _ => "-",
        };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.metrics.requests.with_label_values(&[app, decision]).inc();
        tracing::info!(
            target: "portvakt::access",
            app,
            host = %ctx.host,
            method = %session.req_header().method,
            path = ctx.path.as_ref().map_or("-", |p| p.forwarded()),
            client = %ctx.origin.as_ref().map_or_else(|| "-".to_owned(), |o| o.ip.to_string()),
            user = ctx.session.as_ref().map_or("-", |s| s.user.as_str()),
            rule,
            decision,
            status,
            latency_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            reference = %ctx.reference,
            error = error.map(|e| e.to_string()),
        );
    }
}

impl Gateway {
    /// Everything `request_filter` decides, in order.
    async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        config: &Config,
        tls: bool,
    ) -> Result<Admission, Stop> {
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
                    "unknown_host",
                )
            })?;
        ctx.app = Some(app_index);

        let target_len = target.path.len() + target.query.map_or(0, |q| q.len() + 1);
        if target_len > config.server.max_uri_length {
            return Err(Refusal::new(StatusCode::URI_TOO_LONG, ErrorKind::UriTooLong, "bad_request").into());
        }
        let path = policy::normalise(target.path).map_err(Refusal::bad_request)?;
        if let Some(page) = path.decoded().strip_prefix(pages::PREFIX) {
            let page = page.to_owned();
            ctx.path = Some(path);
            self.resume_session(session, ctx, config).await;
            return Ok(Admission::GatewayPage(page));
        }
        // The target sent upstream: exactly the path the policy sees, the query as sent.
        let forwarded = match target.query {
            Some(q) => format!("{}?{q}", path.forwarded()),
            None => path.forwarded().to_owned(),
        };
        let upstream_uri = forwarded.parse::<http::Uri>().map_err(|_| {
            Refusal::bad_request("the query string holds characters that cannot be forwarded")
        })?;
        ctx.upstream_uri = Some(upstream_uri);
        let method = session.req_header().method.as_str().to_owned();
        self.resume_session(session, ctx, config).await;

        // The app's own login and logout pass to the app; the gateway watches them.
        if let Some(login) = app.app_form() {
            let key = rule_path(&path);
            if key == login.path && method == login.method {
                let content_type = header_str(session.req_header(), "content-type");
                ctx.login = Some(LoginCapture::new(content_type));
                ctx.label = Some("login");
                ctx.path = Some(path);
                return Ok(Admission::Forward);
            }
            if key == login.path || key == login.page {
                ctx.label = Some("login_page");
                ctx.path = Some(path);
                return Ok(Admission::Forward);
            }
            if login.logout_path.as_deref() == Some(key) {
                if let Some(cookie) = &ctx.session_cookie {
                    if let Err(e) = self.auth.sessions.end(cookie, ctx.secure).await {
                        tracing::error!(error = %e, "could not end a session at logout");
                    }
                }
                ctx.session = None;
                ctx.logout = true;
                ctx.label = Some("logout");
                ctx.path = Some(path);
                return Ok(Admission::Forward);
            }
        }

        let auth = ctx.session.as_ref().map(|s| authentication(s, config));
        let now = SystemTime::now();
        let decision = app.policy.decide(&RequestFacts {
            method: &method,
            path: &path,
            client_ip,
            auth: auth.as_ref(),
            now,
        });
        ctx.decision = Some(decision);
        let return_to = match method.as_str() {
            "GET" | "HEAD" => ctx
                .upstream_uri
                .as_ref()
                .map_or("/".to_owned(), ToString::to_string),
            _ => "/".to_owned(),
        };
        ctx.path = Some(path);
        // Only a browser navigating to a page is sent to sign in or to a challenge.
        // Background fetches (favicons, images, API calls) get a plain 401: sending
        // them to the app's login form would reload it behind the user's back (and
        // rotate its CSRF token), and would replace a challenge in progress.
        let navigating = is_navigation(session.req_header());
        if !navigating
            && matches!(
                decision.outcome,
                Outcome::SignIn | Outcome::SecondFactor | Outcome::StepUp
            )
        {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                ErrorKind::SignInRequired,
                decision.outcome.label(),
            )
            .into());
        }
        match decision.outcome {
            Outcome::Forward => Ok(Admission::Forward),
            Outcome::Allow => {
                ctx.identity = auth;
                Ok(Admission::Forward)
            }
            Outcome::Deny => Err(Refusal::new(StatusCode::FORBIDDEN, ErrorKind::Denied, "deny").into()),
            Outcome::SignIn => match app.sign_in_page() {
                Some(GATEWAY_LOGIN_PAGE) => {
                    let location = format!("{GATEWAY_LOGIN_PAGE}?return={}", encode_component(&return_to));
                    Err(Stop::Answer(Answer::redirect(&location, "sign_in")))
                }
                Some(page) => {
                    let next = app.app_form().and_then(|form| form.return_param.as_deref());
                    let location = match next {
                        Some(param) => format!(
                            "{page}?{param}={}",
                            encode_component(safe_return_path(&return_to))
                        ),
                        None => page.to_owned(),
                    };
                    Err(Stop::Answer(Answer::redirect(&location, "sign_in")))
                }
                None => {
                    Err(Refusal::new(StatusCode::UNAUTHORIZED, ErrorKind::SignInRequired, "sign_in").into())
                }
            },
            Outcome::SecondFactor | Outcome::StepUp => {
                let user = ctx.session.as_ref().map(|s| s.user.clone()).unwrap_or_default();
                let (answer, _) = second_factor::begin(
                    &self.auth,
                    config,
                    app,
                    &user,
                    Purpose::Return(return_to),
                    client_ip,
                    ctx.secure,
                    now,
                )
                .await;
                Err(Stop::Answer(answer))
            }
        }
    }

    /// Finds the session the request's cookie names. Any failure means no session:
    /// the auth path fails closed.
    async fn resume_session(&self, session: &Session, ctx: &mut RequestCtx, config: &Config) {
        let name = cookies::session_cookie_name(ctx.secure);
        let Some(value) = cookies::find(&session.req_header().headers, name).map(str::to_owned) else {
            return;
        };
        match self
            .auth
            .sessions
            .resume(&value, &config.session, SystemTime::now(), ctx.secure)
            .await
        {
            Ok(found) => ctx.session = found,
            Err(e) => {
                tracing::error!(error = %e, "could not look up a session; treating the request as signed out")
            }
        }
        ctx.session_cookie = Some(value);
    }

    /// After the app answered a login: let the answer through, or hold it back until
    /// the second factor is passed.
    async fn after_login(
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
        let auth = Authentication {
            user: user.clone(),
            groups: config.users.groups(&user),
            second_factor_at: None,
            mfa_opted_in: false,
        };
        if !app.policy.second_factor_at_sign_in(&auth) {
            // No second factor for this user here: the app's answer passes, with a
            // password-level gateway session beside it.
            match self
                .auth
                .sessions
                .start(&user, SignInMethod::Password, now, ctx.secure)
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

    /// The gateway's own pages under `/.portvakt/`.
    async fn gateway_page(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        config: &Config,
        page: &str,
        lang: Lang,
    ) -> Answer {
        let reference = ctx.reference.to_string();
        let not_found = || {
            Answer::page(
                pages::error(StatusCode::NOT_FOUND, ErrorKind::NotFound, lang, None, &reference),
                "not_found",
            )
        };
        match page {
            "health" => Answer {
                status: StatusCode::OK,
                headers: vec![(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body: b"{\"status\":\"ok\"}\n".to_vec(),
                label: "gateway_page",
                own_page: true,
            },
            "assets/portvakt.css" => Answer {
                status: StatusCode::OK,
                headers: vec![(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/css; charset=utf-8"),
                )],
                body: config.pages.stylesheet.as_bytes().to_vec(),
                label: "gateway_page",
                own_page: true,
            },
            "assets/logo" => match &config.pages.logo {
                Some((bytes, content_type)) => Answer {
                    status: StatusCode::OK,
                    headers: vec![(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                    body: bytes.to_vec(),
                    label: "gateway_page",
                    own_page: true,
                },
                None => not_found(),
            },
            "jwks.json" => Answer {
                status: StatusCode::OK,
                headers: vec![(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body: self.auth.signer.jwks().into_bytes(),
                label: "gateway_page",
                own_page: true,
            },
            "logout" => {
                if let (Some(session), Some(app)) = (&ctx.session, ctx.app(config)) {
                    let client = ctx
                        .origin
                        .as_ref()
                        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip);
                    self.auth
                        .audit(
                            "signed_out",
                            &session.user,
                            &app.name,
                            client,
                            "ok",
                            SystemTime::now(),
                        )
                        .await;
                }
                if let Some(cookie) = &ctx.session_cookie {
                    if let Err(e) = self.auth.sessions.end(cookie, ctx.secure).await {
                        tracing::error!(error = %e, "could not end a session at sign-out");
                    }
                }
                ctx.session = None;
                let t = pages::texts(lang);
                let sign_in = ctx.app(config).and_then(|app| app.sign_in_page()).unwrap_or("/");
                let page = pages::message(
                    StatusCode::OK,
                    lang,
                    t.signed_out_title,
                    t.signed_out_text,
                    Some((sign_in, t.sign_in_again)),
                );
                Answer::page(page, "logout").with_cookie(&cookies::clear_session(ctx.secure))
            }
            "unavailable" => {
                let page = pages::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Internal,
                    lang,
                    None,
                    &reference,
                );
                Answer::page(page, "error")
            }
            "enrolment-closed" => {
                let t = pages::texts(lang);
                let page = pages::message(
                    StatusCode::FORBIDDEN,
                    lang,
                    t.enrol_closed_title,
                    t.enrol_closed_text,
                    None,
                );
                Answer::page(page, "enrolment_closed")
            }
            // The rest belong to an app's sign-in and second factor.
            _ => {
                let Some(app) = ctx.app(config) else {
                    return not_found();
                };
                let request = PageRequest {
                    config,
                    app,
                    page,
                    lang,
                    secure: ctx.secure,
                    client: ctx
                        .origin
                        .as_ref()
                        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip),
                    now: SystemTime::now(),
                    session_cookie: ctx.session_cookie.clone(),
                };
                match page {
                    "login" if matches!(app.sign_in, Some(SignIn::Gateway)) => {
                        gateway_login::serve(&self.auth, session, &request).await
                    }
                    page if second_factor::is_challenge_page(page) => {
                        second_factor::serve(&self.auth, session, &request).await
                    }
                    _ => not_found(),
                }
            }
        }
    }

    /// The identity headers and the signed assertion for an app.
    fn send_identity(
        &self,
        request: &mut RequestHeader,
        identity: &Authentication,
        session: &SessionRecord,
        app: &str,
        names: &UpstreamHeaders,
    ) -> Result<()> {
        let now = unix(SystemTime::now());
        let auth_time = unix(session.second_factor_at.unwrap_or(session.created_at));
        let amr = if session.second_factor_at.is_some() {
            vec!["pwd", "otp"]
        } else {
            vec!["pwd"]
        };
        let assertion = self.auth.signer.assertion(&Claims {
            iss: identity::ISSUER,
            aud: app,
            sub: &identity.user,
            groups: &identity.groups,
            auth_time,
            amr,
            iat: now,
            exp: now + identity::ASSERTION_LIFETIME.as_secs(),
        });
        // User names may be UTF-8 (never control characters): sent as raw bytes.
        let value = |text: &str| {
            HeaderValue::from_bytes(text.as_bytes())
                .map_err(|e| Error::because(ErrorType::InternalError, "an identity header value", e))
        };
        request.insert_header(names.user.clone(), value(&identity.user)?)?;
        request.insert_header(names.groups.clone(), value(&identity.groups.join(","))?)?;
        request.insert_header(names.auth_time.clone(), auth_time.to_string())?;
        request.insert_header(names.method.clone(), session.method.as_str())?;
        request.insert_header(names.assertion.clone(), assertion)?;
        Ok(())
    }
}

/// The facts a session gives the policy; groups come from the users file.
fn authentication(session: &SessionRecord, config: &Config) -> Authentication {
    Authentication {
        user: session.user.clone(),
        groups: config.users.groups(&session.user),
        second_factor_at: session.second_factor_at,
        mfa_opted_in: false,
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

/// What `admit` lets through.
enum Admission {
    /// Forward upstream (`ctx` holds the app, the target and the decision).
    Forward,
    /// A page of the gateway's own: the part of the path after `/.portvakt/`.
    GatewayPage(String),
}

/// Why `admit` stopped a request.
enum Stop {
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
struct Refusal {
    status: StatusCode,
    kind: ErrorKind,
    /// The decision label for logs and metrics.
    label: &'static str,
    /// One sentence for the user about what was wrong with the request.
    detail: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, kind: ErrorKind, label: &'static str) -> Self {
        Refusal {
            status,
            kind,
            label,
            detail: None,
        }
    }

    fn bad_request(why: impl std::fmt::Display) -> Self {
        Refusal {
            detail: Some(why.to_string()),
            ..Refusal::new(StatusCode::BAD_REQUEST, ErrorKind::BadRequest, "bad_request")
        }
    }
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Percent-encodes a value for a query string.
fn encode_component(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Whether the request is a browser navigating to a page (Fetch Metadata), or, from
/// a client that sends none, a GET that asks for HTML.
fn is_navigation(req: &RequestHeader) -> bool {
    match header_str(req, "sec-fetch-mode") {
        Some(mode) => mode == "navigate",
        None => {
            matches!(req.method, http::Method::GET | http::Method::HEAD)
                && header_str(req, "accept").is_some_and(|a| a.contains("text/html"))
        }
    }
}

/// The configured page language, or the browser's choice.
fn page_language(config: &Config, req: &RequestHeader) -> Lang {
    config
        .pages
        .language
        .unwrap_or_else(|| Lang::negotiate(header_str(req, "accept-language")))
}
