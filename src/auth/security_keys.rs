//! Security keys and passkeys (WebAuthn) as a second factor, through webauthn-rs:
//! the security-key ceremony, user verification preferred.
//!
//! Each ceremony's state stays server-side, sealed in the store (`transient`):
//! never in a cookie or a form. It is bound to what it was begun in (the
//! challenge, or the signed-in session: one live ceremony each, a new one
//! replacing it), so an answer captured from one sign-in does not finish
//! another; and it is taken once, by the user it was begun for, on the host it
//! was begun on, within five minutes. The relying party is the host the user is on: its name is the RP id,
//! its scheme, name and port the one allowed origin.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
    SecurityKey, SecurityKeyAuthentication, SecurityKeyRegistration, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::transient::TransientState;
use crate::store::{SecurityKeyRecord, StoreError, TransientKind};

/// How long a ceremony waits for the authenticator (WebAuthn's own timeout).
const CEREMONY_LIFETIME: Duration = Duration::from_secs(300);

/// The site a key is registered for and used on: the host the user is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// The host name without its port.
    pub id: String,
    /// `scheme://host[:port]`, as the browser names the page's origin.
    pub origin: String,
    /// The name authenticators show (the issuer).
    pub name: String,
}

impl RelyingParty {
    /// The relying party of a page on `host` (`name[:port]`, as the request named
    /// it), over HTTPS or not, named `name` to the user.
    pub fn of(host: &str, secure: bool, name: &str) -> Option<RelyingParty> {
        let authority: http::uri::Authority = host.parse().ok()?;
        let id = authority.host().trim_start_matches('[').trim_end_matches(']');
        let scheme = if secure { "https" } else { "http" };
        Some(RelyingParty {
            id: id.to_ascii_lowercase(),
            origin: format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()),
            name: name.to_owned(),
        })
    }

    fn webauthn(&self) -> Result<Webauthn, KeyError> {
        let origin = Url::parse(&self.origin).map_err(|e| KeyError::Rejected(e.to_string()))?;
        WebauthnBuilder::new(&self.id, &origin)
            .and_then(|b| b.rp_name(&self.name).timeout(CEREMONY_LIFETIME).build())
            .map_err(|e| KeyError::Rejected(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No such ceremony: never begun, used already, or expired.
    #[error("no such ceremony (used, expired, or never begun)")]
    Gone,
    /// Begun for another user or on another host.
    #[error("the ceremony was begun for another user or host")]
    NotYours,
    /// The authenticator's answer does not verify (or the key is not the user's).
    #[error("the security key's answer was refused: {0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ceremony in progress, as stored.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    user: String,
    rp_id: String,
    /// The name the key gets (registration only).
    name: String,
    /// webauthn-rs's state, as JSON (its types need a self-describing format).
    state: String,
}

/// A key registered: what the store keeps of it.
pub struct Registered {
    pub credential_id: Vec<u8>,
    pub credential: Vec<u8>,
}

/// A key used: which of the user's keys, and its record after the use (counter,
/// backup state).
pub struct Used {
    pub id: i64,
    /// The stored record the use was checked against.
    pub previous: Vec<u8>,
    pub credential: Vec<u8>,
}

#[derive(Clone)]
pub struct SecurityKeys {
    state: TransientState,
}

impl SecurityKeys {
    pub fn new(state: TransientState) -> SecurityKeys {
        SecurityKeys { state }
    }

    /// Begins registering a key named `name` for `user` (the keys they have are
    /// excluded): the ceremony's id and the options for the browser, as JSON.
    pub async fn begin_registration(
        &self,
        rp: &RelyingParty,
        bound_to: &[u8],
        user: &str,
        name: &str,
        existing: &[SecurityKeyRecord],
        now: SystemTime,
    ) -> Result<String, KeyError> {
        let webauthn = rp.webauthn()?;
        let exclude = existing
            .iter()
            .map(|k| k.credential_id.clone())
            .collect::<Vec<_>>();
        let (options, state): (CreationChallengeResponse, SecurityKeyRegistration) = webauthn
            .start_securitykey_registration(user_handle(user), user, user, Some(exclude), None, None)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let ceremony = Ceremony {
            user: user.to_owned(),
            rp_id: rp.id.clone(),
            name: name.to_owned(),
            state: to_json(&state)?,
        };
        self.keep(TransientKind::KeyRegistration, bound_to, &ceremony, now)
            .await?;
        to_json(&options)
    }

    /// Finishes the registration `id` with the browser's answer: the key's name
    /// and what to store of it.
    pub async fn finish_registration(
        &self,
        rp: &RelyingParty,
        bound_to: &[u8],
        user: &str,
        answer: &str,
        now: SystemTime,
    ) -> Result<(String, Registered), KeyError> {
        let ceremony = self
            .take(TransientKind::KeyRegistration, bound_to, rp, user, now)
            .await?;
        let state: SecurityKeyRegistration = from_json(&ceremony.state)?;
        let answer: RegisterPublicKeyCredential = from_json(answer)?;
        let key = rp
            .webauthn()?
            .finish_securitykey_registration(&answer, &state)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let registered = Registered {
            credential_id: key.cred_id().to_vec(),
            credential: serde_json::to_vec(&key).map_err(|e| KeyError::Rejected(e.to_string()))?,
        };
        Ok((ceremony.name, registered))
    }

    /// Begins a sign-in with one of `keys` (those registered on this host): the
    /// ceremony's id and the options for the browser, as JSON.
    pub async fn begin_authentication(
        &self,
        rp: &RelyingParty,
        bound_to: &[u8],
        user: &str,
        keys: &[SecurityKeyRecord],
        now: SystemTime,
    ) -> Result<String, KeyError> {
        let keys = usable(rp, keys);
        if keys.is_empty() {
            return Err(KeyError::Rejected("no security key of this user here".to_owned()));
        }
        let credentials: Vec<SecurityKey> = keys.iter().map(|(_, key)| key.clone()).collect();
        let (options, state): (RequestChallengeResponse, SecurityKeyAuthentication) = rp
            .webauthn()?
            .start_securitykey_authentication(&credentials)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let ceremony = Ceremony {
            user: user.to_owned(),
            rp_id: rp.id.clone(),
            name: String::new(),
            state: to_json(&state)?,
        };
        self.keep(TransientKind::KeyAuthentication, bound_to, &ceremony, now)
            .await?;
        to_json(&options)
    }

    /// Finishes the sign-in `id` with the browser's answer: which of `keys` it was
    /// and its record after this use.
    pub async fn finish_authentication(
        &self,
        rp: &RelyingParty,
        bound_to: &[u8],
        user: &str,
        answer: &str,
        keys: &[SecurityKeyRecord],
        now: SystemTime,
    ) -> Result<Used, KeyError> {
        let ceremony = self
            .take(TransientKind::KeyAuthentication, bound_to, rp, user, now)
            .await?;
        let state: SecurityKeyAuthentication = from_json(&ceremony.state)?;
        let answer: PublicKeyCredential = from_json(answer)?;
        let result = rp
            .webauthn()?
            .finish_securitykey_authentication(&answer, &state)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let (record, mut key) = usable(rp, keys)
            .into_iter()
            .find(|(_, key)| key.cred_id() == result.cred_id())
            .ok_or_else(|| KeyError::Rejected("not one of this user's keys".to_owned()))?;
        // The signature counter and backup state, as this use left them.
        key.update_credential(&result);
        Ok(Used {
            id: record.id,
            previous: record.credential.clone(),
            credential: serde_json::to_vec(&key).map_err(|e| KeyError::Rejected(e.to_string()))?,
        })
    }

    async fn keep(
        &self,
        kind: TransientKind,
        bound_to: &[u8],
        ceremony: &Ceremony,
        now: SystemTime,
    ) -> Result<(), KeyError> {
        let id = ceremony_id(kind, bound_to);
        self.state
            .put(kind, &id, ceremony, now + CEREMONY_LIFETIME, now)
            .await?;
        Ok(())
    }

    /// Takes the ceremony out (once, whoever asks), then checks it is this user's
    /// on this host.
    async fn take(
        &self,
        kind: TransientKind,
        bound_to: &[u8],
        rp: &RelyingParty,
        user: &str,
        now: SystemTime,
    ) -> Result<Ceremony, KeyError> {
        let id = ceremony_id(kind, bound_to);
        let ceremony: Ceremony = self.state.take(kind, &id, now).await?.ok_or(KeyError::Gone)?;
        if ceremony.user != user || ceremony.rp_id != rp.id {
            return Err(KeyError::NotYours);
        }
        Ok(ceremony)
    }
}

/// The one ceremony of a kind that what it is bound to (a challenge's id, a
/// session's id hash) may have.
fn ceremony_id(kind: TransientKind, bound_to: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"portvakt key ceremony\0");
    hash.update(kind.as_str().as_bytes());
    hash.update(b"\0");
    hash.update(bound_to);
    data_encoding::BASE64URL_NOPAD.encode(&hash.finalize())
}

/// The user's keys registered for this host, as webauthn-rs reads them.
fn usable<'k>(rp: &RelyingParty, keys: &'k [SecurityKeyRecord]) -> Vec<(&'k SecurityKeyRecord, SecurityKey)> {
    keys.iter()
        .filter(|k| k.rp_id == rp.id)
        .filter_map(|k| match serde_json::from_slice::<SecurityKey>(&k.credential) {
            Ok(key) => Some((k, key)),
            Err(e) => {
                tracing::warn!(user = %k.user, key = %k.name, error = %e, "a stored security key does not read; skipped");
                None
            }
        })
        .collect()
}

/// The user handle authenticators keep: the same for a user on every gateway,
/// and no user name in it.
fn user_handle(user: &str) -> Uuid {
    let digest = Sha256::digest(format!("portvakt user handle\0{user}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, KeyError> {
    serde_json::to_string(value).map_err(|e| KeyError::Rejected(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, KeyError> {
    serde_json::from_str(text).map_err(|e| KeyError::Rejected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp() -> RelyingParty {
        RelyingParty::of("intranet.example", true, "Intranet").unwrap()
    }

    fn service(dir: &tempfile::TempDir) -> SecurityKeys {
        SecurityKeys::new(TransientState::on_a_real_store(dir))
    }

    #[test]
    fn the_relying_party_is_the_host_the_user_is_on() {
        assert_eq!(
            RelyingParty::of("Intranet.Example:8443", true, "Intranet").unwrap(),
            RelyingParty {
                id: "intranet.example".to_owned(),
                origin: "https://intranet.example:8443".to_owned(),
                name: "Intranet".to_owned(),
            }
        );
        assert_eq!(
            RelyingParty::of("localhost:8080", false, "Intranet")
                .unwrap()
                .origin,
            "http://localhost:8080"
        );
        assert!(RelyingParty::of("a b", true, "Intranet").is_none());
    }

    #[tokio::test]
    async fn a_registration_ceremony_is_taken_once_by_its_user_on_its_host_within_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let keys = service(&dir);
        let now = SystemTime::now();
        let party = rp();
        let begin =
            |bound: &'static [u8]| keys.begin_registration(&party, bound, "alice", "YubiKey", &[], now);

        let options = begin(b"challenge 1").await.unwrap();
        let options: serde_json::Value = serde_json::from_str(&options).unwrap();
        assert_eq!(options["publicKey"]["rp"]["id"], "intranet.example");
        assert_eq!(
            options["publicKey"]["authenticatorSelection"]["userVerification"],
            "preferred"
        );
        // A malformed answer uses the ceremony up as well: it is single use.
        assert!(matches!(
            keys.finish_registration(&rp(), b"challenge 1", "alice", "{}", now)
                .await,
            Err(KeyError::Rejected(_))
        ));
        assert!(matches!(
            keys.finish_registration(&rp(), b"challenge 1", "alice", "{}", now)
                .await,
            Err(KeyError::Gone)
        ));

        begin(b"challenge 2").await.unwrap();
        assert!(
            matches!(
                keys.finish_registration(&rp(), b"challenge 3", "alice", "{}", now)
                    .await,
                Err(KeyError::Gone)
            ),
            "an answer posted within another challenge finds no ceremony"
        );
        assert!(matches!(
            keys.finish_registration(&rp(), b"challenge 2", "mallory", "{}", now)
                .await,
            Err(KeyError::NotYours)
        ));
        begin(b"challenge 4").await.unwrap();
        let elsewhere = RelyingParty::of("other.example", true, "Intranet").unwrap();
        assert!(matches!(
            keys.finish_registration(&elsewhere, b"challenge 4", "alice", "{}", now)
                .await,
            Err(KeyError::NotYours)
        ));
        begin(b"challenge 5").await.unwrap();
        let later = now + CEREMONY_LIFETIME + Duration::from_secs(1);
        assert!(matches!(
            keys.finish_registration(&rp(), b"challenge 5", "alice", "{}", later)
                .await,
            Err(KeyError::Gone)
        ));
    }

    #[tokio::test]
    async fn one_ceremony_lives_per_challenge_the_last_begun() {
        let dir = tempfile::tempdir().unwrap();
        let keys = service(&dir);
        let now = SystemTime::now();
        let first = keys
            .begin_registration(&rp(), b"challenge", "alice", "One", &[], now)
            .await
            .unwrap();
        let second = keys
            .begin_registration(&rp(), b"challenge", "alice", "Two", &[], now)
            .await
            .unwrap();
        assert_ne!(first, second, "a new challenge each time");
        assert!(matches!(
            keys.finish_registration(&rp(), b"challenge", "alice", "{}", now)
                .await,
            Err(KeyError::Rejected(_))
        ));
        assert!(
            matches!(
                keys.finish_registration(&rp(), b"challenge", "alice", "{}", now)
                    .await,
                Err(KeyError::Gone)
            ),
            "the first was replaced, not kept beside"
        );
    }

    #[tokio::test]
    async fn a_sign_in_needs_a_key_of_this_host_and_its_ceremony_is_single_use() {
        let dir = tempfile::tempdir().unwrap();
        let keys = service(&dir);
        let now = SystemTime::now();
        let elsewhere = SecurityKeyRecord {
            id: 1,
            user: "alice".to_owned(),
            name: "Other site's key".to_owned(),
            credential_id: vec![1; 16],
            rp_id: "other.example".to_owned(),
            credential: b"{}".to_vec(),
            created_at: now,
            last_used_at: None,
        };
        assert!(matches!(
            keys.begin_authentication(&rp(), b"challenge", "alice", &[elsewhere], now)
                .await,
            Err(KeyError::Rejected(_))
        ));
        assert!(matches!(
            keys.finish_authentication(&rp(), b"challenge", "alice", "{}", &[], now)
                .await,
            Err(KeyError::Gone)
        ));
    }
}
