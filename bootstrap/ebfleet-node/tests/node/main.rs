//! The real `ebfleet-node` binary against a moto server over HTTP, and
//! with real EasyBuild and Lmod (`scripts/test-node.sh` sets it all up).
//!
//! Without `EBFLEET_MOTO_ENDPOINT` every test returns early with a note;
//! the EasyBuild tests also need `EBFLEET_TEST_EB` (the `eb` to run), so a
//! plain `cargo test --workspace` passes on a machine without either.

mod common;
mod easybuild;
mod failing;
mod fixtures;
mod hostile;
mod skips;
mod transfer;
