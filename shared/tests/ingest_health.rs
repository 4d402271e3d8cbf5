//! Ingest health through the real fetch step, the real Graph and OpsRamp clients and the
//! simulator over HTTPS: Graph failing N cycles in a row raises exactly one operator incident
//! under the provider's own OpsRamp client, recovery posts 「復旧しました」 once; a refused
//! token raises it at once; the customers' client never sees any of it, and no secret reaches
//! the incident.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant, SimTicket};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::Product;
use shared::domain::tenant::Tenant;
use shared::ports::{ManualClock, Store};
use shared::steps::health::{self, FailureKind, HealthEvent, HealthSettings};
use shared::steps::{fetch, Deps};

const AZ: &str = "7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";
const APP_SECRET: &str = "app-s3cr3t-health-0123";
const OR_SECRET: &str = "or-s3cr3t-health-4567";
const CUSTOMERS: &str = "client_1234";
const PROVIDER: &str = "client_9999";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Rig {
    sim: Sim,
    deps: Deps,
    clock: Arc<ManualClock>,
}

/// `operator`: raise incidents under the provider's client; `app_secret`: what our side
/// sends to Entra (a wrong one is refused with AADSTS7000215).
async fn rig(operator: bool, app_secret: &str) -> Rig {
    shared::adapters::http::install_crypto_provider();
    let now = at("2026-11-20T01:00:00Z");
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: APP_SECRET.into(),
                alerts: vec![json!({
                    "id": "da1", "incidentId": "7", "status": "new", "severity": "low",
                    "serviceSource": "microsoftDefenderForEndpoint", "tenantId": AZ,
                    "title": "t", "createdDateTime": "2026-11-19T23:00:00Z",
                    "lastUpdateDateTime": "2026-11-19T23:00:00Z", "evidence": []
                })],
            }],
            opsramp_tenant_id: CUSTOMERS.into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: OR_SECRET.into(),
            state_file: None,
            all_visible: false,
            start_clock: now,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    sim.add_opsramp_client(PROVIDER);
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
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), CUSTOMERS);
    oc.http = http.clone();
    oc.retry = fast.clone();
    let cred = OpsRampCredential {
        client_id: "ops".into(),
        client_secret: Secret::new(OR_SECRET.to_string()),
    };
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
    let mut settings = shared::steps::Settings::default();
    if operator {
        settings.ingest_health = HealthSettings::with_operator(
            &oc,
            cred.clone(),
            PROVIDER,
            Some("soc@mssp.example.jp".into()),
            3,
        )
        .unwrap();
    }
    let clock = ManualClock::new(now);
    let store = Arc::new(SqliteStore::in_memory().unwrap().with_clock(clock.clone()));
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets: Arc::new(OpsRampClient::new(oc, cred).unwrap()),
        clock: clock.clone(),
        settings,
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(&json!({
        "id": TENANT, "name": "楓商事株式会社", "azure_tenant_id": AZ,
        "products": ["mde"],
        "mde": {"device_groups": ["*"], "incident_min_severity": "high"}
    }))
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    Rig { sim, deps, clock }
}

fn provider_tickets(sim: &Sim) -> Vec<SimTicket> {
    sim.tickets()
        .into_iter()
        .filter(|t| t.client() == PROVIDER)
        .collect()
}

/// One minute later, one fetch cycle.
async fn cycle(r: &Rig) -> anyhow::Result<fetch::FetchOutcome> {
    r.clock.set(r.clock_now() + chrono::Duration::minutes(1));
    r.sim.set_clock(r.clock_now());
    fetch::run(&r.deps, TENANT, Product::Mde).await
}

impl Rig {
    fn clock_now(&self) -> DateTime<Utc> {
        use shared::ports::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn graph_failing_three_cycles_raises_one_operator_incident_and_recovery_is_posted_once() {
    let r = rig(true, APP_SECRET).await;
    r.sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 10_000,
            status: 503,
        },
    );
    let first = r.clock_now() + chrono::Duration::minutes(1);
    for n in 1..=2u32 {
        assert!(cycle(&r).await.is_err());
        let st = health::state(&r.deps, TENANT, Product::Mde).await.unwrap();
        assert_eq!(st.consecutive, n);
        assert_eq!(st.last_kind, Some(FailureKind::Fetch));
        assert!(
            r.sim.tickets().is_empty(),
            "no incident before the third failure"
        );
    }
    assert!(cycle(&r).await.is_err());
    let raised = provider_tickets(&r.sim);
    assert_eq!(raised.len(), 1);
    let inc = &raised[0];
    assert_eq!(
        inc.ext_ticket_id.as_deref(),
        Some("mss-kaede-shoji-ingest-mde-20261120T010100Z")
    );
    assert!(
        inc.subject
            .starts_with("【取り込み障害】楓商事株式会社（kaede-shoji）MDE"),
        "{}",
        inc.subject
    );
    for want in [
        "テナント: 楓商事株式会社（kaede-shoji）",
        "Microsoft Defender for Endpoint（mde）",
        "最初の失敗: 2026年11月20日 10:01:00 (JST)",
        "連続失敗回数: 3 回",
        "HTTP 503",
    ] {
        assert!(
            inc.description.contains(want),
            "missing {want:?} in\n{}",
            inc.description
        );
    }
    assert_eq!(inc.to_email.as_deref(), Some("soc@mssp.example.jp"));
    assert_eq!(inc.priority, "High");
    for secret in [APP_SECRET, OR_SECRET, "simtok"] {
        assert!(!inc.description.contains(secret) && !inc.subject.contains(secret));
    }
    let st = health::state(&r.deps, TENANT, Product::Mde).await.unwrap();
    assert_eq!(st.first_failure, Some(first));
    assert_eq!(st.operator_ticket.as_deref(), Some(inc.id.as_str()));

    // A fourth failed cycle: still one incident, not touched again.
    assert!(cycle(&r).await.is_err());
    assert_eq!(r.sim.tickets().len(), 1);
    assert_eq!(provider_tickets(&r.sim)[0].updates, 0);

    // Graph is back: the first good fetch posts the recovery once and resets the count.
    r.sim.clear_faults();
    let out = cycle(&r).await.unwrap();
    assert_eq!(
        out.health,
        Some(HealthEvent::Recovered {
            after_failures: 4,
            operator_ticket: Some(inc.id.clone())
        })
    );
    assert_eq!(out.new_versions, 1, "the alert of the gap is read");
    let inc = &provider_tickets(&r.sim)[0];
    assert_eq!(inc.responses.len(), 1);
    assert!(inc.responses[0].description.starts_with("復旧しました。"));
    assert!(inc.responses[0].description.contains("連続失敗 4 回"));
    assert_eq!(
        health::state(&r.deps, TENANT, Product::Mde).await.unwrap(),
        Default::default()
    );
    let out = cycle(&r).await.unwrap();
    assert_eq!(out.health, None);
    assert_eq!(provider_tickets(&r.sim)[0].responses.len(), 1);

    // A new outbreak counts from one again.
    r.sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 10_000,
            status: 500,
        },
    );
    assert!(cycle(&r).await.is_err());
    assert_eq!(r.sim.tickets().len(), 1);
    assert_eq!(
        health::state(&r.deps, TENANT, Product::Mde)
            .await
            .unwrap()
            .consecutive,
        1
    );
    // The customers' client never saw any of it.
    assert!(r.sim.tickets().iter().all(|t| t.client() == PROVIDER));
}

#[tokio::test]
async fn a_refused_token_raises_the_operator_incident_at_once() {
    let r = rig(true, "not-the-secret").await;
    let e = cycle(&r).await.unwrap_err();
    assert_eq!(health::failure_kind(&e), FailureKind::Credential);
    let raised = provider_tickets(&r.sim);
    assert_eq!(
        raised.len(),
        1,
        "one failure is enough for a credential problem"
    );
    let inc = &raised[0];
    assert!(
        inc.subject.contains("トークン取得に失敗"),
        "{}",
        inc.subject
    );
    assert_eq!(inc.priority, "Urgent");
    assert!(
        inc.description.contains("AADSTS7000215"),
        "{}",
        inc.description
    );
    assert!(inc.description.contains("連続失敗回数: 1 回"));
    for secret in ["not-the-secret", APP_SECRET, OR_SECRET] {
        assert!(
            !inc.description.contains(secret),
            "secret in {}",
            inc.description
        );
    }
    // Still refused next minute: no second incident.
    assert!(cycle(&r).await.is_err());
    assert_eq!(r.sim.tickets().len(), 1);
}

#[tokio::test]
async fn an_unreachable_operator_client_does_not_hide_the_fetch_error_and_is_retried() {
    let r = rig(true, "not-the-secret").await;
    r.sim.set_fault(
        Endpoint::OpsRampSearch,
        Fault::ServerError {
            times: 2,
            status: 503,
        },
    );
    let e = cycle(&r).await.unwrap_err();
    assert!(format!("{e:#}").contains("token request failed"), "{e:#}");
    assert!(r.sim.tickets().is_empty());
    // The next failed cycle raises it (once).
    assert!(cycle(&r).await.is_err());
    assert!(cycle(&r).await.is_err());
    assert_eq!(provider_tickets(&r.sim).len(), 1);
}

#[tokio::test]
async fn an_unreadable_health_state_does_not_stop_the_fetch() {
    let r = rig(true, APP_SECRET).await;
    r.deps
        .store
        .put_doc(TENANT, health::DOC_KIND, "mde", "{not json")
        .await
        .unwrap();
    let out = cycle(&r)
        .await
        .expect("the fetch runs whatever its health document holds");
    assert_eq!(out.new_versions, 1, "the alert is ingested");
    assert!(out.health.is_none());
    assert!(provider_tickets(&r.sim).is_empty());
    r.sim.shutdown().await;
}
