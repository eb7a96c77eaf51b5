//! The vocabulary of policy: what an app requires by default and what a route rule says.

use std::time::Duration;

use ipnet::IpNet;

use super::decide::Authentication;

/// What a route rule asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulePolicy {
    /// Forwarded without any authentication (identity headers are still stripped).
    Bypass,
    /// The app's own password login is enough.
    Password,
    /// A second factor is needed; with `max_age`, one passed no longer ago than that.
    Mfa { max_age: Option<Duration> },
    /// Refused, whoever asks.
    Deny,
}

/// An app's default for requests that no route rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaMode {
    /// Everybody needs a second factor.
    Required,
    /// Users who opted in need a second factor; the others need only the password.
    Optional,
    /// The password is enough.
    Off,
    /// The listed users and the members of the listed groups need a second factor.
    ForSubjects(Subjects),
}

impl MfaMode {
    /// A stable description of the mode, the same for the same meaning however the
    /// file lists names: it tells whether an app's default changed between loads.
    pub fn fingerprint(&self) -> String {
        match self {
            MfaMode::Required => "required".to_owned(),
            MfaMode::Optional => "optional".to_owned(),
            MfaMode::Off => "off".to_owned(),
            MfaMode::ForSubjects(s) => {
                let sorted = |names: &[String]| {
                    let mut names = names.to_vec();
                    names.sort();
                    names.dedup();
                    names.join(",")
                };
                format!("users={};groups={}", sorted(&s.users), sorted(&s.groups))
            }
        }
    }
}

/// Users and groups named by a rule or an app; empty means nobody is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl Subjects {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    /// True when the user is listed by name or belongs to a listed group.
    pub fn admit(&self, auth: &Authentication) -> bool {
        self.users.contains(&auth.user)
            || self
                .groups
                .iter()
                .any(|g| auth.groups.iter().any(|mine| mine == g))
    }
}

/// How a rule's path is compared with the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    /// The path and everything below it, on segment boundaries: `/admin` covers
    /// `/admin`, `/admin/` and `/admin/x`, never `/administrator`.
    Prefix,
    /// The path itself (with or without a trailing slash) and nothing below it.
    Exact,
}

/// One route rule, as validated from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The decoded path, starting with `/`, without a trailing slash (except `/`).
    pub path: String,
    pub path_match: PathMatch,
    /// Methods this rule is limited to, compared case-exactly; `None` for all.
    pub methods: Option<Vec<String>>,
    pub policy: RulePolicy,
    /// When not empty, the rule applies only to these users and groups.
    pub subjects: Subjects,
    /// When not empty, the rule applies only to clients in these networks.
    pub networks: Vec<IpNet>,
    /// Whether clients may use app passwords here; `None` leaves it to the app.
    pub app_passwords: Option<bool>,
    /// Where the rule was written, e.g. `portvakt.yaml:42:9 (apps.wiki.routes[2])`.
    pub origin: String,
}

impl Rule {
    /// A rule with conditions is tried before an unconditional one at the same path.
    pub fn has_conditions(&self) -> bool {
        !self.subjects.is_empty() || !self.networks.is_empty()
    }

    pub fn names_method(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_some_and(|m| m.iter().any(|x| x == method))
    }

    /// True when some request method would match both rules in the same tier.
    pub fn methods_overlap(&self, other: &Rule) -> bool {
        match (&self.methods, &other.methods) {
            (None, None) => true,
            (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
            _ => false,
        }
    }
}
