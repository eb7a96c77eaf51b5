//! Request path normalisation: one canonical path that is both matched and forwarded.
//!
//! Each byte of the result is either what the client sent or the decoding of an
//! unreserved character, so an app that decodes the path once sees exactly the
//! `decoded` form that the rules were matched against. What could be read two ways
//! by some server behind us is refused instead of guessed at.

use std::fmt;

/// A path after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedPath {
    /// The form sent upstream (percent-encoding kept where it matters).
    forwarded: String,
    /// The same path fully percent-decoded; rules match against this.
    decoded: String,
}

impl NormalisedPath {
    pub fn forwarded(&self) -> &str {
        &self.forwarded
    }

    pub fn decoded(&self) -> &str {
        &self.decoded
    }

    /// The decoded path's segments, without empty ones.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.decoded.split('/').filter(|s| !s.is_empty())
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with /")]
    NotAbsolute,
    #[error("the path holds an encoded slash (%2F), which servers read in different ways")]
    EncodedSlash,
    #[error("the path holds a backslash, which some servers read as a slash")]
    Backslash,
    #[error("the path holds a NUL or another control character")]
    ControlCharacter,
    #[error("the path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error("the path holds a percent sign that is not followed by two hex digits")]
    BadPercentEncoding,
    #[error("the path is percent-encoded twice (%25 followed by hex digits)")]
    DoubleEncoding,
    #[error("the path holds a `;` parameter, which some servers strip before routing")]
    Semicolon,
    #[error("the path climbs above the root with ..")]
    AboveRoot,
}

impl PathError {
    /// A short, stable name for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "not_absolute",
            PathError::EncodedSlash => "encoded_slash",
            PathError::Backslash => "backslash",
            PathError::ControlCharacter => "control_character",
            PathError::InvalidUtf8 => "invalid_utf8",
            PathError::BadPercentEncoding => "bad_percent_encoding",
            PathError::DoubleEncoding => "double_encoding",
            PathError::Semicolon => "semicolon",
            PathError::AboveRoot => "above_root",
        }
    }
}

impl fmt::Display for NormalisedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.forwarded)
    }
}

/// One segment as it travels: what to forward and what it means.
struct Segment {
    forwarded: String,
    decoded: String,
}

/// Normalises the path part of a request target (no query string).
///
/// Decodes unreserved characters, resolves `.` and `..`, collapses repeated slashes,
/// and refuses everything listed in [`PathError`].
pub fn normalise(raw: &[u8]) -> Result<NormalisedPath, PathError> {
    match already_normal(raw) {
        Some(path) => Ok(NormalisedPath {
            forwarded: path.to_owned(),
            decoded: path.to_owned(),
        }),
        None => normalise_segments(raw),
    }
}

/// The path itself when normalising would leave it as it is (nearly every request:
/// plain characters, no `%`, no empty, `.` or `..` segment but a trailing slash),
/// checked in one pass instead of built segment by segment. `None` sends the path
/// the long way, which also refuses what must be refused.
fn already_normal(raw: &[u8]) -> Option<&str> {
    let rest = raw.strip_prefix(b"/")?;
    let plain = |b: &u8| *b == b'/' || (*b != b';' && is_allowed_raw(*b));
    if !rest.iter().all(plain) {
        return None;
    }
    let mut segments = rest.split(|b| *b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == b"." || segment == b".." {
            return None;
        }
    }
    // Every byte is ASCII (`is_allowed_raw`).
    std::str::from_utf8(raw).ok()
}

/// The long way: segment by segment, decoding, resolving and refusing.
fn normalise_segments(raw: &[u8]) -> Result<NormalisedPath, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut stack: Vec<Segment> = Vec::new();
    // Whether the path ends in a slash is decided by its last segment: `/a/`, `/a/.`
    // and `/a/b/..` all do, `/a` does not.
    let mut trailing_slash = false;
    for raw_segment in raw.split(|b| *b == b'/').skip(1) {
        let segment = decode_segment(raw_segment)?;
        match segment.decoded.as_str() {
            "" | "." => trailing_slash = true,
            ".." => {
                stack.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            _ => {
                stack.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut forwarded = String::with_capacity(raw.len());
    let mut decoded = String::with_capacity(raw.len());
    for s in &stack {
        forwarded.push('/');
        forwarded.push_str(&s.forwarded);
        decoded.push('/');
        decoded.push_str(&s.decoded);
    }
    if stack.is_empty() || trailing_slash {
        forwarded.push('/');
        decoded.push('/');
    }
    Ok(NormalisedPath { forwarded, decoded })
}

fn decode_segment(bytes: &[u8]) -> Result<Segment, PathError> {
    let mut forwarded = Vec::with_capacity(bytes.len());
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let value = hex_pair(bytes.get(i + 1..i + 3)).ok_or(PathError::BadPercentEncoding)?;
            if value == b'%' && hex_pair(bytes.get(i + 3..i + 5)).is_some() {
                return Err(PathError::DoubleEncoding);
            }
            check_byte(value, true)?;
            if is_unreserved(value) {
                forwarded.push(value);
            } else {
                forwarded.extend_from_slice(&[
                    b'%',
                    HEX[usize::from(value >> 4)],
                    HEX[usize::from(value & 0xf)],
                ]);
            }
            decoded.push(value);
            i += 3;
        } else {
            check_byte(b, false)?;
            if is_allowed_raw(b) {
                forwarded.push(b);
            } else {
                // Bytes a URI may not carry raw (space, quotes, non-ASCII, ...) travel
                // percent-encoded; the app decodes them to the same thing.
                forwarded.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
            decoded.push(b);
            i += 1;
        }
    }
    Ok(Segment {
        // Every byte pushed to `forwarded` is ASCII, so this cannot fail.
        forwarded: String::from_utf8(forwarded).map_err(|_| PathError::InvalidUtf8)?,
        decoded: String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?,
    })
}

fn check_byte(b: u8, encoded: bool) -> Result<(), PathError> {
    match b {
        b'/' if encoded => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::Backslash),
        b';' if !encoded => Err(PathError::Semicolon),
        0..=0x1f | 0x7f => Err(PathError::ControlCharacter),
        _ => Ok(()),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let pair = pair?;
    let hi = char::from(pair[0]).to_digit(16)?;
    let lo = char::from(pair[1]).to_digit(16)?;
    u8::try_from(hi * 16 + lo).ok()
}

/// Characters a path segment may hold unencoded (RFC 3986 `pchar`, less `%`).
fn is_allowed_raw(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,;=:@".contains(&b)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short way agrees with the long way on every path of up to five
    /// characters from an alphabet of the characters that matter.
    #[test]
    fn paths_already_normal_are_read_exactly_as_the_long_way_reads_them() {
        let alphabet: &[&[u8]] = &[
            b"/",
            b".",
            b"a",
            b"%41",
            b"%2F",
            b";",
            b" ",
            b"\\",
            b"~",
            b"\xc3\xa9",
        ];
        let mut paths: Vec<Vec<u8>> = vec![Vec::new()];
        let mut shortcuts = 0;
        for _ in 0..5 {
            paths = paths
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| [p.as_slice(), c].concat()))
                .collect();
            for path in &paths {
                for raw in [path.clone(), [b"/", path.as_slice()].concat()] {
                    shortcuts += usize::from(already_normal(&raw).is_some());
                    assert_eq!(
                        normalise(&raw),
                        normalise_segments(&raw),
                        "{:?}",
                        String::from_utf8_lossy(&raw)
                    );
                }
            }
        }
        assert!(shortcuts > 500, "the short way is taken ({shortcuts})");
    }
    use proptest::prelude::*;

    fn ok(raw: &str) -> (String, String) {
        let p = normalise(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (p.forwarded, p.decoded)
    }

    #[test]
    fn hostile_variants_normalise_to_one_path_or_are_refused() {
        let same_as_admin = [
            "/admin",
            "//admin",
            "///admin",
            "/./admin",
            "/x/../admin",
            "/%61dmin",
            "/%61%64%6D%69%6E",
            "/x/%2e%2e/admin",
            "/x/%2E%2E/admin",
            "/x/.%2e/admin",
            "/y/./../admin",
        ];
        for raw in same_as_admin {
            assert_eq!(ok(raw), ("/admin".into(), "/admin".into()), "{raw}");
        }
        let refused = [
            ("/admin%2f", PathError::EncodedSlash),
            ("/admin%2Fx", PathError::EncodedSlash),
            ("/%2e%2e/admin", PathError::AboveRoot),
            ("/../admin", PathError::AboveRoot),
            ("/admin;x", PathError::Semicolon),
            ("/admin\\", PathError::Backslash),
            ("/admin%5c", PathError::Backslash),
            ("/admin%00", PathError::ControlCharacter),
            ("/admin%0d%0a", PathError::ControlCharacter),
            ("/admin%7F", PathError::ControlCharacter),
            ("/admin%", PathError::BadPercentEncoding),
            ("/admin%zz", PathError::BadPercentEncoding),
            ("/admin%ff", PathError::InvalidUtf8),
            ("/%252e%252e/admin", PathError::DoubleEncoding),
            ("admin", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
        ];
        for (raw, err) in refused {
            assert_eq!(normalise(raw.as_bytes()), Err(err), "{raw}");
        }
    }

    #[test]
    fn trailing_slashes_and_root() {
        assert_eq!(ok("/"), ("/".into(), "/".into()));
        assert_eq!(ok("//"), ("/".into(), "/".into()));
        assert_eq!(ok("/admin/"), ("/admin/".into(), "/admin/".into()));
        assert_eq!(ok("/admin/."), ("/admin/".into(), "/admin/".into()));
        assert_eq!(ok("/admin/x/.."), ("/admin/".into(), "/admin/".into()));
        assert_eq!(ok("/admin//"), ("/admin/".into(), "/admin/".into()));
    }

    #[test]
    fn reserved_and_non_ascii_escapes_are_kept_encoded() {
        assert_eq!(ok("/a%20b"), ("/a%20b".into(), "/a b".into()));
        assert_eq!(ok("/%c3%a4rende"), ("/%C3%A4rende".into(), "/ärende".into()));
        assert_eq!(ok("/a%3fb"), ("/a%3Fb".into(), "/a?b".into()));
        assert_eq!(ok("/a%3Bb"), ("/a%3Bb".into(), "/a;b".into()));
        assert_eq!(ok("/x%41!"), ("/xA!".into(), "/xA!".into()));
        assert_eq!(ok("/a b\"c"), ("/a%20b%22c".into(), "/a b\"c".into()));
        assert_eq!(ok("/ärende"), ("/%C3%A4rende".into(), "/ärende".into()));
    }

    #[test]
    fn raw_invalid_utf8_is_refused() {
        assert_eq!(normalise(b"/caf\xe9"), Err(PathError::InvalidUtf8));
        assert_eq!(normalise(b"/a\x00b"), Err(PathError::ControlCharacter));
    }

    proptest! {
        /// Normalising a normalised path changes nothing, and both forms agree.
        #[test]
        fn normalisation_is_idempotent(raw in "(/(\\.|\\.\\.|%2[eEfF5]|%25|%4[1-9]|[a-z]{1,3}|%C3%A4|;|\\\\|%00)?){0,8}/?") {
            if let Ok(first) = normalise(raw.as_bytes()) {
                let again = normalise(first.forwarded().as_bytes()).expect("a normalised path is valid");
                prop_assert_eq!(&again, &first);
                prop_assert!(!first.forwarded().contains("//"));
                prop_assert!(!first.decoded().split('/').any(|s| s == "." || s == ".."));
            }
        }
    }
}
