//! `portvakt keys`: a key file for the gateways of one deployment to share, and
//! the end of a key rotation (sealing every device's secret under the new key).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::auth::open_keys;
use crate::keys::Keys;
use crate::store::{Store, TotpDevice};

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
    /// Seal every authenticator's secret again under `key_file`, where only
    /// `previous_key_file` opens it; after this (and once sessions from before the
    /// rotation have ended), `previous_key_file` can go.
    Reseal {
        #[arg(short, long)]
        config: PathBuf,
    },
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate { out } => {
            Keys::generate(out)?;
            out!("wrote a new key file: {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Reseal { config } => {
            let (config, store) = match super::users::open(config)? {
                Ok(opened) => opened,
                Err(code) => return Ok(code),
            };
            if config.previous_key_file.is_none() {
                anyhow::bail!("the configuration names no previous_key_file: there is nothing to reseal");
            }
            let keys = open_keys(&config)?;
            let counts = super::users::block_on(reseal_all(&*store, &keys))??;
            out!(
                "{} secret(s) sealed again under the new key, {} already were, {} open under neither key",
                counts.resealed,
                counts.current,
                counts.unreadable
            );
            Ok(if counts.unreadable == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

#[derive(Default)]
struct Resealed {
    resealed: usize,
    current: usize,
    unreadable: usize,
}

async fn reseal_all(store: &dyn Store, keys: &Keys) -> anyhow::Result<Resealed> {
    let mut counts = Resealed::default();
    for user in store.users().await.context("listing users")? {
        for device in store.totp_devices(&user.name).await? {
            let context = TotpDevice::seal_context(&user.name, &device.name);
            match keys.reseal(&device.sealed_secret, &context) {
                None => counts.current += 1,
                Some(Ok(sealed)) => {
                    store.reseal_device(&user.name, device.id, sealed).await?;
                    counts.resealed += 1;
                }
                Some(Err(_)) => {
                    eprintln!(
                        "portvakt: the secret of {}'s device {:?} opens under neither key; left as it is",
                        user.name, device.name
                    );
                    counts.unreadable += 1;
                }
            }
        }
    }
    Ok(counts)
}
