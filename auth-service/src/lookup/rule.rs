//! Which rule decides, from what the tiers found: the policy's judgement of facts (fresh or
//! stale), an operator's pin, or one of the policy's failure modes.

/// The rule that decided, for `explain` (the lists are checked before any tier is asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The policy's deny list.
    DenyList,
    /// The policy's allow list.
    AllowList,
    /// A named list the policy consults, before any tier (see [`crate::lists::precedence`]).
    List,
    /// The policy's categories, applied to the facts.
    Facts,
    /// The policy's categories, applied to stale facts (the provider gave no answer).
    StaleFacts,
    /// An operator's pin: final for every policy.
    Pin,
    /// `on_error`: no facts at all.
    OnError,
    /// `on_redis_error`: Redis could not be asked, so a pin may be hiding there.
    OnRedisError,
    /// `on_miss = "allow"`: no tier knew the address; judged as having no facts and queued
    /// for enrichment ([`super::cold`]).
    OnMiss,
}

use std::sync::Arc;

use ipcheck_core::{Decision, Policy, ReasonSet};

use crate::cache::Known;

/// What `policy` decides from `known`, with a pin's own reason text, and by which rule.
pub fn rule(policy: &Policy, known: Known) -> (Decision, Option<Arc<str>>, Rule) {
    match known {
        Known::Facts(facts) => (policy.apply(facts), None, Rule::Facts),
        Known::Stale(facts) => (policy.apply(facts), None, Rule::StaleFacts),
        // The pin's attributes are for the backend's headers, never for the verdict.
        Known::Pinned {
            verdict,
            text,
            reasons,
            ..
        } => (Decision { verdict, reasons }, Some(text), Rule::Pin),
        Known::ProviderError => (
            policy.failure(ReasonSet::PROVIDER_ERROR),
            None,
            Rule::OnError,
        ),
        Known::Nothing => (policy.failure(ReasonSet::NONE), None, Rule::OnError),
        // A pin may be hiding in Redis: the policy says whether that matters more than the facts.
        Known::WithoutRedis(found) => match policy.redis_failure() {
            Some(decision) => (decision, None, Rule::OnRedisError),
            None => rule(policy, found.known()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Unpinned;
    use ipcheck_core::{Categories, Category, Facts, FailureMode, RedisFailureMode, Verdict};

    fn policy(on_error: FailureMode, on_redis_error: RedisFailureMode) -> Policy {
        Policy {
            block: Categories::EMPTY.with(Category::Tor),
            on_error,
            on_redis_error,
            ..Policy::default()
        }
    }

    fn decided(p: &Policy, known: Known) -> (Verdict, String) {
        let (d, _, _) = rule(p, known);
        (d.verdict, d.reasons.to_text())
    }

    #[test]
    fn without_redis_each_policy_decides_from_its_on_redis_error() {
        let strict = policy(FailureMode::Closed, RedisFailureMode::Closed);
        let lenient = policy(FailureMode::Open, RedisFailureMode::Continue);
        let open = policy(FailureMode::Closed, RedisFailureMode::Open);
        let clean = Known::WithoutRedis(Unpinned::Facts(Facts::EMPTY));
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
        let tor = Known::WithoutRedis(Unpinned::Facts(
            Categories::EMPTY.with(Category::Tor).into(),
        ));
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
            decided(&strict, Known::Stale(tor.into())),
            (Verdict::Block, "tor".into())
        );
        assert_eq!(
            decided(&strict, Known::Stale(Facts::EMPTY)),
            (Verdict::Allow, "".into())
        );
    }

    #[test]
    fn with_redis_asked_on_redis_error_plays_no_part() {
        let strict = policy(FailureMode::Closed, RedisFailureMode::Closed);
        assert_eq!(
            decided(&strict, Known::Facts(Facts::EMPTY)),
            (Verdict::Allow, "".into())
        );
        let pin = Known::Pinned {
            verdict: Verdict::Block,
            text: Arc::from("my-list"),
            reasons: ReasonSet::NONE,
            attributes: ipcheck_core::Attributes::NONE,
        };
        let (d, text, by) = rule(&policy(FailureMode::Open, RedisFailureMode::Open), pin);
        assert_eq!((d.verdict, by), (Verdict::Block, Rule::Pin));
        assert_eq!(text.as_deref(), Some("my-list"));
    }
}
