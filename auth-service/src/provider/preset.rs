//! Built-in provider presets: URL template, auth header, key variable and field mapping.
//!
//! Everything a preset sets can be overridden in `[provider]`, and a vendor without a preset fits
//! by setting those keys alone.

use std::str::FromStr;

use ipcheck_core::Category;

use super::mapping::{Attribute, FieldMapping};

/// A vendor whose API shape is built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// IPASIS: `GET /v1/lookup?ip=` with a `privacy` object (and the older `GET /v1/{ip}` form).
    Ipasis,
    /// ipinfo.io: a `privacy` object (`vpn`, `proxy`, `tor`, `relay`, `hosting`).
    Ipinfo,
    /// IPQualityScore: top-level `vpn`, `proxy`, `tor`, `is_crawler`.
    Ipqs,
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ipasis" => Ok(Preset::Ipasis),
            "ipinfo" => Ok(Preset::Ipinfo),
            "ipqs" => Ok(Preset::Ipqs),
            other => Err(format!(
                "unknown preset '{other}': expected ipasis, ipinfo or ipqs"
            )),
        }
    }
}

impl Preset {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Ipasis => "ipasis",
            Preset::Ipinfo => "ipinfo",
            Preset::Ipqs => "ipqs",
        }
    }

    /// The request URL; `{ip}` is the client address, `{key}` the API key.
    pub fn url(self) -> &'static str {
        match self {
            Preset::Ipasis => "https://api.ipasis.com/v1/lookup?ip={ip}",
            Preset::Ipinfo => "https://ipinfo.io/{ip}",
            // IPQS takes the key in the path; the URL is therefore never logged.
            Preset::Ipqs => "https://ipqualityscore.com/api/json/ip/{key}/{ip}",
        }
    }

    /// The header carrying the key, if the key goes in a header.
    pub fn auth_header(self) -> Option<&'static str> {
        match self {
            Preset::Ipasis => Some("X-API-Key"),
            Preset::Ipinfo => Some("Authorization"),
            Preset::Ipqs => None,
        }
    }

    /// The auth header's value; `{key}` is the key.
    pub fn auth_value(self) -> &'static str {
        match self {
            Preset::Ipinfo => "Bearer {key}",
            Preset::Ipasis | Preset::Ipqs => "{key}",
        }
    }

    /// The environment variable the key is read from unless `api_key_env` says otherwise.
    pub fn api_key_env(self) -> &'static str {
        match self {
            Preset::Ipasis => "IPASIS_API_KEY",
            Preset::Ipinfo => "IPINFO_TOKEN",
            Preset::Ipqs => "IPQS_API_KEY",
        }
    }

    /// Which JSON fields mean which category and attribute (docs/facts.md lists them).
    pub fn mapping(self) -> FieldMapping {
        self.categories().with_attributes(self.attributes())
    }

    /// Where each attribute is in the vendor's reply. Only fields a published reply shows: no
    /// score for ipasis and ipinfo, whose lookup replies carry none.
    fn attributes(self) -> Vec<(Attribute, Vec<&'static str>)> {
        use Attribute::*;
        match self {
            // Published examples show `"country": "US"` with `"asn": {"ASN": "AS23005"}`, and
            // `"asn": {"number": 15169}`; `asn.asn` is the ipinfo-style spelling.
            Preset::Ipasis => vec![
                (Country, vec!["country", "country_code"]),
                (Asn, vec!["asn.asn", "asn.ASN", "asn.number"]),
            ],
            // `asn` is a paid-plan object (`{"asn": "AS15169", ...}`); the free plan has only
            // `"org": "AS15169 Google LLC"`, whose first word is the AS number.
            Preset::Ipinfo => vec![(Country, vec!["country"]), (Asn, vec!["asn.asn", "org"])],
            // IPQS recommends acting on a fraud_score above 85.
            Preset::Ipqs => vec![
                (Country, vec!["country_code"]),
                (Asn, vec!["ASN"]),
                (Score, vec!["fraud_score"]),
            ],
        }
    }

    fn categories(self) -> FieldMapping {
        use Category::*;
        match self {
            // Both the documented `privacy` object and the older `security.is_*` form, so a
            // deployment on either endpoint works without configuration.
            Preset::Ipasis => FieldMapping::new([
                (Vpn, vec!["privacy.vpn", "security.is_vpn", "is_vpn"]),
                (Proxy, vec!["privacy.proxy", "security.is_proxy"]),
                (Tor, vec!["privacy.tor", "security.is_tor"]),
                (Hosting, vec!["privacy.hosting", "security.is_hosting"]),
                (Relay, vec!["privacy.relay"]),
                (Crawler, vec!["privacy.crawler", "security.is_crawler"]),
            ]),
            Preset::Ipinfo => FieldMapping::new([
                (Vpn, vec!["privacy.vpn"]),
                (Proxy, vec!["privacy.proxy"]),
                (Tor, vec!["privacy.tor"]),
                (Hosting, vec!["privacy.hosting"]),
                (Relay, vec!["privacy.relay"]),
            ]),
            Preset::Ipqs => FieldMapping::new([
                (Vpn, vec!["vpn"]),
                (Proxy, vec!["proxy"]),
                (Tor, vec!["tor"]),
                (Crawler, vec!["is_crawler"]),
            ]),
        }
    }
}
