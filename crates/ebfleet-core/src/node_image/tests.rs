use super::*;
use std::io::Read;

const NOW: u64 = 1_796_000_000;
const DAY: u64 = 86_400;

fn target(arch: Arch, kind: ImageKind) -> ImageTarget {
    ImageTarget::new("amzn-2023", arch, kind).unwrap()
}

fn node() -> NodeDownload {
    NodeDownload {
        url: "https://bucket.s3.amazonaws.com/tools/ebfleet-node/x86_64/ebfleet-node?X-Amz-Signature=ab".into(),
        sha256: "a".repeat(64),
    }
}

/// An image as the bake leaves it for `t`, `age` seconds old.
fn baked(t: &ImageTarget, age: u64) -> ImageFacts {
    ImageFacts {
        image_id: "ami-0123456789abcdef0".into(),
        arch: Some(t.arch),
        available: true,
        failed: false,
        created: Some(NOW - age),
        tags: tags(t, "ebfleet", "ami-0fedcba9876543210"),
    }
}

#[test]
fn a_fresh_image_of_the_target_is_usable() {
    for kind in [ImageKind::Cpu, ImageKind::Nvidia] {
        let t = target(Arch::Aarch64, kind);
        assert_eq!(check(&baked(&t, DAY), &t, NOW), Ok(()));
        assert!(!due(Some(&baked(&t, DAY)), &t, NOW));
    }
}

#[test]
fn the_wrong_architecture_is_refused_first() {
    let arm = target(Arch::Aarch64, ImageKind::Cpu);
    let mut image = baked(&target(Arch::X86_64, ImageKind::Cpu), DAY);
    image.available = false;
    let err = check(&image, &arm, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Unusable::WrongArchitecture {
                platform: Arch::Aarch64,
                ..
            }
        ),
        "{err}"
    );
    image.arch = None;
    assert!(matches!(
        check(&image, &arm, NOW),
        Err(Unusable::WrongArchitecture { .. })
    ));
}

#[test]
fn stale_or_foreign_images_are_refused() {
    let t = target(Arch::X86_64, ImageKind::Cpu);
    let mut pending = baked(&t, DAY);
    pending.available = false;
    assert!(matches!(
        check(&pending, &t, NOW),
        Err(Unusable::NotAvailable(_))
    ));

    let mut other = baked(&t, DAY);
    other
        .tags
        .insert(TAG_BOOTSTRAP_SHA256.into(), "b".repeat(64));
    assert!(matches!(
        check(&other, &t, NOW),
        Err(Unusable::OtherBootstrap { .. })
    ));
    other.tags.remove(TAG_BOOTSTRAP_SHA256);
    assert!(matches!(
        check(&other, &t, NOW),
        Err(Unusable::OtherBootstrap { found: None, .. })
    ));

    // The CPU image is not the NVIDIA one, nor another OS's.
    let nvidia = target(Arch::X86_64, ImageKind::Nvidia);
    assert!(matches!(
        check(&baked(&t, DAY), &nvidia, NOW),
        Err(Unusable::WrongTag { tag: TAG_KIND, .. })
    ));
    let mut debian = baked(&t, DAY);
    debian.tags.insert(TAG_OS.into(), "debian-12".into());
    assert!(matches!(
        check(&debian, &t, NOW),
        Err(Unusable::WrongTag { tag: TAG_OS, .. })
    ));

    let old = baked(&t, MAX_IMAGE_AGE_SECS + 1);
    assert!(matches!(
        check(&old, &t, NOW),
        Err(Unusable::TooOld { age_days: 14, .. })
    ));
    assert_eq!(check(&baked(&t, MAX_IMAGE_AGE_SECS), &t, NOW), Ok(()));
    let mut undated = baked(&t, DAY);
    undated.created = None;
    assert!(matches!(
        check(&undated, &t, NOW),
        Err(Unusable::NoCreationDate(_))
    ));
}

#[test]
fn a_bake_is_due_without_an_image_for_a_refused_one_and_after_six_days() {
    let t = target(Arch::X86_64, ImageKind::Cpu);
    assert!(due(None, &t, NOW));
    assert!(!due(Some(&baked(&t, REBAKE_AFTER_SECS)), &t, NOW));
    assert!(due(Some(&baked(&t, REBAKE_AFTER_SECS + 1)), &t, NOW));
    let mut other = baked(&t, DAY);
    other
        .tags
        .insert(TAG_BOOTSTRAP_SHA256.into(), "0".repeat(64));
    assert!(due(Some(&other), &t, NOW), "a deploy changed the bootstrap");
}

#[test]
fn the_digest_is_the_bootstraps_and_the_drivers() {
    assert_eq!(
        bootstrap_sha256(ImageKind::Cpu),
        sha256_hex(BOOTSTRAP_SH.as_bytes())
    );
    assert_ne!(
        bootstrap_sha256(ImageKind::Cpu),
        bootstrap_sha256(ImageKind::Nvidia)
    );
}

#[test]
fn parameter_names_and_targets() {
    let t = target(Arch::Aarch64, ImageKind::Cpu);
    assert_eq!(
        parameter_name("/ebfleet-prod/node-image", &t).unwrap(),
        "/ebfleet-prod/node-image/amzn-2023/aarch64/cpu"
    );
    for bad in ["", "ebfleet", "/a/", "/a//b", "/a b", "/a;b"] {
        assert!(parameter_name(bad, &t).is_err(), "{bad:?}");
    }
    assert!(matches!(
        ImageTarget::new("rocky-9", Arch::X86_64, ImageKind::Cpu),
        Err(NodeImageError::UnsupportedOs { .. })
    ));
    let got = targets_for([
        ("amzn-2023", Arch::Aarch64),
        ("amzn-2023", Arch::X86_64),
        ("amzn-2023", Arch::X86_64),
        ("rocky-9", Arch::X86_64),
    ]);
    assert_eq!(
        got,
        [
            target(Arch::X86_64, ImageKind::Cpu),
            target(Arch::Aarch64, ImageKind::Cpu),
        ],
        "one CPU image per OS and architecture that can be baked"
    );
    assert_eq!(ImageKind::for_gpus(0), ImageKind::Cpu);
    assert_eq!(ImageKind::for_gpus(8), ImageKind::Nvidia);
}

#[test]
fn the_bake_script_runs_the_bootstrap_then_powers_off() {
    let t = target(Arch::X86_64, ImageKind::Cpu);
    let s = bake_script(&t, node()).unwrap();
    assert!(s.starts_with("#!/bin/bash\n"));
    assert!(s.contains("set -euo pipefail\n"));
    assert!(s.contains("export EBFLEET_PLATFORM='amzn-2023_node-image-x86-64'\n"));
    assert!(s.contains("export EBFLEET_ARCHSPEC='x86_64'\n"));
    assert!(s.contains("export EBFLEET_OPTARCH='GENERIC'\n"));
    assert!(s.contains(&format!(
        "export EBFLEET_NODE_SHA256='{}'\n",
        "a".repeat(64)
    )));
    assert!(
        !s.contains("export EBFLEET_MAX_LIFETIME_HOURS"),
        "a scheduled power-off would read as a finished bootstrap"
    );
    assert!(s.contains(BOOTSTRAP_SH), "the bootstrap byte for byte");
    assert!(!s.contains("nvidia"), "{}", &s[..200]);
    let bootstrap = s.find("bash /root/ebfleet-bootstrap.sh\n").unwrap();
    let off = s.rfind("poweroff\n").unwrap();
    assert!(bootstrap < off && s.ends_with("poweroff\n"));

    let n = bake_script(&target(Arch::Aarch64, ImageKind::Nvidia), node()).unwrap();
    assert!(n.contains(NVIDIA_DRIVER_SH));
    let driver = n.find("bash /root/ebfleet-nvidia-driver.sh\n").unwrap();
    assert!(n.find("bash /root/ebfleet-bootstrap.sh\n").unwrap() < driver);
    assert!(driver < n.rfind("poweroff\n").unwrap());
    assert!(n.contains("export EBFLEET_ARCHSPEC='aarch64'\n"));
}

#[test]
fn the_bake_script_is_valid_bash_and_gzipped_under_the_limit() {
    let t = target(Arch::X86_64, ImageKind::Nvidia);
    let data = bake_user_data(&t, node()).unwrap();
    assert!(data.gzip.len() <= crate::userdata::MAX_USER_DATA_BYTES);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&data.gzip[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, bake_script(&t, node()).unwrap());
    // bash -n parses the whole script, here-documents included.
    let dir = std::env::temp_dir().join(format!("ebfleet-bake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bake.sh");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_hostile_node_url_is_refused() {
    let t = target(Arch::X86_64, ImageKind::Cpu);
    let mut n = node();
    n.url = "https://x/'$(reboot)'".into();
    assert!(matches!(
        bake_script(&t, n),
        Err(NodeImageError::UserData(_))
    ));
}

#[test]
fn here_documents_never_end_early() {
    let mut text = String::new();
    write_file(&mut text, "/tmp/x", "a\nEBFLEET_END_OF_FILE\nb");
    assert!(text.starts_with("cat >/tmp/x <<'EBFLEET_END_OF_FILE_'\n"));
    assert!(text.ends_with("\nb\nEBFLEET_END_OF_FILE_\n"));
}
