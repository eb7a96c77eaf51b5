//! Several gateways on one PostgreSQL database, as ops run them behind a load
//! balancer with no sticky sessions: every request of a user's journey may reach
//! either one, a gateway may crash in the middle, and the database may go away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::harness::{postgres_database, Browser, Gateway, LegacyApp, PostgresServer, Reload};
use super::{app_login, code, gateway_for, press_continue, secret_on, HOST};

/// The settings every gateway of one deployment shares: its database and its key.
struct Deployment {
    _keys: tempfile::TempDir,
    extra: String,
}

impl Deployment {
    fn on(url: &str, more: &str) -> Deployment {
        let keys = tempfile::tempdir().unwrap();
        let key_file = keys.path().join("portvakt.key");
        portvakt::keys::Keys::generate(&key_file).unwrap();
        Deployment {
            extra: format!(
                "key_file: {}\nstore: {{ url: \"{url}\" }}\n{more}",
                key_file.display()
            ),
            _keys: keys,
        }
    }

    fn gateway(&self, app: &LegacyApp) -> Gateway {
        gateway_for(app, &self.extra)
    }
}

/// A browser in which alice signed in on `gateway` and enrolled an authenticator.
fn enrolled(gateway: &Gateway) -> Browser {
    let mut browser = Browser::new(gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let page = browser.get("/.portvakt/enrol");
    let csrf = page.input("csrf").unwrap();
    browser.post(
        "/.portvakt/enrol",
        &[("csrf", &csrf), ("code", &code(&secret_on(&page), 0))],
    );
    press_continue(&mut browser);
    browser
}

/// Asks `ask` again until it says yes, for at most `limit`.
fn within(limit: Duration, mut ask: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if ask() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_request_of_the_journey_may_reach_either_gateway() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let deployment = Deployment::on(
        &postgres_database(),
        "lockout: { max_failures: 3, window: 15m, delay: 10m }\n",
    );
    let (a, b) = (deployment.gateway(&app), deployment.gateway(&app));
    let mut browser = Browser::new(&a, HOST);

    // The password on A; the enrolment page on B; the code on A; Continue on B.
    let answer = app_login(&mut browser, "alice", "wonderland");
    assert_eq!(answer.location(), Some("/.portvakt/enrol"));
    browser.switch_to(&b);
    let page = browser.get("/.portvakt/enrol");
    assert_eq!(page.status, 200, "B shows the challenge A began: {}", page.body);
    let secret = secret_on(&page);
    let first_code = code(&secret, 0);
    browser.switch_to(&a);
    let done = browser.post(
        "/.portvakt/enrol",
        &[("csrf", &page.input("csrf").unwrap()), ("code", &first_code)],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.codes().len(), 10, "recovery codes, shown once");
    browser.switch_to(&b);
    let released = press_continue(&mut browser);
    assert_eq!(
        (released.status, released.location()),
        (302, Some("/")),
        "B releases the answer the app gave A: {}",
        released.body
    );
    assert!(released.set_cookie_names().contains(&"sessionid".to_owned()));
    for gateway in [&a, &b] {
        browser.switch_to(gateway);
        assert_eq!(browser.get("/whoami").status, 200, "signed in on both");
    }

    // A sign-out on A reaches B's cache within a second: a copy of the cookie
    // that B has just seen gets nothing there.
    let copy = browser.fork();
    browser.switch_to(&a);
    browser.get("/logout");
    let mut copy_on_b = copy;
    copy_on_b.switch_to(&b);
    assert!(
        within(Duration::from_secs(1), || copy_on_b.get("/whoami").status == 303),
        "the session ended on A still works on B"
    );

    // The password again on B; the code that enrolled (used on A) is refused on
    // B; a fresh one passes.
    browser.switch_to(&b);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    browser.switch_to(&a);
    let replay = browser.post("/.portvakt/verify", &[("csrf", &csrf), ("code", &first_code)]);
    assert_eq!(replay.status, 422, "a code used on one gateway is used on all");
    browser.switch_to(&b);
    let fresh = browser.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!(
        (fresh.status, fresh.location()),
        (302, Some("/")),
        "{}",
        fresh.body
    );

    // Wrong codes are counted across both gateways: the third locks the account
    // for every gateway.
    for (attempt, gateway) in [&a, &b, &a].into_iter().enumerate() {
        let mut attacker = Browser::new(gateway, HOST);
        app_login(&mut attacker, "alice", "wonderland");
        let csrf = attacker.get("/.portvakt/verify").input("csrf").unwrap();
        let wrong = attacker.post("/.portvakt/verify", &[("csrf", &csrf), ("code", "000000")]);
        assert_eq!(wrong.status, 422, "attempt {attempt}");
    }
    let mut attacker = Browser::new(&b, HOST);
    assert_eq!(
        app_login(&mut attacker, "alice", "wonderland").location(),
        Some("/.portvakt/locked"),
        "locked on B by failures counted on A and B"
    );
}

/// A gateway killed in the middle of an enrolment: the other one finishes it, and
/// the first, restarted, knows the device and the used code.
#[test]
fn a_gateway_killed_mid_enrolment_leaves_the_journey_to_the_other() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let deployment = Deployment::on(&postgres_database(), "");
    let (mut a, b) = (deployment.gateway(&app), deployment.gateway(&app));
    let mut browser = Browser::new(&a, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let page = browser.get("/.portvakt/enrol");
    let secret = secret_on(&page);
    a.crash_and_restart();
    browser.switch_to(&b);
    let first_code = code(&secret, 0);
    let done = browser.post(
        "/.portvakt/enrol",
        &[("csrf", &page.input("csrf").unwrap()), ("code", &first_code)],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(press_continue(&mut browser).location(), Some("/"));

    let mut later = Browser::new(&a, HOST);
    assert_eq!(
        app_login(&mut later, "alice", "wonderland").location(),
        Some("/.portvakt/verify"),
        "the restarted gateway knows the device"
    );
    let csrf = later.get("/.portvakt/verify").input("csrf").unwrap();
    let replay = later.post("/.portvakt/verify", &[("csrf", &csrf), ("code", &first_code)]);
    assert_eq!(replay.status, 422);
}

/// The database stops in the middle of the run: protected requests fail closed
/// with the gateway's 503 page, public routes still pass, nothing panics, and the
/// gateway recovers by itself when the database is back.
#[test]
fn with_the_database_gone_protected_requests_fail_closed_and_recover() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let server = PostgresServer::start();
    let deployment = Deployment::on(&server.url, "");
    let gateway = deployment.gateway(&app);
    let mut browser = enrolled(&gateway);
    assert_eq!(browser.get("/whoami").status, 200);

    server.stop();
    // Even a session this gateway has cached: its cache may have missed a
    // revocation, so it is dropped with the notification channel.
    let mut seen = Vec::new();
    assert!(
        within(Duration::from_secs(10), || {
            let status = browser.get("/whoami").status;
            seen.push(status);
            status == 503
        }),
        "a protected request passed without the database: {seen:?}\n{}",
        gateway.log()
    );
    let down = browser.get("/whoami");
    assert!(
        down.body.contains("<html"),
        "the gateway's own page: {}",
        down.body
    );
    assert_eq!(browser.get("/healthz").status, 200, "public routes pass");
    assert_eq!(browser.get("/.portvakt/account").status, 503, "not \"sign in\"");
    // A sign-out the store cannot record is refused, not reported done: the
    // session would outlive it.
    let mut signing_out = browser.fork();
    assert_eq!(signing_out.get("/logout").status, 503);
    assert!(signing_out.cookies.contains_key("portvakt"));
    let mut stranger = Browser::new(&gateway, HOST);
    let login = app_login(&mut stranger, "alice", "wonderland");
    assert!(
        !login.set_cookie_names().contains(&"sessionid".to_owned()),
        "no app session is released without the second factor"
    );

    server.resume();
    assert!(
        within(Duration::from_secs(15), || browser.get("/whoami").status == 200),
        "the gateway did not recover:\n{}",
        gateway.log()
    );
    let log = gateway.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("revocation channel is down"), "the log says so");
    assert!(
        within(Duration::from_secs(5), || gateway
            .metrics()
            .contains("portvakt_revocation_channel_up 1")),
        "{}",
        gateway.metrics()
    );
}

/// A database that stops answering without closing (a frozen host): sign-ins
/// get the gateway's "unavailable" answer after a few seconds, not a hang, and
/// nothing of the app's answer gets through.
#[test]
fn a_database_that_stops_answering_gets_an_answer_not_a_wait() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let server = PostgresServer::start();
    let deployment = Deployment::on(&server.url, "");
    let gateway = deployment.gateway(&app);
    let mut browser = Browser::new(&gateway, HOST);
    let form = browser.get("/login");
    let csrf = form.input("csrf_token").unwrap();
    server.freeze();
    // The harness's client gives up after 30 s: a hang fails the test.
    let answer = browser.post(
        "/login",
        &[
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    );
    server.thaw();
    assert!(
        answer.status == 503 || answer.location() == Some("/.portvakt/unavailable"),
        "{} {:?}",
        answer.status,
        answer.location()
    );
    assert!(!answer.set_cookie_names().contains(&"sessionid".to_owned()));
    assert!(
        within(Duration::from_secs(15), || app_login(
            &mut Browser::new(&gateway, HOST),
            "alice",
            "wonderland"
        )
        .location()
            == Some("/.portvakt/enrol")),
        "no recovery after the thaw:\n{}",
        gateway.log()
    );
}

/// Authenticated load spread over two gateways while both reload their
/// configuration: every request answered as before.
#[test]
fn reloading_two_gateways_under_load_loses_no_request() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let deployment = Deployment::on(&postgres_database(), "");
    let (mut a, mut b) = (deployment.gateway(&app), deployment.gateway(&app));
    let browser = enrolled(&a);

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .map(|gateway| {
            let mut user = browser.fork();
            user.switch_to(gateway);
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let status = user.get("/whoami").status;
                    outcomes.lock().unwrap().push(status);
                }
            })
        })
        .collect();
    for gateway in [&mut a, &mut b] {
        let body = gateway_body(gateway);
        gateway.write_config(&body.replace("max_age: 1s", "max_age: 2s"));
        assert_eq!(gateway.reload(), Reload::Applied);
    }
    let after_last = outcomes.lock().unwrap().len() + 40;
    while outcomes.lock().unwrap().len() < after_last {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
}

/// The configuration a gateway of the harness was started with (after its own lines).
fn gateway_body(gateway: &Gateway) -> String {
    let text = std::fs::read_to_string(gateway.config_path()).unwrap();
    text.split_once("shutdown_timeout: 1s\n").unwrap().1.to_owned()
}
