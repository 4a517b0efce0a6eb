//! The `Lease` state (before every `Sync`): for every module of a batch,
//! read its record, decide with [`decide_lease`] for the batch's owner
//! ([`lease_owner`]`(execution, batch)`), and take the lease by conditional
//! write ([`acquire_lease`]), deciding again when the item changed in
//! between; then write the batch's [`BatchLeases`] beside its batch file
//! ([`leases_key`]), which tells the node what it may build.
//!
//! A batch retried on new capacity has the same owner: it re-acquires its
//! own leases (and extends them). Recording the batch's manifest releases
//! them ([`ebfleet_core::manifest::apply_manifest`]); a batch given up
//! without a manifest releases them with [`release`].
//!
//! A lease is short (`EBFLEET_LEASE_SECONDS`, [`default_ttl`]): while a
//! unit's execution is alive (its node's heartbeats keep its steps alive)
//! the platform's scheduler renews it ([`renew`]); a run that dies stops
//! renewing, and its leases run out within the TTL.

use super::{write_decided, Decision, Error, Settled, MAX_ATTEMPTS};
use crate::env::EnvError;
use crate::Env;
use ebfleet_core::layout::batch_key;
use ebfleet_core::lease::{leases_key, BatchLeases, HeldModule};
use ebfleet_core::names::{ExecutionName, ModuleName, PlatformName};
use ebfleet_core::record::{
    acquire_lease, decide_lease, give_up_lost, lease_owner, release_lease, renew_lease,
    skip_blocked, write_condition, LeaseDecision, LeaseRequest, ModuleRecord,
};
use ebfleet_core::wire::BatchFile;
use serde::{Deserialize, Serialize};

/// Optional: seconds a batch's leases last (default [`default_ttl`]).
pub const LEASE_SECONDS_VAR: &str = "EBFLEET_LEASE_SECONDS";

/// Two hours: the scheduler renews a running unit's lease every
/// half hour, so a lease outlives a few missed renewals but not a dead run
/// by much.
pub fn default_ttl() -> u64 {
    2 * 3600
}

/// The lease TTL from the variable's value (unset or empty: the default).
pub fn parse_ttl(value: Option<&str>) -> Result<u64, EnvError> {
    match value.map(str::trim) {
        None | Some("") => Ok(default_ttl()),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| EnvError::Invalid {
                var: LEASE_SECONDS_VAR,
                reason: format!("{v:?} is not a number of seconds above 0"),
            }),
    }
}

/// One batch of one platform of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BatchRef {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub batch: usize,
}

impl BatchRef {
    /// `plans/<execution>/<platform>/<batch>.json`.
    pub fn batch_key(&self) -> String {
        batch_key(&self.execution, &self.platform, self.batch)
    }

    /// `plans/<execution>/<platform>/<batch>.leases.json`.
    pub fn leases_key(&self) -> String {
        leases_key(&self.execution, &self.platform, self.batch)
    }

    /// The batch's lease owner, as its manifest will name it.
    pub fn owner(&self) -> Result<String, Error> {
        let batch = u32::try_from(self.batch).map_err(|_| Error::BatchFile {
            key: self.batch_key(),
            reason: format!("batch {} is over {}", self.batch, u32::MAX),
        })?;
        Ok(lease_owner(self.execution.as_str(), batch))
    }
}

/// The `Lease` state's input: the batch, and how many more times the state
/// machine may wait for another execution's leases before building what is
/// free.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LeaseInput {
    #[serde(flatten)]
    pub batch: BatchRef,
    #[serde(default)]
    pub waits_left: u32,
}

/// The `Lease` state's output: where the leases file is, and counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Output {
    pub leases_key: String,
    /// Modules of the batch, and needs of it not built yet, that another
    /// execution holds a live lease on, when the state machine may still
    /// wait: nothing was leased and no leases file written; ask again
    /// later. Waiting (rather than skipping them) is what keeps two
    /// executions of one platform from each skipping what the other has
    /// not finished yet.
    #[serde(default)]
    pub waiting: usize,
    /// Modules leased to the batch: it builds them.
    pub leased: usize,
    /// Modules another batch holds a live lease on: skipped.
    pub held: usize,
    /// Modules built from the same easyconfig since the plan: skipped.
    pub already_built: usize,
    /// When the last of the leases held elsewhere runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<u64>,
}

/// What giving up a lost batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReleaseOutput {
    /// Modules recorded failed (`node_lost`), their leases released.
    pub released: usize,
    /// Modules the batch held no lease on (any more).
    pub not_held: usize,
}

/// Why a module is not leased to the batch.
enum NotLeased {
    AlreadyBuilt,
    Held { owner: String, expires: u64 },
}

/// [`write_decided`] on `module`'s record in the table; errors say `action`.
async fn settle<T>(
    env: &Env,
    platform: &PlatformName,
    module: &ModuleName,
    action: &'static str,
    decide: impl FnMut(Option<&ModuleRecord>) -> Decision<T>,
) -> Result<Settled<T>, Error> {
    write_decided(
        || env.records.get(platform, module),
        |record, condition| async move { env.records.put(&record, &condition).await },
        decide,
        MAX_ATTEMPTS,
    )
    .await
    .map_err(|e| Error::entry(action, module.as_str(), e))
}

/// The batch file of `batch`, checked to be that batch.
pub(crate) async fn read_batch(env: &Env, batch: &BatchRef) -> Result<BatchFile, Error> {
    let key = batch.batch_key();
    let bytes = env
        .store
        .get_bytes(&key)
        .await
        .map_err(|source| Error::ReadBatch {
            key: key.clone(),
            source,
        })?;
    let bad = |reason: String| Error::BatchFile {
        key: key.clone(),
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".into()))?;
    let file = BatchFile::from_json(text).map_err(|e| bad(e.to_string()))?;
    if (&file.execution, &file.platform, file.batch)
        != (&batch.execution, &batch.platform, batch.batch)
    {
        return Err(bad(format!(
            "it is batch {} of {} in {}",
            file.batch, file.platform, file.execution
        )));
    }
    Ok(file)
}

/// Take the leases of `batch` at `now` for `ttl` seconds and write its
/// leases file — unless `may_wait` and another execution holds a module of
/// the batch or a need it has not built yet: then take nothing and say how
/// many ([`Output::waiting`]).
pub async fn take(
    env: &Env,
    batch: &BatchRef,
    now: u64,
    ttl: u64,
    may_wait: bool,
) -> Result<Output, Error> {
    let file = read_batch(env, batch).await?;
    let req = LeaseRequest {
        owner: batch.owner()?,
        now,
        ttl,
    };
    if may_wait {
        let waiting = held_elsewhere(env, &file, &req).await?;
        if waiting > 0 {
            tracing::info!(batch = %batch.batch_key(), waiting, "waiting for another execution's leases");
            return Ok(Output {
                leases_key: batch.leases_key(),
                waiting,
                ..Output::default()
            });
        }
    }
    let platform = &batch.platform;
    let mut leases = BatchLeases {
        execution: batch.execution.clone(),
        platform: platform.clone(),
        batch: batch.batch,
        owner: req.owner.clone(),
        expires: req.expires(),
        leased: Vec::new(),
        held: Vec::new(),
        already_built: Vec::new(),
    };
    for build in &file.builds {
        let (module, sha) = (&build.module, build.easyconfig_sha256.as_str());
        let decide = |existing: Option<&ModuleRecord>| match decide_lease(existing, &req, sha) {
            LeaseDecision::Acquire { condition } => Decision::Write(
                acquire_lease(existing, platform.as_str(), module.as_str(), &req, sha),
                condition,
            ),
            LeaseDecision::AlreadyBuilt => Decision::Done(NotLeased::AlreadyBuilt),
            LeaseDecision::HeldBy { owner, expires } => {
                Decision::Done(NotLeased::Held { owner, expires })
            }
        };
        let settled = settle(env, platform, module, "leasing", decide).await?;
        match settled {
            Settled::Written { .. } => leases.leased.push(module.clone()),
            Settled::Done(NotLeased::AlreadyBuilt) => leases.already_built.push(module.clone()),
            Settled::Done(NotLeased::Held { owner, expires }) => leases.held.push(HeldModule {
                module: module.clone(),
                owner,
                expires,
            }),
        }
    }
    let key = batch.leases_key();
    env.store
        .put_bytes(&key, leases.to_json().into_bytes(), "application/json")
        .await
        .map_err(|source| Error::WriteLeases {
            key: key.clone(),
            source,
        })?;
    let out = Output {
        leases_key: key,
        leased: leases.leased.len(),
        held: leases.held.len(),
        already_built: leases.already_built.len(),
        waiting: 0,
        held_until: leases.held.iter().map(|h| h.expires).max(),
    };
    tracing::info!(
        leases = %out.leases_key,
        owner = %leases.owner,
        expires = leases.expires,
        leased = out.leased,
        held = out.held,
        already_built = out.already_built,
        "leased"
    );
    Ok(out)
}

/// How many of the batch's builds, and of its needs not built yet, another
/// owner holds a live lease on (read only: nothing is taken).
async fn held_elsewhere(env: &Env, file: &BatchFile, req: &LeaseRequest) -> Result<usize, Error> {
    let platform = &file.platform;
    let mut held = 0;
    let builds = file
        .builds
        .iter()
        .map(|b| (&b.module, Some(b.easyconfig_sha256.as_str())));
    let needs = file.needs.iter().map(|n| (&n.module, None));
    for (module, sha) in builds.chain(needs) {
        let record = env
            .records
            .get(platform, module)
            .await
            .map_err(|source| Error::Record {
                action: "leasing",
                module: module.to_string(),
                source: Box::new(source),
            })?;
        let Some(r) = record else { continue };
        let done = match sha {
            Some(sha) => r.is_built_from(sha),
            None => r.status == ebfleet_core::record::Status::Built,
        };
        if !done && r.held_by_other(&req.owner, req.now).is_some() {
            held += 1;
        }
    }
    Ok(held)
}

/// Give up a batch that lost every node it was tried on: each module it
/// still holds the lease of is recorded failed ([`give_up_lost`], error
/// class `node_lost`) and its lease released, so the record says why and
/// other executions need not wait for the lease to run out. Its dependents
/// in later batches are skipped by their nodes (the tarballs are missing).
pub async fn release(env: &Env, batch: &BatchRef, now: u64) -> Result<ReleaseOutput, Error> {
    let file = read_batch(env, batch).await?;
    let owner = batch.owner()?;
    let platform = &batch.platform;
    let execution = batch.execution.as_str();
    let batch_index = u32::try_from(batch.batch).unwrap_or(u32::MAX);
    let message = format!(
        "batch {} of {execution} was given up: every node it ran on was lost (spot interruption or terminated)",
        batch.batch
    );
    let mut out = ReleaseOutput::default();
    for build in &file.builds {
        let module: &ModuleName = &build.module;
        let decide = |existing: Option<&ModuleRecord>| {
            match existing.map(|r| give_up_lost(r, &owner, execution, batch_index, &message, now)) {
                Some(Ok(record)) => Decision::Write(record, write_condition(existing)),
                // Not leased, or leased by someone else: not ours to touch.
                None | Some(Err(_)) => Decision::Done(()),
            }
        };
        let settled = settle(env, platform, module, "releasing", decide).await?;
        match settled {
            Settled::Written { .. } => out.released += 1,
            Settled::Done(()) => out.not_held += 1,
        }
    }
    tracing::info!(
        batch = %batch.batch_key(),
        %owner,
        released = out.released,
        not_held = out.not_held,
        "released leases"
    );
    Ok(out)
}

/// Free every lease a unit of `execution` still holds (owners
/// `<execution>#…`): the execution has ended, so no unit of it will build
/// or release them; a `building` record goes back to `planned`. A lease
/// someone else took meanwhile is left alone. The number freed.
pub async fn release_all_of(
    env: &Env,
    execution: &ExecutionName,
    now: u64,
) -> Result<usize, Error> {
    let prefix = format!("{execution}#");
    let leased = env
        .records
        .leased_by(&prefix)
        .await
        .map_err(|source| Error::Record {
            action: "sweeping",
            module: format!("leases of {execution}"),
            source: Box::new(source),
        })?;
    let mut freed = 0;
    for (platform, module) in &leased {
        let decide = |existing: Option<&ModuleRecord>| {
            let ours = existing.and_then(|r| {
                let owner = &r.lease.as_ref()?.owner;
                owner
                    .starts_with(&prefix)
                    .then(|| release_lease(r, owner, now))
            });
            match ours {
                Some(Ok(record)) => Decision::Write(record, write_condition(existing)),
                _ => Decision::Done(()),
            }
        };
        if let Settled::Written { .. } = settle(env, platform, module, "sweeping", decide).await? {
            freed += 1;
        }
    }
    tracing::info!(%execution, found = leased.len(), freed, "freed the leases of an ended execution");
    Ok(freed)
}

#[cfg(test)]
mod tests;

/// Extend the leases `batch` holds to `now + ttl` (its unit is still
/// running: its execution is alive). A module whose lease is gone or taken
/// by another owner is left alone: the write would be theirs to make.
pub async fn renew(env: &Env, batch: &BatchRef, now: u64, ttl: u64) -> Result<usize, Error> {
    let file = read_batch(env, batch).await?;
    let req = LeaseRequest {
        owner: batch.owner()?,
        now,
        ttl,
    };
    let mut renewed = 0;
    for build in &file.builds {
        let decide = |existing: Option<&ModuleRecord>| match existing.map(|r| renew_lease(r, &req))
        {
            Some(Ok(record)) => Decision::Write(record, write_condition(existing)),
            None | Some(Err(_)) => Decision::Done(()),
        };
        if let Settled::Written { .. } =
            settle(env, &batch.platform, &build.module, "renewing", decide).await?
        {
            renewed += 1;
        }
    }
    Ok(renewed)
}

/// Record `module` (from `easyconfig_sha256`) as not built in this run
/// because `reason` ([`skip_blocked`]).
pub async fn skip(
    env: &Env,
    platform: &PlatformName,
    module: &ModuleName,
    easyconfig_sha256: &str,
    reason: &str,
    now: u64,
) -> Result<(), Error> {
    let decide = |existing: Option<&ModuleRecord>| match skip_blocked(
        existing,
        platform.as_str(),
        module.as_str(),
        easyconfig_sha256,
        reason,
        now,
    ) {
        Some(record) => Decision::Write(record, write_condition(existing)),
        None => Decision::Done(()),
    };
    settle(env, platform, module, "skipping", decide).await?;
    Ok(())
}
