//! The minimal program of the Pingora report in BENCHMARKS.md: what adding eight
//! headers to a proxied request costs through `RequestHeader::insert_header` (as
//! an `upstream_request_filter` must), beside the same eight inserts into the
//! `http::HeaderMap` underneath it.
//!
//! The request is the one a browser's HTTP/1.1 client sends (a dozen headers),
//! parsed the way Pingora parses it (case kept), then cloned as Pingora clones it
//! for the upstream. Run it under callgrind for instruction counts:
//!
//!   cargo build --release -p portvakt-bench --bin pingora-headers
//!   valgrind --tool=callgrind target/release/pingora-headers --iterations 100000 --only pingora
//!   valgrind --tool=callgrind target/release/pingora-headers --iterations 100000 --only http
//!
//! or without, for time: `target/release/pingora-headers --iterations 1000000`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    iterations: u32,
    /// `pingora` or `http`: run only one side (for callgrind).
    #[arg(long)]
    only: Option<String>,
}

/// The headers a proxy in front of an app adds: forwarding, then identity.
const ADDED: [&str; 8] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-portvakt-user",
    "x-portvakt-groups",
    "x-portvakt-auth-time",
    "x-portvakt-method",
    "x-portvakt-assertion",
];

const BROWSER: [(&str, &str); 12] = [
    ("Host", "app.example"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
    ),
    ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("Accept-Language", "sv-SE,sv;q=0.8,en-US;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Referer", "https://app.example/reports"),
    ("Cookie", "sessionid=abc; theme=dark"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Priority", "u=0, i"),
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // As Pingora's HTTP/1 server builds it: with the header count as the size hint.
    let mut client = RequestHeader::build("GET", b"/reports/2026/q3", Some(BROWSER.len()))?;
    for (name, value) in BROWSER {
        client.append_header(name.to_owned(), value)?;
    }
    let value = HeaderValue::from_static("a-value-of-some-length-like-an-address-or-a-name");
    let case_names: Vec<Bytes> = ADDED.iter().map(|n| Bytes::from_static(n.as_bytes())).collect();
    let names: Vec<HeaderName> = ADDED.iter().map(|n| HeaderName::from_static(n)).collect();

    let run_pingora = args.only.as_deref().is_none_or(|o| o == "pingora");
    let run_http = args.only.as_deref().is_none_or(|o| o == "http");
    if run_pingora {
        let started = Instant::now();
        for _ in 0..args.iterations {
            black_box(client.clone());
        }
        report("RequestHeader clone", started, args.iterations);
        let started = Instant::now();
        for _ in 0..args.iterations {
            let mut upstream = client.clone();
            for name in &case_names {
                upstream.insert_header(name.clone(), value.clone())?;
            }
            black_box(&upstream);
        }
        report("RequestHeader clone + 8 insert_header", started, args.iterations);
    }
    if run_http {
        let parts = client.as_owned_parts();
        let started = Instant::now();
        for _ in 0..args.iterations {
            black_box(parts.headers.clone());
        }
        report("HeaderMap clone", started, args.iterations);
        let started = Instant::now();
        for _ in 0..args.iterations {
            let mut upstream = parts.headers.clone();
            for name in &names {
                upstream.insert(name.clone(), value.clone());
            }
            black_box(&upstream);
        }
        report("HeaderMap clone + 8 insert", started, args.iterations);
    }
    Ok(())
}

fn report(what: &str, started: Instant, iterations: u32) {
    let each = started.elapsed().as_secs_f64() * 1e9 / f64::from(iterations);
    println!("{what}: {each:.0} ns an iteration");
}
