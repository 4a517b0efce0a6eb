//! Dispatch: send one step (`sync|build|tar|upload`) of a unit to its node
//! through SSM Run Command with the project's document
//! ([`var::SSM_DOCUMENT`]) and the state's task token; the node completes
//! the task when the step ends (`.waitForTaskToken`). Every value of the
//! input is validated first ([`StepCommand::parse`], the token, the
//! instance id, the output prefix): hostile input is refused before
//! anything is sent.
//!
//! The same Lambda takes SSM's command status-change events
//! ([`on_command_event`]): a command that ended without its node completing
//! the task — the node died, the agent could not run it, it timed out —
//! completes it from SSM's side, so a step never waits longer than its
//! heartbeat for news of a dead node.

use crate::env::{self, var, EnvError, Lookup};
use crate::Env;
use ebfleet_aws::ssm::SsmError;
use ebfleet_core::step::{StepCommand, StepError};
use serde::{Deserialize, Serialize};

/// A step to send, or an SSM event.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Request {
    Step(Input),
    Event(CommandEvent),
}

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
    /// The task the node completes when the step ends.
    #[serde(default)]
    pub task_token: Option<String>,
    /// Where SSM writes the command's output in the bucket;
    /// [`default_output_prefix`] when absent.
    #[serde(default)]
    pub output_prefix: Option<String>,
}

/// EventBridge's "EC2 Command Invocation Status-change Notification".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CommandEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: CommandEventDetail,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct CommandEventDetail {
    #[serde(rename = "command-id")]
    pub command_id: String,
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    pub status: String,
}

/// What an event came to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct EventOutput {
    pub command_id: String,
    /// `succeeded`, `failed` (the task completed from here), `not_waiting`
    /// (no task, or it was completed already), `ignored` (not an end).
    pub task: String,
}

/// The error names a step's task fails with from SSM's side.
pub const NODE_LOST: &str = "ebfleet.NodeLost";
pub const STEP_FAILED: &str = "ebfleet.StepFailed";

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
    #[error("refused task token: {0}")]
    Token(StepError),
    #[error("command {command_id}: {source}")]
    Event {
        command_id: String,
        source: Box<SsmError>,
    },
    #[error("command {command_id}: completing its task: {source}")]
    Complete {
        command_id: String,
        source: Box<ebfleet_aws::sfn::SfnError>,
    },
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
            Error::Step(_) | Error::Token(_) | Error::InstanceId(_) | Error::OutputPrefix(_) => {
                Kind::Invalid
            }
            Error::Send { source, .. } | Error::Event { source, .. } => source.kind(),
            Error::Complete { source, .. } => Kind::retry_or(source.is_retryable(), Kind::Failed),
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
/// `logs/ssm/<platform>/<execution>/<unit>/<step>`, under the bucket's
/// `logs/`, which expires after `LogRetentionDays`.
pub fn default_output_prefix(command: &StepCommand) -> String {
    format!(
        "logs/ssm/{}/{}/{}/{}",
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
    let mut command = StepCommand::parse(&input.step, bucket, &input.batch_key)?;
    if let Some(token) = &input.task_token {
        command = command.with_task_token(token.parse().map_err(Error::Token)?);
    }
    let instance = instance_id(&input.instance_id)?.to_string();
    let prefix = match input.output_prefix.as_deref() {
        Some(p) => output_prefix(p)?.to_string(),
        None => default_output_prefix(&command),
    };
    Ok((command, instance, prefix))
}

pub async fn handle(
    env: &Env,
    settings: &Settings,
    request: Request,
) -> Result<serde_json::Value, Error> {
    match request {
        Request::Step(input) => send(env, settings, input)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        Request::Event(event) => on_command_event(env, event)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
    }
}

/// SSM statuses after which a command runs no more, and how its task
/// ends if its node did not complete it: `Some(error)` fails it.
fn ended(status: &str) -> Option<Option<&'static str>> {
    match status {
        "Success" => Some(None),
        "Failed" | "Cancelled" | "Canceled" | "TimedOut" | "Execution Timed Out" => {
            Some(Some(STEP_FAILED))
        }
        "Undeliverable" | "Terminated" | "Delivery Timed Out" => Some(Some(NODE_LOST)),
        _ => None,
    }
}

/// A command's status changed: if it ended, complete the task it was sent
/// with (when it still waits), failed with the reason SSM gives.
pub async fn on_command_event(env: &Env, event: CommandEvent) -> Result<EventOutput, Error> {
    let d = &event.detail;
    let out = |task: &str| EventOutput {
        command_id: d.command_id.clone(),
        task: task.to_string(),
    };
    let Some(error) = ended(&d.status) else {
        return Ok(out("ignored"));
    };
    let event_err = |source| Error::Event {
        command_id: d.command_id.clone(),
        source: Box::new(source),
    };
    let Some(token) = env
        .ssm
        .command_task_token(&d.command_id)
        .await
        .map_err(event_err)?
    else {
        return Ok(out("not_waiting"));
    };
    let completed = match error {
        // The node reports its own result; this only matters when it could
        // not (its callback failed): the step is done either way.
        None => {
            env.sfn
                .succeed(
                    &token,
                    &serde_json::json!({"via": "ssm", "status": d.status}),
                )
                .await
        }
        Some(error) => {
            let cause = match env.ssm.status(&d.command_id, &d.instance_id).await {
                Ok(ebfleet_core::step::CommandStatus::Failed { detail, .. }) => detail,
                _ => format!("SSM status {}", d.status),
            };
            let cause = format!("command {} on {}: {cause}", d.command_id, d.instance_id);
            env.sfn.fail(&token, error, &cause).await
        }
    };
    use ebfleet_aws::sfn::SfnError;
    match completed {
        Ok(()) => Ok(out(if error.is_some() {
            "failed"
        } else {
            "succeeded"
        })),
        Err(SfnError::TaskTimedOut { .. } | SfnError::TaskDoesNotExist { .. }) => {
            Ok(out("not_waiting"))
        }
        Err(source) => Err(Error::Complete {
            command_id: d.command_id.clone(),
            source: Box::new(source),
        }),
    }
}

/// Send a step.
pub async fn send(env: &Env, settings: &Settings, input: Input) -> Result<Output, Error> {
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
            task_token: None,
            output_prefix: None,
        }
    }

    #[test]
    fn prepares_a_valid_step_with_the_default_prefix() {
        let (cmd, id, prefix) = prepare(&input("build", KEY, INSTANCE), "stack-bucket").unwrap();
        assert_eq!(cmd.step().to_string(), "build");
        assert_eq!(cmd.bucket().as_str(), "ebfleet-bucket");
        assert_eq!(id, INSTANCE);
        assert_eq!(prefix, "logs/ssm/amzn-2023_graviton-3/run-1/0/build");
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
        assert_eq!(i.task_token, None);
    }

    // ------------------------------------------------- over the mocked SDK

    use crate::failure::{Failure, Kind};
    use crate::testing::{Mocks, BUCKET};
    use aws_sdk_sfn::operation::send_task_failure::{
        SendTaskFailureError, SendTaskFailureInput, SendTaskFailureOutput,
    };
    use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
    use aws_sdk_sfn::types::error::TaskDoesNotExist;
    use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
    use aws_sdk_ssm::operation::list_commands::ListCommandsOutput;
    use aws_sdk_ssm::operation::send_command::SendCommandOutput;
    use aws_sdk_ssm::types::{Command, CommandInvocationStatus};
    use aws_smithy_mocks::{mock, Rule};
    use serde_json::json;

    const DOCUMENT: &str = "ebfleet-step";
    const COMMAND_ID: &str = "1a2b3c4d-1111-2222-3333-444455556666";
    const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAA+/=_.-secret-part-TaIl1234";

    fn settings() -> Settings {
        Settings {
            bucket: BUCKET.into(),
            document: DOCUMENT.into(),
        }
    }

    fn param<'a>(
        params: Option<&'a std::collections::HashMap<String, Vec<String>>>,
        name: &str,
    ) -> Option<&'a str> {
        params
            .and_then(|p| p.get(name))
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    #[tokio::test]
    async fn a_step_with_a_task_token_sends_it_as_the_task_token_parameter() {
        let send = mock!(aws_sdk_ssm::Client::send_command)
            .match_requests(|r| {
                let p = r.parameters();
                r.instance_ids() == [INSTANCE]
                    && r.document_name() == Some(DOCUMENT)
                    && r.targets().is_empty()
                    && param(p, "taskToken") == Some(TOKEN)
                    && param(p, "step") == Some("build")
                    && param(p, "batchKey") == Some(KEY)
                    && r.output_s3_bucket_name() == Some("ebfleet-bucket")
                    && r.output_s3_key_prefix()
                        == Some("logs/ssm/amzn-2023_graviton-3/run-1/0/build")
            })
            .then_output(|| {
                SendCommandOutput::builder()
                    .command(Command::builder().command_id(COMMAND_ID).build())
                    .build()
            });
        let env = Mocks {
            ssm: vec![&send],
            ..Mocks::default()
        }
        .env();
        let request: Request = serde_json::from_value(json!({
            "step": "build", "batch_key": KEY, "instance_id": INSTANCE, "task_token": TOKEN
        }))
        .unwrap();
        assert!(matches!(request, Request::Step(_)), "{request:?}");
        let out = handle(&env, &settings(), request).await.unwrap();
        assert_eq!(
            out,
            json!({"command_id": COMMAND_ID, "instance_id": INSTANCE, "step": "build"})
        );
        assert_eq!(send.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_hostile_task_token_is_refused_before_sending() {
        // No SSM rule: sending fails the test.
        let env = Mocks::default().env();
        let long = "x".repeat(3000);
        for bad in ["a;b", long.as_str(), "", "a b", "$(reboot)", "tok\nen"] {
            let mut i = input("build", KEY, INSTANCE);
            i.task_token = Some(bad.into());
            let err = send(&env, &settings(), i).await.unwrap_err();
            assert!(matches!(err, Error::Token(_)), "{bad:?}: {err:?}");
            assert_eq!(err.kind(), Kind::Invalid);
            let text = err.to_string();
            assert!(text.starts_with("refused task token"), "{text}");
            assert!(!text.contains(&long), "the token is not echoed whole");
        }
    }

    /// SSM's status change as EventBridge delivers it.
    fn event(status: &str) -> Request {
        let request: Request = serde_json::from_value(json!({
            "version": "0",
            "id": "51c0891d-0e34-45b1-83d6-95db273d1602",
            "detail-type": "EC2 Command Invocation Status-change Notification",
            "source": "aws.ssm",
            "account": "123456789012",
            "time": "2026-11-24T10:00:00Z",
            "region": "us-east-1",
            "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{INSTANCE}")],
            "detail": {
                "command-id": COMMAND_ID,
                "document-name": DOCUMENT,
                "instance-id": INSTANCE,
                "requested-date-time": "2026-11-24T09:59:00.000Z",
                "status": status
            }
        }))
        .unwrap();
        assert!(matches!(request, Request::Event(_)), "{request:?}");
        request
    }

    /// ListCommands of the command: sent with `token` (empty: none).
    fn listed(token: &'static str) -> Rule {
        mock!(aws_sdk_ssm::Client::list_commands)
            .match_requests(|r| r.command_id() == Some(COMMAND_ID))
            .then_output(move || {
                ListCommandsOutput::builder()
                    .commands(
                        Command::builder()
                            .command_id(COMMAND_ID)
                            .parameters("step", vec!["build".into()])
                            .parameters("taskToken", vec![token.into()])
                            .build(),
                    )
                    .build()
            })
    }

    fn invocation(status: &'static str, code: i32, stderr: Option<&'static str>) -> Rule {
        mock!(aws_sdk_ssm::Client::get_command_invocation)
            .match_requests(|r| {
                r.command_id() == Some(COMMAND_ID) && r.instance_id() == Some(INSTANCE)
            })
            .then_output(move || {
                GetCommandInvocationOutput::builder()
                    .command_id(COMMAND_ID)
                    .instance_id(INSTANCE)
                    .status(CommandInvocationStatus::from(status))
                    .status_details(status)
                    .response_code(code)
                    .set_standard_error_content(stderr.map(str::to_string))
                    .build()
            })
    }

    fn fails_with(
        error: &'static str,
        cause: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Rule {
        mock!(aws_sdk_sfn::Client::send_task_failure)
            .match_requests(move |r: &SendTaskFailureInput| {
                r.task_token() == Some(TOKEN)
                    && r.error() == Some(error)
                    && r.cause().is_some_and(&cause)
            })
            .then_output(|| SendTaskFailureOutput::builder().build())
    }

    fn task(out: serde_json::Value) -> String {
        assert_eq!(out["command_id"], COMMAND_ID, "{out}");
        out["task"].as_str().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn a_successful_command_completes_its_task() {
        let list = listed(TOKEN);
        let success = mock!(aws_sdk_sfn::Client::send_task_success)
            .match_requests(|r| {
                r.task_token() == Some(TOKEN)
                    && r.output()
                        .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
                        == Some(json!({"via": "ssm", "status": "Success"}))
            })
            .then_output(|| SendTaskSuccessOutput::builder().build());
        // No GetCommandInvocation rule: a success needs no cause.
        let env = Mocks {
            ssm: vec![&list],
            sfn: vec![&success],
            ..Mocks::default()
        }
        .env();
        let out = handle(&env, &settings(), event("Success")).await.unwrap();
        assert_eq!(task(out), "succeeded");
        assert_eq!((list.num_calls(), success.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn an_undeliverable_command_fails_its_task_as_node_lost() {
        let list = listed(TOKEN);
        let status = invocation("Undeliverable", -1, None);
        let failure = fails_with(NODE_LOST, |cause| {
            cause.starts_with(&format!("command {COMMAND_ID} on {INSTANCE}: "))
                && cause.contains("cannot be delivered")
        });
        let env = Mocks {
            ssm: vec![&list, &status],
            sfn: vec![&failure],
            ..Mocks::default()
        }
        .env();
        let out = handle(&env, &settings(), event("Undeliverable"))
            .await
            .unwrap();
        assert_eq!(task(out), "failed");
        assert_eq!(failure.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_command_fails_its_task_with_the_end_of_its_stderr() {
        let list = listed(TOKEN);
        let status = invocation(
            "Failed",
            2,
            Some("configuring zlib\neb: compile error in zlib\n"),
        );
        let failure = fails_with(STEP_FAILED, |cause| {
            cause.starts_with(&format!("command {COMMAND_ID} on {INSTANCE}: "))
                && cause.contains("exited with code 2")
                && cause.contains("eb: compile error in zlib")
        });
        let env = Mocks {
            ssm: vec![&list, &status],
            sfn: vec![&failure],
            ..Mocks::default()
        }
        .env();
        let out = handle(&env, &settings(), event("Failed")).await.unwrap();
        assert_eq!(task(out), "failed");
        assert_eq!(
            (list.num_calls(), status.num_calls(), failure.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_command_still_running_is_ignored_without_a_call() {
        // No rule at all: any call fails the test.
        let env = Mocks::default().env();
        for status in ["InProgress", "Pending", "Delayed"] {
            let out = handle(&env, &settings(), event(status)).await.unwrap();
            assert_eq!(task(out), "ignored", "{status}");
        }
    }

    #[tokio::test]
    async fn a_command_without_a_task_token_is_not_waiting() {
        let list = listed("");
        // No Step Functions rule: completing anything fails the test.
        let env = Mocks {
            ssm: vec![&list],
            ..Mocks::default()
        }
        .env();
        let out = handle(&env, &settings(), event("Failed")).await.unwrap();
        assert_eq!(task(out), "not_waiting");
        assert_eq!(list.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_task_completed_already_is_not_waiting_not_an_error() {
        let list = listed(TOKEN);
        let status = invocation("Failed", 1, None);
        let gone = mock!(aws_sdk_sfn::Client::send_task_failure)
            .match_requests(|r| r.task_token() == Some(TOKEN))
            .then_error(|| {
                SendTaskFailureError::TaskDoesNotExist(
                    TaskDoesNotExist::builder()
                        .message("Task does not exist anymore")
                        .build(),
                )
            });
        let env = Mocks {
            ssm: vec![&list, &status],
            sfn: vec![&gone],
            ..Mocks::default()
        }
        .env();
        let out = handle(&env, &settings(), event("Failed")).await.unwrap();
        assert_eq!(task(out), "not_waiting");
        assert_eq!(gone.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_throttled_completion_is_transient() {
        let list = listed(TOKEN);
        let status = invocation("Failed", 1, None);
        let throttled = mock!(aws_sdk_sfn::Client::send_task_failure).then_http_response(|| {
            aws_sdk_sfn::config::http::HttpResponse::new(
                400.try_into().unwrap(),
                aws_sdk_s3::primitives::SdkBody::from(
                    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                ),
            )
        });
        let env = Mocks {
            ssm: vec![&list, &status],
            sfn: vec![&throttled],
            ..Mocks::default()
        }
        .env();
        let err = handle(&env, &settings(), event("Failed"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Complete { .. }), "{err:?}");
        assert_eq!(err.kind(), Kind::Transient);
        let text = err.to_string();
        assert!(text.contains(COMMAND_ID), "{text}");
        assert!(
            !text.contains("secret-part"),
            "the token is not shown: {text}"
        );
    }
}
