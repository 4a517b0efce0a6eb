//! What DynamoDB records per platform and module, and the leases on those
//! records that keep two executions or two nodes from building the same
//! module. How a batch's manifest changes a record is [`crate::manifest`].
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
//!   ([`renew_lease`]) while the unit runs (the platform's scheduler, every
//!   half hour while the unit's execution runs). A unit whose node is
//!   reclaimed ends and is no longer renewed, so once `expires` is
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
use std::fmt;

/// Longest error message kept in a record or a summary, in bytes
/// (DynamoDB items are limited to 400 KB; the full log is in S3).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;
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
    /// Whether the same build fails the same way again: a compile or test
    /// error, a source nobody can download. Failure memory holds these;
    /// the rest (the node, the network, memory, time) may go another way.
    pub fn is_deterministic(self) -> bool {
        matches!(
            self,
            ErrorClass::CompileError | ErrorClass::TestFailure | ErrorClass::MissingSource
        )
    }

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
    /// The S3 version of `key` Record promoted and verified (the bucket
    /// is versioned): the exact object this record is about, whatever is
    /// written to the key later. `None` in a node's manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The stack's signing key's signature (base64 of the DER ECDSA) of
    /// [`tarball_statement`]`(key, sha256)`, made by Record, also the
    /// promoted object's [`SIGNATURE_METADATA`]. `None` in a node's
    /// manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The object metadata (`x-amz-meta-signature`) holding a promoted
/// tarball's signature.
pub const SIGNATURE_METADATA: &str = "signature";

/// What Record signs of a tarball it verified and promoted: the key it is
/// at and its sha256, so a signature vouches for those bytes at that key
/// (another module's or platform's tarball has another key) and nothing
/// else. Verify it with the stack's key: `aws kms verify --key-id KEY
/// --message-type RAW --signing-algorithm ECDSA_SHA_256 --message
/// fileb://statement --signature fileb://signature`.
pub fn tarball_statement(key: &str, sha256: &str) -> Vec<u8> {
    format!("ebfleet tarball v1\n{key}\n{sha256}\n").into_bytes()
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
    /// What its last build used ([`crate::sizing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::sizing::BuildUsage>,
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
            usage: None,
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
        crate::layout::platform_pk(&self.platform)
    }

    pub fn sk(&self) -> String {
        crate::layout::module_sk(&self.module)
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
pub(crate) fn next_version(
    existing: Option<&ModuleRecord>,
    mut new: ModuleRecord,
    now: u64,
) -> ModuleRecord {
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

/// Extend the owner's lease to `req.now + req.ttl` (a renewal). Only the
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

/// The record of a module the scheduler will not build in this execution
/// because a module it needs failed or was not built: status `Planned`
/// with the reason noted as [`ErrorClass::DependencyFailed`] — not an
/// attempt, and a built record keeps its tarball. `None` when nothing
/// changes or another owner holds a live lease on it (its build is theirs).
/// Write under [`write_condition`]`(existing)`.
pub fn skip_blocked(
    existing: Option<&ModuleRecord>,
    platform: &str,
    module: &str,
    easyconfig_sha256: &str,
    reason: &str,
    now: u64,
) -> Option<ModuleRecord> {
    let mut r = existing
        .cloned()
        .unwrap_or_else(|| ModuleRecord::new(platform, module, easyconfig_sha256, now));
    if r.lease.as_ref().is_some_and(|l| l.is_live(now)) {
        return None;
    }
    if r.status != Status::Built {
        r.status = Status::Planned;
        r.easyconfig_sha256 = easyconfig_sha256.to_string();
        r.last_error = Some(RecordedError {
            class: ErrorClass::DependencyFailed,
            message: truncate_message(reason, MAX_ERROR_MESSAGE_BYTES),
            log_key: None,
        });
    }
    if existing == Some(&r) {
        return None;
    }
    Some(next_version(existing, r, now))
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

#[cfg(test)]
pub(crate) mod tests;
