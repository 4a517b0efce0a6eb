use super::*;
use crate::manifest::*;

pub(crate) const P: &str = "amzn-2023_graviton-3";
pub(crate) const M: &str = "zlib/1.3.1-GCCcore-13.3.0";
pub(crate) const EXEC: &str = "arn:aws:states:eu-west-1:123456789012:execution:ebfleet:run-1";

pub(crate) fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

pub(crate) fn built_outcome(c: char) -> Outcome {
    Outcome::Built {
        tarball: Tarball {
            key: format!("{P}/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst"),
            size: 123_456,
            sha256: sha(c),
            version_id: None,
            signature: None,
        },
        module_file_key: format!("{P}/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua"),
        duration_s: 42,
        usage: Some(crate::sizing::BuildUsage {
            peak_memory_mib: 900,
            cpu_s: 300,
            cpus: 16,
        }),
    }
}

pub(crate) fn failed_outcome() -> Outcome {
    Outcome::Failed {
        class: ErrorClass::CompileError,
        message: "make: *** [all] Error 2".into(),
        log_key: Some(format!("{P}/logs/zlib/1.3.1-GCCcore-13.3.0/eb.log")),
    }
}

pub(crate) fn manifest(execution: &str, batch: u32, outcome: Outcome, ec: char) -> BatchManifest {
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
pub(crate) fn apply(
    existing: Option<&ModuleRecord>,
    m: &BatchManifest,
    now: u64,
) -> Option<ModuleRecord> {
    m.validate().unwrap();
    apply_manifest(existing, m, &m.modules[0], now)
}

pub(crate) fn req(owner: &str, now: u64) -> LeaseRequest {
    LeaseRequest {
        owner: owner.into(),
        now,
        ttl: 600,
    }
}

pub(crate) fn built_record(ec: char) -> ModuleRecord {
    apply(None, &manifest(EXEC, 0, built_outcome('b'), ec), 1_100).unwrap()
}

#[test]
fn a_record_is_keyed_by_platform_and_module() {
    let r = built_record('e');
    assert_eq!(
        (r.pk(), r.sk()),
        (
            "PLATFORM#amzn-2023_graviton-3".to_string(),
            "MODULE#zlib/1.3.1-GCCcore-13.3.0".to_string()
        )
    );
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
        r.usage.map(|u| (u.peak_memory_mib, u.cpu_s, u.cpus)),
        Some((900, 300, 16))
    );
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

#[test]
fn a_blocked_module_is_planned_with_the_reason_and_no_attempt() {
    let why = "not built: broken/1.0 failed (compile_error)";
    let r = skip_blocked(None, P, M, &sha('e'), why, 1_000).unwrap();
    assert_eq!(r.status, Status::Planned);
    assert_eq!(r.attempts, 0);
    let e = r.last_error.as_ref().unwrap();
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::DependencyFailed, why)
    );
    // Again: nothing to write.
    assert_eq!(skip_blocked(Some(&r), P, M, &sha('e'), why, 1_100), None);
    // A built module stays built; someone else's live build is theirs.
    let built = built_record('e');
    assert_eq!(
        skip_blocked(Some(&built), P, M, &sha('f'), why, 2_000),
        None
    );
    let mut theirs = r.clone();
    theirs.lease = Some(Lease {
        owner: lease_owner("other", 1),
        expires: 5_000,
    });
    assert_eq!(
        skip_blocked(Some(&theirs), P, M, &sha('e'), why, 2_000),
        None
    );
}

#[test]
fn a_retry_in_the_same_execution_that_builds_is_recorded_built() {
    let failed = apply(None, &manifest("run-1", 4, failed_outcome(), 'e'), 1_100).unwrap();
    // The scheduler tried the unit again (same execution and batch): built.
    let built = apply(
        Some(&failed),
        &manifest("run-1", 4, built_outcome('b'), 'e'),
        1_200,
    )
    .unwrap();
    assert_eq!(
        (built.status, built.attempts, built.last_error.clone()),
        (Status::Built, 1, None)
    );
    assert!(built.tarball.is_some());
    // Either manifest applied again changes nothing: a success stays.
    for again in [built_outcome('b'), failed_outcome()] {
        assert_eq!(
            apply(Some(&built), &manifest("run-1", 4, again, 'e'), 1_300),
            None
        );
    }
}
