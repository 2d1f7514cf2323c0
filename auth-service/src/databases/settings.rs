//! `[databases.<name>]`: a local IP database file (MaxMind DB format, `.mmdb`) and how its
//! records map to facts: a preset for the common layouts and/or `fields.<category|attribute>`
//! paths, the same dotted paths the provider's mapping uses.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipcheck_core::Category;
use serde::Deserialize;

use super::preset::DatabasePreset;
use crate::config::ConfigError;
use crate::duration::ConfigDuration;
use crate::provider::mapping::{Attribute, FieldMapping};

/// How often a database file is checked for a replacement when `check_interval` is not set.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The section as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    file: Option<PathBuf>,
    preset: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, Vec<String>>,
    absent_is_false: Option<bool>,
    check_interval: Option<ConfigDuration>,
}

/// One configured database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// Its name (metrics label, `/readyz`, `/explain`).
    pub name: String,
    /// The `.mmdb` file.
    pub file: PathBuf,
    /// The preset it started from, if any (for the summary line).
    pub preset: Option<DatabasePreset>,
    /// Record paths to categories and attributes.
    pub mapping: FieldMapping,
    /// Whether a record that exists answers every mapped category, a flag it leaves out being
    /// `false` (MaxMind's anonymous-IP layout writes only the flags that are true).
    pub absent_is_false: bool,
    /// How often the file's identity (inode, size, mtime) is checked for a replacement.
    pub check_interval: Duration,
}

/// Validates every `[databases.*]` section, sorted by name.
pub fn validate(
    raw: BTreeMap<String, RawDatabase>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<DatabaseSpec>, ConfigError> {
    let mut specs = Vec::with_capacity(raw.len());
    for (name, d) in raw {
        let key = |field: &str| format!("databases.{name}.{field}");
        check_name(&name).map_err(|e| err(&format!("databases.{name}"), e))?;
        let file = match d.file {
            Some(f) if !f.as_os_str().is_empty() => f,
            _ => {
                return Err(err(
                    &key("file"),
                    "required: the path of the .mmdb file (e.g. \"/var/lib/GeoIP/GeoLite2-Country.mmdb\")"
                        .to_owned(),
                ))
            }
        };
        let preset = match d.preset.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<DatabasePreset>()
                    .map_err(|e| err(&key("preset"), e))?,
            ),
        };
        let mut mapping = preset.map_or_else(|| FieldMapping::new([]), DatabasePreset::mapping);
        for (field, paths) in &d.fields {
            let fkey = key(&format!("fields.{field}"));
            if let Some(bad) = paths
                .iter()
                .find(|p| p.is_empty() || p.split('.').any(str::is_empty))
            {
                return Err(err(
                    &fkey,
                    format!("'{bad}' is not a dotted record path (e.g. country.iso_code)"),
                ));
            }
            if let Some(category) = Category::from_token(field) {
                mapping.set(category, paths);
            } else if let Some(attribute) = Attribute::from_name(field) {
                mapping.set_attribute(attribute, paths);
            } else {
                return Err(err(
                    &fkey,
                    format!(
                        "unknown fact: expected a category ({}) or country, asn, score",
                        ipcheck_core::vocabulary::category_list()
                    ),
                ));
            }
        }
        if mapping.is_empty() {
            return Err(err(
                &format!("databases.{name}"),
                "maps nothing: set preset (country, asn or anonymous-ip) or fields (e.g. fields.country = [\"country.iso_code\"])".to_owned(),
            ));
        }
        let absent_is_false = d
            .absent_is_false
            .unwrap_or_else(|| preset.is_some_and(DatabasePreset::absent_is_false));
        // ConfigDuration refuses 0s already.
        let check_interval = d.check_interval.map_or(DEFAULT_CHECK_INTERVAL, |c| c.0);
        specs.push(DatabaseSpec {
            name,
            file,
            preset,
            mapping,
            absent_is_false,
            check_interval,
        });
    }
    Ok(specs)
}

/// Whether some database maps `attribute` (a policy deciding on it has a source).
pub fn gives(specs: &[DatabaseSpec], attribute: Attribute) -> bool {
    specs.iter().any(|d| d.mapping.has_attribute(attribute))
}

/// A database name is a metric label value and a word in `/readyz`: keep it plain.
fn check_name(name: &str) -> Result<(), String> {
    crate::plain_name::check("database", name, "")
}
