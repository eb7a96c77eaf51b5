//! A minimal reverse proxy on hyper 1.x: tokio, one pooled keep-alive client, the
//! request passed through as it came. The floor of what a Rust proxy costs.

use std::net::SocketAddr;

use clap::Parser;
use http::uri::{Authority, Scheme};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// The upstream, as host:port.
    #[arg(long)]
    upstream: String,
    /// Worker threads of the runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let upstream: Authority = args.upstream.parse()?;
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build_http();
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let mut parts = req.uri().clone().into_parts();
                    parts.scheme = Some(Scheme::HTTP);
                    parts.authority = Some(upstream);
                    *req.uri_mut() = Uri::from_parts(parts)?;
                    anyhow::Ok(client.request(req).await?)
                }
            });
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            // A client that goes away mid-request is not the proxy's failure.
            let _ = connection.await;
        });
    }
}
