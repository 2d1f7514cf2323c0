//! One network list: a longest-prefix-match table over IPv4 and IPv6 networks, each with a
//! short value and an optional absolute expiry. Pure logic: every time-dependent call takes
//! `now_ms`, so tests drive the clock.
//!
//! Expiry is lazy: an expired network never matches and is never listed or saved, and writes
//! drop expired networks when one may have expired ([`NetList::drop_expired`] is O(n), so it
//! only runs once `now` has passed the earliest expiry it knows of).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// What a list stores for one network.
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
        self.expires_at == 0 || self.expires_at > now_ms
    }
}

/// A list's networks.
#[derive(Clone, Default)]
pub struct NetList {
    v4: PrefixMap<Ipv4Net, Item>,
    v6: PrefixMap<Ipv6Net, Item>,
    /// Heap bytes of all values (the trie's own size does not include them).
    value_bytes: usize,
    /// No stored network expires before this; `i64::MAX` when none has an expiry. A lower
    /// bound: removing a network never raises it, [`NetList::drop_expired`] recomputes it.
    earliest_expiry: i64,
}

impl NetList {
    /// An empty list.
    pub fn new() -> Self {
        NetList {
            earliest_expiry: i64::MAX,
            ..Default::default()
        }
    }

    /// Adds or replaces `net` (already normalized); true if it was not there.
    pub fn insert(&mut self, net: IpNet, item: Item) -> bool {
        if item.expires_at != 0 {
            self.earliest_expiry = self.earliest_expiry.min(item.expires_at);
        }
        self.value_bytes += item.value.len();
        let old = match net {
            IpNet::V4(n) => self.v4.insert(n, item),
            IpNet::V6(n) => self.v6.insert(n, item),
        };
        match old {
            Some(old) => {
                self.value_bytes -= old.value.len();
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
        };
        if let Some(old) = &old {
            self.value_bytes -= old.value.len();
        }
        old
    }

    /// The longest live network that covers `net` (an address is a /32 or /128).
    pub fn lookup(&self, net: &IpNet, now_ms: i64) -> Option<(IpNet, &Item)> {
        match net {
            IpNet::V4(n) => self
                .v4
                .cover(n)
                .filter(|(_, i)| i.live(now_ms))
                .last()
                .map(|(p, i)| (IpNet::V4(p), i)),
            IpNet::V6(n) => self
                .v6
                .cover(n)
                .filter(|(_, i)| i.live(now_ms))
                .last()
                .map(|(p, i)| (IpNet::V6(p), i)),
        }
    }

    /// Drops every network expired at `now_ms`, if any may be; returns how many went.
    pub fn drop_expired(&mut self, now_ms: i64) -> usize {
        if now_ms < self.earliest_expiry {
            return 0;
        }
        let before = self.len();
        let mut dropped_bytes = 0;
        let mut earliest = i64::MAX;
        let mut keep = |item: &Item| {
            if item.live(now_ms) {
                if item.expires_at != 0 {
                    earliest = earliest.min(item.expires_at);
                }
                true
            } else {
                dropped_bytes += item.value.len();
                false
            }
        };
        self.v4.retain(|_, item| keep(item));
        self.v6.retain(|_, item| keep(item));
        self.value_bytes -= dropped_bytes;
        self.earliest_expiry = earliest;
        before - self.len()
    }

    /// Networks stored, live or not yet dropped.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live IPv4 and IPv6 networks at `now_ms` (a scan only when something may have expired).
    pub fn live_counts(&self, now_ms: i64) -> (usize, usize) {
        if now_ms < self.earliest_expiry {
            return (self.v4.len(), self.v6.len());
        }
        (
            self.v4.values().filter(|i| i.live(now_ms)).count(),
            self.v6.values().filter(|i| i.live(now_ms)).count(),
        )
    }

    /// Approximate bytes in use: the tries (items included) plus the values' heap bytes.
    pub fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + self.v4.mem_size() + self.v6.mem_size() + self.value_bytes
    }

    /// Every live network at `now_ms`: IPv4 first, then IPv6, each in trie order.
    pub fn live(&self, now_ms: i64) -> impl Iterator<Item = (IpNet, &Item)> {
        self.after(None, now_ms)
    }

    /// Live networks strictly after `cursor` in [`NetList::live`]'s order (all when `None`).
    pub fn after(
        &self,
        cursor: Option<IpNet>,
        now_ms: i64,
    ) -> Box<dyn Iterator<Item = (IpNet, &Item)> + '_> {
        let all: Box<dyn Iterator<Item = (IpNet, &Item)>> = match cursor {
            None => Box::new(self.v4.iter().map(v4).chain(self.v6.iter().map(v6))),
            Some(IpNet::V4(c)) => Box::new(
                self.v4
                    .iter_from(&c, false)
                    .map(v4)
                    .chain(self.v6.iter().map(v6)),
            ),
            Some(IpNet::V6(c)) => Box::new(self.v6.iter_from(&c, false).map(v6)),
        };
        Box::new(all.filter(move |(_, i)| i.live(now_ms)))
    }
}

fn v4((p, i): (Ipv4Net, &Item)) -> (IpNet, &Item) {
    (IpNet::V4(p), i)
}

fn v6((p, i): (Ipv6Net, &Item)) -> (IpNet, &Item) {
    (IpNet::V6(p), i)
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
        assert_eq!(l.value_bytes, 6);
        assert_eq!(
            l.remove(&net("192.0.2.0/24")).unwrap().value.as_ref(),
            "abcdef"
        );
        assert_eq!(l.value_bytes, 0);
        assert!(l.remove(&net("192.0.2.0/24")).is_none());
        assert!(l.is_empty());
        assert!(l.memory() >= base);
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
