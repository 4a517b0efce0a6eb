//! `tar`: one tarball per module the batch built (its install directory,
//! see [`crate::archive`]), and its module file copied beside it, each with
//! size and sha256, into the batch's state directory for `upload`.
//!
//! Modules that failed or were skipped are not packed. A module whose
//! installation cannot be packed (e.g. a symlink out of its directory) is
//! reported with the reason and not packed; the others go on. Progress is
//! kept in `tar.json` after every module; a re-run keeps tarballs already
//! written (same size as recorded) and packs the rest.

use crate::archive::{file_sha256, pack};
use crate::build::{BuildOutcome, BuildResult};
use crate::context::{io_at, now, Context, Header, NodeError};
use crate::layout::{read_json, write_json};
use ebfleet_core::names::ModuleName;
use ebfleet_core::step::Step;
use serde::{Deserialize, Serialize};

/// A file's size and lowercase hex sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum PackOutcome {
    Packed {
        tarball: FileSum,
        module_file: FileSum,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedModule {
    pub module: ModuleName,
    #[serde(flatten)]
    pub outcome: PackOutcome,
}

/// `tar.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarResult {
    #[serde(flatten)]
    pub header: Header,
    pub finished: Option<u64>,
    pub modules: Vec<PackedModule>,
}

/// The finished `build.json` of this batch, or why there is none.
pub fn finished_build(ctx: &Context, step: Step) -> Result<BuildResult, NodeError> {
    let path = ctx.state().result(Step::Build);
    match read_json::<BuildResult>(&path)? {
        Some(b) if b.finished.is_some() => Ok(b),
        Some(_) => Err(NodeError::Order {
            step,
            reason: format!(
                "{} says the build has not finished: run build first",
                path.display()
            ),
        }),
        None => Err(NodeError::Order {
            step,
            reason: format!("{} does not exist: run build first", path.display()),
        }),
    }
}

pub async fn run(ctx: &Context) -> Result<TarResult, NodeError> {
    // The batch file is read and checked again: each step stands alone.
    let batch = ctx.job.fetch(&ctx.store).await?;
    let ctx = &ctx.for_batch(&batch);
    let build = finished_build(ctx, Step::Tar)?;
    let ctx2 = ctx.clone();
    tokio::task::spawn_blocking(move || pack_all(&ctx2, &build))
        .await
        .map_err(|e| NodeError::Task {
            what: "tar".into(),
            detail: e.to_string(),
        })?
}

fn pack_all(ctx: &Context, build: &BuildResult) -> Result<TarResult, NodeError> {
    let state = ctx.state();
    let path = state.result(Step::Tar);
    let previous: Option<TarResult> = read_json(&path)?;
    let mut result = TarResult {
        header: previous
            .as_ref()
            .map_or_else(|| ctx.header(Step::Tar, now()), |p| p.header.clone()),
        finished: None,
        modules: Vec::new(),
    };
    let earlier = previous.map(|p| p.modules).unwrap_or_default();
    for mb in &build.modules {
        if !matches!(mb.outcome, BuildOutcome::Built { .. }) {
            continue;
        }
        let m = &mb.module;
        let tarball = state.tarball(m);
        let kept = earlier
            .iter()
            .find(|e| &e.module == m)
            .filter(|e| match &e.outcome {
                PackOutcome::Packed { tarball: t, .. } => {
                    std::fs::metadata(&tarball).is_ok_and(|md| md.len() == t.size)
                        && state.module_copy(m).is_file()
                }
                PackOutcome::Failed { .. } => false,
            });
        let outcome = match kept {
            Some(e) => e.outcome.clone(),
            None => pack_one(ctx, m)?,
        };
        if let PackOutcome::Failed { message } = &outcome {
            tracing::error!(module = %m, %message, "not packed");
        }
        result.modules.push(PackedModule {
            module: m.clone(),
            outcome,
        });
        write_json(&path, &result)?;
    }
    result.finished = Some(now());
    write_json(&path, &result)?;
    Ok(result)
}

fn pack_one(ctx: &Context, m: &ModuleName) -> Result<PackOutcome, NodeError> {
    let state = ctx.state();
    let tarball = state.tarball(m);
    let packed = match pack(&ctx.layout.install_dir(m), &m.install_subdir(), &tarball) {
        Ok(p) => p,
        Err(crate::archive::ArchiveError::Unpackable { path, reason }) => {
            return Ok(PackOutcome::Failed {
                message: format!("packing {}: {reason}", path.display()),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let copy = state.module_copy(m);
    let source = ctx.layout.module_file(m);
    std::fs::copy(&source, &copy).map_err(io_at(&source))?;
    let (size, sha256) = file_sha256(&copy)?;
    tracing::info!(module = %m, size = packed.size, entries = packed.entries, "packed");
    Ok(PackOutcome::Packed {
        tarball: FileSum {
            size: packed.size,
            sha256: packed.sha256,
        },
        module_file: FileSum { size, sha256 },
    })
}
