//! The batch manifest — what the record Lambda reads — from the batch
//! file and the steps' results: each module built (its staged tarball
//! key, size, sha256, staged module file key, duration), failed (class,
//! message, the staged key of its log) or skipped (why). A module built but not packed is reported
//! failed: nothing of it is published. Pure, so every case is tested.

use crate::build::{BuildOutcome, BuildResult};
use crate::pack::{PackOutcome, TarResult};
use ebfleet_core::layout::{log_prefix_under, module_file_key_under, tarball_key_under};
use ebfleet_core::manifest::{BatchManifest, ManifestEntry, Outcome, MANIFEST_FORMAT};
use ebfleet_core::names::ModuleName;
use ebfleet_core::record::{ErrorClass, Tarball};
use ebfleet_core::wire::BatchFile;
use std::collections::BTreeMap;

/// What the node says about itself in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub instance_type: String,
    pub archspec: String,
}

/// The staged key of a file of a module's logs:
/// `staging/<platform>/<execution>/<unit>/logs/<Name>/<version>/<file>`
/// (Record copies it under the module's logs of the run).
pub fn log_key(batch: &BatchFile, m: &ModuleName, file: &str) -> String {
    format!("{}{file}", log_prefix_under(&batch.staging_prefix(), m))
}

/// The batch manifest from the batch file and the steps' results. Pure.
pub fn manifest(
    batch: &BatchFile,
    build: &BuildResult,
    tar: &TarResult,
    node: &NodeFacts,
    finished: u64,
) -> BatchManifest {
    let packed: BTreeMap<&ModuleName, &PackOutcome> = tar
        .modules
        .iter()
        .map(|p| (&p.module, &p.outcome))
        .collect();
    let modules = build
        .modules
        .iter()
        .map(|mb| {
            let m = &mb.module;
            let outcome = match (&mb.outcome, packed.get(m)) {
                (
                    BuildOutcome::Built { duration_s, usage },
                    Some(PackOutcome::Packed { tarball, .. }),
                ) => Outcome::Built {
                    tarball: Tarball {
                        key: tarball_key_under(&batch.staging_prefix(), m),
                        size: tarball.size,
                        sha256: tarball.sha256.clone(),
                        version_id: None,
                        signature: None,
                    },
                    module_file_key: module_file_key_under(&batch.staging_prefix(), m),
                    duration_s: *duration_s,
                    usage: *usage,
                },
                (BuildOutcome::Built { .. }, Some(PackOutcome::Failed { message })) => {
                    Outcome::Failed {
                        class: ErrorClass::Unknown,
                        message: format!("built, but not published: {message}"),
                        log_key: None,
                    }
                }
                (BuildOutcome::Built { .. }, None) => Outcome::Failed {
                    class: ErrorClass::Unknown,
                    message: "built, but tar did not pack it".into(),
                    log_key: None,
                },
                (
                    BuildOutcome::Failed {
                        class,
                        message,
                        log,
                        ..
                    },
                    _,
                ) => Outcome::Failed {
                    class: *class,
                    message: message.clone(),
                    log_key: log.as_deref().map(|f| log_key(batch, m, f)),
                },
                (BuildOutcome::Skipped { reason }, _) => Outcome::Skipped {
                    reason: reason.clone(),
                },
            };
            ManifestEntry {
                module: m.to_string(),
                easyconfig_sha256: mb.easyconfig_sha256.clone(),
                outcome,
            }
        })
        .collect();
    BatchManifest {
        format: MANIFEST_FORMAT,
        execution: batch.execution.to_string(),
        platform: batch.platform.to_string(),
        batch: u32::try_from(batch.batch).unwrap_or(u32::MAX),
        instance_type: node.instance_type.clone(),
        archspec: node.archspec.clone(),
        eb_version: build.eb_version.clone(),
        started: build.header.started,
        finished: finished.max(build.header.started),
        modules,
    }
}

#[cfg(test)]
mod tests;
