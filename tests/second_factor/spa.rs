//! A single-page app whose login is a script's `fetch`: a JSON POST answered with a
//! token in a JSON body and a cookie (the example app's `/api/login`).

use super::harness::{Browser, Gateway, LegacyApp};
use super::{enrol, press_continue, HOST};
use portvakt_legacy_app::Quirks;

fn spa_gateway(app: &LegacyApp) -> Gateway {
    Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /api/login\n      username_field: username\n      page: /login\n\
         \x20     success: {{ status: [200] }}\n      session_cookie: sessionid\n",
        app.url()
    ))
}

/// What the app's script sends: a `fetch` from its page, not a navigation.
fn login_call(browser: &mut Browser, gateway: &Gateway, password: &str) -> super::harness::Page {
    login_call_as(browser, gateway, "alice", password)
}

fn login_call_as(
    browser: &mut Browser,
    gateway: &Gateway,
    user: &str,
    password: &str,
) -> super::harness::Page {
    let body = format!(r#"{{"username":"{user}","password":"{password}"}}"#);
    let page = gateway.url(HOST, "/reports?q=1");
    browser.post_body(
        "/api/login",
        "application/json",
        body.into_bytes(),
        &[("sec-fetch-mode", "cors"), ("referer", &page)],
    )
}

#[test]
fn a_scripts_login_gets_json_naming_the_challenge_then_signs_in_after_it() {
    let app = LegacyApp::start_with(
        &["alice:wonderland:admin"],
        Quirks {
            api_login: true,
            ..Quirks::default()
        },
    );
    let gateway = spa_gateway(&app);
    let mut browser = Browser::new(&gateway, HOST);

    let wrong = login_call(&mut browser, &gateway, "nope");
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.body, r#"{"ok":false}"#,
        "a wrong password: the app's own answer"
    );

    let call = login_call(&mut browser, &gateway, "wonderland");
    assert_eq!(call.status, 401, "{}", call.body);
    assert_eq!(call.headers["portvakt-challenge"], "/.portvakt/enrol");
    assert_eq!(call.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&call.body).expect("JSON");
    assert_eq!(json["error"], "second_factor_required");
    assert_eq!(json["challenge"], "/.portvakt/enrol");
    assert!(!call.body.contains("token"), "no token before the factor");
    assert_eq!(call.set_cookie_names(), ["portvakt-challenge"], "no app cookie");

    // Without a script of the gateway's: the next navigation goes to the
    // challenge, which leads back to the page the call came from.
    let page = browser.get("/");
    assert_eq!(page.location(), Some("/.portvakt/verify"));
    assert_eq!(
        browser.get("/.portvakt/verify").location(),
        Some("/.portvakt/enrol")
    );
    enrol(&mut browser);
    let back = press_continue(&mut browser);
    assert_eq!(back.location(), Some("/reports?q=1"), "{}", back.body);

    // Signing in again passes straight through: this browser passed the factor.
    let again = login_call(&mut browser, &gateway, "wonderland");
    assert_eq!(again.status, 200, "{}", again.body);
    let json: serde_json::Value = serde_json::from_str(&again.body).expect("JSON");
    assert!(json["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(again.set_cookie_names().contains(&"sessionid".to_owned()));

    // Another browser with the password only is challenged again.
    let mut other = Browser::new(&gateway, HOST);
    assert_eq!(login_call(&mut other, &gateway, "wonderland").status, 401);
}

/// "Signing in again passes straight through" is for the user whose factor this
/// browser passed: bob's browser calling the login with alice's password (or with
/// both names at once) is challenged for alice, and gets nothing of hers.
#[test]
fn a_browser_that_passed_one_users_factor_gets_nothing_of_anothers() {
    let app = LegacyApp::start_with(
        &["alice:wonderland:admin", "bob:builder"],
        Quirks {
            api_login: true,
            ..Quirks::default()
        },
    );
    let gateway = spa_gateway(&app);
    let mut bob = Browser::new(&gateway, HOST);
    login_call_as(&mut bob, &gateway, "bob", "builder");
    assert_eq!(bob.get("/").location(), Some("/.portvakt/verify"));
    enrol(&mut bob);
    press_continue(&mut bob);
    assert_eq!(login_call_as(&mut bob, &gateway, "bob", "builder").status, 200);

    let as_alice = login_call_as(&mut bob, &gateway, "alice", "wonderland");
    assert_eq!(as_alice.status, 401, "{}", as_alice.body);
    assert_eq!(as_alice.headers["portvakt-challenge"], "/.portvakt/enrol");
    assert!(!as_alice.body.contains("token"));
    assert!(!as_alice.set_cookie_names().contains(&"sessionid".to_owned()));
    let both = bob.post_body(
        "/api/login",
        "application/json",
        br#"{"username":"bob","username":"alice","password":"wonderland"}"#.to_vec(),
        &[("sec-fetch-mode", "cors")],
    );
    assert_ne!(both.status, 200, "a name given twice is no sign-in");
    assert!(!both.body.contains("token"));
}
