//! classify: init once, then each SQS batch (or manual payload) runs through `shared::lambda::queue_handler`.

use shared::messages::QueueName;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let deps = &cloud.deps;
    shared::lambda::serve(|payload| {
        shared::lambda::queue_handler(deps, QueueName::Classify, payload)
    })
    .await
}
