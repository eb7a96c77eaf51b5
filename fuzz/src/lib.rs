//! The readers the targets fuzz, compiled from Portvakt's own source files (the
//! `login` module is pure: no Pingora, no I/O), so that what is fuzzed is exactly
//! what the gateway runs.

#[path = "../../src/login/mod.rs"]
pub mod login;
