//! The services behind the second factor, opened once when the gateway starts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::audit::AuditKind;
use super::challenge::Challenges;
use super::identity::IdentitySigner;
use super::notify::Mailer;
use super::sessions::{Issued, Sessions};
use super::transient::TransientState;
use crate::config::{Config, StoreLocation};
use crate::factors::hashing::HashingPool;
use crate::factors::lockout::{Charge, LockoutPolicy};
use crate::factors::sent_code::SentCode;
use crate::factors::SignInMethod;
use crate::keys::{KeyError, KeySource, Keys};
use crate::store::{AuditEvent, PostgresStore, SqliteStore, Store, StoreResult, Subject, TransientKind};

/// Password and recovery-code checks that may wait for a hashing thread; more are
/// refused with 503 at once. At ~50 ms of CPU each, a full queue is seconds of work.
const HASHING_QUEUE: usize = 256;

pub struct Services {
    pub store: Arc<dyn Store>,
    pub sessions: Sessions,
    pub challenges: Challenges,
    /// App passwords: made, checked (and remembered a short while), removed.
    pub app_passwords: super::app_passwords::AppPasswords,
    /// Bearer tokens of `login.token` apps and the sessions they belong to.
    pub tokens: super::tokens::TokenBindings,
    /// Forms posted across a step-up, kept to be sent again once it is passed.
    pub kept_requests: super::kept_requests::KeptRequests,
    /// Short-lived state every gateway sees (pending addresses here).
    transient: TransientState,
    pub keys: Arc<Keys>,
    pub signer: IdentitySigner,
    /// Sends e-mail codes, when e-mail is configured.
    pub mailer: Option<Mailer>,
    /// Security keys' ceremonies (WebAuthn), their state kept in the store.
    pub security_keys: super::security_keys::SecurityKeys,
    /// Sends codes by text message (through `sms`'s webhook, when it is set up).
    pub sms: super::sms::SmsSender,
    /// Where argon2 runs: low-priority threads behind a bounded queue, so that a
    /// storm of password or recovery-code guesses never takes CPU from proxying.
    pub hashing: HashingPool,
}

/// The deployment's keys as the configuration provisions them (`key_file`, the
/// systemd credential, or the state directory's own), with the key before a
/// rotation (`previous_key_file`) when there is one.
pub fn open_keys(config: &Config) -> Result<Keys, KeyError> {
    let source = KeySource::choose(
        config.key_file.as_deref(),
        KeySource::credentials_dir().as_deref(),
        &config.state_dir,
    );
    let keys = Keys::open_from(&source)?;
    match &config.previous_key_file {
        Some(previous) => Ok(keys.with_previous(Keys::load(previous)?)),
        None => Ok(keys),
    }
}

/// The deployment's store as the configuration names it: the SQLite file in
/// `state_dir` (created on first start), or the shared PostgreSQL database.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.store {
        StoreLocation::Sqlite => Arc::new(
            SqliteStore::open_in(&config.state_dir)
                .with_context(|| format!("opening the database in {}", config.state_dir.display()))?,
        ),
        StoreLocation::Postgres { url, password } => {
            Arc::new(PostgresStore::open(url, password.as_deref()).with_context(|| {
                format!(
                    "opening the PostgreSQL store named in {}",
                    config.source.display()
                )
            })?)
        }
    })
}

/// How long an address typed on the security info waits for its code.
const PENDING_ADDRESS_LIFETIME: Duration = Duration::from_secs(3600);

/// How a code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    TextMessage,
}

impl Channel {
    fn pending_kind(self) -> TransientKind {
        match self {
            Channel::Email => TransientKind::PendingAddress,
            Channel::TextMessage => TransientKind::PendingPhone,
        }
    }
}

/// An address (or phone number) not yet confirmed, and the code sent to it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingAddress {
    pub address: String,
    pub code: SentCode,
}

impl Services {
    /// Opens the deployment's keys (`open_keys`) and the database in `state_dir`
    /// (created on first start).
    pub fn open(config: &Config) -> anyhow::Result<Services> {
        let keys = open_keys(config)?;
        let store = open_store(config)?;
        let mut sessions = Sessions::new(store.clone(), keys.cookie_key())
            .map_err(|e| anyhow::anyhow!("cookie key: {e}"))?;
        let mut signer = IdentitySigner::new(keys.signing_seed());
        if let (Some(cookie_key), Some(seed)) = (keys.previous_cookie_key(), keys.previous_signing_seed()) {
            sessions = sessions
                .with_previous_key(cookie_key)
                .map_err(|e| anyhow::anyhow!("previous cookie key: {e}"))?;
            signer = signer.with_previous(seed);
        }
        // One thread a core: idle CPU goes to sign-ins, busy CPU to proxying.
        let hashing_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mailer = config
            .email
            .as_ref()
            .map(Mailer::new)
            .transpose()
            .context("setting up e-mail")?;
        let keys = Arc::new(keys);
        let transient = TransientState::new(store.clone(), keys.clone());
        let hashing =
            HashingPool::new(hashing_threads, HASHING_QUEUE).context("starting the hashing threads")?;
        let app_passwords =
            super::app_passwords::AppPasswords::new(store.clone(), hashing.clone(), sessions.user_changes());
        let sms = super::sms::SmsSender::new().context("setting up text messages")?;
        Ok(Services {
            app_passwords,
            mailer,
            sms,
            sessions,
            challenges: Challenges::new(transient.clone(), config.session.login_timeout),
            tokens: super::tokens::TokenBindings::new(transient.clone(), config.session.absolute_timeout),
            kept_requests: super::kept_requests::KeptRequests::new(
                transient.clone(),
                config.session.login_timeout,
            ),
            security_keys: super::security_keys::SecurityKeys::new(transient.clone()),
            transient,
            signer,
            keys,
            store,
            hashing,
        })
    }

    /// The address (or number) `user` typed on their security info for `channel`
    /// and the code sent to it, while it waits for that code (on any gateway).
    pub async fn pending_address(
        &self,
        channel: Channel,
        user: &str,
        now: SystemTime,
    ) -> StoreResult<Option<PendingAddress>> {
        let found = self.transient.get(channel.pending_kind(), user, now).await?;
        Ok(found.map(|f| f.value))
    }

    /// Keeps an address until the code sent to it comes back (an hour at most).
    pub async fn await_address(
        &self,
        channel: Channel,
        user: &str,
        pending: &PendingAddress,
        now: SystemTime,
    ) -> StoreResult<()> {
        self.transient
            .put(
                channel.pending_kind(),
                user,
                pending,
                now + PENDING_ADDRESS_LIFETIME,
                now,
            )
            .await
    }

    /// Takes the waiting address out once its code came back: of two requests
    /// with the right code, one confirms it.
    pub async fn confirm_address(
        &self,
        channel: Channel,
        user: &str,
        now: SystemTime,
    ) -> StoreResult<Option<PendingAddress>> {
        self.transient.take(channel.pending_kind(), user, now).await
    }

    /// Counts an attempt at a code or a password against the user and the address
    /// before it is checked, in one store transaction that refuses it instead when
    /// either is locked. However many attempts arrive at once, no more than the
    /// limit are ever checked; a success then takes its charge back.
    pub async fn attempt(
        &self,
        policy: &LockoutPolicy,
        user: &str,
        client: IpAddr,
        now: SystemTime,
    ) -> StoreResult<Attempt> {
        let subjects = subjects(policy, user, client);
        Ok(match self.store.charge_attempt(&subjects, now).await? {
            Ok(charges) => Attempt::Charged(Charged(charges)),
            Err(wait) => Attempt::Locked(wait),
        })
    }

    /// Counts a code sent over `channel` to `to` for `user` against their budgets
    /// (`per_hour` each, shared by every gateway), before it is sent: false when
    /// either is spent. Sending a code costs the sender nothing else, so without
    /// this a password alone could send texts or mail without end.
    pub async fn charge_sent_code(
        &self,
        channel: Channel,
        per_hour: u32,
        user: &str,
        to: &str,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let hour = Duration::from_secs(3600);
        let budget = LockoutPolicy {
            max_failures: per_hour,
            window: hour,
            base_delay: hour,
            max_delay: hour,
        };
        let name = match channel {
            Channel::Email => "email",
            Channel::TextMessage => "sms",
        };
        let subjects = [
            (Subject::SentFor(name, user), budget),
            (Subject::SentTo(name, to), budget),
        ];
        Ok(self.store.charge_attempt(&subjects, now).await?.is_ok())
    }

    /// The charged attempt passed a second factor: the user's count starts again
    /// (not the address's: one good account must not clear the record of an
    /// address guessing at others, which only gets this attempt back).
    pub async fn second_factor_passed(
        &self,
        policy: &LockoutPolicy,
        user: &str,
        client: IpAddr,
        charged: Charged,
    ) -> StoreResult<()> {
        self.store.reset_failures(Subject::User(user)).await?;
        let [_, address] = subjects(policy, user, client);
        let address_charge = charged.0.into_iter().skip(1).collect();
        self.store.refund_attempt(&[address], address_charge).await
    }

    /// The charged attempt was no failure, but no second factor either (a right
    /// password, a code that proved an address): both get this attempt back, and
    /// no more (a password must not clear what guessing at codes built up).
    pub async fn refund(
        &self,
        policy: &LockoutPolicy,
        user: &str,
        client: IpAddr,
        charged: Charged,
    ) -> StoreResult<()> {
        self.store
            .refund_attempt(&subjects(policy, user, client), charged.0)
            .await
    }

    /// Appends a security event done by the user themself. A trail that cannot be
    /// written is logged as an error; it does not stop the request.
    pub async fn audit(
        &self,
        event: AuditKind,
        user: &str,
        app: &str,
        client: IpAddr,
        outcome: &str,
        now: SystemTime,
    ) {
        let row = AuditEvent {
            at: now,
            event: event.as_str().to_owned(),
            actor: user.to_owned(),
            subject: user.to_owned(),
            app: Some(app.to_owned()),
            client: Some(client.to_string()),
            outcome: outcome.to_owned(),
        };
        if let Err(e) = self.store.record(&row).await {
            tracing::error!(error = %e, event = event.as_str(), user = %user, "could not write the audit trail");
        }
    }

    /// Whether the user turned the second factor on where it is optional. If the
    /// store cannot say, the answer is yes: asking for a factor too often is safe.
    pub async fn opted_in(&self, user: &str) -> bool {
        self.store.mfa_opted_in(user).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, user = %user, "could not read the opt-in; asking for a second factor");
            true
        })
    }

    /// A session for a sign-in from a browser the user asked to be remembered in
    /// (`trust_cookie`), which skips the second factor; `None` when there is no
    /// such cookie, it is not this user's, it expired or was forgotten, or the store
    /// cannot say (then the user is asked for a code, as usual). The session's second
    /// factor dates from when it was really passed, so `max_age` routes ask again.
    pub async fn remembered_sign_in(
        &self,
        trust_cookie: Option<&str>,
        user: &str,
        app: &str,
        client: IpAddr,
        now: SystemTime,
        secure: bool,
    ) -> Option<Issued> {
        let passed_at = match self.sessions.remembered(trust_cookie?, user, now, secure).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "could not look up a remembered browser");
                return None;
            }
        };
        let issued = self
            .sessions
            .start_at(
                user,
                app,
                SignInMethod::TrustedDevice,
                Some(passed_at),
                now,
                secure,
            )
            .await
            .inspect_err(|e| tracing::error!(error = %e, "could not start a session; asking for the code"))
            .ok()?;
        self.audit(
            AuditKind::SecondFactorOk,
            user,
            app,
            client,
            "trusted_device",
            now,
        )
        .await;
        tracing::info!(user = %user, app = %app, "remembered browser; second factor skipped");
        Some(issued)
    }

    /// The user's e-mail address: the users file's, else the one they confirmed on
    /// their security info. If the store cannot say, there is none (and no e-mail).
    pub async fn email_address(&self, config: &Config, user: &str) -> Option<String> {
        if let Some(address) = config.users.get(user).and_then(|u| u.email.clone()) {
            return Some(address);
        }
        self.store.email_address(user).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, user = %user, "could not read the user's e-mail address");
            None
        })
    }

    /// Keeps the address the app's login answer gave for the user (`login.email_header`)
    /// for codes and notices. An address in the users file stays first; a value that
    /// is no address is logged and ignored.
    pub async fn take_address_from_app(
        &self,
        config: &Config,
        user: &str,
        app: &str,
        value: Option<&http::HeaderValue>,
        client: IpAddr,
        now: SystemTime,
    ) {
        let Some(address) = value.and_then(|v| v.to_str().ok()).map(str::trim) else {
            return;
        };
        if !crate::auth::notify::is_deliverable(address) {
            tracing::warn!(app = %app, user = %user, "the app's login answer named an address mail cannot reach; ignored");
            return;
        }
        if config.users.get(user).is_some_and(|u| u.email.is_some()) {
            return;
        }
        let stored = match self.store.email_address(user).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, user = %user, "could not read the user's e-mail address");
                return;
            }
        };
        if stored.as_deref() == Some(address) {
            return;
        }
        match self.store.set_email_address(user, address, now).await {
            Ok(()) => {
                self.audit(AuditKind::EmailFromApp, user, app, client, "ok", now)
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, user = %user, "could not keep the app's address for the user")
            }
        }
    }

    /// Tells the user by e-mail (when mail is set up and they have an address).
    /// Bounded in time and never fatal: a notice that cannot go out is logged.
    pub async fn notify(&self, config: &Config, user: &str, subject: &str, body: &str) {
        let Some(mailer) = &self.mailer else {
            return;
        };
        let Some(address) = self.email_address(config, user).await else {
            return;
        };
        match tokio::time::timeout(Duration::from_secs(5), mailer.send(&address, subject, body)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, user = %user, "a notice could not be sent"),
            Err(_) => tracing::warn!(user = %user, "a notice took too long to send; gave up"),
        }
    }
}

/// The outcome of [`Services::attempt`].
#[derive(Debug)]
pub enum Attempt {
    /// Counted as a failure until it proves to be none.
    Charged(Charged),
    /// Refused without a check: attempts wait this long.
    Locked(Duration),
}

/// What a charged attempt needs to be taken back: the user's charge, then the
/// address's.
#[derive(Debug)]
pub struct Charged(Vec<Charge>);

/// The counters an attempt is charged to: the user's, then the address's.
fn subjects<'a>(policy: &LockoutPolicy, user: &'a str, client: IpAddr) -> [(Subject<'a>, LockoutPolicy); 2] {
    [
        (Subject::User(user), *policy),
        (Subject::Address(client), address_policy(policy)),
    ]
}

/// An address may be shared (an office behind one NAT): its counter stops one source
/// guessing at many accounts, so it allows five times the account's failures (still
/// never more than 100 in a row), and one person's typos do not lock out colleagues.
fn address_policy(policy: &LockoutPolicy) -> LockoutPolicy {
    LockoutPolicy {
        max_failures: policy.max_failures.saturating_mul(5),
        ..*policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_allows_more_failures_than_an_account_but_never_over_100() {
        let account = LockoutPolicy::default();
        assert_eq!(address_policy(&account).max_failures, 50);
        let strict = LockoutPolicy {
            max_failures: 30,
            ..account
        };
        let address = address_policy(&strict);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut record = crate::factors::lockout::FailureRecord::default();
        for i in 0..100 {
            record = address.after_failure(&record, start + Duration::from_secs(i));
        }
        assert!(address
            .locked_for(&record, start + Duration::from_secs(100))
            .is_some());
    }
}
