//! Tenant isolation in the simulator: a client that deliberately uses tenant A's token (or app
//! credential) for a request about tenant B is caught at every tenant-scoped endpoint — the
//! request is refused and [`Sim::isolation_violations`] names it — while the same requests with
//! the right tenant's token, and identifiers no single other tenant owns, are not violations.

use chrono::{TimeZone, Utc};
use mss_sim::{IsolationViolation, Sim, SimConfig, SimTenant};
use reqwest::StatusCode;
use serde_json::{json, Value};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const MDE_SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";
const LA_SCOPE: &str = "https://api.loganalytics.io/.default";

const AZ_A: &str = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa";
const AZ_B: &str = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb";
const WS_B: &str = "4b4b4b4b-2222-4222-8222-bbbbbbbbbbbb";
const DEV_B: &str = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
const HOST_B: &str = "bank-pc-0001.aoba.example";
const USER_B: &str = "7b7b7b7b-2222-4222-8222-bbbbbbbbbbbb";
const UPN_B: &str = "jiro@aoba.example";
const MSG_B: &str = "9b9b9b9b-2222-4222-8222-bbbbbbbbbbbb";
/// In an alert of A's feed that claims B's tenant: B's, not A's.
const DEV_MISROUTED: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
/// In both tenants' alerts: proves nothing, never a violation.
const HOST_SHARED: &str = "shared-name.example";

fn alert(id: &str, tenant: &str, evidence: Value) -> Value {
    json!({"id": id, "lastUpdateDateTime": "2026-11-02T00:10:00Z", "createdDateTime": "2026-11-02T00:10:00Z",
        "serviceSource": "microsoftDefenderForEndpoint", "severity": "high", "status": "new",
        "title": format!("alert {id}"), "tenantId": tenant, "evidence": evidence})
}

fn tenants() -> (SimTenant, SimTenant) {
    let a = SimTenant {
        azure_tenant_id: AZ_A.into(),
        client_id: "app-a".into(),
        client_secret: "secret-a".into(),
        alerts: vec![
            alert(
                "a-1",
                AZ_A,
                json!([{"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": HOST_SHARED}]),
            ),
            // Misrouted: in A's feed, claiming B; its evidence is B's.
            alert(
                "a-2",
                AZ_B,
                json!([{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": DEV_MISROUTED}]),
            ),
        ],
    };
    let b = SimTenant {
        azure_tenant_id: AZ_B.into(),
        client_id: "app-b".into(),
        client_secret: "secret-b".into(),
        alerts: (1..=3)
            .map(|i| {
                alert(
                    &format!("b-{i}"),
                    AZ_B,
                    json!([
                        {"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": DEV_B, "deviceDnsName": HOST_SHARED},
                        {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "networkMessageId": MSG_B, "recipientEmailAddress": UPN_B}
                    ]),
                )
            })
            .collect(),
    };
    (a, b)
}

async fn start() -> (Sim, reqwest::Client, SimTenant, SimTenant) {
    let (a, b) = tenants();
    let sim = Sim::start(
        SimConfig {
            tenants: vec![a.clone(), b.clone()],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "or-id".into(),
            opsramp_client_secret: "or-secret".into(),
            state_file: None,
            all_visible: true,
            start_clock: Utc.with_ymd_and_hms(2026, 11, 2, 1, 0, 0).unwrap(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    sim.add_devices(
        AZ_B,
        vec![
            json!({"id": DEV_B, "computerDnsName": HOST_B, "osPlatform": "Windows11",
            "rbacGroupName": "Servers", "machineTags": [], "healthStatus": "Active"}),
        ],
    );
    sim.add_users(
        AZ_B,
        vec![json!({"id": USER_B, "displayName": "青葉 次郎", "userPrincipalName": UPN_B, "mail": UPN_B})],
    );
    sim.add_workspace(AZ_B, WS_B);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
    let c = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .https_only(true)
        .build()
        .unwrap();
    (sim, c, a, b)
}

async fn token_at(
    sim: &Sim,
    c: &reqwest::Client,
    path_tenant: &str,
    app: &SimTenant,
    scope: &str,
) -> reqwest::Response {
    c.post(format!(
        "{}/{path_tenant}/oauth2/v2.0/token",
        sim.authority_host()
    ))
    .form(&[
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
        ("grant_type", "client_credentials"),
        ("scope", scope),
    ])
    .send()
    .await
    .unwrap()
}

async fn token(sim: &Sim, c: &reqwest::Client, t: &SimTenant, scope: &str) -> String {
    let r = token_at(sim, c, &t.azure_tenant_id, t, scope).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    tok: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = c.request(method, url).bearer_auth(tok);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn hunt(binding: &str, value: &str) -> Value {
    let lit = value.replace('\\', "\\\\").replace('"', "\\\"");
    json!({"Query": format!("// mss-query: mde-process-events\nlet {binding} = \"{lit}\";\nDeviceProcessEvents | take 1")})
}

fn remediate(message_id: &str) -> Value {
    json!({"action": "softDelete", "analyzedEmails": [{"networkMessageId": message_id, "recipientEmailAddress": "x@example.com"}]})
}

/// Asserts exactly one new violation since `before`, about `endpoint`, from A's token for B.
fn caught(sim: &Sim, before: usize, endpoint: &str) -> IsolationViolation {
    let v = sim.isolation_violations();
    assert_eq!(
        v.len(),
        before + 1,
        "{endpoint}: expected one new isolation violation, got {:?}",
        &v[before.min(v.len())..]
    );
    let last = v.last().unwrap().clone();
    assert_eq!(last.endpoint, endpoint, "{last:?}");
    assert_eq!(
        (last.token_tenant.as_str(), last.request_tenant.as_str()),
        (AZ_A, AZ_B),
        "{last:?}"
    );
    last
}

#[tokio::test]
async fn a_token_of_tenant_a_used_for_tenant_b_is_caught_everywhere() {
    let (sim, c, a, b) = start().await;
    let graph = sim.graph_base();
    let mde = sim.mde_base();
    let g_a = token(&sim, &c, &a, GRAPH_SCOPE).await;
    let g_b = token(&sim, &c, &b, GRAPH_SCOPE).await;
    let m_a = token(&sim, &c, &a, MDE_SCOPE).await;
    let m_b = token(&sim, &c, &b, MDE_SCOPE).await;
    let l_a = token(&sim, &c, &a, LA_SCOPE).await;
    assert!(sim.isolation_violations().is_empty());
    use reqwest::Method as M;

    // A's app credential presented at B's token endpoint.
    let n = sim.isolation_violations().len();
    let r = token_at(&sim, &c, AZ_B, &a, GRAPH_SCOPE).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = caught(&sim, n, "POST {tenant}/oauth2/v2.0/token");
    assert_eq!(v.subject, "app-a");

    // The next page of B's alert listing, asked with A's token.
    let (s, p1) = send(
        &c,
        M::GET,
        &format!("{graph}/security/alerts_v2?$top=1"),
        &g_b,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let next = p1["@odata.nextLink"].as_str().unwrap().to_string();
    let n = sim.isolation_violations().len();
    let (s, e) = send(&c, M::GET, &next, &g_a, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["code"], "Authorization_RequestDenied");
    caught(&sim, n, "GET security/alerts_v2?$skiptoken");
    // ... and with B's own token it continues.
    assert_eq!(send(&c, M::GET, &next, &g_b, None).await.0, StatusCode::OK);

    // B's user, by object id and by UPN; confirmCompromised of B's user.
    for key in [USER_B, UPN_B] {
        let n = sim.isolation_violations().len();
        let (s, _) = send(&c, M::GET, &format!("{graph}/users/{key}"), &g_a, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(caught(&sim, n, "GET users/{id|upn}").subject, key);
    }
    let n = sim.isolation_violations().len();
    let (s, _) = send(
        &c,
        M::POST,
        &format!("{graph}/identityProtection/riskyUsers/confirmCompromised"),
        &g_a,
        Some(json!({"userIds": [USER_B]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    caught(
        &sim,
        n,
        "POST identityProtection/riskyUsers/confirmCompromised",
    );
    assert!(sim.confirmed_users().is_empty());

    // Defender for Endpoint: B's device read and isolated, B's action read and listed.
    let n = sim.isolation_violations().len();
    let (s, _) = send(&c, M::GET, &format!("{mde}/machines/{DEV_B}"), &m_a, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    caught(&sim, n, "GET machines/{id}");
    let body = json!({"Comment": "x", "IsolationType": "Full"});
    let n = sim.isolation_violations().len();
    let (s, _) = send(
        &c,
        M::POST,
        &format!("{mde}/machines/{DEV_B}/isolate"),
        &m_a,
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    caught(&sim, n, "POST machines/{id}/{action}");
    assert!(sim.machine_actions().is_empty());
    let (s, act) = send(
        &c,
        M::POST,
        &format!("{mde}/machines/{DEV_B}/isolate"),
        &m_b,
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = act["id"].as_str().unwrap();
    let n = sim.isolation_violations().len();
    let (s, _) = send(
        &c,
        M::GET,
        &format!("{mde}/machineactions/{id}"),
        &m_a,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    caught(&sim, n, "GET machineactions/{id}");
    let n = sim.isolation_violations().len();
    let (s, l) = send(
        &c,
        M::GET,
        &format!("{mde}/machineactions?$filter=machineId eq '{DEV_B}'"),
        &m_a,
        None,
    )
    .await;
    assert_eq!((s, &l["value"]), (StatusCode::OK, &json!([])));
    caught(&sim, n, "GET machineactions?$filter=machineId");

    // B's Log Analytics workspace.
    let n = sim.isolation_violations().len();
    let (s, e) = send(
        &c,
        M::POST,
        &format!("{}/v1/workspaces/{WS_B}/query", sim.loganalytics_base()),
        &l_a,
        Some(json!({"query": "print 1"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(e["error"]["code"], "InsufficientAccessError");
    caught(&sim, n, "POST v1/workspaces/{id}/query");

    // Hunting B's entities, under every binding the mss client uses.
    for (binding, value) in [
        ("AlertDeviceId", DEV_B),
        ("AlertDeviceName", HOST_B),
        ("AlertUserObjectId", USER_B),
        ("AlertUserUpn", UPN_B),
        ("AlertMessageId", MSG_B),
        ("AlertRecipient", UPN_B),
    ] {
        let n = sim.isolation_violations().len();
        let (s, e) = send(
            &c,
            M::POST,
            &format!("{graph}/security/runHuntingQuery"),
            &g_a,
            Some(hunt(binding, value)),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{binding}: {e}");
        assert_eq!(
            caught(&sim, n, "POST security/runHuntingQuery").subject,
            value
        );
    }
    // The misrouted alert's device is B's, though it came in A's feed.
    let n = sim.isolation_violations().len();
    let (s, _) = send(
        &c,
        M::POST,
        &format!("{graph}/security/runHuntingQuery"),
        &g_a,
        Some(hunt("AlertDeviceId", DEV_MISROUTED)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    caught(&sim, n, "POST security/runHuntingQuery");

    // Remediating B's message.
    let n = sim.isolation_violations().len();
    let (s, _) = send(
        &c,
        M::POST,
        &format!(
            "{}/security/collaboration/analyzedEmails/remediate",
            sim.graph_beta_base()
        ),
        &g_a,
        Some(remediate(MSG_B)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    caught(
        &sim,
        n,
        "POST security/collaboration/analyzedEmails/remediate",
    );
    assert!(sim.email_remediations().is_empty());
}

#[tokio::test]
async fn the_right_token_and_unowned_or_shared_ids_are_no_violation() {
    let (sim, c, a, b) = start().await;
    let graph = sim.graph_base();
    let mde = sim.mde_base();
    let g_a = token(&sim, &c, &a, GRAPH_SCOPE).await;
    let g_b = token(&sim, &c, &b, GRAPH_SCOPE).await;
    let m_b = token(&sim, &c, &b, MDE_SCOPE).await;
    let l_b = token(&sim, &c, &b, LA_SCOPE).await;
    use reqwest::Method as M;

    // B's own token on B's objects.
    let (s, _) = send(&c, M::GET, &format!("{graph}/users/{UPN_B}"), &g_b, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(&c, M::GET, &format!("{mde}/machines/{DEV_B}"), &m_b, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = send(
        &c,
        M::POST,
        &format!("{}/v1/workspaces/{WS_B}/query", sim.loganalytics_base()),
        &l_b,
        Some(json!({"query": "// mss-query: x\nprint 1"})),
    )
    .await;
    assert_ne!(s, StatusCode::FORBIDDEN, "{v}");
    for (binding, value) in [
        ("AlertDeviceId", DEV_B),
        ("AlertDeviceId", DEV_MISROUTED),
        ("AlertMessageId", MSG_B),
    ] {
        let (s, e) = send(
            &c,
            M::POST,
            &format!("{graph}/security/runHuntingQuery"),
            &g_b,
            Some(hunt(binding, value)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{binding}: {e}");
    }
    // A's token: a name both tenants' alerts carry, and names nobody owns.
    for (binding, value) in [
        ("AlertDeviceName", HOST_SHARED),
        ("AlertDeviceName", "unknown-host.example"),
        ("AlertUserUpn", ""),
    ] {
        let (s, e) = send(
            &c,
            M::POST,
            &format!("{graph}/security/runHuntingQuery"),
            &g_a,
            Some(hunt(binding, value)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{binding}={value:?}: {e}");
    }
    // An unknown user or device is just unknown.
    let (s, _) = send(
        &c,
        M::GET,
        &format!("{graph}/users/nobody@x.example"),
        &g_a,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        sim.isolation_violations().is_empty(),
        "{:?}",
        sim.isolation_violations()
    );
}
