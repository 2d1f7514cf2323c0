//! The fact-source phase of a lookup, and the one path for "the source gave no answer".
//!
//! The call runs as a task of its own ([`crate::detached`]): once started it finishes, fills the
//! local tier and is written back to the shared tier even if every request waiting for it has
//! gone away (nginx gave up on the subrequest), so no paid call is wasted.

use std::sync::Arc;

use super::lifetimes::Stale;
use super::{without_redis, FactSource, Resolved, SharedTier, Tiers};
use crate::cache::{Known, Unpinned};
use crate::client_ip::Client;
use crate::metrics::Tier;
use crate::provider::gate::NoAnswer;

/// Asks the source about `client`, writes a new answer back, and falls back on `stale` facts,
/// then the failure, when it gives none.
pub async fn ask<T: Tiers>(
    tiers: Arc<T>,
    client: Client,
    redis_failed: bool,
    stale: Option<Stale>,
) -> Resolved {
    let rules = *tiers.lifetimes();
    let key_text = client.key.canonical_text();
    let answer = match tiers.source() {
        Some(source) => source.ask(client.ip).await,
        None => {
            let nothing = without_redis(Unpinned::Nothing, redis_failed);
            return no_answer(&*tiers, client, stale, nothing, None, redis_failed);
        }
    };
    match answer {
        Ok(facts) => {
            let known = without_redis(Unpinned::Facts(facts), redis_failed);
            tiers.local().insert(
                client.key,
                known.clone(),
                rules.answer(redis_failed),
                tiers.now(),
            );
            if tiers.shared().is_some() {
                let writer = Arc::clone(&tiers);
                // Off the response path: the waiting requests are answered meanwhile. A manual
                // pin that GET could not see is kept by the module (SOURCE api never replaces it).
                tokio::spawn(async move {
                    let verdict = writer.default_policy().apply(facts).verdict;
                    if let Some(shared) = writer.shared() {
                        let reasons = facts.to_reasons();
                        let written = shared.set(
                            key_text.as_str(),
                            verdict,
                            &reasons,
                            rules.fresh,
                            rules.stale,
                        );
                        if let Err(e) = written.await {
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
            no_answer(&*tiers, client, stale, failed, Some(why), redis_failed)
        }
    }
}

/// The one path for "the source gave no answer" (`why`; None when there is no source): stale
/// facts first, else `failed` (for the policy's `on_error`), each kept locally as
/// [`super::lifetimes::Lifetimes::no_answer`] says.
pub fn no_answer<T: Tiers>(
    tiers: &T,
    client: Client,
    stale: Option<Stale>,
    failed: Known,
    why: Option<NoAnswer>,
    redis_failed: bool,
) -> Resolved {
    let fallback = tiers
        .lifetimes()
        .no_answer(stale, failed, why, redis_failed);
    if let Some(ttl) = fallback.local_ttl {
        tiers
            .local()
            .insert(client.key, fallback.known.clone(), ttl, tiers.now());
    }
    Resolved {
        known: fallback.known,
        tier: fallback.tier,
    }
}
