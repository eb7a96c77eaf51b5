//! Unusual sign-ins on an app that asks no second factor: a sign-in from a
//! browser or a network the user has not signed in from lately is withheld until
//! a code e-mailed to the user comes back (as Zoom does for users without 2FA).

use super::harness::{write_country_database, Browser, Gateway, LegacyApp, Page};
use super::HOST;

fn gateway(app: &LegacyApp) -> Gateway {
    Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\ntrusted_proxies: [127.0.0.1/32]\n\
             email: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
             second_factor: {{ unusual_sign_in: {{ signals: [browser, network], remember: 30d }} }}\n\
             apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: off\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            app.url()
        ),
        &[(
            "users.yaml",
            "users:\n  alice: { email: alice@example.com }\n  bob: {}\n",
        )],
    )
}

/// Signs in on the app's form from `from` (the address a trusted proxy names).
fn sign_in(browser: &mut Browser, user: &str, password: &str, from: &str) -> Page {
    let forwarded = [("x-forwarded-for", from)];
    let form = browser.get_with("/login", &forwarded);
    let csrf = form.input("csrf_token").unwrap();
    browser.post_with(
        "/login",
        &[("csrf_token", &csrf), ("username", user), ("password", password)],
        &forwarded,
    )
}

/// The last code mailed, from the development mail file.
fn last_code(gateway: &Gateway) -> String {
    let mail = std::fs::read_to_string(gateway.config_path().with_file_name("mail.log")).unwrap();
    let at = mail.rfind("code").expect("a code was mailed");
    mail[at..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() >= 6)
        .unwrap()
        .to_owned()
}

const HOME: &str = "192.0.2.10";

#[test]
fn a_sign_in_from_a_new_browser_or_network_is_confirmed_with_an_emailed_code() {
    let app = LegacyApp::start(&["alice:wonderland", "bob:builder"]);
    let gateway = gateway(&app);

    // The first sign-in on record sets what is usual: it passes.
    let mut laptop = Browser::new(&gateway, HOST);
    let first = sign_in(&mut laptop, "alice", "wonderland", HOME);
    assert_eq!(
        (first.status, first.location()),
        (302, Some("/")),
        "{}",
        first.body
    );
    assert!(laptop.cookies.contains_key("portvakt-browser"));
    laptop.get_with("/logout", &[("x-forwarded-for", HOME)]);
    assert_eq!(
        sign_in(&mut laptop, "alice", "wonderland", HOME).status,
        302,
        "the same browser and network"
    );

    // Another browser: the app's session is withheld until the e-mailed code.
    let mut stranger = Browser::new(&gateway, HOST);
    let held = sign_in(&mut stranger, "alice", "wonderland", HOME);
    assert_eq!(
        (held.status, held.location()),
        (303, Some("/.portvakt/confirm-sign-in"))
    );
    assert_eq!(
        held.set_cookie_names(),
        ["portvakt-challenge"],
        "no app cookie yet"
    );
    let page = stranger.get("/.portvakt/confirm-sign-in");
    assert!(
        page.body
            .contains("a browser or a network you have not signed in from"),
        "{}",
        page.body
    );
    assert!(page.body.contains("a•••@example.com"));
    let code = last_code(&gateway);
    let csrf = page.input("csrf").unwrap();
    let wrong = stranger.post(
        "/.portvakt/confirm-sign-in",
        &[("csrf", &csrf), ("code", "000000")],
    );
    assert_eq!(wrong.status, 422);
    let released = stranger.post("/.portvakt/confirm-sign-in", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(released.status, 302, "the app's own answer: {}", released.body);
    assert!(released.set_cookie_names().contains(&"sessionid".to_owned()));
    let echo = stranger.get_with("/whoami", &[("x-forwarded-for", HOME)]).body;
    assert!(
        echo.contains("[\"x-portvakt-method\",\"password\"]"),
        "a password session: {echo}"
    );
    // Confirmed once, this browser is known.
    stranger.get_with("/logout", &[("x-forwarded-for", HOME)]);
    assert_eq!(sign_in(&mut stranger, "alice", "wonderland", HOME).status, 302);

    // A known browser from a network never seen: asked again; the old code is used.
    let travelling = sign_in(&mut laptop, "alice", "wonderland", "198.51.100.7");
    assert_eq!(travelling.location(), Some("/.portvakt/confirm-sign-in"));
    let page = laptop.get("/.portvakt/confirm-sign-in");
    let csrf = page.input("csrf").unwrap();
    let replayed = laptop.post("/.portvakt/confirm-sign-in", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(replayed.status, 422, "a code works once");
    // The same /24 is the same network.
    let mut neighbour = laptop.fork();
    neighbour.cookies.remove("portvakt-challenge");
    assert_eq!(
        sign_in(&mut neighbour, "alice", "wonderland", "192.0.2.200").status,
        302
    );

    // A user with no address to send a code to passes (and the log says so).
    let mut bobs = Browser::new(&gateway, HOST);
    assert_eq!(sign_in(&mut bobs, "bob", "builder", HOME).status, 302);
    let mut bobs_other = Browser::new(&gateway, HOST);
    assert_eq!(sign_in(&mut bobs_other, "bob", "builder", HOME).status, 302);
    assert!(gateway.log().contains("no e-mail address to confirm it with"));
    assert!(gateway.log().contains("an unusual sign-in; withheld"));
}

/// With a GeoIP database, a sign-in from another country is unusual; another
/// network of the same country is not, where only the country counts.
#[test]
fn a_sign_in_from_another_country_is_confirmed_when_the_country_counts() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("countries.mmdb");
    write_country_database(
        &database,
        &[
            ("192.0.2.0/24", "SE"),
            ("203.0.113.0/24", "SE"),
            ("198.51.100.0/24", "NO"),
        ],
    );
    let app = LegacyApp::start(&["alice:wonderland"]);
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\ntrusted_proxies: [127.0.0.1/32]\n\
             email: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
             second_factor: {{ unusual_sign_in: {{ signals: [country], geoip: {} }} }}\n\
             apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: off\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            database.display(),
            app.url()
        ),
        &[("users.yaml", "users:\n  alice: { email: alice@example.com }\n")],
    );
    let mut browser = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut browser, "alice", "wonderland", "192.0.2.10").status,
        302,
        "baseline: SE"
    );
    let mut elsewhere_in_sweden = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut elsewhere_in_sweden, "alice", "wonderland", "203.0.113.5").status,
        302,
        "another network and browser, the same country"
    );
    let mut abroad = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut abroad, "alice", "wonderland", "198.51.100.7").location(),
        Some("/.portvakt/confirm-sign-in"),
        "Norway: not seen"
    );
    let page = abroad.get("/.portvakt/confirm-sign-in");
    let csrf = page.input("csrf").unwrap();
    let code = last_code(&gateway);
    assert_eq!(
        abroad
            .post("/.portvakt/confirm-sign-in", &[("csrf", &csrf), ("code", &code)])
            .status,
        302
    );
    let mut again = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut again, "alice", "wonderland", "198.51.100.99").status,
        302,
        "Norway is known now"
    );
    // An address the database does not place is a place of its own: not a way
    // around the rule.
    let mut unplaced = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut unplaced, "alice", "wonderland", "8.8.8.8").location(),
        Some("/.portvakt/confirm-sign-in")
    );
    let mut mapped = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut mapped, "alice", "wonderland", "::ffff:198.51.100.7").status,
        302,
        "an IPv4-mapped address is read as the IPv4 one (Norway, known)"
    );
}

/// A user who has no device yet, where the second factor is required: a sign-in
/// from a new place is confirmed by e-mail before a device may be enrolled, so a
/// stolen password alone cannot enrol the thief's phone.
#[test]
fn a_first_enrolment_from_a_new_place_is_confirmed_by_email_first() {
    // Whatever signals the rule names (the browser alone too), a first enrolment
    // is guarded by where it comes from.
    for signals in ["[network]", "[browser]"] {
        first_enrolment_from_a_new_place(signals);
    }
}

fn first_enrolment_from_a_new_place(signals: &str) {
    let app = LegacyApp::start(&["alice:wonderland"]);
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\ntrusted_proxies: [127.0.0.1/32]\n\
             email: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
             second_factor: {{ unusual_sign_in: {{ signals: {signals} }} }}\n\
             apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            app.url()
        ),
        &[("users.yaml", "users:\n  alice: { email: alice@example.com }\n")],
    );
    // Alice's first sign-in sets what is usual; she leaves before enrolling.
    let mut alice = Browser::new(&gateway, HOST);
    assert_eq!(
        sign_in(&mut alice, "alice", "wonderland", HOME).location(),
        Some("/.portvakt/enrol")
    );
    // A thief with the password, elsewhere: a code to alice's mailbox first.
    let mut thief = Browser::new(&gateway, HOST);
    let held = sign_in(&mut thief, "alice", "wonderland", "198.51.100.7");
    assert_eq!(held.location(), Some("/.portvakt/confirm-sign-in"));
    assert_eq!(
        thief.get("/.portvakt/enrol").location(),
        Some("/.portvakt/confirm-sign-in"),
        "no enrolment page"
    );
    let csrf = thief.get("/.portvakt/confirm-sign-in").input("csrf").unwrap();
    assert_eq!(
        thief
            .post(
                "/.portvakt/confirm-sign-in",
                &[("csrf", &csrf), ("code", "123456")]
            )
            .status,
        422
    );
    // Alice, travelling, confirms by e-mail and then enrols.
    let mut travelling = Browser::new(&gateway, HOST);
    sign_in(&mut travelling, "alice", "wonderland", "203.0.113.9");
    let csrf = travelling
        .get("/.portvakt/confirm-sign-in")
        .input("csrf")
        .unwrap();
    let code = last_code(&gateway);
    let next = travelling.post("/.portvakt/confirm-sign-in", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(next.location(), Some("/.portvakt/enrol"), "{}", next.body);
    assert_eq!(travelling.get("/.portvakt/enrol").status, 200);
}

/// The gateway's own login page is a login like the app's: the same gate, for a
/// password session and for a first enrolment; and the e-mailed codes a flood of
/// sign-ins can ask for are bounded (`email.max_per_hour`).
#[test]
fn the_gateway_login_is_gated_too_and_mail_is_bounded() {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let app = LegacyApp::start(&["unused:unused"]);
    let hash = argon2::Argon2::default()
        .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let users = format!(
        "users:\n  alice: {{ password: \"{hash}\", email: alice@example.com }}\n  \
         bob: {{ password: \"{hash}\", email: bob@example.com, groups: [staff] }}\n"
    );
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\ntrusted_proxies: [127.0.0.1/32]\n\
             email: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log, max_per_hour: 2 }}\n\
             second_factor: {{ unusual_sign_in: {{ signals: [network] }} }}\n\
             apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: {{ groups: [staff] }}\n    login: gateway\n",
            app.url()
        ),
        &[("users.yaml", &users)],
    );
    let gateway_sign_in = |browser: &mut Browser, user: &str, from: &str| -> Page {
        let forwarded = [("x-forwarded-for", from)];
        let form = browser.get_with("/.portvakt/login?return=/whoami", &forwarded);
        let csrf = form.input("csrf").unwrap();
        browser.post_with(
            "/.portvakt/login",
            &[
                ("csrf", &csrf),
                ("return", "/whoami"),
                ("username", user),
                ("password", "correct horse"),
            ],
            &forwarded,
        )
    };
    // alice (no second factor asked): her first sign-in sets what is usual.
    let mut home = Browser::new(&gateway, HOST);
    assert_eq!(
        gateway_sign_in(&mut home, "alice", HOME).location(),
        Some("/whoami")
    );
    let mut thief = Browser::new(&gateway, HOST);
    assert_eq!(
        gateway_sign_in(&mut thief, "alice", "203.0.113.5").location(),
        Some("/.portvakt/confirm-sign-in"),
        "a password session from a new network waits for the mailbox"
    );
    assert_eq!(
        thief
            .get_with("/whoami", &[("x-forwarded-for", "203.0.113.5")])
            .status,
        303
    );

    // bob (a second factor asked, no device yet): his first sign-in sets what is
    // usual; a thief elsewhere cannot enrol a phone without bob's mailbox.
    let mut bobs = Browser::new(&gateway, HOST);
    assert_eq!(
        gateway_sign_in(&mut bobs, "bob", HOME).location(),
        Some("/.portvakt/enrol")
    );
    let mut bobs_thief = Browser::new(&gateway, HOST);
    assert_eq!(
        gateway_sign_in(&mut bobs_thief, "bob", "198.51.100.7").location(),
        Some("/.portvakt/confirm-sign-in")
    );
    assert_eq!(
        bobs_thief.get("/.portvakt/enrol").location(),
        Some("/.portvakt/confirm-sign-in")
    );

    // Mail is bounded: showing the page sends a code, at most twice an hour for
    // alice; the third sign-in's page says none could be sent.
    let mails = |gateway: &Gateway| {
        std::fs::read_to_string(gateway.config_path().with_file_name("mail.log"))
            .unwrap_or_default()
            .matches("To: alice@example.com")
            .count()
    };
    thief.get("/.portvakt/confirm-sign-in");
    for _ in 0..3 {
        let mut again = Browser::new(&gateway, HOST);
        gateway_sign_in(&mut again, "alice", "203.0.113.5");
        again.get("/.portvakt/confirm-sign-in");
    }
    assert_eq!(mails(&gateway), 2, "max_per_hour for alice's address");
    assert!(gateway.log().contains("code budget is spent"));
}
