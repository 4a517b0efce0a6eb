//! The AMI a node boots: its root device, so that the launch template can
//! size the root volume (the device name differs between AMIs: `/dev/xvda`
//! on Amazon Linux, `/dev/sda1` on Ubuntu, Debian and Rocky).

use super::{code, error, Ec2Error, Nodes};

/// What the launch needs to know about an AMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDevice {
    /// E.g. `/dev/xvda`.
    pub name: String,
    /// The size of the AMI's root snapshot, in GiB, when EC2 says: the
    /// smallest root volume it can be launched with.
    pub snapshot_gib: Option<u32>,
}

impl Nodes {
    /// The root device of `ami_id` (DescribeImages). An AMI EC2 does not
    /// know, or one without a root device, is [`Ec2Error::InvalidLaunch`].
    pub async fn root_device(&self, ami_id: &str, platform: &str) -> Result<RootDevice, Ec2Error> {
        let invalid = |reason: String| Ec2Error::InvalidLaunch {
            platform: platform.to_string(),
            reason,
        };
        let out = match self.client.describe_images().image_ids(ami_id).send().await {
            Ok(out) => out,
            Err(e) => {
                if let Some(c) = code(&e).filter(|c| c.starts_with("InvalidAMIID")) {
                    return Err(invalid(format!("AMI {ami_id}: {c}")));
                }
                return Err(error(
                    format!("platform {platform}: AMI {ami_id}"),
                    "DescribeImages",
                    e,
                ));
            }
        };
        let image = out
            .images()
            .iter()
            .find(|i| i.image_id() == Some(ami_id))
            .ok_or_else(|| {
                invalid(format!(
                    "AMI {ami_id} does not exist or is not shared with this account"
                ))
            })?;
        let name = image
            .root_device_name()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(format!("AMI {ami_id} has no root device name")))?
            .to_string();
        let snapshot_gib = image
            .block_device_mappings()
            .iter()
            .find(|m| m.device_name() == Some(name.as_str()))
            .and_then(|m| m.ebs())
            .and_then(|e| e.volume_size())
            .and_then(|s| u32::try_from(s).ok());
        Ok(RootDevice { name, snapshot_gib })
    }
}
