//! Keeping the local tier coherent with Redis: what an invalidation message means, and the
//! state of the link that receives them ([`super::invalidation_link`] runs it).
//!
//! Redis's client-side caching in broadcast mode (`CLIENT TRACKING on BCAST PREFIX
//! <key_prefix>`) sends the name of every key under the prefix that changes — an operator's
//! `IPCHECK SET ... SOURCE manual`, an `IPCHECK DEL`, another instance's write, an expiry —
//! and a null message when the whole database is flushed. Each name maps back to the address
//! the local tier keys on, whose local copy is then dropped; the next request re-reads Redis.
//!
//! Our own writes come back too (the write goes out on the pooled connection, so `NOLOOP` on
//! the tracking connection cannot suppress them). That is accepted rather than filtered: the
//! local copy just written is dropped and the next request for that address costs one
//! `IPCHECK GET`, once per write (a provider answer or a refresh, at most once per `redis.ttl`
//! scale). Filtering "our own" keys by time would also swallow an operator's pin landing in that
//! window, which is exactly the change that must not be missed.
//!
//! Without the link (not connected, connection lost) nothing tells the tier about changes, so
//! coherence falls back to `cache.local_ttl`; on every (re)connect the whole tier is cleared,
//! since anything may have changed while no message could arrive.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use ipcheck_core::{normalize, Aggregation, LogLimiter, NormalizedIp};

use super::local::LocalCache;
use super::redis_health::LOG_INTERVAL;

/// What one key named in an invalidation message means for the local tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// An entry's key: drop that address's local copy.
    Remove(NormalizedIp),
    /// A key of the service's own bookkeeping under the prefix (refresh locks, the shared
    /// provider budget's counters): no cached answer depends on it.
    Ignore,
    /// A key that cannot be mapped back to an address: drop everything to be safe.
    ClearAll,
}

/// Maps a key from an invalidation message back to the address it caches.
///
/// Entries are `<prefix><canonical>` on one server and `<prefix>{<canonical>}` in a cluster
/// (see the module's keys.rs); the canonical text parses back to the same address only when it
/// is exactly the canonical form under this instance's aggregation.
pub fn classify(key: &[u8], prefix: &str, aggregation: Aggregation) -> Invalidation {
    let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
        return Invalidation::ClearAll;
    };
    // crate::refresh::lock_key and crate::budget_shared's keys.
    if rest.starts_with(b"refresh:{") || rest.starts_with(b"{budget}:") {
        return Invalidation::Ignore;
    }
    let text = match rest {
        [b'{', inner @ .., b'}'] => inner,
        plain => plain,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return Invalidation::ClearAll;
    };
    match normalize(text, aggregation) {
        Ok(ip) if ip.canonical_text().as_str() == text => Invalidation::Remove(ip),
        _ => Invalidation::ClearAll,
    }
}

/// The link's state, for `/readyz` and `ipcheck_local_invalidation_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet since start.
    Connecting = 0,
    /// Subscribed: changes in Redis reach the local tier within moments.
    Up = 1,
    /// Lost or refused: local answers may lag Redis by up to `cache.local_ttl`.
    Down = 2,
}

/// Counters, state and log gate of the invalidation link.
pub struct Coherence {
    prefix: String,
    aggregation: Aggregation,
    state: AtomicU8,
    /// Addresses dropped on a message.
    removed: AtomicU64,
    /// Whole-tier clears (flush message, unknown key, reconnect).
    cleared: AtomicU64,
    /// Why the link is down, for `/readyz`.
    last_error: Mutex<String>,
    down_log: Mutex<LogLimiter>,
}

impl Coherence {
    /// A link for keys under `prefix`, addresses aggregated as configured.
    pub fn new(prefix: String, aggregation: Aggregation) -> Self {
        Coherence {
            prefix,
            aggregation,
            state: AtomicU8::new(LinkState::Connecting as u8),
            removed: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            down_log: Mutex::new(LogLimiter::new(LOG_INTERVAL)),
        }
    }

    /// The key prefix tracked.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The link's state.
    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Relaxed) {
            1 => LinkState::Up,
            2 => LinkState::Down,
            _ => LinkState::Connecting,
        }
    }

    /// Applies one message: `None` is the null message (flush, or tracking lost), `Some` the
    /// keys it names.
    pub fn apply(&self, local: &LocalCache, keys: Option<&[Vec<u8>]>) {
        let Some(keys) = keys else {
            self.clear(local);
            return;
        };
        for key in keys {
            match classify(key, &self.prefix, self.aggregation) {
                Invalidation::Remove(ip) => {
                    local.remove(&ip);
                    self.removed.fetch_add(1, Ordering::Relaxed);
                }
                Invalidation::Ignore => {}
                Invalidation::ClearAll => {
                    tracing::debug!(
                        key = %String::from_utf8_lossy(key),
                        "invalidation for a key that names no address: clearing the local tier"
                    );
                    self.clear(local);
                }
            }
        }
    }

    fn clear(&self, local: &LocalCache) {
        local.clear();
        self.cleared.fetch_add(1, Ordering::Relaxed);
    }

    /// The link is subscribed (again): the local tier is cleared, since changes made while it
    /// was down were never announced.
    pub fn connected(&self, local: &LocalCache, nodes: &str) {
        self.clear(local);
        let was = self.state.swap(LinkState::Up as u8, Ordering::Relaxed);
        if was == LinkState::Down as u8 {
            tracing::info!(redis = nodes, "invalidation link back: the local tier was cleared and follows changes in Redis again");
        } else {
            tracing::debug!(redis = nodes, "invalidation link up");
        }
    }

    /// The link failed or was lost; logged once per state change, at most one line per
    /// [`LOG_INTERVAL`] while it keeps failing.
    pub fn failed(&self, nodes: &str, error: &str) {
        let was = self.state.swap(LinkState::Down as u8, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            last.clear();
            last.push_str(error);
        }
        let mut gate = self
            .down_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if was != LinkState::Down as u8 {
            if let Some(n) = gate.note(Instant::now()) {
                tracing::warn!(
                    redis = nodes,
                    failures = n,
                    "invalidation link down: {error}; local answers may lag changes in Redis by up to cache.local_ttl until it is back (it needs +client|id +client|tracking +subscribe and &__redis__:invalidate)"
                );
            }
        }
    }

    /// The `/readyz` line.
    pub fn line(&self) -> String {
        match self.state() {
            LinkState::Up => "invalidation: up (local copies follow changes in Redis)\n".to_owned(),
            LinkState::Connecting => "invalidation: connecting\n".to_owned(),
            LinkState::Down => {
                let why = self
                    .last_error
                    .lock()
                    .map(|e| e.clone())
                    .unwrap_or_default();
                format!("invalidation: down ({why}); local answers may lag Redis by up to cache.local_ttl\n")
            }
        }
    }

    /// `ipcheck_local_invalidation_up` and `ipcheck_local_invalidations_total{kind}`.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP ipcheck_local_invalidation_up Whether the Redis invalidation link (CLIENT TRACKING) is subscribed.\n");
        out.push_str("# TYPE ipcheck_local_invalidation_up gauge\n");
        let up = u8::from(self.state() == LinkState::Up);
        let _ = writeln!(out, "ipcheck_local_invalidation_up {up}");
        out.push_str("# HELP ipcheck_local_invalidations_total Local-tier invalidations: one address dropped, or the whole tier cleared.\n");
        out.push_str("# TYPE ipcheck_local_invalidations_total counter\n");
        let _ = writeln!(
            out,
            "ipcheck_local_invalidations_total{{kind=\"address\"}} {}",
            self.removed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "ipcheck_local_invalidations_total{{kind=\"all\"}} {}",
            self.cleared.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Known;
    use std::time::Duration;

    fn ip(s: &str) -> NormalizedIp {
        normalize(s, Aggregation::DEFAULT).unwrap()
    }

    #[test]
    fn keys_map_back_to_addresses() {
        let agg = Aggregation::DEFAULT;
        let c = |k: &str| classify(k.as_bytes(), "ipcheck:", agg);
        assert_eq!(
            c("ipcheck:192.0.2.1"),
            Invalidation::Remove(ip("192.0.2.1"))
        );
        assert_eq!(
            c("ipcheck:{192.0.2.1}"),
            Invalidation::Remove(ip("192.0.2.1"))
        );
        let v6 = ip("2001:db8:1:2::5");
        let key = format!("ipcheck:{v6}");
        assert_eq!(c(&key), Invalidation::Remove(v6));
        assert_eq!(c("ipcheck:refresh:{192.0.2.1}"), Invalidation::Ignore);
        assert_eq!(c("ipcheck:{budget}:rate:42"), Invalidation::Ignore);
        // Not canonical, not an address, another prefix: clear everything.
        assert_eq!(c("ipcheck:192.000.2.1"), Invalidation::ClearAll);
        assert_eq!(c("ipcheck:junk"), Invalidation::ClearAll);
        assert_eq!(c("other:192.0.2.1"), Invalidation::ClearAll);
    }

    #[test]
    fn messages_drop_copies_and_a_null_message_clears_all() {
        let local = LocalCache::new(100, Duration::from_secs(60));
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        let ttl = Duration::from_secs(60);
        local.insert(ip("192.0.2.1"), Known::Nothing, ttl);
        local.insert(ip("192.0.2.2"), Known::Nothing, ttl);
        co.apply(&local, Some(&[b"ipcheck:{192.0.2.1}".to_vec()]));
        let now = Instant::now();
        assert!(local.get(&ip("192.0.2.1"), now).is_none());
        assert!(local.get(&ip("192.0.2.2"), now).is_some());
        co.apply(&local, Some(&[b"ipcheck:refresh:{192.0.2.2}".to_vec()]));
        assert!(local.get(&ip("192.0.2.2"), now).is_some());
        co.apply(&local, None);
        assert!(local.is_empty());
        let mut text = String::new();
        co.render(&mut text);
        assert!(text.contains("ipcheck_local_invalidations_total{kind=\"address\"} 1"));
        assert!(text.contains("ipcheck_local_invalidations_total{kind=\"all\"} 1"));
        assert!(text.contains("ipcheck_local_invalidation_up 0"));
    }

    #[test]
    fn reconnecting_clears_and_reports_up() {
        let local = LocalCache::new(100, Duration::from_secs(60));
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        co.failed("h:1", "connection refused");
        assert!(co.line().contains("down (connection refused)"));
        local.insert(ip("192.0.2.1"), Known::Nothing, Duration::from_secs(60));
        co.connected(&local, "h:1");
        assert!(local.is_empty());
        assert_eq!(co.state(), LinkState::Up);
    }
}
