//! Each subcommand: read arguments, call the core, print.

use crate::args::{
    Cli, Command, LatestArgs, ParseArgs, PlanArgs, PlatformFileArgs, PlatformsArgs, PolicyArgs,
    ResolveArgs, TreeArgs,
};
use crate::progress::Bar;
use anyhow::{bail, Context, Result};
use ebfleet_core::built::{parse_built, Recorded};
use ebfleet_core::estimate::{price_of, Estimate, Prices};
use ebfleet_core::names::ExecutionName;
use ebfleet_core::platform::{Platform, Platforms};
use ebfleet_core::Arch;
use ebfleet_planner::parse_cache::ParseCache;
use ebfleet_planner::planner::Plan;
use ebfleet_planner::planner::{self, PlanRequest, Targets};
use ebfleet_planner::policy::{self, Policy};
use ebfleet_planner::report::{self, ParsedReport, TargetReport};
use ebfleet_planner::robot::{Robot, RobotOptions};
use ebfleet_planner::tree::{EasyconfigFiles, EasyconfigTree, Problem};
use ebfleet_planner::wire::build_graph;
use ebfleet_scheduler::sim::{simulate, SimConfig};
use ebfleet_scheduler::{Dag, DurationModel};
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Plan(a) => plan(a),
        Command::Resolve(a) => resolve(a),
        Command::Parse(a) => parse(a),
        Command::Latest(a) => latest(a),
        Command::Platforms(a) => platforms(a),
        Command::Run(a) => crate::operator::run(a),
        Command::Status(a) => crate::operator::status(a),
        Command::Logs(a) => crate::operator::logs(a),
        Command::Pull(a) => crate::operator::pull(a),
        Command::Report(a) => crate::operator::report(a),
        Command::Completions(a) => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cli, "ebfleet", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The easyconfigs of `--easyconfigs`, with the parse cache (when there
/// is one), read lazily.
fn open_files(a: &TreeArgs) -> Result<Arc<EasyconfigFiles>> {
    let cache = match a.cache_file() {
        Some(f) => {
            let (cache, why) = ParseCache::read(&f);
            if let Some(why) = why {
                tracing::warn!("parse cache not used, it will be rewritten: {why}");
            }
            cache
        }
        None => ParseCache::new(),
    };
    Ok(EasyconfigFiles::scan(&a.easyconfigs, Arc::new(cache))?)
}

/// Write back the parse cache if this run added to it; when every file was
/// read, it keeps only the parses of the tree's current files.
fn save_cache(a: &TreeArgs, files: &EasyconfigFiles) {
    let Some(f) = a.cache_file() else {
        return;
    };
    let cache = files.cache();
    if let Some(digests) = files.digests() {
        cache.retain(&digests);
    }
    if cache.changed() {
        if let Err(e) = cache.write(&f) {
            tracing::warn!("parse cache not written to {}: {e}", f.display());
        }
    }
}

/// Every easyconfig of the tree for `arch`, read now (with a progress bar).
fn load_tree(files: &Arc<EasyconfigFiles>, arch: Arch) -> EasyconfigTree {
    let tree = EasyconfigTree::new(files.clone(), arch);
    let bar = Bar::new();
    tree.load_all(&bar);
    bar.finish();
    tree
}

fn robot_options(minimal: bool) -> RobotOptions {
    RobotOptions {
        minimal_toolchains: minimal,
    }
}

fn load_platforms(a: &PlatformFileArgs) -> Result<Platforms> {
    match &a.platforms_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading platforms file {}", f.display()))?;
            Platforms::from_toml(&text).with_context(|| format!("in {}", f.display()))
        }
        None => Ok(Platforms::default_set()?),
    }
}

/// The easyconfig file names easystack `f` lists; what ebfleet does not
/// honour of it is warned about.
pub fn read_easystack(f: &std::path::Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(f).with_context(|| format!("reading easystack {}", f.display()))?;
    let es = policy::parse_easystack(&text).with_context(|| format!("in {}", f.display()))?;
    for option in &es.ignored {
        tracing::warn!("{}: not honoured by ebfleet: {option}", f.display());
    }
    Ok(es.names)
}

fn targets(a: &PolicyArgs) -> Result<Targets> {
    let select = &a.select;
    if let Some(f) = &select.easystack {
        return Ok(Targets::Easystack(read_easystack(f)?));
    }
    let floors = select
        .floors
        .iter()
        .map(|f| f.parse().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    Ok(Targets::Latest(Policy {
        toolchains: a.toolchains.clone(),
        floors,
        include: select.include.clone(),
        exclude: select.exclude.clone(),
    }))
}

fn report_problems(problems: &[Problem], arch: Arch) {
    if problems.is_empty() {
        return;
    }
    tracing::warn!("{} easyconfig(s) skipped on {arch}:", problems.len());
    for p in problems {
        tracing::warn!("  {p}");
    }
}

fn plan(a: PlanArgs) -> Result<ExitCode> {
    let platforms = load_platforms(&a.platforms)?;
    let selected = platforms.select(&a.platform)?;
    let recorded = if a.recorded {
        let names: Vec<&str> = selected.iter().map(|p| p.name.as_str()).collect();
        crate::operator::recorded(&a.at, &names)?
    } else {
        HashMap::new()
    };
    let built = match &a.built {
        None if a.recorded => recorded
            .iter()
            .map(|(p, r)| (p.clone(), r.built.clone()))
            .collect(),
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let built = parse_built(&text).with_context(|| format!("in {}", f.display()))?;
            // A misspelled platform would silently plan everything again.
            let known = || platforms.platforms.iter().map(|p| p.name.as_str());
            let mut names: Vec<&String> = built.keys().collect();
            names.sort();
            if let Some(name) = names
                .into_iter()
                .find(|n| !known().any(|k| k == n.as_str()))
            {
                let hint = ebfleet_core::suggest::did_you_mean(name, known());
                bail!("in {}: unknown platform '{name}'{hint}", f.display());
            }
            built
        }
        None => Default::default(),
    };
    let req = PlanRequest {
        platforms: selected,
        targets: targets(&a.policy)?,
        built,
        robot: robot_options(a.tree.minimal_toolchains),
        options: ebfleet_planner::plan::PlanOptions {
            max_batch_modules: a.max_batch,
            // The pipeline's shape (a unit per module) is what --estimate
            // simulates.
            graph: a.estimate,
        },
        dot: a.dot.is_some(),
    };
    let files = open_files(&a.tree)?;
    let bar = Bar::new();
    let mut plan = planner::plan(&files, &req, &bar)?;
    bar.finish();
    save_cache(&a.tree, &files);
    if a.estimate {
        estimate(&mut plan, &req.platforms, &a, &recorded)?;
    }
    for (arch, problems) in &plan.problems {
        report_problems(problems, *arch);
    }
    if let (Some(path), Some(dot)) = (&a.dot, &plan.dot) {
        std::fs::write(path, dot).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        // The graphs were the estimate's input, not the plan's output.
        for p in &mut plan.platforms {
            p.graph.clear();
        }
        serde_json::to_writer(&mut out, &plan)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let last = if a.estimate {
        format!("{:>8} {:>9} {:>9}", "NODE-H", "MAKESPAN", "USD")
    } else {
        format!("{:>7}", "BATCHES")
    };
    writeln!(
        out,
        "{:<34} {:<8} {:>7} {:>7} {:>7} {:>8} {:>6} {last}",
        "PLATFORM", "ARCH", "TARGETS", "CLOSURE", "BUILT", "TO BUILD", "UNRES."
    )?;
    for p in &plan.platforms {
        let last = match &p.estimate {
            Some(e) => format!(
                "{:>8.1} {:>8.1}h {:>9}",
                e.node_hours,
                e.makespan_hours,
                e.usd.map_or_else(|| "-".to_string(), |u| format!("{u:.0}"))
            ),
            None => format!("{:>7}", p.batches.len()),
        };
        writeln!(
            out,
            "{:<34} {:<8} {:>7} {:>7} {:>7} {:>8} {:>6} {last}",
            p.platform,
            p.arch.as_str(),
            p.targets.len(),
            p.closure,
            p.already_built,
            p.to_build(),
            p.unresolvable.len()
        )?;
    }
    // Each unresolvable target once, with the platforms it fails on.
    let mut unresolvable: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for p in &plan.platforms {
        for u in &p.unresolvable {
            match unresolvable
                .iter_mut()
                .find(|(e, err, _)| *e == u.easyconfig && *err == u.error)
            {
                Some((_, _, platforms)) => platforms.push(&p.platform),
                None => unresolvable.push((&u.easyconfig, &u.error, vec![&p.platform])),
            }
        }
    }
    if !unresolvable.is_empty() {
        writeln!(out, "\nunresolvable targets:")?;
        for (easyconfig, error, platforms) in &unresolvable {
            writeln!(out, "  {easyconfig} on {}: {error}", platforms.join(", "))?;
        }
    }
    let skipped: usize = plan.problems.values().map(Vec::len).max().unwrap_or(0);
    writeln!(
        out,
        "\n{} easyconfigs in the tree, {} skipped (see warnings above)",
        plan.easyconfigs, skipped
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Each platform's estimate: its graph (with its recorded build times where
/// `--recorded` found them, else `--durations`') run through the
/// pipeline's scheduler on simulated nodes, as the fast mode of
/// `scripts/bench-scale.sh` does.
fn estimate(
    plan: &mut Plan,
    platforms: &[&Platform],
    a: &PlanArgs,
    recorded: &HashMap<String, Recorded>,
) -> Result<()> {
    let read = |f: &std::path::Path| {
        std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))
    };
    let model = match &a.durations {
        Some(f) => DurationModel::from_json(&read(f)?).with_context(|| f.display().to_string())?,
        None => DurationModel::shipped(),
    };
    let prices: Prices = match &a.prices {
        Some(f) => serde_json::from_str(&read(f)?).with_context(|| f.display().to_string())?,
        None => Prices::new(),
    };
    let cfg = SimConfig {
        settings: ebfleet_scheduler::Settings {
            max_nodes: a.nodes.max(1),
            max_instances: a.nodes.max(1) * 4,
            ..Default::default()
        },
        ..SimConfig::default()
    };
    let execution: ExecutionName = "estimate".parse()?;
    for (pp, platform) in plan.platforms.iter_mut().zip(platforms) {
        let none = HashMap::new();
        let durations = recorded.get(&platform.name).map_or(&none, |r| &r.durations);
        let graph = build_graph(pp, platform, &execution, model.with_recorded(durations))?;
        let dag = Dag::from_graph(&graph);
        let r = simulate(&dag, &dag.estimate_s, &cfg);
        let price = price_of(&prices, &platform.name, &platform.cpu_name);
        pp.estimate = Some(Estimate::new(r.node_seconds, r.makespan_s, price));
    }
    Ok(())
}

fn read_targets(a: &ResolveArgs) -> Result<Vec<String>> {
    let mut targets = a.targets.clone();
    if let Some(f) = &a.targets_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        targets.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if targets.is_empty() {
        bail!("no targets: give easyconfig file names or --targets-file");
    }
    Ok(targets)
}

fn resolve(a: ResolveArgs) -> Result<ExitCode> {
    let targets = read_targets(&a)?;
    // Lazily: only the files the robot's search reaches are read.
    let files = open_files(&a.tree)?;
    let tree = EasyconfigTree::new(files.clone(), a.arch);
    let robot = Robot::new(&tree, robot_options(a.tree.minimal_toolchains));
    let reports = report::resolve_targets(&robot, &targets);
    save_cache(&a.tree, &files);
    let failed = reports
        .iter()
        .filter(|r| matches!(r, TargetReport::Failed { .. }))
        .count();
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer(&mut out, &reports)?;
        writeln!(out)?;
    } else {
        for r in &reports {
            match r {
                TargetReport::Resolved {
                    target,
                    closure,
                    paths,
                    ..
                } => {
                    writeln!(out, "== {target} ({}): {} modules", a.arch, closure.len())?;
                    for (m, p) in closure.iter().zip(paths) {
                        writeln!(out, " * [ ] {p} (module: {m})")?;
                    }
                }
                TargetReport::Failed { target, error } => {
                    writeln!(out, "== {target}: ERROR {error}")?
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn parse(a: ParseArgs) -> Result<ExitCode> {
    let files = open_files(&a.tree)?;
    let tree = load_tree(&files, a.arch);
    save_cache(&a.tree, &files);
    let robot = Robot::new(&tree, robot_options(a.tree.minimal_toolchains));
    let reports = report::parse_reports(&robot);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        for r in &reports {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let failed: Vec<&ParsedReport> = reports
        .iter()
        .filter(|r| matches!(r, ParsedReport::Failed { .. }))
        .collect();
    for f in &failed {
        if let ParsedReport::Failed { path, error } = f {
            writeln!(out, "{path}: {error}")?;
        }
    }
    writeln!(
        out,
        "{} easyconfigs, {} parsed, {} skipped ({})",
        reports.len(),
        reports.len() - failed.len(),
        failed.len(),
        a.arch
    )?;
    Ok(ExitCode::SUCCESS)
}

fn latest(a: LatestArgs) -> Result<ExitCode> {
    let Targets::Latest(policy) = targets(&a.policy)? else {
        bail!("--easystack already names the easyconfigs; `latest` applies the toolchain policy");
    };
    let files = open_files(&a.tree)?;
    let tree = load_tree(&files, a.arch);
    save_cache(&a.tree, &files);
    report_problems(&tree.problems(), a.arch);
    let robot = Robot::new(&tree, robot_options(a.tree.minimal_toolchains));
    let mut out = std::io::stdout().lock();
    for c in policy::select_latest(&robot, &policy)?
        .into_iter()
        .filter(|c| a.cuda || !c.cuda)
    {
        let path = &tree.entry(c.id).path;
        writeln!(out, "{}", path.rsplit('/').next().unwrap_or(path))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn platforms(a: PlatformsArgs) -> Result<ExitCode> {
    let platforms = load_platforms(&a.platforms)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &platforms.platforms)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<34} {:<8} {:<16} {:<24} {:<6} FAMILIES",
        "PLATFORM", "ARCH", "ARCHSPEC", "OPTARCH", "CUDA CC"
    )?;
    for p in &platforms.platforms {
        let cc = p
            .gpu
            .as_ref()
            .and_then(|g| g.cuda_compute_capability.clone())
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<34} {:<8} {:<16} {:<24} {:<6} {}",
            p.name,
            p.arch().as_str(),
            p.cpu.archspec,
            p.cpu.optarch,
            cc,
            p.families.join(" ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
