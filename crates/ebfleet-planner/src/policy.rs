//! What to build: the latest easyconfig of each software under a toolchain
//! policy, or the list an EasyBuild easystack file gives.
//!
//! EasyBuild has no notion of "latest"; this is ebfleet's policy. For each
//! software name, among easyconfigs whose toolchain is allowed and not below
//! a floor, the highest version (`LooseVersion`) wins; ties go to the newest
//! toolchain generation, then the more minimal toolchain, then the plain
//! variant (no versionsuffix). CUDA variants are picked separately and built
//! on CUDA platforms only.

use crate::robot::Robot;
use crate::toolchain::{Toolchain, SYSTEM_NAME};
use crate::tree::{EasyconfigTree, EcId};
use crate::version;
use serde::Deserialize;
use std::cmp::Ordering;
use std::collections::HashMap;

/// `foss>=2023a`: easyconfigs of a toolchain generation below that of
/// `foss/2023a` (GCCcore 12.3.0) are not considered, whatever their toolchain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floor {
    pub toolchain: Toolchain,
}

impl std::str::FromStr for Floor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, ver) = s.split_once(">=").ok_or_else(|| {
            format!("toolchain floor '{s}' is not of the form NAME>=VERSION (e.g. foss>=2023a)")
        })?;
        let (name, ver) = (name.trim(), ver.trim());
        if name.is_empty() || ver.is_empty() {
            return Err(format!("toolchain floor '{s}' needs a name and a version"));
        }
        Ok(Floor {
            toolchain: Toolchain::new(name, ver),
        })
    }
}

/// The toolchain policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Allowed toolchain names; `SYSTEM` (or `system`) is the system toolchain.
    pub toolchains: Vec<String>,
    pub floors: Vec<Floor>,
    /// Software names (or `*` patterns) to keep, case ignored as
    /// `eb --search` does; empty keeps all.
    pub include: Vec<String>,
    /// Software names (or `*` patterns) to leave out, case ignored.
    pub exclude: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            toolchains: ["SYSTEM", "GCCcore", "GCC", "gompi", "gfbf", "foss"]
                .map(String::from)
                .to_vec(),
            floors: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

impl Policy {
    fn allows_toolchain(&self, tc: &Toolchain) -> bool {
        self.toolchains
            .iter()
            .any(|t| t == &tc.name || (tc.is_system() && t.eq_ignore_ascii_case(SYSTEM_NAME)))
    }

    fn allows_name(&self, name: &str) -> bool {
        if self.include.is_empty() && self.exclude.is_empty() {
            return true;
        }
        let name = name.to_lowercase();
        let matches = |p: &String| wildcard_match(&p.to_lowercase(), &name);
        (self.include.is_empty() || self.include.iter().any(matches))
            && !self.exclude.iter().any(matches)
    }

    /// Rank of a toolchain in the allowed list (lower is more minimal).
    fn rank(&self, tc: &Toolchain) -> usize {
        self.toolchains
            .iter()
            .position(|t| t == &tc.name || (tc.is_system() && t.eq_ignore_ascii_case(SYSTEM_NAME)))
            .unwrap_or(usize::MAX)
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(head) else {
        return false;
    };
    let pieces: Vec<&str> = rest.split('*').collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i == pieces.len() - 1 {
            return remaining.ends_with(piece);
        }
        match remaining.find(piece) {
            Some(pos) => remaining = &remaining[pos + piece.len()..],
            None => return false,
        }
    }
    true
}

/// One easyconfig chosen for building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub id: EcId,
    /// A CUDA variant: goes to CUDA platforms only.
    pub cuda: bool,
}

/// Whether an easyconfig is a CUDA build: CUDA itself, a `-CUDA-x` suffix,
/// or a direct dependency on CUDA.
pub fn is_cuda(ec: &crate::easyconfig::Easyconfig) -> bool {
    let cuda_name = |n: &str| n == "CUDA" || n == "CUDAcore";
    cuda_name(&ec.name)
        || ec.versionsuffix.contains("CUDA")
        || ec.all_dependencies().any(|d| cuda_name(&d.name))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("toolchain floor {0}: no easyconfig for that toolchain, so its generation is unknown")]
    UnknownFloor(String),
    #[error("unknown toolchain '{name}'{suggestion}")]
    UnknownToolchain { name: String, suggestion: String },
    #[error("--include '{pattern}' matches no software name{suggestion}")]
    UnknownInclude { pattern: String, suggestion: String },
}

/// The latest easyconfig of every software name (and of its CUDA variant).
pub fn select_latest(robot: &Robot<'_>, policy: &Policy) -> Result<Vec<Choice>, PolicyError> {
    let tree = robot.tree();
    let mut generation_cache: HashMap<Toolchain, String> = HashMap::new();
    let mut generation = |tc: &Toolchain| -> String {
        generation_cache
            .entry(tc.clone())
            .or_insert_with(|| toolchain_generation(robot, tc))
            .clone()
    };
    for t in &policy.toolchains {
        if !t.eq_ignore_ascii_case(SYSTEM_NAME) && !crate::toolchain::is_known(t) {
            let known = crate::toolchain::known_names().chain(["SYSTEM"]);
            return Err(PolicyError::UnknownToolchain {
                name: t.clone(),
                suggestion: ebfleet_core::suggest::did_you_mean(t, known),
            });
        }
    }
    let mut floors = Vec::new();
    for f in &policy.floors {
        if tree.find(&f.toolchain.name, &f.toolchain.version).is_none() {
            return Err(PolicyError::UnknownFloor(f.toolchain.to_string()));
        }
        floors.push(generation(&f.toolchain));
    }
    // An include that names no software would quietly plan nothing.
    if !policy.include.is_empty() {
        let names: std::collections::BTreeSet<&str> =
            tree.parsed().map(|(_, ec)| ec.name.as_str()).collect();
        let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        for p in &policy.include {
            let p_lower = p.to_lowercase();
            if !lower.iter().any(|n| wildcard_match(&p_lower, n)) {
                return Err(PolicyError::UnknownInclude {
                    pattern: p.clone(),
                    suggestion: ebfleet_core::suggest::did_you_mean(p, names.iter().copied()),
                });
            }
        }
    }
    // Best candidate per (name, cuda).
    let mut best: HashMap<(&str, bool), (EcId, String)> = HashMap::new();
    for (id, ec) in tree.parsed() {
        if !policy.allows_toolchain(&ec.toolchain) || !policy.allows_name(&ec.name) {
            continue;
        }
        let tc_gen = if ec.toolchain.is_system() {
            String::new()
        } else {
            generation(&ec.toolchain)
        };
        if !ec.toolchain.is_system()
            && floors
                .iter()
                .any(|f| version::compare(&tc_gen, f) == Ordering::Less)
        {
            continue;
        }
        let key = (ec.name.as_str(), is_cuda(ec));
        match best.get(&key) {
            Some((cur, cur_gen)) if !better(tree, policy, (id, &tc_gen), (*cur, cur_gen)) => {}
            _ => {
                best.insert(key, (id, tc_gen));
            }
        }
    }
    let mut out: Vec<Choice> = best
        .into_iter()
        .map(|((_, cuda), (id, _))| Choice { id, cuda })
        .collect();
    out.sort_by(|a, b| tree.entry(a.id).path.cmp(&tree.entry(b.id).path));
    Ok(out)
}

/// Whether candidate `a` beats `b` (both parsed).
fn better(tree: &EasyconfigTree, policy: &Policy, a: (EcId, &str), b: (EcId, &str)) -> bool {
    let (ea, eb) = (tree.easyconfig(a.0).unwrap(), tree.easyconfig(b.0).unwrap());
    let ord = version::compare(&ea.version, &eb.version)
        .then_with(|| version::compare(a.1, b.1))
        // More minimal toolchain first, then the plain variant, then the path for stability.
        .then_with(|| policy.rank(&eb.toolchain).cmp(&policy.rank(&ea.toolchain)))
        .then_with(|| {
            eb.versionsuffix
                .is_empty()
                .cmp(&ea.versionsuffix.is_empty())
                .reverse()
        })
        .then_with(|| tree.entry(b.0).path.cmp(&tree.entry(a.0).path));
    ord == Ordering::Greater
}

/// A toolchain's generation: the version at the bottom of its hierarchy
/// (GCCcore's for the GCC family), so `foss/2023a` and `GCC/12.3.0` compare
/// equal and newer toolchains compare higher.
pub fn toolchain_generation(robot: &Robot<'_>, tc: &Toolchain) -> String {
    match robot.hierarchy(tc).as_ref() {
        Ok(levels) => levels
            .first()
            .map_or(tc.version.clone(), |t| t.version.clone()),
        Err(_) => tc.version.clone(),
    }
}

/// An EasyBuild easystack file (`eb --easystack`): the easyconfigs to build.
#[derive(Debug, Deserialize)]
struct EasystackFile {
    #[serde(default)]
    easyconfigs: Vec<EasystackEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EasystackEntry {
    Name(String),
    WithOptions(HashMap<String, serde_yaml_ng::Value>),
}

#[derive(Debug, thiserror::Error)]
pub enum EasystackError {
    #[error("easystack file: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("easystack file lists no easyconfigs (expected a top-level 'easyconfigs:' list)")]
    Empty,
    #[error("easystack entry '{0}' is not an easyconfig file name")]
    BadEntry(String),
}

/// What an easystack asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Easystack {
    /// The easyconfig file names, in order.
    pub names: Vec<String>,
    /// Per-entry settings ebfleet does not honour, as `"<file>: <option>"`
    /// (e.g. `from-pr`), for the caller to warn about by name.
    pub ignored: Vec<String>,
}

/// Parse an easystack file.
pub fn parse_easystack(text: &str) -> Result<Easystack, EasystackError> {
    let file: EasystackFile = serde_yaml_ng::from_str(text)?;
    if file.easyconfigs.is_empty() {
        return Err(EasystackError::Empty);
    }
    let mut out = Easystack {
        names: Vec::new(),
        ignored: Vec::new(),
    };
    for entry in file.easyconfigs {
        let (name, settings) = match entry {
            EasystackEntry::Name(n) => (n, None),
            EasystackEntry::WithOptions(map) if map.len() == 1 => map
                .into_iter()
                .next()
                .map(|(n, v)| (n, Some(v)))
                .unwrap_or_default(),
            EasystackEntry::WithOptions(map) => {
                return Err(EasystackError::BadEntry(
                    map.into_keys().collect::<Vec<_>>().join(","),
                ))
            }
        };
        // EasyBuild accepts names with or without the .eb extension.
        let name = if name.ends_with(".eb") {
            name
        } else {
            format!("{name}.eb")
        };
        if name.contains('\n') || name.len() > 512 {
            return Err(EasystackError::BadEntry(name));
        }
        out.ignored
            .extend(settings_of(settings).map(|o| format!("{name}: {o}")));
        out.names.push(name);
    }
    Ok(out)
}

/// The names of an entry's settings: each of its `options`, and any other key.
fn settings_of(settings: Option<serde_yaml_ng::Value>) -> impl Iterator<Item = String> {
    let key = |k: &serde_yaml_ng::Value| k.as_str().map_or_else(|| format!("{k:?}"), String::from);
    let mut names = Vec::new();
    if let Some(serde_yaml_ng::Value::Mapping(m)) = settings {
        for (k, v) in &m {
            match (k.as_str(), v) {
                (Some("options"), serde_yaml_ng::Value::Mapping(opts)) => {
                    names.extend(opts.keys().map(key))
                }
                _ => names.push(key(k)),
            }
        }
    }
    names.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robot::tests::toolchain_world;
    use crate::robot::RobotOptions;
    use crate::tree::tests::ec;

    fn picked(robot: &Robot, policy: &Policy) -> Vec<(String, bool)> {
        select_latest(robot, policy)
            .unwrap()
            .into_iter()
            .map(|c| (robot.tree().easyconfig(c.id).unwrap().file_name(), c.cuda))
            .filter(|(f, _)| {
                ![
                    "GCC",
                    "GCCcore",
                    "gompi",
                    "gfbf",
                    "foss",
                    "binutils",
                    "OpenMPI",
                    "FlexiBLAS",
                    "zlib",
                ]
                .iter()
                .any(|t| f.starts_with(&format!("{t}-")))
            })
            .collect()
    }

    #[test]
    fn highest_version_then_newest_toolchain_then_cuda_separately() {
        let world = toolchain_world(&[
            (
                "a/App/App-1.9-foss-2023a.eb",
                ec("App", "1.9", Some(("foss", "2023a")), ""),
            ),
            (
                "a/App/App-1.10-GCC-12.3.0.eb",
                ec("App", "1.10", Some(("GCC", "12.3.0")), ""),
            ),
            (
                "a/App/App-1.10-intel-2023a.eb",
                ec("App", "1.10.5", Some(("intel", "2023a")), ""),
            ),
            (
                "a/App/App-1.10-foss-2023a-CUDA-12.1.1.eb",
                ec(
                    "App",
                    "1.10",
                    Some(("foss", "2023a")),
                    "versionsuffix = '-CUDA-12.1.1'",
                ),
            ),
            ("t/Tool/Tool-2.0.eb", ec("Tool", "2.0", None, "")),
            (
                "t/Tool/Tool-2.0-GCCcore-12.3.0.eb",
                ec("Tool", "2.0", Some(("GCCcore", "12.3.0")), ""),
            ),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        let got = picked(&robot, &Policy::default());
        assert_eq!(
            got,
            [
                ("App-1.10-GCC-12.3.0.eb".to_string(), false),
                ("App-1.10-foss-2023a-CUDA-12.1.1.eb".to_string(), true),
                // Same version: the newer generation (GCCcore 12.3.0 beats system).
                ("Tool-2.0-GCCcore-12.3.0.eb".to_string(), false),
            ]
        );
        let mut p = Policy {
            exclude: vec!["T*".into()],
            ..Policy::default()
        };
        assert!(picked(&robot, &p)
            .iter()
            .all(|(f, _)| !f.starts_with("Tool")));
        p.include = vec!["Tool".into()];
        assert!(picked(&robot, &p).is_empty());
        // Names are matched case-insensitively, as `eb --search` does.
        p.exclude = Vec::new();
        p.include = vec!["tool".into()];
        assert_eq!(picked(&robot, &p).len(), 1);
        p.include = vec!["APP*".into()];
        assert_eq!(picked(&robot, &p).len(), 2);
        // A name no easyconfig has is an error with the closest one.
        p.include = vec!["App".into(), "Tol".into()];
        assert_eq!(
            select_latest(&robot, &p).unwrap_err().to_string(),
            "--include 'Tol' matches no software name; did you mean 'Tool'?"
        );
    }

    #[test]
    fn floors_drop_older_generations() {
        let world = toolchain_world(&[
            (
                "g/GCCcore/GCCcore-13.2.0.eb",
                ec("GCCcore", "13.2.0", None, ""),
            ),
            (
                "a/Old/Old-9-GCCcore-12.3.0.eb",
                ec("Old", "9", Some(("GCCcore", "12.3.0")), ""),
            ),
            (
                "n/New/New-1-GCCcore-13.2.0.eb",
                ec("New", "1", Some(("GCCcore", "13.2.0")), ""),
            ),
            ("s/Sys/Sys-1.eb", ec("Sys", "1", None, "")),
        ]);
        let robot = Robot::new(&world, RobotOptions::default());
        let mut p = Policy {
            floors: vec!["GCCcore>=13.2.0".parse().unwrap()],
            ..Policy::default()
        };
        let got: Vec<String> = picked(&robot, &p).into_iter().map(|(f, _)| f).collect();
        assert_eq!(got, ["New-1-GCCcore-13.2.0.eb", "Sys-1.eb"]);
        p.floors = vec!["foss>=2099a".parse().unwrap()];
        assert_eq!(
            select_latest(&robot, &p).unwrap_err(),
            PolicyError::UnknownFloor("foss/2099a".into())
        );
        assert!("foss2023a".parse::<Floor>().is_err());
        // A misspelled toolchain plans nothing, so it is an error with a hint.
        p.floors = Vec::new();
        p.toolchains = vec!["system".into(), "fooss".into()];
        assert_eq!(
            select_latest(&robot, &p).unwrap_err().to_string(),
            "unknown toolchain 'fooss'; did you mean 'foss'?"
        );
        p.toolchains = vec!["SYSTEM".into(), "GCCcore".into(), "intel".into()];
        assert!(select_latest(&robot, &p).is_ok());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("Py*", "PyTorch"));
        assert!(wildcard_match("*-bundle", "SciPy-bundle"));
        assert!(wildcard_match("a*c*e", "abcde"));
        assert!(!wildcard_match("a*c*e", "abcd"));
        assert!(wildcard_match("zlib", "zlib"));
        assert!(!wildcard_match("zlib", "zlibx"));
    }

    #[test]
    fn easystack_entries() {
        let es = parse_easystack(
            "easyconfigs:\n  - GROMACS-2023.3-foss-2023a.eb\n  - OpenFOAM-11-foss-2023a:\n      options:\n        from-pr: 1\n        robot: true\n",
        )
        .unwrap();
        assert_eq!(
            es.names,
            ["GROMACS-2023.3-foss-2023a.eb", "OpenFOAM-11-foss-2023a.eb"]
        );
        // Options are named, so the caller can say they are not honoured.
        assert_eq!(
            es.ignored,
            [
                "OpenFOAM-11-foss-2023a.eb: from-pr",
                "OpenFOAM-11-foss-2023a.eb: robot"
            ]
        );
        assert!(matches!(
            parse_easystack("software: []\n"),
            Err(EasystackError::Empty)
        ));
        assert!(parse_easystack("easyconfigs: [\n").is_err());
    }
}
