//! Monthly report delivery: one tenant × one JST month → a draft in the report archive, and,
//! when an operator asks, one OpsRamp service request to the tenant's contacts with the page
//! attached.
//!
//! The archive holds, per tenant and month (keys `<tenant>/<YYYY-MM>/<file>`, which the
//! archive puts under its own root, `reports/` by default):
//!
//! | file | written by | what |
//! |---|---|---|
//! | `report.html` | every run | the page as last built (draft, or the version just sent) |
//! | `report.json` | every run | its numbers ([`MonthlyNumbers`]) |
//! | `comment.txt` | the analyst | optional UTF-8 text shown under 総評; read by every run, never written |
//! | `sent.json` | send / resend | [`SentRecord`]: the service request and each version sent |
//! | `sent.html` | send / resend | the page as last sent to the customer |
//!
//! Scheduled runs only draft. Sending is an operator's action ([`Mode::Send`]), made after
//! the analyst has read the draft and put `comment.txt` next to it; the report is built again
//! at that moment, with that comment, so what is sent is what is archived.
//!
//! Once per tenant × month: the service request carries `extTicketId`
//! `mss-<tenant>-report-<YYYYMM>` ([`ext_ticket_id`]) and is looked up before it is created (and
//! by the client after an ambiguous failure, before a resend of the POST). A second send
//! finds it and does nothing; `resend: true` posts the rebuilt page as a response on it, once
//! per distinct content (the response's `extTicketResponseId` carries the content's
//! fingerprint, and a version already sent is not posted again).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::calendar::Calendar;
use crate::domain::incident::clean_line;
use crate::domain::monthly::{overall_review, Month, MonthlyNumbers};
use crate::ports::Store;

pub const CONTENT_HTML: &str = "text/html; charset=utf-8";
pub const CONTENT_JSON: &str = "application/json";
/// An analyst's comment longer than this is refused (it belongs in the meeting, not the page).
pub const COMMENT_MAX_CHARS: usize = 20_000;
/// How many of 総評's lines the service request's description quotes.
const REVIEW_LINES: usize = 3;

/// Where report files are kept: S3 on AWS (`adapters::report_archive::S3ReportArchive`), a
/// directory on the embedded default (`adapters::report_archive::FsReportArchive`). Keys are
/// relative (`<tenant>/<YYYY-MM>/<file>`); an archive places them under its own root.
#[async_trait]
pub trait ReportArchive: Send + Sync {
    /// Writes (replaces) one object.
    async fn put(&self, key: &str, body: &[u8], content_type: &str) -> anyhow::Result<()>;
    /// One object, `None` when there is none.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Where a key lives, for people (`s3://bucket/reports/…`, a path).
    fn location(&self, key: &str) -> String;
}

/// A file sent along (OpsRamp `attachments: [{name, file: base64}]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The service request that carries a report to the customer.
#[derive(Debug, Clone)]
pub struct NewServiceRequest {
    pub subject: String,
    pub description: String,
    /// Comma-separated, as the tenant's contacts.
    pub to_email: Option<String>,
    pub cc: Option<String>,
    /// OpsRamp `dueDate`; see [`due_at`].
    pub due: DateTime<Utc>,
    pub ext_ticket_id: String,
    pub attachments: Vec<Attachment>,
}

/// How a report reaches the customer: OpsRamp service requests (implemented on
/// `adapters::opsramp::OpsRampClient`). OpsRamp mails `toEmail`/`cc` itself on create and on
/// every non-internal response.
#[async_trait]
pub trait ReportDelivery: Send + Sync {
    /// The service request with exactly this `extTicketId`.
    async fn find(&self, ext_ticket_id: &str) -> anyhow::Result<Option<String>>;
    /// Creates it; after an ambiguous failure the implementation looks it up by
    /// `extTicketId` before sending the POST again.
    async fn create(&self, sr: &NewServiceRequest) -> anyhow::Result<String>;
    /// Whether a response with this `extTicketResponseId` is on it.
    async fn has_response(&self, id: &str, ext_response_id: &str) -> anyhow::Result<bool>;
    /// A customer-visible response with one file; looked up by `extTicketResponseId` after
    /// an ambiguous failure, before it is sent again.
    async fn add_response_with_attachment(
        &self,
        id: &str,
        text: &str,
        ext_response_id: &str,
        attachment: &Attachment,
    ) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Build (with the analyst's comment, if there is one) and archive; send nothing.
    Draft,
    /// Build again, archive, and deliver once. `resend`: if it was delivered already, post
    /// the rebuilt page as a response on the same service request (only if it changed).
    Send { resend: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryAction {
    /// Archived as a draft; nothing sent.
    Drafted,
    /// The service request was created.
    Sent,
    /// It existed already and no resend was asked: nothing posted.
    AlreadySent,
    /// Posted as a response on the existing service request.
    Resent,
    /// Resend asked, but this exact content was sent before: nothing posted.
    Unchanged,
}

/// What one run did (the Lambda's answer, the CLI's JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryOutcome {
    pub tenant: String,
    pub month: String,
    pub action: DeliveryAction,
    /// The OpsRamp service request, when there is one.
    pub service_request: Option<String>,
    /// The report's due date (JST, `YYYY-MM-DD`).
    pub due_date: String,
    /// Whether an analyst comment (`comment.txt`) went into the page.
    pub comment: bool,
    /// Of the page's content, its generation time left out (see [`fingerprint`]).
    pub fingerprint: String,
    /// Where the files of this run were written.
    pub written: Vec<String>,
    /// One sentence for the operator.
    pub note: String,
}

/// `sent.json`: what went to the customer, so a resend can tell whether anything changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub service_request: String,
    pub ext_ticket_id: String,
    pub sends: Vec<SentVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentVersion {
    pub at: DateTime<Utc>,
    /// `None` for a request found in OpsRamp without a record here (its content is unknown).
    pub fingerprint: Option<String>,
    /// `None` for the create, the response's id for a resend.
    pub ext_response_id: Option<String>,
}

/// Our `extTicketId` for a tenant's report of a month: `mss-<tenant>-report-<YYYYMM>`. Tenant
/// ids are `[a-z0-9-]` (validated with the tenant), so the id survives OpsRamp's `queryString`
/// (`key:value+key:value`) unchanged.
pub fn ext_ticket_id(tenant: &str, month: Month) -> String {
    format!("mss-{tenant}-report-{:04}{:02}", month.year, month.month)
}

/// The archive key of one of the month's files.
pub fn key(tenant: &str, month: Month, file: &str) -> String {
    format!("{tenant}/{month}/{file}")
}

/// The attachment's file name: ASCII only, since OpsRamp does not document how it treats
/// other characters in attachment names (or in the mail that carries them).
pub fn file_name(tenant: &str, month: Month) -> String {
    format!("mss-monthly-report-{tenant}-{month}.html")
}

/// The service request's `dueDate` for the report's due date: **17:30 JST** that day, the
/// end of support hours (対応時間 9:00〜17:30), the same closing time every other deadline of
/// the service uses (inquiry SLAs). Not 18:00 or 23:59: the promise is "by the 10th business
/// day", and the SOC's business day ends at 17:30.
pub fn due_at(date: NaiveDate) -> DateTime<Utc> {
    let jst = chrono::FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    jst.from_local_datetime(&date.and_hms_opt(17, 30, 0).expect("17:30 exists"))
        .single()
        .expect("JST has no gaps")
        .with_timezone(&Utc)
}

/// A content fingerprint of the page: SHA-256 of the page rendered with the generation time
/// fixed, first 16 hex digits. The same data and comment give the same fingerprint, whenever
/// built.
pub fn fingerprint(numbers: &MonthlyNumbers, comment: Option<&str>) -> String {
    let mut n = numbers.clone();
    n.generated_at = DateTime::<Utc>::UNIX_EPOCH;
    let html = crate::report::html::render(&n, comment);
    let d = ring::digest::digest(&ring::digest::SHA256, html.as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn date_ja(d: NaiveDate) -> String {
    const WD: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
    format!(
        "{}年{}月{}日（{}）",
        d.year(),
        d.month(),
        d.day(),
        WD[d.weekday().num_days_from_monday() as usize]
    )
}

/// `【月次アドバイザリレポート】2026年11月 — 楓商事株式会社`
pub fn subject(tenant_name: &str, month: Month) -> String {
    clean_line(
        &format!(
            "【月次アドバイザリレポート】{} — {}",
            month.label_ja(),
            tenant_name
        ),
        200,
    )
}

/// The service request's text (plain text: OpsRamp does not document how it renders HTML in
/// a ticket or its mail; the page itself is the attachment).
pub fn description(numbers: &MonthlyNumbers, month: Month, file: &str) -> String {
    let name = clean_line(&numbers.tenant_name, 100);
    let last = month
        .next()
        .first_day()
        .pred_opt()
        .expect("a month has a last day");
    let due = NaiveDate::parse_from_str(&numbers.due_date, "%Y-%m-%d")
        .map(date_ja)
        .unwrap_or_else(|_| numbers.due_date.clone());
    let mut s = format!(
        "{name} ご担当者様\n\n\
         いつもお世話になっております。\n\
         {}の月次アドバイザリレポートをお送りいたします。\n\n\
         ■ 対象期間: {}〜{}（日本時間）\n\
         ■ ご提出期限: {due}\n\n\
         ■ 総評（抜粋）\n",
        month.label_ja(),
        date_ja(month.first_day()),
        date_ja(last),
    );
    for line in overall_review(numbers).iter().take(REVIEW_LINES) {
        s.push_str(&format!("・{}\n", clean_line(line, 400)));
    }
    s.push_str(&format!(
        "\nレポート本文は HTML ファイル（{file}）として添付しております。\
         ダウンロードのうえ、ウェブブラウザ（Microsoft Edge、Google Chrome など）で開いてご覧ください。\n\
         内容は月次定例会にてご説明いたします。ご不明な点がございましたら、本チケットへのご返信にてお問い合わせください。\n"
    ));
    s
}

fn resend_text(month: Month, file: &str) -> String {
    format!(
        "{}の月次アドバイザリレポートを更新いたしましたので、再送いたします。\n\
         更新版を HTML ファイル（{file}）として添付しております。ウェブブラウザで開いてご覧ください。\n\
         先にお送りした版に代えて、こちらをご参照ください。\n",
        month.label_ja()
    )
}

/// The analyst's comment, if one is in the archive: UTF-8 (a BOM is dropped), trimmed, empty
/// counts as none, at most [`COMMENT_MAX_CHARS`] characters.
async fn read_comment(
    archive: &dyn ReportArchive,
    tenant: &str,
    month: Month,
) -> anyhow::Result<Option<String>> {
    let k = key(tenant, month, "comment.txt");
    let Some(bytes) = archive.get(&k).await? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow!(
            "{} is not UTF-8 text; save it as UTF-8 and run again",
            archive.location(&k)
        )
    })?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Ok(None);
    }
    let n = text.chars().count();
    if n > COMMENT_MAX_CHARS {
        bail!(
            "{} has {n} characters; at most {COMMENT_MAX_CHARS} are accepted",
            archive.location(&k)
        );
    }
    Ok(Some(text.replace("\r\n", "\n")))
}

async fn read_sent(
    archive: &dyn ReportArchive,
    tenant: &str,
    month: Month,
) -> anyhow::Result<Option<SentRecord>> {
    let k = key(tenant, month, "sent.json");
    match archive.get(&k).await? {
        Some(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| archive.location(&k))?,
        )),
        None => Ok(None),
    }
}

struct Built {
    numbers: MonthlyNumbers,
    html: String,
    comment: bool,
    fingerprint: String,
    written: Vec<String>,
}

/// Builds the report with the archive's comment and writes `report.html` and `report.json`.
async fn build_and_archive(
    store: &dyn Store,
    archive: &dyn ReportArchive,
    calendar: &Calendar,
    now: DateTime<Utc>,
    tenant_id: &str,
    month: Month,
) -> anyhow::Result<Built> {
    let comment = read_comment(archive, tenant_id, month).await?;
    let r =
        super::monthly::build(store, now, calendar, tenant_id, month, comment.as_deref()).await?;
    let fp = fingerprint(&r.numbers, comment.as_deref());
    let mut written = Vec::new();
    for (file, body, ct) in [
        ("report.html", r.html.as_bytes().to_vec(), CONTENT_HTML),
        (
            "report.json",
            serde_json::to_vec_pretty(&r.numbers)?,
            CONTENT_JSON,
        ),
    ] {
        let k = key(tenant_id, month, file);
        archive.put(&k, &body, ct).await?;
        written.push(archive.location(&k));
    }
    Ok(Built {
        numbers: r.numbers,
        html: r.html,
        comment: comment.is_some(),
        fingerprint: fp,
        written,
    })
}

/// Draft: build and archive; nothing is sent. A draft made after the report was sent says
/// so (the archive's `sent.html` keeps what the customer received).
pub async fn draft(
    store: &dyn Store,
    archive: &dyn ReportArchive,
    calendar: &Calendar,
    now: DateTime<Utc>,
    tenant_id: &str,
    month: Month,
) -> anyhow::Result<DeliveryOutcome> {
    let b = build_and_archive(store, archive, calendar, now, tenant_id, month).await?;
    let sent = read_sent(archive, tenant_id, month).await?;
    let note = match &sent {
        Some(s) => format!(
            "draft replaced; note: this report was already sent as {} (sent.html is what the customer received)",
            s.service_request
        ),
        None => format!(
            "draft written; put the analyst's comment in {} and send",
            archive.location(&key(tenant_id, month, "comment.txt"))
        ),
    };
    Ok(DeliveryOutcome {
        tenant: tenant_id.to_string(),
        month: month.to_string(),
        action: DeliveryAction::Drafted,
        service_request: sent.map(|s| s.service_request),
        due_date: b.numbers.due_date,
        comment: b.comment,
        fingerprint: b.fingerprint,
        written: b.written,
        note,
    })
}

/// One tenant × month: draft, or send (once; resend on request).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    store: &dyn Store,
    archive: &dyn ReportArchive,
    delivery: &dyn ReportDelivery,
    calendar: &Calendar,
    now: DateTime<Utc>,
    tenant_id: &str,
    month: Month,
    mode: Mode,
) -> anyhow::Result<DeliveryOutcome> {
    let resend = match mode {
        Mode::Draft => return draft(store, archive, calendar, now, tenant_id, month).await,
        Mode::Send { resend } => resend,
    };
    let tenant = store
        .get_tenant(tenant_id)
        .await?
        .ok_or_else(|| anyhow!("tenant {tenant_id} is not registered"))?;
    if tenant.contacts_to.is_empty() {
        bail!("tenant {tenant_id} has no contacts.to: OpsRamp would mail the report to nobody; add a contact and send again");
    }
    let b = build_and_archive(store, archive, calendar, now, tenant_id, month).await?;
    let due_date = NaiveDate::parse_from_str(&b.numbers.due_date, "%Y-%m-%d")
        .with_context(|| format!("due date {:?}", b.numbers.due_date))?;
    let file = file_name(tenant_id, month);
    let attachment = Attachment {
        name: file.clone(),
        bytes: b.html.as_bytes().to_vec(),
    };
    let ext = ext_ticket_id(tenant_id, month);
    let mut sent = read_sent(archive, tenant_id, month).await?;
    let mut outcome = DeliveryOutcome {
        tenant: tenant_id.to_string(),
        month: month.to_string(),
        action: DeliveryAction::Sent,
        service_request: None,
        due_date: b.numbers.due_date.clone(),
        comment: b.comment,
        fingerprint: b.fingerprint.clone(),
        written: b.written,
        note: String::new(),
    };

    let Some(id) = delivery.find(&ext).await? else {
        let id = delivery
            .create(&NewServiceRequest {
                subject: subject(&tenant.name, month),
                description: description(&b.numbers, month, &file),
                to_email: Some(tenant.contacts_to.join(",")),
                cc: (!tenant.contacts_cc.is_empty()).then(|| tenant.contacts_cc.join(",")),
                due: due_at(due_date),
                ext_ticket_id: ext.clone(),
                attachments: vec![attachment],
            })
            .await?;
        let record = SentRecord {
            service_request: id.clone(),
            ext_ticket_id: ext,
            sends: vec![SentVersion {
                at: now,
                fingerprint: Some(b.fingerprint),
                ext_response_id: None,
            }],
        };
        outcome
            .written
            .extend(write_sent(archive, tenant_id, month, &record, Some(b.html.as_bytes())).await?);
        outcome.service_request = Some(id.clone());
        outcome.note = format!("service request {id} created; OpsRamp mails the contacts");
        return Ok(outcome);
    };
    outcome.service_request = Some(id.clone());

    // Sent before. Keep the record in step with OpsRamp (a crash after the create, or a
    // request made elsewhere), without claiming to know what that version contained.
    let record = sent.get_or_insert_with(|| SentRecord {
        service_request: id.clone(),
        ext_ticket_id: ext.clone(),
        sends: vec![SentVersion {
            at: now,
            fingerprint: None,
            ext_response_id: None,
        }],
    });
    if record.service_request != id {
        record.service_request = id.clone();
    }
    if !resend {
        outcome
            .written
            .extend(write_sent(archive, tenant_id, month, record, None).await?);
        outcome.action = DeliveryAction::AlreadySent;
        outcome.note = format!(
            "already sent as {id}: nothing posted (send with resend: true to post this version as a response)"
        );
        return Ok(outcome);
    }
    if let Some(v) = record
        .sends
        .iter()
        .find(|v| v.fingerprint.as_deref() == Some(b.fingerprint.as_str()))
    {
        outcome.action = DeliveryAction::Unchanged;
        outcome.note = format!(
            "this exact version was sent to {id} at {}: nothing posted",
            v.at.to_rfc3339()
        );
        return Ok(outcome);
    }
    let ext_r = format!("{ext}-v{}", b.fingerprint);
    // A run that posted and then died before writing sent.json: do not post twice.
    if !delivery.has_response(&id, &ext_r).await? {
        delivery
            .add_response_with_attachment(&id, &resend_text(month, &file), &ext_r, &attachment)
            .await?;
    }
    record.sends.push(SentVersion {
        at: now,
        fingerprint: Some(b.fingerprint),
        ext_response_id: Some(ext_r),
    });
    outcome
        .written
        .extend(write_sent(archive, tenant_id, month, record, Some(b.html.as_bytes())).await?);
    outcome.action = DeliveryAction::Resent;
    outcome.note = format!("posted as a response on {id} with the new page attached");
    Ok(outcome)
}

async fn write_sent(
    archive: &dyn ReportArchive,
    tenant: &str,
    month: Month,
    record: &SentRecord,
    html: Option<&[u8]>,
) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    if let Some(h) = html {
        let k = key(tenant, month, "sent.html");
        archive.put(&k, h, CONTENT_HTML).await?;
        written.push(archive.location(&k));
    }
    let k = key(tenant, month, "sent.json");
    archive
        .put(&k, &serde_json::to_vec_pretty(record)?, CONTENT_JSON)
        .await?;
    written.push(archive.location(&k));
    Ok(written)
}

/// Drafts `month` for every registered tenant, `concurrency` at a time. One tenant's failure
/// does not stop the others: it is returned as `(tenant, error)` beside their outcomes.
pub async fn draft_all(
    store: Arc<dyn Store>,
    archive: Arc<dyn ReportArchive>,
    calendar: Calendar,
    now: DateTime<Utc>,
    month: Month,
    concurrency: usize,
) -> anyhow::Result<Vec<Result<DeliveryOutcome, (String, String)>>> {
    let tenants = store.list_tenants().await?;
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let calendar = Arc::new(calendar);
    let mut set = tokio::task::JoinSet::new();
    for t in tenants {
        let (store, archive, calendar, limit) = (
            store.clone(),
            archive.clone(),
            calendar.clone(),
            limit.clone(),
        );
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            draft(
                store.as_ref(),
                archive.as_ref(),
                &calendar,
                now,
                &t.id,
                month,
            )
            .await
            .map_err(|e| (t.id.clone(), format!("{e:#}")))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| anyhow!("monthly draft task failed: {e}"))?);
    }
    out.sort_by(|a, b| {
        let t = |r: &Result<DeliveryOutcome, (String, String)>| match r {
            Ok(o) => o.tenant.clone(),
            Err((t, _)) => t.clone(),
        };
        t(a).cmp(&t(b))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_query_and_file_safe() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(
            ext_ticket_id("kaede-shoji", m),
            "mss-kaede-shoji-report-202611"
        );
        assert_eq!(
            key("kaede-shoji", m, "report.html"),
            "kaede-shoji/2026-11/report.html"
        );
        assert_eq!(
            file_name("kaede-shoji", m),
            "mss-monthly-report-kaede-shoji-2026-11.html"
        );
    }

    #[test]
    fn due_is_the_end_of_support_hours_in_utc() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 14).unwrap();
        assert_eq!(
            due_at(d).format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
            "2026-12-14T08:30:00+0000"
        );
        assert_eq!(date_ja(d), "2026年12月14日（月）");
    }

    #[test]
    fn subject_is_one_clean_line() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(
            subject("楓商事株式会社", m),
            "【月次アドバイザリレポート】2026年11月 — 楓商事株式会社"
        );
        assert!(!subject("悪意\u{202e}ある\n社名", m).contains(['\u{202e}', '\n']));
    }
}
