//! Adds the overlay script (`login.overlay`) to the app's HTML pages, so that a
//! script login held for the second factor is finished in a frame over the app.
//!
//! Only pages a browser navigates to are touched: the request goes upstream
//! without `Accept-Encoding` (a compressed page cannot be added to), and a 200
//! `text/html` answer that is not compressed gets the script tag after its end,
//! where a browser still runs it and the page's own markup stays as it was.

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;

use super::gateway::is_navigation;
use crate::config::App;
use crate::portal::views::overlay_tag;

/// Whether this request's page may get the overlay: a GET navigation to an app
/// that asks for it, over HTTP/1.1 or later (the page grows, so its length goes
/// chunked, which HTTP/1.0 does not have).
pub(super) fn wanted(app: &App, request: &RequestHeader) -> bool {
    app.app_form().is_some_and(|login| login.overlay)
        && request.method == http::Method::GET
        && request.version >= http::Version::HTTP_11
        && is_navigation(request)
}

/// Asks the app for the page uncompressed.
pub(super) fn prepare(upstream_request: &mut RequestHeader) {
    upstream_request.remove_header(&http::header::ACCEPT_ENCODING);
}

/// Whether the answer is a page the tag can be added to; if so, its length is
/// left to the (chunked) body, which grows by the tag.
pub(super) fn open(response: &mut ResponseHeader) -> Result<bool> {
    let html = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let encoded = response
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
    if response.status != http::StatusCode::OK || !html || encoded {
        return Ok(false);
    }
    response.remove_header(&http::header::CONTENT_LENGTH);
    response.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    Ok(true)
}

/// The body chunk with the tag after it, on the last one.
pub(super) fn append(body: &mut Option<bytes::Bytes>, end_of_stream: bool) {
    if !end_of_stream {
        return;
    }
    let mut whole = body.take().map(Vec::from).unwrap_or_default();
    whole.extend_from_slice(overlay_tag().as_bytes());
    *body = Some(bytes::Bytes::from(whole));
}
