//! Which node images are due: the requested ones, or a CPU image per OS
//! and architecture of the platforms (and the NVIDIA kind where one was
//! baked before), each unless its recorded image is usable and young; and,
//! first, the end of any bake instance a lost bake left behind.

use super::{Error, Settings};
use crate::Env;
use ebfleet_aws::ssm::SsmError;
use ebfleet_core::capacity::AmiSource;
use ebfleet_core::node_image::{
    self, due as is_due, targets_for, ImageKind, ImageTarget, BAKE_DEADLINE_SECS, TAG_BAKE,
};
use serde::{Deserialize, Serialize};

/// What the execution was started with: `{}` on the schedule,
/// `{"force": true}` when the node binary changes or to bake every image
/// again, `{"targets": [...]}` for just those (e.g. the NVIDIA kind).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DueInput {
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub targets: Option<Vec<ImageTarget>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DueOutput {
    /// To bake now.
    pub bakes: Vec<ImageTarget>,
    /// Usable and young: left as they are.
    pub fresh: Vec<ImageTarget>,
}

/// The images to bake: the requested targets, or a CPU image per OS and
/// architecture of the platforms and the NVIDIA kind of those where one
/// was baked before (it is first baked on request); each unless its recorded image is usable and younger than
/// `node_image::REBAKE_AFTER_SECS` (`force`: all of them).
pub async fn due(env: &Env, settings: &Settings, input: DueInput) -> Result<DueOutput, Error> {
    terminate_lost_bakes(env, settings).await?;
    // Each target with its recorded image (`None`: none, or forced).
    let mut targets = Vec::new();
    match input.targets {
        Some(requested) => {
            for t in requested {
                let t = ImageTarget::new(&t.os, t.arch, t.kind)?;
                let current = match input.force {
                    true => None,
                    false => recorded(env, settings, &t).await?,
                };
                targets.push((t, current));
            }
        }
        None => {
            let cpu = targets_for(
                settings
                    .platforms
                    .platforms
                    .iter()
                    .map(|p| (p.os.as_str(), p.arch())),
            );
            for t in cpu {
                let nvidia = ImageTarget {
                    kind: ImageKind::Nvidia,
                    ..t.clone()
                };
                let current = match input.force {
                    true => None,
                    false => recorded(env, settings, &t).await?,
                };
                targets.push((t, current));
                // Baked once on request, the NVIDIA kind is kept fresh.
                if let Some(image) = recorded(env, settings, &nvidia).await? {
                    targets.push((nvidia, Some(image)));
                }
            }
        }
    }
    let mut out = DueOutput {
        bakes: Vec::new(),
        fresh: Vec::new(),
    };
    for (target, current) in targets {
        let current = if input.force { None } else { current };
        if is_due(current.as_ref(), &target, env.now()) {
            out.bakes.push(target);
        } else {
            out.fresh.push(target);
        }
    }
    tracing::info!(bakes = ?out.bakes, fresh = ?out.fresh, "node images due");
    Ok(out)
}

/// A bake instance outlives its bake by this much only when the bake was
/// lost (its Lambda timed out after RunInstances, its clean-up failed
/// every retry): the next bake terminates it.
pub const LOST_BAKE_AFTER_SECS: u64 = BAKE_DEADLINE_SECS + 3600;

/// Terminate the stack's bake instances launched more than
/// [`LOST_BAKE_AFTER_SECS`] ago.
async fn terminate_lost_bakes(env: &Env, settings: &Settings) -> Result<(), Error> {
    let ec2 = |source| Error::Ec2 {
        target: "*".into(),
        source,
    };
    let now = env.now();
    for (id, launched) in env
        .nodes
        .tagged_instances(TAG_BAKE, &settings.stack)
        .await
        .map_err(ec2)?
    {
        if launched.is_some_and(|t| now.saturating_sub(t) > LOST_BAKE_AFTER_SECS) {
            tracing::warn!(instance_id = %id, "a lost bake's instance: terminated");
            env.nodes.terminate_bake(&id).await.map_err(ec2)?;
        }
    }
    Ok(())
}

/// The image the target's parameter names, as EC2 describes it; `None`
/// when there is no parameter or no such image of this account.
async fn recorded(
    env: &Env,
    settings: &Settings,
    target: &ImageTarget,
) -> Result<Option<node_image::ImageFacts>, Error> {
    let parameter = settings.parameter(target)?;
    let ssm_err = |source| Error::Ssm {
        target: target.to_string(),
        source,
    };
    let image_id = match env.ssm.ami_id(&AmiSource::SsmParameter(parameter)).await {
        Ok(id) => id,
        Err(SsmError::ParameterNotFound { .. }) | Err(SsmError::NotAnAmi { .. }) => {
            return Ok(None)
        }
        Err(e) => return Err(ssm_err(e)),
    };
    env.nodes
        .image_facts(&image_id)
        .await
        .map_err(|source| Error::Ec2 {
            target: target.to_string(),
            source,
        })
}
