//! App passwords: a credential of its own for one client of one app (a WebDAV
//! client, git, a script) that cannot show a page for the second factor. Made by
//! the gateway, shown once, stored only as an argon2id hash.
//!
//! For an HTTP Basic app the user's own password there goes with it, sealed under
//! a key derived from the app password alone (HKDF-SHA256, AES-256-GCM): a copy of
//! the database, or of the database and the deployment key, opens nothing without
//! the app password, which has 72 bits from a CSPRNG.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::{Rng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Lower-case letters that cannot be mistaken for one another (no i, l, o).
const ALPHABET: &[u8; 23] = b"abcdefghjkmnpqrstuvwxyz";
/// 16 letters of log2(23) bits: 72 bits.
const LETTERS: usize = 16;
const SALT: usize = 16;
const NONCE: usize = 12;

/// An app password as shown once: `abcd-efgh-jkmn-pqrs`.
pub fn generate() -> Zeroizing<String> {
    let mut rng = rand::rng();
    let letters: Zeroizing<Vec<u8>> = Zeroizing::new(
        (0..LETTERS)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect(),
    );
    let groups: Vec<&str> = letters
        .chunks(4)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    Zeroizing::new(groups.join("-"))
}

/// What a client sent, reduced to the letters that matter (case, spaces and dashes
/// do not count); `None` when it cannot be an app password at all, so that a
/// user's ordinary password costs no argon2.
pub fn canonical(input: &str) -> Option<Zeroizing<String>> {
    let letters: Zeroizing<String> = Zeroizing::new(
        input
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    (letters.len() == LETTERS && letters.bytes().all(|b| ALPHABET.contains(&b))).then_some(letters)
}

/// The argon2id PHC string stored for an app password.
pub fn hash(app_password: &str) -> Result<String, argon2::password_hash::Error> {
    let letters = canonical(app_password).ok_or(argon2::password_hash::Error::Password)?;
    super::recovery::phc_of(letters.as_bytes())
}

/// Whether `input` is the app password behind `phc`. Slow on purpose: run it off
/// the proxy's threads.
pub fn matches(input: &str, phc: &str) -> bool {
    canonical(input).is_some_and(|letters| super::recovery::verifies(letters.as_bytes(), phc))
}

/// Seals `secret` (the user's own password at the app) under the app password.
pub fn seal(app_password: &str, secret: &str) -> Option<Vec<u8>> {
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; NONCE];
    rand::rng().fill_bytes(&mut salt);
    rand::rng().fill_bytes(&mut nonce);
    let cipher = cipher(app_password, &salt)?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
        .ok()?;
    Some([&salt[..], &nonce[..], &sealed].concat())
}

/// The secret `seal` sealed under this app password; `None` under any other.
pub fn open(app_password: &str, sealed: &[u8]) -> Option<Zeroizing<String>> {
    if sealed.len() < SALT + NONCE {
        return None;
    }
    let (salt, rest) = sealed.split_at(SALT);
    let (nonce, sealed) = rest.split_at(NONCE);
    let plain = cipher(app_password, salt)?
        .decrypt(Nonce::from_slice(nonce), sealed)
        .ok()?;
    String::from_utf8(plain).ok().map(Zeroizing::new)
}

fn cipher(app_password: &str, salt: &[u8]) -> Option<Aes256Gcm> {
    let letters = canonical(app_password)?;
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), letters.as_bytes())
        .expand(b"portvakt app password: the app's own password", key.as_mut())
        .ok()?;
    Aes256Gcm::new_from_slice(key.as_ref()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_passwords_are_long_readable_and_typed_loosely() {
        let made = generate();
        assert_eq!(made.len(), 19, "{}", made.as_str());
        assert!(LETTERS as f64 * (ALPHABET.len() as f64).log2() >= 72.0);
        let phc = hash(&made).unwrap();
        assert!(matches(&made, &phc));
        assert!(matches(&made.replace('-', " ").to_uppercase(), &phc));
        assert!(!matches(&generate(), &phc));
        assert_eq!(
            canonical("wonderland"),
            None,
            "an ordinary password is no candidate"
        );
    }

    #[test]
    fn the_apps_own_password_opens_under_its_app_password_only() {
        let app_password = generate();
        let sealed = seal(&app_password, "wonderland").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"wonderland"));
        assert_eq!(open(&app_password, &sealed).unwrap().as_str(), "wonderland");
        assert_eq!(open(&generate(), &sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&app_password, &tampered), None);
    }
}
