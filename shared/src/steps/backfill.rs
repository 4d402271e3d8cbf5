//! Backfill: read one tenant's alerts of a past window again, store every version through the
//! same path as the fetch (so nothing is stored twice), classify each with the same logic
//! (decisions recorded), count the decisions, and hand incidents on to the ticket step — only
//! those whose version is younger than `max_ticket_age` (default 7 days), unless that limit
//! is lifted. The fetch cursor is never moved.
//!
//! The window is on `lastUpdateDateTime`, like the fetch's: Graph serves each alert's newest
//! version only, so an alert last updated at or after `until` is not in `[since, until)` —
//! leave `until` out (read up to now) to be sure of every alert touched since `since`. A
//! ticket's age is the version's age (now − its `lastUpdateDateTime`): a backfill tickets what
//! the pipeline would have ticketed had it seen that version within the limit, and never
//! mails a customer about something that happened long ago.
//!
//! Idempotent: a version already stored is not stored again, and an incident version already
//! on its ticket is not handed on again, so a second backfill of the same window makes no
//! ticket and no response. Each version's decision is recorded last, after its ticket
//! message: that record is what tells the regular fetch the version was handed on (see
//! `steps::fetch`), so the fetch neither classifies it a second time nor tickets an old one
//! the backfill held back, and a backfill that stops between the two leaves the version for
//! the next run (or fetch) to hand on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::alert::{Alert, Product};
use crate::domain::classify::DecisionKind;
use crate::domain::tenant::Tenant;
use crate::messages::AlertRef;
use crate::ports::{AlertSource, FetchedItem};

/// How far back a backfill may start. Graph's alerts_v2 retention is not in the API facts;
/// Microsoft documents Defender XDR's data retention as 180 days (Defender for Endpoint,
/// Identity and Cloud Apps; Office 365 alert metadata 90 days, Sentinel by workspace). A
/// window starting earlier would read nothing for its oldest part and report it as "no
/// alerts", so it is refused instead of run.
pub const GRAPH_RETENTION_DAYS: i64 = 180;

/// Incidents older than this are classified and counted but not ticketed (default).
pub const DEFAULT_MAX_TICKET_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One page of a windowed read.
#[derive(Debug, Clone, Default)]
pub struct AlertPage {
    pub items: Vec<FetchedItem>,
    /// Where the next page is (Graph's nextLink); `None` on the last page.
    pub next: Option<String>,
    /// How many alerts the whole read has, when the source says (`@odata.count`).
    pub total: Option<u64>,
}

/// Alerts of one product with `since ≤ lastUpdateDateTime < until` (no upper bound when
/// `until` is `None`), one page per call; `next` is the previous page's `next`.
#[async_trait]
pub trait AlertWindow: Send + Sync {
    async fn page(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        next: Option<&str>,
    ) -> anyhow::Result<AlertPage>;
}

/// Any `AlertSource` as a window of one page (its `fetch`, cut at `until`): for sources
/// without paging of their own, such as test fakes.
pub struct WholeFetch(pub Arc<dyn AlertSource>);

#[async_trait]
impl AlertWindow for WholeFetch {
    async fn page(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        _next: Option<&str>,
    ) -> anyhow::Result<AlertPage> {
        let items: Vec<FetchedItem> = self
            .0
            .fetch(tenant, product, since)
            .await?
            .into_iter()
            .filter(|i| match (i, until) {
                (FetchedItem::Alert(a), Some(u)) => a.last_update < u,
                _ => true,
            })
            .collect();
        Ok(AlertPage {
            total: Some(
                items
                    .iter()
                    .filter(|i| matches!(i, FetchedItem::Alert(_)))
                    .count() as u64,
            ),
            items,
            next: None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub tenant: String,
    pub since: DateTime<Utc>,
    /// `None`: up to now.
    pub until: Option<DateTime<Utc>>,
    /// `None`: every product the tenant subscribes to (as of now).
    pub product: Option<Product>,
    /// `None`: every incident is ticketed, whatever its age (`--tickets`).
    pub max_ticket_age: Option<Duration>,
}

/// A request the backfill refuses before reading anything (the CLI exits 2 on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(msg: String) -> anyhow::Result<T> {
    Err(anyhow::Error::new(Refused(msg)))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pages: u64,
    /// Alerts read (each alert's newest version in the window).
    pub alerts: u64,
    /// Items that could not be read as alerts (recorded with their raw text).
    pub malformed: u64,
    /// Versions this run stored (the others were stored before).
    pub new_versions: u64,
    pub out_of_scope: u64,
    pub monitored: u64,
    pub incident: u64,
    /// Out of scope because the alert claims another Azure tenant (logged as errors).
    pub tenant_mismatch: u64,
    /// Incident versions handed on to the ticket step.
    pub tickets_queued: u64,
    /// Incident versions already on their ticket (nothing to do).
    pub already_ticketed: u64,
    /// Incident versions older than the ticket age limit: counted, not ticketed.
    pub held_too_old: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.pages += o.pages;
        self.alerts += o.alerts;
        self.malformed += o.malformed;
        self.new_versions += o.new_versions;
        self.out_of_scope += o.out_of_scope;
        self.monitored += o.monitored;
        self.incident += o.incident;
        self.tenant_mismatch += o.tenant_mismatch;
        self.tickets_queued += o.tickets_queued;
        self.already_ticketed += o.already_ticketed;
        self.held_too_old += o.held_too_old;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillOutcome {
    pub tenant: String,
    pub since: DateTime<Utc>,
    /// The upper bound asked for; `None` = up to the time of the run (`ran_at`).
    pub until: Option<DateTime<Utc>>,
    pub ran_at: DateTime<Utc>,
    pub products: Vec<Product>,
    /// `None`: no age limit.
    pub ticket_max_age_hours: Option<u64>,
    pub totals: Counts,
    pub by_product: BTreeMap<Product, Counts>,
}

/// After each page: where the read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub product: Product,
    /// Pages and items (alerts, and items that could not be read as alerts) read so far,
    /// all products.
    pub pages: u64,
    pub items: u64,
    /// Items expected so far: the totals the source gave for the products started (`None`
    /// while it gave none).
    pub expected: Option<u64>,
}

/// Checks the request against the tenant and the clock; the tenant as of now and its
/// products to read.
pub async fn check(deps: &Deps, req: &BackfillRequest) -> anyhow::Result<(Tenant, Vec<Product>)> {
    let now = deps.clock.now();
    let Some(tenant) = deps.store.get_tenant(&req.tenant).await? else {
        return refuse(format!(
            "tenant {:?} is not registered (add it with `mss tenant put`)",
            req.tenant
        ));
    };
    let tenant = tenant.at(now);
    if let Some(at) = tenant.disabled_at() {
        return refuse(format!(
            "tenant {} is disabled (since {at}); `mss tenant enable` resumes it",
            tenant.id
        ));
    }
    if req.since >= now {
        return refuse(format!(
            "--since {} is in the future (now is {})",
            req.since.to_rfc3339(),
            now.to_rfc3339()
        ));
    }
    if let Some(u) = req.until {
        if u <= req.since {
            return refuse(format!(
                "--since {} is not before --until {}",
                req.since.to_rfc3339(),
                u.to_rfc3339()
            ));
        }
        if u > now {
            return refuse(format!(
                "--until {} is in the future; leave it out to read up to now",
                u.to_rfc3339()
            ));
        }
    }
    let oldest = now - chrono::Duration::days(GRAPH_RETENTION_DAYS);
    if req.since < oldest {
        return refuse(format!(
            "--since {} is more than {GRAPH_RETENTION_DAYS} days ago: Microsoft keeps Defender alerts for {GRAPH_RETENTION_DAYS} days, so the start of the window could not be read (earliest: {})",
            req.since.to_rfc3339(),
            oldest.to_rfc3339()
        ));
    }
    let products = match req.product {
        Some(p) if !tenant.subscribes(p) => {
            return refuse(format!(
                "tenant {} does not subscribe to {p} (it has: {})",
                tenant.id,
                tenant
                    .products
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        }
        Some(p) => vec![p],
        None => tenant.products.clone(),
    };
    Ok((tenant, products))
}

/// Runs the backfill: products one after the other, each page stored and classified before
/// the next is read; `progress` is called after every page.
pub async fn run(
    deps: &Deps,
    source: &dyn AlertWindow,
    req: &BackfillRequest,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> anyhow::Result<BackfillOutcome> {
    let (tenant, products) = check(deps, req).await?;
    let ran_at = deps.clock.now();
    let cutoff = match req.max_ticket_age {
        Some(age) => Some(ran_at - chrono::Duration::from_std(age)?),
        None => None,
    };
    let mut by_product = BTreeMap::new();
    let mut totals = Counts::default();
    let mut expected: Option<u64> = None;
    for &product in &products {
        let mut c = Counts::default();
        let mut next: Option<String> = None;
        loop {
            let page = source
                .page(&tenant, product, req.since, req.until, next.as_deref())
                .await
                .map_err(|e| {
                    e.context(format!(
                        "backfill of {} {product}: reading page {}",
                        tenant.id,
                        c.pages + 1
                    ))
                })?;
            if c.pages == 0 {
                if let Some(t) = page.total {
                    expected = Some(expected.unwrap_or(0) + t);
                }
            }
            c.pages += 1;
            for item in page.items {
                handle_item(deps, &tenant, product, item, cutoff, &mut c).await?;
            }
            progress(&Progress {
                product,
                pages: totals.pages + c.pages,
                items: totals.alerts + totals.malformed + c.alerts + c.malformed,
                expected,
            });
            match page.next {
                Some(n) if c.pages < 100_000 => next = Some(n),
                Some(_) => anyhow::bail!(
                    "backfill of {} {product}: more than 100,000 pages; stopping",
                    tenant.id
                ),
                None => break,
            }
        }
        tracing::info!(
            tenant = %tenant.id, product = %product, pages = c.pages, alerts = c.alerts,
            incidents = c.incident, tickets_queued = c.tickets_queued, "backfill read a product"
        );
        totals.add(&c);
        by_product.insert(product, c);
    }
    Ok(BackfillOutcome {
        tenant: tenant.id.clone(),
        since: req.since,
        until: req.until,
        ran_at,
        products,
        ticket_max_age_hours: req.max_ticket_age.map(|d| d.as_secs() / 3600),
        totals,
        by_product,
    })
}

async fn handle_item(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    item: FetchedItem,
    cutoff: Option<DateTime<Utc>>,
    c: &mut Counts,
) -> anyhow::Result<()> {
    let a = match item {
        FetchedItem::Alert(a) => a,
        FetchedItem::Malformed { raw, reason } => {
            tracing::warn!(tenant = %tenant.id, product = %product, reason = ?reason, "malformed alert recorded (backfill)");
            deps.store
                .record_malformed(&tenant.id, product, &raw, &reason, deps.clock.now())
                .await?;
            c.malformed += 1;
            return Ok(());
        }
    };
    c.alerts += 1;
    if deps
        .store
        .put_alert_version(&tenant.id, product, &a)
        .await?
    {
        c.new_versions += 1;
    }
    let decision = super::classify::judge(deps, tenant, &a).await?;
    if decision.tenant_mismatch {
        c.tenant_mismatch += 1;
    }
    match decision.kind {
        DecisionKind::OutOfScope => c.out_of_scope += 1,
        DecisionKind::Monitored => c.monitored += 1,
        DecisionKind::Incident => {
            c.incident += 1;
            let msg = AlertRef::new(&tenant.id, &a.id, a.last_update);
            if cutoff.is_some_and(|cut| a.last_update < cut) {
                c.held_too_old += 1;
            } else if on_ticket(deps, tenant, &a).await? {
                c.already_ticketed += 1;
            } else {
                super::classify::queue_ticket(deps, &msg).await?;
                c.tickets_queued += 1;
            }
        }
    }
    // Classified here (and ticketed where due): recorded last, so the regular fetch does
    // not hand it on again.
    super::classify::record(deps, tenant, &a, &decision).await?;
    Ok(())
}

/// Whether this version is already on its incident's ticket: the version the ticket was
/// made from, or one applied to it since.
async fn on_ticket(deps: &Deps, tenant: &Tenant, a: &Alert) -> anyhow::Result<bool> {
    let key = a.incident_key();
    let Some(rec) = deps.store.get_incident(&tenant.id, &key).await? else {
        return Ok(false);
    };
    if rec.ticket_id.is_none() {
        return Ok(false);
    }
    if rec.creator_alert == a.id && rec.creator_version == a.last_update {
        return Ok(true);
    }
    Ok(deps
        .store
        .applied_versions(&tenant.id, &key)
        .await?
        .iter()
        .any(|v| v.alert_id == a.id && v.last_update == a.last_update && v.done))
}
