//! `ebfleet-aws` against a real moto server over HTTP. The clients come from
//! `ebfleet_aws::load_config()` (`AWS_ENDPOINT_URL`, region and dummy keys
//! set by `scripts/test-aws.sh`). Without `EBFLEET_MOTO_ENDPOINT` every test
//! returns early, so a plain `cargo test --workspace` passes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

mod bake;
mod dynamodb;
mod ec2;
mod lambdas;
mod s3;
mod sfn;
mod ssm;

/// The shared SDK configuration, or `None` (after a skip note) when no moto
/// server is configured.
async fn config(test: &str) -> Option<ebfleet_aws::SdkConfig> {
    if std::env::var_os("EBFLEET_MOTO_ENDPOINT").is_none() {
        eprintln!("skipping {test}: EBFLEET_MOTO_ENDPOINT is unset (run scripts/test-aws.sh)");
        return None;
    }
    Some(ebfleet_aws::load_config().await)
}

/// A name no other test (nor an earlier run against the same server) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The project's table layout (`pk`, `sk`, on demand), as the template has it.
async fn create_table(conf: &ebfleet_aws::SdkConfig, table: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    use ebfleet_aws::dynamodb::attr::{PK, SK};
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    };
    aws_sdk_dynamodb::Client::new(conf)
        .create_table()
        .table_name(table)
        .attribute_definitions(attr(PK))
        .attribute_definitions(attr(SK))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

/// The instances `ids`, as EC2 describes them.
pub(crate) async fn instances(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Vec<aws_sdk_ec2::types::Instance> {
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances().iter().cloned())
        .collect()
}
