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

/// A Unix time as a UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl UtcTime {
    pub fn from_unix(unix: u64) -> Self {
        let days = (unix / 86_400) as i64;
        let secs = (unix % 86_400) as u32;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3_600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
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

    #[test]
    fn unix_times_read_as_utc_dates() {
        let t = |y, mo, d, h, mi, s| UtcTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        };
        assert_eq!(UtcTime::from_unix(0), t(1970, 1, 1, 0, 0, 0));
        assert_eq!(UtcTime::from_unix(951_782_400), t(2000, 2, 29, 0, 0, 0));
        assert_eq!(
            UtcTime::from_unix(1_795_515_300),
            t(2026, 11, 24, 10, 15, 0)
        );
        assert_eq!(
            UtcTime::from_unix(4_102_444_799),
            t(2099, 12, 31, 23, 59, 59)
        );
    }
}
