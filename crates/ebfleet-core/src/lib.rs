//! The fleet's contract, free of any AWS crate and of the planner: what the
//! pipeline's parts agree on.
//!
//! - [`names`]: validated names (modules, platforms, executions, easyconfig
//!   paths) that are safe as key components and command-line arguments;
//! - [`layout`]: every S3 key and DynamoDB key;
//! - [`build_graph`]: a platform's modules to build and what they load, from
//!   which each unit's file is made; [`unit`]: a unit's execution, its
//!   input and outcome;
//! - [`wire`]: the unit (batch) file a node reads, the plan Lambda's output;
//! - [`record`]: what DynamoDB holds per platform and module, and how a
//!   unit's manifest ([`manifest`]) changes it; [`lease`]: a unit's leases
//!   file;
//! - [`step`]: the SSM document and the commands it runs on a node;
//! - [`trigger`]: how a new easyconfig in S3 becomes an execution;
//! - [`platform`], [`capacity`], [`userdata`]: the platforms, how instances
//!   are chosen for them, and how a node boots; [`sizing`]: how recorded
//!   builds size the next run's nodes and jobs; [`node_image`]: the baked
//!   images nodes boot from, and when one may be used; [`cost`]: what a
//!   platform's nodes actually cost; [`summary`]: a run's stored summary.
//!
//! The adapters (`ebfleet-aws`), the Lambdas and the node agent depend on
//! this crate; the planner (`ebfleet-planner`) depends on it for platforms
//! and names and turns its plans into the wire types here.

pub mod arch;
pub mod build_graph;
pub mod built;
pub mod capacity;
pub mod checksum;
pub mod clock;
pub mod cost;
pub mod estimate;
pub mod failure_memory;
pub mod layout;
pub mod lease;
pub mod manifest;
pub mod modulefile;
pub mod names;
pub mod node_image;
pub mod platform;
pub mod record;
pub mod sizing;
pub mod status;
pub mod step;
pub mod suggest;
pub mod summary;
pub mod trigger;
pub mod unit;
pub mod userdata;
pub mod wire;

pub use arch::Arch;
