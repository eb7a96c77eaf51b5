//! `portvakt audit`: the security events in the store, newest first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::store::AuditQuery;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
    /// Only events about this user.
    #[arg(long)]
    user: Option<String>,
    /// Only events from this far back, e.g. 24h or 7days.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many events.
    #[arg(long, default_value = "100")]
    limit: usize,
    /// One JSON object per line, for log shippers.
    #[arg(long)]
    json: bool,
}

pub fn audit(args: &Args) -> anyhow::Result<ExitCode> {
    let (_, store) = match super::users::open(&args.config)? {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let query = AuditQuery {
        subject: args.user.as_ref().map(|u| u.trim().to_lowercase()),
        since: args.since.map(|d| SystemTime::now() - d),
        limit: args.limit,
    };
    let events = super::users::block_on(store.audit(&query))??;
    for event in events {
        if args.json {
            out!("{}", serde_json::to_string(&event)?);
        } else {
            out!(
                "{} {:<22} {:<8} subject={} actor={} app={} client={}",
                humantime::format_rfc3339_seconds(event.at),
                event.event,
                event.outcome,
                event.subject,
                event.actor,
                event.app.as_deref().unwrap_or("-"),
                event.client.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
