//! A single-page app whose login is a script's `fetch`: a JSON POST answered with a
//! token in a JSON body and a cookie (the example app's `/api/login`).

use super::harness::{Browser, Gateway, LegacyApp};
use super::{enrol, press_continue, HOST};
use portvakt_legacy_app::Quirks;

/// The example app with its JSON login and single-page app.
fn spa_app(accounts: &[&str]) -> LegacyApp {
    LegacyApp::start_with(
        accounts,
        Quirks {
            api_login: true,
            ..Quirks::default()
        },
    )
}

fn spa_gateway(app: &LegacyApp) -> Gateway {
    spa_gateway_with(app, "")
}

/// `more`: further keys of the login block, each on a line of its own.
fn spa_gateway_with(app: &LegacyApp, more: &str) -> Gateway {
    Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /api/login\n      username_field: username\n      page: /login\n\
         \x20     success: {{ status: [200] }}\n      session_cookie: sessionid\n{more}",
        app.url()
    ))
}

/// The overlay's repeat of the login call, once its factor is passed.
fn repeat_call(browser: &mut Browser, user: &str, password: &str) -> super::harness::Page {
    let body = format!(r#"{{"username":"{user}","password":"{password}"}}"#);
    browser.post_body(
        "/api/login",
        "application/json",
        body.into_bytes(),
        &[("sec-fetch-mode", "cors"), ("portvakt-release", "1")],
    )
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
    let app = spa_app(&["alice:wonderland:admin"]);
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
    assert_eq!(call.headers["content-type"].to_str().unwrap(), "application/json");
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
    assert!(!back.body.contains("token"), "the answer never goes to a page");
    assert!(!back.set_cookie_names().contains(&"sessionid".to_owned()));

    // Another browser with the password asking for the release gets nothing.
    let mut thief = Browser::new(&gateway, HOST);
    let stolen = repeat_call(&mut thief, "alice", "wonderland");
    assert_eq!(stolen.status, 401, "{}", stolen.body);
    assert!(!stolen.body.contains("token"));

    // The repeat of the call (the overlay's) receives the app's withheld answer,
    // once: the app was not asked again (its session is the one it made then).
    let released = repeat_call(&mut browser, "alice", "wonderland");
    assert_eq!(released.status, 200, "{}", released.body);
    let json: serde_json::Value = serde_json::from_str(&released.body).expect("JSON");
    let token = json["token"].as_str().expect("the app's token").to_owned();
    let cookie = released.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with(&format!("sessionid={token}")), "{cookie}");
    let fresh = repeat_call(&mut browser, "alice", "wonderland");
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert!(
        !fresh.body.contains(&token),
        "released once; then the app answers anew"
    );

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
    let app = spa_app(&["alice:wonderland:admin", "bob:builder"]);
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

/// `login.overlay`: the app's pages get the gateway's script (checked by its
/// hash), asked for uncompressed; the challenge pages may be framed by the app's
/// own pages only when the overlay asks for them, and never on another app.
#[test]
fn the_overlay_script_is_added_to_pages_and_only_its_frame_may_show_challenges() {
    use sha2::Digest;
    let app = spa_app(&["alice:wonderland"]);
    let gateway = spa_gateway_with(&app, "      overlay: true\n");
    let mut browser = Browser::new(&gateway, HOST);
    let navigate = [("sec-fetch-mode", "navigate"), ("accept-encoding", "gzip, br")];

    let page = browser.get_with("/login", &navigate);
    assert_eq!(page.status, 200);
    let tag_at = page
        .body
        .rfind("<script src=\"/.portvakt/assets/overlay.js\"")
        .expect("the tag");
    assert!(
        page.body[..tag_at].trim_end().ends_with("</html>"),
        "after the page, unchanged"
    );
    let script = browser.get("/.portvakt/assets/overlay.js");
    assert_eq!(
        script.headers["content-type"].to_str().unwrap(),
        "text/javascript; charset=utf-8"
    );
    let hash = data_encoding::BASE64.encode(&sha2::Sha384::digest(script.body.as_bytes()));
    assert!(page.body[tag_at..].contains(&format!("integrity=\"sha384-{hash}\"")));

    // A background request, or a page's JSON, is left alone; the app is asked
    // for pages uncompressed.
    let fetched = browser.get_with("/login", &[("sec-fetch-mode", "cors")]);
    assert!(!fetched.body.contains("overlay.js"));
    let echo = browser.get_with("/whoami", &navigate);
    assert!(!echo.body.contains("accept-encoding"), "{}", echo.body);
    assert!(!echo.body.contains("overlay.js"));
    // HTTP/1.0 has no chunked bodies: its pages keep their length, untouched.
    let (status, old) = gateway
        .raw(format!("GET /login HTTP/1.0\r\nHost: {HOST}\r\nSec-Fetch-Mode: navigate\r\n\r\n").as_bytes());
    assert_eq!(status, 200);
    assert!(
        !old.contains("overlay.js") && !old.to_ascii_lowercase().contains("chunked"),
        "{old}"
    );
    // The overlay's header is the gateway's: the app never sees it.
    let echo = browser.get_with("/whoami", &[("portvakt-release", "1")]);
    assert!(!echo.body.contains("portvakt-release"), "{}", echo.body);

    login_call(&mut browser, &gateway, "wonderland");
    let framed = browser.get_with("/.portvakt/enrol", &[("sec-fetch-dest", "iframe")]);
    assert_eq!(framed.status, 200);
    assert!(csp(&framed).contains("frame-ancestors 'self'"));
    assert_eq!(framed.headers["x-frame-options"].to_str().unwrap(), "SAMEORIGIN");
    let top = browser.get_with("/.portvakt/enrol", &[("sec-fetch-dest", "document")]);
    assert!(csp(&top).contains("frame-ancestors 'none'"));
    assert_eq!(top.headers["x-frame-options"].to_str().unwrap(), "DENY");
    let account = browser.get_with("/.portvakt/account", &[("sec-fetch-dest", "iframe")]);
    assert!(csp(&account).contains("frame-ancestors 'none'"));

    // Passed in the frame: the frame ends on the gateway's "signed in" page (the
    // script's sign to repeat the call), not on the app's page nor its answer.
    let secret = super::secret_on(&framed);
    let csrf = framed.input("csrf").unwrap();
    let code = super::code(&secret, 0);
    browser.post_with(
        "/.portvakt/enrol",
        &[("csrf", &csrf), ("code", &code)],
        &[("sec-fetch-dest", "iframe")],
    );
    let csrf = browser.get("/.portvakt/enrol").input("csrf").unwrap();
    let done = browser.post_with(
        "/.portvakt/continue",
        &[("csrf", &csrf)],
        &[("sec-fetch-dest", "iframe")],
    );
    assert_eq!(done.location(), Some("/.portvakt/signed-in"), "{}", done.body);
    assert!(!done.body.contains("token"));
    let signed_in = browser.get_with("/.portvakt/signed-in", &[("sec-fetch-dest", "iframe")]);
    assert_eq!(signed_in.status, 200);
    assert!(csp(&signed_in).contains("frame-ancestors 'self'"));
    let released = repeat_call(&mut browser, "alice", "wonderland");
    assert_eq!(released.status, 200, "{}", released.body);
    assert!(released.body.contains("token"));
}

/// Without `login.overlay`, no page gets the script and no challenge page may be
/// framed, whatever the request says.
#[test]
fn without_the_overlay_pages_are_untouched_and_challenges_never_framed() {
    let app = spa_app(&["alice:wonderland"]);
    let gateway = spa_gateway(&app);
    let mut browser = Browser::new(&gateway, HOST);
    let page = browser.get_with("/login", &[("sec-fetch-mode", "navigate")]);
    assert!(!page.body.contains("overlay.js"));
    login_call(&mut browser, &gateway, "wonderland");
    let framed = browser.get_with("/.portvakt/enrol", &[("sec-fetch-dest", "iframe")]);
    assert!(csp(&framed).contains("frame-ancestors 'none'"));
    assert_eq!(framed.headers["x-frame-options"].to_str().unwrap(), "DENY");
}

fn csp(page: &super::harness::Page) -> &str {
    page.headers["content-security-policy"].to_str().unwrap()
}

/// The whole single-page journey in a real browser: the password typed into the
/// app's own dialog, the code into the gateway's overlay, and the app signed in
/// by its own script, which never held the token before the factor was passed.
#[test]
fn a_single_page_app_signs_in_through_the_overlay_in_a_real_browser() {
    use super::chromium::{runtime, Chromium, Screenshots};
    use fantoccini::Locator;

    let chromium = Chromium::start();
    let app = spa_app(&["alice:wonderland", "bob:builder", "carol:hearts"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  reports:\n    hosts: [localhost]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /api/login\n      username_field: username\n      page: /app\n\
         \x20     success: {{ status: [200] }}\n      session_cookie: sessionid\n      overlay: true\n",
        app.url()
    ));
    let base = format!("http://localhost:{}", gateway.port);
    let shots = Screenshots::new();
    const FRAME: &str = "document.querySelector('[data-portvakt-overlay] iframe')";
    const STATUS: &str = "return document.getElementById('status').textContent";

    let result = runtime().block_on(async {
        let browser = chromium.connect().await;
        // Waits (up to 15 s) for a script to return something other than null.
        let until = |script: String| {
            let browser = browser.clone();
            async move {
                for _ in 0..150 {
                    let value = browser.execute(&script, Vec::new()).await?;
                    if !value.is_null() {
                        return Ok::<_, fantoccini::error::CmdError>(value);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                panic!("waited in vain for {script}: {}", browser.source().await?);
            }
        };
        // The app keeping a token from the login's body, then (bob) keeping
        // nothing but the cookie the login sets, then (carol) signing in with
        // XMLHttpRequest rather than fetch.
        let modes = [
            ("/app", "alice", "wonderland", true),
            ("/app?keep=cookie", "bob", "builder", false),
            ("/app?via=xhr", "carol", "hearts", true),
        ];
        let journey = async {
          for (page, user, password, keeps_token) in modes {
            browser.goto(&format!("{base}{page}")).await?;
            browser.delete_all_cookies().await?;
            browser.execute("localStorage.clear()", Vec::new()).await?;
            browser.refresh().await?;
            browser.find(Locator::Css("input[name=username]")).await?.send_keys(user).await?;
            browser.find(Locator::Css("input[name=password]")).await?.send_keys(password).await?;
            browser.find(Locator::Css("#sign-in button")).await?.click().await?;

            // The gateway's enrolment page, in a frame over the app.
            let key = until(format!(
                "return {FRAME}?.contentDocument?.querySelector('code.secret')?.textContent ?? null"
            ))
            .await?;
            let token = browser.execute("return localStorage.getItem('token')", Vec::new()).await?;
            assert!(token.is_null(), "no token before the factor: {token}");
            let status = browser.execute(STATUS, Vec::new()).await?;
            assert_eq!(status, "Not signed in.");
            if keeps_token {
                shots.save("spa-overlay.png", &browser.screenshot().await?);
            }

            let key = key.as_str().unwrap().replace(' ', "");
            let secret = portvakt::factors::totp::TotpSecret::from_bytes(zeroize::Zeroizing::new(
                data_encoding::BASE32_NOPAD.decode(key.as_bytes()).unwrap(),
            ));
            let code = super::code(&secret, 0);
            browser
                .execute(
                    &format!(
                        "const d = {FRAME}.contentDocument; d.getElementById('code').value = arguments[0];\
                         d.getElementById('code').form.querySelector('button[type=submit]').click();"
                    ),
                    vec![serde_json::json!(code)],
                )
                .await?;
            // Its recovery codes, then Continue: the overlay closes by itself.
            until(format!(
                "return {FRAME}?.contentDocument?.querySelector(\"form[action='/.portvakt/continue'] button\") ? true : null"
            ))
            .await?;
            browser
                .execute(
                    &format!(
                        "{FRAME}.contentDocument.querySelector(\"form[action='/.portvakt/continue'] button\").click()"
                    ),
                    Vec::new(),
                )
                .await?;
            until(
                "const s = document.getElementById('status').textContent; \
                 return s.startsWith('Signed in') ? s : null"
                    .to_owned(),
            )
            .await?;
            assert_eq!(browser.execute(STATUS, Vec::new()).await?, format!("Signed in as {user}."));
            let overlay = browser.find_all(Locator::Css("[data-portvakt-overlay]")).await?;
            assert!(overlay.is_empty(), "the overlay is gone");
            let token = browser.execute("return localStorage.getItem('token')", Vec::new()).await?;
            if keeps_token {
                assert!(token.as_str().is_some_and(|t| !t.is_empty()), "the app kept its token");
                shots.save("spa-signed-in.png", &browser.screenshot().await?);
            } else {
                assert!(token.is_null(), "signed in by the released cookie alone: {token}");
            }
          }
          Ok::<(), fantoccini::error::CmdError>(())
        };
        let outcome = journey.await;
        let _ = browser.close().await;
        outcome
    });
    drop(chromium);
    result.expect("the single-page journey");
}

/// Signs `user` in through the script login and the challenge, then takes the
/// released answer as the overlay would: the app's token, and the secret enrolled.
fn sign_in_for_a_token(
    browser: &mut Browser,
    gateway: &Gateway,
    user: &str,
    password: &str,
) -> (String, portvakt::factors::totp::TotpSecret) {
    assert_eq!(login_call_as(browser, gateway, user, password).status, 401);
    assert_eq!(browser.get("/").location(), Some("/.portvakt/verify"));
    let (secret, _, _) = enrol(browser);
    press_continue(browser);
    let released = repeat_call(browser, user, password);
    assert_eq!(released.status, 200, "{}", released.body);
    let json: serde_json::Value = serde_json::from_str(&released.body).unwrap();
    (json["token"].as_str().unwrap().to_owned(), secret)
}

fn me_with(browser: &mut Browser, token: &str) -> super::harness::Page {
    browser.get_with("/api/me", &[("authorization", &format!("Bearer {token}"))])
}

/// `login.token`: the app's bearer token is let through only with the gateway
/// session it was released with (or the one a step-up renewed it into); bob, with
/// his own good session, gets nothing with alice's token. A token that could be
/// read two ways is refused.
#[test]
fn a_bearer_token_works_only_with_the_session_it_was_released_with() {
    let app = spa_app(&["alice:wonderland", "bob:builder"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /api/login\n      username_field: username\n      page: /login\n\
         \x20     success: {{ status: [200] }}\n      session_cookie: sessionid\n      token: /token\n\
         \x20   routes:\n      - {{ path: /api/me, policy: mfa, max_age: 1s }}\n\
         \x20     - {{ path: /healthz, policy: bypass }}\n",
        app.url()
    ));
    let mut alice = Browser::new(&gateway, HOST);
    let (token, secret) = sign_in_for_a_token(&mut alice, &gateway, "alice", "wonderland");
    let mut bob = Browser::new(&gateway, HOST);
    let (bobs, _) = sign_in_for_a_token(&mut bob, &gateway, "bob", "builder");

    assert_eq!(me_with(&mut alice, &token).body, r#"{"user":"alice"}"#);
    assert_eq!(me_with(&mut bob, &bobs).body, r#"{"user":"bob"}"#);
    let stolen = me_with(&mut bob, &token);
    assert_eq!(stolen.status, 401, "{}", stolen.body);
    assert!(!stolen.body.contains("alice"));
    // The app's session cookie is bound the same way (here it is the token too).
    let as_cookie = bob.get_with("/api/me", &[("cookie", &format!("sessionid={token}"))]);
    assert_eq!(as_cookie.status, 401, "{}", as_cookie.body);
    assert!(!as_cookie.body.contains("alice"));

    // A token from a login that passes straight through is bound the same way.
    let again = login_call(&mut alice, &gateway, "wonderland");
    assert_eq!(again.status, 200, "{}", again.body);
    let json: serde_json::Value = serde_json::from_str(&again.body).unwrap();
    let second = json["token"].as_str().unwrap().to_owned();
    assert_eq!(me_with(&mut alice, &second).body, r#"{"user":"alice"}"#);
    assert_eq!(me_with(&mut bob, &second).status, 401);

    // Read one way or refused.
    assert_eq!(me_with(&mut bob, &format!("{token} {bobs}")).status, 400);
    let both = bob.get_with(
        "/api/me",
        &[
            ("authorization", &format!("Bearer {bobs}")),
            ("authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(both.status, 400, "{}", both.body);

    // A step-up renews alice's session; her token goes with it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let step_up = alice.get_with("/api/me", &[("sec-fetch-mode", "navigate")]);
    assert_eq!(step_up.location(), Some("/.portvakt/verify"), "{}", step_up.body);
    let csrf = alice.get("/.portvakt/verify").input("csrf").unwrap();
    let passed = alice.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &super::code(&secret, 1))],
    );
    assert_eq!(passed.location(), Some("/api/me"), "{}", passed.body);
    assert_eq!(me_with(&mut alice, &token).body, r#"{"user":"alice"}"#);
    assert_eq!(me_with(&mut bob, &token).status, 401);

    // Signed out of the gateway, her token and cookie are good for nothing more,
    // even on a route that needs no session.
    alice.get("/.portvakt/logout");
    let after =
        Browser::new(&gateway, HOST).get_with("/healthz", &[("cookie", &format!("sessionid={token}"))]);
    assert_eq!(after.status, 401, "{}", after.body);
}

/// Only the login page itself passes without a session: `/login/` may be another
/// page of the app, which the route rules judge.
#[test]
fn only_the_login_page_itself_passes_without_a_session() {
    let app = LegacyApp::start_with(&["alice:wonderland"], Quirks::default());
    let gateway = spa_gateway(&app);
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(browser.get("/login").status, 200);
    for other in ["/login/", "/login//"] {
        let page = browser.get_with(other, &[("sec-fetch-mode", "navigate")]);
        assert_eq!((page.status, page.location()), (303, Some("/login")), "{other}");
    }
}

/// An app that answers every login 200 and says only in the body whether it
/// worked (the user name nested in `credentials`): the gateway reads the whole
/// answer before it answers the browser. A failure passes as the app wrote it,
/// and counts; a success is withheld like any other.
#[test]
fn a_login_judged_by_its_body_is_read_whole_before_anything_is_released() {
    let app = LegacyApp::start_with(
        &["alice:wonderland", "bob:builder"],
        Quirks {
            session_api: true,
            ..Quirks::default()
        },
    );
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /api/session\n      username_field: /credentials/username\n      page: /login\n\
         \x20     success: {{ status: [200], json: /session/token }}\n      session_cookie: sessionid\n\
         \x20     token: /session/token\n",
        app.url()
    ));
    let call = |browser: &mut Browser, user: &str, password: &str, release: bool| {
        let body = format!(r#"{{"credentials":{{"username":"{user}","password":"{password}"}}}}"#);
        let mut headers = vec![("sec-fetch-mode", "cors")];
        if release {
            headers.push(("portvakt-release", "1"));
        }
        browser.post_body("/api/session", "application/json", body.into_bytes(), &headers)
    };
    let mut browser = Browser::new(&gateway, HOST);

    let wrong = call(&mut browser, "alice", "nope", false);
    assert_eq!(wrong.status, 200, "{}", wrong.body);
    assert!(
        wrong.body.contains("Invalid credentials"),
        "the app's own answer: {}",
        wrong.body
    );
    assert!(wrong.set_cookie_names().is_empty());

    let right = call(&mut browser, "alice", "wonderland", false);
    assert_eq!(right.status, 401, "{}", right.body);
    assert_eq!(right.headers["portvakt-challenge"], "/.portvakt/enrol");
    assert!(
        !right.body.contains("token"),
        "nothing of the answer before the factor"
    );
    assert!(!right.set_cookie_names().contains(&"sessionid".to_owned()));

    assert_eq!(browser.get("/").location(), Some("/.portvakt/verify"));
    enrol(&mut browser);
    press_continue(&mut browser);
    let released = call(&mut browser, "alice", "wonderland", true);
    assert_eq!(released.status, 200, "{}", released.body);
    let json: serde_json::Value = serde_json::from_str(&released.body).unwrap();
    assert!(json["session"]["token"].as_str().is_some_and(|t| !t.is_empty()));

    // Named twice on the way to the user name: read one way, or not at all.
    let mut other = Browser::new(&gateway, HOST);
    let twice = other.post_body(
        "/api/session",
        "application/json",
        br#"{"credentials":{"username":"bob","username":"alice","password":"wonderland"}}"#.to_vec(),
        &[("sec-fetch-mode", "cors")],
    );
    assert!(!twice.body.contains("token"), "{}", twice.body);

    // Wrong passwords count: after enough, even the right one is refused.
    let mut guesser = Browser::new(&gateway, HOST);
    let mut last = call(&mut guesser, "bob", "nope", false);
    for _ in 0..10 {
        last = call(&mut guesser, "bob", "nope", false);
    }
    assert!(
        !last.body.contains("Invalid credentials"),
        "locked: {} {}",
        last.status,
        last.body
    );
    let locked = call(&mut guesser, "bob", "builder", false);
    assert_ne!(locked.status, 401, "no challenge while locked: {}", locked.body);
    assert!(!locked.body.contains("token"));

    // An answer whose body says neither (here: the pointer leads nowhere) may
    // hide a success: refused, and nothing of it passes.
    let unclear = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /api/session\n      username_field: /credentials/username\n\
         \x20     page: /login\n      success: {{ status: [200], json: /session/elsewhere }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&unclear, HOST);
    let refused = call(&mut browser, "alice", "wonderland", false);
    assert_eq!(
        refused.location(),
        Some("/.portvakt/sign-in-refused"),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("token") && refused.set_cookie_names().is_empty());
}
