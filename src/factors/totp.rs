//! Time-based one-time passwords (RFC 6238) for authenticator apps.
//!
//! The HMAC and truncation come from `totp-rs`; what is Portvakt's own is the
//! acceptance rule: at most `skew` steps either side of now, every candidate step
//! compared in constant time, and a step accepted only if it is newer than the last
//! step this user ever used (so a code, once accepted, never works again).

use std::time::Duration;

use data_encoding::BASE32_NOPAD;
use rand::RngCore;
use subtle::{Choice, ConstantTimeEq};
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

/// Bytes in a new secret: 160 bits, the RFC 4226 recommendation and NIST's minimum.
pub const SECRET_BYTES: usize = 20;

/// How codes are made. Authenticator apps assume SHA-1, 6 digits and 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpSettings {
    pub digits: u8,
    pub period: Duration,
    /// Steps accepted before and after the current one (0 or 1).
    pub skew: u8,
}

impl Default for TotpSettings {
    fn default() -> Self {
        TotpSettings {
            digits: 6,
            period: Duration::from_secs(30),
            skew: 1,
        }
    }
}

/// A shared secret, wiped from memory when dropped.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A new random secret from a CSPRNG (`rand`'s thread generator: ChaCha12,
    /// seeded and reseeded from the operating system).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rng().fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it typed in: base32, no padding.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE32_NOPAD.encode(&self.0))
    }

    /// The base32 secret in groups of four, easier to read aloud and type.
    pub fn grouped_base32(&self) -> Zeroizing<String> {
        let plain = self.base32();
        let groups: Vec<&str> = plain
            .as_bytes()
            .chunks(4)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        Zeroizing::new(groups.join(" "))
    }
}

/// The `otpauth://` URI that a QR code carries and a phone opens in its
/// authenticator app (the Key Uri Format of Google Authenticator).
pub fn otpauth_uri(
    secret: &TotpSecret,
    settings: &TotpSettings,
    issuer: &str,
    account: &str,
) -> Zeroizing<String> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let label = format!(
        "{}:{}",
        utf8_percent_encode(issuer, NON_ALPHANUMERIC),
        utf8_percent_encode(account, NON_ALPHANUMERIC)
    );
    Zeroizing::new(format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
        &*secret.base32(),
        utf8_percent_encode(issuer, NON_ALPHANUMERIC),
        settings.digits,
        settings.period.as_secs()
    ))
}

/// What a submitted code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Valid, for this time step, which the caller must record as used.
    Accepted { step: u64 },
    /// Valid, but for a step not newer than the last one used: a replay.
    Replayed,
    /// Not a valid code for any step in the window (or not a code at all).
    Rejected,
}

/// Checks `input` at `now` (seconds since the Unix epoch).
///
/// Spaces in the input are ignored ("123 456"). `last_used_step` is the newest step
/// this user ever had accepted, on any device.
pub fn verify(
    secret: &TotpSecret,
    settings: &TotpSettings,
    input: &str,
    now: u64,
    last_used_step: Option<u64>,
) -> Verification {
    let code: Zeroizing<String> = Zeroizing::new(input.chars().filter(|c| !c.is_whitespace()).collect());
    if code.len() != usize::from(settings.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Verification::Rejected;
    }
    let Some(totp) = totp_for(secret, settings) else {
        return Verification::Rejected;
    };
    let period = settings.period.as_secs().max(1);
    let current = now / period;
    let skew = u64::from(settings.skew);
    // Every step of the window is computed and compared, matched or not, so the time
    // taken does not tell which step matched.
    let mut matched: Option<u64> = None;
    for step in current.saturating_sub(skew)..=current.saturating_add(skew) {
        let expected = Zeroizing::new(totp.generate(step * period).to_string());
        let equal: Choice = expected.as_bytes().ct_eq(code.as_bytes());
        if bool::from(equal) && matched.is_none() {
            matched = Some(step);
        }
    }
    match (matched, last_used_step) {
        (None, _) => Verification::Rejected,
        (Some(step), Some(last)) if step <= last => Verification::Replayed,
        (Some(step), _) => Verification::Accepted { step },
    }
}

/// The code for `now`, as the user's app would show it (for tests and the demo).
pub fn code_at(secret: &TotpSecret, settings: &TotpSettings, now: u64) -> Option<String> {
    totp_for(secret, settings).map(|t| t.generate(now).to_string())
}

fn totp_for(secret: &TotpSecret, settings: &TotpSettings) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(settings.digits)
        .with_skew(0)
        .with_step_duration(settings.period.as_secs().max(1))
        .with_secret(secret.as_bytes())
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_totp(algorithm: Algorithm, seed: &[u8], time: u64) -> String {
        Builder::new()
            .with_algorithm(algorithm)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(seed)
            .build()
            .unwrap()
            .generate(time)
            .to_string()
    }

    /// RFC 6238 Appendix B, each algorithm with its own seed.
    #[test]
    fn rfc6238_appendix_b() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let cases: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, a, b, c) in cases {
            assert_eq!(rfc_totp(Algorithm::SHA1, sha1, time), a, "SHA1 at {time}");
            assert_eq!(rfc_totp(Algorithm::SHA256, sha256, time), b, "SHA256 at {time}");
            assert_eq!(rfc_totp(Algorithm::SHA512, sha512, time), c, "SHA512 at {time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP is TOTP with the counter as the step.
    #[test]
    fn rfc4226_appendix_d() {
        let secret = TotpSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec()));
        let settings = TotpSettings::default();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
            "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                code_at(&secret, &settings, counter as u64 * 30).unwrap(),
                *code,
                "counter {counter}"
            );
        }
    }

    fn fixture() -> (TotpSecret, TotpSettings) {
        (
            TotpSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec())),
            TotpSettings::default(),
        )
    }

    #[test]
    fn the_window_is_one_step_each_way() {
        let (secret, settings) = fixture();
        let now = 1_111_111_111; // step 37037037, 1 s into it
        let step = now / 30;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (step as i64 + offset) as u64 * 30 + 5;
            let code = code_at(&secret, &settings, at).unwrap();
            let got = verify(&secret, &settings, &code, now, None);
            let want = if accepted {
                Verification::Accepted {
                    step: (step as i64 + offset) as u64,
                }
            } else {
                Verification::Rejected
            };
            assert_eq!(got, want, "offset {offset}");
        }
        // The last second of a step still accepts the next one, the first the previous.
        let edge = step * 30 + 29;
        let next = code_at(&secret, &settings, (step + 1) * 30).unwrap();
        assert_eq!(
            verify(&secret, &settings, &next, edge, None),
            Verification::Accepted { step: step + 1 }
        );
    }

    #[test]
    fn a_used_step_and_every_older_one_are_replays() {
        let (secret, settings) = fixture();
        let now = 2_000_000_000;
        let step = now / 30;
        let code = code_at(&secret, &settings, now).unwrap();
        assert_eq!(
            verify(&secret, &settings, &code, now, Some(step - 1)),
            Verification::Accepted { step }
        );
        assert_eq!(
            verify(&secret, &settings, &code, now, Some(step)),
            Verification::Replayed
        );
        let older = code_at(&secret, &settings, now - 30).unwrap();
        assert_eq!(
            verify(&secret, &settings, &older, now, Some(step)),
            Verification::Replayed
        );
    }

    #[test]
    fn input_is_tolerant_of_spaces_and_strict_otherwise() {
        let (secret, settings) = fixture();
        let now = 1_234_567_890;
        let code = code_at(&secret, &settings, now).unwrap();
        let spaced = format!(" {} {} ", &code[..3], &code[3..]);
        assert!(matches!(
            verify(&secret, &settings, &spaced, now, None),
            Verification::Accepted { .. }
        ));
        for bad in ["", "12345", "1234567", "abcdef", "12345x", "１２３４５６"] {
            assert_eq!(
                verify(&secret, &settings, bad, now, None),
                Verification::Rejected,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn new_secrets_are_160_bits_and_distinct() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len() * 8, 160);
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.base32().len(), 32);
        assert_eq!(a.grouped_base32().split(' ').count(), 8);
        assert!(!format!("{a:?}").contains(&*a.base32()));
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        let (secret, settings) = fixture();
        let uri = otpauth_uri(&secret, &settings, "Example AB", "alice@example.com");
        assert_eq!(
            &*uri,
            "otpauth://totp/Example%20AB:alice%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20AB&algorithm=SHA1&digits=6&period=30"
        );
    }
}
