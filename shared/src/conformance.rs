//! One conformance suite for every `Store` (and `Queue`) implementation: the same test code
//! runs against SQLite and against DynamoDB (moto), so the two backends cannot drift apart.
//! Each check panics with a message naming the broken promise.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::json;

use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{Decision, DecisionKind};
use crate::domain::severity::Severity;
use crate::domain::tenant::Tenant;
use crate::messages::{AlertRef, QueueName};
use crate::ports::{ApplyClaim, CursorDocKey, IncidentRecord, NewDecision, Queue, Store};

fn t0() -> DateTime<Utc> {
    "2026-11-02T00:00:00Z".parse().expect("fixed time")
}

fn tenant(id: &str) -> Tenant {
    Tenant::from_toml(&format!(
        "id = \"{id}\"\nname = \"テスト\"\nazure_tenant_id = \"11111111-2222-3333-4444-555555555555\"\nproducts = [\"mdi\"]\n[mdi]\n"
    ))
    .expect("test tenant")
}

fn alert(id: &str, at: DateTime<Utc>, title: &str) -> Alert {
    Alert::from_value(
        json!({"id": id, "lastUpdateDateTime": at.to_rfc3339(), "title": title,
        "serviceSource": "microsoftDefenderForIdentity", "severity": "high"}),
    )
    .expect("test alert")
}

fn decision(kind: DecisionKind, reason: &str) -> Decision {
    Decision {
        kind,
        product: Some(Product::Mdi),
        reason: reason.into(),
        tenant_mismatch: false,
    }
}

/// Runs every store check. `ns` keeps runs apart on a shared backend (tenant ids carry it).
pub async fn store_suite(store: Arc<dyn Store>, ns: &str) {
    tenants(&*store, ns).await;
    alert_versions(&*store, ns).await;
    cursors(&*store, ns).await;
    decisions(&*store, ns).await;
    batches(&*store, ns).await;
    incidents(&*store, ns).await;
    races(store.clone(), ns).await;
    once(&*store, ns).await;
    docs(&*store, ns).await;
    budgets(store.clone(), ns).await;
    recent(&*store, ns).await;
    purge(&*store, ns).await;
}

/// `n` characters of CJK text that barely compresses (so stored sizes stay near real ones).
fn incompressible(n: usize, seed: u32) -> String {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from_u32(0x4E00 + (x >> 8) % 0x5000).unwrap_or('長')
        })
        .collect()
}

async fn docs(s: &dyn Store, ns: &str) {
    let (a, b) = (format!("{ns}-a"), format!("{ns}-b"));
    assert!(s
        .get_doc(&a, "report", "incident:1")
        .await
        .unwrap()
        .is_none());
    assert!(s.list_docs(&a, "report").await.unwrap().is_empty());
    for k in ["incident:2", "incident:10", "incident:1"] {
        s.put_doc(&a, "report", k, &format!("{{\"key\": \"{k}\"}}"))
            .await
            .unwrap();
    }
    s.put_doc(&a, "report", "incident:1", r#"{"title": "調査報告 v2"}"#)
        .await
        .unwrap();
    assert_eq!(
        s.get_doc(&a, "report", "incident:1")
            .await
            .unwrap()
            .as_deref(),
        Some(r#"{"title": "調査報告 v2"}"#),
        "put overwrites"
    );
    // Kinds are separate, also one that extends another's name.
    s.put_doc(&a, "user", "incident:1", "{}").await.unwrap();
    s.put_doc(&a, "report#old", "x", "{}").await.unwrap();
    let keys: Vec<String> = s
        .list_docs(&a, "report")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec!["incident:1", "incident:10", "incident:2"],
        "list_docs: one kind, each key once, sorted"
    );
    assert!(
        s.get_doc(&b, "report", "incident:1")
            .await
            .unwrap()
            .is_none(),
        "documents are per tenant"
    );
    assert!(s.list_docs(&b, "report").await.unwrap().is_empty());
    s.put_doc(&b, "report", "incident:1", "{\"b\": 1}")
        .await
        .unwrap();
    assert_eq!(
        s.get_doc(&a, "report", "incident:1")
            .await
            .unwrap()
            .as_deref(),
        Some(r#"{"title": "調査報告 v2"}"#),
        "another tenant's put leaves this one's document alone"
    );
    // Large documents (≈100 KB each), more than one query page (1 MB) of them in total.
    let big: Vec<(String, String)> = (0..16)
        .map(|i| {
            let body = serde_json::to_string(&json!({ "n": i, "text": incompressible(35_000, i) }))
                .expect("json");
            (format!("big{i:02}"), body)
        })
        .collect();
    for (k, body) in big.iter().rev() {
        s.put_doc(&a, "big", k, body).await.unwrap();
    }
    assert_eq!(
        s.list_docs(&a, "big").await.unwrap(),
        big,
        "every large document, every page, sorted"
    );
    assert_eq!(
        s.get_doc(&a, "big", "big07").await.unwrap().as_deref(),
        Some(big[7].1.as_str())
    );
}

async fn budgets(s: Arc<dyn Store>, ns: &str) {
    let (a, b) = (format!("{ns}-a"), format!("{ns}-b"));
    let exp = Utc::now() + Duration::hours(1);
    let w = "hunt-m-202611250104";
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(s.take_budget(&a, w, 3, exp).await.unwrap());
    }
    assert_eq!(got, vec![true, true, true, false], "limit 3: three units");
    assert!(!s.take_budget(&a, w, 3, exp).await.unwrap(), "still spent");
    assert!(
        s.take_budget(&a, "hunt-m-202611250105", 3, exp)
            .await
            .unwrap(),
        "windows are separate"
    );
    assert!(
        s.take_budget(&b, w, 3, exp).await.unwrap(),
        "budgets are per tenant"
    );
    assert!(
        !s.take_budget(&a, "hunt-zero", 0, exp).await.unwrap(),
        "limit 0: nothing to take"
    );
    assert!(s.take_budget(&a, "hunt-zero", 1, exp).await.unwrap());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = s.clone();
        let a = a.clone();
        set.spawn(async move { s.take_budget(&a, "hunt-race", 5, exp).await.unwrap() });
    }
    let mut taken = 0;
    while let Some(r) = set.join_next().await {
        taken += r.unwrap() as u32;
    }
    assert_eq!(
        taken, 5,
        "20 concurrent takers of 5 units: exactly 5 succeed"
    );
}

fn alert_of(id: &str, at: DateTime<Utc>, title: &str, source: &str) -> Alert {
    Alert::from_value(json!({"id": id, "lastUpdateDateTime": at.to_rfc3339(),
        "title": title, "serviceSource": source, "severity": "medium"}))
    .expect("test alert")
}

async fn recent(s: &dyn Store, ns: &str) {
    // Relative to now and spanning months, as related-detection lookups do.
    let since: DateTime<Utc> = Utc::now()
        .duration_trunc(Duration::seconds(1))
        .expect("truncate")
        - Duration::days(45);
    let (a, b) = (format!("{ns}-r"), format!("{ns}-rb"));
    let mdi = "microsoftDefenderForIdentity";
    let d = Duration::days;
    let (ta, tb) = (a.as_str(), b.as_str());
    let puts = [
        (ta, Product::Mdi, alert_of("r1", since + d(1), "r1 v1", mdi)),
        (
            ta,
            Product::Mdi,
            alert_of("r1", since + d(44), "r1 v3", mdi),
        ),
        (
            ta,
            Product::Mdi,
            alert_of("r1", since + d(30), "r1 v2", mdi),
        ),
        (
            ta,
            Product::Mdi,
            alert_of("r2", since - d(1), "too old", mdi),
        ),
        (ta, Product::Mdi, alert_of("r3", since - d(2), "r3 v1", mdi)),
        (
            ta,
            Product::Mdi,
            alert_of("r3", since + d(10), "r3 v2", mdi),
        ),
        (
            ta,
            Product::Mde,
            alert_of("r7", since + d(20), "r7", "microsoftDefenderForEndpoint"),
        ),
        (
            ta,
            Product::Mde,
            alert_of("r4", since + d(20), "r4", "microsoftDefenderForEndpoint"),
        ),
        (ta, Product::Mdi, alert_of("r5", since, "at since", mdi)),
        (
            tb,
            Product::Mdi,
            alert_of("r6", since + d(5), "other tenant", mdi),
        ),
        (
            tb,
            Product::Mdi,
            alert_of("r1", since + d(45), "other tenant r1", mdi),
        ),
    ];
    for (t, p, al) in &puts {
        s.put_alert_version(t, *p, al).await.unwrap();
    }
    let got: Vec<(Product, String, String)> = s
        .recent_alerts(&a, since)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, al)| (p, al.id.clone(), al.title().to_string()))
        .collect();
    let want: Vec<(Product, String, String)> = [
        (Product::Mdi, "r1", "r1 v3"),
        (Product::Mde, "r4", "r4"),
        (Product::Mde, "r7", "r7"),
        (Product::Mdi, "r3", "r3 v2"),
        (Product::Mdi, "r5", "at since"),
    ]
    .into_iter()
    .map(|(p, i, t)| (p, i.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        got, want,
        "recent_alerts: newest version of each alert since, with product, newest first, this tenant only"
    );
    assert!(
        s.recent_alerts(&a, since + d(50)).await.unwrap().is_empty(),
        "nothing newer than the newest"
    );
    assert!(s
        .recent_alerts(&format!("{ns}-rz"), since)
        .await
        .unwrap()
        .is_empty());

    // scan_alerts: the newest version before `to`, whose time is at or after `from`.
    let scan = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let a = a.clone();
        async move {
            let mut got = Vec::new();
            s.scan_alerts(&a, from, to, &mut |p, al| {
                got.push((p, al.id.clone(), al.title().to_string()));
                Ok(())
            })
            .await
            .unwrap();
            got.sort_by(|x, y| x.1.cmp(&y.1));
            got
        }
    };
    let named = |v: &[(Product, &str, &str)]| -> Vec<(Product, String, String)> {
        v.iter()
            .map(|(p, i, t)| (*p, i.to_string(), t.to_string()))
            .collect()
    };
    assert_eq!(
        scan(since, since + d(31)).await,
        named(&[
            (Product::Mdi, "r1", "r1 v2"),
            (Product::Mdi, "r3", "r3 v2"),
            (Product::Mde, "r4", "r4"),
            (Product::Mdi, "r5", "at since"),
            (Product::Mde, "r7", "r7"),
        ]),
        "scan_alerts: the state as of `to`, not later versions"
    );
    assert_eq!(
        scan(since + d(11), since + d(31)).await,
        named(&[
            (Product::Mdi, "r1", "r1 v2"),
            (Product::Mde, "r4", "r4"),
            (Product::Mde, "r7", "r7"),
        ]),
        "scan_alerts: an alert whose state at `to` is older than `from` is left out"
    );
    let mut n = 0;
    let err = s
        .scan_alerts(&a, since, since + d(31), &mut |_, _| {
            n += 1;
            anyhow::bail!("stop here")
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stop here"));
    assert_eq!(n, 1, "an error from the callback stops the scan");
}

async fn once(s: &dyn Store, ns: &str) {
    use crate::ports::OnceState::*;
    let t = format!("{ns}-a");
    assert_eq!(s.once_begin(&t, "inquiry:SRQ1:remind").await.unwrap(), New);
    assert_eq!(
        s.once_begin(&t, "inquiry:SRQ1:remind").await.unwrap(),
        Pending
    );
    s.once_finish(&t, "inquiry:SRQ1:remind").await.unwrap();
    assert_eq!(s.once_begin(&t, "inquiry:SRQ1:remind").await.unwrap(), Done);
    assert_eq!(
        s.once_begin(&format!("{ns}-b"), "inquiry:SRQ1:remind")
            .await
            .unwrap(),
        New,
        "per tenant"
    );
}

async fn tenants(s: &dyn Store, ns: &str) {
    let a = tenant(&format!("{ns}-a"));
    let b = tenant(&format!("{ns}-b"));
    s.put_tenant(&a).await.unwrap();
    s.put_tenant(&b).await.unwrap();
    s.put_tenant(&a).await.unwrap();
    let got = s.get_tenant(&a.id).await.unwrap().expect("tenant stored");
    assert_eq!(got.source.name, "テスト");
    assert!(s.get_tenant(&format!("{ns}-zz")).await.unwrap().is_none());
    let ids: Vec<String> = s
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .filter(|i| i.starts_with(ns))
        .collect();
    assert_eq!(ids, vec![a.id, b.id], "list_tenants: each once, sorted");
}

async fn alert_versions(s: &dyn Store, ns: &str) {
    let t = format!("{ns}-a");
    let v1 = alert("aa1", t0(), "初版 <b>");
    let v2 = alert("aa1", t0() + Duration::milliseconds(1), "第二版");
    assert!(
        s.put_alert_version(&t, Product::Mdi, &v1).await.unwrap(),
        "first put stores it"
    );
    assert!(
        !s.put_alert_version(&t, Product::Mdi, &v1).await.unwrap(),
        "stored before: nothing new"
    );
    assert!(
        s.put_alert_version(&t, Product::Mdi, &v2).await.unwrap(),
        "a millisecond later is a new version"
    );
    let got = s
        .get_alert_version(&t, "aa1", v1.last_update)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.raw, v1.raw, "the raw body round-trips exactly");
    assert_eq!(got.title(), "初版 <b>");
    assert!(s
        .get_alert_version(&t, "aa1", t0() + Duration::seconds(5))
        .await
        .unwrap()
        .is_none());
    // Tenant-scoped: the other tenant does not see it.
    assert!(s
        .get_alert_version(&format!("{ns}-b"), "aa1", v1.last_update)
        .await
        .unwrap()
        .is_none());
    // A large, incompressible body (≈1 MB of text) still round-trips (DynamoDB: via S3).
    let mut x: u32 = 12345;
    let text: String = (0..350_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from_u32(0x4E00 + (x >> 8) % 0x5000).unwrap_or('長')
        })
        .collect();
    let big = alert("aa-big", t0(), &text);
    s.put_alert_version(&t, Product::Mdi, &big).await.unwrap();
    let got = s
        .get_alert_version(&t, "aa-big", t0())
        .await
        .unwrap()
        .expect("big stored");
    assert_eq!(got.title().chars().count(), 350_000);
    assert_eq!(
        s.list_alert_ids(&t).await.unwrap(),
        vec!["aa-big".to_string(), "aa1".to_string()]
    );
    s.record_malformed(&t, Product::Mdi, "{\"id\": 5}", "no id", t0())
        .await
        .unwrap();
    s.record_malformed(&t, Product::Mdi, "{\"id\": 5}", "no id", t0())
        .await
        .unwrap();
    s.record_malformed(&t, Product::Mdi, "[]", "not an object", t0())
        .await
        .unwrap();
    assert_eq!(
        s.malformed_count(&t).await.unwrap(),
        2,
        "the same malformed item is kept once"
    );
}

async fn cursors(s: &dyn Store, ns: &str) {
    let t = format!("{ns}-a");
    assert!(s.get_cursor(&t, Product::Mdi).await.unwrap().is_none());
    s.advance_cursor(&t, Product::Mdi, t0()).await.unwrap();
    s.advance_cursor(&t, Product::Mdi, t0() - Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        s.get_cursor(&t, Product::Mdi).await.unwrap(),
        Some(t0()),
        "a cursor never moves back"
    );
    s.advance_cursor(&t, Product::Mdi, t0() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        s.get_cursor(&t, Product::Mdi).await.unwrap(),
        Some(t0() + Duration::minutes(1))
    );
    assert!(
        s.get_cursor(&t, Product::Mde).await.unwrap().is_none(),
        "cursors are per product"
    );

    // The cursor and a document in one read: each as its own read would give it.
    let both = |tenant: String, p: Product| async move {
        s.get_cursor_and_doc(&tenant, p, "ingest-health", p.as_str())
            .await
            .unwrap()
    };
    assert_eq!(
        both(t.clone(), Product::Mdi).await,
        (Some(t0() + Duration::minutes(1)), None)
    );
    s.put_doc(&t, "ingest-health", "mdi", r#"{"consecutive":2}"#)
        .await
        .unwrap();
    s.put_doc(&t, "ingest-health", "mde", r#"{"consecutive":7}"#)
        .await
        .unwrap();
    assert_eq!(
        both(t.clone(), Product::Mdi).await,
        (
            Some(t0() + Duration::minutes(1)),
            Some(r#"{"consecutive":2}"#.to_string())
        )
    );
    assert_eq!(
        both(t.clone(), Product::Mde).await,
        (None, Some(r#"{"consecutive":7}"#.to_string())),
        "a document without a cursor"
    );
    assert_eq!(
        both(format!("{ns}-b"), Product::Mdi).await,
        (None, None),
        "another tenant's cursor and document are not its"
    );

    // Many at once, in the order asked: each as its own read would give it. More than one
    // DynamoDB BatchGetItem's worth (100 keys), and one pair asked twice.
    let tenants: Vec<String> = (0..31).map(|i| format!("{ns}-m{i}")).collect();
    for (i, t) in tenants.iter().enumerate() {
        if i % 3 != 0 {
            s.advance_cursor(t, Product::Mde, t0() + Duration::minutes(i as i64))
                .await
                .unwrap();
        }
        if i % 2 == 0 {
            s.put_doc(
                t,
                "ingest-health",
                "mdi",
                &format!(r#"{{"consecutive":{i}}}"#),
            )
            .await
            .unwrap();
        }
    }
    let mut wanted: Vec<CursorDocKey<'_>> = tenants
        .iter()
        .flat_map(|t| {
            [Product::Mde, Product::Mdi].map(|p| CursorDocKey {
                tenant: t,
                product: p,
                kind: "ingest-health",
                key: p.as_str(),
            })
        })
        .collect();
    wanted.push(wanted[4]);
    wanted.reverse();
    let got = s.get_cursors_and_docs(&wanted).await.unwrap();
    assert_eq!(got.len(), wanted.len(), "one answer per pair asked");
    let mut cursors = 0;
    let mut docs = 0;
    for (w, g) in wanted.iter().zip(&got) {
        assert_eq!(
            g,
            &both(w.tenant.to_string(), w.product).await,
            "{w:?} read together as alone"
        );
        cursors += usize::from(g.0.is_some());
        docs += usize::from(g.1.is_some());
    }
    assert_eq!(
        (cursors, docs),
        (21, 16),
        "the cursors and documents written, and no others"
    );
    assert!(s.get_cursors_and_docs(&[]).await.unwrap().is_empty());
}

async fn decisions(s: &dyn Store, ns: &str) {
    let t = format!("{ns}-a");
    use DecisionKind::*;
    s.put_decision(&t, "aa1", t0(), &decision(Monitored, "m"))
        .await
        .unwrap();
    s.put_decision(
        &t,
        "aa1",
        t0() + Duration::minutes(1),
        &decision(Incident, "i"),
    )
    .await
    .unwrap();
    // An older version processed late, or a lower decision, never replaces a higher one.
    s.put_decision(
        &t,
        "aa1",
        t0() + Duration::minutes(2),
        &decision(Monitored, "late low"),
    )
    .await
    .unwrap();
    let d = s.get_decision(&t, "aa1").await.unwrap().expect("decided");
    assert_eq!((d.kind, d.reason.as_str()), (Incident, "i"));
    s.put_decision(
        &t,
        "aa1",
        t0() + Duration::minutes(3),
        &decision(Incident, "newer"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_decision(&t, "aa1").await.unwrap().unwrap().reason,
        "newer"
    );
    s.put_decision(&t, "aa1", t0(), &decision(Incident, "older"))
        .await
        .unwrap();
    assert_eq!(
        s.get_decision(&t, "aa1").await.unwrap().unwrap().reason,
        "newer",
        "an older version at the same rank does not replace a newer one"
    );
    s.put_decision(&t, "aa2", t0(), &decision(OutOfScope, "o"))
        .await
        .unwrap();
    assert_eq!(
        s.list_decisions(&t).await.unwrap(),
        vec![
            ("aa1".to_string(), Incident),
            ("aa2".to_string(), OutOfScope)
        ]
    );
}

/// The fetch's batched reads and writes: many versions and decisions per call (more than one
/// DynamoDB request's worth of each), the same records the single-item methods make.
async fn batches(s: &dyn Store, ns: &str) {
    use DecisionKind::*;
    let t = format!("{ns}-bt");
    assert!(s.get_decisions(&t, &[]).await.unwrap().is_empty());
    let vs: Vec<Alert> = (0..60)
        .map(|i| {
            alert(
                &format!("b{i:03}"),
                t0() + Duration::seconds(i),
                &format!("版 {i}"),
            )
        })
        .collect();
    let v2 = alert("b000", t0() + Duration::minutes(5), "第二版");
    let big = alert("b-big", t0(), &incompressible(350_000, 99));
    let mut refs: Vec<&Alert> = vs.iter().collect();
    refs.push(&v2);
    refs.push(&big);
    s.put_alert_versions(&t, Product::Mdi, &refs).await.unwrap();
    s.put_alert_versions(&t, Product::Mdi, &refs)
        .await
        .expect("storing the same versions again is harmless");
    s.put_alert_versions(&t, Product::Mdi, &[]).await.unwrap();
    assert_eq!(s.list_alert_ids(&t).await.unwrap().len(), 61);
    for v in [&vs[0], &vs[59], &v2, &big] {
        let got = s
            .get_alert_version(&t, &v.id, v.last_update)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} @ {} stored by the batch", v.id, v.last_update));
        assert_eq!(got.raw, v.raw, "the raw body round-trips exactly");
    }
    assert!(
        !s.put_alert_version(&t, Product::Mdi, &vs[7]).await.unwrap(),
        "a version stored by a batch is stored"
    );
    // The month index and products, as the report reads them: each alert's newest version.
    let mut newest = Vec::new();
    s.scan_alerts(
        &t,
        t0() - Duration::days(1),
        t0() + Duration::days(1),
        &mut |p, a| {
            newest.push((p, a.id.clone(), a.last_update));
            Ok(())
        },
    )
    .await
    .unwrap();
    assert_eq!(newest.len(), 61);
    assert!(newest.contains(&(Product::Mdi, "b000".to_string(), v2.last_update)));

    let kind = |i: i64| [OutOfScope, Monitored, Incident][(i % 3) as usize];
    let first: Vec<NewDecision> = (0..150)
        .map(|i| NewDecision {
            alert_id: format!("b{i:03}"),
            last_update: t0() + Duration::seconds(i),
            decision: decision(kind(i), &format!("理由 {i}")),
        })
        .collect();
    assert_eq!(
        s.put_decisions(&t, &first).await.unwrap(),
        Vec::<String>::new(),
        "nothing stored before: every decision recorded"
    );
    let ask: Vec<String> = (0..160).map(|i| format!("b{i:03}")).collect();
    let got = s.get_decisions(&t, &ask).await.unwrap();
    assert_eq!(got.len(), 150, "the decided ones, none for the others");
    let d = &got["b149"];
    assert_eq!(
        (d.kind, d.product, d.reason.as_str(), d.last_update),
        (
            Incident,
            Some(Product::Mdi),
            "理由 149",
            t0() + Duration::seconds(149)
        )
    );
    assert_eq!(
        got["b000"],
        s.get_decision(&t, "b000").await.unwrap().unwrap()
    );
    assert!(
        s.get_decisions(&format!("{ns}-other"), &ask)
            .await
            .unwrap()
            .is_empty(),
        "decisions are per tenant"
    );

    // Refused where the stored decision is higher, or for a newer version; taken otherwise.
    let at = |secs: i64| t0() + Duration::seconds(secs);
    let second = [
        (0, Monitored, at(60)),  // stored out_of_scope@0: higher and newer → taken
        (1, Monitored, at(0)),   // stored monitored@1: an older version → refused
        (2, Monitored, at(60)),  // stored incident@2: lower → refused
        (3, Incident, at(3)),    // stored out_of_scope@3: same version, higher → taken
        (4, Incident, at(0)),    // stored monitored@4: higher but older → refused
        (5, Incident, at(5)),    // stored incident@5: the same again → taken
        (155, Monitored, at(1)), // nothing stored → taken
    ];
    let batch: Vec<NewDecision> = second
        .iter()
        .map(|(i, k, lu)| NewDecision {
            alert_id: format!("b{i:03}"),
            last_update: *lu,
            decision: decision(*k, "second"),
        })
        .collect();
    let mut refused = s.put_decisions(&t, &batch).await.unwrap();
    refused.sort();
    assert_eq!(refused, vec!["b001", "b002", "b004"]);
    let got = s.get_decisions(&t, &ask).await.unwrap();
    let now = |i: usize| {
        let d = &got[&format!("b{i:03}")];
        (d.kind, d.last_update, d.reason == "second")
    };
    assert_eq!(now(0), (Monitored, at(60), true));
    assert_eq!(now(1), (Monitored, at(1), false));
    assert_eq!(now(2), (Incident, at(2), false));
    assert_eq!(now(3), (Incident, at(3), true));
    assert_eq!(now(4), (Monitored, at(4), false));
    assert_eq!(now(5), (Incident, at(5), true));
    assert_eq!(now(155), (Monitored, at(1), true));
    let mut twice = batch[0].clone();
    twice.decision.kind = Incident;
    twice.last_update = at(90);
    assert!(
        s.put_decisions(&t, &[batch[0].clone(), twice])
            .await
            .is_err(),
        "one alert twice in a batch is an error (one decision per alert)"
    );
    assert_eq!(
        s.get_decision(&t, "b000")
            .await
            .unwrap()
            .unwrap()
            .last_update,
        at(60),
        "and nothing of that batch is recorded"
    );
    // The single-item rule (reruns, backfill) still lets a higher kind replace a newer
    // version's record.
    s.put_decision(&t, "b004", at(0), &decision(Incident, "rerun"))
        .await
        .unwrap();
    assert_eq!(
        s.get_decision(&t, "b004").await.unwrap().unwrap().kind,
        Incident
    );
}

/// Writers racing on one alert's decision through the fetch's batched write: every record
/// taken dominates the ones taken before it, so the final one dominates them all — nothing
/// was ever lowered or moved back to an older version.
///
/// Not part of `store_suite`: it needs a backend whose conditional batch is isolated from
/// concurrent writers, as SQLite's transaction and DynamoDB's TransactWriteItems are, but
/// moto's is not (a cancelled transaction puts back a copy of the whole table taken when it
/// began, undoing what other requests wrote meanwhile), so the DynamoDB run cannot use moto.
pub async fn decision_race_suite(s: Arc<dyn Store>, ns: &str) {
    use DecisionKind::*;
    let t = format!("{ns}-dr");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..12i64 {
        let s = s.clone();
        let t = t.clone();
        set.spawn(async move {
            let kind = [Incident, Monitored, OutOfScope][(i % 3) as usize];
            let rec = NewDecision {
                alert_id: "race".into(),
                last_update: t0() + Duration::seconds((i * 7) % 5),
                decision: decision(kind, &format!("writer {i}")),
            };
            let refused = s
                .put_decisions(&t, std::slice::from_ref(&rec))
                .await
                .unwrap();
            (rec, refused.is_empty())
        });
    }
    let mut taken = Vec::new();
    while let Some(r) = set.join_next().await {
        let (rec, ok) = r.unwrap();
        if ok {
            taken.push(rec);
        }
    }
    assert!(!taken.is_empty(), "the first writer at least is taken");
    let fin = s.get_decision(&t, "race").await.unwrap().expect("decided");
    for r in &taken {
        assert!(
            fin.kind >= r.decision.kind && fin.last_update >= r.last_update,
            "{r:?} was taken, yet the final record {fin:?} is below it"
        );
    }
    assert!(
        taken
            .iter()
            .any(|r| r.decision.reason == fin.reason && r.last_update == fin.last_update),
        "the final record is one of those taken"
    );
}

fn intent(tenant: &str, key: &str, alert: &str) -> IncidentRecord {
    IncidentRecord {
        tenant: tenant.into(),
        key: key.into(),
        ticket_id: None,
        creator_alert: alert.into(),
        creator_version: t0(),
        severity: Severity::Medium,
        intent_at: Utc::now(),
    }
}

/// `begin_apply` with a 30 s lease.
async fn claim(
    s: &dyn Store,
    t: &str,
    key: &str,
    id: &str,
    v: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ApplyClaim {
    let lease = std::time::Duration::from_secs(30);
    s.begin_apply(t, key, id, v, now, lease).await.unwrap()
}

async fn incidents(s: &dyn Store, ns: &str) {
    let t = format!("{ns}-a");
    assert!(s.get_incident(&t, "incident:1").await.unwrap().is_none());
    assert!(s
        .create_incident_intent(&intent(&t, "incident:1", "aa1"))
        .await
        .unwrap());
    assert!(
        !s.create_incident_intent(&intent(&t, "incident:1", "aa2"))
            .await
            .unwrap(),
        "create-once"
    );
    let r = s.get_incident(&t, "incident:1").await.unwrap().unwrap();
    assert_eq!((r.creator_alert.as_str(), r.ticket_id), ("aa1", None));
    s.set_incident_ticket(&t, "incident:1", "INC0000000001")
        .await
        .unwrap();
    s.set_incident_ticket(&t, "incident:1", "INC0000000001")
        .await
        .unwrap();
    assert!(
        s.set_incident_ticket(&t, "incident:1", "INC0000000002")
            .await
            .is_err(),
        "a ticket id is never replaced"
    );
    assert!(
        s.set_incident_ticket(&t, "incident:9", "INC0000000003")
            .await
            .is_err(),
        "no ticket without an intent"
    );
    s.set_incident_severity(&t, "incident:1", Severity::High)
        .await
        .unwrap();
    let r = s.get_incident(&t, "incident:1").await.unwrap().unwrap();
    assert_eq!(
        (r.ticket_id.as_deref(), r.severity),
        (Some("INC0000000001"), Severity::High)
    );

    let now = t0() + Duration::hours(1);
    assert_eq!(
        claim(s, &t, "incident:1", "aa1", t0(), now).await,
        ApplyClaim::New
    );
    assert_eq!(
        claim(
            s,
            &t,
            "incident:1",
            "aa1",
            t0(),
            now + Duration::seconds(29)
        )
        .await,
        ApplyClaim::Held,
        "a claim is held for its lease"
    );
    assert_eq!(
        claim(
            s,
            &t,
            "incident:1",
            "aa1",
            t0(),
            now + Duration::seconds(31)
        )
        .await,
        ApplyClaim::TakenOver,
        "an abandoned claim may be taken over"
    );
    assert_eq!(
        claim(
            s,
            &t,
            "incident:1",
            "aa1",
            t0(),
            now + Duration::seconds(32)
        )
        .await,
        ApplyClaim::Held,
        "taking over renews the lease"
    );
    assert_eq!(
        claim(s, &t, "incident:1", "aa2", t0() + Duration::minutes(1), now).await,
        ApplyClaim::New
    );
    // A key that is a prefix of another must not see the other's records.
    assert!(s
        .create_incident_intent(&intent(&t, "incident:12", "aa3"))
        .await
        .unwrap());
    assert_eq!(
        claim(s, &t, "incident:12", "aa3", t0(), now).await,
        ApplyClaim::New
    );
    s.finish_apply(&t, "incident:1", "aa1", t0()).await.unwrap();
    assert_eq!(
        claim(s, &t, "incident:1", "aa1", t0(), now + Duration::hours(1)).await,
        ApplyClaim::Held,
        "a finished version is never taken over"
    );
    let v = s.applied_versions(&t, "incident:1").await.unwrap();
    let got: Vec<(&str, bool)> = v.iter().map(|a| (a.alert_id.as_str(), a.done)).collect();
    assert_eq!(got, vec![("aa1", true), ("aa2", false)]);
    let list = s.list_incidents(&t).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].key, "incident:1");
    assert_eq!(
        list[0].alert_ids,
        vec!["aa1".to_string(), "aa2".to_string()]
    );
    assert_eq!(list[0].ticket_id.as_deref(), Some("INC0000000001"));
    assert!(
        s.get_incident(&format!("{ns}-b"), "incident:1")
            .await
            .unwrap()
            .is_none(),
        "incidents are per tenant"
    );
}

/// Many writers at once on the same create-once records: exactly one wins each.
async fn races(s: Arc<dyn Store>, ns: &str) {
    let t = format!("{ns}-a");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = s.clone();
        let t = t.clone();
        set.spawn(async move {
            let a = s
                .create_incident_intent(&intent(&t, "incident:race", &format!("aa{i}")))
                .await
                .unwrap();
            let b = s
                .begin_apply(
                    &t,
                    "incident:race",
                    "aa1",
                    t0(),
                    t0(),
                    std::time::Duration::from_secs(30),
                )
                .await
                .unwrap()
                == ApplyClaim::New;
            let v = alert("aa-race", t0(), "race");
            let c = s.put_alert_version(&t, Product::Mdi, &v).await.unwrap();
            (a, b, c)
        });
    }
    let mut wins = (0, 0, 0);
    while let Some(r) = set.join_next().await {
        let (a, b, c) = r.unwrap();
        wins.0 += a as u32;
        wins.1 += b as u32;
        wins.2 += c as u32;
    }
    // Concurrent stores of one alert version: one record, and one writer told it stored it.
    assert_eq!(
        wins,
        (1, 1, 1),
        "exactly one writer wins each create-once record"
    );
    assert_eq!(
        s.list_alert_ids(&t)
            .await
            .unwrap()
            .iter()
            .filter(|i| *i == "aa-race")
            .count(),
        1
    );
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = s.clone();
        let t = t.clone();
        set.spawn(async move {
            s.set_incident_ticket(&t, "incident:race", &format!("INC000000010{i}"))
                .await
                .is_ok()
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        ok += r.unwrap() as u32;
    }
    assert_eq!(ok, 1, "exactly one ticket id is recorded for an incident");
}

/// Queue semantics the steps rely on: batches, at-least-once, release, dead letters.
/// `max_receive` is the backend's maxReceiveCount; the queue's retry delay must be short.
pub async fn queue_suite(q: Arc<dyn Queue>, ns: &str, max_receive: u32) {
    let msgs: Vec<AlertRef> = (0..25)
        .map(|i| AlertRef::new(&format!("{ns}-a"), &format!("aa{i}"), t0()))
        .collect();
    q.send_batch(QueueName::Classify, &msgs).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = q.receive(QueueName::Classify, 10).await.unwrap();
        assert!(batch.len() <= 10);
        if batch.is_empty() && got.len() == 25 {
            break;
        }
        for m in batch {
            got.push(AlertRef::from_json(&m.body).unwrap());
            q.ack(QueueName::Classify, &m.handle).await.unwrap();
        }
    }
    got.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    let mut want = msgs.clone();
    want.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    assert_eq!(got, want, "every message arrives, once acked it is gone");
    assert_eq!(q.depth(QueueName::Classify).await.unwrap().0, 0);

    // A message that keeps failing ends in the dead-letter queue, not in a loop.
    q.send_batch(
        QueueName::Ticket,
        &[AlertRef::new(&format!("{ns}-a"), "poison", t0())],
    )
    .await
    .unwrap();
    let mut receives = 0;
    for _ in 0..200 {
        let batch = q.receive(QueueName::Ticket, 10).await.unwrap();
        for m in &batch {
            receives += 1;
            assert_eq!(m.receive_count, receives, "receive count grows");
            q.nack(QueueName::Ticket, &m.handle, "boom").await.unwrap();
        }
        let (live, dead) = q.depth(QueueName::Ticket).await.unwrap();
        if dead == 1 && live == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(receives, max_receive, "received maxReceiveCount times");
    assert_eq!(
        q.depth(QueueName::Ticket).await.unwrap(),
        (0, 1),
        "then dead-lettered"
    );
    let dead = q.dead_letters(QueueName::Ticket, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].body.contains("poison"));
    // An operator redrives it: back on the queue, the DLQ empty, nothing lost.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(q.redrive(QueueName::Ticket).await.unwrap(), 1);
    assert_eq!(
        q.depth(QueueName::Ticket).await.unwrap(),
        (1, 0),
        "redriven"
    );
    assert_eq!(q.redrive(QueueName::Ticket).await.unwrap(), 0);
    let back = q.receive(QueueName::Ticket, 10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert!(back[0].body.contains("poison"));
}

/// Everything a tenant can have in a store, written through the `Store` API. `big` adds an
/// incompressible ≈1 MB alert body (DynamoDB keeps it in S3).
async fn populate(s: &dyn Store, t: &str, big: bool) {
    s.put_tenant(&tenant(t)).await.unwrap();
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    // Two months of the month index, and a recent version for recent_alerts.
    let v1 = alert("pa1", t0() - Duration::days(20), "先月の版");
    let v2 = alert("pa1", now - Duration::minutes(5), "最新の版");
    let v3 = alert("pa2", t0(), "別のアラート");
    s.put_alert_versions(t, Product::Mdi, &[&v1, &v2, &v3])
        .await
        .unwrap();
    if big {
        let big = alert("pa-big", t0(), &incompressible(350_000, 777));
        s.put_alert_version(t, Product::Mdi, &big).await.unwrap();
    }
    s.record_malformed(t, Product::Mdi, "{\"id\": 7}", "no id", t0())
        .await
        .unwrap();
    s.advance_cursor(t, Product::Mdi, t0()).await.unwrap();
    s.put_decision(
        t,
        "pa1",
        v2.last_update,
        &decision(DecisionKind::Incident, "MDI"),
    )
    .await
    .unwrap();
    s.create_incident_intent(&intent(t, "incident:9", "pa1"))
        .await
        .unwrap();
    s.set_incident_ticket(t, "incident:9", "INC0009")
        .await
        .unwrap();
    s.begin_apply(
        t,
        "incident:9",
        "pa1",
        v2.last_update,
        v2.last_update,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    s.finish_apply(t, "incident:9", "pa1", v2.last_update)
        .await
        .unwrap();
    s.once_begin(t, "inquiry:SRQ9:remind").await.unwrap();
    s.once_finish(t, "inquiry:SRQ9:remind").await.unwrap();
    s.create_action(&crate::ports::ActionRecord {
        tenant: t.into(),
        key: "incident:9|isolate|dev-1".into(),
        incident_key: "incident:9".into(),
        kind: crate::domain::response::ActionKind::Isolate,
        target: "dev-1".into(),
        status: crate::ports::ActionStatus::Succeeded,
        reason: "テスト".into(),
        machine_action_id: Some("ma-1".into()),
        created_at: t0(),
        updated_at: t0(),
        approved_by: None,
    })
    .await
    .unwrap();
    s.put_doc(t, "report", "incident:9", "{\"title\": \"調査報告\"}")
        .await
        .unwrap();
    s.put_doc(t, "user", "u-1", "{}").await.unwrap();
    assert!(s
        .take_budget(t, "hunt-h-purge", 1, Utc::now() + Duration::hours(1))
        .await
        .unwrap());
}

/// What the store shows of a tenant, through every read of the `Store` API, as text (the
/// raw alert bodies included), so two snapshots compare byte for byte.
async fn snapshot(s: &dyn Store, t: &str) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
    line(
        "tenant",
        match s.get_tenant(t).await.unwrap() {
            Some(x) => serde_json::to_string(&x.source).unwrap(),
            None => "-".into(),
        },
    );
    line(
        "listed",
        s.list_tenants()
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == t)
            .to_string(),
    );
    let ids = s.list_alert_ids(t).await.unwrap();
    line("alert_ids", format!("{ids:?}"));
    let mut versions = Vec::new();
    s.scan_alerts(
        t,
        t0() - Duration::days(400),
        Utc::now() + Duration::days(1),
        &mut |p, a| {
            versions.push((a.id.clone(), a.last_update, p, a.raw.to_string()));
            Ok(())
        },
    )
    .await
    .unwrap();
    versions.sort();
    line("newest_versions", format!("{versions:?}"));
    let mut bodies = Vec::new();
    for (id, at) in [
        ("pa1", t0() - Duration::days(20)),
        ("pa2", t0()),
        ("pa-big", t0()),
    ] {
        bodies.push(
            s.get_alert_version(t, id, at)
                .await
                .unwrap()
                .map(|a| a.raw.to_string()),
        );
    }
    line("bodies", format!("{bodies:?}"));
    let recent: Vec<(String, String)> = s
        .recent_alerts(t, Utc::now() - Duration::hours(1))
        .await
        .unwrap()
        .into_iter()
        .map(|(_, a)| (a.id, a.raw.to_string()))
        .collect();
    line("recent", format!("{recent:?}"));
    line("malformed", s.malformed_count(t).await.unwrap().to_string());
    line(
        "cursor",
        format!("{:?}", s.get_cursor(t, Product::Mdi).await.unwrap()),
    );
    line(
        "decision",
        format!("{:?}", s.get_decision(t, "pa1").await.unwrap()),
    );
    line(
        "decisions",
        format!("{:?}", s.list_decisions(t).await.unwrap()),
    );
    let inc = s.get_incident(t, "incident:9").await.unwrap().map(|mut r| {
        r.intent_at = t0(); // written with the wall clock
        r
    });
    line("incident", format!("{inc:?}"));
    line(
        "incidents",
        format!("{:?}", s.list_incidents(t).await.unwrap()),
    );
    line(
        "applied",
        format!("{:?}", s.applied_versions(t, "incident:9").await.unwrap()),
    );
    line(
        "actions",
        serde_json::to_string(&s.list_actions(t).await.unwrap()).unwrap(),
    );
    for kind in ["report", "user"] {
        line(
            &format!("docs {kind}"),
            format!("{:?}", s.list_docs(t, kind).await.unwrap()),
        );
    }
    out
}

async fn purge(s: &dyn Store, ns: &str) {
    use crate::ports::OnceState;
    // One id is a prefix of the other: nothing may match by prefix.
    let (gone, kept) = (format!("{ns}-purge"), format!("{ns}-purge-2"));
    populate(s, &gone, true).await;
    populate(s, &kept, false).await;
    let kept_before = snapshot(s, &kept).await;
    assert!(kept_before.contains("最新の版") && kept_before.contains("INC0009"));
    assert!(snapshot(s, &gone).await.contains("pa-big"));

    let n = s.purge_tenant(&gone).await.unwrap();
    for (kind, want) in [
        ("tenant", 1),
        ("alert_versions", 4),
        ("malformed", 1),
        ("cursors", 1),
        ("decisions", 1),
        ("incidents", 1),
        ("applied", 1),
        ("once_marks", 1),
        ("actions", 1),
        ("docs", 2),
        ("budgets", 1),
    ] {
        assert_eq!(n.get(kind), want, "purge counts {kind}: {n}");
    }

    // Nothing of the purged tenant is left…
    let empty = snapshot(s, &format!("{ns}-never-stored")).await;
    assert_eq!(
        snapshot(s, &gone).await,
        empty,
        "a purged tenant reads like one never stored"
    );
    assert_eq!(
        s.once_begin(&gone, "inquiry:SRQ9:remind").await.unwrap(),
        OnceState::New,
        "once-markers are gone"
    );
    assert!(
        s.take_budget(&gone, "hunt-h-purge", 1, Utc::now() + Duration::hours(1))
            .await
            .unwrap(),
        "budgets are gone"
    );
    // …and the other tenant is exactly as it was.
    assert_eq!(
        snapshot(s, &kept).await,
        kept_before,
        "purging one tenant changed another"
    );
    assert_eq!(
        s.once_begin(&kept, "inquiry:SRQ9:remind").await.unwrap(),
        OnceState::Done
    );
    assert!(
        !s.take_budget(&kept, "hunt-h-purge", 1, Utc::now() + Duration::hours(1))
            .await
            .unwrap(),
        "the other tenant's budget is still spent"
    );

    // Idempotent; an unknown tenant purges nothing.
    let again = s.purge_tenant(&gone).await.unwrap();
    assert_eq!(again.get("tenant"), 0, "{again}");
    assert_eq!(again.get("alert_versions"), 0, "{again}");
    let none = s.purge_tenant(&format!("{ns}-never-stored")).await.unwrap();
    assert_eq!(none.total(), 0, "{none}");
    assert_eq!(snapshot(s, &kept).await, kept_before);
}
