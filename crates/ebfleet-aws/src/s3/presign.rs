//! Presigned downloads: a URL anyone holding it may GET one object with
//! until it expires, signed with this process's credentials (so the caller
//! needs `s3:GetObject` on the key; the URL also stops working when those
//! credentials expire).

use super::{S3Error, Store};
use aws_sdk_s3::presigning::PresigningConfig;
use std::time::Duration;

impl Store {
    /// A presigned GET of `key`, valid for `expires_in` (at most 7 days).
    /// Nothing is sent: whether the object exists is not checked here
    /// ([`Store::head`] does that).
    pub async fn presigned_get(&self, key: &str, expires_in: Duration) -> Result<String, S3Error> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| self.failed("presign GetObject", key, e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.error("presign GetObject", key, e))?;
        Ok(request.uri().to_string())
    }
}
