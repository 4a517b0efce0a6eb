//! One failed AWS call, whichever adapter made it: [`CallError`] names the
//! service, the operation and what it was about, carries the service's
//! code and message, and says whether it is worth retrying later
//! (throttling, timeouts, connection failures and 5xx answers, as the SDK's
//! own retry classifier counts them). [`call_error`] maps every adapter's
//! SDK errors to it.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// An AWS call that failed after the SDK's own retries (standard mode, 3
/// attempts): `S3 GetObject s3://bucket/key failed: AccessDenied (HTTP 403):
/// Access Denied`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{service} {op} {resource}{}: {detail}",
    if *.transient { ": throttled or unavailable, retry later" } else { " failed" }
)]
pub struct CallError {
    /// `S3`, `DynamoDB`, `EC2`, `SSM`, `Step Functions`.
    pub service: &'static str,
    /// The API operation, e.g. `GetObject`.
    pub op: &'static str,
    /// What the call was about: `s3://bucket/key`, `table pk sk`, a
    /// platform's launch template, a command on an instance, ...
    pub resource: String,
    /// The service's error code and message, or what failed on this side.
    pub detail: String,
    /// Throttling (`SlowDown`, `ThrottlingException`,
    /// `RequestLimitExceeded`, ...), a timeout, a lost connection or a 5xx:
    /// asking again later may succeed. Otherwise an answer that will not
    /// change by asking again (access denied, no such resource, a bad
    /// request).
    pub transient: bool,
}

/// The SDK error of `service`'s `op` about `resource` as a [`CallError`];
/// transient as the SDK counts it, or when its code is one of
/// `also_transient` (a service's own "not now" codes). A transient one is
/// logged.
pub(crate) fn call_error<E>(
    service: &'static str,
    op: &'static str,
    resource: impl Into<String>,
    err: SdkError<E, HttpResponse>,
    also_transient: &[&str],
) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let resource = resource.into();
    let detail = describe(&err);
    let code = err.as_service_error().and_then(|e| e.code());
    let transient = is_transient(&err) || code.is_some_and(|c| also_transient.contains(&c));
    if transient {
        tracing::warn!(op, %resource, %detail, "{service} throttled or unavailable");
    }
    CallError {
        service,
        op,
        resource,
        detail,
        transient,
    }
}

/// HTTP statuses that say "try again": too many requests, server errors.
fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Whether `err` is throttling or a transient failure rather than an answer.
fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(f) => f.is_io() || f.is_timeout(),
        SdkError::ResponseError(r) => transient_status(r.raw().status().as_u16()),
        SdkError::ServiceError(s) => {
            let code = s.err().code();
            code.is_some_and(|c| THROTTLING_ERRORS.contains(&c) || TRANSIENT_ERRORS.contains(&c))
                || transient_status(s.raw().status().as_u16())
        }
        _ => false,
    }
}

/// The error's code and message for a log line or an error's text, e.g.
/// `SlowDown: Please reduce your request rate` (the SDK's own `Display` of
/// an [`SdkError`] says only "service error").
pub(crate) fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let status = s.raw().status().as_u16();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c} (HTTP {status}): {m}"),
                (Some(c), None) => format!("{c} (HTTP {status})"),
                _ => format!("HTTP {status}: {e}"),
            }
        }
        other => {
            // DisplayErrorContext walks the source chain.
            aws_smithy_types::error::display::DisplayErrorContext(other).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(transient: bool) -> CallError {
        CallError {
            service: "S3",
            op: "GetObject",
            resource: "s3://b/k".into(),
            detail: "SlowDown (HTTP 503): Please reduce your request rate.".into(),
            transient,
        }
    }

    #[test]
    fn the_text_names_service_op_and_resource_and_says_whether_to_retry() {
        assert_eq!(
            call(true).to_string(),
            "S3 GetObject s3://b/k: throttled or unavailable, retry later: \
             SlowDown (HTTP 503): Please reduce your request rate."
        );
        assert_eq!(
            call(false).to_string(),
            "S3 GetObject s3://b/k failed: SlowDown (HTTP 503): Please reduce your request rate."
        );
    }
}
