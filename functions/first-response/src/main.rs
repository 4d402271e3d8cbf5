//! first-response: init once, then each SQS batch (plans, checks) or operator payload runs through
//! `shared::lambda::respond_handler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let deps = &cloud.deps;
    shared::lambda::serve(|payload| shared::lambda::respond_handler(deps, payload)).await
}
