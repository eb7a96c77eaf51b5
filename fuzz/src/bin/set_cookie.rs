//! A `Set-Cookie` value as a browser reads it: never a panic, and a cookie read as
//! live always has a value to send back.

use std::time::{Duration, SystemTime};

use portvakt_fuzz::login::{CookieNames, SetCookie};

fn main() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let names = CookieNames::new(&["sessionid", "wp_*"]);
    afl::fuzz!(|data: &[u8]| {
        let cookie = SetCookie::read(data, now);
        assert!(!cookie.live || !cookie.value.is_empty());
        let _ = names.set_live([data], now);
    });
}
