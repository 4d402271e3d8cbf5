//! The Advanced Hunting query pack and the only way alert-derived values reach KQL.
//!
//! Queries live as files in `shared/hunting/` (one question each, with a Japanese title and
//! the products it serves) so an analyst can read, review and run them in the portal as they
//! are. Alert values (device ids, UPNs, message ids — attacker-influenced) never enter a
//! query body: they are bound by `let` statements at the top, each value a KQL string
//! literal built by [`string_literal`]. The body refers to the names only.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};

use super::alert::Product;

/// A KQL double-quoted string literal of `v`. Kusto documents backslash escapes for the
/// quote characters, tab, newline and the backslash itself; `\r` and other control
/// characters have no documented escape, so they become U+FFFD: the value then cannot match
/// anything (a hostile value has no business matching), and can never end the literal.
pub fn string_literal(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A KQL datetime literal. Only ever built from our own `DateTime`, never from text.
pub fn datetime_literal(t: DateTime<Utc>) -> String {
    format!("datetime({})", t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Which time window a query looks at, relative to the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The alert's first activity − 1 h … its creation + 1 h.
    Around,
    /// Seven days up to the alert's creation + 1 h.
    Days7,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuntingQuery {
    pub id: String,
    pub title: String,
    pub products: Vec<Product>,
    /// Binding names of which at least one must be non-empty for the query to make sense.
    pub needs: Vec<String>,
    pub window: Window,
    pub body: String,
}

/// The bindings a query body may use. Anything else is refused when the pack is loaded, so
/// a typo cannot silently turn a filter into "every row".
pub const BINDINGS: [&str; 8] = [
    "AlertDeviceId",
    "AlertDeviceName",
    "AlertMessageId",
    "AlertRecipient",
    "AlertUserObjectId",
    "AlertUserUpn",
    "WindowStart",
    "WindowEnd",
];

const PACK_FILES: [(&str, &str); 11] = [
    (
        "mde-process-events.kql",
        include_str!("../../hunting/mde-process-events.kql"),
    ),
    (
        "mde-network-events.kql",
        include_str!("../../hunting/mde-network-events.kql"),
    ),
    (
        "mde-file-events.kql",
        include_str!("../../hunting/mde-file-events.kql"),
    ),
    (
        "mde-device-alerts-7d.kql",
        include_str!("../../hunting/mde-device-alerts-7d.kql"),
    ),
    (
        "mdo-message.kql",
        include_str!("../../hunting/mdo-message.kql"),
    ),
    (
        "mdo-recipients.kql",
        include_str!("../../hunting/mdo-recipients.kql"),
    ),
    (
        "mdo-url-clicks.kql",
        include_str!("../../hunting/mdo-url-clicks.kql"),
    ),
    (
        "mdo-post-delivery.kql",
        include_str!("../../hunting/mdo-post-delivery.kql"),
    ),
    (
        "user-signins-7d.kql",
        include_str!("../../hunting/user-signins-7d.kql"),
    ),
    (
        "user-identity-logons-7d.kql",
        include_str!("../../hunting/user-identity-logons-7d.kql"),
    ),
    (
        "user-alerts-7d.kql",
        include_str!("../../hunting/user-alerts-7d.kql"),
    ),
];

/// Parses one pack file: `// key: value` header lines, then the body.
pub fn parse_query(file: &str, text: &str) -> anyhow::Result<HuntingQuery> {
    let mut head: BTreeMap<&str, &str> = BTreeMap::new();
    let mut body = Vec::new();
    let mut in_head = true;
    for line in text.lines() {
        if in_head {
            if let Some(c) = line.trim_start().strip_prefix("//") {
                if let Some((k, v)) = c.split_once(':') {
                    head.insert(k.trim(), v.trim());
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            in_head = false;
        }
        body.push(line);
    }
    let get = |k: &str| {
        head.get(k)
            .copied()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow!("{file}: header `// {k}:` is missing"))
    };
    let id = get("id")?.to_string();
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("{file}: id {id:?} must be lowercase letters, digits and '-'");
    }
    let products = get("products")?
        .split(',')
        .map(|p| Product::parse(p.trim()).ok_or_else(|| anyhow!("{file}: unknown product {p:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let needs: Vec<String> = get("needs")?
        .split('|')
        .map(|n| n.trim().to_string())
        .collect();
    let window = match get("window")? {
        "around" => Window::Around,
        "days7" => Window::Days7,
        w => bail!("{file}: window {w:?} is neither `around` nor `days7`"),
    };
    let body = body.join("\n").trim().to_string();
    if body.is_empty() {
        bail!("{file}: the query body is empty");
    }
    for n in &needs {
        if !BINDINGS.contains(&n.as_str()) {
            bail!("{file}: needs unknown binding {n:?}");
        }
    }
    Ok(HuntingQuery {
        id,
        title: get("title")?.to_string(),
        products,
        needs,
        window,
        body,
    })
}

/// The repository's pack. Loaded once; a broken file is a build-time mistake that the unit
/// tests catch, so a panic here cannot reach production unnoticed.
pub fn pack() -> &'static [HuntingQuery] {
    static PACK: std::sync::OnceLock<Vec<HuntingQuery>> = std::sync::OnceLock::new();
    PACK.get_or_init(|| {
        PACK_FILES
            .iter()
            .map(|(f, t)| parse_query(f, t).expect("hunting pack file parses"))
            .collect()
    })
}

/// Values bound into a query. Missing string bindings are bound to "" so every query
/// compiles whatever the alert carried; `needs` decides whether it is worth running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub strings: BTreeMap<String, String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Params {
    pub fn set(&mut self, name: &str, v: &str) -> &mut Self {
        self.strings.insert(name.to_string(), v.to_string());
        self
    }
    fn get(&self, name: &str) -> &str {
        self.strings.get(name).map(String::as_str).unwrap_or("")
    }
}

impl HuntingQuery {
    pub fn serves(&self, p: Product) -> bool {
        self.products.contains(&p)
    }

    pub fn runnable(&self, p: &Params) -> bool {
        self.needs.iter().any(|n| !p.get(n).is_empty())
    }

    /// The text sent to `runHuntingQuery`: an id comment (so results and logs can be tied
    /// to the pack file), the bindings, the body.
    pub fn render(&self, p: &Params) -> anyhow::Result<String> {
        let (start, end) = match (p.start, p.end) {
            (Some(s), Some(e)) if s < e => (s, e),
            _ => bail!("query {}: a time window (start < end) is required", self.id),
        };
        let mut out = format!("// mss-query: {}\n", self.id);
        for name in BINDINGS {
            let lit = match name {
                "WindowStart" => datetime_literal(start),
                "WindowEnd" => datetime_literal(end),
                n => string_literal(p.get(n)),
            };
            out.push_str(&format!("let {name} = {lit};\n"));
        }
        out.push_str(&self.body);
        Ok(out)
    }
}

/// `start/end` for the request's `Timespan`, matching the bound window so the service does
/// not scan its 30-day default.
pub fn timespan(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    format!(
        "{}/{}",
        start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Reverses [`string_literal`] (tests and the simulator's strict parser share the rules).
pub fn parse_string_literal(s: &str) -> anyhow::Result<(String, &str)> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => bail!("a string literal starts with '\"'"),
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => bail!("bad escape {other:?}"),
            },
            '\n' | '\r' => bail!("a newline inside a string literal"),
            c => out.push(c),
        }
    }
    Err(anyhow!("unterminated string literal")).context("parsing a KQL literal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const HOSTILE: [&str; 9] = [
        r#"a"b"#,
        r"C:\Users\x\",
        "x\" | take 100000 //",
        "x\"; let WindowStart = datetime(2000-01-01); //",
        "line1\nline2 | union *",
        "cr\rlf",
        "\"\"\"``` triple",
        "テスト端末\t\u{7}",
        "' or 1==1 //",
    ];

    /// What a value reads as once parsed back: itself, with undocumented controls replaced.
    fn expected(v: &str) -> String {
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

    #[test]
    fn pack_parses_and_every_product_is_served() {
        let p = pack();
        assert_eq!(p.len(), PACK_FILES.len());
        let mut ids: Vec<_> = p.iter().map(|q| q.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), p.len(), "ids are unique");
        for prod in [
            Product::Mde,
            Product::Mdo,
            Product::Mda,
            Product::Mdi,
            Product::Idp,
        ] {
            assert!(p.iter().any(|q| q.serves(prod)), "{prod} has no query");
        }
        for q in p {
            // The body must use bindings, never a pasted-in value.
            assert!(!q.body.contains('"'), "{}: literal in body", q.id);
            assert!(!q.title.is_ascii(), "{}: title in Japanese", q.id);
        }
    }

    #[test]
    fn hostile_values_round_trip_and_never_escape_the_literal() {
        for v in HOSTILE {
            let lit = string_literal(v);
            let (back, rest) = parse_string_literal(&lit).unwrap();
            assert_eq!(rest, "", "{v:?} ended its literal early");
            assert_eq!(back, expected(v));
            assert!(!lit.contains('\n') && !lit.contains('\r'), "{lit}");
        }
    }

    #[test]
    fn rendered_query_binds_each_value_on_its_own_line() {
        let q = pack()
            .iter()
            .find(|q| q.id == "mde-process-events")
            .unwrap();
        for v in HOSTILE {
            let mut p = Params {
                start: Some(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()),
                end: Some(Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap()),
                ..Params::default()
            };
            p.set("AlertDeviceId", v);
            let text = q.render(&p).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[0], "// mss-query: mde-process-events");
            // The bindings occupy exactly lines 1..=8, whatever the value held.
            for (i, name) in BINDINGS.iter().enumerate() {
                let l = lines[1 + i];
                let rest = l
                    .strip_prefix(&format!("let {name} = "))
                    .unwrap_or_else(|| panic!("line {l:?}"));
                if name.starts_with("Window") {
                    assert!(rest.starts_with("datetime(2026-11-01T"), "{rest}");
                } else {
                    let (val, tail) = parse_string_literal(rest).unwrap();
                    assert_eq!(tail, ";");
                    if *name == "AlertDeviceId" {
                        assert_eq!(val, expected(v));
                    }
                }
            }
            assert_eq!(lines[9], "DeviceProcessEvents");
        }
    }

    #[test]
    fn needs_and_window_decide_what_runs() {
        let q = pack().iter().find(|q| q.id == "user-signins-7d").unwrap();
        let mut p = Params::default();
        assert!(!q.runnable(&p));
        p.set("AlertUserUpn", "a@example.jp");
        assert!(q.runnable(&p));
        assert!(q.render(&p).is_err(), "no window, no query");
    }

    #[test]
    fn broken_pack_files_say_what_is_wrong() {
        for (text, want) in [
            ("// title: x\n// products: mde\n// needs: AlertDeviceId\n// window: around\nT", "id"),
            ("// id: a\n// title: x\n// products: zz\n// needs: AlertDeviceId\n// window: around\nT", "unknown product"),
            ("// id: a\n// title: x\n// products: mde\n// needs: DeviceId\n// window: around\nT", "unknown binding"),
            ("// id: a\n// title: x\n// products: mde\n// needs: AlertDeviceId\n// window: week\nT", "window"),
            ("// id: a\n// title: x\n// products: mde\n// needs: AlertDeviceId\n// window: around\n", "empty"),
        ] {
            let e = parse_query("f.kql", text).unwrap_err().to_string();
            assert!(e.contains(want), "{e} !~ {want}");
        }
    }
}
