//! Argon2id hashing and verification, in memory each thread keeps.
//!
//! Every argon2id hash needs its parameters' memory (19 MiB with the defaults).
//! Allocated and freed per hash, that memory stayed with the allocator: glibc raises
//! its mmap threshold after the first free of such a block, so the next ones come
//! from per-thread arenas, which keep several of them. A storm of wrong passwords
//! took a gateway idling at 16 MiB to over 320 MiB. Here each thread that hashes
//! (the hashing pool's few) allocates the memory once and reuses it, so what
//! hashing holds is bounded by the pool's size, whatever the storm.

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Memory a thread keeps between hashes: enough for the defaults and for the
/// stronger parameters of a hand-made users file; a hash that needs more gets its
/// own for the time it runs.
const KEPT_BLOCKS: usize = 64 * 1024; // 64 MiB of 1 KiB blocks

thread_local! {
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `blocks` blocks of this thread's memory.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    if blocks > KEPT_BLOCKS {
        return f(&mut vec![Block::default(); blocks]);
    }
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        f(&mut memory[..blocks])
    })
}

/// The argon2id PHC string of `secret` (default parameters, a salt of its own).
pub fn hash(secret: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::default(), params.clone());
    with_memory(params.block_count(), |memory| {
        argon.hash_password_into_with_memory(secret, salt_bytes, &mut out, memory)
    })?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `secret` is the one behind the PHC string `phc` (argon2 of any variant,
/// version and parameters the string names). Compared in constant time; a string
/// that cannot be read matches nothing.
pub fn verify(secret: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let hashed = with_memory(params.block_count(), |memory| {
        argon.hash_password_into_with_memory(secret, salt_bytes, out, memory)
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    fn cheap(m_cost: u32) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m_cost, 1, 1, None).unwrap(),
        )
    }

    #[test]
    fn hashes_are_standard_argon2id_both_ways() {
        let phc = hash(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(verify(b"correct horse", &phc));
        assert!(!verify(b"correct horsf", &phc));
        assert_ne!(hash(b"correct horse").unwrap(), phc, "a salt of its own");
    }

    /// Hashes made by the standard API (a users file, an older gateway) with other
    /// parameters and variants verify; the same memory serves them one after
    /// another, whatever its earlier contents.
    #[test]
    fn hashes_of_any_parameters_verify_in_the_same_memory() {
        let salt = SaltString::generate(&mut OsRng);
        for m_cost in [8, 4096, 512, 19_456, 64] {
            let phc = cheap(m_cost).hash_password(b"pw", &salt).unwrap().to_string();
            assert!(verify(b"pw", &phc), "{phc}");
            assert!(!verify(b"pW", &phc), "{phc}");
        }
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 2, 1, Some(16)).unwrap(),
        );
        let phc = argon2i.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(phc.starts_with("$argon2i$v=16$"), "{phc}");
        assert!(verify(b"pw", &phc) && !verify(b"px", &phc));
    }

    #[test]
    fn strings_that_cannot_be_read_match_nothing() {
        let salt = SaltString::generate(&mut OsRng);
        let phc = cheap(64).hash_password(b"pw", &salt).unwrap().to_string();
        let without_hash = phc.rsplit_once('$').unwrap().0.to_owned();
        for bad in [
            "",
            "plain",
            without_hash.as_str(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verify(b"pw", bad), "{bad}");
        }
    }
}
