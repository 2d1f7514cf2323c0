//! The `IPCHECK GET` hit: a flat array of field/value pairs (a map under RESP3), the fields in
//! the order of [`GET_FIELDS`]. Fields are only ever appended, so a reader that walks the pairs
//! by name, or by position up to the fields it knows, reads every version's reply:
//!
//! `verdict <v> reason <reasons> source <source> ttl <seconds> key <key> fresh <1|0>
//! fresh_ttl <seconds> country <cc> asn <n> score <0-100>`
//!
//! `country`, `asn` and `score` are always there, as bulk strings, empty when unknown (as
//! `reason` is when there are none): a client that reads the reply as a list of strings keeps
//! working, and a Lua script finds each field at a fixed index.

use std::fmt;

use thiserror::Error;

use crate::facts::{Asn, Attributes, Country, Score};
use crate::freshness::Freshness;
use crate::verdict::{Entry, Reasons, Source, Verdict};

/// A field of an `IPCHECK GET` hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GetField {
    /// `allow`, `block` or `challenge`.
    Verdict,
    /// The reason list, possibly empty.
    Reason,
    /// The source token.
    Source,
    /// Seconds until the key is gone (-1: no expiry).
    Ttl,
    /// The Redis key.
    Key,
    /// 1 while fresh, 0 once stale.
    Fresh,
    /// Seconds of fresh time left (0 when stale, -1 without expiry).
    FreshTtl,
    /// Country code, empty when unknown.
    Country,
    /// AS number, empty when unknown.
    Asn,
    /// Score, empty when unknown.
    Score,
}

/// Every field, in reply order (the order of [`GetField`]).
pub const GET_FIELDS: [GetField; 10] = [
    GetField::Verdict,
    GetField::Reason,
    GetField::Source,
    GetField::Ttl,
    GetField::Key,
    GetField::Fresh,
    GetField::FreshTtl,
    GetField::Country,
    GetField::Asn,
    GetField::Score,
];

impl GetField {
    /// The field's name in the reply.
    pub fn name(self) -> &'static str {
        match self {
            GetField::Verdict => "verdict",
            GetField::Reason => "reason",
            GetField::Source => "source",
            GetField::Ttl => "ttl",
            GetField::Key => "key",
            GetField::Fresh => "fresh",
            GetField::FreshTtl => "fresh_ttl",
            GetField::Country => "country",
            GetField::Asn => "asn",
            GetField::Score => "score",
        }
    }

    /// The field named `name`, if this version knows it.
    pub fn parse(name: &[u8]) -> Option<GetField> {
        GET_FIELDS.into_iter().find(|f| f.name().as_bytes() == name)
    }

    /// This field's value in `hit`, as the module replies it; numbers written as text go to
    /// `buf`, so writing a reply allocates nothing.
    pub fn value<'b>(self, hit: &'b GetHit<'_>, buf: &'b mut NumberText) -> FieldValue<'b> {
        let a = hit.attributes;
        match self {
            GetField::Verdict => FieldValue::Text(hit.verdict.as_str().as_bytes()),
            GetField::Reason => FieldValue::Text(hit.reasons.as_bytes()),
            GetField::Source => FieldValue::Text(hit.source.as_bytes()),
            GetField::Ttl => FieldValue::Int(hit.ttl_secs),
            GetField::Key => FieldValue::Text(hit.key),
            GetField::Fresh => FieldValue::Int(i64::from(hit.freshness.fresh)),
            GetField::FreshTtl => FieldValue::Int(hit.freshness.fresh_ttl_secs),
            GetField::Country => FieldValue::Text(match &hit.attributes.country {
                Some(c) => c.as_str().as_bytes(),
                None => b"",
            }),
            GetField::Asn => FieldValue::Text(a.asn.map_or(&[][..], |n| buf.write(n.get()))),
            GetField::Score => {
                FieldValue::Text(a.score.map_or(&[][..], |s| buf.write(u32::from(s.get()))))
            }
        }
    }
}

/// A value the module replies: a bulk string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A bulk string.
    Text(&'a [u8]),
    /// An integer.
    Int(i64),
}

/// Room for a `u32` in decimal, on the stack.
#[derive(Default)]
pub struct NumberText([u8; 10]);

impl NumberText {
    /// `n` in decimal, without allocating.
    pub fn write(&mut self, mut n: u32) -> &[u8] {
        let mut at = self.0.len();
        loop {
            at -= 1;
            // A decimal digit: n % 10 < 10.
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return &self.0[at..];
            }
        }
    }
}

/// An `IPCHECK GET` hit, borrowed from the reply (or, in the module, from the stored value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetHit<'a> {
    /// What to do.
    pub verdict: Verdict,
    /// The reason list as stored, e.g. `vpn,tor`.
    pub reasons: &'a str,
    /// The source token.
    pub source: &'a str,
    /// Seconds until the key is gone, rounded as Redis's `TTL` (-1: no expiry).
    pub ttl_secs: i64,
    /// The Redis key.
    pub key: &'a [u8],
    /// Fresh or stale, and the fresh time left.
    pub freshness: Freshness,
    /// Country, AS number and score, where known.
    pub attributes: Attributes,
}

impl GetHit<'_> {
    /// The owned entry; refuses a reason list or source that is not made of tokens.
    pub fn to_entry(&self) -> Result<Entry, ReplyError> {
        Ok(Entry {
            verdict: self.verdict,
            // As stored: a newer writer's `unknown-<bit>` tokens may run past REASON's limit.
            reasons: Reasons::parse_stored(self.reasons)
                .map_err(|e| ReplyError::field(GetField::Reason, e))?,
            source: Source::parse(self.source)
                .map_err(|e| ReplyError::field(GetField::Source, e))?,
            attributes: self.attributes,
        })
    }

    /// The key as text (keys are ASCII unless the prefix is not).
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(self.key).into_owned()
    }
}

/// An element of a reply as a client received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyValue<'a> {
    /// A bulk or simple string.
    Text(&'a [u8]),
    /// An integer.
    Int(i64),
    /// Nil, or anything else.
    Other,
}

impl<'a> ReplyValue<'a> {
    fn text(self) -> Option<&'a str> {
        match self {
            ReplyValue::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    fn int(self) -> Option<i64> {
        match self {
            ReplyValue::Int(n) => Some(n),
            other => other.text()?.parse().ok(),
        }
    }
}

/// A GET reply that is not a hit this version can read, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("IPCHECK GET reply: {0}")]
pub struct ReplyError(String);

impl ReplyError {
    fn field(field: GetField, what: impl fmt::Display) -> Self {
        ReplyError(format!("bad {}: {what}", field.name()))
    }
}

/// Reads the field/value pairs of a hit. Fields this version does not know are skipped (a newer
/// module's); fields an older module does not send take what that module meant: no `fresh`
/// (before stale windows) is fresh until gone with `fresh_ttl` = `ttl`, no attributes are
/// unknown ones. Only `verdict` is required.
pub fn parse_get<'a>(
    pairs: impl IntoIterator<Item = (ReplyValue<'a>, ReplyValue<'a>)>,
) -> Result<GetHit<'a>, ReplyError> {
    let mut verdict = None;
    let mut hit = GetHit {
        verdict: Verdict::Allow,
        reasons: "",
        source: "api",
        ttl_secs: 0,
        key: b"",
        freshness: Freshness {
            fresh: true,
            fresh_ttl_secs: 0,
        },
        attributes: Attributes::NONE,
    };
    let mut fresh_ttl = None;
    for (name, value) in pairs {
        let ReplyValue::Text(name) = name else {
            continue;
        };
        let Some(field) = GetField::parse(name) else {
            continue;
        };
        let bad = |what: &str| ReplyError::field(field, what);
        let text = || value.text().ok_or_else(|| bad("not text"));
        let int = || value.int().ok_or_else(|| bad("not an integer"));
        match field {
            GetField::Verdict => {
                verdict = Some(
                    text()?
                        .parse::<Verdict>()
                        .map_err(|e| bad(&e.to_string()))?,
                )
            }
            GetField::Reason => hit.reasons = text()?,
            GetField::Source => hit.source = text()?,
            GetField::Ttl => hit.ttl_secs = int()?,
            GetField::Key => {
                hit.key = match value {
                    ReplyValue::Text(b) => b,
                    _ => return Err(bad("not text")),
                }
            }
            GetField::Fresh => hit.freshness.fresh = int()? != 0,
            GetField::FreshTtl => fresh_ttl = Some(int()?),
            GetField::Country => hit.attributes.country = attribute(value, Country::parse)?,
            GetField::Asn => hit.attributes.asn = attribute(value, Asn::parse)?,
            GetField::Score => hit.attributes.score = attribute(value, Score::parse)?,
        }
    }
    hit.verdict = verdict.ok_or_else(|| ReplyError("no verdict field".to_owned()))?;
    hit.freshness.fresh_ttl_secs = fresh_ttl.unwrap_or(hit.ttl_secs);
    Ok(hit)
}

/// An attribute field: empty (or absent) is unknown; an integer is read as its decimal text.
fn attribute<T, E: fmt::Display>(
    value: ReplyValue<'_>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ReplyError> {
    let owned;
    let text = match value {
        ReplyValue::Text(b"") => return Ok(None),
        ReplyValue::Text(b) => {
            std::str::from_utf8(b).map_err(|_| ReplyError("attribute not UTF-8".to_owned()))?
        }
        ReplyValue::Int(n) => {
            owned = n.to_string();
            &owned
        }
        ReplyValue::Other => return Ok(None),
    };
    parse(text).map(Some).map_err(|e| ReplyError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> ReplyValue<'_> {
        ReplyValue::Text(s.as_bytes())
    }

    /// The pairs the module writes for `hit`.
    fn written(hit: &GetHit<'_>) -> Vec<(String, FieldValue<'static>)> {
        GET_FIELDS
            .iter()
            .map(|f| {
                let mut buf = NumberText::default();
                let v = match f.value(hit, &mut buf) {
                    FieldValue::Text(b) => FieldValue::Text(Vec::leak(b.to_vec())),
                    FieldValue::Int(n) => FieldValue::Int(n),
                };
                (f.name().to_owned(), v)
            })
            .collect()
    }

    fn sample(attributes: Attributes) -> GetHit<'static> {
        GetHit {
            verdict: Verdict::Block,
            reasons: "vpn,tor",
            source: "api",
            ttl_secs: 600,
            key: b"ipcheck:192.0.2.1",
            freshness: Freshness {
                fresh: false,
                fresh_ttl_secs: 0,
            },
            attributes,
        }
    }

    #[test]
    fn names_follow_the_enum_and_are_only_appended() {
        let names: Vec<&str> = GET_FIELDS.iter().map(|f| f.name()).collect();
        // The first seven are the reply as it was before attributes: never reorder them.
        assert_eq!(
            names,
            [
                "verdict",
                "reason",
                "source",
                "ttl",
                "key",
                "fresh",
                "fresh_ttl",
                "country",
                "asn",
                "score"
            ]
        );
        for (i, f) in GET_FIELDS.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(GetField::parse(f.name().as_bytes()), Some(*f));
        }
    }

    #[test]
    fn what_the_module_writes_parses_back() {
        for attributes in [
            Attributes::NONE,
            Attributes {
                country: Country::parse("US").ok(),
                asn: Asn::new(u32::MAX),
                score: Score::new(0),
            },
            Attributes {
                asn: Asn::new(7),
                score: Score::new(100),
                ..Attributes::NONE
            },
        ] {
            let hit = sample(attributes);
            let pairs = written(&hit);
            let parsed = parse_get(pairs.iter().map(|(k, v)| {
                let v = match *v {
                    FieldValue::Text(b) => ReplyValue::Text(b),
                    FieldValue::Int(n) => ReplyValue::Int(n),
                };
                (ReplyValue::Text(k.as_bytes()), v)
            }))
            .unwrap();
            assert_eq!(parsed, hit);
            assert_eq!(parsed.to_entry().unwrap().attributes, attributes);
        }
        let mut buf = NumberText::default();
        assert_eq!(buf.write(0), b"0");
        assert_eq!(buf.write(13335), b"13335");
        assert_eq!(buf.write(u32::MAX), b"4294967295");
    }

    #[test]
    fn older_and_newer_modules_read() {
        // Before stale windows and attributes: fresh until gone, nothing known.
        let old = parse_get([
            (t("verdict"), t("block")),
            (t("reason"), t("vpn")),
            (t("source"), t("manual")),
            (t("ttl"), ReplyValue::Int(42)),
            (t("key"), t("ipcheck:192.0.2.1")),
        ])
        .unwrap();
        assert!(old.freshness.fresh);
        assert_eq!(old.freshness.fresh_ttl_secs, 42);
        assert!(old.attributes.is_empty());
        assert!(old.to_entry().unwrap().source.is_manual());
        // A newer module's field is skipped; integers as text are read.
        let newer = parse_get([
            (t("verdict"), t("allow")),
            (t("ttl"), t("7")),
            (t("city"), t("Berlin")),
            (t("asn"), ReplyValue::Int(3320)),
            (t("country"), t("de")),
            (t("score"), t("")),
        ])
        .unwrap();
        assert_eq!(newer.ttl_secs, 7);
        assert_eq!(newer.attributes.asn, Asn::new(3320));
        assert_eq!(newer.attributes.country, Country::parse("DE").ok());
        assert_eq!(newer.attributes.score, None);
    }

    #[test]
    fn malformed_hits_name_the_field() {
        let err = |pairs: Vec<(ReplyValue<'static>, ReplyValue<'static>)>| {
            parse_get(pairs).unwrap_err().to_string()
        };
        assert!(err(vec![(t("reason"), t("vpn"))]).contains("no verdict"));
        assert!(err(vec![(t("verdict"), t("maybe"))]).contains("bad verdict"));
        assert!(err(vec![(t("verdict"), t("block")), (t("ttl"), t("x"))]).contains("bad ttl"));
        assert!(err(vec![(t("verdict"), t("block")), (t("score"), t("101"))]).contains("score"));
        assert!(
            err(vec![(t("verdict"), t("block")), (t("country"), t("USA"))]).contains("country")
        );
        assert!(err(vec![(t("verdict"), t("block")), (t("asn"), t("0"))]).contains("AS number"));
        let hit = parse_get([(t("verdict"), t("block")), (t("source"), t("a b"))]).unwrap();
        assert!(hit
            .to_entry()
            .unwrap_err()
            .to_string()
            .contains("bad source"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn arb_attributes() -> impl Strategy<Value = Attributes> {
            let country = proptest::option::of("[A-Z]{2}")
                .prop_map(|c| c.map(|c| Country::parse(&c).expect("two letters")));
            let asn = proptest::option::of(1u32..).prop_map(|n| n.and_then(Asn::new));
            let score = proptest::option::of(0u8..=100).prop_map(|n| n.and_then(Score::new));
            (country, asn, score).prop_map(|(country, asn, score)| Attributes {
                country,
                asn,
                score,
            })
        }

        proptest! {
            /// Whatever the module writes, the clients' parser reads back field for field.
            #[test]
            fn written_hits_parse_back(
                attributes in arb_attributes(),
                ttl in -1i64..70_000_000,
                fresh in any::<bool>(),
                fresh_ttl in -1i64..70_000_000,
                reasons in "[a-z0-9_-]{0,12}",
            ) {
                let hit = GetHit {
                    verdict: Verdict::Challenge,
                    reasons: &reasons,
                    source: "api",
                    ttl_secs: ttl,
                    key: b"ipcheck:192.0.2.1",
                    freshness: Freshness { fresh, fresh_ttl_secs: fresh_ttl },
                    attributes,
                };
                let pairs = written(&hit);
                let parsed = parse_get(pairs.iter().map(|(k, v)| {
                    let v = match *v {
                        FieldValue::Text(b) => ReplyValue::Text(b),
                        FieldValue::Int(n) => ReplyValue::Int(n),
                    };
                    (ReplyValue::Text(k.as_bytes()), v)
                }))
                .unwrap();
                prop_assert_eq!(parsed, hit);
            }

            /// Any reply at all: an error or a hit, never a panic.
            #[test]
            fn parsing_never_panics(
                pairs in proptest::collection::vec(
                    (
                        prop_oneof![
                            proptest::sample::select(GET_FIELDS.map(GetField::name).to_vec())
                                .prop_map(|n| n.as_bytes().to_vec()),
                            proptest::collection::vec(any::<u8>(), 0..8),
                        ],
                        prop_oneof![
                            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Ok),
                            any::<i64>().prop_map(Err),
                        ],
                    ),
                    0..14,
                )
            ) {
                let _ = parse_get(pairs.iter().map(|(k, v)| {
                    let v = match v {
                        Ok(b) => ReplyValue::Text(b),
                        Err(n) => ReplyValue::Int(*n),
                    };
                    (ReplyValue::Text(k), v)
                }));
            }
        }
    }
}
