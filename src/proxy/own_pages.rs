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
