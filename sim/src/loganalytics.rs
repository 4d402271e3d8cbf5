//! Log Analytics query API, `POST {loganalytics_base}/v1/workspaces/{workspaceId}/query`,
//! serving the activity rows a test or scenario put into a workspace.
//!
//! The simulator does not run KQL. It reads the mss client's conventions: a first line
//! `// mss-query: <rule id>`, then the `let` bindings `WindowStart`/`WindowEnd`
//! (`datetime(…)`) and `BreakGlassAccounts` (`dynamic([<string literals>])`), lexed strictly as
//! in the hunting endpoint (a badly escaped literal answers 400 `SyntaxError`), then the rule's
//! body. Only those three names are bindings here: a rule's own `let` statements belong to its
//! body and are not evaluated.
//!
//! The answer is the rows added with [`crate::Sim::add_log_rows`] for that workspace and rule
//! id, with `TimeGenerated` in the half-open window `[WindowStart, WindowEnd)` (what the rules'
//! `where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd` selects), intersected with
//! the request's `timespan`. A row added without `TimeGenerated` is "canned": it is placed inside
//! whatever window is asked (deterministically, evenly spread), so scenario data shows up
//! whatever day the digest covers. Columns: `TimeGenerated` (datetime), `Actor`, `Target`,
//! `Operation`, `Detail` (string), then any other key of the rows in first-seen order (`string`,
//! or `dynamic` when a value is not a string). Rows are ordered by time.
//!
//! Choices made where the API facts are silent:
//! - Checks run in this order: fault, token, workspace, body, query. No token: 401
//!   `AuthenticationFailed`; an unknown or expired token: 403 `InvalidAuthenticationToken`; a
//!   token for another resource (e.g. Graph): 403 `InvalidAuthenticationTokenAudience` (the
//!   shapes of the "Azure Monitor Log Analytics API errors" page).
//! - A workspace not added with [`crate::Sim::add_workspace`] to the token's tenant answers 403
//!   `InsufficientAccessError` with `innererror` `UnauthorizedClient`, the shape of that same
//!   page ("Client credentials for direct API") and of the error quoted in
//!   microsoft/foundry-dev-tools issue #734 (`{"error":{"message":"The provided credentials have
//!   insufficient access to perform the requested operation","code":"InsufficientAccessError",
//!   "correlationId":"…"}}`). The real service may answer 404 for a workspace that does not
//!   exist at all; the simulator does not tell the two apart.
//! - A body that is not a JSON object, without a non-empty string `query`, or with a `timespan`
//!   that is not ISO 8601 answers 400 `BadArgumentError`; a binding that does not lex answers
//!   400 `BadArgumentError` / `SyntaxError`; a body that uses `WindowStart`, `WindowEnd` or
//!   `BreakGlassAccounts` without binding it answers 400 `BadArgumentError` / `SemanticError`
//!   ("Failed to resolve scalar expression named …", Kusto's wording).
//! - Modes per rule id ([`crate::Sim::set_loganalytics_mode`], `"*"` for every query):
//!   `PartialError` answers 200 with the rows and an `error` object (`PartialError`, with one
//!   detail), as the response-format page describes non-fatal errors; `NoContent` answers 204;
//!   `Timeout` answers 504 (`GatewayTimeout`) after the query was checked.
//! - Without a known rule id, or for a rule with no rows, the answer is the five columns and no
//!   rows (200). Timestamps are printed with 7 fractional digits and `Z`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use crate::graph::token_tenant;
use crate::hunting::{kusto_time, parse_instant, parse_query_with, parse_timespan};
use crate::{lock, Endpoint, Inner, LogAnalyticsMode, SimLogQuery};

pub(crate) const LOGANALYTICS_RESOURCE: &str = "https://api.loganalytics.io";

/// The bindings the mss client prepends to every activity rule.
const BINDING_NAMES: [&str; 3] = ["WindowStart", "WindowEnd", "BreakGlassAccounts"];
const FIXED_COLUMNS: [&str; 5] = ["TimeGenerated", "Actor", "Target", "Operation", "Detail"];

#[derive(Default)]
pub(crate) struct LogAnalyticsState {
    /// Workspace id (lower case) -> the tenant (index) that owns it.
    pub workspaces: HashMap<String, usize>,
    /// (workspace id, rule id) -> rows as added.
    pub rows: HashMap<(String, String), Vec<Map<String, Value>>>,
    /// Rule id (or "*") -> mode.
    pub modes: HashMap<String, LogAnalyticsMode>,
    pub calls: Vec<SimLogQuery>,
}

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new().route(
        "/loganalytics/v1/workspaces/{workspace}/query",
        post(query_workspace),
    )
}

/// The API's OneAPI error shape, with a fresh `correlationId`.
pub(crate) fn la_error(
    status: StatusCode,
    code: &str,
    message: &str,
    inner: Option<(&str, &str)>,
) -> Response {
    let mut e = json!({
        "message": message,
        "code": code,
        "correlationId": crate::random_guid(),
    });
    if let Some((c, m)) = inner {
        e["innererror"] = json!({"code": c, "message": m});
    }
    (status, axum::Json(json!({ "error": e }))).into_response()
}

fn bad_argument(inner: Option<(&str, &str)>, message: &str) -> Response {
    la_error(StatusCode::BAD_REQUEST, "BadArgumentError", message, inner)
}

/// The clock the default window runs on (as for hunting).
fn now_of(inner: &Inner) -> DateTime<Utc> {
    if inner.all_visible {
        Utc::now()
    } else {
        inner.now()
    }
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

async fn query_workspace(
    State(inner): State<Arc<Inner>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.count(|s| s.loganalytics_requests += 1);
    if let Some(r) = inner.fault_gate(Endpoint::LogAnalytics, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, LOGANALYTICS_RESOURCE) {
        Ok(t) => t,
        Err(m) if m.contains("empty") => {
            return la_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                None,
            )
        }
        Err(m) if m.contains("audience") => {
            return la_error(
                StatusCode::FORBIDDEN,
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained from wrong audience or resource. It should exactly match with one of the allowed audiences 'https://api.loganalytics.io'.",
                None,
            )
        }
        Err(m) => {
            return la_error(
                StatusCode::FORBIDDEN,
                "InvalidAuthenticationToken",
                &format!("The access token is invalid. {m}"),
                None,
            )
        }
    };
    let ws = workspace.to_lowercase();
    let owner = lock(&inner.loganalytics).workspaces.get(&ws).copied();
    let now = now_of(&inner);
    let object = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    let text = |name: &str| {
        object
            .as_ref()
            .and_then(|m| field(m, name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut call = SimLogQuery {
        azure_tenant_id: inner.tenants[tenant].azure_tenant_id.clone(),
        workspace_id: ws.clone(),
        query: text("query").unwrap_or_default(),
        timespan: text("timespan"),
        rule_id: None,
        window: None,
        break_glass: None,
        status: 0,
    };
    let response = if let Some(r) = inner.denied(tenant, crate::Permission::LogAnalyticsDataRead) {
        r
    } else if owner != Some(tenant) {
        // Another tenant's workspace is a violation; one never added is just unknown.
        inner.isolation_check("POST v1/workspaces/{id}/query", tenant, owner, &ws);
        la_error(
            StatusCode::FORBIDDEN,
            "InsufficientAccessError",
            "The provided credentials have insufficient access to perform the requested operation",
            Some((
                "UnauthorizedClient",
                &format!("The service principal does not have sufficient permissions to access this resource: {ws}"),
            )),
        )
    } else {
        answer(&inner, &ws, object.as_ref(), now, &mut call)
    };
    call.status = response.status().as_u16();
    tracing::debug!(tenant, workspace = %ws, status = call.status, "log analytics query");
    lock(&inner.loganalytics).calls.push(call);
    response
}

/// Whether `name` appears in `body` as a whole identifier outside string literals.
fn mentions(body: &str, name: &str) -> bool {
    let mut chars = body.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if word == name {
            return true;
        }
        word.clear();
        if c == '"' || c == '\'' {
            while let Some(d) = chars.next() {
                if d == '\\' {
                    chars.next();
                } else if d == c || d == '\n' {
                    break;
                }
            }
        }
    }
    word == name
}

fn answer(
    inner: &Inner,
    ws: &str,
    object: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
    call: &mut SimLogQuery,
) -> Response {
    let Some(m) = object else {
        return bad_argument(None, "The request body must be a JSON object.");
    };
    let query = match field(m, "query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return bad_argument(
                None,
                "The 'query' property is required and must not be empty.",
            )
        }
        Some(_) => return bad_argument(None, "The 'query' property must be a string."),
    };
    let span = match field(m, "timespan") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_timespan(s, now) {
            Ok(w) => Some(w),
            Err(e) => {
                return bad_argument(
                    None,
                    &format!("The request had some invalid properties: timespan '{s}': {e}"),
                )
            }
        },
        Some(_) => return bad_argument(None, "The 'timespan' property must be a string."),
    };
    let parsed = match parse_query_with(query, Some(&BINDING_NAMES)) {
        Ok(p) => p,
        Err(e) => {
            return bad_argument(
                Some((
                    "SyntaxError",
                    &format!("A recognition error occurred in the query: {e}"),
                )),
                "The request had some invalid properties",
            )
        }
    };
    for name in BINDING_NAMES {
        if !parsed.bindings.has(name) && mentions(&parsed.body, name) {
            return bad_argument(
                Some((
                    "SemanticError",
                    &format!(
                        "'where' operator: Failed to resolve scalar expression named '{name}'"
                    ),
                )),
                "The request had some invalid properties",
            );
        }
    }
    call.rule_id = parsed.id.clone();
    call.break_glass = parsed
        .bindings
        .list("BreakGlassAccounts")
        .map(<[String]>::to_vec);
    let mut end = parsed
        .bindings
        .datetime("WindowEnd")
        .or(span.map(|s| s.1))
        .unwrap_or(now);
    let mut start = parsed
        .bindings
        .datetime("WindowStart")
        .or(span.map(|s| s.0))
        .unwrap_or(end - TimeDelta::days(1));
    if let Some((s, e)) = span {
        start = start.max(s);
        end = end.min(e);
    }
    call.window = Some((start, end));

    let state = lock(&inner.loganalytics);
    let mode = parsed
        .id
        .as_deref()
        .and_then(|id| state.modes.get(id))
        .or_else(|| state.modes.get("*"))
        .copied()
        .unwrap_or(LogAnalyticsMode::Normal);
    let added: &[Map<String, Value>] = parsed
        .id
        .as_ref()
        .and_then(|id| state.rows.get(&(ws.to_string(), id.clone())))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let primary = table(added, start, end);
    drop(state);
    match mode {
        LogAnalyticsMode::NoContent => return StatusCode::NO_CONTENT.into_response(),
        LogAnalyticsMode::Timeout => {
            return la_error(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The query did not complete within the allotted time.",
                None,
            )
        }
        LogAnalyticsMode::Normal | LogAnalyticsMode::PartialError => {}
    }
    let mut body = json!({ "tables": [primary] });
    if mode == LogAnalyticsMode::PartialError {
        body["error"] = json!({
            "message": "There were some errors when processing your query.",
            "code": "PartialError",
            "correlationId": crate::random_guid(),
            "details": [{
                "code": "EngineError",
                "message": "Something went wrong processing your query on the server.",
                "innererror": {
                    "code": "-2133196797",
                    "message": "Query execution has exceeded the allowed limits (80DA0001): partial query failure (simulated)",
                    "severity": 2,
                    "severityName": "Error"
                }
            }]
        });
    }
    axum::Json(body).into_response()
}

/// The answer's `PrimaryResult` for the rows added, inside `[start, end)`.
fn table(added: &[Map<String, Value>], start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    let floating = added
        .iter()
        .filter(|r| field(r, "TimeGenerated").is_none())
        .count();
    let span = (end - start).num_milliseconds().max(0);
    let mut k = 0i64;
    let mut rows: Vec<(DateTime<Utc>, &Map<String, Value>)> = Vec::new();
    for r in added {
        let t = match field(r, "TimeGenerated") {
            Some(v) => match v.as_str().and_then(parse_instant) {
                Some(t) => t,
                None => continue,
            },
            None => {
                k += 1;
                start + TimeDelta::milliseconds(span / (floating as i64 + 1) * k)
            }
        };
        if start <= t && t < end {
            rows.push((t, r));
        }
    }
    rows.sort_by_key(|(t, _)| *t);
    let mut extra: Vec<(String, &'static str)> = Vec::new();
    for (_, r) in &rows {
        for (key, v) in r.iter() {
            if FIXED_COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(key)) {
                continue;
            }
            let kind = if v.is_string() || v.is_null() {
                "string"
            } else {
                "dynamic"
            };
            match extra.iter_mut().find(|(n, _)| n == key) {
                Some(e) if kind == "dynamic" => e.1 = "dynamic",
                Some(_) => {}
                None => extra.push((key.clone(), kind)),
            }
        }
    }
    let mut columns: Vec<Value> = FIXED_COLUMNS
        .iter()
        .map(|c| {
            json!({"name": c, "type": if *c == "TimeGenerated" { "datetime" } else { "string" }})
        })
        .collect();
    columns.extend(extra.iter().map(|(n, t)| json!({"name": n, "type": t})));
    let rows: Vec<Value> = rows
        .iter()
        .map(|(t, r)| {
            let mut out = vec![Value::String(kusto_time(*t))];
            for c in &FIXED_COLUMNS[1..] {
                out.push(field(r, c).cloned().unwrap_or(Value::String(String::new())));
            }
            for (n, _) in &extra {
                out.push(r.get(n).cloned().unwrap_or(Value::Null));
            }
            Value::Array(out)
        })
        .collect();
    json!({"name": "PrimaryResult", "columns": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    #[test]
    fn rows_are_served_inside_the_half_open_window() {
        let rows: Vec<Map<String, Value>> = vec![
            json!({"TimeGenerated": "2026-11-23T15:00:00Z", "Actor": "at-start"}),
            json!({"TimeGenerated": "2026-11-24T15:00:00Z", "Actor": "at-end"}),
            json!({"Actor": "canned", "Extra": {"k": 1}}),
            json!({"TimeGenerated": "2026-11-24T03:00:00Z", "Actor": "inside", "Extra": "x"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let t = table(&rows, at(23, 15), at(24, 15));
        let r = t["rows"].as_array().unwrap();
        let actors: Vec<&str> = r.iter().map(|r| r[1].as_str().unwrap()).collect();
        assert_eq!(actors, ["at-start", "canned", "inside"]);
        assert_eq!(t["columns"][5], json!({"name": "Extra", "type": "dynamic"}));
        for row in r {
            assert_eq!(row.as_array().unwrap().len(), 6);
        }
        assert_eq!(r[0][0], "2026-11-23T15:00:00.0000000Z");
        // An empty window serves nothing, canned rows included.
        assert_eq!(table(&rows, at(24, 15), at(24, 15))["rows"], json!([]));
    }

    #[test]
    fn identifiers_are_found_outside_literals() {
        assert!(mentions(
            "T | where TimeGenerated >= WindowStart",
            "WindowStart"
        ));
        assert!(!mentions("T | where x == 'WindowStart'", "WindowStart"));
        assert!(!mentions("T | where WindowStartX > 1", "WindowStart"));
        assert!(mentions("BreakGlassAccounts", "BreakGlassAccounts"));
    }
}
