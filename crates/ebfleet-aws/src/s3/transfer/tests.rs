//! The transfer calls against `aws-smithy-mocks`: each test checks what is
//! sent (key, upload id, part number, checksums, metadata) as well as what
//! comes back.

use super::*;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::operation::upload_part::UploadPartOutput;
use aws_sdk_s3::types::error::NotFound;
use aws_sdk_s3::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;

const BUCKET: &str = "ebfleet-test";
const KEY: &str = "amzn-2023_graviton-3/software/zlib/1.3.1.tar.zst";
/// sha256("abc"), and the same digest in base64.
const ABC_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const ABC_B64: &str = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=";

fn store(client: Client) -> Store {
    Store::new(client, BUCKET)
}

fn upload() -> Upload {
    Upload {
        content_type: "application/zstd".into(),
        sha256: ABC_HEX.into(),
        metadata: BTreeMap::from([("installpath".to_string(), "/opt/eb".to_string())]),
    }
}

fn s3_error(status: u16, code: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
             <Message>m</Message><RequestId>r</RequestId></Error>"
        )),
    )
}

fn sent_metadata(m: Option<&HashMap<String, String>>) -> bool {
    m.is_some_and(|m| {
        m.get("sha256").map(String::as_str) == Some(ABC_HEX)
            && m.get("installpath").map(String::as_str) == Some("/opt/eb")
            && m.len() == 2
    })
}

#[test]
fn hex_sha256_becomes_base64() {
    assert_eq!(sha256_base64(ABC_HEX).as_deref(), Some(ABC_B64));
    assert_eq!(sha256_base64("abc"), None);
    assert_eq!(sha256_base64(&"g".repeat(64)), None);
}

#[tokio::test]
async fn head_reads_size_and_sha256_metadata_and_none_when_missing() {
    let found = mock!(Client::head_object)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.key() == Some(KEY))
        .then_output(|| {
            HeadObjectOutput::builder()
                .content_length(1_234)
                .metadata("sha256", ABC_HEX)
                .metadata("installpath", "/opt/eb")
                .build()
        });
    let missing = mock!(Client::head_object)
        .match_requests(|r| r.key() == Some("nothing"))
        .then_error(|| HeadObjectError::NotFound(NotFound::builder().build()));
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&found, &missing]
    ));
    let head = s.head(KEY).await.unwrap().unwrap();
    assert_eq!(head.size, 1_234);
    assert_eq!(head.sha256.as_deref(), Some(ABC_HEX));
    assert_eq!(head.metadata["installpath"], "/opt/eb");
    assert_eq!(s.head("nothing").await.unwrap(), None);
    assert_eq!((found.num_calls(), missing.num_calls()), (1, 1));
}

#[tokio::test]
async fn head_failure_names_the_key() {
    let rule = mock!(Client::head_object).then_http_response(|| s3_error(403, "AccessDenied"));
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::Sequential,
        [&rule],
        |c| c.retry_config(RetryConfig::disabled())
    ));
    let err = s.head(KEY).await.unwrap_err();
    assert_eq!(err.key(), KEY);
    assert!(err.to_string().contains("HeadObject"), "{err}");
}

#[tokio::test]
async fn get_to_writer_streams_the_body_and_returns_the_head() {
    let rule = mock!(Client::get_object)
        .match_requests(|r| r.bucket() == Some(BUCKET) && r.key() == Some(KEY))
        .then_output(|| {
            GetObjectOutput::builder()
                .content_length(3)
                .metadata("sha256", ABC_HEX)
                .version_id("v3")
                .body(ByteStream::from_static(b"abc"))
                .build()
        });
    let s = store(mock_client!(aws_sdk_s3, [&rule]));
    let mut out = Vec::new();
    let head = s.get_to_writer(KEY, &mut out).await.unwrap();
    assert_eq!(out, b"abc");
    assert_eq!((head.size, head.sha256.as_deref()), (3, Some(ABC_HEX)));
    assert_eq!(head.version_id.as_deref(), Some("v3"));
}

#[tokio::test]
async fn put_file_sends_the_checksum_and_the_sha256_metadata() {
    let dir = std::env::temp_dir().join(format!("ebfleet-aws-put-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.tar.zst");
    std::fs::write(&path, b"abc").unwrap();
    let rule = mock!(Client::put_object)
        .match_requests(|r| {
            r.bucket() == Some(BUCKET)
                && r.key() == Some(KEY)
                && r.content_type() == Some("application/zstd")
                && r.checksum_sha256() == Some(ABC_B64)
                && sent_metadata(r.metadata())
        })
        .then_output(|| PutObjectOutput::builder().build());
    let s = store(mock_client!(aws_sdk_s3, [&rule]));
    s.put_file(KEY, &path, &upload()).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    // A checksum that is not one is refused before anything is sent.
    let bad = Upload {
        sha256: "abc".into(),
        ..upload()
    };
    assert!(s.put_file(KEY, &path, &bad).await.is_err());
    assert_eq!(rule.num_calls(), 1);
    // A file that cannot be read names it.
    let err = s
        .put_file(KEY, &dir.join("missing"), &upload())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn multipart_create_upload_complete_and_abort() {
    let create = mock!(Client::create_multipart_upload)
        .match_requests(|r| {
            r.key() == Some(KEY)
                && r.checksum_algorithm() == Some(&ChecksumAlgorithm::Sha256)
                && r.content_type() == Some("application/zstd")
                && sent_metadata(r.metadata())
        })
        .then_output(|| {
            CreateMultipartUploadOutput::builder()
                .upload_id("up-1")
                .build()
        });
    let part = mock!(Client::upload_part)
        .match_requests(|r| {
            r.key() == Some(KEY)
                && r.upload_id() == Some("up-1")
                && r.part_number() == Some(2)
                && r.checksum_sha256() == Some(ABC_B64)
                && r.body.bytes() == Some(b"abc".as_slice())
        })
        .then_output(|| {
            UploadPartOutput::builder()
                .e_tag("\"e2\"")
                .checksum_sha256(ABC_B64)
                .build()
        });
    let complete = mock!(Client::complete_multipart_upload)
        .match_requests(|r| {
            let parts = r.multipart_upload().map(|m| m.parts()).unwrap_or_default();
            r.upload_id() == Some("up-1")
                && parts.len() == 2
                && parts[0].part_number() == Some(1)
                && parts[0].e_tag() == Some("\"e1\"")
                && parts[1].part_number() == Some(2)
                && parts[1].checksum_sha256() == Some(ABC_B64)
        })
        .then_output(|| CompleteMultipartUploadOutput::builder().build());
    let s = store(mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&create, &part, &complete]
    ));
    assert_eq!(s.create_multipart(KEY, &upload()).await.unwrap(), "up-1");
    let p = s
        .upload_part(KEY, "up-1", 2, b"abc".to_vec(), ABC_HEX)
        .await
        .unwrap();
    assert_eq!(
        p,
        Part {
            number: 2,
            etag: "\"e2\"".into(),
            checksum_sha256: Some(ABC_B64.into()),
            size: 3
        }
    );
    let first = Part {
        number: 1,
        etag: "\"e1\"".into(),
        checksum_sha256: None,
        size: 5,
    };
    // Completed from parts in any order: sent sorted.
    let reversed = vec![p.clone(), first];
    s.complete_multipart(KEY, "up-1", &reversed).await.unwrap();
    assert_eq!(
        [create.num_calls(), part.num_calls(), complete.num_calls()],
        [1, 1, 1]
    );
    // A part whose checksum is not hex is refused before sending.
    assert!(s.upload_part(KEY, "up-1", 3, vec![1], "x").await.is_err());
    assert_eq!(part.num_calls(), 1);
}
