//! A platform's build graph, the file the Plan Lambda writes per platform
//! (`plans/<execution>/<platform>/graph.json`, [`graph_key`]) and the
//! scheduler reads: every module the platform's builds touch — the ones to
//! build (its *units*) and the ones already built that they load — with
//! their direct build and runtime dependencies, dependencies first.
//!
//! One module is one unit of dispatch; its index in [`BuildGraph::modules`]
//! is its unit number. When the scheduler dispatches a unit it writes the
//! unit's batch file ([`BuildGraph::unit_file`]): the one module to build
//! and its build environment (its direct dependencies and, through runtime
//! edges, what those load), which is what the node downloads. The needs are
//! computed from the graph when the unit is dispatched rather than stored
//! per unit: 7,000 units of a platform each listing ~60 needs would be
//! tens of megabytes per platform; the graph is ~1.5 MB.

use crate::arch::Arch;
use crate::layout::{easyconfig_key, module_file_key, tarball_key, GRAPH_FILE};
use crate::names::{EasyconfigPath, ExecutionName, KeyError, ModuleName, PlatformName};
use crate::wire::{BatchBuild, BatchFile, BatchNeed};
use serde::{Deserialize, Serialize};

/// One module of a platform's build graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphModule {
    pub module: ModuleName,
    /// Path relative to the easyconfigs tree.
    pub easyconfig: EasyconfigPath,
    pub easyconfig_sha256: String,
    /// Direct build dependencies, by index (all before this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_deps: Vec<u32>,
    /// Direct runtime dependencies and the toolchain, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_deps: Vec<u32>,
    /// Already built on the platform from this easyconfig: a need of the
    /// units, never a unit itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub built: bool,
    /// Estimated build time in seconds (recorded or modelled).
    #[serde(default)]
    pub estimate_s: u64,
    /// Failed before from the same inputs and not built again in this run
    /// ([`crate::failure_memory`]): why. A unit still, recorded failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// A unit's last recorded build (its own, else another version's), to
    /// size its node and jobs ([`crate::sizing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::sizing::BuildProfile>,
    /// Its `--optarch` when not the graph's: its GCC is older than the
    /// graph's optarch needs ([`crate::platform::Cpu::optarch_for_gcc`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optarch: Option<String>,
    /// A built module's tarball sha256, from its record: what its
    /// dependents' nodes accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball_sha256: Option<String>,
    /// A need of an overlay that its base platform builds (`built` too):
    /// taken from the base's prefix, never built here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_base: bool,
}

impl GraphModule {
    /// Direct dependencies of both kinds.
    pub fn deps(&self) -> impl Iterator<Item = u32> + '_ {
        self.build_deps
            .iter()
            .chain(self.runtime_deps.iter())
            .copied()
    }
}

/// What one platform builds in one execution, as a graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildGraph {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub arch: Arch,
    pub archspec: String,
    pub optarch: String,
    /// Set on CUDA platforms, e.g. `9.0`.
    pub cuda_compute_capability: Option<String>,
    /// A CUDA overlay's base platform, whose stack its `from_base` modules
    /// are ([`crate::platform::Platform::base`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<PlatformName>,
    /// Dependencies before dependents.
    pub modules: Vec<GraphModule>,
}

/// `plans/<execution>/<platform>/graph.json`.
pub fn graph_key(execution: &ExecutionName, platform: &PlatformName) -> String {
    format!(
        "{}{GRAPH_FILE}",
        crate::layout::batch_prefix(execution, platform)
    )
}

impl BuildGraph {
    /// Where this graph is stored.
    pub fn key(&self) -> String {
        graph_key(&self.execution, &self.platform)
    }

    /// Read a graph and [`validate`](Self::validate) it.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        let g: BuildGraph =
            serde_json::from_str(text).map_err(|e| KeyError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// Every dependency points to an earlier module, and every unit file
    /// the graph can make is valid (names, checksums, keys).
    pub fn validate(&self) -> Result<(), KeyError> {
        for (i, m) in self.modules.iter().enumerate() {
            if m.from_base && (!m.built || self.base.is_none()) {
                return Err(KeyError::Inconsistent {
                    what: format!("module {}", m.module),
                    found: "from the base platform".into(),
                    expected: "a built need of a graph with a base platform".into(),
                });
            }
            if let Some(d) = m.deps().find(|&d| d as usize >= i) {
                return Err(KeyError::BatchOrder {
                    platform: self.platform.to_string(),
                    batch: i,
                    reason: format!(
                        "{} depends on module {d}, which does not come before it",
                        m.module
                    ),
                });
            }
        }
        // The settings and every build's checksum and keys, as a node checks
        // them; one unit file per module would be quadratic, so check the
        // modules through one file that builds them all.
        let all = BatchFile {
            builds: self.modules.iter().map(build_of).collect(),
            needs: Vec::new(),
            after: Vec::new(),
            ..self.batch_header(self.modules.len())
        };
        all.validate()
    }

    /// The units: modules to build, by index, dependencies first.
    pub fn units(&self) -> impl Iterator<Item = u32> + '_ {
        self.modules
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.built)
            .map(|(i, _)| i as u32)
    }

    /// Per module, the held unit that keeps it from being built, itself or
    /// one it needs (directly or not); `None` for the rest.
    pub fn blocked_by_held(&self) -> Vec<Option<u32>> {
        let mut by: Vec<Option<u32>> = vec![None; self.modules.len()];
        for (i, m) in self.modules.iter().enumerate() {
            by[i] = if m.held.is_some() {
                Some(i as u32)
            } else {
                m.deps().find_map(|d| by[d as usize])
            };
        }
        by
    }

    /// How many units are held, or need a held one: not built this run.
    pub fn blocked_units(&self) -> usize {
        self.blocked_by_held()
            .iter()
            .zip(&self.modules)
            .filter(|(b, m)| b.is_some() && !m.built)
            .count()
    }

    /// Everything module `unit` needs loaded to build: its direct
    /// dependencies and, through runtime edges, what those load in turn
    /// (EasyBuild's build environment). Sorted.
    pub fn build_environment(&self, unit: u32) -> Vec<u32> {
        let mut seen = vec![false; self.modules.len()];
        let mut out = Vec::new();
        let mut stack: Vec<u32> = self.modules[unit as usize].deps().collect();
        while let Some(d) = stack.pop() {
            if std::mem::replace(&mut seen[d as usize], true) {
                continue;
            }
            out.push(d);
            stack.extend(self.modules[d as usize].runtime_deps.iter().copied());
        }
        out.sort_unstable();
        out
    }

    /// The batch file of unit `unit`: it builds that one module, needs its
    /// build environment, and comes after the units among those needs.
    pub fn unit_file(&self, unit: u32) -> Result<BatchFile, KeyError> {
        self.unit_file_with(unit, &std::collections::BTreeMap::new())
    }

    /// [`Self::unit_file`], each need built in this run taking its
    /// tarball's sha256 from `built_in_run` (unit → sha256, as Record
    /// recorded it).
    pub fn unit_file_with(
        &self,
        unit: u32,
        built_in_run: &std::collections::BTreeMap<u32, String>,
    ) -> Result<BatchFile, KeyError> {
        let m = self
            .modules
            .get(unit as usize)
            .ok_or_else(|| KeyError::NoBatch {
                platform: self.platform.to_string(),
                batch: unit as usize,
            })?;
        let env = self.build_environment(unit);
        let file = BatchFile {
            builds: vec![build_of(m)],
            needs: env
                .iter()
                .map(|&d| {
                    let need = &self.modules[d as usize];
                    let owner = match &self.base {
                        Some(base) if need.from_base => base,
                        _ => &self.platform,
                    };
                    BatchNeed {
                        tarball_key: tarball_key(owner, &need.module),
                        module_file_key: module_file_key(owner, &need.module),
                        tarball_sha256: need
                            .tarball_sha256
                            .clone()
                            .or_else(|| built_in_run.get(&d).cloned()),
                        module: need.module.clone(),
                        from_base: need.from_base,
                    }
                })
                .collect(),
            after: env
                .iter()
                .filter(|&&d| !self.modules[d as usize].built)
                .map(|&d| d as usize)
                .collect(),
            ..self.batch_header(unit as usize)
        };
        file.validate()?;
        Ok(file)
    }

    /// Lay a CUDA overlay's graph over what its base has built by now
    /// (`base`, the base's records): each need from the base takes the
    /// sha256 its base record holds, so nodes accept only that tarball; a
    /// unit that needs one the base has not built from the same easyconfig
    /// is held, and returned with why (its dependents are skipped as
    /// blocked by it). A graph with no base is left as it is.
    pub fn layer_over(&mut self, base: &crate::built::Recorded) -> Vec<(u32, String)> {
        let Some(base_name) = self.base.clone() else {
            return Vec::new();
        };
        let mut missing = vec![false; self.modules.len()];
        for (i, m) in self.modules.iter_mut().enumerate() {
            if !m.from_base {
                continue;
            }
            let built = match base.built.get(m.module.as_str()) {
                Some(Some(sha)) => *sha == m.easyconfig_sha256,
                Some(None) => true,
                None => false,
            };
            match base.tarballs.get(m.module.as_str()).filter(|_| built) {
                Some(sha) => m.tarball_sha256 = Some(sha.clone()),
                None => missing[i] = true,
            }
        }
        let held: Vec<(u32, String)> = self
            .units()
            .filter(|&u| self.modules[u as usize].held.is_none())
            .filter_map(|u| {
                let need = self
                    .build_environment(u)
                    .into_iter()
                    .find(|&d| missing[d as usize])?;
                Some((
                    u,
                    format!(
                        "it needs {} from its base platform {base_name}, which has not built it",
                        self.modules[need as usize].module
                    ),
                ))
            })
            .collect();
        for (u, why) in &held {
            self.modules[*u as usize].held = Some(why.clone());
        }
        held
    }

    /// A batch file of this graph's platform with nothing in it yet.
    fn batch_header(&self, batch: usize) -> BatchFile {
        BatchFile {
            execution: self.execution.clone(),
            platform: self.platform.clone(),
            arch: self.arch,
            archspec: self.archspec.clone(),
            optarch: self.optarch.clone(),
            cuda_compute_capability: self.cuda_compute_capability.clone(),
            base: self.base.clone(),
            batch,
            builds: Vec::new(),
            needs: Vec::new(),
            after: Vec::new(),
            jobs_halved: 0,
            node: None,
            signing_key: None,
        }
    }
}

fn build_of(m: &GraphModule) -> BatchBuild {
    BatchBuild {
        module: m.module.clone(),
        easyconfig_key: easyconfig_key(&m.easyconfig),
        easyconfig: m.easyconfig.clone(),
        easyconfig_sha256: m.easyconfig_sha256.clone(),
        memory_per_job_mib: m.profile.map(|p| p.memory_per_job_mib()),
        optarch: m.optarch.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
