//! The arguments of `ipcheck-auth pin` and `unpin`, checked before Redis is asked: pure, so a
//! unit test says what is accepted.

use std::time::Duration;

use ipcheck_core::{normalize, Aggregation, Attributes, NormalizedIp, Reasons, Verdict};

use crate::duration::parse_duration;

/// Longest `--for`: the module's `EX` limit (one year).
pub const MAX_FOR: Duration = Duration::from_secs(31_536_000);

/// How long a pin lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until unpinned (`IPCHECK SET ... PERSIST`).
    Never,
    /// This many whole seconds (`EX`).
    Seconds(u64),
}

/// A checked `pin` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    /// The cache identity the service reads for the address (aggregated).
    pub address: NormalizedIp,
    /// The pinned verdict.
    pub verdict: Verdict,
    /// `--reason`, possibly empty.
    pub reasons: Reasons,
    /// `--for`, or for good.
    pub lifetime: Lifetime,
    /// `--country`, `--asn`, `--score` (see [`super::pin_attributes`]); none by default.
    pub attributes: Attributes,
}

/// An argument that cannot be used, naming it (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{argument}: {message}")]
pub struct BadArgument {
    /// The argument as the command line names it (`<address>`, `--for`, ...).
    pub argument: &'static str,
    /// What is wrong with it and what is accepted.
    pub message: String,
}

fn bad(argument: &'static str, message: impl Into<String>) -> BadArgument {
    BadArgument {
        argument,
        message: message.into(),
    }
}

/// The address or network as the service keys it: aggregated with the configured prefix
/// lengths, so pinning `2001:db8::1` pins the /64 the service looks up. A network wider than
/// the aggregation is refused: it spans many keys, and a pin is one.
pub fn parse_address(text: &str, aggregation: Aggregation) -> Result<NormalizedIp, BadArgument> {
    normalize(text, aggregation).map_err(|e| {
        bad(
            "<address>",
            format!(
                "{e} (an IPv4 or IPv6 address, or a network no wider than /{} for IPv4 and /{} \
                 for IPv6, the configured aggregation)",
                aggregation.v4(),
                aggregation.v6()
            ),
        )
    })
}

impl PinRequest {
    /// Checks every argument of `pin`.
    pub fn parse(
        address: &str,
        verdict: &str,
        reason: Option<&str>,
        for_: Option<&str>,
        aggregation: Aggregation,
    ) -> Result<Self, BadArgument> {
        let address = parse_address(address, aggregation)?;
        let verdict: Verdict = verdict.parse().map_err(|_| {
            bad(
                "<verdict>",
                format!("'{verdict}' is not a verdict: use allow, block or challenge"),
            )
        })?;
        let reasons = Reasons::parse(reason.unwrap_or("")).map_err(|e| {
            bad(
                "--reason",
                format!("{e} (comma-separated tokens of a-z, 0-9, _ and -, e.g. abuse,spam)"),
            )
        })?;
        let lifetime = match for_ {
            None => Lifetime::Never,
            Some(text) => Lifetime::Seconds(parse_for(text)?),
        };
        Ok(PinRequest {
            address,
            verdict,
            reasons,
            lifetime,
            attributes: Attributes::NONE,
        })
    }

    /// The same request, storing `attributes` with the pin.
    pub fn with_attributes(self, attributes: Attributes) -> Self {
        PinRequest { attributes, ..self }
    }
}

/// `--for`: a duration of whole seconds, at most a year (`90s`, `30m`, `12h`, `7d`).
fn parse_for(text: &str) -> Result<u64, BadArgument> {
    let d = parse_duration(text).map_err(|e| bad("--for", e))?;
    if d.subsec_nanos() != 0 {
        return Err(bad(
            "--for",
            format!("'{text}' is not a whole number of seconds"),
        ));
    }
    if d > MAX_FOR {
        return Err(bad(
            "--for",
            format!("'{text}' is longer than a year (365d); leave --for out for a pin that never expires"),
        ));
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(address: &str, verdict: &str, for_: Option<&str>) -> Result<PinRequest, BadArgument> {
        PinRequest::parse(address, verdict, Some("abuse"), for_, Aggregation::DEFAULT)
    }

    #[test]
    fn addresses_are_keyed_as_the_service_keys_them() {
        let p = pin("2001:db8::1", "BLOCK", None).unwrap();
        assert_eq!(p.address.to_string(), "2001:db8::/64");
        assert_eq!(p.verdict, Verdict::Block);
        assert_eq!(p.lifetime, Lifetime::Never);
        assert_eq!(p.reasons.as_str(), "abuse");
        assert_eq!(
            pin("192.0.2.7", "allow", Some("2h")).unwrap().lifetime,
            Lifetime::Seconds(7200)
        );
        let wide = pin("2001:db8::/32", "block", None).unwrap_err();
        assert_eq!(wide.argument, "<address>");
        assert!(wide.message.contains("/64"), "{wide}");
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(
            pin("nope", "block", None).unwrap_err().argument,
            "<address>"
        );
        assert_eq!(
            pin("192.0.2.1", "deny", None).unwrap_err().argument,
            "<verdict>"
        );
        for d in ["soon", "0s", "1500ms", "400d"] {
            assert_eq!(
                pin("192.0.2.1", "block", Some(d)).unwrap_err().argument,
                "--for",
                "{d}"
            );
        }
        let r = PinRequest::parse(
            "192.0.2.1",
            "block",
            Some("Bad Reason"),
            None,
            Aggregation::DEFAULT,
        );
        assert_eq!(r.unwrap_err().argument, "--reason");
    }
}
