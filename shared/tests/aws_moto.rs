//! The cloud shape against real implementations of the AWS APIs (moto's server, started by
//! `scripts/test.sh`) and the HTTPS simulator: the store and queue conformance suites on
//! DynamoDB/S3/SQS, and the three Lambda handlers end to end with real `aws_lambda_events`
//! payloads, including duplicate delivery, a crash between intent and ticket, and racing
//! handlers.

mod moto;
use moto::endpoint;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::dynamodb::DynamoStore;
use shared::adapters::secrets::SecretStore;
use shared::adapters::sqs::{QueueUrls, SqsQueue};
use shared::domain::tenant::Tenant;
use shared::lambda::{self, CloudEnv};
use shared::messages::QueueName;
use shared::ports::Store;

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

struct Aws {
    sdk: aws_config::SdkConfig,
}

impl Aws {
    async fn new() -> Aws {
        let ep = endpoint();
        Aws {
            sdk: shared::adapters::aws::sdk_config(Some(&ep)).await,
        }
    }
    fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(lambda::s3_config(&self.sdk, true))
    }
    async fn table(&self) -> (String, String, Arc<DynamoStore>) {
        let table = unique("mss-test");
        let bucket = unique("mss-test-bodies");
        let s3 = self.s3();
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                    .build(),
            )
            .send()
            .await
            .expect("create bucket");
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &table,
            Some((s3, bucket.clone())),
        );
        store.create_table().await.expect("create table");
        (table, bucket, Arc::new(store))
    }
    async fn queues(&self, max_receive: u32) -> QueueUrls {
        SqsQueue::create_queues(
            &aws_sdk_sqs::Client::new(&self.sdk),
            &unique("mss-test"),
            60,
            max_receive,
        )
        .await
        .expect("create queues")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_store_conforms() {
    let aws = Aws::new().await;
    let (_, bucket, store) = aws.table().await;
    // (Not `decision_race_suite`: moto does not isolate concurrent transactions; see there.)
    shared::conformance::store_suite(store, "t1").await;
    // The incompressible 1 MB bodies went to S3, encrypted, under their tenant's prefix
    let objs = aws
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = objs
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    // (one stored alone, one in a batch of versions)
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].starts_with("bodies/t1-a/aa-big/"), "{keys:?}");
    assert!(keys[1].starts_with("bodies/t1-bt/b-big/"), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_conforms() {
    let aws = Aws::new().await;
    let urls = aws.queues(3).await;
    let mut q = SqsQueue::new(aws_sdk_sqs::Client::new(&aws.sdk), urls);
    q.retry_delay = std::time::Duration::ZERO;
    shared::conformance::queue_suite(Arc::new(q), "t1", 3).await;
}

// ---------------------------------------------------------------- Lambda handlers end to end

const KAEDE: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

fn alert(id: &str, at: &str, sev: &str, incident: &str, status: &str) -> Value {
    json!({"id": id, "lastUpdateDateTime": at, "createdDateTime": at, "serviceSource": "microsoftDefenderForIdentity",
        "severity": sev, "status": status, "title": format!("Alert {id}"), "tenantId": KAEDE, "incidentId": incident})
}

fn tenant() -> Tenant {
    Tenant::from_json_value(
        &json!({"id": "kaede-shoji", "name": "楓商事株式会社", "azure_tenant_id": KAEDE,
        "products": ["mdi"], "contacts": {"to": ["soc@kaede.example"]}, "mdi": {}}),
    )
    .unwrap()
}

/// Alert times relative to now: the functions run on the system clock.
fn base() -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    (chrono::Utc::now() - TimeDelta::hours(4))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

fn at(min: i64) -> String {
    (base() + chrono::TimeDelta::minutes(min)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn alerts() -> Vec<Value> {
    vec![
        alert("aa1", &at(10), "high", "100", "new"),
        alert("aa2", &at(20), "medium", "100", "new"),
        alert("aa1", &at(60), "high", "100", "inProgress"),
        alert("aa3", &at(30), "low", "101", "new"),
        alert("aa3", &at(120), "high", "101", "resolved"),
    ]
}

struct CloudRig {
    sim: Sim,
    cloud: lambda::Cloud,
    clock: Arc<shared::ports::ManualClock>,
    sqs: aws_sdk_sqs::Client,
    urls: QueueUrls,
    _dir: tempfile::TempDir,
}

async fn rig() -> CloudRig {
    let aws = Aws::new().await;
    let (table, bucket, store) = aws.table().await;
    let urls = aws.queues(5).await;
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: KAEDE.into(),
                client_id: "kaede-app".into(),
                client_secret: "s3cr3t-kaede".into(),
                alerts: alerts(),
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "s3cr3t-ops".into(),
            state_file: None,
            all_visible: false,
            start_clock: base() + chrono::TimeDelta::minutes(45),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let prefix = format!("{}/", unique("mss-test"));
    // Credentials live in Secrets Manager, as in production.
    let secrets = SecretStore::new(aws_sdk_secretsmanager::Client::new(&aws.sdk), &prefix);
    secrets
        .put(&secrets.azure_name("kaede-shoji"), &json!({"azure_tenant_id": KAEDE, "client_id": "kaede-app", "client_secret": "s3cr3t-kaede"}).to_string())
        .await
        .unwrap();
    secrets
        .put(
            &secrets.opsramp_name(),
            &json!({"client_id": "mss-soc", "client_secret": "s3cr3t-ops"}).to_string(),
        )
        .await
        .unwrap();
    store.put_tenant(&tenant()).await.unwrap();
    let env = CloudEnv {
        table,
        classify_queue_url: urls.classify.clone(),
        ticket_queue_url: urls.ticket.clone(),
        respond_queue_url: urls.respond.clone(),
        investigate_queue_url: None,
        check_queue_url: urls.check.clone(),
        bucket: Some(bucket),
        opsramp_base_url: sim.opsramp_base(),
        opsramp_tenant_id: "client_1234".into(),
        opsramp_token_path: None,
        secrets_prefix: prefix,
        tenant_credentials: Default::default(),
        graph_base: Some(sim.graph_base()),
        authority_host: Some(sim.authority_host()),
        extra_ca_file: Some(ca.display().to_string()),
        aws_endpoint_url: Some(endpoint()),
        classify_dlq_url: None,
        ticket_dlq_url: None,
        queue_retry_delay_s: None,
        mde_base: Some(sim.mde_base()),
        graph_beta_base: Some(sim.graph_beta_base()),
        respond_check_s: Some(1),
        fetch_concurrency: None,
    };
    let mut cloud = lambda::init(&env).await.expect("cold start");
    // One clock, injected: simulated time moves for Graph and for the functions together.
    let clock = shared::ports::ManualClock::new(base() + chrono::TimeDelta::minutes(45));
    cloud.deps.clock = clock.clone();
    CloudRig {
        sim,
        cloud,
        clock,
        sqs: aws_sdk_sqs::Client::new(&aws.sdk),
        urls,
        _dir: dir,
    }
}

impl CloudRig {
    /// Two scheduled runs: at base+45 min (first versions), then at base+3 h (updates).
    async fn fetch_in_two_steps(&self) -> u64 {
        let mut n = 0;
        for t in [45, 180] {
            let now = base() + chrono::TimeDelta::minutes(t);
            self.sim.set_clock(now);
            self.clock.set(now);
            let out = lambda::fetch_handler(&self.cloud.deps, schedule_event())
                .await
                .expect("fetch");
            n += out["new_versions"].as_u64().unwrap();
            self.drain().await;
        }
        n
    }

    fn url(&self, q: QueueName) -> &str {
        match q {
            QueueName::Classify => &self.urls.classify,
            QueueName::Ticket => &self.urls.ticket,
            QueueName::Respond => self.urls.respond.as_deref().unwrap_or_default(),
            QueueName::Check => self.urls.check.as_deref().unwrap_or_default(),
            QueueName::Investigate => self.urls.investigate.as_deref().unwrap_or_default(),
        }
    }

    /// What the SQS event source mapping does: receive a batch, hand it to the function as an
    /// `SqsEvent`, delete the records not reported as failures.
    async fn deliver(&self, q: QueueName) -> (usize, Value) {
        let r = self
            .sqs
            .receive_message()
            .queue_url(self.url(q))
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return (0, json!({"batchItemFailures": []}));
        }
        let event = sqs_event(&msgs, self.url(q));
        let resp = lambda::queue_handler(&self.cloud.deps, q, event)
            .await
            .expect("handler");
        let failed: Vec<String> = resp["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
            .collect();
        for m in &msgs {
            if !failed.contains(&m.message_id.clone().unwrap()) {
                self.sqs
                    .delete_message()
                    .queue_url(self.url(q))
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        (msgs.len(), resp)
    }

    async fn drain(&self) {
        loop {
            let (a, _) = self.deliver(QueueName::Classify).await;
            let (b, _) = self.deliver(QueueName::Ticket).await;
            if a + b == 0 {
                return;
            }
        }
    }
}

/// A real SQS → Lambda event, as AWS sends it.
fn sqs_event(msgs: &[aws_sdk_sqs::types::Message], url: &str) -> Value {
    let records: Vec<Value> = msgs.iter().map(|m| json!({
        "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1762041600000", "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1762041600001"},
        "messageAttributes": {}, "md5OfBody": m.md5_of_body, "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:ap-northeast-1:123456789012:{}", url.rsplit('/').next().unwrap()),
        "awsRegion": "ap-northeast-1"
    })).collect();
    json!({"Records": records})
}

/// The EventBridge Scheduler payload the template sends (a fixed JSON input).
fn schedule_event() -> Value {
    json!({"source": "mss.schedule", "detail-type": "fetch-alerts"})
}

fn tickets_summary(sim: &Sim) -> BTreeMap<String, (String, String, u32)> {
    sim.tickets()
        .into_iter()
        .map(|t| {
            (
                t.ext_ticket_id.clone().unwrap(),
                (t.subject, t.priority, t.updates),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_run_the_pipeline_and_match_the_embedded_result() {
    let rig = rig().await;
    assert_eq!(rig.fetch_in_two_steps().await, 5);
    let cloud = tickets_summary(&rig.sim);

    // The same data through the embedded backend gives the same tickets.
    let sim2 = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: KAEDE.into(),
                client_id: "kaede-app".into(),
                client_secret: "x".into(),
                alerts: alerts(),
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "y".into(),
            state_file: None,
            all_visible: false,
            start_clock: base() + chrono::TimeDelta::minutes(45),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let store = Arc::new(shared::adapters::sqlite::SqliteStore::in_memory().unwrap());
    store.put_tenant(&tenant()).await.unwrap();
    let http = shared::adapters::http::HttpSettings {
        extra_ca_pem: Some(sim2.ca_pem()),
        ..Default::default()
    };
    let graph = shared::adapters::graph::GraphClient::new(
        shared::adapters::graph::GraphConfig {
            graph_base: sim2.graph_base(),
            authority_host: sim2.authority_host(),
            http: http.clone(),
            ..Default::default()
        },
        vec![shared::adapters::graph::AzureAppCredential {
            tenant: "kaede-shoji".into(),
            azure_tenant_id: KAEDE.into(),
            client_id: "kaede-app".into(),
            client_secret: shared::adapters::graph::Secret::new("x".to_string()),
        }],
    )
    .unwrap();
    let mut oc = shared::adapters::opsramp::OpsRampConfig::new(&sim2.opsramp_base(), "client_1234");
    oc.http = http;
    let tickets = shared::adapters::opsramp::OpsRampClient::new(
        oc,
        shared::adapters::opsramp::OpsRampCredential {
            client_id: "mss-soc".into(),
            client_secret: shared::adapters::graph::Secret::new("y".to_string()),
        },
    )
    .unwrap();
    let deps = shared::steps::Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets: Arc::new(tickets),
        clock: rig.clock.clone(),
        settings: Default::default(),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    for t in [45, 180] {
        let now = base() + chrono::TimeDelta::minutes(t);
        sim2.set_clock(now);
        rig.clock.set(now);
        for r in shared::steps::fetch::run_all(&deps).await.unwrap() {
            r.unwrap();
        }
        shared::runner::drain(&deps).await.unwrap();
    }
    assert_eq!(cloud, tickets_summary(&sim2), "cloud and embedded disagree");
    assert_eq!(cloud.len(), 2);
    let inc100 = &cloud["mss-kaede-shoji-inc-100"];
    assert_eq!(
        (inc100.0.as_str(), inc100.1.as_str(), inc100.2),
        ("【重大度: 高】Alert aa1", "Urgent", 2)
    );
    let inc101 = &cloud["mss-kaede-shoji-inc-101"];
    assert_eq!(
        (inc101.0.as_str(), inc101.2),
        ("【重大度: 高】Alert aa3", 2),
        "severity raised (update) + resolved note"
    );

    // Decisions and alerts landed in DynamoDB under the tenant.
    let d = rig.cloud.store.list_decisions("kaede-shoji").await.unwrap();
    assert_eq!(d.len(), 3);

    // A second scheduled run finds nothing new; a manual run for one tenant works too.
    let again = lambda::fetch_handler(&rig.cloud.deps, schedule_event())
        .await
        .unwrap();
    assert_eq!(again["new_versions"], 0);
    let manual = lambda::fetch_handler(
        &rig.cloud.deps,
        json!({"tenant": "kaede-shoji", "product": "mdi"}),
    )
    .await
    .unwrap();
    assert_eq!(manual["fetched"][0]["product"], "mdi");
    assert!(
        lambda::fetch_handler(&rig.cloud.deps, json!({"tenant": "nobody"}))
            .await
            .unwrap_err()
            .to_string()
            .contains("not registered")
    );
    sim2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_delivery_crash_and_races_end_with_one_ticket() {
    let rig = rig().await;
    let now = base() + chrono::TimeDelta::minutes(180);
    rig.sim.set_clock(now);
    rig.clock.set(now);
    lambda::fetch_handler(&rig.cloud.deps, schedule_event())
        .await
        .unwrap();
    // The fetch classified everything and queued the incidents: nothing waits for classify.
    assert_eq!(rig.deliver(QueueName::Classify).await.0, 0);
    let r = rig
        .sqs
        .receive_message()
        .queue_url(&rig.urls.ticket)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let msgs = r.messages.unwrap_or_default();
    assert_eq!(msgs.len(), 3, "latest versions of aa1, aa2, aa3");
    let event = sqs_event(&msgs, &rig.urls.ticket);

    // 1. A crash between the intent record and the OpsRamp call, for incident 100: the intent
    //    exists, and (worse) the ticket was created but its id never recorded.
    let first: Value = serde_json::from_str(
        msgs.iter()
            .find(|m| m.body.as_deref().unwrap().contains("\"aa1\""))
            .unwrap()
            .body
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    rig.cloud
        .store
        .create_incident_intent(&shared::ports::IncidentRecord {
            tenant: "kaede-shoji".into(),
            key: "incident:100".into(),
            ticket_id: None,
            creator_alert: "aa1".into(),
            creator_version: first["last_update"].as_str().unwrap().parse().unwrap(),
            severity: shared::domain::severity::Severity::High,
            intent_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    rig.cloud
        .deps
        .tickets
        .create(&shared::ports::NewTicket {
            subject: "【重大度: 高】Alert aa1".into(),
            description: "made before the crash".into(),
            priority: "Urgent".into(),
            ext_ticket_id: shared::adapters::opsramp::ext_ticket_id("kaede-shoji", "incident:100"),
            to_email: None,
            cc: None,
        })
        .await
        .unwrap();

    // 2. The same batch delivered twice, by two handler invocations racing each other.
    let (a, b) = tokio::join!(
        lambda::queue_handler(&rig.cloud.deps, QueueName::Ticket, event.clone()),
        lambda::queue_handler(&rig.cloud.deps, QueueName::Ticket, event.clone()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Racers may ask for a retry (the other holds the intent); the retry must then succeed.
    for resp in [a, b] {
        if !resp["batchItemFailures"].as_array().unwrap().is_empty() {
            let again = lambda::queue_handler(&rig.cloud.deps, QueueName::Ticket, event.clone())
                .await
                .unwrap();
            assert!(
                again["batchItemFailures"].as_array().unwrap().is_empty(),
                "{again}"
            );
        }
    }
    // 3. And once more, as SQS may do.
    let c = lambda::queue_handler(&rig.cloud.deps, QueueName::Ticket, event)
        .await
        .unwrap();
    assert!(c["batchItemFailures"].as_array().unwrap().is_empty(), "{c}");

    let tickets = rig.sim.tickets();
    assert_eq!(
        tickets.len(),
        2,
        "one ticket per incident: {:?}",
        tickets.iter().map(|t| &t.ext_ticket_id).collect::<Vec<_>>()
    );
    let t100 = tickets
        .iter()
        .find(|t| t.ext_ticket_id.as_deref() == Some("mss-kaede-shoji-inc-100"))
        .unwrap();
    assert_eq!(
        t100.description, "made before the crash",
        "the crashed ticket was found, not replaced"
    );
    // The found ticket is aa1's; aa2 joined: one note, once, whatever the duplication.
    assert_eq!(t100.responses.len(), 1, "{:#?}", t100.responses);
    assert!(t100.responses[0]
        .description
        .starts_with("【アラート追加】"));
    let t101 = tickets
        .iter()
        .find(|t| t.ext_ticket_id.as_deref() == Some("mss-kaede-shoji-inc-101"))
        .unwrap();
    assert_eq!(t101.responses.len(), 0, "{:#?}", t101.responses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_fails_alone_and_manual_invocations_work() {
    let rig = rig().await;
    lambda::fetch_handler(&rig.cloud.deps, schedule_event())
        .await
        .unwrap();
    // The fetch classified the versions itself and queued the incidents for the ticket step;
    // the same references, as an operator's rerun puts them on the classify queue.
    let r = rig
        .sqs
        .receive_message()
        .queue_url(&rig.urls.ticket)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let msgs = r.messages.unwrap_or_default();
    assert!(!msgs.is_empty(), "the fetch queued its incidents");
    let mut event = sqs_event(&msgs, &rig.urls.classify);
    let n = event["Records"].as_array().unwrap().len();
    let mut bad = event["Records"][0].clone();
    bad["messageId"] = json!("bad-1");
    bad["body"] = json!("{not json");
    event["Records"].as_array_mut().unwrap().push(bad);
    let resp = lambda::queue_handler(&rig.cloud.deps, QueueName::Classify, event)
        .await
        .unwrap();
    assert_eq!(
        resp,
        json!({"batchItemFailures": [{"itemIdentifier": "bad-1"}]}),
        "only the bad record fails ({n} good)"
    );

    // Manual classify of one stored version returns its decision.
    let body: Value = serde_json::from_str(msgs[0].body.as_deref().unwrap()).unwrap();
    let out = lambda::queue_handler(&rig.cloud.deps, QueueName::Classify,
        json!({"tenant": body["tenant"], "alert_id": body["alert_id"], "last_update": body["last_update"]})).await.unwrap();
    assert_eq!(out["decision"]["kind"], "incident");
    let err = lambda::queue_handler(
        &rig.cloud.deps,
        QueueName::Ticket,
        json!({"tenant": "kaede-shoji"}),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("manual payload"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_inquiries_handler_reminds_and_escalates_once_on_dynamodb() {
    let rig = rig().await;
    // File an inquiry in the simulated OpsRamp, as the service desk would.
    let settings = shared::adapters::http::HttpSettings {
        extra_ca_pem: Some(rig.sim.ca_pem()),
        ..Default::default()
    };
    let http = shared::adapters::http::build_client(&settings).unwrap();
    let tok: Value = http
        .post(format!(
            "{}/tenancy/auth/oauth/token",
            rig.sim.opsramp_base()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "mss-soc"),
            ("client_secret", "s3cr3t-ops"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sr: Value = http
        .post(format!("{}/api/v2/tenants/client_1234/serviceRequests", rig.sim.opsramp_base()))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .json(&json!({"subject": "業務停止", "description": "メールが送れない",
            "customFields": [{"name": "mss_tenant", "value": "kaede-shoji"}, {"name": "inquiry_kind", "value": "業務影響"}],
            "simReceivedAt": "2026-11-25T10:00:00+09:00"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sr["id"].as_str().unwrap().to_string();
    let cal = shared::domain::calendar::Calendar::default();
    let run = |t: &str| {
        rig.clock.set(
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .with_timezone(&chrono::Utc),
        );
        lambda::inquiries_handler(&rig.cloud, &cal)
    };
    let o = run("2026-11-25T16:00:00+09:00").await.unwrap();
    assert_eq!(
        (o["due_set"].as_u64(), o["reminded"].as_u64()),
        (Some(1), Some(1)),
        "{o}"
    );
    let o = run("2026-11-25T16:05:00+09:00").await.unwrap();
    assert_eq!(o["reminded"], 0, "{o}");
    let o = run("2026-11-25T17:35:00+09:00").await.unwrap();
    assert_eq!(o["escalated"], 1, "{o}");
    run("2026-11-25T17:40:00+09:00").await.unwrap();
    let s = rig
        .sim
        .service_requests()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap();
    assert_eq!(s.responses.len(), 2, "{:?}", s.responses);
    assert_eq!(s.raw["dueDate"], "2026-11-25T08:30:00+0000");
    // The markers live in DynamoDB under the tenant.
    assert_eq!(
        rig.cloud
            .store
            .once_begin("kaede-shoji", &format!("inquiry:{id}:remind"))
            .await
            .unwrap(),
        shared::ports::OnceState::Done
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_handler_isolates_and_tracks_through_sqs() {
    let rig = rig().await;
    let t = Tenant::from_json_value(&json!({"id": "kaede-shoji", "name": "楓商事株式会社", "azure_tenant_id": KAEDE,
        "products": ["mdi", "mde"], "mdi": {}, "mde": {"device_groups": ["*"], "incident_min_severity": "medium"},
        "response": {"mde": {"isolate": "auto", "scan": "off"}}}))
    .unwrap();
    rig.cloud.store.put_tenant(&t).await.unwrap();
    rig.sim.add_devices(
        KAEDE,
        vec![
            json!({"id": "d1", "computerDnsName": "d1.kaede.local", "osPlatform": "Windows11",
        "version": "23H2", "rbacGroupName": "東京本社PC", "machineTags": []}),
        ],
    );
    let a = shared::domain::alert::Alert::from_value(json!({"id": "da-600", "lastUpdateDateTime": at(50),
        "serviceSource": "microsoftDefenderForEndpoint", "severity": "high", "title": "Ransomware", "tenantId": KAEDE,
        "incidentId": "600", "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "d1", "rbacGroupName": "東京本社PC"}]}))
    .unwrap();
    rig.cloud
        .store
        .put_alert_version("kaede-shoji", shared::domain::alert::Product::Mde, &a)
        .await
        .unwrap();
    // The ticket step (manual invocation) opens the ticket and queues first response.
    let out = lambda::queue_handler(
        &rig.cloud.deps,
        QueueName::Ticket,
        json!({"tenant": "kaede-shoji", "alert_id": "da-600", "last_update": at(50)}),
    )
    .await
    .unwrap();
    assert!(
        out["ticket_id"].as_str().unwrap().starts_with("INC"),
        "{out}"
    );
    let (n, resp) = rig.deliver(QueueName::Respond).await;
    assert_eq!(
        (n, resp["batchItemFailures"].as_array().unwrap().len()),
        (1, 0),
        "{resp}"
    );
    assert_eq!(rig.sim.machine_actions().len(), 1);
    // The machine action completes a few simulated minutes later; the delayed check sees it.
    let later = base() + chrono::TimeDelta::minutes(60);
    rig.sim.set_clock(later);
    rig.clock.set(later);
    let mut status = String::new();
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        rig.deliver(QueueName::Check).await;
        let recs = rig.cloud.store.list_actions("kaede-shoji").await.unwrap();
        status = recs[0].status.as_str().to_string();
        if status == "succeeded" {
            break;
        }
    }
    assert_eq!(status, "succeeded");
    assert_eq!(
        rig.sim.machine_actions().len(),
        1,
        "tracked, never requested twice"
    );
    // The operator's release through the same function, by manual payload.
    let rel = lambda::respond_handler(&rig.cloud.deps, json!({"release": {"tenant": "kaede-shoji", "device": "d1", "reason": "誤検知", "by": "suzuki"}}))
        .await
        .unwrap();
    assert_eq!(rel["kind"], "unisolate");
    assert!(
        lambda::respond_handler(
            &rig.cloud.deps,
            json!({"approve": {"tenant": "kaede-shoji", "incident": "600", "by": "x"}})
        )
        .await
        .is_err(),
        "nothing to approve"
    );
}
