//! The configuration: a TOML file (or the embedded default), then `IPCHECK_...` environment
//! overrides, validated into [`Settings`].
//!
//! Every error names the key and where it came from (the file, or the environment variable that
//! overrode it), because an operator reading "invalid CIDR" needs to know which of forty lines to
//! fix. Unknown keys are errors, not silently ignored typos.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use ipcheck_core::{Aggregation, Categories, Category, FailureMode, Policy};
use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;
use toml::Value;

use crate::client_ip::ClientIpSource;
use crate::duration::ConfigDuration;
use crate::provider::mapping::FieldMapping;
use crate::provider::preset::Preset;
use crate::provider::ProviderSpec;

/// The configuration used when no file is given: LRU only, no provider, fail open.
pub const EMBEDDED_DEFAULT: &str = r#"
listen = "127.0.0.1:8080"

[policies.default]
on_error = "open"
"#;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "IPCHECK_";

/// A configuration problem, naming the key and where it came from.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read config file: {message}")]
    Read {
        /// The file.
        origin: String,
        /// The OS error.
        message: String,
    },
    /// The file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a bad value, is unknown, or is missing.
    #[error("{origin}: key `{key}`{via}: {message}")]
    Key {
        /// The file (or the embedded default).
        origin: String,
        /// The dotted key, e.g. `policies.strict.block`.
        key: String,
        /// ` (set by IPCHECK_...)` when an environment variable supplied the value.
        via: Via,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// The environment variable behind a value, if any, for error messages.
#[derive(Debug, Default, Clone)]
pub struct Via(Option<String>);

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(var) => write!(f, " (set by {var})"),
            None => Ok(()),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// The validated, ready-to-run configuration.
#[derive(Debug)]
pub struct Settings {
    /// Where the config came from (file path or "embedded default").
    pub origin: String,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Which request header holds the client address.
    pub client_ip: ClientIpSource,
    /// Cache identity prefix lengths.
    pub aggregation: Aggregation,
    /// The in-process tier.
    pub cache: CacheSettings,
    /// The Redis tier, when configured.
    pub redis: Option<RedisSettings>,
    /// The provider, when configured.
    pub provider: Option<ProviderSpec>,
    /// The named policies.
    pub policies: Policies,
    /// Non-fatal findings (unused environment variables, ignored settings), logged at startup.
    pub warnings: Vec<String>,
}

/// Settings of the in-process LRU tier.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Entries kept at most.
    pub capacity: usize,
    /// Longest any entry lives locally, so Redis changes reach every instance within it.
    pub local_ttl: Duration,
    /// How long a provider failure is remembered for an address.
    pub negative_ttl: Duration,
}

/// Settings of the Redis tier.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db`.
    pub url: String,
    /// Deadline of each call.
    pub timeout: Duration,
    /// `EX` of the entries the service writes.
    pub ttl: Duration,
}

/// The named policies, `default` always among them.
#[derive(Debug, Clone)]
pub struct Policies {
    default: Arc<Policy>,
    named: HashMap<String, Arc<Policy>>,
}

impl Policies {
    /// The policy used when nginx sends no `X-IPCheck-Policy`.
    pub fn default_policy(&self) -> &Arc<Policy> {
        &self.default
    }

    /// A policy by name (`default` included).
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.named.get(name)
    }

    /// The policy names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.named.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

// ---- the file's shape -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    client_ip: RawClientIp,
    #[serde(default)]
    aggregation: RawAggregation,
    #[serde(default)]
    cache: RawCache,
    redis: Option<RawRedis>,
    provider: Option<RawProvider>,
    #[serde(default)]
    policies: BTreeMap<String, RawPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClientIp {
    header: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAggregation {
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    capacity: Option<usize>,
    local_ttl: Option<ConfigDuration>,
    negative_ttl: Option<ConfigDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    timeout: Option<ConfigDuration>,
    ttl: Option<ConfigDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    preset: Option<String>,
    url: Option<String>,
    api_key_env: Option<String>,
    auth_header: Option<String>,
    auth_value: Option<String>,
    timeout: Option<ConfigDuration>,
    #[serde(default)]
    fields: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    block: Vec<String>,
    #[serde(default)]
    challenge: Vec<String>,
    allow_crawlers: Option<bool>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    on_error: Option<String>,
}

// ---- environment overrides ----------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every fixed key an environment variable can override, with its value kind.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("log.format", Kind::Str),
    ("log.level", Kind::Str),
    ("client_ip.header", Kind::Str),
    ("client_ip.trusted_proxies", Kind::List),
    ("aggregation.ipv4_prefix", Kind::Int),
    ("aggregation.ipv6_prefix", Kind::Int),
    ("cache.capacity", Kind::Int),
    ("cache.local_ttl", Kind::Str),
    ("cache.negative_ttl", Kind::Str),
    ("redis.url", Kind::Str),
    ("redis.timeout", Kind::Str),
    ("redis.ttl", Kind::Str),
    ("provider.preset", Kind::Str),
    ("provider.url", Kind::Str),
    ("provider.api_key_env", Kind::Str),
    ("provider.auth_header", Kind::Str),
    ("provider.auth_value", Kind::Str),
    ("provider.timeout", Kind::Str),
    ("provider.fields.vpn", Kind::List),
    ("provider.fields.proxy", Kind::List),
    ("provider.fields.tor", Kind::List),
    ("provider.fields.hosting", Kind::List),
    ("provider.fields.relay", Kind::List),
    ("provider.fields.crawler", Kind::List),
];

/// Per-policy keys, matched as `IPCHECK_POLICIES_<NAME>_<FIELD>`; longest first so `_ALLOW`
/// never swallows `_ALLOW_CRAWLERS`.
const POLICY_KEYS: &[(&str, Kind)] = &[
    ("allow_crawlers", Kind::Bool),
    ("challenge", Kind::List),
    ("on_error", Kind::Str),
    ("block", Kind::List),
    ("allow", Kind::List),
    ("deny", Kind::List),
];

/// The environment variable that overrides a dotted key.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace(['.', '-'], "_").to_ascii_uppercase()
    )
}

fn env_value(
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

fn set_path(root: &mut toml::Table, path: &[&str], value: Value) {
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
fn apply_env(
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
        if let Some((key, kind)) = KEYS.iter().find(|(k, _)| env_name(k) == *var) {
            let value = env_value(var, key, *kind, text, origin)?;
            set_path(root, &key.split('.').collect::<Vec<_>>(), value);
            applied.insert((*key).to_owned(), var.clone());
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

// ---- loading ------------------------------------------------------------------------------------

/// Loads a file (or the embedded default when `path` is `None`), applies the environment, and
/// validates everything.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    let (origin, text) = match path {
        Some(p) => {
            let origin = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
            (origin, text)
        }
        None => (
            "embedded default config".to_owned(),
            EMBEDDED_DEFAULT.to_owned(),
        ),
    };
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    env.sort();
    parse(&origin, &text, &env)
}

/// Parses and validates config text with the given `IPCHECK_...` variables (testable core of
/// [`load`]).
pub fn parse(origin: &str, text: &str, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let mut root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
    let mut warnings = Vec::new();
    let applied = apply_env(&mut root, env, origin, &mut warnings)?;
    let via = |key: &str| {
        Via(applied
            .iter()
            .filter(|(k, _)| {
                key == k.as_str()
                    || key.starts_with(&format!("{k}."))
                    || key.starts_with(&format!("{k}["))
            })
            .map(|(_, v)| v.clone())
            .next())
    };
    let raw: RawConfig = serde_path_to_error::deserialize(Value::Table(root)).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Key {
            origin: origin.to_owned(),
            via: via(&key),
            key: if key == "." {
                "(top level)".to_owned()
            } else {
                key
            },
            message: e.into_inner().to_string(),
        }
    })?;
    let err = |key: &str, message: String| ConfigError::Key {
        origin: origin.to_owned(),
        key: key.to_owned(),
        via: via(key),
        message,
    };
    validate(origin, raw, &err, warnings)
}

fn parse_cidrs(
    key: &str,
    list: &[String],
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    err(
                        &format!("{key}[{i}]"),
                        format!("'{text}' is not an address or CIDR network (e.g. 10.0.0.0/8)"),
                    )
                })
        })
        .collect()
}

fn validate(
    origin: &str,
    raw: RawConfig,
    err: &dyn Fn(&str, String) -> ConfigError,
    mut warnings: Vec<String>,
) -> Result<Settings, ConfigError> {
    let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        err(
            "listen",
            format!("'{listen_text}' is not an address:port (e.g. 127.0.0.1:8080)"),
        )
    })?;

    let log_level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| err("log.level", format!("'{log_level}': {e}")))?;

    let trusted = parse_cidrs(
        "client_ip.trusted_proxies",
        &raw.client_ip.trusted_proxies,
        err,
    )?;
    let client_ip = match raw.client_ip.header.as_deref().unwrap_or("x-real-ip") {
        h if h.eq_ignore_ascii_case("x-real-ip") => {
            if !trusted.is_empty() {
                warnings.push(
                    "client_ip.trusted_proxies is set but client_ip.header is x-real-ip: the list is unused"
                        .to_owned(),
                );
            }
            ClientIpSource::RealIp
        }
        h if h.eq_ignore_ascii_case("x-forwarded-for") => {
            if trusted.is_empty() {
                warnings.push(
                    "client_ip.header is x-forwarded-for without client_ip.trusted_proxies: \
                     X-Forwarded-For is ignored and X-Real-IP is used"
                        .to_owned(),
                );
                ClientIpSource::RealIp
            } else {
                ClientIpSource::ForwardedFor { trusted }
            }
        }
        other => {
            return Err(err(
                "client_ip.header",
                format!("'{other}': expected x-real-ip or x-forwarded-for"),
            ))
        }
    };

    let v4 = raw.aggregation.ipv4_prefix.unwrap_or(32);
    let v6 = raw.aggregation.ipv6_prefix.unwrap_or(64);
    let aggregation = Aggregation::new(v4, v6).map_err(|e| {
        let key = if (16..=32).contains(&v4) {
            "aggregation.ipv6_prefix"
        } else {
            "aggregation.ipv4_prefix"
        };
        err(key, e.to_string())
    })?;

    // 0 is allowed: no local tier, so every decision asks Redis (benchmarks measure that tier
    // alone this way, and a deployment may want pins to apply at once).
    let capacity = raw.cache.capacity.unwrap_or(100_000);
    let cache = CacheSettings {
        capacity,
        local_ttl: raw.cache.local_ttl.map_or(Duration::from_secs(60), |d| d.0),
        negative_ttl: raw
            .cache
            .negative_ttl
            .map_or(Duration::from_secs(30), |d| d.0),
    };

    let redis = match raw.redis {
        None => None,
        Some(r) => match r.url.as_deref().map(str::trim) {
            // An empty URL switches Redis off, so `IPCHECK_REDIS_URL=` can disable it.
            None | Some("") => None,
            Some(url) => {
                redis::Client::open(url).map_err(|e| {
                    err(
                        "redis.url",
                        format!(
                            "not a usable Redis URL: {}",
                            e.detail().unwrap_or("invalid URL")
                        ),
                    )
                })?;
                let ttl = r.ttl.map_or(Duration::from_secs(86_400), |d| d.0);
                if ttl > Duration::from_secs(31_536_000) {
                    return Err(err(
                        "redis.ttl",
                        "at most 365d (the module's EX limit)".to_owned(),
                    ));
                }
                if ttl.subsec_nanos() != 0 {
                    return Err(err(
                        "redis.ttl",
                        "must be whole seconds (it is sent as EX)".to_owned(),
                    ));
                }
                Some(RedisSettings {
                    url: url.to_owned(),
                    timeout: r.timeout.map_or(Duration::from_millis(50), |d| d.0),
                    ttl,
                })
            }
        },
    };

    let provider = match raw.provider {
        None => None,
        Some(p) => provider_spec(p, err)?,
    };

    let policies = policies(raw.policies, err)?;

    Ok(Settings {
        origin: origin.to_owned(),
        listen,
        log_format: raw.log.format.unwrap_or(LogFormat::Plain),
        log_level,
        client_ip,
        aggregation,
        cache,
        redis,
        provider,
        policies,
        warnings,
    })
}

fn provider_spec(
    p: RawProvider,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<ProviderSpec>, ConfigError> {
    let preset = match p.preset.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(
            name.parse::<Preset>()
                .map_err(|e| err("provider.preset", e))?,
        ),
    };
    let url = match (p.url.as_deref().map(str::trim), preset) {
        (Some(u), _) if !u.is_empty() => u.to_owned(),
        (_, Some(preset)) => preset.url().to_owned(),
        // Neither a preset nor a URL: `[provider]` with only defaults means "no provider".
        (_, None) if p.fields.is_empty() && p.api_key_env.is_none() => return Ok(None),
        (_, None) => {
            return Err(err(
                "provider.url",
                "required without provider.preset (e.g. \"https://api.example.com/v1/{ip}\")"
                    .to_owned(),
            ))
        }
    };
    if !url.contains("{ip}") {
        return Err(err(
            "provider.url",
            "must contain {ip}, where the client address goes".to_owned(),
        ));
    }
    let sample = url.replace("{ip}", "192.0.2.1").replace("{key}", "key");
    match reqwest::Url::parse(&sample) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => {
            return Err(err(
                "provider.url",
                "must be an http:// or https:// URL template".to_owned(),
            ))
        }
    }
    let api_key_env = match p.api_key_env.as_deref().map(str::trim) {
        Some("") => None,
        Some(name) => Some(name.to_owned()),
        None => preset.map(|p| p.api_key_env().to_owned()),
    };
    let auth_header = match p.auth_header.as_deref().map(str::trim) {
        Some("") => None,
        Some(h) => Some(h.to_owned()),
        // `api_key_env = ""` means the vendor needs no key: no preset auth header either.
        None if api_key_env.is_none() => None,
        None => preset.and_then(Preset::auth_header).map(str::to_owned),
    };
    let auth_header = auth_header
        .map(|h| {
            HeaderName::try_from(h.as_str()).map_err(|_| {
                err(
                    "provider.auth_header",
                    format!("'{h}' is not a valid header name"),
                )
            })
        })
        .transpose()?;
    let auth_value = p
        .auth_value
        .clone()
        .unwrap_or_else(|| preset.map_or("{key}", Preset::auth_value).to_owned());
    if auth_header.is_some() && !auth_value.contains("{key}") {
        return Err(err(
            "provider.auth_value",
            "must contain {key}, where the API key goes".to_owned(),
        ));
    }
    if (auth_header.is_some() || url.contains("{key}")) && api_key_env.is_none() {
        return Err(err(
            "provider.api_key_env",
            "required: the name of the environment variable holding the API key".to_owned(),
        ));
    }
    let mut mapping = preset.map_or_else(|| FieldMapping::new([]), Preset::mapping);
    for (name, paths) in &p.fields {
        let category = Category::from_token(name).ok_or_else(|| {
            err(
                &format!("provider.fields.{name}"),
                "unknown category: expected vpn, proxy, tor, hosting, relay or crawler".to_owned(),
            )
        })?;
        if let Some(bad) = paths
            .iter()
            .find(|p| p.is_empty() || p.split('.').any(str::is_empty))
        {
            return Err(err(
                &format!("provider.fields.{name}"),
                format!("'{bad}' is not a dotted JSON path (e.g. privacy.vpn)"),
            ));
        }
        mapping.set(category, paths);
    }
    if mapping.is_empty() {
        return Err(err(
            "provider.fields",
            "no field mapping: set provider.preset or provider.fields (e.g. vpn = [\"privacy.vpn\"])"
                .to_owned(),
        ));
    }
    Ok(Some(ProviderSpec {
        name: preset.map_or("custom", Preset::name).to_owned(),
        url,
        auth_header,
        auth_value,
        api_key_env,
        timeout: p.timeout.map_or(Duration::from_millis(500), |d| d.0),
        mapping,
    }))
}

fn policies(
    raw: BTreeMap<String, RawPolicy>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Policies, ConfigError> {
    let mut named = HashMap::new();
    for (name, p) in raw {
        let key = |field: &str| format!("policies.{name}.{field}");
        let category_list = |field: &str, list: &[String]| {
            Categories::parse_policy_list(list).map_err(|e| {
                let i = list.iter().position(|c| *c == e.0).unwrap_or(0);
                err(&format!("{}[{i}]", key(field)), e.to_string())
            })
        };
        let on_error = match p.on_error.as_deref().unwrap_or("open") {
            "open" => FailureMode::Open,
            "closed" => FailureMode::Closed,
            other => {
                return Err(err(
                    &key("on_error"),
                    format!("'{other}': expected open or closed"),
                ))
            }
        };
        let policy = Policy {
            block: category_list("block", &p.block)?,
            challenge: category_list("challenge", &p.challenge)?,
            allow_crawlers: p.allow_crawlers.unwrap_or(true),
            allow: parse_cidrs(&key("allow"), &p.allow, err)?,
            deny: parse_cidrs(&key("deny"), &p.deny, err)?,
            on_error,
        };
        named.insert(name, Arc::new(policy));
    }
    let default = named
        .entry("default".to_owned())
        .or_insert_with(|| Arc::new(Policy::default()))
        .clone();
    Ok(Policies { default, named })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::Verdict;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(text: &str) -> Settings {
        parse("test.toml", text, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(text: &str, vars: &[(&str, &str)]) -> String {
        match parse("test.toml", text, &env(vars)) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn embedded_default() {
        let s = parse("embedded", EMBEDDED_DEFAULT, &[]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(s.redis.is_none());
        assert!(s.provider.is_none());
        assert_eq!(s.cache.local_ttl, Duration::from_secs(60));
        assert_eq!(s.cache.negative_ttl, Duration::from_secs(30));
        assert_eq!(s.policies.default_policy().on_error, FailureMode::Open);
        assert_eq!(s.aggregation, Aggregation::DEFAULT);
    }

    #[test]
    fn full_file() {
        let s = ok(r#"
            listen = "0.0.0.0:9000"
            [client_ip]
            header = "x-forwarded-for"
            trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
            [cache]
            local_ttl = "1s"
            [redis]
            url = "redis://127.0.0.1:6379/"
            timeout = "20ms"
            [provider]
            preset = "ipasis"
            [policies.strict]
            block = ["tor", "vpn"]
            challenge = ["hosting"]
            deny = ["198.51.100.0/24"]
            on_error = "closed"
        "#);
        assert_eq!(s.cache.local_ttl, Duration::from_secs(1));
        let redis = s.redis.unwrap();
        assert_eq!(redis.timeout, Duration::from_millis(20));
        assert_eq!(redis.ttl, Duration::from_secs(86_400));
        let provider = s.provider.unwrap();
        assert_eq!(provider.name, "ipasis");
        assert_eq!(provider.api_key_env.as_deref(), Some("IPASIS_API_KEY"));
        assert_eq!(provider.auth_header.unwrap().as_str(), "x-api-key");
        let strict = s.policies.get("strict").unwrap();
        assert_eq!(strict.on_error.verdict(), Verdict::Block);
        assert!(strict.block.contains(Category::Tor));
        assert!(s.policies.get("default").is_some());
        assert!(matches!(s.client_ip, ClientIpSource::ForwardedFor { .. }));
    }

    #[test]
    fn errors_name_key_and_file() {
        let e = error("[policies.strict]\nblock = [\"tor\", \"bogus\"]\n", &[]);
        assert!(
            e.contains("test.toml") && e.contains("policies.strict.block[1]"),
            "{e}"
        );
        let e = error("[cache]\nlocal_ttl = \"10x\"\n", &[]);
        assert!(e.contains("cache.local_ttl"), "{e}");
        let e = error("[cache]\nlocal_tll = \"10s\"\n", &[]);
        assert!(e.contains("cache") && e.contains("local_tll"), "{e}");
        let e = error("listen = \"nowhere\"\n", &[]);
        assert!(e.contains("key `listen`"), "{e}");
        let e = error("[client_ip]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[]);
        assert!(e.contains("client_ip.trusted_proxies[0]"), "{e}");
        let e = error("[policies.default]\non_error = \"maybe\"\n", &[]);
        assert!(e.contains("policies.default.on_error"), "{e}");
        let e = error(
            "[provider]\nurl = \"https://x.example/lookup\"\nfields.vpn = [\"vpn\"]\n",
            &[],
        );
        assert!(e.contains("provider.url") && e.contains("{ip}"), "{e}");
        let e = error("[provider]\npreset = \"nope\"\n", &[]);
        assert!(e.contains("provider.preset"), "{e}");
        let e = error("[aggregation]\nipv6_prefix = 16\n", &[]);
        assert!(e.contains("aggregation.ipv6_prefix"), "{e}");
        let e = error("[redis]\nurl = \"http://nope\"\n", &[]);
        assert!(e.contains("redis.url"), "{e}");
        let e = error("[cache\n", &[]);
        assert!(e.contains("test.toml") && e.contains("invalid TOML"), "{e}");
    }

    #[test]
    fn environment_overrides() {
        let vars = env(&[
            ("IPCHECK_LISTEN", "127.0.0.1:9999"),
            ("IPCHECK_CACHE_LOCAL_TTL", "2s"),
            ("IPCHECK_REDIS_URL", "redis://127.0.0.1:1/"),
            ("IPCHECK_POLICIES_STRICT_BLOCK", "tor, vpn"),
            ("IPCHECK_POLICIES_STRICT_ALLOW_CRAWLERS", "false"),
            ("IPCHECK_POLICIES_NEW_ONE_ON_ERROR", "closed"),
            ("IPCHECK_PROFILE", "debug"),
        ]);
        let s = parse(
            "test.toml",
            "[policies.strict]\nblock = [\"relay\"]\n",
            &vars,
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.cache.local_ttl, Duration::from_secs(2));
        assert!(s.redis.is_some());
        let strict = s.policies.get("strict").unwrap();
        assert!(strict.block.contains(Category::Vpn) && !strict.block.contains(Category::Relay));
        assert!(!strict.allow_crawlers);
        assert_eq!(
            s.policies.get("new_one").unwrap().on_error,
            FailureMode::Closed
        );
        assert!(s.warnings.iter().any(|w| w.contains("IPCHECK_PROFILE")));
        // An empty URL switches the tier off.
        let s = parse(
            "t",
            "[redis]\nurl = \"redis://x/\"\n",
            &env(&[("IPCHECK_REDIS_URL", "")]),
        )
        .unwrap();
        assert!(s.redis.is_none());
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let e = error("", &[("IPCHECK_CACHE_CAPACITY", "lots")]);
        assert!(
            e.contains("cache.capacity") && e.contains("IPCHECK_CACHE_CAPACITY"),
            "{e}"
        );
        let e = error("", &[("IPCHECK_REDIS_TIMEOUT", "fast")]);
        assert!(
            e.contains("redis.timeout") && e.contains("IPCHECK_REDIS_TIMEOUT"),
            "{e}"
        );
        let e = error("", &[("IPCHECK_POLICIES_DEFAULT_BLOCK", "vpn,spam")]);
        assert!(
            e.contains("policies.default.block[1]") && e.contains("IPCHECK_POLICIES_DEFAULT_BLOCK"),
            "{e}"
        );
    }

    #[test]
    fn capacity_zero_turns_the_local_tier_off() {
        let s = ok("[cache]\ncapacity = 0\n");
        assert_eq!(s.cache.capacity, 0);
        assert_eq!(crate::app::App::tiers_summary(&s), "local off (capacity 0)");
    }

    #[test]
    fn every_fixed_key_has_a_distinct_variable() {
        let mut names: Vec<String> = KEYS.iter().map(|(k, _)| env_name(k)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
    }

    #[test]
    fn custom_provider_by_configuration_alone() {
        let s = ok(r#"
            [provider]
            url = "http://127.0.0.1:1/check/{ip}"
            api_key_env = "MY_KEY"
            auth_header = "Authorization"
            auth_value = "Token {key}"
            fields.vpn = ["flags.anonymous"]
            fields.tor = ["flags.tor"]
        "#);
        let p = s.provider.unwrap();
        assert_eq!(p.name, "custom");
        assert_eq!(p.auth_value, "Token {key}");
    }
}
