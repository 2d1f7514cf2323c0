//! The RDB form of one network (encoding version [`ENCODING_VERSION`]), as pure functions so a
//! corrupt record is refused here, before anything reaches a list.
//!
//! A list is saved as an unsigned count followed by that many string buffers, one per live
//! network: `family (4|6) · prefix length · address (4|16 bytes, host bits zero) ·
//! expires_at (i64 little-endian, 0 = never) · value bytes`.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipcheck_core::Reasons;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::table::{Item, ItemRef};

/// The data type's encoding version; bump it (and keep loading the old one) on any change.
pub const ENCODING_VERSION: i32 = 1;

/// Appends the record of `net` with `item` to `out` (cleared first).
pub fn encode(net: &IpNet, item: ItemRef<'_>, out: &mut Vec<u8>) {
    out.clear();
    match net {
        IpNet::V4(n) => {
            out.push(4);
            out.push(n.prefix_len());
            out.extend_from_slice(&n.network().octets());
        }
        IpNet::V6(n) => {
            out.push(6);
            out.push(n.prefix_len());
            out.extend_from_slice(&n.network().octets());
        }
    }
    out.extend_from_slice(&item.expires_at.to_le_bytes());
    out.extend_from_slice(item.value.as_bytes());
}

/// Why a saved record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt network list record: {0}")]
pub struct CorruptRecord(&'static str);

/// Parses a record, checking everything [`encode`] guarantees.
pub fn decode(bytes: &[u8]) -> Result<(IpNet, Item), CorruptRecord> {
    let (&family, rest) = bytes.split_first().ok_or(CorruptRecord("empty"))?;
    let (&len, rest) = rest
        .split_first()
        .ok_or(CorruptRecord("no prefix length"))?;
    let addr_len = match family {
        4 => 4,
        6 => 16,
        _ => return Err(CorruptRecord("unknown family")),
    };
    let addr = rest.get(..addr_len).ok_or(CorruptRecord("short address"))?;
    let rest = &rest[addr_len..];
    let expiry = rest.get(..8).ok_or(CorruptRecord("short expiry"))?;
    let mut eb = [0u8; 8];
    eb.copy_from_slice(expiry);
    let expires_at = i64::from_le_bytes(eb);
    if expires_at < 0 {
        return Err(CorruptRecord("negative expiry"));
    }
    let value = std::str::from_utf8(&rest[8..]).map_err(|_| CorruptRecord("value not UTF-8"))?;
    Reasons::parse(value).map_err(|_| CorruptRecord("value not reason tokens"))?;
    let bad_len = |_| CorruptRecord("prefix length out of range");
    let net = if family == 4 {
        let mut a = [0u8; 4];
        a.copy_from_slice(addr);
        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).map_err(bad_len)?)
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(addr);
        let v6 = Ipv6Addr::from(a);
        if len >= 96 && v6.to_ipv4_mapped().is_some() {
            return Err(CorruptRecord("IPv4-mapped network saved as IPv6"));
        }
        IpNet::V6(Ipv6Net::new(v6, len).map_err(bad_len)?)
    };
    if net.trunc() != net {
        return Err(CorruptRecord("host bits set"));
    }
    Ok((
        net,
        Item {
            value: value.into(),
            expires_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        ipcheck_core::normalize_network(s.as_bytes()).unwrap()
    }

    #[test]
    fn round_trips() {
        let mut buf = Vec::new();
        for (n, v, e) in [
            ("10.0.0.0/8", "tor,vpn", 0),
            ("0.0.0.0/0", "", 17),
            ("2001:db8::/32", "hosting", 1_900_000_000_000),
            ("::1/128", "x", 0),
        ] {
            let item = Item {
                value: v.into(),
                expires_at: e,
            };
            encode(&net(n), item.as_ref(), &mut buf);
            assert_eq!(decode(&buf).unwrap(), (net(n), item));
        }
    }

    #[test]
    fn refuses_every_truncation_and_bad_fields() {
        let mut buf = Vec::new();
        let item = Item {
            value: "ok".into(),
            expires_at: 5,
        };
        encode(&net("2001:db8::/32"), item.as_ref(), &mut buf);
        // Cutting the value leaves a valid shorter value; cutting before it must fail.
        for cut in 0..(2 + 16 + 8) {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[0] = 5;
        assert!(decode(&bad).is_err());
        let mut bad = buf.clone();
        bad[1] = 129;
        assert!(decode(&bad).is_err());
        let mut bad = buf.clone();
        bad[2 + 15] = 1; // host bit under a /32
        assert!(decode(&bad).is_err());
        let mut bad = buf.clone();
        bad.push(b' ');
        assert!(decode(&bad).is_err());
        let mut bad = buf.clone();
        bad[2 + 16 + 7] = 0x80;
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            let _ = decode(&bytes);
        }
    }
}
