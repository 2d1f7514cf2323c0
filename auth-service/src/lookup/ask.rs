//! The fact-source phase of a lookup, and the one path for "the source gave no answer".
//!
//! The call runs as a task of its own ([`crate::detached`]): once started it finishes, fills the
//! local tier and is written back to the shared tier even if every request waiting for it has
//! gone away (nginx gave up on the subrequest), so no paid call is wasted.

use std::sync::Arc;

use super::lifetimes::Stale;
use super::{without_redis, FactSource, Resolved, SharedTier, Tiers};
use ipcheck_core::Facts;

use crate::cache::local::Version;
use crate::cache::redis::RedisError;
use crate::cache::{Known, Unpinned};
use crate::client_ip::Client;
use crate::metrics::Tier;
use crate::provider::gate::NoAnswer;

/// What the shared tier said before the source is asked.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    /// A stale entry's facts, for when the source gives no answer.
    pub stale: Option<Stale>,
    /// The shared tier could not be asked.
    pub redis_failed: bool,
    /// The local tier's version before the shared tier was read.
    pub since: Version,
}

/// Asks the source about `client`, writes a new answer back, and falls back on stale facts,
/// then the failure, when it gives none.
pub async fn ask<T: Tiers>(tiers: Arc<T>, client: Client, found: Found) -> Resolved {
    let rules = *tiers.lifetimes();
    let key_text = client.key.canonical_text();
    let redis_failed = found.redis_failed;
    let answer = match tiers.source() {
        Some(source) => source.ask(client.ip).await,
        None => {
            let nothing = without_redis(Unpinned::Nothing, redis_failed);
            return no_answer(&*tiers, client, found, nothing, None);
        }
    };
    match answer {
        Ok(facts) => {
            let known = without_redis(Unpinned::Facts(facts), redis_failed);
            tiers.local().insert_unchanged(
                client.key,
                known.clone(),
                rules.answer(redis_failed),
                tiers.now(),
                found.since,
            );
            if tiers.shared().is_some() {
                let writer = Arc::clone(&tiers);
                // Off the response path: the waiting requests are answered meanwhile. A manual
                // pin that GET could not see is kept by the module (SOURCE api never replaces it).
                tokio::spawn(async move {
                    if let Some(shared) = writer.shared() {
                        if let Err(e) = write_back(&*writer, shared, key_text.as_str(), facts).await
                        {
                            tracing::debug!(key = %key_text, error = %e, "IPCHECK SET failed");
                        }
                    }
                });
            }
            Resolved {
                known,
                tier: Tier::Provider,
            }
        }
        // A failed call, an open breaker, or over budget, each logged, rate-limited, where it
        // happens (provider, breaker, budget).
        Err(why) => {
            tracing::debug!(key = %key_text, reason = %why, "no provider answer");
            let failed = without_redis(Unpinned::ProviderError, redis_failed);
            no_answer(&*tiers, client, found, failed, Some(why))
        }
    }
}

/// Writes a source's answer to the shared tier: the facts (categories as reasons, and the
/// attributes), with the default policy's verdict beside them (for readers without the
/// service), fresh then stale as the lifetimes say. A
/// manual pin there is kept by the module (SOURCE api never replaces it).
pub async fn write_back<T: Tiers>(
    tiers: &T,
    shared: &T::Shared,
    key: &str,
    facts: Facts,
) -> Result<(), RedisError> {
    let rules = tiers.lifetimes();
    let verdict = tiers.default_policy().apply(facts).verdict;
    shared
        .set(
            key,
            verdict,
            &facts.categories.to_reasons(),
            facts.attributes,
            rules.fresh,
            rules.stale,
        )
        .await
}

/// The one path for "the source gave no answer" (`why`; None when there is no source): stale
/// facts first (`found.stale`), else `failed` (for the policy's `on_error`), each kept locally as
/// [`super::lifetimes::Lifetimes::no_answer`] says.
pub fn no_answer<T: Tiers>(
    tiers: &T,
    client: Client,
    found: Found,
    failed: Known,
    why: Option<NoAnswer>,
) -> Resolved {
    let fallback = tiers
        .lifetimes()
        .no_answer(found.stale, failed, why, found.redis_failed);
    if let Some(ttl) = fallback.local_ttl {
        tiers.local().insert_unchanged(
            client.key,
            fallback.known.clone(),
            ttl,
            tiers.now(),
            found.since,
        );
    }
    Resolved {
        known: fallback.known,
        tier: fallback.tier,
    }
}
