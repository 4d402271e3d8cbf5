//! Issue 11's round-trip budget of the cloud shape, on the wire: ingest + classify of a few
//! hundred alert versions (two fetch rounds: first versions, then updates) against moto's
//! DynamoDB and SQS, every HTTP request the SDK sends counted by an interceptor. At most 0.2
//! DynamoDB and 0.15 SQS requests per alert version — and the cheap path still does the
//! work: every version stored, every decision the classifier's, every incident version on
//! the ticket queue.
//!
//! Needs moto's server (`./scripts/test.sh` starts it; or `scripts/moto-server.sh start` and
//! MSS_TEST_AWS_ENDPOINT=<its URL>).

mod moto;
use moto::endpoint;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::request_count::RequestCounter;
use shared::adapters::sqs::SqsQueue;
use shared::domain::alert::{Alert, Product};
use shared::domain::classify::{classify, DecisionKind};
use shared::domain::tenant::Tenant;
use shared::messages::{AlertRef, QueueName};
use shared::ports::{ManualClock, Queue, Store};
use shared::steps::{fetch, Deps};

const AZURE: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

fn tenant() -> Tenant {
    Tenant::from_json_value(
        &json!({"id": "calls", "name": "呼出回数", "azure_tenant_id": AZURE,
        "products": ["mde", "mdi"], "mdi": {},
        "mde": {"device_groups": ["東京本社PC"], "incident_min_severity": "high"}}),
    )
    .unwrap()
}

fn start() -> DateTime<Utc> {
    "2026-11-02T00:00:00Z".parse().unwrap()
}

/// 300 versions: 200 alerts (MDE of three kinds of outcome, some MDI), the first 100 of
/// them updated in the second hour. Bodies of a realistic size (evidence, ~2 KB).
fn versions() -> Vec<Value> {
    let groups = ["東京本社PC", "大阪支社PC"];
    let sevs = ["low", "medium", "high"];
    let one = |n: usize, at: DateTime<Utc>, sev: &str| -> Value {
        let mdi = n % 5 == 0;
        json!({"id": format!("{}{n:05}", if mdi { "ai" } else { "da" }),
            "lastUpdateDateTime": at.to_rfc3339(), "createdDateTime": start().to_rfc3339(),
            "serviceSource": if mdi { "microsoftDefenderForIdentity" } else { "microsoftDefenderForEndpoint" },
            "severity": sev, "status": "new", "title": format!("不審なプロセスの実行 {n}"), "tenantId": AZURE,
            "incidentId": (7000 + n / 3).to_string(), "category": "Execution",
            "description": "A process executed a suspicious command line. ".repeat(12),
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence",
                "mdeDeviceId": format!("{n:040x}"), "deviceDnsName": format!("pc-{n}.corp.example"),
                "rbacGroupName": groups[n % 2], "osPlatform": "Windows11"},
              {"@odata.type": "#microsoft.graph.security.userEvidence",
                "userAccount": {"userPrincipalName": format!("user{n}@corp.example"), "accountName": format!("user{n}")}}]})
    };
    let mut out = Vec::new();
    for n in 0..200 {
        out.push(one(
            n,
            start() + Duration::seconds(15 * n as i64),
            sevs[n % 3],
        ));
    }
    for n in 0..100 {
        out.push(one(
            n,
            start() + Duration::minutes(60) + Duration::seconds(30 * n as i64),
            sevs[(n + 1) % 3],
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_and_classify_stay_within_the_round_trip_budget() {
    let ep = endpoint();
    let name = format!("mss-calls-{}", std::process::id());
    let prov = shared::lambda::provision_emulator(&ep, &name)
        .await
        .expect("provision moto");
    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let counter = RequestCounter::new();
    let store = Arc::new(shared::adapters::dynamodb::DynamoStore::new(
        counter.dynamodb(&sdk),
        &prov.table,
        Some((counter.s3(&sdk, true), prov.bucket.clone())),
    ));
    let queue = Arc::new(SqsQueue::new(counter.sqs(&sdk), prov.queues.clone()));
    let all = versions();
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZURE.into(),
                client_id: "calls-app".into(),
                client_secret: "s3cr3t-calls".into(),
                alerts: all.clone(),
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "s3cr3t-ops".into(),
            state_file: None,
            all_visible: false,
            start_clock: start(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let http = shared::adapters::http::HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        ..Default::default()
    };
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http.clone(),
            ..Default::default()
        },
        vec![AzureAppCredential {
            tenant: "calls".into(),
            azure_tenant_id: AZURE.into(),
            client_id: "calls-app".into(),
            client_secret: Secret::new("s3cr3t-calls".to_string()),
        }],
    )
    .unwrap();
    let mut oc = shared::adapters::opsramp::OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = http;
    let tickets = shared::adapters::opsramp::OpsRampClient::new(
        oc,
        shared::adapters::opsramp::OpsRampCredential {
            client_id: "mss-soc".into(),
            client_secret: Secret::new("s3cr3t-ops".to_string()),
        },
    )
    .unwrap();
    let clock = ManualClock::new(start());
    let deps = Deps {
        store: store.clone(),
        queue: queue.clone(),
        alerts: Arc::new(graph),
        tickets: Arc::new(tickets),
        clock: clock.clone(),
        // One fetch at a time: the count does not depend on it, but moto's TransactWriteItems
        // answers 500 (and the SDK retries) when another write changes the table while it
        // copies it — the emulator's retries, not the pipeline's requests.
        settings: shared::steps::Settings {
            fetch_concurrency: 1,
            ..Default::default()
        },
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    store.put_tenant(&tenant()).await.unwrap();
    let before = counter.snapshot();

    let mut handed_on = 0;
    for at in [
        start() + Duration::minutes(59),
        start() + Duration::minutes(120),
    ] {
        sim.set_clock(at);
        clock.set(at);
        for r in fetch::run_all(&deps).await.unwrap() {
            handed_on += r.unwrap().new_versions;
        }
        // Whatever still classifies through the classify queue is part of the bill.
        loop {
            let got = queue.receive(QueueName::Classify, 10).await.unwrap();
            if got.is_empty() {
                break;
            }
            for m in got {
                shared::runner::handle(&deps, QueueName::Classify, &m.body)
                    .await
                    .unwrap();
                queue.ack(QueueName::Classify, &m.handle).await.unwrap();
            }
        }
    }
    assert_eq!(handed_on, all.len(), "every version handed on once");
    let after = counter.snapshot();
    let spent = |svc: &str| -> u64 {
        after
            .iter()
            .filter(|((s, _), _)| s == svc)
            .map(|(k, n)| n - before.get(k).copied().unwrap_or(0))
            .sum()
    };
    let per = |svc: &str| spent(svc) as f64 / all.len() as f64;
    let detail: BTreeMap<String, u64> = after
        .iter()
        .map(|((s, o), n)| {
            (
                format!("{s} {o}"),
                n - before.get(&(s.clone(), o.clone())).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    eprintln!(
        "{} versions: {:.3} DynamoDB and {:.3} SQS requests per version; {detail:?}",
        all.len(),
        per("dynamodb"),
        per("sqs")
    );
    assert!(per("dynamodb") <= 0.2, "DynamoDB: {detail:?}");
    assert!(per("sqs") <= 0.15, "SQS: {detail:?}");

    // The work was done: versions, decisions, incident versions on the ticket queue.
    let t = tenant();
    let mut by: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for v in &all {
        let a = Alert::from_value(v.clone()).unwrap();
        by.entry(a.id.clone()).or_default().push(a);
    }
    let mut want_kinds = BTreeMap::new();
    let mut want_tickets = BTreeSet::new();
    for (id, vs) in &by {
        let mut prev: Option<DecisionKind> = None;
        for a in vs {
            assert!(
                store
                    .get_alert_version("calls", id, a.last_update)
                    .await
                    .unwrap()
                    .is_some(),
                "{id} @ {} not stored",
                a.last_update
            );
            let d = classify(&t, a, prev);
            if d.kind == DecisionKind::Incident {
                want_tickets.insert((id.clone(), a.last_update));
            }
            prev = prev.max(Some(d.kind));
        }
        want_kinds.insert(id.clone(), prev.unwrap());
    }
    let kinds: BTreeMap<String, DecisionKind> = store
        .list_decisions("calls")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(kinds, want_kinds);
    assert!(
        want_kinds.values().any(|k| *k == DecisionKind::Monitored)
            && want_kinds.values().any(|k| *k == DecisionKind::OutOfScope)
            && !want_tickets.is_empty(),
        "the scenario has every kind of decision"
    );
    let mut got_tickets = BTreeSet::new();
    loop {
        let got = queue.receive(QueueName::Ticket, 10).await.unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            let r = AlertRef::from_json(&m.body).unwrap();
            got_tickets.insert((r.alert_id, r.last_update));
            queue.ack(QueueName::Ticket, &m.handle).await.unwrap();
        }
    }
    assert_eq!(got_tickets, want_tickets);

    // Quiet minutes — what every tenant × product costs every minute: the cursors and
    // ingest-health states of up to 50 fetches in one read, and the tenant list once; the
    // cursor written once in `cursor_step` (5 minutes), not every minute. (The first fetch
    // after the updates still reads back the overlap's alerts; the ones after it have
    // nothing left in their window.)
    let mut at = start() + Duration::minutes(150);
    sim.set_clock(at);
    clock.set(at);
    fetch::run_all(&deps).await.unwrap();
    let overlap = Duration::from_std(deps.settings.overlap).unwrap();
    let step = Duration::from_std(deps.settings.cursor_step).unwrap();
    assert_eq!(step, Duration::minutes(5));
    for p in [Product::Mde, Product::Mdi] {
        assert_eq!(
            store.get_cursor("calls", p).await.unwrap(),
            Some(at - overlap),
            "{p}: written when it moved by a step or more"
        );
    }
    let mut minutes = Vec::new();
    let c0 = counter.snapshot();
    for _ in 0..5 {
        at += Duration::minutes(1);
        sim.set_clock(at);
        clock.set(at);
        let c = counter.snapshot();
        let fetches = fetch::run_all(&deps).await.unwrap();
        assert_eq!(fetches.len(), 2, "one fetch per product");
        assert!(fetches.iter().all(|r| r.as_ref().unwrap().fetched == 0));
        minutes.push(dynamodb_since(&counter, &c));
    }
    let quiet = dynamodb_since(&counter, &c0);
    let n = 2u64;
    for (i, m) in minutes.iter().enumerate() {
        assert_eq!(
            m.get("BatchGetItem"),
            Some(&n.div_ceil(50)),
            "the fetches' starts read together: {m:?}"
        );
        assert_eq!(
            m.get("UpdateItem"),
            (i == 4).then_some(&n),
            "minute {}: the cursors written on the fifth: {m:?}",
            i + 1
        );
        assert_eq!(m.get("GetItem"), None, "nothing read item by item: {m:?}");
    }
    assert_eq!(
        quiet.values().sum::<u64>(),
        5 * (n.div_ceil(50) + 1) + n,
        "five quiet minutes: {quiet:?}"
    );
    for p in [Product::Mde, Product::Mdi] {
        assert_eq!(
            store.get_cursor("calls", p).await.unwrap(),
            Some(at - overlap)
        );
    }
    sim.shutdown().await;
}

/// DynamoDB requests by operation since `c0`.
fn dynamodb_since(
    counter: &RequestCounter,
    c0: &BTreeMap<(String, String), u64>,
) -> BTreeMap<String, u64> {
    counter
        .snapshot()
        .iter()
        .filter(|((svc, _), _)| svc == "dynamodb")
        .map(|(k, n)| (k.1.clone(), n - c0.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}
