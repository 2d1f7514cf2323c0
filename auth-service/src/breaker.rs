//! A circuit breaker for one dependency (Redis, the provider): after `failures` consecutive
//! failed calls it opens, and for `cooldown` no call is made, so a dead dependency costs nothing
//! per request instead of a deadline (or a paid call) each. Then it is half-open: exactly one
//! call at a time goes through as a probe; its success closes the breaker, its failure opens it
//! again for another cool-down.
//!
//! [`Circuit`] is the pure state machine, with the caller's clock passed in so the rules are
//! tested without waiting; [`Breaker`] shares one behind a lock, counts, renders metrics and logs
//! each opening (WARN) and closing (INFO) once.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::exposition::{header, Kind};

/// A breaker's configuration (`[redis.breaker]`, `[provider.breaker]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker; 0 turns the breaker off.
    pub failures: u32,
    /// How long an open breaker makes no call before letting one probe through.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            cooldown: Duration::from_secs(5),
        }
    }
}

/// The breaker's state, as exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls are made.
    Closed,
    /// No call is made until the cool-down is over.
    Open,
    /// One probe call at a time.
    HalfOpen,
}

impl State {
    /// Every state, in metric order.
    pub const ALL: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// Whether a call may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: call.
    Call,
    /// Half-open: call, as the one probe.
    Probe,
    /// Open, or a probe is already out: do not call.
    Reject,
}

impl Admit {
    /// Whether the call may be made.
    pub fn allowed(self) -> bool {
        self != Admit::Reject
    }
}

/// A change worth a log line and a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Closed → open: consecutive failures reached the threshold.
    Opened,
    /// Half-open → open: the probe failed.
    Reopened,
    /// → closed: a call (the probe, or a verification) succeeded.
    Closed,
}

/// The pure state machine.
#[derive(Debug, Clone)]
pub struct Circuit {
    settings: BreakerSettings,
    inner: Inner,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `probe`: when the probe now out was let through. A probe whose outcome is never reported
    /// (its caller went away) stops blocking after a cool-down, so the breaker cannot wedge.
    HalfOpen {
        probe: Option<Instant>,
    },
}

impl Circuit {
    /// A closed circuit.
    pub fn new(settings: BreakerSettings) -> Self {
        Circuit {
            settings,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state at `now` (an open circuit whose cool-down is over is half-open).
    pub fn state(&self, now: Instant) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { until } if now < until => State::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Whether a call may be made at `now`; a probe admitted must report its outcome (or it
    /// blocks other probes for a cool-down).
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.inner {
            Inner::Closed { .. } => Admit::Call,
            Inner::Open { until } if now < until => Admit::Reject,
            Inner::Open { .. } => {
                self.inner = Inner::HalfOpen { probe: Some(now) };
                Admit::Probe
            }
            Inner::HalfOpen { probe: Some(t) }
                if now.saturating_duration_since(t) < self.settings.cooldown =>
            {
                Admit::Reject
            }
            Inner::HalfOpen { .. } => {
                self.inner = Inner::HalfOpen { probe: Some(now) };
                Admit::Probe
            }
        }
    }

    /// A probe admitted but not made (another limit said no): the next call may probe.
    pub fn abandon(&mut self, admitted: Admit) {
        if admitted == Admit::Probe {
            if let Inner::HalfOpen { .. } = self.inner {
                self.inner = Inner::HalfOpen { probe: None };
            }
        }
    }

    /// A call succeeded.
    pub fn success(&mut self) -> Option<Change> {
        let was_closed = matches!(self.inner, Inner::Closed { .. });
        self.inner = Inner::Closed { failures: 0 };
        (!was_closed).then_some(Change::Closed)
    }

    /// A call failed (an error or a timeout) at `now`.
    pub fn failure(&mut self, now: Instant) -> Option<Change> {
        if self.settings.failures == 0 {
            return None;
        }
        let until = now + self.settings.cooldown;
        match self.inner {
            Inner::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.settings.failures {
                    self.inner = Inner::Open { until };
                    Some(Change::Opened)
                } else {
                    self.inner = Inner::Closed { failures };
                    None
                }
            }
            Inner::HalfOpen { .. } => {
                self.inner = Inner::Open { until };
                Some(Change::Reopened)
            }
            // A call admitted before the breaker opened, failing late: the cool-down stands.
            Inner::Open { .. } => None,
        }
    }

    /// When an open circuit lets a probe through (`None` unless open).
    pub fn open_until(&self) -> Option<Instant> {
        match self.inner {
            Inner::Open { until } => Some(until),
            _ => None,
        }
    }
}

/// One dependency's breaker, shared by every request.
#[derive(Debug)]
pub struct Breaker {
    dependency: &'static str,
    circuit: Mutex<Circuit>,
    opened: AtomicU64,
    rejected: AtomicU64,
}

impl Breaker {
    /// A closed breaker for `dependency` (`redis` or `provider`: the metric label).
    pub fn new(dependency: &'static str, settings: BreakerSettings) -> Self {
        Breaker {
            dependency,
            circuit: Mutex::new(Circuit::new(settings)),
            opened: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may be made now; a rejection is counted.
    pub fn admit(&self) -> Admit {
        let admit = self.circuit().admit(Instant::now());
        if admit == Admit::Reject {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        admit
    }

    /// See [`Circuit::abandon`].
    pub fn abandon(&self, admitted: Admit) {
        self.circuit().abandon(admitted);
    }

    /// Records a call's outcome.
    pub fn record(&self, ok: bool) {
        let mut circuit = self.circuit();
        let change = if ok {
            circuit.success()
        } else {
            circuit.failure(Instant::now())
        };
        let cooldown = circuit.settings.cooldown;
        let threshold = circuit.settings.failures;
        drop(circuit);
        let dependency = self.dependency;
        let cooldown = crate::duration::display(cooldown);
        match change {
            Some(Change::Opened) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    dependency,
                    "circuit breaker open: {threshold} consecutive {dependency} calls failed, so none is made for {cooldown}, then one probe ({})",
                    consequence(dependency)
                );
            }
            Some(Change::Closed) => {
                tracing::info!(
                    dependency,
                    "circuit breaker closed: {dependency} answers again"
                )
            }
            Some(Change::Reopened) => tracing::debug!(
                dependency,
                "circuit breaker probe failed: {dependency} still failing, next probe in {cooldown}"
            ),
            None => {}
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.circuit().state(Instant::now())
    }

    /// The `/readyz` line, e.g. `redis breaker: open (probe in 3s)`.
    pub fn line(&self) -> String {
        let now = Instant::now();
        let circuit = self.circuit();
        let state = circuit.state(now);
        let more = match circuit.open_until() {
            Some(until) if state == State::Open => format!(
                " (no call made; probe in {})",
                crate::duration::display(Duration::from_secs(
                    until.saturating_duration_since(now).as_secs() + 1
                ))
            ),
            _ => String::new(),
        };
        format!("{} breaker: {}{more}\n", self.dependency, state.as_str())
    }

    /// `ipcheck_breaker_state`, `ipcheck_breaker_opened_total` and
    /// `ipcheck_breaker_rejected_total` samples (the HELP/TYPE lines come from [`render_help`]).
    pub fn render(&self, out: &mut String) {
        let state = self.state();
        let d = self.dependency;
        for s in State::ALL {
            let _ = writeln!(
                out,
                "ipcheck_breaker_state{{dependency=\"{d}\",state=\"{}\"}} {}",
                s.as_str(),
                u8::from(s == state)
            );
        }
        let _ = writeln!(
            out,
            "ipcheck_breaker_opened_total{{dependency=\"{d}\"}} {}",
            self.opened.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "ipcheck_breaker_rejected_total{{dependency=\"{d}\"}} {}",
            self.rejected.load(Ordering::Relaxed)
        );
    }
}

/// What an open breaker means for decisions, for its log line.
fn consequence(dependency: &str) -> &'static str {
    if dependency == "redis" {
        "meanwhile each policy's on_redis_error decides without waiting for Redis"
    } else {
        "meanwhile each policy's on_error decides, reason provider-error"
    }
}

/// The HELP and TYPE lines of the breaker metrics, written once before every breaker's samples.
pub fn render_help(out: &mut String) {
    header(
        out,
        "ipcheck_breaker_state",
        "Circuit breaker state per dependency (1 for the current one).",
        Kind::Gauge,
    );
    header(
        out,
        "ipcheck_breaker_opened_total",
        "Times a circuit breaker opened after consecutive failures.",
        Kind::Counter,
    );
    header(
        out,
        "ipcheck_breaker_rejected_total",
        "Calls not made because a circuit breaker was open.",
        Kind::Counter,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit() -> (Circuit, Instant) {
        let settings = BreakerSettings {
            failures: 3,
            cooldown: Duration::from_secs(5),
        };
        (Circuit::new(settings), Instant::now())
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (mut c, t0) = circuit();
        assert_eq!(c.failure(t0), None);
        assert_eq!(c.failure(t0), None);
        assert_eq!(c.success(), None, "a success resets the count");
        assert_eq!(c.failure(t0), None);
        assert_eq!(c.failure(t0), None);
        assert_eq!(c.state(t0), State::Closed);
        assert_eq!(c.admit(t0), Admit::Call);
        assert_eq!(c.failure(t0), Some(Change::Opened));
        assert_eq!(c.state(t0), State::Open);
    }

    #[test]
    fn open_rejects_for_the_cooldown_then_lets_one_probe_through() {
        let (mut c, t0) = circuit();
        for _ in 0..3 {
            c.failure(t0);
        }
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(c.admit(at(1)), Admit::Reject);
        assert_eq!(c.admit(at(4)), Admit::Reject);
        assert_eq!(c.state(at(5)), State::HalfOpen);
        assert_eq!(c.admit(at(5)), Admit::Probe);
        assert_eq!(c.admit(at(5)), Admit::Reject, "one probe at a time");
        assert_eq!(c.admit(at(6)), Admit::Reject);
        // The probe fails: open again for a whole cool-down from then.
        assert_eq!(c.failure(at(6)), Some(Change::Reopened));
        assert_eq!(c.admit(at(10)), Admit::Reject);
        assert_eq!(c.admit(at(11)), Admit::Probe);
        // The probe succeeds: closed, every call goes through.
        assert_eq!(c.success(), Some(Change::Closed));
        assert_eq!(c.admit(at(11)), Admit::Call);
        assert_eq!(c.admit(at(11)), Admit::Call);
    }

    #[test]
    fn a_lost_or_abandoned_probe_does_not_wedge_the_breaker() {
        let (mut c, t0) = circuit();
        for _ in 0..3 {
            c.failure(t0);
        }
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(c.admit(at(5)), Admit::Probe);
        // Its outcome is never reported: after a cool-down another probe may go.
        assert_eq!(c.admit(at(9)), Admit::Reject);
        let probe = c.admit(at(10));
        assert_eq!(probe, Admit::Probe);
        // Admitted but not made (over budget): the next call may probe at once.
        c.abandon(probe);
        assert_eq!(c.admit(at(10)), Admit::Probe);
    }

    #[test]
    fn a_late_failure_does_not_extend_the_cooldown_and_zero_turns_it_off() {
        let (mut c, t0) = circuit();
        for _ in 0..3 {
            c.failure(t0);
        }
        assert_eq!(c.failure(t0 + Duration::from_secs(4)), None);
        assert_eq!(c.admit(t0 + Duration::from_secs(5)), Admit::Probe);
        let mut off = Circuit::new(BreakerSettings {
            failures: 0,
            cooldown: Duration::from_secs(5),
        });
        for _ in 0..100 {
            off.failure(t0);
        }
        assert_eq!(off.admit(t0), Admit::Call);
    }

    #[test]
    fn breaker_counts_and_renders() {
        let b = Breaker::new(
            "redis",
            BreakerSettings {
                failures: 2,
                cooldown: Duration::from_secs(60),
            },
        );
        b.record(false);
        b.record(false);
        assert_eq!(b.admit(), Admit::Reject);
        let mut text = String::new();
        b.render(&mut text);
        assert!(text.contains("ipcheck_breaker_state{dependency=\"redis\",state=\"open\"} 1"));
        assert!(text.contains("ipcheck_breaker_opened_total{dependency=\"redis\"} 1"));
        assert!(text.contains("ipcheck_breaker_rejected_total{dependency=\"redis\"} 1"));
        assert!(b
            .line()
            .starts_with("redis breaker: open (no call made; probe in "));
        b.record(true);
        assert_eq!(b.line(), "redis breaker: closed\n");
    }
}
