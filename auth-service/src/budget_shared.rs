//! The provider budget shared by every instance through Redis (`provider.budget.shared`).
//!
//! Fixed windows counted in Redis: the rate as at most `max(1, round(rate × W))` calls per window
//! of `W = max(1 s, 1/rate)`, and the daily quota per UTC day. One Lua script increments both
//! counters atomically (so a counter never lives without its expiry) in one round trip; the two
//! keys share a hash tag, so in a cluster they live on one node. Each instance's own limiter
//! ([`crate::budget`]) still applies first: it bounds the instance's burst and its Redis traffic,
//! and it is all that applies while Redis cannot be asked.
//!
//! The keys, under the module's key prefix (so `%RW~ipcheck:*` covers them):
//! `ipcheck:{budget}:rate:<window number>` and `ipcheck:{budget}:day:<UTC day number>`. The
//! Redis user needs `+eval +incr +expire` besides what the lookups need.

use crate::budget::{BudgetSettings, Limit};

const DAY_SECS: u64 = 86_400;

/// Increments each counter whose limit is not 0 (a key expiring after its window) and says which
/// limit, if any, the call exceeds: 0 none, 1 the rate, 2 the day. The day is not counted once
/// the rate refuses.
pub const SCRIPT: &str = r#"
local function over(key, ttl, limit)
  if limit == 0 then return false end
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ttl) end
  return n > limit
end
if over(KEYS[1], ARGV[1], tonumber(ARGV[2])) then return 1 end
if over(KEYS[2], ARGV[3], tonumber(ARGV[4])) then return 2 end
return 0
"#;

/// One budget question to Redis: the script's keys and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The rate window's key and the day's key.
    pub keys: [String; 2],
    /// rate TTL, rate limit, day TTL, day limit (a limit of 0 is not counted).
    pub args: [u64; 4],
}

/// The fleet's limits, from this instance's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// The rate window in seconds, and calls allowed per window (0: no rate).
    window: u64,
    per_window: u64,
    daily: u64,
}

impl Shared {
    /// The shared limits `settings` describe.
    pub fn new(settings: &BudgetSettings) -> Self {
        let (window, per_window) = if settings.rate > 0.0 {
            let window = (1.0 / settings.rate).ceil().max(1.0);
            (
                window as u64,
                (settings.rate * window).round().max(1.0) as u64,
            )
        } else {
            (1, 0)
        };
        Shared {
            window,
            per_window,
            daily: settings.daily_quota,
        }
    }

    /// The question for a call at `unix_secs`, with keys under `prefix`.
    pub fn ask(&self, prefix: &str, unix_secs: u64) -> Ask {
        Ask {
            keys: [
                format!("{prefix}{{budget}}:rate:{}", unix_secs / self.window),
                format!("{prefix}{{budget}}:day:{}", unix_secs / DAY_SECS),
            ],
            // A key outlives its window by a little, never by much: the rate window's number, or
            // the day's, is never reused.
            args: [
                self.window + 1,
                self.per_window,
                DAY_SECS + 3_600,
                self.daily,
            ],
        }
    }

    /// What the script's reply means.
    pub fn verdict(reply: i64) -> Result<(), Limit> {
        match reply {
            1 => Err(Limit::Rate),
            2 => Err(Limit::Daily),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rate: f64, daily_quota: u64) -> Shared {
        Shared::new(&BudgetSettings {
            rate,
            burst: 1,
            daily_quota,
            shared: true,
        })
    }

    #[test]
    fn windows_and_limits() {
        assert_eq!(
            shared(20.0, 0).ask("ipcheck:", 1_000).args,
            [2, 20, 90_000, 0]
        );
        // Slower than one a second: one call per window of 1/rate seconds.
        assert_eq!(
            shared(0.01, 5).ask("ipcheck:", 1_000).args,
            [101, 1, 90_000, 5]
        );
        assert_eq!(shared(2.5, 0).ask("p:", 0).args[..2], [2, 3]);
        assert_eq!(shared(0.0, 7).ask("p:", 0).args, [2, 0, 90_000, 7]);
    }

    #[test]
    fn keys_share_a_hash_tag_and_name_their_window() {
        let ask = shared(0.01, 5).ask("ipcheck:", 86_400 * 3 + 250);
        assert_eq!(
            ask.keys,
            [
                format!("ipcheck:{{budget}}:rate:{}", (86_400 * 3 + 250) / 100),
                "ipcheck:{budget}:day:3".to_owned()
            ]
        );
    }

    #[test]
    fn replies() {
        assert_eq!(Shared::verdict(0), Ok(()));
        assert_eq!(Shared::verdict(1), Err(Limit::Rate));
        assert_eq!(Shared::verdict(2), Err(Limit::Daily));
    }
}
