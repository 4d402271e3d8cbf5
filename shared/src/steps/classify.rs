//! Classify: one stored alert version → one recorded decision; incidents go on to the
//! ticket queue.

use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::classify::{classify, Decision, DecisionKind};
use crate::messages::{AlertRef, QueueName};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyOutcome {
    pub decision: Decision,
    pub ticket_queued: bool,
}

pub async fn run(deps: &Deps, msg: &AlertRef) -> anyhow::Result<ClassifyOutcome> {
    let (tenant, alert) = super::load_version(deps, msg).await?;
    let previous = deps.store.get_decision(&tenant.id, &alert.id).await?;
    let decision = classify(&tenant, &alert, previous.as_ref().map(|p| p.kind));
    if decision.tenant_mismatch {
        tracing::error!(
            tenant = %tenant.id, alert_id = ?alert.id, alert_tenant = ?alert.fields.tenant_id,
            "alert claims another Azure tenant; not ticketed — check the tenant's app registration"
        );
    }
    deps.store
        .put_decision(&tenant.id, &alert.id, alert.last_update, &decision)
        .await?;
    let ticket_queued = decision.kind == DecisionKind::Incident;
    if ticket_queued {
        deps.queue
            .send_batch(QueueName::Ticket, std::slice::from_ref(msg))
            .await?;
    }
    tracing::debug!(tenant = %tenant.id, alert_id = ?alert.id, decision = decision.kind.as_str(), "classified");
    Ok(ClassifyOutcome {
        decision,
        ticket_queued,
    })
}
