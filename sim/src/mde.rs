//! Defender for Endpoint machines and machine actions, under `{base}/mde/api` (standing in for
//! `https://api.security.microsoft.com/api`).
//!
//! Choices made where the API facts are silent:
//! - A repeated request while an action of the same type on the same machine is `Pending` or
//!   `InProgress` answers 400 with the documented message "Action is already in progress"; the
//!   error *code* is not documented, the simulator uses `ActiveRequestAlreadyExists`. Actions of
//!   other types on that machine do not block each other.
//! - `IsolationType` is not marked required in the reference; when absent the simulator isolates
//!   `Full`. `ScanType` is required. Enum values are matched case-sensitively, like the
//!   parameter names (the docs say names are case-sensitive; for values they are silent). An
//!   empty or blank `Comment` counts as missing. Unknown extra parameters are ignored, but a
//!   known parameter in the wrong case (`comment`) is refused with `InvalidInput`.
//! - Checks run in this order: fault, token (401), body (400 `InvalidInput`), machine (404),
//!   platform support (400 `OsPlatformNotSupported`), action already in progress (400).
//! - The action path segment (`isolate`, `unisolate`, `runAntiVirusScan`) is matched
//!   case-insensitively, as the ASP.NET routing in front of the real API does; machine and
//!   action ids are matched exactly.
//! - `requestor` is the client id of the app whose token made the request; `scope` is the
//!   isolation type or scan type, and `null` for `Unisolate` (it has neither).
//! - Status follows the simulated clock: `Pending` when requested, `InProgress` from one
//!   simulated minute later, the device's `simActionOutcome` once `simActionMinutes` have
//!   passed (the terminal status wins when `simActionMinutes` ≤ 1). With `all_visible` (nobody
//!   drives the clock) the same schedule runs on wall time in seconds. `lastUpdateDateTimeUtc`
//!   is the time of the latest transition.
//! - `GET machineactions` supports only `$filter=machineId eq '<id>'` (or no `$filter`, which
//!   lists every action of the token's tenant); other `$` options answer 400 `BadRequest`.
//!   The list is newest first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use crate::faults::mde_error;
use crate::graph::token_tenant;
use crate::{lock, Endpoint, Inner, Permission};

pub(crate) const MDE_RESOURCE: &str = "https://api.securitycenter.microsoft.com";
const ODATA_BASE: &str = "https://api.securitycenter.microsoft.com/api/$metadata";
const OUTCOMES: &[&str] = &["Succeeded", "Failed", "TimeOut", "Cancelled"];
const DEFAULT_ACTION_MINUTES: f64 = 3.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Isolate,
    Unisolate,
    RunAntiVirusScan,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Isolate, Kind::Unisolate, Kind::RunAntiVirusScan];

    /// The MachineAction `type`.
    fn name(self) -> &'static str {
        match self {
            Kind::Isolate => "Isolate",
            Kind::Unisolate => "Unisolate",
            Kind::RunAntiVirusScan => "RunAntiVirusScan",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Isolate => "isolate",
            Kind::Unisolate => "unisolate",
            Kind::RunAntiVirusScan => "runAntiVirusScan",
        }
    }

    fn from_path(seg: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.path().eq_ignore_ascii_case(seg))
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The application permission the action needs.
    fn permission(self) -> Permission {
        match self {
            Kind::Isolate | Kind::Unisolate => Permission::MachineIsolate,
            Kind::RunAntiVirusScan => Permission::MachineScan,
        }
    }

    /// Body parameter names, exact case.
    fn params(self) -> &'static [&'static str] {
        match self {
            Kind::Isolate => &["Comment", "IsolationType"],
            Kind::Unisolate => &["Comment"],
            Kind::RunAntiVirusScan => &["Comment", "ScanType"],
        }
    }
}

struct Device {
    /// As served by `GET machines/{id}`: the added object without its `sim*` keys.
    machine: Value,
    outcome: &'static str,
    minutes: f64,
    unsupported: Vec<Kind>,
}

pub(crate) struct MachineAction {
    tenant: usize,
    seq: usize,
    id: String,
    kind: Kind,
    scope: Option<String>,
    requestor: String,
    comment: String,
    machine_id: String,
    computer_dns_name: Value,
    /// Simulated clock at the request (wall clock under `all_visible`).
    created: DateTime<Utc>,
    created_wall: Instant,
    outcome: &'static str,
    minutes: f64,
}

#[derive(Default)]
pub(crate) struct MdeState {
    /// Tenant index -> machine id -> device.
    devices: HashMap<usize, HashMap<String, Device>>,
    /// In request order.
    pub actions: Vec<MachineAction>,
    pub requests: u64,
}

impl MdeState {
    /// Panics on set-up mistakes; see [`crate::Sim::add_devices`].
    pub fn add_device(&mut self, tenant: usize, device: Value) {
        let Value::Object(mut obj) = device else {
            panic!("add_devices: a device must be a JSON object, got {device}");
        };
        let id = match obj.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => panic!("add_devices: device without a string \"id\": {obj:?}"),
        };
        let outcome = match obj.get("simActionOutcome") {
            None | Some(Value::Null) => "Succeeded",
            Some(Value::String(s)) => OUTCOMES
                .iter()
                .copied()
                .find(|o| o == s)
                .unwrap_or_else(|| {
                    panic!("add_devices: {id}: simActionOutcome must be one of {OUTCOMES:?}, not {s:?}")
                }),
            Some(v) => panic!("add_devices: {id}: simActionOutcome must be a string, not {v}"),
        };
        let minutes = match obj.get("simActionMinutes") {
            None | Some(Value::Null) => DEFAULT_ACTION_MINUTES,
            Some(v) => match v.as_f64() {
                Some(m) if m.is_finite() && m >= 0.0 => m,
                _ => panic!(
                    "add_devices: {id}: simActionMinutes must be a non-negative number, not {v}"
                ),
            },
        };
        let unsupported = match obj.get("simUnsupported") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str().and_then(Kind::from_name).unwrap_or_else(|| {
                        panic!("add_devices: {id}: simUnsupported entries must be \"Isolate\", \"Unisolate\" or \"RunAntiVirusScan\", not {v}")
                    })
                })
                .collect(),
            Some(v) => panic!("add_devices: {id}: simUnsupported must be a list, not {v}"),
        };
        // Platforms outside the API notes' support list (Windows 10 1703+/11, Linux) refuse
        // isolation and scans unless a knob says otherwise.
        let mut unsupported = unsupported;
        if obj.get("simUnsupported").is_none() {
            let platform = obj.get("osPlatform").and_then(Value::as_str).unwrap_or("");
            if [
                "Windows7",
                "Windows8",
                "Windows8.1",
                "WindowsXP",
                "WindowsVista",
            ]
            .contains(&platform)
            {
                unsupported = ["Isolate", "RunAntiVirusScan"]
                    .iter()
                    .filter_map(|n| Kind::from_name(n))
                    .collect();
            }
        }
        obj.retain(|k, _| !k.starts_with("sim"));
        self.devices.entry(tenant).or_default().insert(
            id,
            Device {
                machine: Value::Object(obj),
                outcome,
                minutes,
                unsupported,
            },
        );
    }

    fn device(&self, tenant: usize, id: &str) -> Option<&Device> {
        self.devices.get(&tenant)?.get(id)
    }
}

/// `yyyy-MM-ddTHH:mm:ss.fffffffZ`, the 7-digit form the MDE samples show.
fn mde_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_nanos() / 100
    )
}

impl MachineAction {
    /// Current status and the time of the latest transition.
    fn progress(&self, inner: &Inner) -> (&'static str, DateTime<Utc>) {
        let (elapsed_ms, unit_ms): (i64, i64) = if inner.all_visible {
            (
                i64::try_from(self.created_wall.elapsed().as_millis()).unwrap_or(i64::MAX),
                1_000,
            )
        } else {
            ((inner.now() - self.created).num_milliseconds(), 60_000)
        };
        let total_ms = (self.minutes * unit_ms as f64).round() as i64;
        if elapsed_ms >= total_ms {
            (
                self.outcome,
                self.created + TimeDelta::milliseconds(total_ms),
            )
        } else if elapsed_ms >= unit_ms {
            (
                "InProgress",
                self.created + TimeDelta::milliseconds(unit_ms),
            )
        } else {
            ("Pending", self.created)
        }
    }

    fn active(&self, inner: &Inner) -> bool {
        matches!(self.progress(inner).0, "Pending" | "InProgress")
    }

    pub fn to_json(&self, inner: &Inner) -> Value {
        let (status, updated) = self.progress(inner);
        json!({
            "id": self.id,
            "type": self.kind.name(),
            "scope": self.scope,
            "requestor": self.requestor,
            "requestorComment": self.comment,
            "status": status,
            "machineId": self.machine_id,
            "computerDnsName": self.computer_dns_name,
            "creationDateTimeUtc": mde_time(self.created),
            "lastUpdateDateTimeUtc": mde_time(updated),
            "relatedFileInfo": null,
        })
    }
}

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new()
        .route("/mde/api/machines", get(list_machines))
        .route("/mde/api/machines/{id}", get(get_machine))
        .route("/mde/api/machines/{id}/{action}", post(machine_action))
        .route("/mde/api/machineactions", get(list_actions))
        .route("/mde/api/machineactions/{id}", get(get_action))
}

fn unauthorized(message: &str) -> Response {
    mde_error(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

fn invalid_input(message: &str) -> Response {
    mde_error(StatusCode::BAD_REQUEST, "InvalidInput", message)
}

fn not_found(message: &str) -> Response {
    mde_error(StatusCode::NOT_FOUND, "NotFound", message)
}

fn with_context(mut v: Value, context: &str) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert(
            "@odata.context".into(),
            Value::String(format!("{ODATA_BASE}{context}")),
        );
    }
    v
}

/// Returns `(comment, scope)` or the `InvalidInput` message.
fn parse_body(body: &[u8], kind: Kind) -> Result<(String, Option<String>), String> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else {
        return Err("The request body must be a JSON object.".into());
    };
    let allowed = kind.params();
    for k in m.keys() {
        if allowed.contains(&k.as_str()) {
            continue;
        }
        if let Some(a) = allowed.iter().find(|a| a.eq_ignore_ascii_case(k)) {
            return Err(format!(
                "Unknown parameter '{k}'; parameter names are case-sensitive, expected '{a}'."
            ));
        }
    }
    let comment = match m.get("Comment") {
        Some(Value::String(c)) if !c.trim().is_empty() => c.clone(),
        _ => return Err("The 'Comment' parameter is required.".into()),
    };
    let one_of = |m: &Map<String, Value>,
                  name: &str,
                  values: &[&str],
                  default: Option<&str>|
     -> Result<String, String> {
        match (m.get(name), default) {
            (None | Some(Value::Null), Some(d)) => Ok(d.to_string()),
            (Some(Value::String(s)), _) if values.contains(&s.as_str()) => Ok(s.clone()),
            (None | Some(Value::Null), None) => Err(format!("The '{name}' parameter is required.")),
            (Some(v), _) => Err(format!(
                "Invalid value {v} for '{name}'; allowed values: {}.",
                values.join(", ")
            )),
        }
    };
    let scope = match kind {
        Kind::Isolate => Some(one_of(
            &m,
            "IsolationType",
            &["Full", "Selective", "UnManagedDevice"],
            Some("Full"),
        )?),
        Kind::Unisolate => None,
        Kind::RunAntiVirusScan => Some(one_of(&m, "ScanType", &["Quick", "Full"], None)?),
    };
    Ok((comment, scope))
}

async fn machine_action(
    State(inner): State<Arc<Inner>>,
    Path((machine_id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(kind) = Kind::from_path(&action) else {
        return not_found(&format!("No action '{action}' on machines."));
    };
    lock(&inner.mde).requests += 1;
    if let Some(r) = inner.fault_gate(Endpoint::MdeAction, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, MDE_RESOURCE) {
        Ok(t) => t,
        Err(m) => return unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, kind.permission()) {
        return r;
    }
    let (comment, scope) = match parse_body(&body, kind) {
        Ok(p) => p,
        Err(m) => return invalid_input(&m),
    };

    // Another tenant's device: unknown here (404), and recorded.
    inner.isolation_check_ids("POST machines/{id}/{action}", tenant, [machine_id.as_str()]);
    let mut state = lock(&inner.mde);
    let Some(device) = state.device(tenant, &machine_id) else {
        return not_found(&format!("Machine {machine_id} was not found."));
    };
    if device.unsupported.contains(&kind) {
        let platform = device
            .machine
            .get("osPlatform")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return mde_error(
            StatusCode::BAD_REQUEST,
            "OsPlatformNotSupported",
            &format!(
                "{} is not supported on OS platform {platform}.",
                kind.name()
            ),
        );
    }
    let (outcome, minutes) = (device.outcome, device.minutes);
    let computer_dns_name = device
        .machine
        .get("computerDnsName")
        .cloned()
        .unwrap_or(Value::Null);
    if state.actions.iter().any(|a| {
        a.tenant == tenant && a.machine_id == machine_id && a.kind == kind && a.active(&inner)
    }) {
        return mde_error(
            StatusCode::BAD_REQUEST,
            "ActiveRequestAlreadyExists",
            "Action is already in progress",
        );
    }
    let created = if inner.all_visible {
        Utc::now()
    } else {
        inner.now()
    };
    let action = MachineAction {
        tenant,
        seq: state.actions.len(),
        id: crate::random_guid(),
        kind,
        scope,
        requestor: inner.tenants[tenant].client_id.clone(),
        comment,
        machine_id,
        computer_dns_name,
        created,
        created_wall: Instant::now(),
        outcome,
        minutes,
    };
    let body = with_context(action.to_json(&inner), "#MachineActions/$entity");
    tracing::debug!(tenant, kind = kind.name(), machine = %action.machine_id, "machine action");
    inner.own(tenant, &action.id);
    state.actions.push(action);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn get_machine(
    State(inner): State<Arc<Inner>>,
    Path(machine_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = inner.fault_gate(Endpoint::MdeRead, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, MDE_RESOURCE) {
        Ok(t) => t,
        Err(m) => return unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::MachineReadAll) {
        return r;
    }
    inner.isolation_check_ids("GET machines/{id}", tenant, [machine_id.as_str()]);
    let state = lock(&inner.mde);
    match state.device(tenant, &machine_id) {
        Some(d) => axum::Json(with_context(d.machine.clone(), "#Machines/$entity")).into_response(),
        None => not_found(&format!("Machine {machine_id} was not found.")),
    }
}

async fn get_action(
    State(inner): State<Arc<Inner>>,
    Path(action_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = inner.fault_gate(Endpoint::MdeRead, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, MDE_RESOURCE) {
        Ok(t) => t,
        Err(m) => return unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::MachineReadAll) {
        return r;
    }
    inner.isolation_check_ids("GET machineactions/{id}", tenant, [action_id.as_str()]);
    let state = lock(&inner.mde);
    match state
        .actions
        .iter()
        .find(|a| a.tenant == tenant && a.id == action_id)
    {
        Some(a) => {
            axum::Json(with_context(a.to_json(&inner), "#MachineActions/$entity")).into_response()
        }
        None => not_found(&format!("Machine action {action_id} was not found.")),
    }
}

/// Defender for Endpoint's documented maximum `$top` and page size for `GET machines`
/// (learn.microsoft.com, defender-endpoint/api/get-machines).
const MAX_MACHINES_TOP: usize = 10_000;

/// `GET machines`: the token's tenant's devices ordered by id, with `$top` (1 to 10,000, the
/// documented maximum; default 10,000) and `$skip`. `$filter` and other options answer 400
/// `BadRequest` here (the real API supports `$filter` on some properties; no client of this
/// project sends one). No `@odata.nextLink` is served: how the real API pages past 10,000 is
/// not in the API notes.
async fn list_machines(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = inner.fault_gate(Endpoint::MdeRead, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, MDE_RESOURCE) {
        Ok(t) => t,
        Err(m) => return unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::MachineReadAll) {
        return r;
    }
    let mut top = MAX_MACHINES_TOP;
    let mut skip = 0usize;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "$top" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_MACHINES_TOP).contains(&n) => top = n,
                _ => {
                    return invalid_input(&format!(
                        "Invalid $top value '{v}'; it must be between 1 and {MAX_MACHINES_TOP}."
                    ))
                }
            },
            "$skip" => match v.parse::<usize>() {
                Ok(n) => skip = n,
                Err(_) => return invalid_input(&format!("Invalid $skip value '{v}'.")),
            },
            k if k.starts_with('$') => {
                return mde_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Query option '{k}' is not supported by the simulator."),
                )
            }
            _ => {}
        }
    }
    let state = lock(&inner.mde);
    let mut devices: Vec<&Device> = state
        .devices
        .get(&tenant)
        .map(|m| m.values().collect())
        .unwrap_or_default();
    devices.sort_by(|a, b| {
        let id = |d: &Device| {
            d.machine
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        id(a).cmp(&id(b))
    });
    let value: Vec<Value> = devices
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|d| d.machine.clone())
        .collect();
    axum::Json(json!({
        "@odata.context": format!("{ODATA_BASE}#Machines"),
        "value": value,
    }))
    .into_response()
}

/// `machineId eq '<id>'` (property and operator case-insensitive, `''` escapes a quote).
fn parse_machine_filter(f: &str) -> Option<String> {
    let (field, rest) = f.trim().split_once(char::is_whitespace)?;
    if !field.eq_ignore_ascii_case("machineId") {
        return None;
    }
    let (op, rest) = rest.trim_start().split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let quoted = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    if quoted.replace("''", "").contains('\'') {
        return None;
    }
    Some(quoted.replace("''", "'"))
}

async fn list_actions(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = inner.fault_gate(Endpoint::MdeRead, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, MDE_RESOURCE) {
        Ok(t) => t,
        Err(m) => return unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::MachineReadAll) {
        return r;
    }
    let mut machine = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "$filter" => match parse_machine_filter(&v) {
                Some(id) => machine = Some(id),
                None => {
                    return mde_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!(
                            "The simulator supports only $filter=machineId eq '<id>', not '{v}'."
                        ),
                    )
                }
            },
            k if k.starts_with('$') => {
                return mde_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Query option '{k}' is not supported by the simulator."),
                )
            }
            _ => {}
        }
    }
    if let Some(m) = &machine {
        inner.isolation_check_ids("GET machineactions?$filter=machineId", tenant, [m.as_str()]);
    }
    let state = lock(&inner.mde);
    let mut found: Vec<&MachineAction> = state
        .actions
        .iter()
        .filter(|a| a.tenant == tenant && machine.as_ref().is_none_or(|m| *m == a.machine_id))
        .collect();
    found.sort_by_key(|a| std::cmp::Reverse((a.created, a.seq)));
    let value: Vec<Value> = found.into_iter().map(|a| a.to_json(&inner)).collect();
    axum::Json(json!({
        "@odata.context": format!("{ODATA_BASE}#MachineActions"),
        "value": value,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_filter() {
        assert_eq!(
            parse_machine_filter("machineId eq 'abc'").as_deref(),
            Some("abc")
        );
        assert_eq!(
            parse_machine_filter(" MachineId  EQ  'a''b' ").as_deref(),
            Some("a'b")
        );
        assert!(parse_machine_filter("machineId ne 'abc'").is_none());
        assert!(parse_machine_filter("status eq 'Pending'").is_none());
        assert!(parse_machine_filter("machineId eq abc").is_none());
        assert!(parse_machine_filter("machineId eq 'a' or machineId eq 'b'").is_none());
    }

    #[test]
    fn body_names_are_case_sensitive() {
        assert!(parse_body(br#"{"Comment":"x"}"#, Kind::Unisolate).is_ok());
        assert!(parse_body(br#"{"comment":"x"}"#, Kind::Unisolate).is_err());
        assert!(parse_body(br#"{"Comment":""}"#, Kind::Unisolate).is_err());
        assert_eq!(
            parse_body(br#"{"Comment":"x"}"#, Kind::Isolate).unwrap().1,
            Some("Full".into())
        );
        assert!(parse_body(br#"{"Comment":"x","isolationType":"Full"}"#, Kind::Isolate).is_err());
        assert!(parse_body(br#"{"Comment":"x","IsolationType":"full"}"#, Kind::Isolate).is_err());
        assert!(parse_body(br#"{"Comment":"x"}"#, Kind::RunAntiVirusScan).is_err());
        assert!(parse_body(b"", Kind::Unisolate).is_err());
    }

    #[test]
    fn time_has_seven_digits() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(mde_time(t), "2024-05-01T10:00:00.1234567Z");
    }
}
