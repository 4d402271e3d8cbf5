//! OpsRamp ticket store (incidents and service requests) and its persistence.
//!
//! Persisted so that `mss sim serve` restarts (and the restart tests) behave like a real
//! ticketing system: numbering continues and old tickets are still found by `extTicketId`.
//! Service requests were added later: their fields carry `#[serde(default)]`, so a state file
//! written before them still loads (with no service requests and their numbering at 0).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SimTicket;

/// The two OpsRamp ticket kinds the simulator serves. They share every shape and rule; only
/// the path segment, the id prefix, the numbering and the list they live in differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Incident,
    ServiceRequest,
}

impl Kind {
    /// Path segment under `/api/v2/tenants/{tenantId}/`.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Incident => "incidents",
            Kind::ServiceRequest => "serviceRequests",
        }
    }

    /// For messages: "Incident INC… not found".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Incident => "Incident",
            Kind::ServiceRequest => "Service request",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Incident => "INC",
            Kind::ServiceRequest => "SRQ",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Store {
    /// Last incident number handed out (0 = none yet).
    pub last_seq: u64,
    /// Last service request number handed out (0 = none yet); its own sequence.
    #[serde(default)]
    pub last_sr_seq: u64,
    /// Last response id handed out (one sequence for both kinds).
    pub last_response_id: u64,
    /// Incidents in creation order.
    pub tickets: Vec<SimTicket>,
    /// Service requests in creation order.
    #[serde(default)]
    pub service_requests: Vec<SimTicket>,
    /// Full response objects per ticket id (incident or service request; the prefixes keep the
    /// ids apart), as `responses/search` serves them. `SimTicket::responses` holds the same
    /// data in the test-friendly shape.
    #[serde(default)]
    pub response_objects: BTreeMap<String, Vec<Value>>,
}

impl Store {
    pub fn load(path: &Path) -> anyhow::Result<Store> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading simulator state {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("parsing simulator state {}", path.display()))
    }

    /// Write to a sibling temp file and rename, so a crash mid-write never leaves a truncated
    /// state file that would stop the next start.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    pub fn list(&self, kind: Kind) -> &Vec<SimTicket> {
        match kind {
            Kind::Incident => &self.tickets,
            Kind::ServiceRequest => &self.service_requests,
        }
    }

    pub fn list_mut(&mut self, kind: Kind) -> &mut Vec<SimTicket> {
        match kind {
            Kind::Incident => &mut self.tickets,
            Kind::ServiceRequest => &mut self.service_requests,
        }
    }

    /// Advances that kind's sequence and returns the new id (prefix + 10 digits).
    pub fn next_id(&mut self, kind: Kind) -> String {
        let seq = match kind {
            Kind::Incident => &mut self.last_seq,
            Kind::ServiceRequest => &mut self.last_sr_seq,
        };
        *seq += 1;
        format!("{}{:010}", kind.prefix(), *seq)
    }

    pub fn find(&self, kind: Kind, id: &str) -> Option<usize> {
        self.list(kind).iter().position(|t| t.id == id)
    }
}
