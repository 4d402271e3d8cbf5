//! `mss bench pipeline` (issue 11): the embedded pipeline end to end — alert versions from the
//! simulator through fetch → classify → store, tickets opened in the (simulated) OpsRamp for the
//! incidents — timed, with this process's peak RSS.
//!
//! The simulator runs as a **separate process** (`mss sim serve`, the side-by-side interface),
//! so the RSS measured is the pipeline's alone: the simulator holds every alert body of the
//! scenario in memory, which the pipeline must not be charged for.
//!
//! The scenario: `--versions` alerts (one version each: `mss sim serve` serves every alert's
//! newest version at once) spread over `--tenants` tenants and their five products, each a
//! realistic ~4 KB body (`bench::synthetic_full`: description, recommended actions, MITRE
//! techniques, device, user, IP and process evidence), created within the last hour. The
//! severity mix is one an MSSP sees (about half informational, 5 % high), and alerts come in
//! incidents of ~5, so a few per cent of the alerts make tickets — against the example tenant's
//! criteria (`infra/tenants/kaede-shoji.example.toml`).
//!
//! Timed: one `steps::fetch::run_all` over every tenant × product, then the classify and ticket
//! queues drained (what the embedded runner does each cycle). Investigation and first response,
//! which the ticket step queues next, are left queued: they are bounded by the Graph hunting
//! quota and by MDE, not by the pipeline, and are reported as the count left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use serde_json::{json, Value};

use shared::domain::monthly::Month;
use shared::domain::tenant::Tenant;
use shared::messages::QueueName;

#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Alert versions in the scenario (one per alert).
    #[arg(long, default_value_t = 100_000)]
    pub versions: usize,
    /// Tenants, each subscribing to the five products.
    #[arg(long, default_value_t = 20)]
    pub tenants: usize,
    /// Keep the scenario, the configuration and the SQLite state here (default: a temporary
    /// directory, removed at the end).
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Tenant × product fetches in flight (default: the pipeline's own,
    /// `Settings::fetch_concurrency`). Peak memory grows with it: each fetch holds its window's
    /// alerts until they are stored.
    #[arg(long)]
    pub fetch_concurrency: Option<usize>,
    /// One JSON object instead of the lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after fetch → classify → store: the ticket queue is left as it is (for
    /// profiling the ingest alone, and for repeating it quickly).
    #[arg(long)]
    pub ingest_only: bool,
}

/// Kills the simulator however the bench ends.
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tenant_config(i: usize) -> anyhow::Result<Value> {
    let t = Tenant::from_toml(include_str!("../../infra/tenants/kaede-shoji.example.toml"))
        .map_err(|e| anyhow!("the built-in example tenant: {e}"))?;
    let mut v = serde_json::to_value(&t.source)?;
    v["id"] = json!(format!("bench-{i:03}"));
    v["name"] = json!(format!("ベンチ用テナント{}", i + 1));
    v["azure_tenant_id"] = json!(azure(i));
    Ok(v)
}

fn azure(i: usize) -> String {
    format!(
        "{:08x}-be0c-4000-8000-{:012x}",
        0xbe0c_0000u32 + i as u32,
        i
    )
}

/// Alert `i` of tenant `t`: the synthetic body with the tenant's Azure id, a realistic
/// severity, a product of the five, incidents of ~5 alerts, and times within the last hour.
fn alert(m: Month, t: usize, i: u64, now: chrono::DateTime<Utc>) -> anyhow::Result<Value> {
    let (_, text) = crate::bench::synthetic_full(m, i);
    let mut v: Value = serde_json::from_str(&text)?;
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    let sev = match h % 100 {
        0..=49 => "informational",
        50..=79 => "low",
        80..=94 => "medium",
        _ => "high",
    };
    v["severity"] = json!(sev);
    v["id"] = json!(format!("bp{t:03}{i:010}"));
    v["incidentId"] = json!(format!("{}", 10_000_000 * (t as u64 + 1) + i / 5));
    v["tenantId"] = json!(azure(t));
    let created = now - chrono::Duration::seconds(60 + (h % 3000) as i64);
    v["createdDateTime"] = json!(created.to_rfc3339());
    v["lastUpdateDateTime"] = json!((created + chrono::Duration::seconds(30)).to_rfc3339());
    Ok(v)
}

/// Written as a stream, one alert at a time, so generating 100,000 bodies does not raise this
/// process's peak RSS (which is the pipeline's figure).
fn write_scenario(a: &PipelineArgs, path: &Path) -> anyhow::Result<u64> {
    use std::io::Write;
    let m = Month::parse("2026-11").map_err(anyhow::Error::msg)?;
    let now = Utc::now();
    let file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut bytes = 0u64;
    write!(
        w,
        "{{\"start\":{},\"end\":{},\"tenants\":[",
        json!((now - chrono::Duration::hours(2)).to_rfc3339()),
        json!(now.to_rfc3339())
    )?;
    for t in 0..a.tenants {
        let n = a.versions / a.tenants + usize::from(t < a.versions % a.tenants);
        let base = (t as u64) << 32;
        if t > 0 {
            w.write_all(b",")?;
        }
        write!(w, "{{\"config\":{},\"alerts\":[", tenant_config(t)?)?;
        for k in 0..n as u64 {
            if k > 0 {
                w.write_all(b",")?;
            }
            let text = alert(m, t, base + k, now)?.to_string();
            bytes += text.len() as u64;
            w.write_all(text.as_bytes())?;
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"]}")?;
    w.flush()?;
    Ok(bytes)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `mss sim serve` on the scenario and waits until it wrote its configuration.
fn start_sim(dir: &Path, scenario: &Path) -> anyhow::Result<(SimProcess, PathBuf)> {
    let cfg_dir = dir.join("cfg");
    let port = free_port()?;
    let child = Command::new(std::env::current_exe()?)
        .args(["sim", "serve", "--scenario"])
        .arg(scenario)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--ca-out"])
        .arg(dir.join("ca.pem"))
        .arg("--write-config")
        .arg(&cfg_dir)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mss sim serve")?;
    let mut sim = SimProcess(child);
    let cfg = cfg_dir.join("mss.toml");
    let started = Instant::now();
    loop {
        if cfg.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((sim, cfg));
        }
        if let Some(st) = sim.0.try_wait()? {
            bail!("mss sim serve exited with {st} before serving");
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("mss sim serve did not start within 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub async fn run(a: PipelineArgs) -> anyhow::Result<()> {
    if a.tenants == 0 || a.tenants > 999 {
        bail!("--tenants must be 1..=999");
    }
    if a.versions < a.tenants {
        bail!("--versions must be at least --tenants");
    }
    let tmp;
    let dir = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let scenario = dir.join("scenario.json");
    let t0 = Instant::now();
    let bytes = write_scenario(&a, &scenario)?;
    let gen_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let (_sim, cfg) = start_sim(&dir, &scenario)?;
    let sim_start_s = t0.elapsed().as_secs_f64();
    if !a.json {
        eprintln!(
            "scenario: {} versions, {} tenants, {:.1} MB of alert JSON (mean {} bytes); simulator up in {sim_start_s:.1} s",
            a.versions,
            a.tenants,
            bytes as f64 / 1e6,
            bytes / a.versions as u64
        );
    }

    let emb = shared::embedded::Embedded::load(&cfg)?;
    let store = emb.store()?;
    for t in 0..a.tenants {
        let t = Tenant::from_json_value(&tenant_config(t)?).map_err(|e| anyhow!("{e}"))?;
        shared::ports::Store::put_tenant(&store, &t).await?;
    }
    drop(store);
    let (mut deps, _) = emb.deps().await?;
    if let Some(n) = a.fetch_concurrency {
        deps.settings.fetch_concurrency = n.max(1);
    }
    let rss_before = crate::bench::peak_rss_mb();

    let t0 = Instant::now();
    let outcomes = shared::steps::fetch::run_all(&deps).await?;
    let fetch_s = t0.elapsed().as_secs_f64();
    let rss_after_fetch = crate::bench::peak_rss_mb();
    let mut fetched = 0usize;
    let mut new_versions = 0usize;
    let mut errors = Vec::new();
    for o in &outcomes {
        match o {
            Ok(o) => {
                fetched += o.fetched;
                new_versions += o.new_versions;
            }
            Err((t, p, e)) => errors.push(format!("{t}/{p}: {e}")),
        }
    }
    let t1 = Instant::now();
    let (classified, ticketed, failed) = if a.ingest_only {
        (0, 0, 0)
    } else {
        drain(&deps).await?
    };
    let drain_s = t1.elapsed().as_secs_f64();
    let total_s = t0.elapsed().as_secs_f64();

    let mut incidents = 0usize;
    let mut decisions = std::collections::BTreeMap::<String, u64>::new();
    let mut tickets = 0usize;
    for t in deps.store.list_tenants().await? {
        for (_, k) in deps.store.list_decisions(&t.id).await? {
            *decisions.entry(k.as_str().to_string()).or_default() += 1;
        }
        let inc = deps.store.list_incidents(&t.id).await?;
        incidents += inc.len();
        tickets += inc.iter().filter(|i| i.ticket_id.is_some()).count();
    }
    let left_investigate = deps.queue.depth(QueueName::Investigate).await?.0;
    let left_respond = deps.queue.depth(QueueName::Respond).await?.0;
    let out = json!({
        "bench": "pipeline",
        "versions": a.versions,
        "tenants": a.tenants,
        "fetch_concurrency": deps.settings.fetch_concurrency,
        "mean_alert_bytes": bytes / a.versions as u64,
        "fetched": fetched,
        "new_versions": new_versions,
        "fetch_errors": errors,
        "classified_from_queue": classified,
        "ticket_messages": ticketed,
        "step_failures": failed,
        "decisions": decisions,
        "incidents": incidents,
        "tickets": tickets,
        "left_for_investigate": left_investigate,
        "left_for_respond": left_respond,
        "fetch_s": round3(fetch_s),
        "drain_s": round3(drain_s),
        "total_s": round3(total_s),
        // fetch → classify → store, incidents' ticket messages queued: the pipeline's rate.
        "ingest_versions_per_s": (new_versions as f64 / fetch_s).round(),
        // Tickets made in the simulated OpsRamp too (one at a time, as the embedded runner
        // does; the real OpsRamp allows 50 ticket writes a minute per tenant).
        "versions_per_s": (a.versions as f64 / total_s).round(),
        "ticket_messages_per_s": (ticketed as f64 / drain_s.max(1e-9)).round(),
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb_after_fetch": rss_after_fetch,
        "peak_rss_mb": crate::bench::peak_rss_mb(),
        "scenario_generation_s": round3(gen_s),
        "simulator_start_s": round3(sim_start_s),
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "{} versions, {} tenants: fetch+classify+store {:.2} s = {} versions/s; ticket drain {:.2} s ({} messages/s); total {:.2} s = {} versions/s; {} incidents, {} tickets; peak RSS {:.0} MB",
            a.versions,
            a.tenants,
            fetch_s,
            out["ingest_versions_per_s"],
            drain_s,
            out["ticket_messages_per_s"],
            total_s,
            out["versions_per_s"],
            incidents,
            tickets,
            out["peak_rss_mb"].as_f64().unwrap_or(0.0)
        );
        if !errors.is_empty() {
            println!("fetch errors: {errors:?}");
        }
    }
    if !errors.is_empty() || failed > 0 || new_versions + classified as usize == 0 {
        bail!("the pipeline did not run clean: {out}");
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The classify and ticket queues until both are empty (the runner's loop, two queues only).
async fn drain(deps: &shared::steps::Deps) -> anyhow::Result<(u64, u64, u64)> {
    let (mut classified, mut ticketed, mut failed) = (0u64, 0u64, 0u64);
    loop {
        let mut any = false;
        for q in [QueueName::Classify, QueueName::Ticket] {
            let batch = deps.queue.receive(q, 10).await?;
            for m in batch {
                any = true;
                match shared::steps::runs::handle_recorded(deps, q, &m.body, m.receive_count).await
                {
                    Ok(()) => {
                        deps.queue.ack(q, &m.handle).await?;
                        if q == QueueName::Classify {
                            classified += 1;
                        } else {
                            ticketed += 1;
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(queue = q.as_str(), error = %format!("{e:#}"), "bench: step failed");
                        deps.queue.nack(q, &m.handle, &format!("{e:#}")).await?;
                    }
                }
            }
        }
        if !any {
            return Ok((classified, ticketed, failed));
        }
    }
}
