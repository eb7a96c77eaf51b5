//! The `Store` trait on PostgreSQL. A transaction that reads before it writes
//! first locks what it reads (`FOR UPDATE` on the user's row or the counters), so
//! racing requests, on one gateway or several, see each other's writes.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::PostgresStore;
use crate::factors::lockout::{Charge, FailureRecord, LockoutPolicy};
use crate::store::columns::{from_unix, step_from_db, step_to_db, stored_method, to_unix};
use crate::store::{
    AuditEvent, AuditQuery, DeviceAdded, DeviceRemoval, PreferredMethod, Revocation, RevocationHandler,
    SecurityKeyRecord, SessionRecord, Store, StoreError, StoreResult, StoredAppPassword, StoredRecoveryCode,
    Subject, TotpDevice, Transient, TransientKind, UserSummary,
};

/// Creates the user's row if need be and locks it until the transaction ends: the
/// one place a user's devices and codes are changed from, one change at a time.
async fn lock_user(tx: &impl GenericClient, user: &str, now: SystemTime) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&user, &to_unix(now)],
    )
    .await?;
    tx.execute("SELECT 1 FROM users WHERE name = $1 FOR UPDATE", &[&user])
        .await?;
    Ok(())
}

/// Locks the failure counters of `keys` (creating empty ones), in one order
/// whatever order they are asked in, so two charges never wait on each other.
async fn lock_failures(tx: &impl GenericClient, keys: &[String]) -> StoreResult<()> {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    for key in sorted {
        tx.execute(
            "INSERT INTO failures (subject, count) VALUES ($1, 0) ON CONFLICT (subject) DO NOTHING",
            &[key],
        )
        .await?;
        tx.execute("SELECT 1 FROM failures WHERE subject = $1 FOR UPDATE", &[key])
            .await?;
    }
    Ok(())
}

async fn read_failures(client: &impl GenericClient, key: &str) -> StoreResult<FailureRecord> {
    let row = client
        .query_opt(
            "SELECT count, last_failure, locked_until FROM failures WHERE subject = $1",
            &[&key],
        )
        .await?;
    Ok(row.map_or_else(FailureRecord::default, |row| FailureRecord {
        count: u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX),
        last_failure: row.get::<_, Option<i64>>(1).map(from_unix),
        locked_until: row.get::<_, Option<i64>>(2).map(from_unix),
    }))
}

async fn write_failures(tx: &impl GenericClient, key: &str, record: &FailureRecord) -> StoreResult<()> {
    tx.execute(
        "UPDATE failures SET count = $2, last_failure = $3, locked_until = $4 WHERE subject = $1",
        &[
            &key,
            &i64::from(record.count),
            &record.last_failure.map(to_unix),
            &record.locked_until.map(to_unix),
        ],
    )
    .await?;
    Ok(())
}

/// Sets one column of the user's row, creating the row if need be. `column` is
/// always a constant of this file, never input.
async fn set_user_column<T>(
    store: &PostgresStore,
    user: &str,
    column: &'static str,
    value: T,
    now: SystemTime,
) -> StoreResult<()>
where
    T: tokio_postgres::types::ToSql + Sync + Send + 'static,
{
    let user = user.to_owned();
    store
        .run(move |client| async move {
            client
                .execute(
                    &format!(
                        "INSERT INTO users (name, created_at, {column}) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO UPDATE SET {column} = EXCLUDED.{column}"
                    ),
                    &[&user, &to_unix(now), &value],
                )
                .await?;
            Ok(())
        })
        .await
}

/// One column of the user's row; `None` when the user has no row yet.
async fn user_column<T>(store: &PostgresStore, user: &str, column: &'static str) -> StoreResult<Option<T>>
where
    T: for<'a> tokio_postgres::types::FromSql<'a> + Send + 'static,
{
    let user = user.to_owned();
    store
        .run(move |client| async move {
            let row = client
                .query_opt(&format!("SELECT {column} FROM users WHERE name = $1"), &[&user])
                .await?;
            Ok(row.map(|row| row.get::<_, T>(0)))
        })
        .await
}

fn session_from(id_hash: [u8; 32], row: &Row) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id_hash,
        user: row.get(0),
        created_at: from_unix(row.get(1)),
        last_seen_at: from_unix(row.get(2)),
        second_factor_at: row.get::<_, Option<i64>>(3).map(from_unix),
        method: stored_method(row.get(4)).map_err(|why| StoreError::Database(why.into()))?,
        revoked: row.get(5),
        mfa_opted_in: row.get(6),
        app: row.get(7),
    })
}

/// Tells every gateway listening (`PostgresStore::listen`) of a revocation; sent
/// by PostgreSQL when the transaction commits, never for one that rolls back.
async fn announce(tx: &impl GenericClient, revocation: &Revocation) -> StoreResult<()> {
    let Some(payload) = super::notification_payload(revocation) else {
        return Ok(());
    };
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&super::REVOCATION_CHANNEL, &payload],
    )
    .await?;
    Ok(())
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Store for PostgresStore {
    async fn add_totp_device(
        &self,
        user: &str,
        name: &str,
        sealed_secret: Vec<u8>,
        confirmed_step: u64,
        now: SystemTime,
        at_most: usize,
    ) -> StoreResult<DeviceAdded> {
        let (user, name) = (user.to_owned(), name.to_owned());
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &user, now).await?;
            let row = tx
                .query_one(
                    "SELECT COUNT(*) + (SELECT COUNT(*) FROM security_keys WHERE user_name = $1),
                            COUNT(*) FILTER (WHERE name = $2)
                     FROM totp_devices WHERE user_name = $1",
                    &[&user, &name],
                )
                .await?;
            let (existing, same_name): (i64, i64) = (row.get(0), row.get(1));
            if count(existing) >= at_most {
                return Ok(DeviceAdded::LimitReached);
            }
            if same_name > 0 {
                return Ok(DeviceAdded::NameTaken);
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO totp_devices (user_name, name, sealed_secret, created_at, last_used_at)
                     VALUES ($1, $2, $3, $4, $4) RETURNING id",
                    &[&user, &name, &sealed_secret, &to_unix(now)],
                )
                .await?
                .get(0);
            // An opened enrolment is used up by the device it let in; the first code
            // counts as used.
            tx.execute(
                "UPDATE users SET enrolment_open_until = NULL,
                     last_totp_step = GREATEST(COALESCE(last_totp_step, $2), $2)
                 WHERE name = $1",
                &[&user, &step_to_db(confirmed_step)],
            )
            .await?;
            tx.commit().await?;
            Ok(DeviceAdded::Added(id))
        })
        .await
    }

    async fn totp_devices(&self, user: &str) -> StoreResult<Vec<TotpDevice>> {
        let user = user.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, user_name, name, sealed_secret, created_at, last_used_at
                     FROM totp_devices WHERE user_name = $1 ORDER BY id",
                    &[&user],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| TotpDevice {
                    id: row.get(0),
                    user: row.get(1),
                    name: row.get(2),
                    sealed_secret: row.get(3),
                    created_at: from_unix(row.get(4)),
                    last_used_at: row.get::<_, Option<i64>>(5).map(from_unix),
                })
                .collect())
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
        self.run(move |client| async move {
            // The unique (user, name) constraint settles a race for one name; the
            // condition turns the common case into "false" rather than an error.
            let changed = client
                .execute(
                    "UPDATE totp_devices SET name = $3, sealed_secret = $4
                     WHERE id = $1 AND user_name = $2
                       AND NOT EXISTS (SELECT 1 FROM totp_devices WHERE user_name = $2 AND name = $3)",
                    &[&id, &user, &name, &sealed_secret],
                )
                .await;
            match changed {
                Ok(n) => Ok(n == 1),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn reseal_device(&self, user: &str, id: i64, sealed_secret: Vec<u8>) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE totp_devices SET sealed_secret = $3 WHERE id = $1 AND user_name = $2",
                    &[&id, &user, &sealed_secret],
                )
                .await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn remove_device(&self, user: &str, id: i64, keep_one: bool) -> StoreResult<DeviceRemoval> {
        let user = user.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let Some(_) = tx
                .query_opt("SELECT 1 FROM users WHERE name = $1 FOR UPDATE", &[&user])
                .await?
            else {
                return Ok(DeviceRemoval::NoSuchDevice);
            };
            let row = tx
                .query_one(
                    "SELECT COUNT(*) + (SELECT COUNT(*) FROM security_keys WHERE user_name = $1),
                            COUNT(*) FILTER (WHERE id = $2)
                     FROM totp_devices WHERE user_name = $1",
                    &[&user, &id],
                )
                .await?;
            let (devices, owned): (i64, i64) = (row.get(0), row.get(1));
            if owned == 0 {
                return Ok(DeviceRemoval::NoSuchDevice);
            }
            if keep_one && devices <= 1 {
                return Ok(DeviceRemoval::LastOne);
            }
            tx.execute(
                "DELETE FROM totp_devices WHERE id = $1 AND user_name = $2",
                &[&id, &user],
            )
            .await?;
            tx.commit().await?;
            Ok(DeviceRemoval::Removed)
        })
        .await
    }

    async fn signal_seen(
        &self,
        user: &str,
        kind: &str,
        value: [u8; 32],
        since: SystemTime,
    ) -> StoreResult<Option<bool>> {
        let (user, kind) = (user.to_owned(), kind.to_owned());
        self.run(move |client| async move {
            let row = client
                .query_one(
                    "SELECT COUNT(*),
                            COUNT(*) FILTER (WHERE kind = $2 AND value = $3 AND last_seen >= $4)
                     FROM sign_in_signals WHERE user_name = $1",
                    &[&user, &kind, &value.as_slice(), &to_unix(since)],
                )
                .await?;
            let (any, seen): (i64, i64) = (row.get(0), row.get(1));
            Ok((any > 0).then_some(seen > 0))
        })
        .await
    }

    async fn note_signal(&self, user: &str, kind: &str, value: [u8; 32], now: SystemTime) -> StoreResult<()> {
        let (user, kind) = (user.to_owned(), kind.to_owned());
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO sign_in_signals (user_name, kind, value, last_seen) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_name, kind, value) DO UPDATE SET last_seen = EXCLUDED.last_seen",
                    &[&user, &kind, &value.as_slice(), &to_unix(now)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn forget_signals(&self, user: &str, before: SystemTime) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |client| async move {
            client
                .execute(
                    "DELETE FROM sign_in_signals WHERE user_name = $1 AND last_seen < $2",
                    &[&user, &to_unix(before)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn add_security_key(&self, key: &SecurityKeyRecord, at_most: usize) -> StoreResult<DeviceAdded> {
        let key = key.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &key.user, key.created_at).await?;
            let row = tx
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_name = $1)
                          + (SELECT COUNT(*) FROM security_keys WHERE user_name = $1),
                            (SELECT COUNT(*) FROM security_keys WHERE user_name = $1 AND name = $2),
                            (SELECT COUNT(*) FROM security_keys WHERE credential_id = $3)",
                    &[&key.user, &key.name, &key.credential_id],
                )
                .await?;
            let (devices, same_name, taken): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if taken > 0 {
                return Ok(DeviceAdded::CredentialTaken);
            }
            if count(devices) >= at_most {
                return Ok(DeviceAdded::LimitReached);
            }
            if same_name > 0 {
                return Ok(DeviceAdded::NameTaken);
            }
            // Another user registering the same key at this moment: the unique
            // credential id decides, and the loser is told it is taken.
            let inserted = tx
                .query_opt(
                    "INSERT INTO security_keys (user_name, name, credential_id, rp_id, credential, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (credential_id) DO NOTHING RETURNING id",
                    &[
                        &key.user,
                        &key.name,
                        &key.credential_id,
                        &key.rp_id,
                        &key.credential,
                        &to_unix(key.created_at),
                    ],
                )
                .await?;
            let Some(row) = inserted else {
                return Ok(DeviceAdded::CredentialTaken);
            };
            let id: i64 = row.get(0);
            tx.execute(
                "UPDATE users SET enrolment_open_until = NULL WHERE name = $1",
                &[&key.user],
            )
            .await?;
            tx.commit().await?;
            Ok(DeviceAdded::Added(id))
        })
        .await
    }

    async fn security_keys(&self, user: &str) -> StoreResult<Vec<SecurityKeyRecord>> {
        let user = user.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, user_name, name, credential_id, rp_id, credential, created_at, last_used_at
                     FROM security_keys WHERE user_name = $1 ORDER BY id",
                    &[&user],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| SecurityKeyRecord {
                    id: row.get(0),
                    user: row.get(1),
                    name: row.get(2),
                    credential_id: row.get(3),
                    rp_id: row.get(4),
                    credential: row.get(5),
                    created_at: from_unix(row.get(6)),
                    last_used_at: row.get::<_, Option<i64>>(7).map(from_unix),
                })
                .collect())
        })
        .await
    }

    async fn security_key_used(
        &self,
        user: &str,
        id: i64,
        previous: &[u8],
        credential: Vec<u8>,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let (user, previous) = (user.to_owned(), previous.to_vec());
        self.run(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE security_keys SET credential = $3, last_used_at = $4
                     WHERE id = $1 AND user_name = $2 AND credential = $5",
                    &[&id, &user, &credential, &to_unix(now), &previous],
                )
                .await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn remove_security_key(&self, user: &str, id: i64, keep_one: bool) -> StoreResult<DeviceRemoval> {
        let user = user.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let Some(_) = tx
                .query_opt("SELECT 1 FROM users WHERE name = $1 FOR UPDATE", &[&user])
                .await?
            else {
                return Ok(DeviceRemoval::NoSuchDevice);
            };
            let row = tx
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_name = $1)
                          + (SELECT COUNT(*) FROM security_keys WHERE user_name = $1),
                            (SELECT COUNT(*) FROM security_keys WHERE id = $2 AND user_name = $1)",
                    &[&user, &id],
                )
                .await?;
            let (devices, owned): (i64, i64) = (row.get(0), row.get(1));
            if owned == 0 {
                return Ok(DeviceRemoval::NoSuchDevice);
            }
            if keep_one && devices <= 1 {
                return Ok(DeviceRemoval::LastOne);
            }
            tx.execute(
                "DELETE FROM security_keys WHERE id = $1 AND user_name = $2",
                &[&id, &user],
            )
            .await?;
            tx.commit().await?;
            Ok(DeviceRemoval::Removed)
        })
        .await
    }

    async fn last_totp_step(&self, user: &str) -> StoreResult<Option<u64>> {
        let step: Option<Option<i64>> = user_column(self, user, "last_totp_step").await?;
        Ok(step.flatten().and_then(step_from_db))
    }

    async fn accept_totp_step(
        &self,
        user: &str,
        device_id: i64,
        step: u64,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            // Under READ COMMITTED a second UPDATE of the row waits for the first
            // to commit, then tests the condition again on what it wrote: one wins.
            let changed = tx
                .execute(
                    "UPDATE users SET last_totp_step = $2
                     WHERE name = $1 AND (last_totp_step IS NULL OR last_totp_step < $2)",
                    &[&user, &step_to_db(step)],
                )
                .await?;
            if changed == 1 {
                tx.execute(
                    "UPDATE totp_devices SET last_used_at = $3 WHERE id = $1 AND user_name = $2",
                    &[&device_id, &user, &to_unix(now)],
                )
                .await?;
            }
            tx.commit().await?;
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
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &user, now).await?;
            tx.execute("DELETE FROM recovery_codes WHERE user_name = $1", &[&user])
                .await?;
            for phc in &phcs {
                tx.execute(
                    "INSERT INTO recovery_codes (user_name, phc, created_at) VALUES ($1, $2, $3)",
                    &[&user, phc, &to_unix(now)],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn unused_recovery_codes(&self, user: &str) -> StoreResult<Vec<StoredRecoveryCode>> {
        let user = user.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, phc FROM recovery_codes WHERE user_name = $1 AND used_at IS NULL ORDER BY id",
                    &[&user],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| StoredRecoveryCode {
                    id: row.get(0),
                    phc: row.get(1),
                })
                .collect())
        })
        .await
    }

    async fn use_recovery_code(&self, user: &str, id: i64, now: SystemTime) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE recovery_codes SET used_at = $3 WHERE id = $1 AND user_name = $2 AND used_at IS NULL",
                    &[&id, &user, &to_unix(now)],
                )
                .await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn failures(&self, subject: Subject<'_>) -> StoreResult<FailureRecord> {
        let key = subject.key();
        self.run(move |client| async move { read_failures(&client, &key).await })
            .await
    }

    async fn charge_attempt(
        &self,
        subjects: &[(Subject<'_>, LockoutPolicy)],
        now: SystemTime,
    ) -> StoreResult<Result<Vec<Charge>, Duration>> {
        let subjects: Vec<(String, LockoutPolicy)> = subjects.iter().map(|(s, p)| (s.key(), *p)).collect();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let keys: Vec<String> = subjects.iter().map(|(k, _)| k.clone()).collect();
            lock_failures(&tx, &keys).await?;
            let mut charges = Vec::with_capacity(subjects.len());
            for (key, policy) in &subjects {
                let before = read_failures(&tx, key).await?;
                match policy.charge(&before, now) {
                    Ok(after) => charges.push(Charge { before, after }),
                    // Dropping the transaction counts nothing anywhere.
                    Err(wait) => return Ok(Err(wait)),
                }
            }
            for ((key, _), charge) in subjects.iter().zip(&charges) {
                write_failures(&tx, key, &charge.after).await?;
            }
            tx.commit().await?;
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
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let keys: Vec<String> = subjects.iter().map(|(k, _)| k.clone()).collect();
            lock_failures(&tx, &keys).await?;
            for ((key, policy), charge) in subjects.iter().zip(&charges) {
                let refunded = policy.refund(&read_failures(&tx, key).await?, charge);
                write_failures(&tx, key, &refunded).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn reset_failures(&self, subject: Subject<'_>) -> StoreResult<()> {
        let key = subject.key();
        self.run(move |client| async move {
            client
                .execute("DELETE FROM failures WHERE subject = $1", &[&key])
                .await?;
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
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO trusted_devices (id_hash, user_name, passed_at, expires_at) VALUES ($1, $2, $3, $4)",
                    &[&id_hash.as_slice(), &user, &to_unix(passed_at), &to_unix(until)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn trusted_device(
        &self,
        id_hash: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<(String, SystemTime)>> {
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT user_name, passed_at FROM trusted_devices WHERE id_hash = $1 AND expires_at > $2",
                    &[&id_hash.as_slice(), &to_unix(now)],
                )
                .await?;
            Ok(row.map(|row| (row.get::<_, String>(0), from_unix(row.get(1)))))
        })
        .await
    }

    async fn forget_trusted_devices(&self, user: &str) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |client| async move {
            client
                .execute("DELETE FROM trusted_devices WHERE user_name = $1", &[&user])
                .await?;
            Ok(())
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
        self.run(move |client| async move {
            // One statement: gateways starting together agree on one date.
            let row = client
                .query_one(
                    "INSERT INTO mfa_defaults AS d (app, fingerprint, since) VALUES ($1, $2, $3)
                     ON CONFLICT (app) DO UPDATE SET
                         since = CASE WHEN d.fingerprint = EXCLUDED.fingerprint THEN d.since ELSE EXCLUDED.since END,
                         fingerprint = EXCLUDED.fingerprint
                     RETURNING since",
                    &[&app, &fingerprint, &to_unix(now)],
                )
                .await?;
            Ok(from_unix(row.get(0)))
        })
        .await
    }

    async fn mfa_opted_in(&self, user: &str) -> StoreResult<bool> {
        Ok(user_column(self, user, "mfa_opted_in").await?.unwrap_or(false))
    }

    async fn set_mfa_opted_in(&self, user: &str, on: bool, now: SystemTime) -> StoreResult<()> {
        set_user_column(self, user, "mfa_opted_in", on, now).await?;
        // Cached sessions carry the choice: every gateway reads it again.
        let user = user.to_owned();
        self.run(move |client| async move { announce(&client, &Revocation::User(user)).await })
            .await
    }

    async fn email_address(&self, user: &str) -> StoreResult<Option<String>> {
        let address: Option<Option<String>> = user_column(self, user, "email").await?;
        Ok(address.flatten())
    }

    async fn set_email_address(&self, user: &str, address: &str, now: SystemTime) -> StoreResult<()> {
        set_user_column(self, user, "email", address.to_owned(), now).await
    }

    async fn phone_number(&self, user: &str) -> StoreResult<Option<String>> {
        let number: Option<Option<String>> = user_column(self, user, "phone").await?;
        Ok(number.flatten())
    }

    async fn set_phone_number(&self, user: &str, number: Option<&str>, now: SystemTime) -> StoreResult<()> {
        set_user_column(self, user, "phone", number.map(str::to_owned), now).await
    }

    async fn preferred_method(&self, user: &str) -> StoreResult<Option<PreferredMethod>> {
        let chosen: Option<Option<String>> = user_column(self, user, "preferred_method").await?;
        Ok(chosen.flatten().as_deref().and_then(PreferredMethod::parse))
    }

    async fn set_preferred_method(
        &self,
        user: &str,
        method: PreferredMethod,
        now: SystemTime,
    ) -> StoreResult<()> {
        set_user_column(self, user, "preferred_method", method.as_str(), now).await
    }

    async fn open_enrolment(&self, user: &str, until: SystemTime, now: SystemTime) -> StoreResult<()> {
        set_user_column(self, user, "enrolment_open_until", to_unix(until), now).await
    }

    async fn enrolment_open_until(&self, user: &str) -> StoreResult<Option<SystemTime>> {
        let until: Option<Option<i64>> = user_column(self, user, "enrolment_open_until").await?;
        Ok(until.flatten().map(from_unix))
    }

    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO audit (at, event, actor, subject, app, client, outcome)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &to_unix(e.at),
                        &e.event,
                        &e.actor,
                        &e.subject,
                        &e.app,
                        &e.client,
                        &e.outcome,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let query = query.clone();
        self.run(move |client| async move {
            let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    "SELECT at, event, actor, subject, app, client, outcome FROM audit
                     WHERE ($1::TEXT IS NULL OR subject = $1) AND at >= $2
                     ORDER BY id DESC LIMIT $3",
                    &[&query.subject, &query.since.map_or(0, to_unix), &limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| AuditEvent {
                    at: from_unix(row.get(0)),
                    event: row.get(1),
                    actor: row.get(2),
                    subject: row.get(3),
                    app: row.get(4),
                    client: row.get(5),
                    outcome: row.get(6),
                })
                .collect())
        })
        .await
    }

    async fn users(&self) -> StoreResult<Vec<UserSummary>> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT u.name,
                        (SELECT COUNT(*) FROM totp_devices d WHERE d.user_name = u.name)
                          + (SELECT COUNT(*) FROM security_keys k WHERE k.user_name = u.name),
                        (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_name = u.name AND r.used_at IS NULL),
                        GREATEST((SELECT MAX(last_used_at) FROM totp_devices d WHERE d.user_name = u.name),
                                 (SELECT MAX(last_used_at) FROM security_keys k WHERE k.user_name = u.name)),
                        (SELECT locked_until FROM failures f WHERE f.subject = 'user:' || u.name)
                     FROM users u ORDER BY u.name",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| UserSummary {
                    name: row.get(0),
                    devices: count(row.get(1)),
                    recovery_codes_left: count(row.get(2)),
                    last_used_at: row.get::<_, Option<i64>>(3).map(from_unix),
                    locked_until: row.get::<_, Option<i64>>(4).map(from_unix),
                })
                .collect())
        })
        .await
    }

    async fn reset_second_factor(&self, user: &str) -> StoreResult<()> {
        let user = user.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT 1 FROM users WHERE name = $1 FOR UPDATE", &[&user])
                .await?;
            tx.execute("DELETE FROM totp_devices WHERE user_name = $1", &[&user])
                .await?;
            tx.execute("DELETE FROM security_keys WHERE user_name = $1", &[&user])
                .await?;
            tx.execute("DELETE FROM recovery_codes WHERE user_name = $1", &[&user])
                .await?;
            tx.execute("DELETE FROM app_passwords WHERE user_name = $1", &[&user])
                .await?;
            tx.execute(
                "UPDATE users SET enrolment_open_until = NULL, preferred_method = NULL, email = NULL, phone = NULL WHERE name = $1",
                &[&user],
            )
            .await?;
            tx.execute("UPDATE sessions SET revoked = TRUE WHERE user_name = $1", &[&user])
                .await?;
            tx.execute("DELETE FROM trusted_devices WHERE user_name = $1", &[&user])
                .await?;
            announce(&tx, &Revocation::User(user)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn add_app_password(&self, entry: &StoredAppPassword, at_most: usize) -> StoreResult<Option<i64>> {
        let e = entry.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            lock_user(&tx, &e.user, e.created_at).await?;
            let held: i64 = tx
                .query_one("SELECT COUNT(*) FROM app_passwords WHERE user_name = $1", &[&e.user])
                .await?
                .get(0);
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM app_passwords WHERE user_name = $1 AND app = $2 AND name = $3)",
                    &[&e.user, &e.app, &e.name],
                )
                .await?
                .get(0);
            if taken || count(held) >= at_most {
                return Ok(None);
            }
            let id: i64 = tx
                .query_one(
                    "INSERT INTO app_passwords (user_name, app, name, phc, sealed_secret, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&e.user, &e.app, &e.name, &e.phc, &e.sealed_secret, &to_unix(e.created_at)],
                )
                .await?
                .get(0);
            tx.commit().await?;
            Ok(Some(id))
        })
        .await
    }

    async fn app_passwords(&self, user: Option<&str>) -> StoreResult<Vec<StoredAppPassword>> {
        let user = user.map(str::to_owned);
        self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, user_name, app, name, phc, sealed_secret, created_at, last_used_at, app_refused
                     FROM app_passwords WHERE $1::TEXT IS NULL OR user_name = $1 ORDER BY id",
                    &[&user],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| StoredAppPassword {
                    id: row.get(0),
                    user: row.get(1),
                    app: row.get(2),
                    name: row.get(3),
                    phc: row.get(4),
                    sealed_secret: row.get(5),
                    created_at: from_unix(row.get(6)),
                    last_used_at: row.get::<_, Option<i64>>(7).map(from_unix),
                    app_refused: row.get(8),
                })
                .collect())
        })
        .await
    }

    async fn note_app_password_use(&self, id: i64, now: SystemTime, app_refused: bool) -> StoreResult<()> {
        self.run(move |client| async move {
            client
                .execute(
                    "UPDATE app_passwords SET last_used_at = $2, app_refused = $3 WHERE id = $1",
                    &[&id, &to_unix(now), &app_refused],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn remove_app_password(&self, user: &str, id: i64) -> StoreResult<bool> {
        let user = user.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "DELETE FROM app_passwords WHERE id = $1 AND user_name = $2",
                    &[&id, &user],
                )
                .await?;
            announce(&tx, &Revocation::User(user)).await?;
            tx.commit().await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO sessions (id_hash, user_name, created_at, last_seen_at, second_factor_at, method, revoked, app)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &s.id_hash.as_slice(),
                        &s.user,
                        &to_unix(s.created_at),
                        &to_unix(s.last_seen_at),
                        &s.second_factor_at.map(to_unix),
                        &s.method.as_str(),
                        &s.revoked,
                        &s.app,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>> {
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT s.user_name, s.created_at, s.last_seen_at, s.second_factor_at, s.method, s.revoked,
                            COALESCE(u.mfa_opted_in, FALSE), s.app
                     FROM sessions s LEFT JOIN users u ON u.name = s.user_name
                     WHERE s.id_hash = $1",
                    &[&id_hash.as_slice()],
                )
                .await?;
            row.map(|row| session_from(id_hash, &row)).transpose()
        })
        .await
    }

    async fn touch_sessions(&self, touches: &[([u8; 32], SystemTime)]) -> StoreResult<()> {
        let hashes: Vec<Vec<u8>> = touches.iter().map(|(h, _)| h.to_vec()).collect();
        let times: Vec<i64> = touches.iter().map(|(_, at)| to_unix(*at)).collect();
        self.run(move |client| async move {
            client
                .execute(
                    "UPDATE sessions s SET last_seen_at = t.at
                     FROM (SELECT h, MAX(at) AS at FROM unnest($1::BYTEA[], $2::BIGINT[]) AS u(h, at) GROUP BY h) t
                     WHERE s.id_hash = t.h AND s.last_seen_at < t.at",
                    &[&hashes, &times],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id_hash: [u8; 32]) -> StoreResult<()> {
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                "UPDATE sessions SET revoked = TRUE WHERE id_hash = $1",
                &[&id_hash.as_slice()],
            )
            .await?;
            announce(&tx, &Revocation::Session(id_hash)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn revoke_user_sessions(&self, user: &str) -> StoreResult<usize> {
        let user = user.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let changed = tx
                .execute(
                    "UPDATE sessions SET revoked = TRUE WHERE user_name = $1 AND revoked = FALSE",
                    &[&user],
                )
                .await?;
            announce(&tx, &Revocation::User(user)).await?;
            tx.commit().await?;
            Ok(usize::try_from(changed).unwrap_or(usize::MAX))
        })
        .await
    }

    fn watch_revocations(&self, on: RevocationHandler) -> bool {
        self.listen(on);
        true
    }

    async fn put_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        sealed: Vec<u8>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> StoreResult<()> {
        self.run(move |client| async move {
            client
                .execute(
                    "DELETE FROM transient WHERE expires_at <= $1",
                    &[&to_unix(now)],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO transient AS t (kind, key, sealed, version, expires_at) VALUES ($1, $2, $3, 0, $4)
                     ON CONFLICT (kind, key) DO UPDATE SET
                         sealed = EXCLUDED.sealed, version = t.version + 1, expires_at = EXCLUDED.expires_at",
                    &[&kind.as_str(), &key.as_slice(), &sealed, &to_unix(expires_at)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<Transient>> {
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT sealed, version FROM transient WHERE kind = $1 AND key = $2 AND expires_at > $3",
                    &[&kind.as_str(), &key.as_slice(), &to_unix(now)],
                )
                .await?;
            Ok(row.map(|row| Transient {
                sealed: row.get(0),
                version: row.get(1),
            }))
        })
        .await
    }

    async fn replace_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        version: i64,
        sealed: Vec<u8>,
    ) -> StoreResult<bool> {
        self.run(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE transient SET sealed = $4, version = version + 1
                     WHERE kind = $1 AND key = $2 AND version = $3",
                    &[&kind.as_str(), &key.as_slice(), &version, &sealed],
                )
                .await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn take_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    "DELETE FROM transient WHERE kind = $1 AND key = $2 RETURNING sealed, expires_at",
                    &[&kind.as_str(), &key.as_slice()],
                )
                .await?;
            Ok(row
                .filter(|row| row.get::<_, i64>(1) > to_unix(now))
                .map(|row| row.get(0)))
        })
        .await
    }
}
