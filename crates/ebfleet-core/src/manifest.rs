//! The batch manifest a build node uploads after a batch
//! (`<platform>/manifests/<execution>/<batch>.json`), how the record Lambda
//! checks it ([`BatchManifest::validate`], then against its unit file:
//! [`BatchManifest::check_for`]) and how each of its entries changes a
//! module's record ([`apply_manifest`]).

use crate::layout::{
    log_prefix_under, module_file_key, module_file_key_under, run_log_prefix, tarball_key_under,
    STAGING_PREFIX,
};
use crate::record::{
    lease_owner, next_version, truncate_message, ErrorClass, ModuleRecord, RecordedError, Status,
    Tarball, MAX_ERROR_MESSAGE_BYTES,
};
use crate::sizing::BuildUsage;
use crate::wire::BatchFile;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Largest tarball a manifest may report: S3's largest object (5 TiB).
pub const MAX_TARBALL_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// The manifest format this code reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// What one module of a batch came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    Built {
        tarball: Tarball,
        module_file_key: String,
        duration_s: u64,
        /// What the build used, when the node measured it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<BuildUsage>,
    },
    Failed {
        class: ErrorClass,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_key: Option<String>,
    },
    /// Not attempted, e.g. a dependency failed.
    Skipped { reason: String },
}

/// One module in a batch manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// `<Name>/<version>`.
    pub module: String,
    /// The checksum of the easyconfig the node built (or would have built).
    pub easyconfig_sha256: String,
    pub outcome: Outcome,
}

/// What a node uploads after a batch, to
/// `<platform>/manifests/<execution>/<batch>.json`; the record Lambda reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    pub execution: String,
    pub platform: String,
    pub batch: u32,
    pub instance_type: String,
    /// archspec's name of the node's CPU.
    pub archspec: String,
    pub eb_version: String,
    pub started: u64,
    pub finished: u64,
    pub modules: Vec<ManifestEntry>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest format {found}, this code reads {MANIFEST_FORMAT}")]
    Format { found: u32 },
    #[error("manifest field {field} is empty or not printable")]
    BadField { field: &'static str },
    #[error("manifest finished ({finished}) before it started ({started})")]
    Time { started: u64, finished: u64 },
    #[error("manifest module name {module:?} is not <Name>/<version>")]
    BadModule { module: String },
    #[error("module {module} is listed twice in the manifest")]
    Duplicate { module: String },
    #[error("{module}: {field} {value:?} is not a lowercase hex sha256")]
    BadSha256 {
        module: String,
        field: &'static str,
        value: String,
    },
    #[error("{module}: tarball size {size} is not between 1 and {MAX_TARBALL_BYTES} bytes")]
    BadSize { module: String, size: u64 },
    #[error("{module}: {field} {key:?} is not a key under {prefix}")]
    BadKey {
        module: String,
        field: &'static str,
        key: String,
        prefix: String,
    },
    #[error("{module}: usage: {reason}")]
    BadUsage { module: String, reason: String },
    #[error("{module}: skipped without a reason")]
    NoReason { module: String },
    /// The manifest says more than its unit: another unit's key, another
    /// run or platform, a module or easyconfig the unit does not build, a
    /// key the layout does not give that module.
    #[error("manifest at {key}: {problem}")]
    NotItsUnit { key: String, problem: String },
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.chars().any(char::is_control)
}

fn check_key(
    module: &str,
    field: &'static str,
    key: &str,
    prefixes: [&str; 2],
) -> Result<(), ManifestError> {
    let ok = prefixes
        .iter()
        .any(|prefix| key.len() > prefix.len() && key.starts_with(prefix))
        && !key.chars().any(char::is_control)
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(ManifestError::BadKey {
            module: module.to_string(),
            field,
            key: key.to_string(),
            prefix: prefixes.join(" or "),
        })
    }
}

impl BatchManifest {
    /// Read and validate a manifest.
    pub fn from_json(json: &str) -> Result<Self, ManifestError> {
        let m: BatchManifest = serde_json::from_str(json)?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The lease owner of this batch.
    pub fn owner(&self) -> String {
        lease_owner(&self.execution, self.batch)
    }

    /// Check what the record Lambda relies on: non-empty fields, checksums
    /// as 64 lowercase hex, sizes S3 can hold, keys under the platform's
    /// prefixes (`<platform>/software/`, `/modules/`, `/logs/`) or its
    /// staging prefix (`staging/<platform>/`), each module once.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format { found: self.format });
        }
        for (field, value) in [
            ("execution", &self.execution),
            ("platform", &self.platform),
            ("instance_type", &self.instance_type),
            ("archspec", &self.archspec),
            ("eb_version", &self.eb_version),
        ] {
            if !printable(value) {
                return Err(ManifestError::BadField { field });
            }
        }
        if self.platform.contains('/') {
            return Err(ManifestError::BadField { field: "platform" });
        }
        if self.finished < self.started {
            return Err(ManifestError::Time {
                started: self.started,
                finished: self.finished,
            });
        }
        // A node's manifest names its staged keys, Record's promoted one
        // the platform's.
        let staging = format!("{STAGING_PREFIX}{}/", self.platform);
        let mut seen = HashSet::new();
        for e in &self.modules {
            let m = &e.module;
            let well_formed = printable(m)
                && m.split_once('/')
                    .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty() && !v.contains('/'))
                && !m.contains("..");
            if !well_formed {
                return Err(ManifestError::BadModule { module: m.clone() });
            }
            if !seen.insert(m.as_str()) {
                return Err(ManifestError::Duplicate { module: m.clone() });
            }
            if !crate::checksum::is_sha256_hex(&e.easyconfig_sha256) {
                return Err(ManifestError::BadSha256 {
                    module: m.clone(),
                    field: "easyconfig_sha256",
                    value: e.easyconfig_sha256.clone(),
                });
            }
            match &e.outcome {
                Outcome::Built {
                    tarball,
                    module_file_key,
                    duration_s,
                    usage,
                } => {
                    if let Some(Err(reason)) = usage.map(|u| u.check(*duration_s)) {
                        return Err(ManifestError::BadUsage {
                            module: m.clone(),
                            reason,
                        });
                    }
                    if !crate::checksum::is_sha256_hex(&tarball.sha256) {
                        return Err(ManifestError::BadSha256 {
                            module: m.clone(),
                            field: "tarball.sha256",
                            value: tarball.sha256.clone(),
                        });
                    }
                    if tarball.size == 0 || tarball.size > MAX_TARBALL_BYTES {
                        return Err(ManifestError::BadSize {
                            module: m.clone(),
                            size: tarball.size,
                        });
                    }
                    let p = &self.platform;
                    check_key(
                        m,
                        "tarball.key",
                        &tarball.key,
                        [&format!("{p}/software/"), &staging],
                    )?;
                    check_key(
                        m,
                        "module_file_key",
                        module_file_key,
                        [&format!("{p}/modules/"), &staging],
                    )?;
                }
                Outcome::Failed { log_key, .. } => {
                    if let Some(k) = log_key {
                        let logs = format!("{}/logs/", self.platform);
                        check_key(m, "log_key", k, [&logs, &staging])?;
                    }
                }
                Outcome::Skipped { reason } => {
                    if reason.trim().is_empty() {
                        return Err(ManifestError::NoReason { module: m.clone() });
                    }
                }
            }
        }
        Ok(())
    }

    /// Check a [validated](Self::validate) manifest read from `key` against
    /// the unit (or batch) file it reports on. A node writes the manifest;
    /// it is believed only where it says what the unit asked of it: it sits
    /// at the unit's staged key and names the unit's run, platform and
    /// index; it lists only the unit's modules, each from the unit's
    /// easyconfig; a built module's tarball and module file are at the
    /// unit's staged keys for that module, a failed one's log under that
    /// module's staged log prefix.
    pub fn check_for(&self, key: &str, unit: &BatchFile) -> Result<(), ManifestError> {
        let not_its = |problem: String| ManifestError::NotItsUnit {
            key: key.to_string(),
            problem,
        };
        let (platform, execution) = (&unit.platform, &unit.execution);
        if self.platform != platform.as_str()
            || self.execution != execution.as_str()
            || self.batch as usize != unit.batch
        {
            return Err(not_its(format!(
                "it reports {}/{}/{}, its unit is {platform}/{execution}/{}",
                self.platform, self.execution, self.batch, unit.batch
            )));
        }
        if key != unit.staged_manifest_key() {
            return Err(not_its(format!(
                "the unit's manifest is {}",
                unit.staged_manifest_key()
            )));
        }
        let staging = unit.staging_prefix();
        for e in &self.modules {
            let Some(b) = unit.builds.iter().find(|b| b.module.as_str() == e.module) else {
                return Err(not_its(format!("{} is not a module of the unit", e.module)));
            };
            if e.easyconfig_sha256 != b.easyconfig_sha256 {
                return Err(not_its(format!(
                    "{}: easyconfig sha256 {}, the unit's is {}",
                    e.module, e.easyconfig_sha256, b.easyconfig_sha256
                )));
            }
            let expect = |field: &str, found: &str, want: &str| {
                if found == want {
                    Ok(())
                } else {
                    Err(not_its(format!(
                        "{}: {field} {found:?}, the unit's is {want:?}",
                        e.module
                    )))
                }
            };
            match &e.outcome {
                Outcome::Built {
                    tarball,
                    module_file_key: file,
                    ..
                } => {
                    expect(
                        "tarball.key",
                        &tarball.key,
                        &tarball_key_under(&staging, &b.module),
                    )?;
                    expect(
                        "module_file_key",
                        file,
                        &module_file_key_under(&staging, &b.module),
                    )?;
                }
                Outcome::Failed {
                    log_key: Some(log), ..
                } => {
                    let prefix = log_prefix_under(&staging, &b.module);
                    let file = log.strip_prefix(&prefix).unwrap_or_default();
                    if file.is_empty() || file.contains('/') {
                        return Err(not_its(format!(
                            "{}: log_key {log:?} is not a file under {prefix}",
                            e.module
                        )));
                    }
                }
                Outcome::Failed { log_key: None, .. } | Outcome::Skipped { .. } => {}
            }
        }
        Ok(())
    }

    /// The manifest Record publishes of a [checked](Self::check_for) one:
    /// every staged key replaced by where Record promotes it (the
    /// platform's tarball and module file keys, the module's log prefix of
    /// this run), and each built tarball as Record found it (`verified`,
    /// by module: its size and sha256 computed from the staged object, and
    /// the promoted object's version). A built module missing from
    /// `verified` is not published: it becomes a failure saying why.
    pub fn promoted(&self, verified: &std::collections::BTreeMap<String, Verified>) -> Self {
        let mut out = self.clone();
        let (Ok(platform), Ok(execution)) = (self.platform.parse(), self.execution.parse()) else {
            return out;
        };
        for e in &mut out.modules {
            let Ok(module) = e.module.parse::<crate::names::ModuleName>() else {
                continue;
            };
            match &mut e.outcome {
                Outcome::Built {
                    tarball,
                    module_file_key: file,
                    ..
                } => match verified.get(&e.module) {
                    Some(Verified::Tarball(t)) => {
                        *tarball = t.clone();
                        *file = module_file_key(&platform, &module);
                    }
                    Some(Verified::Refused(why)) => {
                        e.outcome = Outcome::Failed {
                            class: ErrorClass::Unknown,
                            message: format!("built, but its upload was refused: {why}"),
                            log_key: None,
                        }
                    }
                    None => {
                        e.outcome = Outcome::Failed {
                            class: ErrorClass::Unknown,
                            message: "built, but its upload was not verified".into(),
                            log_key: None,
                        }
                    }
                },
                Outcome::Failed {
                    log_key: Some(log), ..
                } => {
                    let file = log.rsplit('/').next().unwrap_or_default();
                    *log = format!("{}{file}", run_log_prefix(&platform, &module, &execution));
                }
                Outcome::Failed { log_key: None, .. } | Outcome::Skipped { .. } => {}
            }
        }
        out
    }
}

/// What Record found of a built module's staged tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Its digest and size are what the node said; promoted to this
    /// tarball (the platform's key, S3's version of it).
    Tarball(Tarball),
    /// Not published, and why (missing, another size or digest).
    Refused(String),
}

/// The record to write for `entry` of `manifest`, or `None` when nothing
/// changes.
///
/// - `Built`: status `Built`, tarball and build facts from the manifest,
///   error cleared.
/// - `Failed`: the error is noted; a record that was built stays built with
///   its tarball and checksum; otherwise status `Failed`.
/// - `Skipped`: not an attempt; a `Building` record goes back to `Planned`
///   (unless another owner's live lease is on it), a missing one is created
///   `Planned`.
/// - Built and failed results count one attempt per (execution, batch); a
///   result of the attempt the record already counted is `None`, except a
///   `Built` over that attempt's failure: the scheduler tried the unit
///   again in the same execution (fewer jobs after running out of memory,
///   a download later), and a success is never lost.
/// - The batch's own lease ([`BatchManifest::owner`]) is released; anyone
///   else's is kept.
///
/// `manifest` is one [`BatchManifest::validate`] accepted. Write the result
/// under [`write_condition`]`(existing)`.
pub fn apply_manifest(
    existing: Option<&ModuleRecord>,
    manifest: &BatchManifest,
    entry: &ManifestEntry,
    now: u64,
) -> Option<ModuleRecord> {
    let same_attempt = existing.is_some_and(|r| {
        r.execution.as_deref() == Some(manifest.execution.as_str())
            && r.batch == Some(manifest.batch)
    });
    let mut r = existing.cloned().unwrap_or_else(|| {
        ModuleRecord::new(
            &manifest.platform,
            &entry.module,
            &entry.easyconfig_sha256,
            now,
        )
    });
    let mut count_attempt = || {
        if same_attempt {
            return false;
        }
        r.attempts = r.attempts.saturating_add(1);
        r.execution = Some(manifest.execution.clone());
        r.batch = Some(manifest.batch);
        true
    };
    match &entry.outcome {
        Outcome::Built {
            tarball,
            module_file_key,
            duration_s,
            usage,
        } => {
            if !count_attempt() && r.status == Status::Built {
                return None;
            }
            r.status = Status::Built;
            r.easyconfig_sha256 = entry.easyconfig_sha256.clone();
            r.tarball = Some(tarball.clone());
            r.module_file_key = Some(module_file_key.clone());
            r.eb_version = Some(manifest.eb_version.clone());
            r.instance_type = Some(manifest.instance_type.clone());
            r.archspec = Some(manifest.archspec.clone());
            r.duration_s = Some(*duration_s);
            r.usage = *usage;
            r.last_error = None;
        }
        Outcome::Failed {
            class,
            message,
            log_key,
        } => {
            if !count_attempt() {
                return None;
            }
            if r.status != Status::Built {
                r.status = Status::Failed;
                r.easyconfig_sha256 = entry.easyconfig_sha256.clone();
            }
            r.last_error = Some(RecordedError {
                class: *class,
                message: truncate_message(message, MAX_ERROR_MESSAGE_BYTES),
                log_key: log_key.clone(),
            });
        }
        Outcome::Skipped { .. } => {
            // A `Building` record under someone else's live lease is theirs:
            // this batch skipping the module says nothing about their build.
            let theirs = r.held_by_other(&manifest.owner(), now).is_some();
            if !theirs && matches!(r.status, Status::Building | Status::Planned) {
                r.status = Status::Planned;
                r.easyconfig_sha256 = entry.easyconfig_sha256.clone();
            }
        }
    }
    if r.lease
        .as_ref()
        .is_some_and(|l| l.owner == manifest.owner())
    {
        r.lease = None;
    }
    if existing == Some(&r) {
        return None;
    }
    Some(next_version(existing, r, now))
}

#[cfg(test)]
mod tests;
