//! fetch-alerts: init once, then each invocation runs `steps::fetch` (see `shared::lambda`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let deps = &cloud.deps;
    shared::lambda::serve(|payload| shared::lambda::fetch_handler(deps, payload)).await
}
