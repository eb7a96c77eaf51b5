//! Sessions looked up lately, so that a request does not read the store: a compact
//! concurrent cache (quick_cache, about 40 bytes of its own per entry, where a
//! session costs ~300) with a lifetime per entry. Stale entries are dropped when met
//! and swept out at most once per lifetime, on an insert.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::SessionRecord;

pub struct SessionCache {
    entries: quick_cache::sync::Cache<[u8; 32], Cached>,
    lifetime: Duration,
    last_sweep: Mutex<Instant>,
    /// Counts removals: a record read before one must not be inserted after it.
    revocations: AtomicU64,
}

#[derive(Clone)]
struct Cached {
    record: Arc<SessionRecord>,
    at: Instant,
}

impl SessionCache {
    /// Holds about `capacity` sessions, each trusted for `lifetime` after it was read.
    pub fn new(capacity: usize, lifetime: Duration) -> SessionCache {
        SessionCache {
            entries: quick_cache::sync::Cache::new(capacity),
            lifetime,
            last_sweep: Mutex::new(Instant::now()),
            revocations: AtomicU64::new(0),
        }
    }

    /// How many removals so far (for `insert_unless_revoked`).
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    /// Inserts a record read when `revocations()` was `seen`, unless something
    /// was removed since (it may have been this very session): then the next
    /// request reads the store again.
    pub fn insert_unless_revoked(&self, record: Arc<SessionRecord>, seen: u64) {
        if self.revocations() != seen {
            return;
        }
        let id_hash = record.id_hash;
        self.insert(record);
        // A removal between the check and the insert: undo the insert.
        if self.revocations() != seen {
            self.entries.remove(&id_hash);
        }
    }

    pub fn get(&self, id_hash: &[u8; 32]) -> Option<Arc<SessionRecord>> {
        let cached = self.entries.get(id_hash)?;
        if cached.at.elapsed() < self.lifetime {
            return Some(cached.record);
        }
        self.entries.remove(id_hash);
        None
    }

    pub fn insert(&self, record: Arc<SessionRecord>) {
        self.entries.insert(
            record.id_hash,
            Cached {
                record,
                at: Instant::now(),
            },
        );
        self.sweep_when_due();
    }

    pub fn remove(&self, id_hash: &[u8; 32]) {
        // Counted before it is done: a reader that checks after sees it.
        self.revocations.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(id_hash);
    }

    /// Drops every cached session.
    pub fn clear(&self) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    /// Drops every cached session of `user`.
    pub fn remove_user(&self, user: &str) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
        self.entries.retain(|_, cached| cached.record.user != user);
    }

    /// Drops stale entries once per lifetime (one caller does it; the others go on).
    fn sweep_when_due(&self) {
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() < self.lifetime {
            return;
        }
        *last = Instant::now();
        let lifetime = self.lifetime;
        self.entries.retain(|_, cached| cached.at.elapsed() < lifetime);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn record(id: u8, user: &str) -> Arc<SessionRecord> {
        Arc::new(SessionRecord {
            id_hash: [id; 32],
            user: user.into(),
            app: "wiki".into(),
            created_at: SystemTime::UNIX_EPOCH,
            last_seen_at: SystemTime::UNIX_EPOCH,
            second_factor_at: None,
            method: crate::factors::SignInMethod::Totp,
            revoked: false,
            mfa_opted_in: false,
        })
    }

    /// A record read from the store before a revocation was heard is not cached
    /// after it: it could be the revoked session.
    #[test]
    fn what_was_read_before_a_revocation_is_not_cached_after_it() {
        let cache = SessionCache::new(100, Duration::from_secs(60));
        let seen = cache.revocations();
        cache.remove(&[1; 32]);
        cache.insert_unless_revoked(record(1, "alice"), seen);
        assert!(cache.get(&[1; 32]).is_none());
        let seen = cache.revocations();
        cache.remove_user("bob");
        cache.insert_unless_revoked(record(2, "alice"), seen);
        assert!(cache.get(&[2; 32]).is_none(), "any removal counts");
        let seen = cache.revocations();
        cache.insert_unless_revoked(record(3, "alice"), seen);
        assert!(cache.get(&[3; 32]).is_some(), "nothing removed meanwhile");
    }

    #[test]
    fn entries_live_for_their_lifetime_and_users_are_dropped_whole() {
        let cache = SessionCache::new(100, Duration::from_millis(200));
        cache.insert(record(1, "alice"));
        cache.insert(record(2, "alice"));
        cache.insert(record(3, "bob"));
        assert!(cache.get(&[1; 32]).is_some());
        cache.remove_user("alice");
        assert!(cache.get(&[1; 32]).is_none() && cache.get(&[2; 32]).is_none());
        assert!(cache.get(&[3; 32]).is_some());
        cache.remove(&[3; 32]);
        assert!(cache.get(&[3; 32]).is_none());

        cache.insert(record(4, "carol"));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get(&[4; 32]).is_none(), "stale");
        cache.insert(record(5, "dave"));
        cache.insert(record(6, "erik"));
        std::thread::sleep(Duration::from_millis(250));
        cache.insert(record(7, "fia"));
        assert_eq!(cache.len(), 1, "the stale ones were swept");
    }
}
