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
use std::net::IpAddr;

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
    normalize_bytes(input.as_bytes(), agg)
}

/// [`normalize`] for bytes of unknown encoding (non-UTF-8 is refused as invalid, quoted lossily).
pub fn normalize_bytes(input: &[u8], agg: Aggregation) -> Result<NormalizedIp, NormalizeError> {
    identify(input, agg).map_err(|refusal| refusal.quoting(input))
}

/// Whether `input` is, byte for byte, the canonical text [`normalize_bytes`] would give it.
///
/// The quick answer for the commonest case, an IPv4 host address kept per address: a strict
/// dotted quad has exactly one spelling, so the text is its own canonical form and a caller can
/// build the key from it without formatting it again. `false` means "not known to be": the
/// caller normalizes as usual (every other form, and every other aggregation).
pub fn is_own_canonical(input: &[u8], agg: Aggregation) -> bool {
    agg.v4 == 32 && ipv4::parse(input).is_some()
}

/// Why an input was refused, before the input is copied into a [`NormalizeError`].
///
/// The parsers work on bytes and never look at encodings; the text for the message is made once,
/// only on the error path, so the path to success has neither a UTF-8 check nor an allocation.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Empty,
    TooLong,
    Invalid,
    Zone,
    BadPrefix,
    TooWide(u8),
}

impl Refusal {
    fn quoting(self, input: &[u8]) -> NormalizeError {
        let text = match std::str::from_utf8(input) {
            Ok(text) => text.to_owned(),
            // Every accepted form is ASCII, so non-UTF-8 only ever gets here. Callers used to
            // check UTF-8 before normalizing and refuse such input as invalid whatever its shape
            // (even when too long); keeping that means the error never depends on the caller.
            Err(_) => return NormalizeError::Invalid(String::from_utf8_lossy(input).into_owned()),
        };
        match self {
            Refusal::Empty => NormalizeError::Empty,
            Refusal::TooLong => NormalizeError::TooLong(input.len()),
            Refusal::Invalid => NormalizeError::Invalid(text),
            Refusal::Zone => NormalizeError::Zone(text),
            Refusal::BadPrefix => NormalizeError::BadPrefix(text),
            Refusal::TooWide(max) => NormalizeError::TooWide { input: text, max },
        }
    }
}

fn identify(input: &[u8], agg: Aggregation) -> Result<NormalizedIp, Refusal> {
    if input.is_empty() {
        return Err(Refusal::Empty);
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(Refusal::TooLong);
    }
    // `/` is ASCII, and UTF-8 never uses ASCII bytes inside a multi-byte character, so splitting
    // bytes here splits valid text exactly where splitting the `str` did.
    let (addr_text, prefix_text) = match input.iter().position(|&b| b == b'/') {
        Some(at) => (&input[..at], input.get(at + 1..)),
        None => (input, None),
    };
    let addr = parse_addr(addr_text)?;
    let given_len = match prefix_text {
        None => None,
        Some(p) => Some(parse_prefix_len(p)?),
    };
    let net = match addr {
        IpAddr::V4(v4) => {
            let len = check_len(given_len, 32, agg.v4)?;
            IpNet::V4(Ipv4Net::new_assert(v4, len).trunc())
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                // A mapped address's prefix counts the 96 bits of ::ffff:0:0/96.
                let v4_len = match given_len {
                    None => None,
                    Some(l) if (96..=128).contains(&l) => Some(l - 96),
                    Some(_) => return Err(Refusal::BadPrefix),
                };
                let len = check_len(v4_len, 32, agg.v4)?;
                IpNet::V4(Ipv4Net::new_assert(v4, len).trunc())
            }
            None => {
                let len = check_len(given_len, 128, agg.v6)?;
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

fn parse_addr(text: &[u8]) -> Result<IpAddr, Refusal> {
    // The common case first: a dotted quad contains neither `[` nor `:`, so whichever rule below
    // would have applied to it, it is this one.
    if let Some(v4) = ipv4::parse(text) {
        return Ok(IpAddr::V4(v4));
    }
    if let Some(inner) = text.strip_prefix(b"[") {
        let inner = inner.strip_suffix(b"]").ok_or(Refusal::Invalid)?;
        if inner.contains(&b'%') {
            return Err(Refusal::Zone);
        }
        // Brackets exist only for IPv6; `[192.0.2.1]` is not a form anyone sends honestly.
        return ipv6::parse(inner).map(IpAddr::V6).ok_or(Refusal::Invalid);
    }
    if text.contains(&b':') {
        if text.contains(&b'%') {
            return Err(Refusal::Zone);
        }
        return ipv6::parse(text).map(IpAddr::V6).ok_or(Refusal::Invalid);
    }
    Err(Refusal::Invalid)
}

fn parse_prefix_len(text: &[u8]) -> Result<u8, Refusal> {
    let digits_only = !text.is_empty() && text.len() <= 3 && text.iter().all(u8::is_ascii_digit);
    let no_leading_zero = text == b"0" || text.first() != Some(&b'0');
    if !digits_only || !no_leading_zero {
        return Err(Refusal::BadPrefix);
    }
    // At most three digits, so at most 999: no overflow in a u16.
    let value = text
        .iter()
        .fold(0u16, |value, &d| value * 10 + u16::from(d - b'0'));
    u8::try_from(value).map_err(|_| Refusal::BadPrefix)
}

fn check_len(given: Option<u8>, full: u8, agg: u8) -> Result<u8, Refusal> {
    match given {
        None => Ok(agg),
        Some(l) if l > full => Err(Refusal::BadPrefix),
        Some(l) if l < agg => Err(Refusal::TooWide(agg)),
        Some(_) => Ok(agg),
    }
}

mod ipv4;
mod ipv6;
mod network;
mod text;

pub use network::normalize_network;

#[cfg(test)]
mod tests;
