//! Operator reruns and the failed/stuck listing, through the real steps, the real Graph,
//! hunting and OpsRamp clients, the simulator over HTTPS and the embedded store and queues:
//! a rerun from any step never makes a second ticket or repeats a response, `--force`
//! re-posts the investigation report once, a failing step is listed with its error and
//! rerun command and drops off the list once a rerun succeeds, stuck intents and actions are
//! found, dead letters are listed once.

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
use shared::adapters::sqlite::{QueueSettings, SqliteStore};
use shared::domain::alert::Product;
use shared::domain::severity::Severity;
use shared::domain::tenant::Tenant;
use shared::ports::{ActionRecord, ActionStatus, IncidentRecord, ManualClock, Queue, Store};
use shared::steps::rerun::{self, FromStep, Refusal, RerunRequest, Target};
use shared::steps::runs::{self, RunStatus, RunsQuery};
use shared::steps::Deps;

const AZ: &str = "7a1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const TENANT: &str = "kaede-shoji";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_server_wait: Duration::from_secs(5),
    }
}

struct Rig {
    sim: Sim,
    deps: Deps,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
}

fn mde_alert(id: &str, incident: &str, updated: &str) -> Value {
    json!({"id": id, "lastUpdateDateTime": updated, "createdDateTime": "2026-11-20T00:50:00Z",
        "serviceSource": "microsoftDefenderForEndpoint", "severity": "high",
        "title": "ランサムウェアの活動を検出", "category": "Ransomware", "tenantId": AZ,
        "incidentId": incident, "status": "new",
        "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence",
                      "mdeDeviceId": "dev-1", "deviceDnsName": "tky-pc-0123"}]})
}

async fn rig(alerts: Vec<Value>) -> Rig {
    shared::adapters::http::install_crypto_provider();
    let start = at("2026-11-20T01:00:00Z");
    let sim = Sim::start(
        SimConfig {
            tenants: vec![SimTenant {
                azure_tenant_id: AZ.into(),
                client_id: "app".into(),
                client_secret: "s".into(),
                alerts,
            }],
            opsramp_tenant_id: "client_1234".into(),
            opsramp_client_id: "ops".into(),
            opsramp_client_secret: "o".into(),
            state_file: None,
            all_visible: true,
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
    oc.retry = fast();
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
    let store = Arc::new(
        SqliteStore::in_memory()
            .unwrap()
            .with_clock(clock.clone())
            .with_queue_settings(QueueSettings {
                visibility_timeout: Duration::from_secs(60),
                retry_delay: Duration::from_secs(10),
                max_receive: 3,
            }),
    );
    let inv = shared::steps::investigate::InvestigateDeps::new(
        Arc::new(
            HuntingClient::new(
                HuntingConfig {
                    graph_base: sim.graph_base(),
                    authority_host: sim.authority_host(),
                    http: http.clone(),
                    retry: fast(),
                    ..Default::default()
                },
                cred(),
            )
            .unwrap(),
        ),
        Arc::new(
            IdentityClient::new(
                IdentityConfig {
                    graph_base: sim.graph_base(),
                    authority_host: sim.authority_host(),
                    http: http.clone(),
                    retry: fast(),
                    ..Default::default()
                },
                cred(),
            )
            .unwrap(),
        ),
    );
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
        clock: clock.clone(),
        settings: Default::default(),
        respond: None,
        investigate: Some(Arc::new(inv)),
        handed_on: Default::default(),
    };
    let t = Tenant::from_json_value(
        &json!({"id": TENANT, "name": "楓商事", "azure_tenant_id": AZ,
        "products": ["mde"], "mde": {"device_groups": ["*"], "incident_min_severity": "low"}}),
    )
    .unwrap();
    store.put_tenant(&t).await.unwrap();
    Rig {
        sim,
        deps,
        store,
        clock,
    }
}

impl Rig {
    /// A fetch (which classifies what it finds) and a drain: what the fetch handed on, and
    /// what the steps after it ran.
    async fn cycle(
        &self,
    ) -> (
        shared::steps::fetch::FetchOutcome,
        shared::runner::DrainStats,
    ) {
        let f = shared::steps::fetch::run(&self.deps, TENANT, Product::Mde)
            .await
            .unwrap();
        (f, shared::runner::drain(&self.deps).await.unwrap())
    }

    async fn rerun(&self, target: Target, from: FromStep, force: bool) -> rerun::RerunOutcome {
        let out = rerun::run(
            &self.deps,
            &RerunRequest {
                tenant: TENANT.into(),
                target,
                from,
                force,
            },
        )
        .await
        .unwrap();
        shared::runner::drain(&self.deps).await.unwrap();
        out
    }

    fn responses(&self) -> usize {
        self.sim.tickets().iter().map(|t| t.responses.len()).sum()
    }

    async fn failed(&self) -> Vec<runs::RunItem> {
        runs::list(
            self.store.as_ref(),
            Some(self.store.as_ref() as &dyn Queue),
            &RunsQuery {
                tenant: None,
                since: None,
                stuck_after: Duration::from_secs(1800),
            },
            self.clock.now_utc(),
        )
        .await
        .unwrap()
    }
}

trait Now {
    fn now_utc(&self) -> DateTime<Utc>;
}
impl Now for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        shared::ports::Clock::now(self)
    }
}

#[tokio::test]
async fn a_rerun_from_any_step_never_duplicates_and_force_reposts_the_report_once() {
    let r = rig(vec![
        mde_alert("da-1", "501", "2026-11-20T00:55:00Z"),
        mde_alert("da-2", "501", "2026-11-20T00:56:00Z"),
    ])
    .await;
    let (f, s) = r.cycle().await;
    assert_eq!((f.new_versions, f.incidents), (2, 2));
    assert_eq!(
        (s.classified, s.ticketed),
        (0, 2),
        "classified by the fetch"
    );
    assert_eq!(r.sim.tickets().len(), 1, "one incident, one ticket");
    let responses = r.responses();
    assert!(
        responses >= 2,
        "the second alert and two reports were posted"
    );
    let updates = r.sim.tickets()[0].updates;

    for from in [
        FromStep::Fetch,
        FromStep::Classify,
        FromStep::Ticket,
        FromStep::Investigate,
    ] {
        let out = r.rerun(Target::Incident("501".into()), from, false).await;
        assert_eq!(out.alerts.len(), 2, "{from:?}: both alerts of the incident");
        assert_eq!(r.sim.tickets().len(), 1, "{from:?}: still one ticket");
        assert_eq!(r.responses(), responses, "{from:?}: nothing posted again");
        assert_eq!(r.sim.tickets()[0].updates, updates, "{from:?}: no update");
    }

    // Forced: exactly one more report, for the one alert named, marked as a new version.
    let out = r
        .rerun(Target::Alert("da-1".into()), FromStep::Investigate, true)
        .await;
    assert_eq!(out.queued, 1);
    assert_eq!(r.responses(), responses + 1);
    let last = r.sim.tickets()[0]
        .responses
        .last()
        .unwrap()
        .description
        .clone();
    assert!(last.contains("第2版"), "{last}");
    // Forced again only by asking again: a plain rerun after it posts nothing.
    r.rerun(Target::Alert("da-1".into()), FromStep::Investigate, false)
        .await;
    assert_eq!(r.responses(), responses + 1);

    // The report's month is the JST month the alert was created in.
    let out = r
        .rerun(Target::Alert("da-2".into()), FromStep::Report, false)
        .await;
    assert_eq!(out.report_month.as_deref(), Some("2026-11"));
    assert_eq!(out.queued, 0);
    assert!(r.failed().await.is_empty());
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let r = rig(vec![mde_alert("da-1", "501", "2026-11-20T00:55:00Z")]).await;
    r.cycle().await;
    let refuse = |req: RerunRequest| {
        let deps = r.deps.clone();
        async move {
            let e = rerun::run(&deps, &req).await.unwrap_err();
            assert!(e.downcast_ref::<Refusal>().is_some(), "{e:#}");
            format!("{e:#}")
        }
    };
    let req = |tenant: &str, target: Target, from: FromStep, force: bool| RerunRequest {
        tenant: tenant.into(),
        target,
        from,
        force,
    };
    let e = refuse(req(
        TENANT,
        Target::Alert("da-404".into()),
        FromStep::Ticket,
        false,
    ))
    .await;
    assert!(e.contains("no stored alert \"da-404\""), "{e}");
    let e = refuse(req(
        TENANT,
        Target::Incident("999".into()),
        FromStep::Ticket,
        false,
    ))
    .await;
    assert!(e.contains("incident \"999\""), "{e}");
    let e = refuse(req(
        "nobody",
        Target::Alert("da-1".into()),
        FromStep::Ticket,
        false,
    ))
    .await;
    assert!(e.contains("not registered"), "{e}");
    let e = refuse(req(
        TENANT,
        Target::Alert("da-1".into()),
        FromStep::Ticket,
        true,
    ))
    .await;
    assert!(
        e.contains("--force only applies to --from investigate"),
        "{e}"
    );
    let e = refuse(req(
        TENANT,
        Target::Alert("da-1".into()),
        FromStep::Respond,
        false,
    ))
    .await;
    assert!(e.contains("first response is not set up"), "{e}");
    // Nothing was queued by any refusal.
    for q in shared::messages::QueueName::ALL {
        assert_eq!(r.store.depth(q).await.unwrap().0, 0, "{q:?}");
    }
}

#[tokio::test]
async fn a_failing_step_is_listed_with_its_error_and_leaves_the_list_when_a_rerun_succeeds() {
    let r = rig(vec![mde_alert("da-1", "501", "2026-11-20T00:55:00Z")]).await;
    // OpsRamp refuses every create and search: the ticket step fails.
    for ep in [Endpoint::OpsRampCreate, Endpoint::OpsRampSearch] {
        r.sim.set_fault(
            ep,
            Fault::ServerError {
                times: 1000,
                status: 503,
            },
        );
    }
    let (_, s) = r.cycle().await;
    assert_eq!(s.failed, 1);
    assert!(r.sim.tickets().is_empty());
    let items = r.failed().await;
    assert_eq!(items.len(), 1, "{items:?}");
    let i = &items[0];
    assert_eq!((i.status, i.step.as_str()), (RunStatus::Failed, "ticket"));
    assert_eq!(i.item, "da-1@2026-11-20T00:55:00Z");
    assert!(i.error.as_deref().unwrap_or("").contains("503"), "{i:?}");
    assert_eq!(
        i.rerun_command().unwrap(),
        "mss rerun --tenant kaede-shoji --alert da-1 --from ticket"
    );
    let first_since = i.since;

    // The queue retries it until it gives up: one line, now a dead letter, still failing
    // since the first attempt.
    for _ in 0..5 {
        r.clock
            .set(shared::ports::Clock::now(r.clock.as_ref()) + chrono::Duration::seconds(11));
        shared::runner::drain(&r.deps).await.unwrap();
    }
    let items = r.failed().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].status, RunStatus::DeadLetter);
    assert_eq!(items[0].since, first_since);
    assert_eq!(items[0].attempts, 3);

    // OpsRamp is back; the operator reruns it (bulk: from the listed request).
    r.sim.set_fault(Endpoint::OpsRampCreate, Fault::None);
    r.sim.set_fault(Endpoint::OpsRampSearch, Fault::None);
    let req = items[0].rerun.clone().unwrap();
    rerun::run(&r.deps, &req).await.unwrap();
    shared::runner::drain(&r.deps).await.unwrap();
    assert_eq!(r.sim.tickets().len(), 1);
    // The record is resolved; only the dead letter itself remains until it is redriven.
    let items = r.failed().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].status, RunStatus::DeadLetter);
    assert_eq!(
        r.store
            .redrive(shared::messages::QueueName::Ticket)
            .await
            .unwrap(),
        1
    );
    shared::runner::drain(&r.deps).await.unwrap();
    assert!(r.failed().await.is_empty());
    assert_eq!(
        r.sim.tickets().len(),
        1,
        "the redriven copy found the ticket"
    );
}

#[tokio::test]
async fn stuck_intents_and_actions_are_found_after_the_timeout() {
    let r = rig(vec![]).await;
    let now = shared::ports::Clock::now(r.clock.as_ref());
    r.store
        .create_incident_intent(&IncidentRecord {
            tenant: TENANT.into(),
            key: "incident:777".into(),
            ticket_id: None,
            creator_alert: "da-7".into(),
            creator_version: now,
            severity: Severity::High,
            intent_at: now,
        })
        .await
        .unwrap();
    r.store
        .create_action(&ActionRecord {
            tenant: TENANT.into(),
            key: "incident:778|isolate|dev-9".into(),
            incident_key: "incident:778".into(),
            kind: shared::domain::response::ActionKind::Isolate,
            target: "dev-9".into(),
            status: ActionStatus::InProgress,
            reason: "test".into(),
            machine_action_id: Some("ma-1".into()),
            created_at: now,
            updated_at: now,
            approved_by: None,
        })
        .await
        .unwrap();
    assert!(r.failed().await.is_empty(), "not stuck yet");
    r.clock.set(now + chrono::Duration::minutes(31));
    let items = r.failed().await;
    let mut got: Vec<(&str, &str, RunStatus)> = items
        .iter()
        .map(|i| (i.step.as_str(), i.item.as_str(), i.status))
        .collect();
    got.sort_by_key(|g| (g.0, g.1));
    assert_eq!(
        got,
        vec![
            ("respond", "incident:778|isolate|dev-9", RunStatus::Stuck),
            ("ticket", "incident:777", RunStatus::Stuck)
        ]
    );
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.status == RunStatus::Stuck));
    let cmds: Vec<String> = items.iter().filter_map(|i| i.rerun_command()).collect();
    assert!(
        cmds.contains(&"mss rerun --tenant kaede-shoji --incident 777 --from ticket".to_string()),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&"mss rerun --tenant kaede-shoji --incident 778 --from respond".to_string()),
        "{cmds:?}"
    );
}
