//! Refresh ahead: a Redis hit on an entry close to the end of its fresh time is answered from
//! the entry as always, and also starts one background provider call that writes a fresh answer
//! back, so a popular address never waits for the provider (nor goes stale) when its time ends.
//!
//! One refresh per address at a time: within an instance through the per-address call table
//! ([`crate::detached`], which a request-path call for the same address shares), across the
//! fleet through a short lock in Redis, `SET <key_prefix>refresh:{<address>} 1 NX PX`, whose
//! hash tag is the address so that in a cluster it lives beside the entry. Only the holder asks
//! the provider, through [`crate::provider::Provider::ask`], so the breaker and the budget apply:
//! refused, the refresh simply does not happen. The lock is never released: it expires after
//! [`LOCK_HOLD`], which also keeps the fleet from retrying a failed refresh sooner. A refresh
//! never changes the answer given, and a failed one leaves the entry as it was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{FactSource, Resolved, SharedTier, Tiers};
use crate::cache::redis::ErrorKind;
use crate::cache::Known;
use crate::client_ip::Client;
use crate::metrics::Tier;

/// How long the fleet-wide lock holds an address: longer than a provider call may take, and
/// how long the fleet waits before trying again after a refresh that got no answer.
pub const LOCK_HOLD: Duration = Duration::from_secs(30);

/// The lock key for `address` (its canonical text): hash-tagged with the address, and never
/// one of the module's keys (those are `<key_prefix>{<address>}`).
pub fn lock_key(key_prefix: &str, address: &str) -> String {
    format!("{key_prefix}refresh:{{{address}}}")
}

/// What became of a refresh, for `ipcheck_refresh_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A hit asked for one (counted on the request path; it joins a refresh of the address
    /// this instance is already running, if any).
    Started,
    /// Another instance holds the address's lock: no call.
    LockHeld,
    /// The provider answered and the answer was written back.
    Done,
    /// No answer (the call failed, the breaker is open, over budget), the lock or the
    /// write-back failed: the entry stays as it was.
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Started,
        Outcome::LockHeld,
        Outcome::Done,
        Outcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::LockHeld => "lock_held",
            Outcome::Done => "done",
            Outcome::Failed => "failed",
        }
    }
}

/// `ipcheck_refresh_total`, by outcome.
#[derive(Debug, Default)]
pub struct Counts([AtomicU64; 4]);

impl Counts {
    /// Counts one outcome.
    pub fn count(&self, outcome: Outcome) {
        self.0[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one outcome.
    pub fn get(&self, outcome: Outcome) -> u64 {
        self.0[outcome as usize].load(Ordering::Relaxed)
    }

    /// Appends the Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        crate::exposition::counter_family(
            out,
            "ipcheck_refresh_total",
            "Background refreshes of entries near the end of their fresh time, by outcome.",
            "result",
            Outcome::ALL
                .into_iter()
                .map(|outcome| (outcome.as_str(), self.get(outcome))),
        );
    }
}

/// Starts a refresh of `client`'s address, whose shared entry says `current`, unless one is
/// running on this instance. Returns at once.
pub fn start<T: Tiers>(tiers: &Arc<T>, client: Client, current: Known) {
    if tiers.source().is_none() || tiers.shared().is_none() {
        return;
    }
    // Counted before the task runs, so the count says at once which hits asked for a refresh.
    tiers.metrics().refresh.count(Outcome::Started);
    let tiers = Arc::clone(tiers);
    tokio::spawn(async move {
        let task = Arc::clone(&tiers);
        let _ = tiers
            .calls()
            .run(client.key, move || refresh(task, client, current))
            .await;
    });
}

/// One refresh, as an entry of the call table: what it resolves to is what a request-path
/// lookup joining it gets, so without a new answer that is the entry as it stands.
async fn refresh<T: Tiers>(tiers: Arc<T>, client: Client, current: Known) -> Resolved {
    let counts = &tiers.metrics().refresh;
    let unchanged = Resolved {
        known: current,
        tier: Tier::Redis,
    };
    let (Some(shared), Some(source)) = (tiers.shared(), tiers.source()) else {
        return unchanged;
    };
    let key_text = client.key.canonical_text();
    let since = tiers.local().version(&client.key);
    match shared.refresh_lock(key_text.as_str(), LOCK_HOLD).await {
        Ok(true) => {}
        Ok(false) => {
            counts.count(Outcome::LockHeld);
            return unchanged;
        }
        // Refreshing without the lock costs at most one call per instance per address; not
        // refreshing would let popular addresses wait for the provider again.
        Err(e) if e.kind == ErrorKind::NoPerm => {
            let line = tiers
                .refresh_log()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note(tiers.now());
            if let Some(times) = line {
                tracing::error!(
                    redis = %shared.display(),
                    "the refresh-ahead lock cannot be taken in Redis ({e}): grant the service's Redis user +set on {}refresh:* (or set redis.refresh_ahead = \"0s\"); meanwhile each instance refreshes on its own ({times} times since the last such line)",
                    shared.key_prefix()
                );
            }
        }
        Err(e) => {
            tracing::debug!(key = %key_text, error = %e, "refresh-ahead lock not taken; no refresh");
            counts.count(Outcome::Failed);
            return unchanged;
        }
    }
    let facts = match source.ask(client.ip).await {
        Ok(facts) => facts,
        Err(no_answer) => {
            tracing::debug!(key = %key_text, reason = %no_answer, "refresh ahead: no provider answer; the entry stays");
            counts.count(Outcome::Failed);
            return unchanged;
        }
    };
    let rules = *tiers.lifetimes();
    let known = Known::Facts(facts);
    tiers.local().insert_unchanged(
        client.key,
        known.clone(),
        rules.answer(false),
        tiers.now(),
        since,
    );
    match super::ask::write_back(&*tiers, shared, key_text.as_str(), facts).await {
        Ok(()) => counts.count(Outcome::Done),
        Err(e) => {
            tracing::debug!(key = %key_text, error = %e, "refresh ahead: IPCHECK SET failed");
            counts.count(Outcome::Failed);
        }
    }
    Resolved {
        known,
        tier: Tier::Provider,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_routes_like_the_address_and_is_no_module_key() {
        assert_eq!(
            lock_key("ipcheck:", "192.0.2.1"),
            "ipcheck:refresh:{192.0.2.1}"
        );
        let counts = Counts::default();
        counts.count(Outcome::LockHeld);
        let mut out = String::new();
        counts.render(&mut out);
        assert!(out.contains("ipcheck_refresh_total{result=\"lock_held\"} 1\n"));
        assert!(out.contains("ipcheck_refresh_total{result=\"done\"} 0\n"));
    }
}
