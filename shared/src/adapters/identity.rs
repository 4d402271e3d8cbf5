//! Entra ID Identity Protection and users on Graph: confirm a user compromised (user risk →
//! high; the customer's user-risk policy then demands a password change), and look a user
//! up. Identity Protection allows 1 request per second per tenant and its 429s carry no
//! Retry-After, so calls are spaced by a per-tenant limiter and back off at least a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::graph::{entra_credentials, AzureAppCredential, EntraCredentials, GRAPH_SCOPE};
use super::http::{self, HttpSettings, RetryPolicy};

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub graph_base: String,
    pub authority_host: String,
    pub http: HttpSettings,
    pub retry: RetryPolicy,
    /// Minimum spacing of Identity Protection calls per tenant (published: 1 per second).
    pub min_interval: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            graph_base: "https://graph.microsoft.com/v1.0".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            http: HttpSettings::default(),
            retry: RetryPolicy::default(),
            min_interval: Duration::from_millis(1100),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub id: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub upn: Option<String>,
}

#[async_trait]
pub trait RiskyUsers: Send + Sync {
    async fn confirm_compromised(&self, tenant: &str, user_id: &str) -> anyhow::Result<()>;
    async fn user(&self, tenant: &str, id_or_upn: &str) -> anyhow::Result<Option<UserInfo>>;
}

pub struct IdentityClient {
    client: reqwest::Client,
    cfg: IdentityConfig,
    base: url::Url,
    creds: EntraCredentials,
    last_call: Mutex<HashMap<String, Instant>>,
}

/// Object ids are GUIDs; UPNs are mail-like. Nothing else goes into a URL path.
fn safe_user_ref(v: &str) -> anyhow::Result<()> {
    if v.is_empty()
        || v.len() > 256
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._@".contains(c))
    {
        bail!("user reference {v:?} is neither an object id nor a UPN");
    }
    Ok(())
}

impl IdentityClient {
    pub fn new(
        cfg: IdentityConfig,
        creds: Vec<AzureAppCredential>,
    ) -> anyhow::Result<IdentityClient> {
        let client = http::build_client(&cfg.http)?;
        IdentityClient::with_client(cfg, creds, client)
    }

    /// On an HTTP client shared with other clients: the cloud shape builds this client per
    /// tenant, and an HTTP client each (pool, TLS connections, root store) grows a warm
    /// container by every tenant it serves (see `GraphClient::with_client`).
    pub fn with_client(
        cfg: IdentityConfig,
        creds: Vec<AzureAppCredential>,
        client: reqwest::Client,
    ) -> anyhow::Result<IdentityClient> {
        let base = http::require_https("graph_base", &cfg.graph_base)?;
        let creds = entra_credentials(&cfg.authority_host, &client, creds)?;
        Ok(IdentityClient {
            client,
            cfg,
            base,
            creds,
            last_call: Mutex::new(HashMap::new()),
        })
    }

    async fn token(&self, tenant: &str) -> anyhow::Result<azure_core::credentials::Secret> {
        let (_, cred) = self
            .creds
            .get(tenant)
            .ok_or_else(|| anyhow!("tenant {tenant}: no Azure app credential is configured"))?;
        Ok(cred
            .get_token(&[GRAPH_SCOPE], None)
            .await
            .map_err(|e| anyhow!("tenant {tenant}: token request failed: {e}"))?
            .token)
    }

    /// Waits until this tenant's last Identity Protection call is `min_interval` ago.
    async fn pace(&self, tenant: &str) {
        let mut map = self.last_call.lock().await;
        if let Some(last) = map.get(tenant) {
            let since = last.elapsed();
            if since < self.cfg.min_interval {
                tokio::time::sleep(self.cfg.min_interval - since).await;
            }
        }
        map.insert(tenant.to_string(), Instant::now());
    }

    fn url(&self, segments: &[&str]) -> anyhow::Result<url::Url> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .map_err(|_| anyhow!("graph base cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(u)
    }
}

#[async_trait]
impl RiskyUsers for IdentityClient {
    async fn confirm_compromised(&self, tenant: &str, user_id: &str) -> anyhow::Result<()> {
        safe_user_ref(user_id)?;
        let url = self.url(&["identityProtection", "riskyUsers", "confirmCompromised"])?;
        let policy = &self.cfg.retry;
        for attempt in 1..=policy.max_attempts {
            self.pace(tenant).await;
            let token = self.token(tenant).await?;
            let r = self
                .client
                .post(url.clone())
                .bearer_auth(token.secret())
                .json(&json!({"userIds": [user_id]}))
                .send()
                .await
                .map_err(|e| anyhow!("confirmCompromised: {e}"))?;
            let status = r.status();
            if status.is_success() {
                return Ok(());
            }
            let text = r.text().await.unwrap_or_default();
            // Confirming twice is harmless (the user stays high risk), so a 429 or 5xx is
            // simply tried again, at least a second apart.
            if (status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error())
                && attempt < policy.max_attempts
            {
                tokio::time::sleep(policy.backoff(attempt).max(Duration::from_secs(1))).await;
                continue;
            }
            bail!(
                "confirmCompromised for {user_id}: HTTP {}: {}",
                status.as_u16(),
                http::body_excerpt(&text)
            );
        }
        bail!(
            "confirmCompromised for {user_id}: gave up after {} attempts",
            policy.max_attempts
        )
    }

    async fn user(&self, tenant: &str, id_or_upn: &str) -> anyhow::Result<Option<UserInfo>> {
        safe_user_ref(id_or_upn)?;
        let mut url = self.url(&["users", id_or_upn])?;
        url.query_pairs_mut()
            .append_pair("$select", "id,displayName,mail,userPrincipalName");
        let token = self.token(tenant).await?;
        let r = self
            .client
            .get(url)
            .bearer_auth(token.secret())
            .send()
            .await
            .map_err(|e| anyhow!("users/{id_or_upn}: {e}"))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            bail!("users/{id_or_upn}: HTTP {}", r.status().as_u16());
        }
        let v: Value = r.json().await?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Some(UserInfo {
            id: s("id").unwrap_or_else(|| id_or_upn.to_string()),
            display_name: s("displayName"),
            mail: s("mail"),
            upn: s("userPrincipalName"),
        }))
    }
}
