//! `portvakt users ...`: acting on users in the store, safe while the gateway runs
//! (SQLite in WAL mode lets both write, one at a time).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::model::Enrolment;
use crate::store::{SqliteStore, Store};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Let a user enrol a first authenticator (for `second_factor.enrolment: admin`).
    OpenEnrolment {
        #[arg(short, long)]
        config: PathBuf,
        user: String,
        /// How long the user has to enrol, e.g. 24h.
        #[arg(long = "for", value_parser = humantime::parse_duration, default_value = "24h")]
        within: Duration,
    },
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::OpenEnrolment { config, user, within } => {
            let Some(config) = super::load_or_report(config) else {
                return Ok(ExitCode::from(super::EXIT_INVALID_CONFIG));
            };
            if config.second_factor.enrolment != Enrolment::AdminOpened {
                eprintln!(
                    "note: second_factor.enrolment is not `admin` in this configuration, so users need no opening to enrol"
                );
            }
            let store = SqliteStore::open_in(&config.state_dir)
                .with_context(|| format!("opening the database in {}", config.state_dir.display()))?;
            let now = SystemTime::now();
            let until = now + *within;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime")?
                .block_on(store.open_enrolment(user, until, now))?;
            println!(
                "{user} may enrol a first authenticator until {} (UTC)",
                humantime::format_rfc3339_seconds(until)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
