//! `mss demo`: the whole pipeline on the embedded default (SQLite + in-process queues)
//! against the built-in simulated tenants and OpsRamp, cycle by cycle over simulated time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use rand::Rng;
use serde::Serialize;
use shared::adapters::graph::Secret;

use mss_sim::{Sim, SimConfig, SimTenant, SimTicket};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig};
use shared::adapters::http::HttpSettings;
use shared::adapters::opsramp::{ext_ticket_id, OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::{QueueSettings, SqliteStore};
use shared::domain::classify::DecisionKind;
use shared::messages::QueueName;
use shared::ports::{ManualClock, Store};
use shared::runner;
use shared::steps::{self, Deps, Settings};

use crate::scenario::Scenario;

pub enum Backend {
    /// SQLite and in-process queues in the state directory.
    Embedded,
    /// DynamoDB, SQS, S3 and Secrets Manager at an emulator's endpoint (moto).
    Aws { endpoint_url: String, name: String },
}

pub struct DemoOptions {
    pub backend: Backend,
    pub scenario: Scenario,
    pub state: Option<PathBuf>,
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub tenants: Vec<TenantReport>,
}

#[derive(Debug, Serialize)]
pub struct TenantReport {
    pub id: String,
    pub alerts: usize,
    pub decisions: BTreeMap<&'static str, usize>,
    pub tickets: Vec<TicketReport>,
    /// First-response actions, one per intent (not per API call).
    pub actions: Vec<ActionReport>,
    /// The scenario month's advisory report (report.html; report.json beside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_report: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ActionReport {
    pub kind: shared::domain::response::ActionKind,
    pub target: String,
    pub incident_key: String,
    pub status: &'static str,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct TicketReport {
    pub id: String,
    pub subject: String,
    pub priority: String,
    pub status: String,
    pub incident_key: String,
    pub alert_ids: Vec<String>,
    pub updates: u32,
    /// The text of every response posted to the ticket, oldest first.
    pub responses: Vec<String>,
}

fn random_secret(prefix: &str) -> String {
    let mut r = rand::rng();
    let tail: String = (0..32)
        .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("{prefix}-{tail}")
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let tenants = opts.scenario.tenants()?;
    let state_dir = match &opts.state {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("mss-demo-{}", Utc::now().format("%Y%m%d-%H%M%S")))
        }
    };
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;

    // Credentials exist only for this run: the simulator learns them, the clients use them.
    let mut creds = Vec::new();
    let mut sim_tenants = Vec::new();
    for (t, st) in tenants.iter().zip(&opts.scenario.tenants) {
        let client_id = format!("{}-app", t.id);
        let secret = random_secret("sim-secret");
        sim_tenants.push(SimTenant {
            azure_tenant_id: t.azure_tenant_id.clone(),
            client_id: client_id.clone(),
            client_secret: secret.clone(),
            alerts: st.alerts.clone(),
        });
        creds.push(AzureAppCredential {
            tenant: t.id.clone(),
            azure_tenant_id: t.azure_tenant_id.clone(),
            client_id,
            client_secret: Secret::new(secret),
        });
    }
    let ops_secret = random_secret("sim-opsramp");
    let sim = Sim::start(
        SimConfig {
            tenants: sim_tenants,
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: ops_secret.clone(),
            state_file: Some(state_dir.join("opsramp-sim.json")),
            all_visible: false,
            start_clock: opts.scenario.start,
        },
        "127.0.0.1:0".parse()?,
    )
    .await
    .context("starting the simulator")?;

    for (t, st) in tenants.iter().zip(&opts.scenario.tenants) {
        sim.add_devices(&t.azure_tenant_id, st.devices.clone());
        sim.add_users(&t.azure_tenant_id, st.users.clone());
    }
    let clock = ManualClock::new(opts.scenario.start);
    let (mut deps, opsramp) = match &opts.backend {
        Backend::Embedded => {
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
                creds.clone(),
            )?;
            let respond = shared::steps::respond::ResponseDeps {
                devices: Arc::new(shared::adapters::mde::MdeClient::new(
                    shared::adapters::mde::MdeConfig {
                        base: sim.mde_base(),
                        authority_host: sim.authority_host(),
                        http: http.clone(),
                        ..Default::default()
                    },
                    creds.clone(),
                )?),
                users: Arc::new(shared::adapters::identity::IdentityClient::new(
                    shared::adapters::identity::IdentityConfig {
                        graph_base: sim.graph_base(),
                        authority_host: sim.authority_host(),
                        http: http.clone(),
                        ..Default::default()
                    },
                    creds.clone(),
                )?),
                mail: Arc::new(shared::adapters::mdo::MdoClient::new(
                    &sim.graph_beta_base(),
                    &sim.authority_host(),
                    &http,
                    creds.clone(),
                )?),
                calendar: shared::domain::calendar::Calendar::default(),
                check_every: Duration::from_secs(60),
                give_up_after: Duration::from_secs(2 * 3600),
            };
            let investigate = shared::steps::investigate::InvestigateDeps::new(
                Arc::new(shared::adapters::hunting::HuntingClient::new(
                    shared::adapters::hunting::HuntingConfig {
                        graph_base: sim.graph_base(),
                        authority_host: sim.authority_host(),
                        http: http.clone(),
                        ..Default::default()
                    },
                    creds.clone(),
                )?),
                respond.users.clone(),
            );
            let mut ops_cfg = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
            ops_cfg.http = http;
            let tickets = Arc::new(OpsRampClient::new(
                ops_cfg,
                OpsRampCredential {
                    client_id: "mss-soc".into(),
                    client_secret: Secret::new(ops_secret.clone()),
                },
            )?);
            let s = Arc::new(
                SqliteStore::open(&state_dir.join("mss.sqlite"))?
                    .with_clock(clock.clone())
                    .with_queue_settings(QueueSettings {
                        visibility_timeout: Duration::from_secs(60),
                        retry_delay: Duration::from_millis(200),
                        max_receive: 5,
                    }),
            );
            (
                Deps {
                    store: s.clone(),
                    queue: s,
                    alerts: Arc::new(graph),
                    tickets: tickets.clone(),
                    clock: clock.clone(),
                    settings: Settings::default(),
                    respond: Some(Arc::new(respond)),
                    investigate: Some(Arc::new(investigate)),
                    handed_on: Default::default(),
                },
                tickets,
            )
        }
        Backend::Aws { endpoint_url, name } => {
            let plain: Vec<(String, String, String, String)> = creds
                .iter()
                .map(|c| {
                    (
                        c.tenant.clone(),
                        c.azure_tenant_id.clone(),
                        c.client_id.clone(),
                        c.client_secret.secret().to_string(),
                    )
                })
                .collect();
            aws_deps(endpoint_url, name, &plain, &ops_secret, &sim, &state_dir).await?
        }
    };
    deps.clock = clock.clone();
    let (store, queue) = (deps.store.clone(), deps.queue.clone());
    for t in &tenants {
        store.put_tenant(t).await?;
    }

    let mut desk = Desk {
        http: shared::adapters::http::build_client(&HttpSettings {
            extra_ca_pem: Some(sim.ca_pem()),
            ..HttpSettings::default()
        })?,
        base: sim.opsramp_base(),
        secret: ops_secret.clone(),
        pending: tenants
            .iter()
            .zip(&opts.scenario.tenants)
            .flat_map(|(t, st)| st.inquiries.iter().map(|i| (t.id.clone(), i.clone())))
            .collect(),
    };
    let calendar = shared::domain::calendar::Calendar::default();
    let mut inquiry_stats = steps::inquiries::InquiryOutcome::default();
    let mut t = opts.scenario.start;
    let mut cycles = 0u64;
    let mut fetch_errors = 0u64;
    let mut last_progress = Instant::now();
    loop {
        let last = t >= opts.scenario.end;
        let now = t.min(opts.scenario.end);
        sim.set_clock(now);
        clock.set(now);
        fetch_errors += cycle(&deps).await?;
        // Inquiries: the desk files what has arrived; the tracker runs every 5 minutes.
        if !desk.pending.is_empty() {
            let existing: Vec<String> = sim
                .service_requests()
                .into_iter()
                .filter_map(|s| s.ext_ticket_id)
                .collect();
            desk.file_due(now, &existing).await?;
        }
        if cycles % 5 == 0 || last {
            let o = steps::inquiries::run(&deps, opsramp.as_ref(), &calendar).await?;
            inquiry_stats.due_set += o.due_set;
            inquiry_stats.reminded += o.reminded;
            inquiry_stats.escalated += o.escalated;
            inquiry_stats.open = o.open;
            inquiry_stats.errors.extend(o.errors);
        }
        cycles += 1;
        if last_progress.elapsed() > Duration::from_secs(2) || last {
            last_progress = Instant::now();
            eprintln!(
                "  simulated {} — {} cycles, {:.1} s",
                shared::domain::incident::jst(now),
                cycles,
                started.elapsed().as_secs_f64()
            );
        }
        if last {
            break;
        }
        t += chrono::Duration::minutes(1);
    }
    // Once more at the end, then let released messages (failed steps) run out their retries.
    fetch_errors += cycle(&deps).await?;
    for _ in 0..50 {
        let mut live = 0;
        for q in [
            QueueName::Classify,
            QueueName::Ticket,
            QueueName::Respond,
            QueueName::Investigate,
        ] {
            live += queue.depth(q).await?.0;
        }
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        runner::drain(&deps).await?;
    }

    let mut report = build_report(&tenants, store.as_ref(), &sim.tickets()).await?;
    // The scenario month's advisory report per tenant, as the service would make it on the 1st.
    let month = shared::domain::monthly::Month::of(opts.scenario.start);
    for tr in report.tenants.iter_mut() {
        let r = steps::monthly::build(
            store.as_ref(),
            opts.scenario.end,
            &calendar,
            &tr.id,
            month,
            None,
        )
        .await?;
        let dir = state_dir
            .join("reports")
            .join(&tr.id)
            .join(month.to_string());
        let (html, _) = crate::write_report(&dir, &r)?;
        tr.monthly_report = Some(html.display().to_string());
    }
    let mut dead = 0;
    for q in QueueName::ALL {
        dead += queue.depth(q).await?.1;
    }
    if opts.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(
            &report,
            store.as_ref(),
            &tenants,
            &state_dir,
            cycles,
            fetch_errors,
            dead,
            started.elapsed(),
            &inquiry_stats,
        )
        .await?;
    }
    sim.shutdown().await;
    Ok(())
}

/// One minute of the service: fetch every tenant × product, then drain both queues.
/// The service desk's side of the scenario: files each inquiry as an OpsRamp service request
/// once its `received` time has come (simulator only: it back-dates `createdDate`).
struct Desk {
    http: reqwest::Client,
    base: String,
    secret: String,
    pending: Vec<(String, crate::scenario::ScenarioInquiry)>,
}

impl Desk {
    async fn file_due(
        &mut self,
        now: chrono::DateTime<Utc>,
        existing: &[String],
    ) -> anyhow::Result<()> {
        let due: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, i)| i.received <= now)
            .cloned()
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.pending.retain(|(_, i)| i.received > now);
        let tok: serde_json::Value = self
            .http
            .post(format!("{}/tenancy/auth/oauth/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "mss-soc"),
                ("client_secret", self.secret.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let token = tok["access_token"].as_str().unwrap_or_default().to_string();
        for (tenant, i) in due {
            let ext = format!("desk-{tenant}-{}", i.received.timestamp());
            if existing.contains(&ext) {
                continue; // filed by an earlier run on the same state
            }
            self.http
                .post(format!("{}/api/v2/tenants/client_1234/serviceRequests", self.base))
                .bearer_auth(&token)
                .json(&serde_json::json!({"subject": i.subject, "description": "お客様からのお問い合わせ（デモ）",
                    "extTicketId": ext, "simReceivedAt": i.received.to_rfc3339(),
                    "customFields": [{"name": "mss_tenant", "value": tenant}, {"name": "inquiry_kind", "value": i.kind}]}))
                .send()
                .await?
                .error_for_status()?;
        }
        Ok(())
    }
}

async fn cycle(deps: &Deps) -> anyhow::Result<u64> {
    let mut errors = 0;
    for r in steps::fetch::run_all(deps).await? {
        if let Err((tenant, product, e)) = r {
            errors += 1;
            tracing::warn!(tenant = %tenant, product = %product, error = ?e, "fetch failed; the next cycle retries");
        }
    }
    runner::drain(deps).await?;
    Ok(errors)
}

fn plain_key(key: &str) -> String {
    key.split_once(':')
        .map(|(_, k)| k.to_string())
        .unwrap_or_else(|| key.to_string())
}

pub async fn build_report(
    tenants: &[shared::domain::tenant::Tenant],
    store: &dyn Store,
    sim_tickets: &[SimTicket],
) -> anyhow::Result<DemoReport> {
    let mut out = Vec::new();
    for t in tenants {
        let ids = store.list_alert_ids(&t.id).await?;
        let mut decisions: BTreeMap<&'static str, usize> = BTreeMap::new();
        for k in [
            DecisionKind::Incident,
            DecisionKind::Monitored,
            DecisionKind::OutOfScope,
        ] {
            decisions.insert(k.as_str(), 0);
        }
        for (_, k) in store.list_decisions(&t.id).await? {
            *decisions.entry(k.as_str()).or_default() += 1;
        }
        let incidents: HashMap<String, (String, Vec<String>)> = store
            .list_incidents(&t.id)
            .await?
            .into_iter()
            .map(|i| (ext_ticket_id(&t.id, &i.key), (i.key, i.alert_ids)))
            .collect();
        let tickets = sim_tickets
            .iter()
            .filter_map(|st| {
                let ext = st.ext_ticket_id.as_deref()?;
                let (key, alerts) = incidents.get(ext)?;
                Some(TicketReport {
                    id: st.id.clone(),
                    subject: st.subject.clone(),
                    priority: st.priority.clone(),
                    status: st.status.clone(),
                    incident_key: plain_key(key),
                    alert_ids: alerts.clone(),
                    updates: st.updates,
                    responses: st.responses.iter().map(|r| r.description.clone()).collect(),
                })
            })
            .collect();
        let actions = store
            .list_actions(&t.id)
            .await?
            .into_iter()
            .map(|a| ActionReport {
                kind: a.kind,
                target: a.target,
                incident_key: plain_key(&a.incident_key),
                status: a.status.as_str(),
                reason: a.reason,
            })
            .collect();
        out.push(TenantReport {
            id: t.id.clone(),
            alerts: ids.len(),
            decisions,
            tickets,
            actions,
            monthly_report: None,
        });
    }
    Ok(DemoReport { tenants: out })
}

#[allow(clippy::too_many_arguments)]
async fn print_summary(
    r: &DemoReport,
    store: &dyn Store,
    tenants: &[shared::domain::tenant::Tenant],
    state_dir: &Path,
    cycles: u64,
    fetch_errors: u64,
    dead: u64,
    took: Duration,
    inquiries: &steps::inquiries::InquiryOutcome,
) -> anyhow::Result<()> {
    println!();
    println!(
        "mss demo — {cycles} fetch cycles in {:.1} s (wall)",
        took.as_secs_f64()
    );
    println!();
    println!(
        "{:<14} {:>7} {:>9} {:>10} {:>13} {:>8} {:>8} {:>10}",
        "tenant",
        "alerts",
        "incident",
        "monitored",
        "out_of_scope",
        "tickets",
        "updates",
        "malformed"
    );
    for (tr, t) in r.tenants.iter().zip(tenants) {
        println!(
            "{:<14} {:>7} {:>9} {:>10} {:>13} {:>8} {:>8} {:>10}",
            tr.id,
            tr.alerts,
            tr.decisions.get("incident").copied().unwrap_or(0),
            tr.decisions.get("monitored").copied().unwrap_or(0),
            tr.decisions.get("out_of_scope").copied().unwrap_or(0),
            tr.tickets.len(),
            tr.tickets.iter().map(|t| t.updates as u64).sum::<u64>(),
            store.malformed_count(&t.id).await?
        );
    }
    println!();
    for tr in &r.tenants {
        println!("{} の チケット (最初の 5 件):", tr.id);
        for t in tr.tickets.iter().take(5) {
            println!(
                "  {}  {:<7} alerts={:<2} updates={:<2} {}",
                t.id,
                t.priority,
                t.alert_ids.len(),
                t.updates,
                t.subject
            );
        }
    }
    println!();
    for tr in &r.tenants {
        let mut counts: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for a in &tr.actions {
            let kind = serde_json::to_value(a.kind)?
                .as_str()
                .unwrap_or("")
                .to_string();
            *counts.entry((kind, a.status)).or_default() += 1;
        }
        if counts.is_empty() {
            println!("{} の一次対応: なし（ポリシーで無効）", tr.id);
        } else {
            let parts: Vec<String> = counts
                .iter()
                .map(|((k, s), n)| format!("{k} {s} {n}"))
                .collect();
            println!("{} の一次対応: {}", tr.id, parts.join(", "));
        }
    }
    println!();
    let reports: usize = r
        .tenants
        .iter()
        .flat_map(|t| &t.tickets)
        .flat_map(|t| &t.responses)
        .filter(|x| x.starts_with("【調査報告"))
        .count();
    println!("investigation reports posted: {reports}");
    if let Some((tr, t, text)) = r.tenants.iter().find_map(|tr| {
        tr.tickets.iter().find_map(|t| {
            t.responses
                .iter()
                .find(|x| x.starts_with("【調査報告"))
                .map(|x| (tr, t, x))
        })
    }) {
        println!();
        println!("{} / {} の調査報告（抜粋）:", tr.id, t.id);
        let lines: Vec<&str> = text.lines().collect();
        for l in lines.iter().take(30) {
            println!("  | {l}");
        }
        if lines.len() > 30 {
            println!("  | …（ほか {} 行）", lines.len() - 30);
        }
    }
    println!();
    println!("monthly advisory reports (report.html; report.json beside it):");
    for tr in &r.tenants {
        if let Some(p) = &tr.monthly_report {
            println!("  {:<14} {p}", tr.id);
        }
    }
    println!();
    println!("fetch errors retried: {fetch_errors}; messages in dead-letter queues: {dead}");
    println!(
        "inquiries: {} open; due dates set {}, reminders {}, escalations {}{}",
        inquiries.open,
        inquiries.due_set,
        inquiries.reminded,
        inquiries.escalated,
        if inquiries.errors.is_empty() {
            String::new()
        } else {
            format!(", errors: {}", inquiries.errors.join("; "))
        }
    );
    println!("state: {}", state_dir.display());
    if state_dir.join("mss.sqlite").exists() {
        println!("  mss.sqlite         pipeline state (alerts, decisions, incidents, queues)");
    } else {
        println!(
            "  (pipeline state is in the emulator's DynamoDB table mss-demo-table and SQS queues)"
        );
    }
    println!("  opsramp-sim.json   the simulated OpsRamp's tickets");
    println!(
        "run again with --state {} to continue from there",
        state_dir.display()
    );
    Ok(())
}

/// The cloud shape on an emulator: the same adapters the Lambda functions use, built by the
/// same `shared::lambda::init`, with the credentials going through Secrets Manager.
async fn aws_deps(
    endpoint_url: &str,
    name: &str,
    creds: &[(String, String, String, String)],
    ops_secret: &str,
    sim: &Sim,
    state_dir: &Path,
) -> anyhow::Result<(Deps, Arc<OpsRampClient>)> {
    let prov = shared::lambda::provision_emulator(endpoint_url, name)
        .await
        .with_context(|| format!("preparing the emulator at {endpoint_url}"))?;
    let ca = state_dir.join("sim-ca.pem");
    std::fs::write(&ca, sim.ca_pem())?;
    let env = shared::lambda::CloudEnv {
        table: prov.table.clone(),
        classify_queue_url: prov.queues.classify.clone(),
        ticket_queue_url: prov.queues.ticket.clone(),
        respond_queue_url: prov.queues.respond.clone(),
        check_queue_url: prov.queues.check.clone(),
        investigate_queue_url: prov.queues.investigate.clone(),
        bucket: Some(prov.bucket.clone()),
        opsramp_base_url: sim.opsramp_base(),
        opsramp_tenant_id: "client_1234".into(),
        opsramp_token_path: None,
        secrets_prefix: format!("{name}/"),
        tenant_credentials: Default::default(),
        graph_base: Some(sim.graph_base()),
        authority_host: Some(sim.authority_host()),
        extra_ca_file: Some(ca.display().to_string()),
        aws_endpoint_url: Some(endpoint_url.to_string()),
        classify_dlq_url: prov.queues.classify_dlq.clone(),
        ticket_dlq_url: prov.queues.ticket_dlq.clone(),
        queue_retry_delay_s: Some(1),
        mde_base: Some(sim.mde_base()),
        graph_beta_base: Some(sim.graph_beta_base()),
        respond_check_s: Some(1),
        fetch_concurrency: None,
    };
    let secrets = env.secret_store().await;
    for (tenant, azure, client_id, secret) in creds {
        let v = serde_json::json!({"azure_tenant_id": azure, "client_id": client_id, "client_secret": secret});
        secrets
            .put(&secrets.azure_name(tenant), &v.to_string())
            .await?;
    }
    let v = serde_json::json!({"client_id": "mss-soc", "client_secret": ops_secret});
    secrets.put(&secrets.opsramp_name(), &v.to_string()).await?;
    let cloud = shared::lambda::init(&env).await?;
    Ok((cloud.deps, cloud.opsramp))
}
