//! The Sentinel content files: header parsing and the checks every file must pass.
//!
//! A file starts with `// key: value` lines (as in the hunting pack, `shared/hunting/`), then
//! the query. Here the header is strict: an unknown or repeated key, or a comment line in
//! the header that is not `key: value`, is an error naming the file and line, so a typo
//! cannot silently drop a setting.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};

use super::duration::IsoDuration;
use crate::domain::kql::{datetime_literal, string_literal};

/// The columns every activity rule returns, in this order: what the digest prints.
pub const ACTIVITY_COLUMNS: [&str; 5] = ["TimeGenerated", "Actor", "Target", "Operation", "Detail"];

/// The `let` bindings the digest prepends to an activity rule, in this order.
pub const ACTIVITY_BINDINGS: [&str; 3] = ["WindowStart", "WindowEnd", "BreakGlassAccounts"];

/// The half-open window filter each activity rule applies to its main table.
pub const WINDOW_FILTER: &str = "TimeGenerated >= WindowStart and TimeGenerated < WindowEnd";

/// Severities of a scheduled analytics rule, as Sentinel spells them.
pub const SEVERITIES: [&str; 4] = ["High", "Medium", "Low", "Informational"];

/// MITRE ATT&CK tactics as Sentinel's `AttackTactic` spells them (API 2023-02-01).
pub const TACTICS: [&str; 17] = [
    "Reconnaissance",
    "ResourceDevelopment",
    "InitialAccess",
    "Execution",
    "Persistence",
    "PrivilegeEscalation",
    "DefenseEvasion",
    "CredentialAccess",
    "Discovery",
    "LateralMovement",
    "Collection",
    "Exfiltration",
    "CommandAndControl",
    "Impact",
    "PreAttack",
    "ImpairProcessControl",
    "InhibitResponseFunction",
];

/// Entity types and their identifiers that rules here may map (Sentinel's entity mapping
/// reference; the common subset).
pub const ENTITY_IDENTIFIERS: [(&str, &[&str]); 8] = [
    (
        "Account",
        &[
            "Name",
            "FullName",
            "NTDomain",
            "DnsDomain",
            "UPNSuffix",
            "Sid",
            "AadTenantId",
            "AadUserId",
            "PUID",
            "IsDomainJoined",
            "DisplayName",
            "ObjectGuid",
        ],
    ),
    (
        "Host",
        &[
            "DnsDomain",
            "NTDomain",
            "HostName",
            "FullName",
            "NetBiosName",
            "AzureID",
            "OMSAgentID",
            "OSFamily",
            "OSVersion",
            "IsDomainJoined",
        ],
    ),
    ("IP", &["Address"]),
    ("URL", &["Url"]),
    ("CloudApplication", &["AppId", "Name", "InstanceName"]),
    (
        "Mailbox",
        &[
            "MailboxPrimaryAddress",
            "DisplayName",
            "Upn",
            "ExternalDirectoryObjectId",
            "RiskLevel",
        ],
    ),
    (
        "MailMessage",
        &[
            "Recipient",
            "Urls",
            "Threats",
            "Sender",
            "P1Sender",
            "P1SenderDisplayName",
            "P1SenderDomain",
            "SenderIP",
            "P2Sender",
            "P2SenderDisplayName",
            "P2SenderDomain",
            "ReceivedDate",
            "NetworkMessageId",
            "InternetMessageId",
            "Subject",
            "DeliveryAction",
            "DeliveryLocation",
        ],
    ),
    ("FileHash", &["Algorithm", "Value"]),
];

/// Sentinel's limits for a scheduled rule.
pub const MIN_INTERVAL_SECONDS: u64 = 5 * 60;
pub const MAX_INTERVAL_SECONDS: u64 = 14 * 86_400;
pub const MAX_QUERY_CHARS: usize = 10_000;
pub const MAX_ENTITY_MAPPINGS: usize = 10;
pub const MAX_IDENTIFIERS_PER_ENTITY: usize = 3;

/// Splits `// key: value` header lines from the body. `allowed` lists every key a file of
/// this kind may carry.
pub(crate) fn split_header(
    file: &str,
    text: &str,
    allowed: &[&str],
) -> anyhow::Result<(BTreeMap<String, String>, String)> {
    let mut head = BTreeMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.peek().copied() {
        let t = line.trim();
        if t.is_empty() {
            lines.next();
            continue;
        }
        let Some(comment) = t.strip_prefix("//") else {
            break;
        };
        let n = i + 1;
        let (k, v) = comment
            .split_once(':')
            .ok_or_else(|| anyhow!("{file}:{n}: a header line is `// key: value`, found {t:?}"))?;
        let (k, v) = (k.trim(), v.trim());
        if !allowed.contains(&k) {
            bail!(
                "{file}:{n}: unknown header key {k:?} (allowed: {})",
                allowed.join(", ")
            );
        }
        if v.is_empty() {
            bail!("{file}:{n}: header `// {k}:` has no value");
        }
        if head.insert(k.to_string(), v.to_string()).is_some() {
            bail!("{file}:{n}: header `// {k}:` is given twice");
        }
        lines.next();
    }
    let body: Vec<&str> = lines.map(|(_, l)| l).collect();
    let body = body.join("\n").trim().to_string();
    if body.is_empty() {
        bail!("{file}: the query body is empty");
    }
    Ok((head, body))
}

fn required<'a>(
    file: &str,
    head: &'a BTreeMap<String, String>,
    k: &str,
) -> anyhow::Result<&'a str> {
    head.get(k)
        .map(String::as_str)
        .ok_or_else(|| anyhow!("{file}: header `// {k}:` is missing"))
}

fn check_id(file: &str, id: &str) -> anyhow::Result<()> {
    let stem = file
        .rsplit('/')
        .next()
        .unwrap_or(file)
        .trim_end_matches(".kql");
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("{file}: id {id:?} must be lowercase letters, digits and '-'");
    }
    if id != stem {
        bail!("{file}: id {id:?} must equal the file name ({stem:?})");
    }
    Ok(())
}

fn check_japanese(file: &str, key: &str, v: &str) -> anyhow::Result<()> {
    if v.is_ascii() {
        bail!("{file}: `// {key}:` is customer-facing and must be Japanese, found {v:?}");
    }
    Ok(())
}

fn tables(file: &str, head: &BTreeMap<String, String>, body: &str) -> anyhow::Result<Vec<String>> {
    let list: Vec<String> = required(file, head, "tables")?
        .split(',')
        .map(|t| t.trim().to_string())
        .collect();
    for t in &list {
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("{file}: table name {t:?} in `// tables:` is not a table name");
        }
        if !contains_word(body, t) {
            bail!("{file}: `// tables:` lists {t} but the query never reads it");
        }
    }
    Ok(list)
}

/// `word` occurs in `text` with no identifier character on either side.
fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The output column names of the query's last `| project` (which must be followed by
/// nothing that changes the columns: only `order by`, `sort by`, `take`, `limit`).
pub fn final_project_columns(file: &str, body: &str) -> anyhow::Result<Vec<String>> {
    let lines: Vec<&str> = body.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("| project "))
        .ok_or_else(|| anyhow!("{file}: the query must end with `| project <columns>`"))?;
    let mut text = lines[start].trim_start()["| project ".len()..].to_string();
    let mut i = start + 1;
    while i < lines.len() && !lines[i].trim_start().starts_with('|') {
        text.push(' ');
        text.push_str(lines[i].trim());
        i += 1;
    }
    for l in &lines[i..] {
        let t = l.trim_start();
        let harmless = ["| order by ", "| sort by ", "| take ", "| limit "]
            .iter()
            .any(|p| t.starts_with(p));
        if !harmless && !t.is_empty() && !t.starts_with("//") {
            bail!("{file}: after the final `| project` only order by/sort by/take/limit may follow, found {t:?}");
        }
    }
    let mut cols = Vec::new();
    for item in split_top_level(&text, ',') {
        let item = item.trim();
        let name = match find_assignment(item) {
            Some(i) if item[i + 1..].trim().is_empty() => "",
            Some(i) => item[..i].trim(),
            None => item,
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("{file}: cannot read the column name of {item:?} in the final project");
        }
        cols.push(name.to_string());
    }
    Ok(cols)
}

/// Splits at `sep` outside brackets and string literals.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut escaped, mut from) = (0i32, None::<char>, false, 0);
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[from..i]);
                from = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

/// The byte index of a top-level `=` that assigns (not `==`, `!=`, `<=`, `>=`, `=~`).
fn find_assignment(item: &str) -> Option<usize> {
    let b = item.as_bytes();
    let mut depth = 0i32;
    let mut quote = None::<u8>;
    for i in 0..b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q && (i == 0 || b[i - 1] != b'\\') {
                quote = None;
            }
            continue;
        }
        match c {
            b'"' | b'\'' => quote = Some(c),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'=' if depth == 0 => {
                let prev = if i > 0 { b[i - 1] } else { b' ' };
                let next = b.get(i + 1).copied().unwrap_or(b' ');
                if !matches!(prev, b'=' | b'!' | b'<' | b'>') && !matches!(next, b'=' | b'~') {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// One activity rule of `infra/sentinel/activity/`: what the digest runs for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRule {
    pub id: String,
    /// Japanese title, shown as the digest's section heading.
    pub title: String,
    /// Japanese: why an administrator should know.
    pub why: String,
    pub tables: Vec<String>,
    /// How far before `WindowStart` the query reads (e.g. the known countries of
    /// `signin-new-country`): the request's timespan must start that much earlier.
    pub lookback: Option<IsoDuration>,
    pub body: String,
}

const ACTIVITY_KEYS: [&str; 5] = ["id", "title", "why", "tables", "lookback"];

impl ActivityRule {
    pub fn parse(file: &str, text: &str) -> anyhow::Result<ActivityRule> {
        let (head, body) = split_header(file, text, &ACTIVITY_KEYS)?;
        let id = required(file, &head, "id")?.to_string();
        check_id(file, &id)?;
        let title = required(file, &head, "title")?.to_string();
        let why = required(file, &head, "why")?.to_string();
        check_japanese(file, "title", &title)?;
        check_japanese(file, "why", &why)?;
        let tables = tables(file, &head, &body)?;
        let lookback = match head.get("lookback") {
            Some(l) => {
                Some(IsoDuration::parse(l).with_context(|| format!("{file}: `// lookback:`"))?)
            }
            None => None,
        };
        if !body.contains(WINDOW_FILTER) {
            bail!("{file}: the query must filter `{WINDOW_FILTER}` (half-open: no gap, no overlap between periods)");
        }
        for banned in ["ago(", "now(", "between (WindowStart"] {
            if body.contains(banned) {
                bail!("{file}: {banned:?} found: the period comes only from WindowStart/WindowEnd, half-open");
            }
        }
        if body.contains("WindowStart -") && lookback.is_none() {
            bail!(
                "{file}: the query reads before WindowStart: declare how far with `// lookback:`"
            );
        }
        let cols = final_project_columns(file, &body)?;
        if cols != ACTIVITY_COLUMNS {
            bail!(
                "{file}: the final project gives ({}); an activity rule gives exactly ({})",
                cols.join(", "),
                ACTIVITY_COLUMNS.join(", ")
            );
        }
        Ok(ActivityRule {
            id,
            title,
            why,
            tables,
            lookback,
            body,
        })
    }

    /// Whether the body reads the break-glass list (the others ignore it).
    pub fn uses_break_glass(&self) -> bool {
        contains_word(&self.body, "BreakGlassAccounts")
    }

    /// The `let` lines the digest puts in front of the body: the half-open period as
    /// datetime literals, and the break-glass UPNs as a dynamic array of string literals.
    pub fn bindings(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        break_glass: &[String],
    ) -> anyhow::Result<String> {
        if start >= end {
            bail!("the period must have start < end, got {start} .. {end}");
        }
        let list: Vec<String> = break_glass.iter().map(|u| string_literal(u)).collect();
        Ok(format!(
            "let WindowStart = {};\nlet WindowEnd = {};\nlet BreakGlassAccounts = dynamic([{}]);\n",
            datetime_literal(start),
            datetime_literal(end),
            list.join(", ")
        ))
    }

    /// The query the digest sends for the period `start .. end` (half-open).
    pub fn query(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        break_glass: &[String],
    ) -> anyhow::Result<String> {
        Ok(format!(
            "// mss-activity: {}\n{}{}",
            self.id,
            Self::bindings(start, end, break_glass)?,
            self.body
        ))
    }

    /// Where the request's data must start for the period starting at `start`.
    pub fn data_start(&self, start: DateTime<Utc>) -> DateTime<Utc> {
        let back = self.lookback.as_ref().map_or(0, |l| l.seconds);
        start - chrono::Duration::seconds(back as i64)
    }
}

/// One entity mapping: `Account:FullName=AccountUpn,AadUserId=UserId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityMapping {
    pub entity_type: String,
    /// (identifier, column)
    pub fields: Vec<(String, String)>,
}

/// One scheduled analytics rule of `infra/sentinel/analytics/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsRule {
    pub id: String,
    pub title: String,
    pub why: String,
    pub tables: Vec<String>,
    pub severity: String,
    pub tactics: Vec<String>,
    pub frequency: IsoDuration,
    pub period: IsoDuration,
    pub entities: Vec<EntityMapping>,
    pub body: String,
}

const ANALYTICS_KEYS: [&str; 9] = [
    "id",
    "title",
    "why",
    "tables",
    "severity",
    "tactics",
    "frequency",
    "period",
    "entities",
];

impl AnalyticsRule {
    pub fn parse(file: &str, text: &str) -> anyhow::Result<AnalyticsRule> {
        let (head, body) = split_header(file, text, &ANALYTICS_KEYS)?;
        let id = required(file, &head, "id")?.to_string();
        check_id(file, &id)?;
        let title = required(file, &head, "title")?.to_string();
        let why = required(file, &head, "why")?.to_string();
        check_japanese(file, "title", &title)?;
        check_japanese(file, "why", &why)?;
        let tables = tables(file, &head, &body)?;
        let severity = required(file, &head, "severity")?.to_string();
        if !SEVERITIES.contains(&severity.as_str()) {
            bail!(
                "{file}: severity {severity:?} is not one of {}",
                SEVERITIES.join(", ")
            );
        }
        let mut tactics = Vec::new();
        for t in required(file, &head, "tactics")?.split(',').map(str::trim) {
            if !TACTICS.contains(&t) {
                bail!(
                    "{file}: tactic {t:?} is not one of Sentinel's: {}",
                    TACTICS.join(", ")
                );
            }
            if tactics.iter().any(|x| x == t) {
                bail!("{file}: tactic {t} is listed twice");
            }
            tactics.push(t.to_string());
        }
        let duration = |k: &str| -> anyhow::Result<IsoDuration> {
            let d = IsoDuration::parse(required(file, &head, k)?)
                .with_context(|| format!("{file}: `// {k}:`"))?;
            if !(MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&d.seconds) {
                bail!("{file}: `// {k}: {d}` must be between PT5M and P14D");
            }
            Ok(d)
        };
        let frequency = duration("frequency")?;
        let period = duration("period")?;
        if period.seconds < frequency.seconds {
            bail!("{file}: period {period} is shorter than frequency {frequency}: rows between runs would never be seen");
        }
        let columns = final_project_columns(file, &body)?;
        let entities = parse_entities(file, required(file, &head, "entities")?, &columns)?;
        for name in ACTIVITY_BINDINGS {
            if contains_word(&body, name) {
                bail!("{file}: {name} is an activity binding; Sentinel runs analytics rules without bindings");
            }
        }
        if body.chars().count() > MAX_QUERY_CHARS {
            bail!("{file}: the query is longer than Sentinel's {MAX_QUERY_CHARS} characters");
        }
        Ok(AnalyticsRule {
            id,
            title,
            why,
            tables,
            severity,
            tactics,
            frequency,
            period,
            entities,
            body,
        })
    }
}

/// `Type:Identifier=Column[,Identifier=Column]; Type:…`, every column one of `columns`.
pub fn parse_entities(
    file: &str,
    spec: &str,
    columns: &[String],
) -> anyhow::Result<Vec<EntityMapping>> {
    let mut out = Vec::new();
    for mapping in spec.split(';').map(str::trim).filter(|m| !m.is_empty()) {
        let (ty, fields) = mapping.split_once(':').ok_or_else(|| {
            anyhow!("{file}: entity mapping {mapping:?} is not Type:Identifier=Column")
        })?;
        let ty = ty.trim();
        let known = ENTITY_IDENTIFIERS
            .iter()
            .find(|(t, _)| *t == ty)
            .ok_or_else(|| {
                anyhow!(
                    "{file}: entity type {ty:?} is not one of {}",
                    ENTITY_IDENTIFIERS.map(|(t, _)| t).join(", ")
                )
            })?
            .1;
        let mut pairs = Vec::new();
        for f in fields.split(',').map(str::trim) {
            let (ident, col) = f
                .split_once('=')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| anyhow!("{file}: entity field {f:?} is not Identifier=Column"))?;
            if !known.contains(&ident) {
                bail!(
                    "{file}: {ty} has no identifier {ident:?} (allowed: {})",
                    known.join(", ")
                );
            }
            if !columns.iter().any(|c| c == col) {
                bail!(
                    "{file}: entity column {col} is not in the final project ({})",
                    columns.join(", ")
                );
            }
            pairs.push((ident.to_string(), col.to_string()));
        }
        if pairs.len() > MAX_IDENTIFIERS_PER_ENTITY {
            bail!(
                "{file}: {ty} maps {} identifiers; Sentinel allows {MAX_IDENTIFIERS_PER_ENTITY}",
                pairs.len()
            );
        }
        out.push(EntityMapping {
            entity_type: ty.to_string(),
            fields: pairs,
        });
    }
    if out.is_empty() {
        bail!("{file}: `// entities:` maps nothing");
    }
    if out.len() > MAX_ENTITY_MAPPINGS {
        bail!(
            "{file}: {} entity mappings; Sentinel allows {MAX_ENTITY_MAPPINGS}",
            out.len()
        );
    }
    Ok(out)
}

/// The workbook definition of `infra/sentinel/workbook/` (the `serializedData` object).
#[derive(Debug, Clone, PartialEq)]
pub struct Workbook {
    pub id: String,
    pub data: serde_json::Value,
}

/// Workbook item types used here: 1 text, 3 query, 9 parameters, 12 group.
const WORKBOOK_ITEM_TYPES: [u64; 4] = [1, 3, 9, 12];

impl Workbook {
    pub fn parse(file: &str, text: &str) -> anyhow::Result<Workbook> {
        let id = file
            .rsplit('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".json")
            .to_string();
        let data: serde_json::Value =
            serde_json::from_str(text).with_context(|| format!("{file}: not JSON"))?;
        if data.get("version").and_then(|v| v.as_str()) != Some("Notebook/1.0") {
            bail!("{file}: \"version\" must be \"Notebook/1.0\"");
        }
        if data.get("fallbackResourceIds").is_some() {
            bail!(
                "{file}: leave out fallbackResourceIds: the renderer sets the tenant's workspace"
            );
        }
        let items = data
            .get("items")
            .and_then(|v| v.as_array())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| anyhow!("{file}: \"items\" must be a non-empty array"))?;
        let mut names = std::collections::BTreeSet::new();
        check_items(file, items, &mut names)?;
        Ok(Workbook { id, data })
    }

    /// Every query of the workbook, by item name.
    pub fn queries(&self) -> Vec<(String, String)> {
        fn walk(items: &[serde_json::Value], out: &mut Vec<(String, String)>) {
            for it in items {
                if let Some(q) = it.pointer("/content/query").and_then(|q| q.as_str()) {
                    let name = it.get("name").and_then(|n| n.as_str()).unwrap_or("");
                    out.push((name.to_string(), q.to_string()));
                }
                if let Some(sub) = it.pointer("/content/items").and_then(|v| v.as_array()) {
                    walk(sub, out);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(items) = self.data.get("items").and_then(|v| v.as_array()) {
            walk(items, &mut out);
        }
        out
    }
}

fn check_items(
    file: &str,
    items: &[serde_json::Value],
    names: &mut std::collections::BTreeSet<String>,
) -> anyhow::Result<()> {
    for (i, it) in items.iter().enumerate() {
        let name = it
            .get("name")
            .and_then(|v| v.as_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| anyhow!("{file}: items[{i}] has no \"name\""))?;
        if !names.insert(name.to_string()) {
            bail!("{file}: item name {name:?} is used twice");
        }
        let ty = it.get("type").and_then(|v| v.as_u64()).unwrap_or(0);
        if !WORKBOOK_ITEM_TYPES.contains(&ty) {
            bail!("{file}: item {name}: type {ty} is not one of {WORKBOOK_ITEM_TYPES:?}");
        }
        let content = it
            .get("content")
            .and_then(|v| v.as_object())
            .ok_or_else(|| anyhow!("{file}: item {name} has no \"content\" object"))?;
        if ty == 3 {
            for k in [
                "version",
                "query",
                "title",
                "queryType",
                "resourceType",
                "visualization",
            ] {
                if !content.contains_key(k) {
                    bail!("{file}: query item {name} has no \"{k}\"");
                }
            }
            let q = content["query"].as_str().unwrap_or("");
            if q.trim().is_empty() {
                bail!("{file}: query item {name} has an empty query");
            }
            if content.get("timeContext").is_none()
                && content.get("timeContextFromParameter").is_none()
            {
                bail!("{file}: query item {name} has neither timeContext nor timeContextFromParameter");
            }
            if content["title"].as_str().is_some_and(str::is_ascii) {
                bail!(
                    "{file}: query item {name}: the title is customer-facing and must be Japanese"
                );
            }
        }
        if let Some(sub) = content.get("items").and_then(|v| v.as_array()) {
            check_items(file, sub, names)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVITY: &str = "// id: a\n// title: テスト\n// why: 理由\n// tables: AuditLogs\nAuditLogs\n| where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd\n| project TimeGenerated, Actor = \"x\", Target = \"y\", Operation = OperationName, Detail = strcat(\"a, b\", \"c\")\n| order by TimeGenerated asc";

    #[test]
    fn activity_rule_parses() {
        let r = ActivityRule::parse("a.kql", ACTIVITY).unwrap();
        assert_eq!(r.id, "a");
        assert_eq!(r.tables, ["AuditLogs"]);
        assert!(r.body.starts_with("AuditLogs\n"));
        assert!(!r.uses_break_glass());
    }

    #[test]
    fn broken_activity_rules_say_what_is_wrong() {
        let cases: [(&str, &str, &str); 12] = [
            ("// id: a", "// id: b", "must equal the file name"),
            ("// id: a", "// id: A", "lowercase"),
            ("// title: テスト", "// title: test", "must be Japanese"),
            (
                "// tables: AuditLogs",
                "// tables: SigninLogs",
                "never reads it",
            ),
            (
                "// tables: AuditLogs",
                "// tabels: AuditLogs",
                "unknown header key \"tabels\"",
            ),
            (
                "// why: 理由",
                "// why: 理由\n// why: 二度目",
                "given twice",
            ),
            ("// why: 理由", "// why:", "has no value"),
            (
                "// why: 理由",
                "// a comment without a colon",
                "// key: value",
            ),
            (
                "TimeGenerated < WindowEnd",
                "TimeGenerated <= WindowEnd",
                "half-open",
            ),
            (
                "| where TimeGenerated",
                "| where TimeGenerated > ago(1d) and TimeGenerated",
                "\"ago(\"",
            ),
            (
                "Operation = OperationName, ",
                "",
                "exactly (TimeGenerated, Actor, Target, Operation, Detail)",
            ),
            (
                "| order by TimeGenerated asc",
                "| extend X = 1",
                "only order by",
            ),
        ];
        for (from, to, want) in cases {
            assert!(ACTIVITY.contains(from), "{from}");
            let text = ACTIVITY.replacen(from, to, 1);
            let e = format!("{:#}", ActivityRule::parse("a.kql", &text).unwrap_err());
            assert!(e.contains(want), "{e}\n  !~ {want}");
        }
        let e = ActivityRule::parse("a.kql", "// id: a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let lookback = ACTIVITY.replace(
            "| project",
            "| join kind=leftanti (AuditLogs | where TimeGenerated >= WindowStart - 1d) on Id\n| project",
        );
        let e = ActivityRule::parse("a.kql", &lookback)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lookback"), "{e}");
        let declared = lookback.replace("// tables:", "// lookback: P1D\n// tables:");
        let r = ActivityRule::parse("a.kql", &declared).unwrap();
        assert_eq!(r.lookback.unwrap().seconds, 86_400);
    }

    #[test]
    fn final_project_reads_multi_line_and_nested_items() {
        let body = "T\n| project TimeGenerated, A = iff(x == 1, \"a=b, c\", 'd'), B = f(g(1, 2)),\n    C, D = x != y\n| order by A";
        assert_eq!(
            final_project_columns("f", body).unwrap(),
            ["TimeGenerated", "A", "B", "C", "D"]
        );
        assert!(final_project_columns("f", "T | take 1").is_err());
        assert!(final_project_columns("f", "T\n| project A = \n").is_err());
    }

    const ANALYTICS: &str = "// id: r\n// title: テスト\n// why: 理由\n// tables: SigninLogs\n// severity: Medium\n// tactics: CredentialAccess, InitialAccess\n// frequency: PT1H\n// period: P1D\n// entities: Account:FullName=AccountUpn; IP:Address=IPAddress\nSigninLogs\n| project TimeGenerated, AccountUpn = UserPrincipalName, IPAddress";

    #[test]
    fn analytics_rule_parses() {
        let r = AnalyticsRule::parse("r.kql", ANALYTICS).unwrap();
        assert_eq!(r.severity, "Medium");
        assert_eq!(r.tactics, ["CredentialAccess", "InitialAccess"]);
        assert_eq!((r.frequency.seconds, r.period.seconds), (3_600, 86_400));
        assert_eq!(r.entities.len(), 2);
        assert_eq!(
            r.entities[0].fields,
            [("FullName".to_string(), "AccountUpn".to_string())]
        );
    }

    #[test]
    fn broken_analytics_rules_say_what_is_wrong() {
        let cases: [(&str, &str, &str); 14] = [
            (
                "// severity: Medium",
                "// severity: medium",
                "severity \"medium\"",
            ),
            ("// severity: Medium\n", "", "`// severity:` is missing"),
            (
                "CredentialAccess,",
                "Credential Access,",
                "tactic \"Credential Access\"",
            ),
            (
                "CredentialAccess, InitialAccess",
                "InitialAccess, InitialAccess",
                "listed twice",
            ),
            ("// frequency: PT1H", "// frequency: 1h", "ISO 8601"),
            (
                "// frequency: PT1H",
                "// frequency: PT1M",
                "between PT5M and P14D",
            ),
            ("// period: P1D", "// period: P15D", "between PT5M and P14D"),
            (
                "// period: P1D",
                "// period: PT30M",
                "shorter than frequency",
            ),
            (
                "IP:Address=IPAddress",
                "IP:Address=Ip",
                "entity column Ip is not in the final project",
            ),
            (
                "IP:Address=IPAddress",
                "IP:Adress=IPAddress",
                "IP has no identifier \"Adress\"",
            ),
            (
                "IP:Address=IPAddress",
                "Ip:Address=IPAddress",
                "entity type \"Ip\"",
            ),
            ("IP:Address=IPAddress", "IP:Address", "Identifier=Column"),
            (
                "SigninLogs\n|",
                "SigninLogs\n| where TimeGenerated >= WindowStart\n|",
                "WindowStart is an activity binding",
            ),
            (
                "Account:FullName=AccountUpn",
                "Account:FullName=AccountUpn,Name=AccountUpn,AadUserId=AccountUpn,Sid=AccountUpn",
                "Sentinel allows 3",
            ),
        ];
        for (from, to, want) in cases {
            assert!(ANALYTICS.contains(from), "{from}");
            let text = ANALYTICS.replacen(from, to, 1);
            let e = format!("{:#}", AnalyticsRule::parse("r.kql", &text).unwrap_err());
            assert!(e.contains(want), "{e}\n  !~ {want}");
        }
        let long = ANALYTICS.replace(
            "SigninLogs\n|",
            &format!("SigninLogs // {}\n|", "x".repeat(MAX_QUERY_CHARS)),
        );
        let e = AnalyticsRule::parse("r.kql", &long)
            .unwrap_err()
            .to_string();
        assert!(e.contains("10000"), "{e}");
    }

    #[test]
    fn bindings_are_literals_on_their_own_lines() {
        use chrono::TimeZone;
        let s = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let e = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
        let b = ActivityRule::bindings(
            s,
            e,
            &["a@example.jp".into(), "x\"]); print 1 //\nz".into()],
        )
        .unwrap();
        assert_eq!(
            b,
            "let WindowStart = datetime(2026-11-01T00:00:00Z);\nlet WindowEnd = datetime(2026-11-02T00:00:00Z);\nlet BreakGlassAccounts = dynamic([\"a@example.jp\", \"x\\\"]); print 1 //\\nz\"]);\n"
        );
        assert_eq!(b.lines().count(), 3);
        assert!(ActivityRule::bindings(e, s, &[]).is_err());
        assert!(ActivityRule::bindings(s, s, &[]).is_err());
    }

    #[test]
    fn contains_word_respects_identifier_edges() {
        assert!(contains_word("x | AuditLogs | y", "AuditLogs"));
        assert!(!contains_word("AuditLogsX", "AuditLogs"));
        assert!(!contains_word("MyAuditLogs", "AuditLogs"));
    }
}
