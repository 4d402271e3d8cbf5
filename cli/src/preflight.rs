//! `mss preflight --config mss.toml --tenant T [--json]`: checks that the provider can work
//! with what the customer granted (`shared::steps::preflight`), against the endpoints and
//! credentials of the embedded configuration. Prints a table of check → status, the missing
//! permission or role, and how to grant it (Japanese, then English). Exit 0 when nothing
//! failed (unverified and skipped checks do not fail), 1 when a check failed, 2 for bad input
//! (unreadable configuration, unknown tenant, no credentials in the secrets file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use shared::embedded::Embedded;
use shared::ports::Store;
use shared::steps::preflight::{self, Endpoints, PreflightDeps, Report, Status};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The embedded configuration (`mss.toml`; its secrets file holds the credentials).
    #[arg(long)]
    pub config: PathBuf,
    /// Our tenant id, as stored in the state (`mss tenant put`).
    #[arg(long)]
    pub tenant: String,
    /// Print the results as one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Time limit of each check, in seconds (retries included).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Bad input: said on stderr, exit 2.
fn bad_input(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {msg}");
    Ok(ExitCode::from(2))
}

fn secrets_path(emb: &Embedded) -> PathBuf {
    if emb.file.secrets.is_absolute() {
        emb.file.secrets.clone()
    } else {
        emb.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&emb.file.secrets)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.timeout == 0 {
        return bad_input("--timeout must be at least 1 second");
    }
    let emb = match Embedded::load(&args.config) {
        Ok(e) => e,
        Err(e) => return bad_input(format!("{e:#}")),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = emb.store()?;
    let Some(tenant) = rt.block_on(store.get_tenant(&args.tenant))? else {
        return bad_input(format!(
            "tenant {:?} is not registered in {} (store its file first: mss tenant put FILE --state {})",
            args.tenant,
            emb.state_dir.display(),
            emb.state_dir.display()
        ));
    };
    let tenant = tenant.at(chrono::Utc::now());
    let Some(app) = emb
        .app_credentials(std::slice::from_ref(&tenant))
        .into_iter()
        .next()
    else {
        return bad_input(format!(
            "no credentials for tenant {} in the secrets file {}: add a [tenants.{}] section with client_id and client_secret",
            tenant.id,
            secrets_path(&emb).display(),
            tenant.id
        ));
    };
    if let Some(at) = tenant.disabled_at() {
        eprintln!(
            "note: tenant {} is disabled since {}; checking anyway",
            tenant.id,
            at.to_rfc3339()
        );
    }
    let m = &emb.file.microsoft;
    let mut deps = PreflightDeps::new(
        Endpoints {
            authority_host: m.authority_host.clone(),
            graph_base: m.graph_base.clone(),
            mde_base: m.mde_base.clone(),
            loganalytics_base: m.loganalytics_base.clone(),
        },
        emb.http(),
        Ok(app),
        emb.opsramp_config(),
        Ok(emb.opsramp_credential()),
    );
    deps.check_timeout = Duration::from_secs(args.timeout);
    let report = rt.block_on(preflight::run(&deps, &tenant))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report, &tenant.name));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The report as text: one line per check, then how to grant each one that needs something
/// (Japanese, then English), then the counts.
pub fn table(r: &Report, name: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "preflight: {} ({name}), Azure tenant {}\n",
        r.tenant, r.azure_tenant_id
    );
    let perm = |c: &preflight::CheckResult| c.permission.clone().unwrap_or_else(|| "-".into());
    let w_id = r
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let w_perm = r
        .checks
        .iter()
        .map(|c| perm(c).chars().count())
        .max()
        .unwrap_or(10)
        .max("PERMISSION / ROLE".len());
    let _ = writeln!(
        out,
        "{:w_id$}  {:10}  {:w_perm$}  DETAIL",
        "CHECK", "STATUS", "PERMISSION / ROLE"
    );
    for c in &r.checks {
        let _ = writeln!(
            out,
            "{:w_id$}  {:10}  {:w_perm$}  {}",
            c.id,
            c.status.as_str(),
            perm(c),
            c.detail
        );
    }
    let todo: Vec<_> = r
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Failed | Status::Unverified))
        .filter(|c| !c.grant_ja.is_empty() || !c.grant_en.is_empty())
        .collect();
    if !todo.is_empty() {
        let _ = writeln!(out, "\n付与・対処の方法 / How to grant or fix");
        for c in todo {
            let _ = writeln!(
                out,
                "\n[{}] {} — {}",
                c.id,
                c.permission.as_deref().unwrap_or("-"),
                c.status.as_str()
            );
            let _ = writeln!(out, "  日本語: {}", c.grant_ja);
            let _ = writeln!(out, "  English: {}", c.grant_en);
        }
    }
    let _ = writeln!(
        out,
        "\n{} failed, {} unverified, {} ok, {} skipped",
        r.count(Status::Failed),
        r.count(Status::Unverified),
        r.count(Status::Ok),
        r.count(Status::Skipped)
    );
    out
}
