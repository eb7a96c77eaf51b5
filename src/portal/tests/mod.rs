//! The gateway's pages in process: a request in, an answer out, against the real
//! services (a real SQLite file, the real key file, the e-mail file transport) and a
//! clock the test sets. No Pingora, no sockets, no waiting.

mod account;
mod admin;
mod challenge;
mod fixed;
mod gateway_login;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::answer::Answer;
use super::route::Route;
use super::{serve, Request};
use crate::auth::challenge::{Purpose, Withheld};
use crate::auth::sessions::Issued;
use crate::auth::Services;
use crate::config::{App, Config, Lang};
use crate::factors::totp::{self, TotpSecret};
use crate::factors::SignInMethod;
use crate::store::TotpDevice;

/// 2027-01-15 08:00 UTC: the fixture's clock starts here, whatever the machine's says.
pub const START: u64 = 1_800_000_000;
pub const HOST: &str = "intranet.test";
pub const APP: &str = "intranet";
pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// The configuration every test starts from; `extra` goes before `apps:`, and
/// `app_extra` into the app's block (which may bring its own `mfa` and `login`).
fn config_text(extra: &str, app_extra: &str) -> String {
    let login = if app_extra.contains("    login:") {
        ""
    } else {
        "    login: { path: /login, username_field: username, logout_path: /logout }\n"
    };
    let mfa = if app_extra.contains("    mfa:") {
        ""
    } else {
        "    mfa: required\n"
    };
    format!(
        "listen: [\"127.0.0.1:0\"]\nstate_dir: state\n{extra}apps:\n  {APP}:\n    hosts: [{HOST}]\n    upstream: http://127.0.0.1:9\n\
         {mfa}{login}{app_extra}\
         \x20 other:\n    hosts: [other.test]\n    upstream: http://127.0.0.1:9\n    mfa: required\n\
         \x20   login: {{ path: /login, username_field: username }}\n"
    )
}

pub struct Fixture {
    dir: tempfile::TempDir,
    pub config: Config,
    pub services: Services,
    pub now: SystemTime,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with("", "")
    }

    /// With settings before `apps:` (`extra`) and in the app's block (`app_extra`,
    /// indented four spaces).
    pub fn with(extra: &str, app_extra: &str) -> Fixture {
        Fixture::with_files(extra, app_extra, &[])
    }

    /// With files (a users file, say) beside the configuration.
    pub fn with_files(extra: &str, app_extra: &str, files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write a file");
        }
        let path = dir.path().join("portvakt.yaml");
        let text = config_text(extra, app_extra);
        std::fs::write(&path, &text).expect("write the configuration");
        let config = crate::config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // `portvakt run` makes the state directory (mode 700) before it opens them.
        std::fs::create_dir(&config.state_dir).expect("the state directory");
        let services = Services::open(&config).expect("open the services");
        Fixture {
            dir,
            config,
            services,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(START),
        }
    }

    pub fn app(&self) -> &App {
        self.app_named(APP)
    }

    pub fn app_named(&self, name: &str) -> &App {
        self.config.apps.iter().find(|a| a.name == name).expect("the app")
    }

    /// Moves the clock on.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    pub fn unix(&self) -> u64 {
        self.now
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    /// The code an authenticator app shows at the fixture's clock, `steps` periods on.
    pub fn code(&self, secret: &TotpSecret, steps: i64) -> String {
        let at = self.unix().saturating_add_signed(steps * 30);
        totp::code_at(secret, &self.config.second_factor.totp, at).expect("a code")
    }

    /// Gives `user` an authenticator app (named "Phone") directly in the store.
    pub async fn enrolled(&self, user: &str) -> TotpSecret {
        let secret = TotpSecret::generate();
        let sealed = self
            .services
            .keys
            .seal(secret.as_bytes(), &TotpDevice::seal_context(user, "Phone"));
        let long_ago = self.unix() / 30 - 100;
        self.services
            .store
            .add_totp_device(user, "Phone", sealed, long_ago, self.now, 10)
            .await
            .expect("add a device");
        secret
    }

    /// A session of `user` on the app whose second factor was passed `ago`.
    pub async fn signed_in(&self, user: &str, ago: Duration) -> Issued {
        self.services
            .sessions
            .start_at(
                user,
                APP,
                SignInMethod::Totp,
                Some(self.now - ago),
                self.now,
                false,
            )
            .await
            .expect("a session")
    }

    /// Gives `user` `count` new recovery codes; the codes as shown to them.
    pub async fn recovery_codes(
        &self,
        user: &str,
        count: usize,
    ) -> Vec<crate::factors::recovery::RecoveryCode> {
        let codes = crate::factors::recovery::generate(count);
        let hashes = codes
            .iter()
            .map(|c| crate::factors::recovery::hash(c).expect("a hash"))
            .collect();
        self.services
            .store
            .replace_recovery_codes(user, hashes, self.now)
            .await
            .expect("the store answers");
        codes
    }

    /// Whether the store still honours this session's cookie.
    pub async fn alive(&self, session: &Issued) -> bool {
        self.services
            .sessions
            .resume(&session.cookie_value, APP, &self.config.session, self.now, false)
            .await
            .expect("the store answers")
            .is_some()
    }

    /// A login of `user` the app answered with `withheld`, waiting for the second
    /// factor; the challenge cookie the browser got.
    pub async fn login_waiting(&self, user: &str, withheld: Withheld) -> (Answer, String) {
        let answer = crate::auth::challenge::random_token();
        let (answer_to_browser, _) = super::challenge::begin(
            &self.services,
            &self.config,
            self.app(),
            user,
            Purpose::Login {
                answer: answer.clone(),
            },
            CLIENT,
            false,
            self.now,
        )
        .await;
        // As the proxy does: the answer is stored once the app sent it whole.
        if withheld.complete {
            self.services
                .challenges
                .put_answer(&answer, &withheld, self.now)
                .await
                .expect("the store answers");
        }
        let cookie = answer_to_browser
            .set_cookie("portvakt-challenge")
            .expect("a challenge cookie");
        (answer_to_browser, cookie)
    }

    pub fn get(&self, route: Route) -> Call<'_> {
        Call::new(self, route, Method::GET)
    }

    pub fn post(&self, route: Route, fields: &[(&str, &str)]) -> Call<'_> {
        let mut call = Call::new(self, route, Method::POST);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        call.body = Some(body.into_bytes());
        call.header("origin", &format!("http://{HOST}"))
    }

    /// The last code the e-mail file (the development transport) holds.
    pub fn mailed_code(&self) -> String {
        let mail = std::fs::read_to_string(self.dir.path().join("mail.log")).unwrap_or_default();
        let code: String = mail
            .rsplit("Your sign-in code is ")
            .next()
            .unwrap_or_default()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert!(!code.is_empty(), "no code mailed: {mail}");
        code
    }
}

/// The app's answer to a right password, as the gateway would have withheld it.
pub fn app_said_yes() -> Withheld {
    Withheld {
        status: 302,
        headers: vec![
            (http::header::LOCATION, HeaderValue::from_static("/")),
            (
                http::header::SET_COOKIE,
                HeaderValue::from_static("sessionid=app-session; Path=/; HttpOnly"),
            ),
        ],
        body: b"signed in".to_vec(),
        complete: true,
        overflowed: false,
    }
}

/// One request to a gateway page, built up and then sent.
pub struct Call<'f> {
    fixture: &'f Fixture,
    route: Route,
    method: Method,
    headers: HeaderMap,
    query: Option<String>,
    body: Option<Vec<u8>>,
    session: Option<Issued>,
    app: &'static str,
}

impl<'f> Call<'f> {
    fn new(fixture: &'f Fixture, route: Route, method: Method) -> Call<'f> {
        Call {
            fixture,
            route,
            method,
            headers: HeaderMap::new(),
            query: None,
            body: Some(Vec::new()),
            session: None,
            app: APP,
        }
    }

    /// Sets a header (replacing one set before).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
        self
    }

    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        let value = HeaderValue::from_str(&format!("{name}={value}")).expect("a cookie");
        self.headers.append(http::header::COOKIE, value);
        self
    }

    pub fn query(mut self, query: &str) -> Self {
        self.query = Some(query.to_owned());
        self
    }

    /// The body was longer than a form may be.
    pub fn too_large(mut self) -> Self {
        self.body = None;
        self
    }

    pub fn on_app(mut self, app: &'static str) -> Self {
        self.app = app;
        self
    }

    /// As the browser of this session (its cookie sent, its record resumed).
    pub fn signed_in(mut self, session: &Issued) -> Self {
        self.session = Some(Issued {
            cookie_value: session.cookie_value.clone(),
            record: session.record.clone(),
        });
        self
    }

    pub async fn send(self) -> Answer {
        let f = self.fixture;
        let request = Request {
            config: &f.config,
            basic_check: &NoBasicApp,
            app: f.app_named(self.app),
            route: self.route,
            method: self.method,
            headers: &self.headers,
            query: self.query.as_deref(),
            body: self.body,
            host: HOST,
            secure: false,
            client: CLIENT,
            now: f.now,
            lang: Lang::En,
            reference: "test",
            session: self.session.as_ref().map(|s| &s.record),
            session_cookie: self.session.as_ref().map(|s| s.cookie_value.as_str()),
            session_unknown: false,
        };
        serve(&f.services, &request).await
    }
}

impl Answer {
    pub fn location(&self) -> Option<&str> {
        self.header(&http::header::LOCATION)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value a `Set-Cookie` of this answer gives `name` (empty when it clears it).
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == http::header::SET_COOKIE)
            .filter_map(|(_, v)| cookie::Cookie::parse(v.to_str().ok()?.to_owned()).ok())
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// The value of a hidden or text input on the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let text = self.text();
        let at = text.find(&format!("name=\"{name}\""))?;
        let tag_start = text[..at].rfind('<')?;
        let tag = &text[tag_start..at + text[at..].find('>')?];
        let value = tag.split("value=\"").nth(1)?.split('"').next()?;
        Some(value.to_owned())
    }
}

/// These pages run without the proxy, so no app is asked: a Basic app's own
/// password "cannot be checked" here (the integration tests ask a real app).
struct NoBasicApp;

#[async_trait::async_trait]
impl crate::portal::BasicCheck for NoBasicApp {
    async fn accepts(&self, _: &crate::config::App, _: &str, _: &str, _: &str) -> Option<bool> {
        None
    }
}
