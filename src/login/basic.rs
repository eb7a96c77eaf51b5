//! Who an HTTP Basic `Authorization` header names (RFC 7617), read the one way an
//! app can read it, or not at all: one header, the `Basic` scheme, standard base64
//! with its padding, UTF-8, a user name before the first `:` that is plain text.
//! The password is handed out only to check an app password (`basic_credentials`).

use zeroize::Zeroizing;

use data_encoding::BASE64;

/// Why a request's Basic credentials cannot be read for certain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasicUnreadable {
    #[error("the request carries more than one Authorization header")]
    Repeated,
    #[error("the Authorization header is not `Basic` and base64 credentials")]
    Malformed,
    #[error("the credentials name no user, or one that is not plain text")]
    NotText,
}

/// The user name of the request's Basic credentials, as sent; `Ok(None)` when the
/// request carries no `Authorization` header, or one of another scheme (a Basic
/// app answers that with its 401).
pub fn basic_user<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<String>, BasicUnreadable> {
    Ok(basic_credentials(values)?.map(|(user, _)| user))
}

/// The user name and password of the request's Basic credentials, as sent (read
/// as `basic_user` reads them).
pub fn basic_credentials<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<(String, Zeroizing<String>)>, BasicUnreadable> {
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BasicUnreadable::Repeated);
    }
    let value = std::str::from_utf8(value).map_err(|_| BasicUnreadable::Malformed)?;
    let value = value.trim_matches([' ', '\t']);
    let Some((scheme, token)) = value.split_once([' ', '\t']) else {
        // A lone word: no credentials of any scheme the gateway reads.
        return if value.eq_ignore_ascii_case("basic") {
            Err(BasicUnreadable::Malformed)
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let token = token.trim_start_matches([' ', '\t']);
    let decoded = BASE64
        .decode(token.as_bytes())
        .map_err(|_| BasicUnreadable::Malformed)?;
    let text = Zeroizing::new(String::from_utf8(decoded).map_err(|_| BasicUnreadable::NotText)?);
    let Some((user, password)) = text.split_once(':') else {
        return Err(BasicUnreadable::Malformed);
    };
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(BasicUnreadable::NotText);
    }
    Ok(Some((user.to_owned(), Zeroizing::new(password.to_owned()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(values: &[&str]) -> Result<Option<String>, BasicUnreadable> {
        basic_user(values.iter().map(|v| v.as_bytes()))
    }

    fn basic(credentials: &str) -> String {
        format!("Basic {}", BASE64.encode(credentials.as_bytes()))
    }

    #[test]
    fn the_user_before_the_first_colon_is_the_user() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[&basic("alice:wonder:land")]), Ok(Some("alice".into())));
        assert_eq!(read(&[&basic("Åsa:lösen")]), Ok(Some("Åsa".into())));
        let lower = basic("bob:pw").replacen("Basic", "basic", 1);
        assert_eq!(read(&[&lower]), Ok(Some("bob".into())), "the scheme in any case");
        assert_eq!(read(&["Bearer abc.def"]), Ok(None), "another scheme names nobody");
    }

    #[test]
    fn what_could_be_read_two_ways_is_refused() {
        let alice = basic("alice:pw");
        assert_eq!(read(&[&alice, &basic("bob:pw")]), Err(BasicUnreadable::Repeated));
        assert_eq!(read(&[&alice, &alice]), Err(BasicUnreadable::Repeated));
        for bad in [
            "Basic",
            "Basic !!!",
            "Basic YWxpY2U6cHc", // no padding
            "Basic YWxpY2U6cHc=\u{0}",
        ] {
            assert_eq!(read(&[bad]), Err(BasicUnreadable::Malformed), "{bad:?}");
        }
        assert_eq!(
            read(&[&basic("alice")]),
            Err(BasicUnreadable::Malformed),
            "no colon"
        );
        assert_eq!(read(&[&basic(":pw")]), Err(BasicUnreadable::NotText), "no user");
        assert_eq!(read(&[&basic("al\tice:pw")]), Err(BasicUnreadable::NotText));
        let latin1 = format!("Basic {}", BASE64.encode(b"\xe5sa:pw"));
        assert_eq!(read(&[&latin1]), Err(BasicUnreadable::NotText), "not UTF-8");
        assert_eq!(
            basic_user([&b"Basic \xff"[..]].into_iter()),
            Err(BasicUnreadable::Malformed)
        );
    }
}
