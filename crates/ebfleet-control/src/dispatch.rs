//! Dispatch: send one step (`sync|build|tar|upload`) of a batch to its node
//! through SSM Run Command with the project's document
//! ([`var::SSM_DOCUMENT`]). Every value of the input is validated first
//! ([`StepCommand::parse`], the instance id, the output prefix): hostile
//! input is refused before anything is sent.

use crate::env::{self, var, EnvError, Lookup};
use crate::Env;
use ebfleet_aws::ssm::SsmError;
use ebfleet_core::step::{StepCommand, StepError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Input {
    pub step: String,
    /// The bucket of the batch file and of the command's output; the
    /// stack's bucket ([`var::BUCKET`]) when absent.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `plans/<execution>/<platform>/<batch>.json`.
    pub batch_key: String,
    pub instance_id: String,
    /// Where SSM writes the command's output in the bucket;
    /// [`default_output_prefix`] when absent.
    #[serde(default)]
    pub output_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Output {
    pub command_id: String,
    pub instance_id: String,
    pub step: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refused step: {0}")]
    Step(#[from] StepError),
    #[error("refused instance id {0:?}: expected i- and 8 or 17 lowercase hex digits")]
    InstanceId(String),
    #[error("refused output prefix {0:?}: expected 1 to 512 characters of A-Z a-z 0-9 _ - . / without '..' or a leading '/'")]
    OutputPrefix(String),
    #[error("sending {step} of {batch_key} to {instance_id}: {source}")]
    Send {
        step: String,
        batch_key: String,
        instance_id: String,
        source: Box<SsmError>,
    },
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Step(_) | Error::InstanceId(_) | Error::OutputPrefix(_) => Kind::Invalid,
            Error::Send { source, .. } => source.kind(),
        }
    }
}

/// Whether `id` is an EC2 instance id: `i-` and 8 or 17 lowercase hex
/// digits.
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `id`, if it is an instance id.
pub fn instance_id(id: &str) -> Result<&str, Error> {
    if is_instance_id(id) {
        Ok(id)
    } else {
        Err(Error::InstanceId(id.chars().take(100).collect()))
    }
}

/// Where a step's SSM output goes by default:
/// `<platform>/logs/ssm/<execution>/<batch>/<step>` (the platform's log
/// area, see the S3 layout).
pub fn default_output_prefix(command: &StepCommand) -> String {
    format!(
        "{}/logs/ssm/{}/{}/{}",
        command.platform(),
        command.execution(),
        command.batch(),
        command.step()
    )
}

/// A given output prefix, checked: a plain relative S3 key prefix.
pub fn output_prefix(prefix: &str) -> Result<&str, Error> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 512
        && !prefix.starts_with('/')
        && !prefix.split('/').any(|part| part == "..")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
    if ok {
        Ok(prefix)
    } else {
        Err(Error::OutputPrefix(prefix.chars().take(100).collect()))
    }
}

/// What dispatch needs from the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The stack's bucket, for inputs that name none.
    pub bucket: String,
    /// The SSM document that runs a step ([`var::SSM_DOCUMENT`]).
    pub document: String,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, EnvError> {
        Ok(Settings {
            bucket: env::required(&lookup, var::BUCKET)?,
            document: env::required(&lookup, var::SSM_DOCUMENT)?,
        })
    }
}

/// The validated command, instance and output prefix of `input`, with
/// `default_bucket` where the input names none. Nothing is sent.
pub fn prepare(
    input: &Input,
    default_bucket: &str,
) -> Result<(StepCommand, String, String), Error> {
    let bucket = input.bucket.as_deref().unwrap_or(default_bucket);
    let command = StepCommand::parse(&input.step, bucket, &input.batch_key)?;
    let instance = instance_id(&input.instance_id)?.to_string();
    let prefix = match input.output_prefix.as_deref() {
        Some(p) => output_prefix(p)?.to_string(),
        None => default_output_prefix(&command),
    };
    Ok((command, instance, prefix))
}

pub async fn handle(env: &Env, settings: &Settings, input: Input) -> Result<Output, Error> {
    let (command, instance_id, prefix) = prepare(&input, &settings.bucket)?;
    let command_id = env
        .ssm
        .send(&command, &instance_id, &settings.document, &prefix)
        .await
        .map_err(|source| Error::Send {
            step: command.step().to_string(),
            batch_key: command.batch_key().to_string(),
            instance_id: instance_id.clone(),
            source: Box::new(source),
        })?;
    Ok(Output {
        command_id,
        instance_id,
        step: command.step().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "plans/run-1/amzn-2023_graviton-3/0.json";
    const INSTANCE: &str = "i-0123456789abcdef0";

    fn input(step: &str, batch_key: &str, instance_id: &str) -> Input {
        Input {
            step: step.into(),
            bucket: Some("ebfleet-bucket".into()),
            batch_key: batch_key.into(),
            instance_id: instance_id.into(),
            output_prefix: None,
        }
    }

    #[test]
    fn prepares_a_valid_step_with_the_default_prefix() {
        let (cmd, id, prefix) = prepare(&input("build", KEY, INSTANCE), "stack-bucket").unwrap();
        assert_eq!(cmd.step().to_string(), "build");
        assert_eq!(cmd.bucket().as_str(), "ebfleet-bucket");
        assert_eq!(id, INSTANCE);
        assert_eq!(prefix, "amzn-2023_graviton-3/logs/ssm/run-1/0/build");
    }

    #[test]
    fn default_bucket_when_the_input_has_none() {
        let mut i = input("sync", KEY, INSTANCE);
        i.bucket = None;
        let (cmd, _, _) = prepare(&i, "stack-bucket").unwrap();
        assert_eq!(cmd.bucket().as_str(), "stack-bucket");
    }

    #[test]
    fn refuses_hostile_values_before_sending() {
        for (step, key, id) in [
            ("build; rm -rf /", KEY, INSTANCE),
            ("build", "plans/run-1/$(reboot)/0.json", INSTANCE),
            ("build", "plans/../etc/passwd", INSTANCE),
            ("build", "plans/run-1/p/0.json\nx", INSTANCE),
            ("tar", KEY, "i-0123; reboot"),
            ("tar", KEY, "mi-0123456789abcdef0"),
        ] {
            assert!(
                prepare(&input(step, key, id), "stack-bucket").is_err(),
                "{step} {key} {id}"
            );
        }
        let mut i = input("upload", KEY, INSTANCE);
        i.bucket = Some("bad bucket`id`".into());
        assert!(matches!(prepare(&i, "stack-bucket"), Err(Error::Step(_))));
        for bad in ["", "/abs", "a/../b", "a b", "x`y`"] {
            let mut i = input("upload", KEY, INSTANCE);
            i.output_prefix = Some(bad.into());
            assert!(
                matches!(prepare(&i, "stack-bucket"), Err(Error::OutputPrefix(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn accepts_a_given_output_prefix() {
        let mut i = input("upload", KEY, INSTANCE);
        i.output_prefix = Some("custom/out.d/".into());
        let (_, _, prefix) = prepare(&i, "stack-bucket").unwrap();
        assert_eq!(prefix, "custom/out.d/");
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-01234567"));
        assert!(is_instance_id(INSTANCE));
        assert!(!is_instance_id("i-0123456"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
        assert!(!is_instance_id("0123456789abcdef0"));
    }

    #[test]
    fn input_with_optional_fields_absent() {
        let i: Input = serde_json::from_value(serde_json::json!({
            "step": "tar", "batch_key": KEY, "instance_id": INSTANCE
        }))
        .unwrap();
        assert_eq!(i.bucket, None);
        assert_eq!(i.output_prefix, None);
    }
}
