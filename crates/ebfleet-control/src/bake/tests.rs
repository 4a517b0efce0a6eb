//! The bake's states and Capacity's choice of image against
//! `aws-smithy-mocks`. A service without rules must not be called: a
//! refused image is never recorded, a pinned AMI asks nothing.

use super::*;
use crate::capacity::image::prefer_node_image;
use crate::testing::{lookup, Mocks};
use aws_sdk_ec2::operation::create_image::CreateImageOutput;
use aws_sdk_ec2::operation::deregister_image::DeregisterImageOutput;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::{
    ArchitectureValues, Image, ImageState, Instance, InstanceState, InstanceStateName, Reservation,
    Tag,
};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::error::ParameterNotFound;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, Rule};
use ebfleet_core::clock::unix_now;
use ebfleet_core::node_image::{ImageKind, TAG_BOOTSTRAP_SHA256};
use ebfleet_core::Arch;

const STACK: &str = "ebfleet";
const PREFIX: &str = "/ebfleet/node-image";
const PARAM: &str = "/ebfleet/node-image/amzn-2023/aarch64/cpu";
const BAKED: &str = "ami-0123456789abcdef0";
const STOCK: &str = "ami-0fedcba9876543210";
const INSTANCE: &str = "i-0123456789abcdef0";

fn settings() -> Settings {
    Settings::from_lookup(lookup(&[
        (var::STACK_NAME, STACK),
        (var::NODE_IMAGE_PREFIX, PREFIX),
        (var::SECURITY_GROUP_ID, "sg-1"),
        (var::SUBNET_IDS, "subnet-1,subnet-2"),
    ]))
    .unwrap()
}

fn arm() -> ImageTarget {
    ImageTarget::new("amzn-2023", Arch::Aarch64, ImageKind::Cpu).unwrap()
}

fn bake() -> Bake {
    Bake {
        target: arm(),
        instance_id: INSTANCE.into(),
        source_ami: STOCK.into(),
        deadline: unix_now() + 600,
        image_id: None,
        ready: false,
        parameter: None,
    }
}

/// The image as the bake tags it, of `arch`, created `age` seconds ago.
fn image(arch: ArchitectureValues, age: u64) -> Image {
    let created = aws_sdk_ec2::primitives::DateTime::from_secs((unix_now() - age) as i64)
        .fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
        .unwrap();
    let mut b = Image::builder()
        .image_id(BAKED)
        .architecture(arch)
        .state(ImageState::Available)
        .creation_date(created);
    for (k, v) in node_image::tags(&arm(), STACK, STOCK) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

fn describe(arch: ArchitectureValues, age: u64) -> Rule {
    mock!(aws_sdk_ec2::Client::describe_images)
        .match_requests(|r| r.owners() == ["self"])
        .then_output(move || {
            DescribeImagesOutput::builder()
                .images(image(arch.clone(), age))
                .build()
        })
}

fn parameter(value: &'static str) -> Rule {
    mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some(PARAM))
        .then_output(move || {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().name(PARAM).value(value).build())
                .build()
        })
}

/// DescribeInstances' answer: the bake instance in `name`, launched `age`
/// seconds ago.
fn instance(name: InstanceStateName, age: u64) -> DescribeInstancesOutput {
    let launched = aws_sdk_ec2::primitives::DateTime::from_secs((unix_now() - age) as i64);
    let i = Instance::builder()
        .instance_id(INSTANCE)
        .state(InstanceState::builder().name(name).build())
        .launch_time(launched)
        .build();
    DescribeInstancesOutput::builder()
        .reservations(Reservation::builder().instances(i).build())
        .build()
}

fn state(name: InstanceStateName) -> Rule {
    mock!(aws_sdk_ec2::Client::describe_instances).then_output(move || instance(name.clone(), 60))
}

#[tokio::test]
async fn only_an_instance_that_stopped_itself_is_imaged() {
    let stopped = state(InstanceStateName::Stopped);
    let env = Mocks {
        ec2: vec![&stopped],
        ..Default::default()
    }
    .env();
    assert!(bootstrapped(&env, bake()).await.unwrap().ready);

    let running = state(InstanceStateName::Running);
    let env = Mocks {
        ec2: vec![&running],
        ..Default::default()
    }
    .env();
    assert!(!bootstrapped(&env, bake()).await.unwrap().ready);
    let late = Bake {
        deadline: unix_now() - 1,
        ..bake()
    };
    let err = bootstrapped(&env, late).await.unwrap_err();
    assert!(matches!(err, Error::BakeFailed { .. }), "{err}");
    assert_eq!(err.kind(), Kind::Failed);

    let terminated = state(InstanceStateName::Terminated);
    let env = Mocks {
        ec2: vec![&terminated],
        ..Default::default()
    }
    .env();
    let err = bootstrapped(&env, bake()).await.unwrap_err();
    assert!(err.to_string().contains("gone"), "{err}");
}

#[tokio::test]
async fn the_image_is_tagged_then_recorded_after_the_architecture_check() {
    let create = mock!(aws_sdk_ec2::Client::create_image)
        .match_requests(|r| {
            r.instance_id() == Some(INSTANCE)
                && r.tag_specifications().iter().all(|s| {
                    s.tags().iter().any(|t| {
                        t.key() == Some(TAG_BOOTSTRAP_SHA256)
                            && t.value() == Some(&node_image::bootstrap_sha256(ImageKind::Cpu))
                    })
                })
        })
        .then_output(|| CreateImageOutput::builder().image_id(BAKED).build());
    let env = Mocks {
        ec2: vec![&create],
        ..Default::default()
    }
    .env();
    let b = create_image(&env, &settings(), bake()).await.unwrap();
    assert_eq!(b.image_id.as_deref(), Some(BAKED));

    let fresh = describe(ArchitectureValues::Arm64, 60);
    let put = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| r.name() == Some(PARAM) && r.value() == Some(BAKED))
        .then_output(|| PutParameterOutput::builder().build());
    let env = Mocks {
        ec2: vec![&fresh],
        ssm: vec![&put],
        ..Default::default()
    }
    .env();
    let recorded = record(&env, &settings(), b.clone()).await.unwrap();
    assert_eq!(recorded.parameter.as_deref(), Some(PARAM));
    assert_eq!(put.num_calls(), 1);

    // An image EC2 calls x86_64 for the aarch64 target: never recorded
    // (no SSM rule: a PutParameter fails the test).
    let wrong = describe(ArchitectureValues::X8664, 60);
    let env = Mocks {
        ec2: vec![&wrong],
        ..Default::default()
    }
    .env();
    let err = record(&env, &settings(), b).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unusable {
                source: Unusable::WrongArchitecture { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn clean_up_terminates_and_removes_an_unrecorded_image() {
    let terminate = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE])
        .then_output(|| TerminateInstancesOutput::builder().build());
    let deregister = mock!(aws_sdk_ec2::Client::deregister_image)
        .match_requests(|r| r.image_id() == Some(BAKED))
        .then_output(|| DeregisterImageOutput::builder().build());
    let env = Mocks {
        ec2: vec![&terminate, &deregister],
        ..Default::default()
    }
    .env();
    clean_up(&env, bake()).await.unwrap();
    assert_eq!((terminate.num_calls(), deregister.num_calls()), (1, 0));
    let failed = Bake {
        image_id: Some(BAKED.into()),
        ..bake()
    };
    clean_up(&env, failed.clone()).await.unwrap();
    assert_eq!((terminate.num_calls(), deregister.num_calls()), (2, 1));
    let recorded = Bake {
        parameter: Some(PARAM.into()),
        ..failed
    };
    clean_up(&env, recorded).await.unwrap();
    assert_eq!(
        (terminate.num_calls(), deregister.num_calls()),
        (3, 1),
        "a recorded image stays"
    );
}

/// The stack's bake instances: one launched `age` seconds ago.
fn bake_instances(age: u64) -> Rule {
    mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| {
            r.filters()
                .iter()
                .any(|f| f.name() == Some("tag:ebfleet:node-image") && f.values() == [STACK])
        })
        .then_output(move || instance(InstanceStateName::Stopped, age))
}

#[tokio::test]
async fn the_next_bake_terminates_what_a_lost_one_left() {
    let terminate = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE])
        .then_output(|| TerminateInstancesOutput::builder().build());
    // Old enough to be lost: terminated; a bake still in its time: not.
    for age in [LOST_BAKE_AFTER_SECS + 60, 600] {
        let listed = bake_instances(age);
        let env = Mocks {
            ec2: vec![&listed, &terminate],
            ..Default::default()
        }
        .env();
        let input = DueInput {
            force: true,
            targets: Some(vec![arm()]),
        };
        due(&env, &settings(), input).await.unwrap();
        assert_eq!(terminate.num_calls(), 1, "launched {age} s ago");
    }
}

#[test]
fn the_summary_fails_when_an_image_was_not_baked() {
    let done = serde_json::to_value(Bake {
        parameter: Some(PARAM.into()),
        ..bake()
    })
    .unwrap();
    let out = summary(vec![done.clone()]).unwrap();
    assert_eq!(out.recorded, [PARAM]);
    let not = serde_json::json!({"failed": true, "error": "ebfleet.Failed", "cause": "bake instance i-1 is gone"});
    let err = summary(vec![done, not]).unwrap_err();
    assert_eq!(err.kind(), Kind::Failed);
    assert!(
        err.to_string().contains("bake instance i-1 is gone"),
        "{err}"
    );
}

#[tokio::test]
async fn an_image_is_due_unless_recorded_usable_and_young() {
    let targets = Some(vec![arm()]);
    let young = describe(ArchitectureValues::Arm64, 3600);
    let recorded = parameter(BAKED);
    let none_lost = bake_instances(60);
    let env = Mocks {
        ec2: vec![&young, &none_lost],
        ssm: vec![&recorded],
        ..Default::default()
    }
    .env();
    let input = DueInput {
        force: false,
        targets: targets.clone(),
    };
    let out = due(&env, &settings(), input).await.unwrap();
    assert_eq!((out.bakes.len(), out.fresh.len()), (0, 1));
    let forced = DueInput {
        force: true,
        targets,
    };
    let out = due(&env, &settings(), forced).await.unwrap();
    assert_eq!(out.bakes, [arm()]);

    let week_old = describe(ArchitectureValues::Arm64, 7 * 86_400);
    let others_missing = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    // An NVIDIA image baked on request before: kept up by the schedule
    // (this one is arm64 for x86_64: due).
    let nvidia_param = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.name() == Some("/ebfleet/node-image/amzn-2023/x86_64/nvidia"))
        .then_output(|| {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(BAKED).build())
                .build()
        });
    let env = Mocks {
        ec2: vec![&week_old, &none_lost],
        ssm: vec![&recorded, &nvidia_param, &others_missing],
        ..Default::default()
    }
    .env();
    let out = due(&env, &settings(), DueInput::default()).await.unwrap();
    assert!(out.bakes.contains(&arm()), "{out:?}");
    // The shipped platforms: a CPU image of each architecture, and the
    // NVIDIA one that exists; no other NVIDIA kind.
    let all: Vec<_> = out.bakes.iter().chain(&out.fresh).collect();
    let nvidia = ImageTarget::new("amzn-2023", Arch::X86_64, ImageKind::Nvidia).unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(out.bakes.contains(&nvidia), "{out:?}");
    assert!(all
        .iter()
        .any(|t| t.arch == Arch::X86_64 && t.kind == ImageKind::Cpu));
}

// ------------------------------------------------------------ Capacity

fn platform() -> ebfleet_core::platform::Platform {
    crate::capacity::find_platform(
        &ebfleet_core::platform::Platforms::default_set().unwrap(),
        "amzn-2023_graviton-3",
    )
    .unwrap()
}

fn stock() -> AmiSource {
    AmiSource::SsmParameter(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64".into(),
    )
}

#[tokio::test]
async fn capacity_launches_from_a_checked_baked_image() {
    let recorded = parameter(BAKED);
    let fresh = describe(ArchitectureValues::Arm64, 3600);
    let env = Mocks {
        ec2: vec![&fresh],
        ssm: vec![&recorded],
        ..Default::default()
    }
    .env();
    let ami = prefer_node_image(&env, Some(PREFIX), &platform(), ImageKind::Cpu, stock()).await;
    assert_eq!(ami, AmiSource::NodeImage(BAKED.into()));
}

#[tokio::test]
async fn capacity_falls_back_to_the_stock_ami() {
    let recorded = parameter(BAKED);
    // Wrong architecture, too old, another kind: the stock AMI.
    for (arch, age, kind) in [
        (ArchitectureValues::X8664, 3600, ImageKind::Cpu),
        (ArchitectureValues::Arm64, 15 * 86_400, ImageKind::Cpu),
        (ArchitectureValues::Arm64, 3600, ImageKind::Nvidia),
    ] {
        let rule = describe(arch, age);
        let nvidia_param = mock!(aws_sdk_ssm::Client::get_parameter).then_output(|| {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(BAKED).build())
                .build()
        });
        let env = Mocks {
            ec2: vec![&rule],
            ssm: vec![&recorded, &nvidia_param],
            ..Default::default()
        }
        .env();
        let ami = prefer_node_image(&env, Some(PREFIX), &platform(), kind, stock()).await;
        assert_eq!(ami, stock(), "{kind} image, {age} s old");
    }
    // No bake finished yet: no DescribeImages.
    let missing = mock!(aws_sdk_ssm::Client::get_parameter)
        .then_error(|| GetParameterError::ParameterNotFound(ParameterNotFound::builder().build()));
    let env = Mocks {
        ssm: vec![&missing],
        ..Default::default()
    }
    .env();
    let ami = prefer_node_image(&env, Some(PREFIX), &platform(), ImageKind::Cpu, stock()).await;
    assert_eq!(ami, stock());
    // A pinned AMI wins, and no bake path asks nothing: no call at all.
    let env = Mocks::default().env();
    let pinned = AmiSource::Pinned(STOCK.into());
    let ami = prefer_node_image(
        &env,
        Some(PREFIX),
        &platform(),
        ImageKind::Cpu,
        pinned.clone(),
    )
    .await;
    assert_eq!(ami, pinned);
    assert_eq!(
        prefer_node_image(&env, None, &platform(), ImageKind::Cpu, stock()).await,
        stock()
    );
}

#[test]
fn the_state_machines_inputs_are_the_handlers() {
    // As statemachine/bake.asl.json sends them: the schedule's `{}`, the
    // tools/ rule's `{"force": true}`, a Map item, a Catch's `failure`
    // beside the bake, the Map's results.
    let parse = |v: serde_json::Value| serde_json::from_value::<Input>(v).unwrap();
    assert_eq!(
        parse(serde_json::json!({"due": {}})),
        Input::Due(DueInput::default())
    );
    assert!(matches!(
        parse(serde_json::json!({"due": {"force": true}})),
        Input::Due(DueInput { force: true, .. })
    ));
    assert_eq!(
        parse(serde_json::json!({"launch": {"os": "amzn-2023", "arch": "aarch64", "kind": "cpu"}})),
        Input::Launch(arm())
    );
    let mut caught = serde_json::to_value(bake()).unwrap();
    caught["failure"] = serde_json::json!({"Error": "ebfleet.Failed", "Cause": "gone"});
    assert_eq!(
        parse(serde_json::json!({"clean_up": caught})),
        Input::CleanUp(bake())
    );
    assert!(matches!(
        parse(serde_json::json!({"summary": [{"failed": true, "error": "x", "cause": "y"}]})),
        Input::Summary(r) if r.len() == 1
    ));
}

#[test]
fn the_parameter_path_is_required_and_checked() {
    let with = |prefix: Option<&str>| {
        let mut vars = vec![
            (var::STACK_NAME, STACK),
            (var::SECURITY_GROUP_ID, "sg-1"),
            (var::SUBNET_IDS, "subnet-1"),
        ];
        vars.extend(prefix.map(|p| (var::NODE_IMAGE_PREFIX, p)));
        Settings::from_lookup(lookup(&vars))
    };
    assert_eq!(with(Some(PREFIX)).unwrap().prefix, PREFIX);
    assert!(with(None)
        .unwrap_err()
        .to_string()
        .contains(var::NODE_IMAGE_PREFIX));
    for bad in ["ebfleet/node-image", "/a b", "/x/"] {
        let err = with(Some(bad)).unwrap_err();
        assert_eq!(err.kind(), Kind::Invalid, "{bad}: {err}");
    }
    // Capacity reads the same variable, optional there.
    let cap = |prefix: &str| {
        crate::capacity::Settings::from_lookup(lookup(&[
            (
                var::INSTANCE_PROFILE_ARN,
                "arn:aws:iam::123456789012:instance-profile/n",
            ),
            (var::SECURITY_GROUP_ID, "sg-1"),
            (var::SUBNET_IDS, "subnet-1"),
            (var::NODE_IMAGE_PREFIX, prefix),
        ]))
    };
    assert_eq!(
        cap(PREFIX).unwrap().node_image_prefix.as_deref(),
        Some(PREFIX)
    );
    assert!(cap("no-slash").is_err());
}
