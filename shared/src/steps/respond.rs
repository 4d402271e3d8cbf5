//! First response (R-RESPOND): for an incident alert, plan the actions the tenant's policy
//! allows (isolate + full scan per MDE device, confirm compromised per IdP user), pass each
//! through the guardrails, record an intent before calling the product, and track machine
//! actions to a terminal state with delayed check messages. Every step is written on the
//! ticket in Japanese; a retry or rerun finds the intent and resumes instead of repeating.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use super::Deps;
use crate::adapters::identity::RiskyUsers;
use crate::adapters::mde::{DeviceActions, MachineAction, Requested};
use crate::domain::alert::{Alert, Product};
use crate::domain::calendar::Calendar;
use crate::domain::response::{self, ActionKind, GuardContext, Mode, Verdict};
use crate::domain::tenant::Tenant;
use crate::messages::{ActionCheck, AlertRef, QueueName, MESSAGE_VERSION};
use crate::ports::{ActionRecord, ActionStatus, Queue, Store};

pub struct ResponseDeps {
    pub devices: Arc<dyn DeviceActions>,
    pub users: Arc<dyn RiskyUsers>,
    pub mail: Arc<dyn crate::adapters::mdo::EmailRemediation>,
    pub calendar: Calendar,
    /// How long to wait before looking at a machine action again.
    pub check_every: Duration,
    /// A machine action still not terminal after this long is reported as timed out.
    pub give_up_after: Duration,
}

const COMMENT: &str =
    "mss: first response to a Defender incident (automated, per the customer's agreed policy)";

/// Whether the tenant's policy could act on this product at all (so nothing is queued for
/// tenants that keep first response off, the default).
pub fn wanted(t: &Tenant, p: Product) -> bool {
    match p {
        Product::Mde => t.response.mde.isolate != Mode::Off || t.response.mde.scan != Mode::Off,
        Product::Idp => t.response.idp.confirm_compromised != Mode::Off,
        Product::Mdo => {
            t.response.mdo.air_approval_task == response::AutoOff::Auto
                || t.response.mdo.email_remediation != Mode::Off
        }
        _ => false,
    }
}

fn key(incident: &str, kind: ActionKind, target: &str) -> String {
    format!(
        "{incident}|{}|{target}",
        serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    )
}

async fn note(
    deps: &Deps,
    tenant: &str,
    incident: &str,
    rec_key: &str,
    stage: &str,
    text: &str,
) -> anyhow::Result<()> {
    let inc = deps
        .store
        .get_incident(tenant, incident)
        .await?
        .and_then(|i| i.ticket_id)
        .ok_or_else(|| anyhow!("incident {incident} has no ticket yet; will retry"))?;
    let ext = format!("mss-action-{}-{stage}", rec_key.replace(['|', ':'], "-"));
    if !deps.tickets.has_response(&inc, &ext).await? {
        deps.tickets.add_response(&inc, text, &ext).await?;
    }
    Ok(())
}

fn status_ja(s: ActionStatus) -> &'static str {
    match s {
        ActionStatus::Requesting | ActionStatus::InProgress => "実行中",
        ActionStatus::Succeeded => "完了",
        ActionStatus::Failed => "失敗",
        ActionStatus::TimedOut => "タイムアウト",
        ActionStatus::Cancelled => "キャンセル",
        ActionStatus::PendingApproval => "承認待ち",
        ActionStatus::WaitingHours => "対応時間待ち",
        ActionStatus::Refused => "実行しない（保護対象）",
        ActionStatus::Unsupported => "実行不可（製品が未対応）",
    }
}

fn record_text(r: &ActionRecord) -> String {
    let what = r.kind.label_ja();
    let mut s = format!(
        "【一次対応】{what}: {}\n■ 対象: {}\n",
        status_ja(r.status),
        r.target
    );
    if !r.reason.is_empty() {
        s.push_str(&format!("■ 理由・詳細: {}\n", r.reason));
    }
    if let Some(id) = &r.machine_action_id {
        s.push_str(&format!("■ MDE アクション ID: {id}\n"));
    }
    if r.kind == ActionKind::ConfirmCompromised && r.status == ActionStatus::Succeeded {
        s.push_str("■ ユーザーリスクを「高」に設定しました。お客様のユーザーリスクポリシーにより、次回サインイン時にパスワード変更が求められます（ポリシーの設定はお客様の管理範囲です）。\n");
    }
    s
}

/// Plans and starts the actions for one incident alert version.
/// The oldest alert version first response still acts on by itself.
pub const MAX_ALERT_AGE: Duration = Duration::from_secs(24 * 3600);

pub async fn plan(deps: &Deps, msg: &AlertRef) -> anyhow::Result<Vec<ActionRecord>> {
    let Some(rd) = deps.respond.clone() else {
        return Ok(vec![]);
    };
    let (tenant, alert) = super::load_version(deps, msg).await?;
    // Re-checked here, as the ticket and investigation steps do: acting with this tenant's
    // credentials on a device another tenant's alert names is exactly what must not happen
    // (a rerun from respond reaches here without passing classify again).
    if crate::domain::classify::classify(&tenant, &alert, None).tenant_mismatch {
        anyhow::bail!(
            "alert {:?} claims another Azure tenant; refusing to act on it",
            alert.id
        );
    }
    if tenant.disabled_at().is_some() {
        tracing::info!(tenant = %tenant.id, "tenant disabled: no first response");
        return Ok(vec![]);
    }
    // A backfill (or a late rerun) can ticket an alert from weeks ago: isolating a device
    // for it now would act on a situation nobody has looked at. First response is for what
    // is happening; older alerts get their ticket and report only.
    let age = deps.clock.now() - alert.last_update;
    if age > chrono::Duration::from_std(MAX_ALERT_AGE)? {
        tracing::info!(tenant = %tenant.id, alert = %alert.id, age_h = age.num_hours(), "alert too old for automatic first response");
        return Ok(vec![]);
    }
    let product = alert
        .fields
        .service_source
        .as_deref()
        .and_then(Product::from_service_source);
    let incident = alert.incident_key();
    let mut out = Vec::new();
    match product {
        Some(Product::Mde) => {
            let devices = unique(
                alert
                    .evidence()
                    .filter(|e| e.kind() == "deviceEvidence")
                    .filter_map(|e| e.str("mdeDeviceId")),
            );
            if devices.is_empty() && wanted(&tenant, Product::Mde) {
                // No device id in the evidence: nothing is isolated (never by host name), and
                // the ticket says so once.
                let once = format!("respond:{incident}:no-device");
                if deps.store.once_begin(&tenant.id, &once).await? != crate::ports::OnceState::Done
                {
                    note(deps, &tenant.id, &incident, &once, "no-device",
                        "【一次対応】対象デバイスを特定できません: アラートの証跡に MDE のデバイス ID がないため、ネットワーク分離・フルスキャンは実行しません（ホスト名からの特定は行いません）。").await?;
                    deps.store.once_finish(&tenant.id, &once).await?;
                }
            }
            for device in devices {
                for kind in [ActionKind::Isolate, ActionKind::Scan] {
                    if let Some(r) =
                        device_action(deps, &rd, &tenant, &incident, kind, &device).await?
                    {
                        out.push(r);
                    }
                }
            }
        }
        Some(Product::Mdo) => {
            out.extend(mdo_actions(deps, &rd, &tenant, &incident, &alert).await?);
        }
        Some(Product::Idp) => {
            for (user, upn) in users(&alert) {
                if let Some(r) =
                    user_action(deps, &rd, &tenant, &incident, &user, upn.as_deref()).await?
                {
                    out.push(r);
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

fn unique<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in it {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
    v
}

fn users(alert: &Alert) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for e in alert.evidence().filter(|e| e.kind() == "userEvidence") {
        if let Some(id) = e.nested_str("userAccount", "azureAdUserId") {
            if !out.iter().any(|(x, _)| x == id) {
                out.push((
                    id.to_string(),
                    e.nested_str("userAccount", "userPrincipalName")
                        .map(str::to_string),
                ));
            }
        }
    }
    out
}

fn in_hours(rd: &ResponseDeps, now: DateTime<Utc>) -> bool {
    rd.calendar.is_within_service_hours(now.fixed_offset())
}

async fn recent(
    deps: &Deps,
    tenant: &str,
    kinds: &[ActionKind],
    now: DateTime<Utc>,
) -> anyhow::Result<u32> {
    Ok(deps
        .store
        .list_actions(tenant)
        .await?
        .iter()
        .filter(|a| kinds.contains(&a.kind))
        .filter(|a| {
            matches!(
                a.status,
                ActionStatus::Requesting
                    | ActionStatus::InProgress
                    | ActionStatus::Succeeded
                    | ActionStatus::Failed
                    | ActionStatus::TimedOut
            )
        })
        .filter(|a| now - a.created_at < chrono::Duration::hours(1))
        .count() as u32)
}

fn new_record(
    tenant: &str,
    incident: &str,
    kind: ActionKind,
    target: &str,
    status: ActionStatus,
    reason: String,
    now: DateTime<Utc>,
) -> ActionRecord {
    ActionRecord {
        tenant: tenant.to_string(),
        key: key(incident, kind, target),
        incident_key: incident.to_string(),
        kind,
        target: target.to_string(),
        status,
        reason,
        machine_action_id: None,
        created_at: now,
        updated_at: now,
        approved_by: None,
    }
}

async fn device_action(
    deps: &Deps,
    rd: &ResponseDeps,
    t: &Tenant,
    incident: &str,
    kind: ActionKind,
    device: &str,
) -> anyhow::Result<Option<ActionRecord>> {
    let now = deps.clock.now();
    let k = key(incident, kind, device);
    if let Some(existing) = deps.store.get_action(&t.id, &k).await? {
        // A rerun: resume an intent whose request may not have reached MDE (looked up there
        // first); else nothing, but the ticket note of the decision, which an attempt that
        // failed after recording it may not have posted.
        if existing.status == ActionStatus::Requesting {
            return start_device_action(deps, rd, t, existing, true)
                .await
                .map(Some);
        }
        ensure_decided_note(deps, &existing).await?;
        return Ok(Some(existing));
    }
    let record = match rd.devices.device(&t.id, device).await? {
        None => Some(new_record(&t.id, incident, kind, device, ActionStatus::Refused,
            "MDE にこのデバイスが見つからないため実行しません（アラートのデバイス ID のみを使用し、ホスト名では解決しません）。".into(), now)),
        Some(d) => {
            let ctx = GuardContext {
                in_service_hours: in_hours(rd, now),
                recent_in_hour: recent(deps, &t.id, &[ActionKind::Isolate], now).await?,
                approved: false,
            };
            let v = match kind {
                ActionKind::Isolate => response::guard_isolate(&t.response, &d, ctx),
                _ => response::guard_scan(&t.response, &d, ctx),
            };
            verdict_record(&t.id, incident, kind, device, v, now)
        }
    };
    let Some(rec) = record else { return Ok(None) };
    if !deps.store.create_action(&rec).await? {
        return deps.store.get_action(&t.id, &k).await;
    }
    if rec.status == ActionStatus::Requesting {
        return start_device_action(deps, rd, t, rec, false).await.map(Some);
    }
    note(
        deps,
        &t.id,
        incident,
        &rec.key,
        "decided",
        &record_text(&rec),
    )
    .await?;
    if rec.status == ActionStatus::WaitingHours {
        schedule_window_check(deps, rd, &rec).await?;
    }
    Ok(Some(rec))
}

fn verdict_record(
    tenant: &str,
    incident: &str,
    kind: ActionKind,
    target: &str,
    v: Verdict,
    now: DateTime<Utc>,
) -> Option<ActionRecord> {
    let (status, reason) = match v {
        Verdict::Off => return None,
        Verdict::Go => (ActionStatus::Requesting, String::new()),
        Verdict::PendingApproval(r) => (ActionStatus::PendingApproval, r),
        Verdict::WaitingHours(r) => (ActionStatus::WaitingHours, r),
        Verdict::Refused(r) => (ActionStatus::Refused, r),
        Verdict::Unsupported(r) => (ActionStatus::Unsupported, r),
    };
    Some(new_record(
        tenant, incident, kind, target, status, reason, now,
    ))
}

/// The marker of an intent in its MDE request's comment: how a retry finds the request an
/// earlier attempt made but could not record (the machine action's `requestorComment`).
pub fn intent_marker(key: &str) -> String {
    format!("[mss:{key}]")
}

/// The MDE machine action type of an action kind.
fn mde_type(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Isolate => "Isolate",
        ActionKind::Unisolate => "Unisolate",
        _ => "RunAntiVirusScan",
    }
}

/// Requests the machine action of an intent. `resumed`: the intent was found still
/// `Requesting`, so an earlier attempt may have made the request and died before recording
/// it; MDE is asked for an action carrying the intent's marker first, and only when there is
/// none is the request made (again). Without that look-up, a retry that comes after the
/// first action has finished (so MDE no longer answers "already in progress") isolates or
/// scans the device a second time.
async fn start_device_action(
    deps: &Deps,
    rd: &ResponseDeps,
    t: &Tenant,
    mut rec: ActionRecord,
    resumed: bool,
) -> anyhow::Result<ActionRecord> {
    let marker = intent_marker(&rec.key);
    let comment = format!("{COMMENT} {marker}");
    let found = if resumed {
        rd.devices
            .find_requested(&t.id, &rec.target, mde_type(rec.kind), &marker)
            .await?
    } else {
        None
    };
    let requested = match found {
        Some(a) => Requested::Started(a),
        None => match rec.kind {
            ActionKind::Isolate => {
                rd.devices
                    .isolate(
                        &t.id,
                        &rec.target,
                        t.response.mde.isolation_type.api_value(),
                        &comment,
                    )
                    .await?
            }
            ActionKind::Unisolate => rd.devices.unisolate(&t.id, &rec.target, &comment).await?,
            _ => rd.devices.full_scan(&t.id, &rec.target, &comment).await?,
        },
    };
    rec.updated_at = deps.clock.now();
    match requested {
        Requested::Started(a) | Requested::AlreadyInProgress(Some(a)) => {
            rec.status = ActionStatus::InProgress;
            rec.machine_action_id = Some(a.id);
        }
        Requested::AlreadyInProgress(None) => {
            rec.status = ActionStatus::InProgress;
            rec.reason = "同種のアクションが MDE で実行中です。".into();
        }
        Requested::Unsupported(m) => {
            rec.status = ActionStatus::Unsupported;
            rec.reason = format!("このデバイスの OS では実行できません（MDE: {m}）。");
        }
    }
    // The check first: an attempt that dies after it but before the record leaves the intent
    // `Requesting`, and the check resumes it (finding the request by its marker). The other
    // way round, a record `InProgress` with no check queued would never be looked at again.
    if rec.status == ActionStatus::InProgress {
        schedule_check(deps, rd, &rec).await?;
    }
    deps.store.put_action(&rec).await?;
    note(
        deps,
        &t.id,
        &rec.incident_key,
        &rec.key,
        "started",
        &record_text(&rec),
    )
    .await?;
    Ok(rec)
}

/// The "decided" note of an action held or refused by the guards, posted if an earlier
/// attempt recorded the decision but failed before its note (looked up first, so never
/// twice).
async fn ensure_decided_note(deps: &Deps, rec: &ActionRecord) -> anyhow::Result<()> {
    if rec.approved_by.is_none()
        && matches!(
            rec.status,
            ActionStatus::PendingApproval | ActionStatus::WaitingHours | ActionStatus::Refused
        )
    {
        note(
            deps,
            &rec.tenant,
            &rec.incident_key,
            &rec.key,
            "decided",
            &record_text(rec),
        )
        .await?;
    }
    Ok(())
}

/// The "done" note of a confirmed user, posted if the attempt that confirmed it failed
/// before its note (looked up first, so never twice).
async fn ensure_done_note(deps: &Deps, rec: &ActionRecord) -> anyhow::Result<()> {
    if rec.kind == ActionKind::ConfirmCompromised && rec.status == ActionStatus::Succeeded {
        note(
            deps,
            &rec.tenant,
            &rec.incident_key,
            &rec.key,
            "done",
            &record_text(rec),
        )
        .await?;
    }
    Ok(())
}

/// The "started" note of a machine action, posted if the attempt that started it failed
/// before its note (looked up first, so never twice). Shows the action as started.
async fn ensure_started_note(deps: &Deps, rec: &ActionRecord) -> anyhow::Result<()> {
    if rec.machine_action_id.is_none() {
        return Ok(());
    }
    let started = ActionRecord {
        status: ActionStatus::InProgress,
        ..rec.clone()
    };
    note(
        deps,
        &rec.tenant,
        &rec.incident_key,
        &rec.key,
        "started",
        &record_text(&started),
    )
    .await
}

/// A check at the next service window (in steps of at most 15 minutes, SQS's longest delay).
async fn schedule_window_check(
    deps: &Deps,
    rd: &ResponseDeps,
    rec: &ActionRecord,
) -> anyhow::Result<()> {
    let now = deps.clock.now();
    let next = rd.calendar.next_service_start(now.fixed_offset())?;
    let wait = (next.with_timezone(&Utc) - now)
        .to_std()
        .unwrap_or_default();
    send_check(
        deps,
        rec,
        wait.min(Duration::from_secs(900))
            .max(Duration::from_secs(1)),
    )
    .await
}

async fn schedule_check(deps: &Deps, rd: &ResponseDeps, rec: &ActionRecord) -> anyhow::Result<()> {
    send_check(deps, rec, rd.check_every).await
}

async fn send_check(deps: &Deps, rec: &ActionRecord, delay: Duration) -> anyhow::Result<()> {
    send_check_on(deps.queue.as_ref(), rec, delay).await
}

async fn send_check_on(
    queue: &dyn Queue,
    rec: &ActionRecord,
    delay: Duration,
) -> anyhow::Result<()> {
    let body = serde_json::to_string(&ActionCheck {
        v: MESSAGE_VERSION,
        tenant: rec.tenant.clone(),
        check: rec.key.clone(),
    })?;
    queue
        .send_delayed(QueueName::Check, &rec.tenant, &body, delay)
        .await
}

async fn user_action(
    deps: &Deps,
    rd: &ResponseDeps,
    t: &Tenant,
    incident: &str,
    user: &str,
    upn: Option<&str>,
) -> anyhow::Result<Option<ActionRecord>> {
    let now = deps.clock.now();
    let k = key(incident, ActionKind::ConfirmCompromised, user);
    let existing = deps.store.get_action(&t.id, &k).await?;
    let mut rec = match existing {
        Some(r) if r.status != ActionStatus::Requesting => {
            // Notes an earlier attempt recorded but may not have posted (looked up first).
            ensure_decided_note(deps, &r).await?;
            ensure_done_note(deps, &r).await?;
            return Ok(Some(r));
        }
        Some(r) => r,
        None => {
            let ctx = GuardContext {
                in_service_hours: in_hours(rd, now),
                recent_in_hour: recent(deps, &t.id, &[ActionKind::ConfirmCompromised], now).await?,
                approved: false,
            };
            let Some(r) = verdict_record(
                &t.id,
                incident,
                ActionKind::ConfirmCompromised,
                user,
                response::guard_confirm(&t.response, user, upn, ctx),
                now,
            ) else {
                return Ok(None);
            };
            if !deps.store.create_action(&r).await? {
                return deps.store.get_action(&t.id, &k).await;
            }
            if r.status != ActionStatus::Requesting {
                note(deps, &t.id, incident, &r.key, "decided", &record_text(&r)).await?;
                if r.status == ActionStatus::WaitingHours {
                    schedule_window_check(deps, rd, &r).await?;
                }
                return Ok(Some(r));
            }
            r
        }
    };
    // Confirming twice is harmless (the user stays high risk), so a resumed intent simply
    // confirms again.
    rd.users.confirm_compromised(&t.id, user).await?;
    rec.status = ActionStatus::Succeeded;
    rec.updated_at = deps.clock.now();
    deps.store.put_action(&rec).await?;
    note(deps, &t.id, incident, &rec.key, "done", &record_text(&rec)).await?;
    Ok(Some(rec))
}

/// A delayed check: polls the machine action, records and notes a terminal state, or
/// schedules the next check.
pub async fn check(deps: &Deps, c: &ActionCheck) -> anyhow::Result<ActionRecord> {
    let rd = deps
        .respond
        .clone()
        .ok_or_else(|| anyhow!("first response is not configured here"))?;
    let mut rec = deps
        .store
        .get_action(&c.tenant, &c.check)
        .await?
        .ok_or_else(|| anyhow!("no action record {}", c.check))?;
    match rec.status {
        ActionStatus::InProgress => {}
        ActionStatus::Requesting | ActionStatus::PendingApproval | ActionStatus::WaitingHours => {
            return resume(deps, &rd, rec).await;
        }
        ActionStatus::Succeeded
        | ActionStatus::Failed
        | ActionStatus::TimedOut
        | ActionStatus::Cancelled
            if rec.machine_action_id.is_some() =>
        {
            // Terminal already: a duplicate check, or the retry of one that recorded the
            // result and failed before its notes.
            ensure_started_note(deps, &rec).await?;
            note(
                deps,
                &rec.tenant,
                &rec.incident_key,
                &rec.key,
                "result",
                &record_text(&rec),
            )
            .await?;
            return Ok(rec);
        }
        ActionStatus::Succeeded if rec.kind == ActionKind::ConfirmCompromised => {
            ensure_done_note(deps, &rec).await?;
            return Ok(rec);
        }
        _ => return Ok(rec), // terminal already (a duplicate check)
    }
    let action: Option<MachineAction> = match &rec.machine_action_id {
        Some(id) => Some(rd.devices.action(&rec.tenant, id).await?),
        None => None,
    };
    let now = deps.clock.now();
    let terminal = action
        .as_ref()
        .filter(|a| a.is_terminal())
        .map(|a| match a.status.as_str() {
            "Succeeded" => ActionStatus::Succeeded,
            "Failed" => ActionStatus::Failed,
            "TimeOut" => ActionStatus::TimedOut,
            _ => ActionStatus::Cancelled,
        });
    match terminal {
        Some(s) => rec.status = s,
        None if (now - rec.updated_at).to_std().unwrap_or_default() > rd.give_up_after => {
            rec.status = ActionStatus::TimedOut;
            rec.reason = "MDE のアクションが規定時間内に完了しませんでした。ポータルで状態を確認してください。".into();
        }
        None => {
            schedule_check(deps, &rd, &rec).await?;
            return Ok(rec);
        }
    }
    rec.updated_at = now;
    deps.store.put_action(&rec).await?;
    ensure_started_note(deps, &rec).await?;
    note(
        deps,
        &rec.tenant,
        &rec.incident_key,
        &rec.key,
        "result",
        &record_text(&rec),
    )
    .await?;
    Ok(rec)
}

/// An action that was held (approval, hours) or whose request may not have reached the
/// product: run it when approved or when the service window has come, else wait again.
async fn resume(
    deps: &Deps,
    rd: &ResponseDeps,
    mut rec: ActionRecord,
) -> anyhow::Result<ActionRecord> {
    let now = deps.clock.now();
    // Still `Requesting`: an earlier attempt may have made the request (see
    // `start_device_action`).
    let resumed = rec.status == ActionStatus::Requesting;
    let tenant = deps
        .store
        .get_tenant(&rec.tenant)
        .await?
        .ok_or_else(|| anyhow!("tenant {} is not registered", rec.tenant))?
        .at(now);
    if tenant.disabled_at().is_some() {
        // Disabled: nothing more is sent to the customer's products; the record stays as
        // it is, so re-enabling the tenant resumes it.
        return Ok(rec);
    }
    let go = match rec.status {
        ActionStatus::Requesting => true,
        _ if rec.approved_by.is_some() => true,
        ActionStatus::WaitingHours => {
            if !in_hours(rd, now) {
                schedule_window_check(deps, rd, &rec).await?;
                return Ok(rec);
            }
            let (cap_kinds, cap): (&[ActionKind], u32) = match rec.kind {
                ActionKind::Isolate => (
                    &[ActionKind::Isolate],
                    tenant.response.max_isolations_per_hour,
                ),
                ActionKind::ConfirmCompromised => (
                    &[ActionKind::ConfirmCompromised],
                    tenant.response.max_user_confirmations_per_hour,
                ),
                _ => (&[], u32::MAX),
            };
            if !cap_kinds.is_empty() && recent(deps, &rec.tenant, cap_kinds, now).await? >= cap {
                rec.status = ActionStatus::PendingApproval;
                rec.reason = format!(
                    "対応時間になりましたが、直近 1 時間の{}が上限（{cap} 件）に達したため、承認を待ちます。",
                    rec.kind.label_ja()
                );
                rec.updated_at = now;
                deps.store.put_action(&rec).await?;
                note(
                    deps,
                    &rec.tenant,
                    &rec.incident_key,
                    &rec.key,
                    "capped",
                    &record_text(&rec),
                )
                .await?;
                return Ok(rec);
            }
            true
        }
        _ => false,
    };
    if !go {
        return Ok(rec);
    }
    rec.status = ActionStatus::Requesting;
    rec.updated_at = now;
    deps.store.put_action(&rec).await?;
    match rec.kind {
        ActionKind::ConfirmCompromised => {
            rd.users
                .confirm_compromised(&rec.tenant, &rec.target)
                .await?;
            rec.status = ActionStatus::Succeeded;
            rec.updated_at = deps.clock.now();
            deps.store.put_action(&rec).await?;
            note(
                deps,
                &rec.tenant,
                &rec.incident_key,
                &rec.key,
                "done",
                &record_text(&rec),
            )
            .await?;
            Ok(rec)
        }
        ActionKind::Isolate | ActionKind::Scan | ActionKind::Unisolate => {
            start_device_action(deps, rd, &tenant, rec, resumed).await
        }
        ActionKind::EmailRemediation => {
            let d = deps
                .store
                .get_decision(&rec.tenant, &rec.target)
                .await?
                .ok_or_else(|| anyhow!("alert {} has no recorded version", rec.target))?;
            let alert = deps
                .store
                .get_alert_version(&rec.tenant, &rec.target, d.last_update)
                .await?
                .ok_or_else(|| anyhow!("alert {} is not stored", rec.target))?;
            let messages = analysed_messages(&alert);
            rd.mail
                .soft_delete(&rec.tenant, alert.title(), &messages)
                .await?;
            rec.status = ActionStatus::InProgress;
            rec.reason = format!("承認に基づき {} 件のメッセージのソフト削除を要求し、受け付けられました。完了はアクションセンターで確認できます。", messages.len());
            rec.updated_at = deps.clock.now();
            deps.store.put_action(&rec).await?;
            note(
                deps,
                &rec.tenant,
                &rec.incident_key,
                &rec.key,
                "started",
                &record_text(&rec),
            )
            .await?;
            Ok(rec)
        }
        _ => Ok(rec),
    }
}

/// An operator's approval of the held actions of one incident. Returns the approved
/// records; the respond worker runs them (so the side effect happens in one place).
pub async fn approve(
    store: &dyn Store,
    queue: &dyn Queue,
    now: DateTime<Utc>,
    tenant: &str,
    incident: &str,
    by: &str,
) -> anyhow::Result<Vec<ActionRecord>> {
    let keys = [
        format!("incident:{incident}"),
        format!("alert:{incident}"),
        incident.to_string(),
    ];
    let mut out = Vec::new();
    for mut a in store.list_actions(tenant).await? {
        if !keys.contains(&a.incident_key)
            || !matches!(
                a.status,
                ActionStatus::PendingApproval | ActionStatus::WaitingHours
            )
            || a.approved_by.is_some()
        {
            continue;
        }
        a.approved_by = Some(by.to_string());
        a.updated_at = now;
        store.put_action(&a).await?;
        send_check_on(queue, &a, Duration::ZERO).await?;
        out.push(a);
    }
    Ok(out)
}

/// An operator's release of a device from isolation: only a device this service isolated,
/// with the reason recorded on the ticket.
pub async fn release(
    store: &dyn Store,
    queue: &dyn Queue,
    now: DateTime<Utc>,
    tenant: &str,
    device: &str,
    reason: &str,
    by: &str,
) -> anyhow::Result<ActionRecord> {
    if reason.trim().is_empty() {
        return Err(anyhow!("a reason is required to release a device"));
    }
    let isolated = store
        .list_actions(tenant)
        .await?
        .into_iter()
        .filter(|a| {
            a.kind == ActionKind::Isolate
                && a.target == device
                && matches!(a.status, ActionStatus::Succeeded | ActionStatus::InProgress)
        })
        .max_by_key(|a| a.created_at)
        .ok_or_else(|| anyhow!("device {device} of tenant {tenant} was not isolated by this service; nothing to release"))?;
    let mut rec = new_record(
        tenant,
        &isolated.incident_key,
        ActionKind::Unisolate,
        device,
        ActionStatus::Requesting,
        format!(
            "担当者による解除（{by}）: {}",
            crate::domain::incident::clean_line(reason, 300)
        ),
        now,
    );
    rec.key = format!("{}#{}", rec.key, now.timestamp());
    rec.approved_by = Some(by.to_string());
    if !store.create_action(&rec).await? {
        return Err(anyhow!(
            "a release of {device} was just requested; check the ticket"
        ));
    }
    send_check_on(queue, &rec, Duration::ZERO).await?;
    Ok(rec)
}

fn air_pending(alert: &Alert) -> bool {
    alert.fields.investigation_state.as_deref() == Some("pendingApproval")
        || alert
            .evidence()
            .any(|e| e.str("remediationStatus") == Some("pendingApproval"))
}

/// MDO: an approval task for a pending automated investigation (the approval itself happens
/// in the portal — there is no API for it — and is never claimed here), watched on later
/// versions of the alert; and, where the tenant opted in, a soft-delete remediation of the
/// analysed messages through Graph beta.
async fn mdo_actions(
    deps: &Deps,
    rd: &ResponseDeps,
    t: &Tenant,
    incident: &str,
    alert: &Alert,
) -> anyhow::Result<Vec<ActionRecord>> {
    let now = deps.clock.now();
    let mut out = Vec::new();
    if t.response.mdo.air_approval_task == response::AutoOff::Auto {
        let k = key(incident, ActionKind::AirApprovalTask, &alert.id);
        match deps.store.get_action(&t.id, &k).await? {
            None if air_pending(alert) => {
                let expires =
                    crate::domain::incident::jst(alert.last_update + chrono::Duration::days(7));
                let rec = new_record(&t.id, incident, ActionKind::AirApprovalTask, &alert.id, ActionStatus::PendingApproval,
                    format!("自動調査（AIR）が修復の承認を待っています。Microsoft Defender ポータルのアクションセンター（https://security.microsoft.com/action-center/pending）で承認または却下してください（期限の目安: {expires}、保留中のアクションは 1 週間で失効します）。承認の操作には公開 API がないため、本サービスは承認を代行しません。"), now);
                if deps.store.create_action(&rec).await? {
                    note(
                        deps,
                        &t.id,
                        incident,
                        &rec.key,
                        "decided",
                        &record_text(&rec),
                    )
                    .await?;
                }
                out.push(rec);
            }
            Some(mut rec)
                if rec.status == ActionStatus::PendingApproval
                    && !air_pending(alert)
                    && alert.last_update > rec.updated_at =>
            {
                let remediated =
                    alert.fields.investigation_state.as_deref() == Some("successfullyRemediated");
                rec.status = if remediated {
                    ActionStatus::Succeeded
                } else {
                    ActionStatus::Cancelled
                };
                rec.reason = if remediated {
                    "自動調査の修復が完了しました（Defender の調査状態: successfullyRemediated）。"
                        .into()
                } else {
                    format!("承認待ちではなくなりました（Defender の調査状態: {}）。承認・却下・失効のいずれかはポータルで確認してください。",
                        alert.fields.investigation_state.as_deref().unwrap_or("不明"))
                };
                rec.updated_at = now;
                deps.store.put_action(&rec).await?;
                note(
                    deps,
                    &t.id,
                    incident,
                    &rec.key,
                    "result",
                    &record_text(&rec),
                )
                .await?;
                out.push(rec);
            }
            Some(rec) => out.push(rec),
            None => {}
        }
    }
    if t.response.mdo.email_remediation != Mode::Off {
        let messages = analysed_messages(alert);
        if !messages.is_empty() {
            let k = key(incident, ActionKind::EmailRemediation, &alert.id);
            if let Some(existing) = deps.store.get_action(&t.id, &k).await? {
                out.push(existing);
                return Ok(out);
            }
            let v = match t.response.mdo.email_remediation {
                Mode::Approval => Verdict::PendingApproval(format!(
                    "{}は承認制です。担当者の承認後に実行します。",
                    ActionKind::EmailRemediation.label_ja()
                )),
                Mode::Auto
                    if t.response.hours == response::Hours::BusinessHours && !in_hours(rd, now) =>
                {
                    Verdict::WaitingHours(
                        "対応時間内に実行する設定のため、次の対応時間の開始か承認を待ちます。"
                            .into(),
                    )
                }
                _ => Verdict::Go,
            };
            let Some(mut rec) = verdict_record(
                &t.id,
                incident,
                ActionKind::EmailRemediation,
                &alert.id,
                v,
                now,
            ) else {
                return Ok(out);
            };
            if !deps.store.create_action(&rec).await? {
                return Ok(out);
            }
            if rec.status == ActionStatus::Requesting {
                let loc = rd.mail.soft_delete(&t.id, alert.title(), &messages).await?;
                // Accepted is not done: the remediation runs in Microsoft 365 and is followed
                // in the Action center.
                rec.status = ActionStatus::InProgress;
                rec.reason = format!("{} 件のメッセージのソフト削除を要求し、受け付けられました。完了はアクションセンターで確認できます{}。",
                    messages.len(), loc.map(|l| format!("（{}）", crate::domain::incident::clean_line(&l, 300))).unwrap_or_default());
                rec.updated_at = deps.clock.now();
                deps.store.put_action(&rec).await?;
            }
            note(
                deps,
                &t.id,
                incident,
                &rec.key,
                "decided",
                &record_text(&rec),
            )
            .await?;
            out.push(rec);
        }
    }
    Ok(out)
}

/// (networkMessageId, recipient) of the alert's analysed messages: what a remediation names.
fn analysed_messages(alert: &Alert) -> Vec<(String, String)> {
    alert
        .evidence()
        .filter(|e| e.kind() == "analyzedMessageEvidence")
        .filter_map(|e| {
            Some((
                e.str("networkMessageId")?.to_string(),
                e.str("recipientEmailAddress")?.to_string(),
            ))
        })
        .collect()
}
