//! The decision: request facts in, what to do out. No I/O, no clock: `now` is a fact.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::path::NormalisedPath;
use super::rule::{MfaMode, RulePolicy};
use super::table::RouteTable;

/// Who the request belongs to, as established by a gateway session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub user: String,
    pub groups: std::sync::Arc<[String]>,
    /// When the second factor was last passed; `None` when only the password was.
    pub second_factor_at: Option<SystemTime>,
    /// Whether the user turned the second factor on for apps where it is optional.
    pub mfa_opted_in: bool,
    /// When the session began (for a sign-in under way: now).
    pub signed_in_at: SystemTime,
}

/// Everything a decision may depend on.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a NormalisedPath,
    pub client_ip: IpAddr,
    pub auth: Option<&'a Authentication>,
    pub now: SystemTime,
}

/// What the request must have to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Nothing,
    Password,
    SecondFactor { max_age: Option<Duration> },
    Refused,
}

/// What happens to this request, given what it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded without identity (a bypass route).
    Forward,
    /// Forwarded with the verified identity.
    Allow,
    /// Refused with 403.
    Deny,
    /// The user must sign in (with the app's password, or the gateway's login page).
    SignIn,
    /// The user must pass (or enrol) a second factor.
    SecondFactor,
    /// The second factor is too old for this route and must be passed again.
    StepUp,
}

impl Outcome {
    /// A short, stable name for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Forward => "bypass",
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::SignIn => "sign_in",
            Outcome::SecondFactor => "second_factor",
            Outcome::StepUp => "step_up",
        }
    }
}

/// What made the decision, for logs and `portvakt explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The rule with this index in the app's route table.
    Rule(usize),
    /// No rule covers the path; the app's `mfa` setting decided.
    AppDefault,
    /// Rules cover the path, but none admits this client or user.
    NoRuleAdmits,
    /// This rule names users or groups, so the user must sign in before it can be tried.
    IdentityNeeded(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub requirement: Requirement,
    pub outcome: Outcome,
    pub decided_by: DecidedBy,
}

/// An app's policy: its default and its route rules.
#[derive(Debug)]
pub struct AppPolicy {
    pub mfa: MfaMode,
    /// Since when `mfa` has been what it is, when sessions begun before then are
    /// left alone by it until they must sign in again; `None` applies it to every
    /// session at once. Route rules always apply at once.
    pub mfa_in_force_since: Option<SystemTime>,
    /// Whether clients may use app passwords on the app (route rules may say
    /// otherwise for their paths).
    pub app_passwords: bool,
    pub routes: RouteTable,
}

impl AppPolicy {
    pub fn decide(&self, facts: &RequestFacts<'_>) -> Decision {
        let candidates = self.routes.candidates(facts.path, facts.method);
        if candidates.is_empty() {
            let requirement = self.default_requirement(facts.auth);
            return settle(requirement, DecidedBy::AppDefault, facts);
        }
        for i in candidates {
            let rule = &self.routes.rules()[i];
            if !rule.networks.is_empty() && !rule.networks.iter().any(|n| n.contains(&facts.client_ip)) {
                continue;
            }
            if !rule.subjects.is_empty() {
                match facts.auth {
                    None => return settle(Requirement::Password, DecidedBy::IdentityNeeded(i), facts),
                    Some(auth) if !rule.subjects.admit(auth) => continue,
                    Some(_) => {}
                }
            }
            let requirement = match rule.policy {
                RulePolicy::Bypass => Requirement::Nothing,
                RulePolicy::Password => Requirement::Password,
                RulePolicy::Mfa { max_age } => Requirement::SecondFactor { max_age },
                RulePolicy::Deny => Requirement::Refused,
            };
            return settle(requirement, DecidedBy::Rule(i), facts);
        }
        settle(Requirement::Refused, DecidedBy::NoRuleAdmits, facts)
    }

    /// Whether an app password may stand for a user anywhere on the app.
    pub fn may_take_app_passwords(&self) -> bool {
        self.app_passwords || self.routes.any_app_passwords()
    }

    /// Whether an app password may stand for the user on the request `decision`
    /// was made for: the deciding rule's say, else the app's.
    pub fn accepts_app_passwords(&self, decision: &Decision) -> bool {
        match decision.decided_by {
            DecidedBy::Rule(i) => self
                .routes
                .rules()
                .get(i)
                .and_then(|rule| rule.app_passwords)
                .unwrap_or(self.app_passwords),
            DecidedBy::AppDefault => self.app_passwords,
            DecidedBy::NoRuleAdmits | DecidedBy::IdentityNeeded(_) => false,
        }
    }

    /// Whether this user needs a second factor when signing in to the app at all
    /// (routes may still ask for one later, or for a recent one).
    pub fn second_factor_at_sign_in(&self, auth: &Authentication) -> bool {
        matches!(
            self.default_requirement(Some(auth)),
            Requirement::SecondFactor { .. }
        )
    }

    fn default_requirement(&self, auth: Option<&Authentication>) -> Requirement {
        let second_factor = Requirement::SecondFactor { max_age: None };
        // A password-only session that began before the app's default asked for a
        // second factor keeps working until it ends; the next sign-in asks for it.
        if let (Some(since), Some(a)) = (self.mfa_in_force_since, auth) {
            if a.second_factor_at.is_none() && a.signed_in_at < since {
                return Requirement::Password;
            }
        }
        match (&self.mfa, auth) {
            (MfaMode::Required, _) => second_factor,
            (MfaMode::Off, _) => Requirement::Password,
            (MfaMode::Optional, Some(a)) if a.mfa_opted_in => second_factor,
            (MfaMode::ForSubjects(s), Some(a)) if s.admit(a) => second_factor,
            // Until the user is known, the password comes first; the decision is made
            // again with the identity it establishes.
            (MfaMode::Optional | MfaMode::ForSubjects(_), _) => Requirement::Password,
        }
    }
}

fn settle(requirement: Requirement, decided_by: DecidedBy, facts: &RequestFacts<'_>) -> Decision {
    let outcome = match (requirement, facts.auth) {
        (Requirement::Nothing, _) => Outcome::Forward,
        (Requirement::Refused, _) => Outcome::Deny,
        (_, None) => Outcome::SignIn,
        (Requirement::Password, Some(_)) => Outcome::Allow,
        (Requirement::SecondFactor { max_age }, Some(auth)) => match auth.second_factor_at {
            None => Outcome::SecondFactor,
            Some(at) => {
                // A second factor from the future (clock step) counts as age zero.
                let age = facts.now.duration_since(at).unwrap_or(Duration::ZERO);
                match max_age {
                    Some(max) if age > max => Outcome::StepUp,
                    _ => Outcome::Allow,
                }
            }
        },
    };
    Decision {
        requirement,
        outcome,
        decided_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::path::normalise;
    use crate::policy::rule::{PathMatch, Rule, Subjects};
    use proptest::prelude::*;

    fn rule(path: &str, policy: RulePolicy) -> Rule {
        Rule {
            path: path.into(),
            path_match: PathMatch::Prefix,
            methods: None,
            policy,
            subjects: Subjects::default(),
            networks: vec![],
            app_passwords: None,
            origin: String::new(),
        }
    }

    fn mfa(max_age: Option<u64>) -> RulePolicy {
        RulePolicy::Mfa {
            max_age: max_age.map(Duration::from_secs),
        }
    }

    fn policy(mode: MfaMode, rules: Vec<Rule>) -> AppPolicy {
        AppPolicy {
            mfa: mode,
            mfa_in_force_since: None,
            app_passwords: false,
            routes: RouteTable::build(rules, false).expect("no conflicts"),
        }
    }

    fn user(name: &str, groups: &[&str], mfa_age: Option<u64>) -> Authentication {
        Authentication {
            user: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            second_factor_at: mfa_age.map(|s| now() - Duration::from_secs(s)),
            mfa_opted_in: false,
            signed_in_at: now() - Duration::from_secs(3600),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn decide(p: &AppPolicy, method: &str, path: &str, ip: &str, auth: Option<&Authentication>) -> Decision {
        let path = normalise(path.as_bytes()).expect("valid path");
        p.decide(&RequestFacts {
            method,
            path: &path,
            client_ip: ip.parse().expect("ip"),
            auth,
            now: now(),
        })
    }

    /// The example policy from the design brief, plus a few neighbours.
    fn wiki() -> AppPolicy {
        let mut admin = rule("/admin", mfa(Some(600)));
        admin.subjects.groups = vec!["admins".into()];
        let mut health = rule("/healthz", RulePolicy::Bypass);
        health.path_match = PathMatch::Exact;
        let mut office = rule("/reports", RulePolicy::Password);
        office.networks = vec!["10.0.0.0/8".parse().expect("net")];
        let mut post_only = rule("/api", RulePolicy::Deny);
        post_only.methods = Some(vec!["POST".into()]);
        let mut get_api = rule("/api", RulePolicy::Password);
        get_api.methods = Some(vec!["GET".into()]);
        policy(
            MfaMode::Required,
            vec![
                health,
                rule("/admin", RulePolicy::Deny),
                admin,
                rule("/export", RulePolicy::Deny),
                office,
                rule("/reports", mfa(None)),
                post_only,
                get_api,
                rule("/api/public", RulePolicy::Bypass),
            ],
        )
    }

    #[test]
    fn decision_table() {
        let p = wiki();
        let alice = user("alice", &["admins"], Some(60));
        let alice_stale = user("alice", &["admins"], Some(3600));
        let bob = user("bob", &["staff"], Some(60));
        let carol_pw = user("carol", &[], None);
        use DecidedBy::*;
        use Outcome::*;
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<&'a Authentication>,
            Outcome,
            DecidedBy,
        );
        let cases: &[Case] = &[
            // Exact bypass covers the path itself, not what lies below it.
            ("GET", "/healthz", "192.0.2.1", None, Forward, Rule(0)),
            ("GET", "/healthz/", "192.0.2.1", None, Forward, Rule(0)),
            ("GET", "/healthz/x", "192.0.2.1", None, SignIn, AppDefault),
            // Group rule before the unconditional deny at the same path.
            ("GET", "/admin/users", "192.0.2.1", Some(&alice), Allow, Rule(2)),
            ("GET", "/admin", "192.0.2.1", Some(&alice_stale), StepUp, Rule(2)),
            ("GET", "/admin/", "192.0.2.1", Some(&bob), Deny, Rule(1)),
            ("GET", "/admin", "192.0.2.1", None, SignIn, IdentityNeeded(2)),
            (
                "GET",
                "/administrator",
                "192.0.2.1",
                Some(&bob),
                Allow,
                AppDefault,
            ),
            // App default is `required`.
            ("GET", "/", "192.0.2.1", Some(&carol_pw), SecondFactor, AppDefault),
            ("GET", "/page", "192.0.2.1", Some(&bob), Allow, AppDefault),
            ("POST", "/export/all", "192.0.2.1", Some(&alice), Deny, Rule(3)),
            // Network condition, with the unconditional rule as the alternative.
            ("GET", "/reports/q1", "10.1.2.3", Some(&carol_pw), Allow, Rule(4)),
            (
                "GET",
                "/reports/q1",
                "192.0.2.1",
                Some(&carol_pw),
                SecondFactor,
                Rule(5),
            ),
            // Methods: case-exact; HEAD and OPTIONS follow GET.
            ("POST", "/api/x", "192.0.2.1", Some(&bob), Deny, Rule(6)),
            ("GET", "/api/x", "192.0.2.1", Some(&carol_pw), Allow, Rule(7)),
            ("HEAD", "/api/x", "192.0.2.1", Some(&carol_pw), Allow, Rule(7)),
            ("OPTIONS", "/api/x", "192.0.2.1", Some(&carol_pw), Allow, Rule(7)),
            (
                "get",
                "/api/x",
                "192.0.2.1",
                Some(&carol_pw),
                SecondFactor,
                AppDefault,
            ),
            (
                "PUT",
                "/api/x",
                "192.0.2.1",
                Some(&carol_pw),
                SecondFactor,
                AppDefault,
            ),
            // Longest prefix wins.
            ("POST", "/api/public/x", "192.0.2.1", None, Forward, Rule(8)),
        ];
        for (method, path, ip, auth, outcome, by) in cases {
            let d = decide(&p, method, path, ip, *auth);
            assert_eq!(
                (d.outcome, d.decided_by),
                (*outcome, *by),
                "{method} {path} from {ip} as {auth:?}"
            );
        }
    }

    #[test]
    fn conditions_not_met_and_no_alternative_is_denied() {
        let mut only_office = rule("/ops", RulePolicy::Password);
        only_office.networks = vec!["10.0.0.0/8".parse().expect("net")];
        let p = policy(MfaMode::Off, vec![only_office]);
        let bob = user("bob", &[], None);
        let d = decide(&p, "GET", "/ops/x", "192.0.2.1", Some(&bob));
        assert_eq!(
            (d.outcome, d.decided_by),
            (Outcome::Deny, DecidedBy::NoRuleAdmits)
        );
    }

    #[test]
    fn app_defaults() {
        let mut opted = user("dana", &[], None);
        let plain = user("erik", &["staff"], None);
        let admins = MfaMode::ForSubjects(Subjects {
            users: vec!["dana".into()],
            groups: ["admins".to_owned()].into(),
        });
        let cases = [
            (MfaMode::Off, Some(&plain), Outcome::Allow),
            (MfaMode::Off, None, Outcome::SignIn),
            (MfaMode::Optional, Some(&plain), Outcome::Allow),
            (admins.clone(), Some(&plain), Outcome::Allow),
            (admins.clone(), Some(&opted), Outcome::SecondFactor),
            (admins, None, Outcome::SignIn),
        ];
        for (mode, auth, outcome) in cases {
            let p = policy(mode.clone(), vec![]);
            assert_eq!(
                decide(&p, "GET", "/", "192.0.2.1", auth).outcome,
                outcome,
                "{mode:?} {auth:?}"
            );
        }
        opted.mfa_opted_in = true;
        let p = policy(MfaMode::Optional, vec![]);
        assert_eq!(
            decide(&p, "GET", "/", "192.0.2.1", Some(&opted)).outcome,
            Outcome::SecondFactor
        );
    }

    #[test]
    fn sessions_from_before_the_default_changed_are_left_alone_but_not_by_route_rules() {
        let mut p = policy(MfaMode::Required, vec![rule("/admin", mfa(None))]);
        let before = user("erik", &[], None);
        let mut after = before.clone();
        after.signed_in_at = now();
        p.mfa_in_force_since = Some(now() - Duration::from_secs(60));
        assert_eq!(
            decide(&p, "GET", "/", "192.0.2.1", Some(&before)).outcome,
            Outcome::Allow
        );
        assert_eq!(
            decide(&p, "GET", "/", "192.0.2.1", Some(&after)).outcome,
            Outcome::SecondFactor
        );
        assert_eq!(
            decide(&p, "GET", "/admin", "192.0.2.1", Some(&before)).outcome,
            Outcome::SecondFactor,
            "a route rule is not the app's default"
        );
        assert!(p.second_factor_at_sign_in(&after), "a new sign-in is asked");
        p.mfa_in_force_since = None;
        assert_eq!(
            decide(&p, "GET", "/", "192.0.2.1", Some(&before)).outcome,
            Outcome::SecondFactor,
            "applied at once when configured so"
        );
    }

    #[test]
    fn max_age_edges() {
        let p = policy(MfaMode::Off, vec![rule("/", mfa(Some(600)))]);
        for (age, outcome) in [
            (599, Outcome::Allow),
            (600, Outcome::Allow),
            (601, Outcome::StepUp),
        ] {
            let u = user("u", &[], Some(age));
            assert_eq!(
                decide(&p, "GET", "/", "192.0.2.1", Some(&u)).outcome,
                outcome,
                "age {age}"
            );
        }
    }

    #[test]
    fn ties_are_conflicts() {
        let mut a = rule("/x", RulePolicy::Password);
        a.methods = Some(vec!["GET".into(), "POST".into()]);
        let mut b = rule("/x/", RulePolicy::Deny);
        b.methods = Some(vec!["POST".into(), "PUT".into()]);
        let mut g1 = rule("/y", RulePolicy::Password);
        g1.subjects.groups = vec!["a".into()];
        let mut g2 = rule("/y", RulePolicy::Deny);
        g2.networks = vec!["10.0.0.0/8".parse().expect("net")];
        let rules = vec![
            a,
            b,
            g1,
            g2,
            rule("/z", RulePolicy::Deny),
            rule("/z", RulePolicy::Bypass),
        ];
        let conflicts = RouteTable::build(rules, false).expect_err("conflicts");
        let pairs: Vec<_> = conflicts.iter().map(|c| (c.first, c.second)).collect();
        assert_eq!(pairs, [(0, 1), (2, 3), (4, 5)]);
    }

    #[test]
    fn app_passwords_are_taken_where_the_deciding_rule_or_the_app_says() {
        let mut dav = rule("/dav", mfa(None));
        dav.app_passwords = Some(true);
        let mut admin = rule("/dav/admin", mfa(None));
        admin.app_passwords = Some(false);
        let p = policy(MfaMode::Required, vec![dav, admin]);
        assert!(p.may_take_app_passwords(), "a rule takes them");
        let u = user("alice", &[], Some(0));
        let at = |path: &str| p.accepts_app_passwords(&decide(&p, "GET", path, "192.0.2.1", Some(&u)));
        assert!(at("/dav/files"));
        assert!(!at("/dav/admin/x"), "a more specific rule says no");
        assert!(!at("/elsewhere"), "the app's default: no");
        assert!(!policy(MfaMode::Required, vec![rule("/x", mfa(None))]).may_take_app_passwords());
    }

    #[test]
    fn case_insensitive_apps_match_any_case() {
        let p = AppPolicy {
            mfa: MfaMode::Off,
            mfa_in_force_since: None,
            app_passwords: false,
            routes: RouteTable::build(vec![rule("/Admin", RulePolicy::Deny)], true).expect("ok"),
        };
        let u = user("u", &[], None);
        assert_eq!(
            decide(&p, "GET", "/aDMIN/x", "192.0.2.1", Some(&u)).outcome,
            Outcome::Deny
        );
    }

    #[test]
    fn hostile_variants_decide_like_their_forwarded_path_or_are_refused() {
        let p = wiki();
        let bob = user("bob", &["staff"], Some(60));
        let variants = [
            "/admin",
            "//admin",
            "/./admin",
            "/x/../admin",
            "/%61dmin",
            "/admin/",
            "/admin/.",
            "/api/../admin",
            "/admin%2f",
            "/%2e%2e/admin",
            "/admin;x",
            "/admin%00",
            "/ADMIN",
            "/%252e%252e/admin",
            "/admin\\x",
            "/healthz/..",
            "/healthz/%2e",
            "/export//all",
            "/ex%70ort",
        ];
        for raw in variants {
            match normalise(raw.as_bytes()) {
                Ok(path) => {
                    let forwarded = path.forwarded().to_owned();
                    let a = decide(&p, "GET", raw, "192.0.2.1", Some(&bob));
                    let b = decide(&p, "GET", &forwarded, "192.0.2.1", Some(&bob));
                    assert_eq!(a, b, "{raw} vs its forwarded form {forwarded}");
                }
                Err(e) => assert!(raw.contains(['%', ';', '\\']), "{raw} refused: {e}"),
            }
        }
        // The disguises of /admin are all denied to bob, like /admin itself.
        for raw in ["//admin", "/./admin", "/x/../admin", "/%61dmin", "/api/../admin"] {
            assert_eq!(
                decide(&p, "GET", raw, "192.0.2.1", Some(&bob)).outcome,
                Outcome::Deny,
                "{raw}"
            );
        }
    }

    /// Writes `segment` as a client might to dodge a rule: with dot segments, doubled
    /// slashes or percent-encoded letters.
    fn disguise(segment: &str, how: u8) -> String {
        match how {
            0 => segment.to_owned(),
            1 => format!("./{segment}"),
            2 => format!("zz/../{segment}"),
            3 => format!("/{segment}"),
            _ => segment.bytes().map(|b| format!("%{b:02x}")).collect(),
        }
    }

    proptest! {
        #[test]
        fn disguised_paths_get_the_decision_of_the_plain_path(
            parts in proptest::collection::vec(("(admin|healthz|api|public|reports|export|x)", 0u8..5), 0..5),
            method in "(GET|POST|HEAD|OPTIONS|DELETE)",
            who in 0usize..3,
        ) {
            let p = wiki();
            let users = [None, Some(user("alice", &["admins"], Some(60))), Some(user("bob", &[], None))];
            let plain: String = parts.iter().map(|(s, _)| format!("/{s}")).collect();
            let plain = if plain.is_empty() { "/".to_owned() } else { plain };
            let disguised: String = parts.iter().map(|(s, how)| format!("/{}", disguise(s, *how))).collect();
            let disguised = if disguised.is_empty() { "/".to_owned() } else { disguised };
            let a = decide(&p, &method, &plain, "192.0.2.1", users[who].as_ref());
            let b = decide(&p, &method, &disguised, "192.0.2.1", users[who].as_ref());
            prop_assert_eq!(a, b, "{} vs {}", plain, disguised);
        }
    }
}
