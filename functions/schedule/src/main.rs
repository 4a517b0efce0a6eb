//! Lambda `schedule`: see `ebfleet_control::schedule`.

use ebfleet_control::{env, runtime, schedule, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static schedule::Settings =
        Box::leak(Box::new(schedule::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| schedule::handle(env, settings, input)).await
}
