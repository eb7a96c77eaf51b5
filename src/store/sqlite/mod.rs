//! The embedded store: one SQLite file in `state_dir`, in WAL mode with full sync,
//! so a committed write survives a crash, `kill -9` or power loss.
//!
//! One connection writes (SQLite allows one writer at a time anyway, and one
//! connection makes each transaction's order plain); a small pool of read-only
//! connections answers the reads beside it, which WAL lets run while a write
//! commits. rusqlite is synchronous: each call runs on Tokio's blocking pool, which
//! keeps the proxy's threads free and works from any of Pingora's runtimes.
//!
//! The schema is SQLite's own (BLOB ids, `RAISE` triggers, `PRAGMA user_version`);
//! another backend brings its own migrations and passes the same conformance suite.

mod queries;
mod rows;
mod snapshot;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{StoreError, StoreResult};

pub const DATABASE_FILE: &str = "portvakt.db";

/// Schema changes, in order; entry N brings the schema to version N + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_factors.sql"),
    include_str!("migrations/0002_sessions.sql"),
    include_str!("migrations/0003_enrolment_window.sql"),
    include_str!("migrations/0004_audit_trail.sql"),
    include_str!("migrations/0005_mfa_opt_in.sql"),
    include_str!("migrations/0006_trusted_devices.sql"),
    include_str!("migrations/0007_preferred_method.sql"),
    include_str!("migrations/0008_email_address.sql"),
    include_str!("migrations/0009_sessions_per_app.sql"),
    include_str!("migrations/0010_transient.sql"),
    include_str!("migrations/0011_app_passwords.sql"),
    include_str!("migrations/0012_phone_number.sql"),
    include_str!("migrations/0013_security_keys.sql"),
    include_str!("migrations/0014_sign_in_signals.sql"),
];

/// Read-only connections beside the writer: enough for both cores' proxy threads
/// and the hashing threads to read at once.
const READERS: usize = 4;

pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<[Mutex<Connection>]>,
    next_reader: Arc<AtomicUsize>,
}

impl SqliteStore {
    /// Opens (or creates) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.busy_timeout(Duration::from_secs(5))?;
                Ok(Mutex::new(reader))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SqliteStore {
            writer: Arc::new(Mutex::new(conn)),
            readers: readers.into(),
            next_reader: Arc::default(),
        })
    }

    /// The database of a state directory.
    pub fn open_in(state_dir: &Path) -> StoreResult<SqliteStore> {
        Self::open(&state_dir.join(DATABASE_FILE))
    }

    /// Runs `work` on the writer.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.writer.clone();
        tokio::task::spawn_blocking(move || work(&mut lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `work` on a read-only connection (one that is free, if any is): a write
    /// there fails rather than slipping past the writer.
    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let count = readers.len();
            let free = (0..count).find_map(|i| readers[(start + i) % count].try_lock().ok());
            match free {
                Some(mut conn) => work(&mut conn),
                None => work(&mut lock(&readers[start % count])),
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(Box::new(e))
    }
}

/// A panic while a connection was held cannot leave a transaction open (an
/// unfinished one rolls back when dropped), so a poisoned lock still guards a sound
/// connection.
fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for (version, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i64::try_from(version + 1).unwrap_or(known))?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    use crate::factors::lockout::LockoutPolicy;
    use crate::store::conformance::store_conformance;
    use crate::store::{AuditEvent, DeviceAdded, Store, Subject};

    store_conformance!({
        let (dir, store) = store();
        (dir, std::sync::Arc::new(store) as std::sync::Arc<dyn Store>)
    });

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_in(dir.path()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn an_enrolled_device_survives_reopening_and_its_first_code_counts_as_used() {
        let (dir, store) = store();
        let added = store
            .add_totp_device("alice", "Phone", vec![1, 2, 3], 100, at(0), 1)
            .await
            .unwrap();
        let DeviceAdded::Added(id) = added else {
            panic!("{added:?}");
        };
        drop(store);
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let devices = store.totp_devices("alice").await.unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!((devices[0].id, devices[0].name.as_str()), (id, "Phone"));
        assert_eq!(devices[0].sealed_secret, vec![1, 2, 3]);
        assert_eq!(store.last_totp_step("alice").await.unwrap(), Some(100));
        assert!(!store.accept_totp_step("alice", id, 100, at(1)).await.unwrap());
        assert!(store.accept_totp_step("alice", id, 101, at(2)).await.unwrap());
        assert_eq!(store.last_totp_step("bob").await.unwrap(), None);
    }

    #[tokio::test]
    async fn failure_counters_survive_reopening() {
        let (dir, store) = store();
        let policy = LockoutPolicy::default();
        let alice = [(Subject::User("alice"), policy)];
        for i in 0..10 {
            store.charge_attempt(&alice, at(i)).await.unwrap().unwrap();
        }
        drop(store);
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let record = store.failures(Subject::User("alice")).await.unwrap();
        assert_eq!(record.count, 10);
        assert!(policy.locked_for(&record, at(10)).is_some());
    }

    #[tokio::test]
    async fn the_audit_trail_cannot_be_edited() {
        let (dir, store) = store();
        let event = AuditEvent {
            at: at(1),
            event: "login_ok".into(),
            actor: "alice".into(),
            subject: "alice".into(),
            app: None,
            client: None,
            outcome: "ok".into(),
        };
        store.record(&event).await.unwrap();
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        assert!(
            conn.execute("UPDATE audit SET outcome = 'refused'", []).is_err(),
            "no edits"
        );
        assert!(conn.execute("DELETE FROM audit", []).is_err(), "no deletions");
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATABASE_FILE);
        SqliteStore::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }

    /// A query that writes cannot slip past the writer by running as a read.
    #[tokio::test]
    async fn the_read_pool_cannot_write() {
        let (_dir, store) = store();
        let wrote = store
            .read(|conn| Ok(conn.execute("INSERT INTO users (name, created_at) VALUES ('eve', 0)", [])?))
            .await;
        assert!(wrote.is_err(), "{wrote:?}");
        let read = store
            .read(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))?))
            .await;
        assert_eq!(read.unwrap(), 0);
    }

    #[test]
    fn the_file_is_in_wal_mode() {
        let (dir, _store) = store();
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
