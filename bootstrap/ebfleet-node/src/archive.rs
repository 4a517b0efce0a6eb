//! One module's installation as a `.tar.zst`, written deterministically and
//! read back without trusting it.
//!
//! **Packing.** Entries are `<Name>/<version>/...` (the module's install
//! subdirectory, so a tarball unpacks into `software/`), in byte order of
//! their paths, directories before their contents. Each keeps its
//! permission bits and modification time (Python's `.pyc` files and `make`
//! compare them), owner 0:0 with no names; hard links become regular
//! files. zstd level [`ZSTD_LEVEL`], one thread. The same tree gives the
//! same bytes, so a re-run of `tar` after a crash reproduces the tarball
//! and its sha256. Anything unpacking would refuse (a symlink out of the
//! module, a device, a fifo) makes packing fail instead.
//!
//! **Unpacking.** Every entry is checked before it is written: a relative
//! path of plain components under the module's own `<Name>/<version>/`,
//! a regular file, directory, symlink or hard link; a symlink's target
//! (absolute, or relative to the link) must stay inside the module's
//! directory, a hard link's too. Entries go to a staging directory beside
//! `software/` and the module's directory is renamed into place at the end,
//! so a crash never leaves half a module where EasyBuild looks.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// zstd level of the tarballs: a fixed level keeps them reproducible; 9
/// packs well and still runs at tens of MB/s on one core.
pub const ZSTD_LEVEL: i32 = 9;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Something in the tree that a tarball must not carry.
    #[error("packing {path}: {reason}")]
    Unpackable { path: PathBuf, reason: String },
    /// An entry of a tarball that would not stay where it belongs.
    #[error("tarball {tarball}: entry {entry:?} refused: {reason}")]
    Refused {
        tarball: PathBuf,
        entry: String,
        reason: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A writer that counts and hashes what passes through.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the bytes written and their lowercase hex sha256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size and lowercase hex sha256 of a file, read in chunks.
pub fn file_sha256(path: &Path) -> Result<(u64, String), ArchiveError> {
    let mut f = fs::File::open(path).map_err(io_at(path))?;
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut f, &mut w).map_err(io_at(path))?;
    let (_, size, sha) = w.finish();
    Ok((size, sha))
}

/// What packing wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub size: u64,
    pub sha256: String,
    pub entries: u64,
}

/// Lexically normalise `base/target` (both relative, `base` a directory);
/// `None` when it climbs above the start.
fn resolve_relative(base: &Path, target: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in base.components().chain(target.components()) {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Whether a symlink at `link` (relative to the tarball's root, inside
/// `module_root` = `<Name>/<version>`) pointing at `target` stays inside the
/// module: relative targets lexically, absolute ones under `install_dir`
/// (the module's directory on this node).
fn link_stays_inside(link: &Path, target: &Path, module_root: &Path, install_dir: &Path) -> bool {
    if target.as_os_str().is_empty() {
        return false;
    }
    if target.is_absolute() {
        let Some(rest) = target.strip_prefix(install_dir).ok() else {
            return false;
        };
        return resolve_relative(module_root, rest).is_some_and(|p| p.starts_with(module_root));
    }
    let parent = link.parent().unwrap_or(Path::new(""));
    resolve_relative(parent, target).is_some_and(|p| p.starts_with(module_root))
}

/// Every path under `dir`, relative to it, sorted bytewise (so each
/// directory comes before its contents); symlinks are not followed.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for e in fs::read_dir(&abs).map_err(io_at(&abs))? {
            let e = e.map_err(io_at(&abs))?;
            let child = rel.join(e.file_name());
            if e.file_type().map_err(io_at(&abs))?.is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(out)
}

/// Pack `install_dir` (a module's installation, `<root>/software/<Name>/<version>`)
/// as `<module_root>/...` into `out` (written as `out.partial`, then
/// renamed).
pub fn pack(install_dir: &Path, module_root: &str, out: &Path) -> Result<Packed, ArchiveError> {
    let module_root = Path::new(module_root);
    let tmp = crate::layout::partial(out);
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    let file = fs::File::create(&tmp).map_err(io_at(&tmp))?;
    let hashing = HashingWriter::new(io::BufWriter::new(file));
    let encoder = zstd::stream::Encoder::new(hashing, ZSTD_LEVEL).map_err(io_at(&tmp))?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    let mut entries = 0u64;
    let mut add = |rel: &Path| -> Result<(), ArchiveError> {
        let abs = install_dir.join(rel);
        let meta = fs::symlink_metadata(&abs).map_err(io_at(&abs))?;
        let name = module_root.join(rel);
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.permissions().mode() & 0o7777);
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        h.set_uid(0);
        h.set_gid(0);
        let ft = meta.file_type();
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, &name, io::empty())
                .map_err(io_at(&tmp))?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            let f = fs::File::open(&abs).map_err(io_at(&abs))?;
            tar.append_data(&mut h, &name, f).map_err(io_at(&abs))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(io_at(&abs))?;
            if !link_stays_inside(&name, &target, module_root, install_dir) {
                return Err(ArchiveError::Unpackable {
                    path: abs,
                    reason: format!(
                        "symlink to {} leaves the module's directory",
                        target.display()
                    ),
                });
            }
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, &name, &target)
                .map_err(io_at(&abs))?;
        } else {
            return Err(ArchiveError::Unpackable {
                path: abs,
                reason: "not a file, directory or symlink".into(),
            });
        }
        entries += 1;
        Ok(())
    };
    // The module's own directory entries first, so permissions of
    // `<Name>` and `<Name>/<version>` travel too.
    add(Path::new(""))?;
    for rel in walk(install_dir)? {
        add(&rel)?;
    }
    let encoder = tar.into_inner().map_err(io_at(&tmp))?;
    let hashing = encoder.finish().map_err(io_at(&tmp))?;
    let (buf, size, sha256) = hashing.finish();
    let file = buf.into_inner().map_err(|e| io_at(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_at(&tmp))?;
    fs::rename(&tmp, out).map_err(io_at(out))?;
    Ok(Packed {
        size,
        sha256,
        entries,
    })
}

/// Check one entry's path: plain components, under `module_root`.
fn entry_path(raw: &Path, module_root: &Path) -> Result<PathBuf, String> {
    let mut clean = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("'..' in the path".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    if !clean.starts_with(module_root) {
        return Err(format!("outside {}/", module_root.display()));
    }
    Ok(clean)
}

/// Unpack a module's tarball into `software` (`<root>/software`), as
/// `<module_root>` = `<Name>/<version>`, replacing what is there. Every
/// entry is checked first (see the module documentation); nothing of a
/// refused tarball stays on disk.
pub fn unpack(tarball: &Path, software: &Path, module_root: &str) -> Result<u64, ArchiveError> {
    let module_root = Path::new(module_root);
    let install_dir = software.join(module_root);
    // One staging directory per module ('@' is in no module name), so
    // modules unpacked in parallel never share one.
    let staging_root = software
        .join(".ebfleet-staging")
        .join(module_root.to_string_lossy().replace('/', "@"));
    if staging_root.exists() {
        fs::remove_dir_all(&staging_root).map_err(io_at(&staging_root))?;
    }
    fs::create_dir_all(&staging_root).map_err(io_at(&staging_root))?;
    let staged = staging_root.join(module_root);
    let result = unpack_into(tarball, &staging_root, module_root, &install_dir).and_then(|n| {
        if !staged.is_dir() {
            return Err(ArchiveError::Refused {
                tarball: tarball.to_path_buf(),
                entry: module_root.display().to_string(),
                reason: "the tarball has no directory for its module".into(),
            });
        }
        if install_dir.exists() || install_dir.is_symlink() {
            fs::remove_dir_all(&install_dir).map_err(io_at(&install_dir))?;
        }
        if let Some(parent) = install_dir.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        fs::rename(&staged, &install_dir).map_err(io_at(&install_dir))?;
        Ok(n)
    });
    let _ = fs::remove_dir_all(&staging_root);
    result
}

fn unpack_into(
    tarball: &Path,
    staging_root: &Path,
    module_root: &Path,
    install_dir: &Path,
) -> Result<u64, ArchiveError> {
    let refused = |entry: &Path, reason: String| ArchiveError::Refused {
        tarball: tarball.to_path_buf(),
        entry: entry.display().to_string(),
        reason,
    };
    let file = fs::File::open(tarball).map_err(io_at(tarball))?;
    let decoder = zstd::stream::Decoder::new(file).map_err(io_at(tarball))?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    let mut count = 0u64;
    for entry in archive.entries().map_err(io_at(tarball))? {
        let mut entry = entry.map_err(io_at(tarball))?;
        let raw = entry.path().map_err(io_at(tarball))?.into_owned();
        let path = entry_path(&raw, module_root).map_err(|r| refused(&raw, r))?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => {
                // Created writable now, given its mode at the end (a
                // read-only directory would refuse its own contents).
                let dst = staging_root.join(&path);
                fs::create_dir_all(&dst).map_err(io_at(&dst))?;
                let mode = entry.header().mode().map_err(io_at(tarball))?;
                dirs.push((dst, mode & 0o7777));
                count += 1;
                continue;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(io_at(tarball))?
                    .ok_or_else(|| refused(&raw, "symlink without a target".into()))?
                    .into_owned();
                if !link_stays_inside(&path, &target, module_root, install_dir) {
                    return Err(refused(
                        &raw,
                        format!(
                            "symlink to {} leaves {}",
                            target.display(),
                            module_root.display()
                        ),
                    ));
                }
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(io_at(tarball))?
                    .ok_or_else(|| refused(&raw, "hard link without a target".into()))?
                    .into_owned();
                entry_path(&target, module_root).map_err(|r| {
                    refused(&raw, format!("hard link target {}: {r}", target.display()))
                })?;
            }
            other => {
                return Err(refused(
                    &raw,
                    format!("entry type {other:?} is not allowed"),
                ));
            }
        }
        let ok = entry
            .unpack_in(staging_root)
            .map_err(io_at(&staging_root.join(&path)))?;
        if !ok {
            return Err(refused(&raw, "outside the target directory".into()));
        }
        count += 1;
    }
    // Deepest first, so a read-only parent is set after its children.
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (dir, mode) in dirs {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(io_at(&dir))?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests;
