//! Failure memory: a module whose last build failed for a reason that
//! recurs ([`ErrorClass::is_deterministic`]: a compile or test error, a
//! source that cannot be downloaded) is not built again while what it is
//! built from is unchanged: the same easyconfig, the same EasyBuild, and
//! no module of its build environment built since. Its dependents are
//! skipped as blocked by it. A run that asks (`retry_failed`) builds it
//! anyway. Everything else about it (counts, status, records) treats it as
//! failed: it is.

use crate::build_graph::BuildGraph;
use crate::built::Recorded;
use crate::record::ErrorClass;
use serde::{Deserialize, Serialize};

/// A module's last failure, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastFailure {
    pub class: ErrorClass,
    /// The easyconfig it failed from.
    pub easyconfig_sha256: String,
    /// When it was recorded (Unix seconds).
    pub at: u64,
    /// The EasyBuild version of the failed build, when known.
    pub eb_version: Option<String>,
}

/// Why `graph`'s unit `u` should not be built again, if it should not.
fn held_reason(
    graph: &BuildGraph,
    u: u32,
    recorded: &Recorded,
    eb_version: &str,
) -> Option<String> {
    let m = &graph.modules[u as usize];
    let f = recorded.failed.get(m.module.as_str())?;
    if !f.class.is_deterministic()
        || f.easyconfig_sha256 != m.easyconfig_sha256
        || f.eb_version.as_deref().is_some_and(|v| v != eb_version)
    {
        return None;
    }
    let unchanged = graph.build_environment(u).into_iter().all(|d| {
        let dep = &graph.modules[d as usize];
        dep.built
            // Unknown (never recorded): unchanged.
            && recorded.built_at.get(dep.module.as_str()).copied().unwrap_or(0) <= f.at
    });
    unchanged.then(|| {
        format!(
            "failed before ({}) from the same easyconfig, EasyBuild and dependencies; \
             not built again unless the run asks (retry_failed)",
            f.class
        )
    })
}

/// Hold `graph`'s units that failed before from the same inputs (see the
/// module documentation); how many.
pub fn hold_failures(graph: &mut BuildGraph, recorded: &Recorded, eb_version: &str) -> usize {
    let held: Vec<(u32, String)> = graph
        .units()
        .filter_map(|u| Some((u, held_reason(graph, u, recorded, eb_version)?)))
        .collect();
    for (u, why) in &held {
        graph.modules[*u as usize].held = Some(why.clone());
    }
    held.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_graph::tests::graph;

    const EB: &str = "5.4.1";
    const CMAKE: &str = "CMake/3.27.6-GCCcore-13.2.0";
    const PYTHON: &str = "Python/3.11.5-GCCcore-13.2.0";

    /// CMake failed to compile at 1000 from the graph's easyconfig.
    fn recorded(class: ErrorClass) -> Recorded {
        let g = graph();
        let mut r = Recorded::default();
        r.failed.insert(
            CMAKE.into(),
            PastFailure {
                class,
                easyconfig_sha256: g.modules[2].easyconfig_sha256.clone(),
                at: 1_000,
                eb_version: Some(EB.into()),
            },
        );
        r.built_at.insert("GCCcore/13.2.0".into(), 500);
        r
    }

    fn held(g: &mut BuildGraph, r: &Recorded, eb: &str) -> Vec<String> {
        hold_failures(g, r, eb);
        g.modules
            .iter()
            .filter(|m| m.held.is_some())
            .map(|m| m.module.to_string())
            .collect()
    }

    #[test]
    fn a_deterministic_failure_from_the_same_inputs_is_held() {
        let mut g = graph();
        assert_eq!(
            held(&mut g, &recorded(ErrorClass::CompileError), EB),
            [CMAKE]
        );
        let why = g.modules[2].held.as_deref().unwrap();
        assert!(
            why.contains("compile_error") && why.contains("retry_failed"),
            "{why}"
        );
        // Python needs CMake: blocked by it, not held itself.
        assert_eq!(
            g.blocked_by_held(),
            [None, None, Some(2), Some(2)],
            "{PYTHON} is blocked by CMake"
        );
    }

    #[test]
    fn anything_changed_or_a_passing_cause_builds_it_again() {
        for class in [
            ErrorClass::NodeLost,
            ErrorClass::OutOfMemory,
            ErrorClass::DownloadFailed,
        ] {
            assert!(
                held(&mut graph(), &recorded(class), EB).is_empty(),
                "{class}"
            );
        }
        // Another EasyBuild.
        assert!(held(&mut graph(), &recorded(ErrorClass::TestFailure), "5.5.0").is_empty());
        // Another easyconfig.
        let mut r = recorded(ErrorClass::CompileError);
        r.failed.get_mut(CMAKE).unwrap().easyconfig_sha256 = "0".repeat(64);
        assert!(held(&mut graph(), &r, EB).is_empty());
        // A dependency rebuilt since the failure.
        let mut r = recorded(ErrorClass::CompileError);
        r.built_at.insert("GCCcore/13.2.0".into(), 2_000);
        assert!(held(&mut graph(), &r, EB).is_empty());
        // A dependency being built in this run.
        let mut g = graph();
        g.modules[0].built = false;
        assert!(held(&mut g, &recorded(ErrorClass::CompileError), EB).is_empty());
    }
}
