//! Monthly reports in the cloud shape, on moto's server (`MSS_TEST_AWS_ENDPOINT`, started by
//! `scripts/test.sh`) and the HTTPS simulator: the S3 archive writes with SSE-S3 and the right
//! content types and reads back; the monthly-report handler drafts every tenant on the
//! schedule's payload (reporting the tenants that failed after the others ran), drafts and
//! sends one by hand, and a second send does nothing.

mod moto;
use moto::endpoint;

use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::report_archive::S3ReportArchive;
use shared::adapters::secrets::SecretStore;
use shared::adapters::sqs::SqsQueue;
use shared::domain::alert::{Alert, Product};
use shared::domain::tenant::Tenant;
use shared::lambda::{self, CloudEnv};
use shared::ports::Store;
use shared::steps::deliver_report::ReportArchive;

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

async fn sdk() -> aws_config::SdkConfig {
    shared::adapters::aws::sdk_config(Some(&endpoint())).await
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(lambda::s3_config(sdk, true))
}

async fn bucket(s3: &aws_sdk_s3::Client) -> String {
    let b = unique("mss-test-reports");
    s3.create_bucket()
        .bucket(&b)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive_writes_with_sse_and_reads_back() {
    let sdk = sdk().await;
    let s3 = s3(&sdk);
    let b = bucket(&s3).await;
    let a = S3ReportArchive::new(s3.clone(), &b, None);
    let html = "<!DOCTYPE html><p>月次アドバイザリレポート</p>".as_bytes();
    a.put(
        "kaede-shoji/2026-11/report.html",
        html,
        "text/html; charset=utf-8",
    )
    .await
    .unwrap();
    a.put("kaede-shoji/2026-11/report.json", b"{}", "application/json")
        .await
        .unwrap();
    for (k, ct) in [
        (
            "reports/kaede-shoji/2026-11/report.html",
            "text/html; charset=utf-8",
        ),
        (
            "reports/kaede-shoji/2026-11/report.json",
            "application/json",
        ),
    ] {
        let h = s3.head_object().bucket(&b).key(k).send().await.unwrap();
        assert_eq!(
            h.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256),
            "{k}"
        );
        assert_eq!(h.content_type(), Some(ct), "{k}");
    }
    assert_eq!(
        a.get("kaede-shoji/2026-11/report.html")
            .await
            .unwrap()
            .as_deref(),
        Some(html)
    );
    assert_eq!(
        a.get("kaede-shoji/2026-11/comment.txt").await.unwrap(),
        None
    );
    assert_eq!(
        a.location("kaede-shoji/2026-11/report.html"),
        format!("s3://{b}/reports/kaede-shoji/2026-11/report.html")
    );
    assert!(a.put("../bodies/x", b"x", "text/plain").await.is_err());
    // A prefix of one's own (MSS_REPORTS_PREFIX), with or without its slash.
    let p = S3ReportArchive::new(s3.clone(), &b, Some("other"));
    p.put("t/2026-11/report.json", b"[]", "application/json")
        .await
        .unwrap();
    assert!(s3
        .head_object()
        .bucket(&b)
        .key("other/t/2026-11/report.json")
        .send()
        .await
        .is_ok());
}

// ---------------------------------------------------------------- the handler end to end

const KAEDE: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const AOBA: &str = "7a2d3e4f-5b6c-4d7e-8f90-1a2b3c4d5e6f";

fn tenant(id: &str, name: &str, azure: &str) -> Tenant {
    Tenant::from_json_value(&json!({"id": id, "name": name, "azure_tenant_id": azure,
        "products": ["mdi"], "contacts": {"to": [format!("soc@{id}.example")]}, "mdi": {}}))
    .unwrap()
}

fn alert(id: &str, at: &str, azure: &str) -> Alert {
    Alert::from_value(
        json!({"id": id, "lastUpdateDateTime": at, "createdDateTime": at,
        "serviceSource": "microsoftDefenderForIdentity", "severity": "medium", "status": "new",
        "title": format!("Alert {id}"), "tenantId": azure, "incidentId": "1"}),
    )
    .unwrap()
}

struct Rig {
    sim: Sim,
    cloud: lambda::Cloud,
    reports: lambda::Reports,
    s3: aws_sdk_s3::Client,
    bucket: String,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let sdk = sdk().await;
    let s3c = s3(&sdk);
    let bucket = bucket(&s3c).await;
    let table = unique("mss-test");
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &table,
        Some((s3c.clone(), bucket.clone())),
    );
    store.create_table().await.unwrap();
    let urls = SqsQueue::create_queues(&aws_sdk_sqs::Client::new(&sdk), &unique("mss-test"), 60, 5)
        .await
        .unwrap();
    let sim = Sim::start(
        SimConfig {
            tenants: vec![],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "s3cr3t-ops".into(),
            state_file: None,
            all_visible: true,
            start_clock: chrono::Utc::now(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let prefix = format!("{}/", unique("mss-test"));
    let secrets = SecretStore::new(aws_sdk_secretsmanager::Client::new(&sdk), &prefix);
    secrets
        .put(
            &secrets.opsramp_name(),
            &json!({"client_id": "mss-soc", "client_secret": "s3cr3t-ops"}).to_string(),
        )
        .await
        .unwrap();
    let env = CloudEnv {
        table,
        classify_queue_url: urls.classify.clone(),
        ticket_queue_url: urls.ticket.clone(),
        respond_queue_url: None,
        check_queue_url: None,
        investigate_queue_url: None,
        bucket: Some(bucket.clone()),
        opsramp_base_url: sim.opsramp_base(),
        opsramp_tenant_id: "client_1234".into(),
        opsramp_token_path: None,
        secrets_prefix: prefix,
        tenant_credentials: Default::default(),
        graph_base: None,
        authority_host: None,
        extra_ca_file: Some(ca.display().to_string()),
        aws_endpoint_url: Some(endpoint()),
        classify_dlq_url: None,
        ticket_dlq_url: None,
        queue_retry_delay_s: None,
        mde_base: None,
        graph_beta_base: None,
        respond_check_s: None,
        fetch_concurrency: None,
    };
    let mut cloud = lambda::init(&env).await.expect("cold start");
    let reports = lambda::reports_init(&env).await.expect("reports");
    // 01:00 JST on the 1st, when the schedule fires.
    cloud.deps.clock = shared::ports::ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-12-01T01:00:00+09:00")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    for (id, name, az) in [
        ("kaede-shoji", "楓商事株式会社", KAEDE),
        ("aoba-bank", "青葉銀行", AOBA),
    ] {
        cloud.store.put_tenant(&tenant(id, name, az)).await.unwrap();
        for (a, at) in [
            ("x1", "2026-11-03T01:00:00Z"),
            ("x2", "2026-11-20T01:00:00Z"),
        ] {
            cloud
                .store
                .put_alert_version(id, Product::Mdi, &alert(&format!("{id}-{a}"), at, az))
                .await
                .unwrap();
        }
    }
    Rig {
        sim,
        cloud,
        reports,
        s3: s3c,
        bucket,
        _dir: dir,
    }
}

impl Rig {
    async fn call(&self, payload: Value) -> anyhow::Result<Value> {
        lambda::monthly_handler(&self.cloud, &self.reports, payload).await
    }

    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let o = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(o.body.collect().await.unwrap().into_bytes().to_vec())
    }

    async fn put_object(&self, key: &str, body: &[u8]) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_handler_drafts_on_schedule_and_sends_once_by_hand() {
    let rig = rig().await;

    // The schedule: last month (JST) of every tenant, nothing sent.
    let out = rig.call(json!({"source": "mss.schedule"})).await.unwrap();
    assert_eq!(out["month"], "2026-11", "{out}");
    let drafted = out["drafted"].as_array().unwrap();
    assert_eq!(drafted.len(), 2, "{out}");
    assert!(drafted.iter().all(|o| o["action"] == "drafted"), "{out}");
    for t in ["kaede-shoji", "aoba-bank"] {
        let h = rig
            .s3
            .head_object()
            .bucket(&rig.bucket)
            .key(format!("reports/{t}/2026-11/report.html"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            h.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
        );
        let json: Value = serde_json::from_slice(
            &rig.object(&format!("reports/{t}/2026-11/report.json"))
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["alerts"]["total"], 2, "{t}");
    }
    assert!(rig.sim.service_requests().is_empty());

    // The analyst's comment, then a manual draft and the send.
    rig.put_object(
        "reports/kaede-shoji/2026-11/comment.txt",
        "今月は MDI の検知が 2 件ありました。".as_bytes(),
    )
    .await;
    let d = rig
        .call(json!({"tenant": "kaede-shoji", "month": "2026-11"}))
        .await
        .unwrap();
    assert_eq!(
        (d["action"].as_str(), d["comment"].as_bool()),
        (Some("drafted"), Some(true)),
        "{d}"
    );
    let s = rig
        .call(json!({"send": {"tenant": "kaede-shoji", "month": "2026-11"}}))
        .await
        .unwrap();
    assert_eq!(s["action"], "sent", "{s}");
    let srs = rig.sim.service_requests();
    assert_eq!(srs.len(), 1);
    assert_eq!(s["service_request"], srs[0].id.as_str());
    assert_eq!(
        srs[0].subject,
        "【月次アドバイザリレポート】2026年11月 — 楓商事株式会社"
    );
    assert_eq!(srs[0].to_email.as_deref(), Some("soc@kaede-shoji.example"));
    let sent = rig
        .object("reports/kaede-shoji/2026-11/sent.html")
        .await
        .unwrap();
    assert_eq!(srs[0].attachments[0].bytes(), sent);
    assert!(String::from_utf8(sent)
        .unwrap()
        .contains("今月は MDI の検知が 2 件ありました。"));

    // Again: nothing posted.
    let again = rig
        .call(json!({"send": {"tenant": "kaede-shoji", "month": "2026-11", "resend": false}}))
        .await
        .unwrap();
    assert_eq!(again["action"], "already_sent", "{again}");
    assert_eq!(rig.sim.service_requests().len(), 1);
    assert!(rig.sim.service_requests()[0].responses.is_empty());

    // Bad payloads say what is expected.
    let e = rig
        .call(json!({"send": {"tenant": "kaede-shoji"}}))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("send payload"), "{e:#}");
    let e = rig
        .call(json!({"tenant": "nobody", "month": "2026-11"}))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("not registered"), "{e:#}");
    let e = rig
        .call(json!({"tenant": "kaede-shoji", "month": "2026-13"}))
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("not a month"), "{e:#}");

    // One tenant failing (an unreadable comment) does not stop the other; the run fails
    // afterwards, naming it, so the Errors alarm fires.
    rig.put_object("reports/aoba-bank/2026-11/comment.txt", &[0xff, 0xfe, 0x00])
        .await;
    let before = rig
        .s3
        .head_object()
        .bucket(&rig.bucket)
        .key("reports/kaede-shoji/2026-11/report.json")
        .send()
        .await
        .unwrap()
        .last_modified()
        .cloned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let e = rig
        .call(json!({"source": "mss.schedule"}))
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("1 monthly draft(s) of 2026-11 failed (1 drafted)")
            && msg.contains("aoba-bank"),
        "{msg}"
    );
    let after = rig
        .s3
        .head_object()
        .bucket(&rig.bucket)
        .key("reports/kaede-shoji/2026-11/report.json")
        .send()
        .await
        .unwrap()
        .last_modified()
        .cloned();
    assert_ne!(before, after, "the other tenant was drafted again");
    assert_eq!(
        rig.sim.service_requests().len(),
        1,
        "the schedule never sends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_sees_the_reports_numbers() {
    // The numbers are also kept with the tenant (next month compares with them).
    let rig = rig().await;
    rig.call(json!({"tenant": "aoba-bank", "month": "2026-11"}))
        .await
        .unwrap();
    let doc = rig
        .cloud
        .store
        .get_doc("aoba-bank", "monthly", "2026-11")
        .await
        .unwrap()
        .expect("stored numbers");
    let v: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["tenant"], "aoba-bank");
}
