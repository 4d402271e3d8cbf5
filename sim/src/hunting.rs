//! Graph advanced hunting, `POST {graph_base}/security/runHuntingQuery`, with canned rows.
//!
//! The simulator does not run KQL. It reads the conventions of the mss client (fixed, see
//! [`parse_query`]): a first line `// mss-query: <id>`, then `let` bindings of KQL string
//! literals or `datetime(…)` values, then the query body. The bindings are lexed strictly, so a
//! client that escapes a hostile value wrongly gets a 400 "Syntax error" here, as it would from
//! the real service. The answer is a deterministic table per query id built from the unescaped
//! binding values (see [`canned`]).
//!
//! Choices made where the API facts are silent:
//! - Checks run in this order: fault, token (401, like every Graph route: the tenant is the
//!   token's), quota (429), body (400), query syntax (400). Body property names are matched
//!   case-insensitively (`Query`, `query`); the Graph samples send `Query` and `Timespan`.
//!   `Timespan` is optional and must take one of the documented forms: a duration (`P1D`), one
//!   date-time, `start/end`, `duration/end` or `start/duration`; anything else answers 400.
//! - The quota (45 calls per minute and 1,500 per hour per tenant by default, see
//!   [`crate::Sim::set_hunting_quota`]) is counted in fixed windows aligned to the clock's
//!   minute and hour (the real window shape is not documented), on the simulated clock, or on
//!   the wall clock under `all_visible` (nobody drives the clock there). Every call with a valid
//!   token that is not itself refused by the quota uses a slot, including those answered 400.
//!   When the hour is used up the 429 names the hour, else the minute; `Retry-After` is the
//!   whole seconds (rounded up, at least 1) until that window ends.
//! - The quota message is the wording the Defender advanced hunting API answers (quoted in
//!   MicrosoftDocs/microsoft-365-docs issue #4616: "API calls quota exceeded! maximum allowed
//!   45 per 00:01:00" and "… 1500 per 01:00:00"), inside the Graph error shape with code
//!   `TooManyRequests`; the Graph action's own wording is not published.
//! - Row timestamps lie between `WindowStart` and `WindowEnd` from the `datetime` bindings;
//!   a missing bound comes from `Timespan`, else the window ends at the clock above and starts
//!   one hour before its end. A window that ends before it starts yields no rows. Timestamps
//!   are printed with 7 fractional digits and `Z`, as in the Graph samples.
//! - The answer carries `@odata.context`, `schema` entries keyed `name`/`type` (lower case; one
//!   Graph sample prints `Name`/`Type`, so clients read them case-insensitively) and `results`.
//! - The rows echo the bindings: the mss client's names (`AlertDeviceId`, `AlertDeviceName`,
//!   `AlertMessageId`, `AlertRecipient`, `AlertUserObjectId`, `AlertUserUpn`) or else the
//!   column names they stand for (`DeviceId`, `DeviceName`, `NetworkMessageId`,
//!   `RecipientEmailAddress`, `AccountObjectId`, `AccountUpn`). An empty value counts as absent
//!   (the client binds every name on every query) and a canned default is served instead. The
//!   rows are the same whatever the body filters: the simulator does not evaluate KQL.
//! - Without a known `// mss-query:` id, the first known table name in the body (outside string
//!   literals) picks the canned table; `AlertInfo`/`AlertEvidence` give the user alerts when a
//!   user binding (UPN or object id, either naming) is non-empty, else the device alerts.
//!   Nothing known: 200 with an empty schema and no rows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use crate::faults::graph_error;
use crate::graph::{bad_request, graph_unauthorized, token_tenant, GRAPH_RESOURCE};
use crate::{lock, Endpoint, Inner, SimHuntingCall};

/// Published Defender hunting quotas per tenant.
pub(crate) const DEFAULT_PER_MINUTE: u32 = 45;
pub(crate) const DEFAULT_PER_HOUR: u32 = 1500;

pub(crate) struct HuntingState {
    pub per_minute: u32,
    pub per_hour: u32,
    /// Tenant index -> its current quota windows.
    windows: HashMap<usize, Windows>,
    pub calls: Vec<SimHuntingCall>,
}

impl Default for HuntingState {
    fn default() -> Self {
        HuntingState {
            per_minute: DEFAULT_PER_MINUTE,
            per_hour: DEFAULT_PER_HOUR,
            windows: HashMap::new(),
            calls: Vec::new(),
        }
    }
}

/// Start (epoch seconds) and calls counted of the current minute and hour window.
#[derive(Default)]
struct Windows {
    minute: (i64, u32),
    hour: (i64, u32),
}

/// A refused call: which quota and how long until its window ends.
struct QuotaExceeded {
    limit: u32,
    period: &'static str,
    retry_after_secs: i64,
}

fn window_start(now: DateTime<Utc>, len: i64) -> i64 {
    let s = now.timestamp();
    s - s.rem_euclid(len)
}

fn secs_until(now: DateTime<Utc>, end_epoch: i64) -> i64 {
    let ms = end_epoch * 1000 - now.timestamp_millis();
    ((ms + 999) / 1000).max(1)
}

impl HuntingState {
    /// Counts the call when the tenant's quota allows it.
    fn admit(&mut self, tenant: usize, now: DateTime<Utc>) -> Result<(), QuotaExceeded> {
        let (per_minute, per_hour) = (self.per_minute, self.per_hour);
        let w = self.windows.entry(tenant).or_default();
        let (m, h) = (window_start(now, 60), window_start(now, 3600));
        if w.minute.0 != m {
            w.minute = (m, 0);
        }
        if w.hour.0 != h {
            w.hour = (h, 0);
        }
        if w.hour.1 >= per_hour {
            return Err(QuotaExceeded {
                limit: per_hour,
                period: "01:00:00",
                retry_after_secs: secs_until(now, h + 3600),
            });
        }
        if w.minute.1 >= per_minute {
            return Err(QuotaExceeded {
                limit: per_minute,
                period: "00:01:00",
                retry_after_secs: secs_until(now, m + 60),
            });
        }
        w.minute.1 += 1;
        w.hour.1 += 1;
        Ok(())
    }
}

pub(crate) fn router() -> Router<Arc<Inner>> {
    Router::new().route(
        "/graph/v1.0/security/runHuntingQuery",
        post(run_hunting_query),
    )
}

/// The clock the quota and the default row window run on.
fn hunting_now(inner: &Inner) -> DateTime<Utc> {
    if inner.all_visible {
        Utc::now()
    } else {
        inner.now()
    }
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

async fn run_hunting_query(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inner.count(|s| s.hunting_requests += 1);
    if let Some(r) = inner.fault_gate(Endpoint::GraphHunting, &headers).await {
        return r;
    }
    let tenant = match token_tenant(&inner, &headers, GRAPH_RESOURCE) {
        Ok(t) => t,
        Err(m) => return graph_unauthorized(m),
    };
    let now = hunting_now(&inner);
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
    let (query, timespan) = (text("Query"), text("Timespan"));
    // The entities the query binds belong to a tenant: hunting them with another tenant's
    // token is refused (a query that does not parse is answered 400 below, unchecked).
    if let Some(p) = query.as_deref().and_then(|q| parse_query(q).ok()) {
        let bound = ENTITY_BINDINGS.iter().filter_map(|n| p.bindings.string(n));
        if inner.isolation_check_ids("POST security/runHuntingQuery", tenant, bound) {
            return crate::isolation::forbidden();
        }
    }

    // A denied permission is answered before the quota counts the call.
    let response = match inner.denied(tenant, crate::Permission::ThreatHuntingReadAll) {
        Some(r) => r,
        None => {
            let admitted = lock(&inner.hunting).admit(tenant, now);
            match admitted {
                Err(q) => quota_response(&q),
                Ok(()) => answer(object.as_ref(), now),
            }
        }
    };
    let status = response.status().as_u16();
    tracing::debug!(tenant, status, "runHuntingQuery");
    lock(&inner.hunting).calls.push(SimHuntingCall {
        azure_tenant_id: inner.tenants[tenant].azure_tenant_id.clone(),
        query: query.unwrap_or_default(),
        timespan,
        status,
        at: now,
    });
    response
}

fn quota_response(q: &QuotaExceeded) -> Response {
    let mut r = graph_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        &format!(
            "API calls quota exceeded! maximum allowed {} per {}",
            q.limit, q.period
        ),
    );
    r.headers_mut()
        .insert("Retry-After", HeaderValue::from(q.retry_after_secs));
    r
}

fn answer(object: Option<&Map<String, Value>>, now: DateTime<Utc>) -> Response {
    let Some(m) = object else {
        return bad_request("The request body must be a JSON object.");
    };
    let query = match field(m, "Query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return bad_request("The 'Query' parameter is required and must not be empty.")
        }
        Some(_) => return bad_request("The 'Query' parameter must be a string."),
    };
    let span = match field(m, "Timespan") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_timespan(s, now) {
            Ok(w) => Some(w),
            Err(e) => return bad_request(&format!("Invalid 'Timespan' value '{s}': {e}")),
        },
        Some(_) => return bad_request("The 'Timespan' parameter must be a string."),
    };
    let parsed = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return bad_request(&format!("Syntax error: {e}")),
    };
    let end = parsed
        .bindings
        .datetime("WindowEnd")
        .or(span.map(|s| s.1))
        .unwrap_or(now);
    let start = parsed
        .bindings
        .datetime("WindowStart")
        .or(span.map(|s| s.0))
        .unwrap_or(end - TimeDelta::hours(1));
    let table = canned(&parsed, start, end);
    let schema: Vec<Value> = table
        .schema
        .iter()
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect();
    let results: Vec<Value> = table
        .rows
        .into_iter()
        .map(|row| {
            Value::Object(
                table
                    .schema
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .zip(row)
                    .collect(),
            )
        })
        .collect();
    axum::Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
        "schema": schema,
        "results": results,
    }))
    .into_response()
}

// ---------------------------------------------------------------- Timespan

/// ISO 8601 duration `PnYnMnWnDTnHnMnS` (S may carry a fraction). Years count 365 days and
/// months 30: only the row window depends on it.
fn parse_duration(s: &str) -> Option<TimeDelta> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total_ms: f64 = 0.0;
    let mut any = false;
    let mut eat = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let c = c.to_ascii_uppercase();
            let i = units[next_unit..].iter().position(|(u, _)| *u == c)? + next_unit;
            let n: f64 = num.parse().ok()?;
            if num.contains('.') && c != 'S' {
                return None;
            }
            total_ms += n * units[i].1;
            any = true;
            num.clear();
            next_unit = i + 1;
        }
        num.is_empty().then_some(())
    };
    const DAY: f64 = 86_400_000.0;
    eat(
        date,
        &[
            ('Y', 365.0 * DAY),
            ('M', 30.0 * DAY),
            ('W', 7.0 * DAY),
            ('D', DAY),
        ],
    )?;
    if let Some(t) = time {
        eat(t, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)])?;
    }
    (any && total_ms.is_finite() && total_ms < 1e15)
        .then(|| TimeDelta::milliseconds(total_ms as i64))
}

pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The documented `Timespan` forms, resolved against `now` to `(start, end)`.
pub(crate) fn parse_timespan(
    s: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let s = s.trim();
    let bad = || {
        "expected an ISO 8601 duration, a date-time, start/end, duration/end or start/duration"
            .to_string()
    };
    match s.split_once('/') {
        None => {
            if let Some(d) = parse_duration(s) {
                Ok((now - d, now))
            } else if let Some(t) = parse_instant(s) {
                Ok((t, now))
            } else {
                Err(bad())
            }
        }
        Some((a, b)) => {
            let (a, b) = (a.trim(), b.trim());
            match (parse_instant(a), parse_instant(b)) {
                (Some(x), Some(y)) => Ok((x, y)),
                (Some(x), None) => parse_duration(b).map(|d| (x, x + d)).ok_or_else(bad),
                (None, Some(y)) => parse_duration(a).map(|d| (y - d, y)).ok_or_else(bad),
                (None, None) => Err(bad()),
            }
        }
    }
}

// ---------------------------------------------------------------- query conventions

/// Unescaped `let` binding values, by name (KQL names are case-sensitive). A later binding of
/// the same name replaces the earlier one.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    strings: HashMap<String, String>,
    datetimes: HashMap<String, DateTime<Utc>>,
    /// `dynamic([...])` lists of string literals (the Log Analytics conventions).
    lists: HashMap<String, Vec<String>>,
}

impl Bindings {
    pub fn string(&self, name: &str) -> Option<&str> {
        self.strings.get(name).map(String::as_str)
    }

    pub fn datetime(&self, name: &str) -> Option<DateTime<Utc>> {
        self.datetimes.get(name).copied()
    }

    pub fn list(&self, name: &str) -> Option<&[String]> {
        self.lists.get(name).map(Vec::as_slice)
    }

    /// Whether `name` is bound to anything.
    pub fn has(&self, name: &str) -> bool {
        self.strings.contains_key(name)
            || self.datetimes.contains_key(name)
            || self.lists.contains_key(name)
    }

    fn forget(&mut self, name: &str) {
        self.strings.remove(name);
        self.datetimes.remove(name);
        self.lists.remove(name);
    }
}

#[derive(Debug)]
pub(crate) struct ParsedQuery {
    /// From the first line `// mss-query: <id>`; `None` without that line (or with an empty id).
    pub id: Option<String>,
    pub bindings: Bindings,
    /// Everything from the first line that is neither blank, a `//` comment nor a `let`.
    pub body: String,
}

/// Reads the mss client's query conventions:
///
/// ```text
/// // mss-query: mde-process-events
/// let DeviceName = "tky-pc-0123.corp.contoso.co.jp";
/// let WindowStart = datetime(2024-05-01T09:00:00Z);
/// DeviceProcessEvents | where …
/// ```
///
/// After the optional header, lines that start with `let` (blank and `//` lines between them
/// are skipped) must each hold exactly one binding `let <Name> = "<literal>";` or
/// `let <Name> = datetime(<RFC 3339>);`, optionally indented, with only spaces or tabs around
/// the `=` and before and after the `;`. The literal is a double-quoted KQL string whose only
/// escapes are `\\`, `\"`, `\'`, `\n`, `\r` and `\t`; a raw line break or control character
/// inside it, any other escape, a missing closing quote or anything else after it is an
/// error. A third form, `let <Name> = dynamic([<literal>, …]);` (string literals only, lexed
/// the same way), binds a list. The first other line starts the body, which must not be empty.
pub(crate) fn parse_query(q: &str) -> Result<ParsedQuery, String> {
    parse_query_with(q, None)
}

/// The name a `let` line binds, when the line is one (`let` followed by a blank).
fn let_name(t: &str) -> Option<&str> {
    let r = t.strip_prefix("let")?;
    if !r.starts_with([' ', '\t']) {
        return None;
    }
    let r = r.trim_start_matches([' ', '\t']);
    let end = r
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(r.len());
    Some(&r[..end])
}

/// [`parse_query`], except that with `only = Some(names)` just the `let` lines binding one of
/// `names` are bindings (lexed strictly, as above); any other line, including the query's own
/// `let` statements, starts the body. The Log Analytics endpoint uses this: its rule bodies
/// may declare their own `let`s, which the simulator does not evaluate.
pub(crate) fn parse_query_with(q: &str, only: Option<&[&str]>) -> Result<ParsedQuery, String> {
    let mut lines = q.split('\n').enumerate().peekable();
    let mut id = None;
    if let Some((_, first)) = lines.peek() {
        if let Some(rest) = first.trim().strip_prefix("// mss-query:") {
            let rest = rest.trim();
            id = (!rest.is_empty()).then(|| rest.to_string());
            lines.next();
        }
    }
    let mut bindings = Bindings::default();
    let mut body: Vec<&str> = Vec::new();
    for (no, raw) in lines {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if !body.is_empty() {
            body.push(line);
            continue;
        }
        let t = line.trim_start();
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        let is_binding = match (let_name(t), only) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(n), Some(names)) => names.contains(&n),
        };
        if is_binding {
            parse_let(line, no + 1, &mut bindings)?;
        } else {
            body.push(line);
        }
    }
    let body = body.join("\n");
    if body.trim().is_empty() {
        return Err("the query has no tabular expression after its let statements".into());
    }
    Ok(ParsedQuery { id, bindings, body })
}

fn parse_let(line: &str, line_no: usize, b: &mut Bindings) -> Result<(), String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let at = |i: usize| format!("(line {line_no}, column {})", i + 1);
    let skip_blanks = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t') {
            *i += 1;
        }
    };
    skip_blanks(&mut i);
    i += 3; // "let", checked by the caller
    skip_blanks(&mut i);
    let name_start = i;
    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    let name: String = chars[name_start..i].iter().collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("expected a name after 'let' {}", at(name_start)));
    }
    skip_blanks(&mut i);
    if chars.get(i) != Some(&'=') {
        return Err(format!("expected '=' after 'let {name}' {}", at(i)));
    }
    i += 1;
    skip_blanks(&mut i);

    let rest: String = chars[i..].iter().collect();
    if chars.get(i) == Some(&'"') {
        let value = lex_string(&chars, &mut i, &name, &at)?;
        b.forget(&name);
        b.strings.insert(name.clone(), value);
    } else if rest.starts_with("dynamic(") {
        // `dynamic([ "a", "b" ])`: string literals only, separated by commas.
        i += "dynamic(".len();
        let open = i;
        skip_blanks(&mut i);
        if chars.get(i) != Some(&'[') {
            return Err(format!(
                "expected '[' in dynamic(...) of let '{name}' {}",
                at(i)
            ));
        }
        i += 1;
        let mut items = Vec::new();
        loop {
            skip_blanks(&mut i);
            match chars.get(i) {
                Some(']') if items.is_empty() => break,
                Some('"') => items.push(lex_string(&chars, &mut i, &name, &at)?),
                None => {
                    return Err(format!(
                        "unterminated dynamic(...) in let '{name}' {}",
                        at(open)
                    ))
                }
                Some(c) => {
                    return Err(format!(
                        "unexpected '{}' in the list of let '{name}', expected a string literal {}",
                        c.escape_debug(),
                        at(i)
                    ))
                }
            }
            skip_blanks(&mut i);
            match chars.get(i) {
                Some(',') => i += 1,
                Some(']') => break,
                _ => {
                    return Err(format!(
                        "expected ',' or ']' in the list of let '{name}' {}",
                        at(i)
                    ))
                }
            }
        }
        i += 1; // ']'
        skip_blanks(&mut i);
        if chars.get(i) != Some(&')') {
            return Err(format!(
                "expected ')' after the list of let '{name}' {}",
                at(i)
            ));
        }
        i += 1;
        b.forget(&name);
        b.lists.insert(name.clone(), items);
    } else if rest.starts_with("datetime(") {
        i += "datetime(".len();
        let open = i;
        while i < chars.len() && chars[i] != ')' {
            i += 1;
        }
        if i >= chars.len() {
            return Err(format!(
                "unterminated datetime(...) in let '{name}' {}",
                at(open)
            ));
        }
        let text: String = chars[open..i].iter().collect();
        let Some(t) = parse_instant(text.trim()) else {
            return Err(format!(
                "'{}' is not a valid datetime literal in let '{name}' {}",
                text.trim(),
                at(open)
            ));
        };
        i += 1;
        b.forget(&name);
        b.datetimes.insert(name.clone(), t);
    } else {
        return Err(format!(
            "let '{name}' must bind a double-quoted string literal, datetime(...) or dynamic([...]) {}",
            at(i)
        ));
    }
    skip_blanks(&mut i);
    if chars.get(i) != Some(&';') {
        return Err(match chars.get(i) {
            None => format!("expected ';' at the end of let '{name}' {}", at(i)),
            Some(c) => format!(
                "unexpected '{}' after the value of let '{name}', expected ';' {}",
                c.escape_debug(),
                at(i)
            ),
        });
    }
    i += 1;
    skip_blanks(&mut i);
    if let Some(c) = chars.get(i) {
        return Err(format!(
            "unexpected '{}' after let '{name}' {}",
            c.escape_debug(),
            at(i)
        ));
    }
    Ok(())
}

/// Lexes the double-quoted KQL string literal starting at `chars[*i]` (a `"`), leaving `*i`
/// after its closing quote. Only the escapes `\\`, `\"`, `\'`, `\n`, `\r` and `\t` are
/// accepted; a raw control character (other than a tab) is an error.
fn lex_string(
    chars: &[char],
    i: &mut usize,
    name: &str,
    at: &dyn Fn(usize) -> String,
) -> Result<String, String> {
    let open = *i;
    *i += 1;
    let mut value = String::new();
    loop {
        match chars.get(*i) {
            None => {
                return Err(format!(
                    "unterminated string literal in let '{name}' {}",
                    at(open)
                ))
            }
            Some('"') => {
                *i += 1;
                return Ok(value);
            }
            Some('\\') => {
                let c = match chars.get(*i + 1) {
                    Some('\\') => '\\',
                    Some('"') => '"',
                    Some('\'') => '\'',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some(c) => {
                        return Err(format!(
                            "invalid escape sequence '\\{}' in let '{name}' {}",
                            c.escape_debug(),
                            at(*i)
                        ))
                    }
                    None => {
                        return Err(format!(
                            "unterminated string literal in let '{name}' {}",
                            at(open)
                        ))
                    }
                };
                value.push(c);
                *i += 2;
            }
            Some(c) if c.is_control() && *c != '\t' => {
                return Err(format!(
                    "unescaped control character in the string literal of let '{name}' {}",
                    at(*i)
                ))
            }
            Some(c) => {
                value.push(*c);
                *i += 1;
            }
        }
    }
}

/// Table name -> query id, for queries without a known `// mss-query:` id.
const TABLES: &[(&str, &str)] = &[
    ("DeviceProcessEvents", "mde-process-events"),
    ("DeviceNetworkEvents", "mde-network-events"),
    ("DeviceFileEvents", "mde-file-events"),
    ("EmailEvents", "mdo-message"),
    ("UrlClickEvents", "mdo-url-clicks"),
    ("EmailPostDeliveryEvents", "mdo-post-delivery"),
    ("AADSignInEventsBeta", "user-signins-7d"),
    ("EntraIdSignInEvents", "user-signins-7d"),
    ("IdentityLogonEvents", "user-identity-logons-7d"),
    ("AlertInfo", "alerts"),
    ("AlertEvidence", "alerts"),
];

/// The first identifier of the body (outside string literals) that names a known table.
fn first_table(body: &str) -> Option<&'static str> {
    let mut chars = body.chars().peekable();
    let mut word = String::new();
    let check = |w: &mut String| {
        let hit = TABLES
            .iter()
            .find(|(t, _)| *t == w.as_str())
            .map(|(_, id)| *id);
        w.clear();
        hit
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if let Some(id) = check(&mut word) {
            return Some(id);
        }
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
    check(&mut word)
}

// ---------------------------------------------------------------- canned tables

pub(crate) struct Table {
    pub schema: Vec<(&'static str, &'static str)>,
    pub rows: Vec<Vec<Value>>,
}

const QUERY_IDS: &[&str] = &[
    "mde-process-events",
    "mde-network-events",
    "mde-file-events",
    "mde-device-alerts-7d",
    "mdo-message",
    "mdo-recipients",
    "mdo-url-clicks",
    "mdo-post-delivery",
    "user-signins-7d",
    "user-identity-logons-7d",
    "user-alerts-7d",
];

/// Binding values and the row window for the generators.
struct Ctx<'a> {
    b: &'a Bindings,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Ctx<'_> {
    /// The first non-empty binding of `names`, else `default`. The mss client binds every
    /// name it knows on every query, empty when the alert had no such value.
    fn s(&self, names: &[&str], default: &str) -> Value {
        let v = names
            .iter()
            .filter_map(|n| self.b.string(n))
            .find(|v| !v.is_empty());
        Value::String(v.unwrap_or(default).to_string())
    }

    fn has(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|n| self.b.string(n).is_some_and(|v| !v.is_empty()))
    }

    /// `n` increasing timestamps strictly inside the window (at its start when it is empty),
    /// with a deterministic sub-millisecond part so all 7 fractional digits are exercised.
    fn times(&self, n: usize) -> Vec<Value> {
        let span = (self.end - self.start).num_milliseconds().max(0);
        (0..n)
            .map(|i| {
                let k = i as i64 + 1;
                let ms = span / (n as i64 + 1) * k;
                let extra_ns = (k * 7_654_321 % 1_000_000) / 100 * 100;
                let t =
                    (self.start + TimeDelta::milliseconds(ms) + TimeDelta::nanoseconds(extra_ns))
                        .min(self.end);
                Value::String(kusto_time(t))
            })
            .collect()
    }
}

/// `2024-03-26T09:39:50.7688641Z`, as Graph prints hunting timestamps.
pub(crate) fn kusto_time(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        (t.timestamp_subsec_nanos() / 100).min(9_999_999)
    )
}

/// Binding names, the mss client's first, then the column names they stand for.
const B_DEVICE_ID: &[&str] = &["AlertDeviceId", "DeviceId"];
const B_DEVICE_NAME: &[&str] = &["AlertDeviceName", "DeviceName"];
const B_MESSAGE_ID: &[&str] = &["AlertMessageId", "NetworkMessageId"];
const B_RECIPIENT: &[&str] = &["AlertRecipient", "RecipientEmailAddress"];
const B_USER_OBJECT_ID: &[&str] = &["AlertUserObjectId", "AccountObjectId"];
const B_USER_UPN: &[&str] = &["AlertUserUpn", "AccountUpn"];
/// Every binding that names a tenant's entity, for the isolation check.
const ENTITY_BINDINGS: [&str; 12] = [
    "AlertDeviceId",
    "DeviceId",
    "AlertDeviceName",
    "DeviceName",
    "AlertMessageId",
    "NetworkMessageId",
    "AlertRecipient",
    "RecipientEmailAddress",
    "AlertUserObjectId",
    "AccountObjectId",
    "AlertUserUpn",
    "AccountUpn",
];

const DEVICE_ID: &str = "b7e1c3a9f04d2e6a8c5b1f7d3e9a0c2b4d6f8a1e";
const DEVICE_NAME: &str = "tky-pc-0123.corp.contoso.co.jp";
const ACCOUNT_UPN: &str = "taro.yamada@contoso.co.jp";
const ACCOUNT_OBJECT_ID: &str = "5f0c8e2a-3b1d-4c7e-9a6f-2d8b1e4c7a90";
const MESSAGE_ID: &str = "c1f2e3d4-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
const RECIPIENT: &str = "hanako.suzuki@contoso.co.jp";
const PHISH_SENDER: &str = "noreply@mufg-kakunin.example";
const PHISH_SUBJECT: &str = "【重要】ご請求書の確認のお願い（至急）";

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// The canned table for a parsed query, chosen by id, else by table name, else empty.
pub(crate) fn canned(q: &ParsedQuery, start: DateTime<Utc>, end: DateTime<Utc>) -> Table {
    let ctx = Ctx {
        b: &q.bindings,
        start,
        end,
    };
    let by_id =
        q.id.as_deref()
            .and_then(|id| QUERY_IDS.iter().find(|k| **k == id).copied());
    let id = by_id.or_else(|| {
        first_table(&q.body).map(|id| match id {
            "alerts" if ctx.has(B_USER_UPN) || ctx.has(B_USER_OBJECT_ID) => "user-alerts-7d",
            "alerts" => "mde-device-alerts-7d",
            other => other,
        })
    });
    let mut table = match id {
        Some(id) => generate(id, &ctx),
        None => Table {
            schema: vec![],
            rows: vec![],
        },
    };
    if start > end {
        table.rows.clear();
    }
    table
}

fn generate(id: &str, c: &Ctx<'_>) -> Table {
    match id {
        "mde-process-events" => process_events(c),
        "mde-network-events" => network_events(c),
        "mde-file-events" => file_events(c),
        "mde-device-alerts-7d" => device_alerts(c),
        "mdo-message" => message(c),
        "mdo-recipients" => recipients(c),
        "mdo-url-clicks" => url_clicks(c),
        "mdo-post-delivery" => post_delivery(c),
        "user-signins-7d" => signins(c),
        "user-identity-logons-7d" => identity_logons(c),
        "user-alerts-7d" => user_alerts(c),
        _ => Table {
            schema: vec![],
            rows: vec![],
        },
    }
}

fn process_events(c: &Ctx<'_>) -> Table {
    let (dev, name) = (c.s(B_DEVICE_ID, DEVICE_ID), c.s(B_DEVICE_NAME, DEVICE_NAME));
    let data = [
        (
            "powershell.exe",
            r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            "powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
            7412,
            "9f914d42706fe215501044acd85a32d58aaef1419d404fddfa5d3b48f66ccd9f",
            "WINWORD.EXE",
        ),
        (
            "cmd.exe",
            r"C:\Windows\System32\cmd.exe",
            r"cmd.exe /c whoami /all > %TEMP%\w.txt",
            8120,
            "b99d61d874728edc0918ca0eb10eab93d381e7367e377406e65963366c874450",
            "powershell.exe",
        ),
        (
            "rundll32.exe",
            r"C:\Windows\System32\rundll32.exe",
            r"rundll32.exe C:\Users\t-yamada\AppData\Local\Temp\upd.dll,DllRegisterServer",
            9036,
            "3c1a7e6f0b2d4a58e9c7f1d3b5a70e2c4f6a8b0d1e3f5a7c9e0b2d4f6a8c0e1b",
            "cmd.exe",
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("DeviceId", "String"),
            ("DeviceName", "String"),
            ("ActionType", "String"),
            ("FileName", "String"),
            ("FolderPath", "String"),
            ("ProcessCommandLine", "String"),
            ("ProcessId", "Int64"),
            ("SHA256", "String"),
            ("AccountDomain", "String"),
            ("AccountName", "String"),
            ("InitiatingProcessFileName", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((file, path, cmd, pid, sha, parent), t)| {
                vec![
                    t,
                    dev.clone(),
                    name.clone(),
                    s("ProcessCreated"),
                    s(file),
                    s(path),
                    s(cmd),
                    json!(pid),
                    s(sha),
                    s("CONTOSO"),
                    s("t-yamada"),
                    s(parent),
                ]
            })
            .collect(),
    }
}

fn network_events(c: &Ctx<'_>) -> Table {
    let (dev, name) = (c.s(B_DEVICE_ID, DEVICE_ID), c.s(B_DEVICE_NAME, DEVICE_NAME));
    let data = [
        (
            "ConnectionSuccess",
            "203.0.113.45",
            443,
            "cdn.contoso-update.example",
            "powershell.exe",
        ),
        (
            "ConnectionSuccess",
            "198.51.100.17",
            8080,
            "",
            "rundll32.exe",
        ),
        (
            "ConnectionFailed",
            "203.0.113.200",
            4444,
            "",
            "rundll32.exe",
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("DeviceId", "String"),
            ("DeviceName", "String"),
            ("ActionType", "String"),
            ("RemoteIP", "String"),
            ("RemotePort", "Int32"),
            ("RemoteUrl", "String"),
            ("LocalIP", "String"),
            ("Protocol", "String"),
            ("InitiatingProcessFileName", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((action, ip, port, url, process), t)| {
                vec![
                    t,
                    dev.clone(),
                    name.clone(),
                    s(action),
                    s(ip),
                    json!(port),
                    s(url),
                    s("10.20.1.23"),
                    s("Tcp"),
                    s(process),
                ]
            })
            .collect(),
    }
}

fn file_events(c: &Ctx<'_>) -> Table {
    let (dev, name) = (c.s(B_DEVICE_ID, DEVICE_ID), c.s(B_DEVICE_NAME, DEVICE_NAME));
    let data = [
        (
            "FileCreated",
            "upd.dll",
            r"C:\Users\t-yamada\AppData\Local\Temp\upd.dll",
            "3c1a7e6f0b2d4a58e9c7f1d3b5a70e2c4f6a8b0d1e3f5a7c9e0b2d4f6a8c0e1b",
            245_760,
            "powershell.exe",
        ),
        (
            "FileRenamed",
            "見積書_2024.xlsx.locked",
            r"C:\Users\t-yamada\Documents\見積書_2024.xlsx.locked",
            "5d2e8f1a3c7b9e0d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d0f2a4c6e8b1d",
            48_213,
            "rundll32.exe",
        ),
        (
            "FileDeleted",
            "w.txt",
            r"C:\Users\t-yamada\AppData\Local\Temp\w.txt",
            "",
            0,
            "cmd.exe",
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("DeviceId", "String"),
            ("DeviceName", "String"),
            ("ActionType", "String"),
            ("FileName", "String"),
            ("FolderPath", "String"),
            ("SHA256", "String"),
            ("FileSize", "Int64"),
            ("InitiatingProcessFileName", "String"),
            ("InitiatingProcessAccountName", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((action, file, path, sha, size, process), t)| {
                vec![
                    t,
                    dev.clone(),
                    name.clone(),
                    s(action),
                    s(file),
                    s(path),
                    s(sha),
                    json!(size),
                    s(process),
                    s("t-yamada"),
                ]
            })
            .collect(),
    }
}

fn alerts(c: &Ctx<'_>, data: &[(&str, &str, &str, &str)]) -> Table {
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("AlertId", "String"),
            ("Title", "String"),
            ("Severity", "String"),
            ("ServiceSource", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((id, title, sev, src), t)| vec![t, s(id), s(title), s(sev), s(src)])
            .collect(),
    }
}

fn device_alerts(c: &Ctx<'_>) -> Table {
    alerts(
        c,
        &[
            (
                "da638512345678901234_-1428570123",
                "Suspicious PowerShell command line",
                "Medium",
                "Microsoft Defender for Endpoint",
            ),
            (
                "da638512345678905678_1620394857",
                "Suspicious process injection observed",
                "High",
                "Microsoft Defender for Endpoint",
            ),
        ],
    )
}

fn user_alerts(c: &Ctx<'_>) -> Table {
    alerts(
        c,
        &[
            (
                "ad3f1b7c9e2d4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b",
                "Atypical travel",
                "High",
                "Microsoft Entra ID Protection",
            ),
            (
                "aa9c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
                "Suspected brute-force attack (Kerberos, NTLM)",
                "Medium",
                "Microsoft Defender for Identity",
            ),
            (
                "fa5e7c9a1b-3d5f-7a9c-1e3b-5d7f9a1c3e5b",
                "Email messages containing malicious URL removed after delivery",
                "Informational",
                "Microsoft Defender for Office 365",
            ),
        ],
    )
}

fn message(c: &Ctx<'_>) -> Table {
    let nmid = c.s(B_MESSAGE_ID, MESSAGE_ID);
    let data = [
        (c.s(B_RECIPIENT, RECIPIENT), "Delivered", "Inbox/folder"),
        (s("jiro.sato@contoso.co.jp"), "Junked", "Junk folder"),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("NetworkMessageId", "String"),
            ("SenderFromAddress", "String"),
            ("RecipientEmailAddress", "String"),
            ("Subject", "String"),
            ("DeliveryAction", "String"),
            ("DeliveryLocation", "String"),
            ("ThreatTypes", "String"),
        ],
        rows: data
            .into_iter()
            .zip(times)
            .map(|((rcpt, action, location), t)| {
                vec![
                    t,
                    nmid.clone(),
                    s(PHISH_SENDER),
                    rcpt,
                    s(PHISH_SUBJECT),
                    s(action),
                    s(location),
                    s("Phish"),
                ]
            })
            .collect(),
    }
}

/// `summarize Deliveries = count(), Locations = make_set(DeliveryLocation) by
/// RecipientEmailAddress`, ordered by recipient. How Graph prints a `dynamic` value is not in
/// the API facts; the simulator prints its JSON text as a string.
fn recipients(c: &Ctx<'_>) -> Table {
    let mut data = vec![
        (c.s(B_RECIPIENT, RECIPIENT), 1, r#"["Inbox/folder"]"#),
        (s("jiro.sato@contoso.co.jp"), 1, r#"["Junk folder"]"#),
        (
            s("keiko.tanaka@contoso.co.jp"),
            2,
            r#"["Inbox/folder","Quarantine"]"#,
        ),
    ];
    data.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    Table {
        schema: vec![
            ("RecipientEmailAddress", "String"),
            ("Deliveries", "Int64"),
            ("Locations", "Dynamic"),
        ],
        rows: data
            .into_iter()
            .map(|(rcpt, count, locations)| vec![rcpt, json!(count), s(locations)])
            .collect(),
    }
}

fn url_clicks(c: &Ctx<'_>) -> Table {
    let upn = if c.has(B_USER_UPN) {
        c.s(B_USER_UPN, ACCOUNT_UPN)
    } else {
        c.s(B_RECIPIENT, RECIPIENT)
    };
    let nmid = c.s(B_MESSAGE_ID, MESSAGE_ID);
    let data = [
        (
            "https://mufg-kakunin.example/login?id=8f3a2c",
            "ClickAllowed",
            true,
        ),
        (
            "https://mufg-kakunin.example/verify/account",
            "ClickBlocked",
            false,
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("AccountUpn", "String"),
            ("Url", "String"),
            ("ActionType", "String"),
            ("IsClickedThrough", "Boolean"),
            ("NetworkMessageId", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((url, action, through), t)| {
                vec![
                    t,
                    upn.clone(),
                    s(url),
                    s(action),
                    json!(through),
                    nmid.clone(),
                ]
            })
            .collect(),
    }
}

fn post_delivery(c: &Ctx<'_>) -> Table {
    let nmid = c.s(B_MESSAGE_ID, MESSAGE_ID);
    let rcpt = c.s(B_RECIPIENT, RECIPIENT);
    let data = [
        ("Moved to quarantine", "Phish ZAP", "Success", "Quarantine"),
        (
            "Soft delete",
            "Manual Remediation",
            "Success",
            "Deleted items",
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("NetworkMessageId", "String"),
            ("RecipientEmailAddress", "String"),
            ("Action", "String"),
            ("ActionType", "String"),
            ("ActionResult", "String"),
            ("DeliveryLocation", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((action, kind, result, location), t)| {
                vec![
                    t,
                    nmid.clone(),
                    rcpt.clone(),
                    s(action),
                    s(kind),
                    s(result),
                    s(location),
                ]
            })
            .collect(),
    }
}

fn signins(c: &Ctx<'_>) -> Table {
    let (oid, upn) = (
        c.s(B_USER_OBJECT_ID, ACCOUNT_OBJECT_ID),
        c.s(B_USER_UPN, ACCOUNT_UPN),
    );
    let data = [
        (
            "203.0.113.10",
            "JP",
            "Tokyo",
            "Office 365 Exchange Online",
            0,
            0,
        ),
        ("203.0.113.10", "JP", "Tokyo", "Microsoft Teams", 0, 0),
        (
            "198.51.100.23",
            "JP",
            "Osaka",
            "Office 365 SharePoint Online",
            50126,
            10,
        ),
        (
            "198.51.100.77",
            "NL",
            "Amsterdam",
            "Office 365 Exchange Online",
            0,
            100,
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("AccountObjectId", "String"),
            ("AccountUpn", "String"),
            ("IPAddress", "String"),
            ("Country", "String"),
            ("City", "String"),
            ("Application", "String"),
            ("ErrorCode", "Int32"),
            ("RiskLevelAggregated", "Int32"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((ip, country, city, app, err, risk), t)| {
                vec![
                    t,
                    oid.clone(),
                    upn.clone(),
                    s(ip),
                    s(country),
                    s(city),
                    s(app),
                    json!(err),
                    json!(risk),
                ]
            })
            .collect(),
    }
}

fn identity_logons(c: &Ctx<'_>) -> Table {
    let (oid, upn) = (
        c.s(B_USER_OBJECT_ID, ACCOUNT_OBJECT_ID),
        c.s(B_USER_UPN, ACCOUNT_UPN),
    );
    let data = [
        ("LogonSuccess", "Interactive", "TKY-PC-0123", "203.0.113.21"),
        (
            "LogonFailed",
            "Credentials validation",
            "OSK-PC-0456",
            "198.51.100.23",
        ),
        (
            "LogonSuccess",
            "Resource access",
            "TKY-FS-01",
            "203.0.113.21",
        ),
    ];
    let times = c.times(data.len());
    Table {
        schema: vec![
            ("Timestamp", "DateTime"),
            ("AccountObjectId", "String"),
            ("AccountUpn", "String"),
            ("ActionType", "String"),
            ("LogonType", "String"),
            ("DeviceName", "String"),
            ("IPAddress", "String"),
        ],
        rows: data
            .iter()
            .zip(times)
            .map(|((action, logon, device, ip), t)| {
                vec![
                    t,
                    oid.clone(),
                    upn.clone(),
                    s(action),
                    s(logon),
                    s(device),
                    s(ip),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        use chrono::TimeZone as _;
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, 0).unwrap()
    }

    #[test]
    fn lets_are_lexed_strictly() {
        let q = "// mss-query: mde-process-events\n\
                 let DeviceName = \"a\\\\b\\\"c\\nd\\re\\tf\\'g | let x = 1;\" ;  \r\n\
                 \tlet WindowStart = datetime(2024-05-01T09:00:00Z);\n\
                 // a comment\n\
                 DeviceProcessEvents\n| where DeviceName == DeviceName";
        let p = parse_query(q).unwrap();
        assert_eq!(p.id.as_deref(), Some("mde-process-events"));
        assert_eq!(
            p.bindings.string("DeviceName"),
            Some("a\\b\"c\nd\re\tf'g | let x = 1;")
        );
        assert_eq!(p.bindings.datetime("WindowStart"), Some(at(9, 0)));
        assert!(p.body.starts_with("DeviceProcessEvents"));

        for bad in [
            "let A = \"abc;\nT",
            "let A = \"a\"b\";\nT",
            "let A = \"a\\x\";\nT",
            "let A = \"a\\",
            "let A = \"a\";x\nT",
            "let A = \"a\"\nT",
            "let A = \"a\"; let B = \"b\";\nT",
            "let A = 'a';\nT",
            "let A = datetime(yesterday);\nT",
            "let A = datetime(2024-05-01T09:00:00Z;\nT",
            "let = \"a\";\nT",
            "let A \"a\";\nT",
            "let A = \"a\u{7}\";\nT",
            "let A = \"a\";",
        ] {
            let e = parse_query(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn dynamic_lists_and_restricted_bindings() {
        let q = "// mss-query: x\n\
                 let BreakGlassAccounts = dynamic([ \"a@b.jp\", \"o'h\\\"x@b.jp\" ]);\n\
                 let Empty = dynamic([]);\n\
                 let Ops = dynamic([\"Add member to role\"]);\n\
                 AuditLogs";
        let p = parse_query(q).unwrap();
        assert_eq!(
            p.bindings.list("BreakGlassAccounts").unwrap(),
            ["a@b.jp", "o'h\"x@b.jp"]
        );
        assert_eq!(p.bindings.list("Empty").unwrap().len(), 0);
        // Restricted: a rule's own `let` starts the body, whatever it holds.
        let p = parse_query_with(q, Some(&["BreakGlassAccounts"])).unwrap();
        assert!(p.bindings.has("BreakGlassAccounts") && !p.bindings.has("Empty"));
        assert!(p.body.starts_with("let Empty"), "{}", p.body);
        let own = "let WindowStart = datetime(2024-05-01T09:00:00Z);\nlet x = 5;\nT";
        let p = parse_query_with(own, Some(&["WindowStart"])).unwrap();
        assert_eq!(p.bindings.datetime("WindowStart"), Some(at(9, 0)));
        assert!(
            parse_query(own).is_err(),
            "unrestricted, `let x = 5` is not a binding"
        );
        for bad in [
            "let A = dynamic([\"a\" \"b\"]);\nT",
            "let A = dynamic([\"a\",]);\nT",
            "let A = dynamic([a]);\nT",
            "let A = dynamic([\"a\"];\nT",
            "let A = dynamic(\"a\");\nT",
            "let A = dynamic([\"a\\x\"]);\nT",
            "let A = dynamic([\"a\"]) x;\nT",
        ] {
            assert!(parse_query(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_are_found_outside_literals() {
        assert_eq!(first_table("EmailEvents | take 1"), Some("mdo-message"));
        assert_eq!(
            first_table("print \"DeviceFileEvents\" | union EmailPostDeliveryEvents"),
            Some("mdo-post-delivery")
        );
        assert_eq!(first_table("Foo | where x == 'AlertInfo'"), None);
    }

    #[test]
    fn timespans() {
        let now = at(12, 0);
        assert_eq!(
            parse_timespan("P1D", now).unwrap().0,
            now - TimeDelta::days(1)
        );
        assert_eq!(
            parse_timespan("PT1H30M", now).unwrap().0,
            now - TimeDelta::minutes(90)
        );
        assert_eq!(
            parse_timespan("2024-05-01T08:00:00Z/2024-05-01T09:00:00Z", now).unwrap(),
            (at(8, 0), at(9, 0))
        );
        assert_eq!(
            parse_timespan("PT1H/2024-05-01T09:00:00Z", now).unwrap(),
            (at(8, 0), at(9, 0))
        );
        assert_eq!(
            parse_timespan("2024-05-01T08:00:00Z/PT1H", now).unwrap(),
            (at(8, 0), at(9, 0))
        );
        assert_eq!(
            parse_timespan("2024-05-01T08:00:00Z", now).unwrap(),
            (at(8, 0), now)
        );
        for bad in [
            "", "P", "PT", "1D", "P1H", "P1.5D", "P1D/P2D", "x/y", "P1DT",
        ] {
            assert!(parse_timespan(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_table_is_rectangular_and_inside_its_window() {
        let b = Bindings::default();
        let c = Ctx {
            b: &b,
            start: at(9, 0),
            end: at(10, 0),
        };
        for id in QUERY_IDS {
            let t = generate(id, &c);
            assert!((2..=4).contains(&t.rows.len()), "{id}");
            for row in &t.rows {
                assert_eq!(row.len(), t.schema.len(), "{id}");
                for ((name, ty), v) in t.schema.iter().zip(row) {
                    if *ty == "DateTime" {
                        let ts = parse_instant(v.as_str().unwrap()).unwrap();
                        assert!(ts > at(9, 0) && ts < at(10, 0), "{id} {name} {v}");
                    }
                }
            }
        }
    }

    #[test]
    fn quota_windows() {
        let mut q = HuntingState {
            per_minute: 2,
            per_hour: 3,
            ..HuntingState::default()
        };
        let t0 = at(10, 0) + TimeDelta::seconds(15);
        assert!(q.admit(0, t0).is_ok());
        assert!(q.admit(0, t0).is_ok());
        let e = q.admit(0, t0).unwrap_err();
        assert_eq!((e.limit, e.period, e.retry_after_secs), (2, "00:01:00", 45));
        assert!(q.admit(1, t0).is_ok());
        assert!(q.admit(0, at(10, 1)).is_ok());
        let e = q.admit(0, at(10, 1)).unwrap_err();
        assert_eq!(
            (e.limit, e.period, e.retry_after_secs),
            (3, "01:00:00", 59 * 60)
        );
        assert!(q.admit(0, at(11, 0)).is_ok());
    }
}
