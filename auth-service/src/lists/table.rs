//! One list's local copy: a longest-prefix-match trie per address family (the `prefix-trie`
//! crate, as the module's), each network with its optional absolute expiry, so a match costs a
//! trie walk and no Redis round trip.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// Networks of one list; `None` expiry: forever.
#[derive(Debug, Default, Clone)]
pub struct Table {
    v4: PrefixMap<Ipv4Net, Option<u64>>,
    v6: PrefixMap<Ipv6Net, Option<u64>>,
}

impl Table {
    /// Adds `net` (host bits dropped, IPv4-mapped IPv6 made IPv4, as the module normalizes),
    /// expiring at `expires_ms` (Unix milliseconds) if given.
    pub fn insert(&mut self, net: IpNet, expires_ms: Option<u64>) {
        match canonical(net) {
            IpNet::V4(n) => {
                self.v4.insert(n, expires_ms);
            }
            IpNet::V6(n) => {
                self.v6.insert(n, expires_ms);
            }
        }
    }

    /// Networks held (expired ones included until the next load).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the list holds no network.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a network live at `now_ms` covers `ip`.
    pub fn matches(&self, ip: IpAddr, now_ms: u64) -> bool {
        let live = |e: &Option<u64>| e.is_none_or(|at| at > now_ms);
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let host = Ipv4Net::from(a);
                match self.v4.get_lpm(&host) {
                    None => false,
                    Some((_, e)) if live(e) => true,
                    // The longest is expired: a shorter live network still covers the address.
                    Some(_) => self.v4.cover_values(&host).any(live),
                }
            }
            IpAddr::V6(a) => {
                let host = Ipv6Net::from(a);
                match self.v6.get_lpm(&host) {
                    None => false,
                    Some((_, e)) if live(e) => true,
                    Some(_) => self.v6.cover_values(&host).any(live),
                }
            }
        }
    }
}

/// `net` as the module stores it: host bits zeroed, an IPv4-mapped IPv6 network as IPv4.
fn canonical(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if let Some(v4) = n.addr().to_ipv4_mapped() {
            if n.prefix_len() >= 96 {
                if let Ok(n4) = Ipv4Net::new(v4, n.prefix_len() - 96) {
                    return IpNet::V4(n4.trunc());
                }
            }
        }
    }
    net.trunc()
}

/// Parses a list file: one network (or bare address) per line, `#` or `;` starting a comment,
/// blank lines ignored. An error names the line to fix.
pub fn parse_file(text: &str) -> Result<Table, String> {
    let mut table = Table::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        // DROP-style lines carry more after the network ("1.2.3.0/24 ; SBL123" is handled by
        // the comment split; "1.2.3.0/24 SBL123" by taking the first word).
        let word = line.split_whitespace().next().unwrap_or(line);
        table.insert(
            parse_network(word).map_err(|e| format!("line {}: {e}", i + 1))?,
            None,
        );
    }
    Ok(table)
}

/// A network or a bare address (a /32 or /128).
pub fn parse_network(word: &str) -> Result<IpNet, String> {
    if let Ok(net) = word.parse::<IpNet>() {
        return Ok(net);
    }
    word.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{word}' is not a network (a.b.c.d/n, x::/n) or an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn longest_match_over_both_families() {
        let t = parse_file("# tor exits\n10.0.0.0/8\n192.0.2.7 ; one host\n2001:db8::/32\n\n")
            .expect("valid file");
        assert_eq!(t.len(), 3);
        assert!(t.matches(ip("10.200.1.1"), 0));
        assert!(t.matches(ip("192.0.2.7"), 0));
        assert!(!t.matches(ip("192.0.2.8"), 0));
        assert!(t.matches(ip("2001:db8:1::5"), 0));
        assert!(!t.matches(ip("2001:db9::1"), 0));
        // The IPv4 client behind an IPv4-mapped address is the IPv4 one.
        assert!(t.matches(ip("::ffff:10.1.2.3"), 0));
    }

    #[test]
    fn expired_networks_never_match_but_shorter_live_ones_do() {
        let mut t = Table::default();
        t.insert("10.1.0.0/16".parse().expect("net"), Some(1_000));
        assert!(t.matches(ip("10.1.2.3"), 999));
        assert!(!t.matches(ip("10.1.2.3"), 1_000));
        t.insert("10.0.0.0/8".parse().expect("net"), None);
        assert!(t.matches(ip("10.1.2.3"), 5_000));
    }

    #[test]
    fn host_bits_and_mapped_networks_are_normalized() {
        let mut t = Table::default();
        t.insert("10.1.2.3/8".parse().expect("net"), None);
        t.insert("::ffff:172.16.0.0/108".parse().expect("net"), None);
        assert!(t.matches(ip("10.9.9.9"), 0));
        assert!(t.matches(ip("172.16.5.5"), 0));
    }

    proptest::proptest! {
        /// Whatever a list file holds, parsing answers (a table or an error naming a line) and
        /// never panics; whatever parses, matching never panics either.
        #[test]
        fn any_file_parses_or_names_a_line(text in "[0-9a-f:./# ;\n]{0,200}", probe: u128) {
            match parse_file(&text) {
                Ok(t) => {
                    let _ = t.matches(IpAddr::V6(probe.into()), 0);
                    let _ = t.matches(IpAddr::V4((probe as u32).into()), 0);
                }
                Err(e) => proptest::prop_assert!(e.starts_with("line "), "{}", e),
            }
        }
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = parse_file("10.0.0.0/8\n10.0.0.0/33\n").expect_err("bad prefix");
        assert!(e.starts_with("line 2: '10.0.0.0/33'"), "{e}");
    }
}
