//! Lambda `bake`: see `ebfleet_control::bake`.

use ebfleet_control::{bake, env, runtime, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Built once and kept for the life of the process (warm invocations reuse it).
    let env: &'static Env = Box::leak(Box::new(Env::from_env().await?));
    let settings: &'static bake::Settings =
        Box::leak(Box::new(bake::Settings::from_lookup(env::from_env)?));
    runtime::serve(move |input| bake::handle(env, settings, input)).await
}
