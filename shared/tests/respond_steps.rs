//! First response through the real steps, the embedded queue (on a simulated clock) and the
//! simulated Defender for Endpoint: business hours across a weekend and a holiday, MDE's
//! "already in progress", and duplicate deliveries calling the API once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::HttpSettings;
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::{QueueSettings, SqliteStore};
use shared::domain::alert::{Alert, Product};
use shared::domain::tenant::Tenant;
use shared::messages::{AlertRef, QueueName};
use shared::ports::{ActionStatus, ManualClock, Store};
use shared::steps::{respond, Deps};

const AZ: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

fn jst(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Rig {
    sim: Sim,
    deps: Deps,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
}

async fn rig(response: serde_json::Value, start: &str) -> Rig {
    shared::adapters::http::install_crypto_provider();
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: "s".into(),
                alerts: vec![],
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: "o".into(),
            state_file: None,
            all_visible: false,
            start_clock: jst(start),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    sim.add_devices(AZ, vec![json!({"id": "d1", "computerDnsName": "d1", "osPlatform": "Windows11", "version": "23H2", "rbacGroupName": "PC", "machineTags": []})]);
    let http = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        ..Default::default()
    };
    let cred = || {
        vec![AzureAppCredential {
            tenant: "kaede-shoji".into(),
            azure_tenant_id: AZ.into(),
            client_id: "app".into(),
            client_secret: Secret::new("s".to_string()),
        }]
    };
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = http.clone();
    let tickets = Arc::new(
        OpsRampClient::new(
            oc,
            OpsRampCredential {
                client_id: "ops".into(),
                client_secret: Secret::new("o".to_string()),
            },
        )
        .unwrap(),
    );
    let clock = ManualClock::new(jst(start));
    let store = Arc::new(
        SqliteStore::in_memory()
            .unwrap()
            .with_clock(clock.clone())
            .with_queue_settings(QueueSettings {
                visibility_timeout: Duration::from_secs(60),
                retry_delay: Duration::from_secs(1),
                max_receive: 5,
            }),
    );
    let respond = respond::ResponseDeps {
        devices: Arc::new(
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
        ),
        users: Arc::new(
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
        ),
        mail: Arc::new(
            shared::adapters::mdo::MdoClient::new(
                &sim.graph_beta_base(),
                &sim.authority_host(),
                &http,
                cred(),
            )
            .unwrap(),
        ),
        calendar: shared::domain::calendar::Calendar::default(),
        check_every: Duration::from_secs(60),
        give_up_after: Duration::from_secs(7200),
    };
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http,
            ..Default::default()
        },
        cred(),
    )
    .unwrap();
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets,
        clock: clock.clone(),
        settings: Default::default(),
        respond: Some(Arc::new(respond)),
        investigate: None,
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(
        &json!({"id": "kaede-shoji", "name": "楓商事", "azure_tenant_id": AZ, "products": ["mde"],
        "mde": {"device_groups": ["*"], "incident_min_severity": "low"}, "response": response}),
    )
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    Rig {
        sim,
        deps,
        clock,
        store,
    }
}

impl Rig {
    /// An incident alert on device d1, ticketed (which queues first response).
    async fn incident(&self, id: &str, incident: &str, at: &str) -> AlertRef {
        let a = Alert::from_value(json!({"id": id, "lastUpdateDateTime": jst(at).to_rfc3339(), "serviceSource": "microsoftDefenderForEndpoint",
            "severity": "high", "title": "Ransomware", "tenantId": AZ, "incidentId": incident,
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "d1"}]}))
        .unwrap();
        self.store
            .put_alert_version("kaede-shoji", Product::Mde, &a)
            .await
            .unwrap();
        let msg = AlertRef::new("kaede-shoji", id, a.last_update);
        shared::steps::ticket::run(&self.deps, &msg).await.unwrap();
        msg
    }

    async fn at(&self, t: DateTime<Utc>) {
        self.clock.set(t);
        self.sim.set_clock(t);
        shared::runner::drain(&self.deps).await.unwrap();
    }

    async fn statuses(&self) -> Vec<ActionStatus> {
        self.store
            .list_actions("kaede-shoji")
            .await
            .unwrap()
            .iter()
            .map(|a| a.status)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_hours_wait_across_a_weekend_and_a_holiday() {
    // Friday 2026-11-20 18:00 JST; Monday 11-23 is 勤労感謝の日.
    let r = rig(
        json!({"hours": "business_hours", "mde": {"isolate": "auto"}}),
        "2026-11-20T18:00:00+09:00",
    )
    .await;
    r.incident("da-1", "501", "2026-11-20T18:00:00+09:00").await;
    r.at(jst("2026-11-20T18:00:00+09:00")).await;
    assert_eq!(r.statuses().await, vec![ActionStatus::WaitingHours]);
    let mut t = jst("2026-11-20T18:00:00+09:00");
    let opens = jst("2026-11-24T09:00:00+09:00");
    while t < opens - chrono::Duration::minutes(1) {
        t += chrono::Duration::minutes(15);
        r.at(t.min(opens - chrono::Duration::minutes(1))).await;
    }
    assert_eq!(
        r.statuses().await,
        vec![ActionStatus::WaitingHours],
        "still waiting on Tuesday 08:59"
    );
    assert_eq!(
        r.sim.machine_requests(),
        0,
        "nothing was sent to MDE over the weekend and the holiday"
    );
    for m in [0, 15, 30] {
        r.at(opens + chrono::Duration::minutes(m)).await;
    }
    assert_eq!(r.statuses().await, vec![ActionStatus::Succeeded]);
    assert_eq!(r.sim.machine_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_in_progress_is_tracked_and_duplicates_call_once() {
    let r = rig(
        json!({"mde": {"isolate": "auto", "scan": "auto"}}),
        "2026-11-25T10:00:00+09:00",
    )
    .await;
    let m1 = r.incident("da-1", "601", "2026-11-25T10:00:00+09:00").await;
    r.incident("da-2", "602", "2026-11-25T10:00:00+09:00").await;
    // The same plan delivered again, as SQS may.
    r.deps
        .queue
        .send_batch(QueueName::Respond, &[m1.clone(), m1])
        .await
        .unwrap();
    r.at(jst("2026-11-25T10:00:00+09:00")).await;
    // Incident 602's isolation and scan of d1 found 601's pending actions ("already in
    // progress") and track them: two actions exist in MDE, four intents here.
    assert_eq!(
        r.sim.machine_actions().len(),
        2,
        "{:?}",
        r.sim.machine_actions()
    );
    assert_eq!(
        r.sim.machine_requests(),
        4,
        "one request per intent, none for the duplicates"
    );
    let recs = r.store.list_actions("kaede-shoji").await.unwrap();
    assert_eq!(recs.len(), 4);
    let ids: std::collections::BTreeSet<_> = recs
        .iter()
        .map(|a| a.machine_action_id.clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "602 tracks 601's pending actions");
    for m in [1, 2, 4, 6] {
        r.at(jst("2026-11-25T10:00:00+09:00") + chrono::Duration::minutes(m))
            .await;
    }
    assert!(
        r.statuses()
            .await
            .iter()
            .all(|s| *s == ActionStatus::Succeeded),
        "{:?}",
        r.statuses().await
    );
    assert_eq!(r.sim.machine_requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_older_than_a_day_is_ticketed_but_not_acted_on() {
    // A backfill tickets an incident from two days ago: nobody isolates a device for it now.
    let r = rig(
        json!({"hours": "always", "mde": {"isolate": "auto"}}),
        "2026-11-25T10:00:00+09:00",
    )
    .await;
    r.incident("da-old", "601", "2026-11-23T09:59:00+09:00")
        .await;
    r.incident("da-new", "602", "2026-11-25T09:30:00+09:00")
        .await;
    r.at(jst("2026-11-25T10:00:00+09:00")).await;
    let actions = r.store.list_actions("kaede-shoji").await.unwrap();
    let incidents: Vec<&str> = actions.iter().map(|a| a.incident_key.as_str()).collect();
    assert_eq!(incidents, vec!["incident:602"], "{actions:?}");
}
