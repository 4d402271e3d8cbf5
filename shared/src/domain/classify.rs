//! (tenant, alert) → one decision with a reason. Pure: the same inputs always give the same
//! decision, so a rerun or a second delivery cannot change what was decided.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::alert::{Alert, Product};
use super::severity::Severity;
use super::tenant::{Level, Policy, Tenant};

/// Ordered: a later version of an alert may move up this order, never down (rule 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    OutOfScope,
    Monitored,
    Incident,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::OutOfScope => "out_of_scope",
            DecisionKind::Monitored => "monitored",
            DecisionKind::Incident => "incident",
        }
    }

    pub fn parse(s: &str) -> Option<DecisionKind> {
        Some(match s {
            "out_of_scope" => DecisionKind::OutOfScope,
            "monitored" => DecisionKind::Monitored,
            "incident" => DecisionKind::Incident,
            _ => return None,
        })
    }

    fn label_ja(self) -> &'static str {
        match self {
            DecisionKind::OutOfScope => "対象外",
            DecisionKind::Monitored => "監視対象",
            DecisionKind::Incident => "インシデント対象",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub product: Option<Product>,
    /// One line an operator (and the monthly report) can read; never empty.
    pub reason: String,
    /// Set when the alert claims to come from another Azure tenant: a configuration or
    /// routing error that an operator must see, and that must never reach a ticket.
    pub tenant_mismatch: bool,
}

fn decision(kind: DecisionKind, product: Option<Product>, reason: String) -> Decision {
    Decision {
        kind,
        product,
        reason,
        tenant_mismatch: false,
    }
}

/// Classifies one alert version. `previous` is the decision already recorded for an earlier
/// version of the same alert id, if any.
pub fn classify(tenant: &Tenant, alert: &Alert, previous: Option<DecisionKind>) -> Decision {
    let fresh = classify_version(tenant, alert);
    match previous {
        Some(prev) if prev > fresh.kind && !fresh.tenant_mismatch => Decision {
            kind: prev,
            product: fresh.product,
            reason: format!(
                "以前の版の判定（{}）を維持（判定は下げない）。今回の版: {}",
                prev.label_ja(),
                fresh.reason
            ),
            tenant_mismatch: false,
        },
        _ => fresh,
    }
}

fn classify_version(tenant: &Tenant, alert: &Alert) -> Decision {
    use DecisionKind::*;
    if let Some(tid) = alert.fields.tenant_id.as_deref().map(str::trim) {
        if !tid.is_empty() && !tid.eq_ignore_ascii_case(&tenant.azure_tenant_id) {
            return Decision {
                kind: OutOfScope,
                product: None,
                reason: "テナント不一致: アラートの tenantId がこの顧客の azure_tenant_id と異なるため対象外（設定を確認してください）".into(),
                tenant_mismatch: true,
            };
        }
    }
    let source = alert.fields.service_source.as_deref().unwrap_or("");
    let Some(product) = Product::from_service_source(source) else {
        return decision(
            OutOfScope,
            None,
            format!(
                "serviceSource「{}」は本サービスの監視対象製品ではないため対象外",
                if source.is_empty() {
                    "(なし)"
                } else {
                    source
                }
            ),
        );
    };
    if !tenant.subscribes(product) {
        return decision(
            OutOfScope,
            None,
            format!("{} は契約対象の製品ではないため対象外", product.as_str()),
        );
    }
    let p = Some(product);
    let (severity, sev_note) = match alert.severity() {
        Some(s) => (s, SevNote(None)),
        None => (
            Severity::High,
            SevNote(Some(alert.fields.severity.as_deref().unwrap_or("なし"))),
        ),
    };
    // One allocation per decision: the reason, written in one go.
    let threshold = |min: Severity, what: fmt::Arguments<'_>| -> Decision {
        if severity >= min {
            decision(
                Incident,
                p,
                format!(
                    "{what}{} が基準（{}以上）を満たすためインシデント{sev_note}",
                    severity.label_ja(),
                    min.label_ja()
                ),
            )
        } else {
            decision(
                Monitored,
                p,
                format!(
                    "{what}{} が基準（{}以上）未満のため監視対象{sev_note}",
                    severity.label_ja(),
                    min.label_ja()
                ),
            )
        }
    };
    match product {
        Product::Mde => {
            let Some(c) = &tenant.mde else {
                return decision(OutOfScope, p, "MDE の監視基準が未設定のため対象外".into());
            };
            let groups = alert
                .evidence()
                .filter(|e| e.kind() == "deviceEvidence")
                .filter_map(|e| e.str("rbacGroupName"));
            let scope = if c.all_groups {
                Scope::AllGroups
            } else if let Some(g) = groups.clone().find(|g| {
                c.device_groups
                    .iter()
                    .any(|watched| lowercases_to(g.trim(), watched))
            }) {
                Scope::Group(g)
            } else if groups.clone().next().is_none() {
                Scope::UnknownGroup
            } else {
                return decision(
                    OutOfScope,
                    p,
                    format!(
                        "デバイスグループ（{}）が監視対象のグループに含まれないため対象外",
                        groups.collect::<Vec<_>>().join("、")
                    ),
                );
            };
            threshold(c.incident_min_severity, format_args!("{scope}、重大度 "))
        }
        Product::Mdo | Product::Mda => {
            let policies: &[Policy] = match product {
                Product::Mdo => tenant.mdo.as_deref().unwrap_or(&[]),
                _ => tenant.mda.as_ref().map(|m| &m.policies[..]).unwrap_or(&[]),
            };
            if product == Product::Mda {
                if let Some(m) = &tenant.mda {
                    let apps = alert
                        .evidence()
                        .filter(|e| e.kind() == "cloudApplicationEvidence")
                        .filter_map(|e| e.str("displayName"));
                    if apps.clone().next().is_some()
                        && !apps.clone().any(|a| {
                            m.apps
                                .iter()
                                .any(|watched| lowercases_to(a.trim(), watched))
                        })
                    {
                        return decision(
                            OutOfScope,
                            p,
                            format!(
                                "接続アプリ（{}）が監視対象のアプリ（Office 365 / Microsoft Azure のうち契約分）ではないため対象外",
                                apps.collect::<Vec<_>>().join("、")
                            ),
                        );
                    }
                }
            }
            match match_policy(policies, alert) {
                None => decision(
                    OutOfScope,
                    p,
                    "監視対象として合意したアラートポリシーに該当しないため対象外".into(),
                ),
                Some(pol) => {
                    let kind = match pol.level {
                        Level::Monitored => Monitored,
                        Level::Incident => Incident,
                    };
                    decision(
                        kind,
                        p,
                        format!(
                            "アラートポリシー「{}」（{}）に該当し、合意レベルが{}",
                            pol.name,
                            pol.category.as_str(),
                            kind.label_ja()
                        ),
                    )
                }
            }
        }
        Product::Mdi => decision(
            Incident,
            p,
            "MDI のセキュリティアラートはすべてインシデント対象".into(),
        ),
        Product::Idp => match tenant.idp_incident_min {
            Some(min) => threshold(min, format_args!("サインインリスク ")),
            None => decision(OutOfScope, p, "IdP の監視基準が未設定のため対象外".into()),
        },
        Product::Sentinel => match tenant.sentinel_incident_min {
            Some(min) => threshold(min, format_args!("Sentinel インシデントの重大度 ")),
            None => decision(
                OutOfScope,
                p,
                "Sentinel の監視基準が未設定のため対象外".into(),
            ),
        },
    }
}

/// How an MDE alert's device group was judged, as the reason says it.
enum Scope<'a> {
    AllGroups,
    UnknownGroup,
    Group(&'a str),
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::AllGroups => f.write_str("全デバイスグループが監視対象"),
            Scope::UnknownGroup => f.write_str("デバイスグループ不明のため監視対象として扱う"),
            Scope::Group(g) => write!(f, "デバイスグループ「{g}」は監視対象"),
        }
    }
}

/// The note on an unreadable severity (counted as high), or nothing.
struct SevNote<'a>(Option<&'a str>);

impl fmt::Display for SevNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "（重大度「{s}」を判読できないため「高」として扱う）"),
            None => Ok(()),
        }
    }
}

/// `s.to_lowercase() == lowered`, without allocating (criteria are stored lowercased).
pub fn lowercases_to(s: &str, lowered: &str) -> bool {
    if s.is_ascii() {
        s.len() == lowered.len()
            && s.bytes()
                .zip(lowered.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b)
    } else if s.contains('Σ') {
        // `str::to_lowercase` maps a word-final capital sigma to ς, not σ: let it decide.
        s.to_lowercase() == lowered
    } else {
        s.chars().flat_map(char::to_lowercase).eq(lowered.chars())
    }
}

/// `a.to_lowercase() == b.to_lowercase()`, without allocating.
pub fn same_lowercase(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else if a.contains('Σ') || b.contains('Σ') {
        a.to_lowercase() == b.to_lowercase()
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// A policy matches by id (alertPolicyId or detectorId) first, then by exact title, since
/// tenants often know a policy only by the name shown in the portal.
fn match_policy<'a>(policies: &'a [Policy], alert: &Alert) -> Option<&'a Policy> {
    let ids = [
        alert.fields.alert_policy_id.as_deref(),
        alert.fields.detector_id.as_deref(),
    ]
    .map(|id| id.map(str::trim).filter(|s| !s.is_empty()));
    if let Some(p) = policies
        .iter()
        .find(|p| p.id.as_deref().is_some_and(|id| ids.contains(&Some(id))))
    {
        return Some(p);
    }
    let title = alert.fields.title.as_deref()?.trim();
    policies.iter().find(|p| same_lowercase(&p.name, title))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const TENANT: &str = r#"
id = "kaede-shoji"
name = "楓商事株式会社"
azure_tenant_id = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
products = ["mde", "mdo", "mda", "mdi", "idp", "sentinel"]
[mde]
device_groups = ["東京本社PC", "Servers"]
incident_min_severity = "medium"
[[mdo.policies]]
name = "Email messages containing malicious URL removed after delivery"
category = "threat_management"
level = "incident"
[[mdo.policies]]
name = "Elevation of Exchange admin privilege"
id = "pol-perm-1"
category = "permissions"
level = "monitored"
[mda]
apps = ["Office 365"]
[[mda.policies]]
name = "Mass download by a single user"
category = "threat_detection"
level = "monitored"
[[mda.policies]]
name = "Impossible travel"
id = "det-imp-7"
category = "threat_detection"
level = "incident"
[mdi]
[idp]
incident_min_risk = "high"
[sentinel]
incident_min_severity = "medium"
"#;

    fn tenant() -> Tenant {
        Tenant::from_toml(TENANT).unwrap()
    }

    fn alert(extra: Value) -> Alert {
        let mut v = json!({"id": "a1", "lastUpdateDateTime": "2026-11-02T00:00:00Z",
            "tenantId": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        Alert::from_value(v).unwrap()
    }

    fn device(group: &str) -> Value {
        json!({"@odata.type": "#microsoft.graph.security.deviceEvidence", "rbacGroupName": group, "mdeDeviceId": "d1"})
    }

    fn app(name: &str) -> Value {
        json!({"@odata.type": "#microsoft.graph.security.cloudApplicationEvidence", "displayName": name})
    }

    const MDE: &str = "microsoftDefenderForEndpoint";
    const MDO: &str = "microsoftDefenderForOffice365";
    const MDA: &str = "microsoftDefenderForCloudApps";
    const HOSTILE: &str = "'; drop table x; -- <script>alert(1)</script> \"|\\ \u{202e}";

    #[test]
    fn table() {
        use DecisionKind::*;
        let t = tenant();
        let cases: Vec<(&str, Value, DecisionKind, &str)> = vec![
            // rule 1: product mapping
            (
                "xdr is not watched",
                json!({"serviceSource": "microsoft365Defender", "severity": "high"}),
                OutOfScope,
                "microsoft365Defender",
            ),
            (
                "dlp is not watched",
                json!({"serviceSource": "dataLossPrevention"}),
                OutOfScope,
                "dataLossPrevention",
            ),
            (
                "unknown future",
                json!({"serviceSource": "unknownFutureValue"}),
                OutOfScope,
                "unknownFutureValue",
            ),
            ("no source", json!({}), OutOfScope, "(なし)"),
            // rule 2: tenant mismatch
            (
                "tenant mismatch",
                json!({"serviceSource": "microsoftDefenderForIdentity", "tenantId": "00000000-0000-0000-0000-000000000000"}),
                OutOfScope,
                "テナント不一致",
            ),
            (
                "tenant id case-insensitive",
                json!({"serviceSource": "microsoftDefenderForIdentity", "tenantId": "6F1C2D3E-4A5B-4C6D-8E9F-0A1B2C3D4E5F"}),
                Incident,
                "MDI",
            ),
            // rule 4: mde groups and threshold
            (
                "mde listed group high",
                json!({"serviceSource": MDE, "severity": "high", "evidence": [device("東京本社PC")]}),
                Incident,
                "東京本社PC",
            ),
            (
                "mde group case-insensitive",
                json!({"serviceSource": MDE, "severity": "medium", "evidence": [device("servers")]}),
                Incident,
                "servers",
            ),
            (
                "mde listed group low",
                json!({"serviceSource": MDE, "severity": "low", "evidence": [device("Servers")]}),
                Monitored,
                "未満",
            ),
            (
                "mde informational",
                json!({"serviceSource": MDE, "severity": "informational", "evidence": [device("Servers")]}),
                Monitored,
                "情報",
            ),
            (
                "mde unlisted group",
                json!({"serviceSource": MDE, "severity": "high", "evidence": [device("大阪支社PC")]}),
                OutOfScope,
                "大阪支社PC",
            ),
            (
                "mde one of two groups listed",
                json!({"serviceSource": MDE, "severity": "high", "evidence": [device("大阪支社PC"), device("Servers")]}),
                Incident,
                "Servers",
            ),
            (
                "mde unknown group",
                json!({"serviceSource": MDE, "severity": "low", "evidence": []}),
                Monitored,
                "不明",
            ),
            (
                "mde device without group",
                json!({"serviceSource": MDE, "severity": "high", "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence"}]}),
                Incident,
                "不明",
            ),
            // rule 3: unreadable severity counts as high
            (
                "mde missing severity",
                json!({"serviceSource": MDE, "evidence": [device("Servers")]}),
                Incident,
                "判読できない",
            ),
            (
                "mde unknown severity",
                json!({"serviceSource": MDE, "severity": "unknownFutureValue", "evidence": [device("Servers")]}),
                Incident,
                "unknownFutureValue",
            ),
            // rule 5: mdo policies
            (
                "mdo by title",
                json!({"serviceSource": MDO, "title": "  email messages containing MALICIOUS url removed after delivery "}),
                Incident,
                "threat_management",
            ),
            (
                "mdo by policy id",
                json!({"serviceSource": MDO, "title": "whatever", "alertPolicyId": "pol-perm-1"}),
                Monitored,
                "permissions",
            ),
            (
                "mdo by detector id",
                json!({"serviceSource": MDO, "title": "whatever", "detectorId": "pol-perm-1"}),
                Monitored,
                "Exchange",
            ),
            (
                "mdo no match",
                json!({"serviceSource": MDO, "title": "User restricted from sending email"}),
                OutOfScope,
                "該当しない",
            ),
            (
                "mdo hostile title",
                json!({"serviceSource": MDO, "title": HOSTILE}),
                OutOfScope,
                "該当しない",
            ),
            // rule 5: mda policies and apps
            (
                "mda by title",
                json!({"serviceSource": MDA, "title": "Mass download by a single user", "evidence": [app("Office 365")]}),
                Monitored,
                "Mass download",
            ),
            (
                "mda by id",
                json!({"serviceSource": MDA, "title": "x", "detectorId": "det-imp-7"}),
                Incident,
                "Impossible travel",
            ),
            (
                "mda unwatched app",
                json!({"serviceSource": MDA, "title": "Impossible travel", "evidence": [app("Microsoft Azure")]}),
                OutOfScope,
                "Microsoft Azure",
            ),
            (
                "mda app case-insensitive",
                json!({"serviceSource": MDA, "title": "Impossible travel", "evidence": [app("office 365")]}),
                Incident,
                "Impossible",
            ),
            (
                "mda no app evidence",
                json!({"serviceSource": MDA, "title": "Impossible travel"}),
                Incident,
                "Impossible",
            ),
            // rule 6
            (
                "mdi always",
                json!({"serviceSource": "microsoftDefenderForIdentity", "severity": "low", "title": "偵察行為 (LDAP)"}),
                Incident,
                "MDI",
            ),
            // rule 7
            (
                "idp high",
                json!({"serviceSource": "azureAdIdentityProtection", "severity": "high"}),
                Incident,
                "サインインリスク",
            ),
            (
                "idp medium",
                json!({"serviceSource": "azureAdIdentityProtection", "severity": "medium"}),
                Monitored,
                "サインインリスク",
            ),
            (
                "idp unknown",
                json!({"serviceSource": "azureAdIdentityProtection", "severity": "unknown"}),
                Incident,
                "判読",
            ),
            (
                "sentinel medium",
                json!({"serviceSource": "microsoftSentinel", "severity": "medium"}),
                Incident,
                "Sentinel",
            ),
            (
                "sentinel low",
                json!({"serviceSource": "microsoftSentinel", "severity": "low"}),
                Monitored,
                "Sentinel",
            ),
        ];
        for (name, extra, want, reason_has) in cases {
            let d = classify(&t, &alert(extra), None);
            assert_eq!(d.kind, want, "{name}: {}", d.reason);
            assert!(
                d.reason.contains(reason_has),
                "{name}: {:?} lacks {reason_has:?}",
                d.reason
            );
            assert!(
                !d.reason.contains("<script>"),
                "{name}: reason echoes the title"
            );
        }
    }

    #[test]
    fn unsubscribed_product_is_out_of_scope() {
        let t = Tenant::from_toml(
            &TENANT
                .replace(
                    "products = [\"mde\", \"mdo\", \"mda\", \"mdi\", \"idp\", \"sentinel\"]",
                    "products = [\"mde\", \"mdo\", \"mda\", \"idp\", \"sentinel\"]",
                )
                .replace("[mdi]\n", ""),
        )
        .unwrap();
        let d = classify(
            &t,
            &alert(json!({"serviceSource": "microsoftDefenderForIdentity"})),
            None,
        );
        assert_eq!(d.kind, DecisionKind::OutOfScope);
        assert!(d.reason.contains("mdi"));
    }

    #[test]
    fn tenant_mismatch_is_flagged() {
        let d = classify(
            &tenant(),
            &alert(
                json!({"serviceSource": "microsoftDefenderForIdentity", "tenantId": "ffffffff-0000-0000-0000-000000000000"}),
            ),
            Some(DecisionKind::Incident),
        );
        assert!(d.tenant_mismatch);
        assert_eq!(
            d.kind,
            DecisionKind::OutOfScope,
            "a mismatch is never kept as incident"
        );
    }

    #[test]
    fn star_watches_every_group() {
        let t = Tenant::from_toml(&TENANT.replace(
            "device_groups = [\"東京本社PC\", \"Servers\"]",
            "device_groups = [\"*\"]",
        ))
        .unwrap();
        let d = classify(
            &t,
            &alert(
                json!({"serviceSource": MDE, "severity": "low", "evidence": [device("どこか")]}),
            ),
            None,
        );
        assert_eq!(d.kind, DecisionKind::Monitored);
    }

    #[test]
    fn a_later_version_never_lowers_the_decision() {
        use DecisionKind::*;
        let t = tenant();
        let low = alert(
            json!({"serviceSource": MDE, "severity": "low", "evidence": [device("Servers")]}),
        );
        let high = alert(
            json!({"serviceSource": MDE, "severity": "high", "evidence": [device("Servers")]}),
        );
        assert_eq!(classify(&t, &low, Some(Incident)).kind, Incident);
        assert!(classify(&t, &low, Some(Incident)).reason.contains("維持"));
        assert_eq!(classify(&t, &high, Some(Monitored)).kind, Incident);
        assert_eq!(classify(&t, &low, Some(Monitored)).kind, Monitored);
        let unlisted =
            alert(json!({"serviceSource": MDE, "severity": "high", "evidence": [device("Other")]}));
        assert_eq!(classify(&t, &unlisted, Some(Monitored)).kind, Monitored);
    }
}
