//! The packed easyconfig index: one object that stands for a whole tree of
//! easyconfigs in a bucket, so a planner reads it and the few objects that
//! changed since, not every file. It holds each file's path, the tag its
//! store gave that version (an S3 ETag) and its sha256, and the parse cache
//! of every file for every architecture.
//!
//! Refreshing is by listing: a listed file whose tag the index holds is
//! taken from the index; any other is downloaded and parsed; files no
//! longer listed drop out. A stale or foreign index costs downloads, never
//! a wrong plan: tags come from the store's listing, and parses are keyed
//! by content digest and by the parser's build ([`PARSER_ID`]).

use crate::parse_cache::{check_parser, CacheError, ParseCache, PARSER_ID};
use crate::tree::{EasyconfigFiles, Source};
use ebfleet_core::arch::Arch;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// One file of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedFile {
    /// Relative to the tree.
    pub path: String,
    /// The store's tag of the version indexed.
    pub tag: String,
    pub sha256: String,
}

/// A tree's files and their parses.
#[derive(Default)]
pub struct EasyconfigIndex {
    files: HashMap<String, IndexedFile>,
    cache: ParseCache,
}

#[derive(Serialize, Deserialize)]
struct Packed {
    /// First, so another build's index is told apart before the rest.
    parser: String,
    files: Vec<IndexedFile>,
    cache: Vec<u8>,
}

impl EasyconfigIndex {
    /// An index from [`Self::to_bytes`] of this parser build.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CacheError> {
        check_parser(bytes)?;
        let packed: Packed = postcard::from_bytes(bytes)?;
        Ok(EasyconfigIndex {
            files: packed
                .files
                .into_iter()
                .map(|f| (f.path.clone(), f))
                .collect(),
            cache: ParseCache::from_bytes(&packed.cache)?,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Of `listed` (path, tag), the paths whose version the index lacks:
    /// what must be downloaded.
    pub fn stale<'a>(&self, listed: &'a [(String, String)]) -> Vec<&'a str> {
        listed
            .iter()
            .filter(|(path, tag)| self.files.get(path).is_none_or(|f| f.tag != *tag))
            .map(|(path, _)| path.as_str())
            .collect()
    }

    /// The tree of `listed`: each file from the index, or from
    /// `downloaded` (path → bytes) when [`Self::stale`]; and the files
    /// `refused` (path, why), reported as problems and never indexed.
    pub fn files(
        self,
        root: PathBuf,
        listed: &[(String, String)],
        mut downloaded: HashMap<String, Vec<u8>>,
        refused: Vec<(String, String)>,
    ) -> Result<IndexedTree, MissingDownload> {
        let mut sources: Vec<(String, Source)> = refused
            .into_iter()
            .map(|(path, why)| (path, Source::Refused(why)))
            .collect();
        for (path, tag) in listed {
            let source = match downloaded.remove(path) {
                Some(bytes) => Source::Bytes(bytes),
                None => match self.files.get(path).filter(|f| f.tag == *tag) {
                    Some(f) => Source::Digest(f.sha256.clone()),
                    None => return Err(MissingDownload(path.clone())),
                },
            };
            sources.push((path.clone(), source));
        }
        let up_to_date = self.files.len() == listed.len()
            && listed
                .iter()
                .all(|(p, t)| self.files.get(p).is_some_and(|f| f.tag == *t));
        Ok(IndexedTree {
            files: EasyconfigFiles::from_sources(root, sources, Arc::new(self.cache)),
            tags: listed.to_vec(),
            up_to_date,
        })
    }
}

/// A stale file that was not downloaded.
#[derive(Debug, thiserror::Error)]
#[error("{0} changed since the index and was not downloaded")]
pub struct MissingDownload(pub String);

/// A tree built from an index, and what it takes to index it again.
pub struct IndexedTree {
    pub files: Arc<EasyconfigFiles>,
    tags: Vec<(String, String)>,
    up_to_date: bool,
}

impl IndexedTree {
    /// Whether the index it came from already says all there is to say
    /// (same files, same versions, no new parses): no need to write it.
    pub fn index_is_current(&self) -> bool {
        self.up_to_date && !self.files.cache().changed()
    }

    /// The index of this tree: every file parsed for every architecture
    /// (the new ones now), parses of files gone dropped.
    pub fn to_index_bytes(&self) -> Vec<u8> {
        let files = &self.files;
        files.parse_all(&[Arch::X86_64, Arch::Aarch64]);
        let mut indexed = Vec::with_capacity(self.tags.len());
        for (path, tag) in &self.tags {
            let sha256 = files
                .find_path(path)
                .and_then(|id| files.sha256(id))
                .unwrap_or_default();
            indexed.push(IndexedFile {
                path: path.clone(),
                tag: tag.clone(),
                sha256: sha256.to_string(),
            });
        }
        let digests: HashSet<&str> = indexed.iter().map(|f| f.sha256.as_str()).collect();
        files.cache().retain(&digests);
        postcard::to_stdvec(&Packed {
            parser: PARSER_ID.to_string(),
            files: indexed,
            cache: files.cache().to_bytes(),
        })
        .expect("an index serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::ec;
    use crate::tree::EasyconfigTree;

    fn listed(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn an_index_stands_for_the_files_it_lists_and_downloads_only_what_changed() {
        let zlib = ec("zlib", "1.3.1", None, "");
        let gcc = ec("GCC", "13.2.0", None, "");
        // First run: no index, everything is downloaded.
        let first = listed(&[
            ("g/GCC/GCC-13.2.0.eb", "g1"),
            ("z/zlib/zlib-1.3.1.eb", "z1"),
        ]);
        let none = EasyconfigIndex::default();
        assert_eq!(none.stale(&first).len(), 2);
        let got = HashMap::from([
            ("g/GCC/GCC-13.2.0.eb".to_string(), gcc.clone().into_bytes()),
            (
                "z/zlib/zlib-1.3.1.eb".to_string(),
                zlib.clone().into_bytes(),
            ),
        ]);
        // A file too big to download is a problem of the tree, not indexed.
        let refused = vec![("b/Big/Big-1.eb".to_string(), "refused: too big".to_string())];
        let tree = none.files("ec".into(), &first, got, refused).unwrap();
        assert!(!tree.index_is_current());
        let view = crate::tree::EasyconfigTree::new(tree.files.clone(), Arch::X86_64);
        view.load_all(&());
        let problems = view.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].path.as_str(), problems[0].reason.as_str()),
            ("b/Big/Big-1.eb", "refused: too big")
        );
        let bytes = tree.to_index_bytes();

        // Second run: zlib changed (new tag), a file was added, GCC as before.
        let newer = ec("zlib", "1.3.1", None, "dependencies = [('GCC', '13.2.0')]");
        let second = listed(&[
            ("g/GCC/GCC-13.2.0.eb", "g1"),
            ("x/X/X-1.eb", "x1"),
            ("z/zlib/zlib-1.3.1.eb", "z2"),
        ]);
        let index = EasyconfigIndex::from_bytes(&bytes).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.stale(&second), ["x/X/X-1.eb", "z/zlib/zlib-1.3.1.eb"]);
        // Not downloading a stale file is an error, not an old parse.
        assert!(index
            .files("ec".into(), &second, HashMap::new(), Vec::new())
            .is_err());
        let index = EasyconfigIndex::from_bytes(&bytes).unwrap();
        let got = HashMap::from([
            (
                "x/X/X-1.eb".to_string(),
                ec("X", "1", None, "").into_bytes(),
            ),
            ("z/zlib/zlib-1.3.1.eb".to_string(), newer.into_bytes()),
        ]);
        let tree = index.files("ec".into(), &second, got, Vec::new()).unwrap();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let t = EasyconfigTree::new(tree.files.clone(), arch);
            let z = t.find("zlib", "1.3.1").unwrap();
            assert_eq!(
                t.easyconfig(z).unwrap().dependencies.len(),
                1,
                "the new zlib"
            );
            let g = t.find("GCC", "13.2.0").unwrap();
            assert_eq!(t.easyconfig(g).unwrap().name, "GCC", "from the index");
        }
        let bytes = tree.to_index_bytes();

        // Third run: nothing changed, nothing to download or write; the
        // old zlib's parses are gone from the index.
        let index = EasyconfigIndex::from_bytes(&bytes).unwrap();
        assert!(index.stale(&second).is_empty());
        assert_eq!(index.cache.len(), 6, "3 files × 2 architectures");
        let tree = index
            .files("ec".into(), &second, HashMap::new(), Vec::new())
            .unwrap();
        let t = EasyconfigTree::new(tree.files.clone(), Arch::Aarch64);
        t.load_all(&());
        assert!(t.problems().is_empty());
        assert!(tree.index_is_current());

        // A file removed: the index is rewritten without it.
        let index = EasyconfigIndex::from_bytes(&bytes).unwrap();
        let fewer = listed(&[("g/GCC/GCC-13.2.0.eb", "g1")]);
        let tree = index
            .files("ec".into(), &fewer, HashMap::new(), Vec::new())
            .unwrap();
        assert!(!tree.index_is_current());
        let index = EasyconfigIndex::from_bytes(&tree.to_index_bytes()).unwrap();
        assert_eq!((index.len(), index.cache.len()), (1, 2));
    }

    #[test]
    fn a_foreign_or_broken_index_is_refused() {
        let other = postcard::to_stdvec(&Packed {
            parser: "another".into(),
            files: Vec::new(),
            cache: Vec::new(),
        })
        .unwrap();
        assert!(matches!(
            EasyconfigIndex::from_bytes(&other),
            Err(CacheError::OtherParser { .. })
        ));
        assert!(EasyconfigIndex::from_bytes(b"").is_err());
    }
}
