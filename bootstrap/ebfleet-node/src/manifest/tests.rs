use super::*;
use crate::build::ModuleBuild;
use crate::context::Header;
use crate::pack::{FileSum, PackedModule};
use ebfleet_core::arch::Arch;
use ebfleet_core::layout::easyconfig_key;
use ebfleet_core::names::PlatformName;
use ebfleet_core::step::Step;
use ebfleet_core::wire::BatchBuild;

const P: &str = "amzn-2023_epyc-gen-4";
const USAGE: ebfleet_core::sizing::BuildUsage = ebfleet_core::sizing::BuildUsage {
    peak_memory_mib: 300,
    cpu_s: 10,
    cpus: 4,
};

fn m(s: &str) -> ModuleName {
    s.parse().unwrap()
}

fn batch(modules: &[&str]) -> BatchFile {
    BatchFile {
        execution: "run-1".parse().unwrap(),
        platform: P.parse().unwrap(),
        arch: Arch::X86_64,
        archspec: "zen4".into(),
        optarch: "GCC:march=znver4".into(),
        cuda_compute_capability: None,
        base: None,
        batch: 2,
        builds: modules
            .iter()
            .map(|s| {
                let module = m(s);
                let v = module.version().trim_start_matches('.').to_string();
                let easyconfig = format!(
                    "{}/{}/{}-{v}.eb",
                    module.name().to_lowercase().chars().next().unwrap(),
                    module.name(),
                    module.name()
                )
                .parse()
                .unwrap();
                BatchBuild {
                    module,
                    easyconfig_key: easyconfig_key(&easyconfig),
                    easyconfig,
                    easyconfig_sha256: "e".repeat(64),
                    memory_per_job_mib: None,
                    optarch: None,
                }
            })
            .collect(),
        needs: vec![],
        after: vec![0, 1],
        jobs_halved: 0,
        node: None,
        signing_key: None,
    }
}

fn header(step: Step) -> Header {
    Header {
        step,
        execution: "run-1".parse().unwrap(),
        platform: P.parse::<PlatformName>().unwrap(),
        batch: 2,
        started: 1_000,
    }
}

fn facts() -> NodeFacts {
    NodeFacts {
        instance_type: "c7a.2xlarge".into(),
        archspec: "zen4".into(),
    }
}

#[test]
fn the_manifest_says_what_each_module_came_to_and_validates() {
    let b = batch(&["hello/1.0", "broken/1.0", "greeter/1.0", "odd/2.0"]);
    let build = BuildResult {
        header: header(Step::Build),
        finished: Some(1_200),
        eb_version: "5.4.1".into(),
        jobs_halved: 0,
        modules: vec![
            ModuleBuild {
                module: m("hello/1.0"),
                easyconfig_sha256: "1".repeat(64),
                outcome: BuildOutcome::Built {
                    duration_s: 3,
                    usage: Some(USAGE),
                },
            },
            ModuleBuild {
                module: m("broken/1.0"),
                easyconfig_sha256: "2".repeat(64),
                outcome: BuildOutcome::Failed {
                    class: ErrorClass::CompileError,
                    message: "make failed".into(),
                    duration_s: 1,
                    log: Some("easybuild-broken-1.0-20261124.035127.LhtCB.log".into()),
                },
            },
            ModuleBuild {
                module: m("greeter/1.0"),
                easyconfig_sha256: "3".repeat(64),
                outcome: BuildOutcome::Skipped {
                    reason: "dependency broken/1.0 failed in this batch".into(),
                },
            },
            ModuleBuild {
                module: m("odd/2.0"),
                easyconfig_sha256: "4".repeat(64),
                outcome: BuildOutcome::Built {
                    duration_s: 9,
                    usage: None,
                },
            },
        ],
    };
    let tar = TarResult {
        header: header(Step::Tar),
        finished: Some(1_300),
        modules: vec![
            PackedModule {
                module: m("hello/1.0"),
                outcome: PackOutcome::Packed {
                    tarball: FileSum {
                        size: 4_321,
                        sha256: "a".repeat(64),
                    },
                    module_file: FileSum {
                        size: 800,
                        sha256: "b".repeat(64),
                    },
                },
            },
            PackedModule {
                module: m("odd/2.0"),
                outcome: PackOutcome::Failed {
                    message: "packing x: symlink to /etc leaves the module's directory".into(),
                },
            },
        ],
    };
    let man = manifest(&b, &build, &tar, &facts(), 1_400);
    man.validate().unwrap();
    assert_eq!(
        (man.execution.as_str(), man.platform.as_str(), man.batch),
        ("run-1", P, 2)
    );
    assert_eq!((man.started, man.finished), (1_000, 1_400));
    assert_eq!(man.eb_version, "5.4.1");
    assert_eq!(man.instance_type, "c7a.2xlarge");
    assert_eq!(
        man.modules
            .iter()
            .map(|e| e.module.as_str())
            .collect::<Vec<_>>(),
        ["hello/1.0", "broken/1.0", "greeter/1.0", "odd/2.0"]
    );
    assert_eq!(
        man.modules[0].outcome,
        Outcome::Built {
            tarball: Tarball {
                key: format!("staging/{P}/run-1/2/software/hello/1.0.tar.zst"),
                size: 4_321,
                sha256: "a".repeat(64),
                version_id: None,
                signature: None,
            },
            module_file_key: format!("staging/{P}/run-1/2/modules/all/hello/1.0.lua"),
            duration_s: 3,
            usage: Some(USAGE),
        }
    );
    assert_eq!(man.modules[0].easyconfig_sha256, "1".repeat(64));
    match &man.modules[1].outcome {
        Outcome::Failed { class, log_key, .. } => {
            assert_eq!(*class, ErrorClass::CompileError);
            assert_eq!(
                log_key.as_deref(),
                Some(
                    format!(
                        "staging/{P}/run-1/2/logs/broken/1.0/easybuild-broken-1.0-20261124.035127.LhtCB.log"
                    )
                    .as_str()
                )
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&man.modules[2].outcome, Outcome::Skipped { reason } if reason.contains("broken/1.0"))
    );
    match &man.modules[3].outcome {
        Outcome::Failed { class, message, .. } => {
            assert_eq!(*class, ErrorClass::Unknown);
            assert!(message.starts_with("built, but not published"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn log_keys_keep_hidden_modules_apart() {
    let b = batch(&["zlib/.1.3"]);
    assert_eq!(
        log_key(&b, &m("zlib/.1.3"), "eb-output.log"),
        format!("staging/{P}/run-1/2/logs/zlib/.1.3/eb-output.log")
    );
}
