//! Fetch: Graph → store, each new version classified here → incidents to the ticket queue,
//! then (and only then) the cursor moves. Each outcome of the alert source is recorded for
//! ingest health (`health`).
//!
//! Classification is a pure function of the tenant (loaded already) and the alert, so it
//! runs in-line instead of behind a queue: per fetch, one batched read of the alerts'
//! current decisions, one batched write of the new versions, the ticket messages, one
//! batched write of the decisions — a handful of round trips for a page of alerts, not six
//! per version. The classify step and its queue remain for operator reruns.
//!
//! **What marks a version as handed on** is its alert's decision: recorded for version V, it
//! says V (and every earlier version) went through classification and, if an incident, to
//! the ticket queue. The writes come in this order, each finished before the next starts:
//!
//! 1. the new versions (immutable by (id, lastUpdateDateTime): writing one again is harmless);
//! 2. the ticket messages of the incident versions;
//! 3. the decisions;
//! 4. the cursor (when it moves by `Settings::cursor_step` or more: a cursor behind only
//!    widens the next window).
//!
//! A decision is recorded only once its versions are stored and its incident versions sent,
//! so a recorded decision never hides an unsent ticket; and a crash (or a failure) anywhere
//! leaves every alert whose decision was not recorded yet with versions newer than its
//! decision, and the cursor where it was. The next fetch reads the same window, finds those
//! versions, and does them again — the same classification (the same pure function of the
//! same inputs), the versions written again, the ticket messages sent again (the ticket step
//! is idempotent: duplicates are harmless, a lost incident is not).
//!
//! **Never lowering, with racing writers.** Another fetch of the same tenant × product, a
//! backfill or a rerun may record a decision for the same alert between this fetch's read
//! and its write. Decisions are therefore never written blindly: the store checks, at the
//! moment of writing, that the stored decision is neither of a higher kind nor for a newer
//! version (`Store::put_decisions`; DynamoDB: conditional updates in transactions, since a
//! BatchWriteItem cannot carry a condition). A refused decision was computed from a stale
//! read: its alert is settled at once from the stored winner — this fetch's versions decided
//! again after it, or the winner's newer version decided again after this fetch's higher
//! decision — handing on what is an incident now and recording the result, until the store
//! holds a decision at least as high for this fetch's newest version or a newer one. Nothing
//! is left for a later fetch, whose window might no longer reach back to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{classify, Decision, DecisionKind};
use crate::domain::tenant::Tenant;
use crate::messages::{AlertRef, QueueName};
use crate::ports::{FetchedItem, NewDecision, StoredDecision};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FetchOutcome {
    pub tenant: String,
    pub product: String,
    pub fetched: usize,
    /// Versions classified and handed on by this fetch (the others were before).
    pub new_versions: usize,
    /// Of those, incident versions sent to the ticket step.
    #[serde(default)]
    pub incidents: usize,
    pub malformed: usize,
    pub cursor: Option<DateTime<Utc>>,
    /// Set when this fetch ended an outbreak of failures (`health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::HealthEvent>,
}

/// Fetch starts read together: 50 cursors and 50 health documents are the 100 keys one
/// DynamoDB BatchGetItem takes.
const START_READ_GROUP: usize = 50;
/// Groups read at once: enough that the reads stay ahead of the fetches.
const START_READS_IN_FLIGHT: usize = 4;

/// One tenant × product, by tenant id (manual runs, reruns). See the module's notes on
/// what a crash at any point leaves behind.
pub async fn run(deps: &Deps, tenant_id: &str, product: Product) -> anyhow::Result<FetchOutcome> {
    let tenant = deps
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or_else(|| anyhow!("tenant {tenant_id} is not registered"))?
        .at(deps.clock.now());
    if let Some(at) = tenant.disabled_at() {
        return Err(anyhow!(
            "tenant {tenant_id} is disabled (since {at}); `mss tenant enable` resumes it"
        ));
    }
    run_tenant(deps, &tenant, product, None).await
}

/// Where a fetch starts: its cursor and its ingest-health state.
type Start = (Option<DateTime<Utc>>, super::health::HealthState);

/// One tenant × product of a tenant already loaded (as of now); `start` when it was read
/// already (with others, [`run_all`]), read here if not.
async fn run_tenant(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    start: Option<Start>,
) -> anyhow::Result<FetchOutcome> {
    if !tenant.subscribes(product) {
        return Err(anyhow!(
            "tenant {} does not subscribe to {product}",
            tenant.id
        ));
    }
    let now = deps.clock.now();
    let (cursor, health) = match start {
        Some(s) => s,
        None => super::health::cursor_and_state(deps, &tenant.id, product).await?,
    };
    let since = match cursor {
        Some(c) => c - chrono::Duration::from_std(deps.settings.overlap)?,
        None => now - chrono::Duration::from_std(deps.settings.initial_lookback)?,
    };
    deps.handed_on.forget_before(&tenant.id, product, since);
    let mut out = FetchOutcome {
        tenant: tenant.id.clone(),
        product: product.to_string(),
        ..Default::default()
    };
    // Page by page: each is stored, classified and handed on before the next is asked for,
    // so a fetch holds one page, not its window. The cursor moves only after the last page:
    // a failure part-way leaves it where it was, and the next fetch reads the window again
    // (the pages already ingested are then known, and left alone).
    let mut newest: Option<DateTime<Utc>> = None;
    let mut next: Option<String> = None;
    let mut pages = 0u32;
    loop {
        pages += 1;
        if pages > crate::adapters::graph::MAX_PAGES {
            return Err(anyhow!(
                "alerts of tenant {} / {product}: more than {} pages; stopping",
                tenant.id,
                crate::adapters::graph::MAX_PAGES
            ));
        }
        // Ingest health counts only the alert source's failures (Graph, its token); the
        // store's and the queue's are the service's own (the Errors alarm).
        let page = match deps
            .alerts
            .fetch_page(tenant, product, since, next.as_deref())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                super::health::record_failure(deps, tenant, product, &e).await;
                return Err(e);
            }
        };
        out.fetched += page.items.len();
        let mut alerts: Vec<Box<Alert>> = Vec::with_capacity(page.items.len());
        for item in page.items {
            match item {
                FetchedItem::Alert(a) => alerts.push(a),
                FetchedItem::Malformed { raw, reason } => {
                    tracing::warn!(tenant = %tenant.id, product = %product, reason = ?reason, "malformed alert recorded");
                    deps.store
                        .record_malformed(&tenant.id, product, &raw, &reason, now)
                        .await?;
                    out.malformed += 1;
                }
            }
        }
        newest = newest.max(alerts.iter().map(|a| a.last_update).max());
        let refs = deps.handed_on.unknown(&tenant.id, product, &alerts);
        let done = ingest(deps, tenant, product, &refs).await?;
        deps.handed_on.add(&tenant.id, product, &refs);
        out.new_versions += done.new_versions;
        out.incidents += done.incidents;
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    // The cursor follows the data (newest lastUpdateDateTime seen), and on a quiet tenant
    // moves to `now − overlap`: anything stamped before that was visible to this query as
    // long as Graph indexes within the overlap, and the next window still reaches back.
    let overlap = chrono::Duration::from_std(deps.settings.overlap)?;
    let target = newest
        .map(|n| n.min(now))
        .unwrap_or(now - overlap)
        .max(now - overlap);
    // Written only when it moves by `cursor_step` or more: until then the next window
    // starts up to that much earlier than it could, which re-reads what it already knows
    // (left alone, at one decision read per alert of the page) and can lose nothing. A
    // cursor at or past the target is not written at all (the write would be refused).
    let step = chrono::Duration::from_std(deps.settings.cursor_step)?;
    out.cursor = match cursor {
        Some(c) if target - c < step => Some(c),
        _ => {
            deps.store
                .advance_cursor(&tenant.id, product, target)
                .await?;
            // The cursor only moves forward; what it is now follows without reading it
            // back (a concurrent fetch may have moved it further: the next read shows it).
            Some(cursor.map_or(target, |c| c.max(target)))
        }
    };
    out.health = super::health::record_success(deps, tenant, product, health).await;
    Ok(out)
}

/// The alert versions this process's fetches have ingested, per tenant × product, while
/// they can still come back in a window. Windows overlap (the overlap, read twice, and the
/// cursor step): each version is served by some twenty fetches, and each of those read its
/// alert's decision again only to leave it alone, most of the fetch's DynamoDB reads. A
/// version in here was stored, and its alert's decision covers it (handed on, or knowingly
/// not); both stay true, because versions are immutable and decisions never go down, so it
/// is skipped without a read. Only a successful ingest adds to it; a process that restarts
/// (a new Lambda container, `mss chaos`'s restarts) starts empty and reads as before.
#[derive(Clone, Default)]
pub struct HandedOn(Arc<Mutex<Held>>);

/// Alert id → its versions.
type Versions = HashMap<String, Vec<DateTime<Utc>>>;

#[derive(Default)]
struct Held {
    /// (tenant, product) → its alerts' versions ingested.
    by_fetch: HashMap<(String, Product), Versions>,
    versions: usize,
}

impl HandedOn {
    /// More than this (some 15 MB, at an estimated 150 bytes a version) and everything is
    /// forgotten: a burst costs its reads again, not the process's memory. A thousand tenants
    /// at a thousand versions a day hold some 20,000 in their windows.
    const MAX_VERSIONS: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Versions older than a window's start are never served by it again.
    fn forget_before(&self, tenant: &str, product: Product, since: DateTime<Utc>) {
        let mut held = self.lock();
        let Held { by_fetch, versions } = &mut *held;
        if let Some(seen) = by_fetch.get_mut(&(tenant.to_string(), product)) {
            seen.retain(|_, at| {
                let before = at.len();
                at.retain(|t| *t >= since);
                *versions -= before - at.len();
                !at.is_empty()
            });
        }
    }

    /// The versions of a page not ingested by this process yet.
    fn unknown<'a>(
        &self,
        tenant: &str,
        product: Product,
        page: &'a [Box<Alert>],
    ) -> Vec<&'a Alert> {
        let held = self.lock();
        let seen = held.by_fetch.get(&(tenant.to_string(), product));
        page.iter()
            .map(|a| a.as_ref())
            .filter(|a| {
                !seen
                    .and_then(|s| s.get(&a.id))
                    .is_some_and(|v| v.contains(&a.last_update))
            })
            .collect()
    }

    fn add(&self, tenant: &str, product: Product, ingested: &[&Alert]) {
        if ingested.is_empty() {
            return;
        }
        let mut held = self.lock();
        if held.versions + ingested.len() > Self::MAX_VERSIONS {
            *held = Held::default();
        }
        let Held { by_fetch, versions } = &mut *held;
        let seen = by_fetch.entry((tenant.to_string(), product)).or_default();
        for a in ingested {
            let at = seen.entry(a.id.clone()).or_default();
            if !at.contains(&a.last_update) {
                at.push(a.last_update);
                *versions += 1;
            }
        }
    }

    /// Versions held, all tenants (benchmarks, tests).
    pub fn len(&self) -> usize {
        self.lock().versions
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`ingest`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Versions classified and handed on (not handed on before).
    pub new_versions: usize,
    /// Incident versions sent to the ticket queue.
    pub incidents: usize,
}

/// One alert's versions of this batch, in lastUpdateDateTime order, as decided.
struct Pending<'a> {
    versions: Vec<&'a Alert>,
    /// The decision of each version in `versions`, once made.
    decided: Vec<Decision>,
}

/// Stores, classifies and hands on a batch of one tenant × product's alert versions (a
/// fetch's pages): the store writes and their order are the module's. Versions already
/// handed on are left alone; a version older than the one its alert's decision names is
/// stored (so every version Graph served is kept) but not handed on: the ticket already
/// shows a newer one.
pub async fn ingest(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    alerts: &[&Alert],
) -> anyhow::Result<Ingested> {
    // Each version once, each alert's versions in order.
    let mut by_alert: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        by_alert.entry(a.id.as_str()).or_default().push(a);
    }
    if by_alert.is_empty() {
        return Ok(Ingested::default());
    }
    for vs in by_alert.values_mut() {
        vs.sort_by_key(|a| a.last_update);
        vs.dedup_by_key(|a| a.last_update);
    }
    // 1. What is known: each alert's current decision, in one read.
    let ids: Vec<String> = by_alert.keys().map(|k| k.to_string()).collect();
    let known = deps.store.get_decisions(&tenant.id, &ids).await?;

    // 2. Classify what is new, each alert's versions in order from its previous decision.
    let mut to_store: Vec<&Alert> = Vec::new();
    let mut pending: BTreeMap<&str, Pending> = BTreeMap::new();
    for (id, vs) in &by_alert {
        let prev = known.get(*id);
        let handed_on = prev.map(|d| d.last_update);
        let mut new = Vec::new();
        for v in vs {
            match handed_on {
                Some(at) if v.last_update < at => to_store.push(v),
                Some(at) if v.last_update == at => {}
                _ => new.push(*v),
            }
        }
        if new.is_empty() {
            continue;
        }
        to_store.extend(new.iter().copied());
        let decided = decide_chain(tenant, &new, prev);
        pending.insert(
            id,
            Pending {
                versions: new,
                decided,
            },
        );
    }
    let mut done = Ingested::default();
    if to_store.is_empty() {
        return Ok(done);
    }

    // 3. The versions, then the incidents to the ticket queue, then the decisions.
    deps.store
        .put_alert_versions(&tenant.id, product, &to_store)
        .await?;
    let tickets: Vec<AlertRef> = pending
        .values()
        .flat_map(|p| p.versions.iter().zip(&p.decided))
        .filter(|(_, d)| handed_to_ticket(d))
        .map(|(v, _)| AlertRef::new(&tenant.id, &v.id, v.last_update))
        .collect();
    send_tickets(deps, &tickets).await?;
    let records: BTreeMap<&str, NewDecision> = pending
        .iter()
        .filter_map(|(id, p)| Some((*id, record_of(id, p, known.get(*id))?)))
        .collect();
    let batch: Vec<NewDecision> = records.values().cloned().collect();
    let lost = if batch.is_empty() {
        Vec::new()
    } else {
        deps.store.put_decisions(&tenant.id, &batch).await?
    };
    done.new_versions = pending.values().map(|p| p.versions.len()).sum();
    done.incidents = tickets.len();

    // A record refused because a concurrent writer's is higher or newer: settled now.
    for id in lost {
        let (Some(p), Some(mine)) = (pending.get(id.as_str()), records.get(id.as_str())) else {
            return Err(anyhow!(
                "the store refused a decision it was not given: {id:?}"
            ));
        };
        done.incidents += settle(deps, tenant, &p.versions, mine).await?;
    }
    Ok(done)
}

fn handed_to_ticket(d: &Decision) -> bool {
    d.kind == DecisionKind::Incident && !d.tenant_mismatch
}

/// Decides `versions` (one alert's, in order) from the alert's previous decision, each
/// version from the one before it, never below what was recorded before.
fn decide_chain(
    tenant: &Tenant,
    versions: &[&Alert],
    prev: Option<&StoredDecision>,
) -> Vec<Decision> {
    let mut kind = prev.map(|d| d.kind);
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let d = classify(tenant, v, kind);
        if d.tenant_mismatch {
            tracing::error!(
                tenant = %tenant.id, alert_id = ?v.id, alert_tenant = ?v.fields.tenant_id,
                "alert claims another Azure tenant; not ticketed — check the tenant's app registration"
            );
        }
        tracing::debug!(tenant = %tenant.id, alert_id = ?v.id, decision = d.kind.as_str(), "classified");
        kind = kind.max(Some(d.kind));
        out.push(d);
    }
    out
}

/// The record that says an alert's versions of this batch were handed on: its newest
/// version's decision, at that version — or, where that decision ranks below what was
/// recorded before (a version claiming another tenant is decided out of scope whatever came
/// before it), the higher earlier decision, moved to that version: the record keeps the
/// highest kind, and still marks the version as handed on.
fn record_of(id: &str, p: &Pending, prev: Option<&StoredDecision>) -> Option<NewDecision> {
    let mut best: Option<Decision> = prev.map(|d| Decision {
        kind: d.kind,
        product: d.product,
        reason: d.reason.clone(),
        tenant_mismatch: false,
    });
    for d in &p.decided {
        if best.as_ref().is_none_or(|b| d.kind >= b.kind) {
            best = Some(d.clone());
        }
    }
    Some(NewDecision {
        alert_id: id.to_string(),
        last_update: p.versions.last()?.last_update,
        decision: best?,
    })
}

/// Ticket messages, ten per request (SQS's SendMessageBatch limit).
async fn send_tickets(deps: &Deps, tickets: &[AlertRef]) -> anyhow::Result<()> {
    for chunk in tickets.chunks(10) {
        deps.queue.send_batch(QueueName::Ticket, chunk).await?;
    }
    Ok(())
}

/// The slow path, after the store refused `mine` (the record of this batch's `versions` of
/// one alert) because a concurrent writer recorded a higher kind or a newer version. Either
/// that writer decided a newer version without knowing this batch's higher decision — the
/// newer version is decided again after `mine` — or this batch decided from a stale previous
/// decision — its versions after the stored one are decided again from it. What is an
/// incident now is handed on, and the result recorded, until the store takes it or already
/// holds at least as much. Incident versions sent.
async fn settle(
    deps: &Deps,
    tenant: &Tenant,
    versions: &[&Alert],
    mine: &NewDecision,
) -> anyhow::Result<usize> {
    let id = mine.alert_id.as_str();
    let mut sent = 0;
    for _ in 0..5 {
        let stored = deps.store.get_decision(&tenant.id, id).await?;
        tracing::info!(tenant = %tenant.id, alert_id = ?id, "decision refused (a concurrent writer's won); deciding again");
        // The stored record is for a version at least as new as this batch's, decided lower:
        // that version, decided again after this batch's decision.
        let newer: Option<Alert> = match &stored {
            Some(d) if d.last_update >= mine.last_update => {
                if d.kind >= mine.decision.kind {
                    return Ok(sent);
                }
                Some(
                    deps.store
                        .get_alert_version(&tenant.id, id, d.last_update)
                        .await?
                        .ok_or_else(|| {
                            anyhow!(
                                "alert {id:?} version {} is decided but not stored",
                                d.last_update
                            )
                        })?,
                )
            }
            _ => None,
        };
        let (todo, prev): (Vec<&Alert>, Option<StoredDecision>) = match &newer {
            Some(v) => (
                vec![v],
                Some(StoredDecision {
                    kind: mine.decision.kind,
                    product: mine.decision.product,
                    reason: mine.decision.reason.clone(),
                    last_update: mine.last_update,
                }),
            ),
            None => (
                versions
                    .iter()
                    .copied()
                    .filter(|v| {
                        stored
                            .as_ref()
                            .is_none_or(|d| v.last_update > d.last_update)
                    })
                    .collect(),
                stored.clone(),
            ),
        };
        let p = Pending {
            decided: decide_chain(tenant, &todo, prev.as_ref()),
            versions: todo,
        };
        let tickets: Vec<AlertRef> = p
            .versions
            .iter()
            .zip(&p.decided)
            .filter(|(_, d)| handed_to_ticket(d))
            .map(|(v, _)| AlertRef::new(&tenant.id, &v.id, v.last_update))
            .collect();
        send_tickets(deps, &tickets).await?;
        sent += tickets.len();
        let Some(rec) = record_of(id, &p, prev.as_ref()) else {
            return Ok(sent);
        };
        if deps
            .store
            .put_decisions(&tenant.id, std::slice::from_ref(&rec))
            .await?
            .is_empty()
        {
            return Ok(sent);
        }
    }
    Err(anyhow!(
        "alert {id:?} of {}: its decision kept losing to concurrent writers; the next fetch tries again",
        tenant.id
    ))
}

/// Every subscribed product of every tenant. One failing tenant×product does not stop the
/// others; its error is returned alongside.
pub async fn run_all(
    deps: &Deps,
) -> anyhow::Result<Vec<Result<FetchOutcome, (String, String, String)>>> {
    let now = deps.clock.now();
    // A disabled tenant is not fetched at all; a product change not yet in effect is not.
    let tenants: Vec<_> = deps
        .store
        .list_tenants()
        .await?
        .into_iter()
        .filter(|t| t.disabled_at().is_none())
        .map(|t| std::sync::Arc::new(t.at(now)))
        .collect();
    // Bounded: Graph allows 150 requests/min per tenant, but the process's sockets, the
    // store's write capacity and Lambda's memory do not scale with the tenant count.
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(
        deps.settings.fetch_concurrency.max(1),
    ));
    // Where each fetch starts is read for a group at a time (one BatchGetItem on DynamoDB),
    // a few groups at once, and each group's fetches queue as soon as it is read: reading
    // them one by one was half of a quiet cycle's requests. A group whose read fails is not
    // lost: each of its fetches reads its own start, as a manual run does.
    let reads = std::sync::Arc::new(tokio::sync::Semaphore::new(START_READS_IN_FLIGHT));
    let pairs: Vec<_> = tenants
        .iter()
        .flat_map(|t| t.products.iter().map(move |&p| (t.clone(), p)))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for group in pairs.chunks(START_READ_GROUP) {
        let group = group.to_vec();
        let d = deps.clone();
        let limit = limit.clone();
        let reads = reads.clone();
        set.spawn(async move {
            let starts = {
                let _read = reads.acquire().await;
                let wanted: Vec<(&str, Product)> =
                    group.iter().map(|(t, p)| (t.id.as_str(), *p)).collect();
                super::health::cursors_and_states(&d, &wanted).await
            };
            let starts: Vec<Option<Start>> = match starts {
                Ok(v) => v.into_iter().map(Some).collect(),
                Err(e) => {
                    tracing::warn!(tenants = group.len(), error = %format!("{e:#}"), "fetch starts unreadable as a group; each fetch reads its own");
                    vec![None; group.len()]
                }
            };
            let mut fetches = tokio::task::JoinSet::new();
            for ((t, p), start) in group.into_iter().zip(starts) {
                let d = d.clone();
                let limit = limit.clone();
                fetches.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    // The tenant as listed: no second read of what this run has in hand.
                    run_tenant(&d, &t, p, start)
                        .await
                        .map_err(|e| (t.id.clone(), p.to_string(), format!("{e:#}")))
                });
            }
            let mut done = Vec::new();
            while let Some(r) = fetches.join_next().await {
                done.push(r);
            }
            done
        });
    }
    let mut out = Vec::new();
    while let Some(group) = set.join_next().await {
        for r in group.map_err(|e| anyhow!("fetch task failed: {e}"))? {
            out.push(r.map_err(|e| anyhow!("fetch task failed: {e}"))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, min: i64) -> Box<Alert> {
        let at = "2026-11-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + chrono::Duration::minutes(min);
        Box::new(
            Alert::from_value(serde_json::json!({
                "id": id, "lastUpdateDateTime": at.to_rfc3339(),
                "serviceSource": "microsoftDefenderForEndpoint", "severity": "high", "title": "x"
            }))
            .unwrap(),
        )
    }

    #[test]
    fn handed_on_is_per_tenant_and_product_forgets_what_no_window_serves_and_stays_bounded() {
        let h = HandedOn::default();
        let page = [alert("a", 1), alert("a", 2), alert("b", 3)];
        let refs: Vec<&Alert> = page.iter().map(|a| a.as_ref()).collect();
        h.add("t1", Product::Mde, &refs);
        h.add("t1", Product::Mde, &refs);
        assert_eq!(h.len(), 3, "each version once");
        assert!(h.unknown("t1", Product::Mde, &page).is_empty());
        assert_eq!(
            h.unknown("t2", Product::Mde, &page).len(),
            3,
            "another tenant"
        );
        assert_eq!(
            h.unknown("t1", Product::Mdi, &page).len(),
            3,
            "another product"
        );
        let newer = [alert("a", 4), alert("b", 3)];
        let unknown = h.unknown("t1", Product::Mde, &newer);
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].last_update, newer[0].last_update);

        h.forget_before("t1", Product::Mde, page[1].last_update);
        assert_eq!(h.len(), 2, "a's first version is older than the window");
        assert_eq!(h.unknown("t1", Product::Mde, &page).len(), 1);

        let many: Vec<Box<Alert>> = (0..HandedOn::MAX_VERSIONS as i64)
            .map(|i| alert(&format!("m{i}"), i))
            .collect();
        let refs: Vec<&Alert> = many.iter().map(|a| a.as_ref()).collect();
        h.add("t3", Product::Mde, &refs);
        assert_eq!(
            h.len(),
            HandedOn::MAX_VERSIONS,
            "over the bound: the rest forgotten"
        );
        assert_eq!(h.unknown("t1", Product::Mde, &page).len(), 3);
    }
}
