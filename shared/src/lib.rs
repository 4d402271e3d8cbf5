//! The common crate of mss: everything that can be tested without AWS.
//!
//! The data's walk: `steps::fetch` (via `ports::AlertSource`, `adapters::graph`) →
//! `ports::Store` + `ports::Queue` → `steps::classify` → `steps::ticket`
//! (`ports::Tickets`, `adapters::opsramp`).

pub mod adapters;
/// Fault-injecting port wrappers for `mss chaos` (issue 10).
pub mod chaos;
#[doc(hidden)]
pub mod conformance;
pub mod domain;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "aws")]
pub mod lambda_preflight;
pub mod messages;
pub mod ports;
pub mod report;
pub mod runner;
pub mod sentinel;
pub mod steps;
