//! One address family's networks in a list: a compact sorted array holding the bulk, plus a small
//! prefix trie of recent additions (the delta) that is merged into the array once it grows.
//!
//! Why not one `prefix_trie::PrefixMap`: at 1M random networks its nodes cost ~38 B per IPv4 and
//! ~137 B per IPv6 network (measured, bench/README.md), before any value. The array costs 13 B
//! (IPv4) or 25 B (IPv6) per network: address, prefix length, value slot and the index of the
//! nearest enclosing network in the array (its parent).
//!
//! Longest match in the array: the entries are sorted by (address, prefix length), so every
//! network covering a query sorts at or before the last entry `e` that sorts at or before the
//! query, and covers `e` too (networks nest or are disjoint). So the longest covering network is
//! the first on the parent chain from `e` that covers the query: one binary search and a walk of
//! at most the nesting depth.
//!
//! Writes: a network already in the array is changed in place (a removal marks it dead); a new one
//! goes to the delta. When the delta passes 1/16 of the array (or a quarter of the array is dead)
//! both are merged into a new exact-size array, O(n): amortized, each write costs a few copies.

use ipnet::{Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use super::values::Slot;

/// Slot of a network removed from the array but not yet merged away.
const DEAD: Slot = Slot::MAX;
/// Parent of a network that no other network in the array encloses.
const NO_PARENT: u32 = u32::MAX;
/// The delta merges once it holds more than this many networks and 1/16 of the array (tests
/// merge far more often, so a few thousand writes go through many merges).
const MIN_DELTA: usize = if cfg!(test) { 64 } else { 4096 };

/// IPv4 or IPv6: how a network splits into an integer address and a prefix length.
pub trait Family {
    /// The network type.
    type Net: prefix_trie::Prefix + Copy + Eq;
    /// The address as an integer, so order and masking are plain arithmetic.
    type Addr: Copy + Ord;
    /// Network address and prefix length.
    fn parts(net: &Self::Net) -> (Self::Addr, u8);
    /// The network from parts that came from [`Family::parts`].
    fn join(addr: Self::Addr, len: u8) -> Self::Net;
    /// Whether `addr/len` contains `other`.
    fn covers(addr: Self::Addr, len: u8, other: Self::Addr) -> bool;
    /// The `bits` bits of `addr` that follow its first `skip` bits, for the bucket index.
    fn top(addr: Self::Addr, skip: u32, bits: u32) -> usize;
    /// How many leading bits `a` and `b` share.
    fn common(a: Self::Addr, b: Self::Addr) -> u32;
}

/// IPv4.
#[derive(Clone)]
pub struct V4;
/// IPv6.
#[derive(Clone)]
pub struct V6;

impl Family for V4 {
    type Net = Ipv4Net;
    type Addr = u32;
    fn parts(net: &Ipv4Net) -> (u32, u8) {
        (u32::from(net.network()), net.prefix_len())
    }
    fn join(addr: u32, len: u8) -> Ipv4Net {
        Ipv4Net::new_assert(addr.into(), len)
    }
    fn covers(addr: u32, len: u8, other: u32) -> bool {
        len == 0 || (addr ^ other) >> (32 - u32::from(len)) == 0
    }
    fn top(addr: u32, skip: u32, bits: u32) -> usize {
        match addr.checked_shl(skip) {
            Some(a) if bits > 0 => (a >> (32 - bits)) as usize,
            _ => 0,
        }
    }
    fn common(a: u32, b: u32) -> u32 {
        (a ^ b).leading_zeros()
    }
}

impl Family for V6 {
    type Net = Ipv6Net;
    type Addr = u128;
    fn parts(net: &Ipv6Net) -> (u128, u8) {
        (u128::from(net.network()), net.prefix_len())
    }
    fn join(addr: u128, len: u8) -> Ipv6Net {
        Ipv6Net::new_assert(addr.into(), len)
    }
    fn covers(addr: u128, len: u8, other: u128) -> bool {
        len == 0 || (addr ^ other) >> (128 - u32::from(len)) == 0
    }
    fn top(addr: u128, skip: u32, bits: u32) -> usize {
        match addr.checked_shl(skip) {
            Some(a) if bits > 0 => (a >> (128 - bits)) as usize,
            _ => 0,
        }
    }
    fn common(a: u128, b: u128) -> u32 {
        (a ^ b).leading_zeros()
    }
}

/// One family's networks, each with a value slot.
#[derive(Clone)]
pub struct Sorted<F: Family> {
    addrs: Vec<F::Addr>,
    lens: Vec<u8>,
    slots: Vec<Slot>,
    parents: Vec<u32>,
    /// Bucket index over the array: every address shares its first `skip` bits with the first
    /// and the last entry, and the entries whose next `bits` bits are `b` are
    /// `buckets[b]..buckets[b + 1]`, so a binary search covers a few entries, not the whole array
    /// (bench/README.md, "Network lists at 1M networks", has what it saves; ~0.5 B per network).
    /// Skipping the shared bits spreads a family whose networks all sit in one range (IPv6 in
    /// 2000::/3) over every bucket.
    buckets: Vec<u32>,
    skip: u32,
    bits: u32,
    /// Entries of the array marked [`DEAD`].
    dead: usize,
    delta: PrefixMap<F::Net, Slot>,
}

impl<F: Family> Default for Sorted<F> {
    fn default() -> Self {
        Sorted {
            addrs: Vec::new(),
            lens: Vec::new(),
            slots: Vec::new(),
            parents: Vec::new(),
            buckets: vec![0, 0],
            skip: 0,
            bits: 0,
            dead: 0,
            delta: PrefixMap::new(),
        }
    }
}

impl<F: Family> Sorted<F> {
    /// Entries of the array that sort before (or at, with `inclusive`) `addr/len`.
    fn rank(&self, addr: F::Addr, len: u8, inclusive: bool) -> usize {
        let n = self.addrs.len();
        let (mut lo, mut hi) = match (self.addrs.first(), self.addrs.last()) {
            (Some(&first), _) if addr < first => (0, 0),
            (_, Some(&last)) if addr > last => (n, n),
            (Some(_), Some(_)) => {
                let b = F::top(addr, self.skip, self.bits);
                (self.buckets[b] as usize, self.buckets[b + 1] as usize)
            }
            _ => (0, 0),
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let before = match (self.addrs[mid], self.lens[mid]).cmp(&(addr, len)) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Equal => inclusive,
                std::cmp::Ordering::Greater => false,
            };
            if before {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The array index holding exactly `net`, dead or not.
    fn find(&self, net: &F::Net) -> Option<usize> {
        let (addr, len) = F::parts(net);
        let i = self.rank(addr, len, false);
        (i < self.addrs.len() && self.addrs[i] == addr && self.lens[i] == len).then_some(i)
    }

    /// Adds or replaces `net`; the slot it replaced.
    pub fn insert(&mut self, net: F::Net, slot: Slot) -> Option<Slot> {
        if let Some(i) = self.find(&net) {
            let old = std::mem::replace(&mut self.slots[i], slot);
            if old == DEAD {
                self.dead -= 1;
                return None;
            }
            return Some(old);
        }
        let old = self.delta.insert(net, slot);
        self.merge_if_due();
        old
    }

    /// Removes `net`; its slot if it was there.
    pub fn remove(&mut self, net: &F::Net) -> Option<Slot> {
        if let Some(i) = self.find(net) {
            if self.slots[i] == DEAD {
                return None;
            }
            self.dead += 1;
            let old = std::mem::replace(&mut self.slots[i], DEAD);
            self.merge_if_due();
            return Some(old);
        }
        self.delta.remove(net)
    }

    /// The longest network covering `net` for which `live` holds, and its slot.
    pub fn lookup(&self, net: &F::Net, live: impl Fn(&F::Net) -> bool) -> Option<(F::Net, Slot)> {
        let (addr, len) = F::parts(net);
        let mut best = None;
        let mut i = self.rank(addr, len, true);
        while i > 0 {
            let at = i - 1;
            let l = self.lens[at];
            if l <= len && F::covers(self.addrs[at], l, addr) && self.slots[at] != DEAD {
                let found = F::join(self.addrs[at], l);
                if live(&found) {
                    best = Some((found, self.slots[at], l));
                    break;
                }
            }
            i = match self.parents[at] {
                NO_PARENT => 0,
                p => p as usize + 1,
            };
        }
        let recent = self
            .delta
            .cover(net)
            .filter(|(n, _)| live(n))
            .last()
            .map(|(n, &s)| (n, s, F::parts(&n).1));
        match (best, recent) {
            (Some(a), Some(b)) => Some(if b.2 > a.2 { (b.0, b.1) } else { (a.0, a.1) }),
            (a, b) => a.or(b).map(|(n, s, _)| (n, s)),
        }
    }

    /// Networks stored.
    pub fn count(&self) -> usize {
        self.addrs.len() - self.dead + self.delta.len()
    }

    /// Networks strictly after `cursor` (all when `None`) in (address, prefix length) order.
    pub fn after(&self, cursor: Option<F::Net>) -> impl Iterator<Item = (F::Net, Slot)> + '_ {
        let start = cursor.map_or(0, |c| {
            let (addr, len) = F::parts(&c);
            self.rank(addr, len, true)
        });
        let array = (start..self.addrs.len())
            .filter(|&i| self.slots[i] != DEAD)
            .map(|i| (F::join(self.addrs[i], self.lens[i]), self.slots[i]));
        let delta = match cursor {
            None => self.delta.iter(),
            Some(c) => self.delta.iter_from(&c, false),
        }
        .map(|(n, &s)| (n, s));
        Merge {
            a: array.peekable(),
            b: delta.peekable(),
        }
    }

    /// Merges now if the delta or the dead entries have grown past their share.
    fn merge_if_due(&mut self) {
        let n = self.addrs.len();
        if (self.delta.len() > MIN_DELTA && self.delta.len() > n / 16)
            || (self.dead > MIN_DELTA && self.dead > n / 4)
        {
            self.merge();
        }
    }

    /// Rebuilds the array from every live entry of the array and the delta, exactly sized, and
    /// empties the delta.
    pub fn merge(&mut self) {
        if self.delta.is_empty() && self.dead == 0 {
            return;
        }
        let n = self.count();
        let mut next = Sorted::<F> {
            addrs: Vec::with_capacity(n),
            lens: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
            parents: Vec::with_capacity(n),
            buckets: Vec::new(),
            skip: 0,
            bits: 0,
            dead: 0,
            delta: PrefixMap::new(),
        };
        // Enclosing networks of the entry being added, outermost first.
        let mut open: Vec<u32> = Vec::new();
        for (net, slot) in self.after(None) {
            let (addr, len) = F::parts(&net);
            while let Some(&top) = open.last() {
                let t = top as usize;
                if F::covers(next.addrs[t], next.lens[t], addr) {
                    break;
                }
                open.pop();
            }
            next.parents.push(open.last().copied().unwrap_or(NO_PARENT));
            open.push(next.addrs.len() as u32);
            next.addrs.push(addr);
            next.lens.push(len);
            next.slots.push(slot);
        }
        next.index();
        *self = next;
    }

    /// Builds the bucket index: about one bucket per 8 entries, at most 2^24 buckets.
    fn index(&mut self) {
        let n = self.addrs.len();
        self.skip = match (self.addrs.first(), self.addrs.last()) {
            (Some(&first), Some(&last)) => F::common(first, last),
            _ => 0,
        };
        self.bits = (usize::BITS - n.leading_zeros()).saturating_sub(3).min(24);
        let count = 1usize << self.bits;
        self.buckets = Vec::with_capacity(count + 1);
        let mut i = 0;
        for b in 0..count {
            while i < n && F::top(self.addrs[i], self.skip, self.bits) < b {
                i += 1;
            }
            self.buckets.push(i as u32);
        }
        self.buckets.push(n as u32);
    }

    /// Approximate bytes in use, allocations' slack included.
    pub fn memory(&self) -> usize {
        self.addrs.capacity() * std::mem::size_of::<F::Addr>()
            + self.lens.capacity()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.parents.capacity() * std::mem::size_of::<u32>()
            + self.buckets.capacity() * std::mem::size_of::<u32>()
            + self.delta.mem_size()
    }
}

/// Two iterators sorted by network merged into one (they never hold the same network).
struct Merge<N, A: Iterator<Item = (N, Slot)>, B: Iterator<Item = (N, Slot)>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<N: prefix_trie::Prefix + Copy, A, B> Iterator for Merge<N, A, B>
where
    A: Iterator<Item = (N, Slot)>,
    B: Iterator<Item = (N, Slot)>,
{
    type Item = (N, Slot);
    fn next(&mut self) -> Option<(N, Slot)> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (Some((x, _)), Some((y, _))) => (x.repr(), x.prefix_len()) < (y.repr(), y.prefix_len()),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n4(s: &str) -> Ipv4Net {
        s.parse::<Ipv4Net>().unwrap().trunc()
    }

    fn all_live(_: &Ipv4Net) -> bool {
        true
    }

    /// The reference: the longest covering network by brute force.
    fn brute(nets: &[(Ipv4Net, Slot)], q: &Ipv4Net) -> Option<(Ipv4Net, Slot)> {
        nets.iter()
            .filter(|(n, _)| n.contains(q))
            .max_by_key(|(n, _)| n.prefix_len())
            .copied()
    }

    #[test]
    fn parent_chain_finds_the_enclosing_network_past_a_deeper_sibling() {
        let mut s = Sorted::<V4>::default();
        for (i, n) in ["10.0.0.0/8", "10.0.0.0/16", "10.1.0.0/16", "10.1.5.0/24"]
            .iter()
            .enumerate()
        {
            s.insert(n4(n), i as Slot);
        }
        s.merge();
        assert_eq!(s.delta.len(), 0);
        let q = n4("10.1.9.9/32");
        assert_eq!(s.lookup(&q, all_live), Some((n4("10.1.0.0/16"), 2)));
        assert_eq!(
            s.lookup(&n4("10.1.5.7/32"), all_live),
            Some((n4("10.1.5.0/24"), 3))
        );
        assert_eq!(
            s.lookup(&n4("10.9.0.0/16"), all_live),
            Some((n4("10.0.0.0/8"), 0))
        );
        assert_eq!(s.lookup(&n4("11.0.0.1/32"), all_live), None);
        // Not live: the next enclosing one answers.
        let not_16 = |n: &Ipv4Net| *n != n4("10.1.0.0/16");
        assert_eq!(s.lookup(&q, not_16), Some((n4("10.0.0.0/8"), 0)));
    }

    #[test]
    fn matches_brute_force_through_writes_merges_and_removals() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut s = Sorted::<V4>::default();
        let mut reference: Vec<(Ipv4Net, Slot)> = Vec::new();
        for round in 0..8_000u32 {
            let r = next();
            // Half of them in one /8, so networks nest, repeat and get removed; half anywhere,
            // so they spread over the bucket index.
            let addr = if r & 2 == 0 {
                0x0a00_0000 | ((r >> 8) as u32 & 0x0000_ffff) << 8
            } else {
                (r >> 24) as u32
            };
            let net = Ipv4Net::new_assert(addr.into(), 8 + (r % 25) as u8).trunc();
            if r >> 60 < 3 {
                let gone = s.remove(&net);
                let pos = reference.iter().position(|(n, _)| *n == net);
                assert_eq!(gone, pos.map(|p| reference.swap_remove(p).1));
            } else {
                let old = s.insert(net, round);
                let pos = reference.iter().position(|(n, _)| *n == net);
                let want = pos.map(|p| std::mem::replace(&mut reference[p].1, round));
                if pos.is_none() {
                    reference.push((net, round));
                }
                assert_eq!(old, want);
            }
            let q_addr = match next() {
                v if v & 1 == 0 => 0x0a00_0000 | (v as u32 >> 8),
                v => (v >> 32) as u32,
            };
            let q =
                Ipv4Net::new_assert(q_addr.into(), if round % 7 == 0 { 20 } else { 32 }).trunc();
            assert_eq!(s.lookup(&q, all_live), brute(&reference, &q), "{q}");
        }
        assert_eq!(s.count(), reference.len());
        let mut sorted = reference.clone();
        sorted.sort_by_key(|(n, _)| (u32::from(n.network()), n.prefix_len()));
        assert_eq!(s.after(None).collect::<Vec<_>>(), sorted);
        let mid = sorted[sorted.len() / 2].0;
        let tail: Vec<_> = s.after(Some(mid)).collect();
        assert_eq!(tail, sorted[sorted.len() / 2 + 1..].to_vec());
        s.merge();
        assert_eq!(s.after(None).collect::<Vec<_>>(), sorted);
    }

    #[test]
    fn the_bucket_index_skips_shared_bits_and_bounds_outside_queries() {
        let n6 = |s: &str| s.parse::<Ipv6Net>().unwrap().trunc();
        let mut s = Sorted::<V6>::default();
        for i in 0..500u32 {
            s.insert(n6(&format!("2001:db8:{:x}::/48", i * 7)), i);
        }
        s.insert(n6("2001:db8::/32"), 9999);
        s.merge();
        assert_eq!(s.skip, 32 + 4);
        assert!(s.bits > 0);
        let live = |_: &Ipv6Net| true;
        for i in 0..500u32 {
            let q = n6(&format!("2001:db8:{:x}::1/128", i * 7));
            assert_eq!(
                s.lookup(&q, live),
                Some((n6(&format!("2001:db8:{:x}::/48", i * 7)), i))
            );
            let gap = n6(&format!("2001:db8:{:x}::1/128", i * 7 + 1));
            assert_eq!(s.lookup(&gap, live), Some((n6("2001:db8::/32"), 9999)));
        }
        assert_eq!(s.lookup(&n6("2001:db7::1/128"), live), None);
        assert_eq!(s.lookup(&n6("2001:db9::1/128"), live), None);
        assert_eq!(s.lookup(&n6("::/0"), live), None);
        assert_eq!(s.after(None).count(), 501);
    }

    #[test]
    fn v6_covers_at_every_length() {
        let a: u128 = 0x2001_0db8 << 96;
        assert!(V6::covers(a, 0, u128::MAX));
        assert!(V6::covers(a, 32, a | 1));
        assert!(!V6::covers(a, 128, a | 1));
        assert!(V6::covers(a, 128, a));
        assert!(V4::covers(0, 0, u32::MAX));
        assert!(!V4::covers(0x0a00_0000, 32, 0x0a00_0001));
    }
}
