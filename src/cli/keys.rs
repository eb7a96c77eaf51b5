//! `portvakt keys generate`: a key file for the gateways of one deployment to share.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::keys::Keys;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new key file (mode 0600; never over an existing one). Point every
    /// gateway's `key_file` at it (or give it as the systemd credential
    /// `portvakt.key`), and keep a backup: sealed secrets and sessions need it.
    Generate {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate { out } => {
            Keys::generate(out)?;
            out!("wrote a new key file: {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
