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
use crate::ports::{AlertSource, FetchedItem, FetchedPage};

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
        let client = http::build_client(&cfg.http)?;
        GraphClient::with_client(cfg, creds, client)
    }

    /// As [`GraphClient::new`], on an HTTP client shared with other `GraphClient`s. The cloud
    /// shape builds one `GraphClient` per tenant (each from its own secret); with an HTTP
    /// client each — its own connection pool, TLS connections and root store — the fetch of
    /// 1,000 tenants peaked at 268.5 MB (BENCHMARKS.md, Lambda artifacts). Only the
    /// connections are shared: tokens are per request, and the client keeps no cookies.
    pub fn with_client(
        cfg: GraphConfig,
        creds: Vec<AzureAppCredential>,
        client: reqwest::Client,
    ) -> anyhow::Result<GraphClient> {
        let base = http::require_https("graph_base", &cfg.graph_base)?;
        http::require_https("authority_host", &cfg.authority_host)?;
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
            anyhow::Error::new(TokenError {
                tenant: tenant.id.clone(),
                failure: TokenFailure::NotConfigured,
                detail: String::new(),
            })
        })?;
        if a.azure_tenant_id != tenant.azure_tenant_id {
            return Err(anyhow::Error::new(TokenError {
                tenant: tenant.id.clone(),
                failure: TokenFailure::WrongTenant,
                detail: String::new(),
            }));
        }
        let tok = a
            .credential
            .get_token(&[GRAPH_SCOPE], None)
            .await
            .map_err(|e| anyhow::Error::new(TokenError::from_azure(&tenant.id, &e)))?;
        Ok(tok.token)
    }

    fn same_origin(&self, next: &str) -> anyhow::Result<url::Url> {
        let u = url::Url::parse(next).context("@odata.nextLink is not a URL")?;
        if u.origin() != self.base.origin() {
            bail!("@odata.nextLink points to another host; not following it with our token");
        }
        Ok(u)
    }

    async fn get_page(&self, tenant: &Tenant, url: &url::Url) -> anyhow::Result<GraphPage> {
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
                    return parse_page(&body);
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

/// Why no Graph token could be had for a tenant. Kept as a typed error (not only text) so
/// ingest health can tell a broken credential or consent — raise an operator alert at once —
/// from a passing outage of Entra, which is counted like any other failed fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub tenant: String,
    pub failure: TokenFailure,
    /// Entra's own words (its AADSTS description), secrets cut; empty when none was asked.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// No app credential for this tenant in the secrets.
    NotConfigured,
    /// The credential names another Azure tenant than the tenant's config.
    WrongTenant,
    /// Entra answered with a refusal (4xx other than 408/429): wrong or expired secret,
    /// unknown app, missing consent, resource not in the tenant. `code` is the AADSTS number.
    Refused { status: u16, code: Option<String> },
    /// Entra could not be reached, timed out, throttled or answered 5xx: may pass by itself.
    Unavailable,
}

impl TokenError {
    /// Reads the HTTP status and AADSTS code out of `azure_identity`'s error (the credential
    /// error wraps the response error).
    pub fn from_azure(tenant: &str, e: &azure_core::Error) -> TokenError {
        use azure_core::error::ErrorKind;
        let http = |k: &ErrorKind| match k {
            ErrorKind::HttpResponse {
                status, error_code, ..
            } => Some((u16::from(*status), error_code.clone())),
            _ => None,
        };
        let found = http(e.kind()).or_else(|| {
            e.downcast_ref::<azure_core::Error>()
                .and_then(|inner| http(inner.kind()))
        });
        let failure = match found {
            Some((status, code))
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                TokenFailure::Refused { status, code }
            }
            _ => TokenFailure::Unavailable,
        };
        TokenError {
            tenant: tenant.to_string(),
            failure,
            detail: redact_error(&e.to_string()),
        }
    }

    /// The credential or its consent is broken: nothing but a person fixes it.
    pub fn is_credential_problem(&self) -> bool {
        !matches!(self.failure, TokenFailure::Unavailable)
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.failure {
            TokenFailure::NotConfigured => write!(
                f,
                "tenant {}: no Azure app credential is configured",
                self.tenant
            ),
            TokenFailure::WrongTenant => write!(
                f,
                "tenant {}: the configured credential belongs to another Azure tenant; refusing to use it",
                self.tenant
            ),
            TokenFailure::Refused { .. } | TokenFailure::Unavailable => write!(
                f,
                "tenant {}: token request failed: {}",
                self.tenant, self.detail
            ),
        }
    }
}

impl std::error::Error for TokenError {}

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

impl GraphClient {
    /// `security/alerts_v2` for one product from `since` (and before `until`, when given).
    /// Both filter values are ours (an enum's fixed string and formatted times), never alert
    /// data. `$count=true` asks for the total, for a progress bar; Graph documents `$count` on
    /// alerts_v2, and a page without `@odata.count` just leaves the total unknown.
    fn alerts_url(
        &self,
        product: Product,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        count: bool,
    ) -> anyhow::Result<url::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow!("graph_base cannot be a base URL"))?
            .pop_if_empty()
            .extend(["security", "alerts_v2"]);
        let mut filter = format!(
            "serviceSource eq '{}' and lastUpdateDateTime ge {}",
            product.service_source(),
            odata_time(since)
        );
        if let Some(u) = until {
            filter.push_str(&format!(" and lastUpdateDateTime lt {}", odata_time(u)));
        }
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$filter", &filter)
                .append_pair("$top", &self.cfg.page_size.to_string());
            if count {
                q.append_pair("$count", "true");
            }
        }
        Ok(url)
    }

    /// One page: its items (each an alert, or what could not be read as one), the nextLink
    /// (same origin only: our token is never sent elsewhere) and `@odata.count` if given.
    async fn read_page(
        &self,
        tenant: &Tenant,
        url: &url::Url,
    ) -> anyhow::Result<(Vec<FetchedItem>, Option<url::Url>, Option<u64>)> {
        let GraphPage {
            items,
            next_link,
            count,
        } = self.get_page(tenant, url).await?;
        let next = match next_link {
            Some(n) => Some(self.same_origin(&n)?),
            None => None,
        };
        Ok((items, next, count))
    }
}

/// One `alerts_v2` page as read from its body, before the nextLink is checked.
#[derive(Debug, Clone)]
pub struct GraphPage {
    /// One per element of `value`, in order: an alert, or what could not be read as one.
    pub items: Vec<FetchedItem>,
    /// `@odata.nextLink` as sent; the client follows it only if it has our Graph origin.
    pub next_link: Option<String>,
    /// `@odata.count`, when Graph sent it as a whole number.
    pub count: Option<u64>,
}

/// Reads a Graph page body (the bytes of a 200 answer): not JSON or without a `value`
/// array is an error for the whole page; an element that is not an alert becomes
/// [`FetchedItem::Malformed`] with its raw text, and the rest of the page is kept.
/// What the client does with every page; public so the fuzz target `graph_page` drives it.
/// A page of well-formed alerts is read in one pass (`alert::read_page`); any other page
/// the `Value` way below, which gives the same result for the pages both can read.
pub fn parse_page(body: &[u8]) -> anyhow::Result<GraphPage> {
    if let Some(p) = crate::domain::alert::read_page(body) {
        return Ok(GraphPage {
            items: p
                .alerts
                .into_iter()
                .map(|a| FetchedItem::Alert(Box::new(a)))
                .collect(),
            next_link: p.next_link,
            count: p.count,
        });
    }
    let page: Value = serde_json::from_slice(body)
        .map_err(|e| anyhow!("Graph answered with a page that is not JSON: {e}"))?;
    page_from_value(&page)
}

/// [`parse_page`] on a page already parsed as JSON.
pub fn page_from_value(page: &Value) -> anyhow::Result<GraphPage> {
    let value = page
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("Graph page has no `value` array"))?;
    let items = value
        .iter()
        .map(|raw| match Alert::from_value(raw.clone()) {
            Ok(a) => FetchedItem::Alert(Box::new(a)),
            Err(m) => FetchedItem::Malformed {
                raw: raw.to_string(),
                reason: m.reason,
            },
        })
        .collect();
    Ok(GraphPage {
        items,
        next_link: page
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .map(str::to_string),
        count: page.get("@odata.count").and_then(Value::as_u64),
    })
}

/// A windowed read, one page per call, for backfill: the caller stores and classifies each
/// page before asking for the next, so a long window never sits in memory, and shows
/// progress as it goes. `next` is the previous page's nextLink, checked again here.
#[async_trait]
impl crate::steps::backfill::AlertWindow for GraphClient {
    async fn page(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        next: Option<&str>,
    ) -> anyhow::Result<crate::steps::backfill::AlertPage> {
        let url = match next {
            Some(n) => self.same_origin(n)?,
            None => self.alerts_url(product, since, until, true)?,
        };
        let (items, next, total) = self.read_page(tenant, &url).await?;
        Ok(crate::steps::backfill::AlertPage {
            items,
            next: next.map(|u| u.to_string()),
            total,
        })
    }
}

#[async_trait]
impl AlertSource for GraphClient {
    async fn fetch(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0u32;
        loop {
            pages += 1;
            if pages > MAX_PAGES {
                bail!(
                    "Graph alerts_v2 for tenant {}: more than {MAX_PAGES} pages; stopping",
                    tenant.id
                );
            }
            let page = self
                .fetch_page(tenant, product, since, next.as_deref())
                .await?;
            items.extend(page.items);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        tracing::debug!(tenant = %tenant.id, product = %product, pages, items = items.len(), "fetched");
        Ok(items)
    }

    async fn fetch_page(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
        next: Option<&str>,
    ) -> anyhow::Result<FetchedPage> {
        let url = match next {
            Some(n) => self.same_origin(n)?,
            None => self.alerts_url(product, since, None, false)?,
        };
        let (items, next, _) = self.read_page(tenant, &url).await?;
        Ok(FetchedPage {
            items,
            next: next.map(|u| u.to_string()),
        })
    }
}

/// Pages one listing may take before the client gives up on it (a nextLink loop).
pub const MAX_PAGES: u32 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::error::ErrorKind;
    use azure_core::http::StatusCode;

    /// What `azure_identity` returns: a credential error wrapping the token endpoint's answer.
    fn wrapped(status: StatusCode, code: Option<&str>) -> azure_core::Error {
        let inner = azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: code.map(str::to_string),
                raw_response: None,
            },
            "AADSTS7000222: The provided client secret keys for app 'a' are expired.",
        );
        azure_core::Error::with_error(
            ErrorKind::Credential,
            inner,
            "ClientSecretCredential authentication failed. AADSTS7000222: expired. client_secret=abc",
        )
    }

    #[test]
    fn entra_refusals_are_told_from_outages() {
        let e = TokenError::from_azure("t1", &wrapped(StatusCode::Unauthorized, Some("7000222")));
        assert_eq!(
            e.failure,
            TokenFailure::Refused {
                status: 401,
                code: Some("7000222".into())
            }
        );
        assert!(e.is_credential_problem());
        assert!(!e.to_string().contains("abc"), "{e}");
        assert!(e
            .to_string()
            .starts_with("tenant t1: token request failed: "));
        for s in [
            StatusCode::ServiceUnavailable,
            StatusCode::TooManyRequests,
            StatusCode::RequestTimeout,
        ] {
            let e = TokenError::from_azure("t1", &wrapped(s, None));
            assert_eq!(e.failure, TokenFailure::Unavailable, "{s:?}");
            assert!(!e.is_credential_problem());
        }
        let io = azure_core::Error::with_message(ErrorKind::Io, "connection refused");
        assert_eq!(
            TokenError::from_azure("t1", &io).failure,
            TokenFailure::Unavailable
        );
    }
}
