//! Adapters from the ebfleet domain to AWS, over the official Rust SDK.
//!
//! `ebfleet-core` decides; this crate reads and writes. Each AWS service
//! has one module here ([`s3`], [`dynamodb`], [`ec2`], [`autoscaling`], [`ssm`], [`sfn`], [`kms`])
//! holding one small type over the SDK client plus a resource name where it
//! has one (a [`s3::Store`] over a bucket, [`dynamodb::Records`] over a
//! table, [`ec2::Nodes`], [`autoscaling::Pools`], [`ssm::Ssm`],
//! [`sfn::StepFunctions`], [`kms::Kms`]).
//! Their methods take and return the domain's types (`ModuleRecord`,
//! `WriteCondition`, `PlatformName`, `Built`, any
//! `Serialize` value), so the domain never sees an SDK type and the callers
//! (Lambdas, the CLI) never build a request by hand.
//!
//! Errors are one `thiserror` enum per service. Every variant names what it
//! is about (bucket and key; table and item key). A failed AWS call is the
//! same [`CallError`] in every enum (its `Call` variant): service,
//! operation, resource, the service's code and message, and whether it was
//! throttling or a transient failure rather than an answer that will not
//! change. `is_retryable()` tells the two apart. The SDK has already
//! retried (standard mode, 3 attempts) by the time an error reaches the
//! caller, so "retryable" means "worth a Step Functions `Retry` later", not
//! "loop now".
//!
//! Unit tests run every call against `aws-smithy-mocks`; the HTTP client
//! comes from `aws-config` (rustls) at run time, from the mocks in tests.

pub mod autoscaling;
mod call;
pub mod dynamodb;
pub mod ec2;
pub mod kms;
pub mod s3;
pub mod sfn;
pub mod ssm;
#[cfg(feature = "stack")]
pub mod stack;
#[cfg(feature = "testing")]
pub mod testing;

pub use aws_config::SdkConfig;
pub use call::CallError;

/// The shared SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL` for a local emulator), with the latest behavior
/// version. Build each service's adapter from it once per process.
pub async fn load_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// What the aws CLI's `--profile`, `--region` and `--endpoint-url` say;
/// `None` leaves it to the standard chain (environment, config files,
/// instance role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// [`load_config`] with `overrides` applied.
pub async fn load_config_with(overrides: &ConfigOverrides) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(p) = &overrides.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &overrides.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(u) = &overrides.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader.load().await
}
