//! Implementations of the ports: HTTP clients for the real services, and the embedded
//! (SQLite) store and queues.
pub mod graph;
pub mod http;
pub mod opsramp;
#[cfg(feature = "embedded")]
pub mod sqlite;
