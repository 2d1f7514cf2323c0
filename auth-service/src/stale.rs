//! Fresh, stale, gone, as the lookup sees it: which Redis entries are used as they are, and
//! what is served when the provider gives no answer.
//!
//! The service writes every provider answer fresh for `redis.ttl` and stale for a further
//! `redis.stale_ttl` (`IPCHECK SET ... EX <ttl> STALE <stale_ttl>`); `IPCHECK GET` says which
//! part of its life an entry is in. A fresh entry (or an operator's pin, never stale) is used
//! as today. A stale one is never used while the provider answers: the lookup asks the provider
//! and keeps the stale facts only for [`no_answer`], the one place every "the provider gave no
//! answer" outcome (an error today; a budget or an open breaker later) goes through. `on_error`
//! decides only when there is no fact at all.

use std::time::Duration;

use ipcheck_core::Categories;

use crate::cache::redis::Stored;
use crate::cache::Known;
use crate::metrics::Tier;

/// What a Redis hit is worth to the lookup.
#[derive(Debug, Clone)]
pub enum RedisHit {
    /// Use it: a fresh entry or a pin, kept locally for `local_ttl` (its fresh time left).
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
    pub facts: Categories,
    /// Until the entry is gone from Redis.
    pub ttl: Duration,
}

impl RedisHit {
    /// Classifies what `IPCHECK GET` returned.
    pub fn of(stored: &Stored) -> RedisHit {
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
                facts: Categories::from_reasons(&stored.entry.reasons),
                ttl: stored.ttl,
            })
        }
    }
}

/// What the lookup returns when the provider gave no answer.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// What decides.
    pub known: Known,
    /// `X-IPCheck-Cache`.
    pub tier: Tier,
    /// How long the local tier keeps it.
    pub local_ttl: Duration,
}

/// The provider gave no answer (failed; or, later, over budget or its breaker open): stale facts
/// if Redis had any, kept locally for `negative_ttl` at most so the provider is asked again
/// soon; otherwise `failed` (which the policy's `on_error` decides), kept for `failed_ttl`.
pub fn no_answer(
    stale: Option<Stale>,
    failed: Known,
    failed_ttl: Duration,
    negative_ttl: Duration,
) -> Fallback {
    match stale {
        Some(stale) => Fallback {
            known: Known::Stale(stale.facts),
            tier: Tier::Stale,
            local_ttl: negative_ttl.min(stale.ttl),
        },
        None => Fallback {
            known: failed,
            tier: Tier::Provider,
            local_ttl: failed_ttl,
        },
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
    use ipcheck_core::{Category, Entry, Reasons, Source, Verdict};

    fn stored(source: &str, fresh: bool, ttl: u64, fresh_ttl: u64) -> Stored {
        Stored {
            entry: Entry {
                verdict: Verdict::Block,
                reasons: Reasons::parse("tor").unwrap(),
                source: Source::parse(source).unwrap(),
            },
            ttl: Duration::from_secs(ttl),
            fresh,
            fresh_ttl: Duration::from_secs(fresh_ttl),
        }
    }

    #[test]
    fn a_fresh_entry_is_used_and_kept_locally_no_longer_than_its_fresh_time() {
        match RedisHit::of(&stored("api", true, 700_000, 3600)) {
            RedisHit::Use { known, local_ttl } => {
                assert!(matches!(known, Known::Facts(f) if f.contains(Category::Tor)));
                assert_eq!(local_ttl, Duration::from_secs(3600));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stale_entry_is_kept_for_when_the_provider_gives_no_answer() {
        let RedisHit::Stale(stale) = RedisHit::of(&stored("api", false, 500_000, 0)) else {
            panic!("stale entry used as fresh");
        };
        assert!(stale.facts.contains(Category::Tor));
        // A pin is never stale.
        assert!(matches!(
            RedisHit::of(&stored("manual", false, 60, 0)),
            RedisHit::Use {
                known: Known::Pinned { .. },
                ..
            }
        ));
    }

    #[test]
    fn no_answer_serves_stale_facts_briefly_else_the_failure() {
        let s = Duration::from_secs;
        let stale = Stale {
            facts: Categories::EMPTY.with(Category::Tor),
            ttl: s(100_000),
        };
        let a = no_answer(Some(stale), Known::ProviderError, s(30), s(30));
        assert!(matches!(a.known, Known::Stale(f) if f.contains(Category::Tor)));
        assert_eq!((a.tier, a.local_ttl), (Tier::Stale, s(30)));
        assert_eq!(local_tier(&a.known), Tier::Stale);
        // Never kept locally past the entry's end in Redis.
        let ending = Stale { ttl: s(2), ..stale };
        assert_eq!(
            no_answer(Some(ending), Known::ProviderError, s(30), s(30)).local_ttl,
            s(2)
        );
        let b = no_answer(None, Known::ProviderError, s(5), s(30));
        assert!(matches!(b.known, Known::ProviderError));
        assert_eq!((b.tier, b.local_ttl), (Tier::Provider, s(5)));
        assert_eq!(local_tier(&b.known), Tier::Local);
    }
}
