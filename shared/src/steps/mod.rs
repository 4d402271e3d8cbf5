//! One module per step. Lambda handlers, the embedded runner and tests all call these same
//! functions; only the adapters in `Deps` differ.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::incident::PriorityMap;
use crate::ports::{AlertSource, Clock, Queue, Store, Tickets};

pub mod backfill;
pub mod classify;
pub mod deliver_report;
pub mod digest;
pub mod fetch;
pub mod health;
pub mod inquiries;
pub mod investigate;
pub mod monthly;
pub mod preflight;
pub mod rerun;
pub mod respond;
pub mod runs;
pub mod ticket;

#[derive(Debug, Clone)]
pub struct Settings {
    /// How far behind the cursor each fetch looks again, for alerts Graph indexes late.
    pub overlap: Duration,
    /// Where a tenant×product with no cursor starts.
    pub initial_lookback: Duration,
    /// The least a fetch moves its cursor by (zero: every fetch writes it). A cursor left
    /// behind only makes the next window start earlier, which loses nothing; writing it every
    /// minute for every tenant × product was most of the service's DynamoDB writes.
    pub cursor_step: Duration,
    pub priorities: PriorityMap,
    /// An incident intent older than this, still without a ticket, may be completed by
    /// another delivery (its creator is presumed dead); so may an unfinished claim to post a
    /// version's note. Shorter than every queue's visibility timeout, so a redelivered
    /// message after a crash always may.
    pub intent_takeover: Duration,
    /// Tenant × product fetches run at once by one fetch cycle.
    pub fetch_concurrency: usize,
    /// When a failing fetch becomes an operator alert, and where that alert goes (`None`
    /// sink: only the `ingest_unhealthy` log line). See `health`.
    pub ingest_health: health::HealthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            overlap: Duration::from_secs(10 * 60),
            initial_lookback: Duration::from_secs(24 * 3600),
            cursor_step: Duration::from_secs(5 * 60),
            priorities: PriorityMap::default(),
            intent_takeover: Duration::from_secs(30),
            fetch_concurrency: 32,
            ingest_health: health::HealthSettings::default(),
        }
    }
}

#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub alerts: Arc<dyn AlertSource>,
    pub tickets: Arc<dyn Tickets>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// First response (MDE, Identity Protection); `None` where it is not set up, and then
    /// no action is ever planned.
    pub respond: Option<Arc<respond::ResponseDeps>>,
    /// Investigation reports (hunting, user lookup); `None` where not set up.
    pub investigate: Option<Arc<investigate::InvestigateDeps>>,
    /// What this process's fetches ingested already (`fetch::HandedOn`); shared by clones.
    pub handed_on: fetch::HandedOn,
}

/// The tenant and the stored alert version a message names: every alert step starts here.
/// Both must exist — a message never carries the alert itself (see `messages`).
pub async fn load_version(
    deps: &Deps,
    msg: &crate::messages::AlertRef,
) -> anyhow::Result<(crate::domain::tenant::Tenant, crate::domain::alert::Alert)> {
    let tenant = deps
        .store
        .get_tenant(&msg.tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {} is not registered", msg.tenant))?
        .at(deps.clock.now());
    let alert = deps
        .store
        .get_alert_version(&tenant.id, &msg.alert_id, msg.last_update)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "alert {:?} version {} is not stored",
                msg.alert_id,
                msg.last_update
            )
        })?;
    Ok((tenant, alert))
}
