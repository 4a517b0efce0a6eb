//! The Lambdas as Lambda runs them: under `cargo lambda watch`, invoked
//! with `cargo lambda invoke`, talking to moto. `scripts/test-lambda.sh`
//! builds them, starts moto and watch (with the stack's resource names in
//! the functions' environment) and runs this test; without
//! `EBFLEET_LAMBDA_INVOKE_PORT` it is skipped.
//!
//! One test, in the order a run calls the functions, since each step reads
//! what the one before left in S3, DynamoDB and EC2.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{Filter, VolumeType};
use aws_sdk_ssm::types::{DocumentFormat, DocumentType};
use ebfleet_aws::dynamodb::Records;
use ebfleet_aws::s3::Store;
use ebfleet_core::layout::{module_file_key, tarball_key};
use ebfleet_core::lease::{leases_key, BatchLeases};
use ebfleet_core::manifest::{BatchManifest, ManifestEntry, Outcome, MANIFEST_FORMAT};
use ebfleet_core::names::{ModuleName, PlatformName};
use ebfleet_core::record::{lease_owner, Status, Tarball};
use ebfleet_core::userdata::{node_binary_key, BOOTSTRAP_SH};
use ebfleet_core::wire::BatchFile;
use ebfleet_core::Arch;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PLATFORM: &str = "amzn-2023_graviton-3";

struct Watch {
    port: String,
    events: PathBuf,
}

impl Watch {
    /// `cargo lambda invoke FUNCTION` with `data` (JSON text) or, when it
    /// names a file, that sample event; the function's output, or its error.
    fn invoke(&self, function: &str, data: &str) -> Result<Value, String> {
        let mut cmd = Command::new("cargo");
        cmd.args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port, function]);
        if data.ends_with(".json") {
            cmd.arg("--data-file")
                .arg(self.events.join(function).join("events").join(data));
        } else {
            cmd.args(["--data-ascii", data]);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cargo lambda invoke: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(format!("{function} failed: {stdout}{stderr}"));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("{function}: {e}: {stdout}{stderr}"))
    }

    fn ok(&self, function: &str, data: &str) -> Value {
        let out = self.invoke(function, data).unwrap();
        eprintln!("{function} -> {out}");
        out
    }
}

/// User data as the instance runs it: the API's base64, decoded and
/// gunzipped as cloud-init does.
fn decode_user_data(base64: &str) -> String {
    let mut child = Command::new("sh")
        .args(["-c", "base64 -d | gzip -dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh, base64 and gzip run");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(base64.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "base64 -d | gzip -dc");
    String::from_utf8(out.stdout).unwrap()
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/test-lambda.sh"))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out)
        } else {
            out.push(p)
        }
    }
}

/// The bucket with the fixture easyconfigs, the table, the SSM document and
/// the state machine the functions are configured with.
async fn create_stack(conf: &ebfleet_aws::SdkConfig) -> Store {
    let (bucket, table) = (var("EBFLEET_BUCKET"), var("EBFLEET_TABLE"));
    aws_sdk_s3::Client::new(conf)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let store = Store::from_conf(conf, &bucket);
    let fixtures = PathBuf::from(var("EBFLEET_FIXTURES"));
    let mut all = Vec::new();
    files(&fixtures, &mut all);
    for f in all {
        let rel = f
            .strip_prefix(&fixtures)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        store
            .put_bytes(
                &format!("easyconfigs/{rel}"),
                std::fs::read(&f).unwrap(),
                "text/plain",
            )
            .await
            .unwrap();
    }
    super::create_table(conf, &table).await;
    aws_sdk_ssm::Client::new(conf)
        .create_document()
        .name(var("EBFLEET_SSM_DOCUMENT"))
        .content(ebfleet_core::step::ssm_document().to_string())
        .document_type(DocumentType::Command)
        .document_format(DocumentFormat::Json)
        .send()
        .await
        .unwrap();
    let sm = var("EBFLEET_STATE_MACHINE_ARN");
    let created = aws_sdk_sfn::Client::new(conf)
        .create_state_machine()
        .name(sm.rsplit(':').next().unwrap())
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/ebfleet-sfn")
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.state_machine_arn(),
        sm,
        "the ARN the functions are given"
    );
    store
}

/// Every module the batch files of a plan output build.
async fn planned(store: &Store, out: &Value) -> Vec<BatchFile> {
    let mut batches = Vec::new();
    for p in out["platforms"].as_array().unwrap() {
        let prefix = p["batch_prefix"].as_str().unwrap();
        for i in 0..p["batches"].as_u64().unwrap() {
            let text =
                String::from_utf8(store.get_bytes(&format!("{prefix}{i}.json")).await.unwrap())
                    .unwrap();
            batches.push(BatchFile::from_json(&text).unwrap());
        }
    }
    batches
}

fn modules(batches: &[BatchFile]) -> BTreeSet<String> {
    batches
        .iter()
        .flat_map(|b| b.builds.iter().map(|m| m.module.to_string()))
        .collect()
}

#[tokio::test]
async fn lambdas_under_cargo_lambda_watch() {
    let Some(port) = std::env::var("EBFLEET_LAMBDA_INVOKE_PORT").ok() else {
        eprintln!("skipping lambdas_under_cargo_lambda_watch: run scripts/test-lambda.sh");
        return;
    };
    let Some(conf) = super::config("lambdas_under_cargo_lambda_watch").await else {
        return;
    };
    let w = Watch {
        port,
        events: PathBuf::from(var("EBFLEET_FUNCTIONS_DIR")),
    };
    let store = create_stack(&conf).await;
    let records = Records::from_conf(&conf, var("EBFLEET_TABLE"));
    let platform: PlatformName = PLATFORM.parse().unwrap();

    // plan: the changed easyconfig and what it needs, written as batch files.
    let plan = w.ok("plan", "changed.json");
    assert_eq!(plan["nothing_to_do"], false);
    assert_eq!(plan["platforms"].as_array().unwrap().len(), 1);
    let batches = planned(&store, &plan).await;
    let first_plan = modules(&batches);
    assert!(
        first_plan.contains("AppGCCcore/1.0-GCCcore-1.0"),
        "{first_plan:?}"
    );
    assert!(first_plan.contains("GCCcore/1.0"), "{first_plan:?}");
    store
        .get_bytes(plan["plan_key"].as_str().unwrap())
        .await
        .unwrap();
    // The same input plans the same (the easyconfigs now come from the cache).
    assert_eq!(w.ok("plan", "changed.json"), plan);

    // capacity: refused while no ebfleet-node is published for the
    // platform's architecture, before anything is launched.
    let node_key = node_binary_key(Arch::Aarch64);
    let err = w.invoke("capacity", "batch.json").unwrap_err();
    assert!(
        err.contains("ebfleet.Invalid") && err.contains(&node_key),
        "{err}"
    );
    let node_binary = b"\x7fELF a stand-in for ebfleet-node".to_vec();
    let node_sha256 = ebfleet_core::checksum::sha256_hex(&node_binary);
    aws_sdk_s3::Client::new(&conf)
        .put_object()
        .bucket(var("EBFLEET_BUCKET"))
        .key(&node_key)
        .metadata("sha256", &node_sha256)
        .body(node_binary.into())
        .send()
        .await
        .unwrap();

    // capacity: a node of the platform's families, tagged with the run.
    let cap = w.ok("capacity", "batch.json");
    let ids: Vec<String> = serde_json::from_value(cap["instance_ids"].clone()).unwrap();
    assert_eq!(ids.len(), 1, "{cap}");
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let described = ec2
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    let tag = |k: &str| {
        instance
            .tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("ebfleet:platform").as_deref(), Some(PLATFORM));
    assert_eq!(tag("ebfleet:execution").as_deref(), Some("lambda-test-1"));
    let itype = instance.instance_type().unwrap().as_str().to_string();
    assert!(
        itype.starts_with('c') || itype.starts_with('m') || itype.starts_with('r'),
        "{itype}"
    );
    assert!(
        itype.contains("7g"),
        "graviton-3 families are *7g*: {itype}"
    );
    // Its launch template: the bootstrap with the platform's settings and
    // a presigned download of the binary, on a 200 GiB gp3 root volume on
    // the AMI's root device.
    let templates = ec2
        .describe_launch_templates()
        .filters(
            Filter::builder()
                .name("tag:ebfleet:execution")
                .values("lambda-test-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let [template] = templates.launch_templates() else {
        panic!("one launch template: {templates:?}");
    };
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(template.launch_template_id().unwrap())
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    let script = decode_user_data(data.user_data().expect("user data"));
    assert!(script.starts_with("#!/bin/bash\n"), "{script:.300}");
    assert!(
        script.ends_with(BOOTSTRAP_SH),
        "the bootstrap follows the settings"
    );
    for line in [
        format!("export EBFLEET_PLATFORM='{PLATFORM}'"),
        "export EBFLEET_ARCHSPEC='neoverse_v1'".to_string(),
        "export EBFLEET_OPTARCH='GCC:mcpu=neoverse-v1'".to_string(),
        format!("export EBFLEET_NODE_SHA256='{node_sha256}'"),
    ] {
        assert!(script.lines().any(|l| l == line), "{line} in {script:.600}");
    }
    let url = script
        .lines()
        .find_map(|l| l.strip_prefix("export EBFLEET_NODE_URL='"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the node URL");
    assert!(
        url.contains(&format!("/{node_key}?")) && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let [root] = data.block_device_mappings() else {
        panic!("one block device: {data:?}");
    };
    let image = ec2
        .describe_images()
        .image_ids(data.image_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(root.device_name(), image.images()[0].root_device_name());
    let ebs = root.ebs().unwrap();
    assert_eq!(ebs.volume_size(), Some(200));
    assert_eq!(ebs.volume_type(), Some(&VolumeType::Gp3));
    assert_eq!(ebs.encrypted(), Some(true));
    assert_eq!(ebs.delete_on_termination(), Some(true));
    assert_eq!(w.ok("managed", "none.json"), json!({"managed": false}));

    // dispatch + status: the command moto records is the project's
    // document with exactly the step's parameters.
    let batch_key = batches[0].key();
    let sent = w.ok(
        "dispatch",
        &json!({"step": "sync", "batch_key": batch_key, "instance_id": ids[0]}).to_string(),
    );
    let command_id = sent["command_id"].as_str().unwrap();
    let listed = aws_sdk_ssm::Client::new(&conf)
        .list_commands()
        .command_id(command_id)
        .send()
        .await
        .unwrap();
    let command = &listed.commands()[0];
    assert_eq!(
        command.document_name(),
        Some(var("EBFLEET_SSM_DOCUMENT").as_str())
    );
    let params = command.parameters().unwrap();
    assert_eq!(params["step"], vec!["sync".to_string()]);
    assert_eq!(params["batchKey"], vec![batch_key.clone()]);
    assert_eq!(params["platform"], vec![PLATFORM.to_string()]);
    let status = w.ok(
        "status",
        &json!({"command_id": command_id, "instance_id": ids[0]}).to_string(),
    );
    assert_eq!(status["status"], "success");
    // Refused with the error name a state's Catch matches.
    for hostile in ["dispatch", "status"] {
        let err = w.invoke(hostile, "hostile.json").unwrap_err();
        assert!(
            err.contains("refused") && err.contains("ebfleet.Invalid"),
            "{hostile}: {err}"
        );
    }

    // lease: batch 0 takes its modules' leases and writes its leases file.
    let owner = lease_owner("lambda-test-1", 0);
    let leased = w.ok("record", "lease.json");
    let key = leased["leases_key"].as_str().unwrap().to_string();
    assert_eq!(
        key,
        leases_key(&batches[0].execution, &batches[0].platform, 0)
    );
    assert_eq!(
        (
            leased["leased"].as_u64(),
            leased["held"].as_u64(),
            leased["already_built"].as_u64()
        ),
        (Some(batches[0].builds.len() as u64), Some(0), Some(0)),
        "{leased}"
    );
    let file: BatchLeases = store.get_json(&key).await.unwrap();
    assert_eq!(file.owner, owner);
    assert_eq!(
        file.leased,
        batches[0]
            .builds
            .iter()
            .map(|b| b.module.clone())
            .collect::<Vec<_>>()
    );
    for b in &batches[0].builds {
        let r = records.get(&platform, &b.module).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Building, "{}", b.module);
        let lease = r
            .lease
            .unwrap_or_else(|| panic!("{} is not leased", b.module));
        assert_eq!(lease.owner, owner);
        assert!(file.skip_reason(&b.module).is_none());
    }

    // record: the node's manifest of batch 0 becomes records, once, and
    // the batch's leases are released.
    let entries: Vec<ManifestEntry> = batches[0]
        .builds
        .iter()
        .map(|b| ManifestEntry {
            module: b.module.to_string(),
            easyconfig_sha256: b.easyconfig_sha256.clone(),
            outcome: Outcome::Built {
                tarball: Tarball {
                    key: tarball_key(&platform, &b.module),
                    size: 1024,
                    sha256: "c".repeat(64),
                },
                module_file_key: module_file_key(&platform, &b.module),
                duration_s: 60,
            },
        })
        .collect();
    let manifest = BatchManifest {
        format: MANIFEST_FORMAT,
        execution: "lambda-test-1".into(),
        platform: PLATFORM.into(),
        batch: 0,
        instance_type: itype.clone(),
        archspec: "neoverse_v1".into(),
        eb_version: "5.4.1".into(),
        started: 1_795_000_000,
        finished: 1_795_000_600,
        modules: entries.clone(),
    };
    store
        .put_json(&batches[0].manifest_key(), &manifest)
        .await
        .unwrap();
    let rec = w.ok("record", "batch.json");
    assert_eq!(rec["built"], entries.len());
    let again = w.ok("record", "batch.json");
    assert_eq!(
        (again["built"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(entries.len() as u64))
    );
    for e in &entries {
        let module: ModuleName = e.module.parse().unwrap();
        let r = records.get(&platform, &module).await.unwrap().unwrap();
        assert_eq!(r.status, Status::Built, "{}", e.module);
        assert_eq!(r.easyconfig_sha256, e.easyconfig_sha256);
        assert_eq!(r.instance_type.as_deref(), Some(itype.as_str()));
        assert_eq!(
            r.lease, None,
            "{}: the manifest releases the lease",
            e.module
        );
    }
    // What is recorded built is not planned again.
    let replan = w.ok(
        "plan",
        &json!({"execution": "lambda-test-2", "mode": "changed",
                "changed_keys": ["easyconfigs/a/AppGCCcore/AppGCCcore-1.0-GCCcore-1.0.eb"],
                "platforms": [PLATFORM]})
        .to_string(),
    );
    let second_plan = modules(&planned(&store, &replan).await);
    let built_now: BTreeSet<String> = entries.iter().map(|e| e.module.clone()).collect();
    assert_eq!(second_plan, &first_plan - &built_now);
    assert_eq!(replan["nothing_to_do"], second_plan.is_empty());

    // release: terminated by tag, then already gone.
    let rel = w.ok("release", "platform.json");
    assert_eq!(rel["terminated"], json!(ids));
    let again = w.ok("release", "platform.json");
    assert_eq!(again["terminated"], json!([]));
    let state = ec2
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .as_str(),
        "terminated"
    );

    // trigger: start, defer while it runs, follow up when it ends.
    let sm = var("EBFLEET_STATE_MACHINE_ARN");
    let started = w.ok("trigger", "object-created.json");
    assert_eq!(
        started["changed_keys"],
        json!(["easyconfigs/z/zlib/zlib-1.0.eb"])
    );
    let first_run = started["execution_arn"].as_str().unwrap().to_string();
    let other = json!({"detail-type": "Object Created",
        "detail": {"bucket": {"name": var("EBFLEET_BUCKET")},
                   "object": {"key": "easyconfigs/s/SysOnly/SysOnly-1.0.eb"}}});
    let deferred = w.ok("trigger", &other.to_string());
    assert_eq!(deferred["deferred"], "easyconfigs/s/SysOnly/SysOnly-1.0.eb");
    assert_eq!(deferred["pending"], 1);
    let idle = w.ok("trigger", "execution-ended.json");
    assert!(
        idle["reason"].as_str().unwrap().contains("still running"),
        "{idle}"
    );
    let sfn = aws_sdk_sfn::Client::new(&conf);
    sfn.stop_execution()
        .execution_arn(&first_run)
        .send()
        .await
        .unwrap();
    let follow = w.ok("trigger", "execution-ended.json");
    assert_eq!(
        follow["changed_keys"],
        json!(["easyconfigs/s/SysOnly/SysOnly-1.0.eb"])
    );
    let pending = aws_sdk_dynamodb::Client::new(&conf)
        .query()
        .table_name(var("EBFLEET_TABLE"))
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", AttributeValue::S("PENDING".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        pending.count(),
        0,
        "pending keys are cleared once the follow-up started"
    );
    let running = sfn
        .list_executions()
        .state_machine_arn(&sm)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(running.executions().len(), 1);
}
