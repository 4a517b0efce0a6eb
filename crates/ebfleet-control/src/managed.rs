//! Managed: whether a platform's instances are online in SSM yet, for the
//! state machine's Wait/Choice loop after Capacity.

use crate::Env;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Input {
    pub instance_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Output {
    pub managed: bool,
}

pub async fn handle(env: &Env, input: Input) -> Result<Output, ebfleet_aws::ssm::SsmError> {
    let managed = env.ssm.managed(&input.instance_ids).await?;
    Ok(Output { managed })
}
