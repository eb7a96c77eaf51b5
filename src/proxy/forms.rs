//! The small urlencoded forms of the gateway's own pages.

use pingora::prelude::*;

use super::auth::AuthServices;
use crate::store::SessionRecord;

/// A form's fields, in the order sent.
pub type Form = Vec<(String, String)>;

/// Reads a small urlencoded form from the request body; `None` when it is too large
/// or cannot be read.
pub async fn read(session: &mut Session) -> Option<Form> {
    const LIMIT: usize = 8 * 1024;
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= LIMIT => body.extend_from_slice(&chunk),
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => break,
        }
    }
    Some(form_urlencoded::parse(&body).into_owned().collect())
}

/// Reads a form posted by a signed-in user; `None` unless it carries the session's
/// CSRF token.
pub async fn read_signed_in(
    auth: &AuthServices,
    session: &mut Session,
    account: &SessionRecord,
) -> Option<Form> {
    let form = read(session).await?;
    value(&form, "csrf")
        .is_some_and(|token| auth.sessions.form_token_matches(account, token))
        .then_some(form)
}

/// The first value of `name`, if the form has it.
pub fn value<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The first value of `name`, or empty.
pub fn field<'f>(form: &'f [(String, String)], name: &str) -> &'f str {
    value(form, name).unwrap_or_default()
}
