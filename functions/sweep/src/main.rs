//! Lambda `sweep`: see `ebfleet_control::sweep`.

use ebfleet_control::{env, runtime, sweep, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static sweep::Settings =
        Box::leak(Box::new(sweep::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| sweep::handle(env, settings, input)).await
}
