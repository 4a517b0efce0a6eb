//! [`handle`] against `aws-smithy-mocks`. A pool: the node's user data and
//! root volume reach a locked-down launch template of the best type, and
//! the group is made over it with the ranked types, the subnets, the
//! settings' size, the run's tags and the plan's market; a missing
//! `ebfleet-node` stops the handler before EC2 or Auto Scaling is asked
//! anything (no rule for them: a call fails the test). A claim: a node SSM
//! lists online is the unit's, any other is lost.

use super::*;
use crate::failure::{Failure, Kind};
use crate::testing::{Mocks, BUCKET};
use aws_sdk_autoscaling::operation::create_auto_scaling_group::{
    CreateAutoScalingGroupInput, CreateAutoScalingGroupOutput,
};
use aws_sdk_ec2::operation::create_launch_template::{
    CreateLaunchTemplateInput, CreateLaunchTemplateOutput,
};
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesOutput;
use aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryOutput;
use aws_sdk_ec2::types::{
    ArchitectureType, Image, InstanceType as Ec2Type, InstanceTypeInfo, LaunchTemplate,
    LaunchTemplateHttpTokensState, MemoryInfo, ProcessorInfo, ResourceType, ShutdownBehavior,
    SpotPrice, UsageClassType, VCpuInfo, VolumeType,
};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::SdkBody;
use aws_sdk_s3::types::error::NotFound;
use aws_sdk_ssm::operation::describe_instance_information::{
    DescribeInstanceInformationInput, DescribeInstanceInformationOutput,
};
use aws_sdk_ssm::types::{InstanceInformation, PingStatus};
use aws_smithy_mocks::{mock, Rule};
use ebfleet_core::capacity::{OnDemandReason, TAG_EXECUTION, TAG_PLATFORM};
use ebfleet_core::sizing::BuildProfile;
use std::io::Write;
use std::process::{Command, Stdio};

const PLATFORM: &str = "amzn-2023_graviton-3";
const EXECUTION: &str = "run-1";
const POOL: &str = "ebfleet-run-1-amzn-2023_graviton-3";
const NODE_KEY: &str = "tools/ebfleet-node/aarch64/ebfleet-node";
const SHA: &str = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
const AMI: &str = "ami-0abcdef1234567890";
const TEMPLATE_ID: &str = "lt-0123456789abcdef0";
const INSTANCE: &str = "i-0123456789abcdef0";
const NODES: u32 = 7;

fn settings(root_gib: u32) -> Settings {
    Settings {
        platforms: Platforms::default_set().unwrap(),
        instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/node".into(),
        security_group_id: "sg-0123456789abcdef0".into(),
        subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
        // Pinned: no SSM call.
        pinned_ami: Some(AMI.into()),
        max_types: 10,
        root_volume: RootVolume::gp3(root_gib).unwrap(),
        node_image_prefix: None,
        nodes_per_platform: NODES,
    }
}

fn pool_input() -> Input {
    Input::Pool {
        pool: PoolInput {
            execution: EXECUTION.parse().unwrap(),
            platform: PLATFORM.parse().unwrap(),
        },
    }
}

fn claim_input(instance_id: &str) -> Input {
    Input::Claim {
        claim: ClaimInput {
            instance_id: instance_id.into(),
        },
    }
}

fn head(sha256: Option<&'static str>) -> Rule {
    mock!(aws_sdk_s3::Client::head_object)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.key() == Some(NODE_KEY))
        .then_output(move || {
            let out = HeadObjectOutput::builder().content_length(12_345_678);
            match sha256 {
                Some(s) => out.metadata("sha256", s).build(),
                None => out.build(),
            }
        })
}

/// What presigning shows the mocks (nothing is sent).
fn presign() -> Rule {
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.key() == Some(NODE_KEY))
        .then_output(|| GetObjectOutput::builder().build())
}

/// The platform's build graph: one unit, built before with `profile`
/// (or never).
fn graph(profile: Option<BuildProfile>) -> Rule {
    let p = find_platform(&Platforms::default_set().unwrap(), PLATFORM).unwrap();
    let graph = BuildGraph {
        execution: EXECUTION.parse().unwrap(),
        platform: PLATFORM.parse().unwrap(),
        arch: p.arch(),
        archspec: p.cpu.archspec.clone(),
        optarch: p.cpu.optarch.clone(),
        cuda_compute_capability: None,
        base: None,
        modules: vec![ebfleet_core::build_graph::GraphModule {
            module: "zlib/1.3.1".parse().unwrap(),
            easyconfig: "z/zlib/zlib-1.3.1.eb".parse().unwrap(),
            easyconfig_sha256: "a".repeat(64),
            build_deps: vec![],
            runtime_deps: vec![],
            built: false,
            estimate_s: 60,
            held: None,
            profile,
            optarch: None,
            tarball_sha256: None,
            from_base: false,
        }],
    };
    let body = serde_json::to_vec(&graph).unwrap();
    let key = graph.key();
    mock!(aws_sdk_s3::Client::get_object)
        .match_requests(move |r| r.key() == Some(key.as_str()))
        .then_output(move || {
            GetObjectOutput::builder()
                .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()))
                .build()
        })
}

fn graviton(name: &str, vcpus: i32, mib: i64) -> InstanceTypeInfo {
    InstanceTypeInfo::builder()
        .instance_type(Ec2Type::from(name))
        .v_cpu_info(VCpuInfo::builder().default_v_cpus(vcpus).build())
        .memory_info(MemoryInfo::builder().size_in_mib(mib).build())
        .processor_info(
            ProcessorInfo::builder()
                .supported_architectures(ArchitectureType::Arm64)
                .build(),
        )
        .supported_usage_classes(UsageClassType::Spot)
        .supported_usage_classes(UsageClassType::OnDemand)
        .build()
}

/// Three types of the platform's families that fit a unit (8-32 vCPUs).
fn catalog() -> Rule {
    mock!(aws_sdk_ec2::Client::describe_instance_types).then_output(|| {
        DescribeInstanceTypesOutput::builder()
            .instance_types(graviton("c7g.2xlarge", 8, 16_384))
            .instance_types(graviton("c7g.4xlarge", 16, 32_768))
            .instance_types(graviton("m7g.2xlarge", 8, 32_768))
            .build()
    })
}

fn price(t: &str, usd: &str) -> SpotPrice {
    SpotPrice::builder()
        .instance_type(Ec2Type::from(t))
        .availability_zone("us-east-1a")
        .spot_price(usd)
        .timestamp(aws_sdk_ec2::primitives::DateTime::from_secs(1_795_000_000))
        .build()
}

/// Spot prices of the two c7g types, the 2xlarge cheaper per vCPU; none
/// for m7g.2xlarge, which is therefore not worth spot.
fn spot_prices() -> Rule {
    mock!(aws_sdk_ec2::Client::describe_spot_price_history).then_output(|| {
        DescribeSpotPriceHistoryOutput::builder()
            .spot_price_history(price("c7g.2xlarge", "0.0800"))
            .spot_price_history(price("c7g.4xlarge", "0.2400"))
            .build()
    })
}

/// No spot price at all: the plan buys on-demand.
fn no_spot_prices() -> Rule {
    mock!(aws_sdk_ec2::Client::describe_spot_price_history)
        .then_output(|| DescribeSpotPriceHistoryOutput::builder().build())
}

fn image() -> Rule {
    mock!(aws_sdk_ec2::Client::describe_images)
        .match_requests(|r| r.image_ids() == [AMI])
        .then_output(|| {
            DescribeImagesOutput::builder()
                .images(
                    Image::builder()
                        .image_id(AMI)
                        .root_device_name("/dev/xvda")
                        .build(),
                )
                .build()
        })
}

/// What the instance runs: the API's base64, decoded and gunzipped as
/// cloud-init would.
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

/// The run's tags, as EC2 and Auto Scaling get them: (key, value) pairs.
fn run_tags(tags: impl Iterator<Item = (Option<String>, Option<String>)>) -> bool {
    let tags: Vec<_> = tags.collect();
    let has = |k: &str, v: &str| {
        tags.iter()
            .any(|(tk, tv)| tk.as_deref() == Some(k) && tv.as_deref() == Some(v))
    };
    has(TAG_EXECUTION, EXECUTION) && has(TAG_PLATFORM, PLATFORM)
}

/// The template is locked down, of `first_type`, and carries the node's
/// first boot and its `root_gib` root volume.
fn node_template(r: &CreateLaunchTemplateInput, first_type: &str, root_gib: i32) -> bool {
    let Some(d) = r.launch_template_data() else {
        return false;
    };
    let Some(m) = d.metadata_options() else {
        return false;
    };
    let Some(script) = d.user_data().map(decode_user_data) else {
        return false;
    };
    let url = script
        .lines()
        .find_map(|l| l.strip_prefix("export EBFLEET_NODE_URL='"))
        .unwrap_or_default();
    let root = d.block_device_mappings();
    let ebs = root.first().and_then(|m| m.ebs());
    let tagged = |rt: ResourceType| {
        d.tag_specifications().iter().any(|s| {
            s.resource_type() == Some(&rt)
                && run_tags(
                    s.tags()
                        .iter()
                        .map(|t| (t.key().map(String::from), t.value().map(String::from))),
                )
        })
    };
    d.image_id() == Some(AMI)
        && d.instance_type() == Some(&Ec2Type::from(first_type))
        && d.key_name().is_none()
        && m.http_tokens() == Some(&LaunchTemplateHttpTokensState::Required)
        && m.http_put_response_hop_limit() == Some(1)
        && d.instance_initiated_shutdown_behavior() == Some(&ShutdownBehavior::Terminate)
        && d.security_group_ids() == ["sg-0123456789abcdef0"]
        && tagged(ResourceType::Instance)
        && tagged(ResourceType::Volume)
        && script.starts_with("#!/bin/bash\n")
        && script.ends_with(ebfleet_core::userdata::BOOTSTRAP_SH)
        && script.contains("\nexport EBFLEET_PLATFORM='amzn-2023_graviton-3'\n")
        && script.contains("\nexport EBFLEET_ARCHSPEC='neoverse_v1'\n")
        && script.contains("\nexport EBFLEET_OPTARCH='GCC:mcpu=neoverse-v1'\n")
        && script.contains(&format!(
            "\nexport EBFLEET_NODE_SHA256='{}'\n",
            SHA.to_ascii_lowercase()
        ))
        && !script.contains("EBFLEET_CUDA_COMPUTE_CAPABILITIES='")
        && url.starts_with("https://")
        && url.contains(&format!("/{NODE_KEY}?"))
        && url.contains("X-Amz-Expires=3600")
        && root.len() == 1
        && root[0].device_name() == Some("/dev/xvda")
        && ebs.and_then(|e| e.volume_size()) == Some(root_gib)
        && ebs.and_then(|e| e.volume_type()) == Some(&VolumeType::Gp3)
        && ebs.and_then(|e| e.encrypted()) == Some(true)
        && ebs.and_then(|e| e.delete_on_termination()) == Some(true)
}

fn template(first_type: &'static str, root_gib: i32) -> Rule {
    mock!(aws_sdk_ec2::Client::create_launch_template)
        .match_requests(move |r| node_template(r, first_type, root_gib))
        .then_output(|| {
            CreateLaunchTemplateOutput::builder()
                .launch_template(
                    LaunchTemplate::builder()
                        .launch_template_id(TEMPLATE_ID)
                        .build(),
                )
                .build()
        })
}

/// The group: empty, over the template, `types` in order, both subnets, at
/// most [`NODES`], the run's tags copied to its instances, `on_demand` or
/// spot.
fn group(r: &CreateAutoScalingGroupInput, types: &[&str], on_demand: bool) -> bool {
    let Some(p) = r.mixed_instances_policy() else {
        return false;
    };
    let Some(lt) = p.launch_template() else {
        return false;
    };
    let Some(d) = p.instances_distribution() else {
        return false;
    };
    let overrides: Vec<&str> = lt
        .overrides()
        .iter()
        .filter_map(|o| o.instance_type())
        .collect();
    r.auto_scaling_group_name() == Some(POOL)
        && lt
            .launch_template_specification()
            .and_then(|s| s.launch_template_id())
            == Some(TEMPLATE_ID)
        && overrides == types
        && d.on_demand_base_capacity() == Some(0)
        && d.on_demand_percentage_above_base_capacity() == Some(if on_demand { 100 } else { 0 })
        && r.vpc_zone_identifier() == Some("subnet-1,subnet-2")
        && (r.min_size(), r.max_size(), r.desired_capacity()) == (Some(0), Some(7), Some(0))
        && r.tags()
            .iter()
            .all(|t| t.propagate_at_launch() == Some(true))
        && run_tags(
            r.tags()
                .iter()
                .map(|t| (t.key().map(String::from), t.value().map(String::from))),
        )
}

fn create_group(types: &'static [&'static str], on_demand: bool) -> Rule {
    mock!(aws_sdk_autoscaling::Client::create_auto_scaling_group)
        .match_requests(move |r| group(r, types, on_demand))
        .then_output(|| CreateAutoScalingGroupOutput::builder().build())
}

#[tokio::test]
async fn a_pool_is_a_spot_group_of_the_ranked_types_over_a_locked_down_template() {
    let (head, presign, graph) = (head(Some(SHA)), presign(), graph(None));
    let (types, prices, image) = (catalog(), spot_prices(), image());
    // Spot: the spot-worthy types by spot price per vCPU.
    let template = template("c7g.2xlarge", 300);
    let create = create_group(&["c7g.2xlarge", "c7g.4xlarge"], false);
    let env = Mocks {
        s3: vec![&head, &presign, &graph],
        ec2: vec![&types, &prices, &image, &template],
        autoscaling: vec![&create],
        ..Mocks::default()
    }
    .env();
    let out = handle(&env, &settings(300), pool_input()).await.unwrap();
    let out: PoolOutput = serde_json::from_value(out).unwrap();
    assert_eq!(out.pool.name, POOL);
    assert_eq!(out.pool.launch_template_id, TEMPLATE_ID);
    assert_eq!(out.pool.instance_types, ["c7g.2xlarge", "c7g.4xlarge"]);
    assert_eq!(out.pool.subnet_ids, ["subnet-1", "subnet-2"]);
    assert_eq!(out.pool.max_size, NODES);
    assert!(!out.pool.on_demand);
    assert!(out.purchase.is_spot());
    assert_eq!(out.pool.tags[TAG_EXECUTION], EXECUTION);
    assert_eq!(out.pool.tags[TAG_PLATFORM], PLATFORM);
    assert_eq!(
        [&head, &types, &prices, &image, &template, &create].map(|r| r.num_calls()),
        [1; 6]
    );
}

#[tokio::test]
async fn a_pool_fits_the_largest_process_its_units_recorded() {
    // A 20 GiB link step last time: 30 GiB a node, so no c7g.2xlarge.
    let profile = BuildProfile {
        duration_s: 3600,
        usage: ebfleet_core::sizing::BuildUsage {
            peak_memory_mib: 20 * 1024,
            cpu_s: 3600 * 16,
            cpus: 16,
        },
    };
    let (head, presign, graph) = (head(Some(SHA)), presign(), graph(Some(profile)));
    let (types, prices, image) = (catalog(), spot_prices(), image());
    let template = template("c7g.4xlarge", 300);
    let create = create_group(&["c7g.4xlarge"], false);
    let env = Mocks {
        s3: vec![&head, &presign, &graph],
        ec2: vec![&types, &prices, &image, &template],
        autoscaling: vec![&create],
        ..Mocks::default()
    }
    .env();
    let out = handle(&env, &settings(300), pool_input()).await.unwrap();
    let out: PoolOutput = serde_json::from_value(out).unwrap();
    assert_eq!(out.pool.instance_types, ["c7g.4xlarge"]);
    assert_eq!((graph.num_calls(), create.num_calls()), (1, 1));
}

#[tokio::test]
async fn without_spot_prices_the_pool_buys_on_demand_from_the_fallback_types() {
    let (head, presign, graph) = (head(Some(SHA)), presign(), graph(None));
    let (types, prices, image) = (catalog(), no_spot_prices(), image());
    // On-demand without prices: the largest first, then by name.
    let template = template("c7g.4xlarge", 200);
    let create = create_group(&["c7g.4xlarge", "c7g.2xlarge", "m7g.2xlarge"], true);
    let env = Mocks {
        s3: vec![&head, &presign, &graph],
        ec2: vec![&types, &prices, &image, &template],
        autoscaling: vec![&create],
        ..Mocks::default()
    }
    .env();
    let out = handle(&env, &settings(200), pool_input()).await.unwrap();
    let out: PoolOutput = serde_json::from_value(out).unwrap();
    assert!(out.pool.on_demand);
    assert_eq!(
        out.purchase,
        Purchase::OnDemand {
            reason: OnDemandReason::NoSpotPrice
        }
    );
    assert_eq!(
        out.pool.instance_types,
        ["c7g.4xlarge", "c7g.2xlarge", "m7g.2xlarge"]
    );
    assert_eq!((template.num_calls(), create.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_refused_group_names_the_platform_and_the_pool() {
    let (head, presign, graph) = (head(Some(SHA)), presign(), graph(None));
    let (types, prices, image) = (catalog(), spot_prices(), image());
    let template = template("c7g.2xlarge", 200);
    let refused = mock!(aws_sdk_autoscaling::Client::create_auto_scaling_group).then_error(|| {
        aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupError::LimitExceededFault(
            aws_sdk_autoscaling::types::error::LimitExceededFault::builder()
                .message("You have reached the limit of Auto Scaling groups")
                .build(),
        )
    });
    let env = Mocks {
        s3: vec![&head, &presign, &graph],
        ec2: vec![&types, &prices, &image, &template],
        autoscaling: vec![&refused],
        ..Mocks::default()
    }
    .env();
    let err = handle(&env, &settings(200), pool_input())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Pool { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Failed);
    let text = err.to_string();
    assert!(text.contains(PLATFORM) && text.contains(POOL), "{text}");
}

#[tokio::test]
async fn no_node_binary_is_invalid_and_asks_ec2_and_auto_scaling_nothing() {
    let missing = mock!(aws_sdk_s3::Client::head_object)
        .match_requests(|r| r.key() == Some(NODE_KEY))
        .then_error(|| HeadObjectError::NotFound(NotFound::builder().build()));
    // No EC2, Auto Scaling or SSM rule: asking any fails the test.
    let env = Mocks {
        s3: vec![&missing],
        ..Mocks::default()
    }
    .env();
    let err = handle(&env, &settings(200), pool_input())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NodeBinaryMissing { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Invalid);
    assert_eq!(
        err.to_string(),
        format!(
            "platform {PLATFORM}: no ebfleet-node for aarch64 at s3://{BUCKET}/{NODE_KEY}: \
             upload one with scripts/publish-node.sh (infra/OPERATOR.md)"
        )
    );
    assert_eq!(missing.num_calls(), 1);
}

#[tokio::test]
async fn a_node_binary_without_its_checksum_is_invalid() {
    for (sha, found) in [(None, "none"), (Some("not-a-checksum"), "not-a-checksum")] {
        let head = head(sha);
        let env = Mocks {
            s3: vec![&head],
            ..Mocks::default()
        }
        .env();
        let err = handle(&env, &settings(200), pool_input())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NodeBinaryChecksum { .. }), "{err:?}");
        assert_eq!(err.kind(), Kind::Invalid);
        let text = err.to_string();
        assert!(text.contains(NODE_KEY) && text.contains(found), "{text}");
    }
}

#[tokio::test]
async fn an_unreadable_node_binary_names_its_key() {
    let denied = mock!(aws_sdk_s3::Client::head_object)
        .then_http_response(|| HttpResponse::new(403.try_into().unwrap(), SdkBody::from("")));
    let env = Mocks {
        s3: vec![&denied],
        ..Mocks::default()
    }
    .env();
    let err = handle(&env, &settings(200), pool_input())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NodeBinary { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Invalid, "the stack's policy, not a retry");
    assert!(err.to_string().contains(NODE_KEY), "{err}");
}

#[tokio::test]
async fn an_unknown_platform_is_invalid_and_asks_nothing() {
    let env = Mocks::default().env();
    let input = Input::Pool {
        pool: PoolInput {
            execution: EXECUTION.parse().unwrap(),
            platform: "amzn-2023_no-such-cpu".parse().unwrap(),
        },
    };
    let err = handle(&env, &settings(200), input).await.unwrap_err();
    assert!(matches!(err, Error::Platform { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Invalid);
}

// -------------------------------------------------------------------- claim

fn asks_for(r: &DescribeInstanceInformationInput, id: &str) -> bool {
    r.filters().len() == 1
        && r.filters()[0].key() == "InstanceIds"
        && r.filters()[0].values() == [id]
}

fn ssm_lists(ping: Option<PingStatus>) -> Rule {
    mock!(aws_sdk_ssm::Client::describe_instance_information)
        .match_requests(|r| asks_for(r, INSTANCE))
        .then_output(move || {
            let out = DescribeInstanceInformationOutput::builder();
            match &ping {
                Some(p) => out
                    .instance_information_list(
                        InstanceInformation::builder()
                            .instance_id(INSTANCE)
                            .ping_status(p.clone())
                            .build(),
                    )
                    .build(),
                None => out.build(),
            }
        })
}

#[tokio::test]
async fn a_claim_of_an_online_node_answers_its_id() {
    let online = ssm_lists(Some(PingStatus::Online));
    // Only SSM: a claim makes and changes nothing.
    let env = Mocks {
        ssm: vec![&online],
        ..Mocks::default()
    }
    .env();
    let out = handle(&env, &settings(200), claim_input(INSTANCE))
        .await
        .unwrap();
    assert_eq!(out, serde_json::json!({ "instance_id": INSTANCE }));
    assert_eq!(online.num_calls(), 1);
}

#[tokio::test]
async fn a_claim_of_a_node_ssm_does_not_list_online_is_node_lost() {
    for ping in [None, Some(PingStatus::ConnectionLost)] {
        let listed = ssm_lists(ping.clone());
        let env = Mocks {
            ssm: vec![&listed],
            ..Mocks::default()
        }
        .env();
        let err = handle(&env, &settings(200), claim_input(INSTANCE))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotOnline { instance_id } if instance_id == INSTANCE),
            "{ping:?}: {err:?}"
        );
        assert_eq!(err.kind(), Kind::NodeLost);
        assert_eq!(err.kind().error_type(), "ebfleet.NodeLost");
        assert!(err.to_string().contains(INSTANCE), "{err}");
    }
}

#[tokio::test]
async fn a_throttled_claim_is_transient() {
    let throttled =
        mock!(aws_sdk_ssm::Client::describe_instance_information).then_http_response(|| {
            HttpResponse::new(
                400.try_into().unwrap(),
                SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            )
        });
    let env = Mocks {
        ssm: vec![&throttled],
        ..Mocks::default()
    }
    .env();
    let err = handle(&env, &settings(200), claim_input(INSTANCE))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Claim { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Transient);
}
