//! Every durable row of a store, backend-neutral, for moving a deployment from
//! one backend to another (`portvakt migrate`). Short-lived state (challenges in
//! progress, withheld answers, pending addresses) is not moved: it lives minutes,
//! and losing it means signing in again, never a lost enrolment.
//!
//! Ids are kept (a device's id is in its user's security-info links), and so are
//! sealed secrets, byte for byte: they open under the same key file.

/// Times are Unix seconds, as the columns keep them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub users: Vec<UserRow>,
    pub devices: Vec<DeviceRow>,
    pub security_keys: Vec<SecurityKeyRow>,
    pub recovery_codes: Vec<RecoveryCodeRow>,
    pub failures: Vec<FailureRow>,
    pub sessions: Vec<SessionRow>,
    pub trusted_devices: Vec<TrustedDeviceRow>,
    pub mfa_defaults: Vec<MfaDefaultRow>,
    pub audit: Vec<AuditRow>,
    pub app_passwords: Vec<AppPasswordRow>,
    pub sign_in_signals: Vec<SignInSignalRow>,
}

impl Snapshot {
    /// What it holds, table by table, for the user to compare.
    pub fn counts(&self) -> [(&'static str, usize); 11] {
        [
            ("users", self.users.len()),
            ("authenticator apps", self.devices.len()),
            ("security keys", self.security_keys.len()),
            ("recovery codes", self.recovery_codes.len()),
            ("failure counters", self.failures.len()),
            ("sessions", self.sessions.len()),
            ("remembered browsers", self.trusted_devices.len()),
            ("app defaults", self.mfa_defaults.len()),
            ("audit events", self.audit.len()),
            ("app passwords", self.app_passwords.len()),
            ("known browsers and networks", self.sign_in_signals.len()),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub created_at: i64,
    pub last_totp_step: Option<i64>,
    pub enrolment_open_until: Option<i64>,
    pub mfa_opted_in: bool,
    pub preferred_method: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: i64,
    pub user_name: String,
    pub name: String,
    pub sealed_secret: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInSignalRow {
    pub user_name: String,
    pub kind: String,
    pub value: Vec<u8>,
    pub last_seen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityKeyRow {
    pub id: i64,
    pub user_name: String,
    pub name: String,
    pub credential_id: Vec<u8>,
    pub rp_id: String,
    pub credential: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCodeRow {
    pub id: i64,
    pub user_name: String,
    pub phc: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordRow {
    pub id: i64,
    pub user_name: String,
    pub app: String,
    pub name: String,
    pub phc: String,
    pub sealed_secret: Option<Vec<u8>>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub app_refused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    pub subject: String,
    pub count: i64,
    pub last_failure: Option<i64>,
    pub locked_until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_name: String,
    pub app: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub second_factor_at: Option<i64>,
    pub method: String,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedDeviceRow {
    pub id_hash: Vec<u8>,
    pub user_name: String,
    pub passed_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDefaultRow {
    pub app: String,
    pub fingerprint: String,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub actor: String,
    pub subject: String,
    pub app: Option<String>,
    pub client: Option<String>,
    pub outcome: String,
}
