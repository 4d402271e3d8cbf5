//! The cloud queues: SQS, one queue per step with a dead-letter queue behind it. Messages
//! carry ids and versions only (see `messages`), sent ten at a time, with the tenant and
//! step as message attributes so an operator can filter a DLQ without parsing bodies.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use crate::messages::{AlertRef, QueueName};
use crate::ports::{Queue, Received};

#[derive(Debug, Clone)]
pub struct QueueUrls {
    pub classify: String,
    pub ticket: String,
    /// The first-response queue (absent where first response is not deployed).
    pub respond: Option<String>,
    /// The delayed action-check queue.
    pub check: Option<String>,
    /// The investigation queue (absent where investigation is not deployed).
    pub investigate: Option<String>,
    /// Dead-letter queue URLs, for depth reporting and redrive.
    pub classify_dlq: Option<String>,
    pub ticket_dlq: Option<String>,
    pub respond_dlq: Option<String>,
    pub check_dlq: Option<String>,
    pub investigate_dlq: Option<String>,
}

pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
    /// How long a failed message stays invisible before its next try.
    pub retry_delay: Duration,
}

fn err(what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("SQS {what}: {e}")
}

impl SqsQueue {
    pub fn new(client: Client, urls: QueueUrls) -> SqsQueue {
        SqsQueue {
            client,
            urls,
            retry_delay: Duration::from_secs(30),
        }
    }

    fn url(&self, q: QueueName) -> &str {
        match q {
            QueueName::Classify => &self.urls.classify,
            QueueName::Ticket => &self.urls.ticket,
            // An empty URL makes SQS refuse the call with a clear error.
            QueueName::Respond => self.urls.respond.as_deref().unwrap_or(""),
            QueueName::Check => self.urls.check.as_deref().unwrap_or(""),
            QueueName::Investigate => self.urls.investigate.as_deref().unwrap_or(""),
        }
    }

    fn dlq(&self, q: QueueName) -> Option<&str> {
        match q {
            QueueName::Classify => self.urls.classify_dlq.as_deref(),
            QueueName::Ticket => self.urls.ticket_dlq.as_deref(),
            QueueName::Respond => self.urls.respond_dlq.as_deref(),
            QueueName::Check => self.urls.check_dlq.as_deref(),
            QueueName::Investigate => self.urls.investigate_dlq.as_deref(),
        }
    }

    /// Creates both queues and their DLQs as template.yaml does (emulator and demo only).
    pub async fn create_queues(
        client: &Client,
        prefix: &str,
        visibility_timeout_s: u32,
        max_receive: u32,
    ) -> anyhow::Result<QueueUrls> {
        let mut urls = HashMap::new();
        for q in QueueName::ALL {
            let dlq_name = format!("{prefix}-{}-dlq", q.as_str());
            let dlq = client
                .create_queue()
                .queue_name(&dlq_name)
                .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
                .send()
                .await
                .map_err(|e| err("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?
                .queue_url
                .ok_or_else(|| anyhow!("CreateQueue returned no URL"))?;
            let arn = client
                .get_queue_attributes()
                .queue_url(&dlq)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| {
                    err(
                        "GetQueueAttributes",
                        aws_sdk_sqs::error::DisplayErrorContext(e),
                    )
                })?
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .ok_or_else(|| anyhow!("DLQ has no ARN"))?;
            let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive.to_string()}).to_string();
            let main = client
                .create_queue()
                .queue_name(format!("{prefix}-{}", q.as_str()))
                .attributes(
                    QueueAttributeName::VisibilityTimeout,
                    visibility_timeout_s.to_string(),
                )
                .attributes(QueueAttributeName::RedrivePolicy, redrive)
                .send()
                .await
                .map_err(|e| err("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?
                .queue_url
                .ok_or_else(|| anyhow!("CreateQueue returned no URL"))?;
            urls.insert(q.as_str(), (main, dlq));
        }
        let (c, cd) = urls
            .remove("classify")
            .ok_or_else(|| anyhow!("classify queue missing"))?;
        let (t, td) = urls
            .remove("ticket")
            .ok_or_else(|| anyhow!("ticket queue missing"))?;
        let (r, rd) = urls
            .remove("respond")
            .ok_or_else(|| anyhow!("respond queue missing"))?;
        let (k, kd) = urls
            .remove("check")
            .ok_or_else(|| anyhow!("check queue missing"))?;
        let (i, id) = urls
            .remove("investigate")
            .ok_or_else(|| anyhow!("investigate queue missing"))?;
        Ok(QueueUrls {
            classify: c,
            ticket: t,
            respond: Some(r),
            check: Some(k),
            classify_dlq: Some(cd),
            ticket_dlq: Some(td),
            respond_dlq: Some(rd),
            check_dlq: Some(kd),
            investigate: Some(i),
            investigate_dlq: Some(id),
        })
    }

    async fn count(&self, url: &str) -> anyhow::Result<u64> {
        let r = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| {
                err(
                    "GetQueueAttributes",
                    aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        let a = r.attributes.unwrap_or_default();
        let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

/// An SQS client from an SDK config (for tooling outside `shared`).
pub fn sqs_client(sdk: &aws_config::SdkConfig) -> Client {
    Client::new(sdk)
}

fn attr(v: &str) -> anyhow::Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| anyhow!("message attribute: {e}"))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, q: QueueName, msgs: &[AlertRef]) -> anyhow::Result<()> {
        for chunk in msgs.chunks(10) {
            let mut pending: Vec<(usize, &AlertRef)> = chunk.iter().enumerate().collect();
            // Entries SQS refuses in a batch are sent again, a bounded number of times.
            for attempt in 0..3 {
                let mut entries = Vec::new();
                for (i, m) in &pending {
                    entries.push(
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(m.to_json())
                            .message_attributes("tenant", attr(&m.tenant)?)
                            .message_attributes("step", attr(q.as_str())?)
                            .build()
                            .map_err(|e| anyhow!("SQS entry: {e}"))?,
                    );
                }
                let r = self
                    .client
                    .send_message_batch()
                    .queue_url(self.url(q))
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        err(
                            "SendMessageBatch",
                            aws_sdk_sqs::error::DisplayErrorContext(e),
                        )
                    })?;
                let failed: Vec<String> = r.failed.iter().map(|f| f.id.clone()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == 2 {
                    return Err(anyhow!(
                        "SQS SendMessageBatch: {} message(s) refused three times",
                        failed.len()
                    ));
                }
                pending.retain(|(i, _)| failed.contains(&i.to_string()));
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
        Ok(())
    }

    async fn receive(&self, q: QueueName, max: usize) -> anyhow::Result<Vec<Received>> {
        let r = self
            .client
            .receive_message()
            .queue_url(self.url(q))
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| err("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(r.messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Some(Received {
                    handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count: count,
                })
            })
            .collect())
    }

    async fn ack(&self, q: QueueName, handle: &str) -> anyhow::Result<()> {
        self.client
            .delete_message()
            .queue_url(self.url(q))
            .receipt_handle(handle)
            .send()
            .await
            .map_err(|e| err("DeleteMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    /// SQS itself moves a message to the DLQ after maxReceiveCount receives (redrive
    /// policy); here the message is only made visible again after the retry delay.
    async fn nack(&self, q: QueueName, handle: &str, error: &str) -> anyhow::Result<()> {
        tracing::warn!(queue = q.as_str(), error = ?error, "message released for retry");
        self.client
            .change_message_visibility()
            .queue_url(self.url(q))
            .receipt_handle(handle)
            .visibility_timeout(self.retry_delay.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                err(
                    "ChangeMessageVisibility",
                    aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        Ok(())
    }

    async fn send_delayed(
        &self,
        q: QueueName,
        tenant: &str,
        body: &str,
        delay: Duration,
    ) -> anyhow::Result<()> {
        self.client
            .send_message()
            .queue_url(self.url(q))
            .message_body(body)
            .delay_seconds(delay.as_secs().min(900) as i32)
            .message_attributes("tenant", attr(tenant)?)
            .message_attributes("step", attr(q.as_str())?)
            .send()
            .await
            .map_err(|e| err("SendMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        q: QueueName,
        max: usize,
    ) -> anyhow::Result<Vec<crate::ports::DeadLetter>> {
        let dlq = self
            .dlq(q)
            .ok_or_else(|| anyhow!("no dead-letter queue is configured for {}", q.as_str()))?;
        // Peeking SQS means receiving. Each page stays invisible while the next is read (or
        // the same messages would come back), then every one is made visible again at once,
        // so a `redrive` right after a `list` finds them all.
        let mut out = Vec::new();
        let mut handles = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let result = async {
            while out.len() < max {
                let r = self
                    .client
                    .receive_message()
                    .queue_url(dlq)
                    .max_number_of_messages((max - out.len()).clamp(1, 10) as i32)
                    .visibility_timeout(60)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        err("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                    })?;
                let msgs = r.messages.unwrap_or_default();
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    if let Some(h) = m.receipt_handle.clone() {
                        handles.push(h);
                    }
                    if !seen.insert(m.message_id.clone().unwrap_or_default()) {
                        continue;
                    }
                    out.push(crate::ports::DeadLetter {
                        // This peek counted as a receive; report the count before it.
                        receive_count: m
                            .attributes
                            .as_ref()
                            .and_then(|a| {
                                a.get(&MessageSystemAttributeName::ApproximateReceiveCount)
                            })
                            .and_then(|v| v.parse::<u32>().ok())
                            .map(|n| n.saturating_sub(1))
                            .unwrap_or(0),
                        body: m.body.unwrap_or_default(),
                        error: None,
                    });
                }
            }
            Ok::<(), anyhow::Error>(())
        }
        .await;
        for chunk in handles.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(dlq)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    err(
                        "ChangeMessageVisibilityBatch",
                        aws_sdk_sqs::error::DisplayErrorContext(e),
                    )
                })?;
        }
        result?;
        Ok(out)
    }

    async fn redrive(&self, q: QueueName) -> anyhow::Result<u64> {
        let dlq = self
            .dlq(q)
            .ok_or_else(|| anyhow!("no dead-letter queue is configured for {}", q.as_str()))?
            .to_string();
        let mut moved = 0;
        // Send first, delete after: a crash in between duplicates a message, which every
        // step tolerates; the other order could lose one.
        loop {
            let r = self
                .client
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .map_err(|e| err("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                return Ok(moved);
            }
            for m in msgs {
                let body = m.body.clone().unwrap_or_default();
                let tenant = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("tenant").and_then(|t| t.as_str()).map(str::to_string))
                    .unwrap_or_default();
                self.send_delayed(q, &tenant, &body, Duration::ZERO).await?;
                if let Some(h) = m.receipt_handle {
                    self.client
                        .delete_message()
                        .queue_url(&dlq)
                        .receipt_handle(h)
                        .send()
                        .await
                        .map_err(|e| {
                            err("DeleteMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                        })?;
                }
                moved += 1;
            }
        }
    }

    async fn depth(&self, q: QueueName) -> anyhow::Result<(u64, u64)> {
        if (q == QueueName::Respond && self.urls.respond.is_none())
            || (q == QueueName::Check && self.urls.check.is_none())
            || (q == QueueName::Investigate && self.urls.investigate.is_none())
        {
            return Ok((0, 0));
        }
        let live = self.count(self.url(q)).await?;
        let dead = match self.dlq(q) {
            Some(u) => self.count(u).await?,
            None => 0,
        };
        Ok((live, dead))
    }
}
