//! The lookup: which tier is asked in which order, what is kept where and for how long, and
//! what is served when a tier gives no answer. Everything here is generic over [`Tiers`], so
//! the whole path runs in unit tests against in-memory tiers and a hand-moved clock; the HTTP
//! glue ([`crate::decide`]) only reads the request and writes the answer.
//!
//! The order: the policy's lists (no lookup needed); then the local databases, which decide
//! (after the tiers that may hold a pin) when they give every fact the policy needs
//! ([`databases`]); else the local tier, then one coalesced lookup per address ([`resolve`])
//! that asks the shared tier and, on a miss, a stale entry or a failure, the fact source
//! ([`ask`]). What is cached are facts (never the databases'); the requested policy turns them,
//! with the databases' facts filling their gaps, into a verdict on every request ([`rule`]).
//! Every duration comes from [`lifetimes::Lifetimes`]. A policy with `on_miss = "allow"` never
//! waits: after the local tier it answers from what this instance holds and hands the address
//! to a background task that reads the shared tier in batches and queues what that cannot
//! answer ([`cold`], [`cold_read`]).

pub mod ask;
pub mod cold;
pub mod cold_read;
pub mod databases;
pub mod lifetimes;
pub mod refresh;
pub mod rule;
pub mod shared_read;
pub mod tiers;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ipcheck_core::{Categories, Decision, OnMiss, Policy};

use crate::lists::Listed;

use crate::cache::{Known, Unpinned};
use crate::client_ip::Client;
use crate::metrics::Tier;
use lifetimes::local_tier;
pub use rule::Rule;
use shared_read::{RefreshAhead, SharedRead};
pub use tiers::{FactSource, SharedTier, Tiers};

/// What the lookup of one address found, shared by every request coalesced on it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The knowledge.
    pub known: Known,
    /// Which tier supplied it.
    pub tier: Tier,
}

/// What a policy decided for a client, and from which tier.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The verdict and reasons.
    pub decision: Decision,
    /// A pin's own reason text, sent as it was stored (None: the decision's reasons).
    pub pin_reasons: Option<Arc<str>>,
    /// `X-IPCheck-Cache`.
    pub tier: Tier,
    /// What the tiers found (None: a list decided before any was asked).
    pub known: Option<Known>,
    /// The rule that decided.
    pub rule: Rule,
    /// The named list that decided (`Rule::List`) or added categories to the facts.
    pub list: Option<Arc<str>>,
}

/// What `policy` decides for `client`, the tiers asked in order.
pub async fn decide<T: Tiers>(tiers: &Arc<T>, policy: &Policy, client: Client) -> Decided {
    if let Some(decision) = policy.check_lists(client.ip) {
        let rule = if decision.verdict == ipcheck_core::Verdict::Allow {
            Rule::AllowList
        } else {
            Rule::DenyList
        };
        return Decided {
            decision,
            pin_reasons: None,
            tier: Tier::None,
            known: None,
            rule,
            list: None,
        };
    }
    let listed = tiers.lists().judge(policy, client.ip);
    if let Listed::Decided(decision, i) = listed {
        return Decided {
            decision,
            pin_reasons: None,
            tier: Tier::None,
            known: None,
            rule: Rule::List,
            list: tiers.lists().name(i),
        };
    }
    let db = tiers.databases().map(|d| d.lookup(client.ip));
    if let Some(answer) = db.filter(|a| a.covers(&policy.needs())) {
        let resolved = databases::without_provider(tiers, client, &answer).await;
        return decided(tiers, policy, resolved, listed, db);
    }
    let resolved = match tiers.local().get(&client.key, tiers.now()) {
        Some(known) => Resolved {
            tier: local_tier(&known),
            known,
        },
        // Never waits for the provider: see `cold`.
        None if policy.on_miss == OnMiss::Allow && tiers.queue().is_some() => {
            cold::resolve(&**tiers, client)
        }
        None => {
            let flight = Arc::clone(tiers);
            tiers
                .flights()
                .run(
                    client.key,
                    move || resolve(flight, client),
                    || tiers.metrics().coalesced_wait(),
                )
                .await
                // Cannot happen (see Coalescer::run); if it ever did, the failure mode decides.
                .unwrap_or(Resolved {
                    known: Known::ProviderError,
                    tier: Tier::None,
                })
        }
    };
    let resolved = match db {
        Some(answer) => Resolved {
            known: databases::filled(resolved.known, &answer),
            tier: resolved.tier,
        },
        None => resolved,
    };
    decided(tiers, policy, resolved, listed, db)
}

/// The policy's decision on what the tiers found, with the facts of the policy's lists added.
fn decided<T: Tiers>(
    tiers: &Arc<T>,
    policy: &Policy,
    resolved: Resolved,
    listed: Listed,
    db: Option<crate::databases::answer::DbAnswer>,
) -> Decided {
    if resolved.tier == Tier::Queued {
        // What is known without the provider: the databases' facts and the lists' categories.
        let local = db.map_or(ipcheck_core::Facts::EMPTY, |a| a.facts);
        let (local, list) = match listed {
            Listed::Facts(listed, i) => (local.with_categories(listed), tiers.lists().name(i)),
            _ => (local, None),
        };
        let (decision, rule) = cold::judge(policy, &resolved.known, local);
        return Decided {
            decision,
            pin_reasons: None,
            tier: Tier::Queued,
            known: Some(resolved.known),
            rule,
            list,
        };
    }
    let (known, list) = match listed {
        Listed::Facts(listed, i) => (with_listed(resolved.known, listed), tiers.lists().name(i)),
        _ => (resolved.known, None),
    };
    let (decision, pin_reasons, rule) = rule::rule(policy, known.clone());
    Decided {
        decision,
        pin_reasons,
        tier: resolved.tier,
        known: Some(known),
        rule,
        list,
    }
}

/// The coalesced miss path: the shared tier, then the fact source; fills the local tier before
/// returning.
///
/// When the shared tier could not be asked, what the source says is returned as
/// [`Known::WithoutRedis`], and kept locally for `degraded_ttl` at most.
pub async fn resolve<T: Tiers>(tiers: Arc<T>, client: Client) -> Resolved {
    // Taken before Redis is read: an invalidation arriving meanwhile keeps what we read out of
    // the local tier (see cache::local::Version).
    let since = tiers.local().version(&client.key);
    let mut redis_failed = false;
    // A stale entry's facts, for when the source gives no answer.
    let mut stale = None;
    if let Some(shared) = tiers.shared() {
        match shared_read::read(&tiers, shared, client, since, RefreshAhead::WhenDue).await {
            SharedRead::Use(known) => {
                return Resolved {
                    known,
                    tier: Tier::Redis,
                }
            }
            SharedRead::Stale(s) => stale = Some(s),
            SharedRead::Miss => {}
            SharedRead::Failed => redis_failed = true,
        }
    }
    if tiers.source().is_none() {
        // Nothing to ask: stale facts if any, else nothing to go on.
        let nothing = without_redis(Unpinned::Nothing, redis_failed);
        let found = ask::Found {
            stale,
            redis_failed,
            since,
        };
        return ask::no_answer(&*tiers, client, found, nothing, None);
    }
    // A call for this address that finished since this flight began has filled the local tier.
    if let Some(known) = tiers.local().get(&client.key, tiers.now()) {
        let tier = local_tier(&known);
        return Resolved { known, tier };
    }
    let task = Arc::clone(&tiers);
    let found = ask::Found {
        stale,
        redis_failed,
        since,
    };
    tiers
        .calls()
        .run(client.key, move || ask::ask(task, client, found))
        .await
        // Only if the call's task panicked: the failure mode decides.
        .unwrap_or(Resolved {
            known: without_redis(Unpinned::ProviderError, redis_failed),
            tier: Tier::None,
        })
}

/// What the tiers found with the categories of the policy's lists added to their facts (a pin
/// stays final; with no facts at all the failure modes decide, as without lists).
fn with_listed(known: Known, listed: Categories) -> Known {
    match known {
        Known::Facts(f) => Known::Facts(f.with_categories(listed)),
        Known::Stale(f) => Known::Stale(f.with_categories(listed)),
        Known::WithoutRedis(Unpinned::Facts(f)) => {
            Known::WithoutRedis(Unpinned::Facts(f.with_categories(listed)))
        }
        other => other,
    }
}

/// What the tiers found, marked as found without Redis when Redis could not be asked.
fn without_redis(unpinned: Unpinned, redis_failed: bool) -> Known {
    if redis_failed {
        Known::WithoutRedis(unpinned)
    } else {
        unpinned.known()
    }
}
