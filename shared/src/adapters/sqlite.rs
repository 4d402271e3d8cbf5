//! The embedded default: state and queues in one SQLite file, so one machine runs the whole
//! service with nothing else installed, and a restart continues where it stopped. Queues
//! are tables with SQS's semantics (visibility timeout, receive count, dead-letter table),
//! so the steps see the same at-least-once delivery they get on AWS.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{Decision, DecisionKind};
use crate::domain::severity::Severity;
use crate::domain::tenant::{Tenant, TenantFile};
use crate::messages::{AlertRef, QueueName};
use crate::ports::{
    ActionRecord, AppliedVersion, ApplyClaim, IncidentRecord, IncidentSummary, NewDecision,
    OnceState, Queue, Received, Store, StoredDecision,
};

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_versions (
  tenant TEXT NOT NULL, alert_id TEXT NOT NULL, last_update TEXT NOT NULL,
  product TEXT NOT NULL, body TEXT NOT NULL, stored_at TEXT NOT NULL,
  PRIMARY KEY (tenant, alert_id, last_update));
CREATE TABLE IF NOT EXISTS malformed (
  tenant TEXT NOT NULL, product TEXT NOT NULL, raw TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS malformed_once ON malformed (tenant, product, raw);
CREATE TABLE IF NOT EXISTS cursors (
  tenant TEXT NOT NULL, product TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (tenant, product));
CREATE TABLE IF NOT EXISTS decisions (
  tenant TEXT NOT NULL, alert_id TEXT NOT NULL, kind TEXT NOT NULL, product TEXT,
  reason TEXT NOT NULL, last_update TEXT NOT NULL, PRIMARY KEY (tenant, alert_id));
CREATE TABLE IF NOT EXISTS incidents (
  tenant TEXT NOT NULL, key TEXT NOT NULL, ticket_id TEXT, creator_alert TEXT NOT NULL,
  creator_version TEXT NOT NULL, severity TEXT NOT NULL, intent_at TEXT NOT NULL,
  PRIMARY KEY (tenant, key));
CREATE TABLE IF NOT EXISTS applied (
  tenant TEXT NOT NULL, key TEXT NOT NULL, alert_id TEXT NOT NULL, last_update TEXT NOT NULL,
  done INTEGER NOT NULL, started_at TEXT, PRIMARY KEY (tenant, key, alert_id, last_update));
CREATE TABLE IF NOT EXISTS once_marks (
  tenant TEXT NOT NULL, key TEXT NOT NULL, done INTEGER NOT NULL, PRIMARY KEY (tenant, key));
CREATE TABLE IF NOT EXISTS actions (
  tenant TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, key));
CREATE INDEX IF NOT EXISTS alert_versions_recent ON alert_versions (tenant, last_update);
CREATE TABLE IF NOT EXISTS docs (
  tenant TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (tenant, kind, key));
CREATE TABLE IF NOT EXISTS budgets (
  tenant TEXT NOT NULL, "window" TEXT NOT NULL, n INTEGER NOT NULL, expires TEXT NOT NULL,
  PRIMARY KEY (tenant, "window"));
CREATE INDEX IF NOT EXISTS budgets_expires ON budgets (expires);
CREATE TABLE IF NOT EXISTS queue (
  id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL,
  visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, handle TEXT,
  last_error TEXT);
CREATE INDEX IF NOT EXISTS queue_visible ON queue (queue, visible_at);
CREATE TABLE IF NOT EXISTS dlq (
  id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL,
  receive_count INTEGER NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL);
"#;

pub use super::ts;

const INSERT_VERSION: &str = "INSERT OR IGNORE INTO alert_versions (tenant, alert_id, last_update, product, body, stored_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Records a decision unless the stored one wins: kept is the decision of the newest
/// version, unless an older version's ranks higher (classification never lowers, but
/// versions may be processed out of order, and writers may race). The condition is in the
/// statement, so it holds for two processes sharing the file; no row changes when it fails.
macro_rules! rank {
    ($kind:literal) => {
        concat!(
            "(CASE ",
            $kind,
            " WHEN 'incident' THEN 2 WHEN 'monitored' THEN 1 WHEN 'out_of_scope' THEN 0 ELSE -1 END)"
        )
    };
}

const UPSERT_DECISION: &str = concat!(
    "INSERT INTO decisions (tenant, alert_id, kind, product, reason, last_update) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ",
    "ON CONFLICT(tenant, alert_id) DO UPDATE SET kind = excluded.kind, product = excluded.product, ",
    "reason = excluded.reason, last_update = excluded.last_update WHERE ",
    rank!("excluded.kind"),
    " > ",
    rank!("decisions.kind"),
    " OR (",
    rank!("excluded.kind"),
    " = ",
    rank!("decisions.kind"),
    " AND excluded.last_update >= decisions.last_update)"
);

/// The fetch's batched records ([`Store::put_decisions`]): no row changes when the stored
/// decision is of a higher kind or for a newer version, whatever its kind.
const UPSERT_DECISION_BATCH: &str = concat!(
    "INSERT INTO decisions (tenant, alert_id, kind, product, reason, last_update) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ",
    "ON CONFLICT(tenant, alert_id) DO UPDATE SET kind = excluded.kind, product = excluded.product, ",
    "reason = excluded.reason, last_update = excluded.last_update WHERE ",
    rank!("excluded.kind"),
    " >= ",
    rank!("decisions.kind"),
    " AND excluded.last_update >= decisions.last_update"
);

fn parse_ts(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("stored time {s:?} is not RFC 3339"))?
        .with_timezone(&Utc))
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    /// Delay before a failed message is tried again the first time; doubled for each
    /// later failure ([`backoff`]).
    pub retry_delay: Duration,
    /// Receives before a message goes to the dead-letter table (SQS maxReceiveCount).
    pub max_receive: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            visibility_timeout: Duration::from_secs(300),
            retry_delay: Duration::from_secs(120),
            max_receive: 5,
        }
    }
}

/// How long a message failed for the `receive_count`-th time waits: `retry_delay` doubled
/// for each receive before (2, 4, 8, 16 minutes with the default), at most an hour. With 5
/// receives a failing message reaches the dead-letter table after about 30 minutes, as on the
/// cloud shape (5 × the queue's visibility timeout of 6 minutes), not after 5: a downstream
/// outage of 10 minutes (OpsRamp down) then takes at most 3 of its 5 attempts. Found by the
/// chaos run (`mss chaos`, issue 10), where a fixed 10 s delay dead-lettered the ticket
/// messages of a 10-minute OpsRamp outage.
pub fn backoff(retry_delay: Duration, receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    retry_delay
        .saturating_mul(1u32 << doublings)
        .min(Duration::from_secs(3600).max(retry_delay))
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
    pub queue: QueueSettings,
    /// Queue visibility follows this clock: the wall clock normally, the simulated one in
    /// the demo (so a "check again in a minute" means a simulated minute).
    clock: std::sync::Arc<dyn crate::ports::Clock>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the state database {}", path.display()))?;
        Self::init(conn)
    }

    pub fn in_memory() -> anyhow::Result<SqliteStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> anyhow::Result<SqliteStore> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .context("creating the state schema")?;
        Self::migrate(&conn).context("upgrading the state schema")?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            queue: QueueSettings::default(),
            clock: std::sync::Arc::new(crate::ports::SystemClock),
        })
    }

    /// Columns added after a release; a database made before them gains them here.
    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        let has_started: bool = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('applied') WHERE name = 'started_at'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_started {
            // Claims made before the column existed read as stale: they may be taken over.
            conn.execute("ALTER TABLE applied ADD COLUMN started_at TEXT", [])?;
        }
        Ok(())
    }

    pub fn with_clock(mut self, clock: std::sync::Arc<dyn crate::ports::Clock>) -> SqliteStore {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub fn with_queue_settings(mut self, q: QueueSettings) -> SqliteStore {
        self.queue = q;
        self
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| anyhow!("state database lock poisoned"))?;
        f(&mut c).map_err(|e| anyhow!("state database: {e}"))
    }

    fn count_malformed(&self, tenant: &str) -> anyhow::Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM malformed WHERE tenant = ?1",
                [tenant],
                |r| r.get(0),
            )
        })
    }

    /// Every alert id of a tenant with its current decision.
    fn all_decisions(&self, tenant: &str) -> anyhow::Result<Vec<(String, DecisionKind)>> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT alert_id, kind FROM decisions WHERE tenant = ?1 ORDER BY alert_id",
            )?;
            let rows = st.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(id, k)| {
                DecisionKind::parse(&k)
                    .map(|k| (id, k))
                    .ok_or_else(|| anyhow!("stored decision {k:?} unknown"))
            })
            .collect()
    }

    /// Distinct alert ids stored for a tenant.
    fn all_alert_ids(&self, tenant: &str) -> anyhow::Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT DISTINCT alert_id FROM alert_versions WHERE tenant = ?1 ORDER BY alert_id",
            )?;
            let rows = st.query_map([tenant], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// (incident key, ticket id, alert ids applied to it) of a tenant.
    fn all_incidents(&self, tenant: &str) -> anyhow::Result<Vec<IncidentSummary>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT key, ticket_id FROM incidents WHERE tenant = ?1 ORDER BY key")?;
            let keys: Vec<(String, Option<String>)> =
                st.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::new();
            for (k, t) in keys {
                let mut st = c.prepare(
                    "SELECT DISTINCT alert_id FROM applied WHERE tenant = ?1 AND key = ?2 ORDER BY alert_id",
                )?;
                let ids = st.query_map(params![tenant, k], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
                out.push(IncidentSummary { key: k, ticket_id: t, alert_ids: ids });
            }
            Ok(out)
        })
    }
}

fn product_str(p: Option<Product>) -> Option<&'static str> {
    p.map(Product::as_str)
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_tenant(&self, t: &Tenant) -> anyhow::Result<()> {
        let json = serde_json::to_string(&t.source)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO tenants (id, config) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET config = excluded.config",
                params![t.id, json],
            )
            .map(|_| ())
        })
    }

    async fn get_tenant(&self, id: &str) -> anyhow::Result<Option<Tenant>> {
        let row: Option<String> = self.with(|c| {
            c.query_row("SELECT config FROM tenants WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })?;
        row.map(|j| {
            let f: TenantFile = serde_json::from_str(&j)?;
            Tenant::validate(f).map_err(|e| anyhow!("stored tenant {id} no longer validates: {e}"))
        })
        .transpose()
    }

    async fn list_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut st = c.prepare("SELECT id, config FROM tenants ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(id, j)| {
                let f: TenantFile = serde_json::from_str(&j)?;
                Tenant::validate(f)
                    .map_err(|e| anyhow!("stored tenant {id} no longer validates: {e}"))
            })
            .collect()
    }

    async fn put_alert_version(
        &self,
        tenant: &str,
        product: Product,
        alert: &Alert,
    ) -> anyhow::Result<bool> {
        let body = alert.raw.json_text().into_owned();
        self.with(|c| {
            c.execute(
                INSERT_VERSION,
                params![
                    tenant,
                    alert.id,
                    ts(alert.last_update),
                    product.as_str(),
                    body,
                    ts(Utc::now())
                ],
            )
            .map(|n| n == 1)
        })
    }

    async fn put_alert_versions(
        &self,
        tenant: &str,
        product: Product,
        alerts: &[&Alert],
    ) -> anyhow::Result<()> {
        // Serialised before the lock: the transaction holds the connection only for SQL.
        let rows: Vec<(&str, String, std::borrow::Cow<'_, str>)> = alerts
            .iter()
            .map(|a| (a.id.as_str(), ts(a.last_update), a.raw.json_text()))
            .collect();
        let now = ts(Utc::now());
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(INSERT_VERSION)?;
                for (id, lu, body) in &rows {
                    st.execute(params![tenant, id, lu, product.as_str(), body, now])?;
                }
            }
            tx.commit()
        })
    }

    async fn get_alert_version(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<Option<Alert>> {
        let body: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT body FROM alert_versions WHERE tenant = ?1 AND alert_id = ?2 AND last_update = ?3",
                params![tenant, alert_id, ts(last_update)],
                |r| r.get(0),
            )
            .optional()
        })?;
        body.map(|b| {
            // One pass over the text, no `Value` tree (BENCHMARKS.md, classification).
            Alert::from_json_str(&b).map_err(|e| anyhow!("stored alert {alert_id}: {e}"))
        })
        .transpose()
    }

    async fn record_malformed(
        &self,
        tenant: &str,
        product: Product,
        raw: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO malformed (tenant, product, raw, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant, product.as_str(), raw, reason, ts(at)],
            )
            .map(|_| ())
        })
    }

    async fn get_cursor(
        &self,
        tenant: &str,
        product: Product,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let s: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT at FROM cursors WHERE tenant = ?1 AND product = ?2",
                params![tenant, product.as_str()],
                |r| r.get(0),
            )
            .optional()
        })?;
        s.map(|s| parse_ts(&s)).transpose()
    }

    async fn advance_cursor(
        &self,
        tenant: &str,
        product: Product,
        to: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO cursors (tenant, product, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(tenant, product) DO UPDATE SET at = excluded.at WHERE excluded.at > cursors.at",
                params![tenant, product.as_str(), ts(to)],
            )
            .map(|_| ())
        })
    }

    async fn get_decision(
        &self,
        tenant: &str,
        alert_id: &str,
    ) -> anyhow::Result<Option<StoredDecision>> {
        let row: Option<(String, Option<String>, String, String)> = self.with(|c| {
            c.query_row(
                "SELECT kind, product, reason, last_update FROM decisions WHERE tenant = ?1 AND alert_id = ?2",
                params![tenant, alert_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
        })?;
        row.map(|(k, p, reason, lu)| {
            Ok(StoredDecision {
                kind: DecisionKind::parse(&k)
                    .ok_or_else(|| anyhow!("stored decision {k:?} unknown"))?,
                product: p.as_deref().and_then(Product::parse),
                reason,
                last_update: parse_ts(&lu)?,
            })
        })
        .transpose()
    }

    async fn get_decisions(
        &self,
        tenant: &str,
        alert_ids: &[String],
    ) -> anyhow::Result<HashMap<String, StoredDecision>> {
        if alert_ids.is_empty() {
            return Ok(HashMap::new());
        }
        // One statement for the whole page, the ids as one JSON array parameter.
        let ids = serde_json::to_string(alert_ids)?;
        let rows: Vec<(String, String, Option<String>, String, String)> = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT alert_id, kind, product, reason, last_update FROM decisions
                 WHERE tenant = ?1 AND alert_id IN (SELECT value FROM json_each(?2))",
            )?;
            let rows = st.query_map(params![tenant, ids], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(id, k, p, reason, lu)| {
                let d = StoredDecision {
                    kind: DecisionKind::parse(&k)
                        .ok_or_else(|| anyhow!("stored decision {k:?} unknown"))?,
                    product: p.as_deref().and_then(Product::parse),
                    reason,
                    last_update: parse_ts(&lu)?,
                };
                Ok((id, d))
            })
            .collect()
    }

    async fn put_decision(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        d: &Decision,
    ) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                UPSERT_DECISION,
                params![
                    tenant,
                    alert_id,
                    d.kind.as_str(),
                    product_str(d.product),
                    d.reason,
                    ts(last_update)
                ],
            )
            .map(|_| ())
        })
    }

    async fn put_decisions(
        &self,
        tenant: &str,
        decisions: &[NewDecision],
    ) -> anyhow::Result<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = decisions.iter().find(|d| !seen.insert(d.alert_id.as_str())) {
            return Err(anyhow!(
                "put_decisions: alert {:?} twice in one batch (one decision per alert)",
                d.alert_id
            ));
        }
        self.with(|c| {
            let tx = c.transaction()?;
            let mut lost = Vec::new();
            {
                let mut st = tx.prepare_cached(UPSERT_DECISION_BATCH)?;
                for n in decisions {
                    let d = &n.decision;
                    let changed = st.execute(params![
                        tenant,
                        n.alert_id,
                        d.kind.as_str(),
                        product_str(d.product),
                        d.reason,
                        ts(n.last_update)
                    ])?;
                    if changed == 0 {
                        lost.push(n.alert_id.clone());
                    }
                }
            }
            tx.commit()?;
            Ok(lost)
        })
    }

    async fn get_incident(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Option<IncidentRecord>> {
        let row: Option<(Option<String>, String, String, String, String)> = self.with(|c| {
            c.query_row(
                "SELECT ticket_id, creator_alert, creator_version, severity, intent_at FROM incidents WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
        })?;
        row.map(|(ticket_id, creator_alert, cv, sev, at)| {
            Ok(IncidentRecord {
                tenant: tenant.to_string(),
                key: key.to_string(),
                ticket_id,
                creator_alert,
                creator_version: parse_ts(&cv)?,
                severity: Severity::parse(&sev)
                    .ok_or_else(|| anyhow!("stored severity {sev:?}"))?,
                intent_at: parse_ts(&at)?,
            })
        })
        .transpose()
    }

    async fn create_incident_intent(&self, r: &IncidentRecord) -> anyhow::Result<bool> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO incidents (tenant, key, ticket_id, creator_alert, creator_version, severity, intent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![r.tenant, r.key, r.ticket_id, r.creator_alert, ts(r.creator_version), r.severity.as_str(), ts(r.intent_at)],
            )?;
            Ok(n == 1)
        })
    }

    async fn set_incident_ticket(
        &self,
        tenant: &str,
        key: &str,
        ticket_id: &str,
    ) -> anyhow::Result<()> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE incidents SET ticket_id = ?3 WHERE tenant = ?1 AND key = ?2 AND (ticket_id IS NULL OR ticket_id = ?3)",
                params![tenant, key, ticket_id],
            )
        })?;
        if n == 0 {
            return Err(anyhow!(
                "incident {key} of {tenant} has another ticket already, or no intent"
            ));
        }
        Ok(())
    }

    async fn set_incident_severity(
        &self,
        tenant: &str,
        key: &str,
        severity: Severity,
    ) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE incidents SET severity = ?3 WHERE tenant = ?1 AND key = ?2",
                params![tenant, key, severity.as_str()],
            )
            .map(|_| ())
        })
    }

    async fn applied_versions(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Vec<AppliedVersion>> {
        let rows: Vec<(String, String, i64)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT alert_id, last_update, done FROM applied WHERE tenant = ?1 AND key = ?2 ORDER BY last_update, alert_id",
            )?;
            let rows = st.query_map(params![tenant, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(a, lu, d)| {
                Ok(AppliedVersion {
                    alert_id: a,
                    last_update: parse_ts(&lu)?,
                    done: d != 0,
                })
            })
            .collect()
    }

    async fn begin_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> anyhow::Result<ApplyClaim> {
        let cutoff = ts(super::lease_cutoff(now, lease));
        self.with(|c| {
            // IMMEDIATE: another process on the same file must not read between our
            // check and our write.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let lu = ts(last_update);
            let n = tx.execute(
                "INSERT OR IGNORE INTO applied (tenant, key, alert_id, last_update, done, started_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![tenant, key, alert_id, lu, ts(now)],
            )?;
            let claim = if n == 1 {
                ApplyClaim::New
            } else {
                let taken = tx.execute(
                    "UPDATE applied SET started_at = ?5 WHERE tenant = ?1 AND key = ?2 AND alert_id = ?3 AND last_update = ?4 AND done = 0 AND (started_at IS NULL OR started_at < ?6)",
                    params![tenant, key, alert_id, lu, ts(now), cutoff],
                )?;
                if taken == 1 {
                    ApplyClaim::TakenOver
                } else {
                    ApplyClaim::Held
                }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    async fn finish_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE applied SET done = 1 WHERE tenant = ?1 AND key = ?2 AND alert_id = ?3 AND last_update = ?4",
                params![tenant, key, alert_id, ts(last_update)],
            )
            .map(|_| ())
        })
    }

    async fn list_decisions(&self, tenant: &str) -> anyhow::Result<Vec<(String, DecisionKind)>> {
        self.all_decisions(tenant)
    }

    async fn list_alert_ids(&self, tenant: &str) -> anyhow::Result<Vec<String>> {
        self.all_alert_ids(tenant)
    }

    async fn list_incidents(&self, tenant: &str) -> anyhow::Result<Vec<IncidentSummary>> {
        self.all_incidents(tenant)
    }

    async fn malformed_count(&self, tenant: &str) -> anyhow::Result<u64> {
        self.count_malformed(tenant)
    }

    async fn once_begin(&self, tenant: &str, key: &str) -> anyhow::Result<OnceState> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO once_marks (tenant, key, done) VALUES (?1, ?2, 0)",
                params![tenant, key],
            )?;
            if n == 1 {
                return Ok(OnceState::New);
            }
            let done: i64 = c.query_row(
                "SELECT done FROM once_marks WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
                |r| r.get(0),
            )?;
            Ok(if done != 0 {
                OnceState::Done
            } else {
                OnceState::Pending
            })
        })
    }

    async fn create_action(&self, rec: &ActionRecord) -> anyhow::Result<bool> {
        let body = serde_json::to_string(rec)?;
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO actions (tenant, key, body) VALUES (?1, ?2, ?3)",
                params![rec.tenant, rec.key, body],
            )
            .map(|n| n == 1)
        })
    }

    async fn get_action(&self, tenant: &str, key: &str) -> anyhow::Result<Option<ActionRecord>> {
        let body: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT body FROM actions WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    async fn put_action(&self, rec: &ActionRecord) -> anyhow::Result<()> {
        let body = serde_json::to_string(rec)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO actions (tenant, key, body) VALUES (?1, ?2, ?3) ON CONFLICT(tenant, key) DO UPDATE SET body = excluded.body",
                params![rec.tenant, rec.key, body],
            )
            .map(|_| ())
        })
    }

    async fn put_doc(&self, tenant: &str, kind: &str, key: &str, body: &str) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO docs (tenant, kind, key, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(tenant, kind, key) DO UPDATE SET body = excluded.body",
                params![tenant, kind, key, body],
            )
            .map(|_| ())
        })
    }

    async fn get_doc(&self, tenant: &str, kind: &str, key: &str) -> anyhow::Result<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT body FROM docs WHERE tenant = ?1 AND kind = ?2 AND key = ?3",
                params![tenant, kind, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    async fn list_docs(&self, tenant: &str, kind: &str) -> anyhow::Result<Vec<(String, String)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT key, body FROM docs WHERE tenant = ?1 AND kind = ?2 ORDER BY key",
            )?;
            let rows = st.query_map(params![tenant, kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    async fn take_budget(
        &self,
        tenant: &str,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        if limit == 0 {
            return Ok(false);
        }
        // Expiry follows the store's clock: callers name windows and set `expires` by the
        // same (possibly simulated) time, so the wall clock could drop a live window.
        let now = ts(self.clock.now());
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM budgets WHERE expires < ?1", [&now])?;
            // One statement decides and counts, so two processes sharing the file cannot both
            // take the last unit.
            let n = tx.execute(
                r#"INSERT INTO budgets (tenant, "window", n, expires) VALUES (?1, ?2, 1, ?4)
                   ON CONFLICT(tenant, "window") DO UPDATE SET n = n + 1, expires = excluded.expires
                   WHERE budgets.n < ?3"#,
                params![tenant, window, i64::from(limit), ts(expires)],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    async fn recent_alerts(
        &self,
        tenant: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(Product, Alert)>> {
        // The same newest-version-per-alert read as the report's scan, with no upper bound.
        let far = DateTime::<Utc>::from_timestamp(253_402_300_799, 0).expect("9999-12-31");
        let mut out = Vec::new();
        self.scan_alerts(tenant, since, far, &mut |p, a| {
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
        let mut c = self
            .conn
            .lock()
            .map_err(|_| anyhow!("state database lock poisoned"))?;
        // Reading a month of bodies is I/O-bound and parsing them CPU-bound: one thread reads
        // rows while this one parses, through a bounded channel (memory stays flat).
        let (tx, rx) = std::sync::mpsc::sync_channel::<(String, String, String)>(1024);
        std::thread::scope(|scope| -> anyhow::Result<()> {
            // `&mut` moves the connection to the reader (a Connection is Send, not Sync).
            let conn: &mut Connection = &mut c;
            let reader = scope.spawn(move || -> anyhow::Result<()> {
                let mut st = conn.prepare(
                    "SELECT a.alert_id, a.product, a.body FROM alert_versions a
                     WHERE a.tenant = ?1 AND a.last_update >= ?2 AND a.last_update < ?3
                       AND a.last_update = (SELECT MAX(b.last_update) FROM alert_versions b
                                            WHERE b.tenant = a.tenant AND b.alert_id = a.alert_id
                                              AND b.last_update < ?3)",
                )?;
                let mut rows = st.query(params![tenant, ts(from), ts(to)])?;
                while let Some(r) = rows.next()? {
                    if tx.send((r.get(0)?, r.get(1)?, r.get(2)?)).is_err() {
                        break; // the consumer stopped (its callback failed)
                    }
                }
                Ok(())
            });
            let mut result = Ok(());
            for (id, p, body) in rx.iter() {
                let step = (|| -> anyhow::Result<()> {
                    let product = Product::parse(&p)
                        .ok_or_else(|| anyhow!("stored alert {id}: product {p:?}"))?;
                    let alert = Alert::from_json_str(&body)
                        .map_err(|e| anyhow!("stored alert {id}: {e}"))?;
                    f(product, alert)
                })();
                if step.is_err() {
                    result = step;
                    break;
                }
            }
            drop(rx);
            let read = reader
                .join()
                .map_err(|_| anyhow!("the state database reader panicked"))?;
            result.and(read)
        })
    }

    async fn list_actions(&self, tenant: &str) -> anyhow::Result<Vec<ActionRecord>> {
        let rows: Vec<String> = self.with(|c| {
            let mut st = c.prepare("SELECT body FROM actions WHERE tenant = ?1 ORDER BY key")?;
            let rows = st.query_map([tenant], |r| r.get(0))?;
            rows.collect()
        })?;
        rows.iter().map(|b| Ok(serde_json::from_str(b)?)).collect()
    }

    async fn once_finish(&self, tenant: &str, key: &str) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE once_marks SET done = 1 WHERE tenant = ?1 AND key = ?2",
                params![tenant, key],
            )
            .map(|_| ())
        })
    }

    async fn purge_tenant(&self, tenant: &str) -> anyhow::Result<crate::ports::PurgeCounts> {
        // Every message carries its tenant at the top level (`AlertRef`, `ActionCheck`); a
        // body that is not JSON belongs to no tenant and stays.
        const MSG_TENANT: &str =
            "(CASE WHEN json_valid(body) THEN json_extract(body, '$.tenant') END) = ?1";
        let tables: [(&str, String); 13] = [
            (
                "alert_versions",
                "DELETE FROM alert_versions WHERE tenant = ?1".into(),
            ),
            (
                "malformed",
                "DELETE FROM malformed WHERE tenant = ?1".into(),
            ),
            ("cursors", "DELETE FROM cursors WHERE tenant = ?1".into()),
            (
                "decisions",
                "DELETE FROM decisions WHERE tenant = ?1".into(),
            ),
            (
                "incidents",
                "DELETE FROM incidents WHERE tenant = ?1".into(),
            ),
            ("applied", "DELETE FROM applied WHERE tenant = ?1".into()),
            (
                "once_marks",
                "DELETE FROM once_marks WHERE tenant = ?1".into(),
            ),
            ("actions", "DELETE FROM actions WHERE tenant = ?1".into()),
            ("docs", "DELETE FROM docs WHERE tenant = ?1".into()),
            ("budgets", "DELETE FROM budgets WHERE tenant = ?1".into()),
            (
                "queue_messages",
                format!("DELETE FROM queue WHERE {MSG_TENANT}"),
            ),
            (
                "dead_letters",
                format!("DELETE FROM dlq WHERE {MSG_TENANT}"),
            ),
            ("tenant", "DELETE FROM tenants WHERE id = ?1".into()),
        ];
        // One transaction: all of the tenant goes, or none of it.
        let counts: Vec<(&str, usize)> = self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::new();
            for (kind, sql) in &tables {
                out.push((*kind, tx.execute(sql, [tenant])?));
            }
            tx.commit()?;
            Ok(out)
        })?;
        let mut purged = crate::ports::PurgeCounts::default();
        for (kind, n) in counts {
            purged.add(kind, n as u64);
        }
        Ok(purged)
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn send_batch(&self, q: QueueName, msgs: &[AlertRef]) -> anyhow::Result<()> {
        let now = self.now_ms();
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st =
                    tx.prepare("INSERT INTO queue (queue, body, visible_at) VALUES (?1, ?2, ?3)")?;
                for m in msgs {
                    st.execute(params![q.as_str(), m.to_json(), now])?;
                }
            }
            tx.commit()
        })
    }

    async fn receive(&self, q: QueueName, max: usize) -> anyhow::Result<Vec<Received>> {
        let now = self.now_ms();
        let until = now + self.queue.visibility_timeout.as_millis() as i64;
        self.with(|c| {
            let tx = c.transaction()?;
            let rows: Vec<(i64, String, u32)> = {
                let mut st = tx.prepare(
                    "SELECT id, body, receive_count FROM queue WHERE queue = ?1 AND visible_at <= ?2 ORDER BY id LIMIT ?3",
                )?;
                let rows = st.query_map(params![q.as_str(), now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for (id, body, count) in rows {
                let handle = format!("{id}:{}", count + 1);
                tx.execute(
                    "UPDATE queue SET visible_at = ?2, receive_count = receive_count + 1, handle = ?3 WHERE id = ?1",
                    params![id, until, handle],
                )?;
                out.push(Received {
                    handle,
                    body,
                    receive_count: count + 1,
                });
            }
            tx.commit()?;
            Ok(out)
        })
    }

    async fn ack(&self, q: QueueName, handle: &str) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM queue WHERE queue = ?1 AND handle = ?2",
                params![q.as_str(), handle],
            )
            .map(|_| ())
        })
    }

    async fn nack(&self, q: QueueName, handle: &str, error: &str) -> anyhow::Result<()> {
        let max = self.queue.max_receive;
        let now = self.now_ms();
        let retry = self.queue.retry_delay;
        self.with(|c| {
            let tx = c.transaction()?;
            let row: Option<(i64, String, u32)> = tx
                .query_row(
                    "SELECT id, body, receive_count FROM queue WHERE queue = ?1 AND handle = ?2",
                    params![q.as_str(), handle],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((id, body, count)) = row {
                if count >= max {
                    tx.execute(
                        "INSERT INTO dlq (queue, body, receive_count, error, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![q.as_str(), body, count, error, ts(Utc::now())],
                    )?;
                    tx.execute("DELETE FROM queue WHERE id = ?1", [id])?;
                } else {
                    let visible = now + backoff(retry, count).as_millis() as i64;
                    tx.execute(
                        "UPDATE queue SET visible_at = ?2, last_error = ?3 WHERE id = ?1",
                        params![id, visible, error],
                    )?;
                }
            }
            tx.commit()
        })
    }

    async fn send_delayed(
        &self,
        q: QueueName,
        _tenant: &str,
        body: &str,
        delay: Duration,
    ) -> anyhow::Result<()> {
        // No delay means "visible now" on any clock: an operator's command (wall clock) must
        // reach a worker running on a simulated clock too.
        let at = if delay.is_zero() {
            0
        } else {
            self.now_ms() + delay.as_millis() as i64
        };
        self.with(|c| {
            c.execute(
                "INSERT INTO queue (queue, body, visible_at) VALUES (?1, ?2, ?3)",
                params![q.as_str(), body, at],
            )
            .map(|_| ())
        })
    }

    async fn dead_letters(
        &self,
        q: QueueName,
        max: usize,
    ) -> anyhow::Result<Vec<crate::ports::DeadLetter>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT body, error, receive_count FROM dlq WHERE queue = ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = st.query_map(params![q.as_str(), max as i64], |r| {
                Ok(crate::ports::DeadLetter {
                    body: r.get(0)?,
                    error: Some(r.get(1)?),
                    receive_count: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn redrive(&self, q: QueueName) -> anyhow::Result<u64> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO queue (queue, body, visible_at) SELECT queue, body, 0 FROM dlq WHERE queue = ?1 ORDER BY id",
                [q.as_str()],
            )?;
            tx.execute("DELETE FROM dlq WHERE queue = ?1", [q.as_str()])?;
            tx.commit()?;
            Ok(n as u64)
        })
    }

    async fn depth(&self, q: QueueName) -> anyhow::Result<(u64, u64)> {
        self.with(|c| {
            let live: u64 = c.query_row(
                "SELECT COUNT(*) FROM queue WHERE queue = ?1",
                [q.as_str()],
                |r| r.get(0),
            )?;
            let dead: u64 = c.query_row(
                "SELECT COUNT(*) FROM dlq WHERE queue = ?1",
                [q.as_str()],
                |r| r.get(0),
            )?;
            Ok((live, dead))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file written before claims carried a time opens, gains the column, and its
    /// unfinished claims may be taken over at once.
    #[tokio::test]
    async fn an_older_state_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE applied (
                   tenant TEXT NOT NULL, key TEXT NOT NULL, alert_id TEXT NOT NULL,
                   last_update TEXT NOT NULL, done INTEGER NOT NULL,
                   PRIMARY KEY (tenant, key, alert_id, last_update));",
            )
            .unwrap();
            c.execute(
                "INSERT INTO applied VALUES ('t', 'incident:1', 'a1', ?1, 0)",
                [ts(DateTime::<Utc>::UNIX_EPOCH)],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let now = Utc::now();
        let lease = Duration::from_secs(30);
        let claim = |id: &'static str| {
            s.begin_apply(
                "t",
                "incident:1",
                id,
                DateTime::<Utc>::UNIX_EPOCH,
                now,
                lease,
            )
        };
        assert_eq!(claim("a1").await.unwrap(), ApplyClaim::TakenOver);
        assert_eq!(claim("a1").await.unwrap(), ApplyClaim::Held);
        assert_eq!(claim("a2").await.unwrap(), ApplyClaim::New);
        drop(s);
        // Opening again does not try to add the column twice.
        SqliteStore::open(&path).unwrap();
    }
}
