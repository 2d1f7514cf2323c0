//! `X-IPCheck-Country`, `X-IPCheck-ASN` and `X-IPCheck-Score` on `/auth` answers: the
//! attributes of the facts or the pin the decision was made from, each only when known.
//!
//! Facts from any tier (the provider, Redis, the local tier, a stale entry, an answer learnt
//! while Redis could not be asked) give them, and so does an operator's pin, with the attributes
//! stored with it (`ipcheck-auth pin --country/--asn/--score`, `IPCHECK SET ... SOURCE manual
//! COUNTRY ..`): the operator's word is all the service knows about a pinned address, so the
//! backend gets it as it would a provider's. A decision made without facts or a pin (a deny or
//! allow list, a named list that decided before any tier was asked, `on_error`) sends none. A
//! decision with no attribute known (a pin stored without any, every fact without a country, AS
//! number or score source) adds nothing. Country and score values come from tables built once
//! (676 two-letter codes, 101 scores), so their headers are a reference-count increment, not an
//! allocation; an AS number, of which there are billions, is written into a fresh value.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ipcheck_core::{Attributes, Country, Score};

use crate::cache::{Known, Unpinned};

/// The country, two uppercase letters (`US`).
pub const COUNTRY: HeaderName = HeaderName::from_static("x-ipcheck-country");
/// The AS number, digits only (`13335`).
pub const ASN: HeaderName = HeaderName::from_static("x-ipcheck-asn");
/// The score, 0 to 100.
pub const SCORE: HeaderName = HeaderName::from_static("x-ipcheck-score");

/// The attributes of the facts or the pin a decision was made from; none without either.
pub fn attributes(known: Option<&Known>) -> Attributes {
    match known {
        Some(Known::Facts(f) | Known::Stale(f) | Known::WithoutRedis(Unpinned::Facts(f))) => {
            f.attributes
        }
        Some(Known::Pinned { attributes, .. }) => *attributes,
        _ => Attributes::NONE,
    }
}

/// Adds a header for each known attribute.
pub fn insert(headers: &mut HeaderMap, a: &Attributes) {
    if let Some(c) = a.country {
        headers.insert(COUNTRY, country_value(c));
    }
    if let Some(n) = a.asn {
        headers.insert(ASN, HeaderValue::from(n.get()));
    }
    if let Some(s) = a.score {
        headers.insert(SCORE, score_value(s));
    }
}

/// Every `AA`..`ZZ`, in order: a country's value is a clone (shared bytes) of its entry.
fn country_value(c: Country) -> HeaderValue {
    static TABLE: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (b'A'..=b'Z')
            .flat_map(|a| (b'A'..=b'Z').map(move |b| [a, b]))
            // Two ASCII letters: always a valid header value.
            .map(|code| HeaderValue::from_bytes(&code).unwrap_or(HeaderValue::from_static("")))
            .collect()
    });
    // A Country is two uppercase ASCII letters by construction.
    let [a, b] = c.as_str().as_bytes() else {
        return HeaderValue::from_static("");
    };
    let i = usize::from(a - b'A') * 26 + usize::from(b - b'A');
    table
        .get(i)
        .cloned()
        .unwrap_or(HeaderValue::from_static(""))
}

/// `0`..`100`: a score's value is a clone (shared bytes) of its entry.
fn score_value(s: Score) -> HeaderValue {
    static TABLE: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..=u16::from(Score::MAX)).map(HeaderValue::from).collect());
    table
        .get(usize::from(s.get()))
        .cloned()
        .unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{Asn, Facts, ReasonSet, Verdict};
    use std::sync::Arc;

    fn facts() -> Facts {
        Facts {
            attributes: Attributes {
                country: Country::parse("de").ok(),
                asn: Asn::new(3320),
                score: Score::new(0),
            },
            ..Facts::EMPTY
        }
    }

    #[test]
    fn known_attributes_become_headers() {
        let mut h = HeaderMap::new();
        insert(&mut h, &attributes(Some(&Known::Facts(facts()))));
        assert_eq!(h.get(COUNTRY).map(|v| v.as_bytes()), Some(&b"DE"[..]));
        assert_eq!(h.get(ASN).map(|v| v.as_bytes()), Some(&b"3320"[..]));
        // A score of 0 is known (clean), not absent.
        assert_eq!(h.get(SCORE).map(|v| v.as_bytes()), Some(&b"0"[..]));
        // Only what is known.
        let mut h = HeaderMap::new();
        let only_asn = Facts {
            attributes: Attributes {
                asn: Asn::new(64500),
                ..Attributes::NONE
            },
            ..Facts::EMPTY
        };
        insert(&mut h, &attributes(Some(&Known::Stale(only_asn))));
        assert_eq!(h.len(), 1);
        assert_eq!(h.get(ASN).map(|v| v.as_bytes()), Some(&b"64500"[..]));
    }

    #[test]
    fn every_country_and_score_has_its_value() {
        for a in b'A'..=b'Z' {
            for b in b'a'..=b'z' {
                let text = String::from_utf8(vec![a, b]).unwrap();
                let c = Country::parse(&text).unwrap();
                assert_eq!(country_value(c), c.as_str());
            }
        }
        for n in 0..=Score::MAX {
            assert_eq!(score_value(Score::new(n).unwrap()), n.to_string().as_str());
        }
    }

    #[test]
    fn a_pin_sends_what_it_carries() {
        let pin = |attributes| Known::Pinned {
            verdict: Verdict::Block,
            text: Arc::from("manual"),
            reasons: ReasonSet::NONE,
            attributes,
        };
        let carried = facts().attributes;
        assert_eq!(attributes(Some(&pin(carried))), carried);
        let mut h = HeaderMap::new();
        insert(&mut h, &attributes(Some(&pin(carried))));
        assert_eq!(h.get(COUNTRY).map(|v| v.as_bytes()), Some(&b"DE"[..]));
        assert_eq!(h.get(ASN).map(|v| v.as_bytes()), Some(&b"3320"[..]));
        assert_eq!(h.get(SCORE).map(|v| v.as_bytes()), Some(&b"0"[..]));
        // A pin stored without attributes sends none.
        assert_eq!(attributes(Some(&pin(Attributes::NONE))), Attributes::NONE);
    }

    #[test]
    fn no_facts_no_headers() {
        for known in [None, Some(&Known::ProviderError), Some(&Known::Nothing)] {
            assert_eq!(attributes(known), Attributes::NONE);
        }
        let learnt = Known::WithoutRedis(Unpinned::Facts(facts()));
        assert_eq!(attributes(Some(&learnt)), facts().attributes);
        let mut h = HeaderMap::new();
        insert(&mut h, &Attributes::NONE);
        assert!(h.is_empty());
    }
}
