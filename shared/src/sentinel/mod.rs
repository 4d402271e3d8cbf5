//! Microsoft Sentinel content for R-LOG and R-DASH, and its rendering per tenant.
//!
//! The content lives as files an analyst can read and run in the portal
//! (`infra/sentinel/`, see its README):
//! - `activity/*.kql` — R-LOG-ACTIVITY: what an administrator should know about in a period.
//!   The activity digest runs them through the Log Analytics API with `let` bindings put in
//!   front ([`ActivityRule::query`]): `WindowStart`/`WindowEnd` (the half-open period) and
//!   `BreakGlassAccounts`. Each returns `TimeGenerated, Actor, Target, Operation, Detail`.
//! - `analytics/*.kql` — R-LOG-THREAT: scheduled analytics rules deployed into the
//!   customer's Sentinel, which raise incidents (and so reach `alerts_v2` as
//!   `microsoftSentinel` alerts).
//! - `workbook/*.json` — R-DASH: the dashboard workbook (`serializedData`).
//!
//! [`render`] turns them into what `mss sentinel render` writes for one tenant: ARM
//! templates for the rules and the workbook, and the activity rules as runnable KQL.
//! Every file is compiled in (`include_str!`) and checked when loaded; a broken file is a
//! build-time mistake the unit tests catch. `scripts/kql_check.js` additionally parses and
//! analyzes every query with Microsoft's Kusto parser.

pub mod arm;
pub mod content;
pub mod duration;

use std::collections::BTreeSet;

use anyhow::bail;

pub use content::{
    ActivityRule, AnalyticsRule, EntityMapping, Workbook, ACTIVITY_BINDINGS, ACTIVITY_COLUMNS,
};

use crate::domain::alert::Product;
use crate::domain::tenant::Tenant;

/// The activity pack, compiled in: what `mss sentinel render` writes and the digest runs.
pub(crate) const ACTIVITY_FILES: [(&str, &str); 15] = [
    (
        "app-consent.kql",
        include_str!("../../../infra/sentinel/activity/app-consent.kql"),
    ),
    (
        "auth-method-changes.kql",
        include_str!("../../../infra/sentinel/activity/auth-method-changes.kql"),
    ),
    (
        "break-glass-signins.kql",
        include_str!("../../../infra/sentinel/activity/break-glass-signins.kql"),
    ),
    (
        "conditional-access-changes.kql",
        include_str!("../../../infra/sentinel/activity/conditional-access-changes.kql"),
    ),
    (
        "domain-federation-changes.kql",
        include_str!("../../../infra/sentinel/activity/domain-federation-changes.kql"),
    ),
    (
        "guest-invitations.kql",
        include_str!("../../../infra/sentinel/activity/guest-invitations.kql"),
    ),
    (
        "inbox-rules.kql",
        include_str!("../../../infra/sentinel/activity/inbox-rules.kql"),
    ),
    (
        "mailbox-forwarding.kql",
        include_str!("../../../infra/sentinel/activity/mailbox-forwarding.kql"),
    ),
    (
        "mass-deletion.kql",
        include_str!("../../../infra/sentinel/activity/mass-deletion.kql"),
    ),
    (
        "mass-file-deletion.kql",
        include_str!("../../../infra/sentinel/activity/mass-file-deletion.kql"),
    ),
    (
        "role-assignment-changes.kql",
        include_str!("../../../infra/sentinel/activity/role-assignment-changes.kql"),
    ),
    (
        "security-defaults.kql",
        include_str!("../../../infra/sentinel/activity/security-defaults.kql"),
    ),
    (
        "service-principal-credentials.kql",
        include_str!("../../../infra/sentinel/activity/service-principal-credentials.kql"),
    ),
    (
        "signin-new-country.kql",
        include_str!("../../../infra/sentinel/activity/signin-new-country.kql"),
    ),
    (
        "transport-rule-changes.kql",
        include_str!("../../../infra/sentinel/activity/transport-rule-changes.kql"),
    ),
];

const ANALYTICS_FILES: [(&str, &str); 9] = [
    (
        "impossible-travel.kql",
        include_str!("../../../infra/sentinel/analytics/impossible-travel.kql"),
    ),
    (
        "legacy-auth-success.kql",
        include_str!("../../../infra/sentinel/analytics/legacy-auth-success.kql"),
    ),
    (
        "mail-forwarding-external.kql",
        include_str!("../../../infra/sentinel/analytics/mail-forwarding-external.kql"),
    ),
    (
        "malicious-url-clicked.kql",
        include_str!("../../../infra/sentinel/analytics/malicious-url-clicked.kql"),
    ),
    (
        "mass-download-after-risky-signin.kql",
        include_str!("../../../infra/sentinel/analytics/mass-download-after-risky-signin.kql"),
    ),
    (
        "mfa-fatigue.kql",
        include_str!("../../../infra/sentinel/analytics/mfa-fatigue.kql"),
    ),
    (
        "oauth-high-privilege-consent.kql",
        include_str!("../../../infra/sentinel/analytics/oauth-high-privilege-consent.kql"),
    ),
    (
        "password-spray.kql",
        include_str!("../../../infra/sentinel/analytics/password-spray.kql"),
    ),
    (
        "privileged-role-direct-assignment.kql",
        include_str!("../../../infra/sentinel/analytics/privileged-role-direct-assignment.kql"),
    ),
];

const WORKBOOK_FILE: (&str, &str) = (
    "dashboard.json",
    include_str!("../../../infra/sentinel/workbook/dashboard.json"),
);

/// File names of the compiled-in content, by folder (tests compare them with the folders).
pub fn content_files() -> [(&'static str, Vec<&'static str>); 3] {
    [
        ("activity", ACTIVITY_FILES.iter().map(|(f, _)| *f).collect()),
        (
            "analytics",
            ANALYTICS_FILES.iter().map(|(f, _)| *f).collect(),
        ),
        ("workbook", vec![WORKBOOK_FILE.0]),
    ]
}

/// Parses every activity rule (the digest's list).
pub fn activity_rules() -> anyhow::Result<Vec<ActivityRule>> {
    ACTIVITY_FILES
        .iter()
        .map(|(f, t)| ActivityRule::parse(&format!("infra/sentinel/activity/{f}"), t))
        .collect()
}

/// Parses every analytics rule.
pub fn analytics_rules() -> anyhow::Result<Vec<AnalyticsRule>> {
    ANALYTICS_FILES
        .iter()
        .map(|(f, t)| AnalyticsRule::parse(&format!("infra/sentinel/analytics/{f}"), t))
        .collect()
}

/// The dashboard workbook.
pub fn workbook() -> anyhow::Result<Workbook> {
    Workbook::parse(
        &format!("infra/sentinel/workbook/{}", WORKBOOK_FILE.0),
        WORKBOOK_FILE.1,
    )
}

/// Tables that exist in the workspace only when the tenant has the product (its Defender
/// XDR connector streams them); the others come with Entra ID and Office 365 connectors.
pub const PRODUCT_TABLES: [(&str, Product); 6] = [
    ("EmailEvents", Product::Mdo),
    ("EmailUrlInfo", Product::Mdo),
    ("EmailAttachmentInfo", Product::Mdo),
    ("EmailPostDeliveryEvents", Product::Mdo),
    ("UrlClickEvents", Product::Mdo),
    ("CloudAppEvents", Product::Mda),
];

/// What the renderer needs besides the tenant file (the CLI passes these).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentinelOptions {
    /// `/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…`.
    /// Empty: the workbook template resolves the workspace named by its `workspace`
    /// parameter in the resource group it is deployed to.
    pub workspace_resource_id: String,
    /// Rule ids (activity or analytics) turned off for this tenant.
    pub disabled_rules: Vec<String>,
    /// UPNs bound to `BreakGlassAccounts` in the rendered activity rules.
    pub break_glass_accounts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Activity,
    Analytics,
}

/// Whether a rule is on for a tenant, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleState {
    pub id: String,
    pub kind: RuleKind,
    pub enabled: bool,
    pub reason: Option<String>,
}

fn valid_workspace_resource_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 9
        && parts[0].is_empty()
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && parts[3].eq_ignore_ascii_case("resourceGroups")
        && parts[5].eq_ignore_ascii_case("providers")
        && parts[6].eq_ignore_ascii_case("Microsoft.OperationalInsights")
        && parts[7].eq_ignore_ascii_case("workspaces")
        && [2, 4, 8].iter().all(|&i| {
            !parts[i].is_empty()
                && parts[i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
        })
}

/// Which rules are on for the tenant: off when listed in `disabled_rules`, and an analytics
/// rule is off when it reads a table of a product the tenant does not have. An unknown id
/// in `disabled_rules` is an error (a typo would otherwise leave the rule on).
pub fn plan(tenant: &Tenant, opts: &SentinelOptions) -> anyhow::Result<Vec<RuleState>> {
    let activity = activity_rules()?;
    let analytics = analytics_rules()?;
    let known: BTreeSet<&str> = activity
        .iter()
        .map(|r| r.id.as_str())
        .chain(analytics.iter().map(|r| r.id.as_str()))
        .collect();
    for d in &opts.disabled_rules {
        if !known.contains(d.as_str()) {
            bail!(
                "--disable {d:?}: no such rule; known: {}",
                known.iter().copied().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let off = |id: &str| opts.disabled_rules.iter().any(|d| d == id);
    let mut out = Vec::new();
    for r in &activity {
        let disabled = off(&r.id);
        out.push(RuleState {
            id: r.id.clone(),
            kind: RuleKind::Activity,
            enabled: !disabled,
            reason: disabled.then(|| "disabled for this tenant".to_string()),
        });
    }
    for r in &analytics {
        let missing: Vec<String> = r
            .tables
            .iter()
            .filter_map(|t| PRODUCT_TABLES.iter().find(|(n, _)| n == t))
            .filter(|(_, p)| !tenant.subscribes(*p))
            .map(|(t, p)| format!("{t} needs {p}"))
            .collect();
        let reason = if off(&r.id) {
            Some("disabled for this tenant".to_string())
        } else if !missing.is_empty() {
            Some(format!(
                "the tenant has no such data: {}",
                missing.join(", ")
            ))
        } else {
            None
        };
        out.push(RuleState {
            id: r.id.clone(),
            kind: RuleKind::Analytics,
            enabled: reason.is_none(),
            reason,
        });
    }
    Ok(out)
}

/// The activity rule as a runnable file: its header, how the digest binds it, by-hand
/// bindings (the last day), the body.
fn activity_file(tenant: &Tenant, r: &ActivityRule, break_glass: &[String]) -> String {
    let mut s = format!(
        "// id: {}\n// title: {}\n// why: {}\n// tables: {}\n",
        r.id,
        r.title,
        r.why,
        r.tables.join(", ")
    );
    if let Some(l) = &r.lookback {
        s.push_str(&format!("// lookback: {l}\n"));
    }
    s.push_str(&format!(
        "//\n// Rendered by `mss sentinel render` for tenant {}. The activity digest runs the body below\n\
         // with WindowStart/WindowEnd bound to its period as datetime literals (half-open:\n\
         // TimeGenerated >= WindowStart and TimeGenerated < WindowEnd) and BreakGlassAccounts\n\
         // from the tenant. To run it by hand in Logs, edit the bindings.\n",
        tenant.id
    ));
    let list: Vec<String> = break_glass
        .iter()
        .map(|u| crate::domain::kql::string_literal(u))
        .collect();
    s.push_str("let WindowStart = startofday(ago(1d));\nlet WindowEnd = startofday(now());\n");
    s.push_str(&format!(
        "let BreakGlassAccounts = dynamic([{}]);\n",
        list.join(", ")
    ));
    s.push_str(&r.body);
    s.push('\n');
    s
}

/// Everything `mss sentinel render` writes for a tenant, as (relative path, contents):
/// `analytics-rules.json` and `workbook.json` (ARM templates, validated before they are
/// returned) and `activity-rules/<id>.kql` for each enabled activity rule.
pub fn render(tenant: &Tenant, opts: &SentinelOptions) -> anyhow::Result<Vec<(String, String)>> {
    let ws = opts.workspace_resource_id.trim();
    if !ws.is_empty() && !valid_workspace_resource_id(ws) {
        bail!(
            "workspace resource id {ws:?} is not /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.OperationalInsights/workspaces/<name>"
        );
    }
    let states = plan(tenant, opts)?;
    let enabled = |id: &str| states.iter().any(|s| s.id == id && s.enabled);
    let analytics = analytics_rules()?;
    let resources: Vec<arm::RuleResource<'_>> = analytics
        .iter()
        .map(|rule| arm::RuleResource {
            rule,
            enabled: enabled(&rule.id),
        })
        .collect();
    let rules = arm::analytics_template(&tenant.id, &resources);
    let wb = arm::workbook_template(&tenant.id, &tenant.name, &workbook()?, ws);
    arm::validate_template(&rules)?;
    arm::validate_template(&wb)?;
    let mut out = vec![
        ("analytics-rules.json".to_string(), arm::to_text(&rules)),
        ("workbook.json".to_string(), arm::to_text(&wb)),
    ];
    for r in activity_rules()? {
        if enabled(&r.id) {
            out.push((
                format!("activity-rules/{}.kql", r.id),
                activity_file(tenant, &r, &opts.break_glass_accounts),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn kaede() -> Tenant {
        Tenant::from_toml(include_str!(
            "../../../infra/tenants/kaede-shoji.example.toml"
        ))
        .unwrap()
    }

    fn without_mdo() -> Tenant {
        let text = include_str!("../../../infra/tenants/kaede-shoji.example.toml").replace(
            r#"products = ["mde", "mdo", "mda", "mdi", "idp"]"#,
            r#"products = ["mde", "mdi", "idp"]"#,
        );
        let text = text.split("[[mdo.policies]]").next().unwrap().to_string()
            + "[mdi]\n\n[idp]\nincident_min_risk = \"high\"\n";
        Tenant::from_toml(&text).unwrap()
    }

    #[test]
    fn all_content_parses_and_covers_the_brief() {
        let act = activity_rules().unwrap();
        let ana = analytics_rules().unwrap();
        assert!(
            act.len() >= 12 && ana.len() >= 8,
            "{} {}",
            act.len(),
            ana.len()
        );
        let mut ids: Vec<&str> = act
            .iter()
            .map(|r| r.id.as_str())
            .chain(ana.iter().map(|r| r.id.as_str()))
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(
            ids.len(),
            n,
            "rule ids are unique across activity and analytics"
        );
        for id in [
            "role-assignment-changes",
            "conditional-access-changes",
            "app-consent",
            "service-principal-credentials",
            "auth-method-changes",
            "mailbox-forwarding",
            "inbox-rules",
            "break-glass-signins",
            "signin-new-country",
            "mass-deletion",
            "transport-rule-changes",
            "security-defaults",
            "password-spray",
            "impossible-travel",
            "mail-forwarding-external",
            "malicious-url-clicked",
            "mass-download-after-risky-signin",
        ] {
            assert!(ids.contains(&id), "{id} missing");
        }
        assert!(act
            .iter()
            .find(|r| r.id == "break-glass-signins")
            .unwrap()
            .uses_break_glass());
        let wb = workbook().unwrap();
        let names: Vec<String> = wb.queries().into_iter().map(|(n, _)| n).collect();
        // No OpsRamp panel: the workbook cannot read OpsRamp (infra/sentinel/README.md).
        assert!(!wb.queries().iter().any(|(_, q)| q.contains("MssTickets")));
        for panel in [
            "alerts-by-product",
            "mde-alert-log",
            "mdo-weekly-mail",
            "mda-o365-activity",
            "mdi-weekly",
            "idp-alert-log",
            "signins-per-day",
        ] {
            assert!(names.iter().any(|n| n == panel), "panel {panel} missing");
        }
    }

    #[test]
    fn compiled_in_files_are_exactly_the_folders() {
        for (dir, listed) in content_files() {
            let path = format!("{}/../infra/sentinel/{dir}", env!("CARGO_MANIFEST_DIR"));
            let mut on_disk: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".kql") || f.ends_with(".json"))
                .collect();
            on_disk.sort();
            let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            listed.sort();
            assert_eq!(
                listed, on_disk,
                "infra/sentinel/{dir}: add new files to shared/src/sentinel/mod.rs"
            );
        }
    }

    #[test]
    fn plan_turns_rules_off_by_option_and_by_missing_product() {
        let opts = SentinelOptions {
            disabled_rules: vec!["legacy-auth-success".into(), "mass-file-deletion".into()],
            ..SentinelOptions::default()
        };
        let p = plan(&kaede(), &opts).unwrap();
        let off: Vec<&str> = p
            .iter()
            .filter(|s| !s.enabled)
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(off, ["mass-file-deletion", "legacy-auth-success"]);
        let p = plan(&without_mdo(), &SentinelOptions::default()).unwrap();
        let url = p.iter().find(|s| s.id == "malicious-url-clicked").unwrap();
        assert!(!url.enabled);
        assert!(
            url.reason
                .as_deref()
                .unwrap()
                .contains("UrlClickEvents needs mdo"),
            "{url:?}"
        );
        // It reads EmailEvents only fuzzily, so it stays on without MDO.
        assert!(
            p.iter()
                .find(|s| s.id == "mail-forwarding-external")
                .unwrap()
                .enabled
        );
        let e = plan(
            &kaede(),
            &SentinelOptions {
                disabled_rules: vec!["pasword-spray".into()],
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"pasword-spray\": no such rule") && e.contains("password-spray"),
            "{e}"
        );
    }

    #[test]
    fn render_is_deterministic_valid_and_honours_the_plan() {
        let opts = SentinelOptions {
            workspace_resource_id: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-sentinel/providers/Microsoft.OperationalInsights/workspaces/kaede-ws".into(),
            disabled_rules: vec!["password-spray".into(), "inbox-rules".into()],
            break_glass_accounts: vec!["bg1@kaede.example".into()],
        };
        let a = render(&kaede(), &opts).unwrap();
        let b = render(&kaede(), &opts).unwrap();
        assert_eq!(a, b);
        let files: Vec<&str> = a.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(files[..2], ["analytics-rules.json", "workbook.json"]);
        assert!(!files.contains(&"activity-rules/inbox-rules.kql"));
        assert_eq!(files.len(), 2 + activity_rules().unwrap().len() - 1);
        let rules: serde_json::Value = serde_json::from_str(&a[0].1).unwrap();
        let res = rules["resources"].as_array().unwrap();
        assert_eq!(
            res.len(),
            analytics_rules().unwrap().len(),
            "disabled rules are deployed disabled, not left out"
        );
        let spray = res
            .iter()
            .find(|r| {
                r["properties"]["query"]
                    .as_str()
                    .unwrap()
                    .contains("mss-rule: password-spray")
            })
            .unwrap();
        assert_eq!(spray["properties"]["enabled"], false);
        let wb: serde_json::Value = serde_json::from_str(&a[1].1).unwrap();
        let props = &wb["resources"][0]["properties"];
        assert_eq!(props["sourceId"], opts.workspace_resource_id.as_str());
        let data: serde_json::Value =
            serde_json::from_str(props["serializedData"].as_str().unwrap()).unwrap();
        assert_eq!(
            data["fallbackResourceIds"][0],
            opts.workspace_resource_id.as_str()
        );
        let bg = &a
            .iter()
            .find(|(f, _)| f == "activity-rules/break-glass-signins.kql")
            .unwrap()
            .1;
        assert!(
            bg.contains("let BreakGlassAccounts = dynamic([\"bg1@kaede.example\"]);"),
            "{bg}"
        );
    }

    #[test]
    fn render_refuses_a_bad_workspace_resource_id() {
        for bad in ["kaede-ws", "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Insights/components/y", "/subscriptions//resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"] {
            let opts = SentinelOptions { workspace_resource_id: bad.into(), ..Default::default() };
            assert!(render(&kaede(), &opts).is_err(), "{bad}");
        }
    }

    #[test]
    fn activity_query_puts_the_bindings_first() {
        use chrono::TimeZone;
        let r = activity_rules()
            .unwrap()
            .into_iter()
            .find(|r| r.id == "signin-new-country")
            .unwrap();
        let s = Utc.with_ymd_and_hms(2026, 11, 1, 15, 0, 0).unwrap();
        let e = Utc.with_ymd_and_hms(2026, 11, 2, 15, 0, 0).unwrap();
        let q = r.query(s, e, &[]).unwrap();
        let lines: Vec<&str> = q.lines().collect();
        assert_eq!(lines[0], "// mss-activity: signin-new-country");
        assert_eq!(
            lines[1],
            "let WindowStart = datetime(2026-11-01T15:00:00Z);"
        );
        assert_eq!(lines[2], "let WindowEnd = datetime(2026-11-02T15:00:00Z);");
        assert_eq!(lines[3], "let BreakGlassAccounts = dynamic([]);");
        assert_eq!(
            r.data_start(s),
            Utc.with_ymd_and_hms(2026, 10, 2, 15, 0, 0).unwrap()
        );
    }
}
