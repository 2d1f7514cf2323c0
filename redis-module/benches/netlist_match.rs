//! Longest-prefix match at 1,000,000 random networks (bench/netlists.sh runs this):
//!
//! - `netlist_match/sorted_1m`: the module's list layout (`src/netlist/sorted.rs`, a compact
//!   sorted array per family with parent links), as a list is after a load.
//! - `netlist_match/prefix_trie_1m`: `prefix_trie::PrefixMap::get_lpm`, the trie the module used
//!   before and a service-side local copy would use.
//!
//! The module is a `cdylib`, which a bench cannot link, so the two files of the layout are
//! compiled in here from their source, the same code the module runs. Networks and addresses
//! come from bench/src/netgen.rs, as `netlist-load` loads them into Redis. Targets: < 150 ns.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

#[path = "../../bench/src/netgen.rs"]
mod netgen;

// At the crate root, as `sorted.rs` names its sibling `super::values`.
#[allow(dead_code, unused_imports)]
#[path = "../src/netlist/sorted.rs"]
mod sorted;
#[allow(dead_code, unused_imports)]
#[path = "../src/netlist/values.rs"]
mod values;

use sorted::{Sorted, V4, V6};

const NETWORKS: usize = 1_000_000;
const QUERIES: usize = 4096;

fn lookups(c: &mut Criterion) {
    let nets = netgen::networks(NETWORKS);
    let queries = netgen::addresses(QUERIES, 7);

    let (mut s4, mut s6) = (Sorted::<V4>::default(), Sorted::<V6>::default());
    let (mut t4, mut t6) = (
        PrefixMap::<Ipv4Net, u32>::new(),
        PrefixMap::<Ipv6Net, u32>::new(),
    );
    for net in &nets {
        match net {
            IpNet::V4(n) => {
                s4.insert(*n, 0);
                t4.insert(*n, 0);
            }
            IpNet::V6(n) => {
                s6.insert(*n, 0);
                t6.insert(*n, 0);
            }
        }
    }
    s4.merge();
    s6.merge();
    let hits = queries
        .iter()
        .filter(|q| match q {
            IpNet::V4(n) => t4.get_lpm(n).is_some(),
            IpNet::V6(n) => t6.get_lpm(n).is_some(),
        })
        .count();
    eprintln!("netlist_match: {hits} of {QUERIES} random addresses match a network");

    let mut group = c.benchmark_group("netlist_match");
    let mut i = 0;
    group.bench_function("sorted_1m", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            match &queries[i] {
                IpNet::V4(n) => black_box(s4.lookup(n, |_| true).is_some()),
                IpNet::V6(n) => black_box(s6.lookup(n, |_| true).is_some()),
            }
        })
    });
    group.bench_function("prefix_trie_1m", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            match &queries[i] {
                IpNet::V4(n) => black_box(t4.get_lpm(n).is_some()),
                IpNet::V6(n) => black_box(t6.get_lpm(n).is_some()),
            }
        })
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
