//! The shared state every handler gets: settings, the tiers, the provider, metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderValue;
use ipcheck_core::{NormalizedIp, ReasonSet};

use crate::cache::invalidation::Coherence;
use crate::cache::local::LocalCache;
use crate::cache::redis::RedisTier;
use crate::coalesce::Coalescer;
use crate::config::{Settings, UnknownPolicy};
use crate::detached::Detached;
use crate::lookup::lifetimes::Lifetimes;
use crate::lookup::{Resolved, Tiers};
use crate::metrics::Metrics;
use crate::provider::gate::ProviderCall;
use crate::provider::{ApiKey, Provider};

/// How many distinct unknown policy names get their own error line and `/readyz` count (the rest
/// only count in the metric).
const UNKNOWN_POLICY_LOG_LIMIT: usize = 64;

/// Everything a request needs, shared as `State<Arc<App>>`.
pub struct App {
    /// The validated configuration.
    pub settings: Settings,
    /// Every TTL rule of the lookup, from the settings.
    pub lifetimes: Lifetimes,
    /// The in-process tier (shared with the next configuration on a reload, like every `Arc`
    /// below: see [`crate::reload`]).
    pub local: Arc<LocalCache>,
    /// The invalidation link's state, when the local tier follows Redis (`redis.invalidation`).
    pub coherence: Option<Arc<Coherence>>,
    /// The Redis tier, if configured.
    pub redis: Option<Arc<RedisTier>>,
    /// The provider, if configured.
    pub provider: Option<Arc<Provider>>,
    /// Lookups in flight, one per address.
    pub flights: Arc<Coalescer<Resolved>>,
    /// Provider calls in flight, one per address, each running to its end as a task of its own.
    pub calls: Arc<Detached<Resolved>>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The named network lists' local copies (rebuilt with each configuration).
    pub lists: Arc<crate::lists::ListStore>,
    /// When the refresh-ahead lock is not permitted: one log line per interval.
    pub refresh_log: Arc<Mutex<ipcheck_core::LogLimiter>>,
    /// The local `.mmdb` databases (opened with each configuration; an unchanged one is kept).
    pub databases: Arc<crate::databases::Databases>,
    /// Decision events (`[events]`), when on and Redis is configured.
    pub events: Option<crate::events::Events>,
    /// The enrichment queue (with Redis, in a runtime), started with the first configuration.
    pub enrich: Option<Arc<crate::enrich::queue::Queue>>,
    /// The provider's key as read when this configuration was loaded (a reload compares it).
    pub(crate) key: Option<ApiKey>,
    unknown_policies: Mutex<BTreeMap<String, u64>>,
}

/// The state a reload carries over from the running configuration to the next one.
pub(crate) struct Carried {
    pub local: Arc<LocalCache>,
    pub coherence: Option<Arc<Coherence>>,
    pub redis: Option<Arc<RedisTier>>,
    pub provider: Option<Arc<Provider>>,
    pub flights: Arc<Coalescer<Resolved>>,
    pub calls: Arc<Detached<Resolved>>,
    pub metrics: Arc<Metrics>,
    pub refresh_log: Arc<Mutex<ipcheck_core::LogLimiter>>,
    /// The running lists, whose Redis copies the next configuration starts from.
    pub lists: Option<Arc<crate::lists::ListStore>>,
    /// The next configuration's databases, opened before it is assembled.
    pub databases: Arc<crate::databases::Databases>,
    /// The events writer, started once (`[events]`).
    pub events: Option<Arc<crate::events::Writer>>,
    /// The enrichment queue, kept as started (its task and buffer outlive reloads).
    pub enrich: Option<Arc<crate::enrich::queue::Queue>>,
}

impl App {
    /// Builds the tiers and the provider client from validated settings and the provider's key.
    pub fn new(settings: Settings, key: Option<ApiKey>) -> anyhow::Result<Self> {
        let local = LocalCache::new(settings.cache.capacity, settings.cache.local_ttl);
        let redis = settings
            .redis
            .as_ref()
            .map(|r| RedisTier::new(r, settings.aggregation))
            .transpose()
            .map_err(|e| anyhow::anyhow!("{}: key `redis.url`: {e}", settings.origin))?;
        let coherence = settings
            .redis
            .as_ref()
            .filter(|r| r.invalidation && settings.cache.capacity > 0)
            .map(|r| Arc::new(Coherence::new(r.key_prefix.clone(), settings.aggregation)));
        let provider = settings
            .provider
            .clone()
            .map(|spec| Provider::new(spec, key.clone()))
            .transpose()?;
        let databases =
            crate::databases::Databases::open(&settings.origin, &settings.databases, None)?;
        let redis = redis.map(Arc::new);
        // The writer is a task: only where a runtime runs it (not in the operator's commands).
        let events = match (
            &settings.events,
            &redis,
            tokio::runtime::Handle::try_current(),
        ) {
            (Some(e), Some(redis), Ok(_)) => Some(crate::events::Writer::spawn(
                e.writer.clone(),
                Arc::clone(redis),
            )),
            _ => None,
        };
        let metrics = Metrics::default();
        if provider.is_some() {
            metrics.provider_configured();
        }
        let metrics = Arc::new(metrics);
        let enrich = match (&redis, tokio::runtime::Handle::try_current()) {
            (Some(redis), Ok(_)) => Some(Arc::new(crate::enrich::queue::Queue::with_redis(
                Arc::clone(redis),
                settings.enrich,
                Arc::clone(&metrics),
            ))),
            _ => None,
        };
        let carried = Carried {
            local: Arc::new(local),
            coherence,
            redis,
            provider: provider.map(Arc::new),
            flights: Arc::default(),
            calls: Arc::default(),
            metrics,
            refresh_log: Arc::new(Mutex::new(ipcheck_core::LogLimiter::new(
                crate::provider::health::LOG_INTERVAL,
            ))),
            lists: None,
            databases: Arc::new(databases),
            events,
            enrich,
        };
        Ok(App::assemble(settings, key, carried))
    }

    /// An `App` over `settings` and state built before (by [`App::new`] or a reload).
    pub(crate) fn assemble(settings: Settings, key: Option<ApiKey>, carried: Carried) -> Self {
        let lists = Arc::new(crate::lists::ListStore::new(&settings.lists));
        if let Some(running) = &carried.lists {
            // No gap on a reload: a list read from Redis matches from that copy until the new
            // configuration's first read replaces it.
            lists.adopt(running);
        }
        if let (Some(redis), Ok(_)) = (&carried.redis, tokio::runtime::Handle::try_current()) {
            crate::lists::refresh::spawn(&lists, Arc::clone(redis), carried.coherence.clone());
        }
        carried.databases.spawn_checks();
        let events = settings
            .events
            .as_ref()
            .zip(carried.events)
            .map(|(e, writer)| crate::events::Events::new(e.filter, writer));
        App {
            lists,
            events,
            lifetimes: Lifetimes::new(&settings),
            settings,
            local: carried.local,
            coherence: carried.coherence,
            redis: carried.redis,
            provider: carried.provider,
            flights: carried.flights,
            calls: carried.calls,
            metrics: carried.metrics,
            refresh_log: carried.refresh_log,
            databases: carried.databases,
            enrich: carried.enrich,
            key,
            unknown_policies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The state the next configuration keeps (the provider too; a reload replaces it when its
    /// settings or key changed).
    pub(crate) fn carried(&self) -> Carried {
        Carried {
            local: Arc::clone(&self.local),
            coherence: self.coherence.clone(),
            redis: self.redis.clone(),
            provider: self.provider.clone(),
            flights: Arc::clone(&self.flights),
            calls: Arc::clone(&self.calls),
            metrics: Arc::clone(&self.metrics),
            refresh_log: Arc::clone(&self.refresh_log),
            lists: Some(Arc::clone(&self.lists)),
            databases: Arc::clone(&self.databases),
            events: self.events.as_ref().map(|e| Arc::clone(e.writer())),
            enrich: self.enrich.clone(),
        }
    }

    /// The `X-IPCheck-Reason` value for a reason set.
    pub fn reason_header(&self, reasons: ReasonSet) -> HeaderValue {
        crate::reason_header::reason_header(reasons)
    }

    /// Counts a request for an unconfigured policy and logs an error once per name.
    pub fn unknown_policy(&self, name: &str) {
        self.metrics.unknown_policy();
        let mut seen = self
            .unknown_policies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = seen.get_mut(name) {
            *count += 1;
            return;
        }
        if seen.len() >= UNKNOWN_POLICY_LOG_LIMIT {
            return;
        }
        seen.insert(name.to_owned(), 1);
        let answer = match self.settings.unknown_policy {
            UnknownPolicy::Closed => "blocking every such request (unknown_policy = \"closed\")",
            UnknownPolicy::Open => "allowing every such request (unknown_policy = \"open\")",
            UnknownPolicy::Default => {
                "deciding such requests with the default policy (unknown_policy = \"default\")"
            }
        };
        tracing::error!(
            policy = name,
            configured = ?self.settings.policies.names(),
            "X-IPCheck-Policy names a policy that is not configured; {answer}, reason policy-error; fix $ipcheck_policy in the nginx config or add [policies.{name}]"
        );
    }

    /// Whether any request named a policy that is not configured.
    pub fn unknown_policy_seen(&self) -> bool {
        let seen = self
            .unknown_policies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !seen.is_empty()
    }

    /// The `/readyz` line about policies: the unknown names requested so far, with counts.
    pub fn policies_line(&self) -> String {
        let seen = self
            .unknown_policies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.is_empty() {
            return format!(
                "policies: {}; no unknown policy name requested\n",
                self.settings.policies.names().join(", ")
            );
        }
        let names: Vec<String> = seen.iter().map(|(n, c)| format!("{n} ({c})")).collect();
        format!(
            "policies: unknown policy names requested: {} (unknown_policy = {})\n",
            names.join(", "),
            self.settings.unknown_policy.as_str()
        )
    }

    /// A one-line summary of the active tiers, for the first log line and `check-config`.
    pub fn tiers_summary(settings: &Settings) -> String {
        let mut tiers = vec![if settings.cache.capacity == 0 {
            "local off (capacity 0)".to_owned()
        } else {
            format!(
                "local (capacity {}, local_ttl {})",
                settings.cache.capacity,
                crate::duration::display(settings.cache.local_ttl)
            )
        }];
        if let Some(r) = &settings.redis {
            let addr = crate::cache::redis::display_address(&r.url);
            let kind = if r.cluster { "redis cluster" } else { "redis" };
            tiers.push(format!(
                "{kind} ({addr}, timeout {}, ttl {}, stale_ttl {}, refresh_ahead {}, invalidation {})",
                crate::duration::display(r.timeout),
                crate::duration::display(r.ttl),
                crate::duration::display(r.stale_ttl),
                crate::duration::display(r.refresh_ahead),
                if r.invalidation && settings.cache.capacity > 0 {
                    "on"
                } else {
                    "off"
                }
            ));
        }
        if let Some(p) = &settings.provider {
            let host = p
                .endpoint()
                .map(|(h, port)| format!("{h}:{port}"))
                .unwrap_or_default();
            tiers.push(format!(
                "provider ({} at {host}, timeout {}, negative_ttl {}, {})",
                p.name,
                crate::duration::display(p.timeout),
                crate::duration::display(settings.cache.negative_ttl),
                p.budget.summary()
            ));
        }
        for d in &settings.databases {
            tiers.push(format!(
                "database {} ({}{}, check_interval {})",
                d.name,
                d.file.display(),
                d.preset
                    .map_or(String::new(), |p| format!(", preset {}", p.name())),
                crate::duration::display(d.check_interval)
            ));
        }
        tiers.join(", ")
    }
}

/// The lookup runs over the service's real tiers and the system clock.
impl Tiers for App {
    type Shared = RedisTier;
    type Source<'a> = ProviderCall<'a>;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn local(&self) -> &LocalCache {
        &self.local
    }

    fn shared(&self) -> Option<&RedisTier> {
        self.redis.as_deref()
    }

    fn source(&self) -> Option<ProviderCall<'_>> {
        self.provider.as_deref().map(|provider| ProviderCall {
            provider,
            metrics: &self.metrics,
            redis: self.redis.as_deref(),
        })
    }

    fn lifetimes(&self) -> &Lifetimes {
        &self.lifetimes
    }

    fn default_policy(&self) -> &ipcheck_core::Policy {
        self.settings.policies.default_policy()
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn flights(&self) -> &Coalescer<Resolved> {
        &self.flights
    }

    fn calls(&self) -> &Detached<Resolved> {
        &self.calls
    }

    fn refresh_log(&self) -> &Mutex<ipcheck_core::LogLimiter> {
        &self.refresh_log
    }

    fn lists(&self) -> &crate::lists::ListStore {
        &self.lists
    }

    fn databases(&self) -> Option<&crate::databases::Databases> {
        Some(&*self.databases).filter(|d| !d.is_empty())
    }

    fn queue(&self) -> Option<&crate::enrich::queue::Queue> {
        self.enrich.as_deref()
    }
}

/// The `X-IPCheck-Key` value of an address.
pub fn key_header(key: &NormalizedIp) -> HeaderValue {
    // Built on every answer: the text is written on the stack and copied once into the header's
    // own allocation. Canonical address text is plain ASCII, so the check cannot fail.
    HeaderValue::from_bytes(key.canonical_text().as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}
