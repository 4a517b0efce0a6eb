//! Lambda `managed`: see `ebfleet_control::managed`.

use ebfleet_control::{managed, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    runtime::serve(move |input| managed::handle(env, input)).await
}
