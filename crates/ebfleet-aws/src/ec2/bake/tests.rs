//! The bake's EC2 calls against `aws-smithy-mocks`: each rule checks its
//! request, so a bake instance that could keep running after its power-off
//! (terminate on shutdown), answer IMDSv1, carry a key pair or a role, or
//! an image without its tags, fails here.

use super::*;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::operation::create_image::CreateImageOutput;
use aws_sdk_ec2::operation::deregister_image::DeregisterImageOutput;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::run_instances::{RunInstancesInput, RunInstancesOutput};
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::{Instance, InstanceState, Reservation};
use aws_sdk_ec2::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;

const STOCK: &str = "ami-0fedcba9876543210";
const BAKED: &str = "ami-0123456789abcdef0";
const INSTANCE: &str = "i-0123456789abcdef0";

fn no_retries(c: aws_sdk_ec2::config::Builder) -> aws_sdk_ec2::config::Builder {
    c.retry_config(RetryConfig::disabled())
}

fn ec2_error(code: &str) -> HttpResponse {
    HttpResponse::new(
        400.try_into().unwrap(),
        SdkBody::from(format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>no</Message></Error></Errors>\
             <RequestID>x</RequestID></Response>"
        )),
    )
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([("ebfleet:node-image".to_string(), "ebfleet".to_string())])
}

fn stock_image() -> DescribeImagesOutput {
    DescribeImagesOutput::builder()
        .images(
            Image::builder()
                .image_id(STOCK)
                .root_device_name("/dev/xvda")
                .build(),
        )
        .build()
}

fn locked_down(r: &RunInstancesInput) -> bool {
    let meta = r.metadata_options().unwrap();
    let root = &r.block_device_mappings()[0];
    let ebs = root.ebs().unwrap();
    let tagged = |t: ResourceType| {
        r.tag_specifications().iter().any(|s| {
            s.resource_type() == Some(&t)
                && s.tags()
                    .iter()
                    .any(|t| t.key() == Some("ebfleet:node-image") && t.value() == Some("ebfleet"))
        })
    };
    r.image_id() == Some(STOCK)
        && r.instance_type() == Some(&InstanceType::M7gLarge)
        && (r.min_count(), r.max_count()) == (Some(1), Some(1))
        && r.instance_initiated_shutdown_behavior() == Some(&ShutdownBehavior::Stop)
        && meta.http_tokens() == Some(&HttpTokensState::Required)
        && meta.http_put_response_hop_limit() == Some(1)
        && r.key_name().is_none()
        && r.iam_instance_profile().is_none()
        && r.subnet_id() == Some("subnet-1")
        && r.security_group_ids() == ["sg-1"]
        && root.device_name() == Some("/dev/xvda")
        && ebs.encrypted() == Some(true)
        && ebs.volume_type() == Some(&VolumeType::Gp3)
        && ebs.delete_on_termination() == Some(true)
        && r.user_data()
            .and_then(|u| aws_smithy_types::base64::decode(u).ok())
            == Some(b"\x1f\x8bbake".to_vec())
        && tagged(ResourceType::Instance)
        && tagged(ResourceType::Volume)
}

#[tokio::test]
async fn the_bake_instance_is_locked_down_and_stops_on_shutdown() {
    let images = mock!(Client::describe_images).then_output(stock_image);
    let run = mock!(Client::run_instances)
        .match_requests(locked_down)
        .then_output(|| {
            RunInstancesOutput::builder()
                .instances(Instance::builder().instance_id(INSTANCE).build())
                .build()
        });
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&images, &run],
        no_retries
    ));
    let bake = BakeLaunch {
        ami_id: STOCK.into(),
        instance_type: "m7g.large".into(),
        subnet_id: "subnet-1".into(),
        security_group_id: "sg-1".into(),
        user_data: b"\x1f\x8bbake".to_vec(),
        tags: tags(),
    };
    assert_eq!(nodes.launch_bake(&bake).await.unwrap(), INSTANCE);
    assert_eq!(run.num_calls(), 1);
    let not_an_ami = BakeLaunch {
        ami_id: "ami-x".into(),
        ..bake
    };
    assert!(matches!(
        nodes.launch_bake(&not_an_ami).await,
        Err(Ec2Error::InvalidLaunch { .. })
    ));
}

fn in_state(state: InstanceStateName) -> DescribeInstancesOutput {
    DescribeInstancesOutput::builder()
        .reservations(
            Reservation::builder()
                .instances(
                    Instance::builder()
                        .instance_id(INSTANCE)
                        .state(InstanceState::builder().name(state).build())
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn only_a_stopped_instance_has_finished() {
    let cases = [
        (InstanceStateName::Running, BakeInstance::Busy),
        (InstanceStateName::Stopping, BakeInstance::Busy),
        (InstanceStateName::Stopped, BakeInstance::Stopped),
        (InstanceStateName::Terminated, BakeInstance::Gone),
        (InstanceStateName::ShuttingDown, BakeInstance::Gone),
    ];
    for (state, expected) in cases {
        let rule = mock!(Client::describe_instances)
            .match_requests(|r| r.instance_ids() == [INSTANCE])
            .then_output(move || in_state(state.clone()));
        let nodes = Nodes::new(mock_client!(aws_sdk_ec2, [&rule]));
        assert_eq!(nodes.bake_instance(INSTANCE).await.unwrap(), expected);
    }
    let unknown = mock!(Client::describe_instances)
        .then_http_response(|| ec2_error("InvalidInstanceID.NotFound"));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&unknown],
        no_retries
    ));
    assert_eq!(
        nodes.bake_instance(INSTANCE).await.unwrap(),
        BakeInstance::Gone
    );
}

#[tokio::test]
async fn the_image_and_its_snapshots_carry_the_tags() {
    let create = mock!(Client::create_image)
        .match_requests(|r| {
            let tagged = |t: ResourceType| {
                r.tag_specifications()
                    .iter()
                    .any(|s| s.resource_type() == Some(&t) && s.tags().len() == 1)
            };
            r.instance_id() == Some(INSTANCE)
                && r.name() == Some("ebfleet-node-x")
                && tagged(ResourceType::Image)
                && tagged(ResourceType::Snapshot)
        })
        .then_output(|| CreateImageOutput::builder().image_id(BAKED).build());
    let nodes = Nodes::new(mock_client!(aws_sdk_ec2, [&create]));
    let id = nodes
        .create_image(INSTANCE, "ebfleet-node-x", &tags())
        .await
        .unwrap();
    assert_eq!((id.as_str(), create.num_calls()), (BAKED, 1));
}

fn baked_image(arch: ArchitectureValues, state: ImageState) -> DescribeImagesOutput {
    DescribeImagesOutput::builder()
        .images(
            Image::builder()
                .image_id(BAKED)
                .architecture(arch)
                .state(state)
                .creation_date("2026-12-05T08:00:00.000Z")
                .tags(Tag::builder().key("ebfleet:os").value("amzn-2023").build())
                .build(),
        )
        .build()
}

#[tokio::test]
async fn image_facts_are_the_accounts_own_images_only() {
    let describe = mock!(Client::describe_images)
        .match_requests(|r| r.owners() == ["self"] && r.image_ids() == [BAKED])
        .then_output(|| baked_image(ArchitectureValues::Arm64, ImageState::Available));
    let nodes = Nodes::new(mock_client!(aws_sdk_ec2, [&describe]));
    let facts = nodes.image_facts(BAKED).await.unwrap().unwrap();
    assert_eq!(facts.arch, Some(Arch::Aarch64));
    assert!(facts.available);
    assert_eq!(facts.created, Some(1_796_457_600));
    assert_eq!(facts.tags["ebfleet:os"], "amzn-2023");

    // Another account's image (EC2 lists nothing for Owners=self), one EC2
    // does not know, and a value that is no AMI id: no image.
    let none =
        mock!(Client::describe_images).then_output(|| DescribeImagesOutput::builder().build());
    let unknown =
        mock!(Client::describe_images).then_http_response(|| ec2_error("InvalidAMIID.NotFound"));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&none, &unknown],
        no_retries
    ));
    assert_eq!(nodes.image_facts(BAKED).await.unwrap(), None);
    assert_eq!(nodes.image_facts(BAKED).await.unwrap(), None);
    assert_eq!(nodes.image_facts("not-an-ami").await.unwrap(), None);
    assert_eq!((none.num_calls(), unknown.num_calls()), (1, 1));

    let i386 = mock!(Client::describe_images)
        .then_output(|| baked_image(ArchitectureValues::I386, ImageState::Pending));
    let nodes = Nodes::new(mock_client!(aws_sdk_ec2, [&i386]));
    let facts = nodes.image_facts(BAKED).await.unwrap().unwrap();
    assert_eq!(
        (facts.arch, facts.available, facts.failed),
        (None, false, false)
    );
    let failed = mock!(Client::describe_images)
        .then_output(|| baked_image(ArchitectureValues::X8664, ImageState::Failed));
    let nodes = Nodes::new(mock_client!(aws_sdk_ec2, [&failed]));
    let facts = nodes.image_facts(BAKED).await.unwrap().unwrap();
    assert_eq!(
        (facts.arch, facts.available, facts.failed),
        (Some(Arch::X86_64), false, true)
    );
}

#[tokio::test]
async fn terminate_and_deregister_count_what_is_gone_as_done() {
    let terminate = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE])
        .then_output(|| TerminateInstancesOutput::builder().build());
    let gone = mock!(Client::terminate_instances)
        .then_http_response(|| ec2_error("InvalidInstanceID.NotFound"));
    let deregister = mock!(Client::deregister_image)
        .match_requests(|r| {
            r.image_id() == Some(BAKED) && r.delete_associated_snapshots() == Some(true)
        })
        .then_output(|| DeregisterImageOutput::builder().build());
    let denied =
        mock!(Client::deregister_image).then_http_response(|| ec2_error("UnauthorizedOperation"));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&terminate, &gone, &deregister, &denied],
        no_retries
    ));
    nodes.terminate_bake(INSTANCE).await.unwrap();
    nodes.terminate_bake(INSTANCE).await.unwrap();
    nodes.deregister_image(BAKED).await.unwrap();
    let err = nodes.deregister_image(BAKED).await.unwrap_err();
    assert!(err.to_string().contains(BAKED), "{err}");
}
