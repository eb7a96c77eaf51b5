//! The gateway's own paths under `/.portvakt/`, as one table: every link, redirect
//! and form action is built from it, and every request is matched against it, so a
//! page cannot be renamed in one place and forgotten in another.

/// Where every page of the gateway lives, on every app host.
pub const PREFIX: &str = "/.portvakt/";

/// A page of the gateway's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Health,
    Stylesheet,
    /// The overlay script added to the pages of apps that ask for it.
    OverlayScript,
    KeyScript,
    /// Where the overlay's frame ends once a script login's factor is passed.
    SignedIn,
    Logo,
    Jwks,
    Logout,
    Unavailable,
    Locked,
    SignInRefused,
    EnrolmentClosed,
    /// The gateway's own login form (`login: gateway`).
    Login,
    Challenge(ChallengePage),
    Account(AccountPage),
    Admin(AdminPage),
}

/// The pages of a second-factor challenge in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengePage {
    Enrol,
    EnrolEmail,
    EnrolEmailConfirm,
    Verify,
    Recovery,
    Email,
    EmailSend,
    Sms,
    SmsSend,
    Key,
    EnrolKey,
    Unusual,
    UnusualSend,
    Continue,
    RecoveryCodesFile,
    RecoveryCodesPrint,
}

/// The signed-in user's security info and what can be changed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountPage {
    Overview,
    RecoveryCodes,
    SignOutEverywhere,
    AddDevice,
    RenameDevice,
    RemoveDevice,
    RemoveDeviceConfirm,
    TwoFactor,
    DefaultMethod,
    Email,
    EmailConfirm,
    Phone,
    PhoneConfirm,
    PhoneRemove,
    AddKey,
    AddKeyFinish,
    RemoveKey,
    RemoveKeyConfirm,
    AddAppPassword,
    RemoveAppPassword,
}

/// The admins' page and its actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminPage {
    Overview,
    Unlock,
    OpenEnrolment,
    Reset,
    ResetConfirm,
    RemoveAppPassword,
}

/// Each route and its full path.
const TABLE: &[(Route, &str)] = &[
    (Route::Health, "/.portvakt/health"),
    (Route::Stylesheet, "/.portvakt/assets/portvakt.css"),
    (Route::OverlayScript, "/.portvakt/assets/overlay.js"),
    (Route::KeyScript, "/.portvakt/assets/webauthn.js"),
    (Route::SignedIn, "/.portvakt/signed-in"),
    (Route::Logo, "/.portvakt/assets/logo"),
    (Route::Jwks, "/.portvakt/jwks.json"),
    (Route::Logout, "/.portvakt/logout"),
    (Route::Unavailable, "/.portvakt/unavailable"),
    (Route::Locked, "/.portvakt/locked"),
    (Route::SignInRefused, "/.portvakt/sign-in-refused"),
    (Route::EnrolmentClosed, "/.portvakt/enrolment-closed"),
    (Route::Login, "/.portvakt/login"),
    (Route::Challenge(ChallengePage::Enrol), "/.portvakt/enrol"),
    (
        Route::Challenge(ChallengePage::EnrolEmail),
        "/.portvakt/enrol/email",
    ),
    (
        Route::Challenge(ChallengePage::EnrolEmailConfirm),
        "/.portvakt/enrol/email/confirm",
    ),
    (Route::Challenge(ChallengePage::Verify), "/.portvakt/verify"),
    (Route::Challenge(ChallengePage::Recovery), "/.portvakt/recovery"),
    (Route::Challenge(ChallengePage::Email), "/.portvakt/email"),
    (
        Route::Challenge(ChallengePage::EmailSend),
        "/.portvakt/email/send",
    ),
    (Route::Challenge(ChallengePage::Sms), "/.portvakt/sms"),
    (Route::Challenge(ChallengePage::SmsSend), "/.portvakt/sms/send"),
    (Route::Challenge(ChallengePage::Key), "/.portvakt/security-key"),
    (
        Route::Challenge(ChallengePage::EnrolKey),
        "/.portvakt/enrol/security-key",
    ),
    (
        Route::Challenge(ChallengePage::Unusual),
        "/.portvakt/confirm-sign-in",
    ),
    (
        Route::Challenge(ChallengePage::UnusualSend),
        "/.portvakt/confirm-sign-in/send",
    ),
    (Route::Challenge(ChallengePage::Continue), "/.portvakt/continue"),
    (
        Route::Challenge(ChallengePage::RecoveryCodesFile),
        "/.portvakt/recovery-codes.txt",
    ),
    (
        Route::Challenge(ChallengePage::RecoveryCodesPrint),
        "/.portvakt/recovery-codes/print",
    ),
    (Route::Account(AccountPage::Overview), "/.portvakt/account"),
    (
        Route::Account(AccountPage::RecoveryCodes),
        "/.portvakt/account/recovery-codes",
    ),
    (
        Route::Account(AccountPage::SignOutEverywhere),
        "/.portvakt/account/sign-out-everywhere",
    ),
    (
        Route::Account(AccountPage::AddDevice),
        "/.portvakt/account/add-device",
    ),
    (
        Route::Account(AccountPage::RenameDevice),
        "/.portvakt/account/rename-device",
    ),
    (
        Route::Account(AccountPage::RemoveDevice),
        "/.portvakt/account/remove-device",
    ),
    (
        Route::Account(AccountPage::RemoveDeviceConfirm),
        "/.portvakt/account/remove-device/confirm",
    ),
    (
        Route::Account(AccountPage::TwoFactor),
        "/.portvakt/account/two-factor",
    ),
    (
        Route::Account(AccountPage::DefaultMethod),
        "/.portvakt/account/default-method",
    ),
    (Route::Account(AccountPage::Email), "/.portvakt/account/email"),
    (
        Route::Account(AccountPage::EmailConfirm),
        "/.portvakt/account/email/confirm",
    ),
    (Route::Account(AccountPage::Phone), "/.portvakt/account/phone"),
    (
        Route::Account(AccountPage::PhoneConfirm),
        "/.portvakt/account/phone/confirm",
    ),
    (
        Route::Account(AccountPage::PhoneRemove),
        "/.portvakt/account/phone/remove",
    ),
    (
        Route::Account(AccountPage::AddKey),
        "/.portvakt/account/security-key",
    ),
    (
        Route::Account(AccountPage::AddKeyFinish),
        "/.portvakt/account/security-key/finish",
    ),
    (
        Route::Account(AccountPage::RemoveKey),
        "/.portvakt/account/security-key/remove",
    ),
    (
        Route::Account(AccountPage::RemoveKeyConfirm),
        "/.portvakt/account/security-key/remove/confirm",
    ),
    (
        Route::Account(AccountPage::AddAppPassword),
        "/.portvakt/account/app-passwords",
    ),
    (
        Route::Account(AccountPage::RemoveAppPassword),
        "/.portvakt/account/app-passwords/revoke",
    ),
    (Route::Admin(AdminPage::Overview), "/.portvakt/admin"),
    (Route::Admin(AdminPage::Unlock), "/.portvakt/admin/unlock"),
    (
        Route::Admin(AdminPage::OpenEnrolment),
        "/.portvakt/admin/open-enrolment",
    ),
    (Route::Admin(AdminPage::Reset), "/.portvakt/admin/reset"),
    (
        Route::Admin(AdminPage::ResetConfirm),
        "/.portvakt/admin/reset/confirm",
    ),
    (
        Route::Admin(AdminPage::RemoveAppPassword),
        "/.portvakt/admin/app-passwords/revoke",
    ),
];

impl Route {
    /// The route a normalised request path names; `None` for any other path, under
    /// `/.portvakt/` or not.
    pub fn parse(path: &str) -> Option<Route> {
        TABLE.iter().find(|(_, p)| *p == path).map(|(route, _)| *route)
    }

    /// The route's full path, for links, redirects and form actions.
    pub fn path(self) -> &'static str {
        TABLE
            .iter()
            .find(|(route, _)| *route == self)
            .map_or(PREFIX, |(_, path)| path)
    }
}

/// Whether a path is the gateway's: everything under `/.portvakt/` is answered by
/// the gateway (a page, or its "not found"), never forwarded to an app.
pub fn is_gateway_path(path: &str) -> bool {
    path.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_one_path_under_the_prefix_and_reads_back() {
        let mut seen = std::collections::HashSet::new();
        for (route, path) in TABLE {
            assert!(path.starts_with(PREFIX), "{path}");
            assert!(seen.insert(*path), "{path} is listed twice");
            assert_eq!(Route::parse(path), Some(*route));
            assert_eq!(route.path(), *path);
        }
    }

    /// The configuration names the gateway's login page without knowing the portal
    /// (it sits below it); the two must say the same.
    #[test]
    fn the_configurations_login_page_is_the_login_route() {
        assert_eq!(Route::Login.path(), crate::config::model::GATEWAY_LOGIN_PAGE);
    }

    /// Every link and form action the templates write is a route.
    #[test]
    fn every_path_in_the_templates_is_a_route() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/portal/views/templates");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices(PREFIX) {
                let link: String = text[at..]
                    .chars()
                    .take_while(|c| !matches!(c, '"' | '\'' | '?' | ' ' | ')' | '<' | '{'))
                    .collect();
                assert!(
                    Route::parse(&link).is_some(),
                    "{}: {link} is no route",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 10, "the templates link to the gateway's pages");
    }

    #[test]
    fn other_paths_are_no_route() {
        for path in [
            "/.portvakt/",
            "/.portvakt/verify/",
            "/.portvakt/VERIFY",
            "/.portvakt/admin/anything",
            "/verify",
            "/.portvakt/verify?x",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }
}
