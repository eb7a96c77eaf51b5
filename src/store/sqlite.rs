//! The embedded store: one SQLite file in `state_dir`, in WAL mode with full sync,
//! so a committed write survives a crash, `kill -9` or power loss.
//!
//! rusqlite is synchronous; each call runs on Tokio's blocking pool, which keeps the
//! proxy's threads free and works from any of Pingora's runtimes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    AuditEvent, AuditQuery, PreferredMethod, SessionRecord, Store, StoreError, StoreResult,
    StoredRecoveryCode, Subject, TotpDevice, UserSummary,
};
use crate::factors::lockout::{Charge, FailureRecord, LockoutPolicy};
use crate::factors::SignInMethod;

pub const DATABASE_FILE: &str = "portvakt.db";

/// Schema changes, in order; entry N brings the schema to version N + 1. The SQL is
/// kept to what PostgreSQL also accepts.
const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE users (
        name            TEXT PRIMARY KEY,
        created_at      BIGINT NOT NULL,
        last_totp_step  BIGINT
    );
    CREATE TABLE totp_devices (
        id              INTEGER PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name            TEXT NOT NULL,
        sealed_secret   BLOB NOT NULL,
        created_at      BIGINT NOT NULL,
        last_used_at    BIGINT,
        UNIQUE (user_name, name)
    );
    CREATE TABLE recovery_codes (
        id              INTEGER PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        phc             TEXT NOT NULL,
        created_at      BIGINT NOT NULL,
        used_at         BIGINT
    );
    CREATE INDEX recovery_codes_by_user ON recovery_codes (user_name);
    CREATE TABLE failures (
        subject         TEXT PRIMARY KEY,
        count           BIGINT NOT NULL,
        last_failure    BIGINT,
        locked_until    BIGINT
    );
",
    r"
    CREATE TABLE sessions (
        id_hash          BLOB PRIMARY KEY,
        user_name        TEXT NOT NULL,
        created_at       BIGINT NOT NULL,
        last_seen_at     BIGINT NOT NULL,
        second_factor_at BIGINT,
        method           TEXT NOT NULL,
        revoked          INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_by_user ON sessions (user_name);
",
    r"
    ALTER TABLE users ADD COLUMN enrolment_open_until BIGINT;
",
    r"
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          BIGINT NOT NULL,
        event       TEXT NOT NULL,
        actor       TEXT NOT NULL,
        subject     TEXT NOT NULL,
        app         TEXT,
        client      TEXT,
        outcome     TEXT NOT NULL
    );
    CREATE INDEX audit_by_subject ON audit (subject, at);
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
",
    r"
    ALTER TABLE users ADD COLUMN mfa_opted_in INTEGER NOT NULL DEFAULT 0;
",
    r"
    CREATE TABLE trusted_devices (
        id_hash     BLOB PRIMARY KEY,
        user_name   TEXT NOT NULL,
        passed_at   BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL
    );
    CREATE INDEX trusted_devices_by_user ON trusted_devices (user_name);
",
    r"
    ALTER TABLE users ADD COLUMN preferred_method TEXT;
",
    r"
    ALTER TABLE users ADD COLUMN email TEXT;
",
    // Sessions from before this migration name no app and are good for none.
    r"
    ALTER TABLE sessions ADD COLUMN app TEXT NOT NULL DEFAULT '';
    CREATE TABLE mfa_defaults (
        app         TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        since       BIGINT NOT NULL
    );
",
];

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
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
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database of a state directory.
    pub fn open_in(state_dir: &Path) -> StoreResult<SqliteStore> {
        Self::open(&state_dir.join(DATABASE_FILE))
    }

    async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held cannot leave a transaction open (an
            // unfinished one rolls back when dropped), so the connection is still sound.
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
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

/// A session's sign-in method as stored; an unknown name makes the row unreadable
/// (so the session is not used), never a guess.
fn stored_method(name: &str) -> rusqlite::Result<SignInMethod> {
    SignInMethod::parse(name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown sign-in method {name:?}").into(),
        )
    })
}

fn to_unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn from_unix(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn step_to_db(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

/// Creates the user's row if it is not there yet.
fn ensure_user(conn: &Connection, user: &str, now: SystemTime) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO users (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![user, to_unix(now)],
    )?;
    Ok(())
}

/// One column of the user's row; `None` when the user has no row yet. `column` is
/// always a constant of this file, never input.
fn user_column<T: rusqlite::types::FromSql>(
    conn: &Connection,
    user: &str,
    column: &'static str,
) -> rusqlite::Result<Option<T>> {
    conn.query_row(
        &format!("SELECT {column} FROM users WHERE name = ?1"),
        params![user],
        |row| row.get(0),
    )
    .optional()
}

/// Sets one column of the user's row, creating the row first if need be. `column`
/// is always a constant of this file, never input.
fn set_user_column<T: rusqlite::ToSql>(
    conn: &mut Connection,
    user: &str,
    column: &'static str,
    value: T,
    now: SystemTime,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    ensure_user(&tx, user, now)?;
    tx.execute(
        &format!("UPDATE users SET {column} = ?2 WHERE name = ?1"),
        params![user, value],
    )?;
    tx.commit()
}

fn read_failures(conn: &Connection, key: &str) -> rusqlite::Result<FailureRecord> {
    conn.query_row(
        "SELECT count, last_failure, locked_until FROM failures WHERE subject = ?1",
        params![key],
        |row| {
            Ok(FailureRecord {
                count: u32::try_from(row.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                last_failure: row.get::<_, Option<i64>>(1)?.map(from_unix),
                locked_until: row.get::<_, Option<i64>>(2)?.map(from_unix),
            })
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

fn write_failures(conn: &Connection, key: &str, record: &FailureRecord) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO failures (subject, count, last_failure, locked_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (subject) DO UPDATE SET
             count = excluded.count, last_failure = excluded.last_failure, locked_until = excluded.locked_until",
        params![
            key,
            i64::from(record.count),
            record.last_failure.map(to_unix),
            record.locked_until.map(to_unix)
        ],
    )?;
    Ok(())
}

/// Stores a confirmed device; with `first_only`, only if the user has none yet
/// (checked in the same transaction: two first enrolments at once store one).
fn add_device(
    conn: &mut Connection,
    user: &str,
    name: &str,
    sealed_secret: Vec<u8>,
    confirmed_step: u64,
    now: SystemTime,
    first_only: bool,
) -> rusqlite::Result<Option<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if first_only {
        let existing: i64 = tx.query_row(
            "SELECT COUNT(*) FROM totp_devices WHERE user_name = ?1",
            params![user],
            |row| row.get(0),
        )?;
        if existing > 0 {
            return Ok(None);
        }
    }
    ensure_user(&tx, user, now)?;
    tx.execute(
        "INSERT INTO totp_devices (user_name, name, sealed_secret, created_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![user, name, sealed_secret, to_unix(now)],
    )?;
    let id = tx.last_insert_rowid();
    // An opened enrolment is used up by the device it let in.
    tx.execute(
        "UPDATE users SET enrolment_open_until = NULL WHERE name = ?1",
        params![user],
    )?;
    tx.execute(
        "UPDATE users SET last_totp_step = ?2
         WHERE name = ?1 AND (last_totp_step IS NULL OR last_totp_step < ?2)",
        params![user, step_to_db(confirmed_step)],
    )?;
    tx.commit()?;
    Ok(Some(id))
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_totp_device(
        &self,
        user: &str,
        name: &str,
        sealed_secret: Vec<u8>,
        confirmed_step: u64,
        now: SystemTime,
    ) -> StoreResult<i64> {
        let (user, name) = (user.to_owned(), name.to_owned());
        self.run(move |conn| {
            let added = add_device(conn, &user, &name, sealed_secret, confirmed_step, now, false)?;
            added.ok_or_else(|| StoreError::Task("a device was not added".to_owned()))
        })
        .await
    }

    async fn add_first_totp_device(
        &self,
        user: &str,
        name: &str,
        sealed_secret: Vec<u8>,
        confirmed_step: u64,
        now: SystemTime,
    ) -> StoreResult<Option<i64>> {
        let (user, name) = (user.to_owned(), name.to_owned());
        self.run(move |conn| {
            Ok(add_device(
                conn,
                &user,
                &name,
                sealed_secret,
                confirmed_step,
                now,
                true,
            )?)
        })
        .await
    }

    async fn totp_devices(&self, user: &str) -> StoreResult<Vec<TotpDevice>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, user_name, name, sealed_secret, created_at, last_used_at
                 FROM totp_devices WHERE user_name = ?1 ORDER BY id",
            )?;
            let devices = statement
                .query_map(params![user], |row| {
                    Ok(TotpDevice {
                        id: row.get(0)?,
                        user: row.get(1)?,
                        name: row.get(2)?,
                        sealed_secret: row.get(3)?,
                        created_at: from_unix(row.get(4)?),
                        last_used_at: row.get::<_, Option<i64>>(5)?.map(from_unix),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(devices)
        })
        .await
    }

    async fn rename_device(
        &self,
        user: &str,
        id: i64,
        name: &str,
        sealed_secret: Vec<u8>,
    ) -> StoreResult<bool> {
        let (user, name) = (user.to_owned(), name.to_owned());
        self.run(move |conn| {
            let changed = conn.execute(
                "UPDATE totp_devices SET name = ?3, sealed_secret = ?4
                 WHERE id = ?1 AND user_name = ?2
                   AND NOT EXISTS (SELECT 1 FROM totp_devices WHERE user_name = ?2 AND name = ?3)",
                params![id, user, name, sealed_secret],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn remove_device(&self, user: &str, id: i64) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |conn| {
            let changed = conn.execute(
                "DELETE FROM totp_devices WHERE id = ?1 AND user_name = ?2",
                params![id, user],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn last_totp_step(&self, user: &str) -> StoreResult<Option<u64>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let step: Option<Option<i64>> = user_column(conn, &user, "last_totp_step")?;
            Ok(step.flatten().and_then(|s| u64::try_from(s).ok()))
        })
        .await
    }

    async fn accept_totp_step(
        &self,
        user: &str,
        device_id: i64,
        step: u64,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE users SET last_totp_step = ?2
                 WHERE name = ?1 AND (last_totp_step IS NULL OR last_totp_step < ?2)",
                params![user, step_to_db(step)],
            )?;
            if changed == 1 {
                tx.execute(
                    "UPDATE totp_devices SET last_used_at = ?3 WHERE id = ?1 AND user_name = ?2",
                    params![device_id, user, to_unix(now)],
                )?;
            }
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user: &str,
        phcs: Vec<String>,
        now: SystemTime,
    ) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            ensure_user(&tx, &user, now)?;
            tx.execute("DELETE FROM recovery_codes WHERE user_name = ?1", params![user])?;
            for phc in &phcs {
                tx.execute(
                    "INSERT INTO recovery_codes (user_name, phc, created_at) VALUES (?1, ?2, ?3)",
                    params![user, phc, to_unix(now)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn unused_recovery_codes(&self, user: &str) -> StoreResult<Vec<StoredRecoveryCode>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, phc FROM recovery_codes WHERE user_name = ?1 AND used_at IS NULL ORDER BY id",
            )?;
            let codes = statement
                .query_map(params![user], |row| {
                    Ok(StoredRecoveryCode {
                        id: row.get(0)?,
                        phc: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(codes)
        })
        .await
    }

    async fn use_recovery_code(&self, user: &str, id: i64, now: SystemTime) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |conn| {
            let changed = conn.execute(
                "UPDATE recovery_codes SET used_at = ?3 WHERE id = ?1 AND user_name = ?2 AND used_at IS NULL",
                params![id, user, to_unix(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn failures(&self, subject: Subject<'_>) -> StoreResult<FailureRecord> {
        let key = subject.key();
        self.run(move |conn| Ok(read_failures(conn, &key)?)).await
    }

    async fn charge_attempt(
        &self,
        subjects: &[(Subject<'_>, LockoutPolicy)],
        now: SystemTime,
    ) -> StoreResult<Result<Vec<Charge>, Duration>> {
        let subjects: Vec<(String, LockoutPolicy)> = subjects.iter().map(|(s, p)| (s.key(), *p)).collect();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut charges = Vec::with_capacity(subjects.len());
            for (key, policy) in &subjects {
                let before = read_failures(&tx, key)?;
                match policy.charge(&before, now) {
                    Ok(after) => charges.push(Charge { before, after }),
                    // Dropping the transaction counts nothing anywhere.
                    Err(wait) => return Ok(Err(wait)),
                }
            }
            for ((key, _), charge) in subjects.iter().zip(&charges) {
                write_failures(&tx, key, &charge.after)?;
            }
            tx.commit()?;
            Ok(Ok(charges))
        })
        .await
    }

    async fn refund_attempt(
        &self,
        subjects: &[(Subject<'_>, LockoutPolicy)],
        charges: Vec<Charge>,
    ) -> StoreResult<()> {
        let subjects: Vec<(String, LockoutPolicy)> = subjects.iter().map(|(s, p)| (s.key(), *p)).collect();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for ((key, policy), charge) in subjects.iter().zip(&charges) {
                let refunded = policy.refund(&read_failures(&tx, key)?, charge);
                write_failures(&tx, key, &refunded)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn reset_failures(&self, subject: Subject<'_>) -> StoreResult<()> {
        let key = subject.key();
        self.run(move |conn| {
            conn.execute("DELETE FROM failures WHERE subject = ?1", params![key])?;
            Ok(())
        })
        .await
    }

    async fn trust_device(
        &self,
        id_hash: [u8; 32],
        user: &str,
        passed_at: SystemTime,
        until: SystemTime,
    ) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO trusted_devices (id_hash, user_name, passed_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![id_hash.as_slice(), user, to_unix(passed_at), to_unix(until)],
            )?;
            Ok(())
        })
        .await
    }

    async fn trusted_device(
        &self,
        id_hash: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<(String, SystemTime)>> {
        self.run(move |conn| {
            let found = conn
                .query_row(
                    "SELECT user_name, passed_at FROM trusted_devices WHERE id_hash = ?1 AND expires_at > ?2",
                    params![id_hash.as_slice(), to_unix(now)],
                    |row| Ok((row.get::<_, String>(0)?, from_unix(row.get(1)?))),
                )
                .optional()?;
            Ok(found)
        })
        .await
    }

    async fn forget_trusted_devices(&self, user: &str) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM trusted_devices WHERE user_name = ?1", params![user])?;
            Ok(())
        })
        .await
    }

    async fn mfa_opted_in(&self, user: &str) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |conn| {
            let on: Option<bool> = user_column(conn, &user, "mfa_opted_in")?;
            Ok(on.unwrap_or(false))
        })
        .await
    }

    async fn mfa_default_since(
        &self,
        app: &str,
        fingerprint: &str,
        now: SystemTime,
    ) -> StoreResult<SystemTime> {
        let (app, fingerprint) = (app.to_owned(), fingerprint.to_owned());
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let recorded: Option<(String, i64)> = tx
                .query_row(
                    "SELECT fingerprint, since FROM mfa_defaults WHERE app = ?1",
                    params![app],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let since = match recorded {
                Some((seen, since)) if seen == fingerprint => from_unix(since),
                _ => {
                    tx.execute(
                        "INSERT INTO mfa_defaults (app, fingerprint, since) VALUES (?1, ?2, ?3)
                         ON CONFLICT (app) DO UPDATE SET fingerprint = ?2, since = ?3",
                        params![app, fingerprint, to_unix(now)],
                    )?;
                    now
                }
            };
            tx.commit()?;
            Ok(since)
        })
        .await
    }

    async fn set_mfa_opted_in(&self, user: &str, on: bool, now: SystemTime) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| Ok(set_user_column(conn, &user, "mfa_opted_in", on, now)?))
            .await
    }

    async fn email_address(&self, user: &str) -> StoreResult<Option<String>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let address: Option<Option<String>> = user_column(conn, &user, "email")?;
            Ok(address.flatten())
        })
        .await
    }

    async fn set_email_address(&self, user: &str, address: &str, now: SystemTime) -> StoreResult<()> {
        let (user, address) = (user.to_owned(), address.to_owned());
        self.run(move |conn| Ok(set_user_column(conn, &user, "email", address, now)?))
            .await
    }

    async fn preferred_method(&self, user: &str) -> StoreResult<Option<PreferredMethod>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let chosen: Option<Option<String>> = user_column(conn, &user, "preferred_method")?;
            Ok(chosen.flatten().as_deref().and_then(PreferredMethod::parse))
        })
        .await
    }

    async fn set_preferred_method(
        &self,
        user: &str,
        method: PreferredMethod,
        now: SystemTime,
    ) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| {
            Ok(set_user_column(
                conn,
                &user,
                "preferred_method",
                method.as_str(),
                now,
            )?)
        })
        .await
    }

    async fn open_enrolment(&self, user: &str, until: SystemTime, now: SystemTime) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| {
            Ok(set_user_column(
                conn,
                &user,
                "enrolment_open_until",
                to_unix(until),
                now,
            )?)
        })
        .await
    }

    async fn enrolment_open_until(&self, user: &str) -> StoreResult<Option<SystemTime>> {
        let user = user.to_owned();
        self.run(move |conn| {
            let until: Option<Option<i64>> = user_column(conn, &user, "enrolment_open_until")?;
            Ok(until.flatten().map(from_unix))
        })
        .await
    }

    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO audit (at, event, actor, subject, app, client, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![to_unix(e.at), e.event, e.actor, e.subject, e.app, e.client, e.outcome],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let query = query.clone();
        self.run(move |conn| {
            let mut statement = conn.prepare(
                "SELECT at, event, actor, subject, app, client, outcome FROM audit
                 WHERE (?1 IS NULL OR subject = ?1) AND at >= ?2
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
            let rows = statement
                .query_map(
                    params![query.subject, query.since.map_or(0, to_unix), limit],
                    |row| {
                        Ok(AuditEvent {
                            at: from_unix(row.get(0)?),
                            event: row.get(1)?,
                            actor: row.get(2)?,
                            subject: row.get(3)?,
                            app: row.get(4)?,
                            client: row.get(5)?,
                            outcome: row.get(6)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn users(&self) -> StoreResult<Vec<UserSummary>> {
        self.run(move |conn| {
            let mut statement = conn.prepare(
                "SELECT u.name,
                        (SELECT COUNT(*) FROM totp_devices d WHERE d.user_name = u.name),
                        (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_name = u.name AND r.used_at IS NULL),
                        (SELECT MAX(last_used_at) FROM totp_devices d WHERE d.user_name = u.name),
                        (SELECT locked_until FROM failures f WHERE f.subject = 'user:' || u.name)
                 FROM users u ORDER BY u.name",
            )?;
            let users = statement
                .query_map([], |row| {
                    Ok(UserSummary {
                        name: row.get(0)?,
                        devices: usize::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        recovery_codes_left: usize::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                        last_used_at: row.get::<_, Option<i64>>(3)?.map(from_unix),
                        locked_until: row.get::<_, Option<i64>>(4)?.map(from_unix),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(users)
        })
        .await
    }

    async fn reset_second_factor(&self, user: &str) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM totp_devices WHERE user_name = ?1", params![user])?;
            tx.execute("DELETE FROM recovery_codes WHERE user_name = ?1", params![user])?;
            tx.execute(
                "UPDATE users SET enrolment_open_until = NULL, preferred_method = NULL, email = NULL WHERE name = ?1",
                params![user],
            )?;
            tx.execute(
                "UPDATE sessions SET revoked = 1 WHERE user_name = ?1",
                params![user],
            )?;
            tx.execute("DELETE FROM trusted_devices WHERE user_name = ?1", params![user])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO sessions (id_hash, user_name, created_at, last_seen_at, second_factor_at, method, revoked, app)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id_hash.as_slice(),
                    s.user,
                    to_unix(s.created_at),
                    to_unix(s.last_seen_at),
                    s.second_factor_at.map(to_unix),
                    s.method.as_str(),
                    s.revoked,
                    s.app
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>> {
        self.run(move |conn| {
            let record = conn
                .query_row(
                    "SELECT s.user_name, s.created_at, s.last_seen_at, s.second_factor_at, s.method, s.revoked,
                            COALESCE(u.mfa_opted_in, 0), s.app
                     FROM sessions s LEFT JOIN users u ON u.name = s.user_name
                     WHERE s.id_hash = ?1",
                    params![id_hash.as_slice()],
                    |row| {
                        Ok(SessionRecord {
                            id_hash,
                            user: row.get(0)?,
                            created_at: from_unix(row.get(1)?),
                            last_seen_at: from_unix(row.get(2)?),
                            second_factor_at: row.get::<_, Option<i64>>(3)?.map(from_unix),
                            method: stored_method(row.get_ref(4)?.as_str()?)?,
                            revoked: row.get(5)?,
                            mfa_opted_in: row.get(6)?,
                            app: row.get(7)?,
                        })
                    },
                )
                .optional()?;
            Ok(record)
        })
        .await
    }

    async fn touch_session(&self, id_hash: [u8; 32], now: SystemTime) -> StoreResult<()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2",
                params![id_hash.as_slice(), to_unix(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id_hash: [u8; 32]) -> StoreResult<()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE sessions SET revoked = 1 WHERE id_hash = ?1",
                params![id_hash.as_slice()],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(&self, user: &str) -> StoreResult<usize> {
        let user = user.to_owned();
        self.run(move |conn| {
            Ok(conn.execute(
                "UPDATE sessions SET revoked = 1 WHERE user_name = ?1 AND revoked = 0",
                params![user],
            )?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let id = store
            .add_totp_device("alice", "Phone", vec![1, 2, 3], 100, at(0))
            .await
            .unwrap();
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_step_is_accepted_once_however_many_ask_at_the_same_time() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let id = store
            .add_totp_device("alice", "Phone", vec![0], 10, at(0))
            .await
            .unwrap();
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.accept_totp_step("alice", id, 11, at(1)).await.unwrap() })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            wins += usize::from(racer.await.unwrap());
        }
        assert_eq!(wins, 1);
        assert!(
            !store.accept_totp_step("alice", id, 9, at(2)).await.unwrap(),
            "older steps never pass"
        );
    }

    #[tokio::test]
    async fn recovery_codes_work_once_and_die_when_replaced() {
        let (_dir, store) = store();
        store
            .replace_recovery_codes("alice", vec!["h1".into(), "h2".into()], at(0))
            .await
            .unwrap();
        let codes = store.unused_recovery_codes("alice").await.unwrap();
        assert_eq!(codes.len(), 2);
        assert!(store
            .use_recovery_code("alice", codes[0].id, at(1))
            .await
            .unwrap());
        assert!(!store
            .use_recovery_code("alice", codes[0].id, at(2))
            .await
            .unwrap());
        assert!(
            !store.use_recovery_code("bob", codes[1].id, at(2)).await.unwrap(),
            "not bob's code"
        );
        assert_eq!(store.unused_recovery_codes("alice").await.unwrap().len(), 1);
        store
            .replace_recovery_codes("alice", vec!["h3".into()], at(3))
            .await
            .unwrap();
        let left = store.unused_recovery_codes("alice").await.unwrap();
        assert_eq!(left.iter().map(|c| c.phc.as_str()).collect::<Vec<_>>(), ["h3"]);
        assert!(!store
            .use_recovery_code("alice", codes[1].id, at(4))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_first_device_is_stored_once() {
        let (_dir, store) = store();
        let first = store
            .add_first_totp_device("alice", "Phone", vec![1], 5, at(0))
            .await
            .unwrap();
        assert!(first.is_some());
        let second = store
            .add_first_totp_device("alice", "Tablet", vec![2], 6, at(1))
            .await
            .unwrap();
        assert_eq!(second, None, "another enrolment came first");
        assert_eq!(store.totp_devices("alice").await.unwrap().len(), 1);
        assert_eq!(store.last_totp_step("alice").await.unwrap(), Some(5));
    }

    /// Many attempts at once: no more than the limit get through the check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_charges_never_pass_more_than_the_limit() {
        let (_dir, store) = store();
        let store = std::sync::Arc::new(store);
        let policy = LockoutPolicy::default();
        let attempts = (0..200).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .charge_attempt(&[(Subject::User("alice"), policy)], at(1))
                    .await
                    .unwrap()
                    .is_ok()
            })
        });
        let mut allowed = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            allowed += usize::from(attempt.await.unwrap());
        }
        assert_eq!(allowed, 10);
    }

    #[tokio::test]
    async fn failure_counters_persist_and_are_kept_apart() {
        let (dir, store) = store();
        let policy = LockoutPolicy::default();
        let alice = || [(Subject::User("alice"), policy)];
        for i in 0..10 {
            store.charge_attempt(&alice(), at(i)).await.unwrap().unwrap();
        }
        assert!(
            store.charge_attempt(&alice(), at(10)).await.unwrap().is_err(),
            "locked: the attempt is refused and not counted"
        );
        let address = Subject::Address("192.0.2.7".parse().unwrap());
        // Both or neither: a locked user means the address is not charged either.
        let both = [(Subject::User("alice"), policy), (address.clone(), policy)];
        assert!(store.charge_attempt(&both, at(10)).await.unwrap().is_err());
        assert_eq!(store.failures(address.clone()).await.unwrap().count, 0);
        let by_address = [(address.clone(), policy)];
        store.charge_attempt(&by_address, at(10)).await.unwrap().unwrap();
        let second = store.charge_attempt(&by_address, at(11)).await.unwrap().unwrap();
        store.refund_attempt(&by_address, second).await.unwrap();
        drop(store);
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let alice = store.failures(Subject::User("alice")).await.unwrap();
        assert_eq!(alice.count, 10);
        assert!(policy.locked_for(&alice, at(10)).is_some());
        assert_eq!(store.failures(address).await.unwrap().count, 1);
        store.reset_failures(Subject::User("alice")).await.unwrap();
        assert_eq!(
            store.failures(Subject::User("alice")).await.unwrap(),
            FailureRecord::default()
        );
    }

    #[tokio::test]
    async fn an_apps_mfa_default_is_dated_from_its_last_change() {
        let (_dir, store) = store();
        assert_eq!(
            store.mfa_default_since("wiki", "off", at(0)).await.unwrap(),
            at(0)
        );
        assert_eq!(
            store.mfa_default_since("wiki", "off", at(5)).await.unwrap(),
            at(0),
            "unchanged"
        );
        assert_eq!(
            store.mfa_default_since("crm", "off", at(6)).await.unwrap(),
            at(6),
            "per app"
        );
        assert_eq!(
            store.mfa_default_since("wiki", "required", at(9)).await.unwrap(),
            at(9)
        );
        assert_eq!(
            store.mfa_default_since("wiki", "required", at(20)).await.unwrap(),
            at(9)
        );
    }

    #[tokio::test]
    async fn sessions_are_found_by_hash_touched_and_revoked() {
        let (_dir, store) = store();
        let record = SessionRecord {
            id_hash: [7; 32],
            user: "alice".into(),
            app: "wiki".into(),
            created_at: at(0),
            last_seen_at: at(0),
            second_factor_at: Some(at(0)),
            method: SignInMethod::Totp,
            revoked: false,
            mfa_opted_in: false,
        };
        store.insert_session(&record).await.unwrap();
        store
            .insert_session(&SessionRecord {
                id_hash: [8; 32],
                ..record.clone()
            })
            .await
            .unwrap();
        assert_eq!(store.session([7; 32]).await.unwrap().as_ref(), Some(&record));
        store.touch_session([7; 32], at(60)).await.unwrap();
        store.touch_session([7; 32], at(30)).await.unwrap();
        assert_eq!(
            store.session([7; 32]).await.unwrap().unwrap().last_seen_at,
            at(60)
        );
        store.revoke_session([7; 32]).await.unwrap();
        assert!(store.session([7; 32]).await.unwrap().unwrap().revoked);
        assert_eq!(store.revoke_user_sessions("alice").await.unwrap(), 1);
        assert!(store.session([8; 32]).await.unwrap().unwrap().revoked);
        assert_eq!(store.session([9; 32]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_opened_enrolment_is_used_up_by_the_device_it_lets_in() {
        let (_dir, store) = store();
        assert_eq!(store.enrolment_open_until("alice").await.unwrap(), None);
        store.open_enrolment("alice", at(3600), at(0)).await.unwrap();
        assert_eq!(store.enrolment_open_until("alice").await.unwrap(), Some(at(3600)));
        store
            .add_totp_device("alice", "Phone", vec![1], 5, at(10))
            .await
            .unwrap();
        assert_eq!(store.enrolment_open_until("alice").await.unwrap(), None);
    }

    #[tokio::test]
    async fn devices_are_renamed_and_removed_only_by_their_owner() {
        let (_dir, store) = store();
        let phone = store
            .add_totp_device("alice", "Phone", vec![1], 5, at(0))
            .await
            .unwrap();
        store
            .add_totp_device("alice", "Tablet", vec![2], 6, at(0))
            .await
            .unwrap();
        assert!(
            !store
                .rename_device("alice", phone, "Tablet", vec![3])
                .await
                .unwrap(),
            "names are unique"
        );
        assert!(
            !store.rename_device("bob", phone, "Mine", vec![3]).await.unwrap(),
            "not bob's"
        );
        assert!(store
            .rename_device("alice", phone, "Work phone", vec![9])
            .await
            .unwrap());
        let devices = store.totp_devices("alice").await.unwrap();
        assert_eq!(
            (devices[0].name.as_str(), devices[0].sealed_secret.as_slice()),
            ("Work phone", &[9][..])
        );
        assert!(!store.remove_device("bob", phone).await.unwrap());
        assert!(store.remove_device("alice", phone).await.unwrap());
        assert_eq!(store.totp_devices("alice").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_audit_trail_only_grows() {
        let (dir, store) = store();
        let event = |n: u64, subject: &str| AuditEvent {
            at: at(n),
            event: "login_ok".into(),
            actor: subject.into(),
            subject: subject.into(),
            app: Some("wiki".into()),
            client: Some("192.0.2.1".into()),
            outcome: "ok".into(),
        };
        for (n, who) in [(1, "alice"), (2, "bob"), (3, "alice")] {
            store.record(&event(n, who)).await.unwrap();
        }
        let query = AuditQuery {
            subject: Some("alice".into()),
            since: None,
            limit: 10,
        };
        let rows = store.audit(&query).await.unwrap();
        assert_eq!(rows, [event(3, "alice"), event(1, "alice")], "newest first");
        let since = AuditQuery {
            subject: None,
            since: Some(at(2)),
            limit: 10,
        };
        assert_eq!(store.audit(&since).await.unwrap().len(), 2);
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        assert!(
            conn.execute("UPDATE audit SET outcome = 'ok'", []).is_err(),
            "no edits"
        );
        assert!(conn.execute("DELETE FROM audit", []).is_err(), "no deletions");
    }

    #[tokio::test]
    async fn a_reset_removes_every_factor_revokes_sessions_and_forgets_browsers() {
        let (_dir, store) = store();
        store
            .add_totp_device("alice", "Phone", vec![1], 5, at(0))
            .await
            .unwrap();
        store
            .replace_recovery_codes("alice", vec!["h".into()], at(0))
            .await
            .unwrap();
        let session = SessionRecord {
            id_hash: [1; 32],
            user: "alice".into(),
            app: "wiki".into(),
            created_at: at(0),
            last_seen_at: at(0),
            second_factor_at: Some(at(0)),
            method: SignInMethod::Totp,
            revoked: false,
            mfa_opted_in: false,
        };
        store.insert_session(&session).await.unwrap();
        store
            .trust_device([2; 32], "alice", at(0), at(1000))
            .await
            .unwrap();
        store
            .set_email_address("alice", "alice@example.org", at(0))
            .await
            .unwrap();
        store
            .set_preferred_method("alice", PreferredMethod::Email, at(0))
            .await
            .unwrap();
        store
            .add_totp_device("alice", "Tablet", vec![2], 6, at(1))
            .await
            .unwrap();
        assert_eq!(
            (
                store.email_address("alice").await.unwrap().as_deref(),
                store.preferred_method("alice").await.unwrap()
            ),
            (Some("alice@example.org"), Some(PreferredMethod::Email)),
            "a new device keeps the user's other choices"
        );
        assert!(store.trusted_device([2; 32], at(1)).await.unwrap().is_some());
        assert!(
            store.trusted_device([2; 32], at(1000)).await.unwrap().is_none(),
            "a remembered browser expires"
        );
        let before = store.users().await.unwrap();
        assert_eq!((before[0].devices, before[0].recovery_codes_left), (2, 1));
        store.reset_second_factor("alice").await.unwrap();
        let after = store.users().await.unwrap();
        assert_eq!((after[0].devices, after[0].recovery_codes_left), (0, 0));
        assert!(store.session([1; 32]).await.unwrap().unwrap().revoked);
        assert!(
            store.trusted_device([2; 32], at(1)).await.unwrap().is_none(),
            "remembered browsers are forgotten"
        );
        assert_eq!(
            store.email_address("alice").await.unwrap(),
            None,
            "the e-mail method goes too"
        );
        assert_eq!(store.preferred_method("alice").await.unwrap(), None);
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
