use super::*;

#[test]
fn only_safe_relative_keys_become_paths() {
    for ok in [
        "hello-1.0.tar.gz",
        "extensions/numpy-1.26.tar.gz",
        "x_1.0+dfsg.orig.tar.xz",
        "v1.0~rc1.zip",
    ] {
        assert_eq!(safe_relative(ok), Some(PathBuf::from(ok)), "{ok}");
    }
    for bad in [
        "",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "x;id",
        "$(id).tgz",
        "a b",
        "x\ny",
        "`id`",
    ] {
        assert_eq!(safe_relative(bad), None, "{bad:?}");
    }
}

#[test]
fn tally_counts_bytes_of_downloads_only() {
    let mut t = Tally::default();
    t.add(Some(10));
    t.add(None);
    t.add(Some(5));
    assert_eq!(
        t,
        Tally {
            downloaded: 2,
            already_present: 1,
            bytes: 15
        }
    );
}

// --- missing needs and leases ---

use crate::envfile::NodeEnv;
use crate::job::Job;
use crate::layout::Layout;
use crate::transfer::{TransferError, UploadOptions};
use aws_sdk_s3::error::ErrorMetadata;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::{NoSuchKey, NotFound};
use aws_sdk_s3::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use ebfleet_aws::s3::Store;
use ebfleet_core::arch::Arch;
use ebfleet_core::layout::{easyconfig_key, module_file_key, tarball_key};
use ebfleet_core::lease::HeldModule;
use ebfleet_core::wire::BatchBuild;
use std::collections::BTreeMap;

const BUCKET: &str = "ebfleet-test";
const P: &str = "amzn-2023_epyc-gen-4";

fn m(s: &str) -> ModuleName {
    s.parse().unwrap()
}

fn batch(needs: &[&str]) -> BatchFile {
    let platform = P.parse().unwrap();
    let easyconfig = "g/greeter/greeter-1.0.eb".parse().unwrap();
    BatchFile {
        execution: "run-1".parse().unwrap(),
        platform,
        arch: Arch::X86_64,
        archspec: "zen4".into(),
        optarch: "GCC:march=znver4".into(),
        cuda_compute_capability: None,
        base: None,
        batch: 3,
        builds: vec![BatchBuild {
            module: m("greeter/1.0"),
            easyconfig_key: easyconfig_key(&easyconfig),
            easyconfig,
            easyconfig_sha256: "e".repeat(64),
            memory_per_job_mib: None,
            optarch: None,
        }],
        needs: needs
            .iter()
            .map(|n| {
                let module = m(n);
                let platform = P.parse().unwrap();
                BatchNeed {
                    tarball_key: tarball_key(&platform, &module),
                    module_file_key: module_file_key(&platform, &module),
                    tarball_sha256: None,
                    from_base: false,
                    module,
                }
            })
            .collect(),
        after: vec![0, 1, 2],
        jobs_halved: 0,
        node: None,
        signing_key: None,
    }
}

fn leases_of(b: &BatchFile) -> BatchLeases {
    BatchLeases {
        execution: b.execution.clone(),
        platform: b.platform.clone(),
        batch: b.batch,
        owner: "run-1#batch-3".into(),
        expires: 1_900_000_000,
        leased: vec![m("greeter/1.0")],
        held: vec![HeldModule {
            module: m("other/1.0"),
            owner: "run-0#batch-0".into(),
            expires: 1_800_000_000,
        }],
        already_built: vec![],
    }
}

fn context(root: &Path, rules: &[&Rule]) -> Context {
    let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()));
    Context {
        job: Job::parse(BUCKET, &format!("plans/run-1/{P}/3.json"), "run-1", P).unwrap(),
        layout: Layout::new(root),
        node: NodeEnv::default(),
        store: Store::new(client, BUCKET),
        // No unit file here names a signing key: no call to KMS.
        kms: ebfleet_aws::kms::Kms::new(mock_client!(aws_sdk_kms, [])),
        jobs: 2,
        upload: UploadOptions::default(),
    }
}

fn head_absent(key: &'static str) -> Rule {
    mock!(Client::head_object)
        .match_requests(move |r| r.bucket() == Some(BUCKET) && r.key() == Some(key))
        .then_error(|| HeadObjectError::NotFound(NotFound::builder().build()))
}

#[test]
fn only_an_absent_tarball_makes_a_need_missing() {
    let key = "k.tar.zst";
    assert_eq!(need_checksum(None, BUCKET, key).unwrap(), None);
    let with = ObjectHead {
        size: 10,
        sha256: Some("a".repeat(64)),
        metadata: BTreeMap::new(),
        version_id: None,
    };
    assert_eq!(
        need_checksum(Some(&with), BUCKET, key).unwrap(),
        Some("a".repeat(64))
    );
    let without = ObjectHead {
        sha256: None,
        ..with
    };
    assert!(matches!(
        need_checksum(Some(&without), BUCKET, key),
        Err(NodeError::Transfer(TransferError::NoChecksum { .. }))
    ));
}

#[tokio::test]
async fn needs_absent_from_the_bucket_are_listed_and_sync_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let hello = head_absent("amzn-2023_epyc-gen-4/software/hello/1.0.tar.zst");
    let zlib = head_absent("amzn-2023_epyc-gen-4/software/zlib/1.3.tar.zst");
    let ctx = context(t.path(), &[&zlib, &hello]);
    let mut tally = Tally::default();
    let missing = needs(&ctx, &batch(&["zlib/1.3", "hello/1.0"]), &mut tally)
        .await
        .unwrap();
    assert_eq!(missing, [m("hello/1.0"), m("zlib/1.3")], "sorted");
    assert_eq!(tally, Tally::default());
    assert_eq!((hello.num_calls(), zlib.num_calls()), (1, 1));
    assert!(!ctx.layout.installed_marker(&m("hello/1.0")).exists());
}

#[tokio::test]
async fn a_need_that_is_there_but_unusable_still_fails_sync() {
    let t = tempfile::tempdir().unwrap();
    let hello = head_absent("amzn-2023_epyc-gen-4/software/hello/1.0.tar.zst");
    // There, but without the sha256 `upload` writes.
    let bare = mock!(Client::head_object)
        .match_requests(|r| r.key() == Some("amzn-2023_epyc-gen-4/software/zlib/1.3.tar.zst"))
        .then_output(|| HeadObjectOutput::builder().content_length(10).build());
    let ctx = context(t.path(), &[&hello, &bare]);
    let err = needs(
        &ctx,
        &batch(&["hello/1.0", "zlib/1.3"]),
        &mut Tally::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, NodeError::Transfer(TransferError::NoChecksum { .. })),
        "{err}"
    );
    // Access denied is no absence either.
    let denied = mock!(Client::head_object).then_error(|| {
        HeadObjectError::generic(
            ErrorMetadata::builder()
                .code("Forbidden")
                .message("Forbidden")
                .build(),
        )
    });
    let ctx = context(t.path(), &[&denied]);
    let err = needs(&ctx, &batch(&["hello/1.0"]), &mut Tally::default())
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::S3(_)), "{err}");
}

fn get_leases(body: Vec<u8>) -> Rule {
    mock!(Client::get_object)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET)
                && r.key() == Some("plans/run-1/amzn-2023_epyc-gen-4/3.leases.json")
        })
        .then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(body.clone()))
                .build()
        })
}

#[tokio::test]
async fn the_batchs_leases_file_is_kept_in_the_state_dir() {
    let t = tempfile::tempdir().unwrap();
    let b = batch(&[]);
    let l = leases_of(&b);
    let rule = get_leases(l.to_json().into_bytes());
    let ctx = context(t.path(), &[&rule]);
    assert_eq!(leases(&ctx, &b).await.unwrap(), Some(l.clone()));
    assert_eq!(rule.num_calls(), 1);
    let kept: BatchLeases = read_json(&ctx.state().leases()).unwrap().unwrap();
    assert_eq!(kept, l);

    // Gone from the bucket on a re-run: no local copy either.
    let none = mock!(Client::get_object)
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let ctx = context(t.path(), &[&none]);
    assert_eq!(leases(&ctx, &b).await.unwrap(), None);
    assert!(!ctx.state().leases().exists());
    assert_eq!(none.num_calls(), 1);
}

#[tokio::test]
async fn another_batchs_or_a_broken_leases_file_is_refused() {
    let b = batch(&[]);
    let mut other_batch = leases_of(&b);
    other_batch.batch = 4;
    let mut other_execution = leases_of(&b);
    other_execution.execution = "run-2".parse().unwrap();
    let mut other_platform = leases_of(&b);
    other_platform.platform = "amzn-2023_graviton-3".parse().unwrap();
    for (what, body) in [
        ("batch", other_batch.to_json()),
        ("execution", other_execution.to_json()),
        ("platform", other_platform.to_json()),
        ("not a leases file", "{\"leased\": []}".to_string()),
        (
            "not a leases file",
            leases_of(&b)
                .to_json()
                .replace("greeter/1.0", "greeter/$(id)"),
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        let rule = get_leases(body.into_bytes());
        let ctx = context(t.path(), &[&rule]);
        let err = leases(&ctx, &b).await.unwrap_err();
        assert!(matches!(err, NodeError::Leases { .. }), "{what}: {err}");
        let text = err.to_string();
        assert!(text.contains(what), "{what}: {text}");
        assert!(text.contains("3.leases.json"), "{text}");
        assert!(!ctx.state().leases().exists(), "{what}: kept");
    }
}
