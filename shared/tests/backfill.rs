//! Backfill through the real step, the real Graph and OpsRamp clients, the simulator over
//! HTTPS and the embedded store: every alert of a past window stored and classified, tickets
//! only for young incidents (all with the age limit lifted), a second run changing nothing,
//! progress per page, the cursor left alone, and the refusals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::Product;
use shared::domain::classify::DecisionKind;
use shared::domain::tenant::Tenant;
use shared::messages::QueueName;
use shared::ports::{ManualClock, Queue, Store};
use shared::steps::backfill::{self, BackfillRequest, Progress, Refused};
use shared::steps::{fetch, Deps};

const AZ: &str = "7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";
const NOW: &str = "2026-11-20T01:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn alert(id: &str, source: &str, updated: &str, severity: &str, group: Option<&str>) -> Value {
    let evidence: Vec<Value> = group
        .map(|g| {
            vec![
                json!({"@odata.type": "#microsoft.graph.security.deviceEvidence",
                "rbacGroupName": g, "mdeDeviceId": format!("dev-{id}")}),
            ]
        })
        .unwrap_or_default();
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id,
        "incidentId": format!("inc-{id}"),
        "status": "new",
        "severity": severity,
        "serviceSource": source,
        "tenantId": AZ,
        "title": format!("alert {id}"),
        "createdDateTime": updated,
        "lastUpdateDateTime": updated,
        "evidence": evidence,
    })
}

const MDE: &str = "microsoftDefenderForEndpoint";
const MDI: &str = "microsoftDefenderForIdentity";

/// Now is 2026-11-20 01:00Z; "young" is within 7 days of it.
fn alerts() -> Vec<Value> {
    vec![
        // MDE: watched group Servers, incidents from medium up.
        alert(
            "da-mon",
            MDE,
            "2026-11-12T00:00:00Z",
            "low",
            Some("Servers"),
        ),
        alert(
            "da-out",
            MDE,
            "2026-11-13T00:00:00Z",
            "high",
            Some("Workstations"),
        ),
        alert(
            "da-inc-old",
            MDE,
            "2026-11-01T00:00:00Z",
            "high",
            Some("Servers"),
        ),
        alert(
            "da-inc-young",
            MDE,
            "2026-11-18T00:00:00Z",
            "high",
            Some("Servers"),
        ),
        // MDI: every alert is an incident.
        alert("aa-before", MDI, "2026-10-15T00:00:00Z", "medium", None),
        alert("aa-old-1", MDI, "2026-11-03T00:00:00Z", "medium", None),
        alert("aa-old-2", MDI, "2026-11-10T00:00:00Z", "medium", None),
        alert("aa-young-1", MDI, "2026-11-14T00:00:00Z", "medium", None),
        alert("aa-young-1", MDI, "2026-11-15T00:00:00Z", "high", None),
        alert("aa-young-2", MDI, "2026-11-19T20:00:00Z", "medium", None),
    ]
}

struct Rig {
    sim: Sim,
    deps: Deps,
    store: Arc<SqliteStore>,
    graph: GraphClient,
}

async fn rig() -> Rig {
    shared::adapters::http::install_crypto_provider();
    let now = at(NOW);
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: "s3cr3t-backfill".into(),
                alerts: alerts(),
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: "o".into(),
            state_file: None,
            all_visible: false,
            start_clock: now,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let http = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        timeout: Duration::from_secs(10),
        ..Default::default()
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
    let graph = || {
        GraphClient::new(
            GraphConfig {
                graph_base: sim.graph_base(),
                authority_host: sim.authority_host(),
                http: http.clone(),
                page_size: 2,
                retry: RetryPolicy {
                    max_attempts: 2,
                    base: Duration::from_millis(5),
                    cap: Duration::from_millis(20),
                    max_server_wait: Duration::from_secs(5),
                },
            },
            vec![AzureAppCredential {
                tenant: TENANT.into(),
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: Secret::new("s3cr3t-backfill".to_string()),
            }],
        )
        .unwrap()
    };
    let clock = ManualClock::new(now);
    let store = Arc::new(SqliteStore::in_memory().unwrap().with_clock(clock.clone()));
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph()),
        tickets,
        clock,
        settings: Default::default(),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(&json!({
        "id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde", "mdi"],
        "contacts": {"to": ["soc@kaede.example.jp"]},
        "mde": {"device_groups": ["Servers"], "incident_min_severity": "medium"},
        "mdi": {}
    }))
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    let graph = graph();
    Rig {
        sim,
        deps,
        store,
        graph,
    }
}

fn request(since: &str, until: Option<&str>, max_age_days: Option<u64>) -> BackfillRequest {
    BackfillRequest {
        tenant: TENANT.into(),
        since: at(since),
        until: until.map(at),
        product: None,
        max_ticket_age: max_age_days.map(|d| Duration::from_secs(d * 24 * 3600)),
    }
}

/// Titles of our customer tickets, sorted.
fn ticket_titles(sim: &Sim) -> Vec<String> {
    let mut v: Vec<String> = sim
        .tickets()
        .into_iter()
        .filter(|t| t.client() == "client_1234")
        .map(|t| t.subject)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn backfill_stores_classifies_and_tickets_only_young_incidents_then_all_with_tickets() {
    let r = rig().await;
    let calls: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let c2 = calls.clone();
    let mut progress = move |p: &Progress| c2.lock().unwrap().push(*p);
    let req = request("2026-10-21T00:00:00Z", None, Some(7));
    let out = backfill::run(&r.deps, &r.graph, &req, &mut progress)
        .await
        .unwrap();
    let t = out.totals;
    // 4 MDE + 4 MDI in the window (aa-before is older than --since; aa-young-1 served once).
    assert_eq!(t.alerts, 8, "{out:#?}");
    assert_eq!(t.new_versions, 8);
    assert_eq!((t.out_of_scope, t.monitored, t.incident), (1, 1, 6));
    assert_eq!(
        (t.tickets_queued, t.held_too_old, t.already_ticketed),
        (3, 3, 0)
    );
    assert_eq!(out.by_product[&Product::Mde].incident, 2);
    assert_eq!(out.by_product[&Product::Mdi].tickets_queued, 2);
    // Two per page: 2 pages per product, progress after each.
    assert_eq!(t.pages, 4);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(
        calls.iter().map(|p| (p.pages, p.items)).collect::<Vec<_>>(),
        vec![(1, 2), (2, 4), (3, 6), (4, 8)]
    );
    assert_eq!(calls[0].expected, Some(4));
    assert_eq!(calls[3].expected, Some(8));
    assert_eq!(calls[3].product, Product::Mdi);

    // Every alert stored with its decision; the cursor did not move.
    let ids = r.store.list_alert_ids(TENANT).await.unwrap();
    assert_eq!(ids.len(), 8);
    assert!(!ids.contains(&"aa-before".to_string()));
    let decisions = r.store.list_decisions(TENANT).await.unwrap();
    assert_eq!(decisions.len(), 8);
    assert!(decisions.contains(&("da-out".into(), DecisionKind::OutOfScope)));
    assert!(decisions.contains(&("aa-old-1".into(), DecisionKind::Incident)));
    for p in [Product::Mde, Product::Mdi] {
        assert_eq!(r.store.get_cursor(TENANT, p).await.unwrap(), None);
    }
    // Nothing waits for classify: the backfill classified each version itself.
    assert_eq!(r.store.depth(QueueName::Classify).await.unwrap(), (0, 0));

    let stats = shared::runner::drain(&r.deps).await.unwrap();
    assert_eq!((stats.ticketed, stats.failed), (3, 0));
    assert_eq!(
        ticket_titles(&r.sim),
        vec![
            "【重大度: 中】alert aa-young-2",
            "【重大度: 高】alert aa-young-1",
            "【重大度: 高】alert da-inc-young",
        ]
    );

    // The same window again: nothing new stored, nothing handed on, no ticket, no response.
    let again = backfill::run(&r.deps, &r.graph, &req, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(again.totals.new_versions, 0);
    assert_eq!(again.totals.tickets_queued, 0);
    assert_eq!(again.totals.already_ticketed, 3);
    assert_eq!(again.totals.held_too_old, 3);
    let stats = shared::runner::drain(&r.deps).await.unwrap();
    assert_eq!(stats.ticketed, 0);
    assert_eq!(r.sim.tickets().len(), 3);
    assert!(r.sim.tickets().iter().all(|t| t.responses.is_empty()));

    // --tickets: the old incidents are ticketed too, the young ones are not touched again.
    let all = request("2026-10-21T00:00:00Z", None, None);
    let out = backfill::run(&r.deps, &r.graph, &all, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (
            out.totals.tickets_queued,
            out.totals.already_ticketed,
            out.totals.held_too_old
        ),
        (3, 3, 0)
    );
    assert_eq!(out.ticket_max_age_hours, None);
    shared::runner::drain(&r.deps).await.unwrap();
    assert_eq!(r.sim.tickets().len(), 6);
    // And once more: still six.
    let out = backfill::run(&r.deps, &r.graph, &all, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(out.totals.tickets_queued, 0);
    shared::runner::drain(&r.deps).await.unwrap();
    assert_eq!(r.sim.tickets().len(), 6);
    assert!(r.sim.tickets().iter().all(|t| t.responses.is_empty()));
}

#[tokio::test]
async fn the_regular_fetch_does_not_hand_on_what_a_backfill_classified() {
    let r = rig().await;
    backfill::run(
        &r.deps,
        &r.graph,
        &request("2026-10-21T00:00:00Z", None, Some(7)),
        &mut |_| {},
    )
    .await
    .unwrap();
    // The first fetch reads the last 24 hours: aa-young-2 is in it, stored and classified.
    let out = fetch::run(&r.deps, TENANT, Product::Mdi).await.unwrap();
    assert_eq!((out.fetched, out.new_versions, out.incidents), (1, 0, 0));
    assert_eq!(r.store.depth(QueueName::Classify).await.unwrap(), (0, 0));
}

#[tokio::test]
async fn the_window_is_half_open_and_one_product_can_be_chosen() {
    let r = rig().await;
    let mut req = request(
        "2026-11-03T00:00:00Z",
        Some("2026-11-14T00:00:00Z"),
        Some(7),
    );
    req.product = Some(Product::Mdi);
    let out = backfill::run(&r.deps, &r.graph, &req, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(out.products, vec![Product::Mdi]);
    // aa-old-1 at exactly --since is in; aa-young-1 (newest version 11-15) is not.
    let mut ids = r.store.list_alert_ids(TENANT).await.unwrap();
    ids.sort();
    assert_eq!(ids, vec!["aa-old-1", "aa-old-2"]);
    assert_eq!(out.totals.held_too_old, 2);
}

#[tokio::test]
async fn refusals_name_the_problem_and_read_nothing() {
    let r = rig().await;
    let before = r.sim.stats().graph_alert_requests;
    let cases: Vec<(BackfillRequest, &str)> = vec![
        (
            BackfillRequest {
                tenant: "nobody".into(),
                ..request("2026-11-01T00:00:00Z", None, Some(7))
            },
            "not registered",
        ),
        (
            request("2026-11-21T00:00:00Z", None, Some(7)),
            "in the future",
        ),
        (
            request(
                "2026-11-10T00:00:00Z",
                Some("2026-11-10T00:00:00Z"),
                Some(7),
            ),
            "not before --until",
        ),
        (
            request(
                "2026-11-10T00:00:00Z",
                Some("2026-11-25T00:00:00Z"),
                Some(7),
            ),
            "--until",
        ),
        (request("2026-05-01T00:00:00Z", None, Some(7)), "180 days"),
        (
            BackfillRequest {
                product: Some(Product::Idp),
                ..request("2026-11-01T00:00:00Z", None, Some(7))
            },
            "does not subscribe to idp",
        ),
    ];
    for (req, want) in cases {
        let e = backfill::run(&r.deps, &r.graph, &req, &mut |_| {})
            .await
            .unwrap_err();
        let refused = e
            .downcast_ref::<Refused>()
            .unwrap_or_else(|| panic!("not a refusal: {e:#}"));
        assert!(
            refused.0.contains(want),
            "{} does not say {want}",
            refused.0
        );
    }
    assert_eq!(r.sim.stats().graph_alert_requests, before);
    assert!(r.store.list_alert_ids(TENANT).await.unwrap().is_empty());
}
