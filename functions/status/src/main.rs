//! Lambda `status`: see `ebfleet_control::status`.

use ebfleet_control::{runtime, status, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    runtime::serve(move |input| status::handle(env, input)).await
}
