//! The batch a step works on: the command line's values parsed into the
//! domain's validated types, and the batch file read and checked against
//! them, before anything else happens.
//!
//! What is refused here never reaches a path, a key or `eb`'s command
//! line: names outside EasyBuild's module-name grammar (`;`, `$(…)`,
//! backticks, `..`, newlines, absolute paths — by `ebfleet_core::names`),
//! keys that are not the layout's key for their module, a batch file of
//! another execution, platform or batch, an easyconfig that is not the
//! module's own file, a module listed twice, or both built and needed.

use ebfleet_aws::s3::{S3Error, Store};
use ebfleet_core::names::{ExecutionName, KeyError, ModuleName, PlatformName};
use ebfleet_core::step::{BatchKey, BucketName, StepError};
use ebfleet_core::wire::BatchFile;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("--{arg}: {source}")]
    Arg {
        arg: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("--batch {key} is for {what} {in_key}, but --{what} is {arg}")]
    KeyMismatch {
        key: String,
        what: &'static str,
        in_key: String,
        arg: String,
    },
    #[error("reading batch file s3://{bucket}/{key}: {source}")]
    Read {
        bucket: String,
        key: String,
        #[source]
        source: Box<S3Error>,
    },
    #[error("batch file {key} refused: {source}")]
    Invalid {
        key: String,
        #[source]
        source: KeyError,
    },
    #[error("batch file {key} refused: not UTF-8")]
    NotUtf8 { key: String },
    #[error("batch file {key} refused: its {what} is {in_file}, but this step is for {expected}")]
    Mismatch {
        key: String,
        what: &'static str,
        in_file: String,
        expected: String,
    },
    #[error("batch file {key} refused: {module} is built from {easyconfig}, which is not its easyconfig ({expected})")]
    Easyconfig {
        key: String,
        module: String,
        easyconfig: String,
        expected: String,
    },
    #[error("batch file {key} refused: {module} is listed twice in {list}")]
    Duplicate {
        key: String,
        module: String,
        list: &'static str,
    },
    #[error("batch file {key} refused: {module} is both built and needed")]
    BuiltAndNeeded { key: String, module: String },
}

fn arg<E: std::error::Error + Send + Sync + 'static>(
    name: &'static str,
) -> impl FnOnce(E) -> JobError {
    move |e| JobError::Arg {
        arg: name,
        source: Box::new(e),
    }
}

/// One step's batch: bucket, batch key, execution and platform, validated
/// and consistent with each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub bucket: BucketName,
    pub key: BatchKey,
}

impl Job {
    /// Parse the four values of the SSM document's command line. The key's
    /// execution and platform must be the arguments'.
    pub fn parse(
        bucket: &str,
        batch: &str,
        execution: &str,
        platform: &str,
    ) -> Result<Self, JobError> {
        let bucket: BucketName = bucket.parse().map_err(arg::<StepError>("bucket"))?;
        let key: BatchKey = batch.parse().map_err(arg::<StepError>("batch"))?;
        let execution: ExecutionName = execution.parse().map_err(arg::<KeyError>("execution"))?;
        let platform: PlatformName = platform.parse().map_err(arg::<KeyError>("platform"))?;
        if key.execution() != &execution {
            return Err(JobError::KeyMismatch {
                key: key.to_string(),
                what: "execution",
                in_key: key.execution().to_string(),
                arg: execution.to_string(),
            });
        }
        if key.platform() != &platform {
            return Err(JobError::KeyMismatch {
                key: key.to_string(),
                what: "platform",
                in_key: key.platform().to_string(),
                arg: platform.to_string(),
            });
        }
        Ok(Job { bucket, key })
    }

    pub fn execution(&self) -> &ExecutionName {
        self.key.execution()
    }

    pub fn platform(&self) -> &PlatformName {
        self.key.platform()
    }

    pub fn batch(&self) -> usize {
        self.key.batch()
    }

    /// Read the batch file from the bucket and [`check`](Self::check) it.
    pub async fn fetch(&self, store: &Store) -> Result<BatchFile, JobError> {
        let key = self.key.as_str();
        let bytes = store
            .get_bytes(key)
            .await
            .map_err(|source| JobError::Read {
                bucket: store.bucket().to_string(),
                key: key.to_string(),
                source: Box::new(source),
            })?;
        self.read(&bytes)
    }

    /// Parse and [`check`](Self::check) a batch file's bytes.
    pub fn read(&self, bytes: &[u8]) -> Result<BatchFile, JobError> {
        let key = self.key.to_string();
        let text =
            std::str::from_utf8(bytes).map_err(|_| JobError::NotUtf8 { key: key.clone() })?;
        let file = BatchFile::from_json(text).map_err(|source| JobError::Invalid {
            key: key.clone(),
            source,
        })?;
        self.check(&file)?;
        Ok(file)
    }

    /// What [`BatchFile::validate`] cannot know: that the file is this
    /// step's batch, and that its lists make sense for a node.
    pub fn check(&self, file: &BatchFile) -> Result<(), JobError> {
        let key = self.key.to_string();
        let mismatch = |what, in_file: String, expected: String| JobError::Mismatch {
            key: key.clone(),
            what,
            in_file,
            expected,
        };
        if &file.execution != self.execution() {
            return Err(mismatch(
                "execution",
                file.execution.to_string(),
                self.execution().to_string(),
            ));
        }
        if &file.platform != self.platform() {
            return Err(mismatch(
                "platform",
                file.platform.to_string(),
                self.platform().to_string(),
            ));
        }
        if file.batch != self.batch() {
            return Err(mismatch(
                "batch",
                file.batch.to_string(),
                self.batch().to_string(),
            ));
        }
        let mut built = HashSet::new();
        for b in &file.builds {
            let expected = own_easyconfig(&b.module);
            if b.easyconfig.name() != b.module.name() || b.easyconfig.file_name() != expected {
                return Err(JobError::Easyconfig {
                    key: key.clone(),
                    module: b.module.to_string(),
                    easyconfig: b.easyconfig.to_string(),
                    expected,
                });
            }
            if !built.insert(&b.module) {
                return Err(JobError::Duplicate {
                    key: key.clone(),
                    module: b.module.to_string(),
                    list: "builds",
                });
            }
        }
        let mut needed = HashSet::new();
        for n in &file.needs {
            if built.contains(&n.module) {
                return Err(JobError::BuiltAndNeeded {
                    key: key.clone(),
                    module: n.module.to_string(),
                });
            }
            if !needed.insert(&n.module) {
                return Err(JobError::Duplicate {
                    key: key.clone(),
                    module: n.module.to_string(),
                    list: "needs",
                });
            }
        }
        Ok(())
    }
}

/// The easyconfig file name of a module under EasyBuild's default naming
/// scheme: `<Name>-<version>.eb`, the version without a hidden module's dot.
pub fn own_easyconfig(m: &ModuleName) -> String {
    let v = m.version();
    format!("{}-{}.eb", m.name(), v.strip_prefix('.').unwrap_or(v))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ebfleet_core::arch::Arch;
    use ebfleet_core::layout::{easyconfig_key, module_file_key, tarball_key};
    use ebfleet_core::wire::{BatchBuild, BatchNeed};

    pub(crate) fn batch_file() -> BatchFile {
        let platform: PlatformName = "amzn-2023_epyc-gen-4".parse().unwrap();
        let build = |m: &str, ec: &str| {
            let easyconfig = ec.parse().unwrap();
            BatchBuild {
                module: m.parse().unwrap(),
                easyconfig_key: easyconfig_key(&easyconfig),
                easyconfig,
                easyconfig_sha256: "a".repeat(64),
                memory_per_job_mib: None,
                optarch: None,
            }
        };
        let need = |m: &str| {
            let module: ModuleName = m.parse().unwrap();
            BatchNeed {
                tarball_key: tarball_key(&platform, &module),
                module_file_key: module_file_key(&platform, &module),
                tarball_sha256: None,
                from_base: false,
                module,
            }
        };
        BatchFile {
            execution: "run-1".parse().unwrap(),
            platform: platform.clone(),
            arch: Arch::X86_64,
            archspec: "zen4".into(),
            optarch: "GCC:march=znver4".into(),
            cuda_compute_capability: None,
            base: None,
            batch: 3,
            builds: vec![
                build(
                    "zlib/1.3.1-GCCcore-13.3.0",
                    "z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb",
                ),
                build("bzip2/.1.0.8", "b/bzip2/bzip2-1.0.8.eb"),
            ],
            needs: vec![need("GCCcore/13.3.0")],
            after: vec![0],
            jobs_halved: 0,
            node: None,
            signing_key: None,
        }
    }

    fn job() -> Job {
        Job::parse(
            "ebfleet-bucket",
            "plans/run-1/amzn-2023_epyc-gen-4/3.json",
            "run-1",
            "amzn-2023_epyc-gen-4",
        )
        .unwrap()
    }

    #[test]
    fn a_consistent_batch_is_accepted() {
        let j = job();
        assert_eq!(j.batch(), 3);
        let f = batch_file();
        j.check(&f).unwrap();
        let bytes = serde_json::to_vec(&f).unwrap();
        assert_eq!(j.read(&bytes).unwrap(), f);
    }

    #[test]
    fn hostile_arguments_are_refused_naming_the_argument() {
        let ok = [
            "b-1",
            "plans/run-1/amzn-2023_epyc-gen-4/3.json",
            "run-1",
            "amzn-2023_epyc-gen-4",
        ];
        let cases: [(usize, &str, &str); 9] = [
            (0, "b;rm -rf /", "--bucket"),
            (1, "plans/run-1/../../etc/3.json", "--batch"),
            (1, "/plans/run-1/amzn-2023_epyc-gen-4/3.json", "--batch"),
            (1, "plans/run-1/amzn-2023_epyc-gen-4/3.json\n", "--batch"),
            (2, "$(reboot)", "--execution"),
            (2, "run`id`", "--execution"),
            (3, "amzn-2023_epyc;gen", "--platform"),
            (2, "run-2", "is for execution run-1"),
            (
                3,
                "amzn-2023_epyc-gen-3",
                "is for platform amzn-2023_epyc-gen-4",
            ),
        ];
        for (i, bad, needle) in cases {
            let mut a = ok;
            a[i] = bad;
            let err = Job::parse(a[0], a[1], a[2], a[3]).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn another_batchs_file_is_refused() {
        let j = job();
        for (what, f) in [
            ("execution", {
                let mut f = batch_file();
                f.execution = "run-2".parse().unwrap();
                f
            }),
            ("batch", {
                let mut f = batch_file();
                f.batch = 4;
                f
            }),
        ] {
            match j.check(&f) {
                Err(JobError::Mismatch { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn lists_that_make_no_sense_are_refused() {
        let j = job();
        // Another module's easyconfig.
        let mut f = batch_file();
        f.builds[0].module = "zlib/1.3.2".parse().unwrap();
        assert!(matches!(j.check(&f), Err(JobError::Easyconfig { .. })));
        // A hidden module is built from the visible file name.
        let f = batch_file();
        assert_eq!(own_easyconfig(&f.builds[1].module), "bzip2-1.0.8.eb");
        // Twice.
        let mut f = batch_file();
        f.builds.push(f.builds[0].clone());
        assert!(matches!(
            j.check(&f),
            Err(JobError::Duplicate { list: "builds", .. })
        ));
        let mut f = batch_file();
        f.needs.push(f.needs[0].clone());
        assert!(matches!(
            j.check(&f),
            Err(JobError::Duplicate { list: "needs", .. })
        ));
        // Built and needed.
        let mut f = batch_file();
        let platform = f.platform.clone();
        let module = f.builds[0].module.clone();
        f.needs.push(BatchNeed {
            tarball_key: tarball_key(&platform, &module),
            module_file_key: module_file_key(&platform, &module),
            tarball_sha256: None,
            from_base: false,
            module,
        });
        assert!(matches!(j.check(&f), Err(JobError::BuiltAndNeeded { .. })));
    }

    #[test]
    fn hostile_batch_files_are_refused_before_use() {
        let j = job();
        let good = serde_json::to_string(&batch_file()).unwrap();
        for (from, to) in [
            ("zlib/1.3.1-GCCcore-13.3.0\"", "zlib/1.3.1;reboot\""),
            ("zlib/1.3.1-GCCcore-13.3.0\"", "zlib/$(reboot)\""),
            ("zlib/1.3.1-GCCcore-13.3.0\"", "zlib/`id`\""),
            ("zlib/1.3.1-GCCcore-13.3.0\"", "zlib/../../etc\""),
            ("zlib/1.3.1-GCCcore-13.3.0\"", "zlib/1\\nx\""),
            ("\"z/zlib/", "\"/z/zlib/"),
            ("GCCcore/13.3.0.tar.zst", "../GCCcore/13.3.0.tar.zst"),
            (
                "\"tarball_key\":\"amzn-2023_epyc-gen-4/",
                "\"tarball_key\":\"elsewhere/",
            ),
        ] {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{from}");
            let err = j.read(bad.as_bytes()).unwrap_err();
            assert!(matches!(err, JobError::Invalid { .. }), "{to}: {err}");
            assert!(
                err.to_string().starts_with("batch file plans/run-1/"),
                "{err}"
            );
        }
        assert!(matches!(j.read(b"\xff"), Err(JobError::NotUtf8 { .. })));
    }
}
