//! The gateway's own pages under `/.portvakt/` on every app host.

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use http::{HeaderValue, StatusCode};
use pingora::prelude::*;

use super::account;
use super::answer::Answer;
use super::gateway::{Gateway, RequestCtx};
use super::gateway_login;
use super::second_factor::{self, PageRequest};
use crate::config::model::SignIn;
use crate::config::Config;
use crate::pages::{self, ErrorKind, Lang};
use crate::session::cookies;

impl Gateway {
    /// The gateway's own pages under `/.portvakt/`.
    pub(super) async fn gateway_page(
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
        // Every form here changes state for the signed-in user or a challenge:
        // a POST that another site made the browser send is refused, whatever token
        // it carries.
        if session.req_header().method == http::Method::POST
            && cross_site(session.req_header(), ctx.secure, &ctx.host)
        {
            tracing::warn!(page, "a cross-site POST to a gateway form; refused");
            return Answer::page(
                pages::error(StatusCode::FORBIDDEN, ErrorKind::Denied, lang, None, &reference),
                "cross_site",
            );
        }
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
            "locked" => {
                let t = pages::texts(lang);
                let page = pages::message(StatusCode::TOO_MANY_REQUESTS, lang, t.login_title, t.locked, None);
                Answer::page(page, "locked")
            }
            "sign-in-refused" => {
                let t = pages::texts(lang);
                let sign_in = ctx.app(config).and_then(|app| app.sign_in_page()).unwrap_or("/");
                let page = pages::message(
                    StatusCode::BAD_REQUEST,
                    lang,
                    t.unreadable_title,
                    t.unreadable_text,
                    Some((sign_in, t.sign_in_again)),
                );
                Answer::page(page, "login_unreadable")
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
                    page if account::is_account_page(page) => {
                        account::serve(&self.auth, session, &request, ctx.session.as_ref()).await
                    }
                    page if crate::admin::is_admin_page(page) => {
                        crate::admin::serve(&self.auth, session, &request, ctx.session.as_ref()).await
                    }
                    _ => not_found(),
                }
            }
        }
    }
}

/// Whether a request comes from another site: its `Origin` is not this gateway's
/// scheme, host and port, or, without one (or with an opaque `null`), Fetch
/// Metadata says so. Clients that send neither (scripts, old browsers) are not
/// refused here; the forms' tokens still hold.
fn cross_site(req: &pingora::http::RequestHeader, secure: bool, host: &str) -> bool {
    let header = |name: &str| req.headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let fetch_site = header("sec-fetch-site");
    match header("origin") {
        Some("null") => fetch_site.is_none_or(|site| site != "same-origin"),
        Some(origin) => !same_origin(origin, secure, host),
        None => fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none")),
    }
}

/// `scheme://host[:port]` against the request's scheme and host (default ports
/// left out or written alike).
fn same_origin(origin: &str, secure: bool, host: &str) -> bool {
    let (scheme, default_port) = if secure { ("https", "443") } else { ("http", "80") };
    let Some(authority) = origin
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
    else {
        return false;
    };
    let with_port = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        let has_port = a
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !a.ends_with(']'));
        if has_port {
            a
        } else {
            format!("{a}:{default_port}")
        }
    };
    !authority.contains('/') && with_port(authority) == with_port(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)]) -> pingora::http::RequestHeader {
        let mut req = pingora::http::RequestHeader::build("POST", b"/.portvakt/verify", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let host = "intranet.test:8080";
        /// Request headers, TLS, the gateway's host, whether the POST is refused.
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a str, bool);
        let cases: &[Case] = &[
            (&[("origin", "http://intranet.test:8080")], false, host, false),
            (&[("origin", "http://evil.example")], false, host, true),
            (&[("origin", "null")], false, host, true),
            (
                &[("origin", "null"), ("sec-fetch-site", "cross-site")],
                false,
                host,
                true,
            ),
            (
                &[("origin", "null"), ("sec-fetch-site", "same-origin")],
                false,
                host,
                false,
            ),
            (&[("origin", "https://intranet.test:8080")], false, host, true),
            (
                &[("origin", "http://intranet.test:8080.evil.example")],
                false,
                host,
                true,
            ),
            (&[("sec-fetch-site", "cross-site")], false, host, true),
            (&[("sec-fetch-site", "same-site")], false, host, true),
            (&[("sec-fetch-site", "same-origin")], false, host, false),
            (&[], false, host, false),
            (
                &[("origin", "https://intranet.test")],
                true,
                "intranet.test:443",
                false,
            ),
            (
                &[("origin", "https://intranet.test:443")],
                true,
                "intranet.test",
                false,
            ),
        ];
        for (headers, secure, host, refused) in cases {
            assert_eq!(
                cross_site(&post(headers), *secure, host),
                *refused,
                "{headers:?} to {host}"
            );
        }
    }
}
