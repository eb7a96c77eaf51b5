//! Where to send the browser after a gateway page: only a path on the same host.

/// `candidate` if it is a same-host path, else `/`.
///
/// Refused: anything not starting with a single `/`; `//host` and `/\host` (which
/// browsers read as another host); schemes; control characters (CR/LF header
/// injection); and any of these hidden behind percent-encoding, decoded up to three
/// times.
pub fn safe_return_path(candidate: &str) -> &str {
    if is_safe(candidate) {
        candidate
    } else {
        "/"
    }
}

fn is_safe(candidate: &str) -> bool {
    let mut text = std::borrow::Cow::Borrowed(candidate);
    for _ in 0..3 {
        if !looks_local(&text) {
            return false;
        }
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            return true;
        }
        text = std::borrow::Cow::Owned(decoded);
    }
    // Still changing after three decodings: nobody honest sends that.
    false
}

fn looks_local(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !bytes.iter().any(|b| b.is_ascii_control() || *b == b'\\')
        && path.len() <= 2048
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_host_paths_survive() {
        let kept = [
            "/",
            "/admin/users?tab=2",
            "/a/b#frag",
            "/%C3%A4rende",
            "/search?q=a%2Fb",
        ];
        for path in kept {
            assert_eq!(safe_return_path(path), path);
        }
        let refused = [
            "",
            "admin",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "https://evil.example/",
            "javascript:alert(1)",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%255C%255Cevil",
            "/a\r\nSet-Cookie: x=1",
            "/a%0d%0aSet-Cookie:%20x=1",
            "/a\tb",
            "/%25252F%25252Fevil",
        ];
        for path in refused {
            assert_eq!(safe_return_path(path), "/", "{path:?}");
        }
    }
}
