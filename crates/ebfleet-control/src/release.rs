//! Release: terminate a platform's instances, by id and by the execution's
//! tag, on every path out of the state machine. Instances already gone are
//! released too, so running it twice is safe.

use crate::Env;
use ebfleet_aws::ec2::{Ec2Error, Released};
use ebfleet_core::keys::{ExecutionName, PlatformName};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Input {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    /// The instances Capacity started; may be empty (those with the
    /// execution's and platform's tags are found anyway).
    #[serde(default)]
    pub instance_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Output {
    /// Instances this call terminated.
    pub terminated: Vec<String>,
    /// Instances that were already terminated or unknown to EC2.
    pub already_gone: Vec<String>,
    /// The execution's launch templates this call deleted.
    pub launch_templates_deleted: Vec<String>,
}

impl From<Released> for Output {
    fn from(r: Released) -> Self {
        Output {
            terminated: r.terminated,
            already_gone: r.already_gone,
            launch_templates_deleted: r.launch_templates_deleted,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("releasing platform {platform} of execution {execution}: {source}")]
    Terminate {
        execution: String,
        platform: String,
        #[source]
        source: Ec2Error,
    },
}

pub async fn handle(env: &Env, input: Input) -> Result<Output, Error> {
    let released = env
        .nodes
        .terminate(
            &input.instance_ids,
            input.execution.as_str(),
            Some(input.platform.as_str()),
        )
        .await
        .map_err(|source| Error::Terminate {
            execution: input.execution.to_string(),
            platform: input.platform.to_string(),
            source,
        })?;
    tracing::info!(
        execution = %input.execution,
        platform = %input.platform,
        terminated = released.terminated.len(),
        already_gone = released.already_gone.len(),
        "released"
    );
    Ok(released.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_may_be_left_out() {
        let i: Input =
            serde_json::from_str(r#"{"execution":"e1","platform":"amzn-2023_graviton-3"}"#)
                .unwrap();
        assert!(i.instance_ids.is_empty());
        assert!(serde_json::from_str::<Input>(
            r#"{"execution":"e 1; rm","platform":"amzn-2023_graviton-3"}"#
        )
        .is_err());
    }
}
