//! Reading a sign-in the way the app will, or not at all. Pure: bytes in, verdicts
//! out, no Pingora, so the proxy, the property tests and the fuzz targets share it.
//!
//! - [`credentials`]: who a request names (its query and its body, by a strict parser
//!   per content type). Where the gateway and the app could read a request two ways,
//!   the answer is "unreadable", never a guess.
//! - [`set_cookie`]: which cookies an app's answer sets, and whether each is set
//!   with a live value or deleted, as a browser will read it.
//! - [`basic`]: who an HTTP Basic `Authorization` header names.
//! - [`bearer`]: the token of a `Bearer` `Authorization` header.
//! - [`conditions`]: the query conditions that narrow "the login request" on apps
//!   where one script serves every page.

pub mod basic;
pub mod bearer;
pub mod conditions;
pub mod credentials;
pub mod set_cookie;

pub use conditions::QueryConditions;
pub use credentials::{user_name, BodyKind, Unreadable};
pub use set_cookie::{set_more_than_one_way, CookieNames, SetCookie};
