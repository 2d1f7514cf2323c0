//! Networks of any prefix length, for network lists (`IPCHECK NET*`).
//!
//! The same strict address rules as a cache identity (no zones, no leading zeros, IPv4-mapped
//! IPv6 becomes IPv4), but the prefix length is kept as given instead of aggregated: a list
//! holds `10.0.0.0/8` and `192.0.2.7/32` side by side. Host bits are zeroed, so `10.1.2.3/8`
//! and `10.0.0.0/8` are the same network.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::IpAddr;

use super::{parse_addr, parse_prefix_len, NormalizeError, Refusal, MAX_INPUT_LEN};

/// Parses `addr` or `addr/len` into its normalized network (a bare address is a host route).
pub fn normalize_network(input: &[u8]) -> Result<IpNet, NormalizeError> {
    identify_network(input).map_err(|refusal| refusal.quoting(input))
}

fn identify_network(input: &[u8]) -> Result<IpNet, Refusal> {
    if input.is_empty() {
        return Err(Refusal::Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(Refusal::TooLong);
    }
    let (addr_text, prefix_text) = match input.iter().position(|&b| b == b'/') {
        Some(at) => (&input[..at], input.get(at + 1..)),
        None => (input, None),
    };
    let given = match prefix_text {
        None => None,
        Some(p) => Some(parse_prefix_len(p)?),
    };
    let bad = |_| Refusal::BadPrefix;
    Ok(match parse_addr(addr_text)? {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, given.unwrap_or(32)).map_err(bad)?.trunc()),
        IpAddr::V6(v6) => match (v6.to_ipv4_mapped(), given.unwrap_or(128)) {
            // A mapped network inside ::ffff:0:0/96 is an IPv4 network; a wider one is not.
            (Some(v4), len) if len >= 96 => {
                IpNet::V4(Ipv4Net::new(v4, len - 96).map_err(bad)?.trunc())
            }
            (_, len) => IpNet::V6(Ipv6Net::new(v6, len).map_err(bad)?.trunc()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize_network(s.as_bytes()).unwrap().to_string()
    }

    #[test]
    fn keeps_the_length_and_zeroes_host_bits() {
        assert_eq!(n("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(n("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(n("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(n("2001:db8::1/32"), "2001:db8::/32");
        assert_eq!(n("2001:DB8::1"), "2001:db8::1/128");
        assert_eq!(n("::/0"), "::/0");
    }

    #[test]
    fn mapped_becomes_ipv4() {
        assert_eq!(n("::ffff:192.0.2.1"), "192.0.2.1/32");
        assert_eq!(n("::ffff:10.0.0.0/104"), "10.0.0.0/8");
        assert_eq!(n("::ffff:0:0/80"), "::/80");
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/08",
            "010.0.0.1",
            "fe80::1%eth0/64",
            "nonsense",
            "10.0.0.0/8/8",
        ] {
            assert!(normalize_network(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
