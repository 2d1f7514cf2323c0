//! Built-in record layouts: MaxMind's GeoIP2/GeoLite2 Country, ASN and Anonymous-IP databases
//! (DB-IP's and IPinfo's free `.mmdb` files use the same country and ASN field names).
//!
//! Decisions, each overridable with `fields.<fact>`:
//! - `country` reads `country.iso_code` (where the address is used), then
//!   `registered_country.iso_code` (where its block is registered) when the first is missing, as
//!   MaxMind advises for anycast and satellite networks that carry no location.
//! - `anonymous-ip` maps `is_anonymous_vpn` to `vpn`, `is_public_proxy` and
//!   `is_residential_proxy` to `proxy`, `is_tor_exit_node` to `tor`, `is_hosting_provider` to
//!   `hosting`. These files write only the flags that are true, so a record that exists answers
//!   every one of them (`absent_is_false`). `anonymizer_confidence` (Anonymous-Plus) is *not*
//!   mapped to `score`: it is how sure the vendor is that the address is an anonymizer, not a
//!   risk score, and a `block_score` written for a fraud score would act on it. Map it
//!   explicitly (`fields.score = ["anonymizer_confidence"]`) when that is what you want.

use std::str::FromStr;

use ipcheck_core::Category;

use crate::provider::mapping::{Attribute, FieldMapping};

/// A built-in database layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabasePreset {
    /// GeoIP2/GeoLite2 Country (and City, which has the same country fields).
    Country,
    /// GeoLite2/GeoIP2 ASN.
    Asn,
    /// GeoIP2 Anonymous IP (and Anonymous Plus).
    AnonymousIp,
}

impl FromStr for DatabasePreset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "country" => Ok(DatabasePreset::Country),
            "asn" => Ok(DatabasePreset::Asn),
            "anonymous-ip" => Ok(DatabasePreset::AnonymousIp),
            other => Err(format!(
                "unknown preset '{other}': expected country, asn or anonymous-ip"
            )),
        }
    }
}

impl DatabasePreset {
    /// The config word.
    pub fn name(self) -> &'static str {
        match self {
            DatabasePreset::Country => "country",
            DatabasePreset::Asn => "asn",
            DatabasePreset::AnonymousIp => "anonymous-ip",
        }
    }

    /// Whether a record that exists answers every mapped category (see the module docs).
    pub fn absent_is_false(self) -> bool {
        self == DatabasePreset::AnonymousIp
    }

    /// The layout's paths.
    pub fn mapping(self) -> FieldMapping {
        match self {
            DatabasePreset::Country => FieldMapping::new([]).with_attributes([(
                Attribute::Country,
                vec!["country.iso_code", "registered_country.iso_code"],
            )]),
            DatabasePreset::Asn => FieldMapping::new([])
                .with_attributes([(Attribute::Asn, vec!["autonomous_system_number"])]),
            DatabasePreset::AnonymousIp => FieldMapping::new([
                (Category::Vpn, vec!["is_anonymous_vpn"]),
                (
                    Category::Proxy,
                    vec!["is_public_proxy", "is_residential_proxy"],
                ),
                (Category::Tor, vec!["is_tor_exit_node"]),
                (Category::Hosting, vec!["is_hosting_provider"]),
            ]),
        }
    }
}
