//! Systems Manager: the newest AMI from a public parameter, whether the
//! build nodes are managed yet, and one step of a batch sent with Run
//! Command and read back.
//!
//! * [`Ssm::ami_id`] — GetParameter for an [`AmiSource::SsmParameter`]
//!   (checked to hold an AMI id); a pinned AMI passes through;
//! * [`Ssm::put_image_id`] — PutParameter of a baked node image's id
//!   (data type `aws:ec2:image`: SSM itself checks the image exists);
//! * [`Ssm::managed`] — DescribeInstanceInformation filtered by
//!   `InstanceIds`: true when every instance is `Online`;
//! * [`Ssm::send`] — SendCommand of the project's document to one instance
//!   by id (never `Targets`, which could reach any tagged node), with the
//!   [`StepCommand::parameters`] and nothing else, output to the batch's
//!   bucket, a delivery timeout;
//! * [`Ssm::status`] — GetCommandInvocation mapped by
//!   [`ebfleet_core::step::classify`]. Right after SendCommand the
//!   invocation may not exist yet (`InvocationDoesNotExist`): still in
//!   progress. An instance SSM no longer knows (`InvalidInstanceId`, a
//!   terminated or interrupted spot node) is a failed step,
//!   [`FailureReason::NodeLost`], not an error.
//!
//! What the document does with the parameters, and why none of them ever
//! reaches a shell as text, is `ebfleet_core::step`'s contract.

use crate::call::{call_error, describe, CallError};
use aws_sdk_ssm::error::SdkError;
use aws_sdk_ssm::types::{InstanceInformationStringFilter, ParameterType, PingStatus};
use aws_sdk_ssm::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ebfleet_core::capacity::AmiSource;
use ebfleet_core::step::{CommandStatus, FailureReason, StepCommand};
use std::collections::BTreeSet;

/// How long SSM waits for the node to pick a command up (SendCommand's
/// `TimeoutSeconds`) before the invocation ends as `Delivery Timed Out`.
/// The node is already managed when a step is sent, so minutes are plenty.
pub const DELIVERY_TIMEOUT_SECS: i32 = 600;

/// DescribeInstanceInformation takes at most this many ids per filter.
const IDS_PER_REQUEST: usize = 50;

/// At most this much of a failed step's standard error goes into the
/// status's detail (the full output is in S3).
const STDERR_TAIL: usize = 500;

/// What went wrong with SSM. Every variant names what it is about: the
/// parameter, the instances, or the command and its instance.
#[derive(Debug, thiserror::Error)]
pub enum SsmError {
    #[error("SSM parameter {name}: not found")]
    ParameterNotFound { name: String },
    /// The parameter exists but does not hold an AMI id.
    #[error("SSM parameter {name}: {value:?} is not an AMI id")]
    NotAnAmi { name: String, value: String },
    /// SendCommand refused the instance: not a managed node (terminated,
    /// never registered, agent not running).
    #[error("instance {instance_id}: not a managed node SSM can reach ({detail})")]
    InvalidInstance { instance_id: String, detail: String },
    /// A call that failed: throttling (`ThrottlingException`), a timeout, a
    /// lost connection or a 5xx still failing after the SDK's own retries
    /// (`transient`), or an answer that will not change by asking again
    /// (access denied, no such document, parameters the document refuses).
    #[error(transparent)]
    Call(#[from] CallError),
    /// A successful answer without a field it always has.
    #[error("{resource}: {op} answered without {what}")]
    Incomplete {
        resource: String,
        op: &'static str,
        what: &'static str,
    },
}

impl SsmError {
    /// Whether asking again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SsmError::Call(call) if call.transient)
    }
}

/// The service as [`CallError`]s name it.
const SERVICE: &str = "SSM";

/// The SDK error as an [`SsmError::Call`] about `resource`.
fn error<E>(
    resource: impl Into<String>,
    op: &'static str,
    err: SdkError<E, HttpResponse>,
) -> SsmError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    SsmError::Call(call_error(SERVICE, op, resource, err, &[]))
}

fn command_resource(command_id: &str, instance_id: &str) -> String {
    format!("command {command_id} on instance {instance_id}")
}

/// The last [`STDERR_TAIL`] characters of `stderr`, escaped onto one line.
fn stderr_tail(stderr: &str) -> String {
    let stderr = stderr.trim_end();
    let skip = stderr.chars().count().saturating_sub(STDERR_TAIL);
    let tail: String = stderr.chars().skip(skip).collect();
    format!("{tail:?}")
}

/// Systems Manager for one account and region.
#[derive(Debug, Clone)]
pub struct Ssm {
    client: Client,
}

impl Ssm {
    pub fn new(client: Client) -> Self {
        Ssm { client }
    }

    /// From the shared SDK configuration ([`crate::load_config`]).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Ssm::new(Client::new(config))
    }

    /// The AMI id to launch: a pinned one or a checked node image as it
    /// is, or the value of the parameter (which must be an AMI id).
    pub async fn ami_id(&self, source: &AmiSource) -> Result<String, SsmError> {
        let name = match source {
            AmiSource::Pinned(id) | AmiSource::NodeImage(id) => return Ok(id.clone()),
            AmiSource::SsmParameter(name) => name,
        };
        let out = self
            .client
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_not_found())
                {
                    SsmError::ParameterNotFound { name: name.clone() }
                } else {
                    error(format!("SSM parameter {name}"), "GetParameter", e)
                }
            })?;
        let value =
            out.parameter()
                .and_then(|p| p.value())
                .ok_or_else(|| SsmError::Incomplete {
                    resource: format!("SSM parameter {name}"),
                    op: "GetParameter",
                    what: "a value",
                })?;
        match AmiSource::pinned(value) {
            Ok(AmiSource::Pinned(id)) => {
                tracing::debug!(parameter = %name, ami = %id, "resolved AMI");
                Ok(id)
            }
            _ => Err(SsmError::NotAnAmi {
                name: name.clone(),
                value: value.chars().take(100).collect(),
            }),
        }
    }

    /// Write `image_id` to the parameter `name` (overwriting the previous
    /// image's), as data type `aws:ec2:image`, which SSM only accepts for
    /// an image it can find.
    pub async fn put_image_id(&self, name: &str, image_id: &str) -> Result<(), SsmError> {
        if !ebfleet_core::capacity::is_ami_id(image_id) {
            return Err(SsmError::NotAnAmi {
                name: name.to_string(),
                value: image_id.chars().take(100).collect(),
            });
        }
        self.client
            .put_parameter()
            .name(name)
            .value(image_id)
            .r#type(ParameterType::String)
            .data_type("aws:ec2:image")
            .overwrite(true)
            .description("ebfleet: the newest baked node image (see infra/OPERATOR.md)")
            .send()
            .await
            .map_err(|e| error(format!("SSM parameter {name}"), "PutParameter", e))?;
        tracing::info!(parameter = name, image_id, "node image recorded");
        Ok(())
    }

    /// Whether every one of `instance_ids` is a managed node whose agent is
    /// `Online`. An instance SSM does not list yet (still booting, agent not
    /// registered) or lists as `ConnectionLost`/`Inactive` makes it false;
    /// so does an empty list (nothing to wait for is a caller's mistake,
    /// never "ready").
    pub async fn managed(&self, instance_ids: &[String]) -> Result<bool, SsmError> {
        if instance_ids.is_empty() {
            return Ok(false);
        }
        let online = self.online(instance_ids).await?;
        let waiting: Vec<&str> = instance_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !online.contains(*id))
            .collect();
        tracing::debug!(?waiting, online = online.len(), "SSM managed nodes");
        Ok(waiting.is_empty())
    }

    /// Which of `instance_ids` are managed nodes whose agent is `Online`.
    pub async fn online(&self, instance_ids: &[String]) -> Result<BTreeSet<String>, SsmError> {
        let mut online: BTreeSet<String> = BTreeSet::new();
        for chunk in instance_ids.chunks(IDS_PER_REQUEST) {
            let filter = InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .set_values(Some(chunk.to_vec()))
                .build()
                .map_err(|e| CallError {
                    service: SERVICE,
                    op: "DescribeInstanceInformation",
                    resource: format!("instances {}", chunk.join(", ")),
                    detail: e.to_string(),
                    transient: false,
                })?;
            let mut pages = self
                .client
                .describe_instance_information()
                .filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    error(
                        format!("instances {}", chunk.join(", ")),
                        "DescribeInstanceInformation",
                        e,
                    )
                })?;
                for info in page.instance_information_list() {
                    if let (Some(id), Some(PingStatus::Online)) =
                        (info.instance_id(), info.ping_status())
                    {
                        online.insert(id.to_string());
                    }
                }
            }
        }
        Ok(online)
    }

    /// Send `command` to one instance with the project's document
    /// `document_name`; its output goes to the command's bucket under
    /// `output_s3_prefix`. Returns the command id.
    pub async fn send(
        &self,
        command: &StepCommand,
        instance_id: &str,
        document_name: &str,
        output_s3_prefix: &str,
    ) -> Result<String, SsmError> {
        let resource = format!("document {document_name} on instance {instance_id}");
        let out = self
            .client
            .send_command()
            .instance_ids(instance_id)
            .document_name(document_name)
            .set_parameters(Some(command.parameters().into_iter().collect()))
            .comment(command.comment())
            .timeout_seconds(DELIVERY_TIMEOUT_SECS)
            .max_concurrency("1")
            .max_errors("0")
            .output_s3_bucket_name(command.bucket().as_str())
            .output_s3_key_prefix(output_s3_prefix)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_invalid_instance_id() => SsmError::InvalidInstance {
                    instance_id: instance_id.to_string(),
                    detail: describe(&e),
                },
                _ => error(resource.clone(), "SendCommand", e),
            })?;
        let command_id = out
            .command()
            .and_then(|c| c.command_id())
            .ok_or_else(|| SsmError::Incomplete {
                resource: resource.clone(),
                op: "SendCommand",
                what: "a command id",
            })?
            .to_string();
        tracing::info!(
            %command_id,
            instance_id,
            step = %command.step(),
            batch_key = %command.batch_key(),
            "step sent"
        );
        Ok(command_id)
    }

    /// The task token command `command_id` was sent with (its `taskToken`
    /// parameter), `None` when it had none.
    pub async fn command_task_token(&self, command_id: &str) -> Result<Option<String>, SsmError> {
        let out = self
            .client
            .list_commands()
            .command_id(command_id)
            .send()
            .await
            .map_err(|e| error(format!("command {command_id}"), "ListCommands", e))?;
        Ok(out
            .commands()
            .first()
            .and_then(|c| c.parameters())
            .and_then(|p| p.get(ebfleet_core::step::param::TASK_TOKEN))
            .and_then(|v| v.first())
            .filter(|t| !t.is_empty())
            .cloned())
    }

    /// Where the step sent as `command_id` to `instance_id` stands.
    pub async fn status(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> Result<CommandStatus, SsmError> {
        let result = self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let resource = command_resource(command_id, instance_id);
                return match e.as_service_error() {
                    // Invocations appear a moment after SendCommand.
                    Some(s) if s.is_invocation_does_not_exist() => {
                        tracing::debug!(%resource, "invocation not there yet");
                        Ok(CommandStatus::InProgress)
                    }
                    Some(s) if s.is_invalid_instance_id() => Ok(CommandStatus::failed(
                        FailureReason::NodeLost,
                        format!(
                            "instance {instance_id} is no longer a managed node: {}",
                            describe(&e)
                        ),
                    )),
                    _ => Err(error(resource, "GetCommandInvocation", e)),
                };
            }
        };
        let status = out.status().map(|s| s.as_str()).unwrap_or_default();
        let details = out.status_details().unwrap_or_default();
        let classified = ebfleet_core::step::classify(status, details, out.response_code());
        Ok(match classified {
            CommandStatus::Failed {
                reason: reason @ FailureReason::StepFailed { .. },
                detail,
            } => {
                let stderr = out.standard_error_content().unwrap_or_default();
                let detail = if stderr.trim().is_empty() {
                    detail
                } else {
                    format!("{detail}; stderr ends: {}", stderr_tail(stderr))
                };
                CommandStatus::Failed { reason, detail }
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests;
