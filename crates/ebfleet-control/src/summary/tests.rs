//! The summary handler over mocked S3 and DynamoDB.

use super::*;
use crate::release::{handle_request, Request, Response};
use crate::testing::{Mocks, BUCKET, TABLE};
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_smithy_mocks::mock;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// What the pipeline's `Summarise` state hands on.
fn run_output() -> serde_json::Value {
    json!({
        "summary": {
            "execution": "run-1",
            "plan_key": "plans/run-1/plan.json",
            "nothing_to_do": false,
            "platforms": [
                {"platform": "amzn-2023_graviton-3",
                 "units": {"waiting": 0, "running": 0, "built": 7, "failed": 0, "skipped": 0, "deferred": 0},
                 "nodes_max": 2, "instances_launched": 2, "node_seconds": 7200,
                 "released": {"terminated": [], "already_gone": [], "launch_templates_deleted": [], "pools_deleted": []},
                 "cost": {"node_seconds": 7200, "instance_hours": 2.0, "usd": 1.0, "usd_priced": 1.0,
                          "unpriced_instance_hours": 0.0,
                          "types": [{"instance_type": "c7g.8xlarge", "market": "spot", "node_seconds": 7200,
                                     "instance_hours": 2.0, "usd_per_hour": 0.5, "usd": 1.0}]}},
                {"platform": "amzn-2023_epyc-gen-4", "up_to_date": true}
            ]
        }
    })
}

#[tokio::test]
async fn the_summary_goes_to_s3_and_the_runs_item() {
    let written = Arc::new(Mutex::new(Vec::new()));
    let w = written.clone();
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |q| {
            let body = String::from_utf8(q.body().bytes().unwrap().to_vec()).unwrap();
            w.lock().unwrap().push((
                q.bucket().unwrap().to_string(),
                q.key().unwrap().to_string(),
                body,
            ));
            true
        })
        .then_output(|| PutObjectOutput::builder().build());
    let item = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|q| {
            let i = q.item().unwrap();
            q.table_name() == Some(TABLE)
                && i["pk"] == AttributeValue::S("RUN#run-1".into())
                && i["sk"] == AttributeValue::S("SUMMARY".into())
                && i["usd"] == AttributeValue::N("1".into())
                && i["summary_key"] == AttributeValue::S("plans/run-1/summary.json".into())
        })
        .then_output(|| PutItemOutput::builder().build());
    let mocks = Mocks {
        s3: vec![&put],
        dynamodb: vec![&item],
        ..Default::default()
    };
    let request: Request = serde_json::from_value(run_output()).unwrap();
    assert!(matches!(request, Request::Summary(_)), "{request:?}");
    let Response::Summary(out) = handle_request(&mocks.env(), request).await.unwrap() else {
        panic!("not a summary's answer");
    };
    assert_eq!(out.summary_key, "plans/run-1/summary.json");
    assert_eq!((out.node_seconds, out.usd), (7200, Some(1.0)));
    assert_eq!(item.num_calls(), 1);
    let written = written.lock().unwrap();
    assert_eq!(written.len(), 1);
    let (bucket, key, body) = &written[0];
    assert_eq!(
        (bucket.as_str(), key.as_str()),
        (BUCKET, "plans/run-1/summary.json")
    );
    let stored: RunSummary = serde_json::from_str(body).unwrap();
    assert_eq!(stored.platforms.len(), 2);
    assert_eq!(
        stored.platform("amzn-2023_graviton-3").unwrap().usd,
        Some(1.0)
    );
    assert_eq!(
        stored.usd,
        Some(1.0),
        "the up-to-date platform spent nothing"
    );
}

#[tokio::test]
async fn a_failed_write_is_the_handlers_error_for_the_state_machine_to_catch() {
    let denied = mock!(aws_sdk_s3::Client::put_object).then_error(|| {
        aws_sdk_s3::operation::put_object::PutObjectError::generic(
            aws_sdk_s3::error::ErrorMetadata::builder()
                .code("AccessDenied")
                .message("no")
                .build(),
        )
    });
    let mocks = Mocks {
        s3: vec![&denied],
        ..Default::default()
    };
    let request: Request = serde_json::from_value(run_output()).unwrap();
    let err = handle_request(&mocks.env(), request).await.unwrap_err();
    assert!(err.to_string().contains("run summary"), "{err}");
}

#[test]
fn a_release_request_is_still_a_release() {
    let r: Request =
        serde_json::from_value(json!({"execution": "run-1", "platform": "amzn-2023_graviton-3"}))
            .unwrap();
    assert!(matches!(r, Request::Release(_)), "{r:?}");
    let bad = serde_json::from_value::<Request>(json!({"summary": {"execution": "x"}}));
    assert!(matches!(bad, Ok(Request::Summary(_))));
}

#[tokio::test]
async fn an_execution_name_that_is_no_key_is_refused_before_any_write() {
    let mocks = Mocks::default();
    let input = Input {
        summary: RunOutput {
            execution: "../etc".into(),
            ..Default::default()
        },
    };
    let err = handle(&mocks.env(), input).await.unwrap_err();
    assert!(matches!(err, Error::Name { .. }), "{err}");
}
