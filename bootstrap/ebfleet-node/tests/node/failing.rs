//! A build that fails: classified, its log uploaded, nothing of it
//! published, its dependent in the same batch skipped.

use crate::common::*;
use crate::easybuild::{check_manifest, node};
use crate::fixtures;
use ebfleet_core::manifest::Outcome;
use ebfleet_core::record::ErrorClass;

#[tokio::test]
async fn a_failed_build_is_classified_logged_and_not_published() {
    let test = "a_failed_build_is_classified_logged_and_not_published";
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
    let broken = fixtures::broken(&src);
    let dependent = fixtures::needs_broken(&src);
    broken.upload(&store).await;
    dependent.upload(&store).await;
    put_batch(
        &store,
        &batch_file(&execution, 0, &[&broken, &dependent], &[]),
    )
    .await;
    let node = node(t.path(), &bucket, &eb);

    node.ok("sync", &execution, 0);
    let build = node.ok("build", &execution, 0);
    let (b, d) = (&build["modules"][0], &build["modules"][1]);
    assert_eq!(b["status"], "failed", "{build}");
    assert_eq!(b["class"], "compile_error", "{build}");
    let message = b["message"].as_str().unwrap();
    assert!(message.contains("build step"), "{message}");
    assert!(
        message.contains("broken.c") && message.contains("error"),
        "the compiler's line: {message}"
    );
    assert_eq!(d["status"], "skipped", "{build}");
    assert_eq!(d["reason"], "dependency broken/1.0 failed in this batch");
    let tar = node.ok("tar", &execution, 0);
    assert_eq!(
        tar["modules"].as_array().unwrap().len(),
        0,
        "nothing to pack: {tar}"
    );
    let up = node.ok("upload", &execution, 0);
    assert_eq!(
        (
            up["built"].as_u64(),
            up["failed"].as_u64(),
            up["skipped"].as_u64()
        ),
        (Some(0), Some(1), Some(1))
    );

    let m = check_manifest(&store, &execution, 0).await;
    let Outcome::Failed {
        class,
        message,
        log_key,
    } = &m.modules[0].outcome
    else {
        panic!("{:?}", m.modules[0])
    };
    assert_eq!(*class, ErrorClass::CompileError);
    assert!(message.contains("broken.c"), "{message}");
    let log_key = log_key.as_deref().unwrap();
    assert!(
        log_key.starts_with(&format!(
            "{PLATFORM}/logs/broken/1.0/{execution}/easybuild-broken-1.0-"
        )),
        "{log_key}"
    );
    let log = String::from_utf8(store.get_bytes(log_key).await.unwrap()).unwrap();
    assert!(
        log.contains("this is not C"),
        "the uploaded log holds the compiler's output"
    );
    assert!(
        matches!(&m.modules[1].outcome, Outcome::Skipped { reason } if reason.contains("broken/1.0"))
    );
    // Nothing of either module is published: only logs.
    let keys: Vec<String> = store
        .list(&format!("{PLATFORM}/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{PLATFORM}/logs/"))
                || k.starts_with(&format!("{PLATFORM}/manifests/"))),
        "{keys:?}"
    );
    assert!(!keys
        .iter()
        .any(|k| k.contains("/software/") || k.contains("/modules/")));
}
