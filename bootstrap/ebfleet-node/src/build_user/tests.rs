use super::*;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
    ebfleet-build:x:998:997:ebfleet builds:/var/lib/ebfleet-build:/usr/sbin/nologin\n\
    broken:x:nan:1::/:/bin/sh\n";

#[test]
fn the_user_comes_from_passwd_and_is_never_root() {
    let u = BuildUser::lookup("ebfleet-build", PASSWD).unwrap();
    assert_eq!((u.uid, u.gid), (998, 997));
    assert_eq!(u.home, Path::new("/var/lib/ebfleet-build"));
    assert!(matches!(
        BuildUser::lookup("root", PASSWD),
        Err(BuildUserError::Root(_))
    ));
    for name in ["nobody", "broken", "ebfleet"] {
        assert!(
            matches!(
                BuildUser::lookup(name, PASSWD),
                Err(BuildUserError::Unknown(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn eb_gets_the_users_home_and_no_root_switch() {
    let u = BuildUser::lookup("ebfleet-build", PASSWD).unwrap();
    let mut env: BTreeMap<OsString, OsString> = [
        (crate::eb::ALLOW_ROOT, "1"),
        ("HOME", "/root"),
        ("EASYBUILD_BUILDPATH", "/opt/eb/build"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    u.apply(&mut env);
    let get = |k: &str| env.get(&OsString::from(k)).and_then(|v| v.to_str());
    assert_eq!(get(crate::eb::ALLOW_ROOT), None);
    assert_eq!(get("HOME"), Some("/var/lib/ebfleet-build"));
    assert_eq!(get("USER"), Some("ebfleet-build"));
    assert_eq!(get("EASYBUILD_LOCKS_DIR"), Some("/opt/eb/build/.locks"));
    assert_eq!(
        get("EASYBUILD_REPOSITORYPATH"),
        Some("/opt/eb/build/ebfiles_repo")
    );
}

fn mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Hand-over and take-back change owners: as root only (the agent on a
/// node, and CI, run as root).
#[test]
fn a_build_gets_its_own_directories_and_loses_them_after() {
    if !crate::machine::running_as_root() {
        eprintln!("skipped: changing owners needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path().join("eb"));
    let user = BuildUser {
        name: "t".into(),
        uid: 64_321,
        gid: 64_322,
        home: dir.path().join("home"),
    };
    let m: ModuleName = "zlib/1.3.1".parse().unwrap();
    let other: ModuleName = "zlib/1.2.13".parse().unwrap();
    // Another version of the name, installed by sync; a crashed attempt's
    // module file; a symlink where the module's sources go.
    let theirs = layout.install_dir(&other);
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("lib.so"), "genuine").unwrap();
    std::fs::create_dir_all(layout.modules_all().join("zlib")).unwrap();
    std::fs::write(layout.module_file(&m), "stale").unwrap();
    let sources = layout.sources().join("z/zlib");
    std::fs::create_dir_all(sources.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/etc", &sources).unwrap();
    let logs = dir.path().join("state/logs");
    let build = dir.path().join("build");

    user.hand_over(&layout, &m, &logs, &build).unwrap();
    let shared = (0, user.gid, SHARED_DIR_MODE);
    assert_eq!(mode(&layout.software().join("zlib")), shared);
    assert_eq!(mode(&layout.modules_all().join("zlib")), shared);
    assert_eq!(mode(&layout.modules()), shared);
    assert_eq!(mode(&sources), shared, "the symlink was not replaced");
    assert_eq!(mode(&layout.sources()), shared);
    assert_eq!(mode(&layout.software()).0, 0);
    for d in [layout.install_dir(&m), logs.clone(), build] {
        assert_eq!(mode(&d).0, user.uid, "{}", d.display());
    }
    assert!(
        !layout.module_file(&m).exists(),
        "the stale module file is there"
    );
    assert_eq!(mode(&theirs).0, 0, "another version changed hands");

    // The build: files with set-id bits and world write, a symlink out,
    // and a process left running.
    let planted = [
        layout.install_dir(&m).join("bin"),
        layout.module_file(&m),
        sources.join("zlib-1.3.1.tar.gz"),
        logs.join("easybuild.log"),
    ];
    // Made by the build, so the user's.
    std::fs::create_dir_all(&planted[0]).unwrap();
    lchown(&planted[0], Some(user.uid), Some(user.gid)).unwrap();
    for f in &planted[1..] {
        std::fs::write(f, "x").unwrap();
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o6777)).unwrap();
        lchown(f, Some(user.uid), Some(user.gid)).unwrap();
    }
    let link = layout.install_dir(&m).join("bin/shadow");
    // Where the agent would follow them: another version's directory,
    // another name's sources.
    let traps = [
        layout.software().join("zlib/1.3.2"),
        layout.sources().join("z/zstd"),
    ];
    for l in traps.iter().chain([&link]) {
        std::os::unix::fs::symlink("/etc", l).unwrap();
        lchown(l, Some(user.uid), Some(user.gid)).unwrap();
    }
    let mut daemon = std::process::Command::new("sleep")
        .arg("600")
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .unwrap();
    assert_eq!(processes_of(user.uid), vec![daemon.id() as i32]);

    user.take_back(&layout, &m, &logs).unwrap();
    assert!(
        processes_of(user.uid).is_empty(),
        "the build's process lives on"
    );
    let status = daemon.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    for f in &planted[1..] {
        assert_eq!(mode(f), (0, 0, 0o755), "{}", f.display());
    }
    assert_eq!(mode(&planted[0]).0, 0);
    assert_eq!(mode(&layout.install_dir(&m)).0, 0);
    assert_eq!(
        mode(&link).0,
        0,
        "a link inside the build's own tree stays, root's"
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc"));
    for l in &traps {
        assert!(
            std::fs::symlink_metadata(l).is_err(),
            "{} is left",
            l.display()
        );
    }
    assert_eq!(
        std::fs::read_to_string(theirs.join("lib.so")).unwrap(),
        "genuine"
    );
}
