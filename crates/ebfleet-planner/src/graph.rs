//! The build graph: every module needed to build a set of targets, with its
//! build dependencies, runtime dependencies and toolchain as edges, as the
//! robot (`resolve_dependencies`) walks them.
//!
//! A node is a module name (`GCC/12.3.0`); its easyconfig is found with
//! `robot_find_easyconfig`. A dependency with no easyconfig makes every
//! module that needs it unresolvable, with the chain that leads to it.

use crate::easyconfig::{module_name, Dependency};
use crate::robot::Robot;
use crate::toolchain::Toolchain;
use crate::tree::EcId;
use serde::Serialize;
use std::collections::HashMap;

pub type NodeId = usize;

/// One module of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub module: String,
    pub ec: EcId,
    /// Needed only while building (build dependencies).
    pub build_deps: Vec<NodeId>,
    /// Loaded with the module: runtime dependencies and the toolchain.
    pub runtime_deps: Vec<NodeId>,
}

impl Node {
    pub fn deps(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.build_deps
            .iter()
            .chain(self.runtime_deps.iter())
            .copied()
    }
}

/// Why a module cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResolveError {
    #[error("Missing dependencies: {module} (no easyconfig file or existing module found), needed by {}", chain.join(" -> "))]
    Missing { module: String, chain: Vec<String> },
    #[error("dependency cycle: {}", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
    #[error("{path}: {reason}, needed by {}", chain.join(" -> "))]
    Invalid {
        path: String,
        reason: String,
        chain: Vec<String>,
    },
}

impl ResolveError {
    fn push_front(&mut self, module: &str) {
        let chain = match self {
            ResolveError::Missing { chain, .. }
            | ResolveError::Cycle { chain }
            | ResolveError::Invalid { chain, .. } => chain,
        };
        chain.insert(0, module.to_string());
    }
}

#[derive(Clone)]
enum State {
    Visiting,
    Done(NodeId),
    Failed(ResolveError),
}

/// The graph of all modules reached from the targets added so far.
pub struct Graph<'r, 't> {
    robot: &'r Robot<'t>,
    nodes: Vec<Node>,
    state: HashMap<String, State>,
}

impl<'r, 't> Graph<'r, 't> {
    pub fn new(robot: &'r Robot<'t>) -> Self {
        Graph {
            robot,
            nodes: Vec::new(),
            state: HashMap::new(),
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn robot(&self) -> &'r Robot<'t> {
        self.robot
    }

    pub fn find(&self, module: &str) -> Option<NodeId> {
        match self.state.get(module) {
            Some(State::Done(id)) => Some(*id),
            _ => None,
        }
    }

    /// Add the easyconfig `id` (a target) and everything it needs.
    pub fn add_target(&mut self, id: EcId) -> Result<NodeId, ResolveError> {
        let tree = self.robot.tree();
        let entry = tree.entry(id);
        let ec = entry
            .easyconfig
            .as_ref()
            .map_err(|e| ResolveError::Invalid {
                path: entry.path.clone(),
                reason: e.to_string(),
                chain: vec![],
            })?;
        self.visit(id, ec.module_name())
    }

    fn visit(&mut self, id: EcId, module: String) -> Result<NodeId, ResolveError> {
        match self.state.get(&module) {
            Some(State::Done(n)) => return Ok(*n),
            Some(State::Failed(e)) => return Err(e.clone()),
            Some(State::Visiting) => {
                return Err(ResolveError::Cycle {
                    chain: vec![module],
                });
            }
            None => {}
        }
        self.state.insert(module.clone(), State::Visiting);
        let result = self.expand(id);
        match result {
            Ok((build_deps, runtime_deps)) => {
                let n = self.nodes.len();
                self.nodes.push(Node {
                    module: module.clone(),
                    ec: id,
                    build_deps,
                    runtime_deps,
                });
                self.state.insert(module, State::Done(n));
                Ok(n)
            }
            Err(mut e) => {
                e.push_front(&module);
                self.state.insert(module, State::Failed(e.clone()));
                Err(e)
            }
        }
    }

    fn expand(&mut self, id: EcId) -> Result<(Vec<NodeId>, Vec<NodeId>), ResolveError> {
        let tree = self.robot.tree();
        let ec = tree.easyconfig(id).expect("visited easyconfigs parsed");
        let deps = self
            .robot
            .final_deps(id)
            .map_err(|reason| ResolveError::Invalid {
                path: tree.entry(id).path.clone(),
                reason,
                chain: vec![],
            })?;
        // External modules are the site's: like `eb --dry-run`, they are
        // taken as present and left out of the graph.
        let mut build = Vec::new();
        for d in deps.build.iter().filter(|d| !d.external) {
            push_unique(&mut build, self.visit_dep(d)?);
        }
        let mut runtime = Vec::new();
        for d in deps.runtime.iter().filter(|d| !d.external) {
            push_unique(&mut runtime, self.visit_dep(d)?);
        }
        if !ec.toolchain.is_system() {
            push_unique(&mut runtime, self.visit_toolchain(&ec.toolchain)?);
        }
        build.retain(|b| !runtime.contains(b));
        Ok((build, runtime))
    }

    fn visit_dep(&mut self, d: &Dependency) -> Result<NodeId, ResolveError> {
        self.visit_found(&d.name, &d.full_version(), d.module_name())
    }

    fn visit_toolchain(&mut self, tc: &Toolchain) -> Result<NodeId, ResolveError> {
        self.visit_found(
            &tc.name,
            &tc.version,
            module_name(&tc.name, &tc.version, false),
        )
    }

    fn visit_found(
        &mut self,
        name: &str,
        full_version: &str,
        module: String,
    ) -> Result<NodeId, ResolveError> {
        if let Some(State::Done(n)) = self.state.get(&module) {
            return Ok(*n);
        }
        let tree = self.robot.tree();
        let Some(id) = tree.find(name, full_version) else {
            return Err(ResolveError::Missing {
                module,
                chain: vec![],
            });
        };
        if let Err(e) = &tree.entry(id).easyconfig {
            return Err(ResolveError::Invalid {
                path: tree.entry(id).path.clone(),
                reason: e.to_string(),
                chain: vec![],
            });
        }
        self.visit(id, module)
    }

    /// The closure of `target` in build order: every dependency before the
    /// modules that need it, `target` last.
    pub fn closure(&self, target: NodeId) -> Vec<NodeId> {
        self.closure_of(&[target])
    }

    /// The closures of `targets`, each in build order, concatenated with
    /// every node kept only the first time: one walk, whatever the overlap.
    pub fn closure_of(&self, targets: &[NodeId]) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = Vec::new();
        // Iterative post-order DFS; a node seen before has its whole
        // closure in `order` already.
        let mut stack: Vec<(NodeId, usize)> = Vec::new();
        for &target in targets {
            if std::mem::replace(&mut seen[target], true) {
                continue;
            }
            stack.push((target, 0));
            while let Some((n, i)) = stack.pop() {
                match self.nodes[n].deps().nth(i) {
                    Some(d) => {
                        stack.push((n, i + 1));
                        if !std::mem::replace(&mut seen[d], true) {
                            stack.push((d, 0));
                        }
                    }
                    None => order.push(n),
                }
            }
        }
        order
    }

    /// Everything the given nodes need loaded to build: their direct
    /// dependencies and, through runtime edges, what those load in turn.
    pub fn build_environment(&self, nodes: &[NodeId]) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut out = Vec::new();
        let mut stack: Vec<NodeId> = nodes.iter().flat_map(|&n| self.nodes[n].deps()).collect();
        while let Some(d) = stack.pop() {
            if std::mem::replace(&mut seen[d], true) {
                continue;
            }
            out.push(d);
            stack.extend(self.nodes[d].runtime_deps.iter().copied());
        }
        out.sort_unstable();
        out
    }
}

fn push_unique(v: &mut Vec<NodeId>, n: NodeId) {
    if !v.contains(&n) {
        v.push(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robot::tests::toolchain_world;
    use crate::robot::RobotOptions;
    use crate::tree::tests::ec;

    fn modules(g: &Graph, ids: &[NodeId]) -> Vec<String> {
        ids.iter().map(|&i| g.node(i).module.clone()).collect()
    }

    #[test]
    fn closure_puts_dependencies_first() {
        let world = toolchain_world(&[
            ("c/CMake/CMake-3.26.3-GCCcore-12.3.0.eb", ec("CMake", "3.26.3", Some(("GCCcore", "12.3.0")), "dependencies = [('zlib', '1.2.13')]")),
            (
                "a/App/App-1-foss-2023a.eb",
                ec("App", "1", Some(("foss", "2023a")), "builddependencies = [('CMake', '3.26.3')]\ndependencies = [('zlib', '1.2.13')]"),
            ),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        let mut g = Graph::new(&robot);
        let app = world.find("App", "1-foss-2023a").unwrap();
        let n = g.add_target(app).unwrap();
        let order = g.closure(n);
        let names = modules(&g, &order);
        assert_eq!(names.last().unwrap(), "App/1-foss-2023a");
        let mut expected = vec![
            "App/1-foss-2023a",
            "CMake/3.26.3-GCCcore-12.3.0",
            "zlib/1.2.13-GCCcore-12.3.0",
            "foss/2023a",
            "GCC/12.3.0",
            "GCCcore/12.3.0",
            "binutils/2.40-GCCcore-12.3.0",
            "OpenMPI/4.1.5-GCC-12.3.0",
            "FlexiBLAS/3.3.1-GCC-12.3.0",
        ];
        expected.sort();
        let mut got = names.clone();
        got.sort();
        assert_eq!(got, expected);
        // Every dependency comes before what needs it.
        for (pos, &id) in order.iter().enumerate() {
            for d in g.node(id).deps() {
                let dpos = order.iter().position(|&x| x == d).unwrap();
                assert!(
                    dpos < pos,
                    "{} before {}",
                    g.node(d).module,
                    g.node(id).module
                );
            }
        }
        // To build App, CMake (build only) is loaded but CMake's own deps only through runtime edges.
        let env = modules(&g, &g.build_environment(&[n]));
        assert!(env.contains(&"CMake/3.26.3-GCCcore-12.3.0".to_string()));
        assert!(env.contains(&"GCCcore/12.3.0".to_string()));
    }

    #[test]
    fn missing_dependency_reports_the_chain() {
        let world = toolchain_world(&[
            (
                "b/B/B-1-GCC-12.3.0.eb",
                ec(
                    "B",
                    "1",
                    Some(("GCC", "12.3.0")),
                    "dependencies = [('Gone', '9')]",
                ),
            ),
            (
                "a/A/A-1-GCC-12.3.0.eb",
                ec(
                    "A",
                    "1",
                    Some(("GCC", "12.3.0")),
                    "dependencies = [('B', '1')]",
                ),
            ),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        let mut g = Graph::new(&robot);
        let err = g
            .add_target(world.find("A", "1-GCC-12.3.0").unwrap())
            .unwrap_err();
        assert_eq!(
            err,
            ResolveError::Missing {
                module: "Gone/9-GCC-12.3.0".into(),
                chain: vec!["A/1-GCC-12.3.0".into(), "B/1-GCC-12.3.0".into()]
            }
        );
        assert!(err
            .to_string()
            .starts_with("Missing dependencies: Gone/9-GCC-12.3.0"));
    }

    #[test]
    fn cycles_are_reported() {
        let world = toolchain_world(&[
            (
                "a/A/A-1.eb",
                ec("A", "1", None, "dependencies = [('B', '1')]"),
            ),
            (
                "b/B/B-1.eb",
                ec("B", "1", None, "dependencies = [('A', '1')]"),
            ),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        let mut g = Graph::new(&robot);
        let err = g.add_target(world.find("A", "1").unwrap()).unwrap_err();
        assert!(matches!(err, ResolveError::Cycle { .. }), "{err}");
        assert!(err.to_string().contains("A/1 -> B/1 -> A/1"), "{err}");
    }
}
