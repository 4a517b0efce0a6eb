//! Lambda `plan`: see `ebfleet_control::plan`.

use ebfleet_control::{env, plan, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static plan::Settings =
        Box::leak(Box::new(plan::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| plan::handle(env, settings, input)).await
}
