//! Tenant isolation: a credential or token of one customer tenant must never be used for
//! another tenant's data. Every Entra token the simulator issues carries its tenant
//! ([`crate::EntraToken::tenant`]); each tenant-scoped endpoint works out which tenant the
//! *request* is about and compares. A mismatch is a violation: counted and kept for
//! [`crate::Sim::isolation_violations`] (tests assert it stays empty), logged at error level
//! with target `mss_sim::isolation` (so a run through the `mss` binary shows it too), and
//! refused.
//!
//! Which tenant a request is about (Graph and the Defender APIs have no tenant in their URLs;
//! the token decides whose data is served, so the request's tenant is what it names):
//! - the token endpoint: the tenant in its path, against the tenant whose app (client id)
//!   presents itself there;
//! - `alerts_v2` pages after the first: the tenant whose listing the `$skiptoken` continues;
//! - `users/{id|upn}`, `confirmCompromised`, MDE `machines/{id}…`, `machineactions/{id}`,
//!   `machineactions?$filter=machineId eq '…'`, a Log Analytics workspace: the tenant owning
//!   that object;
//! - `runHuntingQuery` and `analyzedEmails/remediate`: the tenant owning the entities the
//!   query binds or the messages named (device ids and names, user ids and UPNs, message ids,
//!   recipients).
//!
//! Ownership comes from what each tenant was given: its devices, users and workspaces, its
//! machine actions, and the evidence of its alerts (attributed to the tenant the alert's own
//! `tenantId` names when that is a simulated tenant, so a misrouted alert's evidence stays its
//! real owner's). An identifier owned by several tenants proves nothing and is not checked;
//! one owned by no tenant neither. Lists with no tenant in the request (the first
//! `alerts_v2` page, `GET users`, `GET riskDetections`, `GET machines`) are served from the
//! token's tenant and cannot be misdirected.
//!
//! Status answered on a violation: endpoints that already refuse an object of another tenant
//! keep their real answer (404 for an unknown device, user or action; 403 for a workspace; 400
//! AADSTS700016 at the token endpoint) — clients depend on those shapes; the others
//! (`alerts_v2` continuation, hunting, remediation) answer 403 in the Graph error shape.

use std::collections::{BTreeSet, HashMap};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::faults::graph_error;
use crate::{lock, Inner};

/// One use of a tenant's token (or credential) for another tenant's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolationViolation {
    /// e.g. `GET machines/{id}`.
    pub endpoint: String,
    /// Azure tenant id of the token (or of the app that presented its credential).
    pub token_tenant: String,
    /// Azure tenant id the request was about.
    pub request_tenant: String,
    /// The identifier that showed it (a device id, a UPN, a workspace id, …; never a secret).
    pub subject: String,
}

/// Evidence keys whose values identify a tenant's object.
const OWNED_KEYS: &[&str] = &[
    "mdeDeviceId",
    "deviceDnsName",
    "azureAdUserId",
    "userPrincipalName",
    "networkMessageId",
    "recipientEmailAddress",
];

#[derive(Default)]
pub(crate) struct IsolationState {
    /// Lower-cased identifier -> tenants owning it.
    owners: HashMap<String, BTreeSet<usize>>,
    pub violations: Vec<IsolationViolation>,
}

impl IsolationState {
    pub fn own(&mut self, tenant: usize, id: &str) {
        let id = id.trim();
        if !id.is_empty() {
            self.owners
                .entry(id.to_lowercase())
                .or_default()
                .insert(tenant);
        }
    }

    /// The evidence of `alert` belongs to `tenant`.
    pub fn own_evidence(&mut self, tenant: usize, alert: &Value) {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        match v {
                            Value::String(s) if OWNED_KEYS.contains(&k.as_str()) => {
                                out.push(s.clone())
                            }
                            _ => walk(v, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut ids = Vec::new();
        if let Some(e) = alert.get("evidence") {
            walk(e, &mut ids);
        }
        for id in ids {
            self.own(tenant, &id);
        }
    }

    /// The tenant that owns `id` when it is not `token_tenant`'s: exactly one owner, another.
    fn foreign_owner(&self, token_tenant: usize, id: &str) -> Option<usize> {
        let owners = self.owners.get(&id.trim().to_lowercase())?;
        if owners.contains(&token_tenant) {
            return None;
        }
        owners.iter().next().copied()
    }
}

impl Inner {
    /// Records the ownership of every tenant's alert evidence (at start).
    pub(crate) fn own_alert_evidence(&self) {
        let mut s = lock(&self.isolation);
        for (feed, t) in self.tenants.iter().enumerate() {
            for a in &t.alerts {
                let owner = a
                    .get("tenantId")
                    .and_then(Value::as_str)
                    .and_then(|id| self.tenant_index(id))
                    .unwrap_or(feed);
                s.own_evidence(owner, a);
            }
        }
    }

    pub(crate) fn own(&self, tenant: usize, id: &str) {
        lock(&self.isolation).own(tenant, id);
    }

    /// Records a violation when the request's tenant is known and is not the token's.
    /// Returns whether it was one.
    pub(crate) fn isolation_check(
        &self,
        endpoint: &str,
        token_tenant: usize,
        request_tenant: Option<usize>,
        subject: &str,
    ) -> bool {
        let Some(rt) = request_tenant.filter(|rt| *rt != token_tenant) else {
            return false;
        };
        let v = IsolationViolation {
            endpoint: endpoint.to_string(),
            token_tenant: self.tenants[token_tenant].azure_tenant_id.clone(),
            request_tenant: self.tenants[rt].azure_tenant_id.clone(),
            subject: subject.to_string(),
        };
        tracing::error!(
            target: "mss_sim::isolation",
            endpoint = %v.endpoint,
            token_tenant = %v.token_tenant,
            request_tenant = %v.request_tenant,
            subject = %v.subject,
            "tenant isolation violation: a token of one tenant was used for another tenant's request"
        );
        lock(&self.isolation).violations.push(v);
        true
    }

    /// Checks each identifier the request names against the token's tenant; the first one
    /// owned only by another tenant is a violation. Empty identifiers are skipped.
    pub(crate) fn isolation_check_ids<'a>(
        &self,
        endpoint: &str,
        token_tenant: usize,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let found = {
            let s = lock(&self.isolation);
            ids.into_iter()
                .filter(|id| !id.trim().is_empty())
                .find_map(|id| {
                    s.foreign_owner(token_tenant, id)
                        .map(|o| (o, id.to_string()))
                })
        };
        match found {
            Some((owner, id)) => self.isolation_check(endpoint, token_tenant, Some(owner), &id),
            None => false,
        }
    }
}

/// 403 in the Graph error shape, for endpoints with no refusal of their own for another
/// tenant's object.
pub(crate) fn forbidden() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation: the request names another tenant's data.",
    )
}
