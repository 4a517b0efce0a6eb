//! The S3 adapter against `aws-smithy-mocks`: each test checks the request
//! (bucket, key, prefix, continuation) as well as the answer, so a wrong
//! adapter fails.

use super::*;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::types::error::NoSuchKey;
use aws_sdk_s3::types::Object;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::body::SdkBody;
use ebfleet_core::manifest::{BatchManifest, ManifestEntry, Outcome, MANIFEST_FORMAT};
use std::time::Duration;

const BUCKET: &str = "ebfleet-test";

fn store(client: Client) -> Store {
    Store::new(client, BUCKET)
}

fn object(key: &str, etag: &str, size: i64) -> Object {
    Object::builder().key(key).e_tag(etag).size(size).build()
}

/// An S3 error answer, as S3 sends it.
fn s3_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <Error><Code>{code}</Code><Message>{message}</Message>\
             <RequestId>4442587FB7D0A2F9</RequestId></Error>"
        )),
    )
}

fn no_retries(c: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    c.retry_config(RetryConfig::disabled())
}

fn manifest() -> BatchManifest {
    BatchManifest {
        format: MANIFEST_FORMAT,
        execution: "run-1".into(),
        platform: "amzn-2023_graviton-3".into(),
        batch: 0,
        instance_type: "c7g.4xlarge".into(),
        archspec: "neoverse_v1".into(),
        eb_version: "5.4.1".into(),
        started: 1_000,
        finished: 1_100,
        modules: vec![ManifestEntry {
            module: "zlib/1.3.1-GCCcore-13.3.0".into(),
            easyconfig_sha256: "a".repeat(64),
            outcome: Outcome::Skipped {
                reason: "dependency failed".into(),
            },
        }],
    }
}

#[tokio::test]
async fn list_easyconfigs_reads_every_page_and_keeps_only_eb_files() {
    let first = mock!(Client::list_objects_v2)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET)
                && r.prefix() == Some("easyconfigs/")
                && r.continuation_token().is_none()
        })
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(object("easyconfigs/z/zlib/zlib-1.3.1.eb", "\"e1\"", 1_234))
                .contents(object(
                    "easyconfigs/z/zlib/zlib-1.3.1_fix.patch",
                    "\"p\"",
                    99,
                ))
                .is_truncated(true)
                .next_continuation_token("page-2")
                .build()
        });
    let second = mock!(Client::list_objects_v2)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET)
                && r.prefix() == Some("easyconfigs/")
                && r.continuation_token() == Some("page-2")
        })
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(object(
                    "easyconfigs/p/Python/Python-3.12.3-GCCcore-13.3.0.eb",
                    "\"e2\"",
                    5_678,
                ))
                .is_truncated(false)
                .build()
        });
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::Sequential,
        [&first, &second]
    ));
    let got = s.list_easyconfigs("easyconfigs/").await.unwrap();
    assert_eq!(
        got,
        [
            ObjectInfo {
                key: "easyconfigs/z/zlib/zlib-1.3.1.eb".into(),
                etag: "\"e1\"".into(),
                size: 1_234,
            },
            ObjectInfo {
                key: "easyconfigs/p/Python/Python-3.12.3-GCCcore-13.3.0.eb".into(),
                etag: "\"e2\"".into(),
                size: 5_678,
            },
        ]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn list_keeps_every_object_and_a_failed_page_names_the_prefix() {
    let first = mock!(Client::list_objects_v2)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.prefix() == Some("plans/run-1/"))
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(object("plans/run-1/plan.json", "\"x\"", 10))
                .is_truncated(true)
                .next_continuation_token("page-2")
                .build()
        });
    let throttled = mock!(Client::list_objects_v2)
        .match_requests(|r| {
            r.prefix() == Some("plans/run-1/") && r.continuation_token() == Some("page-2")
        })
        .then_http_response(|| s3_error(503, "SlowDown", "Please reduce your request rate."));
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::Sequential,
        [&first, &throttled],
        no_retries
    ));
    let err = s.list("plans/run-1/").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!((err.bucket(), err.key()), (BUCKET, "plans/run-1/"));
    let text = err.to_string();
    assert!(text.contains("s3://ebfleet-test/plans/run-1/"), "{text}");
    assert!(
        text.contains("ListObjectsV2") && text.contains("SlowDown"),
        "{text}"
    );
}

#[tokio::test]
async fn list_dirs_reads_the_common_prefixes_of_every_page() {
    let page = |dirs: &'static [&'static str], next: Option<&'static str>| {
        move || {
            let mut b =
                ListObjectsV2Output::builder().set_next_continuation_token(next.map(String::from));
            b = b.is_truncated(next.is_some());
            for d in dirs {
                b = b.common_prefixes(
                    aws_sdk_s3::types::CommonPrefix::builder()
                        .prefix(*d)
                        .build(),
                );
            }
            b.build()
        }
    };
    let first = mock!(Client::list_objects_v2)
        .match_requests(|r| {
            r.prefix() == Some("plans/run-1/")
                && r.delimiter() == Some("/")
                && r.continuation_token().is_none()
        })
        .then_output(page(&["plans/run-1/a/"], Some("page-2")));
    let second = mock!(Client::list_objects_v2)
        .match_requests(|r| r.delimiter() == Some("/") && r.continuation_token() == Some("page-2"))
        .then_output(page(&["plans/run-1/b/"], None));
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::Sequential,
        [&first, &second]
    ));
    assert_eq!(
        s.list_dirs("plans/run-1/").await.unwrap(),
        ["plans/run-1/a/", "plans/run-1/b/"]
    );
}

#[tokio::test]
async fn get_bytes_reads_the_object() {
    let rule = mock!(Client::get_object)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.key() == Some("a/b.json"))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"hello"))
                .build()
        });
    let s = store(mock_client!(aws_sdk_s3, [&rule]));
    assert_eq!(s.get_bytes("a/b.json").await.unwrap(), b"hello");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_key_is_not_found_naming_bucket_and_key() {
    let rule = mock!(Client::get_object)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.key() == Some("plans/run-9/plan.json"))
        .then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
    let s = store(mock_client!(aws_sdk_s3, [&rule]));
    let err = s.get_bytes("plans/run-9/plan.json").await.unwrap_err();
    assert!(
        matches!(&err, S3Error::NotFound { bucket, key }
            if bucket == BUCKET && key == "plans/run-9/plan.json"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "s3://ebfleet-test/plans/run-9/plan.json: no such key"
    );
}

#[tokio::test]
async fn a_missing_key_as_s3_sends_it_over_http_is_not_found_too() {
    let rule = mock!(Client::get_object)
        .then_http_response(|| s3_error(404, "NoSuchKey", "The specified key does not exist."));
    let s = store(mock_client!(aws_sdk_s3, [&rule]));
    let err = s.get_json::<BatchManifest>("m.json").await.unwrap_err();
    assert!(matches!(err, S3Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn throttling_is_retryable_after_the_sdk_gave_up() {
    // The SDK retries SlowDown itself (3 attempts in standard mode); what
    // reaches the caller after that is a transient call error.
    let rule = mock!(Client::get_object)
        .then_http_response(|| s3_error(503, "SlowDown", "Please reduce your request rate."));
    let s = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule], |c| c
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        )));
    let err = s.get_bytes("k").await.unwrap_err();
    assert!(
        matches!(&err, S3Error::Call { call, .. } if call.op == "GetObject" && call.transient),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(rule.num_calls(), 3, "the SDK retried before giving up");
}

#[tokio::test]
async fn a_throttled_read_that_then_succeeds_is_invisible() {
    let rule = mock!(Client::get_object)
        .sequence()
        .http_response(|| s3_error(503, "SlowDown", "Please reduce your request rate."))
        .output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"ok"))
                .build()
        })
        .build();
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::Sequential,
        [&rule],
        |c| c.retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(1)))
    ));
    assert_eq!(s.get_bytes("k").await.unwrap(), b"ok");
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn access_denied_is_a_service_error_not_retryable() {
    let rule = mock!(Client::put_object)
        .then_http_response(|| s3_error(403, "AccessDenied", "Access Denied"));
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::Sequential,
        [&rule],
        no_retries
    ));
    let err = s
        .put_bytes("x/y.tar.zst", b"data".to_vec(), "application/zstd")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, S3Error::Call { call, .. } if call.op == "PutObject" && !call.transient),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("s3://ebfleet-test/x/y.tar.zst"), "{text}");
    assert!(
        text.contains("AccessDenied (HTTP 403): Access Denied"),
        "{text}"
    );
}

#[tokio::test]
async fn put_json_writes_the_value_with_a_sha256_checksum() {
    let m = manifest();
    let expected = serde_json::to_vec(&m).unwrap();
    let rule = mock!(Client::put_object)
        .match_requests(move |r| {
            r.bucket() == Some(BUCKET)
                && r.key() == Some("amzn-2023_graviton-3/manifests/run-1/0.json")
                && r.content_type() == Some("application/json")
                && r.checksum_algorithm() == Some(&ChecksumAlgorithm::Sha256)
                && r.body.bytes() == Some(expected.as_slice())
        })
        .then_output(|| PutObjectOutput::builder().e_tag("\"abc\"").build());
    let s = store(mock_client!(aws_sdk_s3, [&rule]));
    s.put_json("amzn-2023_graviton-3/manifests/run-1/0.json", &m)
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn get_json_reads_a_domain_type_and_names_the_key_when_garbled() {
    let m = manifest();
    let body = serde_json::to_vec(&m).unwrap();
    let good = mock!(Client::get_object)
        .match_requests(|r| r.key() == Some("good.json"))
        .then_output(move || {
            GetObjectOutput::builder()
                .body(ByteStream::from(body.clone()))
                .build()
        });
    let bad = mock!(Client::get_object)
        .match_requests(|r| r.key() == Some("bad.json"))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from_static(b"{\"format\": 1"))
                .build()
        });
    let s = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&good, &bad]));
    assert_eq!(s.get_json::<BatchManifest>("good.json").await.unwrap(), m);
    let err = s.get_json::<BatchManifest>("bad.json").await.unwrap_err();
    assert!(matches!(err, S3Error::Json { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err
        .to_string()
        .starts_with("s3://ebfleet-test/bad.json: not the expected JSON"));
}

#[tokio::test]
async fn presigned_get_signs_the_key_for_its_lifetime_and_sends_nothing() {
    let key = "tools/ebfleet-node/aarch64/ebfleet-node";
    // The mocks see the request being presigned (they intercept before
    // signing), never an answer: presigning sends nothing.
    let rule = mock!(Client::get_object)
        .match_requests(move |r| r.bucket() == Some(BUCKET) && r.key() == Some(key))
        .then_output(|| GetObjectOutput::builder().build());
    let s = store(mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]));
    let url = s
        .presigned_get(key, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let (base, query) = url.split_once('?').unwrap();
    assert!(
        base.ends_with(&format!("/{key}")) && base.contains(BUCKET),
        "{url}"
    );
    let params: Vec<&str> = query.split('&').collect();
    for want in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Expires=3600",
        "x-id=GetObject",
    ] {
        assert!(params.contains(&want), "{want} in {url}");
    }
    assert!(
        params.iter().any(|p| p.starts_with("X-Amz-Signature=")),
        "{url}"
    );

    // S3 refuses presigned URLs valid for more than a week.
    let err = s
        .presigned_get(key, Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap_err();
    assert_eq!(err.key(), key);
    assert!(!err.is_retryable());
}
