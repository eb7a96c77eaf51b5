//! The proxy: Pingora's `ProxyHttp` implementation and the request hygiene it applies.

mod account;
mod admit;
pub mod answer;
pub mod auth;
mod confirm;
pub mod forms;
pub mod gateway;
pub mod gateway_login;
pub mod headers;
pub mod identity;
pub mod login;
mod own_pages;
pub mod return_path;
pub mod second_factor;
pub mod target;
mod withhold;

pub use gateway::Gateway;
