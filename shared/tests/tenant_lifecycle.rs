//! The tenant lifecycle as the pipeline sees it, on the embedded store and the simulator: a
//! disabled tenant is not fetched at all (and resumes after enable), a scheduled product
//! change is fetched only from its first day, and a purge on SQLite also takes the tenant's
//! queued messages and dead letters, and nothing of another tenant's.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use common::*;
use shared::adapters::sqlite::{QueueSettings, SqliteStore};
use shared::domain::alert::Product;
use shared::domain::tenant::{self, Tenant};
use shared::messages::{AlertRef, QueueName};
use shared::ports::{ManualClock, Queue, Store};
use shared::steps::{fetch, Deps};

fn deps(
    sim: &mss_sim::Sim,
    store: Arc<SqliteStore>,
    now: DateTime<Utc>,
) -> (Deps, Arc<ManualClock>) {
    let clock = ManualClock::new(now);
    (
        Deps {
            store: store.clone(),
            queue: store,
            alerts: Arc::new(graph_client(sim, 50, vec![cred_a(), cred_b()])),
            tickets: Arc::new(opsramp_client(sim)),
            clock: clock.clone(),
            settings: Default::default(),
            respond: None,
            investigate: None,
            handed_on: Default::default(),
        },
        clock,
    )
}

/// (tenant, product) of every successful fetch, sorted; panics on a failed one.
async fn fetched(d: &Deps) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fetch::run_all(d)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let o = r.unwrap_or_else(|e| panic!("fetch failed: {e:?}"));
            (o.tenant, o.product)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_disabled_tenant_is_not_fetched_until_enabled() {
    shared::adapters::http::install_crypto_provider();
    let sim = start_sim(vec![
        sim_tenant(
            AZ_A,
            APP_A,
            SECRET_A,
            vec![alert("a-1", t(22, 50), MDE, AZ_A)],
        ),
        sim_tenant(
            AZ_B,
            APP_B,
            SECRET_B,
            vec![alert("b-1", t(22, 50), MDE, AZ_B)],
        ),
    ])
    .await;
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    store.put_tenant(&tenant("tenant-a", AZ_A)).await.unwrap();
    let (b, changed) = tenant::disable(tenant("tenant-b", AZ_B), t(22, 55), "test");
    assert!(changed);
    store.put_tenant(&b).await.unwrap();
    let (d, _) = deps(&sim, store.clone(), t(23, 0));

    assert_eq!(
        fetched(&d).await,
        [("tenant-a".to_string(), "mde".to_string())],
        "the disabled tenant is left out of the cycle, without an error"
    );
    assert_eq!(store.list_alert_ids("tenant-a").await.unwrap(), ["a-1"]);
    assert!(store.list_alert_ids("tenant-b").await.unwrap().is_empty());
    assert_eq!(
        store.get_cursor("tenant-b", Product::Mde).await.unwrap(),
        None
    );
    // Asked for by name (a manual fetch), it is refused with the way back.
    let e = fetch::run(&d, "tenant-b", Product::Mde).await.unwrap_err();
    assert!(format!("{e:#}").contains("mss tenant enable"), "{e:#}");

    let (b, changed) = tenant::enable(store.get_tenant("tenant-b").await.unwrap().unwrap());
    assert!(changed);
    store.put_tenant(&b).await.unwrap();
    assert_eq!(
        fetched(&d).await,
        [
            ("tenant-a".to_string(), "mde".to_string()),
            ("tenant-b".to_string(), "mde".to_string())
        ]
    );
    assert_eq!(store.list_alert_ids("tenant-b").await.unwrap(), ["b-1"]);
}

fn with_mdo(id: &str, azure: &str) -> Tenant {
    Tenant::from_toml(&format!(
        "id = \"{id}\"\nname = \"テスト顧客\"\nazure_tenant_id = \"{azure}\"\nproducts = [\"mde\", \"mdo\"]\n\
         [mde]\ndevice_groups = [\"*\"]\nincident_min_severity = \"medium\"\n\
         [[mdo.policies]]\nname = \"alert a-2\"\ncategory = \"threat_management\"\nlevel = \"incident\"\n"
    ))
    .unwrap()
}

#[tokio::test]
async fn an_added_product_is_fetched_from_the_first_day_of_the_next_jst_month() {
    shared::adapters::http::install_crypto_provider();
    let sim = start_sim(vec![sim_tenant(
        AZ_A,
        APP_A,
        SECRET_A,
        vec![
            alert("a-1", t(22, 50), MDE, AZ_A),
            alert("a-2", t(22, 50), MDO, AZ_A),
        ],
    )])
    .await;
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let old = tenant("tenant-a", AZ_A);
    // Agreed on 2026-11-02 (JST): MDO is added from 2026-12-01 00:00 JST.
    let sched = tenant::schedule_put(Some(&old), with_mdo("tenant-a", AZ_A), t(22, 55), false);
    let from: DateTime<Utc> = "2026-11-30T15:00:00Z".parse().unwrap();
    assert_eq!(sched.pending_change(t(23, 0)).map(|(_, f)| f), Some(from));
    store.put_tenant(&sched).await.unwrap();
    let (d, clock) = deps(&sim, store.clone(), t(23, 0));
    assert_eq!(
        fetched(&d).await,
        [("tenant-a".to_string(), "mde".to_string())]
    );
    assert!(fetch::run(&d, "tenant-a", Product::Mdo).await.is_err());
    // From the first day of the month, MDO too.
    clock.set(from + chrono::Duration::minutes(1));
    let got = fetched(&d).await;
    assert_eq!(
        got,
        [
            ("tenant-a".to_string(), "mde".to_string()),
            ("tenant-a".to_string(), "mdo".to_string())
        ]
    );
}

#[tokio::test]
async fn a_sqlite_purge_takes_the_tenants_messages_and_dead_letters_only() {
    let store = SqliteStore::in_memory()
        .unwrap()
        .with_queue_settings(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            retry_delay: Duration::ZERO,
            max_receive: 1,
        });
    let at: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
    for id in ["t-purge", "t-purge-2"] {
        store.put_tenant(&tenant(id, AZ_A)).await.unwrap();
        // One dead letter each…
        store
            .send_batch(QueueName::Ticket, &[AlertRef::new(id, "dead", at)])
            .await
            .unwrap();
        let got = store.receive(QueueName::Ticket, 10).await.unwrap();
        for m in got {
            store
                .nack(QueueName::Ticket, &m.handle, "boom")
                .await
                .unwrap();
        }
        // …then live messages: an alert reference and an action check.
        store
            .send_batch(QueueName::Classify, &[AlertRef::new(id, "live", at)])
            .await
            .unwrap();
        let check = json!({"v": 1, "tenant": id, "check": "incident:1|isolate|dev-1"});
        store
            .send_delayed(QueueName::Check, id, &check.to_string(), Duration::ZERO)
            .await
            .unwrap();
    }
    // A body that is no JSON belongs to no tenant and stays.
    store
        .send_delayed(QueueName::Check, "t-purge", "not json", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(store.depth(QueueName::Ticket).await.unwrap(), (0, 2));

    let n = store.purge_tenant("t-purge").await.unwrap();
    assert_eq!(n.get("queue_messages"), 2, "{n}");
    assert_eq!(n.get("dead_letters"), 1, "{n}");
    assert_eq!(n.get("tenant"), 1, "{n}");

    assert_eq!(store.depth(QueueName::Ticket).await.unwrap(), (0, 1));
    assert_eq!(store.depth(QueueName::Classify).await.unwrap(), (1, 0));
    assert_eq!(store.depth(QueueName::Check).await.unwrap(), (2, 0));
    let left: Vec<String> = store
        .receive(QueueName::Check, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert!(left.iter().any(|b| b == "not json"), "{left:?}");
    assert!(left.iter().any(|b| b.contains("\"t-purge-2\"")), "{left:?}");
    let dead = store.dead_letters(QueueName::Ticket, 10).await.unwrap();
    assert!(dead[0].body.contains("\"t-purge-2\""), "{dead:?}");
    assert!(store.get_tenant("t-purge").await.unwrap().is_none());
    assert!(store.get_tenant("t-purge-2").await.unwrap().is_some());
}
