//! Per-request policy cost: path normalisation and the decision, at 10, 1,000 and
//! 10,000 rules. Run with `cargo bench --bench policy`; BENCHMARKS.md has the figures.

// Benchmark setup: a failure to build the fixture is a broken benchmark.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portvakt::policy::{
    normalise, AppPolicy, Authentication, MfaMode, PathMatch, RequestFacts, RouteTable, Rule, RulePolicy,
    Subjects,
};

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
                origin: String::new(),
            }
        })
        .collect();
    AppPolicy {
        mfa: MfaMode::Required,
        mfa_in_force_since: None,
        routes: RouteTable::build(rules, false).expect("generated rules do not conflict"),
    }
}

fn decisions(c: &mut Criterion) {
    let auth = Authentication {
        user: "alice".to_owned(),
        groups: vec!["staff".to_owned(), "admins".to_owned()],
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

criterion_group!(benches, decisions, normalisation);
criterion_main!(benches);
