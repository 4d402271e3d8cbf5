//! One place to build HTTPS clients and decide when to retry, so the Graph, Entra and OpsRamp
//! clients behave alike: timeouts on every call, capped exponential back-off with full
//! jitter, and the server's own wait (Retry-After, X-RateLimit-Reset) honoured.

use std::time::Duration;

use anyhow::{bail, Context};
use rand::Rng;

/// rustls needs one process-wide crypto provider; ring is the one every crate here uses.
pub fn install_crypto_provider() {
    let _ = rustls_provider();
}

fn rustls_provider() -> bool {
    use std::sync::OnceLock;
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        // Err means another provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        true
    })
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra trusted CA (PEM): how the local simulator is trusted without turning off
    /// verification. Public CAs stay trusted too.
    pub extra_ca_pem: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            extra_ca_pem: None,
        }
    }
}

pub fn build_client(s: &HttpSettings) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(s.timeout)
        .connect_timeout(s.connect_timeout)
        .https_only(true)
        .user_agent(concat!("mss/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(pem) = &s.extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .context("the extra CA file is not a PEM certificate")?;
        if certs.is_empty() {
            bail!("the extra CA file holds no certificate");
        }
        b = b.tls_certs_merge(certs);
    }
    b.build().context("building the HTTPS client")
}

/// Refuses anything but https: credentials and alert data never travel in clear text.
pub fn require_https(what: &str, url: &str) -> anyhow::Result<url::Url> {
    let u = url::Url::parse(url).with_context(|| format!("{what}: {url:?} is not a URL"))?;
    if u.scheme() != "https" {
        bail!("{what}: {url:?} must use https://");
    }
    Ok(u)
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A server asking for a longer wait than this is not waited for within one call: the
    /// call fails and the step is retried later by its queue.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_server_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniformly in [0, min(cap, base·2^attempt)].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.cap);
        let ms = exp.as_millis() as u64;
        Duration::from_millis(if ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=ms)
        })
    }
}

/// Graph sends Retry-After in seconds, sometimes fractional ("2.128"); an HTTP date is also
/// legal HTTP and is accepted.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

pub fn is_retryable_status(s: reqwest::StatusCode) -> bool {
    s == reqwest::StatusCode::TOO_MANY_REQUESTS
        || s == reqwest::StatusCode::REQUEST_TIMEOUT
        || s.is_server_error()
}

/// Errors worth another try: time-outs and connection failures, not TLS or URL errors.
pub fn is_retryable_error(e: &reqwest::Error) -> bool {
    e.is_timeout() || e.is_connect() || e.is_request() && !e.is_builder()
}

/// A short, safe excerpt of an error body for messages: bodies can be large, and can echo
/// what we sent, so they are cut and stripped of control characters.
pub fn body_excerpt(body: &str) -> String {
    let s: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_fractional_and_date() {
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy::default();
        for a in 0..40 {
            assert!(p.backoff(a) <= p.cap);
        }
    }

    #[test]
    fn only_https() {
        assert!(require_https("x", "http://graph.microsoft.com").is_err());
        assert!(require_https("x", "https://graph.microsoft.com/v1.0").is_ok());
        assert!(require_https("x", "graph").is_err());
    }
}
