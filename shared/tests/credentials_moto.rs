//! Tenants' Azure app credentials in SSM Parameter Store (`MSS_TENANT_CREDENTIALS=
//! parameterstore`, the template's default since issue 11's cost figure) on moto, started by
//! `scripts/test.sh`: read back decrypted, one tenant's parameter never answering for
//! another, a plain `String` parameter refused, errors naming the parameter and never a
//! value, and the OpsRamp credential still from Secrets Manager.
#![cfg(feature = "aws")]

mod moto;
use moto::endpoint;

use serde_json::json;

use shared::adapters::secrets::{SecretStore, TenantCredentials};

#[test]
fn the_setting_parses_and_refuses_what_it_does_not_know() {
    assert_eq!(
        "parameterstore".parse::<TenantCredentials>().unwrap(),
        TenantCredentials::ParameterStore
    );
    assert_eq!(
        "SecretsManager".parse::<TenantCredentials>().unwrap(),
        TenantCredentials::SecretsManager
    );
    let e = "ssm".parse::<TenantCredentials>().unwrap_err().to_string();
    assert!(
        e.contains("MSS_TENANT_CREDENTIALS") && e.contains("parameterstore"),
        "{e}"
    );
}

#[tokio::test]
async fn tenant_credentials_come_from_parameter_store_and_serve_only_their_tenant() {
    let ep = endpoint();
    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let prefix = format!(
        "mss-cred-{}-{}/",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let store = SecretStore::for_sdk(&sdk, &prefix, TenantCredentials::ParameterStore);
    let name = store.azure_name("kaede-shoji");
    assert_eq!(name, format!("/{prefix}azure/kaede-shoji"));

    let secret = "p4ram-s3cr3t-kaede";
    store
        .put(&name, &json!({"azure_tenant_id": "11111111-2222-3333-4444-555555555555", "client_id": "kaede-app", "client_secret": secret}).to_string())
        .await
        .unwrap();
    // Stored as a SecureString, as the README's command does.
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let p = ssm
        .get_parameter()
        .name(&name)
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    assert_eq!(
        p.r#type,
        Some(aws_sdk_ssm::types::ParameterType::SecureString)
    );

    let c = store.azure("kaede-shoji").await.unwrap();
    assert_eq!(c.tenant, "kaede-shoji");
    assert_eq!(c.client_id, "kaede-app");
    assert_eq!(c.azure_tenant_id, "11111111-2222-3333-4444-555555555555");

    // Another tenant has no parameter: an error naming its own parameter, not a fallback.
    let e = format!("{:#}", store.azure("hinoki-kogyo").await.unwrap_err());
    assert!(e.contains(&format!("/{prefix}azure/hinoki-kogyo")), "{e}");
    assert!(!e.contains(secret) && !e.contains("kaede-app"), "{e}");

    // A plain String parameter (stored and shown in clear by AWS) is refused, value unsaid.
    let plain = store.azure_name("sakura-bussan");
    let value =
        json!({"azure_tenant_id": "x", "client_id": "sakura-app", "client_secret": "pl4in-s3cr3t"})
            .to_string();
    ssm.put_parameter()
        .name(&plain)
        .value(&value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let e = format!("{:#}", store.azure("sakura-bussan").await.unwrap_err());
    assert!(
        e.contains("not a SecureString") && e.contains(&plain),
        "{e}"
    );
    assert!(!e.contains("pl4in-s3cr3t"), "{e}");

    // A SecureString that is not the expected JSON: named, content unsaid.
    let bad = store.azure_name("momiji-denki");
    store.put(&bad, "client_secret=b4d-s3cr3t").await.unwrap();
    let e = format!("{:#}", store.azure("momiji-denki").await.unwrap_err());
    assert!(e.contains(&bad) && !e.contains("b4d-s3cr3t"), "{e}");

    // The OpsRamp credential is still the one Secrets Manager secret.
    store
        .put(
            &store.opsramp_name(),
            &json!({"client_id": "mss-soc", "client_secret": "ops-s3cr3t"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(store.opsramp_name(), format!("{prefix}opsramp"));
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    assert!(sm
        .get_secret_value()
        .secret_id(store.opsramp_name())
        .send()
        .await
        .is_ok());
    assert_eq!(store.opsramp().await.unwrap().client_id, "mss-soc");
}

/// A cold store lists the whole level once (pages of ten) instead of one request per tenant,
/// and a tenant put after that listing is still read (alone).
#[tokio::test]
async fn a_cold_store_lists_the_level_once_and_still_finds_a_later_tenant() {
    let ep = endpoint();
    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let prefix = format!(
        "mss-list-{}-{}/",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let writer = SecretStore::for_sdk(&sdk, &prefix, TenantCredentials::ParameterStore);
    // 23 tenants: three pages of at most ten.
    for i in 0..23 {
        let t = format!("tenant-{i:02}");
        writer
            .put(
                &writer.azure_name(&t),
                &json!({"azure_tenant_id": format!("00000000-0000-4000-8000-{i:012}"), "client_id": format!("app-{i:02}"), "client_secret": format!("s3cr3t-{i:02}")}).to_string(),
            )
            .await
            .unwrap();
    }
    let counter = shared::adapters::request_count::RequestCounter::new();
    let ssm = counter.ssm(&sdk);
    let reader = SecretStore::with_clients(
        aws_sdk_secretsmanager::Client::new(&sdk),
        Some(ssm),
        &prefix,
    );
    for i in (0..23).rev() {
        let c = reader.azure(&format!("tenant-{i:02}")).await.unwrap();
        assert_eq!(c.client_id, format!("app-{i:02}"));
        assert_eq!(c.tenant, format!("tenant-{i:02}"));
    }
    let n = |c: &shared::adapters::request_count::Counts, op: &str| {
        c.get(&("ssm".to_string(), op.to_string()))
            .copied()
            .unwrap_or(0)
    };
    let after_list = counter.snapshot();
    assert_eq!(n(&after_list, "GetParametersByPath"), 3, "{after_list:?}");
    assert_eq!(n(&after_list, "GetParameter"), 0, "{after_list:?}");

    // Added after the listing: one GetParameter, no second listing.
    writer
        .put(
            &writer.azure_name("tenant-late"),
            &json!({"azure_tenant_id": "x", "client_id": "app-late", "client_secret": "s3cr3t-late"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        reader.azure("tenant-late").await.unwrap().client_id,
        "app-late"
    );
    let end = counter.snapshot();
    assert_eq!(n(&end, "GetParametersByPath"), 3, "{end:?}");
    assert_eq!(n(&end, "GetParameter"), 1, "{end:?}");
}

/// Every tenant's Graph client shares one HTTP client: fetching six tenants one after another
/// (each with its own credential and token) leaves one connection to the simulator, not six.
/// A pool per tenant took the fetch of 1,000 tenants to 268.5 MB (BENCHMARKS.md).
#[tokio::test]
async fn every_tenants_graph_client_shares_one_connection_pool() {
    use shared::adapters::secrets::SecretGraphSource;
    use shared::domain::alert::Product;
    use shared::ports::AlertSource;

    let ep = endpoint();
    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let prefix = format!(
        "mss-pool-{}-{}/",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let store = SecretStore::for_sdk(&sdk, &prefix, TenantCredentials::ParameterStore);
    let n = 6;
    let azure = |i: usize| format!("0000000{i}-2222-4333-8444-555555555555");
    let mut sim_tenants = Vec::new();
    for i in 0..n {
        let id = format!("pool-{i}");
        store
            .put(
                &store.azure_name(&id),
                &json!({"azure_tenant_id": azure(i), "client_id": format!("app-{i}"),
                    "client_secret": format!("s3cr3t-{i}")})
                .to_string(),
            )
            .await
            .unwrap();
        sim_tenants.push(mss_sim::SimTenant {
            azure_tenant_id: azure(i),
            client_id: format!("app-{i}"),
            client_secret: format!("s3cr3t-{i}"),
            alerts: Vec::new(),
        });
    }
    let now = chrono::Utc::now();
    let sim = mss_sim::Sim::start(
        mss_sim::SimConfig {
            tenants: sim_tenants,
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "s3cr3t-ops".into(),
            state_file: None,
            all_visible: false,
            start_clock: now,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let source = SecretGraphSource::new(
        shared::adapters::graph::GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: shared::adapters::http::HttpSettings {
                extra_ca_pem: Some(sim.ca_pem()),
                ..Default::default()
            },
            ..Default::default()
        },
        std::sync::Arc::new(store),
    );
    for i in 0..n {
        let tenant = shared::domain::tenant::Tenant::from_json_value(&json!({
            "id": format!("pool-{i}"), "name": "接続共有", "azure_tenant_id": azure(i),
            "products": ["mdi"], "mdi": {}
        }))
        .unwrap();
        let page = source
            .fetch_page(
                &tenant,
                Product::Mdi,
                now - chrono::Duration::hours(1),
                None,
            )
            .await
            .unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    }
    let stats = sim.stats();
    assert_eq!(
        (stats.entra_tokens, stats.graph_alert_requests),
        (n as u64, n as u64),
        "a token and a request per tenant"
    );
    assert_eq!(
        sim.open_connections(),
        1,
        "one pool under every tenant's client"
    );
    sim.shutdown().await;
}
