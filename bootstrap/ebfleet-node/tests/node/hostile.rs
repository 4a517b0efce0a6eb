//! Hostile input is refused with a clear error before anything runs:
//! `EBFLEET_EB` points at a script that would leave a marker, and the node's
//! root must stay empty.

use crate::common::*;
use ebfleet_aws::s3::Store;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn hostile_batches_and_arguments_are_refused_and_run_nothing() {
    let Some(conf) = moto("hostile_batches_and_arguments_are_refused_and_run_nothing").await else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let marker = t.path().join("eb-ran");
    let fake_eb = t.path().join("eb");
    std::fs::write(
        &fake_eb,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake_eb, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (bucket, _s3) = bucket(&conf).await;
    let store = Store::from_conf(&conf, &bucket);
    let node = Node::new(
        t.path(),
        &bucket,
        &format!(
            "EBFLEET_EB={}\nEBFLEET_ARCHSPEC={ARCHSPEC}\n",
            fake_eb.display()
        ),
    );
    let execution = unique("run");
    let hello = Easyconfig::new("hello/1.0", "name = 'hello'\n".into());
    hello.upload(&store).await;
    let good = serde_json::to_value(batch_file(&execution, 1, &[&hello], &["zlib/1.3.1"])).unwrap();
    let key = format!("plans/{execution}/{PLATFORM}/1.json");

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "; in a module",
            edit(&|v| v["builds"][0]["module"] = json!("hello/1.0;touch /tmp/x")),
            "invalid module name",
        ),
        (
            "$(…) in a module",
            edit(&|v| v["builds"][0]["module"] = json!("$(touch x)/1.0")),
            "invalid module name",
        ),
        (
            "backticks",
            edit(&|v| v["needs"][0]["module"] = json!("zlib/`id`")),
            "invalid module name",
        ),
        (
            ".. in a module",
            edit(&|v| v["builds"][0]["module"] = json!("../../etc/passwd")),
            "invalid module name",
        ),
        (
            "newline",
            edit(&|v| v["builds"][0]["module"] = json!("hello/1.0\nrm")),
            "invalid module name",
        ),
        (
            "absolute module",
            edit(&|v| v["builds"][0]["module"] = json!("/hello/1.0")),
            "invalid module name",
        ),
        (
            "absolute easyconfig",
            edit(&|v| v["builds"][0]["easyconfig"] = json!("/etc/hello-1.0.eb")),
            "invalid easyconfig path",
        ),
        (
            ".. easyconfig",
            edit(&|v| v["builds"][0]["easyconfig"] = json!("h/hello/../../hello-1.0.eb")),
            "invalid easyconfig path",
        ),
        (
            "tarball key outside the layout",
            edit(&|v| {
                v["needs"][0]["tarball_key"] = json!("elsewhere/software/zlib/1.3.1.tar.zst")
            }),
            "tarball_key of zlib/1.3.1",
        ),
        (
            "easyconfig key outside the layout",
            edit(&|v| v["builds"][0]["easyconfig_key"] = json!("easyconfigs/../secrets.eb")),
            "easyconfig_key of hello/1.0",
        ),
        (
            "optarch with $()",
            edit(&|v| v["optarch"] = json!("GCC:march=$(reboot)")),
            "invalid optarch",
        ),
        (
            "another execution",
            edit(&|v| v["execution"] = json!("run-other")),
            "its execution is run-other",
        ),
        (
            "another batch",
            edit(&|v| {
                v["batch"] = json!(0);
                v["after"] = json!([]);
            }),
            "its batch is 0",
        ),
        (
            "another module's easyconfig",
            edit(&|v| v["builds"][0]["module"] = json!("hello/2.0")),
            "which is not its easyconfig",
        ),
    ];
    for (what, file, needle) in &cases {
        store.put_json(&key, file).await.unwrap();
        for step in ["sync", "build"] {
            let r = node.run(step, &execution, 1);
            assert!(!r.ok, "{what}: {step} succeeded");
            assert!(r.stderr.contains("refused"), "{what}: {step}: {}", r.stderr);
            assert!(
                r.stderr.contains(needle),
                "{what}: {step}: expected {needle:?} in {}",
                r.stderr
            );
            assert!(!marker.exists(), "{what}: {step} ran eb");
            assert!(
                tree(&node.root).is_empty(),
                "{what}: {step} wrote {:?}",
                tree(&node.root)
            );
        }
    }

    // Hostile command lines, with a good batch file in place.
    store.put_json(&key, &good).await.unwrap();
    let bad_args: [[&str; 4]; 6] = [
        ["b;touch x", &key, &execution, PLATFORM],
        [&bucket, "plans/../../etc/passwd.json", &execution, PLATFORM],
        [&bucket, &key, "$(touch x)", PLATFORM],
        [&bucket, &key, &execution, "amzn-2023_epyc\n-gen-4"],
        [
            &bucket,
            "/plans/x/amzn-2023_epyc-gen-4/1.json",
            &execution,
            PLATFORM,
        ],
        [
            &bucket,
            &format!("plans/{execution}/amzn-2023_epyc-gen-3/1.json"),
            &execution,
            PLATFORM,
        ],
    ];
    for [b, k, e, p] in bad_args {
        for step in ["sync", "build", "tar", "upload"] {
            let r = node.run_args(&[
                step,
                "--bucket",
                b,
                "--batch",
                k,
                "--execution",
                e,
                "--platform",
                p,
            ]);
            assert!(!r.ok, "{step} {b:?} {k:?} {e:?} {p:?}");
            assert!(r.stderr.contains("--"), "names the argument: {}", r.stderr);
            assert!(!marker.exists() && tree(&node.root).is_empty());
        }
    }
    // The good batch goes through validation (and then needs sync first).
    let r = node.run("build", &execution, 1);
    assert!(!r.ok && r.stderr.contains("run sync first"), "{}", r.stderr);
    assert!(!marker.exists());
}
