//! Microsoft Graph `security/alerts_v2`, per tenant, with that tenant's own app registration.
//! Tokens come from `azure_identity` (cached per scope, refreshed before expiry); the HTTP
//! client is ours, so the same timeouts, retries and trusted CAs apply to Entra and Graph.

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

use super::http::{self, HttpSettings, RetryPolicy};
use crate::domain::alert::{Alert, Product};
use crate::domain::tenant::Tenant;
use crate::ports::{AlertSource, FetchedItem};

pub use azure_core::credentials::Secret;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The Log Analytics query API (`api.loganalytics.azure.com`, also `.io`) takes tokens for
/// this resource, whichever host is called.
pub const LOGANALYTICS_SCOPE: &str = "https://api.loganalytics.io/.default";

#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub graph_base: String,
    pub authority_host: String,
    /// `$top`; Graph documents neither the default nor the maximum page size.
    pub page_size: u32,
    pub http: HttpSettings,
    pub retry: RetryPolicy,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            graph_base: "https://graph.microsoft.com/v1.0".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            page_size: 100,
            http: HttpSettings::default(),
            retry: RetryPolicy::default(),
        }
    }
}

/// One tenant's app registration. The secret is wrapped so Debug and logs never show it.
#[derive(Clone)]
pub struct AzureAppCredential {
    pub tenant: String,
    pub azure_tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

impl std::fmt::Debug for AzureAppCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureAppCredential")
            .field("tenant", &self.tenant)
            .field("azure_tenant_id", &self.azure_tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

struct TenantAuth {
    azure_tenant_id: String,
    credential: Arc<ClientSecretCredential>,
}

pub struct GraphClient {
    client: reqwest::Client,
    cfg: GraphConfig,
    base: url::Url,
    auth: HashMap<String, TenantAuth>,
}

impl GraphClient {
    pub fn new(cfg: GraphConfig, creds: Vec<AzureAppCredential>) -> anyhow::Result<GraphClient> {
        let base = http::require_https("graph_base", &cfg.graph_base)?;
        http::require_https("authority_host", &cfg.authority_host)?;
        let client = http::build_client(&cfg.http)?;
        let auth = entra_credentials(&cfg.authority_host, &client, creds)?
            .into_iter()
            .map(|(t, (azure_tenant_id, credential))| {
                (
                    t,
                    TenantAuth {
                        azure_tenant_id,
                        credential,
                    },
                )
            })
            .collect();
        Ok(GraphClient {
            client,
            cfg,
            base,
            auth,
        })
    }

    /// A tenant's credential serves only that tenant: the lookup is by our tenant id and
    /// the credential's Azure tenant must be the one the tenant config names.
    async fn token(&self, tenant: &Tenant) -> anyhow::Result<Secret> {
        let a = self.auth.get(&tenant.id).ok_or_else(|| {
            anyhow!(
                "tenant {}: no Azure app credential is configured",
                tenant.id
            )
        })?;
        if a.azure_tenant_id != tenant.azure_tenant_id {
            bail!(
                "tenant {}: the configured credential belongs to another Azure tenant; refusing to use it",
                tenant.id
            );
        }
        let tok = a
            .credential
            .get_token(&[GRAPH_SCOPE], None)
            .await
            .map_err(|e| {
                anyhow!(
                    "tenant {}: token request failed: {}",
                    tenant.id,
                    redact_error(&e.to_string())
                )
            })?;
        Ok(tok.token)
    }

    fn same_origin(&self, next: &str) -> anyhow::Result<url::Url> {
        let u = url::Url::parse(next).context("@odata.nextLink is not a URL")?;
        if u.origin() != self.base.origin() {
            bail!("@odata.nextLink points to another host; not following it with our token");
        }
        Ok(u)
    }

    async fn get_page(&self, tenant: &Tenant, url: &url::Url) -> anyhow::Result<Value> {
        let policy = &self.cfg.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self.token(tenant).await?;
            let res = self
                .client
                .get(url.clone())
                .bearer_auth(token.secret())
                .header("Prefer", "include-unknown-enum-members")
                .header("Accept", "application/json")
                .send()
                .await;
            let wait = match res {
                Ok(r) if r.status().is_success() => {
                    let body = r.bytes().await.context("reading a Graph page")?;
                    return serde_json::from_slice(&body)
                        .map_err(|e| anyhow!("Graph answered with a page that is not JSON: {e}"));
                }
                Ok(r) => {
                    let status = r.status();
                    let server_wait = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(http::parse_retry_after);
                    let body = r.text().await.unwrap_or_default();
                    if !http::is_retryable_status(status) || attempt >= policy.max_attempts {
                        bail!(
                            "Graph alerts_v2 for tenant {}: HTTP {} after {attempt} attempt(s): {}",
                            tenant.id,
                            status.as_u16(),
                            http::body_excerpt(&body)
                        );
                    }
                    match server_wait {
                        Some(w) if w > policy.max_server_wait => bail!(
                            "Graph alerts_v2 for tenant {}: throttled for {:.0} s; the next cycle will retry",
                            tenant.id,
                            w.as_secs_f64()
                        ),
                        Some(w) => w,
                        None => policy.backoff(attempt),
                    }
                }
                Err(e) => {
                    if !http::is_retryable_error(&e) || attempt >= policy.max_attempts {
                        return Err(anyhow!(
                            "Graph alerts_v2 for tenant {}: {} after {attempt} attempt(s)",
                            tenant.id,
                            redact_error(&e.to_string())
                        ));
                    }
                    policy.backoff(attempt)
                }
            };
            tracing::debug!(tenant = %tenant.id, attempt, wait_ms = wait.as_millis() as u64, "retrying Graph");
            tokio::time::sleep(wait).await;
        }
    }
}

/// Error texts from HTTP layers can include URLs with query strings; none of ours carry
/// secrets, but a token endpoint's error could echo form fields, so anything after
/// `client_secret=` or `access_token` is cut.
fn redact_error(s: &str) -> String {
    let mut out = s.to_string();
    for marker in ["client_secret=", "access_token", "Bearer "] {
        if let Some(i) = out.find(marker) {
            out.truncate(i + marker.len());
            out.push_str("<redacted>");
        }
    }
    out
}

/// One Entra client-secret credential per tenant (our tenant id → (Azure tenant id, credential)),
/// all using our HTTP client, so timeouts and trusted CAs match every other call.
pub type EntraCredentials = HashMap<String, (String, Arc<ClientSecretCredential>)>;

pub fn entra_credentials(
    authority_host: &str,
    client: &reqwest::Client,
    creds: Vec<AzureAppCredential>,
) -> anyhow::Result<EntraCredentials> {
    http::require_https("authority_host", authority_host)?;
    let mut out = HashMap::new();
    for c in creds {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = authority_host.to_string();
        let mut options = ClientSecretCredentialOptions::default();
        options.client_options.cloud = Some(Arc::new(custom.into()));
        options.client_options.transport =
            Some(azure_core::http::Transport::new(Arc::new(client.clone())));
        let credential = ClientSecretCredential::new(
            &c.azure_tenant_id,
            c.client_id.clone(),
            c.client_secret.clone(),
            Some(options),
        )
        .map_err(|e| anyhow!("tenant {}: cannot set up its credential: {e}", c.tenant))?;
        out.insert(
            c.tenant.clone(),
            (c.azure_tenant_id.to_lowercase(), credential),
        );
    }
    Ok(out)
}

pub fn odata_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[async_trait]
impl AlertSource for GraphClient {
    async fn fetch(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow!("graph_base cannot be a base URL"))?
            .pop_if_empty()
            .extend(["security", "alerts_v2"]);
        // Both values are ours (an enum's fixed string and a formatted time), never alert data.
        let filter = format!(
            "serviceSource eq '{}' and lastUpdateDateTime ge {}",
            product.service_source(),
            odata_time(since)
        );
        url.query_pairs_mut()
            .append_pair("$filter", &filter)
            .append_pair("$top", &self.cfg.page_size.to_string());
        let mut items = Vec::new();
        let mut next = Some(url);
        let mut pages = 0u32;
        while let Some(u) = next.take() {
            pages += 1;
            if pages > 10_000 {
                bail!(
                    "Graph alerts_v2 for tenant {}: more than 10,000 pages; stopping",
                    tenant.id
                );
            }
            let page = self.get_page(tenant, &u).await?;
            let value = page
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("Graph page has no `value` array"))?;
            for raw in value {
                items.push(match Alert::from_value(raw.clone()) {
                    Ok(a) => FetchedItem::Alert(Box::new(a)),
                    Err(m) => FetchedItem::Malformed {
                        raw: raw.to_string(),
                        reason: m.reason,
                    },
                });
            }
            if let Some(n) = page.get("@odata.nextLink").and_then(Value::as_str) {
                next = Some(self.same_origin(n)?);
            }
        }
        tracing::debug!(tenant = %tenant.id, product = %product, pages, items = items.len(), "fetched");
        Ok(items)
    }
}
