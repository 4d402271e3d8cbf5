//! The cloud side of `mss tenant purge` on moto (started by `scripts/test.sh`, like
//! `aws_moto.rs`, whose conformance run covers the purge of every DynamoDB item kind): the
//! oversize bodies in S3 go with the tenant, a store without its bucket refuses before
//! deleting anything, and the archived reports of one tenant are deleted by folder only.
#![cfg(feature = "aws")]

mod moto;
use moto::endpoint;

use serde_json::json;

use shared::adapters::dynamodb::DynamoStore;
use shared::domain::alert::{Alert, Product};
use shared::domain::tenant::Tenant;
use shared::ports::Store;

fn tenant(id: &str) -> Tenant {
    Tenant::from_toml(&format!(
        "id = \"{id}\"\nname = \"テスト\"\nazure_tenant_id = \"11111111-2222-3333-4444-555555555555\"\nproducts = [\"mdi\"]\n[mdi]\n"
    ))
    .unwrap()
}

/// An alert whose body (≈1 MB of CJK text that barely compresses) goes to S3.
fn big_alert(id: &str) -> Alert {
    let mut x: u32 = 99;
    let title: String = (0..350_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from_u32(0x4E00 + (x >> 8) % 0x5000).unwrap_or('長')
        })
        .collect();
    Alert::from_value(
        json!({"id": id, "lastUpdateDateTime": "2026-11-02T00:00:00Z",
        "title": title, "serviceSource": "microsoftDefenderForIdentity", "severity": "high"}),
    )
    .unwrap()
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut k: Vec<String> = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn purge_takes_s3_bodies_and_reports_of_one_tenant_only() {
    let ep = endpoint();
    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let n = std::process::id();
    let (table, bucket) = (format!("mss-purge-{n}"), format!("mss-purge-{n}"));
    let s3 = aws_sdk_s3::Client::from_conf(shared::lambda::s3_config(&sdk, true));
    s3.create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let store = DynamoStore::from_sdk_with_bucket(&sdk, &table, &bucket, true);
    store.create_table().await.unwrap();
    for t in ["co", "co-2"] {
        store.put_tenant(&tenant(t)).await.unwrap();
        store
            .put_alert_version(t, Product::Mdi, &big_alert(&format!("{t}-big")))
            .await
            .unwrap();
        for m in ["2026-10", "2026-11"] {
            s3.put_object()
                .bucket(&bucket)
                .key(format!("reports/{t}/{m}/report.html"))
                .body(b"<html></html>".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(keys(&s3, &bucket).await.len(), 6);

    // Without its bucket the store cannot finish the job, so it does not start it.
    let bare = DynamoStore::from_sdk(&sdk, &table);
    let e = bare.purge_tenant("co").await.unwrap_err();
    assert!(format!("{e:#}").contains("no bucket configured"), "{e:#}");
    assert!(store.get_tenant("co").await.unwrap().is_some());
    assert_eq!(keys(&s3, &bucket).await.len(), 6);

    // Only a folder is deleted, never a bare prefix.
    for bad in ["reports/co", "", "/", "reports"] {
        assert!(store.delete_objects_under(bad).await.is_err(), "{bad:?}");
    }
    assert_eq!(store.delete_objects_under("reports/co/").await.unwrap(), 2);
    let counts = store.purge_tenant("co").await.unwrap();
    assert_eq!(counts.get("body_objects"), 1, "{counts}");
    assert_eq!(counts.get("alert_versions"), 1, "{counts}");
    assert_eq!(counts.get("tenant"), 1, "{counts}");

    let left = keys(&s3, &bucket).await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|k| k.contains("/co-2/")), "{left:?}");
    assert!(store.get_tenant("co").await.unwrap().is_none());
    let ids: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["co-2"]);
    let big = store
        .get_alert_version("co-2", "co-2-big", "2026-11-02T00:00:00Z".parse().unwrap())
        .await
        .unwrap()
        .expect("the other tenant's body is still in S3");
    assert_eq!(big.title().chars().count(), 350_000);
}
