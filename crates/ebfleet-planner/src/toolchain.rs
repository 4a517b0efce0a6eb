//! Toolchains and EasyBuild's subtoolchain table.
//!
//! The table is the `SUBTOOLCHAIN`, `OPTIONAL` and composite-ness (more than
//! one base class) of every toolchain class in EasyBuild 5.4.1's
//! `easybuild/toolchains/`. The versions that turn it into a hierarchy come
//! from the toolchain easyconfigs themselves (see [`crate::hierarchy`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The name EasyBuild gives the system toolchain.
pub const SYSTEM_NAME: &str = "system";

/// A toolchain: a name and a version, e.g. `foss/2023a`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Toolchain {
    pub name: String,
    pub version: String,
}

impl Toolchain {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Toolchain {
            name: name.into(),
            version: version.into(),
        }
    }

    pub fn system() -> Self {
        Toolchain::new(SYSTEM_NAME, SYSTEM_NAME)
    }

    pub fn is_system(&self) -> bool {
        is_system_name(&self.name)
    }
}

pub fn is_system_name(name: &str) -> bool {
    name == SYSTEM_NAME
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

/// One toolchain class's place in the hierarchy.
#[derive(Debug, Clone, Copy)]
pub struct ToolchainClass {
    pub name: &'static str,
    /// Each entry is one subtoolchain; an entry with several names is a set
    /// of alternatives (EasyBuild's tuple), e.g. `intel-compilers` or `iccifort`.
    pub subtoolchains: Option<&'static [&'static [&'static str]]>,
    pub optional: bool,
    pub composite: bool,
}

macro_rules! tc {
    ($name:literal, None, $opt:literal, $comp:literal) => {
        ToolchainClass { name: $name, subtoolchains: None, optional: $opt, composite: $comp }
    };
    ($name:literal, [$([$($alt:literal),+]),+], $opt:literal, $comp:literal) => {
        ToolchainClass { name: $name, subtoolchains: Some(&[$(&[$($alt),+]),+]), optional: $opt, composite: $comp }
    };
}

/// EasyBuild 5.4.1's toolchain classes. `NVHPC` has two classes; this row is
/// the one EasyBuild's lookup ends with for every parent but `NVHPC` >= 25.
#[rustfmt::skip]
static CLASSES: &[ToolchainClass] = &[
    tc!("cgmpich", [["ClangGCC"]], false, true),
    tc!("cgmpolf", [["cgmpich"]], false, true),
    tc!("cgmvapich2", [["ClangGCC"]], false, true),
    tc!("cgmvolf", [["cgmvapich2"]], false, true),
    tc!("cgompi", [["ClangGCC"]], false, true),
    tc!("cgoolf", [["cgompi"]], false, true),
    tc!("ClangGCC", [["system"]], false, true),
    tc!("CrayCCE", [["system"]], false, true),
    tc!("CrayGNU", [["system"]], false, true),
    tc!("CrayIntel", [["system"]], false, true),
    tc!("CrayPGI", [["system"]], false, true),
    tc!("FCC", [["system"]], false, false),
    tc!("ffmpi", [["FCC"]], false, true),
    tc!("foss", [["gompi"], ["golf"], ["gfbf"]], false, true),
    tc!("fosscuda", [["gompic"], ["golfc"]], false, true),
    tc!("Fujitsu", [["ffmpi"]], false, true),
    tc!("GCC", [["GCCcore"], ["system"]], false, false),
    tc!("GCCcore", [["system"]], true, false),
    tc!("gcccuda", [["GCC"]], false, true),
    tc!("gfbf", [["GCC"]], true, true),
    tc!("gimkl", [["gimpi"], ["gmkl"]], false, true),
    tc!("gimpi", [["GCC"]], false, true),
    tc!("gimpic", [["gcccuda"]], false, true),
    tc!("giolf", [["gimpi"], ["golf"]], false, true),
    tc!("giolfc", [["gimpic"], ["golfc"]], false, true),
    tc!("gmacml", [["gmvapich2"]], false, true),
    tc!("gmkl", [["GCC"]], true, true),
    tc!("gmklc", [["gcccuda"], ["gmkl"]], true, true),
    tc!("gmpflf", [["gmpich"], ["gfbf"]], false, true),
    tc!("gmpich", [["GCC"]], false, true),
    tc!("gmpich2", [["GCC"]], false, true),
    tc!("gmpit", [["GCC"]], false, true),
    tc!("gmpolf", [["gmpich"], ["golf"]], false, true),
    tc!("gmvapich2", [["GCC"]], false, true),
    tc!("gmvolf", [["gmvapich2"], ["golf"]], false, true),
    tc!("GNU", [["system"]], false, false),
    tc!("goalf", [["gompi"]], false, true),
    tc!("gobff", [["gompi"]], false, true),
    tc!("goblf", [["gompi"]], false, true),
    tc!("gofbf", [["gompi"]], false, true),
    tc!("golf", [["GCC"]], true, true),
    tc!("golfc", [["gcccuda"], ["golf"]], true, true),
    tc!("gomkl", [["gompi"], ["gmkl"]], false, true),
    tc!("gomklc", [["gompic"], ["gmklc"]], false, true),
    tc!("gompi", [["GCC"]], false, true),
    tc!("gompic", [["gcccuda"]], false, true),
    tc!("goolf", [["gompi"], ["golf"]], false, true),
    tc!("goolfc", [["gompic"], ["golfc"]], false, true),
    tc!("gpsmpi", [["GCC"]], false, true),
    tc!("gpsolf", [["gpsmpi"], ["golf"]], false, true),
    tc!("gqacml", [["GCC"]], false, true),
    tc!("gsmpi", [["GCC"]], false, true),
    tc!("gsolf", [["gsmpi"], ["golf"]], false, true),
    tc!("iccifort", [["GCCcore"], ["system"]], false, false),
    tc!("iccifortcuda", [["iccifort"]], false, true),
    tc!("ictce", [["iimpi"], ["iimkl"]], false, true),
    tc!("ifbf", [["intel-compilers"]], true, true),
    tc!("iibff", [["iimpi"]], false, true),
    tc!("iimkl", [["intel-compilers", "iccifort"]], true, true),
    tc!("iimklc", [["iccifortcuda"], ["iimkl"]], true, true),
    tc!("iimpi", [["intel-compilers", "iccifort"]], false, true),
    tc!("iimpic", [["iccifortcuda"]], false, true),
    tc!("iiqmpi", [["iccifort"]], false, true),
    tc!("impich", [["iccifort"]], false, true),
    tc!("impmkl", [["impich"], ["iimkl"]], false, true),
    tc!("intel", [["iimpi"], ["iimkl"]], false, true),
    tc!("intel-compilers", [["GCCcore"], ["system"]], false, false),
    tc!("intel-para", [["ipsmpi"], ["iimkl"]], false, true),
    tc!("intelcuda", [["iimpic"], ["iimklc"]], false, true),
    tc!("iofbf", [["iompi"], ["ifbf"]], false, true),
    tc!("iomkl", [["iompi"], ["iimkl"]], false, true),
    tc!("iomklc", [["iompic"], ["iimklc"]], false, true),
    tc!("iompi", [["intel-compilers", "iccifort"]], false, true),
    tc!("iompic", [["iccifortcuda"]], false, true),
    tc!("ipsmpi", [["iccifort"]], false, true),
    tc!("iqacml", [["iiqmpi"]], false, true),
    tc!("ismkl", [["iccifort"], ["iimkl"]], false, true),
    tc!("lfbf", [["llvm-compilers"]], true, true),
    tc!("lfoss", [["lompi"], ["lfbf"]], false, true),
    tc!("llvm-compilers", [["GCCcore"], ["system"]], false, false),
    tc!("lmpflf", [["lmpich"], ["lfbf"]], false, true),
    tc!("lmpich", [["llvm-compilers"]], false, true),
    tc!("lompi", [["llvm-compilers"]], false, true),
    tc!("lpsflf", [["lpsmpi"], ["lfbf"]], false, true),
    tc!("lpsmpi", [["llvm-compilers"]], false, true),
    // Both NVHPC classes are optional and one is composite, so the name is both.
    tc!("NVHPC", [["GCCcore"], ["system"]], true, true),
    tc!("nvidia-compilers", [["GCCcore"], ["system"]], true, false),
    tc!("nvofbf", [["nvompi"]], true, true),
    tc!("nvompi", [["NVHPC"], ["nvidia-compilers"]], true, true),
    tc!("nvompic", [["nvidia-compilers"]], true, true),
    tc!("nvpsmpi", [["nvidia-compilers"]], true, true),
    tc!("nvpsmpic", [["nvidia-compilers"]], true, true),
    tc!("PGI", [["GCCcore"], ["system"]], false, false),
    tc!("pmkl", [["PGI"]], true, true),
    tc!("pomkl", [["pompi"], ["pmkl"]], false, true),
    tc!("pompi", [["PGI"]], false, true),
    tc!("rfbf", [["rocm-compilers"]], true, true),
    tc!("rfoss", [["rompi"], ["rfbf"]], false, true),
    tc!("rocm-compilers", [["GCCcore"], ["system"]], false, false),
    tc!("rompi", [["rocm-compilers"]], false, true),
    tc!("system", None, false, false),
    tc!("xlcxlf", None, false, false),
    tc!("xlmpich", None, false, true),
    tc!("xlmpich2", None, false, true),
    tc!("xlmvapich2", None, false, true),
    tc!("xlompi", None, false, true),
];

/// NVHPC >= 25 is the composite toolchain on top of `nvidia-compilers`.
static NVHPC_COMPOSITE: ToolchainClass = tc!("NVHPC", [["nvidia-compilers"]], true, true);

/// The class table as EasyBuild sees it when building the hierarchy of `parent`.
pub fn class_for(name: &str, parent: &Toolchain) -> Option<&'static ToolchainClass> {
    if name == "NVHPC"
        && parent.name == "NVHPC"
        && crate::version::compare(&parent.version, "25.0") != std::cmp::Ordering::Less
    {
        return Some(&NVHPC_COMPOSITE);
    }
    CLASSES.iter().find(|c| c.name == name)
}

/// Whether `name` is a toolchain EasyBuild knows.
pub fn is_known(name: &str) -> bool {
    CLASSES.iter().any(|c| c.name == name)
}

/// Every toolchain name EasyBuild knows.
pub fn known_names() -> impl Iterator<Item = &'static str> {
    CLASSES.iter().map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foss_has_three_subtoolchains_and_gcc_two() {
        let foss = class_for("foss", &Toolchain::new("foss", "2023a")).unwrap();
        assert_eq!(
            foss.subtoolchains.unwrap(),
            &[&["gompi"][..], &["golf"], &["gfbf"]]
        );
        let gcc = class_for("GCC", &Toolchain::new("GCC", "12.3.0")).unwrap();
        assert_eq!(gcc.subtoolchains.unwrap().len(), 2);
        assert!(class_for("GCCcore", &Toolchain::system()).unwrap().optional);
        assert!(class_for("system", &Toolchain::system())
            .unwrap()
            .subtoolchains
            .is_none());
    }

    #[test]
    fn nvhpc_class_depends_on_parent_version() {
        let old = Toolchain::new("NVHPC", "24.9");
        let new = Toolchain::new("NVHPC", "25.3");
        assert_eq!(
            class_for("NVHPC", &old).unwrap().subtoolchains.unwrap()[0],
            ["GCCcore"]
        );
        assert_eq!(
            class_for("NVHPC", &new).unwrap().subtoolchains.unwrap()[0],
            ["nvidia-compilers"]
        );
        // Under another parent, the compiler-only class wins, as in EasyBuild.
        let nvompi = Toolchain::new("nvompi", "2022.07");
        assert_eq!(
            class_for("NVHPC", &nvompi).unwrap().subtoolchains.unwrap()[0],
            ["GCCcore"]
        );
    }

    #[test]
    fn display_and_system() {
        assert_eq!(Toolchain::new("foss", "2023a").to_string(), "foss/2023a");
        assert!(Toolchain::system().is_system());
        assert!(!Toolchain::new("GCCcore", "12.3.0").is_system());
    }
}
