//! A byte-level IPv6 text parser that accepts exactly what `std`'s `Ipv6Addr::from_str` accepts.
//!
//! Normalization runs on every request, and `std`'s parser (generic over radixes and built from
//! backtracking closures) spent most of its budget on a full eight-group address (see
//! bench/README.md, "Micro-benchmarks").
//! This is the same algorithm over bytes in one forward pass with explicit restore points:
//! groups of 1 to 4 hex digits, at most one `::` standing for at least one zero group, and an
//! embedded dotted quad (strict: 1 to 3 digits, no leading zero, at most 255) only where two
//! groups are left and only as the last thing. A property test checks it against `std` on random
//! and adversarial inputs, so the two can never disagree about what is an address.

use std::net::Ipv6Addr;

use super::ipv4::dotted_quad;

/// Parses `text` as `std` would; `None` where `std` returns an error.
pub(super) fn parse(text: &[u8]) -> Option<Ipv6Addr> {
    let mut at = 0;
    let mut head = [0u16; 8];
    let (head_len, head_v4) = groups(text, &mut at, &mut head);
    if head_len == 8 {
        return (at == text.len()).then(|| Ipv6Addr::from(head));
    }
    // A dotted quad ends the address: it cannot come before `::`.
    if head_v4 || text.get(at..at + 2) != Some(b"::") {
        return None;
    }
    at += 2;
    // `::` stands for at least one group, so at most 7 - head_len follow it.
    let mut tail = [0u16; 7];
    let (tail_len, _) = groups(text, &mut at, &mut tail[..7 - head_len]);
    if at != text.len() {
        return None;
    }
    head[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
    Some(Ipv6Addr::from(head))
}

/// Reads up to `out.len()` `:`-separated groups from `text[*at..]`, a dotted quad counting as two
/// (and ending the run). Returns how many were read and whether the last was a dotted quad; `*at`
/// is left just after the last group read.
fn groups(text: &[u8], at: &mut usize, out: &mut [u16]) -> (usize, bool) {
    let limit = out.len();
    for i in 0..limit {
        let start = *at;
        let mut p = start;
        if i > 0 {
            if text.get(p) != Some(&b':') {
                return (i, false);
            }
            p += 1;
        }
        if i + 1 < limit {
            if let Some((v4, end)) = dotted_quad(text, p) {
                out[i] = u16::from_be_bytes([v4[0], v4[1]]);
                out[i + 1] = u16::from_be_bytes([v4[2], v4[3]]);
                *at = end;
                return (i + 2, true);
            }
        }
        match hex_group(text, p) {
            Some((value, end)) => {
                out[i] = value;
                *at = end;
            }
            None => {
                *at = start;
                return (i, false);
            }
        }
    }
    (limit, false)
}

/// 1 to 4 hex digits at `text[p..]`; a fifth digit makes the group invalid, as in `std`.
fn hex_group(text: &[u8], mut p: usize) -> Option<(u16, usize)> {
    let mut value: u16 = 0;
    let mut digits = 0;
    while let Some(d) = text.get(p).and_then(|&b| (b as char).to_digit(16)) {
        digits += 1;
        if digits > 4 {
            return None;
        }
        value = (value << 4) | d as u16;
        p += 1;
    }
    (digits > 0).then_some((value, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn std_parse(text: &str) -> Option<Ipv6Addr> {
        text.parse().ok()
    }

    #[test]
    fn agrees_with_std_on_edge_cases() {
        for text in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::8",
            "1:2:3:4:5:6::7:8",
            "1::2::3",
            ":::",
            ":1::",
            "1:",
            "1::2:",
            "12345::",
            "0000:0000::0001",
            "::ffff:192.0.2.1",
            "::192.0.2.1",
            "1.2.3.4::",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5:1.2.3.4",
            "::1.2.3",
            "::1.2.3.4.5",
            "::01.2.3.4",
            "::256.2.3.4",
            "::1.2.3.0000",
            "::ffff:1.2.3.4:5",
            "2001:DB8::AbCd",
            "2001:db8:85a3:8d3:1319:8a2e:370:7348",
            "",
            "g::",
            "::g",
        ] {
            assert_eq!(parse(text.as_bytes()), std_parse(text), "{text:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_std_on_random_text(text in "[0-9a-fA-F:.g]{0,45}") {
            prop_assert_eq!(parse(text.as_bytes()), std_parse(&text));
        }

        #[test]
        fn agrees_with_std_on_address_like_text(
            groups in proptest::collection::vec("[0-9a-f]{0,5}|::|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}", 0..10)
        ) {
            let text = groups.join(":");
            prop_assert_eq!(parse(text.as_bytes()), std_parse(&text));
        }

        #[test]
        fn reads_every_address_std_writes(bits: u128, v4 in any::<[u8; 4]>()) {
            let addr = Ipv6Addr::from(bits);
            prop_assert_eq!(parse(addr.to_string().as_bytes()), Some(addr));
            let full = addr.segments().map(|g| format!("{g:04X}")).join(":");
            prop_assert_eq!(parse(full.as_bytes()), Some(addr));
            let mapped = format!("::ffff:{}.{}.{}.{}", v4[0], v4[1], v4[2], v4[3]);
            prop_assert_eq!(parse(mapped.as_bytes()), std_parse(&mapped));
        }
    }
}
