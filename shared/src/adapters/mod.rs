//! Implementations of the ports: HTTP clients for the real services, and the embedded
//! (SQLite) store and queues.
use chrono::{DateTime, SecondsFormat, Utc};

/// Times in stores are written with fixed precision so that text order is time order.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The moment before which a claim taken at `now - lease` counts as abandoned.
pub(crate) fn lease_cutoff(now: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|l| now.checked_sub_signed(l))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `Store::recent_alerts`' order: newest first, then by id.
pub(crate) fn newest_first(v: &mut [(crate::domain::alert::Product, crate::domain::alert::Alert)]) {
    v.sort_by(|(_, a), (_, b)| {
        b.last_update
            .cmp(&a.last_update)
            .then_with(|| a.id.cmp(&b.id))
    });
}

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod graph;
pub mod http;
pub mod hunting;
pub mod identity;
pub mod loganalytics;
pub mod mde;
pub mod mdo;
pub mod opsramp;
pub mod report_archive;
#[cfg(feature = "aws")]
pub mod request_count;
#[cfg(feature = "aws")]
pub mod secrets;
#[cfg(feature = "embedded")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
