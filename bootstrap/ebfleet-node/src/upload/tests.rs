use super::*;

#[test]
fn files_under_lists_regular_files_without_partials() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("extensions")).unwrap();
    std::fs::write(d.path().join("a.tar.gz"), b"a").unwrap();
    std::fs::write(d.path().join("a.tar.gz.partial"), b"a").unwrap();
    std::fs::write(d.path().join("extensions/b.tar.gz"), b"b").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
    assert_eq!(
        files_under(d.path()).unwrap(),
        [
            PathBuf::from("a.tar.gz"),
            PathBuf::from("extensions/b.tar.gz")
        ]
    );
    assert!(files_under(&d.path().join("none")).unwrap().is_empty());
}
