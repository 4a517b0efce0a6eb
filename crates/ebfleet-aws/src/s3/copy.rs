//! Promotion: a server-side copy of one version of an object to another
//! key of the bucket, with the metadata the copier gives it (not the
//! source's). What Record does with a unit's staged tarball once it has
//! verified it: the copy is of exactly the version it read.

use super::{S3Error, Store, Upload};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};

/// The largest object one CopyObject copies (S3's limit); a bigger one is
/// copied in parts.
pub const COPY_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// The part size of a copy in parts: 1 GiB, so 5 TiB (S3's largest
/// object) takes 5,120 of the 10,000 parts a multipart upload may have.
const COPY_PART_BYTES: u64 = 1024 * 1024 * 1024;

/// `key` as a copy source wants it: percent-encoded but for `/` and the
/// characters that never need it.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Store {
    /// `bucket/key[?versionId=…]`.
    fn copy_source(&self, key: &str, version: Option<&str>) -> String {
        let mut source = format!("{}/{}", self.bucket, encode_key(key));
        if let Some(v) = version {
            source.push_str("?versionId=");
            source.push_str(&encode_key(v));
        }
        source
    }

    /// Copy `version` of `from` (`size` bytes) to `to`, whose type and
    /// metadata are `upload`'s; the new object's version, when the bucket
    /// is versioned. Up to [`COPY_OBJECT_LIMIT`] in one CopyObject, in
    /// parts above it.
    pub async fn copy_version(
        &self,
        from: &str,
        version: Option<&str>,
        to: &str,
        size: u64,
        upload: &Upload,
    ) -> Result<Option<String>, S3Error> {
        if size > COPY_OBJECT_LIMIT {
            return self
                .copy_in_parts(from, version, to, size, upload, COPY_PART_BYTES)
                .await;
        }
        let out = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(self.copy_source(from, version))
            .metadata_directive(MetadataDirective::Replace)
            .content_type(&upload.content_type)
            .set_metadata(Some(upload.metadata()))
            .send()
            .await
            .map_err(|e| self.error("CopyObject", to, e))?;
        tracing::debug!(bucket = %self.bucket, from, to, "copied");
        Ok(out.version_id().map(str::to_string))
    }

    /// [`Self::copy_version`] as a multipart upload of `part_bytes` ranges
    /// (UploadPartCopy); an upload that fails is aborted.
    pub(crate) async fn copy_in_parts(
        &self,
        from: &str,
        version: Option<&str>,
        to: &str,
        size: u64,
        upload: &Upload,
        part_bytes: u64,
    ) -> Result<Option<String>, S3Error> {
        let upload_id = self.start_multipart(to, upload, None).await?;
        let copied = self
            .copy_parts(from, version, to, size, &upload_id, part_bytes)
            .await;
        let completed = match copied {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.error("CompleteMultipartUpload", to, e)),
            Err(e) => Err(e),
        };
        match completed {
            Ok(out) => {
                tracing::debug!(bucket = %self.bucket, from, to, "copied in parts");
                Ok(out.version_id().map(str::to_string))
            }
            Err(e) => {
                // Its parts cost storage until aborted; the bucket's
                // lifecycle rule aborts what this misses.
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(to)
                    .upload_id(&upload_id)
                    .send()
                    .await
                {
                    tracing::warn!(key = to, error = %abort, "aborting a failed copy");
                }
                Err(e)
            }
        }
    }

    async fn copy_parts(
        &self,
        from: &str,
        version: Option<&str>,
        to: &str,
        size: u64,
        upload_id: &str,
        part_bytes: u64,
    ) -> Result<Vec<CompletedPart>, S3Error> {
        let mut parts = Vec::new();
        let mut start = 0;
        while start < size {
            let end = (start + part_bytes).min(size) - 1;
            let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            let out = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(self.copy_source(from, version))
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await
                .map_err(|e| self.error("UploadPartCopy", to, e))?;
            let etag = out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .ok_or_else(|| {
                    self.failed("UploadPartCopy", to, "the answer has no ETag".into())
                })?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build(),
            );
            start = end + 1;
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests;
