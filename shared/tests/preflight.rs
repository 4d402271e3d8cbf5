//! `steps::preflight` against the HTTPS simulator with the real clients: every permission
//! denied in turn (403 in each API's real shape), token refusals by AADSTS code, OpsRamp
//! failures, per-check time limits, and no secret in any result.

mod common;

use std::time::Duration;

use mss_sim::{Endpoint, Fault, Permission, Resource, Sim, TokenRefusal};
use serde_json::json;
use shared::adapters::opsramp::OpsRampConfig;
use shared::domain::tenant::Tenant;
use shared::steps::preflight::{self, CheckResult, Endpoints, PreflightDeps, Report, Status};

use common::*;

const WS: &str = "7d1e0c55-3b1a-4f7e-9a41-5c2f0e6b9d10";

/// Every product, the activity digest, and every first-response action on.
fn full_tenant() -> Tenant {
    Tenant::from_toml(&format!(
        r#"
id = "tenant-a"
name = "楓商事株式会社"
azure_tenant_id = "{AZ_A}"
products = ["mde", "mdo", "mda", "mdi", "idp", "sentinel"]

[contacts]
to = ["soc@kaede.example"]

[mde]
device_groups = ["*"]
incident_min_severity = "medium"

[[mdo.policies]]
name = "Email messages containing malicious URL removed after delivery"
category = "threat_management"
level = "incident"

[mda]
[[mda.policies]]
name = "Mass download by a single user"
category = "threat_detection"
level = "monitored"

[mdi]

[idp]
incident_min_risk = "high"

[sentinel]
incident_min_severity = "medium"

[log_analysis]
workspace_id = "{WS}"

[response]
[response.mde]
isolate = "auto"
scan = "approval"
[response.idp]
confirm_compromised = "auto"
[response.mdo]
email_remediation = "auto"
"#
    ))
    .expect("tenant config is valid")
}

async fn rig() -> Sim {
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, vec![])]).await;
    sim.add_workspace(AZ_A, WS);
    sim.add_devices(
        AZ_A,
        vec![json!({"id": "1e5f0a", "computerDnsName": "tky-pc-01", "osPlatform": "Windows11"})],
    );
    sim.add_users(
        AZ_A,
        vec![json!({"id": "9c0d5e2a-0000-4000-8000-000000000001", "userPrincipalName": "taro@kaede.example"})],
    );
    sim.add_risk_detections(
        AZ_A,
        vec![json!({"id": "rd-1", "riskEventType": "unfamiliarFeatures", "riskLevel": "medium"})],
    );
    sim
}

fn deps(sim: &Sim, secret: &str, opsramp: OpsRampConfig, opsramp_secret: &str) -> PreflightDeps {
    let mut d = PreflightDeps::new(
        Endpoints {
            authority_host: sim.authority_host(),
            graph_base: sim.graph_base(),
            mde_base: sim.mde_base(),
            loganalytics_base: sim.loganalytics_base(),
        },
        http(sim),
        Ok(cred("tenant-a", AZ_A, APP_A, secret)),
        opsramp,
        Ok(opsramp_cred(opsramp_secret)),
    );
    d.retry = fast_retry(3);
    d.check_timeout = Duration::from_secs(10);
    d
}

async fn run(sim: &Sim, tenant: &Tenant) -> Report {
    let d = deps(sim, SECRET_A, opsramp_config(sim), OR_SECRET);
    preflight::run(&d, tenant).await.expect("preflight runs")
}

fn check<'a>(r: &'a Report, id: &str) -> &'a CheckResult {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {:#?}", r.checks))
}

fn statuses(r: &Report) -> Vec<(String, Status)> {
    r.checks.iter().map(|c| (c.id.clone(), c.status)).collect()
}

/// Nothing secret in the report, its JSON or its Debug form.
fn assert_no_secret(r: &Report) {
    let text = format!("{}\n{r:?}", serde_json::to_string(r).unwrap());
    for s in [SECRET_A, OR_SECRET, "sEcReT", "simtok"] {
        assert!(!text.contains(s), "{s:?} leaked into the report: {text}");
    }
}

const PROBES: [&str; 6] = [
    "graph.alerts_v2",
    "graph.users",
    "graph.hunting",
    "graph.risk_detections",
    "mde.machines",
    "loganalytics.query",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_for_a_tenant_with_every_product() {
    let sim = rig().await;
    let r = run(&sim, &full_tenant()).await;
    let expected = [
        ("entra.credential", Status::Ok),
        ("token.graph", Status::Ok),
        ("graph.alerts_v2", Status::Ok),
        ("graph.users", Status::Ok),
        ("graph.hunting", Status::Ok),
        ("graph.risk_detections", Status::Ok),
        ("graph.confirm_compromised", Status::Unverified),
        ("graph.email_remediation", Status::Unverified),
        ("token.mde", Status::Ok),
        ("mde.machines", Status::Ok),
        ("mde.isolate", Status::Unverified),
        ("mde.scan", Status::Unverified),
        ("token.loganalytics", Status::Ok),
        ("loganalytics.query", Status::Ok),
        ("opsramp.token", Status::Ok),
        ("opsramp.client", Status::Ok),
    ];
    assert_eq!(
        statuses(&r),
        expected
            .iter()
            .map(|(i, s)| (i.to_string(), *s))
            .collect::<Vec<_>>()
    );
    assert!(r.ok, "{r:#?}");
    assert_eq!(
        check(&r, "graph.alerts_v2").detail,
        "GET /graph/v1.0/security/alerts_v2?$top=1 → HTTP 200 (0 item(s))"
    );
    assert_eq!(
        check(&r, "mde.machines").detail,
        "GET /mde/api/machines?$top=1 → HTTP 200 (1 item(s))"
    );
    assert_eq!(
        check(&r, "graph.risk_detections").permission.as_deref(),
        Some("IdentityRiskEvent.Read.All")
    );
    // Unverified says so plainly and still tells how to make sure.
    let iso = check(&r, "mde.isolate");
    assert_eq!(iso.permission.as_deref(), Some("Machine.Isolate"));
    assert!(iso.detail.contains("cannot be tested without acting"));
    assert!(iso.grant_ja.starts_with("この権限は実際の操作"));
    assert!(iso.grant_en.contains("WindowsDefenderATP"));
    // OpsRamp: the configured client is the one checked, and the report says why.
    let c = check(&r, "opsramp.client");
    assert!(c
        .detail
        .starts_with("client client_1234 (the configured opsramp.tenant_id"));
    assert!(c
        .detail
        .contains("incidents/search?pageNo=1&pageSize=1 → HTTP 200"));
    assert!(c
        .detail
        .contains("serviceRequests/search?pageNo=1&pageSize=1 → HTTP 200"));
    // The probes really reached the services.
    let q = sim.hunting_queries();
    assert_eq!(q.last().map(|c| c.query.as_str()), Some("print 1"));
    let la = sim.loganalytics_queries();
    assert_eq!(
        la.last().map(|c| (c.query.as_str(), c.status)),
        Some(("print 1", 200))
    );
    assert_no_secret(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_denied_permission_fails_its_own_check_only() {
    let sim = rig().await;
    let tenant = full_tenant();
    let cases = [
        (
            Permission::SecurityAlertReadAll,
            "graph.alerts_v2",
            "SecurityAlert.Read.All",
            "HTTP 403 Forbidden: Missing application roles. API required roles: SecurityAlert.Read.All",
            "［Microsoft Graph］→［アプリケーションの許可］で「SecurityAlert.Read.All」",
            "Microsoft Graph → Application permissions → tick SecurityAlert.Read.All",
        ),
        (
            Permission::UserReadAll,
            "graph.users",
            "User.Read.All",
            "HTTP 403 Authorization_RequestDenied: Insufficient privileges to complete the operation.",
            "「User.Read.All」",
            "tick User.Read.All",
        ),
        (
            Permission::ThreatHuntingReadAll,
            "graph.hunting",
            "ThreatHunting.Read.All",
            "HTTP 403 Forbidden: Missing application roles. API required roles: ThreatHunting.Read.All",
            "「ThreatHunting.Read.All」",
            "tick ThreatHunting.Read.All",
        ),
        (
            Permission::IdentityRiskEventReadAll,
            "graph.risk_detections",
            "IdentityRiskEvent.Read.All",
            "HTTP 403 Forbidden: You cannot perform the requested operation, required scopes are missing in the token.",
            "「IdentityRiskEvent.Read.All」",
            "tick IdentityRiskEvent.Read.All",
        ),
        (
            Permission::MachineReadAll,
            "mde.machines",
            "Machine.Read.All",
            "HTTP 403 Forbidden: Missing application roles. API required roles: Machine.Read.All,Machine.ReadWrite.All, application roles: Machine.Isolate,Machine.Scan.",
            "「WindowsDefenderATP」を検索 →［アプリケーションの許可］で「Machine.Read.All」",
            "search WindowsDefenderATP → Application permissions → tick Machine.Read.All",
        ),
        (
            Permission::LogAnalyticsDataRead,
            "loganalytics.query",
            "Data.Read + Log Analytics Reader",
            "HTTP 403 InsufficientAccessError: The provided credentials have insufficient access",
            "「Log Analytics 閲覧者」",
            "Log Analytics Reader → Members: the app registered for the provider (app-a)",
        ),
    ];
    for (perm, id, name, detail, ja, en) in cases {
        sim.deny(AZ_A, perm);
        let r = run(&sim, &tenant).await;
        sim.allow(AZ_A, perm);
        assert!(!r.ok, "{id}: report must not be ok");
        let c = check(&r, id);
        assert_eq!(c.status, Status::Failed, "{id}: {c:#?}");
        assert_eq!(c.permission.as_deref(), Some(name), "{id}");
        assert!(c.detail.contains(detail), "{id}: {}", c.detail);
        assert!(c.grant_ja.contains(ja), "{id}: {}", c.grant_ja);
        assert!(c.grant_en.contains(en), "{id}: {}", c.grant_en);
        for other in PROBES.iter().filter(|p| **p != id) {
            assert_eq!(check(&r, other).status, Status::Ok, "{id} denied, {other}");
        }
        for t in [
            "token.graph",
            "token.mde",
            "token.loganalytics",
            "opsramp.token",
            "opsramp.client",
        ] {
            assert_eq!(check(&r, t).status, Status::Ok, "{id} denied, {t}");
        }
        assert_eq!(r.count(Status::Failed), 1, "{id}: {:#?}", statuses(&r));
        assert_no_secret(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_every_token_with_the_aadsts_reason() {
    let sim = rig().await;
    let d = deps(
        &sim,
        "sEcReT-wrong-value-1234",
        opsramp_config(&sim),
        OR_SECRET,
    );
    let r = preflight::run(&d, &full_tenant()).await.unwrap();
    for t in ["token.graph", "token.mde", "token.loganalytics"] {
        let c = check(&r, t);
        assert_eq!(c.status, Status::Failed, "{t}");
        assert!(
            c.detail
                .contains("HTTP 401, AADSTS7000215: Invalid client secret provided."),
            "{t}: {}",
            c.detail
        );
        assert!(
            c.grant_ja
                .contains("クライアント シークレットが一致しません"),
            "{}",
            c.grant_ja
        );
        assert!(c
            .grant_en
            .contains("Certificates & secrets → New client secret"));
    }
    for p in PROBES {
        let c = check(&r, p);
        assert_eq!(c.status, Status::Skipped, "{p}");
        assert!(c.detail.starts_with("not run: token."), "{p}: {}", c.detail);
    }
    assert_eq!(check(&r, "opsramp.client").status, Status::Ok);
    assert!(!r.ok);
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("sEcReT-wrong-value-1234"), "{text}");
    assert_no_secret(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_explained_per_resource() {
    let sim = rig().await;
    let tenant = full_tenant();
    // Defender for Endpoint never provisioned in the tenant.
    sim.refuse_token(AZ_A, Resource::Mde, Some(TokenRefusal::ResourceNotInTenant));
    let r = run(&sim, &tenant).await;
    let c = check(&r, "token.mde");
    assert_eq!(c.status, Status::Failed);
    assert!(c.detail.contains("HTTP 400, AADSTS500011: The resource principal named https://api.securitycenter.microsoft.com was not found"), "{}", c.detail);
    assert!(c.grant_ja.contains("オンボーディング"));
    assert_eq!(check(&r, "mde.machines").status, Status::Skipped);
    assert_eq!(
        check(&r, "mde.machines").detail,
        "not run: token.mde failed"
    );
    assert_eq!(check(&r, "graph.alerts_v2").status, Status::Ok);
    assert_eq!(check(&r, "loganalytics.query").status, Status::Ok);
    sim.clear_denials();

    // An expired secret: AADSTS7000222 on the first resource asked.
    sim.refuse_token(AZ_A, Resource::Graph, Some(TokenRefusal::SecretExpired));
    let r = run(&sim, &tenant).await;
    let c = check(&r, "token.graph");
    assert!(c.detail.contains("AADSTS7000222"), "{}", c.detail);
    assert!(c.grant_ja.contains("有効期限が切れています"));
    assert_eq!(check(&r, "token.mde").status, Status::Ok);
    sim.clear_denials();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_is_reported_with_the_consent_url() {
    let sim = rig().await;
    let mut d = deps(&sim, SECRET_A, opsramp_config(&sim), OR_SECRET);
    d.app = Ok(cred("tenant-a", AZ_A, "not-our-app", SECRET_A));
    let r = preflight::run(&d, &full_tenant()).await.unwrap();
    let c = check(&r, "token.graph");
    assert!(c.detail.contains("AADSTS700016"), "{}", c.detail);
    assert_eq!(c.permission.as_deref(), Some("admin consent"));
    assert!(c.grant_en.contains(&format!(
        "https://login.microsoftonline.com/{AZ_A}/adminconsent?client_id=not-our-app"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsramp_failures_are_reported_apart_from_microsoft() {
    let sim = rig().await;
    let tenant = full_tenant();
    let d = deps(&sim, SECRET_A, opsramp_config(&sim), "or-wrong-secret");
    let r = preflight::run(&d, &tenant).await.unwrap();
    let c = check(&r, "opsramp.token");
    assert_eq!(c.status, Status::Failed);
    assert_eq!(
        c.detail,
        "POST /opsramp/tenancy/auth/oauth/token → HTTP 401 unauthorized: Bad API credentials"
    );
    assert_eq!(c.permission.as_deref(), Some("OpsRamp API credentials"));
    assert_eq!(check(&r, "opsramp.client").status, Status::Skipped);
    for p in PROBES {
        assert_eq!(check(&r, p).status, Status::Ok, "{p}");
    }
    assert!(!serde_json::to_string(&r)
        .unwrap()
        .contains("or-wrong-secret"));

    // A client id OpsRamp does not know.
    let mut other = opsramp_config(&sim);
    other.tenant_id = "client_9999".into();
    let d = deps(&sim, SECRET_A, other, OR_SECRET);
    let r = preflight::run(&d, &tenant).await.unwrap();
    let c = check(&r, "opsramp.client");
    assert_eq!(c.status, Status::Failed);
    assert!(c.detail.contains("client client_9999"), "{}", c.detail);
    assert!(
        c.detail
            .contains("HTTP 404 NOT_FOUND: Tenant client_9999 not found"),
        "{}",
        c.detail
    );
    assert!(c.grant_en.contains("opsramp.tenant_id"));
    assert_eq!(check(&r, "opsramp.token").status, Status::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_check_has_its_own_time_limit() {
    let sim = rig().await;
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::Latency {
            times: 5,
            millis: 3_000,
        },
    );
    let mut d = deps(&sim, SECRET_A, opsramp_config(&sim), OR_SECRET);
    d.check_timeout = Duration::from_millis(1_500);
    let started = std::time::Instant::now();
    let r = preflight::run(&d, &full_tenant()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let c = check(&r, "graph.alerts_v2");
    assert_eq!(c.status, Status::Failed);
    assert!(c.detail.ends_with("no answer within 1 s"), "{}", c.detail);
    assert_eq!(c.permission, None, "a time-out names no permission");
    for p in PROBES.iter().filter(|p| **p != "graph.alerts_v2") {
        assert_eq!(check(&r, p).status, Status::Ok, "{p}");
    }
    sim.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_subscribed_products_are_checked() {
    let sim = rig().await;
    let tenant = Tenant::from_toml(&format!(
        r#"
id = "tenant-a"
name = "青葉銀行"
azure_tenant_id = "{AZ_A}"
products = ["mdo"]

[[mdo.policies]]
name = "Email messages containing malicious URL removed after delivery"
category = "threat_management"
level = "incident"
"#
    ))
    .unwrap();
    let r = run(&sim, &tenant).await;
    assert!(r.ok, "{r:#?}");
    for (id, why) in [
        ("token.mde", "mde is not among the tenant's products"),
        ("mde.machines", "mde is not among the tenant's products"),
        (
            "graph.risk_detections",
            "idp is not among the tenant's products",
        ),
        ("token.loganalytics", "the tenant has no [log_analysis]"),
        ("loganalytics.query", "the tenant has no [log_analysis]"),
    ] {
        let c = check(&r, id);
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Skipped, why),
            "{id}"
        );
    }
    for id in [
        "mde.isolate",
        "mde.scan",
        "graph.confirm_compromised",
        "graph.email_remediation",
    ] {
        assert_eq!(check(&r, id).status, Status::Skipped, "{id}");
    }
    for id in ["graph.alerts_v2", "graph.users", "graph.hunting"] {
        assert_eq!(check(&r, id).status, Status::Ok, "{id}");
    }
    // A Sentinel-only tenant has no investigation hunting.
    let sentinel = Tenant::from_toml(&format!(
        "id = \"tenant-a\"\nname = \"さくら運輸\"\nazure_tenant_id = \"{AZ_A}\"\nproducts = [\"sentinel\"]\n[sentinel]\nincident_min_severity = \"high\"\n"
    ))
    .unwrap();
    let r = run(&sim, &sentinel).await;
    assert_eq!(check(&r, "graph.hunting").status, Status::Skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_foreign_credential_fails_without_calling_entra() {
    let sim = rig().await;
    let mut d = deps(&sim, SECRET_A, opsramp_config(&sim), OR_SECRET);
    d.app = Err("no [tenants.tenant-a] entry in /etc/mss/secrets.toml".into());
    let before = sim.stats().entra_tokens;
    let r = preflight::run(&d, &full_tenant()).await.unwrap();
    assert_eq!(sim.stats().entra_tokens, before);
    let c = check(&r, "entra.credential");
    assert_eq!(c.status, Status::Failed);
    assert!(c.detail.contains("/etc/mss/secrets.toml"));
    assert_eq!(check(&r, "token.graph").status, Status::Skipped);
    assert_eq!(check(&r, "opsramp.client").status, Status::Ok);

    // A credential of another Azure tenant is never used for this one.
    d.app = Ok(cred("tenant-a", AZ_B, APP_A, SECRET_A));
    let r = preflight::run(&d, &full_tenant()).await.unwrap();
    assert_eq!(sim.stats().entra_tokens, before);
    assert!(check(&r, "entra.credential")
        .detail
        .contains("refusing to use it"));
    assert!(!r.ok);
}
