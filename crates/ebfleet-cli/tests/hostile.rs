//! The hostile-input suite through the command: `ebfleet plan` on a tree
//! holding each hostile easyconfig among good ones, one process a case, so
//! each case's peak memory is its own (`wait4`'s rusage). Each case: the
//! hostile file is reported with its path and reason, the good files are
//! planned, the run succeeds, in under 256 MB. Time is the benchmark's
//! (`scripts/bench-hostile.sh` runs this with `--nocapture` for the table):
//! the evaluator's own budget (`MAX_EVAL_TIME`) bounds it, and a shared
//! machine's wall clock is no test.

#[path = "../../ebfleet-planner/tests/hostile/cases.rs"]
mod cases;

use cases::{Case, Kind, GOOD_TARGETS};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MAX_RSS_KB: i64 = 256 * 1024;

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    took: Duration,
    peak_rss_kb: i64,
}

/// `ebfleet plan --json` on `tree`, waited for with `wait4` to read the
/// child's own peak RSS.
fn plan(tree: &Path, out: &Path) -> Run {
    let (so, se) = (out.join("stdout"), out.join("stderr"));
    let started = Instant::now();
    // Reaped by wait4 below, which is what gives its rusage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_ebfleet"))
        .args(["plan", "--no-cache", "--json", "--platform", "graviton-3"])
        .arg("--easyconfigs")
        .arg(tree)
        .stdin(Stdio::null())
        .stdout(File::create(&so).unwrap())
        .stderr(File::create(&se).unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data, and the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let took = started.elapsed();
    Run {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout: std::fs::read_to_string(so).unwrap(),
        stderr: String::from_utf8_lossy(&std::fs::read(se).unwrap()).into_owned(),
        took,
        // Kilobytes on Linux.
        peak_rss_kb: usage.ru_maxrss,
    }
}

fn check(case: &Case, run: &Run) {
    assert!(run.success, "{}: failed: {}", case.name, run.stderr);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let p = &plan["platforms"][0];
    let targets: Vec<&str> = p["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    for good in GOOD_TARGETS {
        assert!(targets.contains(good), "{}: {good} not planned", case.name);
    }
    let reported = match case.kind {
        Kind::Cycle => p["unresolvable"].as_array().unwrap().iter().any(|u| {
            u["easyconfig"].as_str().unwrap().contains("Cycle")
                && u["error"].as_str().unwrap().contains(case.reason)
        }),
        _ => plan["problems"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|ps| ps.as_array().unwrap())
            .any(|pr| {
                pr["path"] == case.path.as_str()
                    && pr["reason"].as_str().unwrap().contains(case.reason)
            }),
    };
    assert!(
        reported,
        "{}: {} not reported with {:?}: {}",
        case.name,
        case.path,
        case.reason,
        run.stdout.chars().take(2000).collect::<String>()
    );
    assert!(
        run.peak_rss_kb < MAX_RSS_KB,
        "{}: peak RSS {} KB",
        case.name,
        run.peak_rss_kb
    );
}

#[test]
fn each_hostile_easyconfig_is_reported_and_skipped_within_budget() {
    println!("| case | time (s) | peak RSS (MB) |\n|---|---:|---:|");
    // The good files alone: what every case costs at least.
    let base = tempfile::tempdir().unwrap();
    let tree = base.path().join("tree");
    for (path, text) in cases::GOOD {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let run = plan(&tree, base.path());
    assert!(run.success, "{}", run.stderr);
    println!(
        "| (good files only) | {:.2} | {:.0} |",
        run.took.as_secs_f64(),
        run.peak_rss_kb as f64 / 1024.0
    );
    for case in cases::cases() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        cases::lay_out(&tree, &case);
        let run = plan(&tree, dir.path());
        println!(
            "| {} | {:.2} | {:.0} |",
            case.name,
            run.took.as_secs_f64(),
            run.peak_rss_kb as f64 / 1024.0
        );
        check(&case, &run);
    }
}
