//! Scheduling one platform's build graph on a pool of build nodes.
//!
//! A unit (one module) is dispatched as soon as every unit it depends on is
//! built (list scheduling), the one with the longest remaining critical
//! path first ([`Dag::rank`]), to an idle node — preferably one that built
//! some of its dependencies, so it syncs less. The pool grows while ready
//! units wait for a node (up to [`Settings::max_nodes`], and no more than
//! [`Settings::max_instances`] launched over the run) and shrinks when a node
//! has been idle for [`Settings::idle_s`] with nothing ready.
//!
//! Everything is one pure step, [`Schedule::tick`]: what happened since the
//! last tick ([`Observation`]) in, what to do ([`Decisions`]) out, the state
//! ([`Schedule`]) kept in between. The Schedule Lambda observes AWS (the
//! Auto Scaling group, SSM, the unit executions), ticks and acts; the
//! simulator ([`sim`]) observes simulated nodes on a virtual clock and
//! ticks the same code.

mod dag;
mod durations;
pub mod retry;
mod schedule;
pub mod sim;

pub use dag::Dag;
pub use durations::{DurationModel, DurationsError};
pub use schedule::{
    Counts, Decisions, Dispatch, Node, NodeState, Observation, Outcome, PoolInstance, Schedule,
    Settings, UnitState,
};
