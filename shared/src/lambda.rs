//! What the Lambda binaries share: configuration from the environment, dependencies built
//! once per cold start, and the handlers that map an event to a step and back. Each binary
//! in `functions/` is only `main` around one of these handlers.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::graph::GraphConfig;
use crate::adapters::http::HttpSettings;
use crate::adapters::opsramp::{OpsRampClient, OpsRampConfig};
use crate::adapters::secrets::{SecretGraphSource, SecretStore};
use crate::adapters::sqs::{QueueUrls, SqsQueue};
use crate::domain::alert::Product;
use crate::messages::{AlertRef, QueueName, MESSAGE_VERSION};
use crate::ports::SystemClock;
use crate::steps::{self, Deps, Settings};

/// The functions' environment, as template.yaml sets it.
#[derive(Debug, Clone)]
pub struct CloudEnv {
    pub table: String,
    pub classify_queue_url: String,
    pub ticket_queue_url: String,
    /// The first-response queue (optional until first response is deployed).
    pub respond_queue_url: Option<String>,
    /// The delayed action-check queue (with first response).
    pub check_queue_url: Option<String>,
    /// The investigation queue; investigation reports only where it is deployed.
    pub investigate_queue_url: Option<String>,
    pub bucket: Option<String>,
    pub opsramp_base_url: String,
    pub opsramp_tenant_id: String,
    pub opsramp_token_path: Option<String>,
    pub secrets_prefix: String,
    /// `MSS_TENANT_CREDENTIALS`: where tenants' Azure app credentials are kept.
    pub tenant_credentials: crate::adapters::secrets::TenantCredentials,
    pub graph_base: Option<String>,
    pub authority_host: Option<String>,
    /// A PEM file of an extra CA to trust (the local simulator); never set in production.
    pub extra_ca_file: Option<String>,
    /// Only for emulators: where the AWS APIs are (`AWS_ENDPOINT_URL`).
    pub aws_endpoint_url: Option<String>,
    /// Dead-letter queues, for depth reports (optional).
    pub classify_dlq_url: Option<String>,
    pub ticket_dlq_url: Option<String>,
    /// How long a message released by the embedded-style consumer stays invisible.
    pub queue_retry_delay_s: Option<u64>,
    /// Defender for Endpoint API base (default the public one) and Graph beta base.
    pub mde_base: Option<String>,
    pub graph_beta_base: Option<String>,
    /// Seconds between checks of a running machine action (default 60).
    pub respond_check_s: Option<u64>,
    /// `MSS_FETCH_CONCURRENCY`: tenant × product fetches in flight in one fetch invocation
    /// (default `Settings::fetch_concurrency`). Graph's latency, not CPU, bounds a cycle:
    /// 1,000 tenants × 5 products at ~0.5 s a request need ~64 in flight to finish inside
    /// the 60 s schedule period (BENCHMARKS.md, "Scale").
    pub fetch_concurrency: Option<usize>,
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow!("environment variable {name} is not set"))
}

fn opt(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl CloudEnv {
    pub fn from_env() -> anyhow::Result<CloudEnv> {
        Ok(CloudEnv {
            table: var("MSS_TABLE")?,
            classify_queue_url: var("MSS_CLASSIFY_QUEUE_URL")?,
            ticket_queue_url: var("MSS_TICKET_QUEUE_URL")?,
            respond_queue_url: opt("MSS_RESPOND_QUEUE_URL"),
            check_queue_url: opt("MSS_CHECK_QUEUE_URL"),
            investigate_queue_url: opt("MSS_INVESTIGATE_QUEUE_URL"),
            bucket: opt("MSS_BUCKET"),
            opsramp_base_url: var("MSS_OPSRAMP_BASE_URL")?,
            opsramp_tenant_id: var("MSS_OPSRAMP_TENANT_ID")?,
            opsramp_token_path: opt("MSS_OPSRAMP_TOKEN_PATH"),
            secrets_prefix: opt("MSS_SECRETS_PREFIX").unwrap_or_else(|| "mss/".into()),
            tenant_credentials: opt("MSS_TENANT_CREDENTIALS")
                .map(|v| v.parse())
                .transpose()?
                .unwrap_or_default(),
            graph_base: opt("MSS_GRAPH_BASE"),
            authority_host: opt("MSS_AUTHORITY_HOST"),
            extra_ca_file: opt("MSS_EXTRA_CA_FILE"),
            aws_endpoint_url: opt("AWS_ENDPOINT_URL")
                .map(|u| crate::adapters::aws::check_endpoint_url(&u))
                .transpose()?,
            classify_dlq_url: opt("MSS_CLASSIFY_DLQ_URL"),
            ticket_dlq_url: opt("MSS_TICKET_DLQ_URL"),
            queue_retry_delay_s: opt("MSS_QUEUE_RETRY_DELAY_S").and_then(|v| v.parse().ok()),
            mde_base: opt("MSS_MDE_BASE"),
            graph_beta_base: opt("MSS_GRAPH_BETA_BASE"),
            respond_check_s: opt("MSS_RESPOND_CHECK_S").and_then(|v| v.parse().ok()),
            fetch_concurrency: opt("MSS_FETCH_CONCURRENCY")
                .map(|v| {
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=512).contains(n))
                        .ok_or_else(|| anyhow!("MSS_FETCH_CONCURRENCY {v:?}: expected 1..=512"))
                })
                .transpose()?,
        })
    }

    /// The secrets the functions read, for tooling that writes them (demo, smoke test).
    pub async fn secret_store(&self) -> SecretStore {
        let sdk = crate::adapters::aws::sdk_config(self.aws_endpoint_url.as_deref()).await;
        SecretStore::for_sdk(&sdk, &self.secrets_prefix, self.tenant_credentials)
    }
}

/// Everything a handler needs, built once per cold start.
pub struct Cloud {
    pub deps: Deps,
    /// The OpsRamp client as the inquiry tracker's port (the same client as `deps.tickets`).
    pub opsramp: Arc<OpsRampClient>,
    pub store: Arc<DynamoStore>,
    pub secrets: Arc<SecretStore>,
}

pub async fn init(env: &CloudEnv) -> anyhow::Result<Cloud> {
    let sdk = crate::adapters::aws::sdk_config(env.aws_endpoint_url.as_deref()).await;
    let s3 = env.bucket.as_ref().map(|b| {
        (
            aws_sdk_s3::Client::from_conf(s3_config(&sdk, env.aws_endpoint_url.is_some())),
            b.clone(),
        )
    });
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &env.table,
        s3,
    ));
    let mut queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        QueueUrls {
            classify: env.classify_queue_url.clone(),
            ticket: env.ticket_queue_url.clone(),
            respond: env.respond_queue_url.clone(),
            check: env.check_queue_url.clone(),
            classify_dlq: env.classify_dlq_url.clone(),
            ticket_dlq: env.ticket_dlq_url.clone(),
            respond_dlq: None,
            check_dlq: None,
            investigate: env.investigate_queue_url.clone(),
            investigate_dlq: None,
        },
    );
    if let Some(d) = env.queue_retry_delay_s {
        queue.retry_delay = std::time::Duration::from_secs(d);
    }
    let queue = Arc::new(queue);
    let secrets = Arc::new(SecretStore::for_sdk(
        &sdk,
        &env.secrets_prefix,
        env.tenant_credentials,
    ));
    let extra_ca_pem = match &env.extra_ca_file {
        Some(f) => Some(
            std::fs::read_to_string(f).with_context(|| format!("reading MSS_EXTRA_CA_FILE {f}"))?,
        ),
        None => None,
    };
    let http = HttpSettings {
        extra_ca_pem,
        ..HttpSettings::default()
    };
    let mut graph = GraphConfig {
        http: http.clone(),
        ..GraphConfig::default()
    };
    if let Some(g) = &env.graph_base {
        graph.graph_base = g.clone();
    }
    if let Some(a) = &env.authority_host {
        graph.authority_host = a.clone();
    }
    let mut ops = OpsRampConfig::new(&env.opsramp_base_url, &env.opsramp_tenant_id);
    ops.http = http;
    if let Some(p) = &env.opsramp_token_path {
        ops.token_path = p.clone();
    }
    // Read on first use, not here: most invocations of most functions never call OpsRamp,
    // and this read was most of a cold start (BENCHMARKS.md, artifacts).
    let opsramp_cred = {
        let secrets = secrets.clone();
        crate::adapters::opsramp::SharedCredential::lazy(Arc::new(move || {
            let secrets = secrets.clone();
            Box::pin(async move { secrets.opsramp().await })
        }))
    };
    // Operator alerts about ingest go to the provider's own OpsRamp client, when set.
    let ingest_health = steps::health::HealthSettings::from_env(&ops, opsramp_cred.clone())?;
    let opsramp = Arc::new(OpsRampClient::new(ops, opsramp_cred)?);
    let tickets = opsramp.clone();
    // First response only where its queue is deployed.
    let respond = env.respond_queue_url.as_ref().map(|_| {
        let mut mde = crate::adapters::mde::MdeConfig {
            http: graph.http.clone(),
            authority_host: graph.authority_host.clone(),
            ..Default::default()
        };
        if let Some(b) = &env.mde_base {
            mde.base = b.clone();
        }
        let identity = crate::adapters::identity::IdentityConfig {
            graph_base: graph.graph_base.clone(),
            authority_host: graph.authority_host.clone(),
            http: graph.http.clone(),
            ..Default::default()
        };
        let beta = env
            .graph_beta_base
            .clone()
            .unwrap_or_else(|| "https://graph.microsoft.com/beta".into());
        let r = Arc::new(crate::adapters::secrets::SecretResponders::new(
            mde,
            identity,
            &beta,
            secrets.clone(),
        ));
        Arc::new(steps::respond::ResponseDeps {
            devices: r.clone(),
            users: r.clone(),
            mail: r,
            calendar: crate::domain::calendar::Calendar::default(),
            check_every: std::time::Duration::from_secs(env.respond_check_s.unwrap_or(60)),
            give_up_after: std::time::Duration::from_secs(2 * 3600),
        })
    });
    // Investigation only where its queue is deployed; the same per-tenant clients as first
    // response (built lazily from each tenant's own secret).
    let investigate = env.investigate_queue_url.as_ref().map(|_| {
        let identity = crate::adapters::identity::IdentityConfig {
            graph_base: graph.graph_base.clone(),
            authority_host: graph.authority_host.clone(),
            http: graph.http.clone(),
            ..Default::default()
        };
        let beta = env
            .graph_beta_base
            .clone()
            .unwrap_or_else(|| "https://graph.microsoft.com/beta".into());
        let r = Arc::new(crate::adapters::secrets::SecretResponders::new(
            crate::adapters::mde::MdeConfig {
                http: graph.http.clone(),
                authority_host: graph.authority_host.clone(),
                ..Default::default()
            },
            identity,
            &beta,
            secrets.clone(),
        ));
        Arc::new(steps::investigate::InvestigateDeps::new(r.clone(), r))
    });
    let alerts = Arc::new(SecretGraphSource::new(graph, secrets.clone()));
    Ok(Cloud {
        deps: Deps {
            store: store.clone(),
            queue,
            alerts,
            tickets,
            clock: Arc::new(SystemClock),
            settings: Settings {
                ingest_health,
                fetch_concurrency: env
                    .fetch_concurrency
                    .unwrap_or(Settings::default().fetch_concurrency),
                ..Settings::default()
            },
            respond,
            investigate,
            handed_on: Default::default(),
        },
        opsramp,
        store,
        secrets,
    })
}

/// track-inquiries: one pass over the open service requests (schedule, or any manual
/// payload). Per-request failures are reported together as a function error after the
/// others were handled.
pub async fn inquiries_handler(
    cloud: &Cloud,
    cal: &crate::domain::calendar::Calendar,
) -> anyhow::Result<Value> {
    let out = steps::inquiries::run(&cloud.deps, cloud.opsramp.as_ref(), cal).await?;
    if !out.errors.is_empty() {
        return Err(anyhow!(
            "{} inquiry(ies) failed of {} open: {}",
            out.errors.len(),
            out.open,
            out.errors.join("; ")
        ));
    }
    Ok(serde_json::to_value(out)?)
}

/// moto and other emulators serve S3 on a path, not on a bucket sub-domain.
pub fn s3_config(sdk: &aws_config::SdkConfig, emulator: bool) -> aws_sdk_s3::Config {
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(emulator)
        .build()
}

/// Manual invocation of fetch-alerts: `{"tenant": "kaede-shoji", "product": "mde"}`
/// (`product` optional: every subscribed product).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    tenant: String,
    #[serde(default)]
    product: Option<String>,
}

/// fetch-alerts: a schedule event (any payload without `tenant`) fetches every tenant ×
/// product; a manual payload fetches one tenant. Failures of single tenant × products are
/// reported together after the others ran, as a function error (so the Errors alarm fires).
pub async fn fetch_handler(deps: &Deps, payload: Value) -> anyhow::Result<Value> {
    let manual = payload.get("tenant").is_some();
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    if manual {
        let req: FetchRequest = serde_json::from_value(payload).context("manual fetch payload")?;
        let tenant = deps
            .store
            .get_tenant(&req.tenant)
            .await?
            .ok_or_else(|| anyhow!("tenant {} is not registered", req.tenant))?;
        let products = match &req.product {
            Some(p) => vec![Product::parse(p).ok_or_else(|| {
                anyhow!("product {p:?} is not one of mde mdo mda mdi idp sentinel")
            })?],
            None => tenant.products.clone(),
        };
        for p in products {
            match steps::fetch::run(deps, &tenant.id, p).await {
                Ok(o) => outcomes.push(o),
                Err(e) => errors.push(format!("{}/{p}: {e:#}", tenant.id)),
            }
        }
    } else {
        for r in steps::fetch::run_all(deps).await? {
            match r {
                Ok(o) => outcomes.push(o),
                Err((t, p, e)) => errors.push(format!("{t}/{p}: {e}")),
            }
        }
    }
    let new: usize = outcomes.iter().map(|o| o.new_versions).sum();
    if !errors.is_empty() {
        return Err(anyhow!(
            "{} fetch(es) failed ({} succeeded, {new} new alert versions classified and handed on): {}",
            errors.len(),
            outcomes.len(),
            errors.join("; ")
        ));
    }
    Ok(json!({"fetched": outcomes, "new_versions": new}))
}

/// Manual invocation of classify / create-ticket: one alert version.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRef {
    tenant: String,
    alert_id: String,
    last_update: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    v: Option<u32>,
}

/// classify and create-ticket: an SQS batch → one step per record, failures reported per
/// record (`ReportBatchItemFailures`) so one bad message never re-runs the good ones; or a
/// manual payload `{"tenant","alert_id","last_update"}` → that step's outcome.
pub async fn queue_handler(deps: &Deps, q: QueueName, payload: Value) -> anyhow::Result<Value> {
    if payload.get("Records").is_some() {
        let ev: SqsEvent = serde_json::from_value(payload).context("SQS event")?;
        let mut resp = SqsBatchResponse::default();
        for rec in ev.records {
            let id = rec.message_id.clone().unwrap_or_default();
            let body = rec.body.unwrap_or_default();
            let receive_count = rec
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            if let Err(e) = steps::runs::handle_recorded(deps, q, &body, receive_count).await {
                tracing::warn!(queue = q.as_str(), message_id = %id, error = ?format!("{e:#}"), "record failed; left for retry");
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                resp.batch_item_failures.push(f);
            }
        }
        return Ok(serde_json::to_value(resp)?);
    }
    let m: ManualRef = serde_json::from_value(payload).context(
        "manual payload: expected {\"tenant\", \"alert_id\", \"last_update\"} or an SQS event",
    )?;
    let msg = AlertRef {
        v: m.v.unwrap_or(MESSAGE_VERSION),
        tenant: m.tenant,
        alert_id: m.alert_id,
        last_update: m.last_update,
        rerun: None,
    };
    Ok(match q {
        QueueName::Classify => serde_json::to_value(steps::classify::run(deps, &msg).await?)?,
        QueueName::Ticket => serde_json::to_value(steps::ticket::run(deps, &msg).await?)?,
        QueueName::Respond => serde_json::to_value(steps::respond::plan(deps, &msg).await?)?,
        // By hand is an operator's rerun: investigate again even if done before.
        QueueName::Investigate => {
            serde_json::to_value(steps::investigate::run(deps, &msg, true).await?)?
        }
        QueueName::Check => {
            return Err(anyhow!(
                "check-action takes {{\"tenant\", \"check\"}} or an SQS event"
            ))
        }
    })
}

/// The operator's rerun payload: exactly one of `alert` and `incident`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RerunPayload {
    tenant: String,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    incident: Option<String>,
    from: String,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsPayload {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    stuck_after_s: Option<u64>,
}

/// rerun (invoked by hand only): `{"tenant","alert"|"incident","from","force"?}` puts the
/// alert or incident back on the step's queue (the functions behind it do the rest);
/// `{"runs": {"tenant"?, "since"?, "stuck_after_s"?}}` lists failed and stuck work. A
/// report rerun is the monthly-report function's own manual payload: this one says which.
pub async fn rerun_handler(deps: &Deps, payload: Value) -> anyhow::Result<Value> {
    if let Some(r) = payload.get("runs") {
        let q: RunsPayload = serde_json::from_value(r.clone())
            .context("runs payload: {\"tenant\"?, \"since\"?, \"stuck_after_s\"?}")?;
        let items = steps::runs::list(
            deps.store.as_ref(),
            None,
            &steps::runs::RunsQuery {
                tenant: q.tenant,
                since: q.since,
                stuck_after: std::time::Duration::from_secs(q.stuck_after_s.unwrap_or(1800)),
            },
            deps.clock.now(),
        )
        .await?;
        return Ok(json!({"runs": items}));
    }
    let p: RerunPayload = serde_json::from_value(payload).context(
        "rerun payload: {\"tenant\", \"alert\" or \"incident\", \"from\", \"force\"?} or {\"runs\": {…}}",
    )?;
    let target = match (p.alert, p.incident) {
        (Some(a), None) => steps::rerun::Target::Alert(a),
        (None, Some(k)) => steps::rerun::Target::Incident(k),
        _ => return Err(anyhow!("give exactly one of \"alert\" and \"incident\"")),
    };
    let from = steps::rerun::FromStep::parse(&p.from).map_err(|e| anyhow!(e))?;
    let out = steps::rerun::run(
        deps,
        &steps::rerun::RerunRequest {
            tenant: p.tenant.clone(),
            target,
            from,
            force: p.force,
        },
    )
    .await?;
    if let Some(m) = &out.report_month {
        return Err(anyhow!(
            "a report is rebuilt by the monthly-report function: invoke it with {{\"tenant\": \"{}\", \"month\": \"{m}\"}}",
            p.tenant
        ));
    }
    Ok(serde_json::to_value(out)?)
}

/// JSON logs for CloudWatch; level from RUST_LOG (default info).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Runs a Lambda handler until the runtime stops: the body of every function's `main`.
pub async fn serve<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    lambda_runtime::run(lambda_runtime::service_fn(
        |ev: lambda_runtime::LambdaEvent<Value>| {
            let fut = handler(ev.payload);
            async move {
                fut.await
                    .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
            }
        },
    ))
    .await
}

/// What `provision_emulator` created.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub table: String,
    pub bucket: String,
    pub queues: QueueUrls,
}

/// Creates the table, bucket and queues template.yaml declares, on an emulator (moto):
/// for `mss demo --backend aws` and the local Lambda smoke test. Idempotent.
pub async fn provision_emulator(endpoint_url: &str, name: &str) -> anyhow::Result<Provisioned> {
    let sdk = crate::adapters::aws::sdk_config(Some(endpoint_url)).await;
    let table = format!("{name}-table");
    let bucket = format!("{name}-bodies");
    let s3 = aws_sdk_s3::Client::from_conf(s3_config(&sdk, true));
    let r = s3
        .create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await;
    if let Err(e) = r {
        let e = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
        if !e.contains("BucketAlreadyOwnedByYou") && !e.contains("BucketAlreadyExists") {
            return Err(anyhow!("S3 CreateBucket {bucket}: {e}"));
        }
    }
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table, None);
    store.create_table().await?;
    let queues = SqsQueue::create_queues(&aws_sdk_sqs::Client::new(&sdk), name, 360, 5).await?;
    Ok(Provisioned {
        table,
        bucket,
        queues,
    })
}

/// respond: SQS batches (plans and checks) like the other consumers, plus the operator's
/// manual payloads `{"approve": {"tenant","incident","by"}}` and
/// `{"release": {"tenant","device","reason","by"}}`.
pub async fn respond_handler(deps: &Deps, payload: Value) -> anyhow::Result<Value> {
    let s = |v: &Value, k: &str| -> anyhow::Result<String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("missing string field {k:?}"))
    };
    if let Some(a) = payload.get("approve") {
        let done = steps::respond::approve(
            deps.store.as_ref(),
            deps.queue.as_ref(),
            deps.clock.now(),
            &s(a, "tenant")?,
            &s(a, "incident")?,
            &s(a, "by")?,
        )
        .await?;
        if done.is_empty() {
            return Err(anyhow!("no action waits for approval in that incident"));
        }
        return Ok(serde_json::to_value(done)?);
    }
    if let Some(r) = payload.get("release") {
        let rec = steps::respond::release(
            deps.store.as_ref(),
            deps.queue.as_ref(),
            deps.clock.now(),
            &s(r, "tenant")?,
            &s(r, "device")?,
            &s(r, "reason")?,
            &s(r, "by")?,
        )
        .await?;
        return Ok(serde_json::to_value(rec)?);
    }
    queue_handler(deps, QueueName::Respond, payload).await
}

/// check-action: SQS batches of delayed checks, or a manual `{"tenant", "check"}` (the
/// action key shown in the demo JSON and on the ticket's records).
pub async fn check_handler(deps: &Deps, payload: Value) -> anyhow::Result<Value> {
    if payload.get("Records").is_some() {
        return queue_handler(deps, QueueName::Check, payload).await;
    }
    let c: crate::messages::ActionCheck = serde_json::from_value(json!({
        "v": MESSAGE_VERSION,
        "tenant": payload.get("tenant").and_then(Value::as_str).unwrap_or_default(),
        "check": payload.get("check").and_then(Value::as_str).unwrap_or_default(),
    }))?;
    if c.tenant.is_empty() || c.check.is_empty() {
        return Err(anyhow!(
            "manual payload: expected {{\"tenant\", \"check\"}} or an SQS event"
        ));
    }
    Ok(serde_json::to_value(
        steps::respond::check(deps, &c).await?,
    )?)
}

/// monthly-report's own dependencies, beside [`Cloud`]: the report archive (S3, in the
/// `MSS_BUCKET` bucket under `MSS_REPORTS_PREFIX`, default `reports/` — the only prefix
/// template.yaml's policy lets the function write) and the business calendar. Read from the
/// environment here rather than in [`CloudEnv`], so no other function's configuration changes.
pub struct Reports {
    pub archive: Arc<dyn crate::steps::deliver_report::ReportArchive>,
    pub calendar: crate::domain::calendar::Calendar,
    /// Tenants drafted at once by the schedule.
    pub concurrency: usize,
}

pub async fn reports_init(env: &CloudEnv) -> anyhow::Result<Reports> {
    let bucket = env.bucket.as_deref().ok_or_else(|| {
        anyhow!("environment variable MSS_BUCKET is not set (reports are archived there)")
    })?;
    let sdk = crate::adapters::aws::sdk_config(env.aws_endpoint_url.as_deref()).await;
    let s3 = aws_sdk_s3::Client::from_conf(s3_config(&sdk, env.aws_endpoint_url.is_some()));
    Ok(Reports {
        archive: Arc::new(crate::adapters::report_archive::S3ReportArchive::new(
            s3,
            bucket,
            opt("MSS_REPORTS_PREFIX").as_deref(),
        )),
        calendar: crate::domain::calendar::Calendar::default(),
        concurrency: 4,
    })
}

/// Manual draft of monthly-report: `{"tenant": "kaede-shoji", "month": "2026-11"}` (`month`
/// optional: last month in JST).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonthlyDraftRequest {
    tenant: String,
    #[serde(default)]
    month: Option<String>,
}

/// The operator's send: `{"send": {"tenant": "kaede-shoji", "month": "2026-11", "resend": false}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonthlySendRequest {
    tenant: String,
    month: String,
    #[serde(default)]
    resend: bool,
}

fn parse_month(s: &str) -> anyhow::Result<crate::domain::monthly::Month> {
    crate::domain::monthly::Month::parse(s).map_err(|e| anyhow!(e))
}

/// monthly-report: the schedule's payload (anything without `tenant` or `send`; an optional
/// `"month"` picks the month, default last month in JST) drafts every tenant's report,
/// `reports.concurrency` at a time, and reports the tenants that failed together, as a
/// function error, after the others were drafted. `{"tenant", "month"?}` drafts one;
/// `{"send": {"tenant", "month", "resend"?}}` sends one (once; see `steps::deliver_report`).
pub async fn monthly_handler(
    cloud: &Cloud,
    reports: &Reports,
    payload: Value,
) -> anyhow::Result<Value> {
    use crate::domain::monthly::Month;
    use crate::steps::deliver_report::{self, Mode};
    let now = cloud.deps.clock.now();
    if let Some(s) = payload.get("send") {
        let req: MonthlySendRequest = serde_json::from_value(s.clone()).context(
            "send payload: expected {\"send\": {\"tenant\", \"month\": \"YYYY-MM\", \"resend\": false}}",
        )?;
        let out = deliver_report::run(
            cloud.deps.store.as_ref(),
            reports.archive.as_ref(),
            cloud.opsramp.as_ref(),
            &reports.calendar,
            now,
            &req.tenant,
            parse_month(&req.month)?,
            Mode::Send { resend: req.resend },
        )
        .await?;
        return Ok(serde_json::to_value(out)?);
    }
    if payload.get("tenant").is_some() {
        let req: MonthlyDraftRequest = serde_json::from_value(payload)
            .context("manual draft payload: expected {\"tenant\", \"month\": \"YYYY-MM\"}")?;
        let month = match &req.month {
            Some(m) => parse_month(m)?,
            None => Month::of(now).prev(),
        };
        let out = deliver_report::draft(
            cloud.deps.store.as_ref(),
            reports.archive.as_ref(),
            &reports.calendar,
            now,
            &req.tenant,
            month,
        )
        .await?;
        return Ok(serde_json::to_value(out)?);
    }
    let month = match payload.get("month") {
        None | Some(Value::Null) => Month::of(now).prev(),
        Some(Value::String(m)) => parse_month(m)?,
        Some(other) => return Err(anyhow!("\"month\" must be \"YYYY-MM\", not {other}")),
    };
    let results = deliver_report::draft_all(
        cloud.deps.store.clone(),
        reports.archive.clone(),
        reports.calendar.clone(),
        now,
        month,
        reports.concurrency,
    )
    .await?;
    let mut drafted = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(o) => drafted.push(o),
            Err((t, e)) => errors.push(format!("{t}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(anyhow!(
            "{} monthly draft(s) of {month} failed ({} drafted): {}",
            errors.len(),
            drafted.len(),
            errors.join("; ")
        ));
    }
    Ok(json!({"month": month.to_string(), "drafted": drafted}))
}

/// activity-digest's own dependencies, beside [`Cloud`]: the Log Analytics client (per tenant,
/// from `<prefix>azure/<tenant>`; base `MSS_LOGANALYTICS_BASE`, default the public API) and
/// the rule pack embedded at build time. Read from the environment here rather than in
/// [`CloudEnv`], so no other function's configuration changes.
pub async fn digest_init(
    env: &CloudEnv,
    cloud: &Cloud,
) -> anyhow::Result<Arc<steps::digest::DigestDeps>> {
    use crate::adapters::loganalytics::{LogAnalyticsConfig, SecretLogAnalytics};
    let extra_ca_pem = match &env.extra_ca_file {
        Some(f) => Some(
            std::fs::read_to_string(f).with_context(|| format!("reading MSS_EXTRA_CA_FILE {f}"))?,
        ),
        None => None,
    };
    let mut cfg = LogAnalyticsConfig {
        http: HttpSettings {
            extra_ca_pem,
            ..HttpSettings::default()
        },
        ..LogAnalyticsConfig::default()
    };
    if let Some(b) = opt("MSS_LOGANALYTICS_BASE") {
        crate::adapters::http::require_https("MSS_LOGANALYTICS_BASE", &b)?;
        cfg.base = b;
    }
    if let Some(a) = &env.authority_host {
        cfg.authority_host = a.clone();
    }
    let dd = steps::digest::DigestDeps::new(
        cloud.deps.store.clone(),
        cloud.deps.clock.clone(),
        Arc::new(SecretLogAnalytics::new(cfg, cloud.secrets.clone())),
        cloud.opsramp.clone(),
    );
    if dd.rules.is_empty() || !dd.rule_errors.is_empty() {
        tracing::error!(rules = dd.rules.len(), errors = ?dd.rule_errors, "activity rule pack is empty or has unreadable files");
    }
    Ok(Arc::new(dd))
}

/// Manual run of activity-digest: `{"tenant": "kaede-shoji"}` (from the cursor) or
/// `{"tenant": "kaede-shoji", "since": "2026-11-24"}` (every complete period from that JST day;
/// periods already posted are found and not posted again).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestRequest {
    tenant: String,
    #[serde(default)]
    since: Option<String>,
}

/// activity-digest: the schedule's payload (anything without `tenant`) runs every tenant with
/// `[log_analysis]`, `dd.concurrency` at a time, and reports the tenants that failed together,
/// as a function error, after the others ran; `{"tenant", "since"?}` runs one.
pub async fn digest_handler(
    dd: Arc<steps::digest::DigestDeps>,
    payload: Value,
) -> anyhow::Result<Value> {
    use steps::digest::{self, Trigger};
    if payload.get("tenant").is_some() {
        let req: DigestRequest = serde_json::from_value(payload).context(
            "manual payload: expected {\"tenant\"} or {\"tenant\", \"since\": \"YYYY-MM-DD\"}",
        )?;
        let trigger = match &req.since {
            None => Trigger::Manual,
            Some(s) => Trigger::Since(
                chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map_err(|_| anyhow!("\"since\" must be a date YYYY-MM-DD (JST), not {s:?}"))?,
            ),
        };
        let out = digest::run(&dd, &req.tenant, trigger).await?;
        return Ok(serde_json::to_value(out)?);
    }
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for r in digest::run_all(dd).await? {
        match r {
            Ok(o) => done.push(o),
            Err((t, e)) => errors.push(format!("{t}: {e}")),
        }
    }
    let posted: usize = done.iter().map(|o| o.periods.len()).sum();
    if !errors.is_empty() {
        return Err(anyhow!(
            "{} activity digest(s) failed ({} tenant(s) done, {posted} digest(s) posted or found): {}",
            errors.len(),
            done.len(),
            errors.join("; ")
        ));
    }
    Ok(json!({"tenants": done, "digests": posted}))
}
