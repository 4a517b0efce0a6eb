//! The bake of node images, one state of `statemachine/bake.asl.json` a
//! call: which images are due ([`due`], which also terminates what a lost
//! bake left), then per image: boot the stock
//! AMI with the bake script ([`launch`]), wait until the instance has
//! stopped itself ([`bootstrapped`]), image it ([`create_image`]), wait
//! until the image is available ([`image_ready`]), check it and write its
//! id to the stack's parameter ([`record`]), and on every path terminate
//! the instance ([`clean_up`], which also removes an image a failed bake
//! left unrecorded); at the end, [`summary`] fails the execution when an
//! image was not baked.
//!
//! Nothing the bake instance does is believed: only EC2's own answers
//! (the instance stopped, the image's architecture and state) count, and
//! the tags that make an image usable are written here, not by the
//! instance. See `ebfleet_core::node_image` for what the image holds and
//! when Capacity uses it.
//!
//! Settings: [`var::STACK_NAME`], [`var::NODE_IMAGE_PREFIX`],
//! [`var::SECURITY_GROUP_ID`], [`var::SUBNET_IDS`] (required),
//! [`var::PLATFORMS`] (optional).

mod due;

pub use due::{due, DueInput, DueOutput, LOST_BAKE_AFTER_SECS};

use crate::capacity::{self, node, parse_subnets};
use crate::env::{self, var, EnvError, Lookup};
use crate::failure::{Failure, Kind};
use crate::Env;
use ebfleet_aws::ec2::{BakeInstance, BakeLaunch, Ec2Error};
use ebfleet_aws::ssm::SsmError;
use ebfleet_core::capacity::{ssm_ami_parameter, AmiError, AmiSource};
use ebfleet_core::node_image::{
    self, bake_instance_type, bake_user_data, check, image_name, parameter_name, ImageTarget,
    NodeImageError, Unusable, BAKE_DEADLINE_SECS, MAX_IMAGE_AGE_SECS, TAG_BAKE,
};
use ebfleet_core::platform::{PlatformError, Platforms};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An image older than this, of a target just baked again, is deregistered:
/// no pool still launches from it (Capacity takes images up to
/// [`MAX_IMAGE_AGE_SECS`] old, and a pool launches from its template only
/// during its run, far less than the week of margin).
pub const PRUNE_AFTER_SECS: u64 = MAX_IMAGE_AGE_SECS + 7 * 24 * 3600;

/// One state's input: `{"due": {...}}`, `{"launch": {...}}`, ...
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Due(DueInput),
    Launch(ImageTarget),
    Bootstrapped(Bake),
    CreateImage(Bake),
    ImageReady(Bake),
    Record(Bake),
    CleanUp(Bake),
    /// The Map's results: a [`Bake`] per image baked, `{"failed": true,
    /// "error", "cause"}` per image not.
    Summary(Vec<serde_json::Value>),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SummaryOutput {
    /// The parameters written.
    pub recorded: Vec<String>,
}

/// One bake as it goes through the states.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Bake {
    pub target: ImageTarget,
    pub instance_id: String,
    pub source_ami: String,
    /// Unix seconds after which the bake gives up (instance terminated,
    /// no image).
    pub deadline: u64,
    #[serde(default)]
    pub image_id: Option<String>,
    /// For the state machine's Choice: the instance has stopped itself /
    /// the image is available.
    #[serde(default)]
    pub ready: bool,
    /// The parameter the image was recorded in, once it is.
    #[serde(default)]
    pub parameter: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("environment variable {var}: {reason}")]
    Setting { var: &'static str, reason: String },
    #[error("platforms: {0}")]
    Platforms(#[from] PlatformError),
    #[error(transparent)]
    Target(#[from] NodeImageError),
    #[error("node image {target}: {source}")]
    Ami { target: String, source: AmiError },
    #[error("node image {target}: {source}")]
    Ssm { target: String, source: SsmError },
    #[error("node image {target}: {source}")]
    Ec2 { target: String, source: Ec2Error },
    #[error("node image {target}: {source}")]
    NodeBinary {
        target: String,
        source: Box<capacity::Error>,
    },
    #[error("node image {target}: bake instance {instance_id} {what}; no image is made")]
    BakeFailed {
        target: String,
        instance_id: String,
        what: String,
    },
    #[error("node image {target}: {source}; not recorded")]
    Unusable { target: String, source: Unusable },
    #[error("{recorded} node image(s) baked; not baked: {failed}")]
    NotBaked { recorded: usize, failed: String },
}

impl Failure for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Env(_)
            | Error::Setting { .. }
            | Error::Platforms(_)
            | Error::Target(_)
            | Error::Ami { .. } => Kind::Invalid,
            Error::Ssm { source, .. } => source.kind(),
            Error::Ec2 { source, .. } => source.kind(),
            Error::NodeBinary { source, .. } => source.kind(),
            Error::BakeFailed { .. } | Error::Unusable { .. } | Error::NotBaked { .. } => {
                Kind::Failed
            }
        }
    }
}

/// What the bake needs from the stack.
#[derive(Debug, Clone)]
pub struct Settings {
    pub stack: String,
    pub prefix: String,
    pub platforms: Platforms,
    pub security_group_id: String,
    pub subnet_ids: Vec<String>,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(EnvError::Missing(name));
        let prefix =
            env::node_image_prefix(&get)?.ok_or(EnvError::Missing(var::NODE_IMAGE_PREFIX))?;
        let subnets = parse_subnets(&required(var::SUBNET_IDS)?).map_err(|e| Error::Setting {
            var: var::SUBNET_IDS,
            reason: e.to_string(),
        })?;
        Ok(Settings {
            stack: required(var::STACK_NAME)?.trim().to_string(),
            prefix,
            platforms: env::platforms(&get)?,
            security_group_id: required(var::SECURITY_GROUP_ID)?,
            subnet_ids: subnets,
        })
    }

    fn parameter(&self, target: &ImageTarget) -> Result<String, Error> {
        Ok(parameter_name(&self.prefix, target)?)
    }
}

pub async fn handle(
    env: &Env,
    settings: &Settings,
    input: Input,
) -> Result<serde_json::Value, Error> {
    fn json<T: Serialize>(v: Result<T, Error>) -> Result<serde_json::Value, Error> {
        v.map(|o| serde_json::to_value(o).unwrap_or_default())
    }
    match input {
        Input::Due(i) => json(due(env, settings, i).await),
        Input::Launch(t) => json(launch(env, settings, t).await),
        Input::Bootstrapped(b) => json(bootstrapped(env, b).await),
        Input::CreateImage(b) => json(create_image(env, settings, b).await),
        Input::ImageReady(b) => json(image_ready(env, b).await),
        Input::Record(b) => json(record(env, settings, b).await),
        Input::CleanUp(b) => json(clean_up(env, b).await),
        Input::Summary(results) => json(summary(results)),
    }
}

/// The execution's outcome: an error naming every image not baked.
pub fn summary(results: Vec<serde_json::Value>) -> Result<SummaryOutput, Error> {
    let mut recorded = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match serde_json::from_value::<Bake>(r.clone()) {
            Ok(Bake {
                parameter: Some(p), ..
            }) => recorded.push(p),
            _ => failed.push(
                r.get("cause")
                    .and_then(|c| c.as_str())
                    .unwrap_or("no cause given")
                    .chars()
                    .take(300)
                    .collect::<String>(),
            ),
        }
    }
    if failed.is_empty() {
        Ok(SummaryOutput { recorded })
    } else {
        Err(Error::NotBaked {
            recorded: recorded.len(),
            failed: failed.join("; "),
        })
    }
}

/// Boot the stock AMI of `target` with the bake script.
pub async fn launch(env: &Env, settings: &Settings, target: ImageTarget) -> Result<Bake, Error> {
    let target = ImageTarget::new(&target.os, target.arch, target.kind)?;
    let t = target.to_string();
    let stock = ssm_ami_parameter(&target.os, target.arch).map_err(|source| Error::Ami {
        target: t.clone(),
        source,
    })?;
    let source_ami = env
        .ssm
        .ami_id(&AmiSource::SsmParameter(stock.to_string()))
        .await
        .map_err(|source| Error::Ssm {
            target: t.clone(),
            source,
        })?;
    let download = node::download(&env.store, &format!("node image {t}"), target.arch)
        .await
        .map_err(|source| Error::NodeBinary {
            target: t.clone(),
            source: Box::new(source),
        })?;
    let user_data = bake_user_data(&target, download)?;
    let now = env.now();
    let tags = BTreeMap::from([
        (TAG_BAKE.to_string(), settings.stack.clone()),
        (
            "Name".to_string(),
            format!("ebfleet-bake-{}", image_name(&target, now)),
        ),
    ]);
    // Any of the stack's subnets will do; the first is as good as any.
    let bake = BakeLaunch {
        ami_id: source_ami.clone(),
        instance_type: bake_instance_type(target.arch).to_string(),
        subnet_id: settings.subnet_ids[0].clone(),
        security_group_id: settings.security_group_id.clone(),
        user_data: user_data.gzip,
        tags,
    };
    let instance_id = env
        .nodes
        .launch_bake(&bake)
        .await
        .map_err(|source| Error::Ec2 {
            target: t.clone(),
            source,
        })?;
    Ok(Bake {
        target,
        instance_id,
        source_ami,
        deadline: now + BAKE_DEADLINE_SECS,
        image_id: None,
        ready: false,
        parameter: None,
    })
}

fn failed(bake: &Bake, what: impl Into<String>) -> Error {
    Error::BakeFailed {
        target: bake.target.to_string(),
        instance_id: bake.instance_id.clone(),
        what: what.into(),
    }
}

fn ec2_err(bake: &Bake) -> impl Fn(Ec2Error) -> Error + '_ {
    move |source| Error::Ec2 {
        target: bake.target.to_string(),
        source,
    }
}

/// `ready` once the instance has stopped itself (its bootstrap
/// succeeded). An instance gone, or still running at the deadline, fails
/// the bake.
pub async fn bootstrapped(env: &Env, mut bake: Bake) -> Result<Bake, Error> {
    let state = env
        .nodes
        .bake_instance(&bake.instance_id)
        .await
        .map_err(ec2_err(&bake))?;
    match state {
        BakeInstance::Stopped => bake.ready = true,
        BakeInstance::Gone => return Err(failed(&bake, "is gone before its bootstrap finished")),
        BakeInstance::Busy if env.now() > bake.deadline => {
            return Err(failed(
                &bake,
                format!(
                    "is still running {} minutes after launch: its bootstrap failed or hangs \
                     (its console output says which)",
                    BAKE_DEADLINE_SECS / 60
                ),
            ))
        }
        BakeInstance::Busy => bake.ready = false,
    }
    Ok(bake)
}

/// CreateImage of the stopped instance, with the tags that make it usable.
pub async fn create_image(env: &Env, settings: &Settings, mut bake: Bake) -> Result<Bake, Error> {
    let tags = node_image::tags(&bake.target, &settings.stack, &bake.source_ami);
    let name = image_name(&bake.target, env.now());
    let id = env
        .nodes
        .create_image(&bake.instance_id, &name, &tags)
        .await
        .map_err(ec2_err(&bake))?;
    bake.image_id = Some(id);
    bake.ready = false;
    Ok(bake)
}

/// `ready` once EC2 says the image is available; a failed image, or one
/// still pending at the deadline, fails the bake.
pub async fn image_ready(env: &Env, mut bake: Bake) -> Result<Bake, Error> {
    let Some(image_id) = bake.image_id.clone() else {
        return Err(failed(&bake, "has no image to wait for"));
    };
    let facts = env
        .nodes
        .image_facts(&image_id)
        .await
        .map_err(ec2_err(&bake))?;
    bake.ready = facts.as_ref().is_some_and(|f| f.available);
    if facts.as_ref().is_some_and(|f| f.failed) {
        return Err(failed(
            &bake,
            format!("was imaged, but image {image_id} failed"),
        ));
    }
    if !bake.ready && env.now() > bake.deadline {
        return Err(failed(
            &bake,
            format!("was imaged, but image {image_id} is still pending"),
        ));
    }
    Ok(bake)
}

/// Check the image as Capacity will (architecture first) and write its id
/// to the target's parameter; then deregister the stack's images of the
/// target older than [`PRUNE_AFTER_SECS`].
pub async fn record(env: &Env, settings: &Settings, mut bake: Bake) -> Result<Bake, Error> {
    let Some(image_id) = bake.image_id.clone() else {
        return Err(failed(&bake, "has no image to record"));
    };
    let t = bake.target.to_string();
    let facts = env
        .nodes
        .image_facts(&image_id)
        .await
        .map_err(ec2_err(&bake))?
        .ok_or_else(|| {
            failed(
                &bake,
                format!("was imaged, but image {image_id} is not there"),
            )
        })?;
    check(&facts, &bake.target, env.now()).map_err(|source| Error::Unusable {
        target: t.clone(),
        source,
    })?;
    let parameter = settings.parameter(&bake.target)?;
    env.ssm
        .put_image_id(&parameter, &image_id)
        .await
        .map_err(|source| Error::Ssm {
            target: t.clone(),
            source,
        })?;
    bake.parameter = Some(parameter);
    prune(env, settings, &bake, &image_id).await;
    Ok(bake)
}

/// Old images of the target are only storage: a failure to remove one is
/// logged, never a failed bake.
async fn prune(env: &Env, settings: &Settings, bake: &Bake, keep: &str) {
    let images = match env.nodes.tagged_images(TAG_BAKE, &settings.stack).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "listing old node images");
            return;
        }
    };
    let now = env.now();
    for old in images {
        let same_target = old.arch == Some(bake.target.arch)
            && old.tags.get(node_image::TAG_OS) == Some(&bake.target.os)
            && old.tags.get(node_image::TAG_KIND).map(String::as_str)
                == Some(bake.target.kind.as_str());
        let too_old = old
            .created
            .is_some_and(|c| now.saturating_sub(c) > PRUNE_AFTER_SECS);
        if same_target && too_old && old.image_id != keep {
            match env.nodes.deregister_image(&old.image_id).await {
                Ok(()) => tracing::info!(image_id = %old.image_id, "old node image deregistered"),
                Err(e) => {
                    tracing::warn!(image_id = %old.image_id, error = %e, "deregistering an old node image")
                }
            }
        }
    }
}

/// Every path's last state: terminate the bake instance, and deregister
/// an image the bake made but did not record (a failed bake leaves
/// nothing behind).
pub async fn clean_up(env: &Env, bake: Bake) -> Result<Bake, Error> {
    env.nodes
        .terminate_bake(&bake.instance_id)
        .await
        .map_err(ec2_err(&bake))?;
    if let (Some(image_id), None) = (&bake.image_id, &bake.parameter) {
        env.nodes
            .deregister_image(image_id)
            .await
            .map_err(ec2_err(&bake))?;
        tracing::info!(%image_id, "unrecorded image of a failed bake deregistered");
    }
    Ok(bake)
}

#[cfg(test)]
mod tests;
