//! What a batch does not build, with real EasyBuild: a module the batch's
//! leases file leaves to another execution, and a need an earlier batch
//! never uploaded. Either way its dependents are skipped with a reason and
//! the independent module of the batch is still built and published.

use crate::common::*;
use crate::easybuild::{check_manifest, node};
use crate::fixtures;
use ebfleet_aws::s3::Store;
use ebfleet_core::layout::tarball_key;
use ebfleet_core::lease::{leases_key, BatchLeases, HeldModule};
use ebfleet_core::manifest::{BatchManifest, Outcome};
use serde_json::Value;

fn status<'a>(build: &'a Value, module: &str) -> &'a Value {
    build["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == module)
        .unwrap_or_else(|| panic!("{module} not in {build}"))
}

fn skipped_reason<'a>(m: &'a BatchManifest, module: &str) -> &'a str {
    let e = m.modules.iter().find(|e| e.module == module).unwrap();
    match &e.outcome {
        Outcome::Skipped { reason } => reason,
        other => panic!("{module}: {other:?}"),
    }
}

fn is_built(m: &BatchManifest, module: &str) -> bool {
    m.modules
        .iter()
        .any(|e| e.module == module && matches!(e.outcome, Outcome::Built { .. }))
}

/// Keys of the platform's software in the bucket.
async fn software(store: &Store) -> Vec<String> {
    store
        .list(&format!("{PLATFORM}/software/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test]
async fn a_module_leased_to_another_execution_is_skipped_with_its_dependents() {
    let test = "a_module_leased_to_another_execution_is_skipped_with_its_dependents";
    let Some(EbTest {
        eb,
        dir: t,
        src,
        bucket,
        s3: _,
        store,
        execution,
    }) = eb_test(test).await
    else {
        return;
    };
    let (hello, hello_tar) = fixtures::hello(&src);
    let greeter = fixtures::greeter(&src);
    let solo = fixtures::solo(&src);
    for e in [&hello, &greeter, &solo] {
        e.upload(&store).await;
    }
    // hello could be built here (its source is in the bucket): only the
    // lease stops it.
    store
        .put_bytes(
            "sources/h/hello/hello-1.0.tar",
            std::fs::read(&hello_tar).unwrap(),
            "application/x-tar",
        )
        .await
        .unwrap();
    let f = batch_file(&execution, 0, &[&hello, &greeter, &solo], &[]);
    put_batch(&store, &f).await;
    let lkey = leases_key(&f.execution, &f.platform, f.batch);
    let leases = BatchLeases {
        execution: f.execution.clone(),
        platform: f.platform.clone(),
        batch: 0,
        owner: format!("{execution}#batch-0"),
        expires: 4_000_000_000,
        leased: vec![greeter.module.clone(), solo.module.clone()],
        held: vec![HeldModule {
            module: hello.module.clone(),
            owner: "other-run#batch-0".into(),
            expires: 4_000_000_000,
        }],
        already_built: vec![],
    };
    let node = node(t.path(), &bucket, &eb);

    // Synced once before the leases file was there (every module could
    // be built then)...
    let before = node.ok("sync", &execution, 0);
    assert_eq!(before["leases_key"], Value::Null, "{before}");
    // ...then again with another batch's leases file: refused, and build
    // must not go by the first sync.
    let mut wrong = leases.clone();
    wrong.batch = 1;
    store
        .put_bytes(&lkey, wrong.to_json().into_bytes(), "application/json")
        .await
        .unwrap();
    let r = node.run("sync", &execution, 0);
    assert!(!r.ok, "sync took another batch's leases");
    assert!(
        r.stderr.contains("refused") && r.stderr.contains("batch"),
        "{}",
        r.stderr
    );
    let r = node.run("build", &execution, 0);
    assert!(!r.ok && r.stderr.contains("run sync first"), "{}", r.stderr);

    store
        .put_bytes(&lkey, leases.to_json().into_bytes(), "application/json")
        .await
        .unwrap();
    let sync = node.ok("sync", &execution, 0);
    assert_eq!(sync["leases_key"], lkey.as_str(), "{sync}");
    let state = node.root.join(format!("ebfleet/{execution}/{PLATFORM}/0"));
    let kept: BatchLeases =
        serde_json::from_str(&std::fs::read_to_string(state.join("leases.json")).unwrap()).unwrap();
    assert_eq!(kept, leases);

    let build = node.ok("build", &execution, 0);
    let h = status(&build, "hello/1.0");
    assert_eq!(h["status"], "skipped", "{build}");
    let why = h["reason"].as_str().unwrap();
    assert!(
        why.contains("leased to other-run#batch-0"),
        "names the holder: {why}"
    );
    let g = status(&build, "greeter/1.0");
    assert_eq!(g["status"], "skipped", "{build}");
    let gwhy = g["reason"].as_str().unwrap();
    assert_eq!(
        gwhy,
        format!("dependency hello/1.0 was skipped in this batch: {why}")
    );
    assert_eq!(status(&build, "solo/1.0")["status"], "built", "{build}");
    // eb never ran for hello: no logs, nothing installed.
    assert!(!state.join("logs/hello").exists());
    assert!(!node.root.join("software/hello").exists());
    assert!(!node.root.join("modules/all/hello").exists());
    // greeter's eb ran and stopped at the missing dependency.
    let out = std::fs::read_to_string(state.join("logs/greeter/1.0/eb-output.log")).unwrap();
    assert!(out.contains("Missing modules for dependencies"), "{out}");

    let tar = node.ok("tar", &execution, 0);
    assert_eq!(tar["modules"].as_array().unwrap().len(), 1, "{tar}");
    let up = node.ok("upload", &execution, 0);
    assert_eq!(
        (
            up["built"].as_u64(),
            up["failed"].as_u64(),
            up["skipped"].as_u64()
        ),
        (Some(1), Some(0), Some(2)),
        "{up}"
    );
    let m = check_manifest(&store, &execution, 0).await;
    assert_eq!(skipped_reason(&m, "hello/1.0"), why);
    assert_eq!(skipped_reason(&m, "greeter/1.0"), gwhy);
    assert!(is_built(&m, "solo/1.0"), "{m:?}");
    assert_eq!(
        software(&store).await,
        [tarball_key(&f.platform, &solo.module)],
        "only solo is published"
    );
}

#[tokio::test]
async fn a_need_missing_from_the_bucket_skips_its_dependents_only() {
    let test = "a_need_missing_from_the_bucket_skips_its_dependents_only";
    let Some(EbTest {
        eb,
        dir: t,
        src,
        bucket,
        s3: _,
        store,
        execution,
    }) = eb_test(test).await
    else {
        return;
    };
    let greeter = fixtures::greeter(&src);
    let solo = fixtures::solo(&src);
    greeter.upload(&store).await;
    solo.upload(&store).await;
    // hello failed in batch 0, so its tarball was never uploaded.
    let f = batch_file(&execution, 1, &[&greeter, &solo], &["hello/1.0"]);
    put_batch(&store, &f).await;
    let node = node(t.path(), &bucket, &eb);

    let sync = node.ok("sync", &execution, 1);
    assert_eq!(
        sync["missing_needs"],
        serde_json::json!(["hello/1.0"]),
        "{sync}"
    );
    assert_eq!(sync["needs"]["downloaded"], 0, "{sync}");
    assert_eq!(sync["leases_key"], Value::Null, "no leases file: {sync}");
    let build = node.ok("build", &execution, 1);
    let g = status(&build, "greeter/1.0");
    assert_eq!(g["status"], "skipped", "{build}");
    assert_eq!(
        g["reason"],
        "dependency hello/1.0 is not in the bucket (not built by an earlier batch)"
    );
    assert_eq!(status(&build, "solo/1.0")["status"], "built", "{build}");
    node.ok("tar", &execution, 1);
    let up = node.ok("upload", &execution, 1);
    assert_eq!(
        (
            up["built"].as_u64(),
            up["failed"].as_u64(),
            up["skipped"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{up}"
    );
    let m = check_manifest(&store, &execution, 1).await;
    assert!(skipped_reason(&m, "greeter/1.0").contains("hello/1.0 is not in the bucket"));
    assert!(is_built(&m, "solo/1.0"), "{m:?}");
    assert_eq!(
        software(&store).await,
        [tarball_key(&f.platform, &solo.module)]
    );

    // Only absence is forgiven: a need that is there without the sha256
    // `upload` writes still fails sync.
    store
        .put_bytes(
            &format!("{PLATFORM}/software/hello/1.0.tar.zst"),
            vec![0; 64],
            "application/zstd",
        )
        .await
        .unwrap();
    let r = node.run("sync", &execution, 1);
    assert!(!r.ok, "sync accepted a need without a checksum");
    assert!(r.stderr.contains("hello/1.0.tar.zst"), "{}", r.stderr);
}
