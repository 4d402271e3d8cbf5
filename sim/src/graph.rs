//! Entra ID token endpoint and Graph `security/alerts_v2`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::{aad_error, bearer, graph_error};
use crate::{lock, Endpoint, EntraToken, Inner, Permission};

pub(crate) const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
const ENTRA_EXPIRES_IN: u64 = 3599;
/// The real default page size is not documented; 50 is an arbitrary but small choice so paging
/// gets exercised with modest data.
const DEFAULT_TOP: usize = 50;
/// The real maximum `$top` is not documented; 2000 is what the simulator enforces.
const MAX_TOP: usize = 2000;

/// The v1.0 base members of `serviceSource`; anything else is an "evolvable" member that Graph
/// hides as `unknownFutureValue` unless the caller opts in with
/// `Prefer: include-unknown-enum-members`.
const SERVICE_SOURCE_BASE: &[&str] = &[
    "unknown",
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForIdentity",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForOffice365",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "microsoftAppGovernance",
    "dataLossPrevention",
];

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
        .route("/graph/v1.0/security/alerts_v2", get(list_alerts))
}

pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn entra_token(
    State(inner): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.count(|s| s.entra_tokens += 1);
    if let Some(r) = inner.fault_gate(Endpoint::EntraToken, &headers).await {
        return r;
    }
    let form = parse_form(&body);
    let missing = |p: &str| {
        aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{p}'."),
        )
    };

    let Some(grant_type) = form.get("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(idx) = inner
        .tenants
        .iter()
        .position(|t| t.azure_tenant_id.eq_ignore_ascii_case(&tenant))
    else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    };
    let t = &inner.tenants[idx];
    let Some(client_id) = form.get("client_id") else {
        return missing("client_id");
    };
    if *client_id != t.client_id {
        // Another tenant's app presenting itself here: that tenant's credential used for this
        // tenant (refused below as Entra refuses an app unknown in the directory).
        let app_tenant = inner.tenants.iter().position(|o| o.client_id == *client_id);
        if let Some(app_tenant) = app_tenant {
            inner.isolation_check(
                "POST {tenant}/oauth2/v2.0/token",
                app_tenant,
                Some(idx),
                client_id,
            );
        }
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    let Some(secret) = form.get("client_secret") else {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        );
    };
    if *secret != t.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        );
    }
    let Some(scope) = form.get("scope") else {
        return missing("scope");
    };
    // Client credentials take exactly one `<resource>/.default` scope.
    let resource = scope
        .strip_suffix("/.default")
        .filter(|r| r.starts_with("https://") && !r.contains(char::is_whitespace));
    let Some(resource) = resource else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            &format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
        );
    };

    if let Some(r) = inner.token_refused(idx, resource, client_id) {
        return r;
    }

    // A recognisable prefix lets tests prove no token ever reaches a log line.
    let token = format!("simtok{}", crate::random_token(58));
    lock(&inner.entra_tokens).insert(
        token.clone(),
        EntraToken {
            tenant: idx,
            resource: resource.trim_end_matches('/').to_string(),
            expires: Instant::now() + Duration::from_secs(ENTRA_EXPIRES_IN),
        },
    );
    tracing::debug!(tenant = %t.azure_tenant_id, resource, "entra token issued");
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": ENTRA_EXPIRES_IN,
        "ext_expires_in": ENTRA_EXPIRES_IN,
        "access_token": token,
    }))
    .into_response()
}

/// The tenant (index) of a valid, unexpired Entra token issued for `resource`, or the reason it
/// is refused, worded as Graph words it; each API wraps the reason in its own 401 shape.
pub(crate) fn token_tenant(
    inner: &Inner,
    headers: &HeaderMap,
    resource: &str,
) -> Result<usize, &'static str> {
    let Some(token) = bearer(headers) else {
        return Err("Access token is empty.");
    };
    let tokens = lock(&inner.entra_tokens);
    match tokens.get(token) {
        None => Err("Access token validation failure."),
        Some(t) if t.expires < Instant::now() => {
            Err("Lifetime validation failed, the token is expired.")
        }
        Some(t) if t.resource != resource => {
            Err("Access token validation failure. Invalid audience.")
        }
        Some(t) => Ok(t.tenant),
    }
}

pub(crate) fn graph_unauthorized(message: &str) -> Response {
    let mut r = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    r.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"\", error=\"invalid_token\""),
    );
    r
}

pub(crate) fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

// ---------------------------------------------------------------- $filter

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        v.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => v.push(c),
                }
            }
            out.push(Tok::Str(v));
        } else if c == '(' || c == ')' {
            return Err("parentheses are not supported".into());
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '\'' || c == '(' || c == ')' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(Tok::Word(w));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Debug)]
enum Clause {
    StrEq {
        field: &'static str,
        value: String,
    },
    Date {
        field: &'static str,
        op: Cmp,
        value: DateTime<Utc>,
    },
}

fn canonical_field(name: &str) -> Option<&'static str> {
    [
        "serviceSource",
        "severity",
        "status",
        "lastUpdateDateTime",
        "createdDateTime",
    ]
    .into_iter()
    .find(|f| f.eq_ignore_ascii_case(name))
}

/// Only the subset the mss client needs; anything else is refused loudly (400) rather than
/// silently ignored, so a client bug shows up as an error and not as "no alerts".
fn parse_filter(src: &str) -> Result<Vec<Clause>, String> {
    let toks = tokenize(src)?;
    let mut it = toks.into_iter();
    let mut clauses = Vec::new();
    loop {
        let (Some(Tok::Word(field)), Some(Tok::Word(op)), Some(value)) =
            (it.next(), it.next(), it.next())
        else {
            return Err("expected '<property> <operator> <value>'".into());
        };
        let canon = canonical_field(&field)
            .ok_or_else(|| format!("filtering on '{field}' is not supported"))?;
        let op = op.to_ascii_lowercase();
        let clause = match (canon, op.as_str(), value) {
            ("serviceSource" | "severity" | "status", "eq", Tok::Str(v)) => Clause::StrEq {
                field: canon,
                value: v,
            },
            ("lastUpdateDateTime" | "createdDateTime", op, Tok::Word(v)) => {
                let op = match op {
                    "ge" => Cmp::Ge,
                    "gt" => Cmp::Gt,
                    "le" => Cmp::Le,
                    "lt" => Cmp::Lt,
                    _ => return Err(format!("operator '{op}' is not supported on {canon}")),
                };
                let value = DateTime::parse_from_rfc3339(&v)
                    .map_err(|_| format!("'{v}' is not a valid DateTimeOffset"))?
                    .with_timezone(&Utc);
                Clause::Date {
                    field: canon,
                    op,
                    value,
                }
            }
            (_, op, v) => {
                return Err(format!(
                    "'{field} {op} {v:?}' is not a supported comparison"
                ))
            }
        };
        clauses.push(clause);
        match it.next() {
            None => return Ok(clauses),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("and") => {}
            Some(t) => return Err(format!("expected 'and', found {t:?}")),
        }
    }
}

/// An alert's `lastUpdateDateTime`, and when the simulated Graph starts serving it (late
/// indexing, simulator-only `simVisibleAfterSeconds`: from `lastUpdateDateTime` + that many
/// seconds on). `None` where the alert has no readable time (served raw, last).
#[derive(Debug, Clone)]
pub(crate) struct AlertTimes {
    id: Option<Box<str>>,
    service_source: Option<Box<str>>,
    last_update: Option<DateTime<Utc>>,
    visible_from: Option<DateTime<Utc>>,
}

impl AlertTimes {
    pub(crate) fn of(a: &Value) -> AlertTimes {
        let lu = parse_time(a.get("lastUpdateDateTime"));
        let visible_from = lu.map(
            |lu| match a.get(SIM_VISIBLE_AFTER).and_then(Value::as_f64) {
                Some(s) if s.is_finite() && s > 0.0 => {
                    lu + chrono::TimeDelta::milliseconds((s * 1000.0).round() as i64)
                }
                _ => lu,
            },
        );
        let text = |k: &str| a.get(k).and_then(Value::as_str).map(Box::from);
        AlertTimes {
            id: text("id"),
            service_source: text("serviceSource"),
            last_update: lu,
            visible_from,
        }
    }
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// String comparisons are case-sensitive: case handling of enum filters is not documented, and
/// exact matching catches clients that send the wrong casing.
/// `served_source`: the alert's serviceSource as served (see [`served_alerts`]).
fn matches_served(
    alert: &Value,
    times: &AlertTimes,
    clauses: &[Clause],
    served_source: Option<&str>,
) -> bool {
    clauses.iter().all(|c| match c {
        Clause::StrEq { field, value } if *field == "serviceSource" => {
            served_source == Some(value.as_str())
        }
        Clause::StrEq { field, value } => {
            alert.get(*field).and_then(Value::as_str) == Some(value.as_str())
        }
        Clause::Date { field, op, value } => match match *field {
            "lastUpdateDateTime" => times.last_update,
            _ => parse_time(alert.get(*field)),
        } {
            None => false,
            Some(t) => match op {
                Cmp::Ge => t >= *value,
                Cmp::Gt => t > *value,
                Cmp::Le => t <= *value,
                Cmp::Lt => t < *value,
            },
        },
    })
}

// ---------------------------------------------------------------- paging

/// Carried inside `$skiptoken` so later pages repeat the same filter against the same snapshot
/// (the clock at the first page): moving the clock mid-paging must not shift offsets.
#[derive(Serialize, Deserialize)]
struct SkipToken {
    o: usize,
    t: usize,
    f: String,
    a: Option<DateTime<Utc>>,
    c: bool,
    /// The tenant (index) whose listing this continues: a next page asked with another
    /// tenant's token is an isolation violation.
    #[serde(default)]
    n: Option<usize>,
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl SkipToken {
    fn encode(&self) -> String {
        hex_encode(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
    fn decode(s: &str) -> Option<SkipToken> {
        serde_json::from_slice(&hex_decode(s)?).ok()
    }
}

/// Simulator-only key of a scenario alert version: seconds after its `lastUpdateDateTime`
/// before Graph serves it (late indexing; see [`crate::SimTenant::alerts`]). Never served.
const SIM_VISIBLE_AFTER: &str = "simVisibleAfterSeconds";

/// The served alert list for a tenant at `as_of` (None = everything visible): one visible
/// version per id, enum-mapped and filtered, ordered by lastUpdateDateTime then id, followed by
/// the malformed items.
///
/// Malformed items (no string `id`/`lastUpdateDateTime`, or an unparsable timestamp) are served
/// raw on every query regardless of filter: they exist so client tests see a bad item and prove
/// they record it and carry on.
///
/// Only the page asked for is copied (`range`): a query filters and orders borrowed alerts, so
/// a tenant with 100,000 alerts costs a sort per request, not 100,000 deep copies (issue 11's
/// side-by-side measurements run the pipeline at tens of thousands of alerts a second).
/// Returns the page and the total count.
fn served_alerts(
    alerts: &[Value],
    times: &[AlertTimes],
    as_of: Option<DateTime<Utc>>,
    include_unknown: bool,
    clauses: &[Clause],
    range: (usize, usize),
) -> (Vec<Value>, usize) {
    let mut best: HashMap<&str, (DateTime<Utc>, &Value, &AlertTimes)> =
        HashMap::with_capacity(alerts.len());
    let mut malformed: Vec<&Value> = Vec::new();
    for (a, t) in alerts.iter().zip(times) {
        let (Some(id), Some(lu), Some(visible_from)) =
            (t.id.as_deref(), t.last_update, t.visible_from)
        else {
            malformed.push(a);
            continue;
        };
        if as_of.is_some_and(|t| visible_from > t) {
            continue;
        }
        match best.get(id) {
            Some((prev, _, _)) if *prev > lu => {}
            _ => {
                best.insert(id, (lu, a, t));
            }
        }
    }
    // The serviceSource a client sees: values newer than the base enum are served as
    // `unknownFutureValue` unless the client asked for them; filters see the served value.
    fn served(src: Option<&str>, include_unknown: bool) -> Option<&str> {
        let src = src?;
        Some(if include_unknown || SERVICE_SOURCE_BASE.contains(&src) {
            src
        } else {
            "unknownFutureValue"
        })
    }
    let mut visible: Vec<(DateTime<Utc>, &str, &Value, &AlertTimes)> = best
        .into_iter()
        .filter(|(_, (_, a, t))| {
            matches_served(
                a,
                t,
                clauses,
                served(t.service_source.as_deref(), include_unknown),
            )
        })
        .map(|(id, (lu, a, t))| (lu, id, a, t))
        .collect();
    visible.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)));
    let total = visible.len() + malformed.len();
    let (start, end) = (range.0.min(total), range.1.min(total));
    let page = visible
        .into_iter()
        .map(|(_, _, a, t)| (a, Some(t)))
        // Malformed items last, served raw, exactly as stored.
        .chain(malformed.into_iter().map(|a| (a, None)))
        .skip(start)
        .take(end - start)
        .map(|(a, t)| {
            let mut a = a.clone();
            if let Some(t) = t {
                if let Some(m) = a.as_object_mut() {
                    m.remove(SIM_VISIBLE_AFTER);
                }
                if let Some(src) = served(t.service_source.as_deref(), include_unknown) {
                    a["serviceSource"] = Value::String(src.to_string());
                }
            }
            a
        })
        .collect();
    (page, total)
}

fn wants_unknown_enums(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.trim()
                .eq_ignore_ascii_case("include-unknown-enum-members")
        })
}

/// Filters see the value as it will be served (after enum mapping): without the Prefer header a
/// `serviceSource eq 'microsoftSentinel'` filter matches nothing. Real Graph behaviour here is
/// not documented.
async fn list_alerts(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    inner.count(|s| s.graph_alert_requests += 1);
    if let Some(r) = inner.fault_gate(Endpoint::GraphAlerts, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    if let Some(r) = inner.denied(tenant, Permission::SecurityAlertReadAll) {
        return r;
    }

    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut filter = String::new();
    let mut top = DEFAULT_TOP;
    let mut skip = 0usize;
    let mut count = false;
    let mut skiptoken = None;
    for (k, v) in &params {
        match k.as_str() {
            "$filter" => filter = v.clone(),
            "$top" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => top = n,
                _ => {
                    return bad_request(&format!(
                        "Invalid page size specified: '{v}'. Must be between 1 and {MAX_TOP} inclusive."
                    ))
                }
            },
            "$skip" => match v.parse::<usize>() {
                Ok(n) => skip = n,
                Err(_) => return bad_request(&format!("Invalid value '{v}' for $skip.")),
            },
            "$count" => match v.as_str() {
                "true" => count = true,
                "false" => count = false,
                _ => return bad_request(&format!("Invalid value '{v}' for $count.")),
            },
            "$skiptoken" => skiptoken = Some(v.clone()),
            k if k.starts_with('$') => {
                return bad_request(&format!(
                    "Query option '{k}' is not supported by the simulator."
                ))
            }
            _ => {}
        }
    }

    // A nextLink carries only $skiptoken; the token restores the whole original query.
    let state = match skiptoken {
        Some(st) => match SkipToken::decode(&st) {
            Some(t) => {
                if inner.isolation_check(
                    "GET security/alerts_v2?$skiptoken",
                    tenant,
                    t.n,
                    "@odata.nextLink of another tenant's listing",
                ) {
                    return crate::isolation::forbidden();
                }
                t
            }
            None => return bad_request("Invalid $skiptoken."),
        },
        None => SkipToken {
            o: skip,
            t: top,
            f: filter,
            a: (!inner.all_visible).then(|| inner.now()),
            c: count,
            n: Some(tenant),
        },
    };
    let clauses = if state.f.trim().is_empty() {
        Vec::new()
    } else {
        match parse_filter(&state.f) {
            Ok(c) => c,
            Err(e) => return bad_request(&format!("Invalid filter clause: {e}")),
        }
    };

    let (page, total) = served_alerts(
        &inner.tenants[tenant].alerts,
        &inner.alert_times[tenant],
        state.a,
        wants_unknown_enums(&headers),
        &clauses,
        (state.o, state.o.saturating_add(state.t)),
    );
    let start = state.o.min(total);
    let end = state.o.saturating_add(state.t).min(total);

    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!("https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2"),
    );
    if state.c {
        body.insert("@odata.count".into(), json!(total));
    }
    body.insert("value".into(), Value::Array(page));
    if end < total {
        let next = SkipToken { o: end, ..state };
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}/graph/v1.0/security/alerts_v2?$skiptoken={}",
                inner.base_url,
                next.encode()
            )),
        );
    }
    tracing::debug!(tenant, served = end - start, total, "alerts_v2 page");
    axum::Json(Value::Object(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parses_supported_clauses() {
        let c = parse_filter(
            "serviceSource eq 'microsoftDefenderForEndpoint' and lastUpdateDateTime ge 2024-01-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert!(parse_filter("severity eq 'it''s'").is_ok());
        assert!(parse_filter("title eq 'x'").is_err());
        assert!(parse_filter("severity ne 'high'").is_err());
        assert!(parse_filter("lastUpdateDateTime ge '2024-01-01T00:00:00Z'").is_err());
        assert!(parse_filter("severity eq 'high' or status eq 'new'").is_err());
        assert!(parse_filter("(severity eq 'high')").is_err());
    }

    #[test]
    fn skiptoken_round_trips() {
        let t = SkipToken {
            o: 4,
            t: 2,
            f: "severity eq 'high'".into(),
            a: None,
            c: true,
            n: Some(1),
        };
        let d = SkipToken::decode(&t.encode()).unwrap();
        assert_eq!(
            (d.o, d.t, d.f.as_str(), d.c, d.n),
            (4, 2, "severity eq 'high'", true, Some(1))
        );
        assert!(SkipToken::decode("zz").is_none());
    }
}
