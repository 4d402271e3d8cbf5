//! OpsRamp token endpoints and the incident API under `/api/v2/tenants/{tenantId}/`.
//!
//! Not documented by OpsRamp, chosen here: validation errors are 400
//! `{"code":"BAD_REQUEST","message":"…"}`; unknown tenant / incident / path are 404
//! `{"code":"NOT_FOUND","message":"…"}`; the default priority is `Normal`; search results come in
//! creation order; `pageSize` defaults to 100 and larger values are clamped to 100.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::faults::{bearer, opsramp_oauth_error};
use crate::graph::parse_form;
use crate::state::Store;
use crate::{lock, Endpoint, Inner, SimResponse, SimTicket};

const TOKEN_EXPIRES_IN: u64 = 7199;
const PRIORITIES: &[&str] = &["Low", "Normal", "High", "Urgent", "Very Low"];
const STATUSES: &[&str] = &["New", "Open", "Pending", "Resolved", "Closed", "On Hold"];
/// `New` is only an initial state: it is never offered as a transition target.
const TARGET_STATUSES: &[&str] = &["Open", "Pending", "Resolved", "Closed", "On Hold"];
const DEFAULT_PRIORITY: &str = "Normal";
const MAX_PAGE_SIZE: usize = 100;
/// Documented optional create fields that are stored and echoed but otherwise not interpreted.
const PASSTHROUGH: &[&str] = &[
    "category",
    "subCategory",
    "requester",
    "assignedUser",
    "assigneeGroup",
    "resources",
    "customFields",
    "alertId",
    "parentId",
    "dueDate",
    "businessImpact",
    "urgency",
];

/// Boxed so every `Result` in this module stays small (an axum `Response` is >100 bytes).
#[derive(Debug)]
struct Reject(Box<Response>);

impl From<Response> for Reject {
    fn from(r: Response) -> Self {
        Reject(Box::new(r))
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        *self.0
    }
}

type ApiResult = Result<Response, Reject>;

pub(crate) fn router() -> Router<Arc<Inner>> {
    let api = "/api/v2/tenants/{tenant}/incidents";
    Router::new()
        .route("/tenancy/auth/oauth/token", post(token))
        .route("/auth/oauth/token", post(token))
        .route(api, post(create_incident))
        .route(&format!("{api}/search"), get(search_incidents))
        .route(
            &format!("{api}/{{id}}"),
            get(get_incident).post(update_incident),
        )
        .route(&format!("{api}/{{id}}/responses"), post(add_response))
        .route(
            &format!("{api}/{{id}}/responses/search"),
            get(search_responses),
        )
        .route(&format!("{api}/{{id}}/close"), post(close_incident))
}

/// OpsRamp's wire format for timestamps. Wall clock, not the simulated clock: the sim clock
/// drives alert visibility only, and tickets are stamped when the client actually acted.
fn stamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S+0000")
        .to_string()
}

fn bad_request(message: impl Into<String>) -> Reject {
    Reject::from(
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "BAD_REQUEST", "message": message.into()})),
        )
            .into_response(),
    )
}

fn not_found(message: impl Into<String>) -> Reject {
    Reject::from(
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"code": "NOT_FOUND", "message": message.into()})),
        )
            .into_response(),
    )
}

fn invalid_token() -> Response {
    opsramp_oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "Invalid access token",
    )
}

async fn token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    inner.count(|s| s.opsramp_tokens += 1);
    if let Some(r) = inner.fault_gate(Endpoint::OpsRampToken, &headers).await {
        return r;
    }
    let form = parse_form(&body);
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        other => {
            return opsramp_oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {}", other.unwrap_or("")),
            )
        }
    }
    let id_ok = form.get("client_id") == Some(&inner.opsramp_client_id);
    let secret_ok = form.get("client_secret") == Some(&inner.opsramp_client_secret);
    if !(id_ok && secret_ok) {
        return opsramp_oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Bad API credentials",
        );
    }
    let token = format!("simtok{}", crate::random_token(42));
    lock(&inner.opsramp_tokens).insert(
        token.clone(),
        Instant::now() + Duration::from_secs(TOKEN_EXPIRES_IN),
    );
    tracing::debug!("opsramp token issued");
    axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": TOKEN_EXPIRES_IN,
        "scope": "global:manage",
    }))
    .into_response()
}

impl Inner {
    /// Authentication is checked before the tenant, like a real gateway: an anonymous caller
    /// learns nothing about which tenants exist.
    async fn api_gate(
        &self,
        ep: Endpoint,
        headers: &HeaderMap,
        tenant: &str,
    ) -> Result<(), Reject> {
        self.count(|s| s.opsramp_requests += 1);
        if let Some(r) = self.fault_gate(ep, headers).await {
            return Err(r.into());
        }
        let Some(token) = bearer(headers) else {
            return Err(invalid_token().into());
        };
        let valid = lock(&self.opsramp_tokens)
            .get(token)
            .is_some_and(|exp| *exp > Instant::now());
        if !valid {
            return Err(invalid_token().into());
        }
        if tenant != self.opsramp_tenant_id {
            return Err(not_found(format!("Tenant {tenant} not found")));
        }
        Ok(())
    }

    /// Mutates a copy and persists it before swapping it in, so a failed write leaves the
    /// in-memory state and the file in agreement (and the client sees a 500).
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> Result<R, Reject>) -> Result<R, Reject> {
        let mut guard = lock(&self.store);
        let mut next = guard.clone();
        let r = f(&mut next)?;
        if let Some(path) = &self.state_file {
            if let Err(e) = next.save(path) {
                tracing::error!(error = %format!("{e:#}"), "persisting simulator state failed");
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(
                        json!({"code": "INTERNAL_ERROR", "message": "state could not be saved"}),
                    ),
                )
                    .into_response()
                    .into());
            }
        }
        *guard = next;
        Ok(r)
    }
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, Reject> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("request body must be a JSON object")),
        Err(e) => Err(bad_request(format!("malformed JSON: {e}"))),
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Reject> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad_request(format!("{key} must be a string"))),
    }
}

fn required_str(obj: &Map<String, Value>, key: &str) -> Result<String, Reject> {
    match opt_str(obj, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(bad_request(format!("{key} is required"))),
    }
}

fn opt_priority(obj: &Map<String, Value>) -> Result<Option<String>, Reject> {
    match opt_str(obj, "priority")? {
        None => Ok(None),
        Some(p) if PRIORITIES.contains(&p.as_str()) => Ok(Some(p)),
        Some(p) => Err(bad_request(format!(
            "priority '{p}' is invalid; allowed: {}",
            PRIORITIES.join(", ")
        ))),
    }
}

fn allowed_status(current: &str) -> Vec<&'static str> {
    TARGET_STATUSES
        .iter()
        .copied()
        .filter(|s| *s != current)
        .collect()
}

/// Keeps `raw` (what GET serves) in step with the typed fields tests read.
fn sync_raw(t: &mut SimTicket) {
    if !t.raw.is_object() {
        t.raw = json!({});
    }
    let Value::Object(raw) = &mut t.raw else {
        return;
    };
    raw.insert("id".into(), json!(t.id));
    raw.insert("subject".into(), json!(t.subject));
    raw.insert("description".into(), json!(t.description));
    raw.insert("priority".into(), json!(t.priority));
    raw.insert("status".into(), json!(t.status));
    raw.insert("createdDate".into(), json!(t.created));
    raw.insert("updatedDate".into(), json!(t.updated));
    raw.insert("allowedStatus".into(), json!(allowed_status(&t.status)));
    for (key, value) in [
        ("extTicketId", &t.ext_ticket_id),
        ("toEmail", &t.to_email),
        ("cc", &t.cc),
    ] {
        match value {
            Some(v) => raw.insert(key.into(), json!(v)),
            None => raw.remove(key),
        };
    }
}

fn copy_passthrough(from: &Map<String, Value>, to: &mut Value) {
    if let Value::Object(to) = to {
        for key in PASSTHROUGH {
            if let Some(v) = from.get(*key) {
                to.insert((*key).into(), v.clone());
            }
        }
    }
}

async fn create_incident(
    State(inner): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampCreate, &headers, &tenant)
        .await?;
    let obj = json_object(&body)?;
    let subject = required_str(&obj, "subject")?;
    let description = required_str(&obj, "description")?;
    let priority = opt_priority(&obj)?.unwrap_or_else(|| DEFAULT_PRIORITY.to_string());
    let ext_ticket_id = opt_str(&obj, "extTicketId")?;
    let to_email = opt_str(&obj, "toEmail")?;
    let cc = opt_str(&obj, "cc")?;

    let raw = inner.mutate(|store| {
        store.last_seq += 1;
        let now = stamp();
        let mut raw = json!({
            "client": {"uniqueId": tenant, "name": tenant},
        });
        copy_passthrough(&obj, &mut raw);
        let mut t = SimTicket {
            id: format!("INC{:010}", store.last_seq),
            subject,
            description,
            priority,
            status: "New".into(),
            ext_ticket_id,
            to_email,
            cc,
            created: now.clone(),
            updated: now,
            updates: 0,
            responses: Vec::new(),
            raw,
        };
        sync_raw(&mut t);
        let raw = t.raw.clone();
        tracing::debug!(id = %t.id, "incident created");
        store.tickets.push(t);
        Ok(raw)
    })?;
    Ok(axum::Json(raw).into_response())
}

async fn get_incident(
    State(inner): State<Arc<Inner>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampGet, &headers, &tenant)
        .await?;
    let store = lock(&inner.store);
    match store.find(&id) {
        Some(i) => Ok(axum::Json(store.tickets[i].raw.clone()).into_response()),
        None => Err(not_found(format!("Incident {id} not found"))),
    }
}

/// `reasonsEnabled` is not modelled: a status change never requires a reason.
async fn update_incident(
    State(inner): State<Arc<Inner>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampUpdate, &headers, &tenant)
        .await?;
    let obj = json_object(&body)?;
    let subject = match obj.get("subject") {
        None => None,
        Some(_) => Some(required_str(&obj, "subject")?),
    };
    let description = match obj.get("description") {
        None => None,
        Some(_) => Some(required_str(&obj, "description")?),
    };
    let priority = opt_priority(&obj)?;
    let status = opt_str(&obj, "status")?;
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(bad_request(format!("status '{s}' is invalid")));
        }
    }

    let raw = inner.mutate(|store| {
        let i = store
            .find(&id)
            .ok_or_else(|| not_found(format!("Incident {id} not found")))?;
        let t = &mut store.tickets[i];
        if let Some(s) = status {
            if !allowed_status(&t.status).contains(&s.as_str()) {
                return Err(bad_request(format!(
                    "status cannot change from '{}' to '{s}'; allowedStatus: {}",
                    t.status,
                    allowed_status(&t.status).join(", ")
                )));
            }
            t.status = s;
        }
        if let Some(s) = subject {
            t.subject = s;
        }
        if let Some(d) = description {
            t.description = d;
        }
        if let Some(p) = priority {
            t.priority = p;
        }
        copy_passthrough(&obj, &mut t.raw);
        t.updates += 1;
        t.updated = stamp();
        sync_raw(t);
        Ok(t.raw.clone())
    })?;
    Ok(axum::Json(raw).into_response())
}

/// Closing an already closed incident succeeds unchanged (not documented; idempotence keeps
/// retried closes harmless). `reason`/`notes` are kept in the incident object as the
/// simulator-only fields `closeReason`/`closeNotes` so tests can check what was sent.
async fn close_incident(
    State(inner): State<Arc<Inner>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampUpdate, &headers, &tenant)
        .await?;
    let obj = json_object(&body)?;
    let reason = opt_str(&obj, "reason")?;
    let notes = opt_str(&obj, "notes")?;
    let raw = inner.mutate(|store| {
        let i = store
            .find(&id)
            .ok_or_else(|| not_found(format!("Incident {id} not found")))?;
        let t = &mut store.tickets[i];
        if t.status != "Closed" {
            t.status = "Closed".into();
            t.updated = stamp();
            if let Value::Object(raw) = &mut t.raw {
                raw.insert("closeReason".into(), json!(reason));
                raw.insert("closeNotes".into(), json!(notes));
            }
            sync_raw(t);
        }
        Ok(t.raw.clone())
    })?;
    Ok(axum::Json(raw).into_response())
}

/// `internal: true` requires `creator`, as the API notes say.
async fn add_response(
    State(inner): State<Arc<Inner>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampResponse, &headers, &tenant)
        .await?;
    let obj = json_object(&body)?;
    let description = required_str(&obj, "description")?;
    let internal = match obj.get("internal") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_request("internal must be a boolean")),
    };
    let tags = opt_str(&obj, "tags")?;
    let ext_id = opt_str(&obj, "extTicketResponseId")?;
    if internal && obj.get("creator").is_none_or(Value::is_null) {
        return Err(bad_request("creator is required for internal responses"));
    }

    let resp = inner.mutate(|store| {
        let i = store
            .find(&id)
            .ok_or_else(|| not_found(format!("Incident {id} not found")))?;
        store.last_response_id += 1;
        let now = stamp();
        let mut resp = json!({
            "id": store.last_response_id,
            "description": description,
            "internal": internal,
            "createdDate": now,
        });
        if let Value::Object(m) = &mut resp {
            if let Some(t) = &tags {
                m.insert("tags".into(), json!(t));
            }
            if let Some(e) = &ext_id {
                m.insert("extTicketResponseId".into(), json!(e));
            }
            if let Some(c) = obj.get("creator") {
                m.insert("creator".into(), c.clone());
            }
        }
        let t = &mut store.tickets[i];
        t.responses.push(SimResponse {
            description,
            internal,
            ext_ticket_response_id: ext_id,
            created: now.clone(),
        });
        t.updates += 1;
        t.updated = now;
        sync_raw(t);
        store
            .response_objects
            .entry(id.clone())
            .or_default()
            .push(resp.clone());
        Ok(resp)
    })?;
    Ok(axum::Json(resp).into_response())
}

fn query_params(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn paging(params: &HashMap<String, String>) -> Result<(usize, usize), Reject> {
    let num = |key: &str, default: usize| -> Result<usize, Reject> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(bad_request(format!("{key} must be a positive integer"))),
            },
        }
    };
    Ok((
        num("pageNo", 1)?,
        num("pageSize", MAX_PAGE_SIZE)?.min(MAX_PAGE_SIZE),
    ))
}

fn page_envelope(items: Vec<Value>, page_no: usize, page_size: usize) -> Value {
    let total = items.len();
    let total_pages = total.div_ceil(page_size);
    let results: Vec<Value> = items
        .into_iter()
        .skip((page_no - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    let next_page = page_no < total_pages;
    let mut env = json!({
        "results": results,
        "totalResults": total,
        "orderBy": "createdDate",
        "pageNo": page_no,
        "pageSize": page_size,
        "totalPages": total_pages,
        "nextPage": next_page,
        "descendingOrder": false,
    });
    if next_page {
        if let Value::Object(m) = &mut env {
            m.insert("nextPageNo".into(), json!(page_no + 1));
        }
    }
    env
}

#[derive(Default)]
struct IncidentQuery {
    ext_ticket_id: Option<String>,
    statuses: Option<Vec<String>>,
    subject: Option<String>,
}

/// `key:value` terms are joined by `+`. A client that sends `%2B` delivers a literal '+', one
/// that sends a bare '+' delivers a space after form decoding, so both separate terms. A piece
/// without ':' continues the previous value with a space, so `status:New,On Hold` still works.
fn parse_query_string(qs: &str) -> Result<IncidentQuery, Reject> {
    let mut terms: Vec<(String, String)> = Vec::new();
    for piece in qs.split(['+', ' ']).filter(|p| !p.is_empty()) {
        match piece.split_once(':') {
            Some((k, v)) => terms.push((k.to_string(), v.to_string())),
            None => match terms.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(piece);
                }
                None => return Err(bad_request(format!("invalid queryString term '{piece}'"))),
            },
        }
    }
    let mut q = IncidentQuery::default();
    for (k, v) in terms {
        match k.as_str() {
            "extTicketId" => q.ext_ticket_id = Some(v),
            "status" => {
                q.statuses = Some(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "subject" => q.subject = Some(v.to_lowercase()),
            other => {
                return Err(bad_request(format!(
                    "queryString key '{other}' is not supported by the simulator"
                )))
            }
        }
    }
    Ok(q)
}

/// Subject matching is a case-insensitive substring match (OpsRamp's exact semantics are not
/// documented).
async fn search_incidents(
    State(inner): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampSearch, &headers, &tenant)
        .await?;
    let params = query_params(query);
    let (page_no, page_size) = paging(&params)?;
    let q = parse_query_string(params.get("queryString").map_or("", String::as_str))?;
    let items: Vec<Value> = lock(&inner.store)
        .tickets
        .iter()
        .filter(|t| {
            q.ext_ticket_id
                .as_ref()
                .is_none_or(|e| t.ext_ticket_id.as_ref() == Some(e))
                && q.statuses.as_ref().is_none_or(|s| s.contains(&t.status))
                && q.subject
                    .as_ref()
                    .is_none_or(|s| t.subject.to_lowercase().contains(s))
        })
        .map(|t| t.raw.clone())
        .collect();
    Ok(axum::Json(page_envelope(items, page_no, page_size)).into_response())
}

async fn search_responses(
    State(inner): State<Arc<Inner>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampSearch, &headers, &tenant)
        .await?;
    let params = query_params(query);
    let (page_no, page_size) = paging(&params)?;
    let items = {
        let store = lock(&inner.store);
        if store.find(&id).is_none() {
            return Err(not_found(format!("Incident {id} not found")));
        }
        store.response_objects.get(&id).cloned().unwrap_or_default()
    };
    Ok(axum::Json(page_envelope(items, page_no, page_size)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_accepts_both_separators() {
        for qs in [
            "extTicketId:ABC+status:New,Open",
            "extTicketId:ABC status:New,Open",
        ] {
            let q = parse_query_string(qs).unwrap();
            assert_eq!(q.ext_ticket_id.as_deref(), Some("ABC"));
            assert_eq!(q.statuses.unwrap(), vec!["New", "Open"]);
        }
        let q = parse_query_string("status:New,On Hold").unwrap();
        assert_eq!(q.statuses.unwrap(), vec!["New", "On Hold"]);
        assert!(parse_query_string("bogus:1").is_err());
    }

    #[test]
    fn envelope_pages() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let e = page_envelope(items, 2, 2);
        assert_eq!(e["results"], json!([2, 3]));
        assert_eq!(e["totalPages"], 3);
        assert_eq!(e["nextPageNo"], 3);
    }
}
