//! The smallest Pingora reverse proxy: every request goes to one upstream, nothing
//! is checked. Built from the same Pingora version and server settings as Portvakt,
//! it shows what Portvakt's own work (sessions, policy, headers, logging) costs.

use async_trait::async_trait;
use clap::Parser;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// The upstream, as host:port.
    #[arg(long)]
    upstream: String,
    /// Worker threads (as Portvakt's `server.threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// After SIGTERM, how long in-flight requests may run (as Portvakt's
    /// `server.grace_period` in the bench configuration): Pingora's own default
    /// keeps the process for minutes after the benchmark is done with it.
    #[arg(long, default_value_t = 1)]
    grace_seconds: u64,
    /// Then how long the runtime may take to stop (`server.shutdown_timeout`).
    #[arg(long, default_value_t = 1)]
    shutdown_seconds: u64,
}

struct PassThrough {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        grace_period_seconds: Some(args.grace_seconds),
        graceful_shutdown_timeout_seconds: Some(args.shutdown_seconds),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        PassThrough {
            upstream: args.upstream,
        },
    );
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever()
}
