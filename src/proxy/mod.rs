//! The proxy: Pingora's `ProxyHttp` implementation and the request hygiene it applies.

pub mod answer;
pub mod auth;
pub mod gateway;
pub mod gateway_login;
pub mod headers;
pub mod identity;
pub mod login;
pub mod return_path;
pub mod second_factor;
pub mod target;

pub use gateway::Gateway;
