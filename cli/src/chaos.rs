//! `mss chaos` (issue 10): the embedded pipeline over a simulated day of many tenants with
//! every fault at once, then compared with the scenario's ground truth.
//!
//! Faults, all at once:
//! - queue messages delivered twice (20 % by default, [`shared::chaos::ChaosQueue`]);
//! - Graph 429 with a fractional `Retry-After` on 10 % and 5xx on 5 % of the calls of every
//!   Graph endpoint the pipeline uses (alerts, users, hunting, confirm compromised, mail
//!   remediation), drawn by the simulator from a seeded generator (`Fault::SeededRate`);
//! - alert versions Graph indexes late: a share of them become visible up to 10 minutes after
//!   their `lastUpdateDateTime` (the simulator's `simVisibleAfterSeconds`);
//! - an OpsRamp outage: every OpsRamp call (token included) answers 503 for 10 simulated
//!   minutes, by default the last 10 of the fault window, while alerts still arrive
//!   (`--opsramp-outage-start-min` moves it, e.g. to the busy middle of the day);
//! - MDE machine actions that end `Failed` or `TimeOut` (the simulator's per-device
//!   `simActionOutcome`), some of them slow;
//! - OpsRamp and MDE calls that act but whose answer is lost (a time-out);
//! - the process killed at random points — after a side effect and before its record, before
//!   store writes, after queue sends, before acks — and restarted (see `shared::chaos` for the
//!   model and what it leaves out).
//!
//! The tenants are copies of the built-in scenario's three customers (`scenario::builtin`,
//! one built-in day per copy, each its own seed), each with its own Azure tenant, domain,
//! devices and users, the built-in day's alerts renamed per copy and spread over `--hours`.
//! Held-for-hours first response is set to `always` (a held action keeps a check queued until
//! the next service window, and the run drains when every queue is empty).
//!
//! The simulated clock moves a minute per cycle (fetch every tenant × product, then drain the
//! queues), as `mss run` does on the wall clock. Queues use the embedded default settings
//! (`QueueSettings::default()`: 300 s visibility, 120 s first retry delay doubling per
//! receive, 5 receives). Client retry back-offs are shortened to milliseconds and Graph's
//! `Retry-After` is a few milliseconds (fractional, and honoured as sent) so a day runs in
//! minutes: this changes how long a call waits, not what it does. The OpsRamp simulator keeps
//! its tickets in memory only. Faults are drawn from seeded generators, but fetches run
//! concurrently, so two runs of one seed differ in detail (not in what they must show).
//!
//! After the last fault the run goes on, fault-free, a minute per cycle, until every queue
//! (delayed checks included) is empty, and compares what happened with what the scenario
//! says should have: see [`Figures`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::opsramp::{ext_ticket_id, OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::{QueueSettings, SqliteStore};
use shared::chaos::{
    Chaos, ChaosAlerts, ChaosDevices, ChaosHunting, ChaosMail, ChaosQueue, ChaosStore,
    ChaosTickets, ChaosUsers, Rates,
};
use shared::domain::alert::{Alert, Product};
use shared::domain::classify::{classify, DecisionKind};
use shared::domain::response::{ActionKind, Mode};
use shared::domain::tenant::Tenant;
use shared::messages::QueueName;
use shared::ports::{ActionStatus, ManualClock, Queue, Store};
use shared::runner;
use shared::steps::{self, Deps, Settings};

/// Simulator-only key of a scenario alert version (late indexing).
const VISIBLE_AFTER: &str = "simVisibleAfterSeconds";

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Customer tenants (copies of the built-in scenario's three kinds of customer).
    #[arg(long, default_value_t = 20)]
    pub tenants: usize,
    /// Alert versions in all (at least; whole alerts are kept together).
    #[arg(long, default_value_t = 5000)]
    pub versions: usize,
    /// Seed of the scenario and of every fault.
    #[arg(long, default_value_t = 20261102)]
    pub seed: u64,
    /// Simulated hours the alerts are spread over.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Keep the state (SQLite, simulated OpsRamp) here; default: a temporary directory,
    /// removed at the end.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Share of queue messages delivered twice.
    #[arg(long, default_value_t = 0.2)]
    pub duplicate_rate: f64,
    /// Share of Graph calls answered 429 (with a fractional Retry-After).
    #[arg(long, default_value_t = 0.10)]
    pub graph_429_rate: f64,
    /// Share of Graph calls answered 5xx.
    #[arg(long, default_value_t = 0.05)]
    pub graph_5xx_rate: f64,
    /// Share of alert versions Graph indexes late.
    #[arg(long, default_value_t = 0.3)]
    pub late_rate: f64,
    /// Longest late indexing, in seconds.
    #[arg(long, default_value_t = 600)]
    pub late_max_s: u32,
    /// Length of the OpsRamp outage, in simulated minutes (0 = none).
    #[arg(long, default_value_t = 10)]
    pub opsramp_outage_min: u32,
    /// When the OpsRamp outage starts, in simulated minutes from the start; default: so that
    /// it ends with the fault window (it is the last fault, and the drain after it measures
    /// the recovery from its backlog).
    #[arg(long)]
    pub opsramp_outage_start_min: Option<u32>,
    /// Scales every kill probability (0 = the process is never killed).
    #[arg(long, default_value_t = 1.0)]
    pub kills: f64,
}

// ---------------------------------------------------------------------------------------
// Scenario

struct ChaosTenant {
    tenant: Tenant,
    client_id: String,
    client_secret: String,
    /// Graph alert versions, some with `simVisibleAfterSeconds`.
    alerts: Vec<Value>,
    devices: Vec<Value>,
    users: Vec<Value>,
}

struct ChaosScenario {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tenants: Vec<ChaosTenant>,
}

fn guid(rng: &mut StdRng) -> String {
    let h: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn time_of(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Per-tenant copy of a 40-hex MDE device id.
fn device_copy(id: &str, tenant: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (tenant as u64 + 1);
    let mut out = String::new();
    for round in 0..3u64 {
        for b in id.bytes().chain(round.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

/// Rewrites one template customer's JSON (tenant config, alerts, devices, users) for
/// tenant number `i`: its own Azure tenant, domain, device and user ids.
struct Rewrite {
    pairs: Vec<(String, String)>,
}

impl Rewrite {
    fn apply(&self, v: &Value) -> Value {
        let mut s = v.to_string();
        for (a, b) in &self.pairs {
            s = s.replace(a.as_str(), b.as_str());
        }
        serde_json::from_str(&s).unwrap_or_else(|_| v.clone())
    }
}

fn build_scenario(a: &ChaosArgs) -> anyhow::Result<ChaosScenario> {
    if a.tenants == 0 || a.tenants > 99 {
        anyhow::bail!("--tenants must be 1..=99");
    }
    if a.hours == 0 || a.hours > 24 * 7 {
        anyhow::bail!("--hours must be 1..=168");
    }
    let mut rng = StdRng::seed_from_u64(a.seed);
    let base = crate::scenario::builtin(a.seed);
    let start = base.start;
    let end = start + chrono::Duration::hours(i64::from(a.hours));
    // The built-in day creates alerts over its first 22 hours: spread them over the whole
    // run, so alerts still arrive while the last faults (the OpsRamp outage) are on.
    let scale = f64::from(a.hours) / 22.0;
    let squeeze = |t: DateTime<Utc>| {
        let ms = (t - start).num_milliseconds() as f64 * scale;
        start + chrono::Duration::milliseconds(ms.round() as i64)
    };
    // Every version is visible (late ones too: see `late_indexing`) by the end of the faults,
    // so the drain that follows measures the pipeline's recovery, not Graph's indexing.
    let cutoff = end;
    let mut tenants = Vec::new();
    for i in 0..a.tenants {
        let j = i % base.tenants.len();
        let template = &base.tenants[j];
        let t_azure = template.config["azure_tenant_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let t_id = template.config["id"].as_str().unwrap_or("t").to_string();
        let domain = template
            .users
            .first()
            .and_then(|u| u["mail"].as_str())
            .and_then(|m| m.split_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "example.test".into());
        let azure = guid(&mut rng);
        let mut pairs = vec![
            (t_azure.clone(), azure.clone()),
            (domain.clone(), format!("t{i:02}.{domain}")),
            (
                "-0000-4000-8000-".to_string(),
                format!("-{:04x}-4000-8000-", i + 1),
            ),
        ];
        for d in &template.devices {
            if let Some(id) = d["id"].as_str() {
                pairs.push((id.to_string(), device_copy(id, i)));
            }
        }
        let rw = Rewrite { pairs };
        let id = format!("{t_id}-{i:02}");
        let mut config = rw.apply(&template.config);
        config["id"] = json!(id);
        config["name"] = json!(format!(
            "{} 第{}",
            template.config["name"].as_str().unwrap_or(""),
            i + 1
        ));
        if config.get("response").is_some() {
            // Held-for-hours actions would keep a check queued until the next service window;
            // the run drains when every queue is empty.
            config["response"]["hours"] = json!("always");
        }
        let tenant = Tenant::from_json_value(&config)
            .map_err(|e| anyhow::anyhow!("chaos tenant {i}: {e}"))?;

        // Alerts: whole alerts from successive built-in days (each its own seed), renamed per
        // copy, until this tenant's share of versions is reached.
        let quota = a.versions / a.tenants + usize::from(i < a.versions % a.tenants);
        let mut alerts: Vec<Value> = Vec::new();
        let mut wellformed = 0usize;
        let mut copy = 0u64;
        while wellformed < quota && copy < 1000 {
            let day = if copy == 0 && i < base.tenants.len() {
                base.clone()
            } else {
                crate::scenario::builtin(
                    a.seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add((i as u64) << 24 | copy),
                )
            };
            let src = &day.tenants[j].alerts;
            let mut order: Vec<String> = Vec::new();
            let mut groups: HashMap<String, Vec<&Value>> = HashMap::new();
            for v in src {
                let key = v["id"].as_str().unwrap_or_default().to_string();
                if !groups.contains_key(&key) {
                    order.push(key.clone());
                }
                groups.entry(key).or_default().push(v);
            }
            for key in order {
                let vs = &groups[&key];
                let malformed = vs.iter().any(|v| Alert::from_value((*v).clone()).is_err());
                // The built-in day's odd items (a malformed one, one claiming another
                // customer's tenant, a hostile title): once per tenant, whatever its quota.
                let special = ["_malformed", "_misrouted", "_hostile"]
                    .iter()
                    .any(|s| key.ends_with(s));
                if special && copy > 0 {
                    continue;
                }
                if wellformed >= quota && !special {
                    continue;
                }
                let mut kept: BTreeSet<String> = BTreeSet::new();
                for v in vs {
                    let mut v = rw.apply(v);
                    if let Some(orig) = v["id"].as_str().map(str::to_string) {
                        v["id"] = json!(format!("{orig}-t{i:02}c{copy}"));
                    }
                    if let Some(inc) = v["incidentId"].as_str().map(str::to_string) {
                        v["incidentId"] = json!(format!("{inc}{i:02}{copy:02}"));
                    }
                    for k in [
                        "lastUpdateDateTime",
                        "createdDateTime",
                        "firstActivityDateTime",
                        "lastActivityDateTime",
                        "resolvedDateTime",
                    ] {
                        if let Some(t) = time_of(&v, k) {
                            v[k] = json!(ts(squeeze(t)));
                        }
                    }
                    if malformed {
                        alerts.push(v);
                        continue;
                    }
                    if time_of(&v, "lastUpdateDateTime").is_some_and(|t| t > cutoff) {
                        continue;
                    }
                    // The very same version twice counts once.
                    if kept.insert(v["lastUpdateDateTime"].to_string()) {
                        wellformed += 1;
                    }
                    alerts.push(v);
                }
            }
            copy += 1;
        }
        late_indexing(&mut alerts, &mut rng, a.late_rate, a.late_max_s, end);

        let devices = template
            .devices
            .iter()
            .map(|d| {
                let mut d = rw.apply(d);
                let outcome = match rng.random_range(0..10) {
                    0 | 1 => "Failed",
                    2 | 3 => "TimeOut",
                    _ => "Succeeded",
                };
                d["simActionOutcome"] = json!(outcome);
                d["simActionMinutes"] = json!(if rng.random_bool(0.25) {
                    rng.random_range(10..30) as f64
                } else {
                    3.0
                });
                d
            })
            .collect();
        let users = template.users.iter().map(|u| rw.apply(u)).collect();
        let secret: String = (0..32)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
            .collect();
        tenants.push(ChaosTenant {
            client_id: format!("{id}-app"),
            client_secret: format!("sim-secret-{secret}"),
            tenant,
            alerts,
            devices,
            users,
        });
    }
    Ok(ChaosScenario {
        start,
        end,
        tenants,
    })
}

/// Marks a share of versions as indexed late (up to `max_s` seconds), never so late that
/// the alert's next version is indexed first (every version is then the newest Graph serves
/// for at least two minutes, so a version the pipeline misses is a lost version, not one
/// Graph never showed), nor later than `end`.
fn late_indexing(
    alerts: &mut [Value],
    rng: &mut StdRng,
    rate: f64,
    max_s: u32,
    end: DateTime<Utc>,
) {
    // Ordered, so the same seed gives the same delays.
    let mut by_id: BTreeMap<String, BTreeSet<DateTime<Utc>>> = BTreeMap::new();
    for v in alerts.iter() {
        if let (Some(id), Some(lu)) = (v["id"].as_str(), time_of(v, "lastUpdateDateTime")) {
            by_id.entry(id.to_string()).or_default().insert(lu);
        }
    }
    let mut delays: HashMap<(String, DateTime<Utc>), u32> = HashMap::new();
    for (id, lus) in &by_id {
        let lus: Vec<_> = lus.iter().copied().collect();
        for (k, lu) in lus.iter().enumerate() {
            if max_s == 0 || !rng.random_bool(rate.clamp(0.0, 1.0)) {
                continue;
            }
            let mut d = rng.random_range(1..=max_s);
            let to_end = (end - *lu).num_seconds();
            if to_end < 1 {
                continue;
            }
            d = d.min(to_end as u32);
            if let Some(next) = lus.get(k + 1) {
                let room = (*next - *lu).num_seconds() - 120;
                if room < 1 {
                    continue;
                }
                d = d.min(room as u32);
            }
            delays.insert((id.clone(), *lu), d);
        }
    }
    for v in alerts.iter_mut() {
        let key = (
            v["id"].as_str().unwrap_or_default().to_string(),
            time_of(v, "lastUpdateDateTime"),
        );
        if let (id, Some(lu)) = key {
            if let Some(d) = delays.get(&(id, lu)) {
                v[VISIBLE_AFTER] = json!(d);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The pipeline, and its restarts

struct World {
    sim: Sim,
    clock: Arc<ManualClock>,
    db: PathBuf,
    creds: Vec<AzureAppCredential>,
    ops_secret: String,
    chaos: Arc<Chaos>,
}

/// Millisecond back-offs: a day of faults runs in minutes. The server's own waits
/// (Retry-After, X-RateLimit-Reset) are still honoured as sent.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(50),
        max_server_wait: Duration::from_secs(120),
    }
}

/// A fresh process: every client and the store connection built anew (nothing cached in
/// memory survives), each port wrapped by the chaos model.
fn start_process(w: &World) -> anyhow::Result<Deps> {
    let sim = &w.sim;
    let http = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        timeout: Duration::from_secs(30),
        ..HttpSettings::default()
    };
    let chaos = &w.chaos;
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http.clone(),
            retry: fast_retry(),
            ..GraphConfig::default()
        },
        w.creds.clone(),
    )?;
    let users: Arc<dyn shared::adapters::identity::RiskyUsers> = Arc::new(ChaosUsers {
        inner: Arc::new(shared::adapters::identity::IdentityClient::new(
            shared::adapters::identity::IdentityConfig {
                graph_base: sim.graph_base(),
                authority_host: sim.authority_host(),
                http: http.clone(),
                retry: fast_retry(),
                min_interval: Duration::from_millis(2),
            },
            w.creds.clone(),
        )?),
        chaos: chaos.clone(),
    });
    let respond = steps::respond::ResponseDeps {
        devices: Arc::new(ChaosDevices {
            inner: Arc::new(shared::adapters::mde::MdeClient::new(
                shared::adapters::mde::MdeConfig {
                    base: sim.mde_base(),
                    authority_host: sim.authority_host(),
                    http: http.clone(),
                    retry: fast_retry(),
                },
                w.creds.clone(),
            )?),
            chaos: chaos.clone(),
        }),
        users: users.clone(),
        mail: Arc::new(ChaosMail {
            inner: Arc::new(shared::adapters::mdo::MdoClient::new(
                &sim.graph_beta_base(),
                &sim.authority_host(),
                &http,
                w.creds.clone(),
            )?),
            chaos: chaos.clone(),
        }),
        calendar: shared::domain::calendar::Calendar::default(),
        check_every: Duration::from_secs(60),
        give_up_after: Duration::from_secs(2 * 3600),
    };
    let investigate = steps::investigate::InvestigateDeps::new(
        Arc::new(ChaosHunting {
            inner: Arc::new(shared::adapters::hunting::HuntingClient::new(
                shared::adapters::hunting::HuntingConfig {
                    graph_base: sim.graph_base(),
                    authority_host: sim.authority_host(),
                    http: http.clone(),
                    retry: fast_retry(),
                    ..Default::default()
                },
                w.creds.clone(),
            )?),
            chaos: chaos.clone(),
        }),
        users,
    );
    let mut ops_cfg = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    ops_cfg.http = http;
    ops_cfg.retry = fast_retry();
    let tickets = Arc::new(OpsRampClient::new(
        ops_cfg,
        OpsRampCredential {
            client_id: "mss-soc".into(),
            client_secret: Secret::new(w.ops_secret.clone()),
        },
    )?);
    let sqlite: Arc<SqliteStore> = Arc::new(
        SqliteStore::open(&w.db)?
            .with_clock(w.clock.clone())
            .with_queue_settings(QueueSettings::default()),
    );
    Ok(Deps {
        store: Arc::new(ChaosStore {
            inner: sqlite.clone(),
            chaos: chaos.clone(),
        }),
        queue: Arc::new(ChaosQueue {
            inner: sqlite,
            chaos: chaos.clone(),
        }),
        alerts: Arc::new(ChaosAlerts {
            inner: Arc::new(graph),
            chaos: chaos.clone(),
        }),
        tickets: Arc::new(ChaosTickets {
            inner: tickets,
            chaos: chaos.clone(),
        }),
        clock: w.clock.clone(),
        settings: Settings::default(),
        respond: Some(Arc::new(respond)),
        investigate: Some(Arc::new(investigate)),
        handed_on: Default::default(),
    })
}

#[derive(Debug, Default, Clone, Serialize)]
struct RunCounts {
    cycles: u64,
    restarts: u64,
    fetch_errors: u64,
    step_failures: u64,
    /// Wall seconds spent fetching and draining (the rest is start-up and the comparison).
    fetch_wall_s: f64,
    drain_wall_s: f64,
    restart_wall_s: f64,
}

/// One minute of the service: fetch every tenant × product, then drain the queues. A kill
/// anywhere restarts the process, which does what the minute still asks of it.
async fn cycle(w: &World, deps: &mut Deps, counts: &mut RunCounts) -> anyhow::Result<()> {
    counts.cycles += 1;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let at = Instant::now();
        let res = steps::fetch::run_all(deps).await;
        counts.fetch_wall_s += at.elapsed().as_secs_f64();
        if w.chaos.is_dead() {
            restart(w, deps, counts)?;
            if attempts < 3 {
                continue;
            }
            break;
        }
        for r in res? {
            if r.is_err() {
                counts.fetch_errors += 1;
            }
        }
        break;
    }
    loop {
        let at = Instant::now();
        let res = runner::drain(deps).await;
        counts.drain_wall_s += at.elapsed().as_secs_f64();
        if w.chaos.is_dead() {
            restart(w, deps, counts)?;
            continue;
        }
        counts.step_failures += res.context("draining the queues")?.failed;
        return Ok(());
    }
}

fn restart(w: &World, deps: &mut Deps, counts: &mut RunCounts) -> anyhow::Result<()> {
    let at = Instant::now();
    w.chaos.revive();
    *deps = start_process(w)?;
    counts.restarts += 1;
    counts.restart_wall_s += at.elapsed().as_secs_f64();
    Ok(())
}

const GRAPH_ENDPOINTS: [Endpoint; 5] = [
    Endpoint::GraphAlerts,
    Endpoint::GraphUsers,
    Endpoint::GraphHunting,
    Endpoint::GraphConfirmCompromised,
    Endpoint::GraphEmailRemediate,
];

const OPSRAMP_ENDPOINTS: [Endpoint; 6] = [
    Endpoint::OpsRampToken,
    Endpoint::OpsRampCreate,
    Endpoint::OpsRampUpdate,
    Endpoint::OpsRampResponse,
    Endpoint::OpsRampSearch,
    Endpoint::OpsRampGet,
];

async fn live_depth(q: &dyn Queue) -> anyhow::Result<u64> {
    let mut n = 0;
    for name in QueueName::ALL {
        n += q.depth(name).await?.0;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Ground truth and the figures

/// What is compared at the end. The targets are all zero; `drain_*` are measurements.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Figures {
    /// Alerts whose newest version was never stored.
    pub alerts_lost: u64,
    /// OpsRamp tickets beyond the first for one incident (same `extTicketId`).
    pub duplicate_tickets: u64,
    /// Incident records in the store without a ticket, or naming a ticket OpsRamp does not
    /// have (or has for another incident).
    pub tickets_missing: u64,
    /// MDE machine actions no action record knows: a request made again after a kill.
    pub duplicate_machine_actions: u64,
    /// Incidents the scenario's criteria make incidents that have no OpsRamp ticket.
    pub incidents_not_ticketed: u64,
    /// Messages in the dead-letter queues at the end.
    pub messages_in_dlq: u64,
    /// Simulated and wall seconds from the last fault to empty queues.
    pub drain_simulated_s: i64,
    pub drain_wall_s: f64,
    // Also checked (targets zero as well):
    /// Versions Graph served (for at least one fetch cycle) that were never stored.
    pub versions_lost: u64,
    /// Alerts whose stored decision is not the one the real classifier gives over all its
    /// versions.
    pub wrong_decisions: u64,
    /// OpsRamp tickets for something that is not an incident of the scenario.
    pub unexpected_tickets: u64,
    /// Ticket responses posted twice (same `extTicketResponseId`).
    pub duplicate_responses: u64,
    /// First-response action intents the tenant's policy calls for that were never
    /// recorded.
    pub actions_missing: u64,
    /// Action records still requesting or in progress after the drain.
    pub actions_unfinished: u64,
    /// First-response notes missing from the ticket: the decision of a held or refused
    /// action, the start and the result of a machine action, a confirmed user.
    pub action_notes_missing: u64,
    /// Queues not empty when the run gave up waiting (12 simulated hours).
    pub not_drained: u64,
}

impl Figures {
    fn failures(&self) -> Vec<(&'static str, u64)> {
        [
            ("alerts_lost", self.alerts_lost),
            ("duplicate_tickets", self.duplicate_tickets),
            ("tickets_missing", self.tickets_missing),
            ("duplicate_machine_actions", self.duplicate_machine_actions),
            ("incidents_not_ticketed", self.incidents_not_ticketed),
            ("messages_in_dlq", self.messages_in_dlq),
            ("versions_lost", self.versions_lost),
            ("wrong_decisions", self.wrong_decisions),
            ("unexpected_tickets", self.unexpected_tickets),
            ("duplicate_responses", self.duplicate_responses),
            ("actions_missing", self.actions_missing),
            ("actions_unfinished", self.actions_unfinished),
            ("action_notes_missing", self.action_notes_missing),
            ("not_drained", self.not_drained),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

#[derive(Debug, Default, Clone, Serialize)]
struct ScenarioSize {
    tenants: usize,
    alerts: usize,
    versions: usize,
    late_indexed_versions: usize,
    malformed_items: usize,
    incidents: usize,
    devices: usize,
    simulated_hours: u32,
    seed: u64,
}

fn action_key(incident: &str, kind: ActionKind, target: &str) -> String {
    let k = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{incident}|{k}|{target}")
}

/// An alert's versions, oldest first, each with the time Graph starts serving it.
type Versions = Vec<(Alert, DateTime<Utc>)>;

/// What the scenario says, per tenant: every version and when Graph shows it.
struct Truth {
    size: ScenarioSize,
    /// (tenant, alert id) -> versions sorted by lastUpdateDateTime: (alert, visible from).
    versions: BTreeMap<(String, String), Versions>,
}

fn truth(sc: &ChaosScenario, a: &ChaosArgs) -> Truth {
    let mut size = ScenarioSize {
        tenants: sc.tenants.len(),
        simulated_hours: a.hours,
        seed: a.seed,
        ..Default::default()
    };
    let mut versions: BTreeMap<(String, String), Versions> = BTreeMap::new();
    for t in &sc.tenants {
        size.devices += t.devices.len();
        for raw in &t.alerts {
            let delay = raw.get(VISIBLE_AFTER).and_then(Value::as_f64);
            let mut clean = raw.clone();
            if let Some(m) = clean.as_object_mut() {
                m.remove(VISIBLE_AFTER);
            }
            match Alert::from_value(clean) {
                Err(_) => size.malformed_items += 1,
                Ok(alert) => {
                    let vis = alert.last_update
                        + chrono::Duration::milliseconds(
                            (delay.unwrap_or(0.0) * 1000.0).round() as i64
                        );
                    let e = versions
                        .entry((t.tenant.id.clone(), alert.id.clone()))
                        .or_default();
                    // The very same version twice is one version.
                    if !e.iter().any(|(v, _)| v.last_update == alert.last_update) {
                        if delay.is_some() {
                            size.late_indexed_versions += 1;
                        }
                        e.push((alert, vis));
                    }
                }
            }
        }
    }
    for vs in versions.values_mut() {
        vs.sort_by_key(|(v, _)| v.last_update);
    }
    size.alerts = versions.len();
    size.versions = versions.values().map(Vec::len).sum();
    Truth { size, versions }
}

async fn evaluate(
    sc: &ChaosScenario,
    truth: &mut Truth,
    store: &SqliteStore,
    sim: &Sim,
    ticks: &[DateTime<Utc>],
) -> anyhow::Result<(Figures, Vec<String>)> {
    let mut f = Figures::default();
    let mut notes = Vec::new();
    let tenants: HashMap<&str, &Tenant> = sc
        .tenants
        .iter()
        .map(|t| (t.tenant.id.as_str(), &t.tenant))
        .collect();
    let mut expected_tickets: BTreeSet<String> = BTreeSet::new();
    let mut expected_actions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut decisions: HashMap<String, HashMap<String, DecisionKind>> = HashMap::new();
    for t in &sc.tenants {
        decisions.insert(
            t.tenant.id.clone(),
            store
                .list_decisions(&t.tenant.id)
                .await?
                .into_iter()
                .collect(),
        );
    }
    for ((tid, aid), vs) in &truth.versions {
        let tenant = tenants[tid.as_str()];
        // Stored versions; which ones Graph served at a fetch tick.
        for (k, (v, vis)) in vs.iter().enumerate() {
            let until = vs[k + 1..].iter().map(|(_, w)| *w).min();
            let served = ticks
                .iter()
                .any(|t| t >= vis && until.is_none_or(|u| *t < u));
            let stored = store
                .get_alert_version(tid, aid, v.last_update)
                .await?
                .is_some();
            if !stored && served {
                f.versions_lost += 1;
                if notes.len() < 20 {
                    notes.push(format!("version lost: {tid} {aid} @ {}", ts(v.last_update)));
                }
            }
            if k + 1 == vs.len() && !stored {
                f.alerts_lost += 1;
                if notes.len() < 20 {
                    notes.push(format!("alert lost: {tid} {aid}"));
                }
            }
        }
        // The real classifier over every version, in order.
        let mut prev: Option<DecisionKind> = None;
        let mut incident_key: Option<String> = None;
        for (v, _) in vs {
            let d = classify(tenant, v, prev);
            prev = Some(d.kind);
            if d.kind == DecisionKind::Incident && !d.tenant_mismatch {
                let key = v.incident_key();
                incident_key.get_or_insert(key.clone());
                let product = v
                    .fields
                    .service_source
                    .as_deref()
                    .and_then(Product::from_service_source);
                let r = &tenant.response;
                let mut kinds: Vec<(ActionKind, Vec<String>)> = Vec::new();
                match product {
                    Some(Product::Mde) => {
                        let devices: BTreeSet<String> = v
                            .evidence()
                            .filter(|e| e.kind() == "deviceEvidence")
                            .filter_map(|e| e.str("mdeDeviceId").map(str::to_string))
                            .collect();
                        if r.mde.isolate != Mode::Off {
                            kinds.push((ActionKind::Isolate, devices.iter().cloned().collect()));
                        }
                        if r.mde.scan != Mode::Off {
                            kinds.push((ActionKind::Scan, devices.into_iter().collect()));
                        }
                    }
                    Some(Product::Idp) if r.idp.confirm_compromised != Mode::Off => {
                        let users: BTreeSet<String> = v
                            .evidence()
                            .filter(|e| e.kind() == "userEvidence")
                            .filter_map(|e| {
                                e.nested_str("userAccount", "azureAdUserId")
                                    .map(str::to_string)
                            })
                            .collect();
                        kinds.push((ActionKind::ConfirmCompromised, users.into_iter().collect()));
                    }
                    _ => {}
                }
                for (kind, targets) in kinds {
                    for target in targets {
                        expected_actions
                            .entry(tid.clone())
                            .or_default()
                            .insert(action_key(&key, kind, &target));
                    }
                }
            }
        }
        if let Some(key) = &incident_key {
            expected_tickets.insert(ext_ticket_id(tid, key));
        }
        let stored = decisions
            .get(tid.as_str())
            .and_then(|d| d.get(aid.as_str()))
            .copied();
        if stored != prev {
            f.wrong_decisions += 1;
            if notes.len() < 20 {
                notes.push(format!(
                    "wrong decision: {tid} {aid}: stored {stored:?}, expected {prev:?}"
                ));
            }
        }
    }
    truth.size.incidents = expected_tickets.len();

    // OpsRamp against the ground truth and against the store.
    let tickets = sim.tickets();
    let mut by_ext: BTreeMap<String, u64> = BTreeMap::new();
    for t in &tickets {
        let Some(ext) = &t.ext_ticket_id else {
            f.unexpected_tickets += 1;
            continue;
        };
        *by_ext.entry(ext.clone()).or_default() += 1;
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &t.responses {
            if let Some(x) = &r.ext_ticket_response_id {
                *seen.entry(x.as_str()).or_default() += 1;
            }
        }
        for (x, n) in seen {
            if n > 1 {
                f.duplicate_responses += n - 1;
                if notes.len() < 20 {
                    notes.push(format!("response posted {n} times: {} {x}", t.id));
                }
            }
        }
    }
    for (ext, n) in &by_ext {
        if *n > 1 {
            f.duplicate_tickets += n - 1;
            notes.push(format!("{n} tickets for {ext}"));
        }
        if !expected_tickets.contains(ext) {
            f.unexpected_tickets += n;
            notes.push(format!("unexpected ticket {ext}"));
        }
    }
    for ext in &expected_tickets {
        if !by_ext.contains_key(ext) {
            f.incidents_not_ticketed += 1;
            if notes.len() < 20 {
                notes.push(format!("incident not ticketed: {ext}"));
            }
        }
    }
    let ticket_ext: HashMap<&str, Option<&str>> = tickets
        .iter()
        .map(|t| (t.id.as_str(), t.ext_ticket_id.as_deref()))
        .collect();
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for t in &sc.tenants {
        let tid = &t.tenant.id;
        for inc in store.list_incidents(tid).await? {
            let ok = inc.ticket_id.as_deref().is_some_and(|id| {
                ticket_ext.get(id).copied().flatten() == Some(ext_ticket_id(tid, &inc.key).as_str())
            });
            if !ok {
                f.tickets_missing += 1;
                notes.push(format!(
                    "incident {tid} {} has ticket {:?}",
                    inc.key, inc.ticket_id
                ));
            }
        }
        let actions = store.list_actions(tid).await?;
        let have: BTreeSet<&str> = actions.iter().map(|a| a.key.as_str()).collect();
        for k in expected_actions.get(tid).into_iter().flatten() {
            if !have.contains(k.as_str()) {
                f.actions_missing += 1;
                if notes.len() < 20 {
                    notes.push(format!("action missing: {tid} {k}"));
                }
            }
        }
        let incidents: HashMap<String, Option<String>> = store
            .list_incidents(tid)
            .await?
            .into_iter()
            .map(|i| (i.key, i.ticket_id))
            .collect();
        for a in &actions {
            let mut stages: Vec<&str> = Vec::new();
            // A held (approval mode, or the hourly cap) or refused action says so once.
            if a.approved_by.is_none()
                && matches!(
                    a.status,
                    ActionStatus::PendingApproval | ActionStatus::Refused
                )
            {
                stages.push("decided");
            }
            if a.machine_action_id.is_some() {
                stages.push("started");
                if matches!(
                    a.status,
                    ActionStatus::Succeeded
                        | ActionStatus::Failed
                        | ActionStatus::TimedOut
                        | ActionStatus::Cancelled
                ) {
                    stages.push("result");
                }
            }
            if a.kind == ActionKind::ConfirmCompromised && a.status == ActionStatus::Succeeded {
                stages.push("done");
            }
            let posted: BTreeSet<&str> = incidents
                .get(&a.incident_key)
                .cloned()
                .flatten()
                .and_then(|id| tickets.iter().find(|t| t.id == id))
                .map(|t| {
                    t.responses
                        .iter()
                        .filter_map(|r| r.ext_ticket_response_id.as_deref())
                        .collect()
                })
                .unwrap_or_default();
            for stage in stages {
                let ext = format!("mss-action-{}-{stage}", a.key.replace(['|', ':'], "-"));
                if !posted.contains(ext.as_str()) {
                    f.action_notes_missing += 1;
                    if notes.len() < 30 {
                        notes.push(format!("note missing: {tid} {ext}"));
                    }
                }
            }
            if matches!(
                a.status,
                ActionStatus::Requesting | ActionStatus::InProgress
            ) {
                f.actions_unfinished += 1;
                if notes.len() < 20 {
                    notes.push(format!("action unfinished: {tid} {} {:?}", a.key, a.status));
                }
            }
            if let Some(id) = &a.machine_action_id {
                referenced.insert(id.clone());
            }
        }
    }
    for m in sim.machine_actions() {
        let id = m["id"].as_str().unwrap_or_default();
        if !referenced.contains(id) {
            f.duplicate_machine_actions += 1;
            if notes.len() < 40 {
                notes.push(format!(
                    "machine action no record knows: {id} {} on {} ({})",
                    m["type"].as_str().unwrap_or(""),
                    m["machineId"].as_str().unwrap_or(""),
                    m["creationDateTimeUtc"].as_str().unwrap_or("")
                ));
            }
        }
    }
    for q in QueueName::ALL {
        let dead = store.depth(q).await?.1;
        f.messages_in_dlq += dead;
        if dead > 0 {
            for d in store.dead_letters(q, 5).await? {
                notes.push(format!(
                    "dead letter on {}: {} — {}",
                    q.as_str(),
                    d.body,
                    d.error.unwrap_or_default()
                ));
            }
        }
    }
    Ok((f, notes))
}

// ---------------------------------------------------------------------------------------
// The run

#[derive(Debug, Serialize)]
struct Report {
    scenario: ScenarioSize,
    faults: BTreeMap<String, u64>,
    run: RunCounts,
    figures: Figures,
    failed: Vec<String>,
    notes: Vec<String>,
    wall_s: f64,
}

pub async fn run(a: ChaosArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let sc = build_scenario(&a)?;
    let mut truth = truth(&sc, &a);
    let tmp;
    let state_dir = match &a.state {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("mss-chaos-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    if state_dir.join("mss.sqlite").exists() {
        anyhow::bail!(
            "{} already holds a run's state; the chaos run starts from nothing",
            state_dir.display()
        );
    }
    let mut rng = StdRng::seed_from_u64(a.seed ^ 0x5eed);
    let ops_secret = format!("sim-opsramp-{:016x}", rng.random::<u64>());
    let sim = Sim::start(
        SimConfig {
            tenants: sc
                .tenants
                .iter()
                .map(|t| SimTenant {
                    azure_tenant_id: t.tenant.azure_tenant_id.clone(),
                    client_id: t.client_id.clone(),
                    client_secret: t.client_secret.clone(),
                    alerts: t.alerts.clone(),
                })
                .collect(),
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: ops_secret.clone(),
            // Kept in memory: rewriting the whole file after each of thousands of calls
            // would make the run quadratic, and nothing restarts the simulator.
            state_file: None,
            all_visible: false,
            start_clock: sc.start,
        },
        "127.0.0.1:0".parse()?,
    )
    .await
    .context("starting the simulator")?;
    for t in &sc.tenants {
        sim.add_devices(&t.tenant.azure_tenant_id, t.devices.clone());
        sim.add_users(&t.tenant.azure_tenant_id, t.users.clone());
    }
    let creds: Vec<AzureAppCredential> = sc
        .tenants
        .iter()
        .map(|t| AzureAppCredential {
            tenant: t.tenant.id.clone(),
            azure_tenant_id: t.tenant.azure_tenant_id.clone(),
            client_id: t.client_id.clone(),
            client_secret: Secret::new(t.client_secret.clone()),
        })
        .collect();
    let clock = ManualClock::new(sc.start);
    let world = World {
        chaos: Chaos::new(
            a.seed ^ 0xC4A05,
            Rates::issue10(a.kills.max(0.0), a.duplicate_rate.clamp(0.0, 1.0)),
            clock.clone(),
        ),
        sim,
        clock,
        db: state_dir.join("mss.sqlite"),
        creds,
        ops_secret,
    };
    let raw = SqliteStore::open(&world.db)?.with_clock(world.clock.clone());
    for t in &sc.tenants {
        raw.put_tenant(&t.tenant).await?;
    }
    for (n, ep) in GRAPH_ENDPOINTS.into_iter().enumerate() {
        world.sim.set_fault(
            ep,
            Fault::SeededRate {
                p429: a.graph_429_rate,
                p5xx: a.graph_5xx_rate,
                status: [503, 500, 504, 502, 503][n],
                // Fractional, as Graph sends it ("2.128"); short, so a day runs in minutes.
                retry_after: 0.0025 + 0.0005 * n as f64,
                seed: a.seed,
            },
        );
    }
    // The outage is the last fault: it ends when the fault window does, so the drain after
    // it is the recovery from its backlog (and from the kills of the last minutes).
    let outage_len = chrono::Duration::minutes(i64::from(a.opsramp_outage_min));
    let outage_start = match a.opsramp_outage_start_min {
        Some(m) => sc.start + chrono::Duration::minutes(i64::from(m)),
        None => sc.end + chrono::Duration::minutes(1) - outage_len,
    };
    let outage_end = outage_start + outage_len;

    let mut deps = start_process(&world)?;
    let mut counts = RunCounts::default();
    let mut ticks = Vec::new();
    let mut t = sc.start;
    let mut outage_on = false;
    let mut progress = Instant::now();
    while t <= sc.end {
        world.sim.set_clock(t);
        world.clock.set(t);
        let want = a.opsramp_outage_min > 0 && t >= outage_start && t < outage_end;
        if want != outage_on {
            for ep in OPSRAMP_ENDPOINTS {
                world.sim.set_fault(
                    ep,
                    if want {
                        Fault::ServerError {
                            times: u32::MAX,
                            status: 503,
                        }
                    } else {
                        Fault::None
                    },
                );
            }
            outage_on = want;
        }
        ticks.push(t);
        cycle(&world, &mut deps, &mut counts).await?;
        if progress.elapsed() > Duration::from_secs(5) {
            progress = Instant::now();
            eprintln!(
                "  simulated {} — {} cycles, {} restarts, {:.0} s",
                shared::domain::incident::jst(t),
                counts.cycles,
                counts.restarts,
                started.elapsed().as_secs_f64()
            );
        }
        t += chrono::Duration::minutes(1);
    }
    // The last fault: Graph's rates and the kills ran until the end of the day.
    world.sim.clear_faults();
    world.chaos.disable();
    let last_fault = t - chrono::Duration::minutes(1);
    let drain_wall = Instant::now();
    let limit = last_fault + chrono::Duration::hours(12);
    let mut drained_at = None;
    while t <= limit {
        world.sim.set_clock(t);
        world.clock.set(t);
        ticks.push(t);
        cycle(&world, &mut deps, &mut counts).await?;
        if live_depth(&raw).await? == 0 {
            drained_at = Some(t);
            break;
        }
        t += chrono::Duration::minutes(1);
    }
    let drain_wall_s = drain_wall.elapsed().as_secs_f64();

    let (mut figures, notes) = evaluate(&sc, &mut truth, &raw, &world.sim, &ticks).await?;
    match drained_at {
        Some(at) => figures.drain_simulated_s = (at - last_fault).num_seconds(),
        None => {
            figures.not_drained = live_depth(&raw).await?;
            figures.drain_simulated_s = (t - last_fault).num_seconds();
        }
    }
    figures.drain_wall_s = (drain_wall_s * 10.0).round() / 10.0;

    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let injected = world.sim.faults_injected();
    for (ep, n) in &injected {
        if GRAPH_ENDPOINTS.contains(ep) {
            *faults.entry("graph_429".into()).or_default() += n.too_many_requests;
            *faults.entry("graph_5xx".into()).or_default() += n.server_errors;
        } else if OPSRAMP_ENDPOINTS.contains(ep) {
            *faults
                .entry("opsramp_outage_refused_calls".into())
                .or_default() += n.server_errors;
        }
    }
    faults.insert(
        "opsramp_outage_minutes".into(),
        u64::from(a.opsramp_outage_min),
    );
    faults.insert(
        "opsramp_outage_start_minute".into(),
        (outage_start - sc.start).num_minutes().max(0) as u64,
    );
    let stats = world.sim.stats();
    faults.insert("graph_alert_requests".into(), stats.graph_alert_requests);
    for m in world.sim.machine_actions() {
        match m["status"].as_str() {
            Some("Failed") => *faults.entry("mde_actions_failed".into()).or_default() += 1,
            Some("TimeOut") => *faults.entry("mde_actions_timed_out".into()).or_default() += 1,
            _ => {}
        }
        *faults.entry("mde_actions".into()).or_default() += 1;
    }
    faults.insert(
        "late_indexed_versions".into(),
        truth.size.late_indexed_versions as u64,
    );
    for (k, n) in world.chaos.counts() {
        faults.insert(k.replace(' ', "_"), n);
    }
    faults.insert("restarts".into(), counts.restarts);

    let failed: Vec<String> = figures
        .failures()
        .into_iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let report = Report {
        scenario: truth.size.clone(),
        faults,
        run: counts,
        figures,
        failed: failed.clone(),
        notes,
        wall_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
        if a.state.is_some() {
            println!("state: {}", state_dir.display());
        }
    }
    world.sim.shutdown().await;
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(r: &Report) {
    let s = &r.scenario;
    println!();
    println!(
        "mss chaos — {} tenants, {} alerts, {} versions ({} indexed late), {} incidents, {} simulated h, seed {}",
        s.tenants, s.alerts, s.versions, s.late_indexed_versions, s.incidents, s.simulated_hours, s.seed
    );
    println!(
        "  {} cycles, {} restarts, {:.1} s wall",
        r.run.cycles, r.run.restarts, r.wall_s
    );
    println!();
    println!("faults injected:");
    for (k, n) in &r.faults {
        println!("  {k:<40} {n:>8}");
    }
    println!();
    let f = &r.figures;
    println!("{:<44} {:>10}  target", "figure", "value");
    let rows: [(&str, String, &str); 7] = [
        ("alerts lost", f.alerts_lost.to_string(), "0"),
        ("duplicate tickets", f.duplicate_tickets.to_string(), "0"),
        ("tickets missing", f.tickets_missing.to_string(), "0"),
        (
            "duplicate machine actions",
            f.duplicate_machine_actions.to_string(),
            "0",
        ),
        (
            "incidents not ticketed",
            f.incidents_not_ticketed.to_string(),
            "0",
        ),
        ("messages left in DLQs", f.messages_in_dlq.to_string(), "0"),
        (
            "time to drain after the last fault",
            format!(
                "{} s sim / {:.1} s wall",
                f.drain_simulated_s, f.drain_wall_s
            ),
            "-",
        ),
    ];
    for (k, v, t) in rows {
        println!("{k:<44} {v:>10}  {t}");
    }
    println!("also checked:");
    for (k, v) in [
        ("versions served but not stored", f.versions_lost),
        ("wrong decisions", f.wrong_decisions),
        ("unexpected tickets", f.unexpected_tickets),
        ("duplicate ticket responses", f.duplicate_responses),
        ("first-response actions missing", f.actions_missing),
        ("actions unfinished", f.actions_unfinished),
        ("first-response notes missing", f.action_notes_missing),
        ("messages not drained", f.not_drained),
    ] {
        println!("  {k:<42} {v:>10}  0");
    }
    println!();
    if r.failed.is_empty() {
        println!("all targets met");
    } else {
        println!("TARGETS MISSED: {}", r.failed.join(", "));
        for n in &r.notes {
            println!("  {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ChaosArgs,
    }

    fn args(extra: &[&str]) -> ChaosArgs {
        let mut v = vec!["chaos"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn the_scenario_has_the_size_asked_for_and_is_deterministic() {
        let a = args(&[
            "--tenants",
            "4",
            "--versions",
            "300",
            "--hours",
            "6",
            "--seed",
            "3",
        ]);
        let sc = build_scenario(&a).unwrap();
        let t = truth(&sc, &a);
        assert_eq!(t.size.tenants, 4);
        assert!(t.size.versions >= 300, "{:?}", t.size);
        assert!(t.size.late_indexed_versions > 0);
        assert!(t.size.malformed_items >= 4, "one per tenant");
        let ids: BTreeSet<&str> = sc.tenants.iter().map(|t| t.tenant.id.as_str()).collect();
        assert_eq!(ids.len(), 4);
        let azure: BTreeSet<&str> = sc
            .tenants
            .iter()
            .map(|t| t.tenant.azure_tenant_id.as_str())
            .collect();
        assert_eq!(azure.len(), 4, "each tenant its own Azure tenant");
        // Each tenant's alerts name that tenant (but the one misrouted alert of its kind).
        for ct in &sc.tenants {
            let foreign = ct
                .alerts
                .iter()
                .filter(|v| v["tenantId"].as_str() != Some(ct.tenant.azure_tenant_id.as_str()))
                .filter(|v| v["tenantId"].is_string())
                .count();
            assert!(foreign <= 2, "{}: {foreign}", ct.tenant.id);
        }
        let again = build_scenario(&a).unwrap();
        for (x, y) in sc.tenants.iter().zip(&again.tenants) {
            assert!(x.alerts == y.alerts, "{}: other alerts", x.tenant.id);
            assert!(x.devices == y.devices, "{}: other devices", x.tenant.id);
        }
    }

    #[test]
    fn a_late_version_is_indexed_before_the_next_one_and_within_the_limit() {
        let a = args(&["--tenants", "3", "--versions", "400", "--seed", "11"]);
        let sc = build_scenario(&a).unwrap();
        let t = truth(&sc, &a);
        for vs in t.versions.values() {
            for (k, (v, vis)) in vs.iter().enumerate() {
                assert!(*vis - v.last_update <= chrono::Duration::seconds(600));
                assert!(*vis <= sc.end, "visible by the end of the faults");
                if let Some((next, _)) = vs.get(k + 1) {
                    assert!(
                        next.last_update - *vis >= chrono::Duration::seconds(120),
                        "{} is the newest served for two minutes at least",
                        v.id
                    );
                }
            }
        }
    }

    #[test]
    fn any_target_above_zero_fails_the_run() {
        let mut f = Figures {
            drain_simulated_s: 600,
            drain_wall_s: 3.0,
            ..Default::default()
        };
        assert!(f.failures().is_empty(), "the drain times are measurements");
        f.duplicate_machine_actions = 1;
        f.messages_in_dlq = 2;
        assert_eq!(
            f.failures(),
            [("duplicate_machine_actions", 1), ("messages_in_dlq", 2)]
        );
    }
}
