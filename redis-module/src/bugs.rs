//! Bugs caught at the boundary with Redis: counted in `IPCHECK STATS` and logged, rate-limited.
//!
//! A panic never unwinds into Redis: [`crate::panic_guard`] catches it in a command handler
//! (the client gets `-ERR internal error`), [`crate::filter`] in the command filter (the command
//! goes on unrewritten, and the handler then checks ACLs on the real key itself). Caught must not
//! mean hidden, so both sites go through [`report`]: the site's counter (`handler_panics`,
//! `filter_panics`) counts every one, and the Redis log gets at most one warning per site per
//! [`LOG_INTERVAL`], carrying how many were caught since that site's previous line, so a client
//! that can trigger a bug on every call can neither flood the log nor hide in it.

use std::any::Any;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipcheck_core::LogLimiter;

use crate::ffi::Ctx;
use crate::stats::{self, Counter};

/// At most one log line per site in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where a panic was caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// An `IPCHECK` subcommand handler.
    Handler,
    /// The command filter that rewrites the address argument.
    Filter,
}

impl Site {
    fn counter(self) -> &'static Counter {
        match self {
            Site::Handler => &stats::HANDLER_PANICS,
            Site::Filter => &stats::FILTER_PANICS,
        }
    }

    fn limiter(self) -> &'static Mutex<LogLimiter> {
        static HANDLER: Mutex<LogLimiter> = Mutex::new(LogLimiter::new(LOG_INTERVAL));
        static FILTER: Mutex<LogLimiter> = Mutex::new(LogLimiter::new(LOG_INTERVAL));
        match self {
            Site::Handler => &HANDLER,
            Site::Filter => &FILTER,
        }
    }

    /// The start of the log line; "bug caught" is what operators (and the fuzz test) grep for.
    fn headline(self) -> &'static str {
        match self {
            Site::Handler => "bug caught in IPCHECK handler, the call got an error reply",
            Site::Filter => {
                "bug caught in the IPCHECK command filter, the command went on unrewritten"
            }
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Counts a panic caught at `site` and logs it unless that site logged less than
/// [`LOG_INTERVAL`] ago. `ctx` is the handler's context; the filter has none.
pub fn report(site: Site, ctx: Option<Ctx>, what: &str) {
    site.counter().incr();
    // Nothing panics while the lock is held; a poisoned lock still holds a usable limiter.
    let due = site
        .limiter()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .note(Instant::now());
    if let Some(n) = due {
        crate::log_warning(
            ctx,
            // Counts first: a long panic message is cut at the end of the line.
            &format!(
                "{} ({n} since the previous such line, {} since load; at most one line per \
                 {}s): {what}",
                site.headline(),
                site.counter().get(),
                LOG_INTERVAL.as_secs(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payload_text() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "boom 1");
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "static");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "unknown panic");
    }
}
