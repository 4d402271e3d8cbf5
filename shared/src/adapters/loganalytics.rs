//! Log Analytics query API over a customer's Microsoft Sentinel workspace:
//! `POST {base}/v1/workspaces/{workspaceId}/query` with `{"query", "timespan"}`, a token for
//! `https://api.loganalytics.io/.default` from the tenant's own app registration (the same
//! Entra credential helper as Graph), the app holding Data.Read and Reader on the workspace.
//!
//! What each answer means here:
//! - 200 `{"tables":[{"name","columns":[{"name","type"}],"rows":[[…]]}]}`: the result (the
//!   table named `PrimaryResult`, else the first); with an `error` object as well
//!   (`PartialError`) the result is kept and marked partial with the service's message.
//! - 204: no data, an empty result.
//! - 400: the query was refused (`SyntaxError`, `SemanticError` inside `innererror`); the
//!   caller names the rule.
//! - 401, 403 `InvalidAuthenticationToken…`, a failed token request: [`LogError::Auth`];
//!   403 `InsufficientAccessError` and 404: [`LogError::Permission`], with the fix. Both mean
//!   the workspace cannot be read at all, whatever the query.
//! - 429: waited for (`Retry-After`, else back-off) a bounded number of times, then
//!   [`LogError::Quota`]. The API allows 200 requests per 30 s and 5 concurrent queries per
//!   identity.
//! - 504, or no answer within our limit: [`LogError::Timeout`], not retried (the service
//!   already spent its 3 minutes on the query).
//! - other 5xx and connection errors: retried with back-off, then [`LogError::Failed`].

use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::graph::{entra_credentials, AzureAppCredential, EntraCredentials, LOGANALYTICS_SCOPE};
use super::http::{self, HttpSettings, RetryPolicy};
use crate::domain::tenant::Tenant;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogColumn {
    pub name: String,
    /// The service's type name (`datetime`, `string`, `dynamic`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

/// One query's result: the primary table's columns and rows, values as the service sent
/// them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LogResult {
    pub columns: Vec<LogColumn>,
    pub rows: Vec<Vec<Value>>,
    /// `Some(message)` when the service answered 200 with an `error` object (`PartialError`):
    /// the rows may be incomplete.
    pub partial: Option<String>,
}

impl LogResult {
    /// Index of a column, matched case-insensitively (exact spelling first).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            })
    }

    /// A row's value of a column, `None` when the column does not exist.
    pub fn get<'a>(&self, row: &'a [Value], name: &str) -> Option<&'a Value> {
        self.column(name).and_then(|i| row.get(i))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// 400: the service refused the query text.
    #[error("the query was refused: {0}")]
    BadQuery(String),
    /// No usable token, or the token was refused: nothing can be read from the workspace.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// 403 `InsufficientAccessError` or 404: the app may not read the workspace.
    #[error("no access to the workspace: {0}")]
    Permission(String),
    /// 429 after the bounded waits.
    #[error("query quota exhausted: {0}")]
    Quota(String),
    /// 504, or no answer within the limit.
    #[error("query timed out: {0}")]
    Timeout(String),
    #[error("query failed: {0}")]
    Failed(String),
}

impl LogError {
    /// True when no query can succeed on this workspace now (credentials, permissions): the
    /// caller stops instead of trying every other query.
    pub fn is_workspace_wide(&self) -> bool {
        matches!(self, LogError::Auth(_) | LogError::Permission(_))
    }
}

#[async_trait]
pub trait LogAnalytics: Send + Sync {
    /// Runs `query` on the tenant's workspace. `timespan` is ISO 8601 (`start/end`).
    async fn query(
        &self,
        tenant: &Tenant,
        workspace_id: &str,
        query: &str,
        timespan: &str,
    ) -> Result<LogResult, LogError>;
}

#[derive(Debug, Clone)]
pub struct LogAnalyticsConfig {
    /// `https://api.loganalytics.azure.com` (the older `https://api.loganalytics.io` also works).
    pub base: String,
    pub authority_host: String,
    pub http: HttpSettings,
    /// Connection errors and 5xx other than 504.
    pub retry: RetryPolicy,
    /// 429s waited for before giving up with [`LogError::Quota`].
    pub throttle_retries: u32,
    /// The service stops a query after 3 minutes; we wait a little longer for its answer.
    pub query_timeout: Duration,
}

impl Default for LogAnalyticsConfig {
    fn default() -> Self {
        LogAnalyticsConfig {
            base: "https://api.loganalytics.azure.com".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            http: HttpSettings::default(),
            retry: RetryPolicy::default(),
            throttle_retries: 3,
            query_timeout: Duration::from_secs(200),
        }
    }
}

pub struct LogAnalyticsClient {
    client: reqwest::Client,
    cfg: LogAnalyticsConfig,
    base: url::Url,
    creds: EntraCredentials,
}

impl LogAnalyticsClient {
    pub fn new(cfg: LogAnalyticsConfig, creds: Vec<AzureAppCredential>) -> anyhow::Result<Self> {
        let base = http::require_https("loganalytics base", &cfg.base)?;
        if base.cannot_be_a_base() {
            return Err(anyhow!("loganalytics base cannot be a base URL"));
        }
        let client = http::build_client(&HttpSettings {
            timeout: cfg.query_timeout,
            ..cfg.http.clone()
        })?;
        let creds = entra_credentials(&cfg.authority_host, &client, creds)?;
        Ok(LogAnalyticsClient {
            client,
            cfg,
            base,
            creds,
        })
    }

    fn url(&self, workspace_id: &str) -> Result<url::Url, LogError> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .map_err(|_| LogError::Failed("loganalytics base cannot be a base URL".into()))?
            .pop_if_empty()
            // pushed as one segment: percent-encoded, never a path of its own
            .extend(["v1", "workspaces", workspace_id, "query"]);
        Ok(u)
    }
}

fn get_ci<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The messages of a OneAPI error object: its own, its `innererror` chain's and its
/// `details`', joined (the top message alone is often just "There were some errors…").
pub fn error_message(e: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str).map(str::trim) {
            if !s.is_empty() && !parts.iter().any(|p| p == s) {
                parts.push(s.to_string());
            }
        }
    };
    let mut cur = Some(e);
    let mut depth = 0;
    while let Some(c) = cur {
        push(c.get("message"));
        if let Some(d) = c.get("details").and_then(Value::as_array) {
            for x in d.iter().take(5) {
                push(x.get("message"));
                push(x.get("innererror").and_then(|i| i.get("message")));
            }
        }
        depth += 1;
        cur = c.get("innererror").filter(|_| depth < 5);
    }
    http::body_excerpt(&parts.join(" / "))
}

/// The `code`s of a OneAPI error and its `innererror` chain, outermost first, each through
/// [`http::body_excerpt`]: they are echoed into error text, so a hostile or broken body must
/// not bring a megabyte or a line break with them.
pub fn error_codes(e: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            out.push(http::body_excerpt(code));
        }
        if out.len() >= 5 {
            break;
        }
        cur = c.get("innererror");
    }
    out
}

/// Reads a 200 answer: the `PrimaryResult` table (else the first), rows checked to have one
/// value per column; an `error` object marks the result partial.
pub fn parse_answer(v: &Value) -> Result<LogResult, String> {
    let o = v.as_object().ok_or("the answer is not a JSON object")?;
    let partial = get_ci(o, "error").filter(|e| !e.is_null()).map(|e| {
        let m = error_message(e);
        if m.is_empty() {
            "the service reported a partial failure without a message".to_string()
        } else {
            m
        }
    });
    let tables = match get_ci(o, "tables") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err("`tables` is not an array".into()),
        None if partial.is_some() => &[],
        None => return Err("the answer has no `tables`".into()),
    };
    let table = tables
        .iter()
        .filter_map(Value::as_object)
        .find(|t| get_ci(t, "name").and_then(Value::as_str) == Some("PrimaryResult"))
        .or_else(|| tables.first().and_then(Value::as_object));
    let Some(table) = table else {
        return Ok(LogResult {
            partial,
            ..LogResult::default()
        });
    };
    let mut columns = Vec::new();
    if let Some(cols) = get_ci(table, "columns") {
        let cols = cols.as_array().ok_or("`columns` is not an array")?;
        for (i, c) in cols.iter().enumerate() {
            let c = c
                .as_object()
                .ok_or_else(|| format!("column {i} is not an object"))?;
            let name = get_ci(c, "name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("column {i} has no name"))?;
            let kind = get_ci(c, "type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            columns.push(LogColumn {
                name: name.to_string(),
                kind,
            });
        }
    }
    let mut rows = Vec::new();
    match get_ci(table, "rows") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, r) in a.iter().enumerate() {
                let r = r
                    .as_array()
                    .ok_or_else(|| format!("row {i} is not an array"))?;
                if r.len() != columns.len() {
                    return Err(format!(
                        "row {i} has {} values for {} columns",
                        r.len(),
                        columns.len()
                    ));
                }
                rows.push(r.clone());
            }
        }
        Some(_) => return Err("`rows` is not an array".into()),
    }
    Ok(LogResult {
        columns,
        rows,
        partial,
    })
}

/// What a refusal (4xx/5xx other than 429) means, from its status and body.
pub fn classify_refusal(status: u16, body: &str, tenant: &str, workspace_id: &str) -> LogError {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let err = v
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let message = err
        .map(error_message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| http::body_excerpt(body));
    let codes = err.map(error_codes).unwrap_or_default();
    let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
    match status {
        400 => {
            let code = codes
                .iter()
                .rev()
                .find(|c| c.as_str() != "BadArgumentError")
                .or(codes.first())
                .map(|c| format!("{c}: "))
                .unwrap_or_default();
            LogError::BadQuery(format!("HTTP 400 {code}{message}"))
        }
        401 => LogError::Auth(format!("HTTP 401: {message}")),
        403 if has("InsufficientAccessError") || codes.is_empty() => LogError::Permission(format!(
            "HTTP 403: {message}. Fix: give the app registration of tenant {tenant} the API \
             permission Log Analytics API > Data.Read (application, admin consent granted) and \
             the Reader role (e.g. Log Analytics Reader) on workspace {workspace_id}"
        )),
        403 => LogError::Auth(format!("HTTP 403 {}: {message}", codes.join("/"))),
        404 => LogError::Permission(format!(
            "HTTP 404: {message}. Check log_analysis.workspace_id ({workspace_id}) of tenant {tenant}: \
             the workspace id is shown on the workspace's overview page"
        )),
        504 => LogError::Timeout(format!("HTTP 504: {message}")),
        s => LogError::Failed(format!("HTTP {s}: {message}")),
    }
}

#[async_trait]
impl LogAnalytics for LogAnalyticsClient {
    async fn query(
        &self,
        tenant: &Tenant,
        workspace_id: &str,
        query: &str,
        timespan: &str,
    ) -> Result<LogResult, LogError> {
        let (azure_tenant_id, cred) = self.creds.get(&tenant.id).ok_or_else(|| {
            LogError::Auth(format!("tenant {}: no Azure app credential", tenant.id))
        })?;
        if !azure_tenant_id.eq_ignore_ascii_case(&tenant.azure_tenant_id) {
            return Err(LogError::Auth(format!(
                "tenant {}: the configured credential belongs to another Azure tenant; refusing to use it",
                tenant.id
            )));
        }
        let url = self.url(workspace_id)?;
        let body = serde_json::to_vec(&json!({"query": query, "timespan": timespan}))
            .map_err(|e| LogError::Failed(e.to_string()))?;
        let policy = &self.cfg.retry;
        let mut attempt = 0u32;
        let mut throttled = 0u32;
        loop {
            attempt += 1;
            let token = cred
                .get_token(&[LOGANALYTICS_SCOPE], None)
                .await
                .map_err(|e| {
                    LogError::Auth(format!("tenant {}: token request failed: {e}", tenant.id))
                })?
                .token;
            let sent = self
                .client
                .post(url.clone())
                .bearer_auth(token.secret())
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(body.clone())
                .send()
                .await;
            let r = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(LogError::Timeout(format!(
                        "no answer within {} s",
                        self.cfg.query_timeout.as_secs()
                    )))
                }
                Err(e) if http::is_retryable_error(&e) && attempt < policy.max_attempts => {
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    let mut s = e.to_string();
                    if let Some(u) = e.url() {
                        s = s.replace(u.as_str(), u.path());
                    }
                    return Err(LogError::Failed(s));
                }
            };
            let status = r.status();
            let retry_after = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(http::parse_retry_after);
            let text = r.text().await.unwrap_or_default();
            match status.as_u16() {
                200 => {
                    let v: Value = serde_json::from_str(&text)
                        .map_err(|e| LogError::Failed(format!("the answer is not JSON: {e}")))?;
                    return parse_answer(&v).map_err(LogError::Failed);
                }
                204 => return Ok(LogResult::default()),
                429 => {
                    throttled += 1;
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("error").map(error_message))
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| http::body_excerpt(&text));
                    let wait = retry_after.unwrap_or_else(|| policy.backoff(throttled));
                    if throttled > self.cfg.throttle_retries {
                        return Err(LogError::Quota(format!(
                            "HTTP 429 {throttled} times: {message}"
                        )));
                    }
                    if wait > policy.max_server_wait {
                        return Err(LogError::Quota(format!(
                            "HTTP 429, asked to wait {:.0} s: {message}",
                            wait.as_secs_f64()
                        )));
                    }
                    tracing::debug!(tenant = %tenant.id, throttled, wait_ms = wait.as_millis() as u64, "log analytics throttled; waiting");
                    tokio::time::sleep(wait).await;
                    // A throttled request never ran: it does not use up a retry.
                    attempt -= 1;
                }
                s if s != 504
                    && http::is_retryable_status(status)
                    && attempt < policy.max_attempts =>
                {
                    tracing::debug!(tenant = %tenant.id, status = s, attempt, "log analytics query retried");
                    tokio::time::sleep(retry_after.unwrap_or_else(|| policy.backoff(attempt)))
                        .await;
                }
                s => return Err(classify_refusal(s, &text, &tenant.id, workspace_id)),
            }
        }
    }
}

/// Log Analytics for the cloud shape: a client per tenant, built on first use from that
/// tenant's secret `<prefix>azure/<tenant>` (as `SecretGraphSource` does for alerts).
#[cfg(feature = "aws")]
pub struct SecretLogAnalytics {
    cfg: LogAnalyticsConfig,
    secrets: std::sync::Arc<super::secrets::SecretStore>,
    clients:
        tokio::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<LogAnalyticsClient>>>,
}

#[cfg(feature = "aws")]
impl SecretLogAnalytics {
    pub fn new(
        cfg: LogAnalyticsConfig,
        secrets: std::sync::Arc<super::secrets::SecretStore>,
    ) -> SecretLogAnalytics {
        SecretLogAnalytics {
            cfg,
            secrets,
            clients: tokio::sync::Mutex::new(Default::default()),
        }
    }
}

#[cfg(feature = "aws")]
#[async_trait]
impl LogAnalytics for SecretLogAnalytics {
    async fn query(
        &self,
        tenant: &Tenant,
        workspace_id: &str,
        query: &str,
        timespan: &str,
    ) -> Result<LogResult, LogError> {
        let client = {
            let mut map = self.clients.lock().await;
            match map.get(&tenant.id) {
                Some(c) => c.clone(),
                None => {
                    let cred = self
                        .secrets
                        .azure(&tenant.id)
                        .await
                        .map_err(|e| LogError::Auth(format!("{e:#}")))?;
                    let c = std::sync::Arc::new(
                        LogAnalyticsClient::new(self.cfg.clone(), vec![cred])
                            .map_err(|e| LogError::Auth(format!("{e:#}")))?,
                    );
                    map.insert(tenant.id.clone(), c.clone());
                    c
                }
            }
        };
        client.query(tenant, workspace_id, query, timespan).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_table_is_read_by_column_name() {
        let v = json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "Actor", "type": "string"}],
            "rows": [["2026-11-24T00:12:00.1234567Z", "admin@kaede.example"], ["2026-11-24T01:00:00Z", null]]}]});
        let r = parse_answer(&v).unwrap();
        assert_eq!(r.columns.len(), 2);
        assert_eq!(r.columns[0].kind, "datetime");
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.get(&r.rows[0], "actor").unwrap(), "admin@kaede.example");
        assert!(r.get(&r.rows[0], "Detail").is_none());
        assert!(r.partial.is_none());
    }

    #[test]
    fn the_primary_table_is_chosen_and_rows_must_fit_the_columns() {
        let v = json!({"tables": [
            {"name": "Other", "columns": [{"name": "x", "type": "long"}], "rows": [[1]]},
            {"name": "PrimaryResult", "columns": [{"name": "y", "type": "long"}], "rows": [[2], [3]]}]});
        assert_eq!(
            parse_answer(&v).unwrap().rows,
            vec![vec![json!(2)], vec![json!(3)]]
        );
        let ragged = json!({"tables": [{"name": "PrimaryResult",
            "columns": [{"name": "a", "type": "string"}], "rows": [["x", "y"]]}]});
        assert!(parse_answer(&ragged)
            .unwrap_err()
            .contains("2 values for 1 columns"));
        assert!(parse_answer(&json!({"tables": 3})).is_err());
        assert!(parse_answer(&json!([])).is_err());
        assert!(parse_answer(&json!({})).is_err());
        let empty = parse_answer(&json!({"tables": []})).unwrap();
        assert_eq!(empty, LogResult::default());
    }

    #[test]
    fn a_partial_error_keeps_the_rows_and_says_why() {
        let v = json!({"tables": [{"name": "PrimaryResult", "columns": [{"name": "a", "type": "string"}], "rows": [["x"]]}],
            "error": {"code": "PartialError", "message": "There were some errors when processing your query.",
                "details": [{"code": "EngineError", "message": "Something went wrong processing your query on the server.",
                    "innererror": {"code": "-2133196797", "message": "Query result set has exceeded the internal record count limit 500000 records"}}]}});
        let r = parse_answer(&v).unwrap();
        assert_eq!(r.rows.len(), 1);
        let p = r.partial.unwrap();
        assert!(p.contains("There were some errors"), "{p}");
        assert!(p.contains("500000 records"), "{p}");
    }

    #[test]
    fn refusals_are_told_apart() {
        let syntax = r#"{"error":{"message":"The request had some invalid properties","code":"BadArgumentError","innererror":{"code":"SyntaxError","message":"A recognition error occurred in the query."}}}"#;
        match classify_refusal(400, syntax, "kaede-shoji", "ws") {
            LogError::BadQuery(m) => {
                assert!(
                    m.contains("SyntaxError") && m.contains("recognition error"),
                    "{m}"
                )
            }
            e => panic!("{e:?}"),
        }
        let denied = r#"{"error":{"message":"The provided credentials have insufficient access to perform the requested operation","code":"InsufficientAccessError","correlationId":"x"}}"#;
        let e = classify_refusal(
            403,
            denied,
            "kaede-shoji",
            "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b",
        );
        assert!(e.is_workspace_wide());
        let m = e.to_string();
        assert!(m.contains("Data.Read") && m.contains("Reader"), "{m}");
        assert!(m.contains("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b"), "{m}");
        let audience = r#"{"error":{"code":"InvalidAuthenticationTokenAudience","message":"The access token has been obtained from wrong audience or resource"}}"#;
        assert!(matches!(
            classify_refusal(403, audience, "t", "w"),
            LogError::Auth(_)
        ));
        assert!(matches!(
            classify_refusal(401, "", "t", "w"),
            LogError::Auth(_)
        ));
        assert!(classify_refusal(404, "{}", "t", "w").is_workspace_wide());
        assert!(matches!(
            classify_refusal(504, "<html>gateway</html>", "t", "w"),
            LogError::Timeout(_)
        ));
        let failed = classify_refusal(
            500,
            "{\"error\":{\"code\":\"x\",\"message\":\"boom\"}}",
            "t",
            "w",
        );
        assert!(!failed.is_workspace_wide());
        assert!(failed.to_string().contains("boom"));
    }
}
