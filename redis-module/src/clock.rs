//! The clock an entry's lifetime is read and written by: the kernel's tick-granular wall clock.
//!
//! Every read of an entry reports the time it has left and every write sets when it ends, so the
//! clock is read once per hot-path call. `RedisModule_Milliseconds` is a `gettimeofday`, a
//! noticeable part of a lean read (bench/README.md), and Redis 7.0 gives modules no cached time
//! (its module API has no `RedisModule_CachedMicroseconds`). The coarse clock is read from the vDSO page
//! without touching the clock source, and is never ahead of the precise one, only behind by
//! about a kernel tick (a few milliseconds): a remaining time reads that much long, and a
//! lifetime written ends that much early. Redis expires keys by its own precise clock, so no
//! expired entry is ever served; and a lifetime is counted in seconds.

use redis_module::raw;

use crate::ffi::api;

/// Milliseconds since the Unix epoch, to within one kernel tick.
pub fn now_ms() -> i64 {
    coarse_ms().unwrap_or_else(precise_ms)
}

#[cfg(target_os = "linux")]
// `time_t` is `i64` here, but not on every target.
#[allow(clippy::useless_conversion)]
fn coarse_ms() -> Option<i64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    (read == 0).then(|| i64::from(now.tv_sec) * 1000 + i64::from(now.tv_nsec) / 1_000_000)
}

#[cfg(not(target_os = "linux"))]
fn coarse_ms() -> Option<i64> {
    None
}

/// Redis's own clock.
fn precise_ms() -> i64 {
    // SAFETY: no arguments; present since load (`ffi::missing_api`).
    unsafe { api!(RedisModule_Milliseconds)() }
}
