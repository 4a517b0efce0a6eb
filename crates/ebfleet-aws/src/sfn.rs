//! Step Functions: start an execution under a validated name, list the
//! running ones (the trigger's "is one running?"), and answer a task token
//! (heartbeat, success, failure) for the `.waitForTaskToken` states a build
//! node reports to.
//!
//! A task token is a capability: whoever holds it can finish the task. It
//! never appears whole in an error or a log line, only its last characters
//! and its length ([`task_ref`]).

use crate::call::{call_error, CallError};
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError;
use aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatError;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_sfn::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ebfleet_core::names::ExecutionName;
use ebfleet_core::wire::STATE_PAYLOAD_LIMIT;
use serde::Serialize;

/// Longest `error` of SendTaskFailure, in characters.
pub const MAX_FAILURE_ERROR: usize = 256;
/// Longest `cause` of SendTaskFailure, in characters.
pub const MAX_FAILURE_CAUSE: usize = 32_768;

/// Error codes that mean "not now" on top of the SDK's throttling and
/// transient codes: the account's running-execution limit (it frees up as
/// executions end) and KMS throttling of an encrypted state machine.
const SFN_TRANSIENT: &[&str] = &["ExecutionLimitExceeded", "KmsThrottlingException"];

/// What went wrong with a state machine, an execution or a task. Every
/// variant names it: the state machine's ARN and the execution's name, or
/// the task by [`task_ref`].
#[derive(Debug, thiserror::Error)]
pub enum SfnError {
    /// An execution of that name exists already (running or ended within
    /// 90 days). The trigger names executions by time and keys, so this is
    /// the same start delivered twice: nothing to do.
    #[error("{state_machine}: an execution named {name} exists already")]
    AlreadyExists { state_machine: String, name: String },
    /// The task's heartbeat or overall timeout ran out: Step Functions has
    /// moved on, the node should stop the step.
    #[error("{task}: {op}: the task timed out")]
    TaskTimedOut { task: String, op: &'static str },
    /// The token names no task (finished, its execution ended, or never
    /// existed).
    #[error("{task}: {op}: no such task")]
    TaskDoesNotExist { task: String, op: &'static str },
    /// A call that failed: throttling, the execution limit or KMS
    /// throttling, a timeout, a lost connection or a 5xx still
    /// failing after the SDK's own retries (`transient`), or an answer that
    /// will not change by asking again (no such state machine, access
    /// denied, invalid input).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The input or output does not serialise, or is over Step Functions'
    /// 256 KiB payload limit; nothing was sent.
    #[error("{resource}: {op}: {detail}")]
    Payload {
        resource: String,
        op: &'static str,
        detail: String,
    },
}

impl SfnError {
    /// Whether asking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SfnError::Call(call) if call.transient)
    }
}

/// A task token as errors and logs show it: its last 8 characters and its
/// length, `task …Xy12Ab34 (812 chars)`.
pub fn task_ref(token: &str) -> String {
    let n = token.chars().count();
    let tail: String = token.chars().skip(n.saturating_sub(8)).collect();
    format!("task …{} ({n} chars)", tail.escape_debug())
}

/// `s` cut to `max` characters.
fn cut(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The service as [`CallError`]s name it.
const SERVICE: &str = "Step Functions";

/// The SDK error as an [`SfnError::Call`] about `resource`, the
/// [`SFN_TRANSIENT`] codes transient too.
fn classify<E>(resource: String, op: &'static str, err: SdkError<E, HttpResponse>) -> SfnError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    SfnError::Call(call_error(SERVICE, op, resource, err, SFN_TRANSIENT))
}

/// The errors the three task calls share.
trait TaskCallError: ProvideErrorMetadata + std::error::Error + 'static {
    fn timed_out(&self) -> bool;
    fn no_such_task(&self) -> bool;
}

macro_rules! task_call_error {
    ($($ty:ty),*) => {$(
        impl TaskCallError for $ty {
            fn timed_out(&self) -> bool {
                self.is_task_timed_out()
            }
            fn no_such_task(&self) -> bool {
                self.is_task_does_not_exist()
            }
        }
    )*};
}

task_call_error!(
    SendTaskHeartbeatError,
    SendTaskSuccessError,
    SendTaskFailureError
);

/// The typed answers of the task calls, else [`classify`].
fn task_error<E: TaskCallError>(
    token: &str,
    op: &'static str,
    err: SdkError<E, HttpResponse>,
) -> SfnError {
    let task = task_ref(token);
    match err.as_service_error() {
        Some(e) if e.timed_out() => SfnError::TaskTimedOut { task, op },
        Some(e) if e.no_such_task() => SfnError::TaskDoesNotExist { task, op },
        _ => classify(task, op, err),
    }
}

/// JSON of `value`, refused before sending when over the payload limit.
fn payload<T: Serialize + ?Sized>(
    resource: &dyn Fn() -> String,
    op: &'static str,
    value: &T,
) -> Result<String, SfnError> {
    let text = serde_json::to_string(value).map_err(|e| SfnError::Payload {
        resource: resource(),
        op,
        detail: format!("does not serialise to JSON: {e}"),
    })?;
    if text.len() > STATE_PAYLOAD_LIMIT {
        return Err(SfnError::Payload {
            resource: resource(),
            op,
            detail: format!(
                "{} bytes of JSON, over the {STATE_PAYLOAD_LIMIT}-byte payload limit",
                text.len()
            ),
        });
    }
    Ok(text)
}

/// What DescribeExecution says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionInfo {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, ...
    pub status: String,
    /// The output JSON of a succeeded execution.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub name: String,
    /// Unix seconds.
    pub started: u64,
    pub stopped: Option<u64>,
}

/// One execution of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSummary {
    pub arn: String,
    pub name: String,
    /// Unix seconds.
    pub started: u64,
}

impl ExecutionInfo {
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING" || self.status == "PENDING_REDRIVE"
    }
}

/// Step Functions for one account and region.
#[derive(Debug, Clone)]
pub struct StepFunctions {
    client: Client,
}

impl StepFunctions {
    pub fn new(client: Client) -> Self {
        StepFunctions { client }
    }

    /// From the shared SDK configuration ([`crate::load_config`]).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        StepFunctions::new(Client::new(config))
    }

    /// Start an execution named `name` with `input` as JSON; its ARN.
    /// A name in use is [`SfnError::AlreadyExists`], not retryable.
    pub async fn start<T: Serialize + ?Sized>(
        &self,
        state_machine_arn: &str,
        name: &ExecutionName,
        input: &T,
    ) -> Result<String, SfnError> {
        const OP: &str = "StartExecution";
        let resource = || format!("{state_machine_arn} execution {name}");
        let input = payload(&resource, OP, input)?;
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name.as_str())
            .input(input)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists())
                {
                    SfnError::AlreadyExists {
                        state_machine: state_machine_arn.to_string(),
                        name: name.to_string(),
                    }
                } else {
                    classify(resource(), OP, e)
                }
            })?;
        tracing::info!(state_machine = state_machine_arn, %name, execution = out.execution_arn(), "started");
        Ok(out.execution_arn().to_string())
    }

    /// The ARNs of the state machine's running executions, every page.
    pub async fn running(&self, state_machine_arn: &str) -> Result<Vec<String>, SfnError> {
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .status_filter(ExecutionStatus::Running)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| classify(state_machine_arn.to_string(), "ListExecutions", e))?;
            arns.extend(
                page.executions()
                    .iter()
                    .map(|e| e.execution_arn().to_string()),
            );
        }
        tracing::debug!(
            state_machine = state_machine_arn,
            running = arns.len(),
            "listed"
        );
        Ok(arns)
    }

    /// Every execution of the state machine, newest first, every page.
    pub async fn executions(
        &self,
        state_machine_arn: &str,
    ) -> Result<Vec<ExecutionSummary>, SfnError> {
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| classify(state_machine_arn.to_string(), "ListExecutions", e))?;
            out.extend(page.executions().iter().map(|e| ExecutionSummary {
                arn: e.execution_arn().to_string(),
                name: e.name().to_string(),
                started: e.start_date().secs().max(0) as u64,
            }));
        }
        out.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.name.cmp(&a.name)));
        Ok(out)
    }

    /// Where an execution stands: its status, and its output once it
    /// succeeded (or error and cause once it failed).
    pub async fn describe(&self, execution_arn: &str) -> Result<ExecutionInfo, SfnError> {
        let out = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| classify(execution_arn.to_string(), "DescribeExecution", e))?;
        Ok(ExecutionInfo {
            status: out.status().as_str().to_string(),
            output: out.output().map(str::to_string),
            error: out.error().map(str::to_string),
            cause: out.cause().map(|c| cut(c, 1000).to_string()),
            name: out.name().unwrap_or_default().to_string(),
            started: out.start_date().secs().max(0) as u64,
            stopped: out.stop_date().map(|d| d.secs().max(0) as u64),
        })
    }

    /// Stop a running execution; one that ended already is left alone.
    pub async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), SfnError> {
        match self
            .client
            .stop_execution()
            .execution_arn(execution_arn)
            .error("ebfleet.Released")
            .cause(cut(cause, MAX_FAILURE_CAUSE))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(execution_arn.to_string(), "StopExecution", e)),
        }
    }

    /// The task is alive: resets its heartbeat timeout.
    pub async fn heartbeat(&self, task_token: &str) -> Result<(), SfnError> {
        self.client
            .send_task_heartbeat()
            .task_token(task_token)
            .send()
            .await
            .map_err(|e| task_error(task_token, "SendTaskHeartbeat", e))?;
        Ok(())
    }

    /// The task succeeded with `output` (as JSON) as the state's result.
    /// Output over the payload limit is refused before sending.
    pub async fn succeed<T: Serialize + ?Sized>(
        &self,
        task_token: &str,
        output: &T,
    ) -> Result<(), SfnError> {
        const OP: &str = "SendTaskSuccess";
        let output = payload(&|| task_ref(task_token), OP, output)?;
        self.client
            .send_task_success()
            .task_token(task_token)
            .output(output)
            .send()
            .await
            .map_err(|e| task_error(task_token, OP, e))?;
        tracing::info!(task = %task_ref(task_token), "task succeeded");
        Ok(())
    }

    /// The task failed: `error` is the name a `Catch` or `Retry` matches
    /// (`ErrorEquals`), `cause` the detail. Both are cut to Step Functions'
    /// limits ([`MAX_FAILURE_ERROR`], [`MAX_FAILURE_CAUSE`] characters)
    /// rather than refused: a failure report must get through.
    pub async fn fail(&self, task_token: &str, error: &str, cause: &str) -> Result<(), SfnError> {
        self.client
            .send_task_failure()
            .task_token(task_token)
            .error(cut(error, MAX_FAILURE_ERROR))
            .cause(cut(cause, MAX_FAILURE_CAUSE))
            .send()
            .await
            .map_err(|e| task_error(task_token, "SendTaskFailure", e))?;
        tracing::info!(task = %task_ref(task_token), error, "task failed");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
