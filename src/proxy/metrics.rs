//! The gateway's Prometheus metrics: recorded by the proxy phases and the reloader,
//! served by `server` on a listener of their own (never through an app's host).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::portal::answer::Label;

pub struct Metrics {
    registry: Registry,
    /// Requests by app and decision (a [`Label`]: `bypass`, `allow`, `deny`,
    /// `sign_in`, ..., `bad_request`, `unknown_host`).
    requests: IntCounterVec,
    /// Time from choosing the upstream to its response header, by app.
    upstream_seconds: HistogramVec,
    /// Configuration reloads by result (`ok`, `error`).
    reloads: IntCounterVec,
    /// 1 while other gateways' revocations reach this one at once, 0 while the
    /// shared store's channel is down.
    revocation_channel_up: IntGauge,
    /// Access-log lines dropped because the writer could not keep up.
    access_log_dropped: IntCounter,
}

/// How a configuration reload ended, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Rejected,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("portvakt_requests_total", "Requests by app and policy decision."),
            &["app", "decision"],
        )?;
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "portvakt_upstream_response_seconds",
                "Time from choosing the upstream to receiving its response header.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["app"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "portvakt_config_reloads_total",
                "Configuration reloads by result.",
            ),
            &["result"],
        )?;
        let revocation_channel_up = IntGauge::new(
            "portvakt_revocation_channel_up",
            "1 while other gateways' sign-outs and resets reach this gateway at once; 0 while the shared store's notification channel is down.",
        )?;
        revocation_channel_up.set(1);
        let access_log_dropped = IntCounter::new(
            "portvakt_access_log_dropped_total",
            "Access-log lines dropped because the log could not be written as fast as requests came.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(upstream_seconds.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(revocation_channel_up.clone()))?;
        registry.register(Box::new(access_log_dropped.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            upstream_seconds,
            reloads,
            revocation_channel_up,
            access_log_dropped,
        })
    }

    /// Counts a request by its app and what the gateway did with it.
    pub fn count_request(&self, app: &str, decision: Label) {
        self.requests.with_label_values(&[app, decision.as_str()]).inc();
    }

    /// Records how long an app took to answer.
    pub fn upstream_answered(&self, app: &str, seconds: f64) {
        self.upstream_seconds.with_label_values(&[app]).observe(seconds);
    }

    /// Counts a reload.
    pub fn reloaded(&self, result: ReloadResult) {
        let label = match result {
            ReloadResult::Applied => "ok",
            ReloadResult::Rejected => "error",
        };
        self.reloads.with_label_values(&[label]).inc();
    }

    /// Records whether the revocation channel is up (read when scraped).
    pub fn revocation_channel(&self, up: bool) {
        self.revocation_channel_up.set(i64::from(up));
    }

    /// The counter of dropped access-log lines, for the access log to count into.
    pub fn access_log_dropped(&self) -> IntCounter {
        self.access_log_dropped.clone()
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on invalid metric families, which we never build.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_registered_and_rendered() {
        let metrics = Metrics::new().unwrap();
        metrics.count_request("wiki", Label::Allow);
        metrics.upstream_answered("wiki", 0.01);
        metrics.reloaded(ReloadResult::Applied);
        metrics.revocation_channel(false);
        let text = String::from_utf8(metrics.render()).unwrap();
        for line in [
            "portvakt_requests_total{app=\"wiki\",decision=\"allow\"} 1",
            "portvakt_upstream_response_seconds_count{app=\"wiki\"} 1",
            "portvakt_config_reloads_total{result=\"ok\"} 1",
            "portvakt_revocation_channel_up 0",
            "portvakt_access_log_dropped_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
