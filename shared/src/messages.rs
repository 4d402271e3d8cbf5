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
    /// First response: plans the actions for an incident alert.
    Respond,
    /// First response: delayed "look at this action again" checks.
    Check,
    /// Investigation reports, queued by the ticket step once the ticket exists.
    Investigate,
}

impl QueueName {
    /// In the embedded runner's drain order: respond before investigate, so a report made
    /// in the same pass already lists the first-response actions planned for its incident.
    pub const ALL: [QueueName; 5] = [
        QueueName::Classify,
        QueueName::Ticket,
        QueueName::Respond,
        QueueName::Check,
        QueueName::Investigate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Classify => "classify",
            QueueName::Ticket => "ticket",
            QueueName::Respond => "respond",
            QueueName::Check => "check",
            QueueName::Investigate => "investigate",
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
    /// Set on an operator's rerun (`mss rerun`, the `rerun` function); absent on the
    /// pipeline's own messages, so older consumers read both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<Rerun>,
}

/// What an operator's rerun asks of a step that would otherwise see "done before".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rerun {
    /// Do the step again; side effects already completed are not repeated.
    Again,
    /// Repeat the side effect where that is meaningful (re-post the investigation report).
    Force,
}

impl AlertRef {
    pub fn new(tenant: &str, alert_id: &str, last_update: DateTime<Utc>) -> AlertRef {
        AlertRef {
            v: MESSAGE_VERSION,
            tenant: tenant.to_string(),
            alert_id: alert_id.to_string(),
            last_update,
            rerun: None,
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

/// "Look at this action again": the respond step's tracking of a machine action, sent with
/// a delay instead of sleeping in a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCheck {
    pub v: u32,
    pub tenant: String,
    pub check: String,
}

/// What arrives on the respond queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespondMsg {
    Plan(AlertRef),
    Check(ActionCheck),
}

impl RespondMsg {
    pub fn from_json(s: &str) -> Result<RespondMsg, String> {
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| format!("bad message: {e}"))?;
        if v.get("check").is_some() {
            let c: ActionCheck =
                serde_json::from_value(v).map_err(|e| format!("bad check message: {e}"))?;
            if c.v != MESSAGE_VERSION {
                return Err(format!("message version {} is not supported", c.v));
            }
            return Ok(RespondMsg::Check(c));
        }
        AlertRef::from_json(s).map(RespondMsg::Plan)
    }
}
