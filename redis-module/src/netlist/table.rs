//! One network list: a longest-prefix-match table over IPv4 and IPv6 networks, each with a
//! short value and an optional absolute expiry. Pure logic: every time-dependent call takes
//! `now_ms`, so tests drive the clock.
//!
//! Expiry is lazy: an expired network never matches and is never listed or saved, and writes
//! drop expired networks when one may have expired ([`NetList::drop_expired`] is O(n), so it
//! only runs once `now` has passed the earliest expiry it knows of).

use std::collections::HashMap;

use ipnet::IpNet;

use super::sorted::{Family, Sorted, V4, V6};
use super::values::{Slot, Values};

/// What a list stores for one network, as written (`NETADD`, an RDB record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Reason tokens (validated like `IPCHECK SET ... REASON`), possibly empty.
    pub value: Box<str>,
    /// Absolute expiry in Unix milliseconds; 0 when the network never expires.
    pub expires_at: i64,
}

impl Item {
    /// Whether the network still counts at `now_ms`.
    pub fn live(&self, now_ms: i64) -> bool {
        self.as_ref().live(now_ms)
    }

    /// The borrowed form lists hand out.
    pub fn as_ref(&self) -> ItemRef<'_> {
        ItemRef {
            value: &self.value,
            expires_at: self.expires_at,
        }
    }
}

/// What a list holds for one network, as read back (the value lives once in the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRef<'a> {
    /// Reason tokens, possibly empty.
    pub value: &'a str,
    /// Absolute expiry in Unix milliseconds; 0 when the network never expires.
    pub expires_at: i64,
}

impl ItemRef<'_> {
    /// Whether the network still counts at `now_ms`.
    pub fn live(&self, now_ms: i64) -> bool {
        self.expires_at == 0 || self.expires_at > now_ms
    }
}

/// A list's networks. Memory is what shaped it (issue #12: at most 64 B per network): each
/// network is an entry in a compact sorted array ([`Sorted`]) naming its value by a slot in a
/// table of distinct values ([`Values`]); expiries sit in a side map holding only the networks
/// that have one, as most feeds set none.
#[derive(Clone)]
pub struct NetList {
    v4: Sorted<V4>,
    v6: Sorted<V6>,
    values: Values,
    /// Expiry of every network that has one (absent: never expires).
    expiries: HashMap<IpNet, i64>,
    /// No stored network expires before this; `i64::MAX` when none has an expiry. A lower
    /// bound: removing a network never raises it, [`NetList::drop_expired`] recomputes it.
    earliest_expiry: i64,
}

impl Default for NetList {
    fn default() -> Self {
        Self::new()
    }
}

impl NetList {
    /// An empty list.
    pub fn new() -> Self {
        NetList {
            v4: Sorted::default(),
            v6: Sorted::default(),
            values: Values::default(),
            expiries: HashMap::new(),
            earliest_expiry: i64::MAX,
        }
    }

    /// Adds or replaces `net` (already normalized); true if it was not there.
    pub fn insert(&mut self, net: IpNet, item: Item) -> bool {
        if item.expires_at != 0 {
            self.earliest_expiry = self.earliest_expiry.min(item.expires_at);
            self.expiries.insert(net, item.expires_at);
        } else {
            self.expiries.remove(&net);
        }
        let slot = self.values.acquire(&item.value);
        let old = match net {
            IpNet::V4(n) => self.v4.insert(n, slot),
            IpNet::V6(n) => self.v6.insert(n, slot),
        };
        match old {
            Some(old) => {
                self.values.release(old);
                false
            }
            None => true,
        }
    }

    /// Removes `net`; the removed item, if it was there.
    pub fn remove(&mut self, net: &IpNet) -> Option<Item> {
        let old = match net {
            IpNet::V4(n) => self.v4.remove(n),
            IpNet::V6(n) => self.v6.remove(n),
        }?;
        let item = Item {
            value: self.values.get(old).into(),
            expires_at: self.expiries.remove(net).unwrap_or(0),
        };
        self.values.release(old);
        Some(item)
    }

    /// Whether `net` is live at `now_ms`, given that it is stored.
    fn is_live(&self, net: IpNet, now_ms: i64) -> bool {
        now_ms < self.earliest_expiry || self.expiries.get(&net).is_none_or(|&e| e > now_ms)
    }

    fn item(&self, net: &IpNet, slot: Slot) -> ItemRef<'_> {
        ItemRef {
            value: self.values.get(slot),
            expires_at: if self.expiries.is_empty() {
                0
            } else {
                self.expiries.get(net).copied().unwrap_or(0)
            },
        }
    }

    /// The longest live network that covers `net` (an address is a /32 or /128).
    pub fn lookup(&self, net: &IpNet, now_ms: i64) -> Option<(IpNet, ItemRef<'_>)> {
        let (found, slot) = match net {
            IpNet::V4(n) => {
                let (f, s) = self.v4.lookup(n, |c| self.is_live(IpNet::V4(*c), now_ms))?;
                (IpNet::V4(f), s)
            }
            IpNet::V6(n) => {
                let (f, s) = self.v6.lookup(n, |c| self.is_live(IpNet::V6(*c), now_ms))?;
                (IpNet::V6(f), s)
            }
        };
        Some((found, self.item(&found, slot)))
    }

    /// Drops every network expired at `now_ms`, if any may be; returns how many went.
    pub fn drop_expired(&mut self, now_ms: i64) -> usize {
        if now_ms < self.earliest_expiry {
            return 0;
        }
        let gone: Vec<IpNet> = self
            .expiries
            .iter()
            .filter(|(_, &e)| e <= now_ms)
            .map(|(n, _)| *n)
            .collect();
        for net in &gone {
            self.remove(net);
        }
        self.earliest_expiry = self.expiries.values().copied().min().unwrap_or(i64::MAX);
        gone.len()
    }

    /// Networks stored, live or not yet dropped.
    pub fn len(&self) -> usize {
        self.v4.count() + self.v6.count()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live IPv4 and IPv6 networks at `now_ms` (a scan of the expiries only when something may
    /// have expired).
    pub fn live_counts(&self, now_ms: i64) -> (usize, usize) {
        let (mut v4, mut v6) = (self.v4.count(), self.v6.count());
        if now_ms >= self.earliest_expiry {
            for (net, &e) in &self.expiries {
                if e <= now_ms {
                    match net {
                        IpNet::V4(_) => v4 -= 1,
                        IpNet::V6(_) => v6 -= 1,
                    }
                }
            }
        }
        (v4, v6)
    }

    /// Merges recent additions into the compact arrays now (after a bulk load, so a loaded list
    /// starts at its smallest).
    pub fn compact(&mut self) {
        self.v4.merge();
        self.v6.merge();
        self.expiries.shrink_to_fit();
    }

    /// Approximate bytes in use: arrays, tries of recent additions, values and expiries, with
    /// the allocations' slack.
    pub fn memory(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.v4.memory()
            + self.v6.memory()
            + self.values.memory()
            + self.expiries.capacity() * (std::mem::size_of::<(IpNet, i64)>() + 1)
    }

    /// Every live network at `now_ms`: IPv4 first, then IPv6, each in (address, prefix length)
    /// order.
    pub fn live(&self, now_ms: i64) -> impl Iterator<Item = (IpNet, ItemRef<'_>)> {
        self.after(None, now_ms)
    }

    /// Live networks strictly after `cursor` in [`NetList::live`]'s order (all when `None`).
    pub fn after(
        &self,
        cursor: Option<IpNet>,
        now_ms: i64,
    ) -> Box<dyn Iterator<Item = (IpNet, ItemRef<'_>)> + '_> {
        let all: Box<dyn Iterator<Item = (IpNet, Slot)>> = match cursor {
            None => Box::new(
                self.v4
                    .after(None)
                    .map(v4)
                    .chain(self.v6.after(None).map(v6)),
            ),
            Some(IpNet::V4(c)) => Box::new(
                self.v4
                    .after(Some(c))
                    .map(v4)
                    .chain(self.v6.after(None).map(v6)),
            ),
            Some(IpNet::V6(c)) => Box::new(self.v6.after(Some(c)).map(v6)),
        };
        Box::new(
            all.filter(move |(n, _)| self.is_live(*n, now_ms))
                .map(|(n, s)| (n, self.item(&n, s))),
        )
    }
}

fn v4((p, s): (<V4 as Family>::Net, Slot)) -> (IpNet, Slot) {
    (IpNet::V4(p), s)
}

fn v6((p, s): (<V6 as Family>::Net, Slot)) -> (IpNet, Slot) {
    (IpNet::V6(p), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        ipcheck_core::normalize_network(s.as_bytes()).unwrap()
    }

    fn item(value: &str, expires_at: i64) -> Item {
        Item {
            value: value.into(),
            expires_at,
        }
    }

    fn matched(list: &NetList, ip: &str, now: i64) -> Option<(String, String)> {
        list.lookup(&net(ip), now)
            .map(|(n, i)| (n.to_string(), i.value.to_string()))
    }

    #[test]
    fn longest_prefix_wins_in_both_families() {
        let mut l = NetList::new();
        assert!(l.insert(net("10.0.0.0/8"), item("wide", 0)));
        assert!(l.insert(net("10.1.0.0/16"), item("narrow", 0)));
        assert!(l.insert(net("2001:db8::/32"), item("v6", 0)));
        assert!(l.insert(net("2001:db8:1::/48"), item("v6narrow", 0)));
        assert_eq!(
            matched(&l, "10.1.2.3", 0),
            Some(("10.1.0.0/16".into(), "narrow".into()))
        );
        assert_eq!(
            matched(&l, "10.2.2.3", 0),
            Some(("10.0.0.0/8".into(), "wide".into()))
        );
        assert_eq!(matched(&l, "11.0.0.1", 0), None);
        assert_eq!(
            matched(&l, "2001:db8:1::5", 0),
            Some(("2001:db8:1::/48".into(), "v6narrow".into()))
        );
        assert_eq!(
            matched(&l, "2001:db8:2::5", 0),
            Some(("2001:db8::/32".into(), "v6".into()))
        );
        assert_eq!(l.live_counts(0), (2, 2));
    }

    #[test]
    fn expired_networks_never_match_and_fall_back_to_shorter() {
        let mut l = NetList::new();
        l.insert(net("10.0.0.0/8"), item("wide", 0));
        l.insert(net("10.1.0.0/16"), item("narrow", 1000));
        assert_eq!(matched(&l, "10.1.0.1", 999).unwrap().1, "narrow");
        assert_eq!(matched(&l, "10.1.0.1", 1000).unwrap().1, "wide");
        assert_eq!(l.live_counts(1000), (1, 0));
        assert_eq!(l.drop_expired(999), 0);
        assert_eq!(l.drop_expired(1000), 1);
        assert_eq!(l.len(), 1);
        assert_eq!(l.drop_expired(5000), 0);
    }

    #[test]
    fn replace_and_remove_keep_value_bytes() {
        let mut l = NetList::new();
        let base = l.memory();
        assert!(l.insert(net("192.0.2.0/24"), item("abc", 0)));
        assert!(!l.insert(net("192.0.2.0/24"), item("abcdef", 0)));
        assert_eq!(l.values.distinct(), 1);
        assert_eq!(
            l.remove(&net("192.0.2.0/24")).unwrap().value.as_ref(),
            "abcdef"
        );
        assert_eq!(l.values.distinct(), 0);
        assert!(l.remove(&net("192.0.2.0/24")).is_none());
        assert!(l.is_empty());
        assert!(l.memory() >= base);
    }

    #[test]
    fn random_writes_expiries_and_matches_agree_with_brute_force() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut l = NetList::new();
        let mut reference: std::collections::HashMap<IpNet, Item> = Default::default();
        let values = ["", "tor", "vpn", "tor,vpn"];
        for now in 0..6_000i64 {
            let r = next();
            let v6 = r & 1 == 1;
            let len = if v6 {
                32 + (r >> 8) as u8 % 33
            } else {
                8 + (r >> 8) as u8 % 25
            };
            let text = if v6 {
                format!(
                    "2001:db8:{:x}:{:x}::/{len}",
                    (r >> 16) & 0xf,
                    (r >> 20) & 0xff
                )
            } else {
                format!("10.{}.{}.0/{len}", (r >> 16) & 0xf, (r >> 20) & 0xff)
            };
            let n = net(&text);
            if r >> 61 == 0 {
                assert_eq!(
                    l.remove(&n).map(|i| i.value),
                    reference.remove(&n).map(|i| i.value)
                );
            } else {
                let expires_at = if r >> 58 & 7 < 2 {
                    now + 1 + (r >> 40) as i64 % 500
                } else {
                    0
                };
                let it = item(values[(r >> 50) as usize % 4], expires_at);
                assert_eq!(l.insert(n, it.clone()), reference.insert(n, it).is_none());
            }
            if now % 97 == 0 {
                l.drop_expired(now);
                reference.retain(|_, i| i.live(now));
            }
            let q = net(&if next() & 1 == 0 {
                format!("10.{}.{}.{}", next() & 0xf, next() & 0xff, next() & 0xff)
            } else {
                format!("2001:db8:{:x}:{:x}::1", next() & 0xf, next() & 0xff)
            });
            let want = reference
                .iter()
                .filter(|(p, i)| p.contains(&q) && i.live(now))
                .max_by_key(|(p, _)| p.prefix_len())
                .map(|(p, i)| (p.to_string(), i.value.to_string()));
            assert_eq!(matched(&l, &q.to_string(), now), want, "{q} at {now}");
        }
        let now = 6_000;
        let live: usize = reference.values().filter(|i| i.live(now)).count();
        let (a, b) = l.live_counts(now);
        assert_eq!(a + b, live);
        assert_eq!(l.live(now).count(), live);
    }

    #[test]
    fn cursor_walk_covers_everything_once() {
        let mut l = NetList::new();
        let mut want = Vec::new();
        for i in 0..50u32 {
            let v4 = format!("10.{}.0.0/{}", i, 16 + i % 8);
            let v6 = format!("2001:db8:{:x}::/{}", i, 48 + i % 16);
            l.insert(net(&v4), item("", 0));
            l.insert(net(&v6), item("", 0));
            want.push(net(&v4).to_string());
            want.push(net(&v6).to_string());
        }
        l.insert(net("10.200.0.0/16"), item("gone", 5));
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page: Vec<_> = l.after(cursor, 10).take(7).map(|(n, _)| n).collect();
            if page.is_empty() {
                break;
            }
            cursor = page.last().copied();
            seen.extend(page.iter().map(|n| n.to_string()));
        }
        want.sort();
        seen.sort();
        assert_eq!(seen, want);
    }
}

#[cfg(test)]
mod memory {
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};

    /// Random networks as the bench loads them: half IPv4 (/16../32), half IPv6 under 2000::/3
    /// (/32../64), one value, no expiry (bench/src/netgen.rs is the bench's own copy).
    fn random_list(n: usize) -> NetList {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut l = NetList::new();
        while l.len() < n {
            let r = next();
            let net = if r & 1 == 0 {
                let len = 16 + (r >> 40) as u8 % 17;
                IpNet::V4(Ipv4Net::new_assert(((r >> 8) as u32).into(), len).trunc())
            } else {
                let len = 32 + (r >> 40) as u8 % 33;
                let a = (u128::from(next()) << 64 | u128::from(next())) >> 3 | 1 << 125;
                IpNet::V6(Ipv6Net::new_assert(a.into(), len).trunc())
            };
            l.insert(
                net,
                Item {
                    value: "tor".into(),
                    expires_at: 0,
                },
            );
        }
        l
    }

    #[test]
    fn a_bulk_loaded_list_costs_at_most_64_bytes_per_network() {
        let mut l = random_list(300_000);
        let grown = l.memory() as f64 / l.len() as f64;
        l.compact();
        let compact = l.memory() as f64 / l.len() as f64;
        // The prefix-trie layout this replaced measured 112 B here.
        assert!(grown <= 64.0, "{grown} B per network before compaction");
        assert!(compact <= 32.0, "{compact} B per network compacted");
    }
}
