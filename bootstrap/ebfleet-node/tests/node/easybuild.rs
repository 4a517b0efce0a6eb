//! Two modules with real EasyBuild and Lmod: `hello` built, packed and
//! uploaded from one root; a wiped (fresh) root at the same path syncs
//! only hello's closure and builds `greeter` against it.

use crate::common::*;
use crate::fixtures;
use ebfleet_aws::kms::{signature_text, Kms};
use ebfleet_aws::s3::Store;
use ebfleet_control::record::promote::promote;
use ebfleet_control::Env;
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::layout::batch_key;
use ebfleet_core::manifest::{BatchManifest, Outcome};
use ebfleet_core::wire::BatchFile;
use serde_json::Value;
use std::path::Path;

/// node.env for a test node: EasyBuild from the test's venv, Debian's Lmod.
pub fn node_env(eb: &Path) -> String {
    format!(
        "# written by the test, as bootstrap.sh would\n\
         EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES=1\n\
         LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod\n\
         EBFLEET_EB={}\n\
         EBFLEET_ARCHSPEC={ARCHSPEC}\n\
         EBFLEET_INSTANCE_TYPE=local-test\n",
        eb.display()
    )
}

pub fn node(dir: &Path, bucket: &str, eb: &Path) -> Node {
    let mut n = Node::new(dir, bucket, &node_env(eb));
    n.path_prefix = eb.parent().map(Path::to_path_buf);
    n
}

/// Record, with its own code: the staged manifest of unit `unit` checked
/// against its unit file, its artifacts verified and promoted. Then the
/// published manifest checked against the objects it names: what the
/// record Lambda accepts, with sizes and checksums equal to S3's.
pub async fn check_manifest(store: &Store, execution: &str, unit: usize) -> BatchManifest {
    let (execution, platform) = (execution.parse().unwrap(), PLATFORM.parse().unwrap());
    let unit: BatchFile = store
        .get_json(&batch_key(&execution, &platform, unit))
        .await
        .unwrap();
    let key = unit.staged_manifest_key();
    let text = String::from_utf8(store.get_bytes(&key).await.unwrap()).unwrap();
    let staged = BatchManifest::from_json(&text).expect("the record Lambda's validation");
    staged
        .check_for(&key, &unit)
        .expect("believed about its unit");
    let conf = ebfleet_aws::load_config().await;
    let env = Env::from_conf(&conf, store.bucket(), "unused");
    let m = promote(&env, &unit, &staged, SIGNING_KEY)
        .await
        .expect("promoted");
    assert_eq!(
        store
            .get_json::<BatchManifest>(&unit.manifest_key())
            .await
            .unwrap(),
        m,
        "the published manifest"
    );
    for e in &m.modules {
        if let Outcome::Built {
            tarball,
            module_file_key,
            ..
        } = &e.outcome
        {
            let body = store.get_bytes(&tarball.key).await.unwrap();
            assert_eq!(body.len() as u64, tarball.size, "{}", tarball.key);
            assert_eq!(sha256_hex(&body), tarball.sha256, "{}", tarball.key);
            let head = store.head(&tarball.key).await.unwrap().unwrap();
            assert_eq!(head.sha256.as_deref(), Some(tarball.sha256.as_str()));
            let lua = store.get_bytes(module_file_key).await.unwrap();
            let head = store.head(module_file_key).await.unwrap().unwrap();
            assert_eq!(head.sha256, Some(sha256_hex(&lua)), "{module_file_key}");
            assert!(
                String::from_utf8_lossy(&lua).contains("EBROOT"),
                "{module_file_key}"
            );
        }
    }
    m
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

#[tokio::test]
async fn build_upload_then_a_fresh_root_syncs_only_the_closure_and_builds_on_it() {
    let test = "build_upload_then_a_fresh_root_syncs_only_the_closure_and_builds_on_it";
    let Some(EbTest {
        eb,
        dir: t,
        src,
        bucket,
        s3,
        store,
        execution,
    }) = eb_test(test).await
    else {
        return;
    };
    let (hello, hello_tar) = fixtures::hello(&src);
    let greeter = fixtures::greeter(&src);
    hello.upload(&store).await;
    greeter.upload(&store).await;
    store
        .put_bytes(
            "sources/h/hello/hello-1.0.tar",
            std::fs::read(&hello_tar).unwrap(),
            "application/x-tar",
        )
        .await
        .unwrap();
    // Another module of the platform, which neither batch needs.
    store
        .put_bytes(
            &format!("{PLATFORM}/software/decoy/1.0.tar.zst"),
            vec![0; 4096],
            "application/zstd",
        )
        .await
        .unwrap();
    put_batch(&store, &batch_file(&execution, 0, &[&hello], &[])).await;
    put_batch(
        &store,
        &batch_file(&execution, 1, &[&greeter], &["hello/1.0"]),
    )
    .await;
    let node = node(t.path(), &bucket, &eb);

    // Batch 0 on the first root.
    let sync = node.ok("sync", &execution, 0);
    assert_eq!(n(&sync, &["easyconfigs", "downloaded"]), 1);
    assert_eq!(n(&sync, &["needs", "downloaded"]), 0);
    assert_eq!(
        n(&sync, &["sources", "downloaded"]),
        1,
        "hello's source from the bucket"
    );
    let build = node.ok("build", &execution, 0);
    assert_eq!(build["modules"][0]["status"], "built", "{build}");
    assert_eq!(build["eb_version"], "5.4.1");
    let tar = node.ok("tar", &execution, 0);
    assert_eq!(tar["modules"][0]["status"], "packed", "{tar}");
    let up = node.ok("upload", &execution, 0);
    assert_eq!(n(&up, &["tarballs", "sent"]), 1);
    assert_eq!(n(&up, &["module_files", "sent"]), 1);
    assert_eq!(n(&up, &["manifest", "sent"]), 1);
    assert!(
        n(&up, &["logs", "sent"]) >= 2,
        "eb's output and EasyBuild's log: {up}"
    );
    let m0 = check_manifest(&store, &execution, 0).await;
    assert_eq!(m0.eb_version, "5.4.1");
    assert_eq!(
        (m0.instance_type.as_str(), m0.archspec.as_str()),
        ("local-test", ARCHSPEC)
    );
    let Outcome::Built { tarball, .. } = &m0.modules[0].outcome else {
        panic!("{:?}", m0.modules[0])
    };
    assert_eq!(
        tarball.key,
        format!("{PLATFORM}/software/hello/1.0.tar.zst")
    );
    assert_eq!(
        m0.modules[0].easyconfig_sha256,
        sha256_hex(hello.text.as_bytes())
    );

    // Upload again: nothing is sent twice, nothing is written twice.
    let before = versions(&s3, &bucket).await;
    let again = node.ok("upload", &execution, 0);
    for kind in ["tarballs", "module_files", "logs", "manifest"] {
        assert_eq!(n(&again, &[kind, "sent"]), 0, "{kind}: {again}");
        assert_eq!(
            n(&again, &[kind, "already_there"]),
            n(&up, &[kind, "sent"]),
            "{kind}"
        );
    }
    let after = versions(&s3, &bucket).await;
    assert_eq!(before, after);
    assert!(after.iter().all(|(_, v)| *v == 1), "{after:?}");

    // A fresh root at the same path (the tarballs hold it): batch 1.
    std::fs::remove_dir_all(&node.root).unwrap();
    let sync = node.ok("sync", &execution, 1);
    assert_eq!(n(&sync, &["needs", "downloaded"]), 1, "{sync}");
    let tarball_size = store.head(&tarball.key).await.unwrap().unwrap().size;
    let lua_size = store
        .head(&format!("{PLATFORM}/modules/all/hello/1.0.lua"))
        .await
        .unwrap()
        .unwrap()
        .size;
    assert_eq!(
        n(&sync, &["needs", "bytes"]),
        tarball_size + lua_size,
        "only hello's tarball and module file"
    );
    assert_eq!(
        n(&sync, &["bytes_downloaded"]),
        tarball_size + lua_size + greeter.text.len() as u64,
        "and greeter's easyconfig: nothing else (no decoy, no sources)"
    );
    let software: Vec<String> = tree(&node.root.join("software"))
        .into_iter()
        .filter(|p| p.matches('/').count() == 1)
        .collect();
    assert_eq!(software, ["hello/1.0"], "only the closure is installed");
    assert!(node.root.join("modules/all/hello/1.0.lua").is_file());
    // Sync again: nothing to download.
    let again = node.ok("sync", &execution, 1);
    assert_eq!(n(&again, &["bytes_downloaded"]), 0, "{again}");
    assert_eq!(n(&again, &["needs", "already_present"]), 1);
    // A crash between unpacking and the marker: the module is fetched and
    // unpacked again, nothing else.
    std::fs::remove_file(node.root.join("ebfleet/installed/hello/1.0.json")).unwrap();
    std::fs::write(node.root.join("software/hello/1.0/half-written"), b"x").unwrap();
    let again = node.ok("sync", &execution, 1);
    assert_eq!(n(&again, &["needs", "downloaded"]), 1, "{again}");
    assert_eq!(n(&again, &["bytes_downloaded"]), tarball_size + lua_size);
    assert!(!node.root.join("software/hello/1.0/half-written").exists());

    let build = node.ok("build", &execution, 1);
    assert_eq!(build["modules"][0]["status"], "built", "{build}");
    // Build again: the recorded outcome stands, eb does not run again.
    let eb_output = node.root.join(format!(
        "ebfleet/{execution}/{PLATFORM}/1/logs/greeter/1.0/eb-output.log"
    ));
    let before = std::fs::metadata(&eb_output).unwrap().modified().unwrap();
    let rebuilt = node.ok("build", &execution, 1);
    assert_eq!(rebuilt["modules"], build["modules"]);
    assert_eq!(
        std::fs::metadata(&eb_output).unwrap().modified().unwrap(),
        before
    );
    // greeter compiled against the synced libhello and runs it.
    let out = std::process::Command::new(node.root.join("software/greeter/1.0/bin/greet"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "greeter says: hello from libhello 1.0\n"
    );
    let logs = node.root.join(format!(
        "ebfleet/{execution}/{PLATFORM}/1/logs/greeter/1.0/eb-output.log"
    ));
    let output = std::fs::read_to_string(&logs).unwrap();
    // EasyBuild loaded the synced module for the build and the sanity
    // check ran hello's program from it.
    assert!(
        output.contains("loading modules for (runtime) dependencies:\n  >>  * hello/1.0"),
        "{output}"
    );
    assert!(
        output.contains("result for command 'hello': OK"),
        "{output}"
    );
    let lua = std::fs::read_to_string(node.root.join("modules/all/greeter/1.0.lua")).unwrap();
    assert!(lua.contains("depends_on(\"hello/1.0\")"), "{lua}");
    node.ok("tar", &execution, 1);
    let up = node.ok("upload", &execution, 1);
    assert_eq!(
        n(&up, &["sources", "sent"]),
        1,
        "greeter's source, fetched by EasyBuild: {up}"
    );
    let m1 = check_manifest(&store, &execution, 1).await;
    assert!(matches!(m1.modules[0].outcome, Outcome::Built { .. }));
    let src = store
        .get_bytes("sources/g/greeter/greeter-1.0.tar")
        .await
        .unwrap();
    let head = store
        .head("sources/g/greeter/greeter-1.0.tar")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.sha256, Some(sha256_hex(&src)));
    // Uploading batch 1 published hello nothing again.
    assert!(versions(&s3, &bucket).await.iter().all(|(_, v)| *v == 1));

    let genuine = store.get_bytes(&tarball.key).await.unwrap();
    // A tampered tarball: hello's rewritten with other bytes and their own
    // sha256 as its metadata, as a hostile node could. A unit file that
    // carries the record's sha256 (the Plan and the scheduler put it there)
    // refuses it at sync, and nothing is unpacked.
    let mut tampered = batch_file(&execution, 2, &[&greeter], &["hello/1.0"]);
    tampered.needs[0].tarball_sha256 = Some(tarball.sha256.clone());
    put_batch(&store, &tampered).await;
    let evil = b"not hello's tarball".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key(&tarball.key)
        .body(evil.clone().into())
        .metadata("sha256", sha256_hex(&evil))
        .send()
        .await
        .unwrap();
    std::fs::remove_dir_all(&node.root).unwrap();
    let refused = node.run("sync", &execution, 2);
    assert!(!refused.ok, "a tampered tarball was synced");
    assert!(
        refused.stderr.contains("not the tarball that was built"),
        "{}",
        refused.stderr
    );
    assert!(
        !node.root.join("software/hello").exists(),
        "nothing of it unpacked"
    );

    // hello's own bytes and sha256 put back by someone who may write the
    // platform's prefix, but not signed by the stack's key, or signed for
    // another key: refused before anything is downloaded.
    let kms = Kms::from_conf(&ebfleet_aws::load_config().await);
    let elsewhere = kms
        .sign(
            SIGNING_KEY,
            &ebfleet_core::record::tarball_statement("elsewhere.tar.zst", &tarball.sha256),
        )
        .await
        .unwrap();
    for (signature, says) in [
        (None, "carries no signature"),
        (Some(signature_text(&elsewhere)), "does not verify"),
    ] {
        let mut put = s3
            .put_object()
            .bucket(&bucket)
            .key(&tarball.key)
            .body(genuine.clone().into())
            .metadata("sha256", tarball.sha256.clone());
        if let Some(sig) = signature {
            put = put.metadata("signature", sig);
        }
        put.send().await.unwrap();
        let refused = node.run("sync", &execution, 2);
        assert!(!refused.ok, "an unsigned tarball was synced");
        assert!(refused.stderr.contains(says), "{}", refused.stderr);
        assert!(!node.root.join("software/hello").exists(), "unpacked");
    }
}
