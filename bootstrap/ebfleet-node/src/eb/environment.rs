//! `eb`'s environment: the node's, without inherited `EASYBUILD_*` or
//! `MODULEPATH`, and without the agent's AWS settings and credentials, its
//! SSM parameters (the task token among them) and `EBFLEET_TASK_TOKEN`:
//! a build is not trusted with them. Then node.env's settings, then what the node's layout and
//! the batch decide:
//!
//! | variable | value |
//! |---|---|
//! | `EASYBUILD_PREFIX` | the root |
//! | `EASYBUILD_INSTALLPATH` | the root; a CUDA overlay's layer under it |
//! | `EASYBUILD_SOURCEPATH` | `<root>/sources` |
//! | `EASYBUILD_BUILDPATH` | node.env's, else `<root>/build` |
//! | `EASYBUILD_ROBOT_PATHS` | `<root>/easyconfigs`, then node.env's |
//! | `EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES` | `1` when the node runs as root and node.env does not set it |
//! | `EASYBUILD_MODULES_TOOL`, `EASYBUILD_MODULE_SYNTAX` | `Lmod`, `Lua` |
//! | `EASYBUILD_OPTARCH` | the batch file's |
//! | `EASYBUILD_CUDA_COMPUTE_CAPABILITIES` | the batch file's, or unset |
//! | `EASYBUILD_TMP_LOGDIR` | the module's log directory in the batch state |
//! | `EASYBUILD_PARALLEL` | node.env's (else EasyBuild's own choice); on a retry after running out of memory, node.env's or the CPU count halved `jobs_halved` times, at least 1 |
//! | `MODULEPATH` | `<root>/modules/all`; an overlay's `<layer>/modules/all` before it |
//!
//! node.env may set the prefix, installpath and sourcepath only to these
//! same values, and must not move modules (`EASYBUILD_INSTALLPATH_*`,
//! `EASYBUILD_SUBDIR_*`, another naming scheme or syntax): the S3 layout
//! and the tarballs rely on `software/<Name>/<version>` and
//! `modules/all/<Name>/<version>.lua`. `EBFLEET_ARCHSPEC`, when set, must be
//! the batch's archspec: a node never builds for another CPU.

use crate::envfile::NodeEnv;
use crate::layout::Layout;
use ebfleet_core::wire::BatchFile;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// node.env settings that would move installations or module files away
/// from the node's layout.
const LAYOUT_MOVERS: &[&str] = &[
    "EASYBUILD_INSTALLPATH_SOFTWARE",
    "EASYBUILD_INSTALLPATH_MODULES",
    "EASYBUILD_SUBDIR_SOFTWARE",
    "EASYBUILD_SUBDIR_MODULES",
    "EASYBUILD_SUFFIX_MODULES_PATH",
    "EASYBUILD_SUBDIR_USER_MODULES",
];

#[derive(Debug, thiserror::Error)]
pub enum EbEnvError {
    #[error("{file}: {key}={value} disagrees with the node's layout, which needs {expected}")]
    Conflict {
        file: PathBuf,
        key: String,
        value: String,
        expected: String,
    },
    #[error("{file}: {key} would move modules out of the layout (software/<Name>/<version>, modules/all); remove it")]
    Moves { file: PathBuf, key: String },
    #[error("this node's CPU is {node} ({file}: EBFLEET_ARCHSPEC), but the batch is for {batch}: refusing to build for another CPU")]
    WrongCpu {
        file: PathBuf,
        node: String,
        batch: String,
    },
}

/// The environment of every `eb` of a batch (without the per-module
/// `EASYBUILD_TMP_LOGDIR`).
pub fn environment(
    node: &NodeEnv,
    layout: &Layout,
    batch: &BatchFile,
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<BTreeMap<OsString, OsString>, EbEnvError> {
    let file = node.path().to_path_buf();
    let root = layout.root();
    let must_be = |key: &str, expected: &Path| -> Result<(), EbEnvError> {
        match node.get(key) {
            Some(v) if Path::new(v) != expected => Err(EbEnvError::Conflict {
                file: file.clone(),
                key: key.to_string(),
                value: v.to_string(),
                expected: expected.display().to_string(),
            }),
            _ => Ok(()),
        }
    };
    must_be("EASYBUILD_PREFIX", root)?;
    // node.env describes the node, whose stack is the base's.
    must_be("EASYBUILD_INSTALLPATH", layout.base().installpath())?;
    must_be("EASYBUILD_SOURCEPATH", &layout.sources())?;
    for (key, expected) in [
        ("EASYBUILD_MODULES_TOOL", "Lmod"),
        ("EASYBUILD_MODULE_SYNTAX", "Lua"),
        ("EASYBUILD_MODULE_NAMING_SCHEME", "EasyBuildMNS"),
    ] {
        if let Some(v) = node.get(key).filter(|v| *v != expected) {
            return Err(EbEnvError::Conflict {
                file: file.clone(),
                key: key.to_string(),
                value: v.to_string(),
                expected: expected.to_string(),
            });
        }
    }
    if let Some(key) = LAYOUT_MOVERS.iter().find(|k| node.get(k).is_some()) {
        return Err(EbEnvError::Moves {
            file,
            key: key.to_string(),
        });
    }
    if let Some(cpu) = node
        .get("EBFLEET_ARCHSPEC")
        .filter(|c| *c != batch.archspec)
    {
        return Err(EbEnvError::WrongCpu {
            file,
            node: cpu.to_string(),
            batch: batch.archspec.clone(),
        });
    }
    if let Some(o) = node
        .get("EASYBUILD_OPTARCH")
        .filter(|o| *o != batch.optarch)
    {
        tracing::warn!(node_env = o, batch = %batch.optarch, "node.env's optarch differs from the batch's; using the batch's");
    }
    let mut env: BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !k.starts_with("EASYBUILD_")
                && k != "MODULEPATH"
                && !k.starts_with("AWS_")
                && !k.starts_with("SSM_")
                && k != "EBFLEET_TASK_TOKEN"
        })
        .collect();
    for (k, v) in node.vars() {
        env.insert(k.into(), v.into());
    }
    let mut set = |k: &str, v: OsString| {
        env.insert(k.into(), v);
    };
    set("EASYBUILD_PREFIX", root.into());
    set("EASYBUILD_INSTALLPATH", layout.installpath().into());
    set("EASYBUILD_SOURCEPATH", layout.sources().into());
    let build = node
        .get("EASYBUILD_BUILDPATH")
        .map_or_else(|| layout.build().into_os_string(), OsString::from);
    set("EASYBUILD_BUILDPATH", build);
    // The batch's easyconfigs first, then node.env's paths (without the
    // batch's directory again, which the bootstrap may list itself).
    let ours = layout.easyconfigs();
    let mut robot = ours.clone().into_os_string();
    for p in node.get("EASYBUILD_ROBOT_PATHS").unwrap_or("").split(':') {
        if !p.is_empty() && Path::new(p) != ours {
            robot.push(":");
            robot.push(p);
        }
    }
    set("EASYBUILD_ROBOT_PATHS", robot);
    // SSM Run Command runs the node as root on a disposable instance, and
    // EasyBuild refuses root unless told; node.env may still say otherwise.
    if crate::machine::running_as_root() && node.get(ALLOW_ROOT).is_none() {
        set(ALLOW_ROOT, "1".into());
    }
    set("EASYBUILD_MODULES_TOOL", "Lmod".into());
    set("EASYBUILD_MODULE_SYNTAX", "Lua".into());
    set("EASYBUILD_OPTARCH", batch.optarch.clone().into());
    set("MODULEPATH", layout.module_path());
    if batch.jobs_halved > 0 {
        let jobs = node
            .get("EASYBUILD_PARALLEL")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        let jobs = jobs.checked_shr(batch.jobs_halved).unwrap_or(0).max(1);
        set("EASYBUILD_PARALLEL", jobs.to_string().into());
    }
    match &batch.cuda_compute_capability {
        Some(cc) => set("EASYBUILD_CUDA_COMPUTE_CAPABILITIES", cc.clone().into()),
        None => {
            env.remove(&OsString::from("EASYBUILD_CUDA_COMPUTE_CAPABILITIES"));
        }
    }
    Ok(env)
}

/// EasyBuild's switch for running as root.
pub const ALLOW_ROOT: &str = "EASYBUILD_ALLOW_USE_AS_ROOT_AND_ACCEPT_CONSEQUENCES";

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::arch::Arch;

    fn batch() -> BatchFile {
        BatchFile {
            execution: "run-1".parse().unwrap(),
            platform: "amzn-2023_epyc-gen-3_h100".parse().unwrap(),
            arch: Arch::X86_64,
            archspec: "zen3".into(),
            optarch: "GCC:march=znver3".into(),
            cuda_compute_capability: Some("9.0".into()),
            base: None,
            batch: 0,
            builds: vec![],
            needs: vec![],
            after: vec![],
            jobs_halved: 0,
            node: None,
            signing_key: None,
        }
    }

    fn node(text: &str) -> NodeEnv {
        NodeEnv::parse(text, Path::new("/etc/ebfleet/node.env")).unwrap()
    }

    fn get<'a>(env: &'a BTreeMap<OsString, OsString>, k: &str) -> Option<&'a str> {
        env.get(&OsString::from(k)).and_then(|v| v.to_str())
    }

    #[test]
    fn a_retry_after_running_out_of_memory_halves_the_jobs() {
        let layout = Layout::new("/opt/eb");
        let jobs = |node_env: &str, halved: u32| {
            let b = BatchFile {
                jobs_halved: halved,
                ..batch()
            };
            let env = environment(&node(node_env), &layout, &b, []).unwrap();
            get(&env, "EASYBUILD_PARALLEL").map(str::to_string)
        };
        assert_eq!(jobs("", 0), None, "EasyBuild's own choice");
        assert_eq!(jobs("EASYBUILD_PARALLEL=16\n", 0).as_deref(), Some("16"));
        assert_eq!(jobs("EASYBUILD_PARALLEL=16\n", 1).as_deref(), Some("8"));
        assert_eq!(jobs("EASYBUILD_PARALLEL=16\n", 3).as_deref(), Some("2"));
        assert_eq!(jobs("EASYBUILD_PARALLEL=3\n", 40).as_deref(), Some("1"));
        let cpus = std::thread::available_parallelism().unwrap().get() as u32;
        assert_eq!(jobs("", 1), Some((cpus / 2).max(1).to_string()));
    }

    #[test]
    fn a_cuda_overlay_installs_into_its_layer_over_the_base() {
        let overlay = BatchFile {
            base: Some("amzn-2023_epyc-gen-3".parse().unwrap()),
            ..batch()
        };
        let layout = Layout::new("/opt/eb").for_batch(&overlay);
        // node.env names the node's own (the base's) installpath.
        let env = environment(
            &node("EASYBUILD_INSTALLPATH=/opt/eb\n"),
            &layout,
            &overlay,
            [],
        )
        .unwrap();
        assert_eq!(
            get(&env, "EASYBUILD_INSTALLPATH"),
            Some("/opt/eb/accel/nvidia/cc90")
        );
        assert_eq!(
            get(&env, "MODULEPATH"),
            Some("/opt/eb/accel/nvidia/cc90/modules/all:/opt/eb/modules/all")
        );
        assert_eq!(get(&env, "EASYBUILD_PREFIX"), Some("/opt/eb"));
        assert_eq!(get(&env, "EASYBUILD_SOURCEPATH"), Some("/opt/eb/sources"));
        // Its base's needs unpack into the base; a batch with no base is
        // laid out as before.
        assert_eq!(layout.base().software(), Path::new("/opt/eb/software"));
        assert_eq!(
            Layout::new("/opt/eb").for_batch(&batch()),
            Layout::new("/opt/eb")
        );
    }

    #[test]
    fn the_layout_and_the_batch_decide_eb_s_settings() {
        let layout = Layout::new("/opt/eb");
        let inherited = [
            ("PATH", "/usr/bin"),
            ("EASYBUILD_INSTALLPATH", "/home/me/.local/easybuild"),
            ("EASYBUILD_DEBUG", "1"),
            ("MODULEPATH", "/usr/share/modulefiles"),
            // The agent's own: never a build's.
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("SSM_taskToken", "token"),
            ("EBFLEET_TASK_TOKEN", "token"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = environment(
            &node(
                "EASYBUILD_PREFIX=/opt/eb/\nEASYBUILD_BUILDPATH=/mnt/nvme/build\nEASYBUILD_ROBOT_PATHS=/opt/eb/venv/ecs\n\
                 EASYBUILD_OPTARCH=GCC:march=native\nLMOD_CMD=/usr/share/lmod/lmod/libexec/lmod\nEBFLEET_ARCHSPEC=zen3\n",
            ),
            &layout,
            &batch(),
            inherited,
        )
        .unwrap();
        assert_eq!(get(&env, "PATH"), Some("/usr/bin"));
        let leaked: Vec<_> = env
            .keys()
            .filter(|k| {
                let k = k.to_string_lossy();
                k.starts_with("AWS_") || k.starts_with("SSM_") || k == "EBFLEET_TASK_TOKEN"
            })
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        assert_eq!(
            get(&env, "EASYBUILD_DEBUG"),
            None,
            "inherited EASYBUILD_* are dropped"
        );
        assert_eq!(get(&env, "EASYBUILD_PREFIX"), Some("/opt/eb"));
        assert_eq!(get(&env, "EASYBUILD_INSTALLPATH"), Some("/opt/eb"));
        assert_eq!(get(&env, "EASYBUILD_SOURCEPATH"), Some("/opt/eb/sources"));
        assert_eq!(get(&env, "EASYBUILD_BUILDPATH"), Some("/mnt/nvme/build"));
        assert_eq!(
            get(&env, "EASYBUILD_ROBOT_PATHS"),
            Some("/opt/eb/easyconfigs:/opt/eb/venv/ecs")
        );
        // The bootstrap's own list, which names the batch's directory too.
        let env2 = environment(
            &node("EASYBUILD_ROBOT_PATHS=/opt/eb/easyconfigs:/opt/eb/venv/ecs\n"),
            &layout,
            &batch(),
            [],
        )
        .unwrap();
        assert_eq!(
            get(&env2, "EASYBUILD_ROBOT_PATHS"),
            Some("/opt/eb/easyconfigs:/opt/eb/venv/ecs")
        );
        assert_eq!(
            get(&env2, ALLOW_ROOT).is_some(),
            crate::machine::running_as_root(),
            "allowed as root only"
        );
        assert_eq!(
            get(&env, "EASYBUILD_OPTARCH"),
            Some("GCC:march=znver3"),
            "the batch's"
        );
        assert_eq!(
            get(&env, "EASYBUILD_CUDA_COMPUTE_CAPABILITIES"),
            Some("9.0")
        );
        assert_eq!(get(&env, "EASYBUILD_MODULE_SYNTAX"), Some("Lua"));
        assert_eq!(get(&env, "MODULEPATH"), Some("/opt/eb/modules/all"));
        assert_eq!(
            get(&env, "LMOD_CMD"),
            Some("/usr/share/lmod/lmod/libexec/lmod")
        );
        // Defaults when node.env says nothing; CPU platforms get no CUDA.
        let mut cpu = batch();
        cpu.cuda_compute_capability = None;
        let env = environment(
            &node("EASYBUILD_CUDA_COMPUTE_CAPABILITIES=8.0\n"),
            &layout,
            &cpu,
            [],
        )
        .unwrap();
        assert_eq!(get(&env, "EASYBUILD_BUILDPATH"), Some("/opt/eb/build"));
        assert_eq!(
            get(&env, "EASYBUILD_ROBOT_PATHS"),
            Some("/opt/eb/easyconfigs")
        );
        assert_eq!(get(&env, "EASYBUILD_CUDA_COMPUTE_CAPABILITIES"), None);
    }

    /// node.env as `bootstrap.sh --dry-run --os debian-12 --platform
    /// amzn-2023_epyc-gen-4 --archspec zen4 --optarch GCC:march=znver4`
    /// writes it: the two sides of the file agree.
    const BOOTSTRAP_NODE_ENV: &str = "\
EASYBUILD_PREFIX=/opt/eb
EASYBUILD_INSTALLPATH=/opt/eb
EASYBUILD_SOURCEPATH=/opt/eb/sources
EASYBUILD_BUILDPATH=/opt/eb/build
EASYBUILD_ROBOT_PATHS=/opt/eb/easyconfigs:/opt/eb/venv/easybuild/easyconfigs
EASYBUILD_OPTARCH=GCC:march=znver4
EASYBUILD_PARALLEL=2
EASYBUILD_MODULES_TOOL=Lmod
EASYBUILD_MODULE_SYNTAX=Lua
LMOD_CMD=/usr/share/lmod/lmod/libexec/lmod
EB_PYTHON=/opt/eb/venv/bin/python
EBFLEET_EB=/opt/eb/venv/bin/eb
EBFLEET_PLATFORM=amzn-2023_epyc-gen-4
EBFLEET_ARCHSPEC=zen4
EBFLEET_INSTANCE_TYPE=unknown
";

    #[test]
    fn the_bootstraps_node_env_is_accepted() {
        let mut b = batch();
        b.archspec = "zen4".into();
        b.optarch = "GCC:march=znver4".into();
        b.cuda_compute_capability = None;
        let n = node(BOOTSTRAP_NODE_ENV);
        let env = environment(&n, &Layout::new("/opt/eb"), &b, []).unwrap();
        assert_eq!(
            get(&env, "EASYBUILD_ROBOT_PATHS"),
            Some("/opt/eb/easyconfigs:/opt/eb/venv/easybuild/easyconfigs")
        );
        assert_eq!(get(&env, "EB_PYTHON"), Some("/opt/eb/venv/bin/python"));
        assert_eq!(get(&env, "EASYBUILD_PARALLEL"), Some("2"));
        assert_eq!(
            crate::eb::program(&n),
            OsString::from("/opt/eb/venv/bin/eb")
        );
        // Another root than the bootstrap's is refused, not silently mixed.
        let err = environment(&n, &Layout::new("/srv/eb"), &b, []).unwrap_err();
        assert!(
            err.to_string().contains("EASYBUILD_PREFIX=/opt/eb"),
            "{err}"
        );
    }

    #[test]
    fn settings_that_break_the_layout_or_the_cpu_are_refused() {
        let layout = Layout::new("/opt/eb");
        for (text, needle) in [
            (
                "EASYBUILD_INSTALLPATH=/srv/eb\n",
                "EASYBUILD_INSTALLPATH=/srv/eb",
            ),
            ("EASYBUILD_SOURCEPATH=/srv/src\n", "needs /opt/eb/sources"),
            ("EASYBUILD_MODULE_SYNTAX=Tcl\n", "needs Lua"),
            ("EASYBUILD_MODULES_TOOL=EnvironmentModules\n", "needs Lmod"),
            (
                "EASYBUILD_MODULE_NAMING_SCHEME=HierarchicalMNS\n",
                "EasyBuildMNS",
            ),
            ("EASYBUILD_INSTALLPATH_MODULES=/x\n", "would move modules"),
            (
                "EBFLEET_ARCHSPEC=neoverse_v1\n",
                "this node's CPU is neoverse_v1",
            ),
        ] {
            let err = environment(&node(text), &layout, &batch(), [])
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                err.contains("/etc/ebfleet/node.env") || err.contains("node.env"),
                "{err}"
            );
        }
    }
}
