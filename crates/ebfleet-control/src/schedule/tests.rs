//! The scheduler Lambda over mocked S3, DynamoDB, Auto Scaling, SSM and
//! Step Functions: what a tick reads, starts and saves.

use super::*;
use crate::testing::{Mocks, BUCKET};
use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityOutput;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance, LifecycleState};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessOutput;
use aws_sdk_sfn::operation::start_execution::StartExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_sdk_ssm::operation::describe_instance_information::DescribeInstanceInformationOutput;
use aws_sdk_ssm::types::{InstanceInformation, PingStatus};
use aws_smithy_mocks::{mock, Rule};
use ebfleet_core::arch::Arch;
use ebfleet_core::build_graph::GraphModule;
use ebfleet_core::checksum::sha256_hex;
use std::sync::{Arc, Mutex};

const P: &str = "amzn-2023_epyc-gen-4";
const GRAPH: &str = "plans/run-1/amzn-2023_epyc-gen-4/graph.json";
const STATE: &str = "plans/run-1/amzn-2023_epyc-gen-4/schedule.json";
const UNIT_SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:ebfleet-unit";
const NODE_ROLE: &str = "AROASCHEDULETEST";

fn module(name: &str, run: &[u32], built: bool) -> GraphModule {
    let (n, v) = name.split_once('/').unwrap();
    GraphModule {
        module: name.parse().unwrap(),
        easyconfig: format!(
            "{}/{n}/{n}-{v}.eb",
            n.to_lowercase().chars().next().unwrap()
        )
        .parse()
        .unwrap(),
        easyconfig_sha256: sha256_hex(name.as_bytes()),
        build_deps: vec![],
        runtime_deps: run.to_vec(),
        built,
        estimate_s: 100,
        held: None,
        profile: None,
        optarch: None,
        tarball_sha256: built.then(|| sha256_hex(format!("{name}.tar.zst").as_bytes())),
        from_base: false,
    }
}

/// GCCcore built; zlib and bzip2 need it; Python needs zlib.
fn graph() -> BuildGraph {
    BuildGraph {
        execution: "run-1".parse().unwrap(),
        platform: P.parse().unwrap(),
        arch: Arch::X86_64,
        archspec: "zen4".into(),
        optarch: "GCC:march=znver4".into(),
        cuda_compute_capability: None,
        base: None,
        modules: vec![
            module("GCCcore/13.2.0", &[], true),
            module("zlib/1.3-GCCcore-13.2.0", &[0], false),
            module("bzip2/1.0.8-GCCcore-13.2.0", &[0], false),
            GraphModule {
                estimate_s: 500,
                ..module("Python/3.11.5-GCCcore-13.2.0", &[1, 0], false)
            },
        ],
    }
}

fn settings() -> Settings {
    Settings::from_lookup(crate::testing::lookup(&[
        (var::UNIT_STATE_MACHINE_ARN, UNIT_SM),
        (var::NODE_ROLE_ID, NODE_ROLE),
        (var::SIGNING_KEY, "alias/ebfleet-signing"),
    ]))
    .unwrap()
}

fn input() -> TickInput {
    TickInput {
        execution: "run-1".parse().unwrap(),
        platform: P.parse().unwrap(),
        graph_key: GRAPH.into(),
        name_prefix: "run-1-epyc-gen-4".into(),
        pool: PoolSpec {
            name: "ebfleet-run-1-amzn-2023_epyc-gen-4".into(),
            launch_template_id: "lt-1".into(),
            instance_types: vec!["c7a.8xlarge".into()],
            subnet_ids: vec!["subnet-1".into()],
            max_size: 32,
            tags: Default::default(),
            on_demand: false,
        },
        run_token: "run-token-1".into(),
    }
}

fn beat() -> Rule {
    mock!(aws_sdk_sfn::Client::send_task_heartbeat)
        .match_requests(|q| q.task_token() == Some("run-token-1"))
        .then_output(|| {
            aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatOutput::builder().build()
        })
}

fn get(key: &'static str, body: Option<String>) -> Rule {
    let rule = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |q| q.bucket() == Some(BUCKET) && q.key() == Some(key));
    match body {
        Some(b) => rule.then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(b.clone().into_bytes()))
                .build()
        }),
        None => rule.then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build())),
    }
}

/// Every PutObject: key → body.
fn puts(into: Arc<Mutex<Vec<(String, String)>>>) -> Rule {
    mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |q| {
            let body = String::from_utf8(q.body().bytes().unwrap().to_vec()).unwrap();
            into.lock()
                .unwrap()
                .push((q.key().unwrap().to_string(), body));
            true
        })
        .then_output(|| PutObjectOutput::builder().build())
}

fn wake_count(n: u64) -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|q| {
            q.key().unwrap().get("sk") == Some(&AttributeValue::S(format!("WAKE#{P}")))
        })
        .then_output(move || {
            GetItemOutput::builder()
                .item("ended", AttributeValue::N(n.to_string()))
                .build()
        })
}

fn pool(ids: &'static [&'static str], desired: i32) -> Rule {
    mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(move || {
        let mut g = AutoScalingGroup::builder()
            .auto_scaling_group_name("ebfleet-run-1-amzn-2023_epyc-gen-4")
            .desired_capacity(desired);
        for id in ids {
            g = g.instances(
                Instance::builder()
                    .instance_id(*id)
                    .lifecycle_state(LifecycleState::InService)
                    .build(),
            );
        }
        DescribeAutoScalingGroupsOutput::builder()
            .auto_scaling_groups(g.build())
            .build()
    })
}

fn online(ids: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_ssm::Client::describe_instance_information).then_output(move || {
        let mut o = DescribeInstanceInformationOutput::builder();
        for id in ids {
            o = o.instance_information_list(
                InstanceInformation::builder()
                    .instance_id(*id)
                    .ping_status(PingStatus::Online)
                    .build(),
            );
        }
        o.build()
    })
}

/// Every StartExecution: name → input.
fn starts(into: Arc<Mutex<Vec<(String, UnitInput)>>>) -> Rule {
    mock!(aws_sdk_sfn::Client::start_execution)
        .match_requests(move |q| {
            let ok = q.state_machine_arn() == Some(UNIT_SM);
            if ok {
                into.lock().unwrap().push((
                    q.name().unwrap().to_string(),
                    serde_json::from_str(q.input().unwrap()).unwrap(),
                ));
            }
            ok
        })
        .then_output(|| {
            StartExecutionOutput::builder()
                .execution_arn("arn:aws:states:us-east-1:123456789012:execution:ebfleet-unit:x")
                .start_date(aws_sdk_sfn::primitives::DateTime::from_secs(0))
                .build()
                .unwrap()
        })
}

#[tokio::test]
async fn a_first_tick_dispatches_the_ready_units_longest_path_first_and_saves_its_state() {
    let graph_json = serde_json::to_string(&graph()).unwrap();
    let (get_graph, no_state) = (get(GRAPH, Some(graph_json)), get(STATE, None));
    let written = Arc::new(Mutex::new(Vec::new()));
    let put = puts(written.clone());
    let started = Arc::new(Mutex::new(Vec::new()));
    let start = starts(started.clone());
    let (count, members, up) = (wake_count(0), pool(&["i-0a"], 1), online(&["i-0a"]));
    let heartbeat = beat();
    let grow = mock!(aws_sdk_autoscaling::Client::set_desired_capacity)
        .match_requests(|q| q.desired_capacity() == Some(2))
        .then_output(|| SetDesiredCapacityOutput::builder().build());
    let mocks = Mocks {
        s3: vec![&get_graph, &no_state, &put],
        dynamodb: vec![&count],
        autoscaling: vec![&members, &grow],
        ssm: vec![&up],
        sfn: vec![&start, &heartbeat],
        ..Default::default()
    };
    let out = tick(&mocks.env(), &settings(), input()).await.unwrap();
    assert_eq!(heartbeat.num_calls(), 1, "the run hears from the platform");
    // zlib (rank 600: Python waits for it) goes first, to the one node;
    // bzip2 waits for a second node, which is asked for.
    assert_eq!((out.dispatched, out.done, out.seen), (1, false, 0));
    assert_eq!(grow.num_calls(), 1);
    let started = started.lock().unwrap();
    assert_eq!(started.len(), 1);
    let (name, unit) = &started[0];
    assert_eq!(name, "run-1-epyc-gen-4-u1-a1");
    assert_eq!(
        (
            unit.unit,
            unit.attempt,
            unit.instance_id.as_str(),
            unit.unit_key.as_str()
        ),
        (1, 1, "i-0a", "plans/run-1/amzn-2023_epyc-gen-4/1.json")
    );
    let written = written.lock().unwrap();
    let file = written.iter().find(|(k, _)| k == &unit.unit_key).unwrap();
    let file = ebfleet_core::wire::BatchFile::from_json(&file.1).unwrap();
    assert_eq!(file.builds[0].module.as_str(), "zlib/1.3-GCCcore-13.2.0");
    assert_eq!(file.needs[0].module.as_str(), "GCCcore/13.2.0");
    // Its node, as the principal whose staging prefix it may write.
    assert_eq!(file.node.as_deref(), Some("AROASCHEDULETEST:i-0a"));
    // The key its needs' signatures must verify with.
    assert_eq!(file.signing_key.as_deref(), Some("alias/ebfleet-signing"));
    assert!(file.staging_prefix().ends_with("/1/AROASCHEDULETEST:i-0a/"));
    let state: State =
        serde_json::from_str(&written.iter().find(|(k, _)| k == STATE).unwrap().1).unwrap();
    assert_eq!(state.executions.len(), 1);
    assert_eq!(state.ticks_this_execution, 1);
}

#[tokio::test]
async fn a_unit_that_ended_frees_its_node_for_what_waited_on_it() {
    // The state after the first tick: zlib running on i-0a.
    let dag = Dag::from_graph(&graph());
    let mut schedule = Schedule::new(&dag);
    let obs = Observation {
        now: 0,
        ended: vec![],
        pool: vec![PoolInstance {
            id: "i-0a".into(),
            online: true,
            instance_type: None,
        }],
        desired: 1,
        on_demand: false,
    };
    schedule.tick(&dag, &obs, &settings().scheduler);
    let state = State {
        schedule,
        executions: [(1, "arn:unit-1".to_string())].into(),
        tarballs: Default::default(),
        ticks_this_execution: 1,
        started: 0,
        user_data_renewed: ebfleet_core::clock::unix_now(),
    };
    let graph_json = serde_json::to_string(&graph()).unwrap();
    let get_graph = get(GRAPH, Some(graph_json));
    let get_state = get(STATE, Some(serde_json::to_string(&state).unwrap()));
    let written = Arc::new(Mutex::new(Vec::new()));
    let put = puts(written.clone());
    let started = Arc::new(Mutex::new(Vec::new()));
    let start = starts(started.clone());
    let done = mock!(aws_sdk_sfn::Client::describe_execution)
        .match_requests(|q| q.execution_arn() == Some("arn:unit-1"))
        .then_output(|| {
            DescribeExecutionOutput::builder()
                .execution_arn("arn:unit-1")
                .state_machine_arn(UNIT_SM)
                .status(ExecutionStatus::Succeeded)
                .output(format!(
                    r#"{{"unit": 1, "attempt": 1, "outcome": "built", "tarball_sha256": "{}"}}"#,
                    sha256_hex(b"zlib tarball")
                ))
                .start_date(aws_sdk_sfn::primitives::DateTime::from_secs(0))
                .build()
                .unwrap()
        });
    let (count, members, up) = (wake_count(1), pool(&["i-0a"], 2), online(&["i-0a"]));
    let heartbeat = beat();
    let mocks = Mocks {
        s3: vec![&get_graph, &get_state, &put],
        dynamodb: vec![&count],
        autoscaling: vec![&members],
        ssm: vec![&up],
        sfn: vec![&done, &start, &heartbeat],
        ..Default::default()
    };
    let out = tick(&mocks.env(), &settings(), input()).await.unwrap();
    assert_eq!(out.units.built, 1);
    assert_eq!(out.seen, 1);
    // Python (needs zlib, longest path) goes to the freed node.
    let started = started.lock().unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0, "run-1-epyc-gen-4-u3-a1");
    // Its unit file names the tarball its node may take of GCCcore, built
    // before the run (the plan's, from its record), and of zlib, built in
    // this run (its unit's output, from Record).
    let written = written.lock().unwrap();
    let (_, unit) = written
        .iter()
        .find(|(k, _)| k.ends_with("/3.json"))
        .expect("Python's unit file");
    let file = ebfleet_core::wire::BatchFile::from_json(unit).unwrap();
    let sha = |m: &str| {
        file.needs
            .iter()
            .find(|n| n.module.as_str() == m)
            .and_then(|n| n.tarball_sha256.clone())
    };
    assert_eq!(
        sha("zlib/1.3-GCCcore-13.2.0"),
        Some(sha256_hex(b"zlib tarball"))
    );
    assert_eq!(sha("GCCcore/13.2.0"), graph().modules[0].tarball_sha256);
    assert!(sha("GCCcore/13.2.0").is_some());
    // The state keeps it for dependents dispatched later.
    let (_, saved) = written
        .iter()
        .find(|(k, _)| k == STATE)
        .expect("the state written");
    let saved: State = serde_json::from_str(saved).unwrap();
    assert_eq!(saved.tarballs.get(&1), Some(&sha256_hex(b"zlib tarball")));
}

/// The state of a pool of one busy node (zlib running) a minute ago, a
/// second one asked for, its user data made at `renewed`.
fn busy_state(renewed: u64) -> String {
    let dag = Dag::from_graph(&graph());
    let mut schedule = Schedule::new(&dag);
    let obs = Observation {
        now: ebfleet_core::clock::unix_now() - 60,
        ended: vec![],
        pool: vec![PoolInstance {
            id: "i-0a".into(),
            online: true,
            instance_type: None,
        }],
        desired: 2,
        on_demand: false,
    };
    schedule.tick(&dag, &obs, &settings().scheduler);
    serde_json::to_string(&State {
        schedule,
        executions: [(1, "arn:unit-1".to_string())].into(),
        tarballs: Default::default(),
        ticks_this_execution: 1,
        started: 0,
        user_data_renewed: renewed,
    })
    .unwrap()
}

#[tokio::test]
async fn a_pool_gets_a_fresh_download_of_the_agent_every_half_hour() {
    const NODE_KEY: &str = "tools/ebfleet-node/x86_64/ebfleet-node";
    let now = ebfleet_core::clock::unix_now();
    let run_tick = |renewed: u64| async move {
        let graph_json = serde_json::to_string(&graph()).unwrap();
        let get_graph = get(GRAPH, Some(graph_json));
        let get_state = get(STATE, Some(busy_state(renewed)));
        let written = Arc::new(Mutex::new(Vec::new()));
        let put = puts(written.clone());
        let head = mock!(aws_sdk_s3::Client::head_object)
            .match_requests(|r| r.key() == Some(NODE_KEY))
            .then_output(|| {
                aws_sdk_s3::operation::head_object::HeadObjectOutput::builder()
                    .metadata("sha256", "ab".repeat(32))
                    .build()
            });
        // Presigning shows the mocks a GetObject (nothing is sent).
        let presign = mock!(aws_sdk_s3::Client::get_object)
            .match_requests(|r| r.key() == Some(NODE_KEY))
            .then_output(|| GetObjectOutput::builder().build());
        let version = mock!(aws_sdk_ec2::Client::create_launch_template_version)
            .match_requests(|q| {
                let data = q.launch_template_data().and_then(|d| d.user_data());
                q.launch_template_id() == Some("lt-1")
                    && q.source_version() == Some("$Latest")
                    && data.is_some_and(|d| !d.is_empty())
            })
            .then_output(|| {
                aws_sdk_ec2::operation::create_launch_template_version::CreateLaunchTemplateVersionOutput::builder().build()
            });
        let running = mock!(aws_sdk_sfn::Client::describe_execution).then_output(|| {
            DescribeExecutionOutput::builder()
                .execution_arn("arn:unit-1")
                .state_machine_arn(UNIT_SM)
                .status(ExecutionStatus::Running)
                .start_date(aws_sdk_sfn::primitives::DateTime::from_secs(0))
                .build()
                .unwrap()
        });
        let (count, members, up) = (wake_count(0), pool(&["i-0a"], 2), online(&["i-0a"]));
        let heartbeat = beat();
        let started = Arc::new(Mutex::new(Vec::new()));
        let start = starts(started.clone());
        let mocks = Mocks {
            s3: vec![&get_graph, &get_state, &head, &presign, &put],
            dynamodb: vec![&count],
            autoscaling: vec![&members],
            ssm: vec![&up],
            sfn: vec![&running, &heartbeat, &start],
            ec2: vec![&version],
            kms: vec![],
        };
        tick(&mocks.env(), &settings(), input()).await.unwrap();
        let written = written.lock().unwrap();
        let state: State =
            serde_json::from_str(&written.iter().find(|(k, _)| k == STATE).unwrap().1).unwrap();
        (version.num_calls(), state.user_data_renewed)
    };
    let (versions, renewed) = run_tick(now - USER_DATA_RENEW_S).await;
    assert_eq!(versions, 1, "a download half its life old is renewed");
    assert!(renewed >= now, "the renewal is saved: {renewed}");
    let (versions, renewed) = run_tick(now - 60).await;
    assert_eq!(
        (versions, renewed),
        (0, now - 60),
        "a fresh download is kept"
    );
}

#[tokio::test]
async fn the_wait_completes_at_once_when_a_unit_ended_since_the_tick() {
    let register = |ended: u64| {
        mock!(aws_sdk_dynamodb::Client::update_item)
            .match_requests(|q| q.update_expression() == Some("SET #token = :token"))
            .then_output(move || {
                UpdateItemOutput::builder()
                    .attributes("ended", AttributeValue::N(ended.to_string()))
                    .build()
            })
    };
    let succeed = mock!(aws_sdk_sfn::Client::send_task_success)
        .match_requests(|q| q.task_token() == Some("tok-1"))
        .then_output(|| SendTaskSuccessOutput::builder().build());
    let w = |seen| WaitInput {
        execution: "run-1".parse().unwrap(),
        platform: P.parse().unwrap(),
        seen,
        task_token: "tok-1".into(),
    };
    let same = register(4);
    let mocks = Mocks {
        dynamodb: vec![&same],
        sfn: vec![&succeed],
        ..Default::default()
    };
    wait(&mocks.env(), w(4)).await.unwrap();
    assert_eq!(succeed.num_calls(), 0, "nothing ended: the token waits");
    let more = register(5);
    let mocks = Mocks {
        dynamodb: vec![&more],
        sfn: vec![&succeed],
        ..Default::default()
    };
    wait(&mocks.env(), w(4)).await.unwrap();
    assert_eq!(succeed.num_calls(), 1);
}

#[test]
fn unit_execution_arns_follow_the_state_machines() {
    assert_eq!(
        execution_arn(UNIT_SM, &"run-1-epyc-gen-4-u1-a1".parse().unwrap()),
        "arn:aws:states:us-east-1:123456789012:execution:ebfleet-unit:run-1-epyc-gen-4-u1-a1"
    );
}

#[tokio::test]
async fn a_run_that_no_longer_waits_orphans_the_platform_before_anything_else() {
    let gone = mock!(aws_sdk_sfn::Client::send_task_heartbeat).then_error(|| {
        aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatError::TaskTimedOut(
            aws_sdk_sfn::types::error::TaskTimedOut::builder().build(),
        )
    });
    let mocks = Mocks {
        sfn: vec![&gone],
        ..Default::default()
    };
    let out = tick(&mocks.env(), &settings(), input()).await.unwrap();
    assert!(out.orphaned && !out.done && out.dispatched == 0);
}

/// Every module built: the platform is done at its next tick.
const DONE_GRAPH: &str = "plans/run-1/amzn-2023_epyc-gen-4/graph-all-built.json";

/// The state of a platform whose one node (a c7a.8xlarge) came up an hour
/// ago and has nothing left to do.
fn state_of_an_hour_ago(g: &BuildGraph) -> String {
    let dag = Dag::from_graph(g);
    let mut schedule = Schedule::new(&dag);
    let an_hour_ago = ebfleet_core::clock::unix_now() - 3600;
    let obs = Observation {
        now: an_hour_ago,
        ended: vec![],
        pool: vec![PoolInstance {
            id: "i-0a".into(),
            online: true,
            instance_type: Some("c7a.8xlarge".into()),
        }],
        desired: 1,
        on_demand: false,
    };
    schedule.tick(&dag, &obs, &settings().scheduler);
    serde_json::to_string(&State {
        schedule,
        executions: Default::default(),
        tarballs: Default::default(),
        ticks_this_execution: 1,
        started: an_hour_ago,
        user_data_renewed: an_hour_ago,
    })
    .unwrap()
}

fn typed_pool() -> Rule {
    mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(|| {
        DescribeAutoScalingGroupsOutput::builder()
            .auto_scaling_groups(
                AutoScalingGroup::builder()
                    .auto_scaling_group_name("ebfleet-run-1-amzn-2023_epyc-gen-4")
                    .desired_capacity(1)
                    .instances(
                        Instance::builder()
                            .instance_id("i-0a")
                            .instance_type("c7a.8xlarge")
                            .lifecycle_state(LifecycleState::InService)
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

async fn done_tick(spot: Rule) -> TickOutput {
    let mut g = graph();
    for m in &mut g.modules {
        m.built = true;
    }
    let state = state_of_an_hour_ago(&g);
    let (get_graph, get_state) = (
        get(DONE_GRAPH, Some(serde_json::to_string(&g).unwrap())),
        get(STATE, Some(state)),
    );
    let written = Arc::new(Mutex::new(Vec::new()));
    let put = puts(written.clone());
    let (count, members, up, heartbeat) = (wake_count(0), typed_pool(), online(&["i-0a"]), beat());
    let retire = mock!(aws_sdk_autoscaling::Client::terminate_instance_in_auto_scaling_group)
        .then_output(|| {
            aws_sdk_autoscaling::operation::terminate_instance_in_auto_scaling_group::TerminateInstanceInAutoScalingGroupOutput::builder().build()
        });
    let mocks = Mocks {
        s3: vec![&get_graph, &get_state, &put],
        dynamodb: vec![&count],
        autoscaling: vec![&members, &retire],
        ssm: vec![&up],
        sfn: vec![&heartbeat],
        ec2: vec![&spot],
        kms: vec![],
    };
    let t = TickInput {
        graph_key: DONE_GRAPH.into(),
        ..input()
    };
    let out = tick(&mocks.env(), &settings(), t).await.unwrap();
    assert!(out.done);
    assert_eq!(
        spot.num_calls(),
        1,
        "the spot price is read when the platform is done"
    );
    out
}

#[tokio::test]
async fn a_done_platform_reports_its_node_time_per_type_and_its_dollars_at_the_spot_price() {
    let spot = mock!(aws_sdk_ec2::Client::describe_spot_price_history)
        .match_requests(|q| q.instance_types() == [aws_sdk_ec2::types::InstanceType::from("c7a.8xlarge")])
        .then_output(|| {
            aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryOutput::builder()
                .spot_price_history(
                    aws_sdk_ec2::types::SpotPrice::builder()
                        .instance_type(aws_sdk_ec2::types::InstanceType::from("c7a.8xlarge"))
                        .availability_zone("us-east-1a")
                        .spot_price("0.5000")
                        .build(),
                )
                .build()
        });
    let out = done_tick(spot).await;
    let cost = out.cost.clone().expect("a done tick reports the cost");
    assert_eq!(cost.node_seconds, out.node_seconds);
    assert!((3600..3700).contains(&cost.node_seconds), "{cost:?}");
    assert_eq!(cost.types.len(), 1);
    assert_eq!(cost.types[0].instance_type.as_deref(), Some("c7a.8xlarge"));
    assert_eq!(cost.types[0].market, Market::Spot);
    assert_eq!(cost.types[0].usd_per_hour, Some(0.5));
    let usd = cost.usd.expect("the price is known");
    assert!((usd - 0.5 * cost.instance_hours).abs() < 1e-9, "{usd}");
    // In the tick's JSON, next to what was there.
    let j = serde_json::to_value(&out).unwrap();
    assert!(
        j["node_seconds"].is_u64() && j["cost"]["usd"].is_f64(),
        "{j}"
    );
}

#[tokio::test]
async fn spot_prices_that_cannot_be_read_leave_the_dollars_unknown_not_the_tick_failed() {
    let denied = mock!(aws_sdk_ec2::Client::describe_spot_price_history).then_error(|| {
        aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryError::generic(
            aws_sdk_ec2::error::ErrorMetadata::builder()
                .code("UnauthorizedOperation")
                .message("no")
                .build(),
        )
    });
    let out = done_tick(denied).await;
    let cost = out.cost.unwrap();
    assert_eq!(cost.usd, None);
    assert!(cost.unpriced_instance_hours > 0.99, "{cost:?}");
}

#[test]
fn a_tick_that_is_not_the_last_reports_no_cost() {
    let j = serde_json::to_value(TickOutput::default()).unwrap();
    assert!(
        j.get("cost").is_some_and(|c| c.is_null()),
        "always present for the state machine: {j}"
    );
}

/// `graph()` as an h100 overlay of P: GCCcore and zlib from the base.
fn overlay() -> BuildGraph {
    let mut g = graph();
    g.base = Some(P.parse().unwrap());
    g.platform = "amzn-2023_epyc-gen-4_h100".parse().unwrap();
    g.cuda_compute_capability = Some("9.0".into());
    g.modules[1].built = true;
    for m in &mut g.modules[..2] {
        m.from_base = true;
        m.tarball_sha256 = None;
    }
    g
}

const OVERLAY_GRAPH: &str = "plans/run-1/amzn-2023_epyc-gen-4_h100/graph.json";

fn layer_input(platform: &PlatformName) -> crate::layer::LayerInput {
    crate::layer::LayerInput {
        execution: "run-1".parse().unwrap(),
        platform: platform.clone(),
        graph_key: OVERLAY_GRAPH.into(),
    }
}

#[tokio::test]
async fn an_overlay_is_laid_over_its_bases_records() {
    let g = overlay();
    let gcc_tarball = sha256_hex(b"GCCcore tarball");
    // The base built GCCcore, not zlib.
    let base_records = {
        let sha = gcc_tarball.clone();
        let ec = g.modules[0].easyconfig_sha256.clone();
        mock!(aws_sdk_dynamodb::Client::query)
            .match_requests(|q| {
                q.expression_attribute_values().unwrap().get(":pk")
                    == Some(&AttributeValue::S(format!("PLATFORM#{P}")))
            })
            .then_output(move || {
                let s = |v: &str| AttributeValue::S(v.to_string());
                aws_sdk_dynamodb::operation::query::QueryOutput::builder()
                    .items(std::collections::HashMap::from([
                        ("sk".to_string(), s("MODULE#GCCcore/13.2.0")),
                        ("status".to_string(), s("built")),
                        ("easyconfig_sha256".to_string(), s(&ec)),
                        ("tarball_sha256".to_string(), s(&sha)),
                    ]))
                    .build()
            })
    };
    // Python, which loads zlib, is recorded skipped with why.
    let skipped = Arc::new(Mutex::new(Vec::new()));
    let no_record =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let skip = {
        let skipped = skipped.clone();
        mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |q| {
                let item = q.item().unwrap();
                let text = |k: &str| match item.get(k) {
                    Some(AttributeValue::S(s)) => s.clone(),
                    _ => String::new(),
                };
                skipped
                    .lock()
                    .unwrap()
                    .push((text("sk"), text("error_message")));
                true
            })
            .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build())
    };
    let written = Arc::new(Mutex::new(Vec::new()));
    let read = get(OVERLAY_GRAPH, Some(serde_json::to_string(&g).unwrap()));
    let write = puts(written.clone());
    let env = Mocks {
        s3: vec![&read, &write],
        dynamodb: vec![&base_records, &no_record, &skip],
        ..Mocks::default()
    }
    .env();
    let out = crate::layer::handle(&env, layer_input(&g.platform))
        .await
        .unwrap();
    // bzip2 is left to build; Python is held.
    assert_eq!((out.to_build, out.held), (1, 1));
    assert_eq!(out.base.as_str(), P);
    let skipped = skipped.lock().unwrap().clone();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, "MODULE#Python/3.11.5-GCCcore-13.2.0");
    assert!(
        skipped[0]
            .1
            .contains("zlib/1.3-GCCcore-13.2.0 from its base platform amzn-2023_epyc-gen-4"),
        "{}",
        skipped[0].1
    );
    // The graph written back: the base's tarball for GCCcore, Python held.
    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, OVERLAY_GRAPH);
    let laid = BuildGraph::from_json(&written[0].1).unwrap();
    assert_eq!(
        laid.modules[0].tarball_sha256.as_deref(),
        Some(gcc_tarball.as_str())
    );
    assert!(laid.modules[3].held.is_some() && laid.modules[2].held.is_none());

    // A graph that is no overlay is refused before any record is read.
    let mut no_base = graph();
    no_base.platform = g.platform.clone();
    let plain = get(
        OVERLAY_GRAPH,
        Some(serde_json::to_string(&no_base).unwrap()),
    );
    let env = Mocks {
        s3: vec![&plain],
        ..Mocks::default()
    }
    .env();
    let err = crate::layer::handle(&env, layer_input(&g.platform))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names no base platform"), "{err}");
}
