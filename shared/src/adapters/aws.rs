//! AWS SDK configuration shared by the DynamoDB, SQS, S3 and Secrets Manager adapters: one
//! HTTPS client (rustls with ring, like the rest of the process), and an optional endpoint
//! override so the same code runs against a local emulator (moto) in tests and the demo.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

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
