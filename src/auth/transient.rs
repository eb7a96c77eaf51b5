//! Short-lived state kept in the store so that every gateway sees it: encoded
//! compactly (postcard), sealed under the deployment's key to its kind and key,
//! and stored under the SHA-256 of the id the browser holds, so a copy of the
//! database gives neither the state (the withheld answer, the enrolment secret)
//! nor an id a browser could present.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::keys::Keys;
use crate::store::{Store, StoreError, StoreResult, TransientKind};

#[derive(Clone)]
pub struct TransientState {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
}

/// What a value was read as, and the version a conditional replace needs.
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
}

impl TransientState {
    pub fn new(store: Arc<dyn Store>, keys: Arc<Keys>) -> TransientState {
        TransientState { store, keys }
    }

    /// On a SQLite file and a key file in `dir`, as a gateway has them.
    #[cfg(test)]
    pub fn on_a_real_store(dir: &tempfile::TempDir) -> TransientState {
        let store = Arc::new(crate::store::SqliteStore::open_in(dir.path()).unwrap());
        let key_file = dir.path().join("portvakt.key");
        Keys::generate(&key_file).unwrap();
        TransientState::new(store, Arc::new(Keys::load(&key_file).unwrap()))
    }

    /// Stores `value` under `id`. It is sealed before this returns (so the caller
    /// may hold a lock on it only that long); the future writes it.
    pub fn put<T: Serialize>(
        &self,
        kind: TransientKind,
        id: &str,
        value: &T,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'static {
        let key = store_key(id);
        let sealed = self.seal(kind, &key, value);
        let store = self.store.clone();
        async move { store.put_transient(kind, key, sealed?, expires_at, now).await }
    }

    /// The value `id` names, unless it expired or does not open under the keys
    /// (then it is as good as gone, and the log says so).
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: TransientKind,
        id: &str,
        now: SystemTime,
    ) -> StoreResult<Option<Versioned<T>>> {
        let key = store_key(id);
        let Some(stored) = self.store.transient(kind, key, now).await? else {
            return Ok(None);
        };
        Ok(self.open(kind, &key, &stored.sealed).map(|value| Versioned {
            value,
            version: stored.version,
        }))
    }

    /// Replaces the value if nobody changed it since it was read at `version`
    /// (sealed before this returns, like `put`).
    pub fn replace<T: Serialize>(
        &self,
        kind: TransientKind,
        id: &str,
        version: i64,
        value: &T,
    ) -> impl Future<Output = StoreResult<bool>> + Send + 'static {
        let key = store_key(id);
        let sealed = self.seal(kind, &key, value);
        let store = self.store.clone();
        async move { store.replace_transient(kind, key, version, sealed?).await }
    }

    /// Takes the value out: of requests racing for it, on any gateway, one gets it.
    pub async fn take<T: DeserializeOwned>(
        &self,
        kind: TransientKind,
        id: &str,
        now: SystemTime,
    ) -> StoreResult<Option<T>> {
        let key = store_key(id);
        let sealed = self.store.take_transient(kind, key, now).await?;
        Ok(sealed.and_then(|sealed| self.open(kind, &key, &sealed)))
    }

    fn seal<T: Serialize>(&self, kind: TransientKind, key: &[u8; 32], value: &T) -> StoreResult<Vec<u8>> {
        let plain = Zeroizing::new(
            postcard::to_stdvec(value)
                .map_err(|e| StoreError::Database(format!("encoding {}: {e}", kind.as_str()).into()))?,
        );
        Ok(self.keys.seal(&plain, &seal_context(kind, key)))
    }

    fn open<T: DeserializeOwned>(&self, kind: TransientKind, key: &[u8; 32], sealed: &[u8]) -> Option<T> {
        let opened = self.keys.open(sealed, &seal_context(kind, key));
        match opened.map(|plain| postcard::from_bytes::<T>(&plain)) {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                tracing::warn!(kind = kind.as_str(), error = %e, "stored state of an older build; dropped");
                None
            }
            Err(_) => {
                tracing::warn!(
                    kind = kind.as_str(),
                    "stored state does not open under this gateway's keys; dropped"
                );
                None
            }
        }
    }
}

/// What a value is, as one hash of its encoding: equal hashes, equal values.
pub fn fingerprint<T: Serialize>(value: &T) -> [u8; 32] {
    let encoded = Zeroizing::new(postcard::to_stdvec(value).unwrap_or_default());
    Sha256::digest(&*encoded).into()
}

/// The store never sees the id a browser holds, only its hash.
fn store_key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Sealed to its kind and key: a value copied onto another row does not open.
fn seal_context(kind: TransientKind, key: &[u8; 32]) -> Vec<u8> {
    let mut context = format!("transient\0{}\0", kind.as_str()).into_bytes();
    context.extend_from_slice(key);
    context
}
