//! A form posted to a route whose second factor has gone stale (`max_age`) is not
//! lost to the step-up: its body is kept (`auth::kept_requests`), the step-up sends
//! the browser back to the form's page with a cookie naming it, and that page's
//! next load by the same session is sent to the app as the POST it was.
//!
//! Only what the browser itself posted from this gateway's origin is kept: a
//! cross-site post would otherwise have the user's step-up carry it through.

use std::time::SystemTime;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::gateway::{is_navigation, Gateway, RequestCtx};
use crate::auth::cookies;
use crate::auth::kept_requests::{KeptRequest, NotReplayed, Replay};
use crate::config::{App, Config};
use crate::portal::answer::Label;
use crate::portal::cross_site;
use crate::portal::return_path::safe_return_path;

impl Gateway {
    /// Keeps the posted form of a request sent to step up: the id it is kept
    /// under, or `None` when it is not kept (too long, not from this origin, the
    /// store unavailable: the step-up then returns to the start page, as it
    /// always did).
    pub(super) async fn keep_posted_form(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        config: &Config,
        app: &App,
        now: SystemTime,
    ) -> Option<String> {
        let limit = config.second_factor.keep_post_body;
        let owner = ctx.session.as_ref()?;
        let target = ctx.upstream_uri.as_ref()?.to_string();
        let headers = &session.req_header().headers;
        // The step-up returns to the form's page: one it would not return to
        // (`safe_return_path`) is not kept, rather than left waiting elsewhere.
        if limit == 0
            || safe_return_path(&target) != target
            || !cross_site::is_same_origin(headers, ctx.secure, &ctx.host)
            // A client waiting to be asked for its body is not a browser's form.
            || headers.contains_key(http::header::EXPECT)
        {
            return None;
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            tracing::info!(user = %owner.user, limit, "a form posted across a step-up is too long to keep");
            return None;
        }
        let value = |name: http::HeaderName| headers.get(name).map(|v| v.as_bytes().to_vec());
        let (content_type, origin, referer) = (
            value(http::header::CONTENT_TYPE),
            value(http::header::ORIGIN),
            value(http::header::REFERER),
        );
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= limit => body.extend_from_slice(&chunk),
                Ok(Some(_)) => {
                    tracing::info!(user = %owner.user, limit, "a form posted across a step-up is too long to keep");
                    return None;
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        let kept = KeptRequest {
            user: owner.user.clone(),
            app: app.name.clone(),
            session: owner.id_hash,
            target,
            content_type,
            origin,
            referer,
            body,
        };
        match self.auth.kept_requests.keep(&kept, now).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, "could not keep a form posted across a step-up");
                None
            }
        }
    }

    /// The id of a kept form this request is to send: a page load (GET, no body)
    /// by the session the form was handed to, of exactly the form's target, with
    /// the cookie the step-up set. A cookie whose form is gone is removed.
    pub(super) async fn kept_form_to_send(
        &self,
        client: &RequestHeader,
        ctx: &mut RequestCtx,
        app: &App,
        body_empty: bool,
        now: SystemTime,
    ) -> Option<String> {
        if client.method != http::Method::GET
            || !body_empty
            || !is_navigation(client)
            // Another site does not choose when the form is sent.
            || cross_site::is_cross_site(&client.headers, ctx.secure, &ctx.host)
        {
            return None;
        }
        let id = cookies::find(&client.headers, cookies::kept_request_cookie_name(ctx.secure))?;
        let target = ctx.upstream_uri.as_ref()?.to_string();
        let replay = replay(ctx, app, &target)?;
        match self.auth.kept_requests.check(id, &replay, now).await {
            Ok(Ok(())) => Some(id.to_owned()),
            Ok(Err(NotReplayed::Gone)) => {
                ctx.clear_kept_cookie = true;
                None
            }
            Ok(Err(NotReplayed::NotYours | NotReplayed::OtherTarget)) => None,
            Err(e) => {
                tracing::error!(error = %e, "could not read a form kept across a step-up");
                None
            }
        }
    }

    /// Takes the kept form `id` out to send it with this request; whether it is
    /// sent (another request, on any gateway, may have taken it first).
    pub(super) async fn take_kept_form(
        &self,
        ctx: &mut RequestCtx,
        app: &App,
        id: &str,
        now: SystemTime,
    ) -> bool {
        let Some(target) = ctx.upstream_uri.as_ref().map(ToString::to_string) else {
            return false;
        };
        let Some(replay) = replay(ctx, app, &target) else {
            return false;
        };
        let taken = self.auth.kept_requests.take(id, &replay, now).await;
        ctx.clear_kept_cookie = true;
        match taken {
            Ok(Ok(kept)) => {
                tracing::info!(user = %kept.user, app = %kept.app, "a form kept across a step-up is sent");
                ctx.kept_form = Some(Box::new(kept));
                ctx.label = Some(Label::KeptFormSent);
                true
            }
            Ok(Err(_)) => false,
            Err(e) => {
                tracing::error!(error = %e, "could not take a form kept across a step-up");
                false
            }
        }
    }
}

/// Who asks to send a kept form, and where: the request's session on this app.
fn replay<'a>(ctx: &'a RequestCtx, app: &'a App, target: &'a str) -> Option<Replay<'a>> {
    let owner = ctx.session.as_ref()?;
    Some(Replay {
        session: owner.id_hash,
        user: &owner.user,
        app: &app.name,
        target,
    })
}

/// The page load becomes the POST that was kept: its method, body framing,
/// and the headers that said what and from where it was posted.
pub(super) fn send_as_kept(kept: &KeptRequest, upstream: &mut RequestHeader) -> Result<()> {
    upstream.set_method(http::Method::POST);
    upstream.remove_header(&http::header::TRANSFER_ENCODING);
    upstream.insert_header(http::header::CONTENT_LENGTH, kept.body.len())?;
    for (name, value) in [
        (http::header::CONTENT_TYPE, &kept.content_type),
        (http::header::ORIGIN, &kept.origin),
        (http::header::REFERER, &kept.referer),
    ] {
        match value {
            Some(value) => {
                upstream.insert_header(
                    name,
                    http::HeaderValue::from_bytes(value).map_err(|e| {
                        Error::explain(ErrorType::InternalError, format!("a kept header: {e}"))
                    })?,
                )?;
            }
            None => {
                upstream.remove_header(&name);
            }
        }
    }
    Ok(())
}

/// The kept body, in place of the page load's none: a copy, so that a request
/// Pingora sends again after a failed connection (nothing reached the app) still
/// carries it. Once the app may have it, nothing is sent again (`error_while_proxy`).
pub(super) fn kept_body(kept: &KeptRequest) -> Bytes {
    Bytes::copy_from_slice(&kept.body)
}
