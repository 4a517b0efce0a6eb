//! Liveness for Step Functions: `SendTaskHeartbeat` with a task token,
//! at once and then every interval, while a step runs (`--task-token` on a
//! step) or on its own (`ebfleet-node heartbeat`).
//!
//! Throttling and transient failures are logged and the next beat tries
//! again; a task that timed out or no longer exists ends the beating:
//! Step Functions has moved on.

use ebfleet_aws::sfn::{task_ref, SfnError, StepFunctions};
use std::future::Future;
use std::time::Duration;

/// The default interval between beats.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Beat until `stop` completes (`Ok(beats sent)`) or the task is gone
/// (`Err`).
pub async fn beat_until(
    sfn: &StepFunctions,
    token: &str,
    interval: Duration,
    stop: impl Future<Output = ()>,
) -> Result<u64, SfnError> {
    tokio::pin!(stop);
    let mut beats = 0u64;
    loop {
        match sfn.heartbeat(token).await {
            Ok(()) => {
                beats += 1;
                tracing::debug!(task = %task_ref(token), beats, "heartbeat");
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(task = %task_ref(token), error = %e, "heartbeat failed, trying again next time");
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stop => return Ok(beats),
        }
    }
}

/// Beats in the background while a step runs.
pub struct Heartbeat {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<u64, SfnError>>,
}

impl Heartbeat {
    pub fn start(sfn: StepFunctions, token: String, interval: Duration) -> Self {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let r = beat_until(&sfn, &token, interval, async {
                let _ = rx.await;
            })
            .await;
            if let Err(e) = &r {
                tracing::error!(error = %e, "heartbeats stopped");
            }
            r
        });
        Heartbeat { stop, task }
    }

    /// Stop beating; the beats sent, or why they stopped early.
    pub async fn stop(self) -> Result<u64, SfnError> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(Ok(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::operation::send_task_heartbeat::{
        SendTaskHeartbeatError, SendTaskHeartbeatOutput,
    };
    use aws_sdk_sfn::types::error::TaskTimedOut;
    use aws_sdk_sfn::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const TOKEN: &str = "AAAAKgAAAAIAAAAAAAAAAQ-token-for-tests";

    #[tokio::test]
    async fn beats_at_once_then_every_interval_until_stopped() {
        let ok = mock!(Client::send_task_heartbeat)
            .match_requests(|r| r.task_token() == Some(TOKEN))
            .then_output(|| SendTaskHeartbeatOutput::builder().build());
        let sfn = StepFunctions::new(mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&ok]));
        let hb = Heartbeat::start(sfn, TOKEN.into(), Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let beats = hb.stop().await.unwrap();
        // At once and then every 20 ms: well over 2 in 300 ms, even on a busy machine.
        assert!(beats >= 3, "{beats} beats in 300 ms at 20 ms");
        assert_eq!(beats as usize, ok.num_calls());
        // Nothing more after stop.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(beats as usize, ok.num_calls());
    }

    #[tokio::test]
    async fn a_timed_out_task_ends_the_beating() {
        let gone = mock!(Client::send_task_heartbeat)
            .then_error(|| SendTaskHeartbeatError::TaskTimedOut(TaskTimedOut::builder().build()));
        let sfn = StepFunctions::new(mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&gone]));
        let r = beat_until(
            &sfn,
            TOKEN,
            Duration::from_millis(1),
            std::future::pending(),
        )
        .await;
        assert!(matches!(r, Err(SfnError::TaskTimedOut { .. })), "{r:?}");
        assert_eq!(gone.num_calls(), 1);
    }
}
