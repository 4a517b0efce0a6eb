//! Lambda `trigger`: see `ebfleet_control::trigger`.

use ebfleet_control::{runtime, trigger, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    runtime::serve(move |input| trigger::handle(env, input)).await
}
