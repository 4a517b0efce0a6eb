//! What the tests share: the moto configuration, buckets, batch files made
//! with the core types, and running the real binary.

use ebfleet_aws::s3::Store;
use ebfleet_core::arch::Arch;
use ebfleet_core::checksum::sha256_hex;
use ebfleet_core::layout::{batch_key, easyconfig_key, module_file_key, tarball_key};
use ebfleet_core::names::{EasyconfigPath, ExecutionName, ModuleName, PlatformName};
use ebfleet_core::wire::{BatchBuild, BatchFile, BatchNeed};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const PLATFORM: &str = "amzn-2023_epyc-gen-4";
pub const ARCHSPEC: &str = "zen4";
/// The stack's signing key as the tests' unit files name it (an alias in
/// moto, made by [`eb_test`]).
pub const SIGNING_KEY: &str = "alias/ebfleet-node-tests";
/// The principal the test's node uploads as (`<role id>:<instance id>`).
pub const NODE_PRINCIPAL: &str = "AROANODETEST:i-0123456789abcdef0";

/// The shared SDK configuration, or `None` (after a skip note) without a
/// moto server.
pub async fn moto(test: &str) -> Option<ebfleet_aws::SdkConfig> {
    if std::env::var_os("EBFLEET_MOTO_ENDPOINT").is_none() {
        eprintln!("skipping {test}: EBFLEET_MOTO_ENDPOINT is unset (run scripts/test-node.sh)");
        return None;
    }
    Some(ebfleet_aws::load_config().await)
}

/// The `eb` to run, or `None` (after a skip note).
pub fn easybuild(test: &str) -> Option<PathBuf> {
    match std::env::var_os("EBFLEET_TEST_EB") {
        Some(eb) => Some(PathBuf::from(eb)),
        None => {
            eprintln!("skipping {test}: EBFLEET_TEST_EB is unset (run scripts/test-node.sh)");
            None
        }
    }
}

/// What a test with real EasyBuild starts from: moto, `eb`, a temporary
/// directory with `src/` for its fixtures' sources, a new bucket, and a
/// new execution name.
pub struct EbTest {
    pub eb: PathBuf,
    pub dir: tempfile::TempDir,
    pub src: PathBuf,
    pub bucket: String,
    pub s3: aws_sdk_s3::Client,
    pub store: Store,
    pub execution: String,
}

/// [`EbTest`], or `None` (after a skip note) without moto or EasyBuild.
pub async fn eb_test(test: &str) -> Option<EbTest> {
    let conf = moto(test).await?;
    let eb = easybuild(test)?;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let (bucket, s3) = bucket(&conf).await;
    let store = Store::from_conf(&conf, &bucket);
    ebfleet_aws::testing::signing_key(&conf, SIGNING_KEY).await;
    Some(EbTest {
        eb,
        dir,
        src,
        bucket,
        s3,
        store,
        execution: unique("run"),
    })
}

/// A name no other test (nor an earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new versioned bucket (versions show whether anything was written twice).
pub async fn bucket(conf: &ebfleet_aws::SdkConfig) -> (String, aws_sdk_s3::Client) {
    let name = unique("ebfleet-node").to_lowercase();
    let s3 = ebfleet_aws::testing::versioned_bucket(conf, &name).await;
    (name, s3)
}

/// Number of versions of every key in the bucket.
pub async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, usize)> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for v in out.versions() {
        *counts.entry(v.key().unwrap().to_string()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

pub fn module(s: &str) -> ModuleName {
    s.parse().unwrap()
}

/// One easyconfig: where it goes and its text.
pub struct Easyconfig {
    pub module: ModuleName,
    pub path: EasyconfigPath,
    pub text: String,
}

impl Easyconfig {
    pub fn new(module: &str, text: String) -> Self {
        let m = self::module(module);
        let letter = m.name().chars().next().unwrap().to_ascii_lowercase();
        let path = format!("{letter}/{}/{}-{}.eb", m.name(), m.name(), m.version())
            .parse()
            .unwrap();
        Easyconfig {
            module: m,
            path,
            text,
        }
    }

    pub fn build(&self) -> BatchBuild {
        BatchBuild {
            module: self.module.clone(),
            easyconfig_key: easyconfig_key(&self.path),
            easyconfig: self.path.clone(),
            easyconfig_sha256: sha256_hex(self.text.as_bytes()),
            memory_per_job_mib: None,
            optarch: None,
        }
    }

    pub async fn upload(&self, store: &Store) {
        store
            .put_bytes(
                &easyconfig_key(&self.path),
                self.text.clone().into_bytes(),
                "text/plain",
            )
            .await
            .unwrap();
    }
}

/// A batch file made with the core types, as the planner writes it.
pub fn batch_file(
    execution: &str,
    batch: usize,
    builds: &[&Easyconfig],
    needs: &[&str],
) -> BatchFile {
    let platform: PlatformName = PLATFORM.parse().unwrap();
    let f = BatchFile {
        execution: execution.parse::<ExecutionName>().unwrap(),
        platform: platform.clone(),
        arch: Arch::X86_64,
        archspec: ARCHSPEC.into(),
        optarch: "GCC:march=znver4".into(),
        cuda_compute_capability: None,
        base: None,
        batch,
        builds: builds.iter().map(|e| e.build()).collect(),
        needs: needs
            .iter()
            .map(|n| {
                let m = module(n);
                BatchNeed {
                    tarball_key: tarball_key(&platform, &m),
                    module_file_key: module_file_key(&platform, &m),
                    tarball_sha256: None,
                    module: m,
                    from_base: false,
                }
            })
            .collect(),
        after: (0..batch).collect(),
        jobs_halved: 0,
        // As the scheduler names the node: its uploads go under it.
        node: Some(NODE_PRINCIPAL.into()),
        // And the key its needs must be signed with.
        signing_key: Some(SIGNING_KEY.into()),
    };
    f.validate().unwrap();
    f
}

pub async fn put_batch(store: &Store, f: &BatchFile) -> String {
    let key = batch_key(&f.execution, &f.platform, f.batch);
    store.put_json(&key, f).await.unwrap();
    key
}

/// A node: its root, its settings file, and the binary.
pub struct Node {
    pub root: PathBuf,
    pub env_file: PathBuf,
    pub bucket: String,
    /// Prepended to PATH for the binary (EasyBuild's venv).
    pub path_prefix: Option<PathBuf>,
}

/// What a run of the binary gave.
pub struct Ran {
    pub ok: bool,
    pub json: serde_json::Value,
    pub stderr: String,
}

impl Node {
    pub fn new(dir: &Path, bucket: &str, env: &str) -> Self {
        let env_file = dir.join("node.env");
        std::fs::write(&env_file, env).unwrap();
        Node {
            root: dir.join("root"),
            env_file,
            bucket: bucket.to_string(),
            path_prefix: None,
        }
    }

    /// Run `ebfleet-node <step>` for batch `n` of `execution`.
    pub fn run(&self, step: &str, execution: &str, n: usize) -> Ran {
        let key = format!("plans/{execution}/{PLATFORM}/{n}.json");
        self.run_args(&[
            step,
            "--bucket",
            &self.bucket,
            "--batch",
            &key,
            "--execution",
            execution,
            "--platform",
            PLATFORM,
        ])
    }

    pub fn run_args(&self, args: &[&str]) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebfleet-node"));
        cmd.args(args)
            .env("EBFLEET_NODE_ROOT", &self.root)
            .env("EBFLEET_NODE_ENV", &self.env_file)
            .env_remove("EBFLEET_TASK_TOKEN");
        if let Some(p) = &self.path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", p.display()));
        }
        let out: Output = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
        Ran {
            ok: out.status.success(),
            json,
            stderr,
        }
    }

    /// Run a step that must succeed; its JSON result.
    pub fn ok(&self, step: &str, execution: &str, n: usize) -> serde_json::Value {
        let r = self.run(step, execution, n);
        assert!(r.ok, "{step} of batch {n} failed:\n{}", r.stderr);
        r.json
    }
}

/// Every file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}
