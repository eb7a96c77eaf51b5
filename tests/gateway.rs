//! The gateway binary in front of the example legacy app, over real HTTP on loopback.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{refusing_port, Gateway, LegacyApp, Reload};
use serde_json::Value;

const ACCOUNTS: &[&str] = &["alice:wonderland:admin", "bob:builder"];

/// The intranet app with the rules most tests use.
fn intranet(app: &LegacyApp, extra_routes: &str) -> String {
    format!(
        "identity_headers: [Remote-User]\napps:\n  intranet:\n    hosts: [intranet.test]\n    upstream: {}\n    routes:\n\
         {extra_routes}      - {{ path: /healthz, match: exact, policy: bypass }}\n      - {{ path: /whoami, policy: bypass }}\n\
         \x20     - {{ path: /admin, policy: deny }}\n",
        app.url()
    )
}

/// What the app's echo page says it received.
fn echo(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not an echo ({e}): {body}"))
}

fn received_headers(echo: &Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or("").to_owned(),
                pair[1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn header<'e>(headers: &'e [(String, String)], name: &str) -> Vec<&'e str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn requests_go_to_the_app_of_their_host_with_the_clients_host_header() {
    let first = LegacyApp::start(ACCOUNTS);
    let second = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&format!(
        "{}  wiki:\n    hosts: [wiki.test]\n    upstream: {}\n    host_header: backend.internal\n    routes:\n      - {{ path: /, policy: bypass }}\n",
        intranet(&first, ""),
        second.url()
    ));
    let client = gateway.client(&["intranet.test", "wiki.test", "elsewhere.test"]);

    let body = client
        .get(gateway.url("intranet.test", "/whoami"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let got = echo(&body);
    assert_eq!(got["served_by"], first.addr.to_string());
    assert_eq!(
        header(&received_headers(&got), "host"),
        [format!("intranet.test:{}", gateway.port)]
    );

    let got = echo(
        &client
            .get(gateway.url("wiki.test", "/whoami?a=1&b=%20"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    assert_eq!(got["served_by"], second.addr.to_string());
    assert_eq!(got["query"], "a=1&b=%20");
    let headers = received_headers(&got);
    assert_eq!(header(&headers, "host"), ["backend.internal"]);
    assert_eq!(
        header(&headers, "x-forwarded-host"),
        [format!("wiki.test:{}", gateway.port)]
    );

    let refused = client
        .get(gateway.url("elsewhere.test", "/whoami"))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 421);
    assert!(refused.text().unwrap().contains("not served here"));
}

#[test]
fn upstream_connections_are_reused() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(&app, ""));
    let peers: Vec<String> = (0..3)
        .map(|_| {
            // A new client connection each time: reuse is on the gateway's side.
            let (status, body) = gateway.raw_get("intranet.test", b"/whoami");
            assert_eq!(status, 200);
            echo(&body)["peer"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        peers.windows(2).all(|w| w[0] == w[1]),
        "one pooled upstream connection: {peers:?}"
    );
}

#[test]
fn bypass_deny_and_the_strict_default_apply() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(&app, ""));
    let client = gateway.client(&["intranet.test"]);
    let get = |path: &str| client.get(gateway.url("intranet.test", path)).send().unwrap();

    let health = get("/healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().unwrap(), "ok\n");
    // Exact bypass does not cover what lies below it.
    assert_eq!(get("/healthz/more").status(), 401);

    let denied = get("/admin/settings");
    assert_eq!(denied.status(), 403);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(denied.headers()[name], value, "{name}");
    }
    assert!(denied.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(denied.text().unwrap().contains("Access denied"));

    // No rule covers `/`: the app's default (`mfa: required`) needs a signed-in user.
    let home = client
        .get(gateway.url("intranet.test", "/"))
        .header("accept-language", "sv-SE,sv;q=0.9")
        .send()
        .unwrap();
    assert_eq!(home.status(), 401);
    assert!(home.text().unwrap().contains("Inloggning krävs"));

    assert_eq!(get("/.portvakt/health").text().unwrap(), "{\"status\":\"ok\"}\n");
    assert_eq!(get("/.portvakt/nothing").status(), 404);
    assert_eq!(get("/.portvakt/assets/portvakt.css").status(), 200);
}

#[test]
fn identity_and_forwarding_headers_never_pass_in_any_spelling() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(&app, ""));
    let request = "GET /whoami HTTP/1.1\r\nHost: intranet.test\r\nConnection: close\r\n\
         X-Portvakt-User: mallory\r\nx-portvakt-user: mallory2\r\nX_PORTVAKT_USER: mallory3\r\n\
         X-PORTVAKT-GROUPS: admins\r\nx_Portvakt_Auth_Time: 1\r\nX-Portvakt-Assertion: forged\r\n\
         Remote-User: root\r\nremote_user: root\r\n\
         X-Forwarded-For: 10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\n\
         X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Forwarded-Uri: /admin\r\n\
         X-HTTP-Method-Override: DELETE\r\nAccept: text/plain\r\n\r\n";
    let (status, body) = gateway.raw(request.as_bytes());
    assert_eq!(status, 200, "{body}");
    let headers = received_headers(&echo(&body));
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "accept",
            "host",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto"
        ],
        "{headers:?}"
    );
    assert_eq!(header(&headers, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(&headers, "x-forwarded-proto"), ["http"]);
}

#[test]
fn the_path_matched_is_the_path_forwarded() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(&app, ""));
    let same_as_whoami: &[&[u8]] = &[
        b"/whoami",
        b"//whoami",
        b"/./whoami",
        b"/x/../whoami",
        b"/admin/../whoami",
        b"/%77hoami",
        b"/%77%68%6F%61%6D%69",
    ];
    for target in same_as_whoami {
        let (status, body) = gateway.raw_get("intranet.test", target);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(target));
        assert_eq!(
            echo(&body)["path"],
            "/whoami",
            "{}",
            String::from_utf8_lossy(target)
        );
    }
    let denied: &[&[u8]] = &[
        b"/admin",
        b"//admin",
        b"/whoami/../admin",
        b"/%61dmin",
        b"/x/./../admin/",
    ];
    for target in denied {
        assert_eq!(
            gateway.raw_get("intranet.test", target).0,
            403,
            "{}",
            String::from_utf8_lossy(target)
        );
    }
    let refused: &[&[u8]] = &[
        b"/admin%2f",
        b"/whoami%2F..%2Fadmin",
        b"/%2e%2e/admin",
        b"/../admin",
        b"/admin;jsessionid=x",
        b"/admin%5c",
        b"/whoami%00",
        b"/%252e%252e/admin",
        b"/caf%E9",
        b"/whoami%",
        b"*",
    ];
    for target in refused {
        let (status, body) = gateway.raw_get("intranet.test", target);
        assert_eq!(status, 400, "{}: {body}", String::from_utf8_lossy(target));
        assert!(
            body.contains("cannot be used"),
            "{}: {body}",
            String::from_utf8_lossy(target)
        );
    }
    // Raw bytes that are not UTF-8 are refused by Pingora's parser before our hooks run.
    assert_eq!(gateway.raw_get("intranet.test", b"/caf\xe9").0, 400);
    let long = format!("/whoami?{}", "a".repeat(9000));
    assert_eq!(gateway.raw_get("intranet.test", long.as_bytes()).0, 414);

    // Absolute-form: the target's host wins, and must agree with Host.
    let (status, body) = gateway.raw(
        b"GET http://intranet.test/x/../whoami HTTP/1.1\r\nHost: intranet.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, echo(&body)["path"].as_str()), (200, Some("/whoami")));
    let (status, _) = gateway.raw(
        b"GET http://intranet.test/whoami HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400);
    assert_eq!(
        gateway
            .raw(b"GET /whoami HTTP/1.1\r\nConnection: close\r\n\r\n")
            .0,
        400
    );
}

#[test]
fn malformed_requests_get_4xx_and_the_gateway_keeps_serving() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(&app, ""));
    let hostile: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /whoami HTTP/9.9\r\nHost: intranet.test\r\n\r\n".to_vec(),
        b"GET /whoami HTTP/1.1\r\nHost: intranet.test\r\nBad Header: x\r\n\r\n".to_vec(),
        b"GET /whoami HTTP/1.1\r\nHost: intranet.test\r\nX: \x00\r\n\r\n".to_vec(),
        b"GET /whoami HTTP/1.1\r\nHost: intranet.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
            .to_vec(),
        b"GET /whoami HTTP/1.1\r\nHost: intranet.test:notaport\r\n\r\n".to_vec(),
        b"GET /whoami HTTP/1.1\r\nHost: [::1\r\n\r\n".to_vec(),
        b"GET //// HTTP/1.1\r\nHost: intranet.test\r\n\r\n".to_vec(),
        b"GET /a/%2e%2e/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: intranet.test\r\n\r\n".to_vec(),
        b"GET /?%zz=%00 HTTP/1.1\r\nHost: intranet.test\r\n\r\n".to_vec(),
        b"CONNECT intranet.test:443 HTTP/1.1\r\nHost: intranet.test:443\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nHost: intranet.test\r\n\r\n".to_vec(),
    ];
    for request in &hostile {
        // Each on its own connection; a closed connection (status 0) is also a refusal.
        let (status, body) = gateway.raw(request);
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        assert!(
            status == 0 || (400..500).contains(&status),
            "{shown:?} got {status}: {body}"
        );
    }
    // Both framings at once (the smuggling shape): Pingora keeps the chunks and drops
    // the length (RFC 9112 §6.3), so the app never sees the two disagree.
    let (status, body) = gateway.raw(
        b"POST /whoami HTTP/1.1\r\nHost: intranet.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\r\n\r\n",
    );
    if status == 200 {
        let headers = received_headers(&echo(&body));
        assert!(header(&headers, "content-length").is_empty(), "{headers:?}");
    } else {
        assert!((400..500).contains(&status), "{status}");
    }
    let (status, _) = gateway.raw_get("intranet.test", b"/healthz");
    assert_eq!(status, 200, "the gateway still serves after the hostile requests");
}

#[test]
fn http2_clients_are_served() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(&app, ""));
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .resolve("intranet.test", ([127, 0, 0, 1], gateway.port).into())
        .build()
        .unwrap();
    let response = client
        .get(gateway.url("intranet.test", "/x/../whoami"))
        .send()
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(echo(&response.text().unwrap())["path"], "/whoami");
    let denied = client.get(gateway.url("intranet.test", "/admin")).send().unwrap();
    assert_eq!(denied.status(), 403);
}

#[test]
fn tls_listeners_negotiate_http2_and_pages_send_hsts() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start_with_tls(&intranet(&app, ""), &["intranet.test"]);
    let tls = gateway.tls.as_ref().unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(tls.cert_pem.as_bytes()).unwrap())
        .resolve("intranet.test", ([127, 0, 0, 1], tls.port).into())
        .build()
        .unwrap();
    let url = |path: &str| format!("https://intranet.test:{}{path}", tls.port);
    let response = client.get(url("/whoami")).send().unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let headers = received_headers(&echo(&response.text().unwrap()));
    assert_eq!(header(&headers, "x-forwarded-proto"), ["https"]);
    let denied = client.get(url("/admin")).send().unwrap();
    assert_eq!(denied.status(), 403);
    assert!(denied.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
    // The plain listener sends no HSTS.
    let plain = gateway
        .client(&["intranet.test"])
        .get(gateway.url("intranet.test", "/admin"))
        .send()
        .unwrap();
    assert!(plain.headers().get("strict-transport-security").is_none());
}

#[test]
fn forwarding_headers_count_only_from_trusted_proxies() {
    let app = LegacyApp::start(ACCOUNTS);
    let office = "      - { path: /office, policy: bypass, networks: [203.0.113.0/24] }\n      - { path: /office, policy: deny }\n";
    let untrusted = Gateway::start(&intranet(&app, office));
    let trusted = Gateway::start(&format!(
        "trusted_proxies: [127.0.0.0/8]\n{}",
        intranet(&app, office)
    ));
    let forged = "GET /office/plan HTTP/1.1\r\nHost: intranet.test\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n";
    assert_eq!(untrusted.raw(forged.as_bytes()).0, 403);
    // Through the trusted proxy the request is forwarded (the app itself has no such page).
    assert_eq!(trusted.raw(forged.as_bytes()).0, 404);
    let (_, body) = trusted.raw(
        b"GET /whoami HTTP/1.1\r\nHost: intranet.test\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.7\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    let headers = received_headers(&echo(&body));
    assert_eq!(
        header(&headers, "x-forwarded-for"),
        ["198.51.100.1, 203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(header(&headers, "x-forwarded-proto"), ["https"]);
    let (status, _) = trusted.raw(b"GET /whoami HTTP/1.1\r\nHost: intranet.test\r\nX-Forwarded-For: somewhere\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400);
}

#[test]
fn an_unreachable_app_gets_a_502_page() {
    let (_refusing, port) = refusing_port();
    let gateway = Gateway::start(&format!(
        "apps:\n  gone:\n    hosts: [gone.test]\n    upstream: http://127.0.0.1:{}\n    routes:\n      - {{ path: /, policy: bypass }}\n",
        port
    ));
    let response = gateway
        .client(&["gone.test"])
        .get(gateway.url("gone.test", "/"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().unwrap().contains("not answering"));
}

#[test]
fn a_hot_reload_under_load_loses_no_request_and_a_bad_file_changes_nothing() {
    let app = LegacyApp::start(ACCOUNTS);
    let mut gateway = Gateway::start(&intranet(&app, ""));
    let client = gateway.client(&["intranet.test"]);
    let health = |client: &reqwest::blocking::Client, gateway: &Gateway| {
        client
            .get(gateway.url("intranet.test", "/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(health(&client, &gateway), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            let client = gateway.client(&["intranet.test"]);
            let url = gateway.url("intranet.test", "/whoami");
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = client
                        .get(&url)
                        .send()
                        .map(|r| r.status().as_u16())
                        .map_err(|e| e.to_string());
                    outcomes.lock().unwrap().push(outcome);
                }
            })
        })
        .collect();

    let with_health_denied = intranet(
        &app,
        "      - { path: /healthz, match: exact, policy: deny, methods: [GET] }\n",
    );
    gateway.write_config(&with_health_denied);
    assert_eq!(gateway.reload(), Reload::Applied);
    assert_eq!(health(&client, &gateway), 403);

    gateway.write_config(&format!(
        "colour: blue\n{}",
        with_health_denied.replace("/admin, policy: deny", "/admin, policy: maybe")
    ));
    assert_eq!(gateway.reload(), Reload::Rejected);
    assert_eq!(
        health(&client, &gateway),
        403,
        "a rejected file must leave the running configuration alone"
    );
    gateway.write_config("apps: [");
    assert_eq!(gateway.reload(), Reload::Rejected);
    assert_eq!(health(&client, &gateway), 403);

    // The load has run across all three reloads; let it reach a few more requests
    // after the last one, counted rather than timed.
    let after_last = outcomes.lock().unwrap().len() + 20;
    while outcomes.lock().unwrap().len() < after_last {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    assert!(outcomes.len() > 20, "too little load: {}", outcomes.len());
    let failures: Vec<_> = outcomes.iter().filter(|o| **o != Ok(200)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        outcomes.len(),
        &failures[..failures.len().min(5)]
    );

    let log = gateway.log();
    assert!(log.contains("reload rejected; the previous configuration stays in force"));
    assert!(
        log.contains("unknown key `colour`"),
        "the errors of a rejected file are logged"
    );
    let metrics = gateway.metrics();
    assert!(
        metrics.contains("portvakt_config_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portvakt_config_reloads_total{result=\"error\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portvakt_requests_total{app=\"intranet\",decision=\"bypass\"}"),
        "{metrics}"
    );
}

#[test]
fn sigterm_stops_the_gateway_gracefully() {
    let app = LegacyApp::start(ACCOUNTS);
    let mut gateway = Gateway::start(&intranet(&app, ""));
    gateway.signal("TERM");
    let status = gateway.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", gateway.log());
}

/// The access log is written off the request path, and still says every request:
/// none is lost when the gateway stops right after answering, and none is dropped.
#[test]
fn every_request_has_its_access_line_even_when_the_gateway_stops_at_once() {
    let app = LegacyApp::start(ACCOUNTS);
    let mut gateway = Gateway::start(&intranet(&app, ""));
    let client = gateway.client(&["intranet.test", "elsewhere.test"]);
    let status = |host: &str, path: &str| {
        client
            .get(gateway.url(host, path))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status("intranet.test", "/healthz"), 200);
    assert_eq!(status("intranet.test", "/admin/x%22y"), 403);
    assert_eq!(status("elsewhere.test", "/"), 421);
    assert!(gateway.metrics().contains("portvakt_access_log_dropped_total 0"));
    gateway.signal("TERM");
    assert!(gateway.wait_for_exit(Duration::from_secs(20)).success());
    let log = gateway.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" INFO portvakt::access: "))
        .collect();
    let line_with = |fields: &[&str]| {
        access
            .iter()
            .any(|line| fields.iter().all(|field| line.contains(field)))
    };
    assert!(
        line_with(&[
            "app=\"intranet\"",
            "host=\"intranet.test:",
            "method=GET",
            "path=\"/healthz\"",
            "client=127.0.0.1",
            "user=\"-\"",
            "(apps.intranet.routes[0])\"",
            "decision=\"bypass\"",
            "status=200",
            "latency_ms=",
        ]),
        "{log}"
    );
    assert!(
        line_with(&["path=\"/admin/x%22y\"", "decision=\"deny\"", "status=403"]),
        "{log}"
    );
    assert!(
        line_with(&["app=\"-\"", "decision=\"unknown_host\"", "status=421"]),
        "{log}"
    );
}

#[test]
fn check_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "listen: [\"127.0.0.1:8080\"]\nstate_dir: s\napps:\n  wiki:\n    hosts: [wiki.test]\n    hosts: [other.test]\n    upstream: http://127.0.0.1:3000\n    mfa: 3\n    colour: blue\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display().to_string();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with(&file))
        .collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].contains(&format!("{file}:6:5: apps.wiki.hosts: duplicate key")),
        "{stderr}"
    );
    assert!(
        lines[1].contains(&format!("{file}:8:10: apps.wiki.mfa: `3` is not an MFA mode")),
        "{stderr}"
    );
    assert!(
        lines[2].contains(&format!("{file}:9:5: apps.wiki.colour: unknown key")),
        "{stderr}"
    );
}

#[test]
fn every_shipped_configuration_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
                .args(["check", "-c"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected the demo and the reference configuration");
}

#[test]
fn explain_names_the_deciding_rule() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(["explain", "-c"])
        .arg(&config)
        .args([
            "--host",
            "localhost:8080",
            "--path",
            "/admin/users",
            "--user",
            "alice",
            "--groups",
            "admins",
            "--mfa-age",
            "2m",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("(apps.intranet.routes[1])"), "{stdout}");
    assert!(
        stdout.contains("outcome:  forward with the user's identity"),
        "{stdout}"
    );
}

#[test]
fn page_language_colour_and_logo_come_from_the_configuration() {
    let app = LegacyApp::start(ACCOUNTS);
    let svg =
        "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><script>alert(1)</script></svg>";
    let gateway = Gateway::start_with_files(
        &format!(
            "pages: {{ language: sv, colour: \"#a01010\", logo: logo.svg }}\n{}",
            intranet(&app, "")
        ),
        &[("logo.svg", svg)],
    );
    let client = gateway.client(&["intranet.test"]);
    let denied = client
        .get(gateway.url("intranet.test", "/admin"))
        .header("accept-language", "en-GB")
        .send()
        .unwrap();
    assert!(
        denied.text().unwrap().contains("Åtkomst nekad"),
        "one language for everybody"
    );
    let css = client
        .get(gateway.url("intranet.test", "/.portvakt/assets/portvakt.css"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(css.contains("--accent: #a01010") && css.contains("/.portvakt/assets/logo"));
    let logo = client
        .get(gateway.url("intranet.test", "/.portvakt/assets/logo"))
        .send()
        .unwrap();
    assert_eq!(logo.headers()["content-type"], "image/svg+xml");
    assert!(
        logo.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"),
        "a script in the logo never runs"
    );
}

/// `portvakt … | head` closes the pipe early: the command ends quietly, never with a
/// panic on stderr.
#[test]
fn a_command_whose_reader_has_gone_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portvakt.yaml");
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(
        &config,
        "listen: [\"127.0.0.1:0\"]\nstate_dir: state\napps:\n  a:\n    hosts: [a.test]\n    upstream: http://127.0.0.1:9\n",
    )
    .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(["users", "list", "-c"])
        .arg(&config)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
}

/// Old apps write Latin-1 in headers (a file name with `é` as one byte 0xE9): not
/// UTF-8, still a valid header, and it reaches the browser as sent.
#[test]
fn an_apps_latin1_header_reaches_the_browser() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = Gateway::start(&intranet(
        &app,
        "      - { path: /download, match: exact, policy: bypass }\n",
    ));
    let (status, _) = gateway.raw_get("intranet.test", b"/download");
    assert_eq!(status, 200, "{}", gateway.log());
    let response = gateway
        .client(&["intranet.test"])
        .get(gateway.url("intranet.test", "/download"))
        .send()
        .unwrap();
    assert_eq!(
        response.headers()["content-disposition"].as_bytes(),
        b"attachment; filename=\"r\xe9sum\xe9.txt\""
    );
    assert!(!gateway.log().contains("panicked"), "{}", gateway.log());
}

/// Gateways of one deployment share a key file made by `portvakt keys generate`:
/// they publish the same keys (and open each other's cookies and sealed secrets). A
/// configured key file is never made up when it is missing, nor overwritten.
#[test]
fn gateways_sharing_a_key_file_publish_the_same_keys() {
    let app = LegacyApp::start(ACCOUNTS);
    let keys = tempfile::tempdir().unwrap();
    let shared = keys.path().join("shared.key");
    let generate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .args(["keys", "generate", "--out"])
            .arg(&shared)
            .output()
            .unwrap()
    };
    let made = generate();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let again = generate();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    let with_key = format!("key_file: {}\n{}", shared.display(), intranet(&app, ""));
    let jwks = |gateway: &Gateway| gateway.raw_get("intranet.test", b"/.portvakt/jwks.json").1;
    let a = Gateway::start(&with_key);
    let b = Gateway::start(&with_key);
    let own = Gateway::start(&intranet(&app, ""));
    assert!(jwks(&a).contains("Ed25519"), "{}", jwks(&a));
    assert_eq!(jwks(&a), jwks(&b), "one deployment, one key");
    assert_ne!(jwks(&a), jwks(&own), "a state directory's own key is its own");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portvakt.yaml");
    let missing = keys.path().join("missing.key");
    std::fs::write(
        &config,
        format!(
            "listen: [\"127.0.0.1:0\"]\nstate_dir: state\nkey_file: {}\n{}",
            missing.display(),
            intranet(&app, "")
        ),
    )
    .unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("portvakt keys generate --out"), "{stderr}");
    assert!(!missing.exists(), "never made up");
}
