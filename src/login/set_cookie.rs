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
                    if let Some(at) = cookie_date(val) {
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

/// RFC 6265 §5.1.1: the date algorithm browsers use for `Expires`, which takes
/// `Thu, 01 Jan 1970 00:00:00 GMT`, `01-Jan-1970 00:00:00` and most other spellings.
fn cookie_date(text: &str) -> Option<SystemTime> {
    let delimiter =
        |c: char| matches!(c, '\t' | '\x20'..='\x2f' | '\x3b'..='\x40' | '\x5b'..='\x60' | '\x7b'..='\x7e');
    let (mut time, mut day, mut month, mut year) = (None, None, None, None);
    for token in text.split(delimiter).filter(|t| !t.is_empty()) {
        if time.is_none() {
            if let Some(hms) = clock(token) {
                time = Some(hms);
                continue;
            }
        }
        if day.is_none() {
            if let Some(d) = leading_digits(token, 1, 2) {
                day = Some(d);
                continue;
            }
        }
        if month.is_none() {
            let lower = token.get(..3).map(str::to_ascii_lowercase);
            const MONTHS: [&str; 12] = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ];
            if let Some(m) = lower.and_then(|l| MONTHS.iter().position(|m| *m == l)) {
                month = Some(m as u64 + 1);
                continue;
            }
        }
        if year.is_none() {
            if let Some(y) = leading_digits(token, 2, 4) {
                year = Some(match y {
                    70..=99 => y + 1900,
                    0..=69 => y + 2000,
                    y => y,
                });
            }
        }
    }
    let ((hour, minute, second), day, month, year) = (time?, day?, month?, year?);
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year < 1601 || !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if year < 1970 {
        // In the past as surely as 1970 itself.
        return Some(SystemTime::UNIX_EPOCH);
    }
    // Days since 1970-01-01 (H. Hinnant's days_from_civil).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    let seconds = days.checked_mul(86_400)? + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds))
}

/// `hh:mm:ss` (one or two digits each) at the start of a token.
fn clock(token: &str) -> Option<(u64, u64, u64)> {
    let mut parts = token.splitn(3, ':');
    let hour = leading_digits(parts.next()?, 1, 2)?;
    let minute = leading_digits(parts.next()?, 1, 2)?;
    let second = leading_digits(parts.next()?, 1, 2)?;
    Some((hour, minute, second))
}

/// `min` to `max` digits at the start of a token, not followed by another digit.
fn leading_digits(token: &str, min: usize, max: usize) -> Option<u64> {
    let digits = token.bytes().take_while(u8::is_ascii_digit).count();
    if !(min..=max).contains(&digits) {
        return None;
    }
    token[..digits].parse().ok()
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

    /// The `Set-Cookie` values among these that set or delete one of the cookies.
    pub fn named<'h>(&self, headers: impl IntoIterator<Item = &'h [u8]>, now: SystemTime) -> Vec<SetCookie> {
        headers
            .into_iter()
            // Most answers set other cookies (or none): only a name that could be
            // one of these is read whole.
            .filter(|h| self.might_name(h))
            .map(|h| SetCookie::read(h, now))
            .filter(|cookie| self.contains(&cookie.name))
            .collect()
    }

    /// The `Set-Cookie` values among these that set one of the cookies live.
    pub fn set_live<'h>(
        &self,
        headers: impl IntoIterator<Item = &'h [u8]>,
        now: SystemTime,
    ) -> Vec<SetCookie> {
        let mut named = self.named(headers, now);
        named.retain(|cookie| cookie.live);
        named
    }

    /// A cheap first look: whether the header's text holds one of the names.
    fn might_name(&self, header: &[u8]) -> bool {
        let holds = |needle: &str| {
            header
                .windows(needle.len().max(1))
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        };
        self.exact.iter().chain(&self.prefixes).any(|n| holds(n))
    }
}

/// Whether an answer sets one cookie more than one way (two values, or a value and
/// a deletion): the browser keeps the last, a client reading every header may not,
/// and which one the app meant is its secret.
pub fn set_more_than_one_way(cookies: &[SetCookie]) -> bool {
    cookies.iter().enumerate().any(|(i, a)| {
        cookies[..i]
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(&a.name) && (b.value != a.value || b.live != a.live))
    })
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
        let headers: [&[u8]; 3] = [b"csrftoken=a", b"=SESSIONID=b", b"x=sessionid"];
        let live = names.set_live(headers, at());
        assert_eq!(
            live.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["SESSIONID"]
        );
        let deletions: [&[u8]; 1] = [b"sessionid=; Max-Age=0"];
        assert!(names.set_live(deletions, at()).is_empty());
        let twice: [&[u8]; 3] = [b"sessionid=a", b"other=x", b"sessionid=; Max-Age=0"];
        assert!(set_more_than_one_way(&names.named(twice, at())));
        let renewed: [&[u8]; 2] = [b"sessionid=a; Path=/", b"SessionID=a"];
        assert!(!set_more_than_one_way(&names.named(renewed, at())));
        assert!(CookieNames::new::<&str>(&[]).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn no_header_makes_the_reader_panic(h in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = SetCookie::read(&h, at());
        }
    }
}
