//! Reading every durable row of the SQLite file, for `portvakt migrate`.

use rusqlite::Connection;

use super::SqliteStore;
use crate::store::snapshot::*;
use crate::store::StoreResult;

impl SqliteStore {
    /// Every durable row, read in one transaction (a consistent copy even while a
    /// gateway is still writing).
    pub async fn snapshot(&self) -> StoreResult<Snapshot> {
        self.read(|conn| Ok(read_all(conn)?)).await
    }
}

fn read_all(conn: &mut Connection) -> rusqlite::Result<Snapshot> {
    let tx = conn.transaction()?;
    let snapshot = Snapshot {
        users: rows(
            &tx,
            "SELECT name, created_at, last_totp_step, enrolment_open_until, mfa_opted_in, preferred_method, email, phone FROM users ORDER BY name",
            |r| {
                Ok(UserRow {
                    name: r.get(0)?,
                    created_at: r.get(1)?,
                    last_totp_step: r.get(2)?,
                    enrolment_open_until: r.get(3)?,
                    mfa_opted_in: r.get(4)?,
                    preferred_method: r.get(5)?,
                    email: r.get(6)?,
                    phone: r.get(7)?,
                })
            },
        )?,
        devices: rows(
            &tx,
            "SELECT id, user_name, name, sealed_secret, created_at, last_used_at FROM totp_devices ORDER BY id",
            |r| {
                Ok(DeviceRow {
                    id: r.get(0)?,
                    user_name: r.get(1)?,
                    name: r.get(2)?,
                    sealed_secret: r.get(3)?,
                    created_at: r.get(4)?,
                    last_used_at: r.get(5)?,
                })
            },
        )?,
        sign_in_signals: rows(
            &tx,
            "SELECT user_name, kind, value, last_seen FROM sign_in_signals ORDER BY user_name, kind, value",
            |r| {
                Ok(SignInSignalRow {
                    user_name: r.get(0)?,
                    kind: r.get(1)?,
                    value: r.get(2)?,
                    last_seen: r.get(3)?,
                })
            },
        )?,
        security_keys: rows(
            &tx,
            "SELECT id, user_name, name, credential_id, rp_id, credential, created_at, last_used_at FROM security_keys ORDER BY id",
            |r| {
                Ok(SecurityKeyRow {
                    id: r.get(0)?,
                    user_name: r.get(1)?,
                    name: r.get(2)?,
                    credential_id: r.get(3)?,
                    rp_id: r.get(4)?,
                    credential: r.get(5)?,
                    created_at: r.get(6)?,
                    last_used_at: r.get(7)?,
                })
            },
        )?,
        app_passwords: rows(
            &tx,
            "SELECT id, user_name, app, name, phc, sealed_secret, created_at, last_used_at, app_refused FROM app_passwords ORDER BY id",
            |r| {
                Ok(AppPasswordRow {
                    id: r.get(0)?,
                    user_name: r.get(1)?,
                    app: r.get(2)?,
                    name: r.get(3)?,
                    phc: r.get(4)?,
                    sealed_secret: r.get(5)?,
                    created_at: r.get(6)?,
                    last_used_at: r.get(7)?,
                    app_refused: r.get(8)?,
                })
            },
        )?,
        recovery_codes: rows(
            &tx,
            "SELECT id, user_name, phc, created_at, used_at FROM recovery_codes ORDER BY id",
            |r| {
                Ok(RecoveryCodeRow {
                    id: r.get(0)?,
                    user_name: r.get(1)?,
                    phc: r.get(2)?,
                    created_at: r.get(3)?,
                    used_at: r.get(4)?,
                })
            },
        )?,
        failures: rows(
            &tx,
            "SELECT subject, count, last_failure, locked_until FROM failures ORDER BY subject",
            |r| {
                Ok(FailureRow {
                    subject: r.get(0)?,
                    count: r.get(1)?,
                    last_failure: r.get(2)?,
                    locked_until: r.get(3)?,
                })
            },
        )?,
        sessions: rows(
            &tx,
            "SELECT id_hash, user_name, app, created_at, last_seen_at, second_factor_at, method, revoked FROM sessions ORDER BY id_hash",
            |r| {
                Ok(SessionRow {
                    id_hash: r.get(0)?,
                    user_name: r.get(1)?,
                    app: r.get(2)?,
                    created_at: r.get(3)?,
                    last_seen_at: r.get(4)?,
                    second_factor_at: r.get(5)?,
                    method: r.get(6)?,
                    revoked: r.get(7)?,
                })
            },
        )?,
        trusted_devices: rows(
            &tx,
            "SELECT id_hash, user_name, passed_at, expires_at FROM trusted_devices ORDER BY id_hash",
            |r| {
                Ok(TrustedDeviceRow {
                    id_hash: r.get(0)?,
                    user_name: r.get(1)?,
                    passed_at: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            },
        )?,
        mfa_defaults: rows(
            &tx,
            "SELECT app, fingerprint, since FROM mfa_defaults ORDER BY app",
            |r| {
                Ok(MfaDefaultRow {
                    app: r.get(0)?,
                    fingerprint: r.get(1)?,
                    since: r.get(2)?,
                })
            },
        )?,
        audit: rows(
            &tx,
            "SELECT id, at, event, actor, subject, app, client, outcome FROM audit ORDER BY id",
            |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    actor: r.get(3)?,
                    subject: r.get(4)?,
                    app: r.get(5)?,
                    client: r.get(6)?,
                    outcome: r.get(7)?,
                })
            },
        )?,
    };
    tx.commit()?;
    Ok(snapshot)
}

fn rows<T>(
    conn: &Connection,
    sql: &str,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare(sql)?.query_map([], read)?.collect()
}
