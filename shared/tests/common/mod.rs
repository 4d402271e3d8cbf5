//! Helpers shared by the client integration tests: a simulator with two customer tenants,
//! clients that trust only the simulator's CA, and fast retry policies.
#![allow(dead_code)]

use std::time::Duration;

use azure_core::credentials::Secret;
use chrono::{DateTime, TimeZone, Utc};
use mss_sim::{Sim, SimConfig, SimTenant};
use serde_json::{json, Value};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::domain::tenant::Tenant;

pub const AZ_A: &str = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa";
pub const AZ_B: &str = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb";
pub const APP_A: &str = "app-a";
pub const APP_B: &str = "app-b";
pub const SECRET_A: &str = "sEcReT-aaaa-0123456789";
pub const SECRET_B: &str = "sEcReT-bbbb-9876543210";

pub const OR_TENANT: &str = "client_1234";
pub const OR_CLIENT: &str = "mss-soc";
pub const OR_SECRET: &str = "or-secret-value-42";

pub const MDE: &str = "microsoftDefenderForEndpoint";
pub const MDO: &str = "microsoftDefenderForOffice365";

/// 2026-11-02 at `h:m` UTC.
pub fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, h, m, 0).unwrap()
}

/// Graph's own timestamp shape (7 fractional digits; our times are whole seconds).
pub fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string()
}

pub fn alert(id: &str, updated: DateTime<Utc>, source: &str, azure_tenant: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id,
        "incidentId": "1001",
        "status": "new",
        "severity": "medium",
        "serviceSource": source,
        "tenantId": azure_tenant,
        "title": format!("alert {id}"),
        "createdDateTime": ts(t(0, 0)),
        "lastUpdateDateTime": ts(updated),
        "evidence": [],
    })
}

pub fn sim_tenant(azure: &str, client_id: &str, secret: &str, alerts: Vec<Value>) -> SimTenant {
    SimTenant {
        azure_tenant_id: azure.into(),
        client_id: client_id.into(),
        client_secret: secret.into(),
        alerts,
    }
}

pub async fn start_sim(tenants: Vec<SimTenant>) -> Sim {
    let cfg = SimConfig {
        tenants,
        opsramp_tenant_id: OR_TENANT.into(),
        opsramp_client_id: OR_CLIENT.into(),
        opsramp_client_secret: OR_SECRET.into(),
        state_file: None,
        all_visible: true,
        start_clock: t(23, 0),
    };
    Sim::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

pub fn http(sim: &Sim) -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        extra_ca_pem: Some(sim.ca_pem()),
    }
}

/// Back-off never above 40 ms, so only a server-requested wait can make a test slow.
pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        max_server_wait: Duration::from_secs(10),
    }
}

pub fn graph_config(sim: &Sim, page_size: u32) -> GraphConfig {
    GraphConfig {
        graph_base: sim.graph_base(),
        authority_host: sim.authority_host(),
        page_size,
        http: http(sim),
        retry: fast_retry(4),
    }
}

pub fn cred(tenant: &str, azure: &str, client_id: &str, secret: &str) -> AzureAppCredential {
    AzureAppCredential {
        tenant: tenant.into(),
        azure_tenant_id: azure.into(),
        client_id: client_id.into(),
        client_secret: Secret::new(secret.to_string()),
    }
}

pub fn cred_a() -> AzureAppCredential {
    cred("tenant-a", AZ_A, APP_A, SECRET_A)
}

pub fn cred_b() -> AzureAppCredential {
    cred("tenant-b", AZ_B, APP_B, SECRET_B)
}

pub fn graph_client(sim: &Sim, page_size: u32, creds: Vec<AzureAppCredential>) -> GraphClient {
    GraphClient::new(graph_config(sim, page_size), creds).expect("graph client")
}

pub fn opsramp_config(sim: &Sim) -> OpsRampConfig {
    let mut c = OpsRampConfig::new(&sim.opsramp_base(), OR_TENANT);
    c.http = http(sim);
    c.retry = fast_retry(3);
    c
}

pub fn opsramp_cred(secret: &str) -> OpsRampCredential {
    OpsRampCredential {
        client_id: OR_CLIENT.into(),
        client_secret: Secret::new(secret.to_string()),
    }
}

pub fn opsramp_client(sim: &Sim) -> OpsRampClient {
    OpsRampClient::new(opsramp_config(sim), opsramp_cred(OR_SECRET)).expect("opsramp client")
}

/// An MDE customer watching every device group, incidents from medium up.
pub fn tenant(id: &str, azure: &str) -> Tenant {
    Tenant::from_toml(&format!(
        r#"
id = "{id}"
name = "テスト顧客 {id}"
azure_tenant_id = "{azure}"
products = ["mde"]

[contacts]
to = ["soc@{id}.example"]
cc = ["cio@{id}.example", "it@{id}.example"]

[mde]
device_groups = ["*"]
incident_min_severity = "medium"
"#
    ))
    .expect("tenant config is valid")
}
