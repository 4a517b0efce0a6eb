//! The trigger handler end to end over mocked Step Functions and DynamoDB:
//! which calls it makes, in which case, and what it answers.

use super::*;
use crate::testing::{Mocks, BUCKET};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::operation::list_executions::ListExecutionsOutput;
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::error::{ExecutionAlreadyExists, StateMachineDoesNotExist};
use aws_sdk_sfn::types::ExecutionListItem;
use aws_smithy_mocks::{mock, Rule};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SM: &str = "arn:aws:states:us-east-1:111122223333:stateMachine:ebfleet";
const ZLIB: &str = "easyconfigs/z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb";
const BZIP2: &str = "easyconfigs/b/bzip2/bzip2-1.0.8-GCCcore-13.3.0.eb";

fn created(key: &str) -> Input {
    json!({
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 1234}}
    })
}

fn ended(state_machine: &str, status: &str) -> Input {
    json!({
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {
            "executionArn": format!("{SM}:run-1").replace("stateMachine", "execution"),
            "stateMachineArn": state_machine,
            "name": "run-1",
            "status": status
        }
    })
}

/// ListExecutions answering the `answers` in turn (the last one repeats).
fn running(answers: Vec<Vec<&'static str>>) -> Rule {
    let calls = Arc::new(AtomicUsize::new(0));
    mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(|q| {
            q.state_machine_arn() == Some(SM)
                && q.status_filter() == Some(&aws_sdk_sfn::types::ExecutionStatus::Running)
        })
        .then_output(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let names = answers[n.min(answers.len() - 1)].clone();
            ListExecutionsOutput::builder()
                .set_executions(Some(
                    names
                        .iter()
                        .map(|name| {
                            ExecutionListItem::builder()
                                .execution_arn(format!("{SM}:{name}"))
                                .state_machine_arn(SM)
                                .name(*name)
                                .status(aws_sdk_sfn::types::ExecutionStatus::Running)
                                .start_date(DateTime::from_secs(0))
                                .build()
                                .unwrap()
                        })
                        .collect(),
                ))
                .build()
                .unwrap()
        })
}

fn pending(keys: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_dynamodb::Client::query)
        .match_requests(|q| {
            q.expression_attribute_values().unwrap().get(":pk")
                == Some(&AttributeValue::S("PENDING".into()))
        })
        .then_output(move || {
            QueryOutput::builder()
                .set_items(Some(
                    keys.iter()
                        .map(|k| {
                            HashMap::from([(
                                "sk".to_string(),
                                AttributeValue::S(format!("KEY#{k}")),
                            )])
                        })
                        .collect(),
                ))
                .build()
        })
}

fn add_pending(key: &'static str) -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |q| {
            q.item().unwrap().get("sk") == Some(&AttributeValue::S(format!("KEY#{key}")))
        })
        .then_output(|| PutItemOutput::builder().build())
}

/// BatchWriteItem deleting exactly `keys`.
fn remove_pending(keys: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(move |q| {
            let mut sks: Vec<String> = q.request_items().unwrap()[crate::testing::TABLE]
                .iter()
                .map(|w| match w.delete_request().unwrap().key().get("sk") {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => String::new(),
                })
                .collect();
            sks.sort();
            let mut want: Vec<String> = keys.iter().map(|k| format!("KEY#{k}")).collect();
            want.sort();
            sks == want
        })
        .then_output(|| BatchWriteItemOutput::builder().build())
}

/// StartExecution whose input plans exactly `keys`.
fn start(keys: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_sfn::Client::start_execution)
        .match_requests(move |q| {
            let input: serde_json::Value = serde_json::from_str(q.input().unwrap()).unwrap();
            q.state_machine_arn() == Some(SM)
                && q.name()
                    .is_some_and(|n| n.starts_with("ebfleet-s3-") && n.contains("-changed-"))
                && input["mode"] == "changed"
                && input["changed_keys"] == json!(keys)
                && input["execution"] == json!(q.name().unwrap())
        })
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn(format!("{SM}:new"))
                .start_date(DateTime::from_secs(0))
                .build()
                .unwrap()
        })
}

async fn run(mocks: &Mocks<'_>, event: Input) -> Output {
    handle(&mocks.env(), &settings(), event).await.unwrap()
}

#[tokio::test]
async fn nothing_running_starts_with_the_pending_keys_and_then_clears_them() {
    let (list, pend, go, clear) = (
        running(vec![vec![]]),
        pending(&[BZIP2]),
        start(&[BZIP2, ZLIB]),
        remove_pending(&[BZIP2]),
    );
    let mocks = Mocks {
        sfn: vec![&list, &go],
        dynamodb: vec![&pend, &clear],
        ..Default::default()
    };
    let out = serde_json::to_value(run(&mocks, created(ZLIB)).await).unwrap();
    assert_eq!(out["changed_keys"], json!([BZIP2, ZLIB]));
    assert_eq!(out["already_started"], false);
    assert_eq!((go.num_calls(), clear.num_calls()), (1, 1));
}

#[tokio::test]
async fn running_stores_the_key_and_starts_nothing() {
    let (list, add, pend) = (
        running(vec![vec!["run-1"]]),
        add_pending(ZLIB),
        pending(&[BZIP2, ZLIB]),
    );
    let mocks = Mocks {
        sfn: vec![&list],
        dynamodb: vec![&add, &pend],
        ..Default::default()
    };
    let out = run(&mocks, created(ZLIB)).await;
    let Output::Deferred {
        deferred,
        running,
        pending,
    } = out
    else {
        panic!("{out:?}");
    };
    assert_eq!((deferred.as_str(), pending), (ZLIB, 2));
    assert_eq!(running, vec![format!("{SM}:run-1")]);
    // Asked twice: before storing and after (the run may have ended meanwhile).
    assert_eq!((list.num_calls(), add.num_calls()), (2, 1));
}

#[tokio::test]
async fn a_run_that_ends_while_the_key_is_stored_does_not_strand_it() {
    let (list, add, pend, go, clear) = (
        running(vec![vec!["run-1"], vec![]]),
        add_pending(ZLIB),
        pending(&[ZLIB]),
        start(&[ZLIB]),
        remove_pending(&[ZLIB]),
    );
    let mocks = Mocks {
        sfn: vec![&list, &go],
        dynamodb: vec![&add, &pend, &clear],
        ..Default::default()
    };
    let out = run(&mocks, created(ZLIB)).await;
    assert!(matches!(out, Output::Started { .. }), "{out:?}");
    assert_eq!((go.num_calls(), clear.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_end_starts_one_follow_up_with_every_pending_key() {
    let (list, pend, go, clear) = (
        running(vec![vec![]]),
        pending(&[ZLIB, BZIP2]),
        start(&[BZIP2, ZLIB]),
        remove_pending(&[BZIP2, ZLIB]),
    );
    let mocks = Mocks {
        sfn: vec![&list, &go],
        dynamodb: vec![&pend, &clear],
        ..Default::default()
    };
    for status in ["SUCCEEDED", "ABORTED"] {
        let out = run(&mocks, ended(SM, status)).await;
        assert!(matches!(out, Output::Started { .. }), "{status}: {out:?}");
    }
    assert_eq!(go.num_calls(), 2);
}

#[tokio::test]
async fn an_end_with_nothing_pending_or_another_run_going_starts_nothing() {
    let (list, none) = (running(vec![vec![]]), pending(&[]));
    let mocks = Mocks {
        sfn: vec![&list],
        dynamodb: vec![&none],
        ..Default::default()
    };
    let out = run(&mocks, ended(SM, "FAILED")).await;
    assert!(
        matches!(&out, Output::Idle { reason, .. } if reason.contains("no easyconfig")),
        "{out:?}"
    );

    let (busy, some) = (running(vec![vec!["run-2"]]), pending(&[ZLIB]));
    let mocks = Mocks {
        sfn: vec![&busy],
        dynamodb: vec![&some],
        ..Default::default()
    };
    let out = run(&mocks, ended(SM, "SUCCEEDED")).await;
    assert!(
        matches!(&out, Output::Idle { reason, .. } if reason.contains("run-2")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_start_that_fails_keeps_the_pending_keys() {
    let list = running(vec![vec![]]);
    let pend = pending(&[ZLIB]);
    let refused = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
        StartExecutionError::StateMachineDoesNotExist(
            StateMachineDoesNotExist::builder().message("gone").build(),
        )
    });
    let mocks = Mocks {
        sfn: vec![&list, &refused],
        dynamodb: vec![&pend],
        ..Default::default()
    };
    let err = handle(&mocks.env(), &settings(), ended(SM, "SUCCEEDED"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Start { .. }), "{err}");
    // No BatchWriteItem rule: a removal would have failed the call differently.
}

#[tokio::test]
async fn an_already_started_execution_is_a_success() {
    let (list, pend, clear) = (running(vec![vec![]]), pending(&[]), remove_pending(&[]));
    let dup = mock!(aws_sdk_sfn::Client::start_execution).then_error(|| {
        StartExecutionError::ExecutionAlreadyExists(ExecutionAlreadyExists::builder().build())
    });
    let mocks = Mocks {
        sfn: vec![&list, &dup],
        dynamodb: vec![&pend, &clear],
        ..Default::default()
    };
    let out = serde_json::to_value(run(&mocks, created(ZLIB)).await).unwrap();
    assert_eq!(out["already_started"], true);
    assert_eq!(out["changed_keys"], json!([ZLIB]));
}

#[tokio::test]
async fn other_events_call_nothing() {
    let mocks = Mocks::default();
    for event in [
        created("plans/x/plan.json"),
        created("easyconfigs/z/zlib/zlib-1.3.1_fix.patch"),
        ended(SM, "RUNNING"),
        json!({"hello": 1}),
    ] {
        let out = run(&mocks, event.clone()).await;
        assert!(matches!(out, Output::Ignored { .. }), "{event}: {out:?}");
    }
    let other = "arn:aws:states:us-east-1:111122223333:stateMachine:someone-else";
    let out = run(&mocks, ended(other, "SUCCEEDED")).await;
    assert!(
        matches!(&out, Output::Ignored { ignored } if ignored.contains("someone-else")),
        "{out:?}"
    );
}

fn settings() -> Settings {
    Settings {
        bucket: BUCKET.into(),
        state_machine: SM.into(),
    }
}
