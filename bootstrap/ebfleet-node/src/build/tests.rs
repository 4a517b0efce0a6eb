use super::*;
use ebfleet_core::lease::HeldModule;

fn m(s: &str) -> ModuleName {
    s.parse().unwrap()
}

fn done(module: &str, outcome: BuildOutcome) -> ModuleBuild {
    ModuleBuild {
        module: m(module),
        easyconfig_sha256: "e".repeat(64),
        outcome,
    }
}

fn built(module: &str) -> ModuleBuild {
    done(
        module,
        BuildOutcome::Built {
            duration_s: 1,
            usage: None,
        },
    )
}

fn failed(module: &str) -> ModuleBuild {
    done(
        module,
        BuildOutcome::Failed {
            class: ErrorClass::CompileError,
            message: "make failed".into(),
            duration_s: 1,
            log: None,
        },
    )
}

fn skipped(module: &str, reason: &str) -> ModuleBuild {
    done(
        module,
        BuildOutcome::Skipped {
            reason: reason.into(),
        },
    )
}

fn missing(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_dependency_that_failed_in_this_batch_keeps_its_wording() {
    let earlier = [built("zlib/1.3"), failed("broken/1.0"), failed("bad/2.0")];
    assert_eq!(
        dependency_skip(&missing(&["broken/1.0"]), &earlier, &[]).as_deref(),
        Some("dependency broken/1.0 failed in this batch")
    );
    assert_eq!(
        dependency_skip(&missing(&["broken/1.0", "bad/2.0"]), &earlier, &[]).as_deref(),
        Some("dependency broken/1.0, bad/2.0 failed in this batch")
    );
}

#[test]
fn a_dependency_missing_from_the_bucket_is_a_skip_naming_it() {
    let needs = [m("hello/1.0"), m("other/2.0")];
    assert_eq!(
        dependency_skip(&missing(&["hello/1.0"]), &[], &needs).as_deref(),
        Some("dependency hello/1.0 is not in the bucket (not built by an earlier batch)")
    );
    // A hidden module is matched with its dot.
    assert!(dependency_skip(&missing(&["zlib/.1.3"]), &[], &[m("zlib/.1.3")]).is_some());
    assert_eq!(
        dependency_skip(&missing(&["zlib/1.3"]), &[], &[m("zlib/.1.3")]),
        None
    );
}

#[test]
fn a_dependency_skipped_in_this_batch_says_why() {
    let earlier = [skipped(
        "hello/1.0",
        "leased to run-0#batch-0 until 1800000000 (another execution is building it)",
    )];
    let reason = dependency_skip(&missing(&["hello/1.0"]), &earlier, &[]).unwrap();
    assert_eq!(
        reason,
        "dependency hello/1.0 was skipped in this batch: leased to run-0#batch-0 until 1800000000 (another execution is building it)"
    );
}

#[test]
fn every_missing_module_must_be_explained_or_it_is_a_failure() {
    let earlier = [built("zlib/1.3"), failed("broken/1.0")];
    let needs = [m("hello/1.0")];
    // Mixed reasons: all explained, each named.
    let reason = dependency_skip(&missing(&["broken/1.0", "hello/1.0"]), &earlier, &needs).unwrap();
    assert!(
        reason.contains("dependency broken/1.0 failed in this batch"),
        "{reason}"
    );
    assert!(
        reason.contains("dependency hello/1.0 is not in the bucket"),
        "{reason}"
    );
    // One missing module nothing explains: a need that synced fine, a
    // module outside the plan.
    assert_eq!(
        dependency_skip(&missing(&["broken/1.0", "gcc/13.3"]), &earlier, &needs),
        None
    );
    assert_eq!(dependency_skip(&missing(&["gcc/13.3"]), &[], &needs), None);
    // Built earlier in the batch, yet missing: something is wrong, a failure.
    assert_eq!(
        dependency_skip(&missing(&["zlib/1.3"]), &earlier, &[m("zlib/1.3")]),
        None
    );
    // EasyBuild named nothing: a failure.
    assert_eq!(dependency_skip(&[], &earlier, &needs), None);
}

#[test]
fn a_long_chain_of_reasons_is_cut_to_a_message() {
    let earlier = [skipped("a/1.0", &"x".repeat(5000))];
    let reason = dependency_skip(&missing(&["a/1.0"]), &earlier, &[]).unwrap();
    assert!(reason.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", reason.len());
    assert!(reason.starts_with("dependency a/1.0 was skipped in this batch: x"));
}

#[test]
fn only_modules_leased_to_the_batch_are_built_when_it_has_leases() {
    let leases = BatchLeases {
        execution: "run-1".parse().unwrap(),
        platform: "amzn-2023_epyc-gen-4".parse().unwrap(),
        batch: 2,
        owner: "run-1#batch-2".into(),
        expires: 1_900_000_000,
        leased: vec![m("greeter/1.0")],
        held: vec![HeldModule {
            module: m("hello/1.0"),
            owner: "run-0#batch-0".into(),
            expires: 1_800_000_000,
        }],
        already_built: vec![m("zlib/1.3")],
    };
    // No leases file: everything is built.
    for x in ["greeter/1.0", "hello/1.0", "zlib/1.3", "other/1.0"] {
        assert_eq!(lease_skip(None, &m(x)), None, "{x}");
    }
    assert_eq!(lease_skip(Some(&leases), &m("greeter/1.0")), None);
    let held = lease_skip(Some(&leases), &m("hello/1.0")).unwrap();
    assert!(held.contains("run-0#batch-0"), "{held}");
    let done = lease_skip(Some(&leases), &m("zlib/1.3")).unwrap();
    assert!(done.contains("already built"), "{done}");
    // Not mentioned: not leased, so not built.
    assert!(lease_skip(Some(&leases), &m("other/1.0")).is_some());
}

#[test]
fn a_build_whose_jobs_need_more_memory_than_the_node_has_gets_fewer() {
    let env =
        |jobs: &str| BTreeMap::from([(OsString::from("EASYBUILD_PARALLEL"), OsString::from(jobs))]);
    let memory = machine::memory_mib().expect("this machine's memory");
    // Nothing recorded, or small jobs: as many as before.
    assert_eq!(fewer_jobs(&env("4"), None), None);
    assert_eq!(fewer_jobs(&env("4"), Some(64)), None);
    // Each job needs half the machine: one fits.
    assert_eq!(fewer_jobs(&env("4"), Some(memory / 2)), Some(1));
    // A quarter (of the 90% usable): three.
    assert_eq!(fewer_jobs(&env("8"), Some(memory / 4)), Some(3));
    // Already one job: nothing fewer.
    assert_eq!(fewer_jobs(&env("1"), Some(memory * 2)), None);
}

#[test]
fn a_module_gets_its_own_optarch_and_the_batch_keeps_the_rest() {
    let batch_env = BTreeMap::from([
        (
            OsString::from("EASYBUILD_OPTARCH"),
            OsString::from("GCC:march=znver4"),
        ),
        (OsString::from("EASYBUILD_PARALLEL"), OsString::from("4")),
    ]);
    let mut b = crate::job::tests::batch_file().builds[0].clone();
    assert_eq!(module_env(&batch_env, &b), batch_env, "nothing of its own");
    b.optarch = Some("GCC:march=znver3".into());
    let env = module_env(&batch_env, &b);
    assert_eq!(
        env[&OsString::from("EASYBUILD_OPTARCH")],
        "GCC:march=znver3"
    );
    assert_eq!(env[&OsString::from("EASYBUILD_PARALLEL")], "4");
}
