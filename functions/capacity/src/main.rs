//! Lambda `capacity`: see `ebfleet_control::capacity`.

use ebfleet_control::{capacity, env, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static capacity::Settings =
        Box::leak(Box::new(capacity::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| capacity::handle(env, settings, input)).await
}
