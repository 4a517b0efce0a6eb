//! A unit's last state, `Release`: what its execution came to — from the
//! state it carries (what Lease took, what Record recorded, or the error a
//! step was caught with) — becomes the execution's output
//! ([`UnitResult`]), and the unit's ending wakes its platform's scheduler
//! (the task token the scheduler left, [`Records::wake_take`]).
//!
//! [`Records::wake_take`]: ebfleet_aws::dynamodb::Records::wake_take

use super::{lease, Error, Output as Recorded};
use crate::Env;
use ebfleet_aws::sfn::SfnError;
use ebfleet_core::names::{ExecutionName, PlatformName};
use ebfleet_core::unit::{UnitOutcome, UnitResult};
use serde::{Deserialize, Serialize};

/// An error a state was caught with (`ResultPath: $.failure`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Caught {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// The `Release` state's input: the unit and what its states produced.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DoneInput {
    pub execution: ExecutionName,
    pub platform: PlatformName,
    pub unit: u32,
    pub attempt: u32,
    #[serde(default)]
    pub lease: Option<lease::Output>,
    #[serde(default)]
    pub recorded: Option<Recorded>,
    #[serde(default)]
    pub failure: Option<Caught>,
}

/// What the unit came to. A caught error means the node or a step around
/// the build failed: try again on another node ([`UnitOutcome::NodeLost`]).
pub fn outcome(input: &DoneInput) -> UnitOutcome {
    if let Some(f) = &input.failure {
        let cause: String = f.cause.chars().take(500).collect();
        return UnitOutcome::NodeLost {
            reason: format!("{}: {cause}", f.error),
        };
    }
    if let Some(r) = &input.recorded {
        if let Some(o) = r.outcomes.values().next() {
            return o.clone();
        }
    }
    match &input.lease {
        Some(l) if l.already_built > 0 => UnitOutcome::AlreadyBuilt,
        Some(l) if l.held > 0 => UnitOutcome::Held {
            until: l.held_until.unwrap_or(0),
        },
        _ => UnitOutcome::NodeLost {
            reason: "the unit ended without a lease, a record or an error".into(),
        },
    }
}

/// The `Release` state: the unit's result; its scheduler woken.
pub async fn done(env: &Env, input: DoneInput) -> Result<UnitResult, Error> {
    let outcome = outcome(&input);
    let tarball_sha256 = match (&outcome, &input.recorded) {
        (UnitOutcome::Built, Some(r)) => r.tarballs.values().next().cloned(),
        _ => None,
    };
    let result = UnitResult {
        unit: input.unit,
        attempt: input.attempt,
        outcome,
        tarball_sha256,
    };
    let token = env
        .records
        .wake_take(&input.execution, &input.platform)
        .await
        .map_err(|source| Error::Record {
            action: "waking the scheduler of",
            module: format!("{} unit {}", input.platform, input.unit),
            source: Box::new(source),
        })?;
    if let Some(token) = token {
        match env
            .sfn
            .succeed(&token, &serde_json::json!({"woken_by": input.unit}))
            .await
        {
            Ok(()) => {}
            // The scheduler moved on (its wait timed out, it ticks anyway).
            Err(SfnError::TaskTimedOut { .. } | SfnError::TaskDoesNotExist { .. }) => {}
            Err(e) => {
                tracing::warn!(error = %e, "waking the scheduler failed; it ticks on its own")
            }
        }
    }
    tracing::info!(platform = %input.platform, unit = input.unit, outcome = ?result.outcome, "unit done");
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> DoneInput {
        serde_json::from_value(serde_json::json!({
            "execution": "run-1", "platform": "amzn-2023_epyc-gen-4", "unit": 3, "attempt": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_recorded_module_is_its_outcome() {
        let mut i = input();
        let mut r = Recorded::default();
        r.outcomes.insert(
            "zlib/1.3".into(),
            UnitOutcome::Failed {
                class: "compile_error".into(),
                reason: "make".into(),
            },
        );
        i.recorded = Some(r);
        assert!(
            matches!(outcome(&i), UnitOutcome::Failed { class, .. } if class == "compile_error")
        );
    }

    #[tokio::test]
    async fn a_built_unit_hands_on_its_recorded_tarball() {
        let mut i = input();
        let mut r = Recorded::default();
        r.outcomes.insert("zlib/1.3".into(), UnitOutcome::Built);
        r.tarballs.insert("zlib/1.3".into(), "ab".repeat(32));
        i.recorded = Some(r);
        let wake =
            aws_smithy_mocks::mock!(aws_sdk_dynamodb::Client::update_item).then_output(|| {
                aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
            });
        let env = crate::testing::Mocks {
            dynamodb: vec![&wake],
            ..Default::default()
        }
        .env();
        let result = done(&env, i.clone()).await.unwrap();
        assert_eq!(result.outcome, UnitOutcome::Built);
        assert_eq!(result.tarball_sha256, Some("ab".repeat(32)));
        // A failed one hands on none.
        let mut failed = i;
        let r = failed.recorded.as_mut().unwrap();
        r.outcomes.insert(
            "zlib/1.3".into(),
            UnitOutcome::Failed {
                class: "compile_error".into(),
                reason: "make".into(),
            },
        );
        assert_eq!(done(&env, failed).await.unwrap().tarball_sha256, None);
    }

    #[test]
    fn a_caught_error_is_a_lost_node_and_says_why() {
        let mut i: DoneInput = serde_json::from_value(serde_json::json!({
            "execution": "run-1", "platform": "amzn-2023_epyc-gen-4", "unit": 3, "attempt": 2,
            "failure": {"Error": "States.HeartbeatTimeout", "Cause": "no heartbeat for 600 s"}
        }))
        .unwrap();
        assert_eq!(
            outcome(&i),
            UnitOutcome::NodeLost {
                reason: "States.HeartbeatTimeout: no heartbeat for 600 s".into()
            }
        );
        i.failure = None;
        assert!(
            matches!(outcome(&i), UnitOutcome::NodeLost { .. }),
            "nothing at all"
        );
    }

    #[test]
    fn a_lease_held_elsewhere_or_already_built_ends_the_unit() {
        let mut i = input();
        i.lease = Some(lease::Output {
            held: 1,
            held_until: Some(9_000),
            ..Default::default()
        });
        assert_eq!(outcome(&i), UnitOutcome::Held { until: 9_000 });
        i.lease = Some(lease::Output {
            already_built: 1,
            ..Default::default()
        });
        assert_eq!(outcome(&i), UnitOutcome::AlreadyBuilt);
    }
}
