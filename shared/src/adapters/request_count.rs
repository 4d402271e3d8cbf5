//! Counting every HTTP request the AWS SDK clients send (retries included), by service and
//! operation: an SDK interceptor on the clients' configuration, so what is counted is what
//! reaches the wire, not what the adapters meant to call. For `mss bench calls` and the
//! round-trip budget tests (issue 11); production clients carry no interceptor.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// `(service, operation)` → requests sent.
pub type Counts = BTreeMap<(String, String), u64>;

/// The shared tally; clone it freely, every clone counts into the same map.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<Counts>>);

impl RequestCounter {
    pub fn new() -> RequestCounter {
        RequestCounter::default()
    }

    /// An interceptor that counts into this tally under `service` (`dynamodb`, `sqs`, `s3`).
    pub fn interceptor(&self, service: &'static str) -> CountRequests {
        CountRequests {
            service,
            counter: self.clone(),
        }
    }

    pub fn snapshot(&self) -> Counts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests to `service` so far.
    pub fn total(&self, service: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum()
    }

    fn add(&self, service: &str, operation: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((service.to_string(), operation))
            .or_default() += 1;
    }

    /// A DynamoDB client counting into this tally.
    pub fn dynamodb(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(self.interceptor("dynamodb"))
                .build(),
        )
    }

    /// An SQS client counting into this tally.
    pub fn sqs(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .interceptor(self.interceptor("sqs"))
                .build(),
        )
    }

    /// An SSM client counting into this tally.
    pub fn ssm(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .interceptor(self.interceptor("ssm"))
                .build(),
        )
    }

    /// An S3 client counting into this tally (`emulator`: path-style addressing, as moto needs).
    pub fn s3(&self, sdk: &aws_config::SdkConfig, emulator: bool) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(emulator)
                .interceptor(self.interceptor("s3"))
                .build(),
        )
    }
}

/// Counts in `read_before_transmit`, which the SDK runs once per attempt: a throttled call
/// retried twice counts three.
#[derive(Debug)]
pub struct CountRequests {
    service: &'static str,
    counter: RequestCounter,
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        // JSON-protocol services (DynamoDB, SQS, SSM) name the operation in X-Amz-Target
        // (`DynamoDB_20120810.BatchGetItem`, `AmazonSQS.SendMessageBatch`); REST ones (S3) by
        // method.
        let op = match req.headers().get("x-amz-target") {
            Some(t) => t.rsplit('.').next().unwrap_or(t).to_string(),
            None => req.method().to_string(),
        };
        self.counter.add(self.service, op);
        Ok(())
    }
}
