//! What stands between a lookup and a provider call: the circuit breaker, then the budget (this
//! instance's, then the fleet's in Redis when shared).
//! Whether the call failed, was not made because the breaker is open, or was over budget, the
//! lookup gets one answer, [`NoAnswer`], and takes one path for it.

use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipcheck_core::Facts;

use super::{Provider, ProviderError};
use crate::breaker::Admit;
use crate::budget::Limit;
use crate::budget_shared::Shared;
use crate::cache::redis::{RedisError, RedisTier};
use crate::metrics::Metrics;

/// Why the provider gave no facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// The call was made and failed.
    Failed(ProviderError),
    /// No call: the provider's breaker is open.
    BreakerOpen,
    /// No call: `[provider.budget]` is exhausted.
    OverBudget(Limit),
}

impl NoAnswer {
    /// Whether a call was made (and paid for).
    pub fn called(self) -> bool {
        matches!(self, NoAnswer::Failed(_))
    }
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Failed(e) => write!(f, "{e}"),
            NoAnswer::BreakerOpen => f.write_str("circuit breaker open"),
            NoAnswer::OverBudget(limit) => write!(f, "over budget ({})", limit.as_str()),
        }
    }
}

impl Provider {
    /// Asks about `ip` if the breaker and the budget allow (the shared budget through `redis`);
    /// records the call in `metrics`.
    pub async fn ask(
        &self,
        ip: IpAddr,
        metrics: &Metrics,
        redis: Option<&RedisTier>,
    ) -> Result<Facts, NoAnswer> {
        let admitted = self.breaker.admit();
        if admitted == Admit::Reject {
            return Err(NoAnswer::BreakerOpen);
        }
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Err(limit) = self.budget.admit(unix_secs, Instant::now()) {
            self.breaker.abandon(admitted);
            return Err(NoAnswer::OverBudget(limit));
        }
        if let (Some(shared), Some(redis)) = (&self.shared, redis) {
            let ask = shared.ask(redis.key_prefix(), unix_secs);
            match redis.shared_budget(&ask).await.map(Shared::verdict) {
                Ok(Ok(())) => {}
                Ok(Err(limit)) => {
                    self.budget.deny(limit, Instant::now());
                    self.breaker.abandon(admitted);
                    return Err(NoAnswer::OverBudget(limit));
                }
                Err(e) => self.shared_unavailable(&e, redis),
            }
        }
        let started = Instant::now();
        let result = self.lookup(ip).await;
        metrics.provider_call(started.elapsed(), result.err());
        if let Ok(facts) = &result {
            metrics
                .attribute_missing
                .observe(&self.spec().mapping, &facts.attributes);
        }
        self.breaker.record(result.is_ok());
        result.map_err(NoAnswer::Failed)
    }

    /// The shared budget could not be asked: this instance's own budget alone applies (it did
    /// already). Logged at most once per interval, as an error when only the configuration can
    /// fix it.
    fn shared_unavailable(&self, e: &RedisError, redis: &RedisTier) {
        if e.kind == crate::cache::redis::ErrorKind::BreakerOpen {
            return;
        }
        let line = self
            .shared_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(Instant::now());
        let Some(failures) = line else { return };
        if e.kind.is_misconfiguration() || e.kind == crate::cache::redis::ErrorKind::Error {
            tracing::error!(
                redis = %redis.display(),
                failures,
                "the shared provider budget cannot be counted in Redis ({e}): grant the service's Redis user +eval +incr +expire on {}{{budget}}:* (or set provider.budget.shared = false); meanwhile each instance's own budget applies ({failures} times since the last such line)",
                redis.key_prefix()
            );
        } else {
            tracing::warn!(
                redis = %redis.display(),
                failures,
                "the shared provider budget cannot be counted in Redis ({e}); meanwhile each instance's own budget applies ({failures} times since the last such line)"
            );
        }
    }
}

/// The provider as the lookup asks it: with this instance's metrics, and Redis for the
/// shared budget.
pub struct ProviderCall<'a> {
    /// The provider.
    pub provider: &'a Provider,
    /// Where the call is counted.
    pub metrics: &'a Metrics,
    /// Where the shared budget is counted, if anywhere.
    pub redis: Option<&'a RedisTier>,
}

impl crate::lookup::FactSource for ProviderCall<'_> {
    async fn ask(&self, ip: IpAddr) -> Result<Facts, NoAnswer> {
        self.provider.ask(ip, self.metrics, self.redis).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_call_was_made() {
        assert!(NoAnswer::Failed(ProviderError::Timeout).called());
        assert!(!NoAnswer::BreakerOpen.called());
        assert!(!NoAnswer::OverBudget(Limit::Rate).called());
    }
}
