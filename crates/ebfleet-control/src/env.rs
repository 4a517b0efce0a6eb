//! What every Lambda is configured with: the SDK clients, built once per
//! process, and the names of the stack's resources from the environment
//! (set by the SAM template).

use ebfleet_aws::{dynamodb::Records, ec2::Nodes, s3::Store, sfn::StepFunctions, ssm::Ssm};

/// Environment variables the Lambdas read.
pub mod var {
    pub const BUCKET: &str = "EBFLEET_BUCKET";
    pub const TABLE: &str = "EBFLEET_TABLE";
    pub const STATE_MACHINE_ARN: &str = "EBFLEET_STATE_MACHINE_ARN";
    pub const SSM_DOCUMENT: &str = "EBFLEET_SSM_DOCUMENT";
    /// Optional: a platforms TOML replacing the shipped defaults.
    pub const PLATFORMS: &str = "EBFLEET_PLATFORMS_TOML";
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
}

/// Read a required variable.
pub fn required(name: &'static str) -> Result<String, EnvError> {
    std::env::var(name).map_err(|_| EnvError::Missing(name))
}

/// The clients and resource names of one Lambda process.
pub struct Env {
    pub store: Store,
    pub records: Records,
    pub nodes: Nodes,
    pub ssm: Ssm,
    pub sfn: StepFunctions,
}

impl Env {
    /// Clients from the SDK's environment (region, credentials,
    /// `AWS_ENDPOINT_URL`) and the stack's bucket and table.
    pub async fn from_env() -> Result<Self, EnvError> {
        let config = ebfleet_aws::load_config().await;
        Ok(Env {
            store: Store::from_conf(&config, required(var::BUCKET)?),
            records: Records::from_conf(&config, required(var::TABLE)?),
            nodes: Nodes::from_conf(&config),
            ssm: Ssm::from_conf(&config),
            sfn: StepFunctions::from_conf(&config),
        })
    }
}
