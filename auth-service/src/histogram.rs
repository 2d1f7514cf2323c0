//! A latency histogram on plain atomics, rendered in the Prometheus text format.
//!
//! One observation is a linear scan of a dozen bounds and two relaxed adds: no lock, so both
//! cores observe at once without queueing (`prometheus-client`'s histogram takes a mutex per
//! observation; bench/README.md has the measurement that chose this).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bounds, in seconds, for the service's own latencies (`/auth`, Redis calls): a local hit takes
/// microseconds, a Redis round trip a fraction of a millisecond, a provider call up to the
/// lookup deadline.
pub const FAST_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counts per bucket and the sum; cumulative counts are computed when rendered.
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, plus the `+Inf` bucket.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Nanoseconds in a u64 wrap after 584 years of summed latency.
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Appends the `_bucket`, `_sum` and `_count` series of `name`; `labels` is empty or
    /// `key="value"` pairs without braces, put before `le`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, le) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// Appends the `# HELP` and `# TYPE` lines of histogram `name`.
pub fn render_header(out: &mut String, name: &str, help: &str) {
    crate::exposition::header(out, name, help, crate::exposition::Kind::Histogram);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_labelled() {
        let h = Histogram::new(&FAST_BUCKETS);
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "op=\"get\"");
        assert!(
            out.contains("x_seconds_bucket{op=\"get\",le=\"0.0001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"get\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"get\",le=\"2.5\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{op=\"get\"} 3\n"), "{out}");
        assert!(
            out.contains("x_seconds_sum{op=\"get\"} 10.00305\n"),
            "{out}"
        );
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn unlabelled_series_have_no_empty_braces() {
        let h = Histogram::new(&FAST_BUCKETS);
        h.observe(Duration::from_millis(1));
        let mut out = String::new();
        h.render(&mut out, "y_seconds", "");
        assert!(out.contains("y_seconds_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("y_seconds_count 1\n"), "{out}");
        assert!(out.contains("y_seconds_sum 0.001\n"), "{out}");
    }
}
