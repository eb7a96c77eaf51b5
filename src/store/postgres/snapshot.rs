//! Loading a snapshot of another backend into an empty PostgreSQL store, for
//! `portvakt migrate`: one transaction, so a failure leaves the database empty.

use deadpool_postgres::GenericClient;

use super::PostgresStore;
use crate::store::snapshot::*;
use crate::store::StoreResult;

/// What became of a snapshot to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// Written, and read back the same within the transaction that wrote it.
    Loaded,
    /// The database holds state already (a deployment, or a gateway started on
    /// it): nothing was written. Merging two stores' users, counters and ids is
    /// not a copy.
    NotEmpty,
    /// What was written did not read back the same: rolled back, nothing written.
    Differs,
}

/// Every durable table: a copy goes only into a database where all are empty.
const DURABLE_TABLES: &[&str] = &[
    "users",
    "totp_devices",
    "security_keys",
    "recovery_codes",
    "failures",
    "sessions",
    "trusted_devices",
    "mfa_defaults",
    "audit",
    "app_passwords",
    "sign_in_signals",
];

/// Tables with identity ids, whose counters must continue after the copied ids.
const IDENTITY_TABLES: &[&str] = &[
    "totp_devices",
    "security_keys",
    "recovery_codes",
    "audit",
    "app_passwords",
];

impl PostgresStore {
    /// Loads `snapshot` into this (empty) database in one transaction, reads it
    /// back inside it, and commits only if it reads the same.
    pub async fn load_snapshot(&self, snapshot: Snapshot) -> StoreResult<Loaded> {
        self.run_within(None, move |mut client| async move {
            let tx = client.transaction().await?;
            let any_row = DURABLE_TABLES
                .iter()
                .map(|t| format!("(SELECT COUNT(*) FROM {t})"))
                .collect::<Vec<_>>()
                .join(" + ");
            let held: i64 = tx.query_one(&format!("SELECT {any_row}"), &[]).await?.get(0);
            if held > 0 {
                return Ok(Loaded::NotEmpty);
            }
            let s = snapshot;
            for u in &s.users {
                tx.execute(
                    "INSERT INTO users (name, created_at, last_totp_step, enrolment_open_until, mfa_opted_in, preferred_method, email, phone)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&u.name, &u.created_at, &u.last_totp_step, &u.enrolment_open_until, &u.mfa_opted_in, &u.preferred_method, &u.email, &u.phone],
                )
                .await?;
            }
            for d in &s.devices {
                tx.execute(
                    "INSERT INTO totp_devices (id, user_name, name, sealed_secret, created_at, last_used_at)
                     OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&d.id, &d.user_name, &d.name, &d.sealed_secret, &d.created_at, &d.last_used_at],
                )
                .await?;
            }
            for g in &s.sign_in_signals {
                tx.execute(
                    "INSERT INTO sign_in_signals (user_name, kind, value, last_seen) VALUES ($1, $2, $3, $4)",
                    &[&g.user_name, &g.kind, &g.value, &g.last_seen],
                )
                .await?;
            }
            for k in &s.security_keys {
                tx.execute(
                    "INSERT INTO security_keys (id, user_name, name, credential_id, rp_id, credential, created_at, last_used_at)
                     OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&k.id, &k.user_name, &k.name, &k.credential_id, &k.rp_id, &k.credential, &k.created_at, &k.last_used_at],
                )
                .await?;
            }
            for c in &s.recovery_codes {
                tx.execute(
                    "INSERT INTO recovery_codes (id, user_name, phc, created_at, used_at)
                     OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5)",
                    &[&c.id, &c.user_name, &c.phc, &c.created_at, &c.used_at],
                )
                .await?;
            }
            for p in &s.app_passwords {
                tx.execute(
                    "INSERT INTO app_passwords (id, user_name, app, name, phc, sealed_secret, created_at, last_used_at, app_refused)
                     OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[&p.id, &p.user_name, &p.app, &p.name, &p.phc, &p.sealed_secret, &p.created_at, &p.last_used_at, &p.app_refused],
                )
                .await?;
            }
            for f in &s.failures {
                tx.execute(
                    "INSERT INTO failures (subject, count, last_failure, locked_until) VALUES ($1, $2, $3, $4)",
                    &[&f.subject, &f.count, &f.last_failure, &f.locked_until],
                )
                .await?;
            }
            for x in &s.sessions {
                tx.execute(
                    "INSERT INTO sessions (id_hash, user_name, app, created_at, last_seen_at, second_factor_at, method, revoked)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&x.id_hash, &x.user_name, &x.app, &x.created_at, &x.last_seen_at, &x.second_factor_at, &x.method, &x.revoked],
                )
                .await?;
            }
            for t in &s.trusted_devices {
                tx.execute(
                    "INSERT INTO trusted_devices (id_hash, user_name, passed_at, expires_at) VALUES ($1, $2, $3, $4)",
                    &[&t.id_hash, &t.user_name, &t.passed_at, &t.expires_at],
                )
                .await?;
            }
            for m in &s.mfa_defaults {
                tx.execute(
                    "INSERT INTO mfa_defaults (app, fingerprint, since) VALUES ($1, $2, $3)",
                    &[&m.app, &m.fingerprint, &m.since],
                )
                .await?;
            }
            for a in &s.audit {
                tx.execute(
                    "INSERT INTO audit (id, at, event, actor, subject, app, client, outcome)
                     OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&a.id, &a.at, &a.event, &a.actor, &a.subject, &a.app, &a.client, &a.outcome],
                )
                .await?;
            }
            for table in IDENTITY_TABLES {
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
                    ),
                    &[],
                )
                .await?;
            }
            if read_snapshot(&tx).await? != s {
                return Ok(Loaded::Differs);
            }
            tx.commit().await?;
            Ok(Loaded::Loaded)
        })
        .await
    }
}

/// Every durable row, read through `client` (inside a transaction, when it is one).
async fn read_snapshot(client: &impl GenericClient) -> StoreResult<Snapshot> {
    let q = |sql: &'static str| async move { client.query(sql, &[]).await };
    Ok(Snapshot {
                users: q("SELECT name, created_at, last_totp_step, enrolment_open_until, mfa_opted_in, preferred_method, email, phone FROM users ORDER BY name")
                    .await?
                    .iter()
                    .map(|r| UserRow {
                        name: r.get(0),
                        created_at: r.get(1),
                        last_totp_step: r.get(2),
                        enrolment_open_until: r.get(3),
                        mfa_opted_in: r.get(4),
                        preferred_method: r.get(5),
                        email: r.get(6),
                        phone: r.get(7),
                    })
                    .collect(),
                devices: q("SELECT id, user_name, name, sealed_secret, created_at, last_used_at FROM totp_devices ORDER BY id")
                    .await?
                    .iter()
                    .map(|r| DeviceRow {
                        id: r.get(0),
                        user_name: r.get(1),
                        name: r.get(2),
                        sealed_secret: r.get(3),
                        created_at: r.get(4),
                        last_used_at: r.get(5),
                    })
                    .collect(),
                sign_in_signals: q("SELECT user_name, kind, value, last_seen FROM sign_in_signals ORDER BY user_name, kind, value")
                    .await?
                    .iter()
                    .map(|r| SignInSignalRow {
                        user_name: r.get(0),
                        kind: r.get(1),
                        value: r.get(2),
                        last_seen: r.get(3),
                    })
                    .collect(),
                security_keys: q("SELECT id, user_name, name, credential_id, rp_id, credential, created_at, last_used_at FROM security_keys ORDER BY id")
                    .await?
                    .iter()
                    .map(|r| SecurityKeyRow {
                        id: r.get(0),
                        user_name: r.get(1),
                        name: r.get(2),
                        credential_id: r.get(3),
                        rp_id: r.get(4),
                        credential: r.get(5),
                        created_at: r.get(6),
                        last_used_at: r.get(7),
                    })
                    .collect(),
                recovery_codes: q("SELECT id, user_name, phc, created_at, used_at FROM recovery_codes ORDER BY id")
                    .await?
                    .iter()
                    .map(|r| RecoveryCodeRow {
                        id: r.get(0),
                        user_name: r.get(1),
                        phc: r.get(2),
                        created_at: r.get(3),
                        used_at: r.get(4),
                    })
                    .collect(),
                app_passwords: q("SELECT id, user_name, app, name, phc, sealed_secret, created_at, last_used_at, app_refused FROM app_passwords ORDER BY id")
                    .await?
                    .iter()
                    .map(|r| AppPasswordRow {
                        id: r.get(0),
                        user_name: r.get(1),
                        app: r.get(2),
                        name: r.get(3),
                        phc: r.get(4),
                        sealed_secret: r.get(5),
                        created_at: r.get(6),
                        last_used_at: r.get(7),
                        app_refused: r.get(8),
                    })
                    .collect(),
                failures: q("SELECT subject, count, last_failure, locked_until FROM failures ORDER BY subject")
                    .await?
                    .iter()
                    .map(|r| FailureRow {
                        subject: r.get(0),
                        count: r.get(1),
                        last_failure: r.get(2),
                        locked_until: r.get(3),
                    })
                    .collect(),
                sessions: q("SELECT id_hash, user_name, app, created_at, last_seen_at, second_factor_at, method, revoked FROM sessions ORDER BY id_hash")
                    .await?
                    .iter()
                    .map(|r| SessionRow {
                        id_hash: r.get(0),
                        user_name: r.get(1),
                        app: r.get(2),
                        created_at: r.get(3),
                        last_seen_at: r.get(4),
                        second_factor_at: r.get(5),
                        method: r.get(6),
                        revoked: r.get(7),
                    })
                    .collect(),
                trusted_devices: q("SELECT id_hash, user_name, passed_at, expires_at FROM trusted_devices ORDER BY id_hash")
                    .await?
                    .iter()
                    .map(|r| TrustedDeviceRow {
                        id_hash: r.get(0),
                        user_name: r.get(1),
                        passed_at: r.get(2),
                        expires_at: r.get(3),
                    })
                    .collect(),
                mfa_defaults: q("SELECT app, fingerprint, since FROM mfa_defaults ORDER BY app")
                    .await?
                    .iter()
                    .map(|r| MfaDefaultRow {
                        app: r.get(0),
                        fingerprint: r.get(1),
                        since: r.get(2),
                    })
                    .collect(),
                audit: q("SELECT id, at, event, actor, subject, app, client, outcome FROM audit ORDER BY id")
                    .await?
                    .iter()
                    .map(|r| AuditRow {
                        id: r.get(0),
                        at: r.get(1),
                        event: r.get(2),
                        actor: r.get(3),
                        subject: r.get(4),
                        app: r.get(5),
                        client: r.get(6),
                        outcome: r.get(7),
                    })
                    .collect(),
    })
}
