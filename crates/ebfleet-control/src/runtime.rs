//! Serving a handler as a Lambda: JSON logs for CloudWatch, the event's
//! payload in, the handler's output or error out, the error named by its
//! [`Kind`](crate::failure::Kind) (`ebfleet.Transient`, ...) for Step
//! Functions.

use crate::failure::Failure;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;

/// Run `handler` as the Lambda function of this process.
pub async fn serve<I, O, E, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    E: Failure + Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .without_time()
        .init();
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<I>| async move {
        handler(event.payload).await.map_err(|e| {
            let error_type = e.kind().error_type();
            tracing::error!(error = %e, error_type, "handler failed");
            Diagnostic {
                error_type: error_type.to_string(),
                error_message: e.to_string(),
            }
        })
    }))
    .await
}
