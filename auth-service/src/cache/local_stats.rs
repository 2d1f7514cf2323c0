//! The local tier's capacity and evictions, for `/metrics`: whether `cache.capacity` is big
//! enough. Evictions climbing while entries sit at capacity means addresses are pushed out before
//! their TTL and come back as Redis or provider lookups.

use std::fmt::Write;

use crate::exposition::{header, Kind};

/// Counts summed over the shards by [`super::local::LocalCache::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LocalStats {
    /// The most entries the tier holds: `cache.capacity` rounded up to whole shards (0: off).
    pub capacity: u64,
    /// Live entries the clock hand replaced to make room.
    pub evicted: u64,
    /// Expired entries dropped, when read or when replaced.
    pub expired: u64,
}

impl LocalStats {
    /// Appends `ipcheck_local_capacity`, `ipcheck_local_evictions_total` and
    /// `ipcheck_local_expired_total`.
    pub fn render(&self, out: &mut String) {
        header(out, "ipcheck_local_capacity", "Entries the in-process cache holds at most (cache.capacity rounded up to whole shards).", Kind::Gauge);
        let _ = writeln!(out, "ipcheck_local_capacity {}", self.capacity);
        header(
            out,
            "ipcheck_local_evictions_total",
            "Live entries pushed out of the in-process cache to make room.",
            Kind::Counter,
        );
        let _ = writeln!(out, "ipcheck_local_evictions_total {}", self.evicted);
        header(
            out,
            "ipcheck_local_expired_total",
            "Expired entries dropped from the in-process cache.",
            Kind::Counter,
        );
        let _ = writeln!(out, "ipcheck_local_expired_total {}", self.expired);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ipcheck_core::{normalize, Aggregation, NormalizedIp};

    use super::super::local::LocalCache;
    use super::super::Known;
    use super::*;

    fn v4(i: u32) -> NormalizedIp {
        normalize(
            &std::net::Ipv4Addr::from(i).to_string(),
            Aggregation::DEFAULT,
        )
        .unwrap()
    }

    #[test]
    fn every_new_key_past_capacity_evicts_one_live_entry() {
        // Capacity 1 is one entry in each of the 64 shards.
        let cache = LocalCache::new(1, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..200 {
            cache.insert(v4(i), Known::Nothing, Duration::from_secs(60), now);
        }
        let stats = cache.stats();
        assert_eq!(stats.capacity, 64);
        assert_eq!(stats.evicted + cache.len() as u64, 200);
        assert_eq!(stats.expired, 0);
    }

    #[test]
    fn expired_entries_count_as_expired_not_evicted() {
        let cache = LocalCache::new(1, Duration::from_secs(60));
        let now = Instant::now();
        let later = now + Duration::from_secs(2);
        cache.insert(v4(1), Known::Nothing, Duration::from_secs(1), now);
        assert!(cache.get(&v4(1), later).is_none());
        assert_eq!(cache.stats().expired, 1);
        // Fill every shard (2,000 keys leave none of the 64 empty but with odds of ~1e-12) with
        // short-lived entries, then insert as many new keys after they expired: in each shard the
        // first replaces an expired entry, every later one a live one.
        for i in 0..2000 {
            cache.insert(v4(i), Known::Nothing, Duration::from_secs(1), now);
        }
        let before = cache.stats();
        for i in 10_000..12_000 {
            cache.insert(v4(i), Known::Nothing, Duration::from_secs(60), later);
        }
        let after = cache.stats();
        assert_eq!(after.expired - before.expired, 64, "{before:?} {after:?}");
        assert_eq!(
            after.evicted - before.evicted,
            2000 - 64,
            "{before:?} {after:?}"
        );
    }

    #[test]
    fn renders_every_series() {
        let mut out = String::new();
        LocalStats {
            capacity: 128,
            evicted: 3,
            expired: 2,
        }
        .render(&mut out);
        assert!(out.contains("ipcheck_local_capacity 128\n"));
        assert!(out.contains("ipcheck_local_evictions_total 3\n"));
        assert!(out.contains("ipcheck_local_expired_total 2\n"));
    }
}
