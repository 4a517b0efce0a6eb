//! What the scheduler does after a build fails, by the failure's class:
//! one table, [`POLICY`]. A lost node is retried on a new node (up to the
//! settings' `node_attempts`, before any of this); a failed build is
//! retried only where another try can go another way.

use ebfleet_core::record::ErrorClass;

/// What to do after a failed build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Record it failed: the same build fails the same way (failure memory
    /// holds it in later runs).
    Never,
    /// Record it failed: it needs an operator (a source to put in the
    /// bucket by hand; the reason names the file).
    Operator,
    /// Try again later, up to `retries` more times, waiting `first_delay_s`
    /// and doubling the wait each time (a mirror or a network that may
    /// come back).
    Later { retries: u32, first_delay_s: u64 },
    /// Try again with half the parallel build jobs each time, up to
    /// `retries` more times (each job's compiler needs its own memory).
    FewerJobs { retries: u32 },
}

/// The policy, one row per error class.
pub const POLICY: [(ErrorClass, Retry); 9] = [
    (ErrorClass::CompileError, Retry::Never),
    (ErrorClass::TestFailure, Retry::Never),
    (ErrorClass::MissingSource, Retry::Operator),
    (
        ErrorClass::DownloadFailed,
        Retry::Later {
            retries: 3,
            first_delay_s: 300,
        },
    ),
    (ErrorClass::OutOfMemory, Retry::FewerJobs { retries: 2 }),
    // The scheduler skips these itself; a node reporting one is believed
    // no further than "failed".
    (ErrorClass::DependencyFailed, Retry::Never),
    // Lost nodes are retried before a class is recorded: this is the end.
    (ErrorClass::NodeLost, Retry::Never),
    // The unit's time is its estimate's multiple: another try takes as long.
    (ErrorClass::Timeout, Retry::Never),
    (ErrorClass::Unknown, Retry::Never),
];

/// The policy's row for `class` (a class name a node sent; an unknown one
/// is [`ErrorClass::Unknown`]).
pub fn retry(class: &str) -> Retry {
    let class = class.parse().unwrap_or(ErrorClass::Unknown);
    POLICY
        .iter()
        .find(|(c, _)| *c == class)
        .map_or(Retry::Never, |(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_exactly_one_row() {
        for class in ErrorClass::ALL {
            assert_eq!(
                POLICY.iter().filter(|(c, _)| *c == class).count(),
                1,
                "{class}"
            );
        }
    }

    #[test]
    fn only_what_may_go_another_way_is_retried() {
        assert!(matches!(retry("out_of_memory"), Retry::FewerJobs { retries } if retries > 0));
        assert!(
            matches!(retry("download_failed"), Retry::Later { retries, first_delay_s } if retries > 0 && first_delay_s > 0)
        );
        assert_eq!(retry("missing_source"), Retry::Operator);
        for deterministic in ErrorClass::ALL.into_iter().filter(|c| c.is_deterministic()) {
            assert!(
                matches!(
                    retry(deterministic.as_str()),
                    Retry::Never | Retry::Operator
                ),
                "{deterministic} is retried, yet it fails the same way again"
            );
        }
        assert_eq!(retry("no such class"), Retry::Never);
    }
}
