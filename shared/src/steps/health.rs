//! Ingest health: is each tenant × product's alert fetch working?
//!
//! Every fetch records its outcome in a small document (`ingest-health`/`<product>`, through
//! `Store::put_doc`, so it works on SQLite and DynamoDB alike). A tenant × product is
//! **unhealthy** once its fetch has failed `after_failures` cycles in a row (default 3), or at
//! once when its token request was refused or it has no usable credential — a broken secret or
//! a withdrawn consent does not pass by itself. Entra being unreachable, throttling or
//! answering 5xx is counted like any other failed fetch.
//!
//! While unhealthy, every failed cycle writes one log line with the field
//! `ingest_unhealthy=1` (JSON in Lambda: `{"fields":{"ingest_unhealthy":1,"tenant":…}}`),
//! which a CloudWatch metric filter counts and an alarm watches. Where an operator sink is set
//! up (the provider's own OpsRamp client), the first unhealthy cycle of an outbreak also opens
//! one internal OpsRamp incident — created once: a once-marker is taken and the incident is
//! looked up by its `extTicketId` before it is created, so a crash or a second run does not
//! open another. The first successful fetch after that posts 「復旧しました」 on it (once, by
//! `extTicketResponseId`) and resets the count. Nothing is lost meanwhile: the fetch cursor
//! does not move while fetching fails, so the first good fetch reads the whole gap.
//!
//! Only failures of the alert source count (Graph, its token): a store or queue failure is the
//! service's own and raises the function's Errors alarm instead. Two fetches of the same
//! tenant × product running at the same moment may both count one failure; the once-marker
//! still keeps the incident single.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::adapters::graph::TokenError;
use crate::adapters::opsramp::{OpsRampClient, OpsRampConfig, SharedCredential};
use crate::domain::alert::Product;
use crate::domain::incident::{clean_line, jst};
use crate::domain::tenant::Tenant;
use crate::ports::{CursorDocKey, NewTicket, OnceState, Tickets};

/// `Store` document kind of the per tenant × product state (key: the product).
pub const DOC_KIND: &str = "ingest-health";

/// Longest error text kept and shown on the operator incident (characters).
const ERROR_MAX_CHARS: usize = 500;

/// Where alerts about the service's own ingest go: an OpsRamp client bound to the provider's
/// own client id (not a customer's), and the SOC's mail address for the incident.
#[derive(Clone)]
pub struct OperatorSink {
    pub tickets: Arc<dyn Tickets>,
    pub email: Option<String>,
}

impl std::fmt::Debug for OperatorSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSink")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Failed cycles in a row before a tenant × product is unhealthy (at least 1).
    pub after_failures: u32,
    /// `None`: only the log line (and the CloudWatch alarm built on it).
    pub operator: Option<OperatorSink>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            after_failures: 3,
            operator: None,
        }
    }
}

impl HealthSettings {
    /// Operator alerts as incidents under the provider's own OpsRamp client `client_id`, with
    /// the same API credential and endpoint as the customers' tickets (`base`).
    pub fn with_operator(
        base: &OpsRampConfig,
        cred: impl Into<SharedCredential>,
        client_id: &str,
        email: Option<String>,
        after_failures: u32,
    ) -> anyhow::Result<HealthSettings> {
        if after_failures == 0 {
            anyhow::bail!("after_failures must be at least 1");
        }
        let mut cfg = base.clone();
        cfg.tenant_id = client_id.to_string();
        let client = OpsRampClient::new(cfg, cred)?;
        Ok(HealthSettings {
            after_failures,
            operator: Some(OperatorSink {
                tickets: Arc::new(client),
                email,
            }),
        })
    }

    /// From the embedded configuration's `[operator]` section (none: log line only).
    #[cfg(feature = "embedded")]
    pub fn from_embedded(emb: &crate::embedded::Embedded) -> anyhow::Result<HealthSettings> {
        match &emb.file.operator {
            None => Ok(HealthSettings::default()),
            Some(op) => HealthSettings::with_operator(
                &emb.opsramp_config(),
                emb.opsramp_credential(),
                &op.opsramp_client_id,
                op.email.clone(),
                op.after_failures,
            )
            .map_err(|e| anyhow::anyhow!("{}: operator: {e:#}", emb.path.display())),
        }
    }

    /// For Lambda: `MSS_OPERATOR_OPSRAMP_CLIENT_ID` (unset: log line only),
    /// `MSS_OPERATOR_EMAIL`, `MSS_INGEST_AFTER_FAILURES` (default 3).
    pub fn from_env(
        base: &OpsRampConfig,
        cred: SharedCredential,
    ) -> anyhow::Result<HealthSettings> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let after = match var("MSS_INGEST_AFTER_FAILURES") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    anyhow::anyhow!("MSS_INGEST_AFTER_FAILURES={v:?} is not a whole number ≥ 1")
                })?,
            None => 3,
        };
        match var("MSS_OPERATOR_OPSRAMP_CLIENT_ID") {
            None => Ok(HealthSettings {
                after_failures: after,
                operator: None,
            }),
            Some(id) => HealthSettings::with_operator(
                base,
                cred,
                id.trim(),
                var("MSS_OPERATOR_EMAIL"),
                after,
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The token request was refused, or no usable credential is configured: the app
    /// registration's secret or the tenant's consent needs a person.
    Credential,
    /// Anything else on the way to the alerts: Graph 5xx, 429 past its retries, time-outs,
    /// Entra unavailable.
    Fetch,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Credential => "credential",
            FailureKind::Fetch => "fetch",
        }
    }
}

/// A credential problem anywhere in the error's chain (the Graph client's `TokenError`).
pub fn failure_kind(e: &anyhow::Error) -> FailureKind {
    let credential = e
        .chain()
        .filter_map(|c| c.downcast_ref::<TokenError>())
        .any(TokenError::is_credential_problem);
    if credential {
        FailureKind::Credential
    } else {
        FailureKind::Fetch
    }
}

/// The stored state of one tenant × product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthState {
    /// Failed cycles in a row (0 = healthy).
    pub consecutive: u32,
    /// The first failure of the current outbreak: it names the outbreak.
    pub first_failure: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_kind: Option<FailureKind>,
    /// One line, secrets already cut by the clients, at most 500 characters.
    pub last_error: Option<String>,
    /// The operator incident of the current outbreak, once raised.
    pub operator_ticket: Option<String>,
}

/// What a fetch's outcome did to the health state (returned for callers and tests; the log
/// lines are written either way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HealthEvent {
    /// Failed, still under the threshold.
    Failing { consecutive: u32, kind: FailureKind },
    /// Unhealthy: logged with `ingest_unhealthy=1`; the operator incident, where there is one.
    Unhealthy {
        consecutive: u32,
        kind: FailureKind,
        operator_ticket: Option<String>,
    },
    /// The first success after failures.
    Recovered {
        after_failures: u32,
        operator_ticket: Option<String>,
    },
}

pub async fn state(deps: &Deps, tenant: &str, product: Product) -> anyhow::Result<HealthState> {
    parse_state(
        deps.store
            .get_doc(tenant, DOC_KIND, product.as_str())
            .await?,
    )
}

fn parse_state(doc: Option<String>) -> anyhow::Result<HealthState> {
    Ok(match doc {
        Some(body) => serde_json::from_str(&body)?,
        None => HealthState::default(),
    })
}

async fn save(deps: &Deps, tenant: &str, product: Product, st: &HealthState) -> anyhow::Result<()> {
    deps.store
        .put_doc(
            tenant,
            DOC_KIND,
            product.as_str(),
            &serde_json::to_string(st)?,
        )
        .await
}

/// `20261102T103000Z`: names an outbreak in ids and once-markers.
fn outbreak_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The operator incident's `extTicketId`: tenant ids are `[a-z0-9-]`, products lowercase, so
/// it survives OpsRamp's `queryString` syntax as it is.
pub fn operator_ext_id(tenant: &str, product: Product, first_failure: DateTime<Utc>) -> String {
    format!(
        "mss-{tenant}-ingest-{}-{}",
        product.as_str(),
        outbreak_stamp(first_failure)
    )
}

/// Records a failed fetch. Never fails itself: the fetch's own error is what the caller
/// returns, and a store or OpsRamp failure here is logged (the next cycle tries again).
pub async fn record_failure(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    err: &anyhow::Error,
) -> Option<HealthEvent> {
    match failure_inner(deps, tenant, product, err).await {
        Ok(ev) => Some(ev),
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, product = %product, error = %format!("{e:#}"), "ingest health could not be recorded");
            None
        }
    }
}

async fn failure_inner(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    err: &anyhow::Error,
) -> anyhow::Result<HealthEvent> {
    let cfg = &deps.settings.ingest_health;
    let kind = failure_kind(err);
    let now = deps.clock.now();
    let text = clean_line(&format!("{err:#}"), ERROR_MAX_CHARS);
    let mut st = state(deps, &tenant.id, product).await?;
    if st.consecutive == 0 {
        st.first_failure = Some(now);
        st.operator_ticket = None;
    }
    st.consecutive = st.consecutive.saturating_add(1);
    st.last_failure = Some(now);
    st.last_kind = Some(kind);
    st.last_error = Some(text.clone());
    // Counted before anything else is tried: an OpsRamp failure below must not lose it.
    save(deps, &tenant.id, product, &st).await?;
    let unhealthy = kind == FailureKind::Credential || st.consecutive >= cfg.after_failures.max(1);
    if !unhealthy {
        tracing::warn!(
            tenant = %tenant.id, product = %product, kind = kind.as_str(),
            consecutive = st.consecutive, after_failures = cfg.after_failures,
            error = %text, "alert fetch failed"
        );
        return Ok(HealthEvent::Failing {
            consecutive: st.consecutive,
            kind,
        });
    }
    let first = st.first_failure.unwrap_or(now);
    tracing::error!(
        ingest_unhealthy = 1u8, tenant = %tenant.id, product = %product, kind = kind.as_str(),
        consecutive = st.consecutive, first_failure = %first.to_rfc3339(),
        error = %text, "ingest unhealthy: alerts of this tenant and product are not being fetched"
    );
    if let (Some(op), None) = (&cfg.operator, &st.operator_ticket) {
        match raise(op, deps, tenant, product, &st, first).await {
            Ok(id) => {
                tracing::info!(tenant = %tenant.id, product = %product, ticket = %id, "operator incident raised for ingest failure");
                st.operator_ticket = Some(id);
                save(deps, &tenant.id, product, &st).await?;
            }
            Err(e) => tracing::warn!(
                tenant = %tenant.id, product = %product, error = %format!("{e:#}"),
                "operator incident could not be raised; the next failed cycle tries again"
            ),
        }
    }
    Ok(HealthEvent::Unhealthy {
        consecutive: st.consecutive,
        kind,
        operator_ticket: st.operator_ticket,
    })
}

/// One incident per tenant × product × outbreak: the once-marker is taken first, and the
/// incident is always looked up by `extTicketId` before it is created (a run that died
/// between the create and the marker's finish finds it).
async fn raise(
    op: &OperatorSink,
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    st: &HealthState,
    first: DateTime<Utc>,
) -> anyhow::Result<String> {
    let ext = operator_ext_id(&tenant.id, product, first);
    let once = format!("ingest-{}-{}", product.as_str(), outbreak_stamp(first));
    let mark = deps.store.once_begin(&tenant.id, &once).await?;
    if let Some(id) = op.tickets.find_by_ext_id(&ext).await? {
        deps.store.once_finish(&tenant.id, &once).await?;
        return Ok(id);
    }
    if mark == OnceState::Done {
        anyhow::bail!("operator incident {ext} was created before but OpsRamp does not find it");
    }
    let id = op
        .tickets
        .create(&operator_ticket(
            tenant,
            product,
            st,
            first,
            &ext,
            op.email.clone(),
        ))
        .await?;
    deps.store.once_finish(&tenant.id, &once).await?;
    Ok(id)
}

/// The operator incident: Japanese, naming tenant, product, the first failure, the count
/// and the last error (one line; the clients never put secrets in their errors).
pub fn operator_ticket(
    tenant: &Tenant,
    product: Product,
    st: &HealthState,
    first: DateTime<Utc>,
    ext: &str,
    email: Option<String>,
) -> NewTicket {
    let credential = st.last_kind == Some(FailureKind::Credential);
    let what = if credential {
        "トークン取得に失敗（資格情報または同意を確認）"
    } else {
        "アラート取得が連続して失敗"
    };
    let subject = clean_line(
        &format!(
            "【取り込み障害】{}（{}）{} — {what}",
            tenant.name,
            tenant.id,
            product.as_str().to_uppercase()
        ),
        200,
    );
    let cause = if credential {
        "アプリ登録のトークン取得が拒否されました（または資格情報が未設定です）。\
         クライアントシークレットの期限切れ・誤り、管理者の同意の取り消し、\
         アプリ登録の削除などが考えられます。お客様のアプリ登録を確認してください。"
    } else {
        "Microsoft Graph からのアラート取得が続けて失敗しています。\
         サービス側の障害、スロットリング、権限の変更などが考えられます。"
    };
    let description = format!(
        "お客様テナントのアラート取り込みが止まっています（本インシデントは当社内向けです）。\n\
         \n\
         テナント: {name}（{id}）\n\
         Azure テナント ID: {azure}\n\
         製品: {product_name}（{product}）\n\
         最初の失敗: {first}\n\
         連続失敗回数: {count} 回\n\
         最後の失敗: {last}\n\
         最後のエラー: {error}\n\
         \n\
         {cause}\n\
         取り込みカーソルは失敗中は進まないため、復旧後の最初の取得でこの間のアラートも取り込まれます。\n\
         復旧すると、このインシデントに「復旧しました」と記録されます。\n\
         \n\
         識別子: {ext}",
        name = clean_line(&tenant.name, 200),
        id = tenant.id,
        azure = tenant.azure_tenant_id,
        product_name = product.display_name(),
        product = product.as_str(),
        first = jst(first),
        count = st.consecutive,
        last = st.last_failure.map(jst).unwrap_or_default(),
        error = st.last_error.as_deref().unwrap_or("(不明)"),
    );
    NewTicket {
        subject,
        description,
        priority: if credential { "Urgent" } else { "High" }.into(),
        ext_ticket_id: ext.to_string(),
        to_email: email,
        cc: None,
    }
}

/// The cursor and the ingest-health state a fetch starts from, in one read
/// ([`crate::ports::Store::get_cursor_and_doc`]). An unreadable health state does not stop
/// the fetch (its alerts matter more): it is logged and taken as healthy.
pub async fn cursor_and_state(
    deps: &Deps,
    tenant: &str,
    product: Product,
) -> anyhow::Result<(Option<DateTime<Utc>>, HealthState)> {
    let (cursor, doc) = deps
        .store
        .get_cursor_and_doc(tenant, product, DOC_KIND, product.as_str())
        .await?;
    Ok((cursor, state_or_healthy(tenant, product, doc)))
}

/// [`cursor_and_state`] of many tenants × products, in the order asked, in as few reads as
/// the store can ([`crate::ports::Store::get_cursors_and_docs`]).
pub async fn cursors_and_states(
    deps: &Deps,
    wanted: &[(&str, Product)],
) -> anyhow::Result<Vec<(Option<DateTime<Utc>>, HealthState)>> {
    let keys: Vec<CursorDocKey<'_>> = wanted
        .iter()
        .map(|&(tenant, product)| CursorDocKey {
            tenant,
            product,
            kind: DOC_KIND,
            key: product.as_str(),
        })
        .collect();
    let got = deps.store.get_cursors_and_docs(&keys).await?;
    if got.len() != wanted.len() {
        return Err(anyhow::anyhow!(
            "the store answered {} of {} cursor reads",
            got.len(),
            wanted.len()
        ));
    }
    Ok(wanted
        .iter()
        .zip(got)
        .map(|(&(tenant, product), (cursor, doc))| (cursor, state_or_healthy(tenant, product, doc)))
        .collect())
}

fn state_or_healthy(tenant: &str, product: Product, doc: Option<String>) -> HealthState {
    parse_state(doc).unwrap_or_else(|e| {
        tracing::warn!(tenant = %tenant, product = %product, error = %format!("{e:#}"), "ingest health state unreadable; taken as healthy");
        HealthState::default()
    })
}

/// Records a successful fetch: after failures, resets the count and, when an operator
/// incident was raised for the outbreak, posts 「復旧しました」 on it once. While that post
/// fails the state is kept, so the next success tries again. Never fails itself.
///
/// `st` is the state read when the fetch began ([`cursor_and_state`]), so a healthy fetch
/// reads nothing more. A failure another run recorded meanwhile is not lost: it stays stored,
/// and the next success reads and clears it (the note is posted once, under its once-marker).
pub async fn record_success(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    st: HealthState,
) -> Option<HealthEvent> {
    match success_inner(deps, tenant, product, st).await {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, product = %product, error = %format!("{e:#}"), "ingest recovery could not be recorded");
            None
        }
    }
}

async fn success_inner(
    deps: &Deps,
    tenant: &Tenant,
    product: Product,
    st: HealthState,
) -> anyhow::Result<Option<HealthEvent>> {
    if st.consecutive == 0 && st.operator_ticket.is_none() {
        return Ok(None);
    }
    let now = deps.clock.now();
    if let (Some(op), Some(ticket), Some(first)) = (
        &deps.settings.ingest_health.operator,
        &st.operator_ticket,
        st.first_failure,
    ) {
        let ext = operator_ext_id(&tenant.id, product, first);
        let once = format!(
            "ingest-{}-{}-recovered",
            product.as_str(),
            outbreak_stamp(first)
        );
        let resp_id = format!("{ext}-recovered");
        match deps.store.once_begin(&tenant.id, &once).await? {
            OnceState::Done => {}
            mark => {
                if mark == OnceState::New || !op.tickets.has_response(ticket, &resp_id).await? {
                    op.tickets
                        .add_response(ticket, &recovery_note(tenant, product, &st, now), &resp_id)
                        .await?;
                }
                deps.store.once_finish(&tenant.id, &once).await?;
            }
        }
    }
    tracing::info!(
        ingest_recovered = 1u8, tenant = %tenant.id, product = %product,
        after_failures = st.consecutive, "ingest recovered"
    );
    save(deps, &tenant.id, product, &HealthState::default()).await?;
    Ok(Some(HealthEvent::Recovered {
        after_failures: st.consecutive,
        operator_ticket: st.operator_ticket,
    }))
}

pub fn recovery_note(
    tenant: &Tenant,
    product: Product,
    st: &HealthState,
    now: DateTime<Utc>,
) -> String {
    format!(
        "復旧しました。\n\
         {name}（{id}）の {product_name} のアラート取得が {now} に成功しました。\n\
         障害期間: {first} 〜 {last}（連続失敗 {count} 回）\n\
         この間のアラートは今回の取得で取り込まれています。",
        name = clean_line(&tenant.name, 200),
        id = tenant.id,
        product_name = product.display_name(),
        now = jst(now),
        first = st.first_failure.map(jst).unwrap_or_default(),
        last = st.last_failure.map(jst).unwrap_or_default(),
        count = st.consecutive,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::graph::TokenFailure;

    #[test]
    fn token_refusals_are_credential_problems_and_outages_are_not() {
        let err = |failure| {
            anyhow::Error::new(TokenError {
                tenant: "t1".into(),
                failure,
                detail: "AADSTS7000222: expired".into(),
            })
            .context("Graph alerts_v2")
        };
        for f in [
            TokenFailure::NotConfigured,
            TokenFailure::WrongTenant,
            TokenFailure::Refused {
                status: 401,
                code: Some("7000222".into()),
            },
        ] {
            assert_eq!(failure_kind(&err(f)), FailureKind::Credential);
        }
        assert_eq!(
            failure_kind(&err(TokenFailure::Unavailable)),
            FailureKind::Fetch
        );
        assert_eq!(
            failure_kind(&anyhow::anyhow!("Graph alerts_v2: HTTP 503")),
            FailureKind::Fetch
        );
    }

    #[test]
    fn operator_ids_are_query_safe_and_name_the_outbreak() {
        let t: DateTime<Utc> = "2026-11-02T01:02:03Z".parse().unwrap();
        let id = operator_ext_id("kaede-shoji", Product::Mde, t);
        assert_eq!(id, "mss-kaede-shoji-ingest-mde-20261102T010203Z");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
