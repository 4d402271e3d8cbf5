//! What the customer reads: the OpsRamp ticket's subject and description are the notification
//! mail (OpsRamp mails them itself, and has no switch to suppress that), so everything
//! ticket-relevant is rendered here, in Japanese, from the alert.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::alert::{Alert, Product};
use super::classify::Decision;
use super::severity::Severity;
use super::tenant::Tenant;

/// OpsRamp's priorities (Low, Normal, High, Urgent, Very Low) per alert severity; the
/// default follows the service's notification practice and can be changed per deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityMap {
    pub high: String,
    pub medium: String,
    pub low: String,
    pub informational: String,
}

impl Default for PriorityMap {
    fn default() -> Self {
        PriorityMap {
            high: "Urgent".into(),
            medium: "High".into(),
            low: "Normal".into(),
            informational: "Low".into(),
        }
    }
}

impl PriorityMap {
    pub fn priority(&self, s: Severity) -> &str {
        match s {
            Severity::High => &self.high,
            Severity::Medium => &self.medium,
            Severity::Low => &self.low,
            Severity::Informational => &self.informational,
        }
    }
}

/// The severity a ticket shows: unreadable severities escalate, as in classification.
pub fn effective_severity(alert: &Alert) -> Severity {
    alert.severity().unwrap_or(Severity::High)
}

const SUBJECT_MAX_CHARS: usize = 200;

/// Control characters (including bidi overrides that could make a title read backwards in a
/// mail client) are replaced; length is cut on a character boundary, never inside one.
pub fn clean_line(s: &str, max_chars: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if is_unsafe_char(c) { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

fn clean_block(s: &str, max_chars: usize) -> String {
    let lines: Vec<String> = s
        .lines()
        .map(|l| clean_line(l, max_chars))
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = lines.join("\n");
    if out.chars().count() > max_chars {
        out = out.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
    }
    out
}

fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffd}')
}

pub fn subject(severity: Severity, title: &str) -> String {
    format!(
        "【重大度: {}】{}",
        severity.label_ja(),
        clean_line(title, SUBJECT_MAX_CHARS)
    )
}

pub fn jst(t: DateTime<Utc>) -> String {
    let tokyo = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    t.with_timezone(&tokyo)
        .format("%Y年%m月%d日 %H:%M:%S (JST)")
        .to_string()
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

pub fn status_ja(s: Option<&str>) -> String {
    match s {
        Some("new") => "新規".into(),
        Some("inProgress") => "対応中".into(),
        Some("resolved") => "解決済み".into(),
        None | Some("unknown") | Some("") => "不明".into(),
        Some(other) => clean_line(other, 40),
    }
}

pub fn classification_ja(s: &str) -> String {
    match s {
        "truePositive" => "真陽性（実際の脅威）".into(),
        "falsePositive" => "誤検知".into(),
        "informationalExpectedActivity" => "情報（想定内のアクティビティ）".into(),
        "benignPositive" => "無害な検知（想定内のアクティビティ）".into(),
        "unknown" => "未分類".into(),
        other => clean_line(other, 40),
    }
}

/// Only links to Microsoft's own portals are shown: a link in a security notification is
/// something customers click.
fn portal_link(s: Option<&str>) -> Option<&str> {
    s.filter(|u| {
        let u = u.trim();
        u.starts_with("https://security.microsoft.com/")
            || u.starts_with("https://portal.azure.com/")
            || u.starts_with("https://entra.microsoft.com/")
            || u.starts_with("https://portal.cloudappsecurity.com/")
            || u.starts_with("https://security.microsoft.com")
    })
    .filter(|u| !u.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// Lines summarising the evidence (devices, users, mail, files…), capped so one noisy alert
/// cannot produce a ticket nobody can read.
pub fn evidence_summary(alert: &Alert) -> Vec<String> {
    const MAX: usize = 20;
    let mut out = Vec::new();
    let mut more = 0usize;
    for e in alert.evidence() {
        let line = match e.kind() {
            "deviceEvidence" => Some(format!(
                "デバイス: {}（OS: {}、デバイスグループ: {}、MDE ID: {}）",
                e.str("deviceDnsName").unwrap_or("(名前不明)"),
                e.str("osPlatform").unwrap_or("不明"),
                e.str("rbacGroupName").unwrap_or("不明"),
                e.str("mdeDeviceId").unwrap_or("不明"),
            )),
            "userEvidence" => Some(format!(
                "ユーザー: {}（{}）",
                e.nested_str("userAccount", "displayName")
                    .or_else(|| e.nested_str("userAccount", "accountName"))
                    .unwrap_or("(名前不明)"),
                e.nested_str("userAccount", "userPrincipalName")
                    .unwrap_or("UPN不明"),
            )),
            "mailboxEvidence" => Some(format!(
                "メールボックス: {}（{}）",
                e.str("displayName").unwrap_or("(名前不明)"),
                e.str("primaryAddress")
                    .or_else(|| e.str("upn"))
                    .unwrap_or("アドレス不明"),
            )),
            "analyzedMessageEvidence" => Some(format!(
                "メール: 件名「{}」 宛先 {} 配信結果 {}",
                e.str("subject").unwrap_or(""),
                e.str("recipientEmailAddress").unwrap_or("不明"),
                e.str("deliveryAction").unwrap_or("不明"),
            )),
            "fileEvidence" => Some(format!(
                "ファイル: {}（{}、SHA256: {}）",
                e.nested_str("fileDetails", "fileName")
                    .unwrap_or("(名前不明)"),
                e.nested_str("fileDetails", "filePath")
                    .unwrap_or("パス不明"),
                e.nested_str("fileDetails", "sha256").unwrap_or("不明"),
            )),
            "processEvidence" => Some(format!(
                "プロセス: {}",
                e.nested_str("imageFile", "fileName")
                    .unwrap_or("(名前不明)"),
            )),
            "ipEvidence" => Some(format!(
                "IP アドレス: {}{}",
                e.str("ipAddress").unwrap_or("不明"),
                e.str("countryLetterCode")
                    .map(|c| format!("（{c}）"))
                    .unwrap_or_default(),
            )),
            "urlEvidence" => Some(format!("URL: {}", defang(e.str("url").unwrap_or("不明")))),
            "cloudApplicationEvidence" => Some(format!(
                "クラウドアプリ: {}",
                e.str("displayName").unwrap_or("(名前不明)")
            )),
            "" => None,
            other => Some(format!("その他の証跡: {other}")),
        };
        if let Some(l) = line {
            if out.len() < MAX {
                out.push(clean_line(&l, 300));
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        out.push(format!("ほか {more} 件（Defender ポータルで確認できます）"));
    }
    out
}

/// Attacker URLs are shown defanged so no mail client turns them into a clickable link.
pub fn defang(url: &str) -> String {
    url.replace("http", "hxxp").replace('.', "[.]")
}

/// The first notification: the ticket's description.
pub fn description(tenant: &Tenant, alert: &Alert, decision: &Decision) -> String {
    let sev = effective_severity(alert);
    let product = decision
        .product
        .map(Product::display_name)
        .unwrap_or("不明");
    let mut d = String::new();
    let mut line = |k: &str, v: &str| {
        d.push('■');
        d.push(' ');
        d.push_str(k);
        d.push_str(": ");
        d.push_str(v);
        d.push('\n');
    };
    line("お客様", &clean_line(&tenant.name, 100));
    line("製品", product);
    line("重大度", sev.label_ja());
    line("アラート件名", &clean_line(alert.title(), 500));
    let detected =
        parse_time(alert.fields.created_date_time.as_deref()).unwrap_or(alert.last_update);
    line("検知日時", &jst(detected));
    if let Some(first) = parse_time(alert.fields.first_activity_date_time.as_deref()) {
        line("最初の活動日時", &jst(first));
    }
    line("ステータス", &status_ja(alert.fields.status.as_deref()));
    if let Some(c) = alert.fields.category.as_deref() {
        line("カテゴリ", &clean_line(c, 80));
    }
    if let Some(i) = alert.fields.incident_id.as_deref() {
        line("Defender インシデント ID", &clean_line(i, 80));
    }
    line("アラート ID", &clean_line(&alert.id, 120));
    line("判定理由", &decision.reason);
    if let Some(u) = portal_link(alert.fields.incident_web_url.as_deref()) {
        line("インシデントの詳細 (Microsoft Defender ポータル)", u);
    }
    if let Some(u) = portal_link(alert.fields.alert_web_url.as_deref()) {
        line("アラートの詳細 (Microsoft Defender ポータル)", u);
    }
    if let Some(desc) = alert.fields.description.as_deref() {
        let desc = clean_block(desc, 2000);
        if !desc.is_empty() {
            d.push_str("\n■ アラートの説明\n");
            d.push_str(&desc);
            d.push('\n');
        }
    }
    let ev = evidence_summary(alert);
    if !ev.is_empty() {
        d.push_str("\n■ 証跡の概要\n");
        for l in ev {
            d.push('・');
            d.push_str(&l);
            d.push('\n');
        }
    }
    if let Some(r) = alert.fields.recommended_actions.as_deref() {
        let r = clean_block(r, 2000);
        if !r.is_empty() {
            d.push_str("\n■ 推奨される対応（Microsoft による）\n");
            d.push_str(&r);
            d.push('\n');
        }
    }
    d.push_str("\n本チケットは当社 SOC の監視システムが自動で起票しました。本インシデントに関するご連絡は、本チケットへの返信でお願いいたします。\n");
    d
}

/// What changed between two versions of one alert, for a ticket response. `None` when
/// nothing the customer cares about changed (e.g. only an internal timestamp).
pub fn update_note(prev: Option<&Alert>, alert: &Alert) -> Option<String> {
    let title = clean_line(alert.title(), 300);
    let Some(prev) = prev else {
        let mut s = format!(
            "【アラート追加】同じインシデントに新しいアラートが追加されました。\n■ アラート件名: {title}\n■ 重大度: {}\n■ ステータス: {}\n■ アラート ID: {}\n",
            effective_severity(alert).label_ja(),
            status_ja(alert.fields.status.as_deref()),
            clean_line(&alert.id, 120),
        );
        if let Some(u) = portal_link(alert.fields.alert_web_url.as_deref()) {
            s.push_str(&format!("■ アラートの詳細: {u}\n"));
        }
        let ev = evidence_summary(alert);
        if !ev.is_empty() {
            s.push_str("■ 証跡の概要\n");
            for l in ev {
                s.push_str(&format!("・{l}\n"));
            }
        }
        return Some(s);
    };
    let mut changes = Vec::new();
    if prev.fields.status != alert.fields.status {
        changes.push(format!(
            "ステータス: {} → {}",
            status_ja(prev.fields.status.as_deref()),
            status_ja(alert.fields.status.as_deref())
        ));
    }
    if effective_severity(prev) != effective_severity(alert) {
        changes.push(format!(
            "重大度: {} → {}",
            effective_severity(prev).label_ja(),
            effective_severity(alert).label_ja()
        ));
    }
    if prev.fields.classification != alert.fields.classification {
        if let Some(c) = alert.fields.classification.as_deref() {
            changes.push(format!("分類: {}", classification_ja(c)));
        }
    }
    if prev.fields.determination != alert.fields.determination {
        if let Some(c) = alert.fields.determination.as_deref() {
            changes.push(format!("判定: {}", clean_line(c, 60)));
        }
    }
    let (pn, nn) = (prev.evidence().count(), alert.evidence().count());
    if pn != nn {
        changes.push(format!("証跡: {pn} 件 → {nn} 件"));
    }
    if changes.is_empty() {
        return None;
    }
    let head = if alert.is_resolved() && !prev.is_resolved() {
        "【解決】アラートが解決済みになりました。"
    } else {
        "【更新】アラートが更新されました。"
    };
    let mut s = format!(
        "{head}\n■ アラート件名: {title}\n■ アラート ID: {}\n",
        clean_line(&alert.id, 120)
    );
    for c in changes {
        s.push_str("■ ");
        s.push_str(&c);
        s.push('\n');
    }
    s.push_str(&format!("■ 更新日時: {}\n", jst(alert.last_update)));
    if nn > pn {
        let ev = evidence_summary(alert);
        s.push_str("■ 現在の証跡\n");
        for l in ev {
            s.push_str(&format!("・{l}\n"));
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(v: serde_json::Value) -> Alert {
        Alert::from_value(v).unwrap()
    }

    #[test]
    fn subject_has_label_and_clean_title() {
        assert_eq!(
            subject(Severity::High, "Suspicious execution of hidden file"),
            "【重大度: 高】Suspicious execution of hidden file"
        );
        assert_eq!(
            subject(Severity::Informational, "a\r\nBcc: x@y\u{202e}z"),
            "【重大度: 情報】a Bcc: x@y z"
        );
        let long = "漢".repeat(1000);
        let s = subject(Severity::Low, &long);
        assert_eq!(s.chars().count(), "【重大度: 低】".chars().count() + 200);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn update_note_describes_changes() {
        let v1 = a(
            json!({"id":"a","lastUpdateDateTime":"2026-11-02T00:00:00Z","status":"new","severity":"medium","title":"T"}),
        );
        let v2 = a(
            json!({"id":"a","lastUpdateDateTime":"2026-11-02T01:00:00Z","status":"resolved","severity":"high","title":"T","classification":"falsePositive"}),
        );
        let n = update_note(Some(&v1), &v2).unwrap();
        assert!(n.starts_with("【解決】"), "{n}");
        assert!(n.contains("ステータス: 新規 → 解決済み"), "{n}");
        assert!(n.contains("重大度: 中 → 高"), "{n}");
        assert!(n.contains("分類: 誤検知"), "{n}");
        assert!(n.contains("2026年11月02日 10:00:00 (JST)"), "{n}");
        let same = a(
            json!({"id":"a","lastUpdateDateTime":"2026-11-02T02:00:00Z","status":"new","severity":"medium","title":"T"}),
        );
        assert_eq!(update_note(Some(&v1), &same), None);
        assert!(update_note(None, &v1)
            .unwrap()
            .starts_with("【アラート追加】"));
    }

    #[test]
    fn links_only_to_microsoft_portals() {
        let t = crate::domain::tenant::Tenant::from_toml(
            r#"
id = "aa"
name = "テスト"
azure_tenant_id = "11111111-2222-3333-4444-555555555555"
products = ["mdi"]
[mdi]
"#,
        )
        .unwrap();
        let al = a(
            json!({"id":"a","lastUpdateDateTime":"2026-11-02T00:00:00Z","title":"<b>x</b>",
            "alertWebUrl":"https://evil.example/phish","incidentWebUrl":"https://security.microsoft.com/incidents/1?tid=x",
            "evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"http://bad.example/a"}]}),
        );
        let d = crate::domain::classify::classify(&t, &al, None);
        let text = description(&t, &al, &d);
        assert!(!text.contains("evil.example"), "{text}");
        assert!(text.contains("https://security.microsoft.com/incidents/1?tid=x"));
        assert!(text.contains("hxxp://bad[.]example/a"), "{text}");
        assert!(text.contains("■ アラート件名: <b>x</b>"));
    }
}
