//! Lambda `trigger`: see `ebfleet_control::trigger`.

use ebfleet_control::{env, runtime, trigger, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static trigger::Settings =
        Box::leak(Box::new(trigger::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| trigger::handle(env, settings, input)).await
}
