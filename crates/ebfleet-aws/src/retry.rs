//! Which SDK failures are worth retrying later: throttling, timeouts,
//! connection failures and 5xx answers, as the SDK's own retry classifier
//! counts them.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// HTTP statuses that say "try again": too many requests, server errors.
fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Whether `err` is throttling or a transient failure rather than an answer.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
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
