//! What SSM says about a step once it is sent: GetCommandInvocation's
//! `Status`, `StatusDetails` and `ResponseCode` read as a [`CommandStatus`]
//! the state machine can branch on.

use super::shown;
use serde::{Deserialize, Serialize};

/// Why a step did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// The instance is gone from SSM (`InvalidInstanceId`: terminated, spot
    /// interruption, never registered).
    NodeLost,
    /// The step ran longer than its execution timeout.
    TimedOut,
    /// Cancelled (by a person, or by SSM: `Terminated`).
    Cancelled,
    /// `ebfleet-node` ran and exited non-zero.
    StepFailed { exit_code: i32 },
    /// SSM could not deliver the command to the node (`Undeliverable`, or
    /// not picked up before the delivery timeout).
    Undeliverable,
    /// A status this code does not know; see the detail.
    Unknown,
}

impl FailureReason {
    /// Whether the node itself is in doubt, so running the step again needs
    /// a new node rather than the same one.
    pub fn needs_new_node(&self) -> bool {
        matches!(self, FailureReason::NodeLost | FailureReason::Undeliverable)
    }
}

/// Where a dispatched step stands, as the status Lambda returns it:
/// `{"status": "in_progress"}`, `{"status": "success"}` or
/// `{"status": "failed", "reason": {"kind": "step_failed", "exit_code": 2},
/// "detail": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandStatus {
    InProgress,
    Success,
    Failed {
        reason: FailureReason,
        detail: String,
    },
}

impl CommandStatus {
    pub fn failed(reason: FailureReason, detail: impl Into<String>) -> Self {
        CommandStatus::Failed {
            reason,
            detail: detail.into(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        !matches!(self, CommandStatus::InProgress)
    }
}

/// `Delivery Timed Out`, `DeliveryTimedOut` and `deliverytimedout` alike:
/// `Status` is an enum (`InProgress`), `StatusDetails` free text (`In
/// Progress`), and SSM spells cancelled both ways.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Map one GetCommandInvocation answer to a [`CommandStatus`].
///
/// `StatusDetails` is read first where it says more than `Status`:
/// `Delivery Timed Out` (the node never picked the command up) and
/// `Undeliverable` are [`FailureReason::Undeliverable`], `Execution Timed
/// Out` is [`FailureReason::TimedOut`], `Terminated` and `Canceled` are
/// [`FailureReason::Cancelled`]. Then `Status`: `Pending`, `InProgress`,
/// `Delayed` (SSM will try again) and `Cancelling` are still in progress;
/// `Success` succeeded; `Failed` with a response code ≥ 0 is the node's exit
/// code ([`FailureReason::StepFailed`]); anything else fails as
/// [`FailureReason::Unknown`] with the raw values in the detail, so a new
/// status stops the batch visibly rather than polling forever.
pub fn classify(status: &str, status_details: &str, response_code: i32) -> CommandStatus {
    let raw = format!(
        "SSM status {:?} ({:?}), response code {response_code}",
        shown(status),
        shown(status_details)
    );
    let failed = |reason, why: &str| CommandStatus::failed(reason, format!("{why}: {raw}"));
    match normalise(status_details).as_str() {
        "deliverytimedout" => {
            return failed(
                FailureReason::Undeliverable,
                "the node did not pick the command up before the delivery timeout",
            )
        }
        "undeliverable" => {
            return failed(
                FailureReason::Undeliverable,
                "the command cannot be delivered to the node (gone or not responding)",
            )
        }
        "executiontimedout" => {
            return failed(
                FailureReason::TimedOut,
                "the step ran past its execution timeout",
            )
        }
        "terminated" => {
            return failed(
                FailureReason::Cancelled,
                "SSM terminated the invocation (the parent command's error limit)",
            )
        }
        "canceled" | "cancelled" => {
            return failed(FailureReason::Cancelled, "the command was cancelled")
        }
        _ => {}
    }
    match normalise(status).as_str() {
        "pending" | "inprogress" | "delayed" | "cancelling" => CommandStatus::InProgress,
        "success" => CommandStatus::Success,
        "cancelled" | "canceled" => failed(FailureReason::Cancelled, "the command was cancelled"),
        "timedout" => failed(FailureReason::TimedOut, "the command timed out"),
        "failed" if response_code >= 0 => failed(
            FailureReason::StepFailed {
                exit_code: response_code,
            },
            &format!("ebfleet-node exited with code {response_code}"),
        ),
        "failed" => failed(FailureReason::Unknown, "the command failed before it ran"),
        _ => failed(FailureReason::Unknown, "unrecognised command status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ssm_status_is_classified() {
        use FailureReason::*;
        let in_progress = [
            ("Pending", "Pending", -1),
            ("InProgress", "In Progress", -1),
            ("Delayed", "Delayed", -1),
            ("Cancelling", "Cancelling", -1),
            ("InProgress", "", -1),
        ];
        for (s, d, c) in in_progress {
            assert_eq!(classify(s, d, c), CommandStatus::InProgress, "{s}/{d}");
        }
        assert_eq!(classify("Success", "Success", 0), CommandStatus::Success);
        let failed = [
            ("Failed", "Failed", 2, StepFailed { exit_code: 2 }),
            ("Failed", "Failed", 137, StepFailed { exit_code: 137 }),
            ("Failed", "Failed", -1, Unknown),
            ("TimedOut", "Execution Timed Out", -1, TimedOut),
            ("TimedOut", "Delivery Timed Out", -1, Undeliverable),
            ("TimedOut", "", -1, TimedOut),
            ("Failed", "Undeliverable", -1, Undeliverable),
            ("Cancelled", "Canceled", -1, Cancelled),
            ("Cancelled", "Cancelled", -1, Cancelled),
            ("Cancelled", "Terminated", -1, Cancelled),
            ("Failed", "Terminated", -1, Cancelled),
            ("Cancelled", "", -1, Cancelled),
            ("Paused", "Paused", -1, Unknown),
            ("", "", -1, Unknown),
        ];
        for (s, d, c, reason) in failed {
            match classify(s, d, c) {
                CommandStatus::Failed { reason: r, detail } => {
                    assert_eq!(r, reason, "{s}/{d}");
                    assert!(detail.contains(&format!("response code {c}")), "{detail}");
                }
                other => panic!("{s}/{d}: {other:?}"),
            }
        }
        // Details say more than the status, whichever way SSM spells them.
        for (s, d) in [
            ("TimedOut", "DeliveryTimedOut"),
            ("TIMEDOUT", "delivery timed out"),
            ("Cancelled", "canceled"),
        ] {
            let CommandStatus::Failed { reason, .. } = classify(s, d, -1) else {
                panic!("{s}/{d}")
            };
            assert!(matches!(reason, Undeliverable | Cancelled), "{s}/{d}");
        }
        let CommandStatus::Failed { detail, .. } = classify("Failed", "Failed", 3) else {
            panic!()
        };
        assert_eq!(
            detail,
            "ebfleet-node exited with code 3: SSM status \"Failed\" (\"Failed\"), response code 3"
        );
        // A hostile status cannot forge lines in the detail.
        let CommandStatus::Failed { detail, .. } = classify("x\ny", "a\nb", 1) else {
            panic!()
        };
        assert!(!detail.contains('\n'), "{detail}");
        assert!(NodeLost.needs_new_node() && Undeliverable.needs_new_node());
        assert!(!StepFailed { exit_code: 1 }.needs_new_node() && !TimedOut.needs_new_node());
    }

    #[test]
    fn statuses_serialise_for_the_state_machine() {
        assert_eq!(
            serde_json::to_value(CommandStatus::InProgress).unwrap(),
            serde_json::json!({"status": "in_progress"})
        );
        assert_eq!(
            serde_json::to_value(CommandStatus::Success).unwrap(),
            serde_json::json!({"status": "success"})
        );
        let failed = CommandStatus::failed(FailureReason::StepFailed { exit_code: 2 }, "eb failed");
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "status": "failed",
                "reason": {"kind": "step_failed", "exit_code": 2},
                "detail": "eb failed",
            })
        );
        assert_eq!(
            serde_json::from_value::<CommandStatus>(json).unwrap(),
            failed
        );
        assert_eq!(
            serde_json::to_value(FailureReason::NodeLost).unwrap(),
            serde_json::json!({"kind": "node_lost"})
        );
        assert!(failed.is_terminal() && !CommandStatus::InProgress.is_terminal());
    }
}
