//! `IPCHECK SET <ip> <verdict> [EX <seconds> | PERSIST] [STALE <seconds>] [REASON <reasons>]
//! [SOURCE <source>] [COUNTRY <cc>] [ASN <n>] [SCORE <0-100>] [FORCE]`: the options as one
//! table, and the request builder every client uses.

use crate::facts::Attributes;
use crate::verdict::Verdict;

/// An option word of `IPCHECK SET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOption {
    /// `EX <seconds>`: fresh time.
    Ex,
    /// `PERSIST`: never expires (manual pins only).
    Persist,
    /// `STALE <seconds>`: stale window after the fresh time.
    Stale,
    /// `REASON <reasons>`: comma-separated tokens.
    Reason,
    /// `SOURCE <source>`: who decided.
    Source,
    /// `COUNTRY <cc>`: ISO 3166-1 alpha-2 code.
    Country,
    /// `ASN <n>`: AS number (`13335` or `AS13335`).
    Asn,
    /// `SCORE <0-100>`: risk score.
    Score,
    /// `FORCE`: replace a manual pin.
    Force,
}

/// One row of [`SET_OPTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The option.
    pub option: SetOption,
    /// Its word, as written in the syntax and error messages (matched in any case).
    pub name: &'static str,
    /// The name of its value in the syntax (`seconds`, `cc`), or `None` for a flag.
    pub value: Option<&'static str>,
    /// Whether the value is a plain integer (for `COMMAND DOCS`).
    pub integer: bool,
}

const fn row(
    option: SetOption,
    name: &'static str,
    value: Option<&'static str>,
    integer: bool,
) -> OptionSpec {
    OptionSpec {
        option,
        name,
        value,
        integer,
    }
}

/// Every option, in the order of [`SetOption`], the syntax and [`SetRequest::args`].
pub const SET_OPTIONS: [OptionSpec; 9] = [
    row(SetOption::Ex, "EX", Some("seconds"), true),
    row(SetOption::Persist, "PERSIST", None, false),
    row(SetOption::Stale, "STALE", Some("stale-seconds"), true),
    row(SetOption::Reason, "REASON", Some("reasons"), false),
    row(SetOption::Source, "SOURCE", Some("source"), false),
    row(SetOption::Country, "COUNTRY", Some("country"), false),
    // `AS13335` is accepted too.
    row(SetOption::Asn, "ASN", Some("asn"), false),
    row(SetOption::Score, "SCORE", Some("score"), true),
    row(SetOption::Force, "FORCE", None, false),
];

impl SetOption {
    /// Its row in [`SET_OPTIONS`].
    pub fn spec(self) -> &'static OptionSpec {
        // The table lists the variants in declaration order (checked by a test).
        &SET_OPTIONS[self as usize]
    }

    /// The option word, uppercase.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Whether a value follows the word.
    pub fn takes_value(self) -> bool {
        self.spec().value.is_some()
    }

    /// Recognizes an option word, in any case; `None` for anything else.
    pub fn parse(word: &[u8]) -> Option<SetOption> {
        SET_OPTIONS
            .iter()
            .find(|row| word.eq_ignore_ascii_case(row.name.as_bytes()))
            .map(|row| row.option)
    }

    /// Every option word, for an error message: `EX, PERSIST, ... or FORCE`.
    pub fn expected() -> String {
        let names: Vec<&str> = SET_OPTIONS.iter().map(|row| row.name).collect();
        match names.split_last() {
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// How long a written entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// No `EX`: the module's `ipcheck.default-ttl`.
    Default,
    /// `EX <seconds>` (at least 1 is sent).
    Seconds(u64),
    /// `PERSIST` (a manual pin that never expires).
    Persist,
}

/// An `IPCHECK SET` call, as the service, the operator commands and the tests send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRequest<'a> {
    /// The address (or key) argument.
    pub address: &'a str,
    /// The verdict.
    pub verdict: Verdict,
    /// `EX`, `PERSIST` or neither.
    pub lifetime: Lifetime,
    /// `STALE`; left out when 0, so a module that predates stale windows takes the call.
    pub stale_secs: u64,
    /// `REASON`; left out when empty.
    pub reasons: &'a str,
    /// `SOURCE`; left out when empty (the module's default is `api`).
    pub source: &'a str,
    /// `COUNTRY`, `ASN`, `SCORE`: each left out when unknown, so an entry without attributes
    /// is the call a module that predates them takes.
    pub attributes: Attributes,
    /// `FORCE`.
    pub force: bool,
}

impl<'a> SetRequest<'a> {
    /// `IPCHECK SET <address> <verdict>` with no option.
    pub fn new(address: &'a str, verdict: Verdict) -> Self {
        SetRequest {
            address,
            verdict,
            lifetime: Lifetime::Default,
            stale_secs: 0,
            reasons: "",
            source: "",
            attributes: Attributes::NONE,
            force: false,
        }
    }

    /// The arguments after `IPCHECK`: `SET <address> <verdict>` and the options, in table order.
    pub fn args(&self) -> Vec<String> {
        let mut out = vec![
            super::sub::SET.to_owned(),
            self.address.to_owned(),
            self.verdict.as_str().to_owned(),
        ];
        for row in &SET_OPTIONS {
            if let Some(value) = self.value_of(row.option) {
                out.push(row.name.to_owned());
                if let Some(value) = value {
                    out.push(value);
                }
            }
        }
        out
    }

    /// `None` when the option is left out; `Some(None)` for a flag that is sent.
    fn value_of(&self, option: SetOption) -> Option<Option<String>> {
        let a = self.attributes;
        match option {
            SetOption::Ex => match self.lifetime {
                Lifetime::Seconds(secs) => Some(Some(secs.max(1).to_string())),
                _ => None,
            },
            SetOption::Persist => (self.lifetime == Lifetime::Persist).then_some(None),
            SetOption::Stale => (self.stale_secs > 0).then(|| Some(self.stale_secs.to_string())),
            SetOption::Reason => (!self.reasons.is_empty()).then(|| Some(self.reasons.to_owned())),
            SetOption::Source => (!self.source.is_empty()).then(|| Some(self.source.to_owned())),
            SetOption::Country => a.country.map(|c| Some(c.as_str().to_owned())),
            SetOption::Asn => a.asn.map(|n| Some(n.to_string())),
            SetOption::Score => a.score.map(|s| Some(s.to_string())),
            SetOption::Force => self.force.then_some(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Asn, Country, Score};

    #[test]
    fn the_table_follows_the_enum() {
        for (i, row) in SET_OPTIONS.iter().enumerate() {
            assert_eq!(row.option as usize, i, "{row:?}");
            assert_eq!(row.option.spec(), row);
            assert_eq!(SetOption::parse(row.name.as_bytes()), Some(row.option));
            let lower = row.name.to_ascii_lowercase();
            assert_eq!(SetOption::parse(lower.as_bytes()), Some(row.option));
        }
        assert_eq!(SetOption::parse(b"PX"), None);
        assert_eq!(SetOption::parse(b""), None);
        assert_eq!(
            SetOption::expected(),
            "EX, PERSIST, STALE, REASON, SOURCE, COUNTRY, ASN, SCORE or FORCE"
        );
        assert!(SetOption::Country.takes_value() && !SetOption::Force.takes_value());
    }

    #[test]
    fn requests_leave_out_what_they_do_not_say() {
        let bare = SetRequest::new("192.0.2.1", Verdict::Allow);
        assert_eq!(bare.args(), ["SET", "192.0.2.1", "allow"]);
        let full = SetRequest {
            lifetime: Lifetime::Seconds(0),
            stale_secs: 86_400,
            reasons: "vpn,tor",
            source: "api",
            attributes: Attributes {
                country: Country::parse("us").ok(),
                asn: Asn::new(13335),
                score: Score::new(87),
            },
            force: true,
            ..SetRequest::new("192.0.2.1", Verdict::Block)
        };
        assert_eq!(
            full.args(),
            [
                "SET",
                "192.0.2.1",
                "block",
                "EX",
                "1",
                "STALE",
                "86400",
                "REASON",
                "vpn,tor",
                "SOURCE",
                "api",
                "COUNTRY",
                "US",
                "ASN",
                "13335",
                "SCORE",
                "87",
                "FORCE"
            ]
        );
        let pin = SetRequest {
            lifetime: Lifetime::Persist,
            source: "manual",
            attributes: Attributes {
                score: Score::new(0),
                ..Attributes::NONE
            },
            ..SetRequest::new("2001:db8::/64", Verdict::Challenge)
        };
        assert_eq!(
            pin.args(),
            [
                "SET",
                "2001:db8::/64",
                "challenge",
                "PERSIST",
                "SOURCE",
                "manual",
                "SCORE",
                "0"
            ]
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// A built call reads back, option by option, with the table the module parses with:
            /// every word known, in table order, each once, each value where it belongs, and
            /// the attributes exactly as given.
            #[test]
            fn built_calls_read_back(
                country in proptest::option::of("[A-Z]{2}"),
                asn in proptest::option::of(1u32..),
                score in proptest::option::of(0u8..=100),
                lifetime in prop_oneof![
                    Just(Lifetime::Default),
                    Just(Lifetime::Persist),
                    (0u64..40_000_000).prop_map(Lifetime::Seconds),
                ],
                stale in 0u64..40_000_000,
                reasons in "[a-z,]{0,10}",
                force in any::<bool>(),
            ) {
                let attributes = Attributes {
                    country: country.as_deref().map(|c| Country::parse(c).expect("two letters")),
                    asn: asn.and_then(Asn::new),
                    score: score.and_then(Score::new),
                };
                let req = SetRequest {
                    lifetime,
                    stale_secs: stale,
                    reasons: &reasons,
                    source: "api",
                    attributes,
                    force,
                    ..SetRequest::new("192.0.2.1", Verdict::Block)
                };
                let args = req.args();
                prop_assert_eq!(&args[..3], &["SET", "192.0.2.1", "block"]);
                let mut seen = Vec::new();
                let mut read = Attributes::NONE;
                let mut rest = args[3..].iter();
                while let Some(word) = rest.next() {
                    let opt = SetOption::parse(word.as_bytes()).expect("a known option");
                    prop_assert!(seen.last().is_none_or(|&last: &SetOption| (last as usize) < opt as usize));
                    seen.push(opt);
                    if opt.takes_value() {
                        let value = rest.next().expect("its value");
                        match opt {
                            SetOption::Country => read.country = Country::parse(value).ok(),
                            SetOption::Asn => read.asn = Asn::parse(value).ok(),
                            SetOption::Score => read.score = Score::parse(value).ok(),
                            _ => {}
                        }
                    }
                }
                prop_assert_eq!(read, attributes);
                prop_assert_eq!(seen.contains(&SetOption::Force), force);
                prop_assert_eq!(seen.contains(&SetOption::Stale), stale > 0);
            }
        }
    }
}
