//! Criterion micro-benchmarks of the pure hot path: normalization of the three address forms a
//! request can carry (IPv4 also as the bytes the Redis module holds), writing the canonical text
//! a cache key is built from, and policy evaluation. Run with `cargo bench -p ipcheck-core` (or
//! `bench/micro.sh`); target: normalization under 100 ns per address.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use ipcheck_core::{
    normalize, normalize_bytes, Aggregation, Categories, Category, FailureMode, Policy,
    RedisFailureMode,
};

fn normalization(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    for (name, text) in [
        ("v4", "192.0.2.123"),
        ("mapped", "::ffff:192.0.2.123"),
        ("v6", "2001:db8:85a3:8d3:1319:8a2e:370:7348"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| normalize(black_box(text), Aggregation::DEFAULT))
        });
    }
    // What the Redis module calls: the argument's bytes, with no UTF-8 check before.
    group.bench_function("v4_bytes", |b| {
        b.iter(|| normalize_bytes(black_box(b"192.0.2.123"), Aggregation::DEFAULT))
    });
    group.finish();
}

fn canonical_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("canonical_text");
    // The v4 and v6 examples above, normalized once outside the loop: only the writing is timed.
    for (name, text) in [
        ("v4", "192.0.2.123"),
        ("v6", "2001:db8:85a3:8d3:1319:8a2e:370:7348"),
    ] {
        let ip = normalize(text, Aggregation::DEFAULT).expect("bench inputs are valid");
        group.bench_function(name, |b| b.iter(|| black_box(&ip).canonical_text()));
    }
    group.finish();
}

fn policy(c: &mut Criterion) {
    // The shipped example's strict policy, with lists of realistic length.
    let strict = Policy {
        block: Categories::EMPTY
            .with(Category::Tor)
            .with(Category::Vpn)
            .with(Category::Proxy)
            .with(Category::Relay),
        challenge: Categories::EMPTY.with(Category::Hosting),
        allow_crawlers: true,
        allow: vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
        ],
        deny: vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8:dead::/48".parse().unwrap(),
        ],
        on_error: FailureMode::Closed,
        on_redis_error: RedisFailureMode::Closed,
        lists: Vec::new(),
        on_miss: ipcheck_core::OnMiss::Wait,
    };
    let addr: IpAddr = "198.51.100.7".parse().unwrap();
    let mut group = c.benchmark_group("policy");
    group.bench_function("apply_clean", |b| {
        b.iter(|| black_box(&strict).apply(black_box(Categories::EMPTY)))
    });
    group.bench_function("apply_hosting", |b| {
        let facts = Categories::EMPTY.with(Category::Hosting);
        b.iter(|| black_box(&strict).apply(black_box(facts)))
    });
    group.bench_function("lists_then_apply", |b| {
        b.iter(|| black_box(&strict).decide(black_box(addr), black_box(Categories::EMPTY)))
    });
    group.finish();
}

criterion_group!(benches, normalization, canonical_text, policy);
criterion_main!(benches);
