//! The optional per-decision log (`[log] decisions`, `decisions_sample`): one INFO line per
//! `/auth` answer under the target `ipcheck::decision`, carrying nginx's request id so a line in
//! nginx's `ipcheck` access log and the service's line for the same request can be joined.
//!
//! Off by default. Off costs one branch per request: no clock read, no allocation, no lock. On,
//! the sample is drawn from a per-thread generator (no lock, no shared counter), and the line's
//! fields borrow from the request and the outcome; only the log writer itself allocates.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use ipcheck_core::Verdict;

use crate::decide::{Outcome, POLICY_HEADER};

/// The tracing target of every decision line, for `RUST_LOG`/`log.level` filters
/// (`warn,ipcheck::decision=info`).
pub const TARGET: &str = "ipcheck::decision";

/// The request header carrying nginx's `$request_id` (sent by the drop-in's auth location).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id logged as sent; nginx's own are 32 hex digits.
pub const REQUEST_ID_MAX: usize = 64;

/// Which decisions are logged (`log.decisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decisions {
    /// None (the default).
    #[default]
    Off,
    /// Every decision.
    All,
    /// Blocks and challenges only.
    NonAllow,
}

impl Decisions {
    /// The config words, for error messages and docs.
    pub const WORDS: &'static str = "off, all or non-allow";

    /// Parses a config word.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "off" => Some(Decisions::Off),
            "all" => Some(Decisions::All),
            "non-allow" => Some(Decisions::NonAllow),
            _ => None,
        }
    }
}

/// The validated decision-log settings, and the logging itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionLog {
    decisions: Decisions,
    /// A draw below this logs; `u64::MAX` with a sample of 1 (then nothing is drawn).
    threshold: u64,
}

impl DecisionLog {
    /// Which decisions, and the fraction of them (in `(0, 1]`, checked by the config) logged.
    pub fn new(decisions: Decisions, sample: f64) -> Self {
        // f64 -> u64 saturates, so a sample of 1 gives u64::MAX.
        let threshold = (sample * u64::MAX as f64) as u64;
        DecisionLog {
            decisions,
            threshold,
        }
    }

    /// Whether any decision may be logged: the handler reads the clock only then.
    pub fn enabled(&self) -> bool {
        self.decisions != Decisions::Off
    }

    /// At startup: says so when decisions are to be logged but the log filter drops them (a
    /// `log.level` of `warn` would otherwise silence the log that was asked for).
    pub fn warn_if_filtered(&self) {
        if self.enabled() && !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            tracing::warn!(
                "log.decisions is on but the log filter drops INFO lines of the target {TARGET}, so no decision is logged; add `,{TARGET}=info` to log.level (or RUST_LOG)"
            );
        }
    }

    /// Whether a decision with this verdict is selected, drawing the sample from this thread's
    /// generator (the events stream's selection, [`crate::events`]).
    pub(crate) fn selects(&self, verdict: Verdict) -> bool {
        self.wants(verdict, next_draw)
    }

    /// Whether a decision with this verdict is logged, given a uniform random `draw`.
    fn wants(&self, verdict: Verdict, draw: impl FnOnce() -> u64) -> bool {
        let kind = match self.decisions {
            Decisions::Off => false,
            Decisions::All => true,
            Decisions::NonAllow => verdict != Verdict::Allow,
        };
        kind && (self.threshold == u64::MAX || draw() < self.threshold)
    }

    /// Logs one decision if its kind and the sample say so. Key, reason and tier are the answer's
    /// `X-IPCheck-*` values as sent (an empty reason is logged empty, as nginx's `ipcheck` access
    /// log format writes it); country, AS number and score are `-` when unknown; in observe mode
    /// (`mode=observe`) verdict and reason are the policy's, which nginx got as
    /// `X-IPCheck-Observed-*` while it was answered allow.
    pub fn record(&self, headers: &HeaderMap, outcome: &Outcome, latency: Duration) {
        if !self.wants(outcome.verdict, next_draw) {
            return;
        }
        let policy = match headers.get(POLICY_HEADER).map(HeaderValue::as_bytes) {
            None | Some(b"") => "default",
            Some(name) => sanitize(name),
        };
        tracing::info!(
            target: TARGET,
            request_id = %request_id(headers),
            key = %outcome.key.to_str().unwrap_or("-"),
            policy = %policy,
            verdict = %outcome.verdict.as_str(),
            reason = %outcome.reason.to_str().unwrap_or("-"),
            tier = %outcome.tier.as_str(),
            country = %Dash(outcome.attributes.country),
            asn = %Dash(outcome.attributes.asn),
            score = %Dash(outcome.attributes.score),
            latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            mode = %outcome.mode.as_str(),
            "decision"
        );
    }
}

/// An attribute as a log or event field: its value, `-` when unknown (as nginx logs an empty
/// variable).
pub struct Dash<T>(pub Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Dash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The request id nginx sent, as logged: [`sanitize`]d, `-` when absent.
pub fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get(REQUEST_ID_HEADER)
        .map_or("-", |v| sanitize(v.as_bytes()))
}

/// A header value as a log field: itself when it is 1 to [`REQUEST_ID_MAX`] visible ASCII
/// characters (no space, no control byte), else `-`. The value may come from a client if nginx
/// forwards a client's header, so nothing in it may split, fake or flood a log line.
pub fn sanitize(value: &[u8]) -> &str {
    let clean = !value.is_empty()
        && value.len() <= REQUEST_ID_MAX
        && value.iter().all(|b| b.is_ascii_graphic());
    match std::str::from_utf8(value) {
        Ok(text) if clean => text,
        _ => "-",
    }
}

thread_local! {
    /// xorshift64* state, seeded from std's per-process random hasher keys (never 0).
    static RNG: Cell<u64> = Cell::new(
        std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
    );
}

/// A uniform u64 from this thread's generator: statistical sampling needs no cryptography.
/// Also the events stream's sample ([`crate::events`]).
pub(crate) fn next_draw() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_ids_and_refuses_the_rest() {
        assert_eq!(
            sanitize(b"0123456789abcdef0123456789abcdef"),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(sanitize(b"req-1_x.y:z"), "req-1_x.y:z");
        assert_eq!(sanitize(&[b'a'; 64]), "a".repeat(64));
        assert_eq!(sanitize(&[b'a'; 65]), "-");
        assert_eq!(sanitize(b""), "-");
        assert_eq!(sanitize(b"a b"), "-");
        assert_eq!(sanitize(b"a\nkey=forged"), "-");
        assert_eq!(sanitize(b"a\x7f"), "-");
        assert_eq!(sanitize("é".as_bytes()), "-");
        assert_eq!(sanitize(b"\xff"), "-");
    }

    #[test]
    fn request_id_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_id(&headers), "-");
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc123"));
        assert_eq!(request_id(&headers), "abc123");
        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_bytes(b"a\tb").expect("a tab is a valid header byte"),
        );
        assert_eq!(request_id(&headers), "-");
    }

    #[test]
    fn kinds() {
        let never = || panic!("a sample of 1 draws nothing");
        let all = DecisionLog::new(Decisions::All, 1.0);
        assert!(all.enabled());
        assert!(all.wants(Verdict::Allow, never));
        assert!(all.wants(Verdict::Block, never));
        let non_allow = DecisionLog::new(Decisions::NonAllow, 1.0);
        assert!(!non_allow.wants(Verdict::Allow, never));
        assert!(non_allow.wants(Verdict::Block, never));
        assert!(non_allow.wants(Verdict::Challenge, never));
        let off = DecisionLog::default();
        assert!(!off.enabled());
        assert!(!off.wants(Verdict::Block, never));
    }

    #[test]
    fn sample_is_a_fraction_of_draws() {
        let tenth = DecisionLog::new(Decisions::All, 0.1);
        assert!(tenth.wants(Verdict::Allow, || 0));
        assert!(tenth.wants(Verdict::Allow, || u64::MAX / 10 - 1_000_000));
        assert!(!tenth.wants(Verdict::Allow, || u64::MAX / 10 + 1_000_000));
        assert!(!tenth.wants(Verdict::Allow, || u64::MAX));
        // The generator itself: about a tenth of 100 000 draws.
        let logged = (0..100_000)
            .filter(|_| tenth.wants(Verdict::Allow, next_draw))
            .count();
        assert!((9_000..11_000).contains(&logged), "{logged}");
    }
}
