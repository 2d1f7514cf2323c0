//! The decision: request in, client address, policy, the tiers in order, verdict out.
//!
//! Lists first (no lookup needed), then the local tier, then one coalesced lookup per address
//! that asks Redis and, on a miss or a Redis failure, the provider. What is cached are facts;
//! the requested policy turns them into a verdict on every request.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};
use ipcheck_core::{Decision, Policy, ReasonSet, Verdict};

use crate::app::{key_header, App};
use crate::cache::Known;
use crate::client_ip::Client;
use crate::config::UnknownPolicy;
use crate::metrics::{RedisLookup, Tier};

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
        return apply(app, policy, known, Tier::Local, key);
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
    match known {
        Known::Facts(facts) => finish(app, policy.apply(facts), None, tier, key),
        Known::Pinned {
            verdict,
            header,
            reasons,
        } => finish(app, Decision { verdict, reasons }, Some(header), tier, key),
        Known::ProviderError => finish(
            app,
            policy.failure(ReasonSet::PROVIDER_ERROR),
            None,
            tier,
            key,
        ),
        Known::Nothing => finish(app, policy.failure(ReasonSet::NONE), None, tier, key),
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
async fn lookup(app: Arc<App>, client: Client) -> Resolved {
    let cache = app.settings.cache;
    // On the stack and Copy: no allocation, and the SET task below takes its own copy.
    let key_text = client.key.canonical_text();
    let mut redis_failed = false;
    if let Some(redis) = &app.redis {
        match redis.get(key_text.as_str()).await {
            Ok(Some(stored)) => {
                app.metrics.redis_lookup(RedisLookup::Hit);
                let known = Known::from_entry(&stored.entry);
                app.local.insert(client.key, known.clone(), stored.ttl);
                return Resolved {
                    known,
                    tier: Tier::Redis,
                };
            }
            Ok(None) => app.metrics.redis_lookup(RedisLookup::Miss),
            Err(e) => {
                app.metrics.redis_lookup(RedisLookup::Error);
                app.metrics.redis_error("get", e.kind());
                tracing::debug!(key = %key_text, error = %e, "IPCHECK GET gave no answer; going on without Redis");
                redis_failed = true;
            }
        }
    }
    let Some(provider) = &app.provider else {
        // Nothing else to ask. Remember that briefly, unless Redis merely failed to answer.
        if !redis_failed {
            app.local
                .insert(client.key, Known::Nothing, cache.negative_ttl);
        }
        return Resolved {
            known: Known::Nothing,
            tier: Tier::None,
        };
    };
    let started = Instant::now();
    let result = provider.lookup(client.ip).await;
    app.metrics.provider_call(started.elapsed(), result.err());
    match result {
        Ok(facts) => {
            let known = Known::Facts(facts);
            let ttl = app
                .settings
                .redis
                .as_ref()
                .map_or(cache.local_ttl, |r| r.ttl);
            app.local.insert(client.key, known.clone(), ttl);
            if app.redis.is_some() {
                let writer = Arc::clone(&app);
                // Off the response path: the waiting requests are answered meanwhile.
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
                            writer.metrics.redis_error("set", e.kind());
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
        Err(e) => {
            // The provider logs failures itself, rate-limited (one line per kind, not per address).
            tracing::debug!(key = %key_text, error = %e, "provider lookup failed");
            app.local
                .insert(client.key, Known::ProviderError, cache.negative_ttl);
            Resolved {
                known: Known::ProviderError,
                tier: Tier::Provider,
            }
        }
    }
}
