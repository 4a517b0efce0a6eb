//! The CPU architecture a plan is made for. On Graviton the same easyconfig
//! can have other dependencies (`if ARCH == 'aarch64':`, `arch=` version dicts).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Arch {
    /// The value of EasyBuild's `ARCH` constant and `%(arch)s` template.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The key EasyBuild looks up in a `{'arch=...': version}` dict
    /// (`get_cpu_architecture()` spells Arm `AArch64`).
    pub fn version_key(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch=x86_64",
            Arch::Aarch64 => "arch=AArch64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(format!(
                "unknown architecture '{other}' (expected x86_64 or aarch64)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names() {
        assert_eq!("arm64".parse::<Arch>().unwrap(), Arch::Aarch64);
        assert_eq!(Arch::Aarch64.version_key(), "arch=AArch64");
        assert_eq!(Arch::X86_64.to_string(), "x86_64");
        assert!("ppc64le".parse::<Arch>().is_err());
    }
}
