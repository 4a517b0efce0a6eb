use aws_sdk_ec2::types::LaunchTemplateHttpTokensState;
use ebfleet_aws::autoscaling::{PoolSpec, PoolState, Pools};
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

/// A VPC, a subnet and a security group for the pool, as the stack makes
/// them.
pub(crate) async fn network(ec2: &aws_sdk_ec2::Client) -> (String, String) {
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

/// A platform's pool as Capacity makes it (a launch template and an empty
/// group over it), its user data renewed and the group grown to one node
/// as the scheduler does, a step sent to that node, and everything released
/// as Release does (the group, then the instances and templates by id and
/// by tag), twice.
#[tokio::test]
async fn ec2_pool_launch_send_and_terminate() {
    let Some(conf) = super::config("ec2_pool_launch_send_and_terminate").await else {
        return;
    };
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let nodes = Nodes::from_conf(&conf);
    let pools = Pools::from_conf(&conf);
    let ssm = Ssm::from_conf(&conf);

    let platforms = Platforms::default_set().unwrap();
    let platform = platforms
        .platforms
        .iter()
        .find(|p| p.name == "amzn-2023_graviton-3")
        .unwrap();
    let catalog = nodes.instance_types(&platform.families).await.unwrap();
    let needs = BatchNeeds::for_unit(platform);
    let plan = capacity::choose(platform, &catalog, &needs, &CapacityOptions::default()).unwrap();
    let ami = AmiSource::for_platform(platform, None).unwrap();
    let ami_id = ssm.ami_id(&ami).await.unwrap();
    let execution = super::unique("run");
    let spec = LaunchSpec::new(&execution, platform, "pool", &plan, ami).unwrap();
    let (subnet_id, security_group_id) = network(&ec2).await;
    let ctx = LaunchContext {
        ami_id: ami_id.clone(),
        instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/ebfleet-node".into(),
        security_group_id,
        subnet_ids: vec![subnet_id],
        user_data: Some("#!/bin/bash\ntrue\n".into()),
    };

    let template_id = nodes.launch_template(&spec, &ctx).await.unwrap();
    let versions = ec2
        .describe_launch_template_versions()
        .launch_template_id(&template_id)
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
    assert_eq!(data.key_name(), None);
    assert_eq!(
        data.instance_type().map(|t| t.as_str()),
        Some(spec.instance_types[0].as_str())
    );

    let pool = PoolSpec {
        name: format!("ebfleet-{execution}-{}", platform.name),
        launch_template_id: template_id.clone(),
        instance_types: spec.instance_types.clone(),
        subnet_ids: ctx.subnet_ids.clone(),
        max_size: 4,
        tags: spec.tags.clone(),
        on_demand: !spec.purchase.is_spot(),
    };
    pools.create(&pool).await.unwrap();
    // A retried Capacity finds the group there: no error, nothing changes.
    pools.create(&pool).await.unwrap();
    assert_eq!(
        pools.describe(&pool.name).await.unwrap(),
        Some(PoolState::default()),
        "a pool starts empty"
    );

    // The scheduler renews the nodes' user data (a new `$Latest` version);
    // the group launches from it.
    let renewed = "#!/bin/bash\necho renewed\n";
    nodes
        .renew_user_data(&template_id, renewed.as_bytes())
        .await
        .unwrap();
    let latest = ec2
        .describe_launch_template_versions()
        .launch_template_id(&template_id)
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let latest = &latest.launch_template_versions()[0];
    assert_eq!(latest.version_number(), Some(2));
    let user_data = latest
        .launch_template_data()
        .and_then(|d| d.user_data())
        .unwrap();
    assert_eq!(
        aws_smithy_types::base64::decode(user_data).unwrap(),
        renewed.as_bytes()
    );

    // moto launches at once, of the template's type, with the group's tags.
    pools.set_desired(&pool.name, 1).await.unwrap();
    let state = pools.describe(&pool.name).await.unwrap().unwrap();
    assert_eq!(state.desired, 1);
    let ids: Vec<String> = state
        .members
        .iter()
        .map(|m| m.instance_id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "{state:?}");
    // The group names the member's type: the scheduler prices its time.
    assert_eq!(
        state.members[0].instance_type.as_deref(),
        Some(spec.instance_types[0].as_str()),
        "{state:?}"
    );
    let described = super::instances(&ec2, &ids).await;
    let instance = &described[0];
    assert_eq!(instance.instance_id(), Some(ids[0].as_str()));
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some(spec.instance_types[0].as_str())
    );
    assert_eq!(instance.image_id(), Some(ami_id.as_str()));
    for (k, v) in &spec.tags {
        assert!(
            instance
                .tags()
                .iter()
                .any(|t| t.key() == Some(k) && t.value() == Some(v)),
            "{k}={v} in {:?}",
            instance.tags()
        );
    }

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

    // Release: the group (a missing one is already gone), then the
    // instances and the templates.
    pools.delete(&pool.name).await.unwrap();
    assert_eq!(pools.describe(&pool.name).await.unwrap(), None);
    pools.delete(&pool.name).await.unwrap();
    let first = nodes
        .terminate(&ids, &execution, Some(&platform.name))
        .await
        .unwrap();
    let mut released = first.terminated.clone();
    released.extend(first.already_gone.iter().cloned());
    released.sort();
    released.dedup();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(released, expected, "{first:?}");
    assert_eq!(first.launch_templates_deleted, vec![template_id.clone()]);
    let after = super::instances(&ec2, &ids).await;
    let state = after[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    assert_eq!(state.as_deref(), Some("terminated"));
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
