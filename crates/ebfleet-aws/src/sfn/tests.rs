//! The Step Functions adapter against `aws-smithy-mocks`: each test checks
//! the request (state machine ARN, name, input JSON, status filter, token,
//! output, error and cause) as well as the answer, so a wrong adapter fails.

use super::*;
use aws_sdk_sfn::config::retry::RetryConfig;
use aws_sdk_sfn::operation::list_executions::ListExecutionsOutput;
use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureOutput;
use aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatOutput;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::types::error::{ExecutionAlreadyExists, StateMachineDoesNotExist, TaskTimedOut};
use aws_sdk_sfn::types::ExecutionListItem;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::DateTime;
use ebfleet_core::names::EasyconfigKey;
use ebfleet_core::trigger::ExecutionInput;
use std::time::Duration;

const SM: &str = "arn:aws:states:us-east-1:111122223333:stateMachine:ebfleet";
const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAf2kB8secret-part-of-the-tokenTaIl1234";

fn sfn(client: Client) -> StepFunctions {
    StepFunctions::new(client)
}

fn no_retries(c: aws_sdk_sfn::config::Builder) -> aws_sdk_sfn::config::Builder {
    c.retry_config(RetryConfig::disabled())
}

fn exec_arn(name: &str) -> String {
    format!("arn:aws:states:us-east-1:111122223333:execution:ebfleet:{name}")
}

fn item(name: &str) -> ExecutionListItem {
    ExecutionListItem::builder()
        .execution_arn(exec_arn(name))
        .state_machine_arn(SM)
        .name(name)
        .status(ExecutionStatus::Running)
        .start_date(DateTime::from_secs(1_795_515_300))
        .build()
        .unwrap()
}

/// A JSON-protocol (awsJson1_0) error answer, as Step Functions sends it.
fn sfn_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            "{{\"__type\":\"com.amazonaws.swf.base.model#{code}\",\"message\":\"{message}\"}}"
        )),
    )
}

fn input() -> ExecutionInput {
    let key: EasyconfigKey = "easyconfigs/z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb"
        .parse()
        .unwrap();
    ExecutionInput::for_changes(
        "ebfleet-20261124T101500Z-changed-0a1b2c3d".parse().unwrap(),
        [key],
    )
    .unwrap()
}

fn name() -> ExecutionName {
    input().execution().clone()
}

#[tokio::test]
async fn start_sends_arn_name_and_input_json_and_returns_the_execution_arn() {
    let expected = serde_json::to_value(input()).unwrap();
    let rule = mock!(Client::start_execution)
        .match_requests(move |r| {
            r.state_machine_arn() == Some(SM)
                && r.name() == Some("ebfleet-20261124T101500Z-changed-0a1b2c3d")
                && r.input()
                    .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
                    == Some(expected.clone())
        })
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn(exec_arn("ebfleet-20261124T101500Z-changed-0a1b2c3d"))
                .start_date(DateTime::from_secs(1_795_515_300))
                .build()
                .unwrap()
        });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let arn = s.start(SM, &name(), &input()).await.unwrap();
    assert_eq!(arn, exec_arn("ebfleet-20261124T101500Z-changed-0a1b2c3d"));
    assert_eq!(rule.num_calls(), 1);
    // The input's JSON is exactly what the plan Lambda reads back.
    let sent = serde_json::to_string(&input()).unwrap();
    assert!(sent.contains("\"mode\":\"changed\""), "{sent}");
}

#[tokio::test]
async fn a_name_in_use_is_already_exists_not_retryable() {
    let rule = mock!(Client::start_execution)
        .match_requests(|r| r.name() == Some("ebfleet-20261124T101500Z-changed-0a1b2c3d"))
        .then_error(|| {
            StartExecutionError::ExecutionAlreadyExists(
                ExecutionAlreadyExists::builder()
                    .message("Execution Already Exists")
                    .build(),
            )
        });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let err = s.start(SM, &name(), &input()).await.unwrap_err();
    assert!(
        matches!(&err, SfnError::AlreadyExists { state_machine, name }
            if state_machine == SM && name == "ebfleet-20261124T101500Z-changed-0a1b2c3d"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!(
            "{SM}: an execution named ebfleet-20261124T101500Z-changed-0a1b2c3d exists already"
        )
    );
}

#[tokio::test]
async fn a_name_in_use_as_step_functions_sends_it_over_http_is_already_exists_too() {
    let rule = mock!(Client::start_execution).then_http_response(|| {
        sfn_error(400, "ExecutionAlreadyExists", "Execution Already Exists")
    });
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = s.start(SM, &name(), &input()).await.unwrap_err();
    assert!(matches!(err, SfnError::AlreadyExists { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_state_machine_is_a_service_error_naming_it() {
    let rule = mock!(Client::start_execution).then_error(|| {
        StartExecutionError::StateMachineDoesNotExist(
            StateMachineDoesNotExist::builder()
                .message("State Machine Does Not Exist")
                .build(),
        )
    });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let err = s.start(SM, &name(), &input()).await.unwrap_err();
    assert!(
        matches!(
            err,
            SfnError::Call(CallError {
                op: "StartExecution",
                transient: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(SM) && text.contains("ebfleet-20261124T101500Z-changed-0a1b2c3d"),
        "{text}"
    );
}

#[tokio::test]
async fn a_throttled_start_is_retryable_after_the_sdk_gave_up() {
    let rule = mock!(Client::start_execution)
        .then_http_response(|| sfn_error(400, "ThrottlingException", "Rate exceeded"));
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::MatchAny,
        [&rule],
        |c| c.retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        )
    ));
    let err = s.start(SM, &name(), &input()).await.unwrap_err();
    assert!(
        matches!(
            err,
            SfnError::Call(CallError {
                op: "StartExecution",
                transient: true,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .contains("ThrottlingException (HTTP 400): Rate exceeded"),
        "{err}"
    );
    assert_eq!(rule.num_calls(), 3, "the SDK retried before giving up");
}

#[tokio::test]
async fn the_execution_limit_is_retryable() {
    let rule = mock!(Client::start_execution).then_http_response(|| {
        sfn_error(
            400,
            "ExecutionLimitExceeded",
            "Maximum running executions reached",
        )
    });
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = s.start(SM, &name(), &input()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn an_input_over_the_payload_limit_is_refused_before_sending() {
    let rule = mock!(Client::start_execution).then_output(|| {
        StartExecutionOutput::builder()
            .execution_arn("x")
            .start_date(DateTime::from_secs(0))
            .build()
            .unwrap()
    });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let big = serde_json::json!({"blob": "x".repeat(STATE_PAYLOAD_LIMIT)});
    let err = s.start(SM, &name(), &big).await.unwrap_err();
    assert!(matches!(err, SfnError::Payload { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn running_lists_every_page_of_running_executions_only() {
    let first = mock!(Client::list_executions)
        .match_requests(|r| {
            r.state_machine_arn() == Some(SM)
                && r.status_filter() == Some(&ExecutionStatus::Running)
                && r.next_token().is_none()
        })
        .then_output(|| {
            ListExecutionsOutput::builder()
                .executions(item("run-1"))
                .next_token("page-2")
                .build()
                .unwrap()
        });
    let second = mock!(Client::list_executions)
        .match_requests(|r| {
            r.state_machine_arn() == Some(SM)
                && r.status_filter() == Some(&ExecutionStatus::Running)
                && r.next_token() == Some("page-2")
        })
        .then_output(|| {
            ListExecutionsOutput::builder()
                .executions(item("run-2"))
                .build()
                .unwrap()
        });
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&first, &second]
    ));
    assert_eq!(
        s.running(SM).await.unwrap(),
        [exec_arn("run-1"), exec_arn("run-2")]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn none_running_is_empty() {
    let rule = mock!(Client::list_executions)
        .match_requests(|r| r.status_filter() == Some(&ExecutionStatus::Running))
        .then_output(|| {
            ListExecutionsOutput::builder()
                .set_executions(Some(vec![]))
                .build()
                .unwrap()
        });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    assert!(s.running(SM).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_throttled_listing_is_retryable_and_names_the_state_machine() {
    let rule = mock!(Client::list_executions)
        .then_http_response(|| sfn_error(400, "ThrottlingException", "Rate exceeded"));
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = s.running(SM).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("Step Functions ListExecutions {SM}")),
        "{text}"
    );
}

#[tokio::test]
async fn heartbeat_sends_the_token() {
    let rule = mock!(Client::send_task_heartbeat)
        .match_requests(|r| r.task_token() == Some(TOKEN))
        .then_output(|| SendTaskHeartbeatOutput::builder().build());
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    s.heartbeat(TOKEN).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_timed_out_task_is_typed_and_the_token_is_not_shown() {
    let rule = mock!(Client::send_task_heartbeat).then_error(|| {
        SendTaskHeartbeatError::TaskTimedOut(
            TaskTimedOut::builder().message("Task Timed Out").build(),
        )
    });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let err = s.heartbeat(TOKEN).await.unwrap_err();
    assert!(
        matches!(
            err,
            SfnError::TaskTimedOut {
                op: "SendTaskHeartbeat",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(!text.contains("secret-part"), "{text}");
    assert!(
        text.contains("…TaIl1234") && text.contains("chars"),
        "{text}"
    );
}

#[tokio::test]
async fn task_answers_over_http_are_typed_for_every_task_call() {
    let beat = mock!(Client::send_task_heartbeat)
        .then_http_response(|| sfn_error(400, "TaskDoesNotExist", "Task Does Not Exist"));
    let ok = mock!(Client::send_task_success)
        .then_http_response(|| sfn_error(400, "TaskTimedOut", "Task Timed Out"));
    let fail = mock!(Client::send_task_failure)
        .then_http_response(|| sfn_error(400, "TaskDoesNotExist", "Task Does Not Exist"));
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::MatchAny,
        [&beat, &ok, &fail],
        no_retries
    ));
    let err = s.heartbeat(TOKEN).await.unwrap_err();
    assert!(matches!(err, SfnError::TaskDoesNotExist { .. }), "{err:?}");
    let err = s.succeed(TOKEN, &serde_json::json!({})).await.unwrap_err();
    assert!(
        matches!(
            err,
            SfnError::TaskTimedOut {
                op: "SendTaskSuccess",
                ..
            }
        ),
        "{err:?}"
    );
    let err = s.fail(TOKEN, "Build.Failed", "").await.unwrap_err();
    assert!(
        matches!(
            err,
            SfnError::TaskDoesNotExist {
                op: "SendTaskFailure",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_invalid_token_is_a_service_error_and_throttling_is_retryable() {
    let invalid = mock!(Client::send_task_heartbeat)
        .then_http_response(|| sfn_error(400, "InvalidToken", "Invalid Token"));
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&invalid],
        no_retries
    ));
    let err = s.heartbeat(TOKEN).await.unwrap_err();
    assert!(
        matches!(
            err,
            SfnError::Call(CallError {
                transient: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN));

    let throttled = mock!(Client::send_task_success)
        .then_http_response(|| sfn_error(400, "ThrottlingException", "Rate exceeded"));
    let s = sfn(mock_client!(
        aws_sdk_sfn,
        RuleMode::Sequential,
        [&throttled],
        no_retries
    ));
    let err = s.succeed(TOKEN, &1).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn succeed_sends_the_output_as_json() {
    #[derive(Serialize)]
    struct Step {
        batch: usize,
        status: &'static str,
    }
    let rule = mock!(Client::send_task_success)
        .match_requests(|r| {
            r.task_token() == Some(TOKEN)
                && r.output()
                    .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
                    == Some(serde_json::json!({"batch": 2, "status": "Success"}))
        })
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    s.succeed(
        TOKEN,
        &Step {
            batch: 2,
            status: "Success",
        },
    )
    .await
    .unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_output_over_the_payload_limit_is_refused_before_sending() {
    let rule =
        mock!(Client::send_task_success).then_output(|| SendTaskSuccessOutput::builder().build());
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let err = s
        .succeed(TOKEN, &"x".repeat(STATE_PAYLOAD_LIMIT))
        .await
        .unwrap_err();
    assert!(matches!(err, SfnError::Payload { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret-part"));
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn fail_sends_error_and_cause() {
    let rule = mock!(Client::send_task_failure)
        .match_requests(|r| {
            r.task_token() == Some(TOKEN)
                && r.error() == Some("Build.CompileError")
                && r.cause() == Some("zlib/1.3.1: make: *** [all] Error 2")
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    s.fail(
        TOKEN,
        "Build.CompileError",
        "zlib/1.3.1: make: *** [all] Error 2",
    )
    .await
    .unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn fail_cuts_error_and_cause_to_the_limits_on_char_boundaries() {
    let error = "é".repeat(MAX_FAILURE_ERROR + 10);
    let cause = "ü".repeat(MAX_FAILURE_CAUSE + 10);
    let rule = mock!(Client::send_task_failure)
        .match_requests(|r| {
            r.error().map(|e| e.chars().count()) == Some(MAX_FAILURE_ERROR)
                && r.cause().map(|c| c.chars().count()) == Some(MAX_FAILURE_CAUSE)
                && r.error().is_some_and(|e| e.chars().all(|c| c == 'é'))
        })
        .then_output(|| SendTaskFailureOutput::builder().build());
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    s.fail(TOKEN, &error, &cause).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[test]
fn task_refs_show_only_the_tail_and_length() {
    assert_eq!(task_ref("abc"), "task …abc (3 chars)");
    assert_eq!(
        task_ref(TOKEN),
        format!("task …TaIl1234 ({} chars)", TOKEN.len())
    );
    assert_eq!(task_ref("x\ny"), "task …x\\ny (3 chars)");
}

#[tokio::test]
async fn executions_lists_every_status_newest_first() {
    let rule = mock!(Client::list_executions)
        .match_requests(|r| r.state_machine_arn() == Some(SM) && r.status_filter().is_none())
        .then_output(|| {
            let mut old = item("run-old");
            old.start_date = DateTime::from_secs(1_000);
            ListExecutionsOutput::builder()
                .executions(old)
                .executions(item("run-new"))
                .build()
                .unwrap()
        });
    let s = sfn(mock_client!(aws_sdk_sfn, [&rule]));
    let all = s.executions(SM).await.unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["run-new", "run-old"]);
    assert_eq!(
        (all[0].arn.clone(), all[1].started),
        (exec_arn("run-new"), 1_000)
    );
}
