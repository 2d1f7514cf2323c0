//! `[enrich]`: the enrichment queue's file shape and its validation into [`EnrichSettings`].

use std::time::Duration;

use serde::Deserialize;

use crate::duration::ConfigDuration;

/// `max_len` when not given: entries the stream keeps at most (about: `MAXLEN ~`).
pub const DEFAULT_MAX_LEN: u64 = 100_000;
/// `dedupe` when not given: one cold address is queued at most once in this window.
pub const DEFAULT_DEDUPE: Duration = Duration::from_secs(60);
/// `claim_idle` when not given: a pending entry idle this long is taken over by another worker.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(30);
/// `batch` when not given: entries a worker reads at once and looks up side by side.
pub const DEFAULT_BATCH: usize = 16;
/// The largest `batch`.
pub const MAX_BATCH: usize = 1000;

/// `[enrich]` as serde reads it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnrich {
    max_len: Option<u64>,
    dedupe: Option<ConfigDuration>,
    claim_idle: Option<ConfigDuration>,
    batch: Option<usize>,
}

/// The validated `[enrich]` table (defaults when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrichSettings {
    /// The stream's cap (`XADD ... MAXLEN ~ max_len`).
    pub max_len: u64,
    /// The dedupe window: the `EX` of the per-address marker.
    pub dedupe: Duration,
    /// How long a delivered entry stays unacknowledged before another worker claims it.
    pub claim_idle: Duration,
    /// Entries a worker reads at once and looks up side by side.
    pub batch: usize,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        EnrichSettings {
            max_len: DEFAULT_MAX_LEN,
            dedupe: DEFAULT_DEDUPE,
            claim_idle: DEFAULT_CLAIM_IDLE,
            batch: DEFAULT_BATCH,
        }
    }
}

/// Validates `[enrich]`; `err(key, message)` names the key.
pub(crate) fn validate<E>(
    raw: Option<RawEnrich>,
    err: &dyn Fn(&str, String) -> E,
) -> Result<EnrichSettings, E> {
    let raw = raw.unwrap_or_default();
    let max_len = raw.max_len.unwrap_or(DEFAULT_MAX_LEN);
    if max_len == 0 {
        return Err(err(
            "enrich.max_len",
            "must be at least 1 (entries the queue keeps, e.g. 100000)".to_owned(),
        ));
    }
    let nonzero = |key: &str, d: Option<ConfigDuration>, default: Duration| match d {
        None => Ok(default),
        Some(ConfigDuration(d)) if d >= Duration::from_secs(1) => Ok(d),
        Some(_) => Err(err(key, "must be at least 1s (e.g. \"30s\")".to_owned())),
    };
    let dedupe = nonzero("enrich.dedupe", raw.dedupe, DEFAULT_DEDUPE)?;
    let claim_idle = nonzero("enrich.claim_idle", raw.claim_idle, DEFAULT_CLAIM_IDLE)?;
    let batch = raw.batch.unwrap_or(DEFAULT_BATCH);
    if batch == 0 || batch > MAX_BATCH {
        return Err(err(
            "enrich.batch",
            format!("'{batch}': 1 to {MAX_BATCH} entries a worker looks up side by side"),
        ));
    }
    Ok(EnrichSettings {
        max_len,
        dedupe,
        claim_idle,
        batch,
    })
}

/// The names of the policies with `on_miss = "allow"`, sorted.
fn allow_on_miss(policies: &crate::config::Policies) -> Vec<&str> {
    let mut names: Vec<&str> = policies
        .all()
        .filter(|(_, p)| p.on_miss == ipcheck_core::OnMiss::Allow)
        .map(|(name, _)| name)
        .collect();
    names.sort_unstable();
    names
}

/// The line logged at start naming the policies with `on_miss = "allow"` and their contract
/// (docs/enrichment.md); `None` when there are none.
pub fn allow_on_miss_line(policies: &crate::config::Policies) -> Option<String> {
    let names = allow_on_miss(policies);
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "policies with on_miss = \"allow\": {}: a cold address is answered at once without the provider and without reading Redis (read in the background, then queued for a worker); a pin on an address this instance has not seen applies from the next request, not the very first: set on_miss = \"wait\" where it must",
        names.join(", ")
    ))
}

/// A policy with `on_miss = "allow"` queues cold addresses in Redis for workers that ask the
/// provider: without either there is nothing to queue to or nobody to enrich, and answering
/// "nothing known" for ever would be a silent fail-open, so the configuration is refused.
pub(crate) fn require_queue<E>(
    policies: &crate::config::Policies,
    redis: bool,
    provider: bool,
    err: &dyn Fn(&str, String) -> E,
) -> Result<(), E> {
    let names = allow_on_miss(policies);
    let Some(first) = names.first() else {
        return Ok(());
    };
    let key = format!("policies.{first}.on_miss");
    if !redis {
        return Err(err(
            &key,
            "\"allow\" queues cold addresses in a Redis stream: configure [redis] url (or set on_miss = \"wait\")".to_owned(),
        ));
    }
    if !provider {
        return Err(err(
            &key,
            "\"allow\" queues cold addresses for workers that ask the provider: configure [provider] (or set on_miss = \"wait\")".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EnrichSettings, String> {
        #[derive(Deserialize)]
        struct Root {
            enrich: Option<RawEnrich>,
        }
        let root: Root = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(root.enrich, &|key, message| format!("{key}: {message}"))
    }

    #[test]
    fn defaults_and_limits() {
        assert_eq!(parse("").unwrap(), EnrichSettings::default());
        let s = parse("[enrich]\nmax_len = 10\ndedupe = \"5s\"\nclaim_idle = \"1s\"\nbatch = 1\n")
            .unwrap();
        assert_eq!(
            (s.max_len, s.dedupe, s.claim_idle, s.batch),
            (10, Duration::from_secs(5), Duration::from_secs(1), 1)
        );
        assert!(parse("[enrich]\nmax_len = 0\n")
            .unwrap_err()
            .starts_with("enrich.max_len"));
        assert!(parse("[enrich]\nclaim_idle = \"500ms\"\n")
            .unwrap_err()
            .starts_with("enrich.claim_idle"));
        assert!(parse("[enrich]\nbatch = 0\n")
            .unwrap_err()
            .starts_with("enrich.batch"));
        assert!(
            parse("[enrich]\nbatchsize = 3\n").is_err(),
            "unknown keys are errors"
        );
    }
}
