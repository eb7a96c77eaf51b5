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
