//! The provider budget of this instance (`[provider.budget]`): a rate with a burst (GCRA, from the
//! `governor` crate) and a daily quota per UTC day. A call over budget is not made: the lookup
//! goes the provider's "no answer" way (on_error), counted by limit and logged at most once per
//! [`LOG_INTERVAL`].
//!
//! This is each instance's own budget; with `shared = true` the fleet's, counted in Redis
//! ([`crate::budget_shared`]), applies after it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use ipcheck_core::LogLimiter;

/// At most one "over budget" log line per limit in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

const DAY_SECS: u64 = 86_400;

/// `[provider.budget]`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BudgetSettings {
    /// Calls per second; 0 = unlimited.
    pub rate: f64,
    /// Calls allowed at once above the rate (at least 1).
    pub burst: u32,
    /// Calls per UTC day; 0 = no quota.
    pub daily_quota: u64,
    /// Whether the limits also apply to all instances together, counted in Redis
    /// ([`crate::budget_shared`]).
    pub shared: bool,
}

impl BudgetSettings {
    /// For the startup line and `check-config`: `budget 2/s (burst 3), 1000 a day`.
    pub fn summary(&self) -> String {
        let rate = if self.rate > 0.0 {
            format!("{}/s (burst {})", self.rate, self.burst.max(1))
        } else {
            "unlimited".to_owned()
        };
        let shared = if self.shared { ", shared" } else { "" };
        match self.daily_quota {
            0 => format!("budget {rate}{shared}"),
            n => format!("budget {rate}, {n} a day{shared}"),
        }
    }
}

/// Which limit refused a call (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The rate (with its burst).
    Rate,
    /// The daily quota.
    Daily,
}

impl Limit {
    /// Every limit, in metric order.
    pub const ALL: [Limit; 2] = [Limit::Rate, Limit::Daily];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Rate => "rate",
            Limit::Daily => "daily",
        }
    }
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The budget; `C` is the rate limiter's clock (a fake one in tests).
pub struct Budget<C: Clock = DefaultClock> {
    settings: BudgetSettings,
    rate: Option<Limiter<C>>,
    /// (UTC day number, calls made that day).
    day: Mutex<(u64, u64)>,
    denied: [AtomicU64; 2],
    log: Mutex<[LogLimiter; 2]>,
}

impl Budget<DefaultClock> {
    /// A budget on the real clock.
    pub fn new(settings: BudgetSettings) -> Self {
        Budget::with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock> Budget<C> {
    /// A budget whose rate follows `clock`.
    pub fn with_clock(settings: BudgetSettings, clock: C) -> Self {
        let rate = (settings.rate > 0.0)
            .then(|| Quota::with_period(Duration::from_secs_f64(1.0 / settings.rate)))
            .flatten()
            .map(|quota| {
                let burst = NonZeroU32::new(settings.burst.max(1)).unwrap_or(NonZeroU32::MIN);
                RateLimiter::direct_with_clock(quota.allow_burst(burst), clock)
            });
        Budget {
            settings,
            rate,
            day: Mutex::new((0, 0)),
            denied: [AtomicU64::new(0), AtomicU64::new(0)],
            log: Mutex::new([LogLimiter::new(LOG_INTERVAL); 2]),
        }
    }

    /// Takes one call from the budget (`unix_secs` picks the UTC day), or says which limit
    /// refuses it; a refusal is counted and logged (rate-limited, at `now`).
    pub fn admit(&self, unix_secs: u64, now: Instant) -> Result<(), Limit> {
        let result = self.take(unix_secs);
        if let Err(limit) = result {
            self.deny(limit, now);
        }
        result
    }

    /// Counts and logs (at most once per [`LOG_INTERVAL`] per limit) a call `limit` refused,
    /// here or in the budget shared through Redis.
    pub fn deny(&self, limit: Limit, now: Instant) {
        self.denied[limit as usize].fetch_add(1, Ordering::Relaxed);
        let line = self.log.lock().unwrap_or_else(|p| p.into_inner())[limit as usize].note(now);
        if let Some(denied) = line {
            let s = self.settings;
            let what = match limit {
                Limit::Rate => format!("rate {}/s, burst {}", s.rate, s.burst.max(1)),
                Limit::Daily => format!("daily_quota {}", s.daily_quota),
            };
            let whose = if s.shared {
                "this instance's or the fleet's (shared through Redis)"
            } else {
                "this instance's"
            };
            tracing::warn!(
                limit = limit.as_str(),
                denied,
                "provider budget exhausted ({whose} {what}): no provider call, each policy's on_error decides, reason provider-error ({denied} calls refused since the last such line, at most one per {}); raise [provider.budget] if this is legitimate traffic",
                crate::duration::display(LOG_INTERVAL)
            );
        }
    }

    fn take(&self, unix_secs: u64) -> Result<(), Limit> {
        // The rate first: a call it refuses must not use up the day's quota.
        if let Some(rate) = &self.rate {
            rate.check().map_err(|_| Limit::Rate)?;
        }
        if self.settings.daily_quota > 0 {
            let today = unix_secs / DAY_SECS;
            let mut day = self.day.lock().unwrap_or_else(|p| p.into_inner());
            if day.0 != today {
                *day = (today, 0);
            }
            if day.1 >= self.settings.daily_quota {
                return Err(Limit::Daily);
            }
            day.1 += 1;
        }
        Ok(())
    }

    /// `ipcheck_provider_budget_denied_total`.
    pub fn render(&self, out: &mut String) {
        crate::exposition::counter_family(
            out,
            "ipcheck_provider_budget_denied_total",
            "Provider calls not made because [provider.budget] was exhausted, by limit.",
            "limit",
            Limit::ALL.into_iter().map(|limit| {
                (
                    limit.as_str(),
                    self.denied[limit as usize].load(Ordering::Relaxed),
                )
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn budget(
        rate: f64,
        burst: u32,
        daily_quota: u64,
    ) -> (Budget<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let settings = BudgetSettings {
            rate,
            burst,
            daily_quota,
            shared: false,
        };
        (Budget::with_clock(settings, clock.clone()), clock)
    }

    #[test]
    fn rate_allows_the_burst_then_one_call_per_period() {
        let (b, clock) = budget(2.0, 3, 0);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.admit(0, t), Ok(()));
        }
        assert_eq!(b.admit(0, t), Err(Limit::Rate));
        clock.advance(Duration::from_millis(499));
        assert_eq!(b.admit(0, t), Err(Limit::Rate));
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.admit(0, t), Ok(()), "one call per 1/rate seconds");
        assert_eq!(b.admit(0, t), Err(Limit::Rate));
        let mut text = String::new();
        b.render(&mut text);
        assert!(text.contains("ipcheck_provider_budget_denied_total{limit=\"rate\"} 3"));
        assert!(text.contains("ipcheck_provider_budget_denied_total{limit=\"daily\"} 0"));
    }

    #[test]
    fn daily_quota_counts_per_utc_day() {
        let (b, _) = budget(0.0, 0, 2);
        let t = Instant::now();
        let day = |d: u64, s: u64| d * DAY_SECS + s;
        assert_eq!(b.admit(day(100, 0), t), Ok(()));
        assert_eq!(b.admit(day(100, 50), t), Ok(()));
        assert_eq!(b.admit(day(100, 86_399), t), Err(Limit::Daily));
        assert_eq!(
            b.admit(day(101, 0), t),
            Ok(()),
            "a new UTC day, a new quota"
        );
    }

    #[test]
    fn a_call_the_rate_refuses_does_not_spend_the_daily_quota() {
        let (b, clock) = budget(1.0, 1, 2);
        let t = Instant::now();
        assert_eq!(b.admit(0, t), Ok(()));
        for _ in 0..10 {
            assert_eq!(b.admit(0, t), Err(Limit::Rate));
        }
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit(0, t), Ok(()));
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit(0, t), Err(Limit::Daily));
    }

    #[test]
    fn summary() {
        let s = |rate, burst, daily_quota| {
            BudgetSettings {
                rate,
                burst,
                daily_quota,
                shared: false,
            }
            .summary()
        };
        assert_eq!(s(0.0, 0, 0), "budget unlimited");
        assert_eq!(s(2.5, 3, 1000), "budget 2.5/s (burst 3), 1000 a day");
    }

    #[test]
    fn unlimited_by_default() {
        let (b, _) = budget(0.0, 0, 0);
        let t = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(b.admit(0, t), Ok(()));
        }
    }
}
