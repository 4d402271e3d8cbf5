//! `mss tenant …` through the real binary on a temporary embedded state: put (a change of
//! products from the next JST month, or `--now`), list, show, disable, enable, purge (its
//! refusals, and the success path once the retention period has passed) and offboard.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::{Alert, Product};
use shared::domain::tenant::{first_of_next_jst_month, Tenant};
use shared::ports::Store;

fn mss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .env("RUST_LOG", "error")
        .env_remove("MSS_CALENDAR")
        .output()
        .expect("mss runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and expects success; stdout.
fn ok(args: &[&str]) -> String {
    let o = mss(args);
    assert!(
        o.status.success(),
        "mss {args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Runs and expects exit 2; stderr.
fn refused(args: &[&str]) -> String {
    let o = mss(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "mss {args:?} should exit 2: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stderr)
}

fn example() -> String {
    std::fs::read_to_string(format!(
        "{}/../infra/tenants/kaede-shoji.example.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Rig {
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn st(&self) -> String {
        self.state().display().to_string()
    }
    fn file(&self, name: &str, body: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }
    /// The kaede example, with `products` replaced and the sections to match appended.
    fn kaede(&self, name: &str, with_sentinel: bool) -> String {
        let mut body = example();
        if with_sentinel {
            body = body.replace(
                r#"products = ["mde", "mdo", "mda", "mdi", "idp"]"#,
                r#"products = ["mde", "mdo", "mda", "mdi", "idp", "sentinel"]"#,
            );
            body.push_str("\n[sentinel]\nincident_min_severity = \"high\"\n");
        }
        self.file(name, &body)
    }
    fn aoba(&self) -> String {
        self.file(
            "aoba.toml",
            "id = \"aoba-bank\"\nname = \"青葉銀行\"\nazure_tenant_id = \"11111111-2222-3333-4444-555555555555\"\nproducts = [\"mdi\"]\n[mdi]\n",
        )
    }
    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.state().join("mss.sqlite")).unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn jst(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M JST")
        .to_string()
}

#[test]
fn validate_is_unchanged() {
    let r = Rig::new();
    assert_eq!(
        ok(&["tenant", "validate", &r.kaede("k.toml", false)]),
        "ok\n"
    );
    let bad = r.file("bad.toml", &example().replace("\"medium\"", "\"severe\""));
    let e = refused(&["tenant", "validate", &bad]);
    assert!(e.contains("mde.incident_min_severity"), "{e}");
    // A tenant file never carries the stored lifecycle.
    let e = refused(&[
        "tenant",
        "validate",
        &r.file(
            "lc.toml",
            &format!("{}\n[lifecycle]\ndisabled_by = \"x\"\n", example()),
        ),
    ]);
    assert!(e.contains("lifecycle"), "{e}");
}

#[test]
fn put_list_show_disable_enable() {
    let r = Rig::new();
    let st = r.st();
    let out = ok(&["tenant", "put", &r.kaede("k.toml", false), "--state", &st]);
    assert_eq!(out, "stored kaede-shoji; products mde mdo mda mdi idp\n");

    // A change of products waits for the first day of the next JST month.
    let from = first_of_next_jst_month(Utc::now());
    let day = from
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    let out = ok(&["tenant", "put", &r.kaede("k2.toml", true), "--state", &st]);
    assert_eq!(
        out,
        format!(
            "stored kaede-shoji; products mde mdo mda mdi idp → mde mdo mda mdi idp sentinel from {day} (JST)\n"
        )
    );
    let list = ok(&["tenant", "list", "--state", &st]);
    assert_eq!(
        list,
        format!(
            "kaede-shoji\t楓商事株式会社\tactive\tmde mdo mda mdi idp\tscheduled: mde mdo mda mdi idp → mde mdo mda mdi idp sentinel from {day} (JST)\n"
        )
    );
    let j: Value =
        serde_json::from_str(ok(&["tenant", "list", "--json", "--state", &st]).trim()).unwrap();
    assert_eq!(j["status"], "active");
    assert_eq!(j["products"], json!(["mde", "mdo", "mda", "mdi", "idp"]));
    assert_eq!(
        j["scheduled"]["products"],
        json!(["mde", "mdo", "mda", "mdi", "idp", "sentinel"])
    );
    assert_eq!(
        j["scheduled"]["from"],
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // show: status as comments, then the file; the output is a tenant file again.
    let shown = ok(&["tenant", "show", "kaede-shoji", "--state", &st]);
    assert!(
        shown.starts_with("# tenant kaede-shoji (楓商事株式会社): active\n"),
        "{shown}"
    );
    assert!(
        shown.contains("# products in force: mde mdo mda mdi idp\n"),
        "{shown}"
    );
    assert!(shown.contains("# scheduled change: "), "{shown}");
    let again = Tenant::from_toml(&shown).expect("show prints a valid tenant file");
    assert_eq!(again.source.products.len(), 6);
    assert!(again.source.lifecycle.is_none());
    let j: Value = serde_json::from_str(
        ok(&["tenant", "show", "kaede-shoji", "--json", "--state", &st]).trim(),
    )
    .unwrap();
    assert_eq!(j["file"]["id"], "kaede-shoji");
    assert!(j["file"].get("lifecycle").is_none(), "{j}");

    // --now: in force at once.
    let out = ok(&[
        "tenant",
        "put",
        &r.kaede("k2.toml", true),
        "--now",
        "--state",
        &st,
    ]);
    assert_eq!(
        out,
        "stored kaede-shoji; products mde mdo mda mdi idp sentinel (in effect now: --now)\n"
    );
    assert!(ok(&["tenant", "list", "--state", &st])
        .ends_with("\tactive\tmde mdo mda mdi idp sentinel\t-\n"));

    // disable: at once, idempotent, kept by a put.
    let out = ok(&[
        "tenant",
        "disable",
        "kaede-shoji",
        "--by",
        "sato",
        "--state",
        &st,
    ]);
    assert!(out.starts_with("disabled kaede-shoji at "), "{out}");
    assert!(out.contains("by sato"), "{out}");
    assert!(out.contains("purge possible from "), "{out}");
    let t = rt()
        .block_on(r.store().get_tenant("kaede-shoji"))
        .unwrap()
        .unwrap();
    let at = t.disabled_at().expect("stored as disabled");
    assert!((Utc::now() - at).num_seconds().abs() < 60);
    assert_eq!(t.disabled_by(), Some("sato"));
    let out = ok(&[
        "tenant",
        "disable",
        "kaede-shoji",
        "--by",
        "suzuki",
        "--state",
        &st,
    ]);
    assert!(
        out.starts_with(&format!(
            "kaede-shoji is already disabled since {} by sato; nothing changed",
            jst(at)
        )),
        "{out}"
    );
    let list = ok(&["tenant", "list", "--state", &st]);
    assert!(
        list.contains(&format!("\tdisabled since {} by sato\t", jst(at))),
        "{list}"
    );
    let out = ok(&["tenant", "put", &r.kaede("k.toml", false), "--state", &st]);
    assert!(out.contains("note: kaede-shoji is disabled"), "{out}");
    let t = rt()
        .block_on(r.store().get_tenant("kaede-shoji"))
        .unwrap()
        .unwrap();
    assert_eq!(t.disabled_at(), Some(at), "a put keeps the tenant disabled");

    // enable.
    let out = ok(&["tenant", "enable", "kaede-shoji", "--state", &st]);
    assert!(out.starts_with("enabled kaede-shoji"), "{out}");
    assert!(ok(&["tenant", "list", "--state", &st]).contains("\tactive\t"));
    assert_eq!(
        ok(&["tenant", "enable", "kaede-shoji", "--state", &st]),
        "kaede-shoji is not disabled; nothing changed\n"
    );

    // Refusals: unknown tenant, where the tenants are.
    for cmd in ["show", "disable", "enable", "offboard"] {
        let e = refused(&["tenant", cmd, "nobody", "--state", &st]);
        assert!(
            e.contains("tenant \"nobody\" is not in the state at"),
            "{cmd}: {e}"
        );
    }
    let e = refused(&["tenant", "list"]);
    assert!(
        e.contains("exactly one of --state DIR, --config mss.toml or --table NAME"),
        "{e}"
    );
    let e = refused(&["tenant", "list", "--state", &st, "--table", "t"]);
    assert!(e.contains("exactly one"), "{e}");
    let missing = r.dir.path().join("nothing-here").display().to_string();
    let e = refused(&["tenant", "list", "--state", &missing]);
    assert!(e.contains("no state here"), "{e}");
}

#[test]
fn config_names_the_embedded_state() {
    let r = Rig::new();
    let cfg = r.file(
        "mss.toml",
        "state = \"state\"\nsecrets = \"secrets.toml\"\n[opsramp]\nbase_url = \"https://opsramp.example\"\ntenant_id = \"client_1\"\n",
    );
    let secrets = r.file(
        "secrets.toml",
        "[opsramp]\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    ok(&["tenant", "put", &r.aoba(), "--config", &cfg]);
    // The same store as --state on the configuration's state directory.
    assert!(ok(&["tenant", "list", "--state", &r.st()])
        .starts_with("aoba-bank\t青葉銀行\tactive\tmdi\t-"));
    assert!(
        ok(&["tenant", "disable", "aoba-bank", "--config", &cfg]).starts_with("disabled aoba-bank")
    );
    assert!(ok(&["tenant", "show", "aoba-bank", "--config", &cfg]).contains(": disabled since "));
}

/// Alerts, a decision, an incident, documents and a report file for `t`.
async fn populate(store: &SqliteStore, state: &Path, t: &str) {
    for (i, at) in ["2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]
        .iter()
        .enumerate()
    {
        let a = Alert::from_value(json!({"id": format!("{t}-a{i}"), "lastUpdateDateTime": at,
            "title": "テスト", "serviceSource": "microsoftDefenderForIdentity", "severity": "high"}))
        .unwrap();
        store.put_alert_version(t, Product::Mdi, &a).await.unwrap();
    }
    store
        .put_doc(t, "report", "incident:1", "{\"title\": \"調査報告\"}")
        .await
        .unwrap();
    store
        .advance_cursor(t, Product::Mdi, "2026-11-03T00:00:00Z".parse().unwrap())
        .await
        .unwrap();
    let dir = state.join("reports").join(t).join("2026-11");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.html"), "<html></html>").unwrap();
}

#[test]
fn purge_refuses_until_disabled_and_retained_then_deletes_one_tenant() {
    let r = Rig::new();
    let st = r.st();
    ok(&["tenant", "put", &r.kaede("k.toml", false), "--state", &st]);
    ok(&["tenant", "put", &r.aoba(), "--state", &st]);
    let rt = rt();
    {
        let s = r.store();
        rt.block_on(populate(&s, &r.state(), "kaede-shoji"));
        rt.block_on(populate(&s, &r.state(), "aoba-bank"));
    }
    // `mss tenant purge kaede-shoji --state DIR EXTRA…`, expected to be refused.
    let purge_refused = |extra: &[&str]| -> String {
        let mut a = vec!["tenant", "purge", "kaede-shoji", "--state", st.as_str()];
        a.extend_from_slice(extra);
        refused(&a)
    };

    // Without the confirmation, or with another id.
    let e = purge_refused(&[]);
    assert!(e.contains("--confirm kaede-shoji"), "{e}");
    let e = purge_refused(&["--confirm", "kaede"]);
    assert!(e.contains("repeat its id exactly"), "{e}");
    // Active.
    let e = purge_refused(&["--confirm", "kaede-shoji"]);
    assert!(e.contains("is active: disable it first"), "{e}");
    // Disabled just now: the date it becomes possible.
    ok(&["tenant", "disable", "kaede-shoji", "--state", &st]);
    let at = rt
        .block_on(r.store().get_tenant("kaede-shoji"))
        .unwrap()
        .unwrap()
        .disabled_at()
        .unwrap();
    let e = purge_refused(&["--confirm", "kaede-shoji"]);
    assert!(
        e.contains(&format!(
            "purge is possible from {}",
            jst(at + Duration::days(90))
        )),
        "{e}"
    );
    // The retention period can be made longer, never shorter.
    let e = purge_refused(&["--confirm", "kaede-shoji", "--retention-days", "0"]);
    assert!(e.contains("never shorter"), "{e}");

    // 91 days later (the record aged through the store, as time would).
    {
        let s = r.store();
        let mut t = rt.block_on(s.get_tenant("kaede-shoji")).unwrap().unwrap();
        t.source.lifecycle.as_mut().unwrap().disabled_at = Some(Utc::now() - Duration::days(91));
        rt.block_on(s.put_tenant(&t)).unwrap();
    }
    let e = purge_refused(&["--confirm", "kaede-shoji", "--retention-days", "120"]);
    assert!(e.contains("kept 120 days"), "{e}");
    let keep_before = ok(&["tenant", "show", "aoba-bank", "--state", &st]);
    let out = ok(&[
        "tenant",
        "purge",
        "kaede-shoji",
        "--confirm",
        "kaede-shoji",
        "--state",
        &st,
    ]);
    assert!(
        out.starts_with("purged kaede-shoji from the state at "),
        "{out}"
    );
    for part in ["alert_versions 2", "cursors 1", "docs 1", "tenant 1"] {
        assert!(out.contains(part), "{part}: {out}");
    }
    assert!(out.contains("monthly reports: 1 file(s) removed"), "{out}");

    // Gone…
    let s = r.store();
    assert!(rt.block_on(s.get_tenant("kaede-shoji")).unwrap().is_none());
    assert!(rt
        .block_on(s.list_alert_ids("kaede-shoji"))
        .unwrap()
        .is_empty());
    assert!(!r.state().join("reports/kaede-shoji").exists());
    let e = refused(&["tenant", "show", "kaede-shoji", "--state", &st]);
    assert!(e.contains("is not in"), "{e}");
    let e = refused(&[
        "tenant",
        "purge",
        "kaede-shoji",
        "--confirm",
        "kaede-shoji",
        "--state",
        &st,
    ]);
    assert!(e.contains("is not in"), "{e}");
    // …and the other tenant as it was.
    assert_eq!(
        ok(&["tenant", "show", "aoba-bank", "--state", &st]),
        keep_before
    );
    assert_eq!(
        rt.block_on(s.list_alert_ids("aoba-bank")).unwrap(),
        ["aoba-bank-a0", "aoba-bank-a1"]
    );
    assert_eq!(
        rt.block_on(s.list_docs("aoba-bank", "report"))
            .unwrap()
            .len(),
        1
    );
    assert!(rt
        .block_on(s.get_cursor("aoba-bank", Product::Mdi))
        .unwrap()
        .is_some());
    assert!(r
        .state()
        .join("reports/aoba-bank/2026-11/report.html")
        .exists());
    assert_eq!(
        ok(&["tenant", "list", "--state", &st]).lines().count(),
        1,
        "only aoba-bank is left"
    );
}

#[test]
fn offboard_prints_the_checklist_of_section_6_4() {
    let r = Rig::new();
    let st = r.st();
    ok(&["tenant", "put", &r.kaede("k.toml", false), "--state", &st]);
    let out = ok(&["tenant", "offboard", "kaede-shoji", "--state", &st]);
    for want in [
        "解約に伴う設定解除作業 — 楓商事株式会社（kaede-shoji）",
        "45 日以上前",
        "■ 当社（provider）",
        "■ お客さま（customer）",
        "[ ] OpsRamp アカウントの削除",
        "    Delete the OpsRamp accounts: ",
        "soc-contact@kaede.example",
        "[ ] アラート監視システムの無効化",
        "`mss tenant disable kaede-shoji`",
        // No Sentinel for this tenant: nothing deployed there to remove.
        "[-] 分析ルールの無効化",
        "[-] ブックの削除",
        "[-] Azure Lighthouse の解除",
        "[ ] Azure AD アカウントの削除",
        "[ ] Azure AD アプリの削除",
        "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    // The provider's tasks come before the customer's.
    assert!(out.find("■ 当社").unwrap() < out.find("■ お客さま").unwrap());

    ok(&[
        "tenant",
        "put",
        &r.kaede("k2.toml", true),
        "--now",
        "--state",
        &st,
    ]);
    ok(&[
        "tenant",
        "disable",
        "kaede-shoji",
        "--by",
        "sato",
        "--state",
        &st,
    ]);
    let at = rt()
        .block_on(r.store().get_tenant("kaede-shoji"))
        .unwrap()
        .unwrap()
        .disabled_at()
        .unwrap();
    let out = ok(&["tenant", "offboard", "kaede-shoji", "--state", &st]);
    for want in [
        format!("[✓] アラート監視システムの無効化 — {} に無効化済み（sato）", jst(at)),
        "[ ] 分析ルールの無効化 — Microsoft Sentinel に配置した分析ルール 9 件".into(),
        "password-spray 「MSS: パスワード スプレー攻撃の疑い」".into(),
        "[ ] ブックの削除 — Microsoft Sentinel のブック「MSS セキュリティ監視ダッシュボード（楓商事株式会社）」".into(),
        "[ ] Azure Lighthouse の解除".into(),
        format!("{} 以降に `mss tenant purge kaede-shoji --confirm kaede-shoji`", jst(at + Duration::days(90))),
    ] {
        assert!(out.contains(&want), "{want:?} missing:\n{out}");
    }
    let j: Value = serde_json::from_str(
        ok(&[
            "tenant",
            "offboard",
            "kaede-shoji",
            "--json",
            "--state",
            &st,
        ])
        .trim(),
    )
    .unwrap();
    assert_eq!(j["status"], "disabled");
    assert_eq!(j["provider"].as_array().unwrap().len(), 5);
    assert_eq!(j["customer"].as_array().unwrap().len(), 3);
    assert_eq!(j["provider"][1]["state"], "done");
    assert_eq!(j["provider"][2]["resources"].as_array().unwrap().len(), 9);
    assert_eq!(
        j["purge_from"],
        (at + Duration::days(90)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
}
