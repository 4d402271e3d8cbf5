//! OpsRamp incidents (the ticket system the customer is mailed from), per the published v2
//! API: OAuth2 client credentials, POST for create and update, responses as comments, search
//! by `extTicketId` so a retried create finds the ticket it may already have made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use azure_core::credentials::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::http::{self, HttpSettings, RetryPolicy};
use crate::ports::{NewTicket, TicketUpdate, Tickets};

#[derive(Debug, Clone)]
pub struct OpsRampConfig {
    /// e.g. `https://acme.api.opsramp.com`
    pub base: String,
    /// The MSSP's OpsRamp client, e.g. `client_1234`.
    pub tenant_id: String,
    /// `/tenancy/auth/oauth/token` on current installations, `/auth/oauth/token` on older.
    pub token_path: String,
    pub http: HttpSettings,
    pub retry: RetryPolicy,
}

impl OpsRampConfig {
    pub fn new(base: &str, tenant_id: &str) -> OpsRampConfig {
        OpsRampConfig {
            base: base.trim_end_matches('/').to_string(),
            tenant_id: tenant_id.to_string(),
            token_path: "/tenancy/auth/oauth/token".into(),
            http: HttpSettings::default(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Clone)]
pub struct OpsRampCredential {
    pub client_id: String,
    pub client_secret: Secret,
}

impl std::fmt::Debug for OpsRampCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsRampCredential")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Reads the OpsRamp credential when it is first needed.
pub type CredentialLoader = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = anyhow::Result<OpsRampCredential>> + Send>,
        > + Send
        + Sync,
>;

/// The client's credential: given, or read on first use and then kept. A Lambda function
/// whose invocation never calls OpsRamp (most fetches) then never reads the secret, and one
/// that does reads it once per container rather than before its first poll; a failed read
/// is tried again by the next call. Clones share the one read.
#[derive(Clone)]
pub struct SharedCredential {
    cell: Arc<tokio::sync::OnceCell<OpsRampCredential>>,
    load: Option<CredentialLoader>,
}

impl SharedCredential {
    pub fn lazy(load: CredentialLoader) -> SharedCredential {
        SharedCredential {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            load: Some(load),
        }
    }

    pub async fn get(&self) -> anyhow::Result<&OpsRampCredential> {
        self.cell
            .get_or_try_init(|| async {
                match &self.load {
                    Some(load) => load().await,
                    None => Err(anyhow!("no OpsRamp credential was given")),
                }
            })
            .await
    }

    /// Whether the credential has been read (tests: a start that must not read it).
    pub fn is_loaded(&self) -> bool {
        self.cell.initialized()
    }
}

impl From<OpsRampCredential> for SharedCredential {
    fn from(c: OpsRampCredential) -> SharedCredential {
        SharedCredential {
            cell: Arc::new(tokio::sync::OnceCell::new_with(Some(c))),
            load: None,
        }
    }
}

pub struct OpsRampClient {
    client: reqwest::Client,
    cfg: OpsRampConfig,
    cred: SharedCredential,
    base: url::Url,
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

/// Counts of calls, for tests and benchmarks (calls per alert).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpsRampCalls {
    pub tokens: u64,
    pub requests: u64,
}

impl OpsRampClient {
    pub fn new(
        cfg: OpsRampConfig,
        cred: impl Into<SharedCredential>,
    ) -> anyhow::Result<OpsRampClient> {
        let cred = cred.into();
        let base = http::require_https("opsramp base", &cfg.base)?;
        if !cfg
            .tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || cfg.tenant_id.is_empty()
        {
            bail!(
                "opsramp tenant id {:?} is not valid (e.g. client_1234)",
                cfg.tenant_id
            );
        }
        Ok(OpsRampClient {
            client: http::build_client(&cfg.http)?,
            cfg,
            cred,
            base,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn url(&self, segments: &[&str]) -> anyhow::Result<url::Url> {
        let mut u = self.base.clone();
        {
            let mut p = u
                .path_segments_mut()
                .map_err(|_| anyhow!("opsramp base cannot be a base URL"))?;
            p.pop_if_empty();
            p.extend(["api", "v2", "tenants", self.cfg.tenant_id.as_str()]);
            p.extend(segments);
        }
        Ok(u)
    }

    async fn token(&self, force: bool) -> anyhow::Result<Secret> {
        let mut guard = self.token.lock().await;
        if !force {
            if let Some((t, exp)) = guard.as_ref() {
                if Instant::now() + Duration::from_secs(60) < *exp {
                    return Ok(t.clone());
                }
            }
        }
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/{}",
            self.base.path().trim_end_matches('/'),
            self.cfg.token_path.trim_start_matches('/')
        ));
        let cred = self.cred.get().await?;
        let policy = &self.cfg.retry;
        let mut attempt = 0;
        let res = loop {
            attempt += 1;
            let r = self
                .client
                .post(url.clone())
                .header("Accept", "application/json")
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", cred.client_id.as_str()),
                    ("client_secret", cred.client_secret.secret()),
                ])
                .send()
                .await;
            match r {
                Ok(r) if http::is_retryable_status(r.status()) && attempt < policy.max_attempts => {
                    let wait = match server_wait(&r) {
                        Some(w) if w > policy.max_server_wait => break r,
                        Some(w) => w.max(Duration::from_millis(50)),
                        None => policy.backoff(attempt),
                    };
                    tokio::time::sleep(wait).await;
                }
                Ok(r) => break r,
                Err(e) if http::is_retryable_error(&e) && attempt < policy.max_attempts => {
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
                Err(e) => bail!("OpsRamp token request failed: {}", without_url(&e)),
            }
        };
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "OpsRamp token request refused: HTTP {} {}",
                status.as_u16(),
                token_refusal_text(&body)
            );
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow!("OpsRamp token response has no access_token"))?;
        // A number in real responses, a string in the published spec: accept both.
        let expires_in = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        let secret = Secret::new(token.to_string());
        *guard = Some((
            secret.clone(),
            Instant::now() + Duration::from_secs(expires_in),
        ));
        Ok(secret)
    }

    /// Sends one call: 407 (token expired) or an invalid-token 401 re-authenticates once;
    /// 429 waits until `X-RateLimit-Reset`; 5xx and time-outs back off; all bounded.
    async fn call(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.call_with(method, url, body, true).await
    }

    /// `retry_ambiguous = false` is for calls that must not be repeated blindly (creating an
    /// incident, adding a response): after a time-out or a 5xx the first call may have taken
    /// effect, so an [`Ambiguous`] error is returned for the caller to look before resending.
    /// Refusals that happen before any effect (429, 407, connection errors) are still retried.
    async fn call_with(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
        retry_ambiguous: bool,
    ) -> anyhow::Result<Value> {
        let policy = &self.cfg.retry;
        let mut attempt = 0u32;
        let mut reauthed = false;
        let what = format!("OpsRamp {} {}", method, url.path());
        loop {
            attempt += 1;
            let token = self.token(false).await?;
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(token.secret())
                .header("Accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let wait = match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    if status.is_success() {
                        let text = r.text().await.context("reading OpsRamp response")?;
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_str(&text)
                            .map_err(|e| anyhow!("{what}: response is not JSON: {e}"));
                    }
                    let server_wait = server_wait(&r);
                    let text = r.text().await.unwrap_or_default();
                    let invalid_token =
                        status == StatusCode::UNAUTHORIZED && text.contains("invalid_token");
                    if (status.as_u16() == 407 || invalid_token) && !reauthed {
                        reauthed = true;
                        self.token(true).await?;
                        continue;
                    }
                    if !http::is_retryable_status(status) || attempt >= policy.max_attempts {
                        bail!(
                            "{what}: HTTP {} after {attempt} attempt(s): {}",
                            status.as_u16(),
                            http::body_excerpt(&text)
                        );
                    }
                    if !retry_ambiguous && status.is_server_error() {
                        return Err(anyhow::Error::new(Ambiguous(format!(
                            "{what}: HTTP {}: {}",
                            status.as_u16(),
                            http::body_excerpt(&text)
                        ))));
                    }
                    match server_wait {
                        Some(w) if w > policy.max_server_wait => {
                            bail!(
                                "{what}: throttled for {:.0} s; the step will be retried",
                                w.as_secs_f64()
                            )
                        }
                        Some(w) => w.max(Duration::from_millis(50)),
                        None => policy.backoff(attempt),
                    }
                }
                Err(e) => {
                    if !http::is_retryable_error(&e) || attempt >= policy.max_attempts {
                        bail!("{what}: {} after {attempt} attempt(s)", without_url(&e));
                    }
                    if !retry_ambiguous && !e.is_connect() {
                        return Err(anyhow::Error::new(Ambiguous(format!(
                            "{what}: {}",
                            without_url(&e)
                        ))));
                    }
                    policy.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends a non-idempotent POST; after an ambiguous failure, OpsRamp is asked whether it
    /// took effect (`probe`) before the POST is sent again.
    async fn post_once(
        &self,
        url: url::Url,
        body: &Value,
        probe: Probe<'_>,
    ) -> anyhow::Result<Value> {
        let policy = &self.cfg.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self
                .call_with(Method::POST, url.clone(), Some(body), false)
                .await
            {
                Err(e) if e.is::<Ambiguous>() && attempt < policy.max_attempts => {
                    tracing::warn!(error = %e, "OpsRamp call may have taken effect; looking before resending");
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    let found = match probe {
                        Probe::Incident { ext_ticket_id } => self
                            .find_by_ext_id(ext_ticket_id)
                            .await?
                            .map(|id| json!({ "id": id })),
                        Probe::Response {
                            id,
                            ext_response_id,
                        } => self
                            .has_response(id, ext_response_id)
                            .await?
                            .then_some(Value::Null),
                        Probe::ServiceRequest { ext_ticket_id } => self
                            .find_service_request(ext_ticket_id)
                            .await?
                            .map(|id| json!({ "id": id })),
                        Probe::ServiceRequestResponse {
                            id,
                            ext_response_id,
                        } => crate::ports::Inquiries::has_note(self, id, ext_response_id)
                            .await?
                            .then_some(Value::Null),
                    };
                    if let Some(v) = found {
                        return Ok(v);
                    }
                }
                Err(e) if e.is::<Ambiguous>() => {
                    bail!("{e} (after {attempt} attempt(s), OpsRamp searched before each resend)")
                }
                other => return other,
            }
        }
    }

    /// Pages through a search envelope, calling `f` on each result until it returns true.
    async fn search_until(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        mut f: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<bool> {
        let mut page = 1u32;
        loop {
            let mut url = self.url(segments)?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("pageNo", &page.to_string());
                q.append_pair("pageSize", "100");
                for (k, v) in query {
                    q.append_pair(k, v);
                }
            }
            let body = self.call(Method::GET, url, None).await?;
            let results = body
                .get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if results.iter().any(&mut f) {
                return Ok(true);
            }
            let next = body
                .get("nextPage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let total_pages = body.get("totalPages").and_then(Value::as_u64).unwrap_or(0);
            if !next || results.is_empty() || u64::from(page) >= total_pages.max(1) || page >= 1000
            {
                return Ok(false);
            }
            page += 1;
        }
    }
}

/// How to find out whether a POST that got no clear answer took effect.
#[derive(Clone, Copy)]
enum Probe<'a> {
    Incident {
        ext_ticket_id: &'a str,
    },
    Response {
        id: &'a str,
        ext_response_id: &'a str,
    },
    /// A service request by `extTicketId` (monthly reports).
    ServiceRequest {
        ext_ticket_id: &'a str,
    },
    /// A response on a service request by `extTicketResponseId`.
    ServiceRequestResponse {
        id: &'a str,
        ext_response_id: &'a str,
    },
}

/// A failure after which a request may or may not have taken effect on the server.
#[derive(Debug)]
struct Ambiguous(String);

impl std::fmt::Display for Ambiguous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Ambiguous {}

/// How long the server asked us to wait: until `X-RateLimit-Reset` (epoch seconds) on a 429,
/// else `Retry-After` if sent.
fn server_wait(r: &reqwest::Response) -> Option<Duration> {
    let retry_after = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(http::parse_retry_after);
    if r.status() != StatusCode::TOO_MANY_REQUESTS {
        return retry_after;
    }
    r.headers()
        .get("X-RateLimit-Reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|epoch| epoch.is_finite())
        .map(|epoch| {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            Duration::from_secs_f64((epoch - now).clamp(0.0, 86_400.0))
        })
        .or(retry_after)
}

/// What a refused token request says (`{"error","error_description"}`): the description,
/// else the error, cut and cleaned; empty when neither is a string. Public so the fuzz
/// target `error_bodies` drives it.
pub fn token_refusal_text(body: &Value) -> String {
    body.get("error_description")
        .or_else(|| body.get("error"))
        .and_then(Value::as_str)
        .map(http::body_excerpt)
        .unwrap_or_default()
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), u.path());
    }
    s
}

fn ticket_id(v: &Value) -> anyhow::Result<String> {
    v.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("OpsRamp answered without a usable incident id"))
}

#[async_trait]
impl Tickets for OpsRampClient {
    async fn find_by_ext_id(&self, ext: &str) -> anyhow::Result<Option<String>> {
        let mut found = None;
        self.search_until(
            &["incidents", "search"],
            &[("queryString", &format!("extTicketId:{ext}"))],
            |r| {
                // The search is OpsRamp's; exactness is checked here.
                if r.get("extTicketId").and_then(Value::as_str) == Some(ext) {
                    found = ticket_id(r).ok();
                    found.is_some()
                } else {
                    false
                }
            },
        )
        .await?;
        Ok(found)
    }

    async fn create(&self, t: &NewTicket) -> anyhow::Result<String> {
        let mut body = json!({
            "subject": t.subject,
            "description": t.description,
            "priority": t.priority,
            "extTicketId": t.ext_ticket_id,
        });
        if let Some(to) = &t.to_email {
            body["toEmail"] = json!(to);
        }
        if let Some(cc) = &t.cc {
            body["cc"] = json!(cc);
        }
        // A create that timed out or got a 5xx may still have made the incident: find it by
        // extTicketId before creating again, or the customer gets two tickets.
        let v = self
            .post_once(
                self.url(&["incidents"])?,
                &body,
                Probe::Incident {
                    ext_ticket_id: &t.ext_ticket_id,
                },
            )
            .await?;
        ticket_id(&v)
    }

    async fn update(&self, id: &str, u: &TicketUpdate) -> anyhow::Result<()> {
        let mut body = json!({});
        if let Some(s) = &u.subject {
            body["subject"] = json!(s);
        }
        if let Some(p) = &u.priority {
            body["priority"] = json!(p);
        }
        self.call(Method::POST, self.url(&["incidents", id])?, Some(&body))
            .await?;
        Ok(())
    }

    async fn add_response(
        &self,
        id: &str,
        text: &str,
        ext_response_id: &str,
    ) -> anyhow::Result<()> {
        let body = json!({
            "description": text,
            "internal": false,
            "extTicketResponseId": ext_response_id,
        });
        // Same for a response: a second copy would be a second mail to the customer.
        self.post_once(
            self.url(&["incidents", id, "responses"])?,
            &body,
            Probe::Response {
                id,
                ext_response_id,
            },
        )
        .await?;
        Ok(())
    }

    async fn has_response(&self, id: &str, ext_response_id: &str) -> anyhow::Result<bool> {
        self.search_until(&["incidents", id, "responses", "search"], &[], |r| {
            r.get("extTicketResponseId").and_then(Value::as_str) == Some(ext_response_id)
        })
        .await
    }
}

/// Our id for an incident in OpsRamp: stable, tenant-scoped, and limited to characters that
/// survive OpsRamp's `queryString` syntax (`key:value+key:value`).
pub fn ext_ticket_id(tenant: &str, incident_key: &str) -> String {
    let (kind, id) = match incident_key.split_once(':') {
        Some(("incident", id)) => ("inc", id),
        Some(("alert", id)) => ("alr", id),
        _ => ("key", incident_key),
    };
    let mut s = format!("mss-{tenant}-{kind}-");
    for b in id.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => s.push(b as char),
            _ => s.push_str(&format!(".{b:02x}")),
        }
    }
    s
}

/// OpsRamp's timestamp format, `yyyy-MM-ddTHH:mm:ss+0000`.
fn parse_opsramp_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s.trim()))
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

fn inquiry_from(v: &Value) -> Option<crate::domain::inquiry::Inquiry> {
    let id = v.get("id")?.as_str()?.to_string();
    let received = parse_opsramp_time(v.get("createdDate")?.as_str()?)?;
    let fields = v
        .get("customFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    Some((
                        f.get("name")?.as_str()?.to_string(),
                        f.get("value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(crate::domain::inquiry::Inquiry {
        id,
        subject: v
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        status: v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        received,
        due: v
            .get("dueDate")
            .and_then(Value::as_str)
            .and_then(parse_opsramp_time),
        fields,
    })
}

#[async_trait]
impl crate::ports::Inquiries for OpsRampClient {
    async fn open_inquiries(&self) -> anyhow::Result<Vec<crate::domain::inquiry::Inquiry>> {
        let mut out = Vec::new();
        let mut bad = 0usize;
        self.search_until(
            &["serviceRequests", "search"],
            &[("queryString", "status:New,Open,Pending,On Hold")],
            |r| {
                if is_our_notice(r) {
                    return false;
                }
                match inquiry_from(r) {
                    Some(i) => out.push(i),
                    None => bad += 1,
                }
                false
            },
        )
        .await?;
        if bad > 0 {
            tracing::warn!(
                count = bad,
                "service requests without id or createdDate were skipped"
            );
        }
        Ok(out)
    }

    async fn set_due(&self, id: &str, due: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        let body = json!({"dueDate": due.format("%Y-%m-%dT%H:%M:%S+0000").to_string()});
        self.call(
            Method::POST,
            self.url(&["serviceRequests", id])?,
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn add_internal_note(&self, id: &str, text: &str, ext_id: &str) -> anyhow::Result<()> {
        let body = json!({
            "description": text,
            "internal": true,
            "creator": self.cred.get().await?.client_id,
            "extTicketResponseId": ext_id,
        });
        // Not retried blindly after an ambiguous failure: the tracker's once-record makes
        // the next run look for the note before posting it again.
        self.call_with(
            Method::POST,
            self.url(&["serviceRequests", id, "responses"])?,
            Some(&body),
            false,
        )
        .await?;
        Ok(())
    }

    async fn has_note(&self, id: &str, ext_id: &str) -> anyhow::Result<bool> {
        self.search_until(&["serviceRequests", id, "responses", "search"], &[], |r| {
            r.get("extTicketResponseId").and_then(Value::as_str) == Some(ext_id)
        })
        .await
    }
}

/// A service request we sent ourselves — an activity digest (`mss-<tenant>-digest-<yyyymmdd>`,
/// `steps::digest`) or a monthly report (`mss-<tenant>-report-<yyyymm>`,
/// `steps::deliver_report`): a notice to the customer, not an inquiry, so the tracker sets no
/// due date on it (an update would mail the customer again) and never reminds or escalates.
fn is_our_notice(r: &Value) -> bool {
    r.get("extTicketId")
        .and_then(Value::as_str)
        .is_some_and(|e| {
            e.starts_with("mss-") && (e.contains("-digest-") || e.contains("-report-"))
        })
}

/// Activity digests go out as one service request each, mailed by OpsRamp to `toEmail`/`cc`.
#[async_trait]
impl crate::steps::digest::DigestDelivery for OpsRampClient {
    async fn find(&self, ext_ticket_id: &str) -> anyhow::Result<Option<String>> {
        self.find_service_request(ext_ticket_id).await
    }

    async fn create(&self, n: &crate::steps::digest::DigestNotice) -> anyhow::Result<String> {
        let mut body = json!({
            "subject": n.subject,
            "description": n.description,
            "extTicketId": n.ext_ticket_id,
        });
        if let Some(to) = &n.to_email {
            body["toEmail"] = json!(to);
        }
        if let Some(cc) = &n.cc {
            body["cc"] = json!(cc);
        }
        // A second request would be a second mail: after a time-out or a 5xx, look for it by
        // extTicketId before posting again.
        let v = self
            .post_once(
                self.url(&["serviceRequests"])?,
                &body,
                Probe::ServiceRequest {
                    ext_ticket_id: &n.ext_ticket_id,
                },
            )
            .await?;
        ticket_id(&v)
    }
}

// ------------------------------------------------------------ monthly report delivery

/// `attachments: [{name, file}]` with the file in standard base64, as the API notes give it.
fn attachments_json(files: &[crate::steps::deliver_report::Attachment]) -> Value {
    use base64::Engine as _;
    Value::Array(
        files
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "file": base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                })
            })
            .collect(),
    )
}

impl OpsRampClient {
    /// The service request with exactly this `extTicketId` (the search is OpsRamp's; the
    /// exact match is checked here, as for incidents).
    async fn find_service_request(&self, ext: &str) -> anyhow::Result<Option<String>> {
        let mut found = None;
        self.search_until(
            &["serviceRequests", "search"],
            &[("queryString", &format!("extTicketId:{ext}"))],
            |r| {
                if r.get("extTicketId").and_then(Value::as_str) == Some(ext) {
                    found = ticket_id(r).ok();
                    found.is_some()
                } else {
                    false
                }
            },
        )
        .await?;
        Ok(found)
    }
}

/// Monthly reports go out as service requests (the customer's contacts are mailed by OpsRamp
/// on create and on each non-internal response), with the page attached.
#[async_trait]
impl crate::steps::deliver_report::ReportDelivery for OpsRampClient {
    async fn find(&self, ext_ticket_id: &str) -> anyhow::Result<Option<String>> {
        self.find_service_request(ext_ticket_id).await
    }

    async fn create(
        &self,
        sr: &crate::steps::deliver_report::NewServiceRequest,
    ) -> anyhow::Result<String> {
        let mut body = json!({
            "subject": sr.subject,
            "description": sr.description,
            "extTicketId": sr.ext_ticket_id,
            "dueDate": sr.due.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
            "attachments": attachments_json(&sr.attachments),
        });
        if let Some(to) = &sr.to_email {
            body["toEmail"] = json!(to);
        }
        if let Some(cc) = &sr.cc {
            body["cc"] = json!(cc);
        }
        // A second request would be a second mail with the report: after a time-out or a 5xx,
        // look for it by extTicketId before posting again.
        let v = self
            .post_once(
                self.url(&["serviceRequests"])?,
                &body,
                Probe::ServiceRequest {
                    ext_ticket_id: &sr.ext_ticket_id,
                },
            )
            .await?;
        ticket_id(&v)
    }

    async fn has_response(&self, id: &str, ext_response_id: &str) -> anyhow::Result<bool> {
        crate::ports::Inquiries::has_note(self, id, ext_response_id).await
    }

    async fn add_response_with_attachment(
        &self,
        id: &str,
        text: &str,
        ext_response_id: &str,
        attachment: &crate::steps::deliver_report::Attachment,
    ) -> anyhow::Result<()> {
        let body = json!({
            "description": text,
            "internal": false,
            "extTicketResponseId": ext_response_id,
            "attachments": attachments_json(std::slice::from_ref(attachment)),
        });
        self.post_once(
            self.url(&["serviceRequests", id, "responses"])?,
            &body,
            Probe::ServiceRequestResponse {
                id,
                ext_response_id,
            },
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read when first asked for, once, by every clone; a failed read is tried again.
    #[tokio::test]
    async fn a_lazy_credential_is_read_once_on_first_use() {
        let reads = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = reads.clone();
        let cred = SharedCredential::lazy(Arc::new(move || {
            let n = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    anyhow::bail!("secret store unreachable");
                }
                Ok(OpsRampCredential {
                    client_id: "mss".into(),
                    client_secret: Secret::new("s3cr3t".to_string()),
                })
            })
        }));
        let client = OpsRampClient::new(
            OpsRampConfig::new("https://example.api.opsramp.com", "client_1"),
            cred.clone(),
        )
        .unwrap();
        assert!(
            !cred.is_loaded(),
            "a client is built without reading the secret"
        );
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(client);
        assert!(cred.get().await.is_err());
        let other = cred.clone();
        assert_eq!(other.get().await.unwrap().client_id, "mss");
        assert_eq!(cred.get().await.unwrap().client_id, "mss");
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn ext_ids_are_query_safe() {
        assert_eq!(
            ext_ticket_id("kaede-shoji", "incident:1118"),
            "mss-kaede-shoji-inc-1118"
        );
        let hostile = ext_ticket_id("t1", "alert:a+b c:status:Closed");
        assert!(
            !hostile.contains('+') && !hostile.contains(' ') && !hostile.contains(':'),
            "{hostile}"
        );
        assert_ne!(
            ext_ticket_id("t1", "alert:a.b"),
            ext_ticket_id("t1", "alert:a_b")
        );
        assert_ne!(
            ext_ticket_id("t1", "incident:1-2"),
            ext_ticket_id("t1", "incident:1:2")
        );
    }
}
