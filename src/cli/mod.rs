//! The command line: `run`, `check`, `explain`, `hash-password`, `users`, `audit`,
//! `keys`, `migrate`.

/// Prints a line of a command's output. When its reader has gone (`| head`), the
/// command ends quietly, as Unix tools do, instead of panicking on the closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}

mod audit;
mod explain;
mod hash_password;
mod keys;
mod migrate;
mod users;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, LoadError};

#[derive(Parser, Debug)]
#[command(
    name = "portvakt",
    version,
    about = "An MFA gateway for web apps that only know passwords"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the gateway.
    Run {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file; exit 0 when valid, 2 with every error otherwise.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show which rule decides a request, and what it needs.
    Explain(explain::Args),
    /// Read a password on standard input and print its argon2id hash for the users file.
    HashPassword,
    /// Show the audit trail: security events, newest first.
    Audit(audit::Args),
    /// Act on users in the gateway's store.
    Users {
        #[command(subcommand)]
        command: users::Command,
    },
    /// Key files for deployments of several gateways.
    Keys {
        #[command(subcommand)]
        command: keys::Command,
    },
    /// Move a deployment's state from its SQLite file to PostgreSQL (for several
    /// gateways), checking that every row reads back the same.
    Migrate(migrate::Args),
}

/// Exit status for an invalid configuration, as `check` documents.
const EXIT_INVALID_CONFIG: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => match load_or_report(&config) {
            Some(config) => crate::server::run(config),
            None => return ExitCode::from(EXIT_INVALID_CONFIG),
        },
        Command::Check { config } => return check(&config),
        Command::Explain(args) => explain::explain(&args),
        Command::HashPassword => hash_password::hash_password(),
        Command::Users { command } => users::run(&command),
        Command::Audit(args) => audit::audit(&args),
        Command::Keys { command } => keys::run(&command),
        Command::Migrate(args) => migrate::migrate(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portvakt: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match load_or_report(path) {
        Some(config) => {
            out!(
                "{}: valid ({} app{}, {} route rule{})",
                path.display(),
                config.apps.len(),
                if config.apps.len() == 1 { "" } else { "s" },
                config
                    .apps
                    .iter()
                    .map(|a| a.policy.routes.rules().len())
                    .sum::<usize>(),
                if config
                    .apps
                    .iter()
                    .map(|a| a.policy.routes.rules().len())
                    .sum::<usize>()
                    == 1
                {
                    ""
                } else {
                    "s"
                },
            );
            for warning in config::warnings(&config) {
                eprintln!("{}: warning: {warning}", path.display());
            }
            ExitCode::SUCCESS
        }
        None => ExitCode::from(EXIT_INVALID_CONFIG),
    }
}

/// Loads a configuration, printing every error to stderr when it is invalid.
fn load_or_report(path: &Path) -> Option<config::Config> {
    match config::load(path) {
        Ok(config) => Some(config),
        Err(LoadError::Invalid(errors)) => {
            eprint!("{errors}");
            None
        }
        Err(e) => {
            eprintln!("portvakt: {e}");
            None
        }
    }
}

/// See `out!`.
pub(crate) fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("portvakt: writing the output: {e}");
        std::process::exit(1);
    }
}
