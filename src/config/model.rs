//! The validated configuration the gateway runs on. Nothing here is a file type:
//! addresses are resolved, rules are indexed, names are folded for lookup.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::factors::lockout::LockoutPolicy;
use crate::factors::totp::TotpSettings;
use crate::login::{CookieNames, QueryConditions};
use crate::policy::AppPolicy;

/// Where durable state is kept: the embedded SQLite file in `state_dir`, or a
/// PostgreSQL database that several gateways share.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite,
    Postgres {
        /// A `postgres://` URL, checked when the file was read.
        url: String,
        /// Read from `password_file`; replaces any password in the URL.
        password: Option<String>,
    },
}

/// The URL and password stay out of logs and `Debug` output.
impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite => f.write_str("Sqlite"),
            StoreLocation::Postgres { .. } => f.write_str("Postgres { .. }"),
        }
    }
}

#[derive(Debug)]
pub struct Config {
    /// The file this was read from (for reloads and messages).
    pub source: PathBuf,
    pub listeners: Vec<Listener>,
    pub state_dir: PathBuf,
    /// A key file provisioned for the deployment (shared by its gateways); `None`:
    /// a systemd credential, else the state directory's own.
    pub key_file: Option<PathBuf>,
    /// The key file before a rotation: what it sealed still opens, and its signing
    /// key stays in the JWKS, while new cookies and secrets use `key_file`.
    pub previous_key_file: Option<PathBuf>,
    /// Where durable state is kept.
    pub store: StoreLocation,
    pub metrics_listen: Option<SocketAddr>,
    pub log: LogSettings,
    pub server: ServerSettings,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Extra header names (folded: lower case, `_` as `-`) removed from every client
    /// request, beside every `x-portvakt-*` header.
    pub identity_headers: Vec<String>,
    pub users: Users,
    /// How e-mail is sent, when it is.
    pub email: Option<EmailSettings>,
    /// How text messages are sent, when they are set up.
    pub sms: Option<SmsSettings>,
    /// Who may use the admin pages (users by name, or members of groups).
    pub admins: crate::policy::Subjects,
    pub pages: PageSettings,
    pub second_factor: SecondFactorSettings,
    pub session: SessionSettings,
    pub lockout: LockoutPolicy,
    pub apps: Vec<App>,
    /// Folded host (`name` or `name:port`) to index in `apps`.
    pub(crate) hosts: HashMap<String, usize>,
}

impl Config {
    /// The app serving a request's host. `host` is the host as the client sent it;
    /// an entry with a port matches only that port, one without matches any port.
    pub fn app_for_host(&self, host: &str, port: Option<u16>) -> Option<(usize, &App)> {
        let host = fold_host(host);
        let with_port = port.and_then(|p| self.hosts.get(&format!("{host}:{p}")));
        let index = *with_port.or_else(|| self.hosts.get(&*host))?;
        self.apps.get(index).map(|app| (index, app))
    }

    /// True when a header name (any case, `_` for `-`) is one Portvakt sets itself.
    pub fn is_identity_header(&self, name: &str) -> bool {
        let folded = fold_header_name(name);
        folded.starts_with("x-portvakt-") || self.identity_headers.iter().any(|h| *h == folded)
    }
}

/// Lower case, without the trailing dot of a fully qualified name. Most hosts
/// come that way already, and are not copied.
pub fn fold_host(host: &str) -> Cow<'_, str> {
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Header names compared the way a CGI-style app would: case-blind, `_` equal to
/// `-`. Names already so (as `http` gives them, unless they hold `_`) are not copied.
pub fn fold_header_name(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
        Cow::Owned(
            name.chars()
                .map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() })
                .collect(),
        )
    } else {
        Cow::Borrowed(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `portvakt=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// How long a graceful shutdown (SIGTERM) lets in-flight requests run.
    pub grace_period: Duration,
    /// How long the last step of a shutdown may take before the runtime is dropped.
    pub shutdown_timeout: Duration,
    /// Longest request target (path and query) accepted; longer ones get 414.
    pub max_uri_length: usize,
}

#[derive(Debug)]
pub struct App {
    pub name: String,
    pub upstream: Upstream,
    /// Host header sent upstream instead of the client's.
    pub host_header: Option<String>,
    pub policy: AppPolicy,
    /// How users sign in; `None` when the app has no sign-in the gateway knows of
    /// (then a request that needs a signed-in user is refused with 401).
    pub sign_in: Option<SignIn>,
    /// The header names the identity goes upstream in.
    pub upstream_headers: UpstreamHeaders,
}

/// The names of the headers that carry the identity to an app. Every name is also
/// removed from client requests, so none can be forged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHeaders {
    pub user: IdentityHeader,
    pub groups: IdentityHeader,
    pub auth_time: IdentityHeader,
    pub method: IdentityHeader,
    pub assertion: IdentityHeader,
}

impl Default for UpstreamHeaders {
    fn default() -> Self {
        UpstreamHeaders {
            user: IdentityHeader::from_static("x-portvakt-user"),
            groups: IdentityHeader::from_static("x-portvakt-groups"),
            auth_time: IdentityHeader::from_static("x-portvakt-auth-time"),
            method: IdentityHeader::from_static("x-portvakt-method"),
            assertion: IdentityHeader::from_static("x-portvakt-assertion"),
        }
    }
}

/// The name of a header that carries identity to an app (lower case, checked),
/// made once as the bytes the proxy's case-keeping header map holds, so that
/// sending it on each request is a reference count rather than a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader(bytes::Bytes);

impl IdentityHeader {
    pub const fn from_static(name: &'static str) -> IdentityHeader {
        IdentityHeader(bytes::Bytes::from_static(name.as_bytes()))
    }

    pub fn new(name: &http::HeaderName) -> IdentityHeader {
        IdentityHeader(bytes::Bytes::copy_from_slice(name.as_str().as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // Made from a `HeaderName` or a literal: ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The name as sent.
    pub fn wire(&self) -> bytes::Bytes {
        self.0.clone()
    }
}

impl App {
    /// The app's own login form, when the gateway watches one.
    pub fn app_form(&self) -> Option<&LoginInterception> {
        match &self.sign_in {
            Some(SignIn::AppForm(form)) => Some(form.as_ref()),
            _ => None,
        }
    }

    /// Where a request without a session is sent to sign in.
    pub fn sign_in_page(&self) -> Option<&str> {
        match &self.sign_in {
            Some(SignIn::AppForm(form)) => Some(&form.page_target),
            Some(SignIn::Gateway) => Some(GATEWAY_LOGIN_PAGE),
            Some(SignIn::Basic(_)) | None => None,
        }
    }

    /// How the app signs people in with HTTP Basic, if it does (`login: basic`).
    pub fn basic_login(&self) -> Option<&BasicLogin> {
        match &self.sign_in {
            Some(SignIn::Basic(basic)) => Some(basic),
            _ => None,
        }
    }
}

/// What makes a sign-in unusual (for an app that asks no second factor of the
/// user): a browser, or a network, that this user did not sign in from within
/// `remember`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusualSignIn {
    pub browser: bool,
    pub network: bool,
    /// A country not seen (by the GeoIP database), when that signal counts.
    pub country: Option<GeoIp>,
    pub remember: Duration,
}

/// A GeoIP country database (MaxMind DB: GeoLite2-Country or GeoIP2-Country),
/// read once when the configuration is loaded.
#[derive(Clone)]
pub struct GeoIp {
    pub path: PathBuf,
    pub reader: std::sync::Arc<maxminddb::Reader<Vec<u8>>>,
}

impl GeoIp {
    /// The country an address is in (its ISO code), if the database knows.
    pub fn country_of(&self, address: std::net::IpAddr) -> Option<String> {
        let found = self.reader.lookup(address).ok()?;
        found
            .decode_path::<String>(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .ok()
            .flatten()
    }
}

impl PartialEq for GeoIp {
    fn eq(&self, other: &GeoIp) -> bool {
        self.path == other.path
    }
}

impl Eq for GeoIp {}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp").field("path", &self.path).finish()
    }
}

/// What codes by text message may do. Text messages are the weakest way in
/// (numbers are moved to other SIMs, messages read off lock screens and networks),
/// so they are offered only beside an authenticator app, never alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsUse {
    Off,
    /// Offered on the verification page to users who enrolled an authenticator app
    /// and confirmed a number ("sign in another way").
    Fallback,
}

/// How text messages are sent: one HTTP request to the provider's webhook, so any
/// provider works without the gateway knowing it.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsSettings {
    /// An `http` or `https` URL.
    pub url: String,
    pub method: http::Method,
    /// Sent as written; values from files or the environment are marked sensitive.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The request's body, with `{to}`, `{message}` and `{code}` filled in.
    pub body: String,
    pub code_digits: usize,
    pub code_lifetime: Duration,
    /// How long before another code may be sent.
    pub resend_after: Duration,
    /// At most this many texts for one user, and to one number, within an hour.
    pub max_per_hour: u32,
    /// The number prefixes (`+46`, `+4520`) texts may go to; empty: any.
    pub countries: Vec<String>,
}

impl std::fmt::Debug for SmsSettings {
    /// Header values may be the provider's secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("SmsSettings")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &names)
            .field("body", &self.body)
            .field("code_digits", &self.code_digits)
            .field("code_lifetime", &self.code_lifetime)
            .field("resend_after", &self.resend_after)
            .field("max_per_hour", &self.max_per_hour)
            .field("countries", &self.countries)
            .finish()
    }
}

/// What e-mailed one-time codes may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailUse {
    Off,
    /// Offered on the verification page to users who enrolled an authenticator app
    /// ("sign in another way").
    Fallback,
    /// A second factor in its own right: a user with an address need not enrol an app.
    SecondFactor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    pub from: String,
    pub transport: EmailTransport,
    pub code_digits: usize,
    pub code_lifetime: Duration,
    /// How long before another code may be sent.
    pub resend_after: Duration,
    /// At most this many codes for one user, and to one address, within an hour.
    pub max_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTransport {
    Smtp {
        host: String,
        port: u16,
        security: SmtpSecurity,
        /// User name and password (read from a file, never written in the config).
        credentials: Option<(String, String)>,
    },
    /// For development and tests: each message is appended to this file.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    Tls,
    /// Plain SMTP, for a relay on the same host.
    None,
}

/// How the gateway's pages look and speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSettings {
    /// One language for every page; `None` follows each browser's Accept-Language.
    pub language: Option<super::Lang>,
    /// Rules added after the gateway's stylesheet: the configured colour and logo.
    pub brand_css: std::sync::Arc<str>,
    /// The logo's bytes and content type, served at `/.portvakt/assets/logo`.
    pub logo: Option<(std::sync::Arc<[u8]>, &'static str)>,
}

impl Default for PageSettings {
    fn default() -> Self {
        PageSettings {
            language: None,
            brand_css: "".into(),
            logo: None,
        }
    }
}

/// The gateway's own login page.
pub const GATEWAY_LOGIN_PAGE: &str = "/.portvakt/login";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The app's own login form, watched so its session waits for the second factor.
    AppForm(Box<LoginInterception>),
    /// The gateway's login page, checking passwords in the users file.
    Gateway,
    /// The app's own HTTP Basic check: its 401 passes to the browser, and the
    /// first request it accepts from a browser without a gateway session for that
    /// user leads to the second factor, then back to that URL.
    Basic(BasicLogin),
}

/// Where a Basic app is asked about credentials, and its logout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicLogin {
    /// A page the app guards with Basic and that changes nothing (`/` by default).
    pub check: String,
    /// Seeing a request here ends the gateway session too.
    pub logout_path: Option<String>,
}

/// The users file: groups for policy, e-mail, and passwords for gateway login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    by_name: HashMap<String, UserEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserEntry {
    /// An argon2id PHC string (`portvakt hash-password`).
    pub password: Option<String>,
    /// Shared, not copied, with every request's facts for policy.
    pub groups: std::sync::Arc<[String]>,
    pub email: Option<String>,
}

impl Users {
    pub fn new(by_name: HashMap<String, UserEntry>) -> Users {
        Users { by_name }
    }

    /// User names are not case-sensitive (see `login.username_case_sensitive`).
    pub fn get(&self, name: &str) -> Option<&UserEntry> {
        let name = name.trim();
        // Asked on every request with a session: an ASCII name already in lower
        // case (as sessions keep it) is looked up as it is, not copied.
        if name.is_ascii() && !name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_name.get(name)
        } else {
            self.by_name.get(&name.to_lowercase())
        }
    }

    /// The user's groups; none for a user the file does not list.
    pub fn groups(&self, name: &str) -> std::sync::Arc<[String]> {
        self.get(name).map(|u| u.groups.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorSettings {
    /// The name authenticator apps show beside the account.
    pub issuer: String,
    pub totp: TotpSettings,
    /// How many recovery codes a user gets.
    pub recovery_codes: usize,
    /// How many authenticator apps a user may have.
    pub max_devices: usize,
    /// Whether a user who turned the second factor on (where it is optional) may
    /// turn it off again.
    pub allow_opt_out: bool,
    /// How long a browser the user asked to be remembered in skips the second
    /// factor at sign-in; `None` (the default) offers no such choice.
    pub remember_device: Option<Duration>,
    /// The largest form body (bytes) posted to a route whose second factor has
    /// gone stale that is kept across the step-up and sent once it is passed;
    /// 0 keeps none.
    pub keep_post_body: usize,
    /// What e-mailed codes may be used for.
    pub email: EmailUse,
    /// What codes by text message may be used for.
    pub sms: SmsUse,
    /// Where no second factor is asked, an e-mailed code for a sign-in that looks
    /// unusual; `None`: off.
    pub unusual_sign_in: Option<UnusualSignIn>,
    /// Whether users may register security keys and passkeys (WebAuthn), at
    /// enrolment instead of an app and on their security info.
    pub security_keys: bool,
    pub enrolment: Enrolment,
}

/// Who may enrol a first device after passing the app's password. A stolen password
/// must not be enough to enrol the thief's phone, so deployments can narrow this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolment {
    Open,
    FromNetworks(Vec<IpNet>),
    /// Only while an admin has opened enrolment for the user
    /// (`portvakt users open-enrolment`).
    AdminOpened,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute_timeout: Duration,
    /// How long a withheld login waits for its second factor.
    pub login_timeout: Duration,
    /// When a stricter `mfa` default for an app reaches sessions already signed in.
    pub mfa_changes: MfaChanges,
}

/// When a change to an app's `mfa` default reaches sessions already signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaChanges {
    /// Password-only sessions begun before the change keep working until they end;
    /// the next sign-in asks for (or enrols) the second factor.
    NextSignIn,
    /// Every session is asked at its next page.
    Immediately,
}

/// How to recognise an app's login and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInterception {
    /// The decoded path the form posts to (matched like an exact rule).
    pub path: String,
    pub method: String,
    /// Query conditions the login must meet too (front-controller apps, where one
    /// path serves every page); other requests to the path get its route's policy.
    pub query: QueryConditions,
    /// The app's session cookies: set live on any answer to a client that has not
    /// passed the policy, they mean the app signed someone in.
    pub session_cookies: CookieNames,
    pub username: UsernameSource,
    pub success: SuccessRule,
    /// Seeing a request here (meeting `logout_query`) ends the gateway session too.
    pub logout_path: Option<String>,
    pub logout_query: QueryConditions,
    /// Where a request without a session is sent to sign in: GET and HEAD here
    /// (meeting `page_query`) pass to the app whatever the route rules say.
    pub page: String,
    pub page_query: QueryConditions,
    /// `page` with its query conditions: where browsers are sent to sign in.
    pub page_target: String,
    /// Keep the user name's case (the app tells `Alice` from `alice`); by default
    /// names are lower-cased, so that one account cannot be split in two.
    pub username_case_sensitive: bool,
    /// The query parameter through which the app's login page takes the path to
    /// return to after signing in (`next` in many frameworks), if it has one.
    pub return_param: Option<String>,
    /// A header of the app's successful login answer that holds the user's e-mail
    /// address (for e-mailed codes and notices), when the app sends one.
    pub email_header: Option<http::HeaderName>,
    /// Larger login bodies are refused with 413.
    pub max_body: usize,
    /// Where the app itself says who a new session belongs to.
    pub confirm: Option<ConfirmRule>,
    /// The gateway adds its overlay script to the app's HTML pages: a script's
    /// login call held for the second factor is finished in a frame over the app.
    pub overlay: bool,
    /// A JSON pointer (RFC 6901) to the bearer token in the login's answer: such a
    /// token is let through only with the gateway session it was released to.
    pub token: Option<String>,
}

impl LoginInterception {
    /// What a login answer hands the browser that works as the user's session at
    /// the app, for `login.token`: the token at its pointer in the (JSON) body, and
    /// the values of the session cookies it sets live.
    pub fn credentials_in<'h>(
        &self,
        set_cookies: impl IntoIterator<Item = &'h [u8]>,
        body: &[u8],
        now: std::time::SystemTime,
    ) -> Vec<String> {
        let Some(pointer) = &self.token else {
            return Vec::new();
        };
        let token = json_token(body, pointer);
        let cookies = self
            .session_cookies
            .named(set_cookies, now)
            .into_iter()
            .filter(|c| c.live && !c.value.is_empty())
            .map(|c| c.value);
        token.into_iter().chain(cookies).collect()
    }
}

/// The text at `pointer` (RFC 6901) in a JSON body, if there is any.
pub fn json_token(body: &[u8], pointer: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = value.pointer(pointer)?.as_str()?;
    (!token.is_empty()).then(|| token.to_owned())
}

/// `login.confirm`: the gateway fetches `path` from the app with the cookies of the
/// withheld answer, reads who is signed in, and discards a login that names
/// someone else than the request did.
#[derive(Debug, Clone)]
pub struct ConfirmRule {
    /// The request target: a path, and a query if the page needs one.
    pub path: String,
    pub read: ConfirmRead,
}

/// Where the confirming page names the user.
#[derive(Debug, Clone)]
pub enum ConfirmRead {
    Header(http::HeaderName),
    /// A JSON pointer (RFC 6901) to a string.
    Json(String),
    /// The first capture group of the first match.
    Pattern(regex::Regex),
}

impl PartialEq for ConfirmRule {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && match (&self.read, &other.read) {
                (ConfirmRead::Header(a), ConfirmRead::Header(b)) => a == b,
                (ConfirmRead::Json(a), ConfirmRead::Json(b)) => a == b,
                (ConfirmRead::Pattern(a), ConfirmRead::Pattern(b)) => a.as_str() == b.as_str(),
                _ => false,
            }
    }
}

impl Eq for ConfirmRule {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameSource {
    /// A field of the form or JSON body.
    Field(String),
    /// A single-user app's one identity, named in the configuration.
    Fixed(String),
}

/// Every criterion given must hold for a login to count as successful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessRule {
    pub statuses: Vec<u16>,
    /// The Location must be this path.
    pub location: Option<String>,
    /// The Location must not be this path (apps often redirect back to the form).
    pub location_not: Option<String>,
    /// The response must set this cookie.
    pub set_cookie: Option<String>,
    /// A JSON pointer into the answer's body that must name a value other than
    /// `false`, `null`, `0` or `""` (apps that answer every login 200 and say in
    /// the body whether it worked). The gateway then reads the whole answer before
    /// it answers the browser.
    pub json: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// As written, for messages.
    pub url: String,
    /// Resolved when the configuration is loaded.
    pub addr: SocketAddr,
    pub tls: bool,
    /// Server name for TLS (SNI and certificate check).
    pub sni: String,
    pub verify_tls: bool,
}
