//! The `Store` trait on SQLite: reads go to the read pool, everything that writes
//! to the single writer, each in one transaction where it must happen whole.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::rows::*;
use super::SqliteStore;
use crate::factors::lockout::{Charge, FailureRecord, LockoutPolicy};
use crate::store::{
    AuditEvent, AuditQuery, DeviceAdded, DeviceRemoval, PreferredMethod, SecurityKeyRecord, SessionRecord,
    Store, StoreResult, StoredAppPassword, StoredRecoveryCode, Subject, TotpDevice, Transient, TransientKind,
    UserSummary,
};

#[async_trait]
impl Store for SqliteStore {
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
        self.write(move |conn| {
            Ok(add_device(
                conn,
                &user,
                &name,
                sealed_secret,
                confirmed_step,
                now,
                at_most,
            )?)
        })
        .await
    }

    async fn totp_devices(&self, user: &str) -> StoreResult<Vec<TotpDevice>> {
        let user = user.to_owned();
        self.read(move |conn| {
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
        self.write(move |conn| {
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

    async fn reseal_device(&self, user: &str, id: i64, sealed_secret: Vec<u8>) -> StoreResult<bool> {
        let user = user.to_owned();
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE totp_devices SET sealed_secret = ?3 WHERE id = ?1 AND user_name = ?2",
                params![id, user, sealed_secret],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn remove_device(&self, user: &str, id: i64, keep_one: bool) -> StoreResult<DeviceRemoval> {
        let user = user.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let devices: i64 = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_name = ?1)
                      + (SELECT COUNT(*) FROM security_keys WHERE user_name = ?1)",
                params![user],
                |row| row.get(0),
            )?;
            let owned: i64 = tx.query_row(
                "SELECT COUNT(*) FROM totp_devices WHERE id = ?1 AND user_name = ?2",
                params![id, user],
                |row| row.get(0),
            )?;
            if owned == 0 {
                return Ok(DeviceRemoval::NoSuchDevice);
            }
            if keep_one && devices <= 1 {
                return Ok(DeviceRemoval::LastOne);
            }
            tx.execute(
                "DELETE FROM totp_devices WHERE id = ?1 AND user_name = ?2",
                params![id, user],
            )?;
            tx.commit()?;
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
        self.read(move |conn| {
            let (any, seen): (i64, i64) = conn.query_row(
                "SELECT COUNT(*),
                        COUNT(*) FILTER (WHERE kind = ?2 AND value = ?3 AND last_seen >= ?4)
                 FROM sign_in_signals WHERE user_name = ?1",
                params![user, kind, value.as_slice(), to_unix(since)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            Ok((any > 0).then_some(seen > 0))
        })
        .await
    }

    async fn note_signal(&self, user: &str, kind: &str, value: [u8; 32], now: SystemTime) -> StoreResult<()> {
        let (user, kind) = (user.to_owned(), kind.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO sign_in_signals (user_name, kind, value, last_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_name, kind, value) DO UPDATE SET last_seen = excluded.last_seen",
                params![user, kind, value.as_slice(), to_unix(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn forget_signals(&self, user: &str, before: SystemTime) -> StoreResult<()> {
        let user = user.to_owned();
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM sign_in_signals WHERE user_name = ?1 AND last_seen < ?2",
                params![user, to_unix(before)],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_security_key(&self, key: &SecurityKeyRecord, at_most: usize) -> StoreResult<DeviceAdded> {
        let key = key.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (devices, same_name, taken): (i64, i64, i64) = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_name = ?1)
                      + (SELECT COUNT(*) FROM security_keys WHERE user_name = ?1),
                        (SELECT COUNT(*) FROM security_keys WHERE user_name = ?1 AND name = ?2),
                        (SELECT COUNT(*) FROM security_keys WHERE credential_id = ?3)",
                params![key.user, key.name, key.credential_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            if taken > 0 {
                return Ok(DeviceAdded::CredentialTaken);
            }
            if !usize::try_from(devices).is_ok_and(|n| n < at_most) {
                return Ok(DeviceAdded::LimitReached);
            }
            if same_name > 0 {
                return Ok(DeviceAdded::NameTaken);
            }
            ensure_user(&tx, &key.user, key.created_at)?;
            tx.execute(
                "INSERT INTO security_keys (user_name, name, credential_id, rp_id, credential, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key.user,
                    key.name,
                    key.credential_id,
                    key.rp_id,
                    key.credential,
                    to_unix(key.created_at)
                ],
            )?;
            let id = tx.last_insert_rowid();
            // An opened enrolment is used up by the device it let in.
            tx.execute(
                "UPDATE users SET enrolment_open_until = NULL WHERE name = ?1",
                params![key.user],
            )?;
            tx.commit()?;
            Ok(DeviceAdded::Added(id))
        })
        .await
    }

    async fn security_keys(&self, user: &str) -> StoreResult<Vec<SecurityKeyRecord>> {
        let user = user.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, user_name, name, credential_id, rp_id, credential, created_at, last_used_at
                 FROM security_keys WHERE user_name = ?1 ORDER BY id",
            )?;
            let keys = statement
                .query_map(params![user], |row| {
                    Ok(SecurityKeyRecord {
                        id: row.get(0)?,
                        user: row.get(1)?,
                        name: row.get(2)?,
                        credential_id: row.get(3)?,
                        rp_id: row.get(4)?,
                        credential: row.get(5)?,
                        created_at: from_unix(row.get(6)?),
                        last_used_at: row.get::<_, Option<i64>>(7)?.map(from_unix),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
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
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE security_keys SET credential = ?3, last_used_at = ?4
                 WHERE id = ?1 AND user_name = ?2 AND credential = ?5",
                params![id, user, credential, to_unix(now), previous],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn remove_security_key(&self, user: &str, id: i64, keep_one: bool) -> StoreResult<DeviceRemoval> {
        let user = user.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (devices, owned): (i64, i64) = tx.query_row(
                "SELECT (SELECT COUNT(*) FROM totp_devices WHERE user_name = ?1)
                      + (SELECT COUNT(*) FROM security_keys WHERE user_name = ?1),
                        (SELECT COUNT(*) FROM security_keys WHERE id = ?2 AND user_name = ?1)",
                params![user, id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if owned == 0 {
                return Ok(DeviceRemoval::NoSuchDevice);
            }
            if keep_one && devices <= 1 {
                return Ok(DeviceRemoval::LastOne);
            }
            tx.execute(
                "DELETE FROM security_keys WHERE id = ?1 AND user_name = ?2",
                params![id, user],
            )?;
            tx.commit()?;
            Ok(DeviceRemoval::Removed)
        })
        .await
    }

    async fn last_totp_step(&self, user: &str) -> StoreResult<Option<u64>> {
        let user = user.to_owned();
        self.read(move |conn| {
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
        self.write(move |conn| {
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
        self.write(move |conn| {
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
        self.read(move |conn| {
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
        self.write(move |conn| {
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
        self.read(move |conn| Ok(read_failures(conn, &key)?)).await
    }

    async fn charge_attempt(
        &self,
        subjects: &[(Subject<'_>, LockoutPolicy)],
        now: SystemTime,
    ) -> StoreResult<Result<Vec<Charge>, Duration>> {
        let subjects: Vec<(String, LockoutPolicy)> = subjects.iter().map(|(s, p)| (s.key(), *p)).collect();
        self.write(move |conn| {
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
        self.write(move |conn| {
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
        self.write(move |conn| {
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
        self.write(move |conn| {
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
        self.read(move |conn| {
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
        self.write(move |conn| {
            conn.execute("DELETE FROM trusted_devices WHERE user_name = ?1", params![user])?;
            Ok(())
        })
        .await
    }

    async fn mfa_opted_in(&self, user: &str) -> StoreResult<bool> {
        let user = user.to_owned();
        self.read(move |conn| {
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
        self.write(move |conn| {
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
        self.write(move |conn| Ok(set_user_column(conn, &user, "mfa_opted_in", on, now)?))
            .await
    }

    async fn email_address(&self, user: &str) -> StoreResult<Option<String>> {
        let user = user.to_owned();
        self.read(move |conn| {
            let address: Option<Option<String>> = user_column(conn, &user, "email")?;
            Ok(address.flatten())
        })
        .await
    }

    async fn set_email_address(&self, user: &str, address: &str, now: SystemTime) -> StoreResult<()> {
        let (user, address) = (user.to_owned(), address.to_owned());
        self.write(move |conn| Ok(set_user_column(conn, &user, "email", address, now)?))
            .await
    }

    async fn phone_number(&self, user: &str) -> StoreResult<Option<String>> {
        let user = user.to_owned();
        self.read(move |conn| {
            let number: Option<Option<String>> = user_column(conn, &user, "phone")?;
            Ok(number.flatten())
        })
        .await
    }

    async fn set_phone_number(&self, user: &str, number: Option<&str>, now: SystemTime) -> StoreResult<()> {
        let (user, number) = (user.to_owned(), number.map(str::to_owned));
        self.write(move |conn| Ok(set_user_column(conn, &user, "phone", number, now)?))
            .await
    }

    async fn preferred_method(&self, user: &str) -> StoreResult<Option<PreferredMethod>> {
        let user = user.to_owned();
        self.read(move |conn| {
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
        self.write(move |conn| {
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
        self.write(move |conn| {
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
        self.read(move |conn| {
            let until: Option<Option<i64>> = user_column(conn, &user, "enrolment_open_until")?;
            Ok(until.flatten().map(from_unix))
        })
        .await
    }

    async fn record(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        self.write(move |conn| {
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
        self.read(move |conn| {
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
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT u.name,
                        (SELECT COUNT(*) FROM totp_devices d WHERE d.user_name = u.name)
                          + (SELECT COUNT(*) FROM security_keys k WHERE k.user_name = u.name),
                        (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_name = u.name AND r.used_at IS NULL),
                        (SELECT MAX(t) FROM (SELECT last_used_at AS t FROM totp_devices d WHERE d.user_name = u.name
                                              UNION ALL SELECT last_used_at FROM security_keys k WHERE k.user_name = u.name)),
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
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM totp_devices WHERE user_name = ?1", params![user])?;
            tx.execute("DELETE FROM security_keys WHERE user_name = ?1", params![user])?;
            tx.execute("DELETE FROM recovery_codes WHERE user_name = ?1", params![user])?;
            tx.execute("DELETE FROM app_passwords WHERE user_name = ?1", params![user])?;
            tx.execute(
                "UPDATE users SET enrolment_open_until = NULL, preferred_method = NULL, email = NULL, phone = NULL WHERE name = ?1",
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

    async fn add_app_password(&self, entry: &StoredAppPassword, at_most: usize) -> StoreResult<Option<i64>> {
        let e = entry.clone();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            ensure_user(&tx, &e.user, e.created_at)?;
            let held: i64 = tx.query_row(
                "SELECT COUNT(*) FROM app_passwords WHERE user_name = ?1",
                params![e.user],
                |row| row.get(0),
            )?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM app_passwords WHERE user_name = ?1 AND app = ?2 AND name = ?3)",
                params![e.user, e.app, e.name],
                |row| row.get(0),
            )?;
            if taken || usize::try_from(held).unwrap_or(usize::MAX) >= at_most {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO app_passwords (user_name, app, name, phc, sealed_secret, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    e.user,
                    e.app,
                    e.name,
                    e.phc,
                    e.sealed_secret,
                    to_unix(e.created_at)
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Some(id))
        })
        .await
    }

    async fn app_passwords(&self, user: Option<&str>) -> StoreResult<Vec<StoredAppPassword>> {
        let user = user.map(str::to_owned);
        self.read(move |conn| {
            let mut statement = conn.prepare(
                "SELECT id, user_name, app, name, phc, sealed_secret, created_at, last_used_at, app_refused
                 FROM app_passwords WHERE ?1 IS NULL OR user_name = ?1 ORDER BY id",
            )?;
            let found = statement
                .query_map(params![user], |row| {
                    Ok(StoredAppPassword {
                        id: row.get(0)?,
                        user: row.get(1)?,
                        app: row.get(2)?,
                        name: row.get(3)?,
                        phc: row.get(4)?,
                        sealed_secret: row.get(5)?,
                        created_at: from_unix(row.get(6)?),
                        last_used_at: row.get::<_, Option<i64>>(7)?.map(from_unix),
                        app_refused: row.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(found)
        })
        .await
    }

    async fn note_app_password_use(&self, id: i64, now: SystemTime, app_refused: bool) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE app_passwords SET last_used_at = ?2, app_refused = ?3 WHERE id = ?1",
                params![id, to_unix(now), app_refused],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_app_password(&self, user: &str, id: i64) -> StoreResult<bool> {
        let user = user.to_owned();
        self.write(move |conn| {
            let changed = conn.execute(
                "DELETE FROM app_passwords WHERE id = ?1 AND user_name = ?2",
                params![id, user],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        self.write(move |conn| {
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
        self.read(move |conn| {
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

    async fn touch_sessions(&self, touches: &[([u8; 32], SystemTime)]) -> StoreResult<()> {
        let touches = touches.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut touch = tx.prepare_cached(
                    "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2",
                )?;
                for (id_hash, at) in &touches {
                    touch.execute(params![id_hash.as_slice(), to_unix(*at)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id_hash: [u8; 32]) -> StoreResult<()> {
        self.write(move |conn| {
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
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE sessions SET revoked = 1 WHERE user_name = ?1 AND revoked = 0",
                params![user],
            )?)
        })
        .await
    }

    async fn put_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        sealed: Vec<u8>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM transient WHERE expires_at <= ?1",
                params![to_unix(now)],
            )?;
            tx.execute(
                "INSERT INTO transient (kind, key, sealed, version, expires_at) VALUES (?1, ?2, ?3, 0, ?4)
                 ON CONFLICT (kind, key) DO UPDATE SET
                     sealed = excluded.sealed, version = version + 1, expires_at = excluded.expires_at",
                params![kind.as_str(), key.as_slice(), sealed, to_unix(expires_at)],
            )?;
            tx.commit()?;
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
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT sealed, version FROM transient WHERE kind = ?1 AND key = ?2 AND expires_at > ?3",
                    params![kind.as_str(), key.as_slice(), to_unix(now)],
                    |row| {
                        Ok(Transient {
                            sealed: row.get(0)?,
                            version: row.get(1)?,
                        })
                    },
                )
                .optional()?)
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
        self.write(move |conn| {
            let changed = conn.execute(
                "UPDATE transient SET sealed = ?4, version = version + 1
                 WHERE kind = ?1 AND key = ?2 AND version = ?3",
                params![kind.as_str(), key.as_slice(), version, sealed],
            )?;
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
        self.write(move |conn| {
            Ok(conn
                .query_row(
                    "DELETE FROM transient WHERE kind = ?1 AND key = ?2 RETURNING sealed, expires_at",
                    params![kind.as_str(), key.as_slice()],
                    |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)),
                )
                .optional()?
                .filter(|(_, expires_at)| *expires_at > to_unix(now))
                .map(|(sealed, _)| sealed))
        })
        .await
    }
}
