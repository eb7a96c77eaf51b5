//! `portvakt users ...`: acting on users in the store, safe while the gateway runs
//! (SQLite in WAL mode lets both write, one at a time).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::auth::AuditKind;
use crate::config::model::Enrolment;
use crate::config::Config;
use crate::store::{AuditEvent, AuditQuery, Store, Subject, UserSummary};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the users the gateway knows: devices, recovery codes left, last use, lockout.
    List {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show one user's methods (never their secrets) and recent events.
    Show {
        #[arg(short, long)]
        config: PathBuf,
        user: String,
    },
    /// Reset users' second factor: their devices and recovery codes are removed and
    /// their sessions revoked; their next sign-in asks them to enrol again.
    Reset {
        #[arg(short, long)]
        config: PathBuf,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Lift a user's lockout.
    Unlock {
        #[arg(short, long)]
        config: PathBuf,
        user: String,
    },
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

/// A configuration and the store it names.
pub(super) type Opened = (Config, Arc<dyn Store>);

/// The configuration and its store, or the exit code that says why not.
pub(super) fn open(config: &std::path::Path) -> anyhow::Result<Result<Opened, ExitCode>> {
    let Some(config) = super::load_or_report(config) else {
        return Ok(Err(ExitCode::from(super::EXIT_INVALID_CONFIG)));
    };
    let store = crate::auth::open_store(&config)?;
    Ok(Ok((config, store)))
}

pub(super) fn block_on<T>(work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?
        .block_on(work))
}

/// An administrative event, done from the command line.
fn admin_event(event: AuditKind, user: &str, now: SystemTime) -> AuditEvent {
    AuditEvent {
        at: now,
        event: event.as_str().to_owned(),
        actor: "cli".to_owned(),
        subject: user.to_owned(),
        app: None,
        client: None,
        outcome: "ok".to_owned(),
    }
}

fn when(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

fn describe(u: &UserSummary, now: SystemTime) -> String {
    let locked = match u.locked_until {
        Some(until) if until > now => format!("locked until {}", when(Some(until))),
        _ => "not locked".to_owned(),
    };
    format!(
        "{:<24} {} device(s), {} recovery code(s) left, last used {}, {locked}",
        u.name,
        u.devices,
        u.recovery_codes_left,
        when(u.last_used_at)
    )
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    match command {
        Command::List { config } => {
            let (_, store) = match open(config)? {
                Ok(opened) => opened,
                Err(code) => return Ok(code),
            };
            let users = block_on(store.users())??;
            if users.is_empty() {
                out!("no users have signed in through the gateway yet");
            }
            for user in &users {
                out!("{}", describe(user, now));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { config, user } => {
            let (_, store) = match open(config)? {
                Ok(opened) => opened,
                Err(code) => return Ok(code),
            };
            let user = user.trim().to_lowercase();
            let (users, devices, keys, phone, events) = block_on(async {
                let users = store.users().await?;
                let devices = store.totp_devices(&user).await?;
                let keys = store.security_keys(&user).await?;
                let phone = store.phone_number(&user).await?;
                let query = AuditQuery {
                    subject: Some(user.clone()),
                    since: None,
                    limit: 10,
                };
                let events = store.audit(&query).await?;
                Ok::<_, crate::store::StoreError>((users, devices, keys, phone, events))
            })??;
            let Some(summary) = users.iter().find(|u| u.name == user) else {
                eprintln!("portvakt: the gateway knows no user {user}");
                return Ok(ExitCode::FAILURE);
            };
            out!("{}", describe(summary, now));
            for device in devices {
                out!(
                    "  device {:>3}: {} (added {}, last used {})",
                    device.id,
                    device.name,
                    when(Some(device.created_at)),
                    when(device.last_used_at)
                );
            }
            for key in keys {
                out!(
                    "  security key {:>3}: {} (for {}, added {}, last used {})",
                    key.id,
                    key.name,
                    key.rp_id,
                    when(Some(key.created_at)),
                    when(key.last_used_at)
                );
            }
            if let Some(phone) = phone {
                // Masked: an admin needs to know there is one (a SIM swap could
                // reach it), not the number.
                out!("  phone for text codes: {}", crate::factors::phone::mask(&phone));
            }
            for event in events {
                out!(
                    "  {} {} {} by {} from {}",
                    when(Some(event.at)),
                    event.event,
                    event.outcome,
                    event.actor,
                    event.client.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset { config, users } => {
            let (_, store) = match open(config)? {
                Ok(opened) => opened,
                Err(code) => return Ok(code),
            };
            for user in users {
                let user = user.trim().to_lowercase();
                block_on(async {
                    store.reset_second_factor(&user).await?;
                    store.record(&admin_event(AuditKind::Reset, &user, now)).await
                })??;
                out!("{user}: second factor reset; sessions revoked; the next sign-in enrols again");
            }
            eprintln!(
                "note: a running gateway may accept a revoked session for up to 15 seconds (its cache)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Unlock { config, user } => {
            let (_, store) = match open(config)? {
                Ok(opened) => opened,
                Err(code) => return Ok(code),
            };
            let user = user.trim().to_lowercase();
            block_on(async {
                store.reset_failures(Subject::User(&user)).await?;
                store.record(&admin_event(AuditKind::Unlocked, &user, now)).await
            })??;
            out!("{user}: unlocked");
            Ok(ExitCode::SUCCESS)
        }
        Command::OpenEnrolment { config, user, within } => {
            let (config, store) = match open(config)? {
                Ok(opened) => opened,
                Err(code) => return Ok(code),
            };
            if config.second_factor.enrolment != Enrolment::AdminOpened {
                eprintln!(
                    "note: second_factor.enrolment is not `admin` in this configuration, so users need no opening to enrol"
                );
            }
            let user = user.trim().to_lowercase();
            let until = now + *within;
            block_on(async {
                store.open_enrolment(&user, until, now).await?;
                store
                    .record(&admin_event(AuditKind::EnrolmentOpened, &user, now))
                    .await
            })??;
            out!(
                "{user} may enrol a first authenticator until {} (UTC)",
                humantime::format_rfc3339_seconds(until)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
