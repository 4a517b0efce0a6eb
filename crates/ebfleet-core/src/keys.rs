//! Validated names, the S3 layout, and what the state machine and the build
//! nodes read.
//!
//! Everything that may end up in an S3 key or on a build node's command line
//! passes through one of the newtypes here first: [`ModuleName`],
//! [`PlatformName`], [`ExecutionName`], [`EasyconfigPath`] and
//! [`EasyconfigKey`]. They validate on construction and on deserialisation,
//! so a value of one of these types is safe to use as an S3 key component and
//! as a single command-line argument (never a shell word: it is still passed
//! as an argument, not interpolated).
//!
//! The S3 layout of the design lives only here ([`tarball_key`],
//! [`module_file_key`], [`manifest_key`], [`log_prefix`], [`plan_key`],
//! [`batch_key`], [`easyconfig_key`], [`source_prefix`]):
//!
//! ```text
//! easyconfigs/<letter>/<Name>/<Name>-<ver>[-<tc>-<tcver>][<suffix>].eb
//! sources/<letter>/<Name>/...
//! <platform>/software/<Name>/<version>.tar.zst
//! <platform>/modules/all/<Name>/<version>.lua
//! <platform>/manifests/<execution>/<batch>.json
//! <platform>/logs/<Name>/<version>/...
//! plans/<execution>/plan.json, plans/<execution>/<platform>/<batch>.json
//! ```
//!
//! Hidden modules (`zlib/.1.3`) keep their dot in every key:
//! `<platform>/software/zlib/.1.3.tar.zst`, `<platform>/modules/all/zlib/.1.3.lua`
//! (the module file path EasyBuild itself writes), `<platform>/logs/zlib/.1.3/`.
//! This is unambiguous because a visible version never starts with a dot
//! (validated), and a hidden module is a different module from the visible
//! one of the same version (its own DynamoDB item), so it gets its own keys.
//! Both install into the same software directory (`zlib/1.3`, see
//! [`ModuleName::install_subdir`]).
//!
//! [`BatchFile`] is what a build node reads for one batch; [`PlanOutput`] is
//! the plan Lambda's state output, whose size does not grow with the number
//! of batches or modules.

use crate::arch::Arch;
use crate::plan::{ModuleTable, PlatformPlan};
use crate::planner::Plan;
use crate::platform::Platform;
use crate::tree::letter_dir_for;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest accepted module name, in bytes.
pub const MAX_MODULE_NAME: usize = 255;
/// Longest accepted platform name, in bytes.
pub const MAX_PLATFORM_NAME: usize = 128;
/// Longest Step Functions execution name.
pub const MAX_EXECUTION_NAME: usize = 80;
/// Longest accepted easyconfig path (relative to `easyconfigs/`), in bytes.
pub const MAX_EASYCONFIG_PATH: usize = 512;
/// Step Functions' limit on a state's input or output, in bytes.
pub const STATE_PAYLOAD_LIMIT: usize = 256 * 1024;
/// The prefix of easyconfig keys in the bucket.
pub const EASYCONFIGS_PREFIX: &str = "easyconfigs/";

/// What kind of value failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Module,
    Platform,
    Execution,
    EasyconfigPath,
    EasyconfigKey,
    Archspec,
    Optarch,
    CudaComputeCapability,
    Sha256,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Module => "module name",
            NameKind::Platform => "platform name",
            NameKind::Execution => "execution name",
            NameKind::EasyconfigPath => "easyconfig path",
            NameKind::EasyconfigKey => "easyconfig key",
            NameKind::Archspec => "archspec name",
            NameKind::Optarch => "optarch",
            NameKind::CudaComputeCapability => "CUDA compute capability",
            NameKind::Sha256 => "sha256",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `value` is shown escaped (`{:?}`) and cut to 100 characters, so a
    /// hostile value cannot forge log lines.
    #[error("invalid {kind} {value:?}: {reason}")]
    Invalid {
        kind: NameKind,
        value: String,
        reason: String,
    },
    #[error("the plan has no platform {0}")]
    NoPlatform(String),
    #[error("the plan has no module table for {0}")]
    NoModuleTable(Arch),
    #[error("platform {platform} has no batch {batch}")]
    NoBatch { platform: String, batch: usize },
    #[error("module {module} of batch {batch} is not in the module table")]
    NotInTable { module: String, batch: usize },
    #[error("plan is for platform {plan}, not {platform}")]
    PlatformMismatch { plan: String, platform: String },
    #[error("batch {batch} of {platform} is out of order: {reason}")]
    BatchOrder {
        platform: String,
        batch: usize,
        reason: String,
    },
    #[error("batch file: {what} is {found:?}, expected {expected:?}")]
    Inconsistent {
        what: String,
        found: String,
        expected: String,
    },
    #[error("batch file is not valid JSON: {0}")]
    Json(String),
}

fn invalid(kind: NameKind, value: &str, reason: impl Into<String>) -> KeyError {
    const SHOWN: usize = 100;
    let value = if value.chars().count() > SHOWN {
        let mut v: String = value.chars().take(SHOWN).collect();
        v.push('…');
        v
    } else {
        value.to_string()
    };
    KeyError::Invalid {
        kind,
        value,
        reason: reason.into(),
    }
}

/// Characters of EasyBuild software names and versions.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-')
}

fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// A software name: `[A-Za-z0-9._+-]+` starting with a letter or digit (so
/// never `.`, `..`, a dot file or something a command line reads as an option).
fn check_software_name(name: &str) -> Result<(), String> {
    let first = *name.as_bytes().first().ok_or("empty software name")?;
    if !first.is_ascii_alphanumeric() {
        return Err(format!(
            "software name must start with a letter or digit, not {}",
            describe_byte(first)
        ));
    }
    if let Some(b) = name.bytes().find(|&b| !is_name_byte(b)) {
        return Err(format!(
            "{} is not allowed (only A-Z a-z 0-9 . _ + -)",
            describe_byte(b)
        ));
    }
    Ok(())
}

fn check_module_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_MODULE_NAME {
        return Err(format!("longer than {MAX_MODULE_NAME} bytes"));
    }
    if let Some(b) = s.bytes().find(|&b| !is_name_byte(b) && b != b'/') {
        return Err(format!(
            "{} is not allowed (only A-Z a-z 0-9 . _ + - and one /)",
            describe_byte(b)
        ));
    }
    let Some((name, version)) = s.split_once('/') else {
        return Err("not <Name>/<version>: no '/'".into());
    };
    if version.contains('/') {
        return Err("not <Name>/<version>: more than one '/'".into());
    }
    check_software_name(name)?;
    let visible = version.strip_prefix('.').unwrap_or(version);
    match visible.bytes().next() {
        None => Err("empty version".into()),
        Some(b) if !b.is_ascii_alphanumeric() => Err(format!(
            "version must start with a letter or digit (after the '.' of a hidden module), not {}",
            describe_byte(b)
        )),
        Some(_) => Ok(()),
    }
}

macro_rules! string_newtype {
    ($ty:ident, $kind:expr, $check:path) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                $check(s).map_err(|reason| invalid($kind, s, reason))?;
                Ok($ty(s.to_string()))
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = KeyError;
            fn try_from(s: &str) -> Result<Self, KeyError> {
                s.parse()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = KeyError;
            fn try_from(s: String) -> Result<Self, KeyError> {
                $check(&s).map_err(|reason| invalid($kind, &s, reason))?;
                Ok($ty(s))
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// An EasyBuild module name under the default naming scheme: `Name/version`,
/// or `Name/.version` for a hidden module.
///
/// Name and version are made of `A-Z a-z 0-9 . _ + -`, each starts with a
/// letter or digit (the version after its hidden-module dot), there is
/// exactly one `/`, at most [`MAX_MODULE_NAME`] bytes. So no `..` or `.`
/// segment, no absolute path, no whitespace or shell metacharacter, and
/// nothing that starts with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModuleName(String);

string_newtype!(ModuleName, NameKind::Module, check_module_name);

impl ModuleName {
    /// The software name, `Python` of `Python/3.11.3-GCCcore-12.3.0`.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(n, _)| n)
    }

    /// The version as in the module name, with the dot of a hidden module
    /// (`.1.3` of `zlib/.1.3`).
    pub fn version(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, v)| v)
    }

    /// Whether the module is hidden (`Name/.version`).
    pub fn is_hidden(&self) -> bool {
        self.version().starts_with('.')
    }

    /// The installation subdirectory EasyBuild uses, `Name/version` without
    /// the hidden-module dot (a hidden and a visible module of one version
    /// install into the same directory).
    pub fn install_subdir(&self) -> String {
        let v = self.version();
        format!("{}/{}", self.name(), v.strip_prefix('.').unwrap_or(v))
    }
}

fn check_platform_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_PLATFORM_NAME {
        return Err(format!("longer than {MAX_PLATFORM_NAME} bytes"));
    }
    if let Some(b) = s.bytes().find(|&b| {
        !(b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    }) {
        return Err(format!(
            "{} is not allowed (only a-z 0-9 . - and _ between parts)",
            describe_byte(b)
        ));
    }
    let parts: Vec<&str> = s.split('_').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err("not <os>_<cpu>[_<gpu>]".into());
    }
    for p in parts {
        match p.bytes().next() {
            None => return Err("empty part".into()),
            Some(b) if !b.is_ascii_alphanumeric() => {
                return Err(format!(
                    "each part must start with a letter or digit, not {}",
                    describe_byte(b)
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A platform: `<os>_<cpu>[_<gpu>]`, each part `[a-z0-9.-]+` starting with a
/// letter or digit, e.g. `amzn-2023_xeon-gen-4_h100`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlatformName(String);

string_newtype!(PlatformName, NameKind::Platform, check_platform_name);

impl PlatformName {
    /// The name of a resolved platform.
    pub fn of(platform: &Platform) -> Result<Self, KeyError> {
        platform.name.parse()
    }
}

fn check_execution_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_EXECUTION_NAME {
        return Err(format!("longer than {MAX_EXECUTION_NAME} characters"));
    }
    if let Some(b) = s
        .bytes()
        .find(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        return Err(format!(
            "{} is not allowed (only A-Z a-z 0-9 _ -)",
            describe_byte(b)
        ));
    }
    if s.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    Ok(())
}

/// A Step Functions execution name as ebfleet accepts it: 1–80 characters of
/// `A-Z a-z 0-9 _ -`, not starting with `-` (stricter than Step Functions,
/// which also allows other printable characters: these names become key
/// components and node arguments).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExecutionName(String);

string_newtype!(ExecutionName, NameKind::Execution, check_execution_name);

fn check_easyconfig_path(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_EASYCONFIG_PATH {
        return Err(format!("longer than {MAX_EASYCONFIG_PATH} bytes"));
    }
    if let Some(b) = s.bytes().find(|&b| !is_name_byte(b) && b != b'/') {
        return Err(format!(
            "{} is not allowed (only A-Z a-z 0-9 . _ + - /)",
            describe_byte(b)
        ));
    }
    let parts: Vec<&str> = s.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty path segment (leading, trailing or double '/')".into());
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err("'.' or '..' path segment".into());
    }
    let [letter, name, file] = parts[..] else {
        return Err("not <letter>/<Name>/<file>.eb".into());
    };
    check_software_name(name)?;
    let expected = letter_dir_for(name).to_string();
    if letter != expected {
        return Err(format!(
            "letter directory '{letter}' does not match {name} (expected '{expected}')"
        ));
    }
    let Some(stem) = file.strip_suffix(".eb") else {
        return Err("not an .eb file".into());
    };
    let version = stem
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('-'))
        .ok_or_else(|| format!("file name does not start with '{name}-'"))?;
    match version.bytes().next() {
        Some(b) if b.is_ascii_alphanumeric() => Ok(()),
        _ => Err("file name has no version after the software name".into()),
    }
}

/// An easyconfig's path relative to the easyconfigs tree (and to
/// `easyconfigs/` in the bucket): `<letter>/<Name>/<Name>-<rest>.eb`, the
/// letter as EasyBuild's `letter_dir_for(Name)`, characters those of module
/// names plus `/`, no `.`/`..`/empty segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EasyconfigPath(String);

string_newtype!(
    EasyconfigPath,
    NameKind::EasyconfigPath,
    check_easyconfig_path
);

impl EasyconfigPath {
    /// The software name (the directory).
    pub fn name(&self) -> &str {
        self.0.split('/').nth(1).unwrap_or("")
    }

    /// The file name, `<Name>-<rest>.eb`.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

fn check_easyconfig_key(s: &str) -> Result<(), String> {
    let rel = s
        .strip_prefix(EASYCONFIGS_PREFIX)
        .ok_or_else(|| format!("not under {EASYCONFIGS_PREFIX}"))?;
    check_easyconfig_path(rel)
}

/// An S3 key of an easyconfig, `easyconfigs/<letter>/<Name>/<file>.eb`, as it
/// arrives in an S3 event, validated like [`EasyconfigPath`]. The key must be
/// the literal object key: a URL-encoded key (`%2B` for `+`) is rejected, not
/// decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EasyconfigKey(String);

string_newtype!(EasyconfigKey, NameKind::EasyconfigKey, check_easyconfig_key);

impl EasyconfigKey {
    /// The path relative to the easyconfigs tree, `<letter>/<Name>/<file>.eb`.
    pub fn relative(&self) -> EasyconfigPath {
        EasyconfigPath(self.0[EASYCONFIGS_PREFIX.len()..].to_string())
    }
}

impl From<&EasyconfigPath> for EasyconfigKey {
    fn from(path: &EasyconfigPath) -> Self {
        EasyconfigKey(easyconfig_key(path))
    }
}

// ---------------------------------------------------------------------------
// The S3 layout.

/// `<platform>/software/<Name>/<version>.tar.zst`: a module's installation.
pub fn tarball_key(platform: &PlatformName, module: &ModuleName) -> String {
    format!(
        "{platform}/software/{}/{}.tar.zst",
        module.name(),
        module.version()
    )
}

/// `<platform>/modules/all/<Name>/<version>.lua`: a module's module file.
pub fn module_file_key(platform: &PlatformName, module: &ModuleName) -> String {
    format!(
        "{platform}/modules/all/{}/{}.lua",
        module.name(),
        module.version()
    )
}

/// `<platform>/manifests/<execution>/<batch>.json`: what a batch produced.
pub fn manifest_key(platform: &PlatformName, execution: &ExecutionName, batch: usize) -> String {
    format!("{platform}/manifests/{execution}/{batch}.json")
}

/// `<platform>/logs/<Name>/<version>/`: where a module's EasyBuild logs go.
pub fn log_prefix(platform: &PlatformName, module: &ModuleName) -> String {
    format!("{platform}/logs/{}/{}/", module.name(), module.version())
}

/// `plans/<execution>/plan.json`: the full plan of an execution.
pub fn plan_key(execution: &ExecutionName) -> String {
    format!("plans/{execution}/plan.json")
}

/// `plans/<execution>/<platform>/`: where the batch files of a platform go.
pub fn batch_prefix(execution: &ExecutionName, platform: &PlatformName) -> String {
    format!("plans/{execution}/{platform}/")
}

/// `plans/<execution>/<platform>/<batch>.json`: one [`BatchFile`].
pub fn batch_key(execution: &ExecutionName, platform: &PlatformName, batch: usize) -> String {
    format!("{}{batch}.json", batch_prefix(execution, platform))
}

/// `easyconfigs/<letter>/<Name>/<file>.eb`.
pub fn easyconfig_key(path: &EasyconfigPath) -> String {
    format!("{EASYCONFIGS_PREFIX}{path}")
}

/// `sources/<letter>/<Name>/`: the sources of a software, shared by all
/// platforms (EasyBuild's source path layout; the letter as
/// `letter_dir_for`).
pub fn source_prefix(module: &ModuleName) -> String {
    let name = module.name();
    format!("sources/{}/{name}/", letter_dir_for(name))
}

// ---------------------------------------------------------------------------
// Batch files.

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
    if ok {
        Ok(())
    } else {
        Err("not <major>.<minor>".into())
    }
}

fn check_sha256(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err("not 64 lowercase hex digits".into())
    }
}

fn check(kind: NameKind, value: &str, f: fn(&str) -> Result<(), String>) -> Result<(), KeyError> {
    f(value).map_err(|reason| invalid(kind, value, reason))
}

/// One module a batch builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBuild {
    pub module: ModuleName,
    /// Path relative to the easyconfigs tree.
    pub easyconfig: EasyconfigPath,
    pub easyconfig_key: String,
    pub easyconfig_sha256: String,
}

/// One already-built module a batch's builds load: what `sync` downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchNeed {
    pub module: ModuleName,
    pub tarball_key: String,
    pub module_file_key: String,
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
    /// The batch's index in its platform's plan.
    pub batch: usize,
    /// In an order `eb --robot` can build them.
    pub builds: Vec<BatchBuild>,
    /// Built before this batch (on the platform or by earlier batches).
    pub needs: Vec<BatchNeed>,
    /// Earlier batches that build some of `needs`.
    pub after: Vec<usize>,
}

impl BatchFile {
    /// The batch file of batch `batch` of a platform's plan. Every module
    /// name, easyconfig path and checksum is validated: a plan holding an
    /// invalid one is an error, never a key.
    pub fn new(
        plan: &PlatformPlan,
        table: &ModuleTable,
        platform: &Platform,
        execution: &ExecutionName,
        batch: usize,
    ) -> Result<Self, KeyError> {
        if plan.platform != platform.name {
            return Err(KeyError::PlatformMismatch {
                plan: plan.platform.clone(),
                platform: platform.name.clone(),
            });
        }
        let platform_name = PlatformName::of(platform)?;
        let b = plan
            .batches
            .iter()
            .find(|b| b.index == batch)
            .ok_or_else(|| KeyError::NoBatch {
                platform: plan.platform.clone(),
                batch,
            })?;
        let builds = b
            .modules
            .iter()
            .map(|m| {
                let module: ModuleName = m.parse()?;
                let pm = table.get(m).ok_or_else(|| KeyError::NotInTable {
                    module: m.clone(),
                    batch,
                })?;
                let easyconfig: EasyconfigPath = pm.easyconfig.parse()?;
                check(NameKind::Sha256, &pm.easyconfig_sha256, check_sha256)?;
                Ok(BatchBuild {
                    module,
                    easyconfig_key: easyconfig_key(&easyconfig),
                    easyconfig,
                    easyconfig_sha256: pm.easyconfig_sha256.clone(),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        let needs = b
            .needs
            .iter()
            .map(|m| {
                let module: ModuleName = m.parse()?;
                Ok(BatchNeed {
                    tarball_key: tarball_key(&platform_name, &module),
                    module_file_key: module_file_key(&platform_name, &module),
                    module,
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        let file = BatchFile {
            execution: execution.clone(),
            platform: platform_name,
            arch: platform.arch(),
            archspec: platform.cpu.archspec.clone(),
            optarch: platform.cpu.optarch.clone(),
            cuda_compute_capability: platform
                .gpu
                .as_ref()
                .and_then(|g| g.cuda_compute_capability.clone()),
            batch,
            builds,
            needs,
            after: b.after.clone(),
        };
        file.validate()?;
        Ok(file)
    }

    /// [`BatchFile::new`] from a whole plan: the platform's plan and its
    /// architecture's module table.
    pub fn from_plan(
        plan: &Plan,
        platform: &Platform,
        execution: &ExecutionName,
        batch: usize,
    ) -> Result<Self, KeyError> {
        let pp = plan
            .platforms
            .iter()
            .find(|p| p.platform == platform.name)
            .ok_or_else(|| KeyError::NoPlatform(platform.name.clone()))?;
        let table = plan
            .modules
            .get(&platform.arch())
            .ok_or(KeyError::NoModuleTable(platform.arch()))?;
        Self::new(pp, table, platform, execution, batch)
    }

    /// Read a batch file and [`validate`](Self::validate) it: what a node
    /// does before running anything.
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
        for b in &self.builds {
            check(NameKind::Sha256, &b.easyconfig_sha256, check_sha256)?;
            same(
                format!("easyconfig_key of {}", b.module),
                &b.easyconfig_key,
                easyconfig_key(&b.easyconfig),
            )?;
        }
        for n in &self.needs {
            same(
                format!("tarball_key of {}", n.module),
                &n.tarball_key,
                tarball_key(&self.platform, &n.module),
            )?;
            same(
                format!("module_file_key of {}", n.module),
                &n.module_file_key,
                module_file_key(&self.platform, &n.module),
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

    /// The shared `sources/` prefixes of the software this batch builds,
    /// each once: what a node downloads before and uploads after.
    pub fn source_prefixes(&self) -> std::collections::BTreeSet<String> {
        self.builds
            .iter()
            .map(|b| source_prefix(&b.module))
            .collect()
    }

    /// Where the node uploads what this batch produced.
    pub fn manifest_key(&self) -> String {
        manifest_key(&self.platform, &self.execution, self.batch)
    }
}

// ---------------------------------------------------------------------------
// The plan Lambda's output.

/// One platform in the plan Lambda's output: counts and keys only.
///
/// Batches are listed by count, not one by one: batch `i` is at
/// `batch_prefix + "<i>.json"` ([`batch_key`]) and depends only on batches
/// before it (checked), so the state machine runs `0..batches` in order and
/// reads each batch's `after` from its file. A per-batch list does not fit:
/// the default platforms on the full EasyBuild 5.4.1 easyconfigs make 3,342
/// batches, ~870 KiB as `{index, key, modules, after}` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformOutput {
    pub platform: PlatformName,
    pub arch: Arch,
    /// EC2 instance families to request capacity from.
    pub families: Vec<String>,
    /// Modules to build (in all batches).
    pub to_build: usize,
    pub already_built: usize,
    /// Targets that cannot be built.
    pub unresolvable: usize,
    /// Number of batches, `0..batches`.
    pub batches: usize,
    /// `plans/<execution>/<platform>/`.
    pub batch_prefix: String,
}

/// The plan Lambda's state output. Its size grows with the number of
/// platforms only, never with the number of modules or batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub execution: ExecutionName,
    pub plan_key: String,
    /// No platform has a batch: skip without starting instances.
    pub nothing_to_do: bool,
    pub platforms: Vec<PlatformOutput>,
}

impl PlanOutput {
    /// The output for a plan; `platforms` must hold every platform of the
    /// plan (for its families). Checks that each platform's batches are
    /// numbered `0..n` and depend only on earlier ones.
    pub fn new(
        plan: &Plan,
        platforms: &[&Platform],
        execution: &ExecutionName,
    ) -> Result<Self, KeyError> {
        let outputs = plan
            .platforms
            .iter()
            .map(|pp| {
                let platform = platforms
                    .iter()
                    .find(|p| p.name == pp.platform)
                    .ok_or_else(|| KeyError::NoPlatform(pp.platform.clone()))?;
                let name: PlatformName = pp.platform.parse()?;
                for (i, b) in pp.batches.iter().enumerate() {
                    let order = |reason: String| KeyError::BatchOrder {
                        platform: pp.platform.clone(),
                        batch: b.index,
                        reason,
                    };
                    if b.index != i {
                        return Err(order(format!("it is listed at position {i}")));
                    }
                    if let Some(a) = b.after.iter().find(|&&a| a >= i) {
                        return Err(order(format!("it comes after batch {a}")));
                    }
                }
                Ok(PlatformOutput {
                    batch_prefix: batch_prefix(execution, &name),
                    platform: name,
                    arch: pp.arch,
                    families: platform.families.clone(),
                    to_build: pp.to_build(),
                    already_built: pp.already_built,
                    unresolvable: pp.unresolvable.len(),
                    batches: pp.batches.len(),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(PlanOutput {
            execution: execution.clone(),
            plan_key: plan_key(execution),
            nothing_to_do: outputs.iter().all(|p| p.batches == 0),
            platforms: outputs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::sha256_hex;
    use crate::plan::{Batch, PlannedModule, Unresolvable};
    use crate::platform::{Platforms, SMALL as PLATFORMS};
    use std::collections::HashMap;

    fn platforms() -> Platforms {
        Platforms::from_toml(PLATFORMS).unwrap()
    }

    fn m(s: &str) -> ModuleName {
        s.parse().unwrap()
    }

    fn p(s: &str) -> PlatformName {
        s.parse().unwrap()
    }

    fn e(s: &str) -> ExecutionName {
        s.parse().unwrap()
    }

    fn kind_of(err: KeyError) -> NameKind {
        match err {
            KeyError::Invalid { kind, .. } => kind,
            other => panic!("not a validation error: {other}"),
        }
    }

    /// Tricky real names from the EasyBuild 5.4.1 easyconfigs.
    const REAL_MODULES: &[&str] = &[
        "GCCcore/12.3.0",
        "Python/3.11.3-GCCcore-12.3.0",
        "R-bundle-CRAN/2024.11-foss-2024a",
        "libjpeg-turbo/3.0.1-GCCcore-13.2.0",
        "WebKitGTK+/2.41.4-foss-2023a",
        "SciPy-bundle/2023.07-gfbf-2023a",
        "zlib/.1.3",
        "2decomp-fft/2.0.4-foss-2025b",
        "4ti2/1.6.10-GCC-13.2.0",
        "ABAQUS/2021-hotfix-2132",
        "Perl-bundle-CPAN/5.36.1-GCCcore-12.3.0",
        "X11/20230603-GCCcore-12.3.0",
        "gnuplot/5.4.8-GCCcore-12.3.0",
        "libsigc++/3.6.0-GCCcore-13.2.0",
        "PyTorch/2.1.2-foss-2023a-CUDA-12.1.1",
        "lsb_release/2.0",
        "Java/11.0.20",
    ];

    #[test]
    fn real_module_names_are_accepted() {
        for s in REAL_MODULES {
            let module = s.parse::<ModuleName>().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(module.as_str(), *s);
            assert_eq!(module.to_string(), *s);
            assert_eq!(format!("{}/{}", module.name(), module.version()), *s);
        }
        let py = m("Python/3.11.3-GCCcore-12.3.0");
        assert_eq!(py.name(), "Python");
        assert_eq!(py.version(), "3.11.3-GCCcore-12.3.0");
        assert!(!py.is_hidden());
        assert_eq!(py.install_subdir(), "Python/3.11.3-GCCcore-12.3.0");
        let z = m("zlib/.1.3");
        assert!(z.is_hidden());
        assert_eq!(z.version(), ".1.3");
        assert_eq!(z.install_subdir(), "zlib/1.3");
        assert_eq!(ModuleName::try_from("GCC/13.2.0").unwrap(), m("GCC/13.2.0"));
        assert_eq!(
            ModuleName::try_from("GCC/13.2.0".to_string()).unwrap(),
            m("GCC/13.2.0")
        );
        assert_eq!(String::from(m("GCC/13.2.0")), "GCC/13.2.0");
    }

    #[test]
    fn hostile_and_malformed_module_names_are_rejected() {
        let long = format!("a/{}", "1".repeat(MAX_MODULE_NAME - 1));
        let cases: &[(&str, &str)] = &[
            ("a/b;rm -rf /", "';'"),
            ("$(id)/1", "'$'"),
            ("`id`/1", "'`'"),
            ("x/`id`", "'`'"),
            ("../x/1", "more than one"),
            ("/abs/1", "more than one"),
            ("x/1\n", "0x0a"),
            ("x/1\r", "0x0d"),
            ("x/1\0", "0x00"),
            ("x/..", "version must start"),
            ("x/.", "empty version"),
            ("x/", "empty version"),
            ("/1", "empty software name"),
            ("x", "no '/'"),
            ("", "empty"),
            ("x/1 2", "0x20"),
            ("x/1\t", "0x09"),
            ("x/'1'", "'''"),
            ("x/\"1\"", "'\"'"),
            ("x/1|sh", "'|'"),
            ("x/1&", "'&'"),
            ("x/1>f", "'>'"),
            ("x/*", "'*'"),
            ("x/1\\", "'\\'"),
            (".hidden/1", "start with a letter"),
            ("-rf/1", "start with a letter"),
            ("x/-rf", "version must start"),
            ("x/..1", "version must start"),
            ("x/y/1", "more than one"),
            ("x//1", "more than one"),
            ("zlib/1.3é", "0xc3"),
            (&long, "longer than 255"),
        ];
        for (s, why) in cases {
            let err = s.parse::<ModuleName>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(why), "{s:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
            assert_eq!(kind_of(err), NameKind::Module);
        }
        // Exactly at the limit is fine.
        let max = format!("a/{}", "1".repeat(MAX_MODULE_NAME - 2));
        assert!(max.parse::<ModuleName>().is_ok());
        // Long values are cut in the message.
        let huge = format!("x/{}", ";".repeat(10_000));
        assert!(huge.parse::<ModuleName>().unwrap_err().to_string().len() < 400);
    }

    #[test]
    fn module_names_validate_on_deserialize() {
        let ok: Vec<ModuleName> = serde_json::from_str(r#"["zlib/.1.3", "GCC/13.2.0"]"#).unwrap();
        assert_eq!(ok[0], m("zlib/.1.3"));
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"["zlib/.1.3","GCC/13.2.0"]"#
        );
        let err = serde_json::from_str::<ModuleName>(r#""a/b;rm -rf /""#).unwrap_err();
        assert!(err.to_string().contains("invalid module name"), "{err}");
    }

    #[test]
    fn platform_names() {
        for s in [
            "amzn-2023_graviton-3",
            "amzn-2023_xeon-gen-4_h100",
            "ubuntu-24.04_epyc-gen-3",
            "rocky-9_grace_gb200",
        ] {
            assert_eq!(p(s).as_str(), s);
        }
        for pl in Platforms::default_set().unwrap().platforms {
            PlatformName::of(&pl).unwrap();
        }
        for s in [
            "",
            "amzn-2023",
            "a_b_c_d",
            "a__b",
            "_a_b",
            "a_b_",
            "Amzn_x",
            "a_b/c",
            "a_..",
            "a_.b",
            "a_-b",
            "a_b;id",
            "a_b c",
            "a_b\n",
            "a_$(id)",
        ] {
            let err = s.parse::<PlatformName>().unwrap_err();
            assert_eq!(kind_of(err), NameKind::Platform, "{s:?}");
        }
        assert!("a_".repeat(64).parse::<PlatformName>().is_err());
        assert!(serde_json::from_str::<PlatformName>(r#""a/b""#).is_err());
    }

    #[test]
    fn execution_names() {
        for s in [
            "0f8e3f7a-2c1b-4d7e-9a55-3b9c1e2d4f60",
            "weekly_2025-01-06",
            "x",
            &"a".repeat(80),
        ] {
            assert_eq!(e(s).as_str(), s);
        }
        for s in [
            "",
            &"a".repeat(81),
            "a b",
            "a.b",
            "a/b",
            "..",
            "-rf",
            "a;b",
            "$(id)",
            "a\n",
            "é",
        ] {
            let err = s.parse::<ExecutionName>().unwrap_err();
            assert_eq!(kind_of(err), NameKind::Execution, "{s:?}");
        }
        assert!(serde_json::from_str::<ExecutionName>(r#""a b""#).is_err());
    }

    #[test]
    fn easyconfig_keys_and_paths() {
        let key: EasyconfigKey = "easyconfigs/w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb"
            .parse()
            .unwrap();
        let rel = key.relative();
        assert_eq!(rel.as_str(), "w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb");
        assert_eq!(rel.name(), "WebKitGTK+");
        assert_eq!(rel.file_name(), "WebKitGTK+-2.41.4-foss-2023a.eb");
        assert_eq!(EasyconfigKey::from(&rel), key);
        for s in [
            "0/2decomp-fft/2decomp-fft-2.0.4-foss-2025b.eb",
            "p/Python/Python-3.11.3-GCCcore-12.3.0.eb",
            "r/R-bundle-CRAN/R-bundle-CRAN-2024.11-foss-2024a.eb",
            "l/lsb_release/lsb_release-2.0.eb",
        ] {
            let path: EasyconfigPath = s.parse().unwrap();
            assert_eq!(
                format!("easyconfigs/{s}")
                    .parse::<EasyconfigKey>()
                    .unwrap()
                    .relative(),
                path
            );
        }
        let bad_keys = [
            ("easyconfigs/p/Python/../../x/Python-1.eb", "'..'"),
            ("easyconfigs/p//Python/Python-1.eb", "empty path segment"),
            ("easyconfigs//p/Python/Python-1.eb", "empty path segment"),
            ("easyconfigs/p/Python/Python-1.eb/", "empty path segment"),
            ("sources/p/Python/Python-1.eb", "not under easyconfigs/"),
            (
                "/easyconfigs/p/Python/Python-1.eb",
                "not under easyconfigs/",
            ),
            ("Easyconfigs/p/Python/Python-1.eb", "not under easyconfigs/"),
            ("easyconfigs/p/Python/Python-1.eb.txt", "not an .eb file"),
            ("easyconfigs/p/Python/Python-1.py", "not an .eb file"),
            ("easyconfigs/p/Python/Python-1.ebx", "not an .eb file"),
            ("easyconfigs/p/Python/Python-1 .eb", "0x20"),
            ("easyconfigs/p/Python/Python-$(id).eb", "'$'"),
            ("easyconfigs/p/Python/Python-`id`.eb", "'`'"),
            ("easyconfigs/p/Python/Python-1;id.eb", "';'"),
            ("easyconfigs/p/Python/Python-1\n.eb", "0x0a"),
            ("easyconfigs/w/WebKitGTK%2B/WebKitGTK%2B-2.eb", "'%'"),
            ("easyconfigs/x/Python/Python-1.eb", "letter directory"),
            ("easyconfigs/P/Python/Python-1.eb", "letter directory"),
            (
                "easyconfigs/p/Python/Perl-1.eb",
                "does not start with 'Python-'",
            ),
            ("easyconfigs/p/Python/Python-.eb", "no version"),
            ("easyconfigs/p/Python/Python.eb", "does not start"),
            (
                "easyconfigs/p/Python/sub/Python-1.eb",
                "not <letter>/<Name>/<file>.eb",
            ),
            ("easyconfigs/Python-1.eb", "not <letter>/<Name>/<file>.eb"),
            ("easyconfigs/0/.x/.x-1.eb", "start with a letter"),
            ("easyconfigs/", "empty"),
        ];
        for (s, why) in bad_keys {
            let err = s.parse::<EasyconfigKey>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(why), "{s:?}: {msg}");
            assert_eq!(kind_of(err), NameKind::EasyconfigKey);
        }
        let long = format!("easyconfigs/a/a/a-{}.eb", "1".repeat(MAX_EASYCONFIG_PATH));
        assert!(long.parse::<EasyconfigKey>().is_err());
        let err = "easyconfigs/p/Python/Python-1.eb"
            .parse::<EasyconfigPath>()
            .unwrap_err();
        assert_eq!(kind_of(err), NameKind::EasyconfigPath);
        assert!(serde_json::from_str::<EasyconfigPath>(r#""p/Python/../Python-1.eb""#).is_err());
    }

    #[test]
    fn the_s3_layout() {
        let pl = p("amzn-2023_graviton-3");
        let ex = e("run-1");
        let py = m("Python/3.11.3-GCCcore-12.3.0");
        assert_eq!(
            tarball_key(&pl, &py),
            "amzn-2023_graviton-3/software/Python/3.11.3-GCCcore-12.3.0.tar.zst"
        );
        assert_eq!(
            module_file_key(&pl, &py),
            "amzn-2023_graviton-3/modules/all/Python/3.11.3-GCCcore-12.3.0.lua"
        );
        assert_eq!(
            manifest_key(&pl, &ex, 7),
            "amzn-2023_graviton-3/manifests/run-1/7.json"
        );
        assert_eq!(
            log_prefix(&pl, &py),
            "amzn-2023_graviton-3/logs/Python/3.11.3-GCCcore-12.3.0/"
        );
        assert_eq!(plan_key(&ex), "plans/run-1/plan.json");
        assert_eq!(batch_prefix(&ex, &pl), "plans/run-1/amzn-2023_graviton-3/");
        assert_eq!(
            batch_key(&ex, &pl, 3),
            "plans/run-1/amzn-2023_graviton-3/3.json"
        );
        let path: EasyconfigPath = "p/Python/Python-3.11.3-GCCcore-12.3.0.eb".parse().unwrap();
        assert_eq!(
            easyconfig_key(&path),
            "easyconfigs/p/Python/Python-3.11.3-GCCcore-12.3.0.eb"
        );
        assert_eq!(source_prefix(&py), "sources/p/Python/");
        assert_eq!(
            source_prefix(&m("2decomp-fft/2.0.4")),
            "sources/0/2decomp-fft/"
        );
        assert_eq!(
            source_prefix(&m("WebKitGTK+/2.41.4")),
            "sources/w/WebKitGTK+/"
        );
    }

    #[test]
    fn hidden_modules_keep_their_dot_and_never_collide() {
        let pl = p("amzn-2023_graviton-3");
        let hidden = m("zlib/.1.3");
        let visible = m("zlib/1.3");
        assert_eq!(
            tarball_key(&pl, &hidden),
            "amzn-2023_graviton-3/software/zlib/.1.3.tar.zst"
        );
        assert_eq!(
            module_file_key(&pl, &hidden),
            "amzn-2023_graviton-3/modules/all/zlib/.1.3.lua"
        );
        assert_eq!(
            log_prefix(&pl, &hidden),
            "amzn-2023_graviton-3/logs/zlib/.1.3/"
        );
        assert_ne!(tarball_key(&pl, &hidden), tarball_key(&pl, &visible));
        assert_ne!(log_prefix(&pl, &hidden), log_prefix(&pl, &visible));
        assert_eq!(hidden.install_subdir(), visible.install_subdir());
    }

    fn sha(s: &str) -> String {
        sha256_hex(s.as_bytes())
    }

    fn planned(module: &str, deps: &[&str]) -> PlannedModule {
        let (name, version) = module.split_once('/').unwrap();
        let letter = letter_dir_for(name);
        PlannedModule {
            module: module.into(),
            easyconfig: format!(
                "{letter}/{name}/{name}-{}.eb",
                version.trim_start_matches('.')
            ),
            easyconfig_sha256: sha(module),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn table(mods: &[PlannedModule]) -> ModuleTable {
        mods.iter().map(|p| (p.module.clone(), p.clone())).collect()
    }

    fn two_batch_plan(platform: &Platform) -> (PlatformPlan, ModuleTable) {
        let t = table(&[
            planned("zlib/1.3-GCCcore-13.2.0", &["GCCcore/13.2.0"]),
            planned("Python/3.11.5-GCCcore-13.2.0", &["zlib/1.3-GCCcore-13.2.0"]),
            planned(
                "WebKitGTK+/2.41.4-foss-2023a",
                &["Python/3.11.5-GCCcore-13.2.0"],
            ),
        ]);
        let plan = PlatformPlan {
            platform: platform.name.clone(),
            arch: platform.arch(),
            targets: vec!["WebKitGTK+/2.41.4-foss-2023a".into()],
            closure: 4,
            already_built: 1,
            unresolvable: vec![],
            batches: vec![
                Batch {
                    index: 0,
                    modules: vec!["zlib/1.3-GCCcore-13.2.0".into()],
                    needs: vec!["GCCcore/13.2.0".into()],
                    after: vec![],
                },
                Batch {
                    index: 1,
                    modules: vec![
                        "Python/3.11.5-GCCcore-13.2.0".into(),
                        "WebKitGTK+/2.41.4-foss-2023a".into(),
                    ],
                    needs: vec!["GCCcore/13.2.0".into(), "zlib/1.3-GCCcore-13.2.0".into()],
                    after: vec![0],
                },
            ],
        };
        (plan, t)
    }

    #[test]
    fn batch_file_from_a_platform_plan() {
        let ps = platforms();
        let gpu = &ps.platforms[2];
        let (plan, t) = two_batch_plan(gpu);
        let ex = e("run-1");
        let f = BatchFile::new(&plan, &t, gpu, &ex, 1).unwrap();
        assert_eq!(f.platform.as_str(), "amzn-2023_epyc-gen-3_h100");
        assert_eq!(f.arch, Arch::X86_64);
        assert_eq!(f.archspec, "zen3");
        assert_eq!(f.optarch, "GCC:march=znver3");
        assert_eq!(f.cuda_compute_capability.as_deref(), Some("9.0"));
        assert_eq!(f.batch, 1);
        assert_eq!(f.after, [0]);
        assert_eq!(f.builds.len(), 2);
        let w = &f.builds[1];
        assert_eq!(w.module, m("WebKitGTK+/2.41.4-foss-2023a"));
        assert_eq!(
            w.easyconfig.as_str(),
            "w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb"
        );
        assert_eq!(
            w.easyconfig_key,
            "easyconfigs/w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb"
        );
        assert_eq!(w.easyconfig_sha256, sha("WebKitGTK+/2.41.4-foss-2023a"));
        assert_eq!(f.needs.len(), 2);
        assert_eq!(
            f.needs[1].tarball_key,
            "amzn-2023_epyc-gen-3_h100/software/zlib/1.3-GCCcore-13.2.0.tar.zst"
        );
        assert_eq!(
            f.needs[1].module_file_key,
            "amzn-2023_epyc-gen-3_h100/modules/all/zlib/1.3-GCCcore-13.2.0.lua"
        );
        assert_eq!(f.key(), "plans/run-1/amzn-2023_epyc-gen-3_h100/1.json");
        assert_eq!(
            f.manifest_key(),
            "amzn-2023_epyc-gen-3_h100/manifests/run-1/1.json"
        );
        // Round trip through JSON, validated.
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(BatchFile::from_json(&json).unwrap(), f);
        // CPU-only platforms have no compute capability.
        let cpu = &ps.platforms[1];
        let (plan, t) = two_batch_plan(cpu);
        let f0 = BatchFile::new(&plan, &t, cpu, &ex, 0).unwrap();
        assert_eq!(f0.cuda_compute_capability, None);
        assert!(f0.after.is_empty());
        assert!(json.contains("\"cuda_compute_capability\":\"9.0\""));
    }

    #[test]
    fn batch_file_from_a_whole_plan() {
        let ps = platforms();
        let arm = &ps.platforms[0];
        let (pp, t) = two_batch_plan(arm);
        let plan = Plan {
            easyconfigs: 3,
            problems: HashMap::new(),
            platforms: vec![pp],
            modules: HashMap::from([(Arch::Aarch64, t)]),
            dot: None,
        };
        let ex = e("run-2");
        let f = BatchFile::from_plan(&plan, arm, &ex, 0).unwrap();
        assert_eq!(f.arch, Arch::Aarch64);
        assert_eq!(f.builds[0].module, m("zlib/1.3-GCCcore-13.2.0"));
        assert!(matches!(
            BatchFile::from_plan(&plan, &ps.platforms[1], &ex, 0),
            Err(KeyError::NoPlatform(_))
        ));
        assert!(matches!(
            BatchFile::from_plan(&plan, arm, &ex, 2),
            Err(KeyError::NoBatch { batch: 2, .. })
        ));
        let mut no_table = plan.clone();
        no_table.modules.clear();
        assert!(matches!(
            BatchFile::from_plan(&no_table, arm, &ex, 0),
            Err(KeyError::NoModuleTable(Arch::Aarch64))
        ));
    }

    #[test]
    fn batch_file_refuses_invalid_plans() {
        let ps = platforms();
        let pl = &ps.platforms[1];
        let ex = e("run-1");
        // A hostile module name in the batch.
        let (mut plan, mut t) = two_batch_plan(pl);
        plan.batches[0].modules.push("a/b;rm -rf /".into());
        t.insert("a/b;rm -rf /".into(), planned("a/b", &[]));
        let err = BatchFile::new(&plan, &t, pl, &ex, 0).unwrap_err();
        assert_eq!(kind_of(err), NameKind::Module);
        // ... in the needs.
        let (mut plan, t) = two_batch_plan(pl);
        plan.batches[1].needs.push("$(id)/1".into());
        let err = BatchFile::new(&plan, &t, pl, &ex, 1).unwrap_err();
        assert_eq!(kind_of(err), NameKind::Module);
        // A hostile easyconfig path in the table.
        let (plan, mut t) = two_batch_plan(pl);
        t.get_mut("zlib/1.3-GCCcore-13.2.0").unwrap().easyconfig = "../../etc/passwd.eb".into();
        let err = BatchFile::new(&plan, &t, pl, &ex, 0).unwrap_err();
        assert_eq!(kind_of(err), NameKind::EasyconfigPath);
        // A checksum that is not one.
        let (plan, mut t) = two_batch_plan(pl);
        t.get_mut("zlib/1.3-GCCcore-13.2.0")
            .unwrap()
            .easyconfig_sha256 = "abc;id".into();
        let err = BatchFile::new(&plan, &t, pl, &ex, 0).unwrap_err();
        assert_eq!(kind_of(err), NameKind::Sha256);
        // A module missing from the table.
        let (plan, mut t) = two_batch_plan(pl);
        t.remove("zlib/1.3-GCCcore-13.2.0");
        assert!(matches!(
            BatchFile::new(&plan, &t, pl, &ex, 0),
            Err(KeyError::NotInTable { batch: 0, .. })
        ));
        // The plan of another platform.
        let (plan, t) = two_batch_plan(pl);
        assert!(matches!(
            BatchFile::new(&plan, &t, &ps.platforms[0], &ex, 0),
            Err(KeyError::PlatformMismatch { .. })
        ));
        // A batch that comes after itself.
        let (mut plan, t) = two_batch_plan(pl);
        plan.batches[1].after = vec![1];
        assert!(matches!(
            BatchFile::new(&plan, &t, pl, &ex, 1),
            Err(KeyError::BatchOrder { batch: 1, .. })
        ));
        // A platform whose settings would reach the node unchecked.
        let (plan, t) = two_batch_plan(pl);
        let mut bad = pl.clone();
        bad.cpu.optarch = "GCC:march=znver3 $(id)".into();
        let err = BatchFile::new(&plan, &t, &bad, &ex, 0).unwrap_err();
        assert_eq!(kind_of(err), NameKind::Optarch);
        let mut bad = pl.clone();
        bad.cpu.archspec = "zen3\nx".into();
        let err = BatchFile::new(&plan, &t, &bad, &ex, 0).unwrap_err();
        assert_eq!(kind_of(err), NameKind::Archspec);
        let mut bad = ps.platforms[2].clone();
        bad.gpu.as_mut().unwrap().cuda_compute_capability = Some("9.0;id".into());
        let (plan, t) = two_batch_plan(&bad);
        let err = BatchFile::new(&plan, &t, &bad, &ex, 0).unwrap_err();
        assert_eq!(kind_of(err), NameKind::CudaComputeCapability);
    }

    #[test]
    fn tampered_batch_files_are_refused() {
        let ps = platforms();
        let pl = &ps.platforms[1];
        let (plan, t) = two_batch_plan(pl);
        let f = BatchFile::new(&plan, &t, pl, &e("run-1"), 1).unwrap();
        let json = serde_json::to_string(&f).unwrap();
        for (from, to) in [
            ("zlib/1.3-GCCcore-13.2.0\"", "zlib/1.3;id\""),
            ("\"execution\":\"run-1\"", "\"execution\":\"run 1\""),
            (
                "\"platform\":\"amzn-2023_epyc-gen-3\"",
                "\"platform\":\"../x_y\"",
            ),
            ("\"easyconfig\":\"p/", "\"easyconfig\":\"/p/"),
        ] {
            let bad = json.replacen(from, to, 1);
            assert_ne!(bad, json, "{from}");
            assert!(BatchFile::from_json(&bad).is_err(), "{to}");
        }
        // Keys that do not follow the layout.
        let mut g = f.clone();
        g.needs[0].tarball_key = "other/key.tar.zst".into();
        assert!(matches!(g.validate(), Err(KeyError::Inconsistent { .. })));
        let mut g = f.clone();
        g.needs[0].module_file_key = "other/key.lua".into();
        assert!(matches!(g.validate(), Err(KeyError::Inconsistent { .. })));
        let mut g = f.clone();
        g.builds[0].easyconfig_key = "easyconfigs/x.eb".into();
        assert!(matches!(g.validate(), Err(KeyError::Inconsistent { .. })));
        let mut g = f.clone();
        g.builds[0].easyconfig_sha256 = "ABC".into();
        assert_eq!(kind_of(g.validate().unwrap_err()), NameKind::Sha256);
        assert!(matches!(BatchFile::from_json("{"), Err(KeyError::Json(_))));
    }

    fn synthetic_plan(platforms: &[&Platform], batches: usize, per_batch: usize) -> Plan {
        let mut modules: HashMap<Arch, ModuleTable> = HashMap::new();
        let plans = platforms
            .iter()
            .map(|pl| {
                let table = modules.entry(pl.arch()).or_default();
                let list: Vec<Batch> = (0..batches)
                    .map(|index| {
                        let mods: Vec<String> = (0..per_batch)
                            .map(|j| format!("Software-{index}-{j}/1.0-GCCcore-13.2.0"))
                            .collect();
                        for mname in &mods {
                            table.insert(mname.clone(), planned(mname, &[]));
                        }
                        Batch {
                            index,
                            needs: (0..index)
                                .map(|i| format!("Software-{i}-0/1.0-GCCcore-13.2.0"))
                                .collect(),
                            modules: mods,
                            // The worst case: every batch after every earlier one.
                            after: (0..index).collect(),
                        }
                    })
                    .collect();
                PlatformPlan {
                    platform: pl.name.clone(),
                    arch: pl.arch(),
                    targets: vec![],
                    closure: batches * per_batch + 10,
                    batches: list,
                    already_built: 10,
                    unresolvable: vec![Unresolvable {
                        easyconfig: "x/X/X-1.eb".into(),
                        error: "no".into(),
                    }],
                }
            })
            .collect();
        Plan {
            easyconfigs: 0,
            problems: HashMap::new(),
            platforms: plans,
            modules,
            dot: None,
        }
    }

    #[test]
    fn plan_output_of_3_platforms_by_200_batches_fits_a_state() {
        let ps = platforms();
        let refs: Vec<&Platform> = ps.platforms.iter().collect();
        let plan = synthetic_plan(&refs, 200, 50);
        let ex = e(&"e".repeat(80));
        let out = PlanOutput::new(&plan, &refs, &ex).unwrap();
        let json = serde_json::to_string(&out).unwrap();
        assert!(json.len() < STATE_PAYLOAD_LIMIT, "{} bytes", json.len());
        assert!(!out.nothing_to_do);
        assert_eq!(out.plan_key, format!("plans/{ex}/plan.json"));
        assert_eq!(out.platforms.len(), 3);
        let gpu = &out.platforms[2];
        assert_eq!(gpu.platform.as_str(), "amzn-2023_epyc-gen-3_h100");
        assert_eq!(gpu.arch, Arch::X86_64);
        assert_eq!(gpu.families, ["p5"]);
        assert_eq!(gpu.to_build, 200 * 50);
        assert_eq!(gpu.already_built, 10);
        assert_eq!(gpu.unresolvable, 1);
        assert_eq!(gpu.batches, 200);
        assert_eq!(
            gpu.batch_prefix,
            format!("plans/{ex}/amzn-2023_epyc-gen-3_h100/")
        );
        // Batch i's key is the prefix and the index: what batch_key gives.
        assert_eq!(
            format!("{}199.json", gpu.batch_prefix),
            batch_key(&ex, &gpu.platform, 199)
        );
        let back: PlanOutput = serde_json::from_str(&json).unwrap();
        assert_eq!(back, out);
    }

    #[test]
    fn plan_output_size_does_not_grow_with_batches() {
        let ps = platforms();
        let refs: Vec<&Platform> = ps.platforms.iter().collect();
        let ex = e("run-1");
        let small = PlanOutput::new(&synthetic_plan(&refs, 1, 1), &refs, &ex).unwrap();
        let big = PlanOutput::new(&synthetic_plan(&refs, 2000, 5), &refs, &ex).unwrap();
        let len = |o: &PlanOutput| serde_json::to_string(o).unwrap().len();
        // Only the digits of the counts differ.
        assert!(
            len(&big) < len(&small) + 3 * 12,
            "{} vs {}",
            len(&big),
            len(&small)
        );
    }

    #[test]
    fn plan_with_nothing_to_build_is_nothing_to_do() {
        let ps = platforms();
        let refs: Vec<&Platform> = ps.platforms.iter().collect();
        let plan = synthetic_plan(&refs, 0, 0);
        let out = PlanOutput::new(&plan, &refs, &e("run-1")).unwrap();
        assert!(out.nothing_to_do);
        assert!(out
            .platforms
            .iter()
            .all(|p| p.batches == 0 && p.to_build == 0));
        // No platform at all is nothing to do too.
        let empty = synthetic_plan(&[], 0, 0);
        assert!(
            PlanOutput::new(&empty, &refs, &e("run-1"))
                .unwrap()
                .nothing_to_do
        );
        // One platform with work is enough.
        let mut plan = synthetic_plan(&refs, 0, 0);
        plan.platforms[1] = synthetic_plan(&refs[1..2], 1, 1).platforms.remove(0);
        assert!(
            !PlanOutput::new(&plan, &refs, &e("run-1"))
                .unwrap()
                .nothing_to_do
        );
    }

    #[test]
    fn plan_output_refuses_unknown_platforms_and_disordered_batches() {
        let ps = platforms();
        let refs: Vec<&Platform> = ps.platforms.iter().collect();
        let ex = e("run-1");
        let plan = synthetic_plan(&refs, 3, 1);
        assert!(matches!(
            PlanOutput::new(&plan, &refs[..2], &ex),
            Err(KeyError::NoPlatform(_))
        ));
        let mut bad = plan.clone();
        bad.platforms[0].batches[1].after = vec![2];
        assert!(matches!(
            PlanOutput::new(&bad, &refs, &ex),
            Err(KeyError::BatchOrder { batch: 1, .. })
        ));
        let mut bad = plan.clone();
        bad.platforms[0].batches.swap(0, 1);
        assert!(matches!(
            PlanOutput::new(&bad, &refs, &ex),
            Err(KeyError::BatchOrder { .. })
        ));
        let mut bad = plan;
        bad.platforms[0].platform = "bad platform".into();
        let mut odd = ps.platforms[0].clone();
        odd.name = "bad platform".into();
        let mut with_odd = refs.clone();
        with_odd.push(&odd);
        assert_eq!(
            kind_of(PlanOutput::new(&bad, &with_odd, &ex).unwrap_err()),
            NameKind::Platform
        );
    }
}
