//! The investigation report (seed §5.3.1): what it is about (entities from the alert's
//! evidence), what hunting and the store found, and what to do — as structured data kept with
//! the incident for the monthly report, and as the plain text posted to the ticket.
//!
//! Plain text, not HTML: OpsRamp does not document how (or whether) a response's HTML is
//! rendered in its portal and in the mails it sends, while plain text reads the same
//! everywhere; and with no markup there is nothing for an attacker-chosen alert title to
//! inject. Every alert- or hunting-derived value still passes through `clean_line` (no
//! control characters, no forged line breaks, bounded length) and URLs are defanged.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::alert::{Alert, Product};
use super::incident::{clean_line, defang, effective_severity, jst};

/// What the report is about, from the alert's evidence (no lookups needed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entities {
    pub devices: Vec<DeviceRef>,
    pub users: Vec<UserRef>,
    pub mailboxes: Vec<String>,
    pub messages: Vec<MessageRef>,
    pub ips: Vec<String>,
    pub hashes: Vec<String>,
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub object_id: Option<String>,
    pub upn: Option<String>,
    /// As the evidence named the user (display or account name), before any lookup.
    pub evidence_name: Option<String>,
}

impl UserRef {
    /// What the directory lookup is keyed by: the object id, else the UPN.
    pub fn lookup_key(&self) -> Option<&str> {
        self.object_id.as_deref().or(self.upn.as_deref())
    }
    pub fn label(&self) -> String {
        self.upn
            .clone()
            .or_else(|| self.evidence_name.clone())
            .or_else(|| self.object_id.clone())
            .unwrap_or_else(|| "(不明)".into())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub network_message_id: String,
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Entities {
    pub fn of(alert: &Alert) -> Entities {
        let mut e = Entities::default();
        for ev in alert.evidence() {
            match ev.kind() {
                "deviceEvidence" => {
                    let d = DeviceRef {
                        id: ev.str("mdeDeviceId").map(str::to_string),
                        name: ev
                            .str("deviceDnsName")
                            .or_else(|| ev.str("hostName"))
                            .map(str::to_string),
                    };
                    if d.id.is_some() || d.name.is_some() {
                        push_unique(&mut e.devices, d);
                    }
                }
                "userEvidence" => {
                    let u = UserRef {
                        object_id: ev
                            .nested_str("userAccount", "azureAdUserId")
                            .map(str::to_string),
                        upn: ev.nested_str("userAccount", "userPrincipalName").map(lower),
                        evidence_name: ev
                            .nested_str("userAccount", "displayName")
                            .or_else(|| ev.nested_str("userAccount", "accountName"))
                            .map(str::to_string),
                    };
                    e.add_user(u);
                }
                "mailboxEvidence" => {
                    if let Some(a) = ev.str("primaryAddress").or_else(|| ev.str("upn")) {
                        push_unique(&mut e.mailboxes, lower(a));
                        e.add_user(UserRef {
                            object_id: ev
                                .nested_str("userAccount", "azureAdUserId")
                                .map(str::to_string),
                            upn: Some(lower(ev.str("upn").unwrap_or(a))),
                            evidence_name: ev.str("displayName").map(str::to_string),
                        });
                    }
                }
                "analyzedMessageEvidence" => {
                    if let Some(id) = ev.str("networkMessageId") {
                        push_unique(
                            &mut e.messages,
                            MessageRef {
                                network_message_id: id.to_string(),
                                recipient: ev.str("recipientEmailAddress").map(lower),
                                sender: ev.nested_str("p1Sender", "emailAddress").map(lower),
                                subject: ev.str("subject").map(str::to_string),
                            },
                        );
                    }
                    if let Some(r) = ev.str("recipientEmailAddress") {
                        push_unique(&mut e.mailboxes, lower(r));
                    }
                    if let Some(ip) = ev.str("senderIp") {
                        push_unique(&mut e.ips, ip.to_string());
                    }
                }
                "ipEvidence" => {
                    if let Some(ip) = ev.str("ipAddress") {
                        push_unique(&mut e.ips, ip.to_string());
                    }
                }
                "fileEvidence" => {
                    if let Some(h) = ev
                        .nested_str("fileDetails", "sha256")
                        .or_else(|| ev.nested_str("fileDetails", "sha1"))
                    {
                        push_unique(&mut e.hashes, lower(h));
                    }
                }
                "processEvidence" => {
                    if let Some(h) = ev
                        .nested_str("imageFile", "sha256")
                        .or_else(|| ev.nested_str("imageFile", "sha1"))
                    {
                        push_unique(&mut e.hashes, lower(h));
                    }
                }
                "urlEvidence" => {
                    if let Some(u) = ev.str("url") {
                        push_unique(&mut e.urls, u.to_string());
                    }
                }
                _ => {}
            }
        }
        e
    }

    /// Merges a user seen twice (user and mailbox evidence of one person).
    fn add_user(&mut self, u: UserRef) {
        if u.object_id.is_none() && u.upn.is_none() {
            if u.evidence_name.is_some() && !self.users.contains(&u) {
                self.users.push(u);
            }
            return;
        }
        for x in &mut self.users {
            let same = (u.object_id.is_some() && x.object_id == u.object_id)
                || (u.upn.is_some() && x.upn == u.upn);
            if same {
                x.object_id = x.object_id.take().or(u.object_id);
                x.upn = x.upn.take().or(u.upn);
                x.evidence_name = x.evidence_name.take().or(u.evidence_name);
                return;
            }
        }
        self.users.push(u);
    }

    /// Correlation keys with the label the report shows for each.
    pub fn keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in &self.devices {
            if let Some(id) = &d.id {
                out.push((
                    format!("dev:{}", lower(id)),
                    format!("端末 {}", d.name.as_deref().unwrap_or(id)),
                ));
            }
            if let Some(n) = &d.name {
                out.push((format!("devname:{}", lower(n)), format!("端末 {n}")));
            }
        }
        for u in &self.users {
            if let Some(id) = &u.object_id {
                out.push((
                    format!("user:{}", lower(id)),
                    format!("ユーザー {}", u.label()),
                ));
            }
            if let Some(upn) = &u.upn {
                out.push((format!("upn:{upn}"), format!("ユーザー {upn}")));
            }
        }
        for m in &self.mailboxes {
            out.push((format!("upn:{m}"), format!("メールボックス {m}")));
        }
        for ip in &self.ips {
            out.push((format!("ip:{ip}"), format!("IP アドレス {ip}")));
        }
        for h in &self.hashes {
            out.push((format!("hash:{h}"), format!("ファイル ハッシュ {h}")));
        }
        out
    }
}

/// One section of hunting results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HuntSection {
    pub query_id: String,
    pub title: String,
    /// What it was run for, e.g. "端末 TKY-PC-0123".
    pub subject: String,
    pub outcome: HuntOutcome,
    pub columns: Vec<String>,
    /// At most [`ROWS_KEPT`] rows.
    pub rows: Vec<serde_json::Map<String, Value>>,
    pub total_rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HuntOutcome {
    Ok,
    /// Our own per-tenant budget (minute or hour) is spent.
    SkippedBudget,
    /// The service answered 429.
    SkippedQuota,
    /// More queries than one report may run.
    SkippedCap,
    TimedOut,
    Failed,
}

impl HuntOutcome {
    fn reason_ja(self) -> &'static str {
        match self {
            HuntOutcome::Ok => "",
            HuntOutcome::SkippedBudget => {
                "テナントごとの Advanced Hunting の利用枠（1 分・1 時間あたりの上限）に達したため実行していません"
            }
            HuntOutcome::SkippedQuota => {
                "Microsoft の Advanced Hunting の利用上限（クォータ）に達したため実行できませんでした"
            }
            HuntOutcome::SkippedCap => "1 件の報告で実行するクエリ数の上限に達したため実行していません",
            HuntOutcome::TimedOut => "クエリが制限時間内に完了しませんでした",
            HuntOutcome::Failed => "クエリの実行に失敗しました",
        }
    }
}

pub const ROWS_KEPT: usize = 20;
const ROWS_SHOWN: usize = 5;

/// A user as the report names them: the directory's answer where there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLine {
    pub user: UserRef,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    /// `found`, `not_found`, `failed`, `no_key`
    pub lookup: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedAlert {
    pub alert_id: String,
    pub title: String,
    pub severity: String,
    pub product: Product,
    pub last_update: DateTime<Utc>,
    pub shared: Vec<String>,
}

/// Everything the report says, as stored with the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub tenant: String,
    pub incident_key: String,
    pub alert_id: String,
    pub alert_version: DateTime<Utc>,
    pub product: Product,
    pub generated_at: DateTime<Utc>,
    pub title: String,
    pub severity: String,
    pub category: Option<String>,
    pub entities: Entities,
    pub users: Vec<UserLine>,
    pub sections: Vec<HuntSection>,
    pub related: Vec<RelatedAlert>,
    pub related_more: usize,
    /// Alerts sharing an entity that the agreement only monitors: counted, never named — a
    /// ticket carries incident alerts only.
    #[serde(default)]
    pub related_monitored: usize,
    pub recommendations: Vec<String>,
    pub first_response: Vec<String>,
}

/// Related detections: other stored alerts sharing an entity or the Defender incident,
/// newest first, at most `cap`; also returns how many more there were.
pub fn related(
    me: &Alert,
    candidates: &[(Product, Alert)],
    cap: usize,
) -> (Vec<RelatedAlert>, usize) {
    let mine = Entities::of(me).keys();
    let my_incident = me
        .fields
        .incident_id
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let mut hits = Vec::new();
    for (p, a) in candidates {
        if a.id == me.id {
            continue;
        }
        let theirs: BTreeSet<String> = Entities::of(a).keys().into_iter().map(|(k, _)| k).collect();
        let mut shared: Vec<String> = Vec::new();
        if my_incident.is_some() && a.fields.incident_id.as_deref() == my_incident {
            shared.push("同じインシデント".into());
        }
        for (k, label) in &mine {
            if theirs.contains(k) && !shared.contains(label) {
                shared.push(label.clone());
            }
        }
        if !shared.is_empty() {
            hits.push(RelatedAlert {
                alert_id: a.id.clone(),
                title: a.title().to_string(),
                severity: effective_severity(a).label_ja().to_string(),
                product: *p,
                last_update: a.last_update,
                shared,
            });
        }
    }
    hits.sort_by(|a, b| {
        b.last_update
            .cmp(&a.last_update)
            .then(a.alert_id.cmp(&b.alert_id))
    });
    let more = hits.len().saturating_sub(cap);
    hits.truncate(cap);
    (hits, more)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    products: Vec<Product>,
    categories: Vec<String>,
    #[serde(default)]
    fallback: bool,
    lines: Vec<String>,
}

fn rules() -> &'static [Rule] {
    static RULES: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        toml::from_str::<RuleFile>(include_str!("../../data/recommendations.toml"))
            .expect("data/recommendations.toml parses (checked by a unit test)")
            .rule
    })
}

/// The recommended actions for a product and Graph category, from the rules file.
pub fn recommendations(product: Product, category: Option<&str>) -> Vec<String> {
    let matches = |r: &Rule| {
        (r.products.is_empty() || r.products.contains(&product))
            && (r.categories.is_empty()
                || category.is_some_and(|c| r.categories.iter().any(|x| x.eq_ignore_ascii_case(c))))
    };
    let mut out: Vec<String> = Vec::new();
    for r in rules().iter().filter(|r| !r.fallback && matches(r)) {
        for l in &r.lines {
            push_unique(&mut out, l.clone());
        }
    }
    if out.is_empty() {
        for r in rules().iter().filter(|r| r.fallback && matches(r)) {
            for l in &r.lines {
                push_unique(&mut out, l.clone());
            }
        }
    }
    out
}

fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => "-".to_string(),
        // Hunting answers in UTC with 7 fractional digits; the customer reads JST.
        Value::String(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t
                .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00"))
                .format("%m/%d %H:%M:%S")
                .to_string(),
            Err(_) => s.clone(),
        },
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    clean_line(&s, 80)
}

/// Cells that look like URLs are defanged: the report is mailed, and attacker URLs must not
/// become links.
fn shown_cell(col: &str, v: &Value) -> String {
    let c = cell(v);
    if col.to_ascii_lowercase().contains("url") || c.contains("://") {
        defang(&c)
    } else {
        c
    }
}

impl Report {
    /// The ticket response text. `version` > 1 marks an update of an earlier report.
    pub fn text(&self, version: u32) -> String {
        let mut t = String::new();
        let l = |t: &mut String, s: &str| {
            t.push_str(s);
            t.push('\n');
        };
        if version > 1 {
            l(
                &mut t,
                &format!(
                    "【調査報告（更新 第{version}版）】{}",
                    clean_line(&self.title, 150)
                ),
            );
            l(
                &mut t,
                &format!(
                    "※ 第{}版の報告以降に判明した内容を反映しました。本版が最新です。",
                    version - 1
                ),
            );
        } else {
            l(
                &mut t,
                &format!("【調査報告】{}", clean_line(&self.title, 150)),
            );
        }
        l(
            &mut t,
            &format!(
                "アラート ID: {}（{}）",
                clean_line(&self.alert_id, 100),
                self.product.display_name()
            ),
        );
        l(&mut t, "");

        l(&mut t, "■ ユーザ名");
        if self.users.is_empty() {
            l(&mut t, "  該当するユーザーの情報はありません。");
        }
        for u in &self.users {
            let name = u
                .display_name
                .as_deref()
                .or(u.user.evidence_name.as_deref())
                .map(|n| clean_line(n, 80))
                .unwrap_or_else(|| "(表示名不明)".into());
            let addr = u
                .mail
                .as_deref()
                .or(u.user.upn.as_deref())
                .map(|m| clean_line(m, 120))
                .unwrap_or_else(|| clean_line(&u.user.label(), 120));
            let note = match u.lookup.as_str() {
                "found" => "",
                "not_found" => "（ディレクトリにユーザーが見つかりません。削除済みまたは外部ユーザーの可能性があります）",
                "no_key" => "（アラートの証跡にユーザー ID がないため照会していません）",
                _ => "（ディレクトリの照会に失敗したため、アラートの証跡の情報を表示しています）",
            };
            l(&mut t, &format!("  - {name} <{addr}>{note}"));
        }
        l(&mut t, "");

        l(&mut t, "■ インシデント内容");
        l(&mut t, &format!("  件名: {}", clean_line(&self.title, 200)));
        l(&mut t, &format!("  重大度: {}", self.severity));
        if let Some(c) = &self.category {
            l(&mut t, &format!("  カテゴリ: {}", clean_line(c, 60)));
        }
        l(
            &mut t,
            &format!("  インシデント: {}", clean_line(&self.incident_key, 100)),
        );
        let e = &self.entities;
        for d in &e.devices {
            l(
                &mut t,
                &format!(
                    "  対象端末: {}{}",
                    clean_line(d.name.as_deref().unwrap_or("(名前不明)"), 100),
                    d.id.as_deref()
                        .map(|i| format!("（MDE ID: {}）", clean_line(i, 64)))
                        .unwrap_or_default()
                ),
            );
        }
        for m in &e.mailboxes {
            l(
                &mut t,
                &format!("  対象メールボックス: {}", clean_line(m, 120)),
            );
        }
        for m in &e.messages {
            l(
                &mut t,
                &format!(
                    "  対象メール: 件名「{}」 送信者 {} 宛先 {}（NetworkMessageId: {}）",
                    clean_line(m.subject.as_deref().unwrap_or(""), 100),
                    clean_line(m.sender.as_deref().unwrap_or("不明"), 100),
                    clean_line(m.recipient.as_deref().unwrap_or("不明"), 100),
                    clean_line(&m.network_message_id, 80)
                ),
            );
        }
        if !e.ips.is_empty() {
            l(
                &mut t,
                &format!("  IP アドレス: {}", clean_line(&e.ips.join(", "), 200)),
            );
        }
        if !e.hashes.is_empty() {
            l(
                &mut t,
                &format!(
                    "  ファイル ハッシュ: {}",
                    clean_line(&e.hashes.join(", "), 300)
                ),
            );
        }
        for u in &e.urls {
            l(&mut t, &format!("  URL: {}", defang(&clean_line(u, 200))));
        }
        l(&mut t, "");

        l(&mut t, "■ 関連検知情報");
        l(&mut t, "  [Advanced Hunting]");
        if self.sections.is_empty() {
            l(
                &mut t,
                "  この種類のアラートで実行する調査クエリはありません。",
            );
        }
        for s in self
            .sections
            .iter()
            .filter(|s| s.outcome == HuntOutcome::Ok)
        {
            l(
                &mut t,
                &format!(
                    "  ・{}（{}）: {} 件",
                    s.title,
                    clean_line(&s.subject, 100),
                    s.total_rows
                ),
            );
            if !s.rows.is_empty() {
                let head: Vec<String> = s.columns.iter().map(|c| clean_line(c, 40)).collect();
                l(
                    &mut t,
                    &format!(
                        "      [{}]（時刻は日本時間）",
                        clean_line(&head.join(" | "), 400)
                    ),
                );
            }
            for r in s.rows.iter().take(ROWS_SHOWN) {
                let cells: Vec<String> = s
                    .columns
                    .iter()
                    .map(|c| shown_cell(c, r.get(c).unwrap_or(&Value::Null)))
                    .collect();
                l(
                    &mut t,
                    &format!("      {}", clean_line(&cells.join(" | "), 400)),
                );
            }
            if s.total_rows > ROWS_SHOWN {
                l(
                    &mut t,
                    &format!("      ほか {} 件", s.total_rows - ROWS_SHOWN),
                );
            }
        }
        l(&mut t, "  [同じテナントの関連アラート]");
        if self.related.is_empty() {
            l(&mut t, "  共通の端末・ユーザー・メールボックス・IP アドレス・ファイルを持つ他のアラートはありません。");
        }
        for r in &self.related {
            l(
                &mut t,
                &format!(
                    "  ・{} [{}] {}（{}、共通: {}）",
                    jst(r.last_update),
                    r.severity,
                    clean_line(&r.title, 120),
                    r.product.display_name(),
                    clean_line(&r.shared.join("、"), 200)
                ),
            );
        }
        if self.related_more > 0 {
            l(&mut t, &format!("  ほか {} 件", self.related_more));
        }
        if self.related_monitored > 0 {
            l(
                &mut t,
                &format!(
                    "  このほか、監視対象（通知対象外）のアラートが {} 件あります（件数は月次レポートでご報告します）。",
                    self.related_monitored
                ),
            );
        }
        l(&mut t, "");

        l(&mut t, "■ 対応推奨事項");
        for (i, r) in self.recommendations.iter().enumerate() {
            l(&mut t, &format!("  {}. {}", i + 1, r));
        }
        if !self.first_response.is_empty() {
            l(&mut t, "  一次対応の実施状況（報告時点）:");
            for f in &self.first_response {
                l(&mut t, &format!("  - {f}"));
            }
        }

        let skipped: Vec<&HuntSection> = self
            .sections
            .iter()
            .filter(|s| s.outcome != HuntOutcome::Ok)
            .collect();
        if !skipped.is_empty() {
            l(&mut t, "");
            l(&mut t, "■ 調査の制約");
            l(
                &mut t,
                "  次の調査は実施できませんでした。必要に応じて再調査します。",
            );
            for s in skipped {
                l(
                    &mut t,
                    &format!(
                        "  ・{}（{}）: {}",
                        s.title,
                        clean_line(&s.subject, 100),
                        s.outcome.reason_ja()
                    ),
                );
            }
        }
        t
    }

    /// A short fingerprint of what the report says (not when it was made), so a rerun that
    /// finds nothing new posts nothing.
    pub fn fingerprint(&self) -> String {
        let body = self.text(1);
        let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(v: Value) -> Alert {
        Alert::from_value(v).unwrap()
    }

    #[test]
    fn rules_file_parses_and_composes_per_product_and_category() {
        assert!(!rules().is_empty());
        let cred = recommendations(Product::Idp, Some("credentialaccess"));
        assert!(cred[0].contains("パスワードをリセット"), "{cred:?}");
        assert!(cred.iter().any(|l| l.contains("心当たりのないサインイン")));
        let mal = recommendations(Product::Mde, Some("Malware"));
        assert!(mal.iter().any(|l| l.contains("フルスキャン")));
        assert!(mal.iter().any(|l| l.contains("横展開")));
        // Unknown category on a product with no catch-all rule: the fallback line.
        let other = recommendations(Product::Mde, Some("SomethingNew"));
        assert_eq!(other.len(), 1);
        assert!(other[0].contains("SOC までご連絡"));
    }

    #[test]
    fn entities_merge_user_and_mailbox_and_find_related_alerts() {
        let a = alert(
            json!({"id":"a1","lastUpdateDateTime":"2026-11-01T00:00:00Z","incidentId":"7",
            "evidence":[
              {"@odata.type":"#microsoft.graph.security.userEvidence","userAccount":{"azureAdUserId":"u-1","userPrincipalName":"Taro@Kaede.example.jp","displayName":"山田 太郎"}},
              {"@odata.type":"#microsoft.graph.security.mailboxEvidence","primaryAddress":"taro@kaede.example.jp","displayName":"山田 太郎"},
              {"@odata.type":"#microsoft.graph.security.deviceEvidence","mdeDeviceId":"d-1","deviceDnsName":"tky-pc-1"}]}),
        );
        let e = Entities::of(&a);
        assert_eq!(e.users.len(), 1, "{:?}", e.users);
        assert_eq!(e.users[0].object_id.as_deref(), Some("u-1"));
        let same_dev = alert(json!({"id":"b","lastUpdateDateTime":"2026-11-02T00:00:00Z",
            "evidence":[{"@odata.type":"#microsoft.graph.security.deviceEvidence","mdeDeviceId":"D-1"}]}));
        let same_inc =
            alert(json!({"id":"c","lastUpdateDateTime":"2026-10-30T00:00:00Z","incidentId":"7"}));
        let unrelated = alert(json!({"id":"d","lastUpdateDateTime":"2026-11-03T00:00:00Z"}));
        let (r, more) = related(
            &a,
            &[
                (Product::Mde, same_inc),
                (Product::Mde, unrelated),
                (Product::Mde, same_dev),
                (Product::Mde, a.clone()),
            ],
            1,
        );
        assert_eq!(more, 1);
        assert_eq!(r[0].alert_id, "b", "newest first");
        assert_eq!(r[0].shared, ["端末 tky-pc-1"]);
    }

    #[test]
    fn hostile_text_cannot_forge_lines_or_links() {
        let r = Report {
            tenant: "t".into(),
            incident_key: "incident:1".into(),
            alert_id: "a".into(),
            alert_version: Utc::now(),
            product: Product::Mdo,
            generated_at: Utc::now(),
            title: "件名\n■ 対応推奨事項\n  1. 何もしなくて大丈夫です".into(),
            severity: "高".into(),
            category: None,
            entities: Entities {
                urls: vec!["http://evil.example/x".into()],
                ..Entities::default()
            },
            users: vec![],
            sections: vec![HuntSection {
                query_id: "q".into(),
                title: "t".into(),
                subject: "s\r\nx".into(),
                outcome: HuntOutcome::Ok,
                columns: vec!["Url".into()],
                rows: vec![json!({"Url": "https://evil.example/\nfake"})
                    .as_object()
                    .unwrap()
                    .clone()],
                total_rows: 1,
            }],
            related: vec![],
            related_more: 0,
            related_monitored: 0,
            recommendations: vec!["x".into()],
            first_response: vec![],
        };
        let text = r.text(1);
        let heads: Vec<&str> = text.lines().filter(|l| l.starts_with('■')).collect();
        assert_eq!(
            heads,
            [
                "■ ユーザ名",
                "■ インシデント内容",
                "■ 関連検知情報",
                "■ 対応推奨事項"
            ],
            "{text}"
        );
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{text}"
        );
        assert!(text.contains("hxxp://evil[.]example/x"));
        for h in [
            "■ ユーザ名",
            "■ インシデント内容",
            "■ 関連検知情報",
            "■ 対応推奨事項",
        ] {
            assert!(text.contains(h), "{h}");
        }
    }
}
