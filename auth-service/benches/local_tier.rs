//! Criterion micro-benchmark of the service's hot path: a hit in the local tier, alone and with
//! two threads hammering the same keys at once (the 2-core case: every hit takes its shard's
//! lock). Run with `cargo bench -p ipcheck-auth` (or `bench/micro.sh`); target: under 200 ns per
//! hit with both cores busy.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ipcheck_auth::cache::local::LocalCache;
use ipcheck_auth::cache::Known;
use ipcheck_core::{normalize, Aggregation, Categories, NormalizedIp};

/// The same 1,000 client addresses the nginx benchmarks cycle through.
fn filled() -> (LocalCache, Vec<NormalizedIp>) {
    let cache = LocalCache::new(100_000, Duration::from_secs(3600));
    let keys: Vec<NormalizedIp> = (0..1000u32)
        .map(|i| {
            let text = Ipv4Addr::from(0x0a00_0000 + i).to_string();
            normalize(&text, Aggregation::DEFAULT).unwrap()
        })
        .collect();
    for key in &keys {
        cache.insert(
            *key,
            Known::Facts(Categories::EMPTY.into()),
            Duration::from_secs(3600),
            Instant::now(),
        );
    }
    (cache, keys)
}

fn hits(cache: &LocalCache, keys: &[NormalizedIp], iters: u64, offset: usize) {
    let now = Instant::now();
    for i in 0..iters as usize {
        let key = &keys[(i + offset) % keys.len()];
        black_box(cache.get(black_box(key), now));
    }
}

fn local_hit(c: &mut Criterion) {
    let (cache, keys) = filled();
    let mut group = c.benchmark_group("local_hit");
    group.bench_function("one_thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            hits(&cache, &keys, iters, 0);
            start.elapsed()
        })
    });
    // Two threads over the same keys in the same order: each hit's shard is likely held or just
    // released by the other core. The time reported is wall time per hit per thread.
    group.bench_function("two_threads_same_keys", |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            std::thread::scope(|s| {
                let other = s.spawn(|| {
                    barrier.wait();
                    hits(&cache, &keys, iters, 1);
                });
                barrier.wait();
                let start = Instant::now();
                hits(&cache, &keys, iters, 0);
                let mine = start.elapsed();
                other.join().unwrap();
                mine
            })
        })
    });
    group.finish();
}

criterion_group!(benches, local_hit);
criterion_main!(benches);
