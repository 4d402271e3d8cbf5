//! check-action: init once, then each batch of delayed checks (or a manual `{"tenant",
//! "check"}`) runs through `shared::lambda::check_handler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let deps = &cloud.deps;
    shared::lambda::serve(|payload| shared::lambda::check_handler(deps, payload)).await
}
