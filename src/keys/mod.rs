//! Key material: one random master key in a file (never in the database), and the
//! purpose-bound keys derived from it with HKDF-SHA256.
//!
//! The file is provisioned or made on first start: `key_file` in the configuration
//! (written by `portvakt keys generate`, shared by every gateway of a deployment),
//! else a systemd credential named `portvakt.key`, else `portvakt.key` in
//! `state_dir`, created on first start. Gateways that share the file open each
//! other's cookies and sealed secrets and publish the same keys.
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
/// The name of the key among systemd's credentials (`LoadCredential=portvakt.key:…`).
pub const CREDENTIAL: &str = "portvakt.key";
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
    #[error("the key file {path} does not exist; make one with: portvakt keys generate --out {path}")]
    Missing { path: PathBuf },
    #[error("{path} already exists; a key file is never overwritten (its sealed secrets and sessions would be lost)")]
    Exists { path: PathBuf },
}

/// Where a deployment's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file provisioned for it (`key_file`, or a systemd credential): it must exist.
    Provisioned(PathBuf),
    /// `portvakt.key` in the state directory, created on first start.
    StateDir(PathBuf),
}

impl KeySource {
    /// The configured file, else the systemd credential if the service has one, else
    /// the state directory's own.
    pub fn choose(key_file: Option<&Path>, credentials_dir: Option<&Path>, state_dir: &Path) -> KeySource {
        if let Some(path) = key_file {
            return KeySource::Provisioned(path.to_owned());
        }
        if let Some(path) = credentials_dir
            .map(|dir| dir.join(CREDENTIAL))
            .filter(|p| p.exists())
        {
            return KeySource::Provisioned(path);
        }
        KeySource::StateDir(state_dir.to_owned())
    }

    /// The directory systemd gives the service its credentials in, if any.
    pub fn credentials_dir() -> Option<PathBuf> {
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
    }
}

/// Sealed data could not be opened: it was changed, belongs elsewhere, or was sealed
/// under another key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed data failed its integrity check")]
pub struct OpenError;

pub struct Keys {
    current: Derived,
    /// The key file before a rotation, while what it sealed and signed is still
    /// around: it opens, it no longer seals.
    previous: Option<Derived>,
}

/// The purpose-bound keys derived from one key file.
struct Derived {
    sealing: Aes256Gcm,
    cookie: Zeroizing<[u8; 64]>,
    signing_seed: Zeroizing<[u8; 32]>,
}

impl Derived {
    fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
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
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Creates `path` (mode 0600, never over an existing file) with a new random key.
fn write_new_master(path: &Path) -> Result<Zeroizing<[u8; MASTER_KEY_BYTES]>, KeyError> {
    let io = |action, source| KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create", e))?;
    let mut master = Zeroizing::new([0u8; MASTER_KEY_BYTES]);
    rand::RngCore::fill_bytes(&mut rand::rng(), master.as_mut());
    file.write_all(master.as_ref()).map_err(|e| io("write", e))?;
    // The key must be on disk before anything sealed with it is.
    file.sync_all().map_err(|e| io("sync", e))?;
    Ok(master)
}

/// Reads a key file: readable by its owner only, and exactly one key long.
fn read_master(path: &Path) -> Result<Zeroizing<[u8; MASTER_KEY_BYTES]>, KeyError> {
    let io = |action, source| KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(|e| io("open", e))?;
    let mode = file
        .metadata()
        .map_err(|e| io("inspect", e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(|e| io("read", e))?;
    let master: [u8; MASTER_KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| KeyError::WrongSize {
        path: path.to_owned(),
        found: bytes.len(),
    })?;
    Ok(Zeroizing::new(master))
}

impl Keys {
    /// The deployment's keys, from where `source` says.
    pub fn open_from(source: &KeySource) -> Result<Keys, KeyError> {
        match source {
            KeySource::Provisioned(path) => Keys::load(path),
            KeySource::StateDir(dir) => Keys::load_or_create(dir),
        }
    }

    /// Reads a provisioned key file, which must exist.
    pub fn load(path: &Path) -> Result<Keys, KeyError> {
        match read_master(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(KeyError::Missing {
                    path: path.to_owned(),
                })
            }
            read => read.map(|master| Keys::derive(&master)),
        }
    }

    /// Writes a new key file (mode 0600) for gateways to share; never over one that
    /// exists.
    pub fn generate(path: &Path) -> Result<(), KeyError> {
        match write_new_master(path) {
            Ok(_) => Ok(()),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(KeyError::Exists {
                    path: path.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the key file in `state_dir`, creating it (mode 0600) on first start.
    pub fn load_or_create(state_dir: &Path) -> Result<Keys, KeyError> {
        let path = state_dir.join(KEY_FILE);
        let master = match write_new_master(&path) {
            Ok(master) => master,
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                read_master(&path)?
            }
            Err(e) => return Err(e),
        };
        Ok(Keys::derive(&master))
    }

    /// These keys, still opening what `previous` (the key file before a rotation)
    /// sealed, and still publishing its signing key.
    pub fn with_previous(self, previous: Keys) -> Keys {
        Keys {
            current: self.current,
            previous: Some(previous.current),
        }
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
            current: Derived {
                sealing: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(sealing.as_ref())),
                cookie,
                signing_seed,
            },
            previous: None,
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
        match self.current.sealing.encrypt(&nonce, payload) {
            Ok(ciphertext) => {
                let mut out = nonce.to_vec();
                out.extend_from_slice(&ciphertext);
                out
            }
            // AES-GCM encryption fails only for inputs of gigabytes.
            Err(_) => Vec::new(),
        }
    }

    /// Opens what `seal` sealed, under this key file or the one before a rotation.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.current
            .open(sealed, context)
            .or_else(|e| self.previous.as_ref().map_or(Err(e), |p| p.open(sealed, context)))
    }

    /// Seals again under the current key what only the key before the rotation
    /// opens; `None` when the current key opens it already, or neither does.
    pub fn reseal(&self, sealed: &[u8], context: &[u8]) -> Option<Result<Vec<u8>, OpenError>> {
        if self.current.open(sealed, context).is_ok() {
            return None;
        }
        Some(self.open(sealed, context).map(|plain| self.seal(&plain, context)))
    }

    /// The key for the session cookie jar (encryption and signing).
    pub fn cookie_key(&self) -> &[u8; 64] {
        &self.current.cookie
    }

    /// The cookie key before a rotation: cookies it sealed still open.
    pub fn previous_cookie_key(&self) -> Option<&[u8; 64]> {
        self.previous.as_ref().map(|p| &*p.cookie)
    }

    /// The seed of the Ed25519 key that signs identity assertions for apps.
    pub fn signing_seed(&self) -> &[u8; 32] {
        &self.current.signing_seed
    }

    /// The signing seed before a rotation: its public key stays in the JWKS.
    pub fn previous_signing_seed(&self) -> Option<&[u8; 32]> {
        self.previous.as_ref().map(|p| &*p.signing_seed)
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

    #[test]
    fn a_provisioned_key_file_is_shared_never_made_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared.key");
        assert!(matches!(Keys::load(&shared), Err(KeyError::Missing { .. })));
        Keys::generate(&shared).unwrap();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = Keys::load(&shared).unwrap();
        let second = Keys::load(&shared).unwrap();
        let sealed = first.seal(b"secret", b"alice/Phone");
        assert_eq!(
            second.open(&sealed, b"alice/Phone").unwrap().as_slice(),
            b"secret"
        );
        assert_eq!(first.signing_seed(), second.signing_seed());
        let before = std::fs::read(&shared).unwrap();
        assert!(matches!(Keys::generate(&shared), Err(KeyError::Exists { .. })));
        assert_eq!(std::fs::read(&shared).unwrap(), before, "left as it was");
    }

    #[test]
    fn the_key_comes_from_the_configuration_then_systemd_then_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let credentials = dir.path().join("credentials");
        std::fs::create_dir(&credentials).unwrap();
        let configured = dir.path().join("configured.key");
        assert_eq!(
            KeySource::choose(Some(&configured), Some(&credentials), &state),
            KeySource::Provisioned(configured.clone())
        );
        assert_eq!(
            KeySource::choose(None, Some(&credentials), &state),
            KeySource::StateDir(state.clone()),
            "a credentials folder without the key"
        );
        Keys::generate(&credentials.join(CREDENTIAL)).unwrap();
        assert_eq!(
            KeySource::choose(None, Some(&credentials), &state),
            KeySource::Provisioned(credentials.join(CREDENTIAL))
        );
        assert_eq!(KeySource::choose(None, None, &state), KeySource::StateDir(state));
    }

    /// After a rotation, what the old key file sealed still opens, and new sealing
    /// uses the new one only.
    #[test]
    fn a_rotated_key_still_opens_what_the_previous_one_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old.key"), dir.path().join("new.key"));
        Keys::generate(&old).unwrap();
        Keys::generate(&new).unwrap();
        let sealed_before = Keys::load(&old).unwrap().seal(b"secret", b"ctx");
        let rotated = Keys::load(&new).unwrap().with_previous(Keys::load(&old).unwrap());
        assert_eq!(
            rotated.open(&sealed_before, b"ctx").unwrap().as_slice(),
            b"secret"
        );
        assert!(
            rotated.open(&sealed_before, b"other").is_err(),
            "still bound to its context"
        );
        let sealed_after = rotated.seal(b"secret", b"ctx");
        assert!(
            Keys::load(&old).unwrap().open(&sealed_after, b"ctx").is_err(),
            "sealed with the new key"
        );
        assert_eq!(
            rotated.previous_cookie_key(),
            Some(Keys::load(&old).unwrap().cookie_key())
        );
        assert_ne!(rotated.cookie_key(), Keys::load(&old).unwrap().cookie_key());
        let resealed = rotated.reseal(&sealed_before, b"ctx").expect("needs it").unwrap();
        assert_eq!(
            Keys::load(&new)
                .unwrap()
                .open(&resealed, b"ctx")
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(
            rotated.reseal(&sealed_after, b"ctx").is_none(),
            "the new key opens it already"
        );
        assert!(matches!(
            rotated.reseal(b"garbage-not-sealed", b"ctx"),
            Some(Err(OpenError))
        ));
    }
}
