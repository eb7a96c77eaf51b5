//! From the file model to the running model: the checks that span keys (hosts claimed
//! twice, rules that cannot be ordered, upstreams that do not resolve) and the
//! defaults for what the file leaves out.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::Duration;

use super::decode::{Decoder, Spanned};
use super::file::{
    AppFile, BasicFile, ConfirmFile, EmailFile, FileConfig, LockoutFile, LoginFile, LoginSpec, MfaFile,
    PagesFile, RouteFile, SecondFactorFile, SecretText, SessionFile, SmsFile, SmtpFile, StoreFile,
    UnusualFile,
};
use super::model::{
    fold_header_name, fold_host, App, BasicLogin, Config, ConfirmRead, ConfirmRule, EmailSettings,
    EmailTransport, EmailUse, Enrolment, IdentityHeader, Listener, LogFormat, LogSettings, LoginInterception,
    MfaChanges, PageSettings, SecondFactorSettings, ServerSettings, SessionSettings, SignIn, SmsSettings,
    SmsUse, SmtpSecurity, StoreLocation, SuccessRule, TlsFiles, UnusualSignIn, Upstream, UpstreamHeaders,
    UsernameSource, Users,
};
use crate::factors::lockout::LockoutPolicy;
use crate::factors::totp::TotpSettings;
use crate::login::{CookieNames, QueryConditions};
use crate::policy::{self, AppPolicy, MfaMode, PathMatch, RouteTable, Rule, RulePolicy, Subjects};

const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub fn build(d: &mut Decoder, file: FileConfig, source: &Path) -> Option<Config> {
    let base = source.parent().unwrap_or(Path::new("."));
    let mut listeners = Vec::new();
    for entry in file.listen {
        let tls = entry.value.tls.map(|(cert, key)| TlsFiles {
            cert: base.join(cert),
            key: base.join(key),
        });
        for path in tls.iter().flat_map(|t| [&t.cert, &t.key]) {
            if let Err(e) = std::fs::File::open(path) {
                d.error(
                    entry.at,
                    &entry.key,
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        }
        listeners.push(Listener {
            addr: entry.value.addr,
            tls,
        });
    }
    let log = LogSettings {
        format: one_of(
            d,
            file.log_format.as_ref(),
            "a log format",
            &[("plain", LogFormat::Plain), ("json", LogFormat::Json)],
            LogFormat::Plain,
        )
        .unwrap_or(LogFormat::Plain),
        level: match file.log_level {
            None => "info".into(),
            Some(level) => {
                if tracing_subscriber::EnvFilter::try_new(&level.value).is_err() {
                    d.error(
                        level.at,
                        &level.key,
                        format!(
                            "`{}` is not a log level; use error, warn, info, debug or trace",
                            level.value
                        ),
                    );
                }
                level.value
            }
        },
    };
    let threads = match file.threads {
        Some(n) => usize::try_from(n).unwrap_or(1),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let server = ServerSettings {
        threads,
        grace_period: file.grace_period.unwrap_or(Duration::from_secs(5)),
        shutdown_timeout: file.shutdown_timeout.unwrap_or(Duration::from_secs(5)),
        max_uri_length: file
            .max_uri_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(8192),
    };
    let mut identity_headers = Vec::new();
    for header in &file.identity_headers {
        if http::HeaderName::from_bytes(header.value.as_bytes()).is_err() {
            d.error(
                header.at,
                &header.key,
                format!("`{}` is not a valid header name", header.value),
            );
        } else {
            identity_headers.push(fold_header_name(&header.value).into_owned());
        }
    }
    let mut apps = Vec::new();
    // Folded host → (index of the app, its name, where the host was written).
    let mut hosts: HashMap<String, (usize, String, Spanned<String>)> = HashMap::new();
    for (index, app) in file.apps.into_iter().enumerate() {
        for host in &app.hosts {
            let Some(folded) = check_host(d, host) else {
                continue;
            };
            if let Some((_, other, first)) = hosts.get(&folded) {
                d.error(
                    host.at,
                    &host.key,
                    format!(
                        "host `{}` is already served by app `{other}` (line {}); a host belongs to one app",
                        host.value, first.at.line
                    ),
                );
            } else {
                hosts.insert(folded, (index, app.name.value.clone(), host.clone()));
            }
        }
        if app.hosts.is_empty() {
            d.error(
                app.name.at,
                &app.name.key,
                "list at least one host name under `hosts`",
            );
        }
        // An app that fails to build leaves an error behind, so the indices above
        // only ever reach a configuration in which every app was built.
        if let Some(app) = build_app(d, app, source) {
            apps.push(app);
        }
    }
    // Whatever names an app receives identity in, no client may send them.
    for app in &apps {
        let h = &app.upstream_headers;
        for name in [&h.user, &h.groups, &h.auth_time, &h.method, &h.assertion] {
            let folded = fold_header_name(name.as_str()).into_owned();
            if !identity_headers.contains(&folded) {
                identity_headers.push(folded);
            }
        }
    }
    let users = match &file.users_file {
        Some(path) => super::users::load(d, path, base),
        None => Users::default(),
    };
    let pages = build_pages(d, &file.pages, base);
    let email = file.email.as_ref().and_then(|e| build_email(d, e, base));
    // Admin names follow the same single-account rule as every user name.
    let admins = file
        .admins
        .clone()
        .map(|(users, groups)| Subjects {
            users: users.iter().map(|u| u.trim().to_lowercase()).collect(),
            groups,
        })
        .unwrap_or_default();
    let email_use = one_of(
        d,
        file.second_factor.email.as_ref(),
        "an e-mail use",
        &[
            ("off", EmailUse::Off),
            ("fallback", EmailUse::Fallback),
            ("second_factor", EmailUse::SecondFactor),
        ],
        EmailUse::Off,
    )
    .unwrap_or(EmailUse::Off);
    if email_use != EmailUse::Off && file.email.is_none() {
        let at = file
            .second_factor
            .email
            .as_ref()
            .map(|s| (s.at, s.key.clone()))
            .unwrap_or_default();
        d.error(
            at.0,
            &at.1,
            "e-mail codes need an `email` section saying how mail is sent",
        );
    }
    let sms = file.sms.as_ref().and_then(|s| build_sms(d, s, base));
    let sms_use = one_of(
        d,
        file.second_factor.sms.as_ref(),
        "a text-message use",
        &[("off", SmsUse::Off), ("fallback", SmsUse::Fallback)],
        SmsUse::Off,
    )
    .unwrap_or(SmsUse::Off);
    if let (SmsUse::Fallback, None, Some(at)) = (sms_use, &file.sms, &file.second_factor.sms) {
        d.error(
            at.at,
            &at.key,
            "codes by text message need an `sms` section naming the provider's webhook",
        );
    }
    let unusual_sign_in = file
        .second_factor
        .unusual_sign_in
        .as_ref()
        .and_then(|unusual| build_unusual(d, unusual, file.email.is_some(), base));
    let mut second_factor = build_second_factor(file.second_factor);
    second_factor.unusual_sign_in = unusual_sign_in;
    second_factor.email = email_use;
    second_factor.sms = sms_use;
    let session = build_session(d, file.session);
    let lockout = build_lockout(file.lockout);
    let state_dir = file.state_dir.map(|s| base.join(s.value))?;
    let store = file
        .store
        .as_ref()
        .map_or(Some(StoreLocation::Sqlite), |s| build_store(d, s, base));
    Some(Config {
        source: source.to_path_buf(),
        listeners,
        state_dir,
        key_file: file.key_file.map(|s| base.join(s.value)),
        previous_key_file: file.previous_key_file.map(|s| base.join(s.value)),
        store: store?,
        metrics_listen: file.metrics_listen,
        log,
        server,
        trusted_proxies: file.trusted_proxies,
        identity_headers,
        users,
        email,
        sms,
        admins,
        pages,
        second_factor,
        session,
        lockout,
        apps,
        hosts: hosts.into_iter().map(|(k, (i, _, _))| (k, i)).collect(),
    })
}

/// A PostgreSQL store: its URL must parse (so a typo stops the gateway here, with
/// the position, rather than at the first request), and its password file must
/// be readable.
fn build_store(d: &mut Decoder, store: &StoreFile, base: &Path) -> Option<StoreLocation> {
    let url = &store.url;
    if !(url.value.starts_with("postgres://") || url.value.starts_with("postgresql://")) {
        d.error(
            url.at,
            &url.key,
            "give a PostgreSQL URL such as postgres://portvakt@db.internal/portvakt (without `store`, the state directory's SQLite file is used)",
        );
        return None;
    }
    match url.value.parse::<tokio_postgres::Config>() {
        Err(e) => {
            d.error(url.at, &url.key, format!("not a PostgreSQL URL: {e}"));
            return None;
        }
        Ok(parsed) => {
            if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                d.error(
                    url.at,
                    &url.key,
                    "sslmode=require: this build connects to PostgreSQL without TLS; reach the database over a private network or the same host, and leave sslmode out",
                );
                return None;
            }
        }
    }
    let password = match &store.password_file {
        None => None,
        Some(p) => Some(read_password_file(d, p, base, "database")?),
    };
    Some(StoreLocation::Postgres {
        url: url.value.clone(),
        password,
    })
}

/// A password kept in a file of its own (never in the configuration), without the
/// line end an editor leaves; an unreadable file is an error at the key naming it.
fn read_password_file(d: &mut Decoder, file: &Spanned<String>, base: &Path, what: &str) -> Option<String> {
    let path = base.join(&file.value);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e) => {
            d.error(
                file.at,
                &file.key,
                format!("cannot read the {what} password from {}: {e}", path.display()),
            );
            None
        }
    }
}

/// A host entry: a DNS name or IP literal, optionally with `:port`.
fn check_host(d: &mut Decoder, host: &Spanned<String>) -> Option<String> {
    let valid = host
        .value
        .parse::<http::uri::Authority>()
        .ok()
        .filter(|a| !a.as_str().contains('@') && !a.host().is_empty());
    if valid.is_none() {
        d.error(
            host.at,
            &host.key,
            format!(
                "`{}` is not a host name; write a name such as wiki.example.com, optionally with :port",
                host.value
            ),
        );
        return None;
    }
    Some(fold_host(&host.value).into_owned())
}

fn build_app(d: &mut Decoder, app: AppFile, source: &Path) -> Option<App> {
    let upstream = app
        .upstream
        .as_ref()
        .and_then(|u| parse_upstream(d, u, app.tls_verify.unwrap_or(true)));
    let sign_in = match &app.login {
        None => None,
        Some(LoginSpec::Gateway) => Some(Some(SignIn::Gateway)),
        Some(LoginSpec::Basic(basic)) => Some(build_basic(d, basic).map(SignIn::Basic)),
        Some(LoginSpec::Form(form)) => Some(build_login(d, form).map(|l| SignIn::AppForm(Box::new(l)))),
    };
    let upstream_headers = build_upstream_headers(d, &app.upstream_headers);
    let host_header = app.host_header.and_then(|h| check_host(d, &h).map(|_| h.value));
    let mfa = match app.mfa.map(|m| m.value) {
        None | Some(MfaFile::Required) => MfaMode::Required,
        Some(MfaFile::Optional) => MfaMode::Optional,
        Some(MfaFile::Off) => MfaMode::Off,
        Some(MfaFile::Subjects { users, groups }) => MfaMode::ForSubjects(Subjects { users, groups }),
    };
    let file_name = source.display().to_string();
    let mut rules = Vec::new();
    let mut rule_files: Vec<&RouteFile> = Vec::new();
    for route in &app.routes {
        if let Some(rule) = build_rule(d, route, &file_name) {
            rules.push(rule);
            rule_files.push(route);
        }
    }
    let routes = match RouteTable::build(rules, app.case_insensitive_paths.unwrap_or(false)) {
        Ok(table) => Some(table),
        Err(conflicts) => {
            for c in conflicts {
                let (first, second) = (rule_files[c.first], rule_files[c.second]);
                d.error(
                    second.at,
                    &second.key,
                    format!(
                        "this rule and {} (line {}) match the same requests and neither is more specific; \
                         merge them, give them different `methods`, or make one of them conditional",
                        first.key, first.at.line
                    ),
                );
            }
            None
        }
    };
    Some(App {
        name: app.name.value,
        upstream: upstream?,
        host_header,
        sign_in: sign_in.flatten(),
        upstream_headers,
        policy: AppPolicy {
            mfa,
            // Set from the store's record of changes when the gateway takes the file.
            mfa_in_force_since: None,
            app_passwords: app.app_passwords.unwrap_or(false),
            routes: routes?,
        },
    })
}

fn build_rule(d: &mut Decoder, route: &RouteFile, file_name: &str) -> Option<Rule> {
    let path = route.path.as_ref().and_then(|p| normal_path(d, p));
    let methods = route.methods.as_ref().map(|methods| {
        methods
            .iter()
            .filter_map(|m| {
                let upper = m.value.to_ascii_uppercase();
                if m.value != upper && STANDARD_METHODS.contains(&upper.as_str()) {
                    d.error(
                        m.at,
                        &m.key,
                        format!("methods are case-sensitive; did you mean {upper}?"),
                    );
                    None
                } else if http::Method::from_bytes(m.value.as_bytes()).is_err() {
                    d.error(m.at, &m.key, format!("`{}` is not a method name", m.value));
                    None
                } else {
                    Some(m.value.clone())
                }
            })
            .collect::<Vec<_>>()
    });
    if route.methods.as_ref().is_some_and(Vec::is_empty) {
        d.error(
            route.at,
            &route.key,
            "`methods` is empty; list at least one method, or leave it out to cover all",
        );
    }
    let policy = route.policy.as_ref().and_then(|p| match p.value.as_str() {
        "bypass" => Some(RulePolicy::Bypass),
        "password" => Some(RulePolicy::Password),
        "mfa" => Some(RulePolicy::Mfa {
            max_age: route.max_age.as_ref().map(|m| m.value),
        }),
        "deny" => Some(RulePolicy::Deny),
        other => {
            d.error(
                p.at,
                &p.key,
                format!("`{other}` is not a policy; use bypass, password, mfa or deny"),
            );
            None
        }
    });
    if let (Some(max_age), Some(p)) = (&route.max_age, &policy) {
        if !matches!(p, RulePolicy::Mfa { .. }) {
            d.error(
                max_age.at,
                &max_age.key,
                "`max_age` applies only to `policy: mfa`",
            );
        }
    }
    if matches!(policy, Some(RulePolicy::Bypass)) && !(route.users.is_empty() && route.groups.is_empty()) {
        d.error(
            route.at,
            &route.key,
            "a bypass rule cannot name users or groups: it is tried before anyone signs in",
        );
    }
    Some(Rule {
        path: path?,
        path_match: if route.exact {
            PathMatch::Exact
        } else {
            PathMatch::Prefix
        },
        methods: methods.filter(|m| !m.is_empty()),
        policy: policy?,
        subjects: Subjects {
            users: route.users.clone(),
            groups: route.groups.clone(),
        },
        networks: route.networks.clone(),
        app_passwords: route.app_passwords,
        origin: format!(
            "{file_name}:{}:{} ({})",
            route.at.line, route.at.column, route.key
        ),
    })
}

fn parse_upstream(d: &mut Decoder, url: &Spanned<String>, verify_tls: bool) -> Option<Upstream> {
    let fail = |d: &mut Decoder, why: &str| {
        d.error(
            url.at,
            &url.key,
            format!(
                "`{}` {why}; write http://host:port or https://host:port",
                url.value
            ),
        );
        None
    };
    let Ok(uri) = url.value.parse::<http::Uri>() else {
        return fail(d, "is not a URL");
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return fail(d, "needs the scheme http:// or https://"),
    };
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return fail(
            d,
            "must not have a path or query (the gateway forwards the request's own path)",
        );
    }
    let Some(authority) = uri.authority() else {
        return fail(d, "has no host");
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = match (host.as_str(), port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) | Err(_) => return fail(d, "does not resolve to an address"),
    };
    Some(Upstream {
        url: url.value.clone(),
        addr,
        tls,
        sni: host,
        verify_tls,
    })
}

/// `login: basic`: where credentials are checked (a path in normal form) and the
/// app's logout, if it has one.
fn build_basic(d: &mut Decoder, basic: &BasicFile) -> Option<BasicLogin> {
    // Sent as a request target: the form written (and checked to be normal).
    let check = match &basic.check {
        Some(check) => {
            normal_path(d, check)?;
            check.value.clone()
        }
        None => "/".to_owned(),
    };
    let logout_path = match &basic.logout_path {
        Some(logout) => Some(normal_path(d, logout)?),
        None => None,
    };
    Some(BasicLogin { check, logout_path })
}

/// A path with optional query conditions: `/index.php?do=login`. Each condition
/// names a key once.
fn path_and_query(d: &mut Decoder, p: &Spanned<String>) -> Option<(String, QueryConditions)> {
    let (path, query) = p.value.split_once('?').unwrap_or((&p.value, ""));
    let path = normal_path(
        d,
        &Spanned {
            value: path.to_owned(),
            at: p.at,
            key: p.key.clone(),
        },
    )?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    conditions(d, p, pairs).map(|c| (path, c))
}

/// Query conditions: keys not empty, each once.
fn conditions(
    d: &mut Decoder,
    at: &Spanned<String>,
    pairs: Vec<(String, String)>,
) -> Option<QueryConditions> {
    for (i, (key, _)) in pairs.iter().enumerate() {
        if key.is_empty() || pairs[..i].iter().any(|(k, _)| k == key) {
            d.error(
                at.at,
                &at.key,
                format!("the query condition `{key}` is empty or given twice; name each key once"),
            );
            return None;
        }
    }
    Some(QueryConditions::new(pairs))
}

/// A path as rules and login settings hold it: decoded, in normal form, without a
/// trailing slash (except `/`). Anything else is an error naming the normal form.
fn normal_path(d: &mut Decoder, p: &Spanned<String>) -> Option<String> {
    match policy::normalise(p.value.as_bytes()) {
        Ok(n) if n.forwarded() == p.value || n.forwarded() == format!("{}/", p.value) => {
            let decoded = n.decoded().trim_end_matches('/');
            Some(if decoded.is_empty() {
                "/".to_owned()
            } else {
                decoded.to_owned()
            })
        }
        Ok(n) => {
            d.error(
                p.at,
                &p.key,
                format!("write the path in its normal form: {}", n.forwarded()),
            );
            None
        }
        Err(e) => {
            d.error(p.at, &p.key, format!("`{}` is not a usable path: {e}", p.value));
            None
        }
    }
}

/// A form of up to 64 KiB posted across a step-up is kept: any form of text
/// fields, not large uploads.
const DEFAULT_KEEP_POST_BODY: usize = 64 * 1024;

fn build_second_factor(file: SecondFactorFile) -> SecondFactorSettings {
    let defaults = TotpSettings::default();
    SecondFactorSettings {
        issuer: file.issuer.unwrap_or_else(|| "Portvakt".to_owned()),
        totp: TotpSettings {
            digits: file
                .digits
                .and_then(|n| u8::try_from(n).ok())
                .unwrap_or(defaults.digits),
            period: file.period.unwrap_or(defaults.period),
            skew: file
                .skew
                .and_then(|n| u8::try_from(n).ok())
                .unwrap_or(defaults.skew),
        },
        recovery_codes: file
            .recovery_codes
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(10),
        max_devices: file
            .max_devices
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(5),
        allow_opt_out: file.allow_opt_out.unwrap_or(true),
        remember_device: file.remember_device,
        keep_post_body: file
            .keep_post_body
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_KEEP_POST_BODY),
        email: EmailUse::Off,
        sms: SmsUse::Off,
        security_keys: file.security_keys.unwrap_or(true),
        unusual_sign_in: None,
        enrolment: match (file.enrolment_by_admin, file.enrolment_networks) {
            (true, _) => Enrolment::AdminOpened,
            (false, None) => Enrolment::Open,
            (false, Some(networks)) => Enrolment::FromNetworks(networks),
        },
    }
}

fn build_session(d: &mut Decoder, file: SessionFile) -> SessionSettings {
    let settings = SessionSettings {
        idle_timeout: file.idle_timeout.unwrap_or(Duration::from_secs(30 * 60)),
        absolute_timeout: file
            .absolute_timeout
            .as_ref()
            .map_or(Duration::from_secs(12 * 3600), |a| a.value),
        login_timeout: file.login_timeout.unwrap_or(Duration::from_secs(5 * 60)),
        mfa_changes: one_of(
            d,
            file.mfa_changes.as_ref(),
            "a time for mfa changes to reach sessions",
            &[
                ("next_sign_in", MfaChanges::NextSignIn),
                ("immediately", MfaChanges::Immediately),
            ],
            MfaChanges::NextSignIn,
        )
        .unwrap_or(MfaChanges::NextSignIn),
    };
    if let Some(absolute) = &file.absolute_timeout {
        if absolute.value < settings.idle_timeout {
            d.error(
                absolute.at,
                &absolute.key,
                "`absolute_timeout` must not be shorter than `idle_timeout`",
            );
        }
    }
    settings
}

fn build_lockout(file: LockoutFile) -> LockoutPolicy {
    let defaults = LockoutPolicy::default();
    LockoutPolicy {
        max_failures: file
            .max_failures
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.max_failures),
        window: file.window.unwrap_or(defaults.window),
        base_delay: file.delay.unwrap_or(defaults.base_delay),
        max_delay: file.max_delay.unwrap_or(defaults.max_delay),
    }
}

fn build_login(d: &mut Decoder, file: &LoginFile) -> Option<LoginInterception> {
    let path = file.path.as_ref().and_then(|p| normal_path(d, p));
    let query = match file.query.first() {
        Some((first, _)) => {
            let pairs = file
                .query
                .iter()
                .map(|(k, v)| (k.value.clone(), v.clone()))
                .collect();
            conditions(d, first, pairs).unwrap_or_default()
        }
        None => QueryConditions::default(),
    };
    let logout = file.logout_path.as_ref().map(|p| path_and_query(d, p));
    let page = file.page.as_ref().map(|p| path_and_query(d, p));
    let success_location = file.success_location.as_ref().map(|p| normal_path(d, p));
    let success_location_not = file.success_location_not.as_ref().map(|p| normal_path(d, p));
    let method = match &file.method {
        None => Some("POST".to_owned()),
        Some(m)
            if http::Method::from_bytes(m.value.as_bytes()).is_ok()
                && m.value == m.value.to_ascii_uppercase() =>
        {
            Some(m.value.clone())
        }
        Some(m) => {
            d.error(
                m.at,
                &m.key,
                format!("`{}` is not an upper-case method name such as POST", m.value),
            );
            None
        }
    };
    let username = match (&file.username_field, &file.identity) {
        (Some(field), None) if field.value.starts_with('/') && !is_json_pointer(&field.value) => {
            d.error(
                field.at,
                &field.key,
                format!(
                    "`{}` starts like a JSON pointer but is not one (`~` only as ~0 or ~1)",
                    field.value
                ),
            );
            None
        }
        (Some(field), None) => Some(UsernameSource::Field(field.value.clone())),
        (None, Some(identity)) => Some(UsernameSource::Fixed(identity.value.clone())),
        (Some(_), Some(identity)) => {
            d.error(
                identity.at,
                &identity.key,
                "give `username_field` (the form field with the user name) or `identity` (the one user of a single-user app), not both",
            );
            None
        }
        (None, None) => {
            d.error(
                file.at,
                &file.key,
                "missing `username_field` (the form field with the user name), or `identity` for a single-user app",
            );
            None
        }
    };
    let statuses: Option<Vec<u16>> = file
        .success_status
        .as_ref()
        .map(|list| list.iter().filter_map(|s| u16::try_from(s.value).ok()).collect());
    let path = path?;
    let any_criterion = statuses.is_some()
        || file.success_location.is_some()
        || file.success_location_not.is_some()
        || file.success_set_cookie.is_some()
        || file.success_json.is_some();
    let json = file.success_json.as_ref().and_then(|j| {
        json_pointer(
            d,
            j,
            "where the answer says it succeeded, such as /ok or /session/token",
        )
    });
    let success = if any_criterion {
        SuccessRule {
            statuses: statuses.unwrap_or_default(),
            location: success_location.flatten(),
            location_not: success_location_not.flatten(),
            set_cookie: file.success_set_cookie.as_ref().map(|c| c.value.clone()),
            json,
        }
    } else {
        // A redirect that does not lead back to the form: what most apps do.
        SuccessRule {
            statuses: vec![302, 303],
            location: None,
            location_not: Some(path.clone()),
            set_cookie: None,
            json: None,
        }
    };
    let session_cookies = match &file.session_cookie {
        Some(names) => {
            for name in names {
                let (base, prefix) = match name.value.strip_suffix('*') {
                    Some(base) => (base, true),
                    None => (name.value.as_str(), false),
                };
                if base.is_empty()
                    || base.contains('*')
                    || !base
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
                {
                    d.error(
                        name.at,
                        &name.key,
                        format!(
                            "`{}` is not a cookie name{}; write a name, or a name's beginning followed by `*`",
                            name.value,
                            if prefix { " prefix" } else { "" }
                        ),
                    );
                }
            }
            CookieNames::new(&names.iter().map(|n| n.value.as_str()).collect::<Vec<_>>())
        }
        None => CookieNames::new(success.set_cookie.as_slice()),
    };
    // Without a page of its own, the form's path with the login's conditions. A
    // page on the login's own path without them would exempt every page of a
    // front controller from the route rules.
    let (page, page_query) = page.flatten().unwrap_or_else(|| (path.clone(), query.clone()));
    if let (Some(spanned), false) = (&file.page, query.is_empty()) {
        if page == path && page_query.is_empty() {
            d.error(
                spanned.at,
                &spanned.key,
                format!(
                    "the login page is the login's own path, so it needs query conditions too, such as {page}{}",
                    query.to_query()
                ),
            );
        }
    }
    let (logout_path, logout_query) = logout.flatten().unzip();
    Some(LoginInterception {
        page_target: format!("{page}{}", page_query.to_query()),
        page,
        page_query,
        path,
        query,
        session_cookies,
        method: method?,
        username: username?,
        success,
        logout_path,
        logout_query: logout_query.unwrap_or_default(),
        return_param: file.return_param.as_ref().map(|p| p.value.clone()),
        email_header: file.email_header.as_ref().and_then(|h| header_name(d, h)),
        username_case_sensitive: file.username_case_sensitive.unwrap_or(false),
        max_body: file
            .max_body
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(64 * 1024),
        confirm: file.confirm.as_ref().and_then(|c| build_confirm(d, c)),
        overlay: file.overlay.unwrap_or(false),
        token: file
            .token
            .as_ref()
            .and_then(|t| json_pointer(d, t, "where the token is, such as /token or /data/access_token")),
    })
}

/// RFC 6901: `/` before each token; `~` only as `~0` or `~1`.
/// The pointer as written, or an error naming it and saying what to write.
fn json_pointer(d: &mut Decoder, given: &Spanned<String>, write: &str) -> Option<String> {
    if is_json_pointer(&given.value) {
        return Some(given.value.clone());
    }
    d.error(
        given.at,
        &given.key,
        format!("`{}` is not a JSON pointer; write {write}", given.value),
    );
    None
}

fn is_json_pointer(text: &str) -> bool {
    text.starts_with('/')
        && text
            .match_indices('~')
            .all(|(i, _)| matches!(text.as_bytes().get(i + 1), Some(b'0' | b'1')))
}

fn build_confirm(d: &mut Decoder, file: &ConfirmFile) -> Option<ConfirmRule> {
    // A path, with a query if the app's page needs one (`/index.php?do=whoami`).
    let written = file.path.as_ref()?;
    let (path, query) = written.value.split_once('?').unwrap_or((&written.value, ""));
    let path = normal_path(
        d,
        &Spanned {
            value: path.to_owned(),
            at: written.at,
            key: written.key.clone(),
        },
    )?;
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    if path.parse::<http::uri::PathAndQuery>().is_err() {
        d.error(
            written.at,
            &written.key,
            format!("`{}` cannot be sent as a request target", written.value),
        );
        return None;
    }
    let read = match (&file.header, &file.json, &file.pattern) {
        (Some(header), None, None) => ConfirmRead::Header(header_name(d, header)?),
        (None, Some(pointer), None) => ConfirmRead::Json(json_pointer(d, pointer, "one such as /user/name")?),
        (None, None, Some(pattern)) => match regex::Regex::new(&pattern.value) {
            Ok(re) if re.captures_len() > 1 => ConfirmRead::Pattern(re),
            Ok(_) => {
                d.error(
                    pattern.at,
                    &pattern.key,
                    "the pattern needs a group in parentheses around the user name",
                );
                return None;
            }
            Err(e) => {
                d.error(pattern.at, &pattern.key, format!("not a usable pattern: {e}"));
                return None;
            }
        },
        _ => {
            d.error(
                file.at,
                &file.key,
                "say where the page names the user: one of `header`, `json` or `pattern`",
            );
            return None;
        }
    };
    Some(ConfirmRule { path, read })
}

/// One of a few words: `absent` when the key is not written, the word's value when
/// it is one of `choices`, else an error at it that lists them (and `None`).
fn one_of<T: Copy>(
    d: &mut Decoder,
    value: Option<&Spanned<String>>,
    what: &str,
    choices: &[(&str, T)],
    absent: T,
) -> Option<T> {
    let Some(value) = value else {
        return Some(absent);
    };
    if let Some((_, chosen)) = choices.iter().find(|(word, _)| *word == value.value) {
        return Some(*chosen);
    }
    let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
    let list = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.concat(),
    };
    d.error(
        value.at,
        &value.key,
        format!("`{}` is not {what}; write {list}", value.value),
    );
    None
}

/// A header name as written, or an error at it.
fn header_name(d: &mut Decoder, name: &Spanned<String>) -> Option<http::HeaderName> {
    let parsed = http::HeaderName::from_bytes(name.value.as_bytes()).ok();
    if parsed.is_none() {
        d.error(
            name.at,
            &name.key,
            format!("`{}` is not a valid header name", name.value),
        );
    }
    parsed
}

fn build_upstream_headers(d: &mut Decoder, names: &[(String, Spanned<String>)]) -> UpstreamHeaders {
    let mut headers = UpstreamHeaders::default();
    for (field, name) in names {
        let Some(parsed) = header_name(d, name) else {
            continue;
        };
        if matches!(
            parsed.as_str(),
            "host" | "cookie" | "authorization" | "content-length" | "transfer-encoding"
        ) {
            d.error(
                name.at,
                &name.key,
                format!(
                    "`{}` is a header the request needs for itself; pick another name",
                    name.value
                ),
            );
            continue;
        }
        let name = IdentityHeader::new(&parsed);
        match field.as_str() {
            "user" => headers.user = name,
            "groups" => headers.groups = name,
            "auth_time" => headers.auth_time = name,
            "method" => headers.method = name,
            _ => headers.assertion = name,
        }
    }
    headers
}

/// The largest logo the gateway will serve.
const MAX_LOGO_BYTES: u64 = 256 * 1024;

fn build_pages(d: &mut Decoder, file: &PagesFile, base: &Path) -> PageSettings {
    let mut pages = PageSettings::default();
    if let Some(language) = &file.language {
        pages.language = match language.value.as_str() {
            "auto" => None,
            "en" => Some(super::Lang::En),
            "sv" => Some(super::Lang::Sv),
            other => {
                d.error(
                    language.at,
                    &language.key,
                    format!("`{other}` is not a language here; use auto, en or sv"),
                );
                None
            }
        };
    }
    let mut extra = String::new();
    if let Some(colour) = &file.colour {
        let hex = colour.value.strip_prefix('#').unwrap_or("");
        if matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            extra.push_str(&format!(":root {{ --accent: #{hex}; }}\n"));
        } else {
            d.error(
                colour.at,
                &colour.key,
                format!(
                    "`{}` is not a colour; write #rrggbb, such as #1f5fbf",
                    colour.value
                ),
            );
        }
    }
    if let Some(logo) = &file.logo {
        let path = base.join(&logo.value);
        let content_type = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Some("image/png"),
            Some("svg") => Some("image/svg+xml"),
            Some("jpg" | "jpeg") => Some("image/jpeg"),
            Some("webp") => Some("image/webp"),
            _ => None,
        };
        match (content_type, std::fs::metadata(&path).map(|m| m.len())) {
            (None, _) => d.error(
                logo.at,
                &logo.key,
                "the logo must be a .png, .svg, .jpg or .webp file",
            ),
            (_, Err(e)) => d.error(logo.at, &logo.key, format!("cannot read {}: {e}", path.display())),
            (_, Ok(len)) if len > MAX_LOGO_BYTES => d.error(
                logo.at,
                &logo.key,
                format!("the logo is {len} bytes; keep it under {MAX_LOGO_BYTES}"),
            ),
            (Some(content_type), Ok(_)) => match std::fs::read(&path) {
                Ok(bytes) => {
                    pages.logo = Some((bytes.into(), content_type));
                    extra.push_str(
                        ".card::before { content: \"\"; display: block; height: 48px; margin-bottom: 1.25rem; \
                         background: url(\"/.portvakt/assets/logo\") left center / contain no-repeat; }\n",
                    );
                }
                Err(e) => d.error(logo.at, &logo.key, format!("cannot read {}: {e}", path.display())),
            },
        }
    }
    if !extra.is_empty() {
        pages.brand_css = extra.into();
    }
    pages
}

fn build_email(d: &mut Decoder, file: &EmailFile, base: &Path) -> Option<EmailSettings> {
    let from = file.from.as_ref().and_then(|from| {
        if from.value.parse::<lettre::message::Mailbox>().is_ok() {
            Some(from.value.clone())
        } else {
            d.error(
                from.at,
                &from.key,
                format!(
                    "`{}` is not an e-mail sender; write \"Name <address@example.com>\"",
                    from.value
                ),
            );
            None
        }
    });
    // The SMTP block is checked whatever else is wrong, so all its errors show.
    let smtp = file.smtp.as_ref().and_then(|smtp| build_smtp(d, smtp, base));
    let transport = match (&file.smtp, &file.file) {
        (Some(_), None) => smtp,
        (None, Some(path)) => Some(EmailTransport::File(base.join(&path.value))),
        _ => {
            d.error(
                file.at,
                &file.key,
                "give `smtp` (a mail server) or `file` (development: messages go to a file), one of them",
            );
            None
        }
    };
    Some(EmailSettings {
        from: from?,
        transport: transport?,
        code_digits: file
            .code_digits
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(6),
        code_lifetime: file.code_lifetime.unwrap_or(Duration::from_secs(10 * 60)),
        resend_after: file.resend_after.unwrap_or(Duration::from_secs(60)),
        max_per_hour: file
            .max_per_hour
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_MAILS_PER_HOUR),
    })
}

/// E-mailed codes a user, or an address, gets in an hour.
const DEFAULT_MAILS_PER_HOUR: u32 = 10;

fn build_sms(d: &mut Decoder, file: &SmsFile, base: &Path) -> Option<SmsSettings> {
    let url = file.url.as_ref().and_then(|url| {
        let parsed = url.value.parse::<http::Uri>().ok().filter(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
        });
        let Some(parsed) = parsed else {
            d.error(
                url.at,
                &url.key,
                format!(
                    "`{}` is not an http or https URL; write the provider's address, such as https://sms.example.com/send",
                    url.value
                ),
            );
            return None;
        };
        // The provider's secret, the number and the code cross the network: in
        // clear only to a relay on this host.
        let loopback = matches!(parsed.host(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if parsed.scheme_str() == Some("http") && !loopback {
            d.error(
                url.at,
                &url.key,
                "the webhook must be https (plain http only to a relay on this host): the provider's secret, the number and the code go with each message",
            );
            return None;
        }
        Some(url.value.clone())
    });
    let method = match &file.method {
        None => Some(http::Method::POST),
        Some(method) => match method.value.as_str() {
            "POST" => Some(http::Method::POST),
            "PUT" => Some(http::Method::PUT),
            "PATCH" => Some(http::Method::PATCH),
            _ => {
                d.error(
                    method.at,
                    &method.key,
                    format!(
                        "`{}` is not a method for sending a message; write POST, PUT or PATCH",
                        method.value
                    ),
                );
                None
            }
        },
    };
    let mut headers = Vec::new();
    for (name, value) in &file.headers {
        let parsed_name = header_name(d, name).filter(|parsed| {
            // The request's framing and target are the gateway's to write.
            let framing = matches!(
                parsed.as_str(),
                "host" | "content-length" | "transfer-encoding" | "connection" | "te" | "upgrade"
            );
            if framing {
                d.error(
                    name.at,
                    &name.key,
                    format!("`{}` is written by the gateway, not here", name.value),
                );
            }
            !framing
        });
        let value = secret_header_value(d, name, value, base);
        if let (Some(name), Some(value)) = (parsed_name, value) {
            headers.push((name, value));
        }
    }
    let body = file.body.as_ref().and_then(|body| {
        let names_the_number = body.value.contains("{to}");
        let says_something = body.value.contains("{message}") || body.value.contains("{code}");
        if names_the_number && says_something {
            Some(body.value.clone())
        } else {
            d.error(
                body.at,
                &body.key,
                "the body must hold {to} (the number) and {message} (the text) or {code} (the code alone)",
            );
            None
        }
    });
    let countries = sms_countries(d, file.countries.as_deref().unwrap_or_default());
    Some(SmsSettings {
        url: url?,
        method: method?,
        headers,
        body: body?,
        code_digits: file
            .code_digits
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(6),
        code_lifetime: file.code_lifetime.unwrap_or(Duration::from_secs(10 * 60)),
        resend_after: file.resend_after.unwrap_or(Duration::from_secs(60)),
        max_per_hour: file
            .max_per_hour
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_TEXTS_PER_HOUR),
        countries,
    })
}

/// How long a browser or network stays known after a sign-in from it.
const DEFAULT_UNUSUAL_REMEMBER: Duration = Duration::from_secs(90 * 24 * 3600);

fn build_unusual(d: &mut Decoder, file: &UnusualFile, has_email: bool, base: &Path) -> Option<UnusualSignIn> {
    let (at, key) = (file.at, file.key.as_str());
    let mut unusual = UnusualSignIn {
        browser: false,
        network: false,
        country: None,
        remember: file.remember.unwrap_or(DEFAULT_UNUSUAL_REMEMBER),
    };
    let mut country = None;
    for signal in &file.signals {
        match signal.value.as_str() {
            "browser" => unusual.browser = true,
            "network" => unusual.network = true,
            "country" => country = Some(signal),
            other => d.error(
                signal.at,
                &signal.key,
                format!("`{other}` is not a signal; write browser, network or country"),
            ),
        }
    }
    match (country, &file.geoip) {
        (Some(signal), None) => d.error(
            signal.at,
            &signal.key,
            "the country signal needs `geoip`: a GeoIP country database (such as GeoLite2-Country.mmdb)",
        ),
        (_, Some(path)) => {
            let full = base.join(&path.value);
            match maxminddb::Reader::open_readfile(&full) {
                Ok(reader) => {
                    let geoip = crate::config::model::GeoIp {
                        path: full,
                        reader: std::sync::Arc::new(reader),
                    };
                    unusual.country = country.map(|_| geoip);
                }
                Err(e) => d.error(
                    path.at,
                    &path.key,
                    format!("cannot read the GeoIP database {}: {e}", full.display()),
                ),
            }
        }
        (None, None) => {}
    }
    if !unusual.browser && !unusual.network && country.is_none() {
        d.error(at, key, "name at least one signal: browser, network, country");
        return None;
    }
    if !has_email {
        d.error(
            at,
            key,
            "an unusual sign-in is confirmed with an e-mailed code: it needs an `email` section saying how mail is sent",
        );
        return None;
    }
    Some(unusual)
}

/// Texts a user, or a number, gets in an hour: a sign-in or two with a resend.
const DEFAULT_TEXTS_PER_HOUR: u32 = 5;

/// Number prefixes as written: `+` and 1 to 6 digits.
fn sms_countries(d: &mut Decoder, written: &[Spanned<String>]) -> Vec<String> {
    written
        .iter()
        .filter_map(|prefix| {
            let digits = prefix.value.strip_prefix('+').unwrap_or_default();
            if (1..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(prefix.value.clone())
            } else {
                d.error(
                    prefix.at,
                    &prefix.key,
                    format!(
                        "`{}` is not a number prefix; write + and the country code, such as +46",
                        prefix.value
                    ),
                );
                None
            }
        })
        .collect()
}

/// A webhook header's value: as written, or read from a file or the environment
/// (then marked sensitive, so that nothing prints it).
fn secret_header_value(
    d: &mut Decoder,
    name: &Spanned<String>,
    value: &SecretText,
    base: &Path,
) -> Option<http::HeaderValue> {
    let (text, at, key, secret) = match value {
        SecretText::Text(text) => (text.value.clone(), text.at, &text.key, false),
        SecretText::File(file) => (
            read_password_file(d, file, base, &format!("`{}` header's", name.value))?,
            file.at,
            &file.key,
            true,
        ),
        SecretText::Env(var) => match std::env::var(&var.value) {
            Ok(text) => (text, var.at, &var.key, true),
            Err(_) => {
                d.error(
                    var.at,
                    &var.key,
                    format!(
                        "the environment variable {} is not set (or is not UTF-8)",
                        var.value
                    ),
                );
                return None;
            }
        },
    };
    match http::HeaderValue::from_str(&text) {
        Ok(mut value) => {
            value.set_sensitive(secret);
            Some(value)
        }
        Err(_) => {
            d.error(
                at,
                key,
                format!(
                    "the `{}` header's value holds characters a header cannot",
                    name.value
                ),
            );
            None
        }
    }
}

fn build_smtp(d: &mut Decoder, smtp: &SmtpFile, base: &Path) -> Option<EmailTransport> {
    let security = one_of(
        d,
        smtp.security.as_ref(),
        "an SMTP security",
        &[
            ("starttls", SmtpSecurity::StartTls),
            ("tls", SmtpSecurity::Tls),
            ("none", SmtpSecurity::None),
        ],
        SmtpSecurity::StartTls,
    );
    let default_port = match security {
        Some(SmtpSecurity::Tls) => 465,
        Some(SmtpSecurity::None) => 25,
        _ => 587,
    };
    let password = smtp
        .password_file
        .as_ref()
        .and_then(|p| read_password_file(d, p, base, "SMTP"));
    Some(EmailTransport::Smtp {
        host: smtp.host.as_ref()?.value.clone(),
        port: smtp
            .port
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default_port),
        security: security?,
        credentials: smtp.username.clone().zip(password),
    })
}
