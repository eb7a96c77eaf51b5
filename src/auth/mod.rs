//! Transport-free services behind the gateway's pages and the proxy: sessions,
//! second-factor challenges, the shared lockout, the audit trail, the signed
//! identity sent upstream, and e-mail. Nothing here knows HTTP servers or Pingora.

pub mod app_passwords;
pub mod audit;
pub mod challenge;
pub mod cookies;
pub mod identity;
pub mod kept_requests;
pub mod mfa_changes;
pub mod notify;
pub mod security_keys;
mod services;
mod session_cache;
pub mod sessions;
pub mod sms;
pub mod tokens;
pub mod transient;
pub mod unusual;

pub use audit::AuditKind;
pub use services::{open_keys, open_store, Attempt, Channel, Charged, PendingAddress, Services};
