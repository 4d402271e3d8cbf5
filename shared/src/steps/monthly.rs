//! Monthly report: one tenant, one JST month → the numbers (report.json) and the page
//! (report.html). Alerts are streamed from the store (`scan_alerts`, the month index on
//! DynamoDB) into the aggregator; incidents, actions and investigation reports come from
//! their own small listings. The numbers are stored with the tenant (`monthly/<YYYY-MM>`), so
//! next month's report can compare, and a rerun simply replaces them.

use std::collections::{HashMap, HashSet};

use anyhow::anyhow;

use crate::domain::calendar::Calendar;
use crate::domain::classify::DecisionKind;
use crate::domain::monthly::{
    Aggregator, AlertFacts, FinishInput, IncidentFacts, Month, MonthlyNumbers, PreviousMonth,
};
use crate::ports::Store;

pub const DOC_KIND: &str = "monthly";

pub struct MonthlyReport {
    pub numbers: MonthlyNumbers,
    pub html: String,
}

pub async fn build(
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
    calendar: &Calendar,
    tenant_id: &str,
    month: Month,
    comment: Option<&str>,
) -> anyhow::Result<MonthlyReport> {
    let tenant = store
        .get_tenant(tenant_id)
        .await?
        .ok_or_else(|| anyhow!("tenant {tenant_id} is not registered"))?;
    let due = calendar
        .report_due(month.year, month.month)
        .map_err(|e| anyhow!("due date of {month}: {e}"))?;
    let decisions: HashMap<String, DecisionKind> = store
        .list_decisions(&tenant.id)
        .await?
        .into_iter()
        .collect();

    let mut incidents = Vec::new();
    for s in store.list_incidents(&tenant.id).await? {
        let Some(rec) = store.get_incident(&tenant.id, &s.key).await? else {
            continue;
        };
        if !month.contains(rec.intent_at) {
            continue;
        }
        incidents.push(IncidentFacts {
            key: s.key,
            ticket_id: s.ticket_id,
            opened: rec.intent_at,
            severity: rec.severity.label_ja().to_string(),
            alert_ids: s.alert_ids,
        });
    }
    let incident_alerts: HashSet<String> = incidents
        .iter()
        .flat_map(|i| i.alert_ids.iter().cloned())
        .collect();
    let incident_keys: HashSet<&str> = incidents.iter().map(|i| i.key.as_str()).collect();

    let mut agg = Aggregator::new(month, decisions, incident_alerts);
    store
        // A day past month end: an alert created in the last minutes of the month may be
        // first stored just after it. Creation decides the month; see `Aggregator::add`.
        .scan_alerts(
            &tenant.id,
            month.start(),
            month.end() + chrono::Duration::days(1),
            &mut |p, a| {
                // An alert claiming another Azure tenant is not this customer's to report.
                if !crate::domain::classify::classify(&tenant, &a, None).tenant_mismatch {
                    agg.add(AlertFacts::of(p, &a));
                }
                Ok(())
            },
        )
        .await?;

    let actions = store
        .list_actions(&tenant.id)
        .await?
        .into_iter()
        .map(|a| (a.incident_key, a.kind, a.status, a.created_at))
        .collect();
    // Reports are stored per `<incident key>|<alert id>`: those of this month's incidents.
    let investigation_reports = store
        .list_docs(&tenant.id, super::investigate::DOC_KIND)
        .await?
        .iter()
        .filter(|(k, _)| {
            k.rsplit_once('|')
                .is_some_and(|(inc, _)| incident_keys.contains(inc))
        })
        .count() as u64;
    let previous = match store
        .get_doc(&tenant.id, DOC_KIND, &month.prev().to_string())
        .await?
    {
        Some(b) => serde_json::from_str::<MonthlyNumbers>(&b)
            .ok()
            .map(|p| PreviousMonth {
                month: p.month,
                alerts_total: p.alerts.total,
                incidents_opened: p.incidents.opened,
            }),
        None => None,
    };
    let numbers = agg.finish(FinishInput {
        tenant: tenant.id.clone(),
        tenant_name: tenant.name.clone(),
        due_date: due.format("%Y-%m-%d").to_string(),
        incidents,
        actions,
        investigation_reports,
        previous,
        generated_at: now,
    });
    store
        .put_doc(
            &tenant.id,
            DOC_KIND,
            &month.to_string(),
            &serde_json::to_string(&numbers)?,
        )
        .await?;
    let html = crate::report::html::render(&numbers, comment);
    Ok(MonthlyReport { numbers, html })
}
