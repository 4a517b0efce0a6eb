//! The hostile-input suite at the planner's entry, `planner::plan`, fed the
//! way the Plan Lambda feeds it (`ebfleet_control::plan::plan_input` over
//! files downloaded from S3, an object over `MAX_EASYCONFIG_BYTES` refused by
//! its listed size, not downloaded) and the way the CLI does (a tree on disk,
//! special files included). Each case: the hostile file is reported with its
//! path and reason, the good files are planned, within 10 s. Peak memory per
//! case is measured by the CLI suite (`crates/ebfleet-cli/tests/hostile.rs`),
//! one process a case; `scripts/bench-hostile.sh` prints the figures.

#[path = "hostile/cases.rs"]
mod cases;

use cases::{Case, Kind, GOOD_TARGETS};
use ebfleet_core::platform::Platforms;
use ebfleet_planner::plan::PlanOptions;
use ebfleet_planner::planner::{self, Plan, PlanRequest, Targets};
use ebfleet_planner::policy::Policy;
use ebfleet_planner::robot::RobotOptions;
use ebfleet_planner::tree::{EasyconfigFiles, Source, MAX_EASYCONFIG_BYTES};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn plan(files: &Arc<EasyconfigFiles>) -> Plan {
    let platforms = Platforms::default_set().unwrap();
    let req = PlanRequest {
        platforms: platforms.select(&["graviton-3".to_string()]).unwrap(),
        targets: Targets::Latest(Policy::default()),
        built: HashMap::new(),
        robot: RobotOptions::default(),
        options: PlanOptions::default(),
        dot: false,
    };
    planner::plan(files, &req, &()).unwrap()
}

/// The hostile file is reported with its path and the case's reason, and
/// the good files are planned.
fn check(case: &Case, plan: &Plan) {
    let p = &plan.platforms[0];
    for good in GOOD_TARGETS {
        assert!(
            p.targets.iter().any(|t| t == good),
            "{}: {good} not planned: {:?}",
            case.name,
            p.targets
        );
    }
    let reported = match case.kind {
        Kind::Cycle => p
            .unresolvable
            .iter()
            .any(|u| u.easyconfig.contains("Cycle") && u.error.contains(case.reason)),
        _ => plan
            .problems
            .values()
            .flatten()
            .any(|pr| pr.path == case.path && pr.reason.contains(case.reason)),
    };
    assert!(
        reported,
        "{}: {} not reported with {:?}: problems {:?}, unresolvable {:?}",
        case.name, case.path, case.reason, plan.problems, p.unresolvable
    );
}

fn within_budget(case: &Case, took: Duration) {
    assert!(
        took < Duration::from_secs(10),
        "{}: took {took:?}",
        case.name
    );
}

#[test]
fn hostile_easyconfigs_as_the_plan_lambda_reads_them() {
    for case in cases::cases() {
        if !matches!(case.kind, Kind::File(_) | Kind::Cycle) {
            continue; // special files exist only on disk
        }
        let started = Instant::now();
        let sources = cases::objects(&case)
            .into_iter()
            .map(|(path, bytes)| {
                let source = if bytes.len() as u64 > MAX_EASYCONFIG_BYTES {
                    Source::Refused(format!("refused: {} bytes (not downloaded)", bytes.len()))
                } else {
                    Source::Bytes(bytes)
                };
                (path, source)
            })
            .collect();
        let files = EasyconfigFiles::from_sources(PathBuf::from("s3"), sources, Default::default());
        check(&case, &plan(&files));
        within_budget(&case, started.elapsed());
    }
}

#[test]
fn hostile_easyconfigs_in_a_tree_on_disk() {
    for case in cases::cases() {
        let dir = tempfile::tempdir().unwrap();
        cases::lay_out(dir.path(), &case);
        let started = Instant::now();
        let files = EasyconfigFiles::scan(dir.path(), Default::default()).unwrap();
        check(&case, &plan(&files));
        within_budget(&case, started.elapsed());
    }
}
