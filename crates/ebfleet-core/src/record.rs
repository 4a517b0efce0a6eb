//! What DynamoDB records per platform and module, the leases that keep two
//! executions or two nodes from building the same module, the batch manifest
//! a build node uploads, and the run's summary.
//!
//! Everything here is a pure decision: the DynamoDB adapter reads an item,
//! asks this module what to write and under which [`WriteCondition`], and
//! writes it conditionally. When the condition fails (someone wrote in
//! between), the adapter reads again and asks again; every decision here is
//! safe to repeat. Timestamps are Unix seconds passed in by the caller.
//!
//! # Rules
//!
//! - **Optimistic concurrency.** Every item carries a `version`, incremented
//!   by every write. A write is conditional on the item not existing, or on
//!   its version being the one the decision was made from
//!   ([`write_condition`]). This covers leases too: a condition on the lease
//!   alone ("free or expired") would let a second acquirer take a module that
//!   was built and released between its read and its write, and build it
//!   again.
//! - **Leases expire.** A lease is `{owner, expires}`; its owner renews it
//!   ([`renew_lease`]) while the batch runs (the node's heartbeat). A spot
//!   machine that is reclaimed or dies stops renewing, so once `expires` is
//!   past, [`decide_lease`] lets the next acquirer take the module: a dead
//!   node never blocks a module for longer than one TTL. Expiry is checked
//!   here against the caller's `now`, never by DynamoDB's TTL: TTL deletes
//!   whole items (the built record with it) and only within days.
//! - **Owners are batches.** A lease's owner is [`lease_owner`]`(execution,
//!   batch)`, not an instance: a batch retried on new capacity after its node
//!   was lost still owns its modules, and the record of its manifest releases
//!   exactly the leases it took.
//! - **A success is never lost.** A failure or a skip after a success keeps
//!   the built tarball, its easyconfig checksum and build facts; it only
//!   notes the error. Since `easyconfig_sha256` stays the checksum the
//!   tarball was built from, the planner rebuilds when the easyconfig
//!   changed, and readers never see a built module disappear.
//! - **Recording is idempotent.** An attempt is one batch of one execution;
//!   the record names the last attempt it counted. Applying a manifest
//!   whose attempt is already recorded changes nothing, and any other result
//!   identical to what is stored (timestamps and version aside) is not
//!   written either.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Longest error message kept in a record or a summary, in bytes
/// (DynamoDB items are limited to 400 KB; the full log is in S3).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;
/// Largest tarball a manifest may report: S3's largest object (5 TiB).
pub const MAX_TARBALL_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// The manifest format this code reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;
/// Sort key of a run's summary item (`pk = RUN#<execution>`).
pub const RUN_SK: &str = "SUMMARY";
/// Most failures listed per platform in a run summary (the counts stay exact).
pub const MAX_SUMMARY_FAILURES: usize = 200;

const PLATFORM_PREFIX: &str = "PLATFORM#";
const MODULE_PREFIX: &str = "MODULE#";
const RUN_PREFIX: &str = "RUN#";

/// Partition key of a platform's module items: `PLATFORM#<platform>`.
pub fn pk(platform: &str) -> String {
    format!("{PLATFORM_PREFIX}{platform}")
}

/// Sort key of a module item: `MODULE#<Name>/<version>`.
pub fn sk(module: &str) -> String {
    format!("{MODULE_PREFIX}{module}")
}

/// Partition key of a run's summary: `RUN#<execution>`.
pub fn run_pk(execution: &str) -> String {
    format!("{RUN_PREFIX}{execution}")
}

/// The module name of a module item's sort key.
pub fn module_from_sk(sk: &str) -> Option<&str> {
    sk.strip_prefix(MODULE_PREFIX).filter(|m| !m.is_empty())
}

/// The platform of a module item's partition key.
pub fn platform_from_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix(PLATFORM_PREFIX).filter(|p| !p.is_empty())
}

/// Where a module stands on a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Known (planned, or skipped because a dependency failed), not built.
    Planned,
    /// Leased by a batch that is building it.
    Building,
    /// A tarball exists, built from `easyconfig_sha256`.
    Built,
    /// The last attempt failed and nothing was ever built.
    Failed,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Planned => "planned",
            Status::Building => "building",
            Status::Built => "built",
            Status::Failed => "failed",
        })
    }
}

/// Why a build failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A source or patch could not be downloaded.
    DownloadFailed,
    /// A source that must be provided by hand (licensed, not downloadable).
    MissingSource,
    OutOfMemory,
    CompileError,
    TestFailure,
    /// A dependency failed, so this module could not be built.
    DependencyFailed,
    /// The node went away (spot interruption, instance terminated).
    NodeLost,
    Timeout,
    Unknown,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::DownloadFailed,
        ErrorClass::MissingSource,
        ErrorClass::OutOfMemory,
        ErrorClass::CompileError,
        ErrorClass::TestFailure,
        ErrorClass::DependencyFailed,
        ErrorClass::NodeLost,
        ErrorClass::Timeout,
        ErrorClass::Unknown,
    ];

    /// The stable name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::DownloadFailed => "download_failed",
            ErrorClass::MissingSource => "missing_source",
            ErrorClass::OutOfMemory => "out_of_memory",
            ErrorClass::CompileError => "compile_error",
            ErrorClass::TestFailure => "test_failure",
            ErrorClass::DependencyFailed => "dependency_failed",
            ErrorClass::NodeLost => "node_lost",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown error class {s:?}"))
    }
}

/// A tarball in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tarball {
    pub key: String,
    pub size: u64,
    /// Lowercase hex sha256 of the object.
    pub sha256: String,
}

/// The last error of a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedError {
    pub class: ErrorClass,
    /// At most [`MAX_ERROR_MESSAGE_BYTES`].
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
}

/// A build lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    /// Unix seconds; the lease is dead from this second on.
    pub expires: u64,
}

impl Lease {
    pub fn is_live(&self, now: u64) -> bool {
        now < self.expires
    }
}

/// The DynamoDB item of one module on one platform
/// (`pk` = [`pk`]`(platform)`, `sk` = [`sk`]`(module)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub platform: String,
    /// `<Name>/<version>`.
    pub module: String,
    pub status: Status,
    /// The easyconfig checksum the tarball was built from when built, else
    /// the one last attempted.
    pub easyconfig_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarball: Option<Tarball>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_file_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eb_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archspec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// Distinct attempts (batches of executions) that built or failed it.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<RecordedError>,
    /// The execution (ARN or name) of the last counted attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// The batch index of the last counted attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    pub created: u64,
    pub updated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Incremented by every write; see [`write_condition`].
    #[serde(default)]
    pub version: u64,
}

impl ModuleRecord {
    /// A record that has never been written.
    pub fn new(platform: &str, module: &str, easyconfig_sha256: &str, now: u64) -> Self {
        ModuleRecord {
            platform: platform.to_string(),
            module: module.to_string(),
            status: Status::Planned,
            easyconfig_sha256: easyconfig_sha256.to_string(),
            tarball: None,
            module_file_key: None,
            eb_version: None,
            instance_type: None,
            archspec: None,
            duration_s: None,
            attempts: 0,
            last_error: None,
            execution: None,
            batch: None,
            created: now,
            updated: now,
            lease: None,
            version: 0,
        }
    }

    pub fn pk(&self) -> String {
        pk(&self.platform)
    }

    pub fn sk(&self) -> String {
        sk(&self.module)
    }

    /// Built from this easyconfig checksum: nothing to do.
    pub fn is_built_from(&self, easyconfig_sha256: &str) -> bool {
        self.status == Status::Built && self.easyconfig_sha256 == easyconfig_sha256
    }

    /// The live lease of someone other than `owner`.
    pub fn held_by_other(&self, owner: &str, now: u64) -> Option<&Lease> {
        self.lease
            .as_ref()
            .filter(|l| l.is_live(now) && l.owner != owner)
    }
}

/// The condition the adapter puts on a write, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WriteCondition {
    /// `attribute_not_exists(pk)`: the item was absent when decided.
    NotExists,
    /// `version = :version`: the item is the one the decision was made from.
    Unchanged { version: u64 },
}

/// The condition for writing a record decided from `existing`.
pub fn write_condition(existing: Option<&ModuleRecord>) -> WriteCondition {
    match existing {
        None => WriteCondition::NotExists,
        Some(r) => WriteCondition::Unchanged { version: r.version },
    }
}

/// `new` as the next version of `existing`: version bumped, timestamps set.
fn next_version(existing: Option<&ModuleRecord>, mut new: ModuleRecord, now: u64) -> ModuleRecord {
    new.version = existing.map_or(1, |r| r.version + 1);
    new.created = existing.map_or(now, |r| r.created);
    new.updated = now;
    new
}

/// The lease owner of a batch of an execution.
pub fn lease_owner(execution: &str, batch: u32) -> String {
    format!("{execution}#batch-{batch}")
}

/// A request for a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// See [`lease_owner`].
    pub owner: String,
    pub now: u64,
    /// Seconds until the lease dies unless renewed.
    pub ttl: u64,
}

impl LeaseRequest {
    pub fn expires(&self) -> u64 {
        self.now.saturating_add(self.ttl)
    }
}

/// What to do about a module before building it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum LeaseDecision {
    /// Take the lease: write [`acquire_lease`]'s record under `condition`.
    Acquire { condition: WriteCondition },
    /// Built from the same easyconfig checksum: skip it.
    AlreadyBuilt,
    /// Someone else's live lease: do not build it now.
    HeldBy { owner: String, expires: u64 },
}

/// Whether `req.owner` may build the module from `easyconfig_sha256`.
///
/// Acquire when there is no record, or it failed or was never built, or it
/// was built from another easyconfig checksum, and no one else holds a live
/// lease (an expired lease is free: its node stopped renewing it). The
/// owner's own lease is re-acquired (a batch retried on new capacity).
pub fn decide_lease(
    existing: Option<&ModuleRecord>,
    req: &LeaseRequest,
    easyconfig_sha256: &str,
) -> LeaseDecision {
    let Some(r) = existing else {
        return LeaseDecision::Acquire {
            condition: WriteCondition::NotExists,
        };
    };
    if r.is_built_from(easyconfig_sha256) {
        return LeaseDecision::AlreadyBuilt;
    }
    if let Some(l) = r.held_by_other(&req.owner, req.now) {
        return LeaseDecision::HeldBy {
            owner: l.owner.clone(),
            expires: l.expires,
        };
    }
    LeaseDecision::Acquire {
        condition: write_condition(existing),
    }
}

/// The record to write when [`decide_lease`] says `Acquire`: leased to
/// `req.owner`, status `Building` — except a built record, which stays
/// `Built` with its tarball until a new build replaces it.
pub fn acquire_lease(
    existing: Option<&ModuleRecord>,
    platform: &str,
    module: &str,
    req: &LeaseRequest,
    easyconfig_sha256: &str,
) -> ModuleRecord {
    let mut r = existing
        .cloned()
        .unwrap_or_else(|| ModuleRecord::new(platform, module, easyconfig_sha256, req.now));
    if r.status != Status::Built {
        r.status = Status::Building;
        r.easyconfig_sha256 = easyconfig_sha256.to_string();
    }
    r.lease = Some(Lease {
        owner: req.owner.clone(),
        expires: req.expires(),
    });
    next_version(existing, r, req.now)
}

/// Why a lease cannot be renewed or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("{module} is not leased")]
    NotLeased { module: String },
    #[error("{module} is leased by {owner}, not {requester}")]
    NotOwner {
        module: String,
        owner: String,
        requester: String,
    },
}

fn check_owner(r: &ModuleRecord, owner: &str) -> Result<(), LeaseError> {
    match &r.lease {
        None => Err(LeaseError::NotLeased {
            module: r.module.clone(),
        }),
        Some(l) if l.owner != owner => Err(LeaseError::NotOwner {
            module: r.module.clone(),
            owner: l.owner.clone(),
            requester: owner.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

/// Extend the owner's lease to `req.now + req.ttl` (the heartbeat). Only the
/// owner may; its own expired lease may be renewed while no one has taken
/// it (the write's version condition settles a race with a new acquirer).
/// Write under [`write_condition`]`(Some(existing))`.
pub fn renew_lease(
    existing: &ModuleRecord,
    req: &LeaseRequest,
) -> Result<ModuleRecord, LeaseError> {
    check_owner(existing, &req.owner)?;
    let mut r = existing.clone();
    r.lease = Some(Lease {
        owner: req.owner.clone(),
        expires: req.expires(),
    });
    Ok(next_version(Some(existing), r, req.now))
}

/// Give up the owner's lease without a result (e.g. the batch was
/// abandoned): a `Building` record goes back to `Planned`. Only the owner
/// may. Write under [`write_condition`]`(Some(existing))`.
pub fn release_lease(
    existing: &ModuleRecord,
    owner: &str,
    now: u64,
) -> Result<ModuleRecord, LeaseError> {
    check_owner(existing, owner)?;
    let mut r = existing.clone();
    r.lease = None;
    if r.status == Status::Building {
        r.status = Status::Planned;
    }
    Ok(next_version(Some(existing), r, now))
}

/// The record of a module whose batch was given up after losing every node
/// it was tried on: the owner's lease released and the attempt counted as
/// failed with [`ErrorClass::NodeLost`] (a record already built keeps its
/// tarball and status). Only the owner may. Write under
/// [`write_condition`]`(Some(existing))`.
pub fn give_up_lost(
    existing: &ModuleRecord,
    owner: &str,
    execution: &str,
    batch: u32,
    message: &str,
    now: u64,
) -> Result<ModuleRecord, LeaseError> {
    check_owner(existing, owner)?;
    let mut r = existing.clone();
    r.lease = None;
    if r.status != Status::Built {
        r.status = Status::Failed;
    }
    r.last_error = Some(RecordedError {
        class: ErrorClass::NodeLost,
        message: truncate_message(message, MAX_ERROR_MESSAGE_BYTES),
        log_key: None,
    });
    if r.execution.as_deref() != Some(execution) || r.batch != Some(batch) {
        r.attempts = r.attempts.saturating_add(1);
        r.execution = Some(execution.to_string());
        r.batch = Some(batch);
    }
    Ok(next_version(Some(existing), r, now))
}

/// What one module of a batch came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    Built {
        tarball: Tarball,
        module_file_key: String,
        duration_s: u64,
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
    #[error("{module}: skipped without a reason")]
    NoReason { module: String },
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.chars().any(char::is_control)
}

fn check_key(
    module: &str,
    field: &'static str,
    key: &str,
    prefix: &str,
) -> Result<(), ManifestError> {
    let ok = key.len() > prefix.len()
        && key.starts_with(prefix)
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
            prefix: prefix.to_string(),
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
    /// prefixes (`<platform>/software/`, `/modules/`, `/logs/`), each
    /// module once.
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
                    ..
                } => {
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
                    check_key(m, "tarball.key", &tarball.key, &format!("{p}/software/"))?;
                    check_key(
                        m,
                        "module_file_key",
                        module_file_key,
                        &format!("{p}/modules/"),
                    )?;
                }
                Outcome::Failed { log_key, .. } => {
                    if let Some(k) = log_key {
                        check_key(m, "log_key", k, &format!("{}/logs/", self.platform))?;
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
}

/// `message` cut to at most `max` bytes on a character boundary, with `…`
/// marking the cut.
pub fn truncate_message(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end])
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
///   result of the attempt the record already counted is `None`.
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
        } => {
            if !count_attempt() {
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

/// One failure in a run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureSummary {
    pub module: String,
    pub class: ErrorClass,
    /// At most [`MAX_ERROR_MESSAGE_BYTES`].
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
}

/// What one batch came to, as the summary keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    pub built: u32,
    pub skipped: u32,
    pub failed: u32,
    pub started: u64,
    pub finished: u64,
    pub failures: Vec<FailureSummary>,
}

/// One platform of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformSummary {
    pub built: u32,
    pub skipped: u32,
    pub failed: u32,
    /// From the first batch's start to the last batch's end.
    pub duration_s: u64,
    /// Estimated cost in USD, filled in by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// At most [`MAX_SUMMARY_FAILURES`], in batch order.
    pub failures: Vec<FailureSummary>,
    /// Per batch index; recording a batch again replaces it.
    pub batches: BTreeMap<u32, BatchSummary>,
}

/// The `RUN#<execution>` item: what a run built, skipped and failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub execution: String,
    pub platforms: BTreeMap<String, PlatformSummary>,
}

impl RunSummary {
    pub fn new(execution: &str) -> Self {
        RunSummary {
            execution: execution.to_string(),
            platforms: BTreeMap::new(),
        }
    }

    pub fn pk(&self) -> String {
        run_pk(&self.execution)
    }

    /// Add (or replace) a batch's results; idempotent per platform and batch.
    pub fn add_manifest(&mut self, manifest: &BatchManifest) {
        let mut b = BatchSummary {
            built: 0,
            skipped: 0,
            failed: 0,
            started: manifest.started,
            finished: manifest.finished,
            failures: Vec::new(),
        };
        for e in &manifest.modules {
            match &e.outcome {
                Outcome::Built { .. } => b.built += 1,
                Outcome::Skipped { .. } => b.skipped += 1,
                Outcome::Failed {
                    class,
                    message,
                    log_key,
                } => {
                    b.failed += 1;
                    b.failures.push(FailureSummary {
                        module: e.module.clone(),
                        class: *class,
                        message: truncate_message(message, MAX_ERROR_MESSAGE_BYTES),
                        log_key: log_key.clone(),
                    });
                }
            }
        }
        let p = self.platforms.entry(manifest.platform.clone()).or_default();
        p.batches.insert(manifest.batch, b);
        p.recount();
    }

    /// Set a platform's cost estimate.
    pub fn set_cost(&mut self, platform: &str, cost_usd: f64) {
        self.platforms
            .entry(platform.to_string())
            .or_default()
            .cost_usd = Some(cost_usd);
    }

    pub fn totals(&self) -> (u32, u32, u32) {
        self.platforms.values().fold((0, 0, 0), |(b, s, f), p| {
            (b + p.built, s + p.skipped, f + p.failed)
        })
    }
}

impl PlatformSummary {
    fn recount(&mut self) {
        let bs = self.batches.values();
        self.built = bs.clone().map(|b| b.built).sum();
        self.skipped = bs.clone().map(|b| b.skipped).sum();
        self.failed = bs.clone().map(|b| b.failed).sum();
        let start = bs.clone().map(|b| b.started).min().unwrap_or(0);
        let end = bs.clone().map(|b| b.finished).max().unwrap_or(0);
        self.duration_s = end.saturating_sub(start);
        self.failures = bs
            .flat_map(|b| b.failures.iter().cloned())
            .take(MAX_SUMMARY_FAILURES)
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "amzn-2023_graviton-3";
    const M: &str = "zlib/1.3.1-GCCcore-13.3.0";
    const EXEC: &str = "arn:aws:states:eu-west-1:123456789012:execution:ebfleet:run-1";

    fn sha(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn built_outcome(c: char) -> Outcome {
        Outcome::Built {
            tarball: Tarball {
                key: format!("{P}/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst"),
                size: 123_456,
                sha256: sha(c),
            },
            module_file_key: format!("{P}/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua"),
            duration_s: 42,
        }
    }

    fn failed_outcome() -> Outcome {
        Outcome::Failed {
            class: ErrorClass::CompileError,
            message: "make: *** [all] Error 2".into(),
            log_key: Some(format!("{P}/logs/zlib/1.3.1-GCCcore-13.3.0/eb.log")),
        }
    }

    fn manifest(execution: &str, batch: u32, outcome: Outcome, ec: char) -> BatchManifest {
        BatchManifest {
            format: MANIFEST_FORMAT,
            execution: execution.into(),
            platform: P.into(),
            batch,
            instance_type: "c7g.4xlarge".into(),
            archspec: "neoverse_v1".into(),
            eb_version: "4.9.4".into(),
            started: 1_000,
            finished: 1_100,
            modules: vec![ManifestEntry {
                module: M.into(),
                easyconfig_sha256: sha(ec),
                outcome,
            }],
        }
    }

    /// Apply the manifest's only entry.
    fn apply(existing: Option<&ModuleRecord>, m: &BatchManifest, now: u64) -> Option<ModuleRecord> {
        m.validate().unwrap();
        apply_manifest(existing, m, &m.modules[0], now)
    }

    fn req(owner: &str, now: u64) -> LeaseRequest {
        LeaseRequest {
            owner: owner.into(),
            now,
            ttl: 600,
        }
    }

    fn built_record(ec: char) -> ModuleRecord {
        apply(None, &manifest(EXEC, 0, built_outcome('b'), ec), 1_100).unwrap()
    }

    #[test]
    fn keys() {
        assert_eq!(pk(P), "PLATFORM#amzn-2023_graviton-3");
        assert_eq!(sk(M), "MODULE#zlib/1.3.1-GCCcore-13.3.0");
        assert_eq!(run_pk("run-1"), "RUN#run-1");
        assert_eq!(module_from_sk(&sk(M)), Some(M));
        assert_eq!(platform_from_pk(&pk(P)), Some(P));
        assert_eq!(module_from_sk("RUN#x"), None);
        let r = built_record('e');
        assert_eq!((r.pk(), r.sk()), (pk(P), sk(M)));
    }

    #[test]
    fn error_class_names_round_trip() {
        for c in ErrorClass::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{c}\""));
            assert_eq!(c.to_string().parse::<ErrorClass>(), Ok(c));
        }
        assert_eq!(ErrorClass::OutOfMemory.to_string(), "out_of_memory");
        assert_eq!(ErrorClass::NodeLost.to_string(), "node_lost");
        assert!("segfault".parse::<ErrorClass>().is_err());
    }

    #[test]
    fn lease_acquired_when_absent_and_written_only_if_still_absent() {
        let r = req("run-2#batch-0", 2_000);
        assert_eq!(
            decide_lease(None, &r, &sha('e')),
            LeaseDecision::Acquire {
                condition: WriteCondition::NotExists
            }
        );
        let rec = acquire_lease(None, P, M, &r, &sha('e'));
        assert_eq!(rec.status, Status::Building);
        assert_eq!(
            rec.lease,
            Some(Lease {
                owner: "run-2#batch-0".into(),
                expires: 2_600
            })
        );
        assert_eq!((rec.version, rec.created, rec.updated), (1, 2_000, 2_000));
    }

    #[test]
    fn live_lease_of_another_is_held() {
        let rec = acquire_lease(None, P, M, &req("a", 2_000), &sha('e'));
        assert_eq!(
            decide_lease(Some(&rec), &req("b", 2_599), &sha('e')),
            LeaseDecision::HeldBy {
                owner: "a".into(),
                expires: 2_600
            }
        );
        // The owner itself re-acquires (batch retried on new capacity).
        assert_eq!(
            decide_lease(Some(&rec), &req("a", 2_100), &sha('e')),
            LeaseDecision::Acquire {
                condition: WriteCondition::Unchanged { version: 1 }
            }
        );
    }

    #[test]
    fn expired_lease_of_a_dead_node_is_acquired() {
        let rec = acquire_lease(None, P, M, &req("a", 2_000), &sha('e'));
        let d = decide_lease(Some(&rec), &req("b", 2_600), &sha('e'));
        assert_eq!(
            d,
            LeaseDecision::Acquire {
                condition: WriteCondition::Unchanged { version: 1 }
            }
        );
        let taken = acquire_lease(Some(&rec), P, M, &req("b", 2_600), &sha('e'));
        assert_eq!(taken.lease.as_ref().unwrap().owner, "b");
        assert_eq!(
            (taken.version, taken.created, taken.updated),
            (2, 2_000, 2_600)
        );
    }

    #[test]
    fn built_from_same_checksum_is_skipped_even_if_leased() {
        let rec = built_record('e');
        assert_eq!(
            decide_lease(Some(&rec), &req("b", 2_000), &sha('e')),
            LeaseDecision::AlreadyBuilt
        );
        let leased = acquire_lease(Some(&rec), P, M, &req("x", 1_900), &sha('f'));
        assert_eq!(
            decide_lease(Some(&leased), &req("b", 2_000), &sha('e')),
            LeaseDecision::AlreadyBuilt
        );
    }

    #[test]
    fn built_from_other_checksum_is_rebuilt_and_stays_built_meanwhile() {
        let rec = built_record('e');
        let d = decide_lease(Some(&rec), &req("b", 2_000), &sha('f'));
        assert!(matches!(d, LeaseDecision::Acquire { .. }));
        let leased = acquire_lease(Some(&rec), P, M, &req("b", 2_000), &sha('f'));
        assert_eq!(leased.status, Status::Built);
        assert_eq!(leased.easyconfig_sha256, sha('e'));
        assert_eq!(leased.tarball, rec.tarball);
    }

    #[test]
    fn failed_record_is_acquired() {
        let rec = apply(None, &manifest(EXEC, 0, failed_outcome(), 'e'), 1_100).unwrap();
        assert_eq!(rec.status, Status::Failed);
        assert_eq!(
            decide_lease(Some(&rec), &req("b", 2_000), &sha('e')),
            LeaseDecision::Acquire {
                condition: WriteCondition::Unchanged {
                    version: rec.version
                }
            }
        );
    }

    #[test]
    fn only_the_owner_renews_or_releases() {
        let rec = acquire_lease(None, P, M, &req("a", 2_000), &sha('e'));
        assert_eq!(
            release_lease(&rec, "b", 2_100),
            Err(LeaseError::NotOwner {
                module: M.into(),
                owner: "a".into(),
                requester: "b".into()
            })
        );
        assert!(matches!(
            renew_lease(&rec, &req("b", 2_100)),
            Err(LeaseError::NotOwner { .. })
        ));
        let renewed = renew_lease(&rec, &req("a", 2_500)).unwrap();
        assert_eq!(renewed.lease.as_ref().unwrap().expires, 3_100);
        assert_eq!(renewed.version, 2);
        let released = release_lease(&renewed, "a", 2_600).unwrap();
        assert_eq!(released.lease, None);
        assert_eq!(released.status, Status::Planned);
        assert_eq!(released.version, 3);
        assert_eq!(
            release_lease(&released, "a", 2_700),
            Err(LeaseError::NotLeased { module: M.into() })
        );
    }

    #[test]
    fn a_batch_given_up_records_its_modules_lost_and_frees_them() {
        let owner = lease_owner(EXEC, 4);
        let rec = acquire_lease(None, P, M, &req(&owner, 2_000), &sha('e'));
        assert!(matches!(
            give_up_lost(&rec, "someone#batch-1", EXEC, 4, "lost", 2_100),
            Err(LeaseError::NotOwner { .. })
        ));
        let lost = give_up_lost(&rec, &owner, EXEC, 4, "lost 3 nodes", 2_100).unwrap();
        assert_eq!((lost.status, lost.lease.clone()), (Status::Failed, None));
        let err = lost.last_error.clone().unwrap();
        assert_eq!(
            (err.class, err.message.as_str()),
            (ErrorClass::NodeLost, "lost 3 nodes")
        );
        assert_eq!((lost.attempts, lost.batch, lost.version), (1, Some(4), 2));
        // Free again: the next run leases it.
        assert!(matches!(
            decide_lease(Some(&lost), &req("next#batch-0", 2_200), &sha('e')),
            LeaseDecision::Acquire { .. }
        ));
        // A built record stays built (with its tarball) when a rebuild is lost.
        let mut built = rec.clone();
        built.status = Status::Built;
        let kept = give_up_lost(&built, &owner, EXEC, 4, "lost", 2_100).unwrap();
        assert_eq!(kept.status, Status::Built);
    }

    #[test]
    fn built_result_is_recorded_and_releases_the_batch_lease() {
        let owner = lease_owner(EXEC, 3);
        let leased = acquire_lease(None, P, M, &req(&owner, 900), &sha('e'));
        let m = manifest(EXEC, 3, built_outcome('b'), 'e');
        assert_eq!(m.owner(), owner);
        let r = apply(Some(&leased), &m, 1_100).unwrap();
        assert_eq!(r.status, Status::Built);
        assert_eq!(r.lease, None);
        assert_eq!(r.tarball.as_ref().unwrap().sha256, sha('b'));
        assert_eq!(
            r.module_file_key.as_deref(),
            Some("amzn-2023_graviton-3/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua")
        );
        assert_eq!(r.eb_version.as_deref(), Some("4.9.4"));
        assert_eq!(r.instance_type.as_deref(), Some("c7g.4xlarge"));
        assert_eq!(r.archspec.as_deref(), Some("neoverse_v1"));
        assert_eq!(r.duration_s, Some(42));
        assert_eq!(
            (r.attempts, r.execution.as_deref(), r.batch),
            (1, Some(EXEC), Some(3))
        );
        assert_eq!((r.created, r.updated, r.version), (900, 1_100, 2));
    }

    #[test]
    fn failed_result_is_recorded_and_releases_the_batch_lease() {
        let owner = lease_owner(EXEC, 3);
        let leased = acquire_lease(None, P, M, &req(&owner, 900), &sha('e'));
        let r = apply(
            Some(&leased),
            &manifest(EXEC, 3, failed_outcome(), 'e'),
            1_100,
        )
        .unwrap();
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.lease, None);
        assert_eq!(
            r.last_error.as_ref().map(|e| e.class),
            Some(ErrorClass::CompileError)
        );
        // The lease taken again by the same batch on new capacity is
        // released by its manifest all the same.
        let again = acquire_lease(Some(&leased), P, M, &req(&owner, 1_000), &sha('e'));
        let r = apply(
            Some(&again),
            &manifest(EXEC, 3, built_outcome('b'), 'e'),
            1_100,
        )
        .unwrap();
        assert_eq!((r.status, r.lease), (Status::Built, None));
    }

    #[test]
    fn someone_elses_lease_is_kept() {
        let rec = acquire_lease(None, P, M, &req("other#batch-0", 1_000), &sha('e'));
        let r = apply(
            Some(&rec),
            &manifest(EXEC, 0, built_outcome('b'), 'e'),
            1_100,
        )
        .unwrap();
        assert_eq!(r.lease, rec.lease);
    }

    #[test]
    fn applying_the_same_manifest_twice_changes_nothing() {
        for outcome in [
            built_outcome('b'),
            failed_outcome(),
            Outcome::Skipped {
                reason: "dependency failed".into(),
            },
        ] {
            let m = manifest(EXEC, 0, outcome, 'e');
            let first = apply(None, &m, 1_100).unwrap();
            assert_eq!(
                apply(Some(&first), &m, 5_000),
                None,
                "{:?}",
                m.modules[0].outcome
            );
        }
        // Also after a later lease was taken on the record.
        let m = manifest(EXEC, 0, failed_outcome(), 'e');
        let first = apply(None, &m, 1_100).unwrap();
        let leased = acquire_lease(Some(&first), P, M, &req("run-2#batch-0", 2_000), &sha('e'));
        assert_eq!(apply(Some(&leased), &m, 2_100), None);
    }

    #[test]
    fn failure_after_success_keeps_the_success() {
        let ok = built_record('e');
        let retry_owner = lease_owner("run-2", 0);
        let leased = acquire_lease(Some(&ok), P, M, &req(&retry_owner, 2_000), &sha('e'));
        let r = apply(
            Some(&leased),
            &manifest("run-2", 0, failed_outcome(), 'e'),
            2_100,
        )
        .unwrap();
        assert_eq!(r.status, Status::Built);
        assert_eq!(r.easyconfig_sha256, ok.easyconfig_sha256);
        assert_eq!(r.tarball, ok.tarball);
        assert_eq!(r.module_file_key, ok.module_file_key);
        assert_eq!(r.duration_s, ok.duration_s);
        assert_eq!(
            r.last_error.as_ref().unwrap().class,
            ErrorClass::CompileError
        );
        assert_eq!(r.attempts, 2);
        assert_eq!(r.lease, None);
        // Also when the failed rebuild was of a changed easyconfig: the
        // record keeps the checksum the tarball came from, so it is replanned.
        let r = apply(
            Some(&ok),
            &manifest("run-3", 0, failed_outcome(), 'f'),
            2_100,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.easyconfig_sha256.clone()),
            (Status::Built, sha('e'))
        );
        // A skip does not undo a success either.
        let skip = manifest(
            "run-4",
            1,
            Outcome::Skipped {
                reason: "dependency failed".into(),
            },
            'e',
        );
        assert_eq!(apply(Some(&ok), &skip, 3_000), None);
    }

    #[test]
    fn attempts_count_distinct_batches() {
        let r1 = apply(None, &manifest("run-1", 0, failed_outcome(), 'e'), 1_100).unwrap();
        assert_eq!(r1.attempts, 1);
        // Same execution, another batch: a new attempt.
        let r2 = apply(
            Some(&r1),
            &manifest("run-1", 1, failed_outcome(), 'e'),
            1_200,
        )
        .unwrap();
        assert_eq!(r2.attempts, 2);
        // Same batch index of another execution: a new attempt.
        let r3 = apply(
            Some(&r2),
            &manifest("run-2", 1, built_outcome('b'), 'e'),
            1_300,
        )
        .unwrap();
        assert_eq!(
            (r3.attempts, r3.status, r3.last_error.clone()),
            (3, Status::Built, None)
        );
        // Re-recording the last one: not counted.
        assert_eq!(
            apply(
                Some(&r3),
                &manifest("run-2", 1, built_outcome('b'), 'e'),
                1_400
            ),
            None
        );
        // A skip is not an attempt.
        let skip = manifest(
            "run-3",
            0,
            Outcome::Skipped {
                reason: "dependency failed".into(),
            },
            'e',
        );
        let fresh = apply(None, &skip, 1_500).unwrap();
        assert_eq!(
            (fresh.status, fresh.attempts, fresh.execution.clone()),
            (Status::Planned, 0, None)
        );
    }

    #[test]
    fn skip_releases_the_batch_lease_and_replans() {
        let owner = lease_owner(EXEC, 2);
        let leased = acquire_lease(None, P, M, &req(&owner, 1_000), &sha('e'));
        let skip = manifest(
            EXEC,
            2,
            Outcome::Skipped {
                reason: "dependency GCC/13.3.0 failed".into(),
            },
            'e',
        );
        let r = apply(Some(&leased), &skip, 1_100).unwrap();
        assert_eq!(
            (r.status, r.lease.clone(), r.attempts),
            (Status::Planned, None, 0)
        );
        assert_eq!(apply(Some(&r), &skip, 1_200), None);
    }

    #[test]
    fn a_skip_leaves_another_owners_live_build_alone() {
        // Another execution leased the module and is building it; this
        // batch skipped it (e.g. its own dependency failed).
        let theirs = acquire_lease(None, P, M, &req("other-run#batch-0", 1_000), &sha('e'));
        let skip = manifest(
            EXEC,
            2,
            Outcome::Skipped {
                reason: "dependency GCC/13.3.0 failed".into(),
            },
            'e',
        );
        assert_eq!(apply(Some(&theirs), &skip, 1_100), None);
        // Once their lease has run out, the stale `Building` is replanned.
        let expired = theirs.lease.as_ref().unwrap().expires + 1;
        let r = apply(Some(&theirs), &skip, expired).unwrap();
        assert_eq!(r.status, Status::Planned);
        assert_eq!(r.lease, theirs.lease, "their lease is theirs to clear");
    }

    #[test]
    fn long_error_messages_are_truncated() {
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let m = manifest(
            EXEC,
            0,
            Outcome::Failed {
                class: ErrorClass::OutOfMemory,
                message: long,
                log_key: None,
            },
            'e',
        );
        let r = apply(None, &m, 1_100).unwrap();
        let msg = &r.last_error.unwrap().message;
        assert!(msg.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(msg.ends_with('…'));
        assert_eq!(truncate_message("short", 10), "short");
    }

    #[test]
    fn record_serializes_for_the_adapter() {
        let r = built_record('e');
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "built");
        assert_eq!(v["tarball"]["size"], 123_456);
        assert!(v.get("lease").is_none());
        let back: ModuleRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let failed = apply(None, &manifest(EXEC, 0, failed_outcome(), 'e'), 1).unwrap();
        let v = serde_json::to_value(&failed).unwrap();
        assert_eq!(v["last_error"]["class"], "compile_error");
    }

    fn manifest_json() -> serde_json::Value {
        serde_json::to_value(manifest(EXEC, 0, built_outcome('b'), 'e')).unwrap()
    }

    fn read(v: &serde_json::Value) -> Result<BatchManifest, ManifestError> {
        BatchManifest::from_json(&v.to_string())
    }

    #[test]
    fn manifest_round_trips() {
        let m = manifest(EXEC, 0, built_outcome('b'), 'e');
        assert_eq!(BatchManifest::from_json(&m.to_json()).unwrap(), m);
        let v = manifest_json();
        assert_eq!(v["modules"][0]["outcome"]["status"], "built");
    }

    #[test]
    fn manifest_with_bad_sha_is_refused() {
        for bad in [
            sha('B'),
            "abc".to_string(),
            sha('g'),
            format!("{} ", &sha('a')[..63]),
        ] {
            let mut v = manifest_json();
            v["modules"][0]["outcome"]["tarball"]["sha256"] = bad.clone().into();
            assert!(
                matches!(
                    read(&v),
                    Err(ManifestError::BadSha256 {
                        field: "tarball.sha256",
                        ..
                    })
                ),
                "{bad}"
            );
            let mut v = manifest_json();
            v["modules"][0]["easyconfig_sha256"] = bad.into();
            assert!(matches!(
                read(&v),
                Err(ManifestError::BadSha256 {
                    field: "easyconfig_sha256",
                    ..
                })
            ));
        }
    }

    #[test]
    fn manifest_with_bad_size_is_refused() {
        let mut v = manifest_json();
        v["modules"][0]["outcome"]["tarball"]["size"] = (-1).into();
        assert!(matches!(read(&v), Err(ManifestError::Json(_))));
        for size in [0, MAX_TARBALL_BYTES + 1, u64::MAX] {
            let mut v = manifest_json();
            v["modules"][0]["outcome"]["tarball"]["size"] = size.into();
            assert!(
                matches!(read(&v), Err(ManifestError::BadSize { .. })),
                "{size}"
            );
        }
        let mut v = manifest_json();
        v["modules"][0]["outcome"]["tarball"]["size"] = 1.5.into();
        assert!(matches!(read(&v), Err(ManifestError::Json(_))));
    }

    #[test]
    fn manifest_with_unknown_outcome_or_class_is_refused() {
        let mut v = manifest_json();
        v["modules"][0]["outcome"] = serde_json::json!({"status": "maybe"});
        assert!(matches!(read(&v), Err(ManifestError::Json(_))));
        let mut v = manifest_json();
        v["modules"][0]["outcome"] =
            serde_json::json!({"status": "failed", "class": "cosmic_ray", "message": "?"});
        assert!(matches!(read(&v), Err(ManifestError::Json(_))));
        let mut v = manifest_json();
        v["modules"][0]["outcome"] = serde_json::json!({"status": "skipped", "reason": " "});
        assert!(matches!(read(&v), Err(ManifestError::NoReason { .. })));
    }

    #[test]
    fn manifest_shape_is_checked() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("format", serde_json::json!(2)),
            ("execution", serde_json::json!("")),
            ("platform", serde_json::json!("a/b")),
            ("started", serde_json::json!(1_200)),
        ];
        for (field, value) in cases {
            let mut v = manifest_json();
            v[field] = value;
            assert!(read(&v).is_err(), "{field}");
        }
        for module in ["zlib", "/1.3", "zlib/", "zlib/../x", "zlib/1\n", "a/b/c"] {
            let mut v = manifest_json();
            v["modules"][0]["module"] = module.into();
            assert!(
                matches!(read(&v), Err(ManifestError::BadModule { .. })),
                "{module:?}"
            );
        }
        let mut v = manifest_json();
        let e = v["modules"][0].clone();
        v["modules"].as_array_mut().unwrap().push(e);
        assert!(matches!(read(&v), Err(ManifestError::Duplicate { .. })));
        for key in [
            "other_platform/software/zlib/1.tar.zst",
            "amzn-2023_graviton-3/software/../../etc/passwd",
            "amzn-2023_graviton-3/software/",
            "amzn-2023_graviton-3/modules/all/zlib/1.tar.zst",
        ] {
            let mut v = manifest_json();
            v["modules"][0]["outcome"]["tarball"]["key"] = key.into();
            assert!(
                matches!(read(&v), Err(ManifestError::BadKey { .. })),
                "{key}"
            );
        }
        let mut v = manifest_json();
        v["modules"][0]["outcome"] = serde_json::json!({
            "status": "failed", "class": "test_failure", "message": "x", "log_key": "/etc/passwd"
        });
        assert!(matches!(
            read(&v),
            Err(ManifestError::BadKey {
                field: "log_key",
                ..
            })
        ));
    }

    #[test]
    fn run_summary_counts_per_platform_and_is_idempotent_per_batch() {
        let mut m = manifest(EXEC, 0, built_outcome('b'), 'e');
        m.modules.push(ManifestEntry {
            module: "GCC/13.3.0".into(),
            easyconfig_sha256: sha('c'),
            outcome: failed_outcome(),
        });
        m.modules.push(ManifestEntry {
            module: "App/1-GCC-13.3.0".into(),
            easyconfig_sha256: sha('d'),
            outcome: Outcome::Skipped {
                reason: "dependency GCC/13.3.0 failed".into(),
            },
        });
        m.validate().unwrap();
        let mut later = manifest(EXEC, 1, built_outcome('b'), 'e');
        later.started = 1_200;
        later.finished = 1_500;
        let mut s = RunSummary::new(EXEC);
        s.add_manifest(&m);
        s.add_manifest(&later);
        s.add_manifest(&m);
        s.set_cost(P, 0.42);
        let p = &s.platforms[P];
        assert_eq!((p.built, p.failed, p.skipped), (2, 1, 1));
        assert_eq!(p.duration_s, 500);
        assert_eq!(p.failures.len(), 1);
        assert_eq!(p.failures[0].class, ErrorClass::CompileError);
        assert_eq!(p.cost_usd, Some(0.42));
        assert_eq!(s.totals(), (2, 1, 1));
        assert_eq!(s.pk(), run_pk(EXEC));
        let back: RunSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
