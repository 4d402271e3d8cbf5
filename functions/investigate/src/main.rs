//! investigate: init once, then each SQS record (one incident alert) or an operator's manual
//! payload `{"tenant","alert_id","last_update"}` (a rerun) runs through
//! `shared::lambda::queue_handler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let deps = &cloud.deps;
    shared::lambda::serve(|payload| {
        shared::lambda::queue_handler(deps, shared::messages::QueueName::Investigate, payload)
    })
    .await
}
