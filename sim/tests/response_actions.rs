//! Response-action APIs over real HTTPS (the client trusts only the simulator's CA): Defender for
//! Endpoint machine actions, Graph users and Identity Protection confirmCompromised, and the
//! Graph beta analyzedEmails remediate action.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant};
use reqwest::StatusCode;
use serde_json::{json, Value};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const MDE_SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, h, m, 0).unwrap()
}

fn tenant(n: u32) -> SimTenant {
    SimTenant {
        azure_tenant_id: format!("0000000{n}-aaaa-bbbb-cccc-000000000000"),
        client_id: format!("app-{n}"),
        client_secret: format!("secret-{n}"),
        alerts: vec![],
    }
}

fn config(tenants: Vec<SimTenant>, all_visible: bool) -> SimConfig {
    SimConfig {
        tenants,
        opsramp_tenant_id: "client_1234".into(),
        opsramp_client_id: "or-id".into(),
        opsramp_client_secret: "or-secret".into(),
        state_file: None,
        all_visible,
        start_clock: t(10, 0),
    }
}

async fn start(cfg: SimConfig) -> (Sim, reqwest::Client) {
    let sim = Sim::start(cfg, "127.0.0.1:0".parse().unwrap())
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

async fn get(c: &reqwest::Client, url: &str, tok: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(tok).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn post(c: &reqwest::Client, url: &str, tok: &str, body: &Value) -> (StatusCode, Value) {
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

fn device(id: &str, extra: Value) -> Value {
    let mut d = json!({
        "id": id,
        "computerDnsName": format!("{id}.contoso.local"),
        "osPlatform": "Windows11",
        "version": "23H2",
        "osBuild": 22631,
        "healthStatus": "Active",
        "rbacGroupName": "Servers",
        "rbacGroupId": "42",
        "machineTags": ["prod"],
        "lastIpAddress": "10.0.0.5",
        "aadDeviceId": "80fe8ff8-0000-0000-0000-000000000000",
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut d, extra) {
        d.extend(e);
    }
    d
}

fn assert_mde_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["target"].is_string(), "{v}");
}

fn at(v: &Value, key: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v[key].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn mde_isolate_follows_the_clock_and_refuses_duplicates() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()], false)).await;
    sim.add_devices(
        &tn.azure_tenant_id,
        vec![
            device("dev-ok", json!({})),
            device(
                "dev-fail",
                json!({"simActionOutcome": "Failed", "simActionMinutes": 5}),
            ),
            device("dev-timeout", json!({"simActionOutcome": "TimeOut"})),
        ],
    );
    let tok = token(&sim, &c, &tn, MDE_SCOPE).await;
    let mde = sim.mde_base();

    // The machine as MDE serves it, without the simulator's knobs.
    let (s, m) = get(&c, &format!("{mde}/machines/dev-fail"), &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(m["computerDnsName"], "dev-fail.contoso.local");
    assert_eq!(m["rbacGroupId"], "42");
    assert_eq!(m["rbacGroupName"], "Servers");
    assert!(m.get("simActionOutcome").is_none() && m.get("simActionMinutes").is_none());

    let isolate = json!({"Comment": "alert da123", "IsolationType": "Selective"});
    let (s, a) = post(
        &c,
        &format!("{mde}/machines/dev-ok/isolate"),
        &tok,
        &isolate,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["type"], "Isolate");
    assert_eq!(a["scope"], "Selective");
    assert_eq!(a["status"], "Pending");
    assert_eq!(a["requestor"], "app-1");
    assert_eq!(a["requestorComment"], "alert da123");
    assert_eq!(a["machineId"], "dev-ok");
    assert_eq!(a["computerDnsName"], "dev-ok.contoso.local");
    assert_eq!(at(&a, "creationDateTimeUtc"), t(10, 0));
    assert!(a["creationDateTimeUtc"].as_str().unwrap().ends_with('Z'));
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);

    // A second isolate while the first is pending.
    let (s, e) = post(
        &c,
        &format!("{mde}/machines/dev-ok/isolate"),
        &tok,
        &isolate,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_mde_error(&e, "ActiveRequestAlreadyExists");
    assert_eq!(e["error"]["message"], "Action is already in progress");
    // Another action type is not blocked by it.
    let (s, scan) = post(
        &c,
        &format!("{mde}/machines/dev-ok/runAntiVirusScan"),
        &tok,
        &json!({"Comment": "scan", "ScanType": "Quick"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{scan}");
    assert_eq!(scan["scope"], "Quick");

    sim.set_clock(t(10, 1));
    let (s, a) = get(&c, &format!("{mde}/machineactions/{id}"), &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(a["status"], "InProgress");
    assert_eq!(at(&a, "lastUpdateDateTimeUtc"), t(10, 1));
    let (s, e) = post(
        &c,
        &format!("{mde}/machines/dev-ok/isolate"),
        &tok,
        &isolate,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["message"], "Action is already in progress");

    sim.set_clock(t(10, 3));
    let (_, a) = get(&c, &format!("{mde}/machineactions/{id}"), &tok).await;
    assert_eq!(a["status"], "Succeeded");
    assert_eq!(at(&a, "lastUpdateDateTimeUtc"), t(10, 3));
    assert_eq!(at(&a, "creationDateTimeUtc"), t(10, 0));
    // Terminal: a new isolate is accepted again.
    let (s, again) = post(
        &c,
        &format!("{mde}/machines/dev-ok/isolate"),
        &tok,
        &json!({"Comment": "again"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(again["scope"], "Full", "IsolationType defaults to Full");
    let (s, un) = post(
        &c,
        &format!("{mde}/machines/dev-ok/unisolate"),
        &tok,
        &json!({"Comment": "release"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(un["type"], "Unisolate");
    assert!(un["scope"].is_null());

    // Failed after its 5 simulated minutes, TimeOut after the default 3.
    let (_, f) = post(
        &c,
        &format!("{mde}/machines/dev-fail/isolate"),
        &tok,
        &isolate,
    )
    .await;
    let (_, to) = post(
        &c,
        &format!("{mde}/machines/dev-timeout/isolate"),
        &tok,
        &isolate,
    )
    .await;
    let (fid, toid) = (f["id"].as_str().unwrap(), to["id"].as_str().unwrap());
    sim.set_clock(t(10, 7));
    assert_eq!(
        get(&c, &format!("{mde}/machineactions/{fid}"), &tok)
            .await
            .1["status"],
        "InProgress"
    );
    sim.set_clock(t(10, 8));
    assert_eq!(
        get(&c, &format!("{mde}/machineactions/{fid}"), &tok)
            .await
            .1["status"],
        "Failed"
    );
    let (_, x) = get(&c, &format!("{mde}/machineactions/{toid}"), &tok).await;
    assert_eq!(x["status"], "TimeOut");
    assert_eq!(at(&x, "lastUpdateDateTimeUtc"), t(10, 6));

    let all = sim.machine_actions();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0]["id"], id.as_str());
    assert_eq!(all[0]["status"], "Succeeded");
    assert_eq!(sim.machine_requests(), 8);
    sim.shutdown().await;
}

#[tokio::test]
async fn mde_refusals() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()], false)).await;
    sim.add_devices(
        &tn.azure_tenant_id,
        vec![device(
            "dev-mac",
            json!({"osPlatform": "macOS", "simUnsupported": ["Isolate", "RunAntiVirusScan"]}),
        )],
    );
    let tok = token(&sim, &c, &tn, MDE_SCOPE).await;
    let mde = sim.mde_base();
    let url = |a: &str| format!("{mde}/machines/dev-mac/{a}");

    let (s, e) = post(&c, &url("isolate"), &tok, &json!({"Comment": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_mde_error(&e, "OsPlatformNotSupported");
    let (s, e) = post(
        &c,
        &url("runAntiVirusScan"),
        &tok,
        &json!({"Comment": "x", "ScanType": "Full"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_mde_error(&e, "OsPlatformNotSupported");
    let (s, _) = post(&c, &url("unisolate"), &tok, &json!({"Comment": "x"})).await;
    assert_eq!(s, StatusCode::CREATED);

    // Body parameter names (and values) are case-sensitive; Comment is required.
    for body in [
        json!({"comment": "x"}),
        json!({}),
        json!({"Comment": ""}),
        json!({"Comment": "x", "isolationType": "Full"}),
        json!({"Comment": "x", "IsolationType": "full"}),
    ] {
        let (s, e) = post(&c, &url("isolate"), &tok, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_mde_error(&e, "InvalidInput");
    }
    let (s, e) = post(&c, &url("runAntiVirusScan"), &tok, &json!({"Comment": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_mde_error(&e, "InvalidInput");

    // Unknown device.
    let (s, e) = post(
        &c,
        &format!("{mde}/machines/nope/isolate"),
        &tok,
        &json!({"Comment": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_mde_error(&e, "NotFound");
    let (s, e) = get(&c, &format!("{mde}/machines/nope"), &tok).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_mde_error(&e, "NotFound");
    let (s, _) = get(&c, &format!("{mde}/machineactions/nope"), &tok).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    assert_eq!(sim.machine_requests(), 10);
    assert_eq!(sim.machine_actions().len(), 1);

    // Faults answer in the MDE shape, before authentication, and are counted.
    sim.set_fault(
        Endpoint::MdeAction,
        Fault::TooManyRequests {
            times: 1,
            retry_after: 0.5,
        },
    );
    let r = c
        .post(url("isolate"))
        .bearer_auth("garbage")
        .json(&json!({"Comment": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "0.5");
    assert_mde_error(&r.json().await.unwrap(), "TooManyRequests");
    sim.set_fault(
        Endpoint::MdeRead,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    let (s, e) = get(&c, &format!("{mde}/machines/dev-mac"), &tok).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_mde_error(&e, "ServiceUnavailable");
    let (s, _) = get(&c, &format!("{mde}/machines/dev-mac"), &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sim.machine_requests(), 11);
    sim.shutdown().await;
}

#[tokio::test]
async fn mde_tokens_and_tenants_are_checked() {
    let (t1, t2) = (tenant(1), tenant(2));
    let (sim, c) = start(config(vec![t1.clone(), t2.clone()], false)).await;
    sim.add_devices(&t2.azure_tenant_id, vec![device("dev-t2", json!({}))]);
    let mde = sim.mde_base();
    let tok1 = token(&sim, &c, &t1, MDE_SCOPE).await;
    let tok2 = token(&sim, &c, &t2, MDE_SCOPE).await;
    let graph2 = token(&sim, &c, &t2, GRAPH_SCOPE).await;
    let body = json!({"Comment": "x", "IsolationType": "Full"});

    // Another tenant's device is unknown.
    let (s, e) = get(&c, &format!("{mde}/machines/dev-t2"), &tok1).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_mde_error(&e, "NotFound");
    let (s, _) = post(&c, &format!("{mde}/machines/dev-t2/isolate"), &tok1, &body).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A Graph token (same tenant) is refused, as are no token and a garbage one.
    let (s, e) = post(
        &c,
        &format!("{mde}/machines/dev-t2/isolate"),
        &graph2,
        &body,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_mde_error(&e, "Unauthorized");
    let (s, e) = get(&c, &format!("{mde}/machines/dev-t2"), &graph2).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_mde_error(&e, "Unauthorized");
    let r = c
        .get(format!("{mde}/machines/dev-t2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = get(&c, &format!("{mde}/machineactions"), "garbage").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // ... and an MDE token is refused by Graph.
    let (s, e) = get(
        &c,
        &format!("{}/security/alerts_v2", sim.graph_base()),
        &tok2,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"]["code"], "InvalidAuthenticationToken");

    // The right token works; its action is invisible to the other tenant.
    let (s, a) = post(&c, &format!("{mde}/machines/dev-t2/isolate"), &tok2, &body).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(a["requestor"], "app-2");
    let id = a["id"].as_str().unwrap();
    let (s, _) = get(&c, &format!("{mde}/machineactions/{id}"), &tok1).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, l) = get(
        &c,
        &format!("{mde}/machineactions?$filter=machineId eq 'dev-t2'"),
        &tok1,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["value"], json!([]));
    let (s, a) = get(&c, &format!("{mde}/machineactions/{id}"), &tok2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(a["machineId"], "dev-t2");
    sim.shutdown().await;
}

#[tokio::test]
async fn mde_machineactions_filter_newest_first() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()], false)).await;
    sim.add_devices(
        &tn.azure_tenant_id,
        vec![device("dev-a", json!({})), device("dev-b", json!({}))],
    );
    let tok = token(&sim, &c, &tn, MDE_SCOPE).await;
    let mde = sim.mde_base();
    let mut a_ids = Vec::new();
    for (i, (dev, action, body)) in [
        ("dev-a", "isolate", json!({"Comment": "1"})),
        ("dev-b", "isolate", json!({"Comment": "2"})),
        (
            "dev-a",
            "runAntiVirusScan",
            json!({"Comment": "3", "ScanType": "Full"}),
        ),
        ("dev-a", "unisolate", json!({"Comment": "4"})),
    ]
    .into_iter()
    .enumerate()
    {
        sim.set_clock(t(10, 0) + TimeDelta::seconds(10 * i as i64));
        let (s, a) = post(&c, &format!("{mde}/machines/{dev}/{action}"), &tok, &body).await;
        assert_eq!(s, StatusCode::CREATED, "{a}");
        if dev == "dev-a" {
            a_ids.push(a["id"].as_str().unwrap().to_string());
        }
    }
    let (s, l) = get(
        &c,
        &format!("{mde}/machineactions?$filter=machineId eq 'dev-a'"),
        &tok,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let got: Vec<&str> = l["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    a_ids.reverse();
    assert_eq!(got, a_ids);
    assert_eq!(l["value"][0]["type"], "Unisolate");

    let (s, l) = get(&c, &format!("{mde}/machineactions"), &tok).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["value"].as_array().unwrap().len(), 4);

    for q in [
        "$filter=status eq 'Pending'",
        "$filter=machineId ne 'dev-a'",
        "$top=1",
    ] {
        let (s, e) = get(&c, &format!("{mde}/machineactions?{q}"), &tok).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_mde_error(&e, "BadRequest");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn mde_all_visible_runs_on_wall_seconds() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()], true)).await;
    sim.add_devices(
        &tn.azure_tenant_id,
        vec![device(
            "dev-a",
            json!({"simActionMinutes": 2.5, "simActionOutcome": "Cancelled"}),
        )],
    );
    let tok = token(&sim, &c, &tn, MDE_SCOPE).await;
    let mde = sim.mde_base();
    let before = Utc::now();
    let (s, a) = post(
        &c,
        &format!("{mde}/machines/dev-a/isolate"),
        &tok,
        &json!({"Comment": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(a["status"], "Pending");
    // Wall time, not the (undriven) simulated clock.
    assert!(at(&a, "creationDateTimeUtc") >= before - TimeDelta::seconds(1));
    let url = format!("{mde}/machineactions/{}", a["id"].as_str().unwrap());
    // InProgress from 1 s, Cancelled from 2.5 s; the sleeps leave a wide margin either side.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&c, &url, &tok).await.1["status"], "InProgress");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(get(&c, &url, &tok).await.1["status"], "Cancelled");
    sim.shutdown().await;
}

fn user(id: &str, name: &str) -> Value {
    json!({
        "id": id,
        "displayName": name,
        "mail": format!("{name}@contoso.com"),
        "userPrincipalName": format!("{name}@contoso.onmicrosoft.com"),
        "jobTitle": "Engineer",
    })
}

#[tokio::test]
async fn confirm_compromised_is_limited_to_one_per_second_per_tenant() {
    let (t1, t2) = (tenant(1), tenant(2));
    let (sim, c) = start(config(vec![t1.clone(), t2.clone()], false)).await;
    let u1 = "11111111-0000-0000-0000-000000000001";
    let u2 = "11111111-0000-0000-0000-000000000002";
    let u3 = "22222222-0000-0000-0000-000000000003";
    sim.add_users(
        &t1.azure_tenant_id,
        vec![user(u1, "alice"), user(u2, "bob")],
    );
    sim.add_users(&t2.azure_tenant_id, vec![user(u3, "carol")]);
    let g1 = token(&sim, &c, &t1, GRAPH_SCOPE).await;
    let g2 = token(&sim, &c, &t2, GRAPH_SCOPE).await;
    let mde1 = token(&sim, &c, &t1, MDE_SCOPE).await;
    let url = format!(
        "{}/identityProtection/riskyUsers/confirmCompromised",
        sim.graph_base()
    );
    let send = |tok: &str, ids: Value| {
        c.post(&url)
            .bearer_auth(tok)
            .json(&json!({ "userIds": ids }))
            .send()
    };

    // Wrong audience: refused before the limiter, so it uses no slot.
    let r = send(&mde1, json!([u1])).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = send(&g1, json!([u1])).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = send(&g1, json!([u2])).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "TooManyRequests");
    assert!(v["error"]["message"].is_string());
    // The other tenant has its own budget.
    let r = send(&g2, json!([u3])).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    tokio::time::sleep(Duration::from_millis(1050)).await;
    // A user listed twice is recorded once; ids match case-insensitively.
    let r = send(&g1, json!([u2, u1, u2.to_uppercase()])).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Another tenant's user is unknown: 404 in the Graph shape, nobody confirmed.
    let r = send(&g2, json!([u3, u1])).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "Request_ResourceNotFound");

    // A fault 429 carries no Retry-After either.
    sim.set_fault(
        Endpoint::GraphConfirmCompromised,
        Fault::TooManyRequests {
            times: 1,
            retry_after: 2.0,
        },
    );
    let r = send(&g2, json!([u3])).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_none());

    let a = t1.azure_tenant_id.clone();
    let b = t2.azure_tenant_id.clone();
    assert_eq!(
        sim.confirmed_users(),
        vec![
            (a.clone(), u1.to_string()),
            (b, u3.to_string()),
            (a.clone(), u2.to_string()),
            (a, u1.to_string()),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn users_get_select_and_not_found() {
    let (t1, t2) = (tenant(1), tenant(2));
    let (sim, c) = start(config(vec![t1.clone(), t2.clone()], false)).await;
    let u1 = "11111111-0000-0000-0000-000000000001";
    sim.add_users(&t1.azure_tenant_id, vec![user(u1, "alice")]);
    let g1 = token(&sim, &c, &t1, GRAPH_SCOPE).await;
    let g2 = token(&sim, &c, &t2, GRAPH_SCOPE).await;
    let base = sim.graph_base();

    let (s, u) = get(&c, &format!("{base}/users/{u1}"), &g1).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["displayName"], "alice");
    assert_eq!(u["jobTitle"], "Engineer");

    let (s, u) = get(
        &c,
        &format!("{base}/users/Alice@Contoso.onmicrosoft.com?$select=displayName,mail,userPrincipalName,officeLocation"),
        &g1,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let keys: Vec<&str> = u
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with('@'))
        .collect();
    assert_eq!(keys.len(), 4, "{u}");
    assert_eq!(u["mail"], "alice@contoso.com");
    assert_eq!(u["userPrincipalName"], "alice@contoso.onmicrosoft.com");
    assert!(u["officeLocation"].is_null());
    assert!(u.get("id").is_none() && u.get("jobTitle").is_none());

    for (tok, who) in [(&g1, "nobody@contoso.com"), (&g2, u1)] {
        let (s, e) = get(&c, &format!("{base}/users/{who}"), tok).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(e["error"]["code"], "Request_ResourceNotFound");
    }
    let (s, _) = get(&c, &format!("{base}/users/{u1}?$expand=manager"), &g1).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get(&c, &format!("{base}/users/{u1}"), "garbage").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    sim.shutdown().await;
}

#[tokio::test]
async fn analyzed_emails_remediate() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()], false)).await;
    let g = token(&sim, &c, &tn, GRAPH_SCOPE).await;
    let mde = token(&sim, &c, &tn, MDE_SCOPE).await;
    let url = format!(
        "{}/security/collaboration/analyzedEmails/remediate",
        sim.graph_beta_base()
    );
    let body = json!({
        "displayName": "MSS: phish cleanup",
        "description": "AIR pending approval",
        "severity": "medium",
        "action": "softDelete",
        "approverUpn": "soc@mssp.example",
        "remediateSendersCopy": false,
        "analyzedEmails": [
            {"networkMessageId": "73ca4154-58d8-43d0-a890-08dc18c52e6d", "recipientEmailAddress": "alice@contoso.com"}
        ],
    });

    let r = c
        .post(&url)
        .bearer_auth(&g)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("https://"), "{location}");
    let rec = sim.email_remediations();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0]["action"], "softDelete");
    assert_eq!(rec[0]["analyzedEmails"], body["analyzedEmails"]);
    assert_eq!(rec[0]["simAzureTenantId"], tn.azure_tenant_id.as_str());
    assert_eq!(rec[0]["simLocation"], location.as_str());

    let mut bad_action = body.clone();
    bad_action["action"] = json!("delete");
    let mut no_emails = body.clone();
    no_emails["analyzedEmails"] = json!([]);
    let mut half_email = body.clone();
    half_email["analyzedEmails"] = json!([{"networkMessageId": "x"}]);
    for b in [bad_action, no_emails, half_email] {
        let (s, e) = post(&c, &url, &g, &b).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(e["error"]["code"], "BadRequest");
    }
    let (s, _) = post(&c, &url, &mde, &body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.email_remediations().len(), 1);

    // The reference page's variant: 202, items by id.
    sim.set_email_remediate_status(202);
    let mut by_id = body.clone();
    by_id["analyzedEmails"] =
        json!([{"id": "73ca4154-58d8-43d0-a890-08dc18c52e6d-1311265001240363512-1"}]);
    by_id["remediateSendersCopy"] = json!("false");
    let r = c
        .post(&url)
        .bearer_auth(&g)
        .json(&by_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("location"));
    assert_eq!(sim.email_remediations().len(), 2);
    sim.shutdown().await;
}
