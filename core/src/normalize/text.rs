//! The canonical text of a [`NormalizedIp`](super::NormalizedIp), written into a stack buffer.
//!
//! Every cache key is built from this text on every request, and going through `core::fmt`
//! (`std`'s `Ipv4Addr`/`Ipv6Addr` Display behind a `Formatter`) cost about 3% of an `IPCHECK`
//! GET or SET. This writes the same bytes directly: dotted quad for IPv4, RFC 5952 for IPv6 with
//! `std`'s special form for IPv4-mapped addresses, and `/len` when the prefix is shorter than the
//! address. A property test in `super::tests` checks it byte for byte against `std`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// A canonical address text on the stack: what `Display` of a `NormalizedIp` writes.
#[derive(Clone, Copy)]
pub struct CanonicalText {
    buf: [u8; CanonicalText::MAX_LEN],
    len: usize,
}

impl CanonicalText {
    /// Longest canonical text: `ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128`.
    pub const MAX_LEN: usize = 43;

    /// The text of `net` (host bits already cleared): bare at the full length, else `/len`.
    pub(super) fn of_net(net: &IpNet) -> Self {
        let mut text = CanonicalText {
            buf: [0; Self::MAX_LEN],
            len: 0,
        };
        let (len, full) = match net {
            IpNet::V4(n) => {
                text.push_v4(n.network());
                (n.prefix_len(), 32)
            }
            IpNet::V6(n) => {
                text.push_v6(n.network());
                (n.prefix_len(), 128)
            }
        };
        if len != full {
            text.push(b'/');
            text.push_decimal(len);
        }
        text
    }

    /// The text as bytes (always ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written, so this cannot fail; the check costs a few ns and keeps the
        // crate free of `unsafe`.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    // The indexing below cannot go out of bounds: no address text is longer than MAX_LEN (the
    // property tests cover the longest forms).
    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn push_all(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Decimal without leading zeros (octets and prefix lengths both fit in a u8).
    fn push_decimal(&mut self, value: u8) {
        if value >= 100 {
            self.push(b'0' + value / 100);
        }
        if value >= 10 {
            self.push(b'0' + value / 10 % 10);
        }
        self.push(b'0' + value % 10);
    }

    /// Lowercase hex without leading zeros, as `{:x}` writes it.
    fn push_hex(&mut self, value: u16) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let significant_bits = 16 - value.leading_zeros() as usize;
        let digits = significant_bits.div_ceil(4).max(1);
        for i in (0..digits).rev() {
            self.push(DIGITS[usize::from((value >> (4 * i)) & 0xf)]);
        }
    }

    fn push_v4(&mut self, addr: Ipv4Addr) {
        let [a, b, c, d] = addr.octets();
        self.push_decimal(a);
        self.push(b'.');
        self.push_decimal(b);
        self.push(b'.');
        self.push_decimal(c);
        self.push(b'.');
        self.push_decimal(d);
    }

    /// RFC 5952, exactly as `std` writes it: the longest run of two or more zero groups (the
    /// leftmost on ties) becomes `::`, and IPv4-mapped addresses end in a dotted quad.
    fn push_v6(&mut self, addr: Ipv6Addr) {
        // Normalization turns mapped addresses into IPv4, so this is only for exact agreement
        // with `std` on every value.
        if let Some(v4) = addr.to_ipv4_mapped() {
            self.push_all(b"::ffff:");
            self.push_v4(v4);
            return;
        }
        let groups = addr.segments();
        let (mut zeros_at, mut zeros_len) = (0, 0);
        let (mut run_at, mut run_len) = (0, 0);
        for (i, &group) in groups.iter().enumerate() {
            if group != 0 {
                run_len = 0;
                continue;
            }
            if run_len == 0 {
                run_at = i;
            }
            run_len += 1;
            // Strictly longer, so the leftmost of equal runs wins.
            if run_len > zeros_len {
                (zeros_at, zeros_len) = (run_at, run_len);
            }
        }
        if zeros_len > 1 {
            self.push_groups(&groups[..zeros_at]);
            self.push_all(b"::");
            self.push_groups(&groups[zeros_at + zeros_len..]);
        } else {
            self.push_groups(&groups);
        }
    }

    fn push_groups(&mut self, groups: &[u16]) {
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                self.push(b':');
            }
            self.push_hex(group);
        }
    }
}

impl AsRef<[u8]> for CanonicalText {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<str> for CanonicalText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for CanonicalText {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CanonicalText {}

impl fmt::Debug for CanonicalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CanonicalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
