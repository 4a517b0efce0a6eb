//! Objects too big for memory: a file put in one request or in parts
//! (multipart upload: create, parts, complete or abort; the caller keeps
//! the acknowledged parts to resume), an object's head, and an object
//! streamed into a writer.
//!
//! Every object written here carries its content's SHA-256 twice: as the
//! user metadata [`SHA256_METADATA`] (lowercase hex of the whole object,
//! what readers verify a download against, and which only a rewrite of the
//! object can change) and as S3's own checksum header (base64), so S3
//! refuses a body or part that arrived different. For a multipart object
//! S3's checksum is a checksum of the parts' checksums; the metadata is
//! the one that names the whole object.

use super::{S3Error, Store};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// The user metadata key (`x-amz-meta-sha256`) holding the lowercase hex
/// SHA-256 of the whole object.
pub const SHA256_METADATA: &str = "sha256";

/// What S3 says about an object, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// [`SHA256_METADATA`], when the writer set it.
    pub sha256: Option<String>,
    /// All user metadata (keys lowercase, without `x-amz-meta-`).
    pub metadata: BTreeMap<String, String>,
    /// S3's version of the object (a versioned bucket), for a read that
    /// must name exactly this one.
    pub version_id: Option<String>,
}

impl ObjectHead {
    fn new(
        size: Option<i64>,
        metadata: Option<&HashMap<String, String>>,
        version_id: Option<&str>,
    ) -> Self {
        let metadata: BTreeMap<String, String> = metadata
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        ObjectHead {
            size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            sha256: metadata.get(SHA256_METADATA).cloned(),
            metadata,
            version_id: version_id.map(str::to_string),
        }
    }
}

/// How to write an object: its type, its SHA-256 (lowercase hex, computed by
/// the caller from the bytes it sends; empty only for a copy that vouches
/// for no digest) and extra user metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub content_type: String,
    pub sha256: String,
    pub metadata: BTreeMap<String, String>,
}

impl Upload {
    pub(super) fn metadata(&self) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !self.sha256.is_empty() {
            m.insert(SHA256_METADATA.to_string(), self.sha256.clone());
        }
        m
    }
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 1-based.
    pub number: i32,
    pub etag: String,
    /// S3's base64 SHA-256 of the part.
    pub checksum_sha256: Option<String>,
    pub size: u64,
}

/// The base64 S3 wants in `x-amz-checksum-sha256`, from lowercase hex.
pub fn sha256_base64(hex: &str) -> Option<String> {
    if hex.len() != 64 {
        return None;
    }
    let bytes = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(aws_smithy_types::base64::encode(bytes))
}

impl Store {
    fn bad_sha(&self, key: &str, op: &'static str, sha256: &str) -> S3Error {
        self.failed(
            op,
            key,
            format!("{sha256:?} is not a hex SHA-256; nothing was sent"),
        )
    }

    /// The object's size and metadata, `None` when there is no such key.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, S3Error> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectHead::new(
                out.content_length(),
                out.metadata(),
                out.version_id(),
            ))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.error("HeadObject", key, e)),
        }
    }

    /// Stream the object into `out` chunk by chunk (a tarball need not fit
    /// in memory); its head as the GetObject answer gave it.
    pub async fn get_to_writer(
        &self,
        key: &str,
        out: &mut (dyn Write + Send),
    ) -> Result<ObjectHead, S3Error> {
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.get_error(key, e))?;
        let head = ObjectHead::new(resp.content_length(), resp.metadata(), resp.version_id());
        let body_error = |detail: String| S3Error::Body {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            detail,
        };
        let mut body = resp.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_error(e.to_string()))?;
            out.write_all(&chunk)
                .map_err(|e| body_error(format!("writing the download: {e}")))?;
        }
        out.flush()
            .map_err(|e| body_error(format!("writing the download: {e}")))?;
        Ok(head)
    }

    /// Put a file in one PutObject, streamed from disk, with its SHA-256 as
    /// metadata and as the checksum S3 verifies.
    pub async fn put_file(&self, key: &str, path: &Path, upload: &Upload) -> Result<(), S3Error> {
        const OP: &str = "PutObject";
        let checksum =
            sha256_base64(&upload.sha256).ok_or_else(|| self.bad_sha(key, OP, &upload.sha256))?;
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| self.failed(OP, key, format!("reading {}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&upload.content_type)
            .set_metadata(Some(upload.metadata()))
            .checksum_sha256(checksum)
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(OP, key, e))?;
        tracing::debug!(bucket = %self.bucket, key, file = %path.display(), "put file");
        Ok(())
    }

    /// Start a multipart upload whose parts carry SHA-256 checksums; its id.
    pub async fn create_multipart(&self, key: &str, upload: &Upload) -> Result<String, S3Error> {
        if sha256_base64(&upload.sha256).is_none() {
            return Err(self.bad_sha(key, "CreateMultipartUpload", &upload.sha256));
        }
        self.start_multipart(key, upload, Some(ChecksumAlgorithm::Sha256))
            .await
    }

    /// Start a multipart upload of `key` with `upload`'s type and metadata,
    /// its parts checksummed with `checksum` (none: a copy in parts, whose
    /// bytes never leave S3); its id.
    pub(crate) async fn start_multipart(
        &self,
        key: &str,
        upload: &Upload,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<String, S3Error> {
        const OP: &str = "CreateMultipartUpload";
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&upload.content_type)
            .set_metadata(Some(upload.metadata()))
            .set_checksum_algorithm(checksum)
            .send()
            .await
            .map_err(|e| self.error(OP, key, e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| self.failed(OP, key, "the answer has no upload id".into()))
    }

    /// Upload part `number` (1-based) of `upload_id`; `sha256` is the hex
    /// SHA-256 of `bytes`, which S3 checks.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Vec<u8>,
        sha256: &str,
    ) -> Result<Part, S3Error> {
        const OP: &str = "UploadPart";
        let checksum = sha256_base64(sha256).ok_or_else(|| self.bad_sha(key, OP, sha256))?;
        let size = bytes.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_sha256(&checksum)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error(OP, key, e))?;
        Ok(Part {
            number,
            etag: out.e_tag().unwrap_or_default().to_string(),
            checksum_sha256: Some(out.checksum_sha256().unwrap_or(&checksum).to_string()),
            size,
        })
    }

    /// Complete `upload_id` from its parts (in number order).
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<(), S3Error> {
        let mut sorted: Vec<&Part> = parts.iter().collect();
        sorted.sort_by_key(|p| p.number);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                sorted
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(&p.etag)
                            .set_checksum_sha256(p.checksum_sha256.clone())
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| self.error("CompleteMultipartUpload", key, e))?;
        tracing::debug!(bucket = %self.bucket, key, parts = parts.len(), "completed multipart upload");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
