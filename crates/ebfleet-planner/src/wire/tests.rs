use super::*;
use crate::plan::{Batch, PlannedModule, Unresolvable};
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::layout::letter_dir_for;
use ebfleet_core::names::NameKind;
use ebfleet_core::platform::{Platforms, SMALL as PLATFORMS};
use ebfleet_core::wire::STATE_PAYLOAD_LIMIT;
use ebfleet_core::Arch;

fn platforms() -> Platforms {
    Platforms::from_toml(PLATFORMS).unwrap()
}

fn m(s: &str) -> ModuleName {
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
fn sha(s: &str) -> String {
    sha256_hex(s.as_bytes())
}

fn planned(module: &str, deps: &[&str]) -> PlannedModule {
    let (name, version) = module.split_once('/').unwrap();
    let letter = letter_dir_for(name);
    PlannedModule {
        module: module.into(),
        easyconfig: format!(
            "{letter}/{name}/{name}-{}.eb",
            version.trim_start_matches('.')
        ),
        easyconfig_sha256: sha(module),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        runtime_deps: deps.iter().map(|d| d.to_string()).collect(),
    }
}

fn table(mods: &[PlannedModule]) -> ModuleTable {
    mods.iter().map(|p| (p.module.clone(), p.clone())).collect()
}

fn two_batch_plan(platform: &Platform) -> (PlatformPlan, ModuleTable) {
    let t = table(&[
        planned("GCCcore/13.2.0", &[]),
        planned("zlib/1.3-GCCcore-13.2.0", &["GCCcore/13.2.0"]),
        planned("Python/3.11.5-GCCcore-13.2.0", &["zlib/1.3-GCCcore-13.2.0"]),
        planned(
            "WebKitGTK+/2.41.4-foss-2023a",
            &["Python/3.11.5-GCCcore-13.2.0"],
        ),
    ]);
    let plan = PlatformPlan {
        platform: platform.name.clone(),
        arch: platform.arch(),
        base: None,
        from_base: 0,
        targets: vec!["WebKitGTK+/2.41.4-foss-2023a".into()],
        closure: 4,
        already_built: 1,
        unresolvable: vec![],
        graph: vec![],
        estimate: None,
        optarch: Default::default(),
        gcc: Default::default(),
        batches: vec![
            Batch {
                index: 0,
                modules: vec!["zlib/1.3-GCCcore-13.2.0".into()],
                after: vec![],
            },
            Batch {
                index: 1,
                modules: vec![
                    "Python/3.11.5-GCCcore-13.2.0".into(),
                    "WebKitGTK+/2.41.4-foss-2023a".into(),
                ],
                after: vec![0],
            },
        ],
    };
    (plan, t)
}

#[test]
fn batch_file_from_a_platform_plan() {
    let ps = platforms();
    // A CUDA overlay is planned as a graph only: its graph says which
    // needs are its base's.
    let overlay = &ps.platforms[2];
    let (plan, t) = two_batch_plan(overlay);
    let ex = e("run-1");
    assert!(matches!(
        batch_file(&plan, &t, overlay, &ex, 1),
        Err(KeyError::Inconsistent { .. })
    ));
    // A GPU platform that builds everything on its GPU nodes.
    let mut on_gpu = overlay.clone();
    on_gpu.base = None;
    let gpu = &on_gpu;
    let f = batch_file(&plan, &t, gpu, &ex, 1).unwrap();
    assert_eq!(f.platform.as_str(), "amzn-2023_epyc-gen-3_h100");
    assert_eq!(f.arch, Arch::X86_64);
    assert_eq!(f.archspec, "zen3");
    assert_eq!(f.optarch, "GCC:march=znver3");
    assert_eq!(f.cuda_compute_capability.as_deref(), Some("9.0"));
    assert_eq!(f.batch, 1);
    assert_eq!(f.after, [0]);
    assert_eq!(f.builds.len(), 2);
    let w = &f.builds[1];
    assert_eq!(w.module, m("WebKitGTK+/2.41.4-foss-2023a"));
    assert_eq!(
        w.easyconfig.as_str(),
        "w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb"
    );
    assert_eq!(
        w.easyconfig_key,
        "easyconfigs/w/WebKitGTK+/WebKitGTK+-2.41.4-foss-2023a.eb"
    );
    assert_eq!(w.easyconfig_sha256, sha("WebKitGTK+/2.41.4-foss-2023a"));
    assert_eq!(f.needs.len(), 2);
    assert_eq!(
        f.needs[1].tarball_key,
        "amzn-2023_epyc-gen-3_h100/software/zlib/1.3-GCCcore-13.2.0.tar.zst"
    );
    assert_eq!(
        f.needs[1].module_file_key,
        "amzn-2023_epyc-gen-3_h100/modules/all/zlib/1.3-GCCcore-13.2.0.lua"
    );
    assert_eq!(f.key(), "plans/run-1/amzn-2023_epyc-gen-3_h100/1.json");
    assert_eq!(
        f.manifest_key(),
        "amzn-2023_epyc-gen-3_h100/manifests/run-1/1.json"
    );
    // Round trip through JSON, validated.
    let json = serde_json::to_string(&f).unwrap();
    assert_eq!(BatchFile::from_json(&json).unwrap(), f);
    // CPU-only platforms have no compute capability.
    let cpu = &ps.platforms[1];
    let (plan, t) = two_batch_plan(cpu);
    let f0 = batch_file(&plan, &t, cpu, &ex, 0).unwrap();
    assert_eq!(f0.cuda_compute_capability, None);
    assert!(f0.after.is_empty());
    assert!(json.contains("\"cuda_compute_capability\":\"9.0\""));
}

#[test]
fn batch_file_from_a_whole_plan() {
    let ps = platforms();
    let arm = &ps.platforms[0];
    let (pp, t) = two_batch_plan(arm);
    let plan = Plan {
        easyconfigs: 3,
        problems: Default::default(),
        platforms: vec![pp],
        modules: [(Arch::Aarch64, t)].into(),
        dot: None,
    };
    let ex = e("run-2");
    let f = batch_file_of_plan(&plan, arm, &ex, 0).unwrap();
    assert_eq!(f.arch, Arch::Aarch64);
    assert_eq!(f.builds[0].module, m("zlib/1.3-GCCcore-13.2.0"));
    assert!(matches!(
        batch_file_of_plan(&plan, &ps.platforms[1], &ex, 0),
        Err(KeyError::NoPlatform(_))
    ));
    assert!(matches!(
        batch_file_of_plan(&plan, arm, &ex, 2),
        Err(KeyError::NoBatch { batch: 2, .. })
    ));
    let mut no_table = plan.clone();
    no_table.modules.clear();
    assert!(matches!(
        batch_file_of_plan(&no_table, arm, &ex, 0),
        Err(KeyError::NoModuleTable(Arch::Aarch64))
    ));
}

#[test]
fn batch_file_refuses_invalid_plans() {
    let ps = platforms();
    let pl = &ps.platforms[1];
    let ex = e("run-1");
    // A hostile module name in the batch.
    let (mut plan, mut t) = two_batch_plan(pl);
    plan.batches[0].modules.push("a/b;rm -rf /".into());
    t.insert("a/b;rm -rf /".into(), planned("a/b", &[]));
    let err = batch_file(&plan, &t, pl, &ex, 0).unwrap_err();
    assert_eq!(kind_of(err), NameKind::Module);
    // ... in what it loads.
    let (plan, mut t) = two_batch_plan(pl);
    t.insert("$(id)/1".into(), planned("x/1", &[]));
    let zlib = t.get_mut("zlib/1.3-GCCcore-13.2.0").unwrap();
    zlib.runtime_deps.push("$(id)/1".into());
    let err = batch_file(&plan, &t, pl, &ex, 1).unwrap_err();
    assert_eq!(kind_of(err), NameKind::Module);
    // A hostile easyconfig path in the table.
    let (plan, mut t) = two_batch_plan(pl);
    t.get_mut("zlib/1.3-GCCcore-13.2.0").unwrap().easyconfig = "../../etc/passwd.eb".into();
    let err = batch_file(&plan, &t, pl, &ex, 0).unwrap_err();
    assert_eq!(kind_of(err), NameKind::EasyconfigPath);
    // A checksum that is not one.
    let (plan, mut t) = two_batch_plan(pl);
    t.get_mut("zlib/1.3-GCCcore-13.2.0")
        .unwrap()
        .easyconfig_sha256 = "abc;id".into();
    let err = batch_file(&plan, &t, pl, &ex, 0).unwrap_err();
    assert_eq!(kind_of(err), NameKind::Sha256);
    // A module missing from the table.
    let (plan, mut t) = two_batch_plan(pl);
    t.remove("zlib/1.3-GCCcore-13.2.0");
    assert!(matches!(
        batch_file(&plan, &t, pl, &ex, 0),
        Err(KeyError::NotInTable { batch: 0, .. })
    ));
    // The plan of another platform.
    let (plan, t) = two_batch_plan(pl);
    assert!(matches!(
        batch_file(&plan, &t, &ps.platforms[0], &ex, 0),
        Err(KeyError::PlatformMismatch { .. })
    ));
    // A batch that comes after itself.
    let (mut plan, t) = two_batch_plan(pl);
    plan.batches[1].after = vec![1];
    assert!(matches!(
        batch_file(&plan, &t, pl, &ex, 1),
        Err(KeyError::BatchOrder { batch: 1, .. })
    ));
    // A platform whose settings would reach the node unchecked.
    let (plan, t) = two_batch_plan(pl);
    let mut bad = pl.clone();
    bad.cpu.optarch = "GCC:march=znver3 $(id)".into();
    let err = batch_file(&plan, &t, &bad, &ex, 0).unwrap_err();
    assert_eq!(kind_of(err), NameKind::Optarch);
    let mut bad = pl.clone();
    bad.cpu.archspec = "zen3\nx".into();
    let err = batch_file(&plan, &t, &bad, &ex, 0).unwrap_err();
    assert_eq!(kind_of(err), NameKind::Archspec);
    let mut bad = ps.platforms[2].clone();
    bad.base = None;
    bad.gpu.as_mut().unwrap().cuda_compute_capability = Some("9.0;id".into());
    let (plan, t) = two_batch_plan(&bad);
    let err = batch_file(&plan, &t, &bad, &ex, 0).unwrap_err();
    assert_eq!(kind_of(err), NameKind::CudaComputeCapability);
}

#[test]
fn tampered_batch_files_are_refused() {
    let ps = platforms();
    let pl = &ps.platforms[1];
    let (plan, t) = two_batch_plan(pl);
    let f = batch_file(&plan, &t, pl, &e("run-1"), 1).unwrap();
    let json = serde_json::to_string(&f).unwrap();
    for (from, to) in [
        ("zlib/1.3-GCCcore-13.2.0\"", "zlib/1.3;id\""),
        ("\"execution\":\"run-1\"", "\"execution\":\"run 1\""),
        (
            "\"platform\":\"amzn-2023_epyc-gen-3\"",
            "\"platform\":\"../x_y\"",
        ),
        ("\"easyconfig\":\"p/", "\"easyconfig\":\"/p/"),
    ] {
        let bad = json.replacen(from, to, 1);
        assert_ne!(bad, json, "{from}");
        assert!(BatchFile::from_json(&bad).is_err(), "{to}");
    }
    // Keys that do not follow the layout.
    let mut g = f.clone();
    g.needs[0].tarball_key = "other/key.tar.zst".into();
    assert!(matches!(g.validate(), Err(KeyError::Inconsistent { .. })));
    let mut g = f.clone();
    g.needs[0].module_file_key = "other/key.lua".into();
    assert!(matches!(g.validate(), Err(KeyError::Inconsistent { .. })));
    let mut g = f.clone();
    g.builds[0].easyconfig_key = "easyconfigs/x.eb".into();
    assert!(matches!(g.validate(), Err(KeyError::Inconsistent { .. })));
    let mut g = f.clone();
    g.builds[0].easyconfig_sha256 = "ABC".into();
    assert_eq!(kind_of(g.validate().unwrap_err()), NameKind::Sha256);
    assert!(matches!(BatchFile::from_json("{"), Err(KeyError::Json(_))));
}

fn synthetic_plan(platforms: &[&Platform], batches: usize, per_batch: usize) -> Plan {
    let mut modules: std::collections::BTreeMap<Arch, ModuleTable> = Default::default();
    let plans = platforms
        .iter()
        .map(|pl| {
            let table = modules.entry(pl.arch()).or_default();
            let list: Vec<Batch> = (0..batches)
                .map(|index| {
                    let mods: Vec<String> = (0..per_batch)
                        .map(|j| format!("Software-{index}-{j}/1.0-GCCcore-13.2.0"))
                        .collect();
                    // Each needs the first module of every earlier batch.
                    let needs: Vec<String> = (0..index)
                        .map(|i| format!("Software-{i}-0/1.0-GCCcore-13.2.0"))
                        .collect();
                    let needs: Vec<&str> = needs.iter().map(String::as_str).collect();
                    for mname in &mods {
                        table.insert(mname.clone(), planned(mname, &needs));
                    }
                    Batch {
                        index,
                        modules: mods,
                        // The worst case: every batch after every earlier one.
                        after: (0..index).collect(),
                    }
                })
                .collect();
            PlatformPlan {
                platform: pl.name.clone(),
                arch: pl.arch(),
                base: None,
                from_base: 0,
                targets: vec![],
                closure: batches * per_batch + 10,
                batches: list,
                graph: vec![],
                estimate: None,
                optarch: Default::default(),
                gcc: Default::default(),
                already_built: 10,
                unresolvable: vec![Unresolvable {
                    easyconfig: "x/X/X-1.eb".into(),
                    error: "no".into(),
                }],
            }
        })
        .collect();
    Plan {
        easyconfigs: 0,
        problems: Default::default(),
        platforms: plans,
        modules,
        dot: None,
    }
}

#[test]
fn plan_output_of_3_platforms_by_200_batches_fits_a_state() {
    let ps = platforms();
    let refs: Vec<&Platform> = ps.platforms.iter().collect();
    let plan = synthetic_plan(&refs, 200, 50);
    let ex = e(&"e".repeat(80));
    let out = plan_output(&plan, &refs, &ex).unwrap();
    let json = serde_json::to_string(&out).unwrap();
    assert!(json.len() < STATE_PAYLOAD_LIMIT, "{} bytes", json.len());
    assert!(!out.nothing_to_do);
    assert_eq!(out.plan_key, format!("plans/{ex}/plan.json"));
    // The CUDA overlay goes with its base, after which it runs.
    assert_eq!(out.platforms.len(), 2);
    let base = &out.platforms[1];
    assert_eq!(base.platform.as_str(), "amzn-2023_epyc-gen-3");
    assert_eq!(base.overlays.len(), 1);
    assert!(out.platforms[0].overlays.is_empty());
    let gpu = &base.overlays[0];
    assert_eq!(gpu.platform.as_str(), "amzn-2023_epyc-gen-3_h100");
    assert_eq!(gpu.arch, Arch::X86_64);
    assert_eq!(gpu.families, ["c6a", "m6a"]);
    assert_eq!(gpu.to_build, 200 * 50);
    assert_eq!(gpu.already_built, 10);
    assert_eq!(gpu.unresolvable, 1);
    assert_eq!(
        gpu.graph_key,
        format!("plans/{ex}/amzn-2023_epyc-gen-3_h100/graph.json")
    );
    assert!(gpu.name_prefix.len() <= ebfleet_core::unit::MAX_CHILD_PREFIX);
    let back: PlanOutput = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);
}

#[test]
fn plan_output_size_does_not_grow_with_batches() {
    let ps = platforms();
    let refs: Vec<&Platform> = ps.platforms.iter().collect();
    let ex = e("run-1");
    let small = plan_output(&synthetic_plan(&refs, 1, 1), &refs, &ex).unwrap();
    let big = plan_output(&synthetic_plan(&refs, 2000, 5), &refs, &ex).unwrap();
    let len = |o: &PlanOutput| serde_json::to_string(o).unwrap().len();
    // Only the digits of the counts differ.
    assert!(
        len(&big) < len(&small) + 3 * 12,
        "{} vs {}",
        len(&big),
        len(&small)
    );
}

#[test]
fn plan_with_nothing_to_build_is_nothing_to_do() {
    let ps = platforms();
    let refs: Vec<&Platform> = ps.platforms.iter().collect();
    let plan = synthetic_plan(&refs, 0, 0);
    let out = plan_output(&plan, &refs, &e("run-1")).unwrap();
    assert!(out.nothing_to_do);
    assert!(out.platforms.iter().all(|p| p.to_build == 0));
    // No platform at all is nothing to do too.
    let empty = synthetic_plan(&[], 0, 0);
    assert!(
        plan_output(&empty, &refs, &e("run-1"))
            .unwrap()
            .nothing_to_do
    );
    // One platform with work is enough.
    let mut plan = synthetic_plan(&refs, 0, 0);
    plan.platforms[1] = synthetic_plan(&refs[1..2], 1, 1).platforms.remove(0);
    assert!(
        !plan_output(&plan, &refs, &e("run-1"))
            .unwrap()
            .nothing_to_do
    );
}

#[test]
fn plan_output_refuses_unknown_platforms() {
    let ps = platforms();
    let refs: Vec<&Platform> = ps.platforms.iter().collect();
    let plan = synthetic_plan(&refs, 3, 1);
    assert!(matches!(
        plan_output(&plan, &refs[..2], &e("run-1")),
        Err(KeyError::NoPlatform(_))
    ));
}
