//! App passwords: for clients that cannot show a page (WebDAV, git, scripts),
//! made on the security-info page, checked by the gateway, never a session.

use data_encoding::BASE64;

use super::harness::{Browser, Gateway, LegacyApp, Page};
use super::{app_login, enrol, press_continue, HOST};
use portvakt_legacy_app::Quirks;

fn credentials(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}").as_bytes()))
}

/// A client that keeps no cookies, sending `user`'s app password.
fn client_get(gateway: &Gateway, host: &str, path: &str, user: &str, password: &str) -> Page {
    let mut client = Browser::new(gateway, host);
    client.get_with(path, &[("authorization", &credentials(user, password))])
}

/// Makes an app password on the security-info page; the password shown once.
fn make(browser: &mut Browser, name: &str, own_password: Option<&str>) -> Result<String, Box<Page>> {
    let account = browser.get("/.portvakt/account");
    assert_eq!(account.status, 200, "{}", account.body);
    let csrf = account.input("csrf").expect("the page's forms");
    let mut form = vec![("csrf", csrf.as_str()), ("name", name)];
    if let Some(own) = own_password {
        form.push(("own_password", own));
    }
    let made = browser.post("/.portvakt/account/app-passwords", &form);
    made.body
        .split("<code class=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .map(str::to_owned)
        .ok_or_else(|| Box::new(made))
}

fn intranet(app: &LegacyApp) -> Gateway {
    Gateway::start(&format!(
        "admins: {{ users: [alice] }}\napps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
         \x20   app_passwords: true\n\
         \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n\
         \x20   routes:\n      - {{ path: /admin, policy: mfa, app_passwords: false }}\n\
         \x20     - {{ path: /reports, policy: mfa, max_age: 1h }}\n",
        app.url()
    ))
}

fn signed_in(gateway: &Gateway, user: &str, password: &str) -> Browser {
    let mut browser = Browser::new(gateway, HOST);
    app_login(&mut browser, user, password);
    enrol(&mut browser);
    press_continue(&mut browser);
    browser
}

#[test]
fn an_app_password_lets_its_client_in_as_its_user_and_opens_nothing_else() {
    let app = LegacyApp::start(&["alice:wonderland:admin", "bob:builder"]);
    let gateway = intranet(&app);
    let mut alice = signed_in(&gateway, "alice", "wonderland");
    let password = make(&mut alice, "Thunderbird on laptop", None).expect("made");
    assert_eq!(password.len(), 19, "{password}");

    // The client gets in as alice, by the identity headers; the app never sees
    // the app password, and no session or cookie comes back.
    let page = client_get(&gateway, HOST, "/whoami", "alice", &password);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"["x-portvakt-user","alice"]"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"["x-portvakt-method","app_password"]"#));
    assert!(!page.body.contains("authorization") && !page.body.contains(&password));
    assert!(page.set_cookie_names().is_empty());
    // Typed loosely, as people do.
    let loose = password.replace('-', " ").to_uppercase();
    assert_eq!(client_get(&gateway, HOST, "/whoami", "ALICE", &loose).status, 200);

    // Beside a session, the session decides, and the app never sees the app password.
    let beside = alice.get_with("/whoami", &[("authorization", &credentials("alice", &password))]);
    assert_eq!(beside.status, 200);
    assert!(!beside.body.contains("authorization"), "{}", beside.body);

    // Never the gateway's pages, nor the admin: no session is made from it.
    let account = client_get(&gateway, HOST, "/.portvakt/account", "alice", &password);
    assert_ne!(account.status, 200);
    assert!(!account.body.contains("Thunderbird"));
    let admin = client_get(&gateway, HOST, "/.portvakt/admin", "alice", &password);
    assert_ne!(admin.status, 200);
    // Not where a route refuses them, nor where a recent second factor is asked.
    let refused = client_get(&gateway, HOST, "/admin", "alice", &password);
    assert_eq!(refused.status, 403, "{}", refused.body);
    // It carries no second factor of its own: a route that asks for a recent one
    // refuses it, even the moment it is made.
    assert_eq!(
        client_get(&gateway, HOST, "/reports", "alice", &password).status,
        403
    );
    // Not bob's, and not another app password.
    let as_bob = client_get(&gateway, HOST, "/whoami", "bob", &password);
    assert_eq!(as_bob.status, 401);
    assert!(as_bob.headers.contains_key("www-authenticate"));
    assert_eq!(
        client_get(&gateway, HOST, "/whoami", "alice", "abcd-efgh-jkmn-pqrs").status,
        401
    );

    // Listed with its last use; alice removes it, and it opens nothing at once.
    let account = alice.get("/.portvakt/account");
    assert!(account.body.contains("Thunderbird on laptop"), "{}", account.body);
    assert!(!account.body.contains(&password), "shown once only");
    let id = account
        .body
        .split("action=\"/.portvakt/account/app-passwords/revoke\"")
        .nth(1)
        .and_then(|form| form.split("name=\"id\" value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let csrf = account.input("csrf").unwrap();
    alice.post(
        "/.portvakt/account/app-passwords/revoke",
        &[("csrf", &csrf), ("id", &id)],
    );
    assert_eq!(
        client_get(&gateway, HOST, "/whoami", "alice", &password).status,
        401
    );
    let trail = gateway.cli(&["audit", "--user", "alice"]);
    for event in [
        "app_password_created",
        "app_password_used",
        "app_password_revoked",
    ] {
        assert!(trail.contains(event), "{event}: {trail}");
    }
}

/// Guessing app passwords is charged like guessing passwords: a burst in
/// parallel gets no more checks than the lockout allows.
#[test]
fn guessed_app_passwords_count_toward_the_lockout() {
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = intranet(&app);
    let mut alice = signed_in(&gateway, "alice", "wonderland");
    let password = make(&mut alice, "git", None).expect("made");
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let url = gateway.url(HOST, "/whoami");
            let client = gateway.client(&[HOST]);
            let guess = format!("abcd-efgh-jkmn-{}", ["pqrs", "pqrt", "pqrv", "pqrw"][i % 4]);
            std::thread::spawn(move || {
                client
                    .get(url)
                    .header("authorization", credentials("alice", &guess))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    assert!(statuses.contains(&429), "locked within the burst: {statuses:?}");
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert_eq!(
        client_get(&gateway, HOST, "/whoami", "alice", &password).status,
        429,
        "locked for the right one too"
    );
}

/// On a Basic app the app still needs the user's own password: checked with the
/// app when the app password is made, sent on for its client, and the page says
/// when the app stops taking it.
#[test]
fn on_a_basic_app_the_users_own_password_goes_on_under_the_app_password() {
    let quirks = Quirks {
        basic: true,
        ..Quirks::default()
    };
    let app = LegacyApp::start_with(&["alice:wonderland"], quirks);
    const CONSOLE: &str = "console.test";
    let config = |upstream: &str| {
        format!(
            "apps:\n  console:\n    hosts: [{CONSOLE}]\n    upstream: {upstream}\n    mfa: required\n    login: basic\n\
             \x20   app_passwords: true\n"
        )
    };
    let mut gateway = Gateway::start(&config(&app.url()));
    let mut alice = Browser::new(&gateway, CONSOLE);
    alice.get_with(
        "/whoami",
        &[("authorization", &credentials("alice", "wonderland"))],
    );
    enrol(&mut alice);
    press_continue(&mut alice);

    let wrong = make(&mut alice, "davfs", Some("looking-glass")).expect_err("a wrong own password");
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    let password = make(&mut alice, "davfs", Some("wonderland")).expect("made");
    let trail = gateway.cli(&["audit", "--user", "alice"]);
    assert!(
        trail.contains("app_password_own"),
        "a wrong own password is a failed sign-in: {trail}"
    );

    let page = client_get(&gateway, CONSOLE, "/whoami", "alice", &password);
    assert_eq!(page.status, 200, "{}", page.body);
    let sent = credentials("alice", "wonderland");
    assert!(
        page.body.contains(&sent),
        "the app gets alice's own password: {}",
        page.body
    );
    assert!(!page.body.contains(&password));
    assert!(
        page.set_cookie_names().is_empty(),
        "no app session for the client"
    );

    // Alice's password at the app changes: the app refuses it, and her security
    // info says so.
    let changed = LegacyApp::start_with(&["alice:queen-of-hearts"], quirks);
    gateway.write_config(&config(&changed.url()));
    gateway.reload();
    assert_eq!(
        client_get(&gateway, CONSOLE, "/whoami", "alice", &password).status,
        401
    );
    let account = alice.get("/.portvakt/account");
    assert!(
        account.body.contains("The app no longer takes your password"),
        "{}",
        account.body
    );
}
