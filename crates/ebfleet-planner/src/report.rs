//! What `ebfleet resolve` and `ebfleet parse` report, in the shapes the
//! EasyBuild comparison reads (`tests/easybuild/compare.py`).

use crate::easyconfig::Dependency;
use crate::graph::Graph;
use crate::robot::Robot;
use crate::toolchain::Toolchain;
use crate::tree::EasyconfigTree;
use serde::Serialize;

/// One target's closure, like `eb --dry-run --robot`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TargetReport {
    Resolved {
        target: String,
        module: String,
        /// Easyconfig paths (relative to the tree) in build order, beside `closure`.
        #[serde(skip)]
        paths: Vec<String>,
        /// Module names in build order: dependencies first, the target last.
        closure: Vec<String>,
    },
    Failed {
        target: String,
        error: String,
    },
}

/// Resolve each target (a file name found in the tree, or a path in it).
pub fn resolve_targets(robot: &Robot<'_>, targets: &[String]) -> Vec<TargetReport> {
    let tree = robot.tree();
    let mut graph = Graph::new(robot);
    targets
        .iter()
        .map(|target| {
            let Some(id) = tree.find_target(target) else {
                let name = target.rsplit('/').next().unwrap_or(target);
                let hint = ebfleet_core::suggest::did_you_mean(name, tree.files().file_names());
                return TargetReport::Failed {
                    target: target.clone(),
                    error: format!(
                        "Can't find path {target}: no such easyconfig file in {}{hint}",
                        tree.root.display()
                    ),
                };
            };
            match graph.add_target(id) {
                Ok(n) => {
                    let order = graph.closure(n);
                    TargetReport::Resolved {
                        target: target.clone(),
                        module: graph.node(n).module.clone(),
                        paths: order
                            .iter()
                            .map(|&m| tree.entry(graph.node(m).ec).path.clone())
                            .collect(),
                        closure: order
                            .iter()
                            .map(|&m| graph.node(m).module.clone())
                            .collect(),
                    }
                }
                Err(e) => TargetReport::Failed {
                    target: target.clone(),
                    error: e.to_string(),
                },
            }
        })
        .collect()
}

/// One file as the robot sees it (the line of `ebfleet parse --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParsedReport {
    Parsed {
        path: String,
        name: String,
        version: String,
        versionsuffix: String,
        toolchain: Toolchain,
        module: String,
        builddependencies: Vec<String>,
        dependencies: Vec<String>,
    },
    Failed {
        path: String,
        error: String,
    },
}

/// Every file of the tree with its dependencies' module names, toolchains settled.
pub fn parse_reports(robot: &Robot<'_>) -> Vec<ParsedReport> {
    let tree: &EasyconfigTree = robot.tree();
    tree.load_all(&());
    (0..tree.len())
        .map(|id| {
            let entry = tree.entry(id);
            let fail = |error: String| ParsedReport::Failed {
                path: entry.path.clone(),
                error,
            };
            let ec = match &entry.easyconfig {
                Ok(ec) => ec,
                Err(e) => return fail(e.to_string()),
            };
            match robot.final_deps(id) {
                Ok(deps) => ParsedReport::Parsed {
                    path: entry.path.clone(),
                    name: ec.name.clone(),
                    version: ec.version.clone(),
                    versionsuffix: ec.versionsuffix.clone(),
                    toolchain: ec.toolchain.clone(),
                    module: ec.module_name(),
                    builddependencies: deps.build.iter().map(Dependency::module_name).collect(),
                    dependencies: deps.runtime.iter().map(Dependency::module_name).collect(),
                },
                Err(e) => fail(e),
            }
        })
        .collect()
}
