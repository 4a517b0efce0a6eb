//! The SSM adapter against `aws-smithy-mocks`: each test checks the request
//! (parameter name, instance filter, document, instance ids, exact
//! parameters) as well as the answer, so a wrong adapter fails.

use super::*;
use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput;
use aws_sdk_ssm::operation::get_command_invocation::{
    GetCommandInvocationError, GetCommandInvocationOutput,
};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::send_command::{SendCommandError, SendCommandOutput};
use aws_sdk_ssm::types::error::{InvalidInstanceId, InvocationDoesNotExist, ParameterNotFound};
use aws_sdk_ssm::types::{Command, CommandInvocationStatus, InstanceInformation, Parameter};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::body::SdkBody;
use ebfleet_core::step::Step;
use std::collections::HashMap;

const AL2023_ARM: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64";
const INSTANCE: &str = "i-0123456789abcdef0";
const OTHER: &str = "i-0fedcba9876543210";
const DOCUMENT: &str = "ebfleet-node-step";
const COMMAND_ID: &str = "1a2b3c4d-1111-2222-3333-444455556666";

fn no_retries(c: aws_sdk_ssm::config::Builder) -> aws_sdk_ssm::config::Builder {
    c.retry_config(RetryConfig::disabled())
}

/// An SSM (JSON protocol) error answer, as SSM sends it.
fn ssm_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
    )
}

fn throttled() -> HttpResponse {
    ssm_error(400, "ThrottlingException", "Rate exceeded")
}

fn step_command() -> StepCommand {
    StepCommand::parse(
        "build",
        "ebfleet-builds",
        "plans/run-2026-11-24/amzn-2023_graviton-3/7.json",
    )
    .unwrap()
}

fn info(id: &str, ping: PingStatus) -> InstanceInformation {
    InstanceInformation::builder()
        .instance_id(id)
        .ping_status(ping)
        .build()
}

fn filtered_by(
    r: &aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationInput,
    ids: &[&str],
) -> bool {
    r.filters().len() == 1
        && r.filters()[0].key() == "InstanceIds"
        && r.filters()[0].values() == ids
        && r.instance_information_filter_list().is_empty()
}

// ------------------------------------------------------------------ AMI

#[tokio::test]
async fn a_pinned_ami_passes_through_without_a_call() {
    let never = mock!(Client::get_parameter).then_output(|| GetParameterOutput::builder().build());
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&never]));
    let id = ssm
        .ami_id(&AmiSource::pinned("ami-0abcdef1234567890").unwrap())
        .await
        .unwrap();
    assert_eq!(id, "ami-0abcdef1234567890");
    assert_eq!(never.num_calls(), 0);
}

#[tokio::test]
async fn the_public_parameter_gives_the_newest_ami() {
    let get = mock!(Client::get_parameter)
        .match_requests(|r| r.name() == Some(AL2023_ARM) && r.with_decryption().is_none())
        .then_output(|| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(AL2023_ARM)
                        .value("ami-0123456789abcdef0")
                        .build(),
                )
                .build()
        });
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&get]));
    let id = ssm
        .ami_id(&AmiSource::SsmParameter(AL2023_ARM.into()))
        .await
        .unwrap();
    assert_eq!(id, "ami-0123456789abcdef0");
    assert_eq!(get.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_parameter_is_named() {
    let get = mock!(Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&get]));
    let err = ssm
        .ami_id(&AmiSource::SsmParameter("/aws/service/nope".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SsmError::ParameterNotFound { ref name } if name == "/aws/service/nope"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "SSM parameter /aws/service/nope: not found"
    );
}

#[tokio::test]
async fn a_parameter_that_is_not_an_ami_is_refused() {
    let get = mock!(Client::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(Parameter::builder().value("ami-1234; reboot").build())
            .build()
    });
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&get]));
    let err = ssm
        .ami_id(&AmiSource::SsmParameter(AL2023_ARM.into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SsmError::NotAnAmi { ref value, .. } if value == "ami-1234; reboot"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_throttled_parameter_read_is_retryable() {
    let get = mock!(Client::get_parameter).then_http_response(throttled);
    let ssm = Ssm::new(mock_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&get],
        no_retries
    ));
    let err = ssm
        .ami_id(&AmiSource::SsmParameter(AL2023_ARM.into()))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(AL2023_ARM) && text.contains("ThrottlingException"),
        "{text}"
    );
}

// ------------------------------------------------------------------ managed

#[tokio::test]
async fn managed_when_every_instance_is_online() {
    let ids = [INSTANCE.to_string(), OTHER.to_string()];
    let describe = mock!(Client::describe_instance_information)
        .match_requests(|r| filtered_by(r, &[INSTANCE, OTHER]) && r.next_token().is_none())
        .then_output(|| {
            DescribeInstanceInformationOutput::builder()
                .instance_information_list(info(INSTANCE, PingStatus::Online))
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::describe_instance_information)
        .match_requests(|r| filtered_by(r, &[INSTANCE, OTHER]) && r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeInstanceInformationOutput::builder()
                .instance_information_list(info(OTHER, PingStatus::Online))
                .build()
        });
    let ssm = Ssm::new(mock_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&describe, &second]
    ));
    assert!(ssm.managed(&ids).await.unwrap());
    assert_eq!((describe.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn not_managed_while_any_instance_is_missing_or_not_online() {
    let ids = [INSTANCE.to_string(), OTHER.to_string()];
    let answers: [Vec<InstanceInformation>; 4] = [
        // One online, one not registered yet.
        vec![info(INSTANCE, PingStatus::Online)],
        // One online, one lost its connection.
        vec![
            info(INSTANCE, PingStatus::Online),
            info(OTHER, PingStatus::ConnectionLost),
        ],
        vec![
            info(INSTANCE, PingStatus::Inactive),
            info(OTHER, PingStatus::Online),
        ],
        // None registered.
        vec![],
    ];
    for list in answers {
        let describe = mock!(Client::describe_instance_information)
            .match_requests(|r| filtered_by(r, &[INSTANCE, OTHER]))
            .then_output(move || {
                DescribeInstanceInformationOutput::builder()
                    .set_instance_information_list(Some(list.clone()))
                    .build()
            });
        let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&describe]));
        assert!(!ssm.managed(&ids).await.unwrap());
        assert_eq!(describe.num_calls(), 1);
    }
}

#[tokio::test]
async fn nothing_to_wait_for_is_never_managed() {
    let never = mock!(Client::describe_instance_information)
        .then_output(|| DescribeInstanceInformationOutput::builder().build());
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&never]));
    assert!(!ssm.managed(&[]).await.unwrap());
    assert_eq!(never.num_calls(), 0);
}

#[tokio::test]
async fn many_instances_are_asked_for_in_chunks() {
    let ids: Vec<String> = (0..IDS_PER_REQUEST + 1)
        .map(|i| format!("i-{i:017x}"))
        .collect();
    let first: Vec<String> = ids[..IDS_PER_REQUEST].to_vec();
    let last = ids[IDS_PER_REQUEST].clone();
    let all_online = |ids: Vec<String>| {
        move || {
            DescribeInstanceInformationOutput::builder()
                .set_instance_information_list(Some(
                    ids.iter().map(|id| info(id, PingStatus::Online)).collect(),
                ))
                .build()
        }
    };
    let (f, l) = (first.clone(), last.clone());
    let chunk1 = mock!(Client::describe_instance_information)
        .match_requests(move |r| r.filters()[0].values() == f.as_slice())
        .then_output(all_online(first));
    let chunk2 = mock!(Client::describe_instance_information)
        .match_requests(move |r| r.filters()[0].values() == [l.clone()])
        .then_output(all_online(vec![last]));
    let ssm = Ssm::new(mock_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&chunk1, &chunk2]
    ));
    assert!(ssm.managed(&ids).await.unwrap());
    assert_eq!((chunk1.num_calls(), chunk2.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_failing_describe_names_the_instances() {
    // moto answers DescribeInstanceInformation with HTTP 500.
    for (answer, retryable) in [
        (throttled as fn() -> HttpResponse, true),
        (|| ssm_error(500, "InternalServerError", "boom"), true),
        (|| ssm_error(400, "AccessDeniedException", "no"), false),
    ] {
        let describe = mock!(Client::describe_instance_information).then_http_response(answer);
        let ssm = Ssm::new(mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [&describe],
            no_retries
        ));
        let err = ssm.managed(&[INSTANCE.to_string()]).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{err}");
        assert!(err.to_string().contains(INSTANCE), "{err}");
    }
}

// ------------------------------------------------------------------ send

#[tokio::test]
async fn send_targets_one_instance_with_exactly_the_domain_parameters() {
    let expected: HashMap<String, Vec<String>> = step_command().parameters().into_iter().collect();
    let send = mock!(Client::send_command)
        .match_requests(move |r| {
            r.document_name() == Some(DOCUMENT)
                && r.instance_ids() == [INSTANCE]
                && r.targets().is_empty()
                && r.parameters() == Some(&expected)
                && r.output_s3_bucket_name() == Some("ebfleet-builds")
                && r.output_s3_key_prefix()
                    == Some("logs/ssm/amzn-2023_graviton-3/run-2026-11-24/7/build")
                && r.timeout_seconds() == Some(DELIVERY_TIMEOUT_SECS)
                && r.max_errors() == Some("0")
                && r.comment() == Some("ebfleet build amzn-2023_graviton-3 batch 7")
        })
        .then_output(|| {
            SendCommandOutput::builder()
                .command(Command::builder().command_id(COMMAND_ID).build())
                .build()
        });
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&send]));
    let id = ssm
        .send(
            &step_command(),
            INSTANCE,
            DOCUMENT,
            "logs/ssm/amzn-2023_graviton-3/run-2026-11-24/7/build",
        )
        .await
        .unwrap();
    assert_eq!(id, COMMAND_ID);
    assert_eq!(send.num_calls(), 1);
    // The parameters really are the domain's, one value each.
    let params = step_command().parameters();
    assert_eq!(params["step"], ["build"]);
    assert_eq!(
        params["batchKey"],
        ["plans/run-2026-11-24/amzn-2023_graviton-3/7.json"]
    );
    assert!(params.values().all(|v| v.len() == 1));
}

#[tokio::test]
async fn every_step_sends_its_own_name() {
    for step in Step::ALL {
        let send = mock!(Client::send_command)
            .match_requests(move |r| {
                r.parameters()
                    .is_some_and(|p| p.get("step") == Some(&vec![step.as_str().to_string()]))
            })
            .then_output(|| {
                SendCommandOutput::builder()
                    .command(Command::builder().command_id(COMMAND_ID).build())
                    .build()
            });
        let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&send]));
        let c = StepCommand::new(
            step,
            step_command().bucket().clone(),
            step_command().batch_key().clone(),
        );
        ssm.send(&c, INSTANCE, DOCUMENT, "p").await.unwrap();
        assert_eq!(send.num_calls(), 1, "{step}");
    }
}

#[tokio::test]
async fn send_to_a_lost_instance_names_it() {
    let send = mock!(Client::send_command).then_error(|| {
        SendCommandError::InvalidInstanceId(
            InvalidInstanceId::builder()
                .message("Instances not in a valid state for account")
                .build(),
        )
    });
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&send]));
    let err = ssm
        .send(&step_command(), INSTANCE, DOCUMENT, "p")
        .await
        .unwrap_err();
    assert!(
        matches!(err, SsmError::InvalidInstance { ref instance_id, .. } if instance_id == INSTANCE),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .starts_with(&format!("instance {INSTANCE}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn send_failures_name_the_document_and_instance() {
    for (answer, retryable) in [
        (throttled as fn() -> HttpResponse, true),
        (
            || ssm_error(400, "InvalidParameters", "bad parameter step"),
            false,
        ),
        (
            || ssm_error(400, "InvalidDocument", "no such document"),
            false,
        ),
    ] {
        let send = mock!(Client::send_command).then_http_response(answer);
        let ssm = Ssm::new(mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [&send],
            no_retries
        ));
        let err = ssm
            .send(&step_command(), INSTANCE, DOCUMENT, "p")
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "SSM SendCommand document {DOCUMENT} on instance {INSTANCE}"
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn send_without_a_command_id_is_an_error() {
    let send = mock!(Client::send_command).then_output(|| SendCommandOutput::builder().build());
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&send]));
    let err = ssm
        .send(&step_command(), INSTANCE, DOCUMENT, "p")
        .await
        .unwrap_err();
    assert!(matches!(err, SsmError::Incomplete { .. }), "{err:?}");
}

// ------------------------------------------------------------------ status

fn invocation(
    status: &str,
    details: &str,
    code: i32,
    stderr: Option<&str>,
) -> GetCommandInvocationOutput {
    GetCommandInvocationOutput::builder()
        .command_id(COMMAND_ID)
        .instance_id(INSTANCE)
        .status(CommandInvocationStatus::from(status))
        .status_details(details)
        .response_code(code)
        .set_standard_error_content(stderr.map(str::to_string))
        .build()
}

async fn status_of(out: GetCommandInvocationOutput) -> CommandStatus {
    let get = mock!(Client::get_command_invocation)
        .match_requests(|r| r.command_id() == Some(COMMAND_ID) && r.instance_id() == Some(INSTANCE))
        .then_output(move || out.clone());
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&get]));
    let status = ssm.status(COMMAND_ID, INSTANCE).await.unwrap();
    assert_eq!(get.num_calls(), 1);
    status
}

fn reason(status: &CommandStatus) -> Option<&FailureReason> {
    match status {
        CommandStatus::Failed { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn every_invocation_status_is_mapped() {
    use FailureReason::*;
    let cases: &[(&str, &str, i32, Option<FailureReason>, bool)] = &[
        ("Pending", "Pending", -1, None, false),
        ("InProgress", "In Progress", -1, None, false),
        ("Delayed", "Delayed", -1, None, false),
        ("Cancelling", "Cancelling", -1, None, false),
        ("Success", "Success", 0, None, true),
        (
            "Failed",
            "Failed",
            1,
            Some(StepFailed { exit_code: 1 }),
            true,
        ),
        ("TimedOut", "Execution Timed Out", -1, Some(TimedOut), true),
        (
            "TimedOut",
            "Delivery Timed Out",
            -1,
            Some(Undeliverable),
            true,
        ),
        ("Failed", "Undeliverable", -1, Some(Undeliverable), true),
        ("Cancelled", "Canceled", -1, Some(Cancelled), true),
        ("Cancelled", "Terminated", -1, Some(Cancelled), true),
        ("SomethingNew", "Something New", -1, Some(Unknown), true),
    ];
    for (status, details, code, expected, terminal) in cases {
        let got = status_of(invocation(status, details, *code, None)).await;
        assert_eq!(
            reason(&got),
            expected.as_ref(),
            "{status}/{details}: {got:?}"
        );
        assert_eq!(got.is_terminal(), *terminal, "{status}/{details}");
        if expected.is_none() && *terminal {
            assert_eq!(got, CommandStatus::Success);
        }
    }
}

#[tokio::test]
async fn a_failed_step_carries_the_end_of_its_stderr() {
    let long = format!("{}\neb: compile error in zlib\n", "x".repeat(2_000));
    let got = status_of(invocation("Failed", "Failed", 2, Some(&long))).await;
    let CommandStatus::Failed { reason, detail } = got else {
        panic!("{got:?}")
    };
    assert_eq!(reason, FailureReason::StepFailed { exit_code: 2 });
    assert!(
        detail.starts_with("ebfleet-node exited with code 2"),
        "{detail}"
    );
    assert!(
        detail.ends_with(r#"eb: compile error in zlib""#),
        "{detail}"
    );
    assert!(!detail.contains('\n'), "{detail}");
    assert!(detail.len() < 800, "{}", detail.len());
}

#[tokio::test]
async fn an_invocation_not_there_yet_is_in_progress() {
    let get = mock!(Client::get_command_invocation).then_error(|| {
        GetCommandInvocationError::InvocationDoesNotExist(InvocationDoesNotExist::builder().build())
    });
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&get]));
    assert_eq!(
        ssm.status(COMMAND_ID, INSTANCE).await.unwrap(),
        CommandStatus::InProgress
    );
}

#[tokio::test]
async fn a_lost_instance_fails_the_step_as_node_lost() {
    let get = mock!(Client::get_command_invocation).then_error(|| {
        GetCommandInvocationError::InvalidInstanceId(InvalidInstanceId::builder().build())
    });
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&get]));
    let got = ssm.status(COMMAND_ID, INSTANCE).await.unwrap();
    assert_eq!(reason(&got), Some(&FailureReason::NodeLost), "{got:?}");
    assert!(reason(&got).unwrap().needs_new_node());
    let CommandStatus::Failed { detail, .. } = got else {
        unreachable!()
    };
    assert!(detail.contains(INSTANCE), "{detail}");
}

#[tokio::test]
async fn status_failures_name_the_command_and_instance() {
    for (answer, retryable) in [
        (throttled as fn() -> HttpResponse, true),
        (|| ssm_error(503, "ServiceUnavailable", "later"), true),
        (
            || ssm_error(400, "InvalidCommandId", "no such command"),
            false,
        ),
    ] {
        let get = mock!(Client::get_command_invocation).then_http_response(answer);
        let ssm = Ssm::new(mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [&get],
            no_retries
        ));
        let err = ssm.status(COMMAND_ID, INSTANCE).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "SSM GetCommandInvocation command {COMMAND_ID} on instance {INSTANCE}"
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_first() {
    // With the SDK's standard retries, a throttled call that then succeeds
    // is invisible to the caller.
    let get = mock!(Client::get_command_invocation)
        .sequence()
        .http_response(throttled)
        .output(|| invocation("Success", "Success", 0, None))
        .build();
    let ssm = Ssm::new(mock_client!(
        aws_sdk_ssm,
        RuleMode::Sequential,
        [&get],
        |c: aws_sdk_ssm::config::Builder| c.retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(std::time::Duration::from_millis(1))
        )
    ));
    assert_eq!(
        ssm.status(COMMAND_ID, INSTANCE).await.unwrap(),
        CommandStatus::Success
    );
    assert_eq!(get.num_calls(), 2);
}

// ----------------------------------------------------------- node images

#[tokio::test]
async fn a_node_image_is_recorded_as_an_ec2_image_parameter() {
    use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
    let put = mock!(Client::put_parameter)
        .match_requests(|r| {
            r.name() == Some("/ebfleet/node-image/amzn-2023/aarch64/cpu")
                && r.value() == Some("ami-0123456789abcdef0")
                && r.data_type() == Some("aws:ec2:image")
                && r.overwrite() == Some(true)
        })
        .then_output(|| PutParameterOutput::builder().version(2).build());
    let ssm = Ssm::new(mock_client!(aws_sdk_ssm, [&put]));
    ssm.put_image_id(
        "/ebfleet/node-image/amzn-2023/aarch64/cpu",
        "ami-0123456789abcdef0",
    )
    .await
    .unwrap();
    assert_eq!(put.num_calls(), 1);
    // Not an AMI id: refused before SSM is asked.
    let err = ssm
        .put_image_id("/ebfleet/node-image/amzn-2023/aarch64/cpu", "ami-; reboot")
        .await
        .unwrap_err();
    assert!(matches!(err, SsmError::NotAnAmi { .. }), "{err}");
    assert_eq!(put.num_calls(), 1);
}
