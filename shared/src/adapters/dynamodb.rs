//! The cloud store: one DynamoDB table, single-table design. Every item's partition key is
//! its tenant (`T#<tenant>`); the sort key says what it is. Create-once intents, cursor
//! moves and decisions use conditional writes (the fetch's decisions in transactions of up
//! to 100; its alert versions, immutable, in unconditional batches of 25), so two
//! invocations racing on the same item cannot both win. Alert bodies are stored gzip-compressed; one too large for an item goes
//! to S3 and the item keeps a pointer.
//!
//! | sk | item |
//! |---|---|
//! | `TENANT` | the tenant's agreed criteria (also listed under pk `TENANTS` for the fetch fan-out) |
//! | `ALERT#<id>#<lastUpdate>` | one alert version (+ `gsi1pk = T#<tenant>#<YYYY-MM>` month index, `ttl`) |
//! | `MALFORMED#<hash>` | an item Graph sent that is not an alert, with its raw text |
//! | `CURSOR#<product>` | the fetch cursor |
//! | `DECISION#<id>` | the alert's current decision, for the newest version handed on (what tells the fetch a version was: `steps::fetch`) |
//! | `INC#<key>` | an incident's ticket (intent until `ticket_id` is set) |
//! | `APPLY#<key>#<id>#<lastUpdate>` | an alert version's effect on the ticket |
//! | `ONCE#<key>` | a once-only side effect's marker (`ttl`) |
//! | `ACTION#<key>` | a first-response action record (`ttl`) |
//! | `DOC#<kind>#<key>` | a tenant document, gzip-compressed (`kind`, `key` kept for exact matching; `ttl`) |
//! | `BUDGET#<window>` | units `n` taken of a counted budget (`ttl` = the window's expiry) |

use std::collections::HashMap;
use std::io::{Read, Write};

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Datelike, Duration, Utc};

use super::ts;
use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{Decision, DecisionKind};
use crate::domain::severity::Severity;
use crate::domain::tenant::{Tenant, TenantFile};
use crate::ports::{
    ActionRecord, AppliedVersion, ApplyClaim, CursorDocKey, IncidentRecord, IncidentSummary,
    NewDecision, OnceState, Store, StoredDecision,
};

/// DynamoDB items are limited to 400 KB; bodies above this (compressed) go to S3.
const INLINE_BODY_MAX: usize = 300 * 1024;

/// A decision is recorded unless the stored one wins: a higher rank wins; at an equal rank,
/// the newer version (the same rule as the SQLite store). Evaluated by DynamoDB at write
/// time, so a writer that read a stale decision cannot lower a newer one.
const DECISION_CONDITION: &str =
    "attribute_not_exists(#rank) OR #rank < :r OR (#rank = :r AND #lu <= :lu)";

/// The fetch's batched records ([`Store::put_decisions`]): refused when the stored decision
/// is of a higher rank or for a newer version, whatever its rank.
const BATCH_DECISION_CONDITION: &str =
    "attribute_not_exists(#rank) OR (#rank <= :r AND #lu <= :lu)";

fn version_sk(alert: &Alert) -> String {
    format!("ALERT#{}#{}", alert.id, ts(alert.last_update))
}

fn decision_from_item(i: &Item) -> anyhow::Result<StoredDecision> {
    let k = get_s(i, "kind")?;
    Ok(StoredDecision {
        kind: DecisionKind::parse(k).ok_or_else(|| anyhow!("stored decision {k:?}"))?,
        product: opt_s(i, "product").and_then(Product::parse),
        reason: get_s(i, "reason")?.to_string(),
        last_update: parse_ts(get_s(i, "last_update")?)?,
    })
}

#[derive(Clone)]
pub struct DynamoStore {
    db: Client,
    s3: Option<aws_sdk_s3::Client>,
    table: String,
    bucket: Option<String>,
    /// Alert versions and their decisions are kept this long (DynamoDB TTL).
    pub retention_days: i64,
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn pk(tenant: &str) -> AttributeValue {
    s(pk_str(tenant))
}

fn pk_str(tenant: &str) -> String {
    format!("T#{tenant}")
}

fn get_s<'a>(item: &'a Item, k: &str) -> anyhow::Result<&'a str> {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| anyhow!("stored item lacks string attribute {k}"))
}

fn opt_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn parse_ts(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("stored time {s:?}"))?
        .with_timezone(&Utc))
}

fn is_conditional<E>(e: &SdkError<E>) -> bool
where
    E: std::fmt::Debug + ProvideErrorMetadata,
{
    matches!(e, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// A failure worth another try after a pause: throttling, a conflicting transaction, a
/// server error (moto, DynamoDB's emulator, answers a transaction that meets concurrent
/// writes with a 500), a time-out or a dropped connection.
fn transient<E>(e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error()
                || matches!(
                    se.err().code(),
                    Some(
                        "ThrottlingException"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "TransactionConflictException"
                            | "InternalServerError"
                    )
                )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

fn sdk<E>(what: &str, e: SdkError<E>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static + ProvideErrorMetadata,
{
    let detail = match &e {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("error"),
            se.err().message().unwrap_or("")
        ),
        other => format!("{other}"),
    };
    anyhow!("DynamoDB {what}: {detail}")
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

fn gunzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// A stable short hash for de-duplicating malformed items (FNV-1a; not for security).
fn fnv(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}{:08x}", data.len())
}

/// `YYYY-MM` of every month from `from`'s through `to`'s (the month index's partitions).
fn months(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    let (mut y, mut m) = (from.year(), from.month());
    while (y, m) <= (to.year(), to.month()) {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

impl DynamoStore {
    pub fn new(db: Client, table: &str, s3: Option<(aws_sdk_s3::Client, String)>) -> DynamoStore {
        let (s3, bucket) = match s3 {
            Some((c, b)) => (Some(c), Some(b)),
            None => (None, None),
        };
        DynamoStore {
            db,
            s3,
            table: table.to_string(),
            bucket,
            retention_days: 400,
        }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: &str) -> DynamoStore {
        DynamoStore::new(Client::new(sdk), table, None)
    }

    /// Creates the table as template.yaml does (for the local emulator and the demo).
    pub async fn create_table(&self) -> anyhow::Result<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType,
        };
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
        };
        let r = self
            .db
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("gsi1pk")?)
            .attribute_definitions(attr("gsi1sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("month-index")
                    .key_schema(key("gsi1pk", KeyType::Hash)?)
                    .key_schema(key("gsi1sk", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()?,
            )
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if se.err().code() == Some("ResourceInUseException") =>
            {
                Ok(())
            }
            Err(e) => Err(sdk("CreateTable", e)),
        }
    }

    async fn put_if_absent(&self, item: Item) -> anyhow::Result<bool> {
        match self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conditional::<PutItemError>(&e) => Ok(false),
            Err(e) => Err(sdk("PutItem", e)),
        }
    }

    async fn get(&self, pk_v: AttributeValue, sk: &str) -> anyhow::Result<Option<Item>> {
        let r = self
            .db
            .get_item()
            .table_name(&self.table)
            .key("pk", pk_v)
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk("GetItem", e))?;
        Ok(r.item)
    }

    /// All items of a tenant whose sort key starts with `prefix`, every page.
    async fn query_prefix(&self, tenant: &str, prefix: &str) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", pk(tenant))
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk("Query", e))?;
            out.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    fn ttl(&self) -> AttributeValue {
        AttributeValue::N((Utc::now().timestamp() + self.retention_days * 86_400).to_string())
    }

    async fn body_of(&self, item: &Item) -> anyhow::Result<Vec<u8>> {
        if let Some(AttributeValue::B(b)) = item.get("body") {
            return gunzip(b.as_ref());
        }
        let key = opt_s(item, "body_s3")
            .ok_or_else(|| anyhow!("alert item has neither body nor body_s3"))?;
        let (s3, bucket) = match (&self.s3, &self.bucket) {
            (Some(c), Some(b)) => (c, b),
            _ => return Err(anyhow!("alert body is in S3 but no bucket is configured")),
        };
        let o = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| anyhow!("S3 GetObject {key}: {e}"))?;
        let bytes = o
            .body
            .collect()
            .await
            .map_err(|e| anyhow!("S3 body {key}: {e}"))?;
        gunzip(&bytes.into_bytes())
    }

    /// Keys (pk, sk) of the tenant's alert versions with `last_update >= since` in one month
    /// of the month index, every page. The index holds keys only.
    async fn month_keys(
        &self,
        tenant: &str,
        month: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .db
                .query()
                .table_name(&self.table)
                .index_name("month-index")
                // gsi1sk is `<lastUpdate>#<id>` with fixed-width times, so text order is time
                // order and a bare time sorts before every version at that time.
                .key_condition_expression("gsi1pk = :m AND gsi1sk >= :since")
                .expression_attribute_values(":m", s(format!("T#{tenant}#{month}")))
                .expression_attribute_values(":since", s(ts(since)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk("Query month-index", e))?;
            out.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Whole items by key: BatchGetItem in chunks of 100, retrying what DynamoDB leaves
    /// unprocessed (16 MB per response, throttling). Missing items (expired) are skipped.
    async fn get_many(&self, keys: Vec<Item>) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()?,
            );
            let mut backoff = std::time::Duration::from_millis(50);
            let mut stalled = 0;
            while let Some(req) = pending.take() {
                let asked = req.keys().len();
                let r = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| sdk("BatchGetItem", e))?;
                let got = r
                    .responses
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                out.extend(got);
                pending = r
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                // Unprocessed keys mean throttling or a full response: AWS asks for an
                // exponential back-off before they are asked again.
                if let Some(p) = &pending {
                    if p.keys().len() == asked {
                        stalled += 1;
                        if stalled > 10 {
                            return Err(anyhow!(
                                "DynamoDB BatchGetItem: {asked} keys left unprocessed after 10 retries"
                            ));
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        Ok(out)
    }
}

impl DynamoStore {
    /// The store with its bucket (oversize alert bodies), as the functions build it;
    /// `emulator`: path-style S3 addressing (moto).
    pub fn from_sdk_with_bucket(
        sdk: &aws_config::SdkConfig,
        table: &str,
        bucket: &str,
        emulator: bool,
    ) -> DynamoStore {
        let s3 = aws_sdk_s3::Client::from_conf(crate::lambda::s3_config(sdk, emulator));
        DynamoStore::new(Client::new(sdk), table, Some((s3, bucket.to_string())))
    }

    fn bucket(&self) -> anyhow::Result<(&aws_sdk_s3::Client, &str)> {
        match (&self.s3, &self.bucket) {
            (Some(c), Some(b)) => Ok((c, b)),
            _ => Err(anyhow!("this store has no bucket configured")),
        }
    }

    /// Every object key under `prefix` in the store's bucket, all pages.
    async fn object_keys_under(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let (s3, bucket) = self.bucket()?;
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| anyhow!("S3 ListObjectsV2 {prefix}: {e}"))?;
            keys.extend(
                r.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(keys),
            }
        }
    }

    async fn delete_objects<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> anyhow::Result<()> {
        let (s3, bucket) = self.bucket()?;
        for key in keys {
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| anyhow!("S3 DeleteObject {key}: {e}"))?;
        }
        Ok(())
    }

    /// Deletes every object under `prefix` (a folder: it must end in `/`) of the store's
    /// bucket, e.g. a purged tenant's archived reports (`reports/<tenant>/`); how many.
    pub async fn delete_objects_under(&self, prefix: &str) -> anyhow::Result<u64> {
        if !prefix.ends_with('/') || prefix.trim_matches('/').is_empty() {
            return Err(anyhow!(
                "refusing to delete under {prefix:?}: not a folder of the bucket"
            ));
        }
        let keys = self.object_keys_under(prefix).await?;
        self.delete_objects(&keys).await?;
        Ok(keys.len() as u64)
    }

    /// Deletes items by key (BatchWriteItem, see `write_many`).
    async fn delete_many(&self, keys: Vec<Item>) -> anyhow::Result<()> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        let mut writes = Vec::with_capacity(keys.len());
        for k in keys {
            writes.push(
                WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(k)).build()?)
                    .build(),
            );
        }
        self.write_many(writes, "deletes").await
    }

    /// Unconditional puts and deletes: BatchWriteItem in chunks of 25, retrying what
    /// DynamoDB leaves unprocessed (throttling) with a growing pause; an error after ten
    /// retries that made no progress.
    async fn write_many(
        &self,
        writes: Vec<aws_sdk_dynamodb::types::WriteRequest>,
        what: &str,
    ) -> anyhow::Result<()> {
        for chunk in writes.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut backoff = std::time::Duration::from_millis(50);
            let mut stalled = 0;
            while !pending.is_empty() {
                let sent = pending.len();
                let r = self
                    .db
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| sdk("BatchWriteItem", e))?;
                pending = r
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    if pending.len() == sent {
                        stalled += 1;
                        if stalled > 10 {
                            return Err(anyhow!(
                                "DynamoDB BatchWriteItem: {} {what} left unprocessed after 10 retries",
                                pending.len()
                            ));
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        Ok(())
    }

    /// A version's item (its body inline, gzip-compressed, or in S3 when too large for an
    /// item — uploaded here, before the item that points at it exists).
    async fn version_item(
        &self,
        tenant: &str,
        product: Product,
        alert: &Alert,
    ) -> anyhow::Result<Item> {
        let body = gzip(alert.raw.json_text().as_bytes())?;
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), pk(tenant));
        item.insert("sk".into(), s(version_sk(alert)));
        item.insert("alert_id".into(), s(&alert.id));
        item.insert("last_update".into(), s(ts(alert.last_update)));
        item.insert("product".into(), s(product.as_str()));
        item.insert(
            "gsi1pk".into(),
            s(format!("T#{tenant}#{}", alert.last_update.format("%Y-%m"))),
        );
        item.insert(
            "gsi1sk".into(),
            s(format!("{}#{}", ts(alert.last_update), alert.id)),
        );
        item.insert("ttl".into(), self.ttl());
        if body.len() > INLINE_BODY_MAX {
            let (s3c, bucket) = match (&self.s3, &self.bucket) {
                (Some(c), Some(b)) => (c, b),
                _ => return Err(anyhow!("alert {} is {} bytes compressed, too large for DynamoDB, and no bucket is configured", alert.id, body.len())),
            };
            let key = format!(
                "bodies/{tenant}/{}/{}.json.gz",
                alert.id,
                alert.last_update.timestamp_millis()
            );
            s3c.put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.into())
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                .send()
                .await
                .map_err(|e| anyhow!("S3 PutObject {key}: {e}"))?;
            item.insert("body_s3".into(), s(key));
        } else {
            item.insert("body".into(), AttributeValue::B(Blob::new(body)));
        }
        Ok(item)
    }

    /// The update recording a decision (under `DECISION_CONDITION` or, batched,
    /// `BATCH_DECISION_CONDITION`): expression, names, values.
    fn decision_update(
        &self,
        alert_id: &str,
        last_update: DateTime<Utc>,
        d: &Decision,
    ) -> (String, HashMap<String, String>, Item) {
        let mut expr = String::from(
            "SET #kind = :k, #rank = :r, #reason = :reason, #lu = :lu, #alert = :a, #ttl = :ttl",
        );
        let mut names: HashMap<String, String> = [
            ("#kind", "kind"),
            ("#rank", "rank"),
            ("#reason", "reason"),
            ("#lu", "last_update"),
            ("#alert", "alert_id"),
            ("#ttl", "ttl"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut values: Item = HashMap::from([
            (":k".to_string(), s(d.kind.as_str())),
            (
                ":r".to_string(),
                AttributeValue::N((d.kind as u8).to_string()),
            ),
            (":reason".to_string(), s(&d.reason)),
            (":lu".to_string(), s(ts(last_update))),
            (":a".to_string(), s(alert_id)),
            (":ttl".to_string(), self.ttl()),
        ]);
        if let Some(p) = d.product {
            expr.push_str(", #product = :p");
            names.insert("#product".into(), "product".into());
            values.insert(":p".into(), s(p.as_str()));
        }
        (expr, names, values)
    }
}

fn doc_body(item: &Item) -> anyhow::Result<String> {
    match item.get("body") {
        Some(AttributeValue::B(b)) => {
            String::from_utf8(gunzip(b.as_ref())?).context("stored document is not UTF-8")
        }
        _ => Err(anyhow!("document item lacks its body")),
    }
}

fn tenant_from_item(item: &Item) -> anyhow::Result<Tenant> {
    let j = get_s(item, "config")?;
    let f: TenantFile = serde_json::from_str(j)?;
    Tenant::validate(f).map_err(|e| anyhow!("stored tenant no longer validates: {e}"))
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_tenant(&self, t: &Tenant) -> anyhow::Result<()> {
        let json = serde_json::to_string(&t.source)?;
        for (p, sk) in [
            (pk(&t.id), "TENANT".to_string()),
            (s("TENANTS"), format!("T#{}", t.id)),
        ] {
            self.db
                .put_item()
                .table_name(&self.table)
                .item("pk", p)
                .item("sk", s(sk))
                .item("tenant", s(&t.id))
                .item("config", s(&json))
                .send()
                .await
                .map_err(|e| sdk("PutItem tenant", e))?;
        }
        Ok(())
    }

    async fn get_tenant(&self, id: &str) -> anyhow::Result<Option<Tenant>> {
        self.get(pk(id), "TENANT")
            .await?
            .map(|i| tenant_from_item(&i))
            .transpose()
    }

    async fn list_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s("TENANTS"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk("Query tenants", e))?;
            for i in r.items.unwrap_or_default() {
                out.push(tenant_from_item(&i)?);
            }
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn put_alert_version(
        &self,
        tenant: &str,
        product: Product,
        alert: &Alert,
    ) -> anyhow::Result<bool> {
        let sk = version_sk(alert);
        // Cheap existence check first: no body is uploaded for a version stored before.
        if self.get(pk(tenant), &sk).await?.is_some() {
            return Ok(false);
        }
        let item = self.version_item(tenant, product, alert).await?;
        self.put_if_absent(item).await
    }

    async fn put_alert_versions(
        &self,
        tenant: &str,
        product: Product,
        alerts: &[&Alert],
    ) -> anyhow::Result<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        // One request may not name an item twice.
        let mut seen = std::collections::HashSet::new();
        let mut writes = Vec::with_capacity(alerts.len());
        for a in alerts.iter().filter(|a| seen.insert(version_sk(a))) {
            let item = self.version_item(tenant, product, a).await?;
            writes.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build(),
            );
        }
        self.write_many(writes, "alert versions").await
    }

    async fn get_alert_version(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<Option<Alert>> {
        let Some(item) = self
            .get(pk(tenant), &format!("ALERT#{alert_id}#{}", ts(last_update)))
            .await?
        else {
            return Ok(None);
        };
        let body = self.body_of(&item).await?;
        // One pass over the text, no `Value` tree (BENCHMARKS.md, classification).
        Alert::from_json_str(std::str::from_utf8(&body)?)
            .map(Some)
            .map_err(|e| anyhow!("stored alert {alert_id}: {e}"))
    }

    async fn record_malformed(
        &self,
        tenant: &str,
        product: Product,
        raw: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), pk(tenant));
        item.insert(
            "sk".into(),
            s(format!(
                "MALFORMED#{}#{}",
                product.as_str(),
                fnv(raw.as_bytes())
            )),
        );
        item.insert("product".into(), s(product.as_str()));
        // Raw text is capped to stay inside the item limit; the reason says what was wrong.
        let raw_kept: String = raw.chars().take(100_000).collect();
        item.insert(
            "raw".into(),
            AttributeValue::B(Blob::new(gzip(raw_kept.as_bytes())?)),
        );
        item.insert("reason".into(), s(reason));
        item.insert("at".into(), s(ts(at)));
        item.insert("ttl".into(), self.ttl());
        self.put_if_absent(item).await.map(|_| ())
    }

    async fn get_cursor(
        &self,
        tenant: &str,
        product: Product,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        match self
            .get(pk(tenant), &format!("CURSOR#{}", product.as_str()))
            .await?
        {
            Some(i) => Ok(Some(parse_ts(get_s(&i, "at")?)?)),
            None => Ok(None),
        }
    }

    async fn get_cursor_and_doc(
        &self,
        tenant: &str,
        product: Product,
        kind: &str,
        key: &str,
    ) -> anyhow::Result<(Option<DateTime<Utc>>, Option<String>)> {
        let wanted = CursorDocKey {
            tenant,
            product,
            kind,
            key,
        };
        self.get_cursors_and_docs(&[wanted])
            .await?
            .pop()
            .ok_or_else(|| anyhow!("DynamoDB BatchGetItem: no answer for {tenant}/{product}"))
    }

    async fn get_cursors_and_docs(
        &self,
        wanted: &[CursorDocKey<'_>],
    ) -> anyhow::Result<Vec<(Option<DateTime<Utc>>, Option<String>)>> {
        let keys_of = |w: &CursorDocKey<'_>| {
            let pk = pk_str(w.tenant);
            (
                (pk.clone(), format!("CURSOR#{}", w.product.as_str())),
                (pk, format!("DOC#{}#{}", w.kind, w.key)),
            )
        };
        // BatchGetItem refuses a request that names a key twice.
        let mut asked = std::collections::BTreeSet::new();
        for w in wanted {
            let (c, d) = keys_of(w);
            asked.insert(c);
            asked.insert(d);
        }
        let keys = asked
            .into_iter()
            .map(|(p, k)| Item::from([("pk".to_string(), s(p)), ("sk".to_string(), s(k))]))
            .collect();
        // It answers in any order: the items are matched back by their key.
        let mut got: HashMap<(String, String), Item> = HashMap::new();
        for i in self.get_many(keys).await? {
            let k = (get_s(&i, "pk")?.to_string(), get_s(&i, "sk")?.to_string());
            got.insert(k, i);
        }
        wanted
            .iter()
            .map(|w| {
                let (c, d) = keys_of(w);
                let cursor = got.get(&c).map(|i| parse_ts(get_s(i, "at")?)).transpose()?;
                let doc = got.get(&d).map(doc_body).transpose()?;
                Ok((cursor, doc))
            })
            .collect()
    }

    async fn advance_cursor(
        &self,
        tenant: &str,
        product: Product,
        to: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(format!("CURSOR#{}", product.as_str())))
            .update_expression("SET #at = :to")
            .condition_expression("attribute_not_exists(#at) OR #at < :to")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":to", s(ts(to)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional::<UpdateItemError>(&e) => Ok(()),
            Err(e) => Err(sdk("UpdateItem cursor", e)),
        }
    }

    async fn get_decision(
        &self,
        tenant: &str,
        alert_id: &str,
    ) -> anyhow::Result<Option<StoredDecision>> {
        self.get(pk(tenant), &format!("DECISION#{alert_id}"))
            .await?
            .map(|i| decision_from_item(&i))
            .transpose()
    }

    async fn get_decisions(
        &self,
        tenant: &str,
        alert_ids: &[String],
    ) -> anyhow::Result<HashMap<String, StoredDecision>> {
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<Item> = alert_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| {
                HashMap::from([
                    ("pk".to_string(), pk(tenant)),
                    ("sk".to_string(), s(format!("DECISION#{id}"))),
                ])
            })
            .collect();
        let mut out = HashMap::new();
        for i in self.get_many(keys).await? {
            out.insert(get_s(&i, "alert_id")?.to_string(), decision_from_item(&i)?);
        }
        Ok(out)
    }

    async fn put_decisions(
        &self,
        tenant: &str,
        decisions: &[NewDecision],
    ) -> anyhow::Result<Vec<String>> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = decisions.iter().find(|d| !seen.insert(d.alert_id.as_str())) {
            return Err(anyhow!(
                "put_decisions: alert {:?} twice in one batch (one decision per alert)",
                d.alert_id
            ));
        }
        let mut lost = Vec::new();
        for chunk in decisions.chunks(100) {
            let mut pending: Vec<&NewDecision> = chunk.iter().collect();
            let mut backoff = std::time::Duration::from_millis(50);
            let mut stalled = 0;
            while !pending.is_empty() {
                let mut items = Vec::with_capacity(pending.len());
                for n in &pending {
                    let (expr, names, values) =
                        self.decision_update(&n.alert_id, n.last_update, &n.decision);
                    items.push(
                        TransactWriteItem::builder()
                            .update(
                                Update::builder()
                                    .table_name(&self.table)
                                    .key("pk", pk(tenant))
                                    .key("sk", s(format!("DECISION#{}", n.alert_id)))
                                    .update_expression(expr)
                                    .condition_expression(BATCH_DECISION_CONDITION)
                                    .set_expression_attribute_names(Some(names))
                                    .set_expression_attribute_values(Some(values))
                                    .build()?,
                            )
                            .build(),
                    );
                }
                let r = self
                    .db
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await;
                let err = match r {
                    Ok(_) => break,
                    Err(e) => e,
                };
                // A cancelled transaction wrote nothing; its reasons say, item by item, which
                // condition failed (the stored decision won: dropped, the caller is told) and
                // which only has to be tried again (a conflicting transaction, throttling).
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let reasons = match &err {
                    SdkError::ServiceError(se) => match se.err() {
                        TransactWriteItemsError::TransactionCanceledException(c) => {
                            Some(c.cancellation_reasons().to_vec())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let before = pending.len();
                match reasons.filter(|r| r.len() == before) {
                    Some(reasons) => {
                        let mut keep = Vec::with_capacity(before);
                        for (n, reason) in pending.into_iter().zip(&reasons) {
                            match reason.code() {
                                Some("ConditionalCheckFailed") => lost.push(n.alert_id.clone()),
                                _ => keep.push(n),
                            }
                        }
                        pending = keep;
                    }
                    // Tried again as a whole: its conditions pass for what it may already have
                    // written, so a repeat is harmless.
                    None if transient(&err) => {}
                    None => return Err(sdk("TransactWriteItems decisions", err)),
                }
                if pending.len() == before {
                    stalled += 1;
                    if stalled > 10 {
                        return Err(sdk("TransactWriteItems decisions (10 retries)", err));
                    }
                    // Jittered: concurrent fetches that conflicted do not all come back at once.
                    let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(backoff + std::time::Duration::from_millis(jitter)).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        Ok(lost)
    }

    async fn put_decision(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        d: &Decision,
    ) -> anyhow::Result<()> {
        let (expr, names, values) = self.decision_update(alert_id, last_update, d);
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(format!("DECISION#{alert_id}")))
            .update_expression(expr)
            .condition_expression(DECISION_CONDITION)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional::<UpdateItemError>(&e) => Ok(()),
            Err(e) => Err(sdk("UpdateItem decision", e)),
        }
    }

    async fn get_incident(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Option<IncidentRecord>> {
        let Some(i) = self.get(pk(tenant), &format!("INC#{key}")).await? else {
            return Ok(None);
        };
        let sev = get_s(&i, "severity")?;
        Ok(Some(IncidentRecord {
            tenant: tenant.to_string(),
            key: key.to_string(),
            ticket_id: opt_s(&i, "ticket_id").map(str::to_string),
            creator_alert: get_s(&i, "creator_alert")?.to_string(),
            creator_version: parse_ts(get_s(&i, "creator_version")?)?,
            severity: Severity::parse(sev).ok_or_else(|| anyhow!("stored severity {sev:?}"))?,
            intent_at: parse_ts(get_s(&i, "intent_at")?)?,
        }))
    }

    async fn create_incident_intent(&self, r: &IncidentRecord) -> anyhow::Result<bool> {
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), pk(&r.tenant));
        item.insert("sk".into(), s(format!("INC#{}", r.key)));
        item.insert("key".into(), s(&r.key));
        item.insert("creator_alert".into(), s(&r.creator_alert));
        item.insert("creator_version".into(), s(ts(r.creator_version)));
        item.insert("severity".into(), s(r.severity.as_str()));
        item.insert("intent_at".into(), s(ts(r.intent_at)));
        if let Some(t) = &r.ticket_id {
            item.insert("ticket_id".into(), s(t));
        }
        self.put_if_absent(item).await
    }

    async fn set_incident_ticket(
        &self,
        tenant: &str,
        key: &str,
        ticket_id: &str,
    ) -> anyhow::Result<()> {
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(format!("INC#{key}")))
            .update_expression("SET ticket_id = :t")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(ticket_id) OR ticket_id = :t)",
            )
            .expression_attribute_values(":t", s(ticket_id))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional::<UpdateItemError>(&e) => Err(anyhow!(
                "incident {key} of {tenant} has another ticket already, or no intent"
            )),
            Err(e) => Err(sdk("UpdateItem incident", e)),
        }
    }

    async fn set_incident_severity(
        &self,
        tenant: &str,
        key: &str,
        severity: Severity,
    ) -> anyhow::Result<()> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(format!("INC#{key}")))
            .update_expression("SET severity = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":s", s(severity.as_str()))
            .send()
            .await
            .map_err(|e| sdk("UpdateItem severity", e))?;
        Ok(())
    }

    async fn applied_versions(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Vec<AppliedVersion>> {
        let items = self.query_prefix(tenant, &format!("APPLY#{key}#")).await?;
        let mut out = Vec::new();
        for i in items.iter().filter(|i| opt_s(i, "key") == Some(key)) {
            out.push(AppliedVersion {
                alert_id: get_s(i, "alert_id")?.to_string(),
                last_update: parse_ts(get_s(i, "last_update")?)?,
                done: matches!(i.get("done"), Some(AttributeValue::Bool(true))),
            });
        }
        out.sort_by(|a, b| (a.last_update, &a.alert_id).cmp(&(b.last_update, &b.alert_id)));
        Ok(out)
    }

    async fn begin_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> anyhow::Result<ApplyClaim> {
        let sk = format!("APPLY#{key}#{alert_id}#{}", ts(last_update));
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), pk(tenant));
        item.insert("sk".into(), s(&sk));
        item.insert("key".into(), s(key));
        item.insert("alert_id".into(), s(alert_id));
        item.insert("last_update".into(), s(ts(last_update)));
        item.insert("done".into(), AttributeValue::Bool(false));
        item.insert("started_at".into(), s(ts(now)));
        if self.put_if_absent(item).await? {
            return Ok(ApplyClaim::New);
        }
        // Take over an unfinished claim only when it is older than the lease; records made
        // before claims carried a time count as old.
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(&sk))
            .update_expression("SET started_at = :now")
            .condition_expression(
                "done = :f AND (attribute_not_exists(started_at) OR started_at < :cutoff)",
            )
            .expression_attribute_values(":now", s(ts(now)))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":cutoff", s(ts(super::lease_cutoff(now, lease))))
            .send()
            .await;
        match r {
            Ok(_) => Ok(ApplyClaim::TakenOver),
            Err(e) if is_conditional::<UpdateItemError>(&e) => Ok(ApplyClaim::Held),
            Err(e) => Err(sdk("UpdateItem apply claim", e)),
        }
    }

    async fn finish_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key(
                "sk",
                s(format!("APPLY#{key}#{alert_id}#{}", ts(last_update))),
            )
            .update_expression("SET done = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| sdk("UpdateItem apply", e))?;
        Ok(())
    }

    async fn list_decisions(&self, tenant: &str) -> anyhow::Result<Vec<(String, DecisionKind)>> {
        let mut out = Vec::new();
        for i in self.query_prefix(tenant, "DECISION#").await? {
            let k = get_s(&i, "kind")?;
            out.push((
                get_s(&i, "alert_id")?.to_string(),
                DecisionKind::parse(k).ok_or_else(|| anyhow!("stored decision {k:?}"))?,
            ));
        }
        out.sort();
        Ok(out)
    }

    async fn list_alert_ids(&self, tenant: &str) -> anyhow::Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .query_prefix(tenant, "ALERT#")
            .await?
            .iter()
            .filter_map(|i| opt_s(i, "alert_id").map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn list_incidents(&self, tenant: &str) -> anyhow::Result<Vec<IncidentSummary>> {
        let applies = self.query_prefix(tenant, "APPLY#").await?;
        let mut out = Vec::new();
        for i in self.query_prefix(tenant, "INC#").await? {
            let key = get_s(&i, "key")?.to_string();
            let mut alert_ids: Vec<String> = applies
                .iter()
                .filter(|a| opt_s(a, "key") == Some(key.as_str()))
                .filter_map(|a| opt_s(a, "alert_id").map(str::to_string))
                .collect();
            alert_ids.sort();
            alert_ids.dedup();
            out.push(IncidentSummary {
                ticket_id: opt_s(&i, "ticket_id").map(str::to_string),
                key,
                alert_ids,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn malformed_count(&self, tenant: &str) -> anyhow::Result<u64> {
        Ok(self.query_prefix(tenant, "MALFORMED#").await?.len() as u64)
    }

    async fn once_begin(&self, tenant: &str, key: &str) -> anyhow::Result<OnceState> {
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), pk(tenant));
        item.insert("sk".into(), s(format!("ONCE#{key}")));
        item.insert("done".into(), AttributeValue::Bool(false));
        item.insert("ttl".into(), self.ttl());
        if self.put_if_absent(item).await? {
            return Ok(OnceState::New);
        }
        let i = self
            .get(pk(tenant), &format!("ONCE#{key}"))
            .await?
            .ok_or_else(|| anyhow!("once marker {key} vanished"))?;
        Ok(match i.get("done") {
            Some(AttributeValue::Bool(true)) => OnceState::Done,
            _ => OnceState::Pending,
        })
    }

    async fn create_action(&self, rec: &ActionRecord) -> anyhow::Result<bool> {
        let mut item: Item = HashMap::new();
        item.insert("pk".into(), pk(&rec.tenant));
        item.insert("sk".into(), s(format!("ACTION#{}", rec.key)));
        item.insert("body".into(), s(serde_json::to_string(rec)?));
        item.insert("ttl".into(), self.ttl());
        self.put_if_absent(item).await
    }

    async fn get_action(&self, tenant: &str, key: &str) -> anyhow::Result<Option<ActionRecord>> {
        match self.get(pk(tenant), &format!("ACTION#{key}")).await? {
            Some(i) => Ok(Some(serde_json::from_str(get_s(&i, "body")?)?)),
            None => Ok(None),
        }
    }

    async fn put_action(&self, rec: &ActionRecord) -> anyhow::Result<()> {
        self.db
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(&rec.tenant))
            .item("sk", s(format!("ACTION#{}", rec.key)))
            .item("body", s(serde_json::to_string(rec)?))
            .item("ttl", self.ttl())
            .send()
            .await
            .map_err(|e| sdk("PutItem action", e))?;
        Ok(())
    }

    async fn put_doc(&self, tenant: &str, kind: &str, key: &str, body: &str) -> anyhow::Result<()> {
        let z = gzip(body.as_bytes())?;
        if z.len() > INLINE_BODY_MAX {
            return Err(anyhow!(
                "document {kind}/{key} of {tenant} is {} bytes compressed, too large for an item",
                z.len()
            ));
        }
        self.db
            .put_item()
            .table_name(&self.table)
            .item("pk", pk(tenant))
            .item("sk", s(format!("DOC#{kind}#{key}")))
            .item("kind", s(kind))
            .item("key", s(key))
            .item("body", AttributeValue::B(Blob::new(z)))
            .item("ttl", self.ttl())
            .send()
            .await
            .map_err(|e| sdk("PutItem doc", e))?;
        Ok(())
    }

    async fn get_doc(&self, tenant: &str, kind: &str, key: &str) -> anyhow::Result<Option<String>> {
        match self.get(pk(tenant), &format!("DOC#{kind}#{key}")).await? {
            Some(i) => Ok(Some(doc_body(&i)?)),
            None => Ok(None),
        }
    }

    async fn list_docs(&self, tenant: &str, kind: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        // The prefix also matches kinds that extend this one past a `#`; the stored kind
        // tells them apart.
        for i in self
            .query_prefix(tenant, &format!("DOC#{kind}#"))
            .await?
            .iter()
            .filter(|i| opt_s(i, "kind") == Some(kind))
        {
            out.push((get_s(i, "key")?.to_string(), doc_body(i)?));
        }
        out.sort();
        Ok(out)
    }

    async fn take_budget(
        &self,
        tenant: &str,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        if limit == 0 {
            // The condition below would let a first take through.
            return Ok(false);
        }
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(format!("BUDGET#{window}")))
            .update_expression("ADD #n :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N(expires.timestamp().to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_conditional::<UpdateItemError>(&e) => Ok(false),
            Err(e) => Err(sdk("UpdateItem budget", e)),
        }
    }

    async fn recent_alerts(
        &self,
        tenant: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(Product, Alert)>> {
        // A day past now: a version stamped by a clock slightly ahead of ours may already be
        // filed under next month.
        let until = std::cmp::max(Utc::now() + Duration::days(1), since);
        let mut out = Vec::new();
        self.scan_alerts(tenant, since, until, &mut |p, a| {
            out.push((p, a));
            Ok(())
        })
        .await?;
        super::newest_first(&mut out);
        Ok(out)
    }

    async fn scan_alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut (dyn FnMut(Product, Alert) -> anyhow::Result<()> + Send),
    ) -> anyhow::Result<()> {
        let to_s = ts(to);
        // Keys only (the index projects keys): ~100 bytes per alert, then the bodies are read
        // a thousand at a time.
        let mut newest: HashMap<String, (String, Item)> = HashMap::new();
        for month in months(from, to) {
            for k in self.month_keys(tenant, &month, from).await? {
                if k.get("pk") != Some(&pk(tenant)) {
                    continue;
                }
                let Some((at, id)) = opt_s(&k, "gsi1sk").and_then(|v| v.split_once('#')) else {
                    continue;
                };
                if at >= to_s.as_str() {
                    continue;
                }
                let (at, id) = (at.to_string(), id.to_string());
                if newest.get(&id).is_none_or(|(cur, _)| at > *cur) {
                    let key: Item = [("pk", k.get("pk")), ("sk", k.get("sk"))]
                        .into_iter()
                        .filter_map(|(n, v)| v.map(|v| (n.to_string(), v.clone())))
                        .collect();
                    newest.insert(id, (at, key));
                }
            }
        }
        let keys: Vec<Item> = newest.into_values().map(|(_, k)| k).collect();
        for chunk in keys.chunks(1000) {
            for i in &self.get_many(chunk.to_vec()).await? {
                let id = get_s(i, "alert_id")?;
                let p = get_s(i, "product")?;
                let product =
                    Product::parse(p).ok_or_else(|| anyhow!("stored alert {id}: product {p:?}"))?;
                let body = self.body_of(i).await?;
                let alert = Alert::from_json_str(std::str::from_utf8(&body)?)
                    .map_err(|e| anyhow!("stored alert {id}: {e}"))?;
                f(product, alert)?;
            }
        }
        Ok(())
    }

    async fn list_actions(&self, tenant: &str) -> anyhow::Result<Vec<ActionRecord>> {
        self.query_prefix(tenant, "ACTION#")
            .await?
            .iter()
            .map(|i| Ok(serde_json::from_str(get_s(i, "body")?)?))
            .collect()
    }

    async fn purge_tenant(&self, tenant: &str) -> anyhow::Result<crate::ports::PurgeCounts> {
        let mut purged = crate::ports::PurgeCounts::default();
        // Every item under the tenant's partition (the month index holds the same items, so
        // it empties with them): keys, and where a body went to S3.
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#pk, #sk, #b")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_names("#b", "body_s3")
                .expression_attribute_values(":pk", pk(tenant))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk("Query purge", e))?;
            items.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // Bodies in S3 first: while an item still points at an object, a purge that stops
        // here is finished by running it again.
        let mut objects: std::collections::BTreeSet<String> = items
            .iter()
            .filter_map(|i| opt_s(i, "body_s3"))
            .map(str::to_string)
            .collect();
        if self.s3.is_some() && self.bucket.is_some() {
            // Also a body whose item was never written (a fetch that stopped between).
            objects.extend(self.object_keys_under(&format!("bodies/{tenant}/")).await?);
            self.delete_objects(&objects).await?;
            purged.add("body_objects", objects.len() as u64);
        } else if !objects.is_empty() {
            return Err(anyhow!(
                "{} alert bodies of tenant {tenant} are in S3 but this store has no bucket configured; nothing was deleted",
                objects.len()
            ));
        }
        // Then the items, the tenant record last (so a purge that stops half-way leaves the
        // tenant visible, to be purged again).
        let key_of = |i: &Item| -> Item {
            i.iter()
                .filter(|(k, _)| *k == "pk" || *k == "sk")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut record = false;
        let mut keys = Vec::new();
        for i in &items {
            let sk = get_s(i, "sk")?;
            if sk == "TENANT" {
                record = true;
                continue;
            }
            let kind = match sk.split('#').next().unwrap_or("") {
                "ALERT" => "alert_versions",
                "MALFORMED" => "malformed",
                "CURSOR" => "cursors",
                "DECISION" => "decisions",
                "INC" => "incidents",
                "APPLY" => "applied",
                "ONCE" => "once_marks",
                "ACTION" => "actions",
                "DOC" => "docs",
                "BUDGET" => "budgets",
                _ => "other",
            };
            purged.add(kind, 1);
            keys.push(key_of(i));
        }
        self.delete_many(keys).await?;
        for (p, sk) in [
            (s("TENANTS"), format!("T#{tenant}")),
            (pk(tenant), "TENANT".into()),
        ] {
            self.db
                .delete_item()
                .table_name(&self.table)
                .key("pk", p)
                .key("sk", s(sk))
                .send()
                .await
                .map_err(|e| sdk("DeleteItem tenant", e))?;
        }
        if record {
            purged.add("tenant", 1);
        }
        Ok(purged)
    }

    async fn once_finish(&self, tenant: &str, key: &str) -> anyhow::Result<()> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk(tenant))
            .key("sk", s(format!("ONCE#{key}")))
            .update_expression("SET done = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| sdk("UpdateItem once", e))?;
        Ok(())
    }
}
