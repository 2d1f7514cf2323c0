//! What the service's feed runs did: `ipcheck_feed_runs_total{feed,result}`,
//! `ipcheck_feed_networks{feed}`, `ipcheck_feed_last_success_timestamp_seconds{feed}`, the
//! `/readyz` line, and the log gate (one line per failure kind per interval).
//!
//! Held by [`crate::metrics::Metrics`], so it outlives reloads as the counters do.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::run::{result_label, Failure, Outcome, RESULTS};
use crate::exposition::{header, Kind};

/// Index of `skipped` in [`RESULTS`].
const SKIPPED: usize = 1;

/// One feed's record.
#[derive(Debug, Default)]
struct Record {
    runs: [u64; RESULTS.len()],
    networks: Option<u64>,
    last_success: Option<u64>,
    /// The last run's failure, until a run succeeds.
    failing: Option<(&'static str, String)>,
    logged: BTreeMap<&'static str, Instant>,
}

/// Every feed's record, by name.
#[derive(Debug, Default)]
pub struct FeedStatus {
    feeds: Mutex<BTreeMap<String, Record>>,
}

impl FeedStatus {
    /// Declares the feeds the service runs, so their metrics exist (at 0) before the first run.
    pub fn declare(&self, name: &str) {
        self.lock().entry(name.to_owned()).or_default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Record>> {
        self.feeds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a run; true when a failure should be logged (its kind was not logged within
    /// `interval`).
    pub fn record(
        &self,
        name: &str,
        result: &Result<Outcome, Failure>,
        interval: Duration,
        now: Instant,
    ) -> bool {
        let mut feeds = self.lock();
        let r = feeds.entry(name.to_owned()).or_default();
        let label = result_label(result);
        if let Some(i) = RESULTS.iter().position(|l| *l == label) {
            r.runs[i] += 1;
        }
        match result {
            Ok(Outcome::Loaded { networks, .. }) => {
                r.networks = Some(*networks as u64);
                r.last_success = Some(unix_now());
                r.failing = None;
                false
            }
            Ok(Outcome::Skipped) => false,
            Err(f) => {
                r.failing = Some((f.kind(), f.to_string()));
                let due = r
                    .logged
                    .get(f.kind())
                    .is_none_or(|at| now.duration_since(*at) >= interval);
                if due {
                    r.logged.insert(f.kind(), now);
                }
                due
            }
        }
    }

    /// Whether some feed's last run failed (the instance is then degraded, never unready: the
    /// lists keep their last good data).
    pub fn failing(&self) -> bool {
        self.lock().values().any(|r| r.failing.is_some())
    }

    /// The `/readyz` line: `feeds: tor ok (1234 networks), drop failing (shrink: ...)`; empty
    /// without feeds.
    pub fn line(&self) -> String {
        let feeds = self.lock();
        if feeds.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = feeds
            .iter()
            .map(|(name, r)| match (&r.failing, r.networks) {
                (Some((kind, detail)), _) => format!("{name} failing ({kind}: {detail})"),
                (None, Some(n)) => format!("{name} ok ({n} networks loaded here)"),
                (None, None) if r.runs[SKIPPED] > 0 => {
                    format!("{name} ok (run by another instance)")
                }
                (None, None) => format!("{name} not run here yet"),
            })
            .collect();
        format!("feeds: {}\n", parts.join(", "))
    }

    /// Appends the Prometheus exposition (nothing without feeds).
    pub fn render(&self, out: &mut String) {
        let feeds = self.lock();
        if feeds.is_empty() {
            return;
        }
        header(out, "ipcheck_feed_runs_total", "Feed runs by this instance, by result (skipped: another instance held the feed's lock).", Kind::Counter);
        for (name, r) in feeds.iter() {
            for (label, n) in RESULTS.iter().zip(r.runs) {
                let _ = writeln!(
                    out,
                    "ipcheck_feed_runs_total{{feed=\"{name}\",result=\"{label}\"}} {n}"
                );
            }
        }
        header(
            out,
            "ipcheck_feed_networks",
            "Networks of the feed's last download this instance loaded.",
            Kind::Gauge,
        );
        for (name, r) in feeds.iter() {
            if let Some(n) = r.networks {
                let _ = writeln!(out, "ipcheck_feed_networks{{feed=\"{name}\"}} {n}");
            }
        }
        header(
            out,
            "ipcheck_feed_last_success_timestamp_seconds",
            "When this instance last loaded the feed, Unix seconds.",
            Kind::Gauge,
        );
        for (name, r) in feeds.iter() {
            if let Some(t) = r.last_success {
                let _ = writeln!(
                    out,
                    "ipcheck_feed_last_success_timestamp_seconds{{feed=\"{name}\"}} {t}"
                );
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_is_the_second_result() {
        assert_eq!(RESULTS[SKIPPED], "skipped");
    }

    #[test]
    fn failures_log_once_per_kind_per_interval() {
        let s = FeedStatus::default();
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let fail = Err(Failure::Fetch("HTTP 500".into()));
        assert!(s.record("tor", &fail, hour, t0));
        assert!(!s.record("tor", &fail, hour, t0 + Duration::from_secs(60)));
        assert!(s.record("tor", &Err(Failure::Redis("down".into())), hour, t0));
        assert!(s.record("tor", &fail, hour, t0 + hour));
        assert!(s.failing());
        assert!(
            s.line().contains("tor failing (fetch_error: HTTP 500)"),
            "{}",
            s.line()
        );
        s.record(
            "tor",
            &Ok(Outcome::Loaded {
                networks: 7,
                before: None,
            }),
            hour,
            t0,
        );
        assert!(!s.failing());
        s.record("drop", &Ok(Outcome::Skipped), hour, t0);
        assert!(
            s.line().contains("drop ok (run by another instance)"),
            "{}",
            s.line()
        );
        let mut text = String::new();
        s.render(&mut text);
        assert!(
            text.contains("ipcheck_feed_runs_total{feed=\"tor\",result=\"fetch_error\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("ipcheck_feed_runs_total{feed=\"tor\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ipcheck_feed_networks{feed=\"tor\"} 7"),
            "{text}"
        );
    }
}
