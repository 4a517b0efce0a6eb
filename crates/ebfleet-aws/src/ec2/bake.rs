//! Node images on EC2: the bake instance (launched, watched, terminated),
//! the image made from it, and what EC2 says of an image
//! ([`ImageFacts`], which `ebfleet_core::node_image::check` judges).
//!
//! The bake instance stops itself when its bootstrap succeeded
//! (`InstanceInitiatedShutdownBehavior = stop`), so the image is made from
//! a stopped, consistent disk. It has no key pair, no instance profile
//! (the bootstrap needs no AWS API: its downloads are public or presigned)
//! and IMDSv2 only.

use super::{code, error, Ec2Error, Nodes};
use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, Image,
    ImageState, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceStateName,
    InstanceType, ResourceType, ShutdownBehavior, Tag, TagSpecification, VolumeType,
};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use ebfleet_core::capacity::is_ami_id;
use ebfleet_core::node_image::ImageFacts;
use ebfleet_core::Arch;
use std::collections::BTreeMap;

/// The bake instance's root volume: the image's root snapshot, and so the
/// smallest root volume a node launched from it may have (nodes get
/// `ebfleet_core::capacity::MIN_ROOT_VOLUME_GIB` or more).
pub const BAKE_ROOT_VOLUME_GIB: i32 = ebfleet_core::capacity::MIN_ROOT_VOLUME_GIB as i32;

/// One bake instance to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakeLaunch {
    /// The stock AMI.
    pub ami_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_id: String,
    /// Gzipped bake script (`ebfleet_core::node_image::bake_user_data`).
    pub user_data: Vec<u8>,
    /// On the instance and its volume.
    pub tags: BTreeMap<String, String>,
}

/// Where a bake instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BakeInstance {
    /// Pending, running or stopping: the bootstrap is not done.
    Busy,
    /// Stopped by its own power-off: the bootstrap succeeded.
    Stopped,
    /// Terminated, shutting down, or unknown to EC2.
    Gone,
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(resource: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

impl Nodes {
    /// Launch one bake instance (on demand, stop on shutdown, IMDSv2 only,
    /// no key pair, no instance profile, an encrypted gp3 root volume on
    /// the AMI's root device). Returns its id.
    pub async fn launch_bake(&self, bake: &BakeLaunch) -> Result<String, Ec2Error> {
        let what = format!("node image bake from {}", bake.ami_id);
        if !is_ami_id(&bake.ami_id) {
            return Err(Ec2Error::InvalidLaunch {
                platform: what,
                reason: format!("'{}' is not an AMI id", bake.ami_id),
            });
        }
        let root = self.root_device(&bake.ami_id, &what).await?;
        let out = self
            .client
            .run_instances()
            .image_id(&bake.ami_id)
            .instance_type(InstanceType::from(bake.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .subnet_id(&bake.subnet_id)
            .security_group_ids(&bake.security_group_id)
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Stop)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(&root.name)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(BAKE_ROOT_VOLUME_GIB)
                            .volume_type(VolumeType::Gp3)
                            .encrypted(true)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .user_data(aws_smithy_types::base64::encode(&bake.user_data))
            .tag_specifications(tag_spec(ResourceType::Instance, &bake.tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &bake.tags))
            .send()
            .await
            .map_err(|e| error(what.clone(), "RunInstances", e))?;
        let id = out
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .ok_or_else(|| Ec2Error::InvalidLaunch {
                platform: what,
                reason: "RunInstances answered without an instance".into(),
            })?;
        tracing::info!(instance_id = id, ami = %bake.ami_id, "bake instance launched");
        Ok(id.to_string())
    }

    /// Where the bake instance `instance_id` is.
    pub async fn bake_instance(&self, instance_id: &str) -> Result<BakeInstance, Ec2Error> {
        let out = match self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if code(&e).is_some_and(|c| c.starts_with("InvalidInstanceID")) => {
                return Ok(BakeInstance::Gone)
            }
            Err(e) => {
                return Err(error(
                    format!("instance {instance_id}"),
                    "DescribeInstances",
                    e,
                ))
            }
        };
        let state = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .and_then(|i| i.state())
            .and_then(|s| s.name());
        Ok(match state {
            Some(InstanceStateName::Pending)
            | Some(InstanceStateName::Running)
            | Some(InstanceStateName::Stopping) => BakeInstance::Busy,
            Some(InstanceStateName::Stopped) => BakeInstance::Stopped,
            _ => BakeInstance::Gone,
        })
    }

    /// CreateImage of the stopped `instance_id`, tagged (image and
    /// snapshots) with `tags`. Returns the image id.
    pub async fn create_image(
        &self,
        instance_id: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, Ec2Error> {
        let out = self
            .client
            .create_image()
            .instance_id(instance_id)
            .name(name)
            .description("ebfleet build node: stock AMI with bootstrap.sh already run")
            .tag_specifications(tag_spec(ResourceType::Image, tags))
            .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
            .send()
            .await
            .map_err(|e| error(format!("instance {instance_id}"), "CreateImage", e))?;
        let id =
            out.image_id()
                .filter(|id| is_ami_id(id))
                .ok_or_else(|| Ec2Error::InvalidLaunch {
                    platform: format!("image of instance {instance_id}"),
                    reason: "CreateImage answered without an AMI id".into(),
                })?;
        tracing::info!(image_id = id, instance_id, "image requested");
        Ok(id.to_string())
    }

    /// What EC2 says of `image_id` among this account's own images
    /// (`Owners = self`): `None` when it is not one of them (deregistered,
    /// never ours, not an AMI id).
    pub async fn image_facts(&self, image_id: &str) -> Result<Option<ImageFacts>, Ec2Error> {
        if !is_ami_id(image_id) {
            return Ok(None);
        }
        let out = match self
            .client
            .describe_images()
            .owners("self")
            .image_ids(image_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if code(&e).is_some_and(|c| c.starts_with("InvalidAMIID")) => return Ok(None),
            Err(e) => return Err(error(format!("AMI {image_id}"), "DescribeImages", e)),
        };
        Ok(out
            .images()
            .iter()
            .find(|i| i.image_id() == Some(image_id))
            .map(facts))
    }

    /// The instances tagged `tag = value` that are not terminated, with
    /// their launch time (unix seconds): what a lost bake may have left.
    pub async fn tagged_instances(
        &self,
        tag: &str,
        value: &str,
    ) -> Result<Vec<(String, Option<u64>)>, Ec2Error> {
        let what = format!("instances tagged {tag}={value}");
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{tag}"))
                    .values(value)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(what.clone(), "DescribeInstances", e))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                let state = i.state().and_then(|s| s.name());
                if matches!(
                    state,
                    Some(InstanceStateName::Terminated) | Some(InstanceStateName::ShuttingDown)
                ) {
                    continue;
                }
                if let Some(id) = i.instance_id() {
                    let launched = i.launch_time().and_then(|t| u64::try_from(t.secs()).ok());
                    out.push((id.to_string(), launched));
                }
            }
        }
        Ok(out)
    }

    /// Terminate the bake instance; one already gone counts as done, so
    /// every path of the bake can call it, twice.
    pub async fn terminate_bake(&self, instance_id: &str) -> Result<(), Ec2Error> {
        match self
            .client
            .terminate_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(instance_id, "bake instance terminated");
                Ok(())
            }
            Err(e) if code(&e).is_some_and(|c| c.starts_with("InvalidInstanceID")) => Ok(()),
            Err(e) => Err(error(
                format!("instance {instance_id}"),
                "TerminateInstances",
                e,
            )),
        }
    }

    /// Deregister an image a failed bake made, with its snapshots; one
    /// already gone counts as done.
    pub async fn deregister_image(&self, image_id: &str) -> Result<(), Ec2Error> {
        match self
            .client
            .deregister_image()
            .image_id(image_id)
            .delete_associated_snapshots(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e).is_some_and(|c| c.starts_with("InvalidAMIID")) => Ok(()),
            Err(e) => Err(error(format!("AMI {image_id}"), "DeregisterImage", e)),
        }
    }

    /// This account's images tagged `tag = value` (e.g. every image a
    /// stack baked), with their facts.
    pub async fn tagged_images(&self, tag: &str, value: &str) -> Result<Vec<ImageFacts>, Ec2Error> {
        let out = self
            .client
            .describe_images()
            .owners("self")
            .filters(
                Filter::builder()
                    .name(format!("tag:{tag}"))
                    .values(value)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| error(format!("images tagged {tag}={value}"), "DescribeImages", e))?;
        Ok(out
            .images()
            .iter()
            .filter(|i| i.image_id().is_some())
            .map(facts)
            .collect())
    }
}

/// What `image` says of itself, in the domain's terms.
fn facts(image: &Image) -> ImageFacts {
    let arch = match image.architecture() {
        Some(ArchitectureValues::X8664) => Some(Arch::X86_64),
        Some(ArchitectureValues::Arm64) => Some(Arch::Aarch64),
        _ => None,
    };
    let created = image
        .creation_date()
        .and_then(|d| DateTime::from_str(d, Format::DateTime).ok())
        .and_then(|d| u64::try_from(d.secs()).ok());
    let tags = image
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    ImageFacts {
        image_id: image.image_id().unwrap_or_default().to_string(),
        arch,
        available: image.state() == Some(&ImageState::Available),
        failed: matches!(
            image.state(),
            Some(ImageState::Failed | ImageState::Error | ImageState::Invalid)
        ),
        created,
        tags,
    }
}

#[cfg(test)]
mod tests;
