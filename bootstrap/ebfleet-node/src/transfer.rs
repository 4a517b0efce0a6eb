//! Moving files between the node and the bucket, verified and resumable.
//!
//! **Downloads** stream into `<file>.partial` while hashing, compare the
//! sha256 with the object's `sha256` metadata (written by [`upload_file`])
//! and with what the caller expects, and only then rename into place: a
//! file at its final path is always complete and verified.
//!
//! **Uploads** first ask S3 for the object's head: an object already there
//! with the same size and `sha256` metadata is not sent again, so a re-run
//! uploads nothing twice. Files from [`UploadOptions::multipart_threshold`]
//! on go in parts, each with its SHA-256 for S3 to check. The upload's id
//! and every part S3 acknowledged (number, ETag, checksum) are recorded in
//! the batch's state directory as they complete, so a re-run after a crash
//! sends only the parts not recorded yet; an upload S3 no longer knows
//! (aborted by a lifecycle rule) starts over. The record is of the whole
//! file's sha256: a file that changed since is uploaded afresh. (S3's
//! ListParts would do as the record too, but moto answers it with a
//! `ListPartsResponse` root the Rust SDK refuses; the local record needs
//! no call at all.)

use crate::archive::{hex, HashingWriter};
use crate::layout::{partial, read_json, write_json, StateError};
use ebfleet_aws::s3::{Part, S3Error, Store, Upload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("s3://{bucket}/{key}: has no sha256 metadata, so its content cannot be verified")]
    NoChecksum { bucket: String, key: String },
    #[error("s3://{bucket}/{key}: downloaded sha256 {got}, but {source_of_truth} says {expected}")]
    Mismatch {
        bucket: String,
        key: String,
        got: String,
        expected: String,
        source_of_truth: &'static str,
    },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub size: u64,
    pub sha256: String,
    pub metadata: BTreeMap<String, String>,
}

/// What to check a download against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify<'a> {
    /// The object's `sha256` metadata must exist and match.
    Metadata,
    /// This sha256 must match, and the metadata too when it exists.
    Sha256(&'a str),
    /// The metadata when it exists (sources put in the bucket by hand).
    MetadataIfAny,
}

/// Download `key` to `dest` (through `dest.partial`), verified.
pub async fn download(
    store: &Store,
    key: &str,
    dest: &Path,
    verify: Verify<'_>,
) -> Result<Downloaded, TransferError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    let tmp = partial(dest);
    // Whatever is at the temporary name (a crashed download's file, or a
    // build's symlink) is removed, not written through.
    let _ = std::fs::remove_file(&tmp);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    let mut w = HashingWriter::new(std::io::BufWriter::new(file));
    let head = match store.get_to_writer(key, &mut w).await {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    let (buf, size, sha256) = w.finish();
    drop(buf);
    let mismatch = |expected: &str, source_of_truth| TransferError::Mismatch {
        bucket: store.bucket().to_string(),
        key: key.to_string(),
        got: sha256.clone(),
        expected: expected.to_string(),
        source_of_truth,
    };
    let check = match (verify, head.sha256.as_deref()) {
        (_, Some(meta)) if meta != sha256 => Err(mismatch(meta, "its sha256 metadata")),
        (Verify::Sha256(want), _) if want != sha256 => Err(mismatch(want, "the batch file")),
        (Verify::Metadata, None) => Err(TransferError::NoChecksum {
            bucket: store.bucket().to_string(),
            key: key.to_string(),
        }),
        _ => Ok(()),
    };
    if let Err(e) = check {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dest).map_err(io_at(dest))?;
    Ok(Downloaded {
        size,
        sha256,
        metadata: head.metadata,
    })
}

/// How files are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Files of this size or more go in parts.
    pub multipart_threshold: u64,
    /// The smallest part (S3 wants at least 5 MiB but for the last); parts
    /// grow when a file would need more than [`MAX_PARTS`].
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
}

/// S3's most parts per upload is 10,000; keep a margin.
pub const MAX_PARTS: u64 = 9_000;

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            concurrency: 4,
        }
    }
}

impl UploadOptions {
    /// The part size for a file of `size` bytes.
    pub fn part_size_for(&self, size: u64) -> u64 {
        let min = size.div_ceil(MAX_PARTS);
        self.part_size.max(min.next_multiple_of(1 << 20))
    }
}

/// What an upload came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uploaded {
    /// Sent now: bytes and parts sent by this run (a resumed upload sends
    /// fewer than the file's size).
    Sent { bytes: u64, parts: u32 },
    /// The object was already there with this content.
    AlreadyThere,
}

/// A multipart upload in flight, kept in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InFlight {
    key: String,
    upload_id: String,
    sha256: String,
    size: u64,
    part_size: u64,
    /// Parts S3 acknowledged.
    parts: Vec<DonePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DonePart {
    number: i32,
    etag: String,
    checksum_sha256: Option<String>,
    size: u64,
}

impl From<&Part> for DonePart {
    fn from(p: &Part) -> Self {
        DonePart {
            number: p.number,
            etag: p.etag.clone(),
            checksum_sha256: p.checksum_sha256.clone(),
            size: p.size,
        }
    }
}

impl From<&DonePart> for Part {
    fn from(p: &DonePart) -> Self {
        Part {
            number: p.number,
            etag: p.etag.clone(),
            checksum_sha256: p.checksum_sha256.clone(),
            size: p.size,
        }
    }
}

/// Where the multipart state of `key` lives.
fn inflight_path(dir: &Path, key: &str) -> PathBuf {
    let h = hex(&Sha256::digest(key.as_bytes()));
    dir.join(format!("{}.json", &h[..32]))
}

/// Upload `path` to `key` unless it is there already with the same
/// content. `upload.sha256` must be the file's; `state` is the directory
/// for multipart uploads in flight.
pub async fn upload_file(
    store: &Store,
    key: &str,
    path: &Path,
    upload: &Upload,
    opts: &UploadOptions,
    state: &Path,
) -> Result<Uploaded, TransferError> {
    upload_file_parts(store, key, path, upload, opts, state, None).await
}

/// [`upload_file`], stopping after `stop_after` parts of a multipart upload
/// (the upload stays in flight, as after a crash); for the crash tests.
#[doc(hidden)]
pub async fn upload_file_parts(
    store: &Store,
    key: &str,
    path: &Path,
    upload: &Upload,
    opts: &UploadOptions,
    state: &Path,
    stop_after: Option<usize>,
) -> Result<Uploaded, TransferError> {
    let size = std::fs::metadata(path).map_err(io_at(path))?.len();
    if let Some(head) = store.head(key).await? {
        if head.size == size && head.sha256.as_deref() == Some(upload.sha256.as_str()) {
            tracing::debug!(key, "already in the bucket");
            return Ok(Uploaded::AlreadyThere);
        }
    }
    if size < opts.multipart_threshold {
        store.put_file(key, path, upload).await?;
        return Ok(Uploaded::Sent {
            bytes: size,
            parts: 1,
        });
    }
    multipart(store, key, path, upload, opts, state, size, stop_after).await
}

#[allow(clippy::too_many_arguments)]
async fn multipart(
    store: &Store,
    key: &str,
    path: &Path,
    upload: &Upload,
    opts: &UploadOptions,
    state: &Path,
    size: u64,
    stop_after: Option<usize>,
) -> Result<Uploaded, TransferError> {
    let record_path = inflight_path(state, key);
    let part_size = opts.part_size_for(size);
    let count = size.div_ceil(part_size) as i32;
    let previous: Option<InFlight> = read_json(&record_path)?;
    let mut record = match previous.filter(|p| {
        p.key == key && p.sha256 == upload.sha256 && p.size == size && p.part_size == part_size
    }) {
        Some(p) => {
            tracing::info!(
                key,
                held = p.parts.len(),
                of = count,
                "resuming multipart upload"
            );
            p
        }
        None => {
            let upload_id = store.create_multipart(key, upload).await?;
            let r = InFlight {
                key: key.to_string(),
                upload_id,
                sha256: upload.sha256.clone(),
                size,
                part_size,
                parts: Vec::new(),
            };
            write_json(&record_path, &r)?;
            r
        }
    };
    let held: std::collections::BTreeSet<i32> = record.parts.iter().map(|p| p.number).collect();
    let mut todo: Vec<i32> = (1..=count).filter(|n| !held.contains(n)).collect();
    if let Some(limit) = stop_after {
        todo.truncate(limit);
    }
    let (mut sent_bytes, mut sent_parts) = (0u64, 0u32);
    // Parts in flight at once, each read when its turn comes; each
    // acknowledged part is recorded before the next is counted.
    let mut set = tokio::task::JoinSet::new();
    let mut queue = todo.into_iter();
    let mut failure = None;
    loop {
        while failure.is_none() && set.len() < opts.concurrency.max(1) {
            let Some(n) = queue.next() else { break };
            let (bytes, sha) = read_part(path, n, part_size)?;
            let store = store.clone();
            let (key, id) = (key.to_string(), record.upload_id.clone());
            set.spawn(async move { store.upload_part(&key, &id, n, bytes, &sha).await });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(part)) => {
                sent_bytes += part.size;
                sent_parts += 1;
                record.parts.retain(|p| p.number != part.number);
                record.parts.push(DonePart::from(&part));
                write_json(&record_path, &record)?;
            }
            Ok(Err(e)) => failure = failure.or(Some(TransferError::from(e))),
            Err(e) => {
                failure = failure.or(Some(TransferError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e),
                }))
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if record.parts.len() < count as usize {
        // Stopped on purpose (a crash test): the upload stays in flight.
        return Ok(Uploaded::Sent {
            bytes: sent_bytes,
            parts: sent_parts,
        });
    }
    let parts: Vec<Part> = record.parts.iter().map(Part::from).collect();
    if let Err(e) = store
        .complete_multipart(key, &record.upload_id, &parts)
        .await
    {
        // An answer that will not change (the upload is gone, a part is
        // not what the record says): forget the record, the next run
        // starts over. Throttling keeps it for a plain retry.
        if !e.is_retryable() {
            let _ = std::fs::remove_file(&record_path);
        }
        return Err(e.into());
    }
    let _ = std::fs::remove_file(&record_path);
    Ok(Uploaded::Sent {
        bytes: sent_bytes,
        parts: sent_parts,
    })
}

/// Part `n` (1-based) of the file and its hex sha256.
fn read_part(path: &Path, n: i32, part_size: u64) -> Result<(Vec<u8>, String), TransferError> {
    let mut f = std::fs::File::open(path).map_err(io_at(path))?;
    let start = (n as u64 - 1) * part_size;
    f.seek(SeekFrom::Start(start)).map_err(io_at(path))?;
    let mut bytes = Vec::with_capacity(part_size as usize);
    f.take(part_size)
        .read_to_end(&mut bytes)
        .map_err(io_at(path))?;
    let sha = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_for_huge_files() {
        let o = UploadOptions::default();
        assert_eq!(o.part_size_for(100 << 20), 16 << 20);
        let huge = 1u64 << 40; // 1 TiB
        let p = o.part_size_for(huge);
        assert!(huge.div_ceil(p) <= MAX_PARTS, "{p}");
        assert_eq!(p % (1 << 20), 0);
    }

    #[test]
    fn parts_cover_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let data: Vec<u8> = (0..2_500u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &data).unwrap();
        let mut all = Vec::new();
        for n in 1..=3 {
            let (bytes, sha) = read_part(&f, n, 1_000).unwrap();
            assert_eq!(sha, hex(&Sha256::digest(&bytes)));
            all.extend(bytes);
        }
        assert_eq!(all, data);
        assert_ne!(
            inflight_path(dir.path(), "a"),
            inflight_path(dir.path(), "b")
        );
    }
}
