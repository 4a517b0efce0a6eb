//! A platform's node pool as an EC2 Auto Scaling group: one group per
//! platform and execution, of the platform's instance types
//! (mixed-instances policy: spot, price-capacity-optimized, capacity
//! rebalancing), from the launch template Capacity made. The scheduler
//! grows it by raising the desired capacity and shrinks it by terminating a
//! chosen idle node and lowering the desired capacity in one call; new
//! instances are protected from scale-in, so the group itself never picks a
//! busy node to terminate. Release deletes the group with its instances.

use crate::call::{call_error, CallError};
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, Filter, InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides,
    LaunchTemplateSpecification, LifecycleState, MixedInstancesPolicy, Tag,
};
use aws_sdk_autoscaling::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const SERVICE: &str = "Auto Scaling";

/// What a pool is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// The group's name.
    pub name: String,
    pub launch_template_id: String,
    /// Best first; the first is also the template's own type.
    pub instance_types: Vec<String>,
    pub subnet_ids: Vec<String>,
    pub max_size: u32,
    /// Tags of the group, copied to its instances and their volumes.
    pub tags: BTreeMap<String, String>,
    /// Buy on-demand rather than spot.
    pub on_demand: bool,
}

/// One instance of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMember {
    pub instance_id: String,
    /// `Pending`, `InService`, ...
    pub lifecycle: String,
    /// Its instance type (`Instance.InstanceType`), when the group says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// A pool as the group reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    pub desired: u32,
    /// Instances not on their way out (terminating ones left out).
    pub members: Vec<PoolMember>,
}

/// The groups of one account's Auto Scaling.
#[derive(Debug, Clone)]
pub struct Pools {
    client: Client,
}

/// Whether an error says the group is not there (any more).
fn is_missing<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ValidationError")
        && e.message()
            .is_some_and(|m| m.contains("not found") || m.contains("does not exist"))
}

impl Pools {
    pub fn new(client: Client) -> Self {
        Pools { client }
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Pools::new(Client::new(config))
    }

    fn policy(spec: &PoolSpec) -> MixedInstancesPolicy {
        let template = LaunchTemplateSpecification::builder()
            .launch_template_id(&spec.launch_template_id)
            .version("$Latest")
            .build();
        let mut lt = LaunchTemplate::builder().launch_template_specification(template);
        for t in &spec.instance_types {
            lt = lt.overrides(LaunchTemplateOverrides::builder().instance_type(t).build());
        }
        MixedInstancesPolicy::builder()
            .launch_template(lt.build())
            .instances_distribution(
                InstancesDistribution::builder()
                    .on_demand_base_capacity(0)
                    .on_demand_percentage_above_base_capacity(if spec.on_demand { 100 } else { 0 })
                    .on_demand_allocation_strategy("prioritized")
                    .spot_allocation_strategy("price-capacity-optimized")
                    .build(),
            )
            .build()
    }

    /// Create the pool, empty; an existing group of the same name (a
    /// retried Capacity) is left as it is.
    pub async fn create(&self, spec: &PoolSpec) -> Result<(), CallError> {
        let mut req = self
            .client
            .create_auto_scaling_group()
            .auto_scaling_group_name(&spec.name)
            .mixed_instances_policy(Self::policy(spec))
            .min_size(0)
            .max_size(spec.max_size as i32)
            .desired_capacity(0)
            .vpc_zone_identifier(spec.subnet_ids.join(","))
            .capacity_rebalance(true)
            .new_instances_protected_from_scale_in(true);
        for (k, v) in &spec.tags {
            req = req.tags(
                Tag::builder()
                    .resource_id(&spec.name)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .value(v)
                    .propagate_at_launch(true)
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(call_error(
                SERVICE,
                "CreateAutoScalingGroup",
                &spec.name,
                e,
                &[],
            )),
        }
    }

    /// The pool's desired capacity and members; `None` when there is no such
    /// group.
    pub async fn describe(&self, name: &str) -> Result<Option<PoolState>, CallError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| call_error(SERVICE, "DescribeAutoScalingGroups", name, e, &[]))?;
        let Some(g) = out.auto_scaling_groups().first() else {
            return Ok(None);
        };
        let leaving = |s: &LifecycleState| {
            let s = s.as_str();
            s.starts_with("Terminat") || s.starts_with("Detach") || s.starts_with("Standby")
        };
        Ok(Some(PoolState {
            desired: g.desired_capacity().unwrap_or(0).max(0) as u32,
            members: g
                .instances()
                .iter()
                .filter(|i| !i.lifecycle_state().is_some_and(leaving))
                .filter_map(|i| {
                    Some(PoolMember {
                        instance_id: i.instance_id()?.to_string(),
                        lifecycle: i
                            .lifecycle_state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        instance_type: i.instance_type().map(str::to_string),
                    })
                })
                .collect(),
        }))
    }

    /// Raise (or set) the desired capacity.
    pub async fn set_desired(&self, name: &str, desired: u32) -> Result<(), CallError> {
        self.client
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(desired as i32)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| call_error(SERVICE, "SetDesiredCapacity", name, e, &[]))?;
        Ok(())
    }

    /// Terminate `instance_id` and lower the desired capacity by one, so the
    /// group does not replace it. An instance no longer in the group is
    /// already retired.
    pub async fn retire(&self, instance_id: &str) -> Result<(), CallError> {
        match self
            .client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_missing) => Ok(()),
            Err(e) => Err(call_error(
                SERVICE,
                "TerminateInstanceInAutoScalingGroup",
                instance_id,
                e,
                &[],
            )),
        }
    }

    /// Buy what the pool launches from now on on-demand (spot did not
    /// come): the same policy with 100% on-demand.
    pub async fn use_on_demand(&self, spec: &PoolSpec) -> Result<(), CallError> {
        let spec = PoolSpec {
            on_demand: true,
            ..spec.clone()
        };
        self.client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&spec.name)
            .mixed_instances_policy(Self::policy(&spec))
            .send()
            .await
            .map_err(|e| call_error(SERVICE, "UpdateAutoScalingGroup", &spec.name, e, &[]))?;
        Ok(())
    }

    /// Delete the group and its instances; a missing group is already gone.
    pub async fn delete(&self, name: &str) -> Result<(), CallError> {
        match self
            .client
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_missing) => Ok(()),
            Err(e) => Err(call_error(SERVICE, "DeleteAutoScalingGroup", name, e, &[])),
        }
    }

    /// Every value of tag `key` on a group: the executions that have pools,
    /// for the sweeper.
    pub async fn tag_values(&self, key: &str) -> Result<BTreeSet<String>, CallError> {
        let filter = Filter::builder().name("tag-key").values(key).build();
        let groups = self.groups(filter, format!("tag {key}")).await?;
        Ok(groups
            .iter()
            .flat_map(|g| g.tags())
            .filter(|t| t.key() == Some(key))
            .filter_map(|t| t.value().map(str::to_string))
            .collect())
    }

    /// The names of the groups tagged `key` = `value` (every page).
    pub async fn tagged(&self, key: &str, value: &str) -> Result<Vec<String>, CallError> {
        let filter = Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build();
        let groups = self.groups(filter, format!("tag {key}={value}")).await?;
        Ok(groups
            .iter()
            .filter_map(|g| g.auto_scaling_group_name().map(str::to_string))
            .collect())
    }

    /// Every group `filter` matches, all pages; `what` names them in errors.
    async fn groups(
        &self,
        filter: Filter,
        what: String,
    ) -> Result<Vec<AutoScalingGroup>, CallError> {
        let mut groups = Vec::new();
        let mut pages = self
            .client
            .describe_auto_scaling_groups()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                call_error(SERVICE, "DescribeAutoScalingGroups", what.clone(), e, &[])
            })?;
            groups.extend(page.auto_scaling_groups().iter().cloned());
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests;
