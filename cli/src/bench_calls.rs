//! `mss bench calls`: the cloud shape's round trips per alert version at ingest + classify
//! (issue 11), counted on the wire against moto by an SDK interceptor on every DynamoDB, SQS
//! and S3 client (`adapters::request_count`: each HTTP request, retries included).
//!
//! The scenario: `--versions` alert versions over `--tenants` tenants (the built-in demo
//! customers' criteria and alert bodies, copied and renamed), revealed in `--rounds` fetch
//! rounds an hour apart — every alert's first version in round 1, a third of them updated in
//! the later rounds. Each round runs `steps::fetch::run_all` over every tenant × product, then
//! empties the classify queue the way Lambda's SQS event source mapping does (ReceiveMessage
//! ×10 → the classify handler → DeleteMessageBatch), so a pipeline that still classifies
//! through that queue is measured whole. Requests are split by phase (fetch, classify) and
//! divided by the alert versions the fetches handed on. Fetches run one at a time by default
//! (`--fetch-concurrency`: why).
//!
//! `--backend sqlite`: the same scenario on the embedded store, timed instead, with Graph's
//! answers recorded first and replayed, so the time is the pipeline's and not the simulator's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::HttpSettings;
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::request_count::{Counts, RequestCounter};
use shared::domain::alert::{Alert, Product};
use shared::domain::tenant::Tenant;
use shared::messages::QueueName;
use shared::ports::{AlertSource, FetchedItem, ManualClock, Queue};
use shared::steps::{self, Deps, Settings};

#[derive(clap::Args, Debug, Clone)]
pub struct CallsArgs {
    /// Alert versions in the scenario.
    #[arg(long, default_value_t = 1000)]
    pub versions: usize,
    /// Tenants (the built-in customers' criteria, copied).
    #[arg(long, default_value_t = 3)]
    pub tenants: usize,
    /// Fetch rounds, an hour apart: round 1 reveals first versions, later rounds updates.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// `aws` (DynamoDB + SQS on moto, requests counted) or `sqlite` (embedded, timed).
    #[arg(long, default_value = "aws", value_parser = ["aws", "sqlite"])]
    pub backend: String,
    /// The emulator (moto) for --backend aws; default $MSS_TEST_AWS_ENDPOINT, then
    /// $AWS_ENDPOINT_URL. Loopback only: the run creates a table, queues and a bucket.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Tenant × product fetches run at once. Default 1: the requests per version do not
    /// depend on it, but moto's TransactWriteItems copies the whole table while it runs and
    /// answers 500 when another write changes the table meanwhile, so concurrent fetches
    /// would count the emulator's retries (DynamoDB itself isolates transactions). The
    /// pipeline's own default is 32.
    #[arg(long, default_value_t = 1)]
    pub fetch_concurrency: usize,
    /// Seed of the built-in scenario the alert bodies come from.
    #[arg(long, default_value_t = 20261102)]
    pub seed: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One tenant of the bench scenario.
struct BenchTenant {
    tenant: Tenant,
    sim: SimTenant,
    cred: AzureAppCredential,
}

struct Plan {
    tenants: Vec<BenchTenant>,
    /// When each round fetches.
    rounds: Vec<DateTime<Utc>>,
    /// Versions Graph reveals, in total (each is served at exactly one round).
    versions: usize,
}

/// A GUID per copy, so copies never share an Azure tenant.
fn guid(i: usize) -> String {
    format!(
        "{:08x}-b0b0-4000-8000-{:012x}",
        0x5eed_0000u32 + i as u32,
        i
    )
}

/// `five`: every tenant a copy of the built-in customer that subscribes to all five products
/// (the scale figure is per 5 products); else the built-in customers in turn.
fn plan(a: &CallsArgs, five: bool) -> anyhow::Result<Plan> {
    if a.tenants == 0 || a.tenants > 9_999 {
        bail!("--tenants must be 1..=9999");
    }
    if a.rounds == 0 || a.rounds > 24 {
        bail!("--rounds must be 1..=24");
    }
    if a.versions < a.tenants {
        bail!("--versions must be at least --tenants");
    }
    let base = crate::scenario::builtin(a.seed);
    let start = base.start;
    let hour = chrono::Duration::hours(1);
    let rounds: Vec<DateTime<Utc>> = (1..=a.rounds as i32).map(|r| start + hour * r).collect();
    let mut tenants = Vec::new();
    for i in 0..a.tenants {
        let template = &base.tenants[if five { 0 } else { i % base.tenants.len() }];
        let azure = guid(i);
        let mut config = template.config.clone();
        let id = format!(
            "{}-{i:02}",
            config["id"]
                .as_str()
                .ok_or_else(|| anyhow!("template id"))?
        );
        config["id"] = json!(id);
        config["azure_tenant_id"] = json!(azure);
        let tenant =
            Tenant::from_json_value(&config).map_err(|e| anyhow!("bench tenant {i}: {e}"))?;
        // Templates: the built-in day's well-formed alerts of a subscribed product, one
        // body per alert id (its first version).
        let mut seen = std::collections::HashSet::new();
        let templates: Vec<&Value> = template
            .alerts
            .iter()
            .filter(|v| seen.insert(v["id"].as_str().unwrap_or_default().to_string()))
            .filter(|v| match Alert::from_value((*v).clone()) {
                Ok(al) => al
                    .fields
                    .service_source
                    .as_deref()
                    .and_then(Product::from_service_source)
                    .is_some_and(|p| tenant.products.contains(&p)),
                Err(_) => false,
            })
            .collect();
        if templates.is_empty() {
            bail!("built-in tenant {} has no usable alert", tenant.id);
        }
        let quota = a.versions / a.tenants + usize::from(i < a.versions % a.tenants);
        let updates = if a.rounds > 1 { quota / 3 } else { 0 };
        let firsts = quota - updates;
        let mut alerts = Vec::with_capacity(quota);
        let stamp = |v: &mut Value, n: usize, lu: DateTime<Utc>, created: DateTime<Utc>| {
            let tid = templates[n % templates.len()]["id"].as_str().unwrap_or("a");
            v["id"] = json!(format!("{tid}-b{i:02}{n:06}"));
            v["tenantId"] = json!(azure);
            v["incidentId"] = json!((100_000 + i * 1_000_000 + n / 2).to_string());
            v["createdDateTime"] = json!(created.to_rfc3339());
            v["lastUpdateDateTime"] = json!(lu.to_rfc3339());
        };
        // First versions spread over the hour before round 1; update k (of alert k) over the
        // hour before round 2 + k mod (rounds − 1). A minute clear of each round on both
        // sides, so every version is the newest Graph serves at exactly one round.
        let spread = |r: usize, k: usize, of: usize| -> DateTime<Utc> {
            let from = start + hour * (r as i32 - 1) + chrono::Duration::minutes(1);
            from + chrono::Duration::milliseconds((3_420_000 * k / of.max(1)) as i64)
        };
        for n in 0..firsts {
            let mut v = templates[n % templates.len()].clone();
            let lu = spread(1, n, firsts);
            stamp(&mut v, n, lu, lu);
            alerts.push(v);
        }
        for k in 0..updates {
            let mut v = alerts[k].clone();
            let created = spread(1, k, firsts);
            let r = 2 + k % (a.rounds - 1);
            let lu = spread(r, k / (a.rounds - 1), updates.div_ceil(a.rounds - 1));
            stamp(&mut v, k, lu, created);
            v["status"] = json!(if k % 2 == 0 { "resolved" } else { "inProgress" });
            if k % 4 == 0 {
                v["severity"] = json!("high");
            }
            alerts.push(v);
        }
        let client_id = format!("{}-bench", tenant.id);
        let secret = format!("bench-secret-{i:02}-{:016x}", a.seed);
        tenants.push(BenchTenant {
            sim: SimTenant {
                azure_tenant_id: azure.clone(),
                client_id: client_id.clone(),
                client_secret: secret.clone(),
                alerts,
            },
            cred: AzureAppCredential {
                tenant: tenant.id.clone(),
                azure_tenant_id: azure,
                client_id,
                client_secret: Secret::new(secret),
            },
            tenant,
        });
    }
    Ok(Plan {
        tenants,
        rounds,
        versions: a.versions,
    })
}

/// Graph, or a replay of what it answered: `record` keeps every answer by tenant, product
/// and round; a replaying source (`graph: None`) hands the same pages back without a request,
/// so a timed run measures the pipeline, not the simulator.
struct ReplaySource {
    graph: Option<GraphClient>,
    clock: Arc<ManualClock>,
    pages: std::sync::Mutex<std::collections::HashMap<(String, Product, i64), Vec<FetchedItem>>>,
}

#[async_trait]
impl AlertSource for ReplaySource {
    async fn fetch(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        let key = (
            tenant.id.clone(),
            product,
            shared::ports::Clock::now(self.clock.as_ref()).timestamp(),
        );
        match &self.graph {
            Some(g) => {
                let items = g.fetch(tenant, product, since).await?;
                self.pages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, items.clone());
                Ok(items)
            }
            None => self
                .pages
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned()
                .ok_or_else(|| anyhow!("nothing recorded for {key:?}")),
        }
    }
}

struct Rig {
    sim: Sim,
    source: Arc<ReplaySource>,
    tickets: Arc<OpsRampClient>,
    clock: Arc<ManualClock>,
}

async fn rig(p: &Plan) -> anyhow::Result<Rig> {
    let ops_secret = "bench-opsramp-secret".to_string();
    let sim = Sim::start(
        SimConfig {
            tenants: p.tenants.iter().map(|t| t.sim.clone()).collect(),
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: ops_secret.clone(),
            state_file: None,
            all_visible: false,
            start_clock: p.rounds[0],
        },
        "127.0.0.1:0".parse()?,
    )
    .await
    .context("starting the simulator")?;
    let http = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        ..HttpSettings::default()
    };
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http.clone(),
            ..GraphConfig::default()
        },
        p.tenants.iter().map(|t| t.cred.clone()).collect(),
    )?;
    let mut ops = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    ops.http = http;
    let tickets = Arc::new(OpsRampClient::new(
        ops,
        OpsRampCredential {
            client_id: "mss-soc".into(),
            client_secret: Secret::new(ops_secret),
        },
    )?);
    let clock = ManualClock::new(p.rounds[0]);
    Ok(Rig {
        sim,
        source: Arc::new(ReplaySource {
            graph: Some(graph),
            clock: clock.clone(),
            pages: Default::default(),
        }),
        tickets,
        clock,
    })
}

/// One round's fetch over every tenant × product: versions handed on, fetches run.
async fn fetch_round(deps: &Deps) -> anyhow::Result<(usize, usize)> {
    let mut versions = 0;
    let mut fetches = 0;
    for r in steps::fetch::run_all(deps).await? {
        let o = r.map_err(|(t, p, e)| anyhow!("fetch {t}/{p}: {e}"))?;
        versions += o.new_versions;
        fetches += 1;
    }
    Ok((versions, fetches))
}

fn settings(a: &CallsArgs) -> Settings {
    Settings {
        fetch_concurrency: a.fetch_concurrency.max(1),
        ..Settings::default()
    }
}

fn loopback(u: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(u).map_err(|e| anyhow!("--endpoint-url {u:?}: {e}"))?;
    let ok = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !ok {
        bail!("--endpoint-url {u}: an emulator on this machine only (the bench creates a table, queues and a bucket)");
    }
    Ok(())
}

fn diff(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn add(into: &mut Counts, c: &Counts) {
    for (k, n) in c {
        *into.entry(k.clone()).or_default() += n;
    }
}

fn service(c: &Counts, s: &str) -> u64 {
    c.iter().filter(|((x, _), _)| x == s).map(|(_, n)| n).sum()
}

fn phase_json(c: &Counts, versions: usize) -> Value {
    let per = |n: u64| {
        if versions == 0 {
            0.0
        } else {
            (n as f64 / versions as f64 * 1000.0).round() / 1000.0
        }
    };
    let ops: BTreeMap<String, u64> = c
        .iter()
        .map(|((s, o), n)| (format!("{s} {o}"), *n))
        .collect();
    json!({
        "dynamodb": service(c, "dynamodb"),
        "sqs": service(c, "sqs"),
        "s3": service(c, "s3"),
        "dynamodb_per_version": per(service(c, "dynamodb")),
        "sqs_per_version": per(service(c, "sqs")),
        "requests": ops,
    })
}

/// What Lambda's event source mapping does with the classify queue until it is empty:
/// receive ten, hand them to the classify handler as an SQS event, delete the ones that did
/// not fail. `peek` (not counted) says whether anything is left.
async fn drain_classify(
    deps: &Deps,
    sqs: &aws_sdk_sqs::Client,
    peek: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<u64> {
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
    let mut handled = 0;
    loop {
        let a = peek
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| anyhow!("GetQueueAttributes: {e}"))?;
        let left = a
            .attributes
            .and_then(|m| {
                m.get(&QueueAttributeName::ApproximateNumberOfMessages)
                    .cloned()
            })
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if left == 0 {
            return Ok(handled);
        }
        let r = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| anyhow!("ReceiveMessage: {e}"))?;
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            continue;
        }
        let records: Vec<Value> = msgs
            .iter()
            .map(|m| {
                json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "awsRegion": "ap-northeast-1"})
            })
            .collect();
        let resp =
            shared::lambda::queue_handler(deps, QueueName::Classify, json!({ "Records": records }))
                .await?;
        let failed: Vec<&str> = resp["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if !failed.is_empty() {
            bail!("classify failed for {} message(s): {resp}", failed.len());
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = msgs
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        sqs.delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow!("DeleteMessageBatch: {e}"))?;
        handled += msgs.len() as u64;
    }
}

/// The emulator's URL (`--endpoint-url`, else the environment's), loopback only, with the
/// emulator's dummy credentials set where none are.
fn emulator(given: &Option<String>) -> anyhow::Result<String> {
    let endpoint = given
        .clone()
        .or_else(|| std::env::var("MSS_TEST_AWS_ENDPOINT").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .ok_or_else(|| {
            anyhow!("no emulator: give --endpoint-url (scripts/moto-server.sh start prints it) or set MSS_TEST_AWS_ENDPOINT")
        })?;
    loopback(&endpoint)?;
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "ap-northeast-1"),
    ] {
        if std::env::var(k).is_err() {
            // SAFETY: set before any AWS client exists, on this thread, before the fetch
            // tasks start.
            unsafe { std::env::set_var(k, v) };
        }
    }
    Ok(endpoint)
}

/// A fresh table, queues and bucket on the emulator, with a store and queue whose every
/// request `counter` counts.
struct CountedAws {
    prov: shared::lambda::Provisioned,
    /// Not counted: for looking at queue depths without adding to the figures.
    peek: aws_sdk_sqs::Client,
    sqs: aws_sdk_sqs::Client,
    store: Arc<shared::adapters::dynamodb::DynamoStore>,
    queue: Arc<shared::adapters::sqs::SqsQueue>,
}

async fn counted_aws(
    given: &Option<String>,
    kind: &str,
    counter: &RequestCounter,
) -> anyhow::Result<CountedAws> {
    let endpoint = emulator(given)?;
    let name = format!(
        "mss-{kind}-{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    );
    let prov = shared::lambda::provision_emulator(&endpoint, &name).await?;
    let sdk = shared::adapters::aws::sdk_config(Some(&endpoint)).await;
    let sqs = counter.sqs(&sdk);
    let store = Arc::new(shared::adapters::dynamodb::DynamoStore::new(
        counter.dynamodb(&sdk),
        &prov.table,
        Some((counter.s3(&sdk, true), prov.bucket.clone())),
    ));
    let queue = Arc::new(shared::adapters::sqs::SqsQueue::new(
        sqs.clone(),
        prov.queues.clone(),
    ));
    Ok(CountedAws {
        prov,
        peek: shared::adapters::sqs::sqs_client(&sdk),
        sqs,
        store,
        queue,
    })
}

async fn run_aws(a: &CallsArgs, p: &Plan) -> anyhow::Result<Value> {
    let counter = RequestCounter::new();
    let CountedAws {
        prov,
        peek,
        sqs,
        store,
        queue,
    } = counted_aws(&a.endpoint_url, "bench", &counter).await?;
    let r = rig(p).await?;
    let deps = Deps {
        store: store.clone(),
        queue,
        alerts: r.source.clone(),
        tickets: r.tickets.clone(),
        clock: r.clock.clone(),
        settings: settings(a),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    for t in &p.tenants {
        shared::ports::Store::put_tenant(store.as_ref(), &t.tenant).await?;
    }
    let (mut fetch, mut classify) = (Counts::new(), Counts::new());
    let (mut versions, mut fetches, mut classified) = (0, 0, 0);
    let wall = Instant::now();
    for at in &p.rounds {
        r.sim.set_clock(*at);
        r.clock.set(*at);
        let s0 = counter.snapshot();
        let (v, f) = fetch_round(&deps).await?;
        versions += v;
        fetches += f;
        let s1 = counter.snapshot();
        classified += drain_classify(&deps, &sqs, &peek, &prov.queues.classify).await?;
        let s2 = counter.snapshot();
        add(&mut fetch, &diff(&s1, &s0));
        add(&mut classify, &diff(&s2, &s1));
    }
    let wall_s = wall.elapsed().as_secs_f64();
    // Incident versions handed on to the ticket step, whichever step sent them.
    let ticket = shared::adapters::sqs::SqsQueue::new(peek, prov.queues.clone());
    let (ticket_msgs, _) = ticket.depth(QueueName::Ticket).await?;
    r.sim.shutdown().await;
    let mut total = fetch.clone();
    add(&mut total, &classify);
    Ok(json!({
        "backend": "aws",
        "scenario": {"versions_planned": p.versions, "tenants": p.tenants.len(), "rounds": p.rounds.len(),
            "fetch_concurrency": settings(a).fetch_concurrency},
        "versions": versions,
        "fetches": fetches,
        "classify_messages": classified,
        "ticket_messages": ticket_msgs,
        "fetch": phase_json(&fetch, versions),
        "classify": phase_json(&classify, versions),
        "total": phase_json(&total, versions),
        "wall_s": (wall_s * 100.0).round() / 100.0,
    }))
}

/// The scenario on the embedded store, twice: once against the simulator, recording what
/// Graph answered (a scratch store), then timed, on a fresh state file, with those answers
/// replayed — so the time is the store's and the pipeline's, not the simulator's.
async fn run_sqlite(a: &CallsArgs, p: &Plan) -> anyhow::Result<Value> {
    let r = rig(p).await?;
    let record = shared::adapters::sqlite::SqliteStore::in_memory()?;
    sqlite_rounds(
        a,
        p,
        &r,
        Arc::new(record.with_clock(r.clock.clone())),
        r.source.clone(),
    )
    .await?;
    let replay = Arc::new(ReplaySource {
        graph: None,
        clock: r.clock.clone(),
        pages: std::sync::Mutex::new(std::mem::take(
            &mut *r.source.pages.lock().unwrap_or_else(|e| e.into_inner()),
        )),
    });
    let dir = tempfile::tempdir()?;
    let s = Arc::new(
        shared::adapters::sqlite::SqliteStore::open(&dir.path().join("mss.sqlite"))?
            .with_clock(r.clock.clone()),
    );
    let out = sqlite_rounds(a, p, &r, s, replay).await?;
    r.sim.shutdown().await;
    Ok(json!({
        "backend": "sqlite",
        "scenario": {"versions_planned": p.versions, "tenants": p.tenants.len(), "rounds": p.rounds.len(),
            "fetch_concurrency": settings(a).fetch_concurrency},
        "versions": out.versions,
        "fetches": out.fetches,
        "classify_messages": out.classified,
        "ticket_messages": out.tickets,
        "fetch_s": (out.fetch_s * 1000.0).round() / 1000.0,
        "classify_s": (out.classify_s * 1000.0).round() / 1000.0,
        "ingest_and_classify_s": ((out.fetch_s + out.classify_s) * 1000.0).round() / 1000.0,
    }))
}

#[derive(Default)]
struct SqliteRun {
    versions: usize,
    fetches: usize,
    classified: u64,
    tickets: u64,
    fetch_s: f64,
    classify_s: f64,
}

/// Every round on `s`: the fetch (timed), then the classify queue emptied as the embedded
/// runner does (timed apart).
async fn sqlite_rounds(
    a: &CallsArgs,
    p: &Plan,
    r: &Rig,
    s: Arc<shared::adapters::sqlite::SqliteStore>,
    source: Arc<ReplaySource>,
) -> anyhow::Result<SqliteRun> {
    let deps = Deps {
        store: s.clone(),
        queue: s.clone(),
        alerts: source,
        tickets: r.tickets.clone(),
        clock: r.clock.clone(),
        settings: settings(a),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    for t in &p.tenants {
        shared::ports::Store::put_tenant(s.as_ref(), &t.tenant).await?;
    }
    let mut out = SqliteRun::default();
    for at in &p.rounds {
        r.sim.set_clock(*at);
        r.clock.set(*at);
        let t0 = Instant::now();
        let (v, f) = fetch_round(&deps).await?;
        out.fetch_s += t0.elapsed().as_secs_f64();
        out.versions += v;
        out.fetches += f;
        let t1 = Instant::now();
        loop {
            let batch = s.receive(QueueName::Classify, 10).await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                shared::runner::handle(&deps, QueueName::Classify, &m.body).await?;
                s.ack(QueueName::Classify, &m.handle).await?;
                out.classified += 1;
            }
        }
        out.classify_s += t1.elapsed().as_secs_f64();
    }
    out.tickets = s.depth(QueueName::Ticket).await?.0;
    Ok(out)
}

fn print_table(v: &Value) {
    println!(
        "{} alert versions handed on by {} fetches ({} tenant(s), {} round(s)); {} classify message(s), {} ticket message(s)",
        v["versions"], v["fetches"], v["scenario"]["tenants"], v["scenario"]["rounds"],
        v["classify_messages"], v["ticket_messages"]
    );
    if v["backend"] == "sqlite" {
        println!("seconds, Graph's answers replayed from memory:");
        for k in ["fetch_s", "classify_s", "ingest_and_classify_s"] {
            println!("  {k:<40} {:>10.3}", v[k].as_f64().unwrap_or(0.0));
        }
        return;
    }
    println!(
        "{:<10} {:>10} {:>12} {:>10} {:>12} {:>6}",
        "phase", "DynamoDB", "per version", "SQS", "per version", "S3"
    );
    for ph in ["fetch", "classify", "total"] {
        let x = &v[ph];
        println!(
            "{:<10} {:>10} {:>12.3} {:>10} {:>12.3} {:>6}",
            ph,
            x["dynamodb"],
            x["dynamodb_per_version"].as_f64().unwrap_or(0.0),
            x["sqs"],
            x["sqs_per_version"].as_f64().unwrap_or(0.0),
            x["s3"],
        );
    }
    println!("requests by operation:");
    for ph in ["fetch", "classify"] {
        if let Some(m) = v[ph]["requests"].as_object() {
            for (op, n) in m {
                println!("  {ph:<9} {op:<36} {n:>8}");
            }
        }
    }
}

pub async fn run(a: CallsArgs) -> anyhow::Result<()> {
    let p = plan(&a, false)?;
    let out = match a.backend.as_str() {
        "sqlite" => run_sqlite(&a, &p).await?,
        _ => run_aws(&a, &p).await?,
    };
    if a.json {
        println!("{out}");
    } else {
        print_table(&out);
    }
    Ok(())
}

/// `mss bench scale`: one fetch cycle of every tenant × product (issue 11's scale figure).
#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Tenants, each subscribing to its built-in template's products (five for most).
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// New alerts per tenant revealed at the first cycle (a third updated an hour later).
    #[arg(long, default_value_t = 3)]
    pub alerts_per_tenant: usize,
    /// Tenant × product fetches in flight at once inside the one fetch invocation
    /// (`Settings::fetch_concurrency`).
    #[arg(long, default_value_t = 20)]
    pub fetch_concurrency: usize,
    /// Added to every Graph alerts request by the simulator, to stand for Graph's own
    /// latency (the simulator on loopback answers in about a millisecond).
    #[arg(long, default_value_t = 0)]
    pub graph_latency_ms: u64,
    /// `sqlite` (embedded) or `aws` (DynamoDB + SQS on moto, the fetch-alerts function's path).
    #[arg(long, default_value = "sqlite", value_parser = ["aws", "sqlite"])]
    pub backend: String,
    /// The emulator for --backend aws (default $MSS_TEST_AWS_ENDPOINT, then $AWS_ENDPOINT_URL).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    #[arg(long, default_value_t = 20261102)]
    pub seed: u64,
    /// One JSON object instead of the lines.
    #[arg(long)]
    pub json: bool,
}

/// Three cycles: the first (every token fetched, every alert new), one an hour later (tokens
/// renewed, a third of the alerts updated), and a quiet one a minute after that (the steady
/// state: cached tokens, nothing new). Each is timed, with the simulator's request counts.
const CYCLES: [&str; 3] = [
    "first (cold)",
    "an hour later (updates, tokens renewed)",
    "a minute later (quiet)",
];

pub async fn scale(a: ScaleArgs) -> anyhow::Result<()> {
    let calls = CallsArgs {
        versions: a.tenants * a.alerts_per_tenant.max(1),
        tenants: a.tenants,
        rounds: 2,
        backend: a.backend.clone(),
        endpoint_url: a.endpoint_url.clone(),
        fetch_concurrency: a.fetch_concurrency,
        seed: a.seed,
        json: a.json,
    };
    let mut p = plan(&calls, true)?;
    let quiet = p.rounds[1] + chrono::Duration::minutes(1);
    p.rounds.push(quiet);
    let r = rig(&p).await?;
    if a.graph_latency_ms > 0 {
        r.sim.set_fault(
            mss_sim::Endpoint::GraphAlerts,
            mss_sim::Fault::Latency {
                times: u32::MAX,
                millis: a.graph_latency_ms,
            },
        );
    }
    let tmp = tempfile::tempdir()?;
    let counter = RequestCounter::new();
    let (store, queue): (Arc<dyn shared::ports::Store>, Arc<dyn Queue>) = if a.backend == "aws" {
        let aws = counted_aws(&a.endpoint_url, "scale", &counter).await?;
        (aws.store, aws.queue)
    } else {
        let s = Arc::new(
            shared::adapters::sqlite::SqliteStore::open(&tmp.path().join("mss.sqlite"))?
                .with_clock(r.clock.clone()),
        );
        (s.clone(), s)
    };
    for t in &p.tenants {
        store.put_tenant(&t.tenant).await?;
    }
    let deps = Deps {
        store,
        queue,
        alerts: Arc::new(GraphSource(r.source.clone())),
        tickets: r.tickets.clone(),
        clock: r.clock.clone(),
        settings: Settings {
            fetch_concurrency: a.fetch_concurrency.max(1),
            ..Settings::default()
        },
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    let products: usize = p.tenants.iter().map(|t| t.tenant.products.len()).sum();
    let mut cycles = Vec::new();
    for (i, at) in p.rounds.iter().enumerate() {
        r.sim.set_clock(*at);
        r.clock.set(*at);
        let before = r.sim.stats();
        let c0 = counter.snapshot();
        let t0 = Instant::now();
        let (versions, fetches) = fetch_round(&deps).await?;
        let wall = t0.elapsed().as_secs_f64();
        let after = r.sim.stats();
        let graph = after.graph_alert_requests - before.graph_alert_requests;
        let tokens = after.entra_tokens - before.entra_tokens;
        let aws = diff(&counter.snapshot(), &c0);
        let c = json!({
            "dynamodb_requests": service(&aws, "dynamodb"),
            "sqs_requests": service(&aws, "sqs"),
            "cycle": CYCLES[i.min(2)],
            "wall_s": (wall * 1000.0).round() / 1000.0,
            "fetches": fetches,
            "new_versions": versions,
            "graph_alert_requests": graph,
            "entra_token_requests": tokens,
            "graph_requests_per_tenant": ((graph + tokens) as f64 / a.tenants as f64 * 100.0).round() / 100.0,
            "within_60_s": wall < 60.0,
        });
        if !a.json {
            eprintln!(
                "cycle {}: {:.2} s wall, {fetches} fetches, {versions} new versions, {graph} Graph alert requests + {tokens} token requests = {} per tenant",
                i + 1,
                wall,
                c["graph_requests_per_tenant"]
            );
        }
        if fetches != products {
            bail!("cycle {}: {fetches} fetches succeeded of {products}", i + 1);
        }
        cycles.push(c);
    }
    r.sim.shutdown().await;
    let worst = cycles
        .iter()
        .filter_map(|c| c["wall_s"].as_f64())
        .fold(0.0f64, f64::max);
    let out = json!({
        "bench": "scale",
        "backend": a.backend,
        "tenants": a.tenants,
        "tenant_products": products,
        "fetch_concurrency": a.fetch_concurrency,
        "graph_latency_ms": a.graph_latency_ms,
        "cycles": cycles,
        "worst_cycle_s": worst,
        // The fetch is one invocation for every tenant: it needs one more concurrent
        // invocation for every 60 s schedule period a cycle would overrun.
        "lambda_invocations_needed": (worst / 60.0).ceil().max(1.0),
        "peak_rss_mb": crate::bench::peak_rss_mb(),
    });
    println!("{out}");
    Ok(())
}

/// The recording source as a plain Graph source (its pages kept are not needed here).
struct GraphSource(Arc<ReplaySource>);

#[async_trait]
impl AlertSource for GraphSource {
    async fn fetch(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        match &self.0.graph {
            Some(g) => g.fetch(tenant, product, since).await,
            None => bail!("no Graph client"),
        }
    }
}
