//! `ipcheck-auth pin --country <CC> --asn <N> --score <0-100>`: what the operator knows about a
//! pinned address, checked with core's parsers before Redis is asked and stored with the pin
//! (`IPCHECK SET ... COUNTRY .. ASN .. SCORE ..`), so the backend gets them as
//! `X-IPCheck-Country`, `-ASN` and `-Score` like a provider's facts. Pure, so a unit test says
//! what is accepted; how they are written and read is [`text`].

use ipcheck_core::{Asn, AttributeError, Attributes, Country, Score};

use super::request::BadArgument;

/// The flags as the command line gave them, each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeArgs {
    /// `--country`.
    pub country: Option<String>,
    /// `--asn`.
    pub asn: Option<String>,
    /// `--score`.
    pub score: Option<String>,
}

impl AttributeArgs {
    /// The attributes, each unknown when its flag is absent; a malformed one names its flag.
    pub fn parse(&self) -> Result<Attributes, BadArgument> {
        Ok(Attributes {
            country: flag(&self.country, "--country", Country::parse)?,
            asn: flag(&self.asn, "--asn", Asn::parse)?,
            score: flag(&self.score, "--score", Score::parse)?,
        })
    }
}

/// One flag's value parsed by core's `parse`, or an error naming the flag.
fn flag<T>(
    value: &Option<String>,
    argument: &'static str,
    parse: fn(&str) -> Result<T, AttributeError>,
) -> Result<Option<T>, BadArgument> {
    value
        .as_deref()
        .map(parse)
        .transpose()
        .map_err(|e| BadArgument {
            argument,
            message: e.to_string(),
        })
}

/// A pin's attributes as `pin`, `unpin` and `pins` print them: `country=US asn=13335 score=87`
/// (only the known ones; empty when none), the flag names, so a line can be read back.
pub fn text(a: &Attributes) -> String {
    let mut parts = Vec::new();
    if let Some(c) = a.country {
        parts.push(format!("country={c}"));
    }
    if let Some(n) = a.asn {
        parts.push(format!("asn={n}"));
    }
    if let Some(s) = a.score {
        parts.push(format!("score={s}"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(country: Option<&str>, asn: Option<&str>, score: Option<&str>) -> AttributeArgs {
        AttributeArgs {
            country: country.map(str::to_owned),
            asn: asn.map(str::to_owned),
            score: score.map(str::to_owned),
        }
    }

    #[test]
    fn flags_become_attributes() {
        let a = args(Some("us"), Some("AS13335"), Some("87"))
            .parse()
            .unwrap();
        assert_eq!(text(&a), "country=US asn=13335 score=87");
        assert_eq!(AttributeArgs::default().parse(), Ok(Attributes::NONE));
        assert_eq!(text(&Attributes::NONE), "");
        // A score of 0 is known (clean), not absent.
        let clean = args(None, None, Some("0")).parse().unwrap();
        assert_eq!(text(&clean), "score=0");
    }

    #[test]
    fn a_bad_value_names_its_flag() {
        for (bad, flag) in [
            (args(Some("USA"), None, None), "--country"),
            (args(Some("1a"), None, None), "--country"),
            (args(None, Some("0"), None), "--asn"),
            (args(None, Some("AS"), None), "--asn"),
            (args(None, Some("4294967296"), None), "--asn"),
            (args(None, None, Some("101")), "--score"),
            (args(None, None, Some("-1")), "--score"),
            (args(None, None, Some("8.5")), "--score"),
        ] {
            let e = bad.parse().unwrap_err();
            assert_eq!(e.argument, flag, "{bad:?}");
            assert!(e.to_string().starts_with(flag), "{e}");
        }
        let e = args(Some("USA"), None, None).parse().unwrap_err();
        assert!(e.message.contains("'USA'"), "{e}");
    }
}
