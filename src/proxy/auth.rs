//! The services behind the second factor, opened once when the gateway starts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::Semaphore;

use super::identity::IdentitySigner;
use crate::config::Config;
use crate::factors::lockout::LockoutPolicy;
use crate::keys::Keys;
use crate::session::challenge::Challenges;
use crate::session::Sessions;
use crate::store::{SqliteStore, Store, StoreResult, Subject};

pub struct AuthServices {
    pub store: Arc<dyn Store>,
    pub sessions: Sessions,
    pub challenges: Challenges,
    pub keys: Keys,
    pub signer: IdentitySigner,
    /// Bounds the argon2 work running at once, so a burst of recovery-code attempts
    /// waits its turn instead of taking every thread.
    pub hashing: Semaphore,
}

impl AuthServices {
    /// Opens the key file and the database in `state_dir` (creating both on first start).
    pub fn open(config: &Config) -> anyhow::Result<AuthServices> {
        let keys = Keys::load_or_create(&config.state_dir)?;
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open_in(&config.state_dir)
                .with_context(|| format!("opening the database in {}", config.state_dir.display()))?,
        );
        let sessions = Sessions::new(store.clone(), keys.cookie_key())
            .map_err(|e| anyhow::anyhow!("cookie key: {e}"))?;
        let hashing_slots = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(AuthServices {
            sessions,
            challenges: Challenges::new(config.session.login_timeout),
            signer: IdentitySigner::new(keys.signing_seed()),
            keys,
            store,
            hashing: Semaphore::new(hashing_slots),
        })
    }

    /// How long this user, or this address, must still wait before trying a code.
    pub async fn locked_for(
        &self,
        policy: &LockoutPolicy,
        user: &str,
        client: IpAddr,
        now: SystemTime,
    ) -> StoreResult<Option<Duration>> {
        let by_user = self.store.failures(Subject::User(user)).await?;
        let by_address = self.store.failures(Subject::Address(client)).await?;
        Ok(policy
            .locked_for(&by_user, now)
            .max(policy.locked_for(&by_address, now)))
    }

    /// Counts a failed attempt against the user and the address.
    pub async fn failed(
        &self,
        policy: &LockoutPolicy,
        user: &str,
        client: IpAddr,
        now: SystemTime,
    ) -> StoreResult<()> {
        self.store
            .record_failure(Subject::User(user), policy, now)
            .await?;
        self.store
            .record_failure(Subject::Address(client), policy, now)
            .await?;
        Ok(())
    }

    /// A success resets the account's counter (not the address's: one good account
    /// must not clear the record of an address guessing at others).
    pub async fn succeeded(&self, user: &str) -> StoreResult<()> {
        self.store.reset_failures(Subject::User(user)).await
    }
}
