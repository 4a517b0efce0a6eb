//! The trigger's rule, names, input and event parsing.

use super::*;
use crate::names::MAX_EXECUTION_NAME;
use serde_json::json;

const BUCKET: &str = "ebfleet-stack";
const ZLIB: &str = "easyconfigs/z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb";
const SIGC: &str = "easyconfigs/l/libsigc++/libsigc++-3.6.0-GCCcore-13.3.0.eb";

fn event(key: &str) -> serde_json::Value {
    json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "111122223333",
        "time": "2026-11-24T10:15:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{BUCKET}")],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": 1234, "etag": "b1946ac9", "sequencer": "617f08299329d189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "111122223333",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject"
        }
    })
}

fn key(s: &str) -> EasyconfigKey {
    s.parse().unwrap()
}

fn naming() -> Naming {
    Naming {
        prefix: "ebfleet".parse().unwrap(),
        // 2026-11-24T10:15:00Z
        now_unix: 1_795_515_300,
    }
}

#[test]
fn an_easyconfig_key_is_read() {
    assert_eq!(changed_key(event(ZLIB), BUCKET), Ok(key(ZLIB)));
}

#[test]
fn url_encoded_keys_are_decoded_and_a_literal_plus_is_kept() {
    let encoded = "easyconfigs/l/libsigc%2B%2B/libsigc%2b%2b-3.6.0-GCCcore-13.3.0.eb";
    assert_eq!(changed_key(event(encoded), BUCKET), Ok(key(SIGC)));
    assert_eq!(changed_key(event(SIGC), BUCKET), Ok(key(SIGC)));
    // An encoded '/' is a '/' of the key, checked like any other.
    let slash = "easyconfigs%2Fz%2Fzlib%2Fzlib-1.3.1-GCCcore-13.3.0.eb";
    assert_eq!(changed_key(event(slash), BUCKET), Ok(key(ZLIB)));
}

#[test]
fn other_keys_are_ignored_with_a_reason() {
    let ignored = |k: &str| changed_key(event(k), BUCKET).unwrap_err();
    assert!(matches!(
        ignored("sources/z/zlib/zlib-1.3.1.tar.gz"),
        Ignored::NotUnderPrefix(_)
    ));
    assert!(matches!(
        ignored("plans/easyconfigs/z/zlib/zlib-1.3.1.eb"),
        Ignored::NotUnderPrefix(_)
    ));
    assert!(matches!(
        ignored("easyconfigs/z/zlib/zlib-1.3.1_fix-configure.patch"),
        Ignored::NotEasyconfig(_)
    ));
    assert!(matches!(
        ignored("easyconfigs/z/zlib/zlib-1.3.1.EB"),
        Ignored::NotEasyconfig(_)
    ));
    assert!(matches!(
        ignored("easyconfigs/Z/zlib/zlib-1.3.1.eb"),
        Ignored::Invalid(_)
    ));
}

#[test]
fn hostile_keys_are_ignored_never_accepted() {
    for k in [
        "easyconfigs/../../etc/passwd.eb",
        "easyconfigs/z/zlib/../zlib/zlib-1.eb",
        "easyconfigs/z/zlib/zlib-1;rm -rf ~.eb",
        "easyconfigs/z/zlib/zlib-$(reboot).eb",
        "easyconfigs/z/zlib/zlib-`id`.eb",
        "easyconfigs/z/zlib/zlib-1\n2.eb",
        "easyconfigs//z/zlib/zlib-1.eb",
        "easyconfigs/z/zlib/zlib-1%0aINFO forged.eb",
        "easyconfigs/z/zlib/zlib-1%3b%20id.eb",
        "easyconfigs%2F..%2F..%2Fetc%2Fzlib-1.eb",
        "easyconfigs/z/zlib/zlib-1%252F.eb",
        "easyconfigs/z/zlib/zlib-1%.eb",
        "easyconfigs/z/zlib/zlib-1%zz.eb",
        "easyconfigs/z/zlib/zlib-1%ff.eb",
        "easyconfigs/z/zlib/-rf.eb",
        "easyconfigs/z/zlib/zlib-1 2.eb",
        "easyconfigs/z/zlib/zlib-1+2.eb%00",
    ] {
        let got = changed_key(event(k), BUCKET);
        assert!(got.is_err(), "{k:?} gave {got:?}");
        let text = got.unwrap_err().to_string();
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn a_long_hostile_key_is_shown_escaped_and_cut() {
    let k = format!("easyconfigs/z/zlib/zlib-1\n{}.patch", "x".repeat(500));
    let text = changed_key(event(&k), BUCKET).unwrap_err().to_string();
    assert!(!text.contains('\n') && text.contains("\\n"), "{text}");
    assert!(text.len() < 200, "{text}");
}

#[test]
fn other_events_and_buckets_are_ignored() {
    let mut e = event(ZLIB);
    e["detail-type"] = json!("Object Deleted");
    assert!(matches!(
        changed_key(e, BUCKET),
        Err(Ignored::NotObjectCreated(_))
    ));
    assert!(matches!(
        changed_key(event(ZLIB), "another-bucket"),
        Err(Ignored::OtherBucket { .. })
    ));
    assert!(matches!(
        changed_key(json!({"detail": {"bucket": {}}}), BUCKET),
        Err(Ignored::Malformed(_))
    ));
    assert!(matches!(
        changed_key(json!("not even an object"), BUCKET),
        Err(Ignored::Malformed(_))
    ));
}

#[test]
fn names_are_valid_timed_and_tell_runs_apart() {
    let n = naming();
    let full = execution_name(&n.prefix, n.now_unix, &[]);
    assert_eq!(full.as_str(), "ebfleet-20261124T101500Z-full");
    let a = execution_name(&n.prefix, n.now_unix, &[key(ZLIB)]);
    assert!(
        a.as_str().starts_with("ebfleet-20261124T101500Z-changed-"),
        "{a}"
    );
    assert_eq!(
        a.as_str().len(),
        "ebfleet-20261124T101500Z-changed-".len() + 8
    );
    // Same keys in any order and with duplicates: same name.
    let ab = execution_name(&n.prefix, n.now_unix, &[key(ZLIB), key(SIGC)]);
    let ba = execution_name(&n.prefix, n.now_unix, &[key(SIGC), key(ZLIB), key(SIGC)]);
    assert_eq!(ab, ba);
    assert_ne!(a, ab);
    assert_ne!(a, execution_name(&n.prefix, n.now_unix + 1, &[key(ZLIB)]));
}

#[test]
fn a_long_prefix_is_cut_to_fit() {
    let prefix: ExecutionName = "p".repeat(MAX_EXECUTION_NAME).parse().unwrap();
    for changed in [vec![], vec![key(ZLIB)]] {
        let name = execution_name(&prefix, u64::MAX / 2, &changed);
        assert!(name.as_str().len() <= MAX_EXECUTION_NAME, "{name}");
        assert!(name.as_str().starts_with("ppp"), "{name}");
    }
}

#[test]
fn utc_stamps() {
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    assert_eq!(utc_stamp(1_795_515_300), "20261124T101500Z");
    assert_eq!(utc_stamp(4_102_444_799), "20991231T235959Z");
}

#[test]
fn the_input_is_the_documented_json() {
    let input =
        ExecutionInput::for_changes("run-1".parse().unwrap(), [key(ZLIB), key(SIGC), key(ZLIB)])
            .unwrap()
            .with_platforms(["amzn-2023_graviton-3".parse().unwrap()]);
    let v = serde_json::to_value(&input).unwrap();
    assert_eq!(
        v,
        json!({
            "execution": "run-1",
            "platforms": ["amzn-2023_graviton-3"],
            "changed_keys": [SIGC, ZLIB],
            "mode": "changed"
        })
    );
    assert_eq!(serde_json::from_value::<ExecutionInput>(v).unwrap(), input);
    let full = ExecutionInput::full("nightly".parse().unwrap());
    assert_eq!(
        serde_json::to_value(&full).unwrap(),
        json!({"execution": "nightly", "mode": "full"})
    );
    assert_eq!(full.changed_keys(), &[] as &[EasyconfigKey]);
    assert_eq!(full.platforms(), None);
}

#[test]
fn a_run_started_by_hand_may_leave_the_mode_out() {
    let by_hand: ExecutionInput =
        serde_json::from_value(json!({"execution": "r", "platforms": ["amzn-2023_graviton-3"]}))
            .unwrap();
    assert_eq!(by_hand.mode(), Mode::Full);
    let keys: ExecutionInput =
        serde_json::from_value(json!({"execution": "r", "changed_keys": [ZLIB]})).unwrap();
    assert_eq!(keys.mode(), Mode::Changed);
    assert_eq!(keys.changed_keys(), &[key(ZLIB)]);
    for bad in [
        json!({"execution": "r", "changed_keys": []}),
        json!({"execution": "r", "platforms": []}),
    ] {
        assert!(
            serde_json::from_value::<ExecutionInput>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn inconsistent_or_hostile_inputs_do_not_deserialise() {
    for bad in [
        json!({"execution": "r", "mode": "changed"}),
        json!({"execution": "r", "mode": "changed", "changed_keys": []}),
        json!({"execution": "r", "mode": "full", "changed_keys": [ZLIB]}),
        json!({"execution": "r", "mode": "full", "platforms": []}),
        json!({"execution": "r", "mode": "partial"}),
        json!({"execution": "r;id", "mode": "full"}),
        json!({"execution": "r", "mode": "changed", "changed_keys": ["easyconfigs/../x.eb"]}),
        json!({"execution": "r", "mode": "full", "platforms": ["../etc"]}),
    ] {
        assert!(
            serde_json::from_value::<ExecutionInput>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    let dup: ExecutionInput = serde_json::from_value(json!({
        "execution": "r", "mode": "changed", "changed_keys": [ZLIB, SIGC, ZLIB]
    }))
    .unwrap();
    assert_eq!(dup.changed_keys(), &[key(SIGC), key(ZLIB)]);
}

#[test]
fn a_run_by_hand_carries_the_planners_options() {
    let options = RunOptions {
        toolchains: vec!["GCCcore".into(), "foss".into()],
        floors: vec!["foss>=2023a".into()],
        include: vec!["GROMACS".into()],
        exclude: vec!["*-CUDA".into()],
        easystack: vec![],
    };
    let input = ExecutionInput::full("r".parse().unwrap())
        .with_options(options.clone())
        .unwrap();
    let v = serde_json::to_value(&input).unwrap();
    assert_eq!(
        v,
        json!({"execution": "r", "mode": "full", "options": {
            "toolchains": ["GCCcore", "foss"], "floors": ["foss>=2023a"],
            "include": ["GROMACS"], "exclude": ["*-CUDA"]
        }})
    );
    let back: ExecutionInput = serde_json::from_value(v).unwrap();
    assert_eq!(back.options(), &options);
    assert!(!back.retry_failed());
    let retry = ExecutionInput::full("r".parse().unwrap()).with_retry_failed(true);
    let v = serde_json::to_value(&retry).unwrap();
    assert_eq!(
        v,
        json!({"execution": "r", "mode": "full", "retry_failed": true})
    );
    assert!(serde_json::from_value::<ExecutionInput>(v)
        .unwrap()
        .retry_failed());
    let es: ExecutionInput = serde_json::from_value(
        json!({"execution": "r", "options": {"easystack": ["zlib-1.3.1-GCCcore-13.3.0.eb"]}}),
    )
    .unwrap();
    assert_eq!(es.mode(), Mode::Full);
    assert_eq!(es.options().easystack, ["zlib-1.3.1-GCCcore-13.3.0.eb"]);
    let long = "x".repeat(MAX_OPTION_BYTES + 1);
    for bad in [
        json!({"execution": "r", "changed_keys": [ZLIB], "options": {"easystack": ["a.eb"]}}),
        json!({"execution": "r", "options": {"easystack": ["../a.eb"]}}),
        json!({"execution": "r", "options": {"easystack": ["a.txt"]}}),
        json!({"execution": "r", "options": {"include": [""]}}),
        json!({"execution": "r", "options": {"include": [long]}}),
        json!({"execution": "r", "options": {"exclude": ["a\nb"]}}),
        json!({"execution": "r", "options": {"retry": true}}),
    ] {
        assert!(
            serde_json::from_value::<ExecutionInput>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    let err = ExecutionInput::full("r".parse().unwrap())
        .with_options(RunOptions {
            floors: vec!["\u{7}".into()],
            ..RunOptions::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("options.floors"), "{err}");
}

#[test]
fn too_many_changes_make_a_full_run_that_fits_a_payload() {
    let keys: Vec<EasyconfigKey> = (0..3_000)
        .map(|i| {
            key(&format!(
                "easyconfigs/p/Python/Python-3.{i}.0-GCCcore-13.3.0.eb"
            ))
        })
        .collect();
    let input = ExecutionInput::for_changes("r".parse().unwrap(), keys.clone()).unwrap();
    assert_eq!(input.mode(), Mode::Full);
    let TriggerDecision::Start(started) = decide(false, &keys, key(ZLIB), &naming()) else {
        panic!("nothing runs: start");
    };
    assert_eq!(started.mode(), Mode::Full);
    assert!(started.execution().as_str().ends_with("-full"));
    let end = on_execution_end(false, &keys, &naming()).unwrap();
    assert!(serde_json::to_vec(&end).unwrap().len() < crate::wire::STATE_PAYLOAD_LIMIT);
    assert!(ExecutionInput::for_changes("r".parse().unwrap(), []).is_none());
}

#[test]
fn nothing_running_starts_with_the_new_and_leftover_keys() {
    let TriggerDecision::Start(input) = decide(false, &[key(SIGC)], key(ZLIB), &naming()) else {
        panic!("nothing runs: start");
    };
    assert_eq!(input.mode(), Mode::Changed);
    assert_eq!(input.changed_keys(), &[key(SIGC), key(ZLIB)]);
    assert_eq!(
        input.execution(),
        &execution_name(&naming().prefix, naming().now_unix, &[key(ZLIB), key(SIGC)])
    );
    let TriggerDecision::Start(only) = decide(false, &[], key(ZLIB), &naming()) else {
        panic!("nothing runs: start");
    };
    assert_eq!(only.changed_keys(), &[key(ZLIB)]);
}

#[test]
fn a_running_execution_defers_and_pending_keys_stay_unique() {
    let d = decide(true, &[], key(ZLIB), &naming());
    assert_eq!(d, TriggerDecision::Defer(vec![key(ZLIB)]));
    let d = decide(true, &[key(ZLIB), key(SIGC)], key(ZLIB), &naming());
    assert_eq!(d, TriggerDecision::Defer(vec![key(SIGC), key(ZLIB)]));
    // Duplicates already in the stored list collapse too.
    let d = decide(true, &[key(ZLIB), key(ZLIB)], key(SIGC), &naming());
    assert_eq!(d, TriggerDecision::Defer(vec![key(SIGC), key(ZLIB)]));
}

#[test]
fn the_end_starts_one_follow_up_with_every_pending_key() {
    assert_eq!(on_execution_end(false, &[], &naming()), None);
    let pending = [key(ZLIB), key(SIGC), key(ZLIB)];
    assert_eq!(on_execution_end(true, &pending, &naming()), None);
    let input = on_execution_end(false, &pending, &naming()).unwrap();
    assert_eq!(input.mode(), Mode::Changed);
    assert_eq!(input.changed_keys(), &[key(SIGC), key(ZLIB)]);
    assert_eq!(input.platforms(), None);
    assert!(input
        .execution()
        .as_str()
        .starts_with("ebfleet-20261124T101500Z-changed-"));
}
