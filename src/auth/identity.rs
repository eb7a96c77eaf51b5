//! What an app learns about the user: plain headers for apps that trust their proxy,
//! and a signed assertion for apps that verify. The assertion is a compact JWT
//! signed with Ed25519 (RFC 8037 "EdDSA"); the public key is published as a JWKS at
//! `/.portvakt/jwks.json`, so an app needs no shared secret to check it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signer, SigningKey};
use http::header::{HeaderValue, InvalidHeaderValue};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long an assertion is valid: it travels with one request.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
/// The `iss` of every assertion.
pub const ISSUER: &str = "portvakt";
/// How long a session's assertion is sent again instead of signing a new one. An
/// Ed25519 signature is most of what a request costs the gateway; reusing it for a
/// third of its lifetime means an app always gets one with 40 s or more to run.
pub const REUSE_FOR: Duration = Duration::from_secs(20);
/// Memory for assertions kept for reuse (about 600 bytes each, so some 7,000 busy
/// sessions); the least used beyond that are signed afresh.
const REUSE_MEMORY: u64 = 4 * 1024 * 1024;

pub struct IdentitySigner {
    key: SigningKey,
    key_id: String,
    /// The signing key before a rotation: published in the JWKS (assertions signed
    /// with it may still be on their way), never used to sign.
    previous: Option<SigningKey>,
    /// The last assertion made for each session (by session id hash), with the
    /// claims it says, so that it is reused only while they still hold.
    recent: quick_cache::sync::Cache<[u8; 32], Arc<SignedIdentity>, SignedWeight>,
}

/// A session's identity header values: the assertion and the plain headers, made
/// together from the same claims and reused together while those claims hold.
pub struct SignedIdentity {
    made: Instant,
    /// Ready to send: reusing these is a reference count, not a copy.
    pub assertion: HeaderValue,
    pub user: HeaderValue,
    /// The groups, comma-separated.
    pub groups: HeaderValue,
    pub auth_time: HeaderValue,
    aud: String,
    sub: String,
    group_list: Vec<String>,
    auth_time_seconds: u64,
    amr: Vec<&'static str>,
}

/// What an assertion kept for reuse costs in memory, roughly.
#[derive(Clone)]
struct SignedWeight;

impl quick_cache::Weighter<[u8; 32], Arc<SignedIdentity>> for SignedWeight {
    fn weight(&self, _session: &[u8; 32], signed: &Arc<SignedIdentity>) -> u64 {
        let values = signed.assertion.len() + signed.user.len() + signed.groups.len();
        u64::try_from(values).unwrap_or(u64::MAX) + 200
    }
}

impl SignedIdentity {
    fn says(&self, claims: &Claims<'_>) -> bool {
        self.made.elapsed() < REUSE_FOR
            && self.aud == claims.aud
            && self.sub == claims.sub
            && *self.group_list == *claims.groups
            && self.auth_time_seconds == claims.auth_time
            && self.amr == claims.amr
    }
}

/// The claims of an identity assertion.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    pub iss: &'static str,
    /// The app's name: an assertion for one app is no good at another.
    pub aud: &'a str,
    pub sub: &'a str,
    pub groups: &'a [String],
    /// When the user last authenticated (the second factor, or the password).
    pub auth_time: u64,
    /// Authentication methods (RFC 8176): `pwd`, plus `otp` for a code.
    pub amr: Vec<&'static str>,
    pub iat: u64,
    pub exp: u64,
}

impl IdentitySigner {
    pub fn new(seed: &[u8; 32]) -> IdentitySigner {
        let key = SigningKey::from_bytes(seed);
        IdentitySigner {
            key_id: key_id(&key),
            key,
            previous: None,
            recent: quick_cache::sync::Cache::with_weighter(16_384, REUSE_MEMORY, SignedWeight),
        }
    }

    /// Also publishes the signing key before a rotation.
    pub fn with_previous(mut self, seed: &[u8; 32]) -> IdentitySigner {
        self.previous = Some(SigningKey::from_bytes(seed));
        self
    }

    /// The session's identity header values: the ones made for it within
    /// `REUSE_FOR` if they say the same claims, else new ones (whose assertion's
    /// `iat`/`exp` come from `claims`).
    pub fn identity_for_session(
        &self,
        session: [u8; 32],
        claims: &Claims<'_>,
    ) -> Result<Arc<SignedIdentity>, InvalidHeaderValue> {
        if let Some(signed) = self.recent.get(&session) {
            if signed.says(claims) {
                return Ok(signed);
            }
        }
        // User names may be UTF-8 (never control characters): sent as raw bytes.
        let signed = Arc::new(SignedIdentity {
            made: Instant::now(),
            assertion: HeaderValue::try_from(self.assertion(claims))?,
            user: HeaderValue::from_bytes(claims.sub.as_bytes())?,
            groups: HeaderValue::from_bytes(claims.groups.join(",").as_bytes())?,
            auth_time: HeaderValue::from(claims.auth_time),
            aud: claims.aud.to_owned(),
            sub: claims.sub.to_owned(),
            group_list: claims.groups.to_vec(),
            auth_time_seconds: claims.auth_time,
            amr: claims.amr.clone(),
        });
        self.recent.insert(session, signed.clone());
        Ok(signed)
    }

    /// A signed, compact JWT carrying `claims`.
    pub fn assertion(&self, claims: &Claims<'_>) -> String {
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.key_id });
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(&payload)
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            BASE64URL_NOPAD.encode(&signature.to_bytes())
        )
    }

    /// The public key as a JSON Web Key Set (RFC 7517, OKP keys per RFC 8037).
    /// During a rotation the key before it is listed too, after the current one.
    pub fn jwks(&self) -> String {
        let jwk = |key: &SigningKey| {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": BASE64URL_NOPAD.encode(key.verifying_key().as_bytes()),
                "kid": key_id(key),
                "alg": "EdDSA",
                "use": "sig",
            })
        };
        let keys: Vec<_> = std::iter::once(&self.key)
            .chain(self.previous.as_ref())
            .map(jwk)
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key.
fn key_id(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    BASE64URL_NOPAD.encode(&digest[..8])
}

/// Seconds since the Unix epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

    #[derive(Debug, serde::Deserialize)]
    struct Checked {
        sub: String,
        aud: String,
        groups: Vec<String>,
        amr: Vec<String>,
        auth_time: u64,
    }

    fn claims<'a>(now: u64, groups: &'a [String]) -> Claims<'a> {
        Claims {
            iss: ISSUER,
            aud: "wiki",
            sub: "alice",
            groups,
            auth_time: now - 5,
            amr: vec!["pwd", "otp"],
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        }
    }

    /// Verified by an independent JWT implementation, from the published JWKS alone.
    #[test]
    fn assertions_verify_against_the_jwks() {
        let signer = IdentitySigner::new(&[9; 32]);
        let now = unix(SystemTime::now());
        let groups = vec!["admins".to_owned()];
        let token = signer.assertion(&claims(now, &groups));
        let jwks: serde_json::Value = serde_json::from_str(&signer.jwks()).unwrap();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let key = DecodingKey::from_ed_components(x).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["wiki"]);
        validation.set_issuer(&[ISSUER]);
        let checked = decode::<Checked>(&token, &key, &validation).unwrap().claims;
        assert_eq!((checked.sub.as_str(), checked.aud.as_str()), ("alice", "wiki"));
        assert_eq!(checked.groups, ["admins"]);
        assert_eq!(checked.amr, ["pwd", "otp"]);
        assert_eq!(checked.auth_time, now - 5);

        let mut other_app = Validation::new(Algorithm::EdDSA);
        other_app.set_audience(&["hr"]);
        assert!(
            decode::<Checked>(&token, &key, &other_app).is_err(),
            "audience is checked"
        );
        let forged = token.replace(&token[token.len() - 6..], "AAAAAA");
        assert!(
            decode::<Checked>(&forged, &key, &validation).is_err(),
            "signature is checked"
        );
        let stranger = IdentitySigner::new(&[1; 32]);
        assert!(decode::<Checked>(&stranger.assertion(&claims(now, &groups)), &key, &validation).is_err());
    }

    #[test]
    fn a_sessions_assertion_is_reused_only_while_its_claims_hold() {
        let signer = IdentitySigner::new(&[9; 32]);
        let now = unix(SystemTime::now());
        let groups = vec!["admins".to_owned()];
        // The same sign-in, asked for at later times.
        let at = |t: u64, groups| Claims {
            auth_time: now - 5,
            ..claims(now + t, groups)
        };
        let first = signer
            .identity_for_session([1; 32], &at(0, &groups))
            .unwrap()
            .assertion
            .clone();
        assert_eq!(
            signer
                .identity_for_session([1; 32], &at(5, &groups))
                .unwrap()
                .assertion
                .clone(),
            first
        );
        assert_ne!(
            signer
                .identity_for_session([2; 32], &at(5, &groups))
                .unwrap()
                .assertion
                .clone(),
            first,
            "another session signs its own"
        );
        let fewer: Vec<String> = vec![];
        assert_ne!(
            signer
                .identity_for_session([1; 32], &at(6, &fewer))
                .unwrap()
                .assertion
                .clone(),
            first,
            "new groups, new assertion"
        );
        let stepped_up = claims(now + 7, &groups);
        let after = signer
            .identity_for_session([1; 32], &stepped_up)
            .unwrap()
            .assertion
            .clone();
        assert!(
            after != first
                && signer
                    .identity_for_session([1; 32], &stepped_up)
                    .unwrap()
                    .assertion
                    .clone()
                    == after
        );
    }

    /// The plain header values are reused with the assertion, so they must follow
    /// the same claims: never another user's, old groups, or the time before a
    /// step-up.
    #[test]
    fn a_sessions_plain_header_values_say_what_its_claims_say() {
        let signer = IdentitySigner::new(&[9; 32]);
        let now = unix(SystemTime::now());
        let admins = vec!["admins".to_owned(), "staff".to_owned()];
        let values = |claims: &Claims<'_>| {
            let signed = signer.identity_for_session([1; 32], claims).unwrap();
            (
                signed.user.to_str().unwrap().to_owned(),
                signed.groups.to_str().unwrap().to_owned(),
                signed.auth_time.to_str().unwrap().to_owned(),
            )
        };
        let alice = claims(now, &admins);
        let at = (now - 5).to_string();
        assert_eq!(
            values(&alice),
            ("alice".into(), "admins,staff".into(), at.clone())
        );
        // Another user under the same key (a session id reused, or a bug upstream).
        let mallory = Claims {
            sub: "mallory",
            ..claims(now, &admins)
        };
        assert_eq!(values(&mallory).0, "mallory");
        assert_eq!(values(&alice).0, "alice");
        let none: Vec<String> = vec![];
        assert_eq!(values(&claims(now, &none)).1, "");
        let stepped_up = Claims {
            auth_time: now + 1,
            ..claims(now, &admins)
        };
        assert_eq!(values(&stepped_up).2, (now + 1).to_string());
        // A user name in UTF-8 is sent as its bytes.
        let asa = Claims {
            sub: "åsa",
            ..claims(now, &admins)
        };
        let signed = signer.identity_for_session([1; 32], &asa).unwrap();
        assert_eq!(signed.user.as_bytes(), "åsa".as_bytes());
    }

    #[test]
    fn during_a_rotation_the_jwks_lists_both_keys_and_signs_with_the_new() {
        let rotated = IdentitySigner::new(&[9; 32]).with_previous(&[1; 32]);
        let jwks: serde_json::Value = serde_json::from_str(&rotated.jwks()).unwrap();
        let old: serde_json::Value = serde_json::from_str(&IdentitySigner::new(&[1; 32]).jwks()).unwrap();
        let new: serde_json::Value = serde_json::from_str(&IdentitySigner::new(&[9; 32]).jwks()).unwrap();
        assert_eq!(jwks["keys"][0], new["keys"][0], "the current key first");
        assert_eq!(jwks["keys"][1], old["keys"][0]);
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }
}
