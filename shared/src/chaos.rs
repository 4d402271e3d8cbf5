//! The chaos run's fault model for the process itself: wrappers around the pipeline's ports
//! that kill the process at random points, lose answers, and deliver messages twice.
//!
//! **What a kill is here.** A [`Chaos`] controller decides, with seeded probabilities, to kill
//! the process at one of these points:
//!
//! - *after an external side effect, before its record*: the real OpsRamp create, update or
//!   response, the real MDE isolate / scan / release, Identity Protection confirm-compromised
//!   or mail remediation is made, and then the call fails instead of returning, so the step
//!   never writes what it did;
//! - *before a store write* (any write of the [`Store`] port; the fetch cursor has its own,
//!   lower, rate because it is written on every fetch; a batched write of n records — the
//!   fetch's alert versions, then its decisions — is killed with the probability that one of
//!   n single writes would have been, so batching leaves the kills per record as they were);
//! - *after a queue send*, before the sender records it (e.g. the fetch's ticket messages,
//!   sent before the decisions that say they were handed on);
//! - *before an ack*: the step finished, the message is not deleted.
//!
//! From the kill on, the process is dead: every call of every wrapped port fails at once
//! (the fetch's other concurrent tasks and the rest of the runner's received batch included),
//! so no nack is sent — the messages it held come back only when their visibility timeout
//! runs out, as with a killed process. The harness (`mss chaos`) then "restarts": it builds
//! every client and the store connection anew, dropping whatever was cached in memory
//! (tokens, connection pools), and goes on from the state on disk.
//!
//! **Answers lost** (not kills): with a separate probability an OpsRamp or MDE call that did
//! its work answers an error instead (a time-out after the server acted); the step fails and
//! its message is retried after the queue's retry delay, by the same process.
//!
//! **Duplicate delivery**: each message sent has a probability of being sent a second time
//! (SQS's at-least-once delivery), as a separate send.
//!
//! **What a real kill can do that this does not**: stop in the *middle* of a store write
//! (SQLite's transactions make that all-or-nothing, so it equals one of the points above) or
//! in the middle of an HTTP request (the server may or may not have acted: modelled by the
//! kill after a side effect and by the plain failure before it, but not by a half-written
//! request); kill a thread between two awaits that touch no port (nothing there is durable,
//! so it is equivalent to the next port call failing); lose the SQLite file or its last
//! transactions (power loss with a disk cache: not modelled); and, on the cloud shape, run
//! two handlers of the same message at the same time (the embedded runner handles messages
//! one at a time, so concurrent duplicates are not exercised here).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::adapters::hunting::{Hunting, HuntingError, HuntingResult};
use crate::adapters::identity::{RiskyUsers, UserInfo};
use crate::adapters::mde::{DeviceActions, MachineAction, Requested};
use crate::adapters::mdo::EmailRemediation;
use crate::domain::alert::{Alert, Product};
use crate::domain::classify::{Decision, DecisionKind};
use crate::domain::response::DeviceRecord;
use crate::domain::severity::Severity;
use crate::domain::tenant::Tenant;
use crate::messages::{AlertRef, QueueName};
use crate::ports::{
    ActionRecord, AlertSource, AppliedVersion, ApplyClaim, DeadLetter, FetchedItem, IncidentRecord,
    IncidentSummary, NewDecision, NewTicket, OnceState, PurgeCounts, Queue, Received, Store,
    StoredDecision, TicketUpdate, Tickets,
};

/// Probabilities of each fault, per call of the port method concerned.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Kill after an OpsRamp create / update / response, before its record.
    pub kill_after_ticket_call: f64,
    /// Kill after an MDE isolate / scan / release, a confirm-compromised or a mail
    /// remediation, before its record.
    pub kill_after_action_call: f64,
    /// Kill before a store write (any but the cursor).
    pub kill_before_store_write: f64,
    /// Kill before the fetch cursor is advanced.
    pub kill_before_cursor: f64,
    /// Kill after a queue send, before the sender records it.
    pub kill_after_send: f64,
    /// Kill before an ack.
    pub kill_before_ack: f64,
    /// An OpsRamp or MDE call acts but its answer is lost (a time-out).
    pub lost_answer: f64,
    /// A message is delivered twice.
    pub duplicate: f64,
}

impl Rates {
    /// The rates of issue 10's run; `kills` scales the kill probabilities (0 = no kill).
    pub fn issue10(kills: f64, duplicate: f64) -> Rates {
        Rates {
            kill_after_ticket_call: 0.02 * kills,
            kill_after_action_call: 0.15 * kills,
            kill_before_store_write: 0.002 * kills,
            kill_before_cursor: 0.0002 * kills,
            kill_after_send: 0.005 * kills,
            kill_before_ack: 0.003 * kills,
            lost_answer: 0.01,
            duplicate,
        }
    }
}

/// The error a killed process's calls end with.
#[derive(Debug)]
pub struct Killed(pub &'static str);

impl std::fmt::Display for Killed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chaos: process killed ({})", self.0)
    }
}

impl std::error::Error for Killed {}

/// A call that acted but whose answer was lost.
#[derive(Debug)]
pub struct LostAnswer(pub &'static str);

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chaos: {} acted, but its answer was lost (time-out)",
            self.0
        )
    }
}

impl std::error::Error for LostAnswer {}

/// Decides the faults, remembers whether the process is dead, counts what it did.
pub struct Chaos {
    rng: Mutex<StdRng>,
    rates: Rates,
    enabled: AtomicBool,
    dead: AtomicBool,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    last_fault: Mutex<Option<DateTime<Utc>>>,
    clock: Arc<dyn crate::ports::Clock>,
    /// A kill asked for by a test: at the n-th time the named kill point is reached.
    scripted: Mutex<Option<(&'static str, u64)>>,
}

impl Chaos {
    pub fn new(seed: u64, rates: Rates, clock: Arc<dyn crate::ports::Clock>) -> Arc<Chaos> {
        Arc::new(Chaos {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rates,
            enabled: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            counts: Mutex::new(BTreeMap::new()),
            last_fault: Mutex::new(None),
            clock,
            scripted: Mutex::new(None),
        })
    }

    /// Kills the process the `nth` time (from 1) the kill point named `point` is reached
    /// (e.g. `"kill before store write"`), whatever the rates say: a test's way to crash
    /// exactly between two given steps.
    pub fn kill_at(&self, point: &'static str, nth: u64) {
        *self.scripted.lock().unwrap_or_else(|e| e.into_inner()) = Some((point, nth.max(1)));
    }

    /// Whether a scripted kill falls due at `point` now (counting this arrival).
    fn scripted_kill(&self, point: &'static str) -> bool {
        let mut s = self.scripted.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *s {
            Some((at, n)) if *at == point => {
                *n -= 1;
                if *n == 0 {
                    *s = None;
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// No more faults from now on (the end of the run's fault window).
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// The process came back.
    pub fn revive(&self) {
        self.dead.store(false, Ordering::SeqCst);
    }

    /// Every fault injected, by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The simulated time of the last fault injected here.
    pub fn last_fault(&self) -> Option<DateTime<Utc>> {
        *self.last_fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what)
            .or_default() += 1;
        *self.last_fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.clock.now());
    }

    fn roll(&self, p: f64) -> bool {
        if p <= 0.0 || !self.enabled.load(Ordering::SeqCst) {
            return false;
        }
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_bool(p.min(1.0))
    }

    fn alive(&self) -> anyhow::Result<()> {
        if self.is_dead() {
            return Err(Killed("the process is down").into());
        }
        Ok(())
    }

    /// Kills the process at `point` with probability `p`.
    fn maybe_kill(&self, p: f64, point: &'static str) -> anyhow::Result<()> {
        self.alive()?;
        if self.scripted_kill(point) || self.roll(p) {
            // Only the first kill of a crash counts; the others are its consequences.
            if !self.dead.swap(true, Ordering::SeqCst) {
                self.count(point);
            }
            return Err(Killed(point).into());
        }
        Ok(())
    }

    /// After a side effect: kill, or lose the answer, or return it.
    fn after_effect(
        &self,
        kill_p: f64,
        kill: &'static str,
        lost: &'static str,
    ) -> anyhow::Result<()> {
        self.maybe_kill(kill_p, kill)?;
        if self.roll(self.rates.lost_answer) {
            self.count(match lost {
                "OpsRamp create" => "answer lost after OpsRamp create",
                "OpsRamp update" => "answer lost after OpsRamp update",
                "OpsRamp response" => "answer lost after OpsRamp response",
                "MDE machine action" => "answer lost after MDE machine action",
                "confirm compromised" => "answer lost after confirm compromised",
                _ => "answer lost after mail remediation",
            });
            return Err(LostAnswer(lost).into());
        }
        Ok(())
    }
}

/// The OpsRamp port.
pub struct ChaosTickets {
    pub inner: Arc<dyn Tickets>,
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl Tickets for ChaosTickets {
    async fn find_by_ext_id(&self, ext_ticket_id: &str) -> anyhow::Result<Option<String>> {
        self.chaos.alive()?;
        self.inner.find_by_ext_id(ext_ticket_id).await
    }
    async fn create(&self, t: &NewTicket) -> anyhow::Result<String> {
        self.chaos.alive()?;
        let id = self.inner.create(t).await?;
        let c = &self.chaos;
        c.after_effect(
            c.rates.kill_after_ticket_call,
            "kill after OpsRamp create",
            "OpsRamp create",
        )?;
        Ok(id)
    }
    async fn update(&self, ticket_id: &str, u: &TicketUpdate) -> anyhow::Result<()> {
        self.chaos.alive()?;
        self.inner.update(ticket_id, u).await?;
        let c = &self.chaos;
        c.after_effect(
            c.rates.kill_after_ticket_call,
            "kill after OpsRamp update",
            "OpsRamp update",
        )
    }
    async fn add_response(&self, ticket_id: &str, text: &str, ext: &str) -> anyhow::Result<()> {
        self.chaos.alive()?;
        self.inner.add_response(ticket_id, text, ext).await?;
        let c = &self.chaos;
        c.after_effect(
            c.rates.kill_after_ticket_call,
            "kill after OpsRamp response",
            "OpsRamp response",
        )
    }
    async fn has_response(&self, ticket_id: &str, ext: &str) -> anyhow::Result<bool> {
        self.chaos.alive()?;
        self.inner.has_response(ticket_id, ext).await
    }
}

/// The MDE port of first response.
pub struct ChaosDevices {
    pub inner: Arc<dyn DeviceActions>,
    pub chaos: Arc<Chaos>,
}

impl ChaosDevices {
    fn after(&self) -> anyhow::Result<()> {
        let c = &self.chaos;
        c.after_effect(
            c.rates.kill_after_action_call,
            "kill after MDE machine action",
            "MDE machine action",
        )
    }
}

#[async_trait]
impl DeviceActions for ChaosDevices {
    async fn device(&self, tenant: &str, machine_id: &str) -> anyhow::Result<Option<DeviceRecord>> {
        self.chaos.alive()?;
        self.inner.device(tenant, machine_id).await
    }
    async fn isolate(
        &self,
        tenant: &str,
        machine_id: &str,
        isolation_type: &str,
        comment: &str,
    ) -> anyhow::Result<Requested> {
        self.chaos.alive()?;
        let r = self
            .inner
            .isolate(tenant, machine_id, isolation_type, comment)
            .await?;
        self.after()?;
        Ok(r)
    }
    async fn unisolate(
        &self,
        tenant: &str,
        machine_id: &str,
        comment: &str,
    ) -> anyhow::Result<Requested> {
        self.chaos.alive()?;
        let r = self.inner.unisolate(tenant, machine_id, comment).await?;
        self.after()?;
        Ok(r)
    }
    async fn full_scan(
        &self,
        tenant: &str,
        machine_id: &str,
        comment: &str,
    ) -> anyhow::Result<Requested> {
        self.chaos.alive()?;
        let r = self.inner.full_scan(tenant, machine_id, comment).await?;
        self.after()?;
        Ok(r)
    }
    async fn action(&self, tenant: &str, action_id: &str) -> anyhow::Result<MachineAction> {
        self.chaos.alive()?;
        self.inner.action(tenant, action_id).await
    }
    async fn find_requested(
        &self,
        tenant: &str,
        machine_id: &str,
        kind: &str,
        marker: &str,
    ) -> anyhow::Result<Option<MachineAction>> {
        self.chaos.alive()?;
        self.inner
            .find_requested(tenant, machine_id, kind, marker)
            .await
    }
}

/// Identity Protection and the directory.
pub struct ChaosUsers {
    pub inner: Arc<dyn RiskyUsers>,
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl RiskyUsers for ChaosUsers {
    async fn confirm_compromised(&self, tenant: &str, user_id: &str) -> anyhow::Result<()> {
        self.chaos.alive()?;
        self.inner.confirm_compromised(tenant, user_id).await?;
        let c = &self.chaos;
        c.after_effect(
            c.rates.kill_after_action_call,
            "kill after confirm compromised",
            "confirm compromised",
        )
    }
    async fn user(&self, tenant: &str, id_or_upn: &str) -> anyhow::Result<Option<UserInfo>> {
        self.chaos.alive()?;
        self.inner.user(tenant, id_or_upn).await
    }
}

/// Mail remediation (Graph beta).
pub struct ChaosMail {
    pub inner: Arc<dyn EmailRemediation>,
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl EmailRemediation for ChaosMail {
    async fn soft_delete(
        &self,
        tenant: &str,
        title: &str,
        messages: &[(String, String)],
    ) -> anyhow::Result<Option<String>> {
        self.chaos.alive()?;
        let r = self.inner.soft_delete(tenant, title, messages).await?;
        let c = &self.chaos;
        c.after_effect(
            c.rates.kill_after_action_call,
            "kill after mail remediation",
            "mail remediation",
        )?;
        Ok(r)
    }
}

/// Advanced hunting: read-only, it only stops with the process.
pub struct ChaosHunting {
    pub inner: Arc<dyn Hunting>,
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl Hunting for ChaosHunting {
    async fn run(
        &self,
        tenant: &str,
        query: &str,
        timespan: &str,
    ) -> Result<HuntingResult, HuntingError> {
        if self.chaos.is_dead() {
            return Err(HuntingError::Failed(
                "chaos: process killed (the process is down)".into(),
            ));
        }
        self.inner.run(tenant, query, timespan).await
    }
}

/// Graph alerts: read-only, it only stops with the process.
pub struct ChaosAlerts {
    pub inner: Arc<dyn AlertSource>,
    pub chaos: Arc<Chaos>,
}

#[async_trait]
impl AlertSource for ChaosAlerts {
    async fn fetch(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FetchedItem>> {
        self.chaos.alive()?;
        let r = self.inner.fetch(tenant, product, since).await;
        self.chaos.alive()?;
        r
    }

    async fn fetch_page(
        &self,
        tenant: &Tenant,
        product: Product,
        since: DateTime<Utc>,
        next: Option<&str>,
    ) -> anyhow::Result<crate::ports::FetchedPage> {
        self.chaos.alive()?;
        let r = self.inner.fetch_page(tenant, product, since, next).await;
        self.chaos.alive()?;
        r
    }
}

/// The queue port: duplicates, kills after sends and before acks.
pub struct ChaosQueue {
    pub inner: Arc<dyn Queue>,
    pub chaos: Arc<Chaos>,
}

impl ChaosQueue {
    fn duplicates<'a, T>(&self, items: &'a [T]) -> Vec<&'a T> {
        items
            .iter()
            .filter(|_| self.chaos.roll(self.chaos.rates.duplicate))
            .collect()
    }
}

#[async_trait]
impl Queue for ChaosQueue {
    async fn send_batch(&self, q: QueueName, msgs: &[AlertRef]) -> anyhow::Result<()> {
        self.chaos.alive()?;
        self.inner.send_batch(q, msgs).await?;
        let again: Vec<AlertRef> = self.duplicates(msgs).into_iter().cloned().collect();
        if !again.is_empty() {
            for _ in &again {
                self.chaos.count("duplicate delivery");
            }
            self.inner.send_batch(q, &again).await?;
        }
        self.chaos
            .maybe_kill(self.chaos.rates.kill_after_send, "kill after queue send")
    }
    async fn receive(&self, q: QueueName, max: usize) -> anyhow::Result<Vec<Received>> {
        self.chaos.alive()?;
        self.inner.receive(q, max).await
    }
    async fn ack(&self, q: QueueName, handle: &str) -> anyhow::Result<()> {
        self.chaos
            .maybe_kill(self.chaos.rates.kill_before_ack, "kill before ack")?;
        self.inner.ack(q, handle).await
    }
    async fn nack(&self, q: QueueName, handle: &str, error: &str) -> anyhow::Result<()> {
        self.chaos.alive()?;
        self.inner.nack(q, handle, error).await
    }
    async fn depth(&self, q: QueueName) -> anyhow::Result<(u64, u64)> {
        self.chaos.alive()?;
        self.inner.depth(q).await
    }
    async fn send_delayed(
        &self,
        q: QueueName,
        tenant: &str,
        body: &str,
        delay: Duration,
    ) -> anyhow::Result<()> {
        self.chaos.alive()?;
        self.inner.send_delayed(q, tenant, body, delay).await?;
        if self.chaos.roll(self.chaos.rates.duplicate) {
            self.chaos.count("duplicate delivery");
            self.inner.send_delayed(q, tenant, body, delay).await?;
        }
        self.chaos
            .maybe_kill(self.chaos.rates.kill_after_send, "kill after queue send")
    }
    async fn dead_letters(&self, q: QueueName, max: usize) -> anyhow::Result<Vec<DeadLetter>> {
        self.chaos.alive()?;
        self.inner.dead_letters(q, max).await
    }
    async fn redrive(&self, q: QueueName) -> anyhow::Result<u64> {
        self.chaos.alive()?;
        self.inner.redrive(q).await
    }
}

/// The store port: kills before writes; reads only stop with the process.
pub struct ChaosStore {
    pub inner: Arc<dyn Store>,
    pub chaos: Arc<Chaos>,
}

impl ChaosStore {
    fn write(&self) -> anyhow::Result<()> {
        self.chaos.maybe_kill(
            self.chaos.rates.kill_before_store_write,
            "kill before store write",
        )
    }
    /// Before a batched write of `n` records.
    fn batch_write(&self, n: usize) -> anyhow::Result<()> {
        let p = self.chaos.rates.kill_before_store_write.clamp(0.0, 1.0);
        self.chaos.maybe_kill(
            1.0 - (1.0 - p).powi(n.max(1).min(i32::MAX as usize) as i32),
            "kill before store write",
        )
    }
    fn read(&self) -> anyhow::Result<()> {
        self.chaos.alive()
    }
}

#[async_trait]
impl Store for ChaosStore {
    async fn put_tenant(&self, t: &Tenant) -> anyhow::Result<()> {
        self.write()?;
        self.inner.put_tenant(t).await
    }
    async fn get_tenant(&self, id: &str) -> anyhow::Result<Option<Tenant>> {
        self.read()?;
        self.inner.get_tenant(id).await
    }
    async fn list_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        self.read()?;
        self.inner.list_tenants().await
    }
    async fn put_alert_version(
        &self,
        tenant: &str,
        product: Product,
        alert: &Alert,
    ) -> anyhow::Result<bool> {
        self.write()?;
        self.inner.put_alert_version(tenant, product, alert).await
    }
    async fn put_alert_versions(
        &self,
        tenant: &str,
        product: Product,
        alerts: &[&Alert],
    ) -> anyhow::Result<()> {
        self.batch_write(alerts.len())?;
        self.inner.put_alert_versions(tenant, product, alerts).await
    }
    async fn get_alert_version(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<Option<Alert>> {
        self.read()?;
        self.inner
            .get_alert_version(tenant, alert_id, last_update)
            .await
    }
    async fn record_malformed(
        &self,
        tenant: &str,
        product: Product,
        raw: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.write()?;
        self.inner
            .record_malformed(tenant, product, raw, reason, at)
            .await
    }
    async fn get_cursor(
        &self,
        tenant: &str,
        product: Product,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.read()?;
        self.inner.get_cursor(tenant, product).await
    }
    async fn get_cursor_and_doc(
        &self,
        tenant: &str,
        product: Product,
        kind: &str,
        key: &str,
    ) -> anyhow::Result<(Option<DateTime<Utc>>, Option<String>)> {
        self.read()?;
        self.inner
            .get_cursor_and_doc(tenant, product, kind, key)
            .await
    }
    async fn get_cursors_and_docs(
        &self,
        wanted: &[crate::ports::CursorDocKey<'_>],
    ) -> anyhow::Result<Vec<(Option<DateTime<Utc>>, Option<String>)>> {
        self.read()?;
        self.inner.get_cursors_and_docs(wanted).await
    }
    async fn advance_cursor(
        &self,
        tenant: &str,
        product: Product,
        to: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.chaos.maybe_kill(
            self.chaos.rates.kill_before_cursor,
            "kill before cursor write",
        )?;
        self.inner.advance_cursor(tenant, product, to).await
    }
    async fn get_decision(
        &self,
        tenant: &str,
        alert_id: &str,
    ) -> anyhow::Result<Option<StoredDecision>> {
        self.read()?;
        self.inner.get_decision(tenant, alert_id).await
    }
    async fn get_decisions(
        &self,
        tenant: &str,
        alert_ids: &[String],
    ) -> anyhow::Result<HashMap<String, StoredDecision>> {
        self.read()?;
        self.inner.get_decisions(tenant, alert_ids).await
    }
    async fn put_decision(
        &self,
        tenant: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
        d: &Decision,
    ) -> anyhow::Result<()> {
        self.write()?;
        self.inner
            .put_decision(tenant, alert_id, last_update, d)
            .await
    }
    async fn put_decisions(
        &self,
        tenant: &str,
        decisions: &[NewDecision],
    ) -> anyhow::Result<Vec<String>> {
        self.batch_write(decisions.len())?;
        self.inner.put_decisions(tenant, decisions).await
    }
    async fn get_incident(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Option<IncidentRecord>> {
        self.read()?;
        self.inner.get_incident(tenant, key).await
    }
    async fn create_incident_intent(&self, rec: &IncidentRecord) -> anyhow::Result<bool> {
        self.write()?;
        self.inner.create_incident_intent(rec).await
    }
    async fn set_incident_ticket(
        &self,
        tenant: &str,
        key: &str,
        ticket_id: &str,
    ) -> anyhow::Result<()> {
        self.write()?;
        self.inner.set_incident_ticket(tenant, key, ticket_id).await
    }
    async fn set_incident_severity(
        &self,
        tenant: &str,
        key: &str,
        severity: Severity,
    ) -> anyhow::Result<()> {
        self.write()?;
        self.inner
            .set_incident_severity(tenant, key, severity)
            .await
    }
    async fn applied_versions(
        &self,
        tenant: &str,
        key: &str,
    ) -> anyhow::Result<Vec<AppliedVersion>> {
        self.read()?;
        self.inner.applied_versions(tenant, key).await
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
        self.write()?;
        self.inner
            .begin_apply(tenant, key, alert_id, last_update, now, lease)
            .await
    }
    async fn finish_apply(
        &self,
        tenant: &str,
        key: &str,
        alert_id: &str,
        last_update: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.write()?;
        self.inner
            .finish_apply(tenant, key, alert_id, last_update)
            .await
    }
    async fn list_decisions(&self, tenant: &str) -> anyhow::Result<Vec<(String, DecisionKind)>> {
        self.read()?;
        self.inner.list_decisions(tenant).await
    }
    async fn list_alert_ids(&self, tenant: &str) -> anyhow::Result<Vec<String>> {
        self.read()?;
        self.inner.list_alert_ids(tenant).await
    }
    async fn list_incidents(&self, tenant: &str) -> anyhow::Result<Vec<IncidentSummary>> {
        self.read()?;
        self.inner.list_incidents(tenant).await
    }
    async fn malformed_count(&self, tenant: &str) -> anyhow::Result<u64> {
        self.read()?;
        self.inner.malformed_count(tenant).await
    }
    async fn once_begin(&self, tenant: &str, key: &str) -> anyhow::Result<OnceState> {
        self.write()?;
        self.inner.once_begin(tenant, key).await
    }
    async fn once_finish(&self, tenant: &str, key: &str) -> anyhow::Result<()> {
        self.write()?;
        self.inner.once_finish(tenant, key).await
    }
    async fn create_action(&self, rec: &ActionRecord) -> anyhow::Result<bool> {
        self.write()?;
        self.inner.create_action(rec).await
    }
    async fn get_action(&self, tenant: &str, key: &str) -> anyhow::Result<Option<ActionRecord>> {
        self.read()?;
        self.inner.get_action(tenant, key).await
    }
    async fn put_action(&self, rec: &ActionRecord) -> anyhow::Result<()> {
        self.write()?;
        self.inner.put_action(rec).await
    }
    async fn list_actions(&self, tenant: &str) -> anyhow::Result<Vec<ActionRecord>> {
        self.read()?;
        self.inner.list_actions(tenant).await
    }
    async fn put_doc(&self, tenant: &str, kind: &str, key: &str, body: &str) -> anyhow::Result<()> {
        self.write()?;
        self.inner.put_doc(tenant, kind, key, body).await
    }
    async fn get_doc(&self, tenant: &str, kind: &str, key: &str) -> anyhow::Result<Option<String>> {
        self.read()?;
        self.inner.get_doc(tenant, kind, key).await
    }
    async fn list_docs(&self, tenant: &str, kind: &str) -> anyhow::Result<Vec<(String, String)>> {
        self.read()?;
        self.inner.list_docs(tenant, kind).await
    }
    async fn take_budget(
        &self,
        tenant: &str,
        window: &str,
        limit: u32,
        expires: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        self.write()?;
        self.inner.take_budget(tenant, window, limit, expires).await
    }
    async fn recent_alerts(
        &self,
        tenant: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(Product, Alert)>> {
        self.read()?;
        self.inner.recent_alerts(tenant, since).await
    }
    async fn scan_alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut (dyn FnMut(Product, Alert) -> anyhow::Result<()> + Send),
    ) -> anyhow::Result<()> {
        self.read()?;
        self.inner.scan_alerts(tenant, from, to, f).await
    }
    async fn purge_tenant(&self, tenant: &str) -> anyhow::Result<PurgeCounts> {
        self.write()?;
        self.inner.purge_tenant(tenant).await
    }
}
