//! The deployed artifacts against the code they drive: `infra/template.yaml`
//! and `statemachine/*.asl.json` must say exactly what the handlers and the
//! core expect — the SSM document, the environment each Lambda reads, the
//! table's TTL, and the shapes of every state's input and output.
//!
//! The state machines' side comes from `statemachine/test/`: the Lambda
//! outputs their simulation answers with (`lambda-outputs.json`) and the
//! first input of each kind each function got in it (`task-inputs.json`,
//! rewritten by `node simulate.mjs --update` and compared by
//! `scripts/test-infra.sh`). Paths, retries, substitutions and roles are
//! `infra/check.py`'s.

use ebfleet_control::record::lease::LEASE_SECONDS_VAR;
use ebfleet_control::{capacity, dispatch, env::var, record, release, schedule, summary};
use ebfleet_core::record::{Lease, ModuleRecord, Status, Tarball};
use ebfleet_core::step::ssm_document;
use ebfleet_core::trigger::ExecutionInput;
use ebfleet_core::unit::UnitResult;
use ebfleet_core::wire::PlanOutput;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value as Json};
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn read_json(rel: &str) -> Json {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// YAML as JSON; CloudFormation's short tags become their long form
/// (`!Ref X` is `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": "A.B"}`).
fn to_json(y: &Yaml) -> Json {
    match y {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).expect("a YAML number is a JSON number"),
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let long = if name == "Ref" || name == "Condition" {
                name.to_string()
            } else {
                format!("Fn::{name}")
            };
            json!({ long: to_json(&t.value) })
        }
    }
}

fn template() -> Json {
    let text = read("infra/template.yaml");
    let y: Yaml = serde_yaml_ng::from_str(&text).expect("infra/template.yaml is YAML");
    to_json(&y)
}

fn resources_of_type<'a>(t: &'a Json, ty: &str) -> Vec<(&'a String, &'a Json)> {
    t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .collect()
}

fn one_resource<'a>(t: &'a Json, ty: &str) -> &'a Json {
    let all = resources_of_type(t, ty);
    assert_eq!(all.len(), 1, "one {ty} expected, found {}", all.len());
    all[0].1
}

#[test]
fn the_ssm_document_is_the_cores() {
    let t = template();
    let doc = one_resource(&t, "AWS::SSM::Document");
    assert_eq!(doc["Properties"]["DocumentType"], "Command");
    let expected = ssm_document();
    let deployed = &doc["Properties"]["Content"];
    assert!(
        *deployed == expected,
        "infra/template.yaml's AWS::SSM::Document Content differs from \
         ebfleet_core::step::ssm_document(); replace it with:\n{}",
        serde_yaml_ng::to_string(&expected).unwrap()
    );
}

/// The variables every function gets from `Globals` plus its own.
fn environments(t: &Json) -> BTreeMap<String, BTreeSet<String>> {
    let global: BTreeSet<String> = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    resources_of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(name, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no BuildProperties.Binary"))
                .to_string();
            let mut vars = global.clone();
            if let Some(m) = f["Properties"]["Environment"]["Variables"].as_object() {
                vars.extend(m.keys().cloned());
            }
            (binary, vars)
        })
        .collect()
}

#[test]
fn every_function_gets_the_environment_its_handler_reads() {
    let t = template();
    let envs = environments(&t);
    // One function per binary under functions/, and the other way round.
    let dirs: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|d| root().join("functions").join(d).join("Cargo.toml").exists())
        .collect();
    assert_eq!(envs.keys().cloned().collect::<BTreeSet<_>>(), dirs);
    for binary in envs.keys() {
        let manifest = read(&format!("functions/{binary}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "functions/{binary} does not build a binary named {binary}"
        );
    }
    // What Env::from_env and each handler require.
    let needs: &[(&str, &[&str])] = &[
        (
            "capacity",
            &[
                var::INSTANCE_PROFILE_ARN,
                var::SECURITY_GROUP_ID,
                var::SUBNET_IDS,
            ],
        ),
        (
            "bake",
            &[
                var::STACK_NAME,
                var::NODE_IMAGE_PREFIX,
                var::SECURITY_GROUP_ID,
                var::SUBNET_IDS,
            ],
        ),
        ("dispatch", &[var::SSM_DOCUMENT]),
        (
            "schedule",
            &[
                var::UNIT_STATE_MACHINE_ARN,
                var::NODE_ROLE_ID,
                var::SIGNING_KEY,
            ],
        ),
        ("record", &[var::SIGNING_KEY]),
        ("trigger", &[var::STATE_MACHINE_ARN]),
    ];
    for (binary, vars) in &envs {
        for v in [var::BUCKET, var::TABLE] {
            assert!(vars.contains(v), "{binary} lacks {v}");
        }
        for (b, required) in needs {
            if b == binary {
                for v in *required {
                    assert!(vars.contains(*v), "{binary} lacks {v}");
                }
            }
        }
    }
    // Nothing the code does not know by that name.
    let known: BTreeSet<&str> = [
        var::BUCKET,
        var::TABLE,
        var::STATE_MACHINE_ARN,
        var::SSM_DOCUMENT,
        var::PLATFORMS,
        var::INSTANCE_PROFILE_ARN,
        var::SECURITY_GROUP_ID,
        var::SUBNET_IDS,
        var::PINNED_AMI,
        var::NODE_IMAGE_PREFIX,
        var::STACK_NAME,
        var::MAX_TYPES,
        var::ROOT_VOLUME_GIB,
        var::TOOLCHAINS,
        var::UNIT_STATE_MACHINE_ARN,
        var::NODE_ROLE_ID,
        var::SIGNING_KEY,
        var::NODES_PER_PLATFORM,
        var::MAX_INSTANCES_PER_PLATFORM,
        var::NODE_IDLE_SECONDS,
        var::NODE_ATTEMPTS,
        var::TICKS_PER_EXECUTION,
        LEASE_SECONDS_VAR,
        "RUST_LOG",
    ]
    .into_iter()
    .collect();
    for (binary, vars) in &envs {
        for v in vars {
            assert!(
                known.contains(v.as_str()),
                "{binary} sets {v}, which no code reads"
            );
        }
    }
}

#[test]
fn capacity_sizes_the_root_volume_as_the_node_template_and_may_presign_the_node_binary() {
    use ebfleet_core::capacity::{
        DEFAULT_ROOT_VOLUME_GIB, MAX_ROOT_VOLUME_GIB, MIN_ROOT_VOLUME_GIB,
    };
    let t = template();
    let (_, capacity) = resources_of_type(&t, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == "capacity")
        .expect("the capacity function");
    let size = json!({"Ref": "NodeRootVolumeGiB"});
    assert_eq!(
        capacity["Properties"]["Environment"]["Variables"][var::ROOT_VOLUME_GIB],
        size
    );
    let node = one_resource(&t, "AWS::EC2::LaunchTemplate");
    assert_eq!(
        node["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"],
        size
    );
    let p = &t["Parameters"]["NodeRootVolumeGiB"];
    assert_eq!(
        (&p["Default"], &p["MinValue"], &p["MaxValue"]),
        (
            &json!(DEFAULT_ROOT_VOLUME_GIB),
            &json!(MIN_ROOT_VOLUME_GIB),
            &json!(MAX_ROOT_VOLUME_GIB)
        )
    );
    // Presigning signs with the function's role.
    let binaries = json!({
        "Fn::Sub": format!("${{Bucket.Arn}}/{}*", ebfleet_core::userdata::NODE_BINARY_PREFIX)
    });
    let statements = capacity["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .expect("the capacity function's policy statements");
    assert!(
        statements.iter().any(|s| s["Effect"] == "Allow"
            && s["Action"] == "s3:GetObject"
            && s["Resource"] == binaries),
        "the capacity function may not read {binaries}"
    );
    // It sizes the pool from the graph of exactly that execution and
    // platform (the key the layout gives).
    let graph = ebfleet_core::build_graph::graph_key(
        &"run-1".parse().unwrap(),
        &"amzn-2023_graviton-3".parse().unwrap(),
    );
    let readable = |s: &serde_json::Value| {
        let Some(sub) = s["Resource"]["Fn::Sub"].as_str() else {
            return false;
        };
        let pattern = sub.trim_start_matches("${Bucket.Arn}/");
        s["Effect"] == "Allow" && s["Action"] == "s3:GetObject" && glob(pattern, &graph)
    };
    assert!(
        statements.iter().any(readable),
        "the capacity function may not read {graph}"
    );
}

/// IAM's `*` (any characters, `/` included).
fn glob(pattern: &str, key: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == key,
        Some((head, rest)) => {
            key.starts_with(head)
                && (0..=key.len() - head.len()).any(|i| glob(rest, &key[head.len() + i..]))
        }
    }
}

#[test]
fn ttl_is_an_attribute_no_module_item_carries() {
    let t = template();
    let table = one_resource(&t, "AWS::DynamoDB::Table");
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(
        p["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    let ttl = &p["TimeToLiveSpecification"];
    assert_eq!(ttl["Enabled"], true);
    assert_eq!(ttl["AttributeName"], ebfleet_aws::dynamodb::TTL);
    // A module item with everything optional filled in, a lease included.
    let mut r = ModuleRecord::new(
        "amzn-2023_graviton-3",
        "zlib/1.3.1-GCCcore-13.3.0",
        &"a".repeat(64),
        1_000,
    );
    r.status = Status::Built;
    r.tarball = Some(Tarball {
        key: "amzn-2023_graviton-3/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst".into(),
        size: 1,
        sha256: "b".repeat(64),
        version_id: None,
        signature: None,
    });
    r.module_file_key = Some("m".into());
    r.eb_version = Some("5.4.1".into());
    r.instance_type = Some("c7g.4xlarge".into());
    r.archspec = Some("neoverse_v1".into());
    r.duration_s = Some(1);
    r.execution = Some("run-1".into());
    r.batch = Some(0);
    r.lease = Some(Lease {
        owner: "run-1#0".into(),
        expires: 2_000,
    });
    let item = ebfleet_aws::dynamodb::to_item(&r);
    assert!(item.contains_key(ebfleet_aws::dynamodb::attr::LEASE_EXPIRES));
    assert!(
        !item.contains_key(ebfleet_aws::dynamodb::TTL),
        "module items carry the TTL attribute: DynamoDB would delete built records"
    );
}

/// `value` read as `T` and written back is `value` again: no field missing,
/// renamed or extra.
fn round_trips<T: DeserializeOwned + Serialize>(what: &str, value: &Json) {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: not the handler's output type: {e}\n{value}"));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), value, "{what}");
}

#[test]
fn the_simulations_lambda_outputs_are_the_handlers() {
    let out = read_json("statemachine/test/lambda-outputs.json");
    round_trips::<PlanOutput>("plan", &out["plan"]);
    round_trips::<capacity::PoolOutput>("capacity pool", &out["capacity"]["pool"]);
    round_trips::<capacity::ClaimOutput>("capacity claim", &out["capacity"]["claim"]);
    round_trips::<schedule::TickOutput>("schedule tick", &out["schedule"]["tick"]);
    round_trips::<dispatch::Output>("dispatch", &out["dispatch"]);
    round_trips::<record::lease::Output>("lease", &out["lease"]);
    round_trips::<record::Output>("record", &out["record"]);
    round_trips::<UnitResult>("done", &out["done"]);
    round_trips::<release::Output>("release", &out["release"]);
    round_trips::<summary::Output>("summary", &out["summary"]);
}

fn input<T: DeserializeOwned>(state: &str, v: &Json) -> T {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{state} sends what its handler refuses: {e}\n{v}"))
}

#[test]
fn every_task_sends_what_its_handler_accepts() {
    let sent = read_json("statemachine/test/task-inputs.json");
    let sent = sent.as_object().unwrap();
    // What the simulation saw of each function: it must have seen every
    // kind of call the state machines make.
    let kinds: BTreeSet<&str> = sent.keys().map(|k| k.as_str()).collect();
    for expected in [
        "capacity:claim",
        "capacity:pool",
        "dispatch:batch_key,instance_id,step,task_token",
        "plan:execution,mode,run",
        "record:done",
        "record:lease",
        "record:staged",
        "release:execution,platform",
        "release:summary",
        "schedule:tick",
        "schedule:wait",
    ] {
        assert!(
            kinds.contains(expected),
            "no {expected} call in task-inputs.json (node simulate.mjs --update)"
        );
    }
    for (kind, i) in sent {
        let f = kind.split(':').next().unwrap();
        match f {
            "plan" => {
                let p: ExecutionInput = input(kind, i);
                assert_eq!(
                    p.execution().as_str(),
                    "run-1",
                    "the execution's name reaches Plan"
                );
            }
            "capacity" => {
                let _: capacity::Input = input(kind, i);
            }
            "schedule" => match input(kind, i) {
                schedule::Input::Tick { tick } => {
                    assert_eq!(
                        tick.pool.name,
                        capacity::pool_name(&tick.execution, &tick.platform)
                    );
                    assert!(
                        !tick.run_token.is_empty(),
                        "the tick beats on the run's task"
                    );
                }
                schedule::Input::Wait { wait } => {
                    assert!(!wait.task_token.is_empty());
                }
                schedule::Input::Layer { layer } => {
                    assert_eq!(
                        layer.graph_key,
                        ebfleet_core::build_graph::graph_key(&layer.execution, &layer.platform)
                    );
                }
            },
            "dispatch" => {
                let dispatch::Request::Step(d) = input(kind, i) else {
                    panic!("{kind}: not a step");
                };
                let (command, _, prefix) = dispatch::prepare(&d, "ebfleet-bucket")
                    .unwrap_or_else(|e| panic!("{kind}: the handler refuses {i}: {e}"));
                assert!(
                    command.task_token().is_some(),
                    "{kind}: the node completes the task"
                );
                assert!(
                    prefix.starts_with("logs/ssm/"),
                    "{kind}: step output under logs/, which expires"
                );
            }
            "record" => match input(kind, i) {
                record::Input::Staged { staged } => {
                    assert_eq!(
                        staged.batch_key(),
                        "plans/run-1/amzn-2023_graviton-3/0.json"
                    );
                }
                record::Input::Lease { lease } => {
                    assert_eq!(
                        lease.batch.batch_key(),
                        "plans/run-1/amzn-2023_graviton-3/0.json"
                    );
                    assert_eq!(lease.batch.owner().unwrap(), "run-1#batch-0");
                    assert_eq!(
                        lease.waits_left, 0,
                        "a unit held elsewhere ends: the scheduler waits"
                    );
                }
                record::Input::Done { done } => {
                    assert_eq!((done.unit, done.attempt), (0, 1));
                    assert!(done.lease.is_some() && done.recorded.is_some());
                }
            },
            "release" => match input(kind, i) {
                release::Request::Release(_) => {
                    assert!(!kind.ends_with(":summary"), "{kind}: read as a release")
                }
                release::Request::Summary(s) => {
                    assert_eq!(s.summary.execution, "run-1");
                    // What the platforms reported reaches the summary whole.
                    let summary = ebfleet_core::summary::RunSummary::from_output(s.summary, 0);
                    assert!(!summary.platforms.is_empty(), "{kind}: no platform");
                    for p in &summary.platforms {
                        let cost = p
                            .cost
                            .as_ref()
                            .unwrap_or_else(|| panic!("{kind}: {} without its cost", p.platform));
                        assert_eq!(p.usd, cost.usd);
                        assert!(p.units.is_some() && p.node_seconds.is_some());
                    }
                }
            },
            other => panic!("{kind}: unknown function {other}"),
        }
    }
}

/// The principal the policies are asked for (IAM's `aws:userid` of a node).
const NODE_USERID: &str = "AROANODEROLE:i-0123456789abcdef0";

/// Whether a statement (`Effect`) of `policies` lets `action` on `key` of
/// the bucket: its resources as IAM globs over `${Bucket.Arn}/<key>`, the
/// policy variable `${aws:userid}` as [`NODE_USERID`].
fn statement_covers(policies: &Json, effect: &str, action: &str, key: &str) -> bool {
    let statements = policies.as_array().into_iter().flatten().flat_map(|p| {
        p["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
    });
    let as_list = |v: &Json| match v {
        Json::Array(xs) => xs.clone(),
        other => vec![other.clone()],
    };
    statements.filter(|s| s["Effect"] == effect).any(|s| {
        as_list(&s["Action"]).iter().any(|a| a == action)
            && as_list(&s["Resource"]).iter().any(|r| {
                r["Fn::Sub"]
                    .as_str()
                    .and_then(|sub| sub.strip_prefix("${Bucket.Arn}/"))
                    .is_some_and(|pattern| {
                        glob(&pattern.replace("${!aws:userid}", NODE_USERID), key)
                    })
            })
    })
}

#[test]
fn a_node_never_writes_easyconfigs_plans_tools_or_the_index() {
    let t = template();
    let policies = &t["Resources"]["NodeRole"]["Properties"]["Policies"];
    // Keys a hostile build would like to write: denied explicitly, and
    // allowed by none of its grants.
    for key in [
        "easyconfigs/s/software/software-1.eb",
        "easyconfigs/m/modules/modules-1.eb",
        "plans/run-1/amzn-2023_epyc-gen-4/graph.json",
        "tools/ebfleet-node/x86_64/ebfleet-node",
        "index/easyconfigs.bin",
    ] {
        assert!(
            statement_covers(policies, "Deny", "s3:PutObject", key),
            "the node role does not deny writing {key}"
        );
        assert!(
            !statement_covers(policies, "Allow", "s3:PutObject", key),
            "the node role allows writing {key}"
        );
    }
    // It writes its unit's staging prefix under its own principal; the
    // platform's prefixes are Record's to write once it has verified what
    // was staged.
    let staged =
        format!("staging/amzn-2023_epyc-gen-4/run-1/3/{NODE_USERID}/software/zlib/1.3.1.tar.zst");
    assert!(statement_covers(policies, "Allow", "s3:PutObject", &staged));
    assert!(!statement_covers(policies, "Deny", "s3:PutObject", &staged));
    for key in [
        "staging/amzn-2023_epyc-gen-4/run-1/3/AROANODEROLE:i-0fedcba9876543210/manifest.json",
        "staging/amzn-2023_epyc-gen-4/run-1/3/manifest.json",
        "amzn-2023_epyc-gen-4/software/zlib/1.3.1.tar.zst",
        "amzn-2023_epyc-gen-4/modules/all/zlib/1.3.1.lua",
        "amzn-2023_epyc-gen-4/manifests/run-1/3.json",
    ] {
        assert!(
            !statement_covers(policies, "Allow", "s3:PutObject", key),
            "the node role allows writing {key}"
        );
    }
}
