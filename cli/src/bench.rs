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

/// A small deterministic generator for the classification mix (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T: ?Sized>(&mut self, xs: &[&'a T]) -> &'a T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits + 16);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(digits);
        s
    }
    fn guid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

const TENANT_GUID: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const EV: &str = "#microsoft.graph.security.";

/// The members every evidence entry carries (alerts_v2 `alertEvidence`).
fn ev_common(m: &mut Mix, kind: &str, created: &str, roles: &[&str]) -> serde_json::Value {
    json!({
        "@odata.type": format!("{EV}{kind}"),
        "createdDateTime": created,
        "verdict": m.pick(&["unknown", "suspicious", "malicious", "noThreatsFound"]),
        "remediationStatus": m.pick(&["none", "none", "remediated", "prevented", "blocked"]),
        "remediationStatusDetails": null,
        "roles": roles,
        "detailedRoles": [],
        "tags": [],
    })
}

fn with(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn user_account(m: &mut Mix, user: &str, name: &str) -> serde_json::Value {
    json!({"accountName": user, "domainName": "KAEDE", "userSid": format!("S-1-5-21-1004336348-1177238915-682003330-{}", 1000 + m.below(9000)),
           "azureAdUserId": m.guid(), "userPrincipalName": format!("{user}@kaede.example.jp"), "displayName": name})
}

fn file_details(m: &mut Mix, name: &str, path: &str) -> serde_json::Value {
    json!({"sha1": m.hex(40), "sha256": m.hex(64), "fileName": name, "filePath": path,
           "fileSize": 20_000 + m.below(5_000_000), "filePublisher": null, "signer": null, "issuer": null})
}

/// One alert of the classification mix, as Graph `alerts_v2` serves it: every documented
/// top-level member (many null, as in Microsoft's own sample), and the evidence each product
/// really attaches — MDE: device, process, file, registry, user, ip; MDO: mailbox, analysed
/// message, url, user; MDA: cloud application, user, ip; MDI: users, device, ip; IdP: user,
/// ip; and a little out-of-scope noise (XDR, DLP). Product shares, titles and device groups
/// are chosen so that every decision path of the example tenant is taken.
pub fn synthetic_full(m: Month, i: u64) -> (Option<Product>, String) {
    let mut g = Mix(i.wrapping_mul(0x2545f4914f6cdd1d) ^ 0x5bd1e995);
    let secs = (m.end() - m.start()).num_seconds() as u64;
    let created: DateTime<Utc> = m.start() + Duration::seconds(g.below(secs) as i64);
    let c = created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let updated = (created + Duration::minutes(g.below(600) as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let roll = g.below(100);
    let (product, source, prefix) = match roll {
        0..=39 => (Some(Product::Mde), "microsoftDefenderForEndpoint", "da"),
        40..=57 => (Some(Product::Mdo), "microsoftDefenderForOffice365", "fa"),
        58..=67 => (Some(Product::Mda), "microsoftDefenderForCloudApps", "ca"),
        68..=75 => (Some(Product::Mdi), "microsoftDefenderForIdentity", "aa"),
        76..=93 => (Some(Product::Idp), "azureAdIdentityProtection", "ad"),
        94..=97 => (None, "microsoft365Defender", "ra"),
        _ => (None, "dataLossPrevention", "dl"),
    };
    let id = format!(
        "{prefix}{}_{}",
        638_000_000_000_000_000 + i,
        g.below(2_000_000_000)
    );
    let users = [
        ("taro.yamada", "山田 太郎"),
        ("hanako.sato", "佐藤 花子"),
        ("k.tanaka", "田中 健一"),
        ("svc-backup", "Backup Service"),
    ];
    let (user, name) = users[g.below(users.len() as u64) as usize];
    let upn = format!("{user}@kaede.example.jp");
    let host = format!("tky-pc-{:04}", g.below(2000));
    let ip = format!("203.0.113.{}", g.below(250));
    let mut ev = Vec::new();
    let (title, category, detection, description, actions, mitre): (
        &str,
        &str,
        &str,
        String,
        &str,
        Vec<&str>,
    );
    match product {
        Some(Product::Mde) => {
            let t: [(&str, &str); 5] = [
                ("Suspicious PowerShell command line", "Execution"),
                ("Ransomware behavior detected in the file system", "Impact"),
                ("不審なプロセスの実行を検出", "Execution"),
                ("Suspicious execution of hidden file", "DefenseEvasion"),
                ("'Mimikatz' credential theft tool", "CredentialAccess"),
            ];
            (title, category) = t[g.below(5) as usize];
            detection = g.pick(&[
                "antivirus",
                "microsoftDefenderForEndpoint",
                "automatedInvestigation",
            ]);
            description = format!("A process on {host} ran an encoded PowerShell command that downloads and runs a payload. \
                この操作は攻撃者による初期アクセス後の実行段階で一般的に見られます。Attackers often use this technique to evade defenses.");
            actions = "Collect artifacts and determine scope\n\tReview the machine timeline for suspicious activities that may have occurred before and after the time of the alert.\n\tSubmit relevant files for deep analysis.\n\nInitiate containment & mitigation\n\tContact the user to verify intent and initiate local remediation actions as needed.\n\tUpdate AV signatures and run a full scan.";
            mitre = vec!["T1059.001", "T1105", "T1027"];
            let group = g.pick(&[
                "東京本社PC",
                "東京本社PC",
                "Servers",
                "大阪支社PC",
                "UnassignedGroup",
            ]);
            let device_id = g.hex(40);
            ev.push(with(ev_common(&mut g, "deviceEvidence", &c, &["compromised"]), json!({
                "firstSeenDateTime": c, "mdeDeviceId": device_id, "azureAdDeviceId": g.guid(),
                "deviceDnsName": format!("{host}.kaede.example.jp"), "osPlatform": "Windows11", "osBuild": 22631,
                "version": "23H2", "healthStatus": "active", "riskScore": g.pick(&["low", "medium", "high"]),
                "rbacGroupId": 70 + g.below(10), "rbacGroupName": group, "onboardingStatus": "onboarded",
                "defenderAvStatus": "updated", "ipInterfaces": [ip, "fe80::1c2d:3e4f:5a6b:7c8d"],
                "loggedOnUsers": [{"accountName": user, "domainName": "KAEDE"}], "vmMetadata": null})));
            for k in 0..1 + g.below(2) {
                let ua = user_account(&mut g, user, name);
                let image = file_details(
                    &mut g,
                    "powershell.exe",
                    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0",
                );
                let parent = file_details(&mut g, "cmd.exe", "C:\\Windows\\System32");
                ev.push(with(ev_common(&mut g, "processEvidence", &c, &[]), json!({
                    "processId": 4000 + k, "parentProcessId": 3000 + k,
                    "processCommandLine": format!("powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand {} \"C:\\Users\\{user}\\AppData\\Local\\Temp\\a{k}.ps1\"", g.hex(48)),
                    "processCreationDateTime": c, "parentProcessCreationDateTime": c, "detectionStatus": "detected",
                    "mdeDeviceId": device_id, "imageFile": image, "parentProcessImageFile": parent, "userAccount": ua})));
            }
            for _ in 0..g.below(2) {
                let fd = file_details(
                    &mut g,
                    "invoice_1102.exe",
                    &format!("C:\\Users\\{user}\\Downloads"),
                );
                ev.push(with(
                    ev_common(&mut g, "fileEvidence", &c, &[]),
                    json!({
                    "detectionStatus": "detected", "mdeDeviceId": device_id, "fileDetails": fd}),
                ));
            }
            if g.chance(30) {
                ev.push(with(ev_common(&mut g, "registryKeyEvidence", &c, &[]), json!({
                    "registryKey": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "registryHive": "HKEY_LOCAL_MACHINE"})));
            }
            let ua = user_account(&mut g, user, name);
            ev.push(with(
                ev_common(&mut g, "userEvidence", &c, &[]),
                json!({"userAccount": ua}),
            ));
            if g.chance(50) {
                ev.push(with(
                    ev_common(&mut g, "ipEvidence", &c, &[]),
                    json!({"ipAddress": "198.51.100.23", "countryLetterCode": "NL"}),
                ));
            }
        }
        Some(Product::Mdo) => {
            title = g.pick(&[
                "Email messages containing malicious URL removed after delivery",
                "Email messages containing malicious URL removed after delivery",
                "User clicked a malicious URL",
                "Malware was detected in an email attachment",
                "Email reported by user as malware or phish",
            ]);
            category = "ThreatManagement";
            detection = "microsoftDefenderForOffice365";
            description = "Emails containing a malicious URL were removed from mailboxes after delivery (zero-hour auto purge). \
                配信後に悪意のある URL を含むメールが削除されました。".to_string();
            actions =
                "Review the messages in Explorer and confirm the recipients did not open the URL.";
            mitre = vec!["T1566.002"];
            let ua = user_account(&mut g, user, name);
            ev.push(with(
                ev_common(&mut g, "mailboxEvidence", &c, &["recipient"]),
                json!({
                "displayName": name, "primaryAddress": upn, "upn": upn, "userAccount": ua}),
            ));
            let subject = g.pick(&[
                "【重要】アカウントの確認",
                "請求書送付のお知らせ",
                "Re: お見積りの件",
                "Your mailbox is almost full",
            ]);
            let (nm, im) = (g.guid(), format!("<{}@examp1e-billing.test>", g.hex(24)));
            ev.push(with(ev_common(&mut g, "analyzedMessageEvidence", &c, &[]), json!({
                "networkMessageId": nm, "internetMessageId": im, "subject": subject,
                "p1Sender": {"emailAddress": "no-reply@examp1e-billing.test", "displayName": "Billing", "domainName": "examp1e-billing.test"},
                "p2Sender": {"emailAddress": "no-reply@examp1e-billing.test", "displayName": "Billing", "domainName": "examp1e-billing.test"},
                "recipientEmailAddress": upn, "senderIp": "192.0.2.45", "receivedDateTime": c,
                "antiSpamDirection": "Inbound", "deliveryAction": "delivered", "deliveryLocation": "inbox/folder",
                "language": "ja", "threatDetectionMethods": ["urlDetonationReputation"], "threats": ["Phish"],
                "urls": ["http://login-examp1e.test/verify?u=1"], "urlCount": 1, "attachmentsCount": 0})));
            ev.push(with(
                ev_common(&mut g, "urlEvidence", &c, &[]),
                json!({"url": "http://login-examp1e.test/verify?u=1"}),
            ));
            if g.chance(50) {
                let ua = user_account(&mut g, user, name);
                ev.push(with(
                    ev_common(&mut g, "userEvidence", &c, &[]),
                    json!({"userAccount": ua}),
                ));
            }
        }
        Some(Product::Mda) => {
            title = g.pick(&[
                "Mass download by a single user",
                "Impossible travel activity",
                "Activity from infrequent country",
                "Suspicious inbox manipulation rule",
            ]);
            category = "InitialAccess";
            detection = "microsoftDefenderForCloudApps";
            description = format!("The user {upn} downloaded an unusual number of files in a short time. 短時間に大量のファイルがダウンロードされました。");
            actions = "Contact the user and confirm the activity; if not legitimate, suspend the user and revoke sessions.";
            mitre = vec!["T1530"];
            let app = g.pick(&[
                "Office 365",
                "Office 365",
                "Microsoft Azure",
                "Box",
                "Dropbox",
            ]);
            ev.push(with(ev_common(&mut g, "cloudApplicationEvidence", &c, &[]), json!({
                "appId": 11161 + g.below(50), "displayName": app, "instanceId": 0, "instanceName": app, "saasAppId": 11161})));
            let ua = user_account(&mut g, user, name);
            ev.push(with(
                ev_common(&mut g, "userEvidence", &c, &["compromised"]),
                json!({"userAccount": ua}),
            ));
            for k in 0..1 + g.below(3) {
                ev.push(with(ev_common(&mut g, "ipEvidence", &c, &[]), json!({
                    "ipAddress": format!("198.51.100.{}", 10 + k), "countryLetterCode": g.pick(&["JP", "US", "NL", "VN"]),
                    "location": {"city": "Tokyo", "countryName": "Japan", "latitude": 35.69, "longitude": 139.69}})));
            }
        }
        Some(Product::Mdi) => {
            title = g.pick(&[
                "Suspected brute-force attack (Kerberos, NTLM)",
                "Account enumeration reconnaissance",
                "偵察行為 (LDAP)",
            ]);
            category = "CredentialAccess";
            detection = "microsoftDefenderForIdentity";
            description = format!(
                "An actor on {host} made many authentication attempts against domain accounts."
            );
            actions =
                "Investigate the source computer and reset the passwords of the accounts involved.";
            mitre = vec!["T1110", "T1087.002"];
            for _ in 0..1 + g.below(2) {
                let ua = user_account(&mut g, user, name);
                ev.push(with(
                    ev_common(&mut g, "userEvidence", &c, &["attacked"]),
                    json!({"userAccount": ua}),
                ));
            }
            ev.push(with(ev_common(&mut g, "deviceEvidence", &c, &["attacker"]), json!({
                "mdeDeviceId": null, "azureAdDeviceId": null, "deviceDnsName": format!("{host}.kaede.example.jp"),
                "osPlatform": null, "rbacGroupId": null, "rbacGroupName": null, "ipInterfaces": [ip]})));
            ev.push(with(
                ev_common(&mut g, "ipEvidence", &c, &[]),
                json!({"ipAddress": ip, "countryLetterCode": null}),
            ));
        }
        Some(Product::Idp) | Some(Product::Sentinel) => {
            title = g.pick(&[
                "Anonymous IP address",
                "Atypical travel",
                "Unfamiliar sign-in properties",
                "Leaked credentials",
            ]);
            category = "InitialAccess";
            detection = "azureAdIdentityProtection";
            description =
                "Sign-in from an anonymous IP address (e.g. Tor browser, anonymizer VPNs)."
                    .to_string();
            actions = "Confirm the sign-in with the user; require a password change if it was not theirs.";
            mitre = vec![];
            let ua = user_account(&mut g, user, name);
            ev.push(with(
                ev_common(&mut g, "userEvidence", &c, &["compromised"]),
                json!({"userAccount": ua}),
            ));
            ev.push(with(
                ev_common(&mut g, "ipEvidence", &c, &[]),
                json!({"ipAddress": "185.220.101.7", "countryLetterCode": "DE"}),
            ));
        }
        None => {
            title = g.pick(&[
                "Multi-stage incident involving Execution",
                "DLP policy match for document containing 個人番号",
            ]);
            category = "Exfiltration";
            detection = "microsoft365Defender";
            description = "Correlated activity across products.".to_string();
            actions = "Review the incident in the Defender portal.";
            mitre = vec!["T1567"];
            let ua = user_account(&mut g, user, name);
            ev.push(with(
                ev_common(&mut g, "userEvidence", &c, &[]),
                json!({"userAccount": ua}),
            ));
        }
    }
    let incident = 28_000 + i / 3;
    let resolved = g.chance(20);
    let v = json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id, "providerAlertId": id, "incidentId": incident.to_string(),
        "status": if resolved { "resolved" } else { g.pick(&["new", "new", "inProgress"]) },
        "severity": g.pick(&["high", "medium", "medium", "low", "low", "informational"]),
        "classification": if resolved { json!("truePositive") } else { json!(null) },
        "determination": if resolved { json!("malware") } else { json!(null) },
        "serviceSource": source, "detectionSource": detection, "detectorId": g.guid(),
        "tenantId": TENANT_GUID, "title": title, "description": description,
        "recommendedActions": actions, "category": category, "assignedTo": null,
        "alertWebUrl": format!("https://security.microsoft.com/alerts/{id}?tid={TENANT_GUID}"),
        "incidentWebUrl": format!("https://security.microsoft.com/incidents/{incident}?tid={TENANT_GUID}"),
        "actorDisplayName": null, "threatDisplayName": null, "threatFamilyName": null,
        "mitreTechniques": mitre, "createdDateTime": c, "lastUpdateDateTime": updated,
        "resolvedDateTime": if resolved { json!(updated) } else { json!(null) },
        "firstActivityDateTime": c, "lastActivityDateTime": c,
        "comments": [], "systemTags": [], "evidence": ev,
    });
    (product, v.to_string())
}

/// CPU time the calling thread has run so far (Linux `schedstat`, ns); `None` elsewhere.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// `mss bench classify`: alerts per second on one core, from JSON text to a decision —
/// parse (`Alert::from_json_str`, the one-pass path) and classify against a tenant. Runs
/// `runs` times over the same alerts and reports the median; the same for the `Value` path
/// (`serde_json::Value` → `Alert::from_value`, what the stores do today), for comparison.
/// Rates are per wall-clock second and, where Linux tells, per CPU second of the measuring
/// thread (`*_per_cpu_s`: what a core does, whatever else the machine is running).
pub fn classify(
    alerts: u64,
    runs: usize,
    tenant: &shared::domain::tenant::Tenant,
) -> anyhow::Result<serde_json::Value> {
    let m = Month::parse("2026-11").map_err(anyhow::Error::msg)?;
    let texts: Vec<String> = (0..alerts).map(|i| synthetic_full(m, i).1).collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut counts = std::collections::BTreeMap::new();
    let mut run_path = |fast: bool, record: bool| -> anyhow::Result<(f64, Option<f64>)> {
        let cpu = thread_cpu_seconds();
        let started = Instant::now();
        let mut incident = 0u64;
        for t in &texts {
            let a = if fast {
                Alert::from_json_str(t)
            } else {
                Alert::from_value(serde_json::from_str(t)?)
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let d = shared::domain::classify::classify(tenant, &a, None);
            if record {
                *counts.entry(d.kind.as_str()).or_insert(0u64) += 1;
            }
            incident += u64::from(d.kind == shared::domain::classify::DecisionKind::Incident);
        }
        std::hint::black_box(incident);
        let wall = alerts as f64 / started.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds()
            .zip(cpu)
            .map(|(b, a)| alerts as f64 / (b - a).max(1e-9));
        Ok((wall, cpu))
    };
    let (mut fast, mut value) = (Vec::new(), Vec::new());
    for run in 0..runs.max(1) {
        fast.push(run_path(true, run == 0)?);
        value.push(run_path(false, false)?);
    }
    let summary = |r: &[(f64, Option<f64>)], cpu: bool| {
        let mut r: Vec<f64> = if cpu {
            r.iter().filter_map(|x| x.1).collect()
        } else {
            r.iter().map(|x| x.0).collect()
        };
        if r.is_empty() {
            return serde_json::Value::Null;
        }
        r.sort_by(|a, b| a.total_cmp(b));
        json!({"median": r[r.len() / 2].round(), "min": r[0].round(), "max": r[r.len() - 1].round()})
    };
    let (fast_cpu, value_cpu) = (summary(&fast, true), summary(&value, true));
    let (fast, value) = (summary(&fast, false), summary(&value, false));
    Ok(json!({
        "bench": "classify",
        "alerts": alerts,
        "runs": runs.max(1),
        "mean_alert_bytes": bytes as u64 / alerts.max(1),
        "alerts_per_s_median": fast["median"],
        "alerts_per_s": fast,
        "alerts_per_cpu_s": fast_cpu,
        "value_path_alerts_per_s": value,
        "value_path_alerts_per_cpu_s": value_cpu,
        "decisions": counts,
        "threads": 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::classify::{classify as decide, DecisionKind};
    use shared::domain::tenant::Tenant;
    use std::collections::{BTreeMap, BTreeSet};

    fn example_tenant() -> Tenant {
        Tenant::from_toml(include_str!("../../infra/tenants/kaede-shoji.example.toml")).unwrap()
    }

    /// The mix `mss bench classify` measures: ~4 KB on average, every product of the
    /// service plus noise, every decision, the evidence types real alerts carry; and every
    /// alert of it takes the one-pass path.
    #[test]
    fn the_classification_mix_is_realistic() {
        let m = Month::parse("2026-11").unwrap();
        let t = example_tenant();
        let n = 3000u64;
        let (mut bytes, mut decisions, mut evidence) = (0, BTreeSet::new(), BTreeSet::new());
        let mut by_product: BTreeMap<Option<Product>, (usize, usize)> = BTreeMap::new();
        for i in 0..n {
            let (p, text) = synthetic_full(m, i);
            bytes += text.len();
            let e = by_product.entry(p).or_default();
            e.0 += 1;
            e.1 += text.len();
            let a = Alert::from_json_str(&text).unwrap();
            assert!(a.raw.text().is_some(), "alert {i} took the Value path");
            decisions.insert(decide(&t, &a, None).kind);
            evidence.extend(a.evidence().map(|e| e.kind().to_string()));
        }
        let mean = bytes / n as usize;
        let sizes: Vec<String> = by_product
            .iter()
            .map(|(p, (k, b))| format!("{p:?}: {k} × {} B", b / k))
            .collect();
        eprintln!("mean {mean} B; {}", sizes.join(", "));
        assert!((3_700..=4_300).contains(&mean), "mean {mean} B");
        assert_eq!(by_product.len(), 6, "{sizes:?}");
        assert_eq!(decisions.len(), 3);
        assert!(evidence.len() >= 10, "{evidence:?}");
        assert!(decisions.contains(&DecisionKind::Incident));
    }

    /// The simulator's alerts (the built-in scenario, malformed ones included) read the same
    /// through `Alert::from_json_str` as through `Alert::from_value`.
    #[test]
    fn the_simulated_alerts_read_the_same_both_ways() {
        let keys = [
            "@odata.type",
            "rbacGroupName",
            "displayName",
            "mdeDeviceId",
            "userAccount",
            "fileDetails",
            "p1Sender",
            "nope",
        ];
        let (mut n, mut one_pass) = (0, 0);
        for seed in [1, 7] {
            for t in crate::scenario::builtin(seed).tenants {
                for v in t.alerts {
                    let text = v.to_string();
                    n += 1;
                    match (Alert::from_json_str(&text), Alert::from_value(v.clone())) {
                        (Ok(f), Ok(s)) => {
                            one_pass += usize::from(f.raw.text().is_some());
                            assert_eq!(f, s);
                            let (fe, se): (Vec<_>, Vec<_>) =
                                (f.evidence().collect(), s.evidence().collect());
                            assert_eq!(fe.len(), se.len());
                            for (a, b) in fe.iter().zip(&se) {
                                assert_eq!(a.kind(), b.kind());
                                let mut outer: Vec<String> =
                                    keys.iter().map(|k| k.to_string()).collect();
                                outer.extend(
                                    b.raw()
                                        .as_object()
                                        .into_iter()
                                        .flatten()
                                        .map(|(k, _)| k.clone()),
                                );
                                for k in &outer {
                                    assert_eq!(a.str(k), b.str(k), "{k} in {text}");
                                    let inner = b.raw().get(k).and_then(|o| o.as_object());
                                    for k2 in inner.into_iter().flatten().map(|(k, _)| k) {
                                        assert_eq!(a.nested_str(k, k2), b.nested_str(k, k2));
                                    }
                                }
                            }
                        }
                        (Err(f), Err(s)) => assert_eq!(f, s),
                        (f, s) => panic!("paths disagree on {text}: {f:?} / {s:?}"),
                    }
                }
            }
        }
        assert!(one_pass * 10 >= n * 9, "{one_pass} of {n} in one pass");
    }
}
