//! R-INGEST-2: an alert stored by a fetch whose enqueue failed (queue outage, crash) is
//! handed on by the next fetch — never skipped as "already stored".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::{Alert, Product};
use shared::domain::tenant::Tenant;
use shared::messages::{AlertRef, QueueName};
use shared::ports::{
    AlertSource, DeadLetter, FetchedItem, ManualClock, Queue, Received, Store, Tickets,
};
use shared::steps::{fetch, Deps};

struct Source;

#[async_trait]
impl AlertSource for Source {
    async fn fetch(
        &self,
        _: &Tenant,
        _: Product,
        _: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        Ok(vec![FetchedItem::Alert(Box::new(
            Alert::from_value(
                json!({"id": "aa1", "lastUpdateDateTime": "2026-11-02T00:10:00Z",
                "serviceSource": "microsoftDefenderForIdentity", "severity": "high"}),
            )
            .unwrap(),
        ))])
    }
}

/// The embedded queue, but `send_batch` fails while `down` is set.
struct FlakyQueue {
    inner: Arc<SqliteStore>,
    down: AtomicBool,
}

#[async_trait]
impl Queue for FlakyQueue {
    async fn send_batch(&self, q: QueueName, msgs: &[AlertRef]) -> anyhow::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            anyhow::bail!("queue unavailable");
        }
        self.inner.send_batch(q, msgs).await
    }
    async fn receive(&self, q: QueueName, max: usize) -> anyhow::Result<Vec<Received>> {
        self.inner.receive(q, max).await
    }
    async fn ack(&self, q: QueueName, h: &str) -> anyhow::Result<()> {
        self.inner.ack(q, h).await
    }
    async fn nack(&self, q: QueueName, h: &str, e: &str) -> anyhow::Result<()> {
        self.inner.nack(q, h, e).await
    }
    async fn depth(&self, q: QueueName) -> anyhow::Result<(u64, u64)> {
        self.inner.depth(q).await
    }
    async fn send_delayed(
        &self,
        q: QueueName,
        t: &str,
        b: &str,
        d: std::time::Duration,
    ) -> anyhow::Result<()> {
        self.inner.send_delayed(q, t, b, d).await
    }
    async fn dead_letters(&self, q: QueueName, max: usize) -> anyhow::Result<Vec<DeadLetter>> {
        self.inner.dead_letters(q, max).await
    }
    async fn redrive(&self, q: QueueName) -> anyhow::Result<u64> {
        self.inner.redrive(q).await
    }
}

struct NoTickets;

#[async_trait]
impl Tickets for NoTickets {
    async fn find_by_ext_id(&self, _: &str) -> anyhow::Result<Option<String>> {
        anyhow::bail!("not used")
    }
    async fn create(&self, _: &shared::ports::NewTicket) -> anyhow::Result<String> {
        anyhow::bail!("not used")
    }
    async fn update(&self, _: &str, _: &shared::ports::TicketUpdate) -> anyhow::Result<()> {
        anyhow::bail!("not used")
    }
    async fn add_response(&self, _: &str, _: &str, _: &str) -> anyhow::Result<()> {
        anyhow::bail!("not used")
    }
    async fn has_response(&self, _: &str, _: &str) -> anyhow::Result<bool> {
        anyhow::bail!("not used")
    }
}

#[tokio::test]
async fn a_failed_enqueue_is_retried_by_the_next_fetch() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let queue = Arc::new(FlakyQueue {
        inner: store.clone(),
        down: AtomicBool::new(true),
    });
    store
        .put_tenant(&Tenant::from_toml("id = \"t1\"\nname = \"テスト\"\nazure_tenant_id = \"11111111-2222-3333-4444-555555555555\"\nproducts = [\"mdi\"]\n[mdi]\n").unwrap())
        .await
        .unwrap();
    let deps = Deps {
        store: store.clone(),
        queue: queue.clone(),
        alerts: Arc::new(Source),
        tickets: Arc::new(NoTickets),
        clock: ManualClock::new("2026-11-02T00:15:00Z".parse().unwrap()),
        settings: Default::default(),
        respond: None,
        investigate: None,
    };
    // The queue is down: the alert is stored, the fetch fails, the cursor stays.
    assert!(fetch::run(&deps, "t1", Product::Mdi).await.is_err());
    assert_eq!(store.get_cursor("t1", Product::Mdi).await.unwrap(), None);
    assert_eq!(store.depth(QueueName::Classify).await.unwrap(), (0, 0));
    // It is back: the same alert is handed on now, and only once after that.
    queue.down.store(false, Ordering::SeqCst);
    let out = fetch::run(&deps, "t1", Product::Mdi).await.unwrap();
    assert_eq!(out.new_versions, 1);
    assert_eq!(
        fetch::run(&deps, "t1", Product::Mdi)
            .await
            .unwrap()
            .new_versions,
        0
    );
    assert_eq!(store.depth(QueueName::Classify).await.unwrap(), (1, 0));
}
