//! What the lookup needs from the world, as small traits: a clock, the shared tier (Redis), the
//! fact source (the provider behind its breaker and budget), and the in-process state they fill.
//!
//! The service implements them over its real tiers ([`crate::app::App`]); the lookup's unit
//! tests implement them in memory with a clock they move by hand, so the lookup order and every
//! TTL rule are tested without processes.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipcheck_core::{Attributes, Facts, LogLimiter, Policy, Reasons, Verdict};

use super::lifetimes::Lifetimes;
use super::Resolved;
use crate::cache::local::LocalCache;
use crate::cache::redis::{RedisError, Stored};
use crate::coalesce::Coalescer;
use crate::detached::Detached;
use crate::metrics::Metrics;
use crate::provider::gate::NoAnswer;

/// The shared tier: entries every instance reads and writes (`IPCHECK` in Redis).
pub trait SharedTier: Send + Sync {
    /// The entry for `key` (canonical address text), with where it is in its life.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Stored>, RedisError>> + Send;

    /// The entries of several keys at once, one result per key in order: the background reads
    /// of `on_miss = "allow"` ([`super::cold_read`]), one pipeline where Redis allows it.
    fn get_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Vec<Result<Option<Stored>, RedisError>>> + Send;

    /// Whether it is known to be failing (its breaker is not closed), so a path that must not
    /// wait answers as Redis's failure mode says without trying.
    fn failing(&self) -> bool;

    /// Writes a provider answer (verdict, reasons and what else is known: country, AS number,
    /// score), fresh for `fresh` then stale for `stale`; an operator's pin already there is kept.
    fn set(
        &self,
        key: &str,
        verdict: Verdict,
        reasons: &Reasons,
        attributes: Attributes,
        fresh: Duration,
        stale: Duration,
    ) -> impl Future<Output = Result<(), RedisError>> + Send;

    /// Takes the fleet-wide refresh lock for `key` for `hold`: false if another instance has it.
    fn refresh_lock(
        &self,
        key: &str,
        hold: Duration,
    ) -> impl Future<Output = Result<bool, RedisError>> + Send;

    /// Where it is, for log lines (never a password).
    fn display(&self) -> &str;

    /// The prefix of its keys, for log lines that name what to grant.
    fn key_prefix(&self) -> &str;
}

/// Where facts come from when no tier has them: the provider, behind its breaker and budget.
pub trait FactSource: Send + Sync {
    /// The facts about `ip`, or why there are none.
    fn ask(&self, ip: IpAddr) -> impl Future<Output = Result<Facts, NoAnswer>> + Send;
}

/// Everything the lookup reads and fills, shared by every request (`Arc<T>`).
pub trait Tiers: Send + Sync + 'static {
    /// The shared tier.
    type Shared: SharedTier;
    /// The fact source, borrowed from the tiers for one call.
    type Source<'a>: FactSource
    where
        Self: 'a;

    /// The clock every expiry is measured with.
    fn now(&self) -> Instant;
    /// The in-process tier.
    fn local(&self) -> &LocalCache;
    /// The shared tier, if configured.
    fn shared(&self) -> Option<&Self::Shared>;
    /// The fact source, if configured.
    fn source(&self) -> Option<Self::Source<'_>>;
    /// Every TTL rule.
    fn lifetimes(&self) -> &Lifetimes;
    /// The policy whose verdict is stored beside the facts (readers without the service use it).
    fn default_policy(&self) -> &Policy;
    /// Counters.
    fn metrics(&self) -> &Metrics;
    /// Lookups in flight, one per address.
    fn flights(&self) -> &Coalescer<Resolved>;
    /// Provider calls in flight, one per address, each running to its end.
    fn calls(&self) -> &Detached<Resolved>;
    /// One line per interval when the refresh lock is not permitted.
    fn refresh_log(&self) -> &Mutex<LogLimiter>;
    /// The named network lists' local copies.
    fn lists(&self) -> &crate::lists::ListStore;
    /// The local databases, when any is configured ([`crate::databases`]).
    fn databases(&self) -> Option<&crate::databases::Databases> {
        None
    }
    /// The enrichment queue cold addresses of `on_miss = "allow"` policies are offered to
    /// (None: such policies wait like the others).
    fn queue(&self) -> Option<&crate::enrich::queue::Queue> {
        None
    }
}
