//! Keeping the local tier coherent with Redis: what an invalidation message means, and the
//! state of the link that receives them ([`super::invalidation_link`] runs it).
//!
//! Redis's client-side caching in broadcast mode (`CLIENT TRACKING on BCAST PREFIX
//! <key_prefix>`) sends the name of every key under the prefix that changes — an operator's
//! `IPCHECK SET ... SOURCE manual`, an `IPCHECK DEL`, another instance's write, an expiry —
//! and a null message when the whole database is flushed. Each name maps back to the address
//! the local tier keys on, whose local copy is then dropped; the next request re-reads Redis.
//!
//! An address this instance does not hold locally is looked at again after
//! [`RECHECK_DELAY`]: a lookup whose read was answered just before the change may store the old
//! answer just after the message was handled, and if a copy is held by then it is re-read like
//! any other. One it holds is re-read
//! (`IPCHECK GET`, off the request path) and its local copy kept only if Redis now says the
//! same; otherwise (a pin, an unpin, other facts, no answer) the copy is dropped and the next
//! request reads Redis. The re-read is for our own writes, which come back too: the service
//! stores a provider answer locally and then writes it to Redis on the pooled connection, so
//! `NOLOOP` on the tracking connection cannot suppress the message, and dropping the copy would
//! cost every fresh answer a second Redis read. Ignoring "our own" keys for a while instead would
//! also swallow an operator's pin landing in that window — the one change that must not be
//! missed. The price: one `IPCHECK GET` per change of an address the instance holds.
//!
//! Without the link (not connected, connection lost) nothing tells the tier about changes, so
//! coherence falls back to `cache.local_ttl`; on every (re)connect the whole tier is cleared,
//! since anything may have changed while no message could arrive.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipcheck_core::{normalize, Aggregation, LogLimiter, NormalizedIp};

use super::local::LocalCache;
use super::redis_health::LOG_INTERVAL;
use super::Known;
use crate::exposition::{header, Kind};

/// How long after a change to an address not held locally it is looked at again: longer than
/// a lookup takes from its Redis answer to storing it (one round trip within `redis.timeout`,
/// plus scheduling on a loaded host).
pub const RECHECK_DELAY: Duration = Duration::from_millis(250);

/// The addresses a message asks to re-read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rechecks {
    /// Held locally: re-read now.
    pub now: Vec<NormalizedIp>,
    /// Not held: re-read after [`RECHECK_DELAY`] if held by then.
    pub later: Vec<NormalizedIp>,
}

/// What one key named in an invalidation message means for the local tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// An entry's key: drop that address's local copy.
    Remove(NormalizedIp),
    /// A key of the service's own bookkeeping under the prefix (refresh locks, the shared
    /// provider budget's counters) or a network list: no cached answer depends on it.
    Ignore,
    /// A named network list's key (`<prefix>{lists}:<name>`): no cached answer depends on it,
    /// but the lists' local copies re-read it ([`Coherence::lists_generation`]).
    List,
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
    // crate::lookup::refresh::lock_key, crate::budget_shared's keys, the decision events
    // stream (crate::events::settings), which changes on every decision it records, and the
    // enrichment queue's stream and markers (crate::enrich::stream), written per cold address.
    if rest.starts_with(b"refresh:{")
        || rest.starts_with(b"{budget}:")
        || rest.starts_with(crate::events::settings::RESERVED.as_bytes())
        || crate::enrich::stream::KEY_STARTS
            .iter()
            .any(|s| rest.starts_with(s.as_bytes()))
    {
        return Invalidation::Ignore;
    }
    // The module's network lists (crate::lists::refresh::key): the local tier caches answers per
    // address, and a feed's thousands of NETADDs must not empty every instance's local tier.
    if rest.starts_with(b"{lists}:") {
        return Invalidation::List;
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

/// Whether a local copy says what a fresh Redis entry says. Only plain facts and pins can match:
/// anything else held locally (a provider error, stale facts, an answer from without Redis) is
/// worth re-reading anyway.
fn same(held: &Known, now: &Known) -> bool {
    match (held, now) {
        (Known::Facts(a), Known::Facts(b)) => a == b,
        (
            Known::Pinned {
                verdict: va,
                text: ha,
                attributes: aa,
                ..
            },
            Known::Pinned {
                verdict: vb,
                text: hb,
                attributes: ab,
                ..
            },
        ) => va == vb && ha == hb && aa == ab,
        _ => false,
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
    /// Bumped for every list key named, and on every clear (changes may have been missed).
    lists_changed: AtomicU64,
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
            lists_changed: AtomicU64::new(0),
        }
    }

    /// Changes as seen by the link for list keys: a list whose last load saw another number
    /// re-reads itself from Redis ([`crate::lists::refresh`]).
    pub fn lists_generation(&self) -> u64 {
        self.lists_changed.load(Ordering::Relaxed)
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
    /// keys it names. Returns the addresses to re-read ([`Self::settle`]).
    pub fn apply(&self, local: &LocalCache, keys: Option<&[Vec<u8>]>) -> Rechecks {
        let Some(keys) = keys else {
            self.clear(local);
            return Rechecks::default();
        };
        let mut recheck = Rechecks::default();
        let now = Instant::now();
        for key in keys {
            match classify(key, &self.prefix, self.aggregation) {
                Invalidation::Remove(ip) => {
                    let list = if local.get(&ip, now).is_some() {
                        &mut recheck.now
                    } else {
                        &mut recheck.later
                    };
                    if !list.contains(&ip) {
                        list.push(ip);
                    }
                }
                Invalidation::Ignore => {}
                Invalidation::List => {
                    self.lists_changed.fetch_add(1, Ordering::Relaxed);
                }
                Invalidation::ClearAll => {
                    tracing::debug!(
                        key = %String::from_utf8_lossy(key),
                        "invalidation for a key that names no address: clearing the local tier"
                    );
                    self.clear(local);
                    return Rechecks::default();
                }
            }
        }
        recheck
    }

    /// Keeps `ip`'s local copy if it says what Redis says `now` (the entry re-read after the
    /// change; `None` when there is none, it is stale, or it could not be read), else drops it.
    pub fn settle(&self, local: &LocalCache, ip: &NormalizedIp, now: Option<&Known>) {
        let held = local.get(ip, Instant::now());
        if let (Some(held), Some(now)) = (&held, now) {
            if same(held, now) {
                return;
            }
        }
        if held.is_some() {
            local.remove(ip);
            self.removed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn clear(&self, local: &LocalCache) {
        local.clear();
        self.cleared.fetch_add(1, Ordering::Relaxed);
        self.lists_changed.fetch_add(1, Ordering::Relaxed);
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

    /// Waits until the link's first attempt has an outcome (subscribed or failed), at most
    /// `limit`: the service serves only after it, so no answer is cached locally before the
    /// first subscription clears the tier.
    pub async fn first_attempt(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.state() == LinkState::Connecting && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
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
        header(
            out,
            "ipcheck_local_invalidation_up",
            "Whether the Redis invalidation link (CLIENT TRACKING) is subscribed.",
            Kind::Gauge,
        );
        let up = u8::from(self.state() == LinkState::Up);
        let _ = writeln!(out, "ipcheck_local_invalidation_up {up}");
        header(
            out,
            "ipcheck_local_invalidations_total",
            "Local-tier invalidations: one address dropped, or the whole tier cleared.",
            Kind::Counter,
        );
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
    use ipcheck_core::{Categories, Category, Facts, ReasonSet, Verdict};

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
        // Each decision event is a write: it must not empty every instance's local tier.
        assert_eq!(c("ipcheck:{events}"), Invalidation::Ignore);
        assert_eq!(c("ipcheck:{events}:login"), Invalidation::Ignore);
        // Nor each address queued for enrichment (the stream and the address's marker).
        assert_eq!(c("ipcheck:{enrich}:queue"), Invalidation::Ignore);
        assert_eq!(c("ipcheck:enrich:{192.0.2.1}"), Invalidation::Ignore);
        let queue = crate::enrich::stream::queue_key("ipcheck:");
        let marker = crate::enrich::stream::marker_key("ipcheck:", "2001:db8::/64");
        assert_eq!(c(&queue), Invalidation::Ignore);
        assert_eq!(c(&marker), Invalidation::Ignore);
        // A list's key leaves the local tier alone (a feed writes thousands of networks).
        assert_eq!(c("ipcheck:{lists}:tor"), Invalidation::List);
        assert_eq!(c("ipcheck:{lists}:tor.new"), Invalidation::List);
        // Not canonical, not an address, another prefix: clear everything.
        assert_eq!(c("ipcheck:192.000.2.1"), Invalidation::ClearAll);
        assert_eq!(c("ipcheck:junk"), Invalidation::ClearAll);
        assert_eq!(c("other:192.0.2.1"), Invalidation::ClearAll);
    }

    #[test]
    fn a_pin_held_locally_is_kept_only_with_the_same_attributes() {
        let local = LocalCache::new(100, Duration::from_secs(60));
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        let pin = |asn| Known::Pinned {
            verdict: Verdict::Block,
            text: std::sync::Arc::from("abuse"),
            reasons: ReasonSet::NONE,
            attributes: ipcheck_core::Attributes {
                asn: ipcheck_core::Asn::new(asn),
                ..ipcheck_core::Attributes::NONE
            },
        };
        let one = ip("192.0.2.1");
        local.insert(one, pin(13335), Duration::from_secs(60), Instant::now());
        co.settle(&local, &one, Some(&pin(13335)));
        assert!(local.get(&one, Instant::now()).is_some());
        // Re-pinned with another AS number: the old copy would send the old header.
        co.settle(&local, &one, Some(&pin(64500)));
        assert!(local.get(&one, Instant::now()).is_none());
    }

    #[test]
    fn held_copies_are_rechecked_and_kept_only_if_redis_agrees() {
        let local = LocalCache::new(100, Duration::from_secs(60));
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        let ttl = Duration::from_secs(60);
        let vpn = Facts::from(Categories::EMPTY.with(Category::Vpn));
        let (one, two) = (ip("192.0.2.1"), ip("192.0.2.2"));
        local.insert(one, Known::Facts(vpn), ttl, Instant::now());
        local.insert(two, Known::Facts(vpn), ttl, Instant::now());
        // Not held: nothing to re-read; bookkeeping keys: ignored.
        let keys = [
            b"ipcheck:{192.0.2.1}".to_vec(),
            b"ipcheck:192.0.2.9".to_vec(),
            b"ipcheck:refresh:{192.0.2.2}".to_vec(),
        ];
        let rechecks = co.apply(&local, Some(&keys));
        assert_eq!(rechecks.now, vec![one]);
        assert_eq!(rechecks.later, vec![ip("192.0.2.9")]);
        // Redis says the same (our own write came back): kept.
        co.settle(&local, &one, Some(&Known::Facts(vpn)));
        let now = Instant::now();
        assert!(local.get(&one, now).is_some());
        // A pin, or nothing readable: dropped.
        let pin = Known::Pinned {
            verdict: Verdict::Block,
            text: std::sync::Arc::from("tor"),
            reasons: ReasonSet::from_categories(vpn.categories),
            attributes: ipcheck_core::Attributes::NONE,
        };
        co.settle(&local, &one, Some(&pin));
        assert!(local.get(&one, now).is_none());
        co.settle(&local, &two, None);
        assert!(local.get(&two, now).is_none());
        // The null message clears everything.
        local.insert(one, Known::Nothing, ttl, Instant::now());
        assert_eq!(co.apply(&local, None), Rechecks::default());
        assert!(local.is_empty());
        let mut text = String::new();
        co.render(&mut text);
        assert!(text.contains("ipcheck_local_invalidations_total{kind=\"address\"} 2"));
        assert!(text.contains("ipcheck_local_invalidations_total{kind=\"all\"} 1"));
        assert!(text.contains("ipcheck_local_invalidation_up 0"));
    }

    #[test]
    fn a_key_naming_no_address_clears_everything() {
        let local = LocalCache::new(100, Duration::from_secs(60));
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        local.insert(
            ip("192.0.2.1"),
            Known::Nothing,
            Duration::from_secs(60),
            Instant::now(),
        );
        let junk = [b"ipcheck:junk".to_vec()];
        assert_eq!(co.apply(&local, Some(&junk)), Rechecks::default());
        assert!(local.is_empty());
    }

    #[tokio::test]
    async fn serving_waits_for_the_first_attempt_at_most_the_limit() {
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        // Still connecting: gives up after the limit.
        co.first_attempt(Duration::from_millis(20)).await;
        assert_eq!(co.state(), LinkState::Connecting);
        co.failed("h:1", "refused");
        // An outcome: returns at once (a limit it could not wait out otherwise).
        tokio::time::timeout(
            Duration::from_secs(5),
            co.first_attempt(Duration::from_secs(3600)),
        )
        .await
        .expect("returns once the first attempt failed");
    }

    #[test]
    fn reconnecting_clears_and_reports_up() {
        let local = LocalCache::new(100, Duration::from_secs(60));
        let co = Coherence::new("ipcheck:".to_owned(), Aggregation::DEFAULT);
        co.failed("h:1", "connection refused");
        assert!(co.line().contains("down (connection refused)"));
        local.insert(
            ip("192.0.2.1"),
            Known::Nothing,
            Duration::from_secs(60),
            Instant::now(),
        );
        co.connected(&local, "h:1");
        assert!(local.is_empty());
        assert_eq!(co.state(), LinkState::Up);
    }
}
