//! What the stack's template makes on AWS, made in moto for the test
//! crates (feature `testing`): the bucket, versioned as the stack's is, and
//! the signing key under its alias.

use aws_config::SdkConfig;

/// Create the bucket `name` with versioning on (Record's promoted tarballs
/// are exact versions; versions also show what was written twice).
pub async fn versioned_bucket(conf: &SdkConfig, name: &str) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::Client::new(conf);
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {name}: {e:?}"));
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("versioning bucket {name}: {e:?}"));
    s3
}

/// A signing key as the stack's (ECC_NIST_P256, sign and verify) under
/// `alias`. An alias already there is kept: tests sharing a server share
/// the first key made.
pub async fn signing_key(conf: &SdkConfig, alias: &str) {
    let kms = aws_sdk_kms::Client::new(conf);
    let key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating a signing key: {e:?}"));
    let id = key.key_metadata().map(|m| m.key_id()).unwrap_or_default();
    match kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(id)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_already_exists_exception()) => {}
        Err(e) => panic!("creating {alias}: {e:?}"),
    }
}
