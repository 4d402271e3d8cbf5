//! Defender for Office 365: the one remediation an API allows. There is no public API to
//! approve a pending automated-investigation (AIR) action; Graph beta can only start a new
//! remediation of the same messages (`analyzedEmails/remediate`). Success is 202 in the
//! reference page and 204 in other docs: both are accepted, and both only mean "accepted";
//! the outcome is visible in the Action center.

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde_json::json;

use super::graph::{entra_credentials, AzureAppCredential, EntraCredentials, GRAPH_SCOPE};
use super::http::{self, HttpSettings};

#[async_trait]
pub trait EmailRemediation: Send + Sync {
    /// Soft-deletes the given messages (networkMessageId, recipient); returns the Location
    /// (Action center) when Graph gives one.
    async fn soft_delete(
        &self,
        tenant: &str,
        title: &str,
        messages: &[(String, String)],
    ) -> anyhow::Result<Option<String>>;
}

pub struct MdoClient {
    client: reqwest::Client,
    base: url::Url,
    creds: EntraCredentials,
}

impl MdoClient {
    /// `graph_beta_base`: `https://graph.microsoft.com/beta`.
    pub fn new(
        graph_beta_base: &str,
        authority_host: &str,
        http_settings: &HttpSettings,
        creds: Vec<AzureAppCredential>,
    ) -> anyhow::Result<MdoClient> {
        let client = http::build_client(http_settings)?;
        MdoClient::with_client(graph_beta_base, authority_host, creds, client)
    }

    /// On an HTTP client shared with other clients: the cloud shape builds this client per
    /// tenant, and an HTTP client each (pool, TLS connections, root store) grows a warm
    /// container by every tenant it serves (see `GraphClient::with_client`).
    pub fn with_client(
        graph_beta_base: &str,
        authority_host: &str,
        creds: Vec<AzureAppCredential>,
        client: reqwest::Client,
    ) -> anyhow::Result<MdoClient> {
        let base = http::require_https("graph beta base", graph_beta_base)?;
        let creds = entra_credentials(authority_host, &client, creds)?;
        Ok(MdoClient {
            client,
            base,
            creds,
        })
    }
}

#[async_trait]
impl EmailRemediation for MdoClient {
    async fn soft_delete(
        &self,
        tenant: &str,
        title: &str,
        messages: &[(String, String)],
    ) -> anyhow::Result<Option<String>> {
        if messages.is_empty() {
            bail!("no message to remediate");
        }
        let (_, cred) = self
            .creds
            .get(tenant)
            .ok_or_else(|| anyhow!("tenant {tenant}: no Azure app credential is configured"))?;
        let token = cred
            .get_token(&[GRAPH_SCOPE], None)
            .await
            .map_err(|e| anyhow!("tenant {tenant}: token request failed: {e}"))?
            .token;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow!("graph beta base cannot be a base URL"))?
            .pop_if_empty()
            .extend(["security", "collaboration", "analyzedEmails", "remediate"]);
        let body = json!({
            "displayName": format!("mss: {}", crate::domain::incident::clean_line(title, 100)),
            "description": "Remediation requested by the managed security service per the customer's agreed policy",
            "severity": "medium",
            "action": "softDelete",
            "remediateSendersCopy": false,
            "analyzedEmails": messages.iter().map(|(id, to)| json!({"networkMessageId": id, "recipientEmailAddress": to})).collect::<Vec<_>>(),
        });
        let r = self
            .client
            .post(url)
            .bearer_auth(token.secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| anyhow!("analyzedEmails/remediate: {e}"))?;
        let status = r.status();
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status.as_u16() == 202 || status.as_u16() == 204 || status.is_success() {
            return Ok(location);
        }
        let text = r.text().await.unwrap_or_default();
        bail!(
            "analyzedEmails/remediate: HTTP {}: {}",
            status.as_u16(),
            http::body_excerpt(&text)
        )
    }
}
