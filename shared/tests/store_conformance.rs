//! The store and queue conformance suites on the embedded backend (SQLite). The DynamoDB/SQS
//! run of the same suites is in `aws_moto.rs`.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::sqlite::{QueueSettings, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite")).unwrap());
    shared::conformance::store_suite(s.clone(), "t1").await;
    shared::conformance::decision_race_suite(s, "t1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue_conforms() {
    let s = SqliteStore::in_memory()
        .unwrap()
        .with_queue_settings(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            retry_delay: Duration::from_millis(10),
            max_receive: 3,
        });
    shared::conformance::queue_suite(Arc::new(s), "t1", 3).await;
}
