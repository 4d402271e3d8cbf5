//! Credentials, read once per cold start and cached: the OpsRamp client from AWS Secrets
//! Manager under `<prefix>opsramp`; each tenant's Azure app registration under
//! `<prefix>azure/<tenant>`, from Secrets Manager or — `MSS_TENANT_CREDENTIALS=parameterstore`
//! — as a SecureString parameter `/<prefix>azure/<tenant>` of SSM Parameter Store.
//!
//! Why two stores: a Secrets Manager secret costs USD 0.40 a month, which alone is 40 % of the
//! issue-11 budget of USD 1 per tenant per month (BENCHMARKS.md, "Cost"); a standard
//! SecureString parameter costs nothing to keep and nothing to read at standard throughput,
//! is encrypted with KMS (the account's `aws/ssm` key) and is authorised per parameter path
//! like a secret per ARN. What Parameter Store lacks is rotation by a Lambda, which these
//! client secrets (rotated by hand in Entra ID) do not use. The OpsRamp credential stays in
//! Secrets Manager: one for all tenants, and the template can create it (CloudFormation
//! cannot create a SecureString parameter).
//!
//! Values are JSON; they are never logged, and errors name the secret, never its content.

use std::collections::HashMap;

use anyhow::{anyhow, Context};
use azure_core::credentials::Secret;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::graph::AzureAppCredential;
use super::opsramp::OpsRampCredential;

#[derive(Deserialize)]
struct AzureSecret {
    azure_tenant_id: String,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct OpsRampSecret {
    client_id: String,
    client_secret: String,
}

/// Where each tenant's Azure app credential is kept (`MSS_TENANT_CREDENTIALS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TenantCredentials {
    /// A Secrets Manager secret `<prefix>azure/<tenant>`.
    #[default]
    SecretsManager,
    /// A SecureString parameter `/<prefix>azure/<tenant>` of SSM Parameter Store.
    ParameterStore,
}

impl std::str::FromStr for TenantCredentials {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "secretsmanager" => Ok(TenantCredentials::SecretsManager),
            "parameterstore" => Ok(TenantCredentials::ParameterStore),
            other => Err(anyhow!(
                "MSS_TENANT_CREDENTIALS {other:?}: expected secretsmanager or parameterstore"
            )),
        }
    }
}

pub struct SecretStore {
    client: aws_sdk_secretsmanager::Client,
    /// Set when tenants' credentials are in Parameter Store.
    ssm: Option<aws_sdk_ssm::Client>,
    prefix: String,
    cache: Mutex<HashMap<String, String>>,
    /// Parameter Store: whether the whole `/<prefix>azure/` level was read into the cache.
    listed: Mutex<bool>,
}

impl SecretStore {
    /// Every credential in Secrets Manager.
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: &str) -> SecretStore {
        SecretStore {
            client,
            ssm: None,
            prefix: prefix.to_string(),
            cache: Mutex::new(HashMap::new()),
            listed: Mutex::new(false),
        }
    }

    /// The functions' store: the OpsRamp credential in Secrets Manager, tenants' where
    /// `tenants` says.
    pub fn for_sdk(
        sdk: &aws_config::SdkConfig,
        prefix: &str,
        tenants: TenantCredentials,
    ) -> SecretStore {
        let ssm =
            (tenants == TenantCredentials::ParameterStore).then(|| aws_sdk_ssm::Client::new(sdk));
        SecretStore::with_clients(aws_sdk_secretsmanager::Client::new(sdk), ssm, prefix)
    }

    /// Given clients (tests count their requests); `ssm` set: tenants in Parameter Store.
    pub fn with_clients(
        secrets_manager: aws_sdk_secretsmanager::Client,
        ssm: Option<aws_sdk_ssm::Client>,
        prefix: &str,
    ) -> SecretStore {
        let mut s = SecretStore::new(secrets_manager, prefix);
        s.ssm = ssm;
        s
    }

    /// The tenant credential's name: a secret name, or a parameter name (Parameter Store
    /// wants a hierarchical name to begin with `/`).
    pub fn azure_name(&self, tenant: &str) -> String {
        match self.ssm {
            None => format!("{}azure/{tenant}", self.prefix),
            Some(_) => format!("/{}azure/{tenant}", self.prefix.trim_start_matches('/')),
        }
    }

    pub fn opsramp_name(&self) -> String {
        format!("{}opsramp", self.prefix)
    }

    /// Every SecureString directly under `/<prefix>azure/`, ten a request, into the cache.
    ///
    /// Why: Parameter Store's standard throughput is 40 requests a second for the account. A
    /// cold fetch function with 1,000 tenants would otherwise ask 1,000 times at once and be
    /// throttled for ~25 s of its 60 s period; listed, it is 100 requests. Every function
    /// that reads a tenant credential serves every tenant (and its role may read them all),
    /// so holding them all in its memory changes no boundary: a credential is still only ever
    /// handed out under its own tenant's name ([`Self::azure`]).
    async fn list_parameters(&self, ssm: &aws_sdk_ssm::Client) -> anyhow::Result<()> {
        let path = format!("/{}azure", self.prefix.trim_start_matches('/'));
        let mut next: Option<String> = None;
        let mut found = HashMap::new();
        loop {
            let r = ssm
                .get_parameters_by_path()
                .path(&path)
                .recursive(false)
                .with_decryption(true)
                .max_results(10)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "listing parameters under {path}: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(e)
                    )
                })?;
            for p in r.parameters.unwrap_or_default() {
                // Anything but a SecureString is left to `get_parameter`, which refuses it.
                if p.r#type == Some(aws_sdk_ssm::types::ParameterType::SecureString) {
                    if let (Some(n), Some(v)) = (p.name, p.value) {
                        found.insert(n, v);
                    }
                }
            }
            match r.next_token {
                Some(t) if !t.is_empty() => next = Some(t),
                _ => break,
            }
        }
        self.cache.lock().await.extend(found);
        Ok(())
    }

    /// A SecureString parameter's value, decrypted.
    async fn get_parameter(&self, ssm: &aws_sdk_ssm::Client, name: &str) -> anyhow::Result<String> {
        if let Some(v) = self.cache.lock().await.get(name) {
            return Ok(v.clone());
        }
        {
            // The first miss lists the level once; a tenant added later is read alone.
            let mut listed = self.listed.lock().await;
            if !*listed {
                *listed = true;
                match self.list_parameters(ssm).await {
                    Ok(()) => {
                        if let Some(v) = self.cache.lock().await.get(name) {
                            return Ok(v.clone());
                        }
                    }
                    // Not fatal: the one parameter asked for is still read below (the role
                    // may lack ssm:GetParametersByPath, as an older stack's does).
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "listing tenant credentials failed; reading them one by one")
                    }
                }
            }
        }
        if let Some(v) = self.cache.lock().await.get(name) {
            return Ok(v.clone());
        }
        let r = ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "reading parameter {name}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                )
            })?;
        let p = r
            .parameter
            .ok_or_else(|| anyhow!("parameter {name} has no value"))?;
        if p.r#type != Some(aws_sdk_ssm::types::ParameterType::SecureString) {
            // A String parameter is stored and logged in clear by AWS: refuse to use it, so
            // the mistake is fixed instead of working.
            return Err(anyhow!(
                "parameter {name} is not a SecureString: put it again with --type SecureString"
            ));
        }
        let v = p
            .value
            .ok_or_else(|| anyhow!("parameter {name} has no value"))?;
        self.cache.lock().await.insert(name.to_string(), v.clone());
        Ok(v)
    }

    async fn get(&self, name: &str) -> anyhow::Result<String> {
        if let Some(v) = self.cache.lock().await.get(name) {
            return Ok(v.clone());
        }
        let r = self
            .client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "reading secret {name}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                )
            })?;
        let v = r
            .secret_string
            .ok_or_else(|| anyhow!("secret {name} has no string value"))?;
        self.cache.lock().await.insert(name.to_string(), v.clone());
        Ok(v)
    }

    pub async fn azure(&self, tenant: &str) -> anyhow::Result<AzureAppCredential> {
        let name = self.azure_name(tenant);
        let value = match &self.ssm {
            None => self.get(&name).await?,
            Some(ssm) => self.get_parameter(ssm, &name).await?,
        };
        let s: AzureSecret = serde_json::from_str(&value).map_err(|_| {
            anyhow!("secret {name} is not JSON with azure_tenant_id, client_id, client_secret")
        })?;
        Ok(AzureAppCredential {
            tenant: tenant.to_string(),
            azure_tenant_id: s.azure_tenant_id,
            client_id: s.client_id,
            client_secret: Secret::new(s.client_secret),
        })
    }

    pub async fn opsramp(&self) -> anyhow::Result<OpsRampCredential> {
        let name = self.opsramp_name();
        let s: OpsRampSecret = serde_json::from_str(&self.get(&name).await?)
            .map_err(|_| anyhow!("secret {name} is not JSON with client_id, client_secret"))?;
        Ok(OpsRampCredential {
            client_id: s.client_id,
            client_secret: Secret::new(s.client_secret),
        })
    }

    /// Writes a secret (operator tooling, the local demo); creates it when missing. A name
    /// beginning with `/` is a tenant credential in Parameter Store (see [`Self::azure_name`]).
    pub async fn put(&self, name: &str, value: &str) -> anyhow::Result<()> {
        if let (Some(ssm), true) = (&self.ssm, name.starts_with('/')) {
            ssm.put_parameter()
                .name(name)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "writing parameter {name}: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(e)
                    )
                })?;
            self.cache.lock().await.remove(name);
            return Ok(());
        }
        let r = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await;
        if r.is_err() {
            self.client
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "writing secret {name}: {}",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                    )
                })
                .context("create")?;
        }
        self.cache.lock().await.remove(name);
        Ok(())
    }
}

/// Graph access for the cloud shape: a client per tenant, built on first use from that
/// tenant's secret, so a tenant added to the table is fetched without a redeploy and one
/// tenant's credential can never be used for another.
pub struct SecretGraphSource {
    cfg: super::graph::GraphConfig,
    secrets: std::sync::Arc<SecretStore>,
    /// One HTTP client (connection pool, TLS roots) under every tenant's `GraphClient`: see
    /// [`super::graph::GraphClient::with_client`]. Built on first use, not at init: every
    /// function builds this source, and a start should not pay for a client it may not use.
    http: tokio::sync::OnceCell<reqwest::Client>,
    clients: Mutex<HashMap<String, std::sync::Arc<super::graph::GraphClient>>>,
}

impl SecretGraphSource {
    pub fn new(
        cfg: super::graph::GraphConfig,
        secrets: std::sync::Arc<SecretStore>,
    ) -> SecretGraphSource {
        SecretGraphSource {
            http: tokio::sync::OnceCell::new(),
            cfg,
            secrets,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn client_for(
        &self,
        tenant: &str,
    ) -> anyhow::Result<std::sync::Arc<super::graph::GraphClient>> {
        let mut map = self.clients.lock().await;
        if let Some(c) = map.get(tenant) {
            return Ok(c.clone());
        }
        let cred = self.secrets.azure(tenant).await?;
        let http = self
            .http
            .get_or_try_init(|| async { super::http::build_client(&self.cfg.http) })
            .await?
            .clone();
        let c = std::sync::Arc::new(super::graph::GraphClient::with_client(
            self.cfg.clone(),
            vec![cred],
            http,
        )?);
        map.insert(tenant.to_string(), c.clone());
        Ok(c)
    }
}

#[async_trait::async_trait]
impl crate::ports::AlertSource for SecretGraphSource {
    async fn fetch(
        &self,
        tenant: &crate::domain::tenant::Tenant,
        product: crate::domain::alert::Product,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Vec<crate::ports::FetchedItem>> {
        self.client_for(&tenant.id)
            .await?
            .fetch(tenant, product, since)
            .await
    }

    async fn fetch_page(
        &self,
        tenant: &crate::domain::tenant::Tenant,
        product: crate::domain::alert::Product,
        since: chrono::DateTime<chrono::Utc>,
        next: Option<&str>,
    ) -> anyhow::Result<crate::ports::FetchedPage> {
        self.client_for(&tenant.id)
            .await?
            .fetch_page(tenant, product, since, next)
            .await
    }
}

/// First-response clients for the cloud shape, one set per tenant, built on first use from
/// that tenant's secret (as `SecretGraphSource` does for alerts).
pub struct SecretResponders {
    mde: super::mde::MdeConfig,
    identity: super::identity::IdentityConfig,
    graph_beta_base: String,
    secrets: std::sync::Arc<SecretStore>,
    /// One HTTP client under every tenant's four clients (see `GraphClient::with_client`),
    /// built on first use.
    http: tokio::sync::OnceCell<reqwest::Client>,
    clients: Mutex<HashMap<String, std::sync::Arc<TenantResponders>>>,
}

struct TenantResponders {
    mde: super::mde::MdeClient,
    identity: super::identity::IdentityClient,
    mdo: super::mdo::MdoClient,
    hunting: super::hunting::HuntingClient,
}

impl SecretResponders {
    pub fn new(
        mde: super::mde::MdeConfig,
        identity: super::identity::IdentityConfig,
        graph_beta_base: &str,
        secrets: std::sync::Arc<SecretStore>,
    ) -> SecretResponders {
        SecretResponders {
            http: tokio::sync::OnceCell::new(),
            mde,
            identity,
            graph_beta_base: graph_beta_base.to_string(),
            secrets,
            clients: Mutex::new(HashMap::new()),
        }
    }

    async fn for_tenant(&self, tenant: &str) -> anyhow::Result<std::sync::Arc<TenantResponders>> {
        let mut map = self.clients.lock().await;
        if let Some(c) = map.get(tenant) {
            return Ok(c.clone());
        }
        let cred = self.secrets.azure(tenant).await?;
        let http = self
            .http
            .get_or_try_init(|| async { super::http::build_client(&self.identity.http) })
            .await?;
        let c = std::sync::Arc::new(TenantResponders {
            mde: super::mde::MdeClient::with_client(
                self.mde.clone(),
                vec![cred.clone()],
                http.clone(),
            )?,
            identity: super::identity::IdentityClient::with_client(
                self.identity.clone(),
                vec![cred.clone()],
                http.clone(),
            )?,
            mdo: super::mdo::MdoClient::with_client(
                &self.graph_beta_base,
                &self.identity.authority_host,
                vec![cred.clone()],
                http.clone(),
            )?,
            hunting: super::hunting::HuntingClient::with_client(
                super::hunting::HuntingConfig {
                    graph_base: self.identity.graph_base.clone(),
                    authority_host: self.identity.authority_host.clone(),
                    http: self.identity.http.clone(),
                    ..Default::default()
                },
                vec![cred],
                http.clone(),
            )?,
        });
        map.insert(tenant.to_string(), c.clone());
        Ok(c)
    }
}

#[async_trait::async_trait]
impl super::mde::DeviceActions for SecretResponders {
    async fn device(
        &self,
        tenant: &str,
        id: &str,
    ) -> anyhow::Result<Option<crate::domain::response::DeviceRecord>> {
        self.for_tenant(tenant).await?.mde.device(tenant, id).await
    }
    async fn isolate(
        &self,
        tenant: &str,
        id: &str,
        kind: &str,
        comment: &str,
    ) -> anyhow::Result<super::mde::Requested> {
        self.for_tenant(tenant)
            .await?
            .mde
            .isolate(tenant, id, kind, comment)
            .await
    }
    async fn unisolate(
        &self,
        tenant: &str,
        id: &str,
        comment: &str,
    ) -> anyhow::Result<super::mde::Requested> {
        self.for_tenant(tenant)
            .await?
            .mde
            .unisolate(tenant, id, comment)
            .await
    }
    async fn full_scan(
        &self,
        tenant: &str,
        id: &str,
        comment: &str,
    ) -> anyhow::Result<super::mde::Requested> {
        self.for_tenant(tenant)
            .await?
            .mde
            .full_scan(tenant, id, comment)
            .await
    }
    async fn action(&self, tenant: &str, id: &str) -> anyhow::Result<super::mde::MachineAction> {
        self.for_tenant(tenant).await?.mde.action(tenant, id).await
    }
}

#[async_trait::async_trait]
impl super::identity::RiskyUsers for SecretResponders {
    async fn confirm_compromised(&self, tenant: &str, user: &str) -> anyhow::Result<()> {
        self.for_tenant(tenant)
            .await?
            .identity
            .confirm_compromised(tenant, user)
            .await
    }
    async fn user(
        &self,
        tenant: &str,
        id: &str,
    ) -> anyhow::Result<Option<super::identity::UserInfo>> {
        self.for_tenant(tenant)
            .await?
            .identity
            .user(tenant, id)
            .await
    }
}

#[async_trait::async_trait]
impl super::mdo::EmailRemediation for SecretResponders {
    async fn soft_delete(
        &self,
        tenant: &str,
        title: &str,
        messages: &[(String, String)],
    ) -> anyhow::Result<Option<String>> {
        self.for_tenant(tenant)
            .await?
            .mdo
            .soft_delete(tenant, title, messages)
            .await
    }
}

#[async_trait::async_trait]
impl super::hunting::Hunting for SecretResponders {
    async fn run(
        &self,
        tenant: &str,
        query: &str,
        timespan: &str,
    ) -> Result<super::hunting::HuntingResult, super::hunting::HuntingError> {
        let c = self
            .for_tenant(tenant)
            .await
            .map_err(|e| super::hunting::HuntingError::Failed(format!("{e:#}")))?;
        c.hunting.run(tenant, query, timespan).await
    }
}
