//! The cookies the gateway sets: names, attributes, and the sealing of their values.
//!
//! Values are encrypted and authenticated with the `cookie` crate's private jar
//! (AES-256-GCM with the cookie's name as associated data), so a value cannot be read,
//! forged, or moved to another cookie name.

use cookie::{Cookie, CookieJar, Key, SameSite};

/// The session cookie's name. On HTTPS the `__Host-` prefix makes browsers insist
/// on Secure, Path=/ and no Domain (host-only); plain-HTTP localhost demos cannot
/// use it.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portvakt"
    } else {
        "portvakt"
    }
}

/// The "don't ask again on this device" cookie's name.
pub fn trust_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portvakt-trust"
    } else {
        "portvakt-trust"
    }
}

/// The cookie naming this browser to the gateway (a random id), for telling an
/// unusual sign-in from a usual one.
pub fn browser_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portvakt-browser"
    } else {
        "portvakt-browser"
    }
}

/// The `Set-Cookie` value that names this browser for `lifetime`.
pub fn set_browser(id: &str, secure: bool, lifetime: std::time::Duration) -> String {
    lasting(browser_cookie_name(secure), id, secure, lifetime)
}

/// The cookie naming a form kept across a step-up, set with the step-up's way
/// back to the page it was posted to.
pub fn kept_request_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portvakt-kept"
    } else {
        "portvakt-kept"
    }
}

/// Encrypts a session id into the value of the session cookie.
pub fn seal_id(key: &Key, id: &str, secure: bool) -> String {
    seal(key, session_cookie_name(secure), id)
}

/// The session id inside a session cookie value, if it is genuine.
pub fn open_id(key: &Key, value: &str, secure: bool) -> Option<String> {
    open(key, session_cookie_name(secure), value)
}

/// Encrypts `value` for the cookie `name` (the name is bound in: a value made for
/// one cookie does not open as another).
pub fn seal(key: &Key, name: &'static str, value: &str) -> String {
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(Cookie::new(name, value.to_owned()));
    jar.get(name).map(|c| c.value().to_owned()).unwrap_or_default()
}

pub fn open(key: &Key, name: &'static str, value: &str) -> Option<String> {
    CookieJar::new()
        .private(key)
        .decrypt(Cookie::new(name, value.to_owned()))
        .map(|c| c.value().to_owned())
}

/// The `Set-Cookie` value that remembers this browser for `lifetime`.
pub fn set_trust(value: &str, secure: bool, lifetime: std::time::Duration) -> String {
    lasting(trust_cookie_name(secure), value, secure, lifetime)
}

/// A cookie of the gateway's that the browser keeps for `lifetime`.
fn lasting(name: &'static str, value: &str, secure: bool, lifetime: std::time::Duration) -> String {
    let seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    Cookie::build((name, value.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(seconds))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that gives the browser its session.
pub fn set_session(value: &str, secure: bool) -> String {
    Cookie::build((session_cookie_name(secure), value.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session(secure: bool) -> String {
    clear(session_cookie_name(secure), secure)
}

/// The `Set-Cookie` value that names the form kept under `id` for `lifetime`.
pub fn set_kept_request(id: &str, secure: bool, lifetime: std::time::Duration) -> String {
    lasting(kept_request_cookie_name(secure), id, secure, lifetime)
}

/// The `Set-Cookie` value that removes the kept-form cookie.
pub fn clear_kept_request(secure: bool) -> String {
    clear(kept_request_cookie_name(secure), secure)
}

fn clear(name: &'static str, secure: bool) -> String {
    Cookie::build((name, ""))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// The `name=value` pairs of the request's `Cookie` headers, as bytes: browsers send
/// UTF-8 in values (`name=Åsa`), and one such cookie must hide none of the others.
fn pairs(headers: &http::HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
}

/// A pair's name and value; a pair without `=` is all name.
fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|b| *b == b'=') {
        Some(at) => (&pair[..at], &pair[at + 1..]),
        None => (pair, &[]),
    }
}

/// A cookie's value from the request's `Cookie` headers. A name sent twice with
/// different values names nothing: one of them was planted (by a sibling host, or a
/// cookie with a longer path), and which one is the gateway's own cannot be told.
pub fn find<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = pairs(headers).filter_map(|pair| {
        let (k, v) = split_pair(pair);
        (k == name.as_bytes()).then_some(v)
    });
    let first = values.next()?;
    if !values.all(|other| other == first) {
        return None;
    }
    std::str::from_utf8(first).ok()
}

/// Whether a cookie is the gateway's own: names beginning `portvakt`, also after a
/// `__Host-` or `__Secure-` prefix, are reserved for it.
pub fn is_own(name: &str) -> bool {
    is_own_name(name.as_bytes())
}

/// What the name of every cookie of the gateway's begins with (after a `__Host-` or
/// `__Secure-` prefix).
pub const OWN_PREFIX: &[u8] = b"portvakt";

fn is_own_name(name: &[u8]) -> bool {
    name.strip_prefix(b"__Host-")
        .or_else(|| name.strip_prefix(b"__Secure-"))
        .unwrap_or(name)
        .starts_with(OWN_PREFIX)
}

/// The request's cookies without the gateway's own, when it carried any of those
/// (`None`: nothing to change), as the bytes of one `Cookie` header. The app has no
/// use for them, and what it never receives it cannot log or leak.
pub fn app_cookies(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    // Every request to the app comes through here: look without allocating first.
    let own = |pair: &&[u8]| is_own_name(split_pair(pair).0);
    if !pairs(headers).any(|pair| own(&pair)) {
        return None;
    }
    let mut kept = Vec::new();
    for pair in pairs(headers).filter(|pair| !own(pair)) {
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_sent_twice_differently_names_nothing() {
        let headers = |values: &[&str]| {
            let mut map = http::HeaderMap::new();
            for v in values {
                map.append(http::header::COOKIE, v.parse().unwrap());
            }
            map
        };
        let one = headers(&["a=1; portvakt-challenge=mine"]);
        assert_eq!(find(&one, "portvakt-challenge"), Some("mine"));
        let planted = headers(&["portvakt-challenge=theirs; portvakt-challenge=mine"]);
        assert_eq!(find(&planted, "portvakt-challenge"), None);
        let split = headers(&["portvakt-challenge=theirs", "portvakt-challenge=mine"]);
        assert_eq!(find(&split, "portvakt-challenge"), None);
        let same = headers(&["portvakt=x; portvakt=x"]);
        assert_eq!(find(&same, "portvakt"), Some("x"));
        assert!(is_own("__Secure-portvakt") && is_own("__Host-portvakt-trust") && !is_own("sessionid"));
    }

    #[test]
    fn the_app_never_receives_the_gateways_cookies() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "sessionid=1; portvakt=abc".parse().unwrap());
        headers.append(
            http::header::COOKIE,
            "__Host-portvakt-trust=x; csrftoken=2; portvakt-challenge=y"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            app_cookies(&headers).as_deref(),
            Some(&b"sessionid=1; csrftoken=2"[..])
        );
        let mut only_ours = http::HeaderMap::new();
        only_ours.insert(http::header::COOKIE, "portvakt=abc".parse().unwrap());
        assert_eq!(app_cookies(&only_ours).as_deref(), Some(&b""[..]));
        let mut theirs = http::HeaderMap::new();
        theirs.insert(http::header::COOKIE, "sessionid=1; vakt=2".parse().unwrap());
        assert_eq!(app_cookies(&theirs), None, "left exactly as sent");
    }

    /// A browser sends UTF-8 in a value: the gateway still finds its own cookies
    /// there, and still keeps them from the app.
    #[test]
    fn a_cookie_with_utf8_in_its_value_hides_nothing() {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_bytes("name=Åsa; portvakt=abc; x=café".as_bytes()).unwrap();
        headers.insert(http::header::COOKIE, value);
        assert_eq!(find(&headers, "portvakt"), Some("abc"));
        assert_eq!(
            app_cookies(&headers).as_deref(),
            Some("name=Åsa; x=café".as_bytes()),
            "the app's own cookies pass as sent"
        );
    }

    #[test]
    fn session_cookies_carry_the_attributes_design_asks_for() {
        let secure = set_session("v", true);
        for part in [
            "__Host-portvakt=v",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
        ] {
            assert!(secure.contains(part), "{secure}");
        }
        assert!(!secure.contains("Domain"), "host-only");
        let plain = set_session("v", false);
        assert!(
            plain.starts_with("portvakt=v") && !plain.contains("Secure"),
            "{plain}"
        );
        assert!(clear_session(true).contains("Max-Age=0"));
    }

    #[test]
    fn sealed_ids_open_only_with_their_key_and_name() {
        let key = Key::from(&[1; 64]);
        let value = seal_id(&key, "the-id", true);
        assert!(!value.contains("the-id"));
        assert_eq!(open_id(&key, &value, true).as_deref(), Some("the-id"));
        assert_eq!(open_id(&key, &value, false), None);
        assert_eq!(open_id(&Key::from(&[2; 64]), &value, true), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::COOKIE, "a=1; portvakt=xyz".parse().unwrap());
        headers.append(http::header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(find(&headers, "portvakt"), Some("xyz"));
        assert_eq!(find(&headers, "b"), Some("2"));
        assert_eq!(find(&headers, "c"), None);
    }
}
