//! Starts sessions for the load benchmark the way a sign-in would (same store, same
//! key file, same sealed cookie), without typing codes: writes one `Cookie` header
//! value per line. For benchmarking a store of your own only; it never talks to a
//! running gateway.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Parser;
use portvakt::auth::sessions::Sessions;
use portvakt::factors::SignInMethod;

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
    /// Start the sessions this many seconds ago, so that a request finds their
    /// last activity old enough to be written again (the store's write path).
    #[arg(long, default_value_t = 0)]
    idle: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = portvakt::config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = portvakt::auth::open_keys(&config)?;
    // The store the configuration names: the SQLite file, or PostgreSQL.
    let store = portvakt::auth::open_store(&config)?;
    let sessions = Sessions::new(store, keys.cookie_key()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for i in 0..args.count {
            let user = format!("user{}", i % args.users.max(1) + 1);
            let then = SystemTime::now() - Duration::from_secs(args.idle);
            let issued = sessions
                .start(&user, &args.app, SignInMethod::Totp, then, false)
                .await?;
            writeln!(out, "portvakt={}", issued.cookie_value)?;
        }
        anyhow::Ok(())
    })?;
    out.flush()?;
    Ok(())
}
