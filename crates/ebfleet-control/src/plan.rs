//! Plan: read the easyconfigs from the bucket (the packed index, and only
//! the objects that changed since it was written), what each platform has
//! built from DynamoDB, run the planner, write the plan and each
//! platform's build graph to `plans/<execution>/` (and the index, when it
//! changed), and return only keys and counts.

use crate::env::{self, var, Lookup};
use crate::Env;
use ebfleet_aws::dynamodb::DynamoError;
use ebfleet_aws::s3::{S3Error, Store};
use ebfleet_core::build_graph::BuildGraph;
use ebfleet_core::built::{Built, Recorded, SameSoftware};
use ebfleet_core::failure_memory;
use ebfleet_core::layout::{EASYCONFIGS_PREFIX, EASYCONFIG_INDEX_KEY};
use ebfleet_core::names::{ExecutionName, KeyError, PlatformName};
use ebfleet_core::platform::{Platform, PlatformError, Platforms};
use ebfleet_core::trigger::{ExecutionInput, Mode};
use ebfleet_planner::index::{EasyconfigIndex, IndexedTree};
use ebfleet_planner::plan::PlanOptions;
use ebfleet_planner::planner::{self, Plan, PlanError, PlanRequest, Targets};
use ebfleet_planner::policy::Policy;
use ebfleet_planner::robot::RobotOptions;
use ebfleet_planner::tree::{EasyconfigFiles, MAX_EASYCONFIG_BYTES};
use ebfleet_planner::wire::{build_graph, plan_output};
use ebfleet_scheduler::DurationModel;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// `{execution, platforms?, changed_keys?, mode}`.
pub type Input = ExecutionInput;
/// Per platform, keys and counts only.
pub type Output = ebfleet_core::wire::PlanOutput;

/// S3 requests in flight at once.
const CONCURRENCY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the platforms: {0}")]
    Platforms(#[from] PlatformError),
    #[error("listing the easyconfigs: {0}")]
    List(#[source] S3Error),
    #[error("downloading an easyconfig: {0}")]
    Download(#[source] S3Error),
    #[error("reading what platform {platform} has built: {source}")]
    Built {
        platform: String,
        #[source]
        source: Box<DynamoError>,
    },
    #[error("planning: {0}")]
    Plan(#[from] PlanError),
    #[error("the plan does not make valid keys: {0}")]
    Keys(#[from] KeyError),
    #[error("writing the plan: {0}")]
    Write(#[source] S3Error),
    #[error("a download or upload task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Index(#[from] ebfleet_planner::index::MissingDownload),
    #[error("the run's options: {0}")]
    Options(String),
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Platforms(_) | Error::Keys(_) | Error::Options(_) => Kind::Invalid,
            Error::List(e) | Error::Download(e) | Error::Write(e) => e.kind(),
            Error::Built { source, .. } => Kind::retry_or(source.is_retryable(), Kind::Failed),
            Error::Plan(_) | Error::Task(_) | Error::Index(_) => Kind::Failed,
        }
    }
}

/// What the plan Lambda needs from the stack.
#[derive(Debug, Clone)]
pub struct Settings {
    pub platforms: Platforms,
    /// [`Policy::default`], with the toolchains of [`var::TOOLCHAINS`].
    pub policy: Policy,
    /// The plan as graphs.
    pub options: PlanOptions,
    /// Build times before any are recorded.
    pub durations: DurationModel,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, Error> {
        Ok(Settings {
            platforms: env::platforms(&lookup)?,
            policy: policy_from(&lookup(var::TOOLCHAINS).unwrap_or_default()),
            options: PlanOptions {
                graph: true,
                ..PlanOptions::default()
            },
            durations: DurationModel::shipped(),
        })
    }
}

pub async fn handle(env: &Env, settings: &Settings, input: Input) -> Result<Output, Error> {
    let selected = select_platforms(&settings.platforms, &input)?;
    // What is built goes to the planner; the rest (durations, failures)
    // to the graphs.
    let mut built = HashMap::new();
    let mut records = HashMap::new();
    for p in &selected {
        let name = PlatformName::of(p)?;
        let mut recorded = env
            .records
            .recorded(&name)
            .await
            .map_err(|source| Error::Built {
                platform: p.name.clone(),
                source: Box::new(source),
            })?;
        built.insert(p.name.clone(), std::mem::take(&mut recorded.built));
        records.insert(p.name.clone(), recorded);
    }
    // The easyconfigs are dropped once planned: the handler's peak memory
    // is the plan plus what is being written, not the sources too.
    let mut plan = {
        let tree = load_easyconfigs(&env.store).await?;
        let plan = plan_input(&tree.files, &selected, &input, settings, built)?;
        save_index(&env.store, &tree).await;
        plan
    };
    let execution = input.execution();
    // The output counts the graphs' units: before they are taken out.
    let mut output = plan_output(&plan, &selected, execution)?;
    let mut graphs = build_graphs(
        &mut plan,
        &selected,
        execution,
        &records,
        &settings.durations,
    )?;
    if !input.retry_failed() {
        hold_failures(&mut graphs, &records, &mut output);
    }
    tracing::info!(
        %execution,
        easyconfigs = plan.easyconfigs,
        units = graphs.iter().map(|g| g.units().count()).sum::<usize>(),
        "planned"
    );
    put_graphs(&env.store, graphs).await?;
    env.store
        .put_json(&output.plan_key, &plan)
        .await
        .map_err(Error::Write)?;
    Ok(output)
}

/// Each platform's build graph, taken out of `plan` (the plan file keeps
/// the counts, targets and problems). A module's estimate is the duration
/// its platform recorded for it, else for another version of the same
/// software (the longest), else `model`'s; its profile (what its build
/// used, for sizing) comes from the same record, when the node measured it.
pub fn build_graphs(
    plan: &mut Plan,
    platforms: &[&Platform],
    execution: &ExecutionName,
    records: &HashMap<String, Recorded>,
    model: &DurationModel,
) -> Result<Vec<BuildGraph>, Error> {
    plan.platforms
        .iter_mut()
        .map(|pp| {
            let platform = platforms
                .iter()
                .find(|p| p.name == pp.platform)
                .ok_or_else(|| KeyError::NoPlatform(pp.platform.clone()))?;
            let empty = Recorded::default();
            let recorded = records.get(&pp.platform).unwrap_or(&empty);
            let profile = SameSoftware::new(&recorded.profiles, |p| p.duration_s);
            let estimate = model.with_recorded(&recorded.durations);
            // An overlay's needs from its base carry the base's records.
            let base = platform.base.as_ref().and_then(|b| records.get(b));
            let mut graph = build_graph(pp, platform, execution, estimate)?;
            for m in &mut graph.modules {
                if m.from_base {
                    m.tarball_sha256 =
                        base.and_then(|b| b.tarballs.get(m.module.as_str()).cloned());
                } else if m.built {
                    m.tarball_sha256 = recorded.tarballs.get(m.module.as_str()).cloned();
                } else {
                    m.profile = profile.get(m.module.as_str()).copied();
                }
            }
            pp.graph = Vec::new();
            Ok(graph)
        })
        .collect()
}

/// Failure memory: in each graph, hold the units that failed before from
/// the same inputs, and count them (and what needs them) out of `output`.
pub fn hold_failures(
    graphs: &mut [BuildGraph],
    records: &HashMap<String, Recorded>,
    output: &mut Output,
) {
    let eb = ebfleet_core::userdata::easybuild_version();
    for g in graphs {
        let Some(recorded) = records.get(g.platform.as_str()) else {
            continue;
        };
        // An overlay's needs from its base changed when the base rebuilt them.
        let base = g.base.as_ref().and_then(|b| records.get(b.as_str()));
        let with_base;
        let recorded = match base {
            Some(base) => {
                let mut r = recorded.clone();
                for m in g.modules.iter().filter(|m| m.from_base) {
                    if let Some(&at) = base.built_at.get(m.module.as_str()) {
                        r.built_at.insert(m.module.to_string(), at);
                    }
                }
                with_base = r;
                &with_base
            }
            None => recorded,
        };
        let held = failure_memory::hold_failures(g, recorded, eb);
        if held > 0 {
            tracing::info!(platform = %g.platform, held, "failed before from the same inputs: held");
            output.hold(g);
        }
    }
}

/// Write the graphs, a few at a time.
async fn put_graphs(store: &Store, graphs: Vec<BuildGraph>) -> Result<(), Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for g in graphs {
        let store = store.clone();
        tasks.spawn(async move { store.put_json(&g.key(), &g).await });
        if tasks.len() >= 8 {
            if let Some(r) = tasks.join_next().await {
                r.map_err(|e| Error::Task(e.to_string()))?
                    .map_err(Error::Write)?;
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| Error::Task(e.to_string()))?
            .map_err(Error::Write)?;
    }
    Ok(())
}

/// The input's platforms, or all of them.
pub fn select_platforms<'a>(
    all: &'a Platforms,
    input: &Input,
) -> Result<Vec<&'a Platform>, PlatformError> {
    let queries: Vec<String> = input
        .platforms()
        .unwrap_or_default()
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    all.select(&queries)
}

/// [`Policy::default`] with `toolchains` (comma-separated names) when it
/// names any.
pub fn policy_from(toolchains: &str) -> Policy {
    let toolchains: Vec<String> = toolchains
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let mut policy = Policy::default();
    if !toolchains.is_empty() {
        policy.toolchains = toolchains;
    }
    policy
}

/// What to build: the changed easyconfigs (by file name, as an easystack)
/// and what they need; the easystack of the run's options; or the latest
/// of everything under `policy` with the run's options in place of its
/// defaults.
pub fn targets(input: &Input, policy: &Policy) -> Result<Targets, Error> {
    let o = input.options();
    if input.mode() == Mode::Changed {
        return Ok(Targets::Easystack(
            input
                .changed_keys()
                .iter()
                .map(|k| k.relative().file_name().to_string())
                .collect(),
        ));
    }
    if !o.easystack.is_empty() {
        return Ok(Targets::Easystack(o.easystack.clone()));
    }
    let mut policy = policy.clone();
    let replace = |default: &mut Vec<String>, given: &Vec<String>| {
        if !given.is_empty() {
            default.clone_from(given);
        }
    };
    replace(&mut policy.toolchains, &o.toolchains);
    replace(&mut policy.include, &o.include);
    replace(&mut policy.exclude, &o.exclude);
    if !o.floors.is_empty() {
        policy.floors = o
            .floors
            .iter()
            .map(|f| f.parse().map_err(Error::Options))
            .collect::<Result<_, _>>()?;
    }
    Ok(Targets::Latest(policy))
}

/// Plan the easyconfigs of `files` for `platforms`.
pub fn plan_input(
    files: &Arc<EasyconfigFiles>,
    platforms: &[&Platform],
    input: &Input,
    settings: &Settings,
    built: HashMap<String, Built>,
) -> Result<Plan, Error> {
    let req = PlanRequest {
        platforms: platforms.to_vec(),
        targets: targets(input, &settings.policy)?,
        built,
        robot: RobotOptions::default(),
        options: settings.options,
        dot: false,
    };
    Ok(planner::plan(files, &req, &())?)
}

/// The path of a key relative to `easyconfigs/`.
pub fn relative_path(key: &str) -> Option<&str> {
    key.strip_prefix(EASYCONFIGS_PREFIX)
        .filter(|r| !r.is_empty())
}

/// Every easyconfig of the bucket: listed, taken from the packed index
/// where the index has the listed version, downloaded otherwise.
pub async fn load_easyconfigs(store: &Store) -> Result<IndexedTree, Error> {
    let objects = store
        .list_easyconfigs(EASYCONFIGS_PREFIX)
        .await
        .map_err(Error::List)?;
    // An object bigger than any easyconfig is not downloaded: it is
    // reported with its size and skipped (a hostile upload costs nothing).
    let (fit, too_big): (Vec<_>, Vec<_>) = objects
        .iter()
        .filter_map(|o| Some((relative_path(&o.key)?.to_string(), o)))
        .partition(|(_, o)| o.size <= MAX_EASYCONFIG_BYTES);
    let listed: Vec<(String, String)> = fit
        .into_iter()
        .map(|(rel, o)| (rel, o.etag.clone()))
        .collect();
    let refused: Vec<(String, String)> = too_big
        .into_iter()
        .map(|(rel, o)| {
            let why = format!(
                "refused: {} bytes, over the {MAX_EASYCONFIG_BYTES} an easyconfig may have (not downloaded)",
                o.size
            );
            (rel, why)
        })
        .collect();
    let index = match store.get_bytes(EASYCONFIG_INDEX_KEY).await {
        Ok(bytes) => EasyconfigIndex::from_bytes(&bytes).unwrap_or_else(|e| {
            tracing::warn!(key = EASYCONFIG_INDEX_KEY, error = %e, "index not used");
            EasyconfigIndex::default()
        }),
        Err(S3Error::NotFound { .. }) => EasyconfigIndex::default(),
        // Without the index every easyconfig is downloaded: slower, same plan.
        Err(e) => {
            tracing::warn!(key = EASYCONFIG_INDEX_KEY, error = %e, "index not read");
            EasyconfigIndex::default()
        }
    };
    let stale = index.stale(&listed);
    let mut downloaded = HashMap::with_capacity(stale.len());
    for chunk in stale.chunks(CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for &rel in chunk {
            let (store, rel) = (store.clone(), rel.to_string());
            tasks.spawn(async move {
                let key = format!("{EASYCONFIGS_PREFIX}{rel}");
                store.get_bytes(&key).await.map(|bytes| (rel, bytes))
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (rel, bytes) = r
                .map_err(|e| Error::Task(e.to_string()))?
                .map_err(Error::Download)?;
            downloaded.insert(rel, bytes);
        }
    }
    tracing::info!(
        easyconfigs = listed.len(),
        indexed = index.len(),
        downloaded = downloaded.len(),
        "read easyconfigs"
    );
    let root = PathBuf::from(EASYCONFIGS_PREFIX.trim_end_matches('/'));
    Ok(index.files(root, &listed, downloaded, refused)?)
}

/// Write the index of `tree` when it differs from the one read. A failure
/// is only logged: the next run downloads what changed again.
async fn save_index(store: &Store, tree: &IndexedTree) {
    if tree.index_is_current() {
        return;
    }
    let bytes = tree.to_index_bytes();
    let size = bytes.len();
    match store
        .put_bytes(EASYCONFIG_INDEX_KEY, bytes, "application/octet-stream")
        .await
    {
        Ok(()) => tracing::info!(key = EASYCONFIG_INDEX_KEY, size, "index written"),
        Err(e) => tracing::warn!(key = EASYCONFIG_INDEX_KEY, error = %e, "index not written"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::sizing::{BuildProfile, BuildUsage};

    #[test]
    fn the_toolchains_variable_replaces_only_the_toolchains() {
        let p = policy_from(" foss, GCCcore ,SYSTEM,,");
        assert_eq!(p.toolchains, ["foss", "GCCcore", "SYSTEM"]);
        assert_eq!(p.floors, Policy::default().floors);
        assert_eq!(policy_from("").toolchains, Policy::default().toolchains);
        assert_eq!(policy_from(" , ").toolchains, Policy::default().toolchains);
    }

    fn fixtures() -> Arc<EasyconfigFiles> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/easybuild/fixtures/easyconfigs");
        EasyconfigFiles::scan(&root, Default::default()).unwrap()
    }

    fn input(json: &str) -> Input {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn relative_paths_drop_the_prefix() {
        assert_eq!(
            relative_path("easyconfigs/b/bzip2/bzip2-1.0.eb"),
            Some("b/bzip2/bzip2-1.0.eb")
        );
        assert_eq!(relative_path("easyconfigs/"), None);
        assert_eq!(relative_path("plans/x"), None);
    }

    #[test]
    fn changed_keys_become_easystack_file_names() {
        let i = input(
            r#"{"execution":"e1","mode":"changed",
                "changed_keys":["easyconfigs/o/OpenMPI/OpenMPI-1.0-GCC-1.0.eb"]}"#,
        );
        match targets(&i, &Policy::default()).unwrap() {
            Targets::Easystack(names) => assert_eq!(names, ["OpenMPI-1.0-GCC-1.0.eb"]),
            t => panic!("{t:?}"),
        }
        assert!(matches!(
            targets(
                &input(r#"{"execution":"e1","mode":"full"}"#),
                &Policy::default()
            ),
            Ok(Targets::Latest(p)) if p == Policy::default()
        ));
    }

    #[test]
    fn a_runs_options_replace_the_stacks_defaults() {
        let stack = policy_from("GCCcore,foss");
        let i = input(
            r#"{"execution":"e1","options":{"floors":["foss>=2023a"],
                "include":["zlib","GCC*"],"exclude":["GCCcore"]}}"#,
        );
        let Ok(Targets::Latest(p)) = targets(&i, &stack) else {
            panic!("a full run plans the latest");
        };
        assert_eq!(
            p.toolchains, stack.toolchains,
            "no toolchains given: the stack's"
        );
        assert_eq!(p.floors, ["foss>=2023a".parse().unwrap()]);
        assert_eq!((p.include.len(), p.exclude.len()), (2, 1));
        let es = input(r#"{"execution":"e1","options":{"easystack":["zlib-1.3.eb"]}}"#);
        assert!(matches!(targets(&es, &stack), Ok(Targets::Easystack(n)) if n == ["zlib-1.3.eb"]));
        let bad = input(r#"{"execution":"e1","options":{"floors":["foss=2023a"]}}"#);
        let err = targets(&bad, &stack).unwrap_err();
        assert!(err.to_string().contains("NAME>=VERSION"), "{err}");
        assert_eq!(
            crate::failure::Failure::kind(&err),
            crate::failure::Kind::Invalid
        );
    }

    fn settings() -> Settings {
        Settings::from_lookup(|_: &str| None).unwrap()
    }

    #[test]
    fn platforms_that_share_a_plan_keep_their_own_optarch() {
        // Two x86_64 CPUs, one plan (same CUDA, nothing built): each
        // module's flags are still its CPU's.
        let all = Platforms::from_toml(
            r#"
[cpu.old]
arch = "x86_64"
archspec = "haswell"
optarch = "GCC:march=haswell"
vendor = "intel"
families = ["m4"]
optarch_by_gcc = [{gcc = "0", flags = "march=haswell"}]
[cpu.new]
arch = "x86_64"
archspec = "x86_64_v2"
optarch = "GCC:march=x86-64-v2"
vendor = "intel"
families = ["m5"]
optarch_by_gcc = [{gcc = "0", flags = "march=x86-64-v2"}]
[[platform]]
os = "amzn-2023"
cpu = "old"
[[platform]]
os = "amzn-2023"
cpu = "new"
"#,
        )
        .unwrap();
        let i = input(
            r#"{"execution":"e1","mode":"changed",
                "changed_keys":["easyconfigs/o/OpenMPI/OpenMPI-1.0-GCC-1.0.eb"]}"#,
        );
        let selected = select_platforms(&all, &i).unwrap();
        let plan = plan_input(&fixtures(), &selected, &i, &settings(), HashMap::new()).unwrap();
        let flags = |n: usize| plan.platforms[n].optarch["OpenMPI/1.0-GCC-1.0"].as_str();
        assert_eq!(
            (flags(0), flags(1)),
            ("GCC:march=haswell", "GCC:march=x86-64-v2")
        );
    }

    #[test]
    fn plans_sources_into_graphs_and_a_small_output() {
        let all = Platforms::default_set().unwrap();
        let i = input(
            r#"{"execution":"e1","mode":"changed",
                "changed_keys":["easyconfigs/o/OpenMPI/OpenMPI-1.0-GCC-1.0.eb"]}"#,
        );
        let selected = select_platforms(&all, &i).unwrap();
        assert_eq!(selected.len(), all.platforms.len());
        let mut plan = plan_input(&fixtures(), &selected, &i, &settings(), HashMap::new()).unwrap();
        assert!(plan.easyconfigs > 0);
        let out = plan_output(&plan, &selected, i.execution()).unwrap();
        // A build of GCC recorded on the first platform estimates it there;
        // the longest of two recorded builds of another GCC version sizes it.
        let profile = |duration_s, peak_memory_mib| BuildProfile {
            duration_s,
            usage: BuildUsage {
                peak_memory_mib,
                cpu_s: duration_s,
                cpus: 8,
            },
        };
        let recorded = HashMap::from([(
            all.platforms[0].name.clone(),
            Recorded {
                durations: HashMap::from([("GCC/1.0".to_string(), 4242)]),
                profiles: HashMap::from([
                    ("GCC/0.8".to_string(), profile(100, 1000)),
                    ("GCC/0.9".to_string(), profile(200, 2000)),
                ]),
                ..Recorded::default()
            },
        )]);
        let graphs = build_graphs(
            &mut plan,
            &selected,
            i.execution(),
            &recorded,
            &DurationModel::shipped(),
        )
        .unwrap();
        assert!(
            plan.platforms.iter().all(|p| p.graph.is_empty()),
            "taken out"
        );
        // GCC 1.0 knows no CPU's flags: every module a GCC toolchain
        // compiles gets its architecture's baseline, in the plan and in the
        // graph; a system-toolchain module gets none of its own.
        for (pp, g) in plan.platforms.iter().zip(&graphs) {
            if pp.base.is_some() {
                // A CUDA overlay: nothing here holds CUDA.
                assert_eq!(g.units().count(), 0, "{}", pp.platform);
                assert_eq!(g.base.as_ref().map(|b| b.as_str()), pp.base.as_deref());
                continue;
            }
            let baseline = match g.arch {
                ebfleet_core::Arch::X86_64 => "GCC:march=x86-64",
                ebfleet_core::Arch::Aarch64 => "GCC:march=armv8-a",
            };
            let openmpi = g
                .modules
                .iter()
                .find(|m| m.module.as_str() == "OpenMPI/1.0-GCC-1.0")
                .unwrap();
            assert_eq!(
                openmpi.optarch.as_deref(),
                Some(baseline),
                "{}",
                pp.platform
            );
            assert_eq!(pp.optarch["OpenMPI/1.0-GCC-1.0"], baseline);
            assert!(!pp.optarch.is_empty());
            assert!(pp.optarch.keys().all(|m| !m.starts_with("SysOnly/")));
        }
        assert!(!out.nothing_to_do);
        assert_eq!(out.plan_key, "plans/e1/plan.json");
        assert_eq!(graphs.len(), out.all().count());
        assert!(out.platforms.iter().any(|p| !p.overlays.is_empty()));
        for g in &graphs {
            let o = out.all().find(|o| o.platform == g.platform).unwrap();
            assert_eq!(g.key(), o.graph_key);
            assert_eq!(g.units().count(), o.to_build);
            if g.base.is_some() {
                continue;
            }
            assert!(g
                .modules
                .iter()
                .any(|m| m.module.as_str().starts_with("OpenMPI/") && !m.built));
        }
        let estimate = |g: &BuildGraph, m: &str| {
            g.modules
                .iter()
                .find(|x| x.module.as_str() == m)
                .map(|x| x.estimate_s)
        };
        assert_eq!(estimate(&graphs[0], "GCC/1.0"), Some(4242));
        let profile_of = |g: &BuildGraph, m: &str| {
            g.modules
                .iter()
                .find(|x| x.module.as_str() == m)
                .and_then(|x| x.profile)
        };
        assert_eq!(profile_of(&graphs[0], "GCC/1.0"), Some(profile(200, 2000)));
        assert_eq!(profile_of(&graphs[1], "GCC/1.0"), None);
        assert_eq!(
            estimate(&graphs[1], "GCC/1.0"),
            Some(DurationModel::shipped().estimate("GCC/1.0"))
        );
    }

    #[test]
    fn an_overlay_unit_is_held_only_while_its_base_needs_are_unchanged() {
        let module = |name: &str, run: &[u32], built: bool, from_base: bool| {
            ebfleet_core::build_graph::GraphModule {
                module: name.parse().unwrap(),
                easyconfig: {
                    let n = name.split('/').next().unwrap();
                    format!("{}/{n}/{n}-1.eb", ebfleet_core::layout::letter_dir_for(n))
                        .parse()
                        .unwrap()
                },
                easyconfig_sha256: ebfleet_core::checksum::sha256_hex(name.as_bytes()),
                build_deps: vec![],
                runtime_deps: run.to_vec(),
                built,
                estimate_s: 1,
                held: None,
                profile: None,
                optarch: None,
                tarball_sha256: None,
                from_base,
            }
        };
        let base: PlatformName = "amzn-2023_epyc-gen-3".parse().unwrap();
        let overlay: PlatformName = "amzn-2023_epyc-gen-3_h100".parse().unwrap();
        let graph = BuildGraph {
            execution: "e1".parse().unwrap(),
            platform: overlay.clone(),
            arch: ebfleet_core::Arch::X86_64,
            archspec: "zen3".into(),
            optarch: "GCC:march=znver3".into(),
            cuda_compute_capability: Some("9.0".into()),
            base: Some(base.clone()),
            modules: vec![
                module("zlib/1", &[], true, true),
                module("App/1-CUDA-12", &[0], false, false),
            ],
        };
        graph.validate().unwrap();
        // App failed to compile at 1000, on the overlay.
        let mut failed = Recorded::default();
        failed.failed.insert(
            "App/1-CUDA-12".into(),
            failure_memory::PastFailure {
                class: ebfleet_core::record::ErrorClass::CompileError,
                easyconfig_sha256: graph.modules[1].easyconfig_sha256.clone(),
                at: 1000,
                eb_version: None,
            },
        );
        let held_when_zlib_built_at = |at: u64| {
            let mut on_base = Recorded::default();
            on_base.built_at.insert("zlib/1".into(), at);
            let records = HashMap::from([
                (overlay.to_string(), failed.clone()),
                (base.to_string(), on_base),
            ]);
            let mut graphs = vec![graph.clone()];
            let mut out = Output {
                execution: graph.execution.clone(),
                plan_key: "plans/e1/plan.json".into(),
                nothing_to_do: false,
                platforms: Vec::new(),
            };
            hold_failures(&mut graphs, &records, &mut out);
            graphs[0].modules[1].held.is_some()
        };
        // The base built zlib before the failure: the same inputs, held.
        assert!(held_when_zlib_built_at(500));
        // The base rebuilt zlib since: App is tried again.
        assert!(!held_when_zlib_built_at(2000));
    }

    /// A run of the fixtures' changed OpenMPI on `platform` only.
    fn openmpi_on(platform: &str) -> Input {
        input(&format!(
            r#"{{"execution":"e1","mode":"changed","platforms":["{platform}"],
                "changed_keys":["easyconfigs/o/OpenMPI/OpenMPI-1.0-GCC-1.0.eb"]}}"#
        ))
    }

    #[test]
    fn a_failure_from_the_same_inputs_is_held_and_counted_out() {
        let all = Platforms::default_set().unwrap();
        let first = &all.platforms[0];
        let i = openmpi_on(&first.name);
        let selected = select_platforms(&all, &i).unwrap();
        let mut plan = plan_input(&fixtures(), &selected, &i, &settings(), HashMap::new()).unwrap();
        let mut out = plan_output(&plan, &selected, i.execution()).unwrap();
        let to_build = out.platforms[0].to_build;
        let mut graphs = build_graphs(
            &mut plan,
            &selected,
            i.execution(),
            &HashMap::new(),
            &DurationModel::shipped(),
        )
        .unwrap();
        // The first unit (nothing below it is built here) failed to compile
        // from this very easyconfig: it and everything above it are held.
        let g = &graphs[0];
        let first_unit = g.units().next().unwrap() as usize;
        let m = &g.modules[first_unit];
        let mut recorded = Recorded::default();
        recorded.failed.insert(
            m.module.to_string(),
            failure_memory::PastFailure {
                class: ebfleet_core::record::ErrorClass::CompileError,
                easyconfig_sha256: m.easyconfig_sha256.clone(),
                at: 1,
                eb_version: None,
            },
        );
        let records = HashMap::from([(first.name.clone(), recorded)]);
        let mut retried = (graphs.clone(), out.clone());
        hold_failures(&mut graphs, &records, &mut out);
        let p = &out.platforms[0];
        let blocked = graphs[0].blocked_by_held();
        assert_eq!(blocked[first_unit], Some(first_unit as u32));
        assert!(p.held >= 1 && p.held + p.to_build == to_build, "{p:?}");
        assert_eq!(p.held, blocked.iter().filter(|b| b.is_some()).count());
        // Held everything: nothing to start. Without failures, nothing held.
        assert_eq!(out.nothing_to_do, p.to_build == 0);
        hold_failures(&mut retried.0, &HashMap::new(), &mut retried.1);
        assert_eq!(retried.1.platforms[0].to_build, to_build);
    }

    #[test]
    fn everything_built_is_nothing_to_do() {
        let all = Platforms::default_set().unwrap();
        let first = &all.platforms[0];
        let i = openmpi_on(&first.name);
        let selected = select_platforms(&all, &i).unwrap();
        assert_eq!(selected.len(), 1);
        let sources = fixtures();
        let plan = plan_input(&sources, &selected, &i, &settings(), HashMap::new()).unwrap();
        // Everything it would build, marked built from the same easyconfig.
        let table = &plan.modules[&first.arch()];
        let built: Built = table
            .iter()
            .map(|(m, pm)| (m.clone(), Some(pm.easyconfig_sha256.clone())))
            .collect();
        assert!(!built.is_empty());
        let plan = plan_input(
            &sources,
            &selected,
            &i,
            &settings(),
            HashMap::from([(first.name.clone(), built)]),
        )
        .unwrap();
        let out = plan_output(&plan, &selected, i.execution()).unwrap();
        assert!(out.nothing_to_do);
    }

    mod index {
        use super::super::*;
        use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
        use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::error::NoSuchKey;
        use aws_sdk_s3::types::Object;
        use aws_sdk_s3::Client;
        use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
        use ebfleet_core::arch::Arch;
        use ebfleet_planner::tree::EasyconfigTree;

        const A: &str = "easyconfigs/a/A/A-1.0.eb";
        const B: &str = "easyconfigs/b/B/B-2.0.eb";
        const A_EB: &[u8] = b"name = 'A'\nversion = '1.0'\ntoolchain = SYSTEM\n";
        const B_EB: &[u8] = b"name = 'B'\nversion = '2.0'\ntoolchain = SYSTEM\n";
        const B2_EB: &[u8] =
            b"name = 'B'\nversion = '2.0'\ntoolchain = SYSTEM\ndependencies = [('A', '1.0')]\n";

        fn listing(etag_b: &'static str) -> Rule {
            mock!(Client::list_objects_v2)
                .match_requests(|r| r.prefix() == Some(EASYCONFIGS_PREFIX))
                .then_output(move || {
                    ListObjectsV2Output::builder()
                        .contents(Object::builder().key(A).e_tag("\"aa\"").size(4).build())
                        .contents(Object::builder().key(B).e_tag(etag_b).size(4).build())
                        .contents(
                            Object::builder()
                                .key("easyconfigs/a/A/A.patch")
                                .e_tag("\"cc\"")
                                .size(1)
                                .build(),
                        )
                        .build()
                })
        }

        fn object(key: &'static str, body: Vec<u8>) -> Rule {
            mock!(Client::get_object)
                .match_requests(move |r| r.key() == Some(key))
                .then_output(move || {
                    GetObjectOutput::builder()
                        .body(ByteStream::from(body.clone()))
                        .build()
                })
        }

        fn no_index() -> Rule {
            mock!(Client::get_object)
                .match_requests(|r| r.key() == Some(EASYCONFIG_INDEX_KEY))
                .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()))
        }

        fn b_deps(tree: &IndexedTree) -> usize {
            let t = EasyconfigTree::new(tree.files.clone(), Arch::Aarch64);
            let b = t.find("B", "2.0").unwrap();
            t.easyconfig(b).unwrap().dependencies.len()
        }

        #[tokio::test]
        async fn with_an_index_only_changed_objects_are_downloaded() {
            // No index yet: both easyconfigs are downloaded (not the patch).
            let (list, a, b, none) = (
                listing("\"bb\""),
                object(A, A_EB.to_vec()),
                object(B, B_EB.to_vec()),
                no_index(),
            );
            let store = Store::new(
                mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &none, &a, &b]),
                "bucket",
            );
            let tree = load_easyconfigs(&store).await.unwrap();
            assert_eq!(tree.files.len(), 2);
            assert_eq!((a.num_calls(), b.num_calls()), (1, 1));
            assert!(!tree.index_is_current());
            let index = tree.to_index_bytes();

            // The index as written: nothing is downloaded.
            let (list, a, b, idx) = (
                listing("\"bb\""),
                object(A, A_EB.to_vec()),
                object(B, B_EB.to_vec()),
                object(EASYCONFIG_INDEX_KEY, index.clone()),
            );
            let store = Store::new(
                mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &idx, &a, &b]),
                "bucket",
            );
            let tree = load_easyconfigs(&store).await.unwrap();
            assert_eq!((a.num_calls(), b.num_calls()), (0, 0));
            assert!(tree.index_is_current());
            assert_eq!(b_deps(&tree), 0);

            // B changed (new ETag): only B is downloaded, and its new text used.
            let (list, a, b, idx) = (
                listing("\"b2\""),
                object(A, A_EB.to_vec()),
                object(B, B2_EB.to_vec()),
                object(EASYCONFIG_INDEX_KEY, index),
            );
            let store = Store::new(
                mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &idx, &a, &b]),
                "bucket",
            );
            let tree = load_easyconfigs(&store).await.unwrap();
            assert_eq!((a.num_calls(), b.num_calls()), (0, 1));
            assert!(!tree.index_is_current());
            assert_eq!(b_deps(&tree), 1);
        }

        #[tokio::test]
        async fn a_corrupt_index_means_downloading_everything() {
            let (list, a, b, idx) = (
                listing("\"bb\""),
                object(A, A_EB.to_vec()),
                object(B, B_EB.to_vec()),
                object(EASYCONFIG_INDEX_KEY, b"garbage".to_vec()),
            );
            let store = Store::new(
                mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &idx, &a, &b]),
                "bucket",
            );
            let tree = load_easyconfigs(&store).await.unwrap();
            assert_eq!((a.num_calls(), b.num_calls()), (1, 1));
            assert_eq!(b_deps(&tree), 0);
        }
    }
}
