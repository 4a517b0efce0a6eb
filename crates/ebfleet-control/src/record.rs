//! Record: read a unit's manifest from S3 and write its module's record
//! to DynamoDB under a conditional write, re-reading and deciding again
//! when someone else wrote the item in between. Running it twice on the
//! same manifest changes nothing.
//!
//! The same Lambda takes a unit's build lease before its `Sync`
//! ([`lease`]), with the same read-decide-write loop ([`write_decided`]),
//! and ends the unit ([`done`]).

pub mod done;
pub mod lease;
pub mod promote;

use crate::env::{EnvError, Lookup};
use crate::Env;
use ebfleet_aws::dynamodb::DynamoError;
use ebfleet_aws::s3::S3Error;
use ebfleet_core::manifest::{
    apply_manifest, BatchManifest, ManifestEntry, ManifestError, Outcome,
};
use ebfleet_core::names::{KeyError, ModuleName};
use ebfleet_core::record::{write_condition, ModuleRecord, WriteCondition};
use ebfleet_core::unit::UnitOutcome;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// Writes tried per module before giving up on a contended item.
pub const MAX_ATTEMPTS: u32 = 5;

/// What the record Lambda is asked, by the unit state machine's states:
/// `Lease`, `Record` (`staged`) and `Release` (`done`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// `{"staged": {"execution", "platform", "batch"}}`: the `Record`
    /// state, for what the unit's node staged (its unit file names the
    /// node, so the staging prefix).
    Staged { staged: lease::BatchRef },
    /// `{"lease": {"execution", "platform", "batch", "waits_left"?}}`: the
    /// `Lease` state (`batch` is the unit's number).
    Lease { lease: lease::LeaseInput },
    /// `{"done": {...}}`: a unit's `Release` state.
    Done { done: Box<done::DoneInput> },
}

/// What the record Lambda answers, by input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Recorded(Output),
    Leased(lease::Output),
    Done(ebfleet_core::unit::UnitResult),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Output {
    /// The manifest Record published (the platform's keys).
    pub manifest_key: String,
    /// Records written as built.
    pub built: usize,
    /// Records written with a failure.
    pub failed: usize,
    /// Records written for modules the node did not attempt.
    pub skipped: usize,
    /// Modules whose record already said what the manifest says.
    pub unchanged: usize,
    /// What each module of the manifest came to, as its unit's outcome.
    #[serde(default)]
    pub outcomes: std::collections::BTreeMap<String, UnitOutcome>,
    /// Each module recorded built: its tarball's sha256, as recorded.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tarballs: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading manifest {key}: {source}")]
    Read {
        key: String,
        #[source]
        source: S3Error,
    },
    #[error("manifest {key}: {source}")]
    Manifest {
        key: String,
        #[source]
        source: ManifestError,
    },
    #[error("manifest {key}: not UTF-8")]
    NotUtf8 { key: String },
    #[error("manifest {key}: {source}")]
    Name {
        key: String,
        #[source]
        source: KeyError,
    },
    /// `action` is `recording`, `leasing` or `releasing`.
    #[error("{action} {module}: {source}")]
    Record {
        action: &'static str,
        module: String,
        #[source]
        source: Box<DynamoError>,
    },
    #[error("{action} {module}: the item changed under every one of {attempts} writes")]
    Contended {
        action: &'static str,
        module: String,
        attempts: u32,
    },
    #[error("reading batch file {key}: {source}")]
    ReadBatch {
        key: String,
        #[source]
        source: S3Error,
    },
    #[error("batch file {key}: {reason}")]
    BatchFile { key: String, reason: String },
    #[error("writing leases file {key}: {source}")]
    WriteLeases {
        key: String,
        #[source]
        source: S3Error,
    },
    #[error("promoting {module}: {source}")]
    Promote {
        module: String,
        #[source]
        source: Box<promote::Promotion>,
    },
    #[error("publishing manifest {key}: {source}")]
    Publish {
        key: String,
        #[source]
        source: S3Error,
    },
}

impl Error {
    fn entry(action: &'static str, module: &str, e: EntryError) -> Self {
        match e {
            EntryError::Dynamo(source) => Error::Record {
                action,
                module: module.to_string(),
                source: Box::new(source),
            },
            EntryError::Contended { attempts } => Error::Contended {
                action,
                module: module.to_string(),
                attempts,
            },
        }
    }
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Read { source, .. }
            | Error::ReadBatch { source, .. }
            | Error::WriteLeases { source, .. }
            | Error::Publish { source, .. } => source.kind(),
            Error::Promote { source, .. } => match source.as_ref() {
                promote::Promotion::S3(e) => e.kind(),
                promote::Promotion::Sign(call) => Kind::retry_or(call.transient, Kind::Failed),
            },
            Error::Manifest { .. }
            | Error::NotUtf8 { .. }
            | Error::Name { .. }
            | Error::BatchFile { .. } => Kind::Invalid,
            Error::Record { source, .. } => Kind::retry_or(source.is_retryable(), Kind::Failed),
            // Someone else keeps writing the item: asking again later may work.
            Error::Contended { .. } => Kind::Transient,
        }
    }
}

/// What recording one entry came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written (after this many writes).
    Written { attempts: u32 },
    /// The record already says it.
    Unchanged,
}

/// Why one entry could not be recorded.
#[derive(Debug)]
pub enum EntryError {
    Dynamo(DynamoError),
    Contended { attempts: u32 },
}

/// What to do with a module's record, decided from what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
// Short-lived, one per decision: not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Decision<T> {
    /// Write this record under this condition.
    Write(ModuleRecord, WriteCondition),
    /// Nothing to write.
    Done(T),
}

/// What [`write_decided`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled<T> {
    /// Written (after this many writes).
    Written { attempts: u32 },
    /// The decision was to write nothing.
    Done(T),
}

/// The one read-decide-write loop: read the record (`get`), `decide` on
/// it, write what it decided (`put`); when the write's condition fails
/// (someone wrote the item in between), read and decide again, at most
/// `max_attempts` writes.
pub async fn write_decided<G, GF, P, PF, D, T>(
    get: G,
    put: P,
    mut decide: D,
    max_attempts: u32,
) -> Result<Settled<T>, EntryError>
where
    G: Fn() -> GF,
    GF: Future<Output = Result<Option<ModuleRecord>, DynamoError>>,
    P: Fn(ModuleRecord, WriteCondition) -> PF,
    PF: Future<Output = Result<(), DynamoError>>,
    D: FnMut(Option<&ModuleRecord>) -> Decision<T>,
{
    for attempt in 1..=max_attempts {
        let existing = get().await.map_err(EntryError::Dynamo)?;
        let (record, condition) = match decide(existing.as_ref()) {
            Decision::Write(record, condition) => (record, condition),
            Decision::Done(t) => return Ok(Settled::Done(t)),
        };
        match put(record, condition).await {
            Ok(()) => return Ok(Settled::Written { attempts: attempt }),
            Err(DynamoError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(EntryError::Dynamo(e)),
        }
    }
    Err(EntryError::Contended {
        attempts: max_attempts,
    })
}

/// Record one entry: [`write_decided`] with [`apply_manifest`]'s record
/// under [`write_condition`].
pub async fn record_entry<G, GF, P, PF>(
    get: G,
    put: P,
    manifest: &BatchManifest,
    entry: &ManifestEntry,
    now: u64,
    max_attempts: u32,
) -> Result<Recorded, EntryError>
where
    G: Fn() -> GF,
    GF: Future<Output = Result<Option<ModuleRecord>, DynamoError>>,
    P: Fn(ModuleRecord, WriteCondition) -> PF,
    PF: Future<Output = Result<(), DynamoError>>,
{
    let decide =
        |existing: Option<&ModuleRecord>| match apply_manifest(existing, manifest, entry, now) {
            Some(record) => Decision::Write(record, write_condition(existing)),
            None => Decision::Done(()),
        };
    Ok(match write_decided(get, put, decide, max_attempts).await? {
        Settled::Written { attempts } => Recorded::Written { attempts },
        Settled::Done(()) => Recorded::Unchanged,
    })
}

/// What the record Lambda needs from the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Seconds a lease lasts ([`lease::LEASE_SECONDS_VAR`]).
    pub lease_ttl: u64,
    /// The KMS key promoted tarballs are signed with.
    pub signing_key: String,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, EnvError> {
        Ok(Settings {
            lease_ttl: lease::parse_ttl(lookup(lease::LEASE_SECONDS_VAR).as_deref())?,
            signing_key: crate::env::required(&lookup, crate::env::var::SIGNING_KEY)?,
        })
    }
}

/// The record Lambda: take a unit's lease, record its manifest, end it.
pub async fn handle(env: &Env, settings: &Settings, input: Input) -> Result<Reply, Error> {
    let now = env.now();
    match input {
        Input::Lease { lease } => lease::take(
            env,
            &lease.batch,
            now,
            settings.lease_ttl,
            lease.waits_left > 0,
        )
        .await
        .map(Reply::Leased),
        Input::Staged { staged } => record(env, &staged, &settings.signing_key, now)
            .await
            .map(Reply::Recorded),
        Input::Done { done } => done::done(env, *done).await.map(Reply::Done),
    }
}

/// Record the manifest a unit's node staged, at `now`: read from the
/// unit's staging prefix (its unit file, which no node writes, names the
/// node), checked against the unit, its artifacts verified and promoted
/// ([`promote::promote`]), then each module's record written.
pub async fn record(
    env: &Env,
    staged: &lease::BatchRef,
    signing_key: &str,
    now: u64,
) -> Result<Output, Error> {
    let unit = lease::read_batch(env, staged).await?;
    let key = unit.staged_manifest_key();
    let bytes = env
        .store
        .get_bytes(&key)
        .await
        .map_err(|source| Error::Read {
            key: key.clone(),
            source,
        })?;
    let manifest = parse_manifest(&key, &bytes)?;
    // A node wrote it: believed only about the unit it was sent to build.
    let platform = unit.platform.clone();
    manifest
        .check_for(&key, &unit)
        .map_err(|source| Error::Manifest {
            key: key.clone(),
            source,
        })?;
    let manifest = promote::promote(env, &unit, &manifest, signing_key).await?;
    let mut out = Output {
        manifest_key: unit.manifest_key(),
        ..Output::default()
    };
    for entry in &manifest.modules {
        let module: ModuleName = entry.module.parse().map_err(|source| Error::Name {
            key: key.clone(),
            source,
        })?;
        let recorded = record_entry(
            || env.records.get(&platform, &module),
            |record, condition| async move { env.records.put(&record, &condition).await },
            &manifest,
            entry,
            now,
            MAX_ATTEMPTS,
        )
        .await
        .map_err(|e| Error::entry("recording", &entry.module, e))?;
        count(&mut out, entry, recorded);
    }
    tracing::info!(
        manifest = %key,
        built = out.built,
        failed = out.failed,
        skipped = out.skipped,
        unchanged = out.unchanged,
        "recorded"
    );
    Ok(out)
}

/// Read and validate a manifest's bytes.
pub fn parse_manifest(key: &str, bytes: &[u8]) -> Result<BatchManifest, Error> {
    let manifest_error = |source| Error::Manifest {
        key: key.to_string(),
        source,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        key: key.to_string(),
    })?;
    BatchManifest::from_json(text).map_err(manifest_error)
}

/// Add one entry's result to the counts and outcomes.
pub fn count(out: &mut Output, entry: &ManifestEntry, recorded: Recorded) {
    out.outcomes
        .insert(entry.module.clone(), unit_outcome(&entry.outcome));
    if let Outcome::Built { tarball, .. } = &entry.outcome {
        out.tarballs
            .insert(entry.module.clone(), tarball.sha256.clone());
    }
    match (recorded, &entry.outcome) {
        (Recorded::Unchanged, _) => out.unchanged += 1,
        (Recorded::Written { .. }, Outcome::Built { .. }) => out.built += 1,
        (Recorded::Written { .. }, Outcome::Failed { .. }) => out.failed += 1,
        (Recorded::Written { .. }, Outcome::Skipped { .. }) => out.skipped += 1,
    }
}

/// A manifest entry's outcome as its unit's.
pub fn unit_outcome(o: &Outcome) -> UnitOutcome {
    match o {
        Outcome::Built { .. } => UnitOutcome::Built,
        Outcome::Failed { class, message, .. } => UnitOutcome::Failed {
            class: class.to_string(),
            reason: message.chars().take(500).collect(),
        },
        Outcome::Skipped { reason } => UnitOutcome::Skipped {
            reason: reason.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_aws::CallError;
    use ebfleet_core::manifest::MANIFEST_FORMAT;
    use ebfleet_core::record::{Status, Tarball};
    use std::cell::{Cell, RefCell};

    const P: &str = "amzn-2023_graviton-3";
    const M: &str = "zlib/1.3.1-GCCcore-13.3.0";

    fn manifest() -> BatchManifest {
        let m = BatchManifest {
            format: MANIFEST_FORMAT,
            execution: "e1".into(),
            platform: P.into(),
            batch: 0,
            instance_type: "c7g.4xlarge".into(),
            archspec: "neoverse_v1".into(),
            eb_version: "4.9.4".into(),
            started: 1_000,
            finished: 1_100,
            modules: vec![ManifestEntry {
                module: M.into(),
                easyconfig_sha256: "a".repeat(64),
                outcome: Outcome::Built {
                    tarball: Tarball {
                        key: format!("{P}/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst"),
                        size: 123_456,
                        sha256: "b".repeat(64),
                        version_id: None,
                        signature: None,
                    },
                    module_file_key: format!("{P}/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua"),
                    duration_s: 42,
                    usage: None,
                },
            }],
        };
        m.validate().unwrap();
        m
    }

    fn condition_failed(condition: WriteCondition) -> DynamoError {
        DynamoError::ConditionFailed {
            table: "t".into(),
            pk: "pk".into(),
            sk: "sk".into(),
            condition,
        }
    }

    /// A table of one item whose version must match, and `races` writes by
    /// someone else landing just before ours.
    struct Table {
        item: RefCell<Option<ModuleRecord>>,
        races: Cell<u32>,
        puts: Cell<u32>,
    }

    impl Table {
        fn new(races: u32) -> Self {
            Table {
                item: RefCell::new(None),
                races: Cell::new(races),
                puts: Cell::new(0),
            }
        }

        async fn get(&self) -> Result<Option<ModuleRecord>, DynamoError> {
            Ok(self.item.borrow().clone())
        }

        async fn put(&self, r: ModuleRecord, c: WriteCondition) -> Result<(), DynamoError> {
            self.puts.set(self.puts.get() + 1);
            if self.races.get() > 0 {
                self.races.set(self.races.get() - 1);
                // Someone else bumps the item.
                let mut other = self
                    .item
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| ModuleRecord::new(P, M, &"c".repeat(64), 1));
                other.version += 1;
                *self.item.borrow_mut() = Some(other);
            }
            let current = self.item.borrow().clone();
            if write_condition(current.as_ref()) != c {
                return Err(condition_failed(c));
            }
            *self.item.borrow_mut() = Some(r);
            Ok(())
        }
    }

    async fn run(t: &Table, m: &BatchManifest) -> Result<Recorded, EntryError> {
        record_entry(
            || t.get(),
            |r, c| t.put(r, c),
            m,
            &m.modules[0],
            2_000,
            MAX_ATTEMPTS,
        )
        .await
    }

    #[tokio::test]
    async fn writes_then_is_idempotent() {
        let t = Table::new(0);
        let m = manifest();
        assert_eq!(
            run(&t, &m).await.unwrap(),
            Recorded::Written { attempts: 1 }
        );
        let r = t.item.borrow().clone().unwrap();
        assert_eq!(r.status, Status::Built);
        assert_eq!(r.version, 1);
        assert_eq!(run(&t, &m).await.unwrap(), Recorded::Unchanged);
        assert_eq!(t.puts.get(), 1);
    }

    #[tokio::test]
    async fn retries_after_a_failed_condition() {
        let t = Table::new(2);
        let m = manifest();
        assert_eq!(
            run(&t, &m).await.unwrap(),
            Recorded::Written { attempts: 3 }
        );
        let r = t.item.borrow().clone().unwrap();
        assert_eq!(r.status, Status::Built);
        assert_eq!(t.puts.get(), 3);
    }

    #[tokio::test]
    async fn gives_up_when_always_contended() {
        let t = Table::new(u32::MAX);
        let m = manifest();
        assert!(matches!(
            run(&t, &m).await,
            Err(EntryError::Contended {
                attempts: MAX_ATTEMPTS
            })
        ));
        assert_eq!(t.puts.get(), MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let m = manifest();
        let puts = Cell::new(0);
        let r = record_entry(
            || async { Ok(None) },
            |_, _| {
                puts.set(puts.get() + 1);
                async {
                    Err(DynamoError::Call {
                        table: "t".into(),
                        call: Box::new(CallError {
                            service: "DynamoDB",
                            op: "PutItem",
                            resource: "t pk sk".into(),
                            detail: "throttled".into(),
                            transient: true,
                        }),
                    })
                }
            },
            &m,
            &m.modules[0],
            2_000,
            MAX_ATTEMPTS,
        )
        .await;
        assert!(matches!(
            &r,
            Err(EntryError::Dynamo(DynamoError::Call { call, .. })) if call.transient
        ));
        assert_eq!(puts.get(), 1);
    }

    #[test]
    fn counts_by_outcome() {
        let m = manifest();
        let e = &m.modules[0];
        let mut out = Output::default();
        count(&mut out, e, Recorded::Written { attempts: 1 });
        count(&mut out, e, Recorded::Unchanged);
        let skipped = ManifestEntry {
            outcome: Outcome::Skipped {
                reason: "dependency failed".into(),
            },
            ..e.clone()
        };
        count(&mut out, &skipped, Recorded::Written { attempts: 2 });
        assert_eq!(
            (out.built, out.failed, out.skipped, out.unchanged),
            (1, 0, 1, 1)
        );
    }

    #[test]
    fn input_is_a_staged_unit_a_lease_or_a_done() {
        let k: Input = serde_json::from_str(&format!(
            r#"{{"staged":{{"execution":"e1","platform":"{P}","batch":4}}}}"#
        ))
        .unwrap();
        assert!(matches!(&k, Input::Staged { staged } if staged.batch == 4));
        let l: Input = serde_json::from_str(&format!(
            r#"{{"lease":{{"execution":"e1","platform":"{P}","batch":3}}}}"#
        ))
        .unwrap();
        assert!(
            matches!(&l, Input::Lease { lease } if lease.batch.batch == 3 && lease.waits_left == 0)
        );
        let d: Input = serde_json::from_str(&format!(
            r#"{{"done":{{"execution":"e1","platform":"{P}","unit":3,"attempt":1}}}}"#
        ))
        .unwrap();
        assert!(matches!(&d, Input::Done { done } if done.unit == 3));
        assert!(serde_json::from_str::<Input>(r#"{"lease":{"execution":"e 1"}}"#).is_err());
        // What no state sends any more: a batch's manifest by its
        // coordinates or by its key (Record reads the unit file for it),
        // a given-up batch's leases (the scheduler releases those itself).
        for gone in [
            r#"{"manifest_key":"x/manifests/e1/0.json"}"#.to_string(),
            format!(r#"{{"execution":"e1","platform":"{P}","batch":3}}"#),
            format!(r#"{{"release_leases":{{"execution":"e1","platform":"{P}","batch":3}}}}"#),
        ] {
            assert!(serde_json::from_str::<Input>(&gone).is_err(), "{gone}");
        }
    }

    #[test]
    fn bad_manifests_name_their_key() {
        let e = parse_manifest("k.json", b"{}").unwrap_err();
        assert!(e.to_string().contains("k.json"), "{e}");
        assert!(parse_manifest("k.json", manifest().to_json().as_bytes()).is_ok());
    }
}
