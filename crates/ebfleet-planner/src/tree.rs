//! A tree of easyconfigs laid out like EasyBuild's (`<letter>/<Name>/<file>.eb`),
//! with the robot's way of finding a file for a module
//! (`robot_find_easyconfig`).
//!
//! Files are read and parsed lazily, as EasyBuild's robot does: resolving
//! one target reads only the files its search reaches, while choosing the
//! latest of everything reads them all, in parallel. The files are shared by
//! the per-architecture views, so each is read and hashed once.

use crate::easyconfig::{Easyconfig, ParseError};
use crate::parse_cache::{ParseCache, Parsed};
use crate::toolchain::Toolchain;
use ebfleet_core::arch::Arch;
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::layout::letter_dir_for;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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

/// One file of the tree, parsed for the tree's architecture.
#[derive(Debug)]
pub struct Entry {
    /// Path relative to the root, with `/` separators.
    pub path: String,
    /// sha256 of the file's bytes, hex (empty when it could not be read).
    pub sha256: String,
    pub easyconfig: Result<Easyconfig, ParseError>,
}

/// Told about planning progress (a progress bar on a terminal): each phase
/// with its number of steps, then each step done.
pub trait Progress: Sync {
    fn phase(&self, _what: &str, _total: usize) {}
    fn inc(&self) {}
}

/// No progress reporting.
impl Progress for () {}

/// Index of an easyconfig within its tree.
pub type EcId = usize;

/// Where a file's bytes come from when they are not on disk.
pub enum Source {
    /// The bytes, e.g. downloaded.
    Bytes(Vec<u8>),
    /// Only their sha256: the file's parses are in the cache (a packed index).
    Digest(String),
    /// Not read, and why (e.g. too big to download): reported, skipped.
    Refused(String),
}

/// The most bytes an easyconfig may have: EasyBuild 5.4.1's largest is
/// ~200 KB (an R bundle's list of packages); a bigger file is refused
/// before it is read.
pub const MAX_EASYCONFIG_BYTES: u64 = 1024 * 1024;

/// A file's bytes, once read.
enum Content {
    Read { sha256: String, bytes: Vec<u8> },
    Digest(String),
    Unreadable(String),
}

struct File {
    path: String,
    content: OnceLock<Content>,
}

/// The files of a tree, read at most once, shared by the views of every
/// architecture, with the parse cache they fill.
pub struct EasyconfigFiles {
    pub root: PathBuf,
    files: Vec<File>,
    by_path: HashMap<String, EcId>,
    by_file_name: HashMap<String, EcId>,
    cache: Arc<ParseCache>,
}

impl EasyconfigFiles {
    /// Every `*.eb` below `root`, listed now and read when first needed.
    pub fn scan(root: &Path, cache: Arc<ParseCache>) -> Result<Arc<Self>, TreeError> {
        if !root.is_dir() {
            return Err(TreeError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let mut paths = Vec::new();
        collect_eb_files(root, root, &mut paths)?;
        let files = paths
            .into_iter()
            .map(|path| File {
                path,
                content: OnceLock::new(),
            })
            .collect();
        Ok(Arc::new(Self::new(root.to_path_buf(), files, cache)))
    }

    /// Files given as (path relative to the tree, source); `root` only
    /// names the tree in messages.
    pub fn from_sources(
        root: PathBuf,
        sources: Vec<(String, Source)>,
        cache: Arc<ParseCache>,
    ) -> Arc<Self> {
        let files = sources
            .into_par_iter()
            .map(|(path, source)| File {
                path,
                content: OnceLock::from(match source {
                    Source::Bytes(bytes) => Content::Read {
                        sha256: sha256_hex(&bytes),
                        bytes,
                    },
                    Source::Digest(sha256) => Content::Digest(sha256),
                    Source::Refused(reason) => Content::Unreadable(reason),
                }),
            })
            .collect();
        Arc::new(Self::new(root, files, cache))
    }

    fn new(root: PathBuf, mut files: Vec<File>, cache: Arc<ParseCache>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        let mut by_file_name = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let base = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
            by_file_name.entry(base).or_insert(i);
        }
        EasyconfigFiles {
            root,
            files,
            by_path,
            by_file_name,
            cache,
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn cache(&self) -> &Arc<ParseCache> {
        &self.cache
    }

    pub fn path(&self, id: EcId) -> &str {
        &self.files[id].path
    }

    /// Every file name of the tree (what `eb` searches targets by).
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.by_file_name.keys().map(String::as_str)
    }

    /// The file at `path` (relative to the tree).
    pub fn find_path(&self, path: &str) -> Option<EcId> {
        self.by_path.get(path).copied()
    }

    fn content(&self, id: EcId) -> &Content {
        let f = &self.files[id];
        f.content
            .get_or_init(|| match read_bounded(&self.root.join(&f.path)) {
                Ok(bytes) => Content::Read {
                    sha256: sha256_hex(&bytes),
                    bytes,
                },
                Err(reason) => Content::Unreadable(reason),
            })
    }

    /// The file's sha256 (reading it if need be); `None` if unreadable.
    pub fn sha256(&self, id: EcId) -> Option<&str> {
        match self.content(id) {
            Content::Read { sha256, .. } | Content::Digest(sha256) => Some(sha256),
            Content::Unreadable(_) => None,
        }
    }

    /// The file's parse for `arch`, before templates.
    pub fn parse(&self, id: EcId, arch: Arch) -> Arc<Parsed> {
        let unparsed = |reason: String| Arc::new(Err(ParseError { line: 0, reason }));
        match self.content(id) {
            Content::Read { sha256, bytes } => self.cache.parse(arch, sha256, bytes),
            Content::Digest(sha256) => self.cache.get(arch, sha256).unwrap_or_else(|| {
                unparsed(format!(
                    "no parse for {arch} of digest {sha256} in the index"
                ))
            }),
            Content::Unreadable(reason) => unparsed(reason.clone()),
        }
    }

    /// Parse every file for each of `arches` (in parallel), so the cache
    /// holds them all.
    pub fn parse_all(&self, arches: &[Arch]) {
        (0..self.len()).into_par_iter().for_each(|id| {
            for &arch in arches {
                self.parse(id, arch);
            }
        });
    }

    /// Every file's digest, when every file has been read; else `None`.
    pub fn digests(&self) -> Option<HashSet<&str>> {
        self.files
            .iter()
            .map(|f| match f.content.get()? {
                Content::Read { sha256, .. } | Content::Digest(sha256) => Some(sha256.as_str()),
                Content::Unreadable(_) => Some(""),
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
        let relative = |rel: &Path| {
            self.by_path
                .get(&rel.to_string_lossy().replace('\\', "/"))
                .copied()
        };
        if let Some(id) = path.strip_prefix(&self.root).ok().and_then(relative) {
            return Some(id);
        }
        if let (Ok(abs), Ok(root)) = (path.canonicalize(), self.root.canonicalize()) {
            if let Some(id) = abs.strip_prefix(root).ok().and_then(relative) {
                return Some(id);
            }
        }
        self.by_path
            .get(target)
            .or_else(|| self.by_file_name.get(path.file_name()?.to_str()?))
            .copied()
    }
}

/// A toolchain easyconfig's runtime dependencies as (name, version).
type ToolchainDeps = Arc<Vec<(String, String)>>;

/// The easyconfigs of a set of files, parsed for one architecture with
/// templates applied, each when first asked for.
pub struct EasyconfigTree {
    pub root: PathBuf,
    pub arch: Arch,
    files: Arc<EasyconfigFiles>,
    entries: Vec<OnceLock<Entry>>,
    /// Per toolchain, its easyconfig's runtime dependencies as (name,
    /// version): they define templates such as `%(cudaver)s`.
    toolchain_deps: Mutex<HashMap<Toolchain, ToolchainDeps>>,
}

impl EasyconfigTree {
    pub fn new(files: Arc<EasyconfigFiles>, arch: Arch) -> Self {
        EasyconfigTree {
            root: files.root.clone(),
            arch,
            entries: (0..files.len()).map(|_| OnceLock::new()).collect(),
            files,
            toolchain_deps: Mutex::new(HashMap::new()),
        }
    }

    pub fn files(&self) -> &Arc<EasyconfigFiles> {
        &self.files
    }

    /// Read and parse every file now, in parallel.
    pub fn load_all(&self, progress: &dyn Progress) {
        progress.phase(&format!("reading easyconfigs ({})", self.arch), self.len());
        (0..self.len()).into_par_iter().for_each(|id| {
            self.entry(id);
            progress.inc();
        });
    }

    /// File `id`, parsed with templates applied.
    pub fn entry(&self, id: EcId) -> &Entry {
        self.entries[id].get_or_init(|| {
            let easyconfig = match self.files.parse(id, self.arch).as_ref() {
                Ok(ec) => {
                    let mut ec = ec.clone();
                    let deps = self.toolchain_deps(&ec.toolchain);
                    match ec.apply_templates(self.arch, &deps) {
                        Ok(()) => match invalid_module_name(&ec)
                            .or_else(|| path_disagrees(self.files.path(id), &ec))
                        {
                            None => Ok(ec),
                            Some(reason) => Err(ParseError { line: 0, reason }),
                        },
                        Err(reason) => Err(ParseError { line: 0, reason }),
                    }
                }
                Err(e) => Err(e.clone()),
            };
            Entry {
                path: self.files.path(id).to_string(),
                sha256: self.files.sha256(id).unwrap_or_default().to_string(),
                easyconfig,
            }
        })
    }

    /// The runtime dependencies of `tc`'s own easyconfig, templates applied.
    fn toolchain_deps(&self, tc: &Toolchain) -> ToolchainDeps {
        if tc.is_system() || tc.name.contains('%') || tc.version.contains('%') {
            return Arc::default();
        }
        if let Some(d) = self.lock_toolchain_deps().get(tc) {
            return d.clone();
        }
        let deps = self
            .find(&tc.name, &tc.version)
            .and_then(|id| {
                self.files
                    .parse(id, self.arch)
                    .as_ref()
                    .as_ref()
                    .ok()
                    .cloned()
            })
            .and_then(|mut ec| {
                ec.apply_templates(self.arch, &[]).ok()?;
                let deps = ec.dependencies.iter().filter(|d| !d.external);
                Some(deps.map(|d| (d.name.clone(), d.version.clone())).collect())
            })
            .unwrap_or_default();
        let deps = Arc::new(deps);
        self.lock_toolchain_deps()
            .entry(tc.clone())
            .or_insert(deps)
            .clone()
    }

    fn lock_toolchain_deps(&self) -> std::sync::MutexGuard<'_, HashMap<Toolchain, ToolchainDeps>> {
        self.toolchain_deps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The parsed easyconfig, if the file parsed.
    pub fn easyconfig(&self, id: EcId) -> Option<&Easyconfig> {
        self.entry(id).easyconfig.as_ref().ok()
    }

    /// Every file that parsed (reading all of them).
    pub fn parsed(&self) -> impl Iterator<Item = (EcId, &Easyconfig)> {
        self.load_all(&());
        (0..self.len()).filter_map(|id| self.easyconfig(id).map(|ec| (id, ec)))
    }

    /// The files read so far that were reported and skipped.
    pub fn problems(&self) -> Vec<Problem> {
        self.entries
            .iter()
            .filter_map(|e| {
                let e = e.get()?;
                e.easyconfig.as_ref().err().map(|err| Problem {
                    path: e.path.clone(),
                    line: err.line,
                    reason: err.reason.clone(),
                })
            })
            .collect()
    }

    /// See [`EasyconfigFiles::find`].
    pub fn find(&self, name: &str, full_version: &str) -> Option<EcId> {
        self.files.find(name, full_version)
    }

    /// See [`EasyconfigFiles::find_target`].
    pub fn find_target(&self, target: &str) -> Option<EcId> {
        self.files.find_target(target)
    }
}

/// A regular file's bytes, at most [`MAX_EASYCONFIG_BYTES`]: a symlink (it
/// could point anywhere), a pipe or a device (reading could block or never
/// end) or a bigger file is refused with the reason.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(
            "refused: not a regular file (a directory, symlink, pipe, socket or device)".into(),
        );
    }
    let too_big = |n: u64| {
        format!("refused: {n} bytes, over the {MAX_EASYCONFIG_BYTES} an easyconfig may have")
    };
    if meta.len() > MAX_EASYCONFIG_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_EASYCONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    // It grew between the look and the read.
    if bytes.len() as u64 > MAX_EASYCONFIG_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
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
        let is_eb = path.extension().is_some_and(|e| e == "eb");
        if ft.is_dir() {
            // A directory named like an easyconfig is listed too, to be
            // reported (read_bounded refuses it), not silently passed over.
            if is_eb {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
            collect_eb_files(root, &path, out)?;
        } else if is_eb {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Why the module an easyconfig names is not a valid module name, if it is not. The
/// name and full version become S3 keys, install paths and `eb` arguments: every one of
/// EasyBuild 5.4.1's easyconfigs uses only ASCII letters, digits and `+-._`, so anything
/// else (a `/`, `..`, a control character, a shell metacharacter, a look-alike letter)
/// is refused here rather than escaped everywhere.
fn invalid_module_name(ec: &Easyconfig) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+-._".contains(c);
    let parts = [
        ("name", ec.name.as_str()),
        ("version", ec.version.as_str()),
        ("versionprefix", ec.versionprefix.as_str()),
        ("versionsuffix", ec.versionsuffix.as_str()),
        ("toolchain name", ec.toolchain.name.as_str()),
        ("toolchain version", ec.toolchain.version.as_str()),
    ];
    let bad = parts.iter().find_map(|(what, value)| {
        if let Some(c) = value.chars().find(|&c| !allowed(c)) {
            return Some(format!("{what} {value:?} holds {c:?}"));
        }
        if value.contains("..") {
            return Some(format!("{what} {value:?} holds \"..\""));
        }
        None
    });
    let bad = bad.or_else(|| {
        (ec.name.is_empty() || ec.name.starts_with(['.', '-']))
            .then(|| format!("name {:?} is empty or starts with '.' or '-'", ec.name))
    });
    bad.map(|why| format!("not a valid module name: {why} (only ASCII letters, digits and +-._)"))
}

/// Why a file's path and its contents disagree, if they do. The path must
/// be one EasyBuild's robot looks the module up at (`Name-fullversion.eb`,
/// `Name/fullversion.eb`, `Name/Name-fullversion.eb`,
/// `letter/Name/Name-fullversion.eb`): its directory, when it has one, is
/// `Name`, and a one-letter directory above that is `Name`'s letter.
/// Otherwise an upload under `x/Xx/` could be planned as `zlib/1.3.1`.
fn path_disagrees(path: &str, ec: &Easyconfig) -> Option<String> {
    let mut parts = path.rsplit('/');
    let file = parts.next().unwrap_or_default();
    let dir = parts.next();
    let letter = parts.next().filter(|l| l.chars().count() == 1);
    let full_version = ec.full_version();
    let expected = format!("{}-{full_version}.eb", ec.name);
    let letter_of = letter_dir_for(&ec.name).to_string();
    let named =
        file == expected || (dir == Some(ec.name.as_str()) && file == format!("{full_version}.eb"));
    let fits = named && dir.is_none_or(|d| d == ec.name) && letter.is_none_or(|l| l == letter_of);
    (!fits).then(|| {
        format!(
            "path and contents disagree: the file says {}, which belongs at {letter_of}/{}/{expected}",
            ec.module_name(),
            ec.name
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tree from (path, text) pairs, for tests across the crate.
    pub fn tree(arch: Arch, files: &[(&str, &str)]) -> EasyconfigTree {
        let sources = files
            .iter()
            .map(|(p, t)| (p.to_string(), Source::Bytes(t.as_bytes().to_vec())))
            .collect();
        let files =
            EasyconfigFiles::from_sources(PathBuf::from("/ec"), sources, Default::default());
        EasyconfigTree::new(files, arch)
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
        assert!(t.problems().is_empty(), "nothing parsed yet");
        t.load_all(&());
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
    fn a_file_whose_path_and_contents_disagree_is_reported_and_skipped() {
        let zlib = ec("zlib", "1.3.1", None, "");
        let t = tree(
            Arch::X86_64,
            &[
                ("z/zlib/zlib-1.3.1.eb", &zlib),
                ("zlib/1.3.1.eb", &zlib),
                ("zlib-1.3.1.eb", &zlib),
                // An upload under another name, directory or letter.
                ("x/Xx/Xx-2.eb", &zlib),
                ("x/zlib/zlib-1.3.1.eb", &zlib),
                ("z/zlib/zlib-1.3.2.eb", &zlib),
                ("z/Zlib/zlib-1.3.1.eb", &zlib),
            ],
        );
        t.load_all(&());
        let problems = t.problems();
        let mut bad: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        bad.sort();
        assert_eq!(
            bad,
            [
                "x/Xx/Xx-2.eb",
                "x/zlib/zlib-1.3.1.eb",
                "z/Zlib/zlib-1.3.1.eb",
                "z/zlib/zlib-1.3.2.eb"
            ]
        );
        let p = &problems[0];
        assert!(
            p.reason.contains("path and contents disagree")
                && p.reason.contains("z/zlib/zlib-1.3.1.eb"),
            "{}",
            p.reason
        );
        assert_eq!(t.parsed().count(), 3, "the good files are read");
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
        let Err(err) = EasyconfigFiles::scan(Path::new("/no/such/dir"), Default::default()) else {
            panic!("a missing directory loaded");
        };
        assert!(err.to_string().contains("/no/such/dir"));
    }

    #[test]
    fn reads_only_the_files_asked_for_and_each_once_for_both_architectures() {
        let dir = std::env::temp_dir().join(format!("ebfleet-tree-{}", std::process::id()));
        let write = |rel: &str, text: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("g/GCC/GCC-12.3.0.eb", &ec("GCC", "12.3.0", None, ""));
        write("b/Bad/Bad-1.eb", "name = 'Bad'\nversion = (\n");
        let cache = Arc::new(ParseCache::new());
        let files = EasyconfigFiles::scan(&dir, cache.clone()).unwrap();
        let x86 = EasyconfigTree::new(files.clone(), Arch::X86_64);
        let gcc = x86.find("GCC", "12.3.0").unwrap();
        assert_eq!(x86.easyconfig(gcc).unwrap().name, "GCC");
        // The bad file was never read: no problem, no digest yet.
        assert!(x86.problems().is_empty());
        assert!(files.digests().is_none());
        assert_eq!(cache.len(), 1);
        // Removing the file now shows the other view reuses the bytes read.
        std::fs::remove_file(dir.join("g/GCC/GCC-12.3.0.eb")).unwrap();
        let arm = EasyconfigTree::new(files.clone(), Arch::Aarch64);
        assert_eq!(arm.easyconfig(gcc).unwrap().name, "GCC");
        assert_eq!(cache.len(), 2);
        arm.load_all(&());
        assert_eq!(arm.problems().len(), 1);
        assert_eq!(files.digests().unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_pipes_and_oversized_files_are_refused_and_the_rest_planned() {
        let dir = std::env::temp_dir().join(format!("ebfleet-hostile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let at = |rel: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            p
        };
        std::fs::write(at("z/zlib/zlib-1.3.1.eb"), ec("zlib", "1.3.1", None, "")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", at("p/passwd/passwd-1.eb")).unwrap();
        let fifo = at("f/Fifo/Fifo-1.eb");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let big = std::fs::File::create(at("b/Big/Big-1.eb")).unwrap();
        big.set_len(MAX_EASYCONFIG_BYTES + 1).unwrap();
        let files = EasyconfigFiles::scan(&dir, Default::default()).unwrap();
        let tree = EasyconfigTree::new(files, Arch::X86_64);
        tree.load_all(&());
        assert_eq!(
            tree.easyconfig(tree.find("zlib", "1.3.1").unwrap())
                .unwrap()
                .name,
            "zlib"
        );
        let mut problems: Vec<(String, String)> = tree
            .problems()
            .into_iter()
            .map(|p| (p.path.clone(), p.reason.clone()))
            .collect();
        problems.sort();
        let reasons: Vec<&str> = problems.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(reasons[0].contains("over the 1048576"), "{reasons:?}");
        assert!(
            reasons[1].contains("not a regular file") && reasons[2].contains("not a regular file"),
            "{reasons:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_digest_source_is_parsed_from_the_cache() {
        let text = ec("zlib", "1.3.1", None, "");
        let sha = sha256_hex(text.as_bytes());
        let cache = Arc::new(ParseCache::new());
        cache.parse(Arch::X86_64, &sha, text.as_bytes());
        let files = EasyconfigFiles::from_sources(
            PathBuf::from("/ec"),
            vec![("z/zlib/zlib-1.3.1.eb".into(), Source::Digest(sha.clone()))],
            cache,
        );
        let x86 = EasyconfigTree::new(files.clone(), Arch::X86_64);
        assert_eq!(x86.entry(0).sha256, sha);
        assert_eq!(x86.easyconfig(0).unwrap().name, "zlib");
        // Not parsed for aarch64 and no bytes to parse: reported, not a panic.
        let arm = EasyconfigTree::new(files, Arch::Aarch64);
        arm.load_all(&());
        assert!(arm.problems()[0].reason.contains("no parse for aarch64"));
    }
}
