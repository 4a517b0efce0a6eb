//! Platforms: a CPU family (and optionally a GPU) that gets its own build of
//! the stack, e.g. `amzn-2023_graviton-3` or `amzn-2023_epyc-gen-3_h100`.
//!
//! They are data (`data/platforms.toml`, shipped as the default and
//! replaceable by the user): CPU generations with their archspec name,
//! `--optarch` and EC2 families; GPUs with their compute capability and
//! families; and the list of platforms to plan for.

use crate::arch::Arch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The platforms file shipped with ebfleet.
pub const DEFAULT_PLATFORMS_TOML: &str = include_str!("../data/platforms.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub arch: Arch,
    pub archspec: String,
    pub optarch: String,
    pub vendor: String,
    pub families: Vec<String>,
    /// What a module gets when its GCC is too old for `optarch`: the
    /// flags to fall back on, best first, each with the oldest GCC release
    /// that accepts it ([`Cpu::optarch_for_gcc`]). The first step is
    /// `optarch`'s own flags.
    #[serde(default)]
    pub optarch_by_gcc: Vec<OptarchStep>,
}

/// One step of a CPU's optarch chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptarchStep {
    /// The oldest GCC release that accepts `flags`, e.g. `12.3`.
    pub gcc: String,
    /// GCC flags without the leading `-`, as in `optarch` after `GCC:`.
    pub flags: String,
}

impl Cpu {
    /// EasyBuild's `--optarch` for a module whose toolchain compiles with
    /// GCC `gcc` (e.g. `12.2.0`): the first step of the chain that GCC
    /// accepts, as `GCC:<flags>`; `optarch` itself when the CPU has no
    /// chain or no step fits.
    pub fn optarch_for_gcc(&self, gcc: &str) -> String {
        self.optarch_by_gcc
            .iter()
            .find(|s| gcc_at_least(gcc, &s.gcc))
            .map_or_else(|| self.optarch.clone(), |s| format!("GCC:{}", s.flags))
    }

    /// Whether the chain is usable: releases newest first, valid versions,
    /// the first step `optarch`'s flags.
    fn check_chain(&self) -> Result<(), String> {
        let Some(first) = self.optarch_by_gcc.first() else {
            return Ok(());
        };
        if format!("GCC:{}", first.flags) != self.optarch {
            return Err(format!(
                "its first step ({}) is not optarch ({})",
                first.flags, self.optarch
            ));
        }
        for s in &self.optarch_by_gcc {
            if version_parts(&s.gcc).is_none() || s.flags.is_empty() || s.flags.contains([':', ';'])
            {
                return Err(format!("step {{gcc = {:?}, flags = {:?}}}", s.gcc, s.flags));
            }
        }
        for w in self.optarch_by_gcc.windows(2) {
            if gcc_at_least(&w[1].gcc, &w[0].gcc) {
                return Err(format!(
                    "{} (GCC {}) comes after {} (GCC {}): older releases last",
                    w[1].flags, w[1].gcc, w[0].flags, w[0].gcc
                ));
            }
        }
        Ok(())
    }
}

/// The layer of CUDA compute capability `cc` (`9.0`) under a node's root:
/// `accel/nvidia/cc90`, as EESSI lays its GPU builds over the CPU stack.
pub fn cuda_layer(cc: &str) -> String {
    format!("accel/nvidia/cc{}", cc.replace('.', ""))
}

/// `12.3.0` as `[12, 3, 0]`.
fn version_parts(v: &str) -> Option<Vec<u32>> {
    v.split('.').map(|p| p.parse().ok()).collect()
}

/// Whether GCC release `version` is `min` or newer (missing parts are 0:
/// `12.3` is `12.3.0`); a version that does not parse is not.
pub fn gcc_at_least(version: &str, min: &str) -> bool {
    match (version_parts(version), version_parts(min)) {
        (Some(mut v), Some(mut m)) => {
            let n = v.len().max(m.len());
            v.resize(n, 0);
            m.resize(n, 0);
            v >= m
        }
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub model: String,
    pub vendor: String,
    /// `None` for accelerators that do not run CUDA.
    #[serde(default)]
    pub cuda_compute_capability: Option<String>,
    #[serde(default)]
    pub memory_gib: Option<u32>,
    pub families: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformSpec {
    os: String,
    cpu: String,
    #[serde(default)]
    gpu: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformsFile {
    cpu: BTreeMap<String, Cpu>,
    #[serde(default)]
    gpu: BTreeMap<String, Gpu>,
    #[serde(default)]
    platform: Vec<PlatformSpec>,
}

/// One platform, resolved: everything capacity and the build node need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Platform {
    /// `<os>_<cpu>[_<gpu>]`, the prefix of its S3 keys and DynamoDB items.
    pub name: String,
    pub os: String,
    pub cpu_name: String,
    pub cpu: Cpu,
    pub gpu_name: Option<String>,
    pub gpu: Option<Gpu>,
    /// EC2 instance families to request capacity from. A CUDA overlay's
    /// are its base's: CUDA software compiles without a GPU
    /// (`--cuda-compute-capabilities`), on the CPU generation it runs on.
    pub families: Vec<String>,
    /// A CUDA platform is an overlay: the CPU platform (same OS and CPU)
    /// whose stack it layers its CUDA modules over, built there first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

impl Platform {
    pub fn arch(&self) -> Arch {
        self.cpu.arch
    }

    /// Whether CUDA variants of software are built here.
    pub fn has_cuda(&self) -> bool {
        self.gpu
            .as_ref()
            .is_some_and(|g| g.cuda_compute_capability.is_some())
    }

    /// Whether its build nodes need a GPU: a GPU platform that is not a
    /// CUDA overlay (accelerators other than CUDA build everything there).
    pub fn builds_on_gpu(&self) -> bool {
        self.gpu.is_some() && self.base.is_none()
    }

    /// Where an overlay installs under the node's root, apart from its
    /// base's `software/` and `modules/` and loadable with them (EESSI's
    /// `accel/nvidia/cc90` layout): `accel/nvidia/cc<major><minor>`.
    pub fn layer(&self) -> Option<String> {
        self.base.as_ref()?;
        let cc = self.gpu.as_ref()?.cuda_compute_capability.as_ref()?;
        Some(cuda_layer(cc))
    }

    /// Whether `query` names this platform: its full name, or `cpu[_gpu]`.
    pub fn matches(&self, query: &str) -> bool {
        let short = match &self.gpu_name {
            Some(g) => format!("{}_{}", self.cpu_name, g),
            None => self.cpu_name.clone(),
        };
        query == self.name || query == short
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("platforms file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("platform {index} names unknown cpu '{cpu}'")]
    UnknownCpu { index: usize, cpu: String },
    #[error("platform {index} names unknown gpu '{gpu}'")]
    UnknownGpu { index: usize, gpu: String },
    #[error("platform {name} has no instance family: cpu and gpu families do not overlap")]
    NoFamilies { name: String },
    #[error("cpu {cpu}: optarch_by_gcc: {reason}")]
    Chain { cpu: String, reason: String },
    #[error("platform {name} layers over {base}, which is not listed: add [[platform]] os = \"{os}\", cpu = \"{cpu}\"")]
    NoBase {
        name: String,
        base: String,
        os: String,
        cpu: String,
    },
    #[error("platform {name} is listed twice")]
    Duplicate { name: String },
    #[error("unknown platform '{query}'{} (known: {known})", hint(.query, .known))]
    Unknown { query: String, known: String },
}

/// "Did you mean" among the known names (`a, b, ...`) and their short forms.
fn hint(query: &str, known: &str) -> String {
    let full = known.split(", ");
    let short = known
        .split(", ")
        .filter_map(|n| n.split_once('_').map(|(_, s)| s));
    crate::suggest::did_you_mean(query, full.chain(short))
}

/// The CPUs, GPUs and platforms of one platforms file.
#[derive(Debug, Clone)]
pub struct Platforms {
    pub cpus: BTreeMap<String, Cpu>,
    pub gpus: BTreeMap<String, Gpu>,
    pub platforms: Vec<Platform>,
}

impl Platforms {
    pub fn default_set() -> Result<Self, PlatformError> {
        Self::from_toml(DEFAULT_PLATFORMS_TOML)
    }

    pub fn from_toml(text: &str) -> Result<Self, PlatformError> {
        let file: PlatformsFile = toml::from_str(text)?;
        for (name, cpu) in &file.cpu {
            cpu.check_chain().map_err(|reason| PlatformError::Chain {
                cpu: name.clone(),
                reason,
            })?;
        }
        let gpu_families: Vec<&String> =
            file.gpu.values().flat_map(|g| g.families.iter()).collect();
        let mut platforms: Vec<Platform> = Vec::new();
        for (index, spec) in file.platform.iter().enumerate() {
            let cpu = file
                .cpu
                .get(&spec.cpu)
                .ok_or_else(|| PlatformError::UnknownCpu {
                    index,
                    cpu: spec.cpu.clone(),
                })?;
            let gpu = match &spec.gpu {
                Some(g) => Some(file.gpu.get(g).ok_or_else(|| PlatformError::UnknownGpu {
                    index,
                    gpu: g.clone(),
                })?),
                None => None,
            };
            let name = match &spec.gpu {
                Some(g) => format!("{}_{}_{}", spec.os, spec.cpu, g),
                None => format!("{}_{}", spec.os, spec.cpu),
            };
            let cuda = gpu.is_some_and(|g| g.cuda_compute_capability.is_some());
            let base = cuda.then(|| format!("{}_{}", spec.os, spec.cpu));
            let families: Vec<String> = match gpu {
                // An overlay builds on its base's CPU-only families.
                Some(_) if cuda => cpu
                    .families
                    .iter()
                    .filter(|f| !gpu_families.contains(f))
                    .cloned()
                    .collect(),
                Some(g) => cpu
                    .families
                    .iter()
                    .filter(|f| g.families.contains(f))
                    .cloned()
                    .collect(),
                None => cpu
                    .families
                    .iter()
                    .filter(|f| !gpu_families.contains(f))
                    .cloned()
                    .collect(),
            };
            let on_gpu: Vec<&String> = match gpu {
                Some(g) => cpu
                    .families
                    .iter()
                    .filter(|f| g.families.contains(f))
                    .collect(),
                None => Vec::new(),
            };
            if families.is_empty() || (gpu.is_some() && on_gpu.is_empty()) {
                return Err(PlatformError::NoFamilies { name });
            }
            if platforms.iter().any(|p| p.name == name) {
                return Err(PlatformError::Duplicate { name });
            }
            platforms.push(Platform {
                name,
                os: spec.os.clone(),
                cpu_name: spec.cpu.clone(),
                cpu: cpu.clone(),
                gpu_name: spec.gpu.clone(),
                gpu: gpu.cloned(),
                families,
                base,
            });
        }
        for p in &platforms {
            if let Some(base) = p
                .base
                .as_ref()
                .filter(|b| !platforms.iter().any(|q| &q.name == *b))
            {
                return Err(PlatformError::NoBase {
                    name: p.name.clone(),
                    base: base.clone(),
                    os: p.os.clone(),
                    cpu: p.cpu_name.clone(),
                });
            }
        }
        Ok(Platforms {
            cpus: file.cpu,
            gpus: file.gpu,
            platforms,
        })
    }

    /// The platforms named by `queries` (full or `cpu[_gpu]` names), or all;
    /// an overlay brings its base, which it needs built first.
    pub fn select(&self, queries: &[String]) -> Result<Vec<&Platform>, PlatformError> {
        if queries.is_empty() {
            return Ok(self.platforms.iter().collect());
        }
        let asked: Vec<&Platform> = queries
            .iter()
            .map(|q| {
                self.platforms
                    .iter()
                    .find(|p| p.matches(q))
                    .ok_or_else(|| PlatformError::Unknown {
                        query: q.clone(),
                        known: self
                            .platforms
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut out: Vec<&Platform> = Vec::new();
        for p in asked {
            if let Some(base) = p.base.as_ref().and_then(|b| self.get(b)) {
                if !out.iter().any(|q| q.name == base.name) {
                    out.push(base);
                }
            }
            if !out.iter().any(|q| q.name == p.name) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The platform named `name` exactly.
    pub fn get(&self, name: &str) -> Option<&Platform> {
        self.platforms.iter().find(|p| p.name == name)
    }
}

/// Two CPUs, a GPU and three platforms: what the tests of this crate and
/// of the crates above it plan for.
#[doc(hidden)]
pub const SMALL: &str = r#"
[cpu.graviton-3]
arch = "aarch64"
archspec = "neoverse_v1"
optarch = "GCC:mcpu=neoverse-v1"
vendor = "aws"
families = ["c7g", "m7g"]

[cpu.epyc-gen-3]
arch = "x86_64"
archspec = "zen3"
optarch = "GCC:march=znver3"
vendor = "amd"
families = ["c6a", "m6a", "p5"]

[gpu.h100]
model = "NVIDIA H100"
vendor = "nvidia"
cuda_compute_capability = "9.0"
memory_gib = 80
families = ["p5"]

[[platform]]
os = "amzn-2023"
cpu = "graviton-3"

[[platform]]
os = "amzn-2023"
cpu = "epyc-gen-3"

[[platform]]
os = "amzn-2023"
cpu = "epyc-gen-3"
gpu = "h100"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_combine_cpu_and_gpu_families() {
        let p = Platforms::from_toml(SMALL).unwrap();
        let names: Vec<&str> = p.platforms.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "amzn-2023_graviton-3",
                "amzn-2023_epyc-gen-3",
                "amzn-2023_epyc-gen-3_h100"
            ]
        );
        // The CPU-only platform leaves the GPU family out; the CUDA overlay
        // builds on its base's families, with no GPU.
        assert_eq!(p.platforms[1].families, ["c6a", "m6a"]);
        assert_eq!(p.platforms[2].families, ["c6a", "m6a"]);
        assert_eq!(p.platforms[2].base.as_deref(), Some("amzn-2023_epyc-gen-3"));
        assert_eq!(p.platforms[2].layer().as_deref(), Some("accel/nvidia/cc90"));
        assert!(!p.platforms[2].builds_on_gpu());
        assert_eq!(p.platforms[1].base, None);
        assert_eq!(p.platforms[1].layer(), None);
        assert!(p.platforms[2].has_cuda());
        assert!(!p.platforms[1].has_cuda());
        assert_eq!(p.platforms[0].arch(), Arch::Aarch64);
    }

    #[test]
    fn selection_by_short_or_full_name_and_clear_errors() {
        let p = Platforms::from_toml(SMALL).unwrap();
        let sel = p
            .select(&["epyc-gen-3_h100".into(), "amzn-2023_graviton-3".into()])
            .unwrap();
        assert_eq!(sel[0].name, "amzn-2023_epyc-gen-3");
        assert_eq!(sel[1].name, "amzn-2023_epyc-gen-3_h100");
        assert_eq!(sel[2].name, "amzn-2023_graviton-3");
        // An overlay brings its base, first.
        let sel = p.select(&["epyc-gen-3_h100".into()]).unwrap();
        let names: Vec<&str> = sel.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["amzn-2023_epyc-gen-3", "amzn-2023_epyc-gen-3_h100"]);
        let sel = p
            .select(&["epyc-gen-3_h100".into(), "epyc-gen-3".into()])
            .unwrap();
        assert_eq!(sel.len(), 2);
        let err = p.select(&["xeon-gen-9".into()]).unwrap_err().to_string();
        assert!(
            err.contains("unknown platform 'xeon-gen-9'") && err.contains("amzn-2023_graviton-3"),
            "{err}"
        );
        let err = p.select(&["gravitn-3".into()]).unwrap_err().to_string();
        assert!(
            err.starts_with("unknown platform 'gravitn-3'; did you mean 'graviton-3'? (known: "),
            "{err}"
        );
    }

    #[test]
    fn invalid_files_are_rejected() {
        let bad = SMALL.replace("gpu = \"h100\"", "gpu = \"h999\"");
        assert!(matches!(
            Platforms::from_toml(&bad),
            Err(PlatformError::UnknownGpu { .. })
        ));
        let no_overlap = SMALL.replace("families = [\"p5\"]", "families = [\"p6\"]");
        assert!(matches!(
            Platforms::from_toml(&no_overlap),
            Err(PlatformError::NoFamilies { .. })
        ));
        assert!(Platforms::from_toml("[cpu.x]\narch = \"sparc\"").is_err());
        // An overlay whose base platform is not listed.
        let no_base = SMALL.replacen(
            "[[platform]]\nos = \"amzn-2023\"\ncpu = \"epyc-gen-3\"\n\n",
            "",
            1,
        );
        let e = Platforms::from_toml(&no_base).unwrap_err();
        assert!(matches!(e, PlatformError::NoBase { .. }), "{e}");
        assert!(e.to_string().contains("cpu = \"epyc-gen-3\""), "{e}");
    }

    /// Every GCC release the corpus's toolchains use (EasyBuild 5.4.1's
    /// `GCCcore-*.eb`, archived ones included) and a few either side.
    const GCC_RELEASES: &[&str] = &[
        "4.9.3", "5.4.0", "6.4.0", "7.3.0", "8.3.0", "9.3.0", "10.2.0", "10.3.0", "11.2.0",
        "11.3.0", "11.4.0", "12.1.0", "12.2.0", "12.3.0", "13.1.0", "13.2.0", "13.3.0", "14.1.0",
        "14.2.0", "14.3.0", "15.1.0", "15.2.0", "15.3.0", "16.1.0", "16.2.0",
    ];

    #[test]
    fn every_shipped_cpu_has_a_chain_every_gcc_finds_a_step_in() {
        let p = Platforms::default_set().unwrap();
        for (name, cpu) in &p.cpus {
            let chain = &cpu.optarch_by_gcc;
            assert!(chain.len() >= 2, "{name}: no fallback");
            assert_eq!(chain.last().unwrap().gcc, "0", "{name}: no baseline step");
            for gcc in GCC_RELEASES {
                let got = cpu.optarch_for_gcc(gcc);
                // The first step this GCC accepts, and no step before it does.
                let i = chain
                    .iter()
                    .position(|s| format!("GCC:{}", s.flags) == got)
                    .unwrap_or_else(|| panic!("{name} {gcc}: {got} is no step"));
                assert!(gcc_at_least(gcc, &chain[i].gcc), "{name} {gcc}: {got}");
                assert!(
                    chain[..i].iter().all(|s| !gcc_at_least(gcc, &s.gcc)),
                    "{name} {gcc}: {got}"
                );
            }
            // A current GCC gets the CPU's own optarch.
            assert_eq!(cpu.optarch_for_gcc("16.2.0"), cpu.optarch, "{name}");
        }
    }

    #[test]
    fn an_older_gcc_falls_back_along_the_chain() {
        let p = Platforms::default_set().unwrap();
        let cpu = |n: &str| &p.cpus[n];
        // znver4 came with 12.3 (a back-port), znver3 with 10.3.
        assert_eq!(
            cpu("epyc-gen-4").optarch_for_gcc("12.3.0"),
            "GCC:march=znver4"
        );
        assert_eq!(
            cpu("epyc-gen-4").optarch_for_gcc("12.2.0"),
            "GCC:march=znver3"
        );
        assert_eq!(
            cpu("epyc-gen-4").optarch_for_gcc("10.2.0"),
            "GCC:march=znver2"
        );
        assert_eq!(
            cpu("xeon-gen-6").optarch_for_gcc("12.3.0"),
            "GCC:march=sapphirerapids"
        );
        assert_eq!(
            cpu("graviton-4").optarch_for_gcc("12.3.0"),
            "GCC:march=armv9-a"
        );
        assert_eq!(
            cpu("graviton-5").optarch_for_gcc("14.2.0"),
            "GCC:march=armv9.2-a"
        );
        assert_eq!(
            cpu("graviton-3").optarch_for_gcc("11.1"),
            "GCC:mcpu=neoverse-v1"
        );
        // A GCC that is no version (GCCcore-system): the CPU's own.
        assert_eq!(
            cpu("epyc-gen-4").optarch_for_gcc("system"),
            "GCC:march=znver4"
        );
        assert!(gcc_at_least("12.3", "12.3.0") && gcc_at_least("13", "12.3"));
        assert!(!gcc_at_least("12.2.9", "12.3") && !gcc_at_least("x", "0"));
    }

    #[test]
    fn a_chain_is_checked_when_the_file_is_read() {
        let with = |chain: &str| {
            SMALL.replace(
                "optarch = \"GCC:march=znver3\"",
                &format!("optarch = \"GCC:march=znver3\"\noptarch_by_gcc = [{chain}]"),
            )
        };
        let ok =
            with(r#"{gcc = "10.3", flags = "march=znver3"}, {gcc = "0", flags = "march=x86-64"}"#);
        let p = Platforms::from_toml(&ok).unwrap();
        assert_eq!(
            p.cpus["epyc-gen-3"].optarch_for_gcc("9.3.0"),
            "GCC:march=x86-64"
        );
        for bad in [
            // Not the optarch first.
            r#"{gcc = "9.1", flags = "march=znver2"}"#,
            // Not older releases last.
            r#"{gcc = "10.3", flags = "march=znver3"}, {gcc = "11.1", flags = "march=x86-64-v4"}"#,
            // No version, no flags, another compiler.
            r#"{gcc = "10.3", flags = "march=znver3"}, {gcc = "ten", flags = "march=x86-64"}"#,
            r#"{gcc = "10.3", flags = "march=znver3"}, {gcc = "0", flags = ""}"#,
            r#"{gcc = "10.3", flags = "march=znver3"}, {gcc = "0", flags = "Intel:xHost"}"#,
        ] {
            let e = Platforms::from_toml(&with(bad)).unwrap_err();
            assert!(matches!(e, PlatformError::Chain { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("epyc-gen-3"), "{e}");
        }
    }

    #[test]
    fn shipped_defaults_load() {
        let p = Platforms::default_set().unwrap();
        assert!(p.platforms.iter().any(|p| p.arch() == Arch::Aarch64));
        assert!(p.platforms.iter().any(|p| p.has_cuda()));
        for pl in &p.platforms {
            assert!(!pl.families.is_empty(), "{}", pl.name);
            // Every CUDA platform is an overlay built on CPU-only families.
            assert_eq!(pl.base.is_some(), pl.has_cuda(), "{}", pl.name);
            if pl.base.is_some() {
                assert!(!pl.builds_on_gpu(), "{}", pl.name);
                let gpu = pl.gpu.as_ref().unwrap();
                assert!(
                    pl.families.iter().all(|f| !gpu.families.contains(f)),
                    "{}",
                    pl.name
                );
            }
        }
    }
}
