//! The bearer token of an `Authorization` header (RFC 6750), read strictly: a
//! header an app could read as another token than the gateway does is refused.

/// The header cannot be read one way only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BearerUnreadable;

/// The token of a `Bearer` credential; `Ok(None)` for another scheme.
pub fn bearer_token(value: &[u8]) -> Result<Option<&str>, BearerUnreadable> {
    let value = std::str::from_utf8(value).map_err(|_| BearerUnreadable)?;
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim_start_matches([' ', '\t']);
    // RFC 6750's b64token: anything else (a space, a comma, a second credential)
    // is a token some apps cut short and others do not.
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let body = token.trim_end_matches('=');
    if body.is_empty() || !body.bytes().all(b64token) {
        return Err(BearerUnreadable);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_one_way_or_refused() {
        assert_eq!(bearer_token(b"Bearer abc.DEF-_~+/=="), Ok(Some("abc.DEF-_~+/==")));
        assert_eq!(bearer_token(b"bearer  abc"), Ok(Some("abc")));
        assert_eq!(bearer_token(b"Basic YWxpY2U6eA=="), Ok(None));
        assert_eq!(bearer_token(b"Token abc"), Ok(None));
        for unreadable in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer abc def",
            b"Bearer abc,Bearer def",
            b"Bearer a=b",
            b"Bearer \xff",
        ] {
            assert_eq!(bearer_token(unreadable), Err(BearerUnreadable), "{unreadable:?}");
        }
    }
}
