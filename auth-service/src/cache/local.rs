//! The in-process tier: bounded LRU shards, each entry with its own expiry.
//!
//! The hot path of the whole service is a hit here, so the cache is split into shards chosen by
//! a hash of the address, each behind its own short-held mutex: both cores serve hits without
//! queuing on one lock. Expiry is checked on read; an expired entry is dropped then, and LRU order
//! evicts the rest when a shard is full.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use ipcheck_core::NormalizedIp;
use ipnet::IpNet;
use lru::LruCache;

use super::Known;

/// Shards; a power of two well above the core count keeps collisions between cores rare.
const SHARDS: usize = 64;

struct Slot {
    known: Known,
    key_header: HeaderValue,
    expires: Instant,
}

/// The LRU tier.
pub struct LocalCache {
    shards: Box<[Mutex<LruCache<NormalizedIp, Slot>>]>,
    max_ttl: Duration,
}

/// A local hit: what is known and the prebuilt `X-IPCheck-Key` value.
pub struct Hit {
    /// The cached knowledge.
    pub known: Known,
    /// The normalized address as a header value, built once at insert.
    pub key_header: HeaderValue,
}

impl LocalCache {
    /// A cache of about `capacity` entries, none living longer than `max_ttl`; capacity 0 is a
    /// tier that holds nothing (`cache.capacity = 0`: every lookup goes on to Redis).
    pub fn new(capacity: usize, max_ttl: Duration) -> Self {
        if capacity == 0 {
            return LocalCache {
                shards: Box::new([]),
                max_ttl,
            };
        }
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(LruCache::new(per_shard)))
            .collect();
        LocalCache { shards, max_ttl }
    }

    fn shard(&self, key: &NormalizedIp) -> MutexGuard<'_, LruCache<NormalizedIp, Slot>> {
        let bits: u128 = match key.net() {
            IpNet::V4(n) => u128::from(u32::from(n.network())),
            IpNet::V6(n) => u128::from(n.network()),
        };
        // Fold and multiply (Fibonacci hashing): cheap, and spreads neighbouring addresses.
        let folded = (bits as u64) ^ ((bits >> 64) as u64);
        let index = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS;
        // A panic while holding a shard cannot leave an LRU half-updated in a way that matters
        // for a cache, so a poisoned lock is simply used.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry for `key`, if present and not expired.
    pub fn get(&self, key: &NormalizedIp, now: Instant) -> Option<Hit> {
        if self.shards.is_empty() {
            return None;
        }
        let mut shard = self.shard(key);
        match shard.get(key) {
            Some(slot) if slot.expires > now => Some(Hit {
                known: slot.known.clone(),
                key_header: slot.key_header.clone(),
            }),
            Some(_) => {
                shard.pop(key);
                None
            }
            None => None,
        }
    }

    /// Stores `known` for `ttl`, capped at the tier's maximum.
    pub fn insert(&self, key: NormalizedIp, known: Known, key_header: HeaderValue, ttl: Duration) {
        if self.shards.is_empty() {
            return;
        }
        let expires = Instant::now() + ttl.min(self.max_ttl);
        self.shard(&key).put(
            key,
            Slot {
                known,
                key_header,
                expires,
            },
        );
    }

    /// Entries currently held (expired ones included until read or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{normalize, Aggregation, Categories};

    fn ip(s: &str) -> NormalizedIp {
        normalize(s, Aggregation::DEFAULT).unwrap()
    }

    #[test]
    fn expiry_is_capped_and_checked() {
        let cache = LocalCache::new(100, Duration::from_secs(60));
        let key = ip("192.0.2.1");
        cache.insert(
            key,
            Known::Facts(Categories::EMPTY),
            HeaderValue::from_static("192.0.2.1"),
            Duration::from_secs(3600),
        );
        let now = Instant::now();
        assert!(cache.get(&key, now).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(59)).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(61)).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped when read");
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let cache = LocalCache::new(0, Duration::from_secs(60));
        let key = ip("192.0.2.1");
        cache.insert(
            key,
            Known::Nothing,
            HeaderValue::from_static("192.0.2.1"),
            Duration::from_secs(60),
        );
        assert!(cache.get(&key, Instant::now()).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded() {
        let cache = LocalCache::new(128, Duration::from_secs(60));
        for i in 0..10_000u32 {
            let key = ip(&std::net::Ipv4Addr::from(i).to_string());
            cache.insert(
                key,
                Known::Nothing,
                HeaderValue::from_static("x"),
                Duration::from_secs(60),
            );
        }
        assert!(cache.len() <= 128, "{}", cache.len());
    }
}
