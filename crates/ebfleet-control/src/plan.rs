//! Plan: read the easyconfigs from the bucket (cached by ETag in `/tmp`
//! across warm invocations), what each platform has built from DynamoDB,
//! run the planner, write the plan and each platform's build graph to
//! `plans/<execution>/`, and return only keys and counts.

use crate::env::{self, var, Lookup};
use crate::Env;
use ebfleet_aws::dynamodb::DynamoError;
use ebfleet_aws::s3::{ObjectInfo, S3Error, Store};
use ebfleet_core::build_graph::BuildGraph;
use ebfleet_core::built::Built;
use ebfleet_core::layout::EASYCONFIGS_PREFIX;
use ebfleet_core::names::{ExecutionName, KeyError, PlatformName};
use ebfleet_core::platform::{Platform, PlatformError, Platforms};
use ebfleet_core::trigger::{ExecutionInput, Mode};
use ebfleet_planner::plan::PlanOptions;
use ebfleet_planner::planner::{plan_sources, Plan, PlanError, PlanRequest, Targets};
use ebfleet_planner::policy::Policy;
use ebfleet_planner::robot::RobotOptions;
use ebfleet_planner::wire::{build_graph, plan_output};
use ebfleet_scheduler::DurationModel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `{execution, platforms?, changed_keys?, mode}`.
pub type Input = ExecutionInput;
/// Per platform, keys and counts only.
pub type Output = ebfleet_core::wire::PlanOutput;

/// Where downloaded easyconfigs are kept, unless
/// [`CACHE_DIR_VAR`] says otherwise.
pub const DEFAULT_CACHE_DIR: &str = "/tmp/ebfleet-easyconfigs";
/// Optional: the directory of the easyconfig cache.
pub const CACHE_DIR_VAR: &str = "EBFLEET_EASYCONFIG_CACHE";
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
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Platforms(_) | Error::Keys(_) => Kind::Invalid,
            Error::List(e) | Error::Download(e) | Error::Write(e) => e.kind(),
            Error::Built { source, .. } => Kind::retry_or(source.is_retryable(), Kind::Failed),
            Error::Plan(_) | Error::Task(_) => Kind::Failed,
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
    /// Where downloaded easyconfigs are cached ([`CACHE_DIR_VAR`]).
    pub cache_dir: PathBuf,
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
            cache_dir: lookup(CACHE_DIR_VAR)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR)),
            durations: DurationModel::shipped(),
        })
    }
}

pub async fn handle(env: &Env, settings: &Settings, input: Input) -> Result<Output, Error> {
    let selected = select_platforms(&settings.platforms, &input)?;
    let mut built = HashMap::new();
    let mut durations = HashMap::new();
    for p in &selected {
        let name = PlatformName::of(p)?;
        let recorded = env
            .records
            .recorded(&name)
            .await
            .map_err(|source| Error::Built {
                platform: p.name.clone(),
                source: Box::new(source),
            })?;
        built.insert(p.name.clone(), recorded.built);
        durations.insert(p.name.clone(), recorded.durations);
    }
    // The easyconfigs' bytes are dropped once planned: the handler's peak
    // memory is the plan plus what is being written, not the sources too.
    let mut plan = {
        let sources = load_sources(&env.store, &settings.cache_dir).await?;
        plan_input(&sources, &selected, &input, settings, built)?
    };
    let execution = input.execution();
    // The output counts the graphs' units: before they are taken out.
    let output = plan_output(&plan, &selected, execution)?;
    let graphs = build_graphs(
        &mut plan,
        &selected,
        execution,
        &durations,
        &settings.durations,
    )?;
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
/// software (the longest), else `model`'s.
pub fn build_graphs(
    plan: &mut Plan,
    platforms: &[&Platform],
    execution: &ExecutionName,
    recorded: &HashMap<String, HashMap<String, u64>>,
    model: &DurationModel,
) -> Result<Vec<BuildGraph>, Error> {
    plan.platforms
        .iter_mut()
        .map(|pp| {
            let platform = platforms
                .iter()
                .find(|p| p.name == pp.platform)
                .ok_or_else(|| KeyError::NoPlatform(pp.platform.clone()))?;
            let empty = HashMap::new();
            let durations = recorded.get(&pp.platform).unwrap_or(&empty);
            let mut by_name: HashMap<&str, u64> = HashMap::new();
            for (m, &d) in durations {
                let name = m.split_once('/').map_or(m.as_str(), |(n, _)| n);
                let e = by_name.entry(name).or_default();
                *e = (*e).max(d);
            }
            let estimate = |m: &str| {
                let name = m.split_once('/').map_or(m, |(n, _)| n);
                durations
                    .get(m)
                    .or_else(|| by_name.get(name))
                    .copied()
                    .unwrap_or_else(|| model.estimate(m))
            };
            let graph = build_graph(pp, platform, execution, estimate)?;
            pp.graph = Vec::new();
            Ok(graph)
        })
        .collect()
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

/// What to build: the latest of everything (under [`policy`]), or the
/// changed easyconfigs (by file name, as an easystack) and what they need.
pub fn targets(input: &Input, policy: &Policy) -> Targets {
    match input.mode() {
        Mode::Full => Targets::Latest(policy.clone()),
        Mode::Changed => Targets::Easystack(
            input
                .changed_keys()
                .iter()
                .map(|k| k.relative().file_name().to_string())
                .collect(),
        ),
    }
}

/// Plan `sources` (paths relative to `easyconfigs/`) for `platforms`.
pub fn plan_input(
    sources: &[(String, Vec<u8>)],
    platforms: &[&Platform],
    input: &Input,
    settings: &Settings,
    built: HashMap<String, Built>,
) -> Result<Plan, PlanError> {
    let req = PlanRequest {
        easyconfigs: Path::new(EASYCONFIGS_PREFIX.trim_end_matches('/')),
        platforms: platforms.to_vec(),
        targets: targets(input, &settings.policy),
        built,
        robot: RobotOptions::default(),
        options: settings.options,
        dot: false,
    };
    plan_sources(sources, &req)
}

/// The file name an object with `etag` is cached under: the ETag without
/// quotes, when it is only hex digits and dashes (S3's form); else none
/// (not cached).
pub fn cache_name(etag: &str) -> Option<String> {
    let e = etag.trim_matches('"');
    (!e.is_empty() && e.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .then(|| format!("{}.eb", e.to_ascii_lowercase()))
}

/// The path of a key relative to `easyconfigs/`.
pub fn relative_path(key: &str) -> Option<&str> {
    key.strip_prefix(EASYCONFIGS_PREFIX)
        .filter(|r| !r.is_empty())
}

/// Every easyconfig of the bucket, read from the cache when its ETag is
/// there, else downloaded (and cached).
pub async fn load_sources(store: &Store, cache: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let objects = store
        .list_easyconfigs(EASYCONFIGS_PREFIX)
        .await
        .map_err(Error::List)?;
    if let Err(e) = tokio::fs::create_dir_all(cache).await {
        tracing::warn!(cache = %cache.display(), error = %e, "no easyconfig cache");
    }
    let mut sources = Vec::with_capacity(objects.len());
    let mut hits = 0usize;
    for chunk in objects.chunks(CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, o) in chunk.iter().enumerate() {
            let Some(rel) = relative_path(&o.key) else {
                continue;
            };
            let (store, cache, o, rel) = (
                store.clone(),
                cache.to_path_buf(),
                o.clone(),
                rel.to_string(),
            );
            tasks.spawn(async move {
                fetch_cached(&store, &cache, &o)
                    .await
                    .map(|(bytes, hit)| (i, rel, bytes, hit))
            });
        }
        let mut got = Vec::with_capacity(chunk.len());
        while let Some(r) = tasks.join_next().await {
            let (i, rel, bytes, hit) = r.map_err(|e| Error::Task(e.to_string()))??;
            hits += usize::from(hit);
            got.push((i, rel, bytes));
        }
        got.sort_by_key(|(i, _, _)| *i);
        sources.extend(got.into_iter().map(|(_, rel, bytes)| (rel, bytes)));
    }
    tracing::info!(
        easyconfigs = sources.len(),
        cached = hits,
        "read easyconfigs"
    );
    let keep: std::collections::HashSet<String> =
        objects.iter().filter_map(|o| cache_name(&o.etag)).collect();
    prune_cache(cache, &keep).await;
    Ok(sources)
}

/// Remove cached files no listed object has any more, so `/tmp` does not
/// fill up over many warm invocations.
async fn prune_cache(cache: &Path, keep: &std::collections::HashSet<String>) {
    let Ok(mut dir) = tokio::fs::read_dir(cache).await else {
        return;
    };
    while let Ok(Some(e)) = dir.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            if let Err(err) = tokio::fs::remove_file(e.path()).await {
                tracing::warn!(path = %e.path().display(), error = %err, "not pruned");
            }
        }
    }
}

/// One object's bytes, and whether they came from the cache.
async fn fetch_cached(
    store: &Store,
    cache: &Path,
    o: &ObjectInfo,
) -> Result<(Vec<u8>, bool), Error> {
    let path = cache_name(&o.etag).map(|n| cache.join(n));
    if let Some(path) = &path {
        if let Ok(bytes) = tokio::fs::read(path).await {
            if bytes.len() as u64 == o.size {
                return Ok((bytes, true));
            }
        }
    }
    let bytes = store.get_bytes(&o.key).await.map_err(Error::Download)?;
    if let Some(path) = &path {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = match tokio::fs::write(&tmp, &bytes).await {
            Ok(()) => tokio::fs::rename(&tmp, path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "not cached");
            let _ = tokio::fs::remove_file(&tmp).await;
        }
    }
    Ok((bytes, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toolchains_variable_replaces_only_the_toolchains() {
        let p = policy_from(" foss, GCCcore ,SYSTEM,,");
        assert_eq!(p.toolchains, ["foss", "GCCcore", "SYSTEM"]);
        assert_eq!(p.floors, Policy::default().floors);
        assert_eq!(policy_from("").toolchains, Policy::default().toolchains);
        assert_eq!(policy_from(" , ").toolchains, Policy::default().toolchains);
    }

    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/easybuild/fixtures/easyconfigs");
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "eb") {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    out.push((rel, std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn input(json: &str) -> Input {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cache_names_are_etags_without_quotes() {
        assert_eq!(cache_name("\"9B2cf0\"").as_deref(), Some("9b2cf0.eb"));
        assert_eq!(cache_name("\"abc-3\"").as_deref(), Some("abc-3.eb"));
        assert_eq!(cache_name(""), None);
        assert_eq!(cache_name("\"../x\""), None);
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
        match targets(&i, &Policy::default()) {
            Targets::Easystack(names) => assert_eq!(names, ["OpenMPI-1.0-GCC-1.0.eb"]),
            t => panic!("{t:?}"),
        }
        assert!(matches!(
            targets(
                &input(r#"{"execution":"e1","mode":"full"}"#),
                &Policy::default()
            ),
            Targets::Latest(_)
        ));
    }

    fn settings() -> Settings {
        Settings::from_lookup(|_: &str| None).unwrap()
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
        // A build of GCC recorded on the first platform estimates it there.
        let recorded = HashMap::from([(
            all.platforms[0].name.clone(),
            HashMap::from([("GCC/1.0".to_string(), 4242)]),
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
        assert!(!out.nothing_to_do);
        assert_eq!(out.plan_key, "plans/e1/plan.json");
        assert_eq!(graphs.len(), out.platforms.len());
        for (g, o) in graphs.iter().zip(&out.platforms) {
            assert_eq!(g.key(), o.graph_key);
            assert_eq!(g.units().count(), o.to_build);
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
        assert_eq!(
            estimate(&graphs[1], "GCC/1.0"),
            Some(DurationModel::shipped().estimate("GCC/1.0"))
        );
    }

    #[test]
    fn everything_built_is_nothing_to_do() {
        let all = Platforms::default_set().unwrap();
        let first = &all.platforms[0];
        let i = input(&format!(
            r#"{{"execution":"e1","mode":"changed","platforms":["{}"],
                "changed_keys":["easyconfigs/o/OpenMPI/OpenMPI-1.0-GCC-1.0.eb"]}}"#,
            first.name
        ));
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

    mod cache {
        use super::super::*;
        use aws_sdk_s3::operation::get_object::GetObjectOutput;
        use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::Object;
        use aws_sdk_s3::Client;
        use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

        const A: &str = "easyconfigs/a/A/A-1.0.eb";
        const B: &str = "easyconfigs/b/B/B-2.0.eb";

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

        fn object(key: &'static str, body: &'static [u8]) -> Rule {
            mock!(Client::get_object)
                .match_requests(move |r| r.key() == Some(key))
                .then_output(move || {
                    GetObjectOutput::builder()
                        .body(ByteStream::from_static(body))
                        .build()
                })
        }

        #[tokio::test]
        async fn warm_invocations_download_only_changed_objects() {
            let dir =
                std::env::temp_dir().join(format!("ebfleet-plan-cache-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (list, a, b) = (listing("\"bb\""), object(A, b"AAAA"), object(B, b"BBBB"));
            let store = Store::new(
                mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &a, &b]),
                "bucket",
            );
            let want = vec![
                ("a/A/A-1.0.eb".to_string(), b"AAAA".to_vec()),
                ("b/B/B-2.0.eb".to_string(), b"BBBB".to_vec()),
            ];
            assert_eq!(load_sources(&store, &dir).await.unwrap(), want);
            assert_eq!((a.num_calls(), b.num_calls()), (1, 1));
            // Warm: nothing changed, nothing downloaded.
            assert_eq!(load_sources(&store, &dir).await.unwrap(), want);
            assert_eq!((a.num_calls(), b.num_calls()), (1, 1));
            // B changed: only B is downloaded again.
            let (list2, b2) = (listing("\"b2\""), object(B, b"bbbb"));
            let store = Store::new(
                mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list2, &a, &b2]),
                "bucket",
            );
            let got = load_sources(&store, &dir).await.unwrap();
            assert_eq!(got[1].1, b"bbbb");
            assert_eq!((a.num_calls(), b2.num_calls()), (1, 1));
            // The old B is pruned from the cache.
            let mut cached: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            cached.sort();
            assert_eq!(cached, ["aa.eb", "b2.eb"]);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
