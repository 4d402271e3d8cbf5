//! Ticket: an incident alert version → one OpsRamp ticket per incident key, created once,
//! then updated with a response per meaningful change.
//!
//! Every side effect is preceded by a create-once record and followed by its result, and a
//! retry that finds a record without a result looks the effect up in OpsRamp before
//! repeating it (search by `extTicketId`; responses by `extTicketResponseId`).

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::adapters::opsramp::ext_ticket_id;
use crate::domain::alert::Alert;
use crate::domain::classify::classify;
use crate::domain::incident::{self, effective_severity};
use crate::domain::tenant::Tenant;
use crate::messages::AlertRef;
use crate::ports::{AppliedVersion, ApplyClaim, IncidentRecord, NewTicket, TicketUpdate};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketAction {
    Created,
    FoundExisting,
    Updated,
    NothingNew,
    AlreadyApplied,
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketOutcome {
    pub ticket_id: String,
    pub incident_key: String,
    pub actions: Vec<TicketAction>,
}

fn ext_response_id(alert_id: &str, last_update: DateTime<Utc>) -> String {
    format!("{}@{}", alert_id, last_update.timestamp_millis())
}

pub async fn run(deps: &Deps, msg: &AlertRef) -> anyhow::Result<TicketOutcome> {
    let (tenant, alert) = super::load_version(deps, msg).await?;
    // Re-checked here, not trusted from the message: a ticket is the one thing that must
    // never go to the wrong customer.
    let check = classify(&tenant, &alert, None);
    if check.tenant_mismatch {
        bail!(
            "alert {:?} claims another Azure tenant; refusing to ticket it",
            alert.id
        );
    }
    let key = alert.incident_key();
    let mut actions = Vec::new();
    let ticket_id = ensure_ticket(deps, &tenant, &alert, &key, &mut actions).await?;
    apply_version(deps, &tenant, &alert, &key, &ticket_id, &mut actions).await?;
    // What follows runs as usual, even after an operator's rerun of this step: a rerun
    // names one step, and the ones after it skip what they already did.
    let fwd = AlertRef {
        rerun: None,
        ..msg.clone()
    };
    let msg = &fwd;
    // First response follows the ticket (its notes go on it); queued only where the tenant's
    // policy could act on this product.
    if deps.respond.is_some()
        && check
            .product
            .is_some_and(|p| super::respond::wanted(&tenant, p))
    {
        deps.queue
            .send_batch(
                crate::messages::QueueName::Respond,
                std::slice::from_ref(msg),
            )
            .await?;
    }
    // The investigation report goes on the ticket too; each alert of an incident gets one
    // (later versions of the same alert are skipped by the step itself).
    if deps.investigate.is_some() {
        deps.queue
            .send_batch(
                crate::messages::QueueName::Investigate,
                std::slice::from_ref(msg),
            )
            .await?;
    }
    Ok(TicketOutcome {
        ticket_id,
        incident_key: key,
        actions,
    })
}

async fn ensure_ticket(
    deps: &Deps,
    tenant: &Tenant,
    alert: &Alert,
    key: &str,
    actions: &mut Vec<TicketAction>,
) -> anyhow::Result<String> {
    if let Some(rec) = deps.store.get_incident(&tenant.id, key).await? {
        if let Some(t) = rec.ticket_id {
            return Ok(t);
        }
    }
    let intent = IncidentRecord {
        tenant: tenant.id.clone(),
        key: key.to_string(),
        ticket_id: None,
        creator_alert: alert.id.clone(),
        creator_version: alert.last_update,
        severity: effective_severity(alert),
        intent_at: deps.clock.now(),
    };
    let won = deps.store.create_incident_intent(&intent).await?;
    let rec = deps
        .store
        .get_incident(&tenant.id, key)
        .await?
        .ok_or_else(|| anyhow!("incident intent for {key} vanished"))?;
    if let Some(t) = rec.ticket_id {
        return Ok(t);
    }
    let ext = ext_ticket_id(&tenant.id, key);
    // Whoever holds the intent creates; a retry of that same message (or anyone, once the
    // intent is old) first asks OpsRamp whether the ticket was made before a crash.
    if let Some(found) = deps.tickets.find_by_ext_id(&ext).await? {
        deps.store
            .set_incident_ticket(&tenant.id, key, &found)
            .await?;
        // The intent names the version the ticket was made from: that version's content is
        // the ticket, so it must not be posted again as an "alert added" note.
        if rec.creator_alert == alert.id && rec.creator_version == alert.last_update {
            mark_applied(deps, tenant, key, alert).await?;
        }
        actions.push(TicketAction::FoundExisting);
        return Ok(found);
    }
    // Only the writer of the intent creates at once. Anyone else — a concurrent duplicate
    // of the same message included — waits until the intent is older than the takeover
    // lease (a crashed creator), and then searched OpsRamp above before creating.
    let age = deps.clock.now() - rec.intent_at;
    let stale = age.to_std().unwrap_or_default() > deps.settings.intent_takeover;
    if !won && !stale {
        bail!("ticket for incident {key} is being created by another message; will retry");
    }
    let decision = classify(tenant, alert, None);
    let sev = effective_severity(alert);
    let ticket = NewTicket {
        subject: incident::subject(sev, alert.title()),
        description: incident::description(tenant, alert, &decision),
        priority: deps.settings.priorities.priority(sev).to_string(),
        ext_ticket_id: ext,
        to_email: (!tenant.contacts_to.is_empty()).then(|| tenant.contacts_to.join(",")),
        cc: (!tenant.contacts_cc.is_empty()).then(|| tenant.contacts_cc.join(",")),
    };
    let id = deps.tickets.create(&ticket).await?;
    deps.store.set_incident_ticket(&tenant.id, key, &id).await?;
    deps.store
        .set_incident_severity(&tenant.id, key, sev)
        .await?;
    // The creating version's content is the ticket itself: mark it applied.
    mark_applied(deps, tenant, key, alert).await?;
    tracing::info!(tenant = %tenant.id, incident = ?key, ticket = %id, "ticket created");
    actions.push(TicketAction::Created);
    Ok(id)
}

/// Claims `alert`'s version of incident `key` for the takeover lease.
async fn claim(
    deps: &Deps,
    tenant: &Tenant,
    key: &str,
    alert: &Alert,
) -> anyhow::Result<ApplyClaim> {
    deps.store
        .begin_apply(
            &tenant.id,
            key,
            &alert.id,
            alert.last_update,
            deps.clock.now(),
            deps.settings.intent_takeover,
        )
        .await
}

/// Records a version as on the ticket without posting anything: the ticket's own content, or
/// a version older than what the ticket shows.
async fn mark_applied(
    deps: &Deps,
    tenant: &Tenant,
    key: &str,
    alert: &Alert,
) -> anyhow::Result<()> {
    claim(deps, tenant, key, alert).await?;
    deps.store
        .finish_apply(&tenant.id, key, &alert.id, alert.last_update)
        .await
}

async fn apply_version(
    deps: &Deps,
    tenant: &Tenant,
    alert: &Alert,
    key: &str,
    ticket_id: &str,
    actions: &mut Vec<TicketAction>,
) -> anyhow::Result<()> {
    let mut applied = deps.store.applied_versions(&tenant.id, key).await?;
    let rec = deps
        .store
        .get_incident(&tenant.id, key)
        .await?
        .ok_or_else(|| anyhow!("incident {key} has no record"))?;
    // The version the ticket was created from is on the ticket by definition, whether or not
    // its own message got to record that (another message may have found the ticket first).
    if !applied
        .iter()
        .any(|v| v.alert_id == rec.creator_alert && v.last_update == rec.creator_version)
    {
        applied.push(AppliedVersion {
            alert_id: rec.creator_alert.clone(),
            last_update: rec.creator_version,
            done: true,
        });
    }
    let this = applied
        .iter()
        .find(|v| v.alert_id == alert.id && v.last_update == alert.last_update);
    // The creating version is on the ticket whatever its apply record says: another handler
    // may be between recording and finishing it right now.
    let is_creator = rec.creator_alert == alert.id && rec.creator_version == alert.last_update;
    if this.is_some_and(|v| v.done) || is_creator {
        if is_creator && !this.is_some_and(|v| v.done) {
            mark_applied(deps, tenant, key, alert).await?;
        }
        if actions.is_empty() {
            actions.push(TicketAction::AlreadyApplied);
        }
        return Ok(());
    }
    // The latest version of this alert already on the ticket, if any.
    let prev = applied
        .iter()
        .filter(|v| v.alert_id == alert.id && v.done && v.last_update != alert.last_update)
        .max_by_key(|v| v.last_update);
    if let Some(p) = prev {
        if p.last_update > alert.last_update {
            // An older version arriving late: the ticket already shows something newer.
            mark_applied(deps, tenant, key, alert).await?;
            actions.push(TicketAction::Stale);
            return Ok(());
        }
    }
    let prev_alert = match prev {
        Some(p) => {
            deps.store
                .get_alert_version(&tenant.id, &p.alert_id, p.last_update)
                .await?
        }
        None => None,
    };
    let claim = claim(deps, tenant, key, alert).await?;
    // Two deliveries of one message must not both ask OpsRamp "is the note there?" and both
    // post it: the second waits for the first to finish, or for its lease to run out.
    if claim == ApplyClaim::Held {
        bail!(
            "alert {} (version {}) is being applied to incident {key} by another message; will retry",
            alert.id,
            alert.last_update
        );
    }
    let resumed = claim == ApplyClaim::TakenOver;
    // Severity first: the subject and priority are what the customer's mail shows.
    let sev = effective_severity(alert);
    if sev > rec.severity {
        deps.tickets
            .update(
                ticket_id,
                &TicketUpdate {
                    subject: Some(incident::subject(sev, alert.title())),
                    priority: Some(deps.settings.priorities.priority(sev).to_string()),
                },
            )
            .await?;
        deps.store
            .set_incident_severity(&tenant.id, key, sev)
            .await?;
    }
    match incident::update_note(prev_alert.as_ref(), alert) {
        None => actions.push(TicketAction::NothingNew),
        Some(note) => {
            let rid = ext_response_id(&alert.id, alert.last_update);
            let already = resumed && deps.tickets.has_response(ticket_id, &rid).await?;
            if !already {
                deps.tickets.add_response(ticket_id, &note, &rid).await?;
            }
            actions.push(TicketAction::Updated);
        }
    }
    deps.store
        .finish_apply(&tenant.id, key, &alert.id, alert.last_update)
        .await?;
    Ok(())
}
