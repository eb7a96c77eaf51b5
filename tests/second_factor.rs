//! The second factor through the real gateway, in front of the example app's own
//! login form: enrolment, verification, recovery codes, lockout, step-up, logout,
//! identity for the app, and state that survives a crash.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "second_factor/app_passwords.rs"]
mod app_passwords;
#[path = "second_factor/basic.rs"]
mod basic;
#[path = "second_factor/chromium.rs"]
mod chromium;
mod harness;
#[path = "second_factor/interception.rs"]
mod interception;
#[path = "second_factor/security_keys.rs"]
mod security_keys;
#[path = "second_factor/several_gateways.rs"]
mod several_gateways;
#[path = "second_factor/sms.rs"]
mod sms;
#[path = "second_factor/spa.rs"]
mod spa;
#[path = "second_factor/step_up.rs"]
mod step_up;
#[path = "second_factor/unusual.rs"]
mod unusual;

use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::BASE32_NOPAD;
use harness::{Browser, Gateway, LegacyApp, Page, Reload};
use portvakt::factors::totp::{code_at, TotpSecret, TotpSettings};
use zeroize::Zeroizing;

const HOST: &str = "intranet.test";

fn gateway_for(app: &LegacyApp, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{extra}apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /login\n      username_field: username\n      logout_path: /logout\n\
         \x20   routes:\n      - {{ path: /healthz, match: exact, policy: bypass }}\n\
         \x20     - {{ path: /admin, policy: mfa, max_age: 1s }}\n",
        app.url()
    ))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The code an authenticator app would show, `steps` periods from now (the gateway
/// accepts one period either side, each step once): a test that needs several codes
/// takes them in rising steps instead of waiting for the clock.
fn code(secret: &TotpSecret, steps: i64) -> String {
    code_at(
        secret,
        &TotpSettings::default(),
        now().saturating_add_signed(steps * 30),
    )
    .unwrap()
}

/// Waits (five seconds at the most) until the current TOTP period has at least
/// that long to run, so that a code of one step ago is still one step ago when
/// the gateway checks it.
fn early_in_the_period() {
    let into = now() % 30;
    if into >= 25 {
        std::thread::sleep(std::time::Duration::from_secs(30 - into + 1));
    }
}

/// Signs in on the app's own form; returns the gateway's answer to the POST.
fn app_login(browser: &mut Browser, user: &str, password: &str) -> Page {
    let form = browser.get("/login");
    assert_eq!(form.status, 200, "the app's login form passes through");
    let csrf = form.input("csrf_token").expect("the app's CSRF token");
    browser.post(
        "/login",
        &[("csrf_token", &csrf), ("username", user), ("password", password)],
    )
}

/// Enrols an authenticator from the enrolment page; returns its secret, the recovery
/// codes shown, and the code that confirmed it.
fn enrol(browser: &mut Browser) -> (TotpSecret, Vec<String>, String) {
    let page = browser.get("/.portvakt/enrol");
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = secret_on(&page);
    let csrf = page.input("csrf").unwrap();
    let first = code(&secret, 0);
    let done = browser.post("/.portvakt/enrol", &[("csrf", &csrf), ("code", &first)]);
    assert_eq!(done.status, 200, "{}", done.body);
    let codes = done.codes();
    (secret, codes, first)
}

/// The key an enrolment page shows for typing into an authenticator app.
fn secret_on(page: &Page) -> TotpSecret {
    let key: String = page
        .body
        .split("<code class=\"secret\">")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .replace(' ', "");
    TotpSecret::from_bytes(Zeroizing::new(BASE32_NOPAD.decode(key.as_bytes()).unwrap()))
}

/// A browser in which `user` signed in on the app's form, enrolled an authenticator
/// app and went on to the app; with what `enrol` returns.
fn signed_in_with_an_app(
    gateway: &Gateway,
    user: &str,
    password: &str,
) -> (Browser, (TotpSecret, Vec<String>, String)) {
    let mut browser = Browser::new(gateway, HOST);
    app_login(&mut browser, user, password);
    let enrolled = enrol(&mut browser);
    press_continue(&mut browser);
    (browser, enrolled)
}

/// Presses Continue on the page shown after the second factor (new recovery codes,
/// or how many are left), which releases what was waiting.
fn press_continue(browser: &mut Browser) -> Page {
    let csrf = browser
        .get("/.portvakt/enrol")
        .input("csrf")
        .expect("the Continue form");
    browser.post("/.portvakt/continue", &[("csrf", &csrf)])
}

#[test]
fn the_whole_journey_releases_the_app_session_only_after_the_second_factor() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_for(&app, "");
    let mut browser = Browser::new(&gateway, HOST);

    // Not signed in: a protected page sends the browser to the app's login form.
    let home = browser.get("/");
    assert_eq!((home.status, home.location()), (303, Some("/login")));

    // The app accepts the password, but its session cookies are held back.
    let answer = app_login(&mut browser, "alice", "wonderland");
    assert_eq!(
        (answer.status, answer.location()),
        (303, Some("/.portvakt/enrol"))
    );
    assert_eq!(
        answer.set_cookie_names(),
        ["portvakt-challenge"],
        "no app cookie before the second factor"
    );
    let challenge_cookie = answer.headers["set-cookie"].to_str().unwrap();
    assert!(
        challenge_cookie.contains("Max-Age=300") && challenge_cookie.contains("HttpOnly"),
        "{challenge_cookie}"
    );
    assert!(!browser.cookies.contains_key("sessionid"));
    // The app's cookie alone reaches nothing protected.
    assert_eq!(browser.get("/whoami").status, 303);
    // A background fetch is refused without a redirect: no trip through the login
    // form behind the user's back, no new challenge over the one in progress.
    let cookie = format!("portvakt-challenge={}", browser.cookies["portvakt-challenge"]);
    let favicon = reqwest::blocking::Client::new()
        .get(gateway.url("127.0.0.1", "/favicon.ico"))
        .header("host", HOST)
        .header("sec-fetch-mode", "no-cors")
        .header("cookie", cookie)
        .send()
        .unwrap();
    assert_eq!(favicon.status(), 401);
    assert!(favicon.headers().get("location").is_none());

    let (secret, codes, first_code) = enrol(&mut browser);
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once");
    assert!(codes.iter().all(|c| c.len() == 19));
    let file = browser.get("/.portvakt/recovery-codes.txt");
    assert!(codes.iter().all(|c| file.body.contains(c.as_str())));
    assert!(file.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert!(browser
        .get("/.portvakt/recovery-codes/print")
        .body
        .contains(&codes[0]));

    // Continue: the app's withheld answer is released exactly, with the gateway's session.
    let continue_page = browser.get("/.portvakt/enrol");
    let csrf = continue_page.input("csrf").unwrap();
    let released = browser.post("/.portvakt/continue", &[("csrf", &csrf)]);
    assert_eq!((released.status, released.location()), (302, Some("/")));
    let names = released.set_cookie_names();
    for name in ["sessionid", "csrftoken", "portvakt"] {
        assert!(names.contains(&name.to_owned()), "{names:?}");
    }
    let home = browser.get("/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Welcome, <strong>alice</strong>"));

    // The app receives the verified identity and a signed assertion.
    let echo: serde_json::Value = serde_json::from_str(&browser.get("/whoami").body).unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(echo["headers"].clone()).unwrap();
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(get("x-portvakt-user").as_deref(), Some("alice"));
    assert_eq!(get("x-portvakt-method").as_deref(), Some("totp"));
    let cookie = get("cookie").unwrap_or_default();
    assert!(
        cookie.contains("sessionid="),
        "the app's own cookie arrives: {cookie}"
    );
    assert!(
        !cookie.contains("portvakt"),
        "the gateway's cookies stay at the gateway: {cookie}"
    );
    let jwt = get("x-portvakt-assertion").unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&browser.get("/.portvakt/jwks.json").body).unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_components(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["intranet"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));

    // Logging out of the app ends the gateway session too.
    let out = browser.get("/logout");
    assert!(out.set_cookie_names().contains(&"portvakt".to_owned()));
    assert_eq!(browser.get("/whoami").status, 303, "signed out");

    // Next sign-in asks for a code (no enrolment); the enrolment code does not work again.
    let answer = app_login(&mut browser, "alice", "wonderland");
    assert_eq!(answer.location(), Some("/.portvakt/verify"));
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    let replay = browser.post("/.portvakt/verify", &[("csrf", &csrf), ("code", &first_code)]);
    assert_eq!(replay.status, 422, "a code is accepted once, ever");
    let fresh = browser.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!((fresh.status, fresh.location()), (302, Some("/")));
    assert_eq!(browser.get("/whoami").status, 200);
}

#[test]
fn a_wrong_password_passes_the_apps_answer_untouched() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_for(&app, "");
    let mut browser = Browser::new(&gateway, HOST);
    let answer = app_login(&mut browser, "alice", "not-the-password");
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("Invalid username or password."));
    assert!(!browser.cookies.keys().any(|k| k.starts_with("portvakt")));
}

#[test]
fn lockout_holds_across_new_cookies_and_a_crash() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let mut gateway = gateway_for(&app, "lockout: { max_failures: 3, window: 15m, delay: 10m }\n");
    signed_in_with_an_app(&gateway, "alice", "wonderland");

    // A fresh browser each time: cookies cannot reset the count.
    for attempt in 0..3 {
        let mut attacker = Browser::new(&gateway, HOST);
        app_login(&mut attacker, "alice", "wonderland");
        let csrf = attacker.get("/.portvakt/verify").input("csrf").unwrap();
        let wrong = attacker.post("/.portvakt/verify", &[("csrf", &csrf), ("code", "000000")]);
        assert_eq!(wrong.status, 422, "attempt {attempt}");
    }
    gateway.crash_and_restart();
    let mut attacker = Browser::new(&gateway, HOST);
    let login = app_login(&mut attacker, "alice", "wonderland");
    assert_eq!(
        login.location(),
        Some("/.portvakt/locked"),
        "locked, even for the right password, after a restart"
    );
    assert_eq!(attacker.get("/.portvakt/locked").status, 429);
    assert!(!attacker.cookies.contains_key("sessionid"));
}

#[test]
fn an_enrolment_and_its_used_code_survive_a_crash() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let mut gateway = gateway_for(&app, "");
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let (secret, _codes, first_code) = enrol(&mut browser);
    gateway.crash_and_restart();
    let mut later = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut later, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let csrf = later.get("/.portvakt/verify").input("csrf").unwrap();
    let replay = later.post("/.portvakt/verify", &[("csrf", &csrf), ("code", &first_code)]);
    assert_eq!(replay.status, 422, "the used step is remembered across the crash");
    let released = later.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!(released.status, 302, "{}", released.body);
}

/// Step-up on a `max_age` route: the second factor is aged in the real database
/// (no sleeping), the gateway restarted so that nothing is cached, and the route
/// then asks for a code again and returns to the page.
#[test]
fn a_max_age_route_asks_for_a_fresh_second_factor() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let mut gateway = gateway_for(&app, "");
    let (mut browser, (secret, _codes, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    assert_eq!(
        browser.get("/admin/").status,
        200,
        "fresh enough for /admin (max_age 10m)"
    );

    let database = gateway.config_path().with_file_name("state").join("portvakt.db");
    let aged = rusqlite::Connection::open(&database)
        .unwrap()
        .execute(
            "UPDATE sessions SET second_factor_at = second_factor_at - 3600, created_at = created_at - 3600, \
             last_seen_at = last_seen_at - 60",
            [],
        )
        .unwrap();
    assert_eq!(aged, 1);
    gateway.crash_and_restart();

    assert_eq!(
        browser.get("/whoami").status,
        200,
        "the session itself is still good"
    );
    let step_up = browser.get("/admin/users?tab=2");
    assert_eq!(
        (step_up.status, step_up.location()),
        (303, Some("/.portvakt/verify"))
    );
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    let back = browser.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!((back.status, back.location()), (303, Some("/admin/users?tab=2")));
    assert_eq!(browser.get("/admin/users?tab=2").status, 200);
}

#[test]
fn a_route_that_needs_more_sends_the_user_through_the_challenge_and_back() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: off\n\
         \x20   login: {{ path: /login, username_field: username }}\n\
         \x20   routes:\n      - {{ path: /admin, policy: mfa, max_age: 10m }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    // With `mfa: off` the app's answer passes straight through, with a password-level session.
    let answer = app_login(&mut browser, "alice", "wonderland");
    assert_eq!((answer.status, answer.location()), (302, Some("/")));
    assert!(browser.cookies.contains_key("sessionid") && browser.cookies.contains_key("portvakt"));
    let echo = browser.get("/whoami");
    assert!(
        echo.body.contains("[\"x-portvakt-method\",\"password\"]"),
        "{}",
        echo.body
    );

    let step_up = browser.get("/admin/users?tab=2");
    assert_eq!(
        (step_up.status, step_up.location()),
        (303, Some("/.portvakt/enrol"))
    );
    let (_secret, _codes, _) = enrol(&mut browser);
    let back = press_continue(&mut browser);
    assert_eq!((back.status, back.location()), (303, Some("/admin/users?tab=2")));
    let admin = browser.get("/admin/users?tab=2");
    assert_eq!(admin.status, 200);
    assert!(admin.body.contains("you administer this intranet"));
}

/// An app with no login of its own: the gateway's page checks the users file, and
/// the groups it lists reach the policy and the app.
#[test]
fn the_gateway_login_checks_the_users_file() {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let app = LegacyApp::start(&["unused:unused"]);
    let hash = argon2::Argon2::default()
        .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let users = format!("users:\n  alice: {{ password: \"{hash}\", groups: [admins, staff] }}\n  bob: {{ groups: [staff] }}\n");
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\nsecond_factor: {{ remember_device: 7d }}\napps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n\
             \x20   mfa: {{ groups: [admins] }}\n    login: gateway\n",
            app.url()
        ),
        &[("users.yaml", &users)],
    );
    let mut browser = Browser::new(&gateway, HOST);
    let start = browser.get("/whoami?x=1");
    assert_eq!(
        (start.status, start.location()),
        (303, Some("/.portvakt/login?return=%2Fwhoami%3Fx%3D1"))
    );
    let form = browser.get(start.location().unwrap());
    assert_eq!(form.status, 200);
    let csrf = form.input("csrf").unwrap();
    let wrong = browser.post(
        "/.portvakt/login",
        &[
            ("csrf", &csrf),
            ("return", "/whoami?x=1"),
            ("username", "alice"),
            ("password", "nope"),
        ],
    );
    let nobody = browser.post(
        "/.portvakt/login",
        &[
            ("csrf", &wrong.input("csrf").unwrap()),
            ("return", "/"),
            ("username", "mallory"),
            ("password", "nope"),
        ],
    );
    assert_eq!((wrong.status, nobody.status), (401, 401));
    assert!(wrong.body.contains("The user name or password is wrong."));
    assert!(
        nobody.body.contains("The user name or password is wrong."),
        "unknown users get the same answer"
    );
    let forged = browser.post(
        "/.portvakt/login",
        &[
            ("csrf", "guess"),
            ("username", "alice"),
            ("password", "correct horse"),
        ],
    );
    assert_eq!(forged.status, 403);

    // alice is in `admins`, for whom this app requires a second factor.
    let csrf = browser.get("/.portvakt/login").input("csrf").unwrap();
    let signed_in = browser.post(
        "/.portvakt/login",
        &[
            ("csrf", &csrf),
            ("return", "//evil.example/"),
            ("username", "alice"),
            ("password", "correct horse"),
        ],
    );
    assert_eq!(signed_in.location(), Some("/.portvakt/enrol"));
    let (secret, _codes, _) = enrol(&mut browser);
    let back = press_continue(&mut browser);
    assert_eq!(
        (back.status, back.location()),
        (303, Some("/")),
        "an unsafe return path becomes /"
    );
    let echo = browser.get("/whoami").body;
    assert!(
        echo.contains("[\"x-portvakt-groups\",\"admins,staff\"]"),
        "{echo}"
    );

    // A browser remembered at a code is not asked again at the gateway's login either.
    let gateway_sign_in = |browser: &mut Browser| {
        let csrf = browser.get("/.portvakt/login").input("csrf").unwrap();
        browser.post(
            "/.portvakt/login",
            &[
                ("csrf", &csrf),
                ("return", "/whoami"),
                ("username", "alice"),
                ("password", "correct horse"),
            ],
        )
    };
    let mut laptop = Browser::new(&gateway, HOST);
    assert_eq!(gateway_sign_in(&mut laptop).location(), Some("/.portvakt/verify"));
    let csrf = laptop.get("/.portvakt/verify").input("csrf").unwrap();
    let passed = laptop.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1)), ("remember", "on")],
    );
    assert_eq!(passed.location(), Some("/whoami"));
    let mut next_time = Browser::new(&gateway, HOST);
    next_time.cookies = laptop.cookies.clone();
    next_time.cookies.retain(|name, _| name == "portvakt-trust");
    let skipped = gateway_sign_in(&mut next_time);
    assert_eq!(skipped.location(), Some("/whoami"), "{}", skipped.body);
    assert!(next_time.get("/whoami").body.contains("trusted_device"));
}

/// Types alice's password into the example app's own form and submits it.
/// Types a code into the page's code field and submits its form.
async fn type_code_and_submit(
    browser: &fantoccini::Client,
    code: &str,
) -> Result<(), fantoccini::error::CmdError> {
    use fantoccini::Locator;
    browser.find(Locator::Id("code")).await?.send_keys(code).await?;
    click(browser, "form button[type=submit]").await
}

async fn click(browser: &fantoccini::Client, css: &str) -> Result<(), fantoccini::error::CmdError> {
    browser.find(fantoccini::Locator::Css(css)).await?.click().await
}

async fn sign_in_on_the_apps_form(browser: &fantoccini::Client) -> Result<(), fantoccini::error::CmdError> {
    use fantoccini::Locator;
    browser
        .wait()
        .for_element(Locator::Css("input[name=username]"))
        .await?;
    browser
        .find(Locator::Css("input[name=username]"))
        .await?
        .send_keys("alice")
        .await?;
    browser
        .find(Locator::Css("input[name=password]"))
        .await?
        .send_keys("wonderland")
        .await?;
    browser
        .find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await
}

/// The journey in a real browser (Debian's Chromium, driven over WebDriver), taking
/// the screenshots the README shows. Set PORTVAKT_SCREENSHOTS=docs/screenshots to
/// refresh them; they are always written under the test's target folder too.
#[test]
fn a_browser_enrols_verifies_and_reaches_the_app() {
    use fantoccini::Locator;

    let chromium = chromium::Chromium::start();
    let app = LegacyApp::start(&["alice:wonderland:admin", "bob:builder"]);
    let config = format!(
        "admins: {{ users: [alice] }}\napps:\n  intranet:\n    hosts: [localhost]\n    upstream: {}\n    mfa: required\n\
         \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
        app.url()
    );
    let mut gateway = Gateway::start(&config);
    // Bob enrols over plain HTTP; alice resets him from the admin page in the browser.
    let mut bob = Browser::new(&gateway, "localhost");
    app_login(&mut bob, "bob", "builder");
    enrol(&mut bob);
    press_continue(&mut bob);
    assert_eq!(bob.get("/whoami").status, 200);
    let shots = chromium::Screenshots::new();
    let shoot = |name: &str, png: Vec<u8>| shots.save(name, &png);
    let base = format!("http://localhost:{}", gateway.port);

    let result = chromium::runtime().block_on(async {
        let browser = chromium.connect().await;
        let journey = async {
            // A protected page sends the browser to the app's own login form.
            browser.goto(&format!("{base}/")).await?;
            assert!(browser.current_url().await?.path().ends_with("/login"));
            sign_in_on_the_apps_form(&browser).await?;

            // The app said yes; the gateway asks for an authenticator first.
            browser
                .wait()
                .for_url(&url::Url::parse(&format!("{base}/.portvakt/enrol")).unwrap())
                .await
                .ok();
            let at = browser.current_url().await?;
            assert_eq!(at.path(), "/.portvakt/enrol", "{}", browser.source().await?);
            assert!(
                browser.find(Locator::Css(".qr svg")).await.is_ok(),
                "the QR code is drawn"
            );
            shoot("enrol.png", browser.screenshot().await?);
            click(&browser, "details summary").await?;
            let key = browser
                .find(Locator::Css("code.secret"))
                .await?
                .text()
                .await?
                .replace(' ', "");
            let secret = TotpSecret::from_bytes(Zeroizing::new(BASE32_NOPAD.decode(key.as_bytes()).unwrap()));
            // Three codes in this journey, in rising steps: no waiting for the clock.
            // A code of one step ago turns too old if a period ends on its way
            // (through a slow browser on a busy machine): typed early in a period.
            early_in_the_period();
            type_code_and_submit(&browser, &code(&secret, -1)).await?;

            if browser
                .wait()
                .for_element(Locator::Css("ol.codes"))
                .await
                .is_err()
            {
                panic!("no recovery codes page: {}", browser.source().await?);
            }
            let codes = browser.find_all(Locator::Css("ol.codes code")).await?;
            assert_eq!(codes.len(), 10);
            shoot("recovery-codes.png", browser.screenshot().await?);
            click(&browser, "form[action='/.portvakt/continue'] button").await?;
            browser
                .wait()
                .for_element(Locator::XPath("//*[contains(text(), 'Welcome')]"))
                .await?;
            assert!(browser
                .source()
                .await?
                .contains("Welcome, <strong>alice</strong>"));

            // Signed out, then back with a code.
            browser.goto(&format!("{base}/logout")).await?;
            sign_in_on_the_apps_form(&browser).await?;
            browser
                .wait()
                .for_element(Locator::Css("form[action='/.portvakt/verify']"))
                .await?;
            assert_eq!(browser.current_url().await?.path(), "/.portvakt/verify");
            shoot("verify.png", browser.screenshot().await?);
            type_code_and_submit(&browser, &code(&secret, 0)).await?;
            browser
                .wait()
                .for_element(Locator::XPath("//*[contains(text(), 'Welcome')]"))
                .await?;
            assert!(browser
                .source()
                .await?
                .contains("Welcome, <strong>alice</strong>"));

            // Her security info lists her methods.
            browser.goto(&format!("{base}/.portvakt/account")).await?;
            let page = browser.source().await?;
            assert!(page.contains("Sign-in methods"), "{page}");
            assert!(
                page.contains("<td>Authenticator app</td><td>Authenticator app</td>"),
                "{page}"
            );
            assert!(page.contains("<strong>10</strong>"), "ten recovery codes left");
            assert!(
                page.contains("Default sign-in method: <strong>Code from my authenticator app</strong>"),
                "{page}"
            );
            // "+ Add sign-in method" opens the kinds this deployment allows, without a script.
            assert!(
                !browser
                    .find(Locator::Css("#new-device"))
                    .await?
                    .is_displayed()
                    .await?
            );
            click(&browser, "details.add-method summary").await?;
            assert!(
                browser
                    .find(Locator::Css("#new-device"))
                    .await?
                    .is_displayed()
                    .await?
            );
            assert!(
                browser.find(Locator::Css("#address")).await.is_err(),
                "no e-mail codes here"
            );
            shoot("account.png", browser.screenshot().await?);

            // The same page in Swedish, in the wording users know from Microsoft's.
            gateway.write_config(&format!("pages: {{ language: sv }}\n{config}"));
            assert_eq!(gateway.reload(), Reload::Applied);
            browser.goto(&format!("{base}/.portvakt/account")).await?;
            let sidan = browser.source().await?;
            for text in [
                "Säkerhetsinformation",
                "Standardinloggningsmetod:",
                "+ Lägg till inloggningsmetod",
                "Ändra",
                "Ta bort",
            ] {
                assert!(sidan.contains(text), "{text}: {sidan}");
            }
            shoot("account-sv.png", browser.screenshot().await?);
            gateway.write_config(&config);
            assert_eq!(gateway.reload(), Reload::Applied);

            // As an admin she resets bob, confirming with a code of a step not used yet.
            browser.goto(&format!("{base}/.portvakt/admin")).await?;
            click(&browser, "input[name=user][value=bob]").await?;
            click(
                &browser,
                "form[action='/.portvakt/admin/reset'] button[type=submit]",
            )
            .await?;
            browser
                .wait()
                .for_element(Locator::Css("form[action='/.portvakt/admin/reset/confirm']"))
                .await?;
            type_code_and_submit(&browser, &code(&secret, 1)).await?;
            browser
                .wait()
                .for_element(Locator::XPath("//*[contains(text(), 'Done.')]"))
                .await?;
            assert!(browser.source().await?.contains("bob — reset (admin:alice, ok)"));
            Ok::<(), fantoccini::error::CmdError>(())
        };
        let outcome = journey.await;
        let _ = browser.close().await;
        outcome
    });
    drop(chromium);
    result.expect("the browser journey");
    assert_eq!(bob.get("/whoami").status, 303, "the reset ended bob's session");
    let mut bob_again = Browser::new(&gateway, "localhost");
    assert_eq!(
        app_login(&mut bob_again, "bob", "builder").location(),
        Some("/.portvakt/enrol"),
        "bob enrols again"
    );
}

/// An app may name the headers its identity arrives in; client copies of those names
/// are stripped like the X-Portvakt-* family. Oversized login bodies are refused, and
/// the gateway's own sign-out ends the session.
#[test]
fn custom_identity_headers_body_limits_and_sign_out() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: off\n\
         \x20   login: {{ path: /login, username_field: username, max_body: 2048 }}\n\
         \x20   upstream_headers: {{ user: X-Remote-User, groups: X-Remote-Groups }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let request = format!(
        "GET /whoami HTTP/1.1\r\nHost: {HOST}\r\nCookie: portvakt={}\r\nX-Remote-User: root\r\nx_remote_user: root\r\nConnection: close\r\n\r\n",
        browser.cookies["portvakt"]
    );
    let (status, body) = gateway.raw(request.as_bytes());
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(echo["headers"].clone()).unwrap();
    let users: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "x-remote-user")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(users, ["alice"], "only the gateway's value: {headers:?}");
    assert!(!headers
        .iter()
        .any(|(k, _)| k == "x-portvakt-user" || k == "x_remote_user"));

    let big = "a".repeat(4096);
    let refused = browser.post("/login", &[("username", "alice"), ("password", &big)]);
    assert_eq!(refused.status, 413, "login bodies over max_body are refused");

    let out = browser.get("/.portvakt/logout");
    assert_eq!(out.status, 200);
    assert!(out.body.contains("You are signed out"));
    assert!(!browser.cookies.contains_key("portvakt"));
    assert_eq!(
        gateway.raw(request.as_bytes()).0,
        401,
        "the old session cookie is dead"
    );
}

/// With `enrolment: admin`, a password alone cannot enrol a device: only after an
/// admin opens enrolment for the user (from the command line, while the gateway runs).
#[test]
fn enrolment_waits_for_an_admin_when_configured() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_for(&app, "second_factor: { enrolment: admin }\n");
    let mut browser = Browser::new(&gateway, HOST);
    let closed = app_login(&mut browser, "alice", "wonderland");
    assert_eq!(closed.location(), Some("/.portvakt/enrolment-closed"));
    assert!(!browser.cookies.contains_key("sessionid"), "nothing released");
    let page = browser.get("/.portvakt/enrolment-closed");
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Contact your administrator"));

    let opened = gateway.cli(&["users", "open-enrolment", "alice", "--for", "1h"]);
    assert!(opened.contains("alice may enrol"));

    let open = app_login(&mut browser, "alice", "wonderland");
    assert_eq!(open.location(), Some("/.portvakt/enrol"));
    enrol(&mut browser);
}

/// With `return_param`, a request without a session is sent to the app's login page
/// with the path it asked for, and the app (which honours `next`) lands there.
#[test]
fn the_apps_login_page_gets_the_path_to_return_to() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n\
         \x20   login: {{ path: /login, username_field: username, return_param: next }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    let start = browser.get("/admin/users?tab=2");
    assert_eq!(start.location(), Some("/login?next=%2Fadmin%2Fusers%3Ftab%3D2"));
    let form = browser.get(start.location().unwrap());
    let csrf = form.input("csrf_token").unwrap();
    let next = form.input("next").unwrap();
    assert_eq!(next, "/admin/users?tab=2");
    browser.post(
        "/login",
        &[
            ("csrf_token", &csrf),
            ("next", &next),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    );
    enrol(&mut browser);
    let released = press_continue(&mut browser);
    assert_eq!(
        released.location(),
        Some("/admin/users?tab=2"),
        "the app's own redirect, released as it was"
    );
}

/// The example app, like many, accepts `ALICE` for alice. The gateway must see one
/// account too: otherwise `ALICE` would have no device, and whoever holds alice's
/// password could enrol their own phone.
#[test]
fn a_user_name_typed_in_another_case_is_the_same_account() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_for(&app, "");
    signed_in_with_an_app(&gateway, "alice", "wonderland");

    let mut attacker = Browser::new(&gateway, HOST);
    for typed in ["ALICE", " Alice "] {
        let answer = app_login(&mut attacker, typed, "wonderland");
        assert_eq!(
            answer.location(),
            Some("/.portvakt/verify"),
            "{typed:?} must meet alice's device, not a new enrolment"
        );
    }
}

/// Administration from the command line while the gateway runs, and the audit trail
/// it leaves — which never holds a code, a key or a cookie.
#[test]
fn administration_from_the_command_line_leaves_an_audit_trail() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_for(&app, "lockout: { max_failures: 2, window: 15m, delay: 10m }\n");
    let cli = |args: &[&str]| gateway.cli(args);
    let (browser, (secret, codes, first_code)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    let session_cookie = browser.cookies["portvakt"].clone();
    assert!(cli(&["users", "list"]).contains("1 device(s), 10 recovery code(s) left"));

    // Two wrong codes lock alice out; an admin lifts it.
    let mut again = Browser::new(&gateway, HOST);
    app_login(&mut again, "alice", "wonderland");
    let csrf = again.get("/.portvakt/verify").input("csrf").unwrap();
    for _ in 0..2 {
        again.post("/.portvakt/verify", &[("csrf", &csrf), ("code", "000000")]);
    }
    let right = code(&secret, 1);
    assert_eq!(
        again
            .post("/.portvakt/verify", &[("csrf", &csrf), ("code", &right)])
            .status,
        429
    );
    assert!(cli(&["users", "show", "alice"]).contains("locked until"));
    assert!(cli(&["users", "unlock", "alice"]).contains("alice: unlocked"));
    assert_eq!(
        again
            .post("/.portvakt/verify", &[("csrf", &csrf), ("code", &right)])
            .status,
        302
    );

    let trail = cli(&["audit", "--user", "alice", "--json"]);
    let events: Vec<serde_json::Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for wanted in [
        "login_ok",
        "enrolled",
        "second_factor_failed",
        "locked_out",
        "unlocked",
        "second_factor_ok",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let key = BASE32_NOPAD.encode(secret.as_bytes());
    for secret_text in [key.as_str(), &first_code, &right, &codes[0], &session_cookie] {
        assert!(
            !trail.contains(secret_text),
            "the audit trail must not hold {secret_text}"
        );
    }

    // A reset removes the factors: the next sign-in enrols again.
    assert!(cli(&["users", "reset", "alice"]).contains("second factor reset"));
    assert!(cli(&["users", "list"]).contains("0 device(s), 0 recovery code(s) left"));
    let mut fresh = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut fresh, "alice", "wonderland").location(),
        Some("/.portvakt/enrol")
    );
}

/// The security-info page: methods and activity, new recovery codes (the old ones
/// die at once, and a stale second factor asks for a step-up first), sign out
/// everywhere.
#[test]
fn the_security_info_page_renews_codes_and_signs_out_everywhere() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let mut gateway = gateway_for(&app, "");
    let (mut browser, (secret, old_codes, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");

    let page = browser.get("/.portvakt/account");
    assert_eq!(page.status, 200);
    assert!(page
        .body
        .contains("<td>Authenticator app</td><td>Authenticator app</td>"));
    assert!(page.body.contains("<strong>10</strong>"), "ten codes left");
    assert!(page.body.contains("Authenticator app added"), "recent activity");
    let csrf = page.input("csrf").unwrap();
    let forged = browser.post("/.portvakt/account/recovery-codes", &[("csrf", "guess")]);
    assert_eq!(forged.status, 403);

    let renewed = browser.post("/.portvakt/account/recovery-codes", &[("csrf", &csrf)]);
    assert_eq!(renewed.status, 200);
    let new_codes = renewed.codes();
    assert_eq!(new_codes.len(), 10);
    assert!(renewed.body.contains("download=\"recovery-codes.txt\""));
    let mut elsewhere = Browser::new(&gateway, HOST);
    app_login(&mut elsewhere, "alice", "wonderland");
    let token = elsewhere.get("/.portvakt/recovery").input("csrf").unwrap();
    let old = elsewhere.post(
        "/.portvakt/recovery",
        &[("csrf", &token), ("code", &old_codes[0])],
    );
    assert_eq!(old.status, 422, "old codes die at once");
    let fresh = elsewhere.post(
        "/.portvakt/recovery",
        &[("csrf", &token), ("code", &new_codes[0])],
    );
    assert_eq!(fresh.status, 200);
    press_continue(&mut elsewhere);
    assert_eq!(elsewhere.get("/whoami").status, 200);

    // An old second factor must be renewed before changing anything.
    let database = gateway.config_path().with_file_name("state").join("portvakt.db");
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute(
            "UPDATE sessions SET second_factor_at = second_factor_at - 3600",
            [],
        )
        .unwrap();
    gateway.crash_and_restart();
    let csrf = browser.get("/.portvakt/account").input("csrf").unwrap();
    let step_up = browser.post("/.portvakt/account/recovery-codes", &[("csrf", &csrf)]);
    assert_eq!(step_up.location(), Some("/.portvakt/verify"));
    let token = browser.get("/.portvakt/verify").input("csrf").unwrap();
    let back = browser.post(
        "/.portvakt/verify",
        &[("csrf", &token), ("code", &code(&secret, 1))],
    );
    assert_eq!(back.location(), Some("/.portvakt/account"));

    // Sign out everywhere ends the other browser's session too.
    let csrf = browser.get("/.portvakt/account").input("csrf").unwrap();
    let out = browser.post("/.portvakt/account/sign-out-everywhere", &[("csrf", &csrf)]);
    assert!(out.body.contains("You are signed out everywhere."));
    assert_eq!(
        elsewhere.get("/whoami").status,
        303,
        "the other browser is signed out"
    );
    assert_eq!(browser.get("/.portvakt/account").location(), Some("/login"));
}

/// Adding a second device (up to the limit), and removing one after confirming —
/// but never the last one of a user who must have a second factor.
#[test]
fn devices_are_added_up_to_the_limit_and_removed_after_confirming() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_for(&app, "second_factor: { max_devices: 2 }\n");
    let (mut browser, _) = signed_in_with_an_app(&gateway, "alice", "wonderland");

    let csrf = browser.get("/.portvakt/account").input("csrf").unwrap();
    let adding = browser.post(
        "/.portvakt/account/add-device",
        &[("csrf", &csrf), ("name", "Tablet")],
    );
    assert_eq!(adding.location(), Some("/.portvakt/enrol"));
    let page = browser.get("/.portvakt/enrol");
    let key: String = page
        .body
        .split("<code class=\"secret\">")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .replace(' ', "");
    let tablet = TotpSecret::from_bytes(Zeroizing::new(BASE32_NOPAD.decode(key.as_bytes()).unwrap()));
    let token = page.input("csrf").unwrap();
    let added = browser.post(
        "/.portvakt/enrol",
        &[("csrf", &token), ("code", &code(&tablet, 1))],
    );
    assert_eq!(added.status, 200);
    assert!(
        added.codes().is_empty(),
        "a second device keeps the recovery codes"
    );
    assert_eq!(
        press_continue(&mut browser).location(),
        Some("/.portvakt/account")
    );

    let page = browser.get("/.portvakt/account");
    assert!(page.body.contains("<td>Authenticator app</td><td>Tablet</td>"));
    let csrf = page.input("csrf").unwrap();
    let third = browser.post(
        "/.portvakt/account/add-device",
        &[("csrf", &csrf), ("name", "Laptop")],
    );
    assert_eq!(third.status, 422);
    assert!(third.body.contains("as many authenticator apps as allowed"));

    // Remove the tablet: a confirmation first.
    let ids: Vec<String> = page
        .body
        .match_indices("name=\"id\" value=\"")
        .map(|(i, m)| page.body[i + m.len()..].split('"').next().unwrap().to_owned())
        .collect();
    let tablet_id = ids.last().unwrap().clone();
    let confirm = browser.post(
        "/.portvakt/account/remove-device",
        &[("csrf", &csrf), ("id", &tablet_id)],
    );
    assert!(confirm.body.contains("Remove this authenticator app?"));
    // A browser remembered for alice (as the verification page would leave it).
    let database = gateway.config_path().with_file_name("state").join("portvakt.db");
    let database = rusqlite::Connection::open(&database).unwrap();
    database
        .execute(
            "INSERT INTO trusted_devices (id_hash, user_name, passed_at, expires_at) VALUES (x'01', 'alice', 0, 9999999999)",
            [],
        )
        .unwrap();
    let remembered_browsers = || {
        database
            .query_row("SELECT count(*) FROM trusted_devices", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(remembered_browsers(), 1);
    let removed = browser.post(
        "/.portvakt/account/remove-device/confirm",
        &[("csrf", &csrf), ("id", &tablet_id)],
    );
    assert_eq!(removed.location(), Some("/.portvakt/account"));
    let page = browser.get("/.portvakt/account");
    assert!(!page.body.contains("<td>Authenticator app</td><td>Tablet</td>"));
    assert_eq!(
        remembered_browsers(),
        0,
        "removing a device forgets remembered browsers"
    );

    let last_id = ids[0].clone();
    let refused = browser.post(
        "/.portvakt/account/remove-device/confirm",
        &[("csrf", &csrf), ("id", &last_id)],
    );
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("your only authenticator app"));
    assert!(browser
        .get("/.portvakt/account")
        .body
        .contains("<td>Authenticator app</td><td>Authenticator app</td>"));
}

/// Where the second factor is optional, a user can turn it on from the security info
/// (enrolling at once), is then asked for a code at every sign-in, and can turn it
/// off again with a recent code.
#[test]
fn a_user_turns_the_second_factor_on_where_it_is_optional() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: optional\n\
         \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/"),
        "password only"
    );
    let page = browser.get("/.portvakt/account");
    assert!(page.body.contains("Off: your password alone"));
    let csrf = page.input("csrf").unwrap();
    let on = browser.post("/.portvakt/account/two-factor", &[("csrf", &csrf), ("on", "on")]);
    assert_eq!(on.location(), Some("/.portvakt/enrol"), "enrol right away");
    let (secret, _codes, _) = enrol(&mut browser);
    assert_eq!(
        press_continue(&mut browser).location(),
        Some("/.portvakt/account")
    );
    assert!(browser.get("/.portvakt/account").body.contains("On: a code"));

    browser.get("/logout");
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let token = browser.get("/.portvakt/verify").input("csrf").unwrap();
    assert_eq!(
        browser
            .post(
                "/.portvakt/verify",
                &[("csrf", &token), ("code", &code(&secret, 1))]
            )
            .status,
        302
    );

    let csrf = browser.get("/.portvakt/account").input("csrf").unwrap();
    let off = browser.post("/.portvakt/account/two-factor", &[("csrf", &csrf), ("on", "off")]);
    assert_eq!(off.location(), Some("/.portvakt/account"));
    browser.get("/logout");
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/"),
        "password only again"
    );
}

/// Admin pages: a non-admin is refused every page and action; an admin resets a
/// user after confirming with a code of their own, which ends the user's sessions and
/// makes them enrol again.
#[test]
fn admins_reset_users_and_everyone_else_is_refused() {
    let app = LegacyApp::start(&["alice:wonderland:admin", "bob:builder"]);
    let gateway = gateway_for(&app, "admins: { users: [Alice] }\n");
    let (mut bob, _) = signed_in_with_an_app(&gateway, "bob", "builder");
    assert_eq!(bob.get("/.portvakt/admin").status, 403);
    for action in [
        "/.portvakt/admin/reset",
        "/.portvakt/admin/reset/confirm",
        "/.portvakt/admin/unlock",
    ] {
        assert_eq!(
            bob.post(action, &[("csrf", "x"), ("user", "alice")]).status,
            403,
            "{action}"
        );
    }

    let (mut alice, (secret, _codes, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    let page = alice.get("/.portvakt/admin");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("value=\"bob\""));
    assert!(
        page.body.contains("<td>bob</td><td>Authenticator app</td>"),
        "the admin sees bob's methods by name: {}",
        page.body
    );
    assert!(!page.body.contains("otpauth"), "never a secret");
    let csrf = page.input("csrf").unwrap();
    let confirm = alice.post("/.portvakt/admin/reset", &[("csrf", &csrf), ("user", "bob")]);
    assert!(confirm.body.contains("Confirm the reset"));
    let wrong = alice.post(
        "/.portvakt/admin/reset/confirm",
        &[("csrf", &csrf), ("user", "bob"), ("code", "000000")],
    );
    assert_eq!(wrong.status, 422);
    let done = alice.post(
        "/.portvakt/admin/reset/confirm",
        &[("csrf", &csrf), ("user", "bob"), ("code", &code(&secret, 1))],
    );
    assert!(done.body.contains("Done."), "{}", done.body);
    assert!(done.body.contains("bob — reset (admin:alice, ok)"));

    assert_eq!(bob.get("/whoami").status, 303, "bob's session ended");
    let mut bob_again = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut bob_again, "bob", "builder").location(),
        Some("/.portvakt/enrol")
    );
}

/// The e-mailed code of the last message in the development mail file.
fn last_mailed_code(gateway: &Gateway) -> String {
    let mail = std::fs::read_to_string(gateway.config_path().with_file_name("mail.log")).unwrap();
    let after = mail.rsplit("Your sign-in code is ").next().unwrap();
    after.chars().take_while(char::is_ascii_digit).collect()
}

fn email_gateway(app: &LegacyApp, email_use: &str) -> Gateway {
    email_gateway_with_users(app, email_use, "users:\n  alice: { email: alice@example.com }\n")
}

fn email_gateway_with_users(app: &LegacyApp, email_use: &str, users: &str) -> Gateway {
    Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\nemail: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
             second_factor: {{ email: {email_use} }}\napps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            app.url()
        ),
        &[("users.yaml", users)],
    )
}

/// "Sign in another way": a code e-mailed to the address in the users file, after an
/// app was enrolled; single use, with a cool-down on resending.
#[test]
fn an_emailed_code_is_another_way_in() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = email_gateway(&app, "fallback");
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/enrol"),
        "fallback only"
    );
    enrol(&mut browser);
    press_continue(&mut browser);
    let mail = std::fs::read_to_string(gateway.config_path().with_file_name("mail.log")).unwrap();
    assert!(
        mail.contains("An authenticator app was added"),
        "the user is told: {mail}"
    );
    assert!(browser
        .get("/.portvakt/account")
        .body
        .contains("<td>E-mail</td><td>a•••@example.com</td>"));
    browser.get("/logout");

    app_login(&mut browser, "alice", "wonderland");
    let verify = browser.get("/.portvakt/verify");
    assert!(
        verify.body.contains("E-mail a code to a•••@example.com"),
        "{}",
        verify.body
    );
    let csrf = verify.input("csrf").unwrap();
    let sent = browser.post("/.portvakt/email/send", &[("csrf", &csrf)]);
    assert_eq!(sent.location(), Some("/.portvakt/email"));
    let code = last_mailed_code(&gateway);
    assert_eq!(code.len(), 6);
    let again = browser.post("/.portvakt/email/send", &[("csrf", &csrf)]);
    assert!(again.body.contains("Wait a minute"), "cool-down");
    assert_eq!(last_mailed_code(&gateway), code, "no second message");

    let wrong = browser.post("/.portvakt/email", &[("csrf", &csrf), ("code", "000000")]);
    assert_eq!(wrong.status, 422);
    let released = browser.post("/.portvakt/email", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!((released.status, released.location()), (302, Some("/")));
    let echo = browser.get("/whoami").body;
    assert!(echo.contains("[\"x-portvakt-method\",\"email\"]"), "{echo}");

    // With both ways in, the user chooses which one the verification page offers first.
    let verify_first = |page: &Page| {
        let app_form = page.body.find("action=\"/.portvakt/verify\"").unwrap();
        let mail_form = page.body.find("action=\"/.portvakt/email/send\"").unwrap();
        app_form < mail_form
    };
    assert!(verify_first(&verify), "the app's code comes first by default");
    let account = browser.get("/.portvakt/account");
    assert!(account.body.contains("value=\"app\" checked"), "{}", account.body);
    let csrf = account.input("csrf").unwrap();
    let bogus = browser.post(
        "/.portvakt/account/default-method",
        &[("csrf", &csrf), ("method", "sms")],
    );
    assert_eq!(bogus.location(), Some("/.portvakt/account"));
    let chosen = browser.post(
        "/.portvakt/account/default-method",
        &[("csrf", &csrf), ("method", "email")],
    );
    assert_eq!(chosen.location(), Some("/.portvakt/account"));
    assert!(browser
        .get("/.portvakt/account")
        .body
        .contains("value=\"email\" checked"));
    browser.get("/logout");
    app_login(&mut browser, "alice", "wonderland");
    assert!(
        !verify_first(&browser.get("/.portvakt/verify")),
        "e-mail first now"
    );
}

/// Where an e-mailed code is a second factor in its own right, a user with an
/// address signs in without enrolling an app.
#[test]
fn an_emailed_code_can_stand_alone() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = email_gateway(&app, "second_factor");
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let verify = browser.get("/.portvakt/verify");
    assert!(
        !verify.body.contains("action=\"/.portvakt/verify\""),
        "no app to ask a code from"
    );
    let csrf = verify.input("csrf").unwrap();
    browser.post("/.portvakt/email/send", &[("csrf", &csrf)]);
    let code = last_mailed_code(&gateway);
    assert_eq!(
        browser
            .post("/.portvakt/email", &[("csrf", &csrf), ("code", &code)])
            .status,
        302
    );
}

/// A mail server in miniature on loopback: speaks enough SMTP to take messages, and
/// hands each one's text to the test.
fn smtp_sink() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes());
            say("220 sink.test ESMTP").unwrap();
            let mut line = String::new();
            let mut message = String::new();
            let mut in_data = false;
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        tx.send(std::mem::take(&mut message)).unwrap();
                        say("250 queued").unwrap();
                    } else {
                        message.push_str(&line);
                    }
                } else {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    match verb.as_str() {
                        "EHLO" | "HELO" => say("250 sink.test").unwrap(),
                        "DATA" => {
                            in_data = true;
                            say("354 go ahead").unwrap();
                        }
                        "QUIT" => {
                            say("221 bye").unwrap();
                            break;
                        }
                        _ => say("250 ok").unwrap(),
                    }
                }
                line.clear();
            }
        }
    });
    (port, rx)
}

/// The production path: e-mail codes go out over SMTP.
#[test]
fn emailed_codes_go_out_over_smtp() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let (port, mail) = smtp_sink();
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\n\
             email: {{ from: \"Portvakt <portvakt@example.com>\", smtp: {{ host: 127.0.0.1, port: {port}, security: none }} }}\n\
             second_factor: {{ email: second_factor }}\napps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n\
             \x20   login: {{ path: /login, username_field: username }}\n",
            app.url()
        ),
        &[("users.yaml", "users:\n  alice: { email: alice@example.com }\n")],
    );
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    assert_eq!(
        browser
            .post("/.portvakt/email/send", &[("csrf", &csrf)])
            .location(),
        Some("/.portvakt/email")
    );
    let message = mail
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a message");
    assert!(message.contains("To: alice@example.com"), "{message}");
    let code: String = message
        .rsplit("Your sign-in code is ")
        .next()
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(
        browser
            .post("/.portvakt/email", &[("csrf", &csrf), ("code", &code)])
            .status,
        302
    );
}

#[test]
fn a_remembered_browser_skips_the_code_until_signed_out_everywhere() {
    let app = LegacyApp::start(&["alice:wonderland:admin", "bob:builder"]);
    let gateway = gateway_for(&app, "second_factor: { remember_device: 30d }\n");
    let (mut browser, (secret, codes, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    browser.get("/logout");

    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let page = browser.get("/.portvakt/verify");
    assert!(
        page.body.contains("ask again in this browser for 30 days"),
        "{}",
        page.body
    );
    let csrf = page.input("csrf").unwrap();
    let released = browser.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1)), ("remember", "on")],
    );
    let set = released.set_cookie_names();
    assert!(set.contains(&"portvakt-trust".to_owned()), "{set:?}");
    assert!(
        set.contains(&"sessionid".to_owned()),
        "the app's session is released: {set:?}"
    );
    browser.get("/logout");

    // The next sign-in in this browser passes straight to the app.
    let skipped = app_login(&mut browser, "alice", "wonderland");
    assert_ne!(
        skipped.location(),
        Some("/.portvakt/verify"),
        "{:?}",
        skipped.headers
    );
    assert!(skipped.set_cookie_names().contains(&"sessionid".to_owned()));
    assert_eq!(browser.get("/whoami").status, 200);
    // That the second factor dates from when it was really passed (so `max_age`
    // routes ask again) is tested in process with a set clock (portal tests:
    // a_remembered_browser_keeps_the_date_of_its_second_factor).

    // The cookie is alice's: bob signing in with it is asked for his own factor.
    let mut borrowed = Browser::new(&gateway, HOST);
    borrowed.cookies = browser.cookies.clone();
    borrowed.cookies.retain(|name, _| name == "portvakt-trust");
    let bob = app_login(&mut borrowed, "bob", "builder");
    assert_eq!(bob.location(), Some("/.portvakt/enrol"));
    // A forged cookie is worth nothing either.
    let mut forged = Browser::new(&gateway, HOST);
    forged
        .cookies
        .insert("portvakt-trust".to_owned(), "AAAA".to_owned());
    assert_eq!(
        app_login(&mut forged, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );

    // Signing out everywhere (here from a browser that used a recovery code, which
    // remembers nothing) forgets every remembered browser.
    let mut other = Browser::new(&gateway, HOST);
    app_login(&mut other, "alice", "wonderland");
    let token = other.get("/.portvakt/recovery").input("csrf").unwrap();
    let used = other.post("/.portvakt/recovery", &[("csrf", &token), ("code", &codes[0])]);
    assert_eq!(used.status, 200);
    assert!(!press_continue(&mut other)
        .set_cookie_names()
        .contains(&"portvakt-trust".to_owned()));
    let csrf = other.get("/.portvakt/account").input("csrf").unwrap();
    let out = other.post("/.portvakt/account/sign-out-everywhere", &[("csrf", &csrf)]);
    assert!(out.body.contains("You are signed out everywhere."));
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
}

/// A user without an address in the users file adds one on their security info,
/// proving it is theirs with a code sent to it; it then serves as a way in.
#[test]
fn a_user_adds_and_confirms_an_address_for_codes() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = email_gateway_with_users(&app, "fallback", "users:\n  bob: { email: bob@example.com }\n");
    let (mut browser, _) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    let account = browser.get("/.portvakt/account");
    assert!(
        account.body.contains("E-mail address for codes"),
        "{}",
        account.body
    );
    let csrf = account.input("csrf").unwrap();

    let invalid = browser.post(
        "/.portvakt/account/email",
        &[("csrf", &csrf), ("address", "not an address")],
    );
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("That is not an e-mail address."));
    let sent = browser.post(
        "/.portvakt/account/email",
        &[("csrf", &csrf), ("address", "alice@example.org")],
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("a•••@example.org"), "{}", sent.body);
    let code = last_mailed_code(&gateway);
    let wrong = browser.post(
        "/.portvakt/account/email/confirm",
        &[("csrf", &csrf), ("code", "000000")],
    );
    assert_eq!(wrong.status, 422);
    let confirmed = browser.post(
        "/.portvakt/account/email/confirm",
        &[("csrf", &csrf), ("code", &code)],
    );
    assert_eq!(confirmed.location(), Some("/.portvakt/account"));
    let again = browser.post(
        "/.portvakt/account/email/confirm",
        &[("csrf", &csrf), ("code", &code)],
    );
    assert_eq!(
        again.location(),
        Some("/.portvakt/account"),
        "nothing pending any more"
    );
    let account = browser.get("/.portvakt/account");
    assert!(
        account.body.contains("<td>E-mail</td><td>a•••@example.org</td>"),
        "{}",
        account.body
    );
    assert!(
        !account.body.contains("E-mail address for codes"),
        "one address at a time"
    );

    browser.get("/logout");
    app_login(&mut browser, "alice", "wonderland");
    let verify = browser.get("/.portvakt/verify");
    assert!(
        verify.body.contains("E-mail a code to a•••@example.org"),
        "{}",
        verify.body
    );
}

/// An app made stricter while users are signed in: with the default `next_sign_in`
/// their password-only sessions go on until they end and the next sign-in asks for
/// the second factor; with `immediately` the next page asks. Route rules always
/// apply at once. The record of the change survives a restart.
#[test]
fn a_stricter_mfa_default_reaches_sessions_when_configured() {
    let app = LegacyApp::start(&["alice:wonderland:admin", "bob:builder"]);
    let config = |mfa: &str, changes: &str| {
        format!(
            "session: {{ mfa_changes: {changes} }}\n\
             apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: {mfa}\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n\
             \x20   routes:\n      - {{ path: /admin, policy: mfa }}\n",
            app.url()
        )
    };
    // Which sessions are "from before the change" is decided by the clock, and is
    // tested in process with a clock the test sets (auth::mfa_changes). Here: the
    // reload and the restart carry it through the real binary, without waiting.
    let mut gateway = Gateway::start(&config("off", "next_sign_in"));
    let mut other = Browser::new(&gateway, HOST);
    assert_eq!(app_login(&mut other, "bob", "builder").location(), Some("/"));

    gateway.write_config(&config("required", "next_sign_in"));
    assert!(matches!(gateway.reload(), Reload::Applied));
    assert_eq!(
        other.get("/admin").location(),
        Some("/.portvakt/enrol"),
        "a route rule applies at once"
    );
    gateway.crash_and_restart();
    let mut later = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut later, "alice", "wonderland").location(),
        Some("/.portvakt/enrol"),
        "the next sign-in asks for enrolment"
    );

    gateway.write_config(&config("required", "immediately"));
    assert!(matches!(gateway.reload(), Reload::Applied));
    assert_eq!(
        other.get("/whoami").location(),
        Some("/.portvakt/enrol"),
        "asked at the next page"
    );
}

/// Another site can make a browser load the app's logout; that does not end the
/// gateway's session (the app still gets the request and decides for its own). The
/// browser's own click does.
#[test]
fn the_apps_logout_from_another_site_leaves_the_gateway_session() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: off\n\
         \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/")
    );
    let forged = browser.get_with("/logout", &[("sec-fetch-site", "cross-site")]);
    assert!(
        !forged.set_cookie_names().contains(&"portvakt".to_owned()),
        "{:?}",
        forged.headers
    );
    assert_eq!(
        browser.get("/whoami").status,
        200,
        "still signed in at the gateway"
    );
    let own = browser.get_with("/logout", &[("sec-fetch-site", "same-origin")]);
    assert!(own.set_cookie_names().contains(&"portvakt".to_owned()));
    assert_eq!(browser.get("/whoami").location(), Some("/login"));
}

/// A key rotation (`key_file` new, `previous_key_file` old) keeps everyone signed
/// in and publishes both keys; `portvakt keys reseal` seals the authenticators'
/// secrets under the new key, after which the old key can go: its sessions end (a
/// sign-in again, never an error) and the authenticator still signs in.
#[test]
fn a_key_rotation_keeps_sessions_and_authenticators() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let keys = tempfile::tempdir().unwrap();
    let (old, new) = (keys.path().join("old.key"), keys.path().join("new.key"));
    for path in [&old, &new] {
        let made = std::process::Command::new(env!("CARGO_BIN_EXE_portvakt"))
            .args(["keys", "generate", "--out"])
            .arg(path)
            .output()
            .unwrap();
        assert!(made.status.success());
    }
    let config = |keys: String| {
        format!(
            "{keys}apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            app.url()
        )
    };
    let mut gateway = Gateway::start(&config(format!("key_file: {}\n", old.display())));
    let (mut browser, (secret, _, _)) = signed_in_with_an_app(&gateway, "alice", "wonderland");
    assert_eq!(browser.get("/whoami").status, 200);

    gateway.write_config(&config(format!(
        "key_file: {}\nprevious_key_file: {}\n",
        new.display(),
        old.display()
    )));
    gateway.crash_and_restart();
    assert_eq!(
        browser.get("/whoami").status,
        200,
        "still signed in after the rotation"
    );
    let jwks: serde_json::Value = serde_json::from_str(&browser.get("/.portvakt/jwks.json").body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    let resealed = gateway.cli(&["keys", "reseal"]);
    assert!(resealed.contains("1 secret(s) sealed again"), "{resealed}");

    gateway.write_config(&config(format!("key_file: {}\n", new.display())));
    gateway.crash_and_restart();
    assert_eq!(
        browser.get("/whoami").location(),
        Some("/login"),
        "signed out, no error"
    );
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    let passed = browser.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!(
        passed.status, 302,
        "the authenticator works under the new key: {}",
        passed.body
    );
}

/// A session is good for the app it was signed in to only: its cookie, carried to
/// another app's host, names no session there.
#[test]
fn a_session_cookie_carried_to_another_app_is_no_session_there() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {url}\n    mfa: off\n\
         \x20   login: {{ path: /login, username_field: username }}\n\
         \x20 payroll:\n    hosts: [payroll.test]\n    upstream: {url}\n    mfa: off\n\
         \x20   login: {{ path: /login, username_field: username }}\n",
        url = app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/")
    );
    assert_eq!(browser.get("/whoami").status, 200);
    let mut carried = Browser::new(&gateway, "payroll.test");
    carried.cookies = browser.cookies.clone();
    carried.cookies.retain(|name, _| name.starts_with("portvakt"));
    assert!(!carried.cookies.is_empty(), "the gateway's session cookie");
    assert_eq!(
        carried.get("/whoami").location(),
        Some("/login"),
        "signed out at the other app"
    );
}

/// An app that names the signed-in user's address in its login answer
/// (`login.email_header`): codes go there with no users file and nothing typed; a
/// value that is no address is ignored.
#[test]
fn the_apps_login_answer_can_give_the_address_for_codes() {
    let app = LegacyApp::start(&["bob:builder::bob@example.com", "carol:cheese::not an address"]);
    let gateway = Gateway::start(&format!(
        "email: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
         second_factor: {{ email: second_factor }}\napps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n\
         \x20   login: {{ path: /login, username_field: username, email_header: X-Account-Email }}\n",
        app.url()
    ));
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "bob", "builder").location(),
        Some("/.portvakt/verify"),
        "an address to send a code to"
    );
    let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
    browser.post("/.portvakt/email/send", &[("csrf", &csrf)]);
    let mail = std::fs::read_to_string(gateway.config_path().with_file_name("mail.log")).unwrap();
    assert!(mail.contains("To: bob@example.com"), "{mail}");
    let code = last_mailed_code(&gateway);
    let done = browser.post("/.portvakt/email", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(done.status, 302);
    let audit = gateway.cli(&["audit", "--user", "bob", "--json"]);
    assert!(audit.contains("\"email_from_app\""), "{audit}");
    assert!(
        !audit.contains("bob@example.com"),
        "the audit trail holds no address"
    );

    let mut other = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut other, "carol", "cheese").location(),
        Some("/.portvakt/enrol"),
        "no address taken: an app must be enrolled"
    );
}

/// A user with no address gives and confirms one while enrolling: where e-mailed
/// codes may stand alone, that code is their way in; where they are a fallback, the
/// app is still to be set up and the address is offered on the verification page.
#[test]
fn an_address_is_given_and_confirmed_while_enrolling() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let no_address = "users:\n  alice: { groups: [staff] }\n";

    let gateway = email_gateway_with_users(&app, "second_factor", no_address);
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/enrol")
    );
    let page = browser.get("/.portvakt/enrol");
    assert!(page.body.contains("No authenticator app?"), "{}", page.body);
    let csrf = page.input("csrf").unwrap();
    let bad = browser.post(
        "/.portvakt/enrol/email",
        &[("csrf", &csrf), ("address", "not an address")],
    );
    assert_eq!(bad.status, 422);
    let sent = browser.post(
        "/.portvakt/enrol/email",
        &[("csrf", &csrf), ("address", "alice@example.com")],
    );
    assert_eq!(sent.location(), Some("/.portvakt/enrol/email"));
    assert!(browser
        .get("/.portvakt/enrol/email")
        .body
        .contains("a•••@example.com"));
    let wrong = browser.post(
        "/.portvakt/enrol/email/confirm",
        &[("csrf", &csrf), ("code", "00000000")],
    );
    assert_eq!(wrong.status, 422, "a wrong code is refused");
    let code = last_mailed_code(&gateway);
    let released = browser.post(
        "/.portvakt/enrol/email/confirm",
        &[("csrf", &csrf), ("code", &code)],
    );
    assert_eq!(released.status, 302, "the app's login answer is released");
    assert!(browser.cookies.contains_key("sessionid"));
    assert_eq!(browser.get("/whoami").status, 200);
    browser.get("/logout");
    assert_eq!(
        app_login(&mut browser, "alice", "wonderland").location(),
        Some("/.portvakt/verify"),
        "the next sign-in asks for an e-mailed code"
    );

    let gateway = email_gateway_with_users(&app, "fallback", no_address);
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let page = browser.get("/.portvakt/enrol");
    assert!(page.body.contains("You can also give your e-mail address"));
    let csrf = page.input("csrf").unwrap();
    browser.post(
        "/.portvakt/enrol/email",
        &[("csrf", &csrf), ("address", "alice@example.com")],
    );
    let code = last_mailed_code(&gateway);
    let back = browser.post(
        "/.portvakt/enrol/email/confirm",
        &[("csrf", &csrf), ("code", &code)],
    );
    assert_eq!(
        back.location(),
        Some("/.portvakt/enrol"),
        "the app is still to be set up"
    );
    assert!(!browser.cookies.contains_key("sessionid"), "nothing released yet");
    assert!(!browser.get("/.portvakt/enrol").body.contains("You can also give"));
    enrol(&mut browser);
    press_continue(&mut browser);
    browser.get("/logout");
    app_login(&mut browser, "alice", "wonderland");
    assert!(browser.get("/.portvakt/verify").body.contains("a•••@example.com"));
}
