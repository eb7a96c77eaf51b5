//! The kinds of event the audit trail records: one closed set, written by the
//! gateway, the admin pages and the CLI, and read back by the security-info and
//! admin pages.

/// A security event, as stored in the trail's `event` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    LoginOk,
    LoginFailed,
    LoginUnconfirmed,
    SecondFactorOk,
    SecondFactorFailed,
    Enrolled,
    RecoveryCodeUsed,
    RecoveryCodesRenewed,
    ReplayRejected,
    LockedOut,
    SignedOut,
    SignedOutEverywhere,
    DeviceRemoved,
    DeviceRenamed,
    MfaTurnedOn,
    MfaTurnedOff,
    BrowserRemembered,
    DefaultMethodChanged,
    EmailCodeSent,
    EmailAdded,
    EmailFromApp,
    SmsCodeSent,
    PhoneAdded,
    PhoneRemoved,
    KeyAdded,
    KeyRemoved,
    Reset,
    Unlocked,
    EnrolmentOpened,
    AppPasswordCreated,
    /// At most once an hour for each app password.
    AppPasswordUsed,
    AppPasswordRevoked,
}

impl AuditKind {
    pub const ALL: [AuditKind; 32] = [
        AuditKind::LoginOk,
        AuditKind::LoginFailed,
        AuditKind::LoginUnconfirmed,
        AuditKind::SecondFactorOk,
        AuditKind::SecondFactorFailed,
        AuditKind::Enrolled,
        AuditKind::RecoveryCodeUsed,
        AuditKind::RecoveryCodesRenewed,
        AuditKind::ReplayRejected,
        AuditKind::LockedOut,
        AuditKind::SignedOut,
        AuditKind::SignedOutEverywhere,
        AuditKind::DeviceRemoved,
        AuditKind::DeviceRenamed,
        AuditKind::MfaTurnedOn,
        AuditKind::MfaTurnedOff,
        AuditKind::BrowserRemembered,
        AuditKind::DefaultMethodChanged,
        AuditKind::EmailCodeSent,
        AuditKind::EmailAdded,
        AuditKind::EmailFromApp,
        AuditKind::SmsCodeSent,
        AuditKind::PhoneAdded,
        AuditKind::PhoneRemoved,
        AuditKind::KeyAdded,
        AuditKind::KeyRemoved,
        AuditKind::Reset,
        AuditKind::Unlocked,
        AuditKind::EnrolmentOpened,
        AuditKind::AppPasswordCreated,
        AuditKind::AppPasswordUsed,
        AuditKind::AppPasswordRevoked,
    ];

    /// The stored name (stable: trails written by older versions read the same).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginOk => "login_ok",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::LoginUnconfirmed => "login_unconfirmed",
            AuditKind::SecondFactorOk => "second_factor_ok",
            AuditKind::SecondFactorFailed => "second_factor_failed",
            AuditKind::Enrolled => "enrolled",
            AuditKind::RecoveryCodeUsed => "recovery_code_used",
            AuditKind::RecoveryCodesRenewed => "recovery_codes_renewed",
            AuditKind::ReplayRejected => "replay_rejected",
            AuditKind::LockedOut => "locked_out",
            AuditKind::SignedOut => "signed_out",
            AuditKind::SignedOutEverywhere => "signed_out_everywhere",
            AuditKind::DeviceRemoved => "device_removed",
            AuditKind::DeviceRenamed => "device_renamed",
            AuditKind::MfaTurnedOn => "mfa_turned_on",
            AuditKind::MfaTurnedOff => "mfa_turned_off",
            AuditKind::BrowserRemembered => "browser_remembered",
            AuditKind::DefaultMethodChanged => "default_method_changed",
            AuditKind::EmailCodeSent => "email_code_sent",
            AuditKind::EmailAdded => "email_added",
            AuditKind::EmailFromApp => "email_from_app",
            AuditKind::SmsCodeSent => "sms_code_sent",
            AuditKind::PhoneAdded => "phone_added",
            AuditKind::PhoneRemoved => "phone_removed",
            AuditKind::KeyAdded => "key_added",
            AuditKind::KeyRemoved => "key_removed",
            AuditKind::Reset => "reset",
            AuditKind::Unlocked => "unlocked",
            AuditKind::EnrolmentOpened => "enrolment_opened",
            AuditKind::AppPasswordCreated => "app_password_created",
            AuditKind::AppPasswordUsed => "app_password_used",
            AuditKind::AppPasswordRevoked => "app_password_revoked",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_stored_name() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("something_else"), None);
    }
}
