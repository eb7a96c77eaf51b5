//! Which cookie a `Set-Cookie` value sets, read as a browser will (RFC 6265 §5.2),
//! and whether it sets a live value or deletes the cookie.
//!
//! The reading errs towards "live": an `Expires` the reader cannot parse is ignored,
//! as browsers ignore it, which leaves the cookie alive for the session.

use std::time::SystemTime;

/// One `Set-Cookie`, as the browser will store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// The name the browser will send it back under. A cookie without a name
    /// (`=sid=x`, or no `=` at all) is sent back as its bare value, which an app
    /// reads as `sid=x`: that is its name here.
    pub name: String,
    /// The value the browser will send back (quotes kept off).
    pub value: String,
    /// Set with a value that will be sent back; false for a deletion (an empty
    /// value, `Max-Age` of zero or less, or an `Expires` in the past).
    pub live: bool,
}

impl SetCookie {
    pub fn read(header: &[u8], now: SystemTime) -> SetCookie {
        let text = String::from_utf8_lossy(header);
        let mut parts = text.split(';');
        let pair = parts.next().unwrap_or_default();
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (trim(name), trim(value)),
            None => ("", trim(pair)),
        };
        let (name, value) = if name.is_empty() {
            match value.split_once('=') {
                Some((inner_name, inner_value)) => (trim(inner_name), trim(inner_value)),
                None => (value, ""),
            }
        } else {
            (name, value)
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let mut max_age = None;
        let mut expires = None;
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match trim(key).to_ascii_lowercase().as_str() {
                "max-age" => {
                    let val = trim(val);
                    let digits = val.strip_prefix('-').unwrap_or(val);
                    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        // Any negative or zero age deletes; a large one is just long.
                        max_age = Some(!val.starts_with('-') && digits.bytes().any(|b| b != b'0'));
                    }
                }
                "expires" => {
                    if let Ok(at) = httpdate::parse_http_date(trim(val)) {
                        expires = Some(at);
                    }
                }
                _ => {}
            }
        }
        let unexpired = match (max_age, expires) {
            (Some(positive), _) => positive,
            (None, Some(at)) => at > now,
            (None, None) => true,
        };
        SetCookie {
            name: name.to_owned(),
            value: value.to_owned(),
            live: !value.is_empty() && unexpired,
        }
    }
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The names of an app's session cookies: exact names, and prefixes (written with a
/// trailing `*`) for apps that put an id in the name. Compared without regard to
/// case, so that a second spelling is never missed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieNames {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl CookieNames {
    /// From names as configured (`sessionid`, `wordpress_logged_in_*`).
    pub fn new<S: AsRef<str>>(names: &[S]) -> CookieNames {
        let mut set = CookieNames::default();
        for name in names {
            let name = name.as_ref().to_ascii_lowercase();
            match name.strip_suffix('*') {
                Some(prefix) => set.prefixes.push(prefix.to_owned()),
                None => set.exact.push(name),
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.exact.contains(&name) || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// Whether any of these `Set-Cookie` values sets one of the cookies live.
    pub fn any_set_live<'h>(&self, headers: impl IntoIterator<Item = &'h [u8]>, now: SystemTime) -> bool {
        headers.into_iter().any(|h| {
            let cookie = SetCookie::read(h, now);
            cookie.live && self.contains(&cookie.name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn read(h: &str) -> (String, bool) {
        let c = SetCookie::read(h.as_bytes(), at());
        (c.name, c.live)
    }

    #[test]
    fn set_cookies_are_read_as_browsers_read_them() {
        assert_eq!(
            read("sessionid=abc; Path=/; HttpOnly"),
            ("sessionid".into(), true)
        );
        assert_eq!(read(" sessionid = \"abc\" "), ("sessionid".into(), true));
        assert_eq!(
            read("=sessionid=abc"),
            ("sessionid".into(), true),
            "nameless: sent back as sessionid=abc"
        );
        assert_eq!(read("sessionid"), ("sessionid".into(), false));
        assert_eq!(read("sessionid=; Path=/"), ("sessionid".into(), false));
        assert_eq!(read("sessionid=\"\""), ("sessionid".into(), false));
        assert_eq!(read("sessionid=x; Max-Age=0"), ("sessionid".into(), false));
        assert_eq!(read("sessionid=x; max-age=-1"), ("sessionid".into(), false));
        assert_eq!(read("sessionid=x; Max-Age=00"), ("sessionid".into(), false));
        assert_eq!(
            read("sessionid=x; Max-Age=99999999999999999999"),
            ("sessionid".into(), true)
        );
        assert_eq!(
            read("sessionid=x; Max-Age=soon"),
            ("sessionid".into(), true),
            "ignored"
        );
        assert_eq!(
            read("sessionid=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            ("sessionid".into(), false)
        );
        assert_eq!(
            read("sessionid=x; Expires=Fri, 01 Jan 2100 00:00:00 GMT"),
            ("sessionid".into(), true)
        );
        assert_eq!(
            read("sessionid=x; Expires=whenever"),
            ("sessionid".into(), true),
            "ignored"
        );
        assert_eq!(
            read("sessionid=x; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            ("sessionid".into(), true),
            "Max-Age wins"
        );
    }

    #[test]
    fn names_and_prefixes_match_in_any_case() {
        let names = CookieNames::new(&["sessionid", "wp_logged_in_*"]);
        assert!(names.contains("SessionID"));
        assert!(names.contains("wp_logged_in_abc123"));
        assert!(!names.contains("sessionidx"));
        assert!(!names.contains("csrftoken"));
        let headers: [&[u8]; 2] = [b"csrftoken=a", b"=SESSIONID=b"];
        assert!(names.any_set_live(headers, at()));
        let deletions: [&[u8]; 1] = [b"sessionid=; Max-Age=0"];
        assert!(!names.any_set_live(deletions, at()));
        assert!(CookieNames::new::<&str>(&[]).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn no_header_makes_the_reader_panic(h in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = SetCookie::read(&h, at());
        }
    }
}
