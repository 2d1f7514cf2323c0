//! The in-process tier: bounded shards, each entry with its own expiry.
//!
//! The hot path of the whole service is a hit here, and on a busy server both cores hit the same
//! hot addresses at once, so a hit is built to write no shared memory but its shard's lock:
//!
//! - The cache is split into shards chosen by the key's hash, each behind its own short-held
//!   mutex, so the cores rarely queue on one lock.
//! - Eviction is CLOCK (second chance) rather than strict LRU: a hit only sets the entry's
//!   `referenced` flag, and only when it is not set yet, instead of relinking list nodes on every
//!   read. A full shard evicts the first entry the clock hand finds unreferenced.
//! - Entries live inline in one vector per shard (no allocation per entry, no list pointers),
//!   and the hash table holds only 4-byte indices into it: about 60 bytes per entry in all, so a
//!   million entries fit in ~64 MiB. Manual pins, which carry arbitrary reason text, keep that
//!   text in a small box of their own; they are rare.
//! - Keys are hashed with the standard library's randomly keyed SipHash: client addresses are
//!   chosen by clients, who must not be able to aim them at one bucket.
//!
//! Expiry is checked on read; an expired entry is dropped then, and the clock reclaims the rest.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use ipcheck_core::{Attributes, Facts, NormalizedIp, ReasonSet, Verdict};

use super::{Known, Unpinned};

/// Shards; a power of two well above the core count keeps collisions between cores rare.
const SHARDS: usize = 64;

/// [`Known`] as stored: the common cases inline, a manual pin (reason text and attributes)
/// boxed, so pins, which are few, do not widen every entry.
enum Stored {
    Facts(Facts),
    Stale(Facts),
    Pinned(Box<(Verdict, Arc<str>, ReasonSet, Attributes)>),
    ProviderError,
    Nothing,
    WithoutRedis(Unpinned),
}

impl Stored {
    fn new(known: Known) -> Stored {
        match known {
            Known::Facts(facts) => Stored::Facts(facts),
            Known::Stale(facts) => Stored::Stale(facts),
            Known::Pinned {
                verdict,
                text,
                reasons,
                attributes,
            } => Stored::Pinned(Box::new((verdict, text, reasons, attributes))),
            Known::ProviderError => Stored::ProviderError,
            Known::Nothing => Stored::Nothing,
            Known::WithoutRedis(u) => Stored::WithoutRedis(u),
        }
    }

    fn known(&self) -> Known {
        match self {
            Stored::Facts(facts) => Known::Facts(*facts),
            Stored::Stale(facts) => Known::Stale(*facts),
            Stored::Pinned(pin) => Known::Pinned {
                verdict: pin.0,
                text: Arc::clone(&pin.1),
                reasons: pin.2,
                attributes: pin.3,
            },
            Stored::ProviderError => Known::ProviderError,
            Stored::Nothing => Known::Nothing,
            Stored::WithoutRedis(u) => Known::WithoutRedis(*u),
        }
    }
}

struct Entry {
    key: NormalizedIp,
    stored: Stored,
    expires: Instant,
    /// Set by a hit, cleared by the clock hand passing: the second chance.
    referenced: bool,
}

/// One shard: entries inline, and a table of indices into them keyed by the entries' keys.
struct Shard {
    entries: Vec<Entry>,
    index: HashTable<u32>,
    capacity: usize,
    hand: usize,
    /// Bumped by every [`LocalCache::remove`] and [`LocalCache::clear`]: see [`Version`].
    changes: u64,
    /// Live entries the clock hand replaced, and expired entries dropped (read or replaced):
    /// plain counts under the shard's lock, so the hot path writes no shared counter.
    evicted: u64,
    expired: u64,
}

/// What a shard had been told to forget when a lookup began. A lookup that read Redis before an
/// invalidation arrived must not store its (now old) answer after it: it stores only if the
/// shard's version is unchanged ([`LocalCache::insert_unchanged`]). Per shard, not per key, so
/// an invalidation of a neighbour may cost a lookup its local copy, never correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(u64);

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            // Sized once, so inserts never rehash or move entries under the lock. The entries'
            // pages become resident only as they are written.
            entries: Vec::with_capacity(capacity),
            index: HashTable::with_capacity(capacity),
            capacity,
            hand: 0,
            changes: 0,
            evicted: 0,
            expired: 0,
        }
    }

    fn find(&self, hash: u64, key: &NormalizedIp) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&i| entries[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    /// Removes the entry at `at`, moving the last entry into its place.
    fn remove(&mut self, at: usize, hasher: &RandomState) {
        let key = self.entries[at].key;
        let entries = &self.entries;
        if let Ok(found) = self
            .index
            .find_entry(hasher.hash_one(key), |&i| entries[i as usize].key == key)
        {
            found.remove();
        }
        let last = self.entries.len() - 1;
        if at != last {
            let moved = self.entries[last].key;
            let entries = &self.entries;
            if let Some(slot) = self.index.find_mut(hasher.hash_one(moved), |&i| {
                entries[i as usize].key == moved
            }) {
                *slot = at as u32;
            }
        }
        self.entries.swap_remove(at);
        if self.hand >= self.entries.len() {
            self.hand = 0;
        }
    }

    /// The index of the entry to replace in a full shard: the first unreferenced one from the
    /// hand on, clearing flags as it passes (it stops within one lap plus one).
    fn victim(&mut self) -> usize {
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.entries.len();
            let entry = &mut self.entries[at];
            if entry.referenced {
                entry.referenced = false;
            } else {
                return at;
            }
        }
    }

    fn insert(&mut self, hash: u64, entry: Entry, hasher: &RandomState, now: Instant) {
        if let Some(at) = self.find(hash, &entry.key) {
            self.entries[at] = entry;
            return;
        }
        if self.entries.len() >= self.capacity {
            let at = self.victim();
            if self.entries[at].expires <= now {
                self.expired += 1;
            } else {
                self.evicted += 1;
            }
            self.remove(at, hasher);
        }
        let at = self.entries.len() as u32;
        self.entries.push(entry);
        let entries = &self.entries;
        self.index
            .insert_unique(hash, at, |&i| hasher.hash_one(entries[i as usize].key));
    }
}

/// The local tier.
pub struct LocalCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_ttl: Duration,
}

impl LocalCache {
    /// A cache of about `capacity` entries, none living longer than `max_ttl`; capacity 0 is a
    /// tier that holds nothing (`cache.capacity = 0`: every lookup goes on to Redis).
    pub fn new(capacity: usize, max_ttl: Duration) -> Self {
        let shards = if capacity == 0 {
            Box::new([]) as Box<[Mutex<Shard>]>
        } else {
            let per_shard = capacity.div_ceil(SHARDS).max(1);
            (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect()
        };
        LocalCache {
            shards,
            hasher: RandomState::new(),
            max_ttl,
        }
    }

    /// The key's hash and its shard. The table uses the hash's low bits (bucket) and top 7 bits
    /// (tag); the shard comes from bits in between, so the entries of one shard still spread
    /// over its whole table.
    fn shard(&self, key: &NormalizedIp) -> (u64, MutexGuard<'_, Shard>) {
        let hash = self.hasher.hash_one(key);
        let index = (hash >> 32) as usize % SHARDS;
        // A panic while holding a shard cannot leave it inconsistent in a way that matters for a
        // cache, so a poisoned lock is simply used.
        let shard = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (hash, shard)
    }

    /// What is known about `key`, if present and not expired.
    pub fn get(&self, key: &NormalizedIp, now: Instant) -> Option<Known> {
        if self.shards.is_empty() {
            return None;
        }
        let (hash, mut shard) = self.shard(key);
        let at = shard.find(hash, key)?;
        let entry = &mut shard.entries[at];
        if entry.expires <= now {
            shard.remove(at, &self.hasher);
            shard.expired += 1;
            return None;
        }
        // Write only when the flag changes: hot entries stay clean in both cores' caches.
        if !entry.referenced {
            entry.referenced = true;
        }
        Some(entry.stored.known())
    }

    /// Stores `known` for `ttl` from `now`, capped at the tier's maximum.
    pub fn insert(&self, key: NormalizedIp, known: Known, ttl: Duration, now: Instant) {
        self.store(key, known, ttl, now, None);
    }

    /// Stores unless `since` is given and the shard's version moved past it.
    fn store(
        &self,
        key: NormalizedIp,
        known: Known,
        ttl: Duration,
        now: Instant,
        since: Option<Version>,
    ) {
        if self.shards.is_empty() {
            return;
        }
        let entry = Entry {
            key,
            stored: Stored::new(known),
            expires: now + ttl.min(self.max_ttl),
            referenced: false,
        };
        let (hash, mut shard) = self.shard(&key);
        if since.is_none_or(|v| v.0 == shard.changes) {
            shard.insert(hash, entry, &self.hasher, now);
        }
    }

    /// Capacity, entries and eviction counts, for `/metrics` ([`super::local_stats`]).
    pub fn stats(&self) -> super::local_stats::LocalStats {
        let mut stats = super::local_stats::LocalStats::default();
        for shard in self.shards.iter() {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            stats.capacity += shard.capacity as u64;
            stats.evicted += shard.evicted;
            stats.expired += shard.expired;
        }
        stats
    }

    /// Drops `key`'s entry, if held (Redis said it changed: see [`super::invalidation`]).
    pub fn remove(&self, key: &NormalizedIp) {
        if self.shards.is_empty() {
            return;
        }
        let (hash, mut shard) = self.shard(key);
        shard.changes += 1;
        if let Some(at) = shard.find(hash, key) {
            shard.remove(at, &self.hasher);
        }
    }

    /// The version of `key`'s shard, taken before a lookup asks Redis.
    pub fn version(&self, key: &NormalizedIp) -> Version {
        if self.shards.is_empty() {
            return Version(0);
        }
        Version(self.shard(key).1.changes)
    }

    /// Stores `known` as [`LocalCache::insert`] does, unless the shard was told to forget
    /// something since `since`: the answer may be older than what Redis holds now.
    pub fn insert_unchanged(
        &self,
        key: NormalizedIp,
        known: Known,
        ttl: Duration,
        now: Instant,
        since: Version,
    ) {
        self.store(key, known, ttl, now, Some(since));
    }

    /// Drops every entry (a flush in Redis, or changes that may have gone unannounced).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.entries.clear();
            shard.index.clear();
            shard.hand = 0;
            shard.changes += 1;
        }
    }

    /// Entries currently held (expired ones included until read or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.entries.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{normalize, Aggregation, Category};

    fn ip(s: &str) -> NormalizedIp {
        normalize(s, Aggregation::DEFAULT).unwrap()
    }

    fn v4(i: u32) -> NormalizedIp {
        ip(&std::net::Ipv4Addr::from(i).to_string())
    }

    #[test]
    fn expiry_is_capped_and_checked() {
        let cache = LocalCache::new(100, Duration::from_secs(60));
        let key = ip("192.0.2.1");
        let now = Instant::now();
        cache.insert(
            key,
            Known::Facts(Facts::EMPTY),
            Duration::from_secs(3600),
            now,
        );
        assert!(cache.get(&key, now).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(59)).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(61)).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped when read");
    }

    #[test]
    fn capacity_zero_holds_nothing() {
        let cache = LocalCache::new(0, Duration::from_secs(60));
        let key = ip("192.0.2.1");
        let now = Instant::now();
        cache.insert(key, Known::Nothing, Duration::from_secs(60), now);
        assert!(cache.get(&key, now).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded() {
        let cache = LocalCache::new(128, Duration::from_secs(60));
        for i in 0..10_000u32 {
            cache.insert(
                v4(i),
                Known::Nothing,
                Duration::from_secs(60),
                Instant::now(),
            );
        }
        assert!(cache.len() <= 128, "{}", cache.len());
    }

    #[test]
    fn every_stored_form_reads_back() {
        let cache = LocalCache::new(100, Duration::from_secs(60));
        let ttl = Duration::from_secs(60);
        let facts = Facts::from(ipcheck_core::Categories::EMPTY.with(Category::Vpn));
        let now = Instant::now();
        cache.insert(v4(1), Known::Facts(facts), ttl, now);
        cache.insert(
            v4(2),
            Known::Pinned {
                verdict: Verdict::Block,
                text: Arc::from("vpn,my-list"),
                reasons: ReasonSet::from_categories(facts.categories),
                attributes: Attributes {
                    country: ipcheck_core::Country::parse("US").ok(),
                    asn: ipcheck_core::Asn::new(13335),
                    score: ipcheck_core::Score::new(87),
                },
            },
            ttl,
            now,
        );
        cache.insert(v4(3), Known::ProviderError, ttl, now);
        cache.insert(v4(4), Known::Nothing, ttl, now);
        cache.insert(v4(5), Known::WithoutRedis(Unpinned::Facts(facts)), ttl, now);
        assert!(matches!(cache.get(&v4(1), now), Some(Known::Facts(f)) if f == facts));
        match cache.get(&v4(2), now) {
            Some(Known::Pinned {
                verdict,
                text,
                attributes,
                ..
            }) => {
                assert_eq!(verdict, Verdict::Block);
                assert_eq!(&*text, "vpn,my-list");
                // The box keeps the pin's attributes.
                assert_eq!(
                    attributes.country.map(|c| c.to_string()).as_deref(),
                    Some("US")
                );
                assert_eq!(attributes.asn.map(|a| a.get()), Some(13335));
                assert_eq!(attributes.score.map(|s| s.get()), Some(87));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(cache.get(&v4(3), now), Some(Known::ProviderError)));
        assert!(matches!(cache.get(&v4(4), now), Some(Known::Nothing)));
        assert!(matches!(
            cache.get(&v4(5), now),
            Some(Known::WithoutRedis(Unpinned::Facts(f))) if f == facts
        ));
        // Replacing keeps one entry per key.
        cache.insert(v4(1), Known::Nothing, ttl, now);
        assert!(matches!(cache.get(&v4(1), now), Some(Known::Nothing)));
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn clock_keeps_referenced_entries_and_every_index_stays_right() {
        // One shard's worth of pressure: insert far more than fits, reading a hot set in
        // between, then check every entry still held is found under its own key.
        let cache = LocalCache::new(SHARDS * 8, Duration::from_secs(60));
        let ttl = Duration::from_secs(60);
        let hot: Vec<NormalizedIp> = (0..64).map(v4).collect();
        let now = Instant::now();
        for key in &hot {
            cache.insert(*key, Known::Facts(Facts::EMPTY), ttl, now);
        }
        for round in 0..50u32 {
            for key in &hot {
                cache.get(key, now);
            }
            for i in 0..40 {
                cache.insert(v4(10_000 + round * 40 + i), Known::Nothing, ttl, now);
            }
        }
        let kept = hot.iter().filter(|k| cache.get(k, now).is_some()).count();
        assert!(kept >= 48, "only {kept} of 64 hot entries survived");
        for shard in cache.shards.iter() {
            let shard = shard.lock().unwrap();
            assert_eq!(shard.index.len(), shard.entries.len());
            for (at, entry) in shard.entries.iter().enumerate() {
                assert_eq!(
                    shard.find(cache.hasher.hash_one(entry.key), &entry.key),
                    Some(at)
                );
            }
        }
    }
}
