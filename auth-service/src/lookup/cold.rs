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

use ipcheck_core::{Categories, Decision, Policy};

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
/// Redis failed and the policy says so, else the policy's judgement of no facts but the
/// categories of the lists it consults (`listed`).
pub fn judge(policy: &Policy, known: &Known, listed: Option<Categories>) -> (Decision, Rule) {
    if let Known::WithoutRedis(_) = known {
        if let Some(decision) = policy.redis_failure() {
            return (decision, Rule::OnRedisError);
        }
    }
    (
        policy.apply(listed.unwrap_or(Categories::EMPTY)),
        Rule::OnMiss,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{Category, RedisFailureMode, Verdict};

    #[test]
    fn no_facts_allow_unless_a_list_or_redis_failure_says_otherwise() {
        let policy = Policy {
            block: Categories::EMPTY.with(Category::Tor),
            ..Policy::default()
        };
        let (d, rule) = judge(&policy, &Known::Nothing, None);
        assert_eq!(
            (d.verdict, d.reasons.to_text(), rule),
            (Verdict::Allow, "".into(), Rule::OnMiss)
        );
        let tor = Some(Categories::EMPTY.with(Category::Tor));
        assert_eq!(
            judge(&policy, &Known::Nothing, tor).0.verdict,
            Verdict::Block
        );
        let failed = Known::WithoutRedis(Unpinned::Nothing);
        assert_eq!(judge(&policy, &failed, None).1, Rule::OnMiss, "continue");
        let closed = Policy {
            on_redis_error: RedisFailureMode::Closed,
            ..policy
        };
        let (d, rule) = judge(&closed, &failed, None);
        assert_eq!((d.verdict, rule), (Verdict::Block, Rule::OnRedisError));
    }
}
