//! Status: where a dispatched step stands, for the state machine's
//! Wait/Choice loop. The output is the [`CommandStatus`] itself:
//! `{"status": "in_progress"}`, `{"status": "success"}` or
//! `{"status": "failed", "reason": {"kind": …}, "detail": "…"}`, so a
//! Choice state branches on `$.status` (and `$.reason.kind`).

use crate::dispatch;
use crate::Env;
use ebfleet_aws::ssm::SsmError;
use ebfleet_core::step::CommandStatus;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Input {
    pub command_id: String,
    pub instance_id: String,
}

/// The step's status as the state machine reads it.
pub type Output = CommandStatus;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refused command id {0:?}: expected a UUID")]
    CommandId(String),
    #[error(transparent)]
    Input(#[from] dispatch::Error),
    #[error("status of command {command_id} on {instance_id}: {source}")]
    Status {
        command_id: String,
        instance_id: String,
        source: Box<SsmError>,
    },
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::CommandId(_) => Kind::Invalid,
            Error::Input(e) => e.kind(),
            Error::Status { source, .. } => source.kind(),
        }
    }
}

/// Whether `id` looks like an SSM command id (a UUID: 36 characters of hex
/// digits and dashes).
pub fn is_command_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// `input`, checked.
pub fn validate(input: &Input) -> Result<(), Error> {
    if !is_command_id(&input.command_id) {
        return Err(Error::CommandId(
            input.command_id.chars().take(100).collect(),
        ));
    }
    dispatch::instance_id(&input.instance_id)?;
    Ok(())
}

pub async fn handle(env: &Env, input: Input) -> Result<Output, Error> {
    validate(&input)?;
    env.ssm
        .status(&input.command_id, &input.instance_id)
        .await
        .map_err(|source| Error::Status {
            command_id: input.command_id.clone(),
            instance_id: input.instance_id.clone(),
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::step::FailureReason;
    use serde_json::json;

    const COMMAND: &str = "0b9d5a3e-1c2f-4e5a-9b7c-3d2e1f0a9b8c";
    const INSTANCE: &str = "i-0123456789abcdef0";

    #[test]
    fn validates_ids() {
        let ok = Input {
            command_id: COMMAND.into(),
            instance_id: INSTANCE.into(),
        };
        assert!(validate(&ok).is_ok());
        let bad_command = Input {
            command_id: "x; reboot".into(),
            ..ok.clone()
        };
        assert!(matches!(validate(&bad_command), Err(Error::CommandId(_))));
        let bad_instance = Input {
            instance_id: "i-zz".into(),
            ..ok
        };
        assert!(matches!(validate(&bad_instance), Err(Error::Input(_))));
    }

    #[test]
    fn output_is_what_a_choice_state_branches_on() {
        assert_eq!(
            serde_json::to_value(CommandStatus::InProgress).unwrap(),
            json!({"status": "in_progress"})
        );
        assert_eq!(
            serde_json::to_value(CommandStatus::Success).unwrap(),
            json!({"status": "success"})
        );
        let failed = CommandStatus::failed(FailureReason::StepFailed { exit_code: 2 }, "eb failed");
        assert_eq!(
            serde_json::to_value(failed).unwrap(),
            json!({"status": "failed", "reason": {"kind": "step_failed", "exit_code": 2}, "detail": "eb failed"})
        );
    }
}
