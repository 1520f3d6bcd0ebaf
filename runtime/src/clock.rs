//! Clocks: time is a parameter, so caches expire on a clock a test can move instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What time it is, as a duration since the Unix epoch. Injected so tests move time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Duration;
}

/// Wall time read once at start, then advanced by the monotonic clock: it never goes back,
/// and replicas sharing Redis still agree on it to within their clock skew.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
    wall: Duration,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.wall + self.origin.elapsed()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// Starts at `start` (since the Unix epoch).
    pub fn new(start: Duration) -> Self {
        Self {
            millis: AtomicU64::new(u64::try_from(start.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}
