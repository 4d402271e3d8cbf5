//! The queue contracts, in one place. Messages carry ids and versions only: the alert body
//! lives in the store, so a message stays far below SQS's 256 KB and a replay always reads
//! what was stored, not a stale copy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; consumers refuse versions they do not know.
pub const MESSAGE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueName {
    Classify,
    Ticket,
}

impl QueueName {
    pub const ALL: [QueueName; 2] = [QueueName::Classify, QueueName::Ticket];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Classify => "classify",
            QueueName::Ticket => "ticket",
        }
    }
}

/// One version of one alert of one tenant: the unit every step after fetch works on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlertRef {
    pub v: u32,
    pub tenant: String,
    pub alert_id: String,
    pub last_update: DateTime<Utc>,
}

impl AlertRef {
    pub fn new(tenant: &str, alert_id: &str, last_update: DateTime<Utc>) -> AlertRef {
        AlertRef {
            v: MESSAGE_VERSION,
            tenant: tenant.to_string(),
            alert_id: alert_id.to_string(),
            last_update,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("AlertRef serialises")
    }

    pub fn from_json(s: &str) -> Result<AlertRef, String> {
        let m: AlertRef = serde_json::from_str(s).map_err(|e| format!("bad message: {e}"))?;
        if m.v != MESSAGE_VERSION {
            return Err(format!(
                "message version {} is not supported (expected {MESSAGE_VERSION})",
                m.v
            ));
        }
        Ok(m)
    }
}
