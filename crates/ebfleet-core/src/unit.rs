//! A unit's execution — one module through Capacity, Lease, Sync, Build,
//! Tar, Upload, Record and Release — as the scheduler starts it and reads
//! its end: its input ([`UnitInput`]), its output ([`UnitResult`]) and the
//! names of the child executions of a run.
//!
//! Execution names: a run's platform executions and unit executions are
//! named from a per-platform prefix ([`child_prefix`], at most
//! [`MAX_CHILD_PREFIX`] characters: the run's name cut to fit and a short
//! digest of the whole, so two long runs never share one) —
//! `<prefix>-g<generation>` and `<prefix>-u<unit>-a<attempt>`, within Step
//! Functions' 80 characters and readable in the console.

use crate::checksum::sha256_hex;
use crate::names::{ExecutionName, PlatformName};
use serde::{Deserialize, Serialize};

/// Longest per-platform prefix of a run's child execution names.
pub const MAX_CHILD_PREFIX: usize = 56;

/// How a unit's execution ended, as the scheduler reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum UnitOutcome {
    Built,
    /// Built by another execution from the same easyconfig meanwhile.
    AlreadyBuilt,
    Failed {
        class: String,
        reason: String,
    },
    /// The node did not attempt it (e.g. a need missing from the bucket).
    Skipped {
        reason: String,
    },
    /// The node was lost (spot interruption, heartbeat timeout, gone from
    /// SSM) or a step failed around the build: try again elsewhere.
    NodeLost {
        reason: String,
    },
    /// Another execution holds the lease until `until` (Unix seconds).
    Held {
        until: u64,
    },
}

/// What the scheduler starts a unit's execution with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInput {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    /// The module's index in the platform's build graph.
    pub unit: u32,
    /// 1 for the first try.
    pub attempt: u32,
    /// The module, for the console.
    pub module: String,
    /// The unit's batch file, `plans/<execution>/<platform>/<unit>.json`.
    pub unit_key: String,
    /// The node it runs on.
    pub instance_id: String,
}

/// What a unit's execution ends with (its last state's output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitResult {
    pub unit: u32,
    pub attempt: u32,
    #[serde(flatten)]
    pub outcome: UnitOutcome,
    /// When built: the sha256 of its tarball as Record recorded it, which
    /// the nodes of its dependents then accept and no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball_sha256: Option<String>,
}

/// The prefix of `platform`'s child executions in `execution`: the run's
/// name and the platform's CPU and GPU parts, cut to fit
/// [`MAX_CHILD_PREFIX`] with a digest of both when cut.
pub fn child_prefix(execution: &ExecutionName, platform: &PlatformName) -> String {
    // `amzn-2023_epyc-gen-3_h100` → `epyc-gen-3_h100`: the OS is the same
    // for every platform of a stack.
    let short = platform
        .as_str()
        .split_once('_')
        .map_or(platform.as_str(), |(_, rest)| rest)
        .replace('_', "-");
    let full = format!("{execution}-{short}");
    if full.len() <= MAX_CHILD_PREFIX {
        return full;
    }
    let digest = &sha256_hex(format!("{execution}/{platform}").as_bytes())[..8];
    let room = MAX_CHILD_PREFIX - digest.len() - 1;
    let cut: String = full.chars().take(room).collect();
    format!("{}-{digest}", cut.trim_end_matches('-'))
}

/// The name of a platform's execution of `generation`.
pub fn platform_execution_name(prefix: &str, generation: u32) -> String {
    format!("{prefix}-g{generation}")
}

/// The name of `unit`'s execution on try `attempt`.
pub fn unit_execution_name(prefix: &str, unit: u32, attempt: u32) -> String {
    format!("{prefix}-u{unit}-a{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> ExecutionName {
        s.parse().unwrap()
    }

    fn p(s: &str) -> PlatformName {
        s.parse().unwrap()
    }

    #[test]
    fn child_names_are_readable_unique_and_within_the_limit() {
        let short = child_prefix(
            &e("manual-20261204T173000Z"),
            &p("amzn-2023_epyc-gen-3_h100"),
        );
        assert_eq!(short, "manual-20261204T173000Z-epyc-gen-3-h100");
        assert_eq!(
            unit_execution_name(&short, 7059, 3),
            "manual-20261204T173000Z-epyc-gen-3-h100-u7059-a3"
        );
        let long_a = child_prefix(&e(&"a".repeat(80)), &p("amzn-2023_epyc-gen-4"));
        let long_b = child_prefix(
            &e(&format!("{}b", "a".repeat(79))),
            &p("amzn-2023_epyc-gen-4"),
        );
        assert!(long_a.len() <= MAX_CHILD_PREFIX);
        assert_ne!(long_a, long_b, "cut names keep a digest of the whole");
        for prefix in [&short, &long_a] {
            let worst = unit_execution_name(prefix, u32::MAX, u32::MAX);
            assert!(worst.len() <= 80, "{worst}");
            assert!(worst.parse::<ExecutionName>().is_ok(), "{worst}");
            assert!(platform_execution_name(prefix, u32::MAX).len() <= 80);
        }
    }

    #[test]
    fn results_read_as_the_state_machine_writes_them() {
        let r: UnitResult = serde_json::from_value(serde_json::json!(
            {"unit": 4, "attempt": 2, "outcome": "failed", "class": "compile_error", "reason": "make: ***"}
        ))
        .unwrap();
        assert_eq!(
            r.outcome,
            UnitOutcome::Failed {
                class: "compile_error".into(),
                reason: "make: ***".into()
            }
        );
        let held = UnitResult {
            unit: 1,
            attempt: 1,
            outcome: UnitOutcome::Held { until: 99 },
            tarball_sha256: None,
        };
        let json = serde_json::to_value(&held).unwrap();
        assert_eq!(json["outcome"], "held");
        assert_eq!(serde_json::from_value::<UnitResult>(json).unwrap(), held);
        let built: UnitResult = serde_json::from_value(serde_json::json!(
            {"unit": 2, "attempt": 1, "outcome": "built", "tarball_sha256": "ab"}
        ))
        .unwrap();
        assert_eq!(built.outcome, UnitOutcome::Built);
        assert_eq!(built.tarball_sha256.as_deref(), Some("ab"));
    }
}
