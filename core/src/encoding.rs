//! The stored form of an [`Entry`]: a plain Redis string, as small as a bare verdict byte.
//!
//! A plain string keeps persistence, replication, eviction, `MEMORY USAGE` and every Redis tool
//! working with no custom module type. Two forms share one namespace:
//!
//! - **Compact** (nearly every entry): the decimal integer
//!   `verdict | source << 2 | reasons << 6`, where `verdict` is 0 allow, 1 block, 2 challenge;
//!   `source` is the index in [`KNOWN_SOURCES`]; `reasons` is a bit set over [`KNOWN_REASONS`].
//!   Used when the source is known and the reasons are known tokens, each once, in vocabulary
//!   order, so decoding gives back the exact text that was stored. Redis keeps short integer
//!   strings in its integer encoding, so such a value costs no more than a 6-byte string.
//!   Example: `block`, `vpn,tor`, `api` is `1 | 0 << 2 | 0b101 << 6` = `321`.
//! - **Text** (anything else): `<v>:<source>:<reasons>` with `v` one of `a`, `b`, `c`, e.g.
//!   `b:my-feed:spam,vpn`. Tokens never contain `:`, so the split is unambiguous, and a text
//!   value never parses as an integer.

use thiserror::Error;

use crate::verdict::{Entry, Reasons, Source, Verdict, KNOWN_REASONS, KNOWN_SOURCES};

const SOURCE_SHIFT: u32 = 2;
const SOURCE_BITS: u64 = 0b1111;
const REASON_SHIFT: u32 = 6;

/// A stored value that is not an ipcheck entry (written by something else, or corrupted).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("value is not an ipcheck entry: {0}")]
pub struct DecodeError(&'static str);

fn verdict_code(v: Verdict) -> u64 {
    match v {
        Verdict::Allow => 0,
        Verdict::Block => 1,
        Verdict::Challenge => 2,
    }
}

fn compact(entry: &Entry) -> Option<u64> {
    let source = KNOWN_SOURCES
        .iter()
        .position(|s| *s == entry.source.as_str())? as u64;
    let mut mask = 0u64;
    let mut last: Option<usize> = None;
    for token in entry.reasons.iter() {
        let pos = KNOWN_REASONS.iter().position(|r| *r == token)?;
        // Strictly increasing positions: in vocabulary order and no duplicates, so the
        // bit set decodes back to the very same text.
        if last.is_some_and(|l| pos <= l) {
            return None;
        }
        last = Some(pos);
        mask |= 1 << pos;
    }
    Some(verdict_code(entry.verdict) | source << SOURCE_SHIFT | mask << REASON_SHIFT)
}

/// Encodes an entry into its stored string (compact integer when possible).
pub fn encode_entry(entry: &Entry) -> String {
    match compact(entry) {
        Some(n) => n.to_string(),
        None => {
            let v = match entry.verdict {
                Verdict::Allow => 'a',
                Verdict::Block => 'b',
                Verdict::Challenge => 'c',
            };
            format!("{v}:{}:{}", entry.source, entry.reasons)
        }
    }
}

/// Decodes a stored value; refuses anything [`encode_entry`] could not have written.
pub fn decode_entry(value: &[u8]) -> Result<Entry, DecodeError> {
    let text = std::str::from_utf8(value).map_err(|_| DecodeError("not UTF-8"))?;
    if !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) {
        return decode_compact(text);
    }
    decode_text(text)
}

fn decode_compact(text: &str) -> Result<Entry, DecodeError> {
    if text.len() > 1 && text.starts_with('0') {
        return Err(DecodeError("integer with a leading zero"));
    }
    let n: u64 = text
        .parse()
        .map_err(|_| DecodeError("integer out of range"))?;
    let verdict = match n & 0b11 {
        0 => Verdict::Allow,
        1 => Verdict::Block,
        2 => Verdict::Challenge,
        _ => return Err(DecodeError("unknown verdict code")),
    };
    let source_idx = ((n >> SOURCE_SHIFT) & SOURCE_BITS) as usize;
    let source = KNOWN_SOURCES
        .get(source_idx)
        .ok_or(DecodeError("unknown source code"))?;
    let mask = n >> REASON_SHIFT;
    if mask >> KNOWN_REASONS.len() != 0 {
        return Err(DecodeError("unknown reason bits"));
    }
    let reasons = KNOWN_REASONS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| *r);
    Ok(Entry {
        verdict,
        reasons: Reasons::from_tokens(reasons).map_err(|_| DecodeError("bad reasons"))?,
        source: Source::parse(source).map_err(|_| DecodeError("bad source"))?,
    })
}

fn decode_text(text: &str) -> Result<Entry, DecodeError> {
    let mut parts = text.splitn(3, ':');
    let (Some(v), Some(source), Some(reasons)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(DecodeError("not an integer nor v:source:reasons"));
    };
    let verdict = match v {
        "a" => Verdict::Allow,
        "b" => Verdict::Block,
        "c" => Verdict::Challenge,
        _ => return Err(DecodeError("unknown verdict letter")),
    };
    Ok(Entry {
        verdict,
        source: Source::parse(source).map_err(|_| DecodeError("bad source token"))?,
        reasons: Reasons::parse(reasons).map_err(|_| DecodeError("bad reason list"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(v: Verdict, reasons: &str, source: &str) -> Entry {
        Entry {
            verdict: v,
            reasons: Reasons::parse(reasons).unwrap(),
            source: Source::parse(source).unwrap(),
        }
    }

    #[test]
    fn documented_example() {
        assert_eq!(
            encode_entry(&entry(Verdict::Block, "vpn,tor", "api")),
            "321"
        );
        assert_eq!(encode_entry(&entry(Verdict::Allow, "", "api")), "0");
        assert_eq!(encode_entry(&entry(Verdict::Allow, "", "manual")), "8");
    }

    #[test]
    fn compact_values_fit_redis_small_strings() {
        // Every known combination stays a short integer (at most 5 digits).
        let all = KNOWN_REASONS.join(",");
        let v = encode_entry(&entry(Verdict::Challenge, &all, "manual"));
        assert!(v.len() <= 5, "{v}");
    }

    #[test]
    fn text_form_for_unusual_entries() {
        assert_eq!(
            encode_entry(&entry(Verdict::Block, "tor,vpn", "api")),
            "b:api:tor,vpn"
        );
        assert_eq!(
            encode_entry(&entry(Verdict::Block, "vpn,vpn", "api")),
            "b:api:vpn,vpn"
        );
        assert_eq!(
            encode_entry(&entry(Verdict::Challenge, "spam", "feed")),
            "c:feed:spam"
        );
        assert_eq!(encode_entry(&entry(Verdict::Allow, "", "feed")), "a:feed:");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            &b""[..],
            b"x",
            b"07",
            b"3",
            b"99999999999999999999999",
            b"b:api",
            b"z:api:vpn",
            b"b:API:vpn",
            b"b:api:VPN",
            b"\xff",
            b"65536",
            b"60",
        ] {
            assert!(
                decode_entry(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        let verdict = prop_oneof![
            Just(Verdict::Allow),
            Just(Verdict::Block),
            Just(Verdict::Challenge)
        ];
        let token = prop_oneof![
            proptest::sample::select(KNOWN_REASONS.to_vec()).prop_map(str::to_owned),
            "[a-z0-9_-]{1,8}",
        ];
        let reasons = proptest::collection::vec(token, 0..6).prop_map(|v| v.join(","));
        let source = prop_oneof![
            proptest::sample::select(KNOWN_SOURCES.to_vec()).prop_map(str::to_owned),
            "[a-z0-9_-]{1,8}",
        ];
        (verdict, reasons, source).prop_map(|(v, r, s)| entry(v, &r, &s))
    }

    proptest! {
        #[test]
        fn round_trip(e in arb_entry()) {
            prop_assert_eq!(decode_entry(encode_entry(&e).as_bytes()), Ok(e));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_entry(&bytes);
        }
    }
}
