//! What the gateway's own checks cost: path normalisation, the policy decision at
//! 10, 1,000 and 10,000 rules, the session cookie check, both together as a request
//! pays them, and a TOTP verification; and each per-request cost issue 13 removed,
//! beside what it cost before (opening a session cookie, signing the identity,
//! the access line, the client's address, header hygiene), so that each win stays
//! won. Run with `cargo bench --bench per_request`; BENCHMARKS.md has the figures.

// Benchmark setup: a failure to build the fixture is a broken benchmark.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use portvakt::auth::identity::{self, Claims, IdentitySigner};
use portvakt::auth::sessions::Sessions;
use portvakt::config::model::{MfaChanges, SessionSettings};
use portvakt::config::LogFormat;
use portvakt::factors::totp::{self, TotpSecret, TotpSettings};
use portvakt::factors::SignInMethod;
use portvakt::policy::{
    normalise, AppPolicy, Authentication, MfaMode, PathMatch, RequestFacts, RouteTable, Rule, RulePolicy,
    Subjects,
};
use portvakt::portal::answer::Label;
use portvakt::proxy::access_log::{AccessLine, AccessLog, LineWriter, QUEUE_LINES};
use portvakt::proxy::headers::{client_origin, names_to_strip};
use portvakt::store::{SqliteStore, Store};

/// `n` rules spread over departments and apps, with a mix of policies, methods and
/// group conditions, as a large deployment's file might hold.
fn policy_with(n: usize) -> AppPolicy {
    let rules = (0..n)
        .map(|i| {
            let conditional = i % 5 == 0;
            Rule {
                path: format!("/dept{}/app{i}", i % 97),
                path_match: if i % 7 == 0 {
                    PathMatch::Exact
                } else {
                    PathMatch::Prefix
                },
                methods: (i % 3 == 0).then(|| vec!["GET".to_owned(), "POST".to_owned()]),
                policy: match i % 4 {
                    0 => RulePolicy::Bypass,
                    1 => RulePolicy::Password,
                    2 => RulePolicy::Mfa {
                        max_age: Some(Duration::from_secs(600)),
                    },
                    _ => RulePolicy::Deny,
                },
                subjects: Subjects {
                    users: vec![],
                    groups: if conditional && i % 4 != 0 {
                        vec!["admins".to_owned()]
                    } else {
                        vec![]
                    },
                },
                networks: vec![],
                app_passwords: None,
                origin: String::new(),
            }
        })
        .collect();
    AppPolicy {
        mfa: MfaMode::Required,
        mfa_in_force_since: None,
        app_passwords: false,
        routes: RouteTable::build(rules, false).expect("generated rules do not conflict"),
    }
}

fn decisions(c: &mut Criterion) {
    let auth = Authentication {
        user: "alice".to_owned(),
        groups: ["staff".to_owned(), "admins".to_owned()].into(),
        second_factor_at: Some(SystemTime::now() - Duration::from_secs(60)),
        mfa_opted_in: false,
        signed_in_at: SystemTime::now() - Duration::from_secs(600),
    };
    let now = SystemTime::now();
    let mut group = c.benchmark_group("decide");
    for n in [10, 1_000, 10_000] {
        let policy = policy_with(n);
        // A request under a rule (the deepest match) and one no rule covers.
        let hit = normalise(b"/dept5/app5/reports/2026/q3").expect("path");
        let miss = normalise(b"/elsewhere/index.html").expect("path");
        for (name, path) in [("hit", &hit), ("miss", &miss)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    policy.decide(black_box(&RequestFacts {
                        method: "GET",
                        path,
                        client_ip: [192, 0, 2, 1].into(),
                        auth: Some(&auth),
                        now,
                    }))
                })
            });
        }
    }
    group.finish();
}

fn normalisation(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalise");
    for (name, raw) in [
        ("plain", &b"/dept5/app5/reports/2026/q3"[..]),
        ("hostile", &b"//dept5/./x/../app5/%72eports/2026/q3/"[..]),
    ] {
        group.bench_function(name, |b| b.iter(|| normalise(black_box(raw))));
    }
    group.finish();
}

/// A request's own checks: the session cookie opened and looked up (the session in
/// the cache, as for every request after a user's first), then the decision with
/// 10,000 rules.
fn session_check(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).expect("store"));
    let sessions = Sessions::new(store, &[7; 64]).expect("key");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = SystemTime::now();
    let cookie = runtime
        .block_on(sessions.start("alice", "app", SignInMethod::Totp, now, false))
        .expect("session")
        .cookie_value;
    let settings = SessionSettings {
        idle_timeout: Duration::from_secs(1800),
        absolute_timeout: Duration::from_secs(12 * 3600),
        login_timeout: Duration::from_secs(300),
        mfa_changes: MfaChanges::NextSignIn,
    };
    let policy = policy_with(10_000);
    let path = normalise(b"/dept5/app5/reports/2026/q3").expect("path");
    let mut group = c.benchmark_group("request");
    group.bench_function("cookie_check", |b| {
        b.to_async(&runtime).iter(|| async {
            let found = sessions
                .resume(black_box(&cookie), "app", &settings, now, false)
                .await;
            found.expect("store").expect("a live session")
        })
    });
    group.bench_function("cookie_check_and_decide_10k_rules", |b| {
        b.to_async(&runtime).iter(|| async {
            let session = sessions
                .resume(black_box(&cookie), "app", &settings, now, false)
                .await
                .expect("store")
                .expect("a live session");
            let auth = Authentication {
                user: session.user.clone(),
                groups: ["staff".to_owned()].into(),
                second_factor_at: session.second_factor_at,
                mfa_opted_in: session.mfa_opted_in,
                signed_in_at: session.created_at,
            };
            policy.decide(&RequestFacts {
                method: "GET",
                path: &path,
                client_ip: [192, 0, 2, 1].into(),
                auth: Some(&auth),
                now,
            })
        })
    });
    group.finish();
}

/// A code checked against one device (the three steps of the window, always all).
fn totp_verification(c: &mut Criterion) {
    let secret = TotpSecret::generate();
    let settings = TotpSettings::default();
    let now = 1_800_000_000;
    c.bench_function("totp/verify", |b| {
        b.iter(|| totp::verify(&secret, &settings, black_box("123456"), now, None))
    });
}

/// The costs removed from the request path, each beside what it replaced.
fn removed_costs(c: &mut Criterion) {
    let mut group = c.benchmark_group("removed");

    // A session cookie: opened (AES-GCM) and its id hashed on every request before;
    // now `cookie_check` above finds the value already opened.
    let key = cookie::Key::from(&[7; 64]);
    let sealed =
        portvakt::auth::cookies::seal_id(&key, "a-random-session-id-of-43-characters-abcdefg", false);
    group.bench_function("cookie_open_before", |b| {
        b.iter(|| portvakt::auth::cookies::open_id(&key, black_box(&sealed), false))
    });

    // The identity headers: made from the claims on every request before (the
    // groups joined, the time written, each value copied); now reused per session.
    let signer = IdentitySigner::new(&[3; 32]);
    let groups: Vec<String> = vec!["staff".to_owned(), "admins".to_owned()];
    let claims = Claims {
        iss: identity::ISSUER,
        aud: "app",
        sub: "alice",
        groups: &groups,
        auth_time: 1_800_000_000,
        amr: vec!["pwd", "otp"],
        iat: 1_800_000_100,
        exp: 1_800_000_160,
    };
    group.bench_function("identity_values_before", |b| {
        b.iter(|| {
            let claims = black_box(&claims);
            (
                http::HeaderValue::from_bytes(claims.sub.as_bytes()),
                http::HeaderValue::from_bytes(claims.groups.join(",").as_bytes()),
                http::HeaderValue::try_from(claims.auth_time.to_string()),
            )
        })
    });
    group.bench_function("identity_values_now", |b| {
        b.iter(|| signer.identity_for_session([1; 32], black_box(&claims)))
    });

    // The access line: formatted by `tracing`'s JSON formatter on the request path
    // before; now queued there and formatted by the writer.
    let line = || AccessLine {
        at: SystemTime::now(),
        config: None,
        app: None,
        decided_by: None,
        host: "app.bench".to_owned(),
        method: http::Method::GET,
        path: normalise(b"/dept5/app5/reports/2026/q3").ok(),
        client: Some([192, 0, 2, 7].into()),
        user: Some("alice".to_owned()),
        decision: Label::Allow,
        status: 200,
        latency: Duration::from_micros(830),
        reference: 0x1234_5678_9abc_def0,
        error: None,
    };
    let (log, writer) = AccessLog::start_to(
        LogFormat::Json,
        prometheus::IntCounter::new("dropped", "dropped").expect("counter"),
        QUEUE_LINES,
        std::io::sink,
    )
    .expect("writer");
    group.bench_function("access_line_queued_now", |b| {
        b.iter_batched(line, |l| log.record(l), BatchSize::SmallInput)
    });
    writer.finish(Duration::from_secs(5));
    let mut lines = LineWriter::new(LogFormat::Json);
    let mut out = Vec::with_capacity(1024);
    let sample = line();
    group.bench_function("access_line_formatted_by_the_writer", |b| {
        b.iter(|| {
            out.clear();
            lines.write(black_box(&sample), &mut out);
        })
    });

    // The client's address: `X-Forwarded-For` from `IpAddr`'s `Display` before.
    let peer: std::net::IpAddr = [203, 0, 113, 77].into();
    let no_headers = http::HeaderMap::new();
    group.bench_function("client_address_before", |b| {
        b.iter(|| http::HeaderValue::try_from(black_box(peer).to_string()))
    });
    group.bench_function("client_address_now", |b| {
        b.iter(|| client_origin(black_box(peer), &no_headers, &[], false))
    });

    // Header hygiene on a browser's request: every name folded into a new String
    // (twice) before; now only names with `_` or upper case are copied.
    let config = portvakt::config::parse(
        "listen: [\"127.0.0.1:1\"]\nstate_dir: s\napps:\n  a:\n    hosts: [a]\n    upstream: http://127.0.0.1:1\n",
        std::path::Path::new("bench.yaml"),
    )
    .expect("configuration");
    let mut browser = http::HeaderMap::new();
    for name in [
        "host",
        "user-agent",
        "accept",
        "accept-language",
        "accept-encoding",
        "referer",
        "cookie",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "upgrade-insecure-requests",
        "priority",
    ] {
        browser.append(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static("x"),
        );
    }
    group.bench_function("header_hygiene_now", |b| {
        b.iter(|| names_to_strip(&config, black_box(&browser)))
    });
    group.finish();
}

criterion_group!(
    benches,
    decisions,
    normalisation,
    session_check,
    totp_verification,
    removed_costs
);
criterion_main!(benches);
