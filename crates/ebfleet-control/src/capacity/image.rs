//! Which AMI a pool's nodes boot: a pinned AMI as it is; otherwise the
//! stack's baked node image of the platform's OS, architecture and kind
//! (`ebfleet_core::node_image`) when EC2 says it is this account's, of the
//! platform's architecture, baked from this build's bootstrap and young
//! enough; otherwise the stock AMI (its public parameter), as before.
//!
//! A missing, stale, foreign or wrong-architecture image, and any error
//! finding out, only costs the nodes a full bootstrap: it is logged and the
//! stock AMI is used, never a failed platform.

use crate::Env;
use ebfleet_aws::ssm::SsmError;
use ebfleet_core::capacity::{AmiSource, CapacityPlan};
use ebfleet_core::node_image::{check, parameter_name, ImageKind, ImageTarget};
use ebfleet_core::platform::Platform;

/// The kind of image `plan`'s types need: the NVIDIA driver when one of
/// them has a GPU.
pub fn kind_for(plan: &CapacityPlan) -> ImageKind {
    let gpus = plan
        .types
        .iter()
        .chain(&plan.on_demand_fallback)
        .map(|c| c.gpus)
        .max()
        .unwrap_or(0);
    ImageKind::for_gpus(gpus)
}

/// `stock` (the platform's [`AmiSource`]), or the baked image that may
/// replace it. `prefix`: the stack's node-image parameters (`None`: no bake
/// path, always `stock`).
pub async fn prefer_node_image(
    env: &Env,
    prefix: Option<&str>,
    platform: &Platform,
    kind: ImageKind,
    stock: AmiSource,
) -> AmiSource {
    let (Some(prefix), AmiSource::SsmParameter(_)) = (prefix, &stock) else {
        return stock;
    };
    let name = platform.name.as_str();
    let target = match ImageTarget::new(&platform.os, platform.arch(), kind) {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(platform = name, reason = %e, "no node image: the stock AMI");
            return stock;
        }
    };
    let fallback = |reason: String| {
        tracing::warn!(platform = name, image = %target, %reason, "node image not used: the stock AMI");
        stock.clone()
    };
    let parameter = match parameter_name(prefix, &target) {
        Ok(p) => p,
        Err(e) => return fallback(e.to_string()),
    };
    let image_id = match env
        .ssm
        .ami_id(&AmiSource::SsmParameter(parameter.clone()))
        .await
    {
        Ok(id) => id,
        Err(SsmError::ParameterNotFound { .. }) => {
            return fallback(format!("{parameter} is not there yet (no bake finished)"))
        }
        Err(e) => return fallback(e.to_string()),
    };
    let facts = match env.nodes.image_facts(&image_id).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return fallback(format!(
                "{parameter} names {image_id}, which is not one of this account's images"
            ))
        }
        Err(e) => return fallback(e.to_string()),
    };
    match check(&facts, &target, env.now()) {
        Ok(()) => {
            tracing::info!(platform = name, image_id = %image_id, image = %target, "launching from the baked node image");
            AmiSource::NodeImage(image_id)
        }
        Err(unusable) => fallback(unusable.to_string()),
    }
}
