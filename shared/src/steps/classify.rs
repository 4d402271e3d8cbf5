//! Classify: one stored alert version → one recorded decision; incidents go on to the
//! ticket queue. The pipeline's fetch classifies every new version itself, in batches
//! (`steps::fetch`); this step, behind its queue, is what an operator's rerun from classify
//! and a manual invocation of the classify function run, and `judge`/`record` serve the
//! backfill.

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

/// The decision is recorded after the ticket message, as the fetch does (`steps::fetch`):
/// a recorded decision tells the fetch its version was handed on.
pub async fn run(deps: &Deps, msg: &AlertRef) -> anyhow::Result<ClassifyOutcome> {
    let (tenant, alert) = super::load_version(deps, msg).await?;
    let decision = judge(deps, &tenant, &alert).await?;
    let ticket_queued = decision.kind == DecisionKind::Incident;
    if ticket_queued {
        queue_ticket(deps, msg).await?;
    }
    record(deps, &tenant, &alert, &decision).await?;
    Ok(ClassifyOutcome {
        decision,
        ticket_queued,
    })
}

/// Decides one stored version against the tenant's criteria (never lowering an earlier
/// decision of the same alert) and records the decision at once; whether an incident is
/// ticketed is the caller's. Callers that ticket should `judge`, ticket, then `record`.
pub async fn decide(deps: &Deps, tenant: &Tenant, alert: &Alert) -> anyhow::Result<Decision> {
    let decision = judge(deps, tenant, alert).await?;
    record(deps, tenant, alert, &decision).await?;
    Ok(decision)
}

/// Decides one version after its alert's recorded decision, without recording anything:
/// for callers that must act on the decision before the record says it was acted on.
pub async fn judge(deps: &Deps, tenant: &Tenant, alert: &Alert) -> anyhow::Result<Decision> {
    let previous = deps.store.get_decision(&tenant.id, &alert.id).await?;
    let decision = classify(tenant, alert, previous.as_ref().map(|p| p.kind));
    if decision.tenant_mismatch {
        tracing::error!(
            tenant = %tenant.id, alert_id = ?alert.id, alert_tenant = ?alert.fields.tenant_id,
            "alert claims another Azure tenant; not ticketed — check the tenant's app registration"
        );
    }
    tracing::debug!(tenant = %tenant.id, alert_id = ?alert.id, decision = decision.kind.as_str(), "classified");
    Ok(decision)
}

/// Records a version's decision (never lowering the stored one: `Store::put_decision`).
pub async fn record(
    deps: &Deps,
    tenant: &Tenant,
    alert: &Alert,
    decision: &Decision,
) -> anyhow::Result<()> {
    deps.store
        .put_decision(&tenant.id, &alert.id, alert.last_update, decision)
        .await
}

/// Hands an incident version on to the ticket step.
pub async fn queue_ticket(deps: &Deps, msg: &AlertRef) -> anyhow::Result<()> {
    deps.queue
        .send_batch(QueueName::Ticket, std::slice::from_ref(msg))
        .await
}
