//! `upload`: publish what the batch produced, the manifest last.
//!
//! In order: each packed module's tarball (metadata `sha256`, `installpath`)
//! and then its module file (metadata `sha256`); the sources EasyBuild
//! fetched that the shared `sources/` does not hold yet; every module's
//! logs (failed ones too) under `<platform>/logs/<Name>/<version>/<execution>/`;
//! then the batch manifest, validated as the record Lambda validates it.
//! A module that failed, was skipped or could not be packed publishes no
//! tarball and no module file — only its logs.
//!
//! Every object is sent through [`crate::transfer::upload_file`]: one
//! already in the bucket with the same size and sha256 is not sent again,
//! a multipart upload resumes from the parts S3 holds. The manifest is kept
//! in the state directory once written, with its `finished` time, so a
//! re-run produces the same bytes and skips it too. Since the manifest goes
//! last, a manifest in the bucket means everything it names is there.

use crate::context::{io_at, now, Context, Header, NodeError};
use crate::layout::{read_json, write_atomic, write_json, StateDir};
use crate::manifest::{log_key, manifest, NodeFacts};
use crate::pack::{finished_build, FileSum, PackOutcome, TarResult};
use crate::sync::{safe_relative, Installed, INSTALLPATH_METADATA};
use crate::transfer::{upload_file, Uploaded};
use ebfleet_aws::s3::Upload;
use ebfleet_core::layout::{module_file_key_under, tarball_key, tarball_key_under};
use ebfleet_core::manifest::{BatchManifest, Outcome};
use ebfleet_core::step::Step;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Counts of one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub sent: u32,
    pub already_there: u32,
    pub bytes: u64,
}

impl Sent {
    fn add(&mut self, u: Uploaded) {
        match u {
            Uploaded::Sent { bytes, .. } => {
                self.sent += 1;
                self.bytes += bytes;
            }
            Uploaded::AlreadyThere => self.already_there += 1,
        }
    }
}

/// `upload.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResult {
    #[serde(flatten)]
    pub header: Header,
    pub finished: u64,
    pub manifest_key: String,
    pub tarballs: Sent,
    pub module_files: Sent,
    pub sources: Sent,
    pub logs: Sent,
    pub manifest: Sent,
    pub built: usize,
    pub failed: usize,
    pub skipped: usize,
}

fn upload_of(content_type: &str, sum: &FileSum, extra: &[(&str, String)]) -> Upload {
    Upload {
        content_type: content_type.to_string(),
        sha256: sum.sha256.clone(),
        metadata: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

pub async fn run(ctx: &Context) -> Result<UploadResult, NodeError> {
    let batch = ctx.job.fetch(&ctx.store).await?;
    let ctx = &ctx.for_batch(&batch);
    let build = finished_build(ctx, Step::Upload)?;
    let state = ctx.state();
    let tar: TarResult = match read_json::<TarResult>(&state.result(Step::Tar))? {
        Some(t) if t.finished.is_some() => t,
        _ => {
            return Err(NodeError::Order {
                step: Step::Upload,
                reason: format!(
                    "{} is missing or unfinished: run tar first",
                    state.result(Step::Tar).display()
                ),
            })
        }
    };
    let started = now();
    let mut result = UploadResult {
        header: ctx.header(Step::Upload, started),
        finished: started,
        manifest_key: batch.staged_manifest_key(),
        tarballs: Sent::default(),
        module_files: Sent::default(),
        sources: Sent::default(),
        logs: Sent::default(),
        manifest: Sent::default(),
        built: 0,
        failed: 0,
        skipped: 0,
    };
    let multipart = state.multipart();
    let installpath = ctx.layout.installpath().display().to_string();
    // Everything but sources goes to the unit's staging prefix: Record
    // verifies it and promotes it into the platform's.
    let staging = batch.staging_prefix();

    // 1. Tarballs, then each one's module file; the installed marker once
    //    both are in the bucket (a later batch on this node skips them).
    for p in &tar.modules {
        let PackOutcome::Packed {
            tarball,
            module_file,
        } = &p.outcome
        else {
            continue;
        };
        let m = &p.module;
        let tkey = tarball_key_under(&staging, m);
        let up = upload_of(
            "application/zstd",
            tarball,
            &[
                (INSTALLPATH_METADATA, installpath.clone()),
                ("module", m.to_string()),
            ],
        );
        result.tarballs.add(
            upload_file(
                &ctx.store,
                &tkey,
                &state.tarball(m),
                &up,
                &ctx.upload,
                &multipart,
            )
            .await?,
        );
        let mkey = module_file_key_under(&staging, m);
        let up = upload_of("text/x-lua", module_file, &[("module", m.to_string())]);
        result.module_files.add(
            upload_file(
                &ctx.store,
                &mkey,
                &state.module_copy(m),
                &up,
                &ctx.upload,
                &multipart,
            )
            .await?,
        );
        write_json(
            &ctx.layout.installed_marker(m),
            &Installed {
                module: m.clone(),
                // Where Record promotes it: what a later unit's need names.
                tarball_key: tarball_key(&batch.platform, m),
                tarball_sha256: tarball.sha256.clone(),
                module_file_sha256: module_file.sha256.clone(),
            },
        )?;
    }

    // 2. Sources EasyBuild fetched for the batch's software.
    for prefix in batch.source_prefixes() {
        let dir = ctx.layout.source_dir(&prefix);
        for rel in files_under(&dir)? {
            let rel_str = rel.to_string_lossy().into_owned();
            if safe_relative(&rel_str).is_none() {
                tracing::warn!(file = %dir.join(&rel).display(), "not uploading a source whose name is not safe as a key");
                continue;
            }
            let key = format!("{prefix}{rel_str}");
            if ctx.store.head(&key).await?.is_some() {
                // Shared by every platform: never overwritten.
                result.sources.add(Uploaded::AlreadyThere);
                continue;
            }
            let path = dir.join(&rel);
            let (size, sha256) = crate::archive::file_sha256(&path)?;
            let up = upload_of("application/octet-stream", &FileSum { size, sha256 }, &[]);
            result
                .sources
                .add(upload_file(&ctx.store, &key, &path, &up, &ctx.upload, &multipart).await?);
        }
    }

    // 3. Logs of every module, failed ones too.
    for mb in &build.modules {
        let dir = state.logs(&mb.module);
        for rel in files_under(&dir)? {
            let name = rel.to_string_lossy().into_owned();
            if rel.components().count() != 1 || safe_relative(&name).is_none() {
                continue;
            }
            let path = dir.join(&rel);
            let (size, sha256) = crate::archive::file_sha256(&path)?;
            let up = upload_of("text/plain", &FileSum { size, sha256 }, &[]);
            let key = log_key(&batch, &mb.module, &name);
            result
                .logs
                .add(upload_file(&ctx.store, &key, &path, &up, &ctx.upload, &multipart).await?);
        }
    }

    // 4. The manifest, last.
    let facts = NodeFacts {
        instance_type: ctx
            .node
            .get("EBFLEET_INSTANCE_TYPE")
            .unwrap_or("unknown")
            .to_string(),
        archspec: ctx
            .node
            .get("EBFLEET_ARCHSPEC")
            .unwrap_or(&batch.archspec)
            .to_string(),
    };
    let finished = previous_finished(&state)?.unwrap_or_else(now);
    let m = manifest(&batch, &build, &tar, &facts, finished);
    m.validate().map_err(|e| NodeError::Order {
        step: Step::Upload,
        reason: format!("the manifest would be refused: {e}"),
    })?;
    for e in &m.modules {
        match e.outcome {
            Outcome::Built { .. } => result.built += 1,
            Outcome::Failed { .. } => result.failed += 1,
            Outcome::Skipped { .. } => result.skipped += 1,
        }
    }
    let text = m.to_json();
    let path = state.manifest();
    write_atomic(&path, text.as_bytes())?;
    let sum = FileSum {
        size: text.len() as u64,
        sha256: ebfleet_core::checksum::sha256_hex(text.as_bytes()),
    };
    let up = upload_of("application/json", &sum, &[]);
    result.manifest.add(
        upload_file(
            &ctx.store,
            &result.manifest_key,
            &path,
            &up,
            &ctx.upload,
            &multipart,
        )
        .await?,
    );
    result.finished = now();
    write_json(&state.result(Step::Upload), &result)?;
    tracing::info!(
        manifest = %result.manifest_key,
        built = result.built,
        failed = result.failed,
        skipped = result.skipped,
        "upload done"
    );
    Ok(result)
}

/// The `finished` time of a manifest written by an earlier run.
fn previous_finished(state: &StateDir) -> Result<Option<u64>, NodeError> {
    let path = state.manifest();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(serde_json::from_str::<BatchManifest>(&text)
            .ok()
            .map(|m| m.finished)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(&path)(e)),
    }
}

/// Regular files under `dir`, relative, sorted; none when it does not exist.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, NodeError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for e in std::fs::read_dir(&abs).map_err(io_at(&abs))? {
            let e = e.map_err(io_at(&abs))?;
            let ft = e.file_type().map_err(io_at(&abs))?;
            let child = rel.join(e.file_name());
            if ft.is_dir() {
                stack.push(child);
            } else if ft.is_file() && !e.file_name().to_string_lossy().ends_with(".partial") {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
