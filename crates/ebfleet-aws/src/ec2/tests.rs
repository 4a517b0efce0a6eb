//! The EC2 adapter against `aws-smithy-mocks`. Rules run in order
//! (`RuleMode::Sequential`) and each checks its request, so a call too many,
//! a call missing, or a request the adapter spelled wrong (IMDSv1 allowed,
//! a key pair, a tag missing, the wrong default type, the root volume on
//! the wrong device) fails the test.

use super::*;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::operation::create_launch_template::{
    CreateLaunchTemplateInput, CreateLaunchTemplateOutput,
};
use aws_sdk_ec2::operation::delete_launch_template::DeleteLaunchTemplateOutput;
use aws_sdk_ec2::operation::describe_images::{DescribeImagesInput, DescribeImagesOutput};
use aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesOutput;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::describe_launch_templates::DescribeLaunchTemplatesOutput;
use aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryOutput;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::{
    ArchitectureType, BlockDeviceMapping, EbsBlockDevice, Filter, GpuDeviceInfo,
    GpuDeviceMemoryInfo, GpuInfo, Image, Instance, InstanceState, InstanceStateChange,
    InstanceStateName, InstanceStorageInfo, InstanceType as Ec2Type, InstanceTypeInfo,
    LaunchTemplate, LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
    MemoryInfo, ProcessorInfo, Reservation, ResourceType, ShutdownBehavior, SpotPrice, Tag,
    UsageClassType, VCpuInfo, VolumeType,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::DateTime;
use ebfleet_core::capacity::{
    AmiSource, BatchNeeds, CapacityPlan, Choice, InstanceType, LaunchSpec, Market, Purchase,
    SpotAllocationStrategy as DomainStrategy, TAG_BATCH, TAG_EXECUTION, TAG_PLATFORM,
};
use ebfleet_core::platform::Platforms;
use ebfleet_core::Arch;

const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:ebfleet:run-2026-11-24";
const PLATFORM: &str = "amzn-2023_graviton-3";
const TEMPLATE_ID: &str = "lt-0123456789abcdef0";
/// Gzip magic and more: the adapter passes bytes, not text.
const USER_DATA: &[u8] = b"\x1f\x8b\x08\x00#!/bin/bash\nexec /opt/ebfleet/bootstrap\n\xff";
const AMI: &str = "ami-0abcdef1234567890";
const ROOT_DEVICE: &str = "/dev/xvda";

fn no_retries(c: aws_sdk_ec2::config::Builder) -> aws_sdk_ec2::config::Builder {
    c.retry_config(RetryConfig::disabled())
}

/// An EC2 error answer, as EC2 sends it (the `ec2` query protocol).
fn ec2_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>\
             </Errors><RequestID>ea966190-f9aa-478e-9ede-cb5432daacc0</RequestID></Response>"
        )),
    )
}

fn filter_is(filters: &[Filter], name: &str, values: &[&str]) -> bool {
    filters
        .iter()
        .any(|f| f.name() == Some(name) && f.values() == values)
}

// ------------------------------------------------------------------ catalog

fn graviton(name: &str, vcpus: i32, mib: i64) -> InstanceTypeInfo {
    InstanceTypeInfo::builder()
        .instance_type(Ec2Type::from(name))
        .v_cpu_info(VCpuInfo::builder().default_v_cpus(vcpus).build())
        .memory_info(MemoryInfo::builder().size_in_mib(mib).build())
        .processor_info(
            ProcessorInfo::builder()
                .supported_architectures(ArchitectureType::Arm64)
                .manufacturer("AWS")
                .build(),
        )
        .supported_usage_classes(UsageClassType::OnDemand)
        .supported_usage_classes(UsageClassType::Spot)
        .build()
}

fn p5() -> InstanceTypeInfo {
    InstanceTypeInfo::builder()
        .instance_type(Ec2Type::from("p5.48xlarge"))
        .v_cpu_info(VCpuInfo::builder().default_v_cpus(192).build())
        .memory_info(MemoryInfo::builder().size_in_mib(2_097_152).build())
        .processor_info(
            ProcessorInfo::builder()
                .supported_architectures(ArchitectureType::I386)
                .supported_architectures(ArchitectureType::X8664)
                .build(),
        )
        .gpu_info(
            GpuInfo::builder()
                .gpus(
                    GpuDeviceInfo::builder()
                        .manufacturer("NVIDIA")
                        .name("H100")
                        .count(8)
                        .memory_info(GpuDeviceMemoryInfo::builder().size_in_mib(81_920).build())
                        .build(),
                )
                .total_gpu_memory_in_mib(655_360)
                .build(),
        )
        .instance_storage_info(
            InstanceStorageInfo::builder()
                .total_size_in_gb(30_400)
                .build(),
        )
        // Only on-demand here, to see the flag.
        .supported_usage_classes(UsageClassType::OnDemand)
        .build()
}

#[tokio::test]
async fn instance_types_reads_every_page_and_maps_the_catalog() {
    let asks = |r: &aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesInput| {
        r.filters().len() == 1 && filter_is(r.filters(), "instance-type", &["c7g.*", "p5.*"])
    };
    let first = mock!(Client::describe_instance_types)
        .match_requests(move |r| asks(r) && r.next_token().is_none())
        .then_output(|| {
            DescribeInstanceTypesOutput::builder()
                .instance_types(graviton("c7g.4xlarge", 16, 32_768))
                // A look-alike family the wildcard should not bring; if an
                // emulator does, it is dropped here.
                .instance_types(graviton("c7gn.4xlarge", 16, 32_768))
                // No processor info: nothing to choose by.
                .instance_types(
                    InstanceTypeInfo::builder()
                        .instance_type(Ec2Type::from("c7g.odd"))
                        .build(),
                )
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::describe_instance_types)
        .match_requests(move |r| asks(r) && r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeInstanceTypesOutput::builder()
                .instance_types(p5())
                .instance_types(graviton("c7g.2xlarge", 8, 16_384))
                .build()
        });
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&first, &second],
        no_retries
    ));
    let got = nodes
        .instance_types(&["c7g".into(), "p5".into()])
        .await
        .unwrap();
    let mut p5 = InstanceType::new("p5.48xlarge", Arch::X86_64, 192, 2_097_152)
        .with_gpus(8, "NVIDIA H100", 655_360)
        .with_storage_gb(30_400);
    p5.spot_supported = false;
    assert_eq!(
        got,
        [
            InstanceType::new("c7g.2xlarge", Arch::Aarch64, 8, 16_384),
            InstanceType::new("c7g.4xlarge", Arch::Aarch64, 16, 32_768),
            p5,
        ]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn no_families_asks_nothing() {
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        Vec::<&aws_smithy_mocks::Rule>::new()
    ));
    assert!(nodes.instance_types(&[]).await.unwrap().is_empty());
    assert!(nodes.spot_prices(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn request_limit_exceeded_is_retryable_and_names_the_query() {
    let rule = mock!(Client::describe_instance_types)
        .then_http_response(|| ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = nodes.instance_types(&["c7g".into()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Ec2Error::Call(CallError {
                op: "DescribeInstanceTypes",
                transient: true,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("instance types c7g.*") && text.contains("RequestLimitExceeded"),
        "{text}"
    );
}

fn price(t: &str, zone: &str, usd: &str, at: i64) -> SpotPrice {
    SpotPrice::builder()
        .instance_type(Ec2Type::from(t))
        .availability_zone(zone)
        .spot_price(usd)
        .timestamp(DateTime::from_secs(at))
        .build()
}

#[tokio::test]
async fn spot_prices_take_the_newest_per_zone_and_the_lowest_zone() {
    let asks =
        |r: &aws_sdk_ec2::operation::describe_spot_price_history::DescribeSpotPriceHistoryInput| {
            r.product_descriptions() == ["Linux/UNIX"]
                && r.instance_types()
                    == [Ec2Type::from("c7g.4xlarge"), Ec2Type::from("m7g.4xlarge")]
                && r.start_time().is_some()
        };
    let first = mock!(Client::describe_spot_price_history)
        .match_requests(move |r| asks(r) && r.next_token().is_none())
        .then_output(|| {
            DescribeSpotPriceHistoryOutput::builder()
                // Zone a: an old low price, then the current one.
                .spot_price_history(price("c7g.4xlarge", "us-east-1a", "0.1000", 1_000))
                .spot_price_history(price("c7g.4xlarge", "us-east-1a", "0.3000", 2_000))
                .spot_price_history(price("c7g.4xlarge", "us-east-1b", "0.2500", 2_000))
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::describe_spot_price_history)
        .match_requests(move |r| asks(r) && r.next_token() == Some("page-2"))
        .then_output(|| {
            DescribeSpotPriceHistoryOutput::builder()
                .spot_price_history(price("m7g.4xlarge", "us-east-1a", "0.2700", 2_000))
                .spot_price_history(price("m7g.4xlarge", "us-east-1b", "n/a", 2_000))
                .build()
        });
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&first, &second],
        no_retries
    ));
    let prices = nodes
        .spot_prices(&["c7g.4xlarge".into(), "m7g.4xlarge".into()])
        .await
        .unwrap();
    assert_eq!(prices.len(), 2);
    assert_eq!(prices["c7g.4xlarge"], 0.25);
    assert_eq!(prices["m7g.4xlarge"], 0.27);

    let mut types = vec![
        InstanceType::new("c7g.4xlarge", Arch::Aarch64, 16, 32_768),
        InstanceType::new("c7g.2xlarge", Arch::Aarch64, 8, 16_384),
    ];
    apply_spot_prices(&mut types, &prices);
    assert_eq!(
        (types[0].spot_price, types[1].spot_price),
        (Some(0.25), None)
    );
}

#[tokio::test]
async fn spot_price_access_denied_is_not_retryable() {
    let rule = mock!(Client::describe_spot_price_history).then_http_response(|| {
        ec2_error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        )
    });
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = nodes
        .spot_prices(&["c7g.4xlarge".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Ec2Error::Call(CallError {
                transient: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("spot prices of c7g.4xlarge") && text.contains("UnauthorizedOperation"),
        "{text}"
    );
}

// ---------------------------------------------------------- launch template

fn choice(t: &str, market: Market) -> Choice {
    Choice {
        instance_type: t.into(),
        vcpus: 16,
        memory_mib: 32_768,
        gpus: 0,
        hourly_price: None,
        market,
    }
}

/// A spot spec of c7g then m7g; its on-demand fallback ranks them the
/// other way round, so a test can see which list the template's type came
/// from.
fn spot_spec() -> LaunchSpec {
    let platforms = Platforms::default_set().unwrap();
    let platform = platforms
        .platforms
        .iter()
        .find(|p| p.name == PLATFORM)
        .unwrap();
    let plan = CapacityPlan {
        platform: PLATFORM.into(),
        needs: BatchNeeds::for_batch(10, platform),
        purchase: Purchase::Spot {
            allocation_strategy: DomainStrategy::PriceCapacityOptimized,
        },
        types: vec![
            choice("c7g.4xlarge", Market::Spot),
            choice("m7g.4xlarge", Market::Spot),
        ],
        on_demand_fallback: vec![
            choice("m7g.4xlarge", Market::OnDemand),
            choice("c7g.4xlarge", Market::OnDemand),
        ],
    };
    let ami = AmiSource::for_platform(platform, None).unwrap();
    LaunchSpec::new(EXECUTION, platform, "b0007", &plan, ami).unwrap()
}

fn context() -> LaunchContext {
    LaunchContext {
        ami_id: "ami-0abcdef1234567890".into(),
        instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/ebfleet-node".into(),
        security_group_id: "sg-0123456789abcdef0".into(),
        subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        user_data: Some(USER_DATA.to_vec()),
    }
}

fn has_all_tags(tags: &[Tag]) -> bool {
    let want = [
        (TAG_EXECUTION, EXECUTION),
        (TAG_PLATFORM, PLATFORM),
        (TAG_BATCH, "b0007"),
    ];
    tags.len() == want.len()
        && want.iter().all(|(k, v)| {
            tags.iter()
                .any(|t| t.key() == Some(k) && t.value() == Some(v))
        })
}

/// The launch template as the domain's spec demands it, of `first_type`
/// (the group's default type).
fn locked_down(r: &CreateLaunchTemplateInput, first_type: &str) -> bool {
    let Some(d) = r.launch_template_data() else {
        return false;
    };
    let Some(m) = d.metadata_options() else {
        return false;
    };
    let tagged = |rt: ResourceType| {
        d.tag_specifications()
            .iter()
            .any(|s| s.resource_type() == Some(&rt) && has_all_tags(s.tags()))
    };
    let user_data = d
        .user_data()
        .and_then(|u| aws_smithy_types::base64::decode(u).ok());
    r.launch_template_name()
        .is_some_and(|n| n.starts_with("ebfleet-amzn-2023_graviton-3-b0007-") && n.len() <= 128)
        && r.tag_specifications().iter().any(|s| {
            s.resource_type() == Some(&ResourceType::LaunchTemplate) && has_all_tags(s.tags())
        })
        && d.image_id() == Some("ami-0abcdef1234567890")
        && d.instance_type() == Some(&Ec2Type::from(first_type))
        && d.key_name().is_none()
        && m.http_tokens() == Some(&LaunchTemplateHttpTokensState::Required)
        && m.http_put_response_hop_limit() == Some(1)
        && m.http_endpoint() == Some(&LaunchTemplateInstanceMetadataEndpointState::Enabled)
        && d.iam_instance_profile().and_then(|p| p.arn())
            == Some("arn:aws:iam::123456789012:instance-profile/ebfleet-node")
        && d.security_group_ids() == ["sg-0123456789abcdef0"]
        && d.network_interfaces().is_empty()
        && d.instance_initiated_shutdown_behavior() == Some(&ShutdownBehavior::Terminate)
        && d.instance_market_options().is_none()
        && user_data.as_deref() == Some(USER_DATA)
        && root_volume(d, ROOT_DEVICE, 200)
        && tagged(ResourceType::Instance)
        && tagged(ResourceType::Volume)
}

/// One block device: `device`, gp3, `gib` GiB, encrypted, deleted with
/// the instance.
fn root_volume(d: &aws_sdk_ec2::types::RequestLaunchTemplateData, device: &str, gib: i32) -> bool {
    let [m] = d.block_device_mappings() else {
        return false;
    };
    let Some(ebs) = m.ebs() else {
        return false;
    };
    m.device_name() == Some(device)
        && m.no_device().is_none()
        && m.virtual_name().is_none()
        && ebs.volume_size() == Some(gib)
        && ebs.volume_type() == Some(&VolumeType::Gp3)
        && ebs.encrypted() == Some(true)
        && ebs.delete_on_termination() == Some(true)
        && ebs.snapshot_id().is_none()
}

/// The AMI as DescribeImages answers: root device and its snapshot.
fn image(device: &str, snapshot_gib: i32) -> DescribeImagesOutput {
    DescribeImagesOutput::builder()
        .images(
            Image::builder()
                .image_id(AMI)
                .root_device_name(device)
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .snapshot_id("snap-0123456789abcdef0")
                                .volume_size(snapshot_gib)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

fn asks_for_the_ami(r: &DescribeImagesInput) -> bool {
    r.image_ids() == [AMI]
}

fn image_rule() -> aws_smithy_mocks::Rule {
    mock!(Client::describe_images)
        .match_requests(asks_for_the_ami)
        .then_output(|| image(ROOT_DEVICE, 8))
}

fn created(id: &str) -> CreateLaunchTemplateOutput {
    CreateLaunchTemplateOutput::builder()
        .launch_template(LaunchTemplate::builder().launch_template_id(id).build())
        .build()
}

fn template_rule(first_type: &'static str) -> aws_smithy_mocks::Rule {
    mock!(Client::create_launch_template)
        .match_requests(move |r| locked_down(r, first_type))
        .then_output(|| created(TEMPLATE_ID))
}

#[tokio::test]
async fn a_pools_template_is_locked_down_and_of_the_best_type() {
    let image = image_rule();
    let template = template_rule("c7g.4xlarge");
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&image, &template],
        no_retries
    ));
    let id = nodes
        .launch_template(&spot_spec(), &context())
        .await
        .unwrap();
    assert_eq!(id, TEMPLATE_ID);
    assert_eq!((image.num_calls(), template.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_on_demand_spec_makes_a_template_of_its_own_best_type() {
    let spec = spot_spec().on_demand_fallback().unwrap();
    assert!(!spec.purchase.is_spot());
    let image = image_rule();
    // Still locked down; the purchase is the group's, not the template's.
    let template = template_rule("m7g.4xlarge");
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&image, &template],
        no_retries
    ));
    let id = nodes.launch_template(&spec, &context()).await.unwrap();
    assert_eq!(id, TEMPLATE_ID);
    assert_eq!(template.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_template_names_platform_and_template() {
    let image = image_rule();
    let template = mock!(Client::create_launch_template).then_http_response(|| {
        ec2_error(
            400,
            "InvalidParameterValue",
            "Value (arn:aws:iam::bad) for parameter iamInstanceProfile.arn is invalid.",
        )
    });
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&image, &template],
        no_retries
    ));
    let err = nodes
        .launch_template(&spot_spec(), &context())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.starts_with(
            "EC2 CreateLaunchTemplate platform amzn-2023_graviton-3: launch template ebfleet-amzn-2023_graviton-3-b0007-"
        ) && text.contains(" failed: InvalidParameterValue"),
        "{text}"
    );
}

#[tokio::test]
async fn a_template_answer_without_an_id_is_an_error() {
    let image = image_rule();
    let template = mock!(Client::create_launch_template)
        .then_output(|| CreateLaunchTemplateOutput::builder().build());
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&image, &template],
        no_retries
    ));
    let err = nodes
        .launch_template(&spot_spec(), &context())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Ec2Error::Call(CallError { op: "CreateLaunchTemplate", transient: false, detail, .. })
                if detail.contains("no launch template id")
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_impossible_launch_asks_nothing() {
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        Vec::<&aws_smithy_mocks::Rule>::new()
    ));
    let no_types = LaunchSpec {
        instance_types: vec![],
        ..spot_spec()
    };
    let cases = [
        (
            spot_spec(),
            LaunchContext {
                subnet_ids: vec![],
                ..context()
            },
            "no subnet",
        ),
        (
            spot_spec(),
            LaunchContext {
                ami_id: "ami-x; reboot".into(),
                ..context()
            },
            "not an AMI id",
        ),
        (
            spot_spec(),
            LaunchContext {
                user_data: Some(vec![0x1f; 16 * 1024 + 1]),
                ..context()
            },
            "over EC2's 16384",
        ),
        (no_types, context(), "no instance type"),
    ];
    for (spec, ctx, says) in cases {
        let err = nodes.launch_template(&spec, &ctx).await.unwrap_err();
        assert!(
            matches!(&err, Ec2Error::InvalidLaunch { platform, reason } if platform == PLATFORM && reason.contains(says)),
            "{says}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn the_root_volume_goes_on_the_amis_root_device() {
    let image = mock!(Client::describe_images)
        .match_requests(asks_for_the_ami)
        .then_output(|| image("/dev/sda1", 10));
    let template = mock!(Client::create_launch_template)
        .match_requests(|r| {
            r.launch_template_data()
                .is_some_and(|d| root_volume(d, "/dev/sda1", 500))
        })
        .then_output(|| created(TEMPLATE_ID));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&image, &template],
        no_retries
    ));
    let spec = spot_spec().with_root_volume(ebfleet_core::capacity::RootVolume::gp3(500).unwrap());
    let id = nodes.launch_template(&spec, &context()).await.unwrap();
    assert_eq!(id, TEMPLATE_ID);
    assert_eq!((image.num_calls(), template.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_unknown_ami_or_a_too_small_root_volume_makes_no_template() {
    let not_found = mock!(Client::describe_images).then_http_response(|| {
        ec2_error(
            400,
            "InvalidAMIID.NotFound",
            "The image id '[ami-0abcdef1234567890]' does not exist",
        )
    });
    let empty =
        mock!(Client::describe_images).then_output(|| DescribeImagesOutput::builder().build());
    let no_device = mock!(Client::describe_images).then_output(|| {
        DescribeImagesOutput::builder()
            .images(Image::builder().image_id(AMI).build())
            .build()
    });
    let huge_snapshot = mock!(Client::describe_images)
        .match_requests(asks_for_the_ami)
        .then_output(|| image(ROOT_DEVICE, 250));
    let cases = [
        (&not_found, "InvalidAMIID.NotFound"),
        (&empty, "does not exist or is not shared"),
        (&no_device, "has no root device name"),
        (&huge_snapshot, "at least 250 GiB, the spec has 200 GiB"),
    ];
    for (rule, says) in cases {
        // Only DescribeImages: a template request fails the test.
        let nodes = Nodes::new(mock_client!(
            aws_sdk_ec2,
            RuleMode::Sequential,
            [rule],
            no_retries
        ));
        let err = nodes
            .launch_template(&spot_spec(), &context())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Ec2Error::InvalidLaunch { platform, reason } if platform == PLATFORM && reason.contains(says) && reason.contains(AMI)),
            "{says}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn a_throttled_image_lookup_is_transient() {
    let image = mock!(Client::describe_images)
        .then_http_response(|| ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&image],
        no_retries
    ));
    let err = nodes
        .launch_template(&spot_spec(), &context())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Ec2Error::Call(CallError { op: "DescribeImages", resource, transient: true, .. }) if resource.contains(AMI)),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

// ------------------------------------------------------------------ release

fn state(name: InstanceStateName) -> InstanceState {
    InstanceState::builder().name(name).build()
}

fn terminating(id: &str, was: InstanceStateName) -> TerminateInstancesOutput {
    let now = if was == InstanceStateName::Terminated {
        InstanceStateName::Terminated
    } else {
        InstanceStateName::ShuttingDown
    };
    TerminateInstancesOutput::builder()
        .terminating_instances(
            InstanceStateChange::builder()
                .instance_id(id)
                .previous_state(state(was))
                .current_state(state(now))
                .build(),
        )
        .build()
}

fn not_found(id: &str) -> HttpResponse {
    ec2_error(
        400,
        "InvalidInstanceID.NotFound",
        &format!("The instance ID '{id}' does not exist"),
    )
}

fn by_tags(filters: &[Filter]) -> bool {
    filter_is(filters, "tag:ebfleet:execution", &[EXECUTION])
        && filter_is(filters, "tag:ebfleet:platform", &[PLATFORM])
}

fn describe_live(
    next: Option<&'static str>,
    ids: &'static [&'static str],
) -> aws_smithy_mocks::Rule {
    mock!(Client::describe_instances)
        .match_requests(move |r| {
            by_tags(r.filters())
                && filter_is(
                    r.filters(),
                    "instance-state-name",
                    &["pending", "running", "stopping", "stopped"],
                )
                && r.filters().len() == 3
                && r.instance_ids().is_empty()
                && r.next_token() == next
        })
        .then_output(move || {
            let mut reservation = Reservation::builder();
            for id in ids {
                reservation = reservation.instances(Instance::builder().instance_id(*id).build());
            }
            let out = DescribeInstancesOutput::builder().reservations(reservation.build());
            match next {
                None if !ids.is_empty() => out.next_token("page-2").build(),
                _ => out.build(),
            }
        })
}

fn describe_templates(ids: &'static [&'static str]) -> aws_smithy_mocks::Rule {
    mock!(Client::describe_launch_templates)
        .match_requests(|r| by_tags(r.filters()) && r.filters().len() == 2)
        .then_output(move || {
            let mut out = DescribeLaunchTemplatesOutput::builder();
            for id in ids {
                out =
                    out.launch_templates(LaunchTemplate::builder().launch_template_id(*id).build());
            }
            out.build()
        })
}

#[tokio::test]
async fn terminating_instances_that_are_already_gone_is_success() {
    let ids = ["i-0aaa".to_string(), "i-0bbb".to_string()];
    // One unknown id fails the whole call...
    let both = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0aaa", "i-0bbb"])
        .then_http_response(|| not_found("i-0bbb"));
    // ...so each is asked alone: one terminated earlier, one long gone.
    let first = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0aaa"])
        .then_output(|| terminating("i-0aaa", InstanceStateName::Terminated));
    let second = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0bbb"])
        .then_http_response(|| not_found("i-0bbb"));
    let live = describe_live(None, &[]);
    let templates = describe_templates(&[]);
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&both, &first, &second, &live, &templates],
        no_retries
    ));
    let released = nodes
        .terminate(&ids, EXECUTION, Some(PLATFORM))
        .await
        .unwrap();
    assert_eq!(
        released,
        Released {
            terminated: vec![],
            already_gone: vec!["i-0aaa".into(), "i-0bbb".into()],
            launch_templates_deleted: vec![],
        }
    );
    assert_eq!(
        [&both, &first, &second, &live, &templates].map(|r| r.num_calls()),
        [1; 5]
    );
}

#[tokio::test]
async fn terminate_finds_tagged_instances_the_caller_missed_and_deletes_templates() {
    let known = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0aaa"])
        .then_output(|| terminating("i-0aaa", InstanceStateName::Running));
    let page_1 = describe_live(None, &["i-0fff"]);
    let page_2 = describe_live(Some("page-2"), &[]);
    let missed = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0fff"])
        .then_output(|| terminating("i-0fff", InstanceStateName::Pending));
    let templates = describe_templates(&["lt-1", "lt-2"]);
    let delete_1 = mock!(Client::delete_launch_template)
        .match_requests(|r| r.launch_template_id() == Some("lt-1"))
        .then_output(|| DeleteLaunchTemplateOutput::builder().build());
    let delete_2 = mock!(Client::delete_launch_template)
        .match_requests(|r| r.launch_template_id() == Some("lt-2"))
        .then_http_response(|| {
            ec2_error(
                400,
                "InvalidLaunchTemplateId.NotFound",
                "The specified launch template, with template ID lt-2, does not exist.",
            )
        });
    let rules = [
        &known, &page_1, &page_2, &missed, &templates, &delete_1, &delete_2,
    ];
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        rules,
        no_retries
    ));
    let released = nodes
        .terminate(
            &["i-0aaa".into(), "i-0aaa".into()],
            EXECUTION,
            Some(PLATFORM),
        )
        .await
        .unwrap();
    assert_eq!(
        released,
        Released {
            terminated: vec!["i-0aaa".into(), "i-0fff".into()],
            already_gone: vec![],
            launch_templates_deleted: vec!["lt-1".into()],
        }
    );
    assert_eq!(rules.map(|r| r.num_calls()), [1; 7]);
}

#[tokio::test]
async fn terminate_without_ids_goes_by_tag_only() {
    let live = describe_live(None, &[]);
    let templates = describe_templates(&[]);
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&live, &templates],
        no_retries
    ));
    let released = nodes
        .terminate(&[], EXECUTION, Some(PLATFORM))
        .await
        .unwrap();
    assert_eq!(released, Released::default());
}

#[tokio::test]
async fn a_throttled_terminate_is_retryable_and_names_execution_and_instances() {
    let rule = mock!(Client::terminate_instances)
        .then_http_response(|| ec2_error(503, "RequestLimitExceeded", "Request limit exceeded."));
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = nodes
        .terminate(&["i-0aaa".into()], EXECUTION, None)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "EC2 TerminateInstances execution {EXECUTION}: instances i-0aaa: throttled"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreadable_tag_query_is_an_error_after_the_known_ids_went() {
    let known = mock!(Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == ["i-0aaa"])
        .then_output(|| terminating("i-0aaa", InstanceStateName::Running));
    let live = mock!(Client::describe_instances).then_http_response(|| {
        ec2_error(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        )
    });
    let nodes = Nodes::new(mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&known, &live],
        no_retries
    ));
    let err = nodes
        .terminate(&["i-0aaa".into()], EXECUTION, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Ec2Error::Call(CallError {
                op: "DescribeInstances",
                transient: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(known.num_calls(), 1);
}
