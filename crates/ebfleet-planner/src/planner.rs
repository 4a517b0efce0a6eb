//! The whole planning run: read the tree once per architecture, choose
//! targets, resolve them like the robot, and plan every platform.

use crate::graph::{Graph, NodeId, ResolveError};
use crate::plan::{
    plan_platform, planned_module, ModuleTable, PlanOptions, PlatformPlan, Unresolvable,
};
use crate::policy::{is_cuda, select_latest, Choice, Policy, PolicyError};
use crate::robot::{Robot, RobotOptions};
use crate::tree::{EasyconfigFiles, EasyconfigTree, Problem, Progress};
use ebfleet_core::arch::Arch;
use ebfleet_core::built::Built;
use ebfleet_core::platform::Platform;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What to build.
#[derive(Debug, Clone)]
pub enum Targets {
    /// The latest easyconfig of each software under a policy.
    Latest(Policy),
    /// The easyconfig file names of an easystack file.
    Easystack(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// A plan for several platforms.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Easyconfig files in the tree.
    pub easyconfigs: usize,
    /// Files read that were reported and skipped, per architecture.
    pub problems: BTreeMap<Arch, Vec<Problem>>,
    pub platforms: Vec<PlatformPlan>,
    /// Per architecture, every module of some platform's closure.
    pub modules: BTreeMap<Arch, ModuleTable>,
    /// Graphviz text of each platform's closure, when asked for.
    #[serde(skip)]
    pub dot: Option<String>,
}

pub struct PlanRequest<'a> {
    pub platforms: Vec<&'a Platform>,
    pub targets: Targets,
    /// Per platform name, what it has built.
    pub built: HashMap<String, Built>,
    pub robot: RobotOptions,
    pub options: PlanOptions,
    pub dot: bool,
}

/// Plan every requested platform from `files` (read once, parsed once per
/// architecture; every file when the targets are the latest of everything,
/// only what the robot reaches for an easystack).
pub fn plan(
    files: &Arc<EasyconfigFiles>,
    req: &PlanRequest<'_>,
    progress: &dyn Progress,
) -> Result<Plan, PlanError> {
    let mut arches: Vec<Arch> = req.platforms.iter().map(|p| p.arch()).collect();
    arches.sort();
    arches.dedup();
    let mut out = Plan {
        easyconfigs: files.len(),
        problems: BTreeMap::new(),
        platforms: Vec::new(),
        modules: BTreeMap::new(),
        dot: req.dot.then(String::new),
    };
    let mut by_name: HashMap<String, PlatformPlan> = HashMap::new();
    for arch in arches {
        let tree = EasyconfigTree::new(files.clone(), arch);
        if matches!(req.targets, Targets::Latest(_)) {
            tree.load_all(progress);
        }
        let robot = Robot::new(&tree, req.robot);
        let (choices, missing) = choose(&robot, &req.targets)?;
        let mut graph = Graph::new(&robot);
        progress.phase(&format!("resolving ({arch})"), choices.len());
        let nodes: HashMap<usize, Result<NodeId, ResolveError>> = choices
            .iter()
            .map(|c| {
                progress.inc();
                (c.id, graph.add_target(c.id))
            })
            .collect();
        let on_arch = req.platforms.iter().filter(|p| p.arch() == arch).count();
        progress.phase(&format!("planning platforms ({arch})"), on_arch);
        // Platforms of one architecture that agree on CUDA, on what they
        // have built and on what their overlays need get the same plan: it
        // is made once (most of them, on a first run). Overlays come first:
        // what they need from their base, the base builds.
        let mut made: Vec<Made<'_>> = Vec::new();
        let mut base_roots: HashMap<&str, Vec<NodeId>> = HashMap::new();
        let empty = Built::new();
        let on_this_arch = req.platforms.iter().filter(|p| p.arch() == arch);
        let (overlays, others): (Vec<&&Platform>, Vec<&&Platform>) =
            on_this_arch.partition(|p| p.base.is_some());
        for platform in overlays.into_iter().chain(others) {
            let built = req.built.get(&platform.name).unwrap_or(&empty);
            let cuda = platform.has_cuda();
            let mut roots = base_roots
                .remove(platform.name.as_str())
                .unwrap_or_default();
            roots.sort_unstable();
            roots.dedup();
            let same = made
                .iter()
                .find(|m| m.cuda == cuda && m.built == built && m.roots == roots);
            let (p, base_needs) = match same {
                Some(m) => (
                    by_name[m.platform].clone().for_platform(platform),
                    m.base_needs.clone(),
                ),
                None => {
                    let planned = plan_platform(
                        &graph,
                        platform,
                        &choices,
                        &nodes,
                        built,
                        &roots,
                        req.options,
                    );
                    let table = out.modules.entry(arch).or_default();
                    for &n in &planned.closure {
                        let module = &graph.node(n).module;
                        if !table.contains_key(module) {
                            table.insert(module.clone(), planned_module(&graph, n));
                        }
                    }
                    let mut p = planned.plan;
                    p.unresolvable.extend(missing.iter().cloned());
                    (p, planned.base_needs)
                }
            };
            if let Some(base) = &platform.base {
                base_roots
                    .entry(base.as_str())
                    .or_default()
                    .extend(&base_needs);
            }
            if let Some(dot) = out.dot.as_mut() {
                dot.push_str(&to_dot(&graph, &p, built));
            }
            by_name.insert(platform.name.clone(), p);
            progress.inc();
            made.push(Made {
                cuda,
                built,
                roots,
                platform: &platform.name,
                base_needs,
            });
        }
        out.problems.insert(arch, tree.problems());
    }
    // Keep the order the platforms were asked for.
    for p in &req.platforms {
        if let Some(plan) = by_name.remove(&p.name) {
            out.platforms.push(plan);
        }
    }
    Ok(out)
}

/// A platform planned in this run, whose plan a platform that agrees on
/// all of this shares.
struct Made<'a> {
    cuda: bool,
    built: &'a Built,
    /// What its overlays need from it.
    roots: Vec<NodeId>,
    platform: &'a str,
    /// An overlay's: what it needs from its base.
    base_needs: Vec<NodeId>,
}

/// The chosen easyconfigs, and easystack entries with no easyconfig.
fn choose(
    robot: &Robot<'_>,
    targets: &Targets,
) -> Result<(Vec<Choice>, Vec<Unresolvable>), PolicyError> {
    match targets {
        Targets::Latest(policy) => Ok((select_latest(robot, policy)?, Vec::new())),
        Targets::Easystack(names) => {
            let tree = robot.tree();
            let mut choices = Vec::new();
            let mut missing = Vec::new();
            for name in names {
                match tree.find_target(name) {
                    Some(id) => {
                        let cuda = tree.easyconfig(id).is_some_and(is_cuda);
                        if !choices.iter().any(|c: &Choice| c.id == id) {
                            choices.push(Choice { id, cuda });
                        }
                    }
                    None => missing.push(Unresolvable {
                        easyconfig: name.clone(),
                        error: format!("no easyconfig file named {name} in the easyconfigs tree"),
                    }),
                }
            }
            Ok((choices, missing))
        }
    }
}

/// One Graphviz digraph of a platform's closure: built modules grey, targets bold.
fn to_dot(graph: &Graph<'_, '_>, plan: &PlatformPlan, built: &Built) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n",
        plan.platform
    );
    let roots: Vec<NodeId> = plan.targets.iter().filter_map(|t| graph.find(t)).collect();
    let members = graph.closure_of(&roots);
    for &n in &members {
        let node = graph.node(n);
        let mut attrs = Vec::new();
        if built.contains_key(&node.module) {
            attrs.push("style=filled, fillcolor=lightgrey");
        }
        if plan.targets.contains(&node.module) {
            attrs.push("penwidth=2");
        }
        s.push_str(&format!("  \"{}\" [{}];\n", node.module, attrs.join(", ")));
        for d in &node.runtime_deps {
            s.push_str(&format!(
                "  \"{}\" -> \"{}\";\n",
                node.module,
                graph.node(*d).module
            ));
        }
        for d in &node.build_deps {
            s.push_str(&format!(
                "  \"{}\" -> \"{}\" [style=dashed];\n",
                node.module,
                graph.node(*d).module
            ));
        }
    }
    s.push_str("}\n");
    s
}
