//! Counters since load, reported by `IPCHECK STATS`.
//!
//! Commands run on Redis's main thread (or on a thread holding the module GIL), one at a time,
//! so a counter is a relaxed atomic bumped by a plain load and store: safe Rust, and no locked
//! read-modify-write on every call (`IPCHECK.LGET` counts every hit and miss). Two increments
//! could only be lost if two threads ran commands at once, which Redis never does.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn incr(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `IPCHECK GET` calls that found an entry.
pub static HITS: Counter = Counter::new();
/// `IPCHECK GET` calls that found nothing.
pub static MISSES: Counter = Counter::new();
/// `IPCHECK SET` calls that stored an entry (not those that kept a manual pin).
pub static SETS: Counter = Counter::new();
/// `IPCHECK DEL` calls that removed an entry.
pub static DELETES: Counter = Counter::new();
/// Calls answered with an error by the module (argument, type, decode errors and caught bugs).
pub static ERRORS: Counter = Counter::new();
/// Panics caught in a subcommand handler (each also counted in [`ERRORS`]); see [`crate::bugs`].
pub static HANDLER_PANICS: Counter = Counter::new();
/// Panics caught in the command filter (the command went on unrewritten); see [`crate::bugs`].
pub static FILTER_PANICS: Counter = Counter::new();

/// The counters in `IPCHECK STATS` order. New counters go at the end, so readers that take
/// the first fields by position keep working.
pub fn snapshot() -> [(&'static str, u64); 7] {
    [
        ("hits", HITS.get()),
        ("misses", MISSES.get()),
        ("sets", SETS.get()),
        ("deletes", DELETES.get()),
        ("errors", ERRORS.get()),
        ("handler_panics", HANDLER_PANICS.get()),
        ("filter_panics", FILTER_PANICS.get()),
    ]
}
