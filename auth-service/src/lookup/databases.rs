//! The local databases in the lookup ([`crate::databases`]): what is decided without the
//! provider, and how the databases' facts join what the tiers found.
//!
//! When the databases give every fact the policy needs, the provider is never asked, but an
//! operator's pin still wins: the local tier is read first and, on a miss, Redis (not coalesced:
//! one `IPCHECK GET`, no provider call to share). A pin there decides; fresh provider facts
//! there are used, with the databases filling their gaps; otherwise the databases decide alone
//! (`X-IPCheck-Cache: database`). What the databases say is never written to a tier: a
//! database-only answer kept locally or in Redis would read as the provider's to a policy the
//! databases do not cover. So an address the databases decide costs one Redis read per request
//! while no entry for it is cached.

use std::sync::Arc;

use super::lifetimes::local_tier;
use super::shared_read::{self, RefreshAhead, SharedRead};
use super::{Resolved, Tiers};
use crate::cache::{Known, Unpinned};
use crate::client_ip::Client;
use crate::databases::answer::DbAnswer;
use crate::metrics::Tier;

/// What the tiers that can hold a pin say about `client`, the databases deciding the rest; the
/// provider is not asked.
pub async fn without_provider<T: Tiers>(
    tiers: &Arc<T>,
    client: Client,
    answer: &DbAnswer,
) -> Resolved {
    let resolved = pinned_or_cached(tiers, client, answer).await;
    if resolved.tier == Tier::Database {
        tiers.metrics().database_decisions.inc();
    }
    resolved
}

async fn pinned_or_cached<T: Tiers>(tiers: &Arc<T>, client: Client, answer: &DbAnswer) -> Resolved {
    if let Some(known) = tiers.local().get(&client.key, tiers.now()) {
        return covered(known, answer, local_tier);
    }
    let databases_alone = Resolved {
        known: Known::Facts(answer.facts),
        tier: Tier::Database,
    };
    let Some(shared) = tiers.shared() else {
        return databases_alone;
    };
    let since = tiers.local().version(&client.key);
    match shared_read::read(tiers, shared, client, since, RefreshAhead::Never).await {
        // A pin or fresh provider facts: kept locally as the provider path keeps them.
        SharedRead::Use(known) => covered(known, answer, |_| Tier::Redis),
        // Stale facts are for when the provider gives no answer; none is needed.
        SharedRead::Stale(_) | SharedRead::Miss => databases_alone,
        // A pin may be hiding: each policy's on_redis_error decides first.
        SharedRead::Failed => Resolved {
            known: Known::WithoutRedis(Unpinned::Facts(answer.facts)),
            tier: Tier::Database,
        },
    }
}

/// What a tier found, for a policy the databases cover: a pin stays final, provider facts get
/// the databases' gaps filled, and a remembered failure (or no provider) no longer matters.
fn covered(known: Known, answer: &DbAnswer, tier: impl Fn(&Known) -> Tier) -> Resolved {
    let alone = |redis_failed: bool| Resolved {
        known: if redis_failed {
            Known::WithoutRedis(Unpinned::Facts(answer.facts))
        } else {
            Known::Facts(answer.facts)
        },
        tier: Tier::Database,
    };
    match known {
        Known::ProviderError | Known::Nothing => alone(false),
        Known::WithoutRedis(Unpinned::ProviderError | Unpinned::Nothing) => alone(true),
        known => {
            let tier = tier(&known);
            Resolved {
                known: filled(known, answer),
                tier,
            }
        }
    }
}

/// What the tiers found with the databases' facts filling the gaps of provider facts (a pin, a
/// failure and "nothing" are left as they are: the failure modes decide as without databases).
pub fn filled(known: Known, answer: &DbAnswer) -> Known {
    if answer.is_nothing() {
        return known;
    }
    match known {
        Known::Facts(f) => Known::Facts(answer.fill(f)),
        Known::Stale(f) => Known::Stale(answer.fill(f)),
        Known::WithoutRedis(Unpinned::Facts(f)) => {
            Known::WithoutRedis(Unpinned::Facts(answer.fill(f)))
        }
        other => other,
    }
}
