//! End to end through the real `mss` binary: scenario → simulator (HTTPS) → Graph client →
//! SQLite state and queues → classify → OpsRamp client → simulated tickets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn mss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("mss runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn data(name: &str) -> String {
    format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

const KAEDE: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const AOBA: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";

fn alert(
    id: &str,
    at: &str,
    source: &str,
    sev: &str,
    incident: Option<&str>,
    extra: Value,
) -> Value {
    let mut a = json!({
        "id": id, "lastUpdateDateTime": at, "createdDateTime": at, "serviceSource": source,
        "severity": sev, "status": "new", "title": format!("Alert {id}"), "tenantId": KAEDE,
    });
    if let Some(i) = incident {
        a["incidentId"] = json!(i);
    }
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

fn device(group: &str) -> Value {
    json!([{"@odata.type": "#microsoft.graph.security.deviceEvidence", "rbacGroupName": group, "mdeDeviceId": "d-1", "deviceDnsName": "tky-pc-1"}])
}

const MDE: &str = "microsoftDefenderForEndpoint";
const MDO: &str = "microsoftDefenderForOffice365";
const MDI: &str = "microsoftDefenderForIdentity";
const IDP: &str = "azureAdIdentityProtection";

/// Shared incidents, updates, a duplicated version, a raised decision, noise, a malformed
/// item, a misrouted alert, and a second customer reusing the same Defender incident number.
fn scenario() -> Value {
    let a1 = alert(
        "da1",
        "2026-11-02T00:10:00Z",
        MDE,
        "high",
        Some("100"),
        json!({"evidence": device("東京本社PC")}),
    );
    let a2 = alert(
        "da2",
        "2026-11-02T00:20:00Z",
        MDE,
        "medium",
        Some("100"),
        json!({"evidence": device("東京本社pc")}),
    );
    let mut a1v2 = a1.clone();
    a1v2["lastUpdateDateTime"] = json!("2026-11-02T01:00:00Z");
    a1v2["status"] = json!("inProgress");
    let mut a1v3 = a1v2.clone();
    a1v3["lastUpdateDateTime"] = json!("2026-11-02T02:00:00Z");
    a1v3["status"] = json!("resolved");
    a1v3["classification"] = json!("truePositive");
    let a3 = alert(
        "da3",
        "2026-11-02T00:30:00Z",
        MDE,
        "low",
        Some("101"),
        json!({"evidence": device("東京本社PC")}),
    );
    let mut a3v2 = a3.clone();
    a3v2["lastUpdateDateTime"] = json!("2026-11-02T01:30:00Z");
    a3v2["severity"] = json!("high");
    let a4 = alert(
        "da4",
        "2026-11-02T00:40:00Z",
        MDE,
        "high",
        Some("103"),
        json!({"evidence": device("検証環境")}),
    );
    let a5 = alert(
        "fa5",
        "2026-11-02T00:50:00Z",
        MDO,
        "medium",
        None,
        json!({"title": "Email messages containing malicious URL removed after delivery"}),
    );
    let a6 = alert(
        "aa6",
        "2026-11-02T01:05:00Z",
        MDI,
        "low",
        Some("102"),
        json!({}),
    );
    let mut a6v2 = a6.clone();
    a6v2["lastUpdateDateTime"] = json!("2026-11-02T02:30:00Z");
    a6v2["severity"] = json!("high");
    let a7 = alert(
        "ad7",
        "2026-11-02T01:10:00Z",
        IDP,
        "medium",
        None,
        json!({}),
    );
    let a8 = alert(
        "aa8",
        "2026-11-02T01:15:00Z",
        MDI,
        "high",
        Some("104"),
        json!({"tenantId": "99999999-9999-4999-8999-999999999999"}),
    );
    let bad = json!({"id": "da9", "lastUpdateDateTime": "2026-11-02T00:45:00Z", "serviceSource": MDE, "title": 7});
    let late = alert(
        "da10",
        "2026-11-02T04:00:00Z",
        MDE,
        "high",
        Some("105"),
        json!({"evidence": device("東京本社PC")}),
    );
    let mut b1 = alert(
        "aa1",
        "2026-11-02T00:15:00Z",
        MDI,
        "medium",
        Some("100"),
        json!({}),
    );
    b1["tenantId"] = json!(AOBA);
    json!({
        "start": "2026-11-02T00:00:00Z",
        "end": "2026-11-02T03:00:00Z",
        "tenants": [
            {"config": {
                "id": "kaede-shoji", "name": "楓商事株式会社", "azure_tenant_id": KAEDE,
                "products": ["mde", "mdo", "mdi", "idp"],
                "contacts": {"to": ["soc@kaede.example"], "cc": ["it@kaede.example", "cso@kaede.example"]},
                "mde": {"device_groups": ["東京本社PC"], "incident_min_severity": "medium"},
                "mdo": {"policies": [{"name": "Email messages containing malicious URL removed after delivery", "category": "threat_management", "level": "incident"}]},
                "mdi": {},
                "idp": {"incident_min_risk": "high"}},
             "alerts": [a1, a2, a1v2, a1v3, a3, a3v2, a4, a5.clone(), a5, a6, a6v2, a7, a8, bad, late]},
            {"config": {
                "id": "aoba-ginko", "name": "株式会社青葉銀行", "azure_tenant_id": AOBA,
                "products": ["mdi"], "mdi": {}},
             "alerts": [b1]}
        ]
    })
}

fn run_demo(scenario: &Path, state: &Path) -> Value {
    let o = mss(&[
        "demo",
        "--scenario",
        scenario.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "demo failed: {}", stderr(&o));
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {}", stdout(&o)))
}

fn tenant<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
}

fn tickets_by_key(t: &Value) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for tk in t["tickets"].as_array().unwrap() {
        let key = tk["incident_key"].as_str().unwrap().to_string();
        assert!(
            m.insert(key.clone(), tk.clone()).is_none(),
            "two tickets for incident key {key}"
        );
    }
    m
}

#[test]
fn scenario_gives_one_ticket_per_incident_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("scenario.json");
    std::fs::write(&sc, serde_json::to_string(&scenario()).unwrap()).unwrap();
    let state = dir.path().join("state");
    let r = run_demo(&sc, &state);

    let k = tenant(&r, "kaede-shoji");
    // da9 is malformed (not an alert), da10 becomes visible only after `end`.
    assert_eq!(k["alerts"], 8, "{k}");
    assert_eq!(
        k["decisions"],
        json!({"incident": 5, "monitored": 1, "out_of_scope": 2})
    );
    let t = tickets_by_key(k);
    assert_eq!(
        t.keys().cloned().collect::<Vec<_>>(),
        vec!["100", "101", "102", "fa5"],
        "{k}"
    );

    let t100 = &t["100"];
    assert_eq!(t100["alert_ids"], json!(["da1", "da2"]));
    assert_eq!(t100["subject"], "【重大度: 高】Alert da1");
    assert_eq!(t100["priority"], "Urgent");
    assert_eq!(t100["status"], "New");
    // da2 joined (1), da1 went in progress (1), da1 was resolved (1), and one investigation
    // report per alert (2): `updates` counts every update and response call.
    assert_eq!(t100["updates"], 5, "{t100}");
    let reports: Vec<&str> = t100["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.starts_with("【調査報告】"))
        .collect();
    assert_eq!(reports.len(), 2, "{t100}");
    assert!(reports[0].contains("アラート ID: da1") && reports[1].contains("アラート ID: da2"));

    // da3 was monitored (low) until its severity rose: then, and only then, a ticket.
    assert_eq!(t["101"]["alert_ids"], json!(["da3"]));
    // Every ticket carries one investigation report per alert; below, `alert_updates` leaves
    // them out to count what the alerts' changes caused.
    let reports_on = |x: &Value| {
        x["responses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r.as_str().unwrap().starts_with("【調査報告】"))
            .count() as u64
    };
    let alert_updates = |x: &Value| x["updates"].as_u64().unwrap() - reports_on(x);
    for x in t.values() {
        assert_eq!(
            reports_on(x),
            x["alert_ids"].as_array().unwrap().len() as u64,
            "{x}"
        );
    }
    assert_eq!(alert_updates(&t["101"]), 0);
    assert_eq!(t["101"]["subject"], "【重大度: 高】Alert da3");

    // A raised severity updates the subject and priority (1) and adds a note (1).
    assert_eq!(t["102"]["subject"], "【重大度: 高】Alert aa6");
    assert_eq!(t["102"]["priority"], "Urgent");
    assert_eq!(alert_updates(&t["102"]), 2);

    // No incidentId: the alert id is the key; the duplicated version did nothing more.
    assert_eq!(alert_updates(&t["fa5"]), 0);
    assert_eq!(t["fa5"]["priority"], "High");
    assert_eq!(
        t["fa5"]["subject"],
        "【重大度: 中】Email messages containing malicious URL removed after delivery"
    );

    // Same Defender incident number, other customer: its own ticket.
    let a = tenant(&r, "aoba-ginko");
    let ta = tickets_by_key(a);
    assert_eq!(ta.keys().cloned().collect::<Vec<_>>(), vec!["100"]);
    assert_ne!(ta["100"]["id"], t100["id"]);

    let all_ids: BTreeSet<_> = r["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(all_ids.len(), 5);

    // The simulated OpsRamp holds the tickets with the tenant's contacts and Japanese text.
    let sim: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("opsramp-sim.json")).unwrap())
            .unwrap();
    let raw = sim.to_string();
    assert!(!raw.contains("aa8"), "the misrouted alert reached a ticket");
    assert!(
        !raw.contains("da4"),
        "an out-of-scope alert reached a ticket"
    );
    assert!(!raw.contains("ad7"), "a monitored alert reached a ticket");
    let t100_sim = sim["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == t100["id"])
        .unwrap();
    assert_eq!(t100_sim["to_email"], "soc@kaede.example");
    assert_eq!(t100_sim["cc"], "it@kaede.example,cso@kaede.example");
    assert!(t100_sim["description"]
        .as_str()
        .unwrap()
        .contains("■ お客様: 楓商事株式会社"));
    let notes: Vec<&str> = t100_sim["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .filter(|d| !d.starts_with("【調査報告】"))
        .collect();
    assert!(notes[0].starts_with("【アラート追加】"), "{notes:?}");
    assert!(notes[1].contains("ステータス: 新規 → 対応中"), "{notes:?}");
    assert!(
        notes[2].starts_with("【解決】") && notes[2].contains("真陽性"),
        "{notes:?}"
    );

    // A second run on the same state creates and updates nothing.
    let before = std::fs::read_to_string(state.join("opsramp-sim.json")).unwrap();
    let r2 = run_demo(&sc, &state);
    assert_eq!(r2, r, "second run changed the outcome");
    let after = std::fs::read_to_string(state.join("opsramp-sim.json")).unwrap();
    let tickets = |s: &str| serde_json::from_str::<Value>(s).unwrap()["tickets"].clone();
    assert_eq!(tickets(&after), tickets(&before));

    // Moving the end later reveals da10 on the next run, as a new ticket: the state continues.
    let mut later = scenario();
    later["end"] = json!("2026-11-02T05:00:00Z");
    std::fs::write(&sc, serde_json::to_string(&later).unwrap()).unwrap();
    let r3 = run_demo(&sc, &state);
    let t3 = tickets_by_key(tenant(&r3, "kaede-shoji"));
    assert_eq!(t3.len(), 5);
    assert_eq!(t3["105"]["alert_ids"], json!(["da10"]));
    assert_eq!(t3["100"], t100.clone());
}

#[test]
fn builtin_demo_runs_and_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let o = mss(&["demo", "--json", "--state", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tenants = r["tenants"].as_array().unwrap();
    assert!(tenants.len() >= 3);
    let mut alerts = 0;
    for t in tenants {
        let d = &t["decisions"];
        let n = t["alerts"].as_u64().unwrap();
        alerts += n;
        assert_eq!(
            d["incident"].as_u64().unwrap()
                + d["monitored"].as_u64().unwrap()
                + d["out_of_scope"].as_u64().unwrap(),
            n
        );
        let by_key = tickets_by_key(t);
        assert!(!by_key.is_empty());
        let ticketed: usize = by_key
            .values()
            .map(|x| x["alert_ids"].as_array().unwrap().len())
            .sum();
        assert!(ticketed as u64 <= d["incident"].as_u64().unwrap(), "{t}");
        for tk in by_key.values() {
            let s = tk["subject"].as_str().unwrap();
            assert!(s.starts_with("【重大度: "), "{s}");
            assert!(["Urgent", "High", "Normal", "Low"].contains(&tk["priority"].as_str().unwrap()));
        }
    }
    assert!(alerts >= 200, "{alerts}");
    assert!(dir.path().join("mss.sqlite").exists());
    // Investigation reports: one per ticketed alert, each with the four headings, naming what
    // it is about from the evidence.
    let mut reports = Vec::new();
    for t in tenants {
        for tk in t["tickets"].as_array().unwrap() {
            let rs: Vec<&str> = tk["responses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .filter(|r| r.starts_with("【調査報告"))
                .collect();
            assert_eq!(rs.len(), tk["alert_ids"].as_array().unwrap().len(), "{tk}");
            reports.extend(rs);
        }
    }
    for r in &reports {
        for h in [
            "■ ユーザ名",
            "■ インシデント内容",
            "■ 関連検知情報",
            "■ 対応推奨事項",
        ] {
            assert!(r.contains(h), "{h} missing:\n{r}");
        }
    }
    for about in ["対象端末: ", "対象メールボックス: ", "対象メール: "] {
        assert!(
            reports.iter().any(|r| r.contains(about)),
            "no report names a {about}"
        );
    }
    assert!(
        reports.iter().any(|r| r.contains("端末のプロセス実行")),
        "MDE reports carry hunting results"
    );
    // First response: every intent has a status from the interface, and the policies show:
    // kaede acts automatically, aoba holds isolation for approval and scans in hours only.
    let allowed = [
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "in_progress",
        "pending_approval",
        "waiting_hours",
        "refused",
        "unsupported",
    ];
    for t in tenants {
        for a in t["actions"].as_array().unwrap() {
            assert!(allowed.contains(&a["status"].as_str().unwrap()), "{a}");
        }
    }
    let count = |t: &str, kind: &str, status: &str| {
        tenant(&r, t)["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == kind && a["status"] == status)
            .count()
    };
    assert!(count("kaede-shoji", "isolate", "succeeded") >= 1);
    assert!(count("kaede-shoji", "scan", "succeeded") >= 1);
    assert!(count("kaede-shoji", "confirm_compromised", "succeeded") >= 1);
    assert!(
        count("kaede-shoji", "air_approval_task", "pending_approval")
            + count("kaede-shoji", "air_approval_task", "succeeded")
            >= 1,
        "an AIR approval task is shown"
    );
    assert!(
        count("kaede-shoji", "isolate", "refused") >= 1,
        "the VIP device is protected"
    );
    assert!(count("aoba-ginko", "isolate", "pending_approval") >= 1);
    assert!(
        count("aoba-ginko", "scan", "succeeded") >= 1,
        "scans held overnight ran at 9:00"
    );
    assert_eq!(count("aoba-ginko", "scan", "timed_out"), 0);
    // The monthly report the demo made, and the exact `mss report` interface on its state.
    for t in tenants {
        let p = t["monthly_report"]
            .as_str()
            .expect("demo names its monthly report");
        assert!(std::path::Path::new(p).exists(), "{p}");
    }
    monthly_report_from_demo_state(dir.path(), &r);
    // The desk's inquiries: due dates on all; business-impact ones (due the same day)
    // got one reminder and one escalation each, as internal notes; general ones nothing yet.
    let sim: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("opsramp-sim.json")).unwrap(),
    )
    .unwrap();
    let srs = sim["service_requests"].as_array().unwrap();
    assert_eq!(srs.len(), 4);
    for sr in srs {
        assert!(sr["raw"]["dueDate"].is_string(), "{sr}");
        let bi = sr["raw"]["customFields"]
            .to_string()
            .contains("business-impact");
        let notes = sr["responses"].as_array().unwrap();
        assert_eq!(notes.len(), if bi { 2 } else { 0 }, "{sr}");
        assert!(notes.iter().all(|n| n["internal"] == true));
    }
}

#[test]
fn demo_refuses_a_bad_scenario_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = scenario();
    sc["tenants"][1]["config"]["products"] = json!(["mdi", "xdr"]);
    let p = dir.path().join("s.json");
    std::fs::write(&p, sc.to_string()).unwrap();
    let o = mss(&["demo", "--scenario", p.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("tenants[1].config.products[1]"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn tenant_validate_ok_and_field_named() {
    let o = mss(&["tenant", "validate", &data("tenant-kaede.toml")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "ok");
    let o = mss(&["tenant", "validate", &data("bad-tenant.toml")]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("mdo.policies[1].category") && e.contains("threat_management | permissions"),
        "{e}"
    );
    let o = mss(&["tenant", "validate", "/nonexistent/t.toml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn classify_prints_one_line_per_alert() {
    let dir = tempfile::tempdir().unwrap();
    let page = json!({"value": [
        alert("da1", "2026-11-02T00:10:00Z", MDE, "high", Some("1"), json!({"evidence": device("東京本社PC")})),
        alert("da2", "2026-11-02T00:10:00Z", MDE, "low", Some("1"), json!({"evidence": device("東京本社PC")})),
        alert("sn3", "2026-11-02T00:10:00Z", "microsoftSentinel", "high", None, json!({})),
        alert("ca4", "2026-11-02T00:10:00Z", "microsoftDefenderForCloudApps", "high", None, json!({"title": "Mass download by a single user"})),
        alert("xx5", "2026-11-02T00:10:00Z", "microsoft365Defender", "high", None, json!({"title": "'\"<script>|\n"})),
    ]});
    let p = dir.path().join("page.json");
    std::fs::write(&p, page.to_string()).unwrap();
    let o = mss(&[
        "classify",
        "--tenant",
        &data("tenant-kaede.toml"),
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    let got: Vec<(&str, &str, Value)> = lines
        .iter()
        .map(|l| {
            (
                l["alert_id"].as_str().unwrap(),
                l["decision"].as_str().unwrap(),
                l["product"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("da1", "incident", json!("mde")),
            ("da2", "monitored", json!("mde")),
            ("sn3", "out_of_scope", Value::Null),
            ("ca4", "monitored", json!("mda")),
            ("xx5", "out_of_scope", Value::Null),
        ]
    );
    for l in &lines {
        assert_eq!(l["tenant"], "kaede-shoji");
        assert!(!l["reason"].as_str().unwrap().is_empty());
    }
    // One alert, and an array, are accepted too.
    let one = dir.path().join("one.json");
    std::fs::write(&one, page["value"][0].to_string()).unwrap();
    let o = mss(&[
        "classify",
        "--tenant",
        &data("tenant-kaede.toml"),
        one.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&o).lines().count(), 1);
    let arr = dir.path().join("arr.json");
    std::fs::write(&arr, page["value"].to_string()).unwrap();
    let o = mss(&[
        "classify",
        "--tenant",
        &data("tenant-kaede.toml"),
        arr.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&o).lines().count(), 5);
}

#[test]
fn calendar_commands() {
    let o = mss(&["calendar", "business-day", "2026-11-03"]);
    assert_eq!(stdout(&o).trim(), "false"); // 文化の日
    let o = mss(&["calendar", "business-day", "2026-11-25"]);
    assert_eq!(stdout(&o).trim(), "true");
    let o = mss(&["calendar", "business-day", "2026-12-30"]);
    assert_eq!(stdout(&o).trim(), "false"); // provider's year-end holiday
    let o = mss(&["calendar", "holidays", "2026"]);
    assert!(
        stdout(&o).lines().any(|l| l == "2026-09-22\t休日"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).lines().any(|l| l == "2026-01-01\t元日"));
    let o = mss(&[
        "sla",
        "--kind",
        "business-impact",
        "--received",
        "2026-11-27T16:59:00+09:00",
    ]);
    assert_eq!(stdout(&o).trim(), "2026-11-27T17:30:00+09:00");
    let o = mss(&[
        "sla",
        "--kind",
        "business-impact",
        "--received",
        "2026-11-27T08:00:00Z",
    ]);
    assert_eq!(stdout(&o).trim(), "2026-11-30T17:30:00+09:00");
    let o = mss(&[
        "sla",
        "--kind",
        "general",
        "--received",
        "2026-11-21T10:00:00+09:00",
    ]);
    assert_eq!(stdout(&o).trim(), "2026-11-26T17:30:00+09:00"); // Sat; 23rd 勤労感謝の日
    let o = mss(&["report", "due", "--month", "2026-01"]);
    assert_eq!(stdout(&o).trim(), "2026-02-16");
    let o = mss(&["report", "due", "--month", "2026-13"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mss(&["sla", "--kind", "general", "--received", "tomorrow"]);
    assert_eq!(o.status.code(), Some(2));
    // The provider's calendar is configuration.
    let cal = data("calendar-example.toml");
    let o = mss(&["--calendar", &cal, "calendar", "business-day", "2026-08-14"]);
    assert_eq!(stdout(&o).trim(), "false");
    let o = mss(&["calendar", "business-day", "2026-08-14"]);
    assert_eq!(stdout(&o).trim(), "true");
    let o = mss(&[
        "--calendar",
        &cal,
        "sla",
        "--kind",
        "business-impact",
        "--received",
        "2026-11-27T17:20:00+09:00",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        "2026-11-27T18:00:00+09:00",
        "cut-off 30 min before the desk closes"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "service_end = \"08:00:00\"\n").unwrap();
    let o = mss(&[
        "--calendar",
        bad.to_str().unwrap(),
        "calendar",
        "business-day",
        "2026-08-14",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn no_secret_token_or_alert_text_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut sc = scenario();
    let hostile = alert(
        "aa66",
        "2026-11-02T00:05:00Z",
        MDI,
        "high",
        Some("666"),
        json!({"title": "Honeypot <script>alert(1)</script>\u{1b}[2J\n\"; drop table x; --", "description": "evil\r\nInjected: line"}),
    );
    sc["tenants"][0]["alerts"]
        .as_array_mut()
        .unwrap()
        .push(hostile);
    let p = dir.path().join("s.json");
    std::fs::write(&p, sc.to_string()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args([
            "demo",
            "--scenario",
            p.to_str().unwrap(),
            "--state",
            dir.path().join("st").to_str().unwrap(),
        ])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Logs (stderr) carry ids only; the summary (stdout) may show a subject, but never a
    // terminal control sequence from an alert.
    let all = stderr(&o);
    assert!(all.lines().count() > 1000, "trace logging was on");
    assert!(
        !stdout(&o).contains('\u{1b}'),
        "an alert's escape sequence reached the terminal"
    );
    for needle in ["simtok", "sim-secret", "sim-opsramp"] {
        assert!(!stdout(&o).contains(needle));
    }
    for needle in [
        "simtok",
        "sim-secret",
        "sim-opsramp",
        "<script>",
        "Honeypot",
        "Injected",
    ] {
        let hit = all.lines().find(|l| l.contains(needle));
        assert!(
            hit.is_none(),
            "{needle:?} reached the output: {}",
            hit.unwrap_or_default()
                .chars()
                .take(400)
                .collect::<String>()
        );
    }
    // The alert text did reach the ticket.
    let sim = std::fs::read_to_string(dir.path().join("st").join("opsramp-sim.json")).unwrap();
    assert!(sim.contains("Honeypot <script>"));
}

/// The same scenario through the cloud shape (DynamoDB, SQS, S3, Secrets Manager on moto,
/// started by scripts/test.sh) gives exactly the embedded result.
#[test]
fn aws_backend_gives_the_embedded_result() {
    let endpoint = std::env::var("MSS_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("MSS_TEST_AWS_ENDPOINT is not set: run ./scripts/test.sh (it installs and starts moto's server)")
    });
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("scenario.json");
    std::fs::write(&sc, serde_json::to_string(&scenario()).unwrap()).unwrap();
    let embedded = run_demo(&sc, &dir.path().join("embedded"));
    let name = format!("e2e-{}", std::process::id());
    let run = |state: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_mss"))
            .args([
                "demo",
                "--scenario",
                sc.to_str().unwrap(),
                "--state",
                dir.path().join(state).to_str().unwrap(),
                "--json",
                "--backend",
                "aws",
                "--endpoint-url",
                &endpoint,
                "--aws-name",
                &name,
            ])
            .env("RUST_LOG", "error")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "ap-northeast-1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()
    };
    let cloud = run("cloud");
    // The monthly reports: the same numbers from DynamoDB's month index as from SQLite.
    for (c, e) in report_numbers(&cloud)
        .into_iter()
        .zip(report_numbers(&embedded))
    {
        assert_eq!(c, e, "monthly report numbers differ between the backends");
    }
    assert_eq!(
        without_report_paths(cloud),
        without_report_paths(embedded.clone()),
        "the cloud shape and the embedded default disagree"
    );
    // And a second run on the same state creates nothing new there either.
    assert_eq!(
        without_report_paths(run("cloud")),
        without_report_paths(embedded)
    );
}

/// The demo JSON without the report files' paths (they name the state directory).
fn without_report_paths(mut v: Value) -> Value {
    for t in v["tenants"].as_array_mut().unwrap() {
        t.as_object_mut().unwrap().remove("monthly_report");
    }
    v
}

/// The counted parts of each tenant's report.json (not when it was generated).
fn report_numbers(demo: &Value) -> Vec<Value> {
    demo["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let html = t["monthly_report"].as_str().unwrap();
            let j: Value = serde_json::from_str(
                &std::fs::read_to_string(Path::new(html).with_file_name("report.json")).unwrap(),
            )
            .unwrap();
            serde_json::json!([
                j["tenant"],
                j["alerts"],
                j["decisions"],
                j["incidents"],
                j["actions"],
                j["top_titles"]
            ])
        })
        .collect()
}

/// First response through the demo: isolate + full scan per device under the tenant's
/// guardrails, tracked to a terminal state on the simulated MDE, one entry per intent.
#[test]
fn first_response_actions_follow_the_guardrails() {
    let dev = |id: &str, extra: Value| {
        let mut d = json!({"id": id, "computerDnsName": format!("{id}.kaede.local"), "osPlatform": "Windows11", "version": "23H2",
            "rbacGroupName": "東京本社PC", "rbacGroupId": "10", "machineTags": []});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    let ev = |id: &str| json!([{"@odata.type": "#microsoft.graph.security.deviceEvidence", "rbacGroupName": "東京本社PC", "mdeDeviceId": id}]);
    let mut sc = scenario();
    let t = &mut sc["tenants"][0];
    t["config"]["response"] = json!({"mde": {"isolate": "auto", "scan": "auto", "protected_device_tags": ["vip"]},
        "idp": {"confirm_compromised": "auto", "protected_users": ["break-glass@kaede.example"]}});
    t["devices"] = json!([
        dev("d1", json!({})),
        dev("d2", json!({"machineTags": ["VIP"]})),
        dev("d3", json!({"simUnsupported": ["Isolate"]})),
        dev("d4", json!({"simActionOutcome": "Failed"})),
    ]);
    t["users"] = json!([{"id": "u-1", "displayName": "佐藤 太郎", "userPrincipalName": "t.sato@kaede.example"},
                        {"id": "u-2", "displayName": "BG", "userPrincipalName": "break-glass@kaede.example"}]);
    let alerts = t["alerts"].as_array_mut().unwrap();
    alerts.retain(|a| a["serviceSource"] != MDE); // only the devices below
    for (i, d) in ["d1", "d2", "d3", "d4", "d5"].iter().enumerate() {
        alerts.push(alert(
            &format!("da-r{i}"),
            &format!("2026-11-02T00:1{i}:00Z"),
            MDE,
            "high",
            Some(&format!("70{i}")),
            json!({"evidence": ev(d)}),
        ));
    }
    let user = |id: &str, upn: &str| {
        json!([{"@odata.type": "#microsoft.graph.security.userEvidence",
        "userAccount": {"azureAdUserId": id, "userPrincipalName": upn}}])
    };
    alerts.push(alert(
        "ad-r1",
        "2026-11-02T00:20:00Z",
        IDP,
        "high",
        Some("800"),
        json!({"evidence": user("u-1", "t.sato@kaede.example")}),
    ));
    alerts.push(alert(
        "ad-r2",
        "2026-11-02T00:21:00Z",
        IDP,
        "high",
        Some("801"),
        json!({"evidence": user("u-2", "break-glass@kaede.example")}),
    ));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(&p, sc.to_string()).unwrap();
    let state = dir.path().join("st");
    let r = run_demo(&p, &state);
    let k = tenant(&r, "kaede-shoji");
    let got: BTreeSet<(String, String, String)> = k["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().into(),
                a["target"].as_str().unwrap().into(),
                a["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("isolate", "d1", "succeeded"),
        ("scan", "d1", "succeeded"),
        ("isolate", "d2", "refused"),
        ("scan", "d2", "refused"),
        ("isolate", "d3", "unsupported"),
        ("scan", "d3", "succeeded"),
        ("isolate", "d4", "failed"),
        ("scan", "d4", "failed"),
        ("isolate", "d5", "refused"),
        ("scan", "d5", "refused"),
        ("confirm_compromised", "u-1", "succeeded"),
        ("confirm_compromised", "u-2", "refused"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want, "{}", k["actions"]);
    for a in k["actions"].as_array().unwrap() {
        if a["status"] == "refused" || a["status"] == "unsupported" {
            assert!(
                !a["reason"].as_str().unwrap().is_empty(),
                "a refusal says why: {a}"
            );
        }
    }
    // Each outcome is written on the incident's ticket, in Japanese.
    let sim: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("opsramp-sim.json")).unwrap())
            .unwrap();
    let t700 = sim["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ext_ticket_id"] == "mss-kaede-shoji-inc-700")
        .unwrap();
    let notes: Vec<&str> = t700["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("【一次対応】ネットワーク分離: 完了")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("【一次対応】フルスキャン: 完了")),
        "{notes:?}"
    );
    // A rerun on the same state repeats no action.
    let r2 = run_demo(&p, &state);
    assert_eq!(tenant(&r2, "kaede-shoji")["actions"], k["actions"]);
}

/// Held actions run only after an operator approves them; a release is the operator's too.
#[test]
fn approval_and_release_by_the_operator() {
    let mut sc = scenario();
    let t = &mut sc["tenants"][0];
    t["config"]["response"] = json!({"mde": {"isolate": "approval", "scan": "off"}});
    t["devices"] = json!([{"id": "d1", "computerDnsName": "d1.kaede.local", "osPlatform": "Windows11", "version": "23H2", "rbacGroupName": "東京本社PC", "machineTags": []}]);
    let alerts = t["alerts"].as_array_mut().unwrap();
    alerts.retain(|a| a["serviceSource"] != MDE);
    alerts.push(alert("da-x1", "2026-11-02T00:10:00Z", MDE, "high", Some("900"),
        json!({"evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "rbacGroupName": "東京本社PC", "mdeDeviceId": "d1"}]})));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(&p, sc.to_string()).unwrap();
    let state = dir.path().join("st");
    let st = state.to_str().unwrap();
    let status = |r: &Value| -> Vec<(String, String)> {
        tenant(r, "kaede-shoji")["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_string(),
                    a["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let r = run_demo(&p, &state);
    assert_eq!(
        status(&r),
        vec![("isolate".into(), "pending_approval".into())]
    );
    // Nothing to release yet, and approving an unknown incident is refused.
    let o = mss(&[
        "respond",
        "release",
        "--tenant",
        "kaede-shoji",
        "--device",
        "d1",
        "--reason",
        "誤検知",
        "--state",
        st,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = mss(&[
        "respond",
        "approve",
        "--tenant",
        "kaede-shoji",
        "--incident",
        "999",
        "--state",
        st,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = mss(&[
        "respond",
        "approve",
        "--tenant",
        "kaede-shoji",
        "--incident",
        "900",
        "--state",
        st,
        "--by",
        "suzuki",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("approved: isolate d1"),
        "{}",
        stdout(&o)
    );
    let r = run_demo(&p, &state);
    assert_eq!(status(&r), vec![("isolate".into(), "succeeded".into())]);
    let o = mss(&[
        "respond",
        "release",
        "--tenant",
        "kaede-shoji",
        "--device",
        "d1",
        "--reason",
        "調査の結果、誤検知と判断",
        "--state",
        st,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = run_demo(&p, &state);
    assert_eq!(
        status(&r),
        vec![
            ("isolate".into(), "succeeded".into()),
            ("unisolate".into(), "succeeded".into())
        ]
    );
    let sim: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("opsramp-sim.json")).unwrap())
            .unwrap();
    let tk = sim["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ext_ticket_id"] == "mss-kaede-shoji-inc-900")
        .unwrap();
    let notes: Vec<&str> = tk["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("ネットワーク分離: 承認待ち")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("ネットワーク分離の解除: 完了") && n.contains("誤検知と判断")),
        "{notes:?}"
    );
}

/// Defender for Office 365: the approval task is posted (never an approval claimed), watched
/// until the investigation is no longer pending; the opted-in remediation is requested once.
#[test]
fn mdo_air_task_and_email_remediation() {
    let mut sc = scenario();
    let t = &mut sc["tenants"][0];
    t["config"]["response"] =
        json!({"mdo": {"air_approval_task": "auto", "email_remediation": "auto"}});
    let alerts = t["alerts"].as_array_mut().unwrap();
    alerts.retain(|a| a["serviceSource"] != MDO);
    let ev = json!([{"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "networkMessageId": "nm-1",
        "recipientEmailAddress": "h.suzuki@kaede.example", "remediationStatus": "pendingApproval", "subject": "請求書"}]);
    let v1 = alert(
        "fa-air",
        "2026-11-02T00:30:00Z",
        MDO,
        "high",
        Some("950"),
        json!({"title": "Email messages containing malicious URL removed after delivery", "investigationState": "pendingApproval", "evidence": ev}),
    );
    let mut v2 = v1.clone();
    v2["lastUpdateDateTime"] = json!("2026-11-02T02:00:00Z");
    v2["investigationState"] = json!("successfullyRemediated");
    v2["evidence"][0]["remediationStatus"] = json!("remediated");
    alerts.push(v1);
    alerts.push(v2);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    std::fs::write(&p, sc.to_string()).unwrap();
    let state = dir.path().join("st");
    let r = run_demo(&p, &state);
    let got: BTreeSet<(String, String)> = tenant(&r, "kaede-shoji")["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().into(),
                a["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("air_approval_task".to_string(), "succeeded".to_string()),
            ("email_remediation".to_string(), "in_progress".to_string())
        ]
        .into_iter()
        .collect::<BTreeSet<_>>(),
        "{}",
        tenant(&r, "kaede-shoji")["actions"]
    );
    let sim: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("opsramp-sim.json")).unwrap())
            .unwrap();
    let tk = sim["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ext_ticket_id"] == "mss-kaede-shoji-inc-950")
        .unwrap();
    let notes: Vec<&str> = tk["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .collect();
    let task = notes
        .iter()
        .find(|n| n.contains("自動調査（AIR）の修復承認依頼: 承認待ち"))
        .expect("approval task posted");
    assert!(
        task.contains("action-center/pending") && task.contains("代行しません"),
        "{task}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("自動調査（AIR）の修復承認依頼: 完了")),
        "{notes:?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.starts_with("【一次対応】") && n.contains("メールの修復（削除）"))
            .count(),
        1,
        "{notes:?}"
    );
}

#[test]
fn dlq_list_and_redrive() {
    use shared::ports::Queue;
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().to_str().unwrap().to_string();
    let o = mss(&["dlq", "list", "--queue", "classify", "--state", &st]);
    assert_eq!(o.status.code(), Some(2), "no state yet: {}", stderr(&o));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let s = shared::adapters::sqlite::SqliteStore::open(&dir.path().join("mss.sqlite"))
            .unwrap()
            .with_queue_settings(shared::adapters::sqlite::QueueSettings {
                visibility_timeout: std::time::Duration::from_secs(30),
                retry_delay: std::time::Duration::ZERO,
                max_receive: 2,
            });
        let m = shared::messages::AlertRef::new(
            "kaede-shoji",
            "da-dead",
            "2026-11-02T00:00:00Z".parse().unwrap(),
        );
        s.send_batch(shared::messages::QueueName::Classify, &[m])
            .await
            .unwrap();
        for _ in 0..2 {
            for r in s
                .receive(shared::messages::QueueName::Classify, 10)
                .await
                .unwrap()
            {
                s.nack(
                    shared::messages::QueueName::Classify,
                    &r.handle,
                    "OpsRamp HTTP 503",
                )
                .await
                .unwrap();
            }
        }
    });
    let o = mss(&["dlq", "list", "--queue", "classify", "--state", &st]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"], "OpsRamp HTTP 503");
    assert!(lines[0]["body"].as_str().unwrap().contains("da-dead"));
    let o = mss(&["dlq", "redrive", "--queue", "classify", "--state", &st]);
    assert!(stdout(&o).contains("redriven 1"), "{}", stderr(&o));
    let o = mss(&["dlq", "redrive", "--queue", "classify", "--state", &st]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

fn monthly_report_from_demo_state(state: &Path, demo: &Value) {
    let st = state.to_str().unwrap();
    let out = state.join("report-out");
    let comment = state.join("comment.txt");
    std::fs::write(
        &comment,
        "今月は <b>フィッシング</b> が増えました。\n次回の定例会で詳しくご説明します。",
    )
    .unwrap();
    let o = mss(&[
        "report",
        "--state",
        st,
        "--tenant",
        "kaede-shoji",
        "--month",
        "2026-11",
        "--comment",
        comment.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(j["tenant"], "kaede-shoji");
    assert_eq!(j["month"], "2026-11");
    assert_eq!(
        j["due_date"], "2026-12-14",
        "10th business day of December 2026"
    );
    let total = j["alerts"]["total"].as_u64().unwrap();
    let by_product = j["alerts"]["by_product"].as_object().unwrap();
    for p in ["mde", "mdo", "mda", "mdi", "idp"] {
        assert!(by_product[p].is_u64(), "{p} missing: {j}");
    }
    assert_eq!(
        by_product
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        total
    );
    let sev: u64 = j["alerts"]["by_severity"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sev, total);
    let dec = &j["decisions"];
    let decided: u64 = ["incident", "monitored", "out_of_scope"]
        .iter()
        .map(|k| dec[k].as_u64().unwrap())
        .sum();
    assert!(decided <= total && total > 0, "{j}");
    // Every alert of the demo was created in November (JST), one of them claiming another
    // customer's Azure tenant: that one is not this customer's report.
    let fetched = tenant(demo, "kaede-shoji")["alerts"].as_u64().unwrap();
    assert_eq!(total, fetched - 1, "{j}");
    let inc = &j["incidents"];
    assert_eq!(
        inc["opened"].as_u64().unwrap(),
        inc["resolved"].as_u64().unwrap() + inc["open"].as_u64().unwrap()
    );
    assert_eq!(
        inc["opened"].as_u64().unwrap(),
        tenant(demo, "kaede-shoji")["tickets"]
            .as_array()
            .unwrap()
            .len() as u64
    );
    assert!(
        j["actions"]["isolate"]["succeeded"].as_u64().unwrap() >= 1,
        "{j}"
    );

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for h in [
        "総評",
        "検知アラート数",
        "インシデントの発生状況",
        "各種ログのグラフ化",
        "ご提案",
    ] {
        assert!(html.contains(h), "{h} missing");
    }
    assert!(html.matches("<svg").count() >= 7, "charts inline");
    // Offline and inert: no script, no external resource; hostile titles and the comment
    // arrive as text.
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script"), "a script tag in the report");
    assert!(!lower.contains("src=") && !lower.contains("href=") && !lower.contains("@import"));
    assert!(
        html.contains("&lt;script&gt;alert("),
        "the demo's hostile title, escaped"
    );
    assert!(
        html.contains("今月は &lt;b&gt;フィッシング&lt;/b&gt; が増えました。"),
        "comment merged, escaped"
    );

    // Bad input: exit 2 with what is wrong, nothing written.
    let bad_out = state.join("bad-out");
    for (args, want) in [
        (
            vec![
                "report",
                "--state",
                st,
                "--tenant",
                "kaede-shoji",
                "--month",
                "2026-11",
            ],
            "--out",
        ),
        (
            vec![
                "report",
                "--state",
                st,
                "--tenant",
                "kaede-shoji",
                "--month",
                "2026-13",
                "--out",
                bad_out.to_str().unwrap(),
            ],
            "--month",
        ),
        (
            vec![
                "report",
                "--state",
                st,
                "--tenant",
                "nobody",
                "--month",
                "2026-11",
                "--out",
                bad_out.to_str().unwrap(),
            ],
            "nobody",
        ),
        (
            vec![
                "report",
                "--state",
                "/nonexistent",
                "--tenant",
                "kaede-shoji",
                "--month",
                "2026-11",
                "--out",
                bad_out.to_str().unwrap(),
            ],
            "no state",
        ),
    ] {
        let o = mss(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    assert!(!bad_out.exists());
}
