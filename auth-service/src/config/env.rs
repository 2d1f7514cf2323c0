//! `IPCHECK_...` environment overrides, applied to the parsed TOML before validation.

use super::*;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Int,
    Float,
    Bool,
    List,
}

/// Every fixed key an environment variable can override, with its value kind.
pub(super) const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("metrics.listen", Kind::Str),
    ("admin.listen", Kind::Str),
    ("log.format", Kind::Str),
    ("log.level", Kind::Str),
    ("log.decisions", Kind::Str),
    ("log.decisions_sample", Kind::Float),
    ("client_ip.header", Kind::Str),
    ("client_ip.trusted_proxies", Kind::List),
    ("aggregation.ipv4_prefix", Kind::Int),
    ("aggregation.ipv6_prefix", Kind::Int),
    ("cache.capacity", Kind::Int),
    ("cache.local_ttl", Kind::Str),
    ("cache.negative_ttl", Kind::Str),
    ("cache.degraded_ttl", Kind::Str),
    ("redis.url", Kind::Str),
    ("redis.cluster", Kind::Bool),
    ("redis.tls_ca_file", Kind::Str),
    ("redis.timeout", Kind::Str),
    ("redis.ttl", Kind::Str),
    ("redis.stale_ttl", Kind::Str),
    ("redis.refresh_ahead", Kind::Str),
    ("redis.key_prefix", Kind::Str),
    ("redis.breaker.failures", Kind::Int),
    ("redis.breaker.cooldown", Kind::Str),
    ("redis.invalidation", Kind::Bool),
    ("provider.preset", Kind::Str),
    ("provider.url", Kind::Str),
    ("provider.api_key_env", Kind::Str),
    ("provider.api_key_file", Kind::Str),
    ("provider.auth_header", Kind::Str),
    ("provider.auth_value", Kind::Str),
    ("provider.timeout", Kind::Str),
    ("provider.breaker.failures", Kind::Int),
    ("provider.breaker.cooldown", Kind::Str),
    ("provider.budget.rate", Kind::Float),
    ("provider.budget.burst", Kind::Int),
    ("provider.budget.daily_quota", Kind::Int),
    ("provider.budget.shared", Kind::Bool),
    ("unknown_policy", Kind::Str),
    ("events.decisions", Kind::Str),
    ("events.sample", Kind::Float),
    ("events.stream", Kind::Str),
    ("events.maxlen", Kind::Int),
    ("events.buffer", Kind::Int),
    ("events.timeout", Kind::Str),
    ("enrich.max_len", Kind::Int),
    ("enrich.dedupe", Kind::Str),
    ("enrich.claim_idle", Kind::Str),
    ("enrich.batch", Kind::Int),
];

/// `provider.fields.<name>` for every category of the vocabulary and every attribute (a list
/// each).
pub(super) fn field_keys() -> impl Iterator<Item = (String, Kind)> {
    let categories = ipcheck_core::Category::ALL.into_iter().map(|c| c.as_str());
    let attributes = crate::provider::mapping::Attribute::ALL
        .into_iter()
        .map(|a| a.name());
    categories
        .chain(attributes)
        .map(|name| (format!("provider.fields.{name}"), Kind::List))
}

/// Per-policy keys, matched as `IPCHECK_POLICIES_<NAME>_<FIELD>`; longest first so `_ALLOW`
/// never swallows `_ALLOW_CRAWLERS`.
pub(super) const POLICY_KEYS: &[(&str, Kind)] = &[
    ("challenge_countries", Kind::List),
    ("allow_countries", Kind::List),
    ("block_countries", Kind::List),
    ("challenge_score", Kind::Int),
    ("challenge_asns", Kind::List),
    ("allow_crawlers", Kind::Bool),
    ("on_redis_error", Kind::Str),
    ("block_score", Kind::Int),
    ("block_asns", Kind::List),
    ("challenge", Kind::List),
    ("on_error", Kind::Str),
    ("block", Kind::List),
    ("allow", Kind::List),
    ("deny", Kind::List),
    ("lists", Kind::List),
    ("mode", Kind::Str),
];

/// The environment variable that overrides a dotted key.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace(['.', '-'], "_").to_ascii_uppercase()
    )
}

pub(super) fn env_value(
    var: &str,
    key: &str,
    kind: Kind,
    text: &str,
    origin: &str,
) -> Result<Value, ConfigError> {
    let bad = |message: String| ConfigError::Key {
        origin: origin.to_owned(),
        key: key.to_owned(),
        via: Via(Some(var.to_owned())),
        message,
    };
    Ok(match kind {
        Kind::Str => Value::String(text.to_owned()),
        Kind::Int => Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| bad(format!("expected an integer, got '{text}'")))?,
        ),
        Kind::Float => Value::Float(
            text.trim()
                .parse()
                .map_err(|_| bad(format!("expected a number, got '{text}'")))?,
        ),
        Kind::Bool => Value::Boolean(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad(format!("expected true or false, got '{text}'"))),
        }),
        Kind::List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

pub(super) fn set_path(root: &mut toml::Table, path: &[&str], value: Value) {
    let mut table = root;
    for segment in &path[..path.len() - 1] {
        let entry = table
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(toml::Table::new());
        }
        let Value::Table(next) = entry else {
            unreachable!("replaced by a table just above")
        };
        table = next;
    }
    table.insert(path[path.len() - 1].to_owned(), value);
}

/// Applies `IPCHECK_...` variables to the parsed file; returns which key each one set.
pub(super) fn apply_env(
    root: &mut toml::Table,
    env: &[(String, String)],
    origin: &str,
    warnings: &mut Vec<String>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut applied = HashMap::new();
    let existing_policies: Vec<String> = root
        .get("policies")
        .and_then(Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    for (var, text) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let fixed = KEYS
            .iter()
            .map(|(k, kind)| ((*k).to_owned(), *kind))
            .chain(field_keys())
            .find(|(k, _)| env_name(k) == *var);
        if let Some((key, kind)) = fixed {
            let value = env_value(var, &key, kind, text, origin)?;
            set_path(root, &key.split('.').collect::<Vec<_>>(), value);
            applied.insert(key, var.clone());
            continue;
        }
        let policy_override = rest.strip_prefix("POLICIES_").and_then(|tail| {
            POLICY_KEYS.iter().find_map(|(field, kind)| {
                let suffix = format!("_{}", field.to_ascii_uppercase());
                let upper_name = tail.strip_suffix(&suffix)?;
                (!upper_name.is_empty()).then(|| (upper_name.to_owned(), *field, *kind))
            })
        });
        match policy_override {
            Some((upper_name, field, kind)) => {
                // Match an existing policy whatever its case or dashes; else create one.
                let name = existing_policies
                    .iter()
                    .find(|n| n.replace('-', "_").eq_ignore_ascii_case(&upper_name))
                    .cloned()
                    .unwrap_or_else(|| upper_name.to_ascii_lowercase());
                let key = format!("policies.{name}.{field}");
                let value = env_value(var, &key, kind, text, origin)?;
                set_path(root, &["policies", &name, field], value);
                applied.insert(key, var.clone());
            }
            None => warnings.push(format!(
                "environment variable {var} matches no configuration key and is ignored"
            )),
        }
    }
    Ok(applied)
}
