//! `GraphClient` against the simulator over real HTTPS (the client trusts only the
//! simulator's CA): paging, filters, throttling, retries, malformed items, tenant isolation
//! and refusal of plain http.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mss_sim::{Endpoint, Fault};
use serde_json::{json, Value};
use shared::adapters::graph::{GraphClient, GraphConfig};
use shared::domain::alert::Product;
use shared::ports::{AlertSource, FetchedItem};

fn alert_ids(items: &[FetchedItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            FetchedItem::Alert(a) => a.id.clone(),
            FetchedItem::Malformed { raw, reason } => {
                panic!("unexpected malformed {reason}: {raw}")
            }
        })
        .collect()
}

/// Seven MDE alerts in the window (a minute apart), plus one MDO alert and one MDE alert
/// older than `since`, which the filter must exclude.
fn paging_alerts() -> Vec<Value> {
    let mut v: Vec<Value> = (0..7u32)
        .map(|i| alert(&format!("da{i}"), t(10, i), MDE, AZ_A))
        .collect();
    v.push(alert("fa-other-product", t(10, 30), MDO, AZ_A));
    v.push(alert("da-too-old", t(8, 0), MDE, AZ_A));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_next_links_and_respects_the_filter() {
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, paging_alerts())]).await;
    let client = graph_client(&sim, 3, vec![cred_a()]);
    let tenant = tenant("tenant-a", AZ_A);

    let items = client.fetch(&tenant, Product::Mde, t(9, 0)).await.unwrap();

    // Served in lastUpdateDateTime order; 7 matching alerts in pages of 3 → 3 pages.
    let want: Vec<String> = (0..7).map(|i| format!("da{i}")).collect();
    assert_eq!(alert_ids(&items), want);
    let s = sim.stats();
    assert_eq!(s.graph_alert_requests, 3, "{s:?}");
    // One token, cached for all pages.
    assert_eq!(s.entra_tokens, 1, "{s:?}");

    // `since` is inclusive (ge) and moves the window: from 10:05 only da5 and da6 remain.
    let later = client.fetch(&tenant, Product::Mde, t(10, 5)).await.unwrap();
    assert_eq!(alert_ids(&later), ["da5", "da6"]);

    // The other product is reachable with its own filter, and only it.
    let mdo = client.fetch(&tenant, Product::Mdo, t(9, 0)).await.unwrap();
    assert_eq!(alert_ids(&mdo), ["fa-other-product"]);
    assert_eq!(sim.stats().entra_tokens, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_for_unknown_enum_members() {
    // `microsoftSentinel` is an evolvable enum member: without the
    // `Prefer: include-unknown-enum-members` header Graph shows it as unknownFutureValue
    // and the Sentinel filter would match nothing.
    let sim = start_sim(vec![sim_tenant(
        AZ_A,
        APP_A,
        SECRET_A,
        vec![alert("sn1", t(10, 0), "microsoftSentinel", AZ_A)],
    )])
    .await;
    let client = graph_client(&sim, 10, vec![cred_a()]);
    let items = client
        .fetch(&tenant("tenant-a", AZ_A), Product::Sentinel, t(9, 0))
        .await
        .unwrap();
    assert_eq!(alert_ids(&items), ["sn1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_fractional_retry_after() {
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, paging_alerts())]).await;
    // Back-off is capped at 40 ms: only the server's Retry-After can account for 0.6 s.
    let client = graph_client(&sim, 50, vec![cred_a()]);
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::TooManyRequests {
            times: 2,
            retry_after: 0.3,
        },
    );

    let started = Instant::now();
    let items = client
        .fetch(&tenant("tenant-a", AZ_A), Product::Mde, t(9, 0))
        .await
        .unwrap();
    let elapsed = started.elapsed();

    assert_eq!(items.len(), 7);
    assert_eq!(sim.stats().graph_alert_requests, 3);
    assert!(
        elapsed >= Duration::from_millis(600),
        "two Retry-After: 0.3 were not both waited for: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_limit_fails_at_once() {
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, paging_alerts())]).await;
    let mut cfg = graph_config(&sim, 50);
    cfg.retry.max_server_wait = Duration::from_secs(2);
    let client = GraphClient::new(cfg, vec![cred_a()]).unwrap();
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::TooManyRequests {
            times: 1,
            retry_after: 30.0,
        },
    );
    let started = Instant::now();
    let err = client
        .fetch(&tenant("tenant-a", AZ_A), Product::Mde, t(9, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("throttled for 30 s"), "{err}");
    assert!(err.contains("tenant-a"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(sim.stats().graph_alert_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_server_errors_then_gives_up_naming_the_status() {
    let sim = start_sim(vec![sim_tenant(AZ_A, APP_A, SECRET_A, paging_alerts())]).await;
    let tenant = tenant("tenant-a", AZ_A);
    // max_attempts = 4 (see common::graph_config).
    let client = graph_client(&sim, 50, vec![cred_a()]);

    // Three 503s, then success on the fourth and last attempt.
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 3,
            status: 503,
        },
    );
    let items = client.fetch(&tenant, Product::Mde, t(9, 0)).await.unwrap();
    assert_eq!(items.len(), 7);
    assert_eq!(sim.stats().graph_alert_requests, 4);

    // More failures than attempts: the error names the status and the attempts.
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 10,
            status: 502,
        },
    );
    let err = client
        .fetch(&tenant, Product::Mde, t(9, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 502"), "{err}");
    assert!(err.contains("after 4 attempt(s)"), "{err}");
    assert!(err.contains("tenant-a"), "{err}");
    assert_eq!(sim.stats().graph_alert_requests, 4 + 4);

    // A 4xx other than 429 is not retried.
    sim.set_fault(
        Endpoint::GraphAlerts,
        Fault::ServerError {
            times: 10,
            status: 403,
        },
    );
    let err = client
        .fetch(&tenant, Product::Mde, t(9, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 403 after 1 attempt(s)"), "{err}");
    assert_eq!(sim.stats().graph_alert_requests, 4 + 4 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_items_are_kept_raw_and_the_page_goes_on() {
    let bad_title = {
        let mut a = alert("da-bad-title", t(10, 1), MDE, AZ_A);
        a["title"] = json!(7);
        a
    };
    let no_id = json!({
        "serviceSource": MDE,
        "title": "no id here",
        "lastUpdateDateTime": ts(t(10, 2)),
    });
    let sim = start_sim(vec![sim_tenant(
        AZ_A,
        APP_A,
        SECRET_A,
        vec![
            alert("da-good-1", t(10, 0), MDE, AZ_A),
            bad_title.clone(),
            alert("da-good-2", t(10, 3), MDE, AZ_A),
            no_id.clone(),
        ],
    )])
    .await;
    // Pages of 2, so malformed items sit on two different pages.
    let client = graph_client(&sim, 2, vec![cred_a()]);
    let items = client
        .fetch(&tenant("tenant-a", AZ_A), Product::Mde, t(9, 0))
        .await
        .unwrap();
    assert_eq!(sim.stats().graph_alert_requests, 2);
    assert_eq!(items.len(), 4, "{items:?}");

    let mut good = Vec::new();
    let mut bad = Vec::new();
    for i in &items {
        match i {
            FetchedItem::Alert(a) => good.push(a.id.clone()),
            FetchedItem::Malformed { raw, reason } => bad.push((raw.clone(), reason.clone())),
        }
    }
    assert_eq!(good, ["da-good-1", "da-good-2"]);
    assert_eq!(bad.len(), 2);

    // Wrong type on a known field: malformed, the raw text is exactly the served item.
    let (raw, reason) = &bad[0];
    assert_eq!(serde_json::from_str::<Value>(raw).unwrap(), bad_title);
    assert!(raw.contains(r#""title":7"#), "{raw}");
    assert!(reason.contains("da-bad-title"), "{reason}");
    assert!(reason.contains("invalid type"), "{reason}");

    let (raw, reason) = &bad[1];
    assert_eq!(serde_json::from_str::<Value>(raw).unwrap(), no_id);
    assert_eq!(reason, "alert has no string `id`");
}

fn two_tenants() -> Vec<mss_sim::SimTenant> {
    vec![
        sim_tenant(
            AZ_A,
            APP_A,
            SECRET_A,
            vec![alert("da-a1", t(10, 0), MDE, AZ_A)],
        ),
        sim_tenant(
            AZ_B,
            APP_B,
            SECRET_B,
            vec![
                alert("da-b1", t(10, 0), MDE, AZ_B),
                alert("da-b2", t(10, 1), MDE, AZ_B),
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_is_fetched_with_its_own_credential() {
    let sim = start_sim(two_tenants()).await;
    let (ta, tb) = (tenant("tenant-a", AZ_A), tenant("tenant-b", AZ_B));
    let both = graph_client(&sim, 10, vec![cred_a(), cred_b()]);
    let a = both.fetch(&ta, Product::Mde, t(9, 0)).await.unwrap();
    let b = both.fetch(&tb, Product::Mde, t(9, 0)).await.unwrap();
    assert_eq!(alert_ids(&a), ["da-a1"]);
    assert_eq!(alert_ids(&b), ["da-b1", "da-b2"]);
    assert_eq!(sim.stats().entra_tokens, 2);

    // The credential's Azure tenant id is compared case-insensitively with the config.
    let upper = graph_client(
        &sim,
        10,
        vec![cred("tenant-a", &AZ_A.to_uppercase(), APP_A, SECRET_A)],
    );
    let a = upper.fetch(&ta, Product::Mde, t(9, 0)).await.unwrap();
    assert_eq!(alert_ids(&a), ["da-a1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_never_serves_another_tenant() {
    let sim = start_sim(two_tenants()).await;
    let (ta, tb) = (tenant("tenant-a", AZ_A), tenant("tenant-b", AZ_B));

    // Only A's credential: B cannot be fetched, and nothing is even asked of Entra.
    let only_a = graph_client(&sim, 10, vec![cred_a()]);
    let err = only_a
        .fetch(&tb, Product::Mde, t(9, 0))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "tenant tenant-b: no Azure app credential is configured"
    );

    // A credential filed under tenant-a that really belongs to B's Azure tenant (and would
    // work there) is refused for tenant-a before any token is requested.
    let crossed = graph_client(&sim, 10, vec![cred("tenant-a", AZ_B, APP_B, SECRET_B)]);
    let err = crossed
        .fetch(&ta, Product::Mde, t(9, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("tenant tenant-a: "), "{err}");
    assert!(err.contains("belongs to another Azure tenant"), "{err}");

    let s = sim.stats();
    assert_eq!(s.entra_tokens, 0, "{s:?}");
    assert_eq!(s.graph_alert_requests, 0, "{s:?}");

    // The same tenant id asked through a config naming B's Azure tenant is refused too.
    let forged = tenant("tenant-a", AZ_B);
    let err = only_a
        .fetch(&forged, Product::Mde, t(9, 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to another Azure tenant"), "{err}");
    assert_eq!(sim.stats().entra_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gives_a_clear_error_without_the_secret() {
    let sim = start_sim(two_tenants()).await;
    let wrong = "wrong-SECRET-value-7f3a9c";
    let client = graph_client(&sim, 10, vec![cred("tenant-a", AZ_A, APP_A, wrong)]);
    let err = client
        .fetch(&tenant("tenant-a", AZ_A), Product::Mde, t(9, 0))
        .await
        .unwrap_err();
    for text in [err.to_string(), format!("{err:#}"), format!("{err:?}")] {
        assert!(!text.contains(wrong), "secret leaked: {text}");
        assert!(!text.contains(SECRET_A), "real secret leaked: {text}");
    }
    let text = err.to_string();
    assert!(
        text.starts_with("tenant tenant-a: token request failed"),
        "{text}"
    );
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(text.contains("Invalid client secret"), "{text}");
    let s = sim.stats();
    assert_eq!(s.graph_alert_requests, 0, "{s:?}");
    // A refused secret is not retried.
    assert_eq!(s.entra_tokens, 1, "{s:?}");

    // Debug output of the credential never shows the secret either.
    let dbg = format!("{:?}", cred("tenant-a", AZ_A, APP_A, wrong));
    assert!(!dbg.contains(wrong), "{dbg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_at_construction() {
    let sim = start_sim(two_tenants()).await;
    let plain_graph = sim.graph_base().replacen("https://", "http://", 1);
    let plain_authority = sim.authority_host().replacen("https://", "http://", 1);

    let err = GraphClient::new(
        GraphConfig {
            graph_base: plain_graph.clone(),
            ..graph_config(&sim, 10)
        },
        vec![cred_a()],
    )
    .err()
    .expect("http graph_base refused")
    .to_string();
    assert!(err.starts_with("graph_base: "), "{err}");
    assert!(err.contains("must use https://"), "{err}");

    let err = GraphClient::new(
        GraphConfig {
            authority_host: plain_authority,
            ..graph_config(&sim, 10)
        },
        vec![cred_a()],
    )
    .err()
    .expect("http authority_host refused")
    .to_string();
    assert!(err.starts_with("authority_host: "), "{err}");
    assert!(err.contains("must use https://"), "{err}");

    assert_eq!(sim.stats().entra_tokens, 0);
}
