//! AWS SDK configuration shared by the DynamoDB, SQS, S3 and Secrets Manager adapters: one
//! HTTPS client (rustls with ring, like the rest of the process), and an optional endpoint
//! override so the same code runs against a local emulator (moto) in tests and the demo.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// The AWS endpoint override exists for emulators only, so it is the "explicit local-test
/// setting" under which plain `http://` is tolerated: a loopback host (moto on 127.0.0.1).
/// Anything else must be `https://`, so a mistyped override can never send SigV4-signed
/// requests (and the data in them) over a network in clear text.
pub fn check_endpoint_url(u: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(u)
        .map_err(|e| anyhow::anyhow!("AWS endpoint override {u:?} is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(u.to_string()),
        "http" if loopback => Ok(u.to_string()),
        "http" => Err(anyhow::anyhow!(
            "AWS endpoint override {u} is plain http on a non-loopback host; only an emulator \
             on 127.0.0.1/localhost may be reached without TLS — use https://"
        )),
        other => Err(anyhow::anyhow!(
            "AWS endpoint override {u} has scheme {other:?}; use https://"
        )),
    }
}

/// Loads the SDK config from the environment (Lambda sets region and credentials), with an
/// explicit endpoint when given (`--endpoint-url` or `AWS_ENDPOINT_URL`).
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    super::http::install_crypto_provider();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    let cfg = loader.load().await;
    if cfg.region().is_none() {
        // Only reachable off AWS (Lambda always sets AWS_REGION): the service's home region.
        return cfg
            .into_builder()
            .region(Region::new("ap-northeast-1"))
            .build();
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::check_endpoint_url;

    #[test]
    fn plain_http_only_to_a_loopback_emulator() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://localhost:4566",
            "http://[::1]:5000/",
            "https://dynamodb.ap-northeast-1.amazonaws.com",
            "https://10.0.0.5:8443",
        ] {
            assert!(check_endpoint_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:5000",
            "http://moto.internal:5000",
            "http://127.0.0.1.evil.example:5000",
            "ftp://127.0.0.1",
            "127.0.0.1:5000",
        ] {
            let e = check_endpoint_url(bad).unwrap_err().to_string();
            assert!(e.contains("https") || e.contains("not a URL"), "{bad}: {e}");
        }
    }
}
