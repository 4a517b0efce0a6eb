//! The build nodes on EC2: the catalog of instance types and spot prices
//! that `ebfleet_core::capacity::choose` ranks, the launch template of a
//! platform's pool (`crate::autoscaling`) made from a
//! [`LaunchSpec`](ebfleet_core::capacity::LaunchSpec), and releasing what an
//! execution started.
//!
//! The domain has already decided everything that matters for safety and
//! cost (IMDSv2 required with hop limit 1, no key pair, the tags, the
//! ranked types); this module only spells it in EC2's terms:
//!
//! * [`Nodes::instance_types`] — DescribeInstanceTypes for the platform's
//!   families (`instance-type` = `<family>.*`), every page, checked again by
//!   exact family on this side (moto rejects some filters, and `c7g.*` must
//!   never bring `c7gn`);
//! * [`Nodes::spot_prices`] — DescribeSpotPriceHistory for `Linux/UNIX`, the
//!   newest price per type and availability zone, the lowest zone per type;
//! * [`Nodes::launch_template`] — the AMI's root device (DescribeImages),
//!   then one launch template (the spec's root volume on that device, the
//!   context's user data, the spec's first type) that the pool launches
//!   from;
//! * [`Nodes::terminate`] — the instances by id and by the execution's tag,
//!   then the execution's launch templates; instances and templates already
//!   gone count as released, so Release can run on every path, twice;
//! * node images (`bake`): the bake instance, CreateImage, and what EC2
//!   says of an image (DescribeImages, this account's own only).

mod bake;
mod catalog;
mod image;
mod launch;
mod release;

pub use bake::{BakeInstance, BakeLaunch, BAKE_ROOT_VOLUME_GIB};
pub use catalog::apply_spot_prices;
pub use image::RootDevice;
pub use launch::LaunchContext;
pub use release::Released;

use crate::call::{call_error, CallError};
use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What went wrong on EC2. Every variant names what it is about: the
/// platform of a launch template, the families of a catalog query, the
/// execution and instances of a release.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// The launch cannot be asked for as given (no subnet, not an AMI id,
    /// an AMI EC2 does not know or whose root snapshot is larger than the
    /// root volume, user data over EC2's 16 KiB); asking again will not
    /// help.
    #[error("platform {platform}: cannot launch: {reason}")]
    InvalidLaunch { platform: String, reason: String },
    /// A call that failed: throttling (`RequestLimitExceeded`), a timeout, a
    /// lost connection or a 5xx still failing after the SDK's own retries
    /// (`transient`), or an answer that will not change by asking again
    /// (unauthorized, a bad parameter, a quota).
    #[error(transparent)]
    Call(#[from] CallError),
}

impl Ec2Error {
    /// Whether asking again later may succeed: throttling and transient
    /// failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Ec2Error::Call(call) => call.transient,
            Ec2Error::InvalidLaunch { .. } => false,
        }
    }
}

/// The service as [`CallError`]s name it.
const SERVICE: &str = "EC2";

/// The SDK error as an [`Ec2Error::Call`] about `resource`.
fn error<E>(
    resource: impl Into<String>,
    op: &'static str,
    err: SdkError<E, HttpResponse>,
) -> Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    Ec2Error::Call(call_error(SERVICE, op, resource, err, &[]))
}

/// The error code of a service error, e.g. `InvalidInstanceID.NotFound`.
fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

/// The build nodes of one account and region.
#[derive(Debug, Clone)]
pub struct Nodes {
    client: Client,
}

impl Nodes {
    pub fn new(client: Client) -> Self {
        Nodes { client }
    }

    /// Nodes from the shared SDK configuration ([`crate::load_config`]).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Nodes::new(Client::new(config))
    }
}

#[cfg(test)]
mod tests;
