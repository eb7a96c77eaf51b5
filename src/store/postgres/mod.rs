//! The shared store: one PostgreSQL database that several gateways use at once,
//! chosen by `store: { url: postgres://… }`.
//!
//! What must not happen twice is decided by the database, not by a gateway: a
//! conditional `UPDATE` (a TOTP step, a recovery code), or a transaction that first
//! locks the rows it reads (a user's devices, failure counters), so that requests
//! racing on two gateways are answered one after the other. Commits are durable
//! before a call returns (PostgreSQL's default `synchronous_commit`).
//!
//! The connections live on a runtime of their own (one thread): queries are awaited
//! from any of Pingora's runtimes, a test's or the CLI's, and a connection never
//! dies with the runtime that happened to open it.

mod queries;
mod snapshot;

pub use snapshot::Loaded;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{StoreError, StoreResult};

/// Schema changes, in order; entry N brings the schema to version N + 1. The
/// numbering is PostgreSQL's own: the SQLite backend has its own history.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_transient.sql"),
    include_str!("migrations/0003_app_passwords.sql"),
    include_str!("migrations/0004_phone_number.sql"),
    include_str!("migrations/0005_security_keys.sql"),
    include_str!("migrations/0006_sign_in_signals.sql"),
];

/// Connections per gateway: enough for both cores' requests and the hashing
/// threads, few enough that a handful of gateways stay far below PostgreSQL's
/// default `max_connections` (100).
const POOL_SIZE: usize = 16;

/// How long a request waits for a connection (or for a new one to open) before
/// the gateway answers 503: a stopped database must not hold requests for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one store call may take in all (a connection, its queries): a
/// database that stops answering — frozen, or a lock held by a gateway that hung
/// mid-transaction — gets requests the gateway's 503 page, not a wait. The server
/// is asked to give up on statements and lock waits sooner, so that it does not go
/// on working for nobody.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const SERVER_TIMEOUTS: &str =
    "-c statement_timeout=4000 -c lock_timeout=3000 -c idle_in_transaction_session_timeout=10000";

/// Two gateways starting at once on an empty database must not both migrate it:
/// the migration holds this advisory lock (an arbitrary constant, "portvakt").
const MIGRATION_LOCK: i64 = 0x706f_7274_7661_6b74;

/// The channel revocations are announced on (`LISTEN`/`NOTIFY`).
const REVOCATION_CHANNEL: &str = "portvakt_revoked";

/// How long the listener waits before connecting again after losing the channel.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

pub struct PostgresStore {
    pool: Pool,
    /// For the listening connection, which is not pooled.
    config: tokio_postgres::Config,
    runtime: DatabaseRuntime,
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL; `password`, when given, replaces
    /// the URL's) and brings the schema up to date. It waits for that on the
    /// database's own thread, so it may be called from async code too.
    pub fn open(url: &str, password: Option<&str>) -> StoreResult<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Database(format!("the store URL: {e}").into()))?;
        if let Some(why) = unsupported(&config) {
            return Err(StoreError::Database(why.into()));
        }
        if let Some(password) = password {
            config.password(password);
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("portvakt");
        config.options(SERVER_TIMEOUTS);
        // A peer that vanished without closing is noticed, not waited for.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let runtime = DatabaseRuntime::start()?;
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let (done, migrated) = std::sync::mpsc::channel();
        let migrating = pool.clone();
        runtime.handle.spawn(async move {
            let migration = match migrating.get().await {
                Ok(mut client) => migrate(&mut client).await,
                Err(e) => Err(unreachable(e)),
            };
            let _ = done.send(migration);
        });
        migrated
            .recv()
            .map_err(|e| StoreError::Task(format!("migrating the database: {e}")))??;
        Ok(PostgresStore {
            pool,
            config,
            runtime,
        })
    }

    /// Listens for revocations on a connection of its own, for as long as the
    /// store lives: `on` hears each one, and `ChannelDown` / `ChannelUp` when the
    /// connection is lost (the database restarting, say) and when it is back.
    fn listen(&self, on: crate::store::RevocationHandler) {
        let config = self.config.clone();
        self.runtime.handle.spawn(async move {
            let mut up = false;
            loop {
                if let Ok((client, connection)) = config.connect(NoTls).await {
                    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
                    let driving = tokio::spawn(drive(connection, heard));
                    if client
                        .batch_execute(&format!("LISTEN {REVOCATION_CHANNEL}"))
                        .await
                        .is_ok()
                    {
                        up = true;
                        on(crate::store::Revocation::ChannelUp);
                        while let Some(revocation) = hearing.recv().await {
                            on(revocation);
                        }
                    }
                    driving.abort();
                }
                if std::mem::take(&mut up) {
                    on(crate::store::Revocation::ChannelDown);
                }
                tokio::time::sleep(RELISTEN_AFTER).await;
            }
        });
    }

    /// Runs `work` with a pooled connection, on the database runtime, within
    /// `CALL_TIMEOUT`.
    async fn run<T, F, Fut>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        self.run_within(Some(CALL_TIMEOUT), work).await
    }

    /// Runs `work` with a pooled connection, on the database runtime; `limit`
    /// bounds the whole call (`None`: a long job such as `migrate`).
    async fn run_within<T, F, Fut>(&self, limit: Option<Duration>, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let call = async move {
            let client = pool.get().await.map_err(unreachable)?;
            work(client).await
        };
        self.runtime
            .handle
            .spawn(async move {
                match limit {
                    None => call.await,
                    Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                        Err(StoreError::Unavailable(format!(
                            "the database did not answer within {} s",
                            limit.as_secs()
                        )))
                    }),
                }
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// A current-thread runtime on a thread of its own, stopped when the store is
/// dropped (from anywhere, async code included: nothing blocks on the way out).
struct DatabaseRuntime {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl DatabaseRuntime {
    fn start() -> StoreResult<DatabaseRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Task(format!("starting the database runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("portvakt-db".into())
            .spawn(move || {
                // Returns when the store (holding the sender) is dropped; the
                // runtime and its connections go with this thread.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| StoreError::Task(format!("starting the database thread: {e}")))?;
        Ok(DatabaseRuntime { handle, _stop: stop })
    }
}

/// What this build cannot honour in a URL, said rather than ignored.
fn unsupported(config: &tokio_postgres::Config) -> Option<&'static str> {
    (config.get_ssl_mode() == tokio_postgres::config::SslMode::Require).then_some(
        "sslmode=require: this build connects to PostgreSQL without TLS; reach the database over a private network or the same host, and leave sslmode out",
    )
}

/// Drives the listening connection, passing on what is announced; ends (and so
/// closes `heard`) when the connection does.
async fn drive(
    mut connection: tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    heard: tokio::sync::mpsc::UnboundedSender<crate::store::Revocation>,
) {
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(Ok(message)) = futures_util::StreamExt::next(&mut messages).await {
        if let tokio_postgres::AsyncMessage::Notification(n) = message {
            if let Some(revocation) = read_notification(n.payload()) {
                if heard.send(revocation).is_err() {
                    return;
                }
            }
        }
    }
}

/// `session:<hex of the id's hash>` or `user:<name>`.
fn notification_payload(revocation: &crate::store::Revocation) -> Option<String> {
    use crate::store::Revocation;
    match revocation {
        Revocation::Session(hash) => Some(format!("session:{}", data_encoding::HEXLOWER.encode(hash))),
        Revocation::User(user) => Some(format!("user:{user}")),
        Revocation::ChannelDown | Revocation::ChannelUp => None,
    }
}

fn read_notification(payload: &str) -> Option<crate::store::Revocation> {
    use crate::store::Revocation;
    match payload.split_once(':')? {
        ("session", hex) => {
            let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).ok()?;
            Some(Revocation::Session(bytes.try_into().ok()?))
        }
        ("user", user) => Some(Revocation::User(user.to_owned())),
        _ => None,
    }
}

/// A pool that could not hand out a connection: the database is down or too slow.
fn unreachable(e: PoolError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        // Class 08 (connection exception) and 57P (the server shutting down or
        // restarting): the database went away, not a query that is wrong.
        let gone = e.is_closed()
            || e.code()
                .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"))
            || (e.as_db_error().is_none()
                && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()));
        // The server's own words ("database \"x\" does not exist"), not only "db error".
        let told = match e.as_db_error() {
            Some(db) => format!("{}: {} ({})", e, db.message(), db.code().code()),
            None => e.to_string(),
        };
        // Statements and lock waits given up on (57014, 55P03): the database is
        // too slow or stuck right now, as good as unreachable.
        let stuck = e.code().is_some_and(|c| matches!(c.code(), "57014" | "55P03"));
        if gone || stuck {
            StoreError::Unavailable(told)
        } else {
            StoreError::Database(told.into())
        }
    }
}

async fn migrate(client: &mut Object) -> StoreResult<()> {
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS portvakt_schema (version BIGINT NOT NULL)")
        .await?;
    let found: i64 = tx
        .query_opt("SELECT version FROM portvakt_schema", &[])
        .await?
        .map_or(0, |row| row.get(0));
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for sql in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        tx.batch_execute(sql).await?;
    }
    tx.execute("DELETE FROM portvakt_schema", &[]).await?;
    tx.execute("INSERT INTO portvakt_schema (version) VALUES ($1)", &[&known])
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fresh database per test on the PostgreSQL server `scripts/test` starts.

    use super::PostgresStore;

    /// The variable `scripts/test` sets to its server's URL.
    pub const SERVER_VARIABLE: &str = "PORTVAKT_TEST_POSTGRES";

    /// The server's URL; a test that needs PostgreSQL fails without one, rather
    /// than passing without having run.
    pub fn server_url() -> String {
        std::env::var(SERVER_VARIABLE).unwrap_or_else(|_| {
            panic!("{SERVER_VARIABLE} is not set: run the tests with scripts/test, which starts PostgreSQL")
        })
    }

    /// A new, empty database on the test server; its URL.
    pub async fn fresh_database() -> String {
        let server = server_url();
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
        let connection = tokio::spawn(connection);
        let name = format!("portvakt_{:032x}", rand::random::<u128>());
        let name = name.as_str();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = connection.await;
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(name);
        url.to_string()
    }

    pub async fn fresh_store() -> PostgresStore {
        PostgresStore::open(&fresh_database().await, None).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::fresh_store;
    use crate::store::conformance::store_conformance;
    use crate::store::Store;

    store_conformance!((
        (),
        std::sync::Arc::new(fresh_store().await) as std::sync::Arc<dyn Store>
    ));

    #[tokio::test]
    async fn reopening_keeps_the_schema_and_a_newer_one_is_refused() {
        let url = super::testing::fresh_database().await;
        let store = super::PostgresStore::open(&url, None).unwrap();
        store
            .run(|client| async move {
                client
                    .execute("UPDATE portvakt_schema SET version = 99", &[])
                    .await?;
                Ok(())
            })
            .await
            .unwrap();
        drop(store);
        let reopened = super::PostgresStore::open(&url, None);
        assert!(
            matches!(
                reopened,
                Err(crate::store::StoreError::NewerSchema { found: 99, .. })
            ),
            "{:?}",
            reopened.err()
        );
    }

    #[tokio::test]
    async fn the_audit_trail_cannot_be_edited() {
        let store = fresh_store().await;
        let event = crate::store::AuditEvent {
            at: std::time::SystemTime::UNIX_EPOCH,
            event: "login_ok".into(),
            actor: "alice".into(),
            subject: "alice".into(),
            app: None,
            client: None,
            outcome: "ok".into(),
        };
        store.record(&event).await.unwrap();
        for edit in [
            "UPDATE audit SET outcome = 'refused'",
            "DELETE FROM audit",
            "TRUNCATE audit",
        ] {
            let edited = store
                .run(move |client| async move { Ok(client.batch_execute(edit).await?) })
                .await;
            assert!(edited.is_err(), "{edit} went through");
        }
    }

    /// A row held locked by a connection that hangs (a gateway frozen in the
    /// middle of a transaction) makes a call give up as unavailable, not wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_that_is_never_released_is_given_up_on() {
        use crate::factors::lockout::LockoutPolicy;
        use crate::store::{StoreError, Subject};
        let url = super::testing::fresh_database().await;
        let store = super::PostgresStore::open(&url, None).unwrap();
        let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        holder
            .batch_execute(
                "BEGIN; INSERT INTO failures (subject, count) VALUES ('user:alice', 0);
                 SELECT 1 FROM failures WHERE subject = 'user:alice' FOR UPDATE;",
            )
            .await
            .unwrap();
        let alice = [(Subject::User("alice"), LockoutPolicy::default())];
        let charge = store.charge_attempt(&alice, std::time::SystemTime::UNIX_EPOCH);
        // Bounded only so that a regression fails instead of hanging the suite.
        let charged = tokio::time::timeout(std::time::Duration::from_secs(30), charge)
            .await
            .expect("the call gave up by itself");
        assert!(matches!(charged, Err(StoreError::Unavailable(_))), "{charged:?}");
        drop(holder);
    }

    #[tokio::test]
    async fn a_database_that_is_not_there_is_unavailable_not_a_panic() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opened =
            super::PostgresStore::open(&format!("postgres://portvakt@127.0.0.1:{port}/portvakt"), None);
        assert!(
            matches!(opened, Err(crate::store::StoreError::Unavailable(_))),
            "{:?}",
            opened.err()
        );
    }
}
