//! Tenants' Azure app credentials in SSM Parameter Store (`MSS_TENANT_CREDENTIALS=
//! parameterstore`, the template's default since issue 11's cost figure) on moto, started by
//! `scripts/test.sh`: read back decrypted, one tenant's parameter never answering for
//! another, a plain `String` parameter refused, errors naming the parameter and never a
//! value, and the OpsRamp credential still from Secrets Manager.
#![cfg(feature = "aws")]

use std::sync::Once;

use serde_json::json;

use shared::adapters::secrets::{SecretStore, TenantCredentials};

fn endpoint() -> String {
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "ap-northeast-1"),
        ] {
            if std::env::var(k).is_err() {
                // SAFETY: set once, before any client reads the environment.
                unsafe { std::env::set_var(k, v) };
            }
        }
    });
    std::env::var("MSS_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("MSS_TEST_AWS_ENDPOINT is not set: run ./scripts/test.sh (it installs and starts moto's server), or start `moto_server -H 127.0.0.1 -p PORT` and set MSS_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT")
    })
}

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
