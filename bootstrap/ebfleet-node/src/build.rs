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
//! failed or was skipped earlier in this batch the module is reported
//! skipped, otherwise failed with `dependency_failed`. `--rebuild` because
//! a module of the batch is never built on this platform yet: anything in
//! its install directory is a crashed attempt's leftover.
//!
//! Progress is kept in `build.json` after every module, so a re-run after
//! a crash continues with the first module that has no outcome.

use crate::classify::{classify, Ended};
use crate::context::{io_at, now, Context, Header, NodeError};
use crate::eb;
use crate::layout::{read_json, write_json};
use ebfleet_core::keys::{BatchBuild, ModuleName};
use ebfleet_core::record::ErrorClass;
use ebfleet_core::step::Step;
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

pub async fn run(ctx: &Context) -> Result<BuildResult, NodeError> {
    let batch = ctx.job.fetch(&ctx.store).await?;
    let env = eb::environment(&ctx.node, &ctx.layout, &batch, std::env::vars_os())?;
    let program = eb::program(&ctx.node);
    for b in &batch.builds {
        let path = ctx.layout.easyconfig(&b.easyconfig);
        if !path.is_file() {
            return Err(NodeError::Order {
                step: Step::Build,
                reason: format!("{} is missing: run sync first", path.display()),
            });
        }
    }
    let state = ctx.state();
    let path = state.result(Step::Build);
    let previous: Option<BuildResult> = read_json(&path)?;
    let eb_version = eb::version(&program, &env)?;
    let mut result = match previous {
        Some(p) if p.header.execution == *ctx.job.execution() => p,
        _ => BuildResult {
            header: ctx.header(Step::Build, now()),
            finished: None,
            eb_version: eb_version.clone(),
            modules: Vec::new(),
        },
    };
    result.eb_version = eb_version;
    let ctx2 = ctx.clone();
    let builds = batch.builds.clone();
    let result =
        tokio::task::spawn_blocking(move || build_all(&ctx2, &builds, &env, &program, result))
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
    env: &BTreeMap<OsString, OsString>,
    program: &OsString,
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
        let outcome = build_one(ctx, b, env, program, &result.modules)?;
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

fn build_one(
    ctx: &Context,
    b: &BatchBuild,
    env: &BTreeMap<OsString, OsString>,
    program: &OsString,
    earlier: &[ModuleBuild],
) -> Result<BuildOutcome, NodeError> {
    let m = &b.module;
    let logs = ctx.state().logs(m);
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(io_at(&logs))?;
    }
    std::fs::create_dir_all(&logs).map_err(io_at(&logs))?;
    let mut env = env.clone();
    env.insert("EASYBUILD_TMP_LOGDIR".into(), logs.clone().into());
    let mut args: Vec<OsString> = vec![
        ctx.layout.easyconfig(&b.easyconfig).into(),
        "--rebuild".into(),
    ];
    if m.is_hidden() {
        args.push("--hidden".into());
    }
    tracing::info!(module = %m, easyconfig = %b.easyconfig, "eb");
    let run = eb::run(program, &args, &env, &logs.join(OUTPUT_LOG), m.as_str())?;
    let output = eb::tail(&run.output, LOG_TAIL_BYTES);
    let named = eb::named_logs(&output);
    let installed = ctx.layout.install_dir(m).is_dir() && ctx.layout.module_file(m).is_file();
    if run.ended == Ended::Exit(0) {
        if installed {
            // Keep EasyBuild's log with the batch's logs too.
            for log in named.iter().filter(|p| p.starts_with(ctx.layout.root())) {
                if let Some(name) = log.file_name() {
                    let _ = std::fs::copy(log, logs.join(name));
                }
            }
            return Ok(BuildOutcome::Built {
                duration_s: run.seconds,
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
        .find(|p| p.starts_with(&logs) && p.is_file())
        .cloned()
        .or_else(|| newest_log(&logs));
    let log_text = main_log
        .as_deref()
        .map(|p| eb::tail(p, LOG_TAIL_BYTES))
        .unwrap_or_default();
    let failure = classify(run.ended, &output, &log_text);
    if failure.class == ErrorClass::DependencyFailed && !failure.missing.is_empty() {
        let gone: Vec<&str> = earlier
            .iter()
            .filter(|e| !matches!(e.outcome, BuildOutcome::Built { .. }))
            .map(|e| e.module.as_str())
            .collect();
        if failure.missing.iter().all(|x| gone.contains(&x.as_str())) {
            return Ok(BuildOutcome::Skipped {
                reason: format!(
                    "dependency {} failed in this batch",
                    failure.missing.join(", ")
                ),
            });
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

/// The newest `easybuild-*.log` in `dir`.
fn newest_log(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("easybuild-") && n.ends_with(".log")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}
