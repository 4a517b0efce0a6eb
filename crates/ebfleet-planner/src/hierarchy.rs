//! The toolchain hierarchy (`get_toolchain_hierarchy`): for a toolchain such
//! as `foss/2023a`, its subtoolchains from the most minimal up, e.g.
//! `GCCcore/12.3.0, GCC/12.3.0, gfbf/2023a, gompi/2023a, foss/2023a`.
//!
//! Names come from the subtoolchain table; versions from the toolchain's
//! easyconfig: its dependencies, their toolchains, and the dependencies of
//! those dependencies. The system toolchain is never part of it (EasyBuild
//! adds it only with `--add-system-to-minimal-toolchains`).

use crate::robot::{Hierarchy, Robot};
use crate::toolchain::{class_for, Toolchain};
use std::collections::HashSet;
use std::rc::Rc;

/// A name and a version seen near a toolchain: a candidate subtoolchain.
struct Candidate {
    name: String,
    version: String,
}

impl Robot<'_> {
    /// The hierarchy of `parent`, most minimal first, `parent` last; an error
    /// says why EasyBuild could not determine it (it then searches nothing).
    pub fn hierarchy(&self, parent: &Toolchain) -> Hierarchy {
        if let Some(h) = self.hierarchies.borrow().get(parent) {
            return h.clone();
        }
        // Guard against a cycle through the toolchain easyconfigs.
        let guard = Rc::new(Err(format!(
            "toolchain hierarchy of {parent} depends on itself"
        )));
        self.hierarchies.borrow_mut().insert(parent.clone(), guard);
        let h = Rc::new(self.compute_hierarchy(parent));
        self.hierarchies
            .borrow_mut()
            .insert(parent.clone(), h.clone());
        h
    }

    fn compute_hierarchy(&self, parent: &Toolchain) -> Result<Vec<Toolchain>, String> {
        let mut hierarchy = vec![parent.clone()];
        let mut queue = vec![parent.clone()];
        let mut visited: HashSet<String> = HashSet::new();
        while let Some(current) = queue.pop() {
            let Some(class) = class_for(&current.name, parent) else {
                return Err(format!("unknown toolchain {}", current.name));
            };
            let Some(subtoolchains) = class.subtoolchains else {
                continue;
            };
            let mut cands = self.candidates(&current)?;
            for entry in subtoolchains {
                // Composite subtoolchains may share the parent's version (gompi/2023a under foss/2023a).
                if let [name] = entry {
                    if class_for(name, parent).is_some_and(|c| c.composite)
                        && self.tree.find(name, &current.version).is_some()
                    {
                        cands.push(Candidate {
                            name: name.to_string(),
                            version: current.version.clone(),
                        });
                    }
                }
            }
            // EasyBuild keeps a candidate whose name equals, or is a substring of, a subtoolchain name.
            cands.retain(|c| {
                subtoolchains.iter().any(|entry| match entry {
                    [single] => c.name == *single || single.contains(c.name.as_str()),
                    alternatives => alternatives.contains(&c.name.as_str()),
                })
            });
            for entry in subtoolchains {
                let Some(version) = subtoolchain_version(&current, entry, &cands, parent)? else {
                    continue;
                };
                let name = if entry.len() > 1 {
                    // Narrow alternatives down to the first candidate with that version.
                    cands
                        .iter()
                        .find(|c| c.version == version)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| entry[0].to_string())
                } else {
                    entry[0].to_string()
                };
                if visited.insert(name.clone()) {
                    let tc = Toolchain::new(name, version);
                    hierarchy.insert(0, tc.clone());
                    queue.insert(0, tc);
                }
            }
        }
        Ok(hierarchy)
    }

    /// Names and versions around `current`: its easyconfig's dependencies and
    /// their toolchains, and the same one level further down.
    fn candidates(&self, current: &Toolchain) -> Result<Vec<Candidate>, String> {
        let id = self
            .tree
            .find(&current.name, &current.version)
            .ok_or_else(|| {
                format!(
                    "Could not find easyconfig for {} toolchain version {}",
                    current.name, current.version
                )
            })?;
        let deps = self.final_deps(id)?;
        let mut cands = Vec::new();
        for dep in deps.all().filter(|d| !d.external) {
            cands.push(Candidate {
                name: dep.name.clone(),
                version: format!("{}{}", dep.version, dep.versionsuffix),
            });
            cands.push(Candidate {
                name: dep.toolchain.name.clone(),
                version: dep.toolchain.version.clone(),
            });
            let dep_id = self
                .tree
                .find(&dep.name, &dep.full_version())
                .ok_or_else(|| {
                    format!(
                        "Could not find easyconfig for dependency {} with version {}",
                        dep.name,
                        dep.full_version()
                    )
                })?;
            for depdep in self.final_deps(dep_id)?.all().filter(|d| !d.external) {
                cands.push(Candidate {
                    name: depdep.name.clone(),
                    version: format!("{}{}", depdep.version, depdep.versionsuffix),
                });
                cands.push(Candidate {
                    name: depdep.toolchain.name.clone(),
                    version: depdep.toolchain.version.clone(),
                });
            }
        }
        Ok(cands)
    }
}

/// `det_subtoolchain_version`: the one version of a subtoolchain among the
/// candidates; `None` when it is optional or the system toolchain.
fn subtoolchain_version(
    current: &Toolchain,
    names: &[&str],
    cands: &[Candidate],
    parent: &Toolchain,
) -> Result<Option<String>, String> {
    let mut system = false;
    for name in names {
        if crate::toolchain::is_system_name(name) {
            system = true;
            continue;
        }
        let mut versions: Vec<&str> = cands
            .iter()
            .filter(|c| c.name == *name)
            .map(|c| c.version.as_str())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        match versions.as_slice() {
            [] => {}
            [one] => return Ok(Some(one.to_string())),
            many => {
                return Err(format!(
                    "Multiple versions of {name} found in dependencies of toolchain {}: {}",
                    current.name,
                    many.join(", ")
                ))
            }
        }
    }
    let all_optional = names
        .iter()
        .all(|n| class_for(n, parent).is_some_and(|c| c.optional));
    if !system && !all_optional {
        return Err(format!(
            "No version found for subtoolchain {} in dependencies of {}",
            names.join(" or "),
            current.name
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use crate::robot::tests::toolchain_world;
    use crate::robot::{Robot, RobotOptions};
    use crate::toolchain::Toolchain;

    fn names(h: &[Toolchain]) -> Vec<String> {
        h.iter().map(Toolchain::to_string).collect()
    }

    #[test]
    fn foss_hierarchy_matches_easybuild() {
        let world = toolchain_world(&[]);
        let robot = Robot::new(&world, RobotOptions::default());
        let h = robot.hierarchy(&Toolchain::new("foss", "2023a"));
        // EasyBuild 5.4.1 on the real foss-2023a: GCCcore, GCC, gfbf, gompi, foss.
        assert_eq!(
            names(h.as_ref().as_ref().unwrap()),
            [
                "GCCcore/12.3.0",
                "GCC/12.3.0",
                "gfbf/2023a",
                "gompi/2023a",
                "foss/2023a"
            ]
        );
        let h = robot.hierarchy(&Toolchain::new("GCC", "12.3.0"));
        assert_eq!(
            names(h.as_ref().as_ref().unwrap()),
            ["GCCcore/12.3.0", "GCC/12.3.0"]
        );
        let h = robot.hierarchy(&Toolchain::new("GCCcore", "12.3.0"));
        assert_eq!(names(h.as_ref().as_ref().unwrap()), ["GCCcore/12.3.0"]);
    }

    #[test]
    fn missing_toolchain_easyconfig_is_an_error() {
        let world = toolchain_world(&[]);
        let robot = Robot::new(&world, RobotOptions::default());
        let h = robot.hierarchy(&Toolchain::new("foss", "2099a"));
        assert!(h
            .as_ref()
            .as_ref()
            .unwrap_err()
            .contains("foss toolchain version 2099a"));
    }
}
