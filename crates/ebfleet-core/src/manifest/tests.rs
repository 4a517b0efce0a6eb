use super::*;
use crate::record::tests::{built_outcome, manifest, sha, EXEC, M, P};
use std::collections::BTreeMap;

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
fn a_manifest_whose_usage_is_impossible_is_refused() {
    // 42 s on 16 CPUs: at most 688 CPU seconds.
    let v = manifest_json();
    assert_eq!(v["modules"][0]["outcome"]["usage"]["cpu_s"], 300);
    for (field, value) in [("cpu_s", 689u64), ("cpus", 0), ("peak_memory_mib", 1 << 40)] {
        let mut v = manifest_json();
        v["modules"][0]["outcome"]["usage"][field] = value.into();
        let e = read(&v).unwrap_err();
        assert!(matches!(e, ManifestError::BadUsage { .. }), "{field}: {e}");
        assert!(e.to_string().contains(M), "{e}");
    }
    // A node that does not measure says nothing.
    let mut v = manifest_json();
    v["modules"][0]["outcome"]
        .as_object_mut()
        .unwrap()
        .remove("usage");
    assert!(read(&v).is_ok());
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

/// The unit file of `M` on `P`, unit 3 of run-1, from easyconfig `sha('e')`.
fn unit() -> BatchFile {
    serde_json::from_value(serde_json::json!({
        "execution": "run-1", "platform": P, "arch": "aarch64", "archspec": "neoverse_v1",
        "optarch": "GCC:mcpu=neoverse-v1", "cuda_compute_capability": null, "batch": 3,
        "builds": [{"module": M, "easyconfig": "z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb",
                    "easyconfig_key": "easyconfigs/z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb",
                    "easyconfig_sha256": sha('e')}],
        "needs": [], "after": []
    }))
    .unwrap()
}

const UNIT_MANIFEST: &str = "staging/amzn-2023_graviton-3/run-1/3/manifest.json";
const STAGING: &str = "staging/amzn-2023_graviton-3/run-1/3";

/// `M` built, as its node reports it: at the unit's staged keys.
fn staged(c: char) -> Outcome {
    Outcome::Built {
        tarball: Tarball {
            key: format!("{STAGING}/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst"),
            size: 123_456,
            sha256: sha(c),
            version_id: None,
            signature: None,
        },
        module_file_key: format!("{STAGING}/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua"),
        duration_s: 42,
        usage: None,
    }
}

/// `M` failed, its log at `log` under the unit's staged logs.
fn failed(log: &str) -> Outcome {
    Outcome::Failed {
        class: ErrorClass::CompileError,
        message: "error: x".into(),
        log_key: Some(format!("{STAGING}/logs/{log}")),
    }
}

#[test]
fn a_manifest_is_believed_only_about_its_own_unit() {
    let good = manifest("run-1", 3, staged('b'), 'e');
    good.validate().unwrap();
    good.check_for(UNIT_MANIFEST, &unit()).unwrap();
    let refused = |m: &BatchManifest, key: &str| {
        matches!(
            m.check_for(key, &unit()),
            Err(ManifestError::NotItsUnit { .. })
        )
    };
    // Another key, run or unit index than the unit's; the platform's
    // manifest key (Record writes that one, never a node).
    for key in [
        "staging/amzn-2023_graviton-3/run-1/4/manifest.json",
        "amzn-2023_graviton-3/manifests/run-1/3.json",
    ] {
        assert!(refused(&good, key), "{key}");
    }
    assert!(refused(
        &manifest("run-2", 3, staged('b'), 'e'),
        UNIT_MANIFEST
    ));
    assert!(refused(
        &manifest("run-1", 4, staged('b'), 'e'),
        UNIT_MANIFEST
    ));
    let mut other_platform = good.clone();
    other_platform.platform = "amzn-2023_graviton-4".into();
    assert!(refused(&other_platform, UNIT_MANIFEST));
    // Built from another easyconfig than the unit's.
    assert!(refused(
        &manifest("run-1", 3, staged('b'), 'f'),
        UNIT_MANIFEST
    ));
    // A module the unit does not build.
    let mut extra = good.clone();
    extra.modules[0].module = "OpenSSL/3.0".into();
    assert!(refused(&extra, UNIT_MANIFEST));
    // Keys of another module, of another unit's staging, or the
    // platform's own keys (a node never writes those).
    let elsewhere = |tarball: &str, file: &str| Outcome::Built {
        tarball: Tarball {
            key: tarball.into(),
            size: 1,
            sha256: sha('b'),
            version_id: None,
            signature: None,
        },
        module_file_key: file.into(),
        duration_s: 1,
        usage: None,
    };
    let (zlib_t, zlib_f) = (
        "software/zlib/1.3.1-GCCcore-13.3.0.tar.zst",
        "modules/all/zlib/1.3.1-GCCcore-13.3.0.lua",
    );
    for (t, f) in [
        (
            format!("{STAGING}/software/OpenSSL/3.0.tar.zst"),
            format!("{STAGING}/{zlib_f}"),
        ),
        (
            format!("{STAGING}/{zlib_t}"),
            format!("{STAGING}/modules/all/OpenSSL/3.0.lua"),
        ),
        (
            format!("staging/{P}/run-1/4/{zlib_t}"),
            format!("{STAGING}/{zlib_f}"),
        ),
        (format!("{P}/{zlib_t}"), format!("{P}/{zlib_f}")),
    ] {
        let m = manifest("run-1", 3, elsewhere(&t, &f), 'e');
        m.validate().unwrap();
        assert!(refused(&m, UNIT_MANIFEST), "{t} {f}");
    }
    // A failed build's log: its own, not another module's or a nested key.
    let own = manifest("run-1", 3, failed("zlib/1.3.1-GCCcore-13.3.0/eb.log"), 'e');
    own.check_for(UNIT_MANIFEST, &unit()).unwrap();
    for log in ["OpenSSL/3.0/eb.log", "zlib/1.3.1-GCCcore-13.3.0/x/eb.log"] {
        assert!(
            refused(&manifest("run-1", 3, failed(log), 'e'), UNIT_MANIFEST),
            "{log}"
        );
    }
}

#[test]
fn the_published_manifest_names_the_platforms_keys_and_what_record_found() {
    let staged = manifest("run-1", 3, staged('b'), 'e');
    let promoted_tarball = Tarball {
        key: format!("{P}/software/zlib/1.3.1-GCCcore-13.3.0.tar.zst"),
        size: 99,
        sha256: sha('c'),
        version_id: Some("v7".into()),
        signature: None,
    };
    let verified = BTreeMap::from([(M.to_string(), Verified::Tarball(promoted_tarball.clone()))]);
    let published = staged.promoted(&verified);
    published.validate().unwrap();
    match &published.modules[0].outcome {
        Outcome::Built {
            tarball,
            module_file_key,
            ..
        } => {
            assert_eq!(tarball, &promoted_tarball);
            assert_eq!(
                module_file_key,
                &format!("{P}/modules/all/zlib/1.3.1-GCCcore-13.3.0.lua")
            );
        }
        o => panic!("{o:?}"),
    }
    // Refused, or never verified: a failure saying so, nothing published.
    for (verified, says) in [
        (
            BTreeMap::from([(M.to_string(), Verified::Refused("its sha256 is x".into()))]),
            "refused: its sha256 is x",
        ),
        (BTreeMap::new(), "not verified"),
    ] {
        let published = staged.promoted(&verified);
        assert!(
            matches!(&published.modules[0].outcome,
                Outcome::Failed { message, log_key: None, .. } if message.contains(says)),
            "{:?}",
            published.modules[0].outcome
        );
    }
    // A failed build's log: where Record copies it, under this run's logs
    // of the module.
    let failed = manifest("run-1", 3, failed("zlib/1.3.1-GCCcore-13.3.0/eb.log"), 'e');
    let published = failed.promoted(&BTreeMap::new());
    assert!(
        matches!(&published.modules[0].outcome, Outcome::Failed { log_key: Some(k), .. }
            if k == &format!("{P}/logs/zlib/1.3.1-GCCcore-13.3.0/run-1/eb.log")),
        "{:?}",
        published.modules[0].outcome
    );
}
