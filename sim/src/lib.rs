//! A simulated Microsoft 365 tenant (Entra ID token endpoint, Graph `security/alerts_v2`) and a
//! simulated OpsRamp, served together over HTTPS.
//!
//! Why HTTPS with a generated CA instead of plain HTTP: the real clients (notably
//! `azure_identity`) refuse non-https authority hosts, and we never want a "disable certificate
//! verification" switch to exist anywhere in the project. Tests and `mss sim serve` trust
//! [`Sim::ca_pem`] instead.
//!
//! Everything the simulator does follows `/work/shared/spec/microsoft-api.md` and
//! `/work/shared/spec/opsramp-api.md`; where those say "not documented", the choice made here is
//! stated in a doc comment next to the code that makes it.
//!
//! Response actions (added later, all in memory only, never in `state_file`): Defender for
//! Endpoint machine actions under [`Sim::mde_base`] on devices added with [`Sim::add_devices`];
//! Graph `users/{id}` and Identity Protection `riskyUsers/confirmCompromised` on users added
//! with [`Sim::add_users`]; and Graph beta `security/collaboration/analyzedEmails/remediate`
//! under [`Sim::graph_beta_base`]. See the `mde` and `graph_actions` modules for the choices
//! made where the API facts are silent.
//!
//! Advanced hunting (added later, in memory only): Graph `POST security/runHuntingQuery` answers
//! canned, deterministic rows per query of the mss client, which marks each query with a first
//! line `// mss-query: <id>` and passes values as `let` bindings of KQL string literals and
//! `datetime(…)`. Those bindings are lexed strictly (a badly escaped literal answers 400
//! "Syntax error"), their unescaped values are echoed in the rows, and row timestamps fall
//! inside the `WindowStart`/`WindowEnd` bindings. The per-tenant quota (45 calls a minute and
//! 1,500 an hour by default, [`Sim::set_hunting_quota`]) runs on the simulated clock and
//! answers 429 with `Retry-After`; calls are recorded for tests in [`Sim::hunting_queries`].
//! See the `hunting` module for the choices made where the API facts are silent.
//!
//! Log Analytics (added later, in memory only): `POST {loganalytics_base}/v1/workspaces/{id}/query`
//! ([`Sim::loganalytics_base`]) with tokens for `https://api.loganalytics.io/.default`, on
//! workspaces added to a tenant with [`Sim::add_workspace`] (any other answers 403
//! `InsufficientAccessError`). It serves the rows added with [`Sim::add_log_rows`] per workspace
//! and rule id (the mss client's first line `// mss-query: <rule id>`), inside the half-open
//! window of the `WindowStart`/`WindowEnd` bindings, which are lexed strictly with
//! `BreakGlassAccounts` (`dynamic([...])`). [`Sim::set_loganalytics_mode`] answers a rule with a
//! partial error, 204 or 504; calls are recorded in [`Sim::loganalytics_queries`]. See the
//! `loganalytics` module for the choices made where the API facts are silent.
//!
//! Permissions (added for `mss preflight`, in memory only): every application permission is
//! granted until [`Sim::deny`] takes one away from a tenant's app; the endpoints needing it
//! then answer 403 in that API's real shape. [`Sim::refuse_token`] makes the token endpoint
//! refuse one resource (AADSTS500011 or AADSTS7000222). The list endpoints a preflight probes
//! with `$top=1` are served too: Defender for Endpoint `GET machines`, Graph `GET users` and
//! `GET identityProtection/riskDetections` (detections added with
//! [`Sim::add_risk_detections`]). See the `permissions` module for each body and its source.
//!
//! Tenant isolation (added for the security tests, in memory only): every Entra token carries
//! its tenant, and each tenant-scoped endpoint compares it with the tenant the request is about
//! (the token endpoint's path, the `$skiptoken` of an `alerts_v2` listing, the owner of a
//! device, user, workspace, machine action, or of the entities a hunting query binds). A
//! mismatch is refused and recorded in [`Sim::isolation_violations`]; see the `isolation`
//! module for the rules.
//!
//! OpsRamp tickets come in two kinds served alike: incidents under
//! `{opsramp_base}/api/v2/tenants/{tenantId}/incidents…` ([`Sim::tickets`]) and service requests
//! under `…/serviceRequests…` ([`Sim::service_requests`]), each with its own numbering.
//! **Simulator-only:** a create request may carry `simReceivedAt` (RFC 3339), which becomes the
//! ticket's `createdDate` (in UTC, `yyyy-MM-ddTHH:mm:ss+0000`) instead of the wall clock, so a
//! test can file a customer inquiry "received" at a chosen time. Real OpsRamp has no such field;
//! clients must never send it.

mod faults;
mod graph;
mod graph_actions;
mod hunting;
mod isolation;
mod loganalytics;
mod mde;
mod opsramp;
mod permissions;
mod state;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use isolation::IsolationViolation;
pub use permissions::{Permission, Resource, TokenRefusal};

/// One simulated Microsoft 365 customer tenant.
#[derive(Clone)]
pub struct SimTenant {
    pub azure_tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Alert versions as Graph would serve them. Several entries may share an `id`: a later
    /// `lastUpdateDateTime` is an update of the same alert, revealed by the simulated clock.
    /// **Simulator-only:** a version may carry `simVisibleAfterSeconds` (a number): Graph
    /// indexes it late, serving it only from `lastUpdateDateTime` + that many seconds of the
    /// simulated clock (until then the alert's previous visible version, if any, is served).
    /// Ignored under `all_visible`; the key is removed before the alert is served.
    pub alerts: Vec<serde_json::Value>,
}

/// Hand-written so that a `{:?}` in someone's log line can never leak the client secret.
impl std::fmt::Debug for SimTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTenant")
            .field("azure_tenant_id", &self.azure_tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("alerts", &self.alerts.len())
            .finish()
    }
}

#[derive(Clone)]
pub struct SimConfig {
    pub tenants: Vec<SimTenant>,
    /// e.g. "client_1234"
    pub opsramp_tenant_id: String,
    pub opsramp_client_id: String,
    pub opsramp_client_secret: String,
    /// OpsRamp tickets are persisted here (JSON, atomic write tmp+rename after each mutation)
    /// and loaded at start when the file exists, so a second run continues the numbering.
    pub state_file: Option<PathBuf>,
    /// true: every alert version is visible regardless of the clock (for `mss sim serve`,
    /// where nobody drives the clock) and the latest version of each alert is served.
    pub all_visible: bool,
    pub start_clock: DateTime<Utc>,
}

/// Hand-written so that secrets never reach logs.
impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("tenants", &self.tenants)
            .field("opsramp_tenant_id", &self.opsramp_tenant_id)
            .field("opsramp_client_id", &self.opsramp_client_id)
            .field("opsramp_client_secret", &"<redacted>")
            .field("state_file", &self.state_file)
            .field("all_visible", &self.all_visible)
            .field("start_clock", &self.start_clock)
            .finish()
    }
}

/// Which simulated endpoint a [`Fault`] applies to.
///
/// Mapping of OpsRamp paths: `OpsRampCreate` = `POST incidents`; `OpsRampUpdate` =
/// `POST incidents/{id}` and `POST incidents/{id}/close`; `OpsRampResponse` =
/// `POST incidents/{id}/responses`; `OpsRampSearch` = `GET incidents/search` and
/// `GET incidents/{id}/responses/search` (both are the paginated GETs OpsRamp rate-limits
/// together); `OpsRampGet` = `GET incidents/{id}`. `OpsRampToken` covers both token paths.
/// The same knobs cover the matching `serviceRequests…` paths (OpsRamp's limits are per tenant
/// for all tickets, not per ticket kind), so one fault hits whichever kind is called next.
///
/// Defender for Endpoint: `MdeAction` = the three `POST machines/{id}/…` action paths;
/// `MdeRead` = `GET machines/{id}`, `GET machineactions` and `GET machineactions/{id}`. Their
/// faults answer in the MDE error shape `{"error":{"code","message","target"}}`.
/// Graph: `GraphConfirmCompromised` = `POST identityProtection/riskyUsers/confirmCompromised`
/// (its 429s carry no `Retry-After`, as the API facts say for Identity Protection);
/// `GraphUsers` = `GET users/{id}` and `GET users`; `GraphRiskDetections` =
/// `GET identityProtection/riskDetections` (429s without `Retry-After`, like
/// confirmCompromised); `GraphEmailRemediate` = beta
/// `POST security/collaboration/analyzedEmails/remediate`; `GraphHunting` =
/// `POST security/runHuntingQuery` (its faults come before, and never use, the hunting quota).
///
/// Log Analytics: `LogAnalytics` = `POST v1/workspaces/{id}/query`; its faults answer in the
/// API's error shape `{"error":{"message","code","correlationId"}}` (429 with `Retry-After`,
/// code `ThrottledError`; 5xx with `InternalServerError`, `ServiceUnavailableError` or
/// `GatewayTimeout`: the codes are not documented, these are the simulator's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    EntraToken,
    GraphAlerts,
    GraphConfirmCompromised,
    GraphUsers,
    GraphRiskDetections,
    GraphEmailRemediate,
    GraphHunting,
    LogAnalytics,
    MdeAction,
    MdeRead,
    OpsRampToken,
    OpsRampCreate,
    OpsRampUpdate,
    OpsRampResponse,
    OpsRampSearch,
    OpsRampGet,
}

#[derive(Clone, Debug)]
pub enum Fault {
    None,
    /// The next `times` requests answer 429. Graph: header `Retry-After` = `retry_after`
    /// (fractional, e.g. "0.25"), body `{"error":{"code":"TooManyRequests",…}}`. OpsRamp: body
    /// `{"error":"throttled","error_description":"Too Many Requests"}` with `X-RateLimit-Limit`,
    /// `X-RateLimit-Remaining` and `X-RateLimit-Reset` (= now epoch secs + ceil(retry_after)) and
    /// no `Retry-After` (OpsRamp documents only the X-RateLimit headers). Entra: an AADSTS-shaped
    /// `temporarily_unavailable` body with `Retry-After`. Defender for Endpoint: body
    /// `{"error":{"code":"TooManyRequests",…,"target"}}` with `Retry-After` printed like Graph's
    /// (the format is not documented for MDE; decimal seconds, so parse it as a float). Graph
    /// `GraphConfirmCompromised`: the Graph body with no `Retry-After`.
    TooManyRequests {
        times: u32,
        retry_after: f64,
    },
    /// The next `times` requests answer `status` (meant for 5xx, any status is accepted).
    ServerError {
        times: u32,
        status: u16,
    },
    /// The next `times` requests are delayed by `millis`, then handled normally.
    Latency {
        times: u32,
        millis: u64,
    },
    /// OpsRamp API endpoints only (ignored elsewhere, and the count is not consumed there): the
    /// next `times` requests answer 407 `{"error":"invalid_token",…}` and the presented token is
    /// invalidated, so the client has to re-authenticate rather than just retry.
    TokenExpired {
        times: u32,
    },
    /// Random faults for chaos runs: with probability `p429` a 429 (as above), else with
    /// probability `p5xx` a 503. Never exhausted.
    Probability {
        p429: f64,
        p5xx: f64,
        retry_after: f64,
    },
    /// Like `Probability`, but drawn from a random generator seeded with `seed` (and the
    /// endpoint), so a chaos run injects the same sequence of faults into the same sequence of
    /// requests to that endpoint: each request answers 429 with probability `p429` (with
    /// `Retry-After` = `retry_after`, fractional), else `status` with probability `p5xx`,
    /// else is handled normally. Never exhausted. Setting it again restarts the sequence.
    SeededRate {
        p429: f64,
        p5xx: f64,
        status: u16,
        retry_after: f64,
        seed: u64,
    },
}

/// Faults the simulator injected at one endpoint ([`Sim::faults_injected`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// 429 answers.
    pub too_many_requests: u64,
    /// 5xx (or other `ServerError`/`SeededRate` status) answers.
    pub server_errors: u64,
    /// Requests delayed by `Latency`.
    pub delayed: u64,
    /// OpsRamp 407 answers of `TokenExpired`.
    pub token_expired: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimTicket {
    /// `INC` + 10 digits for incidents, `SRQ` + 10 digits for service requests
    pub id: String,
    pub subject: String,
    pub description: String,
    pub priority: String,
    pub status: String,
    pub ext_ticket_id: Option<String>,
    pub to_email: Option<String>,
    pub cc: Option<String>,
    /// `createdDate` (`yyyy-MM-ddTHH:mm:ss+0000`, UTC): the wall clock at create, or the
    /// simulator-only `simReceivedAt` when the create request carried one.
    pub created: String,
    pub updated: String,
    /// Count of successful update (`POST incidents/{id}`, `POST serviceRequests/{id}`) and
    /// response calls on it; `close` is not counted.
    pub updates: u32,
    pub responses: Vec<SimResponse>,
    /// The create request's `attachments`, as sent (not part of `raw`: how OpsRamp serves
    /// attachments back is not documented, so the simulator does not serve them).
    #[serde(default)]
    pub attachments: Vec<SimAttachment>,
    /// The last full ticket object, exactly as `GET incidents/{id}` (or
    /// `GET serviceRequests/{id}`) serves it; `customFields` and `dueDate` are read from here.
    pub raw: serde_json::Value,
}

impl SimTicket {
    /// The OpsRamp client the ticket was created under (`client.uniqueId` of the ticket
    /// object).
    pub fn client(&self) -> &str {
        self.raw
            .get("client")
            .and_then(|c| c.get("uniqueId"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimResponse {
    pub description: String,
    pub internal: bool,
    pub ext_ticket_response_id: Option<String>,
    pub created: String,
    /// The response's `attachments`, as sent (not served by `responses/search`).
    #[serde(default)]
    pub attachments: Vec<SimAttachment>,
}

/// One entry of a create or response request's `attachments: [{name, file}]`. `file` is kept
/// as sent (standard base64, checked on receipt); [`SimAttachment::bytes`] decodes it, so a
/// test can compare what arrived with what was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAttachment {
    pub name: String,
    pub file: String,
}

impl SimAttachment {
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.file)
            .expect("checked as base64 when it was received")
    }
}

/// Request counters. Every request that reaches an endpoint is counted, including the ones
/// answered by a fault or rejected (bad credentials, bad token), because tests use these to
/// check how often a client calls, not how often it succeeds.
#[derive(Clone, Debug, Default)]
pub struct SimStats {
    /// Requests to the Entra token endpoint.
    pub entra_tokens: u64,
    /// Requests to Graph `security/alerts_v2` (every page counts).
    pub graph_alert_requests: u64,
    /// Requests to either OpsRamp token path.
    pub opsramp_tokens: u64,
    /// Requests to the OpsRamp `/api/v2/tenants/…` API.
    pub opsramp_requests: u64,
    /// Requests to Graph `security/runHuntingQuery`.
    pub hunting_requests: u64,
    /// Requests to the Log Analytics query endpoint.
    pub loganalytics_requests: u64,
}

/// How the Log Analytics endpoint answers a rule's query ([`Sim::set_loganalytics_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogAnalyticsMode {
    /// 200 with the rows.
    #[default]
    Normal,
    /// 200 with the rows and an `error` object with code `PartialError`.
    PartialError,
    /// 204, no body (no data).
    NoContent,
    /// 504 `GatewayTimeout`, as when a query runs past the service's limit.
    Timeout,
}

/// One Log Analytics query that carried a valid token for the API, whatever it was answered.
/// Requests answered by a fault or refused for their token are only counted
/// ([`SimStats::loganalytics_requests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimLogQuery {
    /// The token's tenant.
    pub azure_tenant_id: String,
    /// From the path, lower-cased.
    pub workspace_id: String,
    /// The body's `query` as sent (empty without a string `query`).
    pub query: String,
    pub timespan: Option<String>,
    /// From the first line `// mss-query: <id>`, once the query was read.
    pub rule_id: Option<String>,
    /// The window rows were served from, once the query was read.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The unescaped values of the `BreakGlassAccounts` binding, when bound.
    pub break_glass: Option<Vec<String>>,
    pub status: u16,
}

/// One Graph `security/runHuntingQuery` call that carried a valid Graph token, whatever it was
/// answered (200, 400, or 429 from the quota). Calls answered by a fault or refused for their
/// token are not recorded (they are counted in [`SimStats::hunting_requests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimHuntingCall {
    /// The token's tenant.
    pub azure_tenant_id: String,
    /// The body's `Query` as sent (empty when the body had no string `Query`).
    pub query: String,
    /// The body's `Timespan` as sent, if it was a string.
    pub timespan: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The clock the quota was counted on: the simulated clock (the wall clock under
    /// `all_visible`).
    pub at: DateTime<Utc>,
}

/// Cheap to clone: all clones drive the same running server.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

pub(crate) struct EntraToken {
    pub tenant: usize,
    pub resource: String,
    pub expires: Instant,
}

pub(crate) struct Inner {
    pub base_url: String,
    pub ca_pem: String,
    pub tenants: Vec<SimTenant>,
    /// Each tenant's alerts' times, read once at start (`graph::AlertTimes`): every page of
    /// a listing filters all of a tenant's alerts, and parsing their times for each page
    /// was most of the simulator's CPU at 100,000 alerts (issue 11's pipeline benchmark).
    pub alert_times: Vec<Vec<graph::AlertTimes>>,
    pub opsramp_tenant_id: String,
    pub opsramp_client_id: String,
    pub opsramp_client_secret: String,
    pub state_file: Option<PathBuf>,
    pub all_visible: bool,
    pub clock: Mutex<DateTime<Utc>>,
    pub faults: Mutex<HashMap<Endpoint, Fault>>,
    /// The random generator of each endpoint's `Fault::SeededRate`, seeded when it is set.
    pub fault_rngs: Mutex<HashMap<Endpoint, rand::rngs::StdRng>>,
    /// What the fault gate injected, per endpoint ([`Sim::faults_injected`]).
    pub injected: Mutex<HashMap<Endpoint, InjectedFaults>>,
    pub stats: Mutex<SimStats>,
    pub entra_tokens: Mutex<HashMap<String, EntraToken>>,
    /// OpsRamp token -> expiry.
    pub opsramp_tokens: Mutex<HashMap<String, Instant>>,
    /// Further OpsRamp clients the API serves besides `opsramp_tenant_id`
    /// ([`Sim::add_opsramp_client`]).
    pub opsramp_clients: Mutex<Vec<String>>,
    pub store: Mutex<state::Store>,
    /// Devices, machine actions and the MDE request counter.
    pub mde: Mutex<mde::MdeState>,
    /// Users, confirmCompromised records and rate limiter, email remediations.
    pub directory: Mutex<graph_actions::DirectoryState>,
    /// Hunting quota settings, windows per tenant, and the recorded calls.
    pub hunting: Mutex<hunting::HuntingState>,
    /// Workspaces, their rows and modes, and the recorded queries.
    pub loganalytics: Mutex<loganalytics::LogAnalyticsState>,
    /// Denied permissions and refused tokens per tenant ([`Sim::deny`], [`Sim::refuse_token`]).
    pub permissions: Mutex<permissions::PermissionState>,
    /// Who owns which identifier, and the violations seen ([`Sim::isolation_violations`]).
    pub isolation: Mutex<isolation::IsolationState>,
    server: Mutex<Option<ServerTask>>,
}

struct ServerTask {
    handle: axum_server::Handle,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A poisoned lock only means another request panicked; the data is still usable for a
/// simulator, and refusing every later request would hide the original failure.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Index of the tenant with that Azure tenant id (case-insensitive, as the token endpoint).
    pub(crate) fn tenant_index(&self, azure_tenant_id: &str) -> Option<usize> {
        self.tenants
            .iter()
            .position(|t| t.azure_tenant_id.eq_ignore_ascii_case(azure_tenant_id))
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut lock(&self.stats));
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        *lock(&self.clock)
    }
}

/// Opaque random token; long enough that guessing is not a concern even in a test.
pub(crate) fn random_token(len: usize) -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A random lowercase GUID-shaped string (8-4-4-4-12 hex), for ids and request ids.
pub(crate) fn random_guid() -> String {
    let h: String = (0..32)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Sim {
    /// Starts the simulator on `listen` (e.g. `127.0.0.1:0` for a free port).
    pub async fn start(cfg: SimConfig, listen: SocketAddr) -> anyhow::Result<Sim> {
        // reqwest/azure_core built with "rustls-no-provider" need a process-wide provider;
        // installing it here means a test only has to start a Sim first. Another component may
        // already have installed one, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let tls = tls::generate().context("generating the simulator's test CA")?;
        let store = match &cfg.state_file {
            Some(p) if p.exists() => state::Store::load(p)?,
            Some(p) => {
                // Fail at start, not at the first ticket, when the directory cannot be made.
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                state::Store::default()
            }
            None => state::Store::default(),
        };

        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("binding simulator on {listen}"))?;
        listener.set_nonblocking(true)?;
        let mut addr = listener.local_addr()?;
        // The certificate only names 127.0.0.1 and localhost; a wildcard bind is reached
        // through loopback.
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let base_url = format!("https://{addr}");

        let alert_times = cfg
            .tenants
            .iter()
            .map(|t| t.alerts.iter().map(graph::AlertTimes::of).collect())
            .collect();
        let inner = Arc::new(Inner {
            base_url,
            ca_pem: tls.ca_pem.clone(),
            tenants: cfg.tenants,
            alert_times,
            opsramp_tenant_id: cfg.opsramp_tenant_id,
            opsramp_client_id: cfg.opsramp_client_id,
            opsramp_client_secret: cfg.opsramp_client_secret,
            state_file: cfg.state_file,
            all_visible: cfg.all_visible,
            clock: Mutex::new(cfg.start_clock),
            faults: Mutex::new(HashMap::new()),
            fault_rngs: Mutex::new(HashMap::new()),
            injected: Mutex::new(HashMap::new()),
            stats: Mutex::new(SimStats::default()),
            entra_tokens: Mutex::new(HashMap::new()),
            opsramp_tokens: Mutex::new(HashMap::new()),
            opsramp_clients: Mutex::new(Vec::new()),
            store: Mutex::new(store),
            mde: Mutex::new(mde::MdeState::default()),
            directory: Mutex::new(graph_actions::DirectoryState::default()),
            hunting: Mutex::new(hunting::HuntingState::default()),
            loganalytics: Mutex::new(loganalytics::LogAnalyticsState::default()),
            permissions: Mutex::new(permissions::PermissionState::default()),
            isolation: Mutex::new(isolation::IsolationState::default()),
            server: Mutex::new(None),
        });
        inner.own_alert_evidence();

        let app = graph::router()
            .merge(graph_actions::router())
            .merge(hunting::router())
            .merge(loganalytics::router())
            .merge(mde::router())
            .nest("/opsramp", opsramp::router())
            .fallback(not_found)
            .with_state(inner.clone());

        let handle = axum_server::Handle::new();
        let rustls_config = axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config);
        let server = axum_server::from_tcp_rustls(listener, rustls_config).handle(handle.clone());
        let join = tokio::spawn(server.serve(app.into_make_service()));
        *lock(&inner.server) = Some(ServerTask { handle, join });
        tracing::info!(base_url = %inner.base_url, "simulator listening");
        Ok(Sim { inner })
    }

    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// Token URL is `{authority}/{tenant}/oauth2/v2.0/token`, as with login.microsoftonline.com.
    pub fn authority_host(&self) -> String {
        self.inner.base_url.clone()
    }

    pub fn graph_base(&self) -> String {
        format!("{}/graph/v1.0", self.inner.base_url)
    }

    /// Graph beta, for `security/collaboration/analyzedEmails/remediate`.
    pub fn graph_beta_base(&self) -> String {
        format!("{}/graph/beta", self.inner.base_url)
    }

    /// Defender for Endpoint API base, standing in for `https://api.security.microsoft.com/api`.
    /// Tokens must be issued for the scope `https://api.securitycenter.microsoft.com/.default`.
    pub fn mde_base(&self) -> String {
        format!("{}/mde/api", self.inner.base_url)
    }

    /// Log Analytics query API base, standing in for `https://api.loganalytics.azure.com`.
    /// Tokens must be issued for the scope `https://api.loganalytics.io/.default`.
    pub fn loganalytics_base(&self) -> String {
        format!("{}/loganalytics", self.inner.base_url)
    }

    pub fn opsramp_base(&self) -> String {
        format!("{}/opsramp", self.inner.base_url)
    }

    pub fn set_clock(&self, now: DateTime<Utc>) {
        *lock(&self.inner.clock) = now;
    }

    /// Replaces the fault for that endpoint (counters restart from the new value).
    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        if let Fault::SeededRate { seed, .. } = &fault {
            use rand::SeedableRng as _;
            // One stream per endpoint, so faults at one endpoint do not shift another's.
            let mix = seed ^ (endpoint as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            lock(&self.inner.fault_rngs).insert(endpoint, rand::rngs::StdRng::seed_from_u64(mix));
        }
        lock(&self.inner.faults).insert(endpoint, fault);
    }

    /// What the fault knobs injected so far, per endpoint (every endpoint that injected at
    /// least one fault since the start). Not reset by [`Sim::clear_faults`].
    pub fn faults_injected(&self) -> HashMap<Endpoint, InjectedFaults> {
        lock(&self.inner.injected).clone()
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Serves a further OpsRamp client under `/api/v2/tenants/{client_id}/…` (e.g. the
    /// provider's own client, for alerts about the service itself), with the same API
    /// credential, as a partner's key reaches its clients. Each ticket belongs to the client
    /// it was created under ([`SimTicket::client`]); searches, reads and updates under one
    /// client never see another's tickets (404), and each client numbers its tickets from
    /// the one shared sequence, as ids are unique per installation.
    pub fn add_opsramp_client(&self, client_id: &str) {
        let mut c = lock(&self.inner.opsramp_clients);
        if !c.iter().any(|x| x == client_id) {
            c.push(client_id.to_string());
        }
    }

    /// All incidents in creation order.
    pub fn tickets(&self) -> Vec<SimTicket> {
        lock(&self.inner.store).tickets.clone()
    }

    /// All service requests (`serviceRequests…`, ids `SRQ` + 10 digits) in creation order, in
    /// the same shape as [`Sim::tickets`].
    pub fn service_requests(&self) -> Vec<SimTicket> {
        lock(&self.inner.store).service_requests.clone()
    }

    /// Adds (or replaces, by `id`) Defender for Endpoint machines of one tenant. Each object is
    /// an MDE machine (`id`, `computerDnsName`, `osPlatform`, `version`, `osBuild`,
    /// `healthStatus`, `rbacGroupName`, `rbacGroupId` (a string), `machineTags`, `lastIpAddress`,
    /// `aadDeviceId`, …), served as given by `GET machines/{id}` except for the simulator-only
    /// knobs (every key starting with `sim`), which are read here:
    /// - `simActionOutcome`: terminal status of every action on this device, `"Succeeded"`
    ///   (default), `"Failed"`, `"TimeOut"` or `"Cancelled"`;
    /// - `simActionMinutes`: simulated minutes from request to that terminal status (default 3,
    ///   fractions allowed); seconds of wall time when `all_visible` is set;
    /// - `simUnsupported`: action types (`"Isolate"`, `"Unisolate"`, `"RunAntiVirusScan"`) that
    ///   answer 400 `OsPlatformNotSupported` on this device.
    ///
    /// A device never added is unknown (404), also to the other tenants' tokens.
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id`, a device without a string `id` or an invalid knob: these
    /// are mistakes in the test or demo set-up, better loud than a puzzling 404 later.
    pub fn add_devices(&self, azure_tenant_id: &str, devices: Vec<serde_json::Value>) {
        let tenant = self
            .inner
            .tenant_index(azure_tenant_id)
            .unwrap_or_else(|| panic!("add_devices: no simulated tenant {azure_tenant_id}"));
        let mut state = lock(&self.inner.mde);
        for d in devices {
            for k in ["id", "computerDnsName"] {
                if let Some(v) = d.get(k).and_then(serde_json::Value::as_str) {
                    self.inner.own(tenant, v);
                }
            }
            state.add_device(tenant, d);
        }
    }

    /// Adds (or replaces, by `id`) Graph users of one tenant: `id` (object id),
    /// `displayName`, `mail`, `userPrincipalName`, and any other user property to serve. They
    /// are found by `GET users/{id|upn}` and accepted by `confirmCompromised`; a user never added
    /// is unknown (404).
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id` or a user without a string `id`.
    pub fn add_users(&self, azure_tenant_id: &str, users: Vec<serde_json::Value>) {
        let tenant = self
            .inner
            .tenant_index(azure_tenant_id)
            .unwrap_or_else(|| panic!("add_users: no simulated tenant {azure_tenant_id}"));
        let mut state = lock(&self.inner.directory);
        for u in users {
            for k in ["id", "userPrincipalName", "mail"] {
                if let Some(v) = u.get(k).and_then(serde_json::Value::as_str) {
                    self.inner.own(tenant, v);
                }
            }
            state.add_user(tenant, u);
        }
    }

    /// Adds Identity Protection risk detections of one tenant, served in this order by
    /// `GET identityProtection/riskDetections` (objects as Graph's riskDetection: `id`,
    /// `riskEventType`, `riskLevel`, `userPrincipalName`, `detectedDateTime`, …, served as
    /// given). None by default: the list answers an empty `value`.
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id` or a detection without a string `id`.
    pub fn add_risk_detections(&self, azure_tenant_id: &str, detections: Vec<serde_json::Value>) {
        let tenant = self.inner.tenant_index(azure_tenant_id).unwrap_or_else(|| {
            panic!("add_risk_detections: no simulated tenant {azure_tenant_id}")
        });
        let mut state = lock(&self.inner.directory);
        for d in detections {
            state.add_risk_detection(tenant, d);
        }
    }

    /// Every machine action created (answered 201), in request order, each as
    /// `GET machineactions/{id}` would serve it now (status as of the current clock).
    pub fn machine_actions(&self) -> Vec<serde_json::Value> {
        let state = lock(&self.inner.mde);
        state
            .actions
            .iter()
            .map(|a| a.to_json(&self.inner))
            .collect()
    }

    /// Count of `POST machines/{id}/{isolate|unisolate|runAntiVirusScan}` requests, including
    /// the ones refused (fault, 401, 404, 400).
    pub fn machine_requests(&self) -> u64 {
        lock(&self.inner.mde).requests
    }

    /// `(azure tenant id, user object id)` for each user of each successful
    /// `confirmCompromised` call, in order (a user listed twice in one call is recorded once).
    pub fn confirmed_users(&self) -> Vec<(String, String)> {
        lock(&self.inner.directory)
            .confirmed
            .iter()
            .map(|(t, u)| (self.inner.tenants[*t].azure_tenant_id.clone(), u.clone()))
            .collect()
    }

    /// Each accepted `analyzedEmails/remediate` request body, in order, with two
    /// simulator-added keys: `simAzureTenantId` (the token's tenant) and `simLocation` (the
    /// `Location` header that was answered).
    pub fn email_remediations(&self) -> Vec<serde_json::Value> {
        lock(&self.inner.directory).remediations.clone()
    }

    /// Status answered by `analyzedEmails/remediate` on success: 204 (default, as the API facts
    /// say) or 202 (what the Graph beta reference page and its example show). Both carry
    /// `Location`; clients should accept either.
    ///
    /// # Panics
    /// On any other status.
    pub fn set_email_remediate_status(&self, status: u16) {
        assert!(
            status == 202 || status == 204,
            "set_email_remediate_status: 202 or 204, not {status}"
        );
        lock(&self.inner.directory).remediate_status = status;
    }

    /// Per-tenant advanced hunting quota: calls per clock-minute and per clock-hour (defaults
    /// 45 and 1,500, the published Defender hunting limits). Counts already made in the
    /// current windows are kept; the new limits apply from the next call.
    pub fn set_hunting_quota(&self, per_minute: u32, per_hour: u32) {
        let mut h = lock(&self.inner.hunting);
        h.per_minute = per_minute;
        h.per_hour = per_hour;
    }

    /// Every `security/runHuntingQuery` call with a valid Graph token, in order (see
    /// [`SimHuntingCall`]).
    pub fn hunting_queries(&self) -> Vec<SimHuntingCall> {
        lock(&self.inner.hunting).calls.clone()
    }

    /// Registers a Log Analytics workspace of one tenant (ids are compared case-insensitively).
    /// Only that tenant's tokens may query it; a workspace never added answers 403.
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id`.
    pub fn add_workspace(&self, azure_tenant_id: &str, workspace_id: &str) {
        let tenant = self
            .inner
            .tenant_index(azure_tenant_id)
            .unwrap_or_else(|| panic!("add_workspace: no simulated tenant {azure_tenant_id}"));
        self.inner.own(tenant, workspace_id);
        lock(&self.inner.loganalytics)
            .workspaces
            .insert(workspace_id.to_lowercase(), tenant);
    }

    /// Appends rows that a workspace's query for `rule_id` answers. Each row is an object with
    /// `Actor`, `Target`, `Operation`, `Detail` (strings; a missing one is served empty) and
    /// optionally `TimeGenerated` (RFC 3339): with it the row is served when that time is in the
    /// query's window, without it the row is placed inside every window asked. Other keys are
    /// served as extra columns.
    ///
    /// # Panics
    /// On a workspace never added, a row that is not an object or an unreadable
    /// `TimeGenerated`: mistakes in the test or scenario set-up.
    pub fn add_log_rows(&self, workspace_id: &str, rule_id: &str, rows: Vec<serde_json::Value>) {
        let ws = workspace_id.to_lowercase();
        let mut state = lock(&self.inner.loganalytics);
        assert!(
            state.workspaces.contains_key(&ws),
            "add_log_rows: workspace {workspace_id} was not added"
        );
        let list = state.rows.entry((ws, rule_id.to_string())).or_default();
        for r in rows {
            let serde_json::Value::Object(m) = r else {
                panic!("add_log_rows: a row is not an object: {r}");
            };
            if let Some(t) = m.get("TimeGenerated") {
                assert!(
                    t.as_str().and_then(hunting::parse_instant).is_some(),
                    "add_log_rows: TimeGenerated {t} is not an RFC 3339 time"
                );
            }
            list.push(m);
        }
    }

    /// How queries for `rule_id` are answered from now on (`"*"`: every rule without a mode
    /// of its own).
    pub fn set_loganalytics_mode(&self, rule_id: &str, mode: LogAnalyticsMode) {
        lock(&self.inner.loganalytics)
            .modes
            .insert(rule_id.to_string(), mode);
    }

    /// Every Log Analytics query with a valid token, in order (see [`SimLogQuery`]).
    pub fn loganalytics_queries(&self) -> Vec<SimLogQuery> {
        lock(&self.inner.loganalytics).calls.clone()
    }

    /// Takes a permission away from one tenant's app: the endpoints that need it answer 403
    /// in that API's real shape (see the `permissions` module for each body and its source).
    /// Every permission is granted until denied.
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id`.
    pub fn deny(&self, azure_tenant_id: &str, permission: Permission) {
        let tenant = self
            .inner
            .tenant_index(azure_tenant_id)
            .unwrap_or_else(|| panic!("deny: no simulated tenant {azure_tenant_id}"));
        lock(&self.inner.permissions).deny(tenant, permission);
    }

    /// Grants a permission taken away with [`Sim::deny`] again.
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id`.
    pub fn allow(&self, azure_tenant_id: &str, permission: Permission) {
        let tenant = self
            .inner
            .tenant_index(azure_tenant_id)
            .unwrap_or_else(|| panic!("allow: no simulated tenant {azure_tenant_id}"));
        lock(&self.inner.permissions).allow(tenant, permission);
    }

    /// Makes the Entra token endpoint refuse one tenant's token requests for one resource
    /// (`Some`), or issue them again (`None`). Checked after the client id and secret, so a
    /// wrong secret still answers AADSTS7000215.
    ///
    /// # Panics
    /// On an unknown `azure_tenant_id`.
    pub fn refuse_token(
        &self,
        azure_tenant_id: &str,
        resource: Resource,
        how: Option<TokenRefusal>,
    ) {
        let tenant = self
            .inner
            .tenant_index(azure_tenant_id)
            .unwrap_or_else(|| panic!("refuse_token: no simulated tenant {azure_tenant_id}"));
        lock(&self.inner.permissions).refuse(tenant, resource, how);
    }

    /// Undoes every [`Sim::deny`] and [`Sim::refuse_token`].
    pub fn clear_denials(&self) {
        lock(&self.inner.permissions).clear();
    }

    /// Every use of one tenant's token (or app credential) for another tenant's request, in
    /// order (see the `isolation` module for how the request's tenant is found). A correct
    /// client leaves this empty; the requests were refused.
    pub fn isolation_violations(&self) -> Vec<IsolationViolation> {
        lock(&self.inner.isolation).violations.clone()
    }

    pub fn stats(&self) -> SimStats {
        lock(&self.inner.stats).clone()
    }

    /// Connections open to the simulator now, the clients' idle pooled ones included: how a
    /// test sees whether clients share a connection pool.
    pub fn open_connections(&self) -> usize {
        lock(&self.inner.server)
            .as_ref()
            .map_or(0, |t| t.handle.connection_count())
    }

    /// Stops accepting connections and waits (at most ~2 s) for in-flight requests. Other
    /// clones of this `Sim` keep their state readable but the server is gone.
    pub async fn shutdown(self) {
        let task = lock(&self.inner.server).take();
        if let Some(task) = task {
            task.handle.graceful_shutdown(Some(Duration::from_secs(2)));
            match task.join.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "simulator server ended with an error"),
                Err(e) => tracing::warn!(error = %e, "simulator server task failed"),
            }
        }
    }
}

async fn not_found() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"code": "NOT_FOUND", "message": "No such path in the simulator"}),
        ),
    )
        .into_response()
}
