//! R-LOG-THREAT end to end: findings of the customer's Sentinel analytics rules reach the
//! service as Graph alerts_v2 alerts with `serviceSource = microsoftSentinel` (an evolvable enum
//! member, visible only with `Prefer: include-unknown-enum-members`). Served by the simulator,
//! they are fetched by the real Graph client, classified per the tenant's `[sentinel]`
//! threshold and ticketed in the simulated OpsRamp: one ticket per Sentinel incident.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::HttpSettings;
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::Product;
use shared::domain::classify::DecisionKind;
use shared::domain::tenant::Tenant;
use shared::ports::{ManualClock, Store};
use shared::steps::Deps;

const AZ: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A Sentinel analytics finding as alerts_v2 serves it (id prefix `sn`).
fn sentinel_alert(id: &str, incident: &str, severity: &str, title: &str, updated: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id, "providerAlertId": id.trim_start_matches("sn"), "incidentId": incident,
        "status": "new", "severity": severity, "classification": null, "determination": null,
        "serviceSource": "microsoftSentinel", "detectionSource": "scheduledAlerts",
        "detectorId": "6b0f7ae5-5a3e-4c1d-9e2f-8a7b6c5d4e3f", "tenantId": AZ, "title": title,
        "category": "CredentialAccess",
        "description": "Sentinel の分析ルールが不審なアクティビティを検出しました。",
        "alertWebUrl": format!("https://security.microsoft.com/alerts/{id}?tid={AZ}"),
        "incidentWebUrl": format!("https://security.microsoft.com/incidents/{incident}?tid={AZ}"),
        "mitreTechniques": ["T1110.003"], "comments": [], "systemTags": [],
        "createdDateTime": updated, "lastUpdateDateTime": updated,
        "firstActivityDateTime": updated, "lastActivityDateTime": updated,
        "evidence": [{"@odata.type": "#microsoft.graph.security.userEvidence", "verdict": "suspicious",
            "remediationStatus": "none", "roles": [],
            "userAccount": {"accountName": "t.sato", "userPrincipalName": "t.sato@kaede.example", "displayName": "佐藤 太郎"}}],
    })
}

#[tokio::test]
async fn sentinel_findings_are_fetched_classified_by_the_sentinel_threshold_and_ticketed() {
    shared::adapters::http::install_crypto_provider();
    let now = at("2026-11-24T03:00:00Z");
    let alerts = vec![
        sentinel_alert(
            "sn-0001",
            "2101",
            "high",
            "Password spray against multiple accounts",
            "2026-11-24T01:00:00Z",
        ),
        // The same Sentinel incident: one ticket, updated.
        sentinel_alert(
            "sn-0002",
            "2101",
            "medium",
            "Successful sign-in after password spray",
            "2026-11-24T01:10:00Z",
        ),
        sentinel_alert(
            "sn-0003",
            "2102",
            "medium",
            "Mail forwarding to an external domain",
            "2026-11-24T01:20:00Z",
        ),
        // Below the agreed threshold: monitored, no ticket.
        sentinel_alert(
            "sn-0004",
            "2103",
            "low",
            "Legacy authentication sign-in",
            "2026-11-24T01:30:00Z",
        ),
        // Another product's alert in the same tenant: not fetched as Sentinel.
        json!({"id": "aa-0005", "lastUpdateDateTime": "2026-11-24T01:40:00Z", "serviceSource": "microsoftDefenderForIdentity",
            "severity": "high", "status": "new", "title": "Suspected DCSync attack", "tenantId": AZ, "incidentId": "2104"}),
    ];
    let sim = Sim::start(
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
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http.clone(),
            ..Default::default()
        },
        vec![AzureAppCredential {
            tenant: TENANT.into(),
            azure_tenant_id: AZ.into(),
            client_id: "app".into(),
            client_secret: Secret::new("s".to_string()),
        }],
    )
    .unwrap();
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = http;
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
    let clock = ManualClock::new(now);
    let store = Arc::new(SqliteStore::in_memory().unwrap().with_clock(clock.clone()));
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets,
        clock,
        settings: Default::default(),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    let tenant = Tenant::from_toml(&format!(
        "id = \"{TENANT}\"\nname = \"楓商事株式会社\"\nazure_tenant_id = \"{AZ}\"\n\
         products = [\"sentinel\"]\n[contacts]\nto = [\"soc-contact@kaede.example\"]\n\
         [sentinel]\nincident_min_severity = \"medium\"\n"
    ))
    .unwrap();
    store.put_tenant(&tenant).await.unwrap();

    let fetched = shared::steps::fetch::run(&deps, TENANT, Product::Sentinel)
        .await
        .unwrap();
    assert_eq!(fetched.new_versions, 4, "{fetched:?}");
    let drained = shared::runner::drain(&deps).await.unwrap();
    assert_eq!(drained.failed, 0, "{drained:?}");

    let decisions: std::collections::HashMap<String, DecisionKind> = store
        .list_decisions(TENANT)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(decisions.len(), 4, "{decisions:?}");
    for id in ["sn-0001", "sn-0002", "sn-0003"] {
        assert_eq!(decisions[id], DecisionKind::Incident, "{id}");
    }
    assert_eq!(decisions["sn-0004"], DecisionKind::Monitored);
    let stored = store
        .get_decision(TENANT, "sn-0001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.product, Some(Product::Sentinel));

    let t = sim.tickets();
    assert_eq!(t.len(), 2, "one ticket per Sentinel incident: {t:?}");
    let spray = t
        .iter()
        .find(|t| t.subject.contains("Password spray"))
        .expect("the high alert's incident is ticketed");
    assert!(spray.subject.starts_with("【重大度: "), "{}", spray.subject);
    assert!(
        spray.description.contains("Microsoft Sentinel"),
        "{}",
        spray.description
    );
    assert_eq!(spray.to_email.as_deref(), Some("soc-contact@kaede.example"));
    assert!(
        spray.responses.iter().any(|r| r
            .description
            .contains("Successful sign-in after password spray")),
        "the second alert of incident 2101 is added to its ticket: {:?}",
        spray.responses
    );
    assert!(t.iter().any(|t| t.subject.contains("Mail forwarding")));
    assert!(!t
        .iter()
        .any(|t| t.subject.contains("Legacy authentication")));

    // A second cycle finds nothing new and tickets nothing again.
    let again = shared::steps::fetch::run(&deps, TENANT, Product::Sentinel)
        .await
        .unwrap();
    assert_eq!(again.new_versions, 0);
    shared::runner::drain(&deps).await.unwrap();
    assert_eq!(sim.tickets().len(), 2);
    sim.shutdown().await;
}
