//! Writes the portal's answers to the client through Pingora.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::portal::answer::Answer;

/// Writes an answer and ends the response.
pub async fn write(session: &mut Session, answer: &Answer, tls: bool) -> Result<()> {
    let mut header = ResponseHeader::build(answer.status, Some(answer.headers.len() + 8))?;
    for (name, value) in &answer.headers {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, answer.body.len())?;
    if answer.own_page {
        for (name, value) in crate::portal::views::security_headers(tls, answer.framable) {
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
