//! Per-tenant permission denials and token refusals, so every failure a preflight can report
//! is answered with the real services' shapes ([`crate::Sim::deny`],
//! [`crate::Sim::refuse_token`]).
//!
//! By default every permission is granted. A denied permission makes the endpoints that need
//! it answer 403 after the token check (a real service authenticates first), before anything
//! else is looked at. The bodies, and where each shape comes from:
//!
//! - Graph `security/alerts_v2`: `{"error":{"code":"Forbidden","message":"Missing application
//!   roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,
//!   SecurityIncident.Read.All,SecurityIncident.ReadWrite.All, application roles: ….",
//!   "innerError":{"date","request-id","client-request-id"}}}` — the body quoted in
//!   wazuh/wazuh-documentation issue #7300. `runHuntingQuery` and beta
//!   `analyzedEmails/remediate` (also `/security`) answer the same shape with their own
//!   permission; their exact texts are not documented.
//! - Graph `users` (list and get): `Authorization_RequestDenied`, "Insufficient privileges to
//!   complete the operation." (Azure-Samples/ms-identity-python-daemon issue #8, fixed there by
//!   granting User.Read.All).
//! - Graph `identityProtection/riskDetections` and `riskyUsers/confirmCompromised`: the message
//!   "You cannot perform the requested operation, required scopes are missing in the token."
//!   (microsoftgraph/msgraph-beta-sdk-dotnet issue #723, for riskDetections); the error *code*
//!   is not in that report, the simulator uses Graph's generic `Forbidden`.
//! - Defender for Endpoint (`machines`, `machines/{id}`, `machineactions…`, the action POSTs):
//!   `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles:
//!   Machine.Read.All,Machine.ReadWrite.All, application roles: Machine.Isolate.","target":…}}`
//!   (Azure/Azure-Sentinel PR #14672 and issue #7924); isolate and scan name `Machine.Isolate`
//!   and `Machine.Scan` the same way.
//! - Log Analytics: 403 `InsufficientAccessError` with `innererror` `UnauthorizedClient`, the
//!   shape the endpoint already answers for a workspace the app cannot read (see the
//!   `loganalytics` module). Missing `Data.Read` and a missing role on the workspace are
//!   answered alike, as the service does not tell them apart in its body.
//!
//! "application roles" lists the roles of the same API the simulator considers granted (every
//! role it knows that is not denied), as the real message lists the token's roles.
//!
//! Token refusals answer the Entra token endpoint's error shape (`aad_error`) for one tenant
//! and one resource: `invalid_resource` AADSTS500011 (the API's service principal is not in
//! the tenant, e.g. Defender for Endpoint never provisioned; wording from
//! microsoft/store-submission issue #18), or `invalid_client` AADSTS7000222 (the client secret
//! expired; wording from liprec/vsts-release-aas issue #119, status 401). A wrong client
//! secret (AADSTS7000215) and an unknown client id (AADSTS700016) need no knob: the token
//! endpoint already refuses them.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use axum::response::Response;

use crate::faults::{aad_error, graph_error};
use crate::{lock, Inner};

/// An application permission (or, for Log Analytics, the access the workspace grants) that
/// [`crate::Sim::deny`] can take away from one tenant's app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Graph `security/alerts_v2`.
    SecurityAlertReadAll,
    /// Graph `security/runHuntingQuery`.
    ThreatHuntingReadAll,
    /// Graph `identityProtection/riskDetections`.
    IdentityRiskEventReadAll,
    /// Graph `identityProtection/riskyUsers/confirmCompromised`.
    IdentityRiskyUserReadWriteAll,
    /// Graph `users` and `users/{id}`.
    UserReadAll,
    /// Graph beta `security/collaboration/analyzedEmails/remediate`.
    SecurityAnalyzedMessageReadWriteAll,
    /// Defender for Endpoint `GET machines…` and `GET machineactions…`.
    MachineReadAll,
    /// Defender for Endpoint `POST machines/{id}/isolate|unisolate`.
    MachineIsolate,
    /// Defender for Endpoint `POST machines/{id}/runAntiVirusScan`.
    MachineScan,
    /// Log Analytics query API: `Data.Read` and the role on the workspace.
    LogAnalyticsDataRead,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Graph,
    Mde,
    LogAnalytics,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::SecurityAlertReadAll,
        Permission::ThreatHuntingReadAll,
        Permission::IdentityRiskEventReadAll,
        Permission::IdentityRiskyUserReadWriteAll,
        Permission::UserReadAll,
        Permission::SecurityAnalyzedMessageReadWriteAll,
        Permission::MachineReadAll,
        Permission::MachineIsolate,
        Permission::MachineScan,
        Permission::LogAnalyticsDataRead,
    ];

    /// The permission's name as Entra shows it.
    pub fn name(self) -> &'static str {
        match self {
            Permission::SecurityAlertReadAll => "SecurityAlert.Read.All",
            Permission::ThreatHuntingReadAll => "ThreatHunting.Read.All",
            Permission::IdentityRiskEventReadAll => "IdentityRiskEvent.Read.All",
            Permission::IdentityRiskyUserReadWriteAll => "IdentityRiskyUser.ReadWrite.All",
            Permission::UserReadAll => "User.Read.All",
            Permission::SecurityAnalyzedMessageReadWriteAll => {
                "SecurityAnalyzedMessage.ReadWrite.All"
            }
            Permission::MachineReadAll => "Machine.Read.All",
            Permission::MachineIsolate => "Machine.Isolate",
            Permission::MachineScan => "Machine.Scan",
            Permission::LogAnalyticsDataRead => "Data.Read",
        }
    }

    fn api(self) -> Api {
        match self {
            Permission::MachineReadAll | Permission::MachineIsolate | Permission::MachineScan => {
                Api::Mde
            }
            Permission::LogAnalyticsDataRead => Api::LogAnalytics,
            _ => Api::Graph,
        }
    }

    /// "API required roles" of the missing-roles message.
    fn required_roles(self) -> &'static str {
        match self {
            Permission::SecurityAlertReadAll => "SecurityAlert.Read.All,SecurityAlert.ReadWrite.All,SecurityIncident.Read.All,SecurityIncident.ReadWrite.All",
            Permission::MachineReadAll => "Machine.Read.All,Machine.ReadWrite.All",
            other => other.name(),
        }
    }
}

/// The resource a token is requested for ([`crate::Sim::refuse_token`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `https://graph.microsoft.com`
    Graph,
    /// `https://api.securitycenter.microsoft.com`
    Mde,
    /// `https://api.loganalytics.io`
    LogAnalytics,
}

impl Resource {
    pub fn url(self) -> &'static str {
        match self {
            Resource::Graph => crate::graph::GRAPH_RESOURCE,
            Resource::Mde => crate::mde::MDE_RESOURCE,
            Resource::LogAnalytics => crate::loganalytics::LOGANALYTICS_RESOURCE,
        }
    }
}

/// How the token endpoint refuses ([`crate::Sim::refuse_token`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// 400 `invalid_resource`, AADSTS500011: the resource's service principal is not in the
    /// tenant.
    ResourceNotInTenant,
    /// 401 `invalid_client`, AADSTS7000222: the client secret expired.
    SecretExpired,
}

#[derive(Default)]
pub(crate) struct PermissionState {
    denied: HashSet<(usize, Permission)>,
    refused: HashMap<(usize, Resource), TokenRefusal>,
}

impl PermissionState {
    pub fn deny(&mut self, tenant: usize, p: Permission) {
        self.denied.insert((tenant, p));
    }

    pub fn allow(&mut self, tenant: usize, p: Permission) {
        self.denied.remove(&(tenant, p));
    }

    pub fn refuse(&mut self, tenant: usize, r: Resource, how: Option<TokenRefusal>) {
        match how {
            Some(h) => {
                self.refused.insert((tenant, r), h);
            }
            None => {
                self.refused.remove(&(tenant, r));
            }
        }
    }

    pub fn clear(&mut self) {
        self.denied.clear();
        self.refused.clear();
    }
}

impl Inner {
    /// The 403 to answer when `p` is denied to the tenant's app, else `None`.
    pub(crate) fn denied(&self, tenant: usize, p: Permission) -> Option<Response> {
        let state = lock(&self.permissions);
        if !state.denied.contains(&(tenant, p)) {
            return None;
        }
        let granted: Vec<&str> = Permission::ALL
            .iter()
            .filter(|q| q.api() == p.api() && !state.denied.contains(&(tenant, **q)))
            .map(|q| q.name())
            .collect();
        drop(state);
        let missing_roles = format!(
            "Missing application roles. API required roles: {}, application roles: {}.",
            p.required_roles(),
            granted.join(",")
        );
        tracing::debug!(tenant, permission = p.name(), "permission denied");
        Some(match p {
            Permission::UserReadAll => graph_error(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            Permission::IdentityRiskEventReadAll | Permission::IdentityRiskyUserReadWriteAll => {
                graph_error(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "You cannot perform the requested operation, required scopes are missing in the token.",
                )
            }
            Permission::MachineReadAll | Permission::MachineIsolate | Permission::MachineScan => {
                crate::faults::mde_error(StatusCode::FORBIDDEN, "Forbidden", &missing_roles)
            }
            Permission::LogAnalyticsDataRead => crate::loganalytics::la_error(
                StatusCode::FORBIDDEN,
                "InsufficientAccessError",
                "The provided credentials have insufficient access to perform the requested operation",
                Some((
                    "UnauthorizedClient",
                    "The service principal does not have sufficient permissions to access this resource",
                )),
            ),
            _ => graph_error(StatusCode::FORBIDDEN, "Forbidden", &missing_roles),
        })
    }

    /// The token endpoint's refusal for this tenant and resource (a URL without the
    /// `/.default`), if one was set.
    pub(crate) fn token_refused(
        &self,
        tenant: usize,
        resource: &str,
        client_id: &str,
    ) -> Option<Response> {
        let r = [Resource::Graph, Resource::Mde, Resource::LogAnalytics]
            .into_iter()
            .find(|r| r.url() == resource.trim_end_matches('/'))?;
        let how = *lock(&self.permissions).refused.get(&(tenant, r))?;
        let azure_tenant = &self.tenants[tenant].azure_tenant_id;
        Some(match how {
            TokenRefusal::ResourceNotInTenant => aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {} was not found in the tenant named {azure_tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                    r.url()
                ),
            ),
            TokenRefusal::SecretExpired => aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000222,
                &format!(
                    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
                ),
            ),
        })
    }
}
