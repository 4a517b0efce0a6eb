//! The layout of the bucket and the table: every S3 key and DynamoDB key
//! the pipeline reads or writes is made here and nowhere else.
//!
//! ```text
//! easyconfigs/<letter>/<Name>/<Name>-<ver>[-<tc>-<tcver>][<suffix>].eb
//! sources/<letter>/<Name>/...
//! staging/<platform>/<execution>/<unit>/...   what a unit's node uploads
//! <platform>/software/<Name>/<version>.tar.zst
//! <platform>/modules/all/<Name>/<version>.lua
//! <platform>/manifests/<execution>/<batch>.json
//! <platform>/logs/<Name>/<version>/...
//! plans/<execution>/plan.json, plans/<execution>/<platform>/<batch>.json
//! plans/<execution>/summary.json
//! index/easyconfigs.bin
//! ```
//!
//! Hidden modules (`zlib/.1.3`) keep their dot in every key:
//! `<platform>/software/zlib/.1.3.tar.zst`, `<platform>/modules/all/zlib/.1.3.lua`
//! (the module file path EasyBuild itself writes), `<platform>/logs/zlib/.1.3/`.
//! This is unambiguous because a visible version never starts with a dot
//! (validated), and a hidden module is a different module from the visible
//! one of the same version (its own DynamoDB item), so it gets its own keys.
//! Both install into the same software directory (`zlib/1.3`, see
//! [`ModuleName::install_subdir`]).

use crate::names::{EasyconfigPath, ExecutionName, ModuleName, PlatformName};

/// The prefix of easyconfig keys in the bucket.
pub const EASYCONFIGS_PREFIX: &str = "easyconfigs/";

/// The packed index of the easyconfigs (paths, ETags, digests, parses),
/// read and kept current by the Plan Lambda.
pub const EASYCONFIG_INDEX_KEY: &str = "index/easyconfigs.bin";

/// EasyBuild's `letter_dir_for`: the lowercase first letter of a software
/// name, `0` when it is not a letter.
pub fn letter_dir_for(name: &str) -> char {
    match name.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some(c) if c.is_ascii_lowercase() => c,
        _ => '0',
    }
}

/// `<platform>/software/<Name>/<version>.tar.zst`: a module's installation.
pub fn tarball_key(platform: &PlatformName, module: &ModuleName) -> String {
    tarball_key_under(&format!("{platform}/"), module)
}

/// `<platform>/modules/all/<Name>/<version>.lua`: a module's module file.
pub fn module_file_key(platform: &PlatformName, module: &ModuleName) -> String {
    module_file_key_under(&format!("{platform}/"), module)
}

/// `<platform>/manifests/<execution>/<batch>.json`: what a batch produced.
pub fn manifest_key(platform: &PlatformName, execution: &ExecutionName, batch: usize) -> String {
    format!("{platform}/manifests/{execution}/{batch}.json")
}

/// `<platform>/logs/<Name>/<version>/`: where a module's EasyBuild logs go.
pub fn log_prefix(platform: &PlatformName, module: &ModuleName) -> String {
    log_prefix_under(&format!("{platform}/"), module)
}

/// `<platform>/logs/<Name>/<version>/<execution>/`: a module's logs of
/// one run.
pub fn run_log_prefix(
    platform: &PlatformName,
    module: &ModuleName,
    execution: &ExecutionName,
) -> String {
    format!("{}{execution}/", log_prefix(platform, module))
}

/// The prefix of everything build nodes upload.
pub const STAGING_PREFIX: &str = "staging/";

/// `staging/<platform>/<execution>/<unit>/<node>/`: the only prefix of the
/// bucket a unit's node writes (beside the shared `sources/`). `node` is
/// the principal the node calls AWS as (`<role id>:<instance id>`, IAM's
/// `aws:userid`), which the node role's grant names: a node can write
/// under its own principal only, so no node writes what another unit's
/// Record reads. Nothing reads it but Record, which verifies what it holds
/// against the unit and promotes it into the platform's prefix; a node is
/// never trusted with those. Without a node (tests of a batch file) the
/// prefix ends at the unit.
pub fn staging_prefix(
    platform: &PlatformName,
    execution: &ExecutionName,
    unit: usize,
    node: Option<&str>,
) -> String {
    match node {
        Some(node) => format!("{STAGING_PREFIX}{platform}/{execution}/{unit}/{node}/"),
        None => format!("{STAGING_PREFIX}{platform}/{execution}/{unit}/"),
    }
}

/// `<prefix>software/<Name>/<version>.tar.zst`: `module`'s tarball under a
/// platform's prefix (`<platform>/`, [`tarball_key`]) or a unit's staging
/// prefix ([`staging_prefix`]), which lay modules out alike.
pub fn tarball_key_under(prefix: &str, module: &ModuleName) -> String {
    format!(
        "{prefix}software/{}/{}.tar.zst",
        module.name(),
        module.version()
    )
}

/// `<prefix>modules/all/<Name>/<version>.lua`: `module`'s module file under
/// a platform's or a staging prefix.
pub fn module_file_key_under(prefix: &str, module: &ModuleName) -> String {
    format!(
        "{prefix}modules/all/{}/{}.lua",
        module.name(),
        module.version()
    )
}

/// `<prefix>logs/<Name>/<version>/`: `module`'s logs under a platform's or
/// a staging prefix.
pub fn log_prefix_under(prefix: &str, module: &ModuleName) -> String {
    format!("{prefix}logs/{}/{}/", module.name(), module.version())
}

/// A unit's staged manifest: `staging/…/<unit>/manifest.json`.
pub fn staged_manifest_key(staging: &str) -> String {
    format!("{staging}manifest.json")
}

/// `plans/<execution>/`: everything an execution planned.
pub fn plans_prefix(execution: &ExecutionName) -> String {
    format!("plans/{execution}/")
}

/// `plans/<execution>/plan.json`: the full plan of an execution.
pub fn plan_key(execution: &ExecutionName) -> String {
    format!("{}plan.json", plans_prefix(execution))
}

/// `plans/<execution>/summary.json`: the run's summary (what each platform
/// built, its instance hours and dollars), written when the run ends.
pub fn summary_key(execution: &ExecutionName) -> String {
    format!("{}summary.json", plans_prefix(execution))
}

/// `plans/<execution>/<platform>/`: where the batch files of a platform go.
pub fn batch_prefix(execution: &ExecutionName, platform: &PlatformName) -> String {
    format!("{}{platform}/", plans_prefix(execution))
}

/// The file name of a platform's build graph under its batch prefix.
pub const GRAPH_FILE: &str = "graph.json";

/// `plans/<execution>/<platform>/<batch>.json`: one batch (or unit) file.
pub fn batch_key(execution: &ExecutionName, platform: &PlatformName, batch: usize) -> String {
    format!("{}{batch}.json", batch_prefix(execution, platform))
}

/// `easyconfigs/<letter>/<Name>/<file>.eb`.
pub fn easyconfig_key(path: &EasyconfigPath) -> String {
    format!("{EASYCONFIGS_PREFIX}{path}")
}

/// `sources/<letter>/<Name>/`: the sources of a software, shared by all
/// platforms (EasyBuild's source path layout; the letter as
/// `letter_dir_for`).
pub fn source_prefix(module: &ModuleName) -> String {
    let name = module.name();
    format!("sources/{}/{name}/", letter_dir_for(name))
}

// ---------------------------------------------------------------------------
// The table's keys.

const PLATFORM_PREFIX: &str = "PLATFORM#";
const MODULE_PREFIX: &str = "MODULE#";

/// Partition key of a platform's module items: `PLATFORM#<platform>`.
pub fn platform_pk(platform: &str) -> String {
    format!("{PLATFORM_PREFIX}{platform}")
}

/// Sort key of a module item: `MODULE#<Name>/<version>`.
pub fn module_sk(module: &str) -> String {
    format!("{MODULE_PREFIX}{module}")
}

/// Partition key of a run's items: `RUN#<execution>`.
pub fn run_pk(execution: &str) -> String {
    format!("RUN#{execution}")
}

/// Sort key of a run's summary item (under [`run_pk`]).
pub const SUMMARY_SK: &str = "SUMMARY";

/// Sort key of a platform's wake-up item in its run: `WAKE#<platform>`.
/// It holds the task token the platform's scheduler waits on and a count
/// of the units that ended, so a unit ending wakes it at once.
pub fn wake_sk(platform: &str) -> String {
    format!("WAKE#{platform}")
}

/// The module name of a module item's sort key.
pub fn module_from_sk(sk: &str) -> Option<&str> {
    sk.strip_prefix(MODULE_PREFIX).filter(|m| !m.is_empty())
}

/// The platform of a module item's partition key.
pub fn platform_from_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix(PLATFORM_PREFIX).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> ModuleName {
        s.parse().unwrap()
    }

    fn p(s: &str) -> PlatformName {
        s.parse().unwrap()
    }

    fn e(s: &str) -> ExecutionName {
        s.parse().unwrap()
    }

    #[test]
    fn the_s3_layout() {
        let pl = p("amzn-2023_graviton-3");
        let ex = e("run-1");
        let py = m("Python/3.11.3-GCCcore-12.3.0");
        assert_eq!(
            tarball_key(&pl, &py),
            "amzn-2023_graviton-3/software/Python/3.11.3-GCCcore-12.3.0.tar.zst"
        );
        assert_eq!(
            module_file_key(&pl, &py),
            "amzn-2023_graviton-3/modules/all/Python/3.11.3-GCCcore-12.3.0.lua"
        );
        assert_eq!(
            manifest_key(&pl, &ex, 7),
            "amzn-2023_graviton-3/manifests/run-1/7.json"
        );
        assert_eq!(
            log_prefix(&pl, &py),
            "amzn-2023_graviton-3/logs/Python/3.11.3-GCCcore-12.3.0/"
        );
        assert_eq!(
            staging_prefix(&pl, &ex, 7, Some("AROANODE:i-0123456789abcdef0")),
            "staging/amzn-2023_graviton-3/run-1/7/AROANODE:i-0123456789abcdef0/"
        );
        let staging = staging_prefix(&pl, &ex, 7, None);
        assert_eq!(staging, "staging/amzn-2023_graviton-3/run-1/7/");
        assert_eq!(
            tarball_key_under(&staging, &py),
            "staging/amzn-2023_graviton-3/run-1/7/software/Python/3.11.3-GCCcore-12.3.0.tar.zst"
        );
        assert_eq!(
            module_file_key_under(&staging, &py),
            "staging/amzn-2023_graviton-3/run-1/7/modules/all/Python/3.11.3-GCCcore-12.3.0.lua"
        );
        assert_eq!(
            log_prefix_under(&staging, &py),
            "staging/amzn-2023_graviton-3/run-1/7/logs/Python/3.11.3-GCCcore-12.3.0/"
        );
        assert_eq!(
            staged_manifest_key(&staging),
            "staging/amzn-2023_graviton-3/run-1/7/manifest.json"
        );
        assert_eq!(plan_key(&ex), "plans/run-1/plan.json");
        assert_eq!(summary_key(&ex), "plans/run-1/summary.json");
        assert_eq!(batch_prefix(&ex, &pl), "plans/run-1/amzn-2023_graviton-3/");
        assert_eq!(
            batch_key(&ex, &pl, 3),
            "plans/run-1/amzn-2023_graviton-3/3.json"
        );
        let path: EasyconfigPath = "p/Python/Python-3.11.3-GCCcore-12.3.0.eb".parse().unwrap();
        assert_eq!(
            easyconfig_key(&path),
            "easyconfigs/p/Python/Python-3.11.3-GCCcore-12.3.0.eb"
        );
        assert_eq!(source_prefix(&py), "sources/p/Python/");
        assert_eq!(
            source_prefix(&m("2decomp-fft/2.0.4")),
            "sources/0/2decomp-fft/"
        );
        assert_eq!(
            source_prefix(&m("WebKitGTK+/2.41.4")),
            "sources/w/WebKitGTK+/"
        );
    }

    #[test]
    fn hidden_modules_keep_their_dot_and_never_collide() {
        let pl = p("amzn-2023_graviton-3");
        let hidden = m("zlib/.1.3");
        let visible = m("zlib/1.3");
        assert_eq!(
            tarball_key(&pl, &hidden),
            "amzn-2023_graviton-3/software/zlib/.1.3.tar.zst"
        );
        assert_eq!(
            module_file_key(&pl, &hidden),
            "amzn-2023_graviton-3/modules/all/zlib/.1.3.lua"
        );
        assert_eq!(
            log_prefix(&pl, &hidden),
            "amzn-2023_graviton-3/logs/zlib/.1.3/"
        );
        assert_ne!(tarball_key(&pl, &hidden), tarball_key(&pl, &visible));
        assert_ne!(log_prefix(&pl, &hidden), log_prefix(&pl, &visible));
        assert_eq!(hidden.install_subdir(), visible.install_subdir());
    }

    #[test]
    fn table_keys() {
        let (p, m) = ("amzn-2023_graviton-3", "zlib/1.3.1-GCCcore-13.3.0");
        assert_eq!(platform_pk(p), "PLATFORM#amzn-2023_graviton-3");
        assert_eq!(module_sk(m), "MODULE#zlib/1.3.1-GCCcore-13.3.0");
        assert_eq!(module_from_sk(&module_sk(m)), Some(m));
        assert_eq!(platform_from_pk(&platform_pk(p)), Some(p));
        assert_eq!(module_from_sk("RUN#x"), None);
        assert_eq!(module_from_sk("MODULE#"), None);
        assert_eq!(run_pk("run-1"), "RUN#run-1");
        assert_eq!(wake_sk(p), "WAKE#amzn-2023_graviton-3");
    }
}
