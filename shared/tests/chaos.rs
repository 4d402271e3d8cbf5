//! Regression tests for what the chaos run (`mss chaos`, issue 10) found, and for the fault
//! machinery it relies on: the simulator's late indexing and seeded fault rates, and the
//! port wrappers of `shared::chaos`.
//!
//! Found by the run and fixed:
//! - a kill between the MDE request and its record made the retry request the action again
//!   once the first had finished (MDE no longer answered "already in progress"): a second
//!   isolation or scan of the device. The retry now looks the request up by the intent's
//!   marker in its comment first.
//! - a failure between recording an action `InProgress` and queueing its check left the
//!   action in progress for ever (the retry found it in progress and did nothing). The check
//!   is now queued before the record, and notes a failed attempt did not post are posted by
//!   the retry (looked up first).
//! - the embedded queue retried a failed message 5 times within about 5 minutes, so a
//!   10-minute OpsRamp outage dead-lettered ticket messages (incidents never ticketed). It
//!   now backs off exponentially (2, 4, 8, 16 minutes by default).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::mde::{DeviceActions, MachineAction, Requested};
use shared::adapters::sqlite::{backoff, QueueSettings, SqliteStore};
use shared::chaos::{Chaos, ChaosQueue, Killed, Rates};
use shared::domain::alert::{Alert, Product};
use shared::domain::response::DeviceRecord;
use shared::domain::tenant::Tenant;
use shared::messages::{AlertRef, QueueName};
use shared::ports::{
    ActionStatus, AlertSource, FetchedItem, ManualClock, NewTicket, Queue, Store, TicketUpdate,
    Tickets,
};
use shared::steps::{respond, Deps};

const AZ: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cred() -> Vec<AzureAppCredential> {
    vec![AzureAppCredential {
        tenant: TENANT.into(),
        azure_tenant_id: AZ.into(),
        client_id: "app".into(),
        client_secret: Secret::new("s".to_string()),
    }]
}

async fn sim(alerts: Vec<serde_json::Value>, start: DateTime<Utc>) -> Sim {
    shared::adapters::http::install_crypto_provider();
    Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: "s".into(),
                alerts,
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: "o".into(),
            state_file: None,
            all_visible: false,
            start_clock: start,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn http(sim: &Sim) -> HttpSettings {
    HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        ..Default::default()
    }
}

/// OpsRamp in memory: tickets by ext id, responses by ext id. `fail_next_response` posts the
/// next response and then answers an error (its answer lost); `refuse_next_response` answers
/// an error without posting.
#[derive(Default)]
struct MemTickets {
    tickets: std::sync::Mutex<Vec<(String, String)>>,
    responses: std::sync::Mutex<Vec<(String, String)>>,
    fail_next_response: AtomicU32,
    /// The next responses are refused (OpsRamp down): not posted.
    refuse_next_response: AtomicU32,
}

#[async_trait]
impl Tickets for MemTickets {
    async fn find_by_ext_id(&self, ext: &str) -> anyhow::Result<Option<String>> {
        let t = self.tickets.lock().unwrap();
        Ok(t.iter().find(|(_, e)| e == ext).map(|(id, _)| id.clone()))
    }
    async fn create(&self, t: &NewTicket) -> anyhow::Result<String> {
        let mut all = self.tickets.lock().unwrap();
        let id = format!("INC{:010}", all.len() + 1);
        all.push((id.clone(), t.ext_ticket_id.clone()));
        Ok(id)
    }
    async fn update(&self, _id: &str, _u: &TicketUpdate) -> anyhow::Result<()> {
        Ok(())
    }
    async fn add_response(&self, id: &str, _text: &str, ext: &str) -> anyhow::Result<()> {
        // A real call takes time: racing deliveries run meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self
            .refuse_next_response
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            anyhow::bail!("OpsRamp POST responses: HTTP 503");
        }
        self.responses
            .lock()
            .unwrap()
            .push((id.to_string(), ext.to_string()));
        if self
            .fail_next_response
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            anyhow::bail!("OpsRamp response posted, but its answer was lost");
        }
        Ok(())
    }
    async fn has_response(&self, id: &str, ext: &str) -> anyhow::Result<bool> {
        tokio::task::yield_now().await;
        let r = self.responses.lock().unwrap();
        Ok(r.iter().any(|(t, e)| t == id && e == ext))
    }
}

impl MemTickets {
    fn count(&self, suffix: &str) -> usize {
        let r = self.responses.lock().unwrap();
        r.iter().filter(|(_, e)| e.ends_with(suffix)).count()
    }
}

/// The real MDE client, killed once right after its next machine action request was made.
struct KilledAfterRequest {
    inner: Arc<dyn DeviceActions>,
    armed: AtomicU32,
}

impl KilledAfterRequest {
    fn after(&self) -> anyhow::Result<()> {
        if self
            .armed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Killed("kill after MDE machine action").into());
        }
        Ok(())
    }
}

#[async_trait]
impl DeviceActions for KilledAfterRequest {
    async fn device(&self, t: &str, m: &str) -> anyhow::Result<Option<DeviceRecord>> {
        self.inner.device(t, m).await
    }
    async fn isolate(&self, t: &str, m: &str, it: &str, c: &str) -> anyhow::Result<Requested> {
        let r = self.inner.isolate(t, m, it, c).await?;
        self.after()?;
        Ok(r)
    }
    async fn unisolate(&self, t: &str, m: &str, c: &str) -> anyhow::Result<Requested> {
        let r = self.inner.unisolate(t, m, c).await?;
        self.after()?;
        Ok(r)
    }
    async fn full_scan(&self, t: &str, m: &str, c: &str) -> anyhow::Result<Requested> {
        let r = self.inner.full_scan(t, m, c).await?;
        self.after()?;
        Ok(r)
    }
    async fn action(&self, t: &str, id: &str) -> anyhow::Result<MachineAction> {
        self.inner.action(t, id).await
    }
    async fn find_requested(
        &self,
        t: &str,
        m: &str,
        kind: &str,
        marker: &str,
    ) -> anyhow::Result<Option<MachineAction>> {
        self.inner.find_requested(t, m, kind, marker).await
    }
}

struct NoAlerts;

#[async_trait]
impl AlertSource for NoAlerts {
    async fn fetch(
        &self,
        _t: &Tenant,
        _p: Product,
        _since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        Ok(vec![])
    }
}

struct Rig {
    sim: Sim,
    deps: Deps,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
    tickets: Arc<MemTickets>,
    devices: Arc<KilledAfterRequest>,
}

/// First response on one device (isolate and scan, auto), MDE simulated, OpsRamp in memory,
/// the embedded queue's default settings on a simulated clock.
async fn rig(start: DateTime<Utc>) -> Rig {
    let sim = sim(vec![], start).await;
    sim.add_devices(
        AZ,
        vec![
            json!({"id": "d1", "computerDnsName": "d1", "osPlatform": "Windows11",
        "version": "23H2", "rbacGroupName": "PC", "machineTags": [], "simActionMinutes": 3}),
        ],
    );
    let http = http(&sim);
    let mde = Arc::new(
        shared::adapters::mde::MdeClient::new(
            shared::adapters::mde::MdeConfig {
                base: sim.mde_base(),
                authority_host: sim.authority_host(),
                http: http.clone(),
                ..Default::default()
            },
            cred(),
        )
        .unwrap(),
    );
    let devices = Arc::new(KilledAfterRequest {
        inner: mde,
        armed: AtomicU32::new(0),
    });
    let users = Arc::new(
        shared::adapters::identity::IdentityClient::new(
            shared::adapters::identity::IdentityConfig {
                graph_base: sim.graph_base(),
                authority_host: sim.authority_host(),
                http: http.clone(),
                ..Default::default()
            },
            cred(),
        )
        .unwrap(),
    );
    let mail = Arc::new(
        shared::adapters::mdo::MdoClient::new(
            &sim.graph_beta_base(),
            &sim.authority_host(),
            &http,
            cred(),
        )
        .unwrap(),
    );
    let clock = ManualClock::new(start);
    let store = Arc::new(
        SqliteStore::in_memory()
            .unwrap()
            .with_clock(clock.clone())
            .with_queue_settings(QueueSettings::default()),
    );
    let tickets = Arc::new(MemTickets::default());
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(NoAlerts),
        tickets: tickets.clone(),
        clock: clock.clone(),
        settings: Default::default(),
        respond: Some(Arc::new(respond::ResponseDeps {
            devices: devices.clone(),
            users,
            mail,
            calendar: shared::domain::calendar::Calendar::default(),
            check_every: Duration::from_secs(60),
            give_up_after: Duration::from_secs(7200),
        })),
        investigate: None,
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(
        &json!({"id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde"], "mde": {"device_groups": ["*"], "incident_min_severity": "low"},
        "response": {"mde": {"isolate": "auto", "scan": "auto"}}}),
    )
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    Rig {
        sim,
        deps,
        clock,
        store,
        tickets,
        devices,
    }
}

impl Rig {
    /// An incident alert on d1, stored and ticketed; the respond message it queued is
    /// dropped, so each test drives `respond::plan` itself.
    async fn incident(&self, id: &str) -> AlertRef {
        let a = Alert::from_value(json!({"id": id, "lastUpdateDateTime": self.clock_now().to_rfc3339(),
            "serviceSource": "microsoftDefenderForEndpoint", "severity": "high", "title": "Ransomware",
            "tenantId": AZ, "incidentId": "501",
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "d1"}]}))
        .unwrap();
        self.store
            .put_alert_version(TENANT, Product::Mde, &a)
            .await
            .unwrap();
        let msg = AlertRef::new(TENANT, id, a.last_update);
        shared::steps::ticket::run(&self.deps, &msg).await.unwrap();
        for m in self.store.receive(QueueName::Respond, 10).await.unwrap() {
            self.store.ack(QueueName::Respond, &m.handle).await.unwrap();
        }
        msg
    }

    fn clock_now(&self) -> DateTime<Utc> {
        use shared::ports::Clock as _;
        self.clock.now()
    }

    async fn advance(&self, minutes: i64) {
        let t = self.clock_now() + chrono::Duration::minutes(minutes);
        self.clock.set(t);
        self.sim.set_clock(t);
    }

    /// Minute by minute, draining the queues (checks included), for `minutes`.
    async fn run_for(&self, minutes: i64) {
        for _ in 0..minutes {
            self.advance(1).await;
            shared::runner::drain(&self.deps).await.unwrap();
        }
    }

    fn machine_actions(&self, kind: &str) -> Vec<serde_json::Value> {
        self.sim
            .machine_actions()
            .into_iter()
            .filter(|a| a["type"] == kind)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_mde_request_and_its_record_never_requests_it_twice() {
    let r = rig(at("2026-11-24T01:00:00Z")).await;
    let msg = r.incident("da-1").await;
    // The isolation request reaches MDE, then the process dies before recording it.
    r.devices.armed.store(1, Ordering::SeqCst);
    let e = respond::plan(&r.deps, &msg).await.unwrap_err();
    assert!(e.downcast_ref::<Killed>().is_some(), "{e:#}");
    assert_eq!(r.machine_actions("Isolate").len(), 1);
    let rec = r
        .store
        .get_action(TENANT, "incident:501|isolate|d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.status,
        ActionStatus::Requesting,
        "the record never saw the answer"
    );
    // The message comes back after the visibility timeout (5 minutes): the first isolation
    // has finished by then, so MDE would accept a second one.
    r.advance(5).await;
    assert_eq!(r.machine_actions("Isolate")[0]["status"], "Succeeded");
    let recs = respond::plan(&r.deps, &msg).await.unwrap();
    let isolations = r.machine_actions("Isolate");
    assert_eq!(
        isolations.len(),
        1,
        "the retry found the request by its marker: {isolations:?}"
    );
    let rec = recs
        .iter()
        .find(|a| a.key == "incident:501|isolate|d1")
        .unwrap();
    assert_eq!(
        rec.machine_action_id.as_deref(),
        isolations[0]["id"].as_str()
    );
    assert!(isolations[0]["requestorComment"]
        .as_str()
        .unwrap()
        .contains("[mss:incident:501|isolate|d1]"));
    // The scan, requested after the isolation on the retry, was requested once too.
    assert_eq!(r.machine_actions("RunAntiVirusScan").len(), 1);
    // And the actions are followed to the end, each noted once.
    r.run_for(6).await;
    for a in r.store.list_actions(TENANT).await.unwrap() {
        assert_eq!(a.status, ActionStatus::Succeeded, "{}", a.key);
    }
    assert_eq!(r.tickets.count("-started"), 2);
    assert_eq!(r.tickets.count("-result"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_note_failed_is_still_followed_to_its_end() {
    let r = rig(at("2026-11-24T01:00:00Z")).await;
    let msg = r.incident("da-2").await;
    // The isolation starts; its "started" note reaches OpsRamp but the answer is lost, so
    // the step fails after recording the action in progress.
    r.tickets.fail_next_response.store(1, Ordering::SeqCst);
    assert!(respond::plan(&r.deps, &msg).await.is_err());
    let rec = r
        .store
        .get_action(TENANT, "incident:501|isolate|d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, ActionStatus::InProgress);
    // The retry finds it in progress; what keeps it going is the check queued before it.
    assert!(r.store.depth(QueueName::Check).await.unwrap().0 >= 1);
    r.advance(2).await;
    respond::plan(&r.deps, &msg).await.unwrap();
    r.run_for(8).await;
    for a in r.store.list_actions(TENANT).await.unwrap() {
        assert_eq!(a.status, ActionStatus::Succeeded, "{}", a.key);
    }
    assert_eq!(r.machine_actions("Isolate").len(), 1);
    assert_eq!(r.tickets.count("isolate-d1-started"), 1, "never twice");
    assert_eq!(r.tickets.count("isolate-d1-result"), 1);
    assert_eq!(r.store.depth(QueueName::Check).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_result_note_refused_after_the_record_is_posted_by_the_next_check() {
    let r = rig(at("2026-11-24T01:00:00Z")).await;
    let msg = r.incident("da-3").await;
    respond::plan(&r.deps, &msg).await.unwrap();
    // The checks run; the ones that see the end record it, and OpsRamp refuses their notes.
    r.advance(3).await;
    r.tickets.refuse_next_response.store(2, Ordering::SeqCst);
    let _ = shared::runner::drain(&r.deps).await.unwrap();
    r.run_for(10).await;
    assert_eq!(r.tickets.count("isolate-d1-result"), 1);
    assert_eq!(r.tickets.count("scan-d1-result"), 1);
}

impl Rig {
    /// A second alert of incident 501, stored; the first ("ca-1") made the ticket.
    async fn joining_alert(&self) -> AlertRef {
        self.incident("ca-1").await;
        let a = Alert::from_value(json!({"id": "ca-2", "lastUpdateDateTime": self.clock_now().to_rfc3339(),
            "serviceSource": "microsoftDefenderForEndpoint", "severity": "medium", "title": "Credential theft",
            "tenantId": AZ, "incidentId": "501", "evidence": []}))
        .unwrap();
        self.store
            .put_alert_version(TENANT, Product::Mde, &a)
            .await
            .unwrap();
        AlertRef::new(TENANT, "ca-2", a.last_update)
    }
}

/// Found by CI (the DynamoDB race test, 1 run in ~20): two deliveries of one message both
/// found the version's note claimed but unfinished, both asked OpsRamp whether the note was
/// there, and both posted it. A claim is now held for the takeover lease.
#[tokio::test]
async fn a_note_another_delivery_is_posting_waits_for_the_lease() {
    let r = rig(at("2026-11-24T01:00:00Z")).await;
    let msg = r.joining_alert().await;
    let note = format!("ca-2@{}", msg.last_update.timestamp_millis());
    // Another delivery holds the claim, mid-post.
    let claim = r
        .store
        .begin_apply(
            TENANT,
            "incident:501",
            "ca-2",
            msg.last_update,
            r.clock_now(),
            r.deps.settings.intent_takeover,
        )
        .await
        .unwrap();
    assert_eq!(claim, shared::ports::ApplyClaim::New);
    let e = shared::steps::ticket::run(&r.deps, &msg).await.unwrap_err();
    assert!(format!("{e:#}").contains("will retry"), "{e:#}");
    assert_eq!(
        r.tickets.count(&note),
        0,
        "no note while another may be posting it"
    );
    // The holder died: after the lease, the retry asks OpsRamp, then posts once.
    r.advance(1).await;
    shared::steps::ticket::run(&r.deps, &msg).await.unwrap();
    shared::steps::ticket::run(&r.deps, &msg).await.unwrap();
    assert_eq!(r.tickets.count(&note), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deliveries_of_one_message_post_its_note_once() {
    let r = Arc::new(rig(at("2026-11-24T01:00:00Z")).await);
    let msg = r.joining_alert().await;
    let note = format!("ca-2@{}", msg.last_update.timestamp_millis());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (r, msg) = (r.clone(), msg.clone());
        set.spawn(async move { shared::steps::ticket::run(&r.deps, &msg).await.is_ok() });
    }
    let ok = set.join_all().await.into_iter().filter(|ok| *ok).count();
    assert!(ok >= 1, "the holder finished");
    // The losers retry, as SQS redelivers them.
    shared::steps::ticket::run(&r.deps, &msg).await.unwrap();
    assert_eq!(r.tickets.count(&note), 1);
}

#[test]
fn the_embedded_queue_backs_off_exponentially() {
    let d = QueueSettings::default().retry_delay;
    assert_eq!(d, Duration::from_secs(120));
    let waits: Vec<u64> = (1..=4).map(|n| backoff(d, n).as_secs()).collect();
    assert_eq!(waits, [120, 240, 480, 960]);
    assert_eq!(
        backoff(d, 40),
        Duration::from_secs(3600),
        "capped at an hour"
    );
    assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    assert_eq!(
        backoff(Duration::from_millis(10), 3),
        Duration::from_millis(40)
    );
}

#[tokio::test]
async fn a_ten_minute_outage_dead_letters_nothing() {
    // The runner drains once a simulated minute; the step fails while OpsRamp is down.
    let clock = ManualClock::new(at("2026-11-24T01:00:00Z"));
    let q = SqliteStore::in_memory()
        .unwrap()
        .with_clock(clock.clone())
        .with_queue_settings(QueueSettings::default());
    let t0 = at("2026-11-24T01:00:00Z");
    q.send_batch(QueueName::Ticket, &[AlertRef::new(TENANT, "da-1", t0)])
        .await
        .unwrap();
    let mut attempts = 0;
    let mut done = false;
    for minute in 0..40 {
        clock.set(t0 + chrono::Duration::minutes(minute));
        for m in q.receive(QueueName::Ticket, 10).await.unwrap() {
            attempts += 1;
            if minute < 10 {
                q.nack(QueueName::Ticket, &m.handle, "OpsRamp: HTTP 503")
                    .await
                    .unwrap();
            } else {
                q.ack(QueueName::Ticket, &m.handle).await.unwrap();
                done = true;
            }
        }
    }
    assert!(done, "handled once OpsRamp was back");
    assert!(attempts <= 4, "{attempts} attempts");
    assert_eq!(q.depth(QueueName::Ticket).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_message_failing_for_half_an_hour_is_dead_lettered() {
    let clock = ManualClock::new(at("2026-11-24T01:00:00Z"));
    let q = SqliteStore::in_memory()
        .unwrap()
        .with_clock(clock.clone())
        .with_queue_settings(QueueSettings::default());
    let t0 = at("2026-11-24T01:00:00Z");
    q.send_batch(QueueName::Ticket, &[AlertRef::new(TENANT, "poison", t0)])
        .await
        .unwrap();
    let mut dead_at = None;
    for minute in 0..60 {
        clock.set(t0 + chrono::Duration::minutes(minute));
        for m in q.receive(QueueName::Ticket, 10).await.unwrap() {
            q.nack(QueueName::Ticket, &m.handle, "boom").await.unwrap();
        }
        if dead_at.is_none() && q.depth(QueueName::Ticket).await.unwrap() == (0, 1) {
            dead_at = Some(minute);
        }
    }
    assert_eq!(
        dead_at,
        Some(30),
        "2 + 4 + 8 + 16 minutes of retries, then the DLQ"
    );
}

#[tokio::test]
async fn late_indexed_versions_appear_after_their_delay_and_never_show_the_knob() {
    let start = at("2026-11-24T01:00:00Z");
    let alert = |lu: &str, late: Option<u32>| {
        let mut a = json!({"id": "da-late", "lastUpdateDateTime": lu, "serviceSource": "microsoftDefenderForEndpoint",
            "severity": "high", "title": "t", "tenantId": AZ});
        if let Some(s) = late {
            a["simVisibleAfterSeconds"] = json!(s);
        }
        a
    };
    let sim = sim(
        vec![
            alert("2026-11-24T01:00:00Z", None),
            alert("2026-11-24T01:05:00Z", Some(540)),
        ],
        start,
    )
    .await;
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http(&sim),
            ..Default::default()
        },
        cred(),
    )
    .unwrap();
    let t = Tenant::from_json_value(
        &json!({"id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde"], "mde": {"device_groups": ["*"], "incident_min_severity": "low"}}),
    )
    .unwrap();
    let seen = |items: Vec<FetchedItem>| -> Vec<(String, bool)> {
        items
            .into_iter()
            .map(|i| match i {
                FetchedItem::Alert(a) => (
                    a.last_update.to_rfc3339(),
                    a.raw.get("simVisibleAfterSeconds").is_some(),
                ),
                FetchedItem::Malformed { reason, .. } => (reason, true),
            })
            .collect()
    };
    let since = at("2026-11-24T00:00:00Z");
    // 01:13: the update of 01:05 is not indexed yet (until 01:14); the first version shows.
    sim.set_clock(at("2026-11-24T01:13:59Z"));
    let got = seen(graph.fetch(&t, Product::Mde, since).await.unwrap());
    assert_eq!(got, [("2026-11-24T01:00:00+00:00".to_string(), false)]);
    sim.set_clock(at("2026-11-24T01:14:00Z"));
    let got = seen(graph.fetch(&t, Product::Mde, since).await.unwrap());
    assert_eq!(got, [("2026-11-24T01:05:00+00:00".to_string(), false)]);
}

#[tokio::test]
async fn seeded_fault_rates_repeat_and_are_counted() {
    let start = at("2026-11-24T01:00:00Z");
    let sim = sim(vec![], start).await;
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http(&sim),
            retry: RetryPolicy {
                max_attempts: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        cred(),
    )
    .unwrap();
    let t = Tenant::from_json_value(
        &json!({"id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde"], "mde": {"device_groups": ["*"], "incident_min_severity": "low"}}),
    )
    .unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        sim.set_fault(
            Endpoint::GraphAlerts,
            Fault::SeededRate {
                p429: 0.3,
                p5xx: 0.2,
                status: 503,
                retry_after: 0.001,
                seed: 42,
            },
        );
        let mut outcomes = Vec::new();
        for _ in 0..40 {
            outcomes.push(match graph.fetch(&t, Product::Mde, start).await {
                Ok(_) => "ok".to_string(),
                Err(e) if format!("{e:#}").contains("HTTP 429") => "429".into(),
                Err(e) if format!("{e:#}").contains("HTTP 503") => "503".into(),
                Err(e) => format!("{e:#}"),
            });
        }
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1], "the same seed, the same faults");
    let n429 = runs[0].iter().filter(|o| *o == "429").count() as u64;
    let n503 = runs[0].iter().filter(|o| *o == "503").count() as u64;
    assert!(n429 > 0 && n503 > 0 && n429 + n503 < 40, "{:?}", runs[0]);
    let counted = sim.faults_injected()[&Endpoint::GraphAlerts];
    assert_eq!(counted.too_many_requests, 2 * n429);
    assert_eq!(counted.server_errors, 2 * n503);
}

#[tokio::test]
async fn chaos_queue_duplicates_and_a_killed_process_stops_everything() {
    let clock = ManualClock::new(at("2026-11-24T01:00:00Z"));
    let inner = Arc::new(SqliteStore::in_memory().unwrap().with_clock(clock.clone()));
    let mut rates = Rates::issue10(0.0, 1.0);
    rates.kill_before_ack = 0.0;
    let chaos = Chaos::new(7, rates, clock.clone());
    let q = ChaosQueue {
        inner: inner.clone(),
        chaos: chaos.clone(),
    };
    let t0 = at("2026-11-24T01:00:00Z");
    q.send_batch(QueueName::Classify, &[AlertRef::new(TENANT, "a", t0)])
        .await
        .unwrap();
    assert_eq!(
        inner.depth(QueueName::Classify).await.unwrap().0,
        2,
        "sent twice"
    );
    assert_eq!(chaos.counts()["duplicate delivery"], 1);
    // A kill: from then on every call fails, with no nack, until the restart.
    let mut rates = Rates::issue10(0.0, 0.0);
    rates.kill_before_ack = 1.0;
    let chaos = Chaos::new(7, rates, clock.clone());
    let q = ChaosQueue {
        inner: inner.clone(),
        chaos: chaos.clone(),
    };
    let got = q.receive(QueueName::Classify, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    let e = q
        .ack(QueueName::Classify, &got[0].handle)
        .await
        .unwrap_err();
    assert!(e.downcast_ref::<Killed>().is_some());
    assert!(chaos.is_dead());
    assert!(q
        .nack(QueueName::Classify, &got[1].handle, "x")
        .await
        .is_err());
    chaos.revive();
    chaos.disable();
    assert!(q.receive(QueueName::Classify, 10).await.unwrap().is_empty());
    // Both come back after the visibility timeout, as after a real kill.
    clock.set(t0 + chrono::Duration::seconds(301));
    assert_eq!(q.receive(QueueName::Classify, 10).await.unwrap().len(), 2);
}
