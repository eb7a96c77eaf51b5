//! `login.confirm`: asking the app itself who the session its login answer set
//! belongs to, before that answer is released or a challenge is made for it; and
//! the one GET of the gateway's own (`ask`) that it and `login: basic` use.
//!
//! Reading the login body is the gateway's best guess at what the app will read;
//! the app's own page about the signed-in user is the app's word. Where an app has
//! such a page, a login whose session names someone else than the request did is
//! discarded, whatever the cause of the difference.

use std::time::Duration;

use bytes::BytesMut;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::upstreams::peer::HttpPeer;

use crate::config::model::{ConfirmRead, ConfirmRule};
use crate::config::App;
use crate::login::SetCookie;

/// The most of the confirming page that is read.
const MAX_PAGE: usize = 64 * 1024;
/// How long the app has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("asking the app: {0}")]
    Request(String),
    #[error("the app answered {0}")]
    Status(u16),
    #[error("the app's answer is longer than the gateway reads")]
    TooLong,
}

/// The cookies the browser would send after the login answer: those it sent with
/// the login (`sent`, the `Cookie` header), overlaid by those the answer sets.
pub fn cookies_after(sent: Option<&str>, set_cookies: &[SetCookie]) -> String {
    let mut jar: Vec<(String, String)> = sent
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    for cookie in set_cookies {
        jar.retain(|(name, _)| *name != cookie.name);
        if cookie.live {
            jar.push((cookie.name.clone(), cookie.value.clone()));
        }
    }
    jar.iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Who the app's confirming page names for a browser with `cookies`; `None` when
/// it names nobody.
pub async fn who(
    connector: &Connector,
    app: &App,
    host: &str,
    rule: &ConfirmRule,
    cookies: &str,
) -> Result<Option<String>, ConfirmError> {
    let sent: Vec<(http::HeaderName, &str)> = if cookies.is_empty() {
        Vec::new()
    } else {
        vec![(http::header::COOKIE, cookies)]
    };
    let read_body = !matches!(rule.read, ConfirmRead::Header(_));
    let (header, body) = ask(connector, app, host, &rule.path, &sent, read_body).await?;
    if !header.status.is_success() {
        return Err(ConfirmError::Status(header.status.as_u16()));
    }
    Ok(read_name(&rule.read, &header, &body))
}

/// A GET of the gateway's own to the app, with only the headers given (and
/// `Host`, `Accept`): its answer's header, and its body when asked for.
pub async fn ask(
    connector: &Connector,
    app: &App,
    host: &str,
    target: &str,
    sent: &[(http::HeaderName, &str)],
    read_body: bool,
) -> Result<(ResponseHeader, BytesMut), ConfirmError> {
    let fail = |e: pingora::BError| ConfirmError::Request(e.to_string());
    let mut request = RequestHeader::build("GET", target.as_bytes(), None).map_err(fail)?;
    request
        .insert_header(http::header::HOST, app.host_header.as_deref().unwrap_or(host))
        .map_err(fail)?;
    request
        .insert_header(
            http::header::ACCEPT,
            "application/json, text/html;q=0.9, */*;q=0.1",
        )
        .map_err(fail)?;
    for (name, value) in sent {
        request.insert_header(name.clone(), *value).map_err(fail)?;
    }
    send(connector, app, request, &[], read_body.then_some(MAX_PAGE)).await
}

/// Sends `request` (with `body`) to the app on a connection of its own, and reads
/// its answer: the header, and up to `read_limit` bytes of body (none for `None`).
pub async fn send(
    connector: &Connector,
    app: &App,
    request: RequestHeader,
    body: &[u8],
    read_limit: Option<usize>,
) -> Result<(ResponseHeader, BytesMut), ConfirmError> {
    // One deadline for the whole exchange: a page that drips slowly cannot hold
    // the sign-in (and a connection of the gateway's) for longer.
    let exchange = async {
        let fail = |e: pingora::BError| ConfirmError::Request(e.to_string());
        let upstream = &app.upstream;
        let mut peer = HttpPeer::new(upstream.addr, upstream.tls, upstream.sni.clone());
        peer.options.verify_cert = upstream.verify_tls;
        peer.options.verify_hostname = upstream.verify_tls;
        peer.options.connection_timeout = Some(TIMEOUT);
        peer.options.read_timeout = Some(TIMEOUT);
        let (mut session, _) = connector.get_http_session(&peer).await.map_err(fail)?;
        session
            .write_request_header(Box::new(request))
            .await
            .map_err(fail)?;
        if !body.is_empty() {
            session
                .write_request_body(bytes::Bytes::copy_from_slice(body), true)
                .await
                .map_err(fail)?;
        }
        session.finish_request_body().await.map_err(fail)?;
        session.set_read_timeout(Some(TIMEOUT));
        session.read_response_header().await.map_err(fail)?;
        let header: ResponseHeader = session
            .response_header()
            .cloned()
            .ok_or_else(|| ConfirmError::Request("no answer".to_owned()))?;
        let mut answer = BytesMut::new();
        if let Some(limit) = read_limit {
            while let Some(chunk) = session.read_response_body().await.map_err(fail)? {
                if answer.len() + chunk.len() > limit {
                    return Err(ConfirmError::TooLong);
                }
                answer.extend_from_slice(&chunk);
            }
        }
        // Connections are not reused: asking is rare, and a half-read one is not safe to.
        session.shutdown().await;
        Ok::<_, ConfirmError>((header, answer))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(ConfirmError::Request("no answer in time".to_owned())))
}

/// The user name the page gives, where the rule says it is.
pub fn read_name(read: &ConfirmRead, header: &ResponseHeader, body: &[u8]) -> Option<String> {
    match read {
        ConfirmRead::Header(name) => {
            let mut values = header.headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => value.to_str().ok().map(str::to_owned),
                _ => None,
            }
        }
        ConfirmRead::Json(pointer) => {
            let value: serde_json::Value = serde_json::from_slice(body).ok()?;
            value.pointer(pointer)?.as_str().map(str::to_owned)
        }
        ConfirmRead::Pattern(pattern) => {
            let text = std::str::from_utf8(body).ok()?;
            Some(pattern.captures(text)?.get(1)?.as_str().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn the_cookie_jar_after_a_login_answer() {
        let now = SystemTime::now();
        let set = [
            SetCookie::read(b"sessionid=new; Path=/", now),
            SetCookie::read(b"csrftoken=; Max-Age=0", now),
        ];
        assert_eq!(
            cookies_after(Some("csrftoken=old; sessionid=stale; lang=sv"), &set),
            "lang=sv; sessionid=new"
        );
        assert_eq!(cookies_after(None, &set), "sessionid=new");
    }

    #[test]
    fn names_are_read_where_the_rule_says() {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.append_header("x-user", "alice").unwrap();
        let read = |r: ConfirmRead, body: &str| read_name(&r, &header, body.as_bytes());
        assert_eq!(
            read(ConfirmRead::Header(http::HeaderName::from_static("x-user")), ""),
            Some("alice".into())
        );
        assert_eq!(
            read(
                ConfirmRead::Json("/user/name".into()),
                r#"{"user":{"name":"bob"}}"#
            ),
            Some("bob".into())
        );
        assert_eq!(read(ConfirmRead::Json("/user".into()), r#"{"user":7}"#), None);
        let pattern = regex::Regex::new("Welcome, <strong>([^<]+)</strong>").unwrap();
        assert_eq!(
            read(
                ConfirmRead::Pattern(pattern.clone()),
                "<p>Welcome, <strong>carol</strong>.</p>"
            ),
            Some("carol".into())
        );
        assert_eq!(read(ConfirmRead::Pattern(pattern), "<p>Sign in</p>"), None);
        header.append_header("x-user", "mallory").unwrap();
        assert_eq!(
            read_name(
                &ConfirmRead::Header(http::HeaderName::from_static("x-user")),
                &header,
                b""
            ),
            None,
            "two names: none"
        );
    }
}
