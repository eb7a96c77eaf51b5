//! App passwords as a service: made on the security-info page, checked on each
//! request of a client that sends one (HTTP Basic), removed by their user or an
//! admin.
//!
//! Checking costs argon2, so a credential that passed is remembered for a short
//! while (bounded, under the SHA-256 of user, app and password): a client's every
//! request does not pay for it again. A removal here, or any change to the user
//! another gateway announces, makes everything remembered before it count for
//! nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::factors::app_password;
use crate::factors::hashing::HashingPool;
use crate::store::{Store, StoreError, StoreResult, StoredAppPassword};

/// How long a checked credential is remembered; also how late a removal that no
/// channel announces (another gateway's while the channel is down, or the CLI's
/// on a SQLite deployment) may reach this gateway: the sessions' cache lifetime.
const REMEMBER_FOR: Duration = super::sessions::CACHE_FOR;
const REMEMBERED_AT_MOST: u64 = 10_000;
/// At most this many app passwords per user.
pub const AT_MOST: usize = 20;
/// A use is written to the store (and the audit trail) at most this often.
const USE_NOTED_EVERY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct AppPasswords {
    store: Arc<dyn Store>,
    hashing: HashingPool,
    remembered: moka::sync::Cache<[u8; 32], Remembered>,
    user_changes: Arc<AtomicU64>,
}

/// An app password that passed: whose, and what goes on to the app.
#[derive(Clone)]
pub struct Verified {
    pub id: i64,
    pub user: String,
    pub name: String,
    /// When it was made (under a second factor passed then).
    pub created_at: SystemTime,
    /// The user's own password at a Basic app, opened for this request.
    pub app_secret: Option<Zeroizing<String>>,
    /// The first use in a while: worth a line in the audit trail.
    pub noteworthy: bool,
    /// The app refused the password sent on with it last time.
    pub app_refused: bool,
}

#[derive(Clone)]
struct Remembered {
    verified: Verified,
    /// `user_changes` when it was checked.
    at_change: u64,
}

/// A new app password, shown once.
pub struct Made {
    pub id: i64,
    pub password: Zeroizing<String>,
}

impl AppPasswords {
    pub fn new(store: Arc<dyn Store>, hashing: HashingPool, user_changes: Arc<AtomicU64>) -> AppPasswords {
        AppPasswords {
            store,
            hashing,
            remembered: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED_AT_MOST)
                .time_to_live(REMEMBER_FOR)
                .build(),
            user_changes,
        }
    }

    /// Makes an app password for `user`'s client `name` of `app`; for a Basic
    /// app, `app_secret` (the user's own password there) is sealed under it.
    /// `None` when the user has as many as allowed, or one of that name there.
    pub async fn make(
        &self,
        user: &str,
        app: &str,
        name: &str,
        app_secret: Option<&str>,
        now: SystemTime,
    ) -> StoreResult<Option<Made>> {
        let password = app_password::generate();
        let sealed_secret = match app_secret {
            Some(secret) => Some(
                app_password::seal(&password, secret)
                    .ok_or_else(|| StoreError::Task("could not seal an app's password".into()))?,
            ),
            None => None,
        };
        let hashed = password.clone();
        let phc = self
            .hashing
            .run(move || app_password::hash(&hashed))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let entry = StoredAppPassword {
            id: 0,
            user: user.to_owned(),
            app: app.to_owned(),
            name: name.to_owned(),
            phc,
            sealed_secret,
            created_at: now,
            last_used_at: None,
            app_refused: false,
        };
        let id = self.store.add_app_password(&entry, AT_MOST).await?;
        Ok(id.map(|id| Made { id, password }))
    }

    /// The app password of `user` for `app` that `presented` is, if any.
    pub async fn verify(
        &self,
        user: &str,
        app: &str,
        presented: &str,
        now: SystemTime,
    ) -> StoreResult<Option<Verified>> {
        let Some(letters) = app_password::canonical(presented) else {
            return Ok(None);
        };
        let key = remembered_key(user, app, &letters);
        let at_change = self.user_changes.load(Ordering::Acquire);
        if let Some(found) = self.remembered.get(&key) {
            if found.at_change == at_change {
                let mut verified = found.verified;
                verified.noteworthy = false;
                return Ok(Some(verified));
            }
            self.remembered.invalidate(&key);
        }
        let candidates: Vec<StoredAppPassword> = self
            .store
            .app_passwords(Some(user))
            .await?
            .into_iter()
            .filter(|p| p.app == app)
            .collect();
        let presented = Zeroizing::new(presented.to_owned());
        if candidates.is_empty() {
            // As slow as checking one: how long a wrong guess takes does not tell
            // who has app passwords.
            let _ = self
                .hashing
                .run(move || app_password::matches(&presented, unmatchable_phc()))
                .await;
            return Ok(None);
        }
        let found = self
            .hashing
            .run(move || {
                let found = candidates
                    .into_iter()
                    .find(|p| app_password::matches(&presented, &p.phc));
                found.map(|p| {
                    let app_secret = p
                        .sealed_secret
                        .as_deref()
                        .and_then(|sealed| app_password::open(&presented, sealed));
                    (p, app_secret)
                })
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let Some((stored, app_secret)) = found else {
            return Ok(None);
        };
        if stored.sealed_secret.is_some() && app_secret.is_none() {
            tracing::error!(user = %user, id = stored.id, "an app password's sealed app password does not open");
            return Ok(None);
        }
        let noteworthy = stored
            .last_used_at
            .is_none_or(|last| now.duration_since(last).unwrap_or_default() >= USE_NOTED_EVERY);
        if noteworthy {
            self.store
                .note_app_password_use(stored.id, now, stored.app_refused)
                .await?;
        }
        let verified = Verified {
            id: stored.id,
            user: stored.user,
            name: stored.name,
            created_at: stored.created_at,
            app_secret,
            noteworthy,
            app_refused: stored.app_refused,
        };
        // Not remembered if the user changed meanwhile: it may be gone already.
        if self.user_changes.load(Ordering::Acquire) == at_change {
            self.remembered.insert(
                key,
                Remembered {
                    verified: verified.clone(),
                    at_change,
                },
            );
        }
        Ok(Some(verified))
    }

    /// The app refused (or took again) the password sent on with app password `id`.
    pub async fn note_answer(&self, id: i64, refused: bool, now: SystemTime) -> StoreResult<()> {
        self.store.note_app_password_use(id, now, refused).await
    }

    /// Removes app password `id` of `user`: from here on it opens nothing, on
    /// this gateway at once, on the others as they hear of it.
    pub async fn remove(&self, user: &str, id: i64) -> StoreResult<bool> {
        let removed = self.store.remove_app_password(user, id).await?;
        self.forget_all();
        Ok(removed)
    }

    /// Everything remembered counts for nothing any more.
    pub fn forget_all(&self) {
        self.user_changes.fetch_add(1, Ordering::AcqRel);
        self.remembered.invalidate_all();
    }
}

/// A hash no app password matches (of one that is never given out), checked
/// against when a user has none, so that both take the same time.
fn unmatchable_phc() -> &'static str {
    static PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PHC.get_or_init(|| app_password::hash(&app_password::generate()).unwrap_or_default())
}

/// What stands for a session's id when an app password's identity is signed.
pub fn record_id(id: i64) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"app password ");
    hash.update(id.to_be_bytes());
    hash.finalize().into()
}

fn remembered_key(user: &str, app: &str, letters: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [user, app, letters] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}
