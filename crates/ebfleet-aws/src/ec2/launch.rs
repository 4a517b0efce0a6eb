//! Launching one build node: a launch template that fixes the node's
//! security settings, root volume and first-boot user data, and an EC2
//! Fleet `instant` request over the chosen types and subnets.
//!
//! The template is made per launch rather than taken from the stack's
//! `NodeLaunchTemplate`: a fleet request cannot override user data, and
//! each launch's differs (the platform's settings, a fresh presigned URL).

use super::image::RootDevice;
use super::{code, error, is_fallback_code, Ec2Error, Nodes, SERVICE};
use crate::call::CallError;
use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, InstanceType as Ec2InstanceType,
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, OnDemandOptionsRequest, RequestLaunchTemplateData,
    ResourceType, ShutdownBehavior, SpotAllocationStrategy as Ec2SpotAllocationStrategy,
    SpotOptionsRequest, Tag, TagSpecification, TargetCapacitySpecificationRequest, VolumeType,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ebfleet_core::capacity::{
    is_ami_id, LaunchSpec, Purchase, SpotAllocationStrategy, TAG_BATCH, TAG_PLATFORM,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// EC2's limit on user data, before base64.
pub const MAX_USER_DATA_BYTES: usize = ebfleet_core::userdata::MAX_USER_DATA_BYTES;

/// What the launch needs from the account besides the spec: the resolved
/// AMI, the network and the instance profile (from the stack's outputs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchContext {
    /// The spec's [`AmiSource`](ebfleet_core::capacity::AmiSource), resolved.
    pub ami_id: String,
    /// For SSM and the bucket.
    pub instance_profile_arn: String,
    /// No inbound rule: nodes are reached through SSM only.
    pub security_group_id: String,
    /// The fleet may launch in any of them; each type is offered in each.
    pub subnet_ids: Vec<String>,
    /// What the instance runs at first boot, as the instance reads it
    /// (e.g. gzip, see `ebfleet_core::userdata`); base64-encoded here.
    pub user_data: Option<Vec<u8>>,
}

/// One launched instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchedInstance {
    pub instance_id: String,
    /// As EC2 reports it; empty when it does not.
    pub instance_type: String,
}

/// What [`Nodes::launch`] started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launched {
    pub instances: Vec<LaunchedInstance>,
    /// How they were bought: the spec's purchase, or on-demand
    /// (`SpotUnavailable`) when the fallback launched them.
    pub purchase: Purchase,
    pub fleet_id: Option<String>,
    pub launch_template_id: String,
    /// The attempt that got nothing before the fallback, if there was one.
    pub failed_attempt: Option<AttemptFailure>,
}

impl Launched {
    pub fn instance_ids(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|i| i.instance_id.clone())
            .collect()
    }
}

/// A fleet request that launched nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    /// `spot` or `on-demand`.
    pub market: String,
    /// EC2's error codes, without repeats (empty when the fleet gave none).
    pub codes: Vec<String>,
    /// The first error's message, with the instance type it was about.
    pub detail: String,
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes = if self.codes.is_empty() {
            "no error reported".to_string()
        } else {
            self.codes.join(", ")
        };
        write!(f, "{}: {codes}", self.market)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl AttemptFailure {
    /// Whether spot found no capacity (or hit a spot-only limit), so that
    /// asking on-demand may succeed. A fleet that reports no error at all
    /// and no instance is treated the same.
    fn worth_on_demand(&self) -> bool {
        self.codes.is_empty() || self.codes.iter().any(|c| is_fallback_code(c))
    }
}

fn market(purchase: &Purchase) -> &'static str {
    if purchase.is_spot() {
        "spot"
    } else {
        "on-demand"
    }
}

/// Characters EC2 allows in a launch template name.
fn template_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "().-/_".contains(c)
}

/// `ebfleet-<platform>-<batch>-<hex time>`: readable in the console, unique
/// per call (a retried Capacity invocation gets a new one; Release deletes
/// them all by tag), at most 128 characters of EC2's alphabet.
fn template_name(spec: &LaunchSpec) -> String {
    let tag = |k: &str| spec.tags.get(k).map(String::as_str).unwrap_or("");
    let readable: String = format!("ebfleet-{}-{}", tag(TAG_PLATFORM), tag(TAG_BATCH))
        .chars()
        .map(|c| if template_name_char(c) { c } else { '_' })
        .take(100)
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{readable}-{nanos:x}")
}

fn tags(spec: &LaunchSpec) -> Vec<Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn spot_strategy(s: SpotAllocationStrategy) -> Ec2SpotAllocationStrategy {
    match s {
        SpotAllocationStrategy::PriceCapacityOptimized => {
            Ec2SpotAllocationStrategy::PriceCapacityOptimized
        }
    }
}

impl Nodes {
    /// Launch `spec.instance_count` node(s) of `spec`'s platform.
    ///
    /// Looks up the AMI's root device, creates the launch template (IMDSv2
    /// required, hop limit 1, no key pair, terminate on shutdown, the spec's
    /// root volume on the AMI's root device, the context's user data, the
    /// spec's tags on the template, the instance and its volumes), then an
    /// EC2 Fleet `instant` request with
    /// every type × subnet as overrides. Spot uses `price-capacity-optimized`;
    /// on-demand uses `prioritized` in the spec's order (best first). When a
    /// spot request launches nothing because of capacity or a spot-only
    /// limit, the spec's [`LaunchSpec::on_demand_fallback`] is asked once,
    /// with the same template.
    ///
    /// The template stays: [`Nodes::terminate`] deletes it with the
    /// instances, and also when this fails.
    /// The launch template of `spec`'s nodes (for a pool): IMDSv2
    /// required, hop limit 1, no key pair, terminate on shutdown, the spec's
    /// root volume on the AMI's root device, the context's user data, the
    /// spec's first type, its tags on the template, the instances and their
    /// volumes. Checked first: types, subnets, AMI id, user data size, root
    /// volume against the AMI's snapshot.
    pub async fn launch_template(
        &self,
        spec: &LaunchSpec,
        ctx: &LaunchContext,
    ) -> Result<String, Ec2Error> {
        let platform = spec.tags.get(TAG_PLATFORM).cloned().unwrap_or_default();
        let invalid = |reason: String| Ec2Error::InvalidLaunch {
            platform: platform.clone(),
            reason,
        };
        if spec.instance_types.is_empty() {
            return Err(invalid("the spec has no instance type".into()));
        }
        if ctx.subnet_ids.is_empty() {
            return Err(invalid("no subnet to launch in".into()));
        }
        if !is_ami_id(&ctx.ami_id) {
            return Err(invalid(format!("'{}' is not an AMI id", ctx.ami_id)));
        }
        if let Some(ud) = &ctx.user_data {
            if ud.len() > MAX_USER_DATA_BYTES {
                return Err(invalid(format!(
                    "user data of {} bytes is over EC2's {MAX_USER_DATA_BYTES}",
                    ud.len()
                )));
            }
        }

        let root = self.root_device(&ctx.ami_id, &platform).await?;
        let size = spec.root_volume.size_gib;
        if let Some(snapshot) = root.snapshot_gib.filter(|s| *s > size) {
            return Err(invalid(format!(
                "AMI {} needs a root volume of at least {snapshot} GiB, the spec has {size} GiB",
                ctx.ami_id
            )));
        }
        self.create_launch_template(spec, ctx, &root, &platform)
            .await
    }

    pub async fn launch(
        &self,
        spec: &LaunchSpec,
        ctx: &LaunchContext,
    ) -> Result<Launched, Ec2Error> {
        let platform = spec.tags.get(TAG_PLATFORM).cloned().unwrap_or_default();
        let invalid = |reason: String| Ec2Error::InvalidLaunch {
            platform: platform.clone(),
            reason,
        };
        if spec.instance_types.is_empty() {
            return Err(invalid("the spec has no instance type".into()));
        }
        if ctx.subnet_ids.is_empty() {
            return Err(invalid("no subnet to launch in".into()));
        }
        if !is_ami_id(&ctx.ami_id) {
            return Err(invalid(format!("'{}' is not an AMI id", ctx.ami_id)));
        }
        if let Some(ud) = &ctx.user_data {
            if ud.len() > MAX_USER_DATA_BYTES {
                return Err(invalid(format!(
                    "user data of {} bytes is over EC2's {MAX_USER_DATA_BYTES}",
                    ud.len()
                )));
            }
        }

        let root = self.root_device(&ctx.ami_id, &platform).await?;
        let size = spec.root_volume.size_gib;
        if let Some(snapshot) = root.snapshot_gib.filter(|s| *s > size) {
            return Err(invalid(format!(
                "AMI {} needs a root volume of at least {snapshot} GiB, the spec has {size} GiB",
                ctx.ami_id
            )));
        }
        let template_id = self
            .create_launch_template(spec, ctx, &root, &platform)
            .await?;
        let first = match self
            .create_fleet(spec, ctx, &template_id, &platform)
            .await?
        {
            Ok(launched) => return Ok(launched),
            Err(failure) => failure,
        };
        let fallback = match spec.on_demand_fallback() {
            Some(fallback) if first.worth_on_demand() => fallback,
            _ => {
                return Err(Ec2Error::NoCapacity {
                    platform,
                    attempts: vec![first],
                })
            }
        };
        tracing::warn!(%platform, failed = %first, "no spot capacity, asking on-demand");
        match self
            .create_fleet(&fallback, ctx, &template_id, &platform)
            .await?
        {
            Ok(mut launched) => {
                launched.failed_attempt = Some(first);
                Ok(launched)
            }
            Err(second) => Err(Ec2Error::NoCapacity {
                platform,
                attempts: vec![first, second],
            }),
        }
    }

    /// The template's id.
    async fn create_launch_template(
        &self,
        spec: &LaunchSpec,
        ctx: &LaunchContext,
        root: &RootDevice,
        platform: &str,
    ) -> Result<String, Ec2Error> {
        let name = template_name(spec);
        let tags = tags(spec);
        let metadata = &spec.metadata;
        let volume = &spec.root_volume;
        let data = RequestLaunchTemplateData::builder()
            .image_id(&ctx.ami_id)
            // A pool's overrides pick among all the types; this one is the
            // group's default (and what an emulator launches).
            .set_instance_type(
                spec.instance_types
                    .first()
                    .map(|t| Ec2InstanceType::from(t.as_str())),
            )
            .iam_instance_profile(
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .arn(&ctx.instance_profile_arn)
                    .build(),
            )
            .security_group_ids(&ctx.security_group_id)
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(if metadata.http_tokens_required {
                        LaunchTemplateHttpTokensState::Required
                    } else {
                        LaunchTemplateHttpTokensState::Optional
                    })
                    .http_endpoint(if metadata.http_endpoint_enabled {
                        LaunchTemplateInstanceMetadataEndpointState::Enabled
                    } else {
                        LaunchTemplateInstanceMetadataEndpointState::Disabled
                    })
                    .http_put_response_hop_limit(
                        i32::try_from(metadata.http_put_response_hop_limit).unwrap_or(1),
                    )
                    .build(),
            )
            // A node that powers itself off is gone, not a stopped volume
            // left to pay for.
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .set_key_name(spec.key_name.clone())
            .block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name(&root.name)
                    .ebs(
                        LaunchTemplateEbsBlockDeviceRequest::builder()
                            .volume_size(i32::try_from(volume.size_gib).unwrap_or(i32::MAX))
                            .volume_type(VolumeType::from(volume.volume_type.as_str()))
                            .encrypted(volume.encrypted)
                            .delete_on_termination(volume.delete_on_termination)
                            .build(),
                    )
                    .build(),
            )
            .set_user_data(ctx.user_data.as_ref().map(aws_smithy_types::base64::encode))
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags.clone()))
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(tags.clone()))
                    .build(),
            )
            .build();
        let out = self
            .client
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(tags))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                error(
                    format!("platform {platform}: launch template {name}"),
                    "CreateLaunchTemplate",
                    e,
                )
            })?;
        let id = out
            .launch_template()
            .and_then(|t| t.launch_template_id())
            .ok_or_else(|| CallError {
                service: SERVICE,
                op: "CreateLaunchTemplate",
                resource: format!("platform {platform}: launch template {name}"),
                detail: "the answer has no launch template id".into(),
                transient: false,
            })?;
        tracing::info!(platform, template = %name, id, "created launch template");
        Ok(id.to_string())
    }

    /// One fleet request: `Ok(Ok(_))` launched, `Ok(Err(_))` nothing
    /// launched for lack of capacity (or with errors only in the fleet's
    /// answer), `Err(_)` the call itself failed otherwise.
    async fn create_fleet(
        &self,
        spec: &LaunchSpec,
        ctx: &LaunchContext,
        template_id: &str,
        platform: &str,
    ) -> Result<Result<Launched, AttemptFailure>, Ec2Error> {
        let on_demand = !spec.purchase.is_spot();
        let mut config = FleetLaunchTemplateConfigRequest::builder().launch_template_specification(
            FleetLaunchTemplateSpecificationRequest::builder()
                .launch_template_id(template_id)
                .version("$Latest")
                .build(),
        );
        for (rank, instance_type) in spec.instance_types.iter().enumerate() {
            for subnet in &ctx.subnet_ids {
                let o = FleetLaunchTemplateOverridesRequest::builder()
                    .instance_type(Ec2InstanceType::from(instance_type.as_str()))
                    .subnet_id(subnet);
                // Priority only means something to `prioritized`.
                let o = if on_demand {
                    o.priority(rank as f64)
                } else {
                    o
                };
                config = config.overrides(o.build());
            }
        }
        let count = i32::try_from(spec.instance_count.max(1)).unwrap_or(1);
        let mut request = self
            .client
            .create_fleet()
            .r#type(FleetType::Instant)
            .launch_template_configs(config.build())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Fleet)
                    .set_tags(Some(tags(spec)))
                    .build(),
            );
        request = match &spec.purchase {
            Purchase::Spot {
                allocation_strategy,
            } => request
                .target_capacity_specification(
                    TargetCapacitySpecificationRequest::builder()
                        .total_target_capacity(count)
                        .default_target_capacity_type(DefaultTargetCapacityType::Spot)
                        .build(),
                )
                .spot_options(
                    SpotOptionsRequest::builder()
                        .allocation_strategy(spot_strategy(*allocation_strategy))
                        .build(),
                ),
            Purchase::OnDemand { .. } => request
                .target_capacity_specification(
                    TargetCapacitySpecificationRequest::builder()
                        .total_target_capacity(count)
                        .default_target_capacity_type(DefaultTargetCapacityType::OnDemand)
                        .build(),
                )
                .on_demand_options(
                    OnDemandOptionsRequest::builder()
                        .allocation_strategy(FleetOnDemandAllocationStrategy::Prioritized)
                        .build(),
                ),
        };
        let market = market(&spec.purchase);
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) => {
                if let Some(c) = code(&e).filter(|c| is_fallback_code(c)) {
                    return Ok(Err(AttemptFailure {
                        market: market.into(),
                        codes: vec![c.to_string()],
                        detail: e
                            .as_service_error()
                            .and_then(|s| s.message())
                            .unwrap_or_default()
                            .to_string(),
                    }));
                }
                return Err(error(format!("platform {platform}"), "CreateFleet", e));
            }
        };
        Ok(fleet_result(&out, spec, template_id, platform, market))
    }
}

fn fleet_result(
    out: &CreateFleetOutput,
    spec: &LaunchSpec,
    template_id: &str,
    platform: &str,
    market: &str,
) -> Result<Launched, AttemptFailure> {
    let instances: Vec<LaunchedInstance> = out
        .instances()
        .iter()
        .flat_map(|i| {
            let instance_type = i.instance_type().map(|t| t.as_str()).unwrap_or("");
            i.instance_ids().iter().map(move |id| LaunchedInstance {
                instance_id: id.clone(),
                instance_type: instance_type.to_string(),
            })
        })
        .collect();
    let mut codes: Vec<String> = Vec::new();
    for e in out.errors() {
        let c = e.error_code().unwrap_or("Unknown").to_string();
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    if !instances.is_empty() {
        if !codes.is_empty() {
            tracing::info!(platform, ?codes, "fleet launched, some pools refused");
        }
        tracing::info!(platform, market, instances = ?instances, fleet = ?out.fleet_id(), "launched");
        return Ok(Launched {
            instances,
            purchase: spec.purchase.clone(),
            fleet_id: out.fleet_id().map(str::to_string),
            launch_template_id: template_id.to_string(),
            failed_attempt: None,
        });
    }
    let detail = out
        .errors()
        .first()
        .map(|e| {
            let on = e
                .launch_template_and_overrides()
                .and_then(|l| l.overrides())
                .and_then(|o| o.instance_type())
                .map(|t| format!("{}: ", t.as_str()))
                .unwrap_or_default();
            format!("{on}{}", e.error_message().unwrap_or(""))
        })
        .unwrap_or_default();
    Err(AttemptFailure {
        market: market.to_string(),
        codes,
        detail,
    })
}
