//! The verdict model: what the cache says about an address, why, and who said it.
//!
//! Reasons and sources are open-ended tokens (`[a-z0-9_-]+`) so operators and scripts can add
//! their own, but a fixed vocabulary of known ones ([`KNOWN_REASONS`], [`KNOWN_SOURCES`]) lets the
//! common case be stored as a small integer (see [`crate::encoding`]).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::facts::Attributes;

/// Longest accepted `REASON` list, in bytes; keeps entries small and bounded.
pub const MAX_REASONS_LEN: usize = 128;

/// Reason tokens with a compact encoding, by bit: derived from [`crate::vocabulary`].
pub use crate::vocabulary::KNOWN_REASONS;

/// Source tokens with a compact encoding. Append only: positions are stored in Redis.
pub const KNOWN_SOURCES: [&str; 3] = ["api", "list", "manual"];

/// What to do with a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the request through.
    Allow,
    /// Refuse the request (HTTP 403).
    Block,
    /// Ask the client to prove itself (HTTP 401).
    Challenge,
}

/// A verdict word that is not `allow`, `block` or `challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid verdict '{0}': expected allow, block or challenge")]
pub struct VerdictError(pub String);

impl Verdict {
    /// The lowercase wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::Challenge => "challenge",
        }
    }
}

impl FromStr for Verdict {
    type Err = VerdictError;

    /// Case-insensitive, because operators type these by hand in redis-cli.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("allow") {
            Ok(Verdict::Allow)
        } else if s.eq_ignore_ascii_case("block") {
            Ok(Verdict::Block)
        } else if s.eq_ignore_ascii_case("challenge") {
            Ok(Verdict::Challenge)
        } else {
            Err(VerdictError(s.to_owned()))
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed `REASON` list or `SOURCE` token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// A token is empty or has a byte outside `[a-z0-9_-]`.
    #[error("invalid token '{0}': tokens are [a-z0-9_-]+")]
    Invalid(String),
    /// The reason list is over [`MAX_REASONS_LEN`] bytes.
    #[error("reason list is {0} bytes, at most 128 allowed")]
    TooLong(usize),
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Validates a `REASON` list in place, as [`Reasons::parse`] does, so readers of stored values
/// and the module's `IPCHECK SET` need not copy it.
pub fn check_reasons(s: &str) -> Result<(), TokenError> {
    if s.len() > MAX_REASONS_LEN {
        return Err(TokenError::TooLong(s.len()));
    }
    // One pass over the bytes for a good list (every `IPCHECK SET` checks one); a bad one is
    // split into tokens to name the first bad token.
    if well_formed_list(s.as_bytes()) {
        return Ok(());
    }
    if !s.is_empty() {
        if let Some(bad) = s.split(',').find(|t| !is_token(t)) {
            return Err(TokenError::Invalid(bad.to_owned()));
        }
    }
    Ok(())
}

/// Whether `list` is empty or tokens joined by single commas: what the token split accepts.
fn well_formed_list(list: &[u8]) -> bool {
    let mut after_comma = true;
    for &b in list {
        if b == b',' {
            if after_comma {
                return false;
            }
            after_comma = true;
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            after_comma = false;
        } else {
            return false;
        }
    }
    list.is_empty() || !after_comma
}

/// Validates a `SOURCE` token in place, as [`Source::parse`] does.
pub fn check_source(s: &str) -> Result<(), TokenError> {
    if is_token(s) {
        Ok(())
    } else {
        Err(TokenError::Invalid(s.to_owned()))
    }
}

/// A comma-separated list of reason tokens, possibly empty, kept exactly as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Reasons(String);

impl Reasons {
    /// No reasons.
    pub fn empty() -> Self {
        Reasons(String::new())
    }

    /// Validates a comma-separated list such as `vpn,tor` (empty is allowed).
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        check_reasons(s)?;
        Ok(Reasons(s.to_owned()))
    }

    /// A list decoded from a stored value: valid tokens, but no length limit, because a compact
    /// value's bits unknown to this version are spelled `unknown-<bit>` and may run past
    /// [`MAX_REASONS_LEN`] (never refuse a newer writer's entry).
    pub fn parse_stored(s: &str) -> Result<Self, TokenError> {
        if !s.is_empty() {
            if let Some(bad) = s.split(',').find(|t| !is_token(t)) {
                return Err(TokenError::Invalid(bad.to_owned()));
            }
        }
        Ok(Reasons(s.to_owned()))
    }

    /// The list as stored, e.g. `vpn,tor`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The individual tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').filter(|t| !t.is_empty())
    }

    /// Whether `token` is one of the reasons.
    pub fn contains(&self, token: &str) -> bool {
        self.iter().any(|t| t == token)
    }

    /// Whether there are no reasons.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who produced a verdict: `api` (the provider), `list`, `manual` (an operator's pin), or any token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source(String);

impl Source {
    /// The token of an operator's pin.
    pub const MANUAL: &'static str = "manual";

    /// The provider's token, the default when `SOURCE` is not given.
    pub const API: &'static str = "api";

    /// The provider; the default when `SOURCE` is not given.
    pub fn api() -> Self {
        Source(Self::API.to_owned())
    }

    /// An operator's pin, which only another manual write or `FORCE` replaces.
    pub fn manual() -> Self {
        Source("manual".to_owned())
    }

    /// Validates a single token.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        check_source(s)?;
        Ok(Source(s.to_owned()))
    }

    /// Whether this is an operator's pin.
    pub fn is_manual(&self) -> bool {
        self.0 == Self::MANUAL
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Source {
    fn default() -> Self {
        Self::api()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One cached fact about an address: the value stored under its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// What to do.
    pub verdict: Verdict,
    /// Why, as tokens.
    pub reasons: Reasons,
    /// Who decided.
    pub source: Source,
    /// Country, AS number and score, where known.
    pub attributes: Attributes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_any_case() {
        assert_eq!("BLOCK".parse(), Ok(Verdict::Block));
        assert_eq!("Allow".parse(), Ok(Verdict::Allow));
        assert_eq!("challenge".parse(), Ok(Verdict::Challenge));
        assert!("deny"
            .parse::<Verdict>()
            .unwrap_err()
            .to_string()
            .contains("deny"));
    }

    /// The token split alone, as `check_reasons` was before its one-pass shortcut.
    fn split_check(s: &str) -> bool {
        s.is_empty() || s.split(',').all(is_token)
    }

    proptest::proptest! {
        #[test]
        fn the_one_pass_check_agrees_with_the_split(s in "[a-z_,A\u{e9}-]{0,12}") {
            proptest::prop_assert_eq!(well_formed_list(s.as_bytes()), split_check(&s));
        }
    }

    #[test]
    fn reasons_rules() {
        assert!(Reasons::parse("").unwrap().is_empty());
        assert_eq!(
            Reasons::parse("vpn,tor")
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            ["vpn", "tor"]
        );
        for bad in ["VPN", "vpn,", ",vpn", "vpn,,tor", "vpn tor", "vpn;tor", "é"] {
            assert!(Reasons::parse(bad).is_err(), "{bad}");
        }
        assert!(Reasons::parse(&"a".repeat(128)).is_ok());
        assert_eq!(
            Reasons::parse(&"a".repeat(129)),
            Err(TokenError::TooLong(129))
        );
        assert!(Reasons::parse("vpn,tor").unwrap().contains("tor"));
        assert!(!Reasons::parse("vpn,tor").unwrap().contains("to"));
    }

    #[test]
    fn source_rules() {
        assert!(Source::parse("manual").unwrap().is_manual());
        assert!(!Source::api().is_manual());
        assert!(Source::parse("my_list-2").is_ok());
        for bad in ["", "a,b", "Manual", "x y"] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }
}
