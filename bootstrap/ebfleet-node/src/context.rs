//! What every step starts from: the validated job, the node's layout and
//! settings, the bucket; and the errors a step can end with.

use crate::archive::ArchiveError;
use crate::eb::{EbEnvError, EbError};
use crate::envfile::{EnvFileError, NodeEnv};
use crate::job::{Job, JobError};
use crate::layout::{Layout, StateDir, StateError};
use crate::transfer::{TransferError, UploadOptions};
use ebfleet_aws::s3::{S3Error, Store};
use ebfleet_core::names::{ExecutionName, PlatformName};
use ebfleet_core::step::Step;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One step's inputs.
#[derive(Debug, Clone)]
pub struct Context {
    pub job: Job,
    pub layout: Layout,
    pub node: NodeEnv,
    pub store: Store,
    /// Verifies the signatures of needs' tarballs.
    pub kms: ebfleet_aws::kms::Kms,
    /// Downloads and uploads in flight at once.
    pub jobs: usize,
    pub upload: UploadOptions,
}

impl Context {
    /// This context for `batch`'s builds: a CUDA overlay's install into its
    /// layer ([`Layout::for_batch`]).
    pub fn for_batch(&self, batch: &ebfleet_core::wire::BatchFile) -> Context {
        Context {
            layout: self.layout.for_batch(batch),
            ..self.clone()
        }
    }

    pub fn state(&self) -> StateDir {
        self.layout
            .state(self.job.execution(), self.job.platform(), self.job.batch())
    }

    /// The fields every step result starts with.
    pub fn header(&self, step: Step, started: u64) -> Header {
        Header {
            step,
            execution: self.job.execution().clone(),
            platform: self.job.platform().clone(),
            batch: self.job.batch(),
            started,
        }
    }
}

/// The first fields of every step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub step: Step,
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub batch: usize,
    /// Unix seconds.
    pub started: u64,
}

pub use ebfleet_core::clock::unix_now as now;

/// How a step failed. Modules that fail to build are not errors: they are
/// results, reported in the manifest.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Job(Box<JobError>),
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    #[error(transparent)]
    EbEnv(#[from] EbEnvError),
    #[error(transparent)]
    Eb(#[from] EbError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    BuildUser(#[from] crate::build_user::BuildUserError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step run before the one it follows has finished.
    #[error("{step}: {reason}")]
    Order { step: Step, reason: String },
    /// The batch's leases file is there but cannot be used.
    #[error("leases file s3://{bucket}/{key} refused: {reason}")]
    Leases {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("need {module}: {key} was built under installpath {theirs}, this node installs under {ours}; module files and RPATHs hold the path, so every node of a platform must use the same root")]
    Installpath {
        module: String,
        key: String,
        theirs: String,
        ours: String,
    },
    #[error("need {module}: {key} has sha256 {found}, its record says {recorded}: not the tarball that was built, refused (nothing unpacked)")]
    NotTheRecordedTarball {
        module: String,
        key: String,
        recorded: String,
        found: String,
    },
    #[error(
        "need {module}: {key} is not signed by {signing_key}: {why}; refused (nothing unpacked)"
    )]
    NotSigned {
        module: String,
        key: String,
        signing_key: String,
        why: String,
    },
    #[error("need {module}: verifying the signature of {key}: {source}")]
    Verify {
        module: String,
        key: String,
        #[source]
        source: Box<ebfleet_aws::CallError>,
    },
    #[error("this node was set up for platform {node} ({file}: EBFLEET_PLATFORM), not {job}: refusing to work on another platform's batch")]
    WrongPlatform {
        file: PathBuf,
        node: String,
        job: String,
    },
    #[error("{what}: a task failed: {detail}")]
    Task { what: String, detail: String },
}

impl From<JobError> for NodeError {
    fn from(e: JobError) -> Self {
        NodeError::Job(Box::new(e))
    }
}

pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}
