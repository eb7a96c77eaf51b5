//! Reading the request target: which host it is for, and its raw path and query.

use http::uri::Authority;
use pingora::http::RequestHeader;

/// Why a request target was refused before any policy was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the request names no host")]
    NoHost,
    #[error("the request names more than one host")]
    ConflictingHosts,
    #[error("the host is not a valid host name")]
    BadHost,
    #[error("the request target is neither a path nor an http(s) URL")]
    BadTarget,
    #[error("the query string is not valid UTF-8")]
    BadQuery,
}

/// A request target split into its parts, as the client sent them.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'r> {
    pub authority: Authority,
    /// The raw path bytes, before any normalisation.
    pub path: &'r [u8],
    pub query: Option<&'r str>,
}

/// Splits the request target. The host comes from an absolute-form target or HTTP/2
/// `:authority` (which RFC 9112 §3.2.2 puts before `Host`), else the one `Host`
/// header; when both are present they must agree.
pub fn parse(req: &RequestHeader) -> Result<Target<'_>, TargetError> {
    // Pingora keeps the target's raw bytes; its `uri` is a lossy copy for non-UTF-8
    // targets and holds no authority for absolute-form ones.
    let raw = req.raw_path();
    let (target_authority, path_and_query): (Option<Authority>, &[u8]) = if raw.first() == Some(&b'/') {
        (req.uri.authority().cloned(), raw)
    } else if starts_with_ignore_case(raw, b"http://") || starts_with_ignore_case(raw, b"https://") {
        let uri = http::Uri::try_from(raw).map_err(|_| TargetError::BadTarget)?;
        let authority = uri.authority().cloned().ok_or(TargetError::BadTarget)?;
        let scheme_len = raw.iter().position(|b| *b == b':').map_or(0, |i| i + 3);
        let rest = raw
            .get(scheme_len + authority.as_str().len()..)
            .unwrap_or_default();
        (Some(authority), if rest.is_empty() { b"/" } else { rest })
    } else {
        return Err(TargetError::BadTarget);
    };

    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetError::ConflictingHosts);
    }
    let header = header
        .map(|h| {
            h.to_str()
                .map_err(|_| TargetError::BadHost)?
                .parse::<Authority>()
                .map_err(|_| TargetError::BadHost)
        })
        .transpose()?;
    let authority = match (target_authority, header) {
        (Some(t), Some(h)) if !t.as_str().eq_ignore_ascii_case(h.as_str()) => {
            return Err(TargetError::ConflictingHosts)
        }
        (Some(t), _) => t,
        (None, Some(h)) => h,
        (None, None) => return Err(TargetError::NoHost),
    };
    // `Authority` takes `host:anything`; a port is digits (RFC 3986 §3.2.3).
    let port = authority
        .as_str()
        .get(authority.host().len()..)
        .unwrap_or_default();
    let port_ok = port
        .strip_prefix(':')
        .is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if authority.as_str().contains('@') || authority.host().is_empty() || !port_ok {
        return Err(TargetError::BadHost);
    }

    let (path, query) = match path_and_query.iter().position(|b| *b == b'?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    let query = query
        .map(|q| std::str::from_utf8(q).map_err(|_| TargetError::BadQuery))
        .transpose()?;
    Ok(Target {
        authority,
        path,
        query,
    })
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack
        .get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &[u8], hosts: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target, None).unwrap();
        for h in hosts {
            r.append_header("host", *h).unwrap();
        }
        r
    }

    fn parts(target: &[u8], hosts: &[&str]) -> Result<(String, Vec<u8>, Option<String>), TargetError> {
        let r = req(target, hosts);
        parse(&r).map(|t| {
            (
                t.authority.as_str().to_owned(),
                t.path.to_vec(),
                t.query.map(str::to_owned),
            )
        })
    }

    #[test]
    fn targets_split_and_hosts_must_agree() {
        assert_eq!(
            parts(b"/a?b=1", &["wiki.example:8080"]),
            Ok(("wiki.example:8080".into(), b"/a".to_vec(), Some("b=1".into())))
        );
        assert_eq!(
            parts(b"http://a.example/x?y", &["A.example"]),
            Ok(("a.example".into(), b"/x".to_vec(), Some("y".into())))
        );
        assert_eq!(
            parts(b"HTTP://a.example", &[]),
            Ok(("a.example".into(), b"/".to_vec(), None))
        );
        assert_eq!(
            parts(b"http://a.example/x", &["b.example"]),
            Err(TargetError::ConflictingHosts)
        );
        assert_eq!(
            parts(b"/", &["a.example", "b.example"]),
            Err(TargetError::ConflictingHosts)
        );
        assert_eq!(parts(b"/", &[]), Err(TargetError::NoHost));
        assert_eq!(parts(b"/", &["user@a.example"]), Err(TargetError::BadHost));
        assert_eq!(parts(b"/", &["a b"]), Err(TargetError::BadHost));
        assert_eq!(parts(b"/", &["a:notaport"]), Err(TargetError::BadHost));
        assert_eq!(parts(b"/", &["[::1]:8080"]).map(|p| p.0), Ok("[::1]:8080".into()));
        assert_eq!(parts(b"/", &["a:"]).map(|p| p.0), Ok("a:".into()));
        assert_eq!(parts(b"*", &["a"]), Err(TargetError::BadTarget));
        assert_eq!(parts(b"ftp://a/x", &["a"]), Err(TargetError::BadTarget));
        assert_eq!(parts(b"/caf\xe9", &["a"]).map(|p| p.1), Ok(b"/caf\xe9".to_vec()));
    }
}
