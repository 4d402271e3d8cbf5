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
use shared::ports::{ManualClock, Queue, Store};
use shared::runner;
use shared::steps::{self, Deps, Settings};

use crate::scenario::Scenario;

pub struct DemoOptions {
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
        creds,
    )?;
    let mut ops_cfg = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    ops_cfg.http = http;
    let tickets = OpsRampClient::new(
        ops_cfg,
        OpsRampCredential {
            client_id: "mss-soc".into(),
            client_secret: Secret::new(ops_secret),
        },
    )?;
    let store = Arc::new(
        SqliteStore::open(&state_dir.join("mss.sqlite"))?.with_queue_settings(QueueSettings {
            visibility_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_millis(200),
            max_receive: 5,
        }),
    );
    for t in &tenants {
        store.put_tenant(t).await?;
    }
    let clock = ManualClock::new(opts.scenario.start);
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets: Arc::new(tickets),
        clock: clock.clone(),
        settings: Settings::default(),
    };

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
        let (c, _) = store.depth(QueueName::Classify).await?;
        let (k, _) = store.depth(QueueName::Ticket).await?;
        if c + k == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        runner::drain(&deps).await?;
    }

    let report = build_report(&tenants, store.as_ref(), &sim.tickets()).await?;
    let mut dead = 0;
    for q in QueueName::ALL {
        dead += store.depth(q).await?.1;
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
        )
        .await?;
    }
    sim.shutdown().await;
    Ok(())
}

/// One minute of the service: fetch every tenant × product, then drain both queues.
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
                })
            })
            .collect();
        out.push(TenantReport {
            id: t.id.clone(),
            alerts: ids.len(),
            decisions,
            tickets,
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
    println!("fetch errors retried: {fetch_errors}; messages in dead-letter queues: {dead}");
    println!("state: {}", state_dir.display());
    println!("  mss.sqlite         pipeline state (alerts, decisions, incidents, queues)");
    println!("  opsramp-sim.json   the simulated OpsRamp's tickets");
    println!(
        "run again with --state {} to continue from there",
        state_dir.display()
    );
    Ok(())
}
