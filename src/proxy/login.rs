//! Watching an app's answers: who a request names (from the body the browser sent,
//! which passes to the app untouched, and the query), and whether the app let them
//! in (from its response header, before anything reaches the browser).

use std::time::SystemTime;

use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::model::{LoginInterception, SuccessRule, UsernameSource};
use crate::login::{credentials, BodyKind, QueryConditions, SetCookie, Unreadable};

/// A request's body as it streams to the app, up to the configured limit.
#[derive(Debug)]
pub struct RequestCapture {
    pub body: Vec<u8>,
    pub kind: Result<BodyKind, Unreadable>,
    /// Set when the whole body has passed.
    pub complete: bool,
    /// The body was longer than the limit: it names nobody with certainty.
    pub overflowed: bool,
    /// The app's own login (a longer body is refused with 413), rather than any
    /// other request whose answer might sign someone in.
    pub is_login: bool,
    /// The "don't ask again in this browser" cookie the login came with.
    pub trust_cookie: Option<String>,
    /// The cookie naming this browser (for unusual sign-ins) the login came with.
    pub browser_cookie: Option<String>,
}

/// A request without a body, and not the login: only its query can name someone.
impl Default for RequestCapture {
    fn default() -> Self {
        RequestCapture {
            body: Vec::new(),
            kind: Ok(BodyKind::None),
            complete: true,
            overflowed: false,
            is_login: false,
            trust_cookie: None,
            browser_cookie: None,
        }
    }
}

impl RequestCapture {
    /// Reads the body's type from the request header. A type or encoding given
    /// twice, or a compressed body, is unreadable: the app may decode it otherwise.
    /// `body_empty` is the connection's word (an HTTP/2 body needs no length
    /// header); a declared length over `limit` is known to overflow at once.
    pub fn new(req: &RequestHeader, is_login: bool, body_empty: bool, limit: usize) -> Self {
        let types: Vec<_> = req.headers.get_all(http::header::CONTENT_TYPE).iter().collect();
        let encodings: Vec<_> = req
            .headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .collect();
        let kind = match (types.as_slice(), encodings.as_slice()) {
            (_, [_, _, ..]) | ([_, _, ..], _) => Err(Unreadable::RepeatedHeader),
            (_, [encoding]) if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") => Err(
                Unreadable::Encoded(String::from_utf8_lossy(encoding.as_bytes()).into_owned()),
            ),
            ([], _) => Ok(BodyKind::None),
            ([content_type], _) => match content_type.to_str() {
                Ok(text) => BodyKind::of(Some(text)),
                Err(_) => Err(Unreadable::ContentType(
                    String::from_utf8_lossy(content_type.as_bytes()).into_owned(),
                )),
            },
        };
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|l| l.to_str().ok()?.parse::<usize>().ok());
        RequestCapture {
            body: Vec::new(),
            kind,
            complete: body_empty,
            overflowed: declared.is_some_and(|length| length > limit),
            is_login,
            trust_cookie: None,
            browser_cookie: None,
        }
    }

    /// Whether the body agrees with the login's query conditions: a front
    /// controller may read `do` from the body before the query, so a body that
    /// gives a condition key (another value, or unclearly) is not the login.
    pub fn agrees_with(&self, conditions: &QueryConditions) -> bool {
        let Ok(kind) = &self.kind else {
            return conditions.is_empty();
        };
        conditions.pairs().iter().all(|(key, want)| {
            match credentials::user_name(key, kind, &self.body, None) {
                Ok(None) => true,
                Ok(Some(given)) => given == *want,
                Err(_) => false,
            }
        })
    }

    /// Adds a chunk; false when the body exceeds `limit` (what was kept is dropped).
    pub fn push(&mut self, chunk: &[u8], limit: usize) -> bool {
        if self.overflowed || self.body.len() + chunk.len() > limit {
            self.overflowed = true;
            self.body = Vec::new();
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    /// The user this request names in the login's user name field (`query` is the
    /// target's query, as forwarded), or the app's one identity.
    ///
    /// The name is trimmed and, unless the app is configured as case-sensitive,
    /// lower-cased. Many apps accept `ALICE` or ` alice` for `alice`; were the
    /// gateway to keep them apart, someone with alice's password could type `ALICE`,
    /// find no device enrolled under that name, and enrol their own phone.
    pub fn user_name(
        &self,
        login: &LoginInterception,
        query: Option<&str>,
    ) -> Result<Option<String>, Unreadable> {
        let field = match &login.username {
            UsernameSource::Fixed(identity) => return Ok(Some(identity.clone())),
            UsernameSource::Field(field) => field,
        };
        if self.overflowed || !self.complete {
            return Err(Unreadable::Incomplete);
        }
        let kind = self.kind.as_ref().map_err(Clone::clone)?;
        match credentials::user_name(field, kind, &self.body, query)? {
            Some(name) => canonical_user(login, &name),
            None => Ok(None),
        }
    }
}

/// One account however its name is typed (see [`RequestCapture::user_name`]);
/// `Ok(None)` for a blank name.
pub fn canonical_user(login: &LoginInterception, name: &str) -> Result<Option<String>, Unreadable> {
    canonical_name(name, login.username_case_sensitive)
}

/// One account however its name is typed: trimmed, and lower-cased unless the
/// app tells names apart by case; `Ok(None)` for a blank name.
pub fn canonical_name(name: &str, case_sensitive: bool) -> Result<Option<String>, Unreadable> {
    if name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Unreadable::NotText);
    }
    let trimmed = name.trim();
    let canonical = if case_sensitive {
        trimmed.to_owned()
    } else {
        trimmed.to_lowercase()
    };
    Ok((!canonical.is_empty()).then_some(canonical))
}

/// Whether the app's answer means the password was right.
pub fn succeeded(rule: &SuccessRule, response: &ResponseHeader, now: SystemTime) -> bool {
    let status_ok = rule.statuses.is_empty() || rule.statuses.contains(&response.status.as_u16());
    let location = response
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(location_path);
    let location_ok = rule
        .location
        .as_ref()
        .is_none_or(|want| location.as_deref() == Some(want.as_str()));
    let location_not_ok = rule
        .location_not
        .as_ref()
        .is_none_or(|avoid| location.as_deref() != Some(avoid.as_str()));
    let cookie_ok = rule.set_cookie.as_ref().is_none_or(|name| {
        response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| SetCookie::read(v.as_bytes(), now))
            .any(|cookie| cookie.live && cookie.name.eq_ignore_ascii_case(name))
    });
    status_ok && location_ok && location_not_ok && cookie_ok
}

/// What an answer's body says of a login, where `success.json` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySays {
    Succeeded,
    /// In so many words: the way to the pointer ends at `null`, `false`, `0` or
    /// `""`.
    Failed,
    /// Neither: not JSON, or the way to the pointer is missing a member. Such an
    /// answer is not passed on (the client may have shaped it to hide a success).
    Unclear,
}

/// What the answer's body says of the login (`Succeeded` when the rule does not
/// look at the body).
pub fn body_says(rule: &SuccessRule, body: &[u8]) -> BodySays {
    let Some(pointer) = &rule.json else {
        return BodySays::Succeeded;
    };
    let Ok(mut at) = serde_json::from_slice::<serde_json::Value>(body) else {
        return BodySays::Unclear;
    };
    for segment in crate::login::credentials::pointer_tokens(pointer) {
        if is_falsy(&at) {
            return BodySays::Failed;
        }
        at = match at {
            serde_json::Value::Object(mut members) => match members.remove(&segment) {
                Some(next) => next,
                None => return BodySays::Unclear,
            },
            _ => return BodySays::Unclear,
        };
    }
    if is_falsy(&at) {
        BodySays::Failed
    } else {
        BodySays::Succeeded
    }
}

fn is_falsy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null | serde_json::Value::Bool(false) => true,
        serde_json::Value::String(text) => text.is_empty(),
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The path of a Location value (absolute or relative), without query, fragment or
/// trailing slash, for comparing with configured paths.
fn location_path(location: &str) -> String {
    let without_origin = match location.find("://") {
        Some(i) => location[i + 3..]
            .find('/')
            .map_or("/", |j| &location[i + 3 + j..]),
        None => location,
    };
    let path = without_origin.split(['?', '#']).next().unwrap_or("/");
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(source: UsernameSource) -> LoginInterception {
        LoginInterception {
            path: "/login".into(),
            method: "POST".into(),
            query: Default::default(),
            session_cookies: Default::default(),
            logout_query: Default::default(),
            page_query: Default::default(),
            page_target: "/login".into(),
            username: source,
            success: SuccessRule {
                statuses: vec![302, 303],
                location: None,
                location_not: Some("/login".into()),
                set_cookie: None,
                json: None,
            },
            logout_path: None,
            page: "/login".into(),
            return_param: None,
            email_header: None,
            username_case_sensitive: false,
            max_body: 1024,
            confirm: None,
            overlay: false,
            token: None,
        }
    }

    fn capture(content_type: &str, body: &str) -> RequestCapture {
        let mut req = RequestHeader::build("POST", b"/login", None).unwrap();
        req.insert_header("content-type", content_type).unwrap();
        req.insert_header("content-length", body.len()).unwrap();
        let mut c = RequestCapture::new(&req, true, false, 1024);
        assert!(c.push(body.as_bytes(), 1024));
        c.complete = true;
        c
    }

    #[test]
    fn user_names_are_one_account_however_typed_and_whole_bodies_only() {
        let by_field = login(UsernameSource::Field("username".into()));
        let name = |c: &RequestCapture| c.user_name(&by_field, None);
        for typed in ["ALICE", " alice ", "Alice"] {
            let body = format!("username={}", typed.replace(' ', "+"));
            let c = capture("application/x-www-form-urlencoded", &body);
            assert_eq!(name(&c), Ok(Some("alice".into())), "{typed:?}");
        }
        let mut exact = by_field.clone();
        exact.username_case_sensitive = true;
        let c = capture("application/x-www-form-urlencoded", "username=Alice");
        assert_eq!(c.user_name(&exact, None), Ok(Some("Alice".into())));
        let blank = capture("application/x-www-form-urlencoded", "username=+");
        assert_eq!(name(&blank), Ok(None));
        let control = capture("application/x-www-form-urlencoded", "username=%0Aroot");
        assert_eq!(name(&control), Err(Unreadable::NotText));
        // A body not seen to its end, or too long, names nobody for certain.
        let mut partial = capture("application/x-www-form-urlencoded", "username=alice");
        partial.complete = false;
        assert!(name(&partial).is_err());
        let mut long = capture("application/x-www-form-urlencoded", "username=alice");
        assert!(!long.push(&[b'a'; 1024], 1024));
        assert!(name(&long).is_err());
        let single = login(UsernameSource::Fixed("admin".into()));
        assert_eq!(
            capture("text/plain", "password=p").user_name(&single, None),
            Ok(Some("admin".into()))
        );
    }

    #[test]
    fn types_and_encodings_given_twice_are_unreadable() {
        let mut req = RequestHeader::build("POST", b"/login", None).unwrap();
        req.append_header("content-type", "application/json").unwrap();
        req.append_header("content-type", "application/x-www-form-urlencoded")
            .unwrap();
        assert_eq!(
            RequestCapture::new(&req, true, false, 1024).kind,
            Err(Unreadable::RepeatedHeader)
        );
        let mut gz = RequestHeader::build("POST", b"/login", None).unwrap();
        gz.append_header("content-type", "application/json").unwrap();
        gz.append_header("content-encoding", "gzip").unwrap();
        assert!(matches!(
            RequestCapture::new(&gz, true, false, 1024).kind,
            Err(Unreadable::Encoded(_))
        ));
    }

    fn succeeded(rule: &SuccessRule, response: &ResponseHeader) -> bool {
        super::succeeded(rule, response, SystemTime::now())
    }

    fn response(status: u16, location: Option<&str>, cookies: &[&str]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        if let Some(l) = location {
            r.insert_header("location", l).unwrap();
        }
        for c in cookies {
            r.append_header("set-cookie", *c).unwrap();
        }
        r
    }

    #[test]
    fn success_follows_the_configured_rule() {
        let rule = login(UsernameSource::Field("u".into())).success;
        assert!(succeeded(&rule, &response(302, Some("/"), &["sessionid=1"])));
        assert!(succeeded(
            &rule,
            &response(303, Some("https://app.example/home?x=1"), &[])
        ));
        assert!(
            !succeeded(&rule, &response(302, Some("/login?error=1"), &[])),
            "back to the form"
        );
        assert!(!succeeded(
            &rule,
            &response(302, Some("http://app.example/login/"), &[])
        ));
        assert!(
            !succeeded(&rule, &response(200, None, &[])),
            "the form again, with an error"
        );
        let by_body = SuccessRule {
            json: Some("/data/login/token".into()),
            ..rule.clone()
        };
        let says = |body: &[u8]| body_says(&by_body, body);
        assert_eq!(says(br#"{"data":{"login":{"token":"t"}}}"#), BodySays::Succeeded);
        assert_eq!(
            says(br#"{"data":{"login":null},"errors":[{"message":"wrong"}]}"#),
            BodySays::Failed
        );
        assert_eq!(says(br#"{"data":{"login":{"token":""}}}"#), BodySays::Failed);
        assert_eq!(says(br#"{"data":null}"#), BodySays::Failed);
        // A shape the gateway cannot read (an alias, another field, not JSON at
        // all, a compressed body) says neither: it is refused, never passed on.
        assert_eq!(says(br#"{"data":{"x":{"token":"t"}}}"#), BodySays::Unclear);
        assert_eq!(says(br#"{"data":[]}"#), BodySays::Unclear);
        assert_eq!(says(b"\x1f\x8b\x08 gzip"), BodySays::Unclear);
        assert_eq!(says(b""), BodySays::Unclear);
        assert_eq!(
            body_says(&rule, b"anything"),
            BodySays::Succeeded,
            "no body rule, no say"
        );
        let by_cookie = SuccessRule {
            statuses: vec![],
            location: None,
            location_not: None,
            set_cookie: Some("sessionid".into()),
            json: None,
        };
        assert!(succeeded(
            &by_cookie,
            &response(200, None, &["csrftoken=a", "sessionid=b; HttpOnly"])
        ));
        assert!(!succeeded(
            &by_cookie,
            &response(200, None, &["sessionid=; Max-Age=0"])
        ));
        assert!(!succeeded(&by_cookie, &response(200, None, &["sessionidx=b"])));
    }
}
