//! Defender for Endpoint machine actions (isolate, release, full scan) and the device record
//! the guardrails read. Per the API notes: token scope api.securitycenter.microsoft.com,
//! case-sensitive body parameters, 201 MachineAction, "Action is already in progress" as a
//! 400 that means "look up the pending action", OsPlatformNotSupported as unsupported, 429
//! with Retry-After.

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::graph::AzureAppCredential;
use super::http::{self, HttpSettings, RetryPolicy};
use crate::domain::response::DeviceRecord;

pub const MDE_SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

#[derive(Debug, Clone)]
pub struct MdeConfig {
    /// `https://api.security.microsoft.com/api` (or a regional host).
    pub base: String,
    pub authority_host: String,
    pub http: HttpSettings,
    pub retry: RetryPolicy,
}

impl Default for MdeConfig {
    fn default() -> Self {
        MdeConfig {
            base: "https://api.security.microsoft.com/api".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            http: HttpSettings::default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineAction {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub machine_id: String,
}

impl MachineAction {
    /// Succeeded, Failed, TimeOut and Cancelled end an action; Pending and InProgress do not.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Succeeded" | "Failed" | "TimeOut" | "Cancelled"
        )
    }
}

/// The outcome of asking for an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Requested {
    Started(MachineAction),
    /// MDE already runs one of this type on the machine: track that one.
    AlreadyInProgress(Option<MachineAction>),
    /// The device's OS cannot do it.
    Unsupported(String),
}

#[async_trait]
pub trait DeviceActions: Send + Sync {
    async fn device(&self, tenant: &str, machine_id: &str) -> anyhow::Result<Option<DeviceRecord>>;
    async fn isolate(
        &self,
        tenant: &str,
        machine_id: &str,
        isolation_type: &str,
        comment: &str,
    ) -> anyhow::Result<Requested>;
    async fn unisolate(
        &self,
        tenant: &str,
        machine_id: &str,
        comment: &str,
    ) -> anyhow::Result<Requested>;
    async fn full_scan(
        &self,
        tenant: &str,
        machine_id: &str,
        comment: &str,
    ) -> anyhow::Result<Requested>;
    async fn action(&self, tenant: &str, action_id: &str) -> anyhow::Result<MachineAction>;
    /// The newest action of type `kind` (`Isolate`, `Unisolate`, `RunAntiVirusScan`) on the
    /// machine whose comment contains `marker`, if MDE has one: how a retry finds the request
    /// an earlier attempt made but could not record (first response puts its intent's marker
    /// in every comment). The default knows of none.
    async fn find_requested(
        &self,
        tenant: &str,
        machine_id: &str,
        kind: &str,
        marker: &str,
    ) -> anyhow::Result<Option<MachineAction>> {
        let _ = (tenant, machine_id, kind, marker);
        Ok(None)
    }
}

pub struct MdeClient {
    client: reqwest::Client,
    cfg: MdeConfig,
    base: url::Url,
    creds: super::graph::EntraCredentials,
}

fn action_from(v: &Value) -> anyhow::Result<MachineAction> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let id = s("id");
    if id.is_empty() {
        bail!("MDE answered a machine action without an id");
    }
    Ok(MachineAction {
        id,
        kind: s("type"),
        status: s("status"),
        machine_id: s("machineId"),
    })
}

/// Ids go into URL paths and an OData filter: only the characters MDE ids use are accepted.
/// `error.code` and `error.message` of an MDE answer (`{"error":{"code","message","target"}}`),
/// empty when absent.
pub fn error_parts(v: &Value) -> (&str, &str) {
    let get = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
    (get("/error/code"), get("/error/message"))
}

/// A refusal for error messages: `HTTP <status> <code>: <message>`, code and message both
/// through [`http::body_excerpt`] (cut, no control characters). Public so the fuzz target
/// `error_bodies` drives it.
pub fn refusal_text(status: u16, v: &Value) -> String {
    let (code, message) = error_parts(v);
    format!(
        "HTTP {status} {}: {}",
        http::body_excerpt(code),
        http::body_excerpt(message)
    )
}

fn safe_id(what: &str, id: &str) -> anyhow::Result<()> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!("{what} {id:?} is not a valid MDE id");
    }
    Ok(())
}

impl MdeClient {
    pub fn new(cfg: MdeConfig, creds: Vec<AzureAppCredential>) -> anyhow::Result<MdeClient> {
        let client = http::build_client(&cfg.http)?;
        MdeClient::with_client(cfg, creds, client)
    }

    /// On an HTTP client shared with other clients: the cloud shape builds this client per
    /// tenant, and an HTTP client each (pool, TLS connections, root store) grows a warm
    /// container by every tenant it serves (see `GraphClient::with_client`).
    pub fn with_client(
        cfg: MdeConfig,
        creds: Vec<AzureAppCredential>,
        client: reqwest::Client,
    ) -> anyhow::Result<MdeClient> {
        let base = http::require_https("mde base", &cfg.base)?;
        let map = super::graph::entra_credentials(&cfg.authority_host, &client, creds)?;
        Ok(MdeClient {
            client,
            cfg,
            base,
            creds: map,
        })
    }

    async fn token(&self, tenant: &str) -> anyhow::Result<Secret> {
        let (_, cred) = self
            .creds
            .get(tenant)
            .ok_or_else(|| anyhow!("tenant {tenant}: no Azure app credential is configured"))?;
        Ok(cred
            .get_token(&[MDE_SCOPE], None)
            .await
            .map_err(|e| anyhow!("tenant {tenant}: MDE token request failed: {e}"))?
            .token)
    }

    fn url(&self, segments: &[&str]) -> anyhow::Result<url::Url> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .map_err(|_| anyhow!("mde base cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(u)
    }

    /// One call with retries on 429 (Retry-After) and 5xx for GETs; POSTs that create an
    /// action are not resent after a 5xx (the action may exist): the caller looks it up.
    async fn call(
        &self,
        tenant: &str,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let policy = &self.cfg.retry;
        let idempotent = method == reqwest::Method::GET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token(tenant).await?;
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(token.secret());
            if let Some(b) = body {
                req = req.json(b);
            }
            let wait = match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    let ra = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(http::parse_retry_after);
                    let text = r.text().await.unwrap_or_default();
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let retry = status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || (idempotent && status.is_server_error());
                    if !retry || attempt >= policy.max_attempts {
                        return Ok((status, v));
                    }
                    match ra {
                        Some(w) if w > policy.max_server_wait => return Ok((status, v)),
                        Some(w) => w,
                        None => policy.backoff(attempt),
                    }
                }
                Err(e) if (idempotent || e.is_connect()) && attempt < policy.max_attempts => {
                    policy.backoff(attempt)
                }
                Err(e) => bail!("MDE {}: {e}", url.path()),
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn request_action(
        &self,
        tenant: &str,
        machine_id: &str,
        path: &str,
        kind: &str,
        body: Value,
    ) -> anyhow::Result<Requested> {
        safe_id("machine", machine_id)?;
        let (status, v) = self
            .call(
                tenant,
                reqwest::Method::POST,
                self.url(&["machines", machine_id, path])?,
                Some(&body),
            )
            .await?;
        if status.is_success() {
            return Ok(Requested::Started(action_from(&v)?));
        }
        let (code, message) = error_parts(&v);
        if status == reqwest::StatusCode::BAD_REQUEST && message.contains("already in progress") {
            let pending = self.pending(tenant, machine_id, kind).await?;
            return Ok(Requested::AlreadyInProgress(pending));
        }
        if code == "OsPlatformNotSupported" {
            return Ok(Requested::Unsupported(http::body_excerpt(message)));
        }
        bail!(
            "MDE {path} on {machine_id}: {}",
            refusal_text(status.as_u16(), &v)
        )
    }

    /// Every action on the machine, newest first (`GET machineactions?$filter=machineId eq`).
    async fn machine_actions(&self, tenant: &str, machine_id: &str) -> anyhow::Result<Vec<Value>> {
        safe_id("machine", machine_id)?;
        let mut url = self.url(&["machineactions"])?;
        url.query_pairs_mut()
            .append_pair("$filter", &format!("machineId eq '{machine_id}'"));
        let (status, v) = self.call(tenant, reqwest::Method::GET, url, None).await?;
        if !status.is_success() {
            bail!(
                "MDE machineactions for {machine_id}: HTTP {}",
                status.as_u16()
            );
        }
        Ok(v.get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// The newest non-terminal action of `kind` on the machine.
    async fn pending(
        &self,
        tenant: &str,
        machine_id: &str,
        kind: &str,
    ) -> anyhow::Result<Option<MachineAction>> {
        Ok(self
            .machine_actions(tenant, machine_id)
            .await?
            .iter()
            .filter_map(|a| action_from(a).ok())
            .find(|a| a.kind == kind && !a.is_terminal()))
    }
}

#[async_trait]
impl DeviceActions for MdeClient {
    async fn device(&self, tenant: &str, machine_id: &str) -> anyhow::Result<Option<DeviceRecord>> {
        safe_id("machine", machine_id)?;
        let (status, v) = self
            .call(
                tenant,
                reqwest::Method::GET,
                self.url(&["machines", machine_id])?,
                None,
            )
            .await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!("MDE machine {machine_id}: HTTP {}", status.as_u16());
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Some(DeviceRecord {
            id: s("id").unwrap_or_else(|| machine_id.to_string()),
            rbac_group_name: s("rbacGroupName"),
            machine_tags: v
                .get("machineTags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            os_platform: s("osPlatform"),
            version: s("version"),
        }))
    }

    async fn isolate(
        &self,
        tenant: &str,
        machine_id: &str,
        isolation_type: &str,
        comment: &str,
    ) -> anyhow::Result<Requested> {
        self.request_action(
            tenant,
            machine_id,
            "isolate",
            "Isolate",
            json!({"Comment": comment, "IsolationType": isolation_type}),
        )
        .await
    }

    async fn unisolate(
        &self,
        tenant: &str,
        machine_id: &str,
        comment: &str,
    ) -> anyhow::Result<Requested> {
        self.request_action(
            tenant,
            machine_id,
            "unisolate",
            "Unisolate",
            json!({"Comment": comment}),
        )
        .await
    }

    async fn full_scan(
        &self,
        tenant: &str,
        machine_id: &str,
        comment: &str,
    ) -> anyhow::Result<Requested> {
        self.request_action(
            tenant,
            machine_id,
            "runAntiVirusScan",
            "RunAntiVirusScan",
            json!({"Comment": comment, "ScanType": "Full"}),
        )
        .await
    }

    async fn find_requested(
        &self,
        tenant: &str,
        machine_id: &str,
        kind: &str,
        marker: &str,
    ) -> anyhow::Result<Option<MachineAction>> {
        Ok(self
            .machine_actions(tenant, machine_id)
            .await?
            .iter()
            .filter(|a| {
                a.get("requestorComment")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.contains(marker))
            })
            .filter_map(|a| action_from(a).ok())
            .find(|a| a.kind == kind))
    }

    async fn action(&self, tenant: &str, action_id: &str) -> anyhow::Result<MachineAction> {
        safe_id("machine action", action_id)?;
        let (status, v) = self
            .call(
                tenant,
                reqwest::Method::GET,
                self.url(&["machineactions", action_id])?,
                None,
            )
            .await?;
        if !status.is_success() {
            bail!("MDE machine action {action_id}: HTTP {}", status.as_u16());
        }
        action_from(&v).context("machine action")
    }
}
