//! `sync`: put on the node what its batch's builds read, and nothing else.
//!
//! 0. The batch's leases file (`<batch>.leases.json`, written by the
//!    `Lease` state), when there is one: checked to be this batch's and
//!    kept in the state directory, where `build` reads which modules it
//!    may build. Without one every module of the batch may be built (a
//!    state machine without the `Lease` state).
//! 1. The batch's easyconfigs, each checked against the sha256 the planner
//!    put in the batch file, into `easyconfigs/<letter>/<Name>/`, with the
//!    patches beside them in the bucket.
//! 2. The batch's `needs` — the already-built modules its builds load —
//!    in parallel (`--jobs`): each tarball's head gives its sha256 (the
//!    `sha256` metadata `upload` wrote); a module whose installed marker
//!    holds that sha256 is skipped, anything else is downloaded, verified,
//!    unpacked (see [`crate::archive`]) and its module file fetched and
//!    verified the same way; the marker is written last. A need whose
//!    tarball is not in the bucket is no error: a module that failed (or
//!    was left to another execution) in an earlier batch is never
//!    uploaded, and its dependents here are reported skipped by `build`
//!    while the rest of the batch is built. It is listed in `sync.json`
//!    as `missing_needs`. Anything else wrong with a need — a tarball
//!    without its `sha256`, a checksum that does not match, an archive
//!    that would unpack outside its module — still fails the step.
//! 3. The sources the bucket already holds for the batch's software
//!    (`sources/<letter>/<Name>/`), so EasyBuild does not fetch them again.
//!
//! Re-running after a crash redoes only what has no marker or file yet.

use crate::context::{io_at, now, Context, Header, NodeError};
use crate::layout::{read_json, write_json};
use crate::transfer::{download, Verify};
use ebfleet_aws::kms::signature_bytes;
use ebfleet_aws::s3::ObjectInfo;
use ebfleet_aws::s3::{ObjectHead, S3Error};
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::lease::{leases_key, BatchLeases};
use ebfleet_core::names::ModuleName;
use ebfleet_core::record::{tarball_statement, SIGNATURE_METADATA};
use ebfleet_core::step::Step;
use ebfleet_core::wire::{BatchFile, BatchNeed};
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
    /// Needs whose tarball is not in the bucket (not built by an earlier
    /// batch), sorted; `build` skips the modules that need them.
    #[serde(default)]
    pub missing_needs: Vec<ModuleName>,
    /// The leases file read, when the batch has one (kept as
    /// `leases.json` in the state directory).
    #[serde(default)]
    pub leases_key: Option<String>,
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
    let ctx = &ctx.for_batch(&batch);
    // `build` trusts sync.json (missing needs, leases): none until this
    // run has finished.
    let done = ctx.state().result(Step::Sync);
    match std::fs::remove_file(&done) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&done)(e)),
        _ => {}
    }
    let mut result = SyncResult {
        header: ctx.header(Step::Sync, started),
        finished: started,
        easyconfigs: Tally::default(),
        needs: Tally::default(),
        sources: Tally::default(),
        bytes_downloaded: 0,
        missing_needs: Vec::new(),
        leases_key: None,
    };
    result.leases_key = leases(ctx, &batch)
        .await?
        .map(|_| leases_key(&batch.execution, &batch.platform, batch.batch));
    easyconfigs(ctx, &batch, &mut result.easyconfigs).await?;
    result.missing_needs = needs(ctx, &batch, &mut result.needs).await?;
    sources(ctx, &batch, &mut result.sources).await?;
    result.bytes_downloaded = result.easyconfigs.bytes + result.needs.bytes + result.sources.bytes;
    result.finished = now();
    write_json(&done, &result)?;
    tracing::info!(
        needs_downloaded = result.needs.downloaded,
        needs_present = result.needs.already_present,
        needs_missing = result.missing_needs.len(),
        leases = result.leases_key.is_some(),
        bytes = result.bytes_downloaded,
        "sync done"
    );
    Ok(result)
}

/// Fetch the batch's leases file into the state directory and return it;
/// `None` (and no local copy) when the bucket has none. A file that does
/// not parse, or is another batch's, is refused.
async fn leases(ctx: &Context, batch: &BatchFile) -> Result<Option<BatchLeases>, NodeError> {
    let key = leases_key(&batch.execution, &batch.platform, batch.batch);
    let local = ctx.state().leases();
    let bytes = match ctx.store.get_bytes(&key).await {
        Ok(b) => b,
        Err(S3Error::NotFound { .. }) => {
            tracing::info!(%key, "no leases file: every module of the batch may be built");
            match std::fs::remove_file(&local) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&local)(e)),
                _ => {}
            }
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let leases = parse_leases(&bytes, batch).map_err(|reason| NodeError::Leases {
        bucket: ctx.store.bucket().to_string(),
        key: key.clone(),
        reason,
    })?;
    write_json(&local, &leases)?;
    tracing::info!(
        %key,
        leased = leases.leased.len(),
        held = leases.held.len(),
        already_built = leases.already_built.len(),
        "leases"
    );
    Ok(Some(leases))
}

/// A leases file's bytes, checked to be `batch`'s. Pure.
pub fn parse_leases(bytes: &[u8], batch: &BatchFile) -> Result<BatchLeases, String> {
    let l: BatchLeases =
        serde_json::from_slice(bytes).map_err(|e| format!("not a leases file: {e}"))?;
    let mismatch = |what: &str, theirs: String, ours: String| {
        Err(format!(
            "its {what} is {theirs}, but the batch file's is {ours}"
        ))
    };
    if l.execution != batch.execution {
        return mismatch(
            "execution",
            l.execution.to_string(),
            batch.execution.to_string(),
        );
    }
    if l.platform != batch.platform {
        return mismatch(
            "platform",
            l.platform.to_string(),
            batch.platform.to_string(),
        );
    }
    if l.batch != batch.batch {
        return mismatch("batch", l.batch.to_string(), batch.batch.to_string());
    }
    Ok(l)
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

/// Sync every need; the ones whose tarball is not in the bucket, sorted.
async fn needs(
    ctx: &Context,
    batch: &BatchFile,
    tally: &mut Tally,
) -> Result<Vec<ModuleName>, NodeError> {
    let limit = Arc::new(tokio::sync::Semaphore::new(ctx.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for need in batch.needs.clone() {
        let ctx = ctx.clone();
        let signing_key = batch.signing_key.clone();
        let limit = Arc::clone(&limit);
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let module = need.module.clone();
            match sync_need(&ctx, &need, signing_key.as_deref()).await {
                Ok(synced) => Ok((module, synced)),
                Err(e) => Err((module, e)),
            }
        });
    }
    let mut first_error = None;
    let mut missing = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((_, NeedSynced::Installed(bytes)))) => tally.add(bytes),
            Ok(Ok((module, NeedSynced::Missing { key }))) => {
                tracing::warn!(
                    %module,
                    %key,
                    "need is not in the bucket (not built by an earlier batch): what needs it will be skipped"
                );
                missing.push(module);
            }
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
    if let Some(e) = first_error {
        return Err(e);
    }
    missing.sort();
    Ok(missing)
}

/// What became of one need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeedSynced {
    /// `None` when already installed from the same tarball, else the bytes
    /// downloaded.
    Installed(Option<u64>),
    /// The tarball is not in the bucket.
    Missing { key: String },
}

/// A need's tarball as its head says: `Ok(None)` when there is no such
/// object (the need is missing), its sha256 when there is, an error when
/// the object is there without one. Pure.
pub fn need_checksum(
    head: Option<&ObjectHead>,
    bucket: &str,
    key: &str,
) -> Result<Option<String>, NodeError> {
    let Some(head) = head else {
        return Ok(None);
    };
    head.sha256.clone().map(Some).ok_or_else(|| {
        NodeError::Transfer(crate::transfer::TransferError::NoChecksum {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    })
}

/// Whether the need's tarball carries `signing_key`'s signature of its key
/// and `sha256` (Record signs what it promoted, [`tarball_statement`]).
async fn verify_signature(
    ctx: &Context,
    need: &BatchNeed,
    head: &ObjectHead,
    sha256: &str,
    signing_key: &str,
) -> Result<(), NodeError> {
    let key = format!("s3://{}/{}", ctx.store.bucket(), need.tarball_key);
    let refused = |why: &str| NodeError::NotSigned {
        module: need.module.to_string(),
        key: key.clone(),
        signing_key: signing_key.to_string(),
        why: why.to_string(),
    };
    let signature = head
        .metadata
        .get(SIGNATURE_METADATA)
        .ok_or_else(|| refused("it carries no signature"))?;
    let signature =
        signature_bytes(signature).ok_or_else(|| refused("its signature is no base64"))?;
    let statement = tarball_statement(&need.tarball_key, sha256);
    match ctx.kms.verify(signing_key, &statement, &signature).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refused("its signature does not verify")),
        Err(source) => Err(NodeError::Verify {
            module: need.module.to_string(),
            key: key.clone(),
            source: Box::new(source),
        }),
    }
}

/// One need: installed (or already there), or missing from the bucket.
/// With a `signing_key`, a tarball not signed by it is refused before
/// anything is downloaded.
async fn sync_need(
    ctx: &Context,
    need: &BatchNeed,
    signing_key: Option<&str>,
) -> Result<NeedSynced, NodeError> {
    let m = &need.module;
    let head = ctx.store.head(&need.tarball_key).await?;
    let sha = need_checksum(head.as_ref(), ctx.store.bucket(), &need.tarball_key)?;
    let (Some(head), Some(sha)) = (head, sha) else {
        return Ok(NeedSynced::Missing {
            key: need.tarball_key.clone(),
        });
    };
    // The object says its own checksum; the record says which tarball was
    // built. A differing one is not downloaded, and the download is checked
    // against the record's (the same) digest.
    if let Some(recorded) = need.tarball_sha256.as_ref().filter(|r| **r != sha) {
        return Err(NodeError::NotTheRecordedTarball {
            module: m.to_string(),
            key: format!("s3://{}/{}", ctx.store.bucket(), need.tarball_key),
            recorded: recorded.clone(),
            found: sha,
        });
    }
    // A need from an overlay's base unpacks into the base's stack.
    let layout = if need.from_base {
        ctx.layout.base()
    } else {
        ctx.layout.clone()
    };
    let marker_path = layout.installed_marker(m);
    let marker: Option<Installed> = read_json(&marker_path)?;
    let install_dir = layout.install_dir(m);
    let module_file = layout.module_file(m);
    if marker.is_some_and(|k| k.tarball_sha256 == sha && k.tarball_key == need.tarball_key)
        && install_dir.is_dir()
        && module_file.is_file()
    {
        tracing::debug!(module = %m, "already installed");
        return Ok(NeedSynced::Installed(None));
    }
    if let Some(key) = signing_key {
        verify_signature(ctx, need, &head, &sha, key).await?;
    }
    if let Some(theirs) = head.metadata.get(INSTALLPATH_METADATA) {
        let ours = layout.installpath();
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
    let software = layout.software();
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
    Ok(NeedSynced::Installed(Some(got.size + module.size)))
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
mod tests;
