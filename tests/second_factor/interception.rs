//! Login interception against an attacker who holds the victim's password, in front
//! of the example app with the sign-in habits of real apps turned on. Whether the
//! victim's app session reached the attacker is asked of the app itself (its own
//! echo of who is signed in), not of the gateway.

use std::sync::Barrier;

use portvakt_legacy_app::Quirks;

use super::*;

const ACCOUNTS: &[&str] = &["alice:wonderland:admin", "mallory:evil"];

/// Who the app says the browser's cookies sign in, asked of the app directly.
fn app_says(app: &LegacyApp, browser: &Browser) -> Option<String> {
    let cookies: Vec<String> = browser.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let page = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", app.url()))
        .header("cookie", cookies.join("; "))
        .send()
        .unwrap()
        .text()
        .unwrap();
    Some(
        page.split("Welcome, <strong>")
            .nth(1)?
            .split("</strong>")
            .next()?
            .to_owned(),
    )
}

/// Fills in the app's login form from `form` (for its CSRF token) and posts it to
/// `target` with `fields` after the token.
fn post_login(browser: &mut Browser, form: &str, target: &str, fields: &[(&str, &str)]) -> Page {
    let csrf = browser.get(form).input("csrf_token").unwrap();
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    browser.post(target, &all)
}

fn gateway_with(app: &LegacyApp, login_extra: &str, routes: &str) -> Gateway {
    Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /login\n      username_field: username\n      logout_path: /logout\n\
         \x20     success: {{ status: [302], set_cookie: sessionid }}\n{login_extra}\
         \x20   routes:\n      - {{ path: /healthz, match: exact, policy: bypass }}\n{routes}",
        app.url()
    ))
}

#[test]
fn a_user_name_given_twice_is_refused_whatever_the_password() {
    let app = LegacyApp::start_with(
        ACCOUNTS,
        Quirks {
            last_value_wins: true,
            ..Quirks::default()
        },
    );
    let gateway = gateway_with(&app, "", "");
    // Mallory has her own authenticator: were the gateway to read her name, her
    // code would pass, and the app (reading the last name) would sign in alice.
    signed_in_with_an_app(&gateway, "mallory", "evil");
    // Bodies as an attacker writes them (no client library would).
    let attacks = [
        "username=mallory&username=alice",
        "username=mallory;username=alice",
        "username=mallory&Username=alice",
        "username=mallory&username%5B%5D=alice",
        "username=mallory&user%6Eame=alice",
    ];
    for attack in attacks {
        let mut outcomes = Vec::new();
        for password in ["wonderland", "guess"] {
            let mut attacker = Browser::new(&gateway, HOST);
            let csrf = attacker.get("/login").input("csrf_token").unwrap();
            let body = format!("csrf_token={csrf}&{attack}&password={password}");
            let page = attacker.post_body(
                "/login",
                "application/x-www-form-urlencoded",
                body.into_bytes(),
                &[],
            );
            assert_eq!(
                app_says(&app, &attacker),
                None,
                "{attack}: no app session reached the browser"
            );
            outcomes.push((page.status, page.location().map(str::to_owned)));
        }
        assert_eq!(
            outcomes[0],
            (303, Some("/.portvakt/sign-in-refused".to_owned())),
            "{attack}"
        );
        assert_eq!(
            outcomes[0], outcomes[1],
            "{attack}: right and wrong passwords alike"
        );
    }
    let mut attacker = Browser::new(&gateway, HOST);
    assert_eq!(attacker.get("/.portvakt/sign-in-refused").status, 400);
    // In the query and the body at once: the same.
    let mut attacker = Browser::new(&gateway, HOST);
    let page = post_login(
        &mut attacker,
        "/login",
        "/login?username=mallory",
        &[("username", "alice"), ("password", "wonderland")],
    );
    assert_eq!(page.location(), Some("/.portvakt/sign-in-refused"));
    assert_eq!(app_says(&app, &attacker), None);
}

#[test]
fn a_multipart_login_is_read_as_the_app_reads_it() {
    let app = LegacyApp::start_with(
        ACCOUNTS,
        Quirks {
            multipart: true,
            ..Quirks::default()
        },
    );
    let gateway = gateway_with(&app, "", "");
    signed_in_with_an_app(&gateway, "alice", "wonderland");
    let (_, (mallory_secret, _, _)) = signed_in_with_an_app(&gateway, "mallory", "evil");
    let mut attacker = Browser::new(&gateway, HOST);
    let csrf = attacker.get("/login").input("csrf_token").unwrap();
    // An urlencoded reader of this body finds mallory in the preamble; the app's
    // multipart parser skips the preamble and signs in alice.
    let body = format!(
        "&username=mallory&\r\n--XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf}\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nwonderland\r\n--XyZ--\r\n"
    );
    let page = attacker.post_body(
        "/login",
        "multipart/form-data; boundary=XyZ",
        body.into_bytes(),
        &[],
    );
    assert_eq!(
        page.location(),
        Some("/.portvakt/verify"),
        "alice's challenge: she has a device"
    );
    assert_eq!(app_says(&app, &attacker), None);
    let csrf = attacker.get("/.portvakt/verify").input("csrf").unwrap();
    let own_code = attacker.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&mallory_secret, 1))],
    );
    assert_eq!(own_code.status, 422, "mallory's authenticator is not alice's");
    assert_eq!(app_says(&app, &attacker), None);
    // A boundary that readers split differently (`"Y; z"` is `Y` to a naive one).
    let mut other = Browser::new(&gateway, HOST);
    let csrf = other.get("/login").input("csrf_token").unwrap();
    let body = format!(
        "--Y\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmallory\r\n--Y--\r\n\
         --Y; z\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf}\r\n\
         --Y; z\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
         --Y; z\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nwonderland\r\n--Y; z--\r\n"
    );
    let page = other.post_body(
        "/login",
        "multipart/form-data; boundary=\"Y; z\"",
        body.into_bytes(),
        &[],
    );
    assert_eq!(page.location(), Some("/.portvakt/sign-in-refused"));
    assert_eq!(app_says(&app, &other), None);
    // A body of a type the gateway does not read: refused, not guessed.
    let mut other = Browser::new(&gateway, HOST);
    let csrf = other.get("/login").input("csrf_token").unwrap();
    let text = format!("csrf_token={csrf}\r\nusername=alice\r\npassword=wonderland\r\n");
    let page = other.post_body("/login", "text/plain", text.into_bytes(), &[]);
    assert_eq!(page.location(), Some("/.portvakt/sign-in-refused"));
}

#[test]
fn an_app_that_signs_in_on_other_requests_is_held_back_too() {
    let quirks = Quirks {
        query_login: true,
        api_login: true,
        ..Quirks::default()
    };
    let app = LegacyApp::start_with(ACCOUNTS, quirks);
    let gateway = gateway_with(&app, "", "      - { path: /api/, policy: bypass }\n");
    let (mut mallory, _) = signed_in_with_an_app(&gateway, "mallory", "evil");
    // Credentials in the query of pages the gateway forwards without a session,
    // a second login endpoint, and a decoy name beside the app's own fields: none
    // says for certain whose session the app made, so none of it is released, not
    // even to a browser that passed its own second factor.
    let json = || br#"{"username":"alice","password":"wonderland"}"#.to_vec();
    for target in [
        "/healthz?u=alice&p=wonderland",
        "/login?u=alice&p=wonderland",
        "/healthz?u=alice&p=wonderland&username=mallory",
    ] {
        for browser in [&mut Browser::new(&gateway, HOST), &mut mallory.fork()] {
            let page = browser.get(target);
            assert_eq!(
                (page.status, page.location()),
                (303, Some("/login")),
                "{target}: sent to sign in"
            );
            assert_ne!(app_says(&app, browser).as_deref(), Some("alice"), "{target}");
        }
    }
    let page = mallory.get("/?u=alice&p=wonderland");
    assert_eq!(
        page.location(),
        Some("/login"),
        "no 'renewal' into another user's session"
    );
    let page = mallory.post_body("/api/login", "application/json", json(), &[]);
    assert_eq!(page.location(), Some("/login"));
    assert_eq!(
        app_says(&app, &mallory).as_deref(),
        Some("mallory"),
        "her own app session is untouched"
    );
    // Elsewhere the policy stops the request before the app sees it.
    let mut attacker = Browser::new(&gateway, HOST);
    assert_eq!(
        attacker.get("/admin/?u=alice&p=wonderland").location(),
        Some("/login")
    );
    assert_eq!(app_says(&app, &attacker), None);
    // A logout that hands out a session again passes without it.
    let out = attacker.get("/logout?u=alice&p=wonderland");
    assert_eq!(out.status, 303);
    assert_eq!(app_says(&app, &attacker), None);
}

/// Where the app can say whose session it made (`login.confirm`), a second login
/// endpoint is held back for that user's second factor and then released exactly;
/// a request that names someone else is dropped.
#[test]
fn a_confirmed_sign_in_elsewhere_waits_for_that_users_second_factor() {
    let quirks = Quirks {
        query_login: true,
        api_login: true,
        ..Quirks::default()
    };
    let app = LegacyApp::start_with(ACCOUNTS, quirks);
    let gateway = gateway_with(
        &app,
        "      confirm: { path: /api/me, json: /user }\n",
        "      - { path: /api/, policy: bypass }\n",
    );
    let (mut mallory, _) = signed_in_with_an_app(&gateway, "mallory", "evil");
    let json = || br#"{"username":"alice","password":"wonderland"}"#.to_vec();
    // Decoys: the request names mallory, the app signs in alice.
    for browser in [&mut Browser::new(&gateway, HOST), &mut mallory.fork()] {
        let page = browser.get("/healthz?u=alice&p=wonderland&username=mallory");
        assert_eq!(page.location(), Some("/login"));
        let page = browser.post_body("/api/login?username=mallory", "application/json", json(), &[]);
        assert_eq!(page.location(), Some("/login"), "named twice");
        assert_ne!(app_says(&app, browser).as_deref(), Some("alice"));
    }
    // Mallory's own session does not turn into alice's: alice's second factor is asked.
    let page = mallory.get("/?u=alice&p=wonderland");
    assert_eq!(
        page.location(),
        Some("/.portvakt/enrol"),
        "alice has no device yet: her enrolment"
    );
    assert_ne!(app_says(&app, &mallory).as_deref(), Some("alice"));
    let mut browser = Browser::new(&gateway, HOST);
    let page = browser.post_body("/api/login", "application/json", json(), &[]);
    assert_eq!(page.location(), Some("/.portvakt/enrol"));
    assert_eq!(app_says(&app, &browser), None);
    enrol(&mut browser);
    let released = press_continue(&mut browser);
    assert_eq!(released.status, 200);
    let body: serde_json::Value = serde_json::from_str(&released.body).expect("the app's JSON");
    assert_eq!(
        (&body["ok"], &body["user"]),
        (&serde_json::json!(true), &serde_json::json!("alice"))
    );
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        released
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(released.body.len().to_string().as_str()),
        "the app's answer, whole"
    );
    assert_eq!(app_says(&app, &browser).as_deref(), Some("alice"));
    // The app's logout deletes its cookie: that always passes.
    let out = browser.get("/logout");
    assert!(
        out.set_cookie_names().contains(&"sessionid".to_owned()),
        "{:?}",
        out.headers
    );
    assert_eq!(app_says(&app, &browser), None);
}

/// HTTP/2 needs no length header for a body, and clients may ask for 100 Continue:
/// neither hides a body from the reader.
#[test]
fn bodies_are_read_over_http2_and_after_100_continue() {
    let app = LegacyApp::start_with(
        ACCOUNTS,
        Quirks {
            last_value_wins: true,
            ..Quirks::default()
        },
    );
    let gateway = gateway_with(&app, "", "");
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .resolve(HOST, std::net::SocketAddr::from(([127, 0, 0, 1], gateway.port)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = h2
        .post(gateway.url(HOST, "/login?username=mallory"))
        .header("content-type", "application/json")
        .body(r#"{"username":"alice","password":"wonderland"}"#)
        .send()
        .unwrap();
    assert_eq!(login.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        login.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/.portvakt/sign-in-refused"),
        "the body was read: the name is given twice"
    );
    // A login that asks for 100 Continue is judged on its final answer.
    let mut browser = Browser::new(&gateway, HOST);
    let csrf = browser.get("/login").input("csrf_token").unwrap();
    let cookies: Vec<String> = browser.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = format!("csrf_token={csrf}&username=alice&password=wonderland");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {HOST}\r\nCookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        cookies.join("; "),
        body.len()
    );
    let (_, response) = gateway.raw(request.as_bytes());
    assert!(response.contains("location: /.portvakt/enrol"), "{response}");
}

#[test]
fn front_controller_pages_get_their_routes_policy() {
    let quirks = Quirks {
        front_controller: true,
        query_login: true,
        ..Quirks::default()
    };
    let app = LegacyApp::start_with(ACCOUNTS, quirks);
    let gateway = Gateway::start(&format!(
        "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   login:\n      path: /index.php\n      query: {{ do: login }}\n      username_field: username\n\
         \x20     logout_path: /index.php?do=logout\n      session_cookie: sessionid\n",
        app.url()
    ));
    let mut attacker = Browser::new(&gateway, HOST);
    for target in [
        "/index.php?page=admin",
        "/index.php",
        "/index.php?do=login&page=admin&do=x",
        "/index.php?do=login&page=admin",
        "/index.php?do=login&%20do=show",
        "/index.php?do=login;page=admin",
    ] {
        let page = attacker.get(target);
        assert_eq!(
            page.location(),
            Some("/index.php?do=login"),
            "{target}: not the login, so signed-in only"
        );
    }
    let page = attacker.get("/index.php?page=admin&u=alice&p=wonderland");
    assert_eq!(page.location(), Some("/index.php?do=login"));
    assert_eq!(app_says(&app, &attacker), None);
    // The login itself passes to the app and is held back as usual.
    let form = attacker.get("/index.php?do=login");
    assert_eq!(form.status, 200);
    let csrf = form.input("csrf_token").unwrap();
    let page = attacker.post(
        "/index.php?do=login",
        &[
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    );
    assert_eq!(page.location(), Some("/.portvakt/enrol"));
    assert_eq!(app_says(&app, &attacker), None);
    // This app's login answer has no body: it is released whole all the same.
    enrol(&mut attacker);
    let released = press_continue(&mut attacker);
    assert_eq!((released.status, released.location()), (302, Some("/")));
    assert_eq!(released.body, "");
    assert_eq!(app_says(&app, &attacker).as_deref(), Some("alice"));
    assert_eq!(
        attacker.get("/index.php?page=admin").status,
        200,
        "now signed in at both"
    );
    // A login whose body gives the script's switch another value is not read as one.
    let mut switched = Browser::new(&gateway, HOST);
    let page = post_login(
        &mut switched,
        "/index.php?do=login",
        "/index.php?do=login",
        &[("do", "admin"), ("username", "alice"), ("password", "wonderland")],
    );
    assert_eq!(page.location(), Some("/.portvakt/sign-in-refused"));
    assert_eq!(app_says(&app, &switched), None);
    // A POST to the same script that is not the login gets the policy too.
    let mut other = Browser::new(&gateway, HOST);
    let page = post_login(
        &mut other,
        "/index.php?do=login",
        "/index.php?page=admin",
        &[("username", "alice"), ("password", "wonderland")],
    );
    assert_eq!(page.location(), Some("/index.php?do=login"));
    assert_eq!(app_says(&app, &other), None);
}

#[test]
fn parallel_wrong_codes_never_outrun_the_lockout() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = gateway_with(&app, "", "");
    signed_in_with_an_app(&gateway, "alice", "wonderland");
    // Twenty challenges in progress, 400 wrong codes sent at once across them.
    let challenges: Vec<(Browser, String)> = (0..20)
        .map(|_| {
            let mut browser = Browser::new(&gateway, HOST);
            assert_eq!(
                app_login(&mut browser, "alice", "wonderland").location(),
                Some("/.portvakt/verify")
            );
            let csrf = browser.get("/.portvakt/verify").input("csrf").unwrap();
            (browser, csrf)
        })
        .collect();
    let start = Barrier::new(400);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..400)
            .map(|i| {
                let (browser, csrf) = &challenges[i % challenges.len()];
                let mut tab = browser.fork();
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    tab.post("/.portvakt/verify", &[("csrf", csrf), ("code", "000000")])
                        .status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 422).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 400, "{statuses:?}");
    assert!(checked <= 10, "{checked} codes were checked; max_failures is 10");
}

#[test]
fn a_locked_account_answers_right_and_wrong_passwords_alike() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = gateway_with(&app, "", "");
    let gateway_locked = {
        signed_in_with_an_app(&gateway, "alice", "wonderland");
        for _ in 0..10 {
            let mut guesser = Browser::new(&gateway, HOST);
            app_login(&mut guesser, "alice", "wonderland");
            let csrf = guesser.get("/.portvakt/verify").input("csrf").unwrap();
            guesser.post("/.portvakt/verify", &[("csrf", &csrf), ("code", "000000")]);
        }
        &gateway
    };
    let mut right = Browser::new(gateway_locked, HOST);
    let mut wrong = Browser::new(gateway_locked, HOST);
    let a = app_login(&mut right, "alice", "wonderland");
    let b = app_login(&mut wrong, "alice", "not-the-password");
    assert_eq!((a.status, a.location()), (303, Some("/.portvakt/locked")));
    assert_eq!((b.status, b.location()), (a.status, a.location()));
    assert_eq!(a.set_cookie_names(), b.set_cookie_names());
    assert_eq!(app_says(&app, &right), None);
    assert_eq!(right.get("/.portvakt/locked").status, 429);
}

#[test]
fn the_released_login_answer_is_the_apps_exactly() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = gateway_with(&app, "", "");
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    enrol(&mut browser);
    let released = press_continue(&mut browser);
    assert_eq!(released.status, 302);
    assert_eq!(released.location(), Some("/"));
    assert_eq!(released.body, "<a href=\"/\">Signed in; continue</a>");
    assert_eq!(
        released
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("35")
    );
    assert_eq!(app_says(&app, &browser).as_deref(), Some("alice"));
}

#[test]
fn cross_site_posts_to_gateway_forms_are_refused() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = gateway_with(&app, "", "");
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let page = browser.get("/.portvakt/enrol");
    let csrf = page.input("csrf").unwrap();
    for headers in [
        &[("origin", "http://evil.example")][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
    ] {
        let refused = browser.post_with(
            "/.portvakt/enrol",
            &[("csrf", &csrf), ("code", "000000")],
            headers,
        );
        assert_eq!(refused.status, 403, "{headers:?}");
    }
    let own = format!("http://{HOST}:{}", gateway.port);
    let same = browser.post_with(
        "/.portvakt/enrol",
        &[("csrf", &csrf), ("code", "000000")],
        &[("origin", &own), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(same.status, 422, "checked, and wrong");
}

#[test]
fn double_submitted_enrolments_store_one_device() {
    let app = LegacyApp::start(ACCOUNTS);
    let gateway = gateway_with(&app, "", "");
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    // A second sign-in of alice, in another browser, begun before she enrols.
    let mut other = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut other, "alice", "wonderland").location(),
        Some("/.portvakt/enrol")
    );
    let page = browser.get("/.portvakt/enrol");
    let csrf = page.input("csrf").unwrap();
    let secret = secret_on(&page);
    let first = code(&secret, 0);
    let start = Barrier::new(5);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..5)
            .map(|_| {
                let mut tab = browser.fork();
                let (start, csrf, first) = (&start, &csrf, &first);
                scope.spawn(move || {
                    start.wait();
                    tab.post("/.portvakt/enrol", &[("csrf", csrf), ("code", first)])
                        .status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(statuses, [200; 5], "each click shows the page the first led to");
    assert!(gateway.cli(&["users", "show", "alice"]).contains(" 1 device(s)"));
    // The other sign-in now verifies with that device instead of enrolling another.
    let moved = other.get("/.portvakt/enrol");
    assert_eq!(moved.location(), Some("/.portvakt/verify"));
    let csrf = other.get("/.portvakt/verify").input("csrf").unwrap();
    let passed = other.post(
        "/.portvakt/verify",
        &[("csrf", &csrf), ("code", &code(&secret, 1))],
    );
    assert_eq!(passed.status, 302, "{}", passed.body);
}

/// Where the gateway's reading of the login and the app's could still differ (here
/// on purpose: the gateway is told the wrong field), the app's own word on whose
/// session it made decides.
#[test]
fn the_app_confirms_whose_session_it_made() {
    let app = LegacyApp::start(ACCOUNTS);
    for confirm in [
        "{ path: /api/me, json: /user }",
        r#"{ path: /, pattern: 'Welcome, <strong>([^<]+)</strong>' }"#,
    ] {
        let gateway = Gateway::start(&format!(
            "apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
             \x20   login:\n      path: /login\n      username_field: login\n      confirm: {confirm}\n",
            app.url()
        ));
        for (named, expected) in [
            ("mallory", "/.portvakt/sign-in-refused"),
            ("Alice", "/.portvakt/enrol"),
        ] {
            let mut browser = Browser::new(&gateway, HOST);
            let page = post_login(
                &mut browser,
                "/login",
                "/login",
                &[
                    ("login", named),
                    ("username", "alice"),
                    ("password", "wonderland"),
                ],
            );
            assert_eq!(
                page.location(),
                Some(expected),
                "{confirm}: the request named {named}"
            );
            assert_eq!(app_says(&app, &browser), None);
        }
    }
}

/// An app that signs someone in beside its form (here by `?u=…&p=…`) puts an odd
/// session cookie on the login answer: refused the same way for right and wrong
/// passwords, and counted, so it is no oracle for the named user's password.
#[test]
fn a_login_answer_with_an_odd_session_cookie_is_refused_alike_and_counted() {
    let quirks = Quirks {
        query_login: true,
        ..Quirks::default()
    };
    let app = LegacyApp::start_with(ACCOUNTS, quirks);
    let gateway = gateway_with(&app, "", "");
    let attempt = |password: &str| {
        let mut browser = Browser::new(&gateway, HOST);
        let page = post_login(
            &mut browser,
            "/login",
            "/login?u=mallory&p=evil",
            &[("username", "alice"), ("password", password)],
        );
        assert_eq!(app_says(&app, &browser), None);
        (page.status, page.location().map(str::to_owned))
    };
    let wrong = attempt("guess");
    assert_eq!(wrong, (303, Some("/.portvakt/sign-in-refused".to_owned())));
    assert_eq!(attempt("wonderland"), wrong, "right and wrong alike");
    for _ in 0..8 {
        attempt("guess");
    }
    assert_eq!(
        attempt("wonderland").1.as_deref(),
        Some("/.portvakt/locked"),
        "each counted against alice: locked after max_failures"
    );
}
