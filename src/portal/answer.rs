//! Responses the gateway writes itself: its pages, its redirects, and an app's
//! withheld login response when it is finally released. Transport-free: the proxy
//! writes them, tests read them.

use http::{HeaderName, HeaderValue, StatusCode};

use super::route::Route;
use super::views::{self, Page};
use crate::policy::Outcome;

pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
    /// The decision label for logs and metrics.
    pub label: Label,
    /// A page of the gateway's own (gets the security headers); false for a
    /// released app response, which goes out as the app wrote it.
    pub own_page: bool,
    /// A page of the gateway's that the app's own pages may frame (the overlay):
    /// `frame-ancestors 'self'` rather than `'none'`.
    pub framable: bool,
}

impl Answer {
    pub fn page(page: Page, label: Label) -> Answer {
        Answer {
            status: page.status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(page.content_type),
            )],
            body: page.body,
            label,
            own_page: true,
            framable: false,
        }
    }

    /// One of the gateway's error pages, naming the request's reference (which ties
    /// it to the log line).
    pub fn error(
        status: StatusCode,
        kind: views::ErrorKind,
        lang: views::Lang,
        reference: &str,
        label: Label,
    ) -> Answer {
        Answer::page(views::error(status, kind, lang, None, reference), label)
    }

    /// An app's withheld answer, as the app wrote it.
    pub fn released(withheld: crate::auth::challenge::Withheld, label: Label) -> Answer {
        Answer {
            status: StatusCode::from_u16(withheld.status).unwrap_or(StatusCode::FOUND),
            headers: withheld.headers,
            body: withheld.body,
            label,
            own_page: false,
            framable: false,
        }
    }

    /// A 303 to a page of the gateway's own.
    pub fn to(route: Route, label: Label) -> Answer {
        Answer::redirect(route.path(), label)
    }

    /// A 303 to a same-host path (or an absolute path the gateway chose).
    pub fn redirect(location: &str, label: Label) -> Answer {
        let mut answer = Answer {
            status: StatusCode::SEE_OTHER,
            headers: Vec::new(),
            body: Vec::new(),
            label,
            own_page: true,
            framable: false,
        };
        answer.push_header(http::header::LOCATION, location);
        answer
    }

    pub fn with_cookie(mut self, set_cookie: &str) -> Answer {
        self.push_header(http::header::SET_COOKIE, set_cookie);
        self
    }

    /// The first value of a header, if it is text.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    pub fn push_header(&mut self, name: HeaderName, value: &str) {
        match HeaderValue::from_str(value) {
            Ok(value) => self.headers.push((name, value)),
            // Values are built by the gateway from checked parts; say so if one is not.
            Err(_) => tracing::error!(header = %name, "dropped an invalid header value"),
        }
    }
}

/// What the gateway did with a request, for the access log and the
/// `portvakt_requests_total{decision}` metric: one closed set, so dashboards never
/// meet a label spelled two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// Policy decisions (forwarded without identity, with it, a step-up asked).
    Bypass,
    Allow,
    StepUp,
    /// Let in by an app password (no session).
    AppPassword,
    Account,
    Admin,
    BadRequest,
    ChallengeExpired,
    CrossSite,
    Deny,
    EnrolmentClosed,
    Error,
    GatewayPage,
    Locked,
    /// The app's login, forwarded and watched.
    Login,
    LoginAnomalous,
    LoginFailed,
    LoginPage,
    LoginPasswordOnly,
    LoginRemembered,
    /// The browser had passed this user's second factor already (its gateway
    /// session says so): the app's login answer passes.
    LoginSignedIn,
    LoginUnconfirmed,
    LoginUnnamed,
    LoginUnreadable,
    LoginWithheld,
    Logout,
    NotFound,
    RecoveryCodesRenewed,
    /// An app's withheld login answer, released after the second factor.
    Released,
    /// A form kept across a step-up, sent with the page load after it.
    KeptFormSent,
    SecondFactor,
    SignIn,
    SignInElsewhere,
    SignedOutEverywhere,
    StepUpPassed,
    /// A bearer token released with another gateway session.
    TokenRefused,
    UnknownHost,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Bypass => "bypass",
            Label::Allow => "allow",
            Label::StepUp => "step_up",
            Label::AppPassword => "app_password",
            Label::Account => "account",
            Label::Admin => "admin",
            Label::BadRequest => "bad_request",
            Label::ChallengeExpired => "challenge_expired",
            Label::CrossSite => "cross_site",
            Label::Deny => "deny",
            Label::EnrolmentClosed => "enrolment_closed",
            Label::Error => "error",
            Label::GatewayPage => "gateway_page",
            Label::Locked => "locked",
            Label::Login => "login",
            Label::LoginAnomalous => "login_anomalous",
            Label::LoginFailed => "login_failed",
            Label::LoginPage => "login_page",
            Label::LoginPasswordOnly => "login_password_only",
            Label::LoginRemembered => "login_remembered",
            Label::LoginSignedIn => "login_signed_in",
            Label::LoginUnconfirmed => "login_unconfirmed",
            Label::LoginUnnamed => "login_unnamed",
            Label::LoginUnreadable => "login_unreadable",
            Label::LoginWithheld => "login_withheld",
            Label::Logout => "logout",
            Label::NotFound => "not_found",
            Label::RecoveryCodesRenewed => "recovery_codes_renewed",
            Label::Released => "released",
            Label::KeptFormSent => "kept_form_sent",
            Label::SecondFactor => "second_factor",
            Label::SignIn => "sign_in",
            Label::SignInElsewhere => "sign_in_elsewhere",
            Label::SignedOutEverywhere => "signed_out_everywhere",
            Label::StepUpPassed => "step_up_passed",
            Label::TokenRefused => "token_refused",
            Label::UnknownHost => "unknown_host",
        }
    }
}

impl From<Outcome> for Label {
    fn from(outcome: Outcome) -> Label {
        match outcome {
            Outcome::Forward => Label::Bypass,
            Outcome::Allow => Label::Allow,
            Outcome::Deny => Label::Deny,
            Outcome::SignIn => Label::SignIn,
            Outcome::SecondFactor => Label::SecondFactor,
            Outcome::StepUp => Label::StepUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_outcome_is_labelled_as_explain_names_it() {
        for outcome in [
            Outcome::Forward,
            Outcome::Allow,
            Outcome::Deny,
            Outcome::SignIn,
            Outcome::SecondFactor,
            Outcome::StepUp,
        ] {
            assert_eq!(Label::from(outcome).as_str(), outcome.label());
        }
    }
}
