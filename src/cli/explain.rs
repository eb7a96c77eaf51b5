//! `portvakt explain`: which rule decides a request, and what the request needs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::policy::{
    self, Authentication, DecidedBy, Decision, Outcome, RequestFacts, Requirement, Rule, RulePolicy,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
    /// The Host the request is sent to (may include :port).
    #[arg(long)]
    host: String,
    /// The request path as a client would send it (a query string is ignored).
    #[arg(long)]
    path: String,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Explain the request as this signed-in user (otherwise: nobody signed in).
    #[arg(long)]
    user: Option<String>,
    /// The user's groups, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "user")]
    groups: Vec<String>,
    /// How long ago the user passed the second factor, e.g. 5m (otherwise: not passed).
    #[arg(long, value_parser = humantime::parse_duration, requires = "user")]
    mfa_age: Option<Duration>,
    /// The user opted in to the second factor where an app makes it optional.
    #[arg(long, requires = "user")]
    opted_in: bool,
    /// The client address.
    #[arg(long, default_value = "127.0.0.1")]
    ip: IpAddr,
}

pub fn explain(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(config) = super::load_or_report(&args.config) else {
        return Ok(ExitCode::from(super::EXIT_INVALID_CONFIG));
    };
    out!(
        "{}",
        report(&config, args, SystemTime::now()).trim_end_matches('\n')
    );
    Ok(ExitCode::SUCCESS)
}

fn report(config: &Config, args: &Args, now: SystemTime) -> String {
    let mut out = String::new();
    let (host, port) = match args.host.parse::<http::uri::Authority>() {
        Ok(a) => (a.host().to_owned(), a.port_u16()),
        Err(_) => {
            return format!(
                "host:     {}\noutcome:  400 bad request (not a host name)\n",
                args.host
            )
        }
    };
    let Some((_, app)) = config.app_for_host(&host, port) else {
        return format!("host:     {}\noutcome:  421 no app serves this host\n", args.host);
    };
    let raw_path = args.path.split(['?', '#']).next().unwrap_or("");
    let path = match policy::normalise(raw_path.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            return format!(
                "app:      {}\npath:     {raw_path}\noutcome:  400 refused: {e}\n",
                app.name
            )
        }
    };
    let auth = args.user.as_ref().map(|user| Authentication {
        user: user.clone(),
        groups: args.groups.clone().into(),
        second_factor_at: args.mfa_age.map(|age| now - age),
        mfa_opted_in: args.opted_in,
        signed_in_at: now,
    });
    let decision = app.policy.decide(&RequestFacts {
        method: &args.method,
        path: &path,
        client_ip: args.ip,
        auth: auth.as_ref(),
        now,
    });
    out.push_str(&format!(
        "app:      {} (upstream {})\n",
        app.name, app.upstream.url
    ));
    out.push_str(&format!(
        "request:  {} {} from {}\n",
        args.method,
        path.forwarded(),
        args.ip
    ));
    out.push_str(&match &auth {
        None => "user:     nobody signed in\n".to_owned(),
        Some(a) => format!(
            "user:     {} (groups: {}; second factor: {})\n",
            a.user,
            if a.groups.is_empty() {
                "none".to_owned()
            } else {
                a.groups.join(", ")
            },
            args.mfa_age.map_or("not passed".to_owned(), |d| format!(
                "{} ago",
                humantime::format_duration(d)
            ))
        ),
    });
    out.push_str(&format!(
        "rule:     {}\n",
        decided_by(&decision, app.policy.routes.rules())
    ));
    out.push_str(&format!("requires: {}\n", requirement(decision.requirement)));
    out.push_str(&format!("outcome:  {}\n", outcome(decision.outcome)));
    out
}

fn decided_by(decision: &Decision, rules: &[Rule]) -> String {
    match decision.decided_by {
        DecidedBy::Rule(i) => rules.get(i).map_or_else(String::new, describe_rule),
        DecidedBy::IdentityNeeded(i) => format!(
            "{}\n          (it names users or groups, so the user must sign in before it can be tried)",
            rules.get(i).map_or_else(String::new, describe_rule)
        ),
        DecidedBy::AppDefault => "no rule covers this path; the app's `mfa` setting decides".to_owned(),
        DecidedBy::NoRuleAdmits => "rules cover this path, but none admits this client or user".to_owned(),
    }
}

fn describe_rule(rule: &Rule) -> String {
    let policy = match rule.policy {
        RulePolicy::Bypass => "bypass".to_owned(),
        RulePolicy::Password => "password".to_owned(),
        RulePolicy::Mfa { max_age: None } => "mfa".to_owned(),
        RulePolicy::Mfa { max_age: Some(d) } => format!("mfa, max_age {}", humantime::format_duration(d)),
        RulePolicy::Deny => "deny".to_owned(),
    };
    let mut s = format!(
        "{} — {} {}",
        rule.origin,
        match rule.path_match {
            policy::PathMatch::Exact => "exactly",
            policy::PathMatch::Prefix => "under",
        },
        rule.path
    );
    if let Some(methods) = &rule.methods {
        s.push_str(&format!(", methods {}", methods.join(" ")));
    }
    if !rule.subjects.users.is_empty() {
        s.push_str(&format!(", users {}", rule.subjects.users.join(" ")));
    }
    if !rule.subjects.groups.is_empty() {
        s.push_str(&format!(", groups {}", rule.subjects.groups.join(" ")));
    }
    if !rule.networks.is_empty() {
        let nets: Vec<_> = rule.networks.iter().map(ToString::to_string).collect();
        s.push_str(&format!(", networks {}", nets.join(" ")));
    }
    format!("{s} → {policy}")
}

fn requirement(r: Requirement) -> String {
    match r {
        Requirement::Nothing => "nothing (bypass)".into(),
        Requirement::Password => "a signed-in user (the app's password)".into(),
        Requirement::SecondFactor { max_age: None } => "a second factor".into(),
        Requirement::SecondFactor { max_age: Some(d) } => {
            format!(
                "a second factor passed within the last {}",
                humantime::format_duration(d)
            )
        }
        Requirement::Refused => "— (refused for everyone it applies to)".into(),
    }
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Forward => "forward without identity",
        Outcome::Allow => "forward with the user's identity",
        Outcome::Deny => "403 denied",
        Outcome::SignIn => "sign in first",
        Outcome::SecondFactor => "pass the second factor first",
        Outcome::StepUp => "pass the second factor again (step-up)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn report_names_the_rule_and_the_outcome() {
        let config = crate::config::parse(
            "listen: [\"127.0.0.1:1\"]\nstate_dir: s\napps:\n  wiki:\n    hosts: [wiki.example]\n    upstream: http://127.0.0.1:1\n    routes:\n      - {path: /admin, policy: mfa, max_age: 10m, groups: [admins]}\n      - {path: /admin, policy: deny}\n",
            std::path::Path::new("p.yaml"),
        )
        .unwrap();
        let args = |extra: &[&str]| {
            let mut argv = vec![
                "x",
                "-c",
                "p.yaml",
                "--host",
                "wiki.example",
                "--path",
                "/x/../admin/users?q=1",
            ];
            argv.extend_from_slice(extra);
            Wrapper::parse_from(argv).args
        };
        let now = SystemTime::now();
        let text = report(
            &config,
            &args(&["--user", "alice", "--groups", "admins", "--mfa-age", "20m"]),
            now,
        );
        assert!(
            text.contains("request:  GET /admin/users from 127.0.0.1"),
            "{text}"
        );
        assert!(
            text.contains(
                "p.yaml:8:9 (apps.wiki.routes[0]) — under /admin, groups admins → mfa, max_age 10m"
            ),
            "{text}"
        );
        assert!(
            text.contains("outcome:  pass the second factor again (step-up)"),
            "{text}"
        );
        let text = report(&config, &args(&["--user", "bob"]), now);
        assert!(
            text.contains("apps.wiki.routes[1]") && text.contains("403 denied"),
            "{text}"
        );
        let text = report(&config, &args(&[]), now);
        assert!(text.contains("must sign in before it can be tried"), "{text}");
        assert!(report(
            &config,
            &Wrapper::parse_from(["x", "-c", "p", "--host", "nope", "--path", "/"]).args,
            now
        )
        .contains("421"));
    }
}
