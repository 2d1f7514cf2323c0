//! Address normalization: one canonical cache identity per client.
//!
//! Attackers control the address text a cache sees (headers, Lua callers, API clients), so every
//! spelling of one client must map to one key and every ambiguous spelling must be refused rather
//! than guessed at: `010.0.0.1` is 10.0.0.1 to some parsers and 8.0.0.1 to others, and a cache
//! that guesses differently from the firewall is a bypass.
//!
//! Rules, in order:
//! - IPv4 is a strict dotted quad (no shorthand, leading zeros, hex, integers, stray dots or
//!   spaces).
//! - IPv6 is any RFC 4291 text form in any case, optionally in `[...]`, with an embedded IPv4
//!   tail allowed; zone indexes (`%eth0`) are refused because they are host-local.
//! - IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is the IPv4 address it carries.
//! - The address is widened to its aggregation prefix (IPv4 /32, IPv6 /64 by default) because an
//!   IPv6 client can rotate through its whole /64 at will.
//! - An input may itself be in CIDR form (`2001:db8:1:2::/64`), as long as it names no more than
//!   one cache entry; this makes normalization idempotent, so canonical keys can be fed back.
//!
//! The canonical text is RFC 5952 for IPv6 and dotted quad for IPv4, with `/len` appended only
//! when the aggregation prefix is shorter than the full address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

pub use text::CanonicalText;

/// Longest address text we will even look at; the longest valid form is well under this.
const MAX_INPUT_LEN: usize = 64;

/// Why an address text was refused; the message always quotes the offending input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NormalizeError {
    /// The text is empty.
    #[error("empty address")]
    Empty,
    /// The text is longer than any valid address.
    #[error("address too long ({0} bytes)")]
    TooLong(usize),
    /// The text is not a strict IPv4 or IPv6 address.
    #[error("invalid IP address '{0}'")]
    Invalid(String),
    /// The IPv6 address carries a zone index, which is meaningful only on one host.
    #[error("IPv6 zone index not allowed in '{0}'")]
    Zone(String),
    /// The `/len` suffix is not a valid prefix length for the family.
    #[error("invalid prefix length in '{0}'")]
    BadPrefix(String),
    /// The CIDR names a network wider than one cache entry.
    #[error("'{input}' is wider than one cache entry (/{max} for this address family)")]
    TooWide {
        /// The text as given.
        input: String,
        /// The aggregation prefix length in force.
        max: u8,
    },
}

/// Why an aggregation setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AggregationError {
    /// IPv4 prefix outside 16..=32.
    #[error("ipv4 prefix must be 16..32, got {0}")]
    V4(u8),
    /// IPv6 prefix outside 32..=128.
    #[error("ipv6 prefix must be 32..128, got {0}")]
    V6(u8),
}

/// How widely one cache entry covers an address family: the network prefix lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregation {
    v4: u8,
    v6: u8,
}

impl Aggregation {
    /// IPv4 per address, IPv6 per /64: the defaults of the module and the service.
    pub const DEFAULT: Aggregation = Aggregation { v4: 32, v6: 64 };

    /// Validated prefix lengths: IPv4 16..=32, IPv6 32..=128 (wider would lump strangers together).
    pub fn new(v4: u8, v6: u8) -> Result<Self, AggregationError> {
        if !(16..=32).contains(&v4) {
            return Err(AggregationError::V4(v4));
        }
        if !(32..=128).contains(&v6) {
            return Err(AggregationError::V6(v6));
        }
        Ok(Aggregation { v4, v6 })
    }

    /// The IPv4 prefix length.
    pub fn v4(&self) -> u8 {
        self.v4
    }

    /// The IPv6 prefix length.
    pub fn v6(&self) -> u8 {
        self.v6
    }
}

impl Default for Aggregation {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A client's cache identity: the network it was aggregated into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NormalizedIp {
    net: IpNet,
}

impl NormalizedIp {
    /// The network this identity covers (host bits cleared).
    pub fn net(&self) -> IpNet {
        self.net
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.net.network()
    }

    /// The canonical text on the stack, written without `core::fmt` (it is on every key's path).
    pub fn canonical_text(&self) -> CanonicalText {
        CanonicalText::of_net(&self.net)
    }

    /// Appends the canonical text to `out` without an intermediate allocation.
    pub fn write_canonical(&self, out: &mut String) {
        out.push_str(self.canonical_text().as_str());
    }
}

impl fmt::Display for NormalizedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so width and alignment apply to the whole text, `/len` included.
        f.pad(self.canonical_text().as_str())
    }
}

/// Normalizes address text (see the module docs for the rules) into its cache identity.
pub fn normalize(input: &str, agg: Aggregation) -> Result<NormalizedIp, NormalizeError> {
    if input.is_empty() {
        return Err(NormalizeError::Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(NormalizeError::TooLong(input.len()));
    }
    let (addr_text, prefix_text) = match input.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (input, None),
    };
    let addr = parse_addr(addr_text, input)?;
    let given_len = match prefix_text {
        None => None,
        Some(p) => Some(parse_prefix_len(p, input)?),
    };
    let net = match addr {
        IpAddr::V4(v4) => {
            let len = check_len(given_len, 32, agg.v4, input)?;
            IpNet::V4(Ipv4Net::new_assert(v4, len).trunc())
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                // A mapped address's prefix counts the 96 bits of ::ffff:0:0/96.
                let v4_len = match given_len {
                    None => None,
                    Some(l) if (96..=128).contains(&l) => Some(l - 96),
                    Some(_) => return Err(NormalizeError::BadPrefix(input.to_owned())),
                };
                let len = check_len(v4_len, 32, agg.v4, input)?;
                IpNet::V4(Ipv4Net::new_assert(v4, len).trunc())
            }
            None => {
                let len = check_len(given_len, 128, agg.v6, input)?;
                IpNet::V6(Ipv6Net::new_assert(v6, len).trunc())
            }
        },
    };
    Ok(NormalizedIp { net })
}

/// The Redis key for an identity: `<prefix><canonical>`.
pub fn cache_key(prefix: &str, ip: &NormalizedIp) -> String {
    let mut key = String::with_capacity(prefix.len() + 44);
    key.push_str(prefix);
    ip.write_canonical(&mut key);
    key
}

fn parse_addr(text: &str, input: &str) -> Result<IpAddr, NormalizeError> {
    let invalid = || NormalizeError::Invalid(input.to_owned());
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(invalid)?;
        if inner.contains('%') {
            return Err(NormalizeError::Zone(input.to_owned()));
        }
        // Brackets exist only for IPv6; `[192.0.2.1]` is not a form anyone sends honestly.
        return ipv6::parse(inner.as_bytes())
            .map(IpAddr::V6)
            .ok_or_else(invalid);
    }
    if text.contains(':') {
        if text.contains('%') {
            return Err(NormalizeError::Zone(input.to_owned()));
        }
        return ipv6::parse(text.as_bytes())
            .map(IpAddr::V6)
            .ok_or_else(invalid);
    }
    // std's parser is already strict: exactly four decimal octets, no leading zeros.
    text.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .map_err(|_| invalid())
}

fn parse_prefix_len(text: &str, input: &str) -> Result<u8, NormalizeError> {
    let bad = || NormalizeError::BadPrefix(input.to_owned());
    let digits_only =
        !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit());
    let no_leading_zero = text == "0" || !text.starts_with('0');
    if !digits_only || !no_leading_zero {
        return Err(bad());
    }
    text.parse::<u8>().map_err(|_| bad())
}

fn check_len(given: Option<u8>, full: u8, agg: u8, input: &str) -> Result<u8, NormalizeError> {
    match given {
        None => Ok(agg),
        Some(l) if l > full => Err(NormalizeError::BadPrefix(input.to_owned())),
        Some(l) if l < agg => Err(NormalizeError::TooWide {
            input: input.to_owned(),
            max: agg,
        }),
        Some(_) => Ok(agg),
    }
}

mod ipv6;
mod text;

#[cfg(test)]
mod tests;
