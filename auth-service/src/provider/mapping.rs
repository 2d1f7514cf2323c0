//! From a provider's JSON reply to [`Categories`]: a list of JSON paths per category.
//!
//! A category is set when any of its paths holds `true`. A path that is absent, `null` or not a
//! boolean says nothing. A reply in which no path of any category holds a boolean is schema
//! drift: the provider changed its format (or answered with an error object) and the absence of
//! flags must not be read as "clean".

use ipcheck_core::{Categories, Category};
use serde_json::Value;

/// Paths such as `privacy.vpn`, split on dots, for each category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    fields: Vec<(Category, Vec<Vec<String>>)>,
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

    /// Whether any category has at least one path.
    pub fn is_empty(&self) -> bool {
        self.fields.iter().all(|(_, p)| p.is_empty())
    }

    /// The categories the reply flags, or [`SchemaDrift`] when it carries none of the fields.
    pub fn map(&self, reply: &Value) -> Result<Categories, SchemaDrift> {
        let mut found_any = false;
        let mut set = Categories::EMPTY;
        for (category, paths) in &self.fields {
            for path in paths {
                if let Some(flag) = lookup(reply, path).and_then(Value::as_bool) {
                    found_any = true;
                    if flag {
                        set.insert(*category);
                    }
                }
            }
        }
        if found_any {
            Ok(set)
        } else {
            Err(SchemaDrift)
        }
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
    fn custom_paths_replace_a_category() {
        let mut m = Preset::Ipinfo.mapping();
        m.set(Category::Crawler, &["bot.search_engine".to_owned()]);
        let reply = json!({"privacy": {"vpn": false}, "bot": {"search_engine": true}});
        assert_eq!(text(m.map(&reply).unwrap()), "crawler");
    }
}
