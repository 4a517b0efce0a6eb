//! The DynamoDB adapter against `aws-smithy-mocks`: each test checks the
//! request (table, keys, expressions, values) as well as the answer.

use super::*;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ProvisionedThroughputExceededException,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use ebfleet_core::record::Tarball;
use std::collections::HashMap;

const TABLE: &str = "ebfleet-records";
const P: &str = "amzn-2023_graviton-3";
const M: &str = "zlib/1.3.1-GCCcore-13.3.0";

fn records(client: Client) -> Records {
    Records::new(client, TABLE)
}

fn no_retries(c: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
    c.retry_config(RetryConfig::disabled())
}

fn platform() -> PlatformName {
    P.parse().unwrap()
}

fn module() -> ModuleName {
    M.parse().unwrap()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn built_record(module: &str, ec: char) -> ModuleRecord {
    ModuleRecord {
        status: Status::Built,
        tarball: Some(Tarball {
            key: format!("{P}/software/{module}.tar.zst"),
            size: 10,
            sha256: "b".repeat(64),
            version_id: None,
            signature: None,
        }),
        attempts: 1,
        version: 3,
        ..ModuleRecord::new(P, module, &ec.to_string().repeat(64), 1_000)
    }
}

/// A JSON-protocol error answer, as DynamoDB sends it.
fn dynamo_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{code}\",\"message\":\"{message}\"}}"
        )),
    )
}

fn key_is(k: Option<&HashMap<String, AttributeValue>>, pk: &str, sk: &str) -> bool {
    k.is_some_and(|k| k.len() == 2 && k.get("pk") == Some(&s(pk)) && k.get("sk") == Some(&s(sk)))
}

#[tokio::test]
async fn get_reads_a_record_consistently() {
    let r = built_record(M, 'a');
    let item = to_item(&r);
    let rule = mock!(Client::get_item)
        .match_requests(|q| {
            q.table_name() == Some(TABLE)
                && key_is(q.key(), &format!("PLATFORM#{P}"), &format!("MODULE#{M}"))
                && q.consistent_read() == Some(true)
        })
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(item.clone()))
                .build()
        });
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    assert_eq!(db.get(&platform(), &module()).await.unwrap(), Some(r));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_of_an_absent_item_is_none() {
    let rule = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    assert_eq!(db.get(&platform(), &module()).await.unwrap(), None);
}

#[tokio::test]
async fn a_garbled_item_names_table_key_and_attribute() {
    let mut item = to_item(&built_record(M, 'a'));
    item.insert(attr::VERSION.into(), AttributeValue::N("seven".into()));
    let rule = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    let err = db.get(&platform(), &module()).await.unwrap_err();
    assert!(
        matches!(&err, DynamoError::BadItem { source, .. } if source.attribute == "version"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!(
            "{TABLE} PLATFORM#{P} MODULE#{M}: not a module record: \
             attribute version: \"seven\" is not a u64"
        )
    );
}

fn query_is_built_of(q: &aws_sdk_dynamodb::operation::query::QueryInput) -> bool {
    let names = q.expression_attribute_names().cloned().unwrap_or_default();
    let values = q.expression_attribute_values().cloned().unwrap_or_default();
    q.table_name() == Some(TABLE)
        && q.key_condition_expression() == Some("#pk = :pk AND begins_with(#sk, :module)")
        && q.filter_expression().is_none()
        && q.projection_expression()
            == Some("#sk, #ec, #status, #duration, #peak, #cpu_s, #cpus, #class, #updated, #eb, #tarball")
        && names.get("#duration").map(String::as_str) == Some("duration_s")
        && names.get("#peak").map(String::as_str) == Some("peak_memory_mib")
        && names.get("#cpu_s").map(String::as_str) == Some("cpu_s")
        && names.get("#cpus").map(String::as_str) == Some("cpus")
        && names.get("#class").map(String::as_str) == Some("error_class")
        && names.get("#updated").map(String::as_str) == Some("updated")
        && names.get("#eb").map(String::as_str) == Some("eb_version")
        && names.get("#pk").map(String::as_str) == Some("pk")
        && names.get("#sk").map(String::as_str) == Some("sk")
        && names.get("#status").map(String::as_str) == Some("status")
        && values.get(":pk") == Some(&s(&format!("PLATFORM#{P}")))
        && values.get(":module") == Some(&s("MODULE#"))
}

fn projected(module: &str, status: &str, ec: Option<&str>) -> Item {
    let mut i = Item::from([
        ("sk".to_string(), s(&format!("MODULE#{module}"))),
        ("status".to_string(), s(status)),
    ]);
    if let Some(ec) = ec {
        i.insert("easyconfig_sha256".into(), s(ec));
    }
    i
}

#[tokio::test]
async fn built_reads_every_page_and_only_built_modules() {
    let a = "a".repeat(64);
    let page_1 = {
        let a = a.clone();
        mock!(Client::query)
            .match_requests(|q| query_is_built_of(q) && q.exclusive_start_key().is_none())
            .then_output(move || {
                QueryOutput::builder()
                    .items({
                        let mut i = projected("zlib/1.3.1-GCCcore-13.3.0", "built", Some(&a));
                        i.insert("duration_s".into(), AttributeValue::N("812".into()));
                        i.insert("updated".into(), AttributeValue::N("1700".into()));
                        i
                    })
                    // Not built: not counted as built, its failure kept.
                    .items({
                        let mut i = projected("bzip2/1.0.8-GCCcore-13.3.0", "failed", Some(&a));
                        i.insert("error_class".into(), s("compile_error"));
                        i.insert("updated".into(), AttributeValue::N("1800".into()));
                        i.insert("eb_version".into(), s("5.4.1"));
                        i
                    })
                    .last_evaluated_key("pk", s(&format!("PLATFORM#{P}")))
                    .last_evaluated_key("sk", s("MODULE#zlib/1.3.1-GCCcore-13.3.0"))
                    .build()
            })
    };
    let page_2 = mock!(Client::query)
        .match_requests(|q| {
            query_is_built_of(q)
                && key_is(
                    q.exclusive_start_key(),
                    &format!("PLATFORM#{P}"),
                    "MODULE#zlib/1.3.1-GCCcore-13.3.0",
                )
        })
        .then_output(|| {
            QueryOutput::builder()
                .items(projected("GCCcore/13.3.0", "built", None))
                .build()
        });
    let db = records(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&page_1, &page_2]
    ));
    let recorded = db.recorded(&platform()).await.unwrap();
    assert_eq!(
        recorded.built,
        Built::from([
            ("zlib/1.3.1-GCCcore-13.3.0".to_string(), Some(a.clone())),
            ("GCCcore/13.3.0".to_string(), None),
        ])
    );
    assert_eq!(
        recorded.durations,
        [("zlib/1.3.1-GCCcore-13.3.0".to_string(), 812)].into()
    );
    assert_eq!(
        recorded.built_at,
        [
            ("zlib/1.3.1-GCCcore-13.3.0".to_string(), 1700),
            ("GCCcore/13.3.0".to_string(), 0)
        ]
        .into()
    );
    assert_eq!(
        recorded.failed["bzip2/1.0.8-GCCcore-13.3.0"],
        ebfleet_core::failure_memory::PastFailure {
            class: ebfleet_core::record::ErrorClass::CompileError,
            easyconfig_sha256: a.clone(),
            at: 1800,
            eb_version: Some("5.4.1".into()),
        }
    );
    assert_eq!((page_1.num_calls(), page_2.num_calls()), (1, 1));
}

#[tokio::test]
async fn built_throttled_is_retryable_and_names_the_platform() {
    // As the SDK deserializes it: the modeled error with its code in the
    // metadata (which the SDK's retry classifier reads too).
    let rule = mock!(Client::query).then_error(|| {
        let message = "Rate of requests exceeds the allowed throughput";
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message(message)
                .meta(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .message(message)
                        .build(),
                )
                .build(),
        )
    });
    let db = records(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = db.built(&platform()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.table(), TABLE);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "DynamoDB Query {TABLE} PLATFORM#{P} MODULE#*: throttled"
        )),
        "{text}"
    );
    assert!(
        text.contains("ProvisionedThroughputExceededException"),
        "{text}"
    );
}

#[tokio::test]
async fn a_page_with_a_garbled_item_is_an_error() {
    let rule = mock!(Client::query).then_output(|| {
        QueryOutput::builder()
            .items(Item::from([
                ("sk".to_string(), s("RUN#x")),
                ("status".to_string(), s("built")),
            ]))
            .build()
    });
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    let err = db.built(&platform()).await.unwrap_err();
    assert!(
        matches!(&err, DynamoError::BadItem { source, .. } if source.attribute == "sk"),
        "{err:?}"
    );
}

#[tokio::test]
async fn put_of_a_new_record_requires_the_item_to_be_absent() {
    let r = built_record(M, 'a');
    let item = to_item(&r);
    let rule = mock!(Client::put_item)
        .match_requests(move |q| {
            q.table_name() == Some(TABLE)
                && q.item() == Some(&item)
                && q.condition_expression() == Some("attribute_not_exists(pk)")
                && q.expression_attribute_names().is_none()
                && q.expression_attribute_values().is_none()
        })
        .then_output(|| PutItemOutput::builder().build());
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    db.put(&r, &WriteCondition::NotExists).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

fn unchanged_put(
    version: u64,
) -> impl Fn(&aws_sdk_dynamodb::operation::put_item::PutItemInput) -> bool {
    move |q| {
        q.table_name() == Some(TABLE)
            && q.condition_expression() == Some("#v = :v")
            && q.expression_attribute_names()
                == Some(&HashMap::from([("#v".to_string(), "version".to_string())]))
            && q.expression_attribute_values()
                == Some(&HashMap::from([(
                    ":v".to_string(),
                    AttributeValue::N(version.to_string()),
                )]))
    }
}

#[tokio::test]
async fn put_of_a_changed_record_requires_the_version_read() {
    let rule = mock!(Client::put_item)
        .match_requests(unchanged_put(2))
        .then_output(|| PutItemOutput::builder().build());
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    db.put(
        &built_record(M, 'a'),
        &WriteCondition::Unchanged { version: 2 },
    )
    .await
    .unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_condition_is_condition_failed() {
    let rule = mock!(Client::put_item)
        .match_requests(unchanged_put(2))
        .then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .message("The conditional request failed")
                    .build(),
            )
        });
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    let cond = WriteCondition::Unchanged { version: 2 };
    let err = db.put(&built_record(M, 'a'), &cond).await.unwrap_err();
    match &err {
        DynamoError::ConditionFailed {
            table,
            pk,
            sk,
            condition,
        } => {
            assert_eq!(table, TABLE);
            assert_eq!(pk, &format!("PLATFORM#{P}"));
            assert_eq!(sk, &format!("MODULE#{M}"));
            assert_eq!(condition, &cond);
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable(), "read and decide again, not retry");
}

#[tokio::test]
async fn a_throttled_put_over_http_is_retryable() {
    let rule = mock!(Client::put_item)
        .then_http_response(|| dynamo_error(400, "ThrottlingException", "Rate exceeded"));
    let db = records(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = db
        .put(&built_record(M, 'a'), &WriteCondition::NotExists)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DynamoError::Call { call, .. } if call.op == "PutItem" && call.transient),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("ThrottlingException (HTTP 400): Rate exceeded"),
        "{err}"
    );
}

#[tokio::test]
async fn a_validation_error_is_not_retryable() {
    let rule = mock!(Client::put_item).then_http_response(|| {
        dynamo_error(
            400,
            "ValidationException",
            "One or more parameter values were invalid",
        )
    });
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    let err = db
        .put(&built_record(M, 'a'), &WriteCondition::NotExists)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DynamoError::Call { call, .. } if !call.transient),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_record_with_an_invalid_name_is_never_written() {
    let rule = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    for (platform, module) in [(P, "zlib/1.3;id"), ("../x", M)] {
        let mut r = built_record(M, 'a');
        r.platform = platform.into();
        r.module = module.into();
        let err = db.put(&r, &WriteCondition::NotExists).await.unwrap_err();
        assert!(matches!(err, DynamoError::InvalidName { .. }), "{err:?}");
        assert!(err.to_string().contains(module), "{err}");
    }
    assert_eq!(rule.num_calls(), 0);
}

fn run_summary() -> ebfleet_core::summary::RunSummary {
    use ebfleet_core::cost::{price, Market, Prices, Usage};
    use ebfleet_core::summary::{ReportedPlatform, RunOutput, RunSummary, UnitCounts};
    let cost = price(
        &[Usage {
            instance_type: Some("c7g.8xlarge".into()),
            market: Market::Spot,
            node_seconds: 5400,
        }],
        &Prices {
            spot: [("c7g.8xlarge".to_string(), 0.4)].into(),
            ..Prices::default()
        },
    );
    RunSummary::from_output(
        RunOutput {
            execution: "run-1".into(),
            plan_key: Some("plans/run-1/plan.json".into()),
            nothing_to_do: false,
            platforms: vec![
                ReportedPlatform {
                    platform: P.into(),
                    units: Some(UnitCounts {
                        built: 4,
                        failed: 1,
                        ..UnitCounts::default()
                    }),
                    instances_launched: Some(2),
                    node_seconds: Some(5400),
                    cost: Some(cost),
                    ..ReportedPlatform::default()
                },
                ReportedPlatform {
                    platform: "amzn-2023_epyc-gen-4".into(),
                    failed: true,
                    error: Some("ebfleet.PlatformFailed".into()),
                    ..ReportedPlatform::default()
                },
            ],
        },
        1_700_000_000,
    )
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

#[tokio::test]
async fn a_run_summary_is_one_item_under_the_runs_key() {
    let rule = mock!(Client::put_item)
        .match_requests(|q| {
            let Some(i) = q.item() else { return false };
            let platforms = i["platforms"].as_m().unwrap();
            let g = platforms[P].as_m().unwrap();
            let e = platforms["amzn-2023_epyc-gen-4"].as_m().unwrap();
            q.table_name() == Some(TABLE)
                // A retried write replaces the item: no condition.
                && q.condition_expression().is_none()
                && i["pk"] == s("RUN#run-1")
                && i["sk"] == s("SUMMARY")
                && i["execution"] == s("run-1")
                && i["summary_key"] == s("plans/run-1/summary.json")
                && i["written"] == n("1700000000")
                && i["node_seconds"] == n("5400")
                && i["instance_hours"] == n("1.5")
                // One platform failed: the run's dollars are unknown.
                && !i.contains_key("usd")
                && g["outcome"] == s("done")
                && g["instance_hours"] == n("1.5")
                && g["usd"] == n("0.6")
                && g["built"] == n("4")
                && g["failed"] == n("1")
                && g["instances_launched"] == n("2")
                && e["outcome"] == s("failed")
                && e["error"] == s("ebfleet.PlatformFailed")
                && !e.contains_key("usd")
                && !e.contains_key("instance_hours")
        })
        .then_output(|| PutItemOutput::builder().build());
    let db = records(mock_client!(aws_sdk_dynamodb, [&rule]));
    db.put_run_summary(&run_summary(), "plans/run-1/summary.json")
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_throttled_summary_write_is_retryable_and_names_the_item() {
    let rule = mock!(Client::put_item)
        .then_http_response(|| dynamo_error(400, "ThrottlingException", "Rate exceeded"));
    let db = records(mock_client!(
        aws_sdk_dynamodb,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = db
        .put_run_summary(&run_summary(), "plans/run-1/summary.json")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("RUN#run-1 SUMMARY"), "{err}");
}
