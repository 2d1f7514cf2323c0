//! The decision: request in, client address, policy, the tiers in order, verdict out.
//!
//! Lists first (no lookup needed), then the local tier, then one coalesced lookup per address
//! that asks Redis and, on a miss, a stale entry or a Redis failure, the provider; when the
//! provider gives no answer, `provider_gave_no_answer` serves stale facts or the failure. What
//! is cached are facts; the requested policy turns them into a verdict on every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use ipcheck_core::{Decision, Policy, ReasonSet, Verdict};

use crate::app::{key_header, App};
use crate::cache::{local_ttl, Known, Unpinned};
use crate::client_ip::Client;
use crate::config::UnknownPolicy;
use crate::metrics::{RedisLookup, Tier};
use crate::refresh;
use crate::stale::{self, RedisHit};

/// The request header nginx uses to pick a policy.
pub const POLICY_HEADER: &str = "x-ipcheck-policy";

/// What the lookup of one address found, shared by every request coalesced on it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The knowledge.
    pub known: Known,
    /// Which tier supplied it.
    pub tier: Tier,
}

/// The answer to nginx.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict (204/403/401).
    pub verdict: Verdict,
    /// `X-IPCheck-Reason`.
    pub reason: HeaderValue,
    /// `X-IPCheck-Cache`.
    pub tier: Tier,
    /// `X-IPCheck-Key` (empty when there is no client address).
    pub key: HeaderValue,
}

/// Decides one `/auth` request.
pub async fn decide(app: &Arc<App>, headers: &HeaderMap) -> Outcome {
    let policies = &app.settings.policies;
    let client = app
        .settings
        .client_ip
        .client(headers, app.settings.aggregation);
    let policy = match headers.get(POLICY_HEADER).map(HeaderValue::as_bytes) {
        None | Some(b"") => policies.default_policy(),
        Some(name) => {
            let name = std::str::from_utf8(name).unwrap_or("");
            match policies.get(name) {
                Some(p) => p,
                None => {
                    app.unknown_policy(name);
                    // A configuration error: the operator's unknown_policy decides, blocking
                    // unless told otherwise, because the named policy may have been fail-closed.
                    let verdict = match app.settings.unknown_policy {
                        UnknownPolicy::Default => None,
                        UnknownPolicy::Closed => Some(Verdict::Block),
                        UnknownPolicy::Open => Some(Verdict::Allow),
                    };
                    match verdict {
                        None => policies.default_policy(),
                        Some(verdict) => {
                            let key = client.map_or_else(empty, |c| key_header(&c.key));
                            let decision = Decision {
                                verdict,
                                reasons: ReasonSet::POLICY_ERROR,
                            };
                            return finish(app, decision, None, Tier::None, key);
                        }
                    }
                }
            }
        }
    };
    let Some(client) = client else {
        return finish(
            app,
            policy.failure(ReasonSet::NO_CLIENT_IP),
            None,
            Tier::None,
            empty(),
        );
    };
    if let Some(decision) = policy.check_lists(client.ip) {
        return finish(app, decision, None, Tier::None, key_header(&client.key));
    }
    let key = key_header(&client.key);
    if let Some(known) = app.local.get(&client.key, Instant::now()) {
        let tier = stale::local_tier(&known);
        return apply(app, policy, known, tier, key);
    }
    let flight_app = Arc::clone(app);
    let resolved = app
        .flights
        .run(
            client.key,
            move || lookup(flight_app, client),
            || app.metrics.coalesced_wait(),
        )
        .await
        // Cannot happen (see Coalescer::run); if it ever did, the failure mode decides.
        .unwrap_or(Resolved {
            known: Known::ProviderError,
            tier: Tier::None,
        });
    apply(app, policy, resolved.known, resolved.tier, key)
}

fn empty() -> HeaderValue {
    HeaderValue::from_static("")
}

fn apply(app: &App, policy: &Policy, known: Known, tier: Tier, key: HeaderValue) -> Outcome {
    let (decision, header) = rule(policy, known);
    finish(app, decision, header, tier, key)
}

/// What `policy` decides from what the tiers found, with a pin's own reason header. Pure: the
/// decision rules are tested on their own below.
pub fn rule(policy: &Policy, known: Known) -> (Decision, Option<HeaderValue>) {
    match known {
        Known::Facts(facts) | Known::Stale(facts) => (policy.apply(facts), None),
        Known::Pinned {
            verdict,
            header,
            reasons,
        } => (Decision { verdict, reasons }, Some(header)),
        Known::ProviderError => (policy.failure(ReasonSet::PROVIDER_ERROR), None),
        Known::Nothing => (policy.failure(ReasonSet::NONE), None),
        // A pin may be hiding in Redis: the policy says whether that matters more than the facts.
        Known::WithoutRedis(found) => match policy.redis_failure() {
            Some(decision) => (decision, None),
            None => rule(policy, found.known()),
        },
    }
}

fn finish(
    app: &App,
    d: Decision,
    reason: Option<HeaderValue>,
    tier: Tier,
    key: HeaderValue,
) -> Outcome {
    app.metrics.decision(d.verdict, d.reasons, tier);
    Outcome {
        verdict: d.verdict,
        reason: reason.unwrap_or_else(|| app.reason_header(d.reasons)),
        tier,
        key,
    }
}

/// The coalesced miss path: Redis, then the provider; fills the local tier before returning.
///
/// When Redis could not be asked, what the provider says is returned as
/// [`Known::WithoutRedis`], and kept locally for `cache.degraded_ttl` at most.
async fn lookup(app: Arc<App>, client: Client) -> Resolved {
    let cache = app.settings.cache;
    // On the stack and Copy: no allocation, and the SET task below takes its own copy.
    let key_text = client.key.canonical_text();
    let mut redis_failed = false;
    // A stale entry's facts, for when the provider gives no answer.
    let mut stale_facts = None;
    if let Some(redis) = &app.redis {
        match redis.get(key_text.as_str()).await {
            Ok(Some(stored)) => {
                app.metrics.redis_lookup(RedisLookup::Hit);
                match RedisHit::of(&stored) {
                    RedisHit::Use { known, local_ttl } => {
                        app.local.insert(client.key, known.clone(), local_ttl);
                        let ahead = app.settings.redis.as_ref().map(|r| r.refresh_ahead);
                        if ahead.is_some_and(|ahead| refresh::due(&stored, ahead)) {
                            refresh::start(&app, client, known.clone());
                        }
                        return Resolved {
                            known,
                            tier: Tier::Redis,
                        };
                    }
                    RedisHit::Stale(s) => stale_facts = Some(s),
                }
            }
            Ok(None) => app.metrics.redis_lookup(RedisLookup::Miss),
            Err(e) => {
                // Counted and logged (on a state change) by the tier itself.
                app.metrics.redis_lookup(RedisLookup::Error);
                tracing::debug!(key = %key_text, error = %e, "IPCHECK GET gave no answer; going on without Redis");
                redis_failed = true;
            }
        }
    }
    if app.provider.is_none() {
        if stale_facts.is_some() {
            // Nothing to ask, but something stale to go on.
            let nothing = without_redis(Unpinned::Nothing, redis_failed);
            return provider_gave_no_answer(&app, client, stale_facts, nothing, None);
        }
        // Nothing else to ask. Remember that briefly, unless Redis merely failed to answer.
        if !redis_failed {
            app.local
                .insert(client.key, Known::Nothing, cache.negative_ttl);
        }
        return Resolved {
            known: without_redis(Unpinned::Nothing, redis_failed),
            tier: Tier::None,
        };
    }
    // A call for this address that finished since this flight began has filled the local tier.
    if let Some(known) = app.local.get(&client.key, Instant::now()) {
        let tier = stale::local_tier(&known);
        return Resolved { known, tier };
    }
    let task_app = Arc::clone(&app);
    app.calls
        .run(client.key, move || {
            ask_provider(task_app, client, redis_failed, stale_facts)
        })
        .await
        // Only if the call's task panicked: the failure mode decides.
        .unwrap_or(Resolved {
            known: without_redis(Unpinned::ProviderError, redis_failed),
            tier: Tier::None,
        })
}

/// What the tiers found, marked as found without Redis when Redis could not be asked.
fn without_redis(unpinned: Unpinned, redis_failed: bool) -> Known {
    if redis_failed {
        Known::WithoutRedis(unpinned)
    } else {
        unpinned.known()
    }
}

/// The provider phase of a lookup, run as a task of its own ([`crate::detached`]): a call once
/// started finishes, fills the local tier and is written back to Redis even if every request
/// waiting for it has gone away.
async fn ask_provider(
    app: Arc<App>,
    client: Client,
    redis_failed: bool,
    stale_facts: Option<stale::Stale>,
) -> Resolved {
    let cache = app.settings.cache;
    let key_text = client.key.canonical_text();
    let keep = |ttl| local_ttl(ttl, redis_failed, cache.degraded_ttl);
    let Some(provider) = &app.provider else {
        return Resolved {
            known: without_redis(Unpinned::Nothing, redis_failed),
            tier: Tier::None,
        };
    };
    match provider
        .ask(client.ip, &app.metrics, app.redis.as_ref())
        .await
    {
        Ok(facts) => {
            let known = without_redis(Unpinned::Facts(facts), redis_failed);
            let ttl = app
                .settings
                .redis
                .as_ref()
                .map_or(cache.local_ttl, |r| r.ttl);
            app.local.insert(client.key, known.clone(), keep(ttl));
            if app.redis.is_some() {
                let writer = Arc::clone(&app);
                // Off the response path: the waiting requests are answered meanwhile. A manual
                // pin that GET could not see is kept by the module (SOURCE api never replaces it).
                tokio::spawn(async move {
                    let verdict = writer
                        .settings
                        .policies
                        .default_policy()
                        .apply(facts)
                        .verdict;
                    if let Some(redis) = &writer.redis {
                        if let Err(e) = redis
                            .set(key_text.as_str(), verdict, &facts.to_reasons())
                            .await
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
        // The one "the provider gave no answer" path: a failed call, an open breaker, or over
        // budget, each logged, rate-limited, where it happens (provider, breaker, budget). Stale
        // facts, when Redis had some, decide before on_error does.
        Err(no_answer) => {
            tracing::debug!(key = %key_text, reason = %no_answer, "no provider answer");
            let failed = without_redis(Unpinned::ProviderError, redis_failed);
            let failed_ttl = no_answer.remember_for(cache.negative_ttl).map(keep);
            let mut resolved =
                provider_gave_no_answer(&app, client, stale_facts, failed, failed_ttl);
            // X-IPCheck-Cache says provider only when it was asked.
            if resolved.tier == Tier::Provider && !no_answer.called() {
                resolved.tier = Tier::None;
            }
            resolved
        }
    }
}

/// The one path for "the provider gave no answer": stale facts first, else `failed` (for the
/// policy's `on_error`), kept locally for `failed_ttl` (None: not kept). See [`crate::stale`].
fn provider_gave_no_answer(
    app: &App,
    client: Client,
    stale_facts: Option<stale::Stale>,
    failed: Known,
    failed_ttl: Option<Duration>,
) -> Resolved {
    let cache = app.settings.cache;
    let kept = failed_ttl.is_some() || stale_facts.is_some();
    let answer = stale::no_answer(
        stale_facts,
        failed,
        failed_ttl.unwrap_or_default(),
        cache.negative_ttl,
    );
    if kept {
        app.local
            .insert(client.key, answer.known.clone(), answer.local_ttl);
    }
    Resolved {
        known: answer.known,
        tier: answer.tier,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{Categories, Category, FailureMode, RedisFailureMode};

    fn policy(on_error: FailureMode, on_redis_error: RedisFailureMode) -> Policy {
        Policy {
            block: Categories::EMPTY.with(Category::Tor),
            on_error,
            on_redis_error,
            ..Policy::default()
        }
    }

    fn decided(p: &Policy, known: Known) -> (Verdict, String) {
        let (d, _) = rule(p, known);
        (d.verdict, d.reasons.to_text())
    }

    #[test]
    fn without_redis_each_policy_decides_from_its_on_redis_error() {
        let strict = policy(FailureMode::Closed, RedisFailureMode::Closed);
        let lenient = policy(FailureMode::Open, RedisFailureMode::Continue);
        let open = policy(FailureMode::Closed, RedisFailureMode::Open);
        let clean = Known::WithoutRedis(Unpinned::Facts(Categories::EMPTY));
        // One coalesced lookup's answer, read by three policies.
        assert_eq!(
            decided(&strict, clean.clone()),
            (Verdict::Block, "redis-error".into())
        );
        assert_eq!(
            decided(&lenient, clean.clone()),
            (Verdict::Allow, "".into())
        );
        assert_eq!(
            decided(&open, clean),
            (Verdict::Allow, "redis-error".into())
        );
        // Continuing uses the facts, and the provider's failure still goes to on_error.
        let tor = Known::WithoutRedis(Unpinned::Facts(Categories::EMPTY.with(Category::Tor)));
        assert_eq!(decided(&lenient, tor), (Verdict::Block, "tor".into()));
        let failed = Known::WithoutRedis(Unpinned::ProviderError);
        assert_eq!(
            decided(&lenient, failed.clone()),
            (Verdict::Allow, "provider-error".into())
        );
        assert_eq!(
            decided(&strict, failed),
            (Verdict::Block, "redis-error".into())
        );
    }

    #[test]
    fn stale_facts_are_judged_by_the_policy_like_fresh_ones() {
        let strict = policy(FailureMode::Closed, RedisFailureMode::Closed);
        let tor = Categories::EMPTY.with(Category::Tor);
        assert_eq!(
            decided(&strict, Known::Stale(tor)),
            (Verdict::Block, "tor".into())
        );
        assert_eq!(
            decided(&strict, Known::Stale(Categories::EMPTY)),
            (Verdict::Allow, "".into())
        );
    }

    #[test]
    fn with_redis_asked_on_redis_error_plays_no_part() {
        let strict = policy(FailureMode::Closed, RedisFailureMode::Closed);
        assert_eq!(
            decided(&strict, Known::Facts(Categories::EMPTY)),
            (Verdict::Allow, "".into())
        );
        let pin = Known::Pinned {
            verdict: Verdict::Block,
            header: HeaderValue::from_static("my-list"),
            reasons: ReasonSet::NONE,
        };
        let (d, header) = rule(&policy(FailureMode::Open, RedisFailureMode::Open), pin);
        assert_eq!(d.verdict, Verdict::Block);
        assert_eq!(header.unwrap(), "my-list");
    }
}
