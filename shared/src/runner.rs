//! The embedded runner's queue loop: what SQS event source mappings do on AWS, done here
//! against the `Queue` port — receive, run the step, delete on success, release on failure
//! (the queue moves a message to its dead-letter table after too many receives).

use serde::Serialize;

use crate::messages::{AlertRef, QueueName};
use crate::steps::{self, Deps};

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct DrainStats {
    pub classified: u64,
    pub ticketed: u64,
    pub responded: u64,
    pub investigated: u64,
    pub failed: u64,
}

/// Runs one message of `q` through its step.
pub async fn handle(deps: &Deps, q: QueueName, body: &str) -> anyhow::Result<()> {
    if q == QueueName::Respond || q == QueueName::Check {
        return match crate::messages::RespondMsg::from_json(body).map_err(anyhow::Error::msg)? {
            crate::messages::RespondMsg::Plan(m) => {
                steps::respond::plan(deps, &m).await.map(|_| ())
            }
            crate::messages::RespondMsg::Check(c) => {
                steps::respond::check(deps, &c).await.map(|_| ())
            }
        };
    }
    let msg = AlertRef::from_json(body).map_err(anyhow::Error::msg)?;
    match q {
        QueueName::Classify => steps::classify::run(deps, &msg).await.map(|_| ()),
        QueueName::Investigate => steps::investigate::run(deps, &msg, false).await.map(|_| ()),
        _ => steps::ticket::run(deps, &msg).await.map(|_| ()),
    }
}

/// Processes every visible message of both queues until none is left visible. Failed
/// messages become visible again after the queue's retry delay, so they are picked up by a
/// later drain, not spun on here.
pub async fn drain(deps: &Deps) -> anyhow::Result<DrainStats> {
    let mut stats = DrainStats::default();
    loop {
        let mut any = false;
        for q in QueueName::ALL {
            let batch = deps.queue.receive(q, 10).await?;
            for m in batch {
                any = true;
                match steps::runs::handle_recorded(deps, q, &m.body, m.receive_count).await {
                    Ok(()) => {
                        deps.queue.ack(q, &m.handle).await?;
                        match q {
                            QueueName::Classify => stats.classified += 1,
                            QueueName::Ticket => stats.ticketed += 1,
                            QueueName::Respond | QueueName::Check => stats.responded += 1,
                            QueueName::Investigate => stats.investigated += 1,
                        }
                    }
                    Err(e) => {
                        stats.failed += 1;
                        let err = format!("{e:#}");
                        tracing::warn!(queue = q.as_str(), receive = m.receive_count, error = ?err, "step failed; message released for retry");
                        deps.queue.nack(q, &m.handle, &err).await?;
                    }
                }
            }
        }
        if !any {
            return Ok(stats);
        }
    }
}
