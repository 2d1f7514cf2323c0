//! The cache tiers: the in-process LRU ([`local`]) and Redis through `IPCHECK` ([`redis`]).

pub mod invalidation;
pub mod invalidation_link;
pub mod local;
pub mod local_stats;
pub mod redis;
pub mod redis_attributes;
pub mod redis_error;
pub mod redis_health;
pub mod redis_latency;
pub mod redis_lean;
pub mod redis_verify;

use std::sync::Arc;

use ipcheck_core::{Attributes, Entry, Facts, ReasonSet, Verdict};

/// What the service knows about an address, as cached locally and shared by a coalesced lookup.
#[derive(Debug, Clone)]
pub enum Known {
    /// Provider facts: the requested policy decides.
    Facts(Facts),
    /// An operator's `manual` entry: its verdict is final for every policy.
    Pinned {
        /// The pinned verdict.
        verdict: Verdict,
        /// The entry's reasons, sent as they were stored.
        text: Arc<str>,
        /// The known tokens among them, for metrics.
        reasons: ReasonSet,
        /// The country, AS number and score the operator stored with the pin (each may be
        /// unknown): sent to the backend as for facts, never decided on.
        attributes: Attributes,
    },
    /// Facts from a stale Redis entry, served because the provider gave no answer (see
    /// [`crate::lookup::lifetimes`]): the requested policy decides, as for [`Known::Facts`].
    Stale(Facts),
    /// The provider failed recently: the policy's failure mode decides.
    ProviderError,
    /// Nothing to go on (no provider configured): the policy's failure mode decides.
    Nothing,
    /// What the other tiers found while Redis could not be asked: a manual pin may be hiding,
    /// so each policy's `on_redis_error` decides first.
    WithoutRedis(Unpinned),
}

/// What can be known without Redis (a pin is only ever in Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpinned {
    /// Provider facts.
    Facts(Facts),
    /// The provider failed.
    ProviderError,
    /// No provider configured.
    Nothing,
}

impl Unpinned {
    /// The same knowledge, as if Redis had been asked.
    pub fn known(self) -> Known {
        match self {
            Unpinned::Facts(facts) => Known::Facts(facts),
            Unpinned::ProviderError => Known::ProviderError,
            Unpinned::Nothing => Known::Nothing,
        }
    }
}

impl Known {
    /// What a stored entry means to the service: a manual pin, or facts for the policy.
    pub fn from_entry(entry: &Entry) -> Known {
        if entry.source.is_manual() {
            Known::Pinned {
                verdict: entry.verdict,
                text: Arc::from(entry.reasons.as_str()),
                reasons: ReasonSet::from_reasons(&entry.reasons),
                attributes: entry.attributes,
            }
        } else {
            Known::Facts(entry.facts())
        }
    }
}
