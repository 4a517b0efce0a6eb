//! Benchmark of the plan Lambda's handler on a whole easyconfigs tree in a
//! local S3 (moto), as `scripts/bench-plan.sh` runs it:
//!
//! ```text
//! plan_handler upload DIR  put every *.eb under DIR to easyconfigs/, create the table
//! plan_handler run         one invocation of the handler; prints its figures as JSON
//! ```
//!
//! `run` is its own process, as a Lambda cold start is, so that its peak RSS
//! (`VmHWM`) is the handler's alone. The first run finds no packed index
//! (every easyconfig downloaded and parsed, the index written); later runs
//! read the index. Bucket and table come from `EBFLEET_BUCKET` and
//! `EBFLEET_TABLE`, the endpoint from `AWS_ENDPOINT_URL`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use ebfleet_control::env::{self, var};
use ebfleet_control::{plan, Env};
use ebfleet_core::layout::EASYCONFIG_INDEX_KEY;
use ebfleet_core::trigger::ExecutionInput;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "upload" => upload(Path::new(dir)).await,
        [cmd] if cmd == "run" => run().await,
        _ => Err("usage: plan_handler upload DIR | run".into()),
    }
}

fn easyconfigs(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_dir() {
            easyconfigs(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "eb") {
            out.push(path);
        }
    }
    Ok(())
}

async fn upload(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let conf = ebfleet_aws::load_config().await;
    let (bucket, table) = (std::env::var(var::BUCKET)?, std::env::var(var::TABLE)?);
    let s3 = aws_sdk_s3::Client::new(&conf);
    if s3.head_bucket().bucket(&bucket).send().await.is_err() {
        s3.create_bucket().bucket(&bucket).send().await?;
    }
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    if ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .is_err()
    {
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |n: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
        };
        ddb.create_table()
            .table_name(&table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await?;
    }
    let mut files = Vec::new();
    easyconfigs(dir, &mut files)?;
    files.sort();
    let start = Instant::now();
    let store = ebfleet_aws::s3::Store::from_conf(&conf, &bucket);
    for chunk in files.chunks(64) {
        let mut tasks = tokio::task::JoinSet::new();
        for f in chunk {
            let rel = f.strip_prefix(dir)?.to_string_lossy().into_owned();
            let (store, f) = (store.clone(), f.clone());
            tasks.spawn(async move {
                let bytes = tokio::fs::read(&f).await.expect("readable easyconfig");
                store
                    .put_bytes(&format!("easyconfigs/{rel}"), bytes, "text/x-python")
                    .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
    }
    eprintln!(
        "uploaded {} easyconfigs in {:.1} s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let env = Env::from_env().await?;
    let index_before = env
        .store
        .get_bytes(EASYCONFIG_INDEX_KEY)
        .await
        .map_or(0, |b| b.len());
    let input = ExecutionInput::full(format!("bench-{}", std::process::id()).parse()?);
    let start = Instant::now();
    let settings = plan::Settings::from_lookup(env::from_env)?;
    let out = plan::handle(&env, &settings, input).await?;
    let seconds = start.elapsed().as_secs_f64();
    let output_bytes = serde_json::to_vec(&out)?.len();
    let figures = serde_json::json!({
        "index_bytes_before": index_before,
        "seconds": (seconds * 100.0).round() / 100.0,
        "peak_rss_mib": peak_rss_kib()? / 1024,
        "platforms": out.platforms.len(),
        "units": out.platforms.iter().map(|p| p.to_build).sum::<usize>(),
        "output_bytes": output_bytes,
    });
    println!("{figures}");
    Ok(())
}

/// `VmHWM` of this process: its peak resident set, in KiB.
fn peak_rss_kib() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("VmHWM without a value")?
        .parse()?)
}
