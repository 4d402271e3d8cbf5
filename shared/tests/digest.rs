//! Activity digests (R-LOG-ACTIVITY) through the real step, the real Log Analytics and OpsRamp
//! clients, the simulator over HTTPS and the embedded store: one service request per JST day
//! with every rule's rows, reruns that post nothing, consecutive days without overlap, empty
//! periods, partial and failed rules, a workspace the app may not read, throttling, and
//! break-glass UPNs bound as escaped literals.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use mss_sim::{Endpoint, Fault, LogAnalyticsMode, Sim, SimConfig, SimTenant, SimTicket};
use shared::adapters::graph::{AzureAppCredential, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::loganalytics::{LogAnalyticsClient, LogAnalyticsConfig};
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::tenant::Tenant;
use shared::ports::{ManualClock, Store};
use shared::steps::digest::{
    self, ActivityRule, DigestDeps, PeriodAction, StoredDigest, Trigger, EMPTY_PERIOD_JA,
};

const AZ: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const OTHER_AZ: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";
const WS: &str = "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b";
const TENANT: &str = "kaede-shoji";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Two rules of our own, used while `infra/sentinel/activity/` is empty; the repository's
/// pack once it has rules (the tests only use the rules' ids and titles).
const TEST_RULES: [(&str, &str); 2] = [
    (
        "role-changes.kql",
        "// id: test-role-changes\n\
         // title: 管理者ロールの割り当て変更\n\
         // why: 管理者権限の付与・削除は、意図しない権限昇格の兆候である可能性があります。\n\
         // tables: AuditLogs\n\
         AuditLogs\n\
         | where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd\n\
         | where Category == \"RoleManagement\"\n\
         | project TimeGenerated, Actor = tostring(InitiatedBy.user.userPrincipalName),\n\
         \x20   Target = tostring(TargetResources[0].userPrincipalName), Operation = OperationName, Detail = tostring(Result)\n",
    ),
    (
        "break-glass-signin.kql",
        "// id: test-break-glass-signin\n\
         // title: 緊急用アカウントのサインイン\n\
         // why: 緊急用（ブレークグラス）アカウントは通常使われないため、サインインはすべてご確認ください。\n\
         // tables: SigninLogs\n\
         let Apps = dynamic([\"Azure Portal\"]);\n\
         SigninLogs\n\
         | where TimeGenerated >= WindowStart and TimeGenerated < WindowEnd\n\
         | where UserPrincipalName in~ (BreakGlassAccounts)\n\
         | project TimeGenerated, Actor = UserPrincipalName, Target = AppDisplayName, Operation = \"サインイン\",\n\
         \x20   Detail = strcat(IPAddress, \" \", ResultType)\n",
    ),
];

fn rules() -> Vec<ActivityRule> {
    let (pack, errors) = digest::pack();
    assert!(errors.is_empty(), "{errors:?}");
    if pack.len() >= 2 {
        return pack.clone();
    }
    let (rules, errors) = digest::load_rules(&TEST_RULES);
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_server_wait: Duration::from_secs(5),
    }
}

struct Rig {
    sim: Sim,
    dd: DigestDeps,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    rules: Vec<ActivityRule>,
}

fn tenant_config(log_analysis: Value) -> Value {
    json!({
        "id": TENANT, "name": "楓商事株式会社", "azure_tenant_id": AZ,
        "products": ["mdi"], "mdi": {},
        "contacts": {"to": ["soc-contact@kaede.example"], "cc": ["it-admin@kaede.example"]},
        "log_analysis": log_analysis,
    })
}

/// 2026-11-25 07:30 JST: the schedule's run for 2026/11/24.
const FIRST_RUN: &str = "2026-11-24T22:30:00Z";

async fn rig(log_analysis: Value) -> Rig {
    shared::adapters::http::install_crypto_provider();
    let start = at(FIRST_RUN);
    let sim = Sim::start(
        SimConfig {
            tenants: vec![
                SimTenant {
                    azure_tenant_id: AZ.into(),
                    client_id: "app".into(),
                    client_secret: "s".into(),
                    alerts: vec![],
                },
                SimTenant {
                    azure_tenant_id: OTHER_AZ.into(),
                    client_id: "app2".into(),
                    client_secret: "s2".into(),
                    alerts: vec![],
                },
            ],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: "o".into(),
            state_file: None,
            all_visible: false,
            start_clock: start,
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let http = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = http.clone();
    oc.retry = fast();
    let opsramp = Arc::new(
        OpsRampClient::new(
            oc,
            OpsRampCredential {
                client_id: "ops".into(),
                client_secret: Secret::new("o".to_string()),
            },
        )
        .unwrap(),
    );
    let logs = LogAnalyticsClient::new(
        LogAnalyticsConfig {
            base: sim.loganalytics_base(),
            authority_host: sim.authority_host(),
            http,
            retry: fast(),
            query_timeout: Duration::from_secs(10),
            ..Default::default()
        },
        vec![AzureAppCredential {
            tenant: TENANT.into(),
            azure_tenant_id: AZ.into(),
            client_id: "app".into(),
            client_secret: Secret::new("s".to_string()),
        }],
    )
    .unwrap();
    let clock = ManualClock::new(start);
    let store = Arc::new(SqliteStore::in_memory().unwrap().with_clock(clock.clone()));
    let t = Tenant::from_json_value(&tenant_config(log_analysis)).unwrap();
    store.put_tenant(&t).await.unwrap();
    let rules = rules();
    let mut dd = DigestDeps::new(store.clone(), clock.clone(), Arc::new(logs), opsramp);
    dd.rules = rules.clone();
    dd.rule_errors = vec![];
    Rig {
        sim,
        dd,
        store,
        clock,
        rules,
    }
}

fn default_la() -> Value {
    json!({"workspace_id": WS, "break_glass_accounts": ["bg-admin01@kaede.onmicrosoft.com"]})
}

impl Rig {
    fn set_now(&self, s: &str) {
        self.clock.set(at(s));
        self.sim.set_clock(at(s));
    }

    fn digests(&self) -> Vec<SimTicket> {
        self.sim
            .service_requests()
            .into_iter()
            .filter(|t| {
                t.ext_ticket_id
                    .as_deref()
                    .is_some_and(|e| e.contains("-digest-"))
            })
            .collect()
    }

    async fn cursor(&self) -> Option<DateTime<Utc>> {
        digest::cursor(self.store.as_ref(), TENANT).await.unwrap()
    }

    fn row(&self, time: Option<&str>, actor: &str, operation: &str) -> Value {
        let mut r = json!({"Actor": actor, "Target": format!("target-of-{actor}"), "Operation": operation,
            "Detail": "Result: success"});
        if let Some(t) = time {
            r["TimeGenerated"] = json!(t);
        }
        r
    }

    fn add(&self, rule: usize, rows: Vec<Value>) {
        self.sim.add_log_rows(WS, &self.rules[rule].id, rows);
    }
}

#[tokio::test]
async fn a_day_is_one_request_in_jst_reruns_post_nothing_and_days_do_not_overlap() {
    let r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    r.add(
        0,
        vec![
            // 2026/11/23 23:59:59 JST: the day before.
            r.row(
                Some("2026-11-23T14:59:59Z"),
                "before@kaede.example",
                "Add member to role",
            ),
            // 2026/11/24 09:12:33 JST.
            r.row(
                Some("2026-11-24T00:12:33.1234567Z"),
                "admin@kaede.example",
                "Add member to role",
            ),
            // Exactly 2026/11/25 00:00:00 JST: the next day's, never this one's.
            r.row(
                Some("2026-11-24T15:00:00Z"),
                "boundary@kaede.example",
                "Remove member from role",
            ),
        ],
    );
    r.add(
        1,
        vec![r.row(
            Some("2026-11-24T10:05:00Z"),
            "bg-admin01@kaede.onmicrosoft.com",
            "サインイン",
        )],
    );

    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods.len(), 1, "{o:?}");
    assert_eq!(o.periods[0].action, PeriodAction::Posted);
    assert_eq!(o.periods[0].rows, 2);
    let srs = r.digests();
    assert_eq!(srs.len(), 1);
    let sr = &srs[0];
    assert_eq!(
        sr.subject,
        "【アクティビティ通知】楓商事株式会社 2026/11/24 分"
    );
    assert_eq!(
        sr.ext_ticket_id.as_deref(),
        Some("mss-kaede-shoji-digest-20261124")
    );
    assert_eq!(sr.to_email.as_deref(), Some("soc-contact@kaede.example"));
    assert_eq!(sr.cc.as_deref(), Some("it-admin@kaede.example"));
    let d = &sr.description;
    assert!(
        d.contains("対象期間: 2026/11/24 00:00 〜 2026/11/25 00:00（日本時間）"),
        "{d}"
    );
    assert!(
        d.contains("2026/11/24 09:12:33　実行者: admin@kaede.example"),
        "{d}"
    );
    assert!(
        d.contains("2026/11/24 19:05:00　実行者: bg-admin01@kaede.onmicrosoft.com"),
        "{d}"
    );
    for rule in &r.rules {
        assert!(d.contains(&rule.title), "{} missing:\n{d}", rule.id);
        assert!(d.contains(&rule.why), "{} why missing:\n{d}", rule.id);
    }
    assert!(!d.contains("before@") && !d.contains("boundary@"), "{d}");
    assert!(!d.contains(EMPTY_PERIOD_JA), "{d}");
    assert_eq!(r.cursor().await, Some(at("2026-11-24T15:00:00Z")));
    let calls = r.sim.loganalytics_queries();
    assert_eq!(calls.len(), r.rules.len());
    for (c, rule) in calls.iter().zip(&r.rules) {
        assert_eq!(c.status, 200, "{c:?}");
        assert_eq!(c.rule_id.as_deref(), Some(rule.id.as_str()));
        assert_eq!(
            c.window,
            Some((at("2026-11-23T15:00:00Z"), at("2026-11-24T15:00:00Z")))
        );
        // A rule reading before the period (`// lookback:`) asks for that much more data.
        let from =
            at("2026-11-23T15:00:00Z") - chrono::Duration::seconds(rule.lookback_secs.unwrap_or(0));
        assert_eq!(
            c.timespan.as_deref(),
            Some(format!("{}/2026-11-24T15:00:00Z", from.format("%Y-%m-%dT%H:%M:%SZ")).as_str())
        );
    }
    let stored = digest::list_digests(r.store.as_ref(), TENANT)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].posted);
    assert_eq!(stored[0].service_request.as_deref(), Some(sr.id.as_str()));
    assert_eq!(stored[0].total_rows, 2);

    // Reruns: by schedule, by hand, and of that very day: nothing posted, no query run.
    for t in [
        Trigger::Schedule,
        Trigger::Manual,
        Trigger::Since(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
    ] {
        let o = digest::run(&r.dd, TENANT, t).await.unwrap();
        assert!(
            o.periods
                .iter()
                .all(|p| p.action == PeriodAction::AlreadyPosted),
            "{t:?}: {o:?}"
        );
    }
    // A crash after the create and before the store learnt of it: found by extTicketId.
    let mut s: StoredDigest = stored[0].clone();
    s.posted = false;
    s.service_request = None;
    r.store
        .put_doc(
            TENANT,
            "digest",
            "period-20261124",
            &serde_json::to_string(&s).unwrap(),
        )
        .await
        .unwrap();
    let o = digest::run(
        &r.dd,
        TENANT,
        Trigger::Since(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(o.periods[0].action, PeriodAction::AlreadyPosted);
    assert_eq!(
        o.periods[0].service_request.as_deref(),
        Some(sr.id.as_str())
    );
    assert_eq!(r.digests().len(), 1);
    assert_eq!(
        r.sim.loganalytics_queries().len(),
        r.rules.len(),
        "reruns run no query"
    );

    // The next day: a new request, the boundary row in it, the cursor moved.
    r.set_now("2026-11-25T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods.len(), 1);
    let srs = r.digests();
    assert_eq!(srs.len(), 2);
    assert_eq!(
        srs[1].subject,
        "【アクティビティ通知】楓商事株式会社 2026/11/25 分"
    );
    assert_eq!(
        srs[1].ext_ticket_id.as_deref(),
        Some("mss-kaede-shoji-digest-20261125")
    );
    let d2 = &srs[1].description;
    assert!(
        d2.contains("2026/11/25 00:00:00　実行者: boundary@kaede.example"),
        "{d2}"
    );
    assert!(
        !d2.contains("admin@kaede.example　") && !d2.contains("before@"),
        "{d2}"
    );
    assert_eq!(r.cursor().await, Some(at("2026-11-25T15:00:00Z")));
    let last: Vec<_> = r
        .sim
        .loganalytics_queries()
        .into_iter()
        .skip(r.rules.len())
        .collect();
    assert!(last
        .iter()
        .all(|c| c.window == Some((at("2026-11-24T15:00:00Z"), at("2026-11-25T15:00:00Z")))));

    // Two missed runs are caught up the third day, one request per day, oldest first.
    r.set_now("2026-11-28T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    let labels: Vec<&str> = o.periods.iter().map(|p| p.period.as_str()).collect();
    assert_eq!(labels, ["2026/11/26", "2026/11/27", "2026/11/28"]);
    assert_eq!(r.digests().len(), 5);
    assert_eq!(r.cursor().await, Some(at("2026-11-28T15:00:00Z")));
    r.sim.shutdown().await;
}

#[tokio::test]
async fn an_empty_period_says_so() {
    let r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    // Rows outside the day only.
    r.add(
        0,
        vec![r.row(Some("2026-11-22T01:00:00Z"), "old@kaede.example", "x")],
    );
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods[0].rows, 0);
    let srs = r.digests();
    assert_eq!(srs.len(), 1);
    assert!(
        srs[0].description.contains(EMPTY_PERIOD_JA),
        "{}",
        srs[0].description
    );
    assert!(srs[0].description.contains("該当なし"));
    // 204 (no data) is an empty period too.
    r.sim
        .set_loganalytics_mode("*", LogAnalyticsMode::NoContent);
    r.set_now("2026-11-25T22:30:00Z");
    digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    let srs = r.digests();
    assert_eq!(srs.len(), 2);
    assert!(srs[1].description.contains(EMPTY_PERIOD_JA));
    r.sim.shutdown().await;
}

#[tokio::test]
async fn partial_and_failed_rules_are_listed_and_the_others_still_reported() {
    let r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    // Canned rows: placed inside whatever day is asked.
    r.add(
        0,
        vec![r.row(None, "admin@kaede.example", "Add member to role")],
    );
    r.add(
        1,
        vec![r.row(None, "bg-admin01@kaede.onmicrosoft.com", "サインイン")],
    );

    r.sim
        .set_loganalytics_mode(&r.rules[0].id, LogAnalyticsMode::PartialError);
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(
        (o.periods[0].rules_partial, o.periods[0].rules_failed),
        (1, 0)
    );
    let d = &r.digests()[0].description;
    assert!(d.contains("一部の結果のみ取得できました"), "{d}");
    assert!(d.contains("実行者: admin@kaede.example"), "{d}");
    assert!(
        d.contains("実行者: bg-admin01@kaede.onmicrosoft.com"),
        "{d}"
    );

    // The next day the first rule times out (504): listed, the other still reported.
    r.sim
        .set_loganalytics_mode(&r.rules[0].id, LogAnalyticsMode::Timeout);
    r.set_now("2026-11-25T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods[0].rules_failed, 1);
    let d = &r.digests()[1].description;
    assert!(d.contains("今回確認できなかったルール"), "{d}");
    assert!(
        d.contains(&format!(
            "{}: クエリが制限時間内に完了しませんでした",
            r.rules[0].title
        )),
        "{d}"
    );
    assert!(!d.contains("実行者: admin@kaede.example"), "{d}");
    assert!(
        d.contains("実行者: bg-admin01@kaede.onmicrosoft.com"),
        "{d}"
    );
    let stored = digest::list_digests(r.store.as_ref(), TENANT)
        .await
        .unwrap();
    assert!(
        stored[1].rules[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("504"),
        "{:?}",
        stored[1].rules[0]
    );

    // A 504 from the gateway (a fault) is the same; a 5xx is retried and recovers.
    r.sim
        .set_loganalytics_mode(&r.rules[0].id, LogAnalyticsMode::Normal);
    r.sim.set_fault(
        Endpoint::LogAnalytics,
        Fault::ServerError {
            times: 1,
            status: 503,
        },
    );
    r.set_now("2026-11-26T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods[0].rules_failed, 0, "{o:?}");

    // Every rule failing is no digest: the run fails and the cursor stays.
    r.sim.set_loganalytics_mode("*", LogAnalyticsMode::Timeout);
    r.sim
        .set_loganalytics_mode(&r.rules[0].id, LogAnalyticsMode::Timeout);
    r.set_now("2026-11-27T22:30:00Z");
    let before = r.cursor().await;
    let e = digest::run(&r.dd, TENANT, Trigger::Schedule)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("every activity rule failed"),
        "{e:#}"
    );
    assert_eq!(r.cursor().await, before);
    assert_eq!(r.digests().len(), 3);
    r.sim.shutdown().await;
}

#[tokio::test]
async fn a_rule_the_service_refuses_is_named_and_listed() {
    let mut r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    // Rebinding WindowStart badly: the service answers 400 SyntaxError. (Built by hand: the
    // pack's parser would refuse such a file before it could ever be sent.)
    r.dd.rules.push(digest::ActivityRule {
        id: "zz-broken".into(),
        title: "壊れたルール".into(),
        why: "テスト用のルールです。".into(),
        tables: vec!["AuditLogs".into()],
        lookback_secs: None,
        body: "let WindowStart = oops;\nAuditLogs\n| where TimeGenerated >= WindowStart".into(),
    });
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods[0].rules_failed, 1, "{o:?}");
    let stored = digest::list_digests(r.store.as_ref(), TENANT)
        .await
        .unwrap();
    let bad = stored[0]
        .rules
        .iter()
        .find(|x| x.id == "zz-broken")
        .unwrap();
    let reason = bad.reason.as_deref().unwrap();
    assert!(
        reason.contains("rule zz-broken") && reason.contains("SyntaxError"),
        "{reason}"
    );
    let d = &r.digests()[0].description;
    assert!(
        d.contains("壊れたルール: ルールのクエリが受け付けられませんでした"),
        "{d}"
    );
    r.sim.shutdown().await;
}

#[tokio::test]
async fn a_workspace_the_app_cannot_read_fails_the_run_and_keeps_the_cursor() {
    let r = rig(default_la()).await;
    // The workspace belongs to another customer's tenant: 403 InsufficientAccessError.
    r.sim.add_workspace(OTHER_AZ, WS);
    let e = digest::run(&r.dd, TENANT, Trigger::Schedule)
        .await
        .unwrap_err();
    let m = format!("{e:#}");
    assert!(
        m.contains("InsufficientAccessError") || m.contains("insufficient access"),
        "{m}"
    );
    assert!(m.contains("Data.Read") && m.contains("Reader"), "{m}");
    assert!(r.digests().is_empty());
    assert_eq!(r.cursor().await, None);
    // Stopped at the first query: the others were not tried.
    assert_eq!(r.sim.loganalytics_queries().len(), 1);
    assert_eq!(r.sim.loganalytics_queries()[0].status, 403);

    // Access granted: the same day goes out.
    r.sim.add_workspace(AZ, WS);
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods[0].period, "2026/11/24");
    assert_eq!(r.digests().len(), 1);
    r.sim.shutdown().await;
}

#[tokio::test]
async fn throttling_is_waited_out_within_bounds() {
    let r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    r.add(
        0,
        vec![r.row(None, "admin@kaede.example", "Add member to role")],
    );
    r.sim.set_fault(
        Endpoint::LogAnalytics,
        Fault::TooManyRequests {
            times: 2,
            retry_after: 0.2,
        },
    );
    let started = std::time::Instant::now();
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "Retry-After honoured"
    );
    assert_eq!(o.periods[0].rules_failed, 0);
    assert_eq!(
        r.sim.stats().loganalytics_requests as usize,
        r.rules.len() + 2
    );

    // Throttled beyond the bound: that rule is listed, the next one still runs.
    r.sim.set_fault(
        Endpoint::LogAnalytics,
        Fault::TooManyRequests {
            times: 4,
            retry_after: 0.01,
        },
    );
    r.set_now("2026-11-25T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods[0].rules_failed, 1, "{o:?}");
    let d = &r.digests()[1].description;
    assert!(d.contains("利用上限"), "{d}");
    r.sim.shutdown().await;
}

#[tokio::test]
async fn break_glass_upns_are_bound_as_escaped_literals() {
    // Hostile on purpose: quotes and a backslash must stay inside their literals.
    let accounts = [
        "bg\"admin'01@kaede.example",
        "bg-02\\x@kaede.onmicrosoft.com",
    ];
    let r = rig(json!({"workspace_id": WS, "break_glass_accounts": accounts})).await;
    r.sim.add_workspace(AZ, WS);
    r.add(1, vec![r.row(None, accounts[0], "サインイン")]);
    digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    let calls = r.sim.loganalytics_queries();
    assert_eq!(calls.len(), r.rules.len());
    for c in &calls {
        assert_eq!(c.status, 200, "the simulator lexed every binding: {c:?}");
        assert_eq!(
            c.break_glass.as_deref(),
            Some(&accounts.map(str::to_string)[..])
        );
        assert!(
            c.query.contains(r#""bg\"admin'01@kaede.example""#),
            "{}",
            c.query
        );
        assert!(c.query.starts_with(&format!(
            "// mss-query: {}\n",
            c.rule_id.as_deref().unwrap()
        )));
    }
    // Shown as text, as it came.
    assert!(r.digests()[0]
        .description
        .contains("実行者: bg\"admin'01@kaede.example"));
    r.sim.shutdown().await;
}

#[tokio::test]
async fn weekly_digests_cover_monday_to_sunday_and_disabled_rules_do_not_run() {
    let disabled = rules()[0].id.clone();
    let r =
        rig(json!({"workspace_id": WS, "digest": "weekly", "disabled_rules": [disabled]})).await;
    r.sim.add_workspace(AZ, WS);
    // Wednesday: a weekly tenant's first digest waits for a Monday.
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert!(o.periods.is_empty() && o.note.is_some(), "{o:?}");
    // Monday 2026-11-30 07:30 JST: the week 11/23–11/29.
    r.set_now("2026-11-29T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(o.periods.len(), 1);
    let sr = &r.digests()[0];
    assert_eq!(
        sr.subject,
        "【アクティビティ通知】楓商事株式会社 2026/11/23〜2026/11/29 分"
    );
    assert_eq!(
        sr.ext_ticket_id.as_deref(),
        Some("mss-kaede-shoji-digest-20261123")
    );
    assert!(sr
        .description
        .contains("対象期間: 2026/11/23 00:00 〜 2026/11/30 00:00"));
    assert!(!sr.description.contains(&r.rules[0].title));
    let calls = r.sim.loganalytics_queries();
    assert_eq!(calls.len(), r.rules.len() - 1);
    assert!(calls
        .iter()
        .all(|c| c.rule_id.as_deref() != Some(disabled.as_str())));
    // Tuesday: nothing due.
    r.set_now("2026-11-30T22:30:00Z");
    let o = digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert!(o.periods.is_empty());
    assert_eq!(r.digests().len(), 1);
    r.sim.shutdown().await;
}

#[tokio::test]
async fn the_inquiry_tracker_leaves_digests_alone() {
    use shared::ports::Inquiries as _;
    let r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    digest::run(&r.dd, TENANT, Trigger::Schedule).await.unwrap();
    assert_eq!(r.digests().len(), 1);
    let open = r.dd_opsramp().open_inquiries().await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    r.sim.shutdown().await;
}

impl Rig {
    fn dd_opsramp(&self) -> OpsRampClient {
        let mut oc = OpsRampConfig::new(&self.sim.opsramp_base(), "client_1234");
        oc.http = HttpSettings {
            extra_ca_pem: Some(self.sim.ca_pem()),
            ..Default::default()
        };
        OpsRampClient::new(
            oc,
            OpsRampCredential {
                client_id: "ops".into(),
                client_secret: Secret::new("o".to_string()),
            },
        )
        .unwrap()
    }
}

/// The Lambda handler (built only with the `aws` feature, as the functions build it): the
/// schedule runs every tenant with `[log_analysis]` and lists the failed ones after the
/// others ran; the manual payloads run one.
#[cfg(feature = "aws")]
#[tokio::test]
async fn the_lambda_handler_runs_every_tenant_and_one_by_hand() {
    use shared::lambda::digest_handler;
    let r = rig(default_la()).await;
    r.sim.add_workspace(AZ, WS);
    // A tenant whose app credential is missing: its run fails, the others' do not.
    let other = Tenant::from_json_value(&json!({
        "id": "aoba-ginko", "name": "株式会社青葉銀行", "azure_tenant_id": OTHER_AZ,
        "products": ["mdi"], "mdi": {},
        "log_analysis": {"workspace_id": "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b"}}))
    .unwrap();
    r.store.put_tenant(&other).await.unwrap();
    // And one without [log_analysis]: not run at all.
    let none = Tenant::from_json_value(&json!({
        "id": "sakura-unyu", "name": "さくら運輸株式会社", "azure_tenant_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
        "products": ["mdi"], "mdi": {}}))
    .unwrap();
    r.store.put_tenant(&none).await.unwrap();
    let Rig { sim, dd, .. } = r;
    let dd = Arc::new(dd);

    let e = digest_handler(dd.clone(), json!({"source": "mss.schedule"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1 activity digest(s) failed (1 tenant(s) done, 1 digest(s)"),
        "{e}"
    );
    assert!(
        e.contains("aoba-ginko") && !e.contains("sakura-unyu"),
        "{e}"
    );
    assert_eq!(sim.service_requests().len(), 1);

    let out = digest_handler(dd.clone(), json!({"tenant": TENANT, "since": "2026-11-24"}))
        .await
        .unwrap();
    assert_eq!(out["periods"][0]["action"], "already_posted", "{out}");
    let out = digest_handler(dd.clone(), json!({"tenant": TENANT}))
        .await
        .unwrap();
    assert_eq!(out["periods"], json!([]), "{out}");
    assert!(
        out["note"].as_str().unwrap().contains("nothing due"),
        "{out}"
    );
    for bad in [
        json!({"tenant": TENANT, "since": "24/11/2026"}),
        json!({"tenant": TENANT, "sinse": "2026-11-24"}),
        json!({"tenant": "sakura-unyu"}),
        json!({"tenant": TENANT, "since": "2026-11-25"}),
    ] {
        assert!(
            digest_handler(dd.clone(), bad.clone()).await.is_err(),
            "{bad}"
        );
    }
    assert_eq!(sim.service_requests().len(), 1);
    sim.shutdown().await;
}
