//! `mss tenant …`: a customer's contract from first file to last purge (seed §6.3 契約変更,
//! §6.4 解約). validate / put (a change of products from the first day of the next JST month,
//! unless `--now`) / list / show / disable / enable / purge / offboard, on the embedded state
//! (`--state DIR` or `--config mss.toml`) or the cloud table (`--table NAME`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Utc};
use clap::Subcommand;
use serde_json::{json, Value};

use shared::domain::alert::Product;
use shared::domain::tenant::{self, PurgeRefusal, Tenant, TenantFile, PURGE_RETENTION_DAYS};
use shared::ports::Store;

use crate::{load_tenant, runtime, usage};

/// Where the tenants are: exactly one of `--state`, `--config`, `--table`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Embedded state directory (its mss.sqlite).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Embedded configuration (mss.toml): its state directory.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The cloud table (DynamoDB; the stack's MSS_TABLE).
    #[arg(long)]
    table: Option<String>,
    /// With --table: the stack's bucket (oversize alert bodies, monthly reports under
    /// reports/); needed by purge.
    #[arg(long, requires = "table")]
    bucket: Option<String>,
    /// With --table, on an emulator only (e.g. http://127.0.0.1:5000 for moto).
    #[arg(long, requires = "table", value_parser = shared::adapters::aws::check_endpoint_url)]
    endpoint_url: Option<String>,
}

#[derive(Subcommand)]
pub enum TenantCmd {
    /// Check a tenant file; prints `ok`, or names the bad field and exits 2.
    Validate { file: PathBuf },
    /// Validate, then store a tenant. A change of its products takes effect from the first
    /// day of the next month (JST) unless --now; everything else at once. A disabled tenant
    /// stays disabled.
    Put {
        file: PathBuf,
        /// The change of products takes effect at once.
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// One line per tenant: id, name, status, products in force, scheduled change.
    List {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// A tenant's status, then its stored file as TOML (status lines as comments, so the
    /// output can be edited and put again).
    Show {
        tenant: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Stop fetching and every action for the tenant at once; its data is kept.
    Disable {
        tenant: String,
        /// Who disabled it (kept with the tenant).
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Resume fetching and actions for a disabled tenant.
    Enable {
        tenant: String,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Delete every record of a disabled tenant, once the retention period (90 days from
    /// disabling) has passed. Cannot be undone.
    Purge {
        tenant: String,
        /// The tenant id again, exactly.
        #[arg(long)]
        confirm: Option<String>,
        /// Keep the data longer than the 90 days promised (never shorter).
        #[arg(long, default_value_t = PURGE_RETENTION_DAYS)]
        retention_days: i64,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// The offboarding checklist for the tenant (seed §6.4): what the provider and the
    /// customer must remove, with what is already done.
    Offboard {
        tenant: String,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = PURGE_RETENTION_DAYS)]
        retention_days: i64,
        #[command(flatten)]
        at: StoreArgs,
    },
}

pub fn run(cmd: TenantCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantCmd::Validate { file } => {
            load_tenant(&file)?;
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        TenantCmd::Put { file, now, at } => {
            let new = load_tenant(&file)?;
            let rt = runtime()?;
            let b = open(&at, true, &rt)?;
            rt.block_on(put(&b, new, now))
        }
        TenantCmd::List { json, at } => {
            let rt = runtime()?;
            let b = open(&at, false, &rt)?;
            rt.block_on(list(&b, json))
        }
        TenantCmd::Show { tenant, json, at } => {
            let rt = runtime()?;
            let b = open(&at, false, &rt)?;
            rt.block_on(show(&b, &tenant, json))
        }
        TenantCmd::Disable { tenant, by, at } => {
            if by.trim().is_empty() {
                return usage("--by must name who disables the tenant");
            }
            let rt = runtime()?;
            let b = open(&at, false, &rt)?;
            rt.block_on(disable(&b, &tenant, by.trim()))
        }
        TenantCmd::Enable { tenant, at } => {
            let rt = runtime()?;
            let b = open(&at, false, &rt)?;
            rt.block_on(enable(&b, &tenant))
        }
        TenantCmd::Purge {
            tenant,
            confirm,
            retention_days,
            at,
        } => {
            if confirm.as_deref() != Some(tenant.as_str()) {
                return usage(format!(
                    "purge deletes every record of tenant {tenant:?} and cannot be undone; to go on, repeat its id exactly: --confirm {tenant}"
                ));
            }
            if retention_days < PURGE_RETENTION_DAYS {
                return usage(format!(
                    "--retention-days {retention_days}: data is kept {PURGE_RETENTION_DAYS} days after a tenant is disabled (README, Operating → Tenants); it can be kept longer, never shorter"
                ));
            }
            if at.table.is_some() && at.bucket.is_none() {
                return usage(
                    "purge with --table needs --bucket (the stack's bucket: oversize alert bodies and monthly reports of the tenant are there)",
                );
            }
            let rt = runtime()?;
            let b = open(&at, false, &rt)?;
            rt.block_on(purge(&b, &tenant, retention_days))
        }
        TenantCmd::Offboard {
            tenant,
            json,
            retention_days,
            at,
        } => {
            if retention_days < PURGE_RETENTION_DAYS {
                return usage(format!(
                    "--retention-days {retention_days}: data is kept at least {PURGE_RETENTION_DAYS} days after a tenant is disabled"
                ));
            }
            let rt = runtime()?;
            let b = open(&at, false, &rt)?;
            rt.block_on(offboard(&b, &tenant, json, retention_days))
        }
    }
}

// ---------------------------------------------------------------- where the tenants are

/// Where the monthly reports of a tenant are archived.
enum Reports {
    /// `<state dir>/reports/<tenant>/…` (the embedded default).
    Dir(PathBuf),
    /// `s3://<bucket>/reports/<tenant>/…` (the stack's default prefix), through the store
    /// that has the bucket.
    S3(Arc<shared::adapters::dynamodb::DynamoStore>, String),
    /// Not known here (--table without --bucket): purge refuses before this matters.
    Unknown,
}

struct Backend {
    store: Arc<dyn Store>,
    /// "the state at DIR" / "table NAME": for messages.
    place: String,
    /// The same flags, for the commands a message suggests.
    flags: String,
    reports: Reports,
}

fn open(a: &StoreArgs, create: bool, rt: &tokio::runtime::Runtime) -> anyhow::Result<Backend> {
    let sqlite = |dir: &PathBuf, flags: String| -> anyhow::Result<Backend> {
        let db = dir.join("mss.sqlite");
        if create {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        } else if !db.exists() {
            return usage(format!(
                "{}: no state here (expected mss.sqlite); `mss tenant put FILE {flags}` creates it",
                dir.display()
            ));
        }
        Ok(Backend {
            store: Arc::new(shared::adapters::sqlite::SqliteStore::open(&db)?),
            place: format!("the state at {}", dir.display()),
            flags,
            reports: Reports::Dir(dir.join("reports")),
        })
    };
    match (&a.state, &a.config, &a.table) {
        (Some(dir), None, None) => sqlite(dir, format!("--state {}", dir.display())),
        (None, Some(cfg), None) => {
            let emb = match shared::embedded::Embedded::load(cfg) {
                Ok(e) => e,
                Err(e) => return usage(format!("{e:#}")),
            };
            sqlite(&emb.state_dir, format!("--config {}", cfg.display()))
        }
        (None, None, Some(table)) => {
            let (store, reports) = rt.block_on(async {
                let sdk = shared::adapters::aws::sdk_config(a.endpoint_url.as_deref()).await;
                match &a.bucket {
                    Some(bucket) => {
                        let s = Arc::new(
                            shared::adapters::dynamodb::DynamoStore::from_sdk_with_bucket(
                                &sdk,
                                table,
                                bucket,
                                a.endpoint_url.is_some(),
                            ),
                        );
                        (s.clone() as Arc<dyn Store>, Reports::S3(s, bucket.clone()))
                    }
                    None => (
                        Arc::new(shared::adapters::dynamodb::DynamoStore::from_sdk(
                            &sdk, table,
                        )) as Arc<dyn Store>,
                        Reports::Unknown,
                    ),
                }
            });
            let mut flags = format!("--table {table}");
            if let Some(u) = &a.endpoint_url {
                flags.push_str(&format!(" --endpoint-url {u}"));
            }
            Ok(Backend {
                store,
                place: format!("table {table}"),
                flags,
                reports,
            })
        }
        _ => usage("give exactly one of --state DIR, --config mss.toml or --table NAME"),
    }
}

async fn get(b: &Backend, id: &str) -> anyhow::Result<Tenant> {
    match b.store.get_tenant(id).await? {
        Some(t) => Ok(t),
        None => usage(format!(
            "tenant {id:?} is not in {}; `mss tenant list {}` shows the stored ones",
            b.place, b.flags
        )),
    }
}

// ---------------------------------------------------------------- text

fn jst_offset() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

/// `2026-11-10 09:00 JST`
fn jst(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst_offset())
        .format("%Y-%m-%d %H:%M JST")
        .to_string()
}

/// `2026-12-01` (the JST date; a scheduled change starts at its 00:00 JST).
fn jst_date(t: DateTime<Utc>) -> String {
    t.with_timezone(&jst_offset())
        .format("%Y-%m-%d")
        .to_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn names(products: &[Product]) -> String {
    products
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn status(t: &Tenant) -> String {
    match t.disabled_at() {
        None => "active".into(),
        Some(at) => match t.disabled_by() {
            Some(by) => format!("disabled since {} by {by}", jst(at)),
            None => format!("disabled since {}", jst(at)),
        },
    }
}

/// `mde mdo → mde mdo idp from 2026-12-01 (JST)`, when a change is pending.
fn change(t: &Tenant, now: DateTime<Utc>) -> Option<String> {
    let (before, from) = t.pending_change(now)?;
    Some(format!(
        "{} → {} from {} (JST)",
        before.join(" "),
        t.source.products.join(" "),
        jst_date(from)
    ))
}

fn summary(t: &Tenant, now: DateTime<Utc>) -> Value {
    let in_force = t.clone().at(now);
    json!({
        "id": t.id,
        "name": t.name,
        "status": if t.disabled_at().is_some() { "disabled" } else { "active" },
        "disabled_at": t.disabled_at().map(rfc3339),
        "disabled_by": t.disabled_by(),
        "purge_from": tenant::purge_from(t, PURGE_RETENTION_DAYS).map(rfc3339),
        "products": in_force.products.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "scheduled": t.pending_change(now).map(|(_, from)| json!({
            "products": t.source.products,
            "from": rfc3339(from),
        })),
    })
}

// ---------------------------------------------------------------- commands

async fn put(b: &Backend, new: Tenant, immediate: bool) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    // A stored record that no longer loads (rules tightened since) must not block its fix.
    let old = match b.store.get_tenant(&new.id).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "warning: the stored record of {} does not load ({e:#}); it is replaced by the new file, without its disabled state or scheduled change",
                new.id
            );
            None
        }
    };
    let t = tenant::schedule_put(old.as_ref(), new, now, immediate);
    b.store.put_tenant(&t).await?;
    let mut line = format!("stored {}; products ", t.id);
    match change(&t, now) {
        Some(c) => line.push_str(&c),
        None => {
            line.push_str(&t.source.products.join(" "));
            let was = old.map(|o| {
                let mut p: Vec<&str> = o.at(now).products.iter().map(|p| p.as_str()).collect();
                p.sort_unstable();
                p
            });
            let mut is: Vec<&str> = t.source.products.iter().map(String::as_str).collect();
            is.sort_unstable();
            if was.is_some_and(|w| w != is) {
                line.push_str(" (in effect now: --now)");
            }
        }
    }
    println!("{line}");
    if let Some(at) = t.disabled_at() {
        println!(
            "note: {} is disabled (since {}); `mss tenant enable {} {}` resumes it",
            t.id,
            jst(at),
            t.id,
            b.flags
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(b: &Backend, as_json: bool) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let tenants = b.store.list_tenants().await?;
    if tenants.is_empty() {
        eprintln!("no tenant in {}", b.place);
    }
    let mut out = std::io::stdout().lock();
    for t in &tenants {
        if as_json {
            writeln!(out, "{}", summary(t, now))?;
        } else {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                t.id,
                t.name,
                status(t),
                names(&t.clone().at(now).products),
                change(t, now)
                    .map(|c| format!("scheduled: {c}"))
                    .unwrap_or_else(|| "-".into())
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(b: &Backend, id: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let t = get(b, id).await?;
    if as_json {
        let mut v = summary(&t, now);
        v["file"] = serde_json::to_value(TenantFile {
            lifecycle: None,
            ..t.source.clone()
        })?;
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = format!("# tenant {} ({}): {}\n", t.id, t.name, status(&t));
    s.push_str(&format!(
        "# products in force: {}\n",
        names(&t.clone().at(now).products)
    ));
    if let Some(c) = change(&t, now) {
        s.push_str(&format!("# scheduled change: {c}\n"));
    }
    if let Some(from) = tenant::purge_from(&t, PURGE_RETENTION_DAYS) {
        s.push_str(&format!(
            "# data kept until purged; purge possible from {}\n",
            jst(from)
        ));
    }
    s.push_str("# the stored tenant file:\n");
    s.push_str(&toml::to_string(&TenantFile {
        lifecycle: None,
        ..t.source.clone()
    })?);
    print!("{s}");
    Ok(ExitCode::SUCCESS)
}

async fn disable(b: &Backend, id: &str, by: &str) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let t = get(b, id).await?;
    let (t, changed) = tenant::disable(tenant::settle(t, now), now, by);
    let at = t.disabled_at().unwrap_or(now);
    let from = tenant::purge_from(&t, PURGE_RETENTION_DAYS).unwrap_or(now);
    if changed {
        b.store.put_tenant(&t).await?;
        println!(
            "disabled {id} at {} by {by}: no fetch and no action from now on; its data is kept",
            jst(at)
        );
    } else {
        println!("{id} is already {}; nothing changed", status(&t));
    }
    println!(
        "purge possible from {} ({PURGE_RETENTION_DAYS} days); `mss tenant offboard {id} {}` lists what else to remove",
        jst(from),
        b.flags
    );
    Ok(ExitCode::SUCCESS)
}

async fn enable(b: &Backend, id: &str) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let t = get(b, id).await?;
    let (t, changed) = tenant::enable(tenant::settle(t, now));
    if !changed {
        println!("{id} is not disabled; nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    b.store.put_tenant(&t).await?;
    println!("enabled {id}: fetching and actions resume with the next cycle");
    let mut cursors = Vec::new();
    for p in &t.clone().at(now).products {
        if let Some(c) = b.store.get_cursor(id, *p).await? {
            cursors.push(format!("{p} {}", jst(c)));
        }
    }
    if !cursors.is_empty() {
        println!(
            "the fetch continues from where it stopped ({}): alerts updated while disabled are fetched and handled then",
            cursors.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn purge(b: &Backend, id: &str, retention_days: i64) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let t = get(b, id).await?;
    match tenant::purge_check(&t, now, retention_days) {
        Ok(()) => {}
        Err(PurgeRefusal::NotDisabled) => {
            return usage(format!(
                "tenant {id} is active: disable it first (`mss tenant disable {id} {}`); its data may be purged {retention_days} days after that",
                b.flags
            ))
        }
        Err(PurgeRefusal::TooEarly { disabled_at, from }) => {
            return usage(format!(
                "tenant {id} was disabled at {}; its data is kept {retention_days} days: purge is possible from {} ({})",
                jst(disabled_at),
                jst(from),
                rfc3339(from)
            ))
        }
        Err(PurgeRefusal::RetentionTooShort(n)) => {
            return usage(format!(
                "--retention-days {n} is shorter than the {PURGE_RETENTION_DAYS} days promised"
            ))
        }
    }
    // Reports first: the tenant record goes last, so a purge that stops can be run again.
    let reports = purge_reports(&b.reports, id).await?;
    let counts = b.store.purge_tenant(id).await?;
    println!("purged {id} from {}: {counts}", b.place);
    if let Some(r) = reports {
        println!("{r}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes the tenant's archived monthly reports; what was deleted, for the output.
async fn purge_reports(r: &Reports, id: &str) -> anyhow::Result<Option<String>> {
    match r {
        Reports::Dir(root) => {
            let dir = root.join(id);
            if !dir.exists() {
                return Ok(None);
            }
            let mut files = 0u64;
            let mut stack = vec![dir.clone()];
            while let Some(d) = stack.pop() {
                for e in
                    std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?
                {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        stack.push(e.path());
                    } else {
                        files += 1;
                    }
                }
            }
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            Ok(Some(format!(
                "monthly reports: {files} file(s) removed ({})",
                dir.display()
            )))
        }
        Reports::S3(store, bucket) => {
            let prefix = format!(
                "{}{id}/",
                shared::adapters::report_archive::S3ReportArchive::DEFAULT_PREFIX
            );
            let n = store.delete_objects_under(&prefix).await?;
            Ok(Some(format!(
                "monthly reports: {n} object(s) deleted (s3://{bucket}/{prefix})"
            )))
        }
        Reports::Unknown => Ok(None),
    }
}

// ---------------------------------------------------------------- offboarding (§6.4)

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Todo,
    NotApplicable,
}

impl State {
    fn mark(self) -> &'static str {
        match self {
            State::Done => "[✓]",
            State::Todo => "[ ]",
            State::NotApplicable => "[-]",
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            State::Done => "done",
            State::Todo => "todo",
            State::NotApplicable => "not_applicable",
        }
    }
}

struct Task {
    ja: &'static str,
    en: &'static str,
    state: State,
    detail_ja: String,
    detail_en: String,
    /// Azure resources to remove, where we know them.
    resources: Vec<Value>,
}

fn offboarding(
    t: &Tenant,
    now: DateTime<Utc>,
    retention_days: i64,
) -> anyhow::Result<(Vec<Task>, Vec<Task>)> {
    let in_force = t.clone().at(now);
    let sentinel = in_force.subscribes(Product::Sentinel)
        || t.source.products.iter().any(|p| p == "sentinel")
        || t.log_analysis.is_some();
    let disabled = t.disabled_at();
    let purge_from = disabled.map(|at| at + chrono::Duration::days(retention_days));

    let monitoring = match disabled {
        Some(at) => Task {
            ja: "アラート監視システムの無効化",
            en: "Disable the alert-monitoring system",
            state: State::Done,
            detail_ja: format!(
                "{} に無効化済み{}。アラートの取得・初動対応は停止しています。",
                jst(at),
                t.disabled_by()
                    .map(|b| format!("（{b}）"))
                    .unwrap_or_default()
            ),
            detail_en: format!(
                "done at {}{}: no alert is fetched and no action is taken.",
                jst(at),
                t.disabled_by()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            ),
            resources: vec![],
        },
        None => Task {
            ja: "アラート監視システムの無効化",
            en: "Disable the alert-monitoring system",
            state: State::Todo,
            detail_ja: format!("利用終了日に `mss tenant disable {}` を実行します。", t.id),
            detail_en: format!("on the end date, run `mss tenant disable {}`.", t.id),
            resources: vec![],
        },
    };

    let (rules_task, workbook_task) = if sentinel {
        let opts = shared::sentinel::SentinelOptions {
            disabled_rules: t
                .log_analysis
                .as_ref()
                .map(|l| l.disabled_rules.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        // An id the rule pack no longer knows is ignored here: the checklist still lists
        // every rule that was deployed.
        let plan = shared::sentinel::plan(t, &opts)
            .or_else(|_| shared::sentinel::plan(t, &Default::default()))?;
        let titles = shared::sentinel::analytics_rules()?;
        let mut rules = Vec::new();
        let mut lines_ja = Vec::new();
        for s in plan
            .iter()
            .filter(|s| s.kind == shared::sentinel::RuleKind::Analytics)
        {
            let title = titles
                .iter()
                .find(|r| r.id == s.id)
                .map(|r| r.title.clone())
                .unwrap_or_default();
            let name = shared::sentinel::arm::name_guid(&format!(
                "mss-sentinel/{}/analytics/{}",
                t.id, s.id
            ));
            lines_ja.push(format!(
                "{} 「MSS: {title}」 {name}{}",
                s.id,
                if s.enabled {
                    ""
                } else {
                    "（無効で配置）"
                }
            ));
            rules.push(json!({"id": s.id, "display_name": format!("MSS: {title}"),
                              "resource_name": name, "enabled": s.enabled}));
        }
        let wb = shared::sentinel::workbook()?;
        let wb_name =
            shared::sentinel::arm::name_guid(&format!("mss-sentinel/{}/workbook/{}", t.id, wb.id));
        let wb_display = format!("MSS セキュリティ監視ダッシュボード（{}）", t.name);
        (
            Task {
                ja: "分析ルールの無効化",
                en: "Disable the analytics rules",
                state: State::Todo,
                detail_ja: format!(
                    "Microsoft Sentinel に配置した分析ルール {} 件を無効化します:\n{}",
                    rules.len(),
                    lines_ja
                        .iter()
                        .map(|l| format!("      - {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                detail_en: format!(
                    "the {} deployed to Microsoft Sentinel (listed above: rule id, display name, resource name).",
                    rules.len()
                ),
                resources: rules,
            },
            Task {
                ja: "ブックの削除",
                en: "Delete the workbook",
                state: State::Todo,
                detail_ja: format!("Microsoft Sentinel のブック「{wb_display}」（{wb_name}）を削除します。"),
                detail_en: format!(
                    "\"{wb_display}\" (resource name {wb_name}) in Microsoft Sentinel."
                ),
                resources: vec![json!({"display_name": wb_display, "resource_name": wb_name})],
            },
        )
    } else {
        let na = |ja: &'static str, en: &'static str| Task {
            ja,
            en,
            state: State::NotApplicable,
            detail_ja: "該当なし（Microsoft Sentinel のコンテンツを配置していないテナント）".into(),
            detail_en: "not applicable: no Microsoft Sentinel content for this tenant.".into(),
            resources: vec![],
        };
        (
            na("分析ルールの無効化", "Disable the analytics rules"),
            na("ブックの削除", "Delete the workbook"),
        )
    };

    let contacts: Vec<&str> = t
        .contacts_to
        .iter()
        .chain(&t.contacts_cc)
        .map(String::as_str)
        .collect();
    let opsramp = Task {
        ja: "OpsRamp アカウントの削除",
        en: "Delete the OpsRamp accounts",
        state: State::Todo,
        detail_ja: format!(
            "お客さま宛に発行した OpsRamp アカウントを削除します{}。",
            if contacts.is_empty() {
                String::new()
            } else {
                format!("（通知先: {}）", contacts.join(", "))
            }
        ),
        detail_en: format!(
            "the ones issued to the customer{}.",
            if contacts.is_empty() {
                String::new()
            } else {
                format!(" (notified: {})", contacts.join(", "))
            }
        ),
        resources: vec![],
    };
    let data = match purge_from {
        Some(from) => Task {
            ja: "保存データの削除",
            en: "Purge the tenant's data",
            state: State::Todo,
            detail_ja: format!(
                "無効化から {retention_days} 日間保存し、{} 以降に `mss tenant purge {} --confirm {}` で削除します。",
                jst(from),
                t.id,
                t.id
            ),
            detail_en: format!(
                "kept {retention_days} days after disabling; from {} run `mss tenant purge {} --confirm {}`.",
                jst(from),
                t.id,
                t.id
            ),
            resources: vec![],
        },
        None => Task {
            ja: "保存データの削除",
            en: "Purge the tenant's data",
            state: State::Todo,
            detail_ja: format!("無効化から {retention_days} 日後に `mss tenant purge` で削除します。"),
            detail_en: format!(
                "{retention_days} days after disabling, with `mss tenant purge`."
            ),
            resources: vec![],
        },
    };

    let customer = vec![
        Task {
            ja: "Azure AD アカウントの削除",
            en: "Remove the Azure AD accounts",
            state: State::Todo,
            detail_ja: "当社からのアクセス用に貸与・招待いただいた Azure AD アカウントを削除・無効化してください。".into(),
            detail_en: "the ones lent to or invited for the provider's access: delete or disable them.".into(),
            resources: vec![],
        },
        Task {
            ja: "Azure AD アプリの削除",
            en: "Delete the Azure AD app",
            state: State::Todo,
            detail_ja: format!(
                "API 利用のために発行いただいた Azure AD アプリ（テナント {}）を削除してください。",
                t.azure_tenant_id
            ),
            detail_en: format!(
                "the one registered for API access (Entra tenant {}).",
                t.azure_tenant_id
            ),
            resources: vec![json!({"azure_tenant_id": t.azure_tenant_id})],
        },
        if sentinel {
            Task {
                ja: "Azure Lighthouse の解除",
                en: "Remove the Azure Lighthouse delegation",
                state: State::Todo,
                detail_ja: "Microsoft Sentinel 閲覧・操作のための権限委任設定を解除してください。".into(),
                detail_en: "the delegation that lets the provider read and operate Microsoft Sentinel.".into(),
                resources: vec![],
            }
        } else {
            Task {
                ja: "Azure Lighthouse の解除",
                en: "Remove the Azure Lighthouse delegation",
                state: State::NotApplicable,
                detail_ja: "該当なし（Microsoft Sentinel を利用していないテナント）".into(),
                detail_en: "not applicable: this tenant does not use Microsoft Sentinel.".into(),
                resources: vec![],
            }
        },
    ];
    let provider = vec![opsramp, monitoring, rules_task, workbook_task, data];
    Ok((provider, customer))
}

async fn offboard(
    b: &Backend,
    id: &str,
    as_json: bool,
    retention_days: i64,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let t = get(b, id).await?;
    let (provider, customer) = offboarding(&t, now, retention_days)?;
    let purge_from = t
        .disabled_at()
        .map(|at| at + chrono::Duration::days(retention_days));
    if as_json {
        let tasks = |list: &[Task]| -> Vec<Value> {
            list.iter()
                .map(|x| {
                    json!({"item_ja": x.ja, "item_en": x.en, "state": x.state.as_str(),
                           "detail_ja": x.detail_ja, "detail_en": x.detail_en,
                           "resources": x.resources})
                })
                .collect()
        };
        println!(
            "{}",
            json!({
                "tenant": t.id,
                "name": t.name,
                "status": if t.disabled_at().is_some() { "disabled" } else { "active" },
                "disabled_at": t.disabled_at().map(rfc3339),
                "notice_days": 45,
                "retention_days": retention_days,
                "purge_from": purge_from.map(rfc3339),
                "provider": tasks(&provider),
                "customer": tasks(&customer),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = String::new();
    s.push_str(&format!(
        "解約に伴う設定解除作業 — {}（{}）\nOffboarding checklist — {} ({})\n\n",
        t.name, t.id, t.name, t.id
    ));
    s.push_str(
        "解約は利用終了予定日の 45 日以上前に、解約申込書で当社に通知いただきます（契約 §6.4）。\n",
    );
    s.push_str("The customer gives notice with the cancellation form at least 45 days before the end date (§6.4).\n");
    let section = |s: &mut String, ja: &str, en: &str, list: &[Task]| {
        s.push_str(&format!("\n■ {ja}（{en}）\n"));
        for x in list {
            s.push_str(&format!(
                "{} {} — {}\n    {}: {}\n",
                x.state.mark(),
                x.ja,
                x.detail_ja,
                x.en,
                x.detail_en
            ));
        }
    };
    section(&mut s, "当社", "provider", &provider);
    section(&mut s, "お客さま", "customer", &customer);
    s.push_str("\n[✓] 完了 done   [ ] 未了 to do   [-] 該当なし not applicable\n");
    print!("{s}");
    Ok(ExitCode::SUCCESS)
}
