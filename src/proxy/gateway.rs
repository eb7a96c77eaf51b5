//! The Pingora `ProxyHttp` implementation. Phases, in the order Pingora runs them:
//!
//! ```text
//! request_filter           strip identity/forwarding headers, client address, host → app,
//!                          normalise the path, answer /.portvakt/*, decide; refuse or go on
//! upstream_peer            the app's upstream (resolved at config load, pooled by Pingora)
//! upstream_request_filter  forward the normalised path, Host, X-Forwarded-*
//! upstream_response_filter upstream latency
//! fail_to_proxy            gateway error page (502 when the app cannot be reached)
//! logging                  one access-log line and the request metrics
//! ```

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::upstreams::peer::HttpPeer;

use super::headers::{self, ClientOrigin};
use super::target;
use crate::config::reload::SharedConfig;
use crate::config::Config;
use crate::pages::{self, ErrorKind, Lang, Page};
use crate::policy::{self, Decision, NormalisedPath, Outcome, RequestFacts};
use crate::telemetry::Metrics;

pub struct Gateway {
    config: SharedConfig,
    metrics: Arc<Metrics>,
}

impl Gateway {
    pub fn new(config: SharedConfig, metrics: Arc<Metrics>) -> Self {
        Gateway { config, metrics }
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
    /// Why the gateway answered itself (a metric label), when it did.
    answered: Option<&'static str>,
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
            answered: None,
            upstream_started: None,
            upstream_uri: None,
            reference: Reference(rand::random()),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let config = self.config.load_full();
        ctx.config = Some(config.clone());
        let tls = is_tls(session);
        match admit(session, ctx, &config, tls) {
            Ok(Admission::Forward) => Ok(false),
            Ok(Admission::GatewayPage) => {
                let lang = Lang::negotiate(header_str(session.req_header(), "accept-language"));
                self.gateway_page(session, ctx, lang, tls).await
            }
            Err(refusal) => {
                ctx.answered = Some(refusal.label);
                let lang = Lang::negotiate(header_str(session.req_header(), "accept-language"));
                let page = pages::error(
                    refusal.status,
                    refusal.kind,
                    lang,
                    refusal.detail.as_deref(),
                    &ctx.reference.to_string(),
                );
                write_page(session, &page, tls).await?;
                Ok(true)
            }
        }
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
        let lang = Lang::negotiate(header_str(session.req_header(), "accept-language"));
        let page = pages::error(status, kind, lang, None, &ctx.reference.to_string());
        let tls = is_tls(session);
        if let Err(write_error) = write_page(session, &page, tls).await {
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
            .answered
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
    /// The gateway's own pages under `/.portvakt/`.
    async fn gateway_page(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        lang: Lang,
        tls: bool,
    ) -> Result<bool> {
        let path = ctx.path.as_ref().map_or("", |p| p.decoded());
        let page = match path.strip_prefix(pages::PREFIX).unwrap_or("") {
            "health" => Page {
                status: StatusCode::OK,
                content_type: "application/json",
                body: b"{\"status\":\"ok\"}\n".to_vec(),
            },
            "assets/portvakt.css" => Page {
                status: StatusCode::OK,
                content_type: "text/css; charset=utf-8",
                body: pages::STYLESHEET.as_bytes().to_vec(),
            },
            _ => pages::error(
                StatusCode::NOT_FOUND,
                ErrorKind::NotFound,
                lang,
                None,
                &ctx.reference.to_string(),
            ),
        };
        ctx.answered = Some(if page.status == StatusCode::OK {
            "gateway_page"
        } else {
            "not_found"
        });
        write_page(session, &page, tls).await?;
        Ok(true)
    }
}

/// What `admit` lets through.
enum Admission {
    /// Forward upstream (`ctx` holds the app, the target and the decision).
    Forward,
    /// A page of the gateway's own, under `/.portvakt/`.
    GatewayPage,
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

/// Everything `request_filter` decides, in order; no I/O.
fn admit(
    session: &mut Session,
    ctx: &mut RequestCtx,
    config: &Config,
    tls: bool,
) -> Result<Admission, Refusal> {
    // Read what a trusted proxy says about the client, then strip every header a
    // client must not send upstream — before anything else looks at the request.
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip());
    let origin = headers::client_origin(peer, &session.req_header().headers, &config.trusted_proxies, tls);
    for name in headers::names_to_strip(config, &session.req_header().headers) {
        session.req_header_mut().remove_header(&name);
    }
    let origin = origin.map_err(Refusal::bad_request)?;
    let client_ip = origin.ip;
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
        return Err(Refusal::new(
            StatusCode::URI_TOO_LONG,
            ErrorKind::UriTooLong,
            "bad_request",
        ));
    }
    let path = policy::normalise(target.path).map_err(Refusal::bad_request)?;
    if path.decoded().starts_with(pages::PREFIX) {
        ctx.path = Some(path);
        return Ok(Admission::GatewayPage);
    }
    // The target sent upstream: exactly the path the policy sees, the query as sent.
    let forwarded = match target.query {
        Some(q) => format!("{}?{q}", path.forwarded()),
        None => path.forwarded().to_owned(),
    };
    let upstream_uri = forwarded
        .parse::<http::Uri>()
        .map_err(|_| Refusal::bad_request("the query string holds characters that cannot be forwarded"))?;

    let decision = app.policy.decide(&RequestFacts {
        method: req.method.as_str(),
        path: &path,
        client_ip,
        // Gateway sessions come with the second-factor work; until then nobody is
        // signed in, and everything that needs a sign-in is refused.
        auth: None,
        now: SystemTime::now(),
    });
    ctx.path = Some(path);
    ctx.upstream_uri = Some(upstream_uri);
    ctx.decision = Some(decision);
    match decision.outcome {
        Outcome::Forward | Outcome::Allow => Ok(Admission::Forward),
        Outcome::Deny => Err(Refusal::new(StatusCode::FORBIDDEN, ErrorKind::Denied, "deny")),
        Outcome::SignIn | Outcome::SecondFactor | Outcome::StepUp => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::SignInRequired,
            decision.outcome.label(),
        )),
    }
}

async fn write_page(session: &mut Session, page: &Page, tls: bool) -> Result<()> {
    let mut header = ResponseHeader::build(page.status, Some(8))?;
    header.insert_header(http::header::CONTENT_TYPE, page.content_type)?;
    header.insert_header(http::header::CONTENT_LENGTH, page.body.len())?;
    for (name, value) in pages::security_headers(tls) {
        header.insert_header(name, value)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(page.body.clone())), true)
            .await?;
    }
    Ok(())
}

fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}
