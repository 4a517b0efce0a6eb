//! Pending keys and execution ends: the storage half of the follow-up rule.
//!
//! A key that lands while an execution runs is stored as one DynamoDB item,
//! `pk = PENDING`, `sk = KEY#<key>`. One item per key (not one list item)
//! so concurrent triggers never overwrite each other and a burst of uploads
//! needs no read-modify-write. The items carry a `ttl` (the table's TTL
//! attribute, on these items only): a key nobody picked up in
//! [`PENDING_TTL_SECS`] is dropped, since the weekly full run has covered it.
//!
//! The end of an execution reaches the trigger as EventBridge's
//! "Step Functions Execution Status Change" event for a terminal status;
//! [`TriggerEvent`] tells the two kinds of event apart.

use super::{changed_key, Ignored};
use crate::names::{EasyconfigKey, KeyError};
use serde::Deserialize;

/// The partition of pending keys.
pub const PENDING_PK: &str = "PENDING";
const KEY_PREFIX: &str = "KEY#";
/// How long a pending key waits before DynamoDB's TTL may drop it.
pub const PENDING_TTL_SECS: u64 = 14 * 24 * 3600;
/// The EventBridge `detail-type` of a Step Functions execution's change.
pub const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// The sort key of a pending key's item.
pub fn pending_sk(key: &EasyconfigKey) -> String {
    format!("{KEY_PREFIX}{}", key.as_str())
}

/// The key a pending item's sort key names, validated again: the table is
/// input like any other.
pub fn key_from_pending_sk(sk: &str) -> Result<EasyconfigKey, KeyError> {
    let key = sk.strip_prefix(KEY_PREFIX).unwrap_or(sk);
    key.parse()
}

/// An execution's terminal status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndStatus {
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// An execution of `state_machine_arn` that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEnded {
    pub state_machine_arn: String,
    pub execution_arn: String,
    pub status: EndStatus,
}

/// What the trigger Lambda was woken by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerEvent {
    /// A new easyconfig in the bucket.
    Created(EasyconfigKey),
    /// An execution ended: time for the follow-up.
    Ended(ExecutionEnded),
}

#[derive(Deserialize)]
struct StatusChange {
    detail: StatusDetail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusDetail {
    execution_arn: String,
    state_machine_arn: String,
    status: String,
}

impl TriggerEvent {
    /// Read an EventBridge event: an S3 Object Created event for an
    /// easyconfig of `bucket`, or a terminal Step Functions status change.
    /// Anything else, a `RUNNING` change included, is [`Ignored`].
    pub fn from_value(event: serde_json::Value, bucket: &str) -> Result<Self, Ignored> {
        let detail_type = event.get("detail-type").and_then(|t| t.as_str());
        if detail_type != Some(EXECUTION_STATUS_CHANGE) {
            return changed_key(event, bucket).map(TriggerEvent::Created);
        }
        let change: StatusChange =
            serde_json::from_value(event).map_err(|e| Ignored::Malformed(e.to_string()))?;
        let d = change.detail;
        let status = serde_json::from_value(serde_json::Value::String(d.status.clone()))
            .map_err(|_| Ignored::NotEnded(super::shown(&d.status)))?;
        Ok(TriggerEvent::Ended(ExecutionEnded {
            state_machine_arn: d.state_machine_arn,
            execution_arn: d.execution_arn,
            status,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BUCKET: &str = "ebfleet-stack";
    const SM: &str = "arn:aws:states:us-east-1:111122223333:stateMachine:ebfleet";

    fn status_change(status: &str) -> serde_json::Value {
        json!({
            "version": "0",
            "id": "315c1398-40ff-a850-213b-158f73e60175",
            "detail-type": EXECUTION_STATUS_CHANGE,
            "source": "aws.states",
            "account": "111122223333",
            "time": "2026-11-24T10:20:00Z",
            "region": "us-east-1",
            "resources": [format!("{SM}:run-1")],
            "detail": {
                "executionArn": "arn:aws:states:us-east-1:111122223333:execution:ebfleet:run-1",
                "stateMachineArn": SM,
                "name": "run-1",
                "status": status,
                "startDate": 1_795_000_000_000u64,
                "stopDate": 1_795_000_600_000u64,
                "input": "{}",
                "output": null
            }
        })
    }

    #[test]
    fn a_terminal_status_change_is_an_end_and_running_is_ignored() {
        for (text, status) in [
            ("SUCCEEDED", EndStatus::Succeeded),
            ("FAILED", EndStatus::Failed),
            ("TIMED_OUT", EndStatus::TimedOut),
            ("ABORTED", EndStatus::Aborted),
        ] {
            let TriggerEvent::Ended(end) =
                TriggerEvent::from_value(status_change(text), BUCKET).unwrap()
            else {
                panic!("{text}: not an end");
            };
            assert_eq!(end.status, status);
            assert_eq!(end.state_machine_arn, SM);
            assert!(end.execution_arn.ends_with(":run-1"));
        }
        let running = TriggerEvent::from_value(status_change("RUNNING"), BUCKET).unwrap_err();
        assert!(matches!(running, Ignored::NotEnded(_)), "{running:?}");
        let mut broken = status_change("FAILED");
        broken["detail"]
            .as_object_mut()
            .unwrap()
            .remove("stateMachineArn");
        assert!(matches!(
            TriggerEvent::from_value(broken, BUCKET),
            Err(Ignored::Malformed(_))
        ));
    }

    #[test]
    fn an_object_created_event_is_still_a_key() {
        let event = json!({
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": BUCKET}, "object": {"key": "easyconfigs/z/zlib/zlib-1.3.1.eb"}}
        });
        assert_eq!(
            TriggerEvent::from_value(event, BUCKET).unwrap(),
            TriggerEvent::Created("easyconfigs/z/zlib/zlib-1.3.1.eb".parse().unwrap())
        );
    }

    #[test]
    fn pending_sort_keys_round_trip_and_hostile_ones_are_refused() {
        let key: EasyconfigKey = "easyconfigs/l/libsigc++/libsigc++-3.6.0-GCCcore-13.3.0.eb"
            .parse()
            .unwrap();
        let sk = pending_sk(&key);
        assert_eq!(sk, format!("KEY#{}", key.as_str()));
        assert_eq!(key_from_pending_sk(&sk).unwrap(), key);
        for bad in ["KEY#easyconfigs/../etc/passwd.eb", "KEY#plans/x.eb", "KEY#"] {
            assert!(key_from_pending_sk(bad).is_err(), "{bad}");
        }
    }
}
