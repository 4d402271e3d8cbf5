//! `mss sentinel render` through the real binary: from a tenant file and from embedded state.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn mss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("mss runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tenant_file() -> String {
    format!(
        "{}/../infra/tenants/kaede-shoji.example.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

const WS: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/kaede-ws";

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn render_writes_templates_and_activity_rules_and_prints_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = mss(&[
        "sentinel",
        "render",
        "--tenant",
        &tenant_file(),
        "--out",
        out.to_str().unwrap(),
        "--workspace-resource-id",
        WS,
        "--disable",
        "password-spray",
        "--disable",
        "inbox-rules",
        "--break-glass",
        "bg1@kaede.example",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let printed: Vec<String> = text(&o.stdout).lines().map(String::from).collect();
    assert_eq!(
        printed[0],
        out.join("analytics-rules.json").display().to_string()
    );
    assert_eq!(printed[1], out.join("workbook.json").display().to_string());
    for p in &printed {
        assert!(Path::new(p).is_file(), "{p} printed but not written");
    }
    assert!(text(&o.stderr).contains("rule password-spray is off: disabled for this tenant"));
    assert!(!out.join("activity-rules/inbox-rules.kql").exists());
    let bg = std::fs::read_to_string(out.join("activity-rules/break-glass-signins.kql")).unwrap();
    assert!(bg.contains("let BreakGlassAccounts = dynamic([\"bg1@kaede.example\"]);"));
    assert!(bg.starts_with("// id: break-glass-signins\n// title: "));

    let rules = json(&out.join("analytics-rules.json"));
    let spray = rules["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["properties"]["query"]
                .as_str()
                .unwrap()
                .contains("mss-rule: password-spray ")
        })
        .unwrap();
    assert_eq!(spray["properties"]["enabled"], false);
    let wb = json(&out.join("workbook.json"));
    assert_eq!(wb["resources"][0]["properties"]["sourceId"], WS);

    // The same inputs give the same bytes; re-enabling a rule brings its file back, and
    // disabling one removes the file left by the previous render.
    let before = std::fs::read(out.join("analytics-rules.json")).unwrap();
    let o = mss(&[
        "sentinel",
        "render",
        "--tenant",
        &tenant_file(),
        "--out",
        out.to_str().unwrap(),
        "--workspace-resource-id",
        WS,
        "--disable",
        "password-spray",
        "--disable",
        "app-consent",
        "--break-glass",
        "bg1@kaede.example",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        before,
        std::fs::read(out.join("analytics-rules.json")).unwrap()
    );
    assert!(out.join("activity-rules/inbox-rules.kql").exists());
    assert!(!out.join("activity-rules/app-consent.kql").exists());
}

#[test]
fn render_reads_the_tenant_from_embedded_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let o = mss(&[
        "tenant",
        "put",
        &tenant_file(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = dir.path().join("out");
    let o = mss(&[
        "sentinel",
        "render",
        "--state",
        state.to_str().unwrap(),
        "--tenant",
        "kaede-shoji",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let wb = json(&out.join("workbook.json"));
    assert_eq!(
        wb["resources"][0]["properties"]["displayName"],
        "MSS セキュリティ監視ダッシュボード（楓商事株式会社）"
    );
    let o = mss(&[
        "sentinel",
        "render",
        "--state",
        state.to_str().unwrap(),
        "--tenant",
        "nobody",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no such tenant"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bad_input_is_refused_with_exit_2_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let t = tenant_file();
    for (args, want) in [
        (
            vec![
                "--tenant",
                t.as_str(),
                "--out",
                out,
                "--disable",
                "pasword-spray",
            ],
            "no such rule",
        ),
        (
            vec![
                "--tenant",
                t.as_str(),
                "--out",
                out,
                "--workspace-resource-id",
                "kaede-ws",
            ],
            "is not /subscriptions/",
        ),
        (
            vec!["--tenant", "/nonexistent/tenant.toml", "--out", out],
            "/nonexistent/tenant.toml",
        ),
    ] {
        let mut all = vec!["sentinel", "render"];
        all.extend(args);
        let o = mss(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains(want), "{}", text(&o.stderr));
        assert!(!Path::new(out).join("analytics-rules.json").exists());
    }
}
