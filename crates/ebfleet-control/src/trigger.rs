//! Trigger: EventBridge events start executions of the state machine
//! ([`var::STATE_MACHINE_ARN`]).
//!
//! * An S3 `Object Created` event for a new easyconfig of the stack's
//!   bucket ([`var::BUCKET`]): when nothing runs, start
//!   `<prefix>-<time>-changed-<hash>` planning that key and every pending
//!   one ([`ExecutionInput::for_changes`]). When an execution runs, store
//!   the key as pending (one DynamoDB item, see
//!   `ebfleet_core::trigger::pending`) and start nothing.
//! * A "Step Functions Execution Status Change" event for a terminal status
//!   of our state machine: when nothing else runs and keys are pending,
//!   start one follow-up with all of them.
//! * Anything else is ignored: the output says why (`{"ignored": "…"}`);
//!   it is never an error.
//!
//! Pending keys are removed only after the execution that plans them has
//! started, so a failed start loses nothing. S3 may deliver an event twice;
//! the second start finds the name taken (`AlreadyExists`) and is reported
//! as already started, a success. A run that ends between the trigger's
//! "is one running?" and its write of the pending key would strand the key
//! until the next run, so after the write the trigger asks again and starts
//! the execution itself when the run has ended meanwhile.

use crate::env::{self, var, EnvError, Lookup};
use crate::Env;
use ebfleet_aws::dynamodb::DynamoError;
use ebfleet_aws::sfn::SfnError;
use ebfleet_core::names::{EasyconfigKey, ExecutionName};
use ebfleet_core::trigger::{
    decide, on_execution_end, ExecutionEnded, ExecutionInput, Naming, TriggerDecision, TriggerEvent,
};
use serde::{Deserialize, Serialize};

/// The EventBridge event, as Lambda receives it.
pub type Input = serde_json::Value;

/// The prefix of the executions the trigger starts.
pub const EXECUTION_PREFIX: &str = "ebfleet-s3";

/// What the trigger did.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// An execution was started for the keys (or had been already, by an
    /// earlier delivery of the same event: `already_started`).
    Started {
        started: String,
        /// `None` when it had been started already.
        execution_arn: Option<String>,
        already_started: bool,
        changed_keys: Vec<String>,
    },
    /// An execution is running; the key is stored as pending and its end
    /// starts the follow-up.
    Deferred {
        deferred: String,
        running: Vec<String>,
        pending: usize,
    },
    /// An execution ended and starts no follow-up, and why.
    Idle { ended: String, reason: String },
    /// The event starts nothing, and why.
    Ignored { ignored: String },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state machine {state_machine}: listing running executions: {source}")]
    Running {
        state_machine: String,
        source: SfnError,
    },
    #[error("state machine {state_machine}: starting {execution}: {source}")]
    Start {
        state_machine: String,
        execution: String,
        source: SfnError,
    },
    #[error("pending keys: {0}")]
    Pending(#[source] DynamoError),
}

impl crate::failure::Failure for Error {
    fn kind(&self) -> crate::failure::Kind {
        use crate::failure::Kind;
        match self {
            Error::Running { source, .. } | Error::Start { source, .. } => {
                Kind::retry_or(source.is_retryable(), Kind::Failed)
            }
            Error::Pending(e) => Kind::retry_or(e.is_retryable(), Kind::Failed),
        }
    }
}

/// How the trigger names an execution started at `now_unix`.
pub fn naming(now_unix: u64) -> Naming {
    Naming {
        prefix: EXECUTION_PREFIX
            .parse::<ExecutionName>()
            .expect("a valid execution name prefix"),
        now_unix,
    }
}

/// What `event` is, or the output for an ignored event.
pub fn event_of(event: Input, bucket: &str) -> Result<TriggerEvent, Output> {
    TriggerEvent::from_value(event, bucket).map_err(|why| Output::Ignored {
        ignored: why.to_string(),
    })
}

/// The output of a start of `input` (its ARN, or `None` when it existed).
pub fn started(input: &ExecutionInput, execution_arn: Option<String>) -> Output {
    Output::Started {
        started: input.execution().to_string(),
        already_started: execution_arn.is_none(),
        execution_arn,
        changed_keys: input
            .changed_keys()
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
    }
}

/// The stack's resources the trigger works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Only its easyconfigs start runs.
    pub bucket: String,
    /// The pipeline the trigger starts and watches.
    pub state_machine: String,
}

impl Settings {
    pub fn from_lookup(lookup: impl Lookup) -> Result<Self, EnvError> {
        Ok(Settings {
            bucket: env::required(&lookup, var::BUCKET)?,
            state_machine: env::required(&lookup, var::STATE_MACHINE_ARN)?,
        })
    }
}

struct Trigger<'a> {
    env: &'a Env,
    state_machine: &'a str,
}

pub async fn handle(env: &Env, settings: &Settings, input: Input) -> Result<Output, Error> {
    let t = Trigger {
        env,
        state_machine: &settings.state_machine,
    };
    let out = match event_of(input, &settings.bucket) {
        Ok(TriggerEvent::Created(key)) => t.on_created(key).await?,
        Ok(TriggerEvent::Ended(end)) => t.on_ended(end).await?,
        Err(ignored) => ignored,
    };
    tracing::info!(?out, "trigger");
    Ok(out)
}

impl Trigger<'_> {
    async fn running(&self) -> Result<Vec<String>, Error> {
        self.env
            .sfn
            .running(self.state_machine)
            .await
            .map_err(|source| Error::Running {
                state_machine: self.state_machine.to_string(),
                source,
            })
    }

    async fn pending(&self) -> Result<Vec<EasyconfigKey>, Error> {
        self.env.records.pending().await.map_err(Error::Pending)
    }

    async fn on_created(&self, key: EasyconfigKey) -> Result<Output, Error> {
        let running = self.running().await?;
        if !running.is_empty() {
            self.env
                .records
                .add_pending(&key, self.env.now())
                .await
                .map_err(Error::Pending)?;
            // The run may have ended before the key was stored; then its end
            // saw no pending key and this trigger must start the follow-up.
            let running = self.running().await?;
            if !running.is_empty() {
                let pending = self.pending().await?.len();
                return Ok(Output::Deferred {
                    deferred: key.as_str().to_string(),
                    running,
                    pending,
                });
            }
        }
        let pending = self.pending().await?;
        match decide(false, &pending, key, &naming(self.env.now())) {
            TriggerDecision::Start(input) => self.start(input, &pending).await,
            TriggerDecision::Defer(_) => unreachable!("nothing runs"),
        }
    }

    async fn on_ended(&self, end: ExecutionEnded) -> Result<Output, Error> {
        let ended = end.execution_arn.clone();
        if end.state_machine_arn != self.state_machine {
            return Ok(Output::Ignored {
                ignored: format!(
                    "execution {ended} is of state machine {}, not {}",
                    end.state_machine_arn, self.state_machine
                ),
            });
        }
        let running = self.running().await?;
        let pending = self.pending().await?;
        match on_execution_end(!running.is_empty(), &pending, &naming(self.env.now())) {
            Some(input) => self.start(input, &pending).await,
            None => Ok(Output::Idle {
                ended,
                reason: if pending.is_empty() {
                    "no easyconfig is pending".to_string()
                } else {
                    format!(
                        "{} keys pending; {} still running and starts the follow-up when it ends",
                        pending.len(),
                        running.join(", ")
                    )
                },
            }),
        }
    }

    /// Start `input`, then forget the `pending` keys it plans.
    async fn start(
        &self,
        input: ExecutionInput,
        pending: &[EasyconfigKey],
    ) -> Result<Output, Error> {
        let arn = match self
            .env
            .sfn
            .start(self.state_machine, input.execution(), &input)
            .await
        {
            Ok(arn) => Some(arn),
            Err(SfnError::AlreadyExists { .. }) => {
                tracing::info!(execution = %input.execution(), "already started");
                None
            }
            Err(source) => {
                return Err(Error::Start {
                    state_machine: self.state_machine.to_string(),
                    execution: input.execution().to_string(),
                    source,
                })
            }
        };
        // A full run (too many keys for one input) covers every pending key too.
        self.env
            .records
            .remove_pending(pending)
            .await
            .map_err(Error::Pending)?;
        Ok(started(&input, arn))
    }
}

#[cfg(test)]
mod tests;
