//! Monthly report delivery through the real step, the real OpsRamp client and the simulator
//! over HTTPS, with the embedded store and a directory archive: a draft sends nothing; a send
//! makes exactly one service request with the page attached intact; a second send does
//! nothing; a resend posts the changed page once; the analyst's comment reaches the page
//! escaped; ambiguous OpsRamp failures never make a second request.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::*;
use mss_sim::{Endpoint, Fault, Sim};
use shared::adapters::opsramp::OpsRampClient;
use shared::adapters::report_archive::FsReportArchive;
use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::{Alert, Product};
use shared::domain::calendar::Calendar;
use shared::domain::monthly::Month;
use shared::domain::tenant::Tenant;
use shared::ports::Store;
use shared::steps::deliver_report::{
    self, Attachment, DeliveryAction, DeliveryOutcome, Mode, NewServiceRequest, ReportArchive,
    ReportDelivery,
};

const TENANT: &str = "tenant-a";

/// 01:00 JST on 2026-12-01, when the schedule drafts November.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T01:00:00+09:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn november() -> Month {
    Month::parse("2026-11").unwrap()
}

struct Rig {
    sim: Sim,
    store: Arc<SqliteStore>,
    archive: Arc<FsReportArchive>,
    ops: Arc<OpsRampClient>,
    cal: Calendar,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let sim = start_sim(vec![]).await;
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    store.put_tenant(&tenant(TENANT, AZ_A)).await.unwrap();
    for (id, h) in [("a1", 1), ("a2", 2), ("a3", 3)] {
        let a = Alert::from_value(alert(id, t(h, 0), MDE, AZ_A)).unwrap();
        store
            .put_alert_version(TENANT, Product::Mde, &a)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    Rig {
        ops: Arc::new(opsramp_client(&sim)),
        archive: Arc::new(FsReportArchive::new(dir.path().join("reports"))),
        sim,
        store,
        cal: Calendar::default(),
        _dir: dir,
    }
}

impl Rig {
    async fn run(&self, mode: Mode) -> anyhow::Result<DeliveryOutcome> {
        deliver_report::run(
            self.store.as_ref(),
            self.archive.as_ref(),
            self.ops.as_ref(),
            &self.cal,
            now(),
            TENANT,
            november(),
            mode,
        )
        .await
    }

    async fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.archive
            .get(&deliver_report::key(TENANT, november(), name))
            .await
            .unwrap()
    }

    async fn put_comment(&self, text: &[u8]) {
        self.archive
            .put(
                &deliver_report::key(TENANT, november(), "comment.txt"),
                text,
                "text/plain",
            )
            .await
            .unwrap();
    }
}

const SEND: Mode = Mode::Send { resend: false };
const RESEND: Mode = Mode::Send { resend: true };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_archived_and_nothing_is_sent() {
    let rig = rig().await;
    let o = rig.run(Mode::Draft).await.unwrap();
    assert_eq!(o.action, DeliveryAction::Drafted);
    assert_eq!(
        (o.month.as_str(), o.due_date.as_str()),
        ("2026-11", "2026-12-14")
    );
    assert!(!o.comment);
    assert_eq!(o.service_request, None);
    assert_eq!(o.written.len(), 2, "{o:?}");
    let html = String::from_utf8(rig.file("report.html").await.unwrap()).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    let numbers: serde_json::Value =
        serde_json::from_slice(&rig.file("report.json").await.unwrap()).unwrap();
    assert_eq!(numbers["tenant"], TENANT);
    assert_eq!(numbers["alerts"]["total"], 3);
    assert!(rig.file("sent.json").await.is_none());
    assert!(rig.sim.service_requests().is_empty());
    assert_eq!(
        rig.sim.stats().opsramp_requests,
        0,
        "a draft never calls OpsRamp"
    );

    // A rerun replaces the draft; same data, same fingerprint.
    let again = rig.run(Mode::Draft).await.unwrap();
    assert_eq!(again.fingerprint, o.fingerprint);
    assert!(rig.sim.service_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_once_then_nothing_then_resend_only_what_changed() {
    let rig = rig().await;
    rig.run(Mode::Draft).await.unwrap();

    // The send: one service request, mailed to the contacts, the page attached intact.
    let o = rig.run(SEND).await.unwrap();
    assert_eq!(o.action, DeliveryAction::Sent, "{o:?}");
    let srs = rig.sim.service_requests();
    assert_eq!(srs.len(), 1, "{srs:#?}");
    let sr = &srs[0];
    assert_eq!(o.service_request.as_deref(), Some(sr.id.as_str()));
    assert!(sr.id.starts_with("SRQ"), "{}", sr.id);
    // A report we sent is a notice, not a customer inquiry: the tracker leaves it alone.
    let open = shared::ports::Inquiries::open_inquiries(rig.ops.as_ref())
        .await
        .unwrap();
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(
        sr.subject,
        "【月次アドバイザリレポート】2026年11月 — テスト顧客 tenant-a"
    );
    assert_eq!(sr.to_email.as_deref(), Some("soc@tenant-a.example"));
    assert_eq!(
        sr.cc.as_deref(),
        Some("cio@tenant-a.example,it@tenant-a.example")
    );
    assert_eq!(
        sr.ext_ticket_id.as_deref(),
        Some("mss-tenant-a-report-202611")
    );
    // 17:30 JST on the 10th business day of December 2026 (Monday the 14th).
    assert_eq!(sr.raw["dueDate"], "2026-12-14T08:30:00+0000");
    for s in [
        "テスト顧客 tenant-a ご担当者様",
        "2026年11月1日（日）〜2026年11月30日（月）",
        "ご提出期限: 2026年12月14日（月）",
        "■ 総評（抜粋）\n・2026年11月は 3 件のアラートを検知し",
        "mss-monthly-report-tenant-a-2026-11.html",
        "ウェブブラウザ",
    ] {
        assert!(
            sr.description.contains(s),
            "{s:?} not in:\n{}",
            sr.description
        );
    }
    assert_eq!(sr.attachments.len(), 1);
    assert_eq!(
        sr.attachments[0].name,
        "mss-monthly-report-tenant-a-2026-11.html"
    );
    let sent_html = rig.file("sent.html").await.unwrap();
    assert_eq!(
        sr.attachments[0].bytes(),
        sent_html,
        "the file arrived intact"
    );
    assert_eq!(rig.file("report.html").await.unwrap(), sent_html);
    let rec: deliver_report::SentRecord =
        serde_json::from_slice(&rig.file("sent.json").await.unwrap()).unwrap();
    assert_eq!(rec.service_request, sr.id);
    assert_eq!(rec.sends.len(), 1);

    // A second send finds it and posts nothing.
    let o2 = rig.run(SEND).await.unwrap();
    assert_eq!(o2.action, DeliveryAction::AlreadySent, "{o2:?}");
    assert_eq!(o2.service_request.as_deref(), Some(sr.id.as_str()));
    // A resend of the same content posts nothing either.
    let o3 = rig.run(RESEND).await.unwrap();
    assert_eq!(o3.action, DeliveryAction::Unchanged, "{o3:?}");
    let srs = rig.sim.service_requests();
    assert_eq!(srs.len(), 1);
    assert!(srs[0].responses.is_empty(), "{:?}", srs[0].responses);

    // The analyst adds a comment (hostile markup included): the resend posts it once.
    rig.put_comment("\u{feff}<script>alert(1)</script>\r\n次回の定例会でご説明します。".as_bytes())
        .await;
    let o4 = rig.run(RESEND).await.unwrap();
    assert_eq!(o4.action, DeliveryAction::Resent, "{o4:?}");
    assert!(o4.comment);
    assert_ne!(o4.fingerprint, o.fingerprint);
    let srs = rig.sim.service_requests();
    assert_eq!(srs.len(), 1, "still one service request");
    let r = &srs[0].responses;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(!r[0].internal, "the customer is mailed the update");
    assert_eq!(
        r[0].ext_ticket_response_id.as_deref(),
        Some(format!("mss-tenant-a-report-202611-v{}", o4.fingerprint).as_str())
    );
    assert!(r[0].description.contains("再送"), "{}", r[0].description);
    assert_eq!(r[0].attachments.len(), 1);
    let new_html = rig.file("sent.html").await.unwrap();
    assert_eq!(r[0].attachments[0].bytes(), new_html);
    let page = String::from_utf8(new_html).unwrap();
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;\n次回の定例会でご説明します。"),
        "the comment, escaped"
    );
    assert!(!page.contains("<script>alert(1)"));
    assert!(!page.contains('\u{feff}'));

    // Asked again with nothing new: nothing posted.
    let o5 = rig.run(RESEND).await.unwrap();
    assert_eq!(o5.action, DeliveryAction::Unchanged, "{o5:?}");
    assert_eq!(rig.sim.service_requests()[0].responses.len(), 1);
    let rec: deliver_report::SentRecord =
        serde_json::from_slice(&rig.file("sent.json").await.unwrap()).unwrap();
    assert_eq!(rec.sends.len(), 2);

    // A later draft replaces report.html but says it was sent; sent.html is kept.
    let d = rig.run(Mode::Draft).await.unwrap();
    assert_eq!(d.service_request.as_deref(), Some(srs[0].id.as_str()));
    assert!(d.note.contains("already sent"), "{}", d.note);
    assert_eq!(rig.sim.service_requests()[0].responses.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_appears_escaped_in_the_sent_page() {
    let rig = rig().await;
    rig.put_comment(
        "侵害の兆候はありません。<b>重要</b> & 来月は MFA 展開をご提案します。".as_bytes(),
    )
    .await;
    let d = rig.run(Mode::Draft).await.unwrap();
    assert!(d.comment);
    let o = rig.run(SEND).await.unwrap();
    assert_eq!(o.action, DeliveryAction::Sent);
    let page = String::from_utf8(rig.sim.service_requests()[0].attachments[0].bytes()).unwrap();
    assert!(page.contains("担当アナリストからのコメント"));
    assert!(
        page.contains(
            "侵害の兆候はありません。&lt;b&gt;重要&lt;/b&gt; &amp; 来月は MFA 展開をご提案します。"
        ),
        "escaped comment missing"
    );
    assert!(!page.contains("<b>重要</b>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_comment_or_no_contacts_stops_before_anything_is_sent() {
    let rig = rig().await;
    rig.put_comment(&[0x82, 0xa0, 0x82, 0xa2]).await; // Shift_JIS "あい"
    let e = rig.run(SEND).await.unwrap_err();
    assert!(format!("{e:#}").contains("not UTF-8"), "{e:#}");
    rig.put_comment(b"").await;

    let lonely = Tenant::from_toml(&format!(
        "id = \"{TENANT}\"\nname = \"連絡先なし\"\nazure_tenant_id = \"{AZ_A}\"\nproducts = [\"mde\"]\n\
         [mde]\ndevice_groups = [\"*\"]\nincident_min_severity = \"medium\"\n"
    ))
    .unwrap();
    rig.store.put_tenant(&lonely).await.unwrap();
    let e = rig.run(SEND).await.unwrap_err();
    assert!(format!("{e:#}").contains("no contacts.to"), "{e:#}");
    assert!(rig.sim.service_requests().is_empty());
    assert_eq!(rig.sim.stats().opsramp_requests, 0);
}

/// A create answered 502 after OpsRamp made the request (a gateway error behind which the
/// backend acted) is found by extTicketId, not made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_create_is_searched_before_resending() {
    let rig = rig().await;
    let sr = NewServiceRequest {
        subject: "【月次アドバイザリレポート】2026年11月 — テスト".into(),
        description: "本文".into(),
        to_email: Some("soc@tenant-a.example".into()),
        cc: None,
        due: deliver_report::due_at(chrono::NaiveDate::from_ymd_opt(2026, 12, 14).unwrap()),
        ext_ticket_id: "mss-tenant-a-report-202611".into(),
        attachments: vec![Attachment {
            name: "r.html".into(),
            bytes: (0..=255u8).collect(),
        }],
    };
    // Stands for the request the failed POST really made.
    let made = rig.ops.create(&sr).await.unwrap();
    assert_eq!(
        rig.sim.service_requests()[0].attachments[0].bytes(),
        sr.attachments[0].bytes
    );
    rig.sim.set_fault(
        Endpoint::OpsRampCreate,
        Fault::ServerError {
            times: 1,
            status: 502,
        },
    );
    let before = rig.sim.stats().opsramp_requests;
    assert_eq!(rig.ops.create(&sr).await.unwrap(), made);
    assert_eq!(rig.sim.service_requests().len(), 1);
    assert_eq!(
        rig.sim.stats().opsramp_requests - before,
        2,
        "POST, then search"
    );
    // And the step, seeing it already there, sends nothing more.
    let o = rig.run(SEND).await.unwrap();
    assert_eq!(o.action, DeliveryAction::AlreadySent);
    assert_eq!(o.service_request.as_deref(), Some(made.as_str()));
    assert_eq!(rig.sim.service_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_before_any_effect_still_end_with_one_request_and_one_response() {
    let rig = rig().await;
    // 503 on the create (nothing made): search, POST again, one request.
    rig.sim.set_fault(
        Endpoint::OpsRampCreate,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    let o = rig.run(SEND).await.unwrap();
    assert_eq!(o.action, DeliveryAction::Sent);
    assert_eq!(rig.sim.service_requests().len(), 1);

    // 502 on the resend's response: looked up by extTicketResponseId, then posted once.
    rig.put_comment("追記".as_bytes()).await;
    rig.sim.set_fault(
        Endpoint::OpsRampResponse,
        Fault::ServerError {
            times: 1,
            status: 502,
        },
    );
    let o = rig.run(RESEND).await.unwrap();
    assert_eq!(o.action, DeliveryAction::Resent);
    let srs = rig.sim.service_requests();
    assert_eq!(srs.len(), 1);
    assert_eq!(srs[0].responses.len(), 1, "{:?}", srs[0].responses);
}

/// A create that times out on our side: the simulator drops a request its client gave up on,
/// so the search finds nothing and the second POST makes the one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_create_makes_one_request() {
    let rig = rig().await;
    let mut cfg = opsramp_config(&rig.sim);
    cfg.http.timeout = Duration::from_millis(400);
    let ops = OpsRampClient::new(cfg, opsramp_cred(OR_SECRET)).unwrap();
    ops.find("warm-up").await.unwrap();
    rig.sim.set_fault(
        Endpoint::OpsRampCreate,
        Fault::Latency {
            times: 1,
            millis: 800,
        },
    );
    let o = deliver_report::run(
        rig.store.as_ref(),
        rig.archive.as_ref(),
        &ops,
        &rig.cal,
        now(),
        TENANT,
        november(),
        SEND,
    )
    .await
    .unwrap();
    assert_eq!(o.action, DeliveryAction::Sent);
    let srs = rig.sim.service_requests();
    assert_eq!(srs.len(), 1, "{srs:#?}");
    assert_eq!(o.service_request.as_deref(), Some(srs[0].id.as_str()));
}

/// An archive that refuses one tenant's writes.
struct Flaky {
    inner: FsReportArchive,
    broken: &'static str,
}

#[async_trait]
impl ReportArchive for Flaky {
    async fn put(&self, key: &str, body: &[u8], ct: &str) -> anyhow::Result<()> {
        if key.starts_with(self.broken) {
            anyhow::bail!("disk full");
        }
        self.inner.put(key, body, ct).await
    }
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft_all_drafts_every_tenant_and_reports_the_failures() {
    let rig = rig().await;
    for id in ["tenant-b", "tenant-c"] {
        rig.store.put_tenant(&tenant(id, AZ_B)).await.unwrap();
    }
    let archive = Arc::new(Flaky {
        inner: FsReportArchive::new(rig.archive.root()),
        broken: "tenant-b/",
    });
    let out = deliver_report::draft_all(
        rig.store.clone(),
        archive,
        rig.cal.clone(),
        now(),
        november(),
        2,
    )
    .await
    .unwrap();
    let summary: Vec<String> = out
        .iter()
        .map(|r| match r {
            Ok(o) => format!("{} ok", o.tenant),
            Err((t, e)) => format!("{t} {e}"),
        })
        .collect();
    assert_eq!(summary.len(), 3);
    assert_eq!(summary[0], "tenant-a ok");
    assert!(
        summary[1].starts_with("tenant-b") && summary[1].contains("disk full"),
        "{summary:?}"
    );
    assert_eq!(summary[2], "tenant-c ok");
    assert!(rig.file("report.html").await.is_some());
    assert!(rig.sim.service_requests().is_empty());
}
