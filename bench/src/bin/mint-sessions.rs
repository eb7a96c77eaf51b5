//! Starts sessions for the load benchmark the way a sign-in would (same store, same
//! key file, same sealed cookie), without typing codes: writes one `Cookie` header
//! value per line. For benchmarking a state directory of your own only; it never
//! talks to a running gateway.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use clap::Parser;
use portvakt::auth::sessions::Sessions;
use portvakt::factors::SignInMethod;
use portvakt::store::{SqliteStore, Store};

#[derive(Parser)]
struct Args {
    /// The gateway's configuration file (for its state directory).
    #[arg(long)]
    config: PathBuf,
    /// The app the sessions are signed in to.
    #[arg(long)]
    app: String,
    /// How many sessions; user names are `user1`, `user2`, ... up to `--users`.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// How many distinct users share the sessions.
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Where to write the cookies, one a line.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = portvakt::config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = portvakt::auth::open_keys(&config)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&config.state_dir)?);
    let sessions = Sessions::new(store, keys.cookie_key()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for i in 0..args.count {
            let user = format!("user{}", i % args.users.max(1) + 1);
            let issued = sessions
                .start(&user, &args.app, SignInMethod::Totp, SystemTime::now(), false)
                .await?;
            writeln!(out, "portvakt={}", issued.cookie_value)?;
        }
        anyhow::Ok(())
    })?;
    out.flush()?;
    Ok(())
}
