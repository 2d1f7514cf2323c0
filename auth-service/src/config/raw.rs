//! The file's shape, as serde reads it before validation.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Option<String>,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) client_ip: RawClientIp,
    #[serde(default)]
    pub(super) aggregation: RawAggregation,
    #[serde(default)]
    pub(super) cache: RawCache,
    pub(super) redis: Option<RawRedis>,
    pub(super) provider: Option<RawProvider>,
    #[serde(default)]
    pub(super) policies: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    pub(super) lists: BTreeMap<String, super::lists::RawList>,
    pub(super) unknown_policy: Option<String>,
    #[serde(default)]
    pub(super) feeds: BTreeMap<String, crate::feeds::settings::RawFeed>,
    #[serde(default)]
    pub(super) databases: BTreeMap<String, crate::databases::settings::RawDatabase>,
    pub(super) events: Option<crate::events::settings::RawEvents>,
    pub(super) enrich: Option<crate::enrich::settings::RawEnrich>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<LogFormat>,
    pub(super) level: Option<String>,
    pub(super) decisions: Option<String>,
    pub(super) decisions_sample: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientIp {
    pub(super) header: Option<String>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAggregation {
    pub(super) ipv4_prefix: Option<u8>,
    pub(super) ipv6_prefix: Option<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) capacity: Option<usize>,
    pub(super) local_ttl: Option<ConfigDuration>,
    pub(super) negative_ttl: Option<ConfigDuration>,
    pub(super) degraded_ttl: Option<ConfigDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub(super) url: Option<String>,
    pub(super) cluster: Option<bool>,
    pub(super) tls_ca_file: Option<String>,
    pub(super) timeout: Option<ConfigDuration>,
    pub(super) ttl: Option<ConfigDuration>,
    pub(super) stale_ttl: Option<ConfigWindow>,
    pub(super) refresh_ahead: Option<ConfigWindow>,
    pub(super) key_prefix: Option<String>,
    pub(super) breaker: Option<RawBreaker>,
    pub(super) invalidation: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    pub(super) failures: Option<u32>,
    pub(super) cooldown: Option<ConfigDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    pub(super) rate: Option<f64>,
    pub(super) burst: Option<u32>,
    pub(super) daily_quota: Option<u64>,
    pub(super) shared: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) preset: Option<String>,
    pub(super) url: Option<String>,
    pub(super) api_key_env: Option<String>,
    pub(super) api_key_file: Option<String>,
    pub(super) auth_header: Option<String>,
    pub(super) auth_value: Option<String>,
    pub(super) timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub(super) fields: BTreeMap<String, Vec<String>>,
    pub(super) breaker: Option<RawBreaker>,
    pub(super) budget: Option<RawBudget>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub(super) block: Vec<String>,
    #[serde(default)]
    pub(super) challenge: Vec<String>,
    pub(super) allow_crawlers: Option<bool>,
    #[serde(default)]
    pub(super) allow: Vec<String>,
    #[serde(default)]
    pub(super) deny: Vec<String>,
    pub(super) on_error: Option<String>,
    pub(super) on_redis_error: Option<String>,
    #[serde(default)]
    pub(super) lists: Vec<String>,
    #[serde(default)]
    pub(super) block_countries: Vec<String>,
    #[serde(default)]
    pub(super) challenge_countries: Vec<String>,
    #[serde(default)]
    pub(super) allow_countries: Vec<String>,
    /// Numbers or `"AS123"` strings, checked in [`super::facts`].
    #[serde(default)]
    pub(super) block_asns: Vec<Value>,
    #[serde(default)]
    pub(super) challenge_asns: Vec<Value>,
    pub(super) block_score: Option<i64>,
    pub(super) challenge_score: Option<i64>,
    pub(super) mode: Option<String>,
    pub(super) on_miss: Option<String>,
}
