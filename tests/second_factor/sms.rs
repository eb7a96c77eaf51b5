//! Codes by text message through the real gateway and a loopback webhook that
//! stands in for the SMS provider: the request it gets is the one configured,
//! numbers are confirmed before use, codes work once, and a provider that fails
//! gives the user a clear message and the log its cause.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::harness::{Browser, Gateway, LegacyApp};
use super::{app_login, code, enrol, press_continue, HOST};

/// One request the provider received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The code in the message's text.
    fn code(&self) -> String {
        let sent: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        let text = sent["text"].as_str().unwrap();
        text.rsplit(' ').next().unwrap().to_owned()
    }
}

/// An SMS provider on a loopback port that answers every message with `status`.
struct Provider {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Provider {
    fn start(status: u16, answer: &'static str) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    headers.push((name.to_owned(), value.trim().to_owned()));
                }
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                log.lock().unwrap().push(Received {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Provider { port, received }
    }

    fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn gateway_with_sms(app: &LegacyApp, provider: &Provider) -> Gateway {
    gateway_with_sms_budget(app, provider, 5)
}

fn gateway_with_sms_budget(app: &LegacyApp, provider: &Provider, per_hour: u32) -> Gateway {
    Gateway::start_with_files(
        &format!(
            "sms:\n  webhook:\n    url: http://127.0.0.1:{}/v1/send?account=42\n    headers:\n      \
             Authorization: {{ file: sms-token }}\n      Content-Type: application/json\n    \
             body: '{{\"to\": \"{{to}}\", \"text\": \"{{message}}\"}}'\n  resend_after: 60s\n  \
             max_per_hour: {per_hour}\n  countries: [\"+46\", \"+47\"]\n\
             second_factor: {{ issuer: Intranet, sms: fallback }}\n\
             apps:\n  intranet:\n    hosts: [{HOST}]\n    upstream: {}\n    mfa: required\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            provider.port,
            app.url()
        ),
        &[("sms-token", "Bearer pr0vider-secret\n")],
    )
}

#[test]
fn a_number_confirmed_on_the_security_info_page_gets_codes_by_text_message_that_work_once() {
    let provider = Provider::start(202, "{\"queued\": true}");
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_with_sms(&app, &provider);
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    let (secret, _, _) = enrol(&mut browser);
    press_continue(&mut browser);

    // Before the first second factor, the verification page offers no text message.
    let account = browser.get("/.portvakt/account");
    assert!(
        account.body.contains("Phone number for codes by text message"),
        "{}",
        account.body
    );
    assert!(account.body.contains("least safe way in"));
    let csrf = account.input("csrf").unwrap();
    let unreadable = browser.post(
        "/.portvakt/account/phone",
        &[("csrf", &csrf), ("address", "070-123 45 67")],
    );
    assert_eq!(unreadable.status, 422);
    assert!(unreadable.body.contains("with its country code"));
    // A premium or far-away number outside sms.countries is refused the same way.
    let elsewhere = browser.post(
        "/.portvakt/account/phone",
        &[("csrf", &csrf), ("address", "+882 13 000 000")],
    );
    assert_eq!(elsewhere.status, 422);
    assert!(
        provider.messages().is_empty(),
        "nothing sent to a number not understood"
    );

    let sent = browser.post(
        "/.portvakt/account/phone",
        &[("csrf", &csrf), ("address", "+46 70 123 45 67")],
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("+•••••••••67"), "shown masked: {}", sent.body);
    assert!(!sent.body.contains("+46701234567"));
    let messages = provider.messages();
    assert_eq!(messages.len(), 1);
    let first = &messages[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/v1/send?account=42")
    );
    assert_eq!(first.header("authorization"), Some("Bearer pr0vider-secret"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["to"], "+46701234567");
    assert_eq!(
        body["text"],
        format!("Intranet: your sign-in code is {}", first.code())
    );
    assert!(
        !gateway.log().contains(&first.code()) && !gateway.log().contains("pr0vider-secret"),
        "neither the code nor the provider's secret is logged"
    );

    let confirm = sent.input("csrf").unwrap();
    let wrong = browser.post(
        "/.portvakt/account/phone/confirm",
        &[("csrf", &confirm), ("code", "000000")],
    );
    assert_eq!(wrong.status, 422);
    let confirmed = browser.post(
        "/.portvakt/account/phone/confirm",
        &[("csrf", &confirm), ("code", &first.code())],
    );
    assert_eq!(confirmed.location(), Some("/.portvakt/account"));
    let account = browser.get("/.portvakt/account");
    assert!(
        account.body.contains("<td>Phone</td><td>+•••••••••67</td>"),
        "{}",
        account.body
    );
    let shown = gateway.cli(&["users", "show", "alice"]);
    assert!(shown.contains("phone for text codes: +•••••••••67"), "{shown}");

    // Next sign-in: "sign in another way" offers the number beside the app.
    browser.get("/logout");
    let mut later = Browser::new(&gateway, HOST);
    assert_eq!(
        app_login(&mut later, "alice", "wonderland").location(),
        Some("/.portvakt/verify")
    );
    let verify = later.get("/.portvakt/verify");
    assert!(
        verify.body.contains("Text a code to +•••••••••67"),
        "{}",
        verify.body
    );
    let token = verify.input("csrf").unwrap();
    let asked = later.post("/.portvakt/sms/send", &[("csrf", &token)]);
    assert_eq!(asked.location(), Some("/.portvakt/sms"));
    // Asking again at once sends nothing more.
    let again = later.post("/.portvakt/sms/send", &[("csrf", &token)]);
    assert!(
        again.body.contains("A code was sent a moment ago"),
        "{}",
        again.body
    );
    let messages = provider.messages();
    assert_eq!(messages.len(), 2, "one code for the sign-in");
    let texted = messages[1].code();
    assert_ne!(texted, first.code());
    let page = later.get("/.portvakt/sms");
    assert!(page.body.contains("Enter the code we texted you"));
    assert!(page.body.contains("+•••••••••67"));
    let released = later.post("/.portvakt/sms", &[("csrf", &token), ("code", &texted)]);
    assert_eq!(released.status, 302, "the app's login answer: {}", released.body);
    let echo = later.get("/whoami").body;
    assert!(echo.contains("[\"x-portvakt-method\",\"sms\"]"), "{echo}");

    // A text message is not enough to change the security info (a swapped SIM and
    // the password would add the thief's app): the app or a recovery code is asked
    // for, and no text is offered there.
    let csrf = later.get("/.portvakt/account").input("csrf").unwrap();
    let add = later.post(
        "/.portvakt/account/add-device",
        &[("csrf", &csrf), ("name", "Thief")],
    );
    assert_eq!(add.location(), Some("/.portvakt/verify"), "{}", add.body);
    let step_up = later.get("/.portvakt/verify");
    assert!(!step_up.body.contains("Text a code"), "{}", step_up.body);
    let token = step_up.input("csrf").unwrap();
    assert_eq!(
        later.post("/.portvakt/sms/send", &[("csrf", &token)]).location(),
        Some("/.portvakt/verify")
    );
    assert_eq!(
        provider.messages().len(),
        2,
        "no text for a change of the security info"
    );

    // The code worked once: a sign-in that sends it again is refused.
    let mut thief = Browser::new(&gateway, HOST);
    app_login(&mut thief, "alice", "wonderland");
    let token = thief.get("/.portvakt/verify").input("csrf").unwrap();
    let replayed = thief.post("/.portvakt/sms", &[("csrf", &token), ("code", &texted)]);
    assert_ne!(replayed.status, 302);
    assert!(thief.get("/whoami").status != 200);

    // Removed from the security info, the number is offered no more.
    let mut owner = Browser::new(&gateway, HOST);
    app_login(&mut owner, "alice", "wonderland");
    let token = owner.get("/.portvakt/verify").input("csrf").unwrap();
    let with_the_app = owner.post(
        "/.portvakt/verify",
        &[("csrf", &token), ("code", &code(&secret, 1))],
    );
    assert_eq!(with_the_app.status, 302, "{}", with_the_app.body);
    let csrf = owner.get("/.portvakt/account").input("csrf").unwrap();
    let removed = owner.post("/.portvakt/account/phone/remove", &[("csrf", &csrf)]);
    assert_eq!(removed.location(), Some("/.portvakt/account"));
    assert!(!owner.get("/.portvakt/account").body.contains("<td>Phone</td>"));
    let token = thief.get("/.portvakt/verify").input("csrf").unwrap();
    assert!(!thief.get("/.portvakt/verify").body.contains("Text a code"));
    assert_eq!(
        thief.post("/.portvakt/sms/send", &[("csrf", &token)]).location(),
        Some("/.portvakt/verify")
    );
    assert_eq!(provider.messages().len(), 2);
}

#[test]
fn a_provider_that_fails_gives_the_user_a_clear_message_and_the_log_its_cause() {
    let provider = Provider::start(503, "quota exceeded for account 42");
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_with_sms(&app, &provider);
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    enrol(&mut browser);
    press_continue(&mut browser);
    let csrf = browser.get("/.portvakt/account").input("csrf").unwrap();
    let failed = browser.post(
        "/.portvakt/account/phone",
        &[("csrf", &csrf), ("address", "+46701234567")],
    );
    assert_eq!(failed.status, 422);
    assert!(
        failed.body.contains("The code could not be sent."),
        "{}",
        failed.body
    );
    assert_eq!(provider.messages().len(), 1);
    let log = gateway.log();
    assert!(
        log.contains("the provider refused the message with 503: quota exceeded for account 42"),
        "{log}"
    );
    assert!(!log.contains("pr0vider-secret"));
    assert!(!browser.get("/.portvakt/account").body.contains("<td>Phone</td>"));
}

/// Someone holding only the password signs in again and again and asks for a
/// text each time: the user's budget (`sms.max_per_hour`), counted in the store
/// before each send, stops the texts however many sign-ins run at once.
#[test]
fn a_password_alone_cannot_send_texts_without_end() {
    let provider = Provider::start(202, "{}");
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    let gateway = gateway_with_sms_budget(&app, &provider, 3);
    let mut browser = Browser::new(&gateway, HOST);
    app_login(&mut browser, "alice", "wonderland");
    enrol(&mut browser);
    press_continue(&mut browser);
    let csrf = browser.get("/.portvakt/account").input("csrf").unwrap();
    let sent = browser.post(
        "/.portvakt/account/phone",
        &[("csrf", &csrf), ("address", "+46701234567")],
    );
    let confirm = sent.input("csrf").unwrap();
    let code = provider.messages()[0].code();
    browser.post(
        "/.portvakt/account/phone/confirm",
        &[("csrf", &confirm), ("code", &code)],
    );

    // Six at once: fewer than the lockout's ten charges in flight, so every
    // sign-in gets its verification page.
    let attempts: Vec<_> = (0..6)
        .map(|_| {
            let mut thief = Browser::new(&gateway, HOST);
            std::thread::spawn(move || {
                app_login(&mut thief, "alice", "wonderland");
                let token = thief.get("/.portvakt/verify").input("csrf").unwrap();
                thief
                    .post("/.portvakt/sms/send", &[("csrf", &token)])
                    .location()
                    .map(str::to_owned)
            })
        })
        .collect();
    let sent: usize = attempts
        .into_iter()
        .map(|a| usize::from(a.join().unwrap().as_deref() == Some("/.portvakt/sms")))
        .sum();
    assert_eq!(
        provider.messages().len(),
        3,
        "one to confirm the number, two sign-ins"
    );
    assert_eq!(sent, 2);
    assert!(gateway.log().contains("code budget is spent"));
}
