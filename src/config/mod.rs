//! Configuration: one YAML file, read strictly (`yaml`, `decode`, `file`), validated
//! into the model the gateway runs on (`validate`, `model`), and reloaded on SIGHUP
//! (`reload`).

pub mod decode;
pub mod error;
pub mod file;
pub mod lang;
pub mod model;
pub mod users;
pub mod validate;
pub mod yaml;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use lang::Lang;

/// The configuration in force, shared by the proxy and the reloader: requests load
/// it once and keep that `Arc` to their end, whatever a reload swaps in meanwhile.
pub type SharedConfig = std::sync::Arc<arc_swap::ArcSwap<Config>>;
pub use model::{
    App, Config, Listener, LogFormat, LogSettings, ServerSettings, StoreLocation, TlsFiles, Upstream,
};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// Reads, parses and validates a configuration file, reporting every problem at once.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path).map_err(LoadError::Invalid)
}

/// Parses and validates configuration text; `path` names it in errors and anchors
/// relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let file_name = path.display().to_string();
    let to_error = |p: yaml::YamlProblem| ConfigError {
        file: file_name.clone(),
        at: p.at,
        key: p.path,
        message: p.message,
    };
    let (root, duplicates) =
        yaml::parse(text).map_err(|problems| ConfigErrors(problems.into_iter().map(to_error).collect()))?;
    let mut decoder = decode::Decoder::new(file_name.clone());
    for problem in duplicates {
        decoder.error(problem.at, &problem.path, problem.message);
    }
    let config =
        file::FileConfig::decode(&mut decoder, &root).and_then(|f| validate::build(&mut decoder, f, path));
    let errors = decoder.into_errors();
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(errors)),
    }
}

/// What is valid but probably not what the operator meant, for `portvakt check`.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    for app in &config.apps {
        if let (Some(login), false) = (
            app.app_form(),
            matches!(app.policy.mfa, crate::policy::MfaMode::Off),
        ) {
            if login.session_cookies.is_empty() {
                warnings.push(format!(
                    "apps.{}.login: no session cookie is known (`session_cookie`, or `success.set_cookie`): \
                     a sign-in the app makes on another request than the login cannot be held back",
                    app.name
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, &PathBuf::from("t.yaml")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const MINIMAL: &str = "listen: [\"127.0.0.1:8080\"]\nstate_dir: state\napps:\n  wiki:\n    hosts: [wiki.example.com]\n    upstream: http://127.0.0.1:3000\n";

    #[test]
    fn a_basic_login_names_where_it_checks_and_its_logout() {
        let with = |login: &str| {
            MINIMAL.replace(
                "upstream: http://127.0.0.1:3000\n",
                &format!("upstream: http://127.0.0.1:3000\n    login: {login}\n"),
            )
        };
        let config = parse(&with("basic"), &PathBuf::from("p.yaml")).expect("valid");
        let basic = config.apps[0].basic_login().expect("basic");
        assert_eq!((basic.check.as_str(), basic.logout_path.as_deref()), ("/", None));
        let config = parse(
            &with("{ basic: { check: /status, logout_path: /logout } }"),
            &PathBuf::from("p.yaml"),
        )
        .expect("valid");
        let basic = config.apps[0].basic_login().expect("basic");
        assert_eq!(
            (basic.check.as_str(), basic.logout_path.as_deref()),
            ("/status", Some("/logout"))
        );
        for (bad, why) in [
            ("{ basic: { check: /a/../b } }", "check"),
            ("{ basic: {}, path: /login }", "path"),
            ("{ basic: { chek: /x } }", "chek"),
        ] {
            let found = errors(&with(bad));
            assert!(found.iter().any(|e| e.contains(why)), "{bad}: {found:?}");
        }
    }

    #[test]
    fn a_store_is_sqlite_unless_a_postgres_url_is_given() {
        let config = parse(MINIMAL, &PathBuf::from("p.yaml")).expect("valid");
        assert_eq!(config.store, StoreLocation::Sqlite);
        let text = MINIMAL.replace(
            "state_dir: state\n",
            "state_dir: state\nstore: {url: \"postgres://pv@db:5433/portvakt\"}\n",
        );
        let config = parse(&text, &PathBuf::from("p.yaml")).expect("valid");
        assert!(
            matches!(&config.store, StoreLocation::Postgres { url, password: None } if url.ends_with("/portvakt"))
        );
        assert_eq!(
            format!("{:?}", config.store),
            "Postgres { .. }",
            "the URL stays out of Debug"
        );
        for (bad, why) in [
            ("store: {url: \"mysql://db/portvakt\"}", "give a PostgreSQL URL"),
            (
                "store: {url: \"postgres://db:notaport/x\"}",
                "not a PostgreSQL URL",
            ),
            ("store: {url: \"postgres://db/x?sslmode=require\"}", "without TLS"),
            (
                "store: {url: \"postgres://db/x\", password_file: /nonexistent/pw}",
                "cannot read the database password",
            ),
            ("store: {password_file: pw}", "missing `url`"),
            (
                "store: {url: \"postgres://db/x\", pasword_file: pw}",
                "pasword_file",
            ),
        ] {
            let found = errors(&MINIMAL.replace("state_dir: state\n", &format!("state_dir: state\n{bad}\n")));
            assert!(
                found
                    .iter()
                    .any(|e| e.starts_with("t.yaml:3:") && e.contains(why)),
                "{bad}: {found:?}"
            );
        }
    }

    #[test]
    fn minimal_config_loads_with_strict_defaults() {
        let config = parse(MINIMAL, &PathBuf::from("/etc/portvakt/p.yaml")).expect("valid");
        assert_eq!(config.state_dir, PathBuf::from("/etc/portvakt/state"));
        assert_eq!(config.apps[0].policy.mfa, crate::policy::MfaMode::Required);
        assert_eq!(config.server.max_uri_length, 8192);
        assert!(config.app_for_host("WIKI.example.com.", Some(8080)).is_some());
        assert!(config.app_for_host("other.example.com", None).is_none());
    }

    #[test]
    fn unknown_key_wrong_type_and_duplicate_key_are_all_reported() {
        let text = "listen: [\"127.0.0.1:8080\"]\nstate_dir: s\nstate_dir: t\napps:\n  wiki:\n    hosts: [w]\n    upstream: http://127.0.0.1:1\n    upstrem: http://127.0.0.1:1\n    tls_verify: sometimes\n";
        let found = errors(text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(
            found[0],
            "t.yaml:3:1: state_dir: duplicate key `state_dir` (first set at line 2, column 1); a key may appear once per mapping"
        );
        assert!(
            found[1].starts_with(
                "t.yaml:8:5: apps.wiki.upstrem: unknown key `upstrem`; did you mean `upstream`?"
            ),
            "{}",
            found[1]
        );
        assert!(
            found[2].starts_with("t.yaml:9:17: apps.wiki.tls_verify: expected true or false"),
            "{}",
            found[2]
        );
        let found = errors("listen: [\"127.0.0.1:8080\"]\nstate_dir: s\napps:\n  wiki:\n    hosts: [w]\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("t.yaml:4:3: apps.wiki: missing `upstream`"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn remembering_a_browser_is_off_unless_asked_and_bounded() {
        let config = parse(MINIMAL, &PathBuf::from("p.yaml")).expect("valid");
        assert_eq!(
            config.second_factor.remember_device, None,
            "never remembered by default"
        );
        let asked = format!("second_factor:\n  remember_device: 30d\n{MINIMAL}");
        let config = parse(&asked, &PathBuf::from("p.yaml")).expect("valid");
        assert_eq!(
            config.second_factor.remember_device,
            Some(std::time::Duration::from_secs(30 * 24 * 3600))
        );
        for too in ["400d", "1h"] {
            let found = errors(&format!("second_factor:\n  remember_device: {too}\n{MINIMAL}"));
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(
                found[0].starts_with("t.yaml:2:20: second_factor.remember_device: a browser may be remembered for 1 to 365 days"),
                "{}",
                found[0]
            );
        }
    }

    #[test]
    fn cross_key_errors_name_both_places() {
        let text = "listen: [\"127.0.0.1:8080\"]\nstate_dir: s\napps:\n  a:\n    hosts: [x.example]\n    upstream: http://127.0.0.1:1\n    routes:\n      - {path: /admin, policy: deny}\n      - {path: /admin/, policy: bypass}\n  b:\n    hosts: [X.example]\n    upstream: http://127.0.0.1:1\n";
        let found = errors(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("apps.a.routes[1]: this rule and apps.a.routes[0] (line 8)"),
            "{}",
            found[0]
        );
        assert!(
            found[1].contains("already served by app `a` (line 5)"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn rule_values_are_checked() {
        let text = "listen: [\"127.0.0.1:8080\"]\nstate_dir: s\napps:\n  a:\n    hosts: [x]\n    upstream: ftp://h\n    mfa: sometimes\n    routes:\n      - {path: /a%2fb, policy: mfa}\n      - {path: /b, policy: password, max_age: 10m}\n      - {path: /c, policy: allow}\n      - {path: /d, policy: deny, methods: [get]}\n      - {path: /e/../f, policy: deny}\n      - {path: /g, policy: bypass, groups: [admins]}\n    host_header: \"bad\\x01host\"\n";
        let found = errors(text);
        let wanted = [
            "apps.a.upstream: `ftp://h` needs the scheme",
            "apps.a.mfa: `sometimes` is not an MFA mode",
            "apps.a.routes[0].path: `/a%2fb` is not a usable path",
            "apps.a.routes[1].max_age: `max_age` applies only to `policy: mfa`",
            "apps.a.routes[2].policy: `allow` is not a policy",
            "apps.a.routes[3].methods[0]: methods are case-sensitive; did you mean GET?",
            "apps.a.routes[4].path: write the path in its normal form: /f",
            "apps.a.routes[5]: a bypass rule cannot name users or groups",
            "apps.a.host_header: `bad\u{1}host` is not a host name",
        ];
        assert_eq!(found.len(), wanted.len(), "{found:#?}");
        for (got, want) in found.iter().zip(wanted) {
            assert!(got.contains(want), "{got}\n  should contain {want}");
        }
    }

    #[test]
    fn unreadable_tls_files_are_named_at_their_listener() {
        let found = errors("listen:\n  - \"127.0.0.1:8080\"\n  - { addr: \"127.0.0.1:8443\", tls: { cert: no-cert.pem, key: no-key.pem } }\nstate_dir: s\napps:\n  a:\n    hosts: [a]\n    upstream: http://127.0.0.1:1\n");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("t.yaml:3:5: listen[1]: cannot read no-cert.pem"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn second_factor_settings_have_strict_defaults_and_are_checked() {
        let text = format!(
            "{MINIMAL}    login:\n      path: /login\n      username_field: username\n      logout_path: /logout\n"
        );
        let config = parse(&text, &PathBuf::from("t.yaml")).expect("valid");
        let login = config.apps[0].app_form().expect("login");
        assert_eq!(login.method, "POST");
        assert_eq!(login.page, "/login");
        assert_eq!(login.success.statuses, [302, 303]);
        assert_eq!(login.success.location_not.as_deref(), Some("/login"));
        assert_eq!(config.second_factor.recovery_codes, 10);
        assert_eq!(config.second_factor.enrolment, model::Enrolment::Open);
        assert_eq!(config.lockout.max_failures, 10);
        assert_eq!(config.session.idle_timeout, std::time::Duration::from_secs(1800));

        let text = "listen: [\"127.0.0.1:8080\"]\nstate_dir: s\nsession: {idle_timeout: 1h, absolute_timeout: 30m}\nlockout: {max_failures: 1000}\nsecond_factor: {enrolment: anyone, totp: {digits: 10}}\napps:\n  a:\n    hosts: [a]\n    upstream: http://127.0.0.1:1\n    login: {path: /x/../login, username_field: u, identity: admin, method: post, success: {json_field: token}}\n";
        let found = errors(text);
        let wanted = [
            "session.absolute_timeout: `absolute_timeout` must not be shorter than `idle_timeout`",
            "lockout.max_failures: expected a whole number from 1 to 100",
            "second_factor.enrolment: `anyone` is not an enrolment rule",
            "second_factor.totp.digits: expected a whole number from 6 to 8",
            "apps.a.login.path: write the path in its normal form: /login",
            "apps.a.login.identity: give `username_field`",
            "apps.a.login.method: `post` is not an upper-case method name",
            "apps.a.login.success.json_field: unknown key",
        ];
        for want in wanted {
            assert!(
                found.iter().any(|f| f.contains(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), wanted.len(), "{found:#?}");
    }

    #[test]
    fn users_file_errors_name_the_users_file() {
        let dir = tempfile::tempdir().unwrap();
        let users = "users:\n  alice:\n    password: hunter2\n    groups: [admins]\n  bob:\n    email: not-an-address\n    colour: red\n";
        std::fs::write(dir.path().join("users.yaml"), users).unwrap();
        let main = format!("users: {{file: users.yaml}}\n{MINIMAL}");
        let path = dir.path().join("p.yaml");
        let found: Vec<String> = parse(&main, &path)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        let users_path = dir.path().join("users.yaml").display().to_string();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with(&format!(
            "{users_path}:3:15: users.alice.password: expected an argon2id hash"
        )));
        assert!(found[1].starts_with(&format!("{users_path}:6:12: users.bob.email: `not-an-address`")));
        assert!(found[2].starts_with(&format!("{users_path}:7:5: users.bob.colour: unknown key")));

        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$5rw0Xld0Ny8Mm6GW+CAXrnNKoeGyDqzsZMmH4MuZ3hI";
        std::fs::write(
            dir.path().join("users.yaml"),
            format!("users:\n  alice: {{password: \"{hash}\", groups: [admins]}}\n"),
        )
        .unwrap();
        let config = parse(&main, &path).expect("valid");
        assert_eq!(*config.users.groups("alice"), ["admins"]);
        assert_eq!(*config.users.groups("ALICE"), ["admins"]);
        assert!(config.users.groups("nobody").is_empty());
        assert!(parse(&format!("users: {{file: missing.yaml}}\n{MINIMAL}"), &path)
            .unwrap_err()
            .0[0]
            .message
            .contains("cannot read the users file"));
    }

    #[test]
    fn page_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("logo.gif"), b"GIF89a").unwrap();
        std::fs::write(
            dir.path().join("logo.svg"),
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        )
        .unwrap();
        let path = dir.path().join("p.yaml");
        let bad = format!("pages: {{language: de, colour: blue, logo: logo.gif}}\n{MINIMAL}");
        let found: Vec<String> = parse(&bad, &path)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.message.clone())
            .collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("`de` is not a language here"));
        assert!(found[1].contains("`blue` is not a colour"));
        assert!(found[2].contains("must be a .png, .svg, .jpg or .webp"));
        let good = format!("pages: {{language: sv, colour: \"#a01010\", logo: logo.svg}}\n{MINIMAL}");
        let config = parse(&good, &path).unwrap();
        assert_eq!(config.pages.language, Some(super::Lang::Sv));
        assert!(config.pages.brand_css.contains("--accent: #a01010"));
        assert_eq!(config.pages.logo.as_ref().map(|(_, t)| *t), Some("image/svg+xml"));
    }

    #[test]
    fn when_mfa_changes_reach_sessions_is_one_of_two_words() {
        let found = errors(&format!("session: {{mfa_changes: sometimes}}\n{MINIMAL}"));
        assert!(
            found.iter().any(|e| e.contains(":1:")
                && e.contains("session.mfa_changes")
                && e.contains("write next_sign_in or immediately")),
            "{found:#?}"
        );
        let path = PathBuf::from("t.yaml");
        let config = parse(
            &format!("session: {{mfa_changes: immediately}}\n{MINIMAL}"),
            &path,
        )
        .unwrap();
        assert_eq!(config.session.mfa_changes, model::MfaChanges::Immediately);
        let config = parse(MINIMAL, &path).unwrap();
        assert_eq!(config.session.mfa_changes, model::MfaChanges::NextSignIn);
    }

    #[test]
    fn an_email_header_must_be_a_header_name() {
        let app =
            format!("{MINIMAL}    login: {{ path: /login, username_field: u, email_header: \"X Mail\" }}\n");
        let found = errors(&app);
        assert!(
            found
                .iter()
                .any(|e| e.contains("email_header") && e.contains("`X Mail` is not a valid header name")),
            "{found:#?}"
        );
    }

    #[test]
    fn email_settings_are_checked() {
        let found = errors(&format!("second_factor: {{email: fallback}}\n{MINIMAL}"));
        assert!(
            found
                .iter()
                .any(|e| e.contains("e-mail codes need an `email` section")),
            "{found:#?}"
        );
        let both = format!(
            "email: {{from: nobody, file: m.log, smtp: {{host: mail.example, security: ssl}}}}\nsecond_factor: {{email: always}}\n{MINIMAL}"
        );
        let found = errors(&both);
        for want in [
            "`nobody` is not an e-mail sender",
            "`ssl` is not an SMTP security",
            "give `smtp` (a mail server) or `file`",
            "`always` is not an e-mail use",
        ] {
            assert!(
                found.iter().any(|e| e.contains(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        let good = format!("email: {{from: \"P <p@example.com>\", smtp: {{host: mail.example}}}}\n{MINIMAL}");
        let config = parse(&good, &PathBuf::from("t.yaml")).expect("valid");
        let email = config.email.expect("email");
        assert!(matches!(
            email.transport,
            model::EmailTransport::Smtp {
                port: 587,
                security: model::SmtpSecurity::StartTls,
                ..
            }
        ));
    }

    #[test]
    fn text_message_settings_are_checked_and_their_secrets_stay_out_of_the_file_and_the_debug_output() {
        let found = errors(&format!("second_factor: {{sms: fallback}}\n{MINIMAL}"));
        assert_eq!(
            found,
            ["t.yaml:1:22: second_factor.sms: codes by text message need an `sms` section naming the provider's webhook"]
        );
        let bad = format!(
            "sms:\n  webhook:\n    url: ftp://sms.example\n    method: GET\n    headers:\n      Bad Name: x\n      X-Token: {{ env: PORTVAKT_TEST_UNSET_VARIABLE }}\n      X-Both: {{ env: A, file: b }}\n    body: hello\n\
             second_factor: {{sms: always}}\n{MINIMAL}"
        );
        let found = errors(&bad);
        for want in [
            "t.yaml:3:10: sms.webhook.url: `ftp://sms.example` is not an http or https URL",
            "t.yaml:4:13: sms.webhook.method: `GET` is not a method for sending a message",
            "t.yaml:6:7: sms.webhook.headers.Bad Name: `Bad Name` is not a valid header name",
            "t.yaml:7:23: sms.webhook.headers.X-Token.env: the environment variable PORTVAKT_TEST_UNSET_VARIABLE is not set",
            "t.yaml:8:15: sms.webhook.headers.X-Both: give the value, or `file`",
            "t.yaml:9:11: sms.webhook.body: the body must hold {to} (the number) and {message}",
            "t.yaml:10:22: second_factor.sms: `always` is not a text-message use; write off or fallback",
        ] {
            assert!(
                found.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        let clear = format!(
            "sms:\n  webhook:\n    url: http://sms.example/send\n    headers: {{ Content-Length: '5' }}\n    \
             body: '{{to}} {{code}}'\n  countries: [\"46\"]\n{MINIMAL}"
        );
        let found = errors(&clear);
        for want in [
            "t.yaml:3:10: sms.webhook.url: the webhook must be https",
            "t.yaml:4:16: sms.webhook.headers.Content-Length: `Content-Length` is written by the gateway",
            "t.yaml:6:15: sms.countries[0]: `46` is not a number prefix",
        ] {
            assert!(
                found.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "Bearer s3cret-token\n").unwrap();
        let good = format!(
            "sms:\n  webhook:\n    url: https://sms.example/v1/send\n    headers:\n      Authorization: {{ file: token }}\n      Content-Type: application/json\n    body: '{{\"to\": \"{{to}}\", \"text\": \"{{message}}\"}}'\n\
             second_factor: {{sms: fallback}}\n{MINIMAL}"
        );
        let config = parse(&good, &dir.path().join("t.yaml")).expect("valid");
        let sms = config.sms.clone().expect("sms");
        assert_eq!(sms.method, http::Method::POST);
        assert_eq!(sms.body, "{\"to\": \"{to}\", \"text\": \"{message}\"}");
        assert_eq!(sms.headers[0].1.as_bytes(), b"Bearer s3cret-token");
        assert!(sms.headers[0].1.is_sensitive());
        assert!(!sms.headers[1].1.is_sensitive());
        assert_eq!(config.second_factor.sms, model::SmsUse::Fallback);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn unusual_sign_ins_name_their_signals_and_need_email() {
        let found = errors(&format!(
            "second_factor: {{ unusual_sign_in: {{ signals: [browser, country] }} }}\n{MINIMAL}"
        ));
        for want in [
            "t.yaml:1:56: second_factor.unusual_sign_in.signals[1]: the country signal needs `geoip`",
            "t.yaml:1:35: second_factor.unusual_sign_in: an unusual sign-in is confirmed with an e-mailed code",
        ] {
            assert!(found.iter().any(|e| e.starts_with(want)), "missing {want:?} in {found:#?}");
        }
        let good = format!(
            "email: {{from: \"P <p@example.com>\", file: m.log}}\n\
             second_factor: {{ unusual_sign_in: {{ signals: [network], remember: 7d }} }}\n{MINIMAL}"
        );
        let config = parse(&good, &PathBuf::from("t.yaml")).expect("valid");
        assert_eq!(
            config.second_factor.unusual_sign_in,
            Some(model::UnusualSignIn {
                browser: false,
                network: true,
                country: None,
                remember: std::time::Duration::from_secs(7 * 24 * 3600)
            })
        );
        assert_eq!(
            parse(MINIMAL, &PathBuf::from("t.yaml"))
                .unwrap()
                .second_factor
                .unusual_sign_in,
            None
        );
        let no_database = errors(&format!(
            "email: {{from: \"P <p@example.com>\", file: m.log}}\n\
             second_factor: {{ unusual_sign_in: {{ signals: [country], geoip: missing.mmdb }} }}\n{MINIMAL}"
        ));
        assert!(
            no_database
                .iter()
                .any(|e| e.contains("unusual_sign_in.geoip: cannot read the GeoIP database")),
            "{no_database:#?}"
        );
    }

    #[test]
    fn the_login_narrows_with_query_conditions_and_names_its_session_cookies() {
        let text = format!(
            "{MINIMAL}    login:\n      path: /index.php\n      query: {{ do: login }}\n      username_field: u\n\
             \x20     logout_path: /index.php?do=logout\n      session_cookie: [sid, \"wp_logged_in_*\"]\n\
             \x20     confirm: {{ path: /api/me, json: /user }}\n"
        );
        let config = parse(&text, &PathBuf::from("t.yaml")).expect("valid");
        let login = config.apps[0].app_form().expect("login");
        assert!(login.query.met_by(Some("do=login"), &[]) && !login.query.met_by(Some("page=admin"), &[]));
        assert_eq!(
            login.page_target, "/index.php?do=login",
            "the page defaults to the login's"
        );
        assert_eq!(login.logout_path.as_deref(), Some("/index.php"));
        assert!(login.logout_query.met_by(Some("do=logout"), &[]) && !login.logout_query.met_by(None, &[]));
        assert!(login.session_cookies.contains("wp_logged_in_abc") && login.session_cookies.contains("SID"));
        assert!(login.confirm.is_some());
        assert!(warnings(&config).is_empty());
        let bare = parse(
            &format!("{MINIMAL}    login: {{ path: /login, username_field: u }}\n"),
            &PathBuf::from("t.yaml"),
        )
        .expect("valid");
        assert_eq!(warnings(&bare).len(), 1, "no session cookie known");
    }

    #[test]
    fn confirm_rules_are_checked_where_they_are_written() {
        let with = |confirm: &str| {
            errors(&format!("{MINIMAL}    login:\n      path: /login\n      username_field: u\n      confirm: {confirm}\n"))
        };
        assert_eq!(
            with("{ path: /me }"),
            ["t.yaml:10:16: apps.wiki.login.confirm: say where the page names the user: one of `header`, `json` or `pattern`"]
        );
        assert_eq!(
            with("{ path: /me, json: /a, header: X-User }"),
            ["t.yaml:10:16: apps.wiki.login.confirm: say where the page names the user: one of `header`, `json` or `pattern`"]
        );
        assert!(with("{ path: /me, json: user }")[0]
            .starts_with("t.yaml:10:35: apps.wiki.login.confirm.json: `user` is not a JSON pointer"));
        assert!(with("{ path: /me, pattern: 'no group' }")[0]
            .contains("login.confirm.pattern: the pattern needs a group"));
        assert!(
            with("{ path: /me, pattern: '(' }")[0].contains("login.confirm.pattern: not a usable pattern")
        );
        assert!(with("{ path: /me, json: /u, colour: red }")[0].contains("login.confirm.colour: unknown key"));
    }

    #[test]
    fn session_cookies_and_front_controller_pages_are_checked() {
        let login = |extra: &str| {
            errors(&format!(
                "{MINIMAL}    login:\n      path: /index.php\n      username_field: u\n{extra}"
            ))
        };
        let found = login("      session_cookie: [\"*\", \"a*b\", \"sid;x\", ok, \"wp_*\"]\n");
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("login.session_cookie[0]: `*` is not a cookie name prefix"));
        assert!(found[1].contains("login.session_cookie[1]: `a*b` is not a cookie name"));
        let found = login("      query: { do: login }\n      page: /index.php\n");
        assert!(
            found[0].contains("login.page: the login page is the login's own path, so it needs query conditions too, such as /index.php?do=login"),
            "{found:#?}"
        );
        assert!(login("      query: { do: login }\n      page: /index.php?do=login\n").is_empty());
        assert!(
            login("      logout_path: /index.php?do=a&do=b\n")[0].contains("`do` is empty or given twice")
        );
        assert!(login("      confirm: { path: /me, json: /a~2b }\n")[0].contains("is not a JSON pointer"));
        // Every pointer a login names is checked the same way, with its key.
        let token = login("      token: token\n");
        assert!(
            token[0]
                .contains("apps.wiki.login.token: `token` is not a JSON pointer; write where the token is"),
            "{token:#?}"
        );
        let success = login("      success: { status: [200], json: ok }\n");
        assert!(
            success[0].contains("apps.wiki.login.success.json: `ok` is not a JSON pointer"),
            "{success:#?}"
        );
        let user = errors(&format!(
            "{MINIMAL}    login:\n      path: /login\n      username_field: /a~2b\n"
        ));
        assert!(
            user.iter().any(|e| e.contains("starts like a JSON pointer")),
            "{user:#?}"
        );
        assert!(login("      confirm: { path: /me, json: /a~1b }\n").is_empty());
        assert!(login("      confirm: { path: /index.php?do=whoami, json: /user }\n").is_empty());
    }

    #[test]
    fn missing_top_level_keys_are_named() {
        let found = errors("log: {format: xml}\n");
        assert!(found.iter().any(|e| e.contains("missing `listen`")), "{found:#?}");
        assert!(found.iter().any(|e| e.contains("missing `state_dir`")));
        assert!(found.iter().any(|e| e.contains("missing `apps`")));
        assert!(found.iter().any(|e| e.contains("`xml` is not a log format")));
    }

    proptest::proptest! {
        /// Whatever the file holds, loading it ends in a configuration or in errors
        /// that each carry a position, never in a panic.
        #[test]
        fn any_text_loads_or_fails_cleanly(text in "([a-z_]{1,8}|: |\\n|  |- |\\[|\\]|\\{|\\}|, |&a |\\*a|\"|'|#|/x|10\\.0\\.0\\.0/8|30s|true|~){0,40}") {
            if let Err(errors) = parse(&text, &PathBuf::from("p.yaml")) {
                proptest::prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    proptest::prop_assert!(e.at.line >= 1 && e.at.column >= 1, "{}", e);
                }
            }
        }
    }
}
