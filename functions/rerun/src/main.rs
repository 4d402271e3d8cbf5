//! rerun: invoked by an operator only (no trigger). `{"tenant","alert"|"incident","from",
//! "force"}` re-enqueues from a step; `{"runs": {"tenant"?, "since"?, "stuck_after_s"?}}`
//! lists failed and stuck work. See `shared::lambda::rerun_handler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let deps = &cloud.deps;
    shared::lambda::serve(|payload| shared::lambda::rerun_handler(deps, payload)).await
}
