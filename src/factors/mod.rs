//! Second factors: authenticator-app codes (TOTP), one-time recovery codes, codes
//! sent by e-mail or text message, and the lockout rule that all of them share.

pub mod app_password;
pub mod argon;
pub mod email;
pub mod hashing;
pub mod lockout;
pub mod phone;
pub mod recovery;
pub mod sent_code;
pub mod totp;

/// How a user passed the gateway's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SignInMethod {
    /// The app's password only (no second factor was needed).
    Password,
    Totp,
    Recovery,
    Email,
    /// A code sent by text message.
    Sms,
    /// A security key or passkey (WebAuthn).
    SecurityKey,
    /// A browser the user asked to be remembered in, within its lifetime.
    TrustedDevice,
    /// An app password of a client that cannot show a page (no session).
    AppPassword,
}

impl SignInMethod {
    /// The method a stored name stands for.
    pub fn parse(name: &str) -> Option<SignInMethod> {
        [
            SignInMethod::Password,
            SignInMethod::Totp,
            SignInMethod::Recovery,
            SignInMethod::Email,
            SignInMethod::Sms,
            SignInMethod::SecurityKey,
            SignInMethod::TrustedDevice,
            SignInMethod::AppPassword,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Password => "password",
            SignInMethod::Totp => "totp",
            SignInMethod::Recovery => "recovery",
            SignInMethod::Email => "email",
            SignInMethod::Sms => "sms",
            SignInMethod::SecurityKey => "security_key",
            SignInMethod::TrustedDevice => "trusted_device",
            SignInMethod::AppPassword => "app_password",
        }
    }
}
