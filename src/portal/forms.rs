//! The small urlencoded forms of the gateway's own pages.

use super::Request;
use crate::auth::Services;
use crate::store::SessionRecord;

/// A form's fields, in the order sent.
pub type Form = Vec<(String, String)>;

/// The request's urlencoded form; `None` when its body was too large or could not
/// be read.
pub fn read(req: &Request<'_>) -> Option<Form> {
    let body = req.body.as_deref()?;
    Some(form_urlencoded::parse(body).into_owned().collect())
}

/// A form posted by a signed-in user; `None` unless it carries the session's CSRF
/// token.
pub fn read_signed_in(services: &Services, req: &Request<'_>, account: &SessionRecord) -> Option<Form> {
    let form = read(req)?;
    value(&form, "csrf")
        .is_some_and(|token| services.sessions.form_token_matches(account, token))
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
