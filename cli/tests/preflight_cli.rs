//! `mss preflight` through the real binary, against the simulator started in this process with
//! the configuration `mss sim serve --write-config` would leave: the table, the JSON, exit codes
//! 0 / 1 / 2, and no secret on stdout or stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mss_sim::{Permission, Sim, SimConfig, SimTenant};
use serde_json::Value;

const AZ: &str = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa";
const APP: &str = "kaede-app";
const SECRET: &str = "sim-secret-kaede-0123456789";
const OR_SECRET: &str = "sim-secret-opsramp-42";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the binary off the async runtime, so the simulator keeps serving meanwhile.
async fn mss(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_mss"))
            .args(&args)
            .env("RUST_LOG", "debug")
            .output()
            .expect("mss runs")
    })
    .await
    .unwrap()
}

fn no_secret(o: &Output) {
    let all = format!("{}\n{}", text(&o.stdout), text(&o.stderr));
    for s in [SECRET, OR_SECRET, "simtok"] {
        assert!(!all.contains(s), "{s:?} appeared in the output:\n{all}");
    }
}

const TENANT: &str = r#"
id = "kaede-shoji"
name = "楓商事株式会社"
azure_tenant_id = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
products = ["mde", "idp"]

[contacts]
to = ["soc@kaede.example"]

[mde]
device_groups = ["*"]
incident_min_severity = "medium"

[idp]
incident_min_risk = "high"

[response.mde]
isolate = "auto"
"#;

/// A second tenant with no entry in the secrets file.
const TENANT_B: &str = r#"
id = "aoba-bank"
name = "青葉銀行"
azure_tenant_id = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb"
products = ["mdo"]

[[mdo.policies]]
name = "Email messages containing malicious URL removed after delivery"
category = "threat_management"
level = "incident"
"#;

struct Rig {
    sim: Sim,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

async fn rig() -> Rig {
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: APP.into(),
                client_secret: SECRET.into(),
                alerts: vec![],
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: OR_SECRET.into(),
            state_file: None,
            all_visible: true,
            start_clock: chrono::Utc::now(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator starts");
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
        &[("kaede-shoji".into(), APP.into(), SECRET.into())],
    )
    .unwrap();
    let state = dir.path().join("state");
    for (name, body) in [("kaede.toml", TENANT), ("aoba.toml", TENANT_B)] {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        let o = mss(vec![
            "tenant".into(),
            "put".into(),
            f.display().to_string(),
            "--state".into(),
            state.display().to_string(),
        ])
        .await;
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    Rig {
        sim,
        _dir: dir,
        config,
    }
}

fn args(config: &Path, tenant: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "preflight".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--tenant".into(),
        tenant.into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// The table line of a check, split on runs of two or more blanks.
fn row(out: &str, id: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no row {id} in:\n{out}"));
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_json_and_exit_codes() {
    let rig = rig().await;

    // Everything granted: exit 0.
    let o = mss(args(&rig.config, "kaede-shoji", &[])).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.starts_with("preflight: kaede-shoji (楓商事株式会社), Azure tenant 0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa\n"), "{out}");
    assert!(out.contains("CHECK "), "{out}");
    assert_eq!(
        row(&out, "graph.alerts_v2")[..3],
        ["graph.alerts_v2", "ok", "SecurityAlert.Read.All"]
    );
    assert_eq!(
        row(&out, "mde.machines")[..3],
        ["mde.machines", "ok", "Machine.Read.All"]
    );
    assert_eq!(row(&out, "graph.risk_detections")[1], "ok");
    assert_eq!(
        row(&out, "mde.isolate")[..3],
        ["mde.isolate", "unverified", "Machine.Isolate"]
    );
    assert_eq!(row(&out, "mde.scan")[1], "skipped");
    assert_eq!(row(&out, "loganalytics.query")[1], "skipped");
    assert_eq!(row(&out, "opsramp.client")[1], "ok");
    // The unverified one says how to make sure, Japanese first.
    let how = out
        .split("付与・対処の方法 / How to grant or fix")
        .nth(1)
        .expect("how-to section");
    assert!(
        how.contains("[mde.isolate] Machine.Isolate — unverified\n  日本語: この権限は実際の操作"),
        "{how}"
    );
    assert!(
        out.trim_end()
            .ends_with("0 failed, 1 unverified, 10 ok, 5 skipped"),
        "{out}"
    );
    no_secret(&o);

    // One permission taken away: exit 1, the row names it, and how to grant it follows.
    rig.sim.deny(AZ, Permission::SecurityAlertReadAll);
    let o = mss(args(&rig.config, "kaede-shoji", &[])).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    let r = row(&out, "graph.alerts_v2");
    assert_eq!(
        r[..3],
        ["graph.alerts_v2", "FAILED", "SecurityAlert.Read.All"]
    );
    assert!(
        r[3].contains("HTTP 403 Forbidden: Missing application roles."),
        "{r:?}"
    );
    let how = out
        .split("付与・対処の方法 / How to grant or fix")
        .nth(1)
        .unwrap();
    let block: Vec<&str> = how
        .lines()
        .skip_while(|l| !l.starts_with("[graph.alerts_v2]"))
        .take(3)
        .collect();
    assert_eq!(
        block[0],
        "[graph.alerts_v2] SecurityAlert.Read.All — FAILED"
    );
    assert!(
        block[1].starts_with("  日本語: Microsoft Entra 管理センター"),
        "{}",
        block[1]
    );
    assert!(block[1].contains("「SecurityAlert.Read.All」") && block[1].contains(APP));
    assert!(
        block[2].starts_with("  English: In the Microsoft Entra admin center"),
        "{}",
        block[2]
    );
    assert!(
        out.trim_end()
            .ends_with("1 failed, 1 unverified, 9 ok, 5 skipped"),
        "{out}"
    );
    no_secret(&o);

    // The same as JSON.
    let o = mss(args(&rig.config, "kaede-shoji", &["--json"])).await;
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    assert_eq!(v["tenant"], "kaede-shoji");
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "graph.alerts_v2")
        .unwrap();
    assert_eq!(c["status"], "failed");
    assert_eq!(c["permission"], "SecurityAlert.Read.All");
    assert_eq!(c["resource"], "Microsoft Graph");
    assert!(c["grant_ja"].as_str().unwrap().contains("管理者の同意"));
    assert!(c["grant_en"]
        .as_str()
        .unwrap()
        .contains("Grant admin consent"));
    no_secret(&o);
    rig.sim.allow(AZ, Permission::SecurityAlertReadAll);

    // Bad input: exit 2 with what is wrong.
    let o = mss(args(&rig.config, "no-such-tenant", &[])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("tenant \"no-such-tenant\" is not registered"),
        "{}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty());

    let o = mss(args(&rig.config, "aoba-bank", &[])).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    let secrets_file = rig.config.parent().unwrap().join("secrets.toml");
    assert!(
        err.contains(&format!(
            "no credentials for tenant aoba-bank in the secrets file {}",
            secrets_file.display()
        )),
        "{err}"
    );
    assert!(err.contains("[tenants.aoba-bank]"), "{err}");
    no_secret(&o);

    let o = mss(args(
        &rig.config.with_file_name("missing.toml"),
        "kaede-shoji",
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("missing.toml"),
        "{}",
        text(&o.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_without_showing_it() {
    let rig = rig().await;
    // Replace the tenant's secret in the secrets file with a wrong one (mode stays 0600).
    let secrets = rig.config.with_file_name("secrets.toml");
    let wrong = "sim-secret-WRONG-987654321";
    let body = std::fs::read_to_string(&secrets)
        .unwrap()
        .replace(SECRET, wrong);
    std::fs::write(&secrets, body).unwrap();
    let o = mss(args(&rig.config, "kaede-shoji", &[])).await;
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    let r = row(&out, "token.graph");
    assert_eq!(r[1], "FAILED");
    assert!(r[3].contains("AADSTS7000215"), "{r:?}");
    assert!(
        out.contains("クライアント シークレットが一致しません"),
        "{out}"
    );
    assert_eq!(row(&out, "graph.alerts_v2")[1], "skipped");
    assert_eq!(row(&out, "opsramp.client")[1], "ok");
    let all = format!("{out}\n{}", text(&o.stderr));
    assert!(!all.contains(wrong), "the wrong secret leaked:\n{all}");
    no_secret(&o);
}
