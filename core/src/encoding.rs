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

use crate::verdict::{
    check_reasons, check_source, Entry, Reasons, Source, Verdict, KNOWN_REASONS, KNOWN_SOURCES,
};

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
    let mut scratch = ViewScratch::new();
    let view = decode_entry_view(value, &mut scratch)?;
    Ok(Entry {
        verdict: view.verdict,
        reasons: Reasons::parse(view.reasons).map_err(|_| DecodeError("bad reason list"))?,
        source: Source::parse(view.source).map_err(|_| DecodeError("bad source token"))?,
    })
}

/// An entry decoded without allocating: its text borrowed from the stored value, a static
/// vocabulary, or a [`ViewScratch`]. For hot-path readers that only look at or print the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// What to do.
    pub verdict: Verdict,
    /// The reason list exactly as [`Reasons::as_str`] would give it, e.g. `vpn,tor`.
    pub reasons: &'a str,
    /// The source token, as [`Source::as_str`] would give it.
    pub source: &'a str,
}

impl EntryView<'_> {
    /// Whether this is an operator's pin, as [`Source::is_manual`].
    pub fn is_manual(&self) -> bool {
        self.source == Source::MANUAL
    }
}

/// Room for the reason list of a compact value (every known reason fits with space to spare).
pub struct ViewScratch([u8; 128]);

impl ViewScratch {
    /// An empty scratch buffer.
    pub fn new() -> Self {
        ViewScratch([0; 128])
    }
}

impl Default for ViewScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes exactly what [`decode_entry`] decodes (same values accepted, same text out), without
/// allocating; `scratch` holds the reason list of a compact value. [`decode_entry`] is built on it.
pub fn decode_entry_view<'a>(
    value: &'a [u8],
    scratch: &'a mut ViewScratch,
) -> Result<EntryView<'a>, DecodeError> {
    let text = std::str::from_utf8(value).map_err(|_| DecodeError("not UTF-8"))?;
    if is_compact_shape(text) {
        let (verdict, source_idx, mask) = compact_parts(text)?;
        return Ok(EntryView {
            verdict,
            reasons: join_known_reasons(mask, &mut scratch.0),
            source: KNOWN_SOURCES[source_idx],
        });
    }
    // The text form is rare: validate it the allocating way, then borrow the same fields,
    // which decode_text keeps verbatim.
    decode_text(text)
}

fn is_compact_shape(text: &str) -> bool {
    !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Writes the known reasons in `mask` comma-separated into `out` (a mask from [`compact_parts`]
/// only has bits for known reasons, and all of them together fit in `out`).
fn join_known_reasons(mask: u64, out: &mut [u8; 128]) -> &str {
    let mut len = 0;
    for (i, reason) in KNOWN_REASONS.iter().enumerate() {
        if mask & (1 << i) == 0 {
            continue;
        }
        if len > 0 {
            out[len] = b',';
            len += 1;
        }
        out[len..len + reason.len()].copy_from_slice(reason.as_bytes());
        len += reason.len();
    }
    // Only ASCII vocabulary bytes were written.
    std::str::from_utf8(&out[..len]).unwrap_or("")
}

/// Validates a compact value: verdict, index into [`KNOWN_SOURCES`], reason bit set.
fn compact_parts(text: &str) -> Result<(Verdict, usize, u64), DecodeError> {
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
    if source_idx >= KNOWN_SOURCES.len() {
        return Err(DecodeError("unknown source code"));
    }
    let mask = n >> REASON_SHIFT;
    if mask >> KNOWN_REASONS.len() != 0 {
        return Err(DecodeError("unknown reason bits"));
    }
    Ok((verdict, source_idx, mask))
}

fn decode_text(text: &str) -> Result<EntryView<'_>, DecodeError> {
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
    check_source(source).map_err(|_| DecodeError("bad source token"))?;
    check_reasons(reasons).map_err(|_| DecodeError("bad reason list"))?;
    Ok(EntryView {
        verdict,
        reasons,
        source,
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
    fn view_of_documented_example() {
        let mut scratch = ViewScratch::new();
        let v = decode_entry_view(b"321", &mut scratch).unwrap();
        assert_eq!(
            (v.verdict, v.reasons, v.source),
            (Verdict::Block, "vpn,tor", "api")
        );
        let all = KNOWN_REASONS.join(",");
        let stored = encode_entry(&entry(Verdict::Challenge, &all, "manual"));
        let v = decode_entry_view(stored.as_bytes(), &mut scratch).unwrap();
        assert_eq!((v.reasons, v.source), (all.as_str(), "manual"));
        assert!(v.is_manual());
        assert!(!decode_entry_view(b"1", &mut scratch).unwrap().is_manual());
    }

    #[test]
    fn compact_values_fit_redis_small_strings() {
        // Every known combination stays a short integer (at most 6 digits).
        let all = KNOWN_REASONS.join(",");
        let v = encode_entry(&entry(Verdict::Challenge, &all, "manual"));
        assert!(v.len() <= 6, "{v}");
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
            // Reason bit 12: past the vocabulary.
            b"262144",
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

        #[test]
        fn view_decodes_what_decode_entry_decodes(e in arb_entry()) {
            let stored = encode_entry(&e);
            let mut scratch = ViewScratch::new();
            let view = decode_entry_view(stored.as_bytes(), &mut scratch).unwrap();
            prop_assert_eq!(view.verdict, e.verdict);
            prop_assert_eq!(view.reasons, e.reasons.as_str());
            prop_assert_eq!(view.source, e.source.as_str());
        }

        #[test]
        fn view_accepts_exactly_what_decode_entry_accepts(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..40),
                "[0-9]{1,21}".prop_map(String::into_bytes),
                "[abcx]:[a-z_:-]{0,6}:[a-z,]{0,12}".prop_map(String::into_bytes),
            ]
        ) {
            let mut scratch = ViewScratch::new();
            match (decode_entry(&bytes), decode_entry_view(&bytes, &mut scratch)) {
                (Ok(e), Ok(v)) => {
                    prop_assert_eq!(v.verdict, e.verdict);
                    prop_assert_eq!(v.reasons, e.reasons.as_str());
                    prop_assert_eq!(v.source, e.source.as_str());
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "decode_entry {:?} vs view {:?}", a, b),
            }
        }
    }
}
