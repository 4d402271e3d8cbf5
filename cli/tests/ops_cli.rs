//! The operator's commands through the real binary, against `mss sim serve --write-config`:
//! `mss run --once` ticketing a fresh alert, `mss rerun` from several steps repeating nothing
//! (and `--force` re-posting the report), `mss runs --failed`, and every refusal as a clear
//! message with exit 2 — with no secret in any output.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

const TENANT: &str = "kaede-shoji";
const AZ: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Served {
    child: Child,
    cfg: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-tenant scenario whose alerts were updated half an hour ago, so `mss run`'s first
/// fetch (24 h back) sees them.
fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let ts = |m: i64| (now - chrono::Duration::minutes(m)).to_rfc3339();
    let alert = |id: &str, m: i64| {
        json!({"id": id, "lastUpdateDateTime": ts(m), "createdDateTime": ts(m + 5),
            "serviceSource": "microsoftDefenderForEndpoint", "severity": "high",
            "title": "不審な PowerShell の実行", "category": "Execution", "tenantId": AZ,
            "incidentId": "501", "status": "new",
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence",
                          "mdeDeviceId": "dev-1", "deviceDnsName": "tky-pc-0123"}]})
    };
    let sc = json!({"start": ts(120), "end": now.to_rfc3339(), "tenants": [{
        "config": {"id": TENANT, "name": "楓商事株式会社", "azure_tenant_id": AZ, "products": ["mde"],
                   "contacts": {"to": ["soc@kaede.example"]},
                   "mde": {"device_groups": ["*"], "incident_min_severity": "low"}},
        "alerts": [alert("da-1", 40), alert("da-2", 30)]}]});
    let sc_path = dir.path().join("scenario.json");
    std::fs::write(&sc_path, sc.to_string()).unwrap();
    let cfg_dir = dir.path().join("cfg");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mss"))
        .args([
            "sim",
            "serve",
            "--scenario",
            sc_path.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ca-out",
            dir.path().join("ca.pem").to_str().unwrap(),
            "--write-config",
            cfg_dir.to_str().unwrap(),
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mss sim serve starts");
    // It says "serving until Ctrl-C" once the config is written and the port is open.
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "mss sim serve did not start");
        match lines.next() {
            Some(Ok(l)) if l.contains("serving until Ctrl-C") => break,
            Some(Ok(_)) => {}
            _ => panic!("mss sim serve exited early"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        cfg: cfg_dir.join("mss.toml"),
        dir,
    }
}

impl Served {
    fn mss(&self, args: &[&str]) -> Output {
        let o = Command::new(env!("CARGO_BIN_EXE_mss"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("mss runs");
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(
            !all.contains("sim-secret-"),
            "a secret reached the output of {args:?}:\n{all}"
        );
        o
    }

    fn cfg(&self) -> &str {
        self.cfg.to_str().unwrap()
    }

    fn state(&self) -> PathBuf {
        self.cfg.parent().unwrap().join("state")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.mss(args);
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    fn refused(&self, args: &[&str], says: &str) {
        let o = self.mss(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: expected {says:?} in {}",
            text(&o.stderr)
        );
    }

    fn rerun_json(&self, extra: &[&str]) -> Value {
        let mut args = vec![
            "rerun",
            "--config",
            self.cfg(),
            "--tenant",
            TENANT,
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(self.ok(&args).trim()).unwrap()
    }
}

fn tenant_file(dir: &Path) -> String {
    dir.join("cfg")
        .join(format!("tenant-{TENANT}.toml"))
        .display()
        .to_string()
}

#[test]
fn run_rerun_and_runs_against_the_simulator() {
    let s = serve();
    let state = s.state();
    s.ok(&[
        "tenant",
        "put",
        &tenant_file(s.dir.path()),
        "--state",
        state.to_str().unwrap(),
    ]);

    let out = s.ok(&["run", "--config", s.cfg(), "--once"]);
    assert!(out.contains("2 new version(s)"), "{out}");
    assert!(out.contains("ticketed 2"), "{out}");
    assert!(out.contains("investigated 2"), "{out}");

    // From ticket: both alerts of the incident go back; the ticket is found and the steps
    // after it see their work done (shared/tests/rerun.rs counts the ticket's responses).
    let r = s.rerun_json(&["--incident", "501", "--from", "ticket"]);
    assert_eq!(r["rerun"]["queued"], 2, "{r}");
    assert_eq!(r["drained"]["ticketed"], 2, "{r}");
    assert_eq!(r["drained"]["failed"], 0, "{r}");

    // From classify: the same, one step earlier.
    let r = s.rerun_json(&["--alert", "da-1", "--from", "classify"]);
    assert_eq!(
        (
            r["drained"]["classified"].as_u64(),
            r["drained"]["ticketed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );

    // Forced investigation: the report is rebuilt and posted again (stdin is not a
    // terminal, so no question is asked).
    let r = s.rerun_json(&["--alert", "da-2", "--from", "investigate", "--force"]);
    assert_eq!(r["drained"]["investigated"], 1, "{r}");

    // From report: the month's report files.
    let r = s.rerun_json(&["--alert", "da-2", "--from", "report"]);
    let html = r["report"]["html"].as_str().unwrap();
    assert!(std::fs::read_to_string(html)
        .unwrap()
        .contains("楓商事株式会社"));

    let out = s.ok(&["runs", "--failed", "--config", s.cfg()]);
    assert_eq!(out.trim(), "no failed or stuck work");
    let out = s.ok(&[
        "runs",
        "--failed",
        "--state",
        state.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.trim(), "");

    // Refusals: exit 2 and a message that says what is wrong; nothing done.
    let base = ["rerun", "--config", s.cfg(), "--tenant", TENANT];
    let with = |extra: &[&'static str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    s.refused(
        &with(&["--alert", "da-404", "--from", "ticket"]),
        "no stored alert \"da-404\"",
    );
    s.refused(
        &with(&["--alert", "da-1", "--from", "ticket", "--force"]),
        "--force only applies to --from investigate",
    );
    s.refused(
        &with(&["--alert", "da-1", "--from", "bogus"]),
        "expected one of fetch, classify, ticket, investigate, respond, report",
    );
    s.refused(
        &[
            "rerun",
            "--config",
            s.cfg(),
            "--tenant",
            "nobody",
            "--alert",
            "da-1",
            "--from",
            "ticket",
        ],
        "tenant \"nobody\" is not registered",
    );
    s.refused(&["runs", "--config", s.cfg()], "add --failed");
    s.refused(
        &[
            "runs",
            "--failed",
            "--config",
            s.cfg(),
            "--tenant",
            "nobody",
        ],
        "not registered",
    );
    s.refused(
        &[
            "runs",
            "--failed",
            "--config",
            s.cfg(),
            "--since",
            "yesterday",
        ],
        "--since \"yesterday\"",
    );
    s.refused(
        &[
            "dlq",
            "redrive",
            "--queue",
            "ticket",
            "--state",
            state.to_str().unwrap(),
        ],
        "dead-letter queue is empty",
    );
    // A secrets file others can read is refused before anything runs.
    let secrets = s.cfg.parent().unwrap().join("secrets.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
        s.refused(&["run", "--config", s.cfg(), "--once"], "chmod 600");
    }
}
