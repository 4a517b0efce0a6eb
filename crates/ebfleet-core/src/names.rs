//! Validated names: everything that may end up in an S3 key or on a build
//! node's command line passes through one of the newtypes here first:
//! [`ModuleName`], [`PlatformName`], [`ExecutionName`], [`EasyconfigPath`]
//! and [`EasyconfigKey`]. They validate on construction and on
//! deserialisation, so a value of one of these types is safe to use as an S3
//! key component and as a single command-line argument (never a shell word:
//! it is still passed as an argument, not interpolated).

use crate::arch::Arch;
use crate::layout::{easyconfig_key, letter_dir_for, EASYCONFIGS_PREFIX};
use crate::platform::Platform;
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
    NodePrincipal,
    SigningKey,
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
            NameKind::NodePrincipal => "node principal",
            NameKind::SigningKey => "signing key",
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

/// `value` checked by `f`, the error naming it as a `kind`.
pub(crate) fn check(
    kind: NameKind,
    value: &str,
    f: fn(&str) -> Result<(), String>,
) -> Result<(), KeyError> {
    f(value).map_err(|reason| invalid(kind, value, reason))
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

pub(crate) fn describe_byte(b: u8) -> String {
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

#[cfg(test)]
mod tests;
