//! An operator's rerun of one alert or one incident from a step (R-OPS: "an operator can
//! invoke a function by hand to rerun a step of an incident"). The rerun puts messages on
//! the step's queue, exactly as the step before it would have, so the rest of the pipeline
//! follows by itself; every step is already safe to run twice (create-once intents, ext ids
//! looked up before posting), so nothing done before is done again — except where the
//! operator forces it and forcing means something (re-posting an investigation report).

use std::collections::BTreeSet;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::alert::{Alert, Product};
use crate::domain::monthly::Month;
use crate::messages::{ActionCheck, AlertRef, QueueName, Rerun, MESSAGE_VERSION};
use crate::ports::ActionStatus;

/// A rerun refused for what was asked (unknown tenant or alert, `--force` where it means
/// nothing, a step not set up here), as opposed to a failure while doing it: the CLI exits
/// 2 for these.
#[derive(Debug)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

macro_rules! refuse {
    ($($t:tt)*) => {
        anyhow::Error::new(Refusal(format!($($t)*)))
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FromStep {
    Fetch,
    Classify,
    Ticket,
    Investigate,
    Respond,
    Report,
}

impl FromStep {
    pub const ALL: [FromStep; 6] = [
        FromStep::Fetch,
        FromStep::Classify,
        FromStep::Ticket,
        FromStep::Investigate,
        FromStep::Respond,
        FromStep::Report,
    ];

    pub fn parse(s: &str) -> Result<FromStep, String> {
        FromStep::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("--from {s:?}: expected one of fetch, classify, ticket, investigate, respond, report")
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FromStep::Fetch => "fetch",
            FromStep::Classify => "classify",
            FromStep::Ticket => "ticket",
            FromStep::Investigate => "investigate",
            FromStep::Respond => "respond",
            FromStep::Report => "report",
        }
    }

    /// Whether `--force` means anything here. Only the investigation report can be posted
    /// again usefully; a second ticket, a second isolation or a second delivery of the
    /// same month is what this whole system exists to prevent.
    pub fn forceable(self) -> bool {
        self == FromStep::Investigate
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Alert(String),
    Incident(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerunRequest {
    pub tenant: String,
    pub target: Target,
    pub from: FromStep,
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerunOutcome {
    pub tenant: String,
    pub from: FromStep,
    /// The alert versions the rerun covers (newest stored version of each alert).
    pub alerts: Vec<RerunAlert>,
    /// Messages put on `queue`.
    pub queued: usize,
    pub queue: Option<String>,
    /// Action checks put on the check queue (respond: tracking resumed).
    pub checks_queued: usize,
    /// Fetch: new versions found by the fetch cycle run for the alert's product.
    pub fetched_new: usize,
    /// Report: the JST month whose report is to be rebuilt.
    pub report_month: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerunAlert {
    pub alert_id: String,
    pub last_update: DateTime<Utc>,
    pub product: Option<Product>,
}

/// How far back an alert is looked for when the store has no decision for it (a rerun
/// from classify of an alert that never got that far).
const LOOKBACK_DAYS: i64 = 400;

pub async fn run(deps: &Deps, req: &RerunRequest) -> anyhow::Result<RerunOutcome> {
    if req.force && !req.from.forceable() {
        return Err(refuse!(
            "--force only applies to --from investigate (re-post the report); a rerun from {} never repeats a completed side effect",
            req.from.as_str()
        ));
    }
    let tenant = deps
        .store
        .get_tenant(&req.tenant)
        .await?
        .ok_or_else(|| refuse!("tenant {:?} is not registered", req.tenant))?
        .at(deps.clock.now());
    let alerts = resolve(deps, &tenant.id, &req.target).await?;
    let mut out = RerunOutcome {
        tenant: tenant.id.clone(),
        from: req.from,
        alerts: alerts
            .iter()
            .map(|(p, a)| RerunAlert {
                alert_id: a.id.clone(),
                last_update: a.last_update,
                product: *p,
            })
            .collect(),
        queued: 0,
        queue: None,
        checks_queued: 0,
        fetched_new: 0,
        report_month: None,
        note: String::new(),
    };
    let mode = if req.force {
        Rerun::Force
    } else {
        Rerun::Again
    };
    let refs: Vec<AlertRef> = alerts
        .iter()
        .map(|(_, a)| AlertRef {
            rerun: Some(mode),
            ..AlertRef::new(&tenant.id, &a.id, a.last_update)
        })
        .collect();
    let (queue, note) = match req.from {
        FromStep::Fetch => {
            if tenant.disabled_at().is_some() {
                return Err(refuse!(
                    "tenant {} is disabled; nothing is fetched for it",
                    tenant.id
                ));
            }
            let products: BTreeSet<Product> = alerts.iter().filter_map(|(p, _)| *p).collect();
            for p in products {
                let o = super::fetch::run(deps, &tenant.id, p).await?;
                out.fetched_new += o.new_versions;
            }
            // The fetch classified and handed on what was new; the alerts named are
            // classified again from their newest stored version either way.
            let fresh = resolve(deps, &tenant.id, &req.target).await?;
            let refs: Vec<AlertRef> = fresh
                .iter()
                .map(|(_, a)| AlertRef {
                    rerun: Some(mode),
                    ..AlertRef::new(&tenant.id, &a.id, a.last_update)
                })
                .collect();
            send(deps, QueueName::Classify, &refs).await?;
            out.queued = refs.len();
            (
                Some(QueueName::Classify),
                format!(
                    "fetched the product again ({} new version(s)); the newest version of each alert goes through classify again",
                    out.fetched_new
                ),
            )
        }
        FromStep::Classify => {
            send(deps, QueueName::Classify, &refs).await?;
            out.queued = refs.len();
            (
                Some(QueueName::Classify),
                "classified again; a decision is never lowered, incidents go on to the ticket step"
                    .to_string(),
            )
        }
        FromStep::Ticket => {
            send(deps, QueueName::Ticket, &refs).await?;
            out.queued = refs.len();
            (
                Some(QueueName::Ticket),
                "the existing ticket is found and updated; versions already applied are not posted again"
                    .to_string(),
            )
        }
        FromStep::Investigate => {
            if deps.investigate.is_none() {
                return Err(refuse!("investigation is not set up in this deployment"));
            }
            send(deps, QueueName::Investigate, &refs).await?;
            out.queued = refs.len();
            (
                Some(QueueName::Investigate),
                if req.force {
                    "the report is rebuilt and posted again as a new version".to_string()
                } else {
                    "the report is rebuilt and posted only if it changed".to_string()
                },
            )
        }
        FromStep::Respond => {
            if deps.respond.is_none() {
                return Err(refuse!("first response is not set up in this deployment"));
            }
            if tenant.disabled_at().is_some() {
                return Err(refuse!(
                    "tenant {} is disabled; no first response runs for it",
                    tenant.id
                ));
            }
            send(deps, QueueName::Respond, &refs).await?;
            out.queued = refs.len();
            // Resume tracking: every unfinished action of these incidents is looked at now.
            let keys: BTreeSet<String> = alerts.iter().map(|(_, a)| a.incident_key()).collect();
            for rec in deps.store.list_actions(&tenant.id).await? {
                let open = matches!(
                    rec.status,
                    ActionStatus::Requesting
                        | ActionStatus::InProgress
                        | ActionStatus::PendingApproval
                        | ActionStatus::WaitingHours
                );
                if open && keys.contains(&rec.incident_key) {
                    let body = serde_json::to_string(&ActionCheck {
                        v: MESSAGE_VERSION,
                        tenant: tenant.id.clone(),
                        check: rec.key.clone(),
                    })?;
                    deps.queue
                        .send_delayed(
                            QueueName::Check,
                            &tenant.id,
                            &body,
                            std::time::Duration::ZERO,
                        )
                        .await?;
                    out.checks_queued += 1;
                }
            }
            (
                Some(QueueName::Respond),
                format!(
                    "actions are planned again (each action is created once, so none is repeated); {} unfinished action(s) checked again",
                    out.checks_queued
                ),
            )
        }
        FromStep::Report => {
            let months: BTreeSet<Month> = alerts.iter().map(|(_, a)| month_of(a)).collect();
            let m = months
                .into_iter()
                .next_back()
                .ok_or_else(|| anyhow!("no alert to take the month from"))?;
            out.report_month = Some(m.to_string());
            (
                None,
                format!("the monthly report of {m} is rebuilt (the month the alert was created in, JST)"),
            )
        }
    };
    out.queue = queue.map(|q| q.as_str().to_string());
    out.note = note;
    tracing::info!(tenant = %out.tenant, from = out.from.as_str(), queued = out.queued, checks = out.checks_queued, "rerun requested");
    Ok(out)
}

/// The store keys an `--incident` value may mean.
pub fn incident_keys(given: &str) -> Vec<String> {
    if given.starts_with("incident:") || given.starts_with("alert:") {
        vec![given.to_string()]
    } else {
        vec![format!("incident:{given}"), format!("alert:{given}")]
    }
}

/// The target an operator would type for an incident key of the store.
pub fn target_of_key(key: &str) -> Target {
    match key.split_once(':') {
        Some(("incident", id)) => Target::Incident(id.to_string()),
        Some(("alert", id)) => Target::Alert(id.to_string()),
        _ => Target::Incident(key.to_string()),
    }
}

fn month_of(a: &Alert) -> Month {
    let created = a
        .fields
        .created_date_time
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(a.last_update);
    Month::of(created)
}

async fn send(deps: &Deps, q: QueueName, refs: &[AlertRef]) -> anyhow::Result<()> {
    for chunk in refs.chunks(10) {
        deps.queue.send_batch(q, chunk).await?;
    }
    Ok(())
}

/// The newest stored version of each alert the target names. An incident is every alert
/// applied to its ticket plus every stored alert with that incident key (one that never
/// reached the ticket is exactly what a rerun is for).
async fn resolve(
    deps: &Deps,
    tenant: &str,
    target: &Target,
) -> anyhow::Result<Vec<(Option<Product>, Alert)>> {
    let since = deps.clock.now() - chrono::Duration::days(LOOKBACK_DAYS);
    let recent = deps.store.recent_alerts(tenant, since).await?;
    let found: Vec<(Option<Product>, Alert)> = match target {
        Target::Alert(id) => {
            let mut v: Vec<_> = recent
                .into_iter()
                .filter(|(_, a)| &a.id == id)
                .map(|(p, a)| (Some(p), a))
                .collect();
            if v.is_empty() {
                // Older than the lookback: the decision still names its version.
                if let Some(d) = deps.store.get_decision(tenant, id).await? {
                    if let Some(a) = deps
                        .store
                        .get_alert_version(tenant, id, d.last_update)
                        .await?
                    {
                        v.push((d.product, a));
                    }
                }
            }
            if v.is_empty() {
                return Err(refuse!("tenant {tenant} has no stored alert {id:?}"));
            }
            v
        }
        Target::Incident(given) => {
            // The operator gives the Defender incident id (or, for an alert without
            // incident, its alert id); the store keys incidents `incident:<id>`/`alert:<id>`.
            let keys = incident_keys(given);
            let applied: BTreeSet<String> = deps
                .store
                .list_incidents(tenant)
                .await?
                .into_iter()
                .find(|i| keys.contains(&i.key))
                .map(|i| i.alert_ids.into_iter().collect())
                .unwrap_or_default();
            let v: Vec<_> = recent
                .into_iter()
                .filter(|(_, a)| keys.contains(&a.incident_key()) || applied.contains(&a.id))
                .map(|(p, a)| (Some(p), a))
                .collect();
            if v.is_empty() {
                return Err(refuse!(
                    "tenant {tenant} has no stored alert of incident {given:?}"
                ));
            }
            v
        }
    };
    Ok(found)
}
