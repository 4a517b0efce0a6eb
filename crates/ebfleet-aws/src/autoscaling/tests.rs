//! The pool adapter against `aws-smithy-mocks`: each test checks what is
//! sent (group, policy, sizes, protection, tags) as well as the answer.

use super::*;
use aws_sdk_autoscaling::config::retry::RetryConfig;
use aws_sdk_autoscaling::operation::create_auto_scaling_group::{
    CreateAutoScalingGroupError, CreateAutoScalingGroupOutput,
};
use aws_sdk_autoscaling::operation::delete_auto_scaling_group::{
    DeleteAutoScalingGroupError, DeleteAutoScalingGroupOutput,
};
use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityOutput;
use aws_sdk_autoscaling::operation::terminate_instance_in_auto_scaling_group::{
    TerminateInstanceInAutoScalingGroupError, TerminateInstanceInAutoScalingGroupOutput,
};
use aws_sdk_autoscaling::operation::update_auto_scaling_group::UpdateAutoScalingGroupOutput;
use aws_sdk_autoscaling::types::error::AlreadyExistsFault;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::error::ErrorMetadata;

const GROUP: &str = "ebfleet-run-1-amzn-2023_epyc-gen-4";

fn spec() -> PoolSpec {
    PoolSpec {
        name: GROUP.into(),
        launch_template_id: "lt-0123456789abcdef0".into(),
        instance_types: vec!["c7a.8xlarge".into(), "m7a.8xlarge".into()],
        subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
        max_size: 32,
        tags: [
            ("ebfleet:execution".to_string(), "run-1".to_string()),
            (
                "ebfleet:platform".to_string(),
                "amzn-2023_epyc-gen-4".to_string(),
            ),
        ]
        .into(),
        on_demand: false,
    }
}

fn pools(rules: &[&aws_smithy_mocks::Rule]) -> Pools {
    Pools::new(mock_client!(
        aws_sdk_autoscaling,
        RuleMode::MatchAny,
        rules.iter().copied(),
        |c| c.retry_config(RetryConfig::disabled())
    ))
}

fn validation(message: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationError")
        .message(message)
        .build()
}

#[tokio::test]
async fn a_pool_is_an_empty_protected_spot_group_of_the_platforms_types() {
    let create = mock!(Client::create_auto_scaling_group)
        .match_requests(|r| {
            let p = r.mixed_instances_policy().unwrap();
            let lt = p.launch_template().unwrap();
            let types: Vec<_> = lt
                .overrides()
                .iter()
                .filter_map(|o| o.instance_type())
                .collect();
            let d = p.instances_distribution().unwrap();
            r.auto_scaling_group_name() == Some(GROUP)
                && lt
                    .launch_template_specification()
                    .unwrap()
                    .launch_template_id()
                    == Some("lt-0123456789abcdef0")
                && types == ["c7a.8xlarge", "m7a.8xlarge"]
                && d.on_demand_percentage_above_base_capacity() == Some(0)
                && d.spot_allocation_strategy() == Some("price-capacity-optimized")
                && (r.min_size(), r.max_size(), r.desired_capacity())
                    == (Some(0), Some(32), Some(0))
                && r.vpc_zone_identifier() == Some("subnet-a,subnet-b")
                && r.capacity_rebalance() == Some(true)
                && r.new_instances_protected_from_scale_in() == Some(true)
                && r.tags().len() == 2
                && r.tags()
                    .iter()
                    .all(|t| t.propagate_at_launch() == Some(true))
        })
        .then_output(|| CreateAutoScalingGroupOutput::builder().build());
    pools(&[&create]).create(&spec()).await.unwrap();
    assert_eq!(create.num_calls(), 1);
    // Created before (a retried Capacity): fine.
    let again = mock!(Client::create_auto_scaling_group).then_error(|| {
        CreateAutoScalingGroupError::AlreadyExistsFault(AlreadyExistsFault::builder().build())
    });
    pools(&[&again]).create(&spec()).await.unwrap();
}

#[tokio::test]
async fn describe_lists_members_not_leaving() {
    let member = |id: &str, state: LifecycleState| {
        let b = Instance::builder().instance_id(id).lifecycle_state(state);
        // The group names a member's type (i-2's left out: not said).
        let b = if id == "i-2" {
            b
        } else {
            b.instance_type("c7a.8xlarge")
        };
        b.availability_zone("us-east-1a")
            .health_status("Healthy")
            .protected_from_scale_in(true)
            .build()
    };
    let describe = mock!(Client::describe_auto_scaling_groups)
        .match_requests(|r| r.auto_scaling_group_names() == [GROUP])
        .then_output(move || {
            DescribeAutoScalingGroupsOutput::builder()
                .auto_scaling_groups(
                    AutoScalingGroup::builder()
                        .auto_scaling_group_name(GROUP)
                        .desired_capacity(3)
                        .instances(member("i-1", LifecycleState::InService))
                        .instances(member("i-2", LifecycleState::Pending))
                        .instances(member("i-3", LifecycleState::Terminating))
                        .build(),
                )
                .build()
        });
    let state = pools(&[&describe]).describe(GROUP).await.unwrap().unwrap();
    assert_eq!(state.desired, 3);
    let ids: Vec<_> = state
        .members
        .iter()
        .map(|m| m.instance_id.as_str())
        .collect();
    assert_eq!(ids, ["i-1", "i-2"]);
    let types: Vec<_> = state
        .members
        .iter()
        .map(|m| m.instance_type.as_deref())
        .collect();
    assert_eq!(types, [Some("c7a.8xlarge"), None]);
    let none = mock!(Client::describe_auto_scaling_groups)
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    assert_eq!(pools(&[&none]).describe(GROUP).await.unwrap(), None);
}

#[tokio::test]
async fn grow_retire_fall_back_and_delete() {
    let grow = mock!(Client::set_desired_capacity)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some(GROUP) && r.desired_capacity() == Some(5)
        })
        .then_output(|| SetDesiredCapacityOutput::builder().build());
    let retire = mock!(Client::terminate_instance_in_auto_scaling_group)
        .match_requests(|r| {
            r.instance_id() == Some("i-1") && r.should_decrement_desired_capacity() == Some(true)
        })
        .then_output(|| TerminateInstanceInAutoScalingGroupOutput::builder().build());
    let on_demand = mock!(Client::update_auto_scaling_group)
        .match_requests(|r| {
            let p = r.mixed_instances_policy().unwrap();
            p.instances_distribution()
                .and_then(|d| d.on_demand_percentage_above_base_capacity())
                == Some(100)
                && p.launch_template().unwrap().overrides().len() == 2
        })
        .then_output(|| UpdateAutoScalingGroupOutput::builder().build());
    let delete = mock!(Client::delete_auto_scaling_group)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some(GROUP) && r.force_delete() == Some(true)
        })
        .then_output(|| DeleteAutoScalingGroupOutput::builder().build());
    let p = pools(&[&grow, &retire, &on_demand, &delete]);
    p.set_desired(GROUP, 5).await.unwrap();
    p.retire("i-1").await.unwrap();
    p.use_on_demand(&spec()).await.unwrap();
    p.delete(GROUP).await.unwrap();
    for r in [&grow, &retire, &on_demand, &delete] {
        assert_eq!(r.num_calls(), 1);
    }
}

#[tokio::test]
async fn what_is_already_gone_is_not_an_error_but_other_failures_are() {
    let gone = mock!(Client::terminate_instance_in_auto_scaling_group).then_error(|| {
        TerminateInstanceInAutoScalingGroupError::generic(validation(
            "Instance Id not found - No managed instance found for instance ID: i-1",
        ))
    });
    pools(&[&gone]).retire("i-1").await.unwrap();
    let no_group = mock!(Client::delete_auto_scaling_group).then_error(|| {
        DeleteAutoScalingGroupError::generic(validation("AutoScalingGroup name not found - x"))
    });
    pools(&[&no_group]).delete(GROUP).await.unwrap();
    let denied = mock!(Client::delete_auto_scaling_group).then_error(|| {
        DeleteAutoScalingGroupError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("no")
                .build(),
        )
    });
    let e = pools(&[&denied]).delete(GROUP).await.unwrap_err();
    assert!(!e.transient);
    assert_eq!(
        (e.service, e.op),
        ("Auto Scaling", "DeleteAutoScalingGroup")
    );
    assert!(e.to_string().contains(GROUP), "{e}");
}
