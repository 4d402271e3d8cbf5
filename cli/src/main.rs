//! `mss`: the embedded runner, the demo, and the operator's commands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use shared::domain::alert::Alert;
use shared::domain::calendar::{self, Calendar, InquiryKind};
use shared::domain::classify::classify;
use shared::domain::tenant::Tenant;

mod backfill;
mod bench;
mod bench_calls;
mod bench_pipeline;
mod chaos;
mod demo;
mod ops;
mod preflight;
mod scenario;
mod simserve;
mod tenant_cmd;

#[derive(Parser)]
#[command(
    name = "mss",
    version,
    about = "Managed security service automation: Defender alerts → decisions → OpsRamp tickets"
)]
struct Cli {
    /// The provider's business calendar (TOML: provider_holidays = [{month, day}, …],
    /// service_start, service_end, impact_cutoff). Default: holidays 12/29–1/3, 9:00–17:30.
    #[arg(long, global = true, env = "MSS_CALENDAR")]
    calendar: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

fn load_calendar(path: Option<&PathBuf>) -> anyhow::Result<Calendar> {
    let Some(p) = path else {
        return Ok(Calendar::default());
    };
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) => return usage(format!("--calendar {}: {e}", p.display())),
    };
    let de = match toml::Deserializer::parse(&text) {
        Ok(d) => d,
        Err(e) => return usage(format!("--calendar {}: {}", p.display(), e.message())),
    };
    match serde_path_to_error::deserialize::<_, Calendar>(de) {
        Ok(c) => Ok(c),
        Err(e) => usage(format!(
            "--calendar {}: {}: {}",
            p.display(),
            e.path(),
            e.inner().message()
        )),
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole pipeline on the embedded default against the simulated tenants.
    Demo {
        /// A scenario file (JSON); default: the built-in three-customer day.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Keep pipeline and simulator state here; a second run continues from it.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Print one JSON object instead of the summary table.
        #[arg(long)]
        json: bool,
        /// Seed of the built-in scenario.
        #[arg(long, default_value_t = 20261102)]
        seed: u64,
        /// Write the built-in scenario to this file and exit (a starting point for your own).
        #[arg(long)]
        write_scenario: Option<PathBuf>,
        /// `embedded` (SQLite + in-process queues) or `aws` (DynamoDB, SQS, S3, Secrets
        /// Manager at --endpoint-url: try the cloud shape locally against moto).
        #[arg(long, default_value = "embedded", value_parser = ["embedded", "aws"])]
        backend: String,
        /// The AWS API endpoint for --backend aws, e.g. http://127.0.0.1:5000 (moto).
        #[arg(long)]
        endpoint_url: Option<String>,
        /// Name prefix of the emulator's table, queues, bucket and secrets (--backend aws).
        #[arg(long, default_value = "mss-demo")]
        aws_name: String,
    },
    /// Classify alerts (a Graph page, an array, or one alert) against a tenant's criteria.
    Classify {
        #[arg(long)]
        tenant: PathBuf,
        alerts: PathBuf,
    },
    /// Tenants: validate, put, list, show, disable, enable, purge, offboard.
    Tenant {
        #[command(subcommand)]
        cmd: tenant_cmd::TenantCmd,
    },
    /// The JST business calendar.
    Calendar {
        #[command(subcommand)]
        cmd: CalendarCmd,
    },
    /// When an inquiry's answer is due.
    Sla {
        #[arg(long, value_parser = ["general", "business-impact"])]
        kind: String,
        #[arg(long)]
        received: String,
    },
    /// Monthly advisory report: `mss report --state DIR --tenant T --month YYYY-MM
    /// [--comment FILE] --out OUT` writes OUT/report.html and OUT/report.json; `mss report due`
    /// prints a month's due date.
    #[command(args_conflicts_with_subcommands = true)]
    Report {
        #[command(subcommand)]
        cmd: Option<ReportCmd>,
        #[command(flatten)]
        make: ReportArgs,
    },
    /// The simulated Microsoft 365 tenant and OpsRamp.
    Sim {
        #[command(subcommand)]
        cmd: SimCmd,
    },
    /// First response: an operator's approval or release (embedded state).
    Respond {
        #[command(subcommand)]
        cmd: RespondCmd,
    },
    /// Dead-letter queues: see what failed, and put it back.
    /// Benchmarks whose numbers go to BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    Dlq {
        #[command(subcommand)]
        cmd: DlqCmd,
    },
    /// Run the pipeline on this machine against the endpoints of an embedded configuration
    /// (mss.toml), cycle by cycle.
    Run(ops::RunArgs),
    /// Rerun one alert or incident from a step; what was done before is not done again.
    Rerun(ops::RerunArgs),
    /// Failed, dead-lettered and stuck work across tenants (`mss runs --failed`).
    Runs(ops::RunsArgs),
    /// Check a tenant's permissions and the OpsRamp client with minimal real calls.
    Preflight(preflight::Args),
    /// Read one tenant's alerts of a past window again: store, classify and count them;
    /// ticket only young incidents unless --tickets.
    Backfill(backfill::BackfillArgs),
    /// The chaos run: a scenario under every fault at once, compared with its ground truth
    /// (RELIABILITY.md). Exit 1 when a target figure is not zero.
    Chaos(chaos::ChaosArgs),
    /// Local cloud tooling (emulators only).
    Cloud {
        #[command(subcommand)]
        cmd: CloudCmd,
    },
    /// Microsoft Sentinel content for a tenant (R-LOG, R-DASH): analytics rules, workbook.
    Sentinel {
        #[command(subcommand)]
        cmd: SentinelCmd,
    },
}

#[derive(Subcommand)]
enum RespondCmd {
    /// Approve the held actions (approval mode, cap, outside hours) of one incident; the
    /// pipeline runs them on its next pass.
    Approve {
        #[arg(long)]
        tenant: String,
        /// The Defender incident id (or the alert id for an alert without incident).
        #[arg(long)]
        incident: String,
        #[arg(long)]
        state: PathBuf,
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
    /// Release a device this service isolated; the reason goes on the ticket.
    Release {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        device: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        state: PathBuf,
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
}

#[derive(clap::Args)]
struct DlqTarget {
    /// classify | ticket | respond | check | investigate
    #[arg(long, value_parser = ["classify", "ticket", "respond", "check", "investigate"])]
    queue: String,
    /// Embedded state directory.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Cloud: the queue's URL and its dead-letter queue's URL (stack outputs).
    #[arg(long, requires = "dlq_url")]
    queue_url: Option<String>,
    #[arg(long, requires = "queue_url")]
    dlq_url: Option<String>,
    /// Cloud, on an emulator only.
    #[arg(long)]
    endpoint_url: Option<String>,
}

#[derive(Subcommand)]
enum DlqCmd {
    /// One JSON line per dead letter: queue, body, error (embedded), receive count.
    List(DlqTarget),
    /// Move every dead letter back onto its queue (the next pass reruns them; completed side
    /// effects are not repeated).
    Redrive(DlqTarget),
}

fn dlq_cmd(cmd: DlqCmd) -> anyhow::Result<ExitCode> {
    let (target, redrive) = match cmd {
        DlqCmd::List(t) => (t, false),
        DlqCmd::Redrive(t) => (t, true),
    };
    let q = match target.queue.as_str() {
        "classify" => shared::messages::QueueName::Classify,
        "ticket" => shared::messages::QueueName::Ticket,
        "respond" => shared::messages::QueueName::Respond,
        "investigate" => shared::messages::QueueName::Investigate,
        _ => shared::messages::QueueName::Check,
    };
    let rt = runtime()?;
    let queue: std::sync::Arc<dyn shared::ports::Queue> =
        match (&target.state, &target.queue_url, &target.dlq_url) {
            (Some(dir), None, None) => {
                let db = dir.join("mss.sqlite");
                if !db.exists() {
                    return usage(format!(
                        "{}: no state here (expected mss.sqlite)",
                        dir.display()
                    ));
                }
                std::sync::Arc::new(shared::adapters::sqlite::SqliteStore::open(&db)?)
            }
            (None, Some(url), Some(dlq)) => rt.block_on(async {
                let sdk = shared::adapters::aws::sdk_config(target.endpoint_url.as_deref()).await;
                let (main, dead) = (Some(url.clone()), Some(dlq.clone()));
                let urls = shared::adapters::sqs::QueueUrls {
                    classify: main
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Classify)
                        .unwrap_or_default(),
                    ticket: main
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Ticket)
                        .unwrap_or_default(),
                    respond: main
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Respond),
                    check: main
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Check),
                    investigate: main.filter(|_| q == shared::messages::QueueName::Investigate),
                    classify_dlq: dead
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Classify),
                    ticket_dlq: dead
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Ticket),
                    respond_dlq: dead
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Respond),
                    check_dlq: dead
                        .clone()
                        .filter(|_| q == shared::messages::QueueName::Check),
                    investigate_dlq: dead.filter(|_| q == shared::messages::QueueName::Investigate),
                };
                std::sync::Arc::new(shared::adapters::sqs::SqsQueue::new(
                    shared::adapters::sqs::sqs_client(&sdk),
                    urls,
                )) as std::sync::Arc<dyn shared::ports::Queue>
            }),
            _ => return usage("give --state DIR, or --queue-url and --dlq-url"),
        };
    if redrive {
        let n = rt.block_on(queue.redrive(q))?;
        if n == 0 {
            return usage(format!(
                "the {} dead-letter queue is empty; nothing to redrive",
                target.queue
            ));
        }
        println!("redriven {n} message(s) onto {}", target.queue);
    } else {
        let mut out = std::io::stdout().lock();
        for d in rt.block_on(queue.dead_letters(q, 10_000))? {
            writeln!(
                out,
                "{}",
                json!({"queue": target.queue, "body": d.body, "error": d.error, "receive_count": d.receive_count})
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum CloudCmd {
    /// Create the table, bucket and queues of template.yaml on an emulator (moto); prints
    /// their names and URLs as JSON. Idempotent.
    ProvisionEmulator {
        #[arg(long)]
        endpoint_url: String,
        #[arg(long, default_value = "mss-local")]
        name: String,
    },
}

#[derive(Subcommand)]
enum CalendarCmd {
    /// `true` or `false`.
    BusinessDay { date: String },
    /// The national holidays of a year, `YYYY-MM-DD<TAB>name`.
    Holidays { year: i32 },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The embedded pipeline end to end (fetch → classify → store → tickets) against the
    /// simulator in its own process: versions/s and this process's peak RSS.
    Pipeline(bench_pipeline::PipelineArgs),
    /// DynamoDB/SQS requests per alert version at ingest + classify, counted against moto
    /// (or the same scenario timed on SQLite).
    Calls(bench_calls::CallsArgs),
    /// One fetch cycle of many tenants × 5 products against the simulator: wall time, Graph
    /// requests per tenant, Lambda invocations the cycle needs.
    Scale(bench_calls::ScaleArgs),
    /// Aggregate one tenant-month of synthetic alerts; prints one JSON line.
    Monthly {
        #[arg(long, default_value_t = 1_000_000)]
        alerts: u64,
        #[arg(long, default_value = "2026-11")]
        month: String,
        /// Write the alerts to an embedded store here first and time the real report
        /// step over it (the store's scan, not only the aggregation).
        #[arg(long)]
        store: Option<PathBuf>,
        /// With --store: use the alerts already loaded there (same --alerts and --month).
        #[arg(long, requires = "store")]
        reuse: bool,
    },
    /// Parse and classify synthetic ~4 KB alerts on one thread; prints one JSON line with
    /// the median alerts/s of --runs runs.
    Classify {
        #[arg(long, default_value_t = 100_000)]
        alerts: u64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The tenant (default: infra/tenants/kaede-shoji.example.toml's criteria, built in).
        #[arg(long)]
        tenant: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Embedded state directory (e.g. the one `mss demo --state DIR` left).
    #[arg(long)]
    state: Option<PathBuf>,
    #[arg(long)]
    tenant: Option<String>,
    /// YYYY-MM (a JST calendar month).
    #[arg(long)]
    month: Option<String>,
    /// The analyst's comment (UTF-8 text), shown under 総評.
    #[arg(long)]
    comment: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ReportCmd {
    /// The due date of month YYYY-MM's report (10th business day of the next month).
    Due {
        #[arg(long)]
        month: String,
    },
}

#[derive(Subcommand)]
enum SimCmd {
    /// Serve a scenario (every alert version visible) until stopped.
    Serve {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        #[arg(long)]
        ca_out: PathBuf,
        /// Also write DIR/mss.toml, DIR/secrets.toml (mode 0600) and DIR/tenant-<id>.toml
        /// for the embedded commands (`mss run --config DIR/mss.toml`, preflight, backfill).
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
}

/// Input errors exit 2 with a message that says what is wrong; other failures exit 1.
fn usage<T>(msg: impl Into<String>) -> Result<T, anyhow::Error> {
    Err(anyhow::Error::new(UsageErr(msg.into())))
}

#[derive(Debug)]
struct UsageErr(String);
impl std::fmt::Display for UsageErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageErr {}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<UsageErr>() {
                eprintln!("error: {u}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cal = load_calendar(cli.calendar.as_ref())?;
    match cli.cmd {
        Cmd::Demo {
            scenario,
            state,
            json,
            seed,
            write_scenario,
            backend,
            endpoint_url,
            aws_name,
        } => {
            let backend =
                match (backend.as_str(), endpoint_url) {
                    ("aws", Some(u)) => demo::Backend::Aws {
                        endpoint_url: u,
                        name: aws_name,
                    },
                    ("aws", None) => return usage(
                        "--backend aws needs --endpoint-url (e.g. http://127.0.0.1:5000 for moto)",
                    ),
                    (_, Some(_)) => return usage("--endpoint-url goes with --backend aws"),
                    _ => demo::Backend::Embedded,
                };
            let sc = match &scenario {
                Some(p) => scenario::Scenario::load(p)
                    .map_err(|e| anyhow::Error::new(UsageErr(format!("{e:#}"))))?,
                None => scenario::builtin(seed),
            };
            if let Some(out) = write_scenario {
                std::fs::write(&out, serde_json::to_string_pretty(&sc)?)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!("{}", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            if let Err(e) = sc.tenants() {
                return usage(format!("{e:#}"));
            }
            runtime()?.block_on(demo::run(demo::DemoOptions {
                backend,
                scenario: sc,
                state,
                json,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Classify { tenant, alerts } => classify_cmd(&tenant, &alerts),
        Cmd::Tenant { cmd } => tenant_cmd::run(cmd),
        Cmd::Calendar { cmd } => calendar_cmd(cmd, &cal),
        Cmd::Sla { kind, received } => {
            let kind: InquiryKind = match kind.parse() {
                Ok(k) => k,
                Err(e) => return usage(format!("--kind: {e}")),
            };
            let at = match DateTime::parse_from_rfc3339(received.trim()) {
                Ok(t) => t,
                Err(e) => {
                    return usage(format!(
                    "--received {received:?} is not RFC 3339 (e.g. 2026-11-25T16:59:00+09:00): {e}"
                ))
                }
            };
            let due = match cal.sla_due(kind, at) {
                Ok(d) => d,
                Err(e) => return usage(format!("{e}")),
            };
            println!(
                "{}",
                due.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { cmd: None, make } => report_cmd(make, &cal),
        Cmd::Report {
            cmd: Some(ReportCmd::Due { month }),
            ..
        } => {
            let Some((y, m)) = month
                .split_once('-')
                .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(_, m)| (1..=12).contains(m) && month.len() == 7)
            else {
                return usage(format!("--month {month:?} is not YYYY-MM"));
            };
            match cal.report_due(y, m) {
                Ok(d) => println!("{}", d.format("%Y-%m-%d")),
                Err(e) => return usage(format!("{e}")),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cloud { cmd } => cloud_cmd(cmd),
        Cmd::Run(a) => ops::run(a),
        Cmd::Rerun(a) => ops::rerun(a),
        Cmd::Runs(a) => ops::runs(a),
        Cmd::Preflight(a) => preflight::run(a),
        Cmd::Backfill(a) => backfill::run(a),
        Cmd::Chaos(a) => runtime()?.block_on(chaos::run(a)),
        Cmd::Dlq { cmd } => dlq_cmd(cmd),
        Cmd::Sentinel { cmd } => sentinel_cmd(cmd),
        Cmd::Bench {
            cmd:
                BenchCmd::Monthly {
                    alerts,
                    month,
                    store,
                    reuse,
                },
        } => {
            let month = match shared::domain::monthly::Month::parse(&month) {
                Ok(m) => m,
                Err(e) => return usage(format!("--month: {e}")),
            };
            let out = match store {
                None => bench::stream(alerts, month)?,
                Some(dir) => runtime()?.block_on(bench::store(alerts, month, &dir, reuse))?,
            };
            println!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd:
                BenchCmd::Classify {
                    alerts,
                    runs,
                    tenant,
                },
        } => {
            let t = match tenant {
                Some(f) => load_tenant(&f)?,
                None => {
                    Tenant::from_toml(include_str!("../../infra/tenants/kaede-shoji.example.toml"))
                        .map_err(|e| anyhow::anyhow!("the built-in example tenant: {e}"))?
                }
            };
            println!("{}", bench::classify(alerts, runs, &t)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Pipeline(a),
        } => {
            runtime()?.block_on(bench_pipeline::run(a))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Calls(a),
        } => {
            runtime()?.block_on(bench_calls::run(a))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Scale(a),
        } => {
            runtime()?.block_on(bench_calls::scale(a))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Respond { cmd } => respond_cmd(cmd),
        Cmd::Sim {
            cmd:
                SimCmd::Serve {
                    scenario,
                    listen,
                    ca_out,
                    write_config,
                },
        } => {
            let sc = scenario::Scenario::load(&scenario)
                .map_err(|e| anyhow::Error::new(UsageErr(format!("{e:#}"))))?;
            runtime()?.block_on(simserve::serve(
                sc,
                &listen,
                &ca_out,
                write_config.as_deref(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn respond_cmd(cmd: RespondCmd) -> anyhow::Result<ExitCode> {
    let open = |state: &PathBuf| -> anyhow::Result<shared::adapters::sqlite::SqliteStore> {
        let db = state.join("mss.sqlite");
        if !db.exists() {
            return usage(format!(
                "{}: no state here (expected mss.sqlite)",
                state.display()
            ));
        }
        shared::adapters::sqlite::SqliteStore::open(&db)
    };
    let rt = runtime()?;
    match cmd {
        RespondCmd::Approve {
            tenant,
            incident,
            state,
            by,
        } => {
            let s = open(&state)?;
            let approved = rt.block_on(shared::steps::respond::approve(
                &s,
                &s,
                chrono::Utc::now(),
                &tenant,
                &incident,
                &by,
            ))?;
            if approved.is_empty() {
                return usage(format!(
                    "tenant {tenant}, incident {incident}: no action waits for approval"
                ));
            }
            for a in approved {
                println!(
                    "approved: {} {} ({})",
                    serde_json::to_value(a.kind)?.as_str().unwrap_or(""),
                    a.target,
                    a.incident_key
                );
            }
        }
        RespondCmd::Release {
            tenant,
            device,
            reason,
            state,
            by,
        } => {
            let s = open(&state)?;
            match rt.block_on(shared::steps::respond::release(
                &s,
                &s,
                chrono::Utc::now(),
                &tenant,
                &device,
                &reason,
                &by,
            )) {
                Ok(r) => println!(
                    "release requested: {} ({}); the pipeline runs it on its next pass",
                    r.target, r.incident_key
                ),
                Err(e) => return usage(format!("{e:#}")),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cloud_cmd(cmd: CloudCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CloudCmd::ProvisionEmulator { endpoint_url, name } => {
            let p =
                runtime()?.block_on(shared::lambda::provision_emulator(&endpoint_url, &name))?;
            println!(
                "{}",
                json!({"table": p.table, "bucket": p.bucket,
                       "classify_queue_url": p.queues.classify, "ticket_queue_url": p.queues.ticket,
                       "classify_dlq_url": p.queues.classify_dlq, "ticket_dlq_url": p.queues.ticket_dlq,
                       "respond_queue_url": p.queues.respond, "check_queue_url": p.queues.check,
                       "investigate_queue_url": p.queues.investigate,
                       "investigate_dlq_url": p.queues.investigate_dlq})
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report_cmd(a: ReportArgs, cal: &Calendar) -> anyhow::Result<ExitCode> {
    let missing: Vec<&str> = [
        ("--state", a.state.is_none()),
        ("--tenant", a.tenant.is_none()),
        ("--month", a.month.is_none()),
        ("--out", a.out.is_none()),
    ]
    .into_iter()
    .filter(|(_, m)| *m)
    .map(|(n, _)| n)
    .collect();
    if !missing.is_empty() {
        return usage(format!(
            "mss report needs {} (mss report --state DIR --tenant T --month YYYY-MM [--comment FILE] --out OUT)",
            missing.join(", ")
        ));
    }
    let (state, tenant, month, out) = (
        a.state.unwrap_or_default(),
        a.tenant.unwrap_or_default(),
        a.month.unwrap_or_default(),
        a.out.unwrap_or_default(),
    );
    let month = match shared::domain::monthly::Month::parse(&month) {
        Ok(m) => m,
        Err(e) => return usage(format!("--month: {e}")),
    };
    let db = state.join("mss.sqlite");
    if !db.exists() {
        return usage(format!(
            "{}: no state here (expected mss.sqlite)",
            state.display()
        ));
    }
    let comment = match &a.comment {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading the comment file {}", f.display()))?,
        ),
        None => None,
    };
    let store = shared::adapters::sqlite::SqliteStore::open(&db)?;
    let rt = runtime()?;
    if rt
        .block_on(shared::ports::Store::get_tenant(&store, &tenant))?
        .is_none()
    {
        return usage(format!("tenant {tenant:?} is not in {}", state.display()));
    }
    let r = rt.block_on(shared::steps::monthly::build(
        &store,
        chrono::Utc::now(),
        cal,
        &tenant,
        month,
        comment.as_deref(),
    ))?;
    let (html, json) = write_report(&out, &r)?;
    println!("{}", html.display());
    println!("{}", json.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes report.html and report.json into `out` (created), each via a temporary file and a
/// rename, so a reader never sees half a report.
pub fn write_report(
    out: &std::path::Path,
    r: &shared::steps::monthly::MonthlyReport,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let html = out.join("report.html");
    let json = out.join("report.json");
    for (path, body) in [
        (&html, r.html.clone()),
        (&json, serde_json::to_string_pretty(&r.numbers)? + "\n"),
    ] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok((html, json))
}

fn load_tenant(file: &PathBuf) -> anyhow::Result<Tenant> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return usage(format!("{}: {e}", file.display())),
    };
    match Tenant::from_toml(&text) {
        Ok(t) => Ok(t),
        Err(e) => usage(format!("{}: {e}", file.display())),
    }
}

fn classify_cmd(tenant: &PathBuf, alerts: &PathBuf) -> anyhow::Result<ExitCode> {
    let t = load_tenant(tenant)?;
    let text = match std::fs::read_to_string(alerts) {
        Ok(t) => t,
        Err(e) => return usage(format!("{}: {e}", alerts.display())),
    };
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return usage(format!("{}: not JSON: {e}", alerts.display())),
    };
    let items: Vec<Value> = match v {
        Value::Array(a) => a,
        Value::Object(ref o) if o.get("value").is_some_and(Value::is_array) => {
            o["value"].as_array().cloned().unwrap_or_default()
        }
        Value::Object(_) => vec![v],
        _ => {
            return usage(format!(
                "{}: expected a Graph page, an array or one alert",
                alerts.display()
            ))
        }
    };
    let mut out = std::io::stdout().lock();
    let mut bad = 0;
    for (i, item) in items.into_iter().enumerate() {
        match Alert::from_value(item) {
            Ok(a) => {
                let d = classify(&t, &a, None);
                writeln!(
                    out,
                    "{}",
                    json!({"alert_id": a.id, "tenant": t.id, "product": d.product.map(|p| p.as_str()),
                           "decision": d.kind.as_str(), "reason": d.reason})
                )?;
            }
            Err(e) => {
                bad += 1;
                eprintln!("error: item {i}: {e}");
            }
        }
    }
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn calendar_cmd(cmd: CalendarCmd, cal: &Calendar) -> anyhow::Result<ExitCode> {
    match cmd {
        CalendarCmd::BusinessDay { date } => {
            let d = match NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d") {
                Ok(d) => d,
                Err(e) => return usage(format!("{date:?} is not YYYY-MM-DD: {e}")),
            };
            if !(calendar::FIRST_SUPPORTED_YEAR..=calendar::LAST_SUPPORTED_YEAR)
                .contains(&chrono::Datelike::year(&d))
            {
                return usage(format!(
                    "{date}: the calendar covers {}–{}",
                    calendar::FIRST_SUPPORTED_YEAR,
                    calendar::LAST_SUPPORTED_YEAR
                ));
            }
            println!("{}", cal.is_business_day(d));
        }
        CalendarCmd::Holidays { year } => match calendar::national_holidays(year) {
            Ok(list) => {
                let mut out = std::io::stdout().lock();
                for (d, name) in list {
                    writeln!(out, "{}\t{}", d.format("%Y-%m-%d"), name)?;
                }
            }
            Err(e) => return usage(format!("{e}")),
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum SentinelCmd {
    /// Write OUT/analytics-rules.json and OUT/workbook.json (ARM templates for the tenant's
    /// Sentinel workspace) and OUT/activity-rules/*.kql; prints the paths. Deploy with
    /// `az deployment group create -g RG --template-file OUT/analytics-rules.json
    /// --parameters workspace=NAME` (see infra/sentinel/README.md).
    Render {
        /// The tenant file (TOML); with --state, a tenant id stored there.
        #[arg(long)]
        tenant: PathBuf,
        /// Read the tenant from this embedded state (e.g. `mss tenant put --state DIR`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// /subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…;
        /// default: resolved at deployment from the `workspace` parameter.
        #[arg(long)]
        workspace_resource_id: Option<String>,
        /// Turn a rule (activity or analytics id) off for this tenant; repeatable.
        #[arg(long = "disable", value_name = "RULE_ID")]
        disable: Vec<String>,
        /// A break-glass account's UPN for the break-glass-signins activity rule; repeatable.
        #[arg(long = "break-glass", value_name = "UPN")]
        break_glass: Vec<String>,
    },
}

fn sentinel_cmd(cmd: SentinelCmd) -> anyhow::Result<ExitCode> {
    let SentinelCmd::Render {
        tenant,
        state,
        out,
        workspace_resource_id,
        disable,
        break_glass,
    } = cmd;
    let t = match state {
        None => load_tenant(&tenant)?,
        Some(dir) => {
            let db = dir.join("mss.sqlite");
            if !db.exists() {
                return usage(format!(
                    "{}: no state here (expected mss.sqlite)",
                    dir.display()
                ));
            }
            let store = shared::adapters::sqlite::SqliteStore::open(&db)?;
            let id = tenant.to_string_lossy().into_owned();
            match runtime()?.block_on(shared::ports::Store::get_tenant(&store, &id))? {
                Some(t) => t,
                None => {
                    return usage(format!(
                        "--tenant {id:?}: no such tenant in {}",
                        dir.display()
                    ))
                }
            }
        }
    };
    let opts = shared::sentinel::SentinelOptions {
        workspace_resource_id: workspace_resource_id.unwrap_or_default(),
        disabled_rules: disable,
        break_glass_accounts: break_glass,
    };
    let files = match shared::sentinel::render(&t, &opts) {
        Ok(f) => f,
        Err(e) => return usage(format!("{e:#}")),
    };
    for s in shared::sentinel::plan(&t, &opts)? {
        if let Some(reason) = s.reason {
            eprintln!("rule {} is off: {reason}", s.id);
        }
    }
    // A rule turned off since the last render must not leave its file behind.
    let activity_dir = out.join("activity-rules");
    if let Ok(entries) = std::fs::read_dir(&activity_dir) {
        for e in entries.flatten() {
            let name = format!("activity-rules/{}", e.file_name().to_string_lossy());
            if name.ends_with(".kql") && !files.iter().any(|(f, _)| *f == name) {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("removing {}", e.path().display()))?;
            }
        }
    }
    for (rel, text) in files {
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
