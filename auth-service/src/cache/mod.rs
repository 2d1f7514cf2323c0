//! The cache tiers: the in-process LRU ([`local`]) and Redis through `IPCHECK` ([`redis`]).

pub mod local;
pub mod redis;

use axum::http::HeaderValue;
use ipcheck_core::{Categories, Entry, ReasonSet, Verdict};

/// What the service knows about an address, as cached locally and shared by a coalesced lookup.
#[derive(Debug, Clone)]
pub enum Known {
    /// Provider facts: the requested policy decides.
    Facts(Categories),
    /// An operator's `manual` entry: its verdict is final for every policy.
    Pinned {
        /// The pinned verdict.
        verdict: Verdict,
        /// The entry's reasons, sent as they were stored.
        header: HeaderValue,
        /// The known tokens among them, for metrics.
        reasons: ReasonSet,
    },
    /// The provider failed recently: the policy's failure mode decides.
    ProviderError,
    /// Nothing to go on (no provider configured): the policy's failure mode decides.
    Nothing,
}

impl Known {
    /// What a stored entry means to the service: a manual pin, or facts for the policy.
    pub fn from_entry(entry: &Entry) -> Known {
        if entry.source.is_manual() {
            Known::Pinned {
                verdict: entry.verdict,
                // Reason tokens are [a-z0-9_-]: always a valid header value.
                header: HeaderValue::from_str(entry.reasons.as_str())
                    .unwrap_or_else(|_| HeaderValue::from_static("")),
                reasons: ReasonSet::from_reasons(&entry.reasons),
            }
        } else {
            Known::Facts(Categories::from_reasons(&entry.reasons))
        }
    }
}
