//! What a run did on each platform, for the operator (`ebfleet status`,
//! `ebfleet report`): the platform's build graph of the run (what it set
//! out to build) against the platform's records (what became of each
//! module). Pure; the CLI reads the graph, the records and the execution.
//!
//! A module's state in a run, from its record:
//! - `built`: built (by this run, or by a run beside it);
//! - `failed`: its last attempt was this run's and failed;
//! - `skipped`: noted blocked by a failed dependency since the run started;
//! - `running`: leased by a build;
//! - `pending` while the run goes on, `not_built` once it ended: none of
//!   the above (not reached, or the run stopped first).

use crate::build_graph::BuildGraph;
use crate::record::{ErrorClass, ModuleRecord, Status};
use crate::summary::RunSummary;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleState {
    Built,
    Failed,
    Skipped,
    Running,
    Pending,
    NotBuilt,
}

impl ModuleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleState::Built => "built",
            ModuleState::Failed => "failed",
            ModuleState::Skipped => "skipped",
            ModuleState::Running => "running",
            ModuleState::Pending => "pending",
            ModuleState::NotBuilt => "not_built",
        }
    }
}

/// One module the run set out to build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleStatus {
    /// `<Name>/<version>`.
    pub module: String,
    pub state: ModuleState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// The recorded error message (short; the log holds the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The S3 key of the eb log of a failed build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Its direct dependencies among the run's modules (the graph's edges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
}

/// How many modules are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub built: usize,
    pub failed: usize,
    pub skipped: usize,
    pub running: usize,
    pub pending: usize,
    pub not_built: usize,
}

impl Counts {
    /// `other`'s counts added to these.
    pub fn add(&mut self, other: &Counts) {
        self.built += other.built;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.running += other.running;
        self.pending += other.pending;
        self.not_built += other.not_built;
    }

    fn count(&mut self, s: ModuleState) {
        *match s {
            ModuleState::Built => &mut self.built,
            ModuleState::Failed => &mut self.failed,
            ModuleState::Skipped => &mut self.skipped,
            ModuleState::Running => &mut self.running,
            ModuleState::Pending => &mut self.pending,
            ModuleState::NotBuilt => &mut self.not_built,
        } += 1;
    }
}

/// One platform of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformStatus {
    pub platform: String,
    /// Modules the run set out to build.
    pub planned: usize,
    pub counts: Counts,
    /// Build time of what this run built, summed.
    pub build_seconds: u64,
    /// The platform's node time in this run (its nodes' lifetimes, summed),
    /// once the platform has reported to the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_seconds: Option<u64>,
    /// The platform's actual instance hours, from the run's stored summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_hours: Option<f64>,
    /// The platform's actual dollars, from the run's stored summary; absent
    /// when there is none or a price was unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Dependencies first.
    pub modules: Vec<ModuleStatus>,
}

/// A run as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The execution's name (the run's name).
    pub execution: String,
    pub execution_arn: String,
    /// Step Functions' status: `RUNNING`, `SUCCEEDED`, `FAILED`, ...
    pub status: String,
    /// Unix seconds.
    pub started: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The S3 key of the run's stored summary, once the run stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_key: Option<String>,
    /// The run's actual instance hours, from its stored summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_hours: Option<f64>,
    /// The run's actual dollars, from its stored summary (absent when
    /// unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    pub platforms: Vec<PlatformStatus>,
}

impl RunStatus {
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING" || self.status == "PENDING_REDRIVE"
    }
}

/// Where `record` leaves a module of run `execution`, started at
/// `started` (Unix seconds), which is still `running` or has ended.
pub fn module_state(
    record: Option<&ModuleRecord>,
    execution: &str,
    started: u64,
    running: bool,
) -> ModuleState {
    let waiting = if running {
        ModuleState::Pending
    } else {
        ModuleState::NotBuilt
    };
    let Some(r) = record else {
        return waiting;
    };
    let this_run = r.execution.as_deref() == Some(execution);
    match r.status {
        Status::Built => ModuleState::Built,
        Status::Failed if this_run => ModuleState::Failed,
        Status::Building if r.lease.is_some() => ModuleState::Running,
        Status::Planned
            if r.updated >= started
                && r.last_error.as_ref().map(|e| e.class) == Some(ErrorClass::DependencyFailed) =>
        {
            ModuleState::Skipped
        }
        _ => waiting,
    }
}

/// Platform `graph`'s part of run `execution`, from the platform's records.
pub fn platform_status(
    graph: &BuildGraph,
    records: &[ModuleRecord],
    execution: &str,
    started: u64,
    running: bool,
) -> PlatformStatus {
    let by_module: HashMap<&str, &ModuleRecord> =
        records.iter().map(|r| (r.module.as_str(), r)).collect();
    let mut counts = Counts::default();
    let mut build_seconds = 0;
    let blocked = graph.blocked_by_held();
    let modules: Vec<ModuleStatus> = graph
        .units()
        .map(|u| {
            let m = &graph.modules[u as usize];
            let record = by_module.get(m.module.as_str()).copied();
            let mut state = module_state(record, execution, started, running);
            // Failure memory's: failed before, and what needs it.
            let mut held_reason = m.held.clone();
            match blocked[u as usize] {
                Some(h) if h == u => state = ModuleState::Failed,
                Some(h) if matches!(state, ModuleState::Pending | ModuleState::NotBuilt) => {
                    state = ModuleState::Skipped;
                    held_reason = Some(format!(
                        "needs {}, which failed before",
                        graph.modules[h as usize].module
                    ));
                }
                _ => {}
            }
            counts.count(state);
            let error = record
                .and_then(|r| r.last_error.as_ref())
                .filter(|_| matches!(state, ModuleState::Failed | ModuleState::Skipped));
            let built_here = state == ModuleState::Built
                && record.is_some_and(|r| r.execution.as_deref() == Some(execution));
            let duration_s = record
                .filter(|_| built_here || state == ModuleState::Failed)
                .and_then(|r| r.duration_s);
            if built_here {
                build_seconds += duration_s.unwrap_or(0);
            }
            ModuleStatus {
                module: m.module.to_string(),
                state,
                error_class: error.map(|e| e.class),
                reason: held_reason.or_else(|| error.map(|e| e.message.clone())),
                log_key: error.and_then(|e| e.log_key.clone()),
                duration_s,
                instance_type: record
                    .filter(|_| built_here)
                    .and_then(|r| r.instance_type.clone()),
                deps: m
                    .deps()
                    .filter(|&d| !graph.modules[d as usize].built)
                    .map(|d| graph.modules[d as usize].module.to_string())
                    .collect(),
            }
        })
        .collect();
    PlatformStatus {
        platform: graph.platform.to_string(),
        planned: modules.len(),
        counts,
        build_seconds,
        node_seconds: None,
        instance_hours: None,
        usd: None,
        modules,
    }
}

/// `status` with what the run's stored `summary` (at `key`) says: each
/// platform's instance hours and dollars, its node time where the run's
/// output did not give it, and the run's totals.
pub fn apply_summary(status: &mut RunStatus, summary: &RunSummary, key: &str) {
    status.summary_key = Some(key.to_string());
    status.instance_hours = Some(summary.instance_hours);
    status.usd = summary.usd;
    for p in &mut status.platforms {
        if let Some(s) = summary.platform(&p.platform) {
            p.instance_hours = s.instance_hours;
            p.usd = s.usd;
            if p.node_seconds.is_none() {
                p.node_seconds = s.node_seconds;
            }
        }
    }
}

/// Each platform's node seconds, from a run's output
/// (`{"platforms": [{"platform", "node_seconds", ...}]}`); platforms that
/// failed or had nothing to build report none. Anything else is ignored.
pub fn node_seconds(run_output: &str) -> HashMap<String, u64> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(default)]
        platforms: Vec<serde_json::Value>,
    }
    let Ok(out) = serde_json::from_str::<Output>(run_output) else {
        return HashMap::new();
    };
    out.platforms
        .iter()
        .filter_map(|p| {
            Some((
                p.get("platform")?.as_str()?.to_string(),
                p.get("node_seconds")?.as_u64()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
