//! preflight as a Lambda function, invoked by hand (or by onboarding tooling) with
//! `{"tenant": "kaede-shoji"}`: the tenant from DynamoDB, its app registration from Secrets
//! Manager (`<prefix>azure/<tenant>`), the OpsRamp integration from `<prefix>opsramp`, and the
//! same checks as `mss preflight` (`steps::preflight`). The answer is the report as JSON with
//! `"ok": false` when a check failed — a failed check is a finding for the caller to read, not
//! a function error. Errors are only for a bad payload, an unknown tenant, or an unreachable
//! table. A secret that cannot be read is reported as a failed check naming the secret.
//!
//! Environment: the functions' common variables ([`CloudEnv`]; only the table, the OpsRamp
//! base and client, the secrets prefix and the Microsoft endpoints are used), plus
//! `MSS_LOGANALYTICS_BASE` (as activity-digest) and `MSS_PREFLIGHT_CHECK_TIMEOUT_S` (per
//! check, default 20).

use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::Deserialize;
use serde_json::Value;

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::http::{self, HttpSettings};
use crate::adapters::opsramp::OpsRampConfig;
use crate::adapters::secrets::SecretStore;
use crate::lambda::CloudEnv;
use crate::ports::Store;
use crate::steps::preflight::{self, Endpoints, PreflightDeps};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreflightRequest {
    tenant: String,
}

fn env_opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub async fn preflight_handler(env: &CloudEnv, payload: Value) -> anyhow::Result<Value> {
    let req: PreflightRequest = serde_json::from_value(payload)
        .context("preflight payload: expected {\"tenant\": \"<tenant id>\"}")?;
    let sdk = crate::adapters::aws::sdk_config(env.aws_endpoint_url.as_deref()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &env.table, None);
    let tenant = store
        .get_tenant(&req.tenant)
        .await?
        .ok_or_else(|| anyhow!("tenant {} is not registered", req.tenant))?
        .at(chrono::Utc::now());
    let secrets = SecretStore::for_sdk(&sdk, &env.secrets_prefix, env.tenant_credentials);
    // Errors name the secret, never its content (SecretStore's contract).
    let app = secrets
        .azure(&tenant.id)
        .await
        .map_err(|e| format!("{e:#}"));
    let opsramp_credential = secrets.opsramp().await.map_err(|e| format!("{e:#}"));

    let extra_ca_pem = match &env.extra_ca_file {
        Some(f) => Some(
            std::fs::read_to_string(f).with_context(|| format!("reading MSS_EXTRA_CA_FILE {f}"))?,
        ),
        None => None,
    };
    let http = HttpSettings {
        extra_ca_pem,
        ..HttpSettings::default()
    };
    let mut endpoints = Endpoints::default();
    if let Some(a) = &env.authority_host {
        endpoints.authority_host = a.clone();
    }
    if let Some(g) = &env.graph_base {
        endpoints.graph_base = g.clone();
    }
    if let Some(m) = &env.mde_base {
        endpoints.mde_base = m.clone();
    }
    if let Some(l) = env_opt("MSS_LOGANALYTICS_BASE") {
        http::require_https("MSS_LOGANALYTICS_BASE", &l)?;
        endpoints.loganalytics_base = l;
    }
    let mut opsramp = OpsRampConfig::new(&env.opsramp_base_url, &env.opsramp_tenant_id);
    opsramp.http = http.clone();
    if let Some(p) = &env.opsramp_token_path {
        opsramp.token_path = p.clone();
    }
    let mut deps = PreflightDeps::new(endpoints, http, app, opsramp, opsramp_credential);
    deps.check_timeout = Duration::from_secs(
        env_opt("MSS_PREFLIGHT_CHECK_TIMEOUT_S")
            .and_then(|v| v.parse().ok())
            .filter(|s| *s > 0)
            .unwrap_or(20),
    );
    let report = preflight::run(&deps, &tenant).await?;
    tracing::info!(
        tenant = %report.tenant,
        ok = report.ok,
        failed = report.count(preflight::Status::Failed),
        unverified = report.count(preflight::Status::Unverified),
        "preflight"
    );
    Ok(serde_json::to_value(report)?)
}
