//! OpsRamp ticket store and its persistence.
//!
//! Persisted so that `mss sim serve` restarts (and the restart tests) behave like a real
//! ticketing system: numbering continues and old tickets are still found by `extTicketId`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SimTicket;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Store {
    /// Last incident number handed out (0 = none yet).
    pub last_seq: u64,
    /// Last response id handed out.
    pub last_response_id: u64,
    pub tickets: Vec<SimTicket>,
    /// Full response objects per incident id, as `responses/search` serves them.
    /// `SimTicket::responses` holds the same data in the test-friendly shape.
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

    pub fn find(&self, id: &str) -> Option<usize> {
        self.tickets.iter().position(|t| t.id == id)
    }
}
