//! Second factors: authenticator-app codes (TOTP), one-time recovery codes, and the
//! lockout rule that all of them share.

pub mod email;
pub mod hashing;
pub mod lockout;
pub mod recovery;
pub mod totp;
