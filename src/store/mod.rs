//! Durable state: enrolled devices, used TOTP steps, recovery codes, failure
//! counters, sessions, remembered browsers, users' choices and the audit trail.
//! One trait and its model types here; each backend in its own folder (`sqlite/`,
//! the embedded default), and one conformance suite every backend runs.
//!
//! Every operation that must not happen twice (a TOTP step, a recovery code) is one
//! conditional `UPDATE` whose row count says whether it happened, so two requests —
//! or two gateways — racing for the same code cannot both win. A write that matters
//! is durable before the call returns, so the user is never told "done" for
//! something a crash would undo.

mod columns;
#[cfg(test)]
pub(crate) mod conformance;
pub mod postgres;
pub mod snapshot;
pub mod sqlite;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::factors::lockout::{Charge, FailureRecord, LockoutPolicy};
use crate::factors::SignInMethod;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What went wrong in a backend, told the same way whichever backend it was: the
/// gateway answers `Unavailable` and `Database` alike (a 503 page, failing closed),
/// but logs and metrics say which.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached (down, restarting, the network): worth
    /// trying again in a moment.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
    #[error("the database task did not finish: {0}")]
    Task(String),
    #[error(
        "the database holds schema version {found}, newer than this build knows ({known}); upgrade portvakt"
    )]
    NewerSchema { found: i64, known: i64 },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An authenticator app a user enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpDevice {
    pub id: i64,
    pub user: String,
    pub name: String,
    /// The secret, sealed by [`crate::keys::Keys::seal`] with [`TotpDevice::seal_context`].
    pub sealed_secret: Vec<u8>,
    pub created_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
}

impl TotpDevice {
    /// What a device's secret is sealed to: its user and its name, so a sealed secret
    /// copied onto another user's row does not open.
    pub fn seal_context(user: &str, device_name: &str) -> Vec<u8> {
        format!("totp\0{user}\0{device_name}").into_bytes()
    }
}

/// A stored recovery code: its id and argon2id hash; used ones are not returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecoveryCode {
    pub id: i64,
    pub phc: String,
}

/// An app password (`factors::app_password`) as stored: never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAppPassword {
    pub id: i64,
    pub user: String,
    /// The one app it is good for.
    pub app: String,
    /// Named after the client ("Thunderbird on laptop").
    pub name: String,
    /// Its argon2id hash.
    pub phc: String,
    /// For an HTTP Basic app: the user's own password there, sealed under a key
    /// derived from the app password.
    pub sealed_secret: Option<Vec<u8>>,
    pub created_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
    /// The app refused the password sent on with it (changed since).
    pub app_refused: bool,
}

/// A gateway session as the store keeps it. The session id itself is never stored:
/// only its SHA-256, so a copy of the database signs nobody in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: [u8; 32],
    pub user: String,
    /// The app the session was signed in to: a session is good for that app only,
    /// since its password (or its `login: gateway` users) vouched for the user there.
    pub app: String,
    pub created_at: SystemTime,
    pub last_seen_at: SystemTime,
    /// When the second factor was last passed; `None` for a password-only session.
    pub second_factor_at: Option<SystemTime>,
    /// How the user signed in: `password`, `totp`, `recovery`, `email` or
    /// `trusted_device`.
    pub method: SignInMethod,
    pub revoked: bool,
    /// The user turned the second factor on for apps where it is optional (read
    /// from the user's record, not stored with the session).
    pub mfa_opted_in: bool,
}

impl SessionRecord {
    /// Whether the second factor was passed in this session within `window` of `now`
    /// (changes to the account and administration ask for a recent one).
    pub fn second_factor_within(&self, now: SystemTime, window: std::time::Duration) -> bool {
        self.second_factor_at
            .is_some_and(|at| now.duration_since(at).unwrap_or_default() <= window)
    }
}

/// One row of the audit trail: who did what to whom, where, and how it ended.
/// Never a code, a secret or a cookie.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvent {
    #[serde(serialize_with = "serialize_unix")]
    pub at: SystemTime,
    /// What happened: `login_ok`, `login_failed`, `enrolled`, `second_factor_ok`,
    /// `second_factor_failed`, `replay_rejected`, `recovery_code_used`, `locked_out`,
    /// `signed_out`, `enrolment_opened`, `reset`, `unlocked`.
    pub event: String,
    /// Who acted: the user themself, or `admin:<name>` / `cli` for administration.
    pub actor: String,
    /// Whom it concerned.
    pub subject: String,
    pub app: Option<String>,
    pub client: Option<String>,
    /// `ok` or `refused`.
    pub outcome: String,
}

fn serialize_unix<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// Which audit rows to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub subject: Option<String>,
    pub since: Option<SystemTime>,
    pub limit: usize,
}

/// What the store knows about one user, for administration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub devices: usize,
    pub recovery_codes_left: usize,
    pub last_used_at: Option<SystemTime>,
    pub locked_until: Option<SystemTime>,
}

/// Who or what a failure counter belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject<'a> {
    User(&'a str),
    Address(std::net::IpAddr),
    /// The codes sent over a channel for a user (a budget, not a lockout of
    /// the user): `(channel, user)`.
    SentFor(&'a str, &'a str),
    /// The codes sent over a channel to an address or number, whoever asked.
    SentTo(&'a str, &'a str),
}

impl Subject<'_> {
    fn key(&self) -> String {
        match self {
            Subject::User(name) => format!("user:{name}"),
            Subject::Address(ip) => format!("addr:{ip}"),
            Subject::SentFor(channel, name) => format!("sent-for:{channel}:{name}"),
            Subject::SentTo(channel, to) => format!("sent-to:{channel}:{to}"),
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a device confirmed with a first code at `confirmed_step`, which counts
    /// as used (so that code cannot sign in afterwards) — only while the user has
    /// fewer than `at_most` (1 for a first enrolment) and the name is free, checked
    /// in the same transaction, so enrolments finishing at once cannot pass the
    /// limit together.
    async fn add_totp_device(
        &self,
        user: &str,
        name: &str,
        sealed_secret: Vec<u8>,
        confirmed_step: u64,
        now: SystemTime,
        at_most: usize,
    ) -> StoreResult<DeviceAdded>;

    async fn totp_devices(&self, user: &str) -> StoreResult<Vec<TotpDevice>>;

    /// Renames a device; its secret, sealed to the new name, comes along.
    /// False if the user has no such device or already one of that name.
    async fn rename_device(
        &self,
        user: &str,
        id: i64,
        name: &str,
        sealed_secret: Vec<u8>,
    ) -> StoreResult<bool>;

    /// Replaces a device's sealed secret (after a key rotation, sealed again under
    /// the new key); false if the user has no such device.
    async fn reseal_device(&self, user: &str, id: i64, sealed_secret: Vec<u8>) -> StoreResult<bool>;

    /// Removes one of the user's devices; with `keep_one`, never the last (counted
    /// in the same transaction, so removals at once cannot leave none).
    async fn remove_device(&self, user: &str, id: i64, keep_one: bool) -> StoreResult<DeviceRemoval>;

    /// Whether `user` signed in before with this `kind` of signal (`browser`,
    /// `network`) of this value (a hash), seen since `since`; and whether they
    /// have any signal at all (`None`: their first sign-in on record).
    async fn signal_seen(
        &self,
        user: &str,
        kind: &str,
        value: [u8; 32],
        since: SystemTime,
    ) -> StoreResult<Option<bool>>;

    /// Records that `user` signed in with this signal at `now`.
    async fn note_signal(&self, user: &str, kind: &str, value: [u8; 32], now: SystemTime) -> StoreResult<()>;

    /// Forgets `user`'s signals last seen before `before` (no longer known).
    async fn forget_signals(&self, user: &str, before: SystemTime) -> StoreResult<()>;

    /// Registers a security key, unless the user has `at_most` devices (apps and
    /// keys together) or one of its name, or the key is registered already.
    async fn add_security_key(&self, key: &SecurityKeyRecord, at_most: usize) -> StoreResult<DeviceAdded>;

    async fn security_keys(&self, user: &str) -> StoreResult<Vec<SecurityKeyRecord>>;

    /// Records a use of the user's key `id`: its updated credential (counter, backup
    /// state) and the time, only if its stored credential is still `previous` (the
    /// one the use was checked against); false otherwise, or if the user has no
    /// such key. Of two uses at once with the same counter, one is recorded.
    async fn security_key_used(
        &self,
        user: &str,
        id: i64,
        previous: &[u8],
        credential: Vec<u8>,
        now: SystemTime,
    ) -> StoreResult<bool>;

    /// Removes the user's key `id`; with `keep_one`, not if it is their last device
    /// (apps and keys together).
    async fn remove_security_key(&self, user: &str, id: i64, keep_one: bool) -> StoreResult<DeviceRemoval>;

    /// The newest TOTP step this user ever had accepted.
    async fn last_totp_step(&self, user: &str) -> StoreResult<Option<u64>>;

    /// Marks `step` used for `user` if it is newer than every step used before;
    /// false when it is not (a replay, or a concurrent request won).
    async fn accept_totp_step(
        &self,
        user: &str,
        device_id: i64,
        step: u64,
        now: SystemTime,
    ) -> StoreResult<bool>;

    /// Replaces all of a user's recovery codes with these hashes; old codes die at once.
    async fn replace_recovery_codes(&self, user: &str, phcs: Vec<String>, now: SystemTime)
        -> StoreResult<()>;

    async fn unused_recovery_codes(&self, user: &str) -> StoreResult<Vec<StoredRecoveryCode>>;

    /// Marks a code used; false if it was used already (by a concurrent request).
    async fn use_recovery_code(&self, user: &str, id: i64, now: SystemTime) -> StoreResult<bool>;

    async fn failures(&self, subject: Subject<'_>) -> StoreResult<FailureRecord>;

    /// Counts an attempt as a failure against each subject (under its policy)
    /// before it is checked, unless any of them is locked: one transaction, so
    /// that parallel attempts cannot all pass a check made before any was counted
    /// ([`LockoutPolicy::charge`]). `Ok(Err(wait))` refuses the attempt and counts
    /// nothing anywhere.
    async fn charge_attempt(
        &self,
        subjects: &[(Subject<'_>, LockoutPolicy)],
        now: SystemTime,
    ) -> StoreResult<Result<Vec<Charge>, Duration>>;

    /// Takes back charged attempts that were no failures ([`LockoutPolicy::refund`]).
    async fn refund_attempt(
        &self,
        subjects: &[(Subject<'_>, LockoutPolicy)],
        charges: Vec<Charge>,
    ) -> StoreResult<()>;

    async fn reset_failures(&self, subject: Subject<'_>) -> StoreResult<()>;

    /// Remembers a browser the user passed the second factor in ("don't ask again").
    async fn trust_device(
        &self,
        id_hash: [u8; 32],
        user: &str,
        passed_at: SystemTime,
        until: SystemTime,
    ) -> StoreResult<()>;

    /// The user a remembered browser belongs to and when it passed the second factor,
    /// if it is still trusted at `now`.
    async fn trusted_device(
        &self,
        id_hash: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<(String, SystemTime)>>;

    /// Forgets every browser the user asked to be remembered in.
    async fn forget_trusted_devices(&self, user: &str) -> StoreResult<()>;

    /// Since when an app's `mfa` default has been the one `fingerprint` describes:
    /// the time recorded when it was first seen, or `now` (recorded) when it is new
    /// or differs from the one recorded last. Several gateways on one store agree.
    async fn mfa_default_since(
        &self,
        app: &str,
        fingerprint: &str,
        now: SystemTime,
    ) -> StoreResult<SystemTime>;

    /// Whether the user turned the second factor on where it is optional.
    async fn mfa_opted_in(&self, user: &str) -> StoreResult<bool>;

    async fn set_mfa_opted_in(&self, user: &str, on: bool, now: SystemTime) -> StoreResult<()>;

    /// The address the user entered and confirmed for e-mailed codes, if any.
    async fn email_address(&self, user: &str) -> StoreResult<Option<String>>;

    async fn set_email_address(&self, user: &str, address: &str, now: SystemTime) -> StoreResult<()>;

    /// The number the user confirmed for codes by text message, if any.
    async fn phone_number(&self, user: &str) -> StoreResult<Option<String>>;

    /// Sets the number for codes by text message; `None` removes it.
    async fn set_phone_number(&self, user: &str, number: Option<&str>, now: SystemTime) -> StoreResult<()>;

    /// The method the user chose to be offered first at sign-in, if they chose one.
    async fn preferred_method(&self, user: &str) -> StoreResult<Option<PreferredMethod>>;

    async fn set_preferred_method(
        &self,
        user: &str,
        method: PreferredMethod,
        now: SystemTime,
    ) -> StoreResult<()>;

    /// Lets the user enrol a first device until `until` (an admin's decision).
    async fn open_enrolment(&self, user: &str, until: SystemTime, now: SystemTime) -> StoreResult<()>;

    /// Until when an admin has opened enrolment for the user, if they have.
    async fn enrolment_open_until(&self, user: &str) -> StoreResult<Option<SystemTime>>;

    /// Appends to the audit trail (there is no way to change or delete a row).
    async fn record(&self, event: &AuditEvent) -> StoreResult<()>;

    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;

    /// Every user the store knows, by name.
    async fn users(&self) -> StoreResult<Vec<UserSummary>>;

    /// Removes a user's devices, recovery codes, app passwords and opened
    /// enrolment, and revokes their sessions, in one transaction: the next sign-in
    /// asks them to enrol again.
    async fn reset_second_factor(&self, user: &str) -> StoreResult<()>;

    /// Adds an app password (its `id` is ignored) unless its user has `at_most`
    /// already, or one of that name for that app: the new id, or `None`.
    async fn add_app_password(&self, entry: &StoredAppPassword, at_most: usize) -> StoreResult<Option<i64>>;

    /// A user's app passwords, or every user's for `None`, oldest first.
    async fn app_passwords(&self, user: Option<&str>) -> StoreResult<Vec<StoredAppPassword>>;

    /// Notes a use of an app password: when, and whether the app refused the
    /// password sent on with it.
    async fn note_app_password_use(&self, id: i64, now: SystemTime, app_refused: bool) -> StoreResult<()>;

    /// Removes one of the user's app passwords; every gateway hears of it.
    async fn remove_app_password(&self, user: &str, id: i64) -> StoreResult<bool>;

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;

    async fn session(&self, id_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>>;

    /// Records activity of several sessions, for the idle timeout, in one
    /// transaction; a session's time only ever moves forward.
    async fn touch_sessions(&self, touches: &[([u8; 32], SystemTime)]) -> StoreResult<()>;

    async fn revoke_session(&self, id_hash: [u8; 32]) -> StoreResult<()>;

    /// Revokes every session of a user; returns how many were live.
    async fn revoke_user_sessions(&self, user: &str) -> StoreResult<usize>;

    /// Keeps short-lived state every gateway must see (a challenge in progress,
    /// an answer withheld, an address waiting for its code), sealed by the caller,
    /// until `expires_at`; replaces what `key` held before. What expired by `now`
    /// is swept on the way.
    async fn put_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        sealed: Vec<u8>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> StoreResult<()>;

    /// What `key` holds, unless it expired by `now`.
    async fn transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<Transient>>;

    /// Replaces what `key` holds only if it is still at `version` (no other request
    /// changed it since it was read); false when it was changed or is gone.
    async fn replace_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        version: i64,
        sealed: Vec<u8>,
    ) -> StoreResult<bool>;

    /// Removes and returns what `key` holds: of requests racing for it, one gets it.
    async fn take_transient(
        &self,
        kind: TransientKind,
        key: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Tells `on` of every session revoked, and every user whose sessions or
    /// settings changed, by any gateway on this store, as it happens, so that
    /// what gateways cache is dropped at once. A backend that one gateway uses
    /// alone (SQLite) has nothing to tell: that gateway drops its cache itself,
    /// and this returns false.
    fn watch_revocations(&self, on: RevocationHandler) -> bool {
        let _ = on;
        false
    }
}

/// Called for each [`Revocation`] a store hears of.
pub type RevocationHandler = std::sync::Arc<dyn Fn(Revocation) + Send + Sync>;

/// What another gateway changed that cached sessions must not outlive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Session([u8; 32]),
    /// Every session of this user, and what is read with them (their settings).
    User(String),
    /// The channel went down: revocations may be missed until it is back (the
    /// cache's short lifetime is the fallback meanwhile).
    ChannelDown,
    /// The channel is (back) up; anything cached before may have missed some.
    ChannelUp,
}

/// What short-lived state is kept for (a key names one entry within its kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransientKind {
    /// A second-factor challenge in progress.
    Challenge,
    /// Where a passed challenge moved to, for a resubmission of its last form.
    MovedChallenge,
    /// An app's login answer withheld until its challenge is passed.
    WithheldAnswer,
    /// An address a signed-in user typed, waiting for the code sent to it.
    PendingAddress,
    /// A phone number a signed-in user typed, waiting for the code sent to it.
    PendingPhone,
    /// A script login's answer, released to the browser holding this session.
    Release,
    /// The gateway session a bearer token was released to.
    TokenBinding,
    /// A form posted across a step-up, waiting to be sent again.
    KeptRequest,
    /// A security key's registration ceremony in progress.
    KeyRegistration,
    /// A sign-in with a security key in progress.
    KeyAuthentication,
}

impl TransientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransientKind::Challenge => "challenge",
            TransientKind::MovedChallenge => "moved_challenge",
            TransientKind::WithheldAnswer => "withheld_answer",
            TransientKind::PendingAddress => "pending_address",
            TransientKind::PendingPhone => "pending_phone",
            TransientKind::Release => "release",
            TransientKind::TokenBinding => "token_binding",
            TransientKind::KeptRequest => "kept_request",
            TransientKind::KeyRegistration => "key_registration",
            TransientKind::KeyAuthentication => "key_authentication",
        }
    }
}

/// Short-lived state as stored: sealed, and a version that grows at each change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transient {
    pub sealed: Vec<u8>,
    pub version: i64,
}

/// What became of a device to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAdded {
    Added(i64),
    /// The limit is reached (for a first enrolment: another came first).
    LimitReached,
    /// The user already has a device of that name.
    NameTaken,
    /// That security key is registered already (to this user or another).
    CredentialTaken,
}

/// A security key or passkey registered as a second factor (WebAuthn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityKeyRecord {
    pub id: i64,
    pub user: String,
    pub name: String,
    /// The credential id the authenticator gave (unique across every user).
    pub credential_id: Vec<u8>,
    /// The relying party (the host name) it was registered for.
    pub rp_id: String,
    /// webauthn-rs's record of it (public key, counter, backup state), as JSON.
    pub credential: Vec<u8>,
    pub created_at: SystemTime,
    pub last_used_at: Option<SystemTime>,
}

/// What became of a device to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRemoval {
    Removed,
    NoSuchDevice,
    /// It is the user's last one, which was to be kept.
    LastOne,
}

/// The way in a user chose to be offered first on the verification page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferredMethod {
    /// A code from an authenticator app.
    App,
    /// A code sent by e-mail.
    Email,
}

impl PreferredMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PreferredMethod::App => "app",
            PreferredMethod::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<PreferredMethod> {
        match text {
            "app" => Some(PreferredMethod::App),
            "email" => Some(PreferredMethod::Email),
            _ => None,
        }
    }
}
