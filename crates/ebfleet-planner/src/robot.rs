//! The robot's view of one easyconfig's dependencies: which toolchain each
//! dependency without an explicit one is built with (`_finalize_dependencies`,
//! `robot_find_subtoolchain_for_dep`), and hidden dependencies swapped in
//! (`filter_hidden_deps`).
//!
//! By default the toolchain hierarchy is searched from the parent down and
//! the first toolchain with an easyconfig wins; with `--minimal-toolchains`
//! from the bottom up. Results are cached per easyconfig and per toolchain.

use crate::easyconfig::Dependency;
use crate::toolchain::Toolchain;
use crate::tree::{EasyconfigTree, EcId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// How dependencies without an explicit toolchain are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RobotOptions {
    /// EasyBuild's `--minimal-toolchains`: search the hierarchy bottom up.
    pub minimal_toolchains: bool,
}

/// An easyconfig's dependencies with every toolchain settled.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalDeps {
    pub build: Vec<Dependency>,
    pub runtime: Vec<Dependency>,
}

impl FinalDeps {
    /// Build then runtime dependencies, as EasyBuild's `dependencies()`.
    pub fn all(&self) -> impl Iterator<Item = &Dependency> {
        self.build.iter().chain(self.runtime.iter())
    }
}

/// A toolchain hierarchy, most minimal first, or why EasyBuild could not tell it.
pub type Hierarchy = Rc<Result<Vec<Toolchain>, String>>;

/// Finalises dependencies against one tree, caching what it learns.
pub struct Robot<'t> {
    pub(crate) tree: &'t EasyconfigTree,
    pub options: RobotOptions,
    finalized: RefCell<HashMap<EcId, Result<Rc<FinalDeps>, String>>>,
    pub(crate) hierarchies: RefCell<HashMap<Toolchain, Hierarchy>>,
}

impl<'t> Robot<'t> {
    pub fn new(tree: &'t EasyconfigTree, options: RobotOptions) -> Self {
        Robot {
            tree,
            options,
            finalized: RefCell::new(HashMap::new()),
            hierarchies: RefCell::new(HashMap::new()),
        }
    }

    pub fn tree(&self) -> &'t EasyconfigTree {
        self.tree
    }

    /// The dependencies of easyconfig `id` with toolchains resolved.
    pub fn final_deps(&self, id: EcId) -> Result<Rc<FinalDeps>, String> {
        if let Some(r) = self.finalized.borrow().get(&id) {
            return r.clone();
        }
        let r = self.finalize(id).map(Rc::new);
        self.finalized.borrow_mut().insert(id, r.clone());
        r
    }

    fn finalize(&self, id: EcId) -> Result<FinalDeps, String> {
        let entry = self.tree.entry(id);
        let ec = entry
            .easyconfig
            .as_ref()
            .map_err(|e| format!("{}: {e}", entry.path))?;
        let settle = |d: &Dependency| -> Result<Dependency, String> {
            let mut d = d.clone();
            if d.toolchain_inherited && !d.toolchain.is_system() {
                match self.subtoolchain_for(&d) {
                    Some(tc) => {
                        d.toolchain = tc;
                        d.toolchain_inherited = false;
                    }
                    None if self.options.minimal_toolchains => {
                        return Err(format!(
                            "Failed to determine minimal toolchain for dep {} {}{}",
                            d.name, d.version, d.versionsuffix
                        ))
                    }
                    None => {} // keep the parent's toolchain, as EasyBuild does
                }
            }
            Ok(d)
        };
        let mut build = ec
            .builddependencies
            .iter()
            .map(settle)
            .collect::<Result<Vec<_>, _>>()?;
        let mut runtime = ec
            .dependencies
            .iter()
            .map(settle)
            .collect::<Result<Vec<_>, _>>()?;
        for hidden in &ec.hiddendependencies {
            let hidden = settle(hidden)?;
            let (visible_name, hidden_name) = {
                let mut v = hidden.clone();
                v.hidden = false;
                (v.module_name(), {
                    v.hidden = true;
                    v.module_name()
                })
            };
            let mut replaced = false;
            for d in build.iter_mut().chain(runtime.iter_mut()) {
                let m = d.module_name();
                if m == visible_name || m == hidden_name {
                    *d = hidden.clone();
                    replaced = true;
                }
            }
            if !replaced {
                return Err(format!("Hidden deps with visible module names {visible_name} not in list of (build)dependencies"));
            }
        }
        Ok(FinalDeps { build, runtime })
    }

    /// `robot_find_subtoolchain_for_dep`: the toolchain of the hierarchy of
    /// `dep.toolchain` (parent first, or bottom up) with an easyconfig for it.
    pub fn subtoolchain_for(&self, dep: &Dependency) -> Option<Toolchain> {
        let hierarchy = self.hierarchy(&dep.toolchain);
        let Ok(levels) = hierarchy.as_ref() else {
            return None;
        };
        let mut probe = dep.clone();
        let mut try_tc = |tc: &Toolchain| {
            probe.toolchain = tc.clone();
            self.tree
                .find(&probe.name, &probe.full_version())
                .map(|_| tc.clone())
        };
        if self.options.minimal_toolchains {
            levels.iter().find_map(&mut try_tc)
        } else {
            levels.iter().rev().find_map(&mut try_tc)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tree::tests::{ec, tree};
    use ebfleet_core::arch::Arch;

    /// A small 2023a-like world: GCCcore < GCC < {gompi, gfbf} < foss.
    pub fn toolchain_world(extra: &[(&str, String)]) -> EasyconfigTree {
        let mut files: Vec<(String, String)> = vec![
            ("g/GCCcore/GCCcore-12.3.0.eb".into(), ec("GCCcore", "12.3.0", None, "")),
            (
                "g/GCC/GCC-12.3.0.eb".into(),
                ec("GCC", "12.3.0", None, "dependencies = [('GCCcore', '12.3.0'), ('binutils', '2.40', '', ('GCCcore', '12.3.0'))]"),
            ),
            ("b/binutils/binutils-2.40-GCCcore-12.3.0.eb".into(), ec("binutils", "2.40", Some(("GCCcore", "12.3.0")), "")),
            ("o/OpenMPI/OpenMPI-4.1.5-GCC-12.3.0.eb".into(), ec("OpenMPI", "4.1.5", Some(("GCC", "12.3.0")), "dependencies = [('zlib', '1.2.13')]")),
            ("z/zlib/zlib-1.2.13-GCCcore-12.3.0.eb".into(), ec("zlib", "1.2.13", Some(("GCCcore", "12.3.0")), "")),
            ("f/FlexiBLAS/FlexiBLAS-3.3.1-GCC-12.3.0.eb".into(), ec("FlexiBLAS", "3.3.1", Some(("GCC", "12.3.0")), "")),
            (
                "g/gompi/gompi-2023a.eb".into(),
                ec("gompi", "2023a", None, "dependencies = [('GCC', '12.3.0'), ('OpenMPI', '4.1.5', '', ('GCC', '12.3.0'))]"),
            ),
            (
                "g/gfbf/gfbf-2023a.eb".into(),
                ec("gfbf", "2023a", None, "dependencies = [('GCC', '12.3.0'), ('FlexiBLAS', '3.3.1', '', ('GCC', '12.3.0'))]"),
            ),
            (
                "f/foss/foss-2023a.eb".into(),
                ec(
                    "foss",
                    "2023a",
                    None,
                    "dependencies = [('GCC', '12.3.0'), ('OpenMPI', '4.1.5', '', ('GCC', '12.3.0')), ('FlexiBLAS', '3.3.1', '', ('GCC', '12.3.0'))]",
                ),
            ),
        ];
        files.extend(extra.iter().map(|(p, t)| (p.to_string(), t.clone())));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        tree(Arch::X86_64, &refs)
    }

    fn dep_modules(robot: &Robot, name: &str) -> Vec<String> {
        let (id, _) = robot.tree().parsed().find(|(_, e)| e.name == name).unwrap();
        robot
            .final_deps(id)
            .unwrap()
            .all()
            .map(Dependency::module_name)
            .collect()
    }

    #[test]
    fn parent_first_and_minimal_toolchains() {
        let world = toolchain_world(&[
            // HDF5 exists at gompi only; Python at GCCcore; SciPy at gfbf; zlib at GCCcore.
            ("h/HDF5/HDF5-1.14.0-gompi-2023a.eb", ec("HDF5", "1.14.0", Some(("gompi", "2023a")), "")),
            ("p/Python/Python-3.11.3-GCCcore-12.3.0.eb", ec("Python", "3.11.3", Some(("GCCcore", "12.3.0")), "")),
            // Both at GCC and GCCcore: parent first takes GCC, minimal takes GCCcore.
            ("x/XZ/XZ-5.4.2-GCCcore-12.3.0.eb", ec("XZ", "5.4.2", Some(("GCCcore", "12.3.0")), "")),
            ("x/XZ/XZ-5.4.2-GCC-12.3.0.eb", ec("XZ", "5.4.2", Some(("GCC", "12.3.0")), "")),
            (
                "a/App/App-1-foss-2023a.eb",
                ec(
                    "App",
                    "1",
                    Some(("foss", "2023a")),
                    "builddependencies = [('XZ', '5.4.2')]\ndependencies = [('HDF5', '1.14.0'), ('Python', '3.11.3'), ('Missing', '1')]",
                ),
            ),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        assert_eq!(
            dep_modules(&robot, "App"),
            [
                "XZ/5.4.2-GCC-12.3.0",
                "HDF5/1.14.0-gompi-2023a",
                "Python/3.11.3-GCCcore-12.3.0",
                // No easyconfig anywhere: the parent's toolchain is kept.
                "Missing/1-foss-2023a",
            ]
        );
        let minimal = Robot::new(
            &world,
            RobotOptions {
                minimal_toolchains: true,
            },
        );
        let (id, _) = world.parsed().find(|(_, e)| e.name == "App").unwrap();
        let err = minimal.final_deps(id).unwrap_err();
        assert!(err.contains("Missing"), "{err}");
    }

    #[test]
    fn minimal_toolchains_prefers_the_bottom() {
        let world = toolchain_world(&[
            (
                "x/XZ/XZ-5.4.2-GCCcore-12.3.0.eb",
                ec("XZ", "5.4.2", Some(("GCCcore", "12.3.0")), ""),
            ),
            (
                "x/XZ/XZ-5.4.2-GCC-12.3.0.eb",
                ec("XZ", "5.4.2", Some(("GCC", "12.3.0")), ""),
            ),
            (
                "a/App/App-1-foss-2023a.eb",
                ec(
                    "App",
                    "1",
                    Some(("foss", "2023a")),
                    "dependencies = [('XZ', '5.4.2')]",
                ),
            ),
        ]);
        let minimal = Robot::new(
            &world,
            RobotOptions {
                minimal_toolchains: true,
            },
        );
        assert_eq!(dep_modules(&minimal, "App"), ["XZ/5.4.2-GCCcore-12.3.0"]);
    }

    #[test]
    fn hidden_dependencies_replace_visible_ones() {
        let world = toolchain_world(&[(
            "a/App/App-1-GCC-12.3.0.eb",
            ec(
                "App",
                "1",
                Some(("GCC", "12.3.0")),
                "dependencies = [('zlib', '1.2.13')]\nhiddendependencies = [('zlib', '1.2.13')]",
            ),
        )]);
        let robot = Robot::new(&world, RobotOptions::default());
        assert_eq!(dep_modules(&robot, "App"), ["zlib/.1.2.13-GCCcore-12.3.0"]);
    }
}
