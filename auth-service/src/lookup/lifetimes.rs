//! Every TTL rule of the lookup: how long each answer lives in each tier, and which Redis
//! entries are used as they are.
//!
//! A provider answer is written to Redis fresh for `redis.ttl` and stale for a further
//! `redis.stale_ttl`; `IPCHECK GET` says which part of its life an entry is in. A fresh entry
//! (or an operator's pin, never stale) is used as it is and kept locally no longer than its
//! fresh time. A stale one is never used while the provider answers: the lookup asks the
//! provider and keeps the stale facts only for [`Lifetimes::no_answer`], the one place every
//! "the provider gave no answer" outcome (a failure, an open breaker, over budget) goes
//! through. `on_error` decides only when there is no fact at all. Whatever was learnt while
//! Redis could not be asked is kept locally for `cache.degraded_ttl` at most, so an operator's
//! pin in Redis wins again soon after Redis is back. The local tier itself never keeps anything
//! longer than `cache.local_ttl` (its cap, [`crate::cache::local::LocalCache::new`]).

use std::time::Duration;

use ipcheck_core::Facts;

use crate::cache::redis::Stored;
use crate::cache::Known;
use crate::config::Settings;
use crate::metrics::Tier;
use crate::provider::gate::NoAnswer;

/// The durations every rule below is made of, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// How long a provider answer is fresh: `redis.ttl`, or `cache.local_ttl` without Redis.
    pub fresh: Duration,
    /// How long it then stays in Redis as stale facts: `redis.stale_ttl`.
    pub stale: Duration,
    /// How long a provider failure is remembered per address: `cache.negative_ttl`.
    pub negative: Duration,
    /// How long anything learnt without Redis is kept locally: `cache.degraded_ttl`.
    pub degraded: Duration,
    /// A fresh Redis entry with less fresh time left than this is refreshed in the background:
    /// `redis.refresh_ahead` (0: never).
    pub refresh_ahead: Duration,
}

/// What a Redis hit is worth to the lookup.
#[derive(Debug, Clone)]
pub enum RedisHit {
    /// Use it: a fresh entry or a pin, kept locally for `local_ttl`.
    Use {
        /// What it says.
        known: Known,
        /// How long the local tier may keep it: never past its fresh time.
        local_ttl: Duration,
    },
    /// Stale facts: ask the provider, and fall back on these only if it gives no answer.
    Stale(Stale),
}

/// Stale facts read from Redis, and how long they have left there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    /// The provider facts the entry holds.
    pub facts: Facts,
    /// Until the entry is gone from Redis.
    pub ttl: Duration,
}

/// What the lookup returns when the provider gave no answer.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// What decides.
    pub known: Known,
    /// `X-IPCheck-Cache`.
    pub tier: Tier,
    /// How long the local tier keeps it (None: not kept).
    pub local_ttl: Option<Duration>,
}

impl Lifetimes {
    /// The rules of a validated configuration.
    pub fn new(settings: &Settings) -> Lifetimes {
        let cache = settings.cache;
        match &settings.redis {
            Some(r) => Lifetimes {
                fresh: r.ttl,
                stale: r.stale_ttl,
                negative: cache.negative_ttl,
                degraded: cache.degraded_ttl,
                refresh_ahead: r.refresh_ahead,
            },
            None => Lifetimes {
                fresh: cache.local_ttl,
                stale: Duration::ZERO,
                negative: cache.negative_ttl,
                degraded: cache.degraded_ttl,
                refresh_ahead: Duration::ZERO,
            },
        }
    }

    /// What `IPCHECK GET` returned is worth.
    pub fn redis_hit(&self, stored: &Stored) -> RedisHit {
        // A pin is final until it expires (the module never writes one with a stale window;
        // the check keeps that true whatever wrote the entry).
        if stored.fresh || stored.entry.source.is_manual() {
            let local_ttl = if stored.fresh {
                stored.fresh_ttl
            } else {
                stored.ttl
            };
            RedisHit::Use {
                known: Known::from_entry(&stored.entry),
                local_ttl,
            }
        } else {
            RedisHit::Stale(Stale {
                facts: stored.entry.facts(),
                ttl: stored.ttl,
            })
        }
    }

    /// Whether a Redis hit should start a background refresh: a provider answer (never an
    /// operator's pin), still fresh (a stale one is refreshed on the request path already),
    /// with less than `refresh_ahead` of its fresh time left.
    pub fn refresh_due(&self, stored: &Stored) -> bool {
        !self.refresh_ahead.is_zero()
            && stored.fresh
            && !stored.entry.source.is_manual()
            && stored.fresh_ttl < self.refresh_ahead
    }

    /// How long the local tier keeps a provider answer.
    pub fn answer(&self, redis_failed: bool) -> Duration {
        self.without_redis(self.fresh, redis_failed)
    }

    /// How long the local tier remembers that there is nothing to ask (no provider): briefly,
    /// and not at all when Redis merely failed to answer.
    pub fn nothing(&self, redis_failed: bool) -> Option<Duration> {
        (!redis_failed).then_some(self.negative)
    }

    /// The provider gave no answer: stale facts if Redis had any, kept locally for
    /// `negative_ttl` at most (and never past their end in Redis) so the provider is asked
    /// again soon; otherwise `failed` (which the policy's `on_error` decides), remembered for
    /// `negative_ttl` after a failure or with the breaker open (a dead provider is not asked
    /// again meanwhile), not at all when over budget (the next request may fit the budget,
    /// and checking it costs nothing).
    pub fn no_answer(
        &self,
        stale: Option<Stale>,
        failed: Known,
        why: Option<NoAnswer>,
        redis_failed: bool,
    ) -> Fallback {
        if let Some(stale) = stale {
            return Fallback {
                known: Known::Stale(stale.facts),
                tier: Tier::Stale,
                local_ttl: Some(self.negative.min(stale.ttl)),
            };
        }
        let remembered = match why {
            Some(NoAnswer::OverBudget(_)) => None,
            Some(NoAnswer::Failed(_) | NoAnswer::BreakerOpen) => Some(self.negative),
            // Nothing was asked (no provider configured).
            None => self.nothing(redis_failed),
        };
        Fallback {
            known: failed,
            tier: if why.is_some_and(NoAnswer::called) {
                Tier::Provider
            } else {
                Tier::None
            },
            local_ttl: remembered.map(|ttl| self.without_redis(ttl, redis_failed)),
        }
    }

    /// An answer obtained while Redis could not be asked is kept for `degraded` at most.
    fn without_redis(&self, ttl: Duration, redis_failed: bool) -> Duration {
        if redis_failed {
            ttl.min(self.degraded)
        } else {
            ttl
        }
    }
}

/// The tier a local hit reports: stale facts stay marked stale.
pub fn local_tier(known: &Known) -> Tier {
    match known {
        Known::Stale(_) => Tier::Stale,
        _ => Tier::Local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderError;
    use ipcheck_core::{Category, Entry, Reasons, Source, Verdict};

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn rules() -> Lifetimes {
        Lifetimes {
            fresh: s(86_400),
            stale: s(7 * 86_400),
            negative: s(30),
            degraded: s(5),
            refresh_ahead: s(3600),
        }
    }

    fn stored(source: &str, fresh: bool, ttl: u64, fresh_ttl: u64) -> Stored {
        Stored {
            entry: Entry {
                verdict: Verdict::Block,
                reasons: Reasons::parse("tor").unwrap(),
                source: Source::parse(source).unwrap(),
                attributes: ipcheck_core::Attributes::NONE,
            },
            ttl: s(ttl),
            fresh,
            fresh_ttl: s(fresh_ttl),
        }
    }

    #[test]
    fn a_fresh_entry_is_used_and_kept_locally_no_longer_than_its_fresh_time() {
        match rules().redis_hit(&stored("api", true, 700_000, 3600)) {
            RedisHit::Use { known, local_ttl } => {
                assert!(matches!(known, Known::Facts(f) if f.categories.contains(Category::Tor)));
                assert_eq!(local_ttl, s(3600));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stale_entry_is_kept_for_when_the_provider_gives_no_answer() {
        let RedisHit::Stale(stale) = rules().redis_hit(&stored("api", false, 500_000, 0)) else {
            panic!("stale entry used as fresh");
        };
        assert!(stale.facts.categories.contains(Category::Tor));
        // A pin is never stale.
        assert!(matches!(
            rules().redis_hit(&stored("manual", false, 60, 0)),
            RedisHit::Use {
                known: Known::Pinned { .. },
                ..
            }
        ));
    }

    #[test]
    fn no_answer_serves_stale_facts_briefly_else_the_failure() {
        let r = rules();
        let failed = Some(NoAnswer::Failed(ProviderError::Timeout));
        let stale = Stale {
            facts: ipcheck_core::Categories::EMPTY.with(Category::Tor).into(),
            ttl: s(100_000),
        };
        let a = r.no_answer(Some(stale), Known::ProviderError, failed, false);
        assert!(matches!(a.known, Known::Stale(f) if f.categories.contains(Category::Tor)));
        assert_eq!((a.tier, a.local_ttl), (Tier::Stale, Some(s(30))));
        assert_eq!(local_tier(&a.known), Tier::Stale);
        // Never kept locally past the entry's end in Redis.
        let ending = Stale { ttl: s(2), ..stale };
        let a = r.no_answer(Some(ending), Known::ProviderError, failed, false);
        assert_eq!(a.local_ttl, Some(s(2)));
        let b = r.no_answer(None, Known::ProviderError, failed, false);
        assert!(matches!(b.known, Known::ProviderError));
        assert_eq!((b.tier, b.local_ttl), (Tier::Provider, Some(s(30))));
        assert_eq!(local_tier(&b.known), Tier::Local);
    }

    #[test]
    fn only_failures_and_an_open_breaker_are_remembered_and_briefly_without_redis() {
        let r = rules();
        let over = Some(NoAnswer::OverBudget(crate::budget::Limit::Rate));
        let open = Some(NoAnswer::BreakerOpen);
        let failed = Some(NoAnswer::Failed(ProviderError::Timeout));
        let no = |why, redis_failed| r.no_answer(None, Known::ProviderError, why, redis_failed);
        assert_eq!(no(over, false).local_ttl, None);
        assert_eq!(no(over, false).tier, Tier::None, "no call was made");
        assert_eq!(no(open, false).local_ttl, Some(s(30)));
        assert_eq!(no(open, false).tier, Tier::None);
        assert_eq!(no(failed, true).local_ttl, Some(s(5)));
        // Nothing to ask: remembered, unless Redis merely failed.
        assert_eq!(no(None, false).local_ttl, Some(s(30)));
        assert_eq!(no(None, true).local_ttl, None);
    }

    #[test]
    fn answers_without_redis_are_kept_briefly() {
        let r = rules();
        assert_eq!(r.answer(false), s(86_400));
        assert_eq!(r.answer(true), s(5));
        let short = Lifetimes { fresh: s(2), ..r };
        assert_eq!(short.answer(true), s(2), "never longer than asked");
    }

    #[test]
    fn only_fresh_provider_answers_near_their_end_refresh() {
        let r = rules();
        let due = |source, fresh, fresh_ttl| {
            r.refresh_due(&stored(source, fresh, fresh_ttl + 600_000, fresh_ttl))
        };
        assert!(due("api", true, 5));
        assert!(due("api", true, 3599));
        assert!(!due("api", true, 3600));
        assert!(!due("api", true, 86_000));
        // A pin is the operator's, never the provider's to replace.
        assert!(!due("manual", true, 5));
        // A stale entry is refreshed on the request path already.
        assert!(!due("api", false, 0));
        let off = Lifetimes {
            refresh_ahead: Duration::ZERO,
            ..r
        };
        assert!(!off.refresh_due(&stored("api", true, 600_005, 5)));
    }
}
