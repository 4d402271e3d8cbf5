//! Graph users, Identity Protection `confirmCompromised`, and the beta `analyzedEmails/remediate`
//! action (the API way to start a manual remediation of messages an AIR investigation flagged;
//! there is no API to approve pending AIR actions, so the simulator offers none).
//!
//! Choices made where the API facts are silent:
//! - `confirmCompromised` with a `userIds` entry that is not a known user of the token's tenant
//!   answers 404 in the Graph error shape (`Request_ResourceNotFound`) and confirms nobody; the
//!   real behaviour is not documented. Entries are object ids, matched case-insensitively (they
//!   are GUIDs); a UPN is not accepted there.
//! - The Identity Protection limit (1 request per second per tenant, 429 without `Retry-After`)
//!   is counted on wall time from the last request admitted, i.e. one that carried a valid
//!   Graph token, was not denied its permission and was not itself refused by the limit; a 400
//!   or 404 still uses the slot. `confirmCompromised` and `GET riskDetections` share it.
//! - `GET users/{id|upn}` matches the id or the userPrincipalName case-insensitively. `$select`
//!   returns exactly the named properties (names case-insensitive; a property the stored user
//!   lacks comes back `null`, as Graph does for unset properties); other `$` options answer 400.
//! - `analyzedEmails/remediate`: the facts say 204 + `Location`; the Graph beta reference page
//!   says 202 Accepted (see [`crate::Sim::set_email_remediate_status`]). The reference calls
//!   every parameter required yet its own example omits `approverUpn`, so the simulator requires
//!   only a valid `action` and a non-empty `analyzedEmails` and checks the others' types when
//!   present. Each analyzed email is `{networkMessageId, recipientEmailAddress}` (the facts) or
//!   `{id}` (the reference example); `remediateSendersCopy` may be a boolean or the string
//!   `"true"`/`"false"` (the reference example sends a string). `Location` has the shape of the
//!   reference example, `https://security.microsoft.com/action-center/history?filters=
//!   {"bulkId":["<guid>"]}&tid=<tenant>`, and is not served by the simulator.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::faults::graph_error;
use crate::graph::{bad_request, graph_unauthorized, token_tenant, GRAPH_RESOURCE};
use crate::{lock, Endpoint, Inner, Permission};

/// Identity Protection: 1 request per second per tenant.
const CONFIRM_INTERVAL: Duration = Duration::from_secs(1);
const REMEDIATION_ACTIONS: &[&str] = &[
    "softDelete",
    "hardDelete",
    "moveToJunk",
    "moveToInbox",
    "moveToDeletedItems",
];
const REMEDIATION_SEVERITIES: &[&str] = &["low", "medium", "high"];

pub(crate) struct DirectoryState {
    /// Tenant index -> users in the order added.
    users: HashMap<usize, Vec<Value>>,
    /// (tenant index, user object id) per confirmed user, in order.
    pub confirmed: Vec<(usize, String)>,
    last_confirm: HashMap<usize, Instant>,
    pub remediations: Vec<Value>,
    pub remediate_status: u16,
    /// Tenant index -> Identity Protection risk detections in the order added.
    risk_detections: HashMap<usize, Vec<Value>>,
}

impl Default for DirectoryState {
    fn default() -> Self {
        DirectoryState {
            users: HashMap::new(),
            confirmed: Vec::new(),
            last_confirm: HashMap::new(),
            remediations: Vec::new(),
            remediate_status: 204,
            risk_detections: HashMap::new(),
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl DirectoryState {
    /// Panics on set-up mistakes; see [`crate::Sim::add_users`].
    pub fn add_user(&mut self, tenant: usize, user: Value) {
        let id = match str_field(&user, "id") {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => panic!("add_users: user without a string \"id\": {user}"),
        };
        let list = self.users.entry(tenant).or_default();
        match list
            .iter_mut()
            .find(|u| str_field(u, "id").is_some_and(|x| x.eq_ignore_ascii_case(&id)))
        {
            Some(existing) => *existing = user,
            None => list.push(user),
        }
    }

    /// Panics on set-up mistakes; see [`crate::Sim::add_risk_detections`].
    pub fn add_risk_detection(&mut self, tenant: usize, detection: Value) {
        assert!(
            str_field(&detection, "id").is_some_and(|id| !id.is_empty()),
            "add_risk_detections: detection without a string \"id\": {detection}"
        );
        self.risk_detections
            .entry(tenant)
            .or_default()
            .push(detection);
    }

    fn user_by_id(&self, tenant: usize, id: &str) -> Option<&Value> {
        self.users
            .get(&tenant)?
            .iter()
            .find(|u| str_field(u, "id").is_some_and(|x| x.eq_ignore_ascii_case(id)))
    }

    fn user_by_id_or_upn(&self, tenant: usize, key: &str) -> Option<&Value> {
        self.user_by_id(tenant, key).or_else(|| {
            self.users.get(&tenant)?.iter().find(|u| {
                str_field(u, "userPrincipalName").is_some_and(|x| x.eq_ignore_ascii_case(key))
            })
        })
    }
}

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new()
        .route(
            "/graph/v1.0/identityProtection/riskyUsers/confirmCompromised",
            post(confirm_compromised),
        )
        .route("/graph/v1.0/users", get(list_users))
        .route("/graph/v1.0/users/{id}", get(get_user))
        .route(
            "/graph/v1.0/identityProtection/riskDetections",
            get(list_risk_detections),
        )
        .route(
            "/graph/beta/security/collaboration/analyzedEmails/remediate",
            post(remediate_emails),
        )
}

fn user_not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

const NOT_AN_OBJECT: &str = "The request body must be a JSON object.";

async fn confirm_compromised(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = inner
        .fault_gate(Endpoint::GraphConfirmCompromised, &headers)
        .await
    {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::IdentityRiskyUserReadWriteAll) {
        return r;
    }
    let mut state = lock(&inner.directory);
    let now = Instant::now();
    if let Some(last) = state.last_confirm.get(&tenant) {
        if now.duration_since(*last) < CONFIRM_INTERVAL {
            // No Retry-After here: Identity Protection sends none.
            return graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Identity Protection allows 1 request per second per tenant.",
            );
        }
    }
    state.last_confirm.insert(tenant, now);

    let Some(m) = json_object(&body) else {
        return bad_request(NOT_AN_OBJECT);
    };
    let ids: Vec<&str> = match m.get("userIds") {
        Some(Value::Array(a)) if !a.is_empty() => {
            match a.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                Some(ids) => ids,
                None => return bad_request("'userIds' must be a list of strings."),
            }
        }
        _ => return bad_request("'userIds' must be a non-empty list of user object ids."),
    };
    // Another tenant's user named here: refused below as unknown (404), and recorded.
    inner.isolation_check_ids(
        "POST identityProtection/riskyUsers/confirmCompromised",
        tenant,
        ids.iter().copied(),
    );
    let mut confirmed: Vec<String> = Vec::new();
    for id in ids {
        let Some(user) = state.user_by_id(tenant, id) else {
            return user_not_found(id);
        };
        let canonical = str_field(user, "id").unwrap_or(id).to_string();
        if !confirmed.contains(&canonical) {
            confirmed.push(canonical);
        }
    }
    tracing::debug!(tenant, users = confirmed.len(), "confirmCompromised");
    state
        .confirmed
        .extend(confirmed.into_iter().map(|u| (tenant, u)));
    StatusCode::NO_CONTENT.into_response()
}

async fn get_user(
    State(inner): State<Arc<Inner>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = inner.fault_gate(Endpoint::GraphUsers, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::UserReadAll) {
        return r;
    }
    let mut select: Option<Vec<String>> = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "$select" => {
                let names: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                select = (!names.is_empty()).then_some(names);
            }
            k if k.starts_with('$') => {
                return bad_request(&format!(
                    "Query option '{k}' is not supported by the simulator."
                ))
            }
            _ => {}
        }
    }
    // Another tenant's user: unknown here (404), and recorded.
    inner.isolation_check_ids("GET users/{id|upn}", tenant, [key.as_str()]);
    let state = lock(&inner.directory);
    let Some(user) = state.user_by_id_or_upn(tenant, &key) else {
        return user_not_found(&key);
    };
    let mut out = Map::new();
    match &select {
        None => {
            out.insert(
                "@odata.context".into(),
                json!("https://graph.microsoft.com/v1.0/$metadata#users/$entity"),
            );
            if let Value::Object(u) = user {
                out.extend(u.clone());
            }
        }
        Some(names) => {
            out.insert(
                "@odata.context".into(),
                json!(format!(
                    "https://graph.microsoft.com/v1.0/$metadata#users({})/$entity",
                    names.join(",")
                )),
            );
            let fields = user.as_object();
            for name in names {
                let found =
                    fields.and_then(|f| f.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)));
                match found {
                    Some((k, v)) => out.insert(k.clone(), v.clone()),
                    None => out.insert(name.clone(), Value::Null),
                };
            }
        }
    }
    axum::Json(Value::Object(out)).into_response()
}

/// Graph's List users page size range, 1 to 999 (the API notes give no maximum; this is the
/// range of Graph's List users reference).
const MAX_USERS_TOP: usize = 999;
/// riskDetections: `$top` up to 500, default page 20 (API notes).
const MAX_RISK_TOP: usize = 500;
const DEFAULT_RISK_TOP: usize = 20;

/// What a list request asked for.
struct ListQuery {
    top: usize,
    offset: usize,
    select: Option<Vec<String>>,
}

/// `$top` (`1..=max`), `$skiptoken` (an offset the simulator put in its own nextLink) and
/// `$select` (names, case-insensitive); any other `$` option is refused. `Err` is the 400
/// message, in Graph's words.
fn list_query(
    query: Option<String>,
    default_top: usize,
    max_top: usize,
) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        top: default_top,
        offset: 0,
        select: None,
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "$top" => match v.parse::<usize>() {
                Ok(n) if (1..=max_top).contains(&n) => q.top = n,
                _ => {
                    return Err(format!(
                        "Invalid page size specified: '{v}'. Must be between 1 and {max_top} inclusive."
                    ))
                }
            },
            "$skiptoken" => match v.parse::<usize>() {
                Ok(n) => q.offset = n,
                Err(_) => return Err("Invalid $skiptoken.".into()),
            },
            "$select" => {
                let names: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                q.select = (!names.is_empty()).then_some(names);
            }
            k if k.starts_with('$') => {
                return Err(format!(
                    "Query option '{k}' is not supported by the simulator."
                ))
            }
            _ => {}
        }
    }
    Ok(q)
}

/// One page of `items` as Graph serves a collection: `@odata.context`, `value`, and an
/// `@odata.nextLink` (carrying `$top`, `$select` and an offset `$skiptoken`) while more remain.
fn collection_page(
    inner: &Inner,
    path: &str,
    context: &str,
    items: &[Value],
    q: &ListQuery,
) -> Response {
    let page: Vec<Value> = items
        .iter()
        .skip(q.offset)
        .take(q.top)
        .map(|item| match &q.select {
            None => item.clone(),
            Some(names) => {
                let fields = item.as_object();
                let mut out = Map::new();
                for name in names {
                    match fields.and_then(|f| f.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                    {
                        Some((k, v)) => out.insert(k.clone(), v.clone()),
                        None => out.insert(name.clone(), Value::Null),
                    };
                }
                Value::Object(out)
            }
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "https://graph.microsoft.com/v1.0/$metadata#{context}"
        )),
    );
    body.insert("value".into(), Value::Array(page));
    let next = q.offset + q.top;
    if next < items.len() {
        let mut link = url::Url::parse(&format!("{}{path}", inner.base_url))
            .expect("the simulator's own URL parses");
        {
            let mut pairs = link.query_pairs_mut();
            pairs.append_pair("$top", &q.top.to_string());
            if let Some(names) = &q.select {
                pairs.append_pair("$select", &names.join(","));
            }
            pairs.append_pair("$skiptoken", &next.to_string());
        }
        body.insert("@odata.nextLink".into(), json!(link.to_string()));
    }
    axum::Json(Value::Object(body)).into_response()
}

/// `GET users`: the token's tenant's users in the order added (`$top` default 100, the
/// simulator's choice: Graph's default page size is not in the API notes).
async fn list_users(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = inner.fault_gate(Endpoint::GraphUsers, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::UserReadAll) {
        return r;
    }
    let q = match list_query(query, 100, MAX_USERS_TOP) {
        Ok(q) => q,
        Err(m) => return bad_request(&m),
    };
    let users = lock(&inner.directory)
        .users
        .get(&tenant)
        .cloned()
        .unwrap_or_default();
    collection_page(&inner, "/graph/v1.0/users", "users", &users, &q)
}

/// `GET identityProtection/riskDetections`: the detections added with
/// [`crate::Sim::add_risk_detections`], in that order (`$filter` is not supported here). It
/// shares confirmCompromised's Identity Protection limit: 1 request per second per tenant,
/// 429 without `Retry-After`.
async fn list_risk_detections(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = inner
        .fault_gate(Endpoint::GraphRiskDetections, &headers)
        .await
    {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::IdentityRiskEventReadAll) {
        return r;
    }
    let detections = {
        let mut state = lock(&inner.directory);
        let now = Instant::now();
        if let Some(last) = state.last_confirm.get(&tenant) {
            if now.duration_since(*last) < CONFIRM_INTERVAL {
                return graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests. Identity Protection allows 1 request per second per tenant.",
                );
            }
        }
        state.last_confirm.insert(tenant, now);
        state
            .risk_detections
            .get(&tenant)
            .cloned()
            .unwrap_or_default()
    };
    let q = match list_query(query, DEFAULT_RISK_TOP, MAX_RISK_TOP) {
        Ok(q) => q,
        Err(m) => return bad_request(&m),
    };
    collection_page(
        &inner,
        "/graph/v1.0/identityProtection/riskDetections",
        "identityProtection/riskDetections",
        &detections,
        &q,
    )
}

/// `Ok` when the body is acceptable, else the 400 message.
fn check_remediation(m: &Map<String, Value>) -> Result<(), String> {
    match m.get("action").and_then(Value::as_str) {
        Some(a) if REMEDIATION_ACTIONS.contains(&a) => {}
        _ => {
            return Err(format!(
                "'action' must be one of {}.",
                REMEDIATION_ACTIONS.join(", ")
            ))
        }
    }
    let emails = match m.get("analyzedEmails") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err("'analyzedEmails' must be a non-empty list.".into()),
    };
    let nonblank = |v: &Value, k: &str| str_field(v, k).is_some_and(|s| !s.trim().is_empty());
    for e in emails {
        let by_message = nonblank(e, "networkMessageId") && nonblank(e, "recipientEmailAddress");
        if !(by_message || nonblank(e, "id")) {
            return Err(format!(
                "Each analyzed email needs networkMessageId and recipientEmailAddress (or id): {e}"
            ));
        }
    }
    if let Some(s) = m.get("severity").filter(|v| !v.is_null()) {
        if !s
            .as_str()
            .is_some_and(|s| REMEDIATION_SEVERITIES.contains(&s))
        {
            return Err(format!(
                "'severity' must be one of {}.",
                REMEDIATION_SEVERITIES.join(", ")
            ));
        }
    }
    for k in ["displayName", "description", "approverUpn"] {
        if m.get(k).is_some_and(|v| !v.is_null() && !v.is_string()) {
            return Err(format!("'{k}' must be a string."));
        }
    }
    match m.get("remediateSendersCopy") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(Value::String(s)) if s == "true" || s == "false" => {}
        Some(_) => return Err("'remediateSendersCopy' must be a boolean.".into()),
    }
    Ok(())
}

async fn remediate_emails(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = inner
        .fault_gate(Endpoint::GraphEmailRemediate, &headers)
        .await
    {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::SecurityAnalyzedMessageReadWriteAll) {
        return r;
    }
    let Some(mut m) = json_object(&body) else {
        return bad_request(NOT_AN_OBJECT);
    };
    if let Err(e) = check_remediation(&m) {
        return bad_request(&e);
    }
    let named: Vec<String> = m
        .get("analyzedEmails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            ["networkMessageId", "recipientEmailAddress", "id"]
                .into_iter()
                .filter_map(|k| str_field(e, k).map(str::to_string))
        })
        .collect();
    if inner.isolation_check_ids(
        "POST security/collaboration/analyzedEmails/remediate",
        tenant,
        named.iter().map(String::as_str),
    ) {
        return crate::isolation::forbidden();
    }
    let azure_tenant = inner.tenants[tenant].azure_tenant_id.clone();
    let location = format!(
        "https://security.microsoft.com/action-center/history?filters={{\"bulkId\":[\"{}\"]}}&tid={azure_tenant}",
        crate::random_guid()
    );
    let Ok(header) = HeaderValue::from_str(&location) else {
        return graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The simulator could not build the Location header.",
        );
    };
    m.insert("simAzureTenantId".into(), Value::String(azure_tenant));
    m.insert("simLocation".into(), Value::String(location));
    let status = {
        let mut state = lock(&inner.directory);
        state.remediations.push(Value::Object(m));
        StatusCode::from_u16(state.remediate_status).unwrap_or(StatusCode::NO_CONTENT)
    };
    tracing::debug!(tenant, "analyzedEmails remediate");
    let mut r = status.into_response();
    r.headers_mut().insert(axum::http::header::LOCATION, header);
    r
}
