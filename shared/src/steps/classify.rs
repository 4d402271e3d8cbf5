//! Classify: one stored alert version → one recorded decision; incidents go on to the
//! ticket queue.

use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::alert::Alert;
use crate::domain::classify::{classify, Decision, DecisionKind};
use crate::domain::tenant::Tenant;
use crate::messages::{AlertRef, QueueName};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyOutcome {
    pub decision: Decision,
    pub ticket_queued: bool,
}

pub async fn run(deps: &Deps, msg: &AlertRef) -> anyhow::Result<ClassifyOutcome> {
    let (tenant, alert) = super::load_version(deps, msg).await?;
    let decision = decide(deps, &tenant, &alert).await?;
    let ticket_queued = decision.kind == DecisionKind::Incident;
    if ticket_queued {
        queue_ticket(deps, msg).await?;
    }
    Ok(ClassifyOutcome {
        decision,
        ticket_queued,
    })
}

/// Decides one stored version against the tenant's criteria (never lowering an earlier
/// decision of the same alert) and records the decision. Whether an incident is ticketed
/// is the caller's: the pipeline always does (`run`), a backfill only for young alerts.
pub async fn decide(deps: &Deps, tenant: &Tenant, alert: &Alert) -> anyhow::Result<Decision> {
    let previous = deps.store.get_decision(&tenant.id, &alert.id).await?;
    let decision = classify(tenant, alert, previous.as_ref().map(|p| p.kind));
    if decision.tenant_mismatch {
        tracing::error!(
            tenant = %tenant.id, alert_id = ?alert.id, alert_tenant = ?alert.fields.tenant_id,
            "alert claims another Azure tenant; not ticketed — check the tenant's app registration"
        );
    }
    deps.store
        .put_decision(&tenant.id, &alert.id, alert.last_update, &decision)
        .await?;
    tracing::debug!(tenant = %tenant.id, alert_id = ?alert.id, decision = decision.kind.as_str(), "classified");
    Ok(decision)
}

/// Hands an incident version on to the ticket step.
pub async fn queue_ticket(deps: &Deps, msg: &AlertRef) -> anyhow::Result<()> {
    deps.queue
        .send_batch(QueueName::Ticket, std::slice::from_ref(msg))
        .await
}
