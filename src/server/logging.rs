//! One subscriber for the whole process, plain or JSON. Pingora logs through the
//! `log` crate; `tracing-log` forwards those records into the same subscriber, so
//! there is one stream with one format and one filter.

use anyhow::Context;
use tracing_log::AsLog;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .context("reading the log level")?;
    // `log` records more detailed than the filter lets through are not even built:
    // Pingora formats some of its trace records in ways that panic on a header that
    // is not UTF-8 (an app's Latin-1 file name), so at the usual levels they must
    // never be formatted.
    let most_detailed = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    tracing_log::LogTracer::builder()
        .with_max_level(most_detailed.as_log())
        .init()
        .context("installing the log bridge")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Plain => tracing::subscriber::set_global_default(builder.with_ansi(false).finish()),
        LogFormat::Json => {
            tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish())
        }
    };
    result.context("installing the log subscriber")
}
