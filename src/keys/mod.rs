//! Key material: one random master key in a file in `state_dir` (never in the
//! database), and the purpose-bound keys derived from it with HKDF-SHA256.
//!
//! A copy of the database alone therefore reveals no TOTP secret, and rotating the
//! key file (with re-enrolment) retires every derived key at once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

pub const KEY_FILE: &str = "portvakt.key";
const MASTER_KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {action} the key file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} can be read by other users (mode {mode:o}); run: chmod 600 {path}")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the key file {path} is {found} bytes, not {MASTER_KEY_BYTES}; restore it from a backup")]
    WrongSize { path: PathBuf, found: usize },
}

/// Sealed data could not be opened: it was changed, belongs elsewhere, or was sealed
/// under another key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed data failed its integrity check")]
pub struct OpenError;

pub struct Keys {
    sealing: Aes256Gcm,
    cookie: Zeroizing<[u8; 64]>,
    signing_seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Reads the key file in `state_dir`, creating it (mode 0600) on first start.
    pub fn load_or_create(state_dir: &Path) -> Result<Keys, KeyError> {
        let path = state_dir.join(KEY_FILE);
        let io = |action, source| KeyError::Io {
            action,
            path: path.clone(),
            source,
        };
        let master = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                let mut master = Zeroizing::new([0u8; MASTER_KEY_BYTES]);
                rand::RngCore::fill_bytes(&mut rand::rng(), master.as_mut());
                file.write_all(master.as_ref()).map_err(|e| io("write", e))?;
                // The key must be on disk before anything sealed with it is.
                file.sync_all().map_err(|e| io("sync", e))?;
                master
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut file = File::open(&path).map_err(|e| io("open", e))?;
                let mode = file
                    .metadata()
                    .map_err(|e| io("inspect", e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(KeyError::Exposed {
                        path,
                        mode: mode & 0o777,
                    });
                }
                let mut bytes = Zeroizing::new(Vec::new());
                file.read_to_end(&mut bytes).map_err(|e| io("read", e))?;
                let master: [u8; MASTER_KEY_BYTES] =
                    bytes.as_slice().try_into().map_err(|_| KeyError::WrongSize {
                        path: path.clone(),
                        found: bytes.len(),
                    })?;
                Zeroizing::new(master)
            }
            Err(e) => return Err(io("create", e)),
        };
        Ok(Keys::derive(&master))
    }

    fn derive(master: &[u8; MASTER_KEY_BYTES]) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(Some(b"portvakt key derivation v1"), master);
        let mut sealing = Zeroizing::new([0u8; 32]);
        let mut cookie = Zeroizing::new([0u8; 64]);
        let mut signing_seed = Zeroizing::new([0u8; 32]);
        // Output lengths are far below HKDF-SHA256's limit (8160 bytes), so expand
        // cannot fail; the fallbacks keep this free of panics all the same.
        for (info, out) in [
            (&b"sealing: totp secrets"[..], sealing.as_mut_slice()),
            (&b"cookies: sessions"[..], cookie.as_mut_slice()),
            (&b"signing: identity assertions"[..], signing_seed.as_mut_slice()),
        ] {
            if hkdf.expand(info, out).is_err() {
                out.fill(0);
            }
        }
        Keys {
            sealing: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(sealing.as_ref())),
            cookie,
            signing_seed,
        }
    }

    /// Encrypts and authenticates `plaintext` (AES-256-GCM, random nonce). `context`
    /// binds the result to where it is stored (e.g. user and device), so a sealed
    /// value copied to another row does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        match self.sealing.encrypt(&nonce, payload) {
            Ok(ciphertext) => {
                let mut out = nonce.to_vec();
                out.extend_from_slice(&ciphertext);
                out
            }
            // AES-GCM encryption fails only for inputs of gigabytes.
            Err(_) => Vec::new(),
        }
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < NONCE_BYTES {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: context,
        };
        self.sealing
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }

    /// The key for the session cookie jar (encryption and signing).
    pub fn cookie_key(&self) -> &[u8; 64] {
        &self.cookie
    }

    /// The seed of the Ed25519 key that signs identity assertions for apps.
    pub fn signing_seed(&self) -> &[u8; 32] {
        &self.signing_seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = first.seal(b"JBSWY3DPEHPK3PXP", b"user:alice/device:1");
        let again = Keys::load_or_create(dir.path()).unwrap();
        assert_eq!(
            &*again.open(&sealed, b"user:alice/device:1").unwrap(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(first.cookie_key(), again.cookie_key());
        assert_ne!(&first.cookie_key()[..32], first.signing_seed());
    }

    #[test]
    fn sealed_data_is_bound_to_key_context_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load_or_create(dir.path()).unwrap();
        let sealed = keys.seal(b"secret", b"user:alice");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_ne!(
            sealed,
            keys.seal(b"secret", b"user:alice"),
            "a fresh nonce each time"
        );
        assert_eq!(keys.open(&sealed, b"user:bob"), Err(OpenError));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(keys.open(&tampered, b"user:alice"), Err(OpenError));
        assert_eq!(keys.open(&sealed[..5], b"user:alice"), Err(OpenError));
        let other = Keys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(other.open(&sealed, b"user:alice"), Err(OpenError));
    }

    #[test]
    fn an_exposed_or_damaged_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Keys::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Keys::load_or_create(dir.path()),
            Err(KeyError::Exposed { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            Keys::load_or_create(dir.path()),
            Err(KeyError::WrongSize { found: 5, .. })
        ));
    }
}
