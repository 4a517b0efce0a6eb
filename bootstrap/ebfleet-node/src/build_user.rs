//! The unprivileged user `eb` runs as: node.env's `EBFLEET_BUILD_USER`,
//! which bootstrap.sh creates.
//!
//! A build runs code from its easyconfig and from every source it
//! compiles, so `eb` does not run as the agent: root, with the node's
//! credentials in reach (the agent's environment, instance metadata). With
//! a build user the agent
//!
//! - before each module ([`BuildUser::hand_over`]) gives the user the
//!   module's install directory, its log directory and the build path,
//!   and makes the directories of the module's name (`software/<Name>/`,
//!   `modules/all/<Name>/`, `sources/<l>/<Name>/`), `modules/`, `sources/`
//!   and `sources/<l>/` root's, group-writable for the user and sticky: the
//!   user can add its version, module file, sources, module-class links
//!   and EasyBuild's `sources/generic/` there, but not remove or change
//!   what anything else put there;
//! - runs `eb` as the user without supplementary groups ([`BuildUser::apply`]
//!   gives it the user's home and no root switch);
//! - after it ([`BuildUser::take_back`]) kills every process the user has
//!   left (a daemon a build leaves would change the next build on this
//!   node), then gives everything in those directories to root, with no
//!   set-id bits and no group or other write, and removes the symlinks it
//!   left where the agent makes files (a version's directory, a module
//!   file, a name's sources): no later build can change what was built,
//!   and nothing a later `sync` installs goes through a build's link.
//!
//! The rest of the node — the other modules of the stack, the easyconfigs,
//! the agent's state — stays root's, readable only. bootstrap.sh also
//! rejects the user's connections to instance metadata, so the node's
//! credentials are out of its reach. Without a build user (a node set up
//! before this, or a test), `eb` runs as the agent.

use crate::context::{io_at, NodeError};
use crate::layout::Layout;
use ebfleet_core::layout::source_prefix;
use ebfleet_core::names::ModuleName;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// node.env's key naming the build user.
pub const BUILD_USER_SETTING: &str = "EBFLEET_BUILD_USER";

/// Mode of a directory the build user may add to but not take from.
const SHARED_DIR_MODE: u32 = 0o1775;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildUserError {
    #[error("build user {0:?}: not in /etc/passwd")]
    Unknown(String),
    #[error("build user {0:?}: it is root (uid 0); the point is that eb is not")]
    Root(String),
    #[error("build user {0:?}: the agent must run as root to run eb as another user")]
    AgentNotRoot(String),
}

impl BuildUser {
    /// The user named `name` in `passwd` (`/etc/passwd`'s text).
    pub fn lookup(name: &str, passwd: &str) -> Result<Self, BuildUserError> {
        let user = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 7 && f[0] == name)
            .and_then(|f| {
                Some(BuildUser {
                    name: name.to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: PathBuf::from(f[5]),
                })
            })
            .ok_or_else(|| BuildUserError::Unknown(name.to_string()))?;
        if user.uid == 0 {
            return Err(BuildUserError::Root(name.to_string()));
        }
        Ok(user)
    }

    /// The user node.env names, if any; the agent must be root to use it.
    pub fn of_node(node: &crate::envfile::NodeEnv) -> Result<Option<Self>, NodeError> {
        let Some(name) = node.get(BUILD_USER_SETTING) else {
            return Ok(None);
        };
        let passwd = Path::new("/etc/passwd");
        let text = std::fs::read_to_string(passwd).map_err(io_at(passwd))?;
        let user = BuildUser::lookup(name, &text)?;
        if !crate::machine::running_as_root() {
            return Err(BuildUserError::AgentNotRoot(name.to_string()).into());
        }
        // eb starts in it.
        let home = &user.home;
        std::fs::create_dir_all(home).map_err(io_at(home))?;
        lchown(home, Some(user.uid), Some(user.gid)).map_err(io_at(home))?;
        Ok(Some(user))
    }

    /// `eb`'s environment as this user: its home, its name, no root
    /// switch, and locks and the easyconfig repository in the build path
    /// (their defaults are under the install path, which is root's).
    pub fn apply(&self, env: &mut BTreeMap<OsString, OsString>) {
        env.remove(&OsString::from(crate::eb::ALLOW_ROOT));
        env.insert("HOME".into(), self.home.clone().into());
        env.insert("USER".into(), self.name.clone().into());
        env.insert("LOGNAME".into(), self.name.clone().into());
        if let Some(build) = env.get(&OsString::from("EASYBUILD_BUILDPATH")).cloned() {
            let build = PathBuf::from(build);
            env.insert("EASYBUILD_LOCKS_DIR".into(), build.join(".locks").into());
            env.insert(
                "EASYBUILD_REPOSITORYPATH".into(),
                build.join("ebfiles_repo").into(),
            );
        }
    }

    /// Before `m`'s `eb`: see the module's documentation.
    pub fn hand_over(
        &self,
        layout: &Layout,
        m: &ModuleName,
        logs: &Path,
        build: &Path,
    ) -> Result<(), NodeError> {
        // Nothing of an earlier build (of an agent that crashed) still runs.
        kill_all(self.uid);
        for dir in shared_dirs(layout, m) {
            self.share(&dir)?;
        }
        // A crashed attempt's leftovers (`eb --rebuild` would empty them).
        let install = layout.install_dir(m);
        remove_any(&install)?;
        remove_any(&layout.module_file(m))?;
        for dir in [&install, logs, build] {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
            lchown(dir, Some(self.uid), Some(self.gid)).map_err(io_at(dir))?;
        }
        Ok(())
    }

    /// After `m`'s `eb`: see the module's documentation.
    pub fn take_back(&self, layout: &Layout, m: &ModuleName, logs: &Path) -> Result<(), NodeError> {
        kill_all(self.uid);
        // Symlinks the build left where the agent later makes or reads
        // files (a version's directory, a module file, `sources/<l>/<Name>`)
        // are removed: the agent would follow them as root.
        for (dir, link_depth) in [
            (layout.software().join(m.name()), 1),
            (layout.modules_all().join(m.name()), 1),
            (layout.sources(), 2),
            (logs.to_path_buf(), 1),
        ] {
            own_tree(&dir, link_depth)?;
        }
        Ok(())
    }

    /// `dir` as a real directory of root's, group-writable for the user and
    /// sticky; a symlink or file in its place is removed first.
    fn share(&self, dir: &Path) -> Result<(), NodeError> {
        if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
            remove_any(dir)?;
        }
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        lchown(dir, Some(0), Some(self.gid)).map_err(io_at(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SHARED_DIR_MODE))
            .map_err(io_at(dir))
    }
}

/// The directories the user adds `m`'s files to: EasyBuild also writes
/// `modules/<class>/` and `sources/generic/`.
fn shared_dirs(layout: &Layout, m: &ModuleName) -> Vec<PathBuf> {
    // Without the prefix's trailing slash, which would resolve a symlink.
    let sources: PathBuf = layout.source_dir(&source_prefix(m)).components().collect();
    vec![
        layout.software().join(m.name()),
        layout.modules_all().join(m.name()),
        layout.modules(),
        layout.sources(),
        sources.parent().map(Path::to_path_buf).unwrap_or_default(),
        sources,
    ]
}

/// Remove whatever is at `path` (never following a symlink).
fn remove_any(path: &Path) -> Result<(), NodeError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(io_at(path)),
        Ok(_) => std::fs::remove_file(path).map_err(io_at(path)),
        Err(_) => Ok(()),
    }
}

/// Everything under `dir` (not `dir` itself) to root, without following
/// symlinks: no set-id bits, no group or other write. Symlinks up to
/// `link_depth` levels down are removed. What is root's already and was
/// not writable by the build is not walked: nothing in it can be the
/// build's (so `sources/` costs what the build added, not its size).
fn own_tree(dir: &Path, link_depth: usize) -> Result<(), NodeError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e.map_err(io_at(dir))?;
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io_at(&path))?;
        if meta.file_type().is_symlink() && link_depth > 0 {
            std::fs::remove_file(&path).map_err(io_at(&path))?;
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if meta.uid() == 0 && meta.gid() == 0 && mode & 0o6022 == 0 {
            continue;
        }
        lchown(&path, Some(0), Some(0)).map_err(io_at(&path))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = mode & !0o6022;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io_at(&path))?;
        if meta.is_dir() {
            own_tree(&path, link_depth.saturating_sub(1))?;
        }
    }
    Ok(())
}

/// SIGKILL every process whose real, effective or saved uid is `uid`,
/// until none is left (a process may fork while the first are killed).
fn kill_all(uid: u32) {
    for round in 0..100 {
        let pids = processes_of(uid);
        if pids.is_empty() {
            return;
        }
        for pid in &pids {
            // SAFETY: kill(2) with a pid read from /proc and a constant signal.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        tracing::warn!(
            user = uid,
            processes = pids.len(),
            round,
            "killed what the build left running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::error!(user = uid, "processes of the build user are still running");
}

/// Live (not zombie) processes with `uid` among their real, effective and
/// saved uids.
pub fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let zombie = status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
            let ours = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|ids| {
                    ids.split_whitespace()
                        .take(3)
                        .any(|id| id.parse() == Ok(uid))
                });
            ours && !zombie
        })
        .collect()
}

#[cfg(test)]
mod tests;
