//! What every Lambda is configured with: the SDK clients and the clock,
//! built once per process ([`Env`]), and its settings, read from the
//! environment (set by the SAM template) once at the edge: each handler
//! module has a `Settings` made by `Settings::from_lookup` from a
//! [`Lookup`], the process environment in AWS ([`from_env`]), a map in
//! tests.

use ebfleet_aws::{
    autoscaling::Pools, dynamodb::Records, ec2::Nodes, kms::Kms, s3::Store, sfn::StepFunctions,
    ssm::Ssm,
};
use ebfleet_core::clock::Clock;
use ebfleet_core::platform::{PlatformError, Platforms};

/// Environment variables the Lambdas read.
pub mod var {
    pub const BUCKET: &str = "EBFLEET_BUCKET";
    pub const TABLE: &str = "EBFLEET_TABLE";
    pub const STATE_MACHINE_ARN: &str = "EBFLEET_STATE_MACHINE_ARN";
    pub const SSM_DOCUMENT: &str = "EBFLEET_SSM_DOCUMENT";
    /// Optional: a platforms TOML replacing the shipped defaults.
    pub const PLATFORMS: &str = "EBFLEET_PLATFORMS_TOML";
    /// The build nodes' instance profile (SSM and the bucket).
    pub const INSTANCE_PROFILE_ARN: &str = "EBFLEET_INSTANCE_PROFILE_ARN";
    /// The build nodes' security group (no inbound rule).
    pub const SECURITY_GROUP_ID: &str = "EBFLEET_SECURITY_GROUP_ID";
    /// The subnets the fleet may launch in, separated by commas.
    pub const SUBNET_IDS: &str = "EBFLEET_SUBNET_IDS";
    /// Optional: an `ami-` id used instead of the public SSM parameter.
    pub const PINNED_AMI: &str = "EBFLEET_PINNED_AMI";
    /// Optional: the SSM parameter path under which the bake records node
    /// images (`<path>/<os>/<arch>/<kind>`); unset: no baked images.
    pub const NODE_IMAGE_PREFIX: &str = "EBFLEET_NODE_IMAGE_PREFIX";
    /// The stack's name: the bake's images and instances are tagged with it.
    pub const STACK_NAME: &str = "EBFLEET_STACK_NAME";
    /// Optional: how many instance types a pool may launch (default 10).
    pub const MAX_TYPES: &str = "EBFLEET_MAX_INSTANCE_TYPES";
    /// Optional: the build nodes' root volume in GiB (default 200).
    pub const ROOT_VOLUME_GIB: &str = "EBFLEET_ROOT_VOLUME_GIB";
    /// Optional: the toolchains the planner may pick, separated by commas
    /// (empty or unset: the planner's default policy).
    pub const TOOLCHAINS: &str = "EBFLEET_TOOLCHAINS";
    /// The state machine a unit (one module) runs in.
    pub const UNIT_STATE_MACHINE_ARN: &str = "EBFLEET_UNIT_STATE_MACHINE_ARN";
    /// The KMS key (ARN or alias) Record signs promoted tarballs with and
    /// nodes verify them by.
    pub const SIGNING_KEY: &str = "EBFLEET_SIGNING_KEY";
    /// The node role's unique id (`AROA…`): with an instance id, the
    /// principal a node writes its staging prefix as.
    pub const NODE_ROLE_ID: &str = "EBFLEET_NODE_ROLE_ID";
    /// Optional: most nodes of a platform at once (default 32).
    pub const NODES_PER_PLATFORM: &str = "EBFLEET_NODES_PER_PLATFORM";
    /// Optional: most instances a platform launches over a run,
    /// replacements included (default 4 × the nodes per platform).
    pub const MAX_INSTANCES_PER_PLATFORM: &str = "EBFLEET_MAX_INSTANCES_PER_PLATFORM";
    /// Optional: seconds a node may idle with nothing ready (default 600).
    pub const NODE_IDLE_SECONDS: &str = "EBFLEET_NODE_IDLE_SECONDS";
    /// Optional: nodes a unit may lose before it is given up (default 3).
    pub const NODE_ATTEMPTS: &str = "EBFLEET_NODE_ATTEMPTS";
    /// Optional: scheduler ticks per platform execution before it goes on
    /// in a new one (default 300), which bounds each history.
    pub const TICKS_PER_EXECUTION: &str = "EBFLEET_TICKS_PER_EXECUTION";
    /// Optional: seconds before a module another run holds the lease of
    /// is tried again (default 600).
    pub const HELD_RETRY_SECONDS: &str = "EBFLEET_HELD_RETRY_SECONDS";
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// A setting's value by its variable's name; `None` when unset.
pub trait Lookup: Fn(&str) -> Option<String> {}
impl<F: Fn(&str) -> Option<String>> Lookup for F {}

/// The process environment, with an empty or blank value counted as unset.
pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A required setting.
pub fn required(lookup: &impl Lookup, name: &'static str) -> Result<String, EnvError> {
    lookup(name).ok_or(EnvError::Missing(name))
}

/// [`var::NODE_IMAGE_PREFIX`], checked to be an SSM parameter path;
/// `None` when unset.
pub fn node_image_prefix(lookup: &impl Lookup) -> Result<Option<String>, EnvError> {
    match lookup(var::NODE_IMAGE_PREFIX).map(|p| p.trim().to_string()) {
        Some(p) if !ebfleet_core::node_image::valid_prefix(&p) => Err(EnvError::Invalid {
            var: var::NODE_IMAGE_PREFIX,
            reason: format!("{p:?} is not an SSM parameter path like /ebfleet/node-image"),
        }),
        prefix => Ok(prefix),
    }
}

/// The platforms: [`var::PLATFORMS`] (a platforms TOML) when set, else the
/// shipped set. The one place a handler gets them from.
pub fn platforms(lookup: &impl Lookup) -> Result<Platforms, PlatformError> {
    match lookup(var::PLATFORMS) {
        Some(text) => Platforms::from_toml(&text),
        None => Platforms::default_set(),
    }
}

/// The clients and resource names of one Lambda process.
pub struct Env {
    pub store: Store,
    pub records: Records,
    pub nodes: Nodes,
    pub pools: Pools,
    pub ssm: Ssm,
    pub sfn: StepFunctions,
    pub kms: Kms,
    pub clock: Clock,
}

impl Env {
    /// Unix seconds now, by the process's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Clients from the SDK's environment (region, credentials,
    /// `AWS_ENDPOINT_URL`) and the stack's bucket and table.
    pub async fn from_env() -> Result<Self, EnvError> {
        let config = ebfleet_aws::load_config().await;
        Ok(Env::from_conf(
            &config,
            &required(&from_env, var::BUCKET)?,
            &required(&from_env, var::TABLE)?,
        ))
    }

    /// Clients from `config` over `bucket` and `table`, on the system clock.
    pub fn from_conf(config: &ebfleet_aws::SdkConfig, bucket: &str, table: &str) -> Self {
        Env {
            store: Store::from_conf(config, bucket),
            records: Records::from_conf(config, table),
            nodes: Nodes::from_conf(config),
            pools: Pools::from_conf(config),
            ssm: Ssm::from_conf(config),
            sfn: StepFunctions::from_conf(config),
            kms: Kms::from_conf(config),
            clock: Clock::system(),
        }
    }
}
