//! Who a login request names: one user name, nobody, or "unreadable".
//!
//! The gateway and the app must agree on who signs in, or someone holding only the
//! victim's password can pass the second factor as themselves and be handed the
//! victim's app session. Frameworks disagree on what a request means: PHP and Django
//! take the last of two equal fields and Express the first, old CGI readers split
//! urlencoded bodies on `;` too, PHP turns `user.name` and `user name` into
//! `user_name` and `user[]` into an array, some JSON binders ignore the case of keys,
//! and a multipart parser skips the preamble that an urlencoded reader would read.
//! So the user name is read under every reading an app could plausibly make, and
//! unless all of them agree on exactly one value (or all on none), the login is
//! refused. The query counts as well as the body: many apps merge the two.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Why a request's user name cannot be read with certainty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("the body's type `{0}` is not one the gateway reads (urlencoded form, JSON, multipart form)")]
    ContentType(String),
    #[error("the request says more than once what its type or encoding is")]
    RepeatedHeader,
    #[error("the body is compressed or otherwise encoded (`{0}`)")]
    Encoded(String),
    #[error("the user name is given more than once")]
    Repeated,
    #[error("the body reads differently where `;` separates fields, as old readers take it")]
    Separator,
    #[error("the body was not seen whole (longer than the limit, or cut short)")]
    Incomplete,
    #[error("the body gives one of the login's query conditions another value")]
    Condition,
    #[error("a field is named like the user name field but not exactly (`{0}`)")]
    LookAlike(String),
    #[error("the user name is not plain text")]
    NotText,
    #[error("the body is not a well-formed {0}")]
    Malformed(&'static str),
}

/// The body types the gateway reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (or an empty one): only the query can name someone.
    None,
    Urlencoded,
    Json,
    Multipart {
        boundary: String,
    },
}

impl BodyKind {
    /// The kind a `Content-Type` value announces; `None` for no header. Charsets
    /// other than UTF-8 (or ASCII) are refused: the gateway would decode the name
    /// one way and the app another.
    pub fn of(content_type: Option<&str>) -> Result<BodyKind, Unreadable> {
        let Some(content_type) = content_type else {
            return Ok(BodyKind::None);
        };
        let refused = || Unreadable::ContentType(content_type.to_owned());
        // The same parser multer (and so many apps) read the type with; then every
        // parameter once, and the ones that matter in a form no reader mistakes.
        let parsed: mime::Mime = content_type.parse().map_err(|_| refused())?;
        let mut seen = Vec::new();
        for (name, _) in parsed.params() {
            let name = name.as_str().to_ascii_lowercase();
            if seen.contains(&name) {
                return Err(Unreadable::RepeatedHeader);
            }
            seen.push(name);
        }
        if let Some(charset) = parsed.get_param(mime::CHARSET) {
            if !matches!(
                charset.as_str().to_ascii_lowercase().as_str(),
                "utf-8" | "utf8" | "us-ascii"
            ) {
                return Err(refused());
            }
        }
        match (parsed.type_(), parsed.subtype(), parsed.suffix()) {
            (mime::APPLICATION, mime::WWW_FORM_URLENCODED, _) => Ok(BodyKind::Urlencoded),
            (mime::APPLICATION, mime::JSON, _) | (mime::APPLICATION, _, Some(mime::JSON)) => {
                Ok(BodyKind::Json)
            }
            (mime::MULTIPART, mime::FORM_DATA, _) => match parsed.get_param(mime::BOUNDARY) {
                // RFC 2046's boundary characters, less the space: a boundary that
                // holds `;`, quotes or spaces is read differently by different apps.
                Some(boundary)
                    if (1..=70).contains(&boundary.as_str().len())
                        && boundary
                            .as_str()
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b)) =>
                {
                    Ok(BodyKind::Multipart {
                        boundary: boundary.as_str().to_owned(),
                    })
                }
                _ => Err(Unreadable::Malformed("multipart form (its boundary)")),
            },
            _ => Err(refused()),
        }
    }
}

/// The one user name that the request's query and body give in `field`, as sent
/// (not trimmed or case-folded); `Ok(None)` when neither names anyone.
pub fn user_name(
    field: &str,
    kind: &BodyKind,
    body: &[u8],
    query: Option<&str>,
) -> Result<Option<String>, Unreadable> {
    let mut found = Found::default();
    if let Some(query) = query {
        found.urlencoded(field, query.as_bytes())?;
    }
    match kind {
        BodyKind::None if body.is_empty() => {}
        BodyKind::None => return Err(Unreadable::ContentType(String::new())),
        BodyKind::Json if field.starts_with('/') => found.json_pointer(field, body)?,
        // A JSON pointer names a member of a JSON body, and nothing else.
        _ if field.starts_with('/') => return Err(Unreadable::Malformed("JSON body")),
        BodyKind::Urlencoded => found.urlencoded(field, body)?,
        BodyKind::Json => found.json(field, body)?,
        BodyKind::Multipart { boundary } => found.multipart(field, boundary, body)?,
    }
    found.one()
}

/// The values given for the field so far.
#[derive(Default)]
struct Found {
    values: Vec<String>,
}

impl Found {
    fn one(mut self) -> Result<Option<String>, Unreadable> {
        match self.values.len() {
            0 => Ok(None),
            1 => Ok(self.values.pop()),
            _ => Err(Unreadable::Repeated),
        }
    }

    /// Records a key and its value (decoded by the caller when it is the field).
    fn key(
        &mut self,
        field: &str,
        key: &str,
        value: impl FnOnce() -> Result<String, Unreadable>,
    ) -> Result<(), Unreadable> {
        match key_match(key, field) {
            KeyMatch::Exact => {
                self.values.push(value()?);
                Ok(())
            }
            KeyMatch::LookAlike => Err(Unreadable::LookAlike(key.to_owned())),
            KeyMatch::Other => Ok(()),
        }
    }

    /// An urlencoded query or body, read with `&` alone and with `;` too: both
    /// readings must give the same values.
    fn urlencoded(&mut self, field: &str, input: &[u8]) -> Result<(), Unreadable> {
        let mut readings = [Found::default(), Found::default()];
        for (reading, separators) in readings.iter_mut().zip([&b"&"[..], &b"&;"[..]]) {
            for pair in input.split(|b| separators.contains(b)) {
                if pair.is_empty() {
                    continue;
                }
                let (key, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &b""[..]),
                };
                let key = form_decode(key)?;
                let value = form_decode(value)?;
                reading.key(field, &String::from_utf8_lossy(&key), || {
                    String::from_utf8(value.into_owned()).map_err(|_| Unreadable::NotText)
                })?;
            }
        }
        let [standard, legacy] = readings;
        if standard.values != legacy.values {
            return Err(Unreadable::Separator);
        }
        self.values.extend(standard.values);
        Ok(())
    }

    /// A JSON object: the field must be a string, given once (a duplicated key is
    /// read first-wins by some parsers and last-wins by others).
    fn json(&mut self, field: &str, body: &[u8]) -> Result<(), Unreadable> {
        let Members(entries): Members<serde_json::Value> =
            serde_json::from_slice(body).map_err(|_| Unreadable::Malformed("JSON object"))?;
        let mut seen = HashSet::new();
        for (key, value) in entries {
            if !seen.insert(key.clone()) && key_match(&key, field) != KeyMatch::Other {
                return Err(Unreadable::Repeated);
            }
            self.key(field, &key, || match value {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(Unreadable::NotText),
            })?;
        }
        Ok(())
    }

    /// A JSON body's member at a JSON pointer (RFC 6901) through nested objects:
    /// each object on the way must name the next member once, with no look-alike
    /// beside it (parsers differ on duplicates at any depth). An array, or anything
    /// but an object, on the way is refused; a missing member names nobody.
    fn json_pointer(&mut self, pointer: &str, body: &[u8]) -> Result<(), Unreadable> {
        const MALFORMED: Unreadable = Unreadable::Malformed("JSON object");
        let segments: Vec<String> = pointer_tokens(pointer).collect();
        let Some((last, path)) = segments.split_last() else {
            return Err(MALFORMED);
        };
        let mut object = std::str::from_utf8(body)
            .map_err(|_| Unreadable::NotText)?
            .to_owned();
        for segment in path {
            let Members(members) = serde_json::from_str::<Members<Box<serde_json::value::RawValue>>>(&object)
                .map_err(|_| MALFORMED)?;
            let mut found = None;
            for (key, value) in members {
                match key_match(&key, segment) {
                    KeyMatch::Exact if found.is_some() => return Err(Unreadable::Repeated),
                    KeyMatch::Exact => found = Some(value),
                    KeyMatch::LookAlike => return Err(Unreadable::LookAlike(key)),
                    KeyMatch::Other => {}
                }
            }
            let Some(value) = found else { return Ok(()) };
            object = value.get().to_owned();
        }
        self.json(last, object.as_bytes())
    }

    /// A multipart form, read by `multer` as RFC 7578 says (preamble and epilogue
    /// ignored). A part whose `Content-Disposition` names it twice, a file, or a
    /// part in another charset or transfer encoding is not read as the user name.
    fn multipart(&mut self, field: &str, boundary: &str, body: &[u8]) -> Result<(), Unreadable> {
        const MALFORMED: Unreadable = Unreadable::Malformed("multipart form");
        let chunk: Result<Bytes, std::io::Error> = Ok(Bytes::copy_from_slice(body));
        let mut form = multer::Multipart::new(futures_util::stream::iter([chunk]), boundary);
        loop {
            let part = match ready(form.next_field()) {
                Some(Ok(Some(part))) => part,
                Some(Ok(None)) => return Ok(()),
                Some(Err(_)) | None => return Err(MALFORMED),
            };
            // One Content-Disposition with at most one name parameter, spelled
            // exactly `name`: multer reads `name` only, while PHP also takes `NAME`
            // and Django `name*`; a part such readers would name otherwise is refused.
            let disposition: Vec<String> = part
                .headers()
                .get_all(http::header::CONTENT_DISPOSITION)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            let [disposition] = disposition.as_slice() else {
                return Err(MALFORMED);
            };
            let name_params: Vec<&str> = disposition
                .split(';')
                .filter_map(|p| p.split('=').next().map(str::trim))
                .filter(|k| k.eq_ignore_ascii_case("name") || k.eq_ignore_ascii_case("name*"))
                .collect();
            match (name_params.as_slice(), part.name()) {
                ([], None) => continue,
                (["name"], Some(_)) => {}
                _ => return Err(MALFORMED),
            }
            let name = part.name().unwrap_or_default().to_owned();
            let plain = part.file_name().is_none()
                && part
                    .headers()
                    .get("content-transfer-encoding")
                    .is_none_or(|e| matches!(e.as_bytes(), b"7bit" | b"8bit" | b"binary"))
                && part.content_type().is_none_or(|t| {
                    t.essence_str() == "text/plain"
                        && t.get_param(mime::CHARSET).is_none_or(|c| c == mime::UTF_8)
                });
            let bytes = match ready(part.bytes()) {
                Some(Ok(bytes)) => bytes,
                Some(Err(_)) | None => return Err(MALFORMED),
            };
            self.key(field, &name, || {
                if !plain {
                    return Err(Unreadable::NotText);
                }
                String::from_utf8(bytes.to_vec()).map_err(|_| Unreadable::NotText)
            })?;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyMatch {
    Exact,
    /// Another spelling an app may read as the field.
    LookAlike,
    Other,
}

fn key_match(key: &str, field: &str) -> KeyMatch {
    if key == field {
        KeyMatch::Exact
    } else if fold(key) == fold(field) {
        KeyMatch::LookAlike
    } else {
        KeyMatch::Other
    }
}

/// A key as the most forgiving readers see it: cut at NUL (PHP), surrounding space
/// and brackets ignored (PHP, Rack), `name[...]` read as `name` and an unmatched `[`
/// as `_` (PHP), `.`, ` ` and `-` read as `_`, and case ignored the Unicode way (Go
/// and Java match `ſ` to `s`).
pub(crate) fn fold(key: &str) -> String {
    let key = key.split('\0').next().unwrap_or_default();
    let key = key.trim().trim_start_matches('[');
    let base = match key.find('[') {
        Some(open) if key[open..].contains(']') => &key[..open],
        _ => key.trim_end_matches(']'),
    };
    base.chars()
        .map(|c| match c {
            '.' | ' ' | '-' | '[' => '_',
            c => c,
        })
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// `application/x-www-form-urlencoded` decoding of one key or value. A `%` that is
/// not followed by two hex digits is refused: some readers keep it, others decode
/// `%u0061` (ASP.NET) or guess.
fn form_decode(input: &[u8]) -> Result<Cow<'_, [u8]>, Unreadable> {
    if !input.iter().any(|&b| b == b'+' || b == b'%') {
        return Ok(Cow::Borrowed(input));
    }
    let escapes_ok = input.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || input
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return Err(Unreadable::Malformed("urlencoded form (a stray `%`)"));
    }
    let spaced: Vec<u8> = input.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    Ok(Cow::Owned(percent_encoding::percent_decode(&spaced).collect()))
}

/// A JSON object's members in the order written, duplicates kept.
struct Members<V>(Vec<(String, V)>);

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Members<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Members<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Members(entries))
            }
        }
        deserializer.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Drives a future whose input is all in memory: `multer` over one ready chunk
/// never waits. `None` if it would (which it does not), rather than block.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// The member names a JSON pointer (RFC 6901) steps through, unescaped (`~1` is
/// `/`, `~0` is `~`); the configuration checked the pointer's form.
pub fn pointer_tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn form(body: &str) -> Result<Option<String>, Unreadable> {
        user_name("username", &BodyKind::Urlencoded, body.as_bytes(), None)
    }

    fn json(body: &str) -> Result<Option<String>, Unreadable> {
        user_name("username", &BodyKind::Json, body.as_bytes(), None)
    }

    fn at_pointer(body: &str) -> Result<Option<String>, Unreadable> {
        user_name("/credentials/user", &BodyKind::Json, body.as_bytes(), None)
    }

    #[test]
    fn a_json_pointer_is_followed_through_objects_read_one_way_at_every_level() {
        let named = |b: &str| at_pointer(b);
        assert_eq!(
            named(r#"{"credentials":{"user":"bob","password":"p"}}"#),
            Ok(Some("bob".into()))
        );
        assert_eq!(named(r#"{"credentials":{"password":"p"}}"#), Ok(None));
        assert_eq!(named(r#"{"other":{"user":"bob"}}"#), Ok(None));
        // Duplicates on the way: some parsers keep the first, some the last.
        assert_eq!(
            named(r#"{"credentials":{"user":"mallory"},"credentials":{"user":"victim"}}"#),
            Err(Unreadable::Repeated)
        );
        assert_eq!(
            named(r#"{"credentials":{"user":"mallory","user":"victim"}}"#),
            Err(Unreadable::Repeated)
        );
        assert!(matches!(
            named(r#"{"credentials":{"user":"mallory"},"Credentials":{"user":"victim"}}"#),
            Err(Unreadable::LookAlike(_))
        ));
        assert!(
            named(r#"{"credentials":[{"user":"bob"}]}"#).is_err(),
            "an array on the way"
        );
        assert!(named(r#"{"credentials":"bob"}"#).is_err());
        assert_eq!(named(r#"{"credentials":{"user":7}}"#), Err(Unreadable::NotText));
        // `~1` is `/` within a member's name.
        let escaped = user_name("/a~1b", &BodyKind::Json, br#"{"a/b":"bob"}"#, None);
        assert_eq!(escaped, Ok(Some("bob".into())));
        // A pointer names a JSON body's member: a form is not read for it.
        let form = user_name("/credentials/user", &BodyKind::Urlencoded, b"credentials=x", None);
        assert!(form.is_err());
    }

    fn multipart(body: &str) -> Result<Option<String>, Unreadable> {
        let kind = BodyKind::of(Some("multipart/form-data; boundary=XyZ")).unwrap();
        user_name("username", &kind, body.replace('\n', "\r\n").as_bytes(), None)
    }

    #[test]
    fn content_types_are_read_strictly() {
        assert_eq!(BodyKind::of(None), Ok(BodyKind::None));
        assert_eq!(
            BodyKind::of(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8")),
            Ok(BodyKind::Urlencoded)
        );
        assert_eq!(BodyKind::of(Some("application/vnd.api+json")), Ok(BodyKind::Json));
        assert_eq!(
            BodyKind::of(Some("multipart/form-data; boundary=\"a.b\"")),
            Ok(BodyKind::Multipart {
                boundary: "a.b".into()
            })
        );
        for refused in [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded; charset=utf-16",
            "multipart/form-data",
            "multipart/mixed; boundary=x",
            "multipart/form-data; boundary=\"Y; z\"",
            "multipart/form-data; boundary=\"a b\"",
        ] {
            assert!(BodyKind::of(Some(refused)).is_err(), "{refused}");
        }
        assert_eq!(
            BodyKind::of(Some("multipart/form-data; boundary=a; boundary=b")),
            Err(Unreadable::RepeatedHeader)
        );
    }

    #[test]
    fn a_name_given_once_is_read() {
        assert_eq!(
            form("csrf=x&username=al%C3%AFce+b&password=p"),
            Ok(Some("alïce b".into()))
        );
        assert_eq!(form("password=p"), Ok(None));
        assert_eq!(
            json(r#"{"username":"bob","password":"p","x":{"username":1}}"#),
            Ok(Some("bob".into()))
        );
        assert_eq!(
            multipart("--XyZ\nContent-Disposition: form-data; name=\"username\"\n\ncarol\n--XyZ--\n"),
            Ok(Some("carol".into()))
        );
        assert_eq!(
            user_name("username", &BodyKind::None, b"", Some("next=/&username=dave")),
            Ok(Some("dave".into()))
        );
    }

    #[test]
    fn every_second_spelling_is_refused() {
        assert_eq!(
            form("username=mallory&username=victim&password=p"),
            Err(Unreadable::Repeated)
        );
        assert_eq!(
            form("username=mallory;username=victim"),
            Err(Unreadable::Separator)
        );
        assert_eq!(
            form("username=mallory&x=1;username=victim"),
            Err(Unreadable::Separator)
        );
        // What PHP, Rack, Go and ASP.NET read as the field too.
        for lookalike in [
            "username%00x=v",
            "user[name=v",
            "[username]=v",
            "%20username=v",
            "u%C5%BFername=v",
        ] {
            let field = if lookalike.starts_with("user[") {
                "user_name"
            } else {
                "username"
            };
            let body = format!("{field}=m&{lookalike}");
            let read = user_name(field, &BodyKind::Urlencoded, body.as_bytes(), None);
            assert!(
                matches!(read, Err(Unreadable::LookAlike(_))),
                "{lookalike}: {read:?}"
            );
        }
        assert!(json(r#"{"username":"mallory","u\u017fername":"victim"}"#).is_err());
        assert!(matches!(
            form("username=%u0061lice"),
            Err(Unreadable::Malformed(_))
        ));
        assert!(matches!(form("username=alice%"), Err(Unreadable::Malformed(_))));
        for lookalike in [
            "Username=v",
            "user%6Eame[]=v",
            "username[0]=v",
            "username%20=v",
            "USERNAME=v",
        ] {
            assert!(
                matches!(
                    form(&format!("username=m&{lookalike}")),
                    Err(Unreadable::LookAlike(_))
                ),
                "{lookalike}"
            );
        }
        assert_eq!(form("username=%FF"), Err(Unreadable::NotText));
        assert_eq!(
            user_name(
                "username",
                &BodyKind::Urlencoded,
                b"username=victim",
                Some("username=mallory")
            ),
            Err(Unreadable::Repeated),
            "query and body"
        );
        assert_eq!(
            json(r#"{"username":"mallory","username":"victim"}"#),
            Err(Unreadable::Repeated)
        );
        assert!(matches!(
            json(r#"{"username":"mallory","UserName":"victim"}"#),
            Err(Unreadable::LookAlike(_))
        ));
        assert_eq!(json(r#"{"username":["victim"]}"#), Err(Unreadable::NotText));
        assert_eq!(
            json(r#"{"username":"v"} trailing"#),
            Err(Unreadable::Malformed("JSON object"))
        );
        assert_eq!(
            json(r#"["username","v"]"#),
            Err(Unreadable::Malformed("JSON object"))
        );
        assert_eq!(
            user_name("username", &BodyKind::None, b"username=v", None),
            Err(Unreadable::ContentType(String::new())),
            "a body without a type"
        );
    }

    #[test]
    fn a_multipart_preamble_is_not_read_and_parts_are_checked() {
        // What an urlencoded reader sees in the preamble is not what the app sees.
        assert_eq!(
            multipart(
                "&username=mallory&\n--XyZ\nContent-Disposition: form-data; name=\"username\"\n\nvictim\n--XyZ--\nepilogue&username=eve\n"
            ),
            Ok(Some("victim".into()))
        );
        assert_eq!(
            multipart(
                "--XyZ\nContent-Disposition: form-data; name=\"username\"\n\na\n--XyZ\nContent-Disposition: form-data; name=\"username\"\n\nb\n--XyZ--\n"
            ),
            Err(Unreadable::Repeated)
        );
        for disposition in [
            "form-data; name=\"x\"; name=\"username\"",
            "form-data; NAME=\"username\"",
            "form-data; name*=UTF-8''username",
            "form-data; name=\"x\"; name*=UTF-8''username",
        ] {
            let body = format!(
                "--XyZ\nContent-Disposition: form-data; name=\"username\"\n\nm\n--XyZ\nContent-Disposition: {disposition}\n\nv\n--XyZ--\n"
            );
            assert_eq!(
                multipart(&body),
                Err(Unreadable::Malformed("multipart form")),
                "{disposition}"
            );
        }
        assert_eq!(
            multipart(
                "--XyZ\nContent-Disposition: form-data; name=\"username\"; filename=\"a\"\n\nv\n--XyZ--\n"
            ),
            Err(Unreadable::NotText)
        );
        assert_eq!(
            multipart("--XyZ\nContent-Disposition: form-data; name=\"username\"\nContent-Transfer-Encoding: base64\n\ndg==\n--XyZ--\n"),
            Err(Unreadable::NotText)
        );
        assert_eq!(
            multipart("no boundary here"),
            Err(Unreadable::Malformed("multipart form"))
        );
    }

    /// The readings real frameworks make of an urlencoded body: first-wins and
    /// last-wins over `&`, and the same over `&` and `;`.
    fn reference_readings(body: &str) -> Vec<Option<String>> {
        let mut readings = Vec::new();
        for separators in [&['&'][..], &['&', ';'][..]] {
            let values: Vec<String> = body
                .split(separators)
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let k = form_urlencoded::parse(format!("{k}=").as_bytes())
                        .next()?
                        .0
                        .into_owned();
                    (fold(&k) == "username").then(|| {
                        form_urlencoded::parse(format!("x={v}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    })
                })
                .collect();
            readings.push(values.first().cloned());
            readings.push(values.last().cloned());
        }
        readings
    }

    proptest! {
        /// Whatever the body, the reader names one user that every reference reading
        /// agrees with, names nobody where they all do, or refuses.
        #[test]
        fn urlencoded_readings_agree_or_the_body_is_refused(
            parts in proptest::collection::vec(
                (prop::sample::select(vec!["username", "Username", "user%6Eame", "username[]", "password", "x", "user_name"]),
                 "[a-z%&;=+]{0,6}",
                 prop::sample::select(vec!["&", ";"])),
                0..6)
        ) {
            let body: String = parts.iter().map(|(k, v, sep)| format!("{k}={v}{sep}")).collect();
            let readings = reference_readings(&body);
            if let Ok(name) = form(&body) {
                prop_assert!(readings.iter().all(|r| *r == name), "{body}: {name:?} vs {readings:?}");
            }
        }

        #[test]
        fn json_readings_agree_or_the_body_is_refused(
            keys in proptest::collection::vec(prop::sample::select(vec!["username", "UserName", "password", "a"]), 0..5),
            values in proptest::collection::vec("[a-z]{0,4}", 5)
        ) {
            let members: Vec<String> = keys.iter().zip(&values).map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
            let body = format!("{{{}}}", members.join(","));
            let given: Vec<&String> = keys.iter().zip(&values).filter(|(k, _)| k.eq_ignore_ascii_case("username")).map(|(_, v)| v).collect();
            match json(&body) {
                Ok(Some(name)) => prop_assert!(given.len() == 1 && *given[0] == name),
                Ok(None) => prop_assert!(given.is_empty()),
                Err(_) => prop_assert!(given.len() > 1 || keys.contains(&"UserName")),
            }
        }

        /// Multipart forms built with a known truth: the parts as sent, behind a
        /// preamble that an urlencoded reader would read a name from.
        #[test]
        fn multipart_readings_agree_with_the_parts_or_the_body_is_refused(
            parts in proptest::collection::vec(
                (prop::sample::select(vec!["username", "Username", "password", "user.name", "x"]), "[a-z]{0,5}"),
                0..5),
            preamble in prop::sample::select(vec!["", "&username=mallory&", "username=eve\r\n"])
        ) {
            let mut body = String::from(preamble);
            if !preamble.is_empty() {
                body.push_str("\r\n");
            }
            for (name, value) in &parts {
                body.push_str(&format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
            }
            body.push_str("--XyZ--\r\n");
            let kind = BodyKind::Multipart { boundary: "XyZ".into() };
            let exact: Vec<&String> = parts.iter().filter(|(n, _)| *n == "username").map(|(_, v)| v).collect();
            let lookalike = parts.iter().any(|(n, _)| *n == "Username");
            match user_name("username", &kind, body.as_bytes(), None) {
                Ok(Some(name)) => prop_assert!(exact.len() == 1 && *exact[0] == name && !lookalike),
                Ok(None) => prop_assert!(exact.is_empty() && !lookalike || parts.is_empty()),
                Err(_) => prop_assert!(exact.len() > 1 || lookalike || parts.is_empty()),
            }
        }

        #[test]
        fn no_input_makes_the_reader_panic(body in proptest::collection::vec(any::<u8>(), 0..200), ct in "[a-z/;= +-]{0,40}") {
            if let Ok(kind) = BodyKind::of(Some(&ct)) {
                let _ = user_name("username", &kind, &body, None);
            }
            let _ = user_name("username", &BodyKind::Urlencoded, &body, Some(&String::from_utf8_lossy(&body)));
            let _ = user_name("username", &BodyKind::Json, &body, None);
            let _ = user_name("username", &BodyKind::Multipart { boundary: "b".into() }, &body, None);
        }
    }
}
