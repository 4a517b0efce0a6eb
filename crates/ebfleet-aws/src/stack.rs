//! The deployed stack, found by name: CloudFormation's outputs say which
//! bucket, table and state machine are its (`infra/template.yaml`'s
//! `Outputs`), so the CLI needs nothing but the stack's name.

use crate::call::{call_error, CallError};
use aws_sdk_cloudformation::Client;
use std::collections::HashMap;

/// The outputs the CLI reads.
pub const BUCKET_OUTPUT: &str = "BucketName";
pub const TABLE_OUTPUT: &str = "TableName";
pub const STATE_MACHINE_OUTPUT: &str = "StateMachineArn";
pub const SIGNING_KEY_OUTPUT: &str = "SigningKeyArn";

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("stack {stack} has no output {output} (is it an ebfleet stack?)")]
    NoOutput { stack: String, output: &'static str },
    #[error("stack {0} does not exist (deploy it, or name it with --stack)")]
    NotFound(String),
    #[error(transparent)]
    Call(Box<CallError>),
}

/// What a run needs of the deployed stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub stack: String,
    pub bucket: String,
    pub table: String,
    pub state_machine_arn: String,
    /// The key every promoted tarball is signed with.
    pub signing_key: String,
}

impl Deployed {
    /// From the stack's outputs, each required.
    pub fn from_outputs(
        stack: &str,
        outputs: &HashMap<String, String>,
    ) -> Result<Self, StackError> {
        let get = |output: &'static str| {
            outputs
                .get(output)
                .cloned()
                .ok_or_else(|| StackError::NoOutput {
                    stack: stack.to_string(),
                    output,
                })
        };
        Ok(Deployed {
            stack: stack.to_string(),
            bucket: get(BUCKET_OUTPUT)?,
            table: get(TABLE_OUTPUT)?,
            state_machine_arn: get(STATE_MACHINE_OUTPUT)?,
            signing_key: get(SIGNING_KEY_OUTPUT)?,
        })
    }
}

/// The stack `name` of the account and region of `config`.
pub async fn find(config: &aws_config::SdkConfig, name: &str) -> Result<Deployed, StackError> {
    find_with(&Client::new(config), name).await
}

async fn find_with(client: &Client, name: &str) -> Result<Deployed, StackError> {
    let out = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| {
            // CloudFormation answers a missing stack with a ValidationError.
            let missing = e
                .as_service_error()
                .and_then(aws_sdk_cloudformation::error::ProvideErrorMetadata::message)
                .is_some_and(|m| m.contains("does not exist"));
            if missing {
                StackError::NotFound(name.to_string())
            } else {
                StackError::Call(Box::new(call_error(
                    "CloudFormation",
                    "DescribeStacks",
                    name.to_string(),
                    e,
                    &[],
                )))
            }
        })?;
    let stack = out
        .stacks()
        .first()
        .ok_or_else(|| StackError::NotFound(name.to_string()))?;
    let outputs: HashMap<String, String> = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect();
    Deployed::from_outputs(name, &outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Output, Stack, StackStatus};
    use aws_smithy_mocks::{mock, mock_client};

    fn output(k: &str, v: &str) -> Output {
        Output::builder().output_key(k).output_value(v).build()
    }

    #[tokio::test]
    async fn the_outputs_name_the_resources() {
        let rule = mock!(Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("ebfleet"))
            .then_output(|| {
                DescribeStacksOutput::builder()
                    .stacks(
                        Stack::builder()
                            .stack_name("ebfleet")
                            .stack_status(StackStatus::CreateComplete)
                            .creation_time(aws_smithy_types::DateTime::from_secs(0))
                            .outputs(output(BUCKET_OUTPUT, "b"))
                            .outputs(output(TABLE_OUTPUT, "t"))
                            .outputs(output(STATE_MACHINE_OUTPUT, "arn:sm"))
                            .outputs(output(SIGNING_KEY_OUTPUT, "arn:key"))
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudformation, [&rule]);
        let d = find_with(&client, "ebfleet").await.unwrap();
        assert_eq!(
            (
                d.bucket.as_str(),
                d.table.as_str(),
                d.state_machine_arn.as_str()
            ),
            ("b", "t", "arn:sm")
        );
    }

    #[test]
    fn a_missing_output_is_named() {
        let outputs = HashMap::from([(BUCKET_OUTPUT.to_string(), "b".to_string())]);
        let e = Deployed::from_outputs("s", &outputs).unwrap_err();
        assert!(e.to_string().contains(TABLE_OUTPUT), "{e}");
    }
}
