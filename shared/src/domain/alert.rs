//! The Graph `alerts_v2` alert, parsed leniently: Microsoft adds enum members and evidence
//! types without notice, so every enum is an open string and every evidence entry is kept as
//! raw JSON with typed accessors for the few fields decisions depend on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::severity::Severity;

/// One version of an alert as Graph served it. `raw` is the exact JSON object, kept so that
/// later steps (investigation, reports) and reruns see everything Graph said, not our subset.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub last_update: DateTime<Utc>,
    pub fields: AlertFields,
    pub raw: Value,
}

/// The fields decisions and ticket text use. Strings are open: unknown values are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AlertFields {
    pub provider_alert_id: Option<String>,
    pub incident_id: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub classification: Option<String>,
    pub determination: Option<String>,
    pub service_source: Option<String>,
    pub detection_source: Option<String>,
    pub detector_id: Option<String>,
    pub tenant_id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub recommended_actions: Option<String>,
    pub category: Option<String>,
    pub alert_web_url: Option<String>,
    pub incident_web_url: Option<String>,
    pub alert_policy_id: Option<String>,
    pub product_name: Option<String>,
    pub investigation_state: Option<String>,
    pub created_date_time: Option<String>,
    pub first_activity_date_time: Option<String>,
    pub resolved_date_time: Option<String>,
    pub threat_display_name: Option<String>,
    pub mitre_techniques: Option<Vec<Option<String>>>,
    pub evidence: Option<Vec<Value>>,
}

/// Why an item of a Graph page could not be taken as an alert. The raw text is kept with it
/// so an operator can see and replay exactly what arrived.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Malformed {
    pub reason: String,
}

impl Alert {
    /// Parses one item of a Graph page. Wrong JSON types on known fields make the item
    /// malformed (we cannot trust the rest of it); unknown fields and enum values do not.
    pub fn from_value(raw: Value) -> Result<Alert, Malformed> {
        let obj = raw.as_object().ok_or_else(|| Malformed {
            reason: "alert is not a JSON object".into(),
        })?;
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                return Err(Malformed {
                    reason: "alert has no string `id`".into(),
                })
            }
        };
        let last_update = match obj.get("lastUpdateDateTime") {
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| Malformed {
                    reason: format!("alert {id}: `lastUpdateDateTime` is not RFC 3339: {e}"),
                })?,
            _ => {
                return Err(Malformed {
                    reason: format!("alert {id}: no string `lastUpdateDateTime`"),
                })
            }
        };
        // Deserialised from a borrow: no copy of the (possibly large) evidence tree.
        let fields = AlertFields::deserialize(&raw).map_err(|e| Malformed {
            reason: format!("alert {id}: {e}"),
        })?;
        Ok(Alert {
            id,
            last_update,
            fields,
            raw,
        })
    }

    pub fn title(&self) -> &str {
        self.fields.title.as_deref().unwrap_or("(件名なし)")
    }

    /// `None` when Graph sent no severity or one we do not know (callers escalate those).
    pub fn severity(&self) -> Option<Severity> {
        self.fields.severity.as_deref().and_then(Severity::parse)
    }

    /// The Defender incident this alert belongs to; alerts of one incident share one ticket.
    pub fn incident_key(&self) -> String {
        match self.fields.incident_id.as_deref().map(str::trim) {
            Some(i) if !i.is_empty() => format!("incident:{i}"),
            _ => format!("alert:{}", self.id),
        }
    }

    pub fn evidence(&self) -> impl Iterator<Item = Evidence<'_>> {
        self.fields
            .evidence
            .iter()
            .flatten()
            .map(|v| Evidence { raw: v })
    }

    pub fn is_resolved(&self) -> bool {
        self.fields.status.as_deref() == Some("resolved")
    }
}

/// A borrowed evidence entry. Types we do not know are still iterated, never rejected.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub raw: &'a Value,
}

impl<'a> Evidence<'a> {
    /// The short type name, e.g. `deviceEvidence` from `#microsoft.graph.security.deviceEvidence`.
    pub fn kind(&self) -> &'a str {
        let t = self
            .raw
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or("");
        t.rsplit('.').next().unwrap_or(t)
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.raw
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn nested_str(&self, outer: &str, key: &str) -> Option<&'a str> {
        self.raw
            .get(outer)
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// The five products of the service plus Sentinel, keyed by Graph `serviceSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Mde,
    Mdo,
    Mda,
    Mdi,
    Idp,
    Sentinel,
}

impl Product {
    pub const ALL: [Product; 6] = [
        Product::Mde,
        Product::Mdo,
        Product::Mda,
        Product::Mdi,
        Product::Idp,
        Product::Sentinel,
    ];

    pub fn from_service_source(s: &str) -> Option<Product> {
        Some(match s {
            "microsoftDefenderForEndpoint" => Product::Mde,
            "microsoftDefenderForOffice365" => Product::Mdo,
            "microsoftDefenderForCloudApps" => Product::Mda,
            "microsoftDefenderForIdentity" => Product::Mdi,
            "azureAdIdentityProtection" => Product::Idp,
            "microsoftSentinel" => Product::Sentinel,
            _ => return None,
        })
    }

    pub fn service_source(self) -> &'static str {
        match self {
            Product::Mde => "microsoftDefenderForEndpoint",
            Product::Mdo => "microsoftDefenderForOffice365",
            Product::Mda => "microsoftDefenderForCloudApps",
            Product::Mdi => "microsoftDefenderForIdentity",
            Product::Idp => "azureAdIdentityProtection",
            Product::Sentinel => "microsoftSentinel",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Product::Mde => "mde",
            Product::Mdo => "mdo",
            Product::Mda => "mda",
            Product::Mdi => "mdi",
            Product::Idp => "idp",
            Product::Sentinel => "sentinel",
        }
    }

    pub fn parse(s: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The name the customer knows the product by, for ticket text.
    pub fn display_name(self) -> &'static str {
        match self {
            Product::Mde => "Microsoft Defender for Endpoint",
            Product::Mdo => "Microsoft Defender for Office 365",
            Product::Mda => "Microsoft Defender for Cloud Apps",
            Product::Mdi => "Microsoft Defender for Identity",
            Product::Idp => "Microsoft Entra ID Identity Protection",
            Product::Sentinel => "Microsoft Sentinel",
        }
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_sample_page() {
        let page: Value =
            serde_json::from_str(include_str!("../../tests/data/alerts-page.json")).unwrap();
        let alerts: Vec<_> = page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Alert::from_value(v.clone()))
            .collect();
        assert!(!alerts.is_empty());
        let a = alerts[0].as_ref().unwrap();
        assert_eq!(
            a.fields.service_source.as_deref(),
            Some("microsoftDefenderForEndpoint")
        );
        let kinds: Vec<_> = a.evidence().map(|e| e.kind()).collect();
        assert!(kinds.contains(&"deviceEvidence"), "{kinds:?}");
        let dev = a.evidence().find(|e| e.kind() == "deviceEvidence").unwrap();
        assert_eq!(dev.str("rbacGroupName"), Some("東京本社PC"));
    }

    #[test]
    fn unknown_enums_and_evidence_types_are_kept() {
        let a = Alert::from_value(json!({
            "id": "x1", "lastUpdateDateTime": "2026-01-01T00:00:00Z",
            "severity": "catastrophic", "serviceSource": "somethingNew",
            "evidence": [{"@odata.type": "#microsoft.graph.security.quantumEvidence", "q": 1}]
        }))
        .unwrap();
        assert_eq!(a.severity(), None);
        assert_eq!(a.fields.severity.as_deref(), Some("catastrophic"));
        assert_eq!(a.evidence().next().unwrap().kind(), "quantumEvidence");
    }

    #[test]
    fn malformed_items_say_why() {
        for (v, want) in [
            (json!(5), "not a JSON object"),
            (
                json!({"lastUpdateDateTime": "2026-01-01T00:00:00Z"}),
                "no string `id`",
            ),
            (json!({"id": "a"}), "lastUpdateDateTime"),
            (
                json!({"id": "a", "lastUpdateDateTime": "yesterday"}),
                "RFC 3339",
            ),
            (
                json!({"id": "a", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "title": 7}),
                "alert a:",
            ),
            (
                json!({"id": "a", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "evidence": "x"}),
                "alert a:",
            ),
        ] {
            let e = Alert::from_value(v).unwrap_err();
            assert!(e.reason.contains(want), "{} !~ {want}", e.reason);
        }
    }

    #[test]
    fn incident_key_prefers_the_defender_incident() {
        let with = Alert::from_value(
            json!({"id":"a","lastUpdateDateTime":"2026-01-01T00:00:00Z","incidentId":"42"}),
        )
        .unwrap();
        let without = Alert::from_value(
            json!({"id":"a","lastUpdateDateTime":"2026-01-01T00:00:00Z","incidentId":" "}),
        )
        .unwrap();
        assert_eq!(with.incident_key(), "incident:42");
        assert_eq!(without.incident_key(), "alert:a");
    }
}
