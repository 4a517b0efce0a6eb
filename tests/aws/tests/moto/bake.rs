//! The bake path against moto, as the bake state machine calls it: which
//! images are due, the bake instance launched from the stock AMI with the
//! bake script, its power-off (the harness stops it, as the script's last
//! line does), CreateImage, the parameter written, the instance terminated;
//! then Capacity making a pool whose launch template boots the baked image,
//! and, once the parameter names an image of the other architecture,
//! the stock AMI again (and the bake itself refusing to record it).

use ebfleet_control::bake::{self, DueInput};
use ebfleet_control::capacity::{self, PoolInput};
use ebfleet_control::env::var;
use ebfleet_control::Env;
use ebfleet_core::build_graph::graph_key;
use ebfleet_core::capacity::ssm_ami_parameter;
use ebfleet_core::names::{ExecutionName, PlatformName};
use ebfleet_core::node_image::{ImageKind, ImageTarget, TAG_BAKE};
use ebfleet_core::userdata::{node_binary_key, BOOTSTRAP_SH};
use ebfleet_core::Arch;
use std::collections::HashMap;

const PLATFORM: &str = "amzn-2023_graviton-3";

struct Stack {
    env: Env,
    bake: bake::Settings,
    capacity: capacity::Settings,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    prefix: String,
}

async fn stack(conf: &ebfleet_aws::SdkConfig) -> Stack {
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let (subnet, sg) = super::ec2::network(&ec2).await;
    let bucket = super::unique("ebfleet-bake").to_lowercase();
    let s3 = aws_sdk_s3::Client::new(conf);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let binary = format!("\x7fELF a stand-in for ebfleet-node on {arch}").into_bytes();
        s3.put_object()
            .bucket(&bucket)
            .key(node_binary_key(arch))
            .metadata("sha256", ebfleet_core::checksum::sha256_hex(&binary))
            .body(binary.into())
            .send()
            .await
            .unwrap();
    }
    let name = super::unique("ebfleet-bake");
    let prefix = format!("/{name}/node-image");
    let vars: HashMap<&str, String> = HashMap::from([
        (var::STACK_NAME, name.clone()),
        (var::NODE_IMAGE_PREFIX, prefix.clone()),
        (var::SECURITY_GROUP_ID, sg),
        (var::SUBNET_IDS, subnet),
        (
            var::INSTANCE_PROFILE_ARN,
            "arn:aws:iam::123456789012:instance-profile/ebfleet-node".into(),
        ),
        (var::NODES_PER_PLATFORM, "2".into()),
    ]);
    let lookup = |n: &str| vars.get(n).cloned();
    Stack {
        env: Env::from_conf(conf, &bucket, "ebfleet-bake-unused"),
        bake: bake::Settings::from_lookup(lookup).unwrap(),
        capacity: capacity::Settings::from_lookup(lookup).unwrap(),
        ec2,
        ssm: aws_sdk_ssm::Client::new(conf),
        prefix,
    }
}

fn target(arch: Arch) -> ImageTarget {
    ImageTarget::new("amzn-2023", arch, ImageKind::Cpu).unwrap()
}

async fn state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let i = &super::instances(ec2, &[id.to_string()]).await[0];
    i.state()
        .and_then(|s| s.name())
        .unwrap()
        .as_str()
        .to_string()
}

async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Option<String> {
    ssm.get_parameter()
        .name(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.parameter().and_then(|p| p.value()).map(str::to_string))
}

/// Launch, power-off, image: what the state machine does up to Record.
async fn bake_until_imaged(s: &Stack, t: ImageTarget) -> bake::Bake {
    let b = bake::launch(&s.env, &s.bake, t).await.unwrap();
    let b = bake::bootstrapped(&s.env, b).await.unwrap();
    assert!(!b.ready, "running: its bootstrap is not done");
    // The bake script's last line.
    s.ec2
        .stop_instances()
        .instance_ids(&b.instance_id)
        .send()
        .await
        .unwrap();
    let b = bake::bootstrapped(&s.env, b).await.unwrap();
    assert!(b.ready, "stopped by itself: its bootstrap succeeded");
    let b = bake::create_image(&s.env, &s.bake, b).await.unwrap();
    let b = bake::image_ready(&s.env, b).await.unwrap();
    assert!(b.ready, "moto's images are available at once");
    b
}

/// The image the launch template of `pool`'s output boots.
async fn template_image(ec2: &aws_sdk_ec2::Client, out: &capacity::PoolOutput) -> String {
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&out.pool.launch_template_id)
        .send()
        .await
        .unwrap();
    versions.launch_template_versions()[0]
        .launch_template_data()
        .and_then(|d| d.image_id())
        .unwrap()
        .to_string()
}

async fn pool(s: &Stack, execution: &str) -> capacity::PoolOutput {
    let execution: ExecutionName = execution.parse().unwrap();
    let platform: PlatformName = PLATFORM.parse().unwrap();
    let graph = serde_json::json!({
        "execution": execution, "platform": platform, "arch": "aarch64",
        "archspec": "neoverse_v1", "optarch": "GCC:mcpu=neoverse-v1", "modules": []
    });
    s.env
        .store
        .put_bytes(
            &graph_key(&execution, &platform),
            graph.to_string().into_bytes(),
            "application/json",
        )
        .await
        .unwrap();
    capacity::pool(
        &s.env,
        &s.capacity,
        PoolInput {
            execution,
            platform,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_baked_image_boots_the_pool_and_one_of_the_wrong_architecture_never_does() {
    let Some(conf) = super::config("bake").await else {
        return;
    };
    let s = stack(&conf).await;
    let arm = target(Arch::Aarch64);
    let arm_parameter = format!("{}/amzn-2023/aarch64/cpu", s.prefix);
    let stock_arm = parameter(
        &s.ssm,
        ssm_ami_parameter("amzn-2023", Arch::Aarch64).unwrap(),
    )
    .await
    .expect("moto serves the public AL2023 parameters");

    // Nothing recorded yet: every image of the shipped platforms is due.
    let due = bake::due(&s.env, &s.bake, DueInput::default())
        .await
        .unwrap();
    assert!(due.bakes.contains(&arm) && due.fresh.is_empty(), "{due:?}");

    // The bake instance: the stock AMI, the bake script, locked down, tagged.
    let b = bake::launch(&s.env, &s.bake, arm.clone()).await.unwrap();
    let i = &super::instances(&s.ec2, std::slice::from_ref(&b.instance_id)).await[0];
    assert_eq!(i.image_id(), Some(stock_arm.as_str()));
    assert_eq!(b.source_ami, stock_arm);
    assert_eq!(i.instance_type().unwrap().as_str(), "m7g.large");
    assert!(i.key_name().is_none() && i.iam_instance_profile().is_none());
    assert!(i
        .tags()
        .iter()
        .any(|t| t.key() == Some(TAG_BAKE) && t.value() == Some(s.bake.stack.as_str())));
    let user_data = s
        .ec2
        .describe_instance_attribute()
        .instance_id(&b.instance_id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let script =
        super::lambdas::decode_user_data(user_data.user_data().and_then(|u| u.value()).unwrap());
    assert!(script.contains(BOOTSTRAP_SH) && script.ends_with("poweroff\n"));
    assert!(script.contains("export EBFLEET_ARCHSPEC='aarch64'"));
    bake::clean_up(&s.env, b.clone()).await.unwrap();
    assert_eq!(state(&s.ec2, &b.instance_id).await, "terminated");

    // A bake to the end: image, parameter, instance terminated.
    let b = bake_until_imaged(&s, arm.clone()).await;
    let image_id = b.image_id.clone().unwrap();
    let b = bake::record(&s.env, &s.bake, b).await.unwrap();
    assert_eq!(b.parameter.as_deref(), Some(arm_parameter.as_str()));
    assert_eq!(
        parameter(&s.ssm, &arm_parameter).await.as_deref(),
        Some(image_id.as_str())
    );
    bake::clean_up(&s.env, b.clone()).await.unwrap();
    assert_eq!(state(&s.ec2, &b.instance_id).await, "terminated");
    let facts = s.env.nodes.image_facts(&image_id).await.unwrap();
    assert!(facts.is_some_and(|f| f.available), "a recorded image stays");
    let due = bake::due(&s.env, &s.bake, DueInput::default())
        .await
        .unwrap();
    assert!(due.fresh.contains(&arm), "just baked: not due ({due:?})");

    // Capacity: the pool's launch template boots the baked image.
    let out = pool(&s, &super::unique("bake-run")).await;
    assert_eq!(template_image(&s.ec2, &out).await, image_id);

    // An x86_64 image: the bake refuses to record it for aarch64 (and
    // deregisters it at clean-up); put there by hand, Capacity falls back
    // to the stock AMI.
    let x86 = bake_until_imaged(&s, target(Arch::X86_64)).await;
    let x86_image = x86.image_id.clone().unwrap();
    let wrong = bake::Bake {
        target: arm.clone(),
        ..x86.clone()
    };
    let err = bake::record(&s.env, &s.bake, wrong).await.unwrap_err();
    assert!(err.to_string().contains("x86_64"), "{err}");
    assert_eq!(
        parameter(&s.ssm, &arm_parameter).await.as_deref(),
        Some(image_id.as_str())
    );
    s.ssm
        .put_parameter()
        .name(&arm_parameter)
        .value(&x86_image)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let out = pool(&s, &super::unique("bake-run")).await;
    assert_eq!(template_image(&s.ec2, &out).await, stock_arm);
    bake::clean_up(&s.env, x86.clone()).await.unwrap();
    assert_eq!(state(&s.ec2, &x86.instance_id).await, "terminated");
    assert_eq!(
        s.env.nodes.image_facts(&x86_image).await.unwrap(),
        None,
        "deregistered"
    );
}
