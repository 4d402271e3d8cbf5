//! End-to-end tests over real HTTPS: the client trusts only the simulator's generated CA
//! (verification is never disabled).

use chrono::{DateTime, TimeZone, Utc};
use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant};
use reqwest::StatusCode;
use serde_json::{json, Value};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const OR_TENANT: &str = "client_1234";

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, h, m, 0).unwrap()
}

fn ts(h: u32, m: u32) -> String {
    t(h, m).format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string()
}

fn alert(id: &str, updated: &str, source: &str, status: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id,
        "status": status,
        "severity": "high",
        "serviceSource": source,
        "title": format!("alert {id}"),
        "createdDateTime": ts(8, 0),
        "lastUpdateDateTime": updated,
        "evidence": [],
    })
}

fn tenant(n: u32, alerts: Vec<Value>) -> SimTenant {
    SimTenant {
        azure_tenant_id: format!("0000000{n}-aaaa-bbbb-cccc-000000000000"),
        client_id: format!("app-{n}"),
        client_secret: format!("secret-{n}"),
        alerts,
    }
}

fn config(tenants: Vec<SimTenant>) -> SimConfig {
    SimConfig {
        tenants,
        opsramp_tenant_id: OR_TENANT.into(),
        opsramp_client_id: "or-id".into(),
        opsramp_client_secret: "or-secret".into(),
        state_file: None,
        all_visible: false,
        start_clock: t(23, 0),
    }
}

async fn start(cfg: SimConfig) -> (Sim, reqwest::Client) {
    let sim = Sim::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Sim::start installed the ring provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    (sim, client)
}

async fn entra_token(
    sim: &Sim,
    c: &reqwest::Client,
    tn: &SimTenant,
    scope: &str,
) -> reqwest::Response {
    c.post(format!(
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
    .unwrap()
}

async fn graph_token(sim: &Sim, c: &reqwest::Client, tn: &SimTenant) -> String {
    let r = entra_token(sim, c, tn, GRAPH_SCOPE).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn get_json(c: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap_or("<malformed>").to_string())
        .collect()
}

#[tokio::test]
async fn entra_token_issue_and_errors() {
    let tn = tenant(1, vec![]);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));

    let r = entra_token(&sim, &c, &tn, GRAPH_SCOPE).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    assert!(v["access_token"].as_str().unwrap().len() >= 32);

    let mut bad = tn.clone();
    bad.client_secret = "wrong".into();
    let r = entra_token(&sim, &c, &bad, GRAPH_SCOPE).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], json!([7000215]));
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215:"));
    assert!(!v.to_string().contains("wrong"), "secret echoed back");

    let r = entra_token(&sim, &c, &tn, "https://graph.microsoft.com/.defualt").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_scope");
    assert_eq!(v["error_codes"], json!([70011]));

    let mut other = tn.clone();
    other.azure_tenant_id = "99999999-0000-0000-0000-000000000000".into();
    let r = entra_token(&sim, &c, &other, GRAPH_SCOPE).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    assert_eq!(sim.stats().entra_tokens, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn alerts_paging_keeps_filter_across_pages() {
    let mde = "microsoftDefenderForEndpoint";
    let alerts = vec![
        alert("a5", &ts(10, 5), mde, "new"),
        alert("a1", &ts(10, 1), mde, "new"),
        alert("o1", &ts(10, 2), "microsoftDefenderForOffice365", "new"),
        alert("a3", &ts(10, 3), mde, "new"),
        alert("a2", &ts(10, 3), mde, "new"), // same time as a3: ordered by id
        alert("a4", &ts(10, 4), mde, "resolved"),
        alert("a0", &ts(9, 0), mde, "new"), // before the lastUpdate filter
    ];
    let tn = tenant(1, alerts);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = graph_token(&sim, &c, &tn).await;

    let mut url = reqwest::Url::parse(&format!("{}/security/alerts_v2", sim.graph_base())).unwrap();
    url.query_pairs_mut()
        .append_pair(
            "$filter",
            &format!("serviceSource eq '{mde}' and lastUpdateDateTime ge 2024-05-01T10:00:00Z"),
        )
        .append_pair("$top", "2");
    let mut next = Some(url.to_string());
    let mut pages = Vec::new();
    while let Some(u) = next {
        let (s, page) = get_json(&c, &u, &tok).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(
            page["@odata.context"],
            "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2"
        );
        next = page["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(n) = &next {
            assert!(n.starts_with(&sim.graph_base()), "{n}");
            assert!(n.contains("$skiptoken="), "{n}");
        }
        pages.push(ids(&page));
        assert!(pages.len() <= 3);
    }
    assert_eq!(pages, vec![vec!["a1", "a2"], vec!["a3", "a4"], vec!["a5"]]);
    assert_eq!(sim.stats().graph_alert_requests, 3);

    // Unsupported filters and oversize pages are refused, not ignored.
    let mut url = reqwest::Url::parse(&format!("{}/security/alerts_v2", sim.graph_base())).unwrap();
    url.query_pairs_mut().append_pair("$filter", "title eq 'x'");
    let (s, v) = get_json(&c, url.as_str(), &tok).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "BadRequest");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid filter clause"));
    let (s, _) = get_json(
        &c,
        &format!("{}/security/alerts_v2?$top=2001", sim.graph_base()),
        &tok,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test]
async fn alert_versions_follow_the_clock() {
    let mde = "microsoftDefenderForEndpoint";
    let alerts = vec![
        alert("a1", &ts(10, 0), mde, "new"),
        alert("a1", &ts(12, 0), mde, "resolved"),
        alert("a2", &ts(13, 0), mde, "new"),
    ];
    let tn = tenant(1, alerts);
    let mut cfg = config(vec![tn.clone()]);
    cfg.start_clock = t(11, 0);
    let (sim, c) = start(cfg).await;
    let tok = graph_token(&sim, &c, &tn).await;
    let url = format!("{}/security/alerts_v2", sim.graph_base());

    let (_, page) = get_json(&c, &url, &tok).await;
    assert_eq!(ids(&page), vec!["a1"]);
    assert_eq!(page["value"][0]["status"], "new");
    assert!(page.get("@odata.nextLink").is_none());

    sim.set_clock(t(12, 30));
    let (_, page) = get_json(&c, &url, &tok).await;
    assert_eq!(ids(&page), vec!["a1"]);
    assert_eq!(page["value"][0]["status"], "resolved");

    // Filters apply to the visible version: the update moves a1 past the window start.
    let mut u = reqwest::Url::parse(&url).unwrap();
    u.query_pairs_mut()
        .append_pair("$filter", "lastUpdateDateTime gt 2024-05-01T11:00:00Z");
    let (_, page) = get_json(&c, u.as_str(), &tok).await;
    assert_eq!(ids(&page), vec!["a1"]);

    sim.set_clock(t(13, 0));
    let (_, page) = get_json(&c, &url, &tok).await;
    assert_eq!(ids(&page), vec!["a1", "a2"]);

    // A nextLink keeps the snapshot of its first page even if the clock moves meanwhile.
    let (_, first) = get_json(&c, &format!("{url}?$top=1"), &tok).await;
    assert_eq!(ids(&first), vec!["a1"]);
    sim.set_clock(t(12, 30));
    let (_, second) = get_json(&c, first["@odata.nextLink"].as_str().unwrap(), &tok).await;
    assert_eq!(ids(&second), vec!["a2"]);
    assert!(second.get("@odata.nextLink").is_none());
    sim.shutdown().await;

    // all_visible ignores the clock and serves the latest versions.
    let mut cfg = config(vec![tn.clone()]);
    cfg.all_visible = true;
    cfg.start_clock = t(0, 0);
    let (sim, c) = start(cfg).await;
    let tok = graph_token(&sim, &c, &tn).await;
    let (_, page) = get_json(
        &c,
        &format!("{}/security/alerts_v2", sim.graph_base()),
        &tok,
    )
    .await;
    assert_eq!(ids(&page), vec!["a1", "a2"]);
    assert_eq!(page["value"][0]["status"], "resolved");
    sim.shutdown().await;
}

#[tokio::test]
async fn tenants_are_isolated_and_tokens_checked() {
    let mde = "microsoftDefenderForEndpoint";
    let ta = tenant(1, vec![alert("da-A", &ts(10, 0), mde, "new")]);
    let tb = tenant(2, vec![alert("da-B", &ts(10, 0), mde, "new")]);
    let (sim, c) = start(config(vec![ta.clone(), tb.clone()])).await;
    let url = format!("{}/security/alerts_v2", sim.graph_base());

    let tok_a = graph_token(&sim, &c, &ta).await;
    let tok_b = graph_token(&sim, &c, &tb).await;
    assert_eq!(ids(&get_json(&c, &url, &tok_a).await.1), vec!["da-A"]);
    assert_eq!(ids(&get_json(&c, &url, &tok_b).await.1), vec!["da-B"]);

    // Tenant A's credentials do not work at tenant B's token endpoint.
    let mut cross = ta.clone();
    cross.azure_tenant_id = tb.azure_tenant_id.clone();
    let r = entra_token(&sim, &c, &cross, GRAPH_SCOPE).await;
    assert!(r.status().is_client_error());

    // No token, an unknown token, a token for another resource: all 401 Graph-shaped.
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    let (s, _) = get_json(&c, &url, "not-a-token").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = entra_token(
        &sim,
        &c,
        &ta,
        "https://api.securitycenter.microsoft.com/.default",
    )
    .await;
    let mde_tok: Value = r.json().await.unwrap();
    let (s, v) = get_json(&c, &url, mde_tok["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_enum_members_need_prefer_header_and_malformed_items_pass_through() {
    let alerts = vec![
        alert("sn1", &ts(10, 0), "microsoftSentinel", "new"),
        alert("da1", &ts(10, 1), "microsoftDefenderForEndpoint", "new"),
        json!({"id": 12345, "lastUpdateDateTime": ts(10, 2), "title": "bad id"}),
        json!({"id": "no-time", "title": "missing lastUpdateDateTime"}),
    ];
    let tn = tenant(1, alerts);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = graph_token(&sim, &c, &tn).await;
    let url = format!("{}/security/alerts_v2", sim.graph_base());

    let (_, plain) = get_json(&c, &url, &tok).await;
    assert_eq!(plain["value"][0]["serviceSource"], "unknownFutureValue");
    assert_eq!(
        plain["value"][1]["serviceSource"],
        "microsoftDefenderForEndpoint"
    );

    let r = c
        .get(&url)
        .bearer_auth(&tok)
        .header("Prefer", "include-unknown-enum-members")
        .send()
        .await
        .unwrap();
    let with: Value = r.json().await.unwrap();
    assert_eq!(with["value"][0]["serviceSource"], "microsoftSentinel");
    assert_eq!(
        with["value"][1]["serviceSource"],
        "microsoftDefenderForEndpoint"
    );

    // Malformed items come back untouched, after the good ones, even under a filter.
    let v = plain["value"].as_array().unwrap();
    assert_eq!(v.len(), 4);
    assert_eq!(
        v[2],
        json!({"id": 12345, "lastUpdateDateTime": ts(10, 2), "title": "bad id"})
    );
    assert_eq!(v[3]["id"], "no-time");
    let mut u = reqwest::Url::parse(&url).unwrap();
    u.query_pairs_mut()
        .append_pair("$filter", "serviceSource eq 'microsoftDefenderForEndpoint'");
    let (_, filtered) = get_json(&c, u.as_str(), &tok).await;
    assert_eq!(ids(&filtered), vec!["da1", "<malformed>", "no-time"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn too_many_requests_then_success() {
    let tn = tenant(
        1,
        vec![alert(
            "a1",
            &ts(10, 0),
            "microsoftDefenderForEndpoint",
            "new",
        )],
    );
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = graph_token(&sim, &c, &tn).await;
    let url = format!("{}/security/alerts_v2", sim.graph_base());

    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::TooManyRequests {
            times: 2,
            retry_after: 0.25,
        },
    );
    for _ in 0..2 {
        let r = c.get(&url).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let ra = r.headers()["retry-after"].to_str().unwrap().to_string();
        assert_eq!(ra, "0.25");
        assert_eq!(ra.parse::<f64>().unwrap(), 0.25);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "TooManyRequests");
    }
    let (s, page) = get_json(&c, &url, &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&page), vec!["a1"]);
    assert_eq!(sim.stats().graph_alert_requests, 3);

    // Server errors and their exhaustion; clear_faults removes everything.
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    assert_eq!(
        get_json(&c, &url, &tok).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get_json(&c, &url, &tok).await.0, StatusCode::OK);
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::Probability {
            p429: 1.0,
            p5xx: 0.0,
            retry_after: 1.5,
        },
    );
    assert_eq!(
        get_json(&c, &url, &tok).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    sim.clear_faults();
    assert_eq!(get_json(&c, &url, &tok).await.0, StatusCode::OK);
    sim.shutdown().await;
}

async fn opsramp_token(sim: &Sim, c: &reqwest::Client, path: &str) -> String {
    let r = c
        .post(format!("{}{path}", sim.opsramp_base()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "or-id"),
            ("client_secret", "or-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 7199);
    assert_eq!(v["scope"], "global:manage");
    v["access_token"].as_str().unwrap().to_string()
}

fn api(sim: &Sim, rest: &str) -> String {
    format!("{}/api/v2/tenants/{OR_TENANT}/{rest}", sim.opsramp_base())
}

async fn post_json(c: &reqwest::Client, url: &str, tok: &str, body: &Value) -> (StatusCode, Value) {
    let r = c
        .post(url)
        .bearer_auth(tok)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn opsramp_ticket_lifecycle() {
    let (sim, c) = start(config(vec![])).await;

    let r = c
        .post(format!("{}/tenancy/auth/oauth/token", sim.opsramp_base()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "or-id"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error":"unauthorized","error_description":"Bad API credentials"})
    );

    let _legacy = opsramp_token(&sim, &c, "/auth/oauth/token").await;
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;

    let (s, inc) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"[High] 不審な実行","description":"本文","priority":"High",
                "extTicketId":"mss:t1:da1","toEmail":"soc@example.com","cc":"a@example.com"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{inc}");
    assert_eq!(inc["id"], "INC0000000001");
    assert_eq!(inc["status"], "New");
    assert_eq!(inc["priority"], "High");
    assert_eq!(inc["extTicketId"], "mss:t1:da1");
    let created = inc["createdDate"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S%z").is_ok());
    assert!(created.ends_with("+0000"));
    assert_eq!(
        inc["allowedStatus"],
        json!(["Open", "Pending", "Resolved", "Closed", "On Hold"])
    );

    // Validation.
    let (s, v) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"description":"x"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "subject is required");
    let (s, _) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"s","description":"d","priority":"P1"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = c
        .post(api(&sim, "incidents"))
        .bearer_auth(&tok)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(api(&sim, "incidents"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_token");
    let (s, _) = post_json(
        &c,
        &format!("{}/api/v2/tenants/client_9/incidents", sim.opsramp_base()),
        &tok,
        &json!({"subject":"s","description":"d"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A second incident so that search has something to exclude.
    let (_, other) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"other","description":"d","extTicketId":"mss:t1:zz"}),
    )
    .await;
    assert_eq!(other["id"], "INC0000000002");

    // Search with '+' sent as %2B, and with a bare '+' (arrives as a space).
    for sep in ["%2B", "+"] {
        let url = format!(
            "{}?pageNo=1&pageSize=100&queryString=extTicketId:mss:t1:da1{sep}status:New,Open",
            api(&sim, "incidents/search")
        );
        let (s, v) = get_json(&c, &url, &tok).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["totalResults"], 1, "{sep}: {v}");
        assert_eq!(v["results"][0]["id"], "INC0000000001");
        assert_eq!(v["pageNo"], 1);
        assert_eq!(v["totalPages"], 1);
        assert_eq!(v["nextPage"], false);
    }
    let (_, v) = get_json(
        &c,
        &format!(
            "{}?queryString=status:Resolved",
            api(&sim, "incidents/search")
        ),
        &tok,
    )
    .await;
    assert_eq!(v["totalResults"], 0);
    let (_, v) = get_json(
        &c,
        &format!("{}?pageSize=1&pageNo=1", api(&sim, "incidents/search")),
        &tok,
    )
    .await;
    assert_eq!(
        (v["totalResults"].as_u64(), v["totalPages"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(v["nextPage"], true);
    assert_eq!(v["nextPageNo"], 2);

    // Response (comment) and update both count as updates.
    let (s, resp) = post_json(
        &c,
        &api(&sim, "incidents/INC0000000001/responses"),
        &tok,
        &json!({"description":"続報","internal":false,"tags":"mss","extTicketResponseId":"r1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{resp}");
    assert_eq!(resp["description"], "続報");
    let (s, upd) = post_json(
        &c,
        &api(&sim, "incidents/INC0000000001"),
        &tok,
        &json!({"status":"Open","priority":"Urgent"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["status"], "Open");
    assert_eq!(upd["priority"], "Urgent");
    assert!(!upd["allowedStatus"]
        .as_array()
        .unwrap()
        .contains(&json!("Open")));
    let (s, _) = post_json(
        &c,
        &api(&sim, "incidents/INC0000000001"),
        &tok,
        &json!({"status":"Open"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "Open is no longer allowed");
    let (s, _) = post_json(&c, &api(&sim, "incidents/INC0000000099"), &tok, &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, got) = get_json(&c, &api(&sim, "incidents/INC0000000001"), &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["status"], "Open");
    let (_, rs) = get_json(
        &c,
        &api(&sim, "incidents/INC0000000001/responses/search"),
        &tok,
    )
    .await;
    assert_eq!(rs["totalResults"], 1);
    assert_eq!(rs["results"][0]["extTicketResponseId"], "r1");

    let (s, closed) = post_json(
        &c,
        &api(&sim, "incidents/INC0000000002/close"),
        &tok,
        &json!({"reason":"duplicate","notes":"n"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(closed["status"], "Closed");

    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 2);
    let t1 = &tickets[0];
    assert_eq!(t1.id, "INC0000000001");
    assert_eq!(t1.updates, 2);
    assert_eq!(t1.status, "Open");
    assert_eq!(t1.ext_ticket_id.as_deref(), Some("mss:t1:da1"));
    assert_eq!(t1.to_email.as_deref(), Some("soc@example.com"));
    assert_eq!(t1.responses.len(), 1);
    assert_eq!(
        t1.responses[0].ext_ticket_response_id.as_deref(),
        Some("r1")
    );
    assert_eq!(t1.raw, got);
    assert_eq!(tickets[1].status, "Closed");
    assert_eq!(tickets[1].updates, 0);
    assert_eq!(sim.stats().opsramp_tokens, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn opsramp_token_expired_and_throttled() {
    let (sim, c) = start(config(vec![])).await;
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    let url = format!("{}?queryString=status:New", api(&sim, "incidents/search"));
    assert_eq!(get_json(&c, &url, &tok).await.0, StatusCode::OK);

    sim.set_fault(Endpoint::OpsRampSearch, Fault::TokenExpired { times: 1 });
    let (s, v) = get_json(&c, &url, &tok).await;
    assert_eq!(s, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(
        v,
        json!({"error":"invalid_token","error_description":"Invalid access token"})
    );
    // The old token is dead; a fresh one works.
    assert_eq!(get_json(&c, &url, &tok).await.0, StatusCode::UNAUTHORIZED);
    let tok2 = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    assert_eq!(get_json(&c, &url, &tok2).await.0, StatusCode::OK);

    sim.set_fault(
        Endpoint::OpsRampCreate,
        Fault::TooManyRequests {
            times: 1,
            retry_after: 1.2,
        },
    );
    let before = chrono::Utc::now().timestamp();
    let r = c
        .post(api(&sim, "incidents"))
        .bearer_auth(&tok2)
        .json(&json!({"subject":"s","description":"d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let reset: i64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        reset >= before + 2 && reset <= before + 3,
        "{reset} vs {before}"
    );
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("x-ratelimit-limit"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error":"throttled","error_description":"Too Many Requests"})
    );
    assert!(sim.tickets().is_empty());
    let (s, _) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok2,
        &json!({"subject":"s","description":"d"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Latency delays but still answers.
    sim.set_fault(
        Endpoint::OpsRampGet,
        Fault::Latency {
            times: 1,
            millis: 300,
        },
    );
    let started = std::time::Instant::now();
    let (s, _) = get_json(&c, &api(&sim, "incidents/INC0000000001"), &tok2).await;
    assert_eq!(s, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    sim.shutdown().await;
}

#[tokio::test]
async fn state_file_reload_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("opsramp.json");
    let mut cfg = config(vec![]);
    cfg.state_file = Some(path.clone());

    let (sim, c) = start(cfg.clone()).await;
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    for n in 1..=2 {
        let (s, _) = post_json(
            &c,
            &api(&sim, "incidents"),
            &tok,
            &json!({"subject":format!("s{n}"),"description":"d","extTicketId":format!("x{n}")}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    post_json(
        &c,
        &api(&sim, "incidents/INC0000000001/responses"),
        &tok,
        &json!({"description":"c"}),
    )
    .await;
    sim.shutdown().await;
    assert!(path.exists());
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temp file left behind: {leftovers:?}");

    let (sim, c) = start(cfg).await;
    let before = sim.tickets();
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].updates, 1);
    assert_eq!(before[0].responses.len(), 1);
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    let (_, v) = get_json(
        &c,
        &format!(
            "{}?queryString=extTicketId:x2",
            api(&sim, "incidents/search")
        ),
        &tok,
    )
    .await;
    assert_eq!(v["results"][0]["id"], "INC0000000002");
    let (_, inc) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"s3","description":"d"}),
    )
    .await;
    assert_eq!(inc["id"], "INC0000000003");
    sim.shutdown().await;
}

fn sr_ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn service_request_lifecycle() {
    let (sim, c) = start(config(vec![])).await;
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;

    // Create with customFields and a simulated receipt time (JST in, UTC out).
    let fields = json!([
        {"name": "mss_tenant", "value": "kaede-shoji"},
        {"id": 17, "name": "inquiry_kind", "value": "業務影響"}
    ]);
    let (s, sr) = post_json(
        &c,
        &api(&sim, "serviceRequests"),
        &tok,
        &json!({"subject":"業務停止: メールが送れない","description":"お問い合わせ内容",
                "customFields": fields, "simReceivedAt": "2026-11-25T10:00:00+09:00",
                "extTicketId": "inq-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sr}");
    assert_eq!(sr["id"], "SRQ0000000001");
    assert_eq!(sr["status"], "New");
    assert_eq!(sr["priority"], "Normal");
    assert_eq!(sr["createdDate"], "2026-11-25T01:00:00+0000");
    assert_eq!(sr["updatedDate"], "2026-11-25T01:00:00+0000");
    assert_eq!(sr["customFields"], fields);
    assert!(
        sr.get("simReceivedAt").is_none(),
        "simulator-only input echoed: {sr}"
    );

    // Its own numbering, apart from incidents; and the kinds do not see each other's ids.
    let (_, inc) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"s","description":"d"}),
    )
    .await;
    assert_eq!(inc["id"], "INC0000000001");
    let (s, _) = get_json(&c, &api(&sim, "incidents/SRQ0000000001"), &tok).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = get_json(&c, &api(&sim, "serviceRequests/INC0000000001"), &tok).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "Service request INC0000000001 not found");
    let (s, got) = get_json(&c, &api(&sim, "serviceRequests/SRQ0000000001"), &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, sr);

    // Validation on create.
    for (body, msg) in [
        (json!({"subject":"s"}), "description is required"),
        (
            json!({"subject":"s","description":"d","simReceivedAt":"yesterday"}),
            "simReceivedAt",
        ),
        (
            json!({"subject":"s","description":"d","customFields":[{"name":"n","value":3}]}),
            "customFields[0].value",
        ),
        (
            json!({"subject":"s","description":"d","dueDate":"2026-11-25"}),
            "dueDate",
        ),
    ] {
        let (s, v) = post_json(&c, &api(&sim, "serviceRequests"), &tok, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(v["message"].as_str().unwrap().contains(msg), "{v}");
    }
    assert_eq!(
        sim.service_requests().len(),
        1,
        "a rejected create stored something"
    );

    // Update: dueDate, status, priority, subject, customFields (merged by id, else name).
    let (s, upd) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001"),
        &tok,
        &json!({"dueDate":"2026-11-25T08:30:00+0000","status":"Open","priority":"High",
                "subject":"業務停止 (確認中)",
                "customFields":[{"id":17,"name":"inquiry_kind","value":"一般"},
                                {"name":"assignee_note","value":"x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["dueDate"], "2026-11-25T08:30:00+0000");
    assert_eq!(upd["status"], "Open");
    assert_eq!(upd["priority"], "High");
    assert_eq!(upd["subject"], "業務停止 (確認中)");
    assert_eq!(
        upd["customFields"],
        json!([
            {"name": "mss_tenant", "value": "kaede-shoji"},
            {"id": 17, "name": "inquiry_kind", "value": "一般"},
            {"name": "assignee_note", "value": "x"}
        ])
    );
    assert_eq!(upd["createdDate"], "2026-11-25T01:00:00+0000");
    // Another offset is normalised to UTC; a malformed one is refused and changes nothing.
    let (s, upd) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001"),
        &tok,
        &json!({"dueDate":"2026-11-26T17:30:00+0900"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["dueDate"], "2026-11-26T08:30:00+0000");
    let (s, _) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001"),
        &tok,
        &json!({"dueDate":"tomorrow"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001"),
        &tok,
        &json!({"status":"Open"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "Open is no longer allowed");

    // Responses: internal needs a creator.
    let (s, v) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001/responses"),
        &tok,
        &json!({"description":"期限が近づいています","internal":true,"extTicketResponseId":"n1"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "creator is required for internal responses");
    let (s, resp) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001/responses"),
        &tok,
        &json!({"description":"期限が近づいています","internal":true,"creator":"or-id",
                "extTicketResponseId":"n1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{resp}");
    assert_eq!(resp["internal"], true);
    assert_eq!(resp["creator"], "or-id");
    let (s, rs) = get_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000001/responses/search"),
        &tok,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rs["totalResults"], 1);
    assert_eq!(rs["results"][0]["extTicketResponseId"], "n1");
    let (s, _) = get_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000099/responses/search"),
        &tok,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // More service requests for search: one back-dated before the first, one resolved.
    for (n, received) in [
        (2, "2026-11-24T09:00:00+09:00"),
        (3, "2026-11-25T11:00:00+09:00"),
        (4, "2026-11-25T12:00:00+09:00"),
    ] {
        let (s, v) = post_json(
            &c,
            &api(&sim, "serviceRequests"),
            &tok,
            &json!({"subject":format!("問い合わせ {n}"),"description":"d",
                    "simReceivedAt":received,"extTicketId":format!("inq-{n}")}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["id"], format!("SRQ{n:010}"));
    }
    let (s, _) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000004"),
        &tok,
        &json!({"status":"Resolved"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Status search with paging: ordered by createdDate, so the back-dated SRQ2 comes first.
    let search = |rest: &str| format!("{}?{rest}", api(&sim, "serviceRequests/search"));
    let (s, p1) = get_json(
        &c,
        &search("pageNo=1&pageSize=2&queryString=status:New,Open,Pending,On Hold"),
        &tok,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p1}");
    assert_eq!(sr_ids(&p1), ["SRQ0000000002", "SRQ0000000001"]);
    assert_eq!(p1["totalResults"], 3);
    assert_eq!(p1["totalPages"], 2);
    assert_eq!(p1["nextPage"], true);
    assert_eq!(p1["nextPageNo"], 2);
    let (_, p2) = get_json(
        &c,
        &search("pageNo=2&pageSize=2&queryString=status:New,Open,Pending,On Hold"),
        &tok,
    )
    .await;
    assert_eq!(sr_ids(&p2), ["SRQ0000000003"]);
    assert_eq!(p2["nextPage"], false);
    assert!(p2.get("nextPageNo").is_none());
    let (_, v) = get_json(&c, &search("queryString=status:Resolved"), &tok).await;
    assert_eq!(sr_ids(&v), ["SRQ0000000004"]);
    let (_, v) = get_json(
        &c,
        &search("queryString=extTicketId:inq-3%2Bstatus:New"),
        &tok,
    )
    .await;
    assert_eq!(sr_ids(&v), ["SRQ0000000003"]);
    let (_, v) = get_json(&c, &search("queryString=subject:%E7%A2%BA%E8%AA%8D"), &tok).await;
    assert_eq!(sr_ids(&v), ["SRQ0000000001"], "subject:確認");
    // Incident search does not see service requests.
    let (_, v) = get_json(
        &c,
        &format!("{}?queryString=status:New", api(&sim, "incidents/search")),
        &tok,
    )
    .await;
    assert_eq!(sr_ids(&v), ["INC0000000001"]);

    // Close, and the shared fault knobs apply to service requests too.
    let (s, closed) = post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000003/close"),
        &tok,
        &json!({"reason":"answered","notes":"n"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(closed["status"], "Closed");
    sim.set_fault(
        Endpoint::OpsRampCreate,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    let (s, _) = post_json(
        &c,
        &api(&sim, "serviceRequests"),
        &tok,
        &json!({"subject":"s","description":"d"}),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    let srs = sim.service_requests();
    assert_eq!(srs.len(), 4);
    let s1 = &srs[0];
    assert_eq!(s1.id, "SRQ0000000001");
    assert_eq!(s1.updates, 3, "two updates and one response");
    assert_eq!(s1.created, "2026-11-25T01:00:00+0000");
    assert_eq!(s1.ext_ticket_id.as_deref(), Some("inq-1"));
    assert_eq!(s1.responses.len(), 1);
    assert!(s1.responses[0].internal);
    assert_eq!(s1.raw["dueDate"], "2026-11-26T08:30:00+0000");
    assert_eq!(srs[2].status, "Closed");
    assert_eq!(srs[2].updates, 0);
    assert_eq!(sim.tickets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn state_file_reload_keeps_service_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opsramp.json");
    let mut cfg = config(vec![]);
    cfg.state_file = Some(path.clone());

    let (sim, c) = start(cfg.clone()).await;
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    for n in 1..=2 {
        let (s, _) = post_json(
            &c,
            &api(&sim, "serviceRequests"),
            &tok,
            &json!({"subject":format!("s{n}"),"description":"d",
                    "customFields":[{"name":"mss_tenant","value":"t1"}],
                    "simReceivedAt":"2026-11-25T10:00:00Z"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000002"),
        &tok,
        &json!({"dueDate":"2026-11-26T08:30:00+0000"}),
    )
    .await;
    post_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000002/responses"),
        &tok,
        &json!({"description":"note","internal":true,"creator":"or-id","extTicketResponseId":"n1"}),
    )
    .await;
    sim.shutdown().await;

    let (sim, c) = start(cfg).await;
    let srs = sim.service_requests();
    assert_eq!(srs.len(), 2);
    assert_eq!(srs[1].updates, 2);
    assert_eq!(srs[1].raw["dueDate"], "2026-11-26T08:30:00+0000");
    assert_eq!(srs[1].raw["customFields"][0]["value"], "t1");
    assert_eq!(srs[1].created, "2026-11-25T10:00:00+0000");
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    let (_, rs) = get_json(
        &c,
        &api(&sim, "serviceRequests/SRQ0000000002/responses/search"),
        &tok,
    )
    .await;
    assert_eq!(rs["results"][0]["extTicketResponseId"], "n1");
    let (_, sr) = post_json(
        &c,
        &api(&sim, "serviceRequests"),
        &tok,
        &json!({"subject":"s3","description":"d"}),
    )
    .await;
    assert_eq!(sr["id"], "SRQ0000000003");
    let (_, inc) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"i1","description":"d"}),
    )
    .await;
    assert_eq!(inc["id"], "INC0000000001");
    sim.shutdown().await;
}

/// A state file written before service requests existed still loads, keeps its incidents and
/// their numbering, and starts service requests at 1.
#[tokio::test]
async fn state_file_without_service_requests_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opsramp.json");
    let old = json!({
        "last_seq": 7,
        "last_response_id": 3,
        "tickets": [{
            "id": "INC0000000007", "subject": "old", "description": "d", "priority": "Normal",
            "status": "Open", "ext_ticket_id": "x7", "to_email": null, "cc": null,
            "created": "2024-05-01T00:00:00+0000", "updated": "2024-05-01T00:00:00+0000",
            "updates": 1, "responses": [],
            "raw": {"id": "INC0000000007", "subject": "old", "status": "Open"}
        }],
        "response_objects": {}
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let mut cfg = config(vec![]);
    cfg.state_file = Some(path.clone());

    let (sim, c) = start(cfg).await;
    assert_eq!(sim.tickets().len(), 1);
    assert!(sim.service_requests().is_empty());
    let tok = opsramp_token(&sim, &c, "/tenancy/auth/oauth/token").await;
    let (_, sr) = post_json(
        &c,
        &api(&sim, "serviceRequests"),
        &tok,
        &json!({"subject":"s","description":"d"}),
    )
    .await;
    assert_eq!(sr["id"], "SRQ0000000001");
    let (_, inc) = post_json(
        &c,
        &api(&sim, "incidents"),
        &tok,
        &json!({"subject":"s","description":"d"}),
    )
    .await;
    assert_eq!(inc["id"], "INC0000000008");
    sim.shutdown().await;
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["last_sr_seq"], 1);
    assert_eq!(saved["service_requests"][0]["id"], "SRQ0000000001");
}
