//! OpsRamp token endpoints and the ticket API under `/api/v2/tenants/{tenantId}/`: incidents
//! (`incidents…`, ids `INC` + 10 digits) and service requests (`serviceRequests…`, ids `SRQ` +
//! 10 digits, their own numbering). The spec gives service requests "the same shapes" as
//! incidents, so one set of handlers serves both, told apart by a [`Kind`] extension.
//!
//! Not documented by OpsRamp, chosen here: validation errors are 400
//! `{"code":"BAD_REQUEST","message":"…"}`; unknown tenant / ticket / path are 404
//! `{"code":"NOT_FOUND","message":"…"}`; the default priority is `Normal`; search results are
//! ordered by `createdDate` ascending, ties (and so normally everything) in creation order;
//! `pageSize` defaults to 100 and larger values are clamped to 100; both kinds use the same
//! statuses and transitions; `customFields` on update are merged into the stored list (same `id`,
//! else same `name`, replaces; a new one is appended) rather than replacing it.
//!
//! Attachments (`attachments: [{name, file}]` on create and on responses): `name` must be a
//! non-empty string and `file` standard base64 (with padding), else 400 — OpsRamp documents
//! neither its checks nor how it serves attachments back, so they are kept only in
//! [`SimTicket::attachments`] / [`SimResponse::attachments`] for tests, never echoed.
//!
//! Simulator-only: `simReceivedAt` (RFC 3339) on create sets `createdDate`, so tests can file a
//! ticket "received" at a chosen time. It is not stored or echoed, and real OpsRamp has no such
//! field.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Map, Value};

use crate::faults::{bearer, opsramp_oauth_error};
use crate::graph::parse_form;
use crate::state::{Kind, Store};
use crate::{lock, Endpoint, Inner, SimAttachment, SimResponse, SimTicket};

const TOKEN_EXPIRES_IN: u64 = 7199;
const PRIORITIES: &[&str] = &["Low", "Normal", "High", "Urgent", "Very Low"];
const STATUSES: &[&str] = &["New", "Open", "Pending", "Resolved", "Closed", "On Hold"];
/// `New` is only an initial state: it is never offered as a transition target.
const TARGET_STATUSES: &[&str] = &["Open", "Pending", "Resolved", "Closed", "On Hold"];
const DEFAULT_PRIORITY: &str = "Normal";
const MAX_PAGE_SIZE: usize = 100;
/// OpsRamp's wire format for timestamps (`yyyy-MM-ddTHH:mm:ss+0000`).
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S+0000";
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
    Router::new()
        .route("/tenancy/auth/oauth/token", post(token))
        .route("/auth/oauth/token", post(token))
        .merge(ticket_routes(Kind::Incident))
        .merge(ticket_routes(Kind::ServiceRequest))
}

/// The same seven routes for either kind; the handlers read the kind from the extension.
fn ticket_routes(kind: Kind) -> Router<Arc<Inner>> {
    let api = format!("/api/v2/tenants/{{tenant}}/{}", kind.segment());
    Router::new()
        .route(&api, post(create_ticket))
        .route(&format!("{api}/search"), get(search_tickets))
        .route(
            &format!("{api}/{{id}}"),
            get(get_ticket).post(update_ticket),
        )
        .route(&format!("{api}/{{id}}/responses"), post(add_response))
        .route(
            &format!("{api}/{{id}}/responses/search"),
            get(search_responses),
        )
        .route(&format!("{api}/{{id}}/close"), post(close_ticket))
        .layer(Extension(kind))
}

/// Wall clock, not the simulated clock: the sim clock drives alert visibility only, and tickets
/// are stamped when the client actually acted.
fn stamp() -> String {
    chrono::Utc::now().format(TIME_FORMAT).to_string()
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

fn ticket_not_found(kind: Kind, id: &str) -> Reject {
    not_found(format!("{} {id} not found", kind.noun()))
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
        if tenant != self.opsramp_tenant_id
            && !lock(&self.opsramp_clients).iter().any(|c| c == tenant)
        {
            return Err(not_found(format!("Tenant {tenant} not found")));
        }
        Ok(())
    }

    /// Mutates a copy and persists it before swapping it in, so a failed write leaves the
    /// in-memory state and the file in agreement (and the client sees a 500).
    ///
    /// Without a state file there is nothing to keep in agreement, and every closure refuses
    /// before it changes anything, so the live store is changed in place: the copy made each
    /// ticket call O(tickets), and a side-by-side run with 10,000 tickets spent minutes copying.
    fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> Result<R, Reject>) -> Result<R, Reject> {
        let mut guard = lock(&self.store);
        if self.state_file.is_none() {
            return f(&mut guard);
        }
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

/// `dueDate` must be an OpsRamp timestamp; any numeric offset is accepted and the value is
/// stored normalised to UTC (`…+0000`), the form OpsRamp itself serves.
fn opt_due_date(obj: &Map<String, Value>) -> Result<Option<String>, Reject> {
    match opt_str(obj, "dueDate")? {
        None => Ok(None),
        Some(s) => match chrono::DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%z") {
            Ok(d) => Ok(Some(
                d.with_timezone(&chrono::Utc)
                    .format(TIME_FORMAT)
                    .to_string(),
            )),
            Err(_) => Err(bad_request(format!(
                "dueDate '{s}' is invalid; expected yyyy-MM-ddTHH:mm:ss+0000"
            ))),
        },
    }
}

/// `customFields`: `[{"id"?, "name", "value"}]` with `name` and `value` strings (`id` may be a
/// number or a string). Returned as given.
fn opt_custom_fields(obj: &Map<String, Value>) -> Result<Option<Vec<Value>>, Reject> {
    let fields = match obj.get("customFields") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad_request("customFields must be an array")),
    };
    for (i, f) in fields.iter().enumerate() {
        let Value::Object(f) = f else {
            return Err(bad_request(format!("customFields[{i}] must be an object")));
        };
        for key in ["name", "value"] {
            if !f.get(key).is_some_and(Value::is_string) {
                return Err(bad_request(format!(
                    "customFields[{i}].{key} is required and must be a string"
                )));
            }
        }
        if !matches!(
            f.get("id"),
            None | Some(Value::Null | Value::Number(_) | Value::String(_))
        ) {
            return Err(bad_request(format!(
                "customFields[{i}].id must be a number or a string"
            )));
        }
    }
    Ok(Some(fields.clone()))
}

/// Whether a ticket was created under `tenant` (a ticket without a recorded client is the
/// primary client's).
fn belongs(t: &SimTicket, inner: &Inner, tenant: &str) -> bool {
    match t.client() {
        "" => tenant == inner.opsramp_tenant_id,
        c => c == tenant,
    }
}

/// The ticket's index when it exists under `tenant`; another client's ticket is not found.
fn find_for(store: &Store, inner: &Inner, tenant: &str, kind: Kind, id: &str) -> Option<usize> {
    store
        .find(kind, id)
        .filter(|&i| belongs(&store.list(kind)[i], inner, tenant))
}

/// Same `id` (when both have one), else same `name`, replaces the stored field; others append.
fn merge_custom_fields(stored: &mut Vec<Value>, sent: Vec<Value>) {
    let key = |f: &Value, k: &str| f.get(k).filter(|v| !v.is_null()).cloned();
    for f in sent {
        let slot = stored
            .iter()
            .position(|s| match (key(s, "id"), key(&f, "id")) {
                (Some(a), Some(b)) => a == b,
                _ => key(s, "name") == key(&f, "name"),
            });
        match slot {
            Some(i) => stored[i] = f,
            None => stored.push(f),
        }
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

/// The validated optional fields that are stored in the ticket object as given (after
/// normalisation): everything in [`PASSTHROUGH`], with `dueDate` and `customFields` checked.
struct Extras {
    fields: Map<String, Value>,
    custom_fields: Option<Vec<Value>>,
}

impl Extras {
    fn parse(obj: &Map<String, Value>) -> Result<Extras, Reject> {
        let due = opt_due_date(obj)?;
        let custom_fields = opt_custom_fields(obj)?;
        let mut fields = Map::new();
        for key in PASSTHROUGH {
            if let Some(v) = obj.get(*key) {
                fields.insert((*key).into(), v.clone());
            }
        }
        fields.remove("customFields");
        if let Some(d) = due {
            fields.insert("dueDate".into(), json!(d));
        }
        Ok(Extras {
            fields,
            custom_fields,
        })
    }

    /// On create (`merge` false) the custom fields are taken as sent; on update they are merged
    /// into the stored ones.
    fn apply(self, to: &mut Value, merge: bool) {
        let Value::Object(to) = to else {
            return;
        };
        to.extend(self.fields);
        if let Some(sent) = self.custom_fields {
            let mut stored = match to.remove("customFields") {
                Some(Value::Array(a)) if merge => a,
                _ => Vec::new(),
            };
            merge_custom_fields(&mut stored, sent);
            to.insert("customFields".into(), Value::Array(stored));
        }
    }
}

/// `attachments`: absent or null → none; else an array of `{name, file}` (see the module doc).
fn opt_attachments(obj: &Map<String, Value>) -> Result<Vec<SimAttachment>, Reject> {
    use base64::Engine as _;
    let list = match obj.get("attachments") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad_request("attachments must be an array")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let Value::Object(a) = a else {
            return Err(bad_request(format!("attachments[{i}] must be an object")));
        };
        let name = match a.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
            _ => return Err(bad_request(format!("attachments[{i}].name is required"))),
        };
        let file = match a.get("file") {
            Some(Value::String(f)) => f.clone(),
            _ => return Err(bad_request(format!("attachments[{i}].file is required"))),
        };
        if base64::engine::general_purpose::STANDARD
            .decode(&file)
            .is_err()
        {
            return Err(bad_request(format!(
                "attachments[{i}].file is not valid base64"
            )));
        }
        out.push(SimAttachment { name, file });
    }
    Ok(out)
}

/// Simulator-only `simReceivedAt` (RFC 3339): the `createdDate` to give a new ticket.
fn sim_received_at(obj: &Map<String, Value>) -> Result<Option<String>, Reject> {
    match opt_str(obj, "simReceivedAt")? {
        None => Ok(None),
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s.trim()) {
            Ok(d) => Ok(Some(
                d.with_timezone(&chrono::Utc)
                    .format(TIME_FORMAT)
                    .to_string(),
            )),
            Err(_) => Err(bad_request(format!(
                "simReceivedAt '{s}' is not an RFC 3339 timestamp"
            ))),
        },
    }
}

/// `simReceivedAt` (simulator-only, see the module doc) also sets `updatedDate`, as a ticket
/// nobody touched since it was received would have.
async fn create_ticket(
    State(inner): State<Arc<Inner>>,
    Extension(kind): Extension<Kind>,
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
    let received = sim_received_at(&obj)?;
    let extras = Extras::parse(&obj)?;
    let attachments = opt_attachments(&obj)?;

    let raw = inner.mutate(|store| {
        let now = received.unwrap_or_else(stamp);
        let mut raw = json!({
            "client": {"uniqueId": tenant, "name": tenant},
        });
        extras.apply(&mut raw, false);
        let mut t = SimTicket {
            id: store.next_id(kind),
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
            attachments,
            raw,
        };
        sync_raw(&mut t);
        let raw = t.raw.clone();
        tracing::debug!(id = %t.id, kind = kind.segment(), "ticket created");
        store.list_mut(kind).push(t);
        Ok(raw)
    })?;
    Ok(axum::Json(raw).into_response())
}

async fn get_ticket(
    State(inner): State<Arc<Inner>>,
    Extension(kind): Extension<Kind>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    inner
        .api_gate(Endpoint::OpsRampGet, &headers, &tenant)
        .await?;
    let store = lock(&inner.store);
    match find_for(&store, &inner, &tenant, kind, &id) {
        Some(i) => Ok(axum::Json(store.list(kind)[i].raw.clone()).into_response()),
        None => Err(ticket_not_found(kind, &id)),
    }
}

/// `reasonsEnabled` is not modelled: a status change never requires a reason.
async fn update_ticket(
    State(inner): State<Arc<Inner>>,
    Extension(kind): Extension<Kind>,
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
    let extras = Extras::parse(&obj)?;

    let raw = inner.mutate(|store| {
        let i = find_for(store, &inner, &tenant, kind, &id)
            .ok_or_else(|| ticket_not_found(kind, &id))?;
        let t = &mut store.list_mut(kind)[i];
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
        extras.apply(&mut t.raw, true);
        t.updates += 1;
        t.updated = stamp();
        sync_raw(t);
        Ok(t.raw.clone())
    })?;
    Ok(axum::Json(raw).into_response())
}

/// Closing an already closed ticket succeeds unchanged (not documented; idempotence keeps
/// retried closes harmless). `reason`/`notes` are kept in the ticket object as the
/// simulator-only fields `closeReason`/`closeNotes` so tests can check what was sent.
async fn close_ticket(
    State(inner): State<Arc<Inner>>,
    Extension(kind): Extension<Kind>,
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
        let i = find_for(store, &inner, &tenant, kind, &id)
            .ok_or_else(|| ticket_not_found(kind, &id))?;
        let t = &mut store.list_mut(kind)[i];
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
    Extension(kind): Extension<Kind>,
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
    let attachments = opt_attachments(&obj)?;

    let resp = inner.mutate(|store| {
        let i = find_for(store, &inner, &tenant, kind, &id)
            .ok_or_else(|| ticket_not_found(kind, &id))?;
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
        let t = &mut store.list_mut(kind)[i];
        t.responses.push(SimResponse {
            description,
            internal,
            ext_ticket_response_id: ext_id,
            created: now.clone(),
            attachments,
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
struct TicketQuery {
    ext_ticket_id: Option<String>,
    statuses: Option<Vec<String>>,
    subject: Option<String>,
}

/// `key:value` terms are joined by `+`. A client that sends `%2B` delivers a literal '+', one
/// that sends a bare '+' delivers a space after form decoding, so both separate terms. A piece
/// without ':' continues the previous value with a space, so `status:New,On Hold` still works.
fn parse_query_string(qs: &str) -> Result<TicketQuery, Reject> {
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
    let mut q = TicketQuery::default();
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
async fn search_tickets(
    State(inner): State<Arc<Inner>>,
    Extension(kind): Extension<Kind>,
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
    let store = lock(&inner.store);
    let mut matches: Vec<&SimTicket> = store
        .list(kind)
        .iter()
        .filter(|t| {
            belongs(t, &inner, &tenant)
                && q.ext_ticket_id
                    .as_ref()
                    .is_none_or(|e| t.ext_ticket_id.as_ref() == Some(e))
                && q.statuses.as_ref().is_none_or(|s| s.contains(&t.status))
                && q.subject
                    .as_ref()
                    .is_none_or(|s| t.subject.to_lowercase().contains(s))
        })
        .collect();
    // Stable, and the fixed `…+0000` format sorts as text: creation order unless
    // `simReceivedAt` back-dated a ticket.
    matches.sort_by(|a, b| a.created.cmp(&b.created));
    let items: Vec<Value> = matches.into_iter().map(|t| t.raw.clone()).collect();
    drop(store);
    Ok(axum::Json(page_envelope(items, page_no, page_size)).into_response())
}

async fn search_responses(
    State(inner): State<Arc<Inner>>,
    Extension(kind): Extension<Kind>,
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
        if find_for(&store, &inner, &tenant, kind, &id).is_none() {
            return Err(ticket_not_found(kind, &id));
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
    fn attachments_are_checked_and_kept_as_sent() {
        let obj = |v: Value| json_object(v.to_string().as_bytes()).unwrap();
        let ok = opt_attachments(&obj(
            json!({"attachments": [{"name": "r.html", "file": "PGgxPg=="}]}),
        ))
        .unwrap();
        assert_eq!(ok[0].name, "r.html");
        assert_eq!(ok[0].bytes(), b"<h1>");
        assert!(opt_attachments(&obj(json!({}))).unwrap().is_empty());
        for bad in [
            json!({"attachments": {"name": "x"}}),
            json!({"attachments": [{"file": "PGgxPg=="}]}),
            json!({"attachments": [{"name": "x", "file": "not base64!"}]}),
        ] {
            assert!(opt_attachments(&obj(bad.clone())).is_err(), "{bad}");
        }
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
