//! The fast mode of `scripts/bench-scale.sh`: plan the real easyconfigs
//! for the given platforms as the Plan Lambda does (build graphs), then
//! simulate each platform's run with the scheduler the Schedule Lambda
//! runs, on a virtual clock, beside a model of the old design (one node,
//! batches of 50 in order, polled).
//!
//! simulate --easyconfigs DIR [--platform P]... [--nodes N] [--durations FILE] [--json]
//!
//! With --json the last line is `{"platforms": [...]}` with the figures of
//! `scripts/bench-scale.sh`.

use ebfleet_core::names::ExecutionName;
use ebfleet_core::platform::Platforms;
use ebfleet_planner::plan::PlanOptions;
use ebfleet_planner::planner::{self, PlanRequest, Targets};
use ebfleet_planner::policy::Policy;
use ebfleet_planner::robot::RobotOptions;
use ebfleet_planner::tree::EasyconfigFiles;
use ebfleet_planner::wire::build_graph;
use ebfleet_scheduler::sim::{simulate, SimConfig};
use ebfleet_scheduler::{Dag, DurationModel};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    easyconfigs: PathBuf,
    platforms: Vec<String>,
    nodes: u32,
    durations: Option<PathBuf>,
    json: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        easyconfigs: PathBuf::new(),
        platforms: Vec::new(),
        nodes: 32,
        durations: None,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--easyconfigs" => a.easyconfigs = val()?.into(),
            "--platform" => a.platforms.push(val()?),
            "--nodes" => a.nodes = val()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--durations" => a.durations = Some(val()?.into()),
            "--json" => a.json = true,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.easyconfigs.as_os_str().is_empty() {
        return Err("--easyconfigs DIR is required".into());
    }
    Ok(a)
}

/// The old design, modelled: one node per platform, batches of 50 built in
/// order (each `eb --robot` builds its modules one after the other), every
/// step polled; its history grows with the batches.
fn old_design(dag: &Dag, build_s: &[u64], boot_s: u64) -> serde_json::Value {
    const BATCH: usize = 50;
    // Per batch: Lease, the four steps and Record with their passes and
    // choices (~60 events), and per poll of a running step a Wait, a status
    // Task and a Choice (11 events); the old machine polled every ~195 s on
    // average (469 events for a 2-hour batch).
    const FIXED_EVENTS: u64 = 60;
    const POLL_S: u64 = 195;
    let units: Vec<u32> = dag.units().collect();
    let mut makespan = boot_s;
    let mut events = 0u64;
    for batch in units.chunks(BATCH) {
        let s: u64 = batch.iter().map(|&u| build_s[u as usize]).sum::<u64>() + 120;
        makespan += s;
        events += FIXED_EVENTS + 11 * s.div_ceil(POLL_S);
    }
    json!({
        "makespan_s": makespan,
        "node_seconds": makespan,
        "nodes_max": 1,
        "batches": units.len().div_ceil(BATCH),
        "history_events": events,
        "executions": 1,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let model = match &a.durations {
        Some(p) => DurationModel::from_json(&std::fs::read_to_string(p)?)?,
        None => DurationModel::shipped(),
    };
    let all = Platforms::default_set()?;
    let selected = all.select(&a.platforms)?;
    let t0 = Instant::now();
    let req = PlanRequest {
        platforms: selected.clone(),
        targets: Targets::Latest(Policy::default()),
        built: Default::default(),
        robot: RobotOptions::default(),
        options: PlanOptions {
            graph: true,
            ..PlanOptions::default()
        },
        dot: false,
    };
    let files = EasyconfigFiles::scan(&a.easyconfigs, Default::default())?;
    let plan = planner::plan(&files, &req, &())?;
    eprintln!(
        "planned {} platforms in {:.1} s",
        plan.platforms.len(),
        t0.elapsed().as_secs_f64()
    );
    let execution: ExecutionName = "bench-scale".parse()?;
    let cfg = SimConfig {
        settings: ebfleet_scheduler::Settings {
            max_nodes: a.nodes,
            max_instances: a.nodes * 4,
            ..Default::default()
        },
        ..SimConfig::default()
    };
    let mut rows = Vec::new();
    for (pp, platform) in plan.platforms.iter().zip(&selected) {
        let graph = build_graph(pp, platform, &execution, |m| model.estimate(m))?;
        let dag = Dag::from_graph(&graph);
        let t = Instant::now();
        let r = simulate(&dag, &dag.estimate_s, &cfg);
        let bound = r.critical_path_s.max(r.work_s / u64::from(a.nodes));
        let row = json!({
            "platform": pp.platform,
            "modules": r.modules,
            "recorded_built": r.built,
            "recorded_twice": r.built_twice,
            "makespan_s": r.makespan_s,
            "critical_path_s": r.critical_path_s,
            "work_s": r.work_s,
            "node_seconds": r.node_seconds,
            "nodes_max": r.nodes_max,
            "instances_launched": r.instances_launched,
            "instances_running_at_end": r.instances_running_at_end,
            "max_history_events": serde_json::Value::Null,
            "executions": serde_json::Value::Null,
            "mode": "fast",
            "makespan_over_bound": (r.makespan_s as f64 / bound as f64 * 1000.0).round() / 1000.0,
            "node_time_over_work": (r.node_seconds as f64 / r.work_s.max(1) as f64 * 1000.0).round() / 1000.0,
            "ticks": r.ticks,
            "simulated_in_s": (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "old_design": old_design(&dag, &dag.estimate_s, cfg.boot_s),
        });
        if !a.json {
            let h = |s: u64| format!("{:.1} h", s as f64 / 3600.0);
            println!(
                "{:<32} {:>5} modules  makespan {:>8} (bound {:>8}, x{:.3})  node time {:>9} (work {:>9}, x{:.3})  nodes {:>2}  launched {:>3}  | old design: {}",
                pp.platform,
                r.modules,
                h(r.makespan_s),
                h(bound),
                r.makespan_s as f64 / bound as f64,
                h(r.node_seconds),
                h(r.work_s),
                r.node_seconds as f64 / r.work_s.max(1) as f64,
                r.nodes_max,
                r.instances_launched,
                h(row["old_design"]["makespan_s"].as_u64().unwrap_or(0)),
            );
        }
        rows.push(row);
    }
    if a.json {
        println!("{}", json!({ "platforms": rows }));
    }
    Ok(())
}
