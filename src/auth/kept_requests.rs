//! A form posted to a route whose second factor had gone stale (`max_age`), kept
//! across the step-up so that the user's work still goes through.
//!
//! The request is sealed in the store like other short-lived state (any gateway
//! can replay it, a `kill -9` loses nothing), bound to the session it was posted
//! with, handed over to the session the step-up makes, and taken once: replayed
//! to exactly the target it was posted to, by that session's user, on that app.
//! A session keeps one form at most (a later post replaces it), so a stale
//! session posting in a loop fills nothing.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

use super::transient::TransientState;
use crate::store::{StoreResult, TransientKind};

/// What of a posted form is kept: enough to send it again as it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRequest {
    pub user: String,
    pub app: String,
    /// The id hash of the session the request belongs to.
    pub session: [u8; 32],
    /// The origin-form target it was posted to, as the gateway forwards it.
    pub target: String,
    /// The request's own `Content-Type`, `Origin` and `Referer`: an app checks its
    /// form's kind and, often, where the post came from.
    pub content_type: Option<Vec<u8>>,
    pub origin: Option<Vec<u8>>,
    pub referer: Option<Vec<u8>>,
    pub body: Vec<u8>,
}

/// Why a kept request is not replayed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReplayed {
    /// Gone: taken already, expired, or never there.
    Gone,
    /// Another session's, user's or app's: left for its owner.
    NotYours,
    /// This request is for another page: the kept one waits for its own.
    OtherTarget,
}

#[derive(Clone)]
pub struct KeptRequests {
    state: TransientState,
    /// How long a kept request waits: for its step-up, then for its replay.
    lifetime: Duration,
}

/// Who is asking to replay, and where to.
pub struct Replay<'a> {
    pub session: [u8; 32],
    pub user: &'a str,
    pub app: &'a str,
    pub target: &'a str,
}

impl KeptRequests {
    pub fn new(state: TransientState, lifetime: Duration) -> KeptRequests {
        KeptRequests { state, lifetime }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Keeps `request`, in place of any other of its session; the id it is kept
    /// under (the store holds only that id's hash).
    pub async fn keep(&self, request: &KeptRequest, now: SystemTime) -> StoreResult<String> {
        let id = id_for(request.session);
        self.state
            .put(TransientKind::KeptRequest, &id, request, now + self.lifetime, now)
            .await?;
        Ok(id)
    }

    /// Moves the request kept under `id` from the session `from` (the one the
    /// step-up retired) to the session `to` it made for `user`: taken under the
    /// old id, kept under a new one. The new id and the request's target; `None`
    /// when it is gone or is not that session's and user's (then it is gone too).
    pub async fn hand_over(
        &self,
        id: &str,
        from: [u8; 32],
        user: &str,
        to: [u8; 32],
        now: SystemTime,
    ) -> StoreResult<Option<(String, String)>> {
        let Some(mut kept) = self
            .state
            .take::<KeptRequest>(TransientKind::KeptRequest, id, now)
            .await?
        else {
            return Ok(None);
        };
        if kept.session != from || kept.user != user {
            tracing::warn!(user = %user, "a kept request of another session at a step-up; dropped");
            return Ok(None);
        }
        kept.session = to;
        let target = kept.target.clone();
        Ok(Some((self.keep(&kept, now).await?, target)))
    }

    /// Whether the request kept under `id` would be replayed for `replay`,
    /// without taking it.
    pub async fn check(
        &self,
        id: &str,
        replay: &Replay<'_>,
        now: SystemTime,
    ) -> StoreResult<Result<(), NotReplayed>> {
        let found = self
            .state
            .get::<KeptRequest>(TransientKind::KeptRequest, id, now)
            .await?;
        Ok(found.map_or(Err(NotReplayed::Gone), |found| judge(&found.value, replay)))
    }

    /// Takes the request kept under `id` out for `replay`: of requests racing for
    /// it, on any gateway, one gets it, and only if it is theirs to replay.
    pub async fn take(
        &self,
        id: &str,
        replay: &Replay<'_>,
        now: SystemTime,
    ) -> StoreResult<Result<KeptRequest, NotReplayed>> {
        if let Err(why) = self.check(id, replay, now).await? {
            return Ok(Err(why));
        }
        let taken = self
            .state
            .take::<KeptRequest>(TransientKind::KeptRequest, id, now)
            .await?;
        Ok(match taken {
            None => Err(NotReplayed::Gone),
            // Checked above, but another gateway may have replaced it meanwhile.
            Some(kept) => judge(&kept, replay).map(|()| kept),
        })
    }
}

/// The one id a session's kept form has. Whoever knows it still cannot send the
/// form: only the session it is bound to can.
fn id_for(session: [u8; 32]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"portvakt kept request\0");
    hash.update(session);
    BASE64URL_NOPAD.encode(&hash.finalize())
}

fn judge(kept: &KeptRequest, replay: &Replay<'_>) -> Result<(), NotReplayed> {
    if kept.session != replay.session || kept.user != replay.user || kept.app != replay.app {
        return Err(NotReplayed::NotYours);
    }
    if kept.target != replay.target {
        return Err(NotReplayed::OtherTarget);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(session: u8) -> KeptRequest {
        KeptRequest {
            user: "alice".to_owned(),
            app: "intranet".to_owned(),
            session: [session; 32],
            target: "/admin/settings?tab=2".to_owned(),
            content_type: Some(b"application/x-www-form-urlencoded".to_vec()),
            origin: Some(b"http://intranet.test".to_vec()),
            referer: None,
            body: b"note=hello&csrf=app-token".to_vec(),
        }
    }

    fn replay(session: u8) -> Replay<'static> {
        Replay {
            session: [session; 32],
            user: "alice",
            app: "intranet",
            target: "/admin/settings?tab=2",
        }
    }

    fn service(dir: &tempfile::TempDir) -> KeptRequests {
        KeptRequests::new(TransientState::on_a_real_store(dir), Duration::from_secs(600))
    }

    #[tokio::test]
    async fn a_kept_request_follows_its_session_through_the_step_up_and_is_replayed_once() {
        let dir = tempfile::tempdir().unwrap();
        let kept_requests = service(&dir);
        let now = SystemTime::now();
        let id = kept_requests.keep(&kept(1), now).await.unwrap();

        // Before the step-up, the stale session cannot replay it (it would go
        // through without the fresh second factor): only the handed-over id works.
        let (new_id, target) = kept_requests
            .hand_over(&id, [1; 32], "alice", [2; 32], now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(target, "/admin/settings?tab=2");
        assert_ne!(new_id, id);
        assert_eq!(
            kept_requests.take(&id, &replay(1), now).await.unwrap(),
            Err(NotReplayed::Gone),
            "the old id is gone"
        );
        assert_eq!(
            kept_requests
                .hand_over(&id, [1; 32], "alice", [3; 32], now)
                .await
                .unwrap(),
            None,
            "handed over once"
        );

        let taken = kept_requests
            .take(&new_id, &replay(2), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            taken,
            KeptRequest {
                session: [2; 32],
                ..kept(1)
            }
        );
        assert_eq!(
            kept_requests.take(&new_id, &replay(2), now).await.unwrap(),
            Err(NotReplayed::Gone),
            "replayed once"
        );
    }

    #[tokio::test]
    async fn a_session_keeps_one_form_the_last_it_posted() {
        let dir = tempfile::tempdir().unwrap();
        let kept_requests = service(&dir);
        let now = SystemTime::now();
        let first = kept_requests.keep(&kept(2), now).await.unwrap();
        let second = KeptRequest {
            body: b"note=second".to_vec(),
            ..kept(2)
        };
        let again = kept_requests.keep(&second, now).await.unwrap();
        assert_eq!(first, again);
        let other = kept_requests.keep(&kept(3), now).await.unwrap();
        assert_ne!(other, again, "another session's is its own");
        let taken = kept_requests
            .take(&again, &replay(2), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.body, b"note=second");
        assert_eq!(
            kept_requests.take(&first, &replay(2), now).await.unwrap(),
            Err(NotReplayed::Gone),
            "the first was replaced, not kept beside"
        );
    }

    #[tokio::test]
    async fn only_its_session_user_app_and_target_replay_it() {
        let dir = tempfile::tempdir().unwrap();
        let kept_requests = service(&dir);
        let now = SystemTime::now();
        let id = kept_requests.keep(&kept(2), now).await.unwrap();
        let others = [
            (
                Replay {
                    session: [9; 32],
                    ..replay(2)
                },
                NotReplayed::NotYours,
            ),
            (
                Replay {
                    user: "mallory",
                    ..replay(2)
                },
                NotReplayed::NotYours,
            ),
            (
                Replay {
                    app: "wiki",
                    ..replay(2)
                },
                NotReplayed::NotYours,
            ),
            (
                Replay {
                    target: "/admin/settings",
                    ..replay(2)
                },
                NotReplayed::OtherTarget,
            ),
            (
                Replay {
                    target: "/admin/settings?tab=2&x",
                    ..replay(2)
                },
                NotReplayed::OtherTarget,
            ),
        ];
        for (other, why) in others {
            assert_eq!(kept_requests.take(&id, &other, now).await.unwrap(), Err(why));
        }
        assert!(
            kept_requests.take(&id, &replay(2), now).await.unwrap().is_ok(),
            "still there for its owner after every refusal"
        );
    }

    #[tokio::test]
    async fn a_kept_request_is_handed_over_only_by_its_session_and_user_and_not_after_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let kept_requests = service(&dir);
        let now = SystemTime::now();
        let id = kept_requests.keep(&kept(1), now).await.unwrap();
        assert_eq!(
            kept_requests
                .hand_over(&id, [7; 32], "alice", [2; 32], now)
                .await
                .unwrap(),
            None,
            "another session's step-up"
        );
        let id = kept_requests.keep(&kept(1), now).await.unwrap();
        assert_eq!(
            kept_requests
                .hand_over(&id, [1; 32], "mallory", [2; 32], now)
                .await
                .unwrap(),
            None,
            "another user's step-up"
        );
        let id = kept_requests.keep(&kept(1), now).await.unwrap();
        let later = now + Duration::from_secs(601);
        assert_eq!(
            kept_requests
                .hand_over(&id, [1; 32], "alice", [2; 32], later)
                .await
                .unwrap(),
            None,
            "expired"
        );
        let id = kept_requests.keep(&kept(2), now).await.unwrap();
        assert_eq!(
            kept_requests.take(&id, &replay(2), later).await.unwrap(),
            Err(NotReplayed::Gone),
            "expired before its replay"
        );
    }
}
