//! preflight: invoked by hand with `{"tenant": "kaede-shoji"}`; answers the checks of
//! `shared::steps::preflight` as JSON (`"ok": false` when one failed) through
//! `shared::lambda_preflight::preflight_handler`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let env = shared::lambda::CloudEnv::from_env()?;
    let env = &env;
    shared::lambda::serve(|payload| shared::lambda_preflight::preflight_handler(env, payload)).await
}
