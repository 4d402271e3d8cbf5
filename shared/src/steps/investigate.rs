//! Investigate: an incident alert → one investigation report on its ticket (seed §5.3.1).
//!
//! Users are looked up in the directory (cached per tenant for a day), the hunting pack runs
//! within the tenant's budget, related detections come from the store alone, recommendations
//! from the rules file plus what first response has done. The report is stored with the
//! incident (for the monthly report) and posted as one ticket response.
//!
//! OpsRamp responses cannot be edited, so "a rerun updates" means: the stored report is
//! replaced, and a new response marked 「更新 第N版」 is posted only when the report says
//! something new; a rerun that finds nothing new posts nothing. Posting follows the ticket
//! step's rule: the stored intent comes first and the response carries an
//! `extTicketResponseId` that is looked up before any second attempt.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::adapters::hunting::{Hunting, HuntingError};
use crate::adapters::identity::RiskyUsers;
use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{classify, DecisionKind};
use crate::domain::incident::effective_severity;
use crate::domain::investigation::{
    self, Entities, HuntOutcome, HuntSection, Report, UserLine, UserRef, ROWS_KEPT,
};
use crate::domain::kql::{self, HuntingQuery, Params, Window};
use crate::messages::AlertRef;
use crate::ports::{ActionStatus, Store};

/// Limits that keep hunting within Microsoft's published quota (~45 calls/min and 1,500/h
/// per tenant) with room left for the SOC's own portal queries.
#[derive(Debug, Clone)]
pub struct HuntBudget {
    pub per_minute: u32,
    pub per_hour: u32,
    /// Queries one report may run at most.
    pub per_report: usize,
    /// Devices, users or messages of one alert that are hunted at most (each kind).
    pub entities_per_kind: usize,
}

impl Default for HuntBudget {
    fn default() -> Self {
        HuntBudget {
            per_minute: 40,
            per_hour: 1_400,
            per_report: 16,
            entities_per_kind: 3,
        }
    }
}

pub struct InvestigateDeps {
    pub hunting: Arc<dyn Hunting>,
    pub users: Arc<dyn RiskyUsers>,
    pub budget: HuntBudget,
    /// How long a directory answer is reused.
    pub user_cache: Duration,
    /// Related detections shown at most, and how far back they are looked for.
    pub related_cap: usize,
    pub related_days: i64,
}

impl InvestigateDeps {
    pub fn new(hunting: Arc<dyn Hunting>, users: Arc<dyn RiskyUsers>) -> InvestigateDeps {
        InvestigateDeps {
            hunting,
            users,
            budget: HuntBudget::default(),
            user_cache: Duration::from_secs(24 * 3600),
            related_cap: 10,
            related_days: 30,
        }
    }
}

pub const DOC_KIND: &str = "investigation";
const USER_DOC_KIND: &str = "user";

/// What is stored with the incident, per alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub version: u32,
    pub fingerprint: String,
    /// The response for this version reached OpsRamp.
    pub posted: bool,
    pub report: Report,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvestigateAction {
    Posted,
    /// A rerun found nothing the last report did not say.
    NothingNew,
    /// This alert was investigated before (a later version of it, not a rerun).
    AlreadyInvestigated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvestigateOutcome {
    pub ticket_id: String,
    pub incident_key: String,
    pub action: InvestigateAction,
    pub version: u32,
    pub sections_run: usize,
    pub sections_skipped: usize,
}

pub fn doc_key(incident_key: &str, alert_id: &str) -> String {
    format!("{incident_key}|{alert_id}")
}

/// Runs the investigation of one alert version. `rerun` (an operator's request) investigates
/// again even when the alert was investigated before.
pub async fn run(deps: &Deps, msg: &AlertRef, rerun: bool) -> anyhow::Result<InvestigateOutcome> {
    // A message from `mss rerun` says itself how hard to rerun; `rerun` (by hand) at least
    // rebuilds.
    let mode = match (rerun, msg.rerun) {
        (_, Some(m)) => Some(m),
        (true, None) => Some(crate::messages::Rerun::Again),
        (false, None) => None,
    };
    let force = mode == Some(crate::messages::Rerun::Force);
    let rerun = mode.is_some();
    let inv = deps
        .investigate
        .as_ref()
        .ok_or_else(|| anyhow!("investigation is not set up in this deployment"))?;
    let (tenant, alert) = super::load_version(deps, msg).await?;
    let check = classify(&tenant, &alert, None);
    if check.tenant_mismatch {
        bail!(
            "alert {:?} claims another Azure tenant; refusing to investigate it",
            alert.id
        );
    }
    let key = alert.incident_key();
    let ticket_id = deps
        .store
        .get_incident(&tenant.id, &key)
        .await?
        .and_then(|r| r.ticket_id)
        // Retried by the queue: the ticket step queues us only after the ticket exists, so
        // this is a manual run too early or a store read lagging behind.
        .ok_or_else(|| anyhow!("incident {key} has no ticket yet"))?;
    let dkey = doc_key(&key, &alert.id);
    let previous: Option<StoredReport> =
        match deps.store.get_doc(&tenant.id, DOC_KIND, &dkey).await? {
            Some(b) => Some(serde_json::from_str(&b)?),
            None => None,
        };
    if let Some(p) = &previous {
        if p.posted && !rerun {
            return Ok(InvestigateOutcome {
                ticket_id,
                incident_key: key,
                action: InvestigateAction::AlreadyInvestigated,
                version: p.version,
                sections_run: 0,
                sections_skipped: 0,
            });
        }
    }
    let product = check
        .product
        .or_else(|| {
            alert
                .fields
                .service_source
                .as_deref()
                .and_then(Product::from_service_source)
        })
        .unwrap_or(Product::Mde);

    let now = deps.clock.now();
    let entities = Entities::of(&alert);
    let users = lookup_users(deps.store.as_ref(), inv, &tenant.id, &entities, now).await;
    let sections = hunt(
        deps.store.as_ref(),
        inv,
        &tenant.id,
        &alert,
        product,
        &entities,
        now,
    )
    .await?;
    let since = alert.last_update - chrono::Duration::days(inv.related_days);
    let candidates = deps.store.recent_alerts(&tenant.id, since).await?;
    // Only alerts this customer's agreement covers, and never one claiming another Azure
    // tenant: incident alerts are named, monitored ones only counted.
    let decisions: std::collections::HashMap<String, DecisionKind> = deps
        .store
        .list_decisions(&tenant.id)
        .await?
        .into_iter()
        .collect();
    let (incidents, monitored): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .filter(|(_, a)| !classify(&tenant, a, None).tenant_mismatch)
        .filter(|(_, a)| {
            matches!(
                decisions.get(&a.id),
                Some(DecisionKind::Incident | DecisionKind::Monitored)
            )
        })
        .partition(|(_, a)| decisions.get(&a.id) == Some(&DecisionKind::Incident));
    let (related, related_more) = investigation::related(&alert, &incidents, inv.related_cap);
    let related_monitored = investigation::related(&alert, &monitored, usize::MAX)
        .0
        .len();
    let first_response = first_response_lines(deps.store.as_ref(), &tenant.id, &key).await?;

    let report = Report {
        tenant: tenant.id.clone(),
        incident_key: key.clone(),
        alert_id: alert.id.clone(),
        alert_version: alert.last_update,
        product,
        generated_at: now,
        title: alert.title().to_string(),
        severity: effective_severity(&alert).label_ja().to_string(),
        category: alert.fields.category.clone(),
        entities,
        users,
        sections,
        related,
        related_more,
        related_monitored,
        recommendations: investigation::recommendations(product, alert.fields.category.as_deref()),
        first_response,
    };
    let fingerprint = report.fingerprint();
    let sections_run = report
        .sections
        .iter()
        .filter(|s| s.outcome == HuntOutcome::Ok)
        .count();
    let sections_skipped = report.sections.len() - sections_run;

    let version = match &previous {
        // An operator's forced re-post: a new version number, posted even if unchanged.
        Some(p) if force && p.posted => p.version + 1,
        Some(p) if p.fingerprint == fingerprint => p.version,
        Some(p) if p.posted => p.version + 1,
        // Stored but never confirmed posted, with other content: the same version number,
        // the new content (the ext id differs, so a half-posted old text is not mistaken).
        Some(p) => p.version,
        None => 1,
    };
    if let Some(p) = &previous {
        if p.posted && p.fingerprint == fingerprint && !force {
            // Keep the newest data (generated_at, hunting rows) without posting again.
            let stored = StoredReport {
                report,
                ..p.clone()
            };
            deps.store
                .put_doc(
                    &tenant.id,
                    DOC_KIND,
                    &dkey,
                    &serde_json::to_string(&stored)?,
                )
                .await?;
            return Ok(InvestigateOutcome {
                ticket_id,
                incident_key: key,
                action: InvestigateAction::NothingNew,
                version,
                sections_run,
                sections_skipped,
            });
        }
    }
    let text = report.text(version);
    let mut stored = StoredReport {
        version,
        fingerprint: fingerprint.clone(),
        posted: false,
        report,
    };
    deps.store
        .put_doc(
            &tenant.id,
            DOC_KIND,
            &dkey,
            &serde_json::to_string(&stored)?,
        )
        .await?;
    let ext = if force {
        // Same content as a report already on the ticket: its own id, or the lookup would
        // find the old one and skip the re-post the operator asked for.
        format!("inv-{}-{fingerprint}-v{version}", alert.id)
    } else {
        format!("inv-{}-{fingerprint}", alert.id)
    };
    if !deps.tickets.has_response(&ticket_id, &ext).await? {
        deps.tickets.add_response(&ticket_id, &text, &ext).await?;
    }
    stored.posted = true;
    deps.store
        .put_doc(
            &tenant.id,
            DOC_KIND,
            &dkey,
            &serde_json::to_string(&stored)?,
        )
        .await?;
    tracing::info!(tenant = %tenant.id, incident = %key, alert = %alert.id, version, sections_run, sections_skipped, "investigation report posted");
    Ok(InvestigateOutcome {
        ticket_id,
        incident_key: key,
        action: InvestigateAction::Posted,
        version,
        sections_run,
        sections_skipped,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedUser {
    fetched_at: DateTime<Utc>,
    found: bool,
    display_name: Option<String>,
    mail: Option<String>,
}

async fn lookup_users(
    store: &dyn Store,
    inv: &InvestigateDeps,
    tenant: &str,
    e: &Entities,
    now: DateTime<Utc>,
) -> Vec<UserLine> {
    let mut out = Vec::new();
    for u in e.users.iter().take(10) {
        out.push(lookup_user(store, inv, tenant, u, now).await);
    }
    out
}

/// A failed lookup never fails the report: the evidence still names the user.
async fn lookup_user(
    store: &dyn Store,
    inv: &InvestigateDeps,
    tenant: &str,
    u: &UserRef,
    now: DateTime<Utc>,
) -> UserLine {
    let line = |lookup: &str, c: Option<&CachedUser>| UserLine {
        user: u.clone(),
        display_name: c.and_then(|c| c.display_name.clone()),
        mail: c.and_then(|c| c.mail.clone()),
        lookup: lookup.to_string(),
    };
    let Some(key) = u.lookup_key() else {
        return line("no_key", None);
    };
    let ck = key.to_lowercase();
    if let Ok(Some(b)) = store.get_doc(tenant, USER_DOC_KIND, &ck).await {
        if let Ok(c) = serde_json::from_str::<CachedUser>(&b) {
            let age = now.signed_duration_since(c.fetched_at);
            if age >= chrono::Duration::zero() && age.to_std().unwrap_or_default() < inv.user_cache
            {
                return line(if c.found { "found" } else { "not_found" }, Some(&c));
            }
        }
    }
    match inv.users.user(tenant, key).await {
        Ok(found) => {
            let c = CachedUser {
                fetched_at: now,
                found: found.is_some(),
                display_name: found.as_ref().and_then(|f| f.display_name.clone()),
                mail: found
                    .as_ref()
                    .and_then(|f| f.mail.clone().or(f.upn.clone())),
            };
            if let Ok(b) = serde_json::to_string(&c) {
                if let Err(e) = store.put_doc(tenant, USER_DOC_KIND, &ck, &b).await {
                    tracing::warn!(tenant, error = ?format!("{e:#}"), "user cache not written");
                }
            }
            line(if c.found { "found" } else { "not_found" }, Some(&c))
        }
        Err(e) => {
            tracing::warn!(tenant, error = ?format!("{e:#}"), "user lookup failed; the report uses the evidence");
            line("failed", None)
        }
    }
}

/// One query to run for one entity.
struct Job<'a> {
    query: &'a HuntingQuery,
    params: Params,
    subject: String,
}

fn alert_times(a: &Alert) -> (DateTime<Utc>, DateTime<Utc>) {
    let p = |s: Option<&str>| {
        s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
    };
    let created = p(a.fields.created_date_time.as_deref()).unwrap_or(a.last_update);
    let first = p(a.fields.first_activity_date_time.as_deref())
        .filter(|f| *f <= created)
        .unwrap_or(created);
    (first, created)
}

fn jobs<'a>(alert: &Alert, product: Product, e: &Entities, per_kind: usize) -> Vec<Job<'a>> {
    let (first, created) = alert_times(alert);
    let mut out = Vec::new();
    for q in kql::pack().iter().filter(|q| q.serves(product)) {
        let (start, end) = match q.window {
            Window::Around => (
                first - chrono::Duration::hours(1),
                created + chrono::Duration::hours(1),
            ),
            Window::Days7 => (
                created - chrono::Duration::days(7),
                created + chrono::Duration::hours(1),
            ),
        };
        let base = Params {
            start: Some(start),
            end: Some(end),
            ..Params::default()
        };
        let mut per_entity: Vec<(Params, String)> = Vec::new();
        let kind = q.needs.first().map(String::as_str).unwrap_or("");
        if kind.starts_with("AlertDevice") {
            for d in e.devices.iter().filter(|d| d.id.is_some()).take(per_kind) {
                let mut p = base.clone();
                p.set("AlertDeviceId", d.id.as_deref().unwrap_or(""));
                p.set("AlertDeviceName", d.name.as_deref().unwrap_or(""));
                per_entity.push((
                    p,
                    format!(
                        "端末 {}",
                        d.name.as_deref().or(d.id.as_deref()).unwrap_or("")
                    ),
                ));
            }
        } else if kind.starts_with("AlertMessage") {
            for m in e.messages.iter().take(per_kind) {
                let mut p = base.clone();
                p.set("AlertMessageId", &m.network_message_id);
                p.set("AlertRecipient", m.recipient.as_deref().unwrap_or(""));
                per_entity.push((p, format!("メール {}", m.network_message_id)));
            }
        } else if kind.starts_with("AlertUser") {
            for u in e
                .users
                .iter()
                .filter(|u| u.lookup_key().is_some())
                .take(per_kind)
            {
                let mut p = base.clone();
                p.set("AlertUserObjectId", u.object_id.as_deref().unwrap_or(""));
                p.set("AlertUserUpn", u.upn.as_deref().unwrap_or(""));
                per_entity.push((p, format!("ユーザー {}", u.label())));
            }
        }
        for (params, subject) in per_entity {
            if q.runnable(&params) {
                out.push(Job {
                    query: q,
                    params,
                    subject,
                });
            }
        }
    }
    out
}

/// Takes one hunting call from the tenant's hour and minute budgets (the hour first: it is
/// the scarcer one, and a minute unit taken in vain costs least).
async fn take_budget(
    store: &dyn Store,
    tenant: &str,
    b: &HuntBudget,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let hour = format!("hunt-h-{}", now.format("%Y%m%d%H"));
    if !store
        .take_budget(tenant, &hour, b.per_hour, now + chrono::Duration::hours(2))
        .await?
    {
        return Ok(false);
    }
    let minute = format!("hunt-m-{}", now.format("%Y%m%d%H%M"));
    store
        .take_budget(
            tenant,
            &minute,
            b.per_minute,
            now + chrono::Duration::minutes(10),
        )
        .await
}

async fn hunt(
    store: &dyn Store,
    inv: &InvestigateDeps,
    tenant: &str,
    alert: &Alert,
    product: Product,
    e: &Entities,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<HuntSection>> {
    let mut out = Vec::new();
    // Once short, the rest is skipped with the same reason without asking again.
    let mut stop: Option<HuntOutcome> = None;
    for (i, job) in jobs(alert, product, e, inv.budget.entities_per_kind)
        .into_iter()
        .enumerate()
    {
        let mut section = HuntSection {
            query_id: job.query.id.clone(),
            title: job.query.title.clone(),
            subject: job.subject.clone(),
            outcome: HuntOutcome::Ok,
            columns: vec![],
            rows: vec![],
            total_rows: 0,
        };
        if i >= inv.budget.per_report {
            section.outcome = HuntOutcome::SkippedCap;
        } else if let Some(s) = stop {
            section.outcome = s;
        } else if !take_budget(store, tenant, &inv.budget, now).await? {
            section.outcome = HuntOutcome::SkippedBudget;
            stop = Some(HuntOutcome::SkippedBudget);
        } else {
            let text = job.query.render(&job.params)?;
            let span = kql::timespan(
                job.params.start.unwrap_or(now),
                job.params.end.unwrap_or(now),
            );
            match inv.hunting.run(tenant, &text, &span).await {
                Ok(r) => {
                    section.total_rows = r.rows.len();
                    section.columns = r.columns;
                    section.rows = r.rows.into_iter().take(ROWS_KEPT).collect();
                }
                Err(HuntingError::Quota(m)) => {
                    tracing::warn!(tenant, query = %job.query.id, reason = %m, "hunting quota exhausted; the rest of this report's queries are skipped");
                    section.outcome = HuntOutcome::SkippedQuota;
                    stop = Some(HuntOutcome::SkippedQuota);
                }
                Err(HuntingError::Timeout(m)) => {
                    tracing::warn!(tenant, query = %job.query.id, reason = %m, "hunting query timed out");
                    section.outcome = HuntOutcome::TimedOut;
                }
                Err(HuntingError::Failed(m)) => {
                    tracing::warn!(tenant, query = %job.query.id, reason = %m, "hunting query failed");
                    section.outcome = HuntOutcome::Failed;
                }
            }
        }
        out.push(section);
    }
    Ok(out)
}

fn status_ja(s: ActionStatus) -> &'static str {
    match s {
        ActionStatus::Requesting | ActionStatus::InProgress => "実行中",
        ActionStatus::Succeeded => "完了",
        ActionStatus::Failed => "失敗",
        ActionStatus::TimedOut => "完了を確認できず（タイムアウト）",
        ActionStatus::Cancelled => "取り消し",
        ActionStatus::PendingApproval => "承認待ち",
        ActionStatus::WaitingHours => "実施時間帯の開始待ち",
        ActionStatus::Refused => "ガードレールにより実施せず",
        ActionStatus::Unsupported => "API で実施できないため未実施",
    }
}

async fn first_response_lines(
    store: &dyn Store,
    tenant: &str,
    key: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(store
        .list_actions(tenant)
        .await?
        .into_iter()
        .filter(|a| a.incident_key == key)
        .map(|a| {
            format!(
                "{}（{}）: {}",
                a.kind.label_ja(),
                crate::domain::incident::clean_line(&a.target, 100),
                status_ja(a.status)
            )
        })
        .collect())
}
