//! `Authorization` header values (one a line) as a `login: basic` app's requests
//! carry them: never a panic, and a name read is always a plain, non-empty name.

use portvakt_fuzz::login::basic::basic_user;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let values = data.split(|b| *b == b'\n');
        if let Ok(Some(user)) = basic_user(values) {
            assert!(!user.is_empty() && user.len() <= 256);
            assert!(!user.chars().any(char::is_control) && !user.contains(':'));
        }
    });
}
