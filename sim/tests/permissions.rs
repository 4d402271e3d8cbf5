//! Permission denials, token refusals and the list endpoints a preflight probes, over real
//! HTTPS (the client trusts only the simulator's CA).

use std::time::Duration;

use chrono::Utc;
use mss_sim::{Endpoint, Fault, Permission, Resource, Sim, SimConfig, SimTenant, TokenRefusal};
use reqwest::StatusCode;
use serde_json::{json, Value};

const GRAPH: &str = "https://graph.microsoft.com/.default";
const MDE: &str = "https://api.securitycenter.microsoft.com/.default";
const LA: &str = "https://api.loganalytics.io/.default";
const AZ: &str = "00000001-aaaa-bbbb-cccc-000000000000";
const WS: &str = "11111111-2222-4333-8444-555555555555";

async fn start() -> (Sim, reqwest::Client) {
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app-1".into(),
                client_secret: "secret-1".into(),
                alerts: vec![],
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "or-id".into(),
            opsramp_client_secret: "or-secret".into(),
            state_file: None,
            all_visible: true,
            start_clock: Utc::now(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    (sim, client)
}

async fn token_answer(sim: &Sim, c: &reqwest::Client, scope: &str) -> (StatusCode, Value) {
    let r = c
        .post(format!("{}/{AZ}/oauth2/v2.0/token", sim.authority_host()))
        .form(&[
            ("client_id", "app-1"),
            ("client_secret", "secret-1"),
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

async fn token(sim: &Sim, c: &reqwest::Client, scope: &str) -> String {
    let (s, v) = token_answer(sim, c, scope).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

async fn get(c: &reqwest::Client, url: &str, tok: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(tok).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn post(c: &reqwest::Client, url: &str, tok: &str, body: Value) -> (StatusCode, Value) {
    let r = c
        .post(url)
        .bearer_auth(tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn list_endpoints_serve_top_paging_and_select() {
    let (sim, c) = start().await;
    sim.add_users(
        AZ,
        (1..=3)
            .map(|i| json!({"id": format!("u{i}"), "displayName": format!("User {i}"), "mail": null}))
            .collect(),
    );
    sim.add_devices(
        AZ,
        vec![
            json!({"id": "m2", "osPlatform": "Windows11"}),
            json!({"id": "m1", "osPlatform": "Windows10"}),
        ],
    );
    sim.add_risk_detections(AZ, vec![json!({"id": "rd-1", "riskLevel": "medium"})]);
    let g = token(&sim, &c, GRAPH).await;
    let m = token(&sim, &c, MDE).await;

    let (s, v) = get(
        &c,
        &format!("{}/users?$top=2&$select=id", sim.graph_base()),
        &g,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"], json!([{"id": "u1"}, {"id": "u2"}]));
    let next = v["@odata.nextLink"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, v) = get(&c, &next, &g).await;
    assert_eq!(v["value"], json!([{"id": "u3"}]));
    assert!(v.get("@odata.nextLink").is_none());
    let (s, v) = get(&c, &format!("{}/users?$top=1000", sim.graph_base()), &g).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "BadRequest");

    let (s, v) = get(&c, &format!("{}/machines?$top=1", sim.mde_base()), &m).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"][0]["id"], "m1", "ordered by id");
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
    assert!(v["@odata.context"].as_str().unwrap().ends_with("#Machines"));
    let (s, _) = get(&c, &format!("{}/machines?$top=10001", sim.mde_base()), &m).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A Graph token is not an MDE token.
    let (s, v) = get(&c, &format!("{}/machines", sim.mde_base()), &g).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    let url = format!(
        "{}/identityProtection/riskDetections?$top=1",
        sim.graph_base()
    );
    let (s, v) = get(&c, &url, &g).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["value"][0]["id"], "rd-1");
    // Identity Protection: 1 request a second per tenant, 429 without Retry-After.
    let r = c.get(&url).bearer_auth(&g).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none());
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let (s, _) = get(&c, &url, &g).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(
        &c,
        &format!(
            "{}/identityProtection/riskDetections?$top=501",
            sim.graph_base()
        ),
        &g,
    )
    .await;
    assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::TOO_MANY_REQUESTS);

    // Faults apply to the list endpoints too.
    sim.set_fault(
        Endpoint::MdeRead,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    let (s, _) = get(&c, &format!("{}/machines", sim.mde_base()), &m).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn denied_permissions_answer_each_apis_real_403() {
    let (sim, c) = start().await;
    sim.add_devices(AZ, vec![json!({"id": "m1", "osPlatform": "Windows11"})]);
    sim.add_users(AZ, vec![json!({"id": "u1"})]);
    sim.add_workspace(AZ, WS);
    let g = token(&sim, &c, GRAPH).await;
    let m = token(&sim, &c, MDE).await;
    let l = token(&sim, &c, LA).await;

    sim.deny(AZ, Permission::SecurityAlertReadAll);
    let (s, v) = get(
        &c,
        &format!("{}/security/alerts_v2?$top=1", sim.graph_base()),
        &g,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "Forbidden");
    assert_eq!(
        v["error"]["message"],
        "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: ThreatHunting.Read.All,IdentityRiskEvent.Read.All,IdentityRiskyUser.ReadWrite.All,User.Read.All,SecurityAnalyzedMessage.ReadWrite.All."
    );
    for k in ["date", "request-id", "client-request-id"] {
        assert!(v["error"]["innerError"][k].is_string(), "{v}");
    }

    sim.deny(AZ, Permission::UserReadAll);
    for url in [
        format!("{}/users?$top=1", sim.graph_base()),
        format!("{}/users/u1", sim.graph_base()),
    ] {
        let (s, v) = get(&c, &url, &g).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "Authorization_RequestDenied");
        assert_eq!(
            v["error"]["message"],
            "Insufficient privileges to complete the operation."
        );
    }

    sim.deny(AZ, Permission::IdentityRiskyUserReadWriteAll);
    let (s, v) = post(
        &c,
        &format!(
            "{}/identityProtection/riskyUsers/confirmCompromised",
            sim.graph_base()
        ),
        &g,
        json!({"userIds": ["u1"]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("required scopes are missing"));
    assert!(sim.confirmed_users().is_empty());

    sim.deny(AZ, Permission::ThreatHuntingReadAll);
    let before = sim.hunting_queries().len();
    let (s, v) = post(
        &c,
        &format!("{}/security/runHuntingQuery", sim.graph_base()),
        &g,
        json!({"Query": "print 1"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(sim.hunting_queries()[before].status, 403);

    sim.deny(AZ, Permission::MachineIsolate);
    let (s, v) = post(
        &c,
        &format!("{}/machines/m1/isolate", sim.mde_base()),
        &m,
        json!({"Comment": "x", "IsolationType": "Full"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        v["error"]["message"],
        "Missing application roles. API required roles: Machine.Isolate, application roles: Machine.Read.All,Machine.Scan."
    );
    assert!(v["error"]["target"].is_string());
    assert!(sim.machine_actions().is_empty());
    // Scanning is its own permission and still allowed.
    let (s, _) = post(
        &c,
        &format!("{}/machines/m1/runAntiVirusScan", sim.mde_base()),
        &m,
        json!({"Comment": "x", "ScanType": "Full"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    sim.deny(AZ, Permission::MachineReadAll);
    for path in ["machines", "machines/m1", "machineactions"] {
        let (s, v) = get(&c, &format!("{}/{path}", sim.mde_base()), &m).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with(
            "Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All"
        ));
    }

    sim.deny(AZ, Permission::LogAnalyticsDataRead);
    let (s, v) = post(
        &c,
        &format!("{}/v1/workspaces/{WS}/query", sim.loganalytics_base()),
        &l,
        json!({"query": "print 1"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "InsufficientAccessError");
    assert_eq!(v["error"]["innererror"]["code"], "UnauthorizedClient");

    // Granted again, each answers as before.
    sim.clear_denials();
    let (s, _) = get(&c, &format!("{}/machines/m1", sim.mde_base()), &m).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = post(
        &c,
        &format!("{}/v1/workspaces/{WS}/query", sim.loganalytics_base()),
        &l,
        json!({"query": "print 1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn token_refusals_per_resource() {
    let (sim, c) = start().await;
    sim.refuse_token(AZ, Resource::Mde, Some(TokenRefusal::ResourceNotInTenant));
    let (s, v) = token_answer(&sim, &c, MDE).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_resource");
    assert_eq!(v["error_codes"], json!([500011]));
    assert!(v["error_description"].as_str().unwrap().starts_with(&format!(
        "AADSTS500011: The resource principal named https://api.securitycenter.microsoft.com was not found in the tenant named {AZ}."
    )));
    // Other resources are unaffected.
    token(&sim, &c, GRAPH).await;

    sim.refuse_token(AZ, Resource::Graph, Some(TokenRefusal::SecretExpired));
    let (s, v) = token_answer(&sim, &c, GRAPH).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_client");
    assert!(v["error_description"].as_str().unwrap().starts_with(
        "AADSTS7000222: The provided client secret keys for app 'app-1' are expired."
    ));

    sim.refuse_token(AZ, Resource::Graph, None);
    token(&sim, &c, GRAPH).await;
    sim.clear_denials();
    token(&sim, &c, MDE).await;
}
