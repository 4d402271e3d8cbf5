//! Scenarios for the demo, tests and load runs: tenants (their agreed criteria) and the
//! alert versions the simulated tenant will reveal over simulated time.

use anyhow::{bail, Context};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use shared::domain::tenant::Tenant;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub tenants: Vec<ScenarioTenant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioTenant {
    pub config: Value,
    pub alerts: Vec<Value>,
    /// Customer inquiries filed in OpsRamp during the scenario (optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inquiries: Vec<ScenarioInquiry>,
    /// MDE machine objects the simulated tenant knows (others are 404).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Value>,
    /// Graph user objects the simulated tenant knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<Value>,
}

/// An inquiry the service desk files as an OpsRamp service request at `received`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInquiry {
    pub subject: String,
    /// `general` or `business-impact`.
    pub kind: String,
    pub received: DateTime<Utc>,
}

impl Scenario {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let s: Scenario = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            anyhow::anyhow!("scenario {}: {}: {}", path.display(), e.path(), e.inner())
        })?;
        Ok(s)
    }

    /// Validates every tenant config; errors say which tenant and which field.
    pub fn tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        if self.end < self.start {
            bail!("scenario: `end` is before `start`");
        }
        if self.end - self.start > Duration::days(62) {
            bail!("scenario: more than 62 days of simulated time; split it");
        }
        let mut out: Vec<Tenant> = Vec::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let tenant = Tenant::from_json_value(&t.config)
                .map_err(|e| anyhow::anyhow!("scenario tenants[{i}].config.{e}"))?;
            if out.iter().any(|o| o.id == tenant.id) {
                bail!(
                    "scenario tenants[{i}].config.id: {:?} appears twice",
                    tenant.id
                );
            }
            if out
                .iter()
                .any(|o| o.azure_tenant_id == tenant.azure_tenant_id)
            {
                bail!("scenario tenants[{i}].config.azure_tenant_id: used by two tenants");
            }
            out.push(tenant);
        }
        Ok(out)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct Gen {
    rng: StdRng,
    seq: u64,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn next_id(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    }
}

struct TenantSpec {
    config: Value,
    azure: &'static str,
    mde_groups: &'static [&'static str],
    mdo_titles: &'static [&'static str],
    mda_apps: &'static [&'static str],
    users: &'static [(&'static str, &'static str)],
    hosts: &'static [&'static str],
    domain: &'static str,
    n_alerts: usize,
}

const MDE_TITLES: &[(&str, &str)] = &[
    ("Suspicious PowerShell command line", "Execution"),
    ("Suspicious execution of hidden file", "DefenseEvasion"),
    ("Ransomware behavior detected in the file system", "Impact"),
    ("'Mimikatz' credential theft tool", "CredentialAccess"),
    ("Suspicious process injection observed", "DefenseEvasion"),
    ("An active 'Emotet' malware was detected", "Malware"),
];
const MDO_EXTRA: &[&str] = &[
    "User restricted from sending email",
    "Messages have been delayed",
];
const MDA_TITLES: &[&str] = &[
    "Impossible travel activity",
    "Mass download by a single user",
    "Activity from infrequent country",
];
const MDI_TITLES: &[&str] = &[
    "Suspected DCSync attack (replication of directory services)",
    "Account enumeration reconnaissance (LDAP)",
    "Suspected Golden Ticket usage (encryption downgrade)",
];
const IDP_TITLES: &[&str] = &[
    "Unfamiliar sign-in properties",
    "Anonymous IP address",
    "Atypical travel",
    "Malicious IP address",
];

fn specs() -> Vec<TenantSpec> {
    vec![
        TenantSpec {
            config: json!({
                "id": "kaede-shoji", "name": "楓商事株式会社",
                "response": {"mde": {"isolate": "auto", "scan": "auto", "protected_device_tags": ["VIP"]},
                             "idp": {"confirm_compromised": "auto", "protected_users": ["k.takahashi@kaede.example"]},
                             "mdo": {"air_approval_task": "auto"}},
                "azure_tenant_id": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                "products": ["mde", "mdo", "mda", "mdi", "idp"],
                "contacts": {"to": ["soc-contact@kaede.example"], "cc": ["it-admin@kaede.example"]},
                "mde": {"device_groups": ["東京本社PC", "大阪支社PC"], "incident_min_severity": "medium"},
                "mdo": {"policies": [
                    {"name": "Email messages containing malicious URL removed after delivery", "category": "threat_management", "level": "incident"},
                    {"name": "A potentially malicious URL click was detected", "category": "threat_management", "level": "incident"},
                    {"name": "Suspicious email sending patterns detected", "category": "threat_management", "level": "monitored"},
                    {"name": "Elevation of Exchange admin privilege", "category": "permissions", "level": "monitored"}]},
                "mda": {"policies": [
                    {"name": "Impossible travel activity", "category": "threat_detection", "level": "incident"},
                    {"name": "Mass download by a single user", "category": "threat_detection", "level": "monitored"},
                    {"name": "Activity from infrequent country", "category": "threat_detection", "level": "monitored"}]},
                "mdi": {},
                "idp": {"incident_min_risk": "high"}
            }),
            azure: "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
            mde_groups: &["東京本社PC", "大阪支社PC", "検証環境"],
            mdo_titles: &[
                "Email messages containing malicious URL removed after delivery",
                "A potentially malicious URL click was detected",
                "Suspicious email sending patterns detected",
                "Elevation of Exchange admin privilege",
            ],
            mda_apps: &["Office 365", "Microsoft Azure", "Salesforce"],
            users: &[
                ("佐藤 太郎", "t.sato"),
                ("鈴木 花子", "h.suzuki"),
                ("高橋 健", "k.takahashi"),
                ("田中 美咲", "m.tanaka"),
            ],
            hosts: &["tky-pc-0042", "tky-pc-0107", "osk-pc-0013", "tky-srv-fs01"],
            domain: "kaede.example",
            n_alerts: 90,
        },
        TenantSpec {
            config: json!({
                "id": "aoba-ginko", "name": "株式会社青葉銀行",
                "response": {"hours": "business_hours", "mde": {"isolate": "approval", "scan": "auto"}},
                "azure_tenant_id": "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
                "products": ["mde", "mdi", "idp"],
                "contacts": {"to": ["security@aoba-bank.example"]},
                "mde": {"device_groups": ["*"], "incident_min_severity": "high"},
                "mdi": {},
                "idp": {"incident_min_risk": "medium"}
            }),
            azure: "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
            mde_groups: &["本店端末", "支店端末", "勘定系連携サーバー"],
            mdo_titles: &[],
            mda_apps: &[],
            users: &[
                ("伊藤 誠", "m.ito"),
                ("渡辺 直子", "n.watanabe"),
                ("山本 大輔", "d.yamamoto"),
            ],
            hosts: &["hq-wks-2201", "br-sendai-07", "core-link-01"],
            domain: "aoba-bank.example",
            n_alerts: 70,
        },
        TenantSpec {
            config: json!({
                "id": "sakura-unyu", "name": "さくら運輸株式会社",
                "azure_tenant_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
                "products": ["mde", "mdo", "mda"],
                "contacts": {"to": ["johosys@sakura-unyu.example"], "cc": ["soumu@sakura-unyu.example"]},
                "mde": {"device_groups": ["本社サーバー"], "incident_min_severity": "low"},
                "mdo": {"policies": [
                    {"name": "Email messages containing malicious URL removed after delivery", "category": "threat_management", "level": "incident"},
                    {"name": "Suspicious email sending patterns detected", "category": "threat_management", "level": "incident"}]},
                "mda": {"apps": ["Office 365"], "policies": [
                    {"name": "Mass download by a single user", "category": "threat_detection", "level": "incident"},
                    {"name": "Activity from infrequent country", "category": "threat_detection", "level": "monitored"}]}
            }),
            azure: "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
            mde_groups: &["本社サーバー", "営業所PC"],
            mdo_titles: &[
                "Email messages containing malicious URL removed after delivery",
                "Suspicious email sending patterns detected",
            ],
            mda_apps: &["Office 365", "Microsoft Azure"],
            users: &[("中村 翔", "s.nakamura"), ("小林 由美", "y.kobayashi")],
            hosts: &["hq-srv-erp01", "eigyo-pc-31", "eigyo-pc-44"],
            domain: "sakura-unyu.example",
            n_alerts: 70,
        },
    ]
}

/// The built-in scenario: three customers, all five products between them, a simulated day
/// of alerts (updates, alerts sharing a Defender incident, out-of-scope noise, a duplicated
/// version, a malformed item and an alert claiming another tenant). Deterministic for a seed.
pub fn builtin(seed: u64) -> Scenario {
    let start: DateTime<Utc> = "2026-11-01T15:00:00Z".parse().expect("fixed time parses"); // 2026-11-02 00:00 JST
    let end = start + Duration::hours(24);
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        seq: 0,
    };
    let mut tenants = Vec::new();
    for spec in specs() {
        let products: Vec<String> = spec.config["products"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut alerts = Vec::new();
        let mut open_incidents: Vec<(String, String)> = Vec::new(); // (product, incidentId)
        for _ in 0..spec.n_alerts {
            let product = g.pick(&products).clone();
            let minute = g.rng.random_range(0..(22 * 60));
            let created =
                start + Duration::minutes(minute) + Duration::seconds(g.rng.random_range(0..60));
            let n = g.next_id();
            let incident_id = match open_incidents.iter().rev().find(|(p, _)| *p == product) {
                Some((_, inc)) if g.chance(0.3) => inc.clone(),
                _ => {
                    let inc = (1000 + n).to_string();
                    open_incidents.push((product.clone(), inc.clone()));
                    inc
                }
            };
            let (user_name, user) = *g.pick(spec.users);
            let upn = format!("{user}@{}", spec.domain);
            let host = *g.pick(spec.hosts);
            let severity = *g.pick(&["informational", "low", "low", "medium", "medium", "high"]);
            let (source, prefix, title, category, evidence): (
                &str,
                &str,
                String,
                &str,
                Vec<Value>,
            ) = match product.as_str() {
                "mde" => {
                    let (t, c) = *g.pick(MDE_TITLES);
                    let group = *g.pick(spec.mde_groups);
                    let dev = json!({"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": device_id(host),
                        "deviceDnsName": format!("{host}.{}", spec.domain), "osPlatform": "Windows11", "osBuild": 22631,
                        "rbacGroupId": 10 + (n % 5), "rbacGroupName": group, "healthStatus": "active", "onboardingStatus": "onboarded",
                        "verdict": "suspicious", "remediationStatus": "none", "roles": [], "loggedOnUsers": [{"accountName": user, "domainName": "CORP"}]});
                    let file = json!({"@odata.type": "#microsoft.graph.security.fileEvidence", "verdict": "malicious", "remediationStatus": "none",
                        "fileDetails": {"fileName": "invoice_1102.exe", "filePath": format!("C:\\Users\\{user}\\Downloads"), "sha256": g.hex(64)}});
                    (
                        "microsoftDefenderForEndpoint",
                        "da",
                        t.to_string(),
                        c,
                        vec![dev, file, user_ev(user_name, user, &upn)],
                    )
                }
                "mdo" => {
                    let t = if g.chance(0.2) {
                        g.pick(MDO_EXTRA).to_string()
                    } else {
                        g.pick(spec.mdo_titles).to_string()
                    };
                    let msg = json!({"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "networkMessageId": format!("{}-{}", g.hex(8), g.hex(12)),
                        "subject": *g.pick(&["【重要】アカウントの確認", "請求書送付のお知らせ", "Re: お見積りの件", "パスワードの有効期限"]),
                        "recipientEmailAddress": upn, "p1Sender": {"emailAddress": "no-reply@examp1e-billing.test"}, "deliveryAction": "delivered",
                        "deliveryLocation": "inbox", "urlCount": 1, "verdict": "malicious", "remediationStatus": "none"});
                    let url = json!({"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "http://login-examp1e.test/verify"});
                    (
                        "microsoftDefenderForOffice365",
                        "fa",
                        t,
                        "InitialAccess",
                        vec![msg, url, mailbox_ev(user_name, &upn)],
                    )
                }
                "mda" => {
                    let t = g.pick(MDA_TITLES).to_string();
                    let app = *g.pick(spec.mda_apps);
                    let ev = json!({"@odata.type": "#microsoft.graph.security.cloudApplicationEvidence", "displayName": app, "appId": 11161 + (n % 3)});
                    let ip = json!({"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": format!("203.0.113.{}", n % 250), "countryLetterCode": *g.pick(&["JP", "US", "NL", "VN"])});
                    (
                        "microsoftDefenderForCloudApps",
                        "ca",
                        t,
                        "InitialAccess",
                        vec![ev, ip, user_ev(user_name, user, &upn)],
                    )
                }
                "mdi" => {
                    let t = g.pick(MDI_TITLES).to_string();
                    (
                        "microsoftDefenderForIdentity",
                        "aa",
                        t,
                        "CredentialAccess",
                        vec![user_ev(user_name, user, &upn)],
                    )
                }
                _ => {
                    let t = g.pick(IDP_TITLES).to_string();
                    let ip = json!({"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": format!("198.51.100.{}", n % 250), "countryLetterCode": *g.pick(&["JP", "US", "RU", "SG"])});
                    (
                        "azureAdIdentityProtection",
                        "ad",
                        t,
                        "InitialAccess",
                        vec![user_ev(user_name, user, &upn), ip],
                    )
                }
            };
            let id = format!(
                "{prefix}{:018}_{}",
                638_000_000_000_000_000u64 + n * 7919,
                n
            );
            let first_update = created + Duration::seconds(g.rng.random_range(30..240));
            let base = json!({
                "@odata.type": "#microsoft.graph.security.alert",
                "id": id, "providerAlertId": id.trim_start_matches(prefix), "incidentId": incident_id,
                "status": "new", "severity": severity, "classification": null, "determination": null,
                "serviceSource": source, "detectionSource": source, "detectorId": format!("{}-{}", g.hex(8), g.hex(4)),
                "tenantId": spec.azure, "title": title, "category": category,
                "description": format!("{title} が検出されました。"),
                "recommendedActions": "1. 影響を受けたユーザーとデバイスを確認する\n2. 不審なアクティビティのタイムラインを確認する",
                "alertWebUrl": format!("https://security.microsoft.com/alerts/{id}?tid={}", spec.azure),
                "incidentWebUrl": format!("https://security.microsoft.com/incidents/{incident_id}?tid={}", spec.azure),
                "mitreTechniques": [], "comments": [], "systemTags": [],
                "createdDateTime": ts(created), "lastUpdateDateTime": ts(first_update),
                "firstActivityDateTime": ts(created - Duration::minutes(3)), "lastActivityDateTime": ts(created),
                "evidence": evidence,
            });
            let mut base = base;
            // Some MDO investigations wait for approval in the portal (AIR).
            let air = product == "mdo" && g.chance(0.3);
            if air {
                base["investigationState"] = json!("pendingApproval");
            }
            alerts.push(base.clone());
            if g.chance(0.04) {
                alerts.push(base.clone()); // the very same version twice: must be handled once
            }
            let mut last = base;
            let mut t = first_update;
            if g.chance(0.35) {
                t += Duration::minutes(g.rng.random_range(5..180));
                let mut v = last.clone();
                v["status"] = json!("inProgress");
                if air {
                    v["investigationState"] = json!("successfullyRemediated");
                }
                if g.chance(0.4) {
                    v["severity"] = json!("high");
                }
                if g.chance(0.3) {
                    if let Some(ev) = v["evidence"].as_array_mut() {
                        ev.push(json!({"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": format!("192.0.2.{}", n % 250), "countryLetterCode": "JP"}));
                    }
                }
                v["lastUpdateDateTime"] = json!(ts(t));
                alerts.push(v.clone());
                last = v;
            }
            if g.chance(0.2) {
                t += Duration::minutes(g.rng.random_range(10..240));
                let mut v = last.clone();
                v["status"] = json!("resolved");
                v["classification"] = json!(*g.pick(&[
                    "truePositive",
                    "falsePositive",
                    "informationalExpectedActivity"
                ]));
                v["resolvedDateTime"] = json!(ts(t));
                v["lastUpdateDateTime"] = json!(ts(t));
                alerts.push(v);
            }
        }
        // An item that cannot be read as an alert (title of the wrong type): kept, not fatal.
        let bad_at = start + Duration::hours(3);
        alerts.push(json!({"id": format!("da{}_malformed", g.hex(10)), "lastUpdateDateTime": ts(bad_at),
            "serviceSource": "microsoftDefenderForEndpoint", "title": 404, "severity": "high", "tenantId": spec.azure}));
        if spec.config["id"] == "kaede-shoji" {
            // An alert that claims to be another customer's: never ticketed, logged as an error.
            alerts.push(json!({"id": "aa0000000000000000_misrouted", "lastUpdateDateTime": ts(start + Duration::hours(5)),
                "serviceSource": "microsoftDefenderForIdentity", "severity": "high", "status": "new",
                "title": "Suspected DCSync attack (replication of directory services)",
                "tenantId": "99999999-9999-4999-8999-999999999999"}));
        }
        // A hostile title must arrive in the ticket as plain text and nowhere else.
        if products.iter().any(|p| p == "mdi") {
            let at = start + Duration::hours(7);
            alerts.push(json!({"id": format!("aa{}_hostile", g.hex(10)), "lastUpdateDateTime": ts(at), "createdDateTime": ts(at),
                "serviceSource": "microsoftDefenderForIdentity", "severity": "medium", "status": "new", "tenantId": spec.azure,
                "incidentId": format!("{}", 9000 + g.next_id()),
                "title": "Honeytoken activity <script>alert('x')</script> \"; drop table --\u{202e}",
                "evidence": [user_ev("攻撃者'\"<b>", "evil", "evil@example.test")]}));
        }
        let at = |h: i64, m: i64| start + Duration::hours(h) + Duration::minutes(m);
        let inquiries = match spec.config["id"].as_str() {
            Some("kaede-shoji") => vec![
                ScenarioInquiry {
                    subject: "【至急】全社でメール送信ができません".into(),
                    kind: "business-impact".into(),
                    received: at(10, 0),
                },
                ScenarioInquiry {
                    subject: "月次レポートのグラフの見方について".into(),
                    kind: "general".into(),
                    received: at(14, 20),
                },
            ],
            Some("aoba-ginko") => vec![ScenarioInquiry {
                subject: "隔離された端末の解除依頼（支店端末）".into(),
                kind: "business-impact".into(),
                received: at(16, 50),
            }],
            _ => vec![ScenarioInquiry {
                subject: "監視対象デバイスグループの追加方法".into(),
                kind: "general".into(),
                received: at(9, 30),
            }],
        };
        let devices = spec
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({"id": device_id(h), "computerDnsName": format!("{h}.{}", spec.domain), "osPlatform": "Windows11",
                    "version": "23H2", "osBuild": 22631, "healthStatus": "Active",
                    "rbacGroupName": spec.mde_groups.first().copied().unwrap_or("既定"), "rbacGroupId": "10",
                    "machineTags": if i == 1 { json!(["VIP"]) } else { json!([]) },
                    "lastIpAddress": format!("10.0.0.{}", 10 + i)})
            })
            .collect();
        let users = spec
            .users
            .iter()
            .map(|(name, account)| {
                let ev = user_ev(name, account, &format!("{account}@{}", spec.domain));
                json!({"id": ev["userAccount"]["azureAdUserId"], "displayName": name,
                    "mail": format!("{account}@{}", spec.domain), "userPrincipalName": format!("{account}@{}", spec.domain)})
            })
            .collect();
        tenants.push(ScenarioTenant {
            config: spec.config,
            alerts,
            inquiries,
            devices,
            users,
        });
    }
    Scenario {
        start,
        end,
        tenants,
    }
}

/// A stable MDE device id (40 hex digits) per host name, so evidence and devices agree.
fn device_id(host: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut out = String::new();
    for round in 0..3u64 {
        for b in host.bytes().chain(round.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

fn user_ev(name: &str, account: &str, upn: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.security.userEvidence", "roles": [], "verdict": "unknown", "remediationStatus": "none",
        "userAccount": {"accountName": account, "displayName": name, "userPrincipalName": upn,
            "azureAdUserId": format!("{:08x}-0000-4000-8000-{:012x}", account.len() * 7919, account.bytes().map(u64::from).sum::<u64>())}})
}

fn mailbox_ev(name: &str, upn: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.security.mailboxEvidence", "displayName": name, "primaryAddress": upn, "upn": upn})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_meets_the_demo_brief() {
        let s = builtin(7);
        let tenants = s.tenants().unwrap();
        assert!(tenants.len() >= 3);
        let mut products = std::collections::BTreeSet::new();
        for t in &tenants {
            products.extend(t.products.iter().copied());
        }
        assert!(products.len() >= 5, "{products:?}");
        let ids: std::collections::BTreeSet<String> = s
            .tenants
            .iter()
            .flat_map(|t| {
                t.alerts
                    .iter()
                    .filter_map(|a| a["id"].as_str().map(str::to_string))
            })
            .collect();
        assert!(ids.len() >= 200, "{}", ids.len());
        let versions: usize = s.tenants.iter().map(|t| t.alerts.len()).sum();
        assert!(versions > ids.len(), "there are updates");
        assert_eq!(
            serde_json::to_string(&builtin(7)).unwrap(),
            serde_json::to_string(&s).unwrap()
        );
    }
}
