//! When a repeated event earns a log line: the first at once, then at most one per interval,
//! each line carrying how many events it stands for.
//!
//! A fault that repeats on every request (a dead provider, a panic a client can trigger) must
//! neither flood a log nor hide in it. The module and the service both log that way, so the rule
//! lives here, with the caller's clock passed in.

use std::time::{Duration, Instant};

/// One stream of repeated events and its log-line budget.
#[derive(Debug, Clone, Copy)]
pub struct LogLimiter {
    interval: Duration,
    last_line: Option<Instant>,
    unlogged: u64,
}

impl LogLimiter {
    /// At most one line per `interval`; no line written yet.
    pub const fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last_line: None,
            unlogged: 0,
        }
    }

    /// The interval between two lines.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Notes one event at `now`. `Some(n)`: write a line now, standing for `n` events (this one
    /// and every one held back since the previous line); `None` while the previous line is less
    /// than the interval old.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last_line
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_logs_then_one_line_per_interval_with_the_held_back_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.note(at(0)), Some(1));
        for ms in [1, 500, 9_999] {
            assert_eq!(l.note(at(ms)), None);
        }
        assert_eq!(l.note(at(10_000)), Some(4));
        assert_eq!(l.note(at(10_001)), None);
        assert_eq!(l.note(at(25_000)), Some(2));
    }

    #[test]
    fn a_clock_going_backwards_holds_lines_back_instead_of_panicking() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.note(t0), Some(1));
        assert_eq!(l.note(t0 - Duration::from_secs(50)), None);
        assert_eq!(l.note(t0 + Duration::from_secs(10)), Some(2));
    }
}
