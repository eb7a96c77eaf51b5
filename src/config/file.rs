//! The file model: what the YAML says, read strictly, with positions kept for the
//! checks that span several keys. Only [`super::validate`] looks at these types.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::decode::{Decoder, Spanned};
use super::yaml::{Node, Pos, Value};

pub struct FileConfig {
    pub at: Pos,
    pub listen: Vec<Spanned<ListenFile>>,
    pub state_dir: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub previous_key_file: Option<Spanned<String>>,
    pub store: Option<StoreFile>,
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub threads: Option<u64>,
    pub grace_period: Option<Duration>,
    pub shutdown_timeout: Option<Duration>,
    pub max_uri_length: Option<u64>,
    pub trusted_proxies: Vec<IpNet>,
    pub identity_headers: Vec<Spanned<String>>,
    pub users_file: Option<Spanned<String>>,
    pub email: Option<EmailFile>,
    pub sms: Option<SmsFile>,
    /// Who administers the gateway: (users, groups).
    pub admins: Option<(Vec<String>, Vec<String>)>,
    pub pages: PagesFile,
    pub second_factor: SecondFactorFile,
    pub session: SessionFile,
    pub lockout: LockoutFile,
    pub apps: Vec<AppFile>,
}

/// Where durable state is kept, when not in `state_dir`'s SQLite file.
pub struct StoreFile {
    pub url: Spanned<String>,
    pub password_file: Option<Spanned<String>>,
}

/// How e-mail is sent (for e-mail codes).
pub struct EmailFile {
    pub at: Pos,
    pub key: String,
    pub from: Option<Spanned<String>>,
    pub smtp: Option<SmtpFile>,
    pub file: Option<Spanned<String>>,
    pub code_digits: Option<u64>,
    pub code_lifetime: Option<Duration>,
    pub resend_after: Option<Duration>,
    pub max_per_hour: Option<u64>,
}

/// How text messages are sent (for codes by text message): the provider's webhook.
pub struct SmsFile {
    pub at: Pos,
    pub key: String,
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub headers: Vec<(Spanned<String>, SecretText)>,
    pub body: Option<Spanned<String>>,
    pub code_digits: Option<u64>,
    pub code_lifetime: Option<Duration>,
    pub resend_after: Option<Duration>,
    pub max_per_hour: Option<u64>,
    pub countries: Option<Vec<Spanned<String>>>,
}

/// A value written in the configuration, or kept out of it: read from a file
/// (`{ file: path }`) or the environment (`{ env: NAME }`).
pub enum SecretText {
    Text(Spanned<String>),
    File(Spanned<String>),
    Env(Spanned<String>),
}

pub struct SmtpFile {
    pub host: Option<Spanned<String>>,
    pub port: Option<u64>,
    pub security: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password_file: Option<Spanned<String>>,
}

#[derive(Default)]
pub struct PagesFile {
    pub language: Option<Spanned<String>>,
    pub colour: Option<Spanned<String>>,
    pub logo: Option<Spanned<String>>,
}

#[derive(Default)]
pub struct SecondFactorFile {
    pub issuer: Option<String>,
    pub digits: Option<u64>,
    pub period: Option<Duration>,
    pub skew: Option<u64>,
    pub recovery_codes: Option<u64>,
    pub max_devices: Option<u64>,
    pub allow_opt_out: Option<bool>,
    pub remember_device: Option<Duration>,
    pub keep_post_body: Option<u64>,
    pub security_keys: Option<bool>,
    pub unusual_sign_in: Option<UnusualFile>,
    pub email: Option<Spanned<String>>,
    pub sms: Option<Spanned<String>>,
    /// `None`: open; `Some(networks)`: only from these networks.
    pub enrolment_networks: Option<Vec<IpNet>>,
    /// `enrolment: admin`.
    pub enrolment_by_admin: bool,
}

/// `second_factor.unusual_sign_in`: the signals named, how long they are
/// remembered, and where it was written.
pub struct UnusualFile {
    pub signals: Vec<Spanned<String>>,
    pub remember: Option<Duration>,
    pub geoip: Option<Spanned<String>>,
    pub at: Pos,
    pub key: String,
}

#[derive(Default)]
pub struct SessionFile {
    pub idle_timeout: Option<Duration>,
    pub absolute_timeout: Option<Spanned<Duration>>,
    pub login_timeout: Option<Duration>,
    pub mfa_changes: Option<Spanned<String>>,
}

#[derive(Default)]
pub struct LockoutFile {
    pub max_failures: Option<u64>,
    pub window: Option<Duration>,
    pub delay: Option<Duration>,
    pub max_delay: Option<Duration>,
}

/// How users sign in to an app.
pub enum LoginSpec {
    /// The app's own form, watched by the gateway.
    Form(Box<LoginFile>),
    /// The gateway's login page, checking the users file (`login: gateway`).
    Gateway,
    /// The app's own HTTP Basic check (`login: basic`, or `login: { basic: {…} }`).
    Basic(BasicFile),
}

/// `login: { basic: { check, logout_path } }`.
#[derive(Default)]
pub struct BasicFile {
    pub check: Option<Spanned<String>>,
    pub logout_path: Option<Spanned<String>>,
}

/// An app's own login form, which the gateway watches.
pub struct LoginFile {
    pub at: Pos,
    pub key: String,
    pub path: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub username_field: Option<Spanned<String>>,
    pub identity: Option<Spanned<String>>,
    pub success_status: Option<Vec<Spanned<u64>>>,
    pub success_location: Option<Spanned<String>>,
    pub success_location_not: Option<Spanned<String>>,
    pub success_set_cookie: Option<Spanned<String>>,
    pub success_json: Option<Spanned<String>>,
    pub logout_path: Option<Spanned<String>>,
    pub page: Option<Spanned<String>>,
    pub return_param: Option<Spanned<String>>,
    pub email_header: Option<Spanned<String>>,
    pub username_case_sensitive: Option<bool>,
    pub max_body: Option<u64>,
    /// `query: { do: login }`: conditions that narrow the login to one query.
    pub query: Vec<(Spanned<String>, String)>,
    /// The app's session cookie names (a name, or a list of names and `prefix*`).
    pub session_cookie: Option<Vec<Spanned<String>>>,
    pub confirm: Option<ConfirmFile>,
    /// Add the gateway's overlay script to the app's pages.
    pub overlay: Option<bool>,
    /// A JSON pointer to the bearer token in the login's answer.
    pub token: Option<Spanned<String>>,
}

/// `login.confirm`: a page of the app that says who its session belongs to.
pub struct ConfirmFile {
    pub at: Pos,
    pub key: String,
    pub path: Option<Spanned<String>>,
    pub header: Option<Spanned<String>>,
    pub json: Option<Spanned<String>>,
    pub pattern: Option<Spanned<String>>,
}

pub struct ListenFile {
    pub addr: SocketAddr,
    pub tls: Option<(String, String)>,
}

pub struct AppFile {
    pub name: Spanned<String>,
    pub hosts: Vec<Spanned<String>>,
    pub upstream: Option<Spanned<String>>,
    pub host_header: Option<Spanned<String>>,
    pub tls_verify: Option<bool>,
    pub case_insensitive_paths: Option<bool>,
    pub app_passwords: Option<bool>,
    pub mfa: Option<Spanned<MfaFile>>,
    pub login: Option<LoginSpec>,
    /// Header names for the identity sent upstream, by field.
    pub upstream_headers: Vec<(String, Spanned<String>)>,
    pub routes: Vec<RouteFile>,
}

pub enum MfaFile {
    Required,
    Optional,
    Off,
    Subjects { users: Vec<String>, groups: Vec<String> },
}

pub struct RouteFile {
    pub at: Pos,
    pub key: String,
    pub path: Option<Spanned<String>>,
    pub exact: bool,
    pub methods: Option<Vec<Spanned<String>>>,
    pub policy: Option<Spanned<String>>,
    pub max_age: Option<Spanned<Duration>>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub networks: Vec<IpNet>,
    pub app_passwords: Option<bool>,
}

const TOP_KEYS: &[&str] = &[
    "listen",
    "state_dir",
    "key_file",
    "previous_key_file",
    "store",
    "metrics",
    "log",
    "server",
    "trusted_proxies",
    "identity_headers",
    "users",
    "email",
    "sms",
    "admins",
    "pages",
    "second_factor",
    "session",
    "lockout",
    "apps",
];
const USERS_KEYS: &[&str] = &["file"];
const STORE_KEYS: &[&str] = &["url", "password_file"];
const EMAIL_KEYS: &[&str] = &[
    "from",
    "smtp",
    "file",
    "code_digits",
    "code_lifetime",
    "resend_after",
    "max_per_hour",
];
const SMTP_KEYS: &[&str] = &["host", "port", "security", "username", "password_file"];
const ADMINS_KEYS: &[&str] = &["users", "groups"];
const PAGES_KEYS: &[&str] = &["language", "colour", "logo"];
const UNUSUAL_KEYS: &[&str] = &["signals", "remember", "geoip"];
const SMS_KEYS: &[&str] = &[
    "webhook",
    "code_digits",
    "code_lifetime",
    "resend_after",
    "max_per_hour",
    "countries",
];
const WEBHOOK_KEYS: &[&str] = &["url", "method", "headers", "body"];
const SECRET_KEYS: &[&str] = &["file", "env"];
const SECOND_FACTOR_KEYS: &[&str] = &[
    "issuer",
    "email",
    "sms",
    "totp",
    "recovery_codes",
    "max_devices",
    "allow_opt_out",
    "remember_device",
    "keep_post_body",
    "security_keys",
    "unusual_sign_in",
    "enrolment",
];
/// How long a browser may skip the second factor (Azure AD's range, too).
const REMEMBER_DEVICE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(24 * 3600)..=Duration::from_secs(365 * 24 * 3600);
/// The largest form a step-up keeps (it is sealed into the store until replayed).
const KEEP_POST_BODY_MAX: u64 = 4 * 1024 * 1024;
const TOTP_KEYS: &[&str] = &["digits", "period", "skew"];
const ENROLMENT_KEYS: &[&str] = &["networks"];
const SESSION_KEYS: &[&str] = &["idle_timeout", "absolute_timeout", "login_timeout", "mfa_changes"];
const LOCKOUT_KEYS: &[&str] = &["max_failures", "window", "delay", "max_delay"];
const LOGIN_KEYS: &[&str] = &[
    "path",
    "method",
    "username_field",
    "identity",
    "success",
    "logout_path",
    "page",
    "return_param",
    "email_header",
    "username_case_sensitive",
    "max_body",
    "query",
    "session_cookie",
    "confirm",
    "overlay",
    "token",
];
const CONFIRM_KEYS: &[&str] = &["path", "header", "json", "pattern"];
const BASIC_KEYS: &[&str] = &["check", "logout_path"];
const SUCCESS_KEYS: &[&str] = &["status", "location", "location_not", "set_cookie", "json"];
const LISTEN_KEYS: &[&str] = &["addr", "tls"];
const TLS_KEYS: &[&str] = &["cert", "key"];
const METRICS_KEYS: &[&str] = &["listen"];
const LOG_KEYS: &[&str] = &["format", "level"];
const SERVER_KEYS: &[&str] = &["threads", "grace_period", "shutdown_timeout", "max_uri_length"];
const APP_KEYS: &[&str] = &[
    "hosts",
    "upstream",
    "host_header",
    "tls_verify",
    "case_insensitive_paths",
    "app_passwords",
    "mfa",
    "login",
    "upstream_headers",
    "routes",
];
const UPSTREAM_HEADER_KEYS: &[&str] = &["user", "groups", "auth_time", "method", "assertion"];
const MFA_KEYS: &[&str] = &["users", "groups"];
const ROUTE_KEYS: &[&str] = &[
    "path",
    "match",
    "methods",
    "policy",
    "max_age",
    "users",
    "groups",
    "networks",
    "app_passwords",
];

impl FileConfig {
    pub fn decode(d: &mut Decoder, root: &Node) -> Option<FileConfig> {
        let mut top = d.map(root, "", TOP_KEYS)?;
        let mut file = FileConfig {
            at: root.at,
            listen: Vec::new(),
            state_dir: None,
            key_file: None,
            previous_key_file: None,
            store: None,
            metrics_listen: None,
            log_format: None,
            log_level: None,
            threads: None,
            grace_period: None,
            shutdown_timeout: None,
            max_uri_length: None,
            trusted_proxies: Vec::new(),
            identity_headers: Vec::new(),
            users_file: None,
            email: None,
            sms: None,
            admins: None,
            pages: PagesFile::default(),
            second_factor: SecondFactorFile::default(),
            session: SessionFile::default(),
            lockout: LockoutFile::default(),
            apps: Vec::new(),
        };
        if let Some((node, key)) = top.require(
            d,
            "listen",
            root.at,
            "the addresses to accept requests on, such as [\"0.0.0.0:8080\"]",
        ) {
            file.listen = d.list(node, &key, "listen addresses", decode_listen);
            if matches!(&node.value, Value::Seq(items) if items.is_empty()) {
                d.error(node.at, &key, "give at least one address to listen on");
            }
        }
        if let Some((node, key)) = top.require(
            d,
            "state_dir",
            root.at,
            "a directory for the key file and the database",
        ) {
            file.state_dir = d.spanned_string(node, &key);
        }
        if let Some((node, key)) = top.get("key_file") {
            file.key_file = d.spanned_string(node, &key);
        }
        if let Some((node, key)) = top.get("previous_key_file") {
            file.previous_key_file = d.spanned_string(node, &key);
        }
        if let Some((node, key)) = top.get("store") {
            if let Some(mut m) = d.map(node, &key, STORE_KEYS) {
                let url = m
                    .require(
                        d,
                        "url",
                        node.at,
                        "the database, such as postgres://portvakt@db.internal/portvakt",
                    )
                    .and_then(|(n, k)| d.spanned_string(n, &k));
                let password_file = m.get("password_file").and_then(|(n, k)| d.spanned_string(n, &k));
                m.finish(d);
                file.store = url.map(|url| StoreFile { url, password_file });
            }
        }
        if let Some((node, key)) = top.get("metrics") {
            if let Some(mut m) = d.map(node, &key, METRICS_KEYS) {
                if let Some((n, k)) = m.require(
                    d,
                    "listen",
                    node.at,
                    "the address for Prometheus to scrape, such as 127.0.0.1:9464",
                ) {
                    file.metrics_listen = d.socket_addr(n, &k);
                }
                m.finish(d);
            }
        }
        if let Some((node, key)) = top.get("log") {
            if let Some(mut m) = d.map(node, &key, LOG_KEYS) {
                if let Some((n, k)) = m.get("format") {
                    file.log_format = d.spanned_string(n, &k);
                }
                if let Some((n, k)) = m.get("level") {
                    file.log_level = d.spanned_string(n, &k);
                }
                m.finish(d);
            }
        }
        if let Some((node, key)) = top.get("server") {
            if let Some(mut m) = d.map(node, &key, SERVER_KEYS) {
                if let Some((n, k)) = m.get("threads") {
                    file.threads = d.integer(n, &k, 1..=256);
                }
                if let Some((n, k)) = m.get("grace_period") {
                    file.grace_period = d.duration(n, &k);
                }
                if let Some((n, k)) = m.get("shutdown_timeout") {
                    file.shutdown_timeout = d.duration(n, &k);
                }
                if let Some((n, k)) = m.get("max_uri_length") {
                    file.max_uri_length = d.integer(n, &k, 256..=65_536);
                }
                m.finish(d);
            }
        }
        if let Some((node, key)) = top.get("trusted_proxies") {
            file.trusted_proxies = d.list(node, &key, "networks", |d, n, k| d.network(n, k));
        }
        if let Some((node, key)) = top.get("identity_headers") {
            file.identity_headers = d.list(node, &key, "header names", |d, n, k| d.spanned_string(n, k));
        }
        if let Some((node, key)) = top.get("users") {
            if let Some(mut m) = d.map(node, &key, USERS_KEYS) {
                if let Some((n, k)) = m.require(d, "file", node.at, "the users file, such as users.yaml") {
                    file.users_file = d.spanned_string(n, &k);
                }
                m.finish(d);
            }
        }
        if let Some((node, key)) = top.get("email") {
            file.email = decode_email(d, node, &key);
        }
        if let Some((node, key)) = top.get("sms") {
            file.sms = decode_sms(d, node, &key);
        }
        if let Some((node, key)) = top.get("admins") {
            if let Some(mut m) = d.map(node, &key, ADMINS_KEYS) {
                let users = m
                    .get("users")
                    .map(|(n, k)| d.list(n, &k, "user names", |d, n, k| d.string(n, k)))
                    .unwrap_or_default();
                let groups = m
                    .get("groups")
                    .map(|(n, k)| d.list(n, &k, "group names", |d, n, k| d.string(n, k)))
                    .unwrap_or_default();
                m.finish(d);
                file.admins = Some((users, groups));
            }
        }
        if let Some((node, key)) = top.get("pages") {
            if let Some(mut m) = d.map(node, &key, PAGES_KEYS) {
                for (name, slot) in [
                    ("language", &mut file.pages.language),
                    ("colour", &mut file.pages.colour),
                    ("logo", &mut file.pages.logo),
                ] {
                    if let Some((n, k)) = m.get(name) {
                        *slot = d.spanned_string(n, &k);
                    }
                }
                m.finish(d);
            }
        }
        if let Some((node, key)) = top.get("second_factor") {
            file.second_factor = decode_second_factor(d, node, &key);
        }
        if let Some((node, key)) = top.get("session") {
            file.session = decode_session(d, node, &key);
        }
        if let Some((node, key)) = top.get("lockout") {
            file.lockout = decode_lockout(d, node, &key);
        }
        if let Some((node, key)) = top.require(
            d,
            "apps",
            root.at,
            "the applications to put the gateway in front of",
        ) {
            let entries = d.named_entries(node, &key);
            if entries.is_empty() && matches!(node.value, Value::Map(_)) {
                d.error(node.at, &key, "configure at least one app");
            }
            for (name, app) in entries {
                let app_key = format!("{key}.{}", name.name);
                let name = Spanned {
                    value: name.name.clone(),
                    at: name.at,
                    key: app_key.clone(),
                };
                if let Some(app) = decode_app(d, app, &app_key, name) {
                    file.apps.push(app);
                }
            }
        }
        top.finish(d);
        Some(file)
    }
}

/// `"0.0.0.0:8080"`, or `{addr: "0.0.0.0:8443", tls: {cert: ..., key: ...}}`.
fn decode_listen(d: &mut Decoder, node: &Node, key: &str) -> Option<Spanned<ListenFile>> {
    let value = if matches!(node.value, Value::Map(_)) {
        let mut m = d.map(node, key, LISTEN_KEYS)?;
        let addr = m
            .require(d, "addr", node.at, "the address and port, such as 0.0.0.0:8443")
            .and_then(|(n, k)| d.socket_addr(n, &k));
        let mut tls = None;
        if let Some((n, k)) = m.get("tls") {
            if let Some(mut t) = d.map(n, &k, TLS_KEYS) {
                let cert = t
                    .require(d, "cert", n.at, "the PEM certificate chain file")
                    .and_then(|(n, k)| d.string(n, &k));
                let key_file = t
                    .require(d, "key", n.at, "the PEM private key file")
                    .and_then(|(n, k)| d.string(n, &k));
                t.finish(d);
                tls = Some(cert.zip(key_file)?);
            }
        }
        m.finish(d);
        ListenFile { addr: addr?, tls }
    } else {
        ListenFile {
            addr: d.socket_addr(node, key)?,
            tls: None,
        }
    };
    Some(Spanned {
        value,
        at: node.at,
        key: key.to_owned(),
    })
}

fn decode_app(d: &mut Decoder, node: &Node, key: &str, name: Spanned<String>) -> Option<AppFile> {
    let mut m = d.map(node, key, APP_KEYS)?;
    let mut app = AppFile {
        name,
        hosts: Vec::new(),
        upstream: None,
        host_header: None,
        tls_verify: None,
        case_insensitive_paths: None,
        app_passwords: None,
        mfa: None,
        login: None,
        upstream_headers: Vec::new(),
        routes: Vec::new(),
    };
    if let Some((n, k)) = m.require(
        d,
        "hosts",
        app.name.at,
        "the host names this app answers to, such as [wiki.example.com]",
    ) {
        app.hosts = d.list(n, &k, "host names", |d, n, k| d.spanned_string(n, k));
    }
    if let Some((n, k)) = m.require(
        d,
        "upstream",
        app.name.at,
        "the app's own address, such as http://127.0.0.1:3000",
    ) {
        app.upstream = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("host_header") {
        app.host_header = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("tls_verify") {
        app.tls_verify = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("case_insensitive_paths") {
        app.case_insensitive_paths = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("app_passwords") {
        app.app_passwords = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("mfa") {
        app.mfa = decode_mfa(d, n, &k);
    }
    if let Some((n, k)) = m.get("login") {
        app.login = decode_login(d, n, &k);
    }
    if let Some((n, k)) = m.get("upstream_headers") {
        if let Some(mut h) = d.map(n, &k, UPSTREAM_HEADER_KEYS) {
            for field in UPSTREAM_HEADER_KEYS {
                if let Some((n, k)) = h.get(field) {
                    if let Some(name) = d.spanned_string(n, &k) {
                        app.upstream_headers.push(((*field).to_owned(), name));
                    }
                }
            }
            h.finish(d);
        }
    }
    if let Some((n, k)) = m.get("routes") {
        let items = d.seq(n, &k, "route rules");
        for (i, item) in items.iter().enumerate() {
            if let Some(route) = decode_route(d, item, &format!("{k}[{i}]")) {
                app.routes.push(route);
            }
        }
    }
    m.finish(d);
    Some(app)
}

/// `required | optional | off`, or `{groups: [...], users: [...]}`.
fn decode_mfa(d: &mut Decoder, node: &Node, key: &str) -> Option<Spanned<MfaFile>> {
    let value = if matches!(node.value, Value::Map(_)) {
        let mut m = d.map(node, key, MFA_KEYS)?;
        let users = m
            .get("users")
            .map(|(n, k)| d.list(n, &k, "user names", |d, n, k| d.string(n, k)));
        let groups = m
            .get("groups")
            .map(|(n, k)| d.list(n, &k, "group names", |d, n, k| d.string(n, k)));
        m.finish(d);
        if users.is_none() && groups.is_none() {
            d.error(
                node.at,
                key,
                "name the `users` or `groups` that need a second factor",
            );
            return None;
        }
        MfaFile::Subjects {
            users: users.unwrap_or_default(),
            groups: groups.unwrap_or_default(),
        }
    } else {
        match d.string(node, key)?.as_str() {
            "required" => MfaFile::Required,
            "optional" => MfaFile::Optional,
            "off" => MfaFile::Off,
            other => {
                d.error(
                    node.at,
                    key,
                    format!("`{other}` is not an MFA mode; use required, optional, off, or {{groups: [...], users: [...]}}"),
                );
                return None;
            }
        }
    };
    Some(Spanned {
        value,
        at: node.at,
        key: key.to_owned(),
    })
}

fn decode_route(d: &mut Decoder, node: &Node, key: &str) -> Option<RouteFile> {
    let mut m = d.map(node, key, ROUTE_KEYS)?;
    let mut route = RouteFile {
        at: node.at,
        key: key.to_owned(),
        path: None,
        exact: false,
        methods: None,
        policy: None,
        max_age: None,
        users: Vec::new(),
        groups: Vec::new(),
        networks: Vec::new(),
        app_passwords: None,
    };
    if let Some((n, k)) = m.require(d, "path", node.at, "the path this rule covers, such as /admin") {
        route.path = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("match") {
        match d.string(n, &k).as_deref() {
            Some("prefix") => {}
            Some("exact") => route.exact = true,
            Some(other) => d.error(
                n.at,
                &k,
                format!("`{other}` is not a match kind; use prefix (the default) or exact"),
            ),
            None => {}
        }
    }
    if let Some((n, k)) = m.get("methods") {
        route.methods = Some(d.list(n, &k, "methods", |d, n, k| d.spanned_string(n, k)));
    }
    if let Some((n, k)) = m.require(d, "policy", node.at, "one of bypass, password, mfa, deny") {
        route.policy = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("max_age") {
        route.max_age = d.duration(n, &k).map(|value| Spanned {
            value,
            at: n.at,
            key: k,
        });
    }
    if let Some((n, k)) = m.get("users") {
        route.users = d.list(n, &k, "user names", |d, n, k| d.string(n, k));
    }
    if let Some((n, k)) = m.get("groups") {
        route.groups = d.list(n, &k, "group names", |d, n, k| d.string(n, k));
    }
    if let Some((n, k)) = m.get("networks") {
        route.networks = d.list(n, &k, "networks", |d, n, k| d.network(n, k));
    }
    if let Some((n, k)) = m.get("app_passwords") {
        route.app_passwords = d.bool(n, &k);
    }
    m.finish(d);
    Some(route)
}

fn decode_second_factor(d: &mut Decoder, node: &Node, key: &str) -> SecondFactorFile {
    let mut file = SecondFactorFile::default();
    let Some(mut m) = d.map(node, key, SECOND_FACTOR_KEYS) else {
        return file;
    };
    if let Some((n, k)) = m.get("issuer") {
        file.issuer = d.string(n, &k);
    }
    if let Some((n, k)) = m.get("totp") {
        if let Some(mut t) = d.map(n, &k, TOTP_KEYS) {
            if let Some((n, k)) = t.get("digits") {
                file.digits = d.integer(n, &k, 6..=8);
            }
            if let Some((n, k)) = t.get("period") {
                file.period = d.duration(n, &k);
            }
            if let Some((n, k)) = t.get("skew") {
                file.skew = d.integer(n, &k, 0..=1);
            }
            t.finish(d);
        }
    }
    if let Some((n, k)) = m.get("recovery_codes") {
        file.recovery_codes = d.integer(n, &k, 1..=20);
    }
    if let Some((n, k)) = m.get("max_devices") {
        file.max_devices = d.integer(n, &k, 1..=20);
    }
    if let Some((n, k)) = m.get("allow_opt_out") {
        file.allow_opt_out = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("remember_device") {
        file.remember_device = d.duration(n, &k);
        if file
            .remember_device
            .is_some_and(|t| !REMEMBER_DEVICE_RANGE.contains(&t))
        {
            d.error(
                n.at,
                &k,
                "a browser may be remembered for 1 to 365 days (such as 30d); leave the key out to never remember browsers",
            );
        }
    }
    if let Some((n, k)) = m.get("unusual_sign_in") {
        if let Some(mut u) = d.map(n, &k, UNUSUAL_KEYS) {
            let what = "which signals make a sign-in unusual: browser, network, country";
            let signals = u
                .require(d, "signals", n.at, what)
                .map(|(n, k)| d.list(n, &k, "signals", |d, n, k| d.spanned_string(n, k)))
                .unwrap_or_default();
            let remember = u.get("remember").and_then(|(n, k)| d.duration(n, &k));
            let geoip = u.get("geoip").and_then(|(n, k)| d.spanned_string(n, &k));
            u.finish(d);
            file.unusual_sign_in = Some(UnusualFile {
                signals,
                remember,
                geoip,
                at: n.at,
                key: k.clone(),
            });
        }
    }
    if let Some((n, k)) = m.get("security_keys") {
        file.security_keys = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("keep_post_body") {
        file.keep_post_body = d.integer(n, &k, 0..=KEEP_POST_BODY_MAX);
    }
    if let Some((n, k)) = m.get("email") {
        file.email = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("sms") {
        file.sms = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("enrolment") {
        if matches!(n.value, Value::Map(_)) {
            if let Some(mut e) = d.map(n, &k, ENROLMENT_KEYS) {
                let what = "the networks a first device may be enrolled from";
                if let Some((n, k)) = e.require(d, "networks", n.at, what) {
                    file.enrolment_networks = Some(d.list(n, &k, "networks", |d, n, k| d.network(n, k)));
                }
                e.finish(d);
            }
        } else if d.string(n, &k).as_deref() == Some("admin") {
            file.enrolment_by_admin = true;
        } else if let Some(other) = d.string(n, &k).filter(|v| v != "open") {
            d.error(
                n.at,
                &k,
                format!("`{other}` is not an enrolment rule; use `open`, `admin`, or `{{networks: [...]}}` to allow it only from those networks"),
            );
        }
    }
    m.finish(d);
    file
}

fn decode_session(d: &mut Decoder, node: &Node, key: &str) -> SessionFile {
    let mut file = SessionFile::default();
    if let Some(mut m) = d.map(node, key, SESSION_KEYS) {
        if let Some((n, k)) = m.get("idle_timeout") {
            file.idle_timeout = d.duration(n, &k);
        }
        if let Some((n, k)) = m.get("absolute_timeout") {
            file.absolute_timeout = d.duration(n, &k).map(|value| Spanned {
                value,
                at: n.at,
                key: k,
            });
        }
        if let Some((n, k)) = m.get("login_timeout") {
            file.login_timeout = d.duration(n, &k);
        }
        if let Some((n, k)) = m.get("mfa_changes") {
            file.mfa_changes = d.spanned_string(n, &k);
        }
        m.finish(d);
    }
    file
}

fn decode_lockout(d: &mut Decoder, node: &Node, key: &str) -> LockoutFile {
    let mut file = LockoutFile::default();
    if let Some(mut m) = d.map(node, key, LOCKOUT_KEYS) {
        if let Some((n, k)) = m.get("max_failures") {
            file.max_failures = d.integer(n, &k, 1..=100);
        }
        if let Some((n, k)) = m.get("window") {
            file.window = d.duration(n, &k);
        }
        if let Some((n, k)) = m.get("delay") {
            file.delay = d.duration(n, &k);
        }
        if let Some((n, k)) = m.get("max_delay") {
            file.max_delay = d.duration(n, &k);
        }
        m.finish(d);
    }
    file
}

/// `login: { basic: { check: /status, logout_path: /logout } }` (no other key).
fn decode_basic(d: &mut Decoder, node: &Node, key: &str) -> Option<LoginSpec> {
    let mut m = d.map(node, key, &["basic"])?;
    let mut basic = BasicFile::default();
    if let Some((n, k)) = m.get("basic") {
        if let Some(mut b) = d.map(n, &k, BASIC_KEYS) {
            basic.check = b.get("check").and_then(|(n, k)| d.spanned_string(n, &k));
            basic.logout_path = b.get("logout_path").and_then(|(n, k)| d.spanned_string(n, &k));
            b.finish(d);
        }
    }
    m.finish(d);
    Some(LoginSpec::Basic(basic))
}

fn decode_login(d: &mut Decoder, node: &Node, key: &str) -> Option<LoginSpec> {
    if let Value::Scalar { .. } = node.value {
        return match d.string(node, key)?.as_str() {
            "gateway" => Some(LoginSpec::Gateway),
            "basic" => Some(LoginSpec::Basic(BasicFile::default())),
            other => {
                d.error(
                    node.at,
                    key,
                    format!("`{other}` is not a login; write `gateway` or `basic`, or describe the app's own form with `path` and `username_field`"),
                );
                None
            }
        };
    }
    let is_basic =
        matches!(&node.value, Value::Map(entries) if entries.iter().any(|(k, _)| k.name == "basic"));
    if is_basic {
        return decode_basic(d, node, key);
    }
    let mut m = d.map(node, key, LOGIN_KEYS)?;
    let mut login = LoginFile {
        at: node.at,
        key: key.to_owned(),
        path: None,
        method: None,
        username_field: None,
        identity: None,
        success_status: None,
        success_location: None,
        success_location_not: None,
        success_set_cookie: None,
        success_json: None,
        logout_path: None,
        page: None,
        return_param: None,
        email_header: None,
        username_case_sensitive: None,
        max_body: None,
        query: Vec::new(),
        session_cookie: None,
        confirm: None,
        overlay: None,
        token: None,
    };
    if let Some((n, k)) = m.require(
        d,
        "path",
        node.at,
        "the path the app's login form posts to, such as /login",
    ) {
        login.path = d.spanned_string(n, &k);
    }
    for (name, slot) in [
        ("method", &mut login.method),
        ("username_field", &mut login.username_field),
        ("identity", &mut login.identity),
        ("logout_path", &mut login.logout_path),
        ("page", &mut login.page),
        ("return_param", &mut login.return_param),
        ("email_header", &mut login.email_header),
        ("token", &mut login.token),
    ] {
        if let Some((n, k)) = m.get(name) {
            *slot = d.spanned_string(n, &k);
        }
    }
    if let Some((n, k)) = m.get("success") {
        if let Some(mut s) = d.map(n, &k, SUCCESS_KEYS) {
            if let Some((n, k)) = s.get("status") {
                login.success_status = Some(d.list(n, &k, "status codes", |d, n, k| {
                    d.integer(n, k, 100..=599).map(|value| Spanned {
                        value,
                        at: n.at,
                        key: k.to_owned(),
                    })
                }));
            }
            for (name, slot) in [
                ("location", &mut login.success_location),
                ("location_not", &mut login.success_location_not),
                ("set_cookie", &mut login.success_set_cookie),
                ("json", &mut login.success_json),
            ] {
                if let Some((n, k)) = s.get(name) {
                    *slot = d.spanned_string(n, &k);
                }
            }
            s.finish(d);
        }
    }
    if let Some((n, k)) = m.get("max_body") {
        login.max_body = d.integer(n, &k, 1024..=1_048_576);
    }
    if let Some((n, k)) = m.get("username_case_sensitive") {
        login.username_case_sensitive = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("overlay") {
        login.overlay = d.bool(n, &k);
    }
    if let Some((n, k)) = m.get("query") {
        for (key, value) in d.named_entries(n, &k) {
            let child = format!("{k}.{}", key.name);
            if let Some(value) = d.string(value, &child) {
                let name = Spanned {
                    value: key.name.clone(),
                    at: key.at,
                    key: child,
                };
                login.query.push((name, value));
            }
        }
    }
    if let Some((n, k)) = m.get("confirm") {
        login.confirm = decode_confirm(d, n, &k);
    }
    if let Some((n, k)) = m.get("session_cookie") {
        login.session_cookie = Some(match &n.value {
            Value::Seq(_) => d.list(n, &k, "cookie names", |d, n, k| d.spanned_string(n, k)),
            _ => d.spanned_string(n, &k).into_iter().collect(),
        });
    }
    m.finish(d);
    Some(LoginSpec::Form(Box::new(login)))
}

fn decode_confirm(d: &mut Decoder, node: &Node, key: &str) -> Option<ConfirmFile> {
    let mut m = d.map(node, key, CONFIRM_KEYS)?;
    let mut confirm = ConfirmFile {
        at: node.at,
        key: key.to_owned(),
        path: None,
        header: None,
        json: None,
        pattern: None,
    };
    if let Some((n, k)) = m.require(
        d,
        "path",
        node.at,
        "the app's page that says who is signed in, such as /api/me",
    ) {
        confirm.path = d.spanned_string(n, &k);
    }
    for (name, slot) in [
        ("header", &mut confirm.header),
        ("json", &mut confirm.json),
        ("pattern", &mut confirm.pattern),
    ] {
        if let Some((n, k)) = m.get(name) {
            *slot = d.spanned_string(n, &k);
        }
    }
    m.finish(d);
    Some(confirm)
}

fn decode_sms(d: &mut Decoder, node: &Node, key: &str) -> Option<SmsFile> {
    let mut m = d.map(node, key, SMS_KEYS)?;
    let mut sms = SmsFile {
        at: node.at,
        key: key.to_owned(),
        url: None,
        method: None,
        headers: Vec::new(),
        body: None,
        code_digits: None,
        code_lifetime: None,
        resend_after: None,
        max_per_hour: None,
        countries: None,
    };
    let what = "the provider's webhook: its url, and the method, headers and body to send";
    if let Some((n, k)) = m.require(d, "webhook", node.at, what) {
        if let Some(mut w) = d.map(n, &k, WEBHOOK_KEYS) {
            if let Some((n, k)) = w.require(d, "url", n.at, "where the provider takes messages") {
                sms.url = d.spanned_string(n, &k);
            }
            if let Some((n, k)) = w.get("method") {
                sms.method = d.spanned_string(n, &k);
            }
            if let Some((n, k)) = w.get("headers") {
                for (name, value) in d.named_entries(n, &k) {
                    let child = format!("{k}.{}", name.name);
                    let name = Spanned {
                        value: name.name.clone(),
                        at: name.at,
                        key: child.clone(),
                    };
                    if let Some(value) = decode_secret_text(d, value, &child) {
                        sms.headers.push((name, value));
                    }
                }
            }
            if let Some((n, k)) = w.require(d, "body", n.at, "the message's body, with {to} and {message}") {
                sms.body = d.spanned_string(n, &k);
            }
            w.finish(d);
        }
    }
    if let Some((n, k)) = m.get("code_digits") {
        sms.code_digits = d.integer(n, &k, 6..=8);
    }
    if let Some((n, k)) = m.get("code_lifetime") {
        sms.code_lifetime = d.duration(n, &k);
    }
    if let Some((n, k)) = m.get("resend_after") {
        sms.resend_after = d.duration(n, &k);
    }
    if let Some((n, k)) = m.get("max_per_hour") {
        sms.max_per_hour = d.integer(n, &k, 1..=100);
    }
    if let Some((n, k)) = m.get("countries") {
        sms.countries = Some(d.list(n, &k, "number prefixes", |d, n, k| d.spanned_string(n, k)));
    }
    m.finish(d);
    Some(sms)
}

/// Text written here, or `{ file: path }`, or `{ env: NAME }`.
fn decode_secret_text(d: &mut Decoder, node: &Node, key: &str) -> Option<SecretText> {
    if !matches!(node.value, Value::Map(_)) {
        return d.spanned_string(node, key).map(SecretText::Text);
    }
    let mut m = d.map(node, key, SECRET_KEYS)?;
    let file = m.get("file").and_then(|(n, k)| d.spanned_string(n, &k));
    let env = m.get("env").and_then(|(n, k)| d.spanned_string(n, &k));
    m.finish(d);
    match (file, env) {
        (Some(file), None) => Some(SecretText::File(file)),
        (None, Some(env)) => Some(SecretText::Env(env)),
        _ => {
            d.error(
                node.at,
                key,
                "give the value, or `file` (a file holding it) or `env` (an environment variable holding it), one of them",
            );
            None
        }
    }
}

fn decode_email(d: &mut Decoder, node: &Node, key: &str) -> Option<EmailFile> {
    let mut m = d.map(node, key, EMAIL_KEYS)?;
    let mut email = EmailFile {
        at: node.at,
        key: key.to_owned(),
        from: None,
        smtp: None,
        file: None,
        code_digits: None,
        code_lifetime: None,
        resend_after: None,
        max_per_hour: None,
    };
    if let Some((n, k)) = m.require(
        d,
        "from",
        node.at,
        "the sender, such as \"Portvakt <portvakt@example.com>\"",
    ) {
        email.from = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("file") {
        email.file = d.spanned_string(n, &k);
    }
    if let Some((n, k)) = m.get("code_digits") {
        email.code_digits = d.integer(n, &k, 6..=8);
    }
    if let Some((n, k)) = m.get("code_lifetime") {
        email.code_lifetime = d.duration(n, &k);
    }
    if let Some((n, k)) = m.get("resend_after") {
        email.resend_after = d.duration(n, &k);
    }
    if let Some((n, k)) = m.get("max_per_hour") {
        email.max_per_hour = d.integer(n, &k, 1..=100);
    }
    if let Some((n, k)) = m.get("smtp") {
        if let Some(mut s) = d.map(n, &k, SMTP_KEYS) {
            let mut smtp = SmtpFile {
                host: None,
                port: None,
                security: None,
                username: None,
                password_file: None,
            };
            if let Some((n, k)) = s.require(d, "host", n.at, "the SMTP server's name") {
                smtp.host = d.spanned_string(n, &k);
            }
            if let Some((n, k)) = s.get("port") {
                smtp.port = d.integer(n, &k, 1..=65_535);
            }
            if let Some((n, k)) = s.get("security") {
                smtp.security = d.spanned_string(n, &k);
            }
            if let Some((n, k)) = s.get("username") {
                smtp.username = d.string(n, &k);
            }
            if let Some((n, k)) = s.get("password_file") {
                smtp.password_file = d.spanned_string(n, &k);
            }
            s.finish(d);
            email.smtp = Some(smtp);
        }
    }
    m.finish(d);
    Some(email)
}
