//! Baked node images: a stock AMI on which `data/bootstrap.sh` has already
//! run (OS packages, Lmod, EasyBuild in its venv, the agent), so that a
//! node's first boot only writes its platform's settings.
//!
//! The bake (`ebfleet_control::bake`) boots the stock AMI of one OS and
//! architecture with [`bake_script`] as user data; the script powers the
//! instance off only when the bootstrap succeeded, the bake images the
//! stopped instance, tags the image ([`tags`]) and writes its id to the
//! stack's parameter [`parameter_name`]. Capacity launches from it only
//! when [`check`] accepts what EC2 says of the image: its architecture is
//! the platform's, its tags say the OS and kind asked for and the
//! bootstrap this build carries ([`bootstrap_sha256`]), and it is younger
//! than [`MAX_IMAGE_AGE_SECS`]. Anything else is an [`Unusable`] image, and
//! the node boots the stock AMI as before.
//!
//! Nothing here talks to AWS.

use crate::arch::Arch;
use crate::checksum::sha256_hex;
use crate::userdata::{
    check_size, gzip_script, shell_quote, NodeDownload, NodeSettings, UserData, UserDataError,
    BOOTSTRAP_SH,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The driver install of the [`ImageKind::Nvidia`] image, byte for byte as
/// in this commit's `data/nvidia-driver.sh`.
pub const NVIDIA_DRIVER_SH: &str = include_str!("../data/nvidia-driver.sh");

/// The OSes a node image can be baked for: the one whose driver install is
/// written ([`NVIDIA_DRIVER_SH`]) and whose stock AMI the shipped platforms
/// use.
pub const BAKE_OSES: &[&str] = &["amzn-2023"];

/// An image older than this is not launched from: the schedule bakes
/// weekly, so one missed bake still leaves a usable image, and an image
/// past two weeks is behind the stock AMI's security updates (the stock
/// AMI, with a full bootstrap, is then the better node).
pub const MAX_IMAGE_AGE_SECS: u64 = 14 * 24 * 3600;

/// What the bake instance's shutdown means: only a successful bootstrap
/// powers it off. One still running this long after launch is terminated
/// without an image. A full bootstrap takes minutes (packages, Lmod from
/// source, EasyBuild from PyPI; the driver adds a DKMS build).
pub const BAKE_DEADLINE_SECS: u64 = 90 * 60;

/// The bake instance, per architecture: small, current generation,
/// on-demand (a spot interruption would only cost a retry, but the bake is
/// minutes of a two-vCPU machine).
pub fn bake_instance_type(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "m7i.large",
        Arch::Aarch64 => "m7g.large",
    }
}

pub const TAG_BAKE: &str = "ebfleet:node-image";
pub const TAG_OS: &str = "ebfleet:os";
pub const TAG_KIND: &str = "ebfleet:image-kind";
pub const TAG_BOOTSTRAP_SHA256: &str = "ebfleet:bootstrap-sha256";
pub const TAG_SOURCE_AMI: &str = "ebfleet:source-ami";

/// What is on the image besides the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    /// The bootstrap only: every build node.
    Cpu,
    /// The bootstrap and the NVIDIA driver: nodes with a GPU.
    Nvidia,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Cpu => "cpu",
            ImageKind::Nvidia => "nvidia",
        }
    }

    /// The kind a node needs: with a GPU, the driver.
    pub fn for_gpus(gpus: u32) -> Self {
        if gpus > 0 {
            ImageKind::Nvidia
        } else {
            ImageKind::Cpu
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image to bake and to look up: OS, architecture, kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageTarget {
    pub os: String,
    pub arch: Arch,
    pub kind: ImageKind,
}

impl fmt::Display for ImageTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.os, self.arch, self.kind)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeImageError {
    #[error("node image {target}: OS {os} cannot be baked (supported: {supported})")]
    UnsupportedOs {
        target: String,
        os: String,
        supported: String,
    },
    #[error("node image parameter prefix {0:?}: expected /<letters, digits, . _ - />, at most 900 characters, not ending in /")]
    InvalidPrefix(String),
    #[error(transparent)]
    UserData(#[from] UserDataError),
}

impl ImageTarget {
    /// A target of an OS that can be baked.
    pub fn new(os: &str, arch: Arch, kind: ImageKind) -> Result<Self, NodeImageError> {
        let target = ImageTarget {
            os: os.to_string(),
            arch,
            kind,
        };
        if !BAKE_OSES.contains(&os) {
            return Err(NodeImageError::UnsupportedOs {
                target: target.to_string(),
                os: os.to_string(),
                supported: BAKE_OSES.join(", "),
            });
        }
        Ok(target)
    }
}

/// The targets a schedule bakes for `platforms` (`(os, arch)` of each): a
/// CPU image per OS and architecture; OSes that cannot be baked are left to
/// the stock AMI. The NVIDIA kind is baked only when asked for by name: no
/// pool launches GPU instances while GPU platforms build as CUDA overlays
/// on CPU nodes (a GPU check step would be its user).
pub fn targets_for<'a>(platforms: impl IntoIterator<Item = (&'a str, Arch)>) -> Vec<ImageTarget> {
    let mut out: Vec<ImageTarget> = platforms
        .into_iter()
        .filter_map(|(os, arch)| ImageTarget::new(os, arch, ImageKind::Cpu).ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `prefix` can start an SSM parameter name (`/ebfleet/node-image`).
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.starts_with('/')
        && !prefix.ends_with('/')
        && prefix.len() <= 900
        && !prefix.contains("//")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
}

/// `<prefix>/<os>/<arch>/<kind>`, e.g. `/ebfleet/node-image/amzn-2023/aarch64/cpu`:
/// the parameter holding the target's newest image id.
pub fn parameter_name(prefix: &str, target: &ImageTarget) -> Result<String, NodeImageError> {
    if !valid_prefix(prefix) {
        return Err(NodeImageError::InvalidPrefix(prefix.to_string()));
    }
    Ok(format!(
        "{prefix}/{}/{}/{}",
        target.os, target.arch, target.kind
    ))
}

/// The SHA-256 of what the image ran: the bootstrap, and the driver install
/// on the NVIDIA kind. An image whose tag differs was baked by another
/// build of ebfleet.
pub fn bootstrap_sha256(kind: ImageKind) -> String {
    match kind {
        ImageKind::Cpu => sha256_hex(BOOTSTRAP_SH.as_bytes()),
        ImageKind::Nvidia => sha256_hex(format!("{BOOTSTRAP_SH}\0{NVIDIA_DRIVER_SH}").as_bytes()),
    }
}

/// The tags the bake gives the image (and its snapshots): what [`check`]
/// reads back.
pub fn tags(target: &ImageTarget, stack: &str, source_ami: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_BAKE.to_string(), stack.to_string()),
        (TAG_OS.to_string(), target.os.clone()),
        (TAG_KIND.to_string(), target.kind.as_str().to_string()),
        (
            TAG_BOOTSTRAP_SHA256.to_string(),
            bootstrap_sha256(target.kind),
        ),
        (TAG_SOURCE_AMI.to_string(), source_ami.to_string()),
    ])
}

/// The image's name: unique per bake, readable in the console.
pub fn image_name(target: &ImageTarget, now: u64) -> String {
    format!(
        "ebfleet-node-{}-{}-{}-{now}",
        target.os, target.arch, target.kind
    )
}

// ------------------------------------------------------------- bake script

/// Where the bake writes the bootstrap before running it.
const BAKE_BOOTSTRAP_PATH: &str = "/root/ebfleet-bootstrap.sh";
const BAKE_DRIVER_PATH: &str = "/root/ebfleet-nvidia-driver.sh";

/// The bootstrap's settings on the bake instance: a platform named for the
/// image, the architecture's generic archspec (every CPU of the
/// architecture descends from it, so the CPU check passes on any bake
/// instance), EasyBuild's generic optarch. A node booted from the image
/// runs the bootstrap again with its own platform's, which rewrites them.
pub fn bake_settings(target: &ImageTarget, node: NodeDownload) -> NodeSettings {
    NodeSettings {
        platform: format!(
            "{}_node-image-{}",
            target.os,
            target.arch.as_str().replace('_', "-")
        ),
        archspec: target.arch.as_str().to_string(),
        optarch: "GENERIC".to_string(),
        cuda_compute_capabilities: None,
        node,
    }
}

/// The bake instance's user data: the bootstrap (with [`bake_settings`]),
/// the driver install on the NVIDIA kind, then power-off. `set -e`: a step
/// that fails leaves the instance running, never stopped, so a failed
/// bootstrap is never imaged (the bake terminates it at its deadline).
/// No maximum lifetime: its power-off would read as success.
pub fn bake_script(target: &ImageTarget, node: NodeDownload) -> Result<String, NodeImageError> {
    let mut vars = bake_settings(target, node).variables()?;
    vars.retain(|(name, _)| *name != crate::userdata::VAR_MAX_LIFETIME_HOURS);
    let mut text = String::with_capacity(BOOTSTRAP_SH.len() + NVIDIA_DRIVER_SH.len() + 4096);
    text.push_str("#!/bin/bash\n");
    text.push_str(&format!(
        "# ebfleet node image bake ({target}): bootstrap, then power off.\n"
    ));
    text.push_str("set -euo pipefail\n");
    for (name, value) in &vars {
        text.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    let mut steps = vec![(BAKE_BOOTSTRAP_PATH, BOOTSTRAP_SH)];
    if target.kind == ImageKind::Nvidia {
        steps.push((BAKE_DRIVER_PATH, NVIDIA_DRIVER_SH));
    }
    for (path, script) in &steps {
        write_file(&mut text, path, script);
        text.push_str(&format!("bash {path}\nrm -f {path}\n"));
    }
    // cloud-init runs user data once per instance id: a node booted from
    // the image runs its own. The bake's settings are left for it to
    // rewrite.
    text.push_str("poweroff\n");
    Ok(text)
}

/// `cat >PATH <<'DELIM' ... DELIM`: a quoted here-document, so the shell
/// expands nothing in `content`; the delimiter is one no line of it is.
fn write_file(text: &mut String, path: &str, content: &str) {
    let mut delim = String::from("EBFLEET_END_OF_FILE");
    while content.lines().any(|l| l == delim) {
        delim.push('_');
    }
    text.push_str(&format!("cat >{path} <<'{delim}'\n"));
    text.push_str(content);
    if !content.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&delim);
    text.push('\n');
}

/// [`bake_script`], gzipped, within EC2's limit.
pub fn bake_user_data(
    target: &ImageTarget,
    node: NodeDownload,
) -> Result<UserData, NodeImageError> {
    let text = bake_script(target, node)?;
    let data = gzip_script(&text)?;
    check_size(&data)?;
    Ok(data)
}

// ------------------------------------------------------------------ checks

/// What EC2 says of an image (DescribeImages), as the adapter reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFacts {
    pub image_id: String,
    /// `None`: an architecture ebfleet does not build for (e.g. `i386`).
    pub arch: Option<Arch>,
    /// EC2's image state is `available`.
    pub available: bool,
    /// EC2's image state is `failed`, `error` or `invalid`: it never will be.
    pub failed: bool,
    /// Unix seconds of `CreationDate`, when EC2 gave one that parses.
    pub created: Option<u64>,
    pub tags: BTreeMap<String, String>,
}

/// Why an image is not launched from (the node boots the stock AMI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("image {0} is not available")]
    NotAvailable(String),
    #[error("image {image_id} is {image}, the platform is {platform}")]
    WrongArchitecture {
        image_id: String,
        image: String,
        platform: Arch,
    },
    #[error("image {image_id}: tag {tag} is {found:?}, expected {expected:?}")]
    WrongTag {
        image_id: String,
        tag: &'static str,
        found: Option<String>,
        expected: String,
    },
    #[error(
        "image {image_id} ran another bootstrap (sha256 {found:?}, this build's is {expected})"
    )]
    OtherBootstrap {
        image_id: String,
        found: Option<String>,
        expected: String,
    },
    #[error("image {image_id} is {age_days} days old (at most {max_days})")]
    TooOld {
        image_id: String,
        age_days: u64,
        max_days: u64,
    },
    #[error("image {0} has no creation date")]
    NoCreationDate(String),
}

/// Whether `image` may boot nodes of `target` now: architecture first
/// (the one check that stops a node from booting at all), then the tags
/// and the age.
pub fn check(image: &ImageFacts, target: &ImageTarget, now: u64) -> Result<(), Unusable> {
    let id = || image.image_id.clone();
    if image.arch != Some(target.arch) {
        return Err(Unusable::WrongArchitecture {
            image_id: id(),
            image: image
                .arch
                .map_or("not x86_64 or aarch64".into(), |a| a.to_string()),
            platform: target.arch,
        });
    }
    if !image.available {
        return Err(Unusable::NotAvailable(id()));
    }
    for (tag, expected) in [
        (TAG_OS, target.os.as_str()),
        (TAG_KIND, target.kind.as_str()),
    ] {
        let found = image.tags.get(tag);
        if found.map(String::as_str) != Some(expected) {
            return Err(Unusable::WrongTag {
                image_id: id(),
                tag,
                found: found.cloned(),
                expected: expected.to_string(),
            });
        }
    }
    let expected = bootstrap_sha256(target.kind);
    let found = image.tags.get(TAG_BOOTSTRAP_SHA256);
    if found != Some(&expected) {
        return Err(Unusable::OtherBootstrap {
            image_id: id(),
            found: found.cloned(),
            expected,
        });
    }
    let created = image
        .created
        .ok_or_else(|| Unusable::NoCreationDate(id()))?;
    let age = now.saturating_sub(created);
    if age > MAX_IMAGE_AGE_SECS {
        return Err(Unusable::TooOld {
            image_id: id(),
            age_days: age / 86_400,
            max_days: MAX_IMAGE_AGE_SECS / 86_400,
        });
    }
    Ok(())
}

/// An image this old is baked again by the next (daily) scheduled bake:
/// about weekly, a week before [`MAX_IMAGE_AGE_SECS`] refuses it.
pub const REBAKE_AFTER_SECS: u64 = 6 * 24 * 3600;

/// Whether the image of `target` should be baked again: none, one
/// [`check`] refuses (another bootstrap: a deploy changed it), or one older
/// than [`REBAKE_AFTER_SECS`].
pub fn due(image: Option<&ImageFacts>, target: &ImageTarget, now: u64) -> bool {
    match image {
        None => true,
        Some(i) => {
            check(i, target, now).is_err()
                || i.created
                    .is_none_or(|c| now.saturating_sub(c) > REBAKE_AFTER_SECS)
        }
    }
}

#[cfg(test)]
mod tests;
