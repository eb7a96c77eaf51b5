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

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;

use super::access_log::{AccessLine, AccessLog};
use super::admit::{Admission, Stop};
use super::headers::{self, ClientOrigin};
use super::login::RequestCapture;
use super::metrics::Metrics;
use super::overlay;
use super::respond;
use super::withhold::{self, Swallow};
use crate::auth::cookies;
use crate::auth::identity::{self, unix, Claims};
use crate::auth::Services;
use crate::config::model::UpstreamHeaders;
use crate::config::{Config, SharedConfig};
use crate::factors::SignInMethod;
use crate::policy::{Authentication, Decision, NormalisedPath};
use crate::portal::answer::{Answer, Label};
use crate::portal::views::{self, ErrorKind, Lang};
use crate::store::SessionRecord;

pub struct Gateway {
    pub(super) config: SharedConfig,
    pub(super) metrics: Arc<Metrics>,
    pub(super) auth: Arc<Services>,
    access_log: AccessLog,
    /// The gateway's own requests to apps (`login.confirm`), made when first
    /// needed: building it loads TLS roots, start-up work most gateways never use.
    connector: std::sync::OnceLock<Connector>,
}

impl Gateway {
    pub fn new(
        config: SharedConfig,
        metrics: Arc<Metrics>,
        auth: Arc<Services>,
        access_log: AccessLog,
    ) -> Self {
        Gateway {
            config,
            metrics,
            auth,
            access_log,
            connector: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn connector(&self) -> &Connector {
        self.connector.get_or_init(|| Connector::new(None))
    }
}

/// What one request learns on its way through the phases.
pub struct RequestCtx {
    pub(super) started: Instant,
    /// The configuration this request runs under from start to end, even if a reload
    /// swaps in another meanwhile.
    pub(super) config: Option<Arc<Config>>,
    pub(super) app: Option<usize>,
    pub(super) origin: Option<ClientOrigin>,
    pub(super) host: String,
    pub(super) path: Option<NormalisedPath>,
    pub(super) decision: Option<Decision>,
    /// The label for logs and metrics when no policy decision tells the story (the
    /// gateway answered itself, or forwarded the app's login or logout).
    pub(super) label: Option<Label>,
    /// Cookies for HTTPS only (the listener, or a trusted proxy in front, is HTTPS).
    pub(super) secure: bool,
    /// The live session the request carried.
    pub(super) session: Option<Arc<SessionRecord>>,
    /// The store could not say whether the session cookie names a session (it is
    /// down): what needs one is refused with 503, never treated as signed out.
    pub(super) session_unknown: bool,
    /// The session cookie's value as sent, to end it on logout.
    pub(super) session_cookie: Option<String>,
    /// Who the app is told the user is (set when the decision was `Allow`).
    pub(super) identity: Option<Authentication>,
    /// The body of a request whose answer is watched (the app's login, or any
    /// request with a body to an app whose session cookie is known).
    pub(super) capture: Option<RequestCapture>,
    /// The request is to a `login: basic` app: no cookies pass either way (the
    /// credentials, bound to the gateway session, are its only identity).
    pub(super) basic_app: bool,
    /// The request was the app's logout: end the gateway session too.
    pub(super) logout: bool,
    /// The app's answer is watched for a sign-in (the app signs in through a form
    /// the gateway knows).
    pub(super) watched: bool,
    /// The app's answer was replaced; its body goes here.
    pub(super) swallow: Option<Swallow>,
    /// The page may get the overlay script (`login.overlay`); `adding` once its
    /// answer is one the script is added to.
    pub(super) overlay: Overlay,
    /// The request was let in by an app password (no session).
    pub(super) app_password: Option<super::app_password::AppPasswordUse>,
    /// What the body of a login answer read whole says of it (`success.json`);
    /// `None` for an answer streamed, whose header alone is judged.
    pub(super) json_verdict: Option<super::login::BodySays>,
    /// A login answer whose token is bound to its session before it goes out.
    pub(super) token_watch: Option<withhold::TokenWatch>,
    pub(super) upstream_started: Option<Instant>,
    /// The origin-form target to send upstream, built from the normalised path.
    pub(super) upstream_uri: Option<http::Uri>,
    /// A form kept across a step-up, sent as this page load (`kept.rs`).
    pub(super) kept_form: Option<Box<crate::auth::kept_requests::KeptRequest>>,
    /// The answer removes the kept-form cookie: its form was sent, or is gone.
    pub(super) clear_kept_cookie: bool,
    /// Ties an error page to its log line; formatted only when shown.
    pub(super) reference: Reference,
}

/// Where a page stands with the overlay script.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Overlay {
    No,
    /// Asked for uncompressed, to add the script to if it is an HTML page.
    Wanted,
    /// The script tag goes after the page's last byte.
    Adding,
}

#[derive(Clone, Copy)]
pub(super) struct Reference(u64);

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl RequestCtx {
    pub(super) fn app<'c>(&self, config: &'c Config) -> Option<&'c crate::config::App> {
        self.app.and_then(|i| config.apps.get(i))
    }

    /// Runs `f` on the app of an admitted request. Phases after `request_filter` run
    /// only for admitted requests, so a missing app is a bug: the request fails
    /// instead of going anywhere.
    pub(super) fn on_app<T>(&self, f: impl FnOnce(&crate::config::App) -> T) -> Result<T> {
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
            session_unknown: false,
            session_cookie: None,
            identity: None,
            capture: None,
            basic_app: false,
            logout: false,
            watched: false,
            swallow: None,
            overlay: Overlay::No,
            token_watch: None,
            json_verdict: None,
            app_password: None,
            upstream_started: None,
            upstream_uri: None,
            kept_form: None,
            clear_kept_cookie: false,
            reference: Reference(rand::random()),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let config = self.config.load_full();
        ctx.config = Some(config.clone());
        let tls = is_tls(session);
        let admitted = self.admit(session, ctx, &config, tls).await;
        if matches!(admitted, Ok(Admission::Forward)) {
            return Ok(false);
        }
        // Only a request the gateway answers itself gets a page: the language
        // is negotiated for those alone, not for every request passed on.
        let lang = page_language(&config, session.req_header());
        let answer = match admitted {
            Ok(Admission::Forward) => return Ok(false),
            Ok(Admission::Portal(route)) => self.portal_page(session, ctx, &config, route, lang).await,
            Err(Stop::Refuse(refusal)) => refusal.into_answer(lang, &ctx.reference.to_string()),
            Err(Stop::Answer(answer)) => answer,
        };
        ctx.label = Some(answer.label);
        respond::write(session, &answer, tls).await?;
        Ok(true)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A page load sending a kept form has no body of its own (`kept.rs`).
        if let (Some(kept), true) = (ctx.kept_form.as_deref(), end_of_stream) {
            *body = Some(super::kept::kept_body(kept));
        }
        let Some(capture) = ctx.capture.as_mut() else {
            return Ok(());
        };
        let limit = ctx
            .config
            .as_deref()
            .and_then(|c| ctx.app.and_then(|i| c.apps.get(i)))
            .and_then(|app| app.app_form())
            .map_or(0, |l| l.max_body);
        if let Some(chunk) = body {
            // A longer login is refused; a longer other request names nobody for
            // certain, which only matters if its answer signs someone in.
            if !capture.push(chunk, limit) && capture.is_login {
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
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.prepare_upstream(session.req_header(), upstream_request, ctx)?;
        if let Some(kept) = &ctx.kept_form {
            super::kept::send_as_kept(kept, upstream_request)?;
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
            ctx.on_app(|app| self.metrics.upstream_answered(&app.name, seconds))?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.filter_answer(session.req_header(), upstream_response, ctx)
            .await?;
        if ctx.clear_kept_cookie {
            upstream_response
                .append_header(http::header::SET_COOKIE, cookies::clear_kept_request(ctx.secure))?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        self.filter_body(body, end_of_stream, ctx);
        Ok(None)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // As Pingora decides, and a page load sending a kept form is the POST it
        // became: the app may have it already, so it is never sent twice.
        if ctx.kept_form.is_some()
            || !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
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
        let page = views::error(status, kind, lang, None, &ctx.reference.to_string());
        let tls = is_tls(session);
        if let Err(write_error) = respond::write(session, &Answer::page(page, Label::Error), tls).await {
            tracing::debug!(error = %write_error, "could not send the error page");
        }
        FailToProxy {
            error_code: status.as_u16(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let label = ctx
            .label
            .or_else(|| ctx.decision.map(|d| Label::from(d.outcome)))
            .unwrap_or(Label::Error);
        let app = ctx.config.as_deref().and_then(|c| ctx.app(c));
        self.metrics
            .count_request(app.map_or("-", |a| a.name.as_str()), label);
        // The request ends here: what its line says is moved out, not copied, and
        // the line is formatted and written off the request path.
        let user = match (ctx.session.take(), ctx.app_password.take()) {
            (Some(session), _) => Some(session.user.clone()),
            (None, Some(used)) => Some(used.record.user),
            (None, None) => None,
        };
        self.access_log.record(AccessLine {
            at: SystemTime::now(),
            config: ctx.config.take(),
            app: ctx.app,
            decided_by: ctx.decision.map(|d| d.decided_by),
            host: std::mem::take(&mut ctx.host),
            method: session.req_header().method.clone(),
            path: ctx.path.take(),
            client: ctx.origin.as_ref().map(|o| o.ip),
            user,
            decision: label,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            latency: ctx.started.elapsed(),
            reference: ctx.reference.0,
            error: error.map(ToString::to_string),
        });
    }
}

impl Gateway {
    /// What goes to the app for an admitted request (`client`, as the client sent
    /// it): the normalised target, Host, X-Forwarded-*, the cookies and
    /// credentials it may see, and the identity.
    pub(super) fn prepare_upstream(
        &self,
        client: &RequestHeader,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The request's own handle on its configuration: the app is borrowed from
        // it, not copied, while `ctx` changes below.
        let config = ctx.config.clone();
        let app = config
            .as_deref()
            .and_then(|c| ctx.app(c))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no app for an admitted request"))?;
        let uri = ctx
            .upstream_uri
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no target for an admitted request"))?;
        upstream_request.set_uri(uri);
        let host = app.host_header.as_deref().unwrap_or(&ctx.host);
        // Nearly always the client's own, exactly: then it stays as it came.
        let mut hosts = upstream_request.headers.get_all(http::header::HOST).iter();
        let as_sent = hosts.next().is_some_and(|h| h.as_bytes() == host.as_bytes()) && hosts.next().is_none();
        if !as_sent {
            upstream_request.insert_header(http::header::HOST, host)?;
        }
        if let Some(origin) = &ctx.origin {
            upstream_request.insert_header("x-forwarded-for", origin.forwarded_for.clone())?;
            upstream_request.insert_header("x-forwarded-proto", origin.proto)?;
        }
        upstream_request.insert_header("x-forwarded-host", &ctx.host)?;
        if ctx.basic_app {
            upstream_request.remove_header(&http::header::COOKIE);
            if ctx.identity.is_none() {
                // A public route: credentials have no business there (the app
                // would check them, uncounted, and could sign someone in).
                upstream_request.remove_header(&http::header::AUTHORIZATION);
            }
        } else if let Some(rest) = cookies::app_cookies(&upstream_request.headers) {
            upstream_request.remove_header(&http::header::COOKIE);
            if !rest.is_empty() {
                upstream_request.insert_header(http::header::COOKIE, rest)?;
            }
        }
        if let Some(used) = &ctx.app_password {
            // The app password stays here; a Basic app gets the user's own
            // password there instead. No cookie either way: the app password is
            // the client's only credential, and goes when it is revoked.
            upstream_request.remove_header(&http::header::AUTHORIZATION);
            upstream_request.remove_header(&http::header::COOKIE);
            if let Some(secret) = &used.app_secret {
                let credentials = format!("{}:{}", used.record.user, secret.as_str());
                let value = format!("Basic {}", data_encoding::BASE64.encode(credentials.as_bytes()));
                upstream_request.insert_header(http::header::AUTHORIZATION, value)?;
            }
        }
        let signed_in = ctx
            .session
            .as_deref()
            .or(ctx.app_password.as_ref().map(|used| &used.record));
        if let (Some(identity), Some(signed_in)) = (&ctx.identity, signed_in) {
            self.send_identity(
                upstream_request,
                identity,
                signed_in,
                &app.name,
                &app.upstream_headers,
            )?;
        }
        if overlay::wanted(app, client) {
            overlay::prepare(upstream_request);
            ctx.overlay = Overlay::Wanted;
        }
        Ok(())
    }

    /// What is done to the app's answer header before it goes to the client (to
    /// `client`'s request): gateway cookies out, the guard on sign-ins, the
    /// overlay's page.
    pub(super) async fn filter_answer(
        &self,
        client: &RequestHeader,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // An informational answer (100 Continue, 103) comes before the real one:
        // it may set no cookie, and the real one is judged when it comes.
        if upstream_response.status.is_informational() {
            upstream_response.remove_header(&http::header::SET_COOKIE);
            return Ok(());
        }
        if upstream_response.headers.contains_key(http::header::SET_COOKIE) {
            if let Some(kept) =
                headers::without_gateway_cookies(&upstream_response.headers, SystemTime::now())
            {
                upstream_response.remove_header(&http::header::SET_COOKIE);
                for value in kept {
                    upstream_response.append_header(http::header::SET_COOKIE, value)?;
                }
            }
        }
        if ctx.basic_app || ctx.app_password.is_some() {
            // The app's cookies could carry another user's session past the
            // credentials (or outlive a revoked app password): none reach the client.
            upstream_response.remove_header(&http::header::SET_COOKIE);
        }
        if ctx.logout {
            upstream_response.append_header(http::header::SET_COOKIE, cookies::clear_session(ctx.secure))?;
        }
        if let Some(used) = ctx.app_password.as_ref().filter(|u| u.app_secret.is_some()) {
            // Whether the app still takes the password sealed with the app password
            // (the user may have changed it there): the security-info page says so.
            let refused = upstream_response.status == http::StatusCode::UNAUTHORIZED;
            if refused != used.app_refused {
                // Boxed, as is the watch below: the rare paths' futures are large,
                // and held inline they were copied into every answer's future.
                let noted = Box::pin(self.auth.app_passwords.note_answer(
                    used.id,
                    refused,
                    SystemTime::now(),
                ));
                if let Err(e) = noted.await {
                    tracing::error!(error = %e, "could not note the app's answer to an app password");
                }
            }
        }
        // Only a login, a request with a body, or an answer that sets a cookie can
        // be a sign-in: the rest (nearly every request) costs one header look-up.
        let may_sign_in =
            ctx.capture.is_some() || upstream_response.headers.contains_key(http::header::SET_COOKIE);
        if ctx.watched && may_sign_in {
            let capture = ctx.capture.take();
            Box::pin(self.watch_answer(upstream_response, capture, client, ctx)).await?;
        }
        if ctx.overlay == Overlay::Wanted && ctx.swallow.is_none() && overlay::open(upstream_response)? {
            ctx.overlay = Overlay::Adding;
        }
        Ok(())
    }

    /// What is done to the app's answer body, chunk by chunk (or whole, for a
    /// login read whole): a replaced answer's kept back, a login's token bound,
    /// the overlay's script added.
    pub(super) fn filter_body(&self, body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
        if let Some(swallow) = &mut ctx.swallow {
            let chunk = body.take().unwrap_or_default();
            *body = withhold::swallow(swallow, &chunk, end_of_stream);
        } else if ctx.token_watch.is_some() {
            withhold::watch_token(&mut ctx.token_watch, &self.auth.tokens, body, end_of_stream);
        } else if ctx.overlay == Overlay::Adding {
            overlay::append(body, end_of_stream);
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
        // RFC 8176's names: a security key is a hardware key ("hwk"), a text
        // message "sms", every code "otp".
        let amr = match (session.second_factor_at, session.method) {
            (None, _) => vec!["pwd"],
            (Some(_), SignInMethod::SecurityKey) => vec!["pwd", "hwk"],
            (Some(_), SignInMethod::Sms) => vec!["pwd", "sms", "otp"],
            (Some(_), _) => vec!["pwd", "otp"],
        };
        let signed = self
            .auth
            .signer
            .identity_for_session(
                session.id_hash,
                &Claims {
                    iss: identity::ISSUER,
                    aud: app,
                    sub: &identity.user,
                    groups: &identity.groups,
                    auth_time: unix(session.second_factor_at.unwrap_or(session.created_at)),
                    amr,
                    iat: now,
                    exp: now + identity::ASSERTION_LIFETIME.as_secs(),
                },
            )
            .map_err(|e| Error::because(ErrorType::InternalError, "the identity headers", e))?;
        request.insert_header(names.user.wire(), signed.user.clone())?;
        request.insert_header(names.groups.wire(), signed.groups.clone())?;
        request.insert_header(names.auth_time.wire(), signed.auth_time.clone())?;
        request.insert_header(
            names.method.wire(),
            HeaderValue::from_static(session.method.as_str()),
        )?;
        request.insert_header(names.assertion.wire(), signed.assertion.clone())?;
        Ok(())
    }
}

pub(super) fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

pub(super) fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request is a browser navigating to a page (Fetch Metadata), or, from
/// a client that sends none, a GET that asks for HTML.
pub(super) fn is_navigation(req: &RequestHeader) -> bool {
    match header_str(req, "sec-fetch-mode") {
        Some(mode) => mode == "navigate",
        None => {
            matches!(req.method, http::Method::GET | http::Method::HEAD)
                && header_str(req, "accept").is_some_and(|a| a.contains("text/html"))
        }
    }
}

/// The configured page language, or the browser's choice.
pub(super) fn page_language(config: &Config, req: &RequestHeader) -> Lang {
    config
        .pages
        .language
        .unwrap_or_else(|| Lang::negotiate(header_str(req, "accept-language")))
}

/// The facts a session gives the policy; groups come from the users file.
pub(super) fn authentication(session: &SessionRecord, config: &Config) -> Authentication {
    Authentication {
        user: session.user.clone(),
        groups: config.users.groups(&session.user),
        second_factor_at: session.second_factor_at,
        mfa_opted_in: session.mfa_opted_in,
        signed_in_at: session.created_at,
    }
}
