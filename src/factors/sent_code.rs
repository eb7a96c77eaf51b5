//! One-time codes sent to the user (by e-mail or text message): random digits,
//! single use, short-lived, resent only after a cool-down. They live with the
//! challenge (or the address waiting for confirmation) they belong to, never in a log.

use std::time::{Duration, SystemTime};

use rand::Rng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SentCode {
    code: Zeroizing<String>,
    sent_at: SystemTime,
    expires_at: SystemTime,
}

impl std::fmt::Debug for SentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentCode(..)")
    }
}

impl SentCode {
    /// A new code of `digits` digits from a CSPRNG, valid for `lifetime`.
    pub fn new(digits: usize, now: SystemTime, lifetime: Duration) -> SentCode {
        let mut rng = rand::rng();
        let code: String = (0..digits)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        SentCode {
            code: Zeroizing::new(code),
            sent_at: now,
            expires_at: now + lifetime,
        }
    }

    /// The code, to put in the message.
    pub fn text(&self) -> &str {
        &self.code
    }

    /// Whether `input` (spaces ignored) is this code and it has not expired.
    pub fn matches(&self, input: &str, now: SystemTime) -> bool {
        let typed: Zeroizing<String> = Zeroizing::new(input.chars().filter(|c| !c.is_whitespace()).collect());
        let same: bool = typed.as_bytes().ct_eq(self.code.as_bytes()).into();
        same && now < self.expires_at
    }

    /// Whether another code may be sent at `now`.
    pub fn may_resend(&self, now: SystemTime, cool_down: Duration) -> bool {
        now.duration_since(self.sent_at)
            .is_ok_and(|since| since >= cool_down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn a_code_matches_until_it_expires() {
        let code = SentCode::new(6, at(0), Duration::from_secs(600));
        assert_eq!(code.text().len(), 6);
        assert!(code.text().bytes().all(|b| b.is_ascii_digit()));
        let spaced = format!("{} {}", &code.text()[..3], &code.text()[3..]);
        assert!(code.matches(&spaced, at(599)));
        assert!(!code.matches(code.text(), at(600)), "expired");
        assert!(!code.matches("", at(1)));
        assert!(!format!("{code:?}").contains(code.text()));
    }

    #[test]
    fn resending_waits_for_the_cool_down() {
        let code = SentCode::new(8, at(0), Duration::from_secs(600));
        assert_eq!(code.text().len(), 8);
        assert!(!code.may_resend(at(59), Duration::from_secs(60)));
        assert!(code.may_resend(at(60), Duration::from_secs(60)));
    }
}
