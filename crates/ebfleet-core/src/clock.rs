//! Time, as every part of the pipeline reads it: Unix seconds from one
//! [`Clock`]. In AWS it is the system clock; a simulation shares one it
//! moves itself, so leases, idle times and timeouts all follow simulated
//! time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Unix seconds now, by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that reads `now` and is moved by whoever holds it.
    pub fn manual(now: Arc<AtomicU64>) -> Self {
        Clock(Some(now))
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        match &self.0 {
            None => unix_now(),
            Some(t) => t.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_reads_what_its_holder_set() {
        let t = Arc::new(AtomicU64::new(1_000));
        let c = Clock::manual(t.clone());
        assert_eq!(c.now(), 1_000);
        t.store(90_000, Ordering::Relaxed);
        assert_eq!(c.now(), 90_000);
        assert!(Clock::system().now() > 1_700_000_000);
    }
}
