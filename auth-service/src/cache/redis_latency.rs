//! `ipcheck_redis_duration_seconds{op}`: how long the decision path's `IPCHECK GET` and `SET`
//! calls take, from sending to the answer or the lookup deadline (a timeout is observed at the
//! deadline). Calls the open breaker refuses never reach Redis and are not observed.

use std::time::Duration;

use super::redis_health::Op;
use crate::histogram::{render_header, Histogram, FAST_BUCKETS};

const NAME: &str = "ipcheck_redis_duration_seconds";

/// One histogram per decision-path op.
pub struct Latency {
    get: Histogram,
    set: Histogram,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            get: Histogram::new(&FAST_BUCKETS),
            set: Histogram::new(&FAST_BUCKETS),
        }
    }
}

impl Latency {
    /// Records one call of `op`; ops other than GET and SET do not go through the lookup path
    /// and are ignored.
    pub fn observe(&self, op: Op, elapsed: Duration) {
        match op {
            Op::Get => self.get.observe(elapsed),
            Op::Set => self.set.observe(elapsed),
            Op::Verify | Op::Budget => {}
        }
    }

    /// Appends the histogram, both ops always present.
    pub fn render(&self, out: &mut String) {
        render_header(
            out,
            NAME,
            "IPCHECK GET/SET call latency on the decision path, by op.",
        );
        self.get.render(out, NAME, "op=\"get\"");
        self.set.render(out, NAME, "op=\"set\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_set_are_separate_series() {
        let l = Latency::default();
        l.observe(Op::Get, Duration::from_micros(300));
        l.observe(Op::Get, Duration::from_micros(300));
        l.observe(Op::Set, Duration::from_millis(2));
        l.observe(Op::Verify, Duration::from_millis(2));
        let mut out = String::new();
        l.render(&mut out);
        assert!(
            out.contains("ipcheck_redis_duration_seconds_count{op=\"get\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("ipcheck_redis_duration_seconds_count{op=\"set\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE ipcheck_redis_duration_seconds histogram\n"));
    }
}
