//! A plan turned into the wire types of `ebfleet-core`: a platform's build
//! graph (what the pipeline schedules), the batch file a build node reads
//! for a batch plan, and the plan Lambda's state output. Every module name,
//! easyconfig path and checksum is validated on the way: a plan holding an
//! invalid one is an error, never a key.

use crate::plan::{build_environment, ModuleTable, PlatformPlan};
use crate::planner::Plan;
use ebfleet_core::build_graph::{graph_key, BuildGraph, GraphModule};
use ebfleet_core::layout::{easyconfig_key, module_file_key, plan_key, tarball_key};
use ebfleet_core::names::{EasyconfigPath, ExecutionName, KeyError, ModuleName, PlatformName};
use ebfleet_core::platform::Platform;
use ebfleet_core::unit::child_prefix;
use ebfleet_core::wire::{BatchBuild, BatchFile, BatchNeed, PlanOutput, PlatformOutput};

/// The batch file of batch `batch` of a platform's plan.
pub fn batch_file(
    plan: &PlatformPlan,
    table: &ModuleTable,
    platform: &Platform,
    execution: &ExecutionName,
    batch: usize,
) -> Result<BatchFile, KeyError> {
    if plan.platform != platform.name {
        return Err(KeyError::PlatformMismatch {
            plan: plan.platform.clone(),
            platform: platform.name.clone(),
        });
    }
    if platform.base.is_some() {
        // Its needs are partly its base's: only its graph says which.
        return Err(KeyError::Inconsistent {
            what: format!("platform {}", platform.name),
            found: "a CUDA overlay".into(),
            expected: "a platform planned in batches (overlays are planned as graphs)".into(),
        });
    }
    let platform_name = PlatformName::of(platform)?;
    let b = plan
        .batches
        .iter()
        .find(|b| b.index == batch)
        .ok_or_else(|| KeyError::NoBatch {
            platform: plan.platform.clone(),
            batch,
        })?;
    let builds = b
        .modules
        .iter()
        .map(|m| {
            let module: ModuleName = m.parse()?;
            let pm = table.get(m).ok_or_else(|| KeyError::NotInTable {
                module: m.clone(),
                batch,
            })?;
            let easyconfig: EasyconfigPath = pm.easyconfig.parse()?;
            Ok(BatchBuild {
                module,
                easyconfig_key: easyconfig_key(&easyconfig),
                easyconfig,
                easyconfig_sha256: pm.easyconfig_sha256.clone(),
                memory_per_job_mib: None,
                optarch: None,
            })
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    let environment = build_environment(table, &b.modules)
        .map_err(|module| KeyError::NotInTable { module, batch })?;
    let needs = environment
        .into_iter()
        .map(|m| {
            let module: ModuleName = m.parse()?;
            Ok(BatchNeed {
                tarball_key: tarball_key(&platform_name, &module),
                module_file_key: module_file_key(&platform_name, &module),
                tarball_sha256: None,
                module,
                from_base: false,
            })
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    let file = BatchFile {
        execution: execution.clone(),
        platform: platform_name,
        arch: platform.arch(),
        archspec: platform.cpu.archspec.clone(),
        optarch: platform.cpu.optarch.clone(),
        cuda_compute_capability: platform
            .gpu
            .as_ref()
            .and_then(|g| g.cuda_compute_capability.clone()),
        base: None,
        batch,
        builds,
        needs,
        after: b.after.clone(),
        jobs_halved: 0,
        node: None,
        signing_key: None,
    };
    file.validate()?;
    Ok(file)
}

/// [`batch_file`] from a whole plan: the platform's plan and its
/// architecture's module table.
pub fn batch_file_of_plan(
    plan: &Plan,
    platform: &Platform,
    execution: &ExecutionName,
    batch: usize,
) -> Result<BatchFile, KeyError> {
    let pp = plan
        .platforms
        .iter()
        .find(|p| p.platform == platform.name)
        .ok_or_else(|| KeyError::NoPlatform(platform.name.clone()))?;
    let table = plan
        .modules
        .get(&platform.arch())
        .ok_or(KeyError::NoModuleTable(platform.arch()))?;
    batch_file(pp, table, platform, execution, batch)
}

/// The plan Lambda's output for a plan; `platforms` must hold every
/// platform of the plan (for its families). Its size grows with the number
/// of platforms only: each platform's units are in its graph file.
pub fn plan_output(
    plan: &Plan,
    platforms: &[&Platform],
    execution: &ExecutionName,
) -> Result<PlanOutput, KeyError> {
    let outputs = plan
        .platforms
        .iter()
        .map(|pp| {
            let platform = platforms
                .iter()
                .find(|p| p.name == pp.platform)
                .ok_or_else(|| KeyError::NoPlatform(pp.platform.clone()))?;
            let name: PlatformName = pp.platform.parse()?;
            let output = PlatformOutput {
                graph_key: graph_key(execution, &name),
                name_prefix: child_prefix(execution, &name),
                platform: name,
                arch: pp.arch,
                families: platform.families.clone(),
                to_build: pp.to_build(),
                held: 0,
                already_built: pp.already_built,
                unresolvable: pp.unresolvable.len(),
                overlays: Vec::new(),
            };
            Ok((output, platform.base.clone()))
        })
        .collect::<Result<Vec<(PlatformOutput, Option<String>)>, KeyError>>()?;
    // Each overlay goes with its base, which is built before it.
    let mut out = PlanOutput {
        execution: execution.clone(),
        plan_key: plan_key(execution),
        nothing_to_do: false,
        platforms: Vec::new(),
    };
    let (overlays, bases): (Vec<_>, Vec<_>) =
        outputs.into_iter().partition(|(_, base)| base.is_some());
    out.platforms = bases.into_iter().map(|(p, _)| p).collect();
    for (overlay, base) in overlays {
        let base = base.unwrap_or_default();
        out.platforms
            .iter_mut()
            .find(|p| p.platform.as_str() == base)
            .ok_or(KeyError::NoPlatform(base))?
            .overlays
            .push(overlay);
    }
    out.count_what_to_do();
    Ok(out)
}

/// The build graph of a platform planned with [`PlanOptions::graph`]
/// (crate::plan::PlanOptions), each module estimated by `estimate_s`,
/// validated as a node would read it.
pub fn build_graph(
    plan: &PlatformPlan,
    platform: &Platform,
    execution: &ExecutionName,
    estimate_s: impl Fn(&str) -> u64,
) -> Result<BuildGraph, KeyError> {
    if plan.platform != platform.name {
        return Err(KeyError::PlatformMismatch {
            plan: plan.platform.clone(),
            platform: platform.name.clone(),
        });
    }
    let modules = plan
        .graph
        .iter()
        .map(|g| {
            Ok(GraphModule {
                module: g.module.parse()?,
                easyconfig: g.easyconfig.parse()?,
                easyconfig_sha256: g.easyconfig_sha256.clone(),
                build_deps: g.build_deps.clone(),
                runtime_deps: g.runtime_deps.clone(),
                built: g.built,
                estimate_s: if g.built { 0 } else { estimate_s(&g.module) },
                held: None,
                profile: None,
                optarch: plan
                    .optarch
                    .get(&g.module)
                    .filter(|o| **o != platform.cpu.optarch)
                    .cloned(),
                tarball_sha256: None,
                from_base: g.from_base,
            })
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    let graph = BuildGraph {
        execution: execution.clone(),
        platform: PlatformName::of(platform)?,
        arch: platform.arch(),
        archspec: platform.cpu.archspec.clone(),
        optarch: platform.cpu.optarch.clone(),
        cuda_compute_capability: platform
            .gpu
            .as_ref()
            .and_then(|g| g.cuda_compute_capability.clone()),
        base: platform.base.as_deref().map(str::parse).transpose()?,
        modules,
    };
    graph.validate()?;
    Ok(graph)
}

#[cfg(test)]
mod tests;
