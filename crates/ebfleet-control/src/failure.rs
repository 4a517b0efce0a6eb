//! How a handler's error reads in Step Functions: the error name that a
//! state's `Retry` and `Catch` match and the console shows (`ebfleet.*`),
//! instead of the Rust type name the runtime would report.

use ebfleet_aws::{ec2::Ec2Error, s3::S3Error, ssm::SsmError};

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Throttled, timed out or unavailable: the same call may work later.
    Transient,
    /// The input or the stack's configuration is wrong: retrying changes
    /// nothing.
    Invalid,
    /// The build node is gone: SSM no longer knows the instance.
    NodeLost,
    /// No instance type of the platform fits (the catalog has none that
    /// can build it).
    NoCapacity,
    /// Anything else.
    Failed,
}

impl Kind {
    /// The `errorType` Lambda returns.
    pub fn error_type(self) -> &'static str {
        match self {
            Kind::Transient => "ebfleet.Transient",
            Kind::Invalid => "ebfleet.Invalid",
            Kind::NodeLost => "ebfleet.NodeLost",
            Kind::NoCapacity => "ebfleet.NoCapacity",
            Kind::Failed => "ebfleet.Failed",
        }
    }

    /// `Transient` when `retryable`, else `otherwise`.
    pub fn retry_or(retryable: bool, otherwise: Kind) -> Kind {
        if retryable {
            Kind::Transient
        } else {
            otherwise
        }
    }
}

/// An error a handler returns.
pub trait Failure: std::fmt::Display {
    fn kind(&self) -> Kind;
}

impl Failure for crate::env::EnvError {
    fn kind(&self) -> Kind {
        Kind::Invalid
    }
}

impl Failure for S3Error {
    fn kind(&self) -> Kind {
        Kind::retry_or(self.is_retryable(), Kind::Failed)
    }
}

impl Failure for SsmError {
    fn kind(&self) -> Kind {
        match self {
            SsmError::InvalidInstance { .. } => Kind::NodeLost,
            e => Kind::retry_or(e.is_retryable(), Kind::Failed),
        }
    }
}

impl Failure for Ec2Error {
    fn kind(&self) -> Kind {
        match self {
            Ec2Error::InvalidLaunch { .. } => Kind::Invalid,
            e => Kind::retry_or(e.is_retryable(), Kind::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_aws::CallError;

    #[test]
    fn adapter_errors_map_to_what_a_retry_or_catch_needs() {
        let lost = SsmError::InvalidInstance {
            instance_id: "i-0123456789abcdef0".into(),
            detail: "InvalidInstanceId".into(),
        };
        assert_eq!(lost.kind().error_type(), "ebfleet.NodeLost");
        let busy = SsmError::Call(CallError {
            service: "SSM",
            op: "SendCommand",
            resource: "command".into(),
            detail: "ThrottlingException".into(),
            transient: true,
        });
        assert_eq!(busy.kind(), Kind::Transient);
        let invalid = Ec2Error::InvalidLaunch {
            platform: "amzn-2023_graviton-3".into(),
            reason: "no subnet to launch in".into(),
        };
        assert_eq!(invalid.kind().error_type(), "ebfleet.Invalid");
        let throttled = Ec2Error::Call(CallError {
            service: "EC2",
            op: "CreateLaunchTemplate",
            resource: "platform amzn-2023_graviton-3".into(),
            detail: "RequestLimitExceeded".into(),
            transient: true,
        });
        assert_eq!(throttled.kind(), Kind::Transient);
        let missing = S3Error::NotFound {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert_eq!(missing.kind(), Kind::Failed);
    }
}
