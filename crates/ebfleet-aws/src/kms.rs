//! KMS: sign a message with the stack's asymmetric signing key
//! (ECC_NIST_P256, ECDSA_SHA_256) and verify a signature with it. The
//! private key never leaves KMS; a verifier needs only `kms:Verify` (or the
//! public key, `GetPublicKey`).

use crate::call::{call_error, CallError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;

/// The service as [`CallError`]s name it.
const SERVICE: &str = "KMS";

/// KMS's own "ask again later" codes, beside the SDK's throttling ones.
const KMS_TRANSIENT: &[&str] = &["KMSInternalException", "DependencyTimeoutException"];

/// KMS, for signing keys (each named by an ARN, a key id or `alias/…`).
#[derive(Debug, Clone)]
pub struct Kms {
    client: Client,
}

impl Kms {
    pub fn new(client: Client) -> Self {
        Kms { client }
    }

    /// A client from the shared SDK configuration ([`crate::load_config`]).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Kms::new(Client::new(config))
    }

    /// `key`'s ECDSA signature (DER) of `message`.
    pub async fn sign(&self, key: &str, message: &[u8]) -> Result<Vec<u8>, CallError> {
        let out = self
            .client
            .sign()
            .key_id(key)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| call_error(SERVICE, "Sign", key.to_string(), e, KMS_TRANSIENT))?;
        out.signature
            .map(Blob::into_inner)
            .ok_or_else(|| CallError {
                service: SERVICE,
                op: "Sign",
                resource: key.to_string(),
                detail: "the answer has no signature".into(),
                transient: false,
            })
    }

    /// Whether `signature` is `key`'s of `message`. An invalid signature
    /// is `Ok(false)`, not an error.
    pub async fn verify(
        &self,
        key: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, CallError> {
        match self
            .client
            .verify()
            .key_id(key)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signature(Blob::new(signature))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
        {
            Ok(out) => Ok(out.signature_valid),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_kms_invalid_signature_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(call_error(
                SERVICE,
                "Verify",
                key.to_string(),
                e,
                KMS_TRANSIENT,
            )),
        }
    }
}

/// A signature as metadata and records keep it: base64.
pub fn signature_text(signature: &[u8]) -> String {
    aws_smithy_types::base64::encode(signature)
}

/// A signature from its text, `None` when it is no base64.
pub fn signature_bytes(text: &str) -> Option<Vec<u8>> {
    aws_smithy_types::base64::decode(text).ok()
}

#[cfg(test)]
mod tests;
