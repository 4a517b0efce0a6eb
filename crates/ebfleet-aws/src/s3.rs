//! The bucket: easyconfigs listed for the planner, plans and manifests read
//! and written as JSON, objects read and written as bytes.
//!
//! Keys come from `ebfleet_core::layout` (the S3 layout lives there only);
//! this module adds the bucket and the SDK. Files too big for memory (a
//! build node's tarballs) go through `transfer`: heads, streamed
//! downloads, and uploads in one request or resumable parts, each object
//! carrying its SHA-256 as metadata. `copy` promotes one version of an
//! object to another key. `presign` hands out time-limited
//! download URLs (a build node's `ebfleet-node`).

use crate::call::{call_error, CallError};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod copy;
mod presign;
mod transfer;
pub use copy::COPY_OBJECT_LIMIT;
pub use transfer::{sha256_base64, ObjectHead, Part, Upload, SHA256_METADATA};

/// What went wrong with an object. Every variant names the bucket and the
/// key (the prefix, for a listing).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("s3://{bucket}/{key}: no such key")]
    NotFound { bucket: String, key: String },
    /// A call that failed: throttling (`SlowDown`, 503), a timeout, a lost
    /// connection or a 5xx still failing after the SDK's own retries
    /// (`call.transient`), or an answer that will not change by asking
    /// again (access denied, no such bucket, a bad request). Its resource
    /// is `s3://{bucket}/{key}`. Boxed, so the error stays as small as
    /// the others (`clippy::result_large_err` in every caller).
    #[error("{call}")]
    Call {
        bucket: String,
        key: String,
        call: Box<CallError>,
    },
    /// The object's body broke off while it was read.
    #[error("s3://{bucket}/{key}: reading the object failed: {detail}")]
    Body {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error("s3://{bucket}/{key}: not the expected JSON: {source}")]
    Json {
        bucket: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl S3Error {
    /// Whether asking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            S3Error::Call { call, .. } => call.transient,
            S3Error::Body { .. } => true,
            S3Error::NotFound { .. } | S3Error::Json { .. } => false,
        }
    }

    pub fn bucket(&self) -> &str {
        match self {
            S3Error::NotFound { bucket, .. }
            | S3Error::Call { bucket, .. }
            | S3Error::Body { bucket, .. }
            | S3Error::Json { bucket, .. } => bucket,
        }
    }

    /// The key, or the prefix of a listing.
    pub fn key(&self) -> &str {
        match self {
            S3Error::NotFound { key, .. }
            | S3Error::Call { key, .. }
            | S3Error::Body { key, .. }
            | S3Error::Json { key, .. } => key,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// As S3 sends it, quotes included (`"9b2c…"`); changes whenever the
    /// content does, so it keys a cache.
    pub etag: String,
    pub size: u64,
}

/// The service as [`CallError`]s name it.
const SERVICE: &str = "S3";

/// The file name suffix of an easyconfig.
const EASYCONFIG_SUFFIX: &str = ".eb";

/// One bucket.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    bucket: String,
}

impl Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Store {
            client,
            bucket: bucket.into(),
        }
    }

    /// A store from the shared SDK configuration ([`crate::load_config`]).
    pub fn from_conf(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        Store::new(Client::new(config), bucket)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A GetObject failure: `NoSuchKey` is [`S3Error::NotFound`].
    fn get_error(&self, key: &str, err: SdkError<GetObjectError, HttpResponse>) -> S3Error {
        if err.as_service_error().is_some_and(|s| s.is_no_such_key()) {
            S3Error::NotFound {
                bucket: self.bucket.clone(),
                key: key.to_string(),
            }
        } else {
            self.error("GetObject", key, err)
        }
    }

    /// The SDK error of `op` on `key` as an [`S3Error::Call`].
    fn error<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let call = call_error(SERVICE, op, self.url(key), err, &[]);
        self.call(key, call)
    }

    /// `op` on `key` failing on this side (nothing usable to send, or an
    /// answer without what it always has): an [`S3Error::Call`], not
    /// transient.
    fn failed(&self, op: &'static str, key: &str, detail: String) -> S3Error {
        let call = CallError {
            service: SERVICE,
            op,
            resource: self.url(key),
            detail,
            transient: false,
        };
        self.call(key, call)
    }

    fn call(&self, key: &str, call: CallError) -> S3Error {
        S3Error::Call {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            call: Box::new(call),
        }
    }

    /// `s3://bucket/key`, as errors name an object.
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Every object under `prefix`, all pages, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, S3Error> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                objects.push(ObjectInfo {
                    key: key.to_string(),
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                });
            }
        }
        tracing::debug!(bucket = %self.bucket, prefix, objects = objects.len(), "listed");
        Ok(objects)
    }

    /// The "directories" right under `prefix` (keys up to the next `/`),
    /// all pages: one listing however many objects each holds.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut dirs = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            dirs.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
        }
        Ok(dirs)
    }

    /// The easyconfigs (`*.eb`) under `prefix`, usually
    /// [`ebfleet_core::layout::EASYCONFIGS_PREFIX`]; patches and other files
    /// beside them are left out. Keys are not validated here: the planner
    /// reports a malformed one as a skipped item.
    pub async fn list_easyconfigs(&self, prefix: &str) -> Result<Vec<ObjectInfo>, S3Error> {
        let mut objects = self.list(prefix).await?;
        objects.retain(|o| o.key.ends_with(EASYCONFIG_SUFFIX));
        Ok(objects)
    }

    /// The whole object.
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.get_error(key, e))?;
        let body = out.body.collect().await.map_err(|e| S3Error::Body {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            detail: e.to_string(),
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Write `bytes` to `key`, replacing what was there. S3 checks the
    /// SHA-256 the SDK computes on the way (`x-amz-checksum-sha256`) and
    /// refuses a body that arrived different.
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        tracing::debug!(bucket = %self.bucket, key, "put");
        Ok(())
    }

    /// Write `value` as JSON.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), S3Error> {
        let bytes = serde_json::to_vec(value).map_err(|source| S3Error::Json {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            source,
        })?;
        self.put_bytes(key, bytes, "application/json").await
    }

    /// Read a JSON object as `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<T, S3Error> {
        let bytes = self.get_bytes(key).await?;
        serde_json::from_slice(&bytes).map_err(|source| S3Error::Json {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests;
