//! The monthly report as one self-contained HTML file: inline CSS and SVG, no script, no
//! external font, image or stylesheet — it renders the same offline, attached to a ticket,
//! and printed on A4. Every value that came from an alert goes through [`esc`].

use chrono::{DateTime, FixedOffset, Utc};

use super::charts::{donut, esc, hbar, histogram, stacked_bars, Series};
use crate::domain::alert::Product;
use crate::domain::monthly::{overall_review, thousands, Month, MonthlyNumbers, PRODUCTS};

const CSS: &str = r#"
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", Meiryo, sans-serif;
  color: #1a1a1a; margin: 0 auto; max-width: 980px; padding: 24px; line-height: 1.7; font-size: 14px; }
header { border-bottom: 3px solid #0072B2; margin-bottom: 20px; padding-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; border-left: 6px solid #0072B2; padding-left: 10px; margin: 32px 0 12px; page-break-after: avoid; }
h3 { font-size: 16px; margin: 20px 0 8px; page-break-after: avoid; }
.sub { color: #444; margin: 0; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.kpi { flex: 1 1 150px; border: 1px solid #ccc; border-radius: 6px; padding: 10px 12px; min-width: 0; }
.kpi .v { font-size: 24px; font-weight: bold; }
.kpi .l { font-size: 12px; color: #444; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 13px; table-layout: fixed; }
th, td { border: 1px solid #bbb; padding: 4px 6px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; word-break: break-word; }
th { background: #eef3f8; }
td.n, th.n { text-align: right; }
figure { margin: 12px 0 20px; page-break-inside: avoid; }
figcaption { font-size: 12px; color: #444; }
.comment { border: 1px solid #E69F00; background: #fff8e6; padding: 10px 14px; border-radius: 6px; white-space: pre-wrap; }
.finding .basis { color: #555; font-size: 12px; }
footer { margin-top: 32px; border-top: 1px solid #ccc; padding-top: 8px; font-size: 12px; color: #555; }
"#;

fn jst(t: DateTime<Utc>) -> String {
    let tokyo = FixedOffset::east_opt(9 * 3600).expect("+09:00");
    t.with_timezone(&tokyo).format("%Y/%m/%d %H:%M").to_string()
}

fn product_ja(p: &str) -> &'static str {
    match Product::parse(p) {
        Some(Product::Mde) => "Defender for Endpoint",
        Some(Product::Mdo) => "Defender for Office 365",
        Some(Product::Mda) => "Defender for Cloud Apps",
        Some(Product::Mdi) => "Defender for Identity",
        Some(Product::Idp) => "Entra ID Identity Protection",
        Some(Product::Sentinel) => "Microsoft Sentinel",
        None => "不明",
    }
}

fn severity_ja(s: &str) -> &'static str {
    match s {
        "high" => "高",
        "medium" => "中",
        "low" => "低",
        "informational" => "情報",
        _ => "不明",
    }
}

fn decision_ja(s: &str) -> &'static str {
    match s {
        "incident" => "インシデント（通知対象）",
        "monitored" => "監視のみ",
        "out_of_scope" => "監視対象外",
        _ => "その他",
    }
}

fn action_kind_ja(k: &str) -> String {
    serde_json::from_value::<crate::domain::response::ActionKind>(serde_json::json!(k))
        .map(|k| k.label_ja().to_string())
        .unwrap_or_else(|_| k.to_string())
}

fn action_status_ja(s: &str) -> &'static str {
    match s {
        "succeeded" => "完了",
        "failed" => "失敗",
        "timed_out" => "タイムアウト",
        "cancelled" => "取り消し",
        "in_progress" => "実行中",
        "pending_approval" => "承認待ち",
        "waiting_hours" => "実施時間帯待ち",
        "refused" => "ガードレールにより実施せず",
        "unsupported" => "API 非対応",
        _ => "その他",
    }
}

fn kpi(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!(
        "<div class=\"kpi\"><div class=\"v\">{}</div><div class=\"l\">{}</div></div>",
        esc(value),
        esc(label)
    ));
}

fn figure(out: &mut String, svg: String, caption: &str) {
    out.push_str("<figure>");
    out.push_str(&svg);
    out.push_str(&format!(
        "<figcaption>{}</figcaption></figure>",
        esc(caption)
    ));
}

/// The whole page. `comment` is the analyst's text, shown as written (escaped, line breaks
/// kept).
pub fn render(n: &MonthlyNumbers, comment: Option<&str>) -> String {
    let month = Month::parse(&n.month).ok();
    let month_ja = month
        .map(|m| m.label_ja())
        .unwrap_or_else(|| n.month.clone());
    let period = month
        .map(|m| {
            format!(
                "{}年{}月1日〜{}月{}日（日本時間）",
                m.year,
                m.month,
                m.month,
                m.days()
            )
        })
        .unwrap_or_default();
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str(&format!(
        "<title>月次アドバイザリレポート {} — {}</title>",
        esc(&month_ja),
        esc(&n.tenant_name)
    ));
    h.push_str(&format!("<style>{CSS}</style></head><body>"));
    h.push_str(&format!(
        "<header><h1>月次アドバイザリレポート（{}）</h1><p class=\"sub\">{} 様　対象期間: {}　ご提出期限: {}</p></header>",
        esc(&month_ja),
        esc(&n.tenant_name),
        esc(&period),
        esc(&n.due_date)
    ));

    // 1. 総評
    h.push_str("<section><h2>1. 総評</h2>");
    for p in overall_review(n) {
        h.push_str(&format!("<p>{}</p>", esc(&p)));
    }
    if let Some(c) = comment.map(str::trim).filter(|c| !c.is_empty()) {
        h.push_str("<h3>担当アナリストからのコメント</h3>");
        h.push_str(&format!("<div class=\"comment\">{}</div>", esc(c)));
    }
    h.push_str("</section>");

    // 2. 検知アラート数
    h.push_str("<section><h2>2. 検知アラート数</h2><div class=\"kpis\">");
    kpi(&mut h, "検知アラート数", &thousands(n.alerts.total));
    for k in ["incident", "monitored", "out_of_scope"] {
        kpi(
            &mut h,
            decision_ja(k),
            &thousands(n.decisions.get(k).copied().unwrap_or(0)),
        );
    }
    if let Some(p) = &n.previous {
        kpi(
            &mut h,
            &format!("前月（{}）の検知数", p.month),
            &thousands(p.alerts_total),
        );
    }
    h.push_str("</div>");
    h.push_str("<h3>製品別・重大度別の件数</h3><table><thead><tr><th>製品</th>");
    for s in ["high", "medium", "low", "informational", "unknown"] {
        h.push_str(&format!("<th class=\"n\">{}</th>", severity_ja(s)));
    }
    h.push_str("<th class=\"n\">合計</th></tr></thead><tbody>");
    for p in PRODUCTS {
        let total = n.alerts.by_product.get(p.as_str()).copied().unwrap_or(0);
        h.push_str(&format!("<tr><td>{}</td>", product_ja(p.as_str())));
        for s in ["high", "medium", "low", "informational", "unknown"] {
            let c = n
                .alerts
                .by_product_severity
                .get(p.as_str())
                .and_then(|m| m.get(s))
                .copied()
                .unwrap_or(0);
            h.push_str(&format!("<td class=\"n\">{}</td>", thousands(c)));
        }
        h.push_str(&format!("<td class=\"n\">{}</td></tr>", thousands(total)));
    }
    h.push_str("<tr><th>合計</th>");
    for s in ["high", "medium", "low", "informational", "unknown"] {
        h.push_str(&format!(
            "<th class=\"n\">{}</th>",
            thousands(n.alerts.by_severity.get(s).copied().unwrap_or(0))
        ));
    }
    h.push_str(&format!(
        "<th class=\"n\">{}</th></tr></tbody></table>",
        thousands(n.alerts.total)
    ));
    let days = n.daily.values().next().map(Vec::len).unwrap_or(0);
    let cats: Vec<String> = (1..=days).map(|d| d.to_string()).collect();
    let series: Vec<Series> = PRODUCTS
        .iter()
        .map(|p| Series {
            name: product_ja(p.as_str()).to_string(),
            values: n
                .daily
                .get(p.as_str())
                .map(|v| v.iter().map(|x| *x as f64).collect())
                .unwrap_or_default(),
        })
        .collect();
    figure(
        &mut h,
        stacked_bars("日別アラート件数（製品別）", &cats, &series, "件数"),
        "図 1: 日別のアラート件数。色は製品を表します（日付は日本時間）。",
    );
    let sev: Vec<(String, f64)> = ["high", "medium", "low", "informational", "unknown"]
        .iter()
        .map(|s| {
            (
                severity_ja(s).to_string(),
                n.alerts.by_severity.get(*s).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    figure(
        &mut h,
        donut("重大度の内訳", &sev),
        "図 2: アラートの重大度の内訳。",
    );
    h.push_str("</section>");

    // 3. インシデントの発生状況
    h.push_str("<section><h2>3. インシデントの発生状況</h2><div class=\"kpis\">");
    kpi(&mut h, "新規インシデント", &thousands(n.incidents.opened));
    kpi(
        &mut h,
        "解決済み（月末時点）",
        &thousands(n.incidents.resolved),
    );
    kpi(&mut h, "対応中（月末時点）", &thousands(n.incidents.open));
    kpi(&mut h, "調査報告", &thousands(n.investigation_reports));
    h.push_str("</div>");
    figure(
        &mut h,
        donut(
            "インシデントの状況（月末時点）",
            &[
                ("解決済み".to_string(), n.incidents.resolved as f64),
                ("対応中".to_string(), n.incidents.open as f64),
            ],
        ),
        "図 3: 当月に発生したインシデントの月末時点の状況。",
    );
    let ttt: Vec<(String, f64)> = n
        .time_to_ticket
        .iter()
        .map(|(l, c)| (l.clone(), *c as f64))
        .collect();
    figure(
        &mut h,
        histogram(
            "アラート検知からチケット起票までの時間",
            &ttt,
            "経過時間",
            "インシデント数",
        ),
        "図 4: アラートの作成からお客さまへのチケット起票までの時間の分布。",
    );
    h.push_str("<h3>インシデント一覧</h3>");
    if n.incident_rows.is_empty() {
        h.push_str("<p>当月に発生したインシデントはありません。</p>");
    } else {
        h.push_str("<table><colgroup><col style=\"width:13%\"><col style=\"width:7%\"><col style=\"width:30%\"><col style=\"width:14%\"><col style=\"width:11%\"><col style=\"width:11%\"><col style=\"width:14%\"></colgroup>");
        h.push_str("<thead><tr><th>チケット番号</th><th>重大度</th><th>件名</th><th>製品</th><th>起票（JST）</th><th>解決（JST）</th><th>一次対応</th></tr></thead><tbody>");
        for r in &n.incident_rows {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(r.ticket_id.as_deref().unwrap_or("（起票中）")),
                esc(&r.severity),
                esc(&r.title),
                r.product.map(|p| product_ja(p.as_str())).unwrap_or("不明"),
                jst(r.opened),
                r.resolved.map(jst).unwrap_or_else(|| "対応中".into()),
                if r.actions.is_empty() {
                    "なし".to_string()
                } else {
                    r.actions.iter().map(|a| esc(a)).collect::<Vec<_>>().join("<br>")
                }
            ));
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("<h3>一次対応の実施状況</h3>");
    if n.actions.is_empty() {
        h.push_str("<p>当月に実施した一次対応はありません。</p>");
    } else {
        h.push_str("<table><thead><tr><th>対応</th><th>結果</th><th class=\"n\">件数</th></tr></thead><tbody>");
        for (k, by) in &n.actions {
            for (s, c) in by {
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                    esc(&action_kind_ja(k)),
                    action_status_ja(s),
                    thousands(*c)
                ));
            }
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");

    // 4. 各種ログのグラフ化
    h.push_str("<section><h2>4. 各種ログのグラフ化</h2>");
    let top = |v: &[(String, u64)]| -> Vec<(String, f64)> {
        v.iter().map(|(k, c)| (k.clone(), *c as f64)).collect()
    };
    figure(
        &mut h,
        hbar("アラート件名 上位 10 件", &top(&n.top_titles), "件数"),
        "図 5: 検知の多かったアラート件名。",
    );
    figure(
        &mut h,
        hbar(
            "アラートの多い端末 上位 10 台",
            &top(&n.top_devices),
            "件数",
        ),
        "図 6: アラートの証跡に含まれる端末別の件数。",
    );
    figure(
        &mut h,
        hbar(
            "アラートの多いユーザー 上位 10 名",
            &top(&n.top_users),
            "件数",
        ),
        "図 7: アラートの証跡に含まれるユーザー・メールボックス別の件数。",
    );
    h.push_str("</section>");

    // 5. 提案
    h.push_str("<section><h2>5. セキュリティ運用の維持・改善のためのご提案</h2><ol>");
    for f in &n.proposals {
        h.push_str(&format!(
            "<li class=\"finding\">{}<br><span class=\"basis\">根拠: {} = {}</span></li>",
            esc(&f.text),
            esc(&f.metric),
            thousands(f.value)
        ));
    }
    h.push_str("</ol></section>");
    h.push_str(&format!(
        "<footer>作成日時: {}（日本時間）　本レポートは Microsoft 365 E5 Security 製品のアラートと、本サービスでの判定・対応記録から作成しています。分析結果に応じて内容が異なる場合がございます。</footer>",
        jst(n.generated_at)
    ));
    h.push_str("</body></html>\n");
    h
}
