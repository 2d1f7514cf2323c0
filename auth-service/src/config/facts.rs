//! The policy keys on facts beyond categories (`block_countries`, `challenge_countries`,
//! `allow_countries`, `block_asns`, `challenge_asns`, `block_score`, `challenge_score`), and the
//! start-up check that some source gives every attribute a policy decides on.

use ipcheck_core::{Asn, Country, Policy, Score};

use super::*;
use crate::provider::mapping::Attribute;

/// Fills `policy`'s attribute rules from `raw`; every error names `policies.<name>.<key>[i]`.
pub(super) fn policy_attributes(
    name: &str,
    raw: &RawPolicy,
    policy: &mut Policy,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let key = |field: &str| format!("policies.{name}.{field}");
    let countries = |field: &str, list: &[String]| -> Result<Vec<Country>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, text)| {
                Country::parse(text.trim())
                    .map_err(|e| err(&format!("{}[{i}]", key(field)), e.to_string()))
            })
            .collect()
    };
    let asns = |field: &str, list: &[Value]| -> Result<Vec<Asn>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, value)| {
                let parsed = match value {
                    Value::Integer(n) => u32::try_from(*n).ok().and_then(Asn::new),
                    Value::String(text) => Asn::parse(text.trim()).ok(),
                    _ => None,
                };
                parsed.ok_or_else(|| {
                    err(
                        &format!("{}[{i}]", key(field)),
                        format!("{value}: expected an AS number from 1 to 4294967295, as a number (13335) or a string (\"AS13335\")"),
                    )
                })
            })
            .collect()
    };
    let score = |field: &str, value: Option<i64>| -> Result<Option<Score>, ConfigError> {
        value
            .map(|n| {
                u8::try_from(n).ok().and_then(Score::new).ok_or_else(|| {
                    err(
                        &key(field),
                        format!(
                            "{n}: expected a score from 0 to 100 (a score at or above it matches)"
                        ),
                    )
                })
            })
            .transpose()
    };
    policy.block_countries = countries("block_countries", &raw.block_countries)?;
    policy.challenge_countries = countries("challenge_countries", &raw.challenge_countries)?;
    policy.allow_countries = countries("allow_countries", &raw.allow_countries)?;
    policy.block_asns = asns("block_asns", &raw.block_asns)?;
    policy.challenge_asns = asns("challenge_asns", &raw.challenge_asns)?;
    policy.block_score = score("block_score", raw.block_score)?;
    policy.challenge_score = score("challenge_score", raw.challenge_score)?;
    // Blocking comes first, so a challenge threshold at or above the block one never matches.
    if let (Some(block), Some(challenge)) = (policy.block_score, policy.challenge_score) {
        if challenge >= block {
            return Err(err(
                &key("challenge_score"),
                format!("{challenge} is not below block_score ({block}): every score that reaches it is blocked first, so it would never challenge"),
            ));
        }
    }
    Ok(())
}

/// Every attribute a policy decides on must come from some source, or its rules could never
/// match (and `allow_countries` would block everyone): refused at start. `gives` says which
/// attributes some source (the provider's field mapping, a local database) can give.
pub(super) fn require_attribute_sources(
    policies: &Policies,
    gives: &dyn Fn(Attribute) -> bool,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    for attribute in Attribute::ALL {
        if gives(attribute) {
            continue;
        }
        let users: Vec<&str> = policies
            .names()
            .into_iter()
            .filter(|n| {
                policies
                    .get(n)
                    .is_some_and(|p| attribute.needed_by(&p.needs()))
            })
            .collect();
        if users.is_empty() {
            continue;
        }
        let name = attribute.name();
        return Err(err(
            &format!("provider.fields.{name}"),
            format!(
                "no source gives '{name}', which policies {} decide on ({}): add a provider field for it (e.g. {name} = [\"{}\"]) or remove those keys",
                users.join(", "),
                attribute.policy_keys(),
                example_path(attribute),
            ),
        ));
    }
    Ok(())
}

/// The attributes some policy decides on, for [`FieldMapping::expect_attributes`].
pub(super) fn needed_attributes(policies: &Policies) -> Vec<Attribute> {
    Attribute::ALL
        .into_iter()
        .filter(|a| policies.all().any(|(_, p)| a.needed_by(&p.needs())))
        .collect()
}

fn example_path(attribute: Attribute) -> &'static str {
    match attribute {
        Attribute::Country => "country_code",
        Attribute::Asn => "asn.asn",
        Attribute::Score => "fraud_score",
    }
}
