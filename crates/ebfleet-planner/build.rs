//! `EBFLEET_PARSER_ID`: a digest of the sources that turn an easyconfig's
//! text into an [`Easyconfig`], so a parse cache written by another build
//! of the planner or evaluator is never read as this one's.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dirs = [here.join("src"), here.join("../ebfleet-python/src")];
    let mut files = Vec::new();
    for d in &dirs {
        println!("cargo:rerun-if-changed={}", d.display());
        rust_files(d, &mut files);
    }
    // Sorted by path relative to the crate, so the id does not depend on
    // where the checkout is.
    let mut named: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&here)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(p).unwrap_or_default())
        })
        .collect();
    named.sort();
    // DefaultHasher::new() has fixed keys: the same sources give the same id.
    let mut h = DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut h);
    named.hash(&mut h);
    println!("cargo:rustc-env=EBFLEET_PARSER_ID={:016x}", h.finish());
}
