//! Portvakt: a reverse proxy (Pingora) that puts a second factor in front of web apps
//! that only know passwords. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod cli;
pub mod config;
pub mod factors;
pub mod keys;
pub mod login;
pub mod notify;
pub mod pages;
pub mod policy;
pub mod proxy;
pub mod session;
pub mod store;
pub mod telemetry;
