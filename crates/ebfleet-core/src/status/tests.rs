use super::*;
use crate::build_graph::tests::graph;
use crate::record::{Lease, RecordedError};

const RUN: &str = "run-1";
const STARTED: u64 = 1_000;

fn record(module: &str, status: Status, execution: &str, updated: u64) -> ModuleRecord {
    let mut r = ModuleRecord::new("amzn-2023_epyc-gen-4", module, "sha", updated);
    r.status = status;
    r.execution = Some(execution.to_string());
    r
}

fn error(class: ErrorClass, message: &str) -> Option<RecordedError> {
    Some(RecordedError {
        class,
        message: message.into(),
        log_key: Some("amzn-2023_epyc-gen-4/logs/x/1/eb.log".into()),
    })
}

#[test]
fn each_record_puts_its_module_in_one_state() {
    let built = record("a/1", Status::Built, RUN, 1_500);
    let mut failed = record("a/1", Status::Failed, RUN, 1_500);
    failed.last_error = error(ErrorClass::CompileError, "make: *** Error 2");
    let failed_before = record("a/1", Status::Failed, "run-0", 500);
    let mut skipped = record("a/1", Status::Planned, "run-0", 1_200);
    skipped.last_error = error(ErrorClass::DependencyFailed, "needs b/1, which failed");
    let mut skipped_before = skipped.clone();
    skipped_before.updated = 900;
    let mut leased = record("a/1", Status::Building, RUN, 1_100);
    leased.lease = Some(Lease {
        owner: "run-1#3".into(),
        expires: 9_999,
    });
    let state = |r: Option<&ModuleRecord>, running| module_state(r, RUN, STARTED, running);
    assert_eq!(state(Some(&built), true), ModuleState::Built);
    assert_eq!(state(Some(&failed), false), ModuleState::Failed);
    assert_eq!(state(Some(&failed_before), true), ModuleState::Pending);
    assert_eq!(state(Some(&failed_before), false), ModuleState::NotBuilt);
    assert_eq!(state(Some(&skipped), false), ModuleState::Skipped);
    assert_eq!(state(Some(&skipped_before), false), ModuleState::NotBuilt);
    assert_eq!(state(Some(&leased), true), ModuleState::Running);
    assert_eq!(state(None, true), ModuleState::Pending);
    assert_eq!(state(None, false), ModuleState::NotBuilt);
}

#[test]
fn a_platform_counts_its_units_and_keeps_the_failures_reasons() {
    // Units: zlib (built here), CMake (failed), Python (skipped: needs CMake).
    let g = graph();
    let mut zlib = record("zlib/1.3-GCCcore-13.2.0", Status::Built, RUN, 1_500);
    zlib.duration_s = Some(42);
    zlib.instance_type = Some("c7a.large".into());
    let mut cmake = record("CMake/3.27.6-GCCcore-13.2.0", Status::Failed, RUN, 1_600);
    cmake.last_error = error(ErrorClass::CompileError, "make: *** Error 2");
    cmake.duration_s = Some(7);
    let mut python = record(
        "Python/3.11.5-GCCcore-13.2.0",
        Status::Planned,
        "old",
        1_700,
    );
    python.last_error = error(ErrorClass::DependencyFailed, "CMake failed");
    // A record of a module this run does not build is not counted.
    let gcc = record("GCCcore/13.2.0", Status::Built, "old", 10);
    let p = platform_status(&g, &[gcc, python, cmake, zlib], RUN, STARTED, false);
    assert_eq!(p.planned, 3);
    assert_eq!(
        (
            p.counts.built,
            p.counts.failed,
            p.counts.skipped,
            p.counts.not_built
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(p.build_seconds, 42);
    let by: HashMap<&str, &ModuleStatus> =
        p.modules.iter().map(|m| (m.module.as_str(), m)).collect();
    let cm = by["CMake/3.27.6-GCCcore-13.2.0"];
    assert_eq!(cm.error_class, Some(ErrorClass::CompileError));
    assert_eq!(cm.reason.as_deref(), Some("make: *** Error 2"));
    assert!(cm.log_key.is_some());
    assert_eq!(
        by["zlib/1.3-GCCcore-13.2.0"].instance_type.as_deref(),
        Some("c7a.large")
    );
    assert_eq!(by["zlib/1.3-GCCcore-13.2.0"].reason, None);
    // Edges only among the run's modules: GCCcore was built before.
    assert_eq!(
        by["Python/3.11.5-GCCcore-13.2.0"].deps,
        ["CMake/3.27.6-GCCcore-13.2.0", "zlib/1.3-GCCcore-13.2.0"]
    );
    assert!(by["zlib/1.3-GCCcore-13.2.0"].deps.is_empty());
}

#[test]
fn node_time_comes_from_the_runs_output() {
    let out = r#"{"platforms": [
        {"platform": "a", "units": {"built": 3}, "node_seconds": 5400, "released": true},
        {"platform": "b", "up_to_date": true},
        {"platform": "c", "failed": true, "error": "x"}
    ]}"#;
    assert_eq!(node_seconds(out), HashMap::from([("a".to_string(), 5400)]));
    assert!(node_seconds("not json").is_empty());
    let mut total = Counts::default();
    total.add(&Counts {
        built: 2,
        failed: 1,
        ..Counts::default()
    });
    total.add(&Counts {
        built: 1,
        not_built: 4,
        ..Counts::default()
    });
    assert_eq!((total.built, total.failed, total.not_built), (3, 1, 4));
}

#[test]
fn a_held_module_is_failed_and_what_needs_it_skipped() {
    let mut g = graph();
    g.modules[2].held = Some("failed before (compile_error)".into());
    let mut cmake = record("CMake/3.27.6-GCCcore-13.2.0", Status::Failed, "run-0", 500);
    cmake.last_error = error(ErrorClass::CompileError, "make: *** Error 2");
    let p = platform_status(&g, &[cmake], RUN, STARTED, false);
    let by: HashMap<&str, &ModuleStatus> =
        p.modules.iter().map(|m| (m.module.as_str(), m)).collect();
    let cm = by["CMake/3.27.6-GCCcore-13.2.0"];
    assert_eq!(
        (cm.state, cm.error_class),
        (ModuleState::Failed, Some(ErrorClass::CompileError))
    );
    assert_eq!(cm.reason.as_deref(), Some("failed before (compile_error)"));
    let py = by["Python/3.11.5-GCCcore-13.2.0"];
    assert_eq!(py.state, ModuleState::Skipped);
    assert!(
        py.reason.as_deref().unwrap().starts_with("needs CMake/"),
        "{py:?}"
    );
    assert_eq!(
        (p.counts.failed, p.counts.skipped, p.counts.not_built),
        (1, 1, 1)
    );
}

#[test]
fn the_stored_summary_gives_each_platform_its_instance_hours_and_dollars() {
    use crate::summary::{RunOutput, RunSummary};
    let g = graph();
    let platform = g.platform.to_string();
    let mut run = RunStatus {
        execution: RUN.into(),
        execution_arn: "arn:aws:states:us-east-1:1:execution:ebfleet-pipeline:run-1".into(),
        status: "SUCCEEDED".into(),
        started: STARTED,
        stopped: Some(9_000),
        error: None,
        cause: None,
        summary_key: None,
        instance_hours: None,
        usd: None,
        platforms: vec![
            platform_status(&g, &[], RUN, STARTED, false),
            PlatformStatus {
                platform: "amzn-2023_not-in-the-summary".into(),
                ..platform_status(&g, &[], RUN, STARTED, false)
            },
        ],
    };
    let out: RunOutput = serde_json::from_value(serde_json::json!({
        "execution": RUN,
        "platforms": [{
            "platform": platform,
            "node_seconds": 5400,
            "cost": {"node_seconds": 5400, "instance_hours": 1.5, "usd": 0.75, "usd_priced": 0.75,
                     "unpriced_instance_hours": 0.0,
                     "types": [{"instance_type": "c7a.8xlarge", "market": "spot", "node_seconds": 5400,
                                "instance_hours": 1.5, "usd_per_hour": 0.5, "usd": 0.75}]}
        }]
    }))
    .unwrap();
    let summary = RunSummary::from_output(out, 9_000);
    apply_summary(&mut run, &summary, "plans/run-1/summary.json");
    let p = &run.platforms[0];
    assert_eq!((p.instance_hours, p.usd), (Some(1.5), Some(0.75)));
    assert_eq!(
        p.node_seconds,
        Some(5400),
        "the summary's node time when the output gave none"
    );
    let other = &run.platforms[1];
    assert_eq!((other.instance_hours, other.usd), (None, None));
    assert_eq!(run.summary_key.as_deref(), Some("plans/run-1/summary.json"));
    assert_eq!((run.instance_hours, run.usd), (Some(1.5), Some(0.75)));
    // JSON adds fields; what was there keeps its name.
    let j = serde_json::to_value(&run).unwrap();
    assert_eq!(j["platforms"][0]["usd"], 0.75);
    assert_eq!(j["platforms"][0]["instance_hours"], 1.5);
    assert_eq!(j["platforms"][0]["node_seconds"], 5400);
    assert!(j["platforms"][1].get("usd").is_none());
    assert_eq!(j["usd"], 0.75);
}
