//! The random networks of the network-list benchmarks (`bench/netlists.sh`, the module's
//! `netlist_match` criterion bench): deterministic, so every run and every tool sees the same
//! list.
//!
//! Half IPv4 with prefix lengths /16../32, half IPv6 under 2000::/3 (global unicast) with
//! /32../64, uniformly; host bits zeroed; every network distinct. Feeds are mostly IPv4 /24s and
//! /32s; uniform random networks are the harder case for memory (little shared structure).

use std::collections::HashSet;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// xorshift64: small, fast and reproducible; quality is not the point.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The seed every benchmark uses.
pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// One random network (not necessarily new).
pub fn network(rng: &mut Rng) -> IpNet {
    let r = rng.next_u64();
    if r & 1 == 0 {
        let len = 16 + (r >> 40) as u8 % 17;
        IpNet::V4(Ipv4Net::new_assert(((r >> 8) as u32).into(), len).trunc())
    } else {
        let len = 32 + (r >> 40) as u8 % 33;
        let a = (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> 3 | 1 << 125;
        IpNet::V6(Ipv6Net::new_assert(a.into(), len).trunc())
    }
}

/// `n` distinct random networks from [`SEED`].
pub fn networks(n: usize) -> Vec<IpNet> {
    let mut rng = Rng::new(SEED);
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let net = network(&mut rng);
        if seen.insert(net) {
            out.push(net);
        }
    }
    out
}

/// `n` random single addresses (as /32 and /128 networks), half of each family, for lookups.
pub fn addresses(n: usize, seed: u64) -> Vec<IpNet> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| match network(&mut rng) {
            IpNet::V4(v) => IpNet::V4(Ipv4Net::new_assert(v.addr(), 32)),
            IpNet::V6(v) => {
                let low = u128::from(rng.next_u64());
                IpNet::V6(Ipv6Net::new_assert(
                    (u128::from(v.addr()) | low).into(),
                    128,
                ))
            }
        })
        .collect()
}
