//! Summary: the run's summary stored when it ends — the state machine's
//! `Store the summary` state, served by the release Lambda
//! (`{"summary": <the run's output>}`, see [`crate::release::Request`]).
//!
//! It makes the [`RunSummary`] from what the run ends with (each
//! platform's units, node time and cost as its platform execution
//! reported them) and writes it twice: as JSON at
//! `plans/<execution>/summary.json` and as the `RUN#<execution>` /
//! `SUMMARY` item of the table. The state machine catches its failure:
//! bookkeeping never fails a run.

use crate::Env;
use ebfleet_aws::dynamodb::DynamoError;
use ebfleet_aws::s3::S3Error;
use ebfleet_core::layout::summary_key;
use ebfleet_core::names::{ExecutionName, KeyError};
use ebfleet_core::summary::{RunOutput, RunSummary};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Input {
    /// The run's output (`Summarise`): `{execution, plan_key,
    /// nothing_to_do, platforms}`.
    pub summary: RunOutput,
}

/// Where the summary went and the run's totals.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Output {
    pub summary_key: String,
    pub node_seconds: u64,
    pub instance_hours: f64,
    /// `null` when some platform's dollars are unknown.
    pub usd: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run summary: execution {execution:?}: {source}")]
    Name {
        execution: String,
        #[source]
        source: KeyError,
    },
    #[error("run summary: {0}")]
    Store(#[source] S3Error),
    #[error("run summary: {0}")]
    Record(#[source] Box<DynamoError>),
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Name { .. } => Kind::Invalid,
            Error::Store(e) => e.kind(),
            Error::Record(e) => Kind::retry_or(e.is_retryable(), Kind::Failed),
        }
    }
}

pub async fn handle(env: &Env, input: Input) -> Result<Output, Error> {
    let execution: ExecutionName =
        input
            .summary
            .execution
            .parse()
            .map_err(|source| Error::Name {
                execution: input.summary.execution.clone(),
                source,
            })?;
    let summary = RunSummary::from_output(input.summary, env.now());
    let key = summary_key(&execution);
    env.store
        .put_json(&key, &summary)
        .await
        .map_err(Error::Store)?;
    env.records
        .put_run_summary(&summary, &key)
        .await
        .map_err(|e| Error::Record(Box::new(e)))?;
    tracing::info!(
        execution = %execution,
        node_seconds = summary.node_seconds,
        usd = ?summary.usd,
        "run summary stored"
    );
    Ok(Output {
        summary_key: key,
        node_seconds: summary.node_seconds,
        instance_hours: summary.instance_hours,
        usd: summary.usd,
    })
}

#[cfg(test)]
mod tests;
