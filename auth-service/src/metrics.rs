//! Counters and the provider latency histogram, exposed in the Prometheus text format.
//!
//! Plain atomics indexed by small enums rather than a label map: incrementing one is a single
//! relaxed add, cheap enough for the local-hit path, and nothing allocates per request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipcheck_core::{ReasonSet, Verdict};

use crate::exposition::{header, Kind};
use crate::provider::ProviderError;

/// Where a decision's knowledge came from: the `X-IPCheck-Cache` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The in-process LRU.
    Local,
    /// Redis.
    Redis,
    /// The provider, just now.
    Provider,
    /// A stale Redis entry, because the provider gave no answer (see `crate::lookup::lifetimes`).
    Stale,
    /// No tier: a list, a missing address, or nothing known.
    None,
    /// The local databases gave every fact the policy needs: no provider call
    /// ([`crate::databases`]).
    Database,
    /// Nothing known yet, answered at once and queued for enrichment (`on_miss = "allow"`).
    Queued,
}

impl Tier {
    /// Every tier, in metric order.
    pub const ALL: [Tier; 7] = [
        Tier::Local,
        Tier::Redis,
        Tier::Provider,
        Tier::Stale,
        Tier::None,
        Tier::Database,
        Tier::Queued,
    ];

    /// The header and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Redis => "redis",
            Tier::Provider => "provider",
            Tier::Stale => "stale",
            Tier::None => "none",
            Tier::Database => "database",
            Tier::Queued => "queued",
        }
    }
}

/// Bounds of the provider's call latency: a remote API, milliseconds to its deadline.
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// Every metric the service exports.
pub struct Metrics {
    decisions: crate::decision_counts::DecisionCounts,
    /// `ipcheck_observed_decisions_total`: what policies in observe mode would have sent.
    pub observed: crate::decision_counts::DecisionCounts,
    tiers: Box<[AtomicU64]>,
    redis_lookups: Box<[AtomicU64]>,
    provider_requests: AtomicU64,
    provider_errors: Box<[AtomicU64]>,
    provider_duration: crate::histogram::Histogram,
    coalesced_waits: AtomicU64,
    unknown_policy: AtomicU64,
    provider_up: AtomicU64,
    /// `ipcheck_refresh_total` ([`crate::lookup::refresh`]).
    pub refresh: crate::lookup::refresh::Counts,
    /// `ipcheck_auth_duration_seconds`: `/auth` handler latency, observed in [`crate::routes`].
    pub auth_duration: crate::histogram::Histogram,
    /// `ipcheck_config_reloads_total` and the last success ([`crate::reload`]).
    pub reloads: crate::reload::counts::ReloadCounts,
    /// `ipcheck_feed_...` and the `/readyz` feeds line ([`crate::feeds::status`]).
    pub feeds: crate::feeds::status::FeedStatus,
    /// `ipcheck_provider_attribute_missing_total` ([`crate::provider::missing`]).
    pub attribute_missing: crate::provider::missing::MissingAttributes,
    /// `ipcheck_database_decisions_total` ([`crate::databases`]).
    pub database_decisions: crate::databases::status::DecisionCount,
    /// `ipcheck_enrich_...` ([`crate::enrich`]).
    pub enrich: crate::enrich::counts::EnrichCounts,
}

/// `provider_up` before [`Metrics::provider_configured`]: no provider, no gauge.
const NO_PROVIDER: u64 = u64::MAX;

/// Outcome of a Redis lookup, for `ipcheck_redis_lookups_total`.
#[derive(Debug, Clone, Copy)]
pub enum RedisLookup {
    /// An entry was there.
    Hit,
    /// No entry.
    Miss,
    /// No answer (timeout or error).
    Error,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            decisions: Default::default(),
            observed: crate::decision_counts::DecisionCounts::observed(),
            tiers: counters(Tier::ALL.len()),
            redis_lookups: counters(3),
            provider_requests: AtomicU64::new(0),
            provider_errors: counters(ProviderError::KINDS.len()),
            provider_duration: crate::histogram::Histogram::new(&LATENCY_BUCKETS),
            coalesced_waits: AtomicU64::new(0),
            unknown_policy: AtomicU64::new(0),
            provider_up: AtomicU64::new(NO_PROVIDER),
            refresh: crate::lookup::refresh::Counts::default(),
            auth_duration: crate::histogram::Histogram::new(&crate::histogram::FAST_BUCKETS),
            reloads: crate::reload::counts::ReloadCounts::default(),
            feeds: crate::feeds::status::FeedStatus::default(),
            attribute_missing: Default::default(),
            database_decisions: Default::default(),
            enrich: crate::enrich::counts::EnrichCounts::default(),
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// One decision sent to nginx.
    pub fn decision(&self, verdict: Verdict, reasons: ReasonSet, tier: Tier) {
        self.decisions.count(verdict, reasons);
        inc(&self.tiers[tier as usize]);
    }

    /// One Redis lookup's outcome.
    pub fn redis_lookup(&self, outcome: RedisLookup) {
        inc(&self.redis_lookups[outcome as usize]);
    }

    /// One provider call and how long it took, with its error if it failed.
    pub fn provider_call(&self, elapsed: Duration, error: Option<ProviderError>) {
        inc(&self.provider_requests);
        self.provider_duration.observe(elapsed);
        if let Some(e) = error {
            inc(&self.provider_errors[e.kind_index()]);
        }
        self.provider_up
            .store(u64::from(error.is_none()), Ordering::Relaxed);
    }

    /// A provider is configured: `ipcheck_provider_up` is exported, 1 until a call fails.
    pub fn provider_configured(&self) {
        self.provider_up.store(1, Ordering::Relaxed);
    }

    /// The provider was removed by a reload: no provider, no gauge.
    pub fn provider_removed(&self) {
        self.provider_up.store(NO_PROVIDER, Ordering::Relaxed);
    }

    /// A request that waited for another request's lookup instead of starting its own.
    pub fn coalesced_wait(&self) {
        inc(&self.coalesced_waits);
    }

    /// A request naming a policy that is not configured.
    pub fn unknown_policy(&self) {
        inc(&self.unknown_policy);
    }

    /// The Prometheus text exposition of everything, plus the local cache's size (the Redis
    /// tier's errors and state are rendered by [`crate::cache::redis_health::Health::render`]).
    pub fn render(&self, local_entries: usize) -> String {
        let mut out = String::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.decisions.render(&mut out);
        self.observed.render(&mut out);
        header(
            &mut out,
            "ipcheck_cache_total",
            "Decisions by the tier that answered (X-IPCheck-Cache).",
            Kind::Counter,
        );
        for tier in Tier::ALL {
            let _ = writeln!(
                out,
                "ipcheck_cache_total{{tier=\"{}\"}} {}",
                tier.as_str(),
                get(&self.tiers[tier as usize])
            );
        }
        header(
            &mut out,
            "ipcheck_redis_lookups_total",
            "Redis tier lookups (IPCHECK.LGET, or IPCHECK GET until that is usable), by outcome.",
            Kind::Counter,
        );
        for (i, result) in ["hit", "miss", "error"].iter().enumerate() {
            let _ = writeln!(
                out,
                "ipcheck_redis_lookups_total{{result=\"{result}\"}} {}",
                get(&self.redis_lookups[i])
            );
        }
        header(
            &mut out,
            "ipcheck_provider_requests_total",
            "Provider calls made.",
            Kind::Counter,
        );
        let _ = writeln!(
            out,
            "ipcheck_provider_requests_total {}",
            get(&self.provider_requests)
        );
        header(
            &mut out,
            "ipcheck_provider_errors_total",
            "Failed provider calls, by kind.",
            Kind::Counter,
        );
        for (i, kind) in ProviderError::KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "ipcheck_provider_errors_total{{kind=\"{kind}\"}} {}",
                get(&self.provider_errors[i])
            );
        }
        crate::histogram::render_header(
            &mut out,
            "ipcheck_provider_duration_seconds",
            "Provider call latency.",
        );
        self.provider_duration
            .render(&mut out, "ipcheck_provider_duration_seconds", "");
        header(
            &mut out,
            "ipcheck_coalesced_waits_total",
            "Requests that shared another request's lookup.",
            Kind::Counter,
        );
        let _ = writeln!(
            out,
            "ipcheck_coalesced_waits_total {}",
            get(&self.coalesced_waits)
        );
        header(
            &mut out,
            "ipcheck_unknown_policy_total",
            "Requests naming a policy that is not configured.",
            Kind::Counter,
        );
        let _ = writeln!(
            out,
            "ipcheck_unknown_policy_total {}",
            get(&self.unknown_policy)
        );
        let up = get(&self.provider_up);
        if up != NO_PROVIDER {
            header(
                &mut out,
                "ipcheck_provider_up",
                "Whether the latest provider call answered (1) or failed (0); 1 before any call.",
                Kind::Gauge,
            );
            let _ = writeln!(out, "ipcheck_provider_up {up}");
        }
        header(
            &mut out,
            "ipcheck_local_entries",
            "Entries in the in-process cache.",
            Kind::Gauge,
        );
        let _ = writeln!(out, "ipcheck_local_entries {local_entries}");
        self.refresh.render(&mut out);
        crate::histogram::render_header(
            &mut out,
            "ipcheck_auth_duration_seconds",
            "Time to answer /auth, from the request's headers to the verdict.",
        );
        self.auth_duration
            .render(&mut out, "ipcheck_auth_duration_seconds", "");
        header(
            &mut out,
            "ipcheck_build_info",
            "The running ipcheck-auth's version (always 1).",
            Kind::Gauge,
        );
        let _ = writeln!(
            out,
            "ipcheck_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        self.reloads.render(&mut out);
        self.feeds.render(&mut out);
        self.attribute_missing.render(&mut out);
        self.database_decisions.render(&mut out);
        self.enrich.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::default();
        m.decision(Verdict::Block, ReasonSet::from_bits(0b101), Tier::Local);
        m.decision(Verdict::Allow, ReasonSet::NONE, Tier::Provider);
        m.provider_call(Duration::from_millis(30), Some(ProviderError::RateLimited));
        let text = m.render(3);
        assert!(text.contains("ipcheck_decisions_total{verdict=\"block\"} 1"));
        assert!(text.contains("ipcheck_decision_reasons_total{verdict=\"block\",reason=\"tor\"} 1"));
        assert!(text.contains("ipcheck_decisions_total{verdict=\"allow\"} 1"));
        assert!(text.contains("ipcheck_cache_total{tier=\"local\"} 1"));
        assert!(text.contains("ipcheck_provider_errors_total{kind=\"rate_limited\"} 1"));
        assert!(text.contains("ipcheck_provider_duration_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("ipcheck_provider_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("ipcheck_local_entries 3"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!("ipcheck_build_info{{version=\"{version}\"}} 1\n")));
        assert!(text.contains("ipcheck_auth_duration_seconds_count 0\n"));
    }

    #[test]
    fn provider_up_follows_the_latest_call() {
        let m = Metrics::default();
        assert!(!m.render(0).contains("ipcheck_provider_up"));
        m.provider_configured();
        assert!(m.render(0).contains("ipcheck_provider_up 1"));
        m.provider_call(Duration::from_millis(1), Some(ProviderError::Auth(401)));
        let text = m.render(0);
        assert!(text.contains("ipcheck_provider_up 0"));
        assert!(text.contains("ipcheck_provider_errors_total{kind=\"auth\"} 1"));
        m.provider_call(Duration::from_millis(1), None);
        assert!(m.render(0).contains("ipcheck_provider_up 1"));
    }
}
