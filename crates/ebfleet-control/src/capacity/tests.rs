//! [`launch`] against `aws-smithy-mocks`: the node's user data and root
//! volume reach the launch template, and a missing `ebfleet-node` stops the
//! handler before EC2 is asked anything (no EC2 rule: a call fails the test).

use super::*;
use crate::failure::{Failure, Kind};
use crate::testing::{Mocks, BUCKET};
use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::operation::create_launch_template::{
    CreateLaunchTemplateInput, CreateLaunchTemplateOutput,
};
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesOutput;
use aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryOutput;
use aws_sdk_ec2::types::{
    ArchitectureType, CreateFleetInstance, Image, InstanceLifecycle, InstanceType as Ec2Type,
    InstanceTypeInfo, LaunchTemplate, MemoryInfo, ProcessorInfo, UsageClassType, VCpuInfo,
    VolumeType,
};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::SdkBody;
use aws_sdk_s3::types::error::NotFound;
use aws_smithy_mocks::{mock, Rule};
use std::io::Write;
use std::process::{Command, Stdio};

const PLATFORM: &str = "amzn-2023_graviton-3";
const NODE_KEY: &str = "tools/ebfleet-node/aarch64/ebfleet-node";
const SHA: &str = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
const AMI: &str = "ami-0abcdef1234567890";

fn settings(root_gib: u32) -> Settings {
    Settings {
        platforms: Platforms::default_set().unwrap(),
        instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/node".into(),
        security_group_id: "sg-0123456789abcdef0".into(),
        subnet_ids: vec!["subnet-1".into()],
        // Pinned: no SSM call.
        pinned_ami: Some(AMI.into()),
        max_types: 10,
        root_volume: RootVolume::gp3(root_gib).unwrap(),
    }
}

fn input() -> Input {
    Input {
        execution: "run-1".into(),
        platform: PLATFORM.into(),
        batch: 0,
        modules: 3,
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

/// The template carries the node's first boot and its root volume.
fn node_template(r: &CreateLaunchTemplateInput) -> bool {
    let Some(d) = r.launch_template_data() else {
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
    script.starts_with("#!/bin/bash\n")
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
        && ebs.and_then(|e| e.volume_size()) == Some(300)
        && ebs.and_then(|e| e.volume_type()) == Some(&VolumeType::Gp3)
        && ebs.and_then(|e| e.encrypted()) == Some(true)
        && ebs.and_then(|e| e.delete_on_termination()) == Some(true)
}

#[tokio::test]
async fn the_node_boots_with_its_settings_and_a_root_volume_to_build_on() {
    let (head, presign) = (head(Some(SHA)), presign());
    let types = mock!(aws_sdk_ec2::Client::describe_instance_types).then_output(|| {
        DescribeInstanceTypesOutput::builder()
            .instance_types(graviton("c7g.2xlarge", 8, 16_384))
            .instance_types(graviton("c7g.4xlarge", 16, 32_768))
            .build()
    });
    let prices = mock!(aws_sdk_ec2::Client::describe_spot_price_history)
        .then_output(|| DescribeSpotPriceHistoryOutput::builder().build());
    let image = mock!(aws_sdk_ec2::Client::describe_images)
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
        });
    let template = mock!(aws_sdk_ec2::Client::create_launch_template)
        .match_requests(node_template)
        .then_output(|| {
            CreateLaunchTemplateOutput::builder()
                .launch_template(LaunchTemplate::builder().launch_template_id("lt-1").build())
                .build()
        });
    let fleet = mock!(aws_sdk_ec2::Client::create_fleet).then_output(|| {
        CreateFleetOutput::builder()
            .fleet_id("fleet-1")
            .instances(
                CreateFleetInstance::builder()
                    .instance_ids("i-0123456789abcdef0")
                    .instance_type(Ec2Type::from("c7g.4xlarge"))
                    .lifecycle(InstanceLifecycle::Spot)
                    .build(),
            )
            .build()
    });
    let env = Mocks {
        s3: vec![&head, &presign],
        ec2: vec![&types, &prices, &image, &template, &fleet],
        ..Mocks::default()
    }
    .env();
    let out = handle(&env, &settings(300), input()).await.unwrap();
    assert_eq!(out.instance_ids, ["i-0123456789abcdef0"]);
    assert_eq!(
        (
            head.num_calls(),
            image.num_calls(),
            template.num_calls(),
            fleet.num_calls()
        ),
        (1, 1, 1, 1)
    );
}

#[tokio::test]
async fn no_node_binary_is_invalid_and_launches_nothing() {
    let missing = mock!(aws_sdk_s3::Client::head_object)
        .match_requests(|r| r.key() == Some(NODE_KEY))
        .then_error(|| HeadObjectError::NotFound(NotFound::builder().build()));
    // No EC2 or SSM rule: asking either fails the test.
    let env = Mocks {
        s3: vec![&missing],
        ..Mocks::default()
    }
    .env();
    let err = handle(&env, &settings(200), input()).await.unwrap_err();
    assert!(matches!(err, Error::NodeBinaryMissing { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Invalid);
    assert_eq!(
        err.to_string(),
        format!(
            "platform {PLATFORM}: no ebfleet-node for aarch64 at s3://{BUCKET}/{NODE_KEY}: \
             upload one with scripts/publish-node.sh (infra/OPERATOR.md)"
        )
    );
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
        let err = handle(&env, &settings(200), input()).await.unwrap_err();
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
    let err = handle(&env, &settings(200), input()).await.unwrap_err();
    assert!(matches!(err, Error::NodeBinary { .. }), "{err:?}");
    assert_eq!(err.kind(), Kind::Invalid, "the stack's policy, not a retry");
    assert!(err.to_string().contains(NODE_KEY), "{err}");
}
