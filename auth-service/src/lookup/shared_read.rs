//! One read of the shared tier, as every lookup path does it: counted in the metrics, a usable
//! entry kept locally (never older than an invalidation, see [`crate::cache::local::Version`]),
//! a refresh started when one is due. The paths differ only in what they do with the result.

use std::sync::Arc;

use super::lifetimes::{RedisHit, Stale};
use super::{refresh, SharedTier, Tiers};
use crate::cache::local::Version;
use crate::cache::redis::{RedisError, Stored};
use crate::cache::Known;
use crate::client_ip::Client;
use crate::metrics::RedisLookup;

/// What the shared tier said about an address.
pub enum SharedRead {
    /// A pin or fresh provider facts, now kept locally too.
    Use(Known),
    /// Stale provider facts: for when the provider gives no answer.
    Stale(Stale),
    /// No entry.
    Miss,
    /// Redis gave no answer (the tier counts and logs it on a state change).
    Failed,
}

/// Whether a usable hit may start a refresh ahead of its end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RefreshAhead {
    /// When the entry's fresh time is nearly up (the lookup paths that use provider facts).
    WhenDue,
    /// Never (a path that does not need the provider's facts).
    Never,
}

/// Reads `client`'s entry; `since` is the local tier's version taken before the read.
pub async fn read<T: Tiers>(
    tiers: &Arc<T>,
    shared: &T::Shared,
    client: Client,
    since: Version,
    refresh_ahead: RefreshAhead,
) -> SharedRead {
    // On the stack and Copy: no allocation.
    let key_text = client.key.canonical_text();
    let answer = shared.get(key_text.as_str()).await;
    classify(tiers, client, since, refresh_ahead, answer)
}

/// What the shared tier's `answer` about `client` means, counted, a usable entry kept locally;
/// `since` is the local tier's version taken before the read. Every read goes through here,
/// one at a time ([`read`]) or batched ([`super::cold_read`]).
pub fn classify<T: Tiers>(
    tiers: &Arc<T>,
    client: Client,
    since: Version,
    refresh_ahead: RefreshAhead,
    answer: Result<Option<Stored>, RedisError>,
) -> SharedRead {
    match answer {
        Ok(Some(stored)) => {
            tiers.metrics().redis_lookup(RedisLookup::Hit);
            let rules = tiers.lifetimes();
            match rules.redis_hit(&stored) {
                RedisHit::Use { known, local_ttl } => {
                    tiers.local().insert_unchanged(
                        client.key,
                        known.clone(),
                        local_ttl,
                        tiers.now(),
                        since,
                    );
                    if refresh_ahead == RefreshAhead::WhenDue && rules.refresh_due(&stored) {
                        refresh::start(tiers, client, known.clone());
                    }
                    SharedRead::Use(known)
                }
                RedisHit::Stale(s) => SharedRead::Stale(s),
            }
        }
        Ok(None) => {
            tiers.metrics().redis_lookup(RedisLookup::Miss);
            SharedRead::Miss
        }
        Err(e) => {
            tiers.metrics().redis_lookup(RedisLookup::Error);
            tracing::debug!(key = %client.key, error = %e, "IPCHECK GET gave no answer");
            SharedRead::Failed
        }
    }
}
