//! Parsed easyconfigs by content digest, so a file is evaluated once per
//! architecture and parser build, not once per run: the CLI keeps the cache
//! in a file, the Plan Lambda in its packed index (see `ebfleet-control`).
//!
//! What is cached is the parse before templates: templates read the
//! toolchain's own easyconfig, so they are applied per tree, after the cache.

use crate::easyconfig::{self, Easyconfig, ParseError};
use ebfleet_core::arch::Arch;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// A digest of the sources that parse easyconfigs (the evaluator and the
/// planner; see `build.rs`). A cache written by another build is not read.
pub const PARSER_ID: &str = env!("EBFLEET_PARSER_ID");

/// One file's parse for one architecture, before templates.
pub type Parsed = Result<Easyconfig, ParseError>;

/// Why a cache's bytes were not taken.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("written by another parser build ({found}, this one is {PARSER_ID})")]
    OtherParser { found: String },
    #[error("not a parse cache: {0}")]
    Corrupt(#[from] postcard::Error),
}

/// Parses by architecture, then by sha256 of the file's bytes (looked up
/// by `&str`: no key is built for a lookup).
#[derive(Default)]
pub struct ParseCache {
    map: RwLock<HashMap<Arch, HashMap<String, Arc<Parsed>>>>,
    changed: AtomicBool,
}

/// Refuse bytes written by another parser build. The id is read first, on
/// its own: another build's bytes may not even decode as this build's types.
pub(crate) fn check_parser(bytes: &[u8]) -> Result<(), CacheError> {
    let (parser, _): (String, _) = postcard::take_from_bytes(bytes)?;
    if parser != PARSER_ID {
        return Err(CacheError::OtherParser { found: parser });
    }
    Ok(())
}

#[derive(Serialize)]
struct CacheFileRef<'a> {
    parser: &'a str,
    entries: Vec<(Arch, &'a str, &'a Parsed)>,
}

#[derive(Deserialize)]
struct CacheFile {
    /// Checked before the rest is decoded ([`check_parser`]).
    _parser: String,
    entries: Vec<(Arch, String, Parsed)>,
}

/// Parse a file's bytes for `arch` (no cache).
pub fn parse_bytes(bytes: &[u8], arch: Arch) -> Parsed {
    match std::str::from_utf8(bytes) {
        Ok(text) => easyconfig::parse(text, arch),
        Err(e) => Err(ParseError {
            line: 0,
            reason: format!("not UTF-8: {e}"),
        }),
    }
}

impl ParseCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached parse of the file with digest `sha256`, if any.
    pub fn get(&self, arch: Arch, sha256: &str) -> Option<Arc<Parsed>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&arch)?.get(sha256).cloned()
    }

    /// The parse of `bytes` (whose digest is `sha256`): cached, or parsed
    /// now and cached.
    pub fn parse(&self, arch: Arch, sha256: &str, bytes: &[u8]) -> Arc<Parsed> {
        if let Some(p) = self.get(arch, sha256) {
            return p;
        }
        let parsed = Arc::new(parse_bytes(bytes, arch));
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.changed.store(true, Ordering::Relaxed);
        map.entry(arch)
            .or_default()
            .entry(sha256.to_string())
            .or_insert(parsed)
            .clone()
    }

    pub fn len(&self) -> usize {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether anything was added or removed since it was read.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Keep only the parses of files with these digests (a tree's current
    /// files), so the cache does not grow with every edit.
    pub fn retain(&self, digests: &HashSet<&str>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for by_sha in map.values_mut() {
            let before = by_sha.len();
            by_sha.retain(|sha, _| digests.contains(sha.as_str()));
            if by_sha.len() != before {
                self.changed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The cache as bytes (postcard), entries in a stable order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<(Arch, &str, &Parsed)> = map
            .iter()
            .flat_map(|(arch, by_sha)| {
                by_sha
                    .iter()
                    .map(|(sha, p)| (*arch, sha.as_str(), p.as_ref()))
            })
            .collect();
        entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let file = CacheFileRef {
            parser: PARSER_ID,
            entries,
        };
        postcard::to_stdvec(&file).expect("a parse cache serialises")
    }

    /// A cache from [`Self::to_bytes`] of this parser build.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CacheError> {
        check_parser(bytes)?;
        let file: CacheFile = postcard::from_bytes(bytes)?;
        let mut map: HashMap<Arch, HashMap<String, Arc<Parsed>>> = HashMap::new();
        for (arch, sha, p) in file.entries {
            map.entry(arch).or_default().insert(sha, Arc::new(p));
        }
        Ok(ParseCache {
            map: RwLock::new(map),
            changed: AtomicBool::new(false),
        })
    }

    /// The cache in `path`; empty when there is none or it is not this
    /// build's (said in the error, for the caller to report).
    pub fn read(path: &Path) -> (Self, Option<String>) {
        match std::fs::read(path) {
            Ok(bytes) => match Self::from_bytes(&bytes) {
                Ok(c) => (c, None),
                Err(e) => (Self::new(), Some(format!("{}: {e}", path.display()))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Self::new(), None),
            Err(e) => (Self::new(), Some(format!("{}: {e}", path.display()))),
        }
    }

    /// Write the cache to `path` (through a temporary file and a rename, so
    /// a reader never sees half of it).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name = 'zlib'\nversion = '1.3.1'\nhomepage = ''\ndescription = ''\ntoolchain = SYSTEM\ngithub_account = 'madler'\n";

    #[test]
    fn parses_once_and_round_trips_through_bytes() {
        let c = ParseCache::new();
        let sha = ebfleet_core::checksum::sha256_hex(GOOD.as_bytes());
        let a = c.parse(Arch::X86_64, &sha, GOOD.as_bytes());
        assert!(c.changed());
        // Cached: different bytes under the same digest give the first parse.
        let b = c.parse(Arch::X86_64, &sha, b"not = (python");
        assert!(Arc::ptr_eq(&a, &b));
        // Per architecture.
        assert!(c.get(Arch::Aarch64, &sha).is_none());
        let bad = c.parse(Arch::Aarch64, "ff", b"x = (\n");
        assert_eq!(bad.as_ref().as_ref().unwrap_err().line, 1);

        let back = ParseCache::from_bytes(&c.to_bytes()).unwrap();
        assert!(!back.changed());
        assert_eq!(back.len(), 2);
        assert_eq!(back.get(Arch::X86_64, &sha).unwrap(), a);
        assert_eq!(back.get(Arch::Aarch64, "ff").unwrap(), bad);
        assert_eq!(back.to_bytes(), c.to_bytes());
    }

    #[test]
    fn another_parsers_cache_or_garbage_is_refused() {
        let other = postcard::to_stdvec(&CacheFileRef {
            parser: "0123456789abcdef",
            entries: Vec::new(),
        })
        .unwrap();
        assert!(matches!(
            ParseCache::from_bytes(&other),
            Err(CacheError::OtherParser { .. })
        ));
        assert!(ParseCache::from_bytes(b"\xff\xff\xff").is_err());
        let dir = std::env::temp_dir().join(format!("ebfleet-cache-{}", std::process::id()));
        let path = dir.join("parse.bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, &other).unwrap();
        let (c, why) = ParseCache::read(&path);
        assert!(c.is_empty());
        assert!(why.unwrap().contains("another parser build"));
        let (c, why) = ParseCache::read(&dir.join("none.bin"));
        assert!(c.is_empty() && why.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retain_keeps_only_current_files() {
        let c = ParseCache::new();
        c.parse(Arch::X86_64, "aa", GOOD.as_bytes());
        c.parse(Arch::Aarch64, "aa", GOOD.as_bytes());
        c.parse(Arch::X86_64, "bb", GOOD.as_bytes());
        let c = ParseCache::from_bytes(&c.to_bytes()).unwrap();
        c.retain(&["aa"].into_iter().collect());
        assert!(c.changed());
        assert_eq!(c.len(), 2);
        assert!(c.get(Arch::X86_64, "bb").is_none());
    }
}
