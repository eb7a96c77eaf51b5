//! When a stricter `mfa` default reaches sessions already signed in.
//!
//! With `session.mfa_changes: next_sign_in` (the default), a password-only session
//! that began before an app's `mfa` default last changed keeps working until it
//! ends; the next sign-in asks for the second factor (or its enrolment). The store
//! keeps, per app, a fingerprint of the default and since when it has held, so the
//! answer survives restarts and is the same on every gateway sharing the store.

use std::time::SystemTime;

use crate::config::model::MfaChanges;
use crate::config::Config;
use crate::store::Store;

/// Sets each app's `mfa_in_force_since` before the configuration is put to use.
/// If the store cannot say, the default applies to every session at once: the
/// strict reading, never a laxer one.
pub async fn date_mfa_defaults(config: &mut Config, store: &dyn Store, now: SystemTime) {
    let immediately = config.session.mfa_changes == MfaChanges::Immediately;
    for app in &mut config.apps {
        let fingerprint = app.policy.mfa.fingerprint();
        // Recorded even when applied at once, so that switching to next_sign_in
        // later does not date the default from that switch.
        let since = match store.mfa_default_since(&app.name, &fingerprint, now).await {
            Ok(since) => Some(since),
            Err(e) => {
                tracing::error!(app = %app.name, error = %e,
                    "could not read when the app's mfa default changed; applying it to every session");
                None
            }
        };
        app.policy.mfa_in_force_since = if immediately { None } else { since };
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::policy::{normalise, Authentication, Outcome, RequestFacts};
    use crate::store::SqliteStore;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn config(dir: &std::path::Path, mfa: &str, changes: &str) -> Config {
        let text = format!(
            "listen: [\"127.0.0.1:0\"]\nstate_dir: state\nsession: {{ mfa_changes: {changes} }}\n\
             apps:\n  intranet:\n    hosts: [intranet.test]\n    upstream: http://127.0.0.1:9\n    mfa: {mfa}\n"
        );
        crate::config::parse(&text, &dir.join("portvakt.yaml")).expect("a valid configuration")
    }

    /// What the app's default says of a password-only session begun at `signed_in_at`.
    fn outcome(config: &Config, signed_in_at: SystemTime, now: SystemTime) -> Outcome {
        let session = Authentication {
            user: "alice".into(),
            groups: [].into(),
            second_factor_at: None,
            mfa_opted_in: false,
            signed_in_at,
        };
        let path = normalise(b"/").expect("a path");
        let facts = RequestFacts {
            method: "GET",
            path: &path,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            auth: Some(&session),
            now,
        };
        config.apps[0].policy.decide(&facts).outcome
    }

    /// Sessions begun under `mfa: off` keep working after the default becomes
    /// `required` (also after a restart: the date is in the store), the next sign-in
    /// is asked, and `immediately` asks everyone at once. The clock is set: the
    /// change comes an hour after the early session, with no waiting.
    #[tokio::test]
    async fn a_stricter_default_is_dated_once_and_reaches_sessions_as_configured() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("portvakt.db");
        let store = SqliteStore::open(&db).unwrap();
        let mut off = config(dir.path(), "off", "next_sign_in");
        date_mfa_defaults(&mut off, &store, at(0)).await;
        let early = at(10);

        let mut required = config(dir.path(), "required", "next_sign_in");
        date_mfa_defaults(&mut required, &store, at(3600)).await;
        assert_eq!(required.apps[0].policy.mfa_in_force_since, Some(at(3600)));
        assert_eq!(outcome(&required, early, at(3700)), Outcome::Allow, "left alone");
        assert_eq!(
            outcome(&required, at(3650), at(3700)),
            Outcome::SecondFactor,
            "a later sign-in is asked"
        );

        drop(store);
        let store = SqliteStore::open(&db).unwrap();
        let mut restarted = config(dir.path(), "required", "next_sign_in");
        date_mfa_defaults(&mut restarted, &store, at(7200)).await;
        assert_eq!(
            restarted.apps[0].policy.mfa_in_force_since,
            Some(at(3600)),
            "dated from the change, not from the restart"
        );
        assert_eq!(outcome(&restarted, early, at(7300)), Outcome::Allow);

        let mut at_once = config(dir.path(), "required", "immediately");
        date_mfa_defaults(&mut at_once, &store, at(7400)).await;
        assert_eq!(
            outcome(&at_once, early, at(7500)),
            Outcome::SecondFactor,
            "asked at the next page"
        );
    }
}
