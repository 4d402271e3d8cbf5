//! `mss backfill` through the real binary, against an in-process simulator and the embedded
//! configuration `mss sim serve --write-config` writes: the summary, tickets only for young
//! incidents (all with --tickets), a second run that changes nothing, the refusals with exit
//! 2, no progress bar when stderr is not a terminal, and no secret in any output.

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig, SimTenant};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::tenant::Tenant;
use shared::ports::Store;

const AZ: &str = "7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";
const APP_SECRET: &str = "sim-secret-kaede-backfill";
const OR_SECRET: &str = "sim-secret-opsramp-backfill";

fn alert(id: &str, source: &str, age_days: i64, severity: &str) -> Value {
    let t = (Utc::now() - Duration::days(age_days))
        .format("%Y-%m-%dT%H:%M:%S.0000000Z")
        .to_string();
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": id, "incidentId": format!("inc-{id}"), "status": "new", "severity": severity,
        "serviceSource": source, "tenantId": AZ, "title": format!("alert {id}"),
        "createdDateTime": t, "lastUpdateDateTime": t, "evidence": [],
    })
}

struct Setup {
    sim: Sim,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "kaede-app".into(),
                client_secret: APP_SECRET.into(),
                alerts: vec![
                    alert("aa-young", "microsoftDefenderForIdentity", 1, "high"),
                    alert("aa-old", "microsoftDefenderForIdentity", 20, "high"),
                    alert("da-low", "microsoftDefenderForEndpoint", 2, "low"),
                ],
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: OR_SECRET.into(),
            state_file: None,
            all_visible: true,
            start_clock: Utc::now(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let config = shared::embedded::write_for_simulator(
        dir.path(),
        &sim.authority_host(),
        &sim.graph_base(),
        &sim.graph_beta_base(),
        &sim.mde_base(),
        &sim.loganalytics_base(),
        &sim.opsramp_base(),
        "client_1234",
        &ca,
        ("mss-soc", OR_SECRET),
        &[(TENANT.into(), "kaede-app".into(), APP_SECRET.into())],
    )
    .unwrap();
    let t = Tenant::from_json_value(&json!({
        "id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde", "mdi"],
        "mde": {"device_groups": ["*"], "incident_min_severity": "medium"},
        "mdi": {}
    }))
    .unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let store = SqliteStore::open(&dir.path().join("state").join("mss.sqlite")).unwrap();
    store.put_tenant(&t).await.unwrap();
    drop(store);
    Setup {
        sim,
        config,
        _dir: dir,
    }
}

/// Runs the binary off the runtime's threads (the simulator keeps serving meanwhile).
async fn mss(config: &Path, args: &[&str]) -> Output {
    let mut all: Vec<String> = vec![
        "backfill".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mss"))
            .args(&all)
            .env("RUST_LOG", "trace")
            .output()
            .expect("mss runs")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_secrets(o: &Output) {
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    for s in [APP_SECRET, OR_SECRET, "simtok"] {
        assert!(!all.contains(s), "{s} in the output");
    }
}

fn days_ago(d: i64) -> String {
    (Utc::now() - Duration::days(d))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_tickets_young_incidents_then_all_and_is_idempotent() {
    let s = setup().await;
    let since = days_ago(30);
    let o = mss(
        &s.config,
        &["--tenant", TENANT, "--since", &since, "--json"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    no_secrets(&o);
    // stderr is a pipe here: indicatif draws nothing.
    assert!(!text(&o.stderr).contains("ETA"), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &v["backfill"]["totals"];
    assert_eq!(t["alerts"], 3, "{v:#}");
    assert_eq!(t["incident"], 2);
    assert_eq!(t["monitored"], 1);
    assert_eq!(t["tickets_queued"], 1);
    assert_eq!(t["held_too_old"], 1);
    assert_eq!(v["queues"]["ticketed"], 1);
    assert_eq!(v["queues"]["failed"], 0);
    let tickets = s.sim.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].subject, "【重大度: 高】alert aa-young");

    // Again: nothing new, no second ticket.
    let o = mss(
        &s.config,
        &["--tenant", TENANT, "--since", &since, "--json"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backfill"]["totals"]["new_versions"], 0);
    assert_eq!(v["backfill"]["totals"]["tickets_queued"], 0);
    assert_eq!(v["backfill"]["totals"]["already_ticketed"], 1);
    assert_eq!(s.sim.tickets().len(), 1);

    // --tickets: the old incident too; the human summary.
    let o = mss(
        &s.config,
        &["--tenant", TENANT, "--since", &since, "--tickets"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    no_secrets(&o);
    let out = text(&o.stdout);
    assert!(out.starts_with("backfill kaede-shoji: "), "{out}");
    assert!(out.contains("every incident (--tickets)"), "{out}");
    let total = out.lines().find(|l| l.starts_with("total")).unwrap();
    let cols: Vec<&str> = total.split_whitespace().collect();
    // total pages alerts new out_of_scope monitored incident tickets on_ticket too_old malformed
    assert_eq!(
        cols[2..],
        ["3", "0", "0", "1", "2", "1", "1", "0", "0"],
        "{out}"
    );
    assert_eq!(s.sim.tickets().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_2_with_the_reason_and_read_nothing() {
    let s = setup().await;
    let future = (Utc::now() + Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let (a, b) = (days_ago(3), days_ago(5));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tenant", "nobody", "--since", &a], "not registered"),
        (
            vec!["--tenant", TENANT, "--since", &future],
            "in the future",
        ),
        (
            vec!["--tenant", TENANT, "--since", "2020-01-01"],
            "180 days",
        ),
        (
            vec!["--tenant", TENANT, "--since", "last tuesday"],
            "--since",
        ),
        (
            vec!["--tenant", TENANT, "--since", &a, "--until", &b],
            "not before --until",
        ),
        (
            vec!["--tenant", TENANT, "--since", &a, "--product", "idp"],
            "does not subscribe to idp",
        ),
        (
            vec!["--tenant", TENANT, "--since", &a, "--product", "xdr"],
            "--product",
        ),
    ];
    for (args, want) in cases {
        let o = mss(&s.config, &args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
        no_secrets(&o);
    }
    let missing = s.config.with_file_name("nope.toml");
    let o = mss(&missing, &["--tenant", TENANT, "--since", &a]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(s.sim.stats().graph_alert_requests, 0);
    assert!(s.sim.tickets().is_empty());
}
