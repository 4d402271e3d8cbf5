//! Fetch: Graph → store → classify queue, then (and only then) the cursor moves. Each
//! outcome of the alert source is recorded for ingest health (`health`).

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::domain::alert::Product;
use crate::messages::{AlertRef, QueueName};
use crate::ports::FetchedItem;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FetchOutcome {
    pub tenant: String,
    pub product: String,
    pub fetched: usize,
    pub new_versions: usize,
    pub malformed: usize,
    pub cursor: Option<DateTime<Utc>>,
    /// Set when this fetch ended an outbreak of failures (`health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::HealthEvent>,
}

/// One tenant × product. Stores every new alert version, hands each on once, records
/// malformed items with their raw text, and advances the cursor last: a crash anywhere
/// before that means the next cycle fetches the same window again, and the store's
/// (id, lastUpdateDateTime) key makes that harmless.
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
    if !tenant.subscribes(product) {
        return Err(anyhow!(
            "tenant {tenant_id} does not subscribe to {product}"
        ));
    }
    let now = deps.clock.now();
    let cursor = deps.store.get_cursor(&tenant.id, product).await?;
    let since = match cursor {
        Some(c) => c - chrono::Duration::from_std(deps.settings.overlap)?,
        None => now - chrono::Duration::from_std(deps.settings.initial_lookback)?,
    };
    // Ingest health counts only the alert source's failures (Graph, its token); the store's
    // and the queue's are the service's own (the Errors alarm).
    let items = match deps.alerts.fetch(&tenant, product, since).await {
        Ok(items) => items,
        Err(e) => {
            super::health::record_failure(deps, &tenant, product, &e).await;
            return Err(e);
        }
    };
    let mut out = FetchOutcome {
        tenant: tenant.id.clone(),
        product: product.to_string(),
        fetched: items.len(),
        ..Default::default()
    };
    let mut newest: Option<DateTime<Utc>> = None;
    let mut to_send = Vec::new();
    for item in items {
        match item {
            FetchedItem::Alert(a) => {
                newest = newest.max(Some(a.last_update));
                if deps
                    .store
                    .put_alert_version(&tenant.id, product, &a)
                    .await?
                {
                    to_send.push(AlertRef::new(&tenant.id, &a.id, a.last_update));
                }
            }
            FetchedItem::Malformed { raw, reason } => {
                tracing::warn!(tenant = %tenant.id, product = %product, reason = ?reason, "malformed alert recorded");
                deps.store
                    .record_malformed(&tenant.id, product, &raw, &reason, now)
                    .await?;
                out.malformed += 1;
            }
        }
    }
    // Enqueue in batches of ten (SQS's SendMessageBatch limit), then mark each version
    // queued. A crash or a queue failure in between leaves versions stored but unmarked:
    // the next fetch (whose window still covers them, the cursor not having moved) hands
    // them on again. Duplicates are harmless downstream; a lost alert is not.
    for chunk in to_send.chunks(10) {
        deps.queue.send_batch(QueueName::Classify, chunk).await?;
        for m in chunk {
            deps.store
                .mark_queued(&m.tenant, &m.alert_id, m.last_update)
                .await?;
        }
    }
    out.new_versions = to_send.len();
    // The cursor follows the data (newest lastUpdateDateTime seen), and on a quiet tenant
    // moves to `now − overlap`: anything stamped before that was visible to this query as
    // long as Graph indexes within the overlap, and the next window still reaches back.
    let overlap = chrono::Duration::from_std(deps.settings.overlap)?;
    let target = newest
        .map(|n| n.min(now))
        .unwrap_or(now - overlap)
        .max(now - overlap);
    deps.store
        .advance_cursor(&tenant.id, product, target)
        .await?;
    out.cursor = deps.store.get_cursor(&tenant.id, product).await?;
    out.health = super::health::record_success(deps, &tenant, product).await;
    Ok(out)
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
        .map(|t| t.at(now))
        .collect();
    // Bounded: Graph allows 150 requests/min per tenant, but the process's sockets, the
    // store's write capacity and Lambda's memory do not scale with the tenant count.
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(
        deps.settings.fetch_concurrency.max(1),
    ));
    let mut set = tokio::task::JoinSet::new();
    for t in tenants {
        for p in t.products.clone() {
            let d = deps.clone();
            let id = t.id.clone();
            let limit = limit.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                run(&d, &id, p)
                    .await
                    .map_err(|e| (id.clone(), p.to_string(), format!("{e:#}")))
            });
        }
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| anyhow!("fetch task failed: {e}"))?);
    }
    Ok(out)
}
