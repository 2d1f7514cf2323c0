//! From a JSON record (a provider's reply, a database's record) to [`Facts`]: a list of JSON
//! paths per category and per attribute (country, AS number, score).
//!
//! A category is set when any of its paths holds `true`. A path that is absent, `null` or not a
//! boolean says nothing. An attribute takes the first of its paths that holds a value of its
//! kind (see [`Attribute`]); anything else says nothing, and an unknown attribute matches no
//! policy rule. A reply is schema drift, never a clean answer, when no path of any category
//! holds a boolean and no attribute is known, or when a *required* category (one some policy
//! blocks or challenges on, see [`FieldMapping::require`]) has no boolean at any of its paths:
//! the provider changed its format (or answered with an error object), and the absence of a
//! flag must not be read as "not a VPN".

use ipcheck_core::{Asn, Attributes, Categories, Category, Country, Facts, Needs, Score};
use serde_json::Value;

/// A fact that is not a category, and how a JSON value gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// Two letters (`"US"`, any case).
    Country,
    /// A number (`13335`) or a string starting with one (`"AS13335"`, `"AS13335 Cloudflare"`).
    Asn,
    /// A number from 0 to 100 (rounded), or a string holding one.
    Score,
}

impl Attribute {
    /// Every attribute.
    pub const ALL: [Attribute; 3] = [Attribute::Country, Attribute::Asn, Attribute::Score];

    /// The name in config keys (`provider.fields.<name>`) and headers.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Country => "country",
            Attribute::Asn => "asn",
            Attribute::Score => "score",
        }
    }

    /// The attribute named `name`, if any.
    pub fn from_name(name: &str) -> Option<Attribute> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether `attributes` know this one.
    pub fn is_known(self, attributes: &Attributes) -> bool {
        match self {
            Attribute::Country => attributes.country.is_some(),
            Attribute::Asn => attributes.asn.is_some(),
            Attribute::Score => attributes.score.is_some(),
        }
    }

    /// Whether a policy with these needs decides on this attribute.
    pub fn needed_by(self, needs: &Needs) -> bool {
        match self {
            Attribute::Country => needs.country,
            Attribute::Asn => needs.asn,
            Attribute::Score => needs.score,
        }
    }

    /// The policy keys that make a policy need this attribute (for error messages and docs).
    pub fn policy_keys(self) -> &'static str {
        match self {
            Attribute::Country => "block_countries, challenge_countries, allow_countries",
            Attribute::Asn => "block_asns, challenge_asns",
            Attribute::Score => "block_score, challenge_score",
        }
    }

    /// Reads the attribute from `value` into `into`; false when the value does not give it.
    fn read(self, value: &Value, into: &mut Attributes) -> bool {
        match self {
            Attribute::Country => {
                let c = value.as_str().and_then(|s| Country::parse(s).ok());
                into.country = c;
                c.is_some()
            }
            Attribute::Asn => {
                let n = match value {
                    Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                    Value::String(s) => s
                        .split_whitespace()
                        .next()
                        .and_then(|w| Asn::parse(w).ok())
                        .map(Asn::get),
                    _ => None,
                };
                into.asn = n.and_then(Asn::new);
                into.asn.is_some()
            }
            Attribute::Score => {
                let n = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                into.score = n.and_then(Score::from_f64);
                into.score.is_some()
            }
        }
    }
}

/// What a record said: the facts, and which categories it answered (true or false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// The facts.
    pub facts: Facts,
    /// The categories some path answered with a boolean, `false` included.
    pub answered: Categories,
}

/// Paths such as `privacy.vpn`, split on dots, for each category and attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    fields: Vec<(Category, Vec<Vec<String>>)>,
    attributes: Vec<(Attribute, Vec<Vec<String>>)>,
    required: Categories,
    expected: Vec<Attribute>,
}

/// The reply held none of the fields the mapping expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaDrift;

impl FieldMapping {
    /// A mapping from `(category, dotted paths)` pairs.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (Category, Vec<&'a str>)>) -> Self {
        FieldMapping {
            fields: pairs
                .into_iter()
                .map(|(c, paths)| (c, paths.into_iter().map(split_path).collect()))
                .collect(),
            attributes: Vec::new(),
            required: Categories::EMPTY,
            expected: Vec::new(),
        }
    }

    /// This mapping with paths for attributes.
    pub fn with_attributes<'a>(
        mut self,
        pairs: impl IntoIterator<Item = (Attribute, Vec<&'a str>)>,
    ) -> Self {
        for (a, paths) in pairs {
            let paths: Vec<String> = paths.into_iter().map(str::to_owned).collect();
            self.set_attribute(a, &paths);
        }
        self
    }

    /// Replaces (or adds) the paths of one attribute.
    pub fn set_attribute(&mut self, attribute: Attribute, paths: &[String]) {
        let paths: Vec<Vec<String>> = paths.iter().map(|p| split_path(p)).collect();
        match self.attributes.iter_mut().find(|(a, _)| *a == attribute) {
            Some(entry) => entry.1 = paths,
            None => self.attributes.push((attribute, paths)),
        }
    }

    /// Whether `attribute` has at least one path.
    pub fn has_attribute(&self, attribute: Attribute) -> bool {
        self.attributes
            .iter()
            .any(|(a, paths)| *a == attribute && !paths.is_empty())
    }

    /// Replaces (or adds) the paths of one category.
    pub fn set(&mut self, category: Category, paths: &[String]) {
        let paths: Vec<Vec<String>> = paths.iter().map(|p| split_path(p)).collect();
        match self.fields.iter_mut().find(|(c, _)| *c == category) {
            Some(entry) => entry.1 = paths,
            None => self.fields.push((category, paths)),
        }
    }

    /// Makes a reply that says nothing about one of `categories` drift (the policies decide on
    /// them). Computed once from the configured policies.
    pub fn require(&mut self, categories: Categories) {
        self.required = categories;
    }

    /// The attributes some policy decides on. A reply without one of them is not drift (a
    /// country or a score can be unknown for one address), but it is counted
    /// (`ipcheck_provider_attribute_missing_total`, see [`FieldMapping::missing`]). Computed
    /// once from the configured policies.
    pub fn expect_attributes(&mut self, attributes: Vec<Attribute>) {
        self.expected = attributes;
    }

    /// The expected attributes (see [`FieldMapping::expect_attributes`]) that `facts` lack.
    pub fn missing<'a>(&'a self, facts: &'a Attributes) -> impl Iterator<Item = Attribute> + 'a {
        self.expected
            .iter()
            .copied()
            .filter(move |a| !a.is_known(facts))
    }

    /// Whether `category` has at least one path.
    pub fn has_paths(&self, category: Category) -> bool {
        self.fields
            .iter()
            .any(|(c, paths)| *c == category && !paths.is_empty())
    }

    /// Whether no category and no attribute has a path.
    pub fn is_empty(&self) -> bool {
        self.fields.iter().all(|(_, p)| p.is_empty())
            && self.attributes.iter().all(|(_, p)| p.is_empty())
    }

    /// Every path of every category and attribute, split on dots (a database decodes only
    /// these parts of a record).
    pub fn paths(&self) -> impl Iterator<Item = &[String]> {
        self.fields
            .iter()
            .flat_map(|(_, p)| p.iter())
            .chain(self.attributes.iter().flat_map(|(_, p)| p.iter()))
            .map(Vec::as_slice)
    }

    /// Everything the record says, without judging whether it says enough.
    pub fn read(&self, record: &Value) -> Mapped {
        let mut answered = Categories::EMPTY;
        let mut set = Categories::EMPTY;
        for (category, paths) in &self.fields {
            for path in paths {
                if let Some(flag) = lookup(record, path).and_then(Value::as_bool) {
                    answered.insert(*category);
                    if flag {
                        set.insert(*category);
                    }
                }
            }
        }
        let mut attributes = Attributes::NONE;
        for (attribute, paths) in &self.attributes {
            for path in paths {
                if lookup(record, path).is_some_and(|v| attribute.read(v, &mut attributes)) {
                    break;
                }
            }
        }
        Mapped {
            facts: Facts {
                categories: set,
                attributes,
            },
            answered,
        }
    }

    /// The facts the reply gives, or [`SchemaDrift`] when it carries none of the fields or
    /// nothing about a required category.
    pub fn map(&self, reply: &Value) -> Result<Facts, SchemaDrift> {
        let mapped = self.read(reply);
        let answered = mapped.answered;
        if (answered.is_empty() && mapped.facts.attributes.is_empty())
            || answered.intersection(self.required) != self.required
        {
            return Err(SchemaDrift);
        }
        Ok(mapped.facts)
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, segment| v.get(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::preset::Preset;
    use serde_json::json;

    fn text(f: Facts) -> String {
        f.categories.to_reasons().as_str().to_owned()
    }

    #[test]
    fn attributes_from_numbers_and_strings() {
        let m = FieldMapping::new([(Category::Vpn, vec!["vpn"])]).with_attributes([
            (Attribute::Country, vec!["country_code", "country"]),
            (Attribute::Asn, vec!["asn.asn", "ASN"]),
            (Attribute::Score, vec!["fraud_score"]),
        ]);
        let reply = json!({"vpn": true, "country_code": "us", "ASN": 13335, "fraud_score": 87.6});
        let f = m.map(&reply).unwrap();
        assert_eq!(text(f), "vpn");
        assert_eq!(
            f.attributes.country.map(|c| c.to_string()),
            Some("US".into())
        );
        assert_eq!(f.attributes.asn.map(Asn::get), Some(13335));
        assert_eq!(f.attributes.score.map(Score::get), Some(88));
        // The first path holding a usable value wins; strings are read as vendors write them.
        let reply = json!({"vpn": false, "country_code": null, "country": "DE",
            "asn": {"asn": "AS3320 Deutsche Telekom AG"}, "fraud_score": "12"});
        let f = m.map(&reply).unwrap();
        assert_eq!(
            f.attributes.country.map(|c| c.to_string()),
            Some("DE".into())
        );
        assert_eq!(f.attributes.asn.map(Asn::get), Some(3320));
        assert_eq!(f.attributes.score.map(Score::get), Some(12));
        // Unusable values say nothing.
        let reply = json!({"vpn": false, "country": "Germany", "ASN": 0, "fraud_score": -1});
        assert_eq!(m.map(&reply).unwrap().attributes, Attributes::NONE);
        let reply = json!({"vpn": false, "ASN": 4294967296u64, "fraud_score": 101});
        assert_eq!(m.map(&reply).unwrap().attributes, Attributes::NONE);
        // Attributes alone are an answer (a geo-only source); nothing at all is drift.
        assert!(m.map(&json!({"country": "FR"})).is_ok());
        assert_eq!(m.map(&json!({"country": 7})), Err(SchemaDrift));
        let read = m.read(&json!({"vpn": false}));
        assert_eq!(read.answered, Categories::EMPTY.with(Category::Vpn));
    }

    #[test]
    fn ipasis_both_forms() {
        let m = Preset::Ipasis.mapping();
        let lookup_form = json!({"ip": "192.0.2.1", "privacy": {"vpn": true, "proxy": false,
            "tor": false, "relay": false, "hosting": true, "crawler": false}});
        assert_eq!(text(m.map(&lookup_form).unwrap()), "vpn,hosting");
        let older = json!({"ip": "192.0.2.1", "is_vpn": true,
            "security": {"is_vpn": true, "is_proxy": false, "is_tor": true, "is_crawler": false,
            "is_hosting": false}});
        assert_eq!(text(m.map(&older).unwrap()), "vpn,tor");
        let clean = json!({"privacy": {"vpn": false}});
        assert_eq!(m.map(&clean), Ok(Facts::EMPTY));
    }

    #[test]
    fn ipinfo_and_ipqs() {
        let m = Preset::Ipinfo.mapping();
        let reply = json!({"ip": "192.0.2.1", "privacy": {"vpn": false, "proxy": false,
            "tor": true, "relay": true, "hosting": false, "service": ""}});
        assert_eq!(text(m.map(&reply).unwrap()), "tor,relay");
        let m = Preset::Ipqs.mapping();
        let reply = json!({"success": true, "fraud_score": 88, "proxy": true, "vpn": true,
            "tor": false, "is_crawler": true});
        assert_eq!(text(m.map(&reply).unwrap()), "vpn,proxy,crawler");
    }

    fn attrs(f: Facts) -> (Option<String>, Option<u32>, Option<u8>) {
        let a = f.attributes;
        (
            a.country.map(|c| c.to_string()),
            a.asn.map(Asn::get),
            a.score.map(Score::get),
        )
    }

    #[test]
    fn attribute_names_are_not_categories() {
        // `provider.fields.<name>` means one or the other, never both.
        for a in Attribute::ALL {
            assert_eq!(Category::from_token(a.name()), None, "{}", a.name());
            assert_eq!(Attribute::from_name(a.name()), Some(a));
        }
    }

    #[test]
    fn preset_attributes() {
        let ipqs = json!({"success": true, "fraud_score": 88, "country_code": "US",
            "ASN": 15169, "vpn": false, "proxy": false, "tor": false, "is_crawler": false});
        assert_eq!(
            attrs(Preset::Ipqs.mapping().map(&ipqs).unwrap()),
            (Some("US".into()), Some(15169), Some(88))
        );
        let ipinfo_paid = json!({"country": "DE", "org": "AS3320 Deutsche Telekom AG",
            "asn": {"asn": "AS3320", "name": "Deutsche Telekom AG"},
            "privacy": {"vpn": false}});
        assert_eq!(
            attrs(Preset::Ipinfo.mapping().map(&ipinfo_paid).unwrap()),
            (Some("DE".into()), Some(3320), None)
        );
        // The free plan: no asn object, the AS number leads `org`.
        let ipinfo_free = json!({"country": "US", "org": "AS15169 Google LLC",
            "privacy": {"vpn": false}});
        assert_eq!(
            attrs(Preset::Ipinfo.mapping().map(&ipinfo_free).unwrap()),
            (Some("US".into()), Some(15169), None)
        );
        let ipasis = json!({"country": "US", "asn": {"ASN": "AS23005", "Name": "SWITCH-LTD"},
            "privacy": {"vpn": false}});
        assert_eq!(
            attrs(Preset::Ipasis.mapping().map(&ipasis).unwrap()),
            (Some("US".into()), Some(23005), None)
        );
        let ipasis = json!({"asn": {"number": 15169, "name": "Google LLC"},
            "privacy": {"vpn": false}});
        assert_eq!(
            attrs(Preset::Ipasis.mapping().map(&ipasis).unwrap()),
            (None, Some(15169), None)
        );
    }

    #[test]
    fn a_missing_attribute_is_counted_not_drift() {
        let mut m = Preset::Ipqs.mapping();
        m.expect_attributes(vec![Attribute::Asn, Attribute::Score]);
        // No fraud_score for this address: still an answer, and the score is reported missing.
        let reply = json!({"vpn": true, "ASN": 64500});
        let f = m.map(&reply).unwrap();
        assert_eq!(text(f), "vpn");
        let missing: Vec<Attribute> = m.missing(&f.attributes).collect();
        assert_eq!(missing, vec![Attribute::Score]);
        // The country is not expected, so its absence is not reported.
        let f = m
            .map(&json!({"vpn": false, "ASN": 64500, "fraud_score": 3}))
            .unwrap();
        assert_eq!(m.missing(&f.attributes).count(), 0);
    }

    #[test]
    fn drift_is_not_clean() {
        let m = Preset::Ipasis.mapping();
        for reply in [
            json!({}),
            json!({"error": "invalid key"}),
            json!({"privacy": {"vpn": "yes"}}),
            json!({"privacy": null}),
            json!([1, 2, 3]),
            json!("ok"),
        ] {
            assert_eq!(m.map(&reply), Err(SchemaDrift), "{reply}");
        }
        // IPQS answers a bad key with HTTP 200 and success=false: no flags, so drift.
        let m = Preset::Ipqs.mapping();
        assert_eq!(
            m.map(&json!({"success": false, "message": "Invalid key"})),
            Err(SchemaDrift)
        );
    }

    #[test]
    fn partial_drift_is_not_clean() {
        let mut m = Preset::Ipasis.mapping();
        m.require(Categories::EMPTY.with(Category::Vpn).with(Category::Tor));
        // Still carries some mapped fields, but has lost privacy.vpn: not "not a VPN".
        let lost_vpn = json!({"privacy": {"crawler": false, "tor": false, "proxy": false,
            "relay": false, "hosting": false}});
        assert_eq!(m.map(&lost_vpn), Err(SchemaDrift));
        // A boolean through any one of a category's paths is enough.
        let older_vpn = json!({"privacy": {"tor": false}, "security": {"is_vpn": true}});
        assert_eq!(text(m.map(&older_vpn).unwrap()), "vpn");
        let wrong_type = json!({"privacy": {"tor": false, "vpn": "false"}});
        assert_eq!(m.map(&wrong_type), Err(SchemaDrift));
        // Categories no policy decides on may be absent.
        let enough = json!({"privacy": {"tor": true, "vpn": false}});
        assert_eq!(text(m.map(&enough).unwrap()), "tor");
    }

    #[test]
    fn custom_paths_replace_a_category() {
        let mut m = Preset::Ipinfo.mapping();
        m.set(Category::Crawler, &["bot.search_engine".to_owned()]);
        let reply = json!({"privacy": {"vpn": false}, "bot": {"search_engine": true}});
        assert_eq!(text(m.map(&reply).unwrap()), "crawler");
    }
}
