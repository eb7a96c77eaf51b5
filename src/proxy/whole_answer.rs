//! Logins whose success the app tells only in its answer's body (`success.json`:
//! JSON APIs that answer every login 200 and say in the body whether it worked).
//! Their header says nothing, and the header is what goes to the browser first.
//! So the gateway sends such a login to the app itself, reads the whole answer,
//! judges it, and only then answers the browser: with the app's answer (a
//! failure, counted), or what the guard on sign-ins makes of a success.

use http::StatusCode;
use pingora::prelude::*;

use super::admit::{Refusal, Stop};
use super::gateway::{Gateway, RequestCtx};
use super::{confirm, login};
use crate::config::model::LoginInterception;
use crate::config::App;
use crate::portal::answer::{Answer, Label};
use crate::portal::views::ErrorKind;

/// The most of the app's answer the gateway reads; a longer one is refused.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// Request headers about this one connection, or the body's framing: the
/// gateway sends the body whole, with its length, on a connection of its own.
const NOT_SENT_ON: &[http::HeaderName] = &[
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::TE,
    http::header::EXPECT,
    http::header::UPGRADE,
    http::header::CONTENT_LENGTH,
];

/// Answer headers that framed the app's answer: the gateway's answer has its own.
const NOT_PASSED_BACK: &[http::HeaderName] = &[
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::CONTENT_LENGTH,
];

impl Gateway {
    /// The login whose answer only its body judges, sent and read whole.
    pub(super) async fn login_read_whole(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        app: &App,
        login: &LoginInterception,
    ) -> Result<Answer, Stop> {
        // A client that waits to be asked for the body is asked, as Pingora
        // would when it streams one.
        let expects_continue = session
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            session
                .write_continue_response()
                .await
                .map_err(|_| Refusal::bad_request("the client went away"))?;
        }
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::BadRequest,
                Label::BadRequest,
            )
        };
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= login.max_body => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Err(too_large().into()),
                Ok(None) => break,
                Err(_) => return Err(Refusal::bad_request("the login's body could not be read").into()),
            }
        }
        if let Some(capture) = ctx.capture.as_mut() {
            if !capture.push(&body, login.max_body) {
                return Err(too_large().into());
            }
            capture.complete = true;
        }
        let internal = |e: Box<pingora::Error>| -> Stop {
            tracing::error!(error = %e, "could not send a login to the app");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal,
                Label::Error,
            )
            .into()
        };
        let client = session.req_header().clone();
        let mut upstream = client.clone();
        for name in NOT_SENT_ON {
            upstream.remove_header(name);
        }
        // The body is judged by reading it: it must come uncompressed.
        upstream.remove_header(&http::header::ACCEPT_ENCODING);
        upstream
            .insert_header(http::header::CONTENT_LENGTH, body.len())
            .map_err(internal)?;
        self.prepare_upstream(&client, &mut upstream, ctx)
            .map_err(internal)?;
        let sent = confirm::send(self.connector(), app, upstream, &body, Some(ANSWER_LIMIT)).await;
        let (mut header, answer) = sent.map_err(|e| -> Stop {
            tracing::warn!(app = %app.name, error = %e, "the app did not answer a login in full");
            Refusal::new(
                StatusCode::BAD_GATEWAY,
                ErrorKind::UpstreamUnavailable,
                Label::Error,
            )
            .into()
        })?;
        let encoded = header
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
        ctx.json_verdict = Some(match encoded {
            true => login::BodySays::Unclear,
            false => login::body_says(&login.success, &answer),
        });
        self.filter_answer(&client, &mut header, ctx)
            .await
            .map_err(internal)?;
        // The body the guard lets out: the app's, the gateway's in its place, or
        // none (as the answer body filter would make of it streamed).
        let mut out = Some(answer.freeze());
        self.filter_body(&mut out, true, ctx);
        let headers = header
            .headers
            .iter()
            .filter(|(name, _)| !NOT_PASSED_BACK.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Ok(Answer {
            status: header.status,
            headers,
            body: out.map(|b| b.to_vec()).unwrap_or_default(),
            label: ctx.label.unwrap_or(Label::Login),
            own_page: false,
            framable: false,
        })
    }
}
