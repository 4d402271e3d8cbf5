//! Ingest health without an operator sink: no incident anywhere, only the structured log
//! line `ingest_unhealthy=1 tenant=… product=…` that the CloudWatch metric filter counts —
//! from the N-th failed cycle on, at once for a refused token, and never with a secret.
//! (Its own test binary: it installs a capturing `tracing` subscriber.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span;

use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::Product;
use shared::domain::tenant::Tenant;
use shared::ports::{ManualClock, Store};
use shared::steps::{fetch, Deps};

const AZ: &str = "7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";
const APP_SECRET: &str = "app-s3cr3t-log-0123";

type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Every event's fields (and its level), as text.
struct Capture(Events);

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_string(), format!("{v:?}"));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_string(), v.to_string());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut f = Fields(BTreeMap::new());
        e.record(&mut f);
        f.0.insert("level".into(), e.metadata().level().to_string());
        self.0.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn rig(app_secret: &str) -> (Sim, Deps) {
    shared::adapters::http::install_crypto_provider();
    let now = at("2026-11-20T01:00:00Z");
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: APP_SECRET.into(),
                alerts: vec![],
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: "o".into(),
            state_file: None,
            all_visible: true,
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
    let fast = RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_server_wait: Duration::from_secs(5),
    };
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = http.clone();
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http,
            retry: fast,
            ..Default::default()
        },
        vec![AzureAppCredential {
            tenant: TENANT.into(),
            azure_tenant_id: AZ.into(),
            client_id: "app".into(),
            client_secret: Secret::new(app_secret.to_string()),
        }],
    )
    .unwrap();
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets: Arc::new(
            OpsRampClient::new(
                oc,
                OpsRampCredential {
                    client_id: "ops".into(),
                    client_secret: Secret::new("o".to_string()),
                },
            )
            .unwrap(),
        ),
        clock: ManualClock::new(now),
        // No operator section: the default sink is none.
        settings: Default::default(),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(&json!({
        "id": TENANT, "name": "楓商事", "azure_tenant_id": AZ, "products": ["mde"],
        "mde": {"device_groups": ["*"], "incident_min_severity": "high"}
    }))
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    (sim, deps)
}

fn unhealthy(events: &Events) -> Vec<BTreeMap<String, String>> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.get("ingest_unhealthy").map(String::as_str) == Some("1"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn without_an_operator_sink_only_the_log_line_is_written() {
    let events: Events = Arc::default();
    let _guard = tracing::subscriber::set_default(Capture(events.clone()));

    // Graph failing: the line from the third cycle on, with tenant, product and kind.
    let (sim, deps) = rig(APP_SECRET).await;
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 10_000,
            status: 503,
        },
    );
    for n in 1..=4 {
        assert!(fetch::run(&deps, TENANT, Product::Mde).await.is_err());
        let lines = unhealthy(&events);
        assert_eq!(lines.len(), n.max(2) - 2, "after cycle {n}: {lines:?}");
    }
    let line = &unhealthy(&events)[0];
    assert_eq!(line["tenant"], TENANT);
    assert_eq!(line["product"], "mde");
    assert_eq!(line["kind"], "fetch");
    assert_eq!(line["consecutive"], "3");
    assert_eq!(line["level"], "ERROR");
    assert!(sim.tickets().is_empty());
    // Recovery is logged too.
    sim.clear_faults();
    fetch::run(&deps, TENANT, Product::Mde).await.unwrap();
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.get("ingest_recovered").map(String::as_str) == Some("1")));

    // A refused token: the line at once, kind credential, and no secret in any event.
    events.lock().unwrap().clear();
    let (sim, deps) = rig("wrong-s3cr3t-value").await;
    assert!(fetch::run(&deps, TENANT, Product::Mde).await.is_err());
    let lines = unhealthy(&events);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["kind"], "credential");
    assert!(
        lines[0]["error"].contains("AADSTS7000215"),
        "{:?}",
        lines[0]
    );
    assert!(sim.tickets().is_empty());
    let all = format!("{:?}", events.lock().unwrap());
    for secret in ["wrong-s3cr3t-value", APP_SECRET, "simtok"] {
        assert!(!all.contains(secret), "{secret} logged");
    }
}
