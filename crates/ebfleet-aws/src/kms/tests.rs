//! Sign and Verify against `aws-smithy-mocks`: what is sent (the key, the
//! raw message, ECDSA_SHA_256) and what an answer comes to.

use super::*;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::operation::sign::SignOutput;
use aws_sdk_kms::operation::verify::{VerifyError, VerifyOutput};
use aws_sdk_kms::types::error::KmsInvalidSignatureException;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;

const KEY: &str = "alias/ebfleet-signing";

fn sent(
    key: Option<&str>,
    message: Option<&Blob>,
    algorithm: Option<&SigningAlgorithmSpec>,
) -> bool {
    key == Some(KEY)
        && message.map(|m| m.as_ref()) == Some(b"statement".as_slice())
        && algorithm == Some(&SigningAlgorithmSpec::EcdsaSha256)
}

#[tokio::test]
async fn sign_sends_the_raw_message_and_returns_the_signature() {
    let rule = mock!(Client::sign)
        .match_requests(|r| {
            sent(r.key_id(), r.message(), r.signing_algorithm())
                && r.message_type() == Some(&MessageType::Raw)
        })
        .then_output(|| {
            SignOutput::builder()
                .signature(Blob::new(b"sig".to_vec()))
                .build()
        });
    let s = Kms::new(mock_client!(aws_sdk_kms, [&rule]));
    assert_eq!(s.sign(KEY, b"statement").await.unwrap(), b"sig");
}

#[tokio::test]
async fn verify_says_valid_invalid_or_fails() {
    let valid = mock!(Client::verify)
        .match_requests(|r| {
            sent(r.key_id(), r.message(), r.signing_algorithm())
                && r.signature().map(|s| s.as_ref()) == Some(b"good".as_slice())
        })
        .then_output(|| VerifyOutput::builder().signature_valid(true).build());
    let invalid = mock!(Client::verify)
        .match_requests(|r| r.signature().map(|s| s.as_ref()) == Some(b"bad".as_slice()))
        .then_error(|| {
            VerifyError::KmsInvalidSignatureException(
                KmsInvalidSignatureException::builder().build(),
            )
        });
    let denied = mock!(Client::verify)
        .match_requests(|r| r.signature().map(|s| s.as_ref()) == Some(b"denied".as_slice()))
        .then_http_response(|| {
            HttpResponse::new(
                400.try_into().unwrap(),
                SdkBody::from(r#"{"__type":"AccessDeniedException","message":"no"}"#),
            )
        });
    let s = Kms::new(mock_client!(
        aws_sdk_kms,
        RuleMode::MatchAny,
        [&valid, &invalid, &denied],
        |c| c.retry_config(RetryConfig::disabled())
    ));
    assert!(s.verify(KEY, b"statement", b"good").await.unwrap());
    assert!(!s.verify(KEY, b"statement", b"bad").await.unwrap());
    let err = s.verify(KEY, b"statement", b"denied").await.unwrap_err();
    assert!(!err.transient && err.to_string().contains(KEY), "{err}");
}

#[test]
fn signatures_as_text_round_trip() {
    let sig = [0x30, 0x45, 0x02, 0xff, 0x00];
    assert_eq!(signature_bytes(&signature_text(&sig)).unwrap(), sig);
    assert_eq!(signature_bytes("not base64!"), None);
}
