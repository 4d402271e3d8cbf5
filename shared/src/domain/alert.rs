//! The Graph `alerts_v2` alert, parsed leniently: Microsoft adds enum members and evidence
//! types without notice, so every enum is an open string and every evidence entry is kept
//! with accessors for the few fields decisions and ticket text depend on.
//!
//! Two ways in, one result: [`Alert::from_value`] (a `serde_json::Value` already parsed) and
//! [`Alert::from_json_str`] (the text: one pass, no `Value` tree; several times faster, see
//! BENCHMARKS.md). Both give equal alerts for every input (tests/alert_paths.rs); the text
//! path hands anything unusual to the `Value` path, so errors read the same too.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::severity::Severity;

mod fast;

/// One version of an alert as Graph served it. `raw` is the exact JSON object, kept so that
/// later steps (investigation, reports) and reruns see everything Graph said, not our subset.
#[derive(Clone)]
pub struct Alert {
    pub id: String,
    pub last_update: DateTime<Utc>,
    pub fields: AlertFields,
    pub raw: RawJson,
    /// The evidence of an alert read from text, indexed in the same pass; `None` for an
    /// alert read from a `Value` (its evidence is read from `raw`).
    evidence: Option<Box<fast::EvidenceIndex>>,
}

/// The fields decisions and ticket text use. Strings are open: unknown values are kept.
/// (Evidence is read through [`Alert::evidence`].)
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
}

/// The alert's JSON object as Graph served it. Read as a `serde_json::Value` (it derefs to
/// one); an alert read from text keeps the text and parses it into a `Value` only when
/// something asks for it (investigation, reports), once. Stored as Graph's own text where
/// there is one ([`RawJson::json_text`]); displays as compact JSON (the `Value`'s own text).
#[derive(Clone)]
pub struct RawJson {
    text: Option<Box<str>>,
    value: OnceLock<Value>,
}

impl RawJson {
    /// The object as a `Value` (parsed now if it was not yet).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            let text = self.text.as_deref().unwrap_or("null");
            // The text passed the fast path, which validates everything it skips the way
            // this parse does (fast.rs); a failure here is a bug in that contract.
            serde_json::from_str(text).expect("alert text validated by the fast path")
        })
    }

    /// The text the alert was read from, when it was read from text.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The object's JSON text for storing: Graph's own text when the alert was read from
    /// text (no parse, no re-serialisation: the write path's largest cost, BENCHMARKS.md,
    /// pipeline), else the `Value`'s compact text. Both read back as the same alert.
    pub fn json_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.text {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => std::borrow::Cow::Owned(self.value().to_string()),
        }
    }

    pub fn into_value(self) -> Value {
        self.value();
        self.value.into_inner().unwrap_or(Value::Null)
    }
}

impl From<Value> for RawJson {
    fn from(v: Value) -> RawJson {
        RawJson {
            text: None,
            value: OnceLock::from(v),
        }
    }
}

impl Deref for RawJson {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value()
    }
}

impl RawJson {
    /// `f` with the `Value`: the cached one, else one parsed for this call only. Writing an
    /// alert (its compact text to the store, or serialising it) must not keep a `Value` tree
    /// — 5–8× the text — alive for as long as the alert: a fetch holding a 1,000-alert
    /// window kept ~30 MB per tenant × product that way (BENCHMARKS.md, pipeline).
    fn with_value<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match (self.value.get(), &self.text) {
            (Some(v), _) => f(v),
            (None, Some(t)) => {
                let v: Value =
                    serde_json::from_str(t).expect("alert text validated by the fast path");
                f(&v)
            }
            (None, None) => f(&Value::Null),
        }
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_value(|v| fmt::Display::fmt(v, f))
    }
}

/// Never parses (nor panics): the `Value` once parsed, else the text.
impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.value.get(), &self.text) {
            (Some(v), _) => fmt::Debug::fmt(v, f),
            (None, Some(t)) => f.debug_tuple("RawJson").field(t).finish(),
            (None, None) => f.write_str("RawJson(?)"),
        }
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<RawJson> for Value {
    fn eq(&self, other: &RawJson) -> bool {
        self == other.value()
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_value(|v| v.serialize(s))
    }
}

/// Equal when Graph's objects are equal (and so is everything read from them), however
/// each alert was read.
impl PartialEq for Alert {
    fn eq(&self, other: &Alert) -> bool {
        self.id == other.id
            && self.last_update == other.last_update
            && self.fields == other.fields
            && self.raw == other.raw
    }
}

impl fmt::Debug for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alert")
            .field("id", &self.id)
            .field("last_update", &self.last_update)
            .field("fields", &self.fields)
            .field("raw", &self.raw)
            .finish()
    }
}

/// Why an item of a Graph page could not be taken as an alert. The raw text is kept with it
/// so an operator can see and replay exactly what arrived.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct Malformed {
    pub reason: String,
}

/// A Graph `alerts_v2` page read in one pass ([`read_page`]).
#[derive(Debug, Clone)]
pub struct AlertsPage {
    pub alerts: Vec<Alert>,
    pub next_link: Option<String>,
    pub count: Option<u64>,
}

/// Reads a page body whose every element of `value` is an alert, in one pass (each alert
/// keeps its element's text as `raw`). `None` when the body is anything else — not JSON,
/// no `value` array, an element that is not a well-formed alert, anything unusual: the
/// caller then parses it as a `Value` and reads it element by element, which words the
/// error or keeps the malformed items. Whenever this gives a page, that slow way gives the
/// same one (same alerts, `@odata.nextLink` as `Value::as_str`, `@odata.count` as
/// `Value::as_u64`).
pub fn read_page(body: &[u8]) -> Option<AlertsPage> {
    let text = std::str::from_utf8(body).ok()?;
    let page = fast::page(text)?;
    let alerts = page
        .value
        .iter()
        // Elements sit inside the page object and its `value` array: depth 2.
        .map(|raw| Alert::from_text(raw.get(), 2))
        .collect::<Option<Vec<_>>>()?;
    Some(AlertsPage {
        alerts,
        next_link: page.next_link,
        count: page.count,
    })
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
        // Deserialised from a borrow: no copy of the object.
        let fields = AlertFields::deserialize(&raw).map_err(|e| Malformed {
            reason: format!("alert {id}: {e}"),
        })?;
        // `evidence` is null or an array of anything; the entries are read from `raw`.
        if let Some(ev) = obj.get("evidence") {
            Option::<Vec<serde::de::IgnoredAny>>::deserialize(ev).map_err(|e| Malformed {
                reason: format!("alert {id}: {e}"),
            })?;
        }
        Ok(Alert {
            id,
            last_update,
            fields,
            raw: RawJson::from(raw),
            evidence: None,
        })
    }

    /// Parses one alert from its JSON text: the same alert, or the same error, as
    /// `from_value(serde_json::from_str(text)?)`, without building a `Value` (the fields
    /// are read and the evidence indexed in one pass; `raw` is parsed on first use). Text
    /// that is not JSON is malformed ("alert is not JSON: …").
    pub fn from_json_str(text: &str) -> Result<Alert, Malformed> {
        if let Some(a) = Alert::from_text(text, 0) {
            return Ok(a);
        }
        let v: Value = serde_json::from_str(text).map_err(|e| Malformed {
            reason: format!("alert is not JSON: {e}"),
        })?;
        Alert::from_value(v)
    }

    /// The one-pass read of an alert object below `depth` open containers; `None` for
    /// anything the `Value` path must decide.
    fn from_text(text: &str, depth: u32) -> Option<Alert> {
        let p = fast::parse(text, depth)?;
        if p.id.trim().is_empty() {
            return None;
        }
        let last_update = DateTime::parse_from_rfc3339(&p.last_update)
            .ok()?
            .with_timezone(&Utc);
        Some(Alert {
            id: p.id,
            last_update,
            fields: p.fields,
            raw: RawJson {
                text: Some(text.into()),
                value: OnceLock::new(),
            },
            evidence: Some(Box::new(p.evidence)),
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

    /// The evidence entries in order, of every type (unknown ones too).
    pub fn evidence(&self) -> impl Iterator<Item = Evidence<'_>> + Clone {
        let (n, values) = match &self.evidence {
            Some(idx) => (idx.len(), &[][..]),
            None => {
                let v = self.evidence_values();
                (v.len(), v)
            }
        };
        (0..n).map(move |i| match &self.evidence {
            Some(idx) => Evidence(Ev::Indexed {
                idx,
                text: self.raw.text().unwrap_or(""),
                at: i,
                raw: &self.raw,
            }),
            None => Evidence(Ev::Value(&values[i])),
        })
    }

    fn evidence_values(&self) -> &[Value] {
        self.raw
            .get("evidence")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    pub fn is_resolved(&self) -> bool {
        self.fields.status.as_deref() == Some("resolved")
    }
}

/// A borrowed evidence entry. Types we do not know are still iterated, never rejected.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a>(Ev<'a>);

#[derive(Debug, Clone, Copy)]
enum Ev<'a> {
    Value(&'a Value),
    Indexed {
        idx: &'a fast::EvidenceIndex,
        text: &'a str,
        at: usize,
        raw: &'a RawJson,
    },
}

impl<'a> Evidence<'a> {
    /// The short type name, e.g. `deviceEvidence` from `#microsoft.graph.security.deviceEvidence`.
    pub fn kind(&self) -> &'a str {
        let t = match self.0 {
            Ev::Value(v) => v.get("@odata.type").and_then(Value::as_str),
            Ev::Indexed { idx, text, at, .. } => idx.odata_type(text, at),
        }
        .unwrap_or("");
        t.rsplit('.').next().unwrap_or(t)
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        match self.0 {
            Ev::Value(v) => v.get(key).and_then(Value::as_str),
            Ev::Indexed { idx, text, at, .. } => idx.str(text, at, key),
        }
        .filter(|s| !s.is_empty())
    }

    pub fn nested_str(&self, outer: &str, key: &str) -> Option<&'a str> {
        match self.0 {
            Ev::Value(v) => v
                .get(outer)
                .and_then(|o| o.get(key))
                .and_then(Value::as_str),
            Ev::Indexed { idx, text, at, .. } => idx.nested_str(text, at, outer, key),
        }
        .filter(|s| !s.is_empty())
    }

    /// The whole entry as JSON (for an alert read from text, this parses its `raw`).
    pub fn raw(&self) -> &'a Value {
        match self.0 {
            Ev::Value(v) => v,
            Ev::Indexed { at, raw, .. } => &raw.value()["evidence"][at],
        }
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
    fn the_text_path_reads_the_documented_sample_page_in_one_pass() {
        let page = read_page(include_bytes!("../../tests/data/alerts-page.json")).unwrap();
        let a = &page.alerts[0];
        assert!(a.raw.text().is_some());
        assert_eq!(
            a.fields.service_source.as_deref(),
            Some("microsoftDefenderForEndpoint")
        );
        let dev = a.evidence().find(|e| e.kind() == "deviceEvidence").unwrap();
        assert_eq!(dev.str("rbacGroupName"), Some("東京本社PC"));
        let v: Value =
            serde_json::from_str(include_str!("../../tests/data/alerts-page.json")).unwrap();
        assert_eq!(*a, Alert::from_value(v["value"][0].clone()).unwrap());
    }

    #[test]
    fn the_text_path_keeps_unknown_enums_and_evidence_types() {
        let a = Alert::from_json_str(
            r##"{"id": "x1", "lastUpdateDateTime": "2026-01-01T00:00:00Z",
            "severity": "catastrophic", "serviceSource": "somethingNew",
            "evidence": [{"@odata.type": "#microsoft.graph.security.quantumEvidence", "q": 1}]}"##,
        )
        .unwrap();
        assert!(a.raw.text().is_some(), "read in one pass");
        assert_eq!(a.severity(), None);
        assert_eq!(a.fields.severity.as_deref(), Some("catastrophic"));
        assert_eq!(a.evidence().next().unwrap().kind(), "quantumEvidence");
        assert_eq!(a.evidence().next().unwrap().raw()["q"], 1);
    }

    #[test]
    fn the_text_path_says_why_in_the_same_words() {
        for v in [
            json!(5),
            json!({"lastUpdateDateTime": "2026-01-01T00:00:00Z"}),
            json!({"id": "a"}),
            json!({"id": "a", "lastUpdateDateTime": "yesterday"}),
            json!({"id": "a", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "title": 7}),
            json!({"id": "a", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "evidence": "x"}),
            json!({"id": "a", "lastUpdateDateTime": "2026-01-01T00:00:00Z", "mitreTechniques": [1]}),
        ] {
            assert_eq!(
                Alert::from_json_str(&v.to_string()),
                Alert::from_value(v.clone()),
                "{v}"
            );
            assert!(Alert::from_value(v).is_err());
        }
        let e = Alert::from_json_str("{\"id\": ").unwrap_err();
        assert!(e.reason.starts_with("alert is not JSON: "), "{}", e.reason);
    }

    /// Every member of `AlertFields` is read by the one-pass path (a field added to the
    /// struct but not to `fast::field` would be left empty there, and fail here).
    #[test]
    fn fast_path_reads_every_field() {
        let mut v = serde_json::to_value(AlertFields::default()).unwrap();
        for (k, x) in v.as_object_mut().unwrap() {
            *x = if k == "mitreTechniques" {
                json!(["T1", null])
            } else {
                json!(format!("{k}-value"))
            };
        }
        v["id"] = json!("a");
        v["lastUpdateDateTime"] = json!("2026-01-01T00:00:00Z");
        let fast = Alert::from_json_str(&v.to_string()).unwrap();
        assert!(fast.raw.text().is_some(), "read in one pass");
        assert_eq!(fast, Alert::from_value(v).unwrap());
        let back = serde_json::to_value(&fast.fields).unwrap();
        assert!(
            back.as_object().unwrap().values().all(|x| !x.is_null()),
            "{back}"
        );
    }

    #[test]
    fn raw_reads_as_the_value_and_stores_the_same_text() {
        let text = r#"{"lastUpdateDateTime":"2026-01-01T00:00:00Z", "id":"a","b":[1,2.5,"x"]}"#;
        let fast = Alert::from_json_str(text).unwrap();
        let slow = Alert::from_value(serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(fast.raw.text(), Some(text));
        assert_eq!(format!("{:?}", fast.raw), format!("RawJson({text:?})"));
        assert_eq!(fast.raw.to_string(), slow.raw.to_string());
        assert_eq!(fast.raw["b"][1], 2.5);
        assert_eq!(fast.raw, *slow.raw.value());
        assert_eq!(fast.raw.clone().into_value(), slow.raw.into_value());
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
