//! Second-factor challenges in progress: a login whose app response is withheld
//! until the user passes, or a signed-in user stepping up. Short-lived, single use,
//! named by a random id in a short-lived cookie.
//!
//! They live in this gateway's memory: a challenge lasts minutes, and losing one
//! (a restart) only means signing in again — nothing the user was told is lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use data_encoding::BASE64URL_NOPAD;
use http::{HeaderName, HeaderValue};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::factors::recovery::RecoveryCode;
use crate::factors::totp::TotpSecret;
use crate::factors::SignInMethod;

/// What a first device is called until its user renames it.
pub const DEFAULT_DEVICE_NAME: &str = "Authenticator app";

/// The largest app response the gateway will hold back; a login answer is small.
pub const MAX_WITHHELD_BODY: usize = 1024 * 1024;

/// The app's answer to a successful login, kept until the second factor is passed.
#[derive(Debug, Default)]
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

/// What passing the challenge leads to.
#[derive(Debug)]
pub enum Purpose {
    /// Release the app's withheld login response.
    Login(Withheld),
    /// Go back to this same-host path (step-up, or a password session that now
    /// needs a second factor).
    Return(String),
}

#[derive(Debug)]
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
}

#[derive(Debug)]
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
    pub email_code: Option<crate::factors::email::EmailCode>,
    /// An address typed during enrolment, kept until the code sent to it comes back.
    pub pending_address: Option<String>,
    /// The user ticked "don't ask again in this browser" with the code that passed.
    pub remember_browser: bool,
    /// One more device for a signed-in user, rather than a first one at sign-in.
    pub adding_device: bool,
    /// The fingerprint of the form that passed it (`form_fingerprint`), once passed
    /// and moved to a new id: that form, sent again, shows the same page.
    pub passed_form: Option<[u8; 32]>,
    /// Held while a form of this challenge is handled, so that a double click or
    /// parallel submissions are answered one after the other, each seeing what
    /// the one before did.
    pub busy: Arc<tokio::sync::Mutex<()>>,
    pub created_at: SystemTime,
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
            pending_address: None,
            remember_browser: false,
            adding_device: false,
            passed_form: None,
            busy: Arc::default(),
            created_at: now,
        }
    }

    /// Constant-time check of a form's CSRF token.
    pub fn csrf_matches(&self, token: &str) -> bool {
        self.csrf.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

pub type SharedChallenge = Arc<Mutex<Challenge>>;

pub struct Challenges {
    /// The cache's own time-to-live only bounds memory; whether a challenge is still
    /// good is decided against the caller's clock, like every other expiry.
    live: moka::sync::Cache<String, SharedChallenge>,
    /// Old id → new id of each passed challenge that moved (`rekey`), for a
    /// resubmission of exactly the form that passed it: a double click.
    moved: moka::sync::Cache<String, String>,
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

impl Challenges {
    /// Challenges expire `ttl` after they were made.
    pub fn new(ttl: Duration) -> Challenges {
        Challenges {
            live: moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(100_000)
                .build(),
            moved: moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(100_000)
                .build(),
            ttl,
        }
    }

    /// Stores a challenge; returns its id (for the cookie) and a handle to it.
    pub fn insert(&self, challenge: Challenge) -> (String, SharedChallenge) {
        let id = random_token();
        let shared = Arc::new(Mutex::new(challenge));
        self.live.insert(id.clone(), shared.clone());
        (id, shared)
    }

    /// The challenge `id` names, unless it expired by `now`.
    pub fn get(&self, id: &str, now: SystemTime) -> Option<SharedChallenge> {
        let challenge = self.live.get(id)?;
        let created_at = challenge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .created_at;
        if created_at + self.ttl <= now {
            self.live.invalidate(id);
            return None;
        }
        Some(challenge)
    }

    /// Moves a challenge, passed by the form `passing_form` fingerprints, to a new
    /// id with a new form token; `None` if it is gone. Whoever held the old id and
    /// token holds nothing now, unless they send that very form again.
    pub fn rekey(&self, id: &str, passing_form: [u8; 32]) -> Option<String> {
        let challenge = self.live.remove(id)?;
        {
            let mut c = challenge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            c.csrf = random_token();
            c.passed_form = Some(passing_form);
        }
        let new_id = random_token();
        self.live.insert(new_id.clone(), challenge);
        self.moved.insert(id.to_owned(), new_id.clone());
        Some(new_id)
    }

    /// For exactly the form that passed the challenge once known as `old_id`, sent
    /// again (a double click): its new id, and the challenge if it is still live.
    ///
    /// `id` is the old id (the first answer had not reached the browser yet) or the
    /// new one (it had: a reload of the page it showed).
    pub fn resubmitted(
        &self,
        id: &str,
        form: [u8; 32],
        now: SystemTime,
    ) -> Option<(String, SharedChallenge)> {
        let new_id = self.moved.get(id).unwrap_or_else(|| id.to_owned());
        let challenge = self.get(&new_id, now)?;
        let passed_by = challenge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .passed_form;
        passed_by
            .is_some_and(|passed| bool::from(passed.ct_eq(&form)))
            .then_some((new_id, challenge))
    }

    /// Takes a challenge out, so it can be completed once only.
    pub fn take(&self, id: &str) -> Option<SharedChallenge> {
        self.live.remove(id)
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
            Purpose::Login(Withheld::default()),
            Stage::Verify,
            now,
        )
    }

    #[test]
    fn a_challenge_is_taken_once() {
        let now = SystemTime::now();
        let challenges = Challenges::new(Duration::from_secs(300));
        let (id, _) = challenges.insert(login(now));
        assert!(challenges.get(&id, now).is_some());
        assert!(challenges.take(&id).is_some());
        assert!(challenges.take(&id).is_none());
        assert!(challenges.get("made-up", now).is_none());
    }

    #[test]
    fn a_challenge_expires_by_the_clock_it_is_asked_with() {
        let made = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let challenges = Challenges::new(Duration::from_secs(300));
        let (id, _) = challenges.insert(login(made));
        assert!(challenges.get(&id, made + Duration::from_secs(299)).is_some());
        assert!(challenges.get(&id, made + Duration::from_secs(300)).is_none());
        assert!(
            challenges.get(&id, made).is_none(),
            "an expired challenge is gone for good"
        );
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
