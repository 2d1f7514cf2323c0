//! Benchmark 2, service side: resident memory per entry of the local tier.
//!
//! `local-memory 1000000` fills `ipcheck-auth`'s own `LocalCache` (capacity = entries) the way the
//! service does after a provider answer (a distinct IPv4 key each, with its facts) and prints the
//! resident-set growth (`/proc/self/statm`) divided by the entries held, with the same allocator
//! the service uses (the system one).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipcheck_auth::cache::local::LocalCache;
use ipcheck_auth::cache::Known;
use ipcheck_core::{normalize, Aggregation, Categories, Category};

/// Resident bytes of this process.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm resident field");
    // Linux on x86-64 and aarch64 as run here: 4 KiB pages.
    pages * 4096
}

fn main() {
    let entries: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_bytes();
    let cache = LocalCache::new(entries as usize, Duration::from_secs(3600));
    let empty = rss_bytes();
    for i in 0..entries {
        // 10.0.0.0 upwards: distinct /32 keys, as many clients would be.
        let text = Ipv4Addr::from(0x0a00_0000 + i).to_string();
        let key = normalize(&text, Aggregation::DEFAULT).expect("valid address");
        // Most clients are clean; every 16th is flagged, as in a real mix.
        let facts = if i % 16 == 0 {
            Categories::EMPTY.with(Category::Vpn)
        } else {
            Categories::EMPTY
        };
        cache.insert(
            key,
            Known::Facts(facts.into()),
            Duration::from_secs(3600),
            Instant::now(),
        );
    }
    let after = rss_bytes();
    // Shards fill unevenly, so a few inserts evict: divide by what is actually held.
    let held = cache.len();
    let per_entry = (after - before) as f64 / held as f64;
    println!(
        "inserted={entries} held={held} rss_before={before} rss_empty_cache={empty} rss_after={after} bytes_per_entry={per_entry:.1}"
    );
}
