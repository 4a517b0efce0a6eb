//! `sync`: put on the node what its batch's builds read, and nothing else.
//!
//! 1. The batch's easyconfigs, each checked against the sha256 the planner
//!    put in the batch file, into `easyconfigs/<letter>/<Name>/`, with the
//!    patches beside them in the bucket.
//! 2. The batch's `needs` — the already-built modules its builds load —
//!    in parallel (`--jobs`): each tarball's head gives its sha256 (the
//!    `sha256` metadata `upload` wrote); a module whose installed marker
//!    holds that sha256 is skipped, anything else is downloaded, verified,
//!    unpacked (see [`crate::archive`]) and its module file fetched and
//!    verified the same way; the marker is written last.
//! 3. The sources the bucket already holds for the batch's software
//!    (`sources/<letter>/<Name>/`), so EasyBuild does not fetch them again.
//!
//! Re-running after a crash redoes only what has no marker or file yet.

use crate::context::{io_at, now, Context, Header, NodeError};
use crate::layout::{read_json, write_json};
use crate::transfer::{download, Verify};
use ebfleet_aws::s3::ObjectInfo;
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::keys::{BatchFile, BatchNeed, ModuleName};
use ebfleet_core::step::Step;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metadata key of a tarball: the installpath it was built under.
pub const INSTALLPATH_METADATA: &str = "installpath";

/// Counts of one kind of file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub downloaded: u32,
    pub already_present: u32,
    /// Bytes downloaded by this run.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, downloaded: Option<u64>) {
        match downloaded {
            Some(b) => {
                self.downloaded += 1;
                self.bytes += b;
            }
            None => self.already_present += 1,
        }
    }
}

/// What `sync` did, printed and kept as `sync.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    #[serde(flatten)]
    pub header: Header,
    pub finished: u64,
    pub easyconfigs: Tally,
    /// Tarballs and module files of the needs.
    pub needs: Tally,
    pub sources: Tally,
    /// Everything downloaded by this run.
    pub bytes_downloaded: u64,
}

/// What an installed marker holds: the module came from this tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub module: ModuleName,
    pub tarball_key: String,
    pub tarball_sha256: String,
    pub module_file_sha256: String,
}

pub async fn run(ctx: &Context) -> Result<SyncResult, NodeError> {
    let started = now();
    let batch = ctx.job.fetch(&ctx.store).await?;
    let mut result = SyncResult {
        header: ctx.header(Step::Sync, started),
        finished: started,
        easyconfigs: Tally::default(),
        needs: Tally::default(),
        sources: Tally::default(),
        bytes_downloaded: 0,
    };
    easyconfigs(ctx, &batch, &mut result.easyconfigs).await?;
    needs(ctx, &batch, &mut result.needs).await?;
    sources(ctx, &batch, &mut result.sources).await?;
    result.bytes_downloaded = result.easyconfigs.bytes + result.needs.bytes + result.sources.bytes;
    result.finished = now();
    write_json(&ctx.state().result(Step::Sync), &result)?;
    tracing::info!(
        needs_downloaded = result.needs.downloaded,
        needs_present = result.needs.already_present,
        bytes = result.bytes_downloaded,
        "sync done"
    );
    Ok(result)
}

/// A key's part under a prefix as a relative path of safe segments
/// (letters, digits, `. _ + - ~ = , @`, no `.`/`..`, no empty segment), or
/// `None` for a key that must not become a path.
pub fn safe_relative(rel: &str) -> Option<PathBuf> {
    let ok = !rel.is_empty()
        && rel.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'_' | b'+' | b'-' | b'~' | b'=' | b',' | b'@')
                })
        });
    ok.then(|| PathBuf::from(rel))
}

async fn easyconfigs(ctx: &Context, batch: &BatchFile, tally: &mut Tally) -> Result<(), NodeError> {
    let mut dirs = BTreeSet::new();
    for b in &batch.builds {
        let dest = ctx.layout.easyconfig(&b.easyconfig);
        let present = std::fs::read(&dest)
            .ok()
            .is_some_and(|bytes| sha256_hex(&bytes) == b.easyconfig_sha256);
        if present {
            tally.add(None);
        } else {
            let got = download(
                &ctx.store,
                &b.easyconfig_key,
                &dest,
                Verify::Sha256(&b.easyconfig_sha256),
            )
            .await?;
            tally.add(Some(got.size));
        }
        let key = &b.easyconfig_key;
        dirs.insert(key[..key.rfind('/').map_or(0, |i| i + 1)].to_string());
    }
    // Patches and other files beside the easyconfigs, one directory down.
    for dir in dirs {
        for o in ctx.store.list(&dir).await? {
            let rel = &o.key[dir.len()..];
            if rel.ends_with(".eb") || rel.contains('/') {
                continue;
            }
            let Some(rel) = safe_relative(rel) else {
                tracing::warn!(key = %o.key, "skipping a file whose name is not safe as a path");
                continue;
            };
            fetch_listed(ctx, &o, &ctx.layout.root().join(&dir).join(rel), tally).await?;
        }
    }
    Ok(())
}

async fn needs(ctx: &Context, batch: &BatchFile, tally: &mut Tally) -> Result<(), NodeError> {
    let limit = Arc::new(tokio::sync::Semaphore::new(ctx.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for need in batch.needs.clone() {
        let ctx = ctx.clone();
        let limit = Arc::clone(&limit);
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let module = need.module.to_string();
            sync_need(&ctx, &need).await.map_err(|e| (module, e))
        });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(bytes)) => tally.add(bytes),
            Ok(Err((module, e))) => {
                tracing::error!(%module, error = %e, "need failed");
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(NodeError::Task {
                    what: "sync".into(),
                    detail: e.to_string(),
                });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One need: `None` when already installed from the same tarball, else
/// the bytes downloaded.
async fn sync_need(ctx: &Context, need: &BatchNeed) -> Result<Option<u64>, NodeError> {
    let m = &need.module;
    let head = ctx
        .store
        .head(&need.tarball_key)
        .await?
        .ok_or_else(|| NodeError::NeedMissing {
            module: m.to_string(),
            bucket: ctx.store.bucket().to_string(),
            key: need.tarball_key.clone(),
        })?;
    let sha = head.sha256.clone().ok_or_else(|| {
        NodeError::Transfer(crate::transfer::TransferError::NoChecksum {
            bucket: ctx.store.bucket().to_string(),
            key: need.tarball_key.clone(),
        })
    })?;
    let marker_path = ctx.layout.installed_marker(m);
    let marker: Option<Installed> = read_json(&marker_path)?;
    let install_dir = ctx.layout.install_dir(m);
    let module_file = ctx.layout.module_file(m);
    if marker.is_some_and(|k| k.tarball_sha256 == sha && k.tarball_key == need.tarball_key)
        && install_dir.is_dir()
        && module_file.is_file()
    {
        tracing::debug!(module = %m, "already installed");
        return Ok(None);
    }
    if let Some(theirs) = head.metadata.get(INSTALLPATH_METADATA) {
        let ours = ctx.layout.installpath();
        if Path::new(theirs) != ours {
            return Err(NodeError::Installpath {
                module: m.to_string(),
                key: format!("s3://{}/{}", ctx.store.bucket(), need.tarball_key),
                theirs: theirs.clone(),
                ours: ours.display().to_string(),
            });
        }
    }
    let _ = std::fs::remove_file(&marker_path);
    let tarball = ctx
        .state()
        .downloads()
        .join(m.name())
        .join(format!("{}.tar.zst", m.version()));
    let got = download(
        &ctx.store,
        &need.tarball_key,
        &tarball,
        Verify::Sha256(&sha),
    )
    .await?;
    let software = ctx.layout.software();
    let subdir = m.install_subdir();
    let unpack_from = tarball.clone();
    tokio::task::spawn_blocking(move || crate::archive::unpack(&unpack_from, &software, &subdir))
        .await
        .map_err(|e| NodeError::Task {
            what: format!("unpacking {m}"),
            detail: e.to_string(),
        })??;
    let module = download(
        &ctx.store,
        &need.module_file_key,
        &module_file,
        Verify::Metadata,
    )
    .await?;
    write_json(
        &marker_path,
        &Installed {
            module: m.clone(),
            tarball_key: need.tarball_key.clone(),
            tarball_sha256: sha,
            module_file_sha256: module.sha256,
        },
    )?;
    std::fs::remove_file(&tarball).map_err(io_at(&tarball))?;
    tracing::info!(module = %m, bytes = got.size + module.size, "installed from the bucket");
    Ok(Some(got.size + module.size))
}

async fn sources(ctx: &Context, batch: &BatchFile, tally: &mut Tally) -> Result<(), NodeError> {
    for prefix in batch.source_prefixes() {
        for o in ctx.store.list(&prefix).await? {
            let Some(rel) = safe_relative(&o.key[prefix.len()..]) else {
                tracing::warn!(key = %o.key, "skipping a source whose name is not safe as a path");
                continue;
            };
            fetch_listed(ctx, &o, &ctx.layout.source_dir(&prefix).join(rel), tally).await?;
        }
    }
    Ok(())
}

/// Download a listed object to `dest` unless a file of its size is there
/// (patches and sources carry no checksum in the batch file).
async fn fetch_listed(
    ctx: &Context,
    o: &ObjectInfo,
    dest: &Path,
    tally: &mut Tally,
) -> Result<(), NodeError> {
    if std::fs::metadata(dest).is_ok_and(|m| m.len() == o.size) {
        tally.add(None);
        return Ok(());
    }
    let got = download(&ctx.store, &o.key, dest, Verify::MetadataIfAny).await?;
    tally.add(Some(got.size));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_relative_keys_become_paths() {
        for ok in [
            "hello-1.0.tar.gz",
            "extensions/numpy-1.26.tar.gz",
            "x_1.0+dfsg.orig.tar.xz",
            "v1.0~rc1.zip",
        ] {
            assert_eq!(safe_relative(ok), Some(PathBuf::from(ok)), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "x;id",
            "$(id).tgz",
            "a b",
            "x\ny",
            "`id`",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tally_counts_bytes_of_downloads_only() {
        let mut t = Tally::default();
        t.add(Some(10));
        t.add(None);
        t.add(Some(5));
        assert_eq!(
            t,
            Tally {
                downloaded: 2,
                already_present: 1,
                bytes: 15
            }
        );
    }
}
