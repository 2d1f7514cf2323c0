//! From a provider's JSON reply to [`Categories`]: a list of JSON paths per category.
//!
//! A category is set when any of its paths holds `true`. A path that is absent, `null` or not a
//! boolean says nothing. A reply is schema drift, never a clean answer, when no path of any
//! category holds a boolean, or when a *required* category (one some policy blocks or challenges
//! on, see [`FieldMapping::require`]) has no boolean at any of its paths: the provider changed its
//! format (or answered with an error object), and the absence of a flag must not be read as
//! "not a VPN".

use ipcheck_core::{Categories, Category};
use serde_json::Value;

/// Paths such as `privacy.vpn`, split on dots, for each category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    fields: Vec<(Category, Vec<Vec<String>>)>,
    required: Categories,
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
            required: Categories::EMPTY,
        }
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

    /// Whether `category` has at least one path.
    pub fn has_paths(&self, category: Category) -> bool {
        self.fields
            .iter()
            .any(|(c, paths)| *c == category && !paths.is_empty())
    }

    /// Whether any category has at least one path.
    pub fn is_empty(&self) -> bool {
        self.fields.iter().all(|(_, p)| p.is_empty())
    }

    /// The categories the reply flags, or [`SchemaDrift`] when it carries none of the fields or
    /// nothing about a required category.
    pub fn map(&self, reply: &Value) -> Result<Categories, SchemaDrift> {
        let mut answered = Categories::EMPTY;
        let mut set = Categories::EMPTY;
        for (category, paths) in &self.fields {
            for path in paths {
                if let Some(flag) = lookup(reply, path).and_then(Value::as_bool) {
                    answered.insert(*category);
                    if flag {
                        set.insert(*category);
                    }
                }
            }
        }
        if answered.is_empty() || answered.intersection(self.required) != self.required {
            return Err(SchemaDrift);
        }
        Ok(set)
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

    fn text(c: Categories) -> String {
        c.to_reasons().as_str().to_owned()
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
        assert_eq!(m.map(&clean), Ok(Categories::EMPTY));
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
