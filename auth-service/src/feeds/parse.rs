//! The feed formats, parsed into networks: pure functions, no I/O.
//!
//! A download is all or nothing: one line that does not parse refuses the whole download (the
//! error names the first few bad lines), because a feed whose format changed under us would
//! otherwise load a fraction of itself and the shrink guard is the only other safety net.

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;

/// How many bad lines an error quotes.
const QUOTED_ERRORS: usize = 3;

/// A feed's format (`feeds.<name>.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One network or address per line; `#` and `;` start comments (Spamhaus DROP, FireHOL).
    Cidr,
    /// The Tor bulk exit list (one address per line) or `exit-addresses` (`ExitAddress <ip> <date>`).
    TorExits,
    /// `{"prefixes":[{"ipv4Prefix":"..."},{"ipv6Prefix":"..."}]}` (Google, Bing crawler ranges).
    CrawlerJson,
}

impl Format {
    /// Every format with its config word: the one table parsing and messages derive from.
    pub const ALL: [(Format, &'static str); 3] = [
        (Format::Cidr, "cidr"),
        (Format::TorExits, "tor-exits"),
        (Format::CrawlerJson, "crawler-json"),
    ];

    /// The config word.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("cidr", |(_, w)| w)
    }

    /// A config word, or what the valid ones are.
    pub fn parse(word: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(_, w)| *w == word)
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                let words: Vec<&str> = Self::ALL.iter().map(|(_, w)| *w).collect();
                format!("unknown feed format '{word}': one of {}", words.join(", "))
            })
    }
}

/// The networks of a download, host bits zeroed, duplicates removed, sorted.
pub type Networks = BTreeSet<IpNet>;

/// Why a download does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The first few bad lines: `line <n>: <why>`.
    pub first: Vec<String>,
    /// How many lines were bad in all.
    pub count: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} invalid line(s): {}",
            self.count,
            self.first.join("; ")
        )?;
        if self.count > self.first.len() {
            write!(f, "; ...")?;
        }
        Ok(())
    }
}

impl ParseError {
    fn one(message: String) -> Self {
        ParseError {
            first: vec![message],
            count: 1,
        }
    }
}

/// Parses a whole download.
pub fn parse(format: Format, text: &str) -> Result<Networks, ParseError> {
    match format {
        Format::Cidr => lines(text, cidr_line),
        Format::TorExits => lines(text, tor_line),
        Format::CrawlerJson => crawler_json(text),
    }
}

/// Applies `line` to every line (numbered from 1), collecting networks or the bad lines.
fn lines(
    text: &str,
    line: fn(&str) -> Result<Option<IpNet>, String>,
) -> Result<Networks, ParseError> {
    let mut networks = Networks::new();
    let mut bad = ParseError {
        first: Vec::new(),
        count: 0,
    };
    for (n, raw) in text.lines().enumerate() {
        match line(raw) {
            Ok(Some(net)) => {
                networks.insert(net);
            }
            Ok(None) => {}
            Err(why) => {
                bad.count += 1;
                if bad.first.len() < QUOTED_ERRORS {
                    bad.first.push(format!("line {}: {why}", n + 1));
                }
            }
        }
    }
    if bad.count > 0 {
        Err(bad)
    } else {
        Ok(networks)
    }
}

/// A network (`10.0.0.0/8`, host bits zeroed) or a bare address (a /32 or /128).
pub fn network(word: &str) -> Result<IpNet, String> {
    let shown: String = word.chars().take(60).collect();
    if let Ok(net) = word.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    word.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{shown}' is not an address or network"))
}

/// `1.2.3.0/24 ; SBL123`, `# comment`, blank: one network, or nothing.
fn cidr_line(raw: &str) -> Result<Option<IpNet>, String> {
    let data = raw.split(['#', ';']).next().unwrap_or("").trim();
    if data.is_empty() {
        return Ok(None);
    }
    let mut words = data.split_whitespace();
    let first = words.next().unwrap_or("");
    if words.next().is_some() {
        return Err(format!(
            "expected one network per line, got '{}'",
            data.chars().take(60).collect::<String>()
        ));
    }
    network(first).map(Some)
}

/// `1.2.3.4` (bulk exit list) or `ExitAddress 1.2.3.4 2026-11-27 10:00:00` (exit-addresses,
/// whose other lines, `ExitNode`, `Published`, `LastStatus`, are skipped).
fn tor_line(raw: &str) -> Result<Option<IpNet>, String> {
    let data = raw.split('#').next().unwrap_or("").trim();
    let mut words = data.split_whitespace();
    match words.next() {
        None => Ok(None),
        Some("ExitAddress") => match words.next() {
            Some(ip) => address(ip).map(Some),
            None => Err("ExitAddress without an address".to_owned()),
        },
        Some("ExitNode" | "Published" | "LastStatus") => Ok(None),
        Some(ip) => {
            if words.next().is_some() {
                return Err(format!(
                    "expected one address per line, got '{}'",
                    data.chars().take(60).collect::<String>()
                ));
            }
            address(ip).map(Some)
        }
    }
}

/// A single address (Tor lists never hold networks).
fn address(word: &str) -> Result<IpNet, String> {
    word.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| {
            format!(
                "'{}' is not an address",
                word.chars().take(60).collect::<String>()
            )
        })
}

#[derive(serde::Deserialize)]
struct CrawlerRanges {
    prefixes: Vec<CrawlerPrefix>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CrawlerPrefix {
    ipv4_prefix: Option<String>,
    ipv6_prefix: Option<String>,
}

/// The published crawler ranges: every entry names an `ipv4Prefix` or an `ipv6Prefix`; other
/// fields (`creationTime`, `syncToken`) are ignored.
fn crawler_json(text: &str) -> Result<Networks, ParseError> {
    let ranges: CrawlerRanges = serde_json::from_str(text)
        .map_err(|e| ParseError::one(format!("not the crawler JSON format: {e}")))?;
    let mut networks = Networks::new();
    let mut bad = ParseError {
        first: Vec::new(),
        count: 0,
    };
    for (i, p) in ranges.prefixes.iter().enumerate() {
        let parsed = match (&p.ipv4_prefix, &p.ipv6_prefix) {
            (Some(v4), None) => network(v4).and_then(|n| match n {
                IpNet::V4(_) => Ok(n),
                IpNet::V6(_) => Err(format!("ipv4Prefix '{v4}' is IPv6")),
            }),
            (None, Some(v6)) => network(v6).and_then(|n| match n {
                IpNet::V6(_) => Ok(n),
                IpNet::V4(_) => Err(format!("ipv6Prefix '{v6}' is IPv4")),
            }),
            _ => Err("needs exactly one of ipv4Prefix, ipv6Prefix".to_owned()),
        };
        match parsed {
            Ok(n) => {
                networks.insert(n);
            }
            Err(why) => {
                bad.count += 1;
                if bad.first.len() < QUOTED_ERRORS {
                    bad.first.push(format!("prefixes[{i}]: {why}"));
                }
            }
        }
    }
    if bad.count > 0 {
        Err(bad)
    } else {
        Ok(networks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Networks {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn spamhaus_drop_and_firehol() {
        let drop = "; Spamhaus DROP List 2026/11/27\n; Last-Modified: x\n1.10.16.0/20 ; SBL256894\n2.57.122.0/24 ; SBL636050\n";
        assert_eq!(
            parse(Format::Cidr, drop).unwrap(),
            nets(&["1.10.16.0/20", "2.57.122.0/24"])
        );
        let firehol = "#\n# firehol_level1\n#\n0.0.0.0/8\n1.19.0.0/16\n\n5.188.10.179 # single\n2001:db8::/32\n";
        assert_eq!(
            parse(Format::Cidr, firehol).unwrap(),
            nets(&[
                "0.0.0.0/8",
                "1.19.0.0/16",
                "5.188.10.179/32",
                "2001:db8::/32"
            ])
        );
    }

    #[test]
    fn host_bits_zeroed_and_duplicates_merged() {
        assert_eq!(
            parse(Format::Cidr, "10.1.2.3/8\n10.0.0.0/8\r\n").unwrap(),
            nets(&["10.0.0.0/8"])
        );
    }

    #[test]
    fn one_bad_line_refuses_all_naming_the_first_few() {
        let text = "1.2.3.0/24\nnot-a-net\n10.0.0.0/33\n1.2.3.4 5.6.7.8\nfoo\n";
        let e = parse(Format::Cidr, text).unwrap_err();
        assert_eq!(e.count, 4);
        assert_eq!(e.first.len(), 3);
        assert!(e.first[0].starts_with("line 2: 'not-a-net'"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(e.to_string().ends_with("..."), "{e}");
    }

    #[test]
    fn tor_bulk_list_and_exit_addresses() {
        assert_eq!(
            parse(Format::TorExits, "1.2.3.4\n2001:db8::1\n\n").unwrap(),
            nets(&["1.2.3.4/32", "2001:db8::1/128"])
        );
        let exits = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-11-27 08:00:00\nLastStatus 2026-11-27 09:00:00\nExitAddress 162.247.74.201 2026-11-27 09:10:00\n";
        assert_eq!(
            parse(Format::TorExits, exits).unwrap(),
            nets(&["162.247.74.201/32"])
        );
        assert!(parse(Format::TorExits, "10.0.0.0/8\n").is_err());
        assert!(parse(Format::TorExits, "ExitAddress\n").is_err());
    }

    #[test]
    fn crawler_json() {
        let json = r#"{"creationTime":"2026-11-27T00:00:00","prefixes":[{"ipv6Prefix":"2001:4860:4801:10::/64"},{"ipv4Prefix":"66.249.64.0/27"}]}"#;
        assert_eq!(
            parse(Format::CrawlerJson, json).unwrap(),
            nets(&["66.249.64.0/27", "2001:4860:4801:10::/64"])
        );
        for bad in [
            "{",
            "[]",
            r#"{"prefixes":[{"ipv4Prefix":"2001:db8::/32"}]}"#,
            r#"{"prefixes":[{}]}"#,
            r#"{"prefixes":[{"ipv4Prefix":"1.2.3.0/24","ipv6Prefix":"::/0"}]}"#,
        ] {
            assert!(parse(Format::CrawlerJson, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_words_round_trip() {
        for (f, w) in Format::ALL {
            assert_eq!(Format::parse(w), Ok(f));
            assert_eq!(f.as_str(), w);
        }
        assert!(Format::parse("csv")
            .unwrap_err()
            .contains("cidr, tor-exits"));
    }

    proptest! {
        #[test]
        fn never_panics(format in 0usize..3, text in ".{0,200}") {
            let _ = parse(Format::ALL[format].0, &text);
        }

        #[test]
        fn written_networks_parse_back(
            v4 in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
            v6 in proptest::collection::vec((any::<u128>(), 0u8..=128), 0..20),
            comment in "[ a-zA-Z0-9]{0,10}",
        ) {
            let want: Networks = v4.iter().map(|(a, l)| IpNet::new(std::net::Ipv4Addr::from(*a).into(), *l).unwrap().trunc())
                .chain(v6.iter().map(|(a, l)| IpNet::new(std::net::Ipv6Addr::from(*a).into(), *l).unwrap().trunc()))
                .collect();
            let text: String = want.iter().map(|n| format!("{n} ; {comment}\n# {comment}\n")).collect();
            prop_assert_eq!(parse(Format::Cidr, &text).unwrap(), want.clone());
            let json = serde_json::json!({"prefixes": want.iter().map(|n| match n {
                IpNet::V4(_) => serde_json::json!({"ipv4Prefix": n.to_string()}),
                IpNet::V6(_) => serde_json::json!({"ipv6Prefix": n.to_string()}),
            }).collect::<Vec<_>>()});
            prop_assert_eq!(parse(Format::CrawlerJson, &json.to_string()).unwrap(), want);
        }
    }
}
