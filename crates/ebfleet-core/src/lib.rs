//! The ebfleet domain, free of any AWS crate: EasyBuild's easyconfigs read
//! and resolved exactly as EasyBuild's robot does, the toolchain policy that
//! picks the latest software, platforms, and plans cut into batches.
//!
//! The vocabulary is EasyBuild's: an [`easyconfig`] names a module and its
//! dependencies; the [`robot`] settles each dependency's toolchain through
//! the toolchain [`hierarchy`]; the [`graph`] is the robot's closure; the
//! [`policy`] chooses targets; [`plan`] cuts the rest into batches.

pub mod arch;
pub mod capacity;
pub mod checksum;
pub mod easyconfig;
pub mod graph;
pub mod hierarchy;
pub mod keys;
pub mod lease;
pub mod plan;
pub mod planner;
pub mod platform;
pub mod policy;
pub mod python;
pub mod record;
pub mod report;
pub mod robot;
pub mod step;
pub mod templates;
pub mod toolchain;
pub mod tree;
pub mod trigger;
pub mod userdata;
pub mod version;

pub use arch::Arch;
