//! The control plane: one module per Lambda, each a handler from the state's
//! input to its output. The Lambdas under `functions/` are thin: they build
//! the clients once (from [`Env`]) and call these handlers, which combine
//! the domain (`ebfleet-core`) with the adapters (`ebfleet-aws`).

pub mod bake;
pub mod capacity;
pub mod dispatch;
pub mod env;
pub mod failure;
pub mod layer;
pub mod plan;
pub mod record;
pub mod release;
pub mod runtime;
pub mod schedule;
pub mod summary;
pub mod sweep;
pub mod trigger;

#[cfg(test)]
mod testing;

pub use env::Env;
