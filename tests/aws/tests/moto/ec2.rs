use aws_sdk_ec2::types::LaunchTemplateHttpTokensState;
use ebfleet_aws::ec2::{LaunchContext, Nodes};
use ebfleet_aws::ssm::Ssm;
use ebfleet_core::arch::Arch;
use ebfleet_core::capacity::{self, AmiSource, BatchNeeds, CapacityOptions, LaunchSpec};
use ebfleet_core::platform::Platforms;
use ebfleet_core::step::{BatchKey, CommandStatus, Step, StepCommand};

#[tokio::test]
async fn ec2_instance_types_of_a_family() {
    let Some(conf) = super::config("ec2_instance_types_of_a_family").await else {
        return;
    };
    let types = Nodes::from_conf(&conf)
        .instance_types(&["c7g".into()])
        .await
        .unwrap();
    assert!(!types.is_empty());
    for t in &types {
        assert!(t.name.starts_with("c7g."), "{}", t.name);
        assert_eq!(t.family, "c7g");
        assert_eq!(t.arch, Arch::Aarch64, "{}", t.name);
        assert!(t.vcpus > 0 && t.memory_mib > 0, "{t:?}");
    }
}

/// A VPC, a subnet and a security group for the launch, as the stack makes
/// them.
async fn network(ec2: &aws_sdk_ec2::Client) -> (String, String) {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.42.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_string();
    let sg = ec2
        .create_security_group()
        .group_name(super::unique("ebfleet-node"))
        .description("ebfleet build nodes")
        .vpc_id(&vpc_id)
        .send()
        .await
        .unwrap();
    (subnet_id, sg.group_id().unwrap().to_string())
}

#[tokio::test]
async fn ec2_launch_send_and_terminate() {
    let Some(conf) = super::config("ec2_launch_send_and_terminate").await else {
        return;
    };
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let nodes = Nodes::from_conf(&conf);
    let ssm = Ssm::from_conf(&conf);

    let platforms = Platforms::default_set().unwrap();
    let platform = platforms
        .platforms
        .iter()
        .find(|p| p.name == "amzn-2023_graviton-3")
        .unwrap();
    let catalog = nodes.instance_types(&platform.families).await.unwrap();
    let needs = BatchNeeds::for_batch(10, platform);
    let plan = capacity::choose(platform, &catalog, &needs, &CapacityOptions::default()).unwrap();
    let ami = AmiSource::for_platform(platform, None).unwrap();
    let ami_id = ssm.ami_id(&ami).await.unwrap();
    let execution = super::unique("run");
    let spec = LaunchSpec::new(&execution, platform, "b0001", &plan, ami).unwrap();
    let (subnet_id, security_group_id) = network(&ec2).await;
    let ctx = LaunchContext {
        ami_id,
        instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/ebfleet-node".into(),
        security_group_id,
        subnet_ids: vec![subnet_id],
        user_data: Some("#!/bin/bash\ntrue\n".into()),
    };

    let launched = nodes.launch(&spec, &ctx).await.unwrap();
    let ids = launched.instance_ids();
    assert_eq!(ids.len(), spec.instance_count as usize, "{launched:?}");
    for i in &launched.instances {
        assert!(
            spec.instance_types.contains(&i.instance_type) || i.instance_type.is_empty(),
            "{i:?} not in {:?}",
            spec.instance_types
        );
    }

    // moto does not apply the template's metadata options to fleet
    // instances: check them on the template itself.
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&launched.launch_template_id)
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    let md = data.metadata_options().unwrap();
    assert_eq!(
        md.http_tokens(),
        Some(&LaunchTemplateHttpTokensState::Required)
    );
    assert_eq!(md.http_put_response_hop_limit(), Some(1));

    // SSM Run Command is a stub in moto: it reports Success.
    let batch = BatchKey::new(
        &execution.parse().unwrap(),
        &platform.name.parse().unwrap(),
        1,
    );
    let command = StepCommand::new(Step::Sync, "ebfleet-moto".parse().unwrap(), batch);
    let command_id = ssm
        .send(&command, &ids[0], "ebfleet-step", "steps/out")
        .await
        .unwrap();
    assert_eq!(
        ssm.status(&command_id, &ids[0]).await.unwrap(),
        CommandStatus::Success
    );

    let first = nodes
        .terminate(&ids, &execution, Some(&platform.name))
        .await
        .unwrap();
    let mut terminated = first.terminated.clone();
    terminated.sort();
    terminated.dedup();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(terminated, expected, "{first:?}");
    assert_eq!(
        first.launch_templates_deleted,
        vec![launched.launch_template_id.clone()]
    );
    let second = nodes
        .terminate(&ids, &execution, Some(&platform.name))
        .await
        .unwrap();
    assert!(second.terminated.is_empty(), "{second:?}");
    let mut gone = second.already_gone.clone();
    gone.sort();
    assert_eq!(gone, expected, "{second:?}");
    assert!(second.launch_templates_deleted.is_empty(), "{second:?}");
}
