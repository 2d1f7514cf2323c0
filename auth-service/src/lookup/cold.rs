//! `on_miss = "allow"`: the lookup of a policy that never waits, neither for the provider nor
//! for Redis.
//!
//! After a local miss the address is answered at once from what this instance holds (the
//! lists the policy consults and the local databases: [`judge`]; tier `queued`, rule
//! [`Rule::OnMiss`]: allowed, reason none, unless one of them gives a fact the policy decides
//! on) and handed to the background task ([`super::cold_read`]), which reads Redis in batches:
//! a fresh entry or a pin found there is kept locally, so the next request is a local hit;
//! stale facts are kept briefly and the address queued; nothing there is queued.
//!
//! So a pin on an address this instance has not seen applies from the first request after the
//! background read (milliseconds later), not from the very first one: a policy where a pin must
//! stop the very first request keeps `on_miss = "wait"` (docs/enrichment.md).
//!
//! While Redis is known to be failing (its breaker is not closed) nothing is handed over and
//! the policy's `on_redis_error` decides as everywhere else (`continue` goes on to the "no
//! facts" answer).

use ipcheck_core::{Decision, Facts, Policy};

use super::{Resolved, Rule, SharedTier, Tiers};
use crate::cache::{Known, Unpinned};
use crate::client_ip::Client;
use crate::metrics::Tier;

/// What this instance knows about `client` without waiting: nothing (the caller adds the
/// lists' and databases' facts); the address is handed to the background read.
pub fn resolve<T: Tiers>(tiers: &T, client: Client) -> Resolved {
    let known = if tiers.shared().is_some_and(SharedTier::failing) {
        Known::WithoutRedis(Unpinned::Nothing)
    } else {
        if let Some(queue) = tiers.queue() {
            queue.offer(client);
        }
        Known::Nothing
    };
    Resolved {
        known,
        tier: Tier::Queued,
    }
}

/// The decision for a queued address (`resolved.tier == Tier::Queued`): `on_redis_error` when
/// Redis failed and the policy says so, else the policy's judgement of what is known without
/// the provider (`local`: the local databases' facts and the categories of the lists the
/// policy consults; empty when there are neither).
pub fn judge(policy: &Policy, known: &Known, local: Facts) -> (Decision, Rule) {
    if let Known::WithoutRedis(_) = known {
        if let Some(decision) = policy.redis_failure() {
            return (decision, Rule::OnRedisError);
        }
    }
    (policy.apply(local), Rule::OnMiss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{Categories, Category, Country, RedisFailureMode, Verdict};

    #[test]
    fn no_facts_allow_unless_a_list_or_redis_failure_says_otherwise() {
        let policy = Policy {
            block: Categories::EMPTY.with(Category::Tor),
            ..Policy::default()
        };
        let (d, rule) = judge(&policy, &Known::Nothing, Facts::EMPTY);
        assert_eq!(
            (d.verdict, d.reasons.to_text(), rule),
            (Verdict::Allow, "".into(), Rule::OnMiss)
        );
        let tor = Facts::from(Categories::EMPTY.with(Category::Tor));
        assert_eq!(
            judge(&policy, &Known::Nothing, tor).0.verdict,
            Verdict::Block
        );
        let failed = Known::WithoutRedis(Unpinned::Nothing);
        assert_eq!(
            judge(&policy, &failed, Facts::EMPTY).1,
            Rule::OnMiss,
            "continue"
        );
        let closed = Policy {
            on_redis_error: RedisFailureMode::Closed,
            ..policy
        };
        let (d, rule) = judge(&closed, &failed, Facts::EMPTY);
        assert_eq!((d.verdict, rule), (Verdict::Block, Rule::OnRedisError));
    }

    #[test]
    fn a_local_databases_country_decides_a_queued_address() {
        // Only these countries: without a country a cold address is refused; with the one a
        // local database gives, it is let through (and refused when it is another).
        let policy = Policy {
            allow_countries: vec![Country::parse("DE").unwrap()],
            ..Policy::default()
        };
        let country = |c: &str| {
            let mut f = Facts::EMPTY;
            f.attributes.country = Country::parse(c).ok();
            f
        };
        assert_eq!(
            judge(&policy, &Known::Nothing, Facts::EMPTY).0.verdict,
            Verdict::Block
        );
        assert_eq!(
            judge(&policy, &Known::Nothing, country("DE")).0.verdict,
            Verdict::Allow
        );
        assert_eq!(
            judge(&policy, &Known::Nothing, country("FR"))
                .0
                .reasons
                .to_text(),
            "country"
        );
    }
}
