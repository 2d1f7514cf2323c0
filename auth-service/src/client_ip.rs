//! Which address the request is about.
//!
//! By default the client is `X-Real-IP`, which nginx sets from `$remote_addr`. Behind other
//! proxies, `X-Forwarded-For` mode walks the chain from the right and takes the first address
//! that is not a trusted proxy: everything left of that point was written by the client and is
//! worth nothing. Without trusted proxies the mode is never entered (see the config), so a client
//! can never choose its own address by sending a header.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipcheck_core::{normalize, Aggregation, NormalizedIp};
use ipnet::IpNet;

/// Where the client address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIpSource {
    /// `X-Real-IP`, as set by nginx from `$remote_addr`.
    RealIp,
    /// The rightmost untrusted hop of `X-Forwarded-For`, then `X-Real-IP`.
    ForwardedFor {
        /// Proxies whose additions to the chain are believed.
        trusted: Vec<IpNet>,
    },
}

/// The client as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The exact address (IPv4-mapped IPv6 already turned into IPv4), for allow and deny lists.
    pub ip: IpAddr,
    /// The cache identity.
    pub key: NormalizedIp,
}

impl ClientIpSource {
    /// The client of a request, or `None` when no usable address was sent.
    pub fn client(&self, headers: &HeaderMap, agg: Aggregation) -> Option<Client> {
        let text = match self {
            ClientIpSource::RealIp => headers.get("x-real-ip")?.to_str().ok()?.trim(),
            ClientIpSource::ForwardedFor { trusted } => return forwarded(headers, trusted, agg),
        };
        parse_client(text, agg)
    }
}

/// Walks `X-Forwarded-For` (every instance, in order) plus `X-Real-IP` as the last hop, from the
/// right, on raw bytes: the client writes the left end, so a byte there that is not UTF-8 (or
/// any other garbage) must not matter unless the walk actually reaches it.
fn forwarded(headers: &HeaderMap, trusted: &[IpNet], agg: Aggregation) -> Option<Client> {
    let values: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        // nginx's own peer is the last hop; appending it (even twice) is safe and means a
        // request that did not come through the trusted proxies is judged by its real address.
        .chain(headers.get("x-real-ip").map(|v| v.as_bytes()))
        .collect();
    let hops = values.iter().rev().flat_map(|value| {
        value
            .rsplit(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|h| !h.is_empty())
    });
    let mut leftmost = None;
    for hop in hops {
        // A hop we cannot read ends the walk: nothing to its left can be trusted either.
        let client = parse_client(std::str::from_utf8(hop).ok()?, agg)?;
        if !trusted.iter().any(|n| n.contains(&client.ip)) {
            return Some(client);
        }
        leftmost = Some(client);
    }
    // Every hop is a trusted proxy: the request came from inside, judge the first one.
    leftmost
}

/// Strips a port and brackets (`[2001:db8::1]:443`, `192.0.2.1:5678`) and normalizes.
pub fn parse_client(text: &str, agg: Aggregation) -> Option<Client> {
    let bare = strip_port(text)?;
    // A client address is never a network; refuse what normalize() would accept as CIDR.
    if bare.contains('/') {
        return None;
    }
    let key = normalize(bare, agg).ok()?;
    let ip = bare
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()?
        .to_canonical();
    Some(Client { ip, key })
}

fn strip_port(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return match after {
            "" => Some(inside),
            port if is_port(port.strip_prefix(':')?) => Some(inside),
            _ => None,
        };
    }
    match text.split_once(':') {
        // Exactly one colon: IPv4 with a port. More than one: a bare IPv6 address.
        Some((host, port)) if !port.contains(':') => is_port(port).then_some(host),
        _ => Some(text),
    }
}

/// Digits only (no sign) and within 0..=65535.
fn is_port(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn agg() -> Aggregation {
        Aggregation::DEFAULT
    }

    fn key(text: &str) -> Option<String> {
        parse_client(text, agg()).map(|c| c.key.to_string())
    }

    #[test]
    fn ports_and_brackets() {
        assert_eq!(key("192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(key("192.0.2.1:5678").as_deref(), Some("192.0.2.1"));
        assert_eq!(key("192.0.2.1:65535").as_deref(), Some("192.0.2.1"));
        assert_eq!(key("[2001:db8::1]:443").as_deref(), Some("2001:db8::/64"));
        assert_eq!(key("[2001:db8::1]").as_deref(), Some("2001:db8::/64"));
        assert_eq!(key("2001:DB8::1").as_deref(), Some("2001:db8::/64"));
        assert_eq!(key("::ffff:192.0.2.1").as_deref(), Some("192.0.2.1"));
        let c = parse_client("[::ffff:192.0.2.1]:80", agg()).unwrap();
        assert_eq!(c.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
        for bad in [
            "",
            "unknown",
            "192.0.2.1:",
            "192.0.2.1:port",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "010.0.0.1",
            "192.0.2.0/24",
            "2001:db8::/64",
            "fe80::1%eth0",
            "192.0.2.1:123456",
            "1.2.3.4:99999",
            "1.2.3.4:65536",
            "[2001:db8::1]:65536",
            "1.2.3.4:+80",
        ] {
            assert_eq!(key(bad), None, "{bad}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn raw_headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn client_of(source: &ClientIpSource, pairs: &[(&str, &str)]) -> Option<String> {
        source
            .client(&headers(pairs), agg())
            .map(|c| c.ip.to_string())
    }

    #[test]
    fn real_ip_ignores_forwarded_for() {
        let s = ClientIpSource::RealIp;
        assert_eq!(
            client_of(
                &s,
                &[
                    ("x-real-ip", "198.51.100.7"),
                    ("x-forwarded-for", "1.2.3.4")
                ]
            )
            .as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(client_of(&s, &[("x-forwarded-for", "1.2.3.4")]), None);
        assert_eq!(client_of(&s, &[]), None);
    }

    #[test]
    fn forwarded_for_takes_rightmost_untrusted() {
        let s = ClientIpSource::ForwardedFor {
            trusted: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8:ffff::/48".parse().unwrap(),
            ],
        };
        // The client prepended a spoofed address; the trusted proxy appended the real one.
        let spoofed = [
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
            ("x-real-ip", "10.0.0.2"),
        ];
        assert_eq!(client_of(&s, &spoofed).as_deref(), Some("203.0.113.9"));
        let chain = [
            ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
            ("x-forwarded-for", "10.0.0.5"),
        ];
        assert_eq!(client_of(&s, &chain).as_deref(), Some("203.0.113.9"));
        // Not through the proxies at all: the real peer is untrusted and is the client.
        let direct = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "198.51.100.1"),
        ];
        assert_eq!(client_of(&s, &direct).as_deref(), Some("198.51.100.1"));
        // Garbage before the first untrusted hop: no address rather than a guess.
        let garbage = [
            ("x-forwarded-for", "203.0.113.9, nonsense"),
            ("x-real-ip", "10.0.0.2"),
        ];
        assert_eq!(client_of(&s, &garbage), None);
        // All trusted: the leftmost.
        let inside = [
            ("x-forwarded-for", "10.9.9.9, 10.0.0.5"),
            ("x-real-ip", "10.0.0.2"),
        ];
        assert_eq!(client_of(&s, &inside).as_deref(), Some("10.9.9.9"));
        let v6 = [("x-forwarded-for", "[2001:db8::1]:4444, 2001:db8:ffff::1")];
        assert_eq!(client_of(&s, &v6).as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn forwarded_for_reads_bytes_and_stops_where_the_walk_stops() {
        let s = ClientIpSource::ForwardedFor {
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let ip = |h: HeaderMap| s.client(&h, agg()).map(|c| c.ip.to_string());
        // Not UTF-8 left of the real client: never reached, so it changes nothing.
        let spoofed = raw_headers(&[
            ("x-forwarded-for", b"\xff\xfe, 203.0.113.9"),
            ("x-real-ip", b"10.0.0.2"),
        ]);
        assert_eq!(ip(spoofed).as_deref(), Some("203.0.113.9"));
        // In an earlier header instance, the same.
        let split = raw_headers(&[
            ("x-forwarded-for", b"1.2.3.4\xff"),
            ("x-forwarded-for", b"203.0.113.9, 10.0.0.7"),
        ]);
        assert_eq!(ip(split).as_deref(), Some("203.0.113.9"));
        // The walk reaches the unreadable hop (everything right of it is trusted): no address.
        let reached = raw_headers(&[
            ("x-forwarded-for", b"203.0.113.9\xff, 10.0.0.7"),
            ("x-real-ip", b"10.0.0.2"),
        ]);
        assert_eq!(ip(reached), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

        fn any_ip() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
                any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
            ]
        }

        proptest! {
            // Every way nginx or a proxy writes an address (bare, bracketed, with a port) is
            // the same client with the same cache key as core's normalize().
            #[test]
            fn every_spelling_is_the_same_client(ip in any_ip(), port in any::<u16>()) {
                let expected = normalize(&ip.to_string(), agg()).unwrap();
                let mut spellings = vec![ip.to_string(), SocketAddr::new(ip, port).to_string()];
                if ip.is_ipv6() {
                    spellings.push(format!("[{ip}]"));
                    spellings.push(ip.to_string().to_uppercase());
                }
                for text in spellings {
                    let c = parse_client(&text, agg()).unwrap();
                    prop_assert_eq!(c.key, expected, "{}", text);
                    prop_assert_eq!(c.ip, ip.to_canonical());
                }
            }

            // Whatever the client prepends, the answer is the rightmost untrusted hop.
            #[test]
            fn spoofed_hops_never_win(
                spoofed in proptest::collection::vec(any_ip(), 0..4),
                client in any::<u32>(),
                proxies in proptest::collection::vec(0u8..=255, 0..3),
            ) {
                let client = IpAddr::V4(Ipv4Addr::from(client));
                let trusted: IpNet = "10.0.0.0/8".parse().unwrap();
                prop_assume!(!trusted.contains(&client));
                let s = ClientIpSource::ForwardedFor { trusted: vec![trusted] };
                let mut chain: Vec<String> = spoofed.iter().map(|ip| ip.to_string()).collect();
                chain.push(client.to_string());
                chain.extend(proxies.iter().map(|p| format!("10.0.0.{p}")));
                let joined = chain.join(", ");
                let got = client_of(&s, &[("x-forwarded-for", &joined), ("x-real-ip", "10.1.2.3")]);
                prop_assert_eq!(got, Some(client.to_string()));
            }

            // Arbitrary bytes left of the real client never change the answer.
            #[test]
            fn bytes_left_of_the_client_never_matter(
                junk in proptest::collection::vec(any::<u8>(), 0..40),
                client in any::<u32>(),
                proxies in proptest::collection::vec(0u8..=255, 0..3),
            ) {
                let client = IpAddr::V4(Ipv4Addr::from(client));
                let trusted: IpNet = "10.0.0.0/8".parse().unwrap();
                prop_assume!(!trusted.contains(&client));
                // Whatever HeaderValue can carry at all (no control bytes but tab).
                let junk: Vec<u8> = junk.into_iter().filter(|b| *b >= 0x20 || *b == b'\t').filter(|b| *b != 0x7f).collect();
                let s = ClientIpSource::ForwardedFor { trusted: vec![trusted] };
                let mut value = junk;
                value.extend_from_slice(format!(", {client}").as_bytes());
                for p in &proxies {
                    value.extend_from_slice(format!(", 10.0.0.{p}").as_bytes());
                }
                let h = raw_headers(&[("x-forwarded-for", &value), ("x-real-ip", b"10.1.2.3")]);
                let got = s.client(&h, agg()).map(|c| c.ip);
                prop_assert_eq!(got, Some(client));
            }

            // No header value makes extraction panic.
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
                let _ = parse_client(&text, agg());
            }
        }
    }
}
