//! Log Analytics query API (`v1/workspaces/{id}/query`) over real HTTPS: tokens for the right
//! resource only, workspaces owned by one tenant, strict bindings, rows inside the half-open
//! window, the modes (partial error, 204, 504) and the fault knob.

use chrono::{DateTime, TimeZone, Utc};
use mss_sim::{Endpoint, Fault, LogAnalyticsMode, Sim, SimConfig, SimTenant};
use reqwest::StatusCode;
use serde_json::{json, Value};

const LA_SCOPE: &str = "https://api.loganalytics.io/.default";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const WS: &str = "1E2D3C4B-5A69-4788-9A0B-1C2D3E4F5A6B";

fn tenant(n: u32) -> SimTenant {
    SimTenant {
        azure_tenant_id: format!("0000000{n}-aaaa-bbbb-cccc-000000000000"),
        client_id: format!("app-{n}"),
        client_secret: format!("secret-{n}"),
        alerts: vec![],
    }
}

async fn start() -> (Sim, reqwest::Client) {
    let sim = Sim::start(
        SimConfig {
            tenants: vec![tenant(1), tenant(2)],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "or-id".into(),
            opsramp_client_secret: "or-secret".into(),
            state_file: None,
            all_visible: false,
            start_clock: Utc.with_ymd_and_hms(2026, 11, 24, 22, 30, 0).unwrap(),
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

async fn token(sim: &Sim, c: &reqwest::Client, tn: &SimTenant, scope: &str) -> String {
    let r = c
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.authority_host(),
            tn.azure_tenant_id
        ))
        .form(&[
            ("client_id", tn.client_id.as_str()),
            ("client_secret", tn.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "token for {scope}");
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn query(
    sim: &Sim,
    c: &reqwest::Client,
    tok: Option<&str>,
    ws: &str,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let mut req = c
        .post(format!(
            "{}/v1/workspaces/{ws}/query",
            sim.loganalytics_base()
        ))
        .json(&body);
    if let Some(t) = tok {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, retry, v)
}

const BINDINGS: &str = "let WindowStart = datetime(2026-11-23T15:00:00Z);\n\
                        let WindowEnd = datetime(2026-11-24T15:00:00Z);\n\
                        let BreakGlassAccounts = dynamic([\"bg\\\"1@x.example\"]);\n";

fn rule_query(id: &str) -> String {
    format!("// mss-query: {id}\n{BINDINGS}let Threshold = 10;\nAuditLogs\n| where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd\n| project TimeGenerated, Actor, Target, Operation, Detail")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn tokens_workspaces_and_bindings_are_checked_like_the_service() {
    let (sim, c) = start().await;
    sim.add_workspace(&tenant(1).azure_tenant_id, WS);
    let la = token(&sim, &c, &tenant(1), LA_SCOPE).await;
    let other = token(&sim, &c, &tenant(2), LA_SCOPE).await;
    let graph = token(&sim, &c, &tenant(1), GRAPH_SCOPE).await;
    let body = json!({"query": rule_query("r1"), "timespan": "P1D"});

    let (s, _, v) = query(&sim, &c, None, WS, body.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AuthenticationFailed"))
    );
    let (s, _, v) = query(&sim, &c, Some(&graph), WS, body.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("InvalidAuthenticationTokenAudience")
        )
    );
    // Another tenant's token, and a workspace never added: no access, in the service's shape.
    for (tok, ws) in [(&other, WS), (&la, "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b")] {
        let (s, _, v) = query(&sim, &c, Some(tok), ws, body.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "InsufficientAccessError");
        assert_eq!(
            v["error"]["message"],
            "The provided credentials have insufficient access to perform the requested operation"
        );
        assert_eq!(v["error"]["innererror"]["code"], "UnauthorizedClient");
        assert!(v["error"]["correlationId"].is_string());
    }
    // The workspace id is matched case-insensitively.
    let (s, _, v) = query(&sim, &c, Some(&la), &WS.to_lowercase(), body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cols: Vec<&str> = v["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        ["TimeGenerated", "Actor", "Target", "Operation", "Detail"]
    );
    let calls = sim.loganalytics_queries();
    let last = calls.last().unwrap();
    assert_eq!(last.rule_id.as_deref(), Some("r1"));
    assert_eq!(
        last.break_glass.as_deref(),
        Some(&["bg\"1@x.example".to_string()][..])
    );

    // A badly escaped literal is a syntax error; an unbound name a semantic one.
    let bad = rule_query("r1").replace("bg\\\"1", "bg\"1");
    let (s, _, v) = query(&sim, &c, Some(&la), WS, json!({"query": bad})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "BadArgumentError");
    assert_eq!(v["error"]["innererror"]["code"], "SyntaxError");
    let unbound = rule_query("r1").replace("let WindowEnd = datetime(2026-11-24T15:00:00Z);\n", "");
    let (s, _, v) = query(&sim, &c, Some(&la), WS, json!({"query": unbound})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["innererror"]["code"], "SemanticError");
    assert!(v["error"]["innererror"]["message"]
        .as_str()
        .unwrap()
        .contains("'WindowEnd'"));
    for b in [
        json!({"timespan": "P1D"}),
        json!({"query": "T", "timespan": "yesterday"}),
        json!([1]),
    ] {
        let (s, _, _) = query(&sim, &c, Some(&la), WS, b.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn rows_modes_and_faults() {
    let (sim, c) = start().await;
    sim.add_workspace(&tenant(1).azure_tenant_id, WS);
    let la = token(&sim, &c, &tenant(1), LA_SCOPE).await;
    sim.add_log_rows(
        WS,
        "r1",
        vec![
            json!({"TimeGenerated": "2026-11-23T14:59:59Z", "Actor": "before"}),
            json!({"TimeGenerated": "2026-11-23T15:00:00Z", "Actor": "first", "Target": "t", "Operation": "o", "Detail": "d"}),
            json!({"TimeGenerated": "2026-11-24T15:00:00Z", "Actor": "next-day"}),
            json!({"Actor": "canned"}),
        ],
    );
    let body =
        json!({"query": rule_query("r1"), "timespan": "2026-11-23T15:00:00Z/2026-11-24T15:00:00Z"});
    let (s, _, v) = query(&sim, &c, Some(&la), WS, body.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let rows = v["tables"][0]["rows"].as_array().unwrap();
    let actors: Vec<&str> = rows.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(actors, ["first", "canned"]);
    assert_eq!(
        rows[0],
        json!(["2026-11-23T15:00:00.0000000Z", "first", "t", "o", "d"])
    );
    assert!(v.get("error").is_none());
    assert_eq!(
        sim.loganalytics_queries().last().unwrap().window,
        Some((at("2026-11-23T15:00:00Z"), at("2026-11-24T15:00:00Z")))
    );
    // Another rule id has nothing.
    let (_, _, v) = query(&sim, &c, Some(&la), WS, json!({"query": rule_query("r2")})).await;
    assert_eq!(v["tables"][0]["rows"], json!([]));

    sim.set_loganalytics_mode("r1", LogAnalyticsMode::PartialError);
    let (s, _, v) = query(&sim, &c, Some(&la), WS, body.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["error"]["code"], "PartialError");
    assert_eq!(v["tables"][0]["rows"].as_array().unwrap().len(), 2);
    sim.set_loganalytics_mode("*", LogAnalyticsMode::NoContent);
    let (s, _, v) = query(&sim, &c, Some(&la), WS, json!({"query": rule_query("r2")})).await;
    assert_eq!((s, v), (StatusCode::NO_CONTENT, Value::Null));
    sim.set_loganalytics_mode("r1", LogAnalyticsMode::Timeout);
    let (s, _, v) = query(&sim, &c, Some(&la), WS, body.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::GATEWAY_TIMEOUT, Some("GatewayTimeout"))
    );
    sim.set_loganalytics_mode("r1", LogAnalyticsMode::Normal);

    sim.set_fault(
        Endpoint::LogAnalytics,
        Fault::TooManyRequests {
            times: 1,
            retry_after: 1.5,
        },
    );
    let (s, retry, v) = query(&sim, &c, Some(&la), WS, body.clone()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("1.5"));
    assert_eq!(v["error"]["code"], "ThrottledError");
    sim.set_fault(
        Endpoint::LogAnalytics,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    let (s, _, v) = query(&sim, &c, Some(&la), WS, body.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("ServiceUnavailableError")
        )
    );
    let (s, _, _) = query(&sim, &c, Some(&la), WS, body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sim.stats().loganalytics_requests, 8);
    sim.shutdown().await;
}
