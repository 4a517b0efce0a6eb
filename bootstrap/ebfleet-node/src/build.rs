//! `build`: EasyBuild on the batch's easyconfigs, one module at a time.
//!
//! # One `eb` per module, in batch order, without `--robot`
//!
//! The batch is in dependency order and `sync` installed everything it
//! needs from earlier batches, so each module's dependencies are installed
//! by the time its turn comes. Running
//! `eb <easyconfig> --rebuild [--hidden]` per module gives each module its
//! own exit status, wall-clock duration and log, which is what the
//! manifest reports; one `eb --easystack` run would give one status for
//! all and the per-module story only by parsing its log. `--robot` is left
//! out on purpose: with it, a module whose dependency failed earlier in
//! the batch would make `eb` build that dependency again (failing again,
//! for as long as it takes), and a dependency missing from the plan would
//! be built and installed silently outside it. Without it, EasyBuild
//! answers "Missing modules for dependencies: X" at once; when every X
//! failed or was skipped earlier in this batch, or is a need `sync` found
//! missing from the bucket (a module an earlier batch did not build), the
//! module is reported skipped with why ([`dependency_skip`]), otherwise
//! failed with `dependency_failed`. `--rebuild` because
//! a module of the batch is never built on this platform yet: anything in
//! its install directory is a crashed attempt's leftover.
//!
//! # Leases
//!
//! When `sync` found the batch's leases file, a module it does not lease
//! to this batch (another execution holds it, or built it since the plan)
//! is reported skipped with the file's reason and `eb` does not run for it
//! ([`lease_skip`]); the manifest then says skipped, and the record
//! Lambda leaves the holder's record alone. Its dependents in the batch
//! are skipped by the rule above. Without a leases file every module is
//! built.
//!
//! Progress is kept in `build.json` after every module, so a re-run after
//! a crash continues with the first module that has no outcome.

use crate::build_user::BuildUser;
use crate::classify::{classify, Ended};
use crate::context::{io_at, now, Context, Header, NodeError};
use crate::eb;
use crate::layout::{read_json, write_json};
use crate::machine;
use crate::sync::{parse_leases, SyncResult};
use ebfleet_core::lease::BatchLeases;
use ebfleet_core::names::ModuleName;
use ebfleet_core::record::{truncate_message, ErrorClass, MAX_ERROR_MESSAGE_BYTES};
use ebfleet_core::sizing::{jobs_fitting, BuildUsage};
use ebfleet_core::step::Step;
use ebfleet_core::wire::{BatchBuild, BatchFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

/// How much of the end of a log the classifier reads.
const LOG_TAIL_BYTES: u64 = 4 << 20;
/// eb's output, kept beside EasyBuild's own logs.
pub const OUTPUT_LOG: &str = "eb-output.log";

/// What became of one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum BuildOutcome {
    Built {
        duration_s: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<BuildUsage>,
    },
    Failed {
        class: ErrorClass,
        message: String,
        duration_s: u64,
        /// The file in the module's log directory that says most: the
        /// EasyBuild log, else eb's output.
        log: Option<String>,
    },
    Skipped {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleBuild {
    pub module: ModuleName,
    pub easyconfig_sha256: String,
    #[serde(flatten)]
    pub outcome: BuildOutcome,
}

/// `build.json`: written after every module; `finished` once all are done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildResult {
    #[serde(flatten)]
    pub header: Header,
    pub finished: Option<u64>,
    pub eb_version: String,
    /// The batch's: a retry with fewer jobs builds again.
    #[serde(default)]
    pub jobs_halved: u32,
    pub modules: Vec<ModuleBuild>,
}

impl BuildResult {
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for m in &self.modules {
            match m.outcome {
                BuildOutcome::Built { .. } => c.0 += 1,
                BuildOutcome::Failed { .. } => c.1 += 1,
                BuildOutcome::Skipped { .. } => c.2 += 1,
            }
        }
        c
    }
}

/// What `sync` left for `build` beyond the files: the batch's leases and
/// the needs missing from the bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    pub leases: Option<BatchLeases>,
    pub missing_needs: Vec<ModuleName>,
}

/// Read `sync.json` and the leases file it names from the state directory.
fn synced(ctx: &Context, batch: &BatchFile) -> Result<Synced, NodeError> {
    let state = ctx.state();
    let order = |reason: String| NodeError::Order {
        step: Step::Build,
        reason,
    };
    let sync_path = state.result(Step::Sync);
    let sync: SyncResult = read_json(&sync_path)?.ok_or_else(|| {
        order(format!(
            "{} is missing: run sync first",
            sync_path.display()
        ))
    })?;
    let leases = match &sync.leases_key {
        None => None,
        Some(key) => {
            let path = state.leases();
            let bytes = std::fs::read(&path).map_err(|e| {
                order(format!(
                    "sync read the leases file {key}, but {} is unreadable ({e}): run sync again",
                    path.display()
                ))
            })?;
            Some(
                parse_leases(&bytes, batch).map_err(|reason| NodeError::Leases {
                    bucket: ctx.store.bucket().to_string(),
                    key: key.clone(),
                    reason,
                })?,
            )
        }
    };
    Ok(Synced {
        leases,
        missing_needs: sync.missing_needs,
    })
}

/// Why the batch's leases say not to build `m`; `None` when it may be
/// built (it is leased to this batch, or the batch has no leases file).
pub fn lease_skip(leases: Option<&BatchLeases>, m: &ModuleName) -> Option<String> {
    leases.and_then(|l| l.skip_reason(m))
}

/// Why a module is skipped rather than failed when `eb` found the modules
/// `missing` missing, or `None` when it failed: every missing module must
/// have failed or been skipped earlier in this batch (`earlier`), or be a
/// need `sync` did not find in the bucket (`missing_needs`). A missing
/// module that is built, or that nothing explains, is a failure.
pub fn dependency_skip(
    missing: &[String],
    earlier: &[ModuleBuild],
    missing_needs: &[ModuleName],
) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let mut failed = Vec::new();
    let mut other = Vec::new();
    for x in missing {
        match earlier.iter().find(|e| e.module.as_str() == x) {
            Some(e) => match &e.outcome {
                BuildOutcome::Built { .. } => return None,
                BuildOutcome::Failed { .. } => failed.push(x.as_str()),
                BuildOutcome::Skipped { reason } => other.push(format!(
                    "dependency {x} was skipped in this batch: {reason}"
                )),
            },
            None if missing_needs.iter().any(|n| n.as_str() == x) => other.push(format!(
                "dependency {x} is not in the bucket (not built by an earlier batch)"
            )),
            None => return None,
        }
    }
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!(
            "dependency {} failed in this batch",
            failed.join(", ")
        ));
    }
    parts.extend(other);
    Some(truncate_message(&parts.join("; "), MAX_ERROR_MESSAGE_BYTES))
}

pub async fn run(ctx: &Context) -> Result<BuildResult, NodeError> {
    let batch = ctx.job.fetch(&ctx.store).await?;
    let ctx = &ctx.for_batch(&batch);
    let mut env = eb::environment(&ctx.node, &ctx.layout, &batch, std::env::vars_os())?;
    let user = BuildUser::of_node(&ctx.node)?;
    if let Some(u) = &user {
        u.apply(&mut env);
    }
    let eb = Eb {
        program: eb::program(&ctx.node),
        env,
        user,
    };
    for b in &batch.builds {
        let path = ctx.layout.easyconfig(&b.easyconfig);
        if !path.is_file() {
            return Err(NodeError::Order {
                step: Step::Build,
                reason: format!("{} is missing: run sync first", path.display()),
            });
        }
    }
    let synced = synced(ctx, &batch)?;
    let state = ctx.state();
    let path = state.result(Step::Build);
    let previous: Option<BuildResult> = read_json(&path)?;
    let eb_version = eb::version(&eb.program, &eb.env, eb.user.as_ref())?;
    // Outcomes of an earlier run of this step are kept (a crashed node
    // agent resumes), not those of a try with other jobs (a retry after
    // running out of memory builds again).
    let mut result = match previous {
        Some(p)
            if p.header.execution == *ctx.job.execution() && p.jobs_halved == batch.jobs_halved =>
        {
            p
        }
        _ => BuildResult {
            header: ctx.header(Step::Build, now()),
            finished: None,
            eb_version: eb_version.clone(),
            jobs_halved: batch.jobs_halved,
            modules: Vec::new(),
        },
    };
    result.eb_version = eb_version;
    let ctx2 = ctx.clone();
    let builds = batch.builds.clone();
    let result =
        tokio::task::spawn_blocking(move || build_all(&ctx2, &builds, &synced, &eb, result))
            .await
            .map_err(|e| NodeError::Task {
                what: "build".into(),
                detail: e.to_string(),
            })??;
    let (built, failed, skipped) = result.counts();
    tracing::info!(built, failed, skipped, "build done");
    Ok(result)
}

fn build_all(
    ctx: &Context,
    builds: &[BatchBuild],
    synced: &Synced,
    eb: &Eb,
    mut result: BuildResult,
) -> Result<BuildResult, NodeError> {
    let path = ctx.state().result(Step::Build);
    // Keep outcomes of this batch's modules only, in batch order.
    let done: BTreeMap<ModuleName, ModuleBuild> = result
        .modules
        .drain(..)
        .map(|m| (m.module.clone(), m))
        .collect();
    for b in builds {
        if let Some(m) = done
            .get(&b.module)
            .filter(|m| m.easyconfig_sha256 == b.easyconfig_sha256)
        {
            tracing::info!(module = %b.module, "outcome kept from an earlier run");
            result.modules.push(m.clone());
            continue;
        }
        let outcome = match lease_skip(synced.leases.as_ref(), &b.module) {
            Some(reason) => {
                // No eb, no logs (a crashed attempt's are not this run's).
                let logs = ctx.state().logs(&b.module);
                if logs.exists() {
                    std::fs::remove_dir_all(&logs).map_err(io_at(&logs))?;
                }
                BuildOutcome::Skipped { reason }
            }
            None => build_one(ctx, b, eb, &result.modules, &synced.missing_needs)?,
        };
        tracing::info!(module = %b.module, outcome = ?outcome, "module done");
        result.modules.push(ModuleBuild {
            module: b.module.clone(),
            easyconfig_sha256: b.easyconfig_sha256.clone(),
            outcome,
        });
        write_json(&path, &result)?;
    }
    result.finished = Some(now());
    write_json(&path, &result)?;
    Ok(result)
}

/// The batch's environment as one module's build gets it: its own
/// optarch (its GCC is older than the batch's), and fewer jobs when its
/// recorded processes need more memory than the node has for every CPU.
fn module_env(env: &BTreeMap<OsString, OsString>, b: &BatchBuild) -> BTreeMap<OsString, OsString> {
    let mut env = env.clone();
    if let Some(optarch) = &b.optarch {
        tracing::info!(module = %b.module, %optarch, "its own optarch: its GCC is older than the batch's needs");
        env.insert("EASYBUILD_OPTARCH".into(), optarch.into());
    }
    if let Some(jobs) = fewer_jobs(&env, b.memory_per_job_mib) {
        tracing::info!(module = %b.module, jobs, "fewer jobs: its last build's processes need more memory");
        env.insert("EASYBUILD_PARALLEL".into(), jobs.to_string().into());
    }
    env
}

/// The parallel jobs a build whose jobs each need `memory_per_job_mib`
/// gets on this node, when fewer than `env` gives it
/// ([`ebfleet_core::sizing::jobs_fitting`]).
fn fewer_jobs(env: &BTreeMap<OsString, OsString>, memory_per_job_mib: Option<u64>) -> Option<u32> {
    let per_job = memory_per_job_mib?;
    let jobs = env
        .get(&OsString::from("EASYBUILD_PARALLEL"))
        .and_then(|v| v.to_str()?.parse::<u32>().ok())
        .unwrap_or_else(machine::cpus);
    let fit = jobs_fitting(machine::memory_mib()?, jobs, per_job);
    (fit < jobs).then_some(fit)
}

/// How a batch's `eb` runs: the program, its environment, and the user it
/// runs as (none: as the agent).
struct Eb {
    program: OsString,
    env: BTreeMap<OsString, OsString>,
    user: Option<BuildUser>,
}

fn build_one(
    ctx: &Context,
    b: &BatchBuild,
    eb: &Eb,
    earlier: &[ModuleBuild],
    missing_needs: &[ModuleName],
) -> Result<BuildOutcome, NodeError> {
    let m = &b.module;
    let logs = ctx.state().logs(m);
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(io_at(&logs))?;
    }
    std::fs::create_dir_all(&logs).map_err(io_at(&logs))?;
    let mut env = module_env(&eb.env, b);
    env.insert("EASYBUILD_TMP_LOGDIR".into(), logs.clone().into());
    let mut args: Vec<OsString> = vec![
        ctx.layout.easyconfig(&b.easyconfig).into(),
        "--rebuild".into(),
    ];
    if m.is_hidden() {
        args.push("--hidden".into());
    }
    tracing::info!(module = %m, easyconfig = %b.easyconfig, "eb");
    if let Some(u) = &eb.user {
        let build = env
            .get(&OsString::from("EASYBUILD_BUILDPATH"))
            .map_or_else(|| ctx.layout.build(), std::path::PathBuf::from);
        u.hand_over(&ctx.layout, m, &logs, &build)?;
    }
    let output = logs.join(OUTPUT_LOG);
    let run = eb::run(
        &eb.program,
        &args,
        &env,
        eb.user.as_ref(),
        &output,
        m.as_str(),
    );
    // Whatever became of it, the build's files are root's again before
    // anything reads them.
    if let Some(u) = &eb.user {
        u.take_back(&ctx.layout, m, &logs)?;
    }
    let run = run?;
    let output = eb::tail(&run.output, LOG_TAIL_BYTES);
    let named = eb::named_logs(&output);
    let installed = ctx.layout.install_dir(m).is_dir() && ctx.layout.module_file(m).is_file();
    if run.ended == Ended::Exit(0) {
        if installed {
            // Keep EasyBuild's log with the batch's logs too.
            for log in named
                .iter()
                .filter(|p| is_plain_file_under(p, ctx.layout.root()))
            {
                if let Some(name) = log.file_name() {
                    let _ = std::fs::copy(log, logs.join(name));
                }
            }
            let usage = BuildUsage {
                peak_memory_mib: run.peak_memory_mib,
                cpu_s: run.cpu_s,
                cpus: machine::cpus(),
            };
            return Ok(BuildOutcome::Built {
                duration_s: run.seconds,
                usage: Some(usage),
            });
        }
        return Ok(BuildOutcome::Failed {
            class: ErrorClass::Unknown,
            message: format!(
                "eb exited 0 but {} or {} is missing",
                ctx.layout.install_dir(m).display(),
                ctx.layout.module_file(m).display()
            ),
            duration_s: run.seconds,
            log: Some(OUTPUT_LOG.into()),
        });
    }
    let main_log = named
        .iter()
        .find(|p| is_plain_file_under(p, &logs))
        .cloned()
        .or_else(|| newest_log(&logs));
    let log_text = main_log
        .as_deref()
        .map(|p| eb::tail(p, LOG_TAIL_BYTES))
        .unwrap_or_default();
    let failure = classify(run.ended, &output, &log_text);
    if failure.class == ErrorClass::DependencyFailed {
        if let Some(reason) = dependency_skip(&failure.missing, earlier, missing_needs) {
            return Ok(BuildOutcome::Skipped { reason });
        }
    }
    Ok(BuildOutcome::Failed {
        class: failure.class,
        message: failure.message,
        duration_s: run.seconds,
        log: Some(
            main_log
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| OUTPUT_LOG.into()),
        ),
    })
}

/// Whether `path` (a path eb printed) names a regular file under `dir`,
/// not through `..` and not a symlink: the agent reads it as root.
fn is_plain_file_under(path: &Path, dir: &Path) -> bool {
    use std::path::Component;
    path.starts_with(dir)
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// The newest `easybuild-*.log` in `dir`.
fn newest_log(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("easybuild-")
                && n.ends_with(".log")
                && e.file_type().is_ok_and(|t| t.is_file())
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

#[cfg(test)]
mod tests;
