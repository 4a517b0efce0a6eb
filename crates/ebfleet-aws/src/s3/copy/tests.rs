//! Copies against `aws-smithy-mocks`: what is sent (the exact source
//! version, the replaced metadata, each part's range) and what comes back.

use super::*;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::upload_part_copy::UploadPartCopyOutput;
use aws_sdk_s3::types::CopyPartResult;
use aws_sdk_s3::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;
use std::collections::BTreeMap;

const BUCKET: &str = "ebfleet-test";
const FROM: &str = "staging/p/run-1/3/software/WebKitGTK+/2.41.4.tar.zst";
const TO: &str = "p/software/WebKitGTK+/2.41.4.tar.zst";
const SOURCE: &str =
    "ebfleet-test/staging/p/run-1/3/software/WebKitGTK%2B/2.41.4.tar.zst?versionId=v1";

fn upload() -> Upload {
    Upload {
        content_type: "application/zstd".into(),
        sha256: "a".repeat(64),
        metadata: BTreeMap::from([("module".to_string(), "WebKitGTK+/2.41.4".to_string())]),
    }
}

fn replaced(r: Option<&std::collections::HashMap<String, String>>) -> bool {
    r.is_some_and(|m| {
        m.get("sha256") == Some(&"a".repeat(64))
            && m.get("module").map(String::as_str) == Some("WebKitGTK+/2.41.4")
            && m.len() == 2
    })
}

#[test]
fn keys_are_percent_encoded_but_for_slashes() {
    assert_eq!(encode_key("a/b+c d.tar.zst"), "a/b%2Bc%20d.tar.zst");
    assert_eq!(encode_key("x-y_z~1.2/"), "x-y_z~1.2/");
}

#[tokio::test]
async fn one_copy_of_the_verified_version_with_its_own_metadata() {
    let rule = mock!(Client::copy_object)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET)
                && r.key() == Some(TO)
                && r.copy_source() == Some(SOURCE)
                && r.metadata_directive() == Some(&MetadataDirective::Replace)
                && r.content_type() == Some("application/zstd")
                && replaced(r.metadata())
        })
        .then_output(|| CopyObjectOutput::builder().version_id("v9").build());
    let s = Store::new(mock_client!(aws_sdk_s3, [&rule]), BUCKET);
    let v = s
        .copy_version(FROM, Some("v1"), TO, 3, &upload())
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("v9"));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_big_object_is_copied_in_ranges_and_completed_in_order() {
    let create = mock!(Client::create_multipart_upload)
        .match_requests(|r| r.key() == Some(TO) && replaced(r.metadata()))
        .then_output(|| {
            CreateMultipartUploadOutput::builder()
                .upload_id("up-1")
                .build()
        });
    const RANGES: [&str; 3] = ["bytes=0-3", "bytes=4-7", "bytes=8-9"];
    let parts: Vec<_> = RANGES
        .iter()
        .enumerate()
        .map(|(i, &range)| {
            let n = i as i32 + 1;
            mock!(Client::upload_part_copy)
                .match_requests(move |r| {
                    r.upload_id() == Some("up-1")
                        && r.part_number() == Some(n)
                        && r.copy_source() == Some(SOURCE)
                        && r.copy_source_range() == Some(range)
                })
                .then_output(move || {
                    UploadPartCopyOutput::builder()
                        .copy_part_result(CopyPartResult::builder().e_tag(format!("e{n}")).build())
                        .build()
                })
        })
        .collect();
    let complete = mock!(Client::complete_multipart_upload)
        .match_requests(|r| {
            let parts = r.multipart_upload().map(|m| m.parts()).unwrap_or_default();
            r.upload_id() == Some("up-1")
                && parts
                    .iter()
                    .map(|p| (p.part_number().unwrap(), p.e_tag().unwrap().to_string()))
                    .eq([(1, "e1".into()), (2, "e2".into()), (3, "e3".into())])
        })
        .then_output(|| {
            CompleteMultipartUploadOutput::builder()
                .version_id("v9")
                .build()
        });
    let s = Store::new(
        mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&create, &parts[0], &parts[1], &parts[2], &complete]
        ),
        BUCKET,
    );
    let v = s
        .copy_in_parts(FROM, Some("v1"), TO, 10, &upload(), 4)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("v9"));
    assert!(parts.iter().all(|p| p.num_calls() == 1));
    assert_eq!(complete.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_part_aborts_the_upload() {
    let create = mock!(Client::create_multipart_upload).then_output(|| {
        CreateMultipartUploadOutput::builder()
            .upload_id("up-1")
            .build()
    });
    let part = mock!(Client::upload_part_copy).then_http_response(|| {
        HttpResponse::new(
            403.try_into().unwrap(),
            SdkBody::from("<Error><Code>AccessDenied</Code><Message>m</Message></Error>"),
        )
    });
    let abort = mock!(Client::abort_multipart_upload)
        .match_requests(|r| r.key() == Some(TO) && r.upload_id() == Some("up-1"))
        .then_output(|| AbortMultipartUploadOutput::builder().build());
    let s = Store::new(
        mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&create, &part, &abort],
            |c| c.retry_config(RetryConfig::disabled())
        ),
        BUCKET,
    );
    let err = s
        .copy_in_parts(FROM, None, TO, 10, &upload(), 4)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UploadPartCopy"), "{err}");
    assert_eq!((part.num_calls(), abort.num_calls()), (1, 1));
}
