//! Request header hygiene: what a client may not send upstream, and where the client
//! address comes from.

use std::net::IpAddr;

use std::time::SystemTime;

use http::HeaderMap;
use ipnet::IpNet;

use crate::auth::cookies;
use crate::config::model::fold_header_name;
use crate::config::Config;
use crate::login::SetCookie;

/// Headers that some app or framework reads to learn the client's address, scheme,
/// original URL or real method. A client could use them to lie about where it is or
/// to make the app route a path other than the one policy saw, so they never pass
/// from a client; the gateway sets the `X-Forwarded-*` trio itself.
const CLIENT_FORBIDDEN: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // The overlay's ask for a held login answer: the gateway's, never the app's.
    RELEASE_HEADER,
];

/// The header the overlay script adds when it repeats a login call whose
/// second factor was just passed: answer it with the app's withheld answer.
pub const RELEASE_HEADER: &str = "portvakt-release";

// Looked up on every request: as `HeaderName`s they are hashed as they are, not
// parsed from text first.
pub const RELEASE: http::HeaderName = http::HeaderName::from_static(RELEASE_HEADER);
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// The names of every header to remove from a client request: identity headers in
/// any spelling (case, `_` for `-`), and the forwarding and rewrite headers above.
pub fn names_to_strip(config: &Config, headers: &HeaderMap) -> Vec<http::HeaderName> {
    headers
        .keys()
        .filter(|name| {
            // Folded once here; folding it again below copies nothing.
            let folded = fold_header_name(name.as_str());
            config.is_identity_header(&folded) || CLIENT_FORBIDDEN.contains(&&*folded)
        })
        .cloned()
        .collect()
}

/// Where the request came from, and what a trusted proxy told us about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOrigin {
    pub ip: IpAddr,
    /// The `X-Forwarded-For` chain to send upstream (ending with the peer).
    pub forwarded_for: http::HeaderValue,
    /// `http` or `https` as the client used it.
    pub proto: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a trusted proxy sent an X-Forwarded-For or Forwarded header that cannot be read")]
pub struct BadForwardedHeader;

/// Works out the client address. Forwarding headers count only when the socket peer
/// is a trusted proxy; then the chain is read from the right, and the first address
/// that is not itself a trusted proxy is the client.
pub fn client_origin(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    tls: bool,
) -> Result<ClientOrigin, BadForwardedHeader> {
    let own_proto = if tls { "https" } else { "http" };
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Ok(ClientOrigin {
            ip: peer,
            forwarded_for: address_value(peer),
            proto: own_proto,
        });
    }
    let mut chain = forwarded_for_chain(headers)?;
    let ip = chain
        .iter()
        .rev()
        .find(|ip| !trusted.iter().any(|n| n.contains(*ip)))
        .or(chain.first())
        .copied()
        .unwrap_or(peer);
    chain.push(peer);
    let mut forwarded_for = Vec::with_capacity(chain.len() * 17);
    for (i, ip) in chain.iter().enumerate() {
        if i > 0 {
            forwarded_for.extend_from_slice(b", ");
        }
        write_address(*ip, &mut forwarded_for);
    }
    let proto = match headers.get(X_FORWARDED_PROTO).map(|v| v.as_bytes()) {
        Some(b"https") => "https",
        Some(b"http") => "http",
        _ => own_proto,
    };
    Ok(ClientOrigin {
        ip,
        forwarded_for: http::HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded_for))
            .map_err(|_| BadForwardedHeader)?,
        proto,
    })
}

/// An address as a header value.
fn address_value(ip: IpAddr) -> http::HeaderValue {
    let mut text = Vec::with_capacity(15);
    write_address(ip, &mut text);
    // Digits, dots, colons and hex letters are valid header bytes.
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .unwrap_or(http::HeaderValue::from_static("-"))
}

/// Writes an address as Rust writes it. Nearly every request comes from an IPv4
/// client: its four numbers are written out without the formatting machinery.
pub(super) fn write_address(ip: IpAddr, out: &mut Vec<u8>) {
    let IpAddr::V4(v4) = ip else {
        let _ = std::io::Write::write_fmt(out, format_args!("{ip}"));
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        out.extend(digits[skip..].iter().map(|d| b'0' + d));
    }
}

/// The addresses of `X-Forwarded-For`, or else of `Forwarded: for=...`, left to right.
fn forwarded_for_chain(headers: &HeaderMap) -> Result<Vec<IpAddr>, BadForwardedHeader> {
    let xff: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
    let mut chain = Vec::new();
    if !xff.is_empty() {
        for value in xff {
            let text = value.to_str().map_err(|_| BadForwardedHeader)?;
            for part in text.split(',') {
                chain.push(parse_node(part.trim()).ok_or(BadForwardedHeader)?);
            }
        }
        return Ok(chain);
    }
    for value in headers.get_all(http::header::FORWARDED) {
        let text = value.to_str().map_err(|_| BadForwardedHeader)?;
        for element in text.split(',') {
            let for_value = element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("for"))
                .map(|(_, v)| v.trim_matches('"'));
            if let Some(v) = for_value {
                chain.push(parse_node(v).ok_or(BadForwardedHeader)?);
            }
        }
    }
    Ok(chain)
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(sa) = text.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
}

/// Takes out of an app's answer every `Set-Cookie` of a name the gateway keeps for
/// its own cookies (read as a browser reads it: `=portvakt=x` is sent back as a
/// cookie named `portvakt`). An app, or a host sharing its domain, must not set the
/// gateway's session, challenge or remembered-browser cookie for a browser.
///
/// `None` when there is none (nothing to change); else the `Set-Cookie` values to
/// keep, in order.
pub fn without_gateway_cookies(headers: &HeaderMap, now: SystemTime) -> Option<Vec<http::HeaderValue>> {
    let values = headers.get_all(http::header::SET_COOKIE);
    // Every answer that sets a cookie comes through here: only a value that spells
    // `portvakt` somewhere can name one of the gateway's cookies, and only such a
    // value is read whole.
    let own = |v: &http::HeaderValue| {
        v.as_bytes()
            .windows(cookies::OWN_PREFIX.len())
            .any(|w| w == cookies::OWN_PREFIX)
            && cookies::is_own(&SetCookie::read(v.as_bytes(), now).name)
    };
    if !values.iter().any(own) {
        return None;
    }
    tracing::warn!("an app's answer set one of the gateway's cookies; taken out");
    Some(values.iter().filter(|v| !own(v)).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let h = headers(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-proto", "https")]);
        let o = client_origin(ip("198.51.100.7"), &h, &["10.0.0.0/8".parse().unwrap()], false).unwrap();
        assert_eq!(
            o,
            ClientOrigin {
                ip: ip("198.51.100.7"),
                forwarded_for: http::HeaderValue::from_static("198.51.100.7"),
                proto: "http"
            }
        );
    }

    #[test]
    fn addresses_are_written_as_rust_writes_them() {
        for text in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "192.0.2.7",
            "2001:db8::1",
            "::",
        ] {
            assert_eq!(address_value(ip(text)).to_str().unwrap(), text);
        }
        for octet in 0..=255u8 {
            let v4 = IpAddr::from([octet, 0, octet, 255 - octet]);
            assert_eq!(address_value(v4).to_str().unwrap(), v4.to_string());
        }
    }

    #[test]
    fn trusted_chain_is_read_from_the_right() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let o = client_origin(ip("10.0.0.1"), &h, &trusted, false).unwrap();
        assert_eq!(o.ip, ip("203.0.113.9"));
        assert_eq!(o.forwarded_for, "1.1.1.1, 203.0.113.9, 10.0.0.2, 10.0.0.1");
        assert_eq!(o.proto, "https");
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(
            client_origin(ip("10.0.0.1"), &h, &trusted, true).unwrap().ip,
            ip("2001:db8::1")
        );
        let h = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_origin(ip("10.0.0.1"), &h, &trusted, true),
            Err(BadForwardedHeader)
        );
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_origin(ip("10.0.0.1"), &h, &trusted, true),
            Err(BadForwardedHeader)
        );
        // A trusted peer with no header is the client itself.
        assert_eq!(
            client_origin(ip("10.0.0.1"), &HeaderMap::new(), &trusted, true)
                .unwrap()
                .ip,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn identity_and_rewrite_headers_are_found_in_every_spelling() {
        let config = crate::config::parse(
            "listen: [\"127.0.0.1:1\"]\nstate_dir: s\nidentity_headers: [Remote-User]\napps:\n  a:\n    hosts: [a]\n    upstream: http://127.0.0.1:1\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let h = headers(&[
            ("X-Portvakt-User", "mallory"),
            ("x_portvakt_groups", "admins"),
            ("X-PORTVAKT-AUTH-TIME", "1"),
            ("remote_user", "root"),
            ("X-Original-URL", "/admin"),
            ("x_forwarded_for", "10.0.0.1"),
            ("accept", "*/*"),
            ("x-portvaktish", "kept"),
        ]);
        let mut stripped: Vec<String> = names_to_strip(&config, &h)
            .iter()
            .map(|n| n.to_string())
            .collect();
        stripped.sort();
        assert_eq!(
            stripped,
            [
                "remote_user",
                "x-original-url",
                "x-portvakt-auth-time",
                "x-portvakt-user",
                "x_forwarded_for",
                "x_portvakt_groups"
            ]
        );
    }

    #[test]
    fn the_gateways_cookies_set_by_an_app_are_taken_out() {
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        for value in [
            "sessionid=app; Path=/",
            "portvakt-challenge=TOSSED; Path=/.portvakt; Domain=test",
            "__Host-portvakt=x; Path=/; Secure",
            "=portvakt-trust=y",
            "theme=dark",
        ] {
            headers.append(http::header::SET_COOKIE, value.parse().unwrap());
        }
        let kept = without_gateway_cookies(&headers, now).expect("some to take out");
        let left: Vec<_> = kept.iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(left, ["sessionid=app; Path=/", "theme=dark"]);
        headers.remove(http::header::SET_COOKIE);
        headers.append(http::header::SET_COOKIE, "a=b".parse().unwrap());
        assert!(without_gateway_cookies(&headers, now).is_none());
    }
}
