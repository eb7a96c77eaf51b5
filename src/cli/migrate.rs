//! `portvakt migrate`: moves a deployment's durable state from its SQLite file to
//! a PostgreSQL database, and checks that every row reads back the same.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::store::postgres::Loaded;
use crate::store::sqlite::DATABASE_FILE;
use crate::store::{PostgresStore, SqliteStore};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SQLite store: `sqlite:` and its file, or the state directory it is in.
    #[arg(long)]
    from: String,
    /// The PostgreSQL database: a `postgres://` URL. It must hold no deployment yet.
    #[arg(long)]
    to: String,
    /// A file with the database password, when the URL does not carry it.
    #[arg(long)]
    password_file: Option<PathBuf>,
}

pub fn migrate(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(path) = args.from.strip_prefix("sqlite:") else {
        anyhow::bail!("--from takes `sqlite:` and the database file (or its state directory), such as sqlite:/var/lib/portvakt");
    };
    let path = PathBuf::from(path);
    let file = if path.is_dir() {
        path.join(DATABASE_FILE)
    } else {
        path
    };
    if !file.is_file() {
        anyhow::bail!("{}: no such database file", file.display());
    }
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        anyhow::bail!("--to takes a PostgreSQL URL, such as postgres://portvakt@db.internal/portvakt");
    }
    let password = args
        .password_file
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.trim_end_matches(['\r', '\n']).to_owned())
                .with_context(|| format!("reading the password from {}", p.display()))
        })
        .transpose()?;
    let from = SqliteStore::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let to = PostgresStore::open(&args.to, password.as_deref()).context("opening the PostgreSQL database")?;
    super::users::block_on(async {
        let snapshot = from.snapshot().await?;
        match to.load_snapshot(snapshot.clone()).await? {
            Loaded::NotEmpty => {
                eprintln!(
                    "portvakt: the PostgreSQL database holds state already (a deployment, or a gateway started on it); nothing was copied. Migrate into a new, empty database."
                );
                return Ok(ExitCode::FAILURE);
            }
            Loaded::Differs => {
                anyhow::bail!("the copy did not read back the same as the original; nothing was written")
            }
            Loaded::Loaded => {}
        }
        for (what, count) in snapshot.counts() {
            out!("{count:>8} {what}");
        }
        out!("copied from {} and read back the same.", file.display());
        // The secrets are sealed under the key that sealed them in SQLite: a new
        // key file would leave every authenticator unreadable.
        let key = file.with_file_name("portvakt.key");
        if key.is_file() {
            out!(
                "Authenticators are sealed under {}: give that file to every gateway as `key_file` (not a new one).",
                key.display()
            );
        } else {
            out!("Authenticators are sealed under this deployment's key file: give that same file to every gateway as `key_file` (not a new one).");
        }
        out!("Then point every gateway's `store: {{ url: … }}` at the database.");
        Ok(ExitCode::SUCCESS)
    })?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use crate::factors::lockout::LockoutPolicy;
    use crate::factors::SignInMethod;
    use crate::store::postgres::testing::fresh_database;
    use crate::store::{AuditEvent, DeviceAdded, PostgresStore, SessionRecord, SqliteStore, Store, Subject};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// A deployment with one of everything, moved: every enrolment, used step, used
    /// code, counter, session and audit event is there, and a second run into the
    /// same database copies nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deployment_moves_whole_and_only_into_an_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
        let DeviceAdded::Added(phone) = sqlite
            .add_totp_device("alice", "Phone", vec![1, 2], 100, at(0), 5)
            .await
            .unwrap()
        else {
            panic!("not added");
        };
        sqlite
            .add_totp_device("alice", "Tablet", vec![3], 101, at(1), 5)
            .await
            .unwrap();
        sqlite
            .replace_recovery_codes("alice", vec!["h1".into(), "h2".into()], at(2))
            .await
            .unwrap();
        let used = sqlite.unused_recovery_codes("alice").await.unwrap()[0].id;
        sqlite.use_recovery_code("alice", used, at(3)).await.unwrap();
        let app_password = crate::store::StoredAppPassword {
            id: 0,
            user: "alice".into(),
            app: "console".into(),
            name: "git".into(),
            phc: "phc".into(),
            sealed_secret: Some(vec![9; 40]),
            created_at: at(3),
            last_used_at: None,
            app_refused: false,
        };
        sqlite.add_app_password(&app_password, 20).await.unwrap().unwrap();
        sqlite
            .charge_attempt(&[(Subject::User("bob"), LockoutPolicy::default())], at(4))
            .await
            .unwrap()
            .unwrap();
        sqlite
            .set_email_address("bob", "bob@example.com", at(5))
            .await
            .unwrap();
        sqlite
            .set_phone_number("bob", Some("+46701234567"), at(5))
            .await
            .unwrap();
        let key = crate::store::SecurityKeyRecord {
            id: 0,
            user: "bob".into(),
            name: "YubiKey".into(),
            credential_id: vec![7; 16],
            rp_id: "intranet.example".into(),
            credential: b"{}".to_vec(),
            created_at: at(5),
            last_used_at: None,
        };
        sqlite.add_security_key(&key, 5).await.unwrap();
        sqlite
            .insert_session(&SessionRecord {
                id_hash: [9; 32],
                user: "alice".into(),
                app: "wiki".into(),
                created_at: at(6),
                last_seen_at: at(6),
                second_factor_at: Some(at(6)),
                method: SignInMethod::Totp,
                revoked: false,
                mfa_opted_in: false,
            })
            .await
            .unwrap();
        sqlite
            .trust_device([8; 32], "alice", at(7), at(9999))
            .await
            .unwrap();
        sqlite.mfa_default_since("wiki", "required", at(8)).await.unwrap();
        sqlite
            .record(&AuditEvent {
                at: at(9),
                event: "enrolled".into(),
                actor: "alice".into(),
                subject: "alice".into(),
                app: Some("wiki".into()),
                client: None,
                outcome: "ok".into(),
            })
            .await
            .unwrap();
        drop(sqlite);

        let url = fresh_database().await;
        let args = Args {
            from: format!("sqlite:{}", dir.path().display()),
            to: url.clone(),
            password_file: None,
        };
        let moved = tokio::task::spawn_blocking(move || migrate(&args).map(|c| c == ExitCode::SUCCESS));
        assert!(moved.await.unwrap().unwrap());

        let pg: Arc<dyn Store> = Arc::new(PostgresStore::open(&url, None).unwrap());
        let devices = pg.totp_devices("alice").await.unwrap();
        assert_eq!(
            devices.iter().map(|d| (d.id, d.sealed_secret.clone())).next(),
            Some((phone, vec![1, 2]))
        );
        assert_eq!(devices.len(), 2);
        assert!(
            !pg.accept_totp_step("alice", phone, 101, at(10)).await.unwrap(),
            "used steps stay used"
        );
        assert!(
            !pg.use_recovery_code("alice", used, at(10)).await.unwrap(),
            "used codes stay used"
        );
        assert_eq!(pg.unused_recovery_codes("alice").await.unwrap().len(), 1);
        assert_eq!(pg.failures(Subject::User("bob")).await.unwrap().count, 1);
        assert_eq!(
            pg.email_address("bob").await.unwrap().as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(
            pg.phone_number("bob").await.unwrap().as_deref(),
            Some("+46701234567")
        );
        let keys = pg.security_keys("bob").await.unwrap();
        assert_eq!(
            keys.iter()
                .map(|k| (k.name.as_str(), k.credential_id.clone()))
                .collect::<Vec<_>>(),
            [("YubiKey", vec![7; 16])]
        );
        assert!(pg.session([9; 32]).await.unwrap().is_some());
        assert!(pg.trusted_device([8; 32], at(10)).await.unwrap().is_some());
        assert_eq!(
            pg.mfa_default_since("wiki", "required", at(99)).await.unwrap(),
            at(8)
        );
        let DeviceAdded::Added(next) = pg
            .add_totp_device("carol", "Phone", vec![4], 1, at(11), 1)
            .await
            .unwrap()
        else {
            panic!("ids continue after the copied ones");
        };
        assert!(next > phone + 1);

        let again = Args {
            from: format!("sqlite:{}", dir.path().join(DATABASE_FILE).display()),
            to: url,
            password_file: None,
        };
        let refused = tokio::task::spawn_blocking(move || migrate(&again));
        assert_eq!(
            refused.await.unwrap().unwrap(),
            ExitCode::FAILURE,
            "never into a deployment"
        );

        // A database a gateway has started on holds state too (its apps' defaults).
        let started_on = fresh_database().await;
        let gateway = PostgresStore::open(&started_on, None).unwrap();
        gateway
            .mfa_default_since("wiki", "optional", at(1))
            .await
            .unwrap();
        let into_started = Args {
            from: format!("sqlite:{}", dir.path().display()),
            to: started_on,
            password_file: None,
        };
        let refused = tokio::task::spawn_blocking(move || migrate(&into_started));
        assert_eq!(refused.await.unwrap().unwrap(), ExitCode::FAILURE);
        assert!(gateway.users().await.unwrap().is_empty(), "nothing copied");
    }

    #[test]
    fn what_is_not_a_store_is_named() {
        let args = |from: &str, to: &str| Args {
            from: from.into(),
            to: to.into(),
            password_file: None,
        };
        let error = |a: Args| migrate(&a).unwrap_err().to_string();
        assert!(error(args("/var/lib/portvakt", "postgres://db/x")).contains("--from takes `sqlite:`"));
        assert!(error(args("sqlite:/nonexistent/db", "postgres://db/x")).contains("no such database file"));
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open_in(dir.path()).unwrap();
        let from = format!("sqlite:{}", dir.path().display());
        assert!(error(args(&from, "mysql://db/x")).contains("--to takes a PostgreSQL URL"));
    }
}
