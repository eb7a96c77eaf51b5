//! The example legacy app on its own:
//!
//! ```text
//! cargo run -p portvakt-legacy-app -- --listen 127.0.0.1:3000 --user alice:wonderland:admin --user bob:builder
//! curl -i http://127.0.0.1:3000/healthz
//! curl -i http://127.0.0.1:3000/login
//! ```
//!
//! `scripts/demo` starts it behind Portvakt instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use portvakt_legacy_app::{parse_account, read_accounts, serve, Quirks};

#[derive(Parser)]
#[command(about = "A password-only example web app to put Portvakt in front of")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// An account as name:password or name:password:admin (repeatable).
    #[arg(long = "user", value_parser = parse_account)]
    users: Vec<(String, portvakt_legacy_app::Account)>,
    /// A file of accounts, one name:password[:admin] per line.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// A sign-in habit of real apps to imitate (repeatable): last-value-wins,
    /// multipart, front-controller, query-login, api-login, basic.
    #[arg(long = "quirk")]
    quirks: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut accounts = HashMap::new();
    if let Some(path) = &args.users_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        accounts.extend(read_accounts(&text).map_err(anyhow::Error::msg)?);
    }
    accounts.extend(args.users);
    if accounts.is_empty() {
        anyhow::bail!("no accounts: give --user name:password or --users-file");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("legacy app listening on http://{}", listener.local_addr()?);
    let quirks = Quirks::parse(&args.quirks).map_err(anyhow::Error::msg)?;
    serve(listener, accounts, quirks).await?;
    Ok(())
}
