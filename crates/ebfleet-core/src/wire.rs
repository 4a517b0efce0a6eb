//! What crosses the wire between the pipeline's parts: the batch file a
//! build node reads ([`BatchFile`]) and the plan Lambda's state output
//! ([`PlanOutput`]), whose size does not grow with the number of batches or
//! modules. Both are made from a plan by the planner (`ebfleet-planner`'s
//! `wire`); here is what they are and how a reader checks them.

use crate::arch::Arch;
use crate::checksum::is_sha256_hex;
use crate::layout::{
    batch_key, easyconfig_key, manifest_key, module_file_key, source_prefix, staged_manifest_key,
    staging_prefix, tarball_key,
};
use crate::names::{
    check, describe_byte, EasyconfigPath, ExecutionName, KeyError, ModuleName, NameKind,
    PlatformName,
};
use serde::{Deserialize, Serialize};

/// Step Functions' limit on a state's input or output, in bytes.
pub const STATE_PAYLOAD_LIMIT: usize = 256 * 1024;

/// `Ok` when `ok`, else `why`.
fn must(ok: bool, why: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why.into())
    }
}

fn check_archspec(s: &str) -> Result<(), String> {
    match s.bytes().next() {
        None => return Err("empty".into()),
        Some(b) if !b.is_ascii_alphanumeric() => {
            return Err("must start with a letter or digit".into())
        }
        Some(_) => {}
    }
    if s.len() > 64 {
        return Err("longer than 64 bytes".into());
    }
    match s
        .bytes()
        .find(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    {
        Some(b) => Err(format!(
            "{} is not allowed (only A-Z a-z 0-9 _ - .)",
            describe_byte(b)
        )),
        None => Ok(()),
    }
}

/// EasyBuild's `--optarch`: `GCC:march=znver3`, several compilers joined by
/// `;`, flags by spaces. It reaches the node as one argument or environment
/// value, never through a shell.
fn check_optarch(s: &str) -> Result<(), String> {
    match s.bytes().next() {
        None => return Err("empty".into()),
        Some(b) if !b.is_ascii_alphanumeric() => {
            return Err("must start with a letter or digit".into())
        }
        Some(_) => {}
    }
    if s.len() > 256 {
        return Err("longer than 256 bytes".into());
    }
    match s.bytes().find(|&b| {
        !(b.is_ascii_alphanumeric()
            || matches!(
                b,
                b':' | b'=' | b',' | b';' | b'.' | b'_' | b'+' | b'-' | b' '
            ))
    }) {
        Some(b) => Err(format!(
            "{} is not allowed (only A-Z a-z 0-9 : = , ; . _ + - and space)",
            describe_byte(b)
        )),
        None => Ok(()),
    }
}

/// `<major>.<minor>`, e.g. `9.0`.
fn check_compute_capability(s: &str) -> Result<(), String> {
    let ok = s.split_once('.').is_some_and(|(a, b)| {
        (1..=3).contains(&a.len())
            && (1..=3).contains(&b.len())
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    must(ok, "not <major>.<minor>")
}

/// The principal a node calls AWS as, IAM's `aws:userid` of an instance
/// role: `<role id>:<instance id>` (`AROA…:i-0123456789abcdef0`).
pub fn check_node_principal(s: &str) -> Result<(), String> {
    let Some((role, instance)) = s.split_once(':') else {
        return Err("not <role id>:<instance id>".into());
    };
    check_role_id(role)?;
    let instance_ok = instance.strip_prefix("i-").is_some_and(|h| {
        (1..=32).contains(&h.len()) && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    must(
        instance_ok,
        "the instance id is not i- and 1 to 32 lowercase hex digits",
    )
}

/// An IAM role's unique id as IAM gives it (`AROA…`).
pub fn check_role_id(s: &str) -> Result<(), String> {
    let ok = (4..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    must(
        ok,
        "the role id is not 4 to 128 uppercase letters and digits",
    )
}

/// A KMS key as a unit file names it: an ARN, a key id or `alias/…`.
pub fn check_signing_key(s: &str) -> Result<(), String> {
    let ok = (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'-' | b'_'));
    must(ok, "not a KMS key ARN, id or alias")
}

fn check_sha256(s: &str) -> Result<(), String> {
    must(is_sha256_hex(s), "not 64 lowercase hex digits")
}

/// One module a batch builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBuild {
    pub module: ModuleName,
    /// Path relative to the easyconfigs tree.
    pub easyconfig: EasyconfigPath,
    pub easyconfig_key: String,
    pub easyconfig_sha256: String,
    /// Memory each parallel job needs, from its last recorded build: the
    /// node runs no more jobs than its memory holds
    /// ([`crate::sizing::jobs_fitting`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_per_job_mib: Option<u64>,
    /// Its own `--optarch` when its GCC is too old for the batch's
    /// ([`crate::platform::Cpu::optarch_for_gcc`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optarch: Option<String>,
}

/// One already-built module a batch's builds load: what `sync` downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchNeed {
    pub module: ModuleName,
    pub tarball_key: String,
    pub module_file_key: String,
    /// The sha256 its record holds: `sync` takes no other tarball.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball_sha256: Option<String>,
    /// Built on the batch's base platform ([`BatchFile::base`]): its keys
    /// are the base's and it installs into the base's layer on the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_base: bool,
}

/// What a build node reads for one batch (`plans/<execution>/<platform>/<batch>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchFile {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub arch: Arch,
    pub archspec: String,
    pub optarch: String,
    /// Set on CUDA platforms, e.g. `9.0`.
    pub cuda_compute_capability: Option<String>,
    /// A CUDA overlay's base platform: the needs `from_base` are its, and
    /// the builds install into [`BatchFile::layer`] over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<PlatformName>,
    /// The batch's index in its platform's plan.
    pub batch: usize,
    /// In an order `eb --robot` can build them.
    pub builds: Vec<BatchBuild>,
    /// Built before this batch (on the platform or by earlier batches).
    pub needs: Vec<BatchNeed>,
    /// Earlier batches that build some of `needs`.
    pub after: Vec<usize>,
    /// Halve each build's parallel jobs this many times: a retry after the
    /// build ran out of memory.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jobs_halved: u32,
    /// The principal of the node the scheduler sent the unit to
    /// ([`check_node_principal`]): its uploads go under it in the unit's
    /// staging prefix, the only place its role lets it write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The KMS key whose signature each need's tarball must carry
    /// ([`crate::record::tarball_statement`]): the node verifies it before
    /// it unpacks anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

/// For `skip_serializing_if`: a count that is zero is left out, so
/// outputs keep their shape until it means something.
pub fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl BatchFile {
    /// Read a batch (or unit) file and [`validate`](Self::validate) it, as
    /// the node does before running anything.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        let file: BatchFile =
            serde_json::from_str(text).map_err(|e| KeyError::Json(e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    /// Check what the newtypes cannot: the platform's settings, checksums,
    /// that every key is the one the layout gives for its module, and that
    /// `after` lists earlier batches only.
    pub fn validate(&self) -> Result<(), KeyError> {
        check(NameKind::Archspec, &self.archspec, check_archspec)?;
        check(NameKind::Optarch, &self.optarch, check_optarch)?;
        if let Some(cc) = &self.cuda_compute_capability {
            check(
                NameKind::CudaComputeCapability,
                cc,
                check_compute_capability,
            )?;
        }
        let same = |what: String, found: &str, expected: String| {
            if found == expected {
                Ok(())
            } else {
                Err(KeyError::Inconsistent {
                    what,
                    found: found.to_string(),
                    expected,
                })
            }
        };
        if let Some(node) = &self.node {
            check(NameKind::NodePrincipal, node, check_node_principal)?;
        }
        if let Some(key) = &self.signing_key {
            check(NameKind::SigningKey, key, check_signing_key)?;
        }
        for b in &self.builds {
            check(NameKind::Sha256, &b.easyconfig_sha256, check_sha256)?;
            if let Some(o) = &b.optarch {
                check(NameKind::Optarch, o, check_optarch)?;
            }
            same(
                format!("easyconfig_key of {}", b.module),
                &b.easyconfig_key,
                easyconfig_key(&b.easyconfig),
            )?;
        }
        if self.base.is_some() && self.layer().is_none() {
            return Err(KeyError::Inconsistent {
                what: "base".into(),
                found: "a base platform".into(),
                expected: "a CUDA compute capability with it".into(),
            });
        }
        for n in &self.needs {
            if let Some(sha) = &n.tarball_sha256 {
                check(NameKind::Sha256, sha, check_sha256)?;
            }
            let owner = match (&self.base, n.from_base) {
                (_, false) => &self.platform,
                (Some(base), true) => base,
                (None, true) => {
                    return Err(KeyError::Inconsistent {
                        what: format!("need {}", n.module),
                        found: "from the base platform".into(),
                        expected: "a batch with a base platform".into(),
                    })
                }
            };
            same(
                format!("tarball_key of {}", n.module),
                &n.tarball_key,
                tarball_key(owner, &n.module),
            )?;
            same(
                format!("module_file_key of {}", n.module),
                &n.module_file_key,
                module_file_key(owner, &n.module),
            )?;
        }
        if let Some(a) = self.after.iter().find(|&&a| a >= self.batch) {
            return Err(KeyError::BatchOrder {
                platform: self.platform.to_string(),
                batch: self.batch,
                reason: format!("it comes after batch {a}"),
            });
        }
        Ok(())
    }

    /// Where this file is stored.
    pub fn key(&self) -> String {
        batch_key(&self.execution, &self.platform, self.batch)
    }

    /// Where an overlay's builds install under the node's root, over its
    /// base's stack ([`crate::platform::cuda_layer`]); `None` when the
    /// platform is no overlay.
    pub fn layer(&self) -> Option<String> {
        self.base.as_ref()?;
        self.cuda_compute_capability
            .as_deref()
            .map(crate::platform::cuda_layer)
    }

    /// The shared `sources/` prefixes of the software this batch builds,
    /// each once: what a node downloads before and uploads after.
    pub fn source_prefixes(&self) -> std::collections::BTreeSet<String> {
        self.builds
            .iter()
            .map(|b| source_prefix(&b.module))
            .collect()
    }

    /// Where Record writes the manifest of what this unit produced, once
    /// it has verified and promoted it.
    pub fn manifest_key(&self) -> String {
        manifest_key(&self.platform, &self.execution, self.batch)
    }

    /// The prefix this unit's node uploads to ([`staging_prefix`]).
    pub fn staging_prefix(&self) -> String {
        staging_prefix(
            &self.platform,
            &self.execution,
            self.batch,
            self.node.as_deref(),
        )
    }

    /// Where the node uploads its manifest of this unit.
    pub fn staged_manifest_key(&self) -> String {
        staged_manifest_key(&self.staging_prefix())
    }
}

/// One platform in the plan Lambda's output: counts and keys only; its
/// units are in its build graph ([`crate::build_graph`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformOutput {
    pub platform: PlatformName,
    pub arch: Arch,
    /// EC2 instance families to request capacity from.
    pub families: Vec<String>,
    /// Modules to build: the graph's units, less what failure memory
    /// holds and what needs that.
    pub to_build: usize,
    pub already_built: usize,
    /// Units not built because they, or what they need, failed before
    /// from the same inputs ([`crate::failure_memory`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held: usize,
    /// Targets that cannot be built.
    pub unresolvable: usize,
    /// `plans/<execution>/<platform>/graph.json`.
    pub graph_key: String,
    /// The prefix of the platform's child execution names
    /// ([`crate::unit::child_prefix`]).
    pub name_prefix: String,
    /// The CUDA overlays over this platform, built once it has ended (each
    /// layered over what it built). Always present, if empty: the
    /// pipeline maps over it.
    #[serde(default)]
    pub overlays: Vec<PlatformOutput>,
}

impl PlanOutput {
    /// Count what failure memory holds in `graph` (and what needs it) as
    /// held, not to build; a platform left with nothing to build is not
    /// started.
    pub fn hold(&mut self, graph: &crate::build_graph::BuildGraph) {
        let held = graph.blocked_units();
        if let Some(p) = self.platform_mut(&graph.platform) {
            p.held = held;
            p.to_build = p.to_build.saturating_sub(held);
        }
        self.count_what_to_do();
    }

    /// A platform or overlay of the output, by name.
    fn platform_mut(&mut self, name: &PlatformName) -> Option<&mut PlatformOutput> {
        for p in &mut self.platforms {
            if p.platform == *name {
                return Some(p);
            }
            if let Some(o) = p.overlays.iter_mut().find(|o| o.platform == *name) {
                return Some(o);
            }
        }
        None
    }

    /// Set `nothing_to_do` from the platforms' and overlays' counts.
    pub fn count_what_to_do(&mut self) {
        let nothing = self.all().all(|p| p.to_build == 0);
        self.nothing_to_do = nothing;
    }

    /// Every platform, each followed by its overlays.
    pub fn all(&self) -> impl Iterator<Item = &PlatformOutput> + '_ {
        self.platforms
            .iter()
            .flat_map(|p| std::iter::once(p).chain(&p.overlays))
    }
}

/// The plan Lambda's state output. Its size grows with the number of
/// platforms only, never with the number of modules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub execution: ExecutionName,
    pub plan_key: String,
    /// No platform has a unit: skip without starting instances.
    pub nothing_to_do: bool,
    /// The platforms that build whole stacks, each with the CUDA overlays
    /// over it.
    pub platforms: Vec<PlatformOutput>,
}

#[cfg(test)]
mod tests {
    use super::check_node_principal;

    #[test]
    fn a_node_principal_is_a_role_id_and_an_instance_id() {
        for ok in ["AROA3XFRBF23EXAMPLE:i-0123456789abcdef0", "AROAX:i-0a"] {
            assert_eq!(check_node_principal(ok), Ok(()), "{ok}");
        }
        // Anything that could leave its place in a key, or name another.
        for bad in [
            "AROAX",
            "AROAX:",
            "aroax:i-0a",
            "AROAX:i-0A",
            "AROAX:i-",
            "AROAX:i-0a/../x",
            "AROAX/..:i-0a",
            ":i-0a",
            "AROAX:i-0a:i-0b",
            "AROAX:j-0a",
        ] {
            assert!(check_node_principal(bad).is_err(), "{bad}");
        }
    }
}
