//! The operator's commands on the embedded deployment: `mss run` (the pipeline, cycle by
//! cycle), `mss rerun` (one alert or incident again from a step), `mss runs --failed`
//! (failed and stuck work across tenants, rerunnable in bulk).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;

use shared::embedded::Embedded;
use shared::ports::{Queue, Store};
use shared::steps::rerun::{FromStep, Refusal, RerunRequest, Target};
use shared::steps::runs::{RunItem, RunsQuery};

use crate::{runtime, usage};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The embedded configuration (mss.toml: state, endpoints, secrets file).
    #[arg(long)]
    config: PathBuf,
    /// One cycle (fetch every tenant × product, then drain the queues), then exit.
    #[arg(long)]
    once: bool,
    /// Seconds between the starts of two cycles.
    #[arg(long, default_value_t = 60)]
    interval_s: u64,
}

#[derive(clap::Args)]
pub struct RerunArgs {
    /// The embedded configuration (mss.toml). The cloud shape: invoke the `rerun` function
    /// with the same fields as JSON (see README, Operating).
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    tenant: String,
    /// One alert (its newest stored version).
    #[arg(
        long,
        conflicts_with = "incident",
        required_unless_present = "incident"
    )]
    alert: Option<String>,
    /// Every alert of one incident (the Defender incident id, or the alert id of an alert
    /// without incident).
    #[arg(long)]
    incident: Option<String>,
    /// fetch | classify | ticket | investigate | respond | report
    #[arg(long)]
    from: String,
    /// Repeat the side effect where that means something (re-post the investigation
    /// report). Asks first on a terminal.
    #[arg(long)]
    force: bool,
    /// Do not ask before --force.
    #[arg(long)]
    yes: bool,
    /// Only enqueue; a running `mss run` does the rest.
    #[arg(long)]
    no_drain: bool,
    /// --from report: where report.html and report.json go (default
    /// STATE/reports/TENANT/YYYY-MM).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RunsArgs {
    /// List failed, dead-lettered and stuck items (the only listing there is; required so
    /// the command line says what it shows).
    #[arg(long)]
    failed: bool,
    #[arg(long)]
    tenant: Option<String>,
    /// Only items failing or stuck since: RFC 3339, YYYY-MM-DD (JST midnight), or an age
    /// like 6h or 2d.
    #[arg(long)]
    since: Option<String>,
    /// Minutes without progress after which an item counts as stuck.
    #[arg(long, default_value_t = 30)]
    stuck_after_m: u64,
    /// The embedded configuration (mss.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// An embedded state directory (read only).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The cloud table (dead letters: `mss dlq list`).
    #[arg(long)]
    table: Option<String>,
    /// On an emulator only (plain http only to 127.0.0.1/localhost).
    #[arg(long, value_parser = shared::adapters::aws::check_endpoint_url)]
    endpoint_url: Option<String>,
    /// Rerun every listed item from its step (needs --config), then drain.
    #[arg(long)]
    rerun: bool,
    #[arg(long)]
    json: bool,
}

fn load(config: &std::path::Path) -> anyhow::Result<Embedded> {
    match Embedded::load(config) {
        Ok(e) => Ok(e),
        Err(e) => usage(format!("{e:#}")),
    }
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let emb = load(&a.config)?;
    let rt = runtime()?;
    rt.block_on(async {
        let (deps, _) = emb.deps().await?;
        if deps.store.list_tenants().await?.is_empty() {
            return usage(format!(
                "no tenant in {}; add one with `mss tenant put FILE --config {}`",
                emb.state_dir.display(),
                a.config.display()
            ));
        }
        let mut cycle = 0u64;
        loop {
            cycle += 1;
            let started = std::time::Instant::now();
            let results = shared::steps::fetch::run_all(&deps).await?;
            let mut new = 0;
            let mut incidents = 0;
            let mut failed = 0;
            for r in &results {
                match r {
                    Ok(o) => {
                        new += o.new_versions;
                        incidents += o.incidents;
                    }
                    Err((t, p, e)) => {
                        failed += 1;
                        eprintln!("fetch {t}/{p} failed: {e}");
                    }
                }
            }
            let stats = shared::runner::drain(&deps).await?;
            println!(
                "{} cycle {cycle}: fetched {} tenant×product ({failed} failed), {new} new version(s) classified, {incidents} incident version(s) queued; reclassified {}, ticketed {}, responded {}, investigated {}, failed {} ({} ms)",
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                results.len(),
                stats.classified,
                stats.ticketed,
                stats.responded,
                stats.investigated,
                stats.failed,
                started.elapsed().as_millis()
            );
            if a.once {
                return Ok(ExitCode::SUCCESS);
            }
            let wait = Duration::from_secs(a.interval_s).saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("stopped after cycle {cycle}");
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    })
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

pub fn rerun(a: RerunArgs) -> anyhow::Result<ExitCode> {
    let from = match FromStep::parse(&a.from) {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    if a.force && !from.forceable() {
        return usage(format!(
            "--force only applies to --from investigate (re-post the report); a rerun from {} never repeats a completed side effect",
            from.as_str()
        ));
    }
    let target = match (a.alert, a.incident) {
        (Some(x), None) => Target::Alert(x),
        (None, Some(k)) => Target::Incident(k),
        _ => return usage("give exactly one of --alert and --incident"),
    };
    if a.force && !a.yes && std::io::stdin().is_terminal() {
        let what = match &target {
            Target::Alert(x) => format!("alert {x}"),
            Target::Incident(k) => format!("incident {k}"),
        };
        if !confirm(&format!(
            "Post the investigation report of {what} (tenant {}) to the ticket again, even if unchanged? The customer is mailed.",
            a.tenant
        ))? {
            return usage("not confirmed; nothing was done");
        }
    }
    let emb = load(&a.config)?;
    let req = RerunRequest {
        tenant: a.tenant.clone(),
        target,
        from,
        force: a.force,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let (deps, _) = emb.deps().await?;
        let out = match shared::steps::rerun::run(&deps, &req).await {
            Ok(o) => o,
            Err(e) if e.downcast_ref::<Refusal>().is_some() => return usage(format!("{e:#}")),
            Err(e) => return Err(e),
        };
        let mut report_paths = None;
        if let Some(m) = &out.report_month {
            let month = shared::domain::monthly::Month::parse(m).map_err(anyhow::Error::msg)?;
            let r = shared::steps::monthly::build(
                deps.store.as_ref(),
                Utc::now(),
                &shared::domain::calendar::Calendar::default(),
                &a.tenant,
                month,
                None,
            )
            .await?;
            let dir = a.out.clone().unwrap_or_else(|| {
                emb.state_dir
                    .join("reports")
                    .join(&a.tenant)
                    .join(m.as_str())
            });
            report_paths = Some(crate::write_report(&dir, &r)?);
        }
        let stats = if a.no_drain || out.queue.is_none() {
            None
        } else {
            Some(shared::runner::drain(&deps).await?)
        };
        if a.json {
            println!(
                "{}",
                json!({"rerun": out, "drained": stats,
                       "report": report_paths.as_ref().map(|(h, j)| json!({"html": h, "json": j}))})
            );
        } else {
            println!(
                "rerun from {} for tenant {}: {} alert(s)",
                out.from.as_str(),
                out.tenant,
                out.alerts.len()
            );
            for x in &out.alerts {
                println!(
                    "  {} @ {}",
                    x.alert_id,
                    x.last_update
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                );
            }
            println!("  {}", out.note);
            if let Some(q) = &out.queue {
                println!("  queued {} message(s) on {q}", out.queued);
            }
            if let Some((h, j)) = &report_paths {
                println!("  {}\n  {}", h.display(), j.display());
            }
            match stats {
                Some(s) => println!(
                    "  ran: classified {}, ticketed {}, responded {}, investigated {}, failed {}",
                    s.classified, s.ticketed, s.responded, s.investigated, s.failed
                ),
                None if out.queue.is_some() => {
                    println!("  (not drained: the next `mss run` cycle runs it)")
                }
                None => {}
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let jst = chrono::FixedOffset::east_opt(9 * 3600).expect("JST");
        return d
            .and_hms_opt(0, 0, 0)
            .and_then(|n| n.and_local_timezone(jst).single())
            .map(|x| x.with_timezone(&Utc))
            .ok_or_else(|| format!("--since {s:?}: not a date"));
    }
    let (num, unit) = t.split_at(t.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| {
        format!("--since {s:?}: expected RFC 3339, YYYY-MM-DD, or an age like 6h or 2d")
    })?;
    match unit {
        "h" => Ok(now - chrono::Duration::hours(n)),
        "d" => Ok(now - chrono::Duration::days(n)),
        "m" => Ok(now - chrono::Duration::minutes(n)),
        _ => Err(format!(
            "--since {s:?}: expected RFC 3339, YYYY-MM-DD, or an age like 6h or 2d"
        )),
    }
}

pub fn runs(a: RunsArgs) -> anyhow::Result<ExitCode> {
    if !a.failed {
        return usage("mss runs lists failed and stuck work: add --failed");
    }
    let now = Utc::now();
    let since = match a.since.as_deref().map(|s| parse_since(s, now)).transpose() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let q = RunsQuery {
        tenant: a.tenant.clone(),
        since,
        stuck_after: Duration::from_secs(a.stuck_after_m * 60),
    };
    if a.rerun && a.config.is_none() {
        return usage("--rerun needs --config (the endpoints the reruns talk to)");
    }
    let rt = runtime()?;
    rt.block_on(async {
        type Opened = (Arc<dyn Store>, Option<Arc<dyn Queue>>, Option<Embedded>);
        let (store, queue, emb): Opened =
            match (&a.config, &a.state, &a.table) {
                (Some(c), None, None) => {
                    let emb = load(c)?;
                    let s = Arc::new(emb.store()?);
                    (s.clone(), Some(s), Some(emb))
                }
                (None, Some(dir), None) => {
                    let db = dir.join("mss.sqlite");
                    if !db.exists() {
                        return usage(format!(
                            "{}: no state here (expected mss.sqlite)",
                            dir.display()
                        ));
                    }
                    let s = Arc::new(shared::adapters::sqlite::SqliteStore::open(&db)?);
                    (s.clone(), Some(s), None)
                }
                (None, None, Some(table)) => {
                    let sdk = shared::adapters::aws::sdk_config(a.endpoint_url.as_deref()).await;
                    (
                        Arc::new(shared::adapters::dynamodb::DynamoStore::from_sdk(
                            &sdk, table,
                        )),
                        None,
                        None,
                    )
                }
                _ => return usage("give exactly one of --config, --state and --table"),
            };
        let items = match shared::steps::runs::list(store.as_ref(), queue.as_deref(), &q, now)
            .await
        {
            Ok(i) => i,
            Err(e) if format!("{e}").contains("is not registered") => {
                return usage(format!("{e:#}"))
            }
            Err(e) => return Err(e),
        };
        print_runs(&items, a.json)?;
        if a.rerun {
            let emb = emb.context("--rerun needs --config")?;
            let (deps, _) = emb.deps().await?;
            let mut seen = std::collections::HashSet::new();
            let mut done = 0;
            let mut dead_queues = std::collections::BTreeSet::new();
            for i in &items {
                if i.status == shared::steps::runs::RunStatus::DeadLetter {
                    // The queue gave up on it: a redrive puts the very message back.
                    dead_queues.insert(i.step.clone());
                    continue;
                }
                let Some(r) = &i.rerun else { continue };
                if !seen.insert(serde_json::to_string(r)?) {
                    continue;
                }
                match shared::steps::rerun::run(&deps, r).await {
                    Ok(_) => done += 1,
                    Err(e) => eprintln!("rerun of {} {} failed: {e:#}", i.tenant, i.item),
                }
            }
            for q in &dead_queues {
                eprintln!(
                    "dead letters of {q}: `mss dlq redrive --queue {q} --state {}`",
                    emb.state_dir.display()
                );
            }
            let stats = shared::runner::drain(&deps).await?;
            eprintln!(
                "reran {done} item(s): classified {}, ticketed {}, responded {}, investigated {}, failed {}",
                stats.classified, stats.ticketed, stats.responded, stats.investigated, stats.failed
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_runs(items: &[RunItem], json_out: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json_out {
        for i in items {
            let mut v = serde_json::to_value(i)?;
            v["rerun_command"] = json!(i.rerun_command());
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    if items.is_empty() {
        writeln!(out, "no failed or stuck work")?;
        return Ok(());
    }
    for i in items {
        let status = serde_json::to_value(i.status)?;
        writeln!(
            out,
            "{}\t{}\t{}\t{}\tsince {}\tattempts {}",
            status.as_str().unwrap_or(""),
            i.tenant,
            i.step,
            i.item,
            i.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            i.attempts
        )?;
        if let Some(e) = &i.error {
            writeln!(out, "\terror: {}", e.replace('\n', " "))?;
        }
        if let Some(c) = i.rerun_command() {
            writeln!(out, "\trerun: {c}")?;
        }
    }
    Ok(())
}
