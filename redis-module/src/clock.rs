//! The time a lean read measures an entry's remaining life against.
//!
//! `RedisModule_GetExpire` reads the precise clock (`gettimeofday`) on every call, which shows in
//! a profile of `IPCHECK.LGET` (bench/README.md). The lean read instead takes the key's absolute
//! expiry (`RedisModule_GetAbsExpire`, no clock) and subtracts the kernel's coarse clock, the time
//! of the last timer tick: it lags the precise clock by at most one tick (1 to 10 ms, by the
//! kernel's HZ), so the milliseconds left read at most that much high. Readers round to seconds,
//! and Redis itself decides when the key is gone, so that lag never changes what an entry means.

/// Unix time in milliseconds from the coarse real-time clock.
pub fn coarse_now_ms() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the call writes nothing else.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000;
        }
    }
    precise_now_ms()
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
    fn the_coarse_clock_lags_the_precise_one_by_at_most_a_tick() {
        let coarse = coarse_now_ms();
        let precise = precise_now_ms();
        // A tick is at most 10 ms (HZ=100); allow scheduling between the two reads.
        assert!(
            precise - coarse >= -1 && precise - coarse < 1000,
            "{coarse} {precise}"
        );
    }
}
