//! track-inquiries: init once, then each scheduled run checks every open inquiry's SLA.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let cal = shared::domain::calendar::Calendar::default();
    shared::lambda::serve(|_payload| shared::lambda::inquiries_handler(&cloud, &cal)).await
}
