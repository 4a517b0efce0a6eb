use super::*;
use crate::record::tests::{built_outcome, manifest, sha, EXEC};

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
