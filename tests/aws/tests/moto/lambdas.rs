//! The Lambdas as Lambda runs them: under `cargo lambda watch`, invoked
//! with `cargo lambda invoke`, talking to moto. `scripts/test-lambda.sh`
//! builds them, starts moto and watch (with the stack's resource names in
//! the functions' environment) and runs this test; without
//! `EBFLEET_LAMBDA_INVOKE_PORT` it is skipped.
//!
//! One test, in the order a run calls the functions, since each step reads
//! what the one before left in S3, DynamoDB, EC2 and Auto Scaling: plan,
//! the platform's pool (capacity), the scheduler's first tick, one unit
//! (claim, dispatch, lease, record, done), a second plan, release, and the
//! trigger. Every sample event under `functions/*/events/` is sent at
//! least once, as it is or with the ids moto made put in.
//!
//! What moto cannot do, and so is not tested here: SSM's
//! `DescribeInstanceInformation` is not implemented (HTTP 500), so no node
//! is ever online — a claim, and a tick of a pool with members, fail as a
//! transient error and no unit is dispatched by the scheduler; Step
//! Functions accepts any task token (`SendTaskHeartbeat`,
//! `SendTaskSuccess`, `SendTaskFailure` do nothing), so a tick is never
//! `orphaned`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName, VolumeType};
use aws_sdk_ssm::types::{DocumentFormat, DocumentType};
use ebfleet_aws::autoscaling::Pools;
use ebfleet_aws::dynamodb::{attr, Records};
use ebfleet_aws::s3::Store;
use ebfleet_core::build_graph::BuildGraph;
use ebfleet_core::capacity::{TAG_EXECUTION, TAG_PLATFORM};
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::layout::{
    log_prefix_under, module_file_key, module_file_key_under, run_log_prefix, run_pk, tarball_key,
    tarball_key_under, wake_sk, EASYCONFIG_INDEX_KEY,
};
use ebfleet_core::lease::{leases_key, BatchLeases};
use ebfleet_core::manifest::{BatchManifest, ManifestEntry, Outcome, MANIFEST_FORMAT};
use ebfleet_core::names::{ExecutionName, PlatformName};
use ebfleet_core::record::{lease_owner, Status, Tarball};
use ebfleet_core::sizing::BuildUsage;
use ebfleet_core::step::StepCommand;
use ebfleet_core::unit::child_prefix;
use ebfleet_core::userdata::{node_binary_key, BOOTSTRAP_SH};
use ebfleet_core::Arch;
use ebfleet_planner::index::EasyconfigIndex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PLATFORM: &str = "amzn-2023_graviton-3";
const EXECUTION: &str = "lambda-test-1";
/// The pool capacity makes for [`EXECUTION`] and [`PLATFORM`].
const POOL: &str = "ebfleet-lambda-test-1-amzn-2023_graviton-3";
/// `EBFLEET_NODES_PER_PLATFORM` in `scripts/test-lambda.sh`.
const NODES_PER_PLATFORM: u64 = 4;

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
            cmd.arg("--data-file").arg(self.event_path(function, data));
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

    /// [`Watch::ok`] with an event built here.
    fn ok_with(&self, function: &str, event: &Value) -> Value {
        self.ok(function, &event.to_string())
    }

    /// The function's error for `data`, which must name `error_type`.
    fn refused(&self, function: &str, data: &str, error_type: &str) -> String {
        let err = match self.invoke(function, data) {
            Ok(out) => panic!("{function} accepted {data}: {out}"),
            Err(e) => unwrap_report(&e),
        };
        eprintln!("{function} refused: {err}");
        assert!(err.contains(error_type), "{function}: {error_type}? {err}");
        err
    }

    fn event_path(&self, function: &str, file: &str) -> PathBuf {
        self.events.join(function).join("events").join(file)
    }

    /// A sample event, to send with the ids moto made.
    fn event(&self, function: &str, file: &str) -> Value {
        let path = self.event_path(function, file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    }
}

/// An error as `cargo lambda invoke` prints it (a report wrapped at 80
/// columns, each continued line led by a border, a key broken after a `/`
/// or a `-`) on one line again.
fn unwrap_report(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_start().trim_start_matches(['│', '×']).trim();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() && !out.ends_with(['-', '/']) {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// User data as the instance runs it: the API's base64, decoded and
/// gunzipped as cloud-init does.
pub(crate) fn decode_user_data(base64: &str) -> String {
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

/// A state machine of one Pass state named as `arn` says (moto runs
/// nothing: it only records executions).
async fn create_state_machine(conf: &ebfleet_aws::SdkConfig, arn: &str) {
    let created = aws_sdk_sfn::Client::new(conf)
        .create_state_machine()
        .name(arn.rsplit(':').next().unwrap())
        .definition(r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/ebfleet-sfn")
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.state_machine_arn(),
        arn,
        "the ARN the functions are given"
    );
}

/// The bucket with the fixture easyconfigs, the table, the SSM document and
/// the state machines the functions are configured with.
async fn create_stack(conf: &ebfleet_aws::SdkConfig) -> Store {
    let (bucket, table) = (var("EBFLEET_BUCKET"), var("EBFLEET_TABLE"));
    // As the stack's: Record's promoted tarballs are exact versions, signed
    // with the key the functions are given by its alias.
    ebfleet_aws::testing::versioned_bucket(conf, &bucket).await;
    ebfleet_aws::testing::signing_key(conf, &var("EBFLEET_SIGNING_KEY")).await;
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
    create_state_machine(conf, &var("EBFLEET_STATE_MACHINE_ARN")).await;
    create_state_machine(conf, &var("EBFLEET_UNIT_STATE_MACHINE_ARN")).await;
    store
}

/// The build graph a plan output names for [`PLATFORM`].
async fn graph(store: &Store, plan: &Value) -> BuildGraph {
    let [p] = plan["platforms"].as_array().unwrap().as_slice() else {
        panic!("one platform planned: {plan}");
    };
    assert_eq!(p["platform"], PLATFORM);
    let text = String::from_utf8(
        store
            .get_bytes(p["graph_key"].as_str().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    BuildGraph::from_json(&text).unwrap()
}

/// The modules a graph builds.
fn units(g: &BuildGraph) -> BTreeSet<String> {
    g.units()
        .map(|u| g.modules[u as usize].module.to_string())
        .collect()
}

fn tag(i: &Instance, key: &str) -> Option<String> {
    i.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string)
}

/// How many commands SSM has been sent.
async fn command_count(ssm: &aws_sdk_ssm::Client) -> usize {
    ssm.list_commands().send().await.unwrap().commands().len()
}

/// The platform's wake-up item: (units ended, the token left there).
async fn wake_item(conf: &ebfleet_aws::SdkConfig) -> (Option<String>, Option<String>) {
    let out = aws_sdk_dynamodb::Client::new(conf)
        .get_item()
        .table_name(var("EBFLEET_TABLE"))
        .key(attr::PK, AttributeValue::S(run_pk(EXECUTION)))
        .key(attr::SK, AttributeValue::S(wake_sk(PLATFORM)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = out.item().cloned().unwrap_or_default();
    (
        item.get(attr::WAKE_COUNT)
            .and_then(|v| v.as_n().ok())
            .cloned(),
        item.get(attr::WAKE_TOKEN)
            .and_then(|v| v.as_s().ok())
            .cloned(),
    )
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
    let pools = Pools::from_conf(&conf);
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let ssm = aws_sdk_ssm::Client::new(&conf);
    let bucket = var("EBFLEET_BUCKET");
    let platform: PlatformName = PLATFORM.parse().unwrap();
    let execution: ExecutionName = EXECUTION.parse().unwrap();

    // plan: the changed easyconfig and what it needs, as the platform's
    // build graph; nothing is recorded built yet.
    let plan = w.ok("plan", "changed.json");
    assert_eq!(plan["execution"], EXECUTION);
    assert_eq!(plan["nothing_to_do"], false);
    let p = &plan["platforms"][0];
    assert_eq!(
        p["graph_key"],
        format!("plans/{EXECUTION}/{PLATFORM}/graph.json")
    );
    assert_eq!(p["name_prefix"], child_prefix(&execution, &platform));
    let g = graph(&store, &plan).await;
    assert_eq!((&g.execution, &g.platform), (&execution, &platform));
    assert_eq!(g.archspec, "neoverse_v1");
    let first_plan = units(&g);
    for m in ["AppGCCcore/1.0-GCCcore-1.0", "GCCcore/1.0"] {
        assert!(first_plan.contains(m), "{m} in {first_plan:?}");
    }
    assert!(
        g.modules.iter().all(|m| !m.built),
        "nothing is built yet: {g:?}"
    );
    assert_eq!(p["to_build"], first_plan.len());
    store
        .get_bytes(plan["plan_key"].as_str().unwrap())
        .await
        .unwrap();
    // The first plan packed the easyconfigs into the index; the same input
    // plans the same from it, and leaves it as it was.
    let index = store.get_bytes(EASYCONFIG_INDEX_KEY).await.unwrap();
    assert!(EasyconfigIndex::from_bytes(&index).unwrap().len() > 10);
    assert_eq!(w.ok("plan", "changed.json"), plan);
    assert_eq!(graph(&store, &plan).await, g);
    assert_eq!(store.get_bytes(EASYCONFIG_INDEX_KEY).await.unwrap(), index);
    // A broken index is not believed: the same plan, and the index rewritten.
    store
        .put_bytes(
            EASYCONFIG_INDEX_KEY,
            b"garbage".to_vec(),
            "application/octet-stream",
        )
        .await
        .unwrap();
    assert_eq!(w.ok("plan", "changed.json"), plan);
    assert_eq!(graph(&store, &plan).await, g);
    assert_eq!(store.get_bytes(EASYCONFIG_INDEX_KEY).await.unwrap(), index);

    // capacity {claim}: moto's SSM cannot say whether a node is online
    // (DescribeInstanceInformation answers HTTP 500): an SSM that cannot
    // answer is a transient error, for the state's Retry, never a lost node.
    let err = w.refused("capacity", "claim.json", "ebfleet.Transient");
    assert!(err.contains("i-0123456789abcdef0"), "{err}");
    assert!(!err.contains("ebfleet.NodeLost"), "{err}");

    // capacity {pool}: refused while no ebfleet-node is published for the
    // platform's architecture, before anything is made.
    let node_key = node_binary_key(Arch::Aarch64);
    let err = w.refused("capacity", "pool.json", "ebfleet.Invalid");
    assert!(err.contains(&node_key), "{err}");
    assert_eq!(pools.describe(POOL).await.unwrap(), None, "no pool yet");
    let node_binary = b"\x7fELF a stand-in for ebfleet-node".to_vec();
    let node_sha256 = ebfleet_core::checksum::sha256_hex(&node_binary);
    aws_sdk_s3::Client::new(&conf)
        .put_object()
        .bucket(&bucket)
        .key(&node_key)
        .metadata("sha256", &node_sha256)
        .body(node_binary.into())
        .send()
        .await
        .unwrap();

    // capacity {pool}: an empty Auto Scaling group of the platform's
    // families, tagged with the run, over a launch template of its own.
    let cap = w.ok("capacity", "pool.json");
    let pool = &cap["pool"];
    assert_eq!(pool["name"], POOL);
    assert_eq!(pool["max_size"], NODES_PER_PLATFORM);
    assert_eq!(pool["on_demand"], false);
    assert_eq!(pool["subnet_ids"], json!([var("EBFLEET_SUBNET_IDS")]));
    assert_eq!(
        pool["tags"],
        json!({"ebfleet:batch": "pool", "ebfleet:execution": EXECUTION, "ebfleet:platform": PLATFORM})
    );
    let types: Vec<String> = serde_json::from_value(pool["instance_types"].clone()).unwrap();
    assert!(!types.is_empty(), "{cap}");
    for t in &types {
        assert!(t.contains("7g"), "graviton-3 families are *7g*: {t}");
    }
    let state = pools
        .describe(POOL)
        .await
        .unwrap()
        .expect("the pool exists");
    assert_eq!(
        (state.desired, state.members.len()),
        (0, 0),
        "empty until the scheduler grows it"
    );
    for (key, value) in [(TAG_EXECUTION, EXECUTION), (TAG_PLATFORM, PLATFORM)] {
        assert_eq!(
            pools.tagged(key, value).await.unwrap(),
            [POOL],
            "the group is tagged {key}"
        );
    }
    // Its launch template: the bootstrap with the platform's settings and
    // a presigned download of the binary, on a 200 GiB gp3 root volume on
    // the AMI's root device, tagged with the run.
    let template_id = pool["launch_template_id"].as_str().unwrap().to_string();
    let templates = ec2
        .describe_launch_templates()
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_EXECUTION}"))
                .values(EXECUTION)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let [template] = templates.launch_templates() else {
        panic!("one launch template: {templates:?}");
    };
    assert_eq!(template.launch_template_id(), Some(template_id.as_str()));
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&template_id)
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    assert_eq!(
        data.instance_type().map(|t| t.as_str()),
        Some(types[0].as_str()),
        "the template's own type is the best"
    );
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

    // schedule {tick}, the first, as the platform state machine sends it:
    // nothing is online yet, so nothing is dispatched; the pool grows to
    // one node per ready unit (moto launches them at once).
    let run_token = "lambda-test-run-token";
    let tick = json!({"tick": {
        "execution": EXECUTION, "platform": PLATFORM,
        "graph_key": p["graph_key"], "name_prefix": p["name_prefix"],
        "pool": pool, "run_token": run_token}});
    let ticked = w.ok_with("schedule", &tick);
    assert_eq!(
        (
            &ticked["done"],
            &ticked["orphaned"],
            &ticked["next_execution"]
        ),
        (&json!(false), &json!(false), &json!(false)),
        "{ticked}"
    );
    assert_eq!(ticked["dispatched"], 0);
    assert_eq!(ticked["seen"], 0);
    assert_eq!(ticked["units"]["waiting"], first_plan.len());
    let ready = g
        .units()
        .filter(|&u| {
            g.modules[u as usize]
                .deps()
                .all(|d| g.modules[d as usize].built)
        })
        .count() as u64;
    assert!(ready > 0, "some unit needs nothing: {g:?}");
    let state_key = format!("plans/{EXECUTION}/{PLATFORM}/schedule.json");
    let schedule_state = store.get_bytes(&state_key).await.unwrap();
    let state = pools.describe(POOL).await.unwrap().unwrap();
    assert_eq!(
        u64::from(state.desired),
        ready.min(NODES_PER_PLATFORM),
        "{state:?}"
    );
    assert_eq!(state.members.len(), state.desired as usize, "{state:?}");
    let mut nodes: Vec<String> = state
        .members
        .iter()
        .map(|m| m.instance_id.clone())
        .collect();
    nodes.sort();
    let launched = super::instances(&ec2, &nodes).await;
    assert_eq!(launched.len(), nodes.len());
    for i in &launched {
        assert_eq!(tag(i, TAG_EXECUTION).as_deref(), Some(EXECUTION), "{i:?}");
        assert_eq!(tag(i, TAG_PLATFORM).as_deref(), Some(PLATFORM), "{i:?}");
        assert_eq!(
            tag(i, "aws:ec2launchtemplate:id").as_deref(),
            Some(template_id.as_str()),
            "{i:?}"
        );
        let itype = i.instance_type().unwrap().as_str();
        assert!(types.iter().any(|t| t == itype), "{itype} of {types:?}");
    }
    let node = nodes[0].clone();
    let instance_type = launched
        .iter()
        .find(|i| i.instance_id() == Some(node.as_str()))
        .and_then(|i| i.instance_type())
        .unwrap()
        .as_str()
        .to_string();

    // schedule {tick} (the sample event), the next: the pool has members
    // now, whose SSM status moto cannot give; the tick fails as transient
    // (its state's Retry) and leaves the scheduler's state as it was.
    let err = w.refused("schedule", "tick.json", "ebfleet.Transient");
    assert!(err.contains("DescribeInstanceInformation"), "{err}");
    assert_eq!(store.get_bytes(&state_key).await.unwrap(), schedule_state);

    // The unit's file, as the tick that dispatches unit 0 to the node
    // writes it: the node named as the principal it uploads as.
    let mut unit_file = g.unit_file(0).unwrap();
    unit_file.node = Some(format!("{}:{node}", var("EBFLEET_NODE_ROLE_ID")));
    let unit_key = unit_file.key();
    assert_eq!(unit_key, format!("plans/{EXECUTION}/{PLATFORM}/0.json"));
    store.put_json(&unit_key, &unit_file).await.unwrap();
    let [build] = unit_file.builds.as_slice() else {
        panic!("a unit builds one module: {unit_file:?}");
    };
    let module = build.module.clone();

    // dispatch: the command moto records is the project's document with
    // exactly the step's parameters, the task token among them.
    let mut sync = w.event("dispatch", "sync.json");
    assert_eq!(sync["batch_key"], unit_key);
    sync["instance_id"] = json!(node);
    let sent = w.ok_with("dispatch", &sync);
    assert_eq!(
        (&sent["instance_id"], &sent["step"]),
        (&json!(node), &json!("sync"))
    );
    let command_id = sent["command_id"].as_str().unwrap().to_string();
    let listed = ssm
        .list_commands()
        .command_id(&command_id)
        .send()
        .await
        .unwrap();
    let [command] = listed.commands() else {
        panic!("one command: {listed:?}");
    };
    assert_eq!(
        command.document_name(),
        Some(var("EBFLEET_SSM_DOCUMENT").as_str())
    );
    assert_eq!(command.instance_ids(), std::slice::from_ref(&node));
    let token = sync["task_token"].as_str().unwrap();
    let expected = StepCommand::parse("sync", &bucket, &unit_key)
        .unwrap()
        .with_task_token(token.parse().unwrap())
        .parameters();
    let params: BTreeMap<String, Vec<String>> = command
        .parameters()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(params, expected);
    assert_eq!(params["taskToken"], [token.to_string()]);
    assert_eq!(command.output_s3_bucket_name(), Some(bucket.as_str()));
    assert_eq!(
        command.output_s3_key_prefix(),
        Some(format!("logs/ssm/{PLATFORM}/{EXECUTION}/0/sync").as_str())
    );
    // Hostile input is refused with the error name a state's Catch
    // matches, and nothing is sent.
    let before = command_count(&ssm).await;
    let err = w.refused("dispatch", "hostile.json", "ebfleet.Invalid");
    assert!(err.contains("refused"), "{err}");
    for (field, value) in [
        ("step", "sync; reboot"),
        ("batch_key", "plans/../0.json"),
        ("instance_id", "i-0123456789abcdef0 --x"),
        ("task_token", "token\nrm -rf /"),
        ("output_prefix", "../elsewhere"),
    ] {
        let mut hostile = sync.clone();
        hostile[field] = json!(value);
        let err = w.refused("dispatch", &hostile.to_string(), "ebfleet.Invalid");
        assert!(err.contains("refused"), "{field}: {err}");
    }
    assert_eq!(command_count(&ssm).await, before, "nothing was sent");

    // dispatch, SSM's status-change event: an ended command's task is
    // completed from SSM's side (moto's Step Functions takes any token);
    // a command still running, or sent without a task, is left alone.
    let ended = |status: &str, command_id: &str| {
        let mut e = w.event("dispatch", "command-ended.json");
        e["detail"]["command-id"] = json!(command_id);
        e["detail"]["instance-id"] = json!(node);
        e["detail"]["status"] = json!(status);
        e
    };
    for (status, task) in [
        ("Undeliverable", "failed"),
        ("Failed", "failed"),
        ("Success", "succeeded"),
        ("InProgress", "ignored"),
    ] {
        let out = w.ok_with("dispatch", &ended(status, &command_id));
        assert_eq!(
            out,
            json!({"command_id": command_id, "task": task}),
            "{status}"
        );
    }
    let mut untracked = sync.clone();
    untracked["step"] = json!("build");
    untracked.as_object_mut().unwrap().remove("task_token");
    let untracked = w.ok_with("dispatch", &untracked);
    let untracked = untracked["command_id"].as_str().unwrap();
    assert_eq!(
        w.ok_with("dispatch", &ended("Failed", untracked))["task"],
        "not_waiting"
    );

    // record {lease}: unit 0 takes its module's lease and writes its
    // leases file.
    let owner = lease_owner(EXECUTION, 0);
    let leased = w.ok("record", "lease.json");
    assert_eq!(
        leased,
        json!({"leases_key": leases_key(&execution, &platform, 0),
               "waiting": 0, "leased": 1, "held": 0, "already_built": 0})
    );
    let file: BatchLeases = store
        .get_json(leased["leases_key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(file.owner, owner);
    assert_eq!(file.leased, std::slice::from_ref(&module));
    assert!(file.skip_reason(&module).is_none());
    let r = records.get(&platform, &module).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Building, "{module}");
    assert_eq!(r.lease.expect("leased").owner, owner);

    // record {manifest_key}: the node's manifest of unit 0, staged with
    // its tarball, module file and log, becomes the module's record once
    // Record has read the tarball back; the lease is released.
    let staging = unit_file.staging_prefix();
    assert!(staging.ends_with(&format!(":{node}/")), "{staging}");
    let (staged_tarball, staged_file) = (
        tarball_key_under(&staging, &module),
        module_file_key_under(&staging, &module),
    );
    let tarball_bytes = b"a tarball, as its node packed it".to_vec();
    let entry = ManifestEntry {
        module: module.to_string(),
        easyconfig_sha256: build.easyconfig_sha256.clone(),
        outcome: Outcome::Built {
            tarball: Tarball {
                key: staged_tarball.clone(),
                size: tarball_bytes.len() as u64,
                sha256: sha256_hex(&tarball_bytes),
                version_id: None,
                signature: None,
            },
            module_file_key: staged_file.clone(),
            duration_s: 60,
            usage: Some(BuildUsage {
                peak_memory_mib: 700,
                cpu_s: 240,
                cpus: 16,
            }),
        },
    };
    let manifest = BatchManifest {
        format: MANIFEST_FORMAT,
        execution: EXECUTION.into(),
        platform: PLATFORM.into(),
        batch: 0,
        instance_type: instance_type.clone(),
        archspec: "neoverse_v1".into(),
        eb_version: "5.4.1".into(),
        started: 1_795_000_000,
        finished: 1_795_000_600,
        modules: vec![entry.clone()],
    };
    manifest.validate().unwrap();
    store
        .put_json(&unit_file.staged_manifest_key(), &manifest)
        .await
        .unwrap();
    store
        .put_bytes(&staged_file, b"-- module file".to_vec(), "text/x-lua")
        .await
        .unwrap();
    let log = format!("{}eb.log", log_prefix_under(&staging, &module));
    store
        .put_bytes(&log, b"== built".to_vec(), "text/plain")
        .await
        .unwrap();
    // A staged tarball that is not what the manifest says is not
    // published: the module is recorded failed, saying why.
    let mut tampered = tarball_bytes.clone();
    tampered[0] ^= 1;
    store
        .put_bytes(&staged_tarball, tampered, "application/zstd")
        .await
        .unwrap();
    let refused = w.ok("record", "staged.json");
    assert_eq!(refused["manifest_key"], unit_file.manifest_key());
    assert_eq!(refused["failed"], json!(1), "{refused}");
    let why = refused["outcomes"][module.as_str()]["reason"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("upload was refused") && why.contains(&sha256_hex(&tarball_bytes)),
        "{why}"
    );
    assert!(store
        .head(&tarball_key(&platform, &module))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        records
            .get(&platform, &module)
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Failed
    );
    // The node's own tarball: promoted, its record the digest Record
    // computed and the promoted object's exact version.
    store
        .put_bytes(&staged_tarball, tarball_bytes.clone(), "application/zstd")
        .await
        .unwrap();
    let recorded = w.ok("record", "staged.json");
    assert_eq!(
        (&recorded["built"], &recorded["unchanged"]),
        (&json!(1), &json!(0)),
        "{recorded}"
    );
    assert_eq!(
        recorded["outcomes"],
        json!({module.as_str(): {"outcome": "built"}})
    );
    assert_eq!(
        recorded["tarballs"][module.as_str()],
        json!(sha256_hex(&tarball_bytes))
    );
    let again = w.ok("record", "staged.json");
    assert_eq!(
        (&again["built"], &again["unchanged"]),
        (&json!(0), &json!(1))
    );
    let r = records.get(&platform, &module).await.unwrap().unwrap();
    let t = r.tarball.clone().expect("a built record names its tarball");
    assert_eq!(t.key, tarball_key(&platform, &module));
    assert_eq!(t.sha256, sha256_hex(&tarball_bytes));
    let head = store.head(&t.key).await.unwrap().expect("promoted");
    assert_eq!(head.sha256.as_deref(), Some(t.sha256.as_str()));
    assert!(
        t.version_id.is_some(),
        "the record names the promoted version"
    );
    // Signed by the stack's key, for this key and digest only: the
    // record's signature, the object's too, verifies in KMS.
    let sig = ebfleet_aws::kms::signature_bytes(t.signature.as_deref().expect("signed")).unwrap();
    assert_eq!(head.metadata.get("signature"), t.signature.as_ref());
    let kms = ebfleet_aws::kms::Kms::from_conf(&conf);
    let statement = ebfleet_core::record::tarball_statement(&t.key, &t.sha256);
    let key = var("EBFLEET_SIGNING_KEY");
    assert!(kms.verify(&key, &statement, &sig).await.unwrap());
    let other = ebfleet_core::record::tarball_statement(&t.key, &"0".repeat(64));
    assert!(!kms.verify(&key, &other, &sig).await.unwrap());
    assert_eq!(store.get_bytes(&t.key).await.unwrap(), tarball_bytes);
    assert_eq!(
        store
            .get_bytes(&module_file_key(&platform, &module))
            .await
            .unwrap(),
        b"-- module file"
    );
    assert_eq!(
        store
            .get_bytes(&format!(
                "{}eb.log",
                run_log_prefix(&platform, &module, &execution)
            ))
            .await
            .unwrap(),
        b"== built"
    );
    let published: BatchManifest = store.get_json(&unit_file.manifest_key()).await.unwrap();
    assert!(
        matches!(&published.modules[0].outcome, Outcome::Built { tarball, .. } if tarball == &t)
    );
    let r = records.get(&platform, &module).await.unwrap().unwrap();
    assert_eq!(r.status, Status::Built, "{module}");
    assert_eq!(r.easyconfig_sha256, build.easyconfig_sha256);
    assert_eq!(r.instance_type.as_deref(), Some(instance_type.as_str()));
    assert_eq!(r.lease, None, "{module}: the manifest releases the lease");
    // What the build used, for the next run's sizing.
    let profile = records.recorded(&platform).await.unwrap().profiles[module.as_str()];
    assert_eq!(
        (profile.duration_s, profile.usage),
        (60, r.usage.expect("usage recorded"))
    );
    assert_eq!(profile.usage.peak_memory_mib, 700);

    // schedule {wait}: the platform's task token waits in its wake-up item
    // until a unit ends; record {done} ends unit 0 with what Lease and
    // Record produced (the sample event is exactly that), counts it and
    // takes the token to wake the scheduler.
    assert_eq!(w.ok("schedule", "wait.json"), json!({}));
    let wait_token = w.event("schedule", "wait.json")["wait"]["task_token"].clone();
    assert_eq!(
        wake_item(&conf).await,
        (None, wait_token.as_str().map(String::from))
    );
    let done = w.event("record", "done.json");
    assert_eq!(
        done["done"]["lease"], leased,
        "done.json's lease is Lease's output"
    );
    assert_eq!(
        done["done"]["recorded"], recorded,
        "done.json's recorded is Record's output"
    );
    // The unit's result hands on the recorded tarball to its dependents.
    assert_eq!(
        w.ok("record", "done.json"),
        json!({"unit": 0, "attempt": 1, "outcome": "built",
               "tarball_sha256": recorded["tarballs"]["binutils/2.0"]})
    );
    assert_eq!(wake_item(&conf).await, (Some("1".to_string()), None));

    // plan again: what is recorded built is not planned again; it is in
    // the graph as built, for the units that load it.
    let mut replan = w.event("plan", "changed.json");
    replan["execution"] = json!("lambda-test-2");
    let replan = w.ok_with("plan", &replan);
    let g2 = graph(&store, &replan).await;
    let second_plan = units(&g2);
    let built_now = BTreeSet::from([module.to_string()]);
    assert_eq!(second_plan, &first_plan - &built_now);
    assert_eq!(replan["nothing_to_do"], second_plan.is_empty());
    if g.modules.iter().any(|m| m.deps().any(|d| d == 0)) {
        assert!(
            g2.modules.iter().any(|m| m.module == module
                && m.built
                && m.tarball_sha256.as_deref() == Some(t.sha256.as_str())),
            "{module} is a built need, with its record's tarball sha256, in {g2:?}"
        );
    }

    // release: the pool deleted (moto leaves its instances running), its
    // instances terminated by tag, its launch template deleted; then
    // nothing is left to release.
    let rel = w.ok("release", "platform.json");
    assert_eq!(rel["pools_deleted"], json!([POOL]));
    let mut terminated: Vec<String> = serde_json::from_value(rel["terminated"].clone()).unwrap();
    terminated.sort();
    assert_eq!(terminated, nodes);
    assert_eq!(rel["launch_templates_deleted"], json!([template_id]));
    assert_eq!(pools.describe(POOL).await.unwrap(), None);
    for i in super::instances(&ec2, &nodes).await {
        assert_eq!(
            i.state().and_then(|s| s.name()),
            Some(&InstanceStateName::Terminated),
            "{i:?}"
        );
    }
    let again = w.ok("release", "platform.json");
    assert_eq!(again["terminated"], json!([]));
    assert_eq!(again["launch_templates_deleted"], json!([]));
    // A tick after its pool is gone is refused (nothing to retry).
    let err = w.refused("schedule", "tick.json", "ebfleet.Invalid");
    assert!(err.contains("no such Auto Scaling group"), "{err}");

    // trigger: start, defer while it runs, follow up when it ends.
    let sm = var("EBFLEET_STATE_MACHINE_ARN");
    let started = w.ok("trigger", "object-created.json");
    assert_eq!(
        started["changed_keys"],
        json!(["easyconfigs/z/zlib/zlib-1.0.eb"])
    );
    let first_run = started["execution_arn"].as_str().unwrap().to_string();
    let other = json!({"detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket},
                   "object": {"key": "easyconfigs/s/SysOnly/SysOnly-1.0.eb"}}});
    let deferred = w.ok_with("trigger", &other);
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

    // sweep: an ended run's instance and lease are released; a running
    // run's instance and one tagged with no run of this pipeline are left.
    let ended = format!("{EXECUTION}-ended");
    let alive = format!("{EXECUTION}-alive");
    let mut tagged = BTreeMap::new();
    for run in [&ended, &alive, &"not-a-run-here".to_string()] {
        tagged.insert(run.clone(), tagged_instance(&ec2, run).await);
    }
    for (run, stop) in [(&ended, true), (&alive, false)] {
        let arn = sfn
            .start_execution()
            .state_machine_arn(&sm)
            .name(run)
            .send()
            .await
            .unwrap()
            .execution_arn()
            .to_string();
        if stop {
            sfn.stop_execution()
                .execution_arn(arn)
                .send()
                .await
                .unwrap();
        }
    }
    let module_of_ended = "sweepme/1.0";
    let mut leased =
        ebfleet_core::record::ModuleRecord::new(PLATFORM, module_of_ended, &"e".repeat(64), 1);
    leased.status = Status::Building;
    leased.lease = Some(ebfleet_core::record::Lease {
        owner: lease_owner(&ended, 0),
        expires: u64::MAX,
    });
    records
        .put(&leased, &ebfleet_core::record::write_condition(None))
        .await
        .unwrap();
    let swept = w.ok("sweep", "scheduled.json");
    assert_eq!(swept["swept"].as_array().unwrap().len(), 1, "{swept}");
    assert_eq!(swept["swept"][0]["execution"], json!(ended));
    assert_eq!(swept["swept"][0]["status"], "ABORTED");
    assert_eq!(
        swept["swept"][0]["released"]["terminated"],
        json!([tagged[&ended]])
    );
    assert_eq!(swept["swept"][0]["leases_freed"], 1);
    assert!(
        swept["running"].as_array().unwrap().contains(&json!(alive)),
        "{swept}"
    );
    assert!(
        swept["unknown"]
            .as_array()
            .unwrap()
            .contains(&json!("not-a-run-here")),
        "{swept}"
    );
    let states: BTreeMap<String, Option<InstanceStateName>> =
        super::instances(&ec2, &tagged.values().cloned().collect::<Vec<_>>())
            .await
            .into_iter()
            .map(|i| {
                (
                    i.instance_id().unwrap().to_string(),
                    i.state().and_then(|s| s.name()).cloned(),
                )
            })
            .collect();
    assert_eq!(states[&tagged[&ended]], Some(InstanceStateName::Terminated));
    assert_eq!(states[&tagged[&alive]], Some(InstanceStateName::Running));
    assert_eq!(
        states[&tagged["not-a-run-here"]],
        Some(InstanceStateName::Running)
    );
    let platform: PlatformName = PLATFORM.parse().unwrap();
    let freed = records
        .get(&platform, &module_of_ended.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((freed.lease, freed.status), (None, Status::Planned));
}

/// An instance tagged as a node of `run`, as moto runs it.
async fn tagged_instance(ec2: &aws_sdk_ec2::Client, run: &str) -> String {
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(TAG_EXECUTION)
                .value(run)
                .build(),
        )
        .build();
    let out = ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}
