//! What a new configuration changes, compared with the running one: the keys that need a restart
//! (which refuse the reload), whether the provider client must be rebuilt, and a one-line summary
//! for the log. Pure, so every rule is tested without a process.

use crate::config::Settings;
use crate::provider::ApiKey;

/// The keys whose change only a restart applies, each with what makes it so: a listener is bound
/// once, the local tier is sized once, the Redis tier keeps its connections and breaker across a
/// reload, aggregation changes every cache key, and the log subscriber is installed once.
/// Empty when the new configuration may be applied.
pub fn restart_only(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(old.listen != new.listen, "listen");
    check(old.metrics_listen != new.metrics_listen, "metrics.listen");
    check(old.admin_listen != new.admin_listen, "admin.listen");
    check(old.log_format != new.log_format, "log.format");
    check(old.log_level != new.log_level, "log.level");
    check(old.aggregation != new.aggregation, "aggregation");
    check(old.cache.capacity != new.cache.capacity, "cache.capacity");
    check(
        old.cache.local_ttl != new.cache.local_ttl,
        "cache.local_ttl",
    );
    match (&old.redis, &new.redis) {
        (Some(o), Some(n)) => {
            check(o.url != n.url, "redis.url");
            check(o.cluster != n.cluster, "redis.cluster");
            check(o.tls_ca_pem != n.tls_ca_pem, "redis.tls_ca_file");
            check(o.key_prefix != n.key_prefix, "redis.key_prefix");
            check(o.timeout != n.timeout, "redis.timeout");
            check(o.stale_ttl != n.stale_ttl, "redis.stale_ttl");
            check(o.breaker != n.breaker, "redis.breaker");
            // The invalidation link is started once, with the first configuration.
            check(o.invalidation != n.invalidation, "redis.invalidation");
        }
        (None, None) => {}
        _ => check(true, "redis"),
    }
    // The feeds' schedule is started once, with the first configuration.
    check(old.feeds != new.feeds, "feeds");
    // The events writer is started once; which decisions it gets (decisions, sample) reloads.
    let writer = |s: &Settings| s.events.as_ref().map(|e| e.writer.clone());
    check(writer(old) != writer(new), "events");
    // The enrichment queue's task is started once, with the first configuration.
    check(old.enrich.max_len != new.enrich.max_len, "enrich.max_len");
    check(old.enrich.dedupe != new.enrich.dedupe, "enrich.dedupe");
    keys
}

/// Whether the provider client must be built anew: its settings (URL, auth, timeout, mapping,
/// breaker, budget), the fields the policies need from every reply (a policy now deciding on
/// another category), or its key changed. A new client starts with a closed breaker, a full budget
/// and no health history; an unchanged one keeps them.
pub fn provider_changed(
    old: &Settings,
    new: &Settings,
    old_key: Option<&ApiKey>,
    new_key: Option<&ApiKey>,
) -> bool {
    // `ProviderSpec` holds a field mapping and header names without `PartialEq`; its `Debug` text
    // covers every field and holds no secret (the key lives in the environment, not the spec).
    let spec = |s: &Settings| s.provider.as_ref().map(|p| format!("{p:?}"));
    spec(old) != spec(new) || old_key != new_key
}

/// The reloadable parts that differ, for the log line ("no change" when none does).
pub fn summary(old: &Settings, new: &Settings, provider_rebuilt: bool) -> String {
    let mut parts = Vec::new();
    let mut note = |changed: bool, what: &str| {
        if changed {
            parts.push(what.to_owned());
        }
    };
    note(policies_differ(old, new), "policies");
    note(old.unknown_policy != new.unknown_policy, "unknown_policy");
    note(old.lists != new.lists, "lists");
    note(old.databases != new.databases, "databases");
    note(old.client_ip != new.client_ip, "client_ip");
    note(old.decision_log != new.decision_log, "log.decisions");
    let filter = |s: &Settings| s.events.as_ref().map(|e| e.filter);
    note(filter(old) != filter(new), "events.decisions/sample");
    note(
        old.cache.negative_ttl != new.cache.negative_ttl
            || old.cache.degraded_ttl != new.cache.degraded_ttl,
        "cache TTLs",
    );
    let redis_ttls = |s: &Settings| s.redis.as_ref().map(|r| (r.ttl, r.refresh_ahead));
    note(
        redis_ttls(old) != redis_ttls(new),
        "redis.ttl/refresh_ahead",
    );
    if provider_rebuilt {
        parts.push(match (&old.provider, &new.provider) {
            (None, Some(_)) => "provider added".to_owned(),
            (Some(_), None) => "provider removed".to_owned(),
            _ => "provider settings, API key or the reply fields the policies need (new provider client: breaker, budget and health start afresh)".to_owned(),
        });
    }
    if parts.is_empty() {
        "no change".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Whether any policy (its categories, lists, `on_error` or mode) was added, removed or changed.
fn policies_differ(old: &Settings, new: &Settings) -> bool {
    let (a, b) = (old.policies.names(), new.policies.names());
    a != b
        || a.iter().any(|n| {
            old.policies.get(n) != new.policies.get(n)
                || old.policies.mode(n) != new.policies.mode(n)
        })
}
