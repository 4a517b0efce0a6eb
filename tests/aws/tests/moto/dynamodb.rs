use ebfleet_aws::dynamodb::{DynamoError, Records};
use ebfleet_core::names::{ModuleName, PlatformName};
use ebfleet_core::record::{ModuleRecord, Status, WriteCondition};

const P: &str = "amzn-2023_graviton-3";

fn record(module: &str, status: Status, version: u64) -> ModuleRecord {
    ModuleRecord {
        status,
        version,
        ..ModuleRecord::new(P, module, &"a".repeat(64), 1_000)
    }
}

#[tokio::test]
async fn dynamodb_conditional_puts_get_and_built() {
    let Some(conf) = super::config("dynamodb_conditional_puts_get_and_built").await else {
        return;
    };
    let table = super::unique("ebfleet-records");
    super::create_table(&conf, &table).await;
    let records = Records::from_conf(&conf, &table);
    let platform: PlatformName = P.parse().unwrap();
    let zlib = "zlib/1.3.1-GCCcore-13.3.0";
    let module: ModuleName = zlib.parse().unwrap();

    assert_eq!(records.get(&platform, &module).await.unwrap(), None);
    let first = record(zlib, Status::Built, 1);
    records
        .put(&first, &WriteCondition::NotExists)
        .await
        .unwrap();
    match records.put(&first, &WriteCondition::NotExists).await {
        Err(DynamoError::ConditionFailed {
            table: t,
            condition,
            ..
        }) => {
            assert_eq!(t, table);
            assert_eq!(condition, WriteCondition::NotExists);
        }
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
    assert_eq!(records.get(&platform, &module).await.unwrap(), Some(first));

    let second = record(zlib, Status::Built, 2);
    records
        .put(&second, &WriteCondition::Unchanged { version: 1 })
        .await
        .unwrap();
    let stale = record(zlib, Status::Built, 2);
    match records
        .put(&stale, &WriteCondition::Unchanged { version: 1 })
        .await
    {
        Err(DynamoError::ConditionFailed { condition, .. }) => {
            assert_eq!(condition, WriteCondition::Unchanged { version: 1 });
        }
        other => panic!("expected ConditionFailed, got {other:?}"),
    }
    assert_eq!(records.get(&platform, &module).await.unwrap(), Some(second));

    let failed = record("bzip2/1.0.8-GCCcore-13.3.0", Status::Failed, 1);
    records
        .put(&failed, &WriteCondition::NotExists)
        .await
        .unwrap();
    let other_platform = ModuleRecord {
        platform: "amzn-2023_zen-4".into(),
        ..record("xz/5.4.5-GCCcore-13.3.0", Status::Built, 1)
    };
    records
        .put(&other_platform, &WriteCondition::NotExists)
        .await
        .unwrap();
    let built = records.built(&platform).await.unwrap();
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(built.get(zlib), Some(&Some("a".repeat(64))));
}

#[tokio::test]
async fn dynamodb_run_summary_item_beside_the_module_records() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use ebfleet_core::summary::{ReportedPlatform, RunOutput, RunSummary};
    let Some(conf) = super::config("dynamodb_run_summary_item_beside_the_module_records").await
    else {
        return;
    };
    let table = super::unique("ebfleet-records");
    super::create_table(&conf, &table).await;
    let records = Records::from_conf(&conf, &table);
    let zlib = record("zlib/1.3.1-GCCcore-13.3.0", Status::Built, 1);
    records
        .put(&zlib, &WriteCondition::NotExists)
        .await
        .unwrap();
    let summary = RunSummary::from_output(
        RunOutput {
            execution: "run-1".into(),
            platforms: vec![ReportedPlatform {
                platform: P.into(),
                node_seconds: Some(5400),
                ..ReportedPlatform::default()
            }],
            ..RunOutput::default()
        },
        1_000,
    );
    // Twice: a retried Lambda writes the same item again.
    for _ in 0..2 {
        records
            .put_run_summary(&summary, "plans/run-1/summary.json")
            .await
            .unwrap();
    }
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("RUN#run-1".into()))
        .key("sk", AttributeValue::S("SUMMARY".into()))
        .send()
        .await
        .unwrap();
    let item = item.item().expect("the run's summary item");
    assert_eq!(item["instance_hours"], AttributeValue::N("1.5".into()));
    assert!(!item.contains_key("usd"), "no price known: no dollars");
    let p = item["platforms"].as_m().unwrap()[P].as_m().unwrap();
    assert_eq!(p["node_seconds"], AttributeValue::N("5400".into()));
    // The module records are untouched and still read as before.
    let platform: PlatformName = P.parse().unwrap();
    assert_eq!(records.built(&platform).await.unwrap().len(), 1);
}
