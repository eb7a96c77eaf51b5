//! `login: basic`: an app that checks HTTP Basic credentials itself (the example
//! app's `basic` quirk), with the second factor on top of its own check.

use data_encoding::BASE64;

use super::harness::{Browser, Gateway, LegacyApp, Page};
use super::{code, enrol, press_continue};
use portvakt_legacy_app::Quirks;

const CONSOLE: &str = "console.test";

fn console(app: &LegacyApp, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{extra}apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: {}\n    mfa: required\n    login: basic\n\
         \x20   routes:\n      - {{ path: /healthz, match: exact, policy: bypass }}\n",
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

#[test]
fn the_apps_prompt_passes_and_a_right_password_leads_to_the_second_factor_and_back() {
    let app = basic_app();
    let gateway = console(&app, "");
    let mut browser = Browser::new(&gateway, CONSOLE);

    let prompt = browser.get("/whoami");
    assert_eq!(prompt.status, 401);
    assert_eq!(
        prompt.headers["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"Legacy console\"",
        "the app's own prompt, untouched"
    );
    let wrong = as_user(&mut browser, "/whoami", "alice", "looking-glass");
    assert_eq!(wrong.status, 401, "a wrong password gets the app's 401");

    let right = as_user(&mut browser, "/whoami?page=2", "alice", "wonderland");
    assert_eq!((right.status, right.location()), (303, Some("/.portvakt/enrol")));
    assert_eq!(
        right.set_cookie_names(),
        ["portvakt-challenge"],
        "nothing of the app's"
    );
    assert!(!right.body.contains("alice"));
    // A background request with the credentials (a favicon) gets a bare 401, and no
    // new challenge over the one the user is passing.
    let favicon = gateway
        .client(&[CONSOLE])
        .get(gateway.url(CONSOLE, "/favicon.ico"))
        .header("authorization", credentials("alice", "wonderland"))
        .header("sec-fetch-mode", "no-cors")
        .header(
            "cookie",
            format!("portvakt-challenge={}", browser.cookies["portvakt-challenge"]),
        )
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
        "back to exactly the URL it asked for"
    );
    assert!(back.set_cookie_names().contains(&"portvakt".to_owned()));
    let page = as_user(&mut browser, "/whoami?page=2", "alice", "wonderland");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("\"x-portvakt-user\",\"alice\""),
        "{}",
        page.body
    );
    assert!(
        page.set_cookie_names().contains(&"sessionid".to_owned()),
        "the app's own session cookie only now"
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

/// The session is bound to the user the credentials name: another name is a new
/// sign-in, even where the app would take its own cookie with any credentials.
#[test]
fn another_user_name_is_a_new_sign_in_never_the_old_session() {
    let app = basic_app();
    let gateway = console(&app, "");
    let mut browser = Browser::new(&gateway, CONSOLE);
    as_user(&mut browser, "/whoami", "alice", "wonderland");
    enrol(&mut browser);
    press_continue(&mut browser);
    assert_eq!(
        as_user(&mut browser, "/whoami", "alice", "wonderland").status,
        200
    );
    assert!(
        browser.cookies.contains_key("sessionid"),
        "the app's cookie for alice"
    );

    let as_bob = as_user(&mut browser, "/whoami", "bob", "builder");
    assert_eq!(
        (as_bob.status, as_bob.location()),
        (303, Some("/.portvakt/enrol"))
    );
    assert!(!as_bob.body.contains("alice"));
    // A wrong password for bob, with alice's sessions: the app would let the cookie
    // in, the gateway does not let the answer out.
    let guess = as_user(&mut browser, "/whoami", "bob", "wrong");
    assert_ne!(guess.status, 200);
    assert!(!guess.body.contains("x-portvakt-user"));
    // The case of a name is no other user.
    assert_eq!(
        as_user(&mut browser, "/whoami", "ALICE", "wonderland").status,
        200
    );
}

/// Without credentials and without a gateway session, only the app's prompt
/// passes: an app cookie alone (which the app would accept) gets the gateway's.
#[test]
fn without_credentials_or_a_session_nothing_but_a_prompt_passes() {
    let app = basic_app();
    let gateway = console(&app, "");
    let mut browser = Browser::new(&gateway, CONSOLE);
    as_user(&mut browser, "/whoami", "alice", "wonderland");
    enrol(&mut browser);
    press_continue(&mut browser);
    assert_eq!(
        as_user(&mut browser, "/whoami", "alice", "wonderland").status,
        200
    );

    let mut cookie_only = browser.fork();
    cookie_only.cookies.remove("portvakt");
    let answer = cookie_only.get("/whoami");
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(!answer.body.contains("alice"));
    assert!(answer.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm=\"console\""));
    // A client that keeps no cookies never gets past the second factor.
    let mut no_cookies = Browser::new(&gateway, CONSOLE);
    for _ in 0..3 {
        let answer = as_user(&mut no_cookies, "/whoami", "alice", "wonderland");
        no_cookies.cookies.clear();
        assert_eq!(answer.status, 303);
    }
    assert_eq!(browser.get("/healthz").status, 200, "bypass routes as ever");
}

#[test]
fn wrong_passwords_lock_the_account_and_odd_credentials_are_refused() {
    let app = basic_app();
    let gateway = console(&app, "lockout: { max_failures: 3, window: 15m, delay: 10m }\n");
    let mut browser = Browser::new(&gateway, CONSOLE);
    for _ in 0..3 {
        assert_eq!(as_user(&mut browser, "/", "alice", "nope").status, 401);
    }
    let locked = as_user(&mut browser, "/", "alice", "wonderland");
    assert_eq!(
        locked.location(),
        Some("/.portvakt/locked"),
        "right or wrong alike"
    );
    assert_eq!(
        as_user(&mut browser, "/", "Alice", "wonderland").location(),
        Some("/.portvakt/locked")
    );

    let alice = credentials("bob", "builder");
    let twice = browser.get_with("/", &[("authorization", &alice), ("authorization", &alice)]);
    assert_eq!(twice.status, 400, "two headers could be read two ways");
    for odd in ["Basic !!!", "Basic Ym9i", "Basic OmJ1aWxkZXI="] {
        assert_eq!(
            browser.get_with("/", &[("authorization", odd)]).status,
            400,
            "{odd}"
        );
    }
}
