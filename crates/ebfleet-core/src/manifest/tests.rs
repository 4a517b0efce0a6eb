use super::*;
use crate::record::tests::{built_outcome, manifest, sha, EXEC, M, P};

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

const UNIT_MANIFEST: &str = "amzn-2023_graviton-3/manifests/run-1/3.json";

#[test]
fn a_manifest_is_believed_only_about_its_own_unit() {
    let good = manifest("run-1", 3, built_outcome('b'), 'e');
    good.validate().unwrap();
    good.check_for(UNIT_MANIFEST, &unit()).unwrap();
    let refused = |m: &BatchManifest, key: &str| {
        matches!(
            m.check_for(key, &unit()),
            Err(ManifestError::NotItsUnit { .. })
        )
    };
    // Another key, run or unit index than the unit's.
    assert!(refused(
        &good,
        "amzn-2023_graviton-3/manifests/run-1/4.json"
    ));
    assert!(refused(
        &manifest("run-2", 3, built_outcome('b'), 'e'),
        UNIT_MANIFEST
    ));
    assert!(refused(
        &manifest("run-1", 4, built_outcome('b'), 'e'),
        UNIT_MANIFEST
    ));
    let mut other_platform = good.clone();
    other_platform.platform = "amzn-2023_graviton-4".into();
    assert!(refused(&other_platform, UNIT_MANIFEST));
    // Built from another easyconfig than the unit's.
    assert!(refused(
        &manifest("run-1", 3, built_outcome('b'), 'f'),
        UNIT_MANIFEST
    ));
    // A module the unit does not build.
    let mut extra = good.clone();
    extra.modules[0].module = "OpenSSL/3.0".into();
    assert!(refused(&extra, UNIT_MANIFEST));
    // Keys under the platform's prefixes, but another module's.
    let elsewhere = |tarball: &str, file: &str| Outcome::Built {
        tarball: Tarball {
            key: format!("{P}/{tarball}"),
            size: 1,
            sha256: sha('b'),
        },
        module_file_key: format!("{P}/{file}"),
        duration_s: 1,
        usage: None,
    };
    for (t, f) in [
        (
            "software/OpenSSL/3.0.tar.zst",
            "modules/all/zlib/1.3.1-GCCcore-13.3.0.lua",
        ),
        (
            "software/zlib/1.3.1-GCCcore-13.3.0.tar.zst",
            "modules/all/OpenSSL/3.0.lua",
        ),
    ] {
        let m = manifest("run-1", 3, elsewhere(t, f), 'e');
        m.validate().unwrap();
        assert!(refused(&m, UNIT_MANIFEST), "{t} {f}");
    }
    // A failed build's log under another module's logs.
    let failed = |log: &str| Outcome::Failed {
        class: ErrorClass::CompileError,
        message: "error: x".into(),
        log_key: Some(format!("{P}/logs/{log}")),
    };
    let own = manifest("run-1", 3, failed("zlib/1.3.1-GCCcore-13.3.0/eb.log"), 'e');
    own.check_for(UNIT_MANIFEST, &unit()).unwrap();
    assert!(refused(
        &manifest("run-1", 3, failed("OpenSSL/3.0/eb.log"), 'e'),
        UNIT_MANIFEST
    ));
}
