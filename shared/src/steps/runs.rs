//! Failed and stuck work, across tenants, for the operator on call (`mss runs --failed`).
//!
//! A failure is recorded where a queued step fails (the embedded runner and the Lambda
//! queue handlers both go through [`handle_recorded`]): one small document per tenant ×
//! step × item, overwritten on every attempt, and marked `ok` when a later attempt or a
//! rerun succeeds. A first attempt that succeeds writes nothing, so the hot path pays no
//! extra store request. Stuck work is read from the records the steps keep anyway: an
//! incident intent that never got its ticket, a first-response action that stopped
//! advancing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rerun::{FromStep, RerunRequest, Target};
use super::Deps;
use crate::messages::{AlertRef, QueueName, RespondMsg};
use crate::ports::{ActionStatus, Queue, Store};

/// The document kind of failure records.
pub const DOC_KIND: &str = "run";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub tenant: String,
    /// The queue (= step) the message failed on.
    pub step: String,
    /// `alert_id@version` for alert messages, the action key for checks.
    pub item: String,
    pub message: String,
    pub status: String,
    pub error: Option<String>,
    pub attempts: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// The last attempt failed; the queue may still retry it.
    Failed,
    /// Gave up: in the dead-letter queue.
    DeadLetter,
    /// Not failed, but not advanced within the stuck timeout.
    Stuck,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunItem {
    pub tenant: String,
    pub step: String,
    pub item: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub attempts: u32,
    /// Since when it has been failing or stuck.
    pub since: DateTime<Utc>,
    /// What reruns it (None when the item names nothing to rerun from).
    pub rerun: Option<RerunRequest>,
}

impl RunItem {
    /// The command line that reruns it.
    pub fn rerun_command(&self) -> Option<String> {
        let r = self.rerun.as_ref()?;
        let target = match &r.target {
            Target::Alert(a) => format!("--alert {}", shell_quote(a)),
            Target::Incident(k) => format!("--incident {}", shell_quote(k)),
        };
        Some(format!(
            "mss rerun --tenant {} {target} --from {}",
            shell_quote(&r.tenant),
            r.from.as_str()
        ))
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@/".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a queue message names: its tenant, the item and how to rerun it.
fn describe(q: QueueName, body: &str) -> Option<(String, String, Option<RerunRequest>)> {
    let from = match q {
        QueueName::Classify => FromStep::Classify,
        QueueName::Ticket => FromStep::Ticket,
        QueueName::Respond | QueueName::Check => FromStep::Respond,
        QueueName::Investigate => FromStep::Investigate,
    };
    match RespondMsg::from_json(body).ok()? {
        RespondMsg::Plan(m) => Some(alert_item(m, from)),
        RespondMsg::Check(c) => {
            let incident = c.check.split('|').next().unwrap_or_default().to_string();
            let rerun = (!incident.is_empty()).then(|| RerunRequest {
                tenant: c.tenant.clone(),
                target: super::rerun::target_of_key(&incident),
                from: FromStep::Respond,
                force: false,
            });
            Some((c.tenant, c.check, rerun))
        }
    }
}

fn alert_item(m: AlertRef, from: FromStep) -> (String, String, Option<RerunRequest>) {
    let item = format!(
        "{}@{}",
        m.alert_id,
        m.last_update
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let rerun = RerunRequest {
        tenant: m.tenant.clone(),
        target: Target::Alert(m.alert_id),
        from,
        force: false,
    };
    (m.tenant, item, Some(rerun))
}

fn doc_key(step: &str, item: &str) -> String {
    format!("{step}|{item}")
}

/// Errors are kept whole up to a bound (a DynamoDB item stays small), cut on a character
/// boundary.
fn clip(s: &str) -> String {
    const MAX: usize = 2000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub async fn record_failure(
    store: &dyn Store,
    q: QueueName,
    body: &str,
    error: &str,
    attempts: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some((tenant, item, _)) = describe(q, body) else {
        // Not even readable as a message: the queue's dead-letter queue keeps it.
        return Ok(());
    };
    let key = doc_key(q.as_str(), &item);
    let first = match store.get_doc(&tenant, DOC_KIND, &key).await? {
        Some(b) => serde_json::from_str::<RunRecord>(&b)
            .ok()
            .filter(|r| r.status == "failed")
            .map(|r| r.first_failed_at),
        None => None,
    };
    let rec = RunRecord {
        tenant: tenant.clone(),
        step: q.as_str().to_string(),
        item,
        message: body.to_string(),
        status: "failed".into(),
        error: Some(clip(error)),
        attempts,
        first_failed_at: first.unwrap_or(now),
        last_at: now,
    };
    store
        .put_doc(&tenant, DOC_KIND, &key, &serde_json::to_string(&rec)?)
        .await
}

/// Marks an earlier failure of the same item resolved. Called only when this attempt was
/// not the first or was a rerun, so a clean first attempt costs nothing.
pub async fn record_success(
    store: &dyn Store,
    q: QueueName,
    body: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some((tenant, item, _)) = describe(q, body) else {
        return Ok(());
    };
    let key = doc_key(q.as_str(), &item);
    if let Some(b) = store.get_doc(&tenant, DOC_KIND, &key).await? {
        if let Ok(mut r) = serde_json::from_str::<RunRecord>(&b) {
            if r.status != "ok" {
                r.status = "ok".into();
                r.last_at = now;
                store
                    .put_doc(&tenant, DOC_KIND, &key, &serde_json::to_string(&r)?)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Runs one message through its step and keeps the failure record current.
pub async fn handle_recorded(
    deps: &Deps,
    q: QueueName,
    body: &str,
    receive_count: u32,
) -> anyhow::Result<()> {
    let now = deps.clock.now();
    match crate::runner::handle(deps, q, body).await {
        Ok(()) => {
            let rerun = AlertRef::from_json(body)
                .map(|m| m.rerun.is_some())
                .unwrap_or(false);
            if receive_count > 1 || rerun {
                if let Err(e) = record_success(deps.store.as_ref(), q, body, now).await {
                    tracing::warn!(error = ?format!("{e:#}"), "could not mark the run record resolved");
                }
            }
            Ok(())
        }
        Err(e) => {
            let err = format!("{e:#}");
            if let Err(re) =
                record_failure(deps.store.as_ref(), q, body, &err, receive_count, now).await
            {
                tracing::warn!(error = ?format!("{re:#}"), "could not record the failure");
            }
            Err(e)
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunsQuery {
    /// Only this tenant (else every tenant).
    pub tenant: Option<String>,
    /// Only items failing or stuck since this time.
    pub since: Option<DateTime<Utc>>,
    /// How long an item may sit without advancing before it counts as stuck.
    pub stuck_after: Duration,
}

/// Failed, dead-lettered and stuck items, oldest first. `queue` adds the dead letters
/// (the embedded queue keeps them with their error; on AWS read them with `mss dlq list`).
pub async fn list(
    store: &dyn Store,
    queue: Option<&dyn Queue>,
    q: &RunsQuery,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<RunItem>> {
    let tenants: Vec<String> = match &q.tenant {
        Some(t) => {
            if store.get_tenant(t).await?.is_none() {
                anyhow::bail!("tenant {t:?} is not registered");
            }
            vec![t.clone()]
        }
        None => store
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let stuck_before = now - chrono::Duration::from_std(q.stuck_after)?;
    let mut out = Vec::new();
    let mut dead: std::collections::HashSet<(String, String, String)> = Default::default();
    if let Some(queue) = queue {
        for qn in QueueName::ALL {
            for d in queue.dead_letters(qn, 10_000).await? {
                let Some((tenant, item, rerun)) = describe(qn, &d.body) else {
                    continue;
                };
                if !tenants.contains(&tenant) {
                    continue;
                }
                dead.insert((tenant.clone(), qn.as_str().to_string(), item.clone()));
                out.push(RunItem {
                    tenant,
                    step: qn.as_str().to_string(),
                    item,
                    status: RunStatus::DeadLetter,
                    error: d.error.map(|e| clip(&e)),
                    attempts: d.receive_count,
                    since: now,
                    rerun,
                });
            }
        }
    }
    for t in &tenants {
        for (_, body) in store.list_docs(t, DOC_KIND).await? {
            let Ok(r) = serde_json::from_str::<RunRecord>(&body) else {
                continue;
            };
            if r.status != "failed" {
                continue;
            }
            let key = (r.tenant.clone(), r.step.clone(), r.item.clone());
            let qn = QueueName::ALL.into_iter().find(|x| x.as_str() == r.step);
            if let Some(d) = out.iter_mut().find(|i| {
                i.status == RunStatus::DeadLetter
                    && (i.tenant.clone(), i.step.clone(), i.item.clone()) == key
            }) {
                // The dead letter and its record are the same item: keep one line, with
                // the time it started failing.
                d.since = r.first_failed_at;
                if d.error.is_none() {
                    d.error = r.error.clone();
                }
                continue;
            }
            if dead.contains(&key) {
                continue;
            }
            let rerun = qn.and_then(|qn| describe(qn, &r.message)).and_then(|d| d.2);
            out.push(RunItem {
                tenant: r.tenant,
                step: r.step,
                item: r.item,
                status: RunStatus::Failed,
                error: r.error,
                attempts: r.attempts,
                since: r.first_failed_at,
                rerun,
            });
        }
        for inc in store.list_incidents(t).await? {
            if inc.ticket_id.is_some() {
                continue;
            }
            let Some(rec) = store.get_incident(t, &inc.key).await? else {
                continue;
            };
            if rec.intent_at < stuck_before {
                out.push(RunItem {
                    tenant: t.clone(),
                    step: "ticket".into(),
                    item: inc.key.clone(),
                    status: RunStatus::Stuck,
                    error: Some("チケット作成の意図を記録したまま、チケット ID が記録されていません (ticket intent without ticket id)".into()),
                    attempts: 0,
                    since: rec.intent_at,
                    rerun: Some(RerunRequest {
                        tenant: t.clone(),
                        target: super::rerun::target_of_key(&inc.key),
                        from: FromStep::Ticket,
                        force: false,
                    }),
                });
            }
        }
        for a in store.list_actions(t).await? {
            if matches!(
                a.status,
                ActionStatus::Requesting | ActionStatus::InProgress
            ) && a.updated_at < stuck_before
            {
                out.push(RunItem {
                    tenant: t.clone(),
                    step: "respond".into(),
                    item: a.key.clone(),
                    status: RunStatus::Stuck,
                    error: Some(format!(
                        "action {} has not advanced since {}",
                        a.status.as_str(),
                        a.updated_at.to_rfc3339()
                    )),
                    attempts: 0,
                    since: a.updated_at,
                    rerun: Some(RerunRequest {
                        tenant: t.clone(),
                        target: super::rerun::target_of_key(&a.incident_key),
                        from: FromStep::Respond,
                        force: false,
                    }),
                });
            }
        }
    }
    if let Some(since) = q.since {
        out.retain(|i| i.since >= since || i.status == RunStatus::DeadLetter);
    }
    out.sort_by(|a, b| {
        (a.since, &a.tenant, &a.step, &a.item).cmp(&(b.since, &b.tenant, &b.step, &b.item))
    });
    Ok(out)
}
