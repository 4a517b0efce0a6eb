//! Lambda `release`: see `ebfleet_control::release` (and
//! `ebfleet_control::summary`, the run's summary it also stores).

use ebfleet_control::{release, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    runtime::serve(move |input| release::handle_request(env, input)).await
}
