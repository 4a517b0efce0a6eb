//! The build node's agent (WIP).
pub mod archive;
pub mod classify;
pub mod envfile;
pub mod job;
pub mod layout;
