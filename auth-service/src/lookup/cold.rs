//! `on_miss = "allow"`: the lookup of a policy that never waits for the provider.
//!
//! After a local miss the shared tier is read as usual. A fresh entry or a pin is used and kept
//! locally exactly as on the waiting path; anything else is answered at once and the address
//! offered to the enrichment queue ([`crate::enrich::queue`]) instead of asking the provider:
//! stale facts are judged as stale facts (tier `stale`); no entry at all is judged as an address
//! with no facts (tier `queued`, rule [`Rule::OnMiss`]: allowed, reason none, unless a list the
//! policy consults adds a category it blocks). Nothing answered without facts is kept locally,
//! so once a worker has written the facts the next request reads them from Redis.
//!
//! When Redis gives no answer the policy's `on_redis_error` decides as everywhere else
//! (`continue` goes on to the "no facts" answer); the address is still offered.

use std::sync::Arc;

use ipcheck_core::{Decision, Facts, Policy};

use super::shared_read::{self, RefreshAhead, SharedRead};
use super::{Resolved, Rule, Tiers};
use crate::cache::{Known, Unpinned};
use crate::client_ip::Client;
use crate::metrics::Tier;

/// What the tiers know about `client` without asking the provider, offering it to the queue
/// when that is not enough.
pub async fn resolve<T: Tiers>(tiers: &Arc<T>, client: Client) -> Resolved {
    let offer = || {
        if let Some(queue) = tiers.queue() {
            queue.offer(client);
        }
    };
    let queued = |known: Known| Resolved {
        known,
        tier: Tier::Queued,
    };
    let Some(shared) = tiers.shared() else {
        offer();
        return queued(Known::Nothing);
    };
    let since = tiers.local().version(&client.key);
    match shared_read::read(tiers, shared, client, since, RefreshAhead::WhenDue).await {
        SharedRead::Use(known) => Resolved {
            known,
            tier: Tier::Redis,
        },
        SharedRead::Stale(stale) => {
            offer();
            Resolved {
                known: Known::Stale(stale.facts),
                tier: Tier::Stale,
            }
        }
        SharedRead::Miss => {
            offer();
            queued(Known::Nothing)
        }
        SharedRead::Failed => {
            offer();
            queued(Known::WithoutRedis(Unpinned::Nothing))
        }
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
