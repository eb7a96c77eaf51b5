//! One-time recovery codes: shown once, stored only as argon2id hashes, each usable
//! once (the store marks it used in the same transaction that accepts it).

use rand::Rng;
use zeroize::Zeroizing;

/// Letters and digits that cannot be mistaken for one another (no 0/O, 1/I/L).
const ALPHABET: &[u8; 31] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// 16 symbols of log2(31) bits: 79 bits per code (DESIGN.md asks for at least 64).
const SYMBOLS: usize = 16;

/// A recovery code in the form shown to the user: `ABCD-EFGH-JKMN-PQRS`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryCode(Zeroizing<String>);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

impl RecoveryCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `count` new codes from a CSPRNG (`rand`'s thread generator: ChaCha12, seeded and
/// reseeded from the operating system).
pub fn generate(count: usize) -> Vec<RecoveryCode> {
    let mut rng = rand::rng();
    (0..count)
        .map(|_| {
            let symbols: Zeroizing<Vec<u8>> = Zeroizing::new(
                (0..SYMBOLS)
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                    .collect(),
            );
            let groups: Vec<&str> = symbols
                .chunks(4)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            RecoveryCode(Zeroizing::new(groups.join("-")))
        })
        .collect()
}

/// What a user typed, reduced to the symbols that matter: case, spaces and dashes
/// do not count.
pub fn canonical(input: &str) -> Zeroizing<String> {
    Zeroizing::new(
        input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    )
}

/// The argon2id PHC string stored for a code.
pub fn hash(code: &RecoveryCode) -> Result<String, argon2::password_hash::Error> {
    phc_of(canonical(code.as_str()).as_bytes())
}

/// The argon2id PHC string of a secret, with a salt of its own.
pub(super) fn phc_of(secret: &[u8]) -> Result<String, argon2::password_hash::Error> {
    super::argon::hash(secret)
}

/// Whether `secret` is the one behind `phc`. Slow on purpose (argon2id).
pub(super) fn verifies(secret: &[u8], phc: &str) -> bool {
    super::argon::verify(secret, phc)
}

/// Whether `input` is the code behind `phc`. Slow on purpose (argon2id): run it off
/// the proxy's threads.
pub fn matches(input: &str, phc: &str) -> bool {
    let candidate = canonical(input);
    if candidate.len() != SYMBOLS {
        return false;
    }
    verifies(candidate.as_bytes(), phc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_enough_unique_and_readable() {
        let codes = generate(10);
        assert_eq!(codes.len(), 10);
        let bits_per_code = SYMBOLS as f64 * 31f64.log2();
        assert!(bits_per_code >= 64.0, "{bits_per_code} bits");
        let mut seen = std::collections::HashSet::new();
        for code in &codes {
            assert_eq!(code.as_str().len(), 19, "{}", code.as_str());
            assert!(code.as_str().split('-').all(|g| g.len() == 4));
            assert!(!code.as_str().contains(['0', 'O', '1', 'I', 'L']));
            assert!(seen.insert(code.as_str().to_owned()));
        }
    }

    #[test]
    fn a_code_matches_its_hash_however_it_is_typed() {
        let code = generate(1).remove(0);
        let phc = hash(&code).unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(&code.as_str().replace('-', "")));
        assert!(matches(code.as_str(), &phc));
        assert!(matches(&code.as_str().to_lowercase().replace('-', " "), &phc));
        let other = generate(1).remove(0);
        assert!(!matches(other.as_str(), &phc));
        assert!(!matches("", &phc));
        assert!(!matches(code.as_str(), "not a hash"));
    }
}
