//! Write versions: nanoseconds since the Unix epoch, strictly increasing within
//! one process, so that the latest write of an id wins on read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out strictly increasing versions close to wall-clock nanoseconds.
///
/// Versions from different servers compare by wall clock; keep server clocks
/// synchronised (NTP) so that the last write across servers wins.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: AtomicU64,
}

impl VersionClock {
    /// The next version: the current time in nanoseconds, or one more than the
    /// previous version if the clock has not moved on.
    ///
    /// ```
    /// # use mutant_core::store::VersionClock;
    /// let clock = VersionClock::default();
    /// let first = clock.next();
    /// assert!(clock.next() > first);
    /// ```
    pub fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
            });
        let mut previous = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(previous + 1);
            match self.last.compare_exchange_weak(
                previous,
                candidate,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return candidate,
                Err(actual) => previous = actual,
            }
        }
    }
}
