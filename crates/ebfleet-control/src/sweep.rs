//! Sweep: the backstop behind every other release path. On a schedule it
//! lists the runs (pipeline executions) that still have instances or pools
//! tagged with their name and asks the pipeline about each: one that has
//! ended is released as the failed-run rule would release it (pools,
//! instances, launch templates) and the leases its units still hold are
//! freed, so other runs need not wait for them to run out. A run the
//! pipeline does not know — another stack's, or older than Step Functions
//! keeps — is left alone: its nodes end themselves at their maximum
//! lifetime.

use crate::env::{self, var, EnvError, Lookup};
use crate::record::lease;
use crate::release;
use crate::schedule::execution_arn;
use crate::Env;
use ebfleet_aws::ec2::Ec2Error;
use ebfleet_aws::sfn::SfnError;
use ebfleet_aws::CallError;
use ebfleet_core::capacity::TAG_EXECUTION;
use ebfleet_core::names::ExecutionName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The pipeline whose runs the tags name.
    pub pipeline: String,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, EnvError> {
        Ok(Settings {
            pipeline: env::required(&lookup, var::STATE_MACHINE_ARN)?,
        })
    }
}

/// The scheduled event; nothing in it is read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Input {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Ended runs released by this sweep.
    pub swept: Vec<Swept>,
    /// Runs still running: left to their own release paths.
    pub running: Vec<String>,
    /// Tag values that name no run of this pipeline: left alone.
    pub unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swept {
    pub execution: String,
    /// How the run ended (`SUCCEEDED`, `FAILED`, `ABORTED`, `TIMED_OUT`).
    pub status: String,
    pub released: release::Output,
    pub leases_freed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sweep: listing tagged instances: {0}")]
    Instances(#[source] Ec2Error),
    #[error("sweep: listing tagged pools: {0}")]
    Pools(#[source] CallError),
    #[error("sweep: run {execution}: {source}")]
    Describe {
        execution: String,
        #[source]
        source: SfnError,
    },
    #[error("sweep: {0}")]
    Release(#[from] release::Error),
    #[error("sweep: {0}")]
    Lease(#[from] crate::record::Error),
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Instances(e) => e.kind(),
            Error::Pools(e) => Kind::retry_or(e.transient, Kind::Failed),
            Error::Describe { source, .. } => Kind::retry_or(source.is_retryable(), Kind::Failed),
            Error::Release(e) => e.kind(),
            Error::Lease(e) => e.kind(),
        }
    }
}

/// The code Step Functions answers for an execution it does not know.
const NO_SUCH_EXECUTION: &str = "ExecutionDoesNotExist";

pub async fn handle(env: &Env, settings: &Settings, _input: Input) -> Result<Output, Error> {
    let mut runs: BTreeSet<String> = env
        .nodes
        .live_executions()
        .await
        .map_err(Error::Instances)?;
    runs.extend(
        env.pools
            .tag_values(TAG_EXECUTION)
            .await
            .map_err(Error::Pools)?,
    );
    let mut out = Output::default();
    for run in runs {
        // A tag is whatever was written on the instance: only a valid name
        // is looked up, and only the pipeline's answer acts on it.
        let Ok(execution) = run.parse::<ExecutionName>() else {
            out.unknown.push(run);
            continue;
        };
        let info = match env
            .sfn
            .describe(&execution_arn(&settings.pipeline, &execution))
            .await
        {
            Ok(info) => info,
            Err(SfnError::Call(e)) if e.detail.contains(NO_SUCH_EXECUTION) => {
                out.unknown.push(run);
                continue;
            }
            Err(source) => {
                return Err(Error::Describe {
                    execution: run,
                    source,
                })
            }
        };
        if info.is_running() {
            out.running.push(run);
            continue;
        }
        tracing::warn!(%execution, status = %info.status, "an ended run still has nodes or pools: releasing");
        let released = release::handle(
            env,
            release::Input {
                execution: execution.clone(),
                platform: None,
                instance_ids: Vec::new(),
            },
        )
        .await?;
        let leases_freed = lease::release_all_of(env, &execution, env.now()).await?;
        out.swept.push(Swept {
            execution: run,
            status: info.status,
            released,
            leases_freed,
        });
    }
    tracing::info!(
        swept = out.swept.len(),
        running = out.running.len(),
        unknown = out.unknown.len(),
        "swept"
    );
    Ok(out)
}
