//! The `X-IPCheck-Reason` value of a decision, built per token instead of from a table of every
//! possible reason set (which grew as 2^N with the vocabulary and leaked its strings).
//!
//! No reason and a single reason (nearly every decision) are the vocabulary's own `&'static str`
//! tokens: a static header value, no allocation, no copy. Only a set of two or more reasons is
//! written on the stack and copied into a header value once.

use axum::http::HeaderValue;
use ipcheck_core::{ReasonSet, ReasonText};

/// The header value for `reasons`: comma-separated tokens in vocabulary bit order.
pub fn reason_header(reasons: ReasonSet) -> HeaderValue {
    if reasons.is_empty() {
        return HeaderValue::from_static("");
    }
    if let Some(token) = reasons.single() {
        return HeaderValue::from_static(token);
    }
    let mut buf = ReasonText::new();
    let text = reasons.write_text(&mut buf);
    // Vocabulary tokens are [a-z0-9-] and commas: always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::vocabulary::{COUNT, KNOWN_MASK};

    #[test]
    fn every_single_token_and_combinations() {
        assert_eq!(reason_header(ReasonSet::NONE), "");
        for bit in 0..COUNT as u32 {
            let set = ReasonSet::from_bits(1 << bit);
            assert_eq!(reason_header(set), set.to_text().as_str());
        }
        assert_eq!(reason_header(ReasonSet::from_bits(0b101)), "vpn,tor");
        let all = ReasonSet::from_bits(KNOWN_MASK);
        assert_eq!(
            reason_header(all),
            ipcheck_core::KNOWN_REASONS.join(",").as_str()
        );
    }
}
