//! Plans: per platform, the closure of what to build minus what is already
//! built, cut into batches in dependency order.
//!
//! A batch is a run of modules in topological order, so `eb --robot` on its
//! easyconfigs builds everything in it; it lists the modules built before it
//! (already on the platform or in earlier batches) that its builds load, so a
//! build node downloads only that closure. Batches name modules only; what
//! each module is (easyconfig, checksum, dependencies) is listed once per
//! architecture in [`ModuleTable`], since platforms share most of it.

use crate::graph::{Graph, NodeId, ResolveError};
use crate::policy::Choice;
use crate::robot::Robot;
use crate::tree::EcId;
use ebfleet_core::built::Built;
use ebfleet_core::platform::{Cpu, Platform};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Most modules in one batch.
    pub max_batch_modules: usize,
    /// Give each platform's closure as a graph ([`PlatformPlan::graph`],
    /// what the pipeline schedules) instead of cutting batches.
    #[serde(default)]
    pub graph: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            max_batch_modules: 50,
            graph: false,
        }
    }
}

/// One module of a platform's closure graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEntry {
    pub module: String,
    pub easyconfig: String,
    pub easyconfig_sha256: String,
    /// Direct build dependencies, by index in the graph (all earlier).
    pub build_deps: Vec<u32>,
    /// Direct runtime dependencies and the toolchain, by index.
    pub runtime_deps: Vec<u32>,
    /// Already built on the platform from this easyconfig.
    pub built: bool,
    /// A need of a CUDA overlay that its base platform builds (`built` is
    /// then set too: it is never built here).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_base: bool,
}

/// A module of some platform's closure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedModule {
    pub module: String,
    /// Easyconfig path relative to the tree root.
    pub easyconfig: String,
    pub easyconfig_sha256: String,
    /// Direct dependencies (build, runtime, toolchain), by module name.
    pub deps: Vec<String>,
    /// The runtime ones among `deps` (and the toolchain): what loading
    /// this module loads.
    pub runtime_deps: Vec<String>,
}

/// Module name → what it is, for every module of some platform's closure:
/// one table per architecture, shared by its platforms' batches.
pub type ModuleTable = std::collections::BTreeMap<String, PlannedModule>;

/// What building `modules` (one batch) loads that the batch does not build
/// itself: their direct dependencies and, through runtime dependencies,
/// what those load; sorted. A module missing from `table` is an error.
pub fn build_environment<'t>(
    table: &'t ModuleTable,
    modules: &[String],
) -> Result<Vec<&'t str>, String> {
    let own: std::collections::HashSet<&str> = modules.iter().map(String::as_str).collect();
    let entry = |m: &str| table.get(m).ok_or_else(|| m.to_string());
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<&'t str> = Vec::new();
    for m in modules {
        stack.extend(entry(m)?.deps.iter().map(String::as_str));
    }
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            stack.extend(entry(d)?.runtime_deps.iter().map(String::as_str));
        }
    }
    let mut out: Vec<&str> = seen.into_iter().filter(|m| !own.contains(m)).collect();
    out.sort_unstable();
    Ok(out)
}

/// The table entry of a graph node.
pub fn planned_module(graph: &Graph<'_, '_>, n: NodeId) -> PlannedModule {
    let node = graph.node(n);
    let entry = graph.robot().tree().entry(node.ec);
    PlannedModule {
        module: node.module.clone(),
        easyconfig: entry.path.clone(),
        easyconfig_sha256: entry.sha256.clone(),
        deps: node.deps().map(|d| graph.node(d).module.clone()).collect(),
        runtime_deps: node
            .runtime_deps
            .iter()
            .map(|&d| graph.node(d).module.clone())
            .collect(),
    }
}

/// One batch of builds on one node. What it loads that is built before
/// it is [`build_environment`] of its modules, from the module table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub index: usize,
    /// Module names, in an order `eb --robot` can build them.
    pub modules: Vec<String>,
    /// Earlier batches that build some of what it loads.
    pub after: Vec<usize>,
}

/// A target that cannot be built, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unresolvable {
    pub easyconfig: String,
    pub error: String,
}

/// The plan of one platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformPlan {
    pub platform: String,
    pub arch: ebfleet_core::arch::Arch,
    /// A CUDA overlay's base platform: its closure holds only modules
    /// whose own closure holds CUDA, the rest are the base's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Modules of an overlay's closure that its base builds.
    #[serde(default, skip_serializing_if = "ebfleet_core::wire::is_zero")]
    pub from_base: usize,
    /// Modules the policy chose.
    pub targets: Vec<String>,
    /// Size of the targets' closure.
    pub closure: usize,
    /// Modules of the closure already built from the same easyconfig (an
    /// overlay's, on the overlay).
    pub already_built: usize,
    pub unresolvable: Vec<Unresolvable>,
    pub batches: Vec<Batch>,
    /// The closure, dependencies first, when [`PlanOptions::graph`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graph: Vec<GraphEntry>,
    /// What building it is expected to take (`ebfleet plan --estimate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<ebfleet_core::estimate::Estimate>,
    /// Each module to build that a GCC toolchain compiles: the `--optarch`
    /// its GCC accepts ([`ebfleet_core::platform::Cpu::optarch_for_gcc`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub optarch: BTreeMap<String, String>,
    /// The same modules' GCC releases, from which `optarch` is made for
    /// each platform that shares this plan.
    #[serde(skip)]
    pub gcc: BTreeMap<String, String>,
}

impl PlatformPlan {
    /// This plan for `platform`, which plans the same modules (same
    /// architecture, CUDA and built modules) but has its own CPU.
    pub fn for_platform(mut self, platform: &Platform) -> Self {
        self.platform = platform.name.clone();
        self.base = platform.base.clone();
        self.optarch = optarch_of(&self.gcc, &platform.cpu);
        self
    }
}

/// Each module's `--optarch` on `cpu`, from the GCC release that compiles it.
fn optarch_of(gcc: &BTreeMap<String, String>, cpu: &Cpu) -> BTreeMap<String, String> {
    gcc.iter()
        .map(|(m, g)| (m.clone(), cpu.optarch_for_gcc(g)))
        .collect()
}

impl PlatformPlan {
    pub fn to_build(&self) -> usize {
        self.batches.iter().map(|b| b.modules.len()).sum::<usize>()
            + self.graph.iter().filter(|g| !g.built).count()
    }
}

/// One platform planned: its plan, its closure (for the module table) and,
/// for a CUDA overlay, the modules its base must build for it.
pub struct Planned {
    pub plan: PlatformPlan,
    pub closure: Vec<NodeId>,
    pub base_needs: Vec<NodeId>,
}

/// Plan one platform from a graph that holds its targets. A base platform
/// also builds `base_roots`, what its overlays need from it.
pub fn plan_platform(
    graph: &Graph<'_, '_>,
    platform: &Platform,
    choices: &[Choice],
    target_nodes: &HashMap<usize, Result<NodeId, ResolveError>>,
    built: &Built,
    base_roots: &[NodeId],
    options: PlanOptions,
) -> Planned {
    let tree = graph.robot().tree();
    let mut targets = Vec::new();
    let mut unresolvable = Vec::new();
    let mut roots = Vec::new();
    for c in choices.iter().filter(|c| !c.cuda || platform.has_cuda()) {
        match &target_nodes[&c.id] {
            Ok(n) => roots.push(*n),
            // What an overlay cannot resolve without CUDA is its base's to report.
            Err(_) if platform.base.is_some() && !c.cuda => {}
            Err(e) => unresolvable.push(Unresolvable {
                easyconfig: tree.entry(c.id).path.clone(),
                error: e.to_string(),
            }),
        }
    }
    // An overlay builds what holds CUDA; its targets are the choices that do.
    let overlay = platform.base.as_ref().map(|_| holds_cuda(graph, &roots));
    if let Some(cuda) = &overlay {
        roots.retain(|n| cuda.contains(n));
    }
    targets.extend(roots.iter().map(|&n| graph.node(n).module.clone()));
    roots.extend_from_slice(base_roots);
    // The closure of all targets, in build order.
    let order = graph.closure_of(&roots);
    let from_base = |n: NodeId| overlay.as_ref().is_some_and(|cuda| !cuda.contains(&n));
    let is_built = |n: NodeId| {
        let node = graph.node(n);
        from_base(n)
            || match built.get(&node.module) {
                Some(None) => true,
                Some(Some(sha)) => *sha == tree.entry(node.ec).sha256,
                None => false,
            }
    };
    let base_needs: Vec<NodeId> = order.iter().copied().filter(|&n| from_base(n)).collect();
    let to_build: Vec<NodeId> = order.iter().copied().filter(|&n| !is_built(n)).collect();
    let gcc: BTreeMap<String, String> = to_build
        .iter()
        .filter_map(|&n| {
            let node = graph.node(n);
            Some((node.module.clone(), module_gcc(graph.robot(), node.ec)?))
        })
        .collect();
    let (batches, closure_graph) = if options.graph {
        (
            Vec::new(),
            closure_graph(graph, &order, is_built, from_base),
        )
    } else {
        (cut_batches(graph, &to_build, options), Vec::new())
    };
    let own = order.len() - base_needs.len();
    let plan = PlatformPlan {
        platform: platform.name.clone(),
        arch: platform.arch(),
        base: platform.base.clone(),
        from_base: base_needs.len(),
        targets,
        closure: own,
        already_built: own - to_build.len(),
        unresolvable,
        batches,
        graph: closure_graph,
        estimate: None,
        optarch: optarch_of(&gcc, &platform.cpu),
        gcc,
    };
    Planned {
        plan,
        closure: order,
        base_needs,
    }
}

/// The modules of the closure of `roots` whose own closure holds CUDA
/// (CUDA itself, a CUDA build, or what needs one): what a CUDA overlay
/// builds over its base.
fn holds_cuda(graph: &Graph<'_, '_>, roots: &[NodeId]) -> HashSet<NodeId> {
    let tree = graph.robot().tree();
    let mut cuda = HashSet::new();
    // Dependencies first, so each node's are decided before it.
    for n in graph.closure_of(roots) {
        let node = graph.node(n);
        let own = tree.easyconfig(node.ec).is_some_and(crate::policy::is_cuda);
        if own || node.deps().any(|d| cuda.contains(&d)) {
            cuda.insert(n);
        }
    }
    cuda
}

/// The GCC release that compiles a module: its toolchain's GCC (the
/// toolchain itself for `GCCcore` and `GCC`, else the `GCC` of its
/// hierarchy). `None` for the system toolchain and for toolchains of other
/// compilers (Intel, NVHPC), to which a `GCC:` optarch does not apply.
fn module_gcc(robot: &Robot<'_>, ec: EcId) -> Option<String> {
    let tc = &robot.tree().easyconfig(ec)?.toolchain;
    if tc.name == "GCCcore" || tc.name == "GCC" {
        return Some(tc.version.clone());
    }
    let hierarchy = robot.hierarchy(tc);
    let subtoolchains = hierarchy.as_ref().as_ref().ok()?;
    subtoolchains
        .iter()
        .find(|t| t.name == "GCC")
        .map(|t| t.version.clone())
}

/// The closure `order` (dependencies first) as a graph over its positions.
fn closure_graph(
    graph: &Graph<'_, '_>,
    order: &[NodeId],
    is_built: impl Fn(NodeId) -> bool,
    from_base: impl Fn(NodeId) -> bool,
) -> Vec<GraphEntry> {
    let index: HashMap<NodeId, u32> = order
        .iter()
        .enumerate()
        .map(|(i, &n)| (n, i as u32))
        .collect();
    let tree = graph.robot().tree();
    order
        .iter()
        .map(|&n| {
            let node = graph.node(n);
            let entry = tree.entry(node.ec);
            let at = |ds: &[NodeId]| ds.iter().map(|d| index[d]).collect();
            GraphEntry {
                module: node.module.clone(),
                easyconfig: entry.path.clone(),
                easyconfig_sha256: entry.sha256.clone(),
                build_deps: at(&node.build_deps),
                runtime_deps: at(&node.runtime_deps),
                built: is_built(n),
                from_base: from_base(n),
            }
        })
        .collect()
}

/// Cut modules (given in build order) into batches: by dependency depth
/// among the modules to build, then in chunks of at most the batch size.
fn cut_batches(graph: &Graph<'_, '_>, to_build: &[NodeId], options: PlanOptions) -> Vec<Batch> {
    let building: HashSet<NodeId> = to_build.iter().copied().collect();
    // Depth: 0 when nothing it needs is being built, else 1 + deepest need.
    let mut depth: HashMap<NodeId, usize> = HashMap::new();
    for &n in to_build {
        let d = graph
            .node(n)
            .deps()
            .filter(|d| building.contains(d))
            .map(|d| depth[&d] + 1)
            .max()
            .unwrap_or(0);
        depth.insert(n, d);
    }
    let mut ordered: Vec<NodeId> = to_build.to_vec();
    // Stable: within a depth, keep the build order.
    ordered.sort_by_key(|n| depth[n]);
    let max = options.max_batch_modules.max(1);
    let mut batch_of: HashMap<NodeId, usize> = HashMap::new();
    let mut batches: Vec<Batch> = Vec::new();
    for chunk in ordered.chunks(max) {
        let index = batches.len();
        batch_of.extend(chunk.iter().map(|&n| (n, index)));
        let mut after: Vec<usize> = graph
            .build_environment(chunk)
            .into_iter()
            .filter_map(|e| batch_of.get(&e).copied())
            .filter(|&b| b != index)
            .collect();
        after.sort_unstable();
        after.dedup();
        batches.push(Batch {
            index,
            modules: chunk
                .iter()
                .map(|&n| graph.node(n).module.clone())
                .collect(),
            after,
        });
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{select_latest, Policy};
    use crate::robot::tests::toolchain_world;
    use crate::robot::{Robot, RobotOptions};
    use crate::tree::tests::ec;
    use ebfleet_core::platform::Platforms;

    /// The plan of `App` and `Broken`, in batches of `max` (or, with 0, as
    /// a graph).
    fn plan_with(built: &Built, max: usize) -> (PlatformPlan, ModuleTable) {
        let world = toolchain_world(&[
            ("c/CMake/CMake-3.26.3-GCCcore-12.3.0.eb", ec("CMake", "3.26.3", Some(("GCCcore", "12.3.0")), "dependencies = [('zlib', '1.2.13')]")),
            (
                "a/App/App-1-foss-2023a.eb",
                ec("App", "1", Some(("foss", "2023a")), "builddependencies = [('CMake', '3.26.3')]\ndependencies = [('zlib', '1.2.13')]"),
            ),
            ("b/Broken/Broken-1-GCC-12.3.0.eb", ec("Broken", "1", Some(("GCC", "12.3.0")), "dependencies = [('Gone', '1')]")),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        let policy = Policy {
            include: vec!["App".into(), "Broken".into()],
            ..Policy::default()
        };
        let choices = select_latest(&robot, &policy).unwrap();
        let mut graph = Graph::new(&robot);
        let nodes: HashMap<usize, _> = choices
            .iter()
            .map(|c| (c.id, graph.add_target(c.id)))
            .collect();
        let platforms = Platforms::default_set().unwrap();
        let platform = platforms
            .platforms
            .iter()
            .find(|p| p.arch() == ebfleet_core::arch::Arch::X86_64)
            .unwrap();
        let Planned { plan, closure, .. } = plan_platform(
            &graph,
            platform,
            &choices,
            &nodes,
            built,
            &[],
            PlanOptions {
                max_batch_modules: max,
                graph: max == 0,
            },
        );
        let table = closure
            .iter()
            .map(|&n| (graph.node(n).module.clone(), planned_module(&graph, n)))
            .collect();
        (plan, table)
    }

    fn check_order(plan: &PlatformPlan, table: &ModuleTable, built: &Built) {
        let mut done: HashSet<String> = built.keys().cloned().collect();
        for b in &plan.batches {
            for need in build_environment(table, &b.modules).unwrap() {
                assert!(
                    done.contains(need),
                    "batch {} needs {need} before it is built",
                    b.index
                );
            }
            let in_batch: HashSet<&str> = b.modules.iter().map(String::as_str).collect();
            for m in &b.modules {
                for d in &table[m].deps {
                    assert!(
                        done.contains(d) || in_batch.contains(d.as_str()),
                        "{m} needs {d}"
                    );
                }
            }
            done.extend(b.modules.iter().cloned());
        }
    }

    #[test]
    fn batches_follow_dependencies_and_report_unresolvable() {
        let built = Built::new();
        let (plan, table) = plan_with(&built, 2);
        assert_eq!(plan.targets, ["App/1-foss-2023a"]);
        assert_eq!(plan.unresolvable.len(), 1);
        assert!(plan.unresolvable[0].error.contains("Gone/1-GCC-12.3.0"));
        assert_eq!(plan.closure, 9);
        assert_eq!(plan.to_build(), 9);
        assert!(plan.batches.iter().all(|b| b.modules.len() <= 2));
        check_order(&plan, &table, &built);
        assert_eq!(table.len(), 9);
        assert_eq!(
            table["App/1-foss-2023a"].easyconfig,
            "a/App/App-1-foss-2023a.eb"
        );
        let last = plan.batches.last().unwrap();
        assert_eq!(last.modules.last().unwrap(), "App/1-foss-2023a");
        // The App batch needs the toolchain and CMake, not binutils (a build dep of nothing loaded).
        let needs = build_environment(&table, &last.modules).unwrap();
        assert!(needs.contains(&"CMake/3.26.3-GCCcore-12.3.0"));
        assert!(needs.contains(&"foss/2023a"));
        assert!(!last.after.is_empty());
        // A module the table lacks is named.
        assert_eq!(
            build_environment(&table, &["Nope/1".to_string()]),
            Err("Nope/1".to_string())
        );
    }

    #[test]
    fn already_built_modules_are_subtracted_unless_their_easyconfig_changed() {
        let mut built = Built::new();
        for m in [
            "GCCcore/12.3.0",
            "binutils/2.40-GCCcore-12.3.0",
            "GCC/12.3.0",
            "zlib/1.2.13-GCCcore-12.3.0",
        ] {
            built.insert(m.into(), None);
        }
        built.insert(
            "OpenMPI/4.1.5-GCC-12.3.0".into(),
            Some("not-the-same-sha".into()),
        );
        let (plan, table) = plan_with(&built, 50);
        assert_eq!(plan.already_built, 4);
        assert_eq!(plan.to_build(), 5);
        let mods: Vec<&str> = plan
            .batches
            .iter()
            .flat_map(|b| b.modules.iter().map(String::as_str))
            .collect();
        assert!(mods.contains(&"OpenMPI/4.1.5-GCC-12.3.0"));
        assert!(!mods.contains(&"GCC/12.3.0"));
        let mut done = built.clone();
        done.remove("OpenMPI/4.1.5-GCC-12.3.0");
        check_order(&plan, &table, &done);
        // With everything in one batch, it needs only what was built before.
        assert_eq!(plan.batches.len(), 1);
        let needs = build_environment(&table, &plan.batches[0].modules).unwrap();
        assert!(needs.contains(&"GCC/12.3.0"));
        assert!(needs.iter().all(|m| built.contains_key(*m)), "{needs:?}");
    }

    #[test]
    fn a_graph_plan_lists_the_closure_with_its_edges_and_no_batches() {
        let mut built = Built::new();
        built.insert("GCCcore/12.3.0".into(), None);
        let (plan, _) = plan_with(&built, 0);
        assert!(plan.batches.is_empty());
        let at = |m: &str| plan.graph.iter().position(|g| g.module == m).unwrap() as u32;
        let app = &plan.graph[at("App/1-foss-2023a") as usize];
        assert_eq!(app.build_deps, [at("CMake/3.26.3-GCCcore-12.3.0")]);
        assert!(app.runtime_deps.contains(&at("zlib/1.2.13-GCCcore-12.3.0")));
        for (i, g) in plan.graph.iter().enumerate() {
            assert!(g
                .build_deps
                .iter()
                .chain(&g.runtime_deps)
                .all(|&d| (d as usize) < i));
        }
        assert!(plan.graph[at("GCCcore/12.3.0") as usize].built);
        assert_eq!(plan.to_build(), plan.graph.len() - 1);
        assert_eq!(plan.closure, plan.graph.len());
    }
}
