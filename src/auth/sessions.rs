//! Gateway sessions: a random id in an encrypted, authenticated cookie, checked
//! against the store on every request (through a short-lived cache) so that logout
//! and revocation take effect at once.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use data_encoding::BASE64URL_NOPAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::cookies;
use super::session_cache::SessionCache;
use crate::config::model::SessionSettings;
use crate::factors::SignInMethod;
use crate::store::{Revocation, RevocationHandler, SessionRecord, Store, StoreResult};

/// How often `last_seen_at` is written back: the idle timeout is exact to this.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// How long a looked-up session is trusted without asking the store again. Local
/// revocations clear it at once; this bounds what another gateway sees.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(15);
/// About this many sessions are kept in memory (~350 bytes each); beyond it, the
/// least used are read from the store again.
const CACHE_CAPACITY: usize = 500_000;
/// Memory for session cookie values already opened (about 200 bytes each, so some
/// 10,000 browsers at once); the others are opened on each request, as before. More
/// would raise the 100,000-session memory figure for little: a browser in use is
/// kept, one gone quiet makes room.
const OPENED_MEMORY: u64 = 2 * 1024 * 1024;

/// A session just started: the cookie value to set, and what was stored.
pub struct Issued {
    pub cookie_value: String,
    pub record: SessionRecord,
}

pub struct Sessions {
    store: Arc<dyn Store>,
    activity: ActivityWriter,
    cache: Arc<SessionCache>,
    channel: Arc<RevocationChannel>,
    /// Counts the changes to users' credentials heard of, here or from another
    /// gateway: what is cached beside sessions (app passwords) is good only for
    /// the count it was cached at.
    user_changes: Arc<AtomicU64>,
    jar_key: cookie::Key,
    /// The cookie key before a rotation: cookies sealed with it still open (and form
    /// tokens made with it still match) until they are renewed.
    previous_jar_key: Option<cookie::Key>,
    /// Session cookie values already opened, and the session id hash each names,
    /// for plain HTTP and for HTTPS (whose cookie name, sealed in, differs). A
    /// browser sends the same value on every request, and opening it (AES-GCM, then
    /// SHA-256 of the id) was the largest part of checking a session. Only values
    /// that opened are kept, under the whole value: a hit says what opening it
    /// again would. Forged values are never kept, so they cannot crowd out others.
    opened: [quick_cache::sync::Cache<String, [u8; 32], OpenedWeight>; 2],
}

/// What a cookie value kept as opened costs in memory, roughly.
#[derive(Clone)]
struct OpenedWeight;

impl quick_cache::Weighter<String, [u8; 32]> for OpenedWeight {
    fn weight(&self, value: &String, _id_hash: &[u8; 32]) -> u64 {
        u64::try_from(value.len()).unwrap_or(u64::MAX) + 100
    }
}

fn opened_cache() -> quick_cache::sync::Cache<String, [u8; 32], OpenedWeight> {
    quick_cache::sync::Cache::with_weighter(10_000, OPENED_MEMORY, OpenedWeight)
}

/// Whether revocations made by other gateways reach this one at once.
#[derive(Default)]
pub struct RevocationChannel(AtomicU8);

const CHANNEL_NOT_NEEDED: u8 = 0;
const CHANNEL_UP: u8 = 1;
const CHANNEL_DOWN: u8 = 2;

impl RevocationChannel {
    /// False only while a shared store's channel is down: then another gateway's
    /// sign-out reaches this one when its cache entry ages out (`CACHE_FOR`).
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed) != CHANNEL_DOWN
    }
}

/// Whether a stored session may still be used at `now`.
pub fn is_live(record: &SessionRecord, settings: &SessionSettings, now: SystemTime) -> bool {
    let within =
        |since: SystemTime, limit: Duration| now.duration_since(since).map_or(true, |age| age < limit);
    !record.revoked
        && within(record.created_at, settings.absolute_timeout)
        && within(record.last_seen_at, settings.idle_timeout)
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, cookie_key: &[u8; 64]) -> Result<Sessions, cookie::KeyError> {
        let cache = Arc::new(SessionCache::new(CACHE_CAPACITY, CACHE_FOR));
        // Down until the store says it listens (a channel that never comes up is
        // reported, not taken for one that works).
        let channel = Arc::new(RevocationChannel(AtomicU8::new(CHANNEL_DOWN)));
        let user_changes = Arc::new(AtomicU64::new(0));
        if !store.watch_revocations(forget_revoked(
            cache.clone(),
            channel.clone(),
            user_changes.clone(),
        )) {
            channel.0.store(CHANNEL_NOT_NEEDED, Ordering::Relaxed);
        }
        Ok(Sessions {
            activity: ActivityWriter::start(store.clone()),
            store,
            cache,
            channel,
            user_changes,
            jar_key: cookie::Key::try_from(cookie_key.as_slice())?,
            previous_jar_key: None,
            opened: [opened_cache(), opened_cache()],
        })
    }

    /// Also opens cookies sealed with the key before a rotation.
    pub fn with_previous_key(mut self, cookie_key: &[u8; 64]) -> Result<Sessions, cookie::KeyError> {
        self.previous_jar_key = Some(cookie::Key::try_from(cookie_key.as_slice())?);
        Ok(self)
    }

    /// The cookie keys, current first.
    fn jar_keys(&self) -> impl Iterator<Item = &cookie::Key> {
        std::iter::once(&self.jar_key).chain(self.previous_jar_key.as_ref())
    }

    /// Starts a session with a new id (never reusing one the browser had).
    pub async fn start(
        &self,
        user: &str,
        app: &str,
        method: SignInMethod,
        now: SystemTime,
        secure: bool,
    ) -> StoreResult<Issued> {
        let second_factor_at = (method != SignInMethod::Password).then_some(now);
        self.start_at(user, app, method, second_factor_at, now, secure)
            .await
    }

    /// Starts a session whose second factor was passed at `second_factor_at` (for a
    /// remembered browser: when it really was, so that `max_age` routes ask again).
    pub async fn start_at(
        &self,
        user: &str,
        app: &str,
        method: SignInMethod,
        second_factor_at: Option<SystemTime>,
        now: SystemTime,
        secure: bool,
    ) -> StoreResult<Issued> {
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        let mfa_opted_in = self.store.mfa_opted_in(user).await?;
        let record = SessionRecord {
            id_hash: hash_id(&id),
            user: user.to_owned(),
            app: app.to_owned(),
            created_at: now,
            last_seen_at: now,
            second_factor_at,
            method,
            revoked: false,
            mfa_opted_in,
        };
        self.store.insert_session(&record).await?;
        self.cache.insert(Arc::new(record.clone()));
        let cookie_value = cookies::seal_id(&self.jar_key, &BASE64URL_NOPAD.encode(&id), secure);
        Ok(Issued { cookie_value, record })
    }

    /// The live session a cookie value names for this app, if any; refreshes its
    /// idle timer. A cookie carried over from another app's host names no session here.
    /// The record is shared with the cache, not copied: every request asks this.
    pub async fn resume(
        &self,
        cookie_value: &str,
        app: &str,
        settings: &SessionSettings,
        now: SystemTime,
        secure: bool,
    ) -> StoreResult<Option<Arc<SessionRecord>>> {
        let Some(id_hash) = self.id_hash_of(cookie_value, secure) else {
            return Ok(None);
        };
        // A revocation heard while this request reads the store must not be undone
        // by caching what it read before: the cache takes it only if none came.
        let before = self.cache.revocations();
        let record = match self.cache.get(&id_hash) {
            Some(record) => record,
            None => match self.store.session(id_hash).await? {
                Some(record) => {
                    let record = Arc::new(record);
                    self.cache.insert_unless_revoked(record.clone(), before);
                    record
                }
                None => return Ok(None),
            },
        };
        if record.app != app {
            return Ok(None);
        }
        if !is_live(&record, settings, now) {
            self.cache.remove(&id_hash);
            return Ok(None);
        }
        if now
            .duration_since(record.last_seen_at)
            .is_ok_and(|d| d >= TOUCH_EVERY)
        {
            self.activity.touch(id_hash, now);
            let mut touched = (*record).clone();
            touched.last_seen_at = now;
            self.cache.insert_unless_revoked(Arc::new(touched), before);
        }
        Ok(Some(record))
    }

    /// Ends the session a cookie value names.
    pub async fn end(&self, cookie_value: &str, secure: bool) -> StoreResult<()> {
        if let Some(id_hash) = self.id_hash_of(cookie_value, secure) {
            self.store.revoke_session(id_hash).await?;
            self.cache.remove(&id_hash);
        }
        Ok(())
    }

    /// Whether other gateways' revocations reach this one at once (for metrics).
    pub fn revocation_channel(&self) -> Arc<RevocationChannel> {
        self.channel.clone()
    }

    /// Forgets what the cache holds about a user's sessions, so that the next request
    /// reads them (and the user's settings) from the store again.
    pub fn refresh_user(&self, user: &str) {
        self.cache.remove_user(user);
        self.user_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many changes to users' credentials this gateway has heard of.
    pub fn user_changes(&self) -> Arc<AtomicU64> {
        self.user_changes.clone()
    }

    /// Ends every session of a user (sign out everywhere, admin reset), and forgets
    /// every browser they asked to be remembered in: each asks for the code again.
    pub async fn end_all_for(&self, user: &str) -> StoreResult<usize> {
        self.store.forget_trusted_devices(user).await?;
        let count = self.store.revoke_user_sessions(user).await?;
        self.refresh_user(user);
        Ok(count)
    }

    /// Remembers this browser for `user` until `now + lifetime`; returns the cookie
    /// value. `passed_at` is when the second factor was passed.
    pub async fn remember(
        &self,
        user: &str,
        passed_at: SystemTime,
        now: SystemTime,
        lifetime: Duration,
        secure: bool,
    ) -> StoreResult<String> {
        let mut id = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        self.store
            .trust_device(hash_id(&id), user, passed_at, now + lifetime)
            .await?;
        Ok(cookies::seal(
            &self.jar_key,
            cookies::trust_cookie_name(secure),
            &BASE64URL_NOPAD.encode(&id),
        ))
    }

    /// When `user` passed the second factor in this remembered browser, if the
    /// cookie is genuine, theirs, and still trusted.
    pub async fn remembered(
        &self,
        cookie_value: &str,
        user: &str,
        now: SystemTime,
        secure: bool,
    ) -> StoreResult<Option<SystemTime>> {
        let name = cookies::trust_cookie_name(secure);
        let Some(id) = self
            .jar_keys()
            .find_map(|key| cookies::open(key, name, cookie_value))
        else {
            return Ok(None);
        };
        let Ok(bytes) = BASE64URL_NOPAD.decode(id.as_bytes()) else {
            return Ok(None);
        };
        Ok(self
            .store
            .trusted_device(hash_id(&bytes), now)
            .await?
            .filter(|(owner, _)| owner == user)
            .map(|(_, passed_at)| passed_at))
    }

    /// The CSRF token of forms shown to a signed-in user: tied to the session, and
    /// unforgeable without the key file.
    pub fn form_token(&self, session: &SessionRecord) -> String {
        form_token_with(&self.jar_key, session)
    }

    /// Whether a form's token belongs to this session (constant-time), made with
    /// the current key or the one before a rotation.
    pub fn form_token_matches(&self, session: &SessionRecord, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.jar_keys()
            .any(|key| bool::from(form_token_with(key, session).as_bytes().ct_eq(token.as_bytes())))
    }

    fn id_hash_of(&self, cookie_value: &str, secure: bool) -> Option<[u8; 32]> {
        let opened = &self.opened[usize::from(secure)];
        if let Some(id_hash) = opened.get(cookie_value) {
            return Some(id_hash);
        }
        let id = self
            .jar_keys()
            .find_map(|key| cookies::open_id(key, cookie_value, secure))?;
        let bytes = BASE64URL_NOPAD.decode(id.as_bytes()).ok()?;
        let id_hash = hash_id(&bytes);
        opened.insert(cookie_value.to_owned(), id_hash);
        Some(id_hash)
    }
}

fn form_token_with(key: &cookie::Key, session: &SessionRecord) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"portvakt form token\0");
    hasher.update(key.signing());
    hasher.update(session.id_hash);
    BASE64URL_NOPAD.encode(&hasher.finalize())
}

/// How long last-activity times wait to be written together.
const WRITE_ACTIVITY_EVERY: Duration = Duration::from_secs(1);
/// At most this many in one write.
const ACTIVITY_BATCH: usize = 1000;

/// Writes sessions' last activity behind the answers, in batches: a request never
/// waits for it (on SQLite, for an fsync). A crash loses at most the last second
/// of it, which can only make a session idle out sooner, never later.
struct ActivityWriter {
    queue: std::sync::mpsc::Sender<([u8; 32], SystemTime)>,
}

impl ActivityWriter {
    fn start(store: Arc<dyn Store>) -> ActivityWriter {
        let (queue, queued) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new()
            .name("portvakt-activity".into())
            .spawn(move || write_activity(&*store, &queued));
        if let Err(e) = started {
            tracing::error!(error = %e, "could not start the activity writer; idle timeouts count from sign-in");
        }
        ActivityWriter { queue }
    }

    fn touch(&self, id_hash: [u8; 32], now: SystemTime) {
        // Only fails once the writer is gone, when nothing is left to write to.
        let _ = self.queue.send((id_hash, now));
    }
}

/// The writer's loop: waits for a first touch, gathers what comes within
/// `WRITE_ACTIVITY_EVERY`, writes it, until the sessions are dropped (then what
/// is left is written).
fn write_activity(store: &dyn Store, queued: &std::sync::mpsc::Receiver<([u8; 32], SystemTime)>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        tracing::error!("could not start the activity writer's runtime");
        return;
    };
    while let Ok(first) = queued.recv() {
        let mut batch = std::collections::HashMap::from([first]);
        let until = std::time::Instant::now() + WRITE_ACTIVITY_EVERY;
        while batch.len() < ACTIVITY_BATCH {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match queued.recv_timeout(left) {
                Ok((id_hash, at)) => {
                    let latest = batch.entry(id_hash).or_insert(at);
                    *latest = (*latest).max(at);
                }
                Err(_) => break,
            }
        }
        let touches: Vec<_> = batch.into_iter().collect();
        if let Err(e) = runtime.block_on(store.touch_sessions(&touches)) {
            tracing::warn!(error = %e, sessions = touches.len(), "could not record sessions' last activity");
        }
    }
}

/// What the cache does with each revocation another gateway announces.
fn forget_revoked(
    cache: Arc<SessionCache>,
    channel: Arc<RevocationChannel>,
    user_changes: Arc<AtomicU64>,
) -> RevocationHandler {
    Arc::new(move |revocation| match revocation {
        Revocation::Session(id_hash) => cache.remove(&id_hash),
        Revocation::User(user) => {
            cache.remove_user(&user);
            user_changes.fetch_add(1, Ordering::AcqRel);
        }
        Revocation::ChannelUp => {
            user_changes.fetch_add(1, Ordering::AcqRel);
            // Whatever was revoked while the channel was down is read again.
            cache.clear();
            if channel.0.swap(CHANNEL_UP, Ordering::Relaxed) == CHANNEL_DOWN {
                tracing::info!(
                    "the revocation channel is back: other gateways' sign-outs reach this one at once"
                );
            }
        }
        Revocation::ChannelDown => {
            // Fail closed: nothing cached is trusted while revocations may be
            // missed; each request asks the store (and gets 503 if it is down).
            cache.clear();
            user_changes.fetch_add(1, Ordering::AcqRel);
            channel.0.store(CHANNEL_DOWN, Ordering::Relaxed);
            tracing::warn!(
                fallback_seconds = CACHE_FOR.as_secs(),
                "the revocation channel is down: cached sessions dropped; until it is back, another gateway's sign-out reaches this one within the cache lifetime"
            );
        }
    })
}

fn hash_id(id: &[u8]) -> [u8; 32] {
    Sha256::digest(id).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn settings() -> SessionSettings {
        SessionSettings {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            login_timeout: Duration::from_secs(300),
            mfa_changes: crate::config::model::MfaChanges::NextSignIn,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn sessions() -> (tempfile::TempDir, Arc<dyn Store>, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
        let sessions = Sessions::new(store.clone(), &[42; 64]).unwrap();
        (dir, store, sessions)
    }

    /// Activity is written behind the answer, in one batch for many sessions, and
    /// lands in the store within about a second; dropping the sessions writes what
    /// is left.
    #[tokio::test]
    async fn last_activity_reaches_the_store_behind_the_requests() {
        let (_dir, store, sessions) = sessions();
        let mut issued = Vec::new();
        for user in ["alice", "bob", "carol"] {
            issued.push(
                sessions
                    .start(user, "wiki", SignInMethod::Totp, at(0), false)
                    .await
                    .unwrap(),
            );
        }
        for session in &issued {
            let s = settings();
            let resumed = sessions.resume(&session.cookie_value, "wiki", &s, at(120), false);
            assert_eq!(
                resumed.await.unwrap().unwrap().last_seen_at,
                at(0),
                "as it was when asked"
            );
        }
        let stored_at = |i: usize| {
            let (store, hash) = (store.clone(), issued[i].record.id_hash);
            async move { store.session(hash).await.unwrap().unwrap().last_seen_at }
        };
        let asked = std::time::Instant::now();
        while stored_at(2).await != at(120) {
            assert!(asked.elapsed() < Duration::from_secs(5), "never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!((stored_at(0).await, stored_at(1).await), (at(120), at(120)));
        sessions
            .resume(&issued[0].cookie_value, "wiki", &settings(), at(300), false)
            .await
            .unwrap();
        drop(sessions);
        let asked = std::time::Instant::now();
        while stored_at(0).await != at(300) {
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "what was left was not written"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The cache of opened cookie values says what opening them would, and only that.
    #[tokio::test]
    async fn opened_cookie_values_are_remembered_only_for_what_they_open_to() {
        let (_dir, _store, sessions) = sessions();
        let issued = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        let value = &issued.cookie_value;
        let s = settings();
        let resume = |value: String, secure: bool| {
            let (s, sessions) = (&s, &sessions);
            async move { sessions.resume(&value, "wiki", s, at(10), secure).await.unwrap() }
        };
        for _ in 0..2 {
            assert_eq!(sessions.id_hash_of(value, true), Some(issued.record.id_hash));
            assert!(resume(value.clone(), true).await.is_some());
        }
        // Sealed for the HTTPS cookie's name: no good as the plain one, cached or not.
        assert_eq!(sessions.id_hash_of(value, false), None);
        assert!(resume(value.clone(), false).await.is_none());
        // A value one character off the remembered one opens to nothing.
        let mut tampered = value.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(sessions.id_hash_of(&tampered, true), None);
        assert_eq!(sessions.id_hash_of(&format!("{value}x"), true), None);
        // Remembered or not, an ended session stays ended.
        sessions.end(value, true).await.unwrap();
        assert!(resume(value.clone(), true).await.is_none());
    }

    #[tokio::test]
    async fn a_session_resumes_until_it_idles_out_and_never_after() {
        let (_dir, _store, sessions) = sessions();
        let issued = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        assert!(!issued.cookie_value.contains("alice"));
        let s = settings();
        let found = sessions
            .resume(&issued.cookie_value, "wiki", &s, at(10), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.user.as_str(), found.second_factor_at),
            ("alice", Some(at(0)))
        );
        // Used every 20 minutes, it lives on; left for 31 minutes, it ends.
        for minute in [20, 40, 60] {
            assert!(sessions
                .resume(&issued.cookie_value, "wiki", &s, at(minute * 60), true)
                .await
                .unwrap()
                .is_some());
        }
        assert!(sessions
            .resume(&issued.cookie_value, "wiki", &s, at(91 * 60 + 1), true)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_absolute_timeout_ends_even_a_busy_session() {
        let (_dir, _store, sessions) = sessions();
        let issued = sessions
            .start("alice", "wiki", SignInMethod::Password, at(0), false)
            .await
            .unwrap();
        let s = settings();
        let mut t = 0;
        while t < 12 * 3600 {
            assert!(
                sessions
                    .resume(&issued.cookie_value, "wiki", &s, at(t), false)
                    .await
                    .unwrap()
                    .is_some(),
                "at {t}"
            );
            t += 20 * 60;
        }
        assert!(sessions
            .resume(&issued.cookie_value, "wiki", &s, at(12 * 3600), false)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn logout_and_revocation_take_effect_at_once() {
        let (_dir, _store, sessions) = sessions();
        let s = settings();
        let one = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        let two = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        let bob = sessions
            .start("bob", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        assert_ne!(one.cookie_value, two.cookie_value, "a new id every time");
        assert!(sessions
            .resume(&one.cookie_value, "wiki", &s, at(1), true)
            .await
            .unwrap()
            .is_some());
        sessions.end(&one.cookie_value, true).await.unwrap();
        assert!(sessions
            .resume(&one.cookie_value, "wiki", &s, at(2), true)
            .await
            .unwrap()
            .is_none());
        assert!(sessions
            .resume(&two.cookie_value, "wiki", &s, at(2), true)
            .await
            .unwrap()
            .is_some());
        assert_eq!(sessions.end_all_for("alice").await.unwrap(), 1);
        assert!(sessions
            .resume(&two.cookie_value, "wiki", &s, at(3), true)
            .await
            .unwrap()
            .is_none());
        assert!(sessions
            .resume(&bob.cookie_value, "wiki", &s, at(3), true)
            .await
            .unwrap()
            .is_some());
    }

    #[test]
    fn sign_in_methods_read_back_as_stored() {
        for m in [
            SignInMethod::Password,
            SignInMethod::Totp,
            SignInMethod::Recovery,
            SignInMethod::Email,
            SignInMethod::TrustedDevice,
        ] {
            assert_eq!(SignInMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(SignInMethod::parse("magic"), None);
    }

    #[tokio::test]
    async fn form_tokens_belong_to_one_session() {
        let (_dir, store, sessions) = sessions();
        let a = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap()
            .record;
        let b = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap()
            .record;
        let token = sessions.form_token(&a);
        assert!(sessions.form_token_matches(&a, &token));
        assert!(!sessions.form_token_matches(&b, &token));
        assert!(!sessions.form_token_matches(&a, ""));
        let other_key = Sessions::new(store, &[7; 64]).unwrap();
        assert!(!other_key.form_token_matches(&a, &token));
    }

    /// After a key rotation, sessions and forms made under the old key still work
    /// (never an error), and new ones use the new key.
    #[tokio::test]
    async fn sessions_survive_a_key_rotation() {
        let (_dir, store, sessions) = sessions();
        let s = settings();
        let before = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        let token = sessions.form_token(&before.record);
        let rotated = Sessions::new(store.clone(), &[7; 64])
            .unwrap()
            .with_previous_key(&[42; 64])
            .unwrap();
        let resumed = rotated
            .resume(&before.cookie_value, "wiki", &s, at(1), true)
            .await
            .unwrap();
        assert_eq!(resumed.map(|r| r.user.clone()), Some("alice".to_owned()));
        assert!(rotated.form_token_matches(&before.record, &token));
        let after = rotated
            .start("alice", "wiki", SignInMethod::Totp, at(2), true)
            .await
            .unwrap();
        let only_new = Sessions::new(store, &[7; 64]).unwrap();
        assert!(only_new
            .resume(&after.cookie_value, "wiki", &s, at(3), true)
            .await
            .unwrap()
            .is_some());
        assert!(
            only_new
                .resume(&before.cookie_value, "wiki", &s, at(3), true)
                .await
                .unwrap()
                .is_none(),
            "once the previous key is dropped, its cookies are gone"
        );
    }

    #[tokio::test]
    async fn forged_tampered_or_foreign_cookies_name_no_session() {
        let (_dir, store, sessions) = sessions();
        let s = settings();
        let issued = sessions
            .start("alice", "wiki", SignInMethod::Totp, at(0), true)
            .await
            .unwrap();
        let mut tampered = issued.cookie_value.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for value in ["", "alice", "x".repeat(500).as_str(), tampered.as_str()] {
            assert!(
                sessions
                    .resume(value, "wiki", &s, at(1), true)
                    .await
                    .unwrap()
                    .is_none(),
                "{value:?}"
            );
        }
        // Nor in another app, whose password never vouched for the user.
        assert!(sessions
            .resume(&issued.cookie_value, "crm", &s, at(1), true)
            .await
            .unwrap()
            .is_none());
        // A cookie made under another key file opens nothing here.
        let other = Sessions::new(store, &[7; 64]).unwrap();
        assert!(other
            .resume(&issued.cookie_value, "wiki", &s, at(1), true)
            .await
            .unwrap()
            .is_none());
        // A Secure session's cookie is not accepted under the plain-HTTP name.
        assert!(sessions
            .resume(&issued.cookie_value, "wiki", &s, at(1), false)
            .await
            .unwrap()
            .is_none());
    }

    /// Two gateways on one PostgreSQL store: what one revokes, the other's cache
    /// forgets at once, not when its entry ages out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sign_out_on_one_gateway_reaches_the_others_cache_at_once() {
        use crate::store::PostgresStore;
        let url = crate::store::postgres::testing::fresh_database().await;
        let open = || Arc::new(PostgresStore::open(&url, None).unwrap()) as Arc<dyn Store>;
        let key = [7u8; 64];
        let (a, b) = (
            Sessions::new(open(), &key).unwrap(),
            Sessions::new(open(), &key).unwrap(),
        );
        let listening = std::time::Instant::now();
        while b.channel.0.load(Ordering::Relaxed) != CHANNEL_UP {
            assert!(listening.elapsed() < Duration::from_secs(5), "b never listened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let now = at(0);
        let seen_on_b = |cookie: String| {
            let b = &b;
            async move {
                b.resume(&cookie, "wiki", &settings(), now, false)
                    .await
                    .unwrap()
                    .is_some()
            }
        };
        let gone_from_b_within_a_second = |cookie: String| async move {
            let asked = std::time::Instant::now();
            while asked.elapsed() < Duration::from_secs(1) {
                if !seen_on_b(cookie.clone()).await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        };
        let one = a
            .start("alice", "wiki", SignInMethod::Totp, now, false)
            .await
            .unwrap();
        assert!(seen_on_b(one.cookie_value.clone()).await, "b has it cached now");
        a.end(&one.cookie_value, false).await.unwrap();
        assert!(gone_from_b_within_a_second(one.cookie_value.clone()).await);

        let two = a
            .start("alice", "wiki", SignInMethod::Totp, now, false)
            .await
            .unwrap();
        assert!(seen_on_b(two.cookie_value.clone()).await);
        a.end_all_for("alice").await.unwrap();
        assert!(gone_from_b_within_a_second(two.cookie_value.clone()).await);

        let three = a
            .start("alice", "wiki", SignInMethod::Totp, now, false)
            .await
            .unwrap();
        assert!(seen_on_b(three.cookie_value.clone()).await);
        a.store.reset_second_factor("alice").await.unwrap();
        assert!(gone_from_b_within_a_second(three.cookie_value).await);
        assert!(b.revocation_channel().is_up());
    }
}
