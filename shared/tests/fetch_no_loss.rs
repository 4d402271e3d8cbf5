//! R-INGEST-2 and issue 11's fetch path: an alert version Graph served is never lost and an
//! incident never goes unticketed, whatever stops the fetch — a queue outage, or a crash
//! between any two of its steps (versions written → ticket messages sent → decisions
//! recorded → cursor moved) — and a fetch whose decision loses a race to a concurrent writer
//! settles it at once, never lowering a decision.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use shared::adapters::sqlite::SqliteStore;
use shared::chaos::{Chaos, ChaosQueue, ChaosStore, Rates};
use shared::domain::alert::{Alert, Product};
use shared::domain::classify::{classify, Decision, DecisionKind};
use shared::domain::severity::Severity;
use shared::domain::tenant::Tenant;
use shared::messages::{AlertRef, QueueName};
use shared::ports::{
    ActionRecord, AlertSource, AppliedVersion, ApplyClaim, CursorDocKey, DeadLetter, FetchedItem,
    IncidentRecord, IncidentSummary, ManualClock, NewDecision, OnceState, PurgeCounts, Queue,
    Received, Store, StoredDecision, Tickets,
};
use shared::steps::{fetch, Deps};

const AZURE: &str = "11111111-2222-3333-4444-555555555555";
const GROUP: &str = "東京本社PC";

fn tenant() -> Tenant {
    Tenant::from_toml(&format!(
        "id = \"t1\"\nname = \"テスト\"\nazure_tenant_id = \"{AZURE}\"\nproducts = [\"mde\"]\n[mde]\ndevice_groups = [\"{GROUP}\"]\nincident_min_severity = \"high\"\n"
    ))
    .unwrap()
}

fn t0() -> DateTime<Utc> {
    "2026-11-02T00:00:00Z".parse().unwrap()
}

/// An MDE alert version `min` minutes after t0, of `group`, from `azure`.
fn mde(id: &str, min: i64, sev: &str, group: &str, azure: &str) -> Value {
    json!({"id": id, "lastUpdateDateTime": (t0() + Duration::minutes(min)).to_rfc3339(),
        "serviceSource": "microsoftDefenderForEndpoint", "severity": sev, "title": format!("Alert {id}"),
        "tenantId": azure, "incidentId": format!("9{id}"),
        "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": format!("dev-{id}"), "rbacGroupName": group}]})
}

fn ours(id: &str, min: i64, sev: &str) -> Value {
    mde(id, min, sev, GROUP, AZURE)
}

fn parse(v: &Value) -> Alert {
    Alert::from_value(v.clone()).unwrap()
}

/// Graph, serving whatever the test put in it.
struct Source(Mutex<Vec<Value>>);

impl Source {
    fn serve(&self, alerts: Vec<Value>) {
        *self.0.lock().unwrap() = alerts;
    }
}

#[async_trait]
impl AlertSource for Source {
    async fn fetch(
        &self,
        _: &Tenant,
        _: Product,
        _: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|v| FetchedItem::Alert(Box::new(parse(v))))
            .collect())
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

fn deps(store: Arc<dyn Store>, queue: Arc<dyn Queue>, source: Arc<Source>, now_min: i64) -> Deps {
    Deps {
        store,
        queue,
        alerts: source,
        tickets: Arc::new(NoTickets),
        clock: ManualClock::new(t0() + Duration::minutes(now_min)),
        settings: Default::default(),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    }
}

async fn new_store() -> Arc<SqliteStore> {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    store.put_tenant(&tenant()).await.unwrap();
    store
}

/// Every ticket message waiting, as (alert id, version); duplicates kept.
async fn ticket_messages(store: &SqliteStore) -> Vec<(String, DateTime<Utc>)> {
    let mut out = Vec::new();
    loop {
        let got = store.receive(QueueName::Ticket, 10).await.unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            let r = AlertRef::from_json(&m.body).unwrap();
            out.push((r.alert_id, r.last_update));
        }
    }
    out
}

/// Alert versions, as (id, lastUpdateDateTime).
type Versions = BTreeSet<(String, DateTime<Utc>)>;

/// The real classifier over every version of each alert, in order: each alert's decision,
/// and the incident versions (never a version claiming another tenant).
fn truth(versions: &[Value]) -> (BTreeMap<String, DecisionKind>, Versions) {
    let t = tenant();
    let mut by: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for v in versions {
        let a = parse(v);
        by.entry(a.id.clone()).or_default().push(a);
    }
    let mut kinds = BTreeMap::new();
    let mut incidents = BTreeSet::new();
    for (id, mut vs) in by {
        vs.sort_by_key(|a| a.last_update);
        vs.dedup_by_key(|a| a.last_update);
        let mut prev: Option<DecisionKind> = None;
        for a in &vs {
            let d = classify(&t, a, prev);
            if d.kind == DecisionKind::Incident && !d.tenant_mismatch {
                incidents.insert((id.clone(), a.last_update));
            }
            prev = prev.max(Some(d.kind));
        }
        kinds.insert(id, prev.unwrap());
    }
    (kinds, incidents)
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

#[tokio::test]
async fn a_failed_enqueue_is_retried_by_the_next_fetch() {
    let store = new_store().await;
    let queue = Arc::new(FlakyQueue {
        inner: store.clone(),
        down: AtomicBool::new(true),
    });
    let source = Arc::new(Source(Mutex::new(vec![ours("aa1", 10, "high")])));
    let deps = deps(store.clone(), queue.clone(), source, 15);
    // The queue is down: the alert is stored but not recorded as decided, the fetch fails,
    // the cursor stays.
    assert!(fetch::run(&deps, "t1", Product::Mde).await.is_err());
    assert_eq!(store.get_cursor("t1", Product::Mde).await.unwrap(), None);
    assert!(store
        .get_alert_version("t1", "aa1", t0() + Duration::minutes(10))
        .await
        .unwrap()
        .is_some());
    assert!(store.get_decision("t1", "aa1").await.unwrap().is_none());
    assert_eq!(store.depth(QueueName::Ticket).await.unwrap(), (0, 0));
    // It is back: the same alert is handed on now, and only once after that.
    queue.down.store(false, Ordering::SeqCst);
    let out = fetch::run(&deps, "t1", Product::Mde).await.unwrap();
    assert_eq!((out.new_versions, out.incidents), (1, 1));
    let out = fetch::run(&deps, "t1", Product::Mde).await.unwrap();
    assert_eq!((out.new_versions, out.incidents), (0, 0));
    assert_eq!(store.depth(QueueName::Ticket).await.unwrap(), (1, 0));
    assert_eq!(
        store.depth(QueueName::Classify).await.unwrap(),
        (0, 0),
        "the fetch classified it itself"
    );
}

/// Every kill point of the fetch's path, in its order: (kill point, which arrival at it).
/// The fetch's store writes are its versions, then its decisions.
const POINTS: [(&str, u64, &str); 4] = [
    ("kill before store write", 1, "before the versions"),
    ("kill after queue send", 1, "after the ticket messages"),
    ("kill before store write", 2, "before the decisions"),
    ("kill before cursor write", 1, "before the cursor"),
];

#[tokio::test]
async fn a_crash_between_any_two_steps_of_the_fetch_loses_nothing() {
    let other = "99999999-8888-4777-8666-555555555555";
    let waves = [
        (
            vec![
                ours("a1", 10, "high"),
                ours("a1", 12, "low"), // two versions of one alert in one fetch
                ours("a2", 11, "medium"),
                mde("a3", 11, "high", "大阪支社PC", AZURE),
                mde("a4", 13, "high", GROUP, other), // claims another tenant
            ],
            20,
        ),
        (
            vec![
                ours("a1", 30, "low"),  // an incident stays one
                ours("a2", 31, "high"), // raised to an incident
                ours("a5", 32, "medium"),
            ],
            40,
        ),
    ];
    for (kill, nth, point) in POINTS {
        let store = new_store().await;
        let source = Arc::new(Source(Mutex::new(Vec::new())));
        let clock = ManualClock::new(t0());
        let mut rates = Rates::issue10(0.0, 0.0);
        rates.lost_answer = 0.0;
        let chaos = Chaos::new(7, rates, clock);
        let d = deps(
            Arc::new(ChaosStore {
                inner: store.clone(),
                chaos: chaos.clone(),
            }),
            Arc::new(ChaosQueue {
                inner: store.clone(),
                chaos: chaos.clone(),
            }),
            source.clone(),
            0,
        );
        let mut served = Vec::new();
        let mut sent = Vec::new();
        for (wave, now) in &waves {
            served.extend(wave.clone());
            source.serve(wave.clone());
            let d = Deps {
                clock: ManualClock::new(t0() + Duration::minutes(*now)),
                ..d.clone()
            };
            chaos.kill_at(kill, nth);
            let err = fetch::run(&d, "t1", Product::Mde).await.unwrap_err();
            assert!(
                format!("{err:#}").contains("process killed") && chaos.is_dead(),
                "{point}: {err:#}"
            );
            chaos.revive();
            let out = fetch::run(&d, "t1", Product::Mde)
                .await
                .unwrap_or_else(|e| panic!("{point}: the fetch after the crash: {e:#}"));
            // Every version served is stored…
            for v in &served {
                let a = parse(v);
                assert!(
                    store
                        .get_alert_version("t1", &a.id, a.last_update)
                        .await
                        .unwrap()
                        .is_some(),
                    "{point}: {} @ {} lost",
                    a.id,
                    a.last_update
                );
            }
            // …decided as the classifier decides over all its versions…
            let (kinds, incidents) = truth(&served);
            let got: BTreeMap<String, DecisionKind> = store
                .list_decisions("t1")
                .await
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, kinds, "{point}: decisions");
            // …and every incident version, and nothing else, went to the ticket step.
            sent.extend(ticket_messages(&store).await);
            let distinct: Versions = sent.iter().cloned().collect();
            assert_eq!(distinct, incidents, "{point}: ticket messages");
            let newest = served.iter().map(|v| parse(v).last_update).max();
            assert_eq!(
                store.get_cursor("t1", Product::Mde).await.unwrap(),
                newest,
                "{point}: the cursor follows the data once the fetch succeeded"
            );
            assert_eq!(out.cursor, newest);
            // The next fetch finds nothing left to do.
            let again = fetch::run(&d, "t1", Product::Mde).await.unwrap();
            assert_eq!((again.new_versions, again.incidents), (0, 0), "{point}");
            assert!(ticket_messages(&store).await.is_empty(), "{point}");
        }
        assert_eq!(
            chaos.counts().get(kill).copied(),
            Some(2),
            "{point}: one kill per wave, at that point"
        );
    }
}

/// The embedded store, with another writer's work slipped in just before the fetch records
/// its decisions (between its read and its write): what a concurrent fetch, backfill or
/// rerun of the same alert would do.
struct HookStore {
    inner: Arc<SqliteStore>,
    interfere: Mutex<Option<(Vec<Value>, NewDecision)>>,
    /// Reads of many fetches' starts at once fail (one read at a time still works).
    group_reads_fail: AtomicBool,
    group_reads: AtomicUsize,
    /// Every alert id whose decision was read.
    decision_reads: Mutex<Vec<String>>,
}

impl HookStore {
    async fn interference(&self) {
        let next = self.interfere.lock().unwrap().take();
        if let Some((versions, rec)) = next {
            let alerts: Vec<Alert> = versions.iter().map(parse).collect();
            let refs: Vec<&Alert> = alerts.iter().collect();
            self.inner
                .put_alert_versions("t1", Product::Mde, &refs)
                .await
                .unwrap();
            assert!(self
                .inner
                .put_decisions("t1", &[rec])
                .await
                .unwrap()
                .is_empty());
        }
    }
}

fn dec(kind: DecisionKind, reason: &str) -> Decision {
    Decision {
        kind,
        product: Some(Product::Mde),
        reason: reason.into(),
        tenant_mismatch: false,
    }
}

/// `first` is fetched, then `second` is, with `other` recorded by another writer in between
/// the second fetch's read and its write: the decision the store ends with, and the ticket
/// messages of both fetches.
async fn race(
    first: Value,
    second: Value,
    other: (Vec<Value>, NewDecision),
) -> (StoredDecision, Versions, usize) {
    let store = new_store().await;
    let hook = Arc::new(HookStore {
        inner: store.clone(),
        interfere: Mutex::new(None),
        group_reads_fail: AtomicBool::new(false),
        group_reads: AtomicUsize::new(0),
        decision_reads: Mutex::new(Vec::new()),
    });
    let source = Arc::new(Source(Mutex::new(vec![first])));
    let d = deps(hook.clone(), store.clone(), source.clone(), 20);
    fetch::run(&d, "t1", Product::Mde).await.unwrap();
    source.serve(vec![second]);
    *hook.interfere.lock().unwrap() = Some(other);
    let out = fetch::run(&d, "t1", Product::Mde).await.unwrap();
    assert!(hook.interfere.lock().unwrap().is_none(), "the writer ran");
    let sent = ticket_messages(&store).await.into_iter().collect();
    (
        store.get_decision("t1", "a1").await.unwrap().unwrap(),
        sent,
        out.incidents,
    )
}

/// A cycle reads its fetches' starts together; when that read fails, each fetch reads its
/// own and the cycle goes on: nothing is skipped and no failure is forgotten.
#[tokio::test]
async fn a_failed_read_of_the_cycles_starts_falls_back_to_each_fetch_reading_its_own() {
    let store = new_store().await;
    let hook = Arc::new(HookStore {
        inner: store.clone(),
        interfere: Mutex::new(None),
        group_reads_fail: AtomicBool::new(true),
        group_reads: AtomicUsize::new(0),
        decision_reads: Mutex::new(Vec::new()),
    });
    // Three failed fetches before, recorded; the cursor where the last success left it.
    store
        .put_doc("t1", "ingest-health", "mde", r#"{"consecutive":3}"#)
        .await
        .unwrap();
    store
        .advance_cursor("t1", Product::Mde, at(5))
        .await
        .unwrap();
    let source = Arc::new(Source(Mutex::new(vec![ours("a1", 10, "high")])));
    let d = deps(hook.clone(), store.clone(), source, 20);
    let out = fetch::run_all(&d).await.unwrap();
    assert_eq!(
        hook.group_reads.load(Ordering::SeqCst),
        1,
        "read together first"
    );
    assert_eq!(out.len(), 1);
    let out = out.into_iter().next().unwrap().unwrap();
    assert_eq!((out.new_versions, out.incidents), (1, 1));
    assert_eq!(
        out.health,
        Some(shared::steps::health::HealthEvent::Recovered {
            after_failures: 3,
            operator_ticket: None
        }),
        "the stored failures were read, and their end recorded"
    );
    assert!(store.get_cursor("t1", Product::Mde).await.unwrap() > Some(at(5)));

    // Read together when the store answers: the same start, one read.
    hook.group_reads_fail.store(false, Ordering::SeqCst);
    store
        .put_doc("t1", "ingest-health", "mde", r#"{"consecutive":1}"#)
        .await
        .unwrap();
    let out = fetch::run_all(&d).await.unwrap();
    assert_eq!(hook.group_reads.load(Ordering::SeqCst), 2);
    let out = out.into_iter().next().unwrap().unwrap();
    assert_eq!(out.new_versions, 0, "the version is known already");
    assert_eq!(
        out.health,
        Some(shared::steps::health::HealthEvent::Recovered {
            after_failures: 1,
            operator_ticket: None
        })
    );
}

/// The overlapping windows serve each version to some twenty fetches; the process reads its
/// alert's decision for the first only. A version it has not ingested (new, or only seen by
/// a fetch that failed) is read as before, and a new process reads everything once again.
#[tokio::test]
async fn a_version_this_process_ingested_is_not_read_again_by_the_next_windows() {
    let store = new_store().await;
    let hook = Arc::new(HookStore {
        inner: store.clone(),
        interfere: Mutex::new(None),
        group_reads_fail: AtomicBool::new(false),
        group_reads: AtomicUsize::new(0),
        decision_reads: Mutex::new(Vec::new()),
    });
    let reads = |h: &HookStore| std::mem::take(&mut *h.decision_reads.lock().unwrap());
    let source = Arc::new(Source(Mutex::new(vec![
        ours("a1", 10, "high"),
        ours("a2", 11, "low"),
    ])));
    let d = deps(hook.clone(), store.clone(), source.clone(), 12);
    let out = fetch::run(&d, "t1", Product::Mde).await.unwrap();
    assert_eq!(out.new_versions, 2);
    assert_eq!(reads(&hook), ["a1", "a2"]);
    assert_eq!(d.handed_on.len(), 2);

    // The same versions in the next windows: no read, nothing handed on twice.
    for min in 13..16 {
        let d = Deps {
            clock: ManualClock::new(at(min)),
            ..d.clone()
        };
        let out = fetch::run(&d, "t1", Product::Mde).await.unwrap();
        assert_eq!((out.fetched, out.new_versions), (2, 0));
        assert!(reads(&hook).is_empty(), "minute {min}");
    }
    assert_eq!(
        ticket_messages(&store).await.len(),
        1,
        "a1's incident, once"
    );

    // A new version of a1 beside a2 as known: only a1 is read, and handed on.
    source.serve(vec![
        ours("a1", 10, "high"),
        ours("a1", 16, "high"),
        ours("a2", 11, "low"),
    ]);
    let d = Deps {
        clock: ManualClock::new(at(17)),
        ..d.clone()
    };
    let out = fetch::run(&d, "t1", Product::Mde).await.unwrap();
    assert_eq!(out.new_versions, 1);
    assert_eq!(reads(&hook), ["a1"]);

    // A fetch that fails part-way teaches the process nothing: the queue is down, so a3 is
    // stored but not handed on; the next fetch reads its decision and hands it on.
    let queue = Arc::new(FlakyQueue {
        inner: store.clone(),
        down: AtomicBool::new(true),
    });
    source.serve(vec![ours("a3", 18, "high")]);
    let failing = Deps {
        queue: queue.clone(),
        clock: ManualClock::new(at(19)),
        ..d.clone()
    };
    assert!(fetch::run(&failing, "t1", Product::Mde).await.is_err());
    assert_eq!(reads(&hook), ["a3"]);
    queue.down.store(false, Ordering::SeqCst);
    let out = fetch::run(&failing, "t1", Product::Mde).await.unwrap();
    assert_eq!((out.new_versions, out.incidents), (1, 1));
    assert_eq!(reads(&hook), ["a3"]);

    // Another process (a new Lambda container) knows nothing and reads once.
    let fresh = Deps {
        handed_on: Default::default(),
        ..failing.clone()
    };
    let out = fetch::run(&fresh, "t1", Product::Mde).await.unwrap();
    assert_eq!(out.new_versions, 0);
    assert_eq!(reads(&hook), ["a3"]);
    let out = fetch::run(&fresh, "t1", Product::Mde).await.unwrap();
    assert_eq!(out.new_versions, 0);
    assert!(reads(&hook).is_empty());
}

fn at(min: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(min)
}

#[tokio::test]
async fn a_decision_computed_from_a_stale_read_is_settled_at_once_never_lowering() {
    use DecisionKind::*;
    let a1 = |s: &str| {
        (
            "a1".to_string(),
            at(match s {
                "v1" => 10,
                "v2" => 15,
                _ => 18,
            }),
        )
    };

    // 1. Another writer raised the decision of v1 to an incident (a rerun after the criteria
    //    changed) after this fetch read it as monitored: v2, decided monitored from the stale
    //    read, is refused, decided again from the incident, and handed on as one.
    let (d, sent, incidents) = race(
        ours("a1", 10, "medium"),
        ours("a1", 15, "medium"),
        (
            vec![],
            NewDecision {
                alert_id: "a1".into(),
                last_update: at(10),
                decision: dec(Incident, "rerun"),
            },
        ),
    )
    .await;
    assert_eq!((d.kind, d.last_update), (Incident, at(15)));
    assert_eq!(sent, BTreeSet::from([a1("v2")]));
    assert_eq!(incidents, 1);

    // 2. This fetch made v2 an incident; another, which had seen v3 only and read the
    //    decision before, recorded v3 as monitored. Refused as older, this fetch decides v3
    //    again after its incident: an incident, handed on.
    let (d, sent, incidents) = race(
        ours("a1", 10, "medium"),
        ours("a1", 15, "high"),
        (
            vec![ours("a1", 18, "medium")],
            NewDecision {
                alert_id: "a1".into(),
                last_update: at(18),
                decision: dec(Monitored, "stale"),
            },
        ),
    )
    .await;
    assert_eq!((d.kind, d.last_update), (Incident, at(18)));
    assert_eq!(sent, BTreeSet::from([a1("v2"), a1("v3")]));
    assert_eq!(incidents, 2);

    // 3. The other writer recorded a newer version as an incident already: this fetch's
    //    monitored v2 is refused and nothing is left to do.
    let (d, sent, incidents) = race(
        ours("a1", 10, "medium"),
        ours("a1", 15, "medium"),
        (
            vec![ours("a1", 18, "high")],
            NewDecision {
                alert_id: "a1".into(),
                last_update: at(18),
                decision: dec(Incident, "the other fetch"),
            },
        ),
    )
    .await;
    assert_eq!(
        (d.kind, d.last_update, d.reason.as_str()),
        (Incident, at(18), "the other fetch")
    );
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(incidents, 0);
}

#[async_trait]
impl Store for HookStore {
    async fn put_tenant(&self, t: &Tenant) -> anyhow::Result<()> {
        self.inner.put_tenant(t).await
    }
    async fn get_tenant(&self, id: &str) -> anyhow::Result<Option<Tenant>> {
        self.inner.get_tenant(id).await
    }
    async fn list_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        self.inner.list_tenants().await
    }
    async fn put_alert_version(
        &self,
        tenant: &str,
        product: Product,
        alert: &Alert,
    ) -> anyhow::Result<bool> {
        self.inner.put_alert_version(tenant, product, alert).await
    }
    async fn put_alert_versions(
        &self,
        tenant: &str,
        product: Product,
        alerts: &[&Alert],
    ) -> anyhow::Result<()> {
        self.inner.put_alert_versions(tenant, product, alerts).await
    }
    async fn get_alert_version(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<Option<Alert>> {
        self.inner
            .get_alert_version(tenant, alert_id, last_update)
            .await
    }
    async fn record_malformed(
        &self,
        tenant: &str,
        product: Product,
        raw: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.inner
            .record_malformed(tenant, product, raw, reason, at)
            .await
    }
    async fn get_cursor(
        &self,
        tenant: &str,
        product: Product,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.inner.get_cursor(tenant, product).await
    }
    async fn get_cursors_and_docs(
        &self,
        wanted: &[CursorDocKey<'_>],
    ) -> anyhow::Result<Vec<(Option<DateTime<Utc>>, Option<String>)>> {
        self.group_reads.fetch_add(1, Ordering::SeqCst);
        if self.group_reads_fail.load(Ordering::SeqCst) {
            anyhow::bail!("throttled (test)");
        }
        self.inner.get_cursors_and_docs(wanted).await
    }
    async fn advance_cursor(
        &self,
        tenant: &str,
        product: Product,
        to: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.inner.advance_cursor(tenant, product, to).await
    }
    async fn get_decision(
        &self,
        tenant: &str,
        alert_id: &str,
    ) -> anyhow::Result<Option<StoredDecision>> {
        self.inner.get_decision(tenant, alert_id).await
    }
    async fn get_decisions(
        &self,
        tenant: &str,
        alert_ids: &[String],
    ) -> anyhow::Result<HashMap<String, StoredDecision>> {
        self.decision_reads
            .lock()
            .unwrap()
            .extend(alert_ids.iter().cloned());
        self.inner.get_decisions(tenant, alert_ids).await
    }
    async fn put_decision(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        d: &Decision,
    ) -> anyhow::Result<()> {
        self.inner
            .put_decision(tenant, alert_id, last_update, d)
            .await
    }
    async fn put_decisions(
        &self,
        tenant: &str,
        decisions: &[NewDecision],
    ) -> anyhow::Result<Vec<String>> {
        self.interference().await;
        self.inner.put_decisions(tenant, decisions).await
    }
    async fn get_incident(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Option<IncidentRecord>> {
        self.inner.get_incident(tenant, key).await
    }
    async fn create_incident_intent(&self, rec: &IncidentRecord) -> anyhow::Result<bool> {
        self.inner.create_incident_intent(rec).await
    }
    async fn set_incident_ticket(
        &self,
        tenant: &str,
        key: &str,
        ticket_id: &str,
    ) -> anyhow::Result<()> {
        self.inner.set_incident_ticket(tenant, key, ticket_id).await
    }
    async fn set_incident_severity(
        &self,
        tenant: &str,
        key: &str,
        severity: Severity,
    ) -> anyhow::Result<()> {
        self.inner
            .set_incident_severity(tenant, key, severity)
            .await
    }
    async fn applied_versions(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Vec<AppliedVersion>> {
        self.inner.applied_versions(tenant, key).await
    }
    async fn begin_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> anyhow::Result<ApplyClaim> {
        self.inner
            .begin_apply(tenant, key, alert_id, last_update, now, lease)
            .await
    }
    async fn finish_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.inner
            .finish_apply(tenant, key, alert_id, last_update)
            .await
    }
    async fn list_decisions(&self, tenant: &str) -> anyhow::Result<Vec<(String, DecisionKind)>> {
        self.inner.list_decisions(tenant).await
    }
    async fn list_alert_ids(&self, tenant: &str) -> anyhow::Result<Vec<String>> {
        self.inner.list_alert_ids(tenant).await
    }
    async fn list_incidents(&self, tenant: &str) -> anyhow::Result<Vec<IncidentSummary>> {
        self.inner.list_incidents(tenant).await
    }
    async fn malformed_count(&self, tenant: &str) -> anyhow::Result<u64> {
        self.inner.malformed_count(tenant).await
    }
    async fn once_begin(&self, tenant: &str, key: &str) -> anyhow::Result<OnceState> {
        self.inner.once_begin(tenant, key).await
    }
    async fn once_finish(&self, tenant: &str, key: &str) -> anyhow::Result<()> {
        self.inner.once_finish(tenant, key).await
    }
    async fn create_action(&self, rec: &ActionRecord) -> anyhow::Result<bool> {
        self.inner.create_action(rec).await
    }
    async fn get_action(&self, tenant: &str, key: &str) -> anyhow::Result<Option<ActionRecord>> {
        self.inner.get_action(tenant, key).await
    }
    async fn put_action(&self, rec: &ActionRecord) -> anyhow::Result<()> {
        self.inner.put_action(rec).await
    }
    async fn list_actions(&self, tenant: &str) -> anyhow::Result<Vec<ActionRecord>> {
        self.inner.list_actions(tenant).await
    }
    async fn put_doc(&self, tenant: &str, kind: &str, key: &str, body: &str) -> anyhow::Result<()> {
        self.inner.put_doc(tenant, kind, key, body).await
    }
    async fn get_doc(&self, tenant: &str, kind: &str, key: &str) -> anyhow::Result<Option<String>> {
        self.inner.get_doc(tenant, kind, key).await
    }
    async fn list_docs(&self, tenant: &str, kind: &str) -> anyhow::Result<Vec<(String, String)>> {
        self.inner.list_docs(tenant, kind).await
    }
    async fn take_budget(
        &self,
        tenant: &str,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        self.inner.take_budget(tenant, window, limit, expires).await
    }
    async fn recent_alerts(
        &self,
        tenant: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(Product, Alert)>> {
        self.inner.recent_alerts(tenant, since).await
    }
    async fn scan_alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut (dyn FnMut(Product, Alert) -> anyhow::Result<()> + Send),
    ) -> anyhow::Result<()> {
        self.inner.scan_alerts(tenant, from, to, f).await
    }
    async fn purge_tenant(&self, tenant: &str) -> anyhow::Result<PurgeCounts> {
        self.inner.purge_tenant(tenant).await
    }
}

/// Graph with pages of two: records, as each page is asked for, how many of the window's
/// versions the store already holds; fails the page numbered `fail_page` once.
struct PagedSource {
    alerts: Vec<Value>,
    store: Arc<SqliteStore>,
    stored_when_asked: Mutex<Vec<usize>>,
    fail_page: Mutex<Option<usize>>,
}

#[async_trait]
impl AlertSource for PagedSource {
    async fn fetch(
        &self,
        _: &Tenant,
        _: Product,
        _: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        anyhow::bail!("the fetch step reads page by page")
    }
    async fn fetch_page(
        &self,
        _: &Tenant,
        _: Product,
        _: DateTime<Utc>,
        next: Option<&str>,
    ) -> anyhow::Result<shared::ports::FetchedPage> {
        let page: usize = next.map_or(0, |n| n.parse().unwrap());
        let mut stored = 0;
        for v in &self.alerts {
            let a = parse(v);
            if self
                .store
                .get_alert_version("t1", &a.id, a.last_update)
                .await?
                .is_some()
            {
                stored += 1;
            }
        }
        self.stored_when_asked.lock().unwrap().push(stored);
        if *self.fail_page.lock().unwrap() == Some(page) {
            *self.fail_page.lock().unwrap() = None;
            anyhow::bail!("Graph answered HTTP 503 for page {page}");
        }
        let items = self
            .alerts
            .iter()
            .skip(page * 2)
            .take(2)
            .map(|v| FetchedItem::Alert(Box::new(parse(v))))
            .collect();
        let next = (page * 2 + 2 < self.alerts.len()).then(|| (page + 1).to_string());
        Ok(shared::ports::FetchedPage { items, next })
    }
}

/// Issue 11 (pipeline memory): the fetch stores and classifies each page before it asks for
/// the next, so it holds one page, not its window; a failure part-way keeps the cursor, and
/// the next fetch hands on only what the first did not.
#[tokio::test]
async fn each_page_is_ingested_before_the_next_and_a_failure_part_way_loses_nothing() {
    let store = new_store().await;
    let alerts: Vec<Value> = (0..5).map(|i| ours(&format!("pg{i}"), i, "high")).collect();
    let source = Arc::new(PagedSource {
        alerts: alerts.clone(),
        store: store.clone(),
        stored_when_asked: Mutex::new(Vec::new()),
        fail_page: Mutex::new(Some(2)),
    });
    let deps = Deps {
        alerts: source.clone(),
        ..deps(
            store.clone(),
            store.clone(),
            Arc::new(Source(Mutex::new(vec![]))),
            15,
        )
    };
    let e = fetch::run(&deps, "t1", Product::Mde).await.unwrap_err();
    assert!(format!("{e:#}").contains("page 2"), "{e:#}");
    assert_eq!(*source.stored_when_asked.lock().unwrap(), vec![0, 2, 4]);
    assert_eq!(store.get_cursor("t1", Product::Mde).await.unwrap(), None);
    assert_eq!(
        ticket_messages(&store).await.len(),
        4,
        "pages 0 and 1 handed on"
    );

    let out = fetch::run(&deps, "t1", Product::Mde).await.unwrap();
    assert_eq!((out.fetched, out.new_versions, out.incidents), (5, 1, 1));
    assert_eq!(
        ticket_messages(&store).await.len(),
        1,
        "only the last page's alert"
    );
    // The newest version (minute 4), raised to now − overlap (minute 15 − 10).
    assert_eq!(
        store.get_cursor("t1", Product::Mde).await.unwrap(),
        Some(t0() + Duration::minutes(5))
    );
}
