//! The Redis tier's state (ok, down, misconfigured), its error counters, and the log lines that
//! say when the state changes.
//!
//! Every call's outcome is recorded here. A failing Redis fails on every request, so errors are
//! not logged one by one: a line is written when the state changes (WARN for down, ERROR for
//! misconfigured, INFO when Redis works again), at most one per state per [`LOG_INTERVAL`], so
//! a flapping Redis cannot flood the log; changes held back are counted and summed up, with the
//! state they ended in, by [`Health::flush`], which the service calls periodically.
//!
//! Misconfigured is sticky: one GET succeeding says nothing about a missing SET permission or a
//! prefix mismatch, so only a passing verification ([`Health::verified`]) clears it.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::redis_error::{ErrorKind, RedisError};
use crate::exposition::{header, Kind};

/// Shortest time between two state-change log lines.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What a call was, for `ipcheck_redis_errors_total{op}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `IPCHECK GET` on the decision path.
    Get,
    /// `IPCHECK SET` after a provider answer.
    Set,
    /// The startup and `/readyz` verification.
    Verify,
    /// The shared provider budget's counter script (`provider.budget.shared`).
    Budget,
}

impl Op {
    /// Every op, in metric order.
    pub const ALL: [Op; 4] = [Op::Get, Op::Set, Op::Verify, Op::Budget];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Verify => "verify",
            Op::Budget => "budget",
        }
    }
}

/// The tier's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing known yet (no call made).
    Unknown = 0,
    /// The last call answered.
    Ok = 1,
    /// Calls time out or find no connection.
    Down = 2,
    /// Redis answers, but not as the service needs (module, ACL, password, prefixes).
    Misconfigured = 3,
}

impl State {
    /// The states exported by `ipcheck_redis_state`.
    pub const EXPORTED: [State; 3] = [State::Ok, State::Down, State::Misconfigured];

    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Ok,
            2 => State::Down,
            3 => State::Misconfigured,
            _ => State::Unknown,
        }
    }

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Ok => "ok",
            State::Down => "down",
            State::Misconfigured => "misconfigured",
        }
    }
}

/// The state a failure leads to from `current`, or `None` to stay. Pure, so the rules are tested
/// on their own: a misconfiguration wins over down, and only a verification clears it.
pub fn next_state(current: State, failure: ErrorKind) -> Option<State> {
    let next = if failure.is_misconfiguration() {
        State::Misconfigured
    } else {
        State::Down
    };
    (next != current && current != State::Misconfigured).then_some(next)
}

struct LogGate {
    /// When a change to each state (by `State as usize`) was last logged.
    last: [Option<Instant>; 4],
    /// Changes not logged since the last line.
    suppressed: u64,
}

/// State, counters and log gate of one Redis tier.
pub struct Health {
    display: String,
    state: AtomicU8,
    errors: Box<[AtomicU64]>,
    gate: Mutex<LogGate>,
}

impl Health {
    /// A tier at `display` (host:port, never the password), state unknown.
    pub fn new(display: String) -> Self {
        Health {
            display,
            state: AtomicU8::new(State::Unknown as u8),
            errors: (0..Op::ALL.len() * ErrorKind::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            gate: Mutex::new(LogGate {
                last: [None; 4],
                suppressed: 0,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// A call answered. One relaxed load while the state is already ok (the hot path).
    pub fn answered(&self) {
        match self.state() {
            State::Ok | State::Misconfigured => {}
            State::Unknown | State::Down => self.change(State::Ok, None),
        }
    }

    /// A call failed without saying anything about the lookups (the shared budget's counter,
    /// whose permissions are not the lookups'): counted, the state is left alone.
    pub fn count(&self, op: Op, error: &RedisError) {
        let k = ErrorKind::ALL
            .iter()
            .position(|k| *k == error.kind)
            .unwrap_or(ErrorKind::ALL.len() - 1);
        self.errors[op as usize * ErrorKind::ALL.len() + k].fetch_add(1, Ordering::Relaxed);
    }

    /// A call failed.
    pub fn failed(&self, op: Op, error: &RedisError) {
        self.count(op, error);
        if let Some(next) = next_state(self.state(), error.kind) {
            self.change(next, Some((op, error)));
        }
    }

    /// A verification finished: its result is the state, misconfigured or not.
    pub fn verified(&self, result: Result<(), &RedisError>) {
        let next = match result {
            Ok(()) => State::Ok,
            Err(e) if e.kind.is_misconfiguration() => State::Misconfigured,
            Err(_) => State::Down,
        };
        if next != self.state() {
            self.change(next, result.err().map(|e| (Op::Verify, e)));
        }
    }

    fn change(&self, next: State, cause: Option<(Op, &RedisError)>) {
        let previous = State::from_u8(self.state.swap(next as u8, Ordering::Relaxed));
        if previous == next {
            return;
        }
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let last = &mut gate.last[next as usize];
        if last.is_some_and(|t| now.duration_since(t) < LOG_INTERVAL) {
            gate.suppressed += 1;
            return;
        }
        *last = Some(now);
        let suppressed = std::mem::take(&mut gate.suppressed);
        drop(gate);
        self.log(previous, next, cause, suppressed);
    }

    fn log(
        &self,
        previous: State,
        state: State,
        cause: Option<(Op, &RedisError)>,
        suppressed: u64,
    ) {
        let addr = &self.display;
        let also = if suppressed > 0 {
            format!(" ({suppressed} earlier state changes not logged)")
        } else {
            String::new()
        };
        let (op, kind, error) = match cause {
            Some((op, e)) => (op.as_str(), e.kind.as_str(), e.to_string()),
            None => ("", "", String::new()),
        };
        match state {
            State::Ok | State::Unknown => {
                tracing::info!(redis = %addr, "Redis answers as the service needs: the Redis tier is up{also}")
            }
            // Never reached since startup: as likely a wrong redis.url as an outage, and pins are
            // invisible until it is fixed, so it is an error, not a warning.
            State::Down if previous == State::Unknown => tracing::error!(
                redis = %addr, op, kind, error,
                "Redis cannot be reached since startup (check redis.url): decisions go on without it (each policy's on_redis_error decides){also}"
            ),
            State::Down => tracing::warn!(
                redis = %addr, op, kind, error,
                "Redis is down or too slow: decisions go on without it (each policy's on_redis_error decides){also}"
            ),
            State::Misconfigured => tracing::error!(
                redis = %addr, op, kind, error,
                "Redis is misconfigured for ipcheck: fix it, meanwhile decisions go on without it (each policy's on_redis_error decides){also}"
            ),
        }
    }

    /// Writes the summary line for state changes the gate held back, once the interval is over.
    pub fn flush(&self) {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let state = self.state();
        let recent = gate.last[state as usize].is_some_and(|t| t.elapsed() < LOG_INTERVAL);
        if gate.suppressed == 0 || recent {
            return;
        }
        gate.last[state as usize] = Some(Instant::now());
        let suppressed = std::mem::take(&mut gate.suppressed);
        drop(gate);
        let addr = &self.display;
        let msg = format!(
            "the Redis tier changed state {suppressed} times in the last {}s; it is now {}",
            LOG_INTERVAL.as_secs(),
            state.as_str()
        );
        match state {
            State::Ok | State::Unknown => tracing::info!(redis = %addr, "{msg}"),
            State::Down => tracing::warn!(redis = %addr, "{msg}"),
            State::Misconfigured => tracing::error!(redis = %addr, "{msg}"),
        }
    }

    /// `ipcheck_redis_errors_total`, `ipcheck_redis_up` and `ipcheck_redis_state`.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "ipcheck_redis_errors_total",
            "Redis calls without an answer, by operation and kind.",
            Kind::Counter,
        );
        for op in Op::ALL {
            for (k, kind) in ErrorKind::ALL.iter().enumerate() {
                let n = self.errors[op as usize * ErrorKind::ALL.len() + k].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "ipcheck_redis_errors_total{{op=\"{}\",kind=\"{}\"}} {n}",
                    op.as_str(),
                    kind.as_str()
                );
            }
        }
        let state = self.state();
        header(
            out,
            "ipcheck_redis_up",
            "1 while the Redis tier answers as the service needs.",
            Kind::Gauge,
        );
        let _ = writeln!(out, "ipcheck_redis_up {}", u8::from(state == State::Ok));
        header(
            out,
            "ipcheck_redis_state",
            "The Redis tier's state (1 for the current one).",
            Kind::Gauge,
        );
        for s in State::EXPORTED {
            let _ = writeln!(
                out,
                "ipcheck_redis_state{{state=\"{}\"}} {}",
                s.as_str(),
                u8::from(s == state)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_rules() {
        use ErrorKind::*;
        assert_eq!(next_state(State::Ok, Timeout), Some(State::Down));
        assert_eq!(next_state(State::Unknown, Refused), Some(State::Down));
        assert_eq!(next_state(State::Down, Refused), None, "down stays down");
        assert_eq!(next_state(State::Ok, NoPerm), Some(State::Misconfigured));
        assert_eq!(
            next_state(State::Down, ModuleMissing),
            Some(State::Misconfigured)
        );
        assert_eq!(
            next_state(State::Misconfigured, Timeout),
            None,
            "only a verification clears a misconfiguration"
        );
    }

    #[test]
    fn transitions_and_metrics() {
        let h = Health::new("127.0.0.1:6379".into());
        h.answered();
        assert_eq!(h.state(), State::Ok);
        h.failed(Op::Get, &RedisError::bare(ErrorKind::Timeout));
        h.failed(Op::Get, &RedisError::bare(ErrorKind::Timeout));
        assert_eq!(h.state(), State::Down);
        h.answered();
        assert_eq!(h.state(), State::Ok);
        h.failed(Op::Set, &RedisError::bare(ErrorKind::NoPerm));
        h.answered();
        assert_eq!(
            h.state(),
            State::Misconfigured,
            "a GET answering does not clear it"
        );
        h.verified(Ok(()));
        assert_eq!(h.state(), State::Ok);
        let mut text = String::new();
        h.render(&mut text);
        assert!(
            text.contains("ipcheck_redis_errors_total{op=\"get\",kind=\"timeout\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ipcheck_redis_errors_total{op=\"set\",kind=\"noperm\"} 1"),
            "{text}"
        );
        assert!(text.contains("ipcheck_redis_up 1"), "{text}");
        assert!(
            text.contains("ipcheck_redis_state{state=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ipcheck_redis_state{state=\"down\"} 0"),
            "{text}"
        );
    }
}
