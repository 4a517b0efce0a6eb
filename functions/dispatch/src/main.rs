//! Lambda `dispatch`: see `ebfleet_control::dispatch`.

use ebfleet_control::{dispatch, env, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static dispatch::Settings =
        Box::leak(Box::new(dispatch::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| dispatch::handle(env, settings, input)).await
}
