//! Properties over generated inputs (proptest), the companions of the fuzz targets in
//! `fuzz/` (RELIABILITY.md, "Fuzzing and properties"):
//!
//! - classification never lowers the decision of an earlier version of an alert;
//! - the escapers round-trip (KQL string literals, HTML/XML text, OpsRamp ext ids);
//! - the calendar: a due time is the close of service hours on a business day, adding
//!   business days is monotonic in the count and in the start date, report due dates are
//!   the 10th business day.
//!
//! Case counts are chosen so the file runs in well under 30 s in debug on two cores;
//! `PROPTEST_CASES=N` raises them all for a longer soak.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike};
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{json, Value};

use shared::adapters::opsramp::ext_ticket_id;
use shared::domain::alert::Alert;
use shared::domain::calendar::{Calendar, CalendarError, InquiryKind, ProviderHoliday};
use shared::domain::classify::{classify, DecisionKind};
use shared::domain::kql::{parse_string_literal, string_literal};
use shared::domain::tenant::Tenant;
use shared::report::charts::esc;

/// `PROPTEST_CASES` when set, else `n`.
fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig::with_cases(n)
}

// =============================================================================================
// Classification
// =============================================================================================

const AZURE_TENANT: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const OTHER_TENANT: &str = "00000000-1111-4222-8333-444444444444";
const PRODUCTS: [&str; 6] = ["mde", "mdo", "mda", "mdi", "idp", "sentinel"];
const SEVERITIES: [&str; 4] = ["informational", "low", "medium", "high"];
const GROUPS: [&str; 3] = ["東京本社PC", "Servers", "大阪支店"];
const TITLES: [&str; 4] = [
    "Email messages containing malicious URL removed after delivery",
    "Elevation of Exchange admin privilege",
    "Mass download by a single user",
    "Impossible travel activity",
];
const POLICY_IDS: [&str; 3] = ["pol-1", "pol-2", "det-3"];
const APPS: [&str; 3] = ["Office 365", "Microsoft Azure", "Box"];

fn policy(categories: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        prop::sample::select(&TITLES[..]),
        prop::option::of(prop::sample::select(&POLICY_IDS[..])),
        prop::sample::select(categories),
        prop::sample::select(&["monitored", "incident"][..]),
    )
        .prop_map(|(name, id, category, level)| {
            let id = id.map(|i| format!("id = \"{i}\"\n")).unwrap_or_default();
            format!("name = \"{name}\"\n{id}category = \"{category}\"\nlevel = \"{level}\"\n")
        })
}

/// A valid tenant file: any non-empty set of products, each with its section and criteria
/// drawn from pools the alert generator also draws from (so policies and groups match).
fn tenant_toml() -> impl Strategy<Value = String> {
    (
        subsequence(&PRODUCTS[..], 1..=PRODUCTS.len()),
        prop_oneof![
            Just(vec!["*"]),
            subsequence(&GROUPS[..], 1..=GROUPS.len())
        ],
        prop::sample::select(&SEVERITIES[..]),
        prop::collection::vec(policy(&["threat_management", "permissions"]), 1..3),
        prop::option::of(subsequence(&APPS[..2], 1..=2)),
        prop::collection::vec(
            policy(&["cloud_discovery", "sharing_control", "threat_detection"]),
            1..3,
        ),
        prop::sample::select(&["low", "medium", "high"][..]),
        prop::sample::select(&SEVERITIES[..]),
    )
        .prop_map(
            |(products, groups, mde_min, mdo, apps, mda, idp_min, sentinel_min)| {
                let list: Vec<String> = products.iter().map(|p| format!("\"{p}\"")).collect();
                let mut t = format!(
                    "id = \"gen-tenant\"\nname = \"生成テナント\"\nazure_tenant_id = \"{AZURE_TENANT}\"\nproducts = [{}]\n",
                    list.join(", ")
                );
                for p in &products {
                    match *p {
                        "mde" => {
                            let g: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
                            t += &format!(
                                "[mde]\ndevice_groups = [{}]\nincident_min_severity = \"{mde_min}\"\n",
                                g.join(", ")
                            );
                        }
                        "mdo" => {
                            for p in &mdo {
                                t += &format!("[[mdo.policies]]\n{p}");
                            }
                        }
                        "mda" => {
                            t += "[mda]\n";
                            if let Some(a) = &apps {
                                let a: Vec<String> = a.iter().map(|x| format!("\"{x}\"")).collect();
                                t += &format!("apps = [{}]\n", a.join(", "));
                            }
                            for p in &mda {
                                t += &format!("[[mda.policies]]\n{p}");
                            }
                        }
                        "mdi" => t += "[mdi]\n",
                        "idp" => t += &format!("[idp]\nincident_min_risk = \"{idp_min}\"\n"),
                        _ => t += &format!("[sentinel]\nincident_min_severity = \"{sentinel_min}\"\n"),
                    }
                }
                t
            },
        )
}

fn tenant() -> impl Strategy<Value = Tenant> {
    tenant_toml().prop_map(|t| {
        Tenant::from_toml(&t).unwrap_or_else(|e| panic!("generated tenant refused: {e}\n{t}"))
    })
}

const SOURCES: [&str; 8] = [
    "microsoftDefenderForEndpoint",
    "microsoftDefenderForOffice365",
    "microsoftDefenderForCloudApps",
    "microsoftDefenderForIdentity",
    "azureAdIdentityProtection",
    "microsoftSentinel",
    "unknownFutureValue",
    "",
];

/// Where an alert says it comes from: nowhere, the tenant (in any case), or another tenant.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    Unsaid,
    Own,
    OwnUpper,
    Other,
}

/// One version of alert `alert-1`, `n` minutes after the first, with everything a decision
/// reads drawn at random (including unreadable severities and unknown sources).
fn alert_version(origins: &'static [Origin]) -> impl Strategy<Value = (u32, Value)> {
    (
        0u32..10_000,
        prop::sample::select(&SOURCES[..]),
        prop::option::of(prop::sample::select(
            &["informational", "low", "medium", "high", "unknown", "High", ""][..],
        )),
        prop::sample::select(origins),
        prop::option::of(prop::sample::select(&TITLES[..])),
        prop::option::of(prop::sample::select(&POLICY_IDS[..])),
        prop::collection::vec(prop::sample::select(&GROUPS[..]), 0..3),
        prop::collection::vec(prop::sample::select(&APPS[..]), 0..2),
    )
        .prop_map(
            |(n, source, severity, origin, title, policy_id, groups, apps)| {
                let mut a = json!({"id": "alert-1", "title": title, "alertPolicyId": policy_id});
                if !source.is_empty() {
                    a["serviceSource"] = json!(source);
                }
                if let Some(s) = severity {
                    a["severity"] = json!(s);
                }
                match origin {
                    Origin::Unsaid => {}
                    Origin::Own => a["tenantId"] = json!(AZURE_TENANT),
                    Origin::OwnUpper => a["tenantId"] = json!(AZURE_TENANT.to_uppercase()),
                    Origin::Other => a["tenantId"] = json!(OTHER_TENANT),
                }
                let mut evidence: Vec<Value> = groups
                    .iter()
                    .map(|g| json!({"@odata.type": "#microsoft.graph.security.deviceEvidence", "rbacGroupName": g}))
                    .collect();
                evidence.extend(apps.iter().map(|x| {
                    json!({"@odata.type": "#microsoft.graph.security.cloudApplicationEvidence", "displayName": x})
                }));
                a["evidence"] = json!(evidence);
                (n, a)
            },
        )
}

fn parse_version(minutes: u32, mut raw: Value) -> Alert {
    let at = chrono::Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
        + Duration::minutes(i64::from(minutes));
    raw["lastUpdateDateTime"] = json!(at.to_rfc3339());
    Alert::from_value(raw).expect("generated alerts are well-formed")
}

const KINDS: [DecisionKind; 3] = [
    DecisionKind::OutOfScope,
    DecisionKind::Monitored,
    DecisionKind::Incident,
];

const ANY_ORIGIN: [Origin; 4] = [Origin::Unsaid, Origin::Own, Origin::OwnUpper, Origin::Other];
const SAME_TENANT: [Origin; 3] = [Origin::Unsaid, Origin::Own, Origin::OwnUpper];

proptest! {
    #![proptest_config(cases(512))]

    /// With any earlier decision `k`, a version is decided at least `k` (exactly the higher
    /// of `k` and its own decision), with a reason. The one documented exception: a version
    /// claiming another Azure tenant is out of scope and flagged, whatever came before, so
    /// it can never reach a ticket.
    #[test]
    fn a_decision_is_never_lowered_by_a_later_version(
        t in tenant(),
        (n, raw) in alert_version(&ANY_ORIGIN),
    ) {
        let a = parse_version(n, raw);
        let fresh = classify(&t, &a, None);
        prop_assert!(!fresh.reason.is_empty());
        for k in KINDS {
            let d = classify(&t, &a, Some(k));
            prop_assert!(!d.reason.is_empty());
            if d.tenant_mismatch {
                prop_assert_eq!(d.kind, DecisionKind::OutOfScope);
                prop_assert_eq!(a.fields.tenant_id.as_deref(), Some(OTHER_TENANT));
            } else {
                prop_assert!(d.kind >= k, "{:?} lowered to {:?}: {}", k, d.kind, d.reason);
                prop_assert_eq!(d.kind, k.max(fresh.kind));
                prop_assert_eq!(d.product, fresh.product);
            }
        }
    }

    /// Versions of one alert decided in turn, each against the decision recorded for the
    /// one before (as `steps::classify::decide` does): the recorded decisions never go down,
    /// and the last is the highest any version earned on its own.
    #[test]
    fn decisions_over_a_sequence_of_versions_only_go_up(
        t in tenant(),
        versions in prop::collection::vec(alert_version(&SAME_TENANT), 1..8),
    ) {
        let mut versions = versions;
        versions.sort_by_key(|(n, _)| *n);
        let mut prev: Option<DecisionKind> = None;
        let mut best = DecisionKind::OutOfScope;
        for (n, raw) in versions {
            let a = parse_version(n, raw);
            best = best.max(classify(&t, &a, None).kind);
            let d = classify(&t, &a, prev);
            prop_assert!(!d.tenant_mismatch);
            if let Some(p) = prev {
                prop_assert!(d.kind >= p, "{:?} then {:?}", p, d.kind);
            }
            prev = Some(d.kind);
        }
        prop_assert_eq!(prev, Some(best));
    }

    /// Classification is a function: the same tenant, version and history always give the
    /// same decision (reruns and redeliveries cannot change what was decided).
    #[test]
    fn classification_is_deterministic(
        t in tenant(),
        (n, raw) in alert_version(&ANY_ORIGIN),
        k in prop::option::of(prop::sample::select(&KINDS[..])),
    ) {
        let a = parse_version(n, raw);
        prop_assert_eq!(classify(&t, &a, k), classify(&t, &a, k));
    }
}

// =============================================================================================
// Escaping
// =============================================================================================

/// Text biased towards what breaks escapers: quotes, backslashes, line breaks, controls,
/// markup, bidi marks, entities, and any other character.
fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>(),
            1 => prop::sample::select(&[
                '"', '\'', '\\', '\n', '\r', '\t', '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}',
                '\u{9b}', '<', '>', '&', ';', '#', '|', '/', '\u{202e}', '\u{2066}', '\u{200f}',
                '\u{fffe}', '\u{ffff}', '\u{2028}', 'テ', '😀', '\u{0301}',
            ][..]),
        ],
        0..48,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), hostile_text(), "[\\\\\"nt'a ]{0,12}"]
}

/// `string_literal`'s documented reading: the value, with controls other than `\n` and `\t`
/// (which have KQL escapes) replaced by U+FFFD.
fn kql_expected(v: &str) -> String {
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

/// `esc`'s documented drops: controls but tab/newline/CR, bidi controls, U+FFFE/U+FFFF.
fn esc_drops(c: char) -> bool {
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

/// Reverses `esc`; `None` on an `&` that does not start one of its five entities.
fn html_unescape(s: &str) -> Option<String> {
    const ENTITIES: [(&str, char); 5] = [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&#39;", '\''),
    ];
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (e, c) = ENTITIES.iter().find(|(e, _)| rest.starts_with(e))?;
        out.push(*c);
        rest = &rest[e.len()..];
    }
    out.push_str(rest);
    Some(out)
}

/// Reverses `ext_ticket_id`'s id part (`.xx` = one byte in hex).
fn ext_id_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(cases(1024))]

    /// A KQL literal reads back as its value (modulo the documented U+FFFD) with both
    /// readers' rules, holds no raw line break or control, and ends exactly where it was
    /// written to end whatever follows it.
    #[test]
    fn kql_string_literals_round_trip_and_never_end_early(v in text(), tail in text()) {
        let lit = string_literal(&v);
        prop_assert!(!lit.chars().any(char::is_control), "{:?}", lit);
        let (back, rest) = parse_string_literal(&lit).unwrap();
        prop_assert_eq!(&back, &kql_expected(&v));
        prop_assert_eq!(rest, "");
        let followed = format!("{lit}{tail}");
        let (back, rest) = parse_string_literal(&followed).unwrap();
        prop_assert_eq!(&back, &kql_expected(&v));
        prop_assert_eq!(rest, tail.as_str());
        // Writing what was read gives the same literal: the escaping is canonical.
        prop_assert_eq!(string_literal(&back), lit);
    }

    /// `esc` output carries no markup character outside the entities it writes, nothing it
    /// documents dropping, and unescapes to the input minus exactly those drops.
    #[test]
    fn html_escaping_round_trips(s in text()) {
        let e = esc(&s);
        prop_assert!(!e.contains(['<', '>', '"', '\'']), "{:?}", e);
        prop_assert!(!e.chars().any(esc_drops), "{:?}", e);
        let kept: String = s.chars().filter(|c| !esc_drops(*c)).collect();
        prop_assert_eq!(html_unescape(&e), Some(kept.clone()));
        // Idempotent on what has nothing to escape or drop.
        if !kept.contains(['<', '>', '"', '\'', '&']) {
            prop_assert_eq!(&e, &kept);
        }
    }

    /// OpsRamp ext ids use only query-safe characters and decode back to the alert's or
    /// incident's id, so two different keys never share a ticket.
    #[test]
    fn opsramp_ext_ids_are_query_safe_and_round_trip(
        kind in prop::sample::select(&["incident:", "alert:", ""][..]),
        id in text(),
    ) {
        let key = format!("{kind}{id}");
        let ext = ext_ticket_id("gen-tenant", &key);
        prop_assert!(
            ext.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{:?}", ext
        );
        let short = match kind { "incident:" => "inc", "alert:" => "alr", _ => "key" };
        let prefix = format!("mss-gen-tenant-{short}-");
        prop_assert!(ext.starts_with(&prefix), "{:?}", ext);
        let escaped_part = if short == "key" { key.as_str() } else { id.as_str() };
        prop_assert_eq!(ext_id_decode(&ext[prefix.len()..]), Some(escaped_part.as_bytes().to_vec()));
    }
}

// =============================================================================================
// Calendar
// =============================================================================================

fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap()
}

/// An instant from 2000-01-01 to 2099-10-31 (so every deadline stays inside the supported
/// years), in a random offset.
fn instant() -> impl Strategy<Value = DateTime<FixedOffset>> {
    let from = chrono::Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let to = chrono::Utc
        .with_ymd_and_hms(2099, 10, 31, 0, 0, 0)
        .unwrap()
        .timestamp();
    (from..to, -12i32..=14).prop_map(|(secs, h)| {
        chrono::Utc
            .timestamp_opt(secs, 0)
            .unwrap()
            .with_timezone(&FixedOffset::east_opt(h * 3600).unwrap())
    })
}

fn date() -> impl Strategy<Value = NaiveDate> {
    let from = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    (0i64..36_100).prop_map(move |d| from + Duration::days(d))
}

/// The default calendar, or one with random provider holidays (single days and a
/// year-end-like range) and service hours.
fn calendar() -> impl Strategy<Value = Calendar> {
    let custom = (
        prop::collection::vec((1u32..=12, 1u32..=31), 0..40),
        prop::option::of(((1u32..=12, 1u32..=28), (1u32..=12, 1u32..=28))),
        0u32..(22 * 60),
        1u32..(6 * 60),
    )
        .prop_map(|(days, range, start_min, len_min)| {
            let mut hol: Vec<ProviderHoliday> = days
                .into_iter()
                .filter_map(|(m, d)| ProviderHoliday::new(m, d).ok())
                .collect();
            if let Some(((m1, d1), (m2, d2))) = range {
                let a = ProviderHoliday::new(m1, d1).unwrap();
                let b = ProviderHoliday::new(m2, d2).unwrap();
                let r = ProviderHoliday::range(a, b).unwrap();
                // A long wrap-around range could close most of the year; keep it a break.
                if r.len() <= 20 {
                    hol.extend(r);
                }
            }
            let start = NaiveTime::from_hms_opt(start_min / 60, start_min % 60, 0).unwrap();
            let end_min = (start_min + len_min).min(23 * 60 + 59);
            let end = NaiveTime::from_hms_opt(end_min / 60, end_min % 60, 0).unwrap();
            Calendar::new(hol, start, end).expect("generated calendar is valid")
        });
    prop_oneof![1 => Just(Calendar::default()), 2 => custom]
}

proptest! {
    #![proptest_config(cases(512))]

    /// A due time (either SLA) is the close of service hours (JST) on a business day: the
    /// desk is open the second before it, it is never before the inquiry, and it is never
    /// earlier for a later inquiry. A business-impact due time is never later than a
    /// general one, and a general one leaves at least three full service days.
    #[test]
    fn sla_due_times_are_closing_time_on_a_business_day(
        cal in calendar(),
        t in instant(),
        later in 0i64..(14 * 86_400),
    ) {
        let mut prev_due = None;
        for kind in [InquiryKind::BusinessImpact, InquiryKind::General] {
            let due = cal.sla_due(kind, t).unwrap();
            prop_assert_eq!(due.offset(), &jst());
            prop_assert!(cal.is_business_day(due.date_naive()), "{} not a business day", due);
            prop_assert_eq!(due.time(), cal.service_end());
            prop_assert!(cal.service_start() < due.time());
            prop_assert!(cal.is_within_service_hours(due - Duration::seconds(1)), "{}", due);
            prop_assert!(!cal.is_within_service_hours(due));
            prop_assert!(due > t, "due {} before receipt {}", due, t);
            let t2 = t + Duration::seconds(later);
            let due2 = cal.sla_due(kind, t2).unwrap();
            prop_assert!(due2 >= due, "{:?}: {} received later is due {} < {}", kind, t2, due2, due);
            if let Some(p) = prev_due {
                prop_assert!(p <= due, "business impact due {} after general due {}", p, due);
            }
            prev_due = Some(due);
            if kind == InquiryKind::General {
                let left = cal.business_time_between(t, due).unwrap();
                let day = cal.service_end() - cal.service_start();
                prop_assert!(left >= day * 3, "only {} of service time before {}", left, due);
            }
        }
    }

    /// The next opening is now or later, and the desk is open then.
    #[test]
    fn the_next_service_start_is_open(cal in calendar(), t in instant()) {
        let s = cal.next_service_start(t).unwrap();
        prop_assert!(s >= t);
        prop_assert!(cal.is_within_service_hours(s), "{}", s);
        let local = s.with_timezone(&jst());
        prop_assert!(local.time() >= cal.service_start() && local.time() < cal.service_end());
    }

    /// `add_business_days` lands on a business day (for n ≥ 1), is strictly increasing in
    /// n, never goes back for a later start, and counts exactly n business days.
    #[test]
    fn adding_business_days_is_monotonic(
        cal in calendar(),
        d in date(),
        shift in 0i64..30,
        n in 0u32..25,
        m in 0u32..25,
    ) {
        let (lo, hi) = (n.min(m), n.max(m));
        let a = cal.add_business_days(d, lo).unwrap();
        let b = cal.add_business_days(d, hi).unwrap();
        prop_assert!(a <= b);
        if lo < hi {
            prop_assert!(a < b);
        }
        if hi > 0 {
            prop_assert!(cal.is_business_day(b));
            let counted = d.iter_days().skip(1).take_while(|x| *x <= b).filter(|x| cal.is_business_day(*x)).count();
            prop_assert_eq!(counted, hi as usize);
        } else {
            prop_assert_eq!(b, d);
        }
        let later = d + Duration::days(shift);
        let c = cal.add_business_days(later, hi).unwrap();
        prop_assert!(c >= b, "start {} → {}, later start {} → {}", d, b, later, c);
        prop_assert_eq!(cal.add_business_days(a, hi - lo).unwrap(), b);
    }

    /// A monthly report is due on the 10th business day of the next month (or the calendar
    /// says that month has fewer than ten).
    #[test]
    fn report_due_is_the_tenth_business_day(cal in calendar(), year in 2000i32..2099, month in 1u32..=12) {
        let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        let first = NaiveDate::from_ymd_opt(ny, nm, 1).unwrap();
        let in_month: Vec<NaiveDate> = first
            .iter_days()
            .take_while(|d| d.month() == nm)
            .filter(|d| cal.is_business_day(*d))
            .collect();
        match cal.report_due(year, month) {
            Ok(due) => {
                prop_assert_eq!(Some(&due), in_month.get(9));
                prop_assert!(cal.is_business_day(due));
            }
            Err(CalendarError::TooFewBusinessDays { .. }) => prop_assert!(in_month.len() < 10),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }
}

/// The generators and bounds above mean what they say: the default hours are 9:00–17:30,
/// 2100 is out of range, and generated tenants and alerts reach every decision.
#[test]
fn generator_sanity() {
    let cal = Calendar::default();
    assert_eq!(cal.service_start().hour(), 9);
    assert_eq!(
        cal.service_end(),
        NaiveTime::from_hms_opt(17, 30, 0).unwrap()
    );
    let late = jst().with_ymd_and_hms(2099, 12, 30, 12, 0, 0).unwrap();
    assert!(
        cal.sla_due(InquiryKind::General, late).is_err(),
        "2100 is out of range"
    );

    // The classification generators reach every decision, and the mismatch exception.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    let mut mismatches = 0;
    for _ in 0..400 {
        let t = tenant().new_tree(&mut runner).unwrap().current();
        let (n, raw) = alert_version(&ANY_ORIGIN)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let d = classify(&t, &parse_version(n, raw), None);
        mismatches += usize::from(d.tenant_mismatch);
        seen.insert(d.kind);
    }
    assert_eq!(seen.len(), 3, "decisions reached: {seen:?}");
    assert!(mismatches > 0);
}
