//! Lambda `record`: see `ebfleet_control::record`.

use ebfleet_control::{env, record, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static record::Settings =
        Box::leak(Box::new(record::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| record::handle(env, settings, input)).await
}
