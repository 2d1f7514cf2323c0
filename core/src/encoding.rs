//! The stored form of an [`Entry`]: a plain Redis string, as small as a bare verdict byte.
//!
//! A plain string keeps persistence, replication, eviction, `MEMORY USAGE` and every Redis tool
//! working with no custom module type. Two forms share one namespace:
//!
//! - **Compact** (nearly every entry): the decimal integer
//!   `verdict | source << 2 | reasons << 6`, where `verdict` is 0 allow, 1 block, 2 challenge;
//!   `source` is the index in [`KNOWN_SOURCES`]; `reasons` is a bit set over
//!   [`crate::vocabulary::KNOWN_REASONS`].
//!   Used when the source is known and the reasons are known tokens, each once, in vocabulary
//!   order, so decoding gives back the exact text that was stored. Redis keeps short integer
//!   strings in its integer encoding, so such a value costs no more than a 6-byte string.
//!   Example: `block`, `vpn,tor`, `api` is `1 | 0 << 2 | 0b101 << 6` = `321`.
//!   An entry with a stale window (see [`crate::freshness`]) adds `stale_secs << 38`: bits 6..38
//!   stay reserved for 32 reason tokens, and the window (at most [`MAX_STALE`], 25 bits) ends
//!   below bit 63, so the value is still one integer Redis keeps in a single small allocation.
//!   An entry without one (everything written before stale windows existed) is unchanged.
//!   A reason bit the vocabulary does not know (a newer writer's) is accepted and decodes to the
//!   token `unknown-<bit>`, which encodes back to the same bit: a rewrite keeps it, policies
//!   ignore it (see [`crate::vocabulary`]).
//! - **Text** (anything else): `<v>:<source>:<reasons>` with `v` one of `a`, `b`, `c`, e.g.
//!   `b:my-feed:spam,vpn`, followed by `:<stale seconds>` when there is a stale window, e.g.
//!   `b:my-feed:spam:604800`. Tokens never contain `:`, so the split is unambiguous, and a text
//!   value never parses as an integer.
//!
//! A manual pin never has a stale window (a pin is final until it expires): [`encode_stored`]
//! drops it and the decoders refuse a value that carries one.
//!
//! **Attributes** (country, AS number, score: [`Attributes`]): an entry that knows any of them
//! is written as the form above *without* its stale window, then
//! `;<stale seconds>;<country>;<asn>;<score>`, each attribute empty when unknown. Example:
//! `block`, `vpn,tor`, `api`, a day's stale window, `US`, AS 13335, score 87 is
//! `321;86400;US;13335;87` (21 bytes: Redis keeps it in one allocation of the size class a
//! short value takes, see bench/README.md "Memory"). The window moves to the suffix because
//! inside the integer it would make it 17 to 19 digits. Tokens and the text form never contain
//! `;`, so the first `;` always starts the suffix. A reader ignores fields after the score (a
//! newer writer's), so mixed versions never refuse each other's entries; an entry without
//! attributes is written exactly as before they existed.

use thiserror::Error;

use crate::facts::{Asn, Attributes, Country, Score};
use crate::verdict::{check_reasons, check_source, Entry, Reasons, Source, Verdict, KNOWN_SOURCES};
use crate::vocabulary::{self, MAX_KNOWN_TEXT, REASON_BITS};

const SOURCE_SHIFT: u32 = 2;
const SOURCE_BITS: u64 = 0b1111;
const REASON_SHIFT: u32 = 6;
const STALE_SHIFT: u32 = REASON_SHIFT + REASON_BITS;

/// Longest stale window, in seconds (one year, as `EX`); fits the 25 bits the compact form has.
pub const MAX_STALE: u32 = 31_536_000;

/// A stored value that is not an ipcheck entry (written by something else, or corrupted).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("value is not an ipcheck entry: {0}")]
pub struct DecodeError(&'static str);

impl DecodeError {
    /// An error saying what about the value is wrong.
    pub(crate) fn new(what: &'static str) -> Self {
        DecodeError(what)
    }
}

fn verdict_code(v: Verdict) -> u64 {
    match v {
        Verdict::Allow => 0,
        Verdict::Block => 1,
        Verdict::Challenge => 2,
    }
}

fn compact(entry: &Entry, stale_secs: u32) -> Option<u64> {
    let source = KNOWN_SOURCES
        .iter()
        .position(|s| *s == entry.source.as_str())? as u64;
    let mut mask = 0u64;
    let mut last: Option<u32> = None;
    for token in entry.reasons.iter() {
        // A known token, or `unknown-<bit>` (a newer writer's bit, kept as it came).
        let pos = vocabulary::reason_bit(token)?;
        // Strictly increasing positions: in vocabulary order and no duplicates, so the
        // bit set decodes back to the very same text.
        if last.is_some_and(|l| pos <= l) {
            return None;
        }
        last = Some(pos);
        mask |= 1u64 << pos;
    }
    Some(
        verdict_code(entry.verdict)
            | source << SOURCE_SHIFT
            | mask << REASON_SHIFT
            | u64::from(stale_secs) << STALE_SHIFT,
    )
}

/// Encodes an entry without a stale window (fresh until gone), exactly as before stale windows
/// existed.
pub fn encode_entry(entry: &Entry) -> String {
    encode_stored(entry, 0)
}

/// Encodes an entry and the length of its stale window in seconds (0: none). The window is
/// clamped to [`MAX_STALE`], and dropped for a manual pin, which is never stale.
pub fn encode_stored(entry: &Entry, stale_secs: u32) -> String {
    let stale_secs = if entry.source.is_manual() {
        0
    } else {
        stale_secs.min(MAX_STALE)
    };
    let attributes = entry.attributes;
    if attributes.is_empty() {
        return encode_base(entry, stale_secs);
    }
    let mut out = encode_base(entry, 0);
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, ";{stale_secs};");
    if let Some(c) = attributes.country {
        out.push_str(c.as_str());
    }
    out.push(';');
    if let Some(a) = attributes.asn {
        let _ = write!(out, "{a}");
    }
    out.push(';');
    if let Some(s) = attributes.score {
        let _ = write!(out, "{s}");
    }
    out
}

/// The form without attributes: the compact integer, or the text form.
fn encode_base(entry: &Entry, stale_secs: u32) -> String {
    match compact(entry, stale_secs) {
        Some(n) => n.to_string(),
        None => {
            let v = match entry.verdict {
                Verdict::Allow => 'a',
                Verdict::Block => 'b',
                Verdict::Challenge => 'c',
            };
            if stale_secs == 0 {
                format!("{v}:{}:{}", entry.source, entry.reasons)
            } else {
                format!("{v}:{}:{}:{stale_secs}", entry.source, entry.reasons)
            }
        }
    }
}

/// Decodes a stored value with its stale window in seconds (0: none).
pub fn decode_stored(value: &[u8]) -> Result<(Entry, u32), DecodeError> {
    let mut scratch = ViewScratch::new();
    let view = decode_entry_view(value, &mut scratch)?;
    Ok((view.to_entry()?, view.stale_secs))
}

/// Decodes a stored value; refuses anything [`encode_entry`] could not have written.
pub fn decode_entry(value: &[u8]) -> Result<Entry, DecodeError> {
    decode_stored(value).map(|(entry, _)| entry)
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
    /// The stale window in seconds: how long before the key expires the entry stops being
    /// fresh (0: fresh until gone; always 0 for a manual pin).
    pub stale_secs: u32,
    /// Country, AS number and score, where known.
    pub attributes: Attributes,
}

impl EntryView<'_> {
    /// Whether this is an operator's pin, as [`Source::is_manual`].
    pub fn is_manual(&self) -> bool {
        self.source == Source::MANUAL
    }

    /// The owned entry (validates the text once more, as [`decode_entry`] does).
    pub fn to_entry(self) -> Result<Entry, DecodeError> {
        Ok(Entry {
            verdict: self.verdict,
            // A compact value with bits this version does not know spells them `unknown-<bit>`,
            // which may run past MAX_REASONS_LEN: accept it (the tokens were checked as the
            // value was decoded) rather than refuse a newer writer's entry.
            reasons: Reasons::parse_stored(self.reasons)
                .map_err(|_| DecodeError("bad reason list"))?,
            source: Source::parse(self.source).map_err(|_| DecodeError("bad source token"))?,
            attributes: self.attributes,
        })
    }
}

/// Room for the reason list of a compact value: every known token, and `unknown-<bit>` for each
/// reserved bit the vocabulary does not know.
pub struct ViewScratch([u8; SCRATCH_LEN]);

const SCRATCH_LEN: usize = MAX_KNOWN_TEXT + "unknown-nn,".len() * REASON_BITS as usize;

impl ViewScratch {
    /// An empty scratch buffer.
    pub fn new() -> Self {
        ViewScratch([0; SCRATCH_LEN])
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
    let (base, suffix) = match text.split_once(';') {
        Some((base, suffix)) => (base, Some(suffix)),
        None => (text, None),
    };
    let mut view = if is_compact_shape(base) {
        let (verdict, source_idx, mask, stale_secs) = compact_parts(base)?;
        EntryView {
            verdict,
            reasons: join_reasons(mask, &mut scratch.0),
            source: KNOWN_SOURCES[source_idx],
            stale_secs,
            attributes: Attributes::NONE,
        }
    } else {
        // The text form is rare: validate it the allocating way, then borrow the same
        // fields, which decode_text keeps verbatim.
        decode_text(base)?
    };
    if let Some(suffix) = suffix {
        if view.stale_secs != 0 {
            return Err(DecodeError("stale window both in the base and the suffix"));
        }
        (view.stale_secs, view.attributes) = decode_suffix(suffix)?;
    }
    if view.is_manual() && view.stale_secs != 0 {
        return Err(DecodeError("manual pin with a stale window"));
    }
    Ok(view)
}

/// A canonical decimal (no sign, no leading zero) of at most `max_len` digits.
fn canonical_digits(text: &str, max_len: usize) -> bool {
    !text.is_empty()
        && text.len() <= max_len
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'))
}

/// `<stale>;<country>;<asn>;<score>[;<newer fields>...]`.
fn decode_suffix(suffix: &str) -> Result<(u32, Attributes), DecodeError> {
    let mut fields = suffix.split(';');
    let (Some(stale), Some(country), Some(asn), Some(score)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(DecodeError("attributes need stale;country;asn;score"));
    };
    let stale_secs = match stale.parse::<u32>() {
        Ok(n) if canonical_digits(stale, 8) && n <= MAX_STALE => n,
        _ => return Err(DecodeError("bad stale window")),
    };
    let country = match country {
        "" => None,
        c if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
            Some(Country::parse(c).map_err(|_| DecodeError("bad country"))?)
        }
        _ => return Err(DecodeError("bad country")),
    };
    let asn = match asn {
        "" => None,
        a if canonical_digits(a, 10) => Some(
            a.parse::<u32>()
                .ok()
                .and_then(Asn::new)
                .ok_or(DecodeError("bad AS number"))?,
        ),
        _ => return Err(DecodeError("bad AS number")),
    };
    let score = match score {
        "" => None,
        s if canonical_digits(s, 3) => Some(
            s.parse::<u8>()
                .ok()
                .and_then(Score::new)
                .ok_or(DecodeError("bad score"))?,
        ),
        _ => return Err(DecodeError("bad score")),
    };
    Ok((
        stale_secs,
        Attributes {
            country,
            asn,
            score,
        },
    ))
}

fn is_compact_shape(text: &str) -> bool {
    !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Writes the reasons in `mask` comma-separated into `out`, in bit order; a bit the vocabulary
/// does not know is written `unknown-<bit>` (a mask from [`compact_parts`] has at most
/// [`REASON_BITS`] bits, which together fit in `out`).
fn join_reasons(mask: u64, out: &mut [u8; SCRATCH_LEN]) -> &str {
    let mut len = 0;
    let mut bits = mask;
    while bits != 0 {
        let bit = bits.trailing_zeros();
        bits &= bits - 1;
        if len > 0 {
            out[len] = b',';
            len += 1;
        }
        len = vocabulary::write_token(bit, out, len);
    }
    // Only ASCII vocabulary bytes were written.
    std::str::from_utf8(&out[..len]).unwrap_or("")
}

/// Validates a compact value: verdict, index into [`KNOWN_SOURCES`], reason bit set, stale window.
fn compact_parts(text: &str) -> Result<(Verdict, usize, u64, u32), DecodeError> {
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
    // Every reserved bit is accepted: one this version does not know was written by a newer
    // one, and mixed versions must never refuse each other's entries.
    let mask = (n >> REASON_SHIFT) & ((1 << REASON_BITS) - 1);
    let stale = n >> STALE_SHIFT;
    if stale > u64::from(MAX_STALE) {
        return Err(DecodeError("stale window too long"));
    }
    Ok((verdict, source_idx, mask, stale as u32))
}

/// The optional `:<stale seconds>` of the text form: canonical decimal, 1..=[`MAX_STALE`].
fn text_stale(text: Option<&str>) -> Result<u32, DecodeError> {
    let Some(text) = text else { return Ok(0) };
    let bad = DecodeError("bad stale window");
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    match text.parse::<u32>() {
        Ok(n) if n <= MAX_STALE => Ok(n),
        _ => Err(bad),
    }
}

fn decode_text(text: &str) -> Result<EntryView<'_>, DecodeError> {
    let mut parts = text.splitn(4, ':');
    let (Some(v), Some(source), Some(reasons)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(DecodeError("not an integer nor v:source:reasons"));
    };
    let stale_secs = text_stale(parts.next())?;
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
        stale_secs,
        attributes: Attributes::NONE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::KNOWN_REASONS;
    use proptest::prelude::*;

    fn entry(v: Verdict, reasons: &str, source: &str) -> Entry {
        Entry {
            verdict: v,
            reasons: Reasons::parse(reasons).unwrap(),
            source: Source::parse(source).unwrap(),
            attributes: Attributes::NONE,
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
        // Every known combination stays one integer Redis keeps in its integer encoding.
        let all = KNOWN_REASONS.join(",");
        let v = encode_entry(&entry(Verdict::Challenge, &all, "manual"));
        assert!(v.parse::<i64>().is_ok() && v.len() <= 12, "{v}");
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
    fn stale_window_in_the_compact_form() {
        let e = entry(Verdict::Block, "vpn,tor", "api");
        // Without a window: exactly today's value.
        assert_eq!(encode_stored(&e, 0), "321");
        let week = 604_800u32;
        let v = encode_stored(&e, week);
        assert_eq!(v, (321u64 | u64::from(week) << 38).to_string());
        assert!(
            v.len() <= 19,
            "fits an i64, so Redis keeps it as one integer: {v}"
        );
        assert_eq!(decode_stored(v.as_bytes()), Ok((e.clone(), week)));
        assert_eq!(decode_stored(b"321"), Ok((e, 0)));
        let max = encode_stored(&entry(Verdict::Challenge, "", "list"), MAX_STALE);
        assert!(max.parse::<i64>().is_ok(), "{max}");
    }

    #[test]
    fn stale_window_in_the_text_form() {
        let e = entry(Verdict::Challenge, "spam", "feed");
        assert_eq!(encode_stored(&e, 0), "c:feed:spam");
        assert_eq!(encode_stored(&e, 60), "c:feed:spam:60");
        assert_eq!(decode_stored(b"c:feed:spam:60"), Ok((e, 60)));
        let empty = entry(Verdict::Allow, "", "feed");
        assert_eq!(encode_stored(&empty, 5), "a:feed::5");
        assert_eq!(decode_stored(b"a:feed::5"), Ok((empty, 5)));
    }

    #[test]
    fn a_manual_pin_is_never_stale() {
        let pin = entry(Verdict::Block, "tor", "manual");
        assert_eq!(encode_stored(&pin, 3600), encode_entry(&pin));
        let raw = (9u64 | 4 << 6 | 3600 << 38).to_string();
        assert!(decode_entry(raw.as_bytes()).is_err());
        assert!(decode_entry(b"b:manual:tor:60").is_err());
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
            b"60",
            // A stale window longer than MAX_STALE, and one past 64 bits.
            b"9223372036854775807",
            b"18446744073709551615",
            b"b:api:vpn:",
            b"b:api:vpn:0",
            b"b:api:vpn:07",
            b"b:api:vpn:31536001",
            b"b:api:vpn:1:2",
        ] {
            assert!(
                decode_entry(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_newer_writers_bits_are_kept_as_unknown_tokens() {
        // Bit 20 (value 1 << 26) and bit 31, which this vocabulary does not know, next to tor.
        let raw = (1u64 | 1 << (6 + 2) | 1 << (6 + 20) | 1 << (6 + 31)).to_string();
        let (e, stale) = decode_stored(raw.as_bytes()).unwrap();
        assert_eq!(
            (e.verdict, e.reasons.as_str(), e.source.as_str(), stale),
            (Verdict::Block, "tor,unknown-20,unknown-31", "api", 0)
        );
        // Re-encoding gives back the very same value: a rewrite never loses the newer bits.
        assert_eq!(encode_entry(&e), raw);
        // Policies see only what they know.
        assert_eq!(
            crate::Categories::from_reasons(&e.reasons),
            crate::Categories::EMPTY.with(crate::Category::Tor)
        );
        // Every reserved bit set at once still decodes (the text is longer than a REASON
        // argument may be, and is accepted anyway), and round-trips.
        let all = (2u64 | 0xffff_ffff << 6).to_string();
        let (e, _) = decode_stored(all.as_bytes()).unwrap();
        assert!(e.reasons.as_str().ends_with(",unknown-30,unknown-31"));
        assert_eq!(encode_entry(&e), all);
        let mut scratch = ViewScratch::new();
        let v = decode_entry_view(all.as_bytes(), &mut scratch).unwrap();
        assert_eq!(v.reasons, e.reasons.as_str());
    }

    #[test]
    fn unknown_spelling_of_a_known_bit_stays_a_custom_token() {
        assert_eq!(
            encode_entry(&entry(Verdict::Block, "unknown-2", "api")),
            "b:api:unknown-2"
        );
        assert_eq!(
            encode_entry(&entry(Verdict::Block, "unknown-20", "api")),
            (1u64 | 1 << 26).to_string()
        );
    }

    fn with_attributes(mut e: Entry, country: &str, asn: u32, score: Option<u8>) -> Entry {
        e.attributes = Attributes {
            country: Country::parse(country).ok(),
            asn: Asn::new(asn),
            score: score.and_then(Score::new),
        };
        e
    }

    #[test]
    fn documented_example_with_attributes() {
        let e = with_attributes(
            entry(Verdict::Block, "vpn,tor", "api"),
            "US",
            13335,
            Some(87),
        );
        let v = encode_stored(&e, 86_400);
        assert_eq!(v, "321;86400;US;13335;87");
        assert!(v.len() <= 28, "fits Redis's 48-byte embedded string: {v}");
        assert_eq!(decode_stored(v.as_bytes()), Ok((e.clone(), 86_400)));
        // Unknown attributes are empty fields; an entry without any is today's value.
        let only_asn = with_attributes(entry(Verdict::Allow, "", "api"), "", 64496, None);
        assert_eq!(encode_entry(&only_asn), "0;0;;64496;");
        assert_eq!(decode_entry(b"0;0;;64496;"), Ok(only_asn));
        let none = entry(Verdict::Block, "vpn,tor", "api");
        assert_eq!(
            encode_stored(&none, 86_400),
            (321u64 | 86_400 << 38).to_string()
        );
        // The text form takes the same suffix.
        let feed = with_attributes(entry(Verdict::Challenge, "spam", "feed"), "de", 0, Some(0));
        assert_eq!(encode_stored(&feed, 60), "c:feed:spam;60;DE;;0");
        assert_eq!(decode_stored(b"c:feed:spam;60;DE;;0"), Ok((feed, 60)));
        // A pin keeps its attributes and never a window.
        let pin = with_attributes(entry(Verdict::Block, "tor", "manual"), "NL", 0, None);
        assert_eq!(encode_stored(&pin, 3600), "265;0;NL;;");
        assert!(decode_entry(b"265;60;NL;;").is_err());
    }

    #[test]
    fn a_newer_writers_fields_are_ignored() {
        let (e, stale) = decode_stored(b"321;60;US;13335;87;x;anything").unwrap();
        assert_eq!(stale, 60);
        assert_eq!(e.attributes.score.map(Score::get), Some(87));
        assert_eq!(encode_stored(&e, stale), "321;60;US;13335;87");
    }

    #[test]
    fn bad_attributes_are_refused() {
        for bad in [
            &b"321;"[..],
            b"321;0",
            b"321;0;US;1",
            b"321;;US;1;2",
            b"321;01;US;1;2",
            b"321;31536001;;;",
            b"321;0;us;;",
            b"321;0;USA;;",
            b"321;0;U1;;",
            b"321;0;;0;",
            b"321;0;;01;",
            b"321;0;;4294967296;",
            b"321;0;;AS1;",
            b"321;0;;;101",
            b"321;0;;;07",
            b"321;0;;;-1",
            // The window in both places.
            b"26388279067009;60;US;;",
            b"b:api:vpn:60;60;US;;",
            b";0;US;;",
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
            (0u32..40).prop_map(|b| format!("unknown-{b}")),
            "[a-z0-9_-]{1,8}",
        ];
        let reasons = proptest::collection::vec(token, 0..6).prop_map(|v| v.join(","));
        let source = prop_oneof![
            proptest::sample::select(KNOWN_SOURCES.to_vec()).prop_map(str::to_owned),
            "[a-z0-9_-]{1,8}",
        ];
        let country = prop_oneof![Just(String::new()), "[A-Za-z]{2}"];
        let asn = prop_oneof![Just(0u32), any::<u32>()];
        let score = proptest::option::of(0u8..=100);
        (verdict, reasons, source, country, asn, score)
            .prop_map(|(v, r, s, c, a, sc)| with_attributes(entry(v, &r, &s), &c, a, sc))
    }

    proptest! {
        #[test]
        fn round_trip(e in arb_entry()) {
            prop_assert_eq!(decode_entry(encode_entry(&e).as_bytes()), Ok(e));
        }

        #[test]
        fn round_trip_with_a_window(e in arb_entry(), stale in 0..=MAX_STALE) {
            let expected = if e.source.is_manual() { 0 } else { stale };
            prop_assert_eq!(
                decode_stored(encode_stored(&e, stale).as_bytes()),
                Ok((e, expected))
            );
        }

        #[test]
        fn any_reason_mask_round_trips(
            verdict in 0u64..3, source in 0u64..3, mask in any::<u32>(), stale in 0..=MAX_STALE
        ) {
            let stale = if source == 2 { 0 } else { u64::from(stale) };
            let raw = (verdict | source << 2 | u64::from(mask) << 6 | stale << 38).to_string();
            let (e, s) = decode_stored(raw.as_bytes()).unwrap();
            prop_assert_eq!(encode_stored(&e, s), raw);
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
                "[abcx]:[a-z_-]{0,6}:[a-z,]{0,12}:[0-9]{0,9}".prop_map(String::into_bytes),
                "[0-9]{1,6}(;[0-9A-Za-z]{0,4}){0,6}".prop_map(String::into_bytes),
            ]
        ) {
            let mut scratch = ViewScratch::new();
            match (decode_entry(&bytes), decode_entry_view(&bytes, &mut scratch)) {
                (Ok(e), Ok(v)) => {
                    prop_assert_eq!(decode_stored(&bytes).map(|(_, s)| s), Ok(v.stale_secs));
                    prop_assert_eq!(v.verdict, e.verdict);
                    prop_assert_eq!(v.reasons, e.reasons.as_str());
                    prop_assert_eq!(v.source, e.source.as_str());
                    prop_assert_eq!(v.attributes, e.attributes);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "decode_entry {:?} vs view {:?}", a, b),
            }
        }
    }
}
