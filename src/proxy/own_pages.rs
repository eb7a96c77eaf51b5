//! Hands a request under `/.portvakt/` to the portal: reads what the portal needs
//! from Pingora's session (a POST's small body included) into a transport-free
//! request, and notes what the answer changed for the access log.

use std::net::{IpAddr, Ipv6Addr};
use std::time::SystemTime;

use pingora::prelude::*;

use super::gateway::{Gateway, RequestCtx};
use crate::config::{Config, Lang};
use crate::portal::answer::Answer;
use crate::portal::route::Route;
use crate::portal::{self, Request, FORM_LIMIT};

impl Gateway {
    pub(super) async fn portal_page(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        config: &Config,
        route: Option<Route>,
        lang: Lang,
    ) -> Answer {
        let reference = ctx.reference.to_string();
        let (Some(route), Some(app)) = (route, ctx.app(config)) else {
            return portal::not_found(lang, &reference);
        };
        let body = if session.req_header().method == http::Method::POST {
            read_body(session).await
        } else {
            Some(Vec::new())
        };
        let req = session.req_header();
        let request = Request {
            config,
            basic_check: self,
            app,
            route,
            method: req.method.clone(),
            headers: &req.headers,
            query: req.uri.query(),
            body,
            host: &ctx.host,
            secure: ctx.secure,
            client: ctx
                .origin
                .as_ref()
                .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |o| o.ip),
            now: SystemTime::now(),
            lang,
            reference: &reference,
            session: ctx.session.as_deref(),
            session_cookie: ctx.session_cookie.as_deref(),
            session_unknown: ctx.session_unknown,
        };
        let answer = portal::serve(&self.auth, &request).await;
        if route == Route::Logout {
            ctx.session = None;
        }
        answer
    }
}

/// A form body up to the portal's limit; `None` when it is longer or unreadable.
async fn read_body(session: &mut Session) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= FORM_LIMIT => body.extend_from_slice(&chunk),
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => return Some(body),
        }
    }
}
