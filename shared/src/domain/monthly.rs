//! The monthly advisory report's numbers (seed §5.4.1): one tenant, one JST calendar month.
//!
//! Aggregation is streaming: each alert (its newest version as of month end) is folded into
//! counters as it is read, so a tenant-month of a million alerts needs memory for the
//! counters and the top-N tables, not for the alerts. Everything here is pure; the step
//! reads the store and feeds it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{Alert, Product};
use super::classify::DecisionKind;
use super::response::ActionKind;
use crate::ports::ActionStatus;

fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

/// A calendar month in Japan time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("{s:?} is not a month (expected YYYY-MM, e.g. 2026-11)");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || !(2000..=2999).contains(&year) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("validated month")
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// 00:00 JST on the 1st, as UTC.
    pub fn start(self) -> DateTime<Utc> {
        jst()
            .from_local_datetime(&self.first_day().and_hms_opt(0, 0, 0).expect("midnight"))
            .single()
            .expect("JST has no gaps")
            .with_timezone(&Utc)
    }

    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    pub fn days(self) -> u32 {
        (self.next().first_day() - self.first_day()).num_days() as u32
    }

    pub fn contains(self, t: DateTime<Utc>) -> bool {
        t >= self.start() && t < self.end()
    }

    /// The month (JST) a time falls in.
    pub fn of(t: DateTime<Utc>) -> Month {
        let d = t.with_timezone(&jst()).date_naive();
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn label_ja(self) -> String {
        format!("{}年{}月", self.year, self.month)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The products in the order the report shows them.
pub const PRODUCTS: [Product; 5] = [
    Product::Mde,
    Product::Mdo,
    Product::Mda,
    Product::Mdi,
    Product::Idp,
];
pub const SEVERITIES: [&str; 5] = ["high", "medium", "low", "informational", "unknown"];

/// What one alert contributes, extracted once so the aggregator holds no alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFacts {
    pub id: String,
    pub product: Product,
    pub created: DateTime<Utc>,
    /// Graph severity spelling, or `unknown`.
    pub severity: &'static str,
    pub title: String,
    pub category: Option<String>,
    pub devices: Vec<String>,
    pub users: Vec<String>,
    /// Device groups (MDE `rbacGroupName`), for the "unlisted group" proposal.
    pub groups: Vec<String>,
    /// Countries of IP evidence.
    pub countries: Vec<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

impl AlertFacts {
    pub fn of(product: Product, a: &Alert) -> AlertFacts {
        let severity = match a.severity() {
            Some(s) => match s {
                super::severity::Severity::High => "high",
                super::severity::Severity::Medium => "medium",
                super::severity::Severity::Low => "low",
                super::severity::Severity::Informational => "informational",
            },
            None => "unknown",
        };
        let mut devices = Vec::new();
        let mut users = Vec::new();
        let mut groups = Vec::new();
        let mut countries = Vec::new();
        for e in a.evidence() {
            match e.kind() {
                "deviceEvidence" => {
                    if let Some(d) = e.str("deviceDnsName").or_else(|| e.str("mdeDeviceId")) {
                        devices.push(d.to_lowercase());
                    }
                    if let Some(g) = e.str("rbacGroupName") {
                        groups.push(g.to_string());
                    }
                }
                "userEvidence" => {
                    if let Some(u) = e
                        .nested_str("userAccount", "userPrincipalName")
                        .or_else(|| e.nested_str("userAccount", "accountName"))
                    {
                        users.push(u.to_lowercase());
                    }
                }
                "mailboxEvidence" => {
                    if let Some(u) = e.str("primaryAddress").or_else(|| e.str("upn")) {
                        users.push(u.to_lowercase());
                    }
                }
                "ipEvidence" => {
                    if let Some(c) = e.str("countryLetterCode") {
                        countries.push(c.to_uppercase());
                    }
                }
                _ => {}
            }
        }
        devices.dedup();
        users.sort();
        users.dedup();
        let created = parse_time(a.fields.created_date_time.as_deref()).unwrap_or(a.last_update);
        let resolved_at = if a.is_resolved() {
            Some(parse_time(a.fields.resolved_date_time.as_deref()).unwrap_or(a.last_update))
        } else {
            None
        };
        AlertFacts {
            id: a.id.clone(),
            product,
            created,
            severity,
            title: a.title().to_string(),
            category: a.fields.category.clone(),
            devices,
            users,
            groups,
            countries,
            resolved_at,
        }
    }
}

/// One incident (ticket) as the report needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentFacts {
    pub key: String,
    pub ticket_id: Option<String>,
    pub opened: DateTime<Utc>,
    pub severity: String,
    pub alert_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRow {
    pub ticket_id: Option<String>,
    pub key: String,
    pub severity: String,
    pub title: String,
    pub product: Option<Product>,
    pub opened: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    /// e.g. "ネットワーク分離: 完了"
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertCounts {
    pub total: u64,
    pub by_product: BTreeMap<String, u64>,
    pub by_severity: BTreeMap<String, u64>,
    /// product → severity → count
    pub by_product_severity: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentCounts {
    pub opened: u64,
    pub resolved: u64,
    pub open: u64,
}

/// A finding of the review/proposal rules, with the numbers that triggered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub kind: String,
    pub text: String,
    pub metric: String,
    pub value: u64,
}

/// The numbers behind the report (report.json). The first keys are the exact interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyNumbers {
    pub tenant: String,
    pub tenant_name: String,
    pub month: String,
    pub due_date: String,
    pub alerts: AlertCounts,
    pub decisions: BTreeMap<String, u64>,
    pub incidents: IncidentCounts,
    /// `<kind>` → `<status>` → count, for actions started in the month.
    pub actions: BTreeMap<String, BTreeMap<String, u64>>,
    pub investigation_reports: u64,
    /// Alerts per JST day (index 0 = the 1st) per product.
    pub daily: BTreeMap<String, Vec<u64>>,
    pub top_titles: Vec<(String, u64)>,
    pub top_devices: Vec<(String, u64)>,
    pub top_users: Vec<(String, u64)>,
    /// Incidents by minutes from the first alert's creation to the ticket, bucketed.
    pub time_to_ticket: Vec<(String, u64)>,
    pub incident_rows: Vec<IncidentRow>,
    /// Metrics the rules read (and the month-over-month comparison).
    pub metrics: BTreeMap<String, u64>,
    /// Last month's totals, when a report was made for it.
    pub previous: Option<PreviousMonth>,
    pub review: Vec<Finding>,
    pub proposals: Vec<Finding>,
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousMonth {
    pub month: String,
    pub alerts_total: u64,
    pub incidents_opened: u64,
}

/// Folds alerts in one at a time.
pub struct Aggregator {
    month: Month,
    decisions: HashMap<String, DecisionKind>,
    alerts: AlertCounts,
    decided: BTreeMap<String, u64>,
    daily: BTreeMap<String, Vec<u64>>,
    titles: HashMap<String, u64>,
    devices: HashMap<String, u64>,
    users: HashMap<String, u64>,
    /// Facts kept only for alerts that belong to an incident (to resolve and title them).
    incident_alerts: HashSet<String>,
    kept: HashMap<String, AlertFacts>,
    metrics: BTreeMap<String, u64>,
    unlisted_groups: HashMap<String, u64>,
}

impl Aggregator {
    pub fn new(
        month: Month,
        decisions: HashMap<String, DecisionKind>,
        incident_alert_ids: HashSet<String>,
    ) -> Aggregator {
        let days = month.days() as usize;
        let mut daily = BTreeMap::new();
        let mut by_product = BTreeMap::new();
        for p in PRODUCTS {
            daily.insert(p.as_str().to_string(), vec![0; days]);
            by_product.insert(p.as_str().to_string(), 0);
        }
        let by_severity = SEVERITIES.iter().map(|s| (s.to_string(), 0)).collect();
        let decided = ["incident", "monitored", "out_of_scope"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        Aggregator {
            month,
            decisions,
            alerts: AlertCounts {
                total: 0,
                by_product,
                by_severity,
                by_product_severity: BTreeMap::new(),
            },
            decided,
            daily,
            titles: HashMap::new(),
            devices: HashMap::new(),
            users: HashMap::new(),
            incident_alerts: incident_alert_ids,
            kept: HashMap::new(),
            metrics: BTreeMap::new(),
            unlisted_groups: HashMap::new(),
        }
    }

    fn bump(&mut self, metric: &str, by: u64) {
        *self.metrics.entry(metric.to_string()).or_default() += by;
    }

    /// Counts one alert (its newest version as of month end). Alerts created outside the
    /// month are ignored, so callers may over-read.
    pub fn add(&mut self, f: AlertFacts) {
        if !self.month.contains(f.created) {
            return;
        }
        let p = f.product.as_str().to_string();
        self.alerts.total += 1;
        *self.alerts.by_product.entry(p.clone()).or_default() += 1;
        *self
            .alerts
            .by_severity
            .entry(f.severity.to_string())
            .or_default() += 1;
        *self
            .alerts
            .by_product_severity
            .entry(p.clone())
            .or_default()
            .entry(f.severity.to_string())
            .or_default() += 1;
        let day = (f.created.with_timezone(&jst()).day() - 1) as usize;
        if let Some(v) = self.daily.get_mut(&p) {
            if let Some(d) = v.get_mut(day) {
                *d += 1;
            }
        }
        let decision = self.decisions.get(&f.id).copied();
        if let Some(d) = decision {
            *self.decided.entry(d.as_str().to_string()).or_default() += 1;
        }
        *self.titles.entry(f.title.clone()).or_default() += 1;
        for d in &f.devices {
            *self.devices.entry(d.clone()).or_default() += 1;
        }
        for u in &f.users {
            *self.users.entry(u.clone()).or_default() += 1;
        }
        if f.severity == "high" {
            self.bump("high_severity_alerts", 1);
        }
        let title = f.title.to_lowercase();
        if f.product == Product::Mdo && (title.contains("click") || title.contains("クリック"))
        {
            self.bump("mdo_click_alerts", 1);
        }
        if f.product == Product::Mdo {
            self.bump("mdo_alerts", 1);
        }
        if matches!(f.product, Product::Idp | Product::Mdi | Product::Mda)
            && f.countries.iter().any(|c| c != "JP")
        {
            self.bump("foreign_signin_alerts", 1);
        }
        if f.product == Product::Mde && decision == Some(DecisionKind::OutOfScope) {
            self.bump("mde_out_of_scope", 1);
            for g in &f.groups {
                *self.unlisted_groups.entry(g.clone()).or_default() += 1;
            }
        }
        if f.category
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("CredentialAccess"))
        {
            self.bump("credential_access_alerts", 1);
        }
        if self.incident_alerts.contains(&f.id) {
            self.kept.insert(f.id.clone(), f);
        }
    }

    pub fn finish(mut self, input: FinishInput) -> MonthlyNumbers {
        let month = self.month;
        let top = |m: &HashMap<String, u64>, n: usize| {
            let mut v: Vec<(String, u64)> = m.iter().map(|(k, c)| (k.clone(), *c)).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(n);
            v
        };
        let top_devices = top(&self.devices, 10);
        let top_users = top(&self.users, 10);
        let top_titles = top(&self.titles, 10);
        let max_device = top_devices.first().map(|x| x.1).unwrap_or(0);
        self.metrics.insert("repeat_device_max".into(), max_device);
        self.metrics
            .insert("alerts_total".into(), self.alerts.total);

        // Incidents opened in the month; resolved when every alert we know of is resolved.
        let buckets: [(&str, i64); 6] = [
            ("5分未満", 5),
            ("5〜15分", 15),
            ("15〜30分", 30),
            ("30〜60分", 60),
            ("1〜4時間", 240),
            ("4時間以上", i64::MAX),
        ];
        let mut ttt: Vec<(String, u64)> = buckets.iter().map(|(l, _)| (l.to_string(), 0)).collect();
        let mut counts = IncidentCounts::default();
        let mut rows = Vec::new();
        for inc in input.incidents.iter().filter(|i| month.contains(i.opened)) {
            counts.opened += 1;
            let facts: Vec<&AlertFacts> = inc
                .alert_ids
                .iter()
                .filter_map(|id| self.kept.get(id))
                .collect();
            let resolved = if !facts.is_empty() && facts.iter().all(|f| f.resolved_at.is_some()) {
                facts.iter().filter_map(|f| f.resolved_at).max()
            } else {
                None
            };
            if resolved.is_some_and(|r| r < month.end()) {
                counts.resolved += 1;
            } else {
                counts.open += 1;
            }
            if let Some(first) = facts.iter().map(|f| f.created).min() {
                let mins = (inc.opened - first).num_minutes().max(0);
                if let Some(i) = buckets.iter().position(|(_, lim)| mins < *lim) {
                    ttt[i].1 += 1;
                }
            }
            let lead = facts.iter().min_by_key(|f| f.created);
            let actions = input
                .actions
                .iter()
                .filter(|a| a.0 == inc.key)
                .map(|a| format!("{}: {}", a.1.label_ja(), status_ja(a.2)))
                .collect();
            rows.push(IncidentRow {
                ticket_id: inc.ticket_id.clone(),
                key: inc.key.clone(),
                severity: inc.severity.clone(),
                title: lead
                    .map(|f| f.title.clone())
                    .unwrap_or_else(|| "(アラート情報なし)".into()),
                product: lead.map(|f| f.product),
                opened: inc.opened,
                resolved,
                actions,
            });
        }
        rows.sort_by(|a, b| a.opened.cmp(&b.opened).then_with(|| a.key.cmp(&b.key)));
        self.metrics
            .insert("incidents_opened".into(), counts.opened);
        self.metrics.insert("incidents_open".into(), counts.open);

        let mut actions: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (_, kind, status, at) in &input.actions {
            if month.contains(*at) {
                let k = serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *actions
                    .entry(k)
                    .or_default()
                    .entry(status.as_str().to_string())
                    .or_default() += 1;
            }
        }
        let unlisted = top(&self.unlisted_groups, 3);
        let mut numbers = MonthlyNumbers {
            tenant: input.tenant,
            tenant_name: input.tenant_name,
            month: month.to_string(),
            due_date: input.due_date,
            alerts: self.alerts,
            decisions: self.decided,
            incidents: counts,
            actions,
            investigation_reports: input.investigation_reports,
            daily: self.daily,
            top_titles,
            top_devices,
            top_users,
            time_to_ticket: ttt,
            incident_rows: rows,
            metrics: self.metrics,
            previous: input.previous,
            review: vec![],
            proposals: vec![],
            generated_at: input.generated_at,
        };
        let (review, proposals) = findings(&numbers, &unlisted);
        numbers.review = review;
        numbers.proposals = proposals;
        numbers
    }
}

/// What the aggregator cannot learn from alerts.
pub struct FinishInput {
    pub tenant: String,
    pub tenant_name: String,
    pub due_date: String,
    pub incidents: Vec<IncidentFacts>,
    /// (incident key, kind, status, started at)
    pub actions: Vec<(String, ActionKind, ActionStatus, DateTime<Utc>)>,
    pub investigation_reports: u64,
    pub previous: Option<PreviousMonth>,
    pub generated_at: DateTime<Utc>,
}

fn status_ja(s: ActionStatus) -> &'static str {
    match s {
        ActionStatus::Requesting | ActionStatus::InProgress => "実行中",
        ActionStatus::Succeeded => "完了",
        ActionStatus::Failed => "失敗",
        ActionStatus::TimedOut => "タイムアウト",
        ActionStatus::Cancelled => "取り消し",
        ActionStatus::PendingApproval => "承認待ち",
        ActionStatus::WaitingHours => "実施時間帯待ち",
        ActionStatus::Refused => "ガードレールにより実施せず",
        ActionStatus::Unsupported => "API 非対応のため未実施",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<Rule>,
}

/// A review or proposal line, triggered when a metric reaches `min`. `{value}` is the
/// metric, `{top}` the most frequent item the metric refers to (when there is one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    id: String,
    kind: String,
    metric: String,
    min: u64,
    text: String,
}

fn rules() -> &'static [Rule] {
    static RULES: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        toml::from_str::<RuleFile>(include_str!("../../data/monthly-rules.toml"))
            .expect("data/monthly-rules.toml parses (checked by a unit test)")
            .rule
    })
}

fn findings(n: &MonthlyNumbers, unlisted: &[(String, u64)]) -> (Vec<Finding>, Vec<Finding>) {
    let mut review = Vec::new();
    let mut proposals = Vec::new();
    for r in rules() {
        let value = n.metrics.get(&r.metric).copied().unwrap_or(0);
        if value < r.min {
            continue;
        }
        let top = match r.metric.as_str() {
            "repeat_device_max" => n.top_devices.first().map(|d| d.0.clone()),
            "mde_out_of_scope" => unlisted.first().map(|g| g.0.clone()),
            _ => None,
        }
        .unwrap_or_else(|| "-".into());
        let f = Finding {
            id: r.id.clone(),
            kind: r.kind.clone(),
            text: r
                .text
                .replace("{value}", &crate::domain::monthly::thousands(value))
                .replace("{top}", &super::incident::clean_line(&top, 80)),
            metric: r.metric.clone(),
            value,
        };
        if r.kind == "review" {
            review.push(f);
        } else {
            proposals.push(f);
        }
    }
    (review, proposals)
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The 総評 paragraph: the month in numbers, then the review rules' lines.
pub fn overall_review(n: &MonthlyNumbers) -> Vec<String> {
    let mut out = Vec::new();
    let m = Month::parse(&n.month)
        .map(|m| m.label_ja())
        .unwrap_or_else(|_| n.month.clone());
    let inc = n.decisions.get("incident").copied().unwrap_or(0);
    let mut s = format!(
        "{m}は {} 件のアラートを検知し、うち {} 件をインシデントとしてご連絡しました（チケット {} 件）。",
        thousands(n.alerts.total),
        thousands(inc),
        thousands(n.incidents.opened)
    );
    if let Some(p) = &n.previous {
        let d = n.alerts.total as i64 - p.alerts_total as i64;
        s.push_str(&match d.cmp(&0) {
            std::cmp::Ordering::Greater => {
                format!("前月より {} 件増加しています。", thousands(d as u64))
            }
            std::cmp::Ordering::Less => {
                format!("前月より {} 件減少しています。", thousands((-d) as u64))
            }
            std::cmp::Ordering::Equal => "前月と同数です。".into(),
        });
    }
    out.push(s);
    if n.incidents.opened > 0 {
        out.push(format!(
            "月末時点で解決済みのインシデントは {} 件、対応中は {} 件です。",
            n.incidents.resolved, n.incidents.open
        ));
    }
    for f in &n.review {
        out.push(f.text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn months_follow_jst_boundaries() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(m.start().to_rfc3339(), "2026-10-31T15:00:00+00:00");
        assert_eq!(m.end().to_rfc3339(), "2026-11-30T15:00:00+00:00");
        assert_eq!(m.days(), 30);
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert_eq!(
            Month::parse("2026-01").unwrap().prev().to_string(),
            "2025-12"
        );
        for bad in ["2026-13", "2026-1", "26-11", "november", ""] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        // 23:30 UTC on Oct 31 is Nov 1 in Tokyo.
        let t = DateTime::parse_from_rfc3339("2026-10-31T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Month::of(t), m);
    }

    fn alert(id: &str, created: &str, sev: &str, src: &str, extra: serde_json::Value) -> Alert {
        let mut v = json!({"id": id, "lastUpdateDateTime": created, "createdDateTime": created,
            "severity": sev, "serviceSource": src, "title": format!("t-{id}")});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        Alert::from_value(v).unwrap()
    }

    #[test]
    fn aggregates_counts_days_incidents_and_rules() {
        let m = Month::parse("2026-11").unwrap();
        let dev = json!({"evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": "PC-1"}]});
        let alerts = vec![
            (
                Product::Mde,
                alert(
                    "a",
                    "2026-10-31T16:00:00Z",
                    "high",
                    "microsoftDefenderForEndpoint",
                    dev.clone(),
                ),
            ),
            (
                Product::Mde,
                alert(
                    "b",
                    "2026-11-02T00:00:00Z",
                    "medium",
                    "microsoftDefenderForEndpoint",
                    dev.clone(),
                ),
            ),
            (
                Product::Mde,
                alert(
                    "c",
                    "2026-11-03T00:00:00Z",
                    "bogus",
                    "microsoftDefenderForEndpoint",
                    dev,
                ),
            ),
            (
                Product::Mdo,
                alert(
                    "d",
                    "2026-11-03T00:00:00Z",
                    "low",
                    "x",
                    json!({"title": "User clicked a malicious URL"}),
                ),
            ),
            (
                Product::Mdo,
                alert(
                    "e",
                    "2026-11-04T00:00:00Z",
                    "low",
                    "x",
                    json!({"title": "Clicked again"}),
                ),
            ),
            // Created in October (JST): not counted.
            (
                Product::Mde,
                alert(
                    "z",
                    "2026-10-31T14:59:59Z",
                    "high",
                    "microsoftDefenderForEndpoint",
                    json!({}),
                ),
            ),
        ];
        let decisions: HashMap<String, DecisionKind> = [
            ("a", DecisionKind::Incident),
            ("b", DecisionKind::Incident),
            ("c", DecisionKind::Monitored),
            ("d", DecisionKind::OutOfScope),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut agg = Aggregator::new(
            m,
            decisions,
            ["a", "b"].iter().map(|s| s.to_string()).collect(),
        );
        for (p, a) in &alerts {
            agg.add(AlertFacts::of(*p, a));
        }
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let n = agg.finish(FinishInput {
            tenant: "t".into(),
            tenant_name: "T".into(),
            due_date: "2026-12-14".into(),
            incidents: vec![IncidentFacts {
                key: "incident:1".into(),
                ticket_id: Some("INC1".into()),
                opened: t("2026-10-31T16:07:00Z"),
                severity: "高".into(),
                alert_ids: vec!["a".into(), "b".into()],
            }],
            actions: vec![(
                "incident:1".into(),
                ActionKind::Isolate,
                ActionStatus::Succeeded,
                t("2026-11-01T00:00:00Z"),
            )],
            investigation_reports: 2,
            previous: Some(PreviousMonth {
                month: "2026-10".into(),
                alerts_total: 9,
                incidents_opened: 1,
            }),
            generated_at: t("2026-12-01T00:00:00Z"),
        });
        assert_eq!(n.alerts.total, 5);
        assert_eq!(n.alerts.by_product["mde"], 3);
        assert_eq!(n.alerts.by_product["mdo"], 2);
        assert_eq!(n.alerts.by_product["idp"], 0);
        assert_eq!(n.alerts.by_severity["unknown"], 1);
        assert_eq!(n.decisions["incident"], 2);
        assert_eq!(n.decisions["out_of_scope"], 1);
        // Nov 1 JST holds alert a.
        assert_eq!(n.daily["mde"][0], 1);
        assert_eq!(
            n.incidents,
            IncidentCounts {
                opened: 1,
                resolved: 0,
                open: 1
            }
        );
        assert_eq!(n.time_to_ticket[1], ("5〜15分".to_string(), 1));
        assert_eq!(n.top_devices[0], ("pc-1".to_string(), 3));
        assert_eq!(n.actions["isolate"]["succeeded"], 1);
        assert_eq!(n.incident_rows[0].actions, ["ネットワーク分離: 完了"]);
        assert_eq!(n.metrics["mdo_click_alerts"], 2);
        assert!(
            n.proposals
                .iter()
                .any(|p| p.id == "phishing-clicks" && p.text.contains("2 件")),
            "{:?}",
            n.proposals
        );
        assert!(
            n.proposals
                .iter()
                .any(|p| p.id == "repeat-device" && p.text.contains("pc-1")),
            "{:?}",
            n.proposals
        );
        let review = overall_review(&n);
        assert!(
            review[0].contains("2026年11月は 5 件") && review[0].contains("前月より 4 件減少"),
            "{review:?}"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
