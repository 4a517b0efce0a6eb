use super::*;
use crate::platform::Platforms;

fn m(s: &str) -> ModuleName {
    s.parse().unwrap()
}

fn p(s: &str) -> PlatformName {
    s.parse().unwrap()
}

fn e(s: &str) -> ExecutionName {
    s.parse().unwrap()
}

fn kind_of(err: KeyError) -> NameKind {
    match err {
        KeyError::Invalid { kind, .. } => kind,
        other => panic!("not a validation error: {other}"),
    }
}

/// Tricky real names from the EasyBuild 5.4.1 easyconfigs.
const REAL_MODULES: &[&str] = &[
    "GCCcore/12.3.0",
    "Python/3.11.3-GCCcore-12.3.0",
    "R-bundle-CRAN/2024.11-foss-2024a",
    "libjpeg-turbo/3.0.1-GCCcore-13.2.0",
    "WebKitGTK+/2.41.4-foss-2023a",
    "SciPy-bundle/2023.07-gfbf-2023a",
    "zlib/.1.3",
    "2decomp-fft/2.0.4-foss-2025b",
    "4ti2/1.6.10-GCC-13.2.0",
    "ABAQUS/2021-hotfix-2132",
    "Perl-bundle-CPAN/5.36.1-GCCcore-12.3.0",
    "X11/20230603-GCCcore-12.3.0",
    "gnuplot/5.4.8-GCCcore-12.3.0",
    "libsigc++/3.6.0-GCCcore-13.2.0",
    "PyTorch/2.1.2-foss-2023a-CUDA-12.1.1",
    "lsb_release/2.0",
    "Java/11.0.20",
];

#[test]
fn real_module_names_are_accepted() {
    for s in REAL_MODULES {
        let module = s.parse::<ModuleName>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(module.as_str(), *s);
        assert_eq!(module.to_string(), *s);
        assert_eq!(format!("{}/{}", module.name(), module.version()), *s);
    }
    let py = m("Python/3.11.3-GCCcore-12.3.0");
    assert_eq!(py.name(), "Python");
    assert_eq!(py.version(), "3.11.3-GCCcore-12.3.0");
    assert!(!py.is_hidden());
    assert_eq!(py.install_subdir(), "Python/3.11.3-GCCcore-12.3.0");
    let z = m("zlib/.1.3");
    assert!(z.is_hidden());
    assert_eq!(z.version(), ".1.3");
    assert_eq!(z.install_subdir(), "zlib/1.3");
    assert_eq!(ModuleName::try_from("GCC/13.2.0").unwrap(), m("GCC/13.2.0"));
    assert_eq!(
        ModuleName::try_from("GCC/13.2.0".to_string()).unwrap(),
        m("GCC/13.2.0")
    );
    assert_eq!(String::from(m("GCC/13.2.0")), "GCC/13.2.0");
}

#[test]
fn hostile_and_malformed_module_names_are_rejected() {
    let long = format!("a/{}", "1".repeat(MAX_MODULE_NAME - 1));
    let cases: &[(&str, &str)] = &[
        ("a/b;rm -rf /", "';'"),
        ("$(id)/1", "'$'"),
        ("`id`/1", "'`'"),
        ("x/`id`", "'`'"),
        ("../x/1", "more than one"),
        ("/abs/1", "more than one"),
        ("x/1\n", "0x0a"),
        ("x/1\r", "0x0d"),
        ("x/1\0", "0x00"),
        ("x/..", "version must start"),
        ("x/.", "empty version"),
        ("x/", "empty version"),
        ("/1", "empty software name"),
        ("x", "no '/'"),
        ("", "empty"),
        ("x/1 2", "0x20"),
        ("x/1\t", "0x09"),
        ("x/'1'", "'''"),
        ("x/\"1\"", "'\"'"),
        ("x/1|sh", "'|'"),
        ("x/1&", "'&'"),
        ("x/1>f", "'>'"),
        ("x/*", "'*'"),
        ("x/1\\", "'\\'"),
        (".hidden/1", "start with a letter"),
        ("-rf/1", "start with a letter"),
        ("x/-rf", "version must start"),
        ("x/..1", "version must start"),
        ("x/y/1", "more than one"),
        ("x//1", "more than one"),
        ("zlib/1.3é", "0xc3"),
        (&long, "longer than 255"),
    ];
    for (s, why) in cases {
        let err = s.parse::<ModuleName>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(why), "{s:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(kind_of(err), NameKind::Module);
    }
    // Exactly at the limit is fine.
    let max = format!("a/{}", "1".repeat(MAX_MODULE_NAME - 2));
    assert!(max.parse::<ModuleName>().is_ok());
    // Long values are cut in the message.
    let huge = format!("x/{}", ";".repeat(10_000));
    assert!(huge.parse::<ModuleName>().unwrap_err().to_string().len() < 400);
}

#[test]
fn module_names_validate_on_deserialize() {
    let ok: Vec<ModuleName> = serde_json::from_str(r#"["zlib/.1.3", "GCC/13.2.0"]"#).unwrap();
    assert_eq!(ok[0], m("zlib/.1.3"));
    assert_eq!(
        serde_json::to_string(&ok).unwrap(),
        r#"["zlib/.1.3","GCC/13.2.0"]"#
    );
    let err = serde_json::from_str::<ModuleName>(r#""a/b;rm -rf /""#).unwrap_err();
    assert!(err.to_string().contains("invalid module name"), "{err}");
}

#[test]
fn platform_names() {
    for s in [
        "amzn-2023_graviton-3",
        "amzn-2023_xeon-gen-4_h100",
        "ubuntu-24.04_epyc-gen-3",
        "rocky-9_grace_gb200",
    ] {
        assert_eq!(p(s).as_str(), s);
    }
    for pl in Platforms::default_set().unwrap().platforms {
        PlatformName::of(&pl).unwrap();
    }
    for s in [
        "",
        "amzn-2023",
        "a_b_c_d",
        "a__b",
        "_a_b",
        "a_b_",
        "Amzn_x",
        "a_b/c",
        "a_..",
        "a_.b",
        "a_-b",
        "a_b;id",
        "a_b c",
        "a_b\n",
        "a_$(id)",
    ] {
        let err = s.parse::<PlatformName>().unwrap_err();
        assert_eq!(kind_of(err), NameKind::Platform, "{s:?}");
    }
    assert!("a_".repeat(64).parse::<PlatformName>().is_err());
    assert!(serde_json::from_str::<PlatformName>(r#""a/b""#).is_err());
}

#[test]
fn execution_names() {
    for s in [
        "0f8e3f7a-2c1b-4d7e-9a55-3b9c1e2d4f60",
        "weekly_2025-01-06",
        "x",
        &"a".repeat(80),
    ] {
        assert_eq!(e(s).as_str(), s);
    }
    for s in [
        "",
        &"a".repeat(81),
        "a b",
        "a.b",
        "a/b",
        "..",
        "-rf",
        "a;b",
        "$(id)",
        "a\n",
        "é",
    ] {
        let err = s.parse::<ExecutionName>().unwrap_err();
        assert_eq!(kind_of(err), NameKind::Execution, "{s:?}");
    }
    assert!(serde_json::from_str::<ExecutionName>(r#""a b""#).is_err());
}

#[test]
fn easyconfig_keys_and_paths() {
    let key: EasyconfigKey = "easyconfigs/w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb"
        .parse()
        .unwrap();
    let rel = key.relative();
    assert_eq!(rel.as_str(), "w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb");
    assert_eq!(rel.name(), "WebKitGTK+");
    assert_eq!(rel.file_name(), "WebKitGTK+-2.41.4-foss-2023a.eb");
    assert_eq!(EasyconfigKey::from(&rel), key);
    for s in [
        "0/2decomp-fft/2decomp-fft-2.0.4-foss-2025b.eb",
        "p/Python/Python-3.11.3-GCCcore-12.3.0.eb",
        "r/R-bundle-CRAN/R-bundle-CRAN-2024.11-foss-2024a.eb",
        "l/lsb_release/lsb_release-2.0.eb",
    ] {
        let path: EasyconfigPath = s.parse().unwrap();
        assert_eq!(
            format!("easyconfigs/{s}")
                .parse::<EasyconfigKey>()
                .unwrap()
                .relative(),
            path
        );
    }
    let bad_keys = [
        ("easyconfigs/p/Python/../../x/Python-1.eb", "'..'"),
        ("easyconfigs/p//Python/Python-1.eb", "empty path segment"),
        ("easyconfigs//p/Python/Python-1.eb", "empty path segment"),
        ("easyconfigs/p/Python/Python-1.eb/", "empty path segment"),
        ("sources/p/Python/Python-1.eb", "not under easyconfigs/"),
        (
            "/easyconfigs/p/Python/Python-1.eb",
            "not under easyconfigs/",
        ),
        ("Easyconfigs/p/Python/Python-1.eb", "not under easyconfigs/"),
        ("easyconfigs/p/Python/Python-1.eb.txt", "not an .eb file"),
        ("easyconfigs/p/Python/Python-1.py", "not an .eb file"),
        ("easyconfigs/p/Python/Python-1.ebx", "not an .eb file"),
        ("easyconfigs/p/Python/Python-1 .eb", "0x20"),
        ("easyconfigs/p/Python/Python-$(id).eb", "'$'"),
        ("easyconfigs/p/Python/Python-`id`.eb", "'`'"),
        ("easyconfigs/p/Python/Python-1;id.eb", "';'"),
        ("easyconfigs/p/Python/Python-1\n.eb", "0x0a"),
        ("easyconfigs/w/WebKitGTK%2B/WebKitGTK%2B-2.eb", "'%'"),
        ("easyconfigs/x/Python/Python-1.eb", "letter directory"),
        ("easyconfigs/P/Python/Python-1.eb", "letter directory"),
        (
            "easyconfigs/p/Python/Perl-1.eb",
            "does not start with 'Python-'",
        ),
        ("easyconfigs/p/Python/Python-.eb", "no version"),
        ("easyconfigs/p/Python/Python.eb", "does not start"),
        (
            "easyconfigs/p/Python/sub/Python-1.eb",
            "not <letter>/<Name>/<file>.eb",
        ),
        ("easyconfigs/Python-1.eb", "not <letter>/<Name>/<file>.eb"),
        ("easyconfigs/0/.x/.x-1.eb", "start with a letter"),
        ("easyconfigs/", "empty"),
    ];
    for (s, why) in bad_keys {
        let err = s.parse::<EasyconfigKey>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(why), "{s:?}: {msg}");
        assert_eq!(kind_of(err), NameKind::EasyconfigKey);
    }
    let long = format!("easyconfigs/a/a/a-{}.eb", "1".repeat(MAX_EASYCONFIG_PATH));
    assert!(long.parse::<EasyconfigKey>().is_err());
    let err = "easyconfigs/p/Python/Python-1.eb"
        .parse::<EasyconfigPath>()
        .unwrap_err();
    assert_eq!(kind_of(err), NameKind::EasyconfigPath);
    assert!(serde_json::from_str::<EasyconfigPath>(r#""p/Python/../Python-1.eb""#).is_err());
}
