//! Logs (tracing, with Pingora's `log` output bridged in) and Prometheus metrics.

pub mod logging;
pub mod metrics;

pub use metrics::{Metrics, MetricsApp};
