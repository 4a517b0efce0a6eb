use ebfleet_aws::s3::{S3Error, Store};

#[tokio::test]
async fn s3_round_trips_and_lists_easyconfigs() {
    let Some(conf) = super::config("s3_round_trips_and_lists_easyconfigs").await else {
        return;
    };
    let bucket = super::unique("ebfleet-s3");
    aws_sdk_s3::Client::new(&conf)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let store = Store::from_conf(&conf, &bucket);

    let value = serde_json::json!({"a": 1, "b": ["x", "y"]});
    store
        .put_json("runs/r1/summary.json", &value)
        .await
        .unwrap();
    let back: serde_json::Value = store.get_json("runs/r1/summary.json").await.unwrap();
    assert_eq!(back, value);

    store
        .put_bytes("raw/blob", b"hello".to_vec(), "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(store.get_bytes("raw/blob").await.unwrap(), b"hello");

    // Two pages at least: ListObjectsV2 answers 1,000 keys a page.
    let keys: Vec<String> = (0..1_005)
        .map(|i| format!("easyconfigs/z/zlib/zlib-1.{i}.eb"))
        .collect();
    for k in &keys {
        store
            .put_bytes(k, b"x".to_vec(), "text/plain")
            .await
            .unwrap();
    }
    for other in [
        "easyconfigs/z/zlib/zlib-1.0.patch",
        "other/a.eb",
        "easyconfigs/README",
    ] {
        store
            .put_bytes(other, b"x".to_vec(), "text/plain")
            .await
            .unwrap();
    }
    let listed = store.list_easyconfigs("easyconfigs/").await.unwrap();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(
        listed.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(listed.iter().all(|o| o.size == 1 && !o.etag.is_empty()));
    assert_eq!(store.list("easyconfigs/").await.unwrap().len(), 1_007);

    match store.get_bytes("raw/missing").await {
        Err(S3Error::NotFound { bucket: b, key }) => {
            assert_eq!((b.as_str(), key.as_str()), (bucket.as_str(), "raw/missing"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}
