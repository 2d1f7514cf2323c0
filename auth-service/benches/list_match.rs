//! Criterion micro-benchmark of a list check on the request path: one longest-prefix lookup in
//! a list's local copy holding 1,000,000 random IPv4 and IPv6 networks (issue #12's target: under
//! 150 ns), next to the same lookup in a 5,000-network list (a real feed's size) and a policy
//! naming no list (the cost every request pays when lists are not used). Run with
//! `cargo bench -p ipcheck-auth --bench list_match`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use ipcheck_auth::config::lists::{ListMeaning, ListSpec};
use ipcheck_auth::lists::table::Table;
use ipcheck_auth::lists::{ListStore, Source};
use ipcheck_core::{Categories, Category, Policy};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A small deterministic generator (xorshift), so every run measures the same tables.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` random networks, 3 in 4 IPv4 (/16../32), the rest IPv6 (/32../128).
fn table(n: usize, rng: &mut Rng) -> Table {
    let mut t = Table::default();
    for _ in 0..n {
        let r = rng.next();
        let net = if r % 4 != 0 {
            let len = 16 + (r >> 8) as u8 % 17;
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from((r >> 32) as u32), len)
                    .unwrap()
                    .trunc(),
            )
        } else {
            let len = 32 + (r >> 8) as u8 % 97;
            let addr = Ipv6Addr::from(((r as u128) << 64) | rng.next() as u128);
            IpNet::V6(Ipv6Net::new(addr, len).unwrap().trunc())
        };
        t.insert(net, None);
    }
    t
}

/// Random client addresses, 3 in 4 IPv4.
fn clients(n: usize, rng: &mut Rng) -> Vec<IpAddr> {
    (0..n)
        .map(|_| {
            let r = rng.next();
            if r % 4 != 0 {
                IpAddr::V4(Ipv4Addr::from((r >> 32) as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(((r as u128) << 64) | rng.next() as u128))
            }
        })
        .collect()
}

fn store(t: Table) -> ListStore {
    let store = ListStore::new(&[ListSpec {
        name: "tor".to_owned(),
        meaning: ListMeaning::Category(Category::Tor),
        file: None,
        refresh: std::time::Duration::from_secs(2),
    }]);
    store.slots()[0].install(t, Source::Redis);
    store
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let big = table(1_000_000, &mut rng);
    let feed = table(5_000, &mut rng);
    let ips = clients(4096, &mut rng);
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) & 4095;
        ips[i]
    };
    c.bench_function("table_match_1m", |b| {
        b.iter(|| black_box(big.matches(black_box(next()), 0)))
    });
    c.bench_function("table_match_5k", |b| {
        b.iter(|| black_box(feed.matches(black_box(next()), 0)))
    });
    let strict = Policy {
        block: Categories::EMPTY.with(Category::Tor),
        lists: vec!["tor".to_owned()],
        ..Policy::default()
    };
    let unlisted = Policy {
        lists: Vec::new(),
        ..strict.clone()
    };
    let s = store(big);
    c.bench_function("policy_judge_1m", |b| {
        b.iter(|| black_box(s.judge(black_box(&strict), black_box(next()))))
    });
    c.bench_function("policy_without_lists", |b| {
        b.iter(|| black_box(s.judge(black_box(&unlisted), black_box(next()))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
