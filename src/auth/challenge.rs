//! Second-factor challenges in progress: a login whose app response is withheld
//! until the user passes, or a signed-in user stepping up. Short-lived, single use,
//! named by a random id in a short-lived cookie.
//!
//! They are kept in the store (sealed, `TransientState`), so that a user's next
//! request may reach any gateway of a deployment: each request reads the
//! challenge, and what it changed is written back only if no other request changed
//! it meanwhile. What must happen once (passing it, releasing the withheld answer)
//! is a take from the store, which one request wins.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use data_encoding::BASE64URL_NOPAD;
use http::{HeaderName, HeaderValue};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::transient::{fingerprint, TransientState};
use crate::factors::recovery::RecoveryCode;
use crate::factors::totp::TotpSecret;
use crate::factors::SignInMethod;
use crate::store::{StoreResult, TransientKind};

/// What a first device is called until its user renames it.
pub const DEFAULT_DEVICE_NAME: &str = "Authenticator app";

/// The largest app response the gateway will hold back; a login answer is small.
pub const MAX_WITHHELD_BODY: usize = 1024 * 1024;

/// The app's answer to a successful login, kept until the second factor is passed.
#[derive(Debug, Default, Clone)]
pub struct Withheld {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    /// The app's body has been read to its end.
    pub complete: bool,
    /// The body was larger than [`MAX_WITHHELD_BODY`]: it cannot be released whole,
    /// so it is not released at all.
    pub overflowed: bool,
}

impl Withheld {
    /// The values of its Set-Cookie headers.
    pub fn set_cookies(&self) -> impl Iterator<Item = &[u8]> {
        self.headers
            .iter()
            .filter(|(name, _)| name == http::header::SET_COOKIE)
            .map(|(_, value)| value.as_bytes())
    }

    pub fn append(&mut self, chunk: &[u8]) {
        if self.body.len() + chunk.len() > MAX_WITHHELD_BODY {
            self.overflowed = true;
        } else {
            self.body.extend_from_slice(chunk);
        }
    }

    /// The cookies the app tried to set (names only, for logs and tests).
    pub fn cookie_names(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| *k == http::header::SET_COOKIE)
            .filter_map(|(_, v)| v.to_str().ok()?.split('=').next().map(str::to_owned))
            .collect()
    }
}

/// A withheld answer as it is stored: header names and values as bytes.
#[derive(Serialize, Deserialize)]
struct StoredAnswer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    overflowed: bool,
}

impl From<&Withheld> for StoredAnswer {
    fn from(w: &Withheld) -> StoredAnswer {
        StoredAnswer {
            status: w.status,
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: w.body.clone(),
            overflowed: w.overflowed,
        }
    }
}

impl StoredAnswer {
    /// `None` if a header no longer reads as one (never released half).
    fn into_withheld(self) -> Option<Withheld> {
        let headers = self
            .headers
            .into_iter()
            .map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_bytes(&v).ok()?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Withheld {
            status: self.status,
            headers,
            body: self.body,
            complete: true,
            overflowed: self.overflowed,
        })
    }
}

/// What passing the challenge leads to.
#[derive(Debug, Serialize, Deserialize)]
pub enum Purpose {
    /// Release the app's withheld login response, stored (once whole) under this id.
    Login { answer: String },
    /// Go back to this same-host path (step-up, or a password session that now
    /// needs a second factor).
    Return(String),
    /// A login a page's script made: the app's answer (stored under `answer`) is
    /// released to that script's repeat of its call, in the browser holding the
    /// new session; a navigation goes back to `back`, the page the call came from.
    ScriptLogin { answer: String, back: String },
    /// A step-up asked by a posted form: the form is kept under `kept`
    /// (`KeptRequests`) and sent again once the factor is passed. (Added last:
    /// challenges stored by an older build still read.)
    Resume { kept: String },
}

impl Purpose {
    /// The id of the app's answer this challenge withholds, if it withholds one.
    pub fn answer(&self) -> Option<&str> {
        match self {
            Purpose::Login { answer } | Purpose::ScriptLogin { answer, .. } => Some(answer),
            Purpose::Return(_) | Purpose::Resume { .. } => None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Stage {
    /// The user has no device yet: enrol one with this secret (not stored until a
    /// first code confirms it).
    Enrol(TotpSecret),
    Verify,
    /// Passed; waiting for the user to continue (after reading their new recovery
    /// codes, or how many are left).
    Passed {
        method: SignInMethod,
        new_codes: Option<Vec<RecoveryCode>>,
        codes_left: Option<usize>,
    },
    /// A sign-in that looks unusual where no second factor is asked: confirmed
    /// with an e-mailed code; what it came from is remembered once it is. (Added
    /// last: challenges stored by an older build still read.)
    Unusual {
        signals: super::unusual::Signals,
        /// Begun as a first enrolment: once confirmed, the user enrols.
        then_enrol: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    pub user: String,
    /// The app the user signed in to (its name).
    pub app: String,
    pub purpose: Purpose,
    pub stage: Stage,
    /// Every form of this challenge carries this token.
    pub csrf: String,
    /// The name a device enrolled through this challenge gets.
    pub device_name: String,
    /// The code last e-mailed for this challenge, if any.
    pub email_code: Option<crate::factors::sent_code::SentCode>,
    /// The code last sent by text message for this challenge, if any.
    pub sms_code: Option<crate::factors::sent_code::SentCode>,
    /// An address typed during enrolment, kept until the code sent to it comes back.
    pub pending_address: Option<String>,
    /// The user ticked "don't ask again in this browser" with the code that passed.
    pub remember_browser: bool,
    /// One more device for a signed-in user, rather than a first one at sign-in.
    pub adding_device: bool,
    /// The fingerprint of the form that passed it (`form_fingerprint`), once passed
    /// and moved to a new id: that form, sent again, shows the same page.
    pub passed_form: Option<[u8; 32]>,
    pub created_at: SystemTime,
    /// The stored version this was read at (a write-back needs it unchanged).
    #[serde(skip)]
    version: i64,
    /// What it was when read (`transient::fingerprint`): unchanged, it is not
    /// written back, so that a page view never undoes a form sent beside it.
    #[serde(skip)]
    loaded: [u8; 32],
}

impl Challenge {
    pub fn new(user: &str, app: &str, purpose: Purpose, stage: Stage, now: SystemTime) -> Challenge {
        Challenge {
            user: user.to_owned(),
            app: app.to_owned(),
            purpose,
            stage,
            csrf: random_token(),
            device_name: DEFAULT_DEVICE_NAME.to_owned(),
            email_code: None,
            sms_code: None,
            pending_address: None,
            remember_browser: false,
            adding_device: false,
            passed_form: None,
            created_at: now,
            version: 0,
            loaded: [0; 32],
        }
    }

    /// The code last sent over `channel` for this challenge.
    pub fn sent_code_mut(
        &mut self,
        channel: super::Channel,
    ) -> &mut Option<crate::factors::sent_code::SentCode> {
        match channel {
            super::Channel::Email => &mut self.email_code,
            super::Channel::TextMessage => &mut self.sms_code,
        }
    }

    /// Whether `form` is the one that passed this challenge (`form_fingerprint`).
    pub fn passed_by(&self, form: [u8; 32]) -> bool {
        self.passed_form
            .is_some_and(|passed| bool::from(passed.ct_eq(&form)))
    }

    /// Constant-time check of a form's CSRF token.
    pub fn csrf_matches(&self, token: &str) -> bool {
        self.csrf.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// One request's copy of a challenge.
pub type SharedChallenge = Arc<Mutex<Challenge>>;

#[derive(Clone)]
pub struct Challenges {
    state: TransientState,
    /// Forms of one challenge that reach this gateway are handled one at a time
    /// (a double click shows the page the first click led to). Across gateways,
    /// what must happen once is decided by the store.
    busy: moka::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
    ttl: Duration,
}

/// What identifies one submission of a challenge's form: the page, the form token
/// and the code typed. Only who typed that code (or saw it typed) can repeat it.
pub fn form_fingerprint(page: &str, csrf: &str, code: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [page, csrf, code] {
        hash.update(part.len().to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

fn lock(challenge: &SharedChallenge) -> std::sync::MutexGuard<'_, Challenge> {
    challenge
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Challenges {
    /// Challenges (and the answers they withhold) expire `ttl` after they were made.
    pub fn new(state: TransientState, ttl: Duration) -> Challenges {
        Challenges {
            state,
            busy: moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(100_000)
                .build(),
            ttl,
        }
    }

    /// Stores a new challenge; returns its id (for the cookie) and a handle to it.
    pub async fn insert(&self, challenge: Challenge) -> StoreResult<(String, SharedChallenge)> {
        let id = random_token();
        let expires_at = challenge.created_at + self.ttl;
        self.state
            .put(
                TransientKind::Challenge,
                &id,
                &challenge,
                expires_at,
                challenge.created_at,
            )
            .await?;
        Ok((id, Arc::new(Mutex::new(challenge))))
    }

    /// The challenge `id` names, as stored now, unless it expired by `now`.
    pub async fn get(&self, id: &str, now: SystemTime) -> StoreResult<Option<SharedChallenge>> {
        let found = self
            .state
            .get::<Challenge>(TransientKind::Challenge, id, now)
            .await?;
        Ok(found.map(|found| {
            let mut challenge: Challenge = found.value;
            challenge.version = found.version;
            challenge.loaded = fingerprint(&challenge);
            Arc::new(Mutex::new(challenge))
        }))
    }

    /// Held while one form of the challenge `id` is handled on this gateway.
    pub fn busy(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.busy.get_with(id.to_owned(), Arc::default)
    }

    /// Writes back what a request changed; false (nothing written) if another
    /// request changed the challenge since it was read, or it is gone.
    pub async fn save(&self, id: &str, challenge: &SharedChallenge) -> StoreResult<bool> {
        let (saved, version, now_is) = {
            let c = lock(challenge);
            let now_is = fingerprint(&*c);
            if now_is == c.loaded {
                return Ok(true);
            }
            let saved = self.state.replace(TransientKind::Challenge, id, c.version, &*c);
            (saved, c.version, now_is)
        };
        let saved = saved.await?;
        if saved {
            let mut c = lock(challenge);
            c.version = version + 1;
            c.loaded = now_is;
        }
        Ok(saved)
    }

    /// Moves a challenge, passed by the form `passing_form` fingerprints, to a new
    /// id with a new form token, as `challenge` has it now; `None` if it is gone
    /// (another request moved or took it). Whoever held the old id and token holds
    /// nothing now, unless they send that very form again.
    pub async fn rekey(
        &self,
        id: &str,
        challenge: &SharedChallenge,
        passing_form: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<String>> {
        if self
            .state
            .take::<Challenge>(TransientKind::Challenge, id, now)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let new_id = random_token();
        let expires_at = {
            let mut c = lock(challenge);
            c.csrf = random_token();
            c.passed_form = Some(passing_form);
            c.version = 0;
            c.created_at + self.ttl
        };
        let put = {
            let c = lock(challenge);
            self.state
                .put(TransientKind::Challenge, &new_id, &*c, expires_at, now)
        };
        put.await?;
        self.state
            .put(TransientKind::MovedChallenge, id, &new_id, expires_at, now)
            .await?;
        Ok(Some(new_id))
    }

    /// The passed challenge `id` leads to, and its id now, if it is still live:
    /// `id` is the old id of a challenge moved when it was passed (the first
    /// answer had not reached the browser yet) or the new one (it had: a reload of
    /// the page it showed). Whether a form sent to it is the one that passed it
    /// is `Challenge::passed_by`.
    pub async fn passed_and_moved(
        &self,
        id: &str,
        now: SystemTime,
    ) -> StoreResult<Option<(String, SharedChallenge)>> {
        let moved = self
            .state
            .get::<String>(TransientKind::MovedChallenge, id, now)
            .await?;
        let new_id = moved.map_or_else(|| id.to_owned(), |m| m.value);
        let Some(challenge) = self.get(&new_id, now).await? else {
            return Ok(None);
        };
        let passed = lock(&challenge).passed_form.is_some();
        Ok(passed.then_some((new_id, challenge)))
    }

    /// Takes a challenge out, so it can be completed once only.
    pub async fn take(&self, id: &str, now: SystemTime) -> StoreResult<Option<SharedChallenge>> {
        let taken = self
            .state
            .take::<Challenge>(TransientKind::Challenge, id, now)
            .await?;
        Ok(taken.map(|c| Arc::new(Mutex::new(c))))
    }

    /// Stores the app's answer, once whole, for the challenge that withholds it.
    pub async fn put_answer(&self, answer: &str, withheld: &Withheld, now: SystemTime) -> StoreResult<()> {
        self.keep(TransientKind::WithheldAnswer, answer, withheld, now)
            .await
    }

    /// The withheld answer, if it is whole and stored by now (left in place).
    pub async fn answer(&self, answer: &str, now: SystemTime) -> StoreResult<Option<Withheld>> {
        let found = self
            .state
            .get::<StoredAnswer>(TransientKind::WithheldAnswer, answer, now)
            .await?;
        Ok(found.and_then(|f| f.value.into_withheld()))
    }

    /// Takes the withheld answer out: it is released once.
    pub async fn take_answer(&self, answer: &str, now: SystemTime) -> StoreResult<Option<Withheld>> {
        self.take_kept(TransientKind::WithheldAnswer, answer, now).await
    }

    /// Keeps a passed script login's answer for the browser holding the session
    /// `session_cookie` (the value it was just handed): that browser's repeat of
    /// the login call receives it, once.
    pub async fn put_release(
        &self,
        session_cookie: &str,
        withheld: &Withheld,
        now: SystemTime,
    ) -> StoreResult<()> {
        self.keep(TransientKind::Release, session_cookie, withheld, now)
            .await
    }

    /// Takes out the answer waiting for the browser holding `session_cookie`.
    pub async fn take_release(&self, session_cookie: &str, now: SystemTime) -> StoreResult<Option<Withheld>> {
        self.take_kept(TransientKind::Release, session_cookie, now).await
    }

    async fn keep(
        &self,
        kind: TransientKind,
        id: &str,
        withheld: &Withheld,
        now: SystemTime,
    ) -> StoreResult<()> {
        let stored = StoredAnswer::from(withheld);
        self.state.put(kind, id, &stored, now + self.ttl, now).await
    }

    async fn take_kept(
        &self,
        kind: TransientKind,
        id: &str,
        now: SystemTime,
    ) -> StoreResult<Option<Withheld>> {
        let taken = self.state.take::<StoredAnswer>(kind, id, now).await?;
        Ok(taken.and_then(StoredAnswer::into_withheld))
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    BASE64URL_NOPAD.encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(now: SystemTime) -> Challenge {
        Challenge::new(
            "alice",
            "wiki",
            Purpose::Login {
                answer: random_token(),
            },
            Stage::Verify,
            now,
        )
    }

    /// Challenges on a real store and key file, as the gateway has them.
    fn challenges(dir: &tempfile::TempDir) -> Challenges {
        Challenges::new(TransientState::on_a_real_store(dir), Duration::from_secs(300))
    }

    fn made() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[tokio::test]
    async fn a_challenge_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let challenges = challenges(&dir);
        let now = made();
        let (id, _) = challenges.insert(login(now)).await.unwrap();
        assert!(challenges.get(&id, now).await.unwrap().is_some());
        assert!(challenges.take(&id, now).await.unwrap().is_some());
        assert!(challenges.take(&id, now).await.unwrap().is_none());
        assert!(challenges.get("made-up", now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_challenge_expires_by_the_clock_it_is_asked_with() {
        let dir = tempfile::tempdir().unwrap();
        let challenges = challenges(&dir);
        let (id, _) = challenges.insert(login(made())).await.unwrap();
        let get = |secs| challenges.get(&id, made() + Duration::from_secs(secs));
        assert!(get(299).await.unwrap().is_some());
        assert!(get(300).await.unwrap().is_none());
    }

    /// Two requests read the challenge; the first to write back wins, the other's
    /// change is not written over it. A request that changed nothing writes nothing.
    #[tokio::test]
    async fn a_write_back_never_undoes_another_requests_change() {
        let dir = tempfile::tempdir().unwrap();
        let challenges = challenges(&dir);
        let (id, _) = challenges.insert(login(made())).await.unwrap();
        let first = challenges.get(&id, made()).await.unwrap().unwrap();
        let second = challenges.get(&id, made()).await.unwrap().unwrap();
        let viewer = challenges.get(&id, made()).await.unwrap().unwrap();
        assert!(challenges.save(&id, &viewer).await.unwrap(), "nothing to write");
        first.lock().unwrap().remember_browser = true;
        assert!(challenges.save(&id, &first).await.unwrap());
        second.lock().unwrap().device_name = "Tablet".into();
        assert!(
            !challenges.save(&id, &second).await.unwrap(),
            "read before the first wrote"
        );
        let now_is = challenges.get(&id, made()).await.unwrap().unwrap();
        let c = now_is.lock().unwrap();
        assert!(c.remember_browser);
        assert_eq!(c.device_name, DEFAULT_DEVICE_NAME);
    }

    #[tokio::test]
    async fn a_moved_challenge_answers_only_the_form_that_passed_it() {
        let dir = tempfile::tempdir().unwrap();
        let challenges = challenges(&dir);
        let (old, challenge) = challenges.insert(login(made())).await.unwrap();
        let form = form_fingerprint("/p", "csrf", "123456");
        let new = challenges
            .rekey(&old, &challenge, form, made())
            .await
            .unwrap()
            .unwrap();
        assert!(
            challenges.get(&old, made()).await.unwrap().is_none(),
            "the old id holds nothing"
        );
        assert!(
            challenges
                .rekey(&old, &challenge, form, made())
                .await
                .unwrap()
                .is_none(),
            "moved once"
        );
        for id in [&old, &new] {
            let (found, moved) = challenges.passed_and_moved(id, made()).await.unwrap().unwrap();
            assert_eq!(&found, &new);
            let moved = moved.lock().unwrap();
            assert!(moved.passed_by(form));
            assert!(!moved.passed_by(form_fingerprint("/p", "csrf", "654321")));
        }
        let (unpassed, _) = challenges.insert(login(made())).await.unwrap();
        assert!(challenges
            .passed_and_moved(&unpassed, made())
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_withheld_answer_is_stored_sealed_and_released_once() {
        let dir = tempfile::tempdir().unwrap();
        let challenges = challenges(&dir);
        let mut withheld = Withheld {
            status: 302,
            headers: vec![(
                http::header::SET_COOKIE,
                HeaderValue::from_static("sid=secret-session"),
            )],
            ..Withheld::default()
        };
        withheld.append(b"the body");
        challenges.put_answer("a1", &withheld, made()).await.unwrap();
        let file = std::fs::read(dir.path().join(crate::store::sqlite::DATABASE_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join("portvakt.db-wal")).unwrap_or_default();
        for bytes in [&file, &wal] {
            assert!(
                !bytes.windows(14).any(|w| w == b"secret-session"),
                "sealed at rest"
            );
        }
        let peeked = challenges.answer("a1", made()).await.unwrap().unwrap();
        assert_eq!((peeked.status, peeked.body.as_slice()), (302, &b"the body"[..]));
        let taken = challenges.take_answer("a1", made()).await.unwrap().unwrap();
        assert_eq!(taken.headers, withheld.headers);
        assert!(challenges.take_answer("a1", made()).await.unwrap().is_none());
    }

    #[test]
    fn csrf_tokens_are_random_and_checked_whole() {
        let a = login(SystemTime::now());
        let b = login(SystemTime::now());
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf.clone()));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(&a.csrf[..10]));
        assert!(!a.csrf_matches(""));
    }

    #[test]
    fn an_oversized_response_is_marked_not_cut() {
        let mut withheld = Withheld::default();
        withheld.append(&vec![b'x'; MAX_WITHHELD_BODY - 1]);
        withheld.append(b"yy");
        assert!(withheld.overflowed);
        assert_eq!(withheld.body.len(), MAX_WITHHELD_BODY - 1);
    }
}
