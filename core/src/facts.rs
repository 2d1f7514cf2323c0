//! What is known about an address beyond its categories: the country it is in, the network
//! (AS number) that announces it, and a vendor's risk score.
//!
//! [`Facts`] is everything a policy decides on: the [`Categories`] and the [`Attributes`]. Each
//! attribute may be unknown (`None`): a provider or database that does not say is never read as
//! a value. The stored form is in [`crate::encoding`].

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use thiserror::Error;

use crate::policy::Categories;

/// A malformed country code, AS number or score.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttributeError {
    /// Not two ASCII letters.
    #[error("invalid country '{0}': expected an ISO 3166-1 alpha-2 code such as US or DE")]
    Country(String),
    /// Not a decimal number from 1 to 4294967295 (optionally written `AS<n>`).
    #[error("invalid AS number '{0}': expected 1 to 4294967295, optionally written AS<n>")]
    Asn(String),
    /// Not a whole number from 0 to 100.
    #[error("invalid score '{0}': expected a whole number from 0 to 100")]
    Score(String),
}

/// An ISO 3166-1 alpha-2 country code, kept uppercase (`US`, `DE`).
///
/// Any two ASCII letters are accepted, not only assigned codes: databases and vendors use
/// user-assigned codes (`XK` for Kosovo, `EU`, `AP`), and refusing them would lose the fact.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Parses two ASCII letters, in any case.
    pub fn parse(s: &str) -> Result<Country, AttributeError> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(AttributeError::Country(s.to_owned())),
        }
    }

    /// The code, uppercase.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Country {
    type Err = AttributeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Country::parse(s)
    }
}

/// An autonomous system number: the network that announces the address. 0 is not one (RFC 7607
/// reserves it for "no AS"), so an `Option<Asn>` is what "unknown" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asn(NonZeroU32);

impl Asn {
    /// An AS number; `None` for 0.
    pub fn new(n: u32) -> Option<Asn> {
        NonZeroU32::new(n).map(Asn)
    }

    /// Parses `13335` or `AS13335` (any case), as vendors and people write them.
    pub fn parse(s: &str) -> Result<Asn, AttributeError> {
        let digits = s
            .strip_prefix("AS")
            .or_else(|| s.strip_prefix("as"))
            .or_else(|| s.strip_prefix("As"))
            .unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AttributeError::Asn(s.to_owned()));
        }
        digits
            .parse::<u32>()
            .ok()
            .and_then(Asn::new)
            .ok_or_else(|| AttributeError::Asn(s.to_owned()))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Asn {
    type Err = AttributeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Asn::parse(s)
    }
}

/// A risk score from 0 (clean) to 100 (certainly abusive), as most vendors give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Score(u8);

impl Score {
    /// The highest score.
    pub const MAX: u8 = 100;

    /// A score; `None` above 100.
    pub fn new(n: u8) -> Option<Score> {
        (n <= Self::MAX).then_some(Score(n))
    }

    /// A score from a JSON or database number: rounded to the nearest whole number; `None` when
    /// it is not a number from 0 to 100 (a vendor's `-1` for "unknown" included).
    pub fn from_f64(n: f64) -> Option<Score> {
        let n = n.round();
        if n.is_finite() && (0.0..=f64::from(Self::MAX)).contains(&n) {
            // A whole number in 0..=100 after the check, so the cast is exact.
            Score::new(n as u8)
        } else {
            None
        }
    }

    /// Parses a whole number from 0 to 100.
    pub fn parse(s: &str) -> Result<Score, AttributeError> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AttributeError::Score(s.to_owned()));
        }
        s.parse::<u8>()
            .ok()
            .and_then(Score::new)
            .ok_or_else(|| AttributeError::Score(s.to_owned()))
    }

    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Score {
    type Err = AttributeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Score::parse(s)
    }
}

/// The facts about an address that are not categories; each may be unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes {
    /// Where the address is.
    pub country: Option<Country>,
    /// Which network announces it.
    pub asn: Option<Asn>,
    /// How risky a vendor thinks it is.
    pub score: Option<Score>,
}

impl Attributes {
    /// Nothing known.
    pub const NONE: Attributes = Attributes {
        country: None,
        asn: None,
        score: None,
    };

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.country.is_none() && self.asn.is_none() && self.score.is_none()
    }

    /// These attributes, with what `other` knows filled in where these know nothing.
    pub fn or(self, other: Attributes) -> Attributes {
        Attributes {
            country: self.country.or(other.country),
            asn: self.asn.or(other.asn),
            score: self.score.or(other.score),
        }
    }
}

/// Everything a policy decides on about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Facts {
    /// What the address is (VPN, Tor exit, ...).
    pub categories: Categories,
    /// Where it is, whose it is, how risky.
    pub attributes: Attributes,
}

impl Facts {
    /// Nothing noteworthy, nothing known beyond that.
    pub const EMPTY: Facts = Facts {
        categories: Categories::EMPTY,
        attributes: Attributes::NONE,
    };

    /// These facts with `more` categories added.
    pub fn with_categories(self, more: Categories) -> Facts {
        Facts {
            categories: self.categories.union(more),
            attributes: self.attributes,
        }
    }

    /// Facts with categories only.
    pub fn categories(categories: Categories) -> Facts {
        Facts {
            categories,
            attributes: Attributes::NONE,
        }
    }
}

impl crate::verdict::Entry {
    /// The facts an entry holds: the categories among its reasons, and its attributes.
    pub fn facts(&self) -> Facts {
        Facts {
            categories: Categories::from_reasons(&self.reasons),
            attributes: self.attributes,
        }
    }
}

impl From<Categories> for Facts {
    fn from(categories: Categories) -> Facts {
        Facts::categories(categories)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes() {
        assert_eq!(Country::parse("us").unwrap().as_str(), "US");
        assert_eq!(Country::parse("De").unwrap().to_string(), "DE");
        for bad in ["", "U", "USA", "U1", "é", "  ", "u-"] {
            assert!(Country::parse(bad).is_err(), "{bad}");
        }
        assert!(Country::parse("x")
            .unwrap_err()
            .to_string()
            .contains("ISO 3166-1"));
    }

    #[test]
    fn as_numbers() {
        assert_eq!(Asn::parse("13335").unwrap().get(), 13335);
        assert_eq!(Asn::parse("AS13335").unwrap().get(), 13335);
        assert_eq!(Asn::parse("as64496").unwrap().get(), 64496);
        assert_eq!(Asn::parse("4294967295").unwrap().get(), u32::MAX);
        for bad in [
            "",
            "0",
            "AS",
            "AS0",
            "4294967296",
            "-1",
            "13335x",
            " 1",
            "+1",
        ] {
            assert!(Asn::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Asn::new(0), None);
    }

    #[test]
    fn scores() {
        assert_eq!(Score::parse("0").unwrap().get(), 0);
        assert_eq!(Score::parse("100").unwrap().get(), 100);
        for bad in ["", "101", "-1", "1.5", "0100", "abc", "255"] {
            assert!(Score::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Score::from_f64(87.4).map(Score::get), Some(87));
        assert_eq!(Score::from_f64(99.6).map(Score::get), Some(100));
        assert_eq!(Score::from_f64(-1.0), None);
        assert_eq!(Score::from_f64(100.4).map(Score::get), Some(100));
        assert_eq!(Score::from_f64(100.6), None);
        assert_eq!(Score::from_f64(f64::NAN), None);
    }

    #[test]
    fn attributes_fill_gaps_only() {
        let a = Attributes {
            country: Country::parse("DE").ok(),
            ..Attributes::NONE
        };
        let b = Attributes {
            country: Country::parse("US").ok(),
            asn: Asn::new(3320),
            score: None,
        };
        let merged = a.or(b);
        assert_eq!(merged.country, Country::parse("DE").ok());
        assert_eq!(merged.asn, Asn::new(3320));
        assert!(merged.score.is_none());
        assert!(Attributes::NONE.is_empty());
        assert!(!merged.is_empty());
    }
}
