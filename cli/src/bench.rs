//! `mss bench monthly`: how fast and in how much memory one tenant-month is aggregated.
//! Numbers go to BENCHMARKS.md, not into timed tests.
//!
//! Two measurements:
//! - `stream` (default): N synthetic alerts as JSON text, each parsed exactly as the store's
//!   scan parses a stored body (`Alert::from_value`), reduced to facts and folded into the
//!   aggregator — the report's whole CPU path without disk.
//! - `--store DIR`: the same alerts written to an embedded store first (not timed), then the
//!   real `steps::monthly::build` over it — disk, SQL and all.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use shared::domain::alert::{Alert, Product};
use shared::domain::monthly::{Aggregator, AlertFacts, FinishInput, Month};

const TITLES: [&str; 12] = [
    "Suspicious PowerShell command line",
    "Ransomware behavior detected in the file system",
    "Email messages containing malicious URL removed after delivery",
    "User clicked a malicious URL",
    "Anonymous IP address",
    "Atypical travel",
    "Suspected brute-force attack (Kerberos, NTLM)",
    "Mass download by a single user",
    "不審なプロセスの実行を検出",
    "Suspicious sign-in from an unfamiliar location",
    "Possible lateral movement",
    "Malware was detected in an email attachment",
];

/// A deterministic pseudo-random alert of month `m`, number `i`.
pub fn synthetic(m: Month, i: u64) -> (Product, String) {
    let mut x = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x % n
    };
    let (product, src) = match next(5) {
        0 => (Product::Mde, "microsoftDefenderForEndpoint"),
        1 => (Product::Mdo, "microsoftDefenderForOffice365"),
        2 => (Product::Mda, "microsoftDefenderForCloudApps"),
        3 => (Product::Mdi, "microsoftDefenderForIdentity"),
        _ => (Product::Idp, "azureAdIdentityProtection"),
    };
    let secs = (m.end() - m.start()).num_seconds() as u64;
    let created: DateTime<Utc> = m.start() + Duration::seconds(next(secs) as i64);
    let sev = ["high", "medium", "low", "informational"][next(4) as usize];
    let title = TITLES[next(TITLES.len() as u64) as usize];
    let dev = format!("tky-pc-{:04}", next(2000));
    let user = format!("user{:04}@kaede.example.jp", next(1000));
    let category = ["Execution", "CredentialAccess", "InitialAccess", "Malware"][next(4) as usize];
    let status = if next(3) == 0 { "resolved" } else { "new" };
    let device_id = format!("{:040x}", next(u64::MAX));
    let user_id = format!("{:032x}", next(u64::MAX));
    let country = if next(20) == 0 { "NL" } else { "JP" };
    let v = json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": format!("da{i:012}"),
        "incidentId": (i / 3).to_string(),
        "status": status,
        "severity": sev,
        "serviceSource": src,
        "detectionSource": "microsoftDefenderForEndpoint",
        "tenantId": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
        "title": title,
        "category": category,
        "createdDateTime": created.to_rfc3339(),
        "lastUpdateDateTime": (created + Duration::minutes(5)).to_rfc3339(),
        "alertWebUrl": "https://security.microsoft.com/alerts/da",
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": dev,
             "mdeDeviceId": device_id, "rbacGroupName": "東京本社PC", "osPlatform": "Windows11"},
            {"@odata.type": "#microsoft.graph.security.userEvidence",
             "userAccount": {"userPrincipalName": user, "accountName": "user", "azureAdUserId": user_id}},
            {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.7",
             "countryLetterCode": country}
        ]
    });
    (product, v.to_string())
}

/// Peak resident memory of this process (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub fn stream(alerts: u64, month: Month) -> anyhow::Result<serde_json::Value> {
    // The synthetic JSON's own making is timed apart and left out of the result: the store
    // hands the aggregation text it already has.
    let gen = Instant::now();
    let mut sink = 0usize;
    for i in 0..alerts {
        sink ^= synthetic(month, i).1.len();
    }
    let gen_s = gen.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut agg = Aggregator::new(month, Default::default(), Default::default());
    let mut bytes = 0u64;
    for i in 0..alerts {
        let (p, text) = synthetic(month, i);
        bytes += text.len() as u64;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let a = Alert::from_value(v).map_err(|e| anyhow::anyhow!("{e}"))?;
        agg.add(AlertFacts::of(p, &a));
        if i > 0 && i % 250_000 == 0 {
            eprintln!("  {i} alerts, {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    let n = agg.finish(FinishInput {
        tenant: "bench".into(),
        tenant_name: "ベンチマーク".into(),
        due_date: String::new(),
        incidents: vec![],
        actions: vec![],
        investigation_reports: 0,
        previous: None,
        generated_at: Utc::now(),
    });
    let secs = started.elapsed().as_secs_f64() - gen_s;
    Ok(json!({
        "mode": "stream",
        "generation_seconds_excluded": gen_s,
        "checksum": sink,
        "alerts": alerts,
        "counted": n.alerts.total,
        "json_mb": bytes as f64 / 1e6,
        "seconds": secs,
        "alerts_per_second": alerts as f64 / secs,
        "peak_rss_mb": peak_rss_mb(),
    }))
}

pub async fn store(
    alerts: u64,
    month: Month,
    dir: &std::path::Path,
    reuse: bool,
) -> anyhow::Result<serde_json::Value> {
    use shared::ports::Store;
    std::fs::create_dir_all(dir)?;
    let db = dir.join("mss.sqlite");
    let reuse = reuse && db.exists();
    if !reuse {
        let _ = std::fs::remove_file(&db);
    }
    let s = shared::adapters::sqlite::SqliteStore::open(&db)?;
    let t = shared::domain::tenant::Tenant::from_json_value(
        &json!({"id": "bench", "name": "ベンチマーク",
        "azure_tenant_id": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "products": ["mde"],
        "mde": {"device_groups": ["*"], "incident_min_severity": "medium"}}),
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    s.put_tenant(&t).await?;
    let load = Instant::now();
    for i in 0..alerts {
        let (p, text) = synthetic(month, i);
        let a =
            Alert::from_value(serde_json::from_str(&text)?).map_err(|e| anyhow::anyhow!("{e}"))?;
        s.put_alert_version("bench", p, &a).await?;
        if i > 0 && i % 100_000 == 0 {
            eprintln!("  loaded {i}, {:.0} s", load.elapsed().as_secs_f64());
        }
    }
    let load_s = load.elapsed().as_secs_f64();
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let r = shared::steps::monthly::build(
        &s,
        Utc::now(),
        &shared::domain::calendar::Calendar::default(),
        "bench",
        month,
        None,
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "mode": "store",
        "alerts": alerts,
        "counted": r.numbers.alerts.total,
        "load_seconds": load_s,
        "seconds": secs,
        "alerts_per_second": alerts as f64 / secs,
        "html_kb": r.html.len() as f64 / 1e3,
        "peak_rss_mb_before_build": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// A realistic alert for the classification benchmark: the synthetic alert plus what real
/// Defender alerts carry around it (description, recommended actions, MITRE techniques,
/// process and file evidence with command lines), ~4 KB of JSON on average.
pub fn synthetic_full(m: Month, i: u64) -> (Product, String) {
    let (p, text) = synthetic(m, i);
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("synthetic JSON");
    let pad = (i % 7) as usize; // 0..6 extra evidence entries: sizes vary around the mean
    v["description"] = json!(format!(
        "A process on device {} ran an encoded PowerShell command that downloads and runs a payload. \
         この操作は攻撃者による初期アクセス後の実行段階で一般的に見られます。Review the process tree and the \
         network connections of the device around the alert time. {}",
        i,
        "詳細はアラートのタイムラインを確認してください。".repeat(1 + pad % 3)
    ));
    v["recommendedActions"] = json!("1. Isolate the device.\n2. Collect an investigation package.\n3. Review the user's recent sign-ins and reset the password if needed.\n4. Submit the file for deep analysis.");
    v["mitreTechniques"] = json!(["T1059.001", "T1105", "T1027", "T1071.001"]);
    v["alertPolicyId"] = json!(format!("{:032x}", i.wrapping_mul(2654435761)));
    v["detectorId"] = json!(format!("{:08x}-aaaa-bbbb-cccc-{:012x}", i % 97, i));
    let ev = v["evidence"].as_array_mut().expect("evidence array");
    for k in 0..(2 + pad / 2) {
        ev.push(json!({
            "@odata.type": "#microsoft.graph.security.processEvidence",
            "createdDateTime": "2026-11-02T03:12:00Z", "verdict": "suspicious", "remediationStatus": "none",
            "roles": [], "tags": [], "processId": 4000 + k, "parentProcessId": 3000 + k,
            "processCommandLine": format!("powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand {}", "SQBFAFgAKABOAGUAdwAtAE8AYgBqAGUAYwB0ACkA".repeat(2)),
            "imageFile": {"fileName": "powershell.exe", "filePath": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
                          "sha1": format!("{:040x}", i + k as u64), "sha256": format!("{:064x}", i * 31 + k as u64), "fileSize": 450560},
            "userAccount": {"accountName": "user", "domainName": "KAEDE", "userSid": "S-1-5-21-1004336348-1177238915-682003330-1001"}
        }));
    }
    (p, v.to_string())
}

/// `mss bench classify`: alerts per second on one core, from JSON text to a decision —
/// parse (`serde_json` → `Alert::from_value`) and classify against a tenant that subscribes
/// every product. Runs `runs` times over the same alerts; reports the median.
pub fn classify(
    alerts: u64,
    runs: usize,
    tenant: &shared::domain::tenant::Tenant,
) -> anyhow::Result<serde_json::Value> {
    let m = Month::parse("2026-11").map_err(anyhow::Error::msg)?;
    let texts: Vec<String> = (0..alerts).map(|i| synthetic_full(m, i).1).collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut rates = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for run in 0..runs.max(1) {
        let started = Instant::now();
        let mut incident = 0u64;
        for t in &texts {
            let v: serde_json::Value = serde_json::from_str(t)?;
            let a = Alert::from_value(v).map_err(|e| anyhow::anyhow!("{e}"))?;
            let d = shared::domain::classify::classify(tenant, &a, None);
            if run == 0 {
                *counts.entry(d.kind.as_str()).or_insert(0u64) += 1;
            }
            incident += u64::from(d.kind == shared::domain::classify::DecisionKind::Incident);
        }
        std::hint::black_box(incident);
        rates.push(alerts as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "bench": "classify",
        "alerts": alerts,
        "runs": rates.len(),
        "mean_alert_bytes": bytes as u64 / alerts.max(1),
        "alerts_per_s_median": rates[rates.len() / 2].round(),
        "alerts_per_s_min": rates[0].round(),
        "alerts_per_s_max": rates[rates.len() - 1].round(),
        "decisions": counts,
        "threads": 1,
    }))
}
