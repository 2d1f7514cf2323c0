//! The lean read (`IPCHECK.LGET <key>`): the module answers only the key's remaining milliseconds
//! and the stored value, in one bulk string written by [`lean_reply`], and the reader decodes it
//! here ([`decode_lean_reply`]), with the very functions the module's
//! own `IPCHECK GET` uses ([`decode_entry_view`], [`freshness`], [`ttl_secs`]). So Redis spends
//! its time on what only Redis can do (find the key), and what an entry means is written once.
//!
//! The key is named by the reader, built from [`key_parts`], the same parts the module's
//! `IPCHECK KEY` joins: `<prefix><canonical>`, or `<prefix>{<canonical>}` in cluster mode.

use crate::encoding::{decode_entry_view, DecodeError, ViewScratch};
use crate::freshness::{freshness, Freshness};
use crate::stored_buf::StoredBuf;
use crate::verdict::Entry;

/// The commands' names: `IPCHECK.LGET <key>` and `IPCHECK.LSET <key> <stored value> <seconds>`.
pub use crate::protocol::{LEAN_READ, LEAN_WRITE};

/// What `IPCHECK.LGET` answers for a key without expiry (as Redis's `PTTL` does).
pub const NO_EXPIRY_MS: i64 = -1;

/// Between the milliseconds and the stored value in a lean reply. The milliseconds are an
/// integer, so the first separator ends them, whatever bytes the value holds.
const SEPARATOR: u8 = b' ';

/// The lean read's reply to a hit: `<milliseconds left> <stored value>` (`86399000 321;0`), one
/// bulk string, which costs Redis less to send than a two-element array (bench/README.md). The
/// module writes it here and the reader splits it with [`decode_lean_reply`]; on the stack
/// unless the value is unusually long.
pub fn lean_reply(pttl_ms: i64, value: &[u8]) -> StoredBuf {
    let mut digits = itoa::Buffer::new();
    StoredBuf::joined(&[digits.format(pttl_ms).as_bytes(), &[SEPARATOR], value])
}

/// Splits a lean reply into the stored value and the milliseconds left.
pub fn split_lean_reply(reply: &[u8]) -> Result<(&[u8], i64), DecodeError> {
    let at = reply
        .iter()
        .position(|&b| b == SEPARATOR)
        .ok_or(DecodeError::new("lean reply without a separator"))?;
    let (ms, value) = (&reply[..at], &reply[at + 1..]);
    let ms = std::str::from_utf8(ms)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(DecodeError::new(
            "lean reply's milliseconds are not an integer",
        ))?;
    Ok((value, ms))
}

/// Decodes a lean reply to a hit (see [`lean_reply`]) as [`decode_lean`] does.
pub fn decode_lean_reply(reply: &[u8]) -> Result<LeanEntry, DecodeError> {
    let (value, ms) = split_lean_reply(reply)?;
    decode_lean(value, ms)
}

/// The pieces of an entry's key, in order: prefix, `{` or nothing, canonical text, `}` or
/// nothing. In cluster mode the canonical text is the hash tag, so the key lives in the slot a
/// client routes the address to.
pub fn key_parts<'a>(prefix: &'a [u8], canonical: &'a [u8], cluster: bool) -> [&'a [u8]; 4] {
    if cluster {
        [prefix, b"{", canonical, b"}"]
    } else {
        [prefix, b"", canonical, b""]
    }
}

/// The key of `canonical` as a string (the service's side of [`key_parts`]).
pub fn entry_key(prefix: &str, canonical: &str, cluster: bool) -> String {
    let parts = key_parts(prefix.as_bytes(), canonical.as_bytes(), cluster);
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.extend_from_slice(part);
    }
    // Joined from two strings and ASCII braces.
    String::from_utf8(key).unwrap_or_default()
}

/// Whole seconds left, rounded as Redis's `TTL` rounds (to the nearest second); -1 without
/// expiry. `IPCHECK GET`'s `ttl` field.
pub fn ttl_secs(remaining_ms: Option<i64>) -> i64 {
    remaining_ms.map_or(-1, |ms| (ms + 500) / 1000)
}

/// An entry read with `IPCHECK.LGET`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeanEntry {
    /// The entry.
    pub entry: Entry,
    /// Seconds left until the key is gone, as `IPCHECK GET`'s `ttl` (-1: no expiry).
    pub ttl_secs: i64,
    /// Fresh or stale, as `IPCHECK GET`'s `fresh` and `fresh_ttl`.
    pub freshness: Freshness,
}

/// Decodes the two parts of an `IPCHECK.LGET` hit: the stored value and the key's remaining
/// milliseconds ([`NO_EXPIRY_MS`] for none). Refuses what `IPCHECK GET` would call corrupt, and
/// a remaining time no key can have.
pub fn decode_lean(value: &[u8], pttl_ms: i64) -> Result<LeanEntry, DecodeError> {
    let remaining_ms = match pttl_ms {
        NO_EXPIRY_MS => None,
        ms if ms >= 0 => Some(ms),
        _ => return Err(DecodeError::new("negative remaining time")),
    };
    let mut scratch = ViewScratch::new();
    let view = decode_entry_view(value, &mut scratch)?;
    Ok(LeanEntry {
        entry: view.to_entry()?,
        ttl_secs: ttl_secs(remaining_ms),
        freshness: freshness(remaining_ms, view.stale_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::encode_stored;
    use crate::verdict::{Reasons, Source, Verdict};
    use proptest::prelude::*;

    #[test]
    fn keys() {
        assert_eq!(
            entry_key("ipcheck:", "192.0.2.1", false),
            "ipcheck:192.0.2.1"
        );
        assert_eq!(
            entry_key("ipcheck:", "2001:db8:1:2::/64", true),
            "ipcheck:{2001:db8:1:2::/64}"
        );
    }

    #[test]
    fn a_hit_reads_as_get_reports_it() {
        let lean = decode_lean(b"321", 41_600).unwrap();
        assert_eq!(lean.entry.verdict, Verdict::Block);
        assert_eq!(lean.entry.reasons.as_str(), "vpn,tor");
        assert_eq!(lean.entry.source.as_str(), "api");
        // Rounded as TTL: 41.6 s is 42.
        assert_eq!(lean.ttl_secs, 42);
        assert_eq!(
            lean.freshness,
            Freshness {
                fresh: true,
                fresh_ttl_secs: 42
            }
        );
    }

    #[test]
    fn stale_window_and_no_expiry() {
        let e = Entry {
            verdict: Verdict::Challenge,
            reasons: Reasons::parse("spam").unwrap(),
            source: Source::parse("feed").unwrap(),
            attributes: crate::Attributes::NONE,
        };
        let stored = encode_stored(&e, 60);
        let lean = decode_lean(stored.as_bytes(), 30_000).unwrap();
        assert_eq!(lean.entry, e);
        assert_eq!(lean.ttl_secs, 30);
        assert!(!lean.freshness.fresh);
        let lean = decode_lean(stored.as_bytes(), 90_000).unwrap();
        assert_eq!(lean.freshness.fresh_ttl_secs, 30);
        let pin = decode_lean(b"9", NO_EXPIRY_MS).unwrap();
        assert!(pin.entry.source.is_manual());
        assert_eq!(pin.ttl_secs, -1);
        assert_eq!(pin.freshness.fresh_ttl_secs, -1);
    }

    #[test]
    fn refuses_what_get_refuses() {
        assert!(decode_lean(b"3", 1000).is_err());
        assert!(decode_lean(b"not an entry", 1000).is_err());
        assert!(decode_lean(b"1", -2).is_err());
    }

    #[test]
    fn replies_split_back_into_what_was_written() {
        for (ms, value) in [
            (86_399_000, &b"321;0"[..]),
            (NO_EXPIRY_MS, b"9"),
            (0, b""),
            (i64::MAX, b"a value with spaces"),
            (i64::MIN, b"x"),
        ] {
            let reply = lean_reply(ms, value);
            assert_eq!(split_lean_reply(reply.as_bytes()), Ok((value, ms)));
        }
        assert_eq!(lean_reply(41_600, b"321").as_bytes(), b"41600 321");
        let lean = decode_lean_reply(b"41600 321").unwrap();
        assert_eq!(lean, decode_lean(b"321", 41_600).unwrap());
        for bad in [&b""[..], b"321", b"x 321", b" 321", b"1.5 321"] {
            assert!(decode_lean_reply(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), ms in any::<i64>()) {
            let _ = decode_lean(&bytes, ms);
            let _ = decode_lean_reply(&bytes);
        }

        #[test]
        fn any_reply_round_trips(value in proptest::collection::vec(any::<u8>(), 0..100), ms in any::<i64>()) {
            let reply = lean_reply(ms, &value);
            prop_assert_eq!(split_lean_reply(reply.as_bytes()), Ok((&value[..], ms)));
        }
    }
}
