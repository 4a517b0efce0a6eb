//! What a node runs at first boot: `crates/ebfleet-core/data/bootstrap.sh` with the
//! platform's settings and a download of `ebfleet-node` for its
//! architecture (a presigned GET of the bucket's binary and the SHA-256
//! its publisher stored as metadata), rendered by
//! [`ebfleet_core::userdata`].

use super::Error;
use ebfleet_aws::s3::Store;
use ebfleet_core::checksum::is_sha256_hex;
use ebfleet_core::platform::Platform;
use ebfleet_core::userdata::{
    node_binary_key, render, NodeDownload, NodeSettings, UserData, NODE_URL_EXPIRY,
};
use ebfleet_core::Arch;

/// The user data of `platform`'s nodes. The binary must be in the bucket
/// with its `sha256` metadata: otherwise an [`Error::NodeBinaryMissing`] or
/// [`Error::NodeBinaryChecksum`] naming the key, before anything launches.
pub async fn user_data(store: &Store, platform: &Platform) -> Result<UserData, Error> {
    let name = platform.name.as_str();
    // Boxed: one more level of nested futures takes the capacity Lambda's
    // `main` past the compiler's layout depth limit.
    let node = Box::pin(download(store, name, platform.arch())).await?;
    let key = node_binary_key(platform.arch());
    let settings = NodeSettings::for_platform(platform, node);
    let data = render(&settings).map_err(|source| Error::UserData {
        platform: name.to_string(),
        source,
    })?;
    tracing::info!(
        platform = name,
        node_binary = %key,
        bytes = data.gzip.len(),
        script_bytes = data.script_len,
        "rendered user data"
    );
    Ok(data)
}

/// A presigned download of the bucket's `ebfleet-node` for `arch` and the
/// SHA-256 its publisher stored, for `what` (a platform, or a node image
/// bake). The binary must be in the bucket with its `sha256` metadata:
/// otherwise an [`Error::NodeBinaryMissing`] or [`Error::NodeBinaryChecksum`]
/// naming the key.
pub async fn download(store: &Store, what: &str, arch: Arch) -> Result<NodeDownload, Error> {
    let key = node_binary_key(arch);
    let s3_err = |source| Error::NodeBinary {
        platform: what.to_string(),
        source,
    };
    let head = store
        .head(&key)
        .await
        .map_err(s3_err)?
        .ok_or_else(|| Error::NodeBinaryMissing {
            platform: what.to_string(),
            arch: arch.to_string(),
            bucket: store.bucket().to_string(),
            key: key.clone(),
        })?;
    // Published by hand, the metadata may be in upper case.
    let sha256 = match head.sha256.map(|s| s.to_ascii_lowercase()) {
        Some(s) if is_sha256_hex(&s) => s,
        other => {
            return Err(Error::NodeBinaryChecksum {
                platform: what.to_string(),
                bucket: store.bucket().to_string(),
                key,
                found: other.unwrap_or_else(|| "none".into()),
            })
        }
    };
    let url = store
        .presigned_get(&key, NODE_URL_EXPIRY)
        .await
        .map_err(s3_err)?;
    Ok(NodeDownload { url, sha256 })
}
