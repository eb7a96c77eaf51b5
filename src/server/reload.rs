//! Hot reload: on SIGHUP the file is read and validated off the request path, then
//! swapped in with one atomic store. Requests already running keep the `Arc<Config>`
//! they started with; an invalid file changes nothing.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::auth::mfa_changes::date_mfa_defaults;
use crate::config::{load, Config, LoadError, SharedConfig};
use crate::proxy::metrics::{Metrics, ReloadResult};
use crate::store::Store;

pub struct Reloader {
    pub config: SharedConfig,
    pub metrics: Arc<Metrics>,
    /// Where each app's `mfa` default is dated (see `session::mfa_changes`).
    pub store: Arc<dyn Store>,
}

impl Reloader {
    /// Loads the file again and swaps it in if it is valid.
    pub async fn reload(&self) {
        let current = self.config.load_full();
        let path = current.source.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&path)).await;
        match loaded {
            Ok(Ok(mut new)) => {
                date_mfa_defaults(&mut new, self.store.as_ref(), SystemTime::now()).await;
                for what in restart_only_changes(&current, &new) {
                    tracing::warn!(
                        setting = what,
                        "this setting changed in the file but takes effect only after a restart"
                    );
                }
                self.config.store(Arc::new(new));
                self.metrics.reloaded(ReloadResult::Applied);
                tracing::info!(file = %current.source.display(), "configuration reloaded");
            }
            Ok(Err(LoadError::Invalid(errors))) => {
                self.metrics.reloaded(ReloadResult::Rejected);
                for e in &errors.0 {
                    tracing::error!(error = %e, "configuration error");
                }
                tracing::error!(
                    count = errors.0.len(),
                    "reload rejected; the previous configuration stays in force"
                );
            }
            Ok(Err(e)) => {
                self.metrics.reloaded(ReloadResult::Rejected);
                tracing::error!(error = %e, "reload rejected; the previous configuration stays in force");
            }
            Err(e) => {
                self.metrics.reloaded(ReloadResult::Rejected);
                tracing::error!(error = %e, "reload task failed; the previous configuration stays in force");
            }
        }
    }
}

/// Settings bound when the process starts (sockets, threads, the log subscriber).
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.listeners != new.listeners {
        changed.push("listen");
    }
    if old.state_dir != new.state_dir {
        changed.push("state_dir");
    }
    if old.key_file != new.key_file || old.previous_key_file != new.previous_key_file {
        changed.push("key_file");
    }
    if old.store != new.store {
        changed.push("store");
    }
    if old.metrics_listen != new.metrics_listen {
        changed.push("metrics");
    }
    if old.log != new.log {
        changed.push("log");
    }
    if old.server != new.server {
        changed.push("server");
    }
    changed
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload by restarting");
                return;
            }
        };
        tracing::info!("send SIGHUP to reload the configuration");
        loop {
            tokio::select! {
                _ = hangups.recv() => self.reload().await,
                _ = shutdown.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(top: &str) -> Config {
        let text = format!(
            "listen: [\"127.0.0.1:8080\"]\nstate_dir: s\n{top}apps:\n  a:\n    hosts: [a]\n    upstream: http://127.0.0.1:1\n"
        );
        crate::config::parse(&text, std::path::Path::new("p.yaml")).unwrap()
    }

    /// What a reload cannot apply is named in the log, the store among it.
    #[test]
    fn settings_bound_at_start_are_named_when_they_change() {
        let old = config("");
        assert!(restart_only_changes(&old, &config("")).is_empty());
        let moved = config("store: { url: \"postgres://db/portvakt\" }\nkey_file: k\n");
        assert_eq!(restart_only_changes(&old, &moved), ["key_file", "store"]);
        let other_db = config("store: { url: \"postgres://db/other\" }\nkey_file: k\n");
        assert_eq!(restart_only_changes(&moved, &other_db), ["store"]);
    }
}
