//! Graph Advanced Hunting (`POST /security/runHuntingQuery`). Answers are read with
//! case-insensitive keys because Microsoft's own samples disagree on `schema`/`Schema`.
//!
//! A quota answer (429) or a server time-out (504, or our 3-minute limit) is not retried
//! here: both mean "this query will not fit now", and the investigation reports the section
//! as skipped instead of burning more of the tenant's budget. Other 5xx are retried with
//! back-off.

use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde_json::{json, Map, Value};

use super::graph::{entra_credentials, AzureAppCredential, EntraCredentials, GRAPH_SCOPE};
use super::http::{self, HttpSettings, RetryPolicy};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HuntingResult {
    /// Column names in the service's order.
    pub columns: Vec<String>,
    /// One object per row, keyed by the names in `columns`.
    pub rows: Vec<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HuntingError {
    /// 429: the tenant's hunting quota is spent; the text is the service's own reason.
    #[error("hunting quota exhausted: {0}")]
    Quota(String),
    /// 504 or no answer within the limit.
    #[error("hunting query timed out: {0}")]
    Timeout(String),
    #[error("hunting query failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait Hunting: Send + Sync {
    async fn run(
        &self,
        tenant: &str,
        query: &str,
        timespan: &str,
    ) -> Result<HuntingResult, HuntingError>;
}

#[derive(Debug, Clone)]
pub struct HuntingConfig {
    pub graph_base: String,
    pub authority_host: String,
    pub http: HttpSettings,
    pub retry: RetryPolicy,
    /// The service stops a query after 3 minutes; we wait a little longer for its answer.
    pub query_timeout: Duration,
}

impl Default for HuntingConfig {
    fn default() -> Self {
        HuntingConfig {
            graph_base: "https://graph.microsoft.com/v1.0".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            http: HttpSettings::default(),
            retry: RetryPolicy::default(),
            query_timeout: Duration::from_secs(190),
        }
    }
}

pub struct HuntingClient {
    client: reqwest::Client,
    cfg: HuntingConfig,
    url: url::Url,
    creds: EntraCredentials,
}

impl HuntingClient {
    pub fn new(cfg: HuntingConfig, creds: Vec<AzureAppCredential>) -> anyhow::Result<Self> {
        let client = http::build_client(&HttpSettings {
            timeout: cfg.query_timeout,
            ..cfg.http.clone()
        })?;
        HuntingClient::with_client(cfg, creds, client)
    }

    /// On an HTTP client shared with other clients: the cloud shape builds this client per
    /// tenant, and an HTTP client each (pool, TLS connections, root store) grows a warm
    /// container by every tenant it serves (see `GraphClient::with_client`).
    /// Each query carries its own timeout (`query_timeout`), whatever the shared client's.
    pub fn with_client(
        cfg: HuntingConfig,
        creds: Vec<AzureAppCredential>,
        client: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let mut url = http::require_https("graph_base", &cfg.graph_base)?;
        url.path_segments_mut()
            .map_err(|_| anyhow!("graph base cannot be a base URL"))?
            .pop_if_empty()
            .extend(["security", "runHuntingQuery"]);
        let creds = entra_credentials(&cfg.authority_host, &client, creds)?;
        Ok(HuntingClient {
            client,
            cfg,
            url,
            creds,
        })
    }
}

fn get_ci<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Reads a 200 answer. Row keys are matched to schema names case-insensitively and stored
/// under the schema's spelling.
pub fn parse_answer(v: &Value) -> Result<HuntingResult, String> {
    let o = v.as_object().ok_or("the answer is not a JSON object")?;
    let mut columns: Vec<String> = get_ci(o, "schema")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_object().and_then(|c| get_ci(c, "name")))
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let raw_rows = match get_ci(o, "results") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err("`results` is not an array".into()),
        None => &[],
    };
    let mut rows = Vec::with_capacity(raw_rows.len());
    for r in raw_rows {
        let r = r.as_object().ok_or("a result row is not an object")?;
        let mut row = Map::new();
        for (k, val) in r {
            let name = match columns.iter().find(|c| c.eq_ignore_ascii_case(k)) {
                Some(c) => c.clone(),
                None => {
                    // A column the schema did not list: keep it, at the end.
                    columns.push(k.clone());
                    k.clone()
                }
            };
            row.insert(name, val.clone());
        }
        rows.push(row);
    }
    Ok(HuntingResult { columns, rows })
}

/// The words of a refused query for error messages: Graph's `error.message`, else the
/// body, either way through [`http::body_excerpt`] (cut, no control characters), like every
/// other client's error text. Public so the fuzz target `error_bodies` drives it.
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(http::body_excerpt))
        .unwrap_or_else(|| http::body_excerpt(body))
}

#[async_trait]
impl Hunting for HuntingClient {
    async fn run(
        &self,
        tenant: &str,
        query: &str,
        timespan: &str,
    ) -> Result<HuntingResult, HuntingError> {
        let (_, cred) = self.creds.get(tenant).ok_or_else(|| {
            HuntingError::Failed(format!("tenant {tenant}: no Azure app credential"))
        })?;
        let policy = &self.cfg.retry;
        let body = serde_json::to_vec(&json!({"Query": query, "Timespan": timespan}))
            .map_err(|e| HuntingError::Failed(e.to_string()))?;
        for attempt in 1..=policy.max_attempts {
            let token = cred
                .get_token(&[GRAPH_SCOPE], None)
                .await
                .map_err(|e| HuntingError::Failed(format!("token request failed: {e}")))?
                .token;
            let sent = self
                .client
                .post(self.url.clone())
                .timeout(self.cfg.query_timeout)
                .bearer_auth(token.secret())
                .header("Content-Type", "application/json; charset=utf-8")
                .body(body.clone())
                .send()
                .await;
            let r = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(HuntingError::Timeout(format!(
                        "no answer within {} s",
                        self.cfg.query_timeout.as_secs()
                    )))
                }
                Err(e) if http::is_retryable_error(&e) && attempt < policy.max_attempts => {
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(HuntingError::Failed(format!("{e}"))),
            };
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_success() {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| HuntingError::Failed(format!("the answer is not JSON: {e}")))?;
                return parse_answer(&v).map_err(HuntingError::Failed);
            }
            let message = error_text(&text);
            match status.as_u16() {
                429 => return Err(HuntingError::Quota(message)),
                504 => return Err(HuntingError::Timeout(message)),
                s if http::is_retryable_status(status) && attempt < policy.max_attempts => {
                    tracing::debug!(status = s, attempt, "hunting query retried");
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
                s => return Err(HuntingError::Failed(format!("HTTP {s}: {message}"))),
            }
        }
        Err(HuntingError::Failed(format!(
            "gave up after {} attempts",
            policy.max_attempts
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_whatever_the_key_casing() {
        for v in [
            json!({"schema":[{"name":"Timestamp","type":"DateTime"},{"name":"DeviceName","type":"String"}],
                   "results":[{"Timestamp":"2026-11-01T00:00:00Z","DeviceName":"TKY-PC-1"}]}),
            json!({"Schema":[{"Name":"Timestamp","Type":"DateTime"},{"Name":"DeviceName","Type":"String"}],
                   "Results":[{"timestamp":"2026-11-01T00:00:00Z","devicename":"TKY-PC-1"}]}),
        ] {
            let r = parse_answer(&v).unwrap();
            assert_eq!(r.columns, ["Timestamp", "DeviceName"]);
            assert_eq!(r.rows[0]["DeviceName"], "TKY-PC-1");
        }
        let extra = parse_answer(&json!({"results":[{"A":1}]})).unwrap();
        assert_eq!(extra.columns, ["A"]);
        assert!(parse_answer(&json!({"results": 5})).is_err());
        assert_eq!(parse_answer(&json!({})).unwrap(), HuntingResult::default());
    }
}
