//! A form posted to a `max_age` route whose second factor has gone stale: kept
//! across the step-up and sent to the app once it is passed, by that session
//! only, to that page only, once — and never for a post from another site.

use super::harness::{Browser, Gateway, LegacyApp, Page};
use super::{code, press_continue, signed_in_with_an_app, HOST};

fn gateway_with_a_fresh_route(app: &LegacyApp, second_factor: &str) -> Gateway {
    Gateway::start(&format!(
        "{second_factor}apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login: {{ path: /login, username_field: username }}\n\
         \x20   routes:\n      - {{ path: /whoami, match: exact, policy: mfa, max_age: 10m }}\n",
        app.url()
    ))
}

/// Ages every session's second factor by an hour in the real database, and
/// restarts the gateway so that nothing of the fresh one is cached.
fn let_the_factor_go_stale(gateway: &mut Gateway) {
    let database = gateway.config_path().with_file_name("state").join("portvakt.db");
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute(
            "UPDATE sessions SET second_factor_at = second_factor_at - 3600, created_at = created_at - 3600",
            [],
        )
        .unwrap();
    gateway.crash_and_restart();
}

/// The app's origin through the gateway, as a browser names it.
fn origin(gateway: &Gateway) -> String {
    gateway.url(HOST, "")
}

/// The form a user submits from the app's own page.
fn post_the_form(browser: &mut Browser, gateway: &Gateway, target: &str, note: &str) -> Page {
    browser.post_with(
        target,
        &[("note", note), ("csrf_token", "app-token")],
        &[("origin", &origin(gateway)), ("sec-fetch-site", "same-origin")],
    )
}

fn pass_the_step_up(browser: &mut Browser, code: &str) -> Page {
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    browser.post("/.portvakt/verify", &[("csrf", &csrf), ("code", code)])
}

/// What the app received, as its echo says.
fn echo(page: &Page) -> serde_json::Value {
    assert_eq!(page.status, 200, "{}", page.body);
    serde_json::from_str(&page.body).unwrap()
}

fn header<'e>(echo: &'e serde_json::Value, name: &str) -> Option<&'e str> {
    echo["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

#[test]
fn a_form_posted_when_the_factor_is_stale_is_sent_once_the_step_up_is_passed() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let mut gateway = gateway_with_a_fresh_route(&app, "");
    let (mut browser, (secret, _, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    let_the_factor_go_stale(&mut gateway);

    let posted = post_the_form(&mut browser, &gateway, "/whoami?tab=2", "Åsa's note & more");
    assert_eq!(
        (posted.status, posted.location()),
        (303, Some("/.portvakt/verify"))
    );
    // Kept in the store, not in memory: a crash before the step-up loses nothing.
    gateway.crash_and_restart();
    let asked = browser.get("/.portvakt/verify");
    assert!(
        asked
            .body
            .contains("What you sent is kept, and goes through once you have."),
        "{}",
        asked.body
    );

    let passed = pass_the_step_up(&mut browser, &code(&secret, 1));
    assert_eq!(
        (passed.status, passed.location()),
        (303, Some("/whoami?tab=2")),
        "back to the form's page, not to the start page"
    );
    assert!(passed.set_cookie_names().contains(&"portvakt-kept".to_owned()));

    let sent = echo(&browser.get("/whoami?tab=2"));
    assert_eq!(sent["method"], "POST", "{sent}");
    assert_eq!(sent["query"], "tab=2");
    assert_eq!(
        sent["body"], "note=%C3%85sa%27s+note+%26+more&csrf_token=app-token",
        "the body exactly as posted"
    );
    assert_eq!(
        header(&sent, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&sent, "origin"), Some(origin(&gateway).as_str()));
    assert_eq!(header(&sent, "x-portvakt-user"), Some("alice"));
    assert!(
        !header(&sent, "cookie").unwrap_or_default().contains("portvakt"),
        "the gateway's cookies stay with the gateway"
    );
    assert!(
        !browser.cookies.contains_key("portvakt-kept"),
        "the cookie goes with the form"
    );

    // Once: the page loaded again is a page load.
    let again = echo(&browser.get("/whoami?tab=2"));
    assert_eq!(
        (again["method"].as_str(), again["body"].as_str()),
        (Some("GET"), Some(""))
    );
    assert!(gateway.log().contains("a form kept across a step-up is sent"));
}

#[test]
fn a_kept_form_goes_with_its_own_session_to_its_own_page_and_only_once() {
    let app = LegacyApp::start(&["alice:wonderland:admin", "mallory:mallory"]);
    let mut gateway = gateway_with_a_fresh_route(&app, "");
    let (mut browser, (secret, _, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    let_the_factor_go_stale(&mut gateway);
    let (mut mallory, _) = signed_in_with_an_app(&gateway, "mallory", "mallory");

    // The stale session itself cannot send the form: it waits for the step-up.
    assert_eq!(
        post_the_form(&mut browser, &gateway, "/whoami", "transfer").location(),
        Some("/.portvakt/verify")
    );
    let mut stale = browser.fork();
    stale
        .cookies
        .insert("portvakt-kept".to_owned(), "guessed".to_owned());
    let unsent = stale.get("/whoami");
    assert_eq!(
        unsent.location(),
        Some("/.portvakt/verify"),
        "still stale: no form sent"
    );

    pass_the_step_up(&mut browser, &code(&secret, 1));
    let kept = browser.cookies["portvakt-kept"].clone();

    // Another user's session with the cookie copied: a page load of theirs.
    mallory.cookies.insert("portvakt-kept".to_owned(), kept.clone());
    let theirs = echo(&mallory.get("/whoami"));
    assert_eq!(theirs["method"], "GET");
    // Another site making the browser load the page does not choose when the
    // form goes: a page load, and the form still waits.
    let pulled = echo(&browser.get_with("/whoami", &[("sec-fetch-site", "cross-site")]));
    assert_eq!(pulled["method"], "GET");
    // Another page of alice's: a page load, and the form still waits.
    let elsewhere = echo(&browser.get("/whoami?other=1"));
    assert_eq!(elsewhere["method"], "GET");
    assert!(browser.cookies.contains_key("portvakt-kept"));

    // Many loads of the page at once, as a burst of tabs: one sends the form.
    let tabs: Vec<_> = (0..6)
        .map(|_| {
            let mut tab = browser.fork();
            std::thread::spawn(move || echo(&tab.get("/whoami"))["method"].as_str().unwrap().to_owned())
        })
        .collect();
    let methods: Vec<String> = tabs.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(methods.iter().filter(|m| *m == "POST").count(), 1, "{methods:?}");
    // An app-side log shows the one post; mallory's copied cookie did nothing.
    let theirs_after = echo(&mallory.get("/whoami"));
    assert_eq!(theirs_after["method"], "GET");
}

#[test]
fn a_post_from_another_site_or_too_long_to_keep_is_not_kept() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let mut gateway = gateway_with_a_fresh_route(&app, "second_factor: { keep_post_body: 1024 }\n");
    let (mut browser, (secret, codes, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    let_the_factor_go_stale(&mut gateway);

    // Another site made the browser post (a sibling host: SameSite lets the
    // session cookie go): the user's step-up must not carry it through.
    let forged = browser.post_with(
        "/whoami",
        &[("note", "forged")],
        &[
            ("origin", "http://evil.intranet.test"),
            ("sec-fetch-site", "same-site"),
        ],
    );
    assert_eq!(forged.location(), Some("/.portvakt/verify"));
    assert!(!browser
        .get("/.portvakt/verify")
        .body
        .contains("What you sent is kept"));
    let passed = pass_the_step_up(&mut browser, &code(&secret, 1));
    assert_eq!(passed.location(), Some("/"), "the start page, as before");
    assert!(!passed.set_cookie_names().contains(&"portvakt-kept".to_owned()));
    let_the_factor_go_stale(&mut gateway);

    // A post that says nothing of where it came from is not known to be the
    // app's own form; nor is one longer than keep_post_body.
    let silent = browser.post("/whoami", &[("note", "who knows")]);
    assert_eq!(silent.location(), Some("/.portvakt/verify"));
    let long = post_the_form(&mut browser, &gateway, "/whoami", &"x".repeat(2000));
    assert_eq!(long.location(), Some("/.portvakt/verify"));
    let token = browser.get("/.portvakt/recovery").input("csrf").unwrap();
    let used = browser.post("/.portvakt/recovery", &[("csrf", &token), ("code", &codes[0])]);
    assert_eq!(used.status, 200, "{}", used.body);
    let passed = press_continue(&mut browser);
    assert_eq!(passed.location(), Some("/"), "{}", passed.body);
    let page = echo(&browser.get("/whoami"));
    assert_eq!(page["method"], "GET");

    // A page the step-up would not return to (an encoded backslash) keeps no form
    // waiting behind a return to the start page.
    let_the_factor_go_stale(&mut gateway);
    let odd = post_the_form(&mut browser, &gateway, "/whoami?q=a%5Cb", "odd");
    assert_eq!(odd.location(), Some("/.portvakt/verify"));
    let token = browser.get("/.portvakt/recovery").input("csrf").unwrap();
    let used = browser.post("/.portvakt/recovery", &[("csrf", &token), ("code", &codes[1])]);
    assert_eq!(used.status, 200, "{}", used.body);
    let passed = press_continue(&mut browser);
    assert_eq!(passed.location(), Some("/"));
    assert!(!passed.set_cookie_names().contains(&"portvakt-kept".to_owned()));
}
