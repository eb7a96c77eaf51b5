//! `login: basic`: an app that checks HTTP Basic credentials itself (the example
//! app's `basic` quirk, which also keeps a session cookie it then takes with any
//! credentials), with the second factor on top of its own check.

use data_encoding::BASE64;

use super::harness::{Browser, Gateway, LegacyApp, Page};
use super::{code, enrol, press_continue};
use portvakt_legacy_app::Quirks;

const CONSOLE: &str = "console.test";

fn console(app: &LegacyApp, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{extra}apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: {}\n    mfa: required\n    login: basic\n\
         \x20   routes:\n      - {{ path: /healthz, match: exact, policy: bypass }}\n\
         \x20     - {{ path: /public, policy: bypass }}\n",
        app.url()
    ))
}

fn basic_app() -> LegacyApp {
    LegacyApp::start_with(
        &["alice:wonderland:admin", "bob:builder"],
        Quirks {
            basic: true,
            ..Quirks::default()
        },
    )
}

fn credentials(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}").as_bytes()))
}

/// What a browser sends once its user typed a name and password into the prompt.
fn as_user(browser: &mut Browser, path: &str, user: &str, password: &str) -> Page {
    browser.get_with(path, &[("authorization", &credentials(user, password))])
}

/// How many requests for pages other than `/` (where the gateway checks
/// credentials) and `/healthz` reached the app.
fn requests_seen(app: &LegacyApp) -> u64 {
    reqwest::blocking::get(format!("{}/healthz", app.url()))
        .unwrap()
        .headers()["x-requests-seen"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A browser in which `user` passed the app's check and enrolled an authenticator.
fn signed_in(gateway: &Gateway, user: &str, password: &str) -> Browser {
    let mut browser = Browser::new(gateway, CONSOLE);
    as_user(&mut browser, "/whoami", user, password);
    enrol(&mut browser);
    press_continue(&mut browser);
    browser
}

#[test]
fn the_apps_prompt_then_the_second_factor_then_back_to_the_url() {
    let app = basic_app();
    let gateway = console(&app, "");
    let mut browser = Browser::new(&gateway, CONSOLE);

    let prompt = browser.get("/whoami");
    assert_eq!(prompt.status, 401);
    assert_eq!(
        prompt.headers["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"Legacy console\"",
        "the app's own prompt"
    );
    let wrong = as_user(&mut browser, "/whoami", "alice", "looking-glass");
    assert_eq!(wrong.status, 401, "a wrong password gets the app's 401");
    assert!(wrong.headers.contains_key("www-authenticate"));

    let right = as_user(&mut browser, "/whoami?page=2", "alice", "wonderland");
    assert_eq!((right.status, right.location()), (303, Some("/.portvakt/enrol")));
    assert_eq!(
        right.set_cookie_names(),
        ["portvakt-challenge"],
        "nothing of the app's"
    );
    // A background request with the credentials (a favicon) gets a bare 401, and no
    // new challenge over the one the user is passing.
    let favicon = gateway
        .client(&[CONSOLE])
        .get(gateway.url(CONSOLE, "/favicon.ico"))
        .header("authorization", credentials("alice", "wonderland"))
        .header("sec-fetch-mode", "no-cors")
        .send()
        .unwrap();
    assert_eq!(favicon.status(), 401);
    assert!(favicon.headers().get("set-cookie").is_none());
    assert!(favicon.headers().get("www-authenticate").is_none(), "no prompt");

    let (secret, _codes, _) = enrol(&mut browser);
    let back = press_continue(&mut browser);
    assert_eq!(
        back.location(),
        Some("/whoami?page=2"),
        "back to exactly the URL asked for"
    );
    let page = as_user(&mut browser, "/whoami?page=2", "alice", "wonderland");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("\"x-portvakt-user\",\"alice\""),
        "{}",
        page.body
    );
    assert!(
        page.set_cookie_names().is_empty(),
        "no app cookie passes: the credentials are the identity"
    );

    // The gateway's sign-out ends it: the same credentials need the factor again.
    browser.post("/.portvakt/logout", &[]);
    let again = as_user(&mut browser, "/whoami", "alice", "wonderland");
    assert_eq!(again.location(), Some("/.portvakt/verify"));
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    let passed = browser.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!(passed.location(), Some("/whoami"), "{}", passed.body);
}

/// A request no session covers never reaches the app — not a write with the
/// right password, not a request while the account is locked — and a public route
/// gets no credentials to check: no blind writes, no oracle outside the lockout.
#[test]
fn nothing_reaches_the_app_before_the_second_factor() {
    let app = basic_app();
    let gateway = console(&app, "lockout: { max_failures: 3, window: 15m, delay: 10m }\n");
    let mut browser = Browser::new(&gateway, CONSOLE);
    let before = requests_seen(&app);
    let write = browser.post_body(
        "/admin/users",
        "application/x-www-form-urlencoded",
        b"action=delete-all-users".to_vec(),
        &[("authorization", &credentials("alice", "wonderland"))],
    );
    assert_eq!(write.location(), Some("/.portvakt/enrol"));
    assert_eq!(requests_seen(&app), before, "the app never saw the write");

    // On a public route the credentials are not passed on: no password oracle.
    for password in ["a", "b", "c", "d", "wonderland"] {
        let public = as_user(&mut browser, "/public", "alice", password);
        assert!(public.set_cookie_names().is_empty());
    }
    let counted = as_user(&mut browser, "/", "alice", "wonderland");
    assert_eq!(
        counted.location(),
        Some("/.portvakt/enrol"),
        "nothing was counted there"
    );

    let before = requests_seen(&app);
    for _ in 0..3 {
        assert_eq!(as_user(&mut browser, "/admin", "alice", "nope").status, 401);
    }
    let locked = as_user(&mut browser, "/admin", "alice", "wonderland");
    assert_eq!(
        locked.location(),
        Some("/.portvakt/locked"),
        "right or wrong alike"
    );
    assert_eq!(
        as_user(&mut browser, "/admin", "Alice", "wonderland").location(),
        Some("/.portvakt/locked")
    );
    assert_eq!(
        requests_seen(&app),
        before,
        "no request of the browser's reached the app"
    );
}

/// The session is bound to the user the credentials name, and no app cookie
/// passes either way: another name is a new sign-in, and a cookie of someone
/// else's (which the app would take with any credentials) never reaches the app.
#[test]
fn another_user_name_is_a_new_sign_in_and_app_cookies_carry_nobody() {
    let app = basic_app();
    let gateway = console(&app, "");
    let mut browser = signed_in(&gateway, "bob", "builder");
    assert_eq!(as_user(&mut browser, "/whoami", "bob", "builder").status, 200);
    // Alice's app cookie, got from the app directly (the gateway never passes one).
    let alice = reqwest::blocking::Client::new()
        .get(format!("{}/whoami", app.url()))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .unwrap();
    let cookie = alice.headers()["set-cookie"].to_str().unwrap().to_owned();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    browser.cookies.insert("sessionid".into(), value.clone());
    let with_it = as_user(&mut browser, "/whoami", "bob", "builder");
    assert_eq!(with_it.status, 200);
    assert!(
        with_it.body.contains("\"x-portvakt-user\",\"bob\""),
        "{}",
        with_it.body
    );
    assert!(
        !with_it.body.contains(&value),
        "alice's cookie never reached the app"
    );

    let as_alice = as_user(&mut browser, "/whoami", "alice", "wonderland");
    assert_eq!(
        (as_alice.status, as_alice.location()),
        (303, Some("/.portvakt/enrol"))
    );
    let no_password = as_user(&mut browser, "/whoami", "alice", "anything");
    assert_eq!(no_password.status, 401, "the app's cookie is no password");
    let made_up = as_user(&mut browser, "/whoami", "zed", "anything");
    assert_eq!(made_up.status, 401, "nor for a name of one's choosing");
    // The case of a name is no other user.
    assert_eq!(as_user(&mut browser, "/whoami", "BOB", "builder").status, 200);
}

/// Without credentials and without a gateway session, only a prompt passes; a
/// client that keeps no cookies never gets past the second factor.
#[test]
fn without_credentials_or_a_session_nothing_but_a_prompt_passes() {
    let app = basic_app();
    let gateway = console(&app, "");
    let browser = signed_in(&gateway, "alice", "wonderland");
    let mut cookie_only = browser.fork();
    cookie_only.cookies.remove("portvakt");
    cookie_only
        .cookies
        .insert("sessionid".into(), "any-app-session".into());
    let answer = cookie_only.get("/whoami");
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(!answer.body.contains("alice"));
    let mut no_cookies = Browser::new(&gateway, CONSOLE);
    for _ in 0..3 {
        let answer = as_user(&mut no_cookies, "/whoami", "alice", "wonderland");
        no_cookies.cookies.clear();
        assert_eq!(answer.status, 303);
    }
    assert_eq!(cookie_only.get("/healthz").status, 200, "bypass routes as ever");
}

#[test]
fn odd_credentials_are_refused() {
    let app = basic_app();
    let gateway = console(&app, "");
    let mut browser = Browser::new(&gateway, CONSOLE);
    let bob = credentials("bob", "builder");
    let twice = browser.get_with("/", &[("authorization", &bob), ("authorization", &bob)]);
    assert_eq!(twice.status, 400, "two headers could be read two ways");
    for odd in ["Basic !!!", "Basic Ym9i", "Basic OmJ1aWxkZXI="] {
        assert_eq!(
            browser.get_with("/", &[("authorization", odd)]).status,
            400,
            "{odd}"
        );
    }
}

/// An app whose `/` does not ask for credentials would call any password right
/// there: no sign-in is made on its word.
#[test]
fn an_app_whose_root_is_open_cannot_check_credentials() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = console(&app, "");
    let mut browser = Browser::new(&gateway, CONSOLE);
    let answer = as_user(&mut browser, "/whoami", "alice", "any password");
    assert_eq!(answer.location(), Some("/.portvakt/unavailable"));
    assert!(answer.set_cookie_names().is_empty(), "no challenge");
    assert!(gateway.log().contains("does not ask for Basic credentials"));
}

/// A small Basic app of the test's own: `/` is public, pages under `guarded` ask
/// for alice's credentials, and wrong ones get `wrong` (`401 …` or another status).
fn tiny_app(guarded: &'static str, wrong: &'static str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let right = credentials("alice", "wonderland").to_ascii_lowercase();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut target, mut authorization) = (String::new(), None);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if target.is_empty() {
                    target = line.split(' ').nth(1).unwrap_or_default().to_owned();
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("authorization: ") {
                    authorization = Some(value.trim().to_owned());
                }
                line.clear();
            }
            let status = match authorization {
                _ if !target.starts_with(guarded) => "200 OK",
                None => "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"tiny\"",
                Some(a) if a == right => "200 OK",
                Some(_) => wrong,
            };
            let _ = write!(
                &stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    port
}

fn tiny_console(port: u16, login: &str) -> Gateway {
    Gateway::start(&format!(
        "apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: http://127.0.0.1:{port}\n    mfa: required\n    login: {login}\n"
    ))
}

/// An app that answers wrong passwords with something else than 401 (a 403 here)
/// cannot say which passwords are right: no sign-in is made on its word, and no
/// one enrols a device under a name with a made-up password.
#[test]
fn an_app_that_does_not_401_wrong_passwords_cannot_check_credentials() {
    let gateway = tiny_console(tiny_app("/", "403 Forbidden"), "basic");
    let mut browser = Browser::new(&gateway, CONSOLE);
    for password in ["made-up", "wonderland"] {
        let answer = as_user(&mut browser, "/", "alice", password);
        assert_eq!(answer.location(), Some("/.portvakt/unavailable"), "{password}");
        assert!(answer.set_cookie_names().is_empty(), "no challenge");
    }
    assert!(gateway
        .log()
        .contains("does not answer a wrong password with 401"));
}

/// An app whose `/` is public is checked where it does ask: `login.basic.check`.
#[test]
fn credentials_are_checked_where_the_configuration_says() {
    let port = tiny_app(
        "/admin",
        "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"tiny\"",
    );
    let at_root = tiny_console(port, "basic");
    let mut browser = Browser::new(&at_root, CONSOLE);
    assert_eq!(
        as_user(&mut browser, "/admin/x", "alice", "nope").location(),
        Some("/.portvakt/unavailable")
    );
    let at_admin = tiny_console(port, "{ basic: { check: /admin } }");
    let mut browser = Browser::new(&at_admin, CONSOLE);
    assert_eq!(as_user(&mut browser, "/admin/x", "alice", "nope").status, 401);
    assert_eq!(
        as_user(&mut browser, "/admin/x", "alice", "wonderland").location(),
        Some("/.portvakt/enrol")
    );
}

/// The app's logout, named as `logout_path`, ends the gateway session too.
#[test]
fn the_apps_logout_ends_the_gateway_session() {
    let app = basic_app();
    let gateway = Gateway::start(&format!(
        "apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: {}\n    mfa: required\n    login: {{ basic: {{ logout_path: /logout }} }}\n",
        app.url()
    ));
    let mut browser = signed_in(&gateway, "alice", "wonderland");
    assert_eq!(
        as_user(&mut browser, "/whoami", "alice", "wonderland").status,
        200
    );
    // Another site making the browser load the logout (with the credentials it
    // keeps) does not end the gateway session.
    let alice = credentials("alice", "wonderland");
    browser.get_with(
        "/logout",
        &[("authorization", &alice), ("sec-fetch-site", "cross-site")],
    );
    assert_eq!(
        as_user(&mut browser, "/whoami", "alice", "wonderland").status,
        200
    );
    let out = as_user(&mut browser, "/logout", "alice", "wonderland");
    assert!(
        out.set_cookie_names().contains(&"portvakt".to_owned()),
        "{:?}",
        out.headers
    );
    assert!(!browser.cookies.contains_key("portvakt"));
    let again = as_user(&mut browser, "/whoami", "alice", "wonderland");
    assert_eq!(again.location(), Some("/.portvakt/verify"), "the factor again");
}

/// A burst of wrong passwords at once is checked no more often than the lockout
/// allows: the attempts are counted before the app is asked.
#[test]
fn parallel_wrong_passwords_are_checked_no_more_than_the_limit() {
    let app = basic_app();
    let gateway = Gateway::start(&format!(
        "lockout: {{ max_failures: 3, window: 15m, delay: 10m }}\n\
         apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: {}\n    mfa: required\n    login: {{ basic: {{ check: /whoami }} }}\n",
        app.url()
    ));
    let before = requests_seen(&app);
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let mut browser = Browser::new(&gateway, CONSOLE);
            std::thread::spawn(move || as_user(&mut browser, "/admin", "alice", &format!("guess{i}")).status)
        })
        .collect();
    let statuses: Vec<u16> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 3, "{checked} guesses were checked: {statuses:?}");
    // Each checked guess costs two requests of the gateway's at /whoami (without
    // and with the credentials); the browsers' own requests never get there.
    assert!(
        requests_seen(&app) - before <= 6,
        "{}",
        requests_seen(&app) - before
    );
    let locked = as_user(
        &mut Browser::new(&gateway, CONSOLE),
        "/admin",
        "alice",
        "wonderland",
    );
    assert_eq!(locked.location(), Some("/.portvakt/locked"));
}

/// HTTP Basic is a login like the app's form: a sign-in from a new network,
/// where no second factor is asked, waits for the code e-mailed to the user.
#[test]
fn a_basic_sign_in_from_a_new_network_is_confirmed_by_email() {
    let app = basic_app();
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\ntrusted_proxies: [127.0.0.1/32]\n\
             email: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
             second_factor: {{ unusual_sign_in: {{ signals: [network] }} }}\n\
             apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: {}\n    mfa: off\n    login: basic\n",
            app.url()
        ),
        &[("users.yaml", "users:\n  alice: { email: alice@example.com }\n")],
    );
    let from = |browser: &mut Browser, address: &str| {
        browser.get_with(
            "/whoami",
            &[
                ("authorization", &credentials("alice", "wonderland")),
                ("x-forwarded-for", address),
            ],
        )
    };
    let mut home = Browser::new(&gateway, CONSOLE);
    let first = from(&mut home, "192.0.2.10");
    assert_eq!(
        first.location(),
        Some("/whoami"),
        "the first sign-in sets what is usual"
    );
    let mut elsewhere = Browser::new(&gateway, CONSOLE);
    let held = from(&mut elsewhere, "203.0.113.5");
    assert_eq!(
        held.location(),
        Some("/.portvakt/confirm-sign-in"),
        "{}",
        held.body
    );
    assert!(
        !elsewhere.cookies.contains_key("portvakt"),
        "no session before the code"
    );
}
