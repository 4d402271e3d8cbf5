//! activity-digest: init once, then each run posts the due activity digests (schedule: every
//! tenant with `[log_analysis]`; by hand: `{"tenant"}` or `{"tenant", "since"}`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let dd = shared::lambda::digest_init(&env, &cloud).await?;
    shared::lambda::serve(|payload| shared::lambda::digest_handler(dd.clone(), payload)).await
}
