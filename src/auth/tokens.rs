//! What an app's login hands out that works as the user's session there (with
//! `login.token`: the bearer token and the session cookies' values), bound to the
//! gateway session it was released with: copied to another browser, or used
//! beside another user's session, it is refused.
//!
//! A binding is written to this gateway's memory at once (the token may be used
//! the moment the answer arrives) and to the store for the others. A session
//! renewed by a step-up names its successor, so the token follows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use data_encoding::HEXLOWER;
use serde::{Deserialize, Serialize};

use super::transient::TransientState;
use crate::store::{StoreResult, TransientKind};

/// Bindings this gateway keeps in memory besides the store; past this many, the
/// memory is emptied (the store still has them all).
const LOCAL_LIMIT: usize = 10_000;
/// How many step-ups a token follows from the session it was released with.
const MAX_SUCCESSION: usize = 8;

#[derive(Clone)]
pub struct TokenBindings {
    state: TransientState,
    local: Arc<Mutex<HashMap<String, [u8; 32]>>>,
    /// As long as a session can live.
    ttl: Duration,
}

/// What a token may do with the request's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Released with this session (or the one it renewed).
    Yours,
    /// Released with another session, or the request has none.
    NotYours,
    /// Never released through the gateway: the route's policy alone decides.
    Unknown,
}

#[derive(Serialize, Deserialize)]
struct Bound {
    session: [u8; 32],
}

impl TokenBindings {
    pub fn new(state: TransientState, ttl: Duration) -> TokenBindings {
        TokenBindings {
            state,
            local: Arc::default(),
            ttl,
        }
    }

    /// Binds `token` to the session `session` (its id hash): in memory before this
    /// returns, in the store by the time the future ends.
    pub fn bind(
        &self,
        token: &str,
        session: [u8; 32],
        now: SystemTime,
    ) -> impl std::future::Future<Output = StoreResult<()>> + Send + 'static {
        if let Ok(mut local) = self.local.lock() {
            if local.len() >= LOCAL_LIMIT {
                local.clear();
            }
            local.insert(token.to_owned(), session);
        }
        self.state.put(
            TransientKind::TokenBinding,
            token,
            &Bound { session },
            now + self.ttl,
            now,
        )
    }

    /// A step-up replaced session `old` with `new`: tokens bound to `old` follow.
    pub async fn succeed(&self, old: [u8; 32], new: [u8; 32], now: SystemTime) -> StoreResult<()> {
        self.state
            .put(
                TransientKind::TokenBinding,
                &successor_key(old),
                &Bound { session: new },
                now + self.ttl,
                now,
            )
            .await
    }

    /// Whether `token` may be used with the request's session (its id hash).
    pub async fn check(
        &self,
        token: &str,
        session: Option<[u8; 32]>,
        now: SystemTime,
    ) -> StoreResult<TokenCheck> {
        let local = self.local.lock().ok().and_then(|l| l.get(token).copied());
        let bound = match local {
            Some(bound) => bound,
            None => match self
                .state
                .get::<Bound>(TransientKind::TokenBinding, token, now)
                .await?
            {
                Some(found) => found.value.session,
                None => return Ok(TokenCheck::Unknown),
            },
        };
        let Some(session) = session else {
            return Ok(TokenCheck::NotYours);
        };
        let mut at = bound;
        for _ in 0..=MAX_SUCCESSION {
            if at == session {
                return Ok(TokenCheck::Yours);
            }
            match self
                .state
                .get::<Bound>(TransientKind::TokenBinding, &successor_key(at), now)
                .await?
            {
                Some(next) => at = next.value.session,
                None => break,
            }
        }
        Ok(TokenCheck::NotYours)
    }
}

fn successor_key(session: [u8; 32]) -> String {
    format!("after:{}", HEXLOWER.encode(&session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_goes_with_its_session_and_the_sessions_a_step_up_made_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenBindings::new(TransientState::on_a_real_store(&dir), Duration::from_secs(3600));
        let now = SystemTime::now();
        let (mine, renewed, other) = ([1; 32], [2; 32], [3; 32]);
        assert_eq!(
            tokens.check("t", Some(mine), now).await.unwrap(),
            TokenCheck::Unknown
        );
        tokens.bind("t", mine, now).await.unwrap();
        assert_eq!(
            tokens.check("t", Some(mine), now).await.unwrap(),
            TokenCheck::Yours
        );
        assert_eq!(
            tokens.check("t", Some(other), now).await.unwrap(),
            TokenCheck::NotYours
        );
        assert_eq!(tokens.check("t", None, now).await.unwrap(), TokenCheck::NotYours);
        tokens.succeed(mine, renewed, now).await.unwrap();
        assert_eq!(
            tokens.check("t", Some(renewed), now).await.unwrap(),
            TokenCheck::Yours
        );
        // Another gateway, with nothing in memory, reads it from the store.
        let elsewhere = TokenBindings::new(tokens.state.clone(), tokens.ttl);
        assert_eq!(
            elsewhere.check("t", Some(renewed), now).await.unwrap(),
            TokenCheck::Yours
        );
        assert_eq!(
            elsewhere.check("t", Some(other), now).await.unwrap(),
            TokenCheck::NotYours
        );
    }
}
