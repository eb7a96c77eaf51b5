//! How model values are kept in columns, the same way on every backend: times as
//! whole Unix seconds, TOTP steps as signed 64-bit integers, sign-in methods by name.

use std::time::{Duration, SystemTime};

use crate::factors::SignInMethod;

pub(crate) fn to_unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn from_unix(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

pub(crate) fn step_to_db(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

pub(crate) fn step_from_db(step: i64) -> Option<u64> {
    u64::try_from(step).ok()
}

/// A session's sign-in method as stored; an unknown name makes the row unreadable
/// (so the session is not used), never a guess.
pub(crate) fn stored_method(name: &str) -> Result<SignInMethod, String> {
    SignInMethod::parse(name).ok_or_else(|| format!("unknown sign-in method {name:?}"))
}
