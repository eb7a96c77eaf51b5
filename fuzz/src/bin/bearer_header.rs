//! `Authorization` header values as a `login.token` app's requests carry them:
//! never a panic, and a token read is always one RFC 6750 `b64token`.

use portvakt_fuzz::login::bearer::bearer_token;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(Some(token)) = bearer_token(data) {
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty());
            assert!(body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
        }
    });
}
