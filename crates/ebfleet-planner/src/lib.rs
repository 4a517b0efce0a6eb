//! The planner: EasyBuild's easyconfigs read and resolved exactly as
//! EasyBuild's robot does, the toolchain policy that picks the latest
//! software, and per platform a plan and its build graph.
//!
//! The vocabulary is EasyBuild's: an [`easyconfig`] names a module and its
//! dependencies (evaluated by `ebfleet-python`, with [`templates`]); the
//! [`robot`] settles each dependency's toolchain through the toolchain
//! [`hierarchy`]; the [`graph`] is the robot's closure over a [`tree`] of
//! easyconfigs, read lazily, parsed once per content digest
//! ([`parse_cache`]) and, in a bucket, packed into one [`index`] object;
//! the [`policy`] chooses targets; [`plan`] orders what is
//! left to build (and cuts it into batches for the CLI's view);
//! [`planner`] runs it all for a set of platforms, and [`wire`] turns the
//! result into what the pipeline's parts read (`ebfleet-core`'s wire
//! types).

pub mod easyconfig;
pub mod graph;
pub mod hierarchy;
pub mod index;
pub mod parse_cache;
pub mod plan;
pub mod planner;
pub mod policy;
pub mod report;
pub mod robot;
pub mod templates;
pub mod toolchain;
pub mod tree;
pub mod version;
pub mod wire;
