//! A byte-level strict dotted-quad parser that accepts exactly what `std`'s `Ipv4Addr::from_str`
//! accepts: four decimal parts of 1 to 3 digits, each at most 255, with no leading zero except
//! `0` itself, and nothing else (no signs, spaces, hex or shorthand).
//!
//! `std`'s parser needs a `&str`, so bytes from Redis had to pass a UTF-8 check first, and the
//! parser itself (generic over radixes and built from backtracking closures) was together with
//! that check a visible share of redis-server's time in an `IPCHECK GET` of an IPv4 address
//! (bench/README.md). This is one forward pass over bytes. The IPv6 parser reuses [`dotted_quad`] for its embedded IPv4
//! tail, so both agree on what a dotted quad is, and property tests check both against `std`.

use std::net::Ipv4Addr;

/// Longest dotted quad (`255.255.255.255`); `std` refuses anything longer before parsing.
const MAX_LEN: usize = 15;

/// Parses `text` as `std` would; `None` where `std` returns an error.
pub(super) fn parse(text: &[u8]) -> Option<Ipv4Addr> {
    if text.len() > MAX_LEN {
        return None;
    }
    match dotted_quad(text, 0) {
        Some((octets, end)) if end == text.len() => Some(Ipv4Addr::from(octets)),
        _ => None,
    }
}

/// A strict dotted quad at `text[p..]` and where it ends (anything may follow it; the caller
/// decides).
pub(super) fn dotted_quad(text: &[u8], mut p: usize) -> Option<([u8; 4], usize)> {
    let mut octets = [0u8; 4];
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            if text.get(p) != Some(&b'.') {
                return None;
            }
            p += 1;
        }
        let first = p;
        let mut value: u32 = 0;
        while let Some(&b) = text.get(p).filter(|b| b.is_ascii_digit()) {
            // A fourth digit makes the part invalid even as `0001`, as in `std`.
            if p - first == 3 {
                return None;
            }
            value = value * 10 + u32::from(b - b'0');
            p += 1;
        }
        let len = p - first;
        // `010` is 8 to some parsers and 10 to others; refusing it is the only safe reading.
        if len == 0 || (len > 1 && text[first] == b'0') || value > 255 {
            return None;
        }
        *octet = value as u8;
    }
    Some((octets, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn std_parse(text: &str) -> Option<Ipv4Addr> {
        text.parse().ok()
    }

    #[test]
    fn agrees_with_std_on_edge_cases() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.1",
            "1.2.3.4",
            "256.0.0.1",
            "1.2.3.256",
            "999.0.0.1",
            "01.2.3.4",
            "1.2.3.04",
            "00.0.0.0",
            "0.0.0.00",
            "1.2.3.0000",
            "1.2.3.1234",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4.",
            ".1.2.3.4",
            "1..2.3",
            "1.2..3.4",
            "",
            ".",
            "...",
            "1",
            "16909060",
            "+1.2.3.4",
            "-1.2.3.4",
            "1.2.3.+4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1.2.3.4\0",
            "0x7f.0.0.1",
            "1.2.3.4/32",
            "1.2.3.4:80",
            "١.٢.٣.٤",
            "255.255.255.2550",
        ] {
            assert_eq!(parse(text.as_bytes()), std_parse(text), "{text:?}");
        }
    }

    #[test]
    fn refuses_non_ascii_bytes() {
        for text in [&b"1.2.3.\xff"[..], b"\xb9.2.3.4", b"1.2\x80.3.4"] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    /// One part of an almost-valid quad: empty, or up to 4 digits, some with leading zeros, some
    /// over 255. Values and zeros are skewed so that most parts are nearly right: with uniform
    /// values up to 999 and uniform zeros, four good parts with one leading zero among them were
    /// too rare for a parser that allowed leading zeros to be caught.
    fn near_valid_part() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            0u32..=9,
            10u32..=99,
            100u32..=255,
            256u32..=999,
            proptest::sample::select(vec![0u32, 9, 10, 99, 100, 255, 256]),
        ];
        let zeros = prop_oneof![4 => Just(0usize), 1 => 1usize..=3];
        prop_oneof![
            1 => Just(String::new()),
            12 => (value, zeros).prop_map(|(value, zeros)| {
                let digits = value.to_string();
                let zeros = zeros.min(4 - digits.len());
                format!("{}{digits}", "0".repeat(zeros))
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_std_on_digits_and_dots(text in "[0-9.]{0,20}") {
            prop_assert_eq!(parse(text.as_bytes()), std_parse(&text));
        }

        #[test]
        fn agrees_with_std_on_near_valid_quads(
            parts in proptest::collection::vec(near_valid_part(), 1..=4),
        ) {
            let text = parts.join(".");
            prop_assert_eq!(parse(text.as_bytes()), std_parse(&text));
        }

        #[test]
        fn reads_every_address_std_writes(bits: u32) {
            let addr = Ipv4Addr::from(bits);
            prop_assert_eq!(parse(addr.to_string().as_bytes()), Some(addr));
        }
    }
}
