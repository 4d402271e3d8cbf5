//! Graph advanced hunting (`security/runHuntingQuery`) over real HTTPS (the client trusts only
//! the simulator's CA): canned rows per query id, strict lexing of `let` string literals, the
//! per-tenant quota on the simulated clock, and the fault knob.

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

fn config(tenants: Vec<SimTenant>) -> SimConfig {
    SimConfig {
        tenants,
        opsramp_tenant_id: "client_1234".into(),
        opsramp_client_id: "or-id".into(),
        opsramp_client_secret: "or-secret".into(),
        state_file: None,
        all_visible: false,
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

fn url(sim: &Sim) -> String {
    format!("{}/security/runHuntingQuery", sim.graph_base())
}

/// Posts a raw body; answers status, Retry-After and the JSON body.
async fn hunt_raw(
    sim: &Sim,
    c: &reqwest::Client,
    tok: &str,
    body: &Value,
) -> (StatusCode, Option<String>, Value) {
    let r = c
        .post(url(sim))
        .bearer_auth(tok)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status();
    let ra = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (s, ra, r.json().await.unwrap_or(Value::Null))
}

async fn hunt(sim: &Sim, c: &reqwest::Client, tok: &str, query: &str) -> (StatusCode, Value) {
    let (s, _, v) = hunt_raw(sim, c, tok, &json!({"Query": query})).await;
    (s, v)
}

/// A KQL double-quoted string literal, escaping everything the simulator's lexer knows.
fn lit(v: &str) -> String {
    let mut out = String::from("\"");
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A query in the mss client's conventions.
fn render(id: &str, strings: &[(&str, &str)], window: (DateTime<Utc>, DateTime<Utc>)) -> String {
    let mut q = format!("// mss-query: {id}\n");
    for (n, v) in strings {
        q.push_str(&format!("let {n} = {};\n", lit(v)));
    }
    q.push_str(&format!(
        "let WindowStart = datetime({});\nlet WindowEnd = datetime({});\n",
        window.0.to_rfc3339(),
        window.1.to_rfc3339()
    ));
    q.push_str("SomeTable\n| where Timestamp between (WindowStart .. WindowEnd)\n| take 50");
    q
}

fn columns(v: &Value) -> Vec<String> {
    v["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn rows(v: &Value) -> &Vec<Value> {
    v["results"].as_array().unwrap()
}

fn assert_graph_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["innerError"]["request-id"].is_string(), "{v}");
}

/// `2024-05-01T09:12:34.5678901Z`: 7 fractional digits and `Z`.
fn parse_ts(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp {v}"));
    let frac = s.split_once('.').unwrap().1;
    assert_eq!(frac.len(), 8, "{s}");
    assert!(frac.ends_with('Z'), "{s}");
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn each_query_id_returns_its_schema_and_rows() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = token(&sim, &c, &tn, GRAPH_SCOPE).await;
    let window = (t(9, 0), t(10, 0));
    let week = (t(10, 0) - TimeDelta::days(7), t(10, 0));

    const DEV_ID: &str = "4a1c7e2f0b9d3e8a6c5f1d2b7e0a9c3f4d6b8e1a";
    const DEV_NAME: &str = "osk-pc-0456.corp.contoso.co.jp";
    const MSG_ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const RCPT: &str = "ichiro.kato@contoso.co.jp";
    const OID: &str = "11111111-2222-3333-4444-555555555555";
    const UPN: &str = "ichiro.kato@contoso.co.jp";
    let device: &[(&str, &str)] = &[("AlertDeviceId", DEV_ID), ("AlertDeviceName", DEV_NAME)];
    let mail: &[(&str, &str)] = &[("AlertMessageId", MSG_ID), ("AlertRecipient", RCPT)];
    let user: &[(&str, &str)] = &[("AlertUserObjectId", OID), ("AlertUserUpn", UPN)];
    // (id, bindings, window, expected columns, (column, expected echo) pairs)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        (DateTime<Utc>, DateTime<Utc>),
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
    );
    let cases: Vec<Case> = vec![
        (
            "mde-process-events",
            device,
            window,
            &[
                "Timestamp",
                "DeviceId",
                "DeviceName",
                "ActionType",
                "FileName",
                "FolderPath",
                "ProcessCommandLine",
                "ProcessId",
                "SHA256",
                "AccountDomain",
                "AccountName",
                "InitiatingProcessFileName",
            ],
            &[("DeviceId", DEV_ID), ("DeviceName", DEV_NAME)],
        ),
        (
            "mde-network-events",
            device,
            window,
            &[
                "Timestamp",
                "DeviceId",
                "DeviceName",
                "ActionType",
                "RemoteIP",
                "RemotePort",
                "RemoteUrl",
                "LocalIP",
                "Protocol",
                "InitiatingProcessFileName",
            ],
            &[("DeviceName", DEV_NAME)],
        ),
        (
            "mde-file-events",
            device,
            window,
            &[
                "Timestamp",
                "DeviceId",
                "DeviceName",
                "ActionType",
                "FileName",
                "FolderPath",
                "SHA256",
                "FileSize",
                "InitiatingProcessFileName",
                "InitiatingProcessAccountName",
            ],
            &[("DeviceId", DEV_ID)],
        ),
        (
            "mde-device-alerts-7d",
            device,
            week,
            &["Timestamp", "AlertId", "Title", "Severity", "ServiceSource"],
            &[],
        ),
        (
            "mdo-message",
            mail,
            week,
            &[
                "Timestamp",
                "NetworkMessageId",
                "SenderFromAddress",
                "RecipientEmailAddress",
                "Subject",
                "DeliveryAction",
                "DeliveryLocation",
                "ThreatTypes",
            ],
            &[("NetworkMessageId", MSG_ID)],
        ),
        (
            "mdo-recipients",
            mail,
            week,
            &["RecipientEmailAddress", "Deliveries", "Locations"],
            &[],
        ),
        (
            "mdo-url-clicks",
            mail,
            week,
            &[
                "Timestamp",
                "AccountUpn",
                "Url",
                "ActionType",
                "IsClickedThrough",
                "NetworkMessageId",
            ],
            &[("AccountUpn", RCPT), ("NetworkMessageId", MSG_ID)],
        ),
        (
            "mdo-post-delivery",
            mail,
            week,
            &[
                "Timestamp",
                "NetworkMessageId",
                "RecipientEmailAddress",
                "Action",
                "ActionType",
                "ActionResult",
                "DeliveryLocation",
            ],
            &[
                ("NetworkMessageId", MSG_ID),
                ("RecipientEmailAddress", RCPT),
            ],
        ),
        (
            "user-signins-7d",
            user,
            week,
            &[
                "Timestamp",
                "AccountObjectId",
                "AccountUpn",
                "IPAddress",
                "Country",
                "City",
                "Application",
                "ErrorCode",
                "RiskLevelAggregated",
            ],
            &[("AccountObjectId", OID), ("AccountUpn", UPN)],
        ),
        (
            "user-identity-logons-7d",
            user,
            week,
            &[
                "Timestamp",
                "AccountObjectId",
                "AccountUpn",
                "ActionType",
                "LogonType",
                "DeviceName",
                "IPAddress",
            ],
            &[("AccountUpn", UPN)],
        ),
        (
            "user-alerts-7d",
            user,
            week,
            &["Timestamp", "AlertId", "Title", "Severity", "ServiceSource"],
            &[],
        ),
    ];
    for (id, bindings, win, expected_cols, echoes) in &cases {
        let (s, v) = hunt(&sim, &c, &tok, &render(id, bindings, *win)).await;
        assert_eq!(s, StatusCode::OK, "{id}: {v}");
        assert_eq!(
            v["@odata.context"],
            "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults"
        );
        assert_eq!(columns(&v), *expected_cols, "{id}");
        let rs = rows(&v);
        assert!((2..=4).contains(&rs.len()), "{id}: {} rows", rs.len());
        for row in rs {
            let o = row.as_object().unwrap();
            assert_eq!(o.len(), expected_cols.len(), "{id}: {row}");
            for col in v["schema"].as_array().unwrap() {
                let (name, ty) = (col["name"].as_str().unwrap(), col["type"].as_str().unwrap());
                let val = &row[name];
                match ty {
                    "DateTime" => {
                        let ts = parse_ts(val);
                        assert!(ts >= win.0 && ts <= win.1, "{id}: {ts} outside window");
                    }
                    "String" | "Dynamic" => assert!(val.is_string(), "{id}.{name}: {val}"),
                    "Int32" | "Int64" => assert!(val.is_i64(), "{id}.{name}: {val}"),
                    "Boolean" => assert!(val.is_boolean(), "{id}.{name}: {val}"),
                    other => panic!("{id}.{name}: unexpected type {other}"),
                }
            }
        }
        for (col, want) in *echoes {
            assert_eq!(rs[0][*col], *want, "{id}.{col}");
        }
    }

    // Identity: Japanese sign-ins plus one from abroad, with risk.
    let (_, v) = hunt(&sim, &c, &tok, &render("user-signins-7d", user, week)).await;
    let countries: Vec<&str> = rows(&v)
        .iter()
        .map(|r| r["Country"].as_str().unwrap())
        .collect();
    assert_eq!(countries.iter().filter(|c| **c != "JP").count(), 1, "{v}");
    assert!(rows(&v)
        .iter()
        .any(|r| r["Country"] != "JP" && r["RiskLevelAggregated"] == 100));
    // The recipients summary lists the bound recipient.
    let (_, v) = hunt(&sim, &c, &tok, &render("mdo-recipients", mail, week)).await;
    assert!(rows(&v)
        .iter()
        .any(|r| r["RecipientEmailAddress"] == RCPT && r["Deliveries"].is_i64()));
    // Deterministic: the same query gives the same answer.
    let q = render("mde-process-events", device, window);
    assert_eq!(
        hunt(&sim, &c, &tok, &q).await.1,
        hunt(&sim, &c, &tok, &q).await.1
    );

    // The column names stand in for the client's binding names.
    let (s, v) = hunt(
        &sim,
        &c,
        &tok,
        &render(
            "mde-process-events",
            &[("DeviceName", "tky-pc-0999"), ("DeviceId", "abc")],
            window,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rows(&v)[0]["DeviceName"], "tky-pc-0999");
    assert_eq!(rows(&v)[0]["DeviceId"], "abc");

    // Without window bindings the rows end at the simulated clock.
    sim.set_clock(t(15, 30));
    let (s, v) = hunt(
        &sim,
        &c,
        &tok,
        "// mss-query: mde-file-events\nDeviceFileEvents | take 5",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for r in rows(&v) {
        let ts = parse_ts(&r["Timestamp"]);
        assert!(ts > t(14, 30) && ts < t(15, 30), "{ts}");
    }
    // ... or inside the Timespan when one is given.
    let (s, _, v) = hunt_raw(
        &sim,
        &c,
        &tok,
        &json!({"Query": "DeviceFileEvents | take 5", "Timespan": "2024-04-01T00:00:00Z/P1D"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(columns(&v)[3], "ActionType");
    for r in rows(&v) {
        let ts = parse_ts(&r["Timestamp"]);
        assert!(ts > Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap());
        assert!(ts < Utc.with_ymd_and_hms(2024, 4, 2, 0, 0, 0).unwrap());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn hostile_binding_values_are_echoed_intact() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = token(&sim, &c, &tn, GRAPH_SCOPE).await;
    let window = (t(9, 0), t(10, 0));
    let hostile = [
        "x\" | take 0; let WindowStart = datetime(2000-01-01); //",
        "C:\\Users\\\"evil\"\\",
        "line1\nline2\r\n| union DeviceEvents\tlet x=1;",
        "O'Brien's \\' \\\\\" ;",
        "山田太郎@例え.jp | let x= \"\";",
        "trailing backslash \\",
    ];
    for v in hostile {
        let q = render(
            "mde-process-events",
            &[("AlertDeviceId", "dev1"), ("AlertDeviceName", v)],
            window,
        );
        let (s, body) = hunt(&sim, &c, &tok, &q).await;
        assert_eq!(s, StatusCode::OK, "{v:?}: {body}");
        for r in rows(&body) {
            assert_eq!(r["DeviceName"], v, "{v:?}");
            assert_eq!(r["DeviceId"], "dev1");
            let ts = parse_ts(&r["Timestamp"]);
            assert!(ts >= window.0 && ts <= window.1);
        }
        let q = render("user-signins-7d", &[("AlertUserUpn", v)], window);
        let (s, body) = hunt(&sim, &c, &tok, &q).await;
        assert_eq!(s, StatusCode::OK, "{v:?}: {body}");
        assert!(rows(&body).iter().all(|r| r["AccountUpn"] == v));
    }
    // What was sent is recorded verbatim.
    let calls = sim.hunting_queries();
    assert_eq!(calls.len(), hostile.len() * 2);
    assert!(calls.iter().all(|c| c.status == 200));
    assert!(calls[0]
        .query
        .starts_with("// mss-query: mde-process-events\n"));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_literals_and_bodies_are_400() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = token(&sim, &c, &tn, GRAPH_SCOPE).await;
    let head = "// mss-query: mde-process-events\n";
    let tail = "\nDeviceProcessEvents | take 1";
    for bad in [
        // The value `a"b` with its quote not escaped.
        "let AlertDeviceName = \"a\"b\";",
        // An unescaped line break.
        "let AlertDeviceName = \"a\nb\";",
        // Unterminated.
        "let AlertDeviceName = \"abc;",
        // A trailing backslash swallowing the closing quote.
        "let AlertDeviceName = \"abc\\\";",
        // Unknown escapes.
        "let AlertDeviceName = \"a\\x41\";",
        "let AlertDeviceName = \"a\\u0041\";",
        // Anything after the literal but spaces and ';'.
        "let AlertDeviceName = \"a\" | take 1;",
        "let AlertDeviceName = \"a\"; DeviceProcessEvents",
        "let AlertDeviceName = \"a\"",
        // Other literal forms the client never renders.
        "let AlertDeviceName = 'a';",
        "let AlertDeviceName = @\"a\";",
        "let WindowStart = datetime(last tuesday);",
    ] {
        let (s, v) = hunt(&sim, &c, &tok, &format!("{head}{bad}{tail}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
        assert_graph_error(&v, "BadRequest");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("Syntax error: "), "{m}");
    }
    // Only lets, no query.
    let (s, v) = hunt(&sim, &c, &tok, &format!("{head}let A = \"x\";\n")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Body problems.
    for body in [
        json!({}),
        json!({"Query": ""}),
        json!({"Query": "   "}),
        json!({"Query": null}),
        json!({"Query": 5}),
        json!(["DeviceProcessEvents"]),
        json!({"Query": "DeviceProcessEvents", "Timespan": "yesterday"}),
        json!({"Query": "DeviceProcessEvents", "Timespan": 30}),
    ] {
        let (s, _, v) = hunt_raw(&sim, &c, &tok, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_graph_error(&v, "BadRequest");
    }
    let r = c
        .post(url(&sim))
        .bearer_auth(&tok)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Accepted Timespan forms and property-name casing.
    for ts in [
        "P1D",
        "PT6H",
        "2024-05-01T08:00:00Z/2024-05-01T09:00:00Z",
        "P30D/2024-05-01T09:00:00Z",
        "2024-05-01T08:00:00Z/PT1H",
        "2024-05-01T08:00:00Z",
    ] {
        let (s, _, v) = hunt_raw(
            &sim,
            &c,
            &tok,
            &json!({"query": "DeviceProcessEvents | take 1", "timespan": ts}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{ts}: {v}");
    }

    // Unknown queries answer empty; a known table without an id is recognised.
    let (s, v) = hunt(
        &sim,
        &c,
        &tok,
        "// mss-query: nope\nCloudAppEvents | take 1",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["schema"], json!([]));
    assert_eq!(v["results"], json!([]));
    let (s, v) = hunt(
        &sim,
        &c,
        &tok,
        "let AlertRecipient = \"a@contoso.co.jp\";\nlet x = \"UrlClickEvents\";\nEmailPostDeliveryEvents | join (EmailEvents) on NetworkMessageId",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(columns(&v).contains(&"ActionResult".to_string()), "{v}");
    assert_eq!(rows(&v)[0]["RecipientEmailAddress"], "a@contoso.co.jp");
    let (_, v) = hunt(
        &sim,
        &c,
        &tok,
        "let AlertUserUpn = \"u@contoso.co.jp\";\nAlertInfo | join AlertEvidence on AlertId",
    )
    .await;
    assert_eq!(rows(&v).len(), 3, "user alerts: {v}");
    let (_, v) = hunt(&sim, &c, &tok, "AlertInfo | take 10").await;
    assert_eq!(rows(&v).len(), 2, "device alerts: {v}");
    // A window that ends before it starts has no rows.
    let (s, v) = hunt(
        &sim,
        &c,
        &tok,
        &render("mdo-message", &[], (t(10, 0), t(9, 0))),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(columns(&v).len(), 8);
    assert_eq!(v["results"], json!([]));

    let calls = sim.hunting_queries();
    assert!(calls.iter().any(|c| c.status == 400 && c.query.is_empty()));
    assert!(calls
        .iter()
        .any(|c| c.timespan.as_deref() == Some("2024-05-01T08:00:00Z/PT1H")));
    sim.shutdown().await;
}

#[tokio::test]
async fn tokens_are_checked_and_tenants_kept_apart() {
    let (t1, t2) = (tenant(1), tenant(2));
    let (sim, c) = start(config(vec![t1.clone(), t2.clone()])).await;
    let q = json!({"Query": "DeviceProcessEvents | take 1"});

    // No token, a garbage token, and an MDE token of the same tenant: 401 Graph-shaped.
    let r = c.post(url(&sim)).json(&q).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_graph_error(&r.json().await.unwrap(), "InvalidAuthenticationToken");
    let (s, _, v) = hunt_raw(&sim, &c, "garbage", &q).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_graph_error(&v, "InvalidAuthenticationToken");
    let mde1 = token(&sim, &c, &t1, MDE_SCOPE).await;
    let (s, _, v) = hunt_raw(&sim, &c, &mde1, &q).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_graph_error(&v, "InvalidAuthenticationToken");
    // Tenant A's credentials do not get a token at tenant B.
    let r = c
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.authority_host(),
            t2.azure_tenant_id
        ))
        .form(&[
            ("client_id", t1.client_id.as_str()),
            ("client_secret", t1.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", GRAPH_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert!(
        sim.hunting_queries().is_empty(),
        "refused calls are not recorded"
    );

    // Each Graph token runs in its own tenant.
    let g1 = token(&sim, &c, &t1, GRAPH_SCOPE).await;
    let g2 = token(&sim, &c, &t2, GRAPH_SCOPE).await;
    assert_eq!(hunt_raw(&sim, &c, &g1, &q).await.0, StatusCode::OK);
    let (s, _, _) = hunt_raw(
        &sim,
        &c,
        &g2,
        &json!({"Query": "EmailEvents", "Timespan": "P7D"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let calls = sim.hunting_queries();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].azure_tenant_id, t1.azure_tenant_id);
    assert_eq!(calls[0].query, "DeviceProcessEvents | take 1");
    assert_eq!(calls[0].timespan, None);
    assert_eq!(calls[1].azure_tenant_id, t2.azure_tenant_id);
    assert_eq!(calls[1].timespan.as_deref(), Some("P7D"));
    assert_eq!(calls[1].at, t(10, 0));
    assert_eq!(sim.stats().hunting_requests, 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn quota_follows_the_simulated_clock_per_tenant() {
    let (t1, t2) = (tenant(1), tenant(2));
    let (sim, c) = start(config(vec![t1.clone(), t2.clone()])).await;
    let g1 = token(&sim, &c, &t1, GRAPH_SCOPE).await;
    let g2 = token(&sim, &c, &t2, GRAPH_SCOPE).await;
    let q = json!({"Query": "// mss-query: mde-process-events\nDeviceProcessEvents"});

    for i in 0..45 {
        let (s, _, v) = hunt_raw(&sim, &c, &g1, &q).await;
        assert_eq!(s, StatusCode::OK, "call {i}: {v}");
    }
    let (s, ra, v) = hunt_raw(&sim, &c, &g1, &q).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_graph_error(&v, "TooManyRequests");
    assert_eq!(
        v["error"]["message"],
        "API calls quota exceeded! maximum allowed 45 per 00:01:00"
    );
    assert_eq!(ra.as_deref(), Some("60"));
    // Wall time does not help; simulated time inside the minute only shortens the wait.
    sim.set_clock(t(10, 0) + TimeDelta::seconds(40));
    let (s, ra, _) = hunt_raw(&sim, &c, &g1, &q).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ra.as_deref(), Some("20"));
    // The other tenant has its own budget.
    assert_eq!(hunt_raw(&sim, &c, &g2, &q).await.0, StatusCode::OK);
    // A minute later calls go through again.
    sim.set_clock(t(10, 1));
    assert_eq!(hunt_raw(&sim, &c, &g1, &q).await.0, StatusCode::OK);
    let calls = sim.hunting_queries();
    assert_eq!(calls.iter().filter(|c| c.status == 429).count(), 2);

    // The hour quota, with small numbers.
    sim.set_hunting_quota(2, 5);
    // 46 calls were made this hour already: only the hour quota speaks now.
    let (s, ra, v) = hunt_raw(&sim, &c, &g1, &q).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        v["error"]["message"],
        "API calls quota exceeded! maximum allowed 5 per 01:00:00"
    );
    assert_eq!(ra.as_deref(), Some("3540"));
    sim.set_clock(t(11, 0));
    assert_eq!(hunt_raw(&sim, &c, &g1, &q).await.0, StatusCode::OK);
    assert_eq!(hunt_raw(&sim, &c, &g1, &q).await.0, StatusCode::OK);
    let (s, ra, v) = hunt_raw(&sim, &c, &g1, &q).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        v["error"]["message"],
        "API calls quota exceeded! maximum allowed 2 per 00:01:00"
    );
    assert_eq!(ra.as_deref(), Some("60"));
    for m in 1..=3 {
        sim.set_clock(t(11, m));
        assert_eq!(
            hunt_raw(&sim, &c, &g1, &q).await.0,
            StatusCode::OK,
            "11:0{m}"
        );
    }
    // Five this hour: the hour is used up although this minute is fresh.
    sim.set_clock(t(11, 30) + TimeDelta::milliseconds(500));
    let (s, ra, v) = hunt_raw(&sim, &c, &g1, &q).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .ends_with("5 per 01:00:00"));
    assert_eq!(ra.as_deref(), Some("1800"));
    // A 400 uses a slot too.
    sim.set_clock(t(12, 0));
    let (s, _, _) = hunt_raw(&sim, &c, &g1, &json!({"Query": ""})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(hunt_raw(&sim, &c, &g1, &q).await.0, StatusCode::OK);
    assert_eq!(
        hunt_raw(&sim, &c, &g1, &q).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_knob_answers_before_the_service() {
    let tn = tenant(1);
    let (sim, c) = start(config(vec![tn.clone()])).await;
    let tok = token(&sim, &c, &tn, GRAPH_SCOPE).await;
    let q = json!({"Query": "// mss-query: mdo-message\nEmailEvents"});
    sim.set_hunting_quota(2, 100);

    sim.set_fault(
        Endpoint::GraphHunting,
        Fault::ServerError {
            times: 2,
            status: 504,
        },
    );
    for _ in 0..2 {
        let (s, _, v) = hunt_raw(&sim, &c, &tok, &q).await;
        assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
        assert_graph_error(&v, "GatewayTimeout");
    }
    sim.set_fault(
        Endpoint::GraphHunting,
        Fault::TooManyRequests {
            times: 1,
            retry_after: 0.5,
        },
    );
    let (s, ra, v) = hunt_raw(&sim, &c, &tok, &q).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(ra.as_deref(), Some("0.5"));
    assert_graph_error(&v, "TooManyRequests");
    sim.set_fault(
        Endpoint::GraphHunting,
        Fault::Latency {
            times: 1,
            millis: 200,
        },
    );
    let started = std::time::Instant::now();
    assert_eq!(hunt_raw(&sim, &c, &tok, &q).await.0, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    // Faults used no quota: the second call of this minute still passes.
    assert_eq!(hunt_raw(&sim, &c, &tok, &q).await.0, StatusCode::OK);
    assert_eq!(
        hunt_raw(&sim, &c, &tok, &q).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other Graph knobs leave hunting alone.
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 5,
            status: 503,
        },
    );
    sim.set_clock(t(10, 1));
    assert_eq!(hunt_raw(&sim, &c, &tok, &q).await.0, StatusCode::OK);

    assert_eq!(sim.stats().hunting_requests, 7);
    let calls = sim.hunting_queries();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![200, 200, 429, 200]
    );
    sim.shutdown().await;
}
