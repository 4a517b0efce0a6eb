use super::*;
use crate::checksum::sha256_hex;

pub(crate) fn module(name: &str, build: &[u32], run: &[u32], built: bool) -> GraphModule {
    let (n, v) = name.split_once('/').unwrap();
    let letter = crate::layout::letter_dir_for(n);
    GraphModule {
        module: name.parse().unwrap(),
        easyconfig: format!("{letter}/{n}/{n}-{v}.eb").parse().unwrap(),
        easyconfig_sha256: sha256_hex(name.as_bytes()),
        build_deps: build.to_vec(),
        runtime_deps: run.to_vec(),
        built,
        estimate_s: 60,
        held: None,
        profile: None,
        optarch: None,
        tarball_sha256: None,
        from_base: false,
    }
}

/// GCCcore (built) ← zlib, CMake ← Python (builds with CMake, loads zlib).
pub(crate) fn graph() -> BuildGraph {
    BuildGraph {
        execution: "run-1".parse().unwrap(),
        platform: "amzn-2023_epyc-gen-4".parse().unwrap(),
        arch: Arch::X86_64,
        archspec: "zen4".into(),
        optarch: "GCC:march=znver4".into(),
        cuda_compute_capability: None,
        base: None,
        modules: vec![
            module("GCCcore/13.2.0", &[], &[], true),
            module("zlib/1.3-GCCcore-13.2.0", &[], &[0], false),
            module("CMake/3.27.6-GCCcore-13.2.0", &[], &[0], false),
            module("Python/3.11.5-GCCcore-13.2.0", &[2], &[1, 0], false),
        ],
    }
}

/// `graph()` as a CUDA overlay of its platform: GCCcore and zlib come
/// from the base, CUDA and a CUDA build of Python are its own.
fn overlay() -> BuildGraph {
    let mut g = graph();
    g.base = Some(g.platform.clone());
    g.platform = "amzn-2023_epyc-gen-4_h100".parse().unwrap();
    g.cuda_compute_capability = Some("9.0".into());
    g.modules[1].built = true;
    for m in &mut g.modules[..2] {
        m.from_base = true;
    }
    g.modules[2] = module("CUDA/12.4.0", &[], &[], false);
    g.modules[3] = module(
        "Python/3.11.5-GCCcore-13.2.0-CUDA-12.4.0",
        &[],
        &[1, 0, 2],
        false,
    );
    g
}

#[test]
fn an_overlay_takes_its_base_needs_from_the_base_prefix() {
    let g = overlay();
    g.validate().unwrap();
    assert_eq!(g.units().collect::<Vec<_>>(), [2, 3]);
    let f = g.unit_file(3).unwrap();
    assert_eq!(
        f.base.as_ref().map(|b| b.as_str()),
        Some("amzn-2023_epyc-gen-4")
    );
    assert_eq!(f.layer().as_deref(), Some("accel/nvidia/cc90"));
    let keys: Vec<(&str, bool)> = f
        .needs
        .iter()
        .map(|n| (n.tarball_key.as_str(), n.from_base))
        .collect();
    assert_eq!(
        keys,
        [
            ("amzn-2023_epyc-gen-4/software/GCCcore/13.2.0.tar.zst", true),
            (
                "amzn-2023_epyc-gen-4/software/zlib/1.3-GCCcore-13.2.0.tar.zst",
                true
            ),
            (
                "amzn-2023_epyc-gen-4_h100/software/CUDA/12.4.0.tar.zst",
                false
            ),
        ]
    );
    // Only CUDA is built in the run: the base's needs are not waited for.
    assert_eq!(f.after, [2]);
    let back = BatchFile::from_json(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);

    // A node refuses a base need under the overlay's own keys, a need from
    // a base the file does not name, and a base without a layer.
    let mut wrong = f.clone();
    wrong.needs[0].tarball_key = "amzn-2023_epyc-gen-4_h100/software/GCCcore/13.2.0.tar.zst".into();
    assert!(wrong.validate().is_err());
    let mut no_base = f.clone();
    no_base.base = None;
    assert!(no_base.validate().is_err());
    let mut no_cc = f;
    no_cc.cuda_compute_capability = None;
    assert!(no_cc.validate().is_err());
    // A graph whose base module is a unit, or that names no base.
    let mut g2 = overlay();
    g2.modules[1].built = false;
    assert!(g2.validate().is_err());
    let mut g3 = overlay();
    g3.base = None;
    assert!(g3.validate().is_err());
}

#[test]
fn an_overlay_is_laid_over_what_its_base_built() {
    let g = overlay();
    let sha = |m: &GraphModule| m.easyconfig_sha256.clone();
    let tarball = |m: &str| sha256_hex(format!("{m}.tar.zst").as_bytes());
    // The base built GCCcore (any easyconfig) and zlib from this one.
    let mut base = crate::built::Recorded::default();
    base.built.insert("GCCcore/13.2.0".into(), None);
    base.built
        .insert("zlib/1.3-GCCcore-13.2.0".into(), Some(sha(&g.modules[1])));
    for m in ["GCCcore/13.2.0", "zlib/1.3-GCCcore-13.2.0"] {
        base.tarballs.insert(m.into(), tarball(m));
    }
    let mut laid = g.clone();
    assert!(laid.layer_over(&base).is_empty());
    assert_eq!(
        laid.modules[1].tarball_sha256,
        Some(tarball("zlib/1.3-GCCcore-13.2.0"))
    );
    assert_eq!(
        laid.unit_file(3).unwrap().needs[1].tarball_sha256,
        Some(tarball("zlib/1.3-GCCcore-13.2.0"))
    );
    assert!(laid.modules.iter().all(|m| m.held.is_none()));

    // zlib built from another easyconfig, or not at all: Python (which
    // loads it) is held, CUDA (which does not) is not.
    for built in [Some(Some("0".repeat(64))), None] {
        let mut b = base.clone();
        match built {
            Some(v) => b.built.insert("zlib/1.3-GCCcore-13.2.0".into(), v),
            None => b.built.remove("zlib/1.3-GCCcore-13.2.0"),
        };
        let mut laid = g.clone();
        let held = laid.layer_over(&b);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].0, 3);
        assert!(
            held[0].1.contains("zlib/1.3-GCCcore-13.2.0")
                && held[0].1.contains("amzn-2023_epyc-gen-4"),
            "{}",
            held[0].1
        );
        assert!(laid.modules[3].held.is_some() && laid.modules[2].held.is_none());
        assert_eq!(laid.blocked_by_held()[3], Some(3));
    }
    // A graph that is no overlay is left alone.
    let mut plain = graph();
    let before = plain.clone();
    assert!(plain
        .layer_over(&crate::built::Recorded::default())
        .is_empty());
    assert_eq!(plain, before);
}

#[test]
fn needs_built_in_the_run_take_their_recorded_digest() {
    let g = graph();
    // Python (3) needs zlib (1), built in the run, and GCCcore (0).
    let zlib = sha256_hex(b"zlib tarball");
    let f = g
        .unit_file_with(3, &std::collections::BTreeMap::from([(1, zlib.clone())]))
        .unwrap();
    let sha = |m: &str| {
        f.needs
            .iter()
            .find(|n| n.module.as_str() == m)
            .and_then(|n| n.tarball_sha256.clone())
    };
    assert_eq!(sha("zlib/1.3-GCCcore-13.2.0"), Some(zlib));
    assert_eq!(sha("GCCcore/13.2.0"), None);
    assert_eq!(
        g.unit_file(3)
            .unwrap()
            .needs
            .iter()
            .filter(|n| n.tarball_sha256.is_some())
            .count(),
        0
    );
}

#[test]
fn units_are_the_modules_not_built() {
    assert_eq!(graph().units().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn the_build_environment_follows_runtime_edges_only_past_the_first_step() {
    let mut g = graph();
    // A build-only dependency of CMake is not loaded with it.
    g.modules
        .insert(2, module("ncurses/6.4-GCCcore-13.2.0", &[], &[0], false));
    g.modules[3].build_deps = vec![2];
    g.modules[4] = module("Python/3.11.5-GCCcore-13.2.0", &[3], &[1, 0], false);
    assert_eq!(g.build_environment(4), [0, 1, 3]);
    assert_eq!(g.build_environment(3), [0, 2]);
    g.validate().unwrap();
}

#[test]
fn a_unit_file_builds_one_module_with_its_environment() {
    let g = graph();
    let f = g.unit_file(3).unwrap();
    assert_eq!(f.batch, 3);
    assert_eq!(f.builds.len(), 1);
    assert_eq!(f.builds[0].module.as_str(), "Python/3.11.5-GCCcore-13.2.0");
    let needs: Vec<&str> = f.needs.iter().map(|n| n.module.as_str()).collect();
    assert_eq!(
        needs,
        [
            "GCCcore/13.2.0",
            "zlib/1.3-GCCcore-13.2.0",
            "CMake/3.27.6-GCCcore-13.2.0"
        ]
    );
    // After the units it needs; the built GCCcore is no unit.
    assert_eq!(f.after, [1, 2]);
    assert_eq!(f.key(), "plans/run-1/amzn-2023_epyc-gen-4/3.json");
    assert_eq!(g.key(), "plans/run-1/amzn-2023_epyc-gen-4/graph.json");
    assert!(g.unit_file(9).is_err());
}

#[test]
fn graphs_round_trip_and_refuse_what_a_node_would_refuse() {
    let g = graph();
    let json = serde_json::to_string(&g).unwrap();
    assert_eq!(BuildGraph::from_json(&json).unwrap(), g);
    let mut forward = graph();
    forward.modules[1].runtime_deps = vec![3];
    assert!(matches!(
        forward.validate(),
        Err(KeyError::BatchOrder { batch: 1, .. })
    ));
    let bad_sha = json.replacen(&sha256_hex(b"zlib/1.3-GCCcore-13.2.0"), "x", 1);
    assert!(BuildGraph::from_json(&bad_sha).is_err());
    let hostile = json.replacen("zlib/1.3-GCCcore-13.2.0", "zlib/1.3;reboot", 1);
    assert!(BuildGraph::from_json(&hostile).is_err());
}
