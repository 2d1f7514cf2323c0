//! One decision event: the fields appended to the events stream, in one table
//! ([`Event::fields`]), each field's text made safe to hand to any consumer.
//!
//! The original method and URI come from the drop-in's `X-Original-Method` and `X-Original-URI`
//! (nginx's `$request_method` and `$request_uri`). They describe the client's request and are
//! copied into the event only: nothing decides on them.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};

use crate::decide::{Outcome, POLICY_HEADER};
use crate::decision_log::{request_id, sanitize, Dash};

/// The request header carrying the client request's method (`$request_method`).
pub const METHOD_HEADER: &str = "x-original-method";
/// The request header carrying the client request's URI, query included (`$request_uri`).
pub const URI_HEADER: &str = "x-original-uri";
/// The longest `uri` field, in bytes after escaping; a longer one is cut there.
pub const URI_MAX: usize = 2048;

/// The field names, in the order every event carries them.
pub const FIELDS: [&str; 15] = [
    "ts",
    "request_id",
    "address",
    "key",
    "policy",
    "mode",
    "verdict",
    "reason",
    "answer",
    "tier",
    "country",
    "asn",
    "score",
    "method",
    "uri",
];

/// A decision event, ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    values: [String; FIELDS.len()],
}

impl Event {
    /// The event of one `/auth` request and its outcome, decided at `now`.
    pub fn new(headers: &HeaderMap, outcome: &Outcome, now: SystemTime) -> Event {
        let ts = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let policy = match headers.get(POLICY_HEADER).map(HeaderValue::as_bytes) {
            None | Some(b"") => "default",
            Some(name) => sanitize(name),
        };
        let text = |v: &HeaderValue| v.to_str().unwrap_or("").to_owned();
        let address = outcome
            .address
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        let key = match outcome.key.to_str() {
            Ok("") | Err(_) => "-".to_owned(),
            Ok(k) => k.to_owned(),
        };
        let method = headers
            .get(METHOD_HEADER)
            .map_or("-", |v| sanitize(v.as_bytes()));
        let uri = headers
            .get(URI_HEADER)
            .map_or_else(|| "-".to_owned(), |v| escape_uri(v.as_bytes()));
        Event {
            values: [
                ts.to_string(),
                request_id(headers).to_owned(),
                address,
                key,
                policy.to_owned(),
                outcome.mode.as_str().to_owned(),
                outcome.verdict.as_str().to_owned(),
                text(&outcome.reason),
                outcome.answer().as_str().to_owned(),
                outcome.tier.as_str().to_owned(),
                Dash(outcome.attributes.country).to_string(),
                Dash(outcome.attributes.asn).to_string(),
                Dash(outcome.attributes.score).to_string(),
                method.to_owned(),
                uri,
            ],
        }
    }

    /// `(name, value)` pairs, in [`FIELDS`] order: the arguments after `XADD <stream> ... *`.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        FIELDS
            .iter()
            .copied()
            .zip(self.values.iter().map(String::as_str))
    }
}

/// A URI as an event field: visible ASCII kept, every other byte (space, control, DEL, non-ASCII)
/// as `%XX`, cut at [`URI_MAX`] bytes (never inside an escape); `-` when empty.
pub fn escape_uri(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().min(URI_MAX));
    for &b in raw {
        let piece_len = if b.is_ascii_graphic() { 1 } else { 3 };
        if out.len() + piece_len > URI_MAX {
            break;
        }
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        "-".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Tier;
    use crate::mode::Mode;
    use ipcheck_core::Verdict;
    use std::time::Duration;

    fn outcome(mode: Mode) -> Outcome {
        Outcome {
            verdict: Verdict::Block,
            reason: HeaderValue::from_static("tor"),
            tier: Tier::Provider,
            key: HeaderValue::from_static("2001:db8::/64"),
            address: Some("2001:db8::7".parse().expect("an address")),
            mode,
            attributes: ipcheck_core::Attributes {
                country: ipcheck_core::Country::parse("NL").ok(),
                ..Default::default()
            },
        }
    }

    fn field<'a>(e: &'a Event, name: &str) -> &'a str {
        e.fields()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    #[test]
    fn every_field_of_an_observed_block() {
        let mut headers = HeaderMap::new();
        headers.insert(POLICY_HEADER, HeaderValue::from_static("preview"));
        headers.insert("x-request-id", HeaderValue::from_static("abc123"));
        headers.insert(METHOD_HEADER, HeaderValue::from_static("POST"));
        headers.insert(URI_HEADER, HeaderValue::from_static("/login?next=/a%20b"));
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let e = Event::new(&headers, &outcome(Mode::Observe), at);
        let pairs: Vec<(&str, &str)> = e.fields().collect();
        assert_eq!(
            pairs,
            vec![
                ("ts", "1700000000123"),
                ("request_id", "abc123"),
                ("address", "2001:db8::7"),
                ("key", "2001:db8::/64"),
                ("policy", "preview"),
                ("mode", "observe"),
                ("verdict", "block"),
                ("reason", "tor"),
                ("answer", "allow"),
                ("tier", "provider"),
                ("country", "NL"),
                ("asn", "-"),
                ("score", "-"),
                ("method", "POST"),
                ("uri", "/login?next=/a%20b"),
            ]
        );
    }

    #[test]
    fn missing_and_hostile_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            METHOD_HEADER,
            HeaderValue::from_bytes(b"GET\tX").expect("a tab is a valid header byte"),
        );
        headers.insert(
            URI_HEADER,
            HeaderValue::from_bytes(b"/a b\xff\t").expect("obs-text is a valid header byte"),
        );
        let mut o = outcome(Mode::Enforce);
        o.address = None;
        o.key = HeaderValue::from_static("");
        let e = Event::new(&headers, &o, UNIX_EPOCH);
        assert_eq!(field(&e, "request_id"), "-");
        assert_eq!(field(&e, "policy"), "default");
        assert_eq!(field(&e, "address"), "-");
        assert_eq!(field(&e, "key"), "-");
        assert_eq!(field(&e, "mode"), "enforce");
        assert_eq!(
            (field(&e, "country"), field(&e, "asn"), field(&e, "score")),
            ("NL", "-", "-")
        );
        assert_eq!(field(&e, "answer"), "block");
        assert_eq!(field(&e, "method"), "-");
        assert_eq!(field(&e, "uri"), "/a%20b%FF%09");
        let e = Event::new(&HeaderMap::new(), &o, UNIX_EPOCH);
        assert_eq!(field(&e, "method"), "-");
        assert_eq!(field(&e, "uri"), "-");
    }

    proptest::proptest! {
        /// Any bytes a client can put in a URI give a field of visible ASCII, at most URI_MAX
        /// bytes, that is the URI itself whenever it already was such a field.
        #[test]
        fn any_uri_gives_a_safe_field(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            let field = escape_uri(&raw);
            proptest::prop_assert!(!field.is_empty() && field.len() <= URI_MAX);
            proptest::prop_assert!(field.bytes().all(|b| b.is_ascii_graphic()));
            if !raw.is_empty() && raw.len() <= URI_MAX && raw.iter().all(u8::is_ascii_graphic) {
                proptest::prop_assert_eq!(field.as_bytes(), &raw[..]);
            }
        }
    }

    #[test]
    fn long_uris_are_cut_between_escapes() {
        assert_eq!(escape_uri(b""), "-");
        let long = vec![b'a'; URI_MAX + 10];
        assert_eq!(escape_uri(&long).len(), URI_MAX);
        let mut spaced = vec![b'a'; URI_MAX - 2];
        spaced.extend_from_slice(b"  ");
        let cut = escape_uri(&spaced);
        assert_eq!(
            cut.len(),
            URI_MAX - 2,
            "a %20 that does not fit is left out whole"
        );
        assert!(cut.bytes().all(|b| b == b'a'));
    }
}
