//! Responses the gateway writes itself: its pages, its redirects, and an app's
//! withheld login response when it is finally released.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::pages::{self, Page};

pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    /// The decision label for logs and metrics.
    pub label: &'static str,
    /// A page of the gateway's own (gets the security headers); false for a
    /// released app response, which goes out as the app wrote it.
    pub own_page: bool,
}

impl Answer {
    pub fn page(page: Page, label: &'static str) -> Answer {
        Answer {
            status: page.status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(page.content_type),
            )],
            body: page.body,
            label,
            own_page: true,
        }
    }

    /// A 303 to a same-host path (or an absolute path the gateway chose).
    /// 503 with the error page: the store or another part failed (logged by the caller).
    pub fn unavailable(lang: pages::Lang) -> Answer {
        let page = pages::error(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::ErrorKind::Internal,
            lang,
            None,
            "-",
        );
        Answer::page(page, "error")
    }

    /// 403 for a form without its CSRF token (or too large to read).
    pub fn refused_form(lang: pages::Lang) -> Answer {
        let page = pages::error(
            StatusCode::FORBIDDEN,
            pages::ErrorKind::BadRequest,
            lang,
            None,
            "-",
        );
        Answer::page(page, "bad_request")
    }

    pub fn redirect(location: &str, label: &'static str) -> Answer {
        let mut answer = Answer {
            status: StatusCode::SEE_OTHER,
            headers: Vec::new(),
            body: Vec::new(),
            label,
            own_page: true,
        };
        answer.push_header(http::header::LOCATION, location);
        answer
    }

    pub fn with_cookie(mut self, set_cookie: &str) -> Answer {
        self.push_header(http::header::SET_COOKIE, set_cookie);
        self
    }

    /// The first value of a header, if it is text.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    pub fn push_header(&mut self, name: HeaderName, value: &str) {
        match HeaderValue::from_str(value) {
            Ok(value) => self.headers.push((name, value)),
            // Values are built by the gateway from checked parts; say so if one is not.
            Err(_) => tracing::error!(header = %name, "dropped an invalid header value"),
        }
    }
}

/// Writes an answer and ends the response.
pub async fn write(session: &mut Session, answer: &Answer, tls: bool) -> Result<()> {
    let mut header = ResponseHeader::build(answer.status, Some(answer.headers.len() + 8))?;
    for (name, value) in &answer.headers {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, answer.body.len())?;
    if answer.own_page {
        for (name, value) in pages::security_headers(tls) {
            header.insert_header(name, value)?;
        }
    } else {
        header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    }
    let head_only = session.req_header().method == http::Method::HEAD || answer.body.is_empty();
    session.write_response_header(Box::new(header), head_only).await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(answer.body.clone())), true)
            .await?;
    }
    Ok(())
}
