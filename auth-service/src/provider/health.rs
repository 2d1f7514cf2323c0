//! What the provider's real calls have been saying, for `/readyz` and the log.
//!
//! The state comes only from lookups the service made anyway: a probe would spend quota (and a
//! TCP connect proves nothing about the API key). Failures are logged one line per kind per
//! [`LOG_INTERVAL`] with a count, because a dead provider fails once per address and one line per
//! address would bury everything else in the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipcheck_core::LogLimiter;

use super::{ProviderError, ProviderSpec};

/// At most one log line per failure kind in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One log line per kind per interval ([`LogLimiter`] for each kind); the line carries how many
/// failures it stands for.
#[derive(Debug)]
pub struct KindLogLimiter {
    kinds: Mutex<Vec<LogLimiter>>,
}

impl KindLogLimiter {
    /// A limiter over `kinds` kinds (indexes `0..kinds`).
    pub fn new(kinds: usize, interval: Duration) -> Self {
        KindLogLimiter {
            kinds: Mutex::new(vec![LogLimiter::new(interval); kinds]),
        }
    }

    /// One failure of `kind` at `now` (the clock is the caller's, so tests need not wait).
    /// `Some(n)`: write a line now, standing for `n` failures (this one and those held back
    /// since the last line); `None`: stay quiet.
    pub fn admit(&self, kind: usize, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        kinds.get_mut(kind)?.note(now)
    }
}

/// The outcome of the latest real call, and since when it has been that way.
#[derive(Debug, Default)]
pub struct Health {
    last: Mutex<Option<Last>>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    outcome: Result<(), ProviderError>,
    since: Instant,
    calls: u64,
}

/// Two outcomes are "the same state" when they are the same kind (status codes aside).
fn same_state(a: Result<(), ProviderError>, b: Result<(), ProviderError>) -> bool {
    match (a, b) {
        (Ok(()), Ok(())) => true,
        (Err(x), Err(y)) => x.kind_index() == y.kind_index(),
        _ => false,
    }
}

impl Health {
    /// Records one call's outcome; returns the previous outcome when the state changed.
    pub fn record(
        &self,
        outcome: Result<(), ProviderError>,
        now: Instant,
    ) -> Option<Result<(), ProviderError>> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.as_mut() {
            Some(l) if same_state(l.outcome, outcome) => {
                l.outcome = outcome;
                l.calls += 1;
                None
            }
            previous => {
                let before = previous.map(|l| l.outcome);
                *last = Some(Last {
                    outcome,
                    since: now,
                    calls: 1,
                });
                before
            }
        }
    }

    /// Whether the latest real call failed.
    pub fn failing(&self) -> bool {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|l| l.outcome.is_err())
    }

    /// The `/readyz` line, e.g. `provider: refusing the API key in IPASIS_API_KEY (HTTP 401)
    /// for 12s (20 calls)`. Names the key's variable, never its value.
    pub fn line(&self, spec: &ProviderSpec, now: Instant) -> String {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let name = &spec.name;
        let Some(last) = last else {
            return format!("provider: {name}: no lookup made yet");
        };
        let age = crate::duration::display(Duration::from_secs(
            now.saturating_duration_since(last.since).as_secs(),
        ));
        let calls = last.calls;
        match last.outcome {
            Ok(()) => {
                format!("provider: {name}: ok (the last {calls} lookups answered, for {age})")
            }
            Err(ProviderError::Auth(code)) => format!(
                "provider: {name}: refusing {} (HTTP {code}) for {age} ({calls} lookups failed)",
                refused_key(spec)
            ),
            Err(e) => format!("provider: {name}: down: {e} for {age} ({calls} lookups failed)"),
        }
    }
}

/// What the provider refused: "the API key in IPASIS_API_KEY" (the variable, never the value).
pub fn refused_key(spec: &ProviderSpec) -> String {
    if let Some(path) = &spec.api_key_file {
        return format!("the API key in {}", path.display());
    }
    match &spec.api_key_env {
        Some(var) => format!("the API key in {var}"),
        None => "the requests, which carry no API key (provider.api_key_env is empty)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_with_a_count() {
        let limiter = KindLogLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(limiter.admit(0, at(0)), Some(1));
        for ms in [1, 500, 9_999] {
            assert_eq!(limiter.admit(0, at(ms)), None);
        }
        // Another kind has its own budget.
        assert_eq!(limiter.admit(1, at(5_000)), Some(1));
        // The next line for kind 0 stands for the three held back and itself.
        assert_eq!(limiter.admit(0, at(10_000)), Some(4));
        assert_eq!(limiter.admit(0, at(10_001)), None);
        assert_eq!(limiter.admit(0, at(25_000)), Some(2));
        // An index out of range stays quiet rather than panicking.
        assert_eq!(limiter.admit(7, at(0)), None);
    }

    #[test]
    fn health_tracks_state_changes() {
        let spec = crate::config::parse("t", "[provider]\npreset = \"ipasis\"\n", &[])
            .unwrap()
            .provider
            .unwrap();
        let h = Health::default();
        let t0 = Instant::now();
        assert_eq!(h.line(&spec, t0), "provider: ipasis: no lookup made yet");
        assert_eq!(h.record(Err(ProviderError::Auth(401)), t0), None);
        assert_eq!(h.record(Err(ProviderError::Auth(401)), t0), None);
        assert_eq!(
            h.line(&spec, t0 + Duration::from_secs(12)),
            "provider: ipasis: refusing the API key in IPASIS_API_KEY (HTTP 401) for 12s (2 lookups failed)"
        );
        assert_eq!(
            h.record(Ok(()), t0 + Duration::from_secs(13)),
            Some(Err(ProviderError::Auth(401)))
        );
        assert!(h
            .line(&spec, t0 + Duration::from_secs(13))
            .contains(": ok ("));
        assert_eq!(h.record(Err(ProviderError::Timeout), t0), Some(Ok(())));
        assert!(h
            .line(&spec, t0 + Duration::from_secs(14))
            .starts_with("provider: ipasis: down: timed out for "));
    }
}
