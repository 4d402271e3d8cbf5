//! `mss dlq list|redrive` on the cloud shape: real SQS queues and their dead-letter queues
//! on moto's server, created by `mss cloud provision-emulator` as template.yaml describes.

use std::process::{Command, Output};

use serde_json::Value;
use shared::adapters::sqs::{QueueUrls, SqsQueue};
use shared::messages::{AlertRef, QueueName};
use shared::ports::Queue;

fn endpoint() -> String {
    std::env::var("MSS_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("MSS_TEST_AWS_ENDPOINT is not set: run ./scripts/test.sh (it installs and starts moto's server), or start `moto_server -H 127.0.0.1 -p PORT` and set MSS_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT")
    })
}

fn mss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mss"))
        .args(args)
        .env("RUST_LOG", "error")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "ap-northeast-1")
        .output()
        .expect("mss runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Only the one queue a test talks to; the others point nowhere.
fn only(url: &str, q: QueueName) -> QueueUrls {
    let pick = |x: QueueName| (x == q).then(|| url.to_string());
    QueueUrls {
        classify: pick(QueueName::Classify).unwrap_or_default(),
        ticket: pick(QueueName::Ticket).unwrap_or_default(),
        respond: pick(QueueName::Respond),
        check: pick(QueueName::Check),
        investigate: pick(QueueName::Investigate),
        classify_dlq: None,
        ticket_dlq: None,
        respond_dlq: None,
        check_dlq: None,
        investigate_dlq: None,
    }
}

#[tokio::test]
async fn list_and_redrive_a_cloud_dead_letter_queue() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "ap-northeast-1");
    let ep = endpoint();
    let name = format!("dlqcli{}", std::process::id());
    let o = mss(&[
        "cloud",
        "provision-emulator",
        "--endpoint-url",
        &ep,
        "--name",
        &name,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let prov: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    let (main, dlq) = (
        prov["ticket_queue_url"].as_str().unwrap().to_string(),
        prov["ticket_dlq_url"].as_str().unwrap().to_string(),
    );
    let target = [
        "--queue",
        "ticket",
        "--queue-url",
        main.as_str(),
        "--dlq-url",
        dlq.as_str(),
        "--endpoint-url",
        ep.as_str(),
    ];
    let run = |verb: &str| {
        let mut a = vec!["dlq", verb];
        a.extend_from_slice(&target);
        mss(&a)
    };

    // Empty: nothing listed, and a redrive says so with exit 2.
    let o = run("list");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "");
    let o = run("redrive");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("the ticket dead-letter queue is empty"),
        "{}",
        text(&o.stderr)
    );

    // A message that gave up (put straight into the DLQ, as SQS's redrive policy would).
    let sdk = shared::adapters::aws::sdk_config(Some(&ep)).await;
    let client = shared::adapters::sqs::sqs_client(&sdk);
    let m = AlertRef::new(
        "kaede-shoji",
        "da-1",
        "2026-11-20T00:55:00Z".parse().unwrap(),
    );
    SqsQueue::new(client.clone(), only(&dlq, QueueName::Ticket))
        .send_batch(QueueName::Ticket, std::slice::from_ref(&m))
        .await
        .unwrap();

    let o = run("list");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["queue"], "ticket");
    assert_eq!(
        AlertRef::from_json(lines[0]["body"].as_str().unwrap()).unwrap(),
        m
    );
    // Listing leaves it where it is.
    assert_eq!(text(&run("list").stdout).lines().count(), 1);

    let o = run("redrive");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "redriven 1 message(s) onto ticket");
    assert_eq!(text(&run("list").stdout).trim(), "");
    let back = SqsQueue::new(client, only(&main, QueueName::Ticket))
        .receive(QueueName::Ticket, 10)
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(AlertRef::from_json(&back[0].body).unwrap(), m);
}
