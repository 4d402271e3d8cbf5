//! `mss backfill`: read one tenant's alerts of a past window again (`shared::steps::backfill`),
//! with a progress bar on stderr and a summary on stdout, then run the embedded queues so the
//! tickets it handed on are made.
//!
//! Refusals (exit 2, nothing read): a bad date or product, an unknown or disabled tenant, a
//! tenant without credentials in the secrets file, `--since` in the future, `--since` not
//! before `--until`, `--since` more than 180 days ago (Defender's documented retention; see
//! `GRAPH_RETENTION_DAYS`). Any other failure exits 1; what was read up to it is stored and
//! classified, its tickets are made, and the same command can simply be run again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use shared::adapters::graph::{GraphClient, GraphConfig};
use shared::domain::alert::Product;
use shared::embedded::Embedded;
use shared::steps::backfill::{self, BackfillOutcome, BackfillRequest, Counts, Refused};

#[derive(clap::Args, Debug, Clone)]
pub struct BackfillArgs {
    /// The embedded configuration (mss.toml; `mss sim serve --write-config DIR` writes one).
    #[arg(long)]
    pub config: PathBuf,
    /// Our tenant id, as registered with `mss tenant put`.
    #[arg(long)]
    pub tenant: String,
    /// Start of the window (inclusive): YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS] with an optional
    /// offset (Z, +09:00). Without an offset the time is JST; a date alone is 00:00 JST.
    #[arg(long)]
    pub since: String,
    /// End of the window (exclusive), same forms; default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// One product (mde mdo mda mdi idp sentinel); default: every product the tenant has.
    #[arg(long)]
    pub product: Option<String>,
    /// Ticket every incident of the window, whatever its age (first response and the
    /// investigation report follow as for any incident, per the tenant's policy).
    #[arg(long, conflicts_with = "ticket_max_age_days")]
    pub tickets: bool,
    /// Incidents whose version is older than this many days are counted, not ticketed.
    #[arg(long, value_name = "N")]
    pub ticket_max_age_days: Option<u32>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Reads `YYYY-MM-DD[THH:MM[:SS[.f]]][Z|±HH:MM]`; no offset means JST (+09:00).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let z = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .map(|p| format!("{p}+00:00"));
    let with_offset = z.as_deref().unwrap_or(s);
    for f in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(with_offset, f) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    let jst = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    match naive.and_then(|n| jst.from_local_datetime(&n).single()) {
        Some(t) => Ok(t.with_timezone(&Utc)),
        None => Err(format!(
            "{s:?} is not a date or time (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], optionally with Z or +09:00)"
        )),
    }
}

fn refused(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {msg}");
    Ok(ExitCode::from(2))
}

fn is_refusal(e: &anyhow::Error) -> Option<&Refused> {
    e.chain().find_map(|c| c.downcast_ref::<Refused>())
}

pub fn run(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let since = match parse_time(&args.since) {
        Ok(t) => t,
        Err(e) => return refused(format!("--since: {e}")),
    };
    let until = match args.until.as_deref().map(parse_time).transpose() {
        Ok(t) => t,
        Err(e) => return refused(format!("--until: {e}")),
    };
    let product = match args.product.as_deref() {
        None => None,
        Some(p) => match Product::parse(p.trim()) {
            Some(p) => Some(p),
            None => {
                return refused(format!(
                    "--product {p:?} is not one of mde mdo mda mdi idp sentinel"
                ))
            }
        },
    };
    let max_ticket_age = if args.tickets {
        None
    } else {
        Some(match args.ticket_max_age_days {
            Some(d) => Duration::from_secs(u64::from(d) * 24 * 3600),
            None => backfill::DEFAULT_MAX_TICKET_AGE,
        })
    };
    let emb = match Embedded::load(&args.config) {
        Ok(e) => e,
        Err(e) => return refused(format!("{e:#}")),
    };
    let req = BackfillRequest {
        tenant: args.tenant.clone(),
        since,
        until,
        product,
        max_ticket_age,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(&emb, &req, args.json))
}

async fn run_async(emb: &Embedded, req: &BackfillRequest, json: bool) -> anyhow::Result<ExitCode> {
    let (deps, _opsramp) = emb.deps().await?;
    let tenant = match backfill::check(&deps, req).await {
        Ok((t, _)) => t,
        Err(e) => match is_refusal(&e) {
            Some(r) => return refused(r),
            None => return Err(e),
        },
    };
    if !emb.has_credentials(&tenant.id) {
        return refused(format!(
            "tenant {} has no credentials in the secrets file of {} ([tenants.{}] client_id, client_secret)",
            tenant.id,
            emb.path.display(),
            tenant.id
        ));
    }
    let m = &emb.file.microsoft;
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: m.graph_base.clone(),
            authority_host: m.authority_host.clone(),
            http: emb.http(),
            ..GraphConfig::default()
        },
        emb.app_credentials(std::slice::from_ref(&tenant)),
    )?;

    // Drawn on stderr, and not at all when stderr is not a terminal (indicatif's default
    // target), so redirected output and logs stay clean.
    let bar = ProgressBar::new_spinner();
    bar.set_style(spinner_style());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("{} starting", req.tenant));
    let mut sized = false;
    let bar2 = bar.clone();
    let mut on_page = move |p: &backfill::Progress| {
        if let Some(n) = p.expected {
            if !sized {
                bar2.set_style(bar_style());
                sized = true;
            }
            bar2.set_length(n.max(p.items));
        }
        bar2.set_position(p.items);
        bar2.set_message(format!(
            "{} {} · {} page(s)",
            req.tenant, p.product, p.pages
        ));
    };
    let result = backfill::run(&deps, &graph, req, &mut on_page).await;
    bar.finish_and_clear();

    // Whatever was read is stored and classified: make its tickets even when a later page
    // failed (a rerun of the same window then has nothing more to ticket for it).
    let drained = shared::runner::drain(&deps).await;
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            if let Some(r) = is_refusal(&e) {
                return refused(r);
            }
            if let Ok(d) = &drained {
                eprintln!(
                    "note: the pages read before the failure were stored and classified; {} ticket step(s) ran. Running the same backfill again is safe.",
                    d.ticketed
                );
            }
            return Err(e);
        }
    };
    let drained = drained.context("making the tickets the backfill queued")?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backfill": out,
                "queues": drained,
            }))?
        );
    } else {
        print!("{}", summary(&out));
        println!(
            "queues: {} ticket step(s), {} first-response, {} investigation, {} failed",
            drained.ticketed, drained.responded, drained.investigated, drained.failed
        );
    }
    if drained.failed > 0 {
        eprintln!(
            "error: {} step(s) failed; their messages stay queued and are retried by the next run (`mss dlq list` shows those that gave up)",
            drained.failed
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} · {pos} alerts · {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} alerts · ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn row(name: &str, c: &Counts) -> String {
    format!(
        "{name:<9}{:>7}{:>8}{:>6}{:>14}{:>11}{:>10}{:>9}{:>11}{:>9}{:>11}\n",
        c.pages,
        c.alerts,
        c.new_versions,
        c.out_of_scope,
        c.monitored,
        c.incident,
        c.tickets_queued,
        c.already_ticketed,
        c.held_too_old,
        c.malformed
    )
}

fn jst(t: DateTime<Utc>) -> String {
    let tokyo = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    t.with_timezone(&tokyo)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The human summary: the window (in JST), one row per product and the totals.
pub fn summary(o: &BackfillOutcome) -> String {
    let until = match o.until {
        Some(u) => jst(u),
        None => format!("now ({})", jst(o.ran_at)),
    };
    let age = match o.ticket_max_age_hours {
        Some(h) if h % 24 == 0 => format!("incidents younger than {} day(s)", h / 24),
        Some(h) => format!("incidents younger than {h} hour(s)"),
        None => "every incident (--tickets)".to_string(),
    };
    let mut s = format!(
        "backfill {}: {} → {}; tickets for {age}\n",
        o.tenant,
        jst(o.since),
        until
    );
    s.push_str(&format!(
        "{:<9}{:>7}{:>8}{:>6}{:>14}{:>11}{:>10}{:>9}{:>11}{:>9}{:>11}\n",
        "product",
        "pages",
        "alerts",
        "new",
        "out_of_scope",
        "monitored",
        "incident",
        "tickets",
        "on_ticket",
        "too_old",
        "malformed"
    ));
    for (p, c) in &o.by_product {
        s.push_str(&row(p.as_str(), c));
    }
    s.push_str(&row("total", &o.totals));
    if o.totals.tenant_mismatch > 0 {
        s.push_str(&format!(
            "{} alert(s) claim another Azure tenant: out of scope, logged as errors; check the tenant's app registration\n",
            o.totals.tenant_mismatch
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_without_offset_are_jst() {
        let t = |s: &str| parse_time(s).unwrap().to_rfc3339();
        assert_eq!(t("2026-11-02"), "2026-11-01T15:00:00+00:00");
        assert_eq!(t("2026-11-02T09:30"), "2026-11-02T00:30:00+00:00");
        assert_eq!(t("2026-11-02T09:30:15"), "2026-11-02T00:30:15+00:00");
        assert_eq!(t("2026-11-02T09:30Z"), "2026-11-02T09:30:00+00:00");
        assert_eq!(t("2026-11-02T09:30:00+09:00"), "2026-11-02T00:30:00+00:00");
        assert_eq!(t("2026-11-02T09:30+09:00"), "2026-11-02T00:30:00+00:00");
        for bad in ["", "yesterday", "2026-13-01", "2026-11-02T25:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
