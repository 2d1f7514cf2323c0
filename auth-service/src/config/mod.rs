//! The configuration: a TOML file (or the embedded default), then `IPCHECK_...` environment
//! overrides, validated into [`Settings`].
//!
//! Every error names the key and where it came from (the file, or the environment variable that
//! overrode it), because an operator reading "invalid CIDR" needs to know which of forty lines to
//! fix. Unknown keys are errors, not silently ignored typos.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use ipcheck_core::{
    Aggregation, Categories, Category, FailureMode, OnMiss, Policy, RedisFailureMode,
};
use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;
use toml::Value;

use crate::breaker::BreakerSettings;
use crate::budget::BudgetSettings;
use crate::client_ip::ClientIpSource;
use crate::decision_log::{DecisionLog, Decisions};
use crate::duration::{ConfigDuration, ConfigWindow};
use crate::listen::{Listen, DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, DEFAULT_METRICS_LISTEN};
use crate::provider::mapping::FieldMapping;
use crate::provider::preset::Preset;
use crate::provider::ProviderSpec;

/// The configuration used when no file is given: in-process cache only, no provider, fail open.
pub const EMBEDDED_DEFAULT: &str = r#"
listen = "127.0.0.1:9217"

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
    /// Where `/auth`, `/healthz` and `/readyz` are served.
    pub listen: Listen,
    /// Where `/metrics` is served; `None` when `metrics.listen = ""` turns it off.
    pub metrics_listen: Option<Listen>,
    /// Where the operator's endpoints (`/explain`) are served, loopback or a unix socket only;
    /// `None` when `admin.listen = ""` turns them off.
    pub admin_listen: Option<Listen>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` wins when set.
    pub log_level: String,
    /// The per-decision log (`log.decisions`, `log.decisions_sample`).
    pub decision_log: DecisionLog,
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
    /// The named network lists (`[lists.<name>]`), sorted by name.
    pub lists: Vec<lists::ListSpec>,
    /// What a request naming an unconfigured policy gets.
    pub unknown_policy: UnknownPolicy,
    /// `[feeds.<name>]`: downloads loaded into network lists ([`crate::feeds`]).
    pub feeds: Vec<crate::feeds::settings::FeedSettings>,
    /// `[databases.<name>]`: local `.mmdb` files, a tier before the provider
    /// ([`crate::databases`]), sorted by name.
    pub databases: Vec<crate::databases::settings::DatabaseSpec>,
    /// `[events]`: decision events appended to a Redis stream ([`crate::events`]); `None` when off.
    pub events: Option<crate::events::settings::EventsSettings>,
    /// `[enrich]`: the queue of cold addresses and its workers ([`crate::enrich`]).
    pub enrich: crate::enrich::settings::EnrichSettings,
    /// Non-fatal findings (unused environment variables, ignored settings), logged at startup.
    pub warnings: Vec<String>,
}

/// What a request naming a policy that is not configured gets (`unknown_policy`). Such a name is
/// a mistake in the nginx config, so the default protects rather than lets everyone in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownPolicy {
    /// Block, reason `policy-error` (the default).
    #[default]
    Closed,
    /// Allow, reason `policy-error`.
    Open,
    /// Decide with the `default` policy, as if no policy had been named.
    Default,
}

impl UnknownPolicy {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownPolicy::Closed => "closed",
            UnknownPolicy::Open => "open",
            UnknownPolicy::Default => "default",
        }
    }
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
    /// Longest an answer obtained while Redis could not be asked is kept locally, so an
    /// operator's pin in Redis wins again within this time once Redis is back.
    pub degraded_ttl: Duration,
}

/// Settings of the Redis tier.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db`; with `cluster`, one or more seed nodes separated
    /// by commas.
    pub url: String,
    /// Whether `url` names nodes of a Redis Cluster (commands are then routed by slot).
    pub cluster: bool,
    /// PEM certificates to trust for `rediss://` instead of the system's roots (a private CA).
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Deadline of each call.
    pub timeout: Duration,
    /// `EX` of the entries the service writes: how long a provider answer is fresh (used as is).
    pub ttl: Duration,
    /// `STALE` of the entries the service writes: how long after its fresh time an answer is
    /// kept, stale, to decide from when the provider gives no answer (0: not kept).
    pub stale_ttl: Duration,
    /// A Redis hit with less fresh time left than this starts one background refresh
    /// ([`crate::lookup::refresh`]); 0: never.
    pub refresh_ahead: Duration,
    /// The module's `ipcheck.key-prefix`, which the service checks at startup and in `/readyz`.
    pub key_prefix: String,
    /// `[redis.breaker]`.
    pub breaker: BreakerSettings,
    /// Whether the local tier follows changes in Redis through `CLIENT TRACKING`
    /// ([`crate::cache::invalidation`]); off, a change reaches it only after `cache.local_ttl`.
    pub invalidation: bool,
}

/// The named policies, `default` always among them.
#[derive(Debug, Clone)]
pub struct Policies {
    default: Arc<Policy>,
    named: HashMap<String, Arc<Policy>>,
    /// `policies.<name>.mode`, kept beside (not in) core's `Policy`: a mode changes the answer
    /// to nginx, never the decision.
    modes: BTreeMap<String, crate::mode::Mode>,
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

    /// Every category some policy blocks or challenges on: a provider reply must say something
    /// about each of them, or the absence of a flag would read as "clean".
    pub fn decisive_categories(&self) -> Categories {
        self.named.values().fold(Categories::EMPTY, |all, p| {
            all.union(p.block).union(p.challenge)
        })
    }

    /// Every policy with its name, in no order.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Arc<Policy>)> {
        self.named.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The mode of the policy `name` (`enforce` for a name that is not configured).
    pub fn mode(&self, name: &str) -> crate::mode::Mode {
        self.modes.get(name).copied().unwrap_or_default()
    }

    /// The names of the policies in observe mode, sorted.
    pub fn observed(&self) -> Vec<&str> {
        self.modes
            .iter()
            .filter(|(_, m)| **m == crate::mode::Mode::Observe)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The policy names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.named.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

mod env;
mod facts;
pub mod lists;
mod raw;
#[cfg(test)]
mod tests;
mod validate;
pub use validate::check_admin_listen;

pub use env::env_name;
use env::*;
use raw::*;
use validate::*;

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
