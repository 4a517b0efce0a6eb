//! Where things live on a node, under its root (`/opt/eb` by default):
//!
//! ```text
//! software/<Name>/<version>/          EasyBuild's install dirs (installpath)
//! modules/all/<Name>/<version>.lua    module files (Lmod, Lua)
//! sources/<letter>/<Name>/...         EasyBuild's source path
//! easyconfigs/<letter>/<Name>/...     the batches' easyconfigs (robot path)
//! build/                              EasyBuild's build path (unless node.env moves it)
//! ebfleet/installed/<Name>/<version>.json
//!                                     a module unpacked by sync or published by
//!                                     upload: the tarball's sha256 it holds
//! ebfleet/<execution>/<platform>/<batch>/
//!     sync.json build.json tar.json upload.json   each step's result
//!     leases.json                     the batch's leases file, when it has one
//!     logs/<Name>/<version>/          EasyBuild's logs and eb's output
//!     tarballs/<Name>/<version>.tar.zst, .lua     what upload sends
//!     downloads/                      tarballs being fetched and unpacked
//!     multipart/<id>.json             multipart uploads in flight
//!     manifest.json                   the batch manifest, once written
//! ```
//!
//! A CUDA overlay's batch ([`BatchFile::layer`]) installs into
//! `<root>/accel/nvidia/cc<XY>/{software,modules/all}` instead, over the
//! base stack at `<root>/{software,modules/all}` that its needs from the
//! base unpack into ([`Layout::for_batch`]).
//!
//! Every path is built from validated names ([`ModuleName`],
//! [`EasyconfigPath`], [`ExecutionName`], [`PlatformName`]), so none can
//! leave the root.

use ebfleet_core::names::{EasyconfigPath, ExecutionName, ModuleName, PlatformName};
use ebfleet_core::step::Step;
use ebfleet_core::wire::BatchFile;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The default root; `--root` or `EBFLEET_NODE_ROOT` move it.
pub const DEFAULT_ROOT: &str = "/opt/eb";

/// The node's directories under its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    /// `<root>/<layer>` when installing a CUDA overlay's builds.
    installpath: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Layout {
            installpath: root.clone(),
            root,
        }
    }

    /// The layout of `batch`'s builds: an overlay's install into its layer.
    pub fn for_batch(&self, batch: &BatchFile) -> Self {
        let base = self.base();
        match batch.layer() {
            // The layer is made of validated parts (`accel/nvidia/cc` and a
            // checked compute capability): it stays under the root.
            Some(layer) => Layout {
                installpath: base.root.join(layer),
                root: base.root,
            },
            None => base,
        }
    }

    /// The base stack's layout: what an overlay's needs from its base
    /// unpack into, and the only one of other platforms.
    pub fn base(&self) -> Self {
        Layout::new(&self.root)
    }

    /// Whether builds install into an overlay's layer.
    pub fn is_layered(&self) -> bool {
        self.installpath != self.root
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// EasyBuild's `installpath`: `software/` and `modules/` are under it.
    pub fn installpath(&self) -> &Path {
        &self.installpath
    }

    pub fn software(&self) -> PathBuf {
        self.installpath.join("software")
    }

    /// `software/<Name>/<version>` (without a hidden module's dot).
    pub fn install_dir(&self, m: &ModuleName) -> PathBuf {
        self.software().join(m.name()).join(version_dir(m))
    }

    /// `modules/`: `all/` and EasyBuild's links by module class.
    pub fn modules(&self) -> PathBuf {
        self.installpath.join("modules")
    }

    pub fn modules_all(&self) -> PathBuf {
        self.modules().join("all")
    }

    /// Lmod's `MODULEPATH` for builds: the layer's modules over the base's.
    pub fn module_path(&self) -> std::ffi::OsString {
        let mut path = self.modules_all().into_os_string();
        if self.is_layered() {
            path.push(":");
            path.push(self.base().modules_all());
        }
        path
    }

    /// `modules/all/<Name>/<version>.lua`, as EasyBuild writes it.
    pub fn module_file(&self, m: &ModuleName) -> PathBuf {
        self.modules_all()
            .join(m.name())
            .join(format!("{}.lua", m.version()))
    }

    pub fn sources(&self) -> PathBuf {
        self.root.join("sources")
    }

    /// Where a `sources/<letter>/<Name>/` prefix of the bucket lives on the
    /// node: the same path under [`Layout::sources`].
    pub fn source_dir(&self, prefix: &str) -> PathBuf {
        self.sources()
            .join(prefix.strip_prefix("sources/").unwrap_or(prefix))
    }

    pub fn easyconfigs(&self) -> PathBuf {
        self.root.join("easyconfigs")
    }

    pub fn easyconfig(&self, p: &EasyconfigPath) -> PathBuf {
        self.easyconfigs().join(p.as_str())
    }

    pub fn build(&self) -> PathBuf {
        self.root.join("build")
    }

    /// `ebfleet/installed/<Name>/<version>.json`.
    pub fn installed_marker(&self, m: &ModuleName) -> PathBuf {
        self.root
            .join("ebfleet")
            .join("installed")
            .join(m.name())
            .join(format!("{}.json", m.version()))
    }

    /// The state directory of one batch.
    pub fn state(
        &self,
        execution: &ExecutionName,
        platform: &PlatformName,
        batch: usize,
    ) -> StateDir {
        StateDir {
            dir: self
                .root
                .join("ebfleet")
                .join(execution.as_str())
                .join(platform.as_str())
                .join(batch.to_string()),
        }
    }
}

/// The install directory's last component: the version without a hidden
/// module's dot (EasyBuild installs `zlib/.1.3` into `zlib/1.3`).
fn version_dir(m: &ModuleName) -> &str {
    let v = m.version();
    v.strip_prefix('.').unwrap_or(v)
}

/// `ebfleet/<execution>/<platform>/<batch>/`: what the steps of one batch
/// leave for each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<step>.json`: the step's result.
    pub fn result(&self, step: Step) -> PathBuf {
        self.dir.join(format!("{}.json", step.as_str()))
    }

    /// `leases.json`: the batch's leases file as `sync` found it in the
    /// bucket; absent when the batch has none.
    pub fn leases(&self) -> PathBuf {
        self.dir.join("leases.json")
    }

    pub fn logs(&self, m: &ModuleName) -> PathBuf {
        self.dir.join("logs").join(m.name()).join(m.version())
    }

    pub fn tarball(&self, m: &ModuleName) -> PathBuf {
        self.dir
            .join("tarballs")
            .join(m.name())
            .join(format!("{}.tar.zst", m.version()))
    }

    /// The module file as packed, beside its tarball.
    pub fn module_copy(&self, m: &ModuleName) -> PathBuf {
        self.dir
            .join("tarballs")
            .join(m.name())
            .join(format!("{}.lua", m.version()))
    }

    pub fn downloads(&self) -> PathBuf {
        self.dir.join("downloads")
    }

    pub fn multipart(&self) -> PathBuf {
        self.dir.join("multipart")
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }
}

/// Reading or writing a small JSON state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not the expected JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` through a temporary file and a rename, so a
/// crash leaves the old content or the new, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = partial(path);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// `<path>.partial`: where a file is written before it is renamed in place.
pub fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Write `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Read a JSON state file; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Json {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> ModuleName {
        s.parse().unwrap()
    }

    #[test]
    fn paths_of_a_module_and_a_hidden_one() {
        let l = Layout::new("/opt/eb");
        let z = m("zlib/1.3.1-GCCcore-13.3.0");
        assert_eq!(
            l.install_dir(&z),
            Path::new("/opt/eb/software/zlib/1.3.1-GCCcore-13.3.0")
        );
        assert_eq!(
            l.module_file(&z),
            Path::new("/opt/eb/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua")
        );
        let h = m("zlib/.1.3");
        assert_eq!(l.install_dir(&h), Path::new("/opt/eb/software/zlib/1.3"));
        assert_eq!(
            l.module_file(&h),
            Path::new("/opt/eb/modules/all/zlib/.1.3.lua")
        );
        assert_eq!(
            l.installed_marker(&h),
            Path::new("/opt/eb/ebfleet/installed/zlib/.1.3.json")
        );
        let s = l.state(
            &"run-1".parse().unwrap(),
            &"amzn-2023_zen4".parse().unwrap(),
            7,
        );
        assert_eq!(s.dir(), Path::new("/opt/eb/ebfleet/run-1/amzn-2023_zen4/7"));
        assert_eq!(s.result(Step::Tar), s.dir().join("tar.json"));
        assert_eq!(s.leases(), s.dir().join("leases.json"));
        assert_eq!(s.logs(&z), s.dir().join("logs/zlib/1.3.1-GCCcore-13.3.0"));
        assert_eq!(
            s.tarball(&z),
            s.dir().join("tarballs/zlib/1.3.1-GCCcore-13.3.0.tar.zst")
        );
        let ec: EasyconfigPath = "z/zlib/zlib-1.3.1.eb".parse().unwrap();
        assert_eq!(
            l.easyconfig(&ec),
            Path::new("/opt/eb/easyconfigs/z/zlib/zlib-1.3.1.eb")
        );
    }

    #[test]
    fn json_state_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/sync.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        write_json(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        assert!(!partial(&p).exists());
        std::fs::write(&p, "{").unwrap();
        let err = read_json::<Vec<u32>>(&p).unwrap_err().to_string();
        assert!(err.contains("sync.json"), "{err}");
    }
}
