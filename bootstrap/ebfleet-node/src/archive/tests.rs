use super::*;
use std::os::unix::fs::symlink;

/// A small installation: a binary, a library, a header, `lib64 -> lib`, an
/// absolute symlink back into itself, an empty directory.
fn install(root: &Path) -> PathBuf {
    let dir = root.join("software/hello/1.0");
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("include/sub")).unwrap();
    fs::create_dir_all(dir.join("share/empty")).unwrap();
    fs::write(dir.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(dir.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("lib/libhello.a"), vec![7u8; 100_000]).unwrap();
    fs::write(dir.join("include/sub/hello.h"), b"int hello(void);\n").unwrap();
    symlink("lib", dir.join("lib64")).unwrap();
    symlink(dir.join("lib/libhello.a"), dir.join("bin/libhello-abs.a")).unwrap();
    dir
}

fn names(tarball: &Path) -> Vec<String> {
    let d = zstd::stream::Decoder::new(fs::File::open(tarball).unwrap()).unwrap();
    let mut a = tar::Archive::new(d);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn packing_is_deterministic_and_keeps_modification_times() {
    let t = tempfile::tempdir().unwrap();
    let dir = install(t.path());
    let a = pack(&dir, "hello/1.0", &t.path().join("a.tar.zst")).unwrap();
    let b = pack(&dir, "hello/1.0", &t.path().join("b.tar.zst")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.entries, 12);
    assert_eq!(
        file_sha256(&t.path().join("a.tar.zst")).unwrap(),
        (a.size, a.sha256.clone())
    );
    assert!(!crate::layout::partial(&t.path().join("a.tar.zst")).exists());
    let n = names(&t.path().join("a.tar.zst"));
    assert_eq!(n[0], "hello/1.0/");
    assert!(n.iter().all(|p| p.starts_with("hello/1.0/")), "{n:?}");
    let mut sorted = n.clone();
    sorted.sort();
    assert_eq!(n, sorted, "entries in path order");
    // Another mtime, another tarball: times are kept, not flattened.
    let f = fs::File::options()
        .write(true)
        .open(dir.join("include/sub/hello.h"))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let c = pack(&dir, "hello/1.0", &t.path().join("c.tar.zst")).unwrap();
    assert_ne!(c.sha256, a.sha256);
}

#[test]
fn round_trip_keeps_content_modes_and_links() {
    let t = tempfile::tempdir().unwrap();
    let dir = install(t.path());
    let tarball = t.path().join("hello.tar.zst");
    pack(&dir, "hello/1.0", &tarball).unwrap();
    // Unpacked on "another node" at the same software path: move the
    // original away first.
    let software = t.path().join("software");
    fs::rename(&dir, t.path().join("original")).unwrap();
    let n = unpack(&tarball, &software, "hello/1.0").unwrap();
    assert_eq!(n, 12);
    assert_eq!(
        fs::read(dir.join("lib/libhello.a")).unwrap(),
        vec![7u8; 100_000]
    );
    assert_eq!(
        fs::metadata(dir.join("bin/hello"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(fs::read_link(dir.join("lib64")).unwrap(), Path::new("lib"));
    assert_eq!(
        fs::read_link(dir.join("bin/libhello-abs.a")).unwrap(),
        dir.join("lib/libhello.a")
    );
    assert!(dir.join("share/empty").is_dir());
    assert!(!software.join(".ebfleet-staging/hello@1.0").exists());
    // Unpacking again replaces what is there, extra files included.
    fs::write(dir.join("stray"), b"x").unwrap();
    unpack(&tarball, &software, "hello/1.0").unwrap();
    assert!(!dir.join("stray").exists());
    // A tarball only unpacks as its own module.
    let err = unpack(&tarball, &software, "other/1.0").unwrap_err();
    assert!(matches!(err, ArchiveError::Refused { .. }), "{err}");
    assert!(!software.join("other").exists());
}

#[test]
fn packing_refuses_links_out_of_the_module() {
    for target in ["../../../other/1.0/lib", "/etc/passwd", "../../1.1"] {
        let t = tempfile::tempdir().unwrap();
        let dir = install(t.path());
        symlink(target, dir.join("bin/out")).unwrap();
        let err = pack(&dir, "hello/1.0", &t.path().join("x.tar.zst")).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Unpackable { path, .. } if path.ends_with("bin/out")),
            "{target}: {err}"
        );
    }
}

/// A tarball entry: name, type, link target.
type Entry<'a> = (&'a str, tar::EntryType, &'a str);

/// A tarball with one hostile entry, written without the tar crate's path
/// checks (the name goes into the header's bytes directly).
fn hostile(path: &Path, entries: &[Entry<'_>]) {
    let f = fs::File::create(path).unwrap();
    let enc = zstd::stream::Encoder::new(f, 3).unwrap().auto_finish();
    let mut b = tar::Builder::new(enc);
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"pwned"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap();
}

#[test]
fn hostile_tarballs_are_refused_and_leave_nothing() {
    use tar::EntryType::*;
    let ok_dir = ("hello/1.0/", Directory, "");
    let cases: Vec<(Vec<Entry<'_>>, &str)> = vec![
        (vec![ok_dir, ("../evil", Regular, "")], ".."),
        (vec![ok_dir, ("hello/1.0/../../evil", Regular, "")], ".."),
        (vec![("/tmp/ebfleet-evil", Regular, "")], "absolute"),
        (vec![ok_dir, ("other/1.0/x", Regular, "")], "outside"),
        (vec![ok_dir, ("hello/x", Regular, "")], "outside"),
        (
            vec![ok_dir, ("hello/1.0/l", Symlink, "../../../../etc")],
            "leaves",
        ),
        (vec![ok_dir, ("hello/1.0/l", Symlink, "/etc")], "leaves"),
        (
            vec![ok_dir, ("hello/1.0/l", Symlink, "../1.1/lib")],
            "leaves",
        ),
        (vec![ok_dir, ("hello/1.0/l", Symlink, "")], "target"),
        (vec![ok_dir, ("hello/1.0/h", Link, "../evil")], "hard link"),
        (vec![ok_dir, ("hello/1.0/dev", Char, "")], "not allowed"),
        (vec![ok_dir, ("hello/1.0/fifo", Fifo, "")], "not allowed"),
    ];
    for (entries, needle) in cases {
        let t = tempfile::tempdir().unwrap();
        let software = t.path().join("root/software");
        fs::create_dir_all(&software).unwrap();
        let tarball = t.path().join("bad.tar.zst");
        hostile(&tarball, &entries);
        let err = unpack(&tarball, &software, "hello/1.0").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ArchiveError::Refused { .. }),
            "{entries:?}: {text}"
        );
        assert!(text.contains(needle), "{entries:?}: {text}");
        // Nothing outside, nothing installed, no staging left.
        assert!(!t.path().join("evil").exists() && !t.path().join("root/evil").exists());
        assert!(!Path::new("/tmp/ebfleet-evil").exists());
        assert!(!software.join("hello/1.0").exists(), "{entries:?}");
        assert_eq!(
            fs::read_dir(software.join(".ebfleet-staging"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[test]
fn a_symlink_cannot_be_used_to_write_outside() {
    // A link that stays inside, then a file through it: fine, it lands inside.
    let t = tempfile::tempdir().unwrap();
    let software = t.path().join("software");
    fs::create_dir_all(&software).unwrap();
    let tarball = t.path().join("t.tar.zst");
    hostile(
        &tarball,
        &[
            ("hello/1.0/", tar::EntryType::Directory, ""),
            ("hello/1.0/lib/", tar::EntryType::Directory, ""),
            ("hello/1.0/lib64", tar::EntryType::Symlink, "lib"),
            ("hello/1.0/lib64/x", tar::EntryType::Regular, ""),
        ],
    );
    unpack(&tarball, &software, "hello/1.0").unwrap();
    assert_eq!(
        fs::read(software.join("hello/1.0/lib/x")).unwrap(),
        b"pwned"
    );
}

#[test]
fn lexical_resolution() {
    let m = Path::new("a/1");
    let inside = Path::new("/opt/eb/software/a/1");
    assert!(link_stays_inside(
        Path::new("a/1/lib64"),
        Path::new("lib"),
        m,
        inside
    ));
    assert!(link_stays_inside(
        Path::new("a/1/x/y"),
        Path::new("../z"),
        m,
        inside
    ));
    assert!(!link_stays_inside(
        Path::new("a/1/x"),
        Path::new("../../b"),
        m,
        inside
    ));
    assert!(link_stays_inside(
        Path::new("a/1/x"),
        Path::new("/opt/eb/software/a/1/lib"),
        m,
        inside
    ));
    assert!(!link_stays_inside(
        Path::new("a/1/x"),
        Path::new("/opt/eb/software/a/1/../2"),
        m,
        inside
    ));
    assert!(!link_stays_inside(
        Path::new("a/1/x"),
        Path::new("/opt/eb/software/a/10"),
        m,
        inside
    ));
    assert_eq!(resolve_relative(Path::new("a"), Path::new("../..")), None);
}
