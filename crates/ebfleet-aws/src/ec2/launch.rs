//! The launch template of a platform's pool: the node's security
//! settings, root volume, first-boot user data and default instance type,
//! from which the pool's Auto Scaling group (`crate::autoscaling`) launches
//! every node over the ranked types and the subnets.
//!
//! The template is made per pool rather than taken from the stack's
//! `NodeLaunchTemplate`: the group's overrides cannot change user data, and
//! each pool's differs (the platform's settings, a fresh presigned URL).

use super::image::RootDevice;
use super::{error, Ec2Error, Nodes, SERVICE};
use crate::call::CallError;
use aws_sdk_ec2::types::{
    InstanceType as Ec2InstanceType, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType,
    ShutdownBehavior, Tag, TagSpecification, VolumeType,
};
use ebfleet_core::capacity::{is_ami_id, LaunchSpec, TAG_BATCH, TAG_PLATFORM};
use serde::{Deserialize, Serialize};
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
    /// The pool may launch in any of them.
    pub subnet_ids: Vec<String>,
    /// What the instance runs at first boot, as the instance reads it
    /// (e.g. gzip, see `ebfleet_core::userdata`); base64-encoded here.
    pub user_data: Option<Vec<u8>>,
}

/// Characters EC2 allows in a launch template name.
fn template_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "().-/_".contains(c)
}

/// `ebfleet-<platform>-<batch tag>-<hex time>` (a pool's batch tag is
/// `pool`): readable in the console, unique per call (a retried Capacity
/// invocation gets a new one; Release deletes them all by tag), at most 128
/// characters of EC2's alphabet.
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

impl Nodes {
    /// The launch template of `spec`'s nodes (for a pool): IMDSv2
    /// required, hop limit 1, no key pair, terminate on shutdown, the spec's
    /// root volume on the AMI's root device, the context's user data, the
    /// spec's first type, its tags on the template, the instances and their
    /// volumes. Checked first: types, subnets, AMI id, user data size, root
    /// volume against the AMI's snapshot; nothing is created when one fails.
    /// Returns the template's id.
    ///
    /// The template stays: [`Nodes::terminate`] deletes the execution's
    /// templates by tag.
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

    /// A new version of a pool's launch template with `user_data` (what
    /// the pool launches next: it follows `$Latest`). The node's download
    /// of `ebfleet-node` is presigned and expires; a pool that grows for
    /// days needs it renewed.
    pub async fn renew_user_data(
        &self,
        launch_template_id: &str,
        user_data: &[u8],
    ) -> Result<(), Ec2Error> {
        if user_data.len() > MAX_USER_DATA_BYTES {
            return Err(Ec2Error::InvalidLaunch {
                platform: launch_template_id.to_string(),
                reason: format!(
                    "user data of {} bytes is over EC2's {MAX_USER_DATA_BYTES}",
                    user_data.len()
                ),
            });
        }
        self.client
            .create_launch_template_version()
            .launch_template_id(launch_template_id)
            .source_version("$Latest")
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .user_data(aws_smithy_types::base64::encode(user_data))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                error(
                    format!("launch template {launch_template_id}"),
                    "CreateLaunchTemplateVersion",
                    e,
                )
            })?;
        tracing::info!(
            template = launch_template_id,
            "renewed the nodes' user data"
        );
        Ok(())
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
}
