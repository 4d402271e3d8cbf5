//! Preflight (issue 9): before a tenant goes live, and whenever its admin changed something,
//! check that the provider can do its work with what the customer granted — for the
//! tenant's subscribed products only, each permission by a minimal real call:
//!
//! | check | call | needs |
//! |---|---|---|
//! | `token.graph` / `token.mde` / `token.loganalytics` | a client-credentials token per resource | a working app secret; the API's service principal in the tenant |
//! | `graph.alerts_v2` | `GET security/alerts_v2?$top=1` | SecurityAlert.Read.All |
//! | `graph.users` | `GET users?$top=1&$select=id` | User.Read.All |
//! | `graph.hunting` | `POST security/runHuntingQuery` `print 1` | ThreatHunting.Read.All |
//! | `graph.risk_detections` (idp) | `GET identityProtection/riskDetections?$top=1` | IdentityRiskEvent.Read.All |
//! | `mde.machines` (mde) | `GET machines?$top=1` | Machine.Read.All (WindowsDefenderATP) |
//! | `loganalytics.query` (`[log_analysis]`) | `POST v1/workspaces/{id}/query` `print 1` | Data.Read + Log Analytics Reader on the workspace |
//! | `opsramp.token`, `opsramp.client` | token; `GET incidents/search` and `serviceRequests/search` with `pageSize=1` | the MSSP's OpsRamp integration and client |
//!
//! Permissions that can only be exercised by acting (isolate, full scan, confirm compromised,
//! e-mail remediation) are reported [`Status::Unverified`] where the tenant's `[response]`
//! turns the action on: neither ok nor failed, with how to make sure they are granted.
//!
//! Every check has its own time limit and runs whatever the others did; a check that needs a
//! token that could not be had is [`Status::Skipped`] with the reason. Results carry no secret:
//! tokens never leave this module and every text is scrubbed of the secrets it was given.
//!
//! The error bodies this reads (and the simulator serves, `sim/src/permissions.rs`):
//! Graph 403 `{"error":{"code":"Forbidden","message":"Missing application roles. API required
//! roles: SecurityAlert.Read.All,…, application roles: .","innerError":{…}}}`
//! (wazuh/wazuh-documentation#7300); Graph users `Authorization_RequestDenied` "Insufficient
//! privileges to complete the operation." (Azure-Samples/ms-identity-python-daemon#8);
//! Identity Protection "You cannot perform the requested operation, required scopes are
//! missing in the token." (microsoftgraph/msgraph-beta-sdk-dotnet#723); Defender for Endpoint
//! `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles:
//! Machine.Read.All,Machine.ReadWrite.All, application roles: …"}}` (Azure/Azure-Sentinel
//! #14672); Log Analytics 403 `InsufficientAccessError` (Azure Monitor "Log Analytics API
//! errors"); Entra `{"error","error_description":"AADSTS…","error_codes":[…]}` as
//! `azure_identity` hands it over (its `ErrorKind::HttpResponse { error_code }`). The
//! classification goes by which call answered which status, never by message text alone, so a
//! reworded message still names the right permission.

use std::time::Duration;

use anyhow::Context;
use azure_core::credentials::{Secret, TokenCredential};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::adapters::graph::{
    entra_credentials, AzureAppCredential, GRAPH_SCOPE, LOGANALYTICS_SCOPE,
};
use crate::adapters::http::{self, HttpSettings, RetryPolicy};
use crate::adapters::mde::MDE_SCOPE;
use crate::adapters::opsramp::{OpsRampConfig, OpsRampCredential};
use crate::domain::alert::Product;
use crate::domain::response::Mode;
use crate::domain::tenant::Tenant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    /// Cannot be tested without acting (isolating a device, confirming a user compromised…).
    Unverified,
    /// Not applicable to this tenant, or not run because a check it depends on failed.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Unverified => "unverified",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable id, e.g. `graph.alerts_v2`.
    pub id: String,
    /// The API checked, e.g. `Microsoft Graph`.
    pub resource: String,
    pub status: Status,
    /// What was called and what it answered (the service's own code and message on failure).
    pub detail: String,
    /// The permission or role the check needs; on a failure, the one that is missing.
    pub permission: Option<String>,
    /// How to grant or fix it, for the customer's admin (empty when there is nothing to do).
    pub grant_ja: String,
    pub grant_en: String,
}

/// The outcome for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub tenant: String,
    pub azure_tenant_id: String,
    /// False when any check failed (unverified and skipped checks do not count).
    pub ok: bool,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }
}

/// Where the APIs are (the public endpoints by default; the simulator's in tests).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authority_host: String,
    pub graph_base: String,
    pub mde_base: String,
    pub loganalytics_base: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            authority_host: "https://login.microsoftonline.com".into(),
            graph_base: "https://graph.microsoft.com/v1.0".into(),
            mde_base: "https://api.security.microsoft.com/api".into(),
            loganalytics_base: "https://api.loganalytics.azure.com".into(),
        }
    }
}

/// Everything a preflight needs besides the tenant. Credentials that could not be loaded are
/// given as the reason (`Err`), so the report says so instead of the run stopping.
pub struct PreflightDeps {
    pub endpoints: Endpoints,
    pub http: HttpSettings,
    pub app: Result<AzureAppCredential, String>,
    pub opsramp: OpsRampConfig,
    pub opsramp_credential: Result<OpsRampCredential, String>,
    /// Limit per check, retries included.
    pub check_timeout: Duration,
    /// Retries of 429, 5xx and connection errors inside one check.
    pub retry: RetryPolicy,
}

impl PreflightDeps {
    pub fn new(
        endpoints: Endpoints,
        http: HttpSettings,
        app: Result<AzureAppCredential, String>,
        opsramp: OpsRampConfig,
        opsramp_credential: Result<OpsRampCredential, String>,
    ) -> PreflightDeps {
        PreflightDeps {
            endpoints,
            http,
            app,
            opsramp,
            opsramp_credential,
            check_timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(500),
                cap: Duration::from_secs(5),
                max_server_wait: Duration::from_secs(10),
            },
        }
    }
}

// ------------------------------------------------------------------ how to grant

#[derive(Debug, Clone, Default)]
struct Grant {
    ja: String,
    en: String,
}

const ENTRA: &str = "https://entra.microsoft.com";

fn app_path_ja(client_id: &str) -> String {
    format!("Microsoft Entra 管理センター（{ENTRA}）の［アプリの登録］→［すべてのアプリケーション］→ 当社用に登録いただいたアプリ（アプリケーション (クライアント) ID: {client_id}）→［API のアクセス許可］→［アクセス許可の追加］")
}

fn app_path_en(client_id: &str) -> String {
    format!("In the Microsoft Entra admin center ({ENTRA}), App registrations → All applications → the app registered for the provider (Application (client) ID {client_id}) → API permissions → Add a permission")
}

/// A Microsoft Graph application permission.
fn graph_grant(permission: &str, client_id: &str) -> Grant {
    Grant {
        ja: format!("{}→［Microsoft Graph］→［アプリケーションの許可］で「{permission}」にチェックを入れて［アクセス許可の追加］→［（テナント名）に管理者の同意を与えます］を選択してください。同意にはグローバル管理者または特権ロール管理者の権限が必要です。", app_path_ja(client_id)),
        en: format!("{} → Microsoft Graph → Application permissions → tick {permission} → Add permissions, then Grant admin consent for (your tenant). Consent needs a Global Administrator or Privileged Role Administrator.", app_path_en(client_id)),
    }
}

/// A Defender for Endpoint (WindowsDefenderATP) application permission.
fn mde_grant(permission: &str, client_id: &str) -> Grant {
    Grant {
        ja: format!("{}→［所属する組織で使用している API］タブで「WindowsDefenderATP」を検索 →［アプリケーションの許可］で「{permission}」にチェックを入れて［アクセス許可の追加］→［（テナント名）に管理者の同意を与えます］を選択してください。", app_path_ja(client_id)),
        en: format!("{} → APIs my organization uses → search WindowsDefenderATP → Application permissions → tick {permission} → Add permissions, then Grant admin consent for (your tenant).", app_path_en(client_id)),
    }
}

fn loganalytics_grant(workspace: &str, client_id: &str) -> Grant {
    Grant {
        ja: format!("次の 2 点をご確認ください。(1) {}→［所属する組織で使用している API］で「Log Analytics API」を検索 →［アプリケーションの許可］で「Data.Read」にチェックを入れて［アクセス許可の追加］→［（テナント名）に管理者の同意を与えます］。(2) Azure portal（https://portal.azure.com）の［Log Analytics ワークスペース］→ Microsoft Sentinel のワークスペース（ワークスペース ID: {workspace}）→［アクセス制御 (IAM)］→［追加］→［ロールの割り当ての追加］で「Log Analytics 閲覧者」を選び、［メンバー］に当社用に登録いただいたアプリ（{client_id}）を指定して［レビューと割り当て］を選択してください（ワークスペースの所有者またはユーザー アクセス管理者の権限が必要です）。", app_path_ja(client_id)),
        en: format!("Check both: (1) {} → APIs my organization uses → search Log Analytics API → Application permissions → tick Data.Read → Add permissions → Grant admin consent for (your tenant). (2) In the Azure portal (https://portal.azure.com), Log Analytics workspaces → the Microsoft Sentinel workspace (workspace ID {workspace}) → Access control (IAM) → Add → Add role assignment → Log Analytics Reader → Members: the app registered for the provider ({client_id}) → Review + assign (needs Owner or User Access Administrator on the workspace).", app_path_en(client_id)),
    }
}

/// For a permission that cannot be tested without acting: how to confirm it is there.
fn confirm_grant(g: Grant) -> Grant {
    Grant {
        ja: format!("この権限は実際の操作（端末の分離やユーザーの侵害確認など）を行わないと確認できません。［API のアクセス許可］の一覧で、付与済み（管理者の同意済み）になっていることをご確認ください。未付与の場合の手順: {}", g.ja),
        en: format!("This cannot be tested without acting (isolating a device, confirming a user compromised, …). Check that API permissions lists it as granted, with admin consent. If it is not: {}", g.en),
    }
}

fn retry_later() -> Grant {
    Grant {
        ja: "一時的な応答と考えられます。しばらくしてから再度 preflight を実行してください。続く場合は当社までご連絡ください。".into(),
        en: "Probably temporary: run preflight again later, and tell the provider if it persists.".into(),
    }
}

fn provider_fix(what_ja: &str, what_en: &str) -> Grant {
    Grant {
        ja: format!("当社側の設定の問題です（{what_ja}）。お客様の作業は不要です。"),
        en: format!(
            "A setting on the provider's side ({what_en}); nothing for the customer to do."
        ),
    }
}

/// What to do about a token the Entra token endpoint refused, by AADSTS code.
fn token_grant(
    code: Option<&str>,
    resource: Res,
    client_id: &str,
    azure_tenant: &str,
) -> (Option<String>, Grant) {
    let secret_ja = format!("Microsoft Entra 管理センター（{ENTRA}）の［アプリの登録］→ 当社用に登録いただいたアプリ（{client_id}）→［証明書とシークレット］→［新しいクライアント シークレット］で発行し、表示された「値」（「シークレット ID」ではありません）を安全な方法で当社へお送りください。当社で登録し直します。");
    let secret_en = format!("In the Microsoft Entra admin center ({ENTRA}), App registrations → the app registered for the provider ({client_id}) → Certificates & secrets → New client secret, and send the provider its Value (not the Secret ID) by a secure channel; the provider stores it again.");
    let consent_url = format!(
        "https://login.microsoftonline.com/{azure_tenant}/adminconsent?client_id={client_id}"
    );
    match code.unwrap_or("") {
        "7000215" | "7000216" => (None, Grant { ja: format!("クライアント シークレットが一致しません。{secret_ja}"), en: format!("The client secret does not match. {secret_en}") }),
        "7000222" => (None, Grant { ja: format!("クライアント シークレットの有効期限が切れています。{secret_ja}"), en: format!("The client secret has expired. {secret_en}") }),
        "700016" => (Some("admin consent".into()), Grant {
            ja: format!("テナント {azure_tenant} にアプリ（{client_id}）が見つかりません。アプリの登録先テナントとアプリケーション (クライアント) ID をご確認ください。当社提供のマルチテナント アプリの場合は、グローバル管理者が次の URL で管理者の同意を行ってください: {consent_url}"),
            en: format!("The app ({client_id}) is not in tenant {azure_tenant}. Check the tenant the app is registered in and its Application (client) ID. For the provider's multi-tenant app, a Global Administrator grants consent at {consent_url}"),
        }),
        "65001" => (Some("admin consent".into()), Grant {
            ja: format!("管理者の同意が与えられていません。{} 画面で［（テナント名）に管理者の同意を与えます］を選択するか、グローバル管理者が次の URL で同意してください: {consent_url}", app_path_ja(client_id).replace("→［アクセス許可の追加］", "")),
            en: format!("Admin consent has not been granted. {} → Grant admin consent for (your tenant), or a Global Administrator consents at {consent_url}", app_path_en(client_id).replace(" → Add a permission", "")),
        }),
        "7000112" => (None, Grant {
            ja: format!("アプリ（{client_id}）が無効化されています。Microsoft Entra 管理センターの［エンタープライズ アプリケーション］→ 当社用に登録いただいたアプリ →［プロパティ］で「ユーザーのサインインが有効になっていますか?」を「はい」にしてください。"),
            en: format!("The app ({client_id}) is disabled. In the Microsoft Entra admin center, Enterprise applications → the app registered for the provider → Properties → set Enabled for users to sign in? to Yes."),
        }),
        "90002" => (None, provider_fix(&format!("テナント設定の azure_tenant_id {azure_tenant} が見つかりません"), &format!("azure_tenant_id {azure_tenant} in the tenant file does not exist"))),
        "500011" => (None, match resource {
            Res::Mde => Grant {
                ja: "このテナントに Defender for Endpoint の API（WindowsDefenderATP）が見つかりません。Microsoft Defender ポータル（https://security.microsoft.com）で Defender for Endpoint のセットアップ（オンボーディング）が完了しているかご確認ください。完了後、WindowsDefenderATP の「Machine.Read.All」を付与してください。".into(),
                en: "Defender for Endpoint's API (WindowsDefenderATP) is not in this tenant. Check that Defender for Endpoint is set up (onboarded) in the Microsoft Defender portal (https://security.microsoft.com), then grant WindowsDefenderATP Machine.Read.All.".into(),
            },
            Res::LogAnalytics => Grant {
                ja: "このテナントに Log Analytics API が見つかりません。Microsoft Sentinel のワークスペースがこのテナントにあるかご確認ください。".into(),
                en: "The Log Analytics API is not in this tenant. Check that the Microsoft Sentinel workspace is in this tenant.".into(),
            },
            _ => Grant {
                ja: "このテナントに要求先の API が見つかりません。当社までご連絡ください。".into(),
                en: "The requested API is not in this tenant; please contact the provider.".into(),
            },
        }),
        _ => (None, Grant {
            ja: "Microsoft Entra ID がトークンの発行を拒否しました。詳細欄のエラー コード（AADSTS…）を添えて当社までご連絡ください。".into(),
            en: "Microsoft Entra ID refused to issue a token; please send the provider the AADSTS code in the detail.".into(),
        }),
    }
}

// ------------------------------------------------------------------ checks

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Graph,
    Mde,
    LogAnalytics,
    OpsRamp,
}

impl Res {
    fn name(self) -> &'static str {
        match self {
            Res::Graph => "Microsoft Graph",
            Res::Mde => "Defender for Endpoint API",
            Res::LogAnalytics => "Log Analytics API",
            Res::OpsRamp => "OpsRamp",
        }
    }
    fn scope(self) -> &'static str {
        match self {
            Res::Graph => GRAPH_SCOPE,
            Res::Mde => MDE_SCOPE,
            Res::LogAnalytics => LOGANALYTICS_SCOPE,
            Res::OpsRamp => "",
        }
    }
}

fn result(
    id: &str,
    res: Res,
    status: Status,
    detail: impl Into<String>,
    permission: Option<&str>,
    grant: Grant,
) -> CheckResult {
    CheckResult {
        id: id.into(),
        resource: res.name().into(),
        status,
        detail: detail.into(),
        permission: permission.map(str::to_string),
        grant_ja: grant.ja,
        grant_en: grant.en,
    }
}

fn skipped(id: &str, res: Res, why: impl Into<String>, permission: Option<&str>) -> CheckResult {
    result(id, res, Status::Skipped, why, permission, Grant::default())
}

/// What a probe is and what a refusal of it means.
struct Probe {
    id: &'static str,
    res: Res,
    method: reqwest::Method,
    url: url::Url,
    body: Option<Value>,
    permission: &'static str,
    grant: Grant,
    /// Identity Protection's 429s carry no Retry-After and it allows 1 request a second.
    min_backoff: Duration,
}

/// An answer: status and body (parsed when JSON).
struct Answer {
    status: u16,
    body: Value,
    text: String,
}

/// `{"error":{"code","message"}}` (Graph, MDE, Log Analytics) or OpsRamp's flat
/// `{"error","error_description"}` / `{"code","message"}`.
fn error_of(a: &Answer) -> (String, String) {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let b = &a.body;
    if let Some(e) = b.get("error").filter(|e| e.is_object()) {
        let mut msg = s(e.get("message"));
        if let Some(inner) = e.get("innererror").or_else(|| e.get("innerError")) {
            let im = s(inner.get("message"));
            if !im.is_empty() && !msg.contains(&im) {
                msg = format!("{msg} ({im})");
            }
        }
        return (s(e.get("code")), msg);
    }
    if b.get("error").is_some() {
        return (s(b.get("error")), s(b.get("error_description")));
    }
    if b.get("code").is_some() || b.get("message").is_some() {
        return (s(b.get("code")), s(b.get("message")));
    }
    (String::new(), http::body_excerpt(&a.text))
}

fn describe(a: &Answer) -> String {
    let (code, msg) = error_of(a);
    let msg = http::body_excerpt(&msg);
    // The code is the server's words too: bounded and one line, like the message.
    let code = http::body_excerpt(&code);
    match (code.is_empty(), msg.is_empty()) {
        (true, true) => format!("HTTP {}", a.status),
        (true, false) => format!("HTTP {}: {msg}", a.status),
        (false, true) => format!("HTTP {} {code}", a.status),
        (false, false) => format!("HTTP {} {code}: {msg}", a.status),
    }
}

/// Sends one request, retrying 429, 5xx and connection errors within the policy.
async fn send(
    retry: &RetryPolicy,
    min_backoff: Duration,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Answer, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match build().send().await {
            Ok(r) => {
                let status = r.status();
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(http::parse_retry_after);
                let text = r.text().await.unwrap_or_default();
                let retryable = http::is_retryable_status(status) && status.as_u16() != 504;
                if retryable && attempt < retry.max_attempts {
                    let w = wait
                        .filter(|w| *w <= retry.max_server_wait)
                        .unwrap_or_else(|| retry.backoff(attempt))
                        .max(min_backoff);
                    tokio::time::sleep(w).await;
                    continue;
                }
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                return Ok(Answer {
                    status: status.as_u16(),
                    body,
                    text,
                });
            }
            Err(e) if http::is_retryable_error(&e) && attempt < retry.max_attempts => {
                tokio::time::sleep(retry.backoff(attempt).max(min_backoff)).await;
            }
            Err(e) => return Err(without_url(&e)),
        }
    }
}

/// reqwest's text with its URL, which is ours and carries nothing secret, kept short.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut src = String::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        src = s.to_string();
        cur = s.source();
    }
    if src.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", http::body_excerpt(&src))
    }
}

async fn run_probe(
    client: &reqwest::Client,
    deps: &PreflightDeps,
    token: &Secret,
    p: &Probe,
) -> CheckResult {
    let what = format!("{} {}", p.method, shown(&p.url));
    let call = send(&deps.retry, p.min_backoff, || {
        let mut b = client
            .request(p.method.clone(), p.url.clone())
            .bearer_auth(token.secret())
            .header("Accept", "application/json");
        if let Some(body) = &p.body {
            b = b.json(body);
        }
        b
    });
    let answer = match tokio::time::timeout(deps.check_timeout, call).await {
        Err(_) => {
            return result(
                p.id,
                p.res,
                Status::Failed,
                format!(
                    "{what}: no answer within {} s",
                    deps.check_timeout.as_secs()
                ),
                None,
                retry_later(),
            )
        }
        Ok(Err(e)) => {
            return result(
                p.id,
                p.res,
                Status::Failed,
                format!("{what}: {e}"),
                None,
                retry_later(),
            )
        }
        Ok(Ok(a)) => a,
    };
    classify_answer(p, &what, &answer)
}

/// The path and query of a URL we call (no host: it is the configured one).
fn shown(u: &url::Url) -> String {
    let q = u
        .query()
        .map(|q| format!("?{}", percent_decode(q)))
        .unwrap_or_default();
    format!("{}{q}", u.path())
}

fn percent_decode(q: &str) -> String {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn classify_answer(p: &Probe, what: &str, a: &Answer) -> CheckResult {
    let detail = format!("{what} → {}", describe(a));
    if (200..300).contains(&a.status) {
        let n = a.body.get("value").and_then(Value::as_array).map(Vec::len);
        let ok = match (a.status, n) {
            (204, _) => format!("{what} → HTTP 204 (no data)"),
            (s, Some(n)) => format!("{what} → HTTP {s} ({n} item(s))"),
            (s, None) => format!("{what} → HTTP {s}"),
        };
        return result(
            p.id,
            p.res,
            Status::Ok,
            ok,
            Some(p.permission),
            Grant::default(),
        );
    }
    let (code, _) = error_of(a);
    match a.status {
        // Log Analytics answers 403 for a bad token too; only InsufficientAccessError is about
        // the workspace's access.
        403 if p.res == Res::LogAnalytics && code.starts_with("InvalidAuthenticationToken") => {
            result(p.id, p.res, Status::Failed, detail, None, provider_fix("トークンが API に受け付けられませんでした", "the API did not accept the token"))
        }
        403 => result(p.id, p.res, Status::Failed, detail, Some(p.permission), p.grant.clone()),
        404 if p.res == Res::LogAnalytics => result(
            p.id,
            p.res,
            Status::Failed,
            format!("{detail} (the workspace does not exist, or the app may not see it)"),
            Some(p.permission),
            Grant {
                ja: format!("ワークスペース ID をご確認ください（テナント設定 [log_analysis] workspace_id）。ID が正しい場合は次の手順でアクセスを付与してください。{}", p.grant.ja),
                en: format!("Check the workspace ID ([log_analysis] workspace_id in the tenant file). If it is right, grant access: {}", p.grant.en),
            },
        ),
        401 => result(p.id, p.res, Status::Failed, detail, None, provider_fix("トークンが API に受け付けられませんでした", "the API did not accept the token")),
        429 => result(p.id, p.res, Status::Failed, format!("{detail} (throttled)"), None, retry_later()),
        s if s >= 500 => result(p.id, p.res, Status::Failed, detail, None, retry_later()),
        _ => result(p.id, p.res, Status::Failed, detail, None, provider_fix("確認用の呼び出しが拒否されました", "the check's call was refused")),
    }
}

/// A token for one resource, or the failed check.
async fn token_check(
    id: &'static str,
    res: Res,
    cred: &azure_identity::ClientSecretCredential,
    deps: &PreflightDeps,
    app: &AzureAppCredential,
) -> (CheckResult, Option<Secret>) {
    let scope = res.scope();
    match tokio::time::timeout(deps.check_timeout, cred.get_token(&[scope], None)).await {
        Err(_) => (
            result(
                id,
                res,
                Status::Failed,
                format!(
                    "token for {scope}: no answer within {} s",
                    deps.check_timeout.as_secs()
                ),
                None,
                retry_later(),
            ),
            None,
        ),
        Ok(Ok(t)) => (
            result(
                id,
                res,
                Status::Ok,
                format!("token issued for {scope}"),
                None,
                Grant::default(),
            ),
            Some(t.token),
        ),
        Ok(Err(e)) => {
            let (status, code, message) = entra_failure(&e);
            let detail = match (status, &code) {
                (Some(s), Some(c)) => {
                    format!("token for {scope} refused: HTTP {s}, AADSTS{c}: {message}")
                }
                (Some(s), None) => format!("token for {scope} refused: HTTP {s}: {message}"),
                _ => format!("token for {scope} failed: {message}"),
            };
            let refused = status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
            let (permission, grant) = if refused {
                token_grant(code.as_deref(), res, &app.client_id, &app.azure_tenant_id)
            } else {
                (None, retry_later())
            };
            (
                result(
                    id,
                    res,
                    Status::Failed,
                    detail,
                    permission.as_deref(),
                    grant,
                ),
                None,
            )
        }
    }
}

/// Status, AADSTS code(s) and Entra's description (without its trace lines) of a failed token
/// request, from the `azure_core` error `azure_identity` wraps.
fn entra_failure(e: &azure_core::Error) -> (Option<u16>, Option<String>, String) {
    use azure_core::error::ErrorKind;
    let find = |k: &ErrorKind| match k {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => Some((u16::from(*status), error_code.clone())),
        _ => None,
    };
    let found = find(e.kind()).or_else(|| {
        e.downcast_ref::<azure_core::Error>()
            .and_then(|i| find(i.kind()))
    });
    let text = e.to_string();
    // "ClientSecretCredential authentication failed. AADSTS7000215: … Trace ID: …\nTo troubleshoot…"
    let msg = match text.find("AADSTS") {
        Some(i) => {
            let rest = &text[i..];
            let end = [" Trace ID", "\r", "\n"]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .unwrap_or(rest.len());
            rest[..end].trim().to_string()
        }
        None => text.lines().next().unwrap_or("").trim().to_string(),
    };
    let msg = msg
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("AADSTS"))
        .map(|(_, tail)| tail.to_string())
        .unwrap_or(msg);
    match found {
        Some((s, code)) => (Some(s), code, http::body_excerpt(&msg)),
        None => (None, None, http::body_excerpt(&msg)),
    }
}

fn url_of(base: &str, segments: &[&str], query: &[(&str, &str)]) -> anyhow::Result<url::Url> {
    let mut u = http::require_https("base", base)?;
    u.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    Ok(u)
}

fn on(mode: Mode) -> bool {
    mode != Mode::Off
}

/// Runs every check that applies to `tenant` and returns them in a fixed order. `Err` only
/// for a set-up mistake (a base URL that is not https, an unreadable CA), never for a check.
pub async fn run(deps: &PreflightDeps, tenant: &Tenant) -> anyhow::Result<Report> {
    let client = http::build_client(&deps.http).context("preflight HTTP client")?;
    let e = &deps.endpoints;
    let has = |p: Product| tenant.subscribes(p);
    let hunting_products = [
        Product::Mde,
        Product::Mdo,
        Product::Mda,
        Product::Mdi,
        Product::Idp,
    ];
    let wants_hunting = hunting_products.iter().any(|p| has(*p));
    let wants_mde = has(Product::Mde);
    let wants_idp = has(Product::Idp);
    let workspace = tenant.log_analysis.as_ref().map(|l| l.workspace_id.clone());
    let r = &tenant.response;

    let mut checks: Vec<CheckResult> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();

    // The app credential, bound to this tenant's Azure tenant.
    let app = match &deps.app {
        Ok(a) if !a.azure_tenant_id.eq_ignore_ascii_case(&tenant.azure_tenant_id) => Err(format!(
            "the credential is for Azure tenant {}, but the tenant file names {}; refusing to use it",
            a.azure_tenant_id, tenant.azure_tenant_id
        )),
        Ok(a) => Ok(a.clone()),
        Err(why) => Err(why.clone()),
    };
    if let Ok(a) = &app {
        secrets.push(a.client_secret.secret().to_string());
    }
    if let Ok(c) = &deps.opsramp_credential {
        secrets.push(c.client_secret.secret().to_string());
    }
    let credential = match &app {
        Ok(a) => match entra_credentials(&e.authority_host, &client, vec![a.clone()]) {
            Ok(map) => map
                .into_values()
                .next()
                .map(|(_, c)| (a.clone(), c))
                .ok_or_else(|| "no credential was built".to_string()),
            Err(err) => Err(format!("{err:#}")),
        },
        Err(why) => Err(why.clone()),
    };
    let client_id = app
        .as_ref()
        .map(|a| a.client_id.clone())
        .unwrap_or_default();
    match &credential {
        Ok((a, _)) => checks.push(result("entra.credential", Res::Graph, Status::Ok, format!("app {} in Azure tenant {}", a.client_id, a.azure_tenant_id), None, Grant::default())),
        Err(why) => checks.push(result(
            "entra.credential",
            Res::Graph,
            Status::Failed,
            why.clone(),
            None,
            provider_fix("当社が保管するアプリの資格情報が見つからないか、このテナントのものではありません", "the app credential the provider keeps for this tenant is missing or not this tenant's"),
        )),
    }

    let graph_probes = |t: &Secret| {
        let t = t.clone();
        let client = client.clone();
        let client_id = client_id.clone();
        async move {
            let mut out = Vec::new();
            let mut probes = vec![
                Probe {
                    id: "graph.alerts_v2",
                    res: Res::Graph,
                    method: reqwest::Method::GET,
                    url: url_of(&e.graph_base, &["security", "alerts_v2"], &[("$top", "1")])?,
                    body: None,
                    permission: "SecurityAlert.Read.All",
                    grant: graph_grant("SecurityAlert.Read.All", &client_id),
                    min_backoff: Duration::ZERO,
                },
                Probe {
                    id: "graph.users",
                    res: Res::Graph,
                    method: reqwest::Method::GET,
                    url: url_of(
                        &e.graph_base,
                        &["users"],
                        &[("$top", "1"), ("$select", "id")],
                    )?,
                    body: None,
                    permission: "User.Read.All",
                    grant: graph_grant("User.Read.All", &client_id),
                    min_backoff: Duration::ZERO,
                },
            ];
            if wants_hunting {
                probes.push(Probe {
                    id: "graph.hunting",
                    res: Res::Graph,
                    method: reqwest::Method::POST,
                    url: url_of(&e.graph_base, &["security", "runHuntingQuery"], &[])?,
                    body: Some(json!({"Query": "print 1", "Timespan": "PT1H"})),
                    permission: "ThreatHunting.Read.All",
                    grant: graph_grant("ThreatHunting.Read.All", &client_id),
                    min_backoff: Duration::ZERO,
                });
            }
            if wants_idp {
                probes.push(Probe {
                    id: "graph.risk_detections",
                    res: Res::Graph,
                    method: reqwest::Method::GET,
                    url: url_of(
                        &e.graph_base,
                        &["identityProtection", "riskDetections"],
                        &[("$top", "1")],
                    )?,
                    body: None,
                    permission: "IdentityRiskEvent.Read.All",
                    grant: graph_grant("IdentityRiskEvent.Read.All", &client_id),
                    min_backoff: Duration::from_secs(1),
                });
            }
            let runs = probes.iter().map(|p| run_probe(&client, deps, &t, p));
            for r in join_all(runs).await {
                out.push(r);
            }
            anyhow::Ok(out)
        }
    };

    // Graph.
    let graph_token = match &credential {
        Ok((a, c)) => {
            let (check, tok) = token_check("token.graph", Res::Graph, c, deps, a).await;
            checks.push(check);
            tok
        }
        Err(_) => {
            checks.push(skipped(
                "token.graph",
                Res::Graph,
                "not run: no usable app credential",
                None,
            ));
            None
        }
    };
    let graph_ids: Vec<(&str, &str, bool, &str)> = vec![
        ("graph.alerts_v2", "SecurityAlert.Read.All", true, ""),
        ("graph.users", "User.Read.All", true, ""),
        (
            "graph.hunting",
            "ThreatHunting.Read.All",
            wants_hunting,
            "only Sentinel is subscribed (no advanced hunting in investigations)",
        ),
        (
            "graph.risk_detections",
            "IdentityRiskEvent.Read.All",
            wants_idp,
            "idp is not among the tenant's products",
        ),
    ];

    // MDE, Log Analytics and OpsRamp run beside Graph.
    let mde_fut = async {
        let mut out = Vec::new();
        if !wants_mde {
            out.push(skipped(
                "token.mde",
                Res::Mde,
                "mde is not among the tenant's products",
                None,
            ));
            out.push(skipped(
                "mde.machines",
                Res::Mde,
                "mde is not among the tenant's products",
                Some("Machine.Read.All"),
            ));
            return (out, None);
        }
        let Ok((a, c)) = &credential else {
            out.push(skipped(
                "token.mde",
                Res::Mde,
                "not run: no usable app credential",
                None,
            ));
            out.push(skipped(
                "mde.machines",
                Res::Mde,
                "not run: no usable app credential",
                Some("Machine.Read.All"),
            ));
            return (out, None);
        };
        let (check, tok) = token_check("token.mde", Res::Mde, c, deps, a).await;
        out.push(check);
        match &tok {
            Some(t) => match url_of(&e.mde_base, &["machines"], &[("$top", "1")]) {
                Ok(url) => {
                    let p = Probe {
                        id: "mde.machines",
                        res: Res::Mde,
                        method: reqwest::Method::GET,
                        url,
                        body: None,
                        permission: "Machine.Read.All",
                        grant: mde_grant("Machine.Read.All", &client_id),
                        min_backoff: Duration::ZERO,
                    };
                    out.push(run_probe(&client, deps, t, &p).await);
                }
                Err(err) => out.push(result(
                    "mde.machines",
                    Res::Mde,
                    Status::Failed,
                    format!("{err:#}"),
                    None,
                    provider_fix("mde_base の設定", "mde_base setting"),
                )),
            },
            None => out.push(skipped(
                "mde.machines",
                Res::Mde,
                "not run: token.mde failed",
                Some("Machine.Read.All"),
            )),
        }
        (out, tok)
    };
    let la_fut = async {
        let mut out = Vec::new();
        let Some(ws) = &workspace else {
            out.push(skipped(
                "token.loganalytics",
                Res::LogAnalytics,
                "the tenant has no [log_analysis]",
                None,
            ));
            out.push(skipped(
                "loganalytics.query",
                Res::LogAnalytics,
                "the tenant has no [log_analysis]",
                Some("Data.Read + Log Analytics Reader"),
            ));
            return (out, None);
        };
        let Ok((a, c)) = &credential else {
            out.push(skipped(
                "token.loganalytics",
                Res::LogAnalytics,
                "not run: no usable app credential",
                None,
            ));
            out.push(skipped(
                "loganalytics.query",
                Res::LogAnalytics,
                "not run: no usable app credential",
                Some("Data.Read + Log Analytics Reader"),
            ));
            return (out, None);
        };
        let (check, tok) = token_check("token.loganalytics", Res::LogAnalytics, c, deps, a).await;
        out.push(check);
        match &tok {
            Some(t) => match url_of(
                &e.loganalytics_base,
                &["v1", "workspaces", ws, "query"],
                &[],
            ) {
                Ok(url) => {
                    let p = Probe {
                        id: "loganalytics.query",
                        res: Res::LogAnalytics,
                        method: reqwest::Method::POST,
                        url,
                        body: Some(json!({"query": "print 1", "timespan": "PT1H"})),
                        permission: "Data.Read + Log Analytics Reader",
                        grant: loganalytics_grant(ws, &client_id),
                        min_backoff: Duration::ZERO,
                    };
                    out.push(run_probe(&client, deps, t, &p).await);
                }
                Err(err) => out.push(result(
                    "loganalytics.query",
                    Res::LogAnalytics,
                    Status::Failed,
                    format!("{err:#}"),
                    None,
                    provider_fix("loganalytics_base の設定", "loganalytics_base setting"),
                )),
            },
            None => out.push(skipped(
                "loganalytics.query",
                Res::LogAnalytics,
                "not run: token.loganalytics failed",
                Some("Data.Read + Log Analytics Reader"),
            )),
        }
        (out, tok)
    };
    let ops_fut = opsramp_checks(&client, deps);
    let graph_fut = async {
        match &graph_token {
            Some(t) => match graph_probes(t).await {
                Ok(v) => v,
                Err(err) => vec![result(
                    "graph.alerts_v2",
                    Res::Graph,
                    Status::Failed,
                    format!("{err:#}"),
                    None,
                    provider_fix("graph_base の設定", "graph_base setting"),
                )],
            },
            None => Vec::new(),
        }
    };
    let (graph_results, (mde_results, mde_tok), (la_results, la_tok), (ops_results, ops_tok)) =
        tokio::join!(graph_fut, mde_fut, la_fut, ops_fut);

    for (id, perm, applies, why) in &graph_ids {
        if let Some(r) = graph_results.iter().find(|r| r.id == *id) {
            checks.push(r.clone());
        } else if !applies {
            checks.push(skipped(id, Res::Graph, *why, Some(perm)));
        } else if graph_token.is_none() {
            let why = if credential.is_ok() {
                "not run: token.graph failed"
            } else {
                "not run: no usable app credential"
            };
            checks.push(skipped(id, Res::Graph, why, Some(perm)));
        } else {
            checks.push(skipped(
                id,
                Res::Graph,
                "not run: graph_base is not usable (see graph.alerts_v2)",
                Some(perm),
            ));
        }
    }
    // Whatever else the Graph block reported (a set-up error).
    for r in &graph_results {
        if !checks.iter().any(|c| c.id == r.id) {
            checks.push(r.clone());
        }
    }

    // Actions: granted or not cannot be seen without acting.
    let action = |id: &str, res: Res, applies: bool, off_why: &str, perm: &str, grant: Grant| {
        if applies {
            result(id, res, Status::Unverified, format!("{perm} cannot be tested without acting (the call would act on a real device, user or message)"), Some(perm), confirm_grant(grant))
        } else {
            skipped(id, res, off_why, Some(perm))
        }
    };
    checks.push(action(
        "graph.confirm_compromised",
        Res::Graph,
        wants_idp && on(r.idp.confirm_compromised),
        "first response: [response.idp] confirm_compromised is off (or idp not subscribed)",
        "IdentityRiskyUser.ReadWrite.All",
        graph_grant("IdentityRiskyUser.ReadWrite.All", &client_id),
    ));
    checks.push(action(
        "graph.email_remediation",
        Res::Graph,
        has(Product::Mdo) && on(r.mdo.email_remediation),
        "first response: [response.mdo] email_remediation is off (or mdo not subscribed)",
        "SecurityAnalyzedMessage.ReadWrite.All",
        graph_grant("SecurityAnalyzedMessage.ReadWrite.All", &client_id),
    ));
    checks.extend(mde_results);
    checks.push(action(
        "mde.isolate",
        Res::Mde,
        wants_mde && on(r.mde.isolate),
        "first response: [response.mde] isolate is off (or mde not subscribed)",
        "Machine.Isolate",
        mde_grant("Machine.Isolate", &client_id),
    ));
    checks.push(action(
        "mde.scan",
        Res::Mde,
        wants_mde && on(r.mde.scan),
        "first response: [response.mde] scan is off (or mde not subscribed)",
        "Machine.Scan",
        mde_grant("Machine.Scan", &client_id),
    ));
    checks.extend(la_results);
    checks.extend(ops_results);

    // Defence in depth: no secret or token in any text, whatever a service echoed.
    for t in [graph_token, mde_tok, la_tok, ops_tok]
        .into_iter()
        .flatten()
    {
        secrets.push(t.secret().to_string());
    }
    for c in &mut checks {
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            for field in [&mut c.detail, &mut c.grant_ja, &mut c.grant_en] {
                if field.contains(s.as_str()) {
                    *field = field.replace(s.as_str(), "<redacted>");
                }
            }
        }
    }

    let ok = !checks.iter().any(|c| c.status == Status::Failed);
    Ok(Report {
        tenant: tenant.id.clone(),
        azure_tenant_id: tenant.azure_tenant_id.clone(),
        ok,
        checks,
    })
}

/// Runs the futures together and returns their outputs in order.
async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Polled together: each is started before any is awaited to completion.
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for r in results {
        out.push(r.expect("every future completed"));
    }
    out
}

/// `opsramp.token` and `opsramp.client`. Tenant files carry no OpsRamp client id of their own:
/// every ticket goes to the provider's configured client (`opsramp.tenant_id`), so that is the
/// client checked. The API notes document no call that describes a client, so the check is
/// the smallest documented read under it: one page of one incident and of one service request.
async fn opsramp_checks(
    client: &reqwest::Client,
    deps: &PreflightDeps,
) -> (Vec<CheckResult>, Option<Secret>) {
    let cfg = &deps.opsramp;
    let mut out = Vec::new();
    let cred = match &deps.opsramp_credential {
        Ok(c) => c,
        Err(why) => {
            out.push(result(
                "opsramp.token",
                Res::OpsRamp,
                Status::Failed,
                why.clone(),
                None,
                provider_fix(
                    "OpsRamp の資格情報が読めません",
                    "the OpsRamp credential cannot be read",
                ),
            ));
            out.push(skipped(
                "opsramp.client",
                Res::OpsRamp,
                "not run: no OpsRamp credential",
                None,
            ));
            return (out, None);
        }
    };
    let base = match http::require_https("opsramp base", &cfg.base) {
        Ok(b) => b,
        Err(err) => {
            out.push(result(
                "opsramp.token",
                Res::OpsRamp,
                Status::Failed,
                format!("{err:#}"),
                None,
                provider_fix("OpsRamp の base_url の設定", "OpsRamp base_url setting"),
            ));
            out.push(skipped(
                "opsramp.client",
                Res::OpsRamp,
                "not run: opsramp.token failed",
                None,
            ));
            return (out, None);
        }
    };
    let mut token_url = base.clone();
    token_url.set_path(&format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        cfg.token_path.trim_start_matches('/')
    ));
    let what = format!("POST {}", token_url.path());
    let sent = send(&deps.retry, Duration::ZERO, || {
        client
            .post(token_url.clone())
            .header("Accept", "application/json")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", cred.client_id.as_str()),
                ("client_secret", cred.client_secret.secret()),
            ])
    });
    let bad_creds = || {
        Grant {
        ja: "当社側の設定の問題です（OpsRamp 連携の client_id / client_secret）。お客様の作業は不要です。".into(),
        en: "A provider-side setting: the OpsRamp integration's client_id/client_secret (secrets file [opsramp], or the <prefix>opsramp secret in AWS) is wrong, revoked or regenerated; put the integration's current key and secret there. Where OpsRamp shows them is not in the API notes.".into(),
    }
    };
    let token = match tokio::time::timeout(deps.check_timeout, sent).await {
        Err(_) => {
            out.push(result(
                "opsramp.token",
                Res::OpsRamp,
                Status::Failed,
                format!(
                    "{what}: no answer within {} s",
                    deps.check_timeout.as_secs()
                ),
                None,
                retry_later(),
            ));
            None
        }
        Ok(Err(err)) => {
            out.push(result(
                "opsramp.token",
                Res::OpsRamp,
                Status::Failed,
                format!("{what}: {err}"),
                None,
                retry_later(),
            ));
            None
        }
        Ok(Ok(a)) => {
            let tok = a
                .body
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            match (a.status, tok) {
                (200..=299, Some(t)) => {
                    out.push(result(
                        "opsramp.token",
                        Res::OpsRamp,
                        Status::Ok,
                        format!(
                            "{what} → HTTP {} (token issued to client_id {})",
                            a.status, cred.client_id
                        ),
                        None,
                        Grant::default(),
                    ));
                    Some(Secret::new(t.to_string()))
                }
                (200..=299, None) => {
                    out.push(result(
                        "opsramp.token",
                        Res::OpsRamp,
                        Status::Failed,
                        format!("{what} → HTTP {} without access_token", a.status),
                        None,
                        retry_later(),
                    ));
                    None
                }
                (400 | 401 | 403, _) => {
                    out.push(result(
                        "opsramp.token",
                        Res::OpsRamp,
                        Status::Failed,
                        format!("{what} → {}", describe(&a)),
                        Some("OpsRamp API credentials"),
                        bad_creds(),
                    ));
                    None
                }
                _ => {
                    out.push(result(
                        "opsramp.token",
                        Res::OpsRamp,
                        Status::Failed,
                        format!("{what} → {}", describe(&a)),
                        None,
                        retry_later(),
                    ));
                    None
                }
            }
        }
    };
    let Some(token) = token else {
        out.push(skipped(
            "opsramp.client",
            Res::OpsRamp,
            "not run: opsramp.token failed",
            None,
        ));
        return (out, None);
    };

    let client_note = format!("client {} (the configured opsramp.tenant_id: tenant files have no OpsRamp client id of their own)", cfg.tenant_id);
    let mut seen = Vec::new();
    for kind in ["incidents", "serviceRequests"] {
        let url = {
            let mut u = base.clone();
            {
                let Ok(mut p) = u.path_segments_mut() else {
                    break;
                };
                p.pop_if_empty().extend([
                    "api",
                    "v2",
                    "tenants",
                    cfg.tenant_id.as_str(),
                    kind,
                    "search",
                ]);
            }
            u.query_pairs_mut()
                .append_pair("pageNo", "1")
                .append_pair("pageSize", "1");
            u
        };
        let what = format!("GET {}", shown(&url));
        let sent = send(&deps.retry, Duration::ZERO, || {
            client
                .get(url.clone())
                .bearer_auth(token.secret())
                .header("Accept", "application/json")
        });
        let fail = |detail: String, grant: Grant, perm: Option<&str>| {
            result(
                "opsramp.client",
                Res::OpsRamp,
                Status::Failed,
                format!("{client_note}: {detail}"),
                perm,
                grant,
            )
        };
        match tokio::time::timeout(deps.check_timeout, sent).await {
            Err(_) => {
                out.push(fail(
                    format!(
                        "{what}: no answer within {} s",
                        deps.check_timeout.as_secs()
                    ),
                    retry_later(),
                    None,
                ));
                return (out, Some(token));
            }
            Ok(Err(err)) => {
                out.push(fail(format!("{what}: {err}"), retry_later(), None));
                return (out, Some(token));
            }
            Ok(Ok(a)) if (200..300).contains(&a.status) => {
                seen.push(format!("{what} → HTTP {}", a.status))
            }
            Ok(Ok(a)) => {
                let detail = format!("{what} → {}", describe(&a));
                let grant = match a.status {
                    404 => provider_fix(
                        &format!("OpsRamp のクライアント {} が見つかりません（mss.toml の opsramp.tenant_id / MSS_OPSRAMP_TENANT_ID）", cfg.tenant_id),
                        &format!("OpsRamp client {} not found: check opsramp.tenant_id in mss.toml / MSS_OPSRAMP_TENANT_ID", cfg.tenant_id),
                    ),
                    410 => provider_fix(
                        &format!("OpsRamp のクライアント {} が無効化されています（410）", cfg.tenant_id),
                        &format!("OpsRamp client {} is deactivated (410)", cfg.tenant_id),
                    ),
                    401 | 403 | 407 => provider_fix(
                        &format!("OpsRamp 連携にクライアント {} のチケットを読む権限がありません", cfg.tenant_id),
                        &format!("the OpsRamp integration may not read client {}'s tickets", cfg.tenant_id),
                    ),
                    _ => retry_later(),
                };
                let perm = matches!(a.status, 401 | 403 | 407).then_some("OpsRamp client access");
                out.push(fail(detail, grant, perm));
                return (out, Some(token));
            }
        }
    }
    out.push(result(
        "opsramp.client",
        Res::OpsRamp,
        Status::Ok,
        format!("{client_note}: {}", seen.join("; ")),
        None,
        Grant::default(),
    ));
    (out, Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer {
            status,
            text: body.to_string(),
            body,
        }
    }

    fn probe(res: Res) -> Probe {
        Probe {
            id: "x",
            res,
            method: reqwest::Method::GET,
            url: url::Url::parse("https://example.test/a").unwrap(),
            body: None,
            permission: "P.Read.All",
            grant: graph_grant("P.Read.All", "app"),
            min_backoff: Duration::ZERO,
        }
    }

    #[test]
    fn a_403_names_the_permission_and_how_to_grant_it() {
        let a = answer(
            403,
            json!({"error":{"code":"Forbidden","message":"Missing application roles. API required roles: P.Read.All, application roles: .","innerError":{"date":"2026-11-02T00:00:00","request-id":"r","client-request-id":"r"}}}),
        );
        let r = classify_answer(&probe(Res::Graph), "GET /a", &a);
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.permission.as_deref(), Some("P.Read.All"));
        assert!(
            r.detail
                .contains("HTTP 403 Forbidden: Missing application roles"),
            "{}",
            r.detail
        );
        assert!(r.grant_ja.contains("「P.Read.All」") && r.grant_ja.contains("管理者の同意"));
        assert!(r
            .grant_en
            .contains("Application permissions → tick P.Read.All"));
    }

    #[test]
    fn log_analytics_token_refusals_are_not_permission_failures() {
        let bad_token = answer(
            403,
            json!({"error":{"code":"InvalidAuthenticationToken","message":"The access token is invalid."}}),
        );
        let r = classify_answer(&probe(Res::LogAnalytics), "POST /q", &bad_token);
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.permission, None);
        let denied = answer(
            403,
            json!({"error":{"code":"InsufficientAccessError","message":"The provided credentials have insufficient access","innererror":{"code":"UnauthorizedClient","message":"no access"}}}),
        );
        let r = classify_answer(&probe(Res::LogAnalytics), "POST /q", &denied);
        assert_eq!(r.permission.as_deref(), Some("P.Read.All"));
        assert!(r.detail.contains("InsufficientAccessError") && r.detail.contains("(no access)"));
    }

    #[test]
    fn success_throttling_and_outages() {
        let r = classify_answer(
            &probe(Res::Graph),
            "GET /a",
            &answer(200, json!({"value":[{"id":"1"}]})),
        );
        assert_eq!(
            (r.status, r.detail.as_str()),
            (Status::Ok, "GET /a → HTTP 200 (1 item(s))")
        );
        assert!(r.grant_ja.is_empty() && r.grant_en.is_empty());
        let r = classify_answer(
            &probe(Res::Graph),
            "GET /a",
            &answer(
                429,
                json!({"error":{"code":"TooManyRequests","message":"slow down"}}),
            ),
        );
        assert_eq!((r.status, r.permission.clone()), (Status::Failed, None));
        assert!(r.detail.ends_with("(throttled)"));
        let r = classify_answer(&probe(Res::Mde), "GET /a", &answer(503, Value::Null));
        assert_eq!(r.status, Status::Failed);
        assert!(r.grant_en.contains("again later"));
    }

    #[test]
    fn token_refusals_are_explained_by_aadsts_code() {
        let (p, g) = token_grant(Some("7000215"), Res::Graph, "app-1", "t-1");
        assert_eq!(p, None);
        assert!(
            g.ja.contains("［新しいクライアント シークレット］")
                && g.en.contains("Value (not the Secret ID)")
        );
        let (p, g) = token_grant(Some("700016"), Res::Graph, "app-1", "t-1");
        assert_eq!(p.as_deref(), Some("admin consent"));
        assert!(g
            .en
            .contains("https://login.microsoftonline.com/t-1/adminconsent?client_id=app-1"));
        let (_, g) = token_grant(Some("500011"), Res::Mde, "app-1", "t-1");
        assert!(g.ja.contains("WindowsDefenderATP") && g.en.contains("onboarded"));
        let (_, g) = token_grant(Some("65001"), Res::Graph, "app-1", "t-1");
        assert!(g.ja.contains("管理者の同意が与えられていません"));
    }

    #[test]
    fn urls_are_shown_decoded_without_host() {
        let u = url_of(
            "https://graph.example/v1.0",
            &["users"],
            &[("$top", "1"), ("$select", "id")],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://graph.example/v1.0/users?%24top=1&%24select=id"
        );
        assert_eq!(shown(&u), "/v1.0/users?$top=1&$select=id");
        assert!(url_of("http://graph.example", &[], &[]).is_err());
    }
}
