//! Whether a POST to a gateway form was made by another site.

use http::HeaderMap;
#[cfg(test)]
use http::HeaderValue;

/// Whether a request comes from another site: its `Origin` is not this gateway's
/// scheme, host and port, or, without one (or with an opaque `null`), Fetch
/// Metadata says so. Clients that send neither (scripts, old browsers) are not
/// refused here; the forms' tokens still hold.
pub fn is_cross_site(headers: &HeaderMap, secure: bool, host: &str) -> bool {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let fetch_site = header("sec-fetch-site");
    match header("origin") {
        Some("null") => fetch_site.is_none_or(|site| site != "same-origin"),
        Some(origin) => !same_origin(origin, secure, host),
        None => fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none")),
    }
}

/// Whether a request says it comes from this gateway's own origin: its `Origin`
/// is this scheme, host and port, or, without one, Fetch Metadata says
/// `same-origin`. Stricter than not [`is_cross_site`]: a request that says
/// neither, or says `same-site` (a sibling host), is not taken for one.
pub fn is_same_origin(headers: &HeaderMap, secure: bool, host: &str) -> bool {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let fetch_site = header("sec-fetch-site");
    if fetch_site.is_some_and(|site| site != "same-origin") {
        return false;
    }
    match header("origin") {
        Some("null") => false,
        Some(origin) => same_origin(origin, secure, host),
        None => fetch_site.is_some(),
    }
}

/// `scheme://host[:port]` against the request's scheme and host (default ports
/// left out or written alike).
fn same_origin(origin: &str, secure: bool, host: &str) -> bool {
    let (scheme, default_port) = if secure { ("https", "443") } else { ("http", "80") };
    let Some(authority) = origin
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
    else {
        return false;
    };
    let with_port = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        let has_port = a
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !a.ends_with(']'));
        if has_port {
            a
        } else {
            format!("{a}:{default_port}")
        }
    };
    !authority.contains('/') && with_port(authority) == with_port(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let host = "intranet.test:8080";
        /// Request headers, TLS, the gateway's host, whether the POST is refused.
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a str, bool);
        let cases: &[Case] = &[
            (&[("origin", "http://intranet.test:8080")], false, host, false),
            (&[("origin", "http://evil.example")], false, host, true),
            (&[("origin", "null")], false, host, true),
            (
                &[("origin", "null"), ("sec-fetch-site", "cross-site")],
                false,
                host,
                true,
            ),
            (
                &[("origin", "null"), ("sec-fetch-site", "same-origin")],
                false,
                host,
                false,
            ),
            (&[("origin", "https://intranet.test:8080")], false, host, true),
            (
                &[("origin", "http://intranet.test:8080.evil.example")],
                false,
                host,
                true,
            ),
            (&[("sec-fetch-site", "cross-site")], false, host, true),
            (&[("sec-fetch-site", "same-site")], false, host, true),
            (&[("sec-fetch-site", "same-origin")], false, host, false),
            (&[], false, host, false),
            (
                &[("origin", "https://intranet.test")],
                true,
                "intranet.test:443",
                false,
            ),
            (
                &[("origin", "https://intranet.test:443")],
                true,
                "intranet.test",
                false,
            ),
        ];
        for (headers, secure, host, refused) in cases {
            assert_eq!(
                is_cross_site(&post(headers), *secure, host),
                *refused,
                "{headers:?} to {host}"
            );
        }
    }

    #[test]
    fn only_a_request_that_says_it_is_from_this_origin_is_same_origin() {
        let host = "intranet.test:8080";
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("origin", "http://intranet.test:8080")], true),
            (
                &[
                    ("origin", "http://intranet.test:8080"),
                    ("sec-fetch-site", "same-origin"),
                ],
                true,
            ),
            (&[("sec-fetch-site", "same-origin")], true),
            // Says nothing: a script or an old browser, not known to be this origin.
            (&[], false),
            (&[("origin", "null")], false),
            (&[("origin", "null"), ("sec-fetch-site", "same-origin")], false),
            (&[("origin", "http://evil.example")], false),
            (&[("origin", "https://intranet.test:8080")], false),
            (
                &[
                    ("origin", "http://intranet.test:8080"),
                    ("sec-fetch-site", "same-site"),
                ],
                false,
            ),
            (&[("sec-fetch-site", "same-site")], false),
            (&[("sec-fetch-site", "none")], false),
            (&[("sec-fetch-site", "cross-site")], false),
            (
                &[
                    ("origin", "http://intranet.test:8080"),
                    ("sec-fetch-site", "cross-site"),
                ],
                false,
            ),
        ];
        for (headers, same) in cases {
            assert_eq!(is_same_origin(&post(headers), false, host), *same, "{headers:?}");
        }
    }
}
