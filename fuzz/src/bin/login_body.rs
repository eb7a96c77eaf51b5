//! Who a login request names: any content type, body and query. Never a panic;
//! and for an urlencoded body, a name is given only where a first-wins and a
//! last-wins reader (over `&`, and over `&` and `;`) would all read that name.
//!
//! Input: one line of content type, one line of query, then the body.

use portvakt_fuzz::login::{user_name, BodyKind};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut lines = data.splitn(3, |&b| b == b'\n');
        let content_type = lines.next().map(String::from_utf8_lossy).unwrap_or_default();
        let query = lines.next().map(String::from_utf8_lossy).unwrap_or_default();
        let body = lines.next().unwrap_or_default();
        let kind = match BodyKind::of(Some(&content_type)) {
            Ok(kind) => kind,
            Err(_) => BodyKind::Urlencoded,
        };
        let _ = user_name("username", &kind, body, Some(&query));
        // A login that names a JSON pointer reads nested objects.
        let _ = user_name("/credentials/user", &kind, body, Some(&query));
        if let Ok(Some(name)) = user_name("username", &BodyKind::Urlencoded, body, None) {
            for separators in [&b"&"[..], &b"&;"[..]] {
                let values: Vec<String> = body
                    .split(|b| separators.contains(b))
                    .filter_map(|pair| {
                        let mut parsed = form_urlencoded::parse(pair);
                        let (k, v) = parsed.next()?;
                        (k == "username").then(|| v.into_owned())
                    })
                    .collect();
                assert_eq!(values.first(), Some(&name), "first-wins reading differs");
                assert_eq!(values.last(), Some(&name), "last-wins reading differs");
            }
        }
    });
}
