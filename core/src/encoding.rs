//! The stored form of an [`Entry`]: a plain Redis string, as small as a bare verdict byte.
//!
//! A plain string keeps persistence, replication, eviction, `MEMORY USAGE` and every Redis tool
//! working with no custom module type. A stored value is a **base** naming verdict, source and
//! reasons, in one of two forms, optionally followed by a **suffix** that starts at the first `;`:
//!
//! - **Compact base** (nearly every entry): the decimal integer
//!   `verdict | source << 2 | reasons << 6`, where `verdict` is 0 allow, 1 block, 2 challenge;
//!   `source` is the index in [`KNOWN_SOURCES`]; `reasons` is a bit set over
//!   [`crate::vocabulary::KNOWN_REASONS`] (bits 6..38: 32 reason tokens, at most 12 digits).
//!   Used when the source is known and the reasons are known tokens, each once, in vocabulary
//!   order, so decoding gives back the exact text that was stored.
//!   Example: `block`, `vpn,tor`, `api` is `1 | 0 << 2 | 0b101 << 6` = `321`.
//!   A reason bit the vocabulary does not know (a newer writer's) is accepted and decodes to the
//!   token `unknown-<bit>`, which encodes back to the same bit: a rewrite keeps it, policies
//!   ignore it (see [`crate::vocabulary`]).
//! - **Text base** (anything else): `<v>:<source>:<reasons>` with `v` one of `a`, `b`, `c`, e.g.
//!   `b:my-feed:spam,vpn`; without a suffix, followed by `:<stale seconds>` when there is a stale
//!   window (see [`crate::freshness`]), e.g. `b:my-feed:spam:604800`. Tokens never contain `:`,
//!   so the split is unambiguous.
//! - **Suffix**: `;<stale seconds>;<country>;<asn>;<score>`, the stale window (0: none) and the
//!   [`Attributes`], each attribute empty when unknown.
//!
//! **The writer never stores an integer-looking value**, because Redis keeps such a value
//! int-encoded after an RDB/AOF load or on a replica applying the replicated `SET`, and the
//! module's zero-copy read (`RedisModule_StringDMA`) turns an int-encoded value into a new raw
//! string: the first read would grow memory. So [`encode_stored`] writes:
//!
//! - a compact base always with a suffix: `<base>;<stale>` when the entry has no attributes
//!   (`block`, `vpn,tor`, `api` is `321;0`; with a week's window `321;604800`), and
//!   `<base>;<stale>;<country>;<asn>;<score>` when it has any: `block`, `vpn,tor`, `api`, a day's
//!   window, `US`, AS 13335, score 87 is `321;86400;US;13335;87` (21 bytes: Redis keeps it in
//!   one embedded string, see bench/README.md "Memory");
//! - a text base without a suffix when the entry has no attributes (`c:feed:spam`,
//!   `c:feed:spam:60`: it contains `:`, so it is never an integer), and with the full suffix when
//!   it has any (`c:feed:spam;60;DE;;0`).
//!
//! **The reader** accepts every form any version wrote: a bare compact integer (older writers),
//! one carrying the window as `stale_secs << 38` (writers before the suffix held it), the text
//! base with `:<stale>`, and a suffix of any length from one field up. Fields a writer leaves off
//! are unknown; fields after the score are a newer writer's and ignored. So mixed versions never
//! refuse each other's entries. Tokens and the text form never contain `;`, so the first `;`
//! always starts the suffix. A value with a stale window both in the base and in the suffix is
//! refused.
//!
//! A manual pin never has a stale window (a pin is final until it expires): [`encode_stored`]
//! writes 0 (`manual` pins are `<base>;0`) and the decoders refuse a value that carries a
//! non-zero one.

use thiserror::Error;

use crate::facts::{Asn, Attributes, Country, Score};
use crate::stored_buf::StoredBuf;
use crate::verdict::{check_reasons, check_source, Entry, Reasons, Source, Verdict, KNOWN_SOURCES};
use crate::vocabulary::{self, MAX_KNOWN_TEXT, REASON_BITS};

const SOURCE_SHIFT: u32 = 2;
const SOURCE_BITS: u64 = 0b1111;
const REASON_SHIFT: u32 = 6;
/// Where writers before the suffix put the stale window inside the integer; still read.
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

fn compact(verdict: Verdict, source: &str, reasons: &str) -> Option<u64> {
    let source = KNOWN_SOURCES.iter().position(|s| *s == source)? as u64;
    let mut mask = 0u64;
    let mut last: Option<u32> = None;
    // The tokens as `Reasons::iter` gives them.
    for token in reasons.split(',').filter(|t| !t.is_empty()) {
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
    Some(verdict_code(verdict) | source << SOURCE_SHIFT | mask << REASON_SHIFT)
}

/// Encodes an entry without a stale window (fresh until gone).
pub fn encode_entry(entry: &Entry) -> String {
    encode_stored(entry, 0)
}

/// Encodes an entry and the length of its stale window in seconds (0: none). The window is
/// clamped to [`MAX_STALE`], and dropped for a manual pin, which is never stale. The result is
/// never an integer (see the module doc).
pub fn encode_stored(entry: &Entry, stale_secs: u32) -> String {
    let view = EntryView {
        verdict: entry.verdict,
        reasons: entry.reasons.as_str(),
        source: entry.source.as_str(),
        stale_secs,
        attributes: entry.attributes,
    };
    // Built only from UTF-8 text, ASCII digits and punctuation.
    String::from_utf8_lossy(encode_view(&view).as_bytes()).into_owned()
}

/// [`encode_stored`] of an entry whose reasons and source were validated in place (as
/// [`Reasons::parse`] and [`Source::parse`] do) and its window, into a buffer on the stack:
/// the module's `IPCHECK SET` writes this.
pub fn encode_view(view: &EntryView) -> StoredBuf {
    let stale_secs = if view.is_manual() {
        0
    } else {
        view.stale_secs.min(MAX_STALE)
    };
    let attributes = view.attributes;
    let mut out = StoredBuf::new();
    if let Some(n) = compact(view.verdict, view.source, view.reasons) {
        out.push_u64(n);
        out.push(b";");
        push_suffix(&mut out, stale_secs, attributes);
        return out;
    }
    out.push(match view.verdict {
        Verdict::Allow => b"a:",
        Verdict::Block => b"b:",
        Verdict::Challenge => b"c:",
    });
    out.push(view.source.as_bytes());
    out.push(b":");
    out.push(view.reasons.as_bytes());
    if attributes.is_empty() {
        if stale_secs != 0 {
            out.push(b":");
            out.push_u64(stale_secs.into());
        }
    } else {
        out.push(b";");
        push_suffix(&mut out, stale_secs, attributes);
    }
    out
}

/// The suffix after the first `;`: `<stale>`, then `;<country>;<asn>;<score>` when any of them
/// is known (an unknown one is left empty).
fn push_suffix(out: &mut StoredBuf, stale_secs: u32, attributes: Attributes) {
    out.push_u64(stale_secs.into());
    if attributes.is_empty() {
        return;
    }
    out.push(b";");
    if let Some(c) = attributes.country {
        out.push(c.as_str().as_bytes());
    }
    out.push(b";");
    if let Some(a) = attributes.asn {
        out.push_u64(a.get().into());
    }
    out.push(b";");
    if let Some(s) = attributes.score {
        out.push_u64(s.get().into());
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

/// What the lean write needs to know of a value it stores (see [`check_canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalValue {
    /// The entry's stale window in seconds.
    pub stale_secs: u32,
    /// Whether the entry is an operator's pin.
    pub manual: bool,
}

/// Checks that `value` is byte for byte what [`encode_view`] writes for the entry it decodes to,
/// so a value stored as given (the lean write, `IPCHECK.LSET`) is one `IPCHECK SET` could have
/// stored: no text form where the compact one applies, no fields a newer writer added, nothing
/// a reader of this version would decode differently.
pub fn check_canonical(value: &[u8]) -> Result<CanonicalValue, DecodeError> {
    let not_canonical = DecodeError("not in the exact form IPCHECK SET stores for it");
    // The compact form, nearly every value, without building the reason text: the integer is
    // one-to-one with verdict, source and reason bits, so it is canonical when it has no leading
    // zero (checked by `compact_parts`) and carries no stale window (only the suffix does, as
    // `encode_view` writes it); the suffix is canonical when it is what `push_suffix` writes.
    if let Some((base, suffix)) = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.split_once(';'))
        .filter(|(base, _)| is_compact_shape(base))
    {
        let (_, source_idx, _, stale_in_base) = compact_parts(base)?;
        let (stale_secs, attributes) = decode_suffix(suffix)?;
        let manual = KNOWN_SOURCES[source_idx] == Source::MANUAL;
        if manual && stale_secs != 0 {
            return Err(DecodeError("manual pin with a stale window"));
        }
        let mut canonical = StoredBuf::new();
        push_suffix(&mut canonical, stale_secs, attributes);
        if stale_in_base != 0 || canonical.as_bytes() != suffix.as_bytes() {
            return Err(not_canonical);
        }
        return Ok(CanonicalValue { stale_secs, manual });
    }
    let mut scratch = ViewScratch::new();
    let view = decode_entry_view(value, &mut scratch)?;
    if encode_view(&view).as_bytes() != value {
        return Err(not_canonical);
    }
    Ok(CanonicalValue {
        stale_secs: view.stale_secs,
        manual: view.is_manual(),
    })
}

/// Whether `value` decodes to an operator's pin: exactly what
/// `decode_entry_view(value, ..).is_ok_and(|e| e.is_manual())` says, but a value whose base
/// names another source is answered from the base alone, without decoding the reasons or the
/// suffix (`IPCHECK SET` reads the old value only for this).
pub fn is_manual_pin(value: &[u8]) -> bool {
    let base = value.split(|&b| b == b';').next().unwrap_or(&[]);
    let names_manual = match std::str::from_utf8(base) {
        Ok(text) if is_compact_shape(text) => compact_parts(text)
            .is_ok_and(|(_, idx, _, _)| KNOWN_SOURCES.get(idx) == Some(&Source::MANUAL)),
        // The text form's second field is the source (see `decode_text`).
        Ok(text) => text.split(':').nth(1) == Some(Source::MANUAL),
        Err(_) => false,
    };
    let mut scratch = ViewScratch::new();
    names_manual && decode_entry_view(value, &mut scratch).is_ok_and(|e| e.is_manual())
}

/// A canonical decimal (no sign, no leading zero) of at most `max_len` digits.
fn canonical_digits(text: &str, max_len: usize) -> bool {
    !text.is_empty()
        && text.len() <= max_len
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'))
}

/// `<stale>[;<country>[;<asn>[;<score>[;<newer fields>...]]]]`: the window is required, a field
/// a writer leaves off is unknown, fields after the score are ignored.
fn decode_suffix(suffix: &str) -> Result<(u32, Attributes), DecodeError> {
    let mut fields = suffix.split(';');
    // split always yields a first field (empty for an empty suffix, refused below).
    let stale = fields.next().unwrap_or("");
    let country = fields.next().unwrap_or("");
    let asn = fields.next().unwrap_or("");
    let score = fields.next().unwrap_or("");
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
            "321;0"
        );
        assert_eq!(encode_entry(&entry(Verdict::Allow, "", "api")), "0;0");
        assert_eq!(encode_entry(&entry(Verdict::Allow, "", "manual")), "8;0");
        // Older writers' bare integer still reads as the same entry.
        assert_eq!(
            decode_entry(b"321"),
            Ok(entry(Verdict::Block, "vpn,tor", "api"))
        );
    }

    #[test]
    fn view_of_documented_example() {
        let mut scratch = ViewScratch::new();
        for stored in [&b"321;0"[..], b"321"] {
            let v = decode_entry_view(stored, &mut scratch).unwrap();
            assert_eq!(
                (v.verdict, v.reasons, v.source, v.stale_secs),
                (Verdict::Block, "vpn,tor", "api", 0)
            );
        }
        let all = KNOWN_REASONS.join(",");
        let stored = encode_entry(&entry(Verdict::Challenge, &all, "manual"));
        let v = decode_entry_view(stored.as_bytes(), &mut scratch).unwrap();
        assert_eq!((v.reasons, v.source), (all.as_str(), "manual"));
        assert!(v.is_manual());
        assert!(!decode_entry_view(b"1", &mut scratch).unwrap().is_manual());
    }

    /// What Redis's `string2ll` would take for an integer (and int-encode after a load).
    fn integer_looking(v: &str) -> bool {
        v.parse::<i64>().is_ok()
    }

    #[test]
    fn the_longest_values_stay_embedded_strings() {
        // Redis keeps a string of at most 44 bytes in one allocation with its header (embstr).
        // Every reserved reason bit, source `list`, challenge: the largest compact base.
        let (all, _) =
            decode_stored((2u64 | 1 << 2 | 0xffff_ffff << 6).to_string().as_bytes()).unwrap();
        let v = encode_stored(&all, MAX_STALE);
        assert!(!integer_looking(&v) && v.len() <= 21, "{v}");
        let facts = with_attributes(all, "US", u32::MAX, Some(100));
        let v = encode_stored(&facts, MAX_STALE);
        assert!(!integer_looking(&v) && v.len() <= 44, "{v}");
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
        assert_eq!(encode_stored(&e, 0), "321;0");
        let week = 604_800u32;
        let v = encode_stored(&e, week);
        assert_eq!(v, "321;604800");
        assert_eq!(decode_stored(v.as_bytes()), Ok((e.clone(), week)));
        // Older writers: no window, and the window inside the integer.
        assert_eq!(decode_stored(b"321"), Ok((e.clone(), 0)));
        let old = (321u64 | u64::from(week) << 38).to_string();
        assert_eq!(decode_stored(old.as_bytes()), Ok((e, week)));
        let max = encode_stored(&entry(Verdict::Challenge, "", "list"), MAX_STALE);
        assert_eq!(max, "6;31536000");
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
        assert_eq!(encode_entry(&pin), "265;0");
        assert_eq!(decode_entry(b"265;0"), Ok(pin.clone()));
        assert_eq!(decode_entry(b"265"), Ok(pin));
        let raw = (9u64 | 4 << 6 | 3600 << 38).to_string();
        assert!(decode_entry(raw.as_bytes()).is_err());
        assert!(decode_entry(b"265;60").is_err());
        assert!(decode_entry(b"b:manual:tor:60").is_err());
        assert!(decode_entry(b"b:manual:tor;60").is_err());
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
            b"321;",
            b"321;x",
            b";0",
            b"321:0",
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
        // Re-encoding gives back the very same bits: a rewrite never loses the newer ones.
        assert_eq!(encode_entry(&e), format!("{raw};0"));
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
        assert_eq!(encode_entry(&e), format!("{all};0"));
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
            format!("{};0", 1u64 | 1 << 26)
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
        // Unknown attributes are empty fields; an entry without any has the window alone.
        let only_asn = with_attributes(entry(Verdict::Allow, "", "api"), "", 64496, None);
        assert_eq!(encode_entry(&only_asn), "0;0;;64496;");
        assert_eq!(decode_entry(b"0;0;;64496;"), Ok(only_asn));
        let none = entry(Verdict::Block, "vpn,tor", "api");
        assert_eq!(encode_stored(&none, 86_400), "321;86400");
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
    fn fields_a_writer_leaves_off_are_unknown() {
        let e = entry(Verdict::Block, "vpn,tor", "api");
        let facts = |c, a, s| with_attributes(e.clone(), c, a, s);
        for (stored, expected, stale) in [
            (&b"321;60"[..], e.clone(), 60),
            (b"321;0;US", facts("US", 0, None), 0),
            (b"321;0;US;13335", facts("US", 13335, None), 0),
            (b"321;0;;;", e.clone(), 0),
            (b"b:api:vpn,tor;5", e.clone(), 5),
            (b"b:api:vpn,tor;0;;1", facts("", 1, None), 0),
        ] {
            let mut expected = expected;
            if stored.starts_with(b"b:") {
                expected.reasons = Reasons::parse("vpn,tor").unwrap();
            }
            assert_eq!(
                decode_stored(stored),
                Ok((expected, stale)),
                "{:?}",
                String::from_utf8_lossy(stored)
            );
        }
    }

    #[test]
    fn bad_attributes_are_refused() {
        for bad in [
            &b"321;"[..],
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
            b"26388279067009;0",
            b"b:api:vpn:60;60;US;;",
            b"b:api:vpn:60;0",
            b";0;US;;",
        ] {
            assert!(
                decode_entry(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn canonical_refuses_what_set_would_not_store() {
        for ok in [
            &b"321;0"[..],
            b"321;60;US;13335;87",
            b"9;0",
            b"b:feed:spam:60",
            b"a:x:y;0;;1;",
        ] {
            assert!(
                check_canonical(ok).is_ok(),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [
            &b"321"[..],
            b"0321;0",
            b"321;00",
            b"321;0;;;",
            b"321;0;us;;",
            b"321;0;US;;;7",
            b"b:api:vpn,tor",
            b"b:feed:spam:0",
            b"9;60",
            b"",
        ] {
            assert!(
                check_canonical(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Bytes shaped like stored values (compact, with suffixes and leading zeros; text form), and
    /// anything at all.
    fn value_like() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "0?[0-9]{1,14}(;0?[0-9A-Za-z]{0,4}){0,5}".prop_map(String::into_bytes),
            "[abcx]:(manual|api|x):[a-z,]{0,8}(:[0-9]{0,3})?(;[0-9A-Z]{0,3}){0,5}"
                .prop_map(String::into_bytes),
        ]
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
            let base = verdict | source << 2 | u64::from(mask) << 6;
            // An older writer's integer (window inside) and today's suffix read the same, and
            // re-encode to today's form.
            let old = (base | stale << 38).to_string();
            let new = format!("{base};{stale}");
            let (e, s) = decode_stored(old.as_bytes()).unwrap();
            prop_assert_eq!(decode_stored(new.as_bytes()), Ok((e.clone(), s)));
            prop_assert_eq!(encode_stored(&e, s), new);
        }

        #[test]
        fn a_stored_value_is_never_an_integer(e in arb_entry(), stale in 0..=MAX_STALE) {
            let v = encode_stored(&e, stale);
            prop_assert!(!integer_looking(&v), "{}", v);
        }

        #[test]
        fn the_pin_check_agrees_with_the_decoder(
            bytes in value_like(),
            e in arb_entry(),
            stale in 0..=MAX_STALE,
        ) {
            let mut scratch = ViewScratch::new();
            let decoded = decode_entry_view(&bytes, &mut scratch).is_ok_and(|v| v.is_manual());
            prop_assert_eq!(is_manual_pin(&bytes), decoded);
            prop_assert_eq!(
                is_manual_pin(encode_stored(&e, stale).as_bytes()),
                e.source.is_manual()
            );
        }

        #[test]
        fn canonical_is_what_the_encoder_writes(
            bytes in value_like(),
            e in arb_entry(),
            stale in 0..=MAX_STALE,
        ) {
            // The fast compact path says what decoding and encoding again say.
            let mut scratch = ViewScratch::new();
            let slow = decode_entry_view(&bytes, &mut scratch)
                .ok()
                .filter(|v| encode_view(v).as_bytes() == bytes.as_slice())
                .map(|v| CanonicalValue { stale_secs: v.stale_secs, manual: v.is_manual() });
            prop_assert_eq!(check_canonical(&bytes).ok(), slow);
            let expected = CanonicalValue {
                stale_secs: if e.source.is_manual() { 0 } else { stale },
                manual: e.source.is_manual(),
            };
            prop_assert_eq!(check_canonical(encode_stored(&e, stale).as_bytes()), Ok(expected));
        }

        #[test]
        fn the_view_encoder_writes_what_encode_stored_writes(
            e in arb_entry(), stale in 0..=MAX_STALE
        ) {
            let view = EntryView {
                verdict: e.verdict,
                reasons: e.reasons.as_str(),
                source: e.source.as_str(),
                stale_secs: stale,
                attributes: e.attributes,
            };
            let (viewed, owned) = (encode_view(&view), encode_stored(&e, stale));
            prop_assert_eq!(viewed.as_bytes(), owned.as_bytes());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_entry(&bytes);
        }

        #[test]
        fn view_decodes_what_decode_entry_decodes(e in arb_entry()) {
            let stored = encode_stored(&e, 60);
            let mut scratch = ViewScratch::new();
            let view = decode_entry_view(stored.as_bytes(), &mut scratch).unwrap();
            prop_assert_eq!(view.stale_secs, if e.source.is_manual() { 0 } else { 60 });
            prop_assert_eq!(view.attributes, e.attributes);
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
