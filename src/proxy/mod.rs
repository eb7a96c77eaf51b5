//! Pingora's phases and nothing else: admission (hygiene, host, path, session,
//! policy), watching the app's answers for sign-ins, forwarding, and writing the
//! portal's answers to the client.

pub mod access_log;
mod admit;
mod app_password;
mod basic;
mod confirm;
pub mod gateway;
pub mod headers;
mod kept;
pub mod login;
pub mod metrics;
mod overlay;
mod own_pages;
mod respond;
pub mod target;
mod whole_answer;
mod withhold;

pub use gateway::Gateway;
