//! Uploads against moto: a multipart upload interrupted after its first
//! part resumes with the others only; a finished object is not sent again.

use crate::common::*;
use ebfleet_aws::s3::{Store, Upload};
use ebfleet_core::checksum::sha256_hex;
use ebfleet_node::transfer::{
    download, upload_file, upload_file_parts, UploadOptions, Uploaded, Verify,
};

#[tokio::test]
async fn an_interrupted_multipart_upload_resumes_where_it_stopped() {
    let Some(conf) = moto("an_interrupted_multipart_upload_resumes_where_it_stopped").await else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (bucket, s3) = bucket(&conf).await;
    let store = Store::from_conf(&conf, &bucket);
    // 12 MiB of varied bytes: three parts of 5, 5 and 2 MiB.
    let data: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let file = t.path().join("big.tar.zst");
    std::fs::write(&file, &data).unwrap();
    let up = Upload {
        content_type: "application/zstd".into(),
        sha256: sha256_hex(&data),
        metadata: [("installpath".to_string(), "/opt/eb".to_string())].into(),
    };
    let opts = UploadOptions {
        multipart_threshold: 8 << 20,
        part_size: 5 << 20,
        concurrency: 2,
    };
    let state = t.path().join("multipart");
    let key = format!("{PLATFORM}/software/big/1.0.tar.zst");

    // The "crash": one part sent, the upload left open.
    let first = upload_file_parts(&store, &key, &file, &up, &opts, &state, Some(1))
        .await
        .unwrap();
    assert_eq!(
        first,
        Uploaded::Sent {
            bytes: 5 << 20,
            parts: 1
        }
    );
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "not complete yet"
    );
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        1,
        "the upload id is kept"
    );

    // The re-run sends the two other parts only.
    let rest = upload_file(&store, &key, &file, &up, &opts, &state)
        .await
        .unwrap();
    assert_eq!(
        rest,
        Uploaded::Sent {
            bytes: 7 << 20,
            parts: 2
        }
    );
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "nothing left in flight"
    );
    let head = store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.size, 12 << 20);
    assert_eq!(head.sha256.as_deref(), Some(up.sha256.as_str()));
    assert_eq!(head.metadata["installpath"], "/opt/eb");
    let back = t.path().join("back");
    let got = download(&store, &key, &back, Verify::Metadata)
        .await
        .unwrap();
    assert_eq!(
        (got.size, got.sha256.as_str()),
        (12 << 20, up.sha256.as_str())
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // A symlink a build left at the temporary name is replaced, not
    // written through (the agent downloads as root).
    let target = t.path().join("elsewhere");
    std::fs::write(&target, "untouched").unwrap();
    let dest = t.path().join("linked");
    std::os::unix::fs::symlink(&target, t.path().join("linked.partial")).unwrap();
    download(&store, &key, &dest, Verify::Metadata)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // Once more: already there, nothing written.
    let again = upload_file(&store, &key, &file, &up, &opts, &state)
        .await
        .unwrap();
    assert_eq!(again, Uploaded::AlreadyThere);
    assert_eq!(versions(&s3, &bucket).await, [(key.clone(), 1)]);

    // A download whose content does not match its metadata is refused and
    // leaves nothing behind.
    store
        .put_bytes(
            "tampered",
            b"not what the metadata says".to_vec(),
            "text/plain",
        )
        .await
        .unwrap();
    let err = download(
        &store,
        "tampered",
        &t.path().join("t"),
        Verify::Sha256(&up.sha256),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("the batch file says"), "{err}");
    assert!(!t.path().join("t").exists() && !t.path().join("t.partial").exists());
    let err = download(&store, "tampered", &t.path().join("t"), Verify::Metadata)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no sha256 metadata"), "{err}");
}
