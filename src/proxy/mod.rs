//! The proxy: Pingora's `ProxyHttp` implementation and the request hygiene it applies.

pub mod gateway;
pub mod headers;
pub mod return_path;
pub mod target;

pub use gateway::Gateway;
