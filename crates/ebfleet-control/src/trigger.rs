//! Trigger: an S3 `Object Created` event (via EventBridge) for a new
//! easyconfig starts an execution of the state machine
//! ([`var::STATE_MACHINE_ARN`]) that plans only the changed key.
//!
//! * A key that is not an easyconfig of the stack's bucket
//!   ([`var::BUCKET`]) is ignored: the output says why
//!   (`{"ignored": "…"}`); it is never an error.
//! * Nothing running: start `<prefix>-<time>-changed-<hash>` with
//!   [`ExecutionInput::for_changes`]. S3 may deliver an event twice; the
//!   second start finds the name taken (`AlreadyExists`) and is reported as
//!   already started, a success.
//! * An execution running: the output is `{"deferred": "<key>", …}`.
//!
//! **Not done yet:** the pending-key storage. While an execution runs, the
//! issue wants the key recorded so that the running execution's end starts
//! a follow-up with every pending key (`ebfleet_core::trigger::decide` and
//! `on_execution_end` already implement that rule). No store for pending
//! keys exists yet, so a deferred key is only reported in the output
//! (`pending_stored: false`) and in the log; it is picked up by the next
//! scheduled full run or a new upload of it.

use crate::env::{self, var, EnvError};
use crate::Env;
use ebfleet_aws::sfn::SfnError;
use ebfleet_core::keys::{EasyconfigKey, ExecutionName};
use ebfleet_core::trigger::{changed_key, decide, ExecutionInput, Naming, TriggerDecision};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The EventBridge event, as Lambda receives it.
pub type Input = serde_json::Value;

/// The prefix of the executions the trigger starts.
pub const EXECUTION_PREFIX: &str = "ebfleet-s3";

/// What the trigger did.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// An execution was started for the key (or had been already, by an
    /// earlier delivery of the same event: `already_started`).
    Started {
        started: String,
        /// `None` when it had been started already.
        execution_arn: Option<String>,
        already_started: bool,
        changed_keys: Vec<String>,
    },
    /// An execution is running; the key waits. See the module
    /// documentation: it is not stored yet.
    Deferred {
        deferred: String,
        running: Vec<String>,
        pending_stored: bool,
        note: String,
    },
    /// The event starts nothing, and why.
    Ignored { ignored: String },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("state machine {state_machine}: listing running executions: {source}")]
    Running {
        state_machine: String,
        source: SfnError,
    },
    #[error("state machine {state_machine}: starting {execution} for {key}: {source}")]
    Start {
        state_machine: String,
        execution: String,
        key: String,
        source: SfnError,
    },
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

/// The easyconfig `event` adds to `bucket`, or the output for an ignored
/// event.
pub fn key_of(event: Input, bucket: &str) -> Result<EasyconfigKey, Output> {
    changed_key(event, bucket).map_err(|why| Output::Ignored {
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

/// The output when `key` waits for the `running` executions.
pub fn deferred(key: &EasyconfigKey, running: Vec<String>) -> Output {
    Output::Deferred {
        deferred: key.as_str().to_string(),
        running,
        pending_stored: false,
        note: "an execution is running; pending-key storage is not implemented yet, so this \
               key is not queued for a follow-up (the next full run or a new upload picks it up)"
            .to_string(),
    }
}

pub async fn handle(env: &Env, input: Input) -> Result<Output, Error> {
    let bucket = env::required(var::BUCKET)?;
    let state_machine = env::required(var::STATE_MACHINE_ARN)?;
    let key = match key_of(input, &bucket) {
        Ok(key) => key,
        Err(ignored) => {
            tracing::info!(?ignored, "event ignored");
            return Ok(ignored);
        }
    };
    let running = env
        .sfn
        .running(&state_machine)
        .await
        .map_err(|source| Error::Running {
            state_machine: state_machine.clone(),
            source,
        })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // No pending-key store yet: nothing is pending.
    match decide(!running.is_empty(), &[], key.clone(), &naming(now)) {
        TriggerDecision::Start(input) => {
            match env
                .sfn
                .start(&state_machine, input.execution(), &input)
                .await
            {
                Ok(arn) => Ok(started(&input, Some(arn))),
                Err(SfnError::AlreadyExists { .. }) => {
                    tracing::info!(execution = %input.execution(), "already started");
                    Ok(started(&input, None))
                }
                Err(source) => Err(Error::Start {
                    state_machine,
                    execution: input.execution().to_string(),
                    key: key.as_str().to_string(),
                    source,
                }),
            }
        }
        TriggerDecision::Defer(_) => {
            tracing::warn!(key = %key.as_str(), ?running, "execution running; key not stored (no pending-key store yet)");
            Ok(deferred(&key, running))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUCKET: &str = "ebfleet-bucket";
    const ZLIB: &str = "easyconfigs/z/zlib/zlib-1.3.1-GCCcore-13.3.0.eb";

    fn event(key: &str) -> Input {
        json!({
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "detail": {
                "bucket": {"name": BUCKET},
                "object": {"key": key, "size": 1234}
            }
        })
    }

    #[test]
    fn other_keys_are_ignored_with_a_reason() {
        for key in [
            "plans/x/plan.json",
            "easyconfigs/z/zlib/zlib-1.3.1_fix.patch",
        ] {
            let out = key_of(event(key), BUCKET).unwrap_err();
            let json = serde_json::to_value(&out).unwrap();
            assert!(json["ignored"].as_str().unwrap().contains("zlib") || key.starts_with("plans"));
        }
        let out = key_of(json!({"hello": 1}), BUCKET).unwrap_err();
        assert!(matches!(out, Output::Ignored { .. }));
        let out = key_of(event(ZLIB), "another-bucket").unwrap_err();
        assert!(matches!(out, Output::Ignored { .. }));
    }

    #[test]
    fn nothing_running_starts_a_changed_execution() {
        let key = key_of(event(ZLIB), BUCKET).unwrap();
        let TriggerDecision::Start(input) = decide(false, &[], key, &naming(1_795_000_000)) else {
            panic!("expected a start");
        };
        assert!(input.execution().as_str().starts_with("ebfleet-s3-"));
        let out = started(&input, Some("arn:aws:states:::execution:sm:x".into()));
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["changed_keys"], json!([ZLIB]));
        assert_eq!(json["already_started"], false);

        let again = serde_json::to_value(started(&input, None)).unwrap();
        assert_eq!(again["already_started"], true);
        assert_eq!(again["started"], json["started"]);
        // The state machine's input is what the plan Lambda reads.
        let sent = serde_json::to_value(&input).unwrap();
        assert_eq!(sent["mode"], "changed");
        assert_eq!(sent["changed_keys"], json!([ZLIB]));
    }

    #[test]
    fn running_defers_and_says_the_key_is_not_stored() {
        let key = key_of(event(ZLIB), BUCKET).unwrap();
        assert!(matches!(
            decide(true, &[], key.clone(), &naming(0)),
            TriggerDecision::Defer(_)
        ));
        let json = serde_json::to_value(deferred(&key, vec!["arn:1".into()])).unwrap();
        assert_eq!(json["deferred"], ZLIB);
        assert_eq!(json["pending_stored"], false);
        assert!(json["note"].as_str().unwrap().contains("not implemented"));
    }

    #[test]
    fn outputs_read_back() {
        for out in [
            Output::Ignored {
                ignored: "why".into(),
            },
            deferred(&key_of(event(ZLIB), BUCKET).unwrap(), vec![]),
        ] {
            let back: Output = serde_json::from_value(serde_json::to_value(&out).unwrap()).unwrap();
            assert_eq!(back, out);
        }
    }
}
