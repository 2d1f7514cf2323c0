use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn norm(s: &str) -> Result<String, NormalizeError> {
    normalize(s, Aggregation::DEFAULT).map(|n| n.to_string())
}

#[test]
fn accepted_forms() {
    let cases = [
        ("192.0.2.1", "192.0.2.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("192.0.2.1/32", "192.0.2.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::1]", "2001:db8:1:2::/64"),
        (
            "2001:0db8:0001:0002:0000:0000:0000:0001",
            "2001:db8:1:2::/64",
        ),
        ("2001:db8:1:2::/64", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::5/64", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::5/128", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:0:0:1.2.3.4", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::FFFF:c000:201", "192.0.2.1"),
        ("[::ffff:192.0.2.1]", "192.0.2.1"),
        ("0:0:0:0:0:ffff:c000:0201", "192.0.2.1"),
        ("::ffff:192.0.2.1/128", "192.0.2.1"),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input).as_deref(), Ok(want), "input {input}");
    }
}

#[test]
fn rejected_forms() {
    let cases = [
        "",
        "1.2.3",
        "010.0.0.1",
        "0x7f.0.0.1",
        "16909060",
        "192.0.2.1.",
        "192.0.2.1 ",
        " 192.0.2.1",
        "256.0.0.1",
        "1.2.3.4.5",
        "fe80::1%eth0",
        "[fe80::1%eth0]",
        "2001:db8::1::2",
        "2001:db8:::1",
        "[2001:db8::1",
        "2001:db8::1]",
        "[192.0.2.1]",
        "gggg::1",
        "192.0.2.1/",
        "192.0.2.1/33",
        "192.0.2.1/032",
        "192.0.2.1/24",
        "2001:db8::/48",
        "2001:db8::1/129",
        "::ffff:1.2.3.4/64",
        "localhost",
        "1.2.3.4:80",
    ];
    for input in cases {
        assert!(
            norm(input).is_err(),
            "input {input:?} should be rejected, got {:?}",
            norm(input)
        );
    }
}

#[test]
fn error_messages_quote_the_input() {
    let err = norm("010.0.0.1").unwrap_err().to_string();
    assert!(err.contains("010.0.0.1"), "{err}");
    let err = norm("fe80::1%eth0").unwrap_err().to_string();
    assert!(err.contains("zone"), "{err}");
}

#[test]
fn custom_aggregation() {
    let agg = Aggregation::new(24, 48).unwrap();
    let n = |s| normalize(s, agg).map(|n| n.to_string());
    assert_eq!(n("192.0.2.77").as_deref(), Ok("192.0.2.0/24"));
    assert_eq!(n("192.0.2.0/24").as_deref(), Ok("192.0.2.0/24"));
    assert_eq!(n("2001:db8:1:2::1").as_deref(), Ok("2001:db8:1::/48"));
    let full = Aggregation::new(32, 128).unwrap();
    assert_eq!(
        normalize("2001:db8::1", full).unwrap().to_string(),
        "2001:db8::1"
    );
}

#[test]
fn aggregation_bounds() {
    assert!(Aggregation::new(15, 64).is_err());
    assert!(Aggregation::new(33, 64).is_err());
    assert!(Aggregation::new(32, 31).is_err());
    assert!(Aggregation::new(32, 129).is_err());
    assert!(Aggregation::new(16, 32).is_ok());
}

#[test]
fn key_has_prefix() {
    let ip = normalize("2001:db8:1:2::9", Aggregation::DEFAULT).unwrap();
    assert_eq!(cache_key("ipcheck:", &ip), "ipcheck:2001:db8:1:2::/64");
}

/// Every way of writing one IPv6 address: hex case, zero padding, bracketing, and
/// `::` compression of any zero run.
fn v6_spellings(addr: Ipv6Addr) -> Vec<String> {
    let segs = addr.segments();
    let full: Vec<String> = segs.iter().map(|s| format!("{s:x}")).collect();
    let mut out = vec![
        full.join(":"),
        segs.iter()
            .map(|s| format!("{s:04X}"))
            .collect::<Vec<_>>()
            .join(":"),
        format!("[{}]", full.join(":")),
        addr.to_string(),
        addr.to_string().to_uppercase(),
    ];
    // Compress every run of zero groups (length ≥ 1) with `::`.
    for start in 0..8 {
        for end in start + 1..=8 {
            if segs[start..end].iter().all(|&s| s == 0) {
                let head = full[..start].join(":");
                let tail = full[end..].join(":");
                out.push(format!("{head}::{tail}"));
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn own_canonical_means_what_normalizing_gives(
        text in "[0-9.:a-f/]{0,20}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,4}",
        v4 in 16u8..=32,
    ) {
        let agg = Aggregation::new(v4, 64).unwrap();
        if is_own_canonical(text.as_bytes(), agg) {
            let canonical = normalize(&text, agg).unwrap().canonical_text();
            prop_assert_eq!(canonical.as_str(), text.as_str());
        }
    }

    #[test]
    fn idempotent_v4(a in any::<u32>(), v4 in 16u8..=32) {
        let agg = Aggregation::new(v4, 64).unwrap();
        let once = normalize(&Ipv4Addr::from(a).to_string(), agg).unwrap().to_string();
        let twice = normalize(&once, agg).unwrap().to_string();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn idempotent_v6(a in any::<u128>(), v6 in 32u8..=128) {
        let agg = Aggregation::new(32, v6).unwrap();
        let once = normalize(&Ipv6Addr::from(a).to_string(), agg).unwrap().to_string();
        let twice = normalize(&once, agg).unwrap().to_string();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn every_spelling_in_a_64_maps_to_one_key(net in any::<u64>(), host_a in any::<u64>(), host_b in any::<u64>()) {
        let a = Ipv6Addr::from(((net as u128) << 64) | host_a as u128);
        let b = Ipv6Addr::from(((net as u128) << 64) | host_b as u128);
        prop_assume!(a.to_ipv4_mapped().is_none());
        let want = normalize(&a.to_string(), Aggregation::DEFAULT).unwrap();
        for s in v6_spellings(a).into_iter().chain(v6_spellings(b)) {
            prop_assert_eq!(normalize(&s, Aggregation::DEFAULT), Ok(want), "spelling {}", s);
        }
    }

    #[test]
    fn mapped_equals_v4(a in any::<u32>()) {
        let v4 = Ipv4Addr::from(a);
        let want = normalize(&v4.to_string(), Aggregation::DEFAULT).unwrap();
        let mapped = v4.to_ipv6_mapped();
        for s in [mapped.to_string(), format!("::FFFF:{:x}:{:x}", a >> 16, a & 0xffff), format!("[{mapped}]")] {
            prop_assert_eq!(normalize(&s, Aggregation::DEFAULT), Ok(want), "spelling {}", s);
        }
    }

    #[test]
    fn never_panics_on_garbage(s in "\\PC{0,80}") {
        let _ = normalize(&s, Aggregation::DEFAULT);
    }

    #[test]
    fn canonical_output_parses_back_for_any_ascii(s in "[0-9a-fA-F:.\\[\\]/%]{1,45}") {
        if let Ok(n) = normalize(&s, Aggregation::DEFAULT) {
            prop_assert_eq!(normalize(&n.to_string(), Aggregation::DEFAULT), Ok(n));
        }
    }
}

/// What `Display` wrote before `CanonicalText`: `std`'s address Display, then `/len` unless the
/// prefix is the full address.
fn reference_text(net: IpNet) -> String {
    match net {
        IpNet::V4(n) if n.prefix_len() == 32 => n.network().to_string(),
        IpNet::V6(n) if n.prefix_len() == 128 => n.network().to_string(),
        net => format!("{}/{}", net.network(), net.prefix_len()),
    }
}

/// An identity for any network, including ones `normalize` never produces (IPv4-mapped IPv6).
fn identity(net: IpNet) -> NormalizedIp {
    NormalizedIp { net: net.trunc() }
}

fn v6_net(addr: Ipv6Addr, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(addr, len))
}

/// Checks the canonical text of `ip` against `std` and `Display`, and that it fits the bound.
fn assert_text_matches_std(ip: NormalizedIp) {
    let text = ip.canonical_text();
    let want = reference_text(ip.net());
    assert_eq!(text.as_str(), want);
    assert_eq!(text.as_bytes(), want.as_bytes());
    assert_eq!(ip.to_string(), want);
    assert!(text.as_bytes().len() <= CanonicalText::MAX_LEN);
}

#[test]
fn canonical_text_cases() {
    let v4 = |a: [u8; 4], len| identity(IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), len)));
    let v6 = |s: &str, len| identity(v6_net(s.parse().unwrap(), len));
    let cases = [
        (v4([0, 0, 0, 0], 32), "0.0.0.0"),
        (v4([255, 255, 255, 255], 32), "255.255.255.255"),
        (v4([192, 0, 2, 1], 32), "192.0.2.1"),
        (v4([10, 9, 100, 99], 32), "10.9.100.99"),
        (v4([192, 0, 2, 77], 24), "192.0.2.0/24"),
        (v4([172, 16, 5, 4], 16), "172.16.0.0/16"),
        (v6("::", 128), "::"),
        (v6("::1", 128), "::1"),
        (v6("1::", 128), "1::"),
        (v6("2001:db8:1:2::9", 64), "2001:db8:1:2::/64"),
        (v6("2001:db8:1:2::9", 48), "2001:db8:1::/48"),
        (v6("2001:db8::1", 128), "2001:db8::1"),
        // A single zero group is written `0`, not `::`.
        (v6("2001:db8:0:1:1:1:1:1", 128), "2001:db8:0:1:1:1:1:1"),
        // The longest run wins; on a tie, the leftmost.
        (v6("1:0:0:2:0:0:0:3", 128), "1:0:0:2::3"),
        (v6("2001:db8:0:0:1:0:0:1", 128), "2001:db8::1:0:0:1"),
        (v6("0:0:1:0:0:1:0:0", 128), "::1:0:0:1:0:0"),
        (v6("1:0:0:0:0:0:0:0", 127), "1::/127"),
        (v6("ABCD:F:FF:FFF:0:0:0:0", 64), "abcd:f:ff:fff::/64"),
        // Longest text there is.
        (
            v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 127),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127",
        ),
        // std writes mapped addresses with a dotted quad, compatible ones in hex.
        (v6("::ffff:192.0.2.1", 128), "::ffff:192.0.2.1"),
        (v6("::ffff:0:0", 96), "::ffff:0.0.0.0/96"),
        (v6("::192.0.2.1", 128), "::c000:201"),
    ];
    for (ip, want) in cases {
        assert_eq!(ip.canonical_text().as_str(), want);
        assert_text_matches_std(ip);
    }
    assert_eq!(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127".len(),
        CanonicalText::MAX_LEN
    );
}

#[test]
fn display_pads_the_whole_text() {
    let ip = normalize("2001:db8::1", Aggregation::DEFAULT).unwrap();
    assert_eq!(format!("{ip:>15}|"), "  2001:db8::/64|");
    let text = ip.canonical_text();
    assert_eq!(format!("{text:<15}|"), "2001:db8::/64  |");
    assert_eq!(format!("{text:?}"), "\"2001:db8::/64\"");
}

/// IPv6 addresses with zero runs of every shape: uniform u128s almost never have any.
fn v6_with_zero_runs() -> impl Strategy<Value = Ipv6Addr> {
    let group = prop_oneof![3 => Just(0u16), 1 => Just(0xffff), 2 => any::<u16>()];
    proptest::array::uniform8(group).prop_map(Ipv6Addr::from)
}

proptest! {
    #[test]
    fn canonical_text_v4_matches_std(a in any::<u32>()) {
        let addr = Ipv4Addr::from(a);
        for len in 0..=32 {
            assert_text_matches_std(identity(IpNet::V4(Ipv4Net::new_assert(addr, len))));
        }
        for v4 in 16..=32 {
            let agg = Aggregation::new(v4, 64).unwrap();
            let ip = normalize(&addr.to_string(), agg).unwrap();
            assert_text_matches_std(ip);
            prop_assert_eq!(normalize(ip.canonical_text().as_str(), agg), Ok(ip));
        }
    }

    #[test]
    fn canonical_text_v6_matches_std(
        addr in prop_oneof![any::<u128>().prop_map(Ipv6Addr::from), v6_with_zero_runs()],
    ) {
        for len in 0..=128 {
            assert_text_matches_std(identity(v6_net(addr, len)));
        }
        for v6 in 32..=128 {
            let agg = Aggregation::new(32, v6).unwrap();
            let ip = normalize(&addr.to_string(), agg).unwrap();
            assert_text_matches_std(ip);
            prop_assert_eq!(normalize(ip.canonical_text().as_str(), agg), Ok(ip));
        }
    }

    #[test]
    fn canonical_text_mapped_matches_std(a in any::<u32>(), len in 96u8..=128) {
        let mapped = Ipv4Addr::from(a).to_ipv6_mapped();
        assert_text_matches_std(identity(v6_net(mapped, len)));
    }
}

#[test]
fn bytes_refusals_keep_their_variants() {
    let n = |b: &[u8]| normalize_bytes(b, Aggregation::DEFAULT);
    assert_eq!(n(b""), Err(NormalizeError::Empty));
    assert_eq!(n(&[b'9'; 65]), Err(NormalizeError::TooLong(65)));
    assert_eq!(
        n(b"010.0.0.1"),
        Err(NormalizeError::Invalid("010.0.0.1".into()))
    );
    assert_eq!(
        n(b"fe80::1%eth0"),
        Err(NormalizeError::Zone("fe80::1%eth0".into()))
    );
    assert_eq!(
        n(b"192.0.2.1/33"),
        Err(NormalizeError::BadPrefix("192.0.2.1/33".into()))
    );
    assert_eq!(
        n(b"192.0.2.1/24"),
        Err(NormalizeError::TooWide {
            input: "192.0.2.1/24".into(),
            max: 32
        })
    );
    // Valid UTF-8 that is not ASCII goes through the rules like any other text.
    assert_eq!(
        n("fe80::1%é".as_bytes()),
        Err(NormalizeError::Zone("fe80::1%é".into()))
    );
    assert_eq!(
        n("192.0.2.1/é".as_bytes()),
        Err(NormalizeError::BadPrefix("192.0.2.1/é".into()))
    );
}

#[test]
fn bytes_that_are_not_utf8_are_invalid_whatever_their_shape() {
    let n = |b: &[u8]| normalize_bytes(b, Aggregation::DEFAULT);
    let invalid = |s: &str| Err(NormalizeError::Invalid(s.into()));
    assert_eq!(n(b"\xff"), invalid("\u{fffd}"));
    assert_eq!(n(b"192.0.2.\xff"), invalid("192.0.2.\u{fffd}"));
    // Shapes that are a zone, a bad prefix or too long as text: the UTF-8 check callers made
    // before normalizing refused these as invalid, and still does.
    assert_eq!(n(b"fe80::1%\xff"), invalid("fe80::1%\u{fffd}"));
    assert_eq!(n(b"192.0.2.1/\xc3"), invalid("192.0.2.1/\u{fffd}"));
    let long = [0xffu8; 65];
    assert_eq!(n(&long), invalid(&"\u{fffd}".repeat(65)));
}

/// Bytes from the address alphabet mixed with bytes that are not ASCII, so that inputs which are
/// not UTF-8 still reach every rule.
fn address_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => proptest::sample::select(b"0123456789abcdefABCDEF:.[]/%".to_vec()),
        1 => 0x80u8..=0xff,
    ];
    proptest::collection::vec(byte, 0..70)
}

proptest! {
    #[test]
    fn bytes_agree_with_text_on_any_string(s in "\\PC{0,80}") {
        prop_assert_eq!(
            normalize_bytes(s.as_bytes(), Aggregation::DEFAULT),
            normalize(&s, Aggregation::DEFAULT)
        );
    }

    #[test]
    fn bytes_agree_with_text_on_address_like_strings(
        s in "[0-9a-fA-F:.\\[\\]/%é]{0,70}",
        v4 in 16u8..=32,
        v6 in 32u8..=128,
    ) {
        let agg = Aggregation::new(v4, v6).unwrap();
        prop_assert_eq!(normalize_bytes(s.as_bytes(), agg), normalize(&s, agg));
    }

    #[test]
    fn bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = normalize_bytes(&bytes, Aggregation::DEFAULT);
    }

    #[test]
    fn bytes_not_utf8_are_invalid(bytes in address_like_bytes()) {
        let got = normalize_bytes(&bytes, Aggregation::DEFAULT);
        match std::str::from_utf8(&bytes) {
            Ok(s) => prop_assert_eq!(got, normalize(s, Aggregation::DEFAULT)),
            Err(_) => prop_assert_eq!(
                got,
                Err(NormalizeError::Invalid(String::from_utf8_lossy(&bytes).into_owned()))
            ),
        }
    }
}

#[test]
fn own_canonical_cases() {
    let per_address = Aggregation::DEFAULT;
    assert!(is_own_canonical(b"192.0.2.1", per_address));
    assert!(is_own_canonical(b"0.0.0.0", per_address));
    // Kept per /24, the key is the network's.
    assert!(!is_own_canonical(
        b"192.0.2.1",
        Aggregation::new(24, 64).unwrap()
    ));
    for other in [
        &b"192.0.2.01"[..],
        b"192.0.2.1/32",
        b"::1",
        b"::ffff:1.2.3.4",
        b"",
    ] {
        assert!(!is_own_canonical(other, per_address), "{other:?}");
    }
}
