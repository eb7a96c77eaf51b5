//! Portvakt: a reverse proxy (Pingora) that puts a second factor in front of web apps
//! that only know passwords. See ARCHITECTURE.md for the map and which module may
//! depend on which.

pub mod auth;
pub mod cli;
pub mod config;
pub mod factors;
pub mod keys;
pub mod login;
pub mod policy;
pub mod portal;
pub mod proxy;
pub mod server;
pub mod store;

#[cfg(test)]
mod layering;
