//! The capabilities steps need, as traits, so the same step runs on SQLite + in-process
//! queues, on DynamoDB + SQS, and against fakes in tests.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{Decision, DecisionKind};
use crate::domain::severity::Severity;
use crate::domain::tenant::Tenant;
use crate::messages::{AlertRef, QueueName};

pub type Result<T> = anyhow::Result<T>;

/// One item of a Graph page: an alert, or what could not be read as one (kept raw).
#[derive(Debug, Clone)]
pub enum FetchedItem {
    Alert(Box<Alert>),
    Malformed { raw: String, reason: String },
}

/// One page of an alert listing, and the link to the next (`None`: the last).
#[derive(Debug, Clone, Default)]
pub struct FetchedPage {
    pub items: Vec<FetchedItem>,
    pub next: Option<String>,
}

#[async_trait]
pub trait AlertSource: Send + Sync {
    /// Every alert of `product` whose lastUpdateDateTime ≥ `since`, all pages.
    async fn fetch(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
    ) -> Result<Vec<FetchedItem>>;

    /// One page of what `fetch` returns; `next` is the previous page's link (`None`: the
    /// first page). The fetch step stores and classifies each page before asking for the
    /// next, so it holds one page per fetch in flight rather than whole windows. A source
    /// without pages serves everything as one.
    async fn fetch_page(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
        next: Option<&str>,
    ) -> Result<FetchedPage> {
        match next {
            None => Ok(FetchedPage {
                items: self.fetch(tenant, product, since).await?,
                next: None,
            }),
            Some(_) => Err(anyhow::anyhow!("this alert source has no further pages")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTicket {
    pub subject: String,
    pub description: String,
    pub priority: String,
    pub ext_ticket_id: String,
    pub to_email: Option<String>,
    pub cc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TicketUpdate {
    pub subject: Option<String>,
    pub priority: Option<String>,
}

#[async_trait]
pub trait Tickets: Send + Sync {
    async fn find_by_ext_id(&self, ext_ticket_id: &str) -> Result<Option<String>>;
    async fn create(&self, t: &NewTicket) -> Result<String>;
    async fn update(&self, ticket_id: &str, u: &TicketUpdate) -> Result<()>;
    async fn add_response(&self, ticket_id: &str, text: &str, ext_response_id: &str) -> Result<()>;
    async fn has_response(&self, ticket_id: &str, ext_response_id: &str) -> Result<bool>;
}

/// One alert's decision, as of one of its versions, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDecision {
    pub alert_id: String,
    pub last_update: DateTime<Utc>,
    pub decision: Decision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    pub kind: DecisionKind,
    pub product: Option<Product>,
    pub reason: String,
    pub last_update: DateTime<Utc>,
}

/// The state of one incident's ticket. Created as an intent (no ticket id) before the
/// OpsRamp call, so a crash between the two is found and resolved by a search, not a
/// second ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub tenant: String,
    pub key: String,
    pub ticket_id: Option<String>,
    pub creator_alert: String,
    pub creator_version: DateTime<Utc>,
    pub severity: Severity,
    pub intent_at: DateTime<Utc>,
}

/// One alert version's effect on a ticket: `done = false` is an intent whose response may
/// or may not have reached OpsRamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedVersion {
    pub alert_id: String,
    pub last_update: DateTime<Utc>,
    pub done: bool,
}

/// What `Store::begin_apply` found. Posting a note is check-then-act against OpsRamp, so only
/// one handler at a time may be between claiming a version and finishing it; a claim older
/// than the lease is a crashed handler's and may be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyClaim {
    /// No record existed: this caller now holds the version.
    New,
    /// A record older than the lease was left unfinished: this caller now holds it, and must
    /// ask OpsRamp whether the crashed holder's note got there.
    TakenOver,
    /// Another caller claimed it within the lease, or finished it.
    Held,
}

/// One tenant × product's cursor and one document of the same tenant, asked together
/// ([`Store::get_cursors_and_docs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorDocKey<'a> {
    pub tenant: &'a str,
    pub product: Product,
    pub kind: &'a str,
    pub key: &'a str,
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn put_tenant(&self, t: &Tenant) -> Result<()>;
    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;

    /// Stores one version; `true` when this call stored it, `false` when it was stored
    /// before. Whether a version was handed on is its alert's decision's business
    /// ([`Store::put_decisions`]), not this record's.
    async fn put_alert_version(
        &self,
        tenant: &str,
        product: Product,
        alert: &Alert,
    ) -> Result<bool>;
    /// Stores many versions at once (the fetch's batch): 25 per request on DynamoDB, one
    /// transaction on SQLite. Unconditional, and safe to repeat: a version is immutable by
    /// (id, lastUpdateDateTime), so storing it again changes nothing any reader sees.
    async fn put_alert_versions(
        &self,
        tenant: &str,
        product: Product,
        alerts: &[&Alert],
    ) -> Result<()>;
    async fn get_alert_version(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> Result<Option<Alert>>;
    async fn record_malformed(
        &self,
        tenant: &str,
        product: Product,
        raw: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;

    async fn get_cursor(&self, tenant: &str, product: Product) -> Result<Option<DateTime<Utc>>>;
    /// The cursor and one document of the same tenant, in one read where the store can (one
    /// BatchGetItem on DynamoDB): every fetch reads its cursor and its ingest-health state, a
    /// minute apart for every tenant × product, the largest share of the service's requests.
    async fn get_cursor_and_doc(
        &self,
        tenant: &str,
        product: Product,
        kind: &str,
        key: &str,
    ) -> Result<(Option<DateTime<Utc>>, Option<String>)> {
        Ok((
            self.get_cursor(tenant, product).await?,
            self.get_doc(tenant, kind, key).await?,
        ))
    }
    /// [`Store::get_cursor_and_doc`] for many tenants × products at once, in the order asked,
    /// in as few reads as the store can (one BatchGetItem per 50 on DynamoDB): a fetch cycle
    /// starts one per tenant × product every minute, and read one by one they were most of
    /// the service's requests.
    async fn get_cursors_and_docs(
        &self,
        wanted: &[CursorDocKey<'_>],
    ) -> Result<Vec<(Option<DateTime<Utc>>, Option<String>)>> {
        let mut out = Vec::with_capacity(wanted.len());
        for w in wanted {
            out.push(
                self.get_cursor_and_doc(w.tenant, w.product, w.kind, w.key)
                    .await?,
            );
        }
        Ok(out)
    }
    /// Moves the cursor forward only; an older value is ignored.
    async fn advance_cursor(&self, tenant: &str, product: Product, to: DateTime<Utc>)
        -> Result<()>;

    async fn get_decision(&self, tenant: &str, alert_id: &str) -> Result<Option<StoredDecision>>;
    /// The current decision of each of `alert_ids` that has one, in one read (100 alerts per
    /// request on DynamoDB, one query on SQLite): what the fetch needs to know of a page.
    async fn get_decisions(
        &self,
        tenant: &str,
        alert_ids: &[String],
    ) -> Result<HashMap<String, StoredDecision>>;
    /// Records a decision unless the stored one wins: a higher kind wins, and at an equal
    /// kind the newer version (see [`Store::put_decisions`]).
    async fn put_decision(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        d: &Decision,
    ) -> Result<()>;
    /// Records many decisions (one per alert, the fetch's batch), each unless the stored one
    /// is of a higher kind or for a newer version — checked by the store at the moment of
    /// writing, so a fetch racing another writer of the same alert never replaces what that
    /// writer recorded with a lower decision computed from a stale read, nor a newer
    /// version's record with an older one. Returns the alert ids refused (the caller settles
    /// them: `steps::fetch`). A decision recorded for version V also says that V, and every
    /// earlier version, was handed on. DynamoDB: conditional updates in transactions of up
    /// to 100; SQLite: one transaction.
    async fn put_decisions(&self, tenant: &str, decisions: &[NewDecision]) -> Result<Vec<String>>;

    async fn get_incident(&self, tenant: &str, key: &str) -> Result<Option<IncidentRecord>>;
    /// Create-once: `false` when a record for (tenant, key) already exists.
    async fn create_incident_intent(&self, rec: &IncidentRecord) -> Result<bool>;
    async fn set_incident_ticket(&self, tenant: &str, key: &str, ticket_id: &str) -> Result<()>;
    async fn set_incident_severity(
        &self,
        tenant: &str,
        key: &str,
        severity: Severity,
    ) -> Result<()>;
    async fn applied_versions(&self, tenant: &str, key: &str) -> Result<Vec<AppliedVersion>>;
    /// Claims one version for applying to the ticket, at `now`; a claim is held for `lease`.
    async fn begin_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<ApplyClaim>;
    async fn finish_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> Result<()>;

    // Reads for summaries and reports (not on the hot path).
    /// Every alert id of a tenant with its current decision, sorted by id.
    async fn list_decisions(&self, tenant: &str) -> Result<Vec<(String, DecisionKind)>>;
    /// Distinct alert ids stored for a tenant, sorted.
    async fn list_alert_ids(&self, tenant: &str) -> Result<Vec<String>>;
    /// Incidents of a tenant with their ticket and the alert ids applied to it, sorted by key.
    async fn list_incidents(&self, tenant: &str) -> Result<Vec<IncidentSummary>>;
    async fn malformed_count(&self, tenant: &str) -> Result<u64>;

    /// Create-once marker for a side effect that must happen once (an inquiry reminder):
    /// `New` = this caller created it and should act; `Pending` = created earlier, not
    /// finished (look before acting again); `Done` = finished.
    async fn once_begin(&self, tenant: &str, key: &str) -> Result<OnceState>;
    async fn once_finish(&self, tenant: &str, key: &str) -> Result<()>;

    /// First-response action intents: create-once by (tenant, key), then updated as the
    /// action progresses.
    async fn create_action(&self, rec: &ActionRecord) -> Result<bool>;
    async fn get_action(&self, tenant: &str, key: &str) -> Result<Option<ActionRecord>>;
    async fn put_action(&self, rec: &ActionRecord) -> Result<()>;
    async fn list_actions(&self, tenant: &str) -> Result<Vec<ActionRecord>>;

    /// A tenant's JSON document by kind and key, overwritten on put: investigation reports
    /// (kept with the incident for the monthly report), cached user lookups.
    async fn put_doc(&self, tenant: &str, kind: &str, key: &str, body: &str) -> Result<()>;
    async fn get_doc(&self, tenant: &str, kind: &str, key: &str) -> Result<Option<String>>;
    /// Every document of a kind, sorted by key.
    async fn list_docs(&self, tenant: &str, kind: &str) -> Result<Vec<(String, String)>>;

    /// Takes one unit of the counted budget `(tenant, window)` when fewer than `limit` were
    /// taken, atomically across processes; `false` (nothing taken) otherwise. A window is a
    /// name like `hunt-m-202611250104`; it may be forgotten after `expires`.
    async fn take_budget(
        &self,
        tenant: &str,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> Result<bool>;

    /// The newest stored version of each alert of the tenant whose newest version has
    /// `lastUpdateDateTime >= since`, with its product; newest first. For related detections:
    /// reads the store only, no API calls.
    async fn recent_alerts(
        &self,
        tenant: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Product, Alert)>>;

    /// Hands `f` the newest version before `to` of each alert of the tenant whose newest
    /// version before `to` has `lastUpdateDateTime >= from`, one at a time and in no
    /// particular order, so a month of alerts never sits in memory (the monthly report).
    /// Reads the month index on DynamoDB, never the whole tenant. An error from `f` stops
    /// the scan and is returned.
    async fn scan_alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut (dyn FnMut(Product, Alert) -> Result<()> + Send),
    ) -> Result<()>;

    /// Deletes every record of the tenant and, last, the tenant itself (`mss tenant purge`,
    /// after the retention period; the caller checks that). Never touches another tenant.
    /// Idempotent: a purge that stopped half-way is finished by running it again, and an
    /// unknown tenant purges nothing.
    async fn purge_tenant(&self, tenant: &str) -> Result<PurgeCounts>;
}

/// What a purge deleted: how many records of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeCounts(pub std::collections::BTreeMap<String, u64>);

impl PurgeCounts {
    pub fn add(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.0.entry(kind.to_string()).or_default() += n;
        }
    }
    pub fn get(&self, kind: &str) -> u64 {
        self.0.get(kind).copied().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for PurgeCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{k} {n}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// One first-response action on one target for one incident: who/what/when/result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub tenant: String,
    /// `<incident key>|<kind>|<target>`
    pub key: String,
    pub incident_key: String,
    pub kind: crate::domain::response::ActionKind,
    pub target: String,
    pub status: ActionStatus,
    pub reason: String,
    pub machine_action_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who approved it (an operator), when it waited for approval or hours.
    #[serde(default)]
    pub approved_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Intent recorded; the product has not confirmed the request yet.
    Requesting,
    InProgress,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    PendingApproval,
    WaitingHours,
    Refused,
    Unsupported,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Requesting => "in_progress",
            ActionStatus::InProgress => "in_progress",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
            ActionStatus::TimedOut => "timed_out",
            ActionStatus::Cancelled => "cancelled",
            ActionStatus::PendingApproval => "pending_approval",
            ActionStatus::WaitingHours => "waiting_hours",
            ActionStatus::Refused => "refused",
            ActionStatus::Unsupported => "unsupported",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnceState {
    New,
    Pending,
    Done,
}

/// OpsRamp service requests (customer inquiries), as the inquiry tracker needs them.
#[async_trait]
pub trait Inquiries: Send + Sync {
    /// Every service request not yet resolved or closed.
    async fn open_inquiries(&self) -> Result<Vec<crate::domain::inquiry::Inquiry>>;
    async fn set_due(&self, id: &str, due: DateTime<Utc>) -> Result<()>;
    /// An internal note (not mailed to the customer), tagged with our id.
    async fn add_internal_note(&self, id: &str, text: &str, ext_id: &str) -> Result<()>;
    async fn has_note(&self, id: &str, ext_id: &str) -> Result<bool>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub key: String,
    pub ticket_id: Option<String>,
    pub alert_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub handle: String,
    pub body: String,
    pub receive_count: u32,
}

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send_batch(&self, q: QueueName, msgs: &[AlertRef]) -> Result<()>;
    async fn receive(&self, q: QueueName, max: usize) -> Result<Vec<Received>>;
    async fn ack(&self, q: QueueName, handle: &str) -> Result<()>;
    /// Makes the message visible again, or moves it to the dead-letter queue once it has
    /// been received `max_receive` times, keeping the error with it.
    async fn nack(&self, q: QueueName, handle: &str, error: &str) -> Result<()>;
    async fn depth(&self, q: QueueName) -> Result<(u64, u64)>;
    /// One message with a delay before it becomes visible (SQS DelaySeconds, ≤ 15 min).
    async fn send_delayed(
        &self,
        q: QueueName,
        tenant: &str,
        body: &str,
        delay: std::time::Duration,
    ) -> Result<()>;
    /// Up to `max` dead letters of `q`, left where they are.
    async fn dead_letters(&self, q: QueueName, max: usize) -> Result<Vec<DeadLetter>>;
    /// Moves every dead letter of `q` back onto `q`; returns how many moved.
    async fn redrive(&self, q: QueueName) -> Result<u64>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub body: String,
    /// The last error, where the queue keeps it (the embedded one does; SQS does not — the
    /// function's log has it).
    pub error: Option<String>,
    pub receive_count: u32,
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock the embedded demo and tests move by hand.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock(std::sync::Mutex::new(t)))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
