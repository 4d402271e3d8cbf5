//! The preflight Lambda handler against moto (DynamoDB for the tenant, Secrets Manager for
//! the credentials, `MSS_TEST_AWS_ENDPOINT`, started by `scripts/test.sh`) and the HTTPS
//! simulator: the report comes back as JSON with `"ok"`, a failed check is not a function
//! error, a missing secret is a failed check naming the secret, an unknown tenant is one.
#![cfg(feature = "aws")]

mod moto;
use moto::endpoint;

use serde_json::json;

use mss_sim::{Permission, Sim, SimConfig, SimTenant};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::secrets::SecretStore;
use shared::domain::tenant::Tenant;
use shared::lambda::CloudEnv;
use shared::ports::Store;

const AZ: &str = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa";
const AZ_B: &str = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb";
const SECRET: &str = "s3cr3t-kaede-preflight";
const OR_SECRET: &str = "s3cr3t-ops-preflight";

fn tenant(id: &str, azure: &str) -> Tenant {
    Tenant::from_toml(&format!(
        r#"
id = "{id}"
name = "テスト顧客 {id}"
azure_tenant_id = "{azure}"
products = ["mde", "idp"]

[mde]
device_groups = ["*"]
incident_min_severity = "medium"

[idp]
incident_min_risk = "high"
"#
    ))
    .unwrap()
}

fn set(k: &str, v: &str) {
    // SAFETY: this test binary has this one test; the variables are set before any client
    // reads the environment.
    unsafe { std::env::set_var(k, v) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_reads_tenant_and_secrets_from_aws_and_answers_the_report() {
    let ep = endpoint();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "ap-northeast-1"),
    ] {
        if std::env::var(k).is_err() {
            set(k, v);
        }
    }
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "kaede-app".into(),
                client_secret: SECRET.into(),
                alerts: vec![],
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: OR_SECRET.into(),
            state_file: None,
            all_visible: true,
            start_clock: chrono::Utc::now(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();

    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let name = format!("mss-preflight-{}", std::process::id());
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &name, None);
    store.create_table().await.expect("create table");
    store.put_tenant(&tenant("kaede-shoji", AZ)).await.unwrap();
    // A tenant whose secret was never stored.
    store.put_tenant(&tenant("aoba-bank", AZ_B)).await.unwrap();
    let prefix = format!("{name}/");
    let secrets = SecretStore::new(aws_sdk_secretsmanager::Client::new(&sdk), &prefix);
    secrets
        .put(
            &secrets.azure_name("kaede-shoji"),
            &json!({"azure_tenant_id": AZ, "client_id": "kaede-app", "client_secret": SECRET})
                .to_string(),
        )
        .await
        .unwrap();
    secrets
        .put(
            &secrets.opsramp_name(),
            &json!({"client_id": "mss-soc", "client_secret": OR_SECRET}).to_string(),
        )
        .await
        .unwrap();

    // The function's environment, as template.yaml sets it (queues unused by preflight).
    for (k, v) in [
        ("MSS_TABLE", name.as_str()),
        ("MSS_CLASSIFY_QUEUE_URL", "unused"),
        ("MSS_TICKET_QUEUE_URL", "unused"),
        ("MSS_OPSRAMP_BASE_URL", &sim.opsramp_base()),
        ("MSS_OPSRAMP_TENANT_ID", "client_1234"),
        ("MSS_SECRETS_PREFIX", &prefix),
        ("MSS_GRAPH_BASE", &sim.graph_base()),
        ("MSS_AUTHORITY_HOST", &sim.authority_host()),
        ("MSS_MDE_BASE", &sim.mde_base()),
        ("MSS_LOGANALYTICS_BASE", &sim.loganalytics_base()),
        ("MSS_EXTRA_CA_FILE", &ca.display().to_string()),
        ("AWS_ENDPOINT_URL", &ep),
    ] {
        set(k, v);
    }
    let env = CloudEnv::from_env().unwrap();
    let handler = |p| shared::lambda_preflight::preflight_handler(&env, p);

    let v = handler(json!({"tenant": "kaede-shoji"})).await.unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["tenant"], "kaede-shoji");
    let status = |v: &serde_json::Value, id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {v:#}"))
            .clone()
    };
    for id in [
        "token.graph",
        "graph.alerts_v2",
        "graph.risk_detections",
        "mde.machines",
        "opsramp.token",
        "opsramp.client",
    ] {
        assert_eq!(status(&v, id)["status"], "ok", "{id}: {v:#}");
    }

    // A denied permission is a finding, not a function error.
    sim.deny(AZ, Permission::MachineReadAll);
    let v = handler(json!({"tenant": "kaede-shoji"})).await.unwrap();
    sim.allow(AZ, Permission::MachineReadAll);
    assert_eq!(v["ok"], false);
    let c = status(&v, "mde.machines");
    assert_eq!(c["status"], "failed");
    assert_eq!(c["permission"], "Machine.Read.All");
    assert!(c["grant_en"]
        .as_str()
        .unwrap()
        .contains("WindowsDefenderATP"));
    let text = v.to_string();
    assert!(!text.contains(SECRET) && !text.contains(OR_SECRET) && !text.contains("simtok"));

    // No secret for the tenant: a failed check naming the secret, OpsRamp still checked.
    let v = handler(json!({"tenant": "aoba-bank"})).await.unwrap();
    assert_eq!(v["ok"], false);
    let c = status(&v, "entra.credential");
    assert_eq!(c["status"], "failed");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{prefix}azure/aoba-bank")),
        "{c:#}"
    );
    assert_eq!(status(&v, "token.graph")["status"], "skipped");
    assert_eq!(status(&v, "opsramp.client")["status"], "ok");

    // Input errors are function errors.
    let e = handler(json!({"tenant": "nobody"})).await.unwrap_err();
    assert!(
        format!("{e:#}").contains("tenant nobody is not registered"),
        "{e:#}"
    );
    let e = handler(json!({"tenant_id": "kaede-shoji"}))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("expected {\"tenant\""), "{e:#}");
}
