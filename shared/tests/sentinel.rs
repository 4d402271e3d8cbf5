//! Sentinel content rendered per tenant: snapshot tests of every file `mss sentinel render`
//! writes (under tests/data/sentinel/<case>/), and the structural template checks on
//! broken templates. `MSS_UPDATE_SNAPSHOTS=1 cargo test -p shared --test sentinel` rewrites
//! the snapshots after an intended change; review the diff before committing it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use shared::domain::tenant::Tenant;
use shared::sentinel::{self, arm, SentinelOptions};

const KAEDE_TOML: &str = include_str!("../../infra/tenants/kaede-shoji.example.toml");
const WORKSPACE: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-kaede-sentinel/providers/Microsoft.OperationalInsights/workspaces/kaede-sentinel";

fn kaede() -> Tenant {
    Tenant::from_toml(KAEDE_TOML).unwrap()
}

/// A customer with MDE, MDI and IdP only: the MDO rules must be rendered disabled.
fn aoba() -> Tenant {
    Tenant::from_toml(
        r#"
id = "aoba-bank"
name = "青葉銀行"
azure_tenant_id = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
products = ["mde", "mdi", "idp"]

[contacts]
to = ["soc@aoba.example"]

[mde]
device_groups = ["*"]
incident_min_severity = "high"

[mdi]

[idp]
incident_min_risk = "medium"
"#,
    )
    .unwrap()
}

fn cases() -> Vec<(&'static str, Tenant, SentinelOptions)> {
    vec![
        (
            "kaede-shoji",
            kaede(),
            SentinelOptions {
                workspace_resource_id: WORKSPACE.into(),
                disabled_rules: vec!["legacy-auth-success".into()],
                break_glass_accounts: vec![
                    "breakglass1@kaede.example".into(),
                    "breakglass2@kaede.example".into(),
                ],
            },
        ),
        ("aoba-bank", aoba(), SentinelOptions::default()),
    ]
}

fn snapshot_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sentinel")
        .join(case)
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel);
            }
        }
    }
    out
}

#[test]
fn rendered_files_match_the_snapshots() {
    let update = std::env::var("MSS_UPDATE_SNAPSHOTS").as_deref() == Ok("1");
    let mut problems = Vec::new();
    for (case, tenant, opts) in cases() {
        let files = sentinel::render(&tenant, &opts).unwrap();
        assert_eq!(
            files,
            sentinel::render(&tenant, &opts).unwrap(),
            "{case}: deterministic"
        );
        let dir = snapshot_dir(case);
        let rendered: BTreeSet<String> = files.iter().map(|(f, _)| f.clone()).collect();
        for stale in files_under(&dir).difference(&rendered) {
            if update {
                std::fs::remove_file(dir.join(stale)).unwrap();
            } else {
                problems.push(format!("{case}/{stale}: snapshot no longer rendered"));
            }
        }
        for (rel, text) in &files {
            let path = dir.join(rel);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, text).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(want) if &want == text => {}
                Ok(want) => {
                    let line = want
                        .lines()
                        .zip(text.lines())
                        .position(|(a, b)| a != b)
                        .map_or(want.lines().count().min(text.lines().count()), |i| i)
                        + 1;
                    problems.push(format!(
                        "{case}/{rel}: differs from the snapshot from line {line}"
                    ));
                }
                Err(_) => problems.push(format!("{case}/{rel}: no snapshot")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(intended? MSS_UPDATE_SNAPSHOTS=1 cargo test -p shared --test sentinel, then review the diff)",
        problems.join("\n")
    );
}

#[test]
fn snapshots_are_valid_templates_with_the_expected_shape() {
    for (case, tenant, opts) in cases() {
        let files = sentinel::render(&tenant, &opts).unwrap();
        let get = |name: &str| -> Value {
            serde_json::from_str(&files.iter().find(|(f, _)| f == name).unwrap().1).unwrap()
        };
        let rules = get("analytics-rules.json");
        arm::validate_template(&rules).unwrap();
        assert_eq!(rules["$schema"], arm::DEPLOYMENT_SCHEMA);
        assert_eq!(rules["parameters"]["workspace"]["type"], "string");
        for r in rules["resources"].as_array().unwrap() {
            let p = &r["properties"];
            assert_eq!(r["apiVersion"], arm::ALERT_RULES_API);
            assert_eq!(r["kind"], "Scheduled");
            assert_eq!(p["triggerOperator"], "GreaterThan");
            assert_eq!(p["triggerThreshold"], 0);
            assert_eq!(p["suppressionEnabled"], false);
            assert_eq!(p["incidentConfiguration"]["createIncident"], true);
            assert!(p["displayName"].as_str().unwrap().starts_with("MSS: "));
        }
        let enabled = |id: &str| {
            rules["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| {
                    r["properties"]["query"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("// mss-rule: {id} "))
                })
                .unwrap()["properties"]["enabled"]
                .as_bool()
                .unwrap()
        };
        let wb = get("workbook.json");
        arm::validate_template(&wb).unwrap();
        let props = &wb["resources"][0]["properties"];
        assert_eq!(wb["resources"][0]["kind"], "shared");
        assert_eq!(wb["resources"][0]["apiVersion"], arm::WORKBOOKS_API);
        match case {
            "kaede-shoji" => {
                assert!(!enabled("legacy-auth-success"));
                assert!(enabled("malicious-url-clicked"));
                assert_eq!(props["sourceId"], WORKSPACE);
            }
            _ => {
                assert!(!enabled("malicious-url-clicked"), "aoba has no MDO");
                assert!(enabled("legacy-auth-success"));
                assert_eq!(props["sourceId"], "[parameters('workspaceResourceId')]");
                assert_eq!(
                    wb["parameters"]["workspaceResourceId"]["defaultValue"],
                    "[resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspace'))]"
                );
                let data: Value =
                    serde_json::from_str(wb["variables"]["workbookData"].as_str().unwrap())
                        .unwrap();
                assert_eq!(data["fallbackResourceIds"][0], arm::WORKSPACE_PLACEHOLDER);
            }
        }
        // The workbook GUID depends on the tenant, not on the options.
        let other = sentinel::render(&tenant, &SentinelOptions::default()).unwrap();
        let other: Value = serde_json::from_str(&other[1].1).unwrap();
        assert_eq!(other["resources"][0]["name"], wb["resources"][0]["name"]);
    }
    let a: Value = serde_json::from_str(
        &sentinel::render(&kaede(), &SentinelOptions::default()).unwrap()[1].1,
    )
    .unwrap();
    let b: Value =
        serde_json::from_str(&sentinel::render(&aoba(), &SentinelOptions::default()).unwrap()[1].1)
            .unwrap();
    assert_ne!(
        a["resources"][0]["name"], b["resources"][0]["name"],
        "one workbook per tenant"
    );
}

/// Each mutation must make validate_template fail with the given words.
#[test]
fn structural_checks_catch_broken_templates() {
    let files = sentinel::render(&kaede(), &SentinelOptions::default()).unwrap();
    let rules: Value = serde_json::from_str(&files[0].1).unwrap();
    let wb: Value = serde_json::from_str(&files[1].1).unwrap();
    type Mutation = fn(&mut Value);
    let rule_cases: [(Mutation, &str); 13] = [
        (
            |t| t["$schema"] = json!("https://example.com/x#"),
            "$schema",
        ),
        (|t| t["contentVersion"] = json!("1.0"), "contentVersion"),
        (
            |t| t["resources"][0]["apiVersion"] = json!("latest"),
            "apiVersion",
        ),
        (|t| t["resources"][0]["kind"] = json!("NRT"), "Scheduled"),
        (
            |t| t["resources"][0]["properties"]["tactics"] = json!(["Credential Access"]),
            "tactic",
        ),
        (
            |t| t["resources"][0]["properties"]["queryPeriod"] = json!("PT5M"),
            "queryPeriod",
        ),
        (
            |t| t["resources"][0]["properties"]["queryFrequency"] = json!("1h"),
            "queryFrequency",
        ),
        (
            |t| t["resources"][0]["properties"]["queryFrequency"] = json!("P15D"),
            "outside PT5M..P14D",
        ),
        (
            |t| t["resources"][0]["properties"]["severity"] = json!("Critical"),
            "severity",
        ),
        (
            |t| {
                t["resources"][0]["properties"]["entityMappings"][0]["fieldMappings"][0]
                    ["columnName"] = json!("Nope")
            },
            "entity column Nope",
        ),
        (
            |t| {
                t["resources"][0]["properties"]["incidentConfiguration"] =
                    json!({"createIncident": false})
            },
            "createIncident",
        ),
        (
            |t| {
                t["resources"][0]["name"] =
                    json!("[concat(parameters('ws'), '/Microsoft.SecurityInsights/', 'x')]")
            },
            "does not declare",
        ),
        (
            |t| t["resources"][1]["name"] = t["resources"][0]["name"].clone(),
            "used twice",
        ),
    ];
    for (mutate, want) in rule_cases {
        let mut t = rules.clone();
        mutate(&mut t);
        let e = format!("{:#}", arm::validate_template(&t).unwrap_err());
        assert!(e.contains(want), "{e}\n  !~ {want}");
    }
    let wb_cases: [(Mutation, &str); 6] = [
        (|t| t["resources"][0]["kind"] = json!("user"), "shared"),
        (|t| t["resources"][0]["name"] = json!("dashboard"), "GUID"),
        (
            |t| t["resources"][0]["properties"]["category"] = json!("workbook"),
            "sentinel",
        ),
        (
            |t| t["variables"]["workbookData"] = json!("{not json"),
            "not JSON",
        ),
        (
            |t| {
                t["variables"]["workbookData"] =
                    json!("{\"version\":\"Notebook/1.0\",\"items\":[]}")
            },
            "items",
        ),
        (
            |t| t["resources"][0]["properties"]["sourceId"] = json!("[parameters('workspaceId')]"),
            "does not declare",
        ),
    ];
    for (mutate, want) in wb_cases {
        let mut t = wb.clone();
        mutate(&mut t);
        let e = format!("{:#}", arm::validate_template(&t).unwrap_err());
        assert!(e.contains(want), "{e}\n  !~ {want}");
    }
}
