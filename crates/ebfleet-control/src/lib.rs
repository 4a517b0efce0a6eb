//! The control plane: one module per Lambda, each a handler from the state's
//! input to its output. The Lambdas under `functions/` are thin: they build
//! the clients once (from [`Env`]) and call these handlers, which combine
//! the domain (`ebfleet-core`) with the adapters (`ebfleet-aws`).

pub mod env;
pub mod managed;
pub mod runtime;

pub use env::Env;
