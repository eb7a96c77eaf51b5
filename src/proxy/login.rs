//! Watching an app's own login: who tried to sign in (from the body the browser
//! sent, which passes to the app untouched) and whether the app let them in (from
//! its response header, before anything reaches the browser).

use pingora::http::ResponseHeader;

use crate::config::model::{LoginInterception, SuccessRule, UsernameSource};

/// The login request's body as it streams to the app, up to the configured limit.
#[derive(Debug, Default)]
pub struct LoginCapture {
    pub body: Vec<u8>,
    pub content_type: String,
    /// Set when the whole body has passed.
    pub complete: bool,
    /// The "don't ask again in this browser" cookie the login came with.
    pub trust_cookie: Option<String>,
}

impl LoginCapture {
    pub fn new(content_type: Option<&str>) -> Self {
        LoginCapture {
            content_type: content_type.unwrap_or_default().to_ascii_lowercase(),
            ..LoginCapture::default()
        }
    }

    /// Adds a chunk; false when the body would exceed `limit`.
    pub fn push(&mut self, chunk: &[u8], limit: usize) -> bool {
        if self.body.len() + chunk.len() > limit {
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }
}

/// The user name a login names: a form or JSON field, or the app's one identity.
/// `None` when the body does not name anyone, or was not seen whole (the login then
/// cannot be accepted).
///
/// The name is trimmed and, unless the app is configured as case-sensitive, lower-
/// cased. Many apps accept `ALICE` or ` alice` for `alice`; were the gateway to keep
/// them apart, someone with alice's password could type `ALICE`, find no device
/// enrolled under that name, and enrol their own phone.
pub fn username(login: &LoginInterception, capture: &LoginCapture) -> Option<String> {
    let field = match &login.username {
        UsernameSource::Fixed(identity) => return Some(identity.clone()),
        UsernameSource::Field(_) if !capture.complete => return None,
        UsernameSource::Field(field) => field,
    };
    let name =
        if capture.content_type.starts_with("application/json") || capture.content_type.contains("+json") {
            let value: serde_json::Value = serde_json::from_slice(&capture.body).ok()?;
            value.get(field)?.as_str()?.to_owned()
        } else {
            form_urlencoded::parse(&capture.body)
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.into_owned())?
        };
    if name.len() > 256 || name.chars().any(char::is_control) {
        return None;
    }
    let trimmed = name.trim();
    let canonical = if login.username_case_sensitive {
        trimmed.to_owned()
    } else {
        trimmed.to_lowercase()
    };
    (!canonical.is_empty()).then_some(canonical)
}

/// Whether the app's answer means the password was right.
pub fn succeeded(rule: &SuccessRule, response: &ResponseHeader) -> bool {
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
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split('=').next().map(str::trim) == Some(name.as_str()) && !is_deletion(v))
    });
    status_ok && location_ok && location_not_ok && cookie_ok
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

/// A Set-Cookie that removes the cookie rather than setting it.
fn is_deletion(set_cookie: &str) -> bool {
    let lower = set_cookie.to_ascii_lowercase();
    lower.contains("max-age=0") || lower.contains("expires=thu, 01 jan 1970")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(source: UsernameSource) -> LoginInterception {
        LoginInterception {
            path: "/login".into(),
            method: "POST".into(),
            username: source,
            success: SuccessRule {
                statuses: vec![302, 303],
                location: None,
                location_not: Some("/login".into()),
                set_cookie: None,
            },
            logout_path: None,
            page: "/login".into(),
            return_param: None,
            email_header: None,
            username_case_sensitive: false,
            max_body: 1024,
        }
    }

    fn capture(content_type: &str, body: &str) -> LoginCapture {
        let mut c = LoginCapture::new(Some(content_type));
        assert!(c.push(body.as_bytes(), 1024));
        c.complete = true;
        c
    }

    #[test]
    fn user_names_come_from_forms_json_or_configuration() {
        let by_field = login(UsernameSource::Field("username".into()));
        let form = capture(
            "application/x-www-form-urlencoded",
            "csrf=x&username=al%C3%AFce+b&password=p",
        );
        assert_eq!(username(&by_field, &form).as_deref(), Some("alïce b"));
        let json = capture(
            "application/json; charset=utf-8",
            r#"{"username":"bob","password":"p"}"#,
        );
        assert_eq!(username(&by_field, &json).as_deref(), Some("bob"));
        for (ct, body) in [
            ("application/x-www-form-urlencoded", "password=p"),
            ("application/x-www-form-urlencoded", "username=%0Aroot"),
            ("application/x-www-form-urlencoded", "username=+"),
            ("application/json", r#"{"username":7}"#),
            ("application/json", "not json"),
        ] {
            assert_eq!(username(&by_field, &capture(ct, body)), None, "{body}");
        }
        // One account, however it is typed; the exact form only when configured so.
        for typed in ["ALICE", " alice ", "Alice"] {
            let body = format!("username={}", typed.replace(' ', "+"));
            let c = capture("application/x-www-form-urlencoded", &body);
            assert_eq!(username(&by_field, &c).as_deref(), Some("alice"), "{typed:?}");
        }
        let mut exact = by_field.clone();
        exact.username_case_sensitive = true;
        let c = capture("application/x-www-form-urlencoded", "username=Alice");
        assert_eq!(username(&exact, &c).as_deref(), Some("Alice"));
        // A body not seen to its end names nobody.
        let mut partial = capture("application/x-www-form-urlencoded", "username=alice");
        partial.complete = false;
        assert_eq!(username(&by_field, &partial), None);
        let single = login(UsernameSource::Fixed("admin".into()));
        assert_eq!(
            username(&single, &capture("text/plain", "password=p")).as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn bodies_over_the_limit_are_refused() {
        let mut c = LoginCapture::new(None);
        assert!(c.push(&[b'a'; 1000], 1024));
        assert!(!c.push(&[b'a'; 25], 1024));
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
        let by_cookie = SuccessRule {
            statuses: vec![],
            location: None,
            location_not: None,
            set_cookie: Some("sessionid".into()),
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
