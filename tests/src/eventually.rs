//! Waiting for a condition instead of sleeping: poll it until it holds, failing the test with
//! what was awaited when it does not within the bound.

use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it holds; panics naming `what` after `within`.
pub fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "not within {} s: {what}",
            within.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
