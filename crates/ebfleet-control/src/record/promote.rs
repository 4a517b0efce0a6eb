//! Promote: what a unit's node staged (`staging/<platform>/<execution>/<unit>/`)
//! becomes the platform's only after Record has read it back. Each built
//! module's tarball is streamed and hashed here: published only when its
//! size and sha256 are the ones the node reported, copied (that exact S3
//! version) to the platform's key with the digest Record computed, and
//! recorded with the promoted object's version and the stack's key's
//! signature of its key and digest (also the object's `signature`
//! metadata, which a node's `sync` verifies). Its module file is copied
//! beside it; each module's logs go under the run's logs of the module.
//! Then the manifest, its keys now the platform's, is written where the
//! operator's tools read it. A node can write none of those keys.

use super::Error;
use crate::Env;
use ebfleet_aws::kms::signature_text;
use ebfleet_aws::s3::{ObjectHead, S3Error, Upload};
use ebfleet_core::checksum::Sha256Writer;
use ebfleet_core::layout::{
    log_prefix_under, module_file_key, module_file_key_under, run_log_prefix, tarball_key,
};
use ebfleet_core::manifest::{BatchManifest, Outcome, Verified};
use ebfleet_core::names::ModuleName;
use ebfleet_core::record::{tarball_statement, Tarball, SIGNATURE_METADATA};
use ebfleet_core::wire::BatchFile;
use std::collections::BTreeMap;

/// The largest module file promoted (Lmod files are a few KiB).
pub const MAX_MODULE_FILE_BYTES: u64 = 1024 * 1024;
/// Log files promoted per module; a node that stages more gets the first
/// ones in key order.
pub const MAX_LOG_FILES: usize = 32;
/// The largest log file promoted (EasyBuild's logs of a long build are
/// tens of MB); a bigger one stays in staging, where it expires.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024 * 1024;
/// The tarball's metadata a node's `sync` reads (the installation prefix
/// it was built for), carried over when short and printable.
const CARRIED_METADATA: &[&str] = &["installpath", "module"];

/// Verify and promote what `manifest` (checked against `unit`) staged;
/// the manifest to record and publish.
pub async fn promote(
    env: &Env,
    unit: &BatchFile,
    manifest: &BatchManifest,
    signing_key: &str,
) -> Result<BatchManifest, Error> {
    let staging = unit.staging_prefix();
    let mut verified = BTreeMap::new();
    for e in &manifest.modules {
        let Ok(module) = e.module.parse::<ModuleName>() else {
            continue;
        };
        if let Outcome::Built { tarball, .. } = &e.outcome {
            let v = promote_built(env, unit, &staging, &module, tarball, signing_key)
                .await
                .map_err(|source| Error::Promote {
                    module: e.module.clone(),
                    source: Box::new(source),
                })?;
            verified.insert(e.module.clone(), v);
        }
        promote_logs(env, unit, &staging, &module)
            .await
            .map_err(|source| Error::Promote {
                module: e.module.clone(),
                source: Box::new(source.into()),
            })?;
    }
    let published = manifest.promoted(&verified);
    let key = unit.manifest_key();
    env.store
        .put_json(&key, &published)
        .await
        .map_err(|source| Error::Publish { key, source })?;
    Ok(published)
}

/// Read the staged tarball back: refused unless it is what the node said;
/// else copied, with its module file, to the platform's keys.
async fn promote_built(
    env: &Env,
    unit: &BatchFile,
    staging: &str,
    module: &ModuleName,
    claimed: &Tarball,
    signing_key: &str,
) -> Result<Verified, Promotion> {
    let (head, size, sha256) = match digest(env, &claimed.key).await? {
        Some(found) => found,
        None => return Ok(Verified::Refused(format!("nothing at {}", claimed.key))),
    };
    if (size, sha256.as_str()) != (claimed.size, claimed.sha256.as_str()) {
        return Ok(Verified::Refused(format!(
            "{} holds {size} bytes of sha256 {sha256}; the node reported {} bytes of sha256 {}",
            claimed.key, claimed.size, claimed.sha256
        )));
    }
    let file_from = module_file_key_under(staging, module);
    let too_big = |size: u64| {
        Verified::Refused(format!(
            "{file_from} is {size} bytes, more than {MAX_MODULE_FILE_BYTES}"
        ))
    };
    match env.store.head(&file_from).await? {
        Some(h) if h.size > MAX_MODULE_FILE_BYTES => return Ok(too_big(h.size)),
        Some(_) => {}
        None => return Ok(Verified::Refused(format!("nothing at {file_from}"))),
    }
    let Some((file_head, file_size, file_sha256)) = digest(env, &file_from).await? else {
        return Ok(Verified::Refused(format!("nothing at {file_from}")));
    };
    if file_size > MAX_MODULE_FILE_BYTES {
        return Ok(too_big(file_size));
    }
    let file = Upload {
        content_type: "text/x-lua".into(),
        sha256: file_sha256,
        metadata: carried(&file_head),
    };
    let to = module_file_key(&unit.platform, module);
    copy_once(env, &file_from, &file_head, &to, file_size, &file).await?;
    let to = tarball_key(&unit.platform, module);
    let signature = env
        .kms
        .sign(signing_key, &tarball_statement(&to, &sha256))
        .await
        .map_err(Promotion::Sign)?;
    let mut metadata = carried(&head);
    metadata.insert(SIGNATURE_METADATA.into(), signature_text(&signature));
    let tarball = Upload {
        content_type: "application/zstd".into(),
        sha256: sha256.clone(),
        metadata,
    };
    let kept = copy_once(env, &claimed.key, &head, &to, size, &tarball).await?;
    Ok(Verified::Tarball(Tarball {
        key: to,
        size,
        sha256,
        version_id: kept.version_id,
        signature: kept.metadata.get(SIGNATURE_METADATA).cloned(),
    }))
}

/// Why a promotion stopped: S3 or KMS failed.
#[derive(Debug, thiserror::Error)]
pub enum Promotion {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("signing: {0}")]
    Sign(ebfleet_aws::CallError),
}

/// What the promoted key holds once [`copy_once`] is done: its version
/// and metadata.
struct Kept {
    version_id: Option<String>,
    metadata: BTreeMap<String, String>,
}

/// Copy the version of `from` that was read (`head`) to `to`, unless `to`
/// already holds those bytes, signed when they must be (Record run again
/// on the same unit): what `to` holds then.
async fn copy_once(
    env: &Env,
    from: &str,
    head: &ObjectHead,
    to: &str,
    size: u64,
    upload: &Upload,
) -> Result<Kept, S3Error> {
    if let Some(there) = env.store.head(to).await? {
        let same = there.size == size && there.sha256.as_deref() == Some(upload.sha256.as_str());
        let signed = !upload.metadata.contains_key(SIGNATURE_METADATA)
            || there.metadata.contains_key(SIGNATURE_METADATA);
        if same && signed {
            return Ok(Kept {
                version_id: there.version_id,
                metadata: there.metadata,
            });
        }
    }
    let version_id = env
        .store
        .copy_version(from, head.version_id.as_deref(), to, size, upload)
        .await?;
    Ok(Kept {
        version_id,
        metadata: upload.metadata.clone(),
    })
}

/// What of a staged object's metadata its promoted copy keeps.
fn carried(head: &ObjectHead) -> BTreeMap<String, String> {
    CARRIED_METADATA
        .iter()
        .filter_map(|k| {
            let v = head.metadata.get(*k)?;
            let ok = v.len() <= 512 && !v.chars().any(char::is_control);
            ok.then(|| (k.to_string(), v.clone()))
        })
        .collect()
}

/// The object's head, size and sha256 as read back, `None` when it is
/// not there.
async fn digest(env: &Env, key: &str) -> Result<Option<(ObjectHead, u64, String)>, S3Error> {
    let mut hasher = Sha256Writer::default();
    match env.store.get_to_writer(key, &mut hasher).await {
        Ok(head) => {
            let (size, sha256) = hasher.finish();
            Ok(Some((head, size, sha256)))
        }
        Err(S3Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Copy a module's staged log files (one level, at most [`MAX_LOG_FILES`])
/// under the run's logs of the module.
async fn promote_logs(
    env: &Env,
    unit: &BatchFile,
    staging: &str,
    module: &ModuleName,
) -> Result<(), S3Error> {
    let from = log_prefix_under(staging, module);
    let to = run_log_prefix(&unit.platform, module, &unit.execution);
    let files = env.store.list(&from).await?;
    // Logs are diagnostics, not verified: their copy carries no digest.
    let log_upload = Upload {
        content_type: "text/plain".into(),
        sha256: String::new(),
        metadata: BTreeMap::new(),
    };
    if files.len() > MAX_LOG_FILES {
        tracing::warn!(prefix = %from, files = files.len(), kept = MAX_LOG_FILES, "too many staged log files");
    }
    for f in files.iter().take(MAX_LOG_FILES) {
        let Some(name) = f.key.strip_prefix(&from).filter(|n| !n.contains('/')) else {
            continue;
        };
        if f.size > MAX_LOG_BYTES {
            tracing::warn!(key = %f.key, size = f.size, "a staged log file too big to promote");
            continue;
        }
        env.store
            .copy_version(&f.key, None, &format!("{to}{name}"), f.size, &log_upload)
            .await?;
    }
    Ok(())
}
