//! Inquiry tracking (R-SLA, R-TICKET-4) against the simulated OpsRamp's service requests:
//! due dates set once, one reminder two service hours before, one escalation after, on the
//! JST business calendar — and nothing repeated by reruns or a crash mid-way.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use mss_sim::{Sim, SimConfig};
use shared::adapters::graph::{AzureAppCredential, GraphClient, GraphConfig, Secret};
use shared::adapters::http::HttpSettings;
use shared::adapters::opsramp::{OpsRampClient, OpsRampConfig, OpsRampCredential};
use shared::adapters::sqlite::SqliteStore;
use shared::domain::calendar::Calendar;
use shared::ports::{ManualClock, Store};
use shared::steps::{inquiries, Deps};

fn jst(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Rig {
    sim: Sim,
    deps: Deps,
    ops: Arc<OpsRampClient>,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
    http: reqwest::Client,
    token: String,
}

async fn rig() -> Rig {
    shared::adapters::http::install_crypto_provider();
    let sim = Sim::start(
        SimConfig {
            tenants: vec![],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "mss-soc".into(),
            opsramp_client_secret: "ops-secret".into(),
            state_file: None,
            all_visible: true,
            start_clock: Utc::now(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let settings = HttpSettings {
        extra_ca_pem: Some(sim.ca_pem()),
        ..Default::default()
    };
    let mut oc = OpsRampConfig::new(&sim.opsramp_base(), "client_1234");
    oc.http = settings.clone();
    let ops = Arc::new(
        OpsRampClient::new(
            oc,
            OpsRampCredential {
                client_id: "mss-soc".into(),
                client_secret: Secret::new("ops-secret".to_string()),
            },
        )
        .unwrap(),
    );
    let graph = GraphClient::new(
        GraphConfig {
            graph_base: sim.graph_base(),
            authority_host: sim.authority_host(),
            http: settings.clone(),
            ..Default::default()
        },
        Vec::<AzureAppCredential>::new(),
    )
    .unwrap();
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let clock = ManualClock::new(jst("2026-11-25T11:00:00+09:00"));
    let deps = Deps {
        store: store.clone(),
        queue: store.clone(),
        alerts: Arc::new(graph),
        tickets: ops.clone(),
        clock: clock.clone(),
        settings: Default::default(),
        respond: None,
        investigate: None,
        handed_on: Default::default(),
    };
    let http = shared::adapters::http::build_client(&settings).unwrap();
    let tok: Value = http
        .post(format!("{}/tenancy/auth/oauth/token", sim.opsramp_base()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "mss-soc"),
            ("client_secret", "ops-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    Rig {
        sim,
        deps,
        ops,
        clock,
        store,
        http,
        token,
    }
}

impl Rig {
    /// A customer's inquiry as the service desk would file it in OpsRamp.
    async fn file(&self, subject: &str, kind: Option<&str>, received: &str) -> String {
        let mut fields = vec![json!({"name": "mss_tenant", "value": "kaede-shoji"})];
        if let Some(k) = kind {
            fields.push(json!({"name": "inquiry_kind", "value": k}));
        }
        let v: Value = self.http
            .post(format!("{}/api/v2/tenants/client_1234/serviceRequests", self.sim.opsramp_base()))
            .bearer_auth(&self.token)
            .json(&json!({"subject": subject, "description": "お問い合わせ内容", "customFields": fields, "simReceivedAt": received}))
            .send().await.unwrap().json().await.unwrap();
        v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {v}"))
            .to_string()
    }

    async fn at(&self, t: &str) -> inquiries::InquiryOutcome {
        self.clock.set(jst(t));
        inquiries::run(&self.deps, self.ops.as_ref(), &Calendar::default())
            .await
            .unwrap()
    }

    fn sr(&self, id: &str) -> mss_sim::SimTicket {
        self.sim
            .service_requests()
            .into_iter()
            .find(|s| s.id == id)
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_dates_reminders_and_escalations_once_each() {
    let r = rig().await;
    let a = r
        .file(
            "業務停止: メールが送れない",
            Some("業務影響"),
            "2026-11-25T10:00:00+09:00",
        )
        .await;
    let b = r
        .file("レポートの見方について", None, "2026-11-21T10:00:00+09:00")
        .await; // Saturday
    let c = r
        .file(
            "VPN 接続不可",
            Some("business-impact"),
            "2026-11-25T17:10:00+09:00",
        )
        .await; // after 17:00

    let o = r.at("2026-11-25T11:00:00+09:00").await;
    assert_eq!(
        (o.open, o.due_set, o.reminded, o.escalated),
        (3, 3, 0, 0),
        "{o:?}"
    );
    assert_eq!(
        r.sr(&a).raw["dueDate"],
        "2026-11-25T08:30:00+0000",
        "business impact before 17:00: same day 17:30 JST"
    );
    assert_eq!(
        r.sr(&b).raw["dueDate"],
        "2026-11-26T08:30:00+0000",
        "general from Saturday: 3rd business day (23rd is a holiday)"
    );
    assert_eq!(
        r.sr(&c).raw["dueDate"],
        "2026-11-26T08:30:00+0000",
        "business impact after 17:00: next business day"
    );

    // 15:40: A has 1 h 50 min left → one reminder, and only one however often we run.
    let o = r.at("2026-11-25T15:40:00+09:00").await;
    assert_eq!((o.due_set, o.reminded, o.escalated), (0, 1, 0), "{o:?}");
    let o = r.at("2026-11-25T15:45:00+09:00").await;
    assert_eq!((o.reminded, o.escalated), (0, 0));
    // 17:31: A is overdue → one escalation.
    let o = r.at("2026-11-25T17:31:00+09:00").await;
    assert_eq!((o.reminded, o.escalated), (0, 1), "{o:?}");
    r.at("2026-11-25T18:00:00+09:00").await;
    // Thursday 15:30: B and C have two service hours left.
    let o = r.at("2026-11-26T15:30:00+09:00").await;
    assert_eq!((o.reminded, o.escalated), (2, 0), "{o:?}");

    let notes = |id: &str| r.sr(id).responses;
    assert_eq!(notes(&a).len(), 2);
    assert!(
        notes(&a)[0]
            .description
            .starts_with("【SLAリマインダー】本問い合わせ（業務影響）"),
        "{:?}",
        notes(&a)
    );
    assert!(notes(&a)[1]
        .description
        .starts_with("【SLA超過・エスカレーション】"));
    assert!(
        notes(&a).iter().all(|n| n.internal),
        "reminders are internal, never mailed to the customer"
    );
    assert_eq!(notes(&b).len(), 1);
    assert!(notes(&b)[0].description.contains("（一般）"));

    // A crash after the escalation marker was written but before the note was posted: the
    // next run posts it once, by looking first.
    assert_eq!(
        r.store
            .once_begin("kaede-shoji", &format!("inquiry:{c}:escalate"))
            .await
            .unwrap(),
        shared::ports::OnceState::New
    );
    let o = r.at("2026-11-26T17:31:00+09:00").await;
    assert_eq!(
        (o.escalated, o.errors.len()),
        (2, 0),
        "B and C escalate: {o:?}"
    );
    r.at("2026-11-26T17:40:00+09:00").await;
    assert_eq!(notes(&c).len(), 2, "{:?}", notes(&c));
}
