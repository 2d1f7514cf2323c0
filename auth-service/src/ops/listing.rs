//! What `ipcheck-auth pins` prints: one line per pin, sorted by address, then a count. Pure, so
//! a unit test pins the format down.

use std::time::Duration;

use ipcheck_core::{Attributes, Reasons, Verdict};

use crate::cache::redis::NO_EXPIRY;

/// One operator's pin found in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The canonical address or network (the key without prefix and hash-tag braces).
    pub address: String,
    /// The pinned verdict.
    pub verdict: Verdict,
    /// Its reasons (possibly empty).
    pub reasons: Reasons,
    /// Time left, [`NO_EXPIRY`] for a pin without a duration.
    pub left: Duration,
    /// The country, AS number and score stored with it, each possibly unknown.
    pub attributes: Attributes,
}

/// The `SCAN ... MATCH` pattern of every key under `prefix`, glob characters escaped.
pub fn scan_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// The address a module key names (`ipcheck:192.0.2.1`, in a cluster `ipcheck:{192.0.2.1}`).
pub fn address_of_key<'a>(prefix: &str, key: &'a str) -> &'a str {
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    rest.strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(rest)
}

/// The key the module keeps `address` (canonical text) under.
pub fn key_of(prefix: &str, cluster: bool, address: &str) -> String {
    if cluster {
        format!("{prefix}{{{address}}}")
    } else {
        format!("{prefix}{address}")
    }
}

/// Time left as the listing shows it: `never`, or whole seconds (`3600s`).
pub fn left_text(left: Duration) -> String {
    if left >= NO_EXPIRY {
        "never".to_owned()
    } else {
        format!("{}s", left.as_secs())
    }
}

/// `<address> <verdict> <reasons or -> <time left>`, then the pin's known attributes
/// (`country=US asn=13335 score=87`) when it carries any.
pub fn line(pin: &Pin) -> String {
    let reasons = if pin.reasons.is_empty() {
        "-"
    } else {
        pin.reasons.as_str()
    };
    let mut line = format!(
        "{} {} {} {}",
        pin.address,
        pin.verdict.as_str(),
        reasons,
        left_text(pin.left)
    );
    let attributes = super::pin_attributes::text(&pin.attributes);
    if !attributes.is_empty() {
        line.push(' ');
        line.push_str(&attributes);
    }
    line
}

/// Every line of the listing: the pins sorted by address, then `<n> pin(s)`.
pub fn render(mut pins: Vec<Pin>) -> Vec<String> {
    pins.sort_by(|a, b| a.address.cmp(&b.address));
    pins.dedup_by(|a, b| a.address == b.address);
    let count = pins.len();
    let mut lines: Vec<String> = pins.iter().map(line).collect();
    lines.push(format!("{count} pin{}", if count == 1 { "" } else { "s" }));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(address: &str, verdict: Verdict, reasons: &str, left: Duration) -> Pin {
        Pin {
            address: address.to_owned(),
            verdict,
            reasons: Reasons::parse(reasons).unwrap(),
            left,
            attributes: Attributes::NONE,
        }
    }

    #[test]
    fn lines_are_sorted_and_counted() {
        let lines = render(vec![
            pin(
                "2001:db8::/64",
                Verdict::Challenge,
                "",
                Duration::from_secs(90),
            ),
            pin("192.0.2.1", Verdict::Block, "abuse,spam", NO_EXPIRY),
            Pin {
                attributes: Attributes {
                    country: ipcheck_core::Country::parse("US").ok(),
                    asn: ipcheck_core::Asn::new(13335),
                    score: None,
                },
                ..pin("192.0.2.2", Verdict::Allow, "", Duration::from_secs(5))
            },
        ]);
        assert_eq!(
            lines,
            [
                "192.0.2.1 block abuse,spam never",
                "192.0.2.2 allow - 5s country=US asn=13335",
                "2001:db8::/64 challenge - 90s",
                "3 pins"
            ]
        );
        assert_eq!(render(Vec::new()), ["0 pins"]);
    }

    #[test]
    fn keys_and_patterns() {
        assert_eq!(address_of_key("ipcheck:", "ipcheck:192.0.2.1"), "192.0.2.1");
        assert_eq!(
            address_of_key("ipcheck:", "ipcheck:{2001:db8::/64}"),
            "2001:db8::/64"
        );
        assert_eq!(key_of("ipcheck:", true, "192.0.2.1"), "ipcheck:{192.0.2.1}");
        assert_eq!(key_of("ipcheck:", false, "192.0.2.1"), "ipcheck:192.0.2.1");
        assert_eq!(scan_pattern("ip[*]:"), "ip\\[\\*\\]:*");
    }
}
