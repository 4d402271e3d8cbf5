//! Activity digest (R-LOG-ACTIVITY, seed §5.5): for each tenant with `[log_analysis]`, the
//! provider's activity rules run over the customer's Sentinel workspace for one period, and
//! the customer's contacts get one Japanese list of what an administrator should know about.
//!
//! **Rules.** The pack is `infra/sentinel/activity/*.kql`, embedded at build time (see
//! `shared/build.rs`): header lines `// id:`, `// title:`, `// why:`, `// tables:` (other
//! `// key:` headers are ignored), then a body projecting `TimeGenerated, Actor, Target,
//! Operation, Detail` that uses the bindings `WindowStart`, `WindowEnd` (datetime) and
//! `BreakGlassAccounts` (dynamic list). We prepend them ([`render`]): a first line
//! `// mss-query: <id>` (so logs and the simulator can tie a query to its file), then
//! `let WindowStart = datetime(…);`, `let WindowEnd = datetime(…);`,
//! `let BreakGlassAccounts = dynamic([…]);` with each UPN a KQL string literal built by
//! [`kql::string_literal`] (never pasted into the body). A tenant's `disabled_rules` are not run.
//!
//! **Periods.** JST days (`daily`, 00:00–24:00) or JST weeks (`weekly`, Monday 00:00 to the
//! next Monday), half-open `[start, end)`: a row at exactly a boundary belongs to the later
//! period, so consecutive digests neither overlap nor leave a gap. The cursor (doc kind
//! `digest`, key `cursor`) is the end of the last period posted. Without a cursor the first
//! digest is the previous full period (`end` = the last JST midnight, or Monday 00:00 JST,
//! at or before now). A missed run is caught up **one digest per period** (oldest first, at
//! most [`DigestDeps::max_periods`] per run, the rest next run): each digest keeps its own
//! subject, id and content, and a crash between two periods cannot merge or lose one. The
//! schedule runs daily at 07:30 JST, 7.5 hours after the day closes, which leaves room for
//! Log Analytics' ingestion delay; weekly tenants have nothing due on other days than Monday
//! (a missed Monday is caught up the next day), and a weekly tenant's first digest waits for
//! a Monday. After a cadence change the first period runs from the cursor to the next
//! boundary of the new cadence (shorter than usual, never a gap).
//!
//! **Posting (decision).** One OpsRamp **service request per digest**, mailed by OpsRamp to
//! the tenant's contacts (`toEmail`/`cc`), subject `【アクティビティ通知】楓商事株式会社
//! 2026/11/24 分` (a week: `2026/11/23〜2026/11/29 分`), `extTicketId`
//! `mss-<tenant>-digest-<period start yyyymmdd>`, looked up before it is created (and by the
//! client after an ambiguous failure, before the POST is sent again): a rerun of a period
//! posts nothing twice. Not a response on a standing ticket: a standing ticket would stay open
//! for ever, mails would thread under one old subject, and one lost response could not be
//! told apart from one never sent. The inquiry tracker ignores these requests (they are
//! notices, not inquiries; see `adapters::opsramp`), so no due date or SLA reminder is set on
//! them; the text sends questions to the usual inquiry desk.
//!
//! **Failures.** The cursor moves only after a successful post (or a post found done). A rule
//! that fails (timeout, quota, refused query, 5xx) does not stop the digest: it is listed with
//! its reason, and a partial result (`PartialError`) is shown and marked. A whole-workspace
//! failure (token, 401/403 permission, 404 workspace) fails the run without posting or moving
//! the cursor; so does a period in which every rule failed (a digest of nothing but failures
//! would tell the customer nothing and end the period for good). The next run retries.
//!
//! **Overlapping runs** of one tenant (the schedule and an operator at the same minute) are
//! guarded only by the `extTicketId` lookup, which leaves a window of seconds; with one run a
//! day this is accepted rather than adding a lock.
//!
//! **Stored.** Each digest is kept as doc kind `digest`, key `period-<yyyymmdd>`
//! ([`StoredDigest`]: the rules' results, rows as shown, the service request) for the monthly
//! report; [`list_digests`] reads them back.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adapters::loganalytics::{LogAnalytics, LogError, LogResult};
use crate::domain::incident::clean_line;
use crate::domain::kql;
use crate::domain::tenant::{DigestCadence, LogAnalysis, Tenant};
use crate::ports::{Clock, Store};

pub const DOC_KIND: &str = "digest";
pub const CURSOR_KEY: &str = "cursor";
/// Rows shown per rule; the rest are counted ("ほか N 件").
pub const ROWS_SHOWN: usize = 30;
/// Periods a `since` rerun may cover at most.
pub const MAX_SINCE_PERIODS: usize = 31;
pub const EMPTY_PERIOD_JA: &str = "対象期間に通知対象のアクティビティはありませんでした。";

// ---------------------------------------------------------------- the rule pack

/// One activity rule file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRule {
    pub id: String,
    /// Japanese title, shown as the section heading.
    pub title: String,
    /// Why an administrator should know (Japanese), shown under the title.
    pub why: String,
    /// The tables it reads (`// tables:`), for documentation.
    pub tables: Vec<String>,
    /// `// lookback:` (ISO 8601 duration): how far before `WindowStart` the body reads (e.g.
    /// the countries known from the previous 30 days). The request's `timespan` starts that
    /// much earlier, or the service would filter those rows away.
    #[serde(default)]
    pub lookback_secs: Option<i64>,
    /// The query body, headers removed.
    pub body: String,
}

/// One rule file, read by the Sentinel content's parser (the one that also renders the pack
/// for deployment), so the digest and `mss sentinel render` can never disagree on a rule.
pub fn parse_rule(file: &str, text: &str) -> Result<ActivityRule, String> {
    let r = crate::sentinel::ActivityRule::parse(file, text).map_err(|e| format!("{e:#}"))?;
    Ok(ActivityRule {
        id: r.id,
        title: r.title,
        why: r.why,
        tables: r.tables,
        lookback_secs: r.lookback.map(|l| l.seconds as i64),
        body: r.body,
    })
}

impl ActivityRule {
    /// The request's `timespan`: the period, reaching back by the rule's lookback.
    pub fn timespan(&self, p: &Period) -> String {
        kql::timespan(
            p.start - Duration::seconds(self.lookback_secs.unwrap_or(0)),
            p.end,
        )
    }
}

/// The rules of `files` sorted by id, and what could not be read (`file: reason`, including
/// an id used twice, whose second file is left out).
pub fn load_rules(files: &[(&str, &str)]) -> (Vec<ActivityRule>, Vec<String>) {
    let mut rules: Vec<ActivityRule> = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        match parse_rule(file, text) {
            Ok(r) if rules.iter().any(|x| x.id == r.id) => {
                errors.push(format!("{file}: id {:?} is used by another file", r.id))
            }
            Ok(r) => rules.push(r),
            Err(e) => errors.push(e),
        }
    }
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    (rules, errors)
}

/// The repository's pack (`infra/sentinel/activity/*.kql`), read once.
pub fn pack() -> &'static (Vec<ActivityRule>, Vec<String>) {
    static PACK: std::sync::OnceLock<(Vec<ActivityRule>, Vec<String>)> = std::sync::OnceLock::new();
    PACK.get_or_init(|| load_rules(&crate::sentinel::ACTIVITY_FILES))
}

/// The text sent to Log Analytics: the id line, the three bindings, the rule's body.
pub fn render(rule: &ActivityRule, period: &Period, break_glass: &[String]) -> String {
    let accounts: Vec<String> = break_glass.iter().map(|a| kql::string_literal(a)).collect();
    format!(
        "// mss-query: {}\nlet WindowStart = {};\nlet WindowEnd = {};\nlet BreakGlassAccounts = dynamic([{}]);\n{}",
        rule.id,
        kql::datetime_literal(period.start),
        kql::datetime_literal(period.end),
        accounts.join(", "),
        rule.body
    )
}

// ---------------------------------------------------------------- periods

fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

/// 00:00 JST of a date, in UTC (Japan has no daylight saving time).
pub fn jst_midnight(d: NaiveDate) -> DateTime<Utc> {
    jst()
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

fn jst_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&jst()).date_naive()
}

fn period_len(c: DigestCadence) -> Duration {
    match c {
        DigestCadence::Daily => Duration::days(1),
        DigestCadence::Weekly => Duration::days(7),
    }
}

/// The last period boundary at or before `t`: JST midnight (daily) or Monday 00:00 JST
/// (weekly).
pub fn boundary_at_or_before(c: DigestCadence, t: DateTime<Utc>) -> DateTime<Utc> {
    let d = jst_date(t);
    let d = match c {
        DigestCadence::Daily => d,
        DigestCadence::Weekly => d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
    };
    jst_midnight(d)
}

/// One digest's half-open window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// `yyyymmdd` of the first JST day: the period's id.
    pub fn key(&self) -> String {
        jst_date(self.start).format("%Y%m%d").to_string()
    }

    /// `2026/11/24` for one day, `2026/11/23〜2026/11/29` for several (inclusive JST days).
    pub fn label(&self) -> String {
        let first = jst_date(self.start);
        let last = jst_date(self.end - Duration::seconds(1));
        if first == last {
            first.format("%Y/%m/%d").to_string()
        } else {
            format!("{}〜{}", first.format("%Y/%m/%d"), last.format("%Y/%m/%d"))
        }
    }
}

/// The complete periods from `from` up to the last boundary at or before `now`, oldest first.
/// A `from` between boundaries (a cadence change, a `since` date) starts a shorter first period
/// ending at the next boundary.
pub fn due_periods(c: DigestCadence, from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Period> {
    let limit = boundary_at_or_before(c, now);
    let mut out = Vec::new();
    let mut start = from;
    while start < limit {
        let end = boundary_at_or_before(c, start) + period_len(c);
        if end > limit {
            break;
        }
        out.push(Period { start, end });
        start = end;
    }
    out
}

/// The previous full period: what a tenant's first digest covers.
pub fn previous_period(c: DigestCadence, now: DateTime<Utc>) -> Period {
    let end = boundary_at_or_before(c, now);
    Period {
        start: end - period_len(c),
        end,
    }
}

// ---------------------------------------------------------------- delivery port

/// The service request carrying one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestNotice {
    pub subject: String,
    pub description: String,
    /// Comma-separated, as the tenant's contacts.
    pub to_email: Option<String>,
    pub cc: Option<String>,
    pub ext_ticket_id: String,
}

/// Where digests go: OpsRamp service requests (implemented on
/// `adapters::opsramp::OpsRampClient`; OpsRamp mails `toEmail`/`cc` on create).
#[async_trait]
pub trait DigestDelivery: Send + Sync {
    /// The service request with exactly this `extTicketId`.
    async fn find(&self, ext_ticket_id: &str) -> anyhow::Result<Option<String>>;
    /// Creates it; after an ambiguous failure the implementation looks it up by
    /// `extTicketId` before sending the POST again.
    async fn create(&self, n: &DigestNotice) -> anyhow::Result<String>;
}

/// `mss-<tenant>-digest-<yyyymmdd>`; tenant ids are `[a-z0-9-]`, so the id survives OpsRamp's
/// `queryString` unchanged.
pub fn ext_ticket_id(tenant: &str, p: &Period) -> String {
    format!("mss-{tenant}-digest-{}", p.key())
}

// ---------------------------------------------------------------- results

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    Ok,
    /// 200 with a `PartialError`: rows shown, marked incomplete.
    Partial,
    Failed,
}

/// One row as shown (every field through `clean_line`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRow {
    pub time: Option<DateTime<Utc>>,
    pub actor: String,
    pub target: String,
    pub operation: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub id: String,
    pub title: String,
    pub why: String,
    pub status: RuleStatus,
    /// The technical reason (logs, the stored doc), for partial and failed rules.
    pub reason: Option<String>,
    /// What the customer reads about a partial or failed rule.
    pub reason_ja: Option<String>,
    pub total_rows: usize,
    /// The first [`DigestDeps::rows_shown`] rows, by time.
    pub rows: Vec<ActivityRow>,
}

/// The digest as stored (doc kind `digest`, key `period-<yyyymmdd>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDigest {
    pub tenant: String,
    pub cadence: DigestCadence,
    pub period: Period,
    pub label: String,
    pub generated_at: DateTime<Utc>,
    pub ext_ticket_id: String,
    pub subject: String,
    pub rules: Vec<RuleResult>,
    pub total_rows: usize,
    pub service_request: Option<String>,
    /// The service request exists (created by us, or found by `extTicketId`).
    pub posted: bool,
}

pub fn doc_key(p: &Period) -> String {
    format!("period-{}", p.key())
}

/// Every stored digest of a tenant, oldest first (for the monthly report).
pub async fn list_digests(store: &dyn Store, tenant: &str) -> anyhow::Result<Vec<StoredDigest>> {
    let mut out = Vec::new();
    for (k, body) in store.list_docs(tenant, DOC_KIND).await? {
        if k.starts_with("period-") {
            out.push(serde_json::from_str(&body).with_context(|| format!("digest doc {k}"))?);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    end: DateTime<Utc>,
}

pub async fn cursor(store: &dyn Store, tenant: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    match store.get_doc(tenant, DOC_KIND, CURSOR_KEY).await? {
        Some(b) => Ok(Some(
            serde_json::from_str::<Cursor>(&b)
                .context("digest cursor doc")?
                .end,
        )),
        None => Ok(None),
    }
}

/// Moves the cursor forward only.
async fn advance_cursor(store: &dyn Store, tenant: &str, to: DateTime<Utc>) -> anyhow::Result<()> {
    if cursor(store, tenant).await?.is_some_and(|c| c >= to) {
        return Ok(());
    }
    store
        .put_doc(
            tenant,
            DOC_KIND,
            CURSOR_KEY,
            &serde_json::to_string(&Cursor { end: to })?,
        )
        .await
}

// ---------------------------------------------------------------- the step

pub struct DigestDeps {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub logs: Arc<dyn LogAnalytics>,
    pub delivery: Arc<dyn DigestDelivery>,
    pub rules: Vec<ActivityRule>,
    /// Rule files that could not be read: logged, and counted in every digest as not run.
    pub rule_errors: Vec<String>,
    pub rows_shown: usize,
    /// Periods one run posts at most when catching up; the rest wait for the next run.
    pub max_periods: usize,
    /// Tenants run at once by the schedule.
    pub concurrency: usize,
}

impl DigestDeps {
    /// With the repository's rule pack.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        logs: Arc<dyn LogAnalytics>,
        delivery: Arc<dyn DigestDelivery>,
    ) -> DigestDeps {
        let (rules, rule_errors) = pack().clone();
        DigestDeps {
            store,
            clock,
            logs,
            delivery,
            rules,
            rule_errors,
            rows_shown: ROWS_SHOWN,
            max_periods: 7,
            concurrency: 4,
        }
    }
}

/// What started the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The daily schedule: from the cursor; a weekly tenant's first digest waits for a Monday.
    Schedule,
    /// An operator's `{"tenant"}`: from the cursor (or the previous full period).
    Manual,
    /// An operator's `{"tenant", "since"}`: every complete period from that JST day, as if the
    /// cursor were there; periods already posted are found and not posted again, and the
    /// cursor only ever moves forward.
    Since(NaiveDate),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodAction {
    Posted,
    /// The service request existed already (a rerun): nothing posted.
    AlreadyPosted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodOutcome {
    pub period: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub action: PeriodAction,
    pub service_request: Option<String>,
    pub rules_run: usize,
    pub rules_partial: usize,
    pub rules_failed: usize,
    pub rows: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestOutcome {
    pub tenant: String,
    pub cadence: DigestCadence,
    pub periods: Vec<PeriodOutcome>,
    /// Due periods left for the next run (catch-up limit).
    pub remaining: usize,
    /// The cursor after the run.
    pub cursor: Option<DateTime<Utc>>,
    /// Why nothing was due, when nothing was.
    pub note: Option<String>,
}

/// Runs the digest of one tenant.
pub async fn run(
    dd: &DigestDeps,
    tenant_id: &str,
    trigger: Trigger,
) -> anyhow::Result<DigestOutcome> {
    let tenant = dd
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or_else(|| anyhow!("tenant {tenant_id} is not registered"))?;
    let la = tenant.log_analysis.clone().ok_or_else(|| {
        anyhow!("tenant {tenant_id} has no [log_analysis] section: no activity digest is agreed")
    })?;
    for e in &dd.rule_errors {
        tracing::error!(tenant = tenant_id, error = %e, "activity rule file not loaded");
    }
    for d in &la.disabled_rules {
        if !dd.rules.iter().any(|r| &r.id == d) {
            tracing::warn!(tenant = tenant_id, rule = %d, "disabled_rules names a rule the pack does not have");
        }
    }
    let rules: Vec<&ActivityRule> = dd
        .rules
        .iter()
        .filter(|r| !la.disabled_rules.contains(&r.id))
        .collect();
    if rules.is_empty() {
        bail!(
            "tenant {tenant_id}: no activity rule to run ({} in the pack, {} disabled for the tenant, {} unreadable)",
            dd.rules.len(),
            la.disabled_rules.len(),
            dd.rule_errors.len()
        );
    }
    let now = dd.clock.now();
    let cur = cursor(dd.store.as_ref(), tenant_id).await?;
    let mut out = DigestOutcome {
        tenant: tenant_id.to_string(),
        cadence: la.digest,
        periods: vec![],
        remaining: 0,
        cursor: cur,
        note: None,
    };
    let mut due = match (trigger, cur) {
        (Trigger::Since(d), _) => {
            let from = jst_midnight(d);
            let due = due_periods(la.digest, from, now);
            if due.is_empty() {
                bail!(
                    "since {d}: no complete {} period starts on or after that day yet",
                    la.digest.as_str()
                );
            }
            if due.len() > MAX_SINCE_PERIODS {
                bail!(
                    "since {d}: {} periods; at most {MAX_SINCE_PERIODS} per run (give a later date)",
                    due.len()
                );
            }
            due
        }
        (_, Some(c)) => due_periods(la.digest, c, now),
        (Trigger::Schedule, None)
            if la.digest == DigestCadence::Weekly
                && jst_date(now).weekday() != chrono::Weekday::Mon =>
        {
            out.note = Some("weekly digest: the first one goes out on a Monday".into());
            vec![]
        }
        (_, None) => vec![previous_period(la.digest, now)],
    };
    if !matches!(trigger, Trigger::Since(_)) && due.len() > dd.max_periods {
        out.remaining = due.len() - dd.max_periods;
        due.truncate(dd.max_periods);
    }
    if due.is_empty() && out.note.is_none() {
        out.note = Some(format!(
            "nothing due: the last {} period ended at the cursor",
            la.digest.as_str()
        ));
    }
    for p in due {
        let o = period(dd, &tenant, &la, &rules, &p, now)
            .await
            .with_context(|| format!("tenant {tenant_id}, digest of {}", p.label()))?;
        out.periods.push(o);
    }
    out.cursor = cursor(dd.store.as_ref(), tenant_id).await?;
    Ok(out)
}

/// The schedule: every tenant with `[log_analysis]`, `concurrency` at a time; a tenant's
/// failure is returned with its id, after the others ran.
pub async fn run_all(
    dd: Arc<DigestDeps>,
) -> anyhow::Result<Vec<Result<DigestOutcome, (String, String)>>> {
    let tenants = dd.store.list_tenants().await?;
    let limit = Arc::new(tokio::sync::Semaphore::new(dd.concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for t in tenants.into_iter().filter(|t| t.log_analysis.is_some()) {
        let (dd, limit) = (dd.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            run(&dd, &t.id, Trigger::Schedule)
                .await
                .map_err(|e| (t.id.clone(), format!("{e:#}")))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| anyhow!("digest task failed: {e}"))?);
    }
    out.sort_by(|a, b| {
        let t = |r: &Result<DigestOutcome, (String, String)>| match r {
            Ok(o) => o.tenant.clone(),
            Err((t, _)) => t.clone(),
        };
        t(a).cmp(&t(b))
    });
    Ok(out)
}

fn outcome(d: &StoredDigest, action: PeriodAction) -> PeriodOutcome {
    let count = |s: RuleStatus| d.rules.iter().filter(|r| r.status == s).count();
    PeriodOutcome {
        period: d.label.clone(),
        start: d.period.start,
        end: d.period.end,
        action,
        service_request: d.service_request.clone(),
        rules_run: d.rules.len(),
        rules_partial: count(RuleStatus::Partial),
        rules_failed: count(RuleStatus::Failed),
        rows: d.total_rows,
    }
}

async fn put(dd: &DigestDeps, d: &StoredDigest) -> anyhow::Result<()> {
    dd.store
        .put_doc(
            &d.tenant,
            DOC_KIND,
            &doc_key(&d.period),
            &serde_json::to_string(d)?,
        )
        .await
}

async fn period(
    dd: &DigestDeps,
    tenant: &Tenant,
    la: &LogAnalysis,
    rules: &[&ActivityRule],
    p: &Period,
    now: DateTime<Utc>,
) -> anyhow::Result<PeriodOutcome> {
    let ext = ext_ticket_id(&tenant.id, p);
    let stored: Option<StoredDigest> =
        match dd.store.get_doc(&tenant.id, DOC_KIND, &doc_key(p)).await? {
            Some(b) => serde_json::from_str(&b).ok(),
            None => None,
        };
    if let Some(s) = stored.as_ref().filter(|s| s.posted && s.period == *p) {
        advance_cursor(dd.store.as_ref(), &tenant.id, p.end).await?;
        return Ok(outcome(s, PeriodAction::AlreadyPosted));
    }
    // Looked up first: a rerun (or a run after a crash that followed the create) posts
    // nothing, and runs no query either.
    if let Some(id) = dd.delivery.find(&ext).await? {
        let mut s = stored.unwrap_or_else(|| StoredDigest {
            tenant: tenant.id.clone(),
            cadence: la.digest,
            period: *p,
            label: p.label(),
            generated_at: now,
            ext_ticket_id: ext.clone(),
            subject: subject(tenant, p),
            rules: vec![],
            total_rows: 0,
            service_request: None,
            posted: false,
        });
        s.service_request = Some(id);
        s.posted = true;
        put(dd, &s).await?;
        advance_cursor(dd.store.as_ref(), &tenant.id, p.end).await?;
        tracing::info!(tenant = %tenant.id, period = %s.label, "digest was posted before; nothing posted");
        return Ok(outcome(&s, PeriodAction::AlreadyPosted));
    }

    let mut results = Vec::with_capacity(rules.len());
    for r in rules {
        results.push(run_rule(dd, tenant, la, r, p).await?);
    }
    if results.iter().all(|r| r.status == RuleStatus::Failed) {
        let reasons: Vec<String> = results
            .iter()
            .map(|r| format!("{}: {}", r.id, r.reason.as_deref().unwrap_or("")))
            .collect();
        bail!(
            "every activity rule failed; nothing posted, the cursor stays: {}",
            reasons.join("; ")
        );
    }
    let total_rows = results.iter().map(|r| r.total_rows).sum();
    let mut s = StoredDigest {
        tenant: tenant.id.clone(),
        cadence: la.digest,
        period: *p,
        label: p.label(),
        generated_at: now,
        ext_ticket_id: ext.clone(),
        subject: subject(tenant, p),
        rules: results,
        total_rows,
        service_request: None,
        posted: false,
    };
    let description = text(tenant, &s, dd.rule_errors.len());
    put(dd, &s).await?;
    let join = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
    if tenant.contacts_to.is_empty() {
        tracing::warn!(tenant = %tenant.id, "no [contacts] to: the digest goes to OpsRamp's default recipients only");
    }
    let id = dd
        .delivery
        .create(&DigestNotice {
            subject: s.subject.clone(),
            description,
            to_email: join(&tenant.contacts_to),
            cc: join(&tenant.contacts_cc),
            ext_ticket_id: ext,
        })
        .await?;
    s.service_request = Some(id);
    s.posted = true;
    put(dd, &s).await?;
    advance_cursor(dd.store.as_ref(), &tenant.id, p.end).await?;
    let o = outcome(&s, PeriodAction::Posted);
    tracing::info!(tenant = %tenant.id, period = %s.label, rows = o.rows, failed = o.rules_failed, partial = o.rules_partial, "activity digest posted");
    Ok(o)
}

fn failed(rule: &ActivityRule, reason: String, reason_ja: &str) -> RuleResult {
    RuleResult {
        id: rule.id.clone(),
        title: rule.title.clone(),
        why: rule.why.clone(),
        status: RuleStatus::Failed,
        reason: Some(reason),
        reason_ja: Some(reason_ja.to_string()),
        total_rows: 0,
        rows: vec![],
    }
}

/// Runs one rule. `Err` only for a whole-workspace failure (which ends the run).
async fn run_rule(
    dd: &DigestDeps,
    tenant: &Tenant,
    la: &LogAnalysis,
    rule: &ActivityRule,
    p: &Period,
) -> anyhow::Result<RuleResult> {
    let query = render(rule, p, &la.break_glass_accounts);
    let span = rule.timespan(p);
    let res = match dd.logs.query(tenant, &la.workspace_id, &query, &span).await {
        Ok(r) => r,
        Err(e) if e.is_workspace_wide() => {
            return Err(anyhow!(
                "workspace {} cannot be read ({e}); nothing posted, the cursor stays",
                la.workspace_id
            ))
        }
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, rule = %rule.id, error = %e, "activity rule failed; listed in the digest");
            let ja = match &e {
                LogError::BadQuery(_) => {
                    "ルールのクエリが受け付けられませんでした（当社で修正いたします）"
                }
                LogError::Quota(_) => {
                    "Log Analytics API の利用上限に達したため実行できませんでした"
                }
                LogError::Timeout(_) => "クエリが制限時間内に完了しませんでした",
                _ => "ログを取得できませんでした（一時的なエラー）",
            };
            return Ok(failed(rule, format!("rule {}: {e}", rule.id), ja));
        }
    };
    let (total_rows, rows) = match read_rows(&res, dd.rows_shown) {
        Ok(x) => x,
        Err(m) => {
            tracing::warn!(tenant = %tenant.id, rule = %rule.id, error = %m, "activity rule result unreadable");
            return Ok(failed(
                rule,
                format!("rule {}: {m}", rule.id),
                "結果を読み取れませんでした（当社で修正いたします）",
            ));
        }
    };
    let (status, reason, reason_ja) = match &res.partial {
        Some(m) => {
            tracing::warn!(tenant = %tenant.id, rule = %rule.id, error = %m, "activity rule returned a partial result");
            (
                RuleStatus::Partial,
                Some(format!("rule {}: partial result: {m}", rule.id)),
                Some("一部の結果のみ取得できました（結果が不完全な可能性があります）".to_string()),
            )
        }
        None => (RuleStatus::Ok, None, None),
    };
    Ok(RuleResult {
        id: rule.id.clone(),
        title: rule.title.clone(),
        why: rule.why.clone(),
        status,
        reason,
        reason_ja,
        total_rows,
        rows,
    })
}

fn text_of(v: Option<&Value>, max: usize) -> String {
    let s = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    clean_line(&s, max)
}

/// The rows of a rule's result, by time: how many there were and the first `shown`.
fn read_rows(res: &LogResult, shown: usize) -> Result<(usize, Vec<ActivityRow>), String> {
    const COLS: [&str; 5] = ["TimeGenerated", "Actor", "Target", "Operation", "Detail"];
    if !res.rows.is_empty() && COLS.iter().all(|c| res.column(c).is_none()) {
        return Err(format!(
            "the result has none of the columns {} (columns: {})",
            COLS.join(", "),
            res.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut rows: Vec<ActivityRow> = res
        .rows
        .iter()
        .map(|r| ActivityRow {
            time: res
                .get(r, "TimeGenerated")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc)),
            actor: text_of(res.get(r, "Actor"), 200),
            target: text_of(res.get(r, "Target"), 200),
            operation: text_of(res.get(r, "Operation"), 200),
            detail: text_of(res.get(r, "Detail"), 300),
        })
        .collect();
    rows.sort_by_key(|r| r.time);
    let total = rows.len();
    rows.truncate(shown);
    Ok((total, rows))
}

// ---------------------------------------------------------------- the text

pub fn subject(tenant: &Tenant, p: &Period) -> String {
    format!(
        "【アクティビティ通知】{} {} 分",
        clean_line(&tenant.name, 100),
        p.label()
    )
}

fn hm(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst()).format("%Y/%m/%d %H:%M").to_string()
}

fn hms(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst())
        .format("%Y/%m/%d %H:%M:%S")
        .to_string()
}

/// The service request's description: plain Japanese text, every value from a log through
/// `clean_line`.
pub fn text(tenant: &Tenant, d: &StoredDigest, unreadable_rules: usize) -> String {
    let name = clean_line(&tenant.name, 100);
    let with_rows = d.rules.iter().filter(|r| r.total_rows > 0).count();
    let failed: Vec<&RuleResult> = d
        .rules
        .iter()
        .filter(|r| r.status == RuleStatus::Failed)
        .collect();
    let mut s = format!(
        "{name} ご担当者様\n\n\
         いつもお世話になっております。\n\
         Microsoft Sentinel ワークスペースのログから、管理者の方に把握していただきたいアクティビティ（設定変更など）を抽出いたしましたので、お知らせいたします。\n\n\
         ■ 対象期間: {} 〜 {}（日本時間）\n\
         ■ 確認したルール: {} 件（該当あり {with_rows} 件、取得できなかったもの {} 件）\n\
         ■ 該当したアクティビティ: 合計 {} 件\n",
        hm(d.period.start),
        hm(d.period.end),
        d.rules.len(),
        failed.len(),
        d.total_rows,
    );
    if d.total_rows == 0 {
        s.push('\n');
        if failed.is_empty() {
            s.push_str(EMPTY_PERIOD_JA);
        } else {
            s.push_str("取得できたルールでは、");
            s.push_str(EMPTY_PERIOD_JA);
        }
        s.push('\n');
    }
    for (i, r) in d
        .rules
        .iter()
        .filter(|r| r.status != RuleStatus::Failed)
        .enumerate()
    {
        s.push_str("\n────────────────────\n");
        let count = if r.total_rows == 0 {
            "該当なし".to_string()
        } else {
            format!("{} 件", r.total_rows)
        };
        s.push_str(&format!(
            "【{}】{}（{count}）\n  通知の理由: {}\n",
            i + 1,
            clean_line(&r.title, 200),
            clean_line(&r.why, 500)
        ));
        if let Some(ja) = &r.reason_ja {
            s.push_str(&format!("  ※ {ja}\n"));
        }
        for row in &r.rows {
            let when = row.time.map(hms).unwrap_or_else(|| "（日時不明）".into());
            let dash = |v: &str| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.to_string()
                }
            };
            s.push_str(&format!(
                "  ・{when}　実行者: {}　対象: {}　操作: {}\n",
                dash(&row.actor),
                dash(&row.target),
                dash(&row.operation)
            ));
            if !row.detail.is_empty() {
                s.push_str(&format!("      詳細: {}\n", row.detail));
            }
        }
        if r.total_rows > r.rows.len() {
            s.push_str(&format!(
                "  …ほか {} 件（全件は Microsoft Sentinel ワークスペースでご確認いただけます）\n",
                r.total_rows - r.rows.len()
            ));
        }
    }
    if !failed.is_empty() || unreadable_rules > 0 {
        s.push_str("\n────────────────────\n■ 今回確認できなかったルール\n");
        for r in &failed {
            s.push_str(&format!(
                "  ・{}: {}\n",
                clean_line(&r.title, 200),
                r.reason_ja.as_deref().unwrap_or("取得できませんでした")
            ));
        }
        if unreadable_rules > 0 {
            s.push_str(&format!(
                "  ・ルール定義 {unreadable_rules} 件を読み込めませんでした（当社で修正いたします）\n"
            ));
        }
        s.push_str("  上記の対象期間分は当社にて確認し、必要に応じて別途ご連絡いたします。\n");
    }
    s.push_str(
        "\n本通知は当社 SOC の監視システムが自動でお送りしています。\
         内容に関するご質問は、通常のお問い合わせ窓口（新規のお問い合わせ）よりご連絡ください。\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_repository_pack_parses() {
        let (rules, errors) = pack();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rules.len(), crate::sentinel::ACTIVITY_FILES.len());
        for r in rules {
            assert!(!r.title.is_ascii(), "{}: title in Japanese", r.id);
            assert!(!r.why.is_ascii(), "{}: why in Japanese", r.id);
            for b in ["WindowStart", "WindowEnd"] {
                assert!(r.body.contains(b), "{}: the body does not use {b}", r.id);
            }
            for b in ["let WindowStart", "let WindowEnd", "let BreakGlassAccounts"] {
                assert!(!r.body.contains(b), "{}: the body binds {b} itself", r.id);
            }
        }
    }

    #[test]
    fn rule_files_say_what_is_wrong() {
        let ok = "// id: role-change\n// title: 役割の変更\n// why: 管理者が知るべき変更です\n// tables: AuditLogs\n\nAuditLogs\n| where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd\n| project TimeGenerated, Actor = tostring(InitiatedBy), Target = tostring(TargetResources), Operation = OperationName, Detail = Result\n";
        let r = parse_rule("role-change.kql", ok).unwrap();
        assert_eq!(r.tables, ["AuditLogs"]);
        assert_eq!(r.lookback_secs, None);
        let p = Period {
            start: at("2026-11-23T15:00:00Z"),
            end: at("2026-11-24T15:00:00Z"),
        };
        assert_eq!(r.timespan(&p), "2026-11-23T15:00:00Z/2026-11-24T15:00:00Z");
        let back = parse_rule(
            "role-change.kql",
            &ok.replace("// tables", "// lookback: P30D\n// tables"),
        )
        .unwrap();
        assert_eq!(back.lookback_secs, Some(30 * 86_400));
        assert_eq!(
            back.timespan(&p),
            "2026-10-24T15:00:00Z/2026-11-24T15:00:00Z"
        );
        for (text, want) in [
            (ok.replace("// id: role-change\n", ""), "id"),
            (ok.replace("// title: 役割の変更\n", ""), "title"),
            (
                ok.replace("TimeGenerated < WindowEnd", "TimeGenerated <= WindowEnd"),
                "half-open",
            ),
        ] {
            let e = parse_rule("role-change.kql", &text).unwrap_err();
            assert!(
                e.contains(want) && e.contains("role-change.kql"),
                "{e} !~ {want}"
            );
        }
        let (rules, errors) = load_rules(&[
            ("role-change.kql", ok),
            ("role-change.kql", ok),
            ("c.kql", "T"),
        ]);
        assert_eq!(rules.len(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("used by another file")));
    }

    #[test]
    fn periods_are_half_open_jst_days_and_weeks() {
        use DigestCadence::*;
        // 2026-11-25 07:30 JST (a Wednesday).
        let now = at("2026-11-24T22:30:00Z");
        assert_eq!(
            boundary_at_or_before(Daily, now),
            at("2026-11-24T15:00:00Z")
        );
        assert_eq!(
            boundary_at_or_before(Weekly, now),
            at("2026-11-22T15:00:00Z")
        );
        let p = previous_period(Daily, now);
        assert_eq!(
            (p.start, p.end),
            (at("2026-11-23T15:00:00Z"), at("2026-11-24T15:00:00Z"))
        );
        assert_eq!(
            (p.key().as_str(), p.label().as_str()),
            ("20261124", "2026/11/24")
        );
        let w = previous_period(Weekly, now);
        assert_eq!(w.label(), "2026/11/16〜2026/11/22");
        // Exactly at a boundary: that boundary.
        assert_eq!(
            boundary_at_or_before(Daily, at("2026-11-24T15:00:00Z")),
            at("2026-11-24T15:00:00Z")
        );
        // Catch-up: one per period, contiguous.
        let due = due_periods(Daily, at("2026-11-21T15:00:00Z"), now);
        assert_eq!(due.len(), 3);
        for w in due.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(due.last().unwrap().end, at("2026-11-24T15:00:00Z"));
        assert!(due_periods(Daily, at("2026-11-24T15:00:00Z"), now).is_empty());
        // A cursor between weekly boundaries (after a cadence change): a short first period.
        let due = due_periods(
            Weekly,
            at("2026-11-18T15:00:00Z"),
            at("2026-11-30T01:00:00Z"),
        );
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].label(), "2026/11/19〜2026/11/22");
        assert_eq!(due[0].end, at("2026-11-22T15:00:00Z"));
        assert_eq!(due[1].label(), "2026/11/23〜2026/11/29");
    }

    #[test]
    fn the_query_binds_every_value_as_a_literal() {
        let rule = parse_rule("bg-signin.kql", "// id: bg-signin\n// title: 緊急用アカウントのサインイン\n// why: 通常は使われないアカウントです\n// tables: SigninLogs\nSigninLogs\n| where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd\n| where UserPrincipalName in~ (BreakGlassAccounts)\n| project TimeGenerated, Actor = UserPrincipalName, Target = AppDisplayName, Operation = \"サインイン\", Detail = IPAddress").unwrap();
        let p = Period {
            start: at("2026-11-23T15:00:00Z"),
            end: at("2026-11-24T15:00:00Z"),
        };
        let hostile = vec![
            "o'hara@kaede.example".to_string(),
            "x\"); SigninLogs | take 1000000 //@kaede.example".to_string(),
            "back\\slash@kaede.example".to_string(),
        ];
        let q = render(&rule, &p, &hostile);
        let lines: Vec<&str> = q.lines().collect();
        assert_eq!(lines[0], "// mss-query: bg-signin");
        assert_eq!(
            lines[1],
            "let WindowStart = datetime(2026-11-23T15:00:00Z);"
        );
        assert_eq!(lines[2], "let WindowEnd = datetime(2026-11-24T15:00:00Z);");
        let list = lines[3]
            .strip_prefix("let BreakGlassAccounts = dynamic([")
            .and_then(|l| l.strip_suffix("]);"))
            .unwrap();
        let mut rest = list;
        let mut back = Vec::new();
        loop {
            let (v, tail) = kql::parse_string_literal(rest).unwrap();
            back.push(v);
            match tail.strip_prefix(", ") {
                Some(t) => rest = t,
                None => {
                    assert_eq!(tail, "");
                    break;
                }
            }
        }
        assert_eq!(back, hostile);
        assert_eq!(lines[4], "SigninLogs");
        assert!(render(&rule, &p, &[]).contains("dynamic([])"));
    }

    fn tenant() -> Tenant {
        Tenant::from_json_value(&serde_json::json!({
            "id": "kaede-shoji", "name": "楓商事株式会社",
            "azure_tenant_id": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "products": ["mdi"], "mdi": {},
            "log_analysis": {"workspace_id": "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b"}}))
        .unwrap()
    }

    fn digest(rules: Vec<RuleResult>) -> StoredDigest {
        let p = Period {
            start: at("2026-11-23T15:00:00Z"),
            end: at("2026-11-24T15:00:00Z"),
        };
        StoredDigest {
            tenant: "kaede-shoji".into(),
            cadence: DigestCadence::Daily,
            period: p,
            label: p.label(),
            generated_at: p.end,
            ext_ticket_id: ext_ticket_id("kaede-shoji", &p),
            subject: subject(&tenant(), &p),
            total_rows: rules.iter().map(|r| r.total_rows).sum(),
            rules,
            service_request: None,
            posted: false,
        }
    }

    fn rule(id: &str, status: RuleStatus, rows: Vec<ActivityRow>, total: usize) -> RuleResult {
        RuleResult {
            id: id.into(),
            title: format!("{id} のタイトル"),
            why: "理由".into(),
            status,
            reason: None,
            reason_ja: match status {
                RuleStatus::Ok => None,
                RuleStatus::Partial => Some("一部のみ".into()),
                RuleStatus::Failed => Some("タイムアウト".into()),
            },
            total_rows: total,
            rows,
        }
    }

    #[test]
    fn the_text_lists_rows_in_jst_and_says_when_there_is_nothing() {
        let d = digest(vec![rule("a", RuleStatus::Ok, vec![], 0)]);
        assert_eq!(
            d.subject,
            "【アクティビティ通知】楓商事株式会社 2026/11/24 分"
        );
        assert_eq!(d.ext_ticket_id, "mss-kaede-shoji-digest-20261124");
        let t = text(&tenant(), &d, 0);
        assert!(t.contains(EMPTY_PERIOD_JA), "{t}");
        assert!(
            t.contains("対象期間: 2026/11/24 00:00 〜 2026/11/25 00:00"),
            "{t}"
        );

        let row = ActivityRow {
            time: Some(at("2026-11-24T00:12:33Z")),
            actor: "admin@kaede.example".into(),
            target: "user@kaede.example".into(),
            operation: "Add member to role".into(),
            detail: String::new(),
        };
        let d = digest(vec![
            rule("a", RuleStatus::Partial, vec![row.clone()], 3),
            rule("b", RuleStatus::Failed, vec![], 0),
        ]);
        let t = text(&tenant(), &d, 1);
        assert!(!t.contains(EMPTY_PERIOD_JA), "{t}");
        assert!(
            t.contains("2026/11/24 09:12:33　実行者: admin@kaede.example"),
            "{t}"
        );
        assert!(t.contains("ほか 2 件"), "{t}");
        assert!(t.contains("※ 一部のみ"), "{t}");
        assert!(t.contains("b のタイトル: タイムアウト"), "{t}");
        assert!(t.contains("ルール定義 1 件"), "{t}");
    }

    #[test]
    fn rows_are_read_by_name_sorted_and_cleaned() {
        let res = crate::adapters::loganalytics::parse_answer(&serde_json::json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "Operation", "type": "string"}, {"name": "TimeGenerated", "type": "datetime"},
                        {"name": "Actor", "type": "string"}, {"name": "Detail", "type": "dynamic"}],
            "rows": [["b", "2026-11-24T03:00:00.1234567Z", "x\u{202e}y", {"k": 1}],
                     ["a", "2026-11-24T01:00:00Z", null, "line1\nline2"]]}]}))
        .unwrap();
        let (total, rows) = read_rows(&res, 1).unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operation, "a");
        assert_eq!(rows[0].detail, "line1 line2");
        assert_eq!(rows[0].target, "");
        let (_, rows) = read_rows(&res, 5).unwrap();
        assert_eq!(rows[1].actor, "x y");
        assert_eq!(rows[1].detail, "{\"k\":1}");
        let other = crate::adapters::loganalytics::parse_answer(
            &serde_json::json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "count_", "type": "long"}], "rows": [[3]]}]}),
        )
        .unwrap();
        assert!(read_rows(&other, 5).is_err());
    }
}
