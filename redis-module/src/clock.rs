//! The time a lean read measures an entry's remaining life against.
//!
//! `RedisModule_GetExpire` reads the precise clock (`gettimeofday`) on every call, which shows in
//! a profile of `IPCHECK.LGET` (bench/README.md). The lean read instead takes the key's absolute
//! expiry (`RedisModule_GetAbsExpire`, no clock) and subtracts the kernel's coarse clock, the time
//! of the last timer tick, **plus one tick**. The coarse clock lags the precise one by up to a
//! tick (1 to 10 ms, by the kernel's HZ), so with the tick added the time used is never behind
//! the precise clock and at most a tick ahead: the milliseconds left read up to a tick low, never
//! high. So an entry `IPCHECK GET` already calls stale is never fresh to the lean read, and a
//! reader never keeps an entry longer than Redis does. Readers round to seconds, and Redis itself
//! decides when the key is gone.

use std::sync::OnceLock;

/// Unix time in milliseconds, never behind the precise clock and at most one tick ahead.
pub fn now_ms_not_behind() -> i64 {
    coarse_now_ms().map_or_else(precise_now_ms, |ms| ms.saturating_add(tick_ms()))
}

/// Unix time in milliseconds from the coarse real-time clock, where there is one.
fn coarse_now_ms() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the call writes nothing else.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return Some(ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000);
        }
    }
    None
}

/// The coarse clock's resolution (one tick) in whole milliseconds, rounded up; read once.
fn tick_ms() -> i64 {
    static TICK: OnceLock<i64> = OnceLock::new();
    *TICK.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: as in coarse_now_ms.
            if unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
                return (ts.tv_sec * 1000 + (ts.tv_nsec + 999_999) / 1_000_000).max(1);
            }
        }
        0
    })
}

/// Unix time in milliseconds from the precise clock (where the coarse one is unavailable).
fn precise_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_behind_the_precise_clock_and_at_most_a_tick_ahead() {
        for _ in 0..10_000 {
            let before = precise_now_ms();
            let ours = now_ms_not_behind();
            let after = precise_now_ms();
            assert!(ours >= before, "{ours} behind {before}");
            // A tick is at most 10 ms (HZ=100); allow scheduling between the reads.
            assert!(
                ours <= after + tick_ms() + 1000,
                "{ours} far ahead of {after}"
            );
        }
        assert!((0..=10).contains(&tick_ms()), "{}", tick_ms());
    }
}
