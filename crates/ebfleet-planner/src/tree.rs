//! A tree of easyconfigs laid out like EasyBuild's (`<letter>/<Name>/<file>.eb`),
//! read in parallel, with the robot's way of finding a file for a module
//! (`robot_find_easyconfig`).

use crate::easyconfig::{self, Easyconfig, ParseError};
use crate::toolchain::Toolchain;
use ebfleet_core::arch::Arch;
use ebfleet_core::layout::letter_dir_for;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a tree could not be read at all (single bad files are [`Problem`]s).
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("easyconfigs directory {path} does not exist or is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An easyconfig that was reported and skipped.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// Path relative to the tree's root.
    pub path: String,
    pub line: u32,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.reason)
    }
}

/// One file of the tree.
#[derive(Debug)]
pub struct Entry {
    /// Path relative to the root, with `/` separators.
    pub path: String,
    /// sha256 of the file's bytes, hex.
    pub sha256: String,
    pub easyconfig: Result<Easyconfig, ParseError>,
}

/// Told about reading progress (a progress bar on a terminal).
pub trait Progress: Sync {
    fn start(&self, _total: usize) {}
    fn inc(&self) {}
}

/// No progress reporting.
impl Progress for () {}

/// Index of an easyconfig within its tree.
pub type EcId = usize;

/// Every easyconfig of a directory, parsed for one architecture.
#[derive(Debug)]
pub struct EasyconfigTree {
    pub root: PathBuf,
    pub arch: Arch,
    entries: Vec<Entry>,
    by_path: HashMap<String, EcId>,
    by_file_name: HashMap<String, EcId>,
}

impl EasyconfigTree {
    /// Read every `*.eb` below `root`.
    pub fn load(root: &Path, arch: Arch, progress: &dyn Progress) -> Result<Self, TreeError> {
        if !root.is_dir() {
            return Err(TreeError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let mut files = Vec::new();
        collect_eb_files(root, root, &mut files)?;
        files.sort();
        progress.start(files.len());
        let sources: Vec<(String, Result<Vec<u8>, std::io::Error>)> = files
            .par_iter()
            .map(|rel| {
                let bytes = std::fs::read(root.join(rel));
                progress.inc();
                (rel.clone(), bytes)
            })
            .collect();
        let mut inputs = Vec::with_capacity(sources.len());
        for (rel, bytes) in sources {
            let bytes = bytes.map_err(|source| TreeError::Io {
                path: root.join(&rel),
                source,
            })?;
            inputs.push((rel, bytes));
        }
        Ok(Self::from_sources(root.to_path_buf(), arch, inputs))
    }

    /// Build a tree from (relative path, file bytes) pairs.
    pub fn from_sources(root: PathBuf, arch: Arch, sources: Vec<(String, Vec<u8>)>) -> Self {
        let entries: Vec<Entry> = sources
            .into_par_iter()
            .map(|(path, bytes)| {
                let sha256 = ebfleet_core::checksum::sha256_hex(&bytes);
                let easyconfig = match std::str::from_utf8(&bytes) {
                    Ok(text) => easyconfig::parse(text, arch),
                    Err(e) => Err(ParseError {
                        line: 0,
                        reason: format!("not UTF-8: {e}"),
                    }),
                };
                Entry {
                    path,
                    sha256,
                    easyconfig,
                }
            })
            .collect();
        let mut tree = EasyconfigTree {
            root,
            arch,
            by_path: entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.path.clone(), i))
                .collect(),
            by_file_name: HashMap::new(),
            entries,
        };
        for (i, e) in tree.entries.iter().enumerate() {
            let base = e.path.rsplit('/').next().unwrap_or(&e.path).to_string();
            tree.by_file_name.entry(base).or_insert(i);
        }
        tree.apply_templates();
        tree
    }

    /// Resolve templates: first the toolchain easyconfigs' runtime
    /// dependencies (which can define `%(cudaver)s` and the like), then all.
    fn apply_templates(&mut self) {
        let arch = self.arch;
        let toolchains: Vec<Toolchain> = {
            let mut t: Vec<Toolchain> = self
                .entries
                .iter()
                .filter_map(|e| e.easyconfig.as_ref().ok())
                .map(|ec| ec.toolchain.clone())
                .filter(|tc| !tc.is_system() && !tc.name.contains('%') && !tc.version.contains('%'))
                .collect();
            t.sort();
            t.dedup();
            t
        };
        let mut tc_deps: HashMap<Toolchain, Vec<(String, String)>> = HashMap::new();
        for tc in toolchains {
            let Some(id) = self.find(&tc.name, &tc.version) else {
                continue;
            };
            let Ok(ec) = &self.entries[id].easyconfig else {
                continue;
            };
            let mut ec = ec.clone();
            if ec.apply_templates(arch, &[]).is_ok() {
                let deps = ec.dependencies.iter().filter(|d| !d.external);
                tc_deps.insert(
                    tc,
                    deps.map(|d| (d.name.clone(), d.version.clone())).collect(),
                );
            }
        }
        self.entries.par_iter_mut().for_each(|e| {
            if let Ok(ec) = &mut e.easyconfig {
                let deps = tc_deps.get(&ec.toolchain).map(Vec::as_slice).unwrap_or(&[]);
                if let Err(reason) = ec.apply_templates(arch, deps) {
                    e.easyconfig = Err(ParseError { line: 0, reason });
                }
            }
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn entry(&self, id: EcId) -> &Entry {
        &self.entries[id]
    }

    /// The parsed easyconfig, if the file parsed.
    pub fn easyconfig(&self, id: EcId) -> Option<&Easyconfig> {
        self.entries[id].easyconfig.as_ref().ok()
    }

    /// Ids of the files that parsed.
    pub fn parsed(&self) -> impl Iterator<Item = (EcId, &Easyconfig)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.easyconfig.as_ref().ok().map(|ec| (i, ec)))
    }

    /// Files that were reported and skipped.
    pub fn problems(&self) -> Vec<Problem> {
        self.entries
            .iter()
            .filter_map(|e| {
                e.easyconfig.as_ref().err().map(|err| Problem {
                    path: e.path.clone(),
                    line: err.line,
                    reason: err.reason.clone(),
                })
            })
            .collect()
    }

    /// `robot_find_easyconfig(name, version)`: the first of
    /// `Name/ver.eb`, `Name/Name-ver.eb`, `<letter>/Name/Name-ver.eb`, `Name-ver.eb`.
    pub fn find(&self, name: &str, full_version: &str) -> Option<EcId> {
        let file = format!("{name}-{full_version}.eb");
        let letter = letter_dir_for(name);
        [
            format!("{name}/{full_version}.eb"),
            format!("{name}/{file}"),
            format!("{letter}/{name}/{file}"),
            file.clone(),
        ]
        .iter()
        .find_map(|p| self.by_path.get(p).copied())
    }

    /// A target as `eb` takes it: a path to a file in the tree, or a file
    /// name searched for in the tree.
    pub fn find_target(&self, target: &str) -> Option<EcId> {
        let path = Path::new(target);
        if let Ok(rel) = path.strip_prefix(&self.root) {
            if let Some(id) = self.by_path.get(&rel.to_string_lossy().replace('\\', "/")) {
                return Some(*id);
            }
        }
        if let Ok(abs) = path.canonicalize() {
            if let Ok(root) = self.root.canonicalize() {
                if let Ok(rel) = abs.strip_prefix(root) {
                    if let Some(id) = self.by_path.get(&rel.to_string_lossy().replace('\\', "/")) {
                        return Some(*id);
                    }
                }
            }
        }
        self.by_path
            .get(target)
            .or_else(|| self.by_file_name.get(path.file_name()?.to_str()?))
            .copied()
    }
}

fn collect_eb_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), TreeError> {
    let rd = std::fs::read_dir(dir).map_err(|source| TreeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for item in rd {
        let item = item.map_err(|source| TreeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = item.path();
        let ft = item.file_type().map_err(|source| TreeError::Io {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            collect_eb_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "eb") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tree from (path, text) pairs, for tests across the crate.
    pub fn tree(arch: Arch, files: &[(&str, &str)]) -> EasyconfigTree {
        EasyconfigTree::from_sources(
            PathBuf::from("/ec"),
            arch,
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
                .collect(),
        )
    }

    pub fn ec(name: &str, version: &str, tc: Option<(&str, &str)>, body: &str) -> String {
        let tc = match tc {
            Some((n, v)) => format!("{{'name': '{n}', 'version': '{v}'}}"),
            None => "SYSTEM".into(),
        };
        format!("name = '{name}'\nversion = '{version}'\nhomepage = ''\ndescription = ''\ntoolchain = {tc}\n{body}\n")
    }

    #[test]
    fn finds_files_the_robot_way_and_reports_bad_ones() {
        let gcc = ec("GCC", "12.3.0", None, "");
        let z = ec("zlib", "1.2.13", Some(("GCCcore", "12.3.0")), "");
        let t = tree(
            Arch::X86_64,
            &[
                ("g/GCC/GCC-12.3.0.eb", &gcc),
                ("zlib/1.2.13-GCCcore-12.3.0.eb", &z),
                ("b/Bad/Bad-1.eb", "name = 'Bad'\nversion = (\n"),
                ("0/3to2/3to2-1.eb", &ec("3to2", "1", None, "")),
            ],
        );
        assert_eq!(t.len(), 4);
        assert!(t.find("GCC", "12.3.0").is_some());
        assert!(t.find("zlib", "1.2.13-GCCcore-12.3.0").is_some());
        assert!(t.find("3to2", "1").is_some());
        assert!(t.find("GCC", "13.2.0").is_none());
        let p = t.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "b/Bad/Bad-1.eb");
        assert_eq!(p[0].line, 2);
        assert_eq!(t.find_target("GCC-12.3.0.eb"), t.find("GCC", "12.3.0"));
        assert_eq!(
            t.find_target("/ec/g/GCC/GCC-12.3.0.eb"),
            t.find("GCC", "12.3.0")
        );
        assert_eq!(t.find_target("nope.eb"), None);
    }

    #[test]
    fn toolchain_runtime_deps_define_templates() {
        let gcccuda = ec(
            "gcccuda",
            "2020b",
            None,
            "dependencies = [('GCC', '10.2.0'), ('CUDA', '11.1.1', '', SYSTEM)]",
        );
        let x = ec(
            "X",
            "1",
            Some(("gcccuda", "2020b")),
            "versionsuffix = '-CUDA-%(cudaver)s'",
        );
        let t = tree(
            Arch::X86_64,
            &[
                ("g/gcccuda/gcccuda-2020b.eb", &gcccuda),
                ("x/X/X-1-gcccuda-2020b-CUDA-11.1.1.eb", &x),
            ],
        );
        let (_, x) = t.parsed().find(|(_, e)| e.name == "X").unwrap();
        assert_eq!(x.versionsuffix, "-CUDA-11.1.1");
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = EasyconfigTree::load(Path::new("/no/such/dir"), Arch::X86_64, &()).unwrap_err();
        assert!(err.to_string().contains("/no/such/dir"));
    }
}
