//! ARM templates for the customer's Sentinel workspace: the scheduled analytics rules and
//! the dashboard workbook. Deterministic: the same tenant and options give the same bytes
//! (sorted object keys, name GUIDs hashed from the tenant and the content id).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

use super::content::{
    final_project_columns, AnalyticsRule, Workbook, ENTITY_IDENTIFIERS, MAX_ENTITY_MAPPINGS,
    MAX_IDENTIFIERS_PER_ENTITY, MAX_INTERVAL_SECONDS, MAX_QUERY_CHARS, MIN_INTERVAL_SECONDS,
    SEVERITIES, TACTICS,
};
use super::duration::IsoDuration;

pub const DEPLOYMENT_SCHEMA: &str =
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";
pub const CONTENT_VERSION: &str = "1.0.0.0";
pub const ALERT_RULE_TYPE: &str = "Microsoft.OperationalInsights/workspaces/providers/alertRules";
/// A GA `Microsoft.SecurityInsights` version with Scheduled rules, entity mappings and
/// incident configuration.
pub const ALERT_RULES_API: &str = "2023-02-01";
pub const WORKBOOK_TYPE: &str = "Microsoft.Insights/workbooks";
pub const WORKBOOKS_API: &str = "2022-04-01";
/// Where the workbook's data names its workspace until the deployment fills it in.
pub const WORKSPACE_PLACEHOLDER: &str = "__MSS_WORKSPACE_RESOURCE_ID__";
/// Sentinel's default; irrelevant while suppression is off, but the API requires it.
pub const SUPPRESSION_DURATION: &str = "PT5H";
const WORKSPACE_ID_EXPR: &str =
    "[resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspace'))]";

/// A name-based UUID (RFC 9562 version 8, SHA-256 of `name`, the hash-based variant the RFC
/// describes): the same name always gives the same resource name, so a redeployment updates
/// the rule or workbook instead of adding a second one.
pub fn name_guid(name: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| {
            p.len() == n
                && p.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

/// The same value with every object's keys inserted in sorted order, so the output does
/// not depend on whether serde_json was built with `preserve_order`.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        v => v.clone(),
    }
}

/// Pretty JSON with a final newline: what goes into the files.
pub fn to_text(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&sorted(v)).expect("a Value serializes");
    s.push('\n');
    s
}

fn workspace_parameter() -> Value {
    json!({
        "type": "string",
        "metadata": {"description": "The Log Analytics workspace that Microsoft Sentinel runs on (its name)."}
    })
}

/// The query as deployed: a first line that says where it comes from, then the body.
pub fn deployed_query(rule: &AnalyticsRule) -> String {
    format!(
        "// mss-rule: {} (deployed by mss sentinel render; edits in the portal are overwritten)\n{}",
        rule.id, rule.body
    )
}

/// One rule as it is rendered for a tenant.
pub struct RuleResource<'a> {
    pub rule: &'a AnalyticsRule,
    pub enabled: bool,
}

pub fn analytics_template(tenant_id: &str, rules: &[RuleResource<'_>]) -> Value {
    let resources: Vec<Value> = rules
        .iter()
        .map(|r| {
            let rule = r.rule;
            let guid = name_guid(&format!("mss-sentinel/{tenant_id}/analytics/{}", rule.id));
            let entities: Vec<Value> = rule
                .entities
                .iter()
                .map(|e| {
                    json!({
                        "entityType": e.entity_type,
                        "fieldMappings": e.fields.iter().map(|(i, c)| json!({"identifier": i, "columnName": c})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "type": ALERT_RULE_TYPE,
                "apiVersion": ALERT_RULES_API,
                "name": format!("[concat(parameters('workspace'), '/Microsoft.SecurityInsights/', '{guid}')]"),
                "kind": "Scheduled",
                "properties": {
                    "displayName": format!("MSS: {}", rule.title),
                    "description": rule.why,
                    "severity": rule.severity,
                    "enabled": r.enabled,
                    "query": deployed_query(rule),
                    "queryFrequency": rule.frequency.text,
                    "queryPeriod": rule.period.text,
                    "triggerOperator": "GreaterThan",
                    "triggerThreshold": 0,
                    "suppressionDuration": SUPPRESSION_DURATION,
                    "suppressionEnabled": false,
                    "tactics": rule.tactics,
                    "entityMappings": entities,
                    "eventGroupingSettings": {"aggregationKind": "AlertPerResult"},
                    "incidentConfiguration": {"createIncident": true},
                },
            })
        })
        .collect();
    json!({
        "$schema": DEPLOYMENT_SCHEMA,
        "contentVersion": CONTENT_VERSION,
        "metadata": {"generator": "mss sentinel render", "tenant": tenant_id, "content": "analytics rules"},
        "parameters": {"workspace": workspace_parameter()},
        "resources": resources,
    })
}

/// The workbook's `serializedData` object for a workspace (`fallbackResourceIds` set).
pub fn workbook_data(wb: &Workbook, workspace_resource_id: &str) -> Value {
    let mut data = wb.data.clone();
    data["fallbackResourceIds"] = json!([workspace_resource_id]);
    sorted(&data)
}

/// The workbook as an ARM template. With `workspace_resource_id` empty, the template finds
/// the workspace itself (`resourceId()` of the `workspace` parameter in the resource group
/// deployed to) and writes it into the workbook's data at deployment time.
pub fn workbook_template(
    tenant_id: &str,
    tenant_name: &str,
    wb: &Workbook,
    workspace_resource_id: &str,
) -> Value {
    let guid = name_guid(&format!("mss-sentinel/{tenant_id}/workbook/{}", wb.id));
    let mut template = json!({
        "$schema": DEPLOYMENT_SCHEMA,
        "contentVersion": CONTENT_VERSION,
        "metadata": {"generator": "mss sentinel render", "tenant": tenant_id, "content": "workbook"},
        "parameters": {"workspace": workspace_parameter()},
        "resources": [{
            "type": WORKBOOK_TYPE,
            "apiVersion": WORKBOOKS_API,
            "name": guid,
            "location": "[resourceGroup().location]",
            "kind": "shared",
            "properties": {
                "displayName": format!("MSS セキュリティ監視ダッシュボード（{tenant_name}）"),
                "version": "1.0",
                "category": "sentinel",
            },
        }],
    });
    let props = &mut template["resources"][0]["properties"];
    if workspace_resource_id.is_empty() {
        let data = serde_json::to_string(&workbook_data(wb, WORKSPACE_PLACEHOLDER))
            .expect("a Value serializes");
        template["parameters"]["workspaceResourceId"] = json!({
            "type": "string",
            "defaultValue": WORKSPACE_ID_EXPR,
            "metadata": {"description": "The workspace's resource id; by default the workspace of that name in the resource group deployed to."}
        });
        template["variables"] = json!({ "workbookData": data });
        let props = &mut template["resources"][0]["properties"];
        props["serializedData"] = json!(format!(
            "[replace(variables('workbookData'), '{WORKSPACE_PLACEHOLDER}', parameters('workspaceResourceId'))]"
        ));
        props["sourceId"] = json!("[parameters('workspaceResourceId')]");
    } else {
        props["serializedData"] = json!(serde_json::to_string(&workbook_data(
            wb,
            workspace_resource_id
        ))
        .expect("a Value serializes"));
        props["sourceId"] = json!(workspace_resource_id);
    }
    sorted(&template)
}

// ---- structural validation ---------------------------------------------------------------------

fn str_at<'a>(v: &'a Value, path: &str, what: &str) -> anyhow::Result<&'a str> {
    v.pointer(path)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{what}: {path} must be a string"))
}

fn is_api_version(s: &str) -> bool {
    let date = s.strip_suffix("-preview").unwrap_or(s);
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Checks an ARM expression string (`[...]`) names only declared parameters and variables
/// and has balanced parentheses and quotes.
fn check_expression(
    e: &str,
    params: &BTreeSet<String>,
    vars: &BTreeSet<String>,
    at: &str,
) -> anyhow::Result<()> {
    let inner = &e[1..e.len() - 1];
    let (mut depth, mut in_str) = (0i32, false);
    for c in inner.chars() {
        match c {
            '\'' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            bail!("{at}: unbalanced ')' in {e}");
        }
    }
    if depth != 0 || in_str {
        bail!("{at}: unbalanced parentheses or quotes in {e}");
    }
    for (func, declared) in [("parameters('", params), ("variables('", vars)] {
        for (i, _) in inner.match_indices(func) {
            let rest = &inner[i + func.len()..];
            let name = rest.split('\'').next().unwrap_or("");
            if !declared.contains(name) {
                bail!("{at}: {e} uses {func}{name}') which the template does not declare");
            }
        }
    }
    Ok(())
}

fn walk_strings(
    v: &Value,
    at: &str,
    f: &mut dyn FnMut(&str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match v {
        Value::String(s) => f(s, at),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| walk_strings(x, &format!("{at}[{i}]"), f)),
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| walk_strings(x, &format!("{at}.{k}"), f)),
        _ => Ok(()),
    }
}

/// Structural checks of a template this module renders (no ARM linter runs offline here):
/// the deployment schema and content version, expressions referring to declared names,
/// and per resource type the required properties with Sentinel's limits.
pub fn validate_template(t: &Value) -> anyhow::Result<()> {
    if str_at(t, "/$schema", "template")? != DEPLOYMENT_SCHEMA {
        bail!("template: $schema must be {DEPLOYMENT_SCHEMA}");
    }
    let cv = str_at(t, "/contentVersion", "template")?;
    if cv.split('.').count() != 4
        || !cv
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        bail!("template: contentVersion {cv:?} is not n.n.n.n");
    }
    let params: BTreeSet<String> = t
        .get("parameters")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("template: parameters must be an object"))?
        .iter()
        .map(|(k, v)| match v.get("type").and_then(Value::as_str) {
            Some("string" | "securestring" | "int" | "bool" | "object" | "array") => Ok(k.clone()),
            _ => Err(anyhow!("template: parameter {k} has no valid type")),
        })
        .collect::<anyhow::Result<_>>()?;
    if !params.contains("workspace") {
        bail!("template: the `workspace` parameter is missing");
    }
    let vars: BTreeSet<String> = t
        .get("variables")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    walk_strings(t, "template", &mut |s, at| {
        if s.starts_with('[') && s.ends_with(']') && !s.starts_with("[[") {
            check_expression(s, &params, &vars, at)?;
        }
        Ok(())
    })?;
    let resources = t
        .get("resources")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| anyhow!("template: resources must be a non-empty array"))?;
    let mut names = BTreeSet::new();
    for (i, r) in resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        let ty = str_at(r, "/type", &at)?;
        let api = str_at(r, "/apiVersion", &at)?;
        if !is_api_version(api) {
            bail!("{at}: apiVersion {api:?} is not YYYY-MM-DD[-preview]");
        }
        let name = str_at(r, "/name", &at)?;
        if !names.insert(name.to_string()) {
            bail!("{at}: name {name} is used twice");
        }
        if !r.get("properties").is_some_and(Value::is_object) {
            bail!("{at}: properties must be an object");
        }
        match ty {
            ALERT_RULE_TYPE => validate_alert_rule(r, &at)?,
            WORKBOOK_TYPE => validate_workbook(r, t, &at)?,
            other => bail!("{at}: unexpected resource type {other}"),
        }
    }
    Ok(())
}

fn validate_alert_rule(r: &Value, at: &str) -> anyhow::Result<()> {
    let name = str_at(r, "/name", at)?;
    let guid = name
        .strip_prefix("[concat(parameters('workspace'), '/Microsoft.SecurityInsights/', '")
        .and_then(|s| s.strip_suffix("')]"))
        .ok_or_else(|| {
            anyhow!("{at}: name {name} is not <workspace>/Microsoft.SecurityInsights/<guid>")
        })?;
    if !is_guid(guid) {
        bail!("{at}: rule id {guid} is not a GUID");
    }
    if r.get("kind").and_then(Value::as_str) != Some("Scheduled") {
        bail!("{at}: kind must be Scheduled");
    }
    let p = &r["properties"];
    let display = str_at(p, "/displayName", at)?;
    let at = format!("{at} ({display})");
    let at = at.as_str();
    str_at(p, "/description", at)?;
    let severity = str_at(p, "/severity", at)?;
    if !SEVERITIES.contains(&severity) {
        bail!("{at}: severity {severity}");
    }
    for k in ["enabled", "suppressionEnabled"] {
        if !p.get(k).is_some_and(Value::is_boolean) {
            bail!("{at}: {k} must be a boolean");
        }
    }
    let query = str_at(p, "/query", at)?;
    if query.trim().is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        bail!("{at}: query must be 1..={MAX_QUERY_CHARS} characters");
    }
    let dur = |k: &str| -> anyhow::Result<IsoDuration> {
        IsoDuration::parse(str_at(p, &format!("/{k}"), at)?).with_context(|| format!("{at}: {k}"))
    };
    let freq = dur("queryFrequency")?;
    let period = dur("queryPeriod")?;
    dur("suppressionDuration")?;
    for d in [&freq, &period] {
        if !(MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&d.seconds) {
            bail!("{at}: {d} is outside PT5M..P14D");
        }
    }
    if period.seconds < freq.seconds {
        bail!("{at}: queryPeriod {period} < queryFrequency {freq}");
    }
    if !matches!(
        str_at(p, "/triggerOperator", at)?,
        "GreaterThan" | "LessThan" | "Equal" | "NotEqual"
    ) {
        bail!("{at}: triggerOperator");
    }
    if p.get("triggerThreshold").and_then(Value::as_u64).is_none() {
        bail!("{at}: triggerThreshold must be a non-negative integer");
    }
    let tactics = p
        .get("tactics")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| anyhow!("{at}: tactics must be a non-empty array"))?;
    for t in tactics {
        if !t.as_str().is_some_and(|t| TACTICS.contains(&t)) {
            bail!("{at}: tactic {t} is not one of Sentinel's");
        }
    }
    let columns = final_project_columns(at, query)?;
    let maps = p
        .get("entityMappings")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("{at}: entityMappings must be an array"))?;
    if maps.len() > MAX_ENTITY_MAPPINGS {
        bail!("{at}: more than {MAX_ENTITY_MAPPINGS} entity mappings");
    }
    for m in maps {
        let ty = str_at(m, "/entityType", at)?;
        let idents = ENTITY_IDENTIFIERS
            .iter()
            .find(|(t, _)| *t == ty)
            .ok_or_else(|| anyhow!("{at}: entity type {ty}"))?
            .1;
        let fields = m
            .get("fieldMappings")
            .and_then(Value::as_array)
            .filter(|f| (1..=MAX_IDENTIFIERS_PER_ENTITY).contains(&f.len()))
            .ok_or_else(|| {
                anyhow!(
                    "{at}: {ty}: fieldMappings must have 1..={MAX_IDENTIFIERS_PER_ENTITY} entries"
                )
            })?;
        for f in fields {
            let ident = str_at(f, "/identifier", at)?;
            let col = str_at(f, "/columnName", at)?;
            if !idents.contains(&ident) {
                bail!("{at}: {ty} has no identifier {ident}");
            }
            if !columns.iter().any(|c| c == col) {
                bail!("{at}: entity column {col} is not in the query's final project");
            }
        }
    }
    if p.pointer("/incidentConfiguration/createIncident") != Some(&Value::Bool(true)) {
        bail!("{at}: incidentConfiguration.createIncident must be true (a finding is notified)");
    }
    Ok(())
}

fn validate_workbook(r: &Value, t: &Value, at: &str) -> anyhow::Result<()> {
    let name = str_at(r, "/name", at)?;
    if !is_guid(name) {
        bail!("{at}: a workbook's name must be a GUID, got {name}");
    }
    if r.get("kind").and_then(Value::as_str) != Some("shared") {
        bail!("{at}: kind must be shared");
    }
    str_at(r, "/location", at)?;
    let p = &r["properties"];
    str_at(p, "/displayName", at)?;
    if str_at(p, "/category", at)? != "sentinel" {
        bail!("{at}: category must be sentinel (so it shows under Sentinel's workbooks)");
    }
    let source = str_at(p, "/sourceId", at)?;
    let data = str_at(p, "/serializedData", at)?;
    let data_text = if data.starts_with('[') {
        if !data.contains("variables('workbookData')") {
            bail!("{at}: serializedData expression must build on variables('workbookData')");
        }
        str_at(t, "/variables/workbookData", at)?
    } else {
        if !source.starts_with("/subscriptions/") && !source.starts_with('[') {
            bail!("{at}: sourceId {source:?} is not a resource id");
        }
        data
    };
    let data: Value = serde_json::from_str(data_text)
        .with_context(|| format!("{at}: serializedData is not JSON"))?;
    if data.get("version").and_then(Value::as_str) != Some("Notebook/1.0") {
        bail!("{at}: serializedData.version must be Notebook/1.0");
    }
    if data
        .get("items")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
    {
        bail!("{at}: serializedData.items must be a non-empty array");
    }
    if data
        .get("fallbackResourceIds")
        .and_then(Value::as_array)
        .is_none_or(|a| a.len() != 1)
    {
        bail!("{at}: serializedData.fallbackResourceIds must name the workspace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_guid_is_a_stable_version_8_uuid() {
        let a = name_guid("mss-sentinel/kaede-shoji/workbook/dashboard");
        assert_eq!(a, name_guid("mss-sentinel/kaede-shoji/workbook/dashboard"));
        assert_ne!(a, name_guid("mss-sentinel/aoba-bank/workbook/dashboard"));
        assert!(is_guid(&a), "{a}");
        assert_eq!(&a[14..15], "8", "version nibble: {a}");
        assert!("89ab".contains(&a[19..20]), "variant: {a}");
        // Pinned: a change here renames every deployed rule and workbook.
        assert_eq!(name_guid(""), "e3b0c442-98fc-8c14-9afb-f4c8996fb924");
    }

    #[test]
    fn sorted_orders_keys_at_every_level() {
        let v = json!({"b": 1, "a": [{"d": 1, "c": 2}]});
        assert_eq!(
            serde_json::to_string(&sorted(&v)).unwrap(),
            r#"{"a":[{"c":2,"d":1}],"b":1}"#
        );
    }

    #[test]
    fn expressions_must_name_declared_things() {
        let p: BTreeSet<String> = ["workspace".to_string()].into();
        let v = BTreeSet::new();
        assert!(check_expression("[parameters('workspace')]", &p, &v, "x").is_ok());
        assert!(check_expression("[parameters('workspce')]", &p, &v, "x").is_err());
        assert!(check_expression("[variables('a')]", &p, &v, "x").is_err());
        assert!(check_expression("[concat('a', parameters('workspace')]", &p, &v, "x").is_err());
        assert!(check_expression("[concat('a, parameters('workspace'))]", &p, &v, "x").is_err());
    }

    #[test]
    fn api_versions() {
        assert!(is_api_version("2023-02-01"));
        assert!(is_api_version("2024-01-01-preview"));
        assert!(!is_api_version("2023-2-01"));
        assert!(!is_api_version("latest"));
    }
}
