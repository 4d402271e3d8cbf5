//! Investigation reports through the real step, the real Graph hunting / users and OpsRamp
//! clients, the simulator over HTTPS and the embedded store: one report per product, hostile
//! evidence values reaching KQL only as literals, budget and quota exhaustion, a 404 user,
//! and reruns that update instead of duplicating.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use mss_sim::{Endpoint, Fault, Sim, SimConfig, SimTenant};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::{HttpSettings, RetryPolicy};
use shared::adapters::hunting::{HuntingClient, HuntingConfig};
use shared::adapters::identity::{IdentityClient, IdentityConfig};
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::alert::{Alert, Product};
use shared::domain::investigation::HuntOutcome;
use shared::domain::kql::parse_string_literal;
use shared::domain::tenant::Tenant;
use shared::messages::AlertRef;
use shared::ports::{ManualClock, Store};
use shared::steps::investigate::{self, InvestigateAction, InvestigateDeps, StoredReport};
use shared::steps::Deps;

const AZ: &str = "7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Rig {
    sim: Sim,
    deps: Deps,
    store: Arc<SqliteStore>,
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_server_wait: Duration::from_secs(5),
    }
}

async fn rig(budget: Option<investigate::HuntBudget>) -> Rig {
    shared::adapters::http::install_crypto_provider();
    let start = at("2026-11-20T01:00:00Z");
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: "s".into(),
                alerts: vec![],
            }],
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
    sim.add_users(
        AZ,
        vec![json!({"id": "u-taro", "displayName": "山田 太郎", "mail": "taro.yamada@kaede.example.jp",
                    "userPrincipalName": "taro.yamada@kaede.example.jp"})],
    );
    let http = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let cred = || {
        vec![AzureAppCredential {
            tenant: TENANT.into(),
            azure_tenant_id: AZ.into(),
            client_id: "app".into(),
            client_secret: Secret::new("s".to_string()),
        }]
    };
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = http.clone();
    let tickets = Arc::new(
        OpsRampClient::new(
            oc,
            OpsRampCredential {
                client_id: "ops".into(),
                client_secret: Secret::new("o".to_string()),
            },
        )
        .unwrap(),
    );
    let clock = ManualClock::new(start);
    let store = Arc::new(SqliteStore::in_memory().unwrap().with_clock(clock.clone()));
    let hunting = HuntingClient::new(
        HuntingConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http.clone(),
            retry: fast(),
            ..Default::default()
        },
        cred(),
    )
    .unwrap();
    let users = IdentityClient::new(
        IdentityConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: http.clone(),
            retry: fast(),
            ..Default::default()
        },
        cred(),
    )
    .unwrap();
    let mut inv = InvestigateDeps::new(Arc::new(hunting), Arc::new(users));
    if let Some(b) = budget {
        inv.budget = b;
    }
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http,
            ..Default::default()
        },
        cred(),
    )
    .unwrap();
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets,
        clock,
        settings: Default::default(),
        respond: None,
        investigate: Some(Arc::new(inv)),
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(
        &json!({"id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde", "mdo", "idp"],
        "mde": {"device_groups": ["*"], "incident_min_severity": "low"},
        "mdo": {"policies": [{"name": "Phish delivered then clicked", "category": "threat_management", "level": "incident"}]}, "idp": {"incident_min_risk": "high"}}),
    )
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    Rig { sim, deps, store }
}

fn mde_alert(id: &str, device_id: &str, updated: &str) -> Value {
    json!({"id": id, "lastUpdateDateTime": updated, "createdDateTime": "2026-11-20T00:50:00Z",
        "firstActivityDateTime": "2026-11-20T00:45:00Z", "serviceSource": "microsoftDefenderForEndpoint",
        "severity": "high", "title": "ランサムウェアの活動を検出", "category": "Ransomware", "tenantId": AZ,
        "incidentId": "501", "status": "new",
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": device_id, "deviceDnsName": "tky-pc-0123"},
            {"@odata.type": "#microsoft.graph.security.userEvidence",
             "userAccount": {"azureAdUserId": "u-taro", "userPrincipalName": "taro.yamada@kaede.example.jp", "displayName": "山田 太郎"}},
            {"@odata.type": "#microsoft.graph.security.fileEvidence", "fileDetails": {"sha256": "AB12", "fileName": "evil.exe"}}]})
}

impl Rig {
    /// Stores the alert version, tickets it (which queues the investigation), returns its ref.
    async fn ticketed(&self, product: Product, v: Value) -> AlertRef {
        let a = Alert::from_value(v).unwrap();
        self.store
            .put_alert_version(TENANT, product, &a)
            .await
            .unwrap();
        let msg = AlertRef::new(TENANT, &a.id, a.last_update);
        shared::steps::ticket::run(&self.deps, &msg).await.unwrap();
        msg
    }

    /// Stores and classifies an alert version (no ticket): what related detections read.
    async fn classified(&self, product: Product, a: &Alert) {
        self.store
            .put_alert_version(TENANT, product, a)
            .await
            .unwrap();
        shared::steps::classify::run(&self.deps, &AlertRef::new(TENANT, &a.id, a.last_update))
            .await
            .unwrap();
    }

    fn responses(&self) -> Vec<String> {
        self.sim
            .tickets()
            .iter()
            .flat_map(|t| t.responses.iter().map(|r| r.description.clone()))
            .filter(|d| d.starts_with("【調査報告"))
            .collect()
    }

    async fn stored(&self, msg: &AlertRef) -> StoredReport {
        let a = self
            .store
            .get_alert_version(TENANT, &msg.alert_id, msg.last_update)
            .await
            .unwrap()
            .unwrap();
        let b = self
            .store
            .get_doc(
                TENANT,
                investigate::DOC_KIND,
                &investigate::doc_key(&a.incident_key(), &a.id),
            )
            .await
            .unwrap()
            .expect("report stored with the incident");
        serde_json::from_str(&b).unwrap()
    }
}

fn assert_headings(text: &str) {
    for h in [
        "■ ユーザ名",
        "■ インシデント内容",
        "■ 関連検知情報",
        "■ 対応推奨事項",
    ] {
        assert!(text.contains(h), "missing {h}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mde_report_hunts_the_device_and_user_and_lands_on_the_ticket() {
    let r = rig(None).await;
    let msg = r
        .ticketed(
            Product::Mde,
            mde_alert("m1", "d-0123", "2026-11-20T00:55:00Z"),
        )
        .await;
    // An earlier alert on the same device, for related detections (store only).
    let older = Alert::from_value(json!({"id": "m0", "lastUpdateDateTime": "2026-11-18T03:00:00Z",
        "title": "不審な PowerShell", "severity": "medium", "tenantId": AZ, "serviceSource": "microsoftDefenderForEndpoint",
        "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "d-0123"}]}))
    .unwrap();
    r.classified(Product::Mde, &older).await;
    // One claiming another Azure tenant, and a low one the agreement only monitors: never
    // named on this customer's ticket (the monitored one is counted).
    for (id, sev, az, title) in [
        (
            "x9",
            "high",
            "00000000-0000-4000-8000-000000000999",
            "他社のアラート",
        ),
        ("l1", "informational", AZ, "情報レベルの検知"),
    ] {
        let a = Alert::from_value(json!({"id": id, "lastUpdateDateTime": "2026-11-19T03:00:00Z",
            "title": title, "severity": sev, "tenantId": az, "serviceSource": "microsoftDefenderForEndpoint",
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "d-0123"}]}))
        .unwrap();
        r.classified(Product::Mde, &a).await;
    }

    let out = investigate::run(&r.deps, &msg, false).await.unwrap();
    assert_eq!(out.action, InvestigateAction::Posted);
    assert_eq!(out.sections_skipped, 0);
    let texts = r.responses();
    assert_eq!(texts.len(), 1);
    let text = &texts[0];
    assert_headings(text);
    assert!(
        text.contains("山田 太郎 <taro.yamada@kaede.example.jp>"),
        "{text}"
    );
    assert!(text.contains("tky-pc-0123"), "{text}");
    assert!(text.contains("端末のプロセス実行"), "{text}");
    assert!(
        text.contains("不審な PowerShell"),
        "related detection missing:\n{text}"
    );
    assert!(text.contains("フルスキャン"), "{text}");
    assert!(
        !text.contains("他社のアラート") && !text.contains("情報レベルの検知"),
        "{text}"
    );
    assert!(
        text.contains("監視対象（通知対象外）のアラートが 1 件"),
        "{text}"
    );

    let calls = r.sim.hunting_queries();
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| {
            c.query
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("// mss-query: ")
        })
        .collect();
    for want in [
        "mde-process-events",
        "mde-network-events",
        "mde-file-events",
        "mde-device-alerts-7d",
        "user-signins-7d",
        "user-alerts-7d",
    ] {
        assert!(ids.contains(&want), "{want} not run: {ids:?}");
    }
    assert!(calls.iter().all(|c| c.status == 200));
    // The window was sent as Timespan too, so the service does not scan 30 days.
    assert!(calls
        .iter()
        .all(|c| c.timespan.as_deref().is_some_and(|t| t.contains('/'))));

    let stored = r.stored(&msg).await;
    assert!(stored.posted);
    assert_eq!(stored.version, 1);
    let sec = stored
        .report
        .sections
        .iter()
        .find(|s| s.query_id == "mde-process-events")
        .unwrap();
    assert!(sec.total_rows > 0 && !sec.columns.is_empty());
    assert_eq!(stored.report.related[0].alert_id, "m0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdo_report_follows_the_message_and_names_the_mailbox() {
    let r = rig(None).await;
    let msg = r
        .ticketed(
            Product::Mdo,
            json!({"id": "o1", "lastUpdateDateTime": "2026-11-20T00:55:00Z", "createdDateTime": "2026-11-20T00:50:00Z",
                "serviceSource": "microsoftDefenderForOffice365", "severity": "high", "title": "フィッシング メールの配信後に URL がクリックされました",
                "category": "InitialAccess", "tenantId": AZ, "status": "new",
                "evidence": [
                    {"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "networkMessageId": "nm-1",
                     "recipientEmailAddress": "hanako@kaede.example.jp", "subject": "請求書の確認", "p1Sender": {"emailAddress": "billing@evil.example"}},
                    {"@odata.type": "#microsoft.graph.security.mailboxEvidence", "primaryAddress": "hanako@kaede.example.jp", "displayName": "佐藤 花子"}]}),
        )
        .await;
    investigate::run(&r.deps, &msg, false).await.unwrap();
    let text = &r.responses()[0];
    assert_headings(text);
    assert!(text.contains("hanako@kaede.example.jp"), "{text}");
    assert!(text.contains("対象メールボックス"), "{text}");
    assert!(text.contains("同じメールの受信者"), "{text}");
    assert!(
        text.contains("ソフト削除") || text.contains("未削除のメールを削除"),
        "{text}"
    );
    let ids: Vec<String> = r
        .sim
        .hunting_queries()
        .iter()
        .map(|c| c.query.lines().next().unwrap().to_string())
        .collect();
    for want in [
        "mdo-message",
        "mdo-recipients",
        "mdo-url-clicks",
        "mdo-post-delivery",
    ] {
        assert!(ids.iter().any(|i| i.ends_with(want)), "{want}: {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_report_with_a_user_the_directory_does_not_know() {
    let r = rig(None).await;
    let msg = r
        .ticketed(
            Product::Idp,
            json!({"id": "i1", "lastUpdateDateTime": "2026-11-20T00:55:00Z", "serviceSource": "azureAdIdentityProtection",
                "severity": "high", "title": "匿名 IP アドレスからのサインイン", "category": "CredentialAccess", "tenantId": AZ, "status": "new",
                "evidence": [{"@odata.type": "#microsoft.graph.security.userEvidence",
                    "userAccount": {"azureAdUserId": "u-gone", "userPrincipalName": "ex.employee@kaede.example.jp", "displayName": "退職 済子"}}]}),
        )
        .await;
    let out = investigate::run(&r.deps, &msg, false).await.unwrap();
    assert_eq!(out.action, InvestigateAction::Posted);
    let text = &r.responses()[0];
    assert_headings(text);
    // Named from the evidence even though the lookup found nobody.
    assert!(
        text.contains("退職 済子 <ex.employee@kaede.example.jp>"),
        "{text}"
    );
    assert!(
        text.contains("ディレクトリにユーザーが見つかりません"),
        "{text}"
    );
    assert!(text.contains("パスワードをリセット"), "{text}");
    // The 404 is cached for the day (keyed by the object id).
    let stored = r.stored(&msg).await;
    assert_eq!(stored.report.users[0].lookup, "not_found");
    assert!(r
        .store
        .get_doc(TENANT, "user", "u-gone")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_evidence_values_reach_kql_only_as_intact_literals() {
    let r = rig(None).await;
    let hostile = [
        "d\" | take 100000 //",
        "x\"; let WindowStart = datetime(2000-01-01); //",
        "C:\\evil\\",
        "line1\nDeviceEvents | where 1==1",
        "' or 1==1 //",
    ];
    for (i, h) in hostile.iter().enumerate() {
        let msg = r
            .ticketed(
                Product::Mde,
                mde_alert(&format!("h{i}"), h, "2026-11-20T00:55:00Z"),
            )
            .await;
        let out = investigate::run(&r.deps, &msg, false).await.unwrap();
        // The simulator lexes every binding strictly: a broken literal would have been a 400
        // and a failed section.
        assert_eq!(out.sections_skipped, 0, "{h:?}");
    }
    let calls = r.sim.hunting_queries();
    assert!(calls.iter().all(|c| c.status == 200));
    let mut seen = Vec::new();
    for c in &calls {
        for line in c.query.lines() {
            if let Some(rest) = line.strip_prefix("let AlertDeviceId = ") {
                let (v, tail) = parse_string_literal(rest).unwrap();
                assert_eq!(tail, ";", "{line}");
                seen.push(v);
            }
        }
        // After the id line and the bindings comes the pack's body, untouched by any value.
        let id = c
            .query
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("// mss-query: ");
        let q = shared::domain::kql::pack()
            .iter()
            .find(|q| q.id == id)
            .unwrap();
        let body: Vec<&str> = c
            .query
            .lines()
            .skip(1 + shared::domain::kql::BINDINGS.len())
            .collect();
        assert_eq!(body.join("\n"), q.body, "{id}");
    }
    for h in hostile {
        assert!(
            seen.iter().any(|v| v == h),
            "{h:?} not bound intact: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_skips_sections_and_still_posts() {
    let r = rig(Some(investigate::HuntBudget {
        per_minute: 2,
        per_hour: 100,
        per_report: 16,
        entities_per_kind: 3,
    }))
    .await;
    let msg = r
        .ticketed(Product::Mde, mde_alert("b1", "d-1", "2026-11-20T00:55:00Z"))
        .await;
    let out = investigate::run(&r.deps, &msg, false).await.unwrap();
    assert_eq!(out.sections_run, 2);
    assert!(out.sections_skipped >= 4);
    assert_eq!(
        r.sim.hunting_queries().len(),
        2,
        "nothing called past the budget"
    );
    let text = &r.responses()[0];
    assert_headings(text);
    assert!(text.contains("■ 調査の制約"), "{text}");
    assert!(text.contains("利用枠"), "{text}");
    let stored = r.stored(&msg).await;
    assert!(stored
        .report
        .sections
        .iter()
        .any(|s| s.outcome == HuntOutcome::SkippedBudget));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_quota_and_a_504_are_reported_not_fatal() {
    let r = rig(None).await;
    // The service allows 3 calls this minute, and the first call times out (504; faults
    // come before the quota and do not count against it).
    r.sim.set_hunting_quota(3, 1500);
    r.sim.set_fault(
        Endpoint::GraphHunting,
        Fault::ServerError {
            times: 1,
            status: 504,
        },
    );
    let msg = r
        .ticketed(Product::Mde, mde_alert("q1", "d-1", "2026-11-20T00:55:00Z"))
        .await;
    let out = investigate::run(&r.deps, &msg, false).await.unwrap();
    assert_eq!(out.action, InvestigateAction::Posted);
    let stored = r.stored(&msg).await;
    let outcomes: Vec<HuntOutcome> = stored.report.sections.iter().map(|s| s.outcome).collect();
    assert_eq!(outcomes[0], HuntOutcome::TimedOut, "{outcomes:?}");
    assert!(
        outcomes.contains(&HuntOutcome::SkippedQuota),
        "{outcomes:?}"
    );
    let quota_at = outcomes
        .iter()
        .position(|o| *o == HuntOutcome::SkippedQuota)
        .unwrap();
    assert!(outcomes[quota_at..]
        .iter()
        .all(|o| *o == HuntOutcome::SkippedQuota));
    // 3 answered + the one 429; nothing after it.
    let statuses: Vec<u16> = r.sim.hunting_queries().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "{statuses:?}");
    let text = &r.responses()[0];
    assert!(text.contains("クォータ"), "{text}");
    assert!(text.contains("制限時間内に完了しませんでした"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_update_the_report_instead_of_duplicating_it() {
    let r = rig(None).await;
    let msg = r
        .ticketed(Product::Mde, mde_alert("r1", "d-9", "2026-11-20T00:55:00Z"))
        .await;
    assert_eq!(
        investigate::run(&r.deps, &msg, false).await.unwrap().action,
        InvestigateAction::Posted
    );
    // Redelivery of the same message, and a later version of the same alert: no new report.
    assert_eq!(
        investigate::run(&r.deps, &msg, false).await.unwrap().action,
        InvestigateAction::AlreadyInvestigated
    );
    // An operator's rerun that finds nothing new posts nothing.
    let same = investigate::run(&r.deps, &msg, true).await.unwrap();
    assert_eq!(same.action, InvestigateAction::NothingNew);
    assert_eq!(r.responses().len(), 1);
    // Something new turns up (another alert on the device): the rerun posts version 2.
    let newer = Alert::from_value(json!({"id": "r2", "lastUpdateDateTime": "2026-11-20T02:00:00Z",
        "title": "横展開の疑い", "severity": "high", "tenantId": AZ, "serviceSource": "microsoftDefenderForEndpoint",
        "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "d-9"}]}))
    .unwrap();
    r.classified(Product::Mde, &newer).await;
    let upd = investigate::run(&r.deps, &msg, true).await.unwrap();
    assert_eq!(upd.action, InvestigateAction::Posted);
    assert_eq!(upd.version, 2);
    let texts = r.responses();
    assert_eq!(texts.len(), 2);
    assert!(
        texts[1].starts_with("【調査報告（更新 第2版）】"),
        "{}",
        texts[1]
    );
    assert!(texts[1].contains("横展開の疑い"));
    let stored = r.stored(&msg).await;
    assert_eq!((stored.version, stored.posted), (2, true));
    // The ticket step queued the investigation (the embedded runner would run it).
    let (queued, _) =
        shared::ports::Queue::depth(r.store.as_ref(), shared::messages::QueueName::Investigate)
            .await
            .unwrap();
    assert_eq!(queued, 1);
}
