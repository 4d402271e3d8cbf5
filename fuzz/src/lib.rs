//! The properties the fuzz targets check, one public function per target. They live in a
//! library (not in the `fuzz_targets/` files) so that `cargo test` in this crate can replay
//! the committed seed corpus through exactly the same checks on a stable toolchain.
//!
//! Every function takes the raw fuzzer input and panics (= a libFuzzer crash) when a
//! property does not hold. "Does not panic" is only the floor: each target asserts what
//! the code promises about its output.

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use shared::adapters::{graph, http, hunting, loganalytics, mde, opsramp};
use shared::domain::alert::Alert;
use shared::domain::classify::{classify, DecisionKind};
use shared::domain::kql;
use shared::domain::monthly::{
    AlertCounts, Finding, IncidentCounts, IncidentRow, MonthlyNumbers, PreviousMonth,
};
use shared::domain::tenant::Tenant;
use shared::ports::FetchedItem;
use shared::report::{charts, html};

/// The example tenant of the repository, the one every alert is classified against.
const EXAMPLE_TENANT: &str = include_str!("../../infra/tenants/kaede-shoji.example.toml");

fn example_tenant() -> &'static Tenant {
    static T: OnceLock<Tenant> = OnceLock::new();
    T.get_or_init(|| Tenant::from_toml(EXAMPLE_TENANT).expect("the example tenant is valid"))
}

const KINDS: [DecisionKind; 3] = [
    DecisionKind::OutOfScope,
    DecisionKind::Monitored,
    DecisionKind::Incident,
];

// ---------------------------------------------------------------------------------------------
// graph_page
// ---------------------------------------------------------------------------------------------

/// JSON equality where numbers compare as f64 with a relative tolerance: serde_json's default
/// float parsing is not guaranteed to read back its own output bit for bit, and one ULP in an
/// evidence number is not a defect.
pub fn json_approx_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => {
                    p == q || (p - q).abs() <= 1e-12 * p.abs().max(q.abs()).max(f64::MIN_POSITIVE)
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_approx_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_approx_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `graph_adapter::parse_page` (what the Graph client does with every `alerts_v2` page):
/// - a page that is not JSON or has no `value` array is refused as a whole, with a reason;
/// - otherwise there is exactly one item per element, in order; an alert keeps its element
///   as `raw` and its `id`; a malformed item keeps the element's text and a reason;
/// - the stored text of an alert (what the store keeps, and what a rerun reads) parses to the
///   same alert again, and a malformed item's text is still malformed when read again;
/// - every accessor the later steps call works on whatever was accepted, and classifying it
///   against the example tenant never lowers a previous decision (except a tenant mismatch,
///   which is out of scope by rule).
pub fn graph_page(data: &[u8]) {
    let page = match graph::parse_page(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let v: Value = serde_json::from_slice(data).expect("an accepted page is JSON");
    let elements = v["value"].as_array().expect("an accepted page has `value`");
    assert_eq!(page.items.len(), elements.len(), "one item per element");
    assert_eq!(
        page.next_link.as_deref(),
        v.get("@odata.nextLink").and_then(Value::as_str)
    );
    assert_eq!(page.count, v.get("@odata.count").and_then(Value::as_u64));
    let tenant = example_tenant();
    for (item, element) in page.items.iter().zip(elements) {
        match item {
            FetchedItem::Alert(a) => {
                assert_eq!(&a.raw, element, "raw is the element as served");
                assert!(!a.id.trim().is_empty());
                assert_eq!(element["id"].as_str(), Some(a.id.as_str()));
                let stored = a.raw.to_string();
                let back: Value = serde_json::from_str(&stored).expect("stored text is JSON");
                let again = Alert::from_value(back).expect("a stored alert reads back");
                assert_eq!(again.id, a.id);
                assert_eq!(again.last_update, a.last_update);
                assert!(json_approx_eq(
                    &serde_json::to_value(&again.fields).unwrap(),
                    &serde_json::to_value(&a.fields).unwrap()
                ));
                let _ = (a.title(), a.severity(), a.incident_key(), a.is_resolved());
                for e in a.evidence() {
                    let _ = (e.kind(), e.str("mdeDeviceId"));
                    let _ = e.nested_str("userAccount", "userPrincipalName");
                }
                let fresh = classify(tenant, a, None);
                assert!(!fresh.reason.is_empty());
                for k in KINDS {
                    let d = classify(tenant, a, Some(k));
                    assert!(!d.reason.is_empty());
                    if d.tenant_mismatch {
                        assert_eq!(d.kind, DecisionKind::OutOfScope);
                    } else {
                        assert!(d.kind >= k, "{k:?} lowered to {:?}", d.kind);
                        assert_eq!(d.kind, k.max(fresh.kind));
                    }
                }
            }
            FetchedItem::Malformed { raw, reason } => {
                assert!(!reason.is_empty());
                let back: Value = serde_json::from_str(raw).expect("malformed raw is JSON");
                assert!(json_approx_eq(&back, element), "raw text is the element");
                assert!(
                    Alert::from_value(back).is_err(),
                    "still malformed when re-read"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tenant_toml
// ---------------------------------------------------------------------------------------------

/// `Tenant::from_toml`:
/// - a refusal always names a field and says why;
/// - an accepted tenant's file (`source`, what is stored) written back as TOML is accepted
///   again and gives the same file and the same criteria; the same file as JSON (how
///   scenario files carry tenants) gives the same tenant too.
pub fn tenant_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let t = match Tenant::from_toml(text) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.field.is_empty(), "an error names its field: {e:?}");
            assert!(!e.message.is_empty(), "an error says why: {e:?}");
            return;
        }
    };
    let source = serde_json::to_value(&t.source).expect("a tenant file is JSON");
    let written = toml::to_string(&t.source).expect("an accepted tenant file serialises");
    let t2 = Tenant::from_toml(&written)
        .unwrap_or_else(|e| panic!("written back, the file is refused: {e}\n{written}"));
    assert_eq!(serde_json::to_value(&t2.source).unwrap(), source);
    same_criteria(&t, &t2);
    let t3 = Tenant::from_json_value(&source)
        .unwrap_or_else(|e| panic!("as JSON, the file is refused: {e}\n{source}"));
    same_criteria(&t, &t3);
}

fn same_criteria(a: &Tenant, b: &Tenant) {
    assert_eq!(a.id, b.id);
    assert_eq!(a.name, b.name);
    assert_eq!(a.azure_tenant_id, b.azure_tenant_id);
    assert_eq!(a.products, b.products);
    assert_eq!(a.contacts_to, b.contacts_to);
    assert_eq!(a.contacts_cc, b.contacts_cc);
    assert_eq!(a.mde, b.mde);
    assert_eq!(a.mdo, b.mdo);
    assert_eq!(a.mda, b.mda);
    assert_eq!(a.idp_incident_min, b.idp_incident_min);
    assert_eq!(a.sentinel_incident_min, b.sentinel_incident_min);
    assert_eq!(a.response, b.response);
    assert_eq!(a.log_analysis, b.log_analysis);
}

// ---------------------------------------------------------------------------------------------
// error_bodies
// ---------------------------------------------------------------------------------------------

/// The most characters of a server's body that [`http::body_excerpt`] lets through.
pub const EXCERPT_CHARS: usize = 300;

/// Server-supplied text in an error message is bounded and has no control characters: a
/// body can be megabytes, and a newline in it must not forge a log line or a ticket line.
fn assert_clean(what: &str, s: &str, max_chars: usize) {
    assert!(
        !s.chars().any(char::is_control),
        "{what}: control character in {s:?}"
    );
    let n = s.chars().count();
    assert!(
        n <= max_chars,
        "{what}: {n} characters (at most {max_chars})"
    );
}

/// Every function that turns an error body (OpsRamp, Graph, MDE, Advanced Hunting, Log
/// Analytics) into error text, and the 200-answer readers of hunting and Log Analytics. The
/// first two bytes pick the HTTP status; the rest is the body, decoded as `reqwest` does
/// (lossy UTF-8).
/// - `body_excerpt` is the first 300 characters with controls turned into spaces;
/// - every error text built from a body stays clean and bounded (see [`assert_clean`]);
/// - `Retry-After` in seconds gives at most a day (a date, whatever it says, never panics);
/// - an accepted Log Analytics answer has one value per column in every row; an accepted
///   hunting answer names every row key among its columns.
pub fn error_bodies(data: &[u8]) {
    let (status, body) = match data {
        [a, b, rest @ ..] => (100 + u16::from_le_bytes([*a, *b]) % 500, rest),
        _ => (500, data),
    };
    let body = String::from_utf8_lossy(body);
    let body = body.as_ref();

    let ex = http::body_excerpt(body);
    let want: String = body
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    assert_eq!(ex, want);

    // Seconds are capped at a day; an HTTP date is taken as it says (every caller compares
    // the wait with its `max_server_wait` and gives up beyond it), but never panics.
    let waited = http::parse_retry_after(body);
    if body.trim().parse::<f64>().is_ok() {
        if let Some(d) = waited {
            assert!(d <= std::time::Duration::from_secs(86_400), "{d:?}");
        }
    }

    // OpsRamp: a refused call's text is `http::body_excerpt(text)` (checked above); a refused
    // token request is read by `token_refusal_text`.
    // Graph alerts_v2 and Entra-protected calls (identity, MDO): `http::body_excerpt` too.
    assert_clean(
        "hunting::error_text",
        &hunting::error_text(body),
        EXCERPT_CHARS,
    );
    let refusal = loganalytics::classify_refusal(status, body, "tenant-x", "ws-0").to_string();
    // Fixed words (at most ~400 characters) + the message + at most five codes.
    assert_clean(
        "loganalytics::classify_refusal",
        &refusal,
        400 + EXCERPT_CHARS * 7,
    );

    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return;
    };
    assert_clean(
        "opsramp::token_refusal_text",
        &opsramp::token_refusal_text(&v),
        EXCERPT_CHARS,
    );
    assert_clean(
        "mde::refusal_text",
        &mde::refusal_text(status, &v),
        20 + EXCERPT_CHARS * 2,
    );
    if let Some(e) = v.get("error") {
        assert_clean(
            "loganalytics::error_message",
            &loganalytics::error_message(e),
            EXCERPT_CHARS,
        );
        assert!(loganalytics::error_codes(e).len() <= 5);
    }
    if let Ok(r) = loganalytics::parse_answer(&v) {
        for row in &r.rows {
            assert_eq!(row.len(), r.columns.len());
        }
        if let Some(p) = &r.partial {
            assert!(!p.is_empty());
        }
        for c in &r.columns {
            assert!(r.column(&c.name).is_some());
        }
    }
    if let Ok(r) = hunting::parse_answer(&v) {
        for row in &r.rows {
            for k in row.keys() {
                assert!(r.columns.contains(k), "row key {k:?} not among the columns");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kql_literal
// ---------------------------------------------------------------------------------------------

/// What [`kql::string_literal`] promises a value reads back as: itself, with the control
/// characters that KQL has no documented escape for replaced by U+FFFD.
pub fn kql_expected(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// The rules of the simulator's strict Kusto lexer (`lex_string` in sim/src/hunting.rs, not
/// reachable from outside that crate), restated as an independent second reader: escapes
/// `\\ \" \' \n \r \t` only, and no raw control character but a tab. Returns the value and
/// the bytes consumed.
pub fn strict_lex(s: &str) -> Result<(String, usize), String> {
    let mut it = s.char_indices();
    if it.next().map(|(_, c)| c) != Some('"') {
        return Err("no opening quote".into());
    }
    let mut out = String::new();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match it.next().map(|(_, c)| c) {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                other => return Err(format!("invalid escape {other:?}")),
            },
            c if c.is_control() && c != '\t' => return Err(format!("raw control {c:?}")),
            c => out.push(c),
        }
    }
    Err("unterminated".into())
}

/// What follows a literal in a rendered query: if a value could end its literal early, the
/// reader would stop before this.
const TAIL: &str = ";\n| where x == \"y\" // end";

/// `kql::string_literal` and `kql::parse_string_literal`, and the pack's `render`:
/// - the literal has no raw control character (so no newline: one binding, one line);
/// - it reads back (with both readers) as the value, modulo the documented U+FFFD
///   replacement, and ends exactly where it was meant to end, whatever follows;
/// - a rendered pack query keeps its header and bindings on lines 0..=8 whatever the values;
/// - on any text, `parse_string_literal` returns a suffix of its input as the rest, and what
///   it read, written again, reads back the same.
pub fn kql_literal(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    let want = kql_expected(s);

    let lit = kql::string_literal(s);
    assert!(lit.len() >= 2 && lit.starts_with('"') && lit.ends_with('"'));
    assert!(
        !lit.chars().any(char::is_control),
        "raw control character in {lit:?}"
    );
    let (back, rest) = kql::parse_string_literal(&lit).expect("our literal parses");
    assert_eq!(back, want);
    assert_eq!(rest, "");
    let followed = format!("{lit}{TAIL}");
    let (back, rest) = kql::parse_string_literal(&followed).expect("our literal parses");
    assert_eq!(back, want);
    assert_eq!(rest, TAIL, "the literal ended early");
    let (strict, used) = strict_lex(&followed).expect("the strict lexer accepts our literal");
    assert_eq!(strict, want);
    assert_eq!(used, lit.len(), "the strict lexer ended elsewhere");

    let q = kql::pack()
        .iter()
        .find(|q| q.id == "mde-process-events")
        .expect("pack query");
    let mut p = kql::Params {
        start: Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()),
        end: Some(Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap()),
        ..kql::Params::default()
    };
    for name in kql::BINDINGS.iter().filter(|n| !n.starts_with("Window")) {
        p.set(name, s);
    }
    let text = q.render(&p).expect("renders");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "// mss-query: mde-process-events");
    for (i, name) in kql::BINDINGS.iter().enumerate() {
        let rest = lines[1 + i]
            .strip_prefix(&format!("let {name} = "))
            .unwrap_or_else(|| panic!("line {} is {:?}", 1 + i, lines[1 + i]));
        if !name.starts_with("Window") {
            let (v, tail) = kql::parse_string_literal(rest).expect("binding parses");
            assert_eq!(v, want);
            assert_eq!(tail, ";");
        }
    }
    assert_eq!(lines[9], "DeviceProcessEvents");

    if let Ok((v, rest)) = kql::parse_string_literal(s) {
        assert!(s.ends_with(rest) && s.len() >= rest.len() + 2);
        let again = kql::string_literal(&v);
        let (v2, r2) = kql::parse_string_literal(&again).expect("re-written literal parses");
        assert_eq!(v2, kql_expected(&v));
        assert_eq!(r2, "");
        if let Ok((sv, used)) = strict_lex(s) {
            // Both readers accepted the same literal: they read the same value.
            assert_eq!(sv, v);
            assert_eq!(&s[used..], rest);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// html_escape
// ---------------------------------------------------------------------------------------------

/// What [`charts::esc`] drops (its documented rule, restated): controls other than tab,
/// newline and CR; the bidi embedding/override/isolate marks and ALM; U+FFFE/U+FFFF.
pub fn esc_drops(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FFFE}'
                | '\u{FFFF}'
        )
}

const ENTITIES: [(&str, char); 5] = [
    ("&amp;", '&'),
    ("&lt;", '<'),
    ("&gt;", '>'),
    ("&quot;", '"'),
    ("&#39;", '\''),
];

/// Reverses [`charts::esc`]; panics on an `&` that does not start one of its five entities.
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (ent, c) = ENTITIES
            .iter()
            .find(|(e, _)| rest.starts_with(e))
            .unwrap_or_else(|| panic!("bare & in {s:?}"));
        out.push(*c);
        rest = &rest[ent.len()..];
    }
    out.push_str(rest);
    out
}

/// The charts' label rule (`clean` in report/charts.rs), restated: whitespace runs become
/// one space, none at either end; what `esc` drops is dropped.
pub fn chart_clean(s: &str) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in s.chars() {
        if matches!(
            c,
            ' ' | '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        ) {
            space = !out.is_empty();
        } else if !esc_drops(c) {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Element names the report and its charts write. A `<` that opens anything else came from
/// data that was not escaped.
const TAGS: [&str; 31] = [
    "!DOCTYPE",
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "footer",
    "h1",
    "h2",
    "h3",
    "p",
    "section",
    "div",
    "span",
    "br",
    "ol",
    "li",
    "table",
    "colgroup",
    "col",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "figure",
    "figcaption",
    "svg",
    "g",
];
const SVG_TAGS: [&str; 4] = ["rect", "text", "line", "path"];

/// The sequence of tags of a document (`p`, `/p`, …), checked against the known names.
fn tag_sequence(doc: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let b = doc.as_bytes();
    for (i, _) in doc.match_indices('<') {
        let start = i + 1;
        let mut end = start;
        if b.get(end) == Some(&b'/') || b.get(end) == Some(&b'!') {
            end += 1;
        }
        while b.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            end += 1;
        }
        let tag = &doc[start..end];
        let name = tag.trim_start_matches('/');
        assert!(
            TAGS.contains(&name) || SVG_TAGS.contains(&name),
            "unknown tag <{tag} at byte {i}: {:?}",
            &doc[i..doc.len().min(i + 80)]
        );
        tags.push(tag);
    }
    tags
}

/// Entities in a whole document: every `&` starts one that `esc` writes.
fn assert_entities(doc: &str) {
    for (i, _) in doc.match_indices('&') {
        assert!(
            ENTITIES.iter().any(|(e, _)| doc[i..].starts_with(e)),
            "bare & at byte {i}: {:?}",
            &doc[i..doc.len().min(i + 40)]
        );
    }
}

fn assert_svg(svg: &str, title: &str, hbar_labels: Option<&[String]>) {
    let doc = roxmltree::Document::parse(svg)
        .unwrap_or_else(|e| panic!("chart is not well-formed XML: {e}\n{svg}"));
    let root = doc.root_element();
    assert!(root.has_tag_name("svg"));
    assert_eq!(
        doc.descendants().filter(|n| n.has_tag_name("svg")).count(),
        1
    );
    for n in doc.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        assert!(
            SVG_TAGS.contains(&name) || ["svg", "g", "title"].contains(&name),
            "element <{name}> in a chart"
        );
        for a in n.attributes() {
            assert!(
                !a.name().starts_with("on") && !a.name().contains("href"),
                "attribute {}",
                a.name()
            );
        }
        if let Some(t) = n.text() {
            assert!(!t.chars().any(esc_drops), "dropped character kept in {t:?}");
        }
    }
    let first = root.first_element_child().expect("title first");
    assert!(first.has_tag_name("title"));
    assert_eq!(first.text().unwrap_or(""), chart_clean(title));
    if let Some(labels) = hbar_labels {
        let tips: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some("bar"))
            .map(|n| n.first_element_child().and_then(|t| t.text()).unwrap_or(""))
            .collect();
        assert_eq!(tips.len(), labels.len(), "one bar per item");
        for (tip, l) in tips.iter().zip(labels) {
            let want = format!("{}: ", chart_clean(l));
            assert!(tip.starts_with(&want), "tooltip {tip:?} is not {want:?}…");
        }
    }
}

/// Fills every text slot of a month's report from `pieces` (cycled), numbers from `seed`.
fn numbers(pieces: &[&str], seed: &[u8]) -> MonthlyNumbers {
    let mut k = 0usize;
    let mut next = || {
        let p = pieces[k % pieces.len()].to_string();
        k += 1;
        p
    };
    let num = |i: usize| u64::from(seed.get(i % seed.len().max(1)).copied().unwrap_or(1)) + 1;
    let at = Utc.with_ymd_and_hms(2026, 10, 5, 3, 4, 5).unwrap();
    let top = |n: &mut dyn FnMut() -> String, base: usize| -> Vec<(String, u64)> {
        (0..3).map(|i| (n(), num(base + i))).collect()
    };
    MonthlyNumbers {
        tenant: next(),
        tenant_name: next(),
        month: next(),
        due_date: next(),
        alerts: AlertCounts {
            total: num(0) * 10,
            by_product: [("mde".to_string(), num(1))].into(),
            by_severity: [("high".to_string(), num(2)), ("low".to_string(), num(3))].into(),
            by_product_severity: Default::default(),
        },
        decisions: [("incident".to_string(), num(4))].into(),
        incidents: IncidentCounts {
            opened: num(5),
            resolved: 1,
            open: num(6),
        },
        actions: [(next(), [(next(), num(7))].into())].into(),
        investigation_reports: num(8),
        daily: [("mde".to_string(), vec![num(9), 0, num(10)])].into(),
        top_titles: top(&mut next, 11),
        top_devices: top(&mut next, 14),
        top_users: top(&mut next, 17),
        time_to_ticket: top(&mut next, 20),
        incident_rows: vec![IncidentRow {
            ticket_id: Some(next()),
            key: next(),
            severity: next(),
            title: next(),
            product: None,
            opened: at,
            resolved: Some(at),
            actions: vec![next(), next()],
        }],
        metrics: Default::default(),
        previous: Some(PreviousMonth {
            month: next(),
            alerts_total: num(23),
            incidents_opened: 1,
        }),
        review: vec![],
        proposals: vec![Finding {
            id: next(),
            kind: next(),
            text: next(),
            metric: next(),
            value: num(24),
        }],
        generated_at: at,
    }
}

/// `charts::esc`, the charts and the monthly report:
/// - `esc` output has no `< > " '`, every `&` starts one of its five entities, nothing it
///   drops survives, and unescaping gives back the input minus exactly what it documents
///   dropping (so no character is lost, mangled or split);
/// - each chart, fed the input as title and labels, is well-formed XML with one `<svg>`, no
///   element or attribute we did not write, the title and every bar's tooltip as cleaned;
/// - the whole report, with the input in every text slot (split at U+001E), has exactly the
///   tag sequence it has with harmless text in those slots, no bare `&`, and the analyst's
///   comment shown as written.
pub fn html_escape(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();

    let e = charts::esc(s);
    assert!(
        !e.contains(['<', '>', '"', '\'']),
        "markup character left in {e:?}"
    );
    assert!(!e.chars().any(esc_drops));
    let kept: String = s.chars().filter(|c| !esc_drops(*c)).collect();
    assert_eq!(html_unescape(&e), kept);

    let pieces: Vec<&str> = s.split('\u{1e}').collect();
    let labels: Vec<String> = pieces.iter().take(12).map(|p| p.to_string()).collect();
    let items: Vec<(String, f64)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), (i + 1) as f64))
        .collect();
    assert_svg(&charts::hbar(s, &items, s), s, Some(&labels));
    assert_svg(&charts::donut(s, &items), s, None);
    assert_svg(&charts::histogram(s, &items, s, s), s, None);
    let series: Vec<charts::Series> = labels
        .iter()
        .map(|l| charts::Series {
            name: l.clone(),
            values: vec![1.0, 2.0],
        })
        .collect();
    assert_svg(
        &charts::stacked_bars(s, &labels[..labels.len().min(3)], &series, s),
        s,
        None,
    );

    // Harmless text of the same emptiness, so optional blocks appear in both renders.
    let harmless: Vec<&str> = pieces
        .iter()
        .map(|p| if p.trim().is_empty() { *p } else { "x" })
        .collect();
    let hostile = html::render(&numbers(&pieces, data), Some(s));
    let plain = html::render(
        &numbers(&harmless, data),
        Some(if s.trim().is_empty() { s } else { "x" }),
    );
    assert_entities(&hostile);
    assert_eq!(
        tag_sequence(&hostile),
        tag_sequence(&plain),
        "data changed the report's markup"
    );
    if !s.trim().is_empty() {
        let shown = format!("<div class=\"comment\">{}</div>", charts::esc(s.trim()));
        assert!(
            hostile.contains(&shown),
            "the comment is not shown as written"
        );
    }
}

#[cfg(test)]
mod tests {
    //! Replays the committed seed corpus through every check on a stable toolchain:
    //! `cargo test --manifest-path fuzz/Cargo.toml`.

    use std::path::Path;

    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("seed-"))
            {
                check(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
        assert!(n > 0, "no seed for {target}");
    }

    #[test]
    fn graph_page_seeds() {
        replay("graph_page", super::graph_page);
    }

    #[test]
    fn tenant_toml_seeds() {
        replay("tenant_toml", super::tenant_toml);
    }

    #[test]
    fn error_bodies_seeds() {
        replay("error_bodies", super::error_bodies);
    }

    #[test]
    fn kql_literal_seeds() {
        replay("kql_literal", super::kql_literal);
    }

    #[test]
    fn html_escape_seeds() {
        replay("html_escape", super::html_escape);
    }
}
