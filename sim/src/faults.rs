//! Fault injection, checked per endpoint before any handler logic (even before authentication),
//! because real throttling and outages happen in front of the service, not after it.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{lock, Endpoint, Fault, Inner};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Entra,
    Graph,
    Mde,
    LogAnalytics,
    OpsRampToken,
    OpsRampApi,
}

fn family(ep: Endpoint) -> Family {
    match ep {
        Endpoint::EntraToken => Family::Entra,
        Endpoint::GraphAlerts
        | Endpoint::GraphConfirmCompromised
        | Endpoint::GraphUsers
        | Endpoint::GraphRiskDetections
        | Endpoint::GraphEmailRemediate
        | Endpoint::GraphHunting => Family::Graph,
        Endpoint::MdeAction | Endpoint::MdeRead => Family::Mde,
        Endpoint::LogAnalytics => Family::LogAnalytics,
        Endpoint::OpsRampToken => Family::OpsRampToken,
        Endpoint::OpsRampCreate
        | Endpoint::OpsRampUpdate
        | Endpoint::OpsRampResponse
        | Endpoint::OpsRampSearch
        | Endpoint::OpsRampGet => Family::OpsRampApi,
    }
}

enum Action {
    Proceed,
    Delay(u64),
    TooMany(f64),
    Status(u16),
    TokenExpired,
}

/// Consumes one unit of a counted fault.
fn take(times: &mut u32) -> bool {
    if *times > 0 {
        *times -= 1;
        true
    } else {
        false
    }
}

fn decide(ep: Endpoint, fault: Option<&mut Fault>, rng: Option<&mut rand::rngs::StdRng>) -> Action {
    match fault {
        None | Some(Fault::None) => Action::Proceed,
        Some(Fault::TooManyRequests { times, retry_after }) => {
            if take(times) {
                Action::TooMany(*retry_after)
            } else {
                Action::Proceed
            }
        }
        Some(Fault::ServerError { times, status }) => {
            if take(times) {
                Action::Status(*status)
            } else {
                Action::Proceed
            }
        }
        Some(Fault::Latency { times, millis }) => {
            if take(times) {
                Action::Delay(*millis)
            } else {
                Action::Proceed
            }
        }
        Some(Fault::TokenExpired { times }) => {
            if family(ep) == Family::OpsRampApi && take(times) {
                Action::TokenExpired
            } else {
                Action::Proceed
            }
        }
        Some(Fault::Probability {
            p429,
            p5xx,
            retry_after,
        }) => {
            let r: f64 = rand::random();
            if r < *p429 {
                Action::TooMany(*retry_after)
            } else if r < *p429 + *p5xx {
                Action::Status(503)
            } else {
                Action::Proceed
            }
        }
        Some(Fault::SeededRate {
            p429,
            p5xx,
            status,
            retry_after,
            ..
        }) => {
            use rand::Rng as _;
            let r: f64 = match rng {
                Some(g) => g.random(),
                None => rand::random(),
            };
            if r < *p429 {
                Action::TooMany(*retry_after)
            } else if r < *p429 + *p5xx {
                Action::Status(*status)
            } else {
                Action::Proceed
            }
        }
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Graph prints Retry-After as decimal seconds ("2.128"); Rust's shortest float formatting
/// gives exactly that ("0.25", "2").
fn retry_after_header(secs: f64) -> HeaderValue {
    let secs = if secs.is_finite() && secs > 0.0 {
        secs
    } else {
        0.0
    };
    HeaderValue::from_str(&format!("{secs}")).unwrap_or_else(|_| HeaderValue::from_static("1"))
}

pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let rid = crate::random_token(32);
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": rid,
                "client-request-id": rid,
            }
        }
    });
    (status, axum::Json(body)).into_response()
}

/// Defender for Endpoint error shape. `target` carries a request id (a GUID), as in the
/// samples; what it means is not documented.
pub(crate) fn mde_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "target": crate::random_guid(),
        }
    });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}",
            crate::random_token(16), crate::random_token(16), chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")),
        "error_codes": [code],
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": crate::random_token(32),
        "correlation_id": crate::random_token(32),
    });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn opsramp_oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Documented per-minute limits, echoed in X-RateLimit-Limit so a client that reads the header
/// sees plausible numbers.
fn opsramp_limit(ep: Endpoint) -> u32 {
    match ep {
        Endpoint::OpsRampGet => 500,
        _ => 50,
    }
}

fn too_many(ep: Endpoint, retry_after: f64) -> Response {
    match family(ep) {
        Family::Graph => {
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests, please retry later.",
            );
            // Identity Protection throttling carries no Retry-After (API facts).
            if ep != Endpoint::GraphConfirmCompromised && ep != Endpoint::GraphRiskDetections {
                r.headers_mut()
                    .insert("Retry-After", retry_after_header(retry_after));
            }
            r
        }
        Family::Mde => {
            let mut r = mde_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "API calls quota exceeded, please retry later.",
            );
            r.headers_mut()
                .insert("Retry-After", retry_after_header(retry_after));
            r
        }
        Family::LogAnalytics => {
            let mut r = crate::loganalytics::la_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottledError",
                "Your request was throttled. Please retry later.",
                None,
            );
            r.headers_mut()
                .insert("Retry-After", retry_after_header(retry_after));
            r
        }
        Family::Entra => {
            let mut r = aad_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            );
            r.headers_mut()
                .insert("Retry-After", retry_after_header(retry_after));
            r
        }
        Family::OpsRampToken | Family::OpsRampApi => {
            let mut r = opsramp_oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too Many Requests",
            );
            let wait = if retry_after.is_finite() && retry_after > 0.0 {
                retry_after.ceil() as i64
            } else {
                0
            };
            let reset = chrono::Utc::now().timestamp() + wait;
            let h = r.headers_mut();
            h.insert("X-RateLimit-Limit", HeaderValue::from(opsramp_limit(ep)));
            h.insert("X-RateLimit-Remaining", HeaderValue::from(0u32));
            h.insert("X-RateLimit-Reset", HeaderValue::from(reset));
            r
        }
    }
}

fn server_error(ep: Endpoint, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Server Error");
    match family(ep) {
        Family::Graph => {
            let code = match status {
                StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
                StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
                _ => "InternalServerError",
            };
            graph_error(status, code, reason)
        }
        Family::Mde => {
            let code = match status {
                StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
                _ => "InternalServerError",
            };
            mde_error(status, code, reason)
        }
        Family::LogAnalytics => {
            let code = match status {
                StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
                StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
                _ => "InternalServerError",
            };
            crate::loganalytics::la_error(status, code, reason, None)
        }
        Family::Entra => aad_error(
            status,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ),
        // Not documented for OpsRamp; shaped like its other error bodies.
        Family::OpsRampToken | Family::OpsRampApi => {
            opsramp_oauth_error(status, "server_error", reason)
        }
    }
}

impl Inner {
    /// Returns the fault response to send instead of handling the request, if any.
    pub(crate) async fn fault_gate(&self, ep: Endpoint, headers: &HeaderMap) -> Option<Response> {
        let action = {
            let mut faults = lock(&self.faults);
            let mut rngs = lock(&self.fault_rngs);
            decide(ep, faults.get_mut(&ep), rngs.get_mut(&ep))
        };
        if !matches!(action, Action::Proceed) {
            let mut injected = lock(&self.injected);
            let n = injected.entry(ep).or_default();
            match action {
                Action::Proceed => {}
                Action::Delay(_) => n.delayed += 1,
                Action::TooMany(_) => n.too_many_requests += 1,
                Action::Status(_) => n.server_errors += 1,
                Action::TokenExpired => n.token_expired += 1,
            }
        }
        match action {
            Action::Proceed => None,
            Action::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            Action::TooMany(secs) => {
                tracing::debug!(?ep, "fault: 429");
                Some(too_many(ep, secs))
            }
            Action::Status(status) => {
                tracing::debug!(?ep, status, "fault: server error");
                Some(server_error(ep, status))
            }
            Action::TokenExpired => {
                tracing::debug!(?ep, "fault: token expired");
                if let Some(t) = bearer(headers) {
                    lock(&self.opsramp_tokens).remove(t);
                }
                Some(opsramp_oauth_error(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "invalid_token",
                    "Invalid access token",
                ))
            }
        }
    }
}
