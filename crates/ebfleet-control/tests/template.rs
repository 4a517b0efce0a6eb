//! The deployed artifacts against the code they drive: `infra/template.yaml`
//! and `statemachine/pipeline.asl.json` must say exactly what the handlers
//! and the core expect — the SSM document, the environment each Lambda
//! reads, the table's TTL, and the shapes of every state's input and output.
//!
//! The state machine's side comes from `statemachine/test/`: the Lambda
//! outputs its simulation answers with (`lambda-outputs.json`) and the first
//! input each Task state sent in it (`task-inputs.json`, rewritten by
//! `node simulate.mjs --update` and compared by `scripts/test-infra.sh`).

use ebfleet_control::{capacity, dispatch, env::var, managed, plan, record, release, status};
use ebfleet_core::record::{Lease, ModuleRecord, Status, Tarball};
use ebfleet_core::step::{ssm_document, CommandStatus};
use ebfleet_core::trigger::ExecutionInput;
use ebfleet_core::wire::PlanOutput;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};
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

/// Variables the template sets that no handler reads yet (see
/// infra/OPERATOR.md, "What is not wired yet"). Remove a name once its
/// handler reads it.
const NOT_READ_YET: &[&str] = &[];

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
        ("dispatch", &[var::SSM_DOCUMENT]),
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
        var::MAX_TYPES,
        var::ROOT_VOLUME_GIB,
        var::TOOLCHAINS,
        var::MAX_BATCH_MODULES,
        plan::CACHE_DIR_VAR,
        "RUST_LOG",
    ]
    .into_iter()
    .chain(NOT_READ_YET.iter().copied())
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
    round_trips::<capacity::Output>("capacity", &out["capacity"]);
    round_trips::<managed::Output>("managed", &out["managed"]);
    round_trips::<dispatch::Output>("dispatch", &out["dispatch"]);
    for (name, s) in out["status"].as_object().unwrap() {
        round_trips::<CommandStatus>(&format!("status {name}"), s);
    }
    round_trips::<record::Output>("record", &out["record"]);
    round_trips::<record::lease::Output>("lease", &out["lease"]);
    round_trips::<record::lease::ReleaseOutput>("release_leases", &out["release_leases"]);
    round_trips::<release::Output>("release", &out["release"]);
}

/// Every state of a definition, nested ones too.
fn states(def: &Json, into: &mut Map<String, Json>) {
    for (name, s) in def["States"].as_object().unwrap() {
        into.insert(name.clone(), s.clone());
        if s.get("ItemProcessor").is_some() {
            states(&s["ItemProcessor"], into);
        }
    }
}

fn input<T: DeserializeOwned>(state: &str, v: &Json) -> T {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{state} sends what its handler refuses: {e}\n{v}"))
}

#[test]
fn every_task_sends_what_its_handler_accepts() {
    let def = read_json("statemachine/pipeline.asl.json");
    let mut all = Map::new();
    states(&def, &mut all);
    let tasks: BTreeSet<&String> = all
        .iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .map(|(n, _)| n)
        .collect();
    let sent = read_json("statemachine/test/task-inputs.json");
    let sent = sent.as_object().unwrap();
    assert_eq!(
        sent.keys().collect::<BTreeSet<_>>(),
        tasks,
        "task-inputs.json must hold one input per Task state (node simulate.mjs --update)"
    );
    for (state, call) in sent {
        let f = call["fn"].as_str().unwrap();
        let resource = all[state]["Resource"].as_str().unwrap();
        assert_eq!(resource, format!("${{{f}FunctionArn}}"), "{state}");
        let i = &call["input"];
        match f {
            "Plan" => {
                let p: ExecutionInput = input(state, i);
                assert_eq!(
                    p.execution().as_str(),
                    "run-1",
                    "the execution's name reaches Plan"
                );
            }
            "Capacity" => {
                let _: capacity::Input = input(state, i);
            }
            "Managed" => {
                let m: managed::Input = input(state, i);
                assert!(
                    m.instance_ids.iter().all(|id| dispatch::is_instance_id(id)),
                    "{state}"
                );
            }
            "Dispatch" => {
                let d: dispatch::Input = input(state, i);
                let (command, _, prefix) = dispatch::prepare(&d, "ebfleet-bucket")
                    .unwrap_or_else(|e| panic!("{state}: the handler refuses {i}: {e}"));
                assert_eq!(command.step().to_string(), state.to_lowercase());
                assert!(
                    prefix.starts_with("logs/"),
                    "{state}: step output under logs/ (lifecycle)"
                );
            }
            "Status" => {
                let s: status::Input = input(state, i);
                status::validate(&s).unwrap_or_else(|e| panic!("{state}: {e}"));
            }
            // One function, three states: each must send its own input.
            "Record" => match (state.as_str(), input(state, i)) {
                ("Record", r @ record::Input::Batch { .. }) => {
                    assert_eq!(
                        r.key().as_deref(),
                        Some("amzn-2023_epyc-gen-4/manifests/run-1/0.json")
                    );
                }
                ("Lease", record::Input::Lease { lease }) => {
                    assert_eq!(
                        lease.batch.batch_key(),
                        "plans/run-1/amzn-2023_epyc-gen-4/0.json",
                        "{state} leases the batch the steps run"
                    );
                    assert_eq!(lease.batch.owner().unwrap(), "run-1#batch-0");
                    assert!(
                        lease.waits_left > 0,
                        "{state} may wait for another run's leases"
                    );
                }
                (
                    "Release lost batch's leases",
                    record::Input::ReleaseLeases { release_leases },
                ) => {
                    assert_eq!(release_leases.owner().unwrap(), "run-1#batch-0");
                }
                (_, other) => panic!("{state} sends {other:?} to the record function"),
            },
            "Release" => {
                let _: release::Input = input(state, i);
            }
            other => panic!("{state}: unknown function {other}"),
        }
    }
}

#[test]
fn the_definitions_substitutions_are_the_templates() {
    let t = template();
    let machine = one_resource(&t, "AWS::Serverless::StateMachine");
    let p = &machine["Properties"];
    assert_eq!(p["DefinitionUri"], "../statemachine/pipeline.asl.json");
    let subs = p["DefinitionSubstitutions"].as_object().unwrap();
    let text = read("statemachine/pipeline.asl.json");
    // Every `${Name}`: what SAM replaces.
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("${") {
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if text[i + 2 + name.len()..].starts_with('}') && !name.is_empty() {
            used.insert(name);
        }
    }
    assert_eq!(used, subs.keys().cloned().collect::<BTreeSet<_>>());
    // Each function ARN is the function that builds that binary.
    let functions: BTreeMap<&String, &Json> = resources_of_type(&t, "AWS::Serverless::Function")
        .into_iter()
        .collect();
    for (name, value) in subs {
        let Some(f) = name.strip_suffix("FunctionArn") else {
            continue;
        };
        let target = value["Fn::GetAtt"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {value}"));
        let resource = target.strip_suffix(".Arn").unwrap();
        let binary = &functions[&resource.to_string()]["Metadata"]["BuildProperties"]["Binary"];
        assert_eq!(binary.as_str().unwrap(), f.to_lowercase(), "{name}");
    }
}
