//! monthly-report: init once; the schedule (01:00 JST on the 1st) drafts last month's report
//! of every tenant, manual payloads draft, send or resend one (see `shared::lambda::monthly_handler`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let cloud = shared::lambda::init(&env).await?;
    let reports = shared::lambda::reports_init(&env).await?;
    shared::lambda::serve(|payload| shared::lambda::monthly_handler(&cloud, &reports, payload))
        .await
}
