//! `[lists.<name>]`: what a match on each named network list means, where its networks come
//! from, and the policies' references to them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipcheck_core::{Category, Verdict};
use serde::Deserialize;

use super::{ConfigError, Policies};
use crate::duration::ConfigDuration;

/// How often a list's version in Redis is checked when `refresh` is not set.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawList {
    category: Option<String>,
    verdict: Option<String>,
    file: Option<PathBuf>,
    refresh: Option<ConfigDuration>,
}

/// What a match on a list means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMeaning {
    /// A fact, as a provider's category is: the policy judges it.
    Category(Category),
    /// A verdict, as the policy's allow and deny lists are (`block` or `allow`).
    Verdict(Verdict),
}

/// One configured list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSpec {
    /// Its name: the Redis key is `<key_prefix>{lists}:<name>`.
    pub name: String,
    /// What a match means.
    pub meaning: ListMeaning,
    /// Networks used without Redis, and before (or instead of) the Redis copy.
    pub file: Option<PathBuf>,
    /// How often the Redis copy's version is checked.
    pub refresh: Duration,
}

/// Validates `[lists.*]` and every policy's `lists = [...]` against them.
pub(super) fn validate(
    raw: BTreeMap<String, RawList>,
    policies: &Policies,
    with_redis: bool,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<ListSpec>, ConfigError> {
    let mut specs = Vec::with_capacity(raw.len());
    for (name, l) in raw {
        let key = |field: &str| format!("lists.{name}.{field}");
        crate::lists::name::check(&name).map_err(|e| err(&format!("lists.{name}"), e))?;
        let meaning = match (l.category.as_deref(), l.verdict.as_deref()) {
            (Some(c), None) => match Category::from_token(c) {
                Some(c) => ListMeaning::Category(c),
                None => {
                    let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                    return Err(err(
                        &key("category"),
                        format!("'{c}': expected one of {}", known.join(", ")),
                    ));
                }
            },
            (None, Some("block")) => ListMeaning::Verdict(Verdict::Block),
            (None, Some("allow")) => ListMeaning::Verdict(Verdict::Allow),
            (None, Some(v)) => {
                return Err(err(&key("verdict"), format!("'{v}': expected block or allow")))
            }
            _ => {
                return Err(err(
                    &format!("lists.{name}"),
                    "set exactly one of category (a fact the policy judges) or verdict (block or allow)".to_owned(),
                ))
            }
        };
        if l.file.is_none() && !with_redis {
            return Err(err(
                &format!("lists.{name}"),
                "has no file and Redis is not configured, so it would always be empty: set file = \"/path\" or [redis] url".to_owned(),
            ));
        }
        // ConfigDuration refuses 0s already.
        let refresh = l.refresh.map_or(DEFAULT_REFRESH, |d| d.0);
        specs.push(ListSpec {
            name,
            meaning,
            file: l.file,
            refresh,
        });
    }
    for (policy, p) in policies.all() {
        for (i, name) in p.lists.iter().enumerate() {
            if !specs.iter().any(|s| &s.name == name) {
                return Err(err(
                    &format!("policies.{policy}.lists[{i}]"),
                    format!("'{name}' is not a configured list: add [lists.{name}] or remove it"),
                ));
            }
        }
    }
    Ok(specs)
}
